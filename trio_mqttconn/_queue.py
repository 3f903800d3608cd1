"""MqttMessageQueue: the pip-services message queue over MQTT.

Theory of operation
-------------------
A queue is one topic on an `MqttConnection`: its own (a *local* connection, made
from the queue's configuration and references) or one shared by several queues (the
``*:connection:mqtt:*:1.0`` reference). ``send`` publishes to the topic; the queue
subscribes to the same topic **once** (on `MqttMessageQueue.open` when
``options.autosubscribe`` is true, else on the first receive, peek or listen) and is
itself the `IMqttMessageListener` of that subscription. Concurrent first calls wait
for one subscription (a lock), and a subscription that completes after `close`
is removed at once. By default one rule picks the topic for both directions: the
``topic`` key when set, else the queue name. The upstream ports publish to the
*name* and subscribe to ``topic``; ``options.topic_rule=upstream`` does the same,
for queues that must talk to them when the two differ.

The queue's subscription is an engine subscription of its own, whose dispatch task
calls `MqttMessageQueue.on_message`. That never waits: it puts the message in the
queue's buffer, in arrival order, and returns. So neither the connection's reader nor another queue's subscription ever
waits for this queue's application. `MqttMessageQueue.receive` takes messages from
the buffer, and `MqttMessageQueue.listen` runs a loop in the caller's task (or
`begin_listen`'s) that hands them to the receiver one at a time: a receiver that
sends on the same connection with QoS 1 waits for its PUBACK, which the reader
reads whatever the queues do.

Acknowledgement (``options.acknowledge=receive``, the default): with QoS 1 or 2 the
subscription acknowledges manually (``manual_ack``), and the queue acknowledges a
message once the application has it: when `receive` returns it, or when the
receiver returned (raised too: that is logged and counted). A message in the buffer
is not acknowledged, so a program that stops, or a link that drops, loses none (the
broker sends it again on a resumed session). Messages the queue lets go unread are acknowledged: dropped by
``options.overflow``, removed by `clear`, and those buffered when the queue closes
on a shared connection (MQTT cannot give a message back while the connection stays
up, and an unacknowledged one would hold back every later acknowledgement on it,
[MQTT-4.6.0-2]). Unread QoS 1/2 messages count against the connection's Receive
Maximum. With ``options.acknowledge=arrival`` the engine acknowledges each message
as it arrives, and ``packet.ack()`` does nothing.

When the buffer is full, ``options.overflow`` says which message is dropped (the
oldest or the newest); drops are counted (`MqttMessageQueue.statistics`, counter
``queue.<name>.dropped_messages``) and logged once per overflow. ``receive`` waits
on an event with a real timeout (no polling). A message the broker sent is counted
by `MqttMessageQueue.read_message_count` once the dispatch task handed it over.

`listen` hands over the buffered messages before it says it listens
(`begin_listen` returns), then every new one; however it ends (`end_listen`, also
from inside the receiver; `close`; another `listen`; cancellation), nothing more is
handed to that receiver.

With ``options.serialize_envelope`` the whole `MessageEnvelope` travels as JSON,
the format of the pip-services ports (see ``_envelope.py``); without it only the
payload does, and a received envelope has the topic as its ``message_type``.
"""

from __future__ import annotations

import collections
import datetime
import enum
import inspect
import itertools
import json
from typing import TYPE_CHECKING, Final, Protocol, final, runtime_checkable

import anyio
import anyio.abc
import anyio.lowlevel
import attrs

from ._config import ConfigParams, to_boolean
from ._connection import (
    COUNTER_ERRORS,
    MqttConnection,
    _Counters,
    _Log,
    _TaskGroup,
)
from ._envelope import MessageEnvelope, MessagingCapabilities
from ._exceptions import ConfigError, ConnectError, InvalidStateError, NotOpenError
from ._groups import OwnsTaskGroup
from ._references import Descriptor, ReferencesLike, find_references
from ._resolver import (
    ConfigKey,
    MqttConnectionResolver,
    parse_connection_options,
    warn_unknown_options,
)

if TYPE_CHECKING:
    from collections.abc import Awaitable, Mapping

    import trio

    from ._message import Message

