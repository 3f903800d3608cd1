"""Serve: the client's current link, from its CONNACK to its end.

Theory of operation
-------------------
`attach` makes a new `Link` the client's connection (before anyone may use it);
publishers use it once it is restored (``MqttClient._set_ready``). `open_link`
starts serving it without waiting (for a first link that brought nothing else,
before ``async with`` returns: the caller's first request finds it ready);
`serve_link` runs it until it ends and returns why. Beside it run the
link's keepalive watchdog and ack writer and, after a reconnect, the restore task
(``restore``), each under a scope that ends with the link. It reads itself (the
supervisor's task is the link's reader):

* every chunk goes into the session, and the events it yields are handled at once,
  without waiting: messages are handed to the router (which parks what does not
  fit and withholds its acknowledgement), completions wake their callers
  (``MqttClient._pending``), a DISCONNECT or AUTH ends the link;
* then the acknowledgements the chunk owes are released or withheld
  (`Link.owe_acks`) and what the session has to send is written without waiting
  for a write in progress: control packets are always read and answered, whatever
  the consumers do;
* past the QoS 0 intake limit the reader stops reading until consumers caught up
  (TCP backpressure; not silence for the keepalive watchdog).

The session is the client's, handed in by it: the reader uses it only while its
link lives; once the link ended, `serve_link` marks the connection lost, sends the
SUBSCRIBE/UNSUBSCRIBE still waiting back to their callers to be asked again, and
gives up a message the broker drops the connection for every time
(`POISON_TRIES`). `link_ended` (the link's ``on_end``) makes callers wait for the
next link; `disconnect` ends the link gracefully when the client closes.
"""

from __future__ import annotations

import contextlib
import logging
from typing import TYPE_CHECKING, Final

import anyio

from .._enums import ProtocolVersion, ReasonCode
from .._events import (
    AuthReceived,
    Disconnected,
    MessageReceived,
    PongReceived,
    PublishCompleted,
    Subscribed,
    Unsubscribed,
)
from .._exceptions import (
    ConnectionLost,
    InvalidStateError,
    MqttError,
    MqttInternalError,
    NotOpenError,
    ProtocolError,
    PublishError,
)
from .._groups import current_time, new_scope
from .._properties import EMPTY_PROPERTIES, Properties
from .._session import SessionState
from . import restore, trace
from .link import transport_drained, transport_write
from .subscriptions import filter_options, resubscribed

if TYPE_CHECKING:
    import socket

    from anyio._backends._asyncio import SocketStream as AsyncioSocketStream

    from .._client import MqttClient
    from .._events import Connected, Event
    from .._groups import Scope
    from .._session import ClientSession
    from .link import Hold, Link
    from .operations import Operation

__all__ = [
    "POISON_TRIES",
    "attach",
    "disconnect",
    "handle",
    "link_ended",
    "open_link",
    "serve_link",
]

_LOGGER = logging.getLogger("trio_mqttconn.client")

#: Connections in a row lost with nothing completed before a message is given up.
POISON_TRIES: Final = 3


def attach(client: MqttClient, link: Link, connected: Connected) -> None:
    """Make *link* the client's connection (before anyone may use it)."""
    client._conn = link
    client._connack = connected.info
    if not connected.session_present:
        client._router.session_lost()
    counters = client._counters
    counters.connects += 1
    if _LOGGER.isEnabledFor(logging.INFO):
        _LOGGER.info(
            "connected to %s as %r (connection %d)",
            link.where,
            client.client_id,
            counters.connects,
        )
    if client._on_connect is not None:
        client._on_connect(counters.connects > 1)


