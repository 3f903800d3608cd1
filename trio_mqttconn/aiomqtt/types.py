"""aiomqtt's type aliases: ``from aiomqtt.types import PayloadType`` keeps working.

They have aiomqtt 2.5.1's shapes, written as real unions (usable at run time, e.g. in
``isinstance``) instead of aiomqtt's strings. ``SubscribeOptions`` in them is ours
(`trio_mqttconn.aiomqtt._paho.SubscribeOptions`); paho's are accepted at run time.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Callable
from typing import Any, ParamSpec, TypeAlias, TypeVar

from ._paho import SubscribeOptions

__all__ = [
    "P",
    "PahoSocket",
    "PayloadType",
    "SocketOption",
    "SubscribeTopic",
    "T",
    "WebSocketHeaders",
]

T = TypeVar("T")
"""A type variable (aiomqtt exports it for its decorators)."""

P = ParamSpec("P")
"""A parameter specification (aiomqtt exports it for its decorators)."""

PayloadType: TypeAlias = str | bytes | bytearray | int | float | None
"""What ``publish()`` and ``Will`` accept as payload: str is sent as UTF-8, int and
float as their ``str()``, None as an empty payload."""

SubscribeTopic: TypeAlias = (
    str
    | tuple[str, SubscribeOptions]
    | tuple[str, int]
    | list[tuple[str, SubscribeOptions]]
    | list[tuple[str, int]]
    | list[tuple[str, SubscribeOptions | int]]
)
"""The shapes ``subscribe()`` accepts as its topic argument.

aiomqtt's alias, plus the shapes paho accepts at run time and aiomqtt's alias left
out: ``("topic", qos)`` and lists that mix options and QoS numbers (MQTT 5)."""

WebSocketHeaders: TypeAlias = (
    dict[str, str] | Callable[[dict[str, str]], dict[str, str]]
)
"""Extra WebSocket handshake headers: a dict, or a function that edits the defaults."""

PahoSocket: TypeAlias = socket.socket | ssl.SSLSocket | Any
"""What paho called a socket (kept for imports; the shim never hands one out)."""

SocketOption: TypeAlias = tuple[int, int, int | bytes] | tuple[int, int, None, int]
"""Arguments of one ``socket.setsockopt()`` call, applied after connecting."""
