"""aiomqtt's exceptions and their exact string forms."""

from __future__ import annotations

import pytest

from trio_mqttconn import aiomqtt
from trio_mqttconn.aiomqtt._paho import PacketTypes, ReasonCode
from trio_mqttconn.aiomqtt.exceptions import (
    MqttCodeError,
    MqttConnectError,
    MqttError,
    MqttReentrantError,
    error_string,
)

# paho-mqtt 2.2 error_string(): facts the shim reproduces.
PAHO_ERROR_STRINGS = [
    (-1, "Unknown error."),
    (0, "No error."),
    (1, "Out of memory."),
    (2, "A network protocol error occurred when communicating with the broker."),
    (3, "Invalid function arguments provided."),
    (4, "The client is not currently connected."),
    (5, "The connection was refused."),
    (6, "Message not found (internal error)."),
    (7, "The connection was lost."),
    (8, "A TLS error occurred."),
    (9, "Payload too large."),
    (10, "This feature is not supported."),
    (11, "Authorisation failed."),
    (12, "Access denied by ACL."),
    (13, "Unknown error."),
    (14, "Error defined by errno."),
    (15, "Message queue full."),
    (16, "Client or broker did not communicate in the keepalive interval."),
    (17, "Unknown error."),
]


class PahoLikeReasonCode:
    """Stands in for paho.mqtt.reasoncodes.ReasonCode (duck typing)."""

    def __init__(self, value: int, name: str) -> None:
        self.value = value
        self._name = name

    def getName(self) -> str:
        return self._name

    def __str__(self) -> str:
        return self._name


@pytest.mark.parametrize(("code", "text"), PAHO_ERROR_STRINGS)
def test_error_string_is_pahos_table(code: int, text: str) -> None:
    assert error_string(code) == text


@pytest.mark.parametrize(("code", "text"), PAHO_ERROR_STRINGS)
def test_mqtt_code_error_formats_ints_with_pahos_error_string(
    code: int, text: str
) -> None:
    error = MqttCodeError(code, "Could not publish message")
    assert str(error) == f"[code:{code}] {text}"
    assert error.rc == code
    assert error.args == ("Could not publish message",)


def test_mqtt_code_error_formats_reason_codes_with_their_name() -> None:
    error = MqttCodeError(
        ReasonCode(PacketTypes.DISCONNECT, identifier=0x8E), "Unexpected disconnection"
    )
    assert str(error) == "[code:142] Session taken over"
    assert str(MqttCodeError(ReasonCode(PacketTypes.SUBACK, identifier=0x80))) == (
        "[code:128] Unspecified error"
    )


def test_mqtt_code_error_accepts_pahos_reason_code_objects() -> None:
    error = MqttCodeError(PahoLikeReasonCode(135, "Not authorized"))  # type: ignore[arg-type]
    assert str(error) == "[code:135] Not authorized"


def test_mqtt_code_error_without_code_shows_its_message() -> None:
    assert str(MqttCodeError(None, "Could not subscribe")) == (
        "[code:None] Could not subscribe"
    )
    assert str(MqttCodeError(None)) == "[code:None] "


def test_mqtt_connect_error_with_reason_code() -> None:
    error = MqttConnectError(ReasonCode(PacketTypes.CONNACK, identifier=0x86))
    assert str(error) == "[code:134] Bad user name or password"
    assert error.args == ()
    assert error.rc == 134
    assert isinstance(error, MqttCodeError)


def test_mqtt_connect_error_with_pahos_reason_code() -> None:
    error = MqttConnectError(PahoLikeReasonCode(0x87, "Not authorized"))  # type: ignore[arg-type]
    assert str(error) == "[code:135] Not authorized"
    assert error.args == ()


@pytest.mark.parametrize(
    ("code", "message"),
    [
        (1, "Connection refused: Incorrect protocol version"),
        (2, "Connection refused: Invalid client identifier"),
        (3, "Connection refused: Server unavailable"),
        (4, "Connection refused: Bad username or password"),
        (5, "Connection refused: Not authorised"),
        (6, "Connection refused"),
        (0, "Connection refused"),
    ],
)
def test_mqtt_connect_error_with_int_keeps_aiomqtts_message_and_string(
    code: int, message: str
) -> None:
    error = MqttConnectError(code)
    assert error.args == (message,)
    # aiomqtt 2.5.1 formats ints with paho's error_string, not with the message.
    assert str(error) == f"[code:{code}] {error_string(code)}"


def test_mqtt_reentrant_error_message_and_hierarchy() -> None:
    error = MqttReentrantError(
        "The client context manager is reusable, but not reentrant"
    )
    assert str(error) == "The client context manager is reusable, but not reentrant"
    assert isinstance(error, MqttError)


def test_mqtt_error_is_a_plain_exception_taking_any_arguments() -> None:
    assert str(MqttError("Operation timed out")) == "Operation timed out"
    assert MqttError("a", 1).args == ("a", 1)
    assert MqttError.__mro__ == (MqttError, Exception, BaseException, object)


def test_exceptions_are_exported_from_the_package() -> None:
    assert aiomqtt.MqttError is MqttError
    assert aiomqtt.MqttCodeError is MqttCodeError
    assert aiomqtt.MqttConnectError is MqttConnectError
    assert aiomqtt.MqttReentrantError is MqttReentrantError