__all__ = [
    "QUEUE_CONFIG_KEYS",
    "IMessageReceiver",
    "MessageEnvelope",
    "MessageQueueStatistics",
    "MessagingCapabilities",
    "MqttMessageQueue",
]

_DEFAULT_MAX_BUFFERED: Final = 10_000
#: The buffer of the queue's engine subscription, a transit: its dispatch task moves
#: each message into the queue's own buffer at once. At least any Receive Maximum,
#: so that an unacknowledged (manual_ack) message is never parked beside it: the
#: engine does not let go of a parked manual_ack message's acknowledgement when the
#: subscription ends, which would hold back every later one on a shared connection.
_ENGINE_BUFFER: Final = 65_535
#: Messages `MqttMessageQueue.listen` hands over between two checkpoints.
_STREAK: Final = 64

QUEUE_CONFIG_KEYS: Final[tuple[ConfigKey, ...]] = (
    ConfigKey(
        "topic",
        None,
        "Topic the queue publishes to and subscribes to; the queue name when not "
        "set. A filter with wildcards can be received from but not sent to.",
    ),
    ConfigKey(
        "options.topic_rule",
        "same",
        "``same``: send to and subscribe to ``topic`` (else the name). "
        "``upstream``: as the upstream ports, send to the queue name (else "
        "``topic``) and subscribe to ``topic`` (else the name).",
    ),
    ConfigKey(
        "options.serialize_envelope",
        "false",
        "Send the whole message envelope as JSON (``message_id``, ``trace_id``, "
        "``message_type``, ``sent_time``, ``message`` in base64) instead of the "
        "bare payload.",
    ),
    ConfigKey(
        "options.message_as_text",
        "false",
        "With ``options.serialize_envelope``: write the envelope's ``message`` as "
        "text instead of base64, as the Dart port does (payloads must be UTF-8). "
        "Received envelopes are read in either form.",
    ),
    ConfigKey(
        "options.autosubscribe",
        "false",
        "Subscribe when the queue opens, so messages sent before the first receive "
        "are kept. When false, the first receive, peek or listen subscribes.",
    ),
    ConfigKey("options.qos", "0", "QoS of sent messages and of the subscription."),
    ConfigKey(
        "options.acknowledge",
        "receive",
        "When a received QoS 1/2 message is acknowledged to the broker. "
        "``receive``: once the application has it (``receive()`` returned it, or "
        "the ``listen`` receiver returned), so a program that stops loses none; "
        "unread messages count against the connection's Receive Maximum, shared "
        "by every queue on it. ``arrival``: as soon as the queue buffered it, so "
        "a queue that falls far behind never holds up the others on its "
        "connection, but what is buffered is lost if the program stops.",
    ),
    ConfigKey("options.retain", "false", "Whether sent messages are retained."),
    ConfigKey(
        "options.max_buffered",
        str(_DEFAULT_MAX_BUFFERED),
        "Most received messages kept for ``receive`` and ``peek``; at least 1.",
    ),
    ConfigKey(
        "options.overflow",
        "drop_oldest",
        "What a full buffer does with a new message: ``drop_oldest`` keeps it and "
        "drops the oldest buffered one, ``drop_newest`` drops it. Counted in "
        "``statistics()`` and ``queue.<name>.dropped_messages``, logged once per "
        "overflow.",
    ),
)
"""The keys `MqttMessageQueue` reads besides those of `MqttConnection`."""

_QUEUE_KEYS: Final = {entry.key: entry for entry in QUEUE_CONFIG_KEYS}
_CONNECTION: Final = Descriptor("*", "connection", "mqtt", "*", "*")
#: What upstream's MQTT queue reports; read_message_count works here all the same.
_CAPABILITIES: Final = MessagingCapabilities(
    can_message_count=False,
    can_send=True,
    can_receive=True,
    can_peek=True,
    can_peek_batch=True,
    can_renew_lock=False,
    can_abandon=False,
    can_dead_letter=False,
    can_clear=True,
)


class _Overflow(enum.Enum):
    DROP_OLDEST = "drop_oldest"
    DROP_NEWEST = "drop_newest"


