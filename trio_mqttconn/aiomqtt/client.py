"""aiomqtt's ``Client`` and ``MessagesIterator``, on the trio_mqttconn engine and anyio.

Theory of operation
-------------------
A `Client` is a reusable recipe for connections. Each ``async with client:`` builds a
fresh engine `~trio_mqttconn.MqttClient` (an engine client runs once) and starts two
tasks in a task group that the ``async with`` owns:

* the **engine task** runs ``MqttClient.run``; when the connection ends unexpectedly
  it records the loss (aiomqtt's ``"Unexpected disconnection"``) instead of tearing
  the body of the ``async with`` down: as in aiomqtt, the body learns about it from
  ``client.messages`` (``"Disconnected during message iteration"``) and from the next
  call (``[code:4] The client is not currently connected.``);
* the **pump** drains the engine's client-wide message stream
  (``MqttClient.messages()``) into the queue behind ``client.messages``. It never
  blocks: a bounded queue that is full drops the message with aiomqtt's warning.

The queue is the application's ``queue_type`` (an ``asyncio.Queue`` subclass, made in
the constructor, so messages are queued from construction on). Only its ``put_nowait``,
``get_nowait`` and ``qsize`` are used, which need no event loop, so the same queue
works under trio; waiting consumers are woken by an `anyio.Event`.

A disconnection, expected or not, is recorded once the pump has handed every message
the engine received to the queue, so consumers get the queued messages first and the
disconnection error after them.

No threads: the only blocking work, loading TLS files, happens once, when the client
first connects.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import socket
import ssl
from typing import TYPE_CHECKING, Final, Generic, Literal, Self, TypeVar, final
from urllib.parse import quote

import anyio
import anyio.abc
import anyio.lowlevel
import attrs
from anyio.streams.tls import TLSStream

from trio_mqttconn import (
    ConnectError,
    ConnectionLost,
    ConnectTimeout,
    Endpoint,
    MqttClient,
    MqttError as EngineMqttError,
    NotOpenError,
    Properties as PropertiesRecord,
    PublishError,
    QoS,
    SubscribeError,
    Subscription,
    SubscriptionStatistics,
)

from ._compat import (
    MQTT_CLEAN_START_FIRST_ONLY,
    CleanStartOption,
    ProtocolVersion,
    ProxySettings,
    TLSParameters,
    Will,
    build_tls_context,
    check_connect_options,
    check_publish,
    normalise_subscribe_topics,
    normalise_unsubscribe_topics,
    reject_proxy,
    resolve_identifier,
    to_engine_protocol,
    will_to_engine,
)
from ._paho import (
    PacketTypes,
    Properties,
    ReasonCode,
    SubscribeOptions,
    properties_to_record,
    reason_code_from_engine,
    to_topic_subscription,
)
from .exceptions import MqttCodeError, MqttConnectError, MqttError, MqttReentrantError
from .message import Message
from .topic import Wildcard

if TYPE_CHECKING:
    from collections.abc import (
        AsyncIterator,
        Awaitable,
        Callable,
        Iterable,
        Iterator,
    )
    from contextlib import AbstractAsyncContextManager
    from types import TracebackType

    from trio_mqttconn import Message as EngineMessage

    from .types import PayloadType, SocketOption, SubscribeTopic, WebSocketHeaders

__all__ = [
    "MQTT_LOGGER",
    "Client",
    "LegacyMessage",
    "MessageGenerator",
    "MessageStream",
    "MessagesIterator",
    "ProtocolVersion",
    "ProxySettings",
    "TLSParameters",
    "Will",
]

MQTT_LOGGER: Final = logging.getLogger("mqtt")
"""The logger the client warns on unless given another one (level ``WARNING``)."""
MQTT_LOGGER.setLevel(logging.WARNING)

_T = TypeVar("_T")

# paho-mqtt's MQTT_ERR_* numbers that the client raises as MqttCodeError.
_MQTT_ERR_NO_CONN: Final = 4
_MQTT_ERR_CONN_LOST: Final = 7
_MQTT_ERR_QUEUE_SIZE: Final = 15
# paho's default limit of QoS 1/2 messages in flight at once.
_PAHO_MAX_INFLIGHT: Final = 20
# paho's default WebSocket request target.
_DEFAULT_WEBSOCKET_PATH: Final = "/mqtt"
# The DISCONNECT reason code paho reports for a connection that broke.
_UNSPECIFIED_ERROR: Final = 0x80

_REENTRANT: Final = "The client context manager is reusable, but not reentrant"
_TIMED_OUT: Final = "Operation timed out"
_DISCONNECTED: Final = "Disconnected during message iteration"
_QUEUE_FULL: Final = "Message queue is full. Discarding message."
_PENDING_CALLS: Final = "There are %d pending publish calls."
_FORCED: Final = "Could not gracefully disconnect: %d. Forcing disconnection."
_NOT_PUBLISHED: Final = "Could not publish message"
_NOT_SUBSCRIBED: Final = "Could not subscribe to topic"
_NOT_UNSUBSCRIBED: Final = "Could not unsubscribe from topic"

# Headers of the WebSocket handshake itself, which the engine writes; a header
# callable may not replace them.
_HANDSHAKE_HEADERS: Final = frozenset(
    {
        "host",
        "upgrade",
        "connection",
        "sec-websocket-key",
        "sec-websocket-version",
        "sec-websocket-protocol",
        "sec-websocket-extensions",
    }
)

# ------------------------------------------------------------------ topic matching


def _matches(topic: str, topic_filter: str) -> bool:
    # MQTT's matching rules ([v5:MQTT-4.7.1-2], [v5:MQTT-4.7.1-3]), with a shared
    # subscription's "$share/<group>/" skipped and "$" topics kept away from filters
    # that start with a wildcard ([v5:MQTT-4.7.2-1]).
    if topic_filter.startswith("$share/"):
        parts = topic_filter.split("/", 2)
        if len(parts) < 3:
            return False
        topic_filter = parts[2]
    levels = topic.split("/")
    patterns = topic_filter.split("/")
    if topic.startswith("$") and patterns[0] in ("+", "#"):
        return False
    for index, pattern in enumerate(patterns):
        if pattern == "#":
            return True
        if index >= len(levels) or pattern not in ("+", levels[index]):
            return False
    return len(levels) == len(patterns)


# --------------------------------------------------------------------- records


@attrs.frozen
class _Disconnection:
    """The client disconnected; ``error`` is None when it was on purpose."""

    error: BaseException | None


@attrs.define(eq=False)
class _Connection:
    """One ``async with``: its engine client, task group and their progress."""

    engine: MqttClient
    group: anyio.abc.TaskGroup
    engine_ended: bool = False
    pump_ready: anyio.Event = attrs.Factory(anyio.Event)
    pump_done: anyio.Event = attrs.Factory(anyio.Event)
    engine_done: anyio.Event = attrs.Factory(anyio.Event)
    error: BaseException | None = None


class _StartStatus:
    """A task status that remembers whether ``started()`` was called."""

    def __init__(
        self, inner: anyio.abc.TaskStatus[None], scope: anyio.CancelScope
    ) -> None:
        self._inner = inner
        self._scope = scope
        self.fired = False

    def started(self, value: None = None) -> None:
        self.fired = True
        # Connected: from here on the engine is aiomqtt's background task, which
        # the body's cancellation does not reach; ``__aexit__`` disconnects it.
        self._scope.shield = True
        self._inner.started()


# ----------------------------------------------------------------------- queues


class _Inbox(Generic[_T]):
    """A queue of the application's type, filled without waiting, read by tasks."""

    __slots__ = ("_client", "_full_message", "_queue")

    def __init__(
        self, client: Client, queue: asyncio.Queue[_T], full_message: str
    ) -> None:
        self._client = client
        self._queue = queue
        self._full_message = full_message

    def put(self, item: _T) -> None:
        try:
            self._queue.put_nowait(item)
        except asyncio.QueueFull:
            self._client._logger.warning(self._full_message)
            return
        self._client._wake()

    def qsize(self) -> int:
        return self._queue.qsize()

    async def get(self) -> _T:
        await anyio.lowlevel.checkpoint()
        client = self._client
        while True:
            try:
                return self._queue.get_nowait()
            except asyncio.QueueEmpty:
                pass
            gone = client._disconnection
            if gone is not None:
                raise MqttError(_DISCONNECTED) from gone.error
            await client._wait_for_change()


