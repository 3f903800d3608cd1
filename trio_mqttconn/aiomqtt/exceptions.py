"""aiomqtt's exceptions, with aiomqtt's exact string forms.

``MqttCodeError`` formats as ``[code:N] text``: for a reason code the text is its name
(``[code:135] Not authorized``), for an ``int`` it is paho-mqtt's error string for that
number (``[code:4] The client is not currently connected.``). paho-mqtt is not a
dependency: its error-string table is reproduced below as data.

These classes do not derive from ``trio_mqttconn.MqttError``: aiomqtt's ``MqttError``
is a plain ``Exception`` that takes any arguments, and code that catches it must see
exactly that. The shim's client translates the engine's errors into these.
"""

from __future__ import annotations

import contextlib
from typing import Final

from ._paho import ReasonCode

__all__ = [
    "MqttCodeError",
    "MqttConnectError",
    "MqttError",
    "MqttReentrantError",
    "error_string",
]


class MqttError(Exception):
    """Base class of every error the aiomqtt shim raises on purpose.

    Network failures, timeouts (``"Operation timed out"``) and a disconnect during
    message iteration (``"Disconnected during message iteration"``) are raised as
    plain ``MqttError``; failures with an MQTT or paho code as `MqttCodeError`.
    """


class MqttCodeError(MqttError):
    """An error that carries a return or reason code in ``rc``.

    ``str()`` gives ``[code:N] text``: the reason code's name for a `ReasonCode`,
    paho's error string for an ``int`` (``[code:7] The connection was lost.``), and the
    exception's own message when ``rc`` is None.

    Args:
        rc: The reason code (``ReasonCode``), paho error number (``int``) or None.
        *args: The exception arguments, usually one message.
    """

    rc: int | ReasonCode | None
    """The code this error carries."""

    def __init__(self, rc: int | ReasonCode | None, *args: object) -> None:
        super().__init__(*args)
        self.rc = rc

    def __str__(self) -> str:
        rc = self.rc
        if isinstance(rc, ReasonCode) or _looks_like_reason_code(rc):
            return f"[code:{rc.value}] {rc!s}"  # type: ignore[union-attr]
        if isinstance(rc, int):
            return f"[code:{rc}] {error_string(rc)}"
        return f"[code:{rc}] {super().__str__()}"


class MqttConnectError(MqttCodeError):
    """The broker refused the connection (a negative CONNACK).

    With a reason code (what the shim's client always passes, for MQTT 3.1.1 too)
    ``str()`` is ``[code:134] Bad user name or password``. With an ``int`` (the MQTT
    3.1.1 CONNACK return code, as older paho versions reported it) the message is
    ``Connection refused: <reason>``, while ``str()`` follows `MqttCodeError` and shows
    paho's error string for that number, exactly as aiomqtt 2.5.1 does.

    Args:
        rc: The CONNACK reason code or MQTT 3.1.1 return code.
    """

    def __init__(self, rc: int | ReasonCode) -> None:
        if isinstance(rc, ReasonCode) or _looks_like_reason_code(rc):
            super().__init__(rc)
            return
        msg = "Connection refused"
        with contextlib.suppress(KeyError, TypeError):
            msg += f": {_CONNECT_RC_STRINGS[rc]}"
        super().__init__(rc, msg)


class MqttReentrantError(MqttError):
    """The client's context manager was entered while already entered.

    The client is reusable (enter it again after it exited) but not reentrant; the
    message is ``The client context manager is reusable, but not reentrant``.
    """


def _looks_like_reason_code(value: object) -> bool:
    # paho's own ReasonCode objects, accepted by duck typing.
    return (
        not isinstance(value, int)
        and hasattr(value, "value")
        and hasattr(value, "getName")
    )


# paho-mqtt 2.x error_string(): the text of each MQTT_ERR_* number. Anything else
# (including MQTT_ERR_AGAIN = -1) is "Unknown error.".
_ERROR_STRINGS: Final[dict[int, str]] = {
    0: "No error.",
    1: "Out of memory.",
    2: "A network protocol error occurred when communicating with the broker.",
    3: "Invalid function arguments provided.",
    4: "The client is not currently connected.",
    5: "The connection was refused.",
    6: "Message not found (internal error).",
    7: "The connection was lost.",
    8: "A TLS error occurred.",
    9: "Payload too large.",
    10: "This feature is not supported.",
    11: "Authorisation failed.",
    12: "Access denied by ACL.",
    13: "Unknown error.",
    14: "Error defined by errno.",
    15: "Message queue full.",
    16: "Client or broker did not communicate in the keepalive interval.",
}

# aiomqtt's texts for the MQTT 3.1.1 CONNACK return codes 1..5.
_CONNECT_RC_STRINGS: Final[dict[int, str]] = {
    1: "Incorrect protocol version",
    2: "Invalid client identifier",
    3: "Server unavailable",
    4: "Bad username or password",
    5: "Not authorised",
}


def error_string(mqtt_errno: int) -> str:
    """Return paho-mqtt's text for an ``MQTT_ERR_*`` number.

    Example::

        error_string(4) == "The client is not currently connected."
    """
    return _ERROR_STRINGS.get(mqtt_errno, "Unknown error.")