@final
@attrs.frozen
class MessageQueueStatistics:
    """Counters of one `MqttMessageQueue`, from `MqttMessageQueue.statistics`."""

    buffered: int
    """Messages waiting for ``receive`` now."""
    max_buffered: int
    """The bound of the buffer (``options.max_buffered``)."""
    dropped: int
    """Messages dropped because the buffer was full, since the queue was created."""


@runtime_checkable
class IMessageReceiver(Protocol):
    """Receives messages from `MqttMessageQueue.listen` (pip-services shape)."""

    def receive_message(
        self, message: MessageEnvelope, queue: MqttMessageQueue
    ) -> Awaitable[None] | None:
        """Handle one message; plain or ``async``.

        Args:
            message: the received envelope.
            queue: the queue it came from.
        """
        ...


def _setting(config: ConfigParams, key: str) -> str:
    text = config.get(key) or _QUEUE_KEYS[key].default
    assert text is not None
    return text


def _queue_flag(config: ConfigParams, key: str) -> bool:
    text = _setting(config, key)
    value = to_boolean(text)
    if value is None:
        raise ConfigError(f"{key} must be true or false, not {text!r}")
    return value


def _choice(config: ConfigParams, key: str, choices: tuple[str, ...]) -> str:
    text = _setting(config, key)
    value = text.strip().lower()
    if value not in choices:
        raise ConfigError(f"{key} must be {' or '.join(choices)}, not {text!r}")
    return value


