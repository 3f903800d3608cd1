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

A consumer waiting on an empty channel is woken with the backend's own primitives
(`_Waits`): on trio the reader reschedules the waiting task with the message itself,
as trio's memory channels do; on asyncio the message is queued and the consumer's
future completes. No Event per wait, no anyio backend lookup per message: with a
task per subscription the wake-up is most of what a message costs. On trio the
waiting task yields trio's own trap, made once per subscription, and is sent the
message as it is (no coroutine, trap or Outcome per message: a thousand waiting
tasks kept as many alive, which the garbage collector walked again and again).
"""

from __future__ import annotations

import collections
import types
from collections.abc import Awaitable, Callable, Generator
from typing import (
    TYPE_CHECKING,
    Any,
    Final,
    Literal,
    NamedTuple,
    Self,
    TypeAlias,
    cast,
    final,
)

import anyio
import attrs

from ._exceptions import MqttInternalError
from ._groups import running_on_trio
from ._message import Message

if TYPE_CHECKING:
    import trio

    from ._client import MqttClient
    from ._engine.link import Hold
    from ._engine.router import Hub
    from ._enums import QoS
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
class Sleepers(list[Any]):
    """The consumers waiting on one channel (trio tasks, or asyncio futures).

    On trio it also keeps the abort callback of the task that waited last, so a
    task that waits on the same channel again and again (one consumer per
    subscription) reuses it: no closure and cells per wait that live until the
    task wakes, which is what keeps the garbage collector busy when a thousand
    tasks wait at once.
    """

    __slots__ = ("abort", "owner", "trap")

    def __init__(self) -> None:
        super().__init__()
        self.owner: object = None
        self.abort: Callable[[Any], Any] | None = None
        #: What the waiting task yields to trio's scheduler (see `_trio_waits`).
        self.trap: object = None


@final
@attrs.frozen(eq=False)
class _Waits:
    """How a consumer waits, with the running backend's own primitives.

    A waiting consumer puts itself into its subscription's list of sleepers and
    the producer wakes it directly. On trio (*direct*) the producer hands the
    message itself to the first waiting task, which is rescheduled with it: no
    Event, no parking lot, no anyio backend lookup, no trip through the channel;
    a rescheduled task can no longer be cancelled, so nothing handed over is lost.
    On asyncio the message goes into the channel and every waiting consumer's
    future completes (a completed future does not stop a cancellation there).
    """

    #: The producer hands messages to waiting consumers (trio).
    direct: bool
    #: ``await sleep(sleepers)``: wait (a cancel point). Returns the message
    #: handed over (*direct*) or None (woken: look at the channel again); raises
    #: StopAsyncIteration, or the subscription's error, when it ended (*direct*).
    sleep: Callable[[Sleepers], Awaitable[Any]]
    #: ``hand(sleepers, message)``: give *message* to the first sleeper (*direct*;
    #: else it is queued already and every sleeper wakes). Never blocks.
    hand: Callable[[Sleepers, Message], None]
    #: ``end(sleepers, error)``: the subscription ended; wake every sleeper (the
    #: first one raises *error*, when not None, if *direct*). Never blocks.
    end: Callable[[Sleepers, BaseException | None], None]
    #: ``wake(sleepers)``: wake every sleeper with nothing handed over (its
    #: ``sleep`` returns None). Never blocks.
    wake: Callable[[Sleepers], None]
    checkpoint: Callable[[], Awaitable[None]]
    checkpoint_if_cancelled: Callable[[], Awaitable[None]]
    cancel_shielded_checkpoint: Callable[[], Awaitable[None]]


class TrioPrimitives(NamedTuple):
    """trio's low-level calls a direct wake-up uses (see `trio_primitives`)."""

    current_task: Callable[[], Any]
    wait_task_rescheduled: Callable[[Any], Awaitable[Any]]
    reschedule: Callable[..., None]
    succeeded: trio.lowlevel.Abort
    #: See `_trio_trap_type` (None: use ``wait_task_rescheduled``).
    trap_type: Callable[[Any], object] | None


def trio_primitives() -> TrioPrimitives:
    """trio's calls for waking a waiting task directly; only called on trio."""
    import trio  # imported already: only called on trio

    lowlevel = trio.lowlevel
    return TrioPrimitives(
        lowlevel.current_task,
        lowlevel.wait_task_rescheduled,
        lowlevel.reschedule,
        lowlevel.Abort.SUCCEEDED,
        _trio_trap_type(),
    )