class MessagesIterator:
    """The client's message queue, as an async iterator (``client.messages``).

    Every message the client receives is queued, from the client's construction on,
    and handed to exactly one consumer: several tasks may iterate at once. Iteration
    never ends by itself; after a disconnection it raises
    ``MqttError("Disconnected during message iteration")`` once the messages queued
    before it have been handed out. ``len()`` is the number of queued messages.

    For asyncio-mqtt 0.16 code, calling it (``client.messages()``) returns that
    version's async context manager, see `__call__`.

    Args:
        client: The client whose queue this is.
    """

    def __init__(self, client: Client) -> None:
        self._client = client

    def __aiter__(self) -> AsyncIterator[Message]:
        return self

    async def __anext__(self) -> Message:
        """Wait for the next message (a checkpoint, even when one is queued).

        Raises:
            MqttError: ``Disconnected during message iteration`` when the client is
                disconnected and no message is queued.
        """
        return await self._client._inbox.get()

    def __len__(self) -> int:
        """Return the number of messages in the queue."""
        return self._client._inbox.qsize()

    def __call__(
        self,
        *,
        queue_class: type[asyncio.Queue[Message]] | None = None,
        queue_maxsize: int = 0,
    ) -> AbstractAsyncContextManager[MessageGenerator[Message]]:
        """asyncio-mqtt 0.16's ``async with client.messages() as messages:``.

        The context has its own queue, which gets every message the client receives
        while it is open (unless a ``filtered_messages`` filter takes it), as in
        0.16. While any such context is open, messages do not go to the client-wide
        queue.

        Args:
            queue_class: The queue class (default ``asyncio.Queue``).
            queue_maxsize: Bound of that queue; 0 or less is unbounded. When it is
                full, messages are dropped with a warning.

        Returns:
            An async context manager yielding an async iterator of `Message`.
        """
        return self._client._legacy_messages(
            queue_class=queue_class, queue_maxsize=queue_maxsize
        )


@final
class MessageGenerator(Generic[_T]):
    """What asyncio-mqtt 0.16's message contexts yield: an async iterator.

    It raises ``MqttError("Disconnected during message iteration")`` after a
    disconnection, once its queued messages are handed out. Made by the client.
    """

    def __init__(self, inbox: _Inbox[_T]) -> None:
        self._inbox = inbox

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> _T:
        """Wait for the next message of this context."""
        return await self._inbox.get()

    async def aclose(self) -> None:
        """Do nothing (the context's exit detaches it); for generator-style code."""
        await anyio.lowlevel.checkpoint()


@final
class LegacyMessage:
    """A received message as asyncio-mqtt 0.16's ``filtered_messages`` gave it.

    Those contexts yielded paho's ``MQTTMessage``, whose ``topic`` is a plain
    ``str``; this has the same attributes. Made by the client.
    """

    __slots__ = ("dup", "mid", "payload", "properties", "qos", "retain", "topic")

    topic: str
    """The topic the message was published to."""
    payload: bytes
    """The message payload."""
    qos: int
    """The QoS it was delivered with."""
    retain: bool
    """Whether the broker sent it from its retained store."""
    mid: int
    """The packet identifier (0 for QoS 0)."""
    dup: bool
    """Whether the broker marked it as a possible re-delivery."""
    properties: Properties | None
    """(MQTT 5 only) the properties of the PUBLISH."""

    def __init__(self, message: EngineMessage, *, mqtt5: bool) -> None:
        converted = Message._from_engine(message, mqtt5=mqtt5)
        self.topic = message.topic
        self.payload = message.payload
        self.qos = converted.qos
        self.retain = message.retain
        self.mid = converted.mid
        self.dup = message.dup
        self.properties = converted.properties

    def __repr__(self) -> str:
        return (
            f"LegacyMessage(topic={self.topic!r}, payload=<{len(self.payload)} bytes>, "
            f"qos={self.qos}, retain={self.retain}, mid={self.mid})"
        )


