"""Test doubles for the engine: an in-memory byte stream pair and a scripted broker.

Both run on any anyio backend (trio and asyncio) and never touch a socket, so engine
tests can run under ``trio.testing.MockClock(autojump_threshold=0)`` and assert exact
virtual times.

``memory_byte_stream_pair()`` gives two connected `anyio.abc.ByteStream` ends. Each end
records what it wrote and has fault hooks: `MemoryByteStream.stall_sends` (sends block
until cancelled or resumed), `MemoryByteStream.drop_after` (the connection resets after
N more bytes), `MemoryByteStream.abort` (reset now), and half-close with ``send_eof``
(combine with a partial write for an EOF in the middle of a packet).

`FakeBroker` is an MQTT broker peer built from our own codec. Its `FakeBroker.connect`
is the ``transport=`` factory of `MqttClient`: every call opens one new in-memory
connection, served by a task in the broker's own task group::

    broker = FakeBroker()
    async with broker, MqttClient("mqtt://fake", transport=broker.connect):
        conn = await broker.wait_connection(0)
        await conn.wait_for(PingReqPacket)

How it answers is set by attributes (``answer_pings``, ``ack_publishes`` ...) that a
test may change at any moment, and per connection attempt by a queue of `Answer`
records (`FakeBroker.script`): refuse the TCP connect, hang, stay silent after
CONNECT, or send a CONNACK with a given reason code, session-present flag and
properties. Everything a client sends is logged per connection
(`FakeConnection.received`), and tests wait on conditions with
`FakeConnection.wait_for`, `FakeBroker.wait_connection` and friends, never with sleeps.
"""

from __future__ import annotations

import errno
from collections import deque
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import anyio
import anyio.abc
import anyio.lowlevel
import attrs
import trio
import trio.abc
import trio.lowlevel

from trio_mqttconn._enums import ProtocolVersion, QoS, ReasonCode, RetainHandling
from trio_mqttconn._exceptions import ProtocolError
from trio_mqttconn._packets import (
    AuthPacket,
    ConnAckPacket,
    ConnectPacket,
    DisconnectPacket,
    Packet,
    PacketDecoder,
    PingReqPacket,
    PingRespPacket,
    PubAckPacket,
    PubCompPacket,
    PublishPacket,
    PubRecPacket,
    PubRelPacket,
    SubAckPacket,
    SubscribePacket,
    TopicSubscription,
    UnsubAckPacket,
    UnsubscribePacket,
    encode_packet,
)
from trio_mqttconn._properties import EMPTY_PROPERTIES, Properties
from trio_mqttconn._topics import topic_matches

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterable, Sequence
    from types import TracebackType
    from typing import Self

    from trio_mqttconn import MqttClient

__all__ = [
    "Answer",
    "Attempt",
    "FakeBroker",
    "FakeConnection",
    "CancelAfterSteps",
    "MemoryByteStream",
    "URI",
    "VIRTUAL_TIME_LIMIT",
    "cancel_at_step",
    "client_task_names",
    "live_tasks",
    "make_client",
    "memory_byte_stream_pair",
]

P = TypeVar("P")


# --------------------------------------------------------------------------------------
# In-memory byte streams
# --------------------------------------------------------------------------------------


@attrs.define(eq=False)
class _Pipe:
    """One direction of a connection: a byte buffer and its end-of-data state."""

    buffer: bytearray = attrs.Factory(bytearray)
    eof: bool = False
    """The writer shut down: the reader gets EndOfStream once the buffer is drained."""
    broken: bool = False
    """The connection was reset: reads fail once drained, writes fail at once."""
    reader_gone: bool = False
    """The reading end was closed: writes fail with BrokenResourceError."""
    _wakeup: anyio.Event | None = None

    def wake(self) -> None:
        if self._wakeup is not None:
            self._wakeup.set()
            self._wakeup = None

    async def wait(self) -> None:
        if self._wakeup is None:
            self._wakeup = anyio.Event()
        await self._wakeup.wait()


