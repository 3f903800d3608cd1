"""MqttMessageQueue and MessageEnvelope: the pip-services message queue over MQTT.

Theory of operation
-------------------
A queue is one topic on an `MqttConnection`: its own (a *local* connection, made
from the queue's configuration and references) or one shared by several queues (the
``*:connection:mqtt:*:1.0`` reference). ``send`` publishes to the topic; the queue
subscribes to the same topic **once** (on `MqttMessageQueue.open` when
``options.autosubscribe`` is true, else on the first receive, peek or listen) and is
itself the `IMqttMessageListener` of that subscription. One rule picks the topic
for both directions: the ``topic`` key when set, else the queue name (the upstream
ports publish to one and subscribe to the other, and subscribe again on every
receive, buffering each message once per call).

Messages are kept in arrival order in memory until `MqttMessageQueue.receive` takes
them, or handed to the receiver while `MqttMessageQueue.listen` runs. ``receive``
waits on an event with a real timeout (no polling). The queue's messages arrive
through the connection's dispatch task for its subscription, so a message the broker
sent is counted by `MqttMessageQueue.read_message_count` once that task handed it
over.

With ``options.serialize_envelope`` the whole `MessageEnvelope` travels as JSON
(``message_id``, ``trace_id``, ``message_type``, ``sent_time``, and ``message`` in
base64), the format of the pip-services ports; without it only the payload does,
and a received envelope has the topic as its ``message_type``.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import inspect
import json
import uuid
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
from ._exceptions import ConfigError, ConnectError, InvalidStateError, NotOpenError
from ._groups import OwnsTaskGroup
from ._references import Descriptor, ReferencesLike, find_references
from ._resolver import ConfigKey

if TYPE_CHECKING:
    from collections.abc import Awaitable, Mapping

    import trio

    from ._message import Message

__all__ = [
    "QUEUE_CONFIG_KEYS",
    "IMessageReceiver",
    "MessageEnvelope",
    "MqttMessageQueue",
]

QUEUE_CONFIG_KEYS: Final[tuple[ConfigKey, ...]] = (
    ConfigKey(
        "topic",
        None,
        "Topic the queue publishes to and subscribes to; the queue name when not "
        "set. A filter with wildcards can be received from but not sent to.",
    ),
    ConfigKey(
        "options.serialize_envelope",
        "false",
        "Send the whole message envelope as JSON (``message_id``, ``trace_id``, "
        "``message_type``, ``sent_time``, ``message`` in base64) instead of the "
        "bare payload.",
    ),
    ConfigKey(
        "options.autosubscribe",
        "false",
        "Subscribe when the queue opens, so messages sent before the first receive "
        "are kept. When false, the first receive, peek or listen subscribes.",
    ),
    ConfigKey("options.qos", "0", "QoS of sent messages and of the subscription."),
    ConfigKey("options.retain", "false", "Whether sent messages are retained."),
)
"""The keys `MqttMessageQueue` reads besides those of `MqttConnection`."""

_QUEUE_KEYS: Final = {entry.key: entry for entry in QUEUE_CONFIG_KEYS}
_CONNECTION: Final = Descriptor("*", "connection", "mqtt", "*", "*")


def _trace_id(context: object) -> str | None:
    """The trace id of a pip-services context, a plain trace id, or None."""
    if context is None or isinstance(context, str):
        return context
    get = getattr(context, "get", None)
    if callable(get):
        for key in ("trace_id", "traceId", "correlation_id"):
            value = get(key)
            if value:
                return str(value)
    return None


@attrs.define(eq=False, init=False)
class MessageEnvelope:
    """A message with the metadata pip-services queues carry along.

    Like upstream, it is mutable: the queue sets ``sent_time`` when it sends.

    Args:
        context: pip-services context or trace id (kept as ``trace_id``), or None.
        message_type: what the message is, e.g. ``"order.created"``.
        message: the payload: bytes as is, text as UTF-8, anything else as JSON.
    """

    trace_id: str | None
    """Trace id of the business transaction (``correlation_id`` in pip-services 3)."""
    message_type: str | None
    """What the message is; for a received bare payload, the topic."""
    message: bytes | None
    """The payload, or None."""
    message_id: str = attrs.field(factory=lambda: uuid.uuid4().hex)
    """A unique id, generated when not given."""
    sent_time: datetime.datetime | None = None
    """When it was sent (set by the queue when the envelope is serialized)."""
    _reference: object = attrs.field(default=None, repr=False, alias="reference")

    def __init__(
        self, context: object, message_type: str | None, message: object
    ) -> None:
        """Create an envelope (the pip-services constructor)."""
        self.__attrs_init__(_trace_id(context), message_type, _to_bytes(message))

    def get_reference(self) -> object:
        """The lock token a queue attached to this message (always None for MQTT)."""
        return self._reference

    def set_reference(self, value: object) -> None:
        """Attach a lock token.

        Args:
            value: the token.
        """
        self._reference = value

    def get_message_as_string(self) -> str | None:
        """The payload decoded as UTF-8, or None."""
        return None if self.message is None else self.message.decode("utf-8")

    def set_message_as_string(self, value: str) -> None:
        """Store text as UTF-8.

        Args:
            value: the text.
        """
        self.message = value.encode("utf-8")

    def get_message_as(self) -> object:
        """The payload parsed as JSON, or None."""
        return None if self.message is None else json.loads(self.message)

    def set_message_as_object(self, value: object) -> None:
        """Store a value as JSON (None clears the payload).

        Args:
            value: anything `json.dumps` accepts.
        """
        self.message = None if value is None else json.dumps(value).encode("utf-8")

    def to_json(self) -> dict[str, str | None]:
        """The JSON wire form: ids, type, ISO 8601 ``sent_time``, base64 payload."""
        sent = self.sent_time or datetime.datetime.now(datetime.UTC)
        return {
            "message_id": self.message_id,
            "trace_id": self.trace_id,
            "message_type": self.message_type,
            "sent_time": sent.isoformat(),
            "message": (
                None if not self.message else base64.b64encode(self.message).decode()
            ),
        }

    @staticmethod
    def from_json(value: str | bytes | None) -> MessageEnvelope | None:
        """Parse the JSON wire form; None when ``value`` is None or not an envelope.

        pip-services 3 envelopes (``correlation_id`` instead of ``trace_id``) are
        accepted too.

        Args:
            value: the JSON text.
        """
        if value is None:
            return None
        try:
            data = json.loads(value)
        except (ValueError, UnicodeDecodeError):
            return None
        if not isinstance(data, dict):
            return None
        try:
            payload = data.get("message")
            message = base64.b64decode(payload, validate=True) if payload else None
            sent = data.get("sent_time")
            envelope = MessageEnvelope(
                data.get("trace_id") or data.get("correlation_id"),
                data.get("message_type"),
                message,
            )
            envelope.sent_time = (
                datetime.datetime.fromisoformat(sent) if isinstance(sent, str) else None
            )
        except (TypeError, ValueError, binascii.Error):
            return None
        if data.get("message_id") is not None:
            envelope.message_id = str(data["message_id"])
        return envelope

    def __str__(self) -> str:
        """``[trace_id,message_type,first 50 bytes of the message]``, ``---`` if unset."""
        text = (
            "---"
            if not self.message
            else self.message[:50].decode("utf-8", errors="replace")
        )
        return f"[{self.trace_id or '---'},{self.message_type or '---'},{text}]"


def _to_bytes(message: object) -> bytes | None:
    if message is None or isinstance(message, bytes):
        return message
    if isinstance(message, bytearray | memoryview):
        return bytes(message)
    if isinstance(message, str):
        return message.encode("utf-8")
    return json.dumps(message).encode("utf-8")


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


def _queue_flag(config: ConfigParams, key: str) -> bool:
    text = config.get(key) or _QUEUE_KEYS[key].default
    assert text is not None
    value = to_boolean(text)
    if value is None:
        raise ConfigError(f"{key} must be true or false, not {text!r}")
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
    (``queue.<name>.sent_messages`` and ``queue.<name>.received_messages``),
    discovery services and credential stores.

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
    _qos: int = attrs.field(init=False, default=0, repr=False)
    _retain: bool = attrs.field(init=False, default=False, repr=False)
    _serialize_envelope: bool = attrs.field(init=False, default=False, repr=False)
    _autosubscribe: bool = attrs.field(init=False, default=False, repr=False)
    _connection: MqttConnection | None = attrs.field(
        init=False, default=None, repr=False
    )
    _local: bool = attrs.field(init=False, default=True, repr=False)
    _opened: bool = attrs.field(init=False, default=False)
    _subscribed: bool = attrs.field(init=False, default=False, repr=False)
    _messages: list[MessageEnvelope] = attrs.field(init=False, factory=list, repr=False)
    _receiver: IMessageReceiver | None = attrs.field(
        init=False, default=None, repr=False
    )
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

    def configure(self, config: Mapping[str, object]) -> None:
        """Read the queue keys, and keep the rest for a local connection.

        Args:
            config: ``QUEUE_CONFIG_KEYS`` plus the keys of `MqttConnection`.

        Raises:
            ConfigError: a value is invalid; the message names the key.
        """
        config = ConfigParams.of(config)
        qos = (config.get("options.qos") or "0").strip()
        if qos not in ("0", "1", "2"):
            raise ConfigError(f"options.qos must be 0, 1 or 2, not {qos!r}")
        self._qos = int(qos)
        self._retain = _queue_flag(config, "options.retain")
        self._serialize_envelope = _queue_flag(config, "options.serialize_envelope")
        self._autosubscribe = _queue_flag(config, "options.autosubscribe")
        self._topic = config.get("topic") or None
        self._config = config
        if self._local and self._connection is not None:
            self._connection.configure(config)

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
        topic = self._topic or self._name
        if not topic:
            raise ConfigError(
                "the queue has no topic: configure the topic key or give the queue a "
                "name",
                code="NO_TOPIC",
            )
        return topic

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
        try:
            if self._autosubscribe:
                await self._subscribe(context)
        except BaseException:
            with anyio.CancelScope(shield=True):
                await self.close(context)
            raise

    async def close(self, context: object = None) -> None:
        """Unsubscribe, close a local connection, drop buffered messages.

        Idempotent; never raises.

        Args:
            context: pip-services context or trace id.
        """
        if not self._opened:
            await anyio.lowlevel.checkpoint()
            return
        self._opened = False
        connection = self._connection
        subscribed, self._subscribed = self._subscribed, False
        self._messages.clear()
        self._receiver = None
        self._wake()
        if self._listen_ended is not None:
            self._listen_ended.set()
        if connection is None:  # pragma: no cover - open() set it
            return
        with anyio.CancelScope(shield=True):
            if subscribed and not self._local:
                try:
                    await connection.unsubscribe(self._get_topic(), self)
                except Exception as exc:  # pragma: no cover - the broker refused
                    self._log.error(context, exc, "Failed to unsubscribe the queue")
            if self._local:
                await connection.close(context)
        self._log.debug(context, "Closed queue %s", self.get_name())

    # -- receiving ----------------------------------------------------------------------

    async def _subscribe(self, context: object) -> None:
        if self._subscribed:
            return
        assert self._connection is not None
        await self._connection.subscribe(self._get_topic(), {"qos": self._qos}, self)
        self._subscribed = True
        self._log.debug(context, "Subscribed queue %s", self.get_name())

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

        Args:
            topic: the topic name.
            data: the payload.
            packet: the whole message.
        """
        try:
            envelope = self._to_envelope(topic, data)
            if envelope is None:
                self._counters.increment(COUNTER_ERRORS)
                self._log.error(None, None, "Failed to read received message")
                return
            self._counters.increment(f"queue.{self.get_name()}.received_messages")
            self._log.debug(
                envelope.trace_id, "Received message %s via %s", envelope, topic
            )
            receiver = self._receiver
            if receiver is not None:
                await self._hand_over(receiver, envelope)
            elif self._opened:
                self._messages.append(envelope)
        finally:
            self._wake()

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
        return self._messages[0] if self._messages else None

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
        return self._messages[:message_count]

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
            return self._messages.pop(0)
        return None

    async def clear(self, context: object = None) -> None:
        """Drop every buffered message.

        Args:
            context: pip-services context or trace id.
        """
        del context
        self._messages.clear()
        await anyio.lowlevel.checkpoint()

    async def listen(self, context: object, receiver: IMessageReceiver) -> None:
        """Hand every message to ``receiver`` until `end_listen` or `close`.

        Buffered messages are handed over first. The receiver runs in the
        connection's dispatch task; if it raises, the error is logged ("Failed to
        process the message") and counted.

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
        while self._opened and self._messages:
            await self._hand_over(receiver, self._messages.pop(0))
        if not self._opened:
            task_status.started()
            return
        if self._listen_ended is not None:
            self._listen_ended.set()  # one listener at a time: the new one wins
        ended = self._listen_ended = anyio.Event()
        self._receiver = receiver
        task_status.started()
        await ended.wait()

    def end_listen(self, context: object = None) -> None:
        """Stop handing messages to the receiver; `listen` returns.

        The subscription stays: later messages are buffered for `receive`.

        Args:
            context: pip-services context or trace id.
        """
        del context
        self._receiver = None
        if self._listen_ended is not None:
            self._listen_ended.set()

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
        """
        self._check_open()
        assert self._connection is not None
        data = message.message or b""
        if self._serialize_envelope:
            message.sent_time = datetime.datetime.now(datetime.UTC)
            data = json.dumps(message.to_json()).encode("utf-8")
        await self._connection.publish(
            self._get_topic(), data, {"qos": self._qos, "retain": self._retain}
        )
        self._counters.increment(f"queue.{self.get_name()}.sent_messages")
        self._log.debug(
            context or message.trace_id,
            "Sent message %s via %s",
            message,
            self.get_name(),
        )

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
