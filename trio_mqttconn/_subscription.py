"""Subscription: a bounded memory channel of messages for one topic filter.

The task reading the connection produces into the channel (it owns the send side and
closes it when the subscription ends, so ``async for`` finishes without sentinels); the
application, or a dispatcher task running its listener, consumes. The reader never
waits for a consumer. What happens when the channel is full is the subscription's
choice: ``"wait"`` (lossless: the message is *parked* beside the channel and moved in
when the consumer takes one; a QoS 1/2 message's acknowledgement is withheld until
then, so the broker's flow stops at our Receive Maximum, and QoS 0 messages count
against the client's bounded intake, past which the reader pauses) or
``"drop_oldest"`` (the oldest queued message is discarded and counted).

With ``manual_ack=True`` a QoS 1/2 message's acknowledgement goes out only when the
application calls ``message.ack()``.
"""

from __future__ import annotations

import collections
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Literal, Self, TypeAlias, final

import anyio
import attrs

from ._message import Message

if TYPE_CHECKING:
    from ._client import MqttClient
    from ._engine.link import Hold
    from ._engine.router import Hub
    from ._enums import QoS
    from ._groups import Event
    from ._packets import TopicSubscription

__all__ = ["Listener", "Overflow", "Subscription", "SubscriptionStatistics"]

#: Messages an iterator may hand out without a full checkpoint.
_STREAK = 64
#: What a parked message costs beyond its topic and payload (the Message, its
#: properties, the queue entry), in bytes: the intake counts memory, not payload.
PARKED_OVERHEAD = 512

Overflow: TypeAlias = Literal["wait", "drop_oldest"]
#: A message listener: a callable taking a Message, sync or async.
Listener: TypeAlias = Callable[[Message], Awaitable[None] | None]


@final
@attrs.frozen(kw_only=True)
class SubscriptionStatistics:
    """A snapshot of one subscription's counters, from :meth:`Subscription.statistics`."""

    topic_filter: str
    """The topic filter subscribed to."""
    queued: int
    """Messages waiting in the channel."""
    delivered: int
    """Messages put into the channel so far."""
    dropped: int
    """Messages discarded because the channel was full (``overflow="drop_oldest"``)."""
    buffer: int
    """Capacity of the channel."""
    parked: int = 0
    """Messages waiting beside the full channel (``overflow="wait"``)."""


@attrs.define(eq=False)
class _Intake:
    """The client's bound on QoS 0 bytes parked beside full channels."""

    limit: int
    used: int = 0
    #: Set when *used* fell back under *limit* (the paused reader waits for it).
    room: anyio.Event | None = None
    warned: bool = False

    def taken(self, size: int) -> None:
        self.used -= size
        room = self.room
        if room is not None and self.used <= self.limit:
            self.room = None
            room.set()

    def is_full(self) -> bool:
        return self.used > self.limit