def _trio_waits() -> _Waits:
    import outcome  # trio's own dependency, for reschedule()
    import trio  # imported already: only called on trio

    lowlevel = trio.lowlevel
    current_task, wait_task_rescheduled, reschedule, succeeded, trap_type = (
        trio_primitives()
    )

    def aborter(sleepers: Sleepers, task: object) -> None:
        def abort(_: object) -> trio.lowlevel.Abort:
            sleepers.remove(task)  # cancelled: nobody reschedules it now
            return succeeded

        sleepers.owner = task
        sleepers.abort = abort
        sleepers.trap = None if trap_type is None else trap_type(abort)

    def sleep(sleepers: Sleepers) -> Awaitable[None]:
        # Not a coroutine function itself: the caller awaits the wait directly,
        # one frame less per wake-up. (No closure here: its cells would be made
        # on every call.)
        task = current_task()
        sleepers.append(task)
        if sleepers.owner is not task or sleepers.abort is None:
            aborter(sleepers, task)
        trap = sleepers.trap
        if trap is not None:
            return _yield_to_trio(trap)
        abort = sleepers.abort
        assert abort is not None
        return wait_task_rescheduled(abort)  # pragma: no cover - another trio

    value = outcome.Value
    error_outcome = outcome.Error

    def hand(sleepers: Sleepers, message: Message) -> None:
        if trap_type is not None:
            # The task's own trap takes the message as it is (`_yield_to_trio`):
            # no Outcome made and unwrapped per message.
            reschedule(sleepers.pop(0), cast("Any", message))
        else:  # pragma: no cover - another trio
            reschedule(sleepers.pop(0), value(message))

    def end(sleepers: Sleepers, error: BaseException | None) -> None:
        for task in sleepers:
            reschedule(
                task,
                error_outcome(error if error is not None else StopAsyncIteration()),
            )
            error = None
        sleepers.clear()

    def wake(sleepers: Sleepers) -> None:
        for task in sleepers:
            reschedule(task, value(None))
        sleepers.clear()

    return _Waits(
        direct=True,
        sleep=sleep,
        hand=hand,
        end=end,
        wake=wake,
        checkpoint=lowlevel.checkpoint,
        checkpoint_if_cancelled=lowlevel.checkpoint_if_cancelled,
        cancel_shielded_checkpoint=lowlevel.cancel_shielded_checkpoint,
    )


def _trio_trap_type() -> Callable[[Any], object] | None:
    """The message ``trio.lowlevel.wait_task_rescheduled`` yields to the scheduler.

    A consumer that waits once per message yields it itself (`_yield_to_trio`),
    one made per subscription and reused: ``wait_task_rescheduled`` makes a
    coroutine, a generator and that message (with its ``__dict__``) per wait,
    and they live until the task wakes, a thousand of them at once with a task
    per subscription, which is what keeps the garbage collector busy. None when
    trio has it elsewhere (then its public function is used).
    """
    try:
        from trio._core._traps import WaitTaskRescheduled
    except ImportError:  # pragma: no cover - another trio
        return None
    return cast("Callable[[Any], object]", WaitTaskRescheduled)


@types.coroutine
def _yield_to_trio(trap: object) -> Generator[object, Any, Any]:
    """``wait_task_rescheduled`` with a trap made already (see `_trio_trap_type`).

    trio's scheduler sends the task what it was rescheduled with, as it is: a
    Message handed over by the producer (`_Waits.hand`), returned as it is, or an
    Outcome (the end of the subscription, a cancellation), unwrapped.
    """
    handed = yield trap
    if type(handed) is Message:
        return handed
    return handed.unwrap()


def _asyncio_waits() -> _Waits:
    import asyncio  # running it: loaded already (not imported on trio: memory)

    get_running_loop = asyncio.get_running_loop

    def sleep(sleepers: Sleepers) -> Awaitable[None]:
        # The caller awaits the future itself. A cancelled one stays in the list
        # until the next wake-up or wait, which drops it (it is done).
        if sleepers:
            sleepers[:] = [future for future in sleepers if not future.done()]
        future: asyncio.Future[None] = get_running_loop().create_future()
        sleepers.append(future)
        return future

    def wake(sleepers: Sleepers, _: object = None) -> None:
        for future in sleepers:
            if not future.done():
                future.set_result(None)
        sleepers.clear()

    return _Waits(
        direct=False,
        sleep=sleep,
        hand=wake,
        end=wake,
        wake=wake,
        checkpoint=anyio.lowlevel.checkpoint,
        checkpoint_if_cancelled=anyio.lowlevel.checkpoint_if_cancelled,
        cancel_shielded_checkpoint=anyio.lowlevel.cancel_shielded_checkpoint,
    )


_BACKENDS: dict[bool, _Waits] = {}


def running_waits() -> _Waits:
    """The `_Waits` of the running backend (trio's own on trio, else asyncio's)."""
    on_trio = running_on_trio()
    waits = _BACKENDS.get(on_trio)
    if waits is None:
        waits = _BACKENDS[on_trio] = _trio_waits() if on_trio else _asyncio_waits()
    return waits


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
class _HubQueue(collections.deque[Message]):
    """The channel of every subscription whose listener the hub calls: always empty.

    Their messages go to the hub's queue, never here; one shared instance saves
    an empty deque (about 600 bytes) per subscription, and appending raises
    rather than mixing subscriptions' messages.
    """

    def append(self, item: Message) -> None:
        raise MqttInternalError("a hub subscription's channel took a message")