def open_link(
    client: MqttClient,
    session: ClientSession,
    link: Link,
    connected: Connected,
    rest: list[Event],
) -> None:
    """Start serving *link* (never waits): its tasks, what came with the CONNACK,
    then the restore task, or the link is ready at once.

    The keepalive watchdog (once first due: see `Link.watch`), the ack writer
    (once an ack was withheld or ``publish_nowait`` left bytes to write) and,
    after a reconnect, the restoring of publishes and subscriptions run under
    scopes that end with the link.
    `MqttClient._start` calls it for a first link that brought nothing else, so
    that ``async with`` returns with the link ready; `serve_link` otherwise.
    """
    shield = client._shield_tasks

    def start_keepalive() -> None:
        client._spawn(
            link.keepalive_task,
            name=f"mqtt-keepalive[{client.client_id}]",
            scope=link.new_scope(shield=shield),
        )

    if link.keepalive > 0:
        # Started when first due: most links end or hear from the broker first.
        link.watch(start_keepalive)

    def start_ack_writer() -> None:
        client._spawn(
            link.ack_writer,
            name=f"mqtt-acks[{client.client_id}]",
            scope=link.new_scope(shield=shield),
        )

    # Started when first needed: most links never withhold an ack.
    link.start_ack_writer = start_ack_writer
    # What came with the CONNACK is routed first, so that the session's
    # output (re-sends, and the acks of those messages) is filtered too.
    held: dict[int, Hold] = {}
    early = handle(client, link, rest, held) if rest else None
    link.owe_acks(held, client._router.qos2_held)
    data = session.data_to_send()
    if early is not None:
        link.end(early)
    if not connected.session_present:
        client._offline_unsubscribes.clear()
    if (
        data
        or client._offline_unsubscribes
        or connected.discarded
        or connected.discarded_pubrel
        or client._unpublished
        or (not connected.session_present and filter_options(client))
    ):
        client._spawn(
            restore.restore,
            client,
            link,
            connected,
            data,
            name=f"mqtt-restore[{client.client_id}]",
            scope=link.new_scope(shield=shield),
        )
    else:
        client._set_ready(link)


async def serve_link(
    client: MqttClient,
    session: ClientSession,
    link: Link,
    connected: Connected,
    rest: list[Event],
    *,
    opened: bool = False,
) -> BaseException:
    """Run *link* until it ends; return why it ended.

    The caller's task reads; `open_link` (unless *opened*: done already) starts
    the work beside it.
    """
    if not opened:
        open_link(client, session, link, connected, rest)
    scope = link.reader_scope = link.new_scope()
    with scope:
        await _read(client, session, link, scope)
    # The link is over: nothing may use it again.
    if client._conn is link:
        client._conn = None
    if client._link is link:
        client._link = None
    if session.state is not SessionState.DISCONNECTED and client._state == "running":
        session.connection_lost()
    _lost_requests(client)
    await link.close()
    reason = link.ended or ConnectionLost("the connection ended")
    if client._state == "running":
        _poison_check(client, session, link, reason)
    return reason


# -- the reader ------------------------------------------------------------------------


async def _read(
    client: MqttClient, session: ClientSession, link: Link, scope: Scope
) -> None:
    """Read *link* until it ends (its session is used only while it lives).

    *scope*: the reader's own, which the end of the link it sees itself leaves
    alone (nothing yields before the reader leaves it: cancelling it would only
    cost).
    """
    intake = client._router.intake
    try:
        while True:
            data = await link.receive()
            size = len(data)
            session.receive_data(data)
            # The decoder keeps what it still needs (an unfinished packet): the
            # read itself goes now, not after its messages were handled.
            del data
            events = session.events()
            if trace.enabled():
                trace.received(link.where, size, events)
            if events:
                held: dict[int, Hold] = {}
                error = handle(client, link, events, held)
                await _flush(client, session, link, held)
                if error is not None:
                    raise error
            else:
                await _flush(client, session, link, {})
            if session.receive_maximum_excess and not link.excess_reported:
                _report_excess(session, link)
            if session.failed:
                # A bad packet behind the events just handled: act on it now,
                # not when (if ever) the broker sends more.
                session.events()
            if intake.is_full():
                # QoS 0 messages wait beside full buffers beyond the intake
                # limit: stop reading (TCP backpressure) until consumers took
                # some. Not silence of the broker for the keepalive watchdog.
                link.intake_paused = True
                link.watchdog_now()  # the reader waits here, not in receive
                try:
                    while intake.is_full() and client._state == "running":
                        room = intake.room = anyio.Event()
                        await room.wait()
                finally:
                    link.intake_paused = False
                    link.last_heard = anyio.current_time()
    except ProtocolError as exc:
        disconnect: bytes | None = None
        if client.protocol is ProtocolVersion.V5:
            with contextlib.suppress(Exception):
                disconnect = session.disconnect(ReasonCode(int(exc.reason_code)))
        await link.violation(exc, disconnect)
    except ConnectionLost as exc:
        link.end(exc, spare=scope)


def _report_excess(session: ClientSession, link: Link) -> None:
    """Warn once per connection that the broker exceeds our Receive Maximum."""
    link.excess_reported = True
    limit = session.receive_maximum
    _LOGGER.warning(
        "%s sent %d unacknowledged QoS 1/2 messages at once, more than "
        "receive_maximum=%d allows [MQTT-3.3.4-9]; tolerated up to %d, beyond "
        "that the client disconnects with 0x93 (Receive Maximum exceeded). "
        "Known with mosquitto 2.0.11 when it has a backlog for this client.",
        link.where,
        limit + session.receive_maximum_excess,
        limit,
        session.receive_maximum_cap,
    )