@final
class MessageStream:
    """The messages of one ``client.subscription()``, as `Message` objects.

    An extension of aiomqtt: each stream has its own bounded buffer, so a slow
    consumer of one topic does not hold up the others. Iteration ends when the
    subscription context is left or the client disconnects on purpose, and raises
    ``MqttError("Disconnected during message iteration")`` when the connection was
    lost. Made by `Client.subscription`.
    """

    def __init__(self, client: Client, conn: _Connection, sub: Subscription) -> None:
        self._client = client
        self._conn = conn
        self._sub = sub
        self._left = False  # the subscription context was left

    @property
    def topic_filter(self) -> str:
        """The topic filter subscribed to."""
        return self._sub.topic_filter

    @property
    def granted_qos(self) -> int | None:
        """The QoS the broker granted (from SUBACK)."""
        qos = self._sub.granted_qos
        return None if qos is None else int(qos)

    def statistics(self) -> SubscriptionStatistics:
        """Counters of the stream: queued, delivered, dropped messages."""
        return self._sub.statistics()

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> Message:
        """Wait for the next message of this subscription."""
        try:
            return await self.receive()
        except _StreamEnded:
            raise StopAsyncIteration from None

    async def receive(self) -> Message:
        """Wait for the next message of this subscription.

        Raises:
            anyio.EndOfStream: The subscription ended.
            MqttError: ``Disconnected during message iteration`` when the
                connection was lost.
        """
        try:
            message = await self._sub.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            if not self._left:
                # The engine ended every stream: wait until the loss (if it was
                # one) is recorded, to tell a lost connection from a closed client.
                await self._conn.engine_done.wait()
                if self._conn.error is not None:
                    raise MqttError(_DISCONNECTED) from self._conn.error
            raise _StreamEnded from None
        return Message._from_engine(message, mqtt5=self._client._mqtt5)


class _StreamEnded(anyio.EndOfStream):
    """A `MessageStream` ended normally."""


# ------------------------------------------------------------------------ client


