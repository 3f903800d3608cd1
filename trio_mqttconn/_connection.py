"""MqttConnection: the pip-services component, a thin facade over `MqttClient`.

Theory of operation
-------------------
A pip-services component is configured (`MqttConnection.configure`), given its
collaborators (`MqttConnection.set_references`: loggers, counters, discovery,
credential stores), then opened and closed by its container. Here ``open`` builds one
`MqttClient` from the resolved configuration and starts it in a task group the
application provides (``bind(nursery)``, ``MqttConnection(nursery=...)`` or
``async with connection:``), so the engine's tasks (supervisor, reader, keepalive, one
dispatcher per listener) are children of that nursery and never outlive it.

The engine runs inside one wrapper task. Before the first CONNACK, a failure is
handed back to ``open``, which raises it as ``ConnectError`` code ``CONNECT_FAILED``.
After it, the engine keeps itself connected when ``options.retry_connect`` is true
(reconnecting and re-subscribing); when it stops for good (the connection dropped and
``retry_connect`` is false, or the broker refused a reconnect), the wrapper logs and
counts that, and the component stays *open but disconnected*: ``publish`` and
``subscribe`` raise ``ConnectError`` until ``open`` is called again, which starts a
new engine and subscribes every registration again.

Each ``subscribe(topic, options, listener)`` is one engine subscription with a
listener, hence its own bounded channel and dispatch task (``options`` may set its
``buffer``, ``overflow`` and ``manual_ack``): the engine's reader never waits for a
listener, a slow listener delays only its own messages (until the QoS 1/2 messages
it holds unacknowledged fill the connection's Receive Maximum, which every
subscription shares), and one that raises is logged ("Failed to process the
message") and counted while the others keep running. Messages are routed by the
engine's subscription tree, so wildcards follow MQTT rules (upstream compared topic
strings, which made wildcard subscriptions deliver nothing).

``close`` stops the engine and waits for its tasks, except when a listener calls it:
its dispatch task is one of those tasks and cannot wait for itself, so the stop
finishes in the nursery (a context variable tells which connection, if any, the
current task dispatches for).
"""

from __future__ import annotations

import functools
import inspect
import logging
import os
import socket
from contextvars import ContextVar
from typing import TYPE_CHECKING, Final, Protocol, TypeAlias, final, runtime_checkable

import anyio
import anyio.abc
import anyio.lowlevel
import attrs

from ._client import MqttClient
from ._config import ConfigParams, to_boolean
from ._context import as_context
from ._enums import QoS, RetainHandling
from ._exceptions import (
    ConnectError,
    InvalidStateError,
    MqttError,
    NotOpenError,
)
from ._groups import OwnsTaskGroup
from ._references import Descriptor, ReferencesLike, find_references
from ._resolver import (
    ConnectionOptions,
    MqttConnectionResolver,
    parse_connection_options,
    warn_unknown_options,
)

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Mapping

    import trio

    from trio_mqttconn import Properties, Will

    from ._message import Message
    from ._subscription import Overflow, Subscription, SubscriptionStatistics

__all__ = [
    "COUNTER_CONNECTS",
    "COUNTER_CONNECT_TIME",
    "COUNTER_ERRORS",
    "COUNTER_PUBLISHED",
    "COUNTER_RECEIVED",
    "COUNTER_RECONNECTS",
    "IMqttMessageListener",
    "MqttConnection",
    "MqttSubscription",
]

COUNTER_CONNECTS: Final = "mqtt.connects"
"""Incremented for every successful connection (first one and reconnects)."""
COUNTER_RECONNECTS: Final = "mqtt.reconnects"
"""Incremented for every connection the engine re-established after a drop."""
COUNTER_PUBLISHED: Final = "mqtt.published"
"""Incremented for every message `MqttConnection.publish` handed to the broker."""
COUNTER_RECEIVED: Final = "mqtt.received"
"""Incremented for every message handed to a listener."""
COUNTER_ERRORS: Final = "mqtt.errors"
"""Incremented for failed opens, listeners that raised, and a lost connection."""
COUNTER_CONNECT_TIME: Final = "mqtt.connect_time"
"""Timing (milliseconds) of each successful `MqttConnection.open`."""

_NOT_OPEN: Final = "Connection was not opened"
_CONNECT_FAILED: Final = "Connection to MQTT broker failed"
_LOGGER: Final = logging.getLogger("trio_mqttconn.connection")
#: The connection whose listener the current task is running, if any.
_DISPATCHING: ContextVar[MqttConnection | None] = ContextVar(
    "trio_mqttconn_dispatching", default=None
)


