"""MqttClient: the engine. One attrs object that runs inside a task group.

Theory of operation
-------------------
``run()`` (or ``async with``) opens one task group that the client owns. Everything the
client does in the background is a child of it, each child under a cancel scope of its
own (``_spawn``), so that ``aclose()`` stops exactly the client's tasks: with
``async with`` the caller's body runs in the same task group and is never cancelled by
the client closing (and, those scopes being shielded, cancelling the body does not tear
the client down before ``__aexit__`` has disconnected gracefully). The first connection
is made by the caller's task, then:

* the **supervisor** keeps the client connected: it serves one connection at a time,
  reading it itself (bytes -> session -> events -> waiters and subscription channels;
  it never calls user code), and when the connection ends it waits (capped exponential
  backoff with jitter) and reconnects, cycling through the URIs;
* beside it, for each connection, the **keepalive** watchdog (PINGREQ when idle, dead
  peer after 1.5 x keepalive of silence counted only while the reader waits for bytes)
  and, after a reconnect with something to restore, a **restore** task (re-sends,
  re-publishes, re-subscribes); their scopes end with the connection;
* one **dispatcher** per listener-style subscription (one shared by every synchronous
  listener) feeds listeners from the subscriptions' memory channels.

Protocol state lives in the sans-IO :class:`~trio_mqttconn._session.ClientSession`, which
survives reconnects, so unacknowledged QoS 1/2 data is re-sent (session present) or
published again (session lost). Public calls wait on small records (an Event and a
result) keyed by packet id; a cancelled caller unregisters its record, the session keeps
the in-flight entry.

All writes go through ``_send`` under one lock. A write that fails or is cancelled half
way may have left part of a packet on the wire, so the connection is dropped and
replaced (``session.send_failed()``): frames are never continued.
"""

from __future__ import annotations

import contextlib
import contextvars
import inspect
import logging
import math
import random as _random
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, Self, final

import anyio
import anyio.abc
import attrs

from ._backoff import Backoff
from ._enums import ProtocolVersion, QoS, ReasonCode, RetainHandling
from ._events import (
    AuthReceived,
    Connected,
    ConnectionRefused,
    Disconnected,
    Event,
    MessageReceived,
    PongReceived,
    PublishCompleted,
    Subscribed,
    Unsubscribed,
)
from ._exceptions import (
    ConnectError,
    ConnectionLost,
    ConnectTimeout,
    MqttError,
    MqttInternalError,
    NotOpenError,
    ProtocolError,
    PublishError,
    SubscribeError,
    UnsubscribeError,
)
from ._groups import (
    Event as _Event,
    TaskGroup,
    collapse as _collapse,
    event_factory,
    open_task_group,
)
from ._packets import ConnectPacket, PublishPacket, TopicSubscription, Will
from ._properties import EMPTY_PROPERTIES, Properties
from ._session import ClientSession, SessionState
from ._subscription import _STREAK, Listener, Overflow, Subscription
from ._subtree import SubscriptionTree
from ._topics import validate_topic_filter, validate_topic_name
from ._transports import Endpoint, connect_stream, direct_socket, parse_uri

if TYPE_CHECKING:
    import socket
    import ssl
    from contextlib import AbstractAsyncContextManager
    from types import TracebackType

    from anyio.streams.memory import (
        MemoryObjectReceiveStream,
        MemoryObjectSendStream,
    )

    from ._message import Message

__all__ = ["ClientStatistics", "MqttClient", "Transport"]

#: A transport factory: connects to an endpoint and returns a byte stream.
Transport = Callable[[Endpoint], Awaitable[anyio.abc.ByteStream]]

_LOGGER = logging.getLogger("trio_mqttconn.client")
#: Capacity of the channel shared by synchronous listeners.
_HUB_BUFFER = 1024
_READ_SIZE = 65536
#: The client whose own task (a listener's dispatcher) is running, if any.
_RUNNING_IN: contextvars.ContextVar[MqttClient | None] = contextvars.ContextVar(
    "trio_mqttconn_running_in", default=None
)
#: Reason codes of a refused CONNACK that retrying cannot fix.
_FATAL_CONNACK = frozenset(
    {
        ReasonCode.BAD_USER_NAME_OR_PASSWORD,
        ReasonCode.NOT_AUTHORIZED,
        ReasonCode.BANNED,
        ReasonCode.CLIENT_IDENTIFIER_NOT_VALID,
        ReasonCode.UNSUPPORTED_PROTOCOL_VERSION,
        ReasonCode.BAD_AUTHENTICATION_METHOD,
    }
)

_REFUSAL_HINTS = {
    ReasonCode.BAD_USER_NAME_OR_PASSWORD: "; check the user name and password",
    ReasonCode.NOT_AUTHORIZED: "; check the user name, password and the broker's ACL",
    ReasonCode.CLIENT_IDENTIFIER_NOT_VALID: "; use another client_id",
    ReasonCode.UNSUPPORTED_PROTOCOL_VERSION: (
        "; the broker does not speak this MQTT version, try protocol=ProtocolVersion.V311"
    ),
    ReasonCode.SERVER_UNAVAILABLE: "; try again later",
    ReasonCode.SERVER_BUSY: "; try again later",
}


@final
@attrs.frozen(kw_only=True)
class ClientStatistics:
    """A snapshot of an :class:`MqttClient`'s counters, from :meth:`MqttClient.statistics`."""

    connected: bool
    """Whether the broker link is up right now."""
    connects: int
    """Successful CONNACKs so far (the first connection included)."""
    reconnects: int
    """Successful reconnections after a lost connection."""
    messages_received: int
    """Application messages received."""
    messages_published: int
    """Application messages handed to the broker."""
    inflight: int
    """Outgoing QoS 1/2 messages not yet acknowledged."""
    subscriptions: int
    """Live subscriptions."""
    bytes_received: int
    """Bytes read from the broker."""
    bytes_sent: int
    """Bytes written to the broker."""


@attrs.define(eq=False)
class _Operation:
    """A caller waiting for the broker's answer to one packet."""

    packet_id: int
    #: The running backend's event (``MqttClient._new_event``).
    done: _Event
    result: Event | None = None
    error: BaseException | None = None
    #: A SUBSCRIBE/UNSUBSCRIBE (asked again after a reconnect), not a PUBLISH
    #: (which the session itself keeps in flight).
    request: bool = False
    #: The request must be sent again on the next connection.
    retry: bool = False

    def finish(self, result: Event) -> None:
        self.result = result
        self.done.set()

    def fail(self, error: BaseException) -> None:
        self.error = error
        self.done.set()

    def ask_retry(self) -> None:
        self.retry = True
        self.done.set()


@attrs.define(eq=False)
class _Batch:
    """Bytes queued behind the active writer, written together."""

    done: anyio.Event = attrs.Factory(anyio.Event)
    error: BaseException | None = None

    def fail(self, error: BaseException) -> None:
        self.error = error
        self.done.set()


@attrs.define(eq=False)
class _Connection:
    """One live stream to the broker and the bookkeeping of its watchdog."""

    stream: anyio.abc.ByteStream
    endpoint: Endpoint
    keepalive: float
    last_heard: float
    last_sent: float
    on_end: Callable[[], None]
    #: The stream's socket, when writes may go to it directly (see direct_socket).
    sock: socket.socket | None = None
    #: The cancel scopes of the work serving this connection (reader, keepalive,
    #: restore); ending the connection cancels them all.
    scopes: list[anyio.CancelScope] = attrs.Factory(list)
    ping_outstanding: bool = False
    reader_paused: bool = False
    ended: BaseException | None = None
    #: The stream has been closed (or is being closed).
    closed: bool = False
    #: A task is writing on this stream; others queue in the outbox.
    writing: bool = False
    outbox: list[bytes] = attrs.Factory(list)
    batch: _Batch = attrs.Factory(_Batch)

    def end(self, reason: BaseException) -> None:
        """Record why the connection ended (first reason wins) and stop its tasks."""
        if self.ended is None:
            self.ended = reason
            self.on_end()
            for scope in self.scopes:
                scope.cancel()

    async def close(self) -> None:
        """Close the stream once, even from a cancelled task."""
        if not self.closed:
            self.closed = True
            with anyio.CancelScope(shield=True):
                await anyio.aclose_forcefully(self.stream)

    def new_scope(self, *, shield: bool = False) -> anyio.CancelScope:
        """A cancel scope that ends with this connection."""
        scope = anyio.CancelScope(shield=shield)
        if self.ended is not None:
            scope.cancel()
        self.scopes.append(scope)
        return scope


