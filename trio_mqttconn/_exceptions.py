"""The whole MqttError tree, nothing else.

::

    MqttError(Exception)
    ├── ConfigError(MqttError, ValueError)        bad configuration; the message names the key
    ├── ConnectError(MqttError)                   refused or unreachable; .reason_code or None
    │   └── ConnectTimeout(ConnectError, TimeoutError)
    ├── ConnectionLost(MqttError)                 dropped after connect; __cause__ set
    ├── NotOpenError(MqttError)                   used before open / after close
    ├── InvalidStateError(MqttError, RuntimeError) local misuse: packet illegal in this state
    ├── ProtocolError(MqttError)                  peer sent illegal bytes; .reason_code
    │   ├── MalformedPacketError(ProtocolError)   0x81
    │   └── PacketTooLargeError(ProtocolError)    0x95
    ├── PublishError(MqttError)                   negative PUBACK/PUBREC; .reason_code
    ├── SubscribeError(MqttError)                 negative SUBACK; .reason_code
    ├── UnsubscribeError(MqttError)               negative UNSUBACK; .reason_code
    └── MqttInternalError(MqttError)              a bug in us: please report

Every error has a ``code`` attribute, the pip-services error code
(``"NOT_OPEN"``, ``"CONNECT_FAILED"``, ``"NO_HOST"`` ...), so services written in the
pip-services style can switch on it.
"""

from __future__ import annotations

from ._enums import ReasonCode

__all__ = [
    "ConfigError",
    "ConnectError",
    "ConnectTimeout",
    "ConnectionLost",
    "InvalidStateError",
    "MalformedPacketError",
    "MqttError",
    "MqttInternalError",
    "NotOpenError",
    "PacketTooLargeError",
    "ProtocolError",
    "PublishError",
    "SubscribeError",
    "UnsubscribeError",
]


class MqttError(Exception):
    """Base class of every error trio_mqttconn raises on purpose."""

    #: pip-services style error code; subclasses set a default.
    default_code: str = "MQTT_ERROR"

    def __init__(self, message: str = "", *, code: str | None = None) -> None:
        super().__init__(message)
        self.code: str = code if code is not None else self.default_code
        """pip-services error code, e.g. ``"NOT_OPEN"``."""


class ConfigError(MqttError, ValueError):
    """The configuration is incomplete or invalid; the message names the key."""

    default_code = "CONFIG_ERROR"


class ConnectError(MqttError):
    """The broker could not be reached, or it refused the connection.

    ``reason_code`` is the CONNACK reason code when the broker answered, else None.
    """

    default_code = "CONNECT_FAILED"

    def __init__(
        self,
        message: str = "",
        *,
        reason_code: ReasonCode | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message, code=code)
        self.reason_code: ReasonCode | None = reason_code
        """CONNACK reason code, or None when the broker never answered."""


class ConnectTimeout(ConnectError, TimeoutError):
    """Connecting (TCP, TLS, WebSocket and CONNACK) took longer than allowed."""

    default_code = "CONNECT_TIMEOUT"


class ConnectionLost(MqttError):
    """An established connection was dropped; ``__cause__`` says why.

    ``reason_code`` is the broker's DISCONNECT reason code when it said goodbye
    (MQTT 5), else None.
    """

    default_code = "CONNECTION_LOST"

    def __init__(
        self,
        message: str = "",
        *,
        reason_code: ReasonCode | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message, code=code)
        self.reason_code: ReasonCode | None = reason_code
        """The broker's DISCONNECT reason code, or None."""


class NotOpenError(MqttError):
    """The client or connection is not open (never opened, or already closed)."""

    default_code = "NOT_OPEN"


class InvalidStateError(MqttError, RuntimeError):
    """This side tried something the protocol state does not allow right now.

    The message names the packet and the state, e.g.
    ``"cannot send PublishPacket in state CONNECTING"``.
    """

    default_code = "INVALID_STATE"


class _ReasonCodeError(MqttError):
    default_reason: ReasonCode = ReasonCode.UNSPECIFIED_ERROR

    def __init__(
        self,
        message: str = "",
        *,
        reason_code: ReasonCode | int | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message, code=code)
        rc = self.default_reason if reason_code is None else reason_code
        try:
            rc = ReasonCode(rc)
        except ValueError:
            pass
        self.reason_code: ReasonCode | int = rc
        """The MQTT 5 reason code that describes the failure."""


class ProtocolError(_ReasonCodeError):
    """The peer sent bytes that break the MQTT protocol.

    ``reason_code`` is what an MQTT 5 client sends in its DISCONNECT for it.
    """

    default_code = "PROTOCOL_ERROR"
    default_reason = ReasonCode.PROTOCOL_ERROR


class MalformedPacketError(ProtocolError):
    """A packet could not be parsed (reason code 0x81)."""

    default_reason = ReasonCode.MALFORMED_PACKET


class PacketTooLargeError(ProtocolError):
    """A packet is larger than the agreed maximum packet size (reason code 0x95)."""

    default_reason = ReasonCode.PACKET_TOO_LARGE


class PublishError(_ReasonCodeError):
    """The broker answered a PUBLISH with a failure reason code."""

    default_code = "PUBLISH_FAILED"


class SubscribeError(_ReasonCodeError):
    """The broker refused a subscription (SUBACK reason code 0x80 or above)."""

    default_code = "SUBSCRIBE_FAILED"


class UnsubscribeError(_ReasonCodeError):
    """The broker answered an UNSUBSCRIBE with a failure reason code."""

    default_code = "UNSUBSCRIBE_FAILED"


class MqttInternalError(MqttError):
    """Something happened that should not: a bug in trio_mqttconn, please report it."""

    default_code = "INTERNAL_ERROR"
