"""``-D COMMAND NAME VALUE``: MQTT 5 properties from the command line (mosquitto's syntax).

Names are the specification's, lower case with hyphens (``user-property``,
``message-expiry-interval``). Each command accepts the properties a client may send
in that packet; values are checked against the property's range here, so a bad one
fails before connecting, with the option in the message.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Final

from ._args import CliError
from ._checks import number, text

if TYPE_CHECKING:
    from collections.abc import Collection, Sequence

__all__ = ["parse_properties"]

_U32: Final = 0xFFFFFFFF


# name -> (Properties field, kind, low, high); kind: int, str, bin or pair.
_PROPERTIES: Final[dict[str, tuple[str, str, int, int]]] = {
    "payload-format-indicator": ("payload_format_indicator", "int", 0, 1),
    "message-expiry-interval": ("message_expiry_interval", "int", 0, _U32),
    "content-type": ("content_type", "str", 0, 0),
    "response-topic": ("response_topic", "str", 0, 0),
    "correlation-data": ("correlation_data", "bin", 0, 0),
    "subscription-identifier": ("subscription_identifiers", "int", 1, 268_435_455),
    "session-expiry-interval": ("session_expiry_interval", "int", 0, _U32),
    "authentication-method": ("authentication_method", "str", 0, 0),
    "authentication-data": ("authentication_data", "bin", 0, 0),
    "request-problem-information": ("request_problem_information", "int", 0, 1),
    "will-delay-interval": ("will_delay_interval", "int", 0, _U32),
    "request-response-information": ("request_response_information", "int", 0, 1),
    "receive-maximum": ("receive_maximum", "int", 1, 65535),
    "topic-alias-maximum": ("topic_alias_maximum", "int", 0, 65535),
    "topic-alias": ("topic_alias", "int", 1, 65535),
    "maximum-packet-size": ("maximum_packet_size", "int", 1, _U32),
    "user-property": ("user_properties", "pair", 0, 0),
    "reason-string": ("reason_string", "str", 0, 0),
    "server-reference": ("server_reference", "str", 0, 0),
}
_BROKER_ONLY: Final = frozenset(
    {
        "assigned-client-identifier",
        "server-keep-alive",
        "response-information",
        "maximum-qos",
        "retain-available",
        "wildcard-subscription-available",
        "subscription-identifier-available",
        "shared-subscription-available",
    }
)
_MESSAGE: Final = frozenset(
    {
        "payload-format-indicator",
        "message-expiry-interval",
        "content-type",
        "response-topic",
        "correlation-data",
        "user-property",
    }
)
_ALLOWED: Final[dict[str, frozenset[str]]] = {
    "connect": frozenset(
        {
            "session-expiry-interval",
            "authentication-method",
            "authentication-data",
            "request-problem-information",
            "request-response-information",
            "receive-maximum",
            "topic-alias-maximum",
            "maximum-packet-size",
            "user-property",
        }
    ),
    "publish": _MESSAGE | {"topic-alias"},
    "will": _MESSAGE | {"will-delay-interval"},
    "subscribe": frozenset({"subscription-identifier", "user-property"}),
    "unsubscribe": frozenset({"user-property"}),
    "disconnect": frozenset(),
    "auth": frozenset(),
}


def _property_value(where: str, kind: str, low: int, high: int, value: str) -> object:
    if kind == "int":
        return number(where, value, low, high)
    if kind == "bin":
        return os.fsencode(value)
    return text(where, value)


def parse_properties(
    items: Sequence[Sequence[str]], commands: Collection[str]
) -> dict[str, dict[str, Any]]:
    """The ``-D COMMAND NAME VALUE [VALUE]`` options as Properties fields per command.

    Only the commands in *commands* are accepted (pub sends no SUBSCRIBE ...).
    """
    result: dict[str, dict[str, Any]] = {}
    for item in items:
        command = item[0]
        name = item[1] if len(item) > 1 else ""
        values = item[2:]
        where = f"-D {command} {name}".rstrip()
        if command not in _ALLOWED:
            raise CliError(
                f"-D: unknown command {command!r}; use "
                + ", ".join(c for c in _ALLOWED if c in commands)
            )
        if command not in commands or not _ALLOWED[command]:
            raise CliError(f"-D {command}: this command sends no {command} properties")
        if not name:
            raise CliError(f"{where}: expected a property name and a value")
        if name in _BROKER_ONLY:
            raise CliError(f"{where}: only the broker sends this property")
        if name not in _PROPERTIES:
            raise CliError(f"{where}: unknown property {name!r}")
        if name not in _ALLOWED[command]:
            raise CliError(f"{where}: not allowed in {command}")
        field, kind, low, high = _PROPERTIES[name]
        wanted = 2 if kind == "pair" else 1
        if len(values) != wanted:
            shape = "NAME VALUE" if wanted == 2 else "VALUE"
            raise CliError(f"{where}: expected {shape} after the property name")
        fields = result.setdefault(command, {})
        if kind == "pair":
            pair = (text(where, values[0]), text(where, values[1]))
            fields[field] = (*fields.get(field, ()), pair)
            continue
        if field in fields:
            raise CliError(f"{where}: given twice")
        parsed = _property_value(where, kind, low, high, values[0])
        fields[field] = (parsed,) if field == "subscription_identifiers" else parsed
    return result