def _to_payload(payload: bytes | bytearray | memoryview | str) -> bytes:
    if type(payload) is bytes:
        return payload
    if isinstance(payload, str):
        return payload.encode("utf-8")
    if isinstance(payload, bytes | bytearray | memoryview):
        return bytes(payload)
    raise TypeError(
        f"payload must be bytes or str, not {type(payload).__name__}; "
        "encode other values before publishing"
    )


def _to_endpoints(uri_or_uris: str | Sequence[str]) -> tuple[Endpoint, ...]:
    uris = [uri_or_uris] if isinstance(uri_or_uris, str) else list(uri_or_uris)
    if not uris:
        raise ValueError("at least one broker URI is needed, e.g. 'mqtt://localhost'")
    return tuple(parse_uri(uri) for uri in uris)


def _positive_or_zero(name: str) -> Callable[[object, object, float], None]:
    def check(instance: object, attribute: object, value: float) -> None:
        if not value >= 0:
            raise ValueError(f"{name} must be a number of seconds >= 0, not {value!r}")

    return check


def _check_keepalive(instance: object, attribute: object, value: int) -> None:
    if isinstance(value, bool) or not 0 <= value <= 65535 or value != int(value):
        raise ValueError(
            f"keepalive must be a whole number of seconds 0..65535, not {value!r}"
        )