@runtime_checkable
class IMqttMessageListener(Protocol):
    """What `MqttConnection.subscribe` calls for each message (pip-services shape).

    ``on_message`` may be a plain or an ``async`` method; it runs in the dispatch task
    of its subscription, one message at a time, in order.
    """

    def on_message(
        self, topic: str, data: bytes, packet: Message
    ) -> Awaitable[None] | None:
        """Handle one message.

        Args:
            topic: the topic name the message was published to.
            data: the payload.
            packet: the whole message (QoS, retain flag, MQTT 5 properties ...).
        """
        ...


#: Where a component runs its tasks: a trio nursery or an anyio task group.
_TaskGroup: TypeAlias = "trio.Nursery | anyio.abc.TaskGroup"


# -- references: loggers and counters, duck-typed ---------------------------------


def _takes_error(method: Callable[..., object]) -> bool:
    """Whether a pip-services ``error`` method takes ``(context, error, message)``."""
    try:
        parameters = inspect.signature(method).parameters.values()
    except (TypeError, ValueError):
        return True
    positional = [
        p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    return len(positional) >= 3 or any(p.name == "error" for p in parameters)


@attrs.define(eq=False)
class _Log:
    """Writes to every referenced logger, or to ``trio_mqttconn.connection``.

    A referenced logger is a stdlib `logging.Logger` (or adapter), or anything with
    pip-services methods ``debug/info/warn(context, message)`` and
    ``error(context, error, message)``. Messages are formatted here (``%``-style),
    so pip-services loggers get no arguments to format again, and their context is
    always one they can read (`as_context`: a plain trace id is wrapped the way
    upstream's ``Context.fromTraceId`` does). A referenced logger that raises is
    reported on ``trio_mqttconn.connection``; it never fails the operation that
    logged.
    """

    fallback: logging.Logger | logging.LoggerAdapter[logging.Logger] = _LOGGER
    targets: list[object] = attrs.Factory(list)

    def set_references(self, references: ReferencesLike | None) -> None:
        self.targets = find_references(
            references, Descriptor("*", "logger", "*", "*", "*")
        )

    def debug(self, context: object, message: str, *args: object) -> None:
        self._write(logging.DEBUG, context, None, message, args)

    def info(self, context: object, message: str, *args: object) -> None:
        self._write(logging.INFO, context, None, message, args)

    def event(self, context: object, message: str, *args: object) -> None:
        """INFO for referenced loggers; DEBUG on our own logger.

        For what the engine already logs at INFO on ``trio_mqttconn.client``
        (connects, reconnects, a lost link): one INFO record per event.
        """
        self._write(
            logging.INFO, context, None, message, args, fallback_level=logging.DEBUG
        )

    def warn(self, context: object, message: str, *args: object) -> None:
        self._write(logging.WARNING, context, None, message, args)

    def error(
        self, context: object, error: BaseException | None, message: str, *args: object
    ) -> None:
        self._write(logging.ERROR, context, error, message, args)

    def _write(
        self,
        level: int,
        context: object,
        error: BaseException | None,
        message: str,
        args: tuple[object, ...],
        *,
        fallback_level: int | None = None,
    ) -> None:
        if not self.targets:
            self.fallback.log(fallback_level or level, message, *args, exc_info=error)
            return
        for target in self.targets:
            if isinstance(target, logging.Logger | logging.LoggerAdapter):
                target.log(level, message, *args, exc_info=error)
                continue
            text = message % args if args else message
            method = getattr(target, _LEVEL_METHODS.get(level, "error"), None)
            if not callable(method):
                continue
            pip_context = as_context(context)
            try:
                if level == logging.ERROR and _takes_error(method):
                    method(pip_context, error, text)
                else:
                    method(pip_context, text)
            except Exception as exc:
                _LOGGER.warning(
                    "the referenced logger %s failed: %r", type(target).__name__, exc
                )


_LEVEL_METHODS: Final = {
    logging.DEBUG: "debug",
    logging.INFO: "info",
    logging.WARNING: "warn",
}


@attrs.define(eq=False)
class _Counters:
    """Feeds every referenced counters component (pip-services ``ICounters`` shape)."""

    targets: list[object] = attrs.Factory(list)

    def set_references(self, references: ReferencesLike | None) -> None:
        self.targets = find_references(
            references, Descriptor("*", "counters", "*", "*", "*")
        )

    def increment(self, name: str, value: int = 1) -> None:
        for target in self.targets:
            increment = getattr(target, "increment", None)
            if callable(increment):
                increment(name, value)
                continue
            increment_one = getattr(target, "increment_one", None)
            if callable(increment_one):
                for _ in range(value):
                    increment_one(name)

    def timing(self, name: str, elapsed_ms: float) -> None:
        for target in self.targets:
            method = getattr(target, "end_timing", None)
            if not callable(method):
                method = getattr(target, "timing", None)
            if callable(method):
                method(name, elapsed_ms)


# -- options of publish and subscribe -------------------------------------------


def _qos(value: object) -> QoS:
    text = str(int(value)) if isinstance(value, QoS) else str(value).strip()
    if isinstance(value, bool) or text not in ("0", "1", "2"):
        raise ValueError(f"qos must be 0, 1 or 2, not {value!r}")
    return QoS(int(text))


def _flag(key: str, value: object) -> bool:
    if isinstance(value, bool):
        return value
    flag = to_boolean(str(value)) if isinstance(value, str | int) else None
    if flag is None:
        raise ValueError(f"{key} must be true or false, not {value!r}")
    return flag


def _properties(value: object) -> Properties | None:
    from . import Properties  # the package: facades do not import the core

    if value is None or isinstance(value, Properties):
        return value
    raise TypeError(
        f"properties must be a trio_mqttconn.Properties, not {type(value).__name__}"
    )


def _check_keys(
    what: str, options: Mapping[str, object], known: frozenset[str]
) -> None:
    unknown = sorted(set(options) - known)
    if unknown:
        raise ValueError(
            f"unknown {what} option {unknown[0]!r}: use {', '.join(sorted(known))}"
        )


_PUBLISH_KEYS: Final = frozenset({"qos", "retain", "dup", "properties"})
_SUBSCRIBE_KEYS: Final = frozenset(
    {
        "qos",
        "no_local",
        "retain_as_published",
        "retain_handling",
        "nl",
        "rap",
        "rh",
        "properties",
        "buffer",
        "overflow",
        "manual_ack",
    }
)
#: mqtt.js names of the MQTT 5 subscription options, which upstream passes through.
_SUBSCRIBE_ALIASES: Final = {
    "nl": "no_local",
    "rap": "retain_as_published",
    "rh": "retain_handling",
}


def _subscribe_option(
    options: Mapping[str, object], key: str, default: object
) -> object:
    alias = next(short for short, long in _SUBSCRIBE_ALIASES.items() if long == key)
    if key in options and alias in options and options[key] != options[alias]:
        raise ValueError(
            f"subscribe options {key!r} and {alias!r} disagree: give only one of them"
        )
    return options.get(key, options.get(alias, default))


@attrs.frozen
class _PublishOptions:
    qos: QoS
    retain: bool
    properties: Properties | None

    @classmethod
    def parse(cls, options: Mapping[str, object] | None) -> _PublishOptions:
        options = options or {}
        _check_keys("publish", options, _PUBLISH_KEYS)
        # "dup" (mqtt.js) is accepted and ignored: the engine sets DUP itself when it
        # sends a message again [MQTT-3.3.1-1], and never on a first send.
        _flag("dup", options.get("dup", False))
        return cls(
            qos=_qos(options.get("qos", 0)),
            retain=_flag("retain", options.get("retain", False)),
            properties=_properties(options.get("properties")),
        )


@attrs.frozen
class _SubscribeOptions:
    qos: QoS
    no_local: bool
    retain_as_published: bool
    retain_handling: RetainHandling
    properties: Properties | None
    buffer: int = 1000
    overflow: Overflow = "wait"
    manual_ack: bool = False

    @classmethod
    def parse(cls, options: Mapping[str, object] | None) -> _SubscribeOptions:
        options = options or {}
        _check_keys("subscribe", options, _SUBSCRIBE_KEYS)
        buffer = options.get("buffer", 1000)
        text = str(buffer).strip()
        if isinstance(buffer, bool) or not text.isdecimal() or int(text) < 1:
            raise ValueError(
                f"buffer must be a whole number of messages, at least 1, not {buffer!r}"
            )
        overflow = str(options.get("overflow", "wait")).strip().lower()
        if overflow not in ("wait", "drop_oldest"):
            raise ValueError(
                f"overflow must be 'wait' or 'drop_oldest', not "
                f"{options.get('overflow')!r}"
            )
        given_handling = _subscribe_option(options, "retain_handling", 0)
        handling = str(given_handling).strip()
        if isinstance(given_handling, bool) or handling not in ("0", "1", "2"):
            raise ValueError(
                f"retain_handling must be 0, 1 or 2, not {given_handling!r}"
            )
        return cls(
            qos=_qos(options.get("qos", 0)),
            no_local=_flag("no_local", _subscribe_option(options, "no_local", False)),
            retain_as_published=_flag(
                "retain_as_published",
                _subscribe_option(options, "retain_as_published", False),
            ),
            retain_handling=RetainHandling(int(handling)),
            properties=_properties(options.get("properties")),
            buffer=int(text),
            overflow="wait" if overflow == "wait" else "drop_oldest",
            manual_ack=_flag("manual_ack", options.get("manual_ack", False)),
        )


# -- registrations and engine runs ------------------------------------------------


@final
@attrs.define(eq=False)
class MqttSubscription:
    """One registration made by `MqttConnection.subscribe`.

    Registrations are compared by identity: two ``subscribe`` calls with the same
    topic and listener make two registrations, and each message is delivered twice.
    """

    topic: str
    """The topic (or topic filter) subscribed to, as given."""
    filter: bool
    """True when ``topic`` has no wildcard (``+``, ``#``). Informational: messages are
    always matched by MQTT rules, wildcards included."""
    options: Mapping[str, object]
    """The subscription options, as given (``qos``, MQTT 5 options ...)."""
    listener: (
        IMqttMessageListener | Callable[[str, bytes, Message], Awaitable[None] | None]
    )
    """Who receives the messages."""
    _parsed: _SubscribeOptions | None = attrs.field(
        default=None, init=False, repr=False
    )
    _handle: Subscription | None = attrs.field(default=None, init=False, repr=False)
    _handler: Callable[[str, bytes, Message], Awaitable[None] | None] = attrs.field(
        init=False, repr=False
    )

    def __attrs_post_init__(self) -> None:
        listener = self.listener
        if isinstance(listener, IMqttMessageListener):
            self._handler = listener.on_message
        else:
            self._handler = listener

    def statistics(self) -> SubscriptionStatistics | None:
        """Counters of the engine subscription, or None while it is not subscribed.

        ``queued`` counts messages received but not yet handed to the listener.
        """
        return None if self._handle is None else self._handle.statistics()


@attrs.define(eq=False)
class _StartedSignal:
    """Relays ``task_status.started()`` and notes that it happened."""

    run: _Run
    target: anyio.abc.TaskStatus[None]

    def started(self, value: None = None) -> None:
        self.run.started = True
        self.target.started()


@attrs.define(eq=False)
class _Run:
    """One engine, from ``open`` to ``close`` (or until it stops by itself)."""

    client: MqttClient
    done: anyio.Event = attrs.Factory(anyio.Event)
    scope: anyio.CancelScope = attrs.Factory(anyio.CancelScope)
    started: bool = False
    #: Why connecting failed (before start) or why the engine stopped (after).
    error: MqttError | None = None
    #: Connections already counted and logged.
    connects_seen: int = 0

    @property
    def alive(self) -> bool:
        return self.started and self.error is None and not self.done.is_set()


def _default_client_id() -> str:
    # The upstream ports use the bare host name, so two connections on one host take
    # over each other's session (the broker drops the older one).
    return f"{socket.gethostname()}-{os.urandom(4).hex()}"


@final
@attrs.define(eq=False)
class MqttConnection(OwnsTaskGroup):
    """Connection to an MQTT broker: the pip-services component, on structured concurrency.

    Configure it, give it references, bind it to a nursery, then open it::

        connection = MqttConnection()
        connection.configure(ConfigParams.from_tuples(
            "connection.uri", "mqtt://localhost:1883",
            "options.keepalive_timeout", 10000))
        async with trio.open_nursery() as nursery:
            connection.bind(nursery)
            await connection.open(None)
            await connection.subscribe("orders/+", {"qos": 1}, listener)
            await connection.publish("orders/7", "created", {"qos": 1})
            await connection.close(None)

    ``async with connection:`` does the same with a task group of its own: it opens
    on enter and closes on exit (both are checkpoints).

    Configuration keys are listed in `CONFIG_KEYS` (and on the documentation page
    generated from it). References (all optional): ``*:logger:*:*:1.0`` (a stdlib
    `logging.Logger` or a pip-services logger), ``*:counters:*:*:1.0``
    (pip-services counters: ``increment`` and ``end_timing``),
    ``*:discovery:*:*:1.0`` and ``*:credential-store:*:*:1.0``.

    Args:
        nursery: where the engine's tasks run (also settable with `bind`).
    """

    _nursery: trio.Nursery | anyio.abc.TaskGroup | None = attrs.field(
        default=None, kw_only=True, alias="nursery"
    )
    _config: ConfigParams = attrs.field(init=False, factory=ConfigParams, repr=False)
    _options: ConnectionOptions = attrs.field(
        init=False, factory=lambda: parse_connection_options({}), repr=False
    )
    _resolver: MqttConnectionResolver = attrs.field(
        init=False, factory=MqttConnectionResolver, repr=False
    )
    _log: _Log = attrs.field(init=False, factory=_Log, repr=False)
    _counters: _Counters = attrs.field(init=False, factory=_Counters, repr=False)
    _client_id: str | None = attrs.field(init=False, default=None)
    #: False for a queue's own connection: the queue warns about unknown keys.
    _check_options: bool = attrs.field(init=False, default=True, repr=False)
    _opened: bool = attrs.field(init=False, default=False)
    _run: _Run | None = attrs.field(init=False, default=None, repr=False)
    _subscriptions: list[MqttSubscription] = attrs.field(
        init=False, factory=list, repr=False
    )
    _lock: anyio.Lock | None = attrs.field(init=False, default=None, repr=False)
    _own_group: anyio.abc.TaskGroup | None = attrs.field(
        init=False, default=None, repr=False
    )
    _outer_nursery: _TaskGroup | None = attrs.field(
        init=False, default=None, repr=False
    )

    # -- configuration -----------------------------------------------------------

    def configure(self, config: Mapping[str, object]) -> None:
        """Read the configuration (our `ConfigParams` or any mapping).

        Takes effect on the next `open`.

        Args:
            config: ``client_id``, ``connection(s).*``, ``credential(s).*`` and
                ``options.*`` keys (see `CONFIG_KEYS`).

        An unknown ``options.*`` key (a typo) is logged as a warning on
        ``trio_mqttconn.connection``, with the closest known key.

        Raises:
            ConfigError: an ``options.*`` or ``connection(s).*`` value is invalid;
                the message names the key. What discovery services and credential
                stores return is checked by `open`.
        """
        config = ConfigParams.of(config)
        options = parse_connection_options(config)
        self._resolver.configure(config)
        if self._check_options:
            warn_unknown_options(config)
        self._options = options
        self._config = config

    def set_references(self, references: ReferencesLike | None) -> None:
        """Find loggers, counters, discovery services and credential stores.

        Args:
            references: our `References`, a pip-services ``IReferences``, or
                anything with ``get_optional(locator)``.
        """
        self._log.set_references(references)
        self._counters.set_references(references)
        self._resolver.set_references(references)

    def bind(self, nursery: trio.Nursery | anyio.abc.TaskGroup) -> None:
        """Run the engine's tasks in ``nursery`` from the next `open` on.

        Args:
            nursery: a trio nursery or an anyio task group that outlives the
                connection.

        Raises:
            InvalidStateError: the connection is open.
        """
        if self._opened:
            raise InvalidStateError(
                "cannot bind a nursery while the connection is open: close it first"
            )
        self._nursery = nursery

    # -- state -------------------------------------------------------------------

    def is_open(self) -> bool:
        """Whether `open` succeeded and `close` has not been called since."""
        return self._opened

    @property
    def is_connected(self) -> bool:
        """Whether the link to the broker is up right now (it may be reconnecting).

        A property, as on `MqttClient` (upstream has no such member; `is_open` is
        the pip-services method).
        """
        run = self._run
        return run is not None and run.client.is_connected

    def check_open(self) -> None:
        """Raise unless the connection is open.

        Raises:
            NotOpenError: code ``NOT_OPEN``, "Connection was not opened".
        """
        if not self._opened:
            raise NotOpenError(_NOT_OPEN, code="NOT_OPEN")

    def get_connection(self) -> MqttClient | None:
        """The underlying engine while open, else None."""
        return None if self._run is None else self._run.client

    async def read_queue_names(self) -> list[str]:
        """Return ``[]``: MQTT has no queues to list (kept for pip-services)."""
        await anyio.lowlevel.checkpoint()
        return []

    async def create_queue(self, name: str) -> None:
        """Do nothing: MQTT topics need no creation (kept for pip-services).

        Args:
            name: the queue name, ignored.
        """
        del name
        await anyio.lowlevel.checkpoint()

    async def delete_queue(self, name: str) -> None:
        """Do nothing: MQTT topics need no deletion (kept for pip-services).

        Args:
            name: the queue name, ignored.
        """
        del name
        await anyio.lowlevel.checkpoint()

    # -- open and close ------------------------------------------------------------

    def _get_lock(self) -> anyio.Lock:
        if self._lock is None:
            self._lock = anyio.Lock()
        return self._lock

    async def open(self, context: object = None) -> None:
        """Connect; return once the broker accepted the connection (CONNACK).

        Idempotent while connected. When the component is open but the engine
        stopped (``options.retry_connect`` false and the connection dropped), a new
        connection is made and every registration subscribed again.

        Each broker is given ``options.connect_timeout``; several brokers
        (``connections.N.*`` or a comma-separated URI) are tried in order.

        Args:
            context: pip-services context or trace id, passed to loggers,
                discovery services and credential stores.

        Raises:
            InvalidStateError: no nursery: use `bind`, ``nursery=`` or
                ``async with``.
            ConfigError: the connection or credential configuration is invalid.
            ConnectError: code ``CONNECT_FAILED``, "Connection to MQTT broker failed:
                <why>", the engine's error chained (refused, unreachable, timeout,
                CONNACK reason code in ``reason_code``).
        """
        async with self._get_lock():
            run = self._run
            if run is not None and run.alive:
                return
            group = self._nursery
            if group is None:
                raise InvalidStateError(
                    "MqttConnection.open needs a nursery for its tasks: call "
                    "bind(nursery), pass nursery=..., or use `async with connection:`"
                )
            options = self._options
            resolved = await self._resolver.resolve(context)
            if self._client_id is None:
                self._client_id = options.client_id or _default_client_id()
            runs: list[_Run] = []
            client = MqttClient(
                resolved.uris,
                client_id=self._client_id,
                protocol=options.protocol_version,
                username=resolved.username,
                password=resolved.password,
                keepalive=options.keepalive,
                clean_start=options.clean_start,
                session_expiry=options.session_expiry,
                will=self._will(options),
                ssl_context=options.create_ssl_context(),
                tls_insecure=not options.ssl_verify,
                connect_timeout=options.connect_timeout,
                reconnect=options.retry_connect,
                reconnect_delay=options.reconnect_timeout,
                max_reconnect_delay=max(60.0, options.reconnect_timeout),
                on_connect=lambda again: self._engine_connected(runs, again),
                on_connection_lost=lambda exc: self._log.event(
                    None, "Lost the connection to MQTT broker: %s", exc
                ),
            )
            where = ", ".join(resolved.uris)
            new = _Run(client)
            runs.append(new)
            began = anyio.current_time()
            await group.start(
                self._run_engine, new, name=f"mqtt-connection[{self._client_id}]"
            )
            if new.error is not None:
                # Raised, not logged as well: one record per event.
                self._counters.increment(COUNTER_ERRORS)
                raise ConnectError(
                    f"{_CONNECT_FAILED}: {new.error}",
                    reason_code=getattr(new.error, "reason_code", None),
                    code="CONNECT_FAILED",
                ) from new.error
            try:
                for sub in self._subscriptions:
                    await self._attach(client, sub)
            except BaseException:
                await self._stop(new)
                raise
            self._run = new
            self._opened = True
            elapsed_ms = (anyio.current_time() - began) * 1000
            self._counters.timing(COUNTER_CONNECT_TIME, elapsed_ms)
            new.connects_seen = client.statistics().connects
            self._counters.increment(COUNTER_CONNECTS, new.connects_seen)
            self._log.event(
                context,
                "Connected to MQTT broker at %s as %s",
                where,
                client.client_id,
            )

    @staticmethod
    def _will(options: ConnectionOptions) -> Will | None:
        if options.will_topic is None:
            return None
        from . import Will  # the package: facades do not import the core

        return Will(
            topic=options.will_topic,
            payload=options.will_payload,
            qos=options.will_qos,
            retain=options.will_retain,
        )

    async def _run_engine(
        self,
        run: _Run,
        *,
        task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        """The wrapper task: runs the engine, catches how it stops."""
        try:
            with run.scope:
                try:
                    await run.client.run(task_status=_StartedSignal(run, task_status))
                except MqttError as exc:
                    run.error = exc
                    if not run.started:
                        # open() raises it; trio and anyio want started() first.
                        task_status.started()
                        return
                    self._engine_stopped(run, exc)
        finally:
            run.done.set()

    def _engine_stopped(self, run: _Run, exc: MqttError) -> None:
        if self._run is not run:  # pragma: no cover - closed at the same moment
            return
        self._sync_link(run)
        self._counters.increment(COUNTER_ERRORS)
        self._log.error(
            None,
            exc,
            "Lost the connection to MQTT broker; call open() to reconnect",
        )

    def _engine_connected(self, runs: list[_Run], again: bool) -> None:
        # Called by the engine's supervisor after each CONNACK: count reconnects
        # when they happen.
        if again and runs:
            self._sync_link(runs[0])

    def _sync_link(self, run: _Run) -> None:
        """Count and log the reconnections the engine made since last time."""
        connects = run.client.statistics().connects
        new = connects - run.connects_seen
        if new > 0:
            run.connects_seen = connects
            self._counters.increment(COUNTER_CONNECTS, new)
            self._counters.increment(COUNTER_RECONNECTS, new)
            self._log.event(None, "Reconnected to MQTT broker (%d times)", new)

    async def close(self, context: object = None) -> None:
        """Disconnect, stop every task of the connection and wait for them.

        Idempotent; never raises. Sends DISCONNECT (bounded by the engine's
        disconnect timeout and shielded from cancellation), forgets every
        registration; `get_connection` returns None afterwards.

        Args:
            context: pip-services context or trace id, passed to loggers.
        """
        async with self._get_lock():
            run = self._run
            self._subscriptions = []
            if run is None:
                self._opened = False
                await anyio.lowlevel.checkpoint()
                return
            self._sync_link(run)
            self._run = None
            self._opened = False
            if _DISPATCHING.get() is self and self._nursery is not None:
                # One of our listeners closes us: its dispatch task is one of the
                # tasks to stop, and cannot wait for itself. Stop in the nursery.
                self._nursery.start_soon(self._stop, run, context)
                await anyio.lowlevel.checkpoint()
                return
            with anyio.CancelScope(shield=True):
                await self._stop(run, context)

    async def _stop(self, run: _Run, context: object = None) -> None:
        with anyio.CancelScope(shield=True):
            try:
                await run.client.aclose()
            except Exception as exc:  # pragma: no cover - aclose does not raise
                self._log.error(context, exc, "Failed to close the MQTT connection")
            run.scope.cancel()
            await run.done.wait()
        self._log.debug(context, "Disconnected from MQTT broker")

    # -- messaging --------------------------------------------------------------------

    def _live_run(self) -> _Run:
        run = self._run
        if run is None:  # pragma: no cover - check_open() came first
            raise NotOpenError(_NOT_OPEN, code="NOT_OPEN")
        if not run.alive:
            raise self._stopped_error(run)
        return run

    def _stopped_error(self, run: _Run) -> MqttError:
        if self._run is not run or not self._opened:
            return NotOpenError(_NOT_OPEN, code="NOT_OPEN")
        return ConnectError(
            f"{_CONNECT_FAILED}: {run.error}; call open() to reconnect",
            code="CONNECT_FAILED",
        )

    async def _stopped(self, run: _Run) -> MqttError:
        """The error for an operation the engine failed with NotOpenError."""
        if self._run is run and self._opened:
            # The engine stopped by itself: its wrapper task records why at once.
            await run.done.wait()
        return self._stopped_error(run)

    async def publish(
        self,
        topic: str,
        data: str | bytes,
        options: Mapping[str, object] | None = None,
    ) -> None:
        """Publish a message; return when the QoS-appropriate ack arrived.

        While the engine reconnects the call waits for the connection; bound it with
        your own timeout. If cancelled, a QoS 1/2 message may still be delivered.

        Args:
            topic: the topic name (no wildcards).
            data: the payload; text is sent as UTF-8.
            options: ``qos`` (0, 1 or 2, default 0), ``retain`` (default false),
                ``properties`` (MQTT 5 `Properties`).

        Raises:
            NotOpenError: the connection is not open (code ``NOT_OPEN``).
            ConnectError: the engine stopped (``options.retry_connect`` is false
                and the connection dropped): call `open` again.
            PublishError: the broker refused the message.
            ValueError: an invalid topic or option.
        """
        self.check_open()
        parsed = _PublishOptions.parse(options)
        run = self._live_run()
        try:
            await run.client.publish(
                topic,
                data,
                qos=parsed.qos,
                retain=parsed.retain,
                properties=parsed.properties,
            )
        except NotOpenError as exc:
            raise await self._stopped(run) from exc
        self._counters.increment(COUNTER_PUBLISHED)
        self._sync_link(run)

    async def subscribe(
        self,
        topic: str,
        options: Mapping[str, object] | None,
        listener: IMqttMessageListener
        | Callable[[str, bytes, Message], Awaitable[None] | None],
    ) -> None:
        """Subscribe ``listener`` to ``topic``; return once the broker granted it.

        The listener gets ``(topic, data, packet)``: the topic name, the payload as
        bytes and the whole `Message`. Every call is an engine subscription of its
        own, with its own bounded channel and dispatch task: the connection's reader
        never waits for a listener, and a slow listener delays only its own
        messages (until its unacknowledged QoS 1/2 messages fill the connection's
        Receive Maximum, see the flow control page). If it raises, the error is
        logged ("Failed to process the message") and counted, a ``manual_ack``
        message is acknowledged, and the next message is delivered as usual.
        Calling ``subscribe`` twice with the same topic and listener delivers every
        message twice.

        Args:
            topic: a topic name or filter (``+`` and ``#`` wildcards, ``$share/...``).
            options: ``qos`` (default 0), the MQTT 5 options ``no_local``,
                ``retain_as_published``, ``retain_handling`` (0, 1, 2) and
                ``properties`` (``nl``, ``rap``, ``rh`` as mqtt.js names them), and
                the engine's flow control: ``buffer`` (messages the channel holds,
                default 1000), ``overflow`` (``"wait"``, the default: lossless,
                QoS 1/2 acknowledgements withheld while the channel is full; or
                ``"drop_oldest"``) and ``manual_ack`` (true: a QoS 1/2 message is
                acknowledged only when the listener calls ``packet.ack()``); None
                for the defaults.
            listener: an `IMqttMessageListener` or a callable ``(topic, data,
                packet)``, plain or ``async``.

        Raises:
            NotOpenError: the connection is not open (code ``NOT_OPEN``).
            ConnectError: the engine stopped: call `open` again.
            SubscribeError: the broker refused the subscription.
            ValueError: an invalid topic filter or option.
            TypeError: ``listener`` is neither callable nor has ``on_message``.
        """
        self.check_open()
        parsed = _SubscribeOptions.parse(options)
        on_message = getattr(listener, "on_message", None)
        if not callable(on_message) and not callable(listener):
            raise TypeError(
                "listener must have an on_message(topic, data, packet) method or be "
                f"callable, not {type(listener).__name__}"
            )
        run = self._live_run()
        sub = MqttSubscription(
            topic, "+" not in topic and "#" not in topic, dict(options or {}), listener
        )
        sub._parsed = parsed
        try:
            await self._attach(run.client, sub)
        except NotOpenError as exc:
            raise await self._stopped(run) from exc
        if self._run is not run:  # pragma: no cover - needs close() between
            # SUBACK and this task resuming: nothing to keep.
            if sub._handle is not None:
                await sub._handle.unsubscribe()
            raise NotOpenError(_NOT_OPEN, code="NOT_OPEN")
        self._subscriptions.append(sub)
        self._sync_link(run)

    async def _attach(self, client: MqttClient, sub: MqttSubscription) -> None:
        parsed = sub._parsed
        assert parsed is not None
        sub._handle = await client.subscribe(
            sub.topic,
            qos=parsed.qos,
            no_local=parsed.no_local,
            retain_as_published=parsed.retain_as_published,
            retain_handling=parsed.retain_handling,
            properties=parsed.properties,
            buffer=parsed.buffer,
            overflow=parsed.overflow,
            manual_ack=parsed.manual_ack,
            listener=functools.partial(self._deliver, sub),
        )

    async def _deliver(self, sub: MqttSubscription, message: Message) -> None:
        """Call one listener for one message; a failure is logged, never raised."""
        token = _DISPATCHING.set(self)
        try:
            self._counters.increment(COUNTER_RECEIVED)
            result = sub._handler(message.topic, message.payload, message)
            if inspect.isawaitable(result):
                await result
        except Exception as exc:
            self._counters.increment(COUNTER_ERRORS)
            self._log.error(None, exc, "Failed to process the message")
            # With manual_ack, an unacknowledged message would hold back every
            # later acknowledgement on the connection (they go out in arrival
            # order, [MQTT-4.6.0-2]): the failure is logged, the message let go.
            message.ack()
        finally:
            _DISPATCHING.reset(token)

    async def unsubscribe(
        self,
        topic: str,
        listener: IMqttMessageListener
        | Callable[[str, bytes, Message], Awaitable[None] | None],
    ) -> None:
        """Remove the first registration of ``listener`` for ``topic``.

        UNSUBSCRIBE is sent only when no registration for that topic remains and
        the link is up. A no-op when nothing matches or the connection is closed.

        Args:
            topic: the topic given to `subscribe`.
            listener: the listener given to `subscribe` (compared with ``==``).

        Raises:
            UnsubscribeError: the broker refused (MQTT 5 failure reason code).
        """
        sub = next(
            (
                sub
                for sub in self._subscriptions
                if sub.topic == topic and sub.listener == listener
            ),
            None,
        )
        if sub is None:
            await anyio.lowlevel.checkpoint()
            return
        self._subscriptions.remove(sub)
        handle, sub._handle = sub._handle, None
        if handle is None:  # pragma: no cover - registrations are always attached
            await anyio.lowlevel.checkpoint()
            return
        try:
            await handle.unsubscribe()
        except NotOpenError:  # pragma: no cover - the engine stopped meanwhile
            pass
