"""MqttClient: the public lifecycle object of the engine.

Theory of operation
-------------------
``run()`` (or ``async with``) opens one task group that the client owns. Everything the
client does in the background is a child of it, each child under a cancel scope of its
own (``_spawn``), so that ``aclose()`` stops exactly the client's tasks: with
``async with`` the caller's body runs in the same task group and is never cancelled by
the client closing (and, those scopes being shielded, cancelling the body does not tear
the client down before ``__aexit__`` has disconnected gracefully).

The inside lives in ``trio_mqttconn._engine``, one concern per module:

* ``link``: one `Link` per connection: the stream, the write path, the keepalive
  watchdog, withheld acknowledgements, and the **only** way to the session while
  that connection lives (a task that wakes after it ended gets `ConnectionLost`);
* ``connector``: handshake, failover over the URIs, the supervisor that reconnects
  with backoff;
* ``serve``: the client's current link from CONNACK to its end: the reader and the
  handling of each chunk's events, what a lost connection leaves behind, the
  graceful DISCONNECT;
* ``restore``: resend / resubscribe / republish after a reconnect;
* ``operations``: the publish path and the callers waiting for acknowledgements;
* ``subscriptions``: SUBSCRIBE/UNSUBSCRIBE for `Subscription` objects, raw filters
  and the ``messages()`` streams;
* ``router``: subscriptions and the delivery of received messages (the reader never
  waits for a consumer: messages that do not fit are parked; see there);
* ``arguments``: checks and conversions of the public methods' arguments.

The public methods check what they are given and hand over to these modules; the
client keeps the lifecycle (its task group, the cancel scopes of its tasks) and the
state they share (the session, the current link, the waiting callers).

Task tree (names as in ``trio``'s task list)::

    mqtt-supervisor[id]      serves one link at a time (reads it), reconnects
      mqtt-keepalive[id]     per link, once first due: PINGREQ, dead-peer detection
      mqtt-acks[id]          per link: writes released (withheld) acknowledgements
      mqtt-restore[id]       per link after a reconnect: resend, resubscribe, republish
    mqtt-dispatch[filter]    one per async listener
    mqtt-dispatch[id]        one for every synchronous listener (the hub); while
                             it is idle the reader calls them itself

Protocol state lives in the sans-IO :class:`~trio_mqttconn._session.ClientSession`, which
survives reconnects, so unacknowledged QoS 1/2 data is re-sent (session present) or
published again (session lost).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Self, final

import anyio
import anyio.abc
import attrs

from ._engine import connector, operations, serve, subscriptions as _subscriptions
from ._engine.arguments import (
    check_keepalive,
    check_session_expiry,
    check_topic,
    positive_or_zero,
    to_endpoints,
    to_payload,
)
from ._engine.link import Counters, Link
from ._engine.operations import Operation, operation_type
from ._engine.router import HUB_BUFFER, RUNNING_IN, Router
from ._engine.serve import POISON_TRIES as POISON_TRIES
from ._enums import ProtocolVersion, QoS, ReasonCode, RetainHandling
from ._exceptions import MqttError, NotOpenError, PublishError, SessionStoreError
from ._groups import (
    Event as _Event,
    TaskGroup,
    collapse as _collapse,
    event_factory,
    new_scope,
    open_task_group,
)
from ._properties import EMPTY_PROPERTIES, Properties
from ._session import ClientSession, SessionState
from ._subscription import Listener, Overflow, Subscription, _Intake
from ._topics import validate_topic_name
from ._transports import Endpoint

if TYPE_CHECKING:
    import random as _random
    import ssl
    from contextlib import AbstractAsyncContextManager
    from types import TracebackType

    from ._events import ConnAckInfo, Connected, Event
    from ._groups import Scope
    from ._message import Message
    from ._packets import PublishPacket, TopicSubscription, Will
    from ._rpc import RequestStatistics, Responder, _Requester
    from ._store import SessionStore

__all__ = ["ClientStatistics", "MqttClient", "Transport"]

#: A transport factory: connects to an endpoint and returns a byte stream.
Transport = Callable[[Endpoint], Awaitable[anyio.abc.ByteStream]]

_LOGGER = logging.getLogger("trio_mqttconn.client")
#: QoS by wire value (``QoS(n)`` goes through Enum's slow ``__call__``).
_QOS: tuple[QoS, ...] = tuple(QoS(value) for value in range(3))
_CONNECTED = SessionState.CONNECTED
_QOS0 = QoS.AT_MOST_ONCE
#: Compatibility names (older code and tests import them from here).
_RUNNING_IN = RUNNING_IN
_HUB_BUFFER = HUB_BUFFER
_FATAL_CONNACK = connector.FATAL_CONNACK
_Operation = Operation
_Connection = Link


def _protocol_version(value: ProtocolVersion | int) -> ProtocolVersion:
    """*protocol*: a `ProtocolVersion` as it is (Enum's ``__call__`` is slow), an
    int by value."""
    return value if type(value) is ProtocolVersion else ProtocolVersion(value)


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
    last_disconnect_reason: str | None = None
    """Why the last connection ended (None while the first one lives)."""
    last_disconnect_time: float | None = None
    """When the last connection ended, in the running backend's clock (seconds)."""


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
        receive_maximum: QoS 1/2 messages the broker may send before we acknowledge
            (MQTT 5). It bounds the memory of messages parked for slow consumers:
            at most this many wait, so the default is 1000, not 65535.
        maximum_packet_size: Largest packet we accept (None: no limit).
        topic_alias_maximum: Topic aliases the broker may use towards us.
        outgoing_topic_aliases: Use topic aliases for our publishes when allowed.
        disconnect_timeout: Seconds granted to the DISCONNECT on close.
        maximum_outgoing_packet_size: Largest packet this client sends, bytes
            (None: only the broker's announced limit). For MQTT 3.1.1 brokers,
            which announce none and drop the connection instead: a publish above
            it fails at once with `PublishError`.
        intake_limit: Bytes of QoS 0 messages that may wait beside full
            subscription buffers (``overflow="wait"``) before the client stops
            reading from the broker until consumers caught up (TCP backpressure);
            each counts its topic and payload plus 512 bytes. Default 256 KiB.
            QoS 1/2 messages are bounded by *receive_maximum* instead.
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
        session_store: Where the session survives the process (a `SessionStore`,
            e.g. `SqliteSessionStore`): unfinished QoS 1/2 messages, QoS 2
            state and subscriptions are stored before their packets leave, and
            taken up again by the next client with the same *client_id* (which
            must be given). None (default): the session lives in memory only.
    """

    _endpoints: tuple[Endpoint, ...] = attrs.field(
        converter=to_endpoints, alias="uri_or_uris"
    )
    client_id: str | None = attrs.field(default=None, kw_only=True)
    """The client identifier in force (the broker's choice when it assigned one)."""
    protocol: ProtocolVersion = attrs.field(
        default=ProtocolVersion.V5, converter=_protocol_version, kw_only=True
    )
    """The MQTT protocol version spoken."""
    _username: str | None = attrs.field(default=None, kw_only=True, alias="username")
    _password: str | None = attrs.field(
        default=None, kw_only=True, repr=False, alias="password"
    )
    keepalive: int = attrs.field(default=60, kw_only=True, validator=check_keepalive)
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
        default=30.0, kw_only=True, validator=positive_or_zero("connect_timeout")
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
    receive_maximum: int = attrs.field(default=1000, kw_only=True)
    """How many unacknowledged QoS 1/2 messages the broker may send us."""
    maximum_packet_size: int | None = attrs.field(default=None, kw_only=True)
    """Largest packet we accept from the broker."""
    topic_alias_maximum: int = attrs.field(default=0, kw_only=True)
    """Highest topic alias the broker may use towards us."""
    outgoing_topic_aliases: bool = attrs.field(default=False, kw_only=True)
    """Whether our publishes use topic aliases."""
    disconnect_timeout: float = attrs.field(
        default=5.0, kw_only=True, validator=positive_or_zero("disconnect_timeout")
    )
    """Seconds granted to the DISCONNECT on close."""
    intake_limit: int = attrs.field(default=256 * 1024, kw_only=True)
    """Bytes of parked QoS 0 messages past which reading pauses."""
    maximum_outgoing_packet_size: int | None = attrs.field(default=None, kw_only=True)
    """Largest packet we send (MQTT 3.1.1 brokers announce no limit); None: none."""
    session_store: SessionStore | None = attrs.field(default=None, kw_only=True)
    """Where the session survives the process; None: in memory only."""

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
    _task_scopes: set[Scope] = attrs.field(init=False, factory=set)
    #: ``async with``: the tasks are shielded from the body's cancellation, so that
    #: leaving the body always disconnects gracefully (``__aexit__`` stops them).
    _shield_tasks: bool = attrs.field(init=False, default=False)
    _stopping: bool = attrs.field(init=False, default=False)
    #: Makes the events of waiting callers (trio's own on trio; see event_factory).
    _new_event: Callable[[], _Event] = attrs.field(init=False, default=anyio.Event)
    #: The running backend's `Operation` (set when the client runs).
    _new_operation: type[Operation] = attrs.field(init=False, default=Operation)
    _outer: AbstractAsyncContextManager[TaskGroup] | None = attrs.field(
        init=False, default=None
    )
    #: The link publishers use: set once it is ready (restored), else None.
    _link: Link | None = attrs.field(init=False, default=None)
    #: The live link, ready or not.
    _conn: Link | None = attrs.field(init=False, default=None)
    #: The running backend's events when made in one of its tasks (else anyio's):
    #: see __attrs_post_init__.
    _ready: _Event = attrs.field(init=False)
    _quota: _Event = attrs.field(init=False)
    _finished: _Event = attrs.field(init=False)
    _pending: dict[int, Operation] = attrs.field(init=False, factory=dict)
    #: Messages a lost broker session discarded and that are not published again
    #: yet (a connection may end while they wait for the send quota).
    _unpublished: list[tuple[PublishPacket, Operation | None]] = attrs.field(
        init=False, factory=list
    )
    _router: Router = attrs.field(init=False)
    #: Connections in a row that ended with QoS 1/2 publishes in flight and none
    #: of them completed (see ``_poison_check``).
    _poison_strikes: int = attrs.field(init=False, default=0)
    #: Filters unsubscribed while offline, for a resumed session.
    _offline_unsubscribes: set[str] = attrs.field(init=False, factory=set)
    _endpoint_index: int = attrs.field(init=False, default=0)
    _fatal: BaseException | None = attrs.field(init=False, default=None)
    _counters: Counters = attrs.field(init=False, factory=Counters)
    _connack: ConnAckInfo | None = attrs.field(init=False, default=None)
    #: The requesting side of request(), made on the first request (see _rpc).
    _requester: _Requester | None = attrs.field(init=False, default=None)
    _restored_subscriptions: tuple[TopicSubscription, ...] = attrs.field(
        init=False, default=()
    )

    def __attrs_post_init__(self) -> None:
        if self.session_store is not None and not self.client_id:
            raise ValueError(
                "session_store needs a client_id: a stored session belongs to one "
                "client id; pass client_id=..."
            )
        if self.client_id is None:
            self.client_id = f"trio-mqttconn-{os.urandom(6).hex()}"
        if self.reconnect_delay <= 0 or self.max_reconnect_delay < self.reconnect_delay:
            raise ValueError(
                "reconnect_delay must be > 0 and <= max_reconnect_delay, not "
                f"{self.reconnect_delay!r} and {self.max_reconnect_delay!r}"
            )
        if self.intake_limit < 0:
            raise ValueError(
                f"intake_limit must be a number of bytes >= 0, not {self.intake_limit!r}"
            )
        self._session = ClientSession(
            protocol_version=self.protocol,
            receive_maximum=self.receive_maximum,
            maximum_packet_size=self.maximum_packet_size,
            topic_alias_maximum=self.topic_alias_maximum,
            outgoing_topic_aliases=self.outgoing_topic_aliases,
            maximum_outgoing_packet_size=self.maximum_outgoing_packet_size,
            defer_acks=True,  # the link releases them (see Link.acks)
            journal=self.session_store is not None,
        )
        self._router = Router(intake=_Intake(limit=self.intake_limit))
        # trio's own events when made in a trio task (anyio's Event finds the
        # backend each time it is made); a client made outside any event loop
        # gets anyio's, which bind to the loop that first uses them.
        new_event = event_factory()
        self._ready = new_event()
        self._quota = new_event()
        self._finished = new_event()

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
        link = self._conn
        return (
            link is not None
            and link.ended is None
            and self._session.state is SessionState.CONNECTED
        )

    @property
    def endpoints(self) -> tuple[Endpoint, ...]:
        """The brokers, in failover order (credentials hidden in their repr)."""
        return self._endpoints

    @property
    def connack(self) -> ConnAckInfo | None:
        """What the last CONNACK said (session present, the broker's limits).

        A read-only record (``ConnAckInfo``) with ``session_present``,
        ``receive_maximum``, ``maximum_qos``, ``retain_available``,
        ``maximum_packet_size``, ``topic_alias_maximum``, ``server_keep_alive``,
        ``assigned_client_id`` and more; None before the first connection.
        """
        return self._connack

    async def wait_connected(self) -> None:
        """Wait until the broker link is up.

        Raises:
            NotOpenError: the client is not running or was closed.
        """
        await anyio.lowlevel.checkpoint()
        await self._wait_ready()

    def statistics(self) -> ClientStatistics:
        """Counters of this client."""
        counters = self._counters
        return ClientStatistics(
            connected=self.is_connected,
            connects=counters.connects,
            reconnects=max(0, counters.connects - 1),
            messages_received=counters.messages_received,
            messages_published=counters.messages_published,
            inflight=self._session.inflight,
            subscriptions=len(self._router.subscriptions),
            bytes_received=counters.bytes_received,
            bytes_sent=counters.bytes_sent,
            last_disconnect_reason=counters.last_disconnect_reason,
            last_disconnect_time=counters.last_disconnect_time,
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
                await self._close()  # shielded (the graceful DISCONNECT is)
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
        if self.session_store is not None:
            assert self.client_id is not None
            stored = self.session_store.open(self.client_id, self.protocol)
            self._session.restore(stored)
            self._restored_subscriptions = stored.subscriptions
        self._state = "connecting"
        self._new_event = event_factory()
        self._new_operation = operation_type()

    async def _start(self) -> None:
        """The first connection, then the supervisor task that keeps it."""
        # aclose() may come while we connect: it cancels the attempt's scope
        # (see connector.handshake), which then raises NotOpenError.
        result = await connector.connect_round(self)
        if self._state != "connecting":
            await result[0].close()
            raise NotOpenError(connector.CLOSED_WHILE_CONNECTING)
        link, connected, rest = result
        self._state = "running"
        self._attach(link, connected)
        # Nothing came with the CONNACK: the link is served (and ready) before we
        # return, so the caller's first request does not wait for the supervisor.
        opened = not rest
        if opened:
            serve.open_link(self, self._session, link, connected, rest)
        self._spawn(
            self._supervisor,
            link,
            connected,
            rest,
            opened,
            name=f"mqtt-supervisor[{self.client_id}]",
        )

    def _spawn(
        self,
        function: Callable[..., Awaitable[object]],
        *args: object,
        name: str,
        scope: Scope | None = None,
    ) -> None:
        """Start a task of the client in its task group, under its own cancel scope.

        The scope exists before the task runs, so ``_stop_tasks()`` reaches a task
        that has not started yet. The caller's task (the body of ``async with``)
        shares the task group but not these scopes: closing the client never cancels
        its user, and (shielded) cancelling the body does not tear the client down
        before ``__aexit__`` disconnects.
        """
        assert self._task_group is not None
        task_scope = new_scope(shield=self._shield_tasks) if scope is None else scope
        if self._stopping:
            task_scope.cancel()
        self._task_scopes.add(task_scope)
        self._task_group.start_soon(
            self._guarded, task_scope, function, args, name=name
        )

    async def _guarded(
        self,
        scope: Scope,
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
                if not scope.cancel_called:  # a link's end cancelled its own
                    scope.cancel()

    async def aclose(self, *, session_expiry: int | None = None) -> None:
        """Disconnect gracefully, stop every task of the client and wait for them.

        Idempotent. Pending publish/subscribe calls raise `NotOpenError`; the
        iterators of subscriptions end. The DISCONNECT is bounded by
        *disconnect_timeout* and shielded from cancellation; the stream is closed in
        any case.

        Args:
            session_expiry: MQTT 5: the Session Expiry Interval to set in the
                DISCONNECT, seconds (e.g. 0 to end the session now). Allowed only
                when CONNECT asked for a non-zero one (*session_expiry*).

        Raises:
            ValueError: *session_expiry* is not allowed (see above).
        """
        if session_expiry is not None:
            check_session_expiry(session_expiry, self.session_expiry)
        if self._state == "new":
            self._state = "closed"
            self._finished.set()
        if self._state == "closed" and self._finished.is_set():
            await anyio.lowlevel.checkpoint()
            return
        with anyio.CancelScope(shield=True):
            await self._close(session_expiry)
            if RUNNING_IN.get() is self:
                # Called from one of our own tasks (a listener): waiting for every
                # task to finish would wait for ourselves. The cancellation is
                # delivered when the listener returns to the dispatcher.
                return
            await self._finished.wait()

    async def _close(self, session_expiry: int | None = None) -> None:
        """Disconnect (once) and cancel every task of the client."""
        if self._state in ("connecting", "running"):
            self._state = "closing"
            await serve.disconnect(self, session_expiry)
        self._stop_tasks()
        if not self._task_scopes:
            self._shutdown()
            if self._state == "closed":
                self._finished.set()

    @property
    def restored_subscriptions(self) -> tuple[TopicSubscription, ...]:
        """The subscriptions the ``session_store`` kept from an earlier process.

        Set when the client starts; empty without a store. The broker may deliver
        messages for them as soon as it resumes the session: subscribe to them
        again (``subscription``/``subscribe``) to receive those.
        """
        return self._restored_subscriptions

    def _persist(self) -> None:
        """Hand the session's journal to the store (before any write; see _store).

        Raises:
            SessionStoreError: the store failed; the client stops.
        """
        changes = self._session.take_journal()
        if changes:
            assert self.session_store is not None
            try:
                self.session_store.apply(changes)
            except SessionStoreError as exc:
                self._record_failure(exc)
                self._stop_tasks()
                raise

    def _close_store(self) -> None:
        store = self.session_store
        if store is not None:
            try:
                self._persist()
            except SessionStoreError as exc:
                _LOGGER.error("%s", exc)
            finally:
                store.close()

    def _shutdown(self) -> None:
        """Leave nothing behind: fail waiters, end subscriptions, wake everyone."""
        self._state = "closed"
        self._close_store()
        closed = NotOpenError("the client is closed")
        for op in self._pending.values():
            op.fail(closed)
        self._pending.clear()
        for _, waiter in self._unpublished:
            if waiter is not None:
                waiter.fail(closed)
        self._unpublished.clear()
        if self._requester is not None:
            self._requester.close(closed)
        # Both ends of every subscription's channel are closed: iterators end,
        # nothing leaks. messages() streams keep what is queued for their reader
        # (their context manager closes the rest).
        self._router.clear()
        link, self._conn = self._conn, None
        self._link = None
        if link is not None:
            link.end(closed)
        self._ready.set()
        self._quota.set()

    # -- connections -----------------------------------------------------------------

    async def _supervisor(
        self, link: Link, connected: Connected, rest: list[Event], opened: bool
    ) -> None:
        # This task reads the connections, and synchronous listeners may be called
        # while it does (see `Hub.put`): it is one of the client's own tasks.
        RUNNING_IN.set(self)
        try:
            await connector.supervise(self, link, connected, rest, opened=opened)
        finally:
            # While closing, _close() stops the tasks (after the DISCONNECT).
            closing = self._state == "closing"
            last = self._conn
            self._shutdown()
            if not closing:
                self._stop_tasks()
            if last is not None:
                await last.close()

    def _attach(self, link: Link, connected: Connected) -> None:
        """Make *link* the client's connection (before anyone may use it)."""
        serve.attach(self, link, connected)

    def _link_ended(self, link: Link, reason: BaseException) -> None:
        """A link ended: callers must wait for the next one."""
        serve.link_ended(self, link, reason)

    def _set_ready(self, link: Link) -> None:
        """*link* is restored: publishers and requests may use it."""
        if link.ended is None and self._conn is link:
            self._link = link
            self._ready.set()
            self._quota.set()

    async def _serve(
        self,
        link: Link,
        connected: Connected,
        rest: list[Event],
        *,
        opened: bool = False,
    ) -> BaseException:
        """Run one link until it ends; return why it ended (see ``_engine.serve``)."""
        return await serve.serve_link(
            self, self._session, link, connected, rest, opened=opened
        )

    def _filter_options(self) -> dict[str, tuple[TopicSubscription, Properties]]:
        """What to subscribe to again after a reconnect that lost the session."""
        return _subscriptions.filter_options(self)

    def _republish_refused(self, topic: str, exc: ValueError) -> PublishError:
        return PublishError(
            f"the message to {topic!r} cannot be published again on the new "
            f"connection: {exc}"
        )

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

    def _ready_link(self) -> Link | None:
        """The link, if a publish may use it right now (no await needed)."""
        link = self._link
        if (
            link is None
            or link.ended is not None
            or self._state != "running"
            or self._session.state is not _CONNECTED
        ):
            return None
        return link

    async def _wait_ready(self) -> Link:
        while True:
            self._check_open()
            link = self._link
            if link is not None and link.ended is None:
                if self._session.state is SessionState.CONNECTED:
                    return link
                # Connected no more (the broker's DISCONNECT was decoded, the
                # reader has yet to end the link): wait for the end of this link,
                # not in a loop on the still-set ready event.
                await link.wait_ended()
                continue
            await self._ready.wait()

    async def _wait_quota(self) -> None:
        # One Event shared by every waiter; replaced only once it has fired, so no
        # waiter is ever left on an Event nobody will set.
        if self._quota.is_set():
            self._quota = self._new_event()
        await self._quota.wait()

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

        If cancelled before its bytes were written, nothing of it remains (no topic
        alias, packet id or send quota). Once written, a QoS 1/2 message may still
        be delivered (it stays in the session and is re-sent after a reconnect); it
        is never half-written.

        Raises:
            ValueError: invalid topic name or QoS, or the broker's limits forbid it.
            TypeError: *topic* is not a str, or *payload* is neither bytes nor str.
            PublishError: the broker answered with a failure reason code, or a
                stricter broker refused the message when it was published again
                after a reconnect that lost the session.
            ConnectionLost: QoS 0 only: the connection broke while the message was
                being written, so it may not have left (QoS 1/2 messages stay in
                flight and are sent again on the next connection instead).
            NotOpenError: the client is not running.
        """
        if type(topic) is not str:
            check_topic("topic", topic)
        data_payload = to_payload(payload)
        if type(qos) is not QoS:
            # An int 0..2 by table: QoS(qos) costs more than the rest of the checks.
            qos = _QOS[qos] if type(qos) is int and 0 <= qos <= 2 else QoS(qos)
        validate_topic_name(topic)
        props = EMPTY_PROPERTIES if properties is None else properties
        if qos is _QOS0 and (link := self._ready_link()) is not None:
            # operations.publish's QoS 0 branch, one coroutine less (the hot path):
            # cancelled at the check, the session has made no packet (no trace).
            await link.check_cancelled()
            data = operations.qos0_packet(link, topic, data_payload, retain, props)
            await link.send(data, checked=True)
            self._counters.messages_published += 1
            return
        await operations.publish(self, topic, data_payload, qos, retain, props)

    def publish_nowait(
        self,
        topic: str,
        payload: bytes | bytearray | memoryview | str = b"",
        *,
        retain: bool = False,
        properties: Properties | None = None,
    ) -> None:
        """Publish a QoS 0 message now, without waiting, or raise `anyio.WouldBlock`.

        The synchronous twin of ``await publish(topic, payload)`` for QoS 0, like
        ``send_nowait`` of a memory channel: it hands the message to the connection
        (the socket, or the bytes waiting for the writer, up to 64 KiB) and returns;
        it is neither a cancel point nor a schedule point. A loop of it must reach a
        checkpoint of its own now and then, so that other tasks run::

            for i, reading in enumerate(readings):
                try:
                    client.publish_nowait("sensors/t", reading)
                except anyio.WouldBlock:
                    await client.publish("sensors/t", reading)  # waits for room
                if i % 64 == 63:
                    await anyio.lowlevel.checkpoint()

        Raises:
            anyio.WouldBlock: not connected right now (reconnecting), or 64 KiB of
                earlier writes still wait; nothing of the message was sent and
                nothing of it remains (no topic alias).
            ValueError: invalid topic name, or the broker's limits forbid it.
            TypeError: *topic* is not a str, or *payload* is neither bytes nor str.
            ConnectionLost: the connection broke while the message was written.
            NotOpenError: the client is not running.
        """
        if type(topic) is not str:
            check_topic("topic", topic)
        data_payload = to_payload(payload)
        validate_topic_name(topic)
        props = EMPTY_PROPERTIES if properties is None else properties
        link = self._ready_link()
        if link is None:
            self._check_open()
            raise anyio.WouldBlock("not connected: the client is (re)connecting")
        if not link.can_send_nowait():
            raise anyio.WouldBlock("earlier writes still wait for the connection")
        data = operations.qos0_packet(link, topic, data_payload, retain, props)
        link.send_nowait(data)
        self._counters.messages_published += 1

    # -- subscribing ----------------------------------------------------------------------

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
        manual_ack: bool = False,
    ) -> Subscription:
        """Subscribe and return the subscription once the broker granted it (SUBACK).

        With *listener* (a sync or async callable taking a `Message`), a dispatcher
        task of the client calls it for every message, in order; otherwise iterate the
        returned `Subscription`. Call :meth:`Subscription.unsubscribe` to stop.
        Synchronous listeners (with ``overflow="wait"``) share one dispatcher task
        and one bounded channel; each async listener gets a task of its own, so a
        slow one only holds up its own subscription. A listener's exception ends
        the client and propagates from ``run()`` / ``async with``.

        With *manual_ack*, the PUBACK/PUBREC of a QoS 1/2 message goes out only
        when the application calls ``message.ack()`` (at-least-once processing).

        If cancelled after the SUBSCRIBE went out, the filter is unsubscribed again
        (unless another subscription uses it): nothing stays on the broker that the
        client forgot.

        Raises:
            ValueError: invalid topic filter or option.
            TypeError: *topic_filter* is not a str, or *listener* is not callable.
            SubscribeError: the broker refused (SUBACK reason code 0x80 or above).
            NotOpenError: the client is not running.
        """
        return await _subscriptions.subscribe(
            self,
            topic_filter,
            qos=qos,
            no_local=no_local,
            retain_as_published=retain_as_published,
            retain_handling=retain_handling,
            buffer=buffer,
            overflow=overflow,
            properties=properties,
            listener=listener,
            manual_ack=manual_ack,
        )

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
        manual_ack: bool = False,
    ) -> AsyncIterator[Subscription]:
        """Subscribe on enter (after SUBACK), unsubscribe on exit.

        Both enter and exit are checkpoints. The exit's UNSUBSCRIBE is shielded and
        bounded by *disconnect_timeout*. With *manual_ack*, call ``message.ack()``
        for each QoS 1/2 message once it was processed.

        Example::

            async with client.subscription("sensors/+/temp", qos=1) as sub:
                async for message in sub:
                    print(message.topic, message.payload)
        """
        async with _subscriptions.subscription(
            self,
            topic_filter,
            qos=qos,
            no_local=no_local,
            retain_as_published=retain_as_published,
            retain_handling=retain_handling,
            buffer=buffer,
            overflow=overflow,
            properties=properties,
            manual_ack=manual_ack,
        ) as sub:
            yield sub

    async def _unsubscribe(self, sub: Subscription) -> None:
        """The body of `Subscription.unsubscribe` (see ``_engine.subscriptions``)."""
        await _subscriptions.unsubscribe(self, sub)

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
        async with _subscriptions.messages(
            self, buffer=buffer, overflow=overflow
        ) as sub:
            yield sub

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
        return await _subscriptions.subscribe_filters(self, subscriptions, properties)

    async def unsubscribe_filters(
        self, filters: Sequence[str], *, properties: Properties | None = None
    ) -> tuple[ReasonCode, ...]:
        """Send one UNSUBSCRIBE and return the UNSUBACK reason codes (MQTT 5).

        MQTT 3.1.1 brokers send no reason codes; SUCCESS is returned for each filter.

        Raises:
            ValueError: an invalid filter, or no filter at all.
            NotOpenError: the client is not running.
        """
        return await _subscriptions.unsubscribe_filters(self, filters, properties)

    # -- request/response (MQTT 5) ------------------------------------------------------

    async def request(
        self,
        topic: str,
        payload: bytes | bytearray | memoryview | str = b"",
        *,
        qos: QoS | int = QoS.AT_LEAST_ONCE,
        timeout: float | None = None,  # noqa: ASYNC109 (#11: raises RequestTimeout)
        properties: Properties | None = None,
    ) -> Message:
        """Publish a request and return its response (MQTT 5 request/response).

        The request carries this client's response topic
        (``trio_mqttconn/responses/<client id>``, or ``<Response
        Information>/<client id>`` when the broker offers Response Information;
        subscribed once, on the first request) and Correlation Data of its own; the response with that
        Correlation Data is returned to this call only, however many requests are
        in flight. A responder answers with :meth:`Request.respond` (see
        :meth:`responder`).

        If cancelled, or when *timeout* seconds pass, the call leaves nothing
        behind; a response that arrives later is dropped and counted in
        :meth:`request_statistics`. If cancelled after the PUBLISH left, the
        responder may still receive the request.

        Raises:
            RequestTimeout: no response within *timeout* seconds (a TimeoutError).
            ConfigError: the client speaks MQTT 3.1.1 (request/response needs
                MQTT 5's Response Topic and Correlation Data).
            ValueError: *properties* set response_topic or correlation_data,
                *timeout* is not positive, or the topic or QoS are invalid.
            PublishError: the broker refused the request.
            NotOpenError: the client is not running, or closed while waiting.
        """
        from ._rpc import request  # imported when first used (#9, memory)

        return await request(
            self, topic, payload, qos=qos, timeout=timeout, properties=properties
        )

    @contextlib.asynccontextmanager
    async def responder(
        self,
        topic_filter: str,
        *,
        qos: QoS | int = QoS.AT_LEAST_ONCE,
        buffer: int = 1000,
    ) -> AsyncIterator[Responder]:
        """Subscribe to *topic_filter* and yield its requests (MQTT 5).

        Enter (after SUBACK) and exit (UNSUBSCRIBE) are checkpoints, as for
        :meth:`subscription`. Iterate the `Responder` for `Request` objects and
        answer each with :meth:`Request.respond`, which copies the request's
        Response Topic and Correlation Data. Messages without a Response Topic
        are counted and skipped.

        Example::

            async with client.responder("svc/+/get", qos=1) as requests:
                async for request in requests:
                    await request.respond(b"answer")

        Raises:
            ConfigError: the client speaks MQTT 3.1.1.
            ValueError: invalid topic filter or option.
            SubscribeError: the broker refused the subscription.
            NotOpenError: the client is not running.
        """
        from ._rpc import responder  # imported when first used (#9, memory)

        async with responder(self, topic_filter, qos=qos, buffer=buffer) as requests:
            yield requests

    def request_statistics(self) -> RequestStatistics:
        """Counters of :meth:`request`: requests, responses, dropped, pending (sync)."""
        from ._rpc import request_statistics  # imported when first used (#9, memory)

        return request_statistics(self)