@final
@attrs.define(eq=False, repr=False, on_setattr=attrs.setters.NO_OP)
class MqttClient:
    """An MQTT 3.1.1/5.0 client whose background work lives in a task group it owns.

    Use it as an async context manager (connects on enter, closes on exit)::

        async with MqttClient("mqtt://localhost") as client:
            await client.publish("sensors/1/temp", b"21.5", qos=1)

    or start it in your own nursery; :meth:`run` returns control once the first CONNACK
    arrived, and keeps the client connected until :meth:`aclose`::

        async with trio.open_nursery() as nursery:
            client = MqttClient(["mqtt://a:1883", "mqtt://b:1883"])
            await nursery.start(client.run)
            ...
            await client.aclose()

    Args:
        uri_or_uris: One broker URI or several (tried in order: failover). Schemes:
            ``mqtt``/``tcp``, ``mqtts``/``ssl``/``tls``, ``ws``, ``wss`` (path
            ``/mqtt`` by default) and ``unix``. User name and password may be given in
            the URI.
        client_id: The MQTT client identifier; a unique one is generated when None.
        protocol: `ProtocolVersion.V5` (default) or `ProtocolVersion.V311`.
        username: User name (overrides the URI's).
        password: Password (overrides the URI's); never logged or shown.
        keepalive: Seconds of silence after which a PINGREQ is sent (0: never).
        clean_start: Start a new session (MQTT 3.1.1: clean session).
        session_expiry: Seconds the broker keeps the session after a disconnect (MQTT 5).
        will: The message the broker publishes if the client vanishes.
        ssl_context: TLS settings for ``mqtts``/``wss``; default: verify certificate
            and host name with the system's CAs.
        tls_insecure: Skip the host-name check (the certificate is still verified).
        connect_timeout: Seconds for one connection attempt, TCP to CONNACK.
        reconnect: Reconnect when the connection drops (else the client ends with
            `ConnectionLost`).
        reconnect_delay: First delay before reconnecting, in seconds; doubles after
            each failed round up to *max_reconnect_delay*.
        max_reconnect_delay: Cap of the reconnect delay, in seconds.
        reconnect_jitter: Random spread of each delay, as a fraction (0 disables).
        properties: Extra MQTT 5 CONNECT properties.
        receive_maximum: QoS 1/2 messages the broker may send before we acknowledge.
        maximum_packet_size: Largest packet we accept (None: no limit).
        topic_alias_maximum: Topic aliases the broker may use towards us.
        outgoing_topic_aliases: Use topic aliases for our publishes when allowed.
        disconnect_timeout: Seconds granted to the DISCONNECT on close.
        websocket_headers: Extra HTTP headers for the WebSocket handshake.
        local_address: ``(host, port)`` to bind the local end of TCP connections to.
        socket_options: ``(level, option, value)`` triples applied with
            ``setsockopt`` to TCP sockets.
        transport: Replaces the network: an async callable taking an `Endpoint`-like
            value and returning an `anyio.abc.ByteStream` (used by tests).
        random: Source of randomness for the jitter (tests pass a seeded one).
        on_connect: Called (synchronously, from the supervisor) after every CONNACK,
            with True for a reconnection. For counters and logs; must not block.
        on_connection_lost: Called with the reason when a connection drops.
    """

    _endpoints: tuple[Endpoint, ...] = attrs.field(
        converter=_to_endpoints, alias="uri_or_uris"
    )
    client_id: str | None = attrs.field(default=None, kw_only=True)
    """The client identifier in force (the broker's choice when it assigned one)."""
    protocol: ProtocolVersion = attrs.field(
        default=ProtocolVersion.V5, converter=ProtocolVersion, kw_only=True
    )
    """The MQTT protocol version spoken."""
    _username: str | None = attrs.field(default=None, kw_only=True, alias="username")
    _password: str | None = attrs.field(
        default=None, kw_only=True, repr=False, alias="password"
    )
    keepalive: int = attrs.field(default=60, kw_only=True, validator=_check_keepalive)
    """Keep alive requested in CONNECT, seconds."""
    clean_start: bool = attrs.field(default=True, kw_only=True)
    """Whether CONNECT asks for a new session."""
    session_expiry: int = attrs.field(default=0, kw_only=True)
    """Session expiry interval requested (MQTT 5), seconds."""
    will: Will | None = attrs.field(default=None, kw_only=True)
    """The will message, if any."""
    _ssl_context: ssl.SSLContext | None = attrs.field(
        default=None, kw_only=True, alias="ssl_context"
    )
    _tls_insecure: bool = attrs.field(default=False, kw_only=True, alias="tls_insecure")
    connect_timeout: float = attrs.field(
        default=30.0, kw_only=True, validator=_positive_or_zero("connect_timeout")
    )
    """Seconds allowed for one connection attempt."""
    reconnect: bool = attrs.field(default=True, kw_only=True)
    """Whether a lost connection is re-established."""
    reconnect_delay: float = attrs.field(default=1.0, kw_only=True)
    """First reconnect delay, seconds."""
    max_reconnect_delay: float = attrs.field(default=60.0, kw_only=True)
    """Cap of the reconnect delay, seconds."""
    reconnect_jitter: float = attrs.field(default=0.1, kw_only=True)
    """Random spread of reconnect delays, as a fraction."""
    properties: Properties = attrs.field(default=EMPTY_PROPERTIES, kw_only=True)
    """Extra MQTT 5 CONNECT properties."""
    receive_maximum: int = attrs.field(default=65535, kw_only=True)
    """How many unacknowledged QoS 1/2 messages the broker may send us."""
    maximum_packet_size: int | None = attrs.field(default=None, kw_only=True)
    """Largest packet we accept from the broker."""
    topic_alias_maximum: int = attrs.field(default=0, kw_only=True)
    """Highest topic alias the broker may use towards us."""
    outgoing_topic_aliases: bool = attrs.field(default=False, kw_only=True)
    """Whether our publishes use topic aliases."""
    disconnect_timeout: float = attrs.field(
        default=5.0, kw_only=True, validator=_positive_or_zero("disconnect_timeout")
    )
    """Seconds granted to the DISCONNECT on close."""

    _websocket_headers: dict[str, str] | None = attrs.field(
        default=None, kw_only=True, alias="websocket_headers"
    )
    _local_address: tuple[str, int] | None = attrs.field(
        default=None, kw_only=True, alias="local_address"
    )
    _socket_options: tuple[tuple[int, int, int | bytes], ...] = attrs.field(
        default=(), kw_only=True, converter=tuple, alias="socket_options"
    )
    _transport: Transport | None = attrs.field(
        default=None, kw_only=True, alias="transport"
    )
    _random: _random.Random | None = attrs.field(
        default=None, kw_only=True, alias="random"
    )
    _on_connect: Callable[[bool], None] | None = attrs.field(
        default=None, kw_only=True, alias="on_connect"
    )
    _on_connection_lost: Callable[[BaseException], None] | None = attrs.field(
        default=None, kw_only=True, alias="on_connection_lost"
    )

    # -- runtime state -------------------------------------------------------------
    _session: ClientSession = attrs.field(init=False)
    _state: str = attrs.field(init=False, default="new")
    _task_group: TaskGroup | None = attrs.field(init=False, default=None)
    #: The cancel scope of every live task of the client (see ``_spawn``).
    _task_scopes: set[anyio.CancelScope] = attrs.field(init=False, factory=set)
    #: ``async with``: the tasks are shielded from the body's cancellation, so that
    #: leaving the body always disconnects gracefully (``__aexit__`` stops them).
    _shield_tasks: bool = attrs.field(init=False, default=False)
    _stopping: bool = attrs.field(init=False, default=False)
    #: Makes the events of waiting callers (trio's own on trio; see event_factory).
    _new_event: Callable[[], _Event] = attrs.field(init=False, default=anyio.Event)
    _outer: AbstractAsyncContextManager[TaskGroup] | None = attrs.field(
        init=False, default=None
    )
    _conn: _Connection | None = attrs.field(init=False, default=None)
    _ready: anyio.Event = attrs.field(init=False, factory=anyio.Event)
    _quota: anyio.Event = attrs.field(init=False, factory=anyio.Event)
    _finished: anyio.Event = attrs.field(init=False, factory=anyio.Event)
    _pending: dict[int, _Operation] = attrs.field(init=False, factory=dict)
    #: Messages a lost broker session discarded and that are not published again
    #: yet (a connection may end while they wait for the send quota).
    _unpublished: list[tuple[PublishPacket, _Operation | None]] = attrs.field(
        init=False, factory=list
    )
    _tree: SubscriptionTree[Subscription] = attrs.field(
        init=False, factory=SubscriptionTree
    )
    _subscriptions: list[Subscription] = attrs.field(init=False, factory=list)
    _catch_all: list[Subscription] = attrs.field(init=False, factory=list)
    _hub: MemoryObjectSendStream[tuple[Subscription, Message]] | None = attrs.field(
        init=False, default=None
    )
    _raw_filters: dict[str, tuple[TopicSubscription, Properties]] = attrs.field(
        init=False, factory=dict
    )
    _filter_ids: dict[str, int] = attrs.field(init=False, factory=dict)
    _by_id: dict[int, list[Subscription]] = attrs.field(init=False, factory=dict)
    _next_sub_id: int = attrs.field(init=False, default=1)
    _endpoint_index: int = attrs.field(init=False, default=0)
    _fatal: BaseException | None = attrs.field(init=False, default=None)
    _connects: int = attrs.field(init=False, default=0)
    _messages_received: int = attrs.field(init=False, default=0)
    _messages_published: int = attrs.field(init=False, default=0)
    _bytes_received: int = attrs.field(init=False, default=0)
    _bytes_sent: int = attrs.field(init=False, default=0)

    def __attrs_post_init__(self) -> None:
        if self.client_id is None:
            self.client_id = f"trio-mqttconn-{secrets.token_hex(6)}"
        if self.reconnect_delay <= 0 or self.max_reconnect_delay < self.reconnect_delay:
            raise ValueError(
                "reconnect_delay must be > 0 and <= max_reconnect_delay, not "
                f"{self.reconnect_delay!r} and {self.max_reconnect_delay!r}"
            )
        self._session = ClientSession(
            protocol_version=self.protocol,
            receive_maximum=self.receive_maximum,
            maximum_packet_size=self.maximum_packet_size,
            topic_alias_maximum=self.topic_alias_maximum,
            outgoing_topic_aliases=self.outgoing_topic_aliases,
        )

    def __repr__(self) -> str:
        uris = ", ".join(endpoint.display() for endpoint in self._endpoints)
        return (
            f"<MqttClient {self.client_id!r} [{uris}] {self._state}"
            f"{' connected' if self.is_connected else ''}>"
        )

    # -- public state --------------------------------------------------------------

    @property
    def is_connected(self) -> bool:
        """Whether the broker link is up right now (sync; no checkpoint)."""
        conn = self._conn
        return (
            conn is not None
            and conn.ended is None
            and self._session.state is SessionState.CONNECTED
        )

    @property
    def endpoints(self) -> tuple[Endpoint, ...]:
        """The brokers, in failover order (credentials hidden in their repr)."""
        return self._endpoints

    async def wait_connected(self) -> None:
        """Wait until the broker link is up.

        Raises:
            NotOpenError: the client is not running or was closed.
        """
        await anyio.lowlevel.checkpoint()
        await self._wait_ready()

    def statistics(self) -> ClientStatistics:
        """Counters of this client."""
        return ClientStatistics(
            connected=self.is_connected,
            connects=self._connects,
            reconnects=max(0, self._connects - 1),
            messages_received=self._messages_received,
            messages_published=self._messages_published,
            inflight=self._session.inflight,
            subscriptions=len(self._subscriptions),
            bytes_received=self._bytes_received,
            bytes_sent=self._bytes_sent,
        )

    # -- lifecycle -----------------------------------------------------------------

    async def __aenter__(self) -> Self:
        """Connect; returns after the first CONNACK. Raises ConnectError on failure."""
        self._begin()
        # The task group lives in the caller's task: its body is the body of the
        # ``async with``; the client's tasks are its children.
        manager = open_task_group()
        self._task_group = await manager.__aenter__()
        self._shield_tasks = True
        try:
            await self._start()
        except BaseException as exc:
            self._record_failure(exc)
            self._shutdown()
            self._finished.set()
            try:
                await manager.__aexit__(None, None, None)
            except BaseExceptionGroup as inner:  # pragma: no cover - defensive
                raise _collapse(inner, None) from None
            raise exc
        self._outer = manager
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Close the client; the body's exception propagates unchanged."""
        group, self._outer = self._outer, None
        try:
            try:
                with anyio.CancelScope(shield=True):
                    await self._close()
            finally:
                self._stop_tasks()  # whatever happened, nothing is left running
                if group is not None:
                    await group.__aexit__(exc_type, exc, tb)
        except BaseExceptionGroup as eg:
            error = _collapse(eg, exc)
            raise error from error.__cause__
        finally:
            self._shutdown()
            self._finished.set()

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Connect, then keep the client connected until :meth:`aclose`.

        For ``await nursery.start(client.run)``: control returns to the caller after
        the first CONNACK. A client runs once.

        Raises:
            ConnectError: the first connection failed on every URI (or was refused).
            ConnectionLost: the connection dropped and *reconnect* is False.
            NotOpenError: the client already ran.
        """
        self._begin()
        try:
            async with open_task_group() as group:
                self._task_group = group
                await self._start()
                task_status.started()
        except BaseExceptionGroup as eg:
            error = _collapse(eg, None)
            self._record_failure(error)
            raise error from error.__cause__
        except BaseException as exc:
            self._record_failure(exc)
            raise
        finally:
            self._shutdown()
            self._finished.set()

    def _record_failure(self, exc: BaseException) -> None:
        """Remember why the client stopped (for the NotOpenError of later calls)."""
        if self._fatal is None and not isinstance(exc, NotOpenError):
            self._fatal = exc

    def _begin(self) -> None:
        if self._state != "new":
            raise NotOpenError(
                f"this MqttClient is {self._state}: a client runs once, make a new one"
            )
        self._state = "connecting"
        self._new_event = event_factory()

    async def _start(self) -> None:
        """The first connection, then the supervisor task that keeps it."""
        # aclose() may come while we connect: it cancels this scope too.
        scope = anyio.CancelScope()
        self._task_scopes.add(scope)
        result: tuple[_Connection, Connected, list[Event]] | None = None
        try:
            with scope:
                result = await self._connect_round()
        finally:
            self._task_scopes.discard(scope)
        if result is None or self._state != "connecting":
            if result is not None:
                await result[0].close()
            raise NotOpenError("the client was closed while it was connecting")
        conn, connected, rest = result
        self._state = "running"
        self._attach(conn)
        self._spawn(
            self._supervisor,
            conn,
            connected,
            rest,
            name=f"mqtt-supervisor[{self.client_id}]",
        )

    def _spawn(
        self,
        function: Callable[..., Awaitable[object]],
        *args: object,
        name: str,
        scope: anyio.CancelScope | None = None,
    ) -> None:
        """Start a task of the client in its task group, under its own cancel scope.

        The scope exists before the task runs, so ``_stop_tasks()`` reaches a task
        that has not started yet. The caller's task (the body of ``async with``)
        shares the task group but not these scopes: closing the client never cancels
        its user, and (shielded) cancelling the body does not tear the client down
        before ``__aexit__`` disconnects.
        """
        assert self._task_group is not None
        task_scope = (
            anyio.CancelScope(shield=self._shield_tasks) if scope is None else scope
        )
        if self._stopping:
            task_scope.cancel()
        self._task_scopes.add(task_scope)
        self._task_group.start_soon(
            self._guarded, task_scope, function, args, name=name
        )

    async def _guarded(
        self,
        scope: anyio.CancelScope,
        function: Callable[..., Awaitable[object]],
        args: tuple[object, ...],
    ) -> None:
        try:
            with scope:
                await function(*args)
        except BaseException as exc:
            if not isinstance(exc, anyio.get_cancelled_exc_class()):
                # A failure stops the client: every other task ends too.
                self._record_failure(exc)
                self._stop_tasks()
            raise
        finally:
            self._task_scopes.discard(scope)
            if not self._task_scopes and self._state == "closed":
                self._finished.set()

    def _stop_tasks(self) -> None:
        """Cancel every task of the client (not the caller of ``async with``)."""
        if not self._stopping:
            self._stopping = True
            for scope in self._task_scopes:
                scope.cancel()

    async def aclose(self) -> None:
        """Disconnect gracefully, stop every task of the client and wait for them.

        Idempotent. Pending publish/subscribe calls raise `NotOpenError`; the
        iterators of subscriptions end. The DISCONNECT is bounded by
        *disconnect_timeout* and shielded from cancellation; the stream is closed in
        any case.
        """
        if self._state == "new":
            self._state = "closed"
            self._finished.set()
        if self._state == "closed" and self._finished.is_set():
            await anyio.lowlevel.checkpoint()
            return
        with anyio.CancelScope(shield=True):
            await self._close()
            if _RUNNING_IN.get() is self:
                # Called from one of our own tasks (a listener): waiting for every
                # task to finish would wait for ourselves. The cancellation is
                # delivered when the listener returns to the dispatcher.
                return
            await self._finished.wait()

    async def _close(self) -> None:
        """Disconnect (once) and cancel every task of the client."""
        if self._state in ("connecting", "running"):
            self._state = "closing"
            await self._disconnect_gracefully()
        self._stop_tasks()
        if not self._task_scopes:
            self._shutdown()
            if self._state == "closed":
                self._finished.set()

    async def _disconnect_gracefully(self) -> None:
        conn = self._conn
        if conn is None or not self.is_connected:
            self._stop_tasks()
            return
        with anyio.move_on_after(self.disconnect_timeout):
            try:
                await self._send(conn, self._session.disconnect())
            except (
                MqttError,
                OSError,
                anyio.BrokenResourceError,
                anyio.ClosedResourceError,
            ):
                pass
            # Nothing may be sent after DISCONNECT [v5:MQTT-3.14.4-1]: the tasks
            # stop, then the stream is closed.
            conn.ended = conn.ended or NotOpenError("the client is closed")
            self._stop_tasks()
            conn.closed = True
            await conn.stream.aclose()

    def _shutdown(self) -> None:
        """Leave nothing behind: fail waiters, end subscriptions, wake everyone."""
        self._state = "closed"
        closed = NotOpenError("the client is closed")
        for op in self._pending.values():
            op.fail(closed)
        self._pending.clear()
        for _, waiter in self._unpublished:
            if waiter is not None:
                waiter.fail(closed)
        self._unpublished.clear()
        # Both ends of every subscription's channel are closed: iterators end,
        # nothing leaks. messages() streams keep what is queued for their reader
        # (their context manager closes the rest).
        for sub in self._subscriptions:
            sub._release()
        for sub in self._catch_all:
            sub._close()
        self._subscriptions.clear()
        self._catch_all.clear()
        if self._hub is not None:
            self._hub.close()
        self._raw_filters.clear()
        self._tree.clear()
        self._by_id.clear()
        self._filter_ids.clear()
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.end(closed)
        self._ready.set()
        self._quota.set()

    # -- connecting ------------------------------------------------------------------

    def _connect_packet(self, endpoint: Endpoint) -> ConnectPacket:
        username = self._username if self._username is not None else endpoint.username
        password = self._password if self._password is not None else endpoint.password
        properties = self.properties
        if self.protocol is ProtocolVersion.V5:
            changes: dict[str, Any] = {}
            if self.session_expiry:
                changes["session_expiry_interval"] = self.session_expiry
            if self.receive_maximum != 65535:
                changes["receive_maximum"] = self.receive_maximum
            if self.maximum_packet_size is not None:
                changes["maximum_packet_size"] = self.maximum_packet_size
            if self.topic_alias_maximum:
                changes["topic_alias_maximum"] = self.topic_alias_maximum
            if changes:
                properties = attrs.evolve(properties, **changes)
        assert self.client_id is not None
        return ConnectPacket(
            client_id=self.client_id,
            protocol_version=self.protocol,
            clean_start=self.clean_start,
            keepalive=self.keepalive,
            username=username,
            password=None if password is None else password.encode("utf-8"),
            will=self.will,
            properties=properties,
        )

    async def _open_stream(self, endpoint: Endpoint) -> anyio.abc.ByteStream:
        if self._transport is not None:
            return await self._transport(endpoint)
        return await connect_stream(
            endpoint,
            ssl_context=self._ssl_context,
            tls_insecure=self._tls_insecure,
            websocket_headers=self._websocket_headers,
            local_address=self._local_address,
            socket_options=self._socket_options,
        )

    async def _handshake(
        self, endpoint: Endpoint
    ) -> tuple[_Connection, Connected, list[Event]]:
        """One connection attempt: stream, CONNECT, CONNACK, bounded by connect_timeout."""
        where = endpoint.display()
        session = self._session
        stream: anyio.abc.ByteStream | None = None
        try:
            with anyio.fail_after(self.connect_timeout or math.inf):
                stream = await self._open_stream(endpoint)
                connect = session.connect(self._connect_packet(endpoint))
                await stream.send(connect)
                self._bytes_sent += len(connect)
                sent_at = anyio.current_time()
                while True:
                    try:
                        data = await stream.receive(_READ_SIZE)
                    except anyio.EndOfStream:
                        raise ConnectError(
                            f"{where} closed the connection before answering CONNECT; "
                            "check the protocol version and the broker's log"
                        ) from None
                    self._bytes_received += len(data)
                    session.receive_data(data)
                    events = session.events()
                    for index, event in enumerate(events):
                        if isinstance(event, Connected):
                            conn = _Connection(
                                stream=stream,
                                sock=direct_socket(stream),
                                endpoint=endpoint,
                                keepalive=float(event.keepalive),
                                last_heard=anyio.current_time(),
                                last_sent=sent_at,
                                on_end=self._connection_ended,
                            )
                            if event.client_id:
                                self.client_id = event.client_id
                            return conn, event, events[index + 1 :]
                        if isinstance(event, ConnectionRefused):
                            raise ConnectError(
                                f"{where} refused the connection: "
                                f"{event.reason_code.phrase} "
                                f"(reason code {event.reason_code.value:#04x})"
                                + _REFUSAL_HINTS.get(event.reason_code, ""),
                                reason_code=event.reason_code,
                            )
        except TimeoutError as exc:
            if stream is not None:
                await anyio.aclose_forcefully(stream)
            session.connection_lost()
            raise ConnectTimeout(
                f"connecting to {where} took longer than {self.connect_timeout:g} s "
                "(connect_timeout)"
            ) from exc
        except BaseException as exc:
            if stream is not None:
                await anyio.aclose_forcefully(stream)
            if session.state is not SessionState.CLOSED:
                session.connection_lost()
            if isinstance(exc, ConnectError | anyio.get_cancelled_exc_class()):
                raise
            if isinstance(exc, ProtocolError):
                raise ConnectError(
                    f"{where} answered CONNECT with an invalid packet: {exc}"
                ) from exc
            if isinstance(
                exc,
                OSError
                | anyio.BrokenResourceError
                | anyio.ClosedResourceError
                | anyio.EndOfStream,
            ):
                raise ConnectError(f"connection to {where} failed: {exc}") from exc
            raise

    async def _connect_round(self) -> tuple[_Connection, Connected, list[Event]]:
        """Try every endpoint once, starting with the last good one."""
        count = len(self._endpoints)
        last_error: ConnectError | None = None
        for step in range(count):
            index = (self._endpoint_index + step) % count
            try:
                result = await self._handshake(self._endpoints[index])
            except ConnectError as exc:
                if exc.reason_code in _FATAL_CONNACK:
                    raise
                last_error = exc
                continue
            self._endpoint_index = index
            return result
        assert last_error is not None
        raise last_error

    # -- supervision -----------------------------------------------------------------

    async def _supervise(
        self, conn: _Connection, connected: Connected, rest: list[Event]
    ) -> None:
        backoff: Backoff | None = None  # made when first needed
        while True:
            reason = await self._serve(conn, connected, rest)
            if self._state != "running":
                return
            _LOGGER.warning(
                "lost the connection to %s: %s", conn.endpoint.display(), reason
            )
            if self._on_connection_lost is not None:
                self._on_connection_lost(reason)
            if not self.reconnect:
                raise ConnectionLost(
                    f"lost the connection to {conn.endpoint.display()}: {reason}",
                    reason_code=getattr(reason, "reason_code", None),
                ) from reason
            if backoff is None:
                backoff = Backoff(
                    initial=self.reconnect_delay,
                    maximum=self.max_reconnect_delay,
                    jitter=self.reconnect_jitter,
                    rng=self._random or _random.Random(),
                )
            backoff.reset()
            while True:
                delay = backoff.next_delay()
                _LOGGER.info("reconnecting in %.3g s", delay)
                await anyio.sleep(delay)
                try:
                    conn, connected, rest = await self._connect_round()
                except ConnectError as exc:
                    _LOGGER.info("reconnect failed: %s", exc)
                    if exc.reason_code in _FATAL_CONNACK:
                        raise
                    continue
                self._attach(conn)
                break

    async def _supervisor(
        self, conn: _Connection, connected: Connected, rest: list[Event]
    ) -> None:
        try:
            await self._supervise(conn, connected, rest)
        finally:
            last = self._conn
            self._shutdown()
            self._stop_tasks()
            if last is not None:
                await last.close()

    async def _serve(
        self, conn: _Connection, connected: Connected, rest: list[Event]
    ) -> BaseException:
        """Run one connection until it ends; return why it ended.

        The supervisor reads; the keepalive watchdog (and, after a reconnect, the
        restoring of publishes and subscriptions) run beside it under scopes that
        end with the connection.
        """
        self._spawn(
            self._keepalive_task,
            conn,
            name=f"mqtt-keepalive[{self.client_id}]",
            scope=conn.new_scope(shield=self._shield_tasks),
        )
        data = self._session.data_to_send()
        if (
            data
            or connected.discarded
            or connected.discarded_pubrel
            or self._unpublished
            or (not connected.session_present and self._filter_options())
        ):
            self._spawn(
                self._after_connect,
                conn,
                connected,
                data,
                name=f"mqtt-restore[{self.client_id}]",
                scope=conn.new_scope(shield=self._shield_tasks),
            )
        else:
            self._ready.set()
            self._quota.set()
        with conn.new_scope():
            await self._reader(conn, rest)
        # The connection is over: nothing may use it again.
        if self._conn is conn:
            self._conn = None
        if (
            self._session.state is not SessionState.DISCONNECTED
            and self._state == "running"
        ):
            self._session.connection_lost()
        self._lost_requests()
        await conn.close()
        return conn.ended or ConnectionLost("the connection ended")

    def _attach(self, conn: _Connection) -> None:
        """Make *conn* the client's connection (before anyone may use it)."""
        self._conn = conn
        self._connects += 1
        _LOGGER.info(
            "connected to %s as %r (connection %d)",
            conn.endpoint.display(),
            self.client_id,
            self._connects,
        )
        if self._on_connect is not None:
            self._on_connect(self._connects > 1)

    def _lost_requests(self) -> None:
        """SUBSCRIBE/UNSUBSCRIBE in flight are asked again on the next connection."""
        for packet_id, op in list(self._pending.items()):
            if op.request and not op.done.is_set():
                del self._pending[packet_id]
                op.ask_retry()

    async def _after_connect(
        self, conn: _Connection, connected: Connected, data: bytes
    ) -> None:
        """Re-send what the session queued, then restore publishes and subscriptions."""
        try:
            if data:
                await self._send(conn, data)
            # Subscriptions first, so that messages published from here on (ours
            # included) reach them.
            resubscribed: list[_Operation] = []
            if not connected.session_present and self._filter_options():
                resubscribed = await self._resubscribe(conn)
            if connected.discarded or connected.discarded_pubrel or self._unpublished:
                await self._republish(conn, connected)
            self._ready.set()
            self._quota.set()
            for op in resubscribed:
                await op.done.wait()
        except (ConnectionLost, ProtocolError) as exc:
            conn.end(exc)

    async def _republish(self, conn: _Connection, connected: Connected) -> None:
        # The broker lost the session ([MQTT-3.2.2-5]): QoS 2 messages it had received
        # (PUBREC) count as delivered; the rest are published again as new messages.
        for packet_id in connected.discarded_pubrel:
            op = self._pending.pop(packet_id, None)
            if op is not None:
                op.finish(PublishCompleted(packet_id=packet_id))
        # Kept on the client until the session holds them again, so that a
        # connection lost while they wait for the quota loses none of them.
        waiting = self._unpublished
        waiting[:0] = [
            (packet, self._pending.pop(packet.packet_id, None))
            for packet in connected.discarded
            if packet.packet_id is not None
        ]
        while waiting:
            while self._session.send_quota <= 0:
                await self._wait_quota()
            packet, op = waiting.pop(0)
            new_id, data = self._session.publish(
                packet.topic,
                packet.payload,
                qos=packet.qos,
                retain=packet.retain,
                properties=packet.properties,
            )
            if op is not None and new_id is not None:
                op.packet_id = new_id
                self._pending[new_id] = op
            await self._send(conn, data)

    def _filter_options(self) -> dict[str, tuple[TopicSubscription, Properties]]:
        # Only what the broker granted before: a subscribe still waiting for its
        # SUBACK is asked again by its own caller.
        seen: dict[str, tuple[TopicSubscription, Properties]] = dict(self._raw_filters)
        for sub in self._subscriptions:
            if sub.granted_qos is not None:
                seen[sub.topic_filter] = (sub.options, self._sub_properties(sub))
        return seen

    async def _resubscribe(self, conn: _Connection) -> list[_Operation]:
        """Send a SUBSCRIBE for every live filter; return the waiters for SUBACK."""
        ops: list[_Operation] = []
        for options, properties in self._filter_options().values():
            packet_id, data = self._session.subscribe([options], properties=properties)
            op = _Operation(packet_id, done=self._new_event(), request=True)
            self._pending[packet_id] = op
            ops.append(op)
            await self._send(conn, data)
        return ops

    # -- the reader --------------------------------------------------------------------

    async def _reader(self, conn: _Connection, rest: list[Event]) -> None:
        session = self._session
        stream = conn.stream
        where = conn.endpoint.display()
        try:
            if rest:
                await self._dispatch(conn, rest)
            while True:
                try:
                    data = await stream.receive(_READ_SIZE)
                except anyio.EndOfStream:
                    raise ConnectionLost(f"{where} closed the connection") from None
                except (
                    OSError,
                    anyio.BrokenResourceError,
                    anyio.ClosedResourceError,
                ) as exc:
                    raise ConnectionLost(
                        f"the connection to {where} broke: {exc}"
                    ) from exc
                conn.last_heard = anyio.current_time()
                conn.ping_outstanding = False
                self._bytes_received += len(data)
                session.receive_data(data)
                events = session.events()
                if events:
                    await self._dispatch(conn, events)
                out = session.data_to_send()
                if out:
                    # Acknowledgements need no wait: a write in progress takes them.
                    await self._send(conn, out, wait=False)
        except ProtocolError as exc:
            await self._protocol_violation(conn, exc)
            conn.end(exc)
        except ConnectionLost as exc:
            conn.end(exc)

    async def _protocol_violation(self, conn: _Connection, exc: ProtocolError) -> None:
        # [v5:MQTT-4.13] answer a malformed packet / protocol error with DISCONNECT
        # carrying the reason code, then close.
        if self.protocol is not ProtocolVersion.V5:
            return
        with (
            contextlib.suppress(Exception),
            anyio.move_on_after(self.disconnect_timeout),
        ):
            reason = ReasonCode(int(exc.reason_code))
            await conn.stream.send(self._session.disconnect(reason))

    async def _dispatch(self, conn: _Connection, events: list[Event]) -> None:
        for event in events:
            kind = type(event)
            if kind is MessageReceived:
                assert isinstance(event, MessageReceived)
                message = event.message
                self._messages_received += 1
                targets = self._route(message)
                if self._catch_all:
                    targets = [*self._catch_all, *targets]
                for sub in targets:
                    if not sub._offer(message):
                        # Lossless policy: wait for room. Broker silence during this pause
                        # is not a dead broker (the keepalive watchdog skips it).
                        conn.reader_paused = True
                        try:
                            await sub._put(message)
                        finally:
                            conn.reader_paused = False
                            conn.last_heard = anyio.current_time()
            elif kind is PublishCompleted:
                assert isinstance(event, PublishCompleted)
                self._complete(event.packet_id, event)
                self._quota.set()
            elif kind is Subscribed or kind is Unsubscribed:
                assert isinstance(event, Subscribed | Unsubscribed)
                self._complete(event.packet_id, event)
            elif kind is PongReceived:
                pass
            elif kind is Disconnected:
                assert isinstance(event, Disconnected)
                raise ConnectionLost(
                    reason_code=event.reason_code,
                    message=f"{conn.endpoint.display()} closed the connection: "
                    f"{event.reason_code.phrase} (reason code {event.reason_code.value:#04x})"
                    + (
                        f": {event.properties.reason_string}"
                        if event.properties.reason_string
                        else ""
                    ),
                )
            elif kind is AuthReceived:
                raise ConnectionLost(
                    f"{conn.endpoint.display()} started enhanced authentication, "
                    "which this client does not support"
                )
            else:  # pragma: no cover - the session yields nothing else here
                raise MqttInternalError(f"unexpected event {event!r}; please report")

    def _complete(self, packet_id: int, event: Event) -> None:
        op = self._pending.pop(packet_id, None)
        if op is not None:
            op.finish(event)

    def _route(self, message: Message) -> list[Subscription]:
        identifiers = message.properties.subscription_identifiers
        if identifiers and self._by_id:
            if len(identifiers) == 1:
                return self._by_id.get(identifiers[0], [])
            found: list[Subscription] = []
            for identifier in identifiers:
                for sub in self._by_id.get(identifier, ()):
                    if sub not in found:
                        found.append(sub)
            return found
        return self._tree.match(message.topic)

    # -- keepalive ----------------------------------------------------------------------

    async def _keepalive_task(self, conn: _Connection) -> None:
        keepalive = conn.keepalive
        if keepalive <= 0:
            return
        try:
            while True:
                now = anyio.current_time()
                if conn.reader_paused:
                    conn.last_heard = now
                silence = now - conn.last_heard
                if silence >= 1.5 * keepalive:
                    raise ConnectionLost(
                        f"{conn.endpoint.display()} did not answer for "
                        f"{silence:g} s (keepalive {keepalive:g} s); the connection is dead"
                    )
                due = now - conn.last_sent >= keepalive or (
                    silence >= keepalive and not conn.ping_outstanding
                )
                if due and not conn.writing:
                    # [v5:MQTT-3.1.2-20] nothing else to send: PINGREQ.
                    conn.ping_outstanding = True
                    await self._send(conn, self._session.ping())
                    continue
                if due:
                    # A write is in progress (the socket may be full): never queue
                    # behind it; look again soon, and keep counting the silence.
                    wake = min(now + keepalive / 4, conn.last_heard + 1.5 * keepalive)
                else:
                    wake = min(
                        conn.last_sent + keepalive,
                        conn.last_heard
                        + (1.5 * keepalive if conn.ping_outstanding else keepalive),
                    )
                await anyio.sleep(max(0.0, wake - now))
        except ConnectionLost as exc:
            conn.end(exc)

    # -- writing ------------------------------------------------------------------------

    async def _send(self, conn: _Connection, data: bytes, *, wait: bool = True) -> None:
        """Write *data* on *conn*; one writer at a time, the others coalesced.

        When no write is in progress the caller writes itself. Otherwise its bytes
        join the outbox, which the active writer sends (all of it, in one write)
        as soon as its own write is done; with *wait* the caller then waits for
        that write, without it (the caller waits for an acknowledgement anyway)
        it returns at once.

        Why no shield: a cancellation is only delivered where the stream waits. We
        check for it before writing and do not yield until the stream does, so a
        write that fits the socket buffer (trio) or the transport buffer (asyncio)
        is never cut. A cancellation that arrives while the stream waits for the
        socket may have left part of a packet on the wire, so that connection is
        dropped and replaced; frames are never continued.
        """
        if conn.ended is not None or self._conn is not conn:
            raise ConnectionLost("not connected to the broker")
        if conn.writing:
            conn.outbox.append(data)
            if not wait:
                return
            batch = conn.batch
            await batch.done.wait()
            if batch.error is not None:
                raise ConnectionLost(
                    f"sending to {conn.endpoint.display()} failed: {batch.error}"
                ) from batch.error
            return
        sock = conn.sock
        if sock is None:
            await anyio.lowlevel.checkpoint_if_cancelled()
        else:
            # Only ever set on trio (see direct_socket): its primitives directly.
            import trio  # imported already: asyncio never gets here

            await trio.lowlevel.checkpoint_if_cancelled()
        conn.writing = True
        written = 0
        try:
            if await self._write(conn, sock, data):
                # Written without waiting (trio only). Still a schedule point, not
                # a cancel point (the bytes are on their way), taken while still
                # the writer: what others queue meanwhile goes out in one write.
                await trio.lowlevel.cancel_shielded_checkpoint()
            written += len(data)
            while conn.outbox:
                data = b"".join(conn.outbox)
                conn.outbox.clear()
                batch, conn.batch = conn.batch, _Batch()
                try:
                    await self._write(conn, sock, data)
                except BaseException as exc:
                    batch.fail(exc)
                    raise
                written += len(data)
                batch.done.set()
        except BaseException as exc:
            # Part of a packet may be on the wire: this stream is unusable, and
            # what others queued for it goes with it (the session re-sends).
            conn.outbox.clear()
            conn.batch.fail(exc)
            conn.batch = _Batch()
            if self._conn is conn:
                self._session.send_failed()
            if isinstance(exc, anyio.get_cancelled_exc_class()):
                conn.end(ConnectionLost("a write was interrupted by cancellation"))
                raise
            reason = ConnectionLost(
                f"sending to {conn.endpoint.display()} failed: {exc}"
            )
            conn.end(reason)
            raise reason from exc
        finally:
            conn.writing = False
            conn.last_sent = (
                anyio.current_time() if sock is None else trio.current_time()
            )
            self._bytes_sent += written

    @staticmethod
    async def _write(
        conn: _Connection, sock: socket.socket | None, data: bytes
    ) -> bool:
        """Write all of *data*; True if it went straight to the socket, unwaited."""
        if sock is not None:
            # Straight to the socket; what does not fit goes the stream's way.
            try:
                sent = sock.send(data)
            except BlockingIOError:
                sent = 0
            if sent == len(data):
                return True
            data = data[sent:]
        await conn.stream.send(data)
        return False

    # -- waiting helpers --------------------------------------------------------------

    def _check_open(self) -> None:
        if self._state in ("new", "connecting"):
            if self._state == "new":
                raise NotOpenError(
                    "the client is not running: use `async with MqttClient(...)` or "
                    "`await nursery.start(client.run)` first"
                )
        elif self._state != "running":
            if self._fatal is not None and isinstance(self._fatal, MqttError):
                raise NotOpenError(
                    f"the client stopped: {self._fatal}"
                ) from self._fatal
            raise NotOpenError("the client is closed")

    def _ready_conn(self) -> _Connection | None:
        """The connection, if a publish may use it right now (no await needed)."""
        conn = self._conn
        if (
            conn is None
            or conn.ended is not None
            or self._state != "running"
            or not self._ready.is_set()
            or self._session.state is not SessionState.CONNECTED
        ):
            return None
        return conn

    async def _wait_ready(self) -> _Connection:
        while True:
            self._check_open()
            conn = self._conn
            if conn is not None and self._ready.is_set() and self.is_connected:
                return conn
            await self._ready.wait()

    async def _wait_quota(self) -> None:
        # One Event shared by every waiter; replaced only once it has fired, so no
        # waiter is ever left on an Event nobody will set.
        if self._quota.is_set():
            self._quota = anyio.Event()
        await self._quota.wait()

    def _connection_ended(self) -> None:
        # Callers waiting for the connection must wait for the next one. An Event that
        # has not fired yet keeps its waiters: the next connection sets it.
        if self._ready.is_set() and self._state == "running":
            self._ready = anyio.Event()

    # -- publishing -----------------------------------------------------------------------

    async def publish(
        self,
        topic: str,
        payload: bytes | bytearray | memoryview | str = b"",
        *,
        qos: QoS | int = QoS.AT_MOST_ONCE,
        retain: bool = False,
        properties: Properties | None = None,
    ) -> None:
        """Publish a message and wait for the QoS-appropriate completion.

        Returns after the write (QoS 0), PUBACK (QoS 1) or PUBCOMP (QoS 2). While the
        client is reconnecting the call waits for the connection; bound it with your
        own cancel scope (``with trio.fail_after(5): ...``).

        If cancelled, a QoS 1/2 message may still be delivered (it stays in the
        session and is re-sent after a reconnect); it is never half-written.

        Raises:
            ValueError: invalid topic name or QoS, or the broker's limits forbid it.
            TypeError: *payload* is neither bytes nor str.
            PublishError: the broker answered with a failure reason code.
            NotOpenError: the client is not running.
        """
        data_payload = _to_payload(payload)
        if type(qos) is not QoS:
            qos = QoS(qos)
        validate_topic_name(topic)
        props = EMPTY_PROPERTIES if properties is None else properties
        session = self._session
        if qos is QoS.AT_MOST_ONCE:
            conn = self._ready_conn() or await self._wait_ready()
            _, data = session.publish(
                topic, data_payload, qos=qos, retain=retain, properties=props
            )
            await self._send(conn, data)
            self._messages_published += 1
            return
        while True:
            conn = self._ready_conn() or await self._wait_ready()
            if session.send_quota > 0:
                break
            await self._wait_quota()
        packet_id, data = session.publish(
            topic, data_payload, qos=qos, retain=retain, properties=props
        )
        assert packet_id is not None
        op = _Operation(packet_id, done=self._new_event())
        self._pending[packet_id] = op
        try:
            try:
                await self._send(conn, data, wait=False)
            except ConnectionLost:
                # The session keeps the message in flight: it is re-sent (or
                # published again) after reconnecting.
                pass
            await op.done.wait()
        finally:
            if self._pending.get(op.packet_id) is op and not op.done.is_set():
                del self._pending[op.packet_id]
        if op.error is not None:
            raise op.error
        self._messages_published += 1
        result = op.result
        assert isinstance(result, PublishCompleted)
        if result.reason_code.is_failure:
            raise PublishError(
                f"the broker refused the message to {topic!r}: "
                f"{result.reason_code.phrase} (reason code {result.reason_code.value:#04x})",
                reason_code=result.reason_code,
            )

    # -- subscribing ----------------------------------------------------------------------

    def _new_subscription(
        self,
        topic_filter: str,
        *,
        qos: QoS | int,
        no_local: bool,
        retain_as_published: bool,
        retain_handling: RetainHandling | int,
        buffer: int,
        overflow: Overflow,
    ) -> Subscription:
        validate_topic_filter(topic_filter)
        options = TopicSubscription(
            filter=topic_filter,
            qos=QoS(qos),
            no_local=no_local,
            retain_as_published=retain_as_published,
            retain_handling=RetainHandling(retain_handling),
        )
        identifier = 0
        if self.protocol is ProtocolVersion.V5:
            identifier = self._filter_ids.get(topic_filter, 0)
            if not identifier:
                identifier = self._next_sub_id
                self._next_sub_id = identifier % 268_435_455 + 1
        return Subscription(
            topic_filter,
            options,
            overflow=overflow,
            buffer=buffer,
            client=self,
            identifier=identifier,
        )

    def _sub_properties(self, sub: Subscription) -> Properties:
        if sub._identifier and self._identifiers_available():
            return Properties(subscription_identifiers=(sub._identifier,))
        return EMPTY_PROPERTIES

    def _identifiers_available(self) -> bool:
        available = getattr(self._session, "subscription_identifier_available", None)
        return available is None or bool(available)

    def _register(self, sub: Subscription) -> None:
        self._subscriptions.append(sub)
        self._tree.add(sub.topic_filter, sub)
        if sub._identifier:
            self._filter_ids[sub.topic_filter] = sub._identifier
            self._by_id.setdefault(sub._identifier, []).append(sub)

    def _unregister(self, sub: Subscription) -> bool:
        """Forget *sub*; True when no other subscription uses its filter."""
        if sub in self._catch_all:
            self._catch_all.remove(sub)
            return False
        if sub not in self._subscriptions:
            return False
        self._subscriptions.remove(sub)
        self._tree.remove(sub.topic_filter, sub)
        if sub._identifier:
            subs = self._by_id.get(sub._identifier, [])
            if sub in subs:
                subs.remove(sub)
            if not subs:
                self._by_id.pop(sub._identifier, None)
                self._filter_ids.pop(sub.topic_filter, None)
        return all(
            other.topic_filter != sub.topic_filter for other in self._subscriptions
        )

    async def subscribe(
        self,
        topic_filter: str,
        *,
        qos: QoS | int = QoS.AT_MOST_ONCE,
        no_local: bool = False,
        retain_as_published: bool = False,
        retain_handling: RetainHandling | int = RetainHandling.SEND_ON_SUBSCRIBE,
        buffer: int = 1000,
        overflow: Overflow = "wait",
        properties: Properties | None = None,
        listener: Listener | None = None,
    ) -> Subscription:
        """Subscribe and return the subscription once the broker granted it (SUBACK).

        With *listener* (a sync or async callable taking a `Message`), a dispatcher
        task of the client calls it for every message, in order; otherwise iterate the
        returned `Subscription`. Call :meth:`Subscription.unsubscribe` to stop.
        Synchronous listeners (with ``overflow="wait"``) share one dispatcher task
        and one bounded channel; each async listener gets a task of its own, so a
        slow one only holds up its own subscription. A listener's exception ends
        the client and propagates from ``run()`` / ``async with``.

        Raises:
            ValueError: invalid topic filter or option.
            SubscribeError: the broker refused (SUBACK reason code 0x80 or above).
            NotOpenError: the client is not running.
        """
        self._check_open()
        sub = self._new_subscription(
            topic_filter,
            qos=qos,
            no_local=no_local,
            retain_as_published=retain_as_published,
            retain_handling=retain_handling,
            buffer=buffer,
            overflow=overflow,
        )
        shared = (
            listener is not None
            and overflow == "wait"
            and not inspect.iscoroutinefunction(listener)
            and not inspect.iscoroutinefunction(type(listener).__call__)
        )
        if shared:
            # Synchronous listeners share one dispatcher task: a task switch per
            # message per subscription would cost more than most listeners do.
            sub._listener = listener
            sub._hub = self._listener_hub()
        self._register(sub)
        try:
            await self._subscribe(sub, properties)
        except BaseException:
            self._unregister(sub)
            sub._release()
            raise
        if listener is not None and not shared:
            self._spawn(
                self._run_listener, sub, listener, name=f"mqtt-dispatch[{topic_filter}]"
            )
        return sub

    def _listener_hub(self) -> MemoryObjectSendStream[tuple[Subscription, Message]]:
        """The shared dispatch channel of synchronous listeners (made on first use)."""
        if self._hub is None:
            send, receive = anyio.create_memory_object_stream[
                tuple[Subscription, "Message"]
            ](_HUB_BUFFER)
            self._hub = send
            self._spawn(self._run_hub, receive, name=f"mqtt-dispatch[{self.client_id}]")
        return self._hub

    async def _run_hub(
        self, receive: MemoryObjectReceiveStream[tuple[Subscription, Message]]
    ) -> None:
        # Drains with receive_nowait and checkpoints every _STREAK messages, like
        # Subscription iteration. A listener of an unsubscribed subscription is not
        # called again.
        _RUNNING_IN.set(self)
        with receive:
            streak = 0
            while True:
                if streak < _STREAK:
                    try:
                        sub, message = receive.receive_nowait()
                    except anyio.WouldBlock:
                        streak = _STREAK
                        continue
                    except (anyio.EndOfStream, anyio.ClosedResourceError):
                        return
                    streak += 1
                else:
                    streak = 0
                    try:
                        sub, message = await receive.receive()
                    except (anyio.EndOfStream, anyio.ClosedResourceError):
                        return
                listener = sub._listener
                if listener is None or sub._client is None:
                    continue
                result = listener(message)
                if inspect.isawaitable(result):
                    await result

    @contextlib.asynccontextmanager
    async def subscription(
        self,
        topic_filter: str,
        *,
        qos: QoS | int = QoS.AT_MOST_ONCE,
        no_local: bool = False,
        retain_as_published: bool = False,
        retain_handling: RetainHandling | int = RetainHandling.SEND_ON_SUBSCRIBE,
        buffer: int = 1000,
        overflow: Overflow = "wait",
        properties: Properties | None = None,
    ) -> AsyncIterator[Subscription]:
        """Subscribe on enter (after SUBACK), unsubscribe on exit.

        Both enter and exit are checkpoints. The exit's UNSUBSCRIBE is shielded and
        bounded by *disconnect_timeout*.

        Example::

            async with client.subscription("sensors/+/temp", qos=1) as sub:
                async for message in sub:
                    print(message.topic, message.payload)
        """
        sub = await self.subscribe(
            topic_filter,
            qos=qos,
            no_local=no_local,
            retain_as_published=retain_as_published,
            retain_handling=retain_handling,
            buffer=buffer,
            overflow=overflow,
            properties=properties,
        )
        try:
            yield sub
        finally:
            with anyio.move_on_after(self.disconnect_timeout, shield=True):
                with contextlib.suppress(MqttError):
                    await sub.unsubscribe()
            sub._release()

    async def _subscribe(
        self, sub: Subscription, properties: Properties | None
    ) -> None:
        props = self._sub_properties(sub)
        if properties is not None:
            props = attrs.evolve(
                properties, subscription_identifiers=props.subscription_identifiers
            )
        options = sub.options
        result = await self._request(
            lambda: self._session.subscribe([options], properties=props)
        )
        assert isinstance(result, Subscribed)
        code = result.reason_codes[0]
        if code.is_failure:
            raise SubscribeError(
                f"the broker refused the subscription to {sub.topic_filter!r}: "
                f"{code.phrase} (reason code {code.value:#04x})",
                reason_code=code,
            )
        sub.granted_qos = QoS(min(int(code), 2))

    async def _unsubscribe(self, sub: Subscription) -> None:
        last = self._unregister(sub)
        sub._close()
        if not sub.statistics().queued:
            sub._release()
        if not last or self._state != "running":
            await anyio.lowlevel.checkpoint()
            return
        if not self.is_connected:
            # The broker forgets it with the session, or we re-subscribe nothing.
            await anyio.lowlevel.checkpoint()
            return
        try:
            result = await self._request(
                lambda: self._session.unsubscribe([sub.topic_filter])
            )
        except NotOpenError:
            return
        assert isinstance(result, Unsubscribed)
        codes = result.reason_codes
        if (
            codes
            and codes[0].is_failure
            and codes[0] != ReasonCode.NO_SUBSCRIPTION_EXISTED
        ):
            raise UnsubscribeError(
                f"the broker refused to unsubscribe {sub.topic_filter!r}: "
                f"{codes[0].phrase} (reason code {codes[0].value:#04x})",
                reason_code=codes[0],
            )

    async def _run_listener(self, sub: Subscription, listener: Listener) -> None:
        _RUNNING_IN.set(self)
        async for message in sub:
            result = listener(message)
            if inspect.isawaitable(result):
                await result

    # -- the lower level: raw filters and the client-wide message stream ---------------

    @contextlib.asynccontextmanager
    async def messages(
        self, *, buffer: int = 1000, overflow: Overflow = "wait"
    ) -> AsyncIterator[Subscription]:
        """Every message this client receives, once per PUBLISH, whatever its topic.

        Subscribes to nothing by itself: combine it with :meth:`subscribe_filters`
        (or other subscriptions). This is what aiomqtt-style code builds on. It may
        be opened before the client runs, so nothing received after the CONNACK is
        missed.

        Example::

            async with client.messages() as messages:
                await client.subscribe_filters([TopicSubscription(filter="a/#")])
                async for message in messages:
                    ...
        """
        if self._state != "new":
            self._check_open()
        sub = Subscription(
            "#",
            TopicSubscription(filter="#"),
            overflow=overflow,
            buffer=buffer,
            client=self,
        )
        self._catch_all.append(sub)
        try:
            await anyio.lowlevel.checkpoint()
            yield sub
        finally:
            if sub in self._catch_all:
                self._catch_all.remove(sub)
            sub._release()

    async def subscribe_filters(
        self,
        subscriptions: Sequence[TopicSubscription],
        *,
        properties: Properties | None = None,
    ) -> tuple[ReasonCode, ...]:
        """Send one SUBSCRIBE for several filters and return the SUBACK reason codes.

        Unlike :meth:`subscribe`, no local subscription is made: messages reach
        :meth:`messages` streams (and any matching subscription). Refusals are
        returned, not raised. The filters are subscribed again after a reconnect
        that lost the session.

        Raises:
            ValueError: an invalid filter, or no filter at all.
            NotOpenError: the client is not running.
        """
        if not subscriptions:
            raise ValueError("subscribe_filters needs at least one topic filter")
        for options in subscriptions:
            validate_topic_filter(options.filter)
        props = EMPTY_PROPERTIES if properties is None else properties
        result = await self._request(
            lambda: self._session.subscribe(list(subscriptions), properties=props)
        )
        assert isinstance(result, Subscribed)
        for options, code in zip(subscriptions, result.reason_codes, strict=False):
            if not code.is_failure:
                self._raw_filters[options.filter] = (options, props)
        return result.reason_codes

    async def unsubscribe_filters(
        self, filters: Sequence[str], *, properties: Properties | None = None
    ) -> tuple[ReasonCode, ...]:
        """Send one UNSUBSCRIBE and return the UNSUBACK reason codes (MQTT 5).

        MQTT 3.1.1 brokers send no reason codes; SUCCESS is returned for each filter.

        Raises:
            ValueError: an invalid filter, or no filter at all.
            NotOpenError: the client is not running.
        """
        if not filters:
            raise ValueError("unsubscribe_filters needs at least one topic filter")
        for topic_filter in filters:
            validate_topic_filter(topic_filter)
        props = EMPTY_PROPERTIES if properties is None else properties
        for topic_filter in filters:
            self._raw_filters.pop(topic_filter, None)
        result = await self._request(
            lambda: self._session.unsubscribe(list(filters), properties=props)
        )
        assert isinstance(result, Unsubscribed)
        return result.reason_codes or tuple(ReasonCode.SUCCESS for _ in filters)

    async def _request(self, make: Callable[[], tuple[int, bytes]]) -> Event:
        """Send a SUBSCRIBE/UNSUBSCRIBE made by *make* and wait for its answer.

        A request lost with the connection is made and sent again on the next one.
        """
        while True:
            conn = await self._wait_ready()
            packet_id, data = make()
            op = _Operation(packet_id, done=self._new_event(), request=True)
            self._pending[packet_id] = op
            try:
                with contextlib.suppress(ConnectionLost):
                    await self._send(conn, data, wait=False)
                await op.done.wait()
            finally:
                if self._pending.get(packet_id) is op:
                    del self._pending[packet_id]
            if op.retry:
                continue
            if op.error is not None:
                raise op.error
            assert op.result is not None
            return op.result