@attrs.define(eq=False)
class MemoryByteStream(anyio.abc.ByteStream):
    """One end of an in-memory, reliable, ordered byte connection with fault hooks.

    Sends never block unless `stall_sends` is on (the buffer is unbounded). A
    cancelled ``send`` sent nothing; a cancelled ``receive`` consumed nothing.
    """

    _incoming: _Pipe
    _outgoing: _Pipe
    name: str = ""
    """A label for reprs and failure messages."""
    closed: bool = False
    """True once `aclose` was called on this end."""
    writes: list[bytes] = attrs.Factory(list)
    """Every chunk this end sent, in order (what reached the peer)."""
    bytes_received: int = 0
    """How many bytes this end has received."""
    _stalled: bool = False
    _resume: anyio.Event | None = None
    _drop_after: int | None = None

    @property
    def written(self) -> bytes:
        """Everything this end sent, concatenated."""
        return b"".join(self.writes)

    @property
    def eof_sent(self) -> bool:
        """True once this end shut down its sending direction (or closed)."""
        return self._outgoing.eof

    @property
    def peer_closed(self) -> bool:
        """True once the other end closed or shut down its sending direction."""
        return self._incoming.eof or self._incoming.broken

    # -- fault hooks -------------------------------------------------------------------

    def stall_sends(self) -> None:
        """Make every ``send`` from now on block until cancelled or `resume_sends`."""
        self._stalled = True

    def resume_sends(self) -> None:
        """Let stalled sends continue."""
        self._stalled = False
        if self._resume is not None:
            self._resume.set()
            self._resume = None

    def drop_after(self, count: int) -> None:
        """Reset the connection once this end has sent *count* more bytes.

        The first *count* bytes reach the peer; the send that crosses the limit
        raises `anyio.BrokenResourceError` (unless it ends exactly on it), and both
        ends see a broken connection after that.
        """
        if count < 0:
            raise ValueError(f"count must be >= 0, not {count!r}")
        self._drop_after = count
        if count == 0:
            self.abort()

    def abort(self) -> None:
        """Reset the connection now (like a TCP RST): both ends see it broken."""
        for pipe in (self._incoming, self._outgoing):
            pipe.broken = True
            pipe.wake()
        self.resume_sends()

    # -- anyio.abc.ByteStream ----------------------------------------------------------

    async def receive(self, max_bytes: int = 65536) -> bytes:
        """Return up to *max_bytes* bytes, waiting for at least one."""
        if max_bytes < 1:
            raise ValueError(f"max_bytes must be >= 1, not {max_bytes!r}")
        await anyio.lowlevel.checkpoint_if_cancelled()
        pipe = self._incoming
        while True:
            if self.closed:
                raise anyio.ClosedResourceError
            if pipe.buffer:
                data = bytes(pipe.buffer[:max_bytes])
                del pipe.buffer[:max_bytes]
                self.bytes_received += len(data)
                await anyio.lowlevel.cancel_shielded_checkpoint()
                return data
            if pipe.broken:
                raise anyio.BrokenResourceError(f"{self.name}: connection reset")
            if pipe.eof:
                raise anyio.EndOfStream
            await pipe.wait()

    async def send(self, item: bytes) -> None:
        """Append *item* to the peer's buffer (blocks only while stalled)."""
        await anyio.lowlevel.checkpoint_if_cancelled()
        while True:
            self._check_writable()
            if not self._stalled:
                break
            if self._resume is None:
                self._resume = anyio.Event()
            await self._resume.wait()
        data = bytes(item)
        if self._drop_after is not None:
            limit = self._drop_after
            if len(data) >= limit:
                self._deliver(data[:limit])
                self._drop_after = None
                self.abort()
                if len(data) > limit:
                    raise anyio.BrokenResourceError(f"{self.name}: connection reset")
                await anyio.lowlevel.cancel_shielded_checkpoint()
                return
            self._drop_after = limit - len(data)
        self._deliver(data)
        await anyio.lowlevel.cancel_shielded_checkpoint()

    async def send_eof(self) -> None:
        """Shut down sending; the peer reads EndOfStream after the data."""
        await anyio.lowlevel.checkpoint_if_cancelled()
        self._outgoing.eof = True
        self._outgoing.wake()
        await anyio.lowlevel.cancel_shielded_checkpoint()

    async def aclose(self) -> None:
        """Close this end: the peer sees EOF; further use here is an error."""
        if not self.closed:
            self.closed = True
            self._outgoing.eof = True
            self._outgoing.wake()
            self._incoming.reader_gone = True
            self._incoming.wake()
            self.resume_sends()
        await anyio.lowlevel.checkpoint()

    # -- helpers -----------------------------------------------------------------------

    def _check_writable(self) -> None:
        if self.closed:
            raise anyio.ClosedResourceError
        pipe = self._outgoing
        if pipe.broken or pipe.reader_gone:
            raise anyio.BrokenResourceError(f"{self.name}: connection reset")
        if pipe.eof:
            raise anyio.ClosedResourceError

    def _deliver(self, data: bytes) -> None:
        if data:
            self._outgoing.buffer += data
            self.writes.append(data)
            self._outgoing.wake()