_HUB_QUEUE: Final = _HubQueue()


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
    #: Consumers waiting for a message or the end: trio tasks blocked in
    #: ``wait_task_rescheduled`` on trio, futures on asyncio (see `_Waits`).
    _sleepers: Sleepers = attrs.field(init=False, factory=Sleepers, repr=False)
    #: The running backend's primitives, looked up by the first consumer.
    _waits: _Waits | None = attrs.field(init=False, default=None, repr=False)
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
    #: Made when first needed (an empty deque costs about 600 bytes, a thousand
    #: subscriptions most of which never park).
    _parked: collections.deque[list[Any]] | None = attrs.field(
        init=False, default=None, repr=False
    )
    _intake: _Intake | None = attrs.field(init=False, default=None, repr=False)
    #: Why the subscription ended, when the broker ended it (its iterator raises).
    _error: BaseException | None = attrs.field(init=False, default=None, repr=False)

    def _share(self, listener: Listener, hub: Hub) -> None:
        """Deliver through *hub*, which calls the synchronous *listener*."""
        self._listener = listener
        self._hub = hub
        self._queue = _HUB_QUEUE

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
        self._delivered += 1
        sleepers = self._sleepers
        if not sleepers:
            queue.append(message)
            return True
        waits = self._waits
        assert waits is not None  # set by whoever went to sleep
        if not waits.direct:
            queue.append(message)
        elif queue:  # (never: a consumer waits only on an empty channel)
            queue.append(message)
            message = queue.popleft()
        waits.hand(sleepers, message)
        return True

    def _park(self, message: Message) -> None:
        size = 0
        intake = self._intake
        if not message.qos and intake is not None:
            size = len(message.payload) + len(message.topic) + PARKED_OVERHEAD
            intake.used += size
        parked = self._parked
        if parked is None:
            parked = self._parked = collections.deque()
        parked.append([message, None, size, self])

    def _hold_last(self, hold: Hold) -> None:
        """The message parked last withholds *hold* until it is taken."""
        hold.waiting += 1
        if self._hub is not None:
            self._hub.queue[-1][1] = hold
        else:
            assert self._parked is not None  # _park came first
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
        """The subscription ended: wake every waiting consumer."""
        sleepers = self._sleepers
        if sleepers:
            waits = self._waits
            assert waits is not None  # set by whoever went to sleep
            # (A consumer waits only on an empty channel: the end is next.)
            waits.end(sleepers, self._ended() if waits.direct else None)

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

    def _backend(self) -> _Waits:
        waits = self._waits = running_waits()
        return waits

    async def _settle(self, waits: _Waits) -> bool:
        """Move parked messages in (True) or take the end (False), after a cancel point."""
        await waits.checkpoint_if_cancelled()
        if not self._readable:
            return False
        if self._parked:
            self._refill()
            return True
        if self._queue:
            return True
        error = self._ended()
        if error is not None:
            raise error
        return False

    async def receive(self) -> Message:
        """Wait for the next message.

        Raises:
            anyio.EndOfStream: the subscription ended (unsubscribed or client closed).
            SubscribeError: the broker refused it again after a reconnect.
        """
        waits = self._waits or self._backend()
        queue = self._queue
        if queue:
            await waits.checkpoint_if_cancelled()
        slept = False
        while not queue:
            if self._open and not self._parked:
                try:
                    handed: Message | None = await waits.sleep(self._sleepers)
                except StopAsyncIteration:
                    raise anyio.EndOfStream from None
                if handed is not None:
                    return handed  # the wait was the checkpoint
                slept = True
            elif not await self._settle(waits):
                raise anyio.EndOfStream
        message = queue.popleft()
        if not slept:
            # A schedule point that cannot lose the message it returns.
            await waits.cancel_shielded_checkpoint()
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

    def __anext__(self) -> Awaitable[Message]:
        waits = self._waits or self._backend()
        if waits.direct and not self._queue and self._open and not self._parked:
            # Nothing queued (trio): the wait itself is what the iteration awaits,
            # and its result is the message the producer hands over.
            self._streak = 1
            return waits.sleep(self._sleepers)
        return self._next(waits)

    async def _next(self, waits: _Waits) -> Message:
        # Drain what is queued without a task switch, a full checkpoint only every
        # _STREAK messages: a task switch per message would cost more than the
        # message itself. Cancellation is still checked before each queued message
        # is taken, so a cancelled iteration never loses one; with nothing queued
        # the wait is the checkpoint.
        queue = self._queue
        if queue:
            if self._streak < _STREAK:
                await waits.checkpoint_if_cancelled()
            else:
                self._streak = 0
                await waits.checkpoint()
        while not queue:
            if self._open and not self._parked:
                self._streak = 0
                handed: Message | None = await waits.sleep(self._sleepers)
                if handed is not None:
                    self._streak = 1
                    return handed
            elif not await self._settle(waits):
                raise StopAsyncIteration
        self._streak += 1
        return queue.popleft()

    def statistics(self) -> SubscriptionStatistics:
        """Counters of this subscription."""
        return SubscriptionStatistics(
            topic_filter=self.topic_filter,
            queued=len(self._queue),
            delivered=self._delivered,
            dropped=self._dropped,
            buffer=self.buffer,
            parked=(
                len(self._parked or ()) if self._hub is None else self._hub.parked(self)
            ),
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
