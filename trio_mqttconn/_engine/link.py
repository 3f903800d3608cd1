"""Link: one connection to the broker, the only way to its session while it lives.

Theory of operation
-------------------
A `Link` is made by the connector for each CONNACK and ends exactly once
(`Link.end`, first reason wins). It owns:

* the **session while connected**: `Link.session` hands out the client's
  `ClientSession` only while the link has not ended, so a task that wakes after
  its connection ended (a publisher that waited for the send quota, a restore
  task, the keepalive watchdog) gets `ConnectionLost`, never a session that has
  moved on to the next connection;
* the **write path**: one writer at a time; whoever comes while a write is in
  progress queues its bytes in the outbox, which the active writer sends in one
  write. A write cut half way leaves a partial frame, so the link ends
  (``session.send_failed()``) and the next connection starts clean;
* the **keepalive watchdog**: a PINGREQ when we have sent nothing for *keepalive*
  seconds or heard nothing for *keepalive* seconds; the broker is declared dead
  only when it has not answered a PINGREQ (PINGRESP or any packet) in time. Our
  own writing never counts as a sign of life, and a PINGREQ never waits behind a
  write: it joins the outbox;
* the **withheld acknowledgements** of received QoS 1/2 messages (`Hold`): the
  session runs with ``defer_acks`` and hands out the acks each chunk calls for
  (``take_owed_acks``); one whose message waits in a full subscription buffer, or
  for the application's ``message.ack()``, is kept in arrival order and released
  to the session (``release_ack``) when its message was taken, the ones behind it
  with it [MQTT-4.6.0-2] [MQTT-4.6.0-3]. Acks are never sent on a later connection,
  except the PUBREC of a QoS 2 message the broker re-delivered there (its id is
  still ours: exactly once across resets).
"""

from __future__ import annotations

import collections
import logging
import sys
import types
from typing import TYPE_CHECKING, Any, Final

import anyio
import anyio.abc
import attrs

from .._exceptions import ConnectionLost, InvalidStateError, MqttError, ProtocolError
from .._groups import new_scope, running_on_trio
from .._transports import direct_transport
from . import trace

if TYPE_CHECKING:
    import asyncio
    import socket
    from collections.abc import Awaitable, Callable, Generator

    from anyio._backends._asyncio import SocketStream as AsyncioSocketStream

    from .._groups import Scope
    from .._session import ClientSession
    from .._transports import Endpoint

__all__ = [
    "ARMED_READS",
    "NOWAIT_BUFFER",
    "READ_SIZE",
    "Counters",
    "Hold",
    "Link",
    "transport_drained",
    "transport_write",
]

_LOGGER = logging.getLogger("trio_mqttconn.client")
#: Bytes asked for per read. Under a flood the socket always has this much: a
#: large read hands more messages to each consumer per task switch (a task per
#: subscription: about 15 % fewer instructions per message than 64 KiB), as
#: asyncio's own transports read 256 KiB. Small reads stay small.
READ_SIZE: Final = 262144
#: What `Link.send_nowait` lets wait for the writer (or in asyncio's transport).
NOWAIT_BUFFER: Final = 65536
#: trio, plain socket: the reads that wait under the keepalive watchdog's first due
#: time before the watchdog runs as a task of its own (see `Link.watch`).
ARMED_READS: Final = 8


@attrs.define(eq=False)
class Counters:
    """The client's counters, shared by every link (see ``ClientStatistics``)."""

    connects: int = 0
    messages_received: int = 0
    messages_published: int = 0
    bytes_received: int = 0
    bytes_sent: int = 0
    last_disconnect_reason: str | None = None
    last_disconnect_time: float | None = None


@attrs.define(eq=False)
class Hold:
    """A withheld PUBACK/PUBREC: released once *waiting* holders have let it go."""

    packet_id: int
    qos: int
    waiting: int = 0
    #: The link whose queue holds it (None once sent or dropped with its link).
    link: Link | None = None
    #: The table that finds it by packet id while held (received QoS 2).
    table: dict[int, Hold] | None = None

    def release(self) -> None:
        """One holder is done (message taken into a buffer, or acknowledged)."""
        self.waiting -= 1
        if self.waiting == 0:
            table = self.table
            if table is not None and table.get(self.packet_id) is self:
                del table[self.packet_id]
            if self.link is not None:
                self.link.acks_ready()