def memory_byte_stream_pair(
    name: str = "memory",
) -> tuple[MemoryByteStream, MemoryByteStream]:
    """Make two connected in-memory byte streams: ``(client_side, broker_side)``.

    Args:
        name: Label used in reprs and error messages (``"<name>/client"`` ...).

    Returns:
        The two ends; what one sends, the other receives.
    """
    to_broker, to_client = _Pipe(), _Pipe()
    client_side = MemoryByteStream(to_client, to_broker, name=f"{name}/client")
    broker_side = MemoryByteStream(to_broker, to_client, name=f"{name}/broker")
    return client_side, broker_side


# --------------------------------------------------------------------------------------
# Conditions
# --------------------------------------------------------------------------------------


@attrs.define(eq=False)
class _Notifier:
    """Wake every waiter whenever something changed; waiters re-check a predicate."""

    _event: anyio.Event | None = None

    def notify(self) -> None:
        if self._event is not None:
            self._event.set()
            self._event = None

    async def wait_until(self, predicate: Callable[[], bool]) -> None:
        await anyio.lowlevel.checkpoint()
        while not predicate():
            if self._event is None:
                self._event = anyio.Event()
            await self._event.wait()


# --------------------------------------------------------------------------------------
# The broker
# --------------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class Answer:
    """How the broker answers one connection attempt (see `FakeBroker.script`)."""

    refuse: bool = False
    """``connect`` raises ConnectionRefusedError (errno ECONNREFUSED)."""
    hang: bool = False
    """``connect`` never returns (until cancelled), like an unanswered SYN."""
    silent: bool = False
    """The connection opens but CONNECT is never answered."""
    reason_code: ReasonCode = ReasonCode.SUCCESS
    """CONNACK reason code; a failure closes the connection after the CONNACK."""
    session_present: bool = False
    """CONNACK session-present flag; True also restores the client id's stored
    subscriptions on the broker side."""
    properties: Properties = EMPTY_PROPERTIES
    """CONNACK properties (MQTT 5), e.g. ``Properties(server_keep_alive=5)``."""


@attrs.frozen(kw_only=True)
class Attempt:
    """One call of `FakeBroker.connect`."""

    time: float
    """Clock time of the call (``anyio.current_time()``)."""
    endpoint: object
    """What the client passed (its Endpoint)."""
    outcome: Literal["refused", "hang", "opened"]
    """What the broker did with it."""


@attrs.define(eq=False)
class _Sub:
    option: TopicSubscription
    identifier: int | None


@attrs.define(eq=False)
class _Session:
    """What the broker keeps per client id across connections."""

    subscriptions: dict[str, _Sub] = attrs.Factory(dict)
    incoming_qos2: set[int] = attrs.Factory(set)