class Client:
    """The MQTT client of aiomqtt 2.5.1, on trio_mqttconn: use it with ``async with``.

    ``async with client:`` connects (and waits for CONNACK within ``timeout``) and
    leaving it disconnects gracefully. The client is reusable but not reentrant.
    Received messages are read from `messages`. The client can be created outside a
    running event loop, and works under asyncio and trio.

    Example::

        async with Client("test.mosquitto.org") as client:
            await client.subscribe("sensors/#")
            async for message in client.messages:
                print(message.topic, message.payload)

    Args:
        hostname: Host name or IP address of the broker; with ``transport="unix"``
            the path of its unix socket.
        port: Port of the broker.
        username: User name to authenticate with.
        password: Password to authenticate with (only sent with a user name); never
            logged or shown.
        logger: Logger for the client's warnings (default: the ``mqtt`` logger).
        identifier: The client identifier; None sends an empty one, and the broker
            assigns one (``client.identifier`` stays ``""``).
        queue_type: Class of the message queue, an ``asyncio.Queue`` subclass:
            ``asyncio.LifoQueue``, a ``PriorityQueue`` subclass ... (default
            ``asyncio.Queue``, FIFO).
        protocol: MQTT version, `ProtocolVersion.V311` (default) or ``V5``.
        will: The message the broker publishes if the client vanishes.
        clean_session: (MQTT 3.1.1) False keeps the session (needs ``identifier``).
        transport: ``"tcp"``, ``"websockets"`` or ``"unix"``.
        timeout: Default seconds for connecting and for each operation
            (``math.inf``: wait forever); None means 10.
        keepalive: Keep alive interval in seconds.
        bind_address: Local address to connect from.
        bind_port: Local port to connect from.
        clean_start: (MQTT 5) True, False or ``MQTT_CLEAN_START_FIRST_ONLY``
            (default: a clean start on each ``async with``).
        max_queued_incoming_messages: Bound of the message queue; a message that
            does not fit is dropped with a warning. None, 0 or less: unbounded.
        max_queued_outgoing_messages: Most QoS 1/2 publishes pending at once; more
            raise ``MqttCodeError`` 15. None or 0: unbounded.
        max_inflight_messages: Most QoS 1/2 publishes on the wire at once; more
            wait (default 20, as paho; 0 is no limit).
        max_concurrent_outgoing_calls: Most publish/subscribe/unsubscribe calls
            running at once; more wait. None: no limit.
        properties: (MQTT 5) CONNECT properties.
        tls_context: TLS settings; enables TLS.
        tls_params: TLS settings as paho's ``tls_set()`` takes them; enables TLS.
        tls_insecure: True skips the check that the certificate names the host.
        proxy: Not supported yet: connecting raises ``NotImplementedError``.
        socket_options: ``setsockopt`` arguments applied to the TCP or unix socket
            (not to WebSocket connections, as in aiomqtt).
        websocket_path: WebSocket request target (default ``/mqtt``).
        websocket_headers: Extra WebSocket handshake headers: a dict, or a function
            that returns them (it gets an empty dict).
        reconnect: Extension: reconnect by itself after a lost connection (see the
            migration guide); aiomqtt never does (the default, False).
        client_id: asyncio-mqtt 0.16's name of ``identifier``.
        message_retry_set: Accepted for asyncio-mqtt 0.16 code; ignored, as by paho.
        max_queued_messages: asyncio-mqtt 0.16's name of
            ``max_queued_outgoing_messages``.

    Raises:
        ValueError: For an unknown ``transport``, ``clean_session`` with MQTT 5, a
            persistent MQTT 3.1.1 session without ``identifier``, or both
            ``identifier`` and ``client_id``.
    """

    timeout: float
    """Default timeout of connecting and of each operation, in seconds."""
    pending_calls_threshold: int
    """Above this many pending calls, each new call logs a warning (default 10)."""

    def __init__(
        self,
        hostname: str,
        port: int = 1883,
        *,
        username: str | None = None,
        password: str | None = None,
        logger: logging.Logger | None = None,
        identifier: str | None = None,
        queue_type: type[asyncio.Queue[Message]] | None = None,
        protocol: ProtocolVersion | None = None,
        will: Will | None = None,
        clean_session: bool | None = None,
        transport: Literal["tcp", "websockets", "unix"] = "tcp",
        timeout: float | None = None,
        keepalive: int = 60,
        bind_address: str = "",
        bind_port: int = 0,
        clean_start: CleanStartOption = MQTT_CLEAN_START_FIRST_ONLY,
        max_queued_incoming_messages: int | None = None,
        max_queued_outgoing_messages: int | None = None,
        max_inflight_messages: int | None = None,
        max_concurrent_outgoing_calls: int | None = None,
        properties: Properties | None = None,
        tls_context: ssl.SSLContext | None = None,
        tls_params: TLSParameters | None = None,
        tls_insecure: bool | None = None,
        proxy: ProxySettings | None = None,
        socket_options: Iterable[SocketOption] | None = None,
        websocket_path: str | None = None,
        websocket_headers: WebSocketHeaders | None = None,
        reconnect: bool = False,
        client_id: str | None = None,
        message_retry_set: int = 20,
        max_queued_messages: int | None = None,
    ) -> None:
        if transport not in ("tcp", "websockets", "unix"):
            msg = f'transport must be "websockets", "tcp" or "unix", not {transport}'
            raise ValueError(msg)
        if client_id is not None:
            if identifier is not None:
                msg = (
                    "identifier and client_id are the same setting; pass only "
                    "identifier"
                )
                raise ValueError(msg)
            identifier = client_id
        if max_queued_messages is not None:
            if max_queued_outgoing_messages is not None:
                msg = (
                    "max_queued_outgoing_messages and max_queued_messages are the "
                    "same setting; pass only max_queued_outgoing_messages"
                )
                raise ValueError(msg)
            max_queued_outgoing_messages = max_queued_messages
        self._protocol = ProtocolVersion(
            ProtocolVersion.V311 if protocol is None else protocol
        )
        self._mqtt5 = self._protocol == ProtocolVersion.V5
        self._identifier = resolve_identifier(
            identifier, protocol=self._protocol, clean_session=clean_session
        )
        self._hostname = hostname
        self._port = port
        self._username = username
        self._password = password
        self._logger = MQTT_LOGGER if logger is None else logger
        self._will = will
        self._clean_session = clean_session
        self._transport = transport
        self.timeout = 10 if timeout is None else timeout
        self._keepalive = keepalive
        self._bind_address = bind_address
        self._bind_port = bind_port
        self._clean_start: CleanStartOption = clean_start
        self._max_queued_outgoing = max_queued_outgoing_messages or 0
        self._properties = properties
        self._tls_context = tls_context
        self._tls_params = tls_params
        self._tls_insecure = tls_insecure
        self._tls: ssl.SSLContext | None = None
        self._tls_built = False
        self._proxy = proxy
        self._socket_options: tuple[SocketOption, ...] = tuple(socket_options or ())
        self._websocket_path = websocket_path
        self._websocket_headers = websocket_headers
        self._reconnect = reconnect
        self.pending_calls_threshold = 10

        queue_class = asyncio.Queue if queue_type is None else queue_type
        self._queue: asyncio.Queue[Message] = queue_class(
            maxsize=max_queued_incoming_messages or 0
        )
        self._inbox: _Inbox[Message] = _Inbox(self, self._queue, _QUEUE_FULL)
        # anyio's primitives made outside an event loop bind on first use.
        self._outgoing_calls: anyio.Semaphore | None = (
            None
            if max_concurrent_outgoing_calls is None
            else anyio.Semaphore(max_concurrent_outgoing_calls)
        )
        inflight = (
            _PAHO_MAX_INFLIGHT
            if max_inflight_messages is None
            else max_inflight_messages
        )
        self._inflight: anyio.Semaphore | None = (
            anyio.Semaphore(inflight) if inflight > 0 else None
        )
        self._pending_calls = 0
        self._outgoing_qos = 0

        self._entered = False
        self._conn: _Connection | None = None
        self._disconnection: _Disconnection | None = None
        self._changed: anyio.Event | None = None
        self._stream_filters: list[str] = []
        self._legacy_all: list[_Inbox[Message]] = []
        self._legacy_filtered: list[tuple[str, _Inbox[LegacyMessage]]] = []
        self._legacy_unfiltered: _Inbox[LegacyMessage] | None = None

    def __repr__(self) -> str:
        state = "connected" if self._conn is not None else "disconnected"
        return (
            f"<aiomqtt.Client {self._hostname!r}:{self._port} "
            f"identifier={self._identifier!r} {state}>"
        )

    # -- properties -------------------------------------------------------------------

    @property
    def identifier(self) -> str:
        """The client identifier given (``""`` when the broker assigns one)."""
        return self._identifier

    @property
    def id(self) -> str:
        """asyncio-mqtt 0.16's name of `identifier`."""
        return self._identifier

    @property
    def messages(self) -> MessagesIterator:
        """The client's message queue: ``async for message in client.messages``."""
        return MessagesIterator(self)

    # -- connecting -------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        """Connect to the broker; returns after CONNACK.

        Raises:
            MqttReentrantError: The client is already connected or connecting (in
                this task or another).
            MqttConnectError: The broker refused the connection.
            MqttError: The broker could not be reached (the message says why), or
                ``Operation timed out``.
        """
        await self._enter(self.timeout)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Disconnect gracefully; never hides the body's exception.

        A no-op when the client is not connected. The DISCONNECT is shielded from
        cancellation and bounded by ``timeout``.
        """
        conn = self._conn
        if conn is None:
            return
        self._conn = None
        try:
            with anyio.CancelScope(shield=True):
                connected = conn.engine.is_connected
                await conn.engine.aclose()
                # The engine task has recorded a lost connection, if it was one, and
                # the pump has handed every received message to the queue.
                await conn.engine_done.wait()
                await conn.pump_done.wait()
                if not connected and conn.error is None:
                    # Not connected, yet not lost either: reconnecting.
                    self._logger.warning(_FORCED, _MQTT_ERR_NO_CONN)
                if self._disconnection is None:
                    self._set_disconnected(None)
        finally:
            try:
                await self._close_group(conn.group, body_failed=exc is not None)
            finally:
                self._entered = False

    async def _enter(self, seconds: float) -> None:
        if self._entered:
            raise MqttReentrantError(_REENTRANT)
        self._entered = True
        try:
            await self._connect(seconds)
        except BaseException:
            self._entered = False
            raise

    async def _connect(self, seconds: float) -> None:
        engine = self._new_engine()
        group = anyio.create_task_group()
        await group.__aenter__()
        conn = _Connection(engine=engine, group=group)
        try:
            with anyio.move_on_after(seconds) as scope:
                await group.start(self._run_engine, conn)
                await conn.pump_ready.wait()
            if scope.cancelled_caught:
                raise MqttError(_TIMED_OUT)
        except BaseException as exc:
            with anyio.CancelScope(shield=True):
                await engine.aclose()
            await self._close_group(group, body_failed=True)
            error = _connect_error(exc)
            if error is exc:
                raise
            raise error from exc
        self._conn = conn
        self._disconnection = None
        self._wake()

    def _new_engine(self) -> MqttClient:
        """Check the connection settings, as paho's ``connect()`` does, and build."""
        reject_proxy(self._proxy)
        protocol = to_engine_protocol(self._protocol)
        check_connect_options(
            protocol=self._protocol,
            clean_start=self._clean_start,
            properties=self._properties,
        )
        record = properties_to_record(self._properties if self._mqtt5 else None)
        will = (
            None
            if self._will is None
            else will_to_engine(self._will, protocol=self._protocol)
        )
        context = self._tls_settings()
        if self._mqtt5:
            clean = self._clean_start is not False
        else:
            clean = self._clean_session is not False
        timeout = self.timeout
        try:
            return MqttClient(
                self._uri(tls=context is not None),
                client_id=self._identifier,
                protocol=protocol,
                username=self._username,
                password=None if self._username is None else self._password,
                keepalive=self._keepalive,
                clean_start=clean,
                will=will,
                ssl_context=context,
                tls_insecure=bool(self._tls_insecure),
                connect_timeout=timeout if 0 < timeout < math.inf else 0,
                reconnect=self._reconnect,
                properties=record,
                receive_maximum=record.receive_maximum or 65535,
                maximum_packet_size=record.maximum_packet_size,
                topic_alias_maximum=record.topic_alias_maximum or 0,
                disconnect_timeout=max(timeout, 0),
                websocket_headers=self._extra_headers(),
                transport=self._socket_transport(context),
            )
        except EngineMqttError as exc:  # e.g. a host name no URI can hold
            raise MqttError(str(exc)) from exc

    def _tls_settings(self) -> ssl.SSLContext | None:
        # Built once, like aiomqtt's _set_tls_params (it may read certificate files).
        if not self._tls_built:
            try:
                self._tls = build_tls_context(
                    self._tls_context, self._tls_params, self._tls_insecure
                )
            except OSError as exc:
                raise MqttError(str(exc)) from exc
            self._tls_built = True
        return self._tls

    def _uri(self, *, tls: bool) -> str:
        if self._transport == "unix":
            if tls:
                msg = (
                    "TLS over a unix socket is not supported by trio_mqttconn; "
                    "remove the TLS settings or use transport='tcp'"
                )
                raise NotImplementedError(msg)
            path = quote(self._hostname)
            return f"unix://{path}" if path.startswith("/") else f"unix:{path}"
        host = self._hostname
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        if self._transport == "websockets":
            path = self._websocket_path or _DEFAULT_WEBSOCKET_PATH
            if not path.startswith("/"):
                path = f"/{path}"
            return f"{'wss' if tls else 'ws'}://{host}:{self._port}{path}"
        return f"{'mqtts' if tls else 'mqtt'}://{host}:{self._port}"

    def _extra_headers(self) -> dict[str, str] | None:
        headers = self._websocket_headers
        if headers is None or self._transport != "websockets":
            return None
        if callable(headers):
            # paho hands the function its default headers and sends what it
            # returns; the engine writes the handshake headers itself, so the
            # function gets an empty dict and may only add others.
            headers = headers({})
        return {
            str(name): str(value)
            for name, value in headers.items()
            if str(name).lower() not in _HANDSHAKE_HEADERS
        }

    def _socket_transport(
        self, context: ssl.SSLContext | None
    ) -> Callable[[Endpoint], Awaitable[anyio.abc.ByteStream]] | None:
        """A transport that binds and sets socket options (None: the engine's)."""
        bind = bool(self._bind_address or self._bind_port)
        options = self._socket_options
        if not (bind or options):
            return None
        if self._transport == "websockets":
            if bind:
                msg = (
                    "bind_address and bind_port are not supported with "
                    "transport='websockets' yet; remove them or use transport='tcp'"
                )
                raise NotImplementedError(msg)
            # aiomqtt applies no socket options to WebSocket connections.
            return None
        local_host = self._bind_address or ("0.0.0.0" if self._bind_port else None)
        local_port = self._bind_port or None
        insecure = bool(self._tls_insecure)

        async def open_stream(endpoint: Endpoint) -> anyio.abc.ByteStream:
            stream: anyio.abc.SocketStream
            if endpoint.scheme == "unix":
                stream = await anyio.connect_unix(endpoint.path)
            else:
                stream = await anyio.connect_tcp(
                    endpoint.host,
                    endpoint.port,
                    local_host=local_host,
                    local_port=local_port,
                )
            try:
                sock = stream.extra(anyio.abc.SocketAttribute.raw_socket)
                if endpoint.scheme != "unix":
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                for option in options:
                    _set_socket_option(sock, option)
                if endpoint.tls:
                    tls_context = context or ssl.create_default_context()
                    if insecure:
                        tls_context.check_hostname = False
                    return await TLSStream.wrap(
                        stream,
                        hostname=endpoint.host,
                        ssl_context=tls_context,
                        standard_compatible=False,
                    )
            except BaseException:
                await anyio.aclose_forcefully(stream)
                raise
            return stream

        return open_stream

    # -- background tasks ---------------------------------------------------------------

    async def _run_engine(
        self,
        conn: _Connection,
        *,
        task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        shield = anyio.CancelScope()
        status = _StartStatus(task_status, shield)
        # The pump's first step runs while the engine waits for the network: its
        # stream exists before CONNACK, so nothing the broker sends right after
        # CONNACK (a persistent session's queued messages) is missed.
        conn.group.start_soon(self._pump, conn, name="aiomqtt-pump")
        try:
            try:
                with shield:
                    await conn.engine.run(task_status=status)
            finally:
                conn.engine_ended = True
        except Exception as exc:
            if not status.fired:
                raise
            # The connection is gone (aiomqtt never reconnects by itself; with
            # reconnect=True only a fatal error gets here). Recorded at once, for
            # the calls the engine just failed; announced once the pump is done.
            conn.error = _unexpected_disconnection(exc)
            await conn.pump_done.wait()
            if self._conn is conn and self._disconnection is None:
                self._set_disconnected(conn.error)
        finally:
            conn.engine_done.set()

    async def _pump(self, conn: _Connection) -> None:
        try:
            while True:
                try:
                    messages = conn.engine.messages()
                    stream = await messages.__aenter__()
                    break
                except NotOpenError:
                    if conn.engine_ended:
                        return  # the engine ended first; the engine task says why
                    # Not started yet (an eager task factory ran us first).
                    await anyio.lowlevel.checkpoint()
            conn.pump_ready.set()
            try:
                deliver = self._deliver
                while True:
                    try:
                        message = stream.receive_nowait()
                    except anyio.WouldBlock:
                        message = await stream.receive()
                    deliver(message)
            except (anyio.EndOfStream, anyio.ClosedResourceError):
                pass
            finally:
                with anyio.CancelScope(shield=True):
                    await messages.__aexit__(None, None, None)
        finally:
            conn.pump_ready.set()
            conn.pump_done.set()

    async def _close_group(
        self, group: anyio.abc.TaskGroup, *, body_failed: bool
    ) -> None:
        group.cancel_scope.cancel()
        try:
            await group.__aexit__(None, None, None)
        except BaseExceptionGroup as group_error:
            if body_failed:
                return  # the body's (or the connect's) exception is what matters
            leaves = _leaves(group_error)
            cancelled = anyio.get_cancelled_exc_class()
            if all(isinstance(leaf, cancelled) for leaf in leaves):
                raise leaves[0] from None
            msg = (
                "a background task of the client failed; this is a bug in "
                "trio_mqttconn, please report it with the traceback"
            )
            raise MqttError(msg) from group_error

    # -- message routing ------------------------------------------------------------------

    def _deliver(self, message: EngineMessage) -> None:
        topic = message.topic
        if self._stream_filters and any(
            _matches(topic, topic_filter) for topic_filter in self._stream_filters
        ):
            return  # a client.subscription() stream has it
        if (
            self._legacy_all
            or self._legacy_filtered
            or self._legacy_unfiltered is not None
        ):
            self._deliver_legacy(message)
            return
        self._inbox.put(Message._from_engine(message, mqtt5=self._mqtt5))

    def _deliver_legacy(self, message: EngineMessage) -> None:
        # paho's dispatch, which asyncio-mqtt 0.16 relied on: a message that matches
        # a filter callback goes to those only; the others go to on_message.
        topic = message.topic
        matched = False
        for topic_filter, inbox in self._legacy_filtered:
            if _matches(topic, topic_filter):
                inbox.put(LegacyMessage(message, mqtt5=self._mqtt5))
                matched = True
        if matched:
            return
        if self._legacy_unfiltered is not None:
            self._legacy_unfiltered.put(LegacyMessage(message, mqtt5=self._mqtt5))
        for inbox_all in self._legacy_all:
            inbox_all.put(Message._from_engine(message, mqtt5=self._mqtt5))

    def _wake(self) -> None:
        changed = self._changed
        if changed is not None:
            self._changed = None
            changed.set()

    async def _wait_for_change(self) -> None:
        if self._changed is None:
            self._changed = anyio.Event()
        await self._changed.wait()

    def _set_disconnected(self, error: BaseException | None) -> None:
        self._disconnection = _Disconnection(error)
        self._wake()

    # -- operations -----------------------------------------------------------------------

    def _live_engine(self, what: str) -> MqttClient:
        conn = self._conn
        if (
            conn is None
            or conn.error is not None
            or self._disconnection is not None
            # Lost, and the engine task has not said so yet.
            or (not self._reconnect and not conn.engine.is_connected)
        ):
            gone = self._disconnection
            cause = conn.error if conn is not None else None
            if cause is None and gone is not None:
                cause = gone.error
            raise MqttCodeError(_MQTT_ERR_NO_CONN, what) from cause
        return conn.engine

    @contextlib.asynccontextmanager
    async def _outgoing_call(self) -> AsyncIterator[None]:
        semaphore = self._outgoing_calls
        if semaphore is None:
            yield
            return
        async with semaphore:
            yield

    @contextlib.contextmanager
    def _pending_call(self) -> Iterator[None]:
        self._pending_calls += 1
        try:
            if self._pending_calls > self.pending_calls_threshold:
                self._logger.warning(_PENDING_CALLS, self._pending_calls)
            yield
        finally:
            self._pending_calls -= 1

    @contextlib.contextmanager
    def _deadline(self, timeout: float | None) -> Iterator[None]:
        with anyio.move_on_after(self.timeout if timeout is None else timeout) as scope:
            yield
        if scope.cancelled_caught:
            raise MqttError(_TIMED_OUT)

    async def subscribe(
        self,
        /,
        topic: SubscribeTopic,
        qos: int = 0,
        options: SubscribeOptions | None = None,
        properties: Properties | None = None,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 (aiomqtt's API)
    ) -> list[ReasonCode]:
        """Subscribe to one or more topic filters; wait for SUBACK.

        Args:
            topic: ``"a/b"``, ``("a/b", options_or_qos)`` or a list of such tuples
                (the shapes depend on the protocol, as with paho).
            qos: The QoS to subscribe with (with a single filter).
            options: (MQTT 5) subscribe options instead of ``qos``.
            properties: (MQTT 5) SUBSCRIBE properties.
            timeout: Seconds to wait for SUBACK (None: ``client.timeout``;
                ``math.inf``: forever).

        Returns:
            One reason code per filter, in order (granted QoS or a refusal).

        Raises:
            ValueError: An argument is wrong (paho's messages).
            MqttCodeError: ``[code:4] ...`` when the client is not connected.
            MqttError: ``Operation timed out``.
        """
        async with self._outgoing_call():
            pairs = normalise_subscribe_topics(
                topic, qos, options, properties, protocol=self._protocol
            )
            record = properties_to_record(properties) if self._mqtt5 else None
            requests = [to_topic_subscription(name, opts) for name, opts in pairs]
            engine = self._live_engine(_NOT_SUBSCRIBED)
            codes: tuple[int, ...] = ()
            with self._pending_call(), self._deadline(timeout):
                try:
                    codes = await engine.subscribe_filters(requests, properties=record)
                except EngineMqttError as exc:
                    raise _operation_error(exc, _NOT_SUBSCRIBED) from exc
            return [reason_code_from_engine(code, PacketTypes.SUBACK) for code in codes]

    async def unsubscribe(
        self,
        /,
        topic: str | list[str],
        properties: Properties | None = None,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 (aiomqtt's API)
    ) -> None:
        """Unsubscribe from one or more topic filters; wait for UNSUBACK.

        Args:
            topic: A topic filter or a list of them.
            properties: (MQTT 5) UNSUBSCRIBE properties.
            timeout: Seconds to wait for UNSUBACK (None: ``client.timeout``).

        Raises:
            ValueError: An argument is wrong (paho's messages).
            MqttCodeError: ``[code:4] ...`` when the client is not connected.
            MqttError: ``Operation timed out``.
        """
        async with self._outgoing_call():
            filters = normalise_unsubscribe_topics(topic)
            record = properties_to_record(properties) if self._mqtt5 else None
            engine = self._live_engine(_NOT_UNSUBSCRIBED)
            with self._pending_call(), self._deadline(timeout):
                try:
                    await engine.unsubscribe_filters(filters, properties=record)
                except EngineMqttError as exc:
                    raise _operation_error(exc, _NOT_UNSUBSCRIBED) from exc

    async def publish(
        self,
        /,
        topic: str,
        payload: PayloadType = None,
        qos: int = 0,
        retain: bool = False,
        properties: Properties | None = None,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 (aiomqtt's API)
    ) -> None:
        """Publish a message and wait until it is sent (QoS 0) or acknowledged.

        Payloads follow paho's rules: ``str`` is sent as UTF-8, ``int`` and
        ``float`` as their text, None as an empty payload, ``bytes`` and
        ``bytearray`` unchanged; anything else is a ``TypeError``. As in aiomqtt,
        a negative PUBACK/PUBREC reason code (MQTT 5) is not an error.

        Args:
            topic: The topic to publish to.
            payload: The payload.
            qos: 0, 1 or 2.
            retain: Whether the broker retains the message.
            properties: (MQTT 5) PUBLISH properties.
            timeout: Seconds to wait (None: ``client.timeout``).

        Raises:
            ValueError: An argument is wrong (paho's messages).
            TypeError: The payload has an unsupported type.
            MqttCodeError: ``[code:4] ...`` when the client is not connected,
                ``[code:15] ...`` when ``max_queued_outgoing_messages`` are pending.
            MqttError: ``Operation timed out``.
        """
        async with self._outgoing_call():
            name, data = check_publish(topic, payload, qos, protocol=self._protocol)
            record = properties_to_record(properties) if self._mqtt5 else None
            engine = self._live_engine(_NOT_PUBLISHED)
            limit = self._max_queued_outgoing
            if qos and limit > 0 and self._outgoing_qos >= limit:
                raise MqttCodeError(_MQTT_ERR_QUEUE_SIZE, _NOT_PUBLISHED)
            with self._pending_call(), self._deadline(timeout):
                try:
                    if qos:
                        await self._publish_acknowledged(
                            engine, name, data, QoS(qos), bool(retain), record
                        )
                    else:
                        await engine.publish(
                            name, data, retain=bool(retain), properties=record
                        )
                except PublishError:
                    pass  # aiomqtt ignores the reason code of PUBACK and PUBREC
                except EngineMqttError as exc:
                    raise _operation_error(exc, _NOT_PUBLISHED) from exc

    async def _publish_acknowledged(
        self,
        engine: MqttClient,
        topic: str,
        payload: bytes,
        qos: QoS,
        retain: bool,
        properties: PropertiesRecord | None,
    ) -> None:
        self._outgoing_qos += 1
        try:
            inflight = self._inflight
            if inflight is None:
                await engine.publish(
                    topic, payload, qos=qos, retain=retain, properties=properties
                )
                return
            async with inflight:
                await engine.publish(
                    topic, payload, qos=qos, retain=retain, properties=properties
                )
        finally:
            self._outgoing_qos -= 1

    # -- extension: per-topic streams ---------------------------------------------------

    @contextlib.asynccontextmanager
    async def subscription(
        self,
        topic_filter: str | Wildcard,
        qos: int = 0,
        *,
        options: SubscribeOptions | None = None,
        properties: Properties | None = None,
        buffer: int = 1000,
        overflow: Literal["wait", "drop_oldest"] = "wait",
        timeout: float | None = None,  # noqa: ASYNC109 (aiomqtt's API)
    ) -> AsyncIterator[MessageStream]:
        """Subscribe to one filter and get its messages in a stream of their own.

        An extension of aiomqtt (engine subscriptions): subscribes on enter (after
        SUBACK), unsubscribes on exit. Messages that match an open stream's filter
        go to the stream(s), not to ``client.messages``. Each stream has its own
        bounded buffer: when it is full the client waits for the consumer
        (``overflow="wait"``, lossless) or drops the oldest message
        (``"drop_oldest"``).

        Example::

            async with client.subscription("sensors/+/temperature") as stream:
                async for message in stream:
                    print(message.topic, message.payload)

        Args:
            topic_filter: The topic filter.
            qos: The QoS to subscribe with.
            options: (MQTT 5) subscribe options instead of ``qos``.
            properties: (MQTT 5) SUBSCRIBE properties.
            buffer: Capacity of the stream's buffer.
            overflow: ``"wait"`` or ``"drop_oldest"``.
            timeout: Seconds to wait for SUBACK (None: ``client.timeout``).

        Raises:
            MqttCodeError: The broker refused (``[code:135] Not authorized`` ...), or
                ``[code:4] ...`` when the client is not connected.
            MqttError: ``Operation timed out``.
        """
        given: object = topic_filter  # checked at run time: callers may be untyped
        if not isinstance(given, str | Wildcard):
            msg = (
                "subscription() takes one topic filter (str or Wildcard), not "
                f"{type(given).__name__}; use one subscription per filter"
            )
            raise TypeError(msg)
        ((name, opts),) = normalise_subscribe_topics(
            topic_filter, qos, options, properties, protocol=self._protocol
        )
        request = to_topic_subscription(name, opts)
        record = properties_to_record(properties) if self._mqtt5 else None
        engine = self._live_engine(_NOT_SUBSCRIBED)
        conn = self._conn
        assert conn is not None
        # Registered before SUBACK: retained messages follow it at once.
        self._stream_filters.append(name)
        try:
            async with contextlib.AsyncExitStack() as stack:
                with self._deadline(timeout):
                    try:
                        sub = await stack.enter_async_context(
                            engine.subscription(
                                name,
                                qos=request.qos,
                                no_local=request.no_local,
                                retain_as_published=request.retain_as_published,
                                retain_handling=request.retain_handling,
                                buffer=buffer,
                                overflow=overflow,
                                properties=record,
                            )
                        )
                    except SubscribeError as exc:
                        code = reason_code_from_engine(
                            int(exc.reason_code), PacketTypes.SUBACK
                        )
                        raise MqttCodeError(code, _NOT_SUBSCRIBED) from exc
                    except EngineMqttError as exc:
                        raise _operation_error(exc, _NOT_SUBSCRIBED) from exc
                stream = MessageStream(self, conn, sub)
                try:
                    yield stream
                finally:
                    stream._left = True
        finally:
            self._stream_filters.remove(name)

    # -- asyncio-mqtt 0.16 ----------------------------------------------------------------

    async def connect(
        self,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 (0.16's API)
    ) -> None:
        """asyncio-mqtt 0.16's connect: what ``async with`` does on enter.

        Call `disconnect` in the same task, in a ``finally``: the connection's
        background tasks live in a task group opened here and closed there.

        Args:
            timeout: Seconds to wait for CONNACK (None: ``client.timeout``).
        """
        await self._enter(self.timeout if timeout is None else timeout)

    async def disconnect(
        self,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 (0.16's API)
    ) -> None:
        """asyncio-mqtt 0.16's disconnect: what ``async with`` does on exit.

        As in 0.16, if the connection had been lost, the error that ended it
        (``MqttCodeError``) is raised.

        Args:
            timeout: Accepted for 0.16 code; the DISCONNECT is bounded by the
                client's ``timeout``.
        """
        conn = self._conn
        await self.__aexit__(None, None, None)
        if conn is not None and conn.error is not None:
            raise conn.error

    async def force_disconnect(self) -> None:
        """asyncio-mqtt 0.16's force_disconnect: disconnect, never raising."""
        await self.__aexit__(None, None, None)

    @contextlib.asynccontextmanager
    async def _legacy_messages(
        self,
        *,
        queue_class: type[asyncio.Queue[Message]] | None,
        queue_maxsize: int,
    ) -> AsyncIterator[MessageGenerator[Message]]:
        queue = (asyncio.Queue if queue_class is None else queue_class)(
            maxsize=queue_maxsize
        )
        inbox = _Inbox(self, queue, _QUEUE_FULL)
        self._legacy_all.append(inbox)
        try:
            await anyio.lowlevel.checkpoint()
            yield MessageGenerator(inbox)
        finally:
            self._legacy_all.remove(inbox)

    @contextlib.asynccontextmanager
    async def filtered_messages(
        self, topic_filter: str, *, queue_maxsize: int = 0
    ) -> AsyncIterator[MessageGenerator[LegacyMessage]]:
        """asyncio-mqtt 0.16: the messages that match ``topic_filter``.

        They are `LegacyMessage` objects (``topic`` is a ``str``, as paho's). A
        message that matches a filter goes only to the filter contexts it matches.
        It does not subscribe: call `subscribe` too.

        Args:
            topic_filter: The filter messages are matched against.
            queue_maxsize: Bound of the context's queue (0: unbounded); when full,
                messages are dropped with a warning.
        """
        queue: asyncio.Queue[LegacyMessage] = asyncio.Queue(maxsize=queue_maxsize)
        entry = (
            topic_filter,
            _Inbox(self, queue, f'[topic_filter="{topic_filter}"] {_QUEUE_FULL}'),
        )
        self._legacy_filtered.append(entry)
        try:
            await anyio.lowlevel.checkpoint()
            yield MessageGenerator(entry[1])
        finally:
            self._legacy_filtered.remove(entry)

    @contextlib.asynccontextmanager
    async def unfiltered_messages(
        self, *, queue_maxsize: int = 0
    ) -> AsyncIterator[MessageGenerator[LegacyMessage]]:
        """asyncio-mqtt 0.16: the messages that no `filtered_messages` filter takes.

        Only one such context may be open at a time.

        Args:
            queue_maxsize: Bound of the context's queue (0: unbounded); when full,
                messages are dropped with a warning.

        Raises:
            RuntimeError: Another ``unfiltered_messages`` context is open.
        """
        if self._legacy_unfiltered is not None:
            msg = "Only a single unfiltered_messages generator can be used at a time."
            raise RuntimeError(msg)
        queue: asyncio.Queue[LegacyMessage] = asyncio.Queue(maxsize=queue_maxsize)
        inbox = _Inbox(self, queue, f"[unfiltered] {_QUEUE_FULL}")
        self._legacy_unfiltered = inbox
        try:
            await anyio.lowlevel.checkpoint()
            yield MessageGenerator(inbox)
        finally:
            self._legacy_unfiltered = None


# ----------------------------------------------------------------------- helpers


def _leaves(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    found: list[BaseException] = []
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            found.extend(_leaves(exc))
        else:
            found.append(exc)
    return found


def _connect_error(exc: BaseException) -> BaseException:
    """The aiomqtt error for a failed connect (``exc`` itself when it has none)."""
    if isinstance(exc, BaseExceptionGroup):
        leaves = _leaves(exc)
        if len(leaves) == 1:
            return _connect_error(leaves[0])
        return exc
    if isinstance(exc, ConnectTimeout):
        return MqttError(_TIMED_OUT)
    if isinstance(exc, ConnectError) and exc.reason_code is not None:
        return MqttConnectError(
            reason_code_from_engine(exc.reason_code, PacketTypes.CONNACK)
        )
    if isinstance(exc, EngineMqttError):
        return MqttError(str(exc))
    return exc


def _set_socket_option(sock: socket.socket, option: SocketOption) -> None:
    # The two shapes of socket.setsockopt(): (level, name, value) and
    # (level, name, None, length).
    if len(option) == 4:
        level, name, _, length = option
        sock.setsockopt(level, name, None, length)
    else:
        level, name, value = option
        sock.setsockopt(level, name, value)


def _unexpected_disconnection(cause: BaseException) -> MqttCodeError:
    """aiomqtt's error for a connection that ended without our DISCONNECT."""
    code = getattr(cause, "reason_code", None)  # the broker's DISCONNECT, if known
    reason = reason_code_from_engine(
        code if isinstance(code, int) else _UNSPECIFIED_ERROR, PacketTypes.DISCONNECT
    )
    error = MqttCodeError(reason, "Unexpected disconnection")
    error.__cause__ = cause
    return error


def _operation_error(exc: EngineMqttError, what: str) -> MqttError:
    """The aiomqtt error for an engine error during publish/subscribe/unsubscribe."""
    if isinstance(exc, NotOpenError | ConnectionLost):
        return MqttCodeError(_MQTT_ERR_CONN_LOST, what)
    return MqttError(str(exc))