@attrs.define(eq=False)
class _Ack:
    """``message.ack()`` of one delivery: releases its hold once."""

    hold: Hold | None

    def __call__(self) -> None:
        hold, self.hold = self.hold, None
        if hold is not None:
            hold.release()


def make_ack(hold: Hold) -> Callable[[], None]:
    """The callable behind ``Message.ack()`` for one delivery held by *hold*."""
    hold.waiting += 1
    return _Ack(hold)


@types.coroutine
def _resume_soon(done: asyncio.Future[None]) -> Generator[Any, None, None]:
    """asyncio: a schedule point that anyio's cancel scopes do not interrupt.

    *done* is a finished future of the running loop. The task waits on it for one
    turn of the loop (a done future's callbacks are scheduled at once); anyio never
    cancels a task whose awaited future is done (it is about to resume), so this
    is what ``anyio.lowlevel.cancel_shielded_checkpoint()`` does, without the cost
    of entering and leaving a shielded cancel scope. A cancellation meanwhile is
    delivered at the task's next checkpoint.
    """
    done._asyncio_future_blocking = True
    yield done


def _check_cancelled() -> Callable[[], Awaitable[None]]:
    """The running backend's ``checkpoint_if_cancelled``, without anyio's lookup of
    the backend on every call (trio's own on trio)."""
    if running_on_trio():
        import trio  # imported already (running_on_trio)

        return trio.lowlevel.checkpoint_if_cancelled
    # anyio's other backend, asyncio: its module is loaded.
    backend = getattr(
        sys.modules.get("anyio._backends._asyncio"), "AsyncIOBackend", None
    )
    check = getattr(backend, "checkpoint_if_cancelled", None)
    if check is None:  # pragma: no cover - another anyio version
        return anyio.lowlevel.checkpoint_if_cancelled
    found: Callable[[], Awaitable[None]] = check
    return found


@attrs.define(eq=False)
class _Batch:
    """Bytes queued behind the active writer, written together.

    Its event is made by the first caller that waits (most batches have none).
    """

    finished: bool = False
    error: BaseException | None = None
    _event: anyio.Event | None = None

    def set(self) -> None:
        """The batch was written (or failed): wake its waiters."""
        self.finished = True
        if self._event is not None:
            self._event.set()

    def fail(self, error: BaseException) -> None:
        self.error = error
        self.set()

    async def wait(self) -> None:
        """Wait until the batch was written or failed (a checkpoint either way)."""
        event = self._event
        if event is None:
            event = self._event = anyio.Event()
            if self.finished:
                event.set()
        await event.wait()