@attrs.define(eq=False)
class FakeConnection:
    """The broker's view of one client connection."""

    broker: FakeBroker
    index: int
    """0 for the first connection the broker opened, then 1, 2 ..."""
    endpoint: object
    answer: Answer
    stream: MemoryByteStream
    """The broker's end of the connection."""
    client_stream: MemoryByteStream
    """The client's end (for assertions: ``client_stream.closed``)."""
    opened_at: float
    connect: ConnectPacket | None = None
    """The CONNECT the client sent."""
    received: list[Packet] = attrs.Factory(list)
    """Every packet the client sent, in order."""
    sent: list[Packet] = attrs.Factory(list)
    """Every packet the broker sent, in order."""
    connacked: bool = False
    """True once a successful CONNACK was sent."""
    closed: bool = False
    """True once the broker stopped serving the connection."""
    closed_at: float | None = None
    close_reason: str = ""
    """``"eof"``, ``"reset"``, ``"disconnect"``, ``"refused"``, ``"broker"``,
    ``"protocol error"`` or ``"cancelled"``."""
    protocol_error: ProtocolError | None = None
    """Set when the client's bytes could not be decoded."""
    session: _Session = attrs.Factory(_Session)
    _decoder: PacketDecoder = attrs.Factory(lambda: PacketDecoder(ProtocolVersion.V5))
    _next_packet_id: int = 1
    _outgoing_unacked: dict[int, PublishPacket] = attrs.Factory(dict)

    @property
    def version(self) -> ProtocolVersion:
        """Protocol version from the CONNECT (MQTT 5 before it arrived)."""
        return self.connect.protocol_version if self.connect else ProtocolVersion.V5

    @property
    def subscriptions(self) -> dict[str, TopicSubscription]:
        """The filters this connection's session is subscribed to."""
        return {name: sub.option for name, sub in self.session.subscriptions.items()}

    def subscription_identifier(self, topic_filter: str) -> int | None:
        """The MQTT 5 subscription identifier the client gave *topic_filter*."""
        return self.session.subscriptions[topic_filter].identifier

    def packets(self, kind: type[P]) -> list[P]:
        """Received packets of type *kind*, in order (``Packet`` for all)."""
        return [packet for packet in self.received if isinstance(packet, kind)]

    # -- sending -----------------------------------------------------------------------

    async def send(self, packet: Packet) -> None:
        """Encode *packet* for this connection's version and send it."""
        data = encode_packet(packet, self.version)
        self.sent.append(packet)
        await self.stream.send(data)

    async def send_raw(self, data: bytes) -> None:
        """Send arbitrary bytes."""
        await self.stream.send(data)

    async def send_partial_then_eof(self, packet: Packet, count: int) -> None:
        """Send the first *count* bytes of *packet*, then EOF (a cut-off packet)."""
        data = encode_packet(packet, self.version)
        if not 0 <= count < len(data):
            raise ValueError(f"count must be 0..{len(data) - 1}, not {count!r}")
        await self.stream.send(data[:count])
        await self.stream.send_eof()

    async def deliver(
        self,
        topic: str,
        payload: bytes = b"",
        *,
        qos: QoS | int = QoS.AT_MOST_ONCE,
        retain: bool = False,
        dup: bool = False,
        properties: Properties = EMPTY_PROPERTIES,
    ) -> PublishPacket:
        """Send one PUBLISH to this client, with a fresh packet id for QoS 1/2."""
        qos = QoS(qos)
        packet_id = self._allocate_id() if qos else None
        if self.version is ProtocolVersion.V311:
            properties = EMPTY_PROPERTIES
        packet = PublishPacket(
            topic=topic,
            payload=payload,
            qos=qos,
            retain=retain,
            dup=dup,
            packet_id=packet_id,
            properties=properties,
        )
        if packet_id is not None:
            self._outgoing_unacked[packet_id] = packet
        await self.send(packet)
        return packet

    async def close(self) -> None:
        """Close the broker's end: the client reads EOF."""
        self.close_reason = self.close_reason or "broker"
        await self.stream.aclose()

    def abort(self) -> None:
        """Reset the connection: the client sees a broken stream."""
        self.close_reason = self.close_reason or "reset"
        self.stream.abort()

    # -- waiting -----------------------------------------------------------------------

    async def wait_for(self, kind: type[P], *, count: int = 1) -> P:
        """Wait until the client sent *count* packets of type *kind*; return the last.

        Returns:
            The *count*-th packet of that type.
        """
        found: list[P] = []

        def ready() -> bool:
            found[:] = self.packets(kind)
            return len(found) >= count

        await self.broker._notifier.wait_until(ready)
        return found[count - 1]

    async def wait_packet(self, predicate: Callable[[Packet], bool]) -> Packet:
        """Wait until the client sent a packet matching *predicate*; return it."""
        found: list[Packet] = []

        def ready() -> bool:
            found[:] = [packet for packet in self.received if predicate(packet)]
            return bool(found)

        await self.broker._notifier.wait_until(ready)
        return found[0]

    async def wait_connacked(self) -> None:
        """Wait until the broker accepted the CONNECT."""
        await self.broker._notifier.wait_until(lambda: self.connacked)

    async def wait_closed(self) -> None:
        """Wait until the broker stopped serving this connection."""
        await self.broker._notifier.wait_until(lambda: self.closed)

    # -- internals ---------------------------------------------------------------------

    def _allocate_id(self) -> int:
        for _ in range(65535):
            packet_id = self._next_packet_id
            self._next_packet_id = packet_id % 65535 + 1
            if packet_id not in self._outgoing_unacked:
                return packet_id
        raise RuntimeError("fake broker: no free packet identifier")  # pragma: no cover