def handle(
    client: MqttClient, link: Link, events: list[Event], held: dict[int, Hold]
) -> ConnectionLost | None:
    """Route *events* (never waits); the error that ends the link, if any.

    Holds of messages whose acknowledgement is withheld go into *held*.
    """
    router = client._router
    counters = client._counters
    for event in events:
        kind = type(event)
        if kind is MessageReceived:
            assert isinstance(event, MessageReceived)
            counters.messages_received += 1
            router.deliver(event.message, held)
        elif kind is PublishCompleted:
            assert isinstance(event, PublishCompleted)
            _complete(client, event.packet_id, event)
            client._quota.set()
            link.completions += 1
        elif kind is Subscribed or kind is Unsubscribed:
            assert isinstance(event, Subscribed | Unsubscribed)
            _complete(client, event.packet_id, event)
        elif kind is PongReceived:
            pass
        elif kind is Disconnected:
            assert isinstance(event, Disconnected)
            return ConnectionLost(
                reason_code=event.reason_code,
                message="the broker closed the connection: "
                f"{event.reason_code.phrase} (reason code {event.reason_code.value:#04x})"
                + (
                    f": {event.properties.reason_string}"
                    if event.properties.reason_string
                    else ""
                ),
            )
        elif kind is AuthReceived:
            return ConnectionLost(
                "the broker started enhanced authentication, "
                "which this client does not support"
            )
        else:  # pragma: no cover - the session yields nothing else here
            raise MqttInternalError(f"unexpected event {event!r}; please report")
    return None


async def _flush(
    client: MqttClient, session: ClientSession, link: Link, held: dict[int, Hold]
) -> None:
    link.owe_acks(held, client._router.qos2_held)
    out = session.data_to_send()
    if out:
        # Acknowledgements need no wait: a write in progress takes them.
        await link.send(out, wait=False)


def _complete(client: MqttClient, packet_id: int, event: Event) -> None:
    op = client._pending.pop(packet_id, None)
    if op is not None:
        op.finish(event)
        if op.topic_filter is not None and isinstance(event, Subscribed):
            resubscribed(client, op.topic_filter, event)


# -- the end of a link -------------------------------------------------------------------


def link_ended(client: MqttClient, link: Link, reason: BaseException) -> None:
    """*link* ended (its ``on_end``): callers must wait for the next one."""
    if client._link is link:
        client._link = None
    counters = client._counters
    detail = str(reason) or type(reason).__name__
    counters.last_disconnect_reason = f"lost the connection to {link.where}: {detail}"
    counters.last_disconnect_time = current_time()
    # An Event that has not fired yet keeps its waiters: the next link sets it.
    if client._ready.is_set() and client._state == "running":
        client._ready = client._new_event()