@attrs.define(eq=False)
class Link:
    """One live stream to the broker (see the module docstring)."""

    stream: anyio.abc.ByteStream
    endpoint: Endpoint
    keepalive: float
    last_heard: float
    last_sent: float
    _session: ClientSession = attrs.field(alias="session")
    counters: Counters
    on_end: Callable[[Link, BaseException], None]
    #: The stream's socket, when writes may go to it directly (see direct_socket).
    sock: socket.socket | None = None
    #: anyio's asyncio stream, when writes may go to its transport directly (see
    #: direct_transport); set when the link is made.
    direct: AsyncioSocketStream | None = attrs.field(default=None, init=False)
    #: ``checkpoint_if_cancelled`` of the running backend.
    check_cancelled: Callable[[], Awaitable[None]] = attrs.field(
        factory=_check_cancelled, init=False
    )
    #: The running backend's clock.
    clock: Callable[[], float] = attrs.field(default=anyio.current_time, init=False)
    #: trio: its cancel scope (for the armed reads; see `watch`).
    _deadline_scope: Callable[..., Scope] = attrs.field(
        default=anyio.CancelScope, init=False
    )
    #: With `sock`: trio's ``cancel_shielded_checkpoint``.
    _trio_yield: Callable[[], Awaitable[None]] = attrs.field(
        default=anyio.lowlevel.cancel_shielded_checkpoint, init=False
    )
    #: With `direct`: a finished future of the running loop (see _resume_soon).
    _done: asyncio.Future[None] | None = attrs.field(default=None, init=False)
    #: Hands the session's journal to the session store before each write.
    persist: Callable[[], None] | None = None
    #: Cancel scopes of the work serving this link; ending it cancels them all.
    scopes: list[Scope] = attrs.Factory(list)
    #: The reader's own (see serve.serve_link), once it reads.
    reader_scope: Scope | None = None
    #: When our unanswered PINGREQ went out (None: none outstanding).
    ping_sent_at: float | None = None
    #: Outgoing QoS 1/2 publishes completed on this link.
    completions: int = 0
    #: The reader stopped reading on purpose (QoS 0 intake full): not silence.
    intake_paused: bool = False
    #: The broker's excess over our Receive Maximum was logged on this link.
    excess_reported: bool = False
    #: The protocol violation that ends this link (even if another reason wins).
    violated: ProtocolError | None = None
    ended: BaseException | None = None
    closed: bool = False
    writing: bool = False
    outbox: list[bytes] = attrs.Factory(list)
    #: Bytes `send_nowait` put in the outbox since the writer last took it.
    outbox_bytes: int = 0
    #: `send_nowait` made the ack writer the writer: it writes the outbox.
    flush_wanted: bool = False
    batch: _Batch = attrs.Factory(_Batch)
    #: Withheld acknowledgements, in arrival order of their PUBLISH.
    acks: collections.deque[Hold] = attrs.Factory(collections.deque)
    #: Set for the ack writer (made when first wanted, with the writer).
    _acks_wanted: anyio.Event | None = None
    #: Starts `ack_writer` in the client's task group (once, when first wanted).
    start_ack_writer: Callable[[], None] | None = None
    #: Set when the link ends (made by the first `wait_ended`).
    _ended_event: anyio.Event | None = None
    #: Starts `keepalive_task` in the client's task group, until it was (see watch).
    start_keepalive: Callable[[], None] | None = None
    #: trio, plain socket: reads left that wait under the watchdog's due time.
    armed_reads: int = 0
    #: asyncio: the loop's timer that starts the watchdog when it is due.
    _keepalive_timer: asyncio.TimerHandle | None = None
    #: asyncio: the running loop.
    _loop: asyncio.AbstractEventLoop | None = attrs.field(default=None, init=False)

    def __attrs_post_init__(self) -> None:
        if self.sock is not None or running_on_trio():
            import trio  # imported already (the direct socket is trio's only)

            # trio.current_time() asks the run for its clock each time.
            self.clock = trio.lowlevel.current_clock().current_time
            self._trio_yield = trio.lowlevel.cancel_shielded_checkpoint
            self._deadline_scope = trio.CancelScope
            return
        import asyncio  # running it (anyio's other backend)

        loop = self._loop = asyncio.get_running_loop()
        direct = self.direct = direct_transport(self.stream)
        if direct is not None:
            self.clock = loop.time
            done = self._done = loop.create_future()
            done.set_result(None)

    # -- ownership -----------------------------------------------------------------

    @property
    def session(self) -> ClientSession:
        """The session, while this link lives.

        Raises:
            ConnectionLost: the link ended (the session may serve another one now).
        """
        if self.ended is not None:
            raise ConnectionLost(f"the connection to {self.where} ended")
        return self._session

    @property
    def where(self) -> str:
        """The endpoint, for messages."""
        return self.endpoint.display()

    def end(self, reason: BaseException, *, spare: Scope | None = None) -> None:
        """Record why the link ended (first reason wins) and stop its tasks.

        *spare*: the caller's own scope, left uncancelled (the reader, which
        leaves it without another checkpoint).
        """
        if self.ended is None:
            self.ended = reason
            for hold in self.acks:
                hold.link = None
            self.acks.clear()
            if self.flush_wanted:
                # The ack writer never got to the bytes send_nowait left: the
                # ones waiting behind them learn the link ended.
                self.flush_wanted = False
                self.batch.fail(reason)
            self.on_end(self, reason)
            self.start_keepalive = None
            self.armed_reads = 0
            if self._keepalive_timer is not None:
                self._keepalive_timer.cancel()
                self._keepalive_timer = None
            if self._ended_event is not None:
                self._ended_event.set()
            for scope in self.scopes:
                if scope is not spare:
                    scope.cancel()

    async def wait_ended(self) -> None:
        """Wait until the link ended."""
        event = self._ended_event
        if event is None:
            event = self._ended_event = anyio.Event()
            if self.ended is not None:
                event.set()
        await event.wait()

    async def close(self) -> None:
        """Close the stream once, even from a cancelled task."""
        if not self.closed:
            self.closed = True
            with anyio.CancelScope(shield=True):
                await anyio.aclose_forcefully(self.stream)

    def new_scope(self, *, shield: bool = False) -> Scope:
        """A cancel scope that ends with this link (the running backend's own)."""
        scope = new_scope(shield=shield)
        if self.ended is not None:
            scope.cancel()
        self.scopes.append(scope)
        return scope

    # -- reading -------------------------------------------------------------------

    async def receive(self) -> bytes:
        """The next chunk from the broker.

        Raises:
            ConnectionLost: EOF or a broken stream; the reason names the endpoint once.
        """
        try:
            if self.armed_reads:
                data = await self._armed_receive()
            else:
                data = await self.stream.receive(READ_SIZE)
        except anyio.EndOfStream:
            raise ConnectionLost("the broker closed the connection") from None
        except (OSError, anyio.BrokenResourceError, anyio.ClosedResourceError) as exc:
            detail = str(exc) or type(exc).__name__
            raise ConnectionLost(f"the connection broke: {detail}") from exc
        self.last_heard = self.clock()
        self.counters.bytes_received += len(data)
        return data

    async def _armed_receive(self) -> bytes:
        """trio, plain socket: the stream's next chunk, cut short when the keepalive
        watchdog is due (it starts then; see `watch`)."""
        self.armed_reads -= 1
        if self.start_keepalive is not None and self.armed_reads:
            due = self.keepalive_due()
            if due > self.clock():
                # trio's socket receive is cancel-safe: cut short, it took nothing.
                with self._deadline_scope(deadline=due):
                    return await self.stream.receive(READ_SIZE)
        # Due, or a link that lives on: the watchdog runs as a task from now on.
        self.watchdog_now()
        return await self.stream.receive(READ_SIZE)

    # -- acknowledgements ---------------------------------------------------------------

    def owe_acks(self, held: dict[int, Hold], qos2_held: dict[int, Hold]) -> None:
        """Release or withhold the acks the session owes for the chunk just routed.

        *held* maps packet ids of this chunk's parked or manually acknowledged
        messages to their `Hold`, *qos2_held* the QoS 2 ids still held (from this
        chunk or an earlier connection: a re-delivery's PUBREC waits too). Once one
        ack waits, the ones after it wait too (their order is the PUBLISHes').
        """
        session = self._session
        try:
            if not held and not self.acks and not qos2_held:
                session.release_owed_acks()  # the common case: all of them, now
                return
            acks = self.acks
            for packet_id, qos in session.take_owed_acks():
                hold = held.get(packet_id)
                if hold is None and qos == 2:
                    hold = qos2_held.get(packet_id)
                if hold is not None and hold.waiting > 0:
                    if hold.link is not self:
                        hold.link = self
                        acks.append(hold)
                elif acks:
                    acks.append(Hold(packet_id, qos, link=self))
                else:
                    session.release_ack(packet_id, qos)
        except InvalidStateError:
            # The broker sent DISCONNECT in this chunk: no acks any more (the
            # reader ends the link).
            session.take_owed_acks()

    def acks_ready(self) -> None:
        """A hold was released (or `send_nowait` left bytes): wake the ack writer,
        started the first time it is wanted."""
        wanted = self._acks_wanted
        if wanted is None:
            wanted = self._acks_wanted = anyio.Event()
        wanted.set()
        start = self.start_ack_writer
        if start is not None and self.ended is None:
            self.start_ack_writer = None
            start()

    def take_ready_acks(self) -> bytes:
        """The released acks at the head of the queue, in order (with what else the
        session has to send).

        Raises:
            ConnectionLost: the link ended.
        """
        session = self.session
        acks = self.acks
        while acks and acks[0].waiting <= 0:
            hold = acks.popleft()
            hold.link = None
            session.release_ack(hold.packet_id, hold.qos)
        return session.data_to_send()

    async def ack_writer(self) -> None:
        """Send released acknowledgements (a task per link)."""
        try:
            while True:
                wanted = self._acks_wanted
                assert wanted is not None  # started by acks_ready, which made it
                await wanted.wait()
                self._acks_wanted = anyio.Event()
                try:
                    data = self.take_ready_acks()
                except InvalidStateError:
                    # The broker sent DISCONNECT: the reader ends the link.
                    return
                if data and trace.enabled():
                    trace.sent("withheld PUBACK/PUBREC", len(data))
                if self.flush_wanted:
                    # send_nowait left bytes for us: we are the writer.
                    self.flush_wanted = False
                    if data:
                        self.outbox.append(data)
                    await self._flush()
                elif data:
                    await self.send(data, wait=False)
        except ConnectionLost as exc:
            self.end(exc)

    # -- keepalive -------------------------------------------------------------------

    def watch(self, start: Callable[[], None]) -> None:
        """Have *start* start `keepalive_task` by the time it first has work to do.

        Most links are short or busy: the watchdog's task is started when first
        due (*keepalive* seconds after the CONNECT at the earliest), not with the
        link. On asyncio a timer of the loop starts it. On trio, whose only timer
        is a cancel scope's deadline, the reader's receive on a plain socket (which
        a cancellation cuts short without taking anything) waits under that
        deadline, for `ARMED_READS` reads at most; the reader starts the watchdog
        before it waits anywhere else (`watchdog_now`), and on other streams it
        starts at once.
        """
        if self.ended is not None:
            return
        self.start_keepalive = start
        loop = self._loop
        if loop is not None:
            self._keepalive_timer = loop.call_at(
                self.keepalive_due(), self.watchdog_now
            )
        elif self.sock is not None:
            self.armed_reads = ARMED_READS
        else:
            self.watchdog_now()

    def keepalive_due(self) -> float:
        """When the watchdog first has work to do (unless more traffic comes)."""
        return min(self.last_sent, self.last_heard) + self.keepalive

    def watchdog_now(self) -> None:
        """Start the keepalive watchdog now, unless it runs already."""
        start = self.start_keepalive
        self.armed_reads = 0
        if start is not None:
            self.start_keepalive = None
            timer, self._keepalive_timer = self._keepalive_timer, None
            if timer is not None:
                timer.cancel()
            if self.ended is None:
                start()

    async def keepalive_task(self) -> None:
        """PINGREQ when due; end the link when the broker does not answer one."""
        keepalive = self.keepalive
        if keepalive <= 0:
            return
        try:
            while True:
                now = anyio.current_time()
                if self.intake_paused:
                    # We stopped reading on purpose: the broker is not silent.
                    self.last_heard = now
                ping = self.ping_sent_at
                if ping is not None and self.last_heard >= ping:
                    ping = self.ping_sent_at = None  # answered (any packet counts)
                if ping is not None:
                    dead_at = max(
                        self.last_heard + 1.5 * keepalive, ping + keepalive / 2
                    )
                    if now >= dead_at:
                        raise ConnectionLost(
                            f"the broker did not answer for "
                            f"{now - self.last_heard:g} s (keepalive {keepalive:g} s); "
                            "the connection is dead"
                        )
                    wake = dead_at
                else:
                    wake = min(self.last_sent, self.last_heard) + keepalive
                    if now >= wake:
                        # [MQTT-3.1.2-20] PINGREQ; it joins the outbox when a write
                        # is in progress, so a busy or stuck socket never hides it.
                        self.ping_sent_at = now
                        if trace.enabled():
                            trace.sent("PINGREQ", 2)
                        try:
                            pingreq = self.session.ping()
                        except InvalidStateError:
                            # DISCONNECT from the broker: the reader ends the link.
                            return
                        await self.send(pingreq, wait=False)
                        continue
                await anyio.sleep(max(0.0, wake - now))
        except ConnectionLost as exc:
            self.end(exc)

    # -- writing -----------------------------------------------------------------------

    async def send(
        self, data: bytes, *, wait: bool = True, checked: bool = False
    ) -> None:
        """Write *data*; one writer at a time, the others coalesced.

        When no write is in progress the caller writes itself. Otherwise its bytes
        join the outbox, which the active writer sends (all of it, in one write) as
        soon as its own write is done; with *wait* the caller then waits for that
        write, without it it returns at once.

        A cancellation is only delivered where the stream waits: a write that fits
        the socket (trio) or transport (asyncio) buffer is never cut. One that
        arrives while the stream waits may have left part of a packet on the wire,
        so the link ends; frames are never continued.

        With *checked*, the caller has just checked for cancellation (and not
        yielded since): the write does not check again.

        Raises:
            ConnectionLost: the link ended, or the write failed.
        """
        if self.ended is not None:
            raise ConnectionLost(f"the connection to {self.where} ended")
        if self.writing:
            # The active writer hands the session's journal to the store before
            # it writes the outbox: one transaction for all of it (see _store).
            self.outbox.append(data)
            if not wait:
                return
            batch = self.batch
            await batch.wait()
            if batch.error is not None:
                raise ConnectionLost(
                    f"sending to {self.where} failed: {batch.error}"
                ) from batch.error
            return
        if not checked:
            await self.check_cancelled()
        if self.persist is not None:
            # What these bytes (and the ones before them) did to the session is
            # kept before they leave (see _store); a SessionStoreError stops the
            # client and reaches the caller as it is.
            self.persist()
        sock = self.sock
        self.writing = True
        written = 0
        try:
            if sock is not None:
                # trio (see direct_socket): the socket itself, inline (the hot path).
                try:
                    sent = sock.send(data)
                except BlockingIOError:
                    sent = 0
                if sent == len(data):
                    # Written without waiting. Still a schedule point, not a cancel
                    # point, taken while still the writer: what others queue
                    # meanwhile goes out in one write.
                    await self._trio_yield()
                else:
                    if self.armed_reads:
                        self.watchdog_now()  # the reader may be the one waiting
                    await self.stream.send(data[sent:])
            elif (direct := self.direct) is not None:
                # The same on asyncio (see direct_transport), inline too.
                if not direct._protocol.write_event.is_set():
                    await direct.send(data)  # bytes of a write before wait: anyio's way
                elif transport_write(direct, data):
                    assert self._done is not None  # set with direct
                    await _resume_soon(self._done)
                else:
                    await transport_drained(direct)
            else:
                await self.stream.send(data)
            written += len(data)
            if self.outbox:
                written += await self._write_outbox(sock)
        except BaseException as exc:
            failure = self._write_failed(exc)
            if failure is exc:
                raise
            raise failure from exc
        finally:
            self.writing = False
            self.last_sent = self.clock()
            self.counters.bytes_sent += written

    async def _write_outbox(self, sock: socket.socket | None) -> int:
        """As the writer, write the outbox until it stays empty; return the bytes."""
        written = 0
        while self.outbox:
            data = b"".join(self.outbox)
            self.outbox.clear()
            self.outbox_bytes = 0
            if self.persist is not None:
                self.persist()
            batch, self.batch = self.batch, _Batch()
            try:
                await self._write(sock, data)
            except BaseException as exc:
                batch.fail(exc)
                raise
            written += len(data)
            batch.set()
        return written

    def _write_failed(self, exc: BaseException) -> BaseException:
        """End the link after a failed or interrupted write; what the writer raises.

        A cancellation and a `ConnectionLost` are raised as they are; any other
        error becomes a `ConnectionLost` naming the endpoint.
        """
        self.outbox.clear()
        self.outbox_bytes = 0
        self.batch.fail(exc)
        self.batch = _Batch()
        if self.ended is None:
            self._session.send_failed()
        if isinstance(exc, anyio.get_cancelled_exc_class()):
            self.end(ConnectionLost("a write was interrupted by cancellation"))
            return exc
        if isinstance(exc, ConnectionLost):
            self.end(exc)
            return exc
        detail = str(exc) or type(exc).__name__
        reason = ConnectionLost(f"sending failed: {detail}")
        reason.__cause__ = exc
        self.end(reason)
        return ConnectionLost(f"sending to {self.where} failed: {detail}")

    # -- writing without waiting (publish_nowait) ------------------------------------

    def can_send_nowait(self) -> bool:
        """Whether `send_nowait` takes bytes now: less than `NOWAIT_BUFFER` bytes
        wait for the writer (or, on asyncio, in the transport)."""
        if self.writing:
            return self.outbox_bytes < NOWAIT_BUFFER
        direct = self.direct
        if direct is not None:
            return bool(direct._transport.get_write_buffer_size() < NOWAIT_BUFFER)
        return True

    def send_nowait(self, data: bytes) -> None:
        """Hand *data* to the connection without waiting (after `can_send_nowait`).

        Written at once when the socket (trio) or the transport (asyncio) takes it;
        otherwise what is left joins the outbox and the link's ack writer task
        writes it, so a packet is never half-sent and the order of writes holds.

        Raises:
            ConnectionLost: the socket failed (the link ends).
        """
        if self.ended is not None:
            raise ConnectionLost(f"the connection to {self.where} ended")
        if self.writing:
            self.outbox.append(data)
            self.outbox_bytes += len(data)
            return
        if self.persist is not None:
            self.persist()
        try:
            if (sock := self.sock) is not None:
                try:
                    sent = sock.send(data)
                except BlockingIOError:
                    sent = 0
                self.counters.bytes_sent += sent
                self.last_sent = self.clock()
                if sent == len(data):
                    return
                data = data[sent:]
            elif (direct := self.direct) is not None:
                transport_write(direct, data)
                self.counters.bytes_sent += len(data)
                self.last_sent = self.clock()
                return
        except BaseException as exc:
            failure = self._write_failed(exc)
            if failure is exc:
                raise
            raise failure from exc
        # The rest (or, on TLS and WebSocket streams, all of it) is written by
        # the ack writer task, which becomes the writer now.
        self.writing = True
        self.outbox.append(data)
        self.outbox_bytes += len(data)
        self.flush_wanted = True
        self.acks_ready()

    async def _flush(self) -> None:
        """Write what `send_nowait` left in the outbox, as `send` writes bytes."""
        data = b"".join(self.outbox)
        self.outbox.clear()
        self.outbox_bytes = 0
        batch, self.batch = self.batch, _Batch()
        self.writing = False  # send() becomes the writer, with no await before
        try:
            await self.send(data, checked=True)
        except BaseException as exc:
            batch.fail(exc)
            raise
        batch.set()

    async def _write(self, sock: socket.socket | None, data: bytes) -> None:
        """Write all of *data* (the outbox: no schedule point when nothing waits)."""
        if sock is not None:
            try:
                sent = sock.send(data)
            except BlockingIOError:
                sent = 0
            if sent == len(data):
                return
            data = data[sent:]
            if self.armed_reads:
                self.watchdog_now()  # the reader may be the one waiting
        elif (
            direct := self.direct
        ) is not None and direct._protocol.write_event.is_set():
            if not transport_write(direct, data):
                await transport_drained(direct)
            return
        await self.stream.send(data)

    async def yield_shielded(self) -> None:
        """A schedule point that no cancellation interrupts (the cheap one of the
        running backend; see `send`)."""
        if self._done is not None:
            await _resume_soon(self._done)
        else:
            await self._trio_yield()

    async def violation(self, exc: ProtocolError, disconnect: bytes | None) -> None:
        """Answer a protocol violation with DISCONNECT, through the write path.

        The DISCONNECT goes after what was queued before it [MQTT-4.13.2-1]; the
        link ends with *exc* either way.
        """
        self.violated = exc
        if disconnect is not None:
            with anyio.move_on_after(5.0):
                try:
                    await self.send(disconnect)
                except (MqttError, OSError):
                    pass
        self.end(exc)


def transport_write(stream: AsyncioSocketStream, data: bytes) -> bool:
    """anyio's asyncio ``SocketStream.send`` up to the write (see direct_transport),
    while no bytes wait in the transport: True if none wait after it either."""
    protocol = stream._protocol
    if stream._closed:
        raise anyio.ClosedResourceError
    if protocol.exception is not None:
        raise anyio.BrokenResourceError from protocol.exception
    transport = stream._transport
    try:
        transport.write(data)
    except RuntimeError as exc:
        if transport.is_closing():
            raise anyio.BrokenResourceError from exc
        raise
    # anyio sets the high-water mark to 0: writing pauses while any byte waits.
    return protocol.write_event.is_set()


async def transport_drained(stream: AsyncioSocketStream) -> None:
    """The rest of anyio's ``send``: wait until the transport took every byte."""
    protocol = stream._protocol
    await protocol.write_event.wait()
    if stream._closed:
        raise anyio.ClosedResourceError  # aclose() dropped the rest
    if protocol.exception is not None:
        raise anyio.BrokenResourceError from protocol.exception