@attrs.define(eq=False)
class FakeBroker:
    """A scripted MQTT broker peer over in-memory streams (see the module docstring).

    Attributes may be changed by the test at any time; they apply to the next
    packet the broker handles.
    """

    default_answer: Answer = Answer()
    """How connection attempts are answered once the `script` queue is empty."""
    refuse_hosts: set[str] = attrs.Factory(set)
    """Connect attempts to an endpoint whose ``host`` is in here are refused
    (without taking an answer from the queue)."""
    answer_pings: bool = True
    """Answer PINGREQ with PINGRESP; False models a dead broker."""
    ack_publishes: bool = True
    """Answer a client's QoS 1/2 PUBLISH (PUBACK / PUBREC); False withholds it."""
    complete_publishes: bool = True
    """Answer PUBREL with PUBCOMP; False withholds it."""
    publish_reason: ReasonCode = ReasonCode.SUCCESS
    """Reason code of PUBACK / PUBREC (a failure refuses the message)."""
    ack_subscribes: bool = True
    """Answer SUBSCRIBE / UNSUBSCRIBE; False withholds SUBACK / UNSUBACK."""
    suback_reasons: dict[str, ReasonCode] = attrs.Factory(dict)
    """Filter -> failure reason code to refuse that filter with."""
    maximum_qos: QoS = QoS.EXACTLY_ONCE
    """Highest QoS granted in SUBACK."""
    release_deliveries: bool = True
    """Answer the client's PUBREC (for broker -> client QoS 2) with PUBREL."""
    route: bool = True
    """Forward a client's PUBLISH to every connection with a matching subscription."""
    overlap: Literal["single", "per_subscription"] = "single"
    """Overlapping subscriptions of one client get one copy carrying every matching
    subscription identifier ("single"), or one copy per subscription."""

    connections: list[FakeConnection] = attrs.Factory(list)
    """Every connection opened, in order."""
    attempts: list[Attempt] = attrs.Factory(list)
    """Every ``connect`` call, in order."""
    messages: list[PublishPacket] = attrs.Factory(list)
    """Application messages clients published (each QoS 2 message once)."""
    retained: dict[str, PublishPacket] = attrs.Factory(dict)
    """Retained messages by topic."""
    sessions: dict[str, _Session] = attrs.Factory(dict)
    _answers: deque[Answer] = attrs.Factory(deque)
    _notifier: _Notifier = attrs.Factory(_Notifier)
    _task_group: anyio.abc.TaskGroup | None = None

    # -- lifecycle ---------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        task_group = anyio.create_task_group()
        await task_group.__aenter__()
        self._task_group = task_group
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> bool | None:
        task_group, self._task_group = self._task_group, None
        assert task_group is not None
        task_group.cancel_scope.cancel()
        return await task_group.__aexit__(exc_type, exc_value, traceback)

    # -- scripting ---------------------------------------------------------------------

    def script(self, *answers: Answer) -> None:
        """Queue how the next connection attempts are answered, one each, in order."""
        self._answers.extend(answers)

    @property
    def pending_answers(self) -> int:
        """How many scripted answers are still queued."""
        return len(self._answers)

    # -- the transport factory ---------------------------------------------------------

    async def connect(self, endpoint: object) -> MemoryByteStream:
        """Open a new connection to the broker (the ``transport=`` factory).

        Raises:
            ConnectionRefusedError: When the endpoint's host is in `refuse_hosts`
                or the scripted `Answer` says ``refuse``.
        """
        await anyio.lowlevel.checkpoint()
        if self._task_group is None:
            raise RuntimeError(
                "the fake broker is not running, "
                "use it inside 'async with FakeBroker()'"
            )
        now = anyio.current_time()
        host = getattr(endpoint, "host", None)
        if host in self.refuse_hosts:
            answer = Answer(refuse=True)
        else:
            answer = self._answers.popleft() if self._answers else self.default_answer
        if answer.refuse:
            self._record_attempt(now, endpoint, "refused")
            raise ConnectionRefusedError(
                errno.ECONNREFUSED, f"fake broker refused the connection to {host}"
            )
        if answer.hang:
            self._record_attempt(now, endpoint, "hang")
            await anyio.sleep_forever()
        client_side, broker_side = memory_byte_stream_pair(
            f"conn{len(self.connections)}"
        )
        conn = FakeConnection(
            broker=self,
            index=len(self.connections),
            endpoint=endpoint,
            answer=answer,
            stream=broker_side,
            client_stream=client_side,
            opened_at=now,
        )
        self.connections.append(conn)
        self._record_attempt(now, endpoint, "opened")
        self._task_group.start_soon(
            self._serve, conn, name=f"fake-broker[{conn.index}]"
        )
        return client_side

    def _record_attempt(
        self,
        now: float,
        endpoint: object,
        outcome: Literal["refused", "hang", "opened"],
    ) -> None:
        self.attempts.append(Attempt(time=now, endpoint=endpoint, outcome=outcome))
        self._notifier.notify()

    # -- waiting -----------------------------------------------------------------------

    async def wait_connection(self, index: int) -> FakeConnection:
        """Wait until connection number *index* (0-based) was opened; return it."""
        await self._notifier.wait_until(lambda: len(self.connections) > index)
        return self.connections[index]

    async def wait_attempts(self, count: int) -> list[Attempt]:
        """Wait until ``connect`` was called *count* times; return the attempts."""
        await self._notifier.wait_until(lambda: len(self.attempts) >= count)
        return self.attempts[:count]

    async def wait_until(self, predicate: Callable[[], bool]) -> None:
        """Wait until *predicate* (re-checked whenever the broker's state changes)."""
        await self._notifier.wait_until(predicate)

    def attempt_times(self) -> list[float]:
        """Times of all connection attempts."""
        return [attempt.time for attempt in self.attempts]

    # -- publishing from "another client" ----------------------------------------------

    async def publish(
        self,
        topic: str,
        payload: bytes = b"",
        *,
        qos: QoS | int = QoS.AT_MOST_ONCE,
        retain: bool = False,
        properties: Properties = EMPTY_PROPERTIES,
    ) -> None:
        """Route a message to subscribed connections, as if another client sent it."""
        packet = PublishPacket(
            topic=topic,
            payload=payload,
            qos=QoS(qos),
            retain=retain,
            packet_id=1 if qos else None,
            properties=properties,
        )
        await self._route(packet, sender=None)

    # -- serving -----------------------------------------------------------------------

    async def _serve(self, conn: FakeConnection) -> None:
        try:
            await self._read_loop(conn)
        except BaseException:
            conn.close_reason = conn.close_reason or "cancelled"
            raise
        finally:
            conn.closed = True
            conn.closed_at = anyio.current_time()
            with anyio.CancelScope(shield=True):
                await conn.stream.aclose()
            self._notifier.notify()

    async def _read_loop(self, conn: FakeConnection) -> None:
        while True:
            try:
                data = await conn.stream.receive()
            except anyio.EndOfStream:
                conn.close_reason = conn.close_reason or "eof"
                return
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                conn.close_reason = conn.close_reason or "reset"
                return
            conn._decoder.feed(data)
            while True:
                try:
                    packet = conn._decoder.next_packet()
                except ProtocolError as exc:
                    conn.protocol_error = exc
                    conn.close_reason = "protocol error"
                    return
                if packet is None:
                    break
                conn.received.append(packet)
                self._notifier.notify()
                try:
                    done = await self._handle(conn, packet)
                except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                    conn.close_reason = conn.close_reason or "reset"
                    return
                if done:
                    return

    async def _handle(self, conn: FakeConnection, packet: Packet) -> bool:
        """React to one packet; True ends the connection."""
        if isinstance(packet, ConnectPacket):
            return await self._on_connect(conn, packet)
        if isinstance(packet, PublishPacket):
            await self._on_publish(conn, packet)
        elif isinstance(packet, PubRelPacket):
            conn.session.incoming_qos2.discard(packet.packet_id)
            if self.complete_publishes:
                await conn.send(PubCompPacket(packet_id=packet.packet_id))
        elif isinstance(packet, PubAckPacket | PubCompPacket):
            conn._outgoing_unacked.pop(packet.packet_id, None)
        elif isinstance(packet, PubRecPacket):
            if packet.reason_code.is_failure:
                conn._outgoing_unacked.pop(packet.packet_id, None)
            elif self.release_deliveries:
                await conn.send(PubRelPacket(packet_id=packet.packet_id))
        elif isinstance(packet, SubscribePacket):
            await self._on_subscribe(conn, packet)
        elif isinstance(packet, UnsubscribePacket):
            await self._on_unsubscribe(conn, packet)
        elif isinstance(packet, PingReqPacket):
            if self.answer_pings:
                await conn.send(PingRespPacket())
        elif isinstance(packet, DisconnectPacket):
            # [v5:MQTT-3.14.4-1] the client sends nothing after DISCONNECT
            conn.close_reason = "disconnect"
            return True
        elif isinstance(packet, AuthPacket):
            pass
        else:
            conn.close_reason = f"unexpected {type(packet).__name__}"
            return True
        return False

    async def _on_connect(self, conn: FakeConnection, packet: ConnectPacket) -> bool:
        conn.connect = packet
        conn._decoder.version = packet.protocol_version
        self._notifier.notify()
        answer = conn.answer
        if answer.silent:
            return False
        if answer.reason_code.is_failure:
            await conn.send(ConnAckPacket(reason_code=answer.reason_code))
            conn.close_reason = "refused"
            return True  # [v5:MQTT-3.2.2-7] a failed CONNACK closes the connection
        if answer.session_present and packet.client_id in self.sessions:
            conn.session = self.sessions[packet.client_id]
        else:
            conn.session = _Session()
        if packet.client_id:
            self.sessions[packet.client_id] = conn.session
        properties = answer.properties
        if conn.version is ProtocolVersion.V311:
            properties = EMPTY_PROPERTIES
        await conn.send(
            ConnAckPacket(
                session_present=answer.session_present,
                reason_code=answer.reason_code,
                properties=properties,
            )
        )
        conn.connacked = True
        self._notifier.notify()
        return False

    async def _on_publish(self, conn: FakeConnection, packet: PublishPacket) -> None:
        reason = self.publish_reason
        if packet.qos is QoS.AT_MOST_ONCE:
            await self._route(packet, sender=conn)
            return
        assert packet.packet_id is not None
        if packet.qos is QoS.AT_LEAST_ONCE:
            if not reason.is_failure:
                await self._route(packet, sender=conn)
            if self.ack_publishes:
                await conn.send(
                    PubAckPacket(packet_id=packet.packet_id, reason_code=reason)
                )
            return
        # QoS 2: route once, until PUBREL frees the id ([v5:MQTT-4.3.3-9])
        if not reason.is_failure and packet.packet_id not in conn.session.incoming_qos2:
            conn.session.incoming_qos2.add(packet.packet_id)
            await self._route(packet, sender=conn)
        if self.ack_publishes:
            await conn.send(
                PubRecPacket(packet_id=packet.packet_id, reason_code=reason)
            )

    async def _on_subscribe(
        self, conn: FakeConnection, packet: SubscribePacket
    ) -> None:
        identifiers = packet.properties.subscription_identifiers
        identifier = identifiers[0] if identifiers else None
        reasons: list[ReasonCode] = []
        granted: list[TopicSubscription] = []
        for option in packet.subscriptions:
            refusal = self.suback_reasons.get(option.filter)
            if refusal is not None:
                reasons.append(refusal)
                continue
            qos = QoS(min(option.qos, self.maximum_qos))
            reasons.append(ReasonCode(int(qos)))
            existed = option.filter in conn.session.subscriptions
            conn.session.subscriptions[option.filter] = _Sub(
                attrs.evolve(option, qos=qos), identifier
            )
            # [v5:MQTT-3.3.1-9] [v5:MQTT-3.3.1-10] retained messages on subscribe
            handling = option.retain_handling
            if handling is RetainHandling.SEND_ON_SUBSCRIBE or (
                handling is RetainHandling.SEND_IF_NEW_SUBSCRIPTION and not existed
            ):
                granted.append(option)
        if self.ack_subscribes:
            await conn.send(
                SubAckPacket(packet_id=packet.packet_id, reason_codes=tuple(reasons))
            )
        for option in granted:
            for message in list(self.retained.values()):
                if topic_matches(option.filter, message.topic):
                    sub = conn.session.subscriptions[option.filter]
                    await self._deliver(conn, message, [sub], retain=True)

    async def _on_unsubscribe(
        self, conn: FakeConnection, packet: UnsubscribePacket
    ) -> None:
        reasons: list[ReasonCode] = []
        for topic_filter in packet.filters:
            if conn.session.subscriptions.pop(topic_filter, None) is None:
                reasons.append(ReasonCode.NO_SUBSCRIPTION_EXISTED)
            else:
                reasons.append(ReasonCode.SUCCESS)
        if self.ack_subscribes:
            codes = tuple(reasons) if conn.version is ProtocolVersion.V5 else ()
            await conn.send(
                UnsubAckPacket(packet_id=packet.packet_id, reason_codes=codes)
            )

    async def _route(
        self, packet: PublishPacket, *, sender: FakeConnection | None
    ) -> None:
        if sender is not None:
            self.messages.append(packet)
            self._notifier.notify()
        if packet.retain:
            if packet.payload:
                self.retained[packet.topic] = packet
            else:
                self.retained.pop(packet.topic, None)
        if not self.route:
            return
        for conn in list(self.connections):
            if conn.closed or not conn.connacked:
                continue
            matching = [
                sub
                for sub in conn.session.subscriptions.values()
                if topic_matches(sub.option.filter, packet.topic)
                and not (sub.option.no_local and conn is sender)
            ]
            if not matching:
                continue
            try:
                if self.overlap == "single":
                    await self._deliver(conn, packet, matching)
                else:
                    for sub in matching:
                        await self._deliver(conn, packet, [sub])
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                if conn is sender:
                    raise

    async def _deliver(
        self,
        conn: FakeConnection,
        packet: PublishPacket,
        subs: Iterable[_Sub],
        *,
        retain: bool | None = None,
    ) -> None:
        subs = list(subs)
        qos = QoS(min(packet.qos, max(sub.option.qos for sub in subs)))
        if retain is None:
            # [v5:MQTT-3.3.1-12] retain is cleared unless Retain As Published
            retain = packet.retain and any(s.option.retain_as_published for s in subs)
        properties = attrs.evolve(
            packet.properties,
            subscription_identifiers=tuple(
                sub.identifier for sub in subs if sub.identifier is not None
            ),
            topic_alias=None,
        )
        await conn.deliver(
            packet.topic, packet.payload, qos=qos, retain=retain, properties=properties
        )


