"""trio_mqttconn: an MQTT 3.1.1/5.0 client on structured concurrency.

The public API is what this module exports; everything in ``_``-modules is private.
"""

from __future__ import annotations

import importlib as _importlib
import logging as _logging
from typing import TYPE_CHECKING

from ._client import (
    ClientStatistics as ClientStatistics,
    MqttClient as MqttClient,
    Transport as Transport,
)
from ._enums import (
    PacketType as PacketType,
    PropertyId as PropertyId,
    ProtocolVersion as ProtocolVersion,
    QoS as QoS,
    ReasonCode as ReasonCode,
    RetainHandling as RetainHandling,
)
from ._events import ConnAckInfo as ConnAckInfo
from ._exceptions import (
    ConfigError as ConfigError,
    ConnectError as ConnectError,
    ConnectionLost as ConnectionLost,
    ConnectTimeout as ConnectTimeout,
    InvalidStateError as InvalidStateError,
    MalformedPacketError as MalformedPacketError,
    MqttError as MqttError,
    MqttInternalError as MqttInternalError,
    NotOpenError as NotOpenError,
    PacketTooLargeError as PacketTooLargeError,
    ProtocolError as ProtocolError,
    PublishError as PublishError,
    RequestTimeout as RequestTimeout,
    SessionStoreError as SessionStoreError,
    SubscribeError as SubscribeError,
    UnsubscribeError as UnsubscribeError,
)
from ._generated import forget_generated_source as _forget_generated_source
from ._journal import (
    ChangeKind as ChangeKind,
    SessionChange as SessionChange,
    StoredSession as StoredSession,
)
from ._message import Message as Message
from ._packets import TopicSubscription as TopicSubscription, Will as Will
from ._properties import Properties as Properties
from ._subscription import (
    Listener as Listener,
    Overflow as Overflow,
    Subscription as Subscription,
    SubscriptionStatistics as SubscriptionStatistics,
)
from ._transports import Endpoint as Endpoint, parse_uri as parse_uri
from ._version import __version__ as __version__

if TYPE_CHECKING:
    # Imported when first used (see __getattr__): the pip-services components, the
    # SQLite session store and request/response, which a plain MqttClient user
    # never loads.
    from ._config import ConfigParams as ConfigParams
    from ._connection import (
        IMqttMessageListener as IMqttMessageListener,
        MqttConnection as MqttConnection,
        MqttSubscription as MqttSubscription,
    )
    from ._context import Context as Context
    from ._factories import (
        DefaultMqttFactory as DefaultMqttFactory,
        MqttMessageQueueFactory as MqttMessageQueueFactory,
    )
    from ._queue import (
        QUEUE_CONFIG_KEYS as QUEUE_CONFIG_KEYS,
        IMessageReceiver as IMessageReceiver,
        MessageEnvelope as MessageEnvelope,
        MessageQueueStatistics as MessageQueueStatistics,
        MessagingCapabilities as MessagingCapabilities,
        MqttMessageQueue as MqttMessageQueue,
    )
    from ._references import (
        ConnectionParams as ConnectionParams,
        CredentialParams as CredentialParams,
        Descriptor as Descriptor,
        MemoryCredentialStore as MemoryCredentialStore,
        MemoryDiscovery as MemoryDiscovery,
        References as References,
    )
    from ._resolver import (
        CONFIG_KEYS as CONFIG_KEYS,
        ConfigKey as ConfigKey,
        MqttConnectionResolver as MqttConnectionResolver,
        ResolvedConnection as ResolvedConnection,
    )
    from ._rpc import (
        Request as Request,
        RequestStatistics as RequestStatistics,
        Responder as Responder,
        ResponderStatistics as ResponderStatistics,
    )
    from ._store import (
        MemorySessionStore as MemorySessionStore,
        SessionStore as SessionStore,
        SqliteSessionStore as SqliteSessionStore,
    )

#: Public names whose module is imported when first used: a plain MqttClient user
#: does not pay for the pip-services layer or SQLite (memory and import time).
_LAZY: dict[str, str] = {
    "CONFIG_KEYS": "._resolver",
    "ConfigKey": "._resolver",
    "ConfigParams": "._config",
    "ConnectionParams": "._references",
    "Context": "._context",
    "CredentialParams": "._references",
    "DefaultMqttFactory": "._factories",
    "Descriptor": "._references",
    "IMessageReceiver": "._queue",
    "IMqttMessageListener": "._connection",
    "MemoryCredentialStore": "._references",
    "MemoryDiscovery": "._references",
    "MemorySessionStore": "._store",
    "MessageEnvelope": "._queue",
    "MessageQueueStatistics": "._queue",
    "MessagingCapabilities": "._queue",
    "MqttConnection": "._connection",
    "MqttConnectionResolver": "._resolver",
    "MqttMessageQueue": "._queue",
    "MqttMessageQueueFactory": "._factories",
    "MqttSubscription": "._connection",
    "QUEUE_CONFIG_KEYS": "._queue",
    "References": "._references",
    "Request": "._rpc",
    "RequestStatistics": "._rpc",
    "ResolvedConnection": "._resolver",
    "Responder": "._rpc",
    "ResponderStatistics": "._rpc",
    "SessionStore": "._store",
    "SqliteSessionStore": "._store",
}

# Every eagerly imported class exists now: the source attrs kept for their methods
# goes (memory; see ._generated). Lazily imported modules do the same below.
_forget_generated_source()

# A library logs but never configures logging (the stdlib's advice).
_logging.getLogger("trio_mqttconn").addHandler(_logging.NullHandler())


def _own(value: object) -> None:
    # Public names report the package as their module (trio does the same), so reprs,
    # docs and pickles do not leak private module names.
    if getattr(value, "__module__", "").startswith("trio_mqttconn._"):
        try:
            value.__module__ = __name__
        except (AttributeError, TypeError):  # pragma: no cover
            pass


for _name, _value in list(globals().items()):
    if not _name.startswith("_"):
        _own(_value)
del _name, _value


if not TYPE_CHECKING:
    # Hidden from type checkers: they see the imports above, so a misspelt name
    # is still an error for them.

    def __getattr__(name: str) -> object:
        """Import a public name of the pip-services layer or the store when first used."""
        module = _LAZY.get(name)
        if module is None:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        value = getattr(_importlib.import_module(module, __name__), name)
        _forget_generated_source()
        _own(value)
        globals()[name] = value
        return value


def __dir__() -> list[str]:
    """The module's names, the ones imported when first used included."""
    return sorted(set(globals()) | set(_LAZY))


del TYPE_CHECKING