@final
@attrs.define(eq=False)
class Subscription:
    """One subscription of an :class:`~trio_mqttconn.MqttClient`: iterate it for messages.

    Made by :meth:`MqttClient.subscription` or :meth:`MqttClient.subscribe`; not
    constructed directly. ``async for message in sub`` ends when the subscription is
    unsubscribed or the client closes.
    """

    topic_filter: str
    """The topic filter, as given (``$share/...`` included)."""
    options: TopicSubscription = attrs.field(repr=False)
    """The subscription options sent in SUBSCRIBE."""
    overflow: Overflow = "wait"
    """What happens when the channel is full: ``"wait"`` or ``"drop_oldest"``."""
    buffer: int = 1000
    """Capacity of the message channel."""
    granted_qos: QoS | None = None
    """QoS granted by the broker in SUBACK (None until then)."""
    _client: MqttClient | None = attrs.field(default=None, repr=False, alias="client")
    _identifier: int = attrs.field(default=0, repr=False, alias="identifier")
    #: The channel: messages for the consumer, at most *buffer* of them.
    _queue: collections.deque[Message] = attrs.field(
        init=False, factory=collections.deque, repr=False
    )
    #: The producer may add messages (False once the subscription ended).
    _open: bool = attrs.field(init=False, default=True, repr=False)
    #: The consumer may take messages (False once released).
    _readable: bool = attrs.field(init=False, default=True, repr=False)
    #: Set when a message arrives or the subscription ends; made by a waiting
    #: consumer only (the running backend's event: trio's own on trio).
    _waiter: Event | None = attrs.field(init=False, default=None, repr=False)
    _delivered: int = attrs.field(init=False, default=0, repr=False)
    _dropped: int = attrs.field(init=False, default=0, repr=False)
    _active: bool = attrs.field(init=False, default=True, repr=False)
    _streak: int = attrs.field(init=False, default=0, repr=False)
    #: For a synchronous listener: the client's shared dispatch queue, which
    #: carries messages to one task for all such listeners.
    _hub: Hub | None = attrs.field(init=False, default=None, repr=False)
    _listener: Listener | None = attrs.field(init=False, default=None, repr=False)
    #: ``manual_ack=True``: QoS 1/2 acknowledgements wait for ``message.ack()``.
    _manual_ack: bool = attrs.field(default=False, repr=False, alias="manual_ack")
    #: Messages that found the channel full: [message, hold, QoS 0 bytes, sub].
    _parked: collections.deque[list[Any]] = attrs.field(
        init=False, factory=collections.deque, repr=False
    )
    _intake: _Intake | None = attrs.field(init=False, default=None, repr=False)
    #: Why the subscription ended, when the broker ended it (its iterator raises).
    _error: BaseException | None = attrs.field(init=False, default=None, repr=False)

    def __attrs_post_init__(self) -> None:
        if self.overflow not in ("wait", "drop_oldest"):
            raise ValueError(
                f"overflow must be 'wait' or 'drop_oldest', not {self.overflow!r}"
            )
        if self.buffer < 1:
            raise ValueError(f"buffer must be at least 1, not {self.buffer!r}")

    # -- producer side (the task reading the connection) -------------------------

    def _offer(self, message: Message) -> bool:
        """Put *message* without waiting; False when it was parked (channel full)."""
        if not self._active:
            return True
        hub = self._hub
        if hub is None and self._parked:
            # Behind what is parked already: order is kept.
            self._park(message)
            return False
        if hub is not None:
            # The hub's queue is the channel and the park of every synchronous
            # listener: one deque, no task switch, no channel machinery.
            self._delivered += 1
            return hub.put(self, message)
        queue = self._queue
        if len(queue) >= self.buffer:
            if self.overflow == "wait":
                self._park(message)
                return False
            queue.popleft()
            self._dropped += 1
        queue.append(message)
        self._delivered += 1
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            waiter.set()
        return True

    def _park(self, message: Message) -> None:
        size = 0
        intake = self._intake
        if not message.qos and intake is not None:
            size = len(message.payload) + len(message.topic) + PARKED_OVERHEAD
            intake.used += size
        self._parked.append([message, None, size, self])

    def _hold_last(self, hold: Hold) -> None:
        """The message parked last withholds *hold* until it is taken."""
        hold.waiting += 1
        if self._hub is not None:
            self._hub.queue[-1][1] = hold
        else:
            self._parked[-1][1] = hold

    def _refill(self) -> None:
        """Move parked messages into the channel while it has room.

        Called when the consumer found the channel empty: parked messages move in
        as a batch, not one per message taken.
        """
        parked = self._parked
        queue = self._queue
        room = self.buffer - len(queue)
        freed = 0
        while parked and room > 0:
            entry = parked.popleft()
            queue.append(entry[0])
            room -= 1
            self._delivered += 1
            hold = entry[1]
            if hold is not None:
                hold.release()
            freed += entry[2]
        if freed and self._intake is not None:
            self._intake.taken(freed)

    def _let_go(self, entry: list[Any]) -> None:
        hold = entry[1]
        if hold is not None:
            hold.release()
        size = entry[2]
        if size and self._intake is not None:
            self._intake.taken(size)

    def _drop_parked(self) -> None:
        """Nobody will take what this subscription parked: let its acks go.

        (A hub subscription's entries stay in the hub's queue: the hub's task lets
        them go without calling the listener.)
        """
        parked = self._parked
        manual = self._manual_ack
        while parked:
            entry = parked.popleft()
            self._let_go(entry)
            if manual:
                entry[0].ack()  # never handed out: nobody else will

    def _fail(self, error: BaseException) -> None:
        """The broker ended the subscription: iteration raises *error* once drained."""
        self._error = error
        self._client = None
        self._close()

    def _ended(self) -> BaseException | None:
        error, self._error = self._error, None
        return error

    def _close(self) -> None:
        """End the subscription: iteration stops once queued messages are consumed."""
        self._active = False
        self._open = False
        self._drop_parked()
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            waiter.set()

    # -- consumer side -------------------------------------------------------------

    def _take(self) -> Message:
        """The next message, without waiting (parked ones move in as a batch)."""
        if not self._readable:
            raise anyio.ClosedResourceError
        queue = self._queue
        if queue:
            return queue.popleft()
        if self._parked:
            self._refill()
            if queue:
                return queue.popleft()
        if not self._open:
            error = self._ended()
            if error is not None:
                raise error
            raise anyio.EndOfStream
        raise anyio.WouldBlock

    async def _wait(self) -> None:
        """Wait until a message arrives or the subscription ends."""
        waiter = self._waiter
        if waiter is None:
            client = self._client
            waiter = self._waiter = (
                client._new_event() if client is not None else anyio.Event()
            )
        await waiter.wait()

    async def receive(self) -> Message:
        """Wait for the next message.

        Raises:
            anyio.EndOfStream: the subscription ended (unsubscribed or client closed).
            SubscribeError: the broker refused it again after a reconnect.
        """
        await anyio.lowlevel.checkpoint_if_cancelled()
        while True:
            try:
                message = self._take()
            except anyio.WouldBlock:
                await self._wait()
                continue
            except anyio.ClosedResourceError:
                raise anyio.EndOfStream from None
            break
        # A schedule point that cannot lose the message it returns.
        await anyio.lowlevel.cancel_shielded_checkpoint()
        return message

    def receive_nowait(self) -> Message:
        """Return a queued message without waiting.

        Raises:
            anyio.WouldBlock: nothing is queued.
            anyio.EndOfStream: the subscription ended and nothing is queued.
        """
        try:
            return self._take()
        except anyio.ClosedResourceError:
            raise anyio.EndOfStream from None

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> Message:
        # Drain what is queued without a task switch, a full checkpoint only every
        # _STREAK messages: a task switch per message would cost more than the
        # message itself. Cancellation is still checked before each message is
        # taken, so a cancelled iteration never loses one.
        await anyio.lowlevel.checkpoint_if_cancelled()
        if self._streak >= _STREAK:
            self._streak = 0
            await anyio.lowlevel.checkpoint()
        while True:
            try:
                message = self._take()
            except anyio.WouldBlock:
                self._streak = 0
                await self._wait()
                continue
            except (anyio.EndOfStream, anyio.ClosedResourceError):
                raise StopAsyncIteration from None
            self._streak += 1
            return message

    def statistics(self) -> SubscriptionStatistics:
        """Counters of this subscription."""
        return SubscriptionStatistics(
            topic_filter=self.topic_filter,
            queued=len(self._queue),
            delivered=self._delivered,
            dropped=self._dropped,
            buffer=self.buffer,
            parked=len(self._parked) if self._hub is None else self._hub.parked(self),
        )

    async def unsubscribe(self) -> None:
        """Stop this subscription (UNSUBSCRIBE when no other one uses its filter).

        Idempotent; a no-op once the client is closed. Messages already queued can
        still be read.
        """
        client = self._client
        if client is None:
            await anyio.lowlevel.checkpoint()
            return
        self._client = None
        await client._unsubscribe(self)

    def _release(self) -> None:
        self._client = None
        self._close()
        self._readable = False
        if self._manual_ack:
            # Messages the application never got: their acknowledgements go, or
            # they would hold back every later one of the connection.
            for message in self._queue:
                message.ack()
        self._queue.clear()