# --------------------------------------------------------------------------------------
# Engine test helpers
# --------------------------------------------------------------------------------------

URI = "mqtt://broker.test:1883"
"""The URI engine tests give their client (the fake broker ignores it)."""


def make_client(
    broker: FakeBroker,
    uri: str | Sequence[str] = URI,
    **options: Any,  # noqa: ANN401 - forwarded to MqttClient as keyword options
) -> MqttClient:
    """An `MqttClient` connected through *broker*, with deterministic defaults.

    Defaults: client id ``"c1"``, keepalive 0 (tests that need it set it),
    ``reconnect_jitter=0`` (exact backoff times); *options* override them.
    """
    from trio_mqttconn import MqttClient

    settings: dict[str, Any] = {
        "client_id": "c1",
        "keepalive": 0,
        "reconnect_jitter": 0.0,
        "transport": broker.connect,
    }
    settings.update(options)
    return MqttClient(uri, **settings)


def live_tasks() -> set[trio.lowlevel.Task]:
    """Every task of the current trio run, walked down from the root task."""
    found: set[trio.lowlevel.Task] = set()
    stack = [trio.lowlevel.current_root_task()]
    while stack:
        task = stack.pop()
        if task is None or task in found:
            continue
        found.add(task)
        for nursery in task.child_nurseries:
            stack.extend(nursery.child_tasks)
    return found