async def disconnect(client: MqttClient, session_expiry: int | None) -> None:
    """Send DISCONNECT on the live link (bounded by *disconnect_timeout*), end it.

    Shielded from cancellation: the caller's own cancellation (a cancelled body of
    ``async with``) does not cut the graceful DISCONNECT short.

    *session_expiry*: MQTT 5's Session Expiry Interval for the DISCONNECT, if any.
    """
    link = client._conn
    if link is None or not client.is_connected:
        client._stop_tasks()
        return
    # The stream is closed here, whatever happens, not by the reader (which sees
    # the broker's EOF after our DISCONNECT, usually before we get to close it).
    link.closed = True
    try:
        properties = EMPTY_PROPERTIES
        if session_expiry is not None and client.protocol is ProtocolVersion.V5:
            properties = Properties(session_expiry_interval=session_expiry)
        data = link.session.disconnect(properties=properties)
    except (MqttError, ValueError):
        data = b""
    sock = link.sock
    if sock is not None and not link.writing and link.persist is None:
        # trio, plain socket, no write in progress: the DISCONNECT is written at
        # once, as Link.send would write it, and the socket closed: nothing
        # waits, so there is nothing to shield or to bound.
        try:
            sent = sock.send(data) if data else 0
        except BlockingIOError:
            sent = 0
        except OSError:
            sent = len(data)  # broken: nothing more to say (as below)
        link.counters.bytes_sent += sent
        if sent == len(data):
            # The reader (spared) wakes on the closed socket and ends, as on the
            # broker's EOF, before the tasks are stopped: cheaper than its
            # cancellation.
            link.end(NotOpenError("the client is closed"), spare=link.reader_scope)
            _close_socket(sock)
            await link.yield_shielded()
            client._stop_tasks()
            return
        data = data[sent:]  # the rest waits for room, below
    drain: AsyncioSocketStream | None = None
    if (
        (direct := link.direct) is not None
        and not link.writing
        and link.persist is None
        and direct._protocol.write_event.is_set()
    ):
        # asyncio, plain TCP, nothing buffered: the same with the transport.
        written = True
        try:
            if data:
                written = transport_write(direct, data)
                link.counters.bytes_sent += len(data)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            pass  # broken: nothing more to say (as below)
        if written:
            link.end(NotOpenError("the client is closed"), spare=link.reader_scope)
            direct._transport.close()
            # The reader wakes on the closed transport (its connection_lost,
            # then its task): two turns of the loop.
            await link.yield_shielded()
            await link.yield_shielded()
            client._stop_tasks()
            return
        data = b""
        drain = direct  # the transport keeps some: wait for it to take them
    closed = False
    try:
        with new_scope(timeout=client.disconnect_timeout, shield=True):
            if drain is not None:
                try:
                    await transport_drained(drain)
                except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                    pass
            if data:
                try:
                    await link.send(data)
                except (MqttError, OSError, ValueError):
                    pass
            # Nothing may be sent after DISCONNECT [v5:MQTT-3.14.4-1]: the link
            # ends (nothing can use it any more, its tasks are cancelled), the
            # stream is closed, then the other tasks stop. The supervisor has
            # usually returned by then (its reader was the link's): not
            # cancelling it saves asyncio's cancel() a repr() of the task.
            link.end(NotOpenError("the client is closed"))
            await link.stream.aclose()
            closed = True
            client._stop_tasks()
    finally:
        if not closed:
            # The DISCONNECT (or the stream's closing handshake) took longer
            # than disconnect_timeout, or failed.
            link.end(NotOpenError("the client is closed"))
            client._stop_tasks()
            with anyio.CancelScope(shield=True):
                await anyio.aclose_forcefully(link.stream)


def _close_socket(sock: socket.socket) -> None:
    """Close trio's plain socket under a link's stream now, as its ``aclose()``
    does before its checkpoint (the reader waiting on it wakes with an error)."""
    import trio  # imported already (a direct socket is trio's only)

    if sock.fileno() != -1:
        trio.lowlevel.notify_closing(sock)
        sock.close()


def _lost_requests(client: MqttClient) -> None:
    """SUBSCRIBE/UNSUBSCRIBE in flight are asked again on the next connection."""
    pending = client._pending
    for packet_id, op in list(pending.items()):
        if op.request and not op.settled:
            del pending[packet_id]
            op.ask_retry()


def _poison_check(
    client: MqttClient, session: ClientSession, link: Link, reason: BaseException
) -> None:
    """Give up a message the broker drops the connection for, every time.

    A broker that closes the connection right after a (re-)sent message (too
    large for an MQTT 3.1.1 broker, an ACL that disconnects) would otherwise
    get it again after every reconnect, forever. After `POISON_TRIES`
    connections in a row ended with publishes in flight and none of them
    completed, the oldest one fails with `PublishError`.
    """
    inflight = session.pending_publishes()
    if link.completions or (not inflight and not client._unpublished):
        client._poison_strikes = 0
        return
    if getattr(reason, "reason_code", None) == ReasonCode.SESSION_TAKEN_OVER:
        return
    client._poison_strikes += 1
    if client._poison_strikes < POISON_TRIES:
        return
    client._poison_strikes = 0
    op: Operation | None = None
    topic = ""
    if inflight:
        packet = inflight[0]
        assert packet.packet_id is not None
        try:
            session.withdraw(packet.packet_id)
        except InvalidStateError:
            return  # the broker has it (PUBREC): only PUBREL is re-sent
        op = client._pending.pop(packet.packet_id, None)
        topic = packet.topic
    else:
        packet, op = client._unpublished.pop(0)
        if packet.packet_id is not None:
            session.forget(packet.packet_id)  # given up: not stored any more
        topic = packet.topic
    error = PublishError(
        f"the broker closed the connection each time the message to {topic!r} "
        f"was sent ({POISON_TRIES} times); it may be larger than the broker "
        "accepts (see maximum_outgoing_packet_size) or not allowed by its ACL"
    )
    _LOGGER.warning("%s", error)
    if op is not None:
        op.fail(error)
