"""A drop-in replacement for aiomqtt 2.5.1 that runs on anyio (asyncio and trio).

Change ``import aiomqtt`` to ``from trio_mqttconn import aiomqtt``; the names, the
submodules (``aiomqtt.types``, ``aiomqtt.exceptions``, ``aiomqtt.message``,
``aiomqtt.topic``, ``aiomqtt.client``) and the behaviour are aiomqtt's. See the
migration guide (docs/migrating.rst) for what differs.

``__version__`` is the aiomqtt version whose API this package reproduces;
``trio_mqttconn.__version__`` is the version of trio_mqttconn itself.
"""

from __future__ import annotations

from typing import Final

from .._generated import forget_generated_source as _forget_generated_source
from . import (
    client as client,
    exceptions as exceptions,
    message as message,
    topic as topic,
    types as types,
)
from ._compat import ProtocolVersion, ProxySettings, TLSParameters, Will
from .client import Client, MessagesIterator
from .exceptions import MqttCodeError, MqttConnectError, MqttError, MqttReentrantError
from .message import Message
from .topic import Topic, TopicLike, Wildcard, WildcardLike

_forget_generated_source()  # memory: see trio_mqttconn._generated

__version__: Final[str] = "2.5.1"
__version_tuple__: Final[tuple[int, int, int]] = (2, 5, 1)

__all__ = [
    "Client",
    "Message",
    "MessagesIterator",
    "MqttCodeError",
    "MqttConnectError",
    "MqttError",
    "MqttReentrantError",
    "ProtocolVersion",
    "ProxySettings",
    "TLSParameters",
    "Topic",
    "TopicLike",
    "Wildcard",
    "WildcardLike",
    "Will",
    "__version__",
    "__version_tuple__",
]