def client_task_names(tasks: Iterable[trio.lowlevel.Task]) -> list[str]:
    """Names of the engine's tasks (``mqtt-...``) among *tasks*, sorted."""
    return sorted(task.name for task in tasks if task.name.startswith("mqtt-"))


@attrs.define(eq=False)
class CancelAfterSteps(trio.abc.Instrument):
    """Cancel *scope* right after *task* has run *steps* scheduling steps.

    Each step of a task ends where it yields to the scheduler (a checkpoint), so
    cancelling after step ``n`` interrupts the call at its ``n``-th checkpoint (or at
    the next one that accepts a cancellation). Use with `trio.lowlevel.add_instrument`.
    """

    task: trio.lowlevel.Task
    scope: trio.CancelScope
    steps: int
    taken: int = 0

    def after_task_step(self, task: trio.lowlevel.Task) -> None:
        """Count the target task's steps and cancel at the chosen one."""
        if task is self.task:
            self.taken += 1
            if self.taken == self.steps:
                self.scope.cancel()


async def cancel_at_step(steps: int, function: Callable[[], Awaitable[object]]) -> bool:
    """Run *function* in a new task, cancelled after its *steps*-th scheduling step.

    Returns:
        True if the cancellation interrupted it, False if it finished first.
    """
    caught: list[bool] = []

    async def target() -> None:
        with trio.CancelScope() as scope:
            instrument = CancelAfterSteps(trio.lowlevel.current_task(), scope, steps)
            trio.lowlevel.add_instrument(instrument)
            try:
                await function()
            finally:
                trio.lowlevel.remove_instrument(instrument)
        caught.append(scope.cancelled_caught)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(target)
    return caught[0]


VIRTUAL_TIME_LIMIT = 1_000_000.0
"""Virtual seconds after which the ``mqtt_virtual_deadline`` fixture fails a test."""