@final
@attrs.define(eq=False)
class MqttMessageQueue(OwnsTaskGroup):
    """A pip-services message queue on one MQTT topic.

    Example::

        queue = MqttMessageQueue("orders")
        queue.configure(ConfigParams.from_tuples(
            "connection.uri", "mqtt://localhost:1883",
            "options.autosubscribe", True,
            "options.serialize_envelope", True))
        async with queue:
            await queue.send(None, MessageEnvelope(None, "order", "created"))
            envelope = await queue.receive(None, 10_000)

    Configuration: the keys of ``QUEUE_CONFIG_KEYS``, and for a local connection those
    of `MqttConnection`. References: ``*:connection:mqtt:*:1.0`` (a shared, opened
    `MqttConnection`; without it the queue makes its own), loggers, counters
    (``queue.<name>.sent_messages``, ``queue.<name>.received_messages`` and
    ``queue.<name>.dropped_messages``), discovery services and credential stores.

    Every ``context`` argument takes a pip-services context, a `Context`, a plain
    trace id or None.

    Args:
        name: the queue name; also the topic when ``topic`` is not configured.
        nursery: where a local connection and `begin_listen` run their tasks
            (also settable with `bind`).
    """

    _name: str | None = attrs.field(default=None, alias="name")
    _nursery: trio.Nursery | anyio.abc.TaskGroup | None = attrs.field(
        default=None, kw_only=True, alias="nursery"
    )
    _config: ConfigParams = attrs.field(init=False, factory=ConfigParams, repr=False)
    _references: ReferencesLike | None = attrs.field(
        init=False, default=None, repr=False
    )
    _topic: str | None = attrs.field(init=False, default=None)
    _upstream_topics: bool = attrs.field(init=False, default=False, repr=False)
    _qos: int = attrs.field(init=False, default=0, repr=False)
    _ack_on_arrival: bool = attrs.field(init=False, default=False, repr=False)
    _retain: bool = attrs.field(init=False, default=False, repr=False)
    _serialize_envelope: bool = attrs.field(init=False, default=False, repr=False)
    _message_as_text: bool = attrs.field(init=False, default=False, repr=False)
    _autosubscribe: bool = attrs.field(init=False, default=False, repr=False)
    _max_buffered: int = attrs.field(
        init=False, default=_DEFAULT_MAX_BUFFERED, repr=False
    )
    _overflow: _Overflow = attrs.field(
        init=False, default=_Overflow.DROP_OLDEST, repr=False
    )
    _connection: MqttConnection | None = attrs.field(
        init=False, default=None, repr=False
    )
    _local: bool = attrs.field(init=False, default=True, repr=False)
    _opened: bool = attrs.field(init=False, default=False)
    #: Bumped by every open and close: a subscription made for an earlier epoch
    #: is stale.
    _epoch: int = attrs.field(init=False, default=0, repr=False)
    _subscribed: bool = attrs.field(init=False, default=False, repr=False)
    _subscribe_lock: anyio.Lock | None = attrs.field(
        init=False, default=None, repr=False
    )
    #: The buffer: each envelope with the message it came in (to acknowledge it).
    _messages: collections.deque[tuple[MessageEnvelope, Message]] = attrs.field(
        init=False, factory=collections.deque, repr=False
    )
    _dropped: int = attrs.field(init=False, default=0, repr=False)
    _overflowing: bool = attrs.field(init=False, default=False, repr=False)
    _arrived: anyio.Event | None = attrs.field(init=False, default=None, repr=False)
    _listen_ended: anyio.Event | None = attrs.field(
        init=False, default=None, repr=False
    )
    _log: _Log = attrs.field(init=False, factory=_Log, repr=False)
    _counters: _Counters = attrs.field(init=False, factory=_Counters, repr=False)
    _own_group: anyio.abc.TaskGroup | None = attrs.field(
        init=False, default=None, repr=False
    )
    _outer_nursery: _TaskGroup | None = attrs.field(
        init=False, default=None, repr=False
    )

    # -- configuration -------------------------------------------------------------

    def get_name(self) -> str:
        """The queue name; the topic when no name was given, else ``"undefined"``."""
        return self._name or self._topic or "undefined"

    def get_capabilities(self) -> MessagingCapabilities:
        """What the queue supports, as upstream's MQTT queue reports it.

        Locks, abandon and dead letters are not supported (MQTT has none of them);
        `read_message_count` works, though upstream reports it as unsupported.
        """
        return _CAPABILITIES

    def to_string(self) -> str:
        """``[name]``, as upstream's queues write themselves."""
        return f"[{self.get_name()}]"

    def __str__(self) -> str:
        """The same as `to_string`."""
        return self.to_string()

    def configure(self, config: Mapping[str, object]) -> None:
        """Read the queue keys, and keep the rest for a local connection.

        An unknown ``options.*`` key (a typo) is logged as a warning on
        ``trio_mqttconn.connection``, with the closest known key.

        Args:
            config: ``QUEUE_CONFIG_KEYS`` plus the keys of `MqttConnection`.

        Raises:
            ConfigError: a value is invalid; the message names the key.
        """
        config = ConfigParams.of(config)
        qos = (config.get("options.qos") or "0").strip()
        if qos not in ("0", "1", "2"):
            raise ConfigError(f"options.qos must be 0, 1 or 2, not {qos!r}")
        retain = _queue_flag(config, "options.retain")
        serialize_envelope = _queue_flag(config, "options.serialize_envelope")
        message_as_text = _queue_flag(config, "options.message_as_text")
        autosubscribe = _queue_flag(config, "options.autosubscribe")
        rule = _choice(config, "options.topic_rule", ("same", "upstream"))
        acknowledge = _choice(config, "options.acknowledge", ("receive", "arrival"))
        overflow = _Overflow(
            _choice(config, "options.overflow", ("drop_oldest", "drop_newest"))
        )
        text = _setting(config, "options.max_buffered")
        if not text.strip().isdecimal() or int(text) < 1:
            raise ConfigError(
                f"options.max_buffered must be a whole number of messages, at least "
                f"1, not {text!r}"
            )
        # The connection keys are checked now, whoever opens the connection.
        parse_connection_options(config)
        MqttConnectionResolver().configure(config)
        if self._local and self._connection is not None:
            self._connection.configure(config)
        warn_unknown_options(config, QUEUE_CONFIG_KEYS)
        self._qos = int(qos)
        self._ack_on_arrival = acknowledge == "arrival"
        self._retain = retain
        self._serialize_envelope = serialize_envelope
        self._message_as_text = message_as_text
        self._autosubscribe = autosubscribe
        self._upstream_topics = rule == "upstream"
        self._overflow = overflow
        self._max_buffered = int(text)
        self._topic = config.get("topic") or None
        self._config = config

    def set_references(self, references: ReferencesLike | None) -> None:
        """Find a shared connection (else make a local one), loggers and counters.

        Args:
            references: our `References`, a pip-services ``IReferences``, or
                anything with ``get_optional(locator)``.
        """
        self._references = references
        self._log.set_references(references)
        self._counters.set_references(references)
        shared = [
            found
            for found in find_references(references, _CONNECTION)
            if isinstance(found, MqttConnection)
        ]
        if shared:
            self._connection, self._local = shared[0], False
        else:
            self._connection, self._local = self._create_connection(), True

    def unset_references(self) -> None:
        """Forget the connection found by `set_references`."""
        self._connection = None
        self._local = True

    def _create_connection(self) -> MqttConnection:
        connection = MqttConnection(nursery=self._nursery)
        connection._check_options = False  # configure() warned for the queue
        connection.configure(self._config)
        connection.set_references(self._references)
        return connection

    def bind(self, nursery: trio.Nursery | anyio.abc.TaskGroup) -> None:
        """Run the local connection and `begin_listen` in ``nursery``.

        Args:
            nursery: a trio nursery or an anyio task group.

        Raises:
            InvalidStateError: the queue is open.
        """
        if self._opened:
            raise InvalidStateError(
                "cannot bind a nursery while the queue is open: close it first"
            )
        self._nursery = nursery

    def _get_topic(self) -> str:
        """The topic the queue subscribes to."""
        topic = self._topic or self._name
        if not topic:
            raise ConfigError(
                "the queue has no topic: configure the topic key or give the queue a "
                "name",
                code="NO_TOPIC",
            )
        return topic

    def _send_topic(self) -> str:
        if self._upstream_topics and self._name:
            return self._name
        return self._get_topic()

    # -- open and close ------------------------------------------------------------

    def is_open(self) -> bool:
        """Whether `open` succeeded and `close` has not been called since."""
        return self._opened

    def _check_open(self) -> None:
        if not self._opened:
            raise NotOpenError("The queue is not opened", code="NOT_OPENED")

    async def open(self, context: object = None) -> None:
        """Open the connection (when local) and, with autosubscribe, subscribe.

        Idempotent.

        Args:
            context: pip-services context or trace id.

        Raises:
            ConfigError: no topic, or invalid connection configuration.
            ConnectError: code ``CONNECT_FAILED``: connecting failed, or the shared
                connection is not open ("MQTT connection is not opened").
            InvalidStateError: a local connection needs a nursery.
        """
        if self._opened:
            await anyio.lowlevel.checkpoint()
            return
        self._get_topic()
        if self._connection is None:
            self._connection, self._local = self._create_connection(), True
        connection = self._connection
        if self._local:
            if self._nursery is None:
                raise InvalidStateError(
                    "MqttMessageQueue.open needs a nursery for its connection: call "
                    "bind(nursery), pass nursery=..., or use `async with queue:`"
                )
            connection.bind(self._nursery)
            await connection.open(context)
        if not connection.is_open():
            raise ConnectError("MQTT connection is not opened", code="CONNECT_FAILED")
        self._opened = True
        self._epoch += 1
        try:
            if self._autosubscribe:
                await self._subscribe(context)
        except BaseException:
            with anyio.CancelScope(shield=True):
                await self.close(context)
            raise

    async def close(self, context: object = None) -> None:
        """Unsubscribe, close a local connection, drop buffered messages.

        Idempotent; never raises. A `listen` in progress returns.

        Args:
            context: pip-services context or trace id.
        """
        if not self._opened:
            await anyio.lowlevel.checkpoint()
            return
        self._opened = False
        self._epoch += 1
        connection = self._connection
        subscribed, self._subscribed = self._subscribed, False
        if not self._local:
            # The shared connection stays up: let go of what nobody will read.
            self._acknowledge_all()
        self._messages.clear()
        self._overflowing = False
        self._wake()
        if self._listen_ended is not None:
            self._listen_ended.set()
        if connection is None:  # pragma: no cover - open() set it
            return
        with anyio.CancelScope(shield=True):
            if subscribed and not self._local:
                await self._unsubscribe(connection, context)
            if self._local:
                await connection.close(context)
        self._log.debug(context, "Closed queue %s", self.get_name())

    def _acknowledge_all(self) -> None:
        for _, packet in self._messages:
            packet.ack()

    async def _unsubscribe(self, connection: MqttConnection, context: object) -> None:
        try:
            await connection.unsubscribe(self._get_topic(), self)
        except Exception as exc:  # pragma: no cover - the broker refused
            self._log.error(context, exc, "Failed to unsubscribe the queue")

    # -- receiving ----------------------------------------------------------------------

    async def _subscribe(self, context: object) -> None:
        if not self._needs_subscription():
            await anyio.lowlevel.checkpoint()
            return
        if self._subscribe_lock is None:
            self._subscribe_lock = anyio.Lock()
        async with self._subscribe_lock:
            # Whoever waited here while another call subscribed finds it done.
            if not self._needs_subscription():
                return
            connection = self._connection
            assert connection is not None
            epoch = self._epoch
            await connection.subscribe(
                self._get_topic(),
                {
                    "qos": self._qos,
                    "buffer": _ENGINE_BUFFER,
                    "manual_ack": self._qos > 0 and not self._ack_on_arrival,
                },
                self,
            )
            if epoch != self._epoch:
                # Closed (perhaps reopened) while the broker granted it: the close
                # could not remove a registration it did not know about.
                with anyio.CancelScope(shield=True):
                    await self._unsubscribe(connection, context)
                return
            self._subscribed = True
        self._log.debug(context, "Subscribed queue %s", self.get_name())

    def _needs_subscription(self) -> bool:
        return self._opened and not self._subscribed

    def _wake(self) -> None:
        if self._arrived is not None:
            self._arrived.set()

    async def _wait_arrival(self) -> None:
        # One Event per wave of waiters, replaced once fired (no lost wake-ups:
        # whoever checks the buffer and waits does so without a checkpoint between).
        if self._arrived is None or self._arrived.is_set():
            self._arrived = anyio.Event()
        await self._arrived.wait()

    async def on_message(self, topic: str, data: bytes, packet: Message) -> None:
        """Take a message from the connection (the `IMqttMessageListener` side).

        Never waits: the message goes into the buffer (or is dropped, and then
        acknowledged, when it cannot be read or the queue is closed).

        Args:
            topic: the topic name.
            data: the payload.
            packet: the whole message; acknowledged once the application has it.
        """
        try:
            envelope = self._to_envelope(topic, data)
            if envelope is None:
                self._counters.increment(COUNTER_ERRORS)
                self._log.error(None, None, "Failed to read received message")
                packet.ack()
                return
            self._counters.increment(f"queue.{self.get_name()}.received_messages")
            self._log.debug(
                envelope.trace_id, "Received message %s via %s", envelope, topic
            )
            if self._opened:
                self._buffer(envelope, packet)
            else:
                packet.ack()
        finally:
            self._wake()

    def _buffer(self, envelope: MessageEnvelope, packet: Message) -> None:
        messages = self._messages
        if len(messages) < self._max_buffered:
            messages.append((envelope, packet))
            self._overflowing = False
            return
        self._dropped += 1
        self._counters.increment(f"queue.{self.get_name()}.dropped_messages")
        if self._overflow is _Overflow.DROP_OLDEST:
            _, dropped = messages.popleft()
            messages.append((envelope, packet))
        else:
            dropped = packet
        dropped.ack()
        if not self._overflowing:
            self._overflowing = True
            self._log.warn(
                envelope.trace_id,
                "Queue %s holds %d messages, its options.max_buffered: dropping the "
                "%s ones (options.overflow) until receive() takes some",
                self.get_name(),
                self._max_buffered,
                "oldest" if self._overflow is _Overflow.DROP_OLDEST else "newest",
            )

    def _take(self) -> tuple[MessageEnvelope, Message]:
        self._overflowing = False
        return self._messages.popleft()

    def _to_envelope(self, topic: str, data: bytes) -> MessageEnvelope | None:
        if self._serialize_envelope:
            return MessageEnvelope.from_json(data)
        return MessageEnvelope(None, topic, data)

    async def _hand_over(
        self, receiver: IMessageReceiver, envelope: MessageEnvelope
    ) -> None:
        try:
            result = receiver.receive_message(envelope, self)
            if inspect.isawaitable(result):
                await result
        except Exception as exc:
            self._counters.increment(COUNTER_ERRORS)
            self._log.error(envelope.trace_id, exc, "Failed to process the message")

    def statistics(self) -> MessageQueueStatistics:
        """The queue's buffer and drop counters."""
        return MessageQueueStatistics(
            buffered=len(self._messages),
            max_buffered=self._max_buffered,
            dropped=self._dropped,
        )

    async def read_message_count(self) -> int:
        """The number of buffered messages (subscribes first if needed)."""
        self._check_open()
        await self._subscribe(None)
        return len(self._messages)

    async def peek(self, context: object = None) -> MessageEnvelope | None:
        """Return the next message without removing it; None when there is none.

        Does not wait for messages. Subscribes first if needed.

        Args:
            context: pip-services context or trace id.

        Raises:
            NotOpenError: the queue is not open (code ``NOT_OPENED``).
        """
        self._check_open()
        await self._subscribe(context)
        return self._messages[0][0] if self._messages else None

    async def peek_batch(
        self, context: object, message_count: int
    ) -> list[MessageEnvelope]:
        """Return up to ``message_count`` next messages without removing them.

        Args:
            context: pip-services context or trace id.
            message_count: the most messages to return.

        Raises:
            NotOpenError: the queue is not open (code ``NOT_OPENED``).
        """
        self._check_open()
        await self._subscribe(context)
        return [
            envelope
            for envelope, _ in itertools.islice(self._messages, max(0, message_count))
        ]

    async def receive(
        self, context: object, wait_timeout: float
    ) -> MessageEnvelope | None:
        """Remove and return the next message, waiting up to ``wait_timeout`` ms.

        Subscribes first if needed.

        Args:
            context: pip-services context or trace id.
            wait_timeout: milliseconds to wait for a message.

        Returns:
            The message, or None when none came in time (or the queue closed).

        Raises:
            NotOpenError: the queue is not open (code ``NOT_OPENED``).
        """
        self._check_open()
        await self._subscribe(context)
        with anyio.move_on_after(max(0.0, wait_timeout) / 1000):
            while not self._messages:
                if not self._opened:
                    return None
                await self._wait_arrival()
            envelope, packet = self._take()
            packet.ack()  # the application has it now
            return envelope
        return None

    async def clear(self, context: object = None) -> None:
        """Drop every buffered message.

        Args:
            context: pip-services context or trace id.
        """
        del context
        self._acknowledge_all()
        self._messages.clear()
        self._overflowing = False
        await anyio.lowlevel.checkpoint()

    async def listen(self, context: object, receiver: IMessageReceiver) -> None:
        """Hand every message to ``receiver`` until `end_listen` or `close`.

        Buffered messages are handed over first, then each new one, one at a time,
        in this task: the connection never waits for the receiver, which may send
        on the same connection with any QoS. A QoS 1/2 message is acknowledged
        once the receiver returned; if it raises, the error is logged ("Failed to
        process the message") and counted. However `listen` ends (`end_listen`,
        also from the receiver; `close`; another `listen`; cancellation), nothing
        more is handed to the receiver: later messages are buffered for
        `receive`.

        Args:
            context: pip-services context or trace id.
            receiver: an `IMessageReceiver` (``receive_message`` plain or
                ``async``).

        Raises:
            NotOpenError: the queue is not open (code ``NOT_OPENED``).
        """
        await self._listen(context, receiver)

    async def begin_listen(self, context: object, receiver: IMessageReceiver) -> None:
        """Start `listen` in the queue's nursery; return once it listens.

        The messages buffered before are handed over by then.

        Args:
            context: pip-services context or trace id.
            receiver: an `IMessageReceiver`.

        Raises:
            NotOpenError: the queue is not open (code ``NOT_OPENED``).
            InvalidStateError: the queue has no nursery.
        """
        self._check_open()
        if self._nursery is None:
            raise InvalidStateError(
                "begin_listen needs a nursery: call bind(nursery), pass nursery=..., "
                "or use `async with queue:`"
            )
        await self._nursery.start(self._listen, context, receiver)

    async def _listen(
        self,
        context: object,
        receiver: IMessageReceiver,
        *,
        task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        self._check_open()
        await self._subscribe(context)
        self._log.debug(context, "Started listening messages at %s", self.get_name())
        if self._listen_ended is not None:
            self._listen_ended.set()  # one listener at a time: the new one wins
            self._wake()
        # Made before the hand-over, so end_listen() during it is seen.
        ended = self._listen_ended = anyio.Event()
        listening = False
        streak = 0
        try:
            while self._opened and not ended.is_set():
                if streak >= _STREAK:
                    # A plain receiver never yields: let the others (and a
                    # cancellation) in now and then, with no message in hand.
                    streak = 0
                    await anyio.lowlevel.checkpoint()
                    continue
                if self._messages:
                    streak += 1
                    envelope, packet = self._take()
                    try:
                        await self._hand_over(receiver, envelope)
                    finally:
                        packet.ack()
                    continue
                if not listening:
                    # What was buffered is handed over: begin_listen returns.
                    listening = True
                    task_status.started()
                streak = 0
                await self._wait_arrival()
        finally:
            if self._listen_ended is ended:
                self._listen_ended = None
        if not listening:
            task_status.started()

    def end_listen(self, context: object = None) -> None:
        """Stop handing messages to the receiver; `listen` returns.

        The subscription stays: later messages are buffered for `receive`.

        Args:
            context: pip-services context or trace id.
        """
        del context
        if self._listen_ended is not None:
            self._listen_ended.set()
            self._wake()

    # -- sending ------------------------------------------------------------------------

    async def send(self, context: object, message: MessageEnvelope) -> None:
        """Publish ``message`` to the queue's topic (``options.qos``, ``options.retain``).

        Args:
            context: pip-services context or trace id.
            message: the envelope; with ``options.serialize_envelope`` its
                ``sent_time`` is set and the whole envelope is sent as JSON.

        Raises:
            NotOpenError: the queue is not open (code ``NOT_OPENED``).
            ConnectError: the connection stopped.
            UnicodeDecodeError: ``options.message_as_text`` is set and the payload
                is not UTF-8.
        """
        self._check_open()
        assert self._connection is not None
        data = message.message or b""
        if self._serialize_envelope:
            message.sent_time = datetime.datetime.now(datetime.UTC)
            wire = message.to_json(text=self._message_as_text)
            data = json.dumps(wire).encode("utf-8")
        topic = self._send_topic()
        await self._connection.publish(
            topic, data, {"qos": self._qos, "retain": self._retain}
        )
        self._counters.increment(f"queue.{self.get_name()}.sent_messages")
        self._log.debug(
            context or message.trace_id, "Sent message %s via %s", message, topic
        )

    async def send_as_object(
        self, context: object, message_type: str | None, message: object
    ) -> None:
        """Wrap a value in a `MessageEnvelope` and `send` it.

        Args:
            context: pip-services context or trace id; also the envelope's trace id.
            message_type: what the message is.
            message: the payload: bytes as is, text as UTF-8, anything else as JSON.

        Raises:
            NotOpenError: the queue is not open (code ``NOT_OPENED``).
            ConnectError: the connection stopped.
        """
        await self.send(context, MessageEnvelope(context, message_type, message))

    # -- acknowledgements: not supported by MQTT ------------------------------------------

    async def renew_lock(self, message: MessageEnvelope, lock_timeout: float) -> None:
        """Do nothing: MQTT has no message locks.

        Args:
            message: the message.
            lock_timeout: milliseconds, ignored.
        """
        del message, lock_timeout
        await anyio.lowlevel.checkpoint()

    async def complete(self, message: MessageEnvelope) -> None:
        """Do nothing: a received MQTT message is already removed from the broker.

        Args:
            message: the message.
        """
        del message
        await anyio.lowlevel.checkpoint()

    async def abandon(self, message: MessageEnvelope) -> None:
        """Do nothing: MQTT cannot return a message to the broker.

        Args:
            message: the message.
        """
        del message
        await anyio.lowlevel.checkpoint()

    async def move_to_dead_letter(self, message: MessageEnvelope) -> None:
        """Do nothing: MQTT has no dead letter queue.

        Args:
            message: the message.
        """
        del message
        await anyio.lowlevel.checkpoint()
