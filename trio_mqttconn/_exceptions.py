"""The whole MqttError tree, nothing else.

::

    MqttError(Exception)
    ├── ConfigError(MqttError, ValueError)        bad configuration; the message names the key
    ├── ConnectError(MqttError)                   refused or unreachable; .reason_code or None
    │   └── ConnectTimeout(ConnectError, TimeoutError)
    ├── ConnectionLost(MqttError)                 dropped after connect; __cause__ set
    ├── InvalidStateError(MqttError, RuntimeError) local misuse: packet illegal in this state
    │   └── NotOpenError(InvalidStateError)       used before open / after close
    ├── ProtocolError(MqttError)                  peer sent illegal bytes; .reason_code
    │   ├── MalformedPacketError(ProtocolError)   0x81
    │   └── PacketTooLargeError(ProtocolError)    0x95
    ├── PublishError(MqttError)                   negative PUBACK/PUBREC; .reason_code
    │   └── PublishLimitError(PublishError, ValueError)  breaks a limit in force; .limit
    ├── SubscribeError(MqttError)                 negative SUBACK; .reason_code
    ├── UnsubscribeError(MqttError)               negative UNSUBACK; .reason_code
    ├── RequestTimeout(MqttError, TimeoutError)   request() got no response in time
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
    "PublishLimitError",
    "RequestTimeout",
    "SessionStoreError",
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


class InvalidStateError(MqttError, RuntimeError):
    """This side tried something the protocol state does not allow right now.

    The message names the packet and the state, e.g.
    ``"cannot send PublishPacket in state CONNECTING"``.
    """

    default_code = "INVALID_STATE"


class NotOpenError(InvalidStateError):
    """The client or connection is not open (never opened, or already closed).

    An `InvalidStateError`, as pip-services raises ``InvalidStateException`` for it.
    """

    default_code = "NOT_OPEN"


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


class PublishLimitError(PublishError, ValueError):
    """A PUBLISH breaks a limit in force on this connection, so it was not sent.

    The limits are the broker's (CONNACK Maximum QoS, Retain Available, Maximum
    Packet Size) and the client's own ``maximum_outgoing_packet_size``. ``limit``
    names the one broken; ``reason_code`` is the MQTT 5 code for it (0x9B QoS not
    supported, 0x9A Retain not supported, 0x95 Packet too large). A ValueError too:
    the message can never be sent as it is on this connection.
    """

    def __init__(
        self,
        message: str = "",
        *,
        limit: str,
        reason_code: ReasonCode | int | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message, reason_code=reason_code, code=code)
        self.limit: str = limit
        """The limit broken: ``"maximum_qos"``, ``"retain_available"``,
        ``"maximum_packet_size"`` (the broker's) or ``"maximum_outgoing_packet_size"``
        (the client's own)."""


class SubscribeError(_ReasonCodeError):
    """The broker refused a subscription (SUBACK reason code 0x80 or above)."""

    default_code = "SUBSCRIBE_FAILED"


class UnsubscribeError(_ReasonCodeError):
    """The broker answered an UNSUBSCRIBE with a failure reason code."""

    default_code = "UNSUBSCRIBE_FAILED"


class MqttInternalError(MqttError):
    """Something happened that should not: a bug in trio_mqttconn, please report it."""

    default_code = "INTERNAL_ERROR"


class RequestTimeout(MqttError, TimeoutError):
    """``request()`` got no response within its *timeout*.

    The request was published (or the timeout struck before); a response that
    arrives later is dropped and counted in ``RequestStatistics.dropped_responses``.
    """

    default_code = "REQUEST_TIMEOUT"


class SessionStoreError(MqttError):
    """The session store could not be opened, read or written.

    The client stops: without the store it could no longer keep its promise that
    what left the process is known after a crash. The message names the store
    and what failed; the cause is the store's own exception.
    """

    default_code = "SESSION_STORE_ERROR"
