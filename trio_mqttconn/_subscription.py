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
from typing import TYPE_CHECKING, Literal, Self, TypeAlias, final

import anyio
import attrs

from ._message import Message

if TYPE_CHECKING:
    from anyio.streams.memory import (
        MemoryObjectReceiveStream,
        MemoryObjectSendStream,
    )

    from ._client import MqttClient
    from ._engine.link import Hold
    from ._enums import QoS
    from ._packets import TopicSubscription

__all__ = ["Listener", "Overflow", "Subscription", "SubscriptionStatistics"]

#: Messages an iterator may hand out without a full checkpoint.
_STREAK = 64

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
    _send: MemoryObjectSendStream[Message] = attrs.field(init=False, repr=False)
    _receive: MemoryObjectReceiveStream[Message] = attrs.field(init=False, repr=False)
    _delivered: int = attrs.field(init=False, default=0, repr=False)
    _dropped: int = attrs.field(init=False, default=0, repr=False)
    _active: bool = attrs.field(init=False, default=True, repr=False)
    _streak: int = attrs.field(init=False, default=0, repr=False)
    #: For a synchronous listener: the client's shared dispatch channel, which
    #: carries (subscription, message) pairs to one task for all such listeners.
    _hub: MemoryObjectSendStream[tuple[Subscription, Message]] | None = attrs.field(
        init=False, default=None, repr=False
    )
    _listener: Listener | None = attrs.field(init=False, default=None, repr=False)
    #: ``manual_ack=True``: QoS 1/2 acknowledgements wait for ``message.ack()``.
    _manual_ack: bool = attrs.field(default=False, repr=False, alias="manual_ack")
    #: Messages that found the channel full: [message, hold, QoS 0 bytes].
    _parked: collections.deque[list[object]] = attrs.field(
        init=False, factory=collections.deque, repr=False
    )
    _intake: _Intake | None = attrs.field(init=False, default=None, repr=False)
    #: Why the subscription ended, when the broker ended it (its iterator raises).
    _error: BaseException | None = attrs.field(init=False, default=None, repr=False)
    #: Called once a hub subscription parked a message (the hub refills it).
    _on_park: Callable[[Subscription], None] | None = attrs.field(
        init=False, default=None, repr=False
    )

    def __attrs_post_init__(self) -> None:
        if self.overflow not in ("wait", "drop_oldest"):
            raise ValueError(
                f"overflow must be 'wait' or 'drop_oldest', not {self.overflow!r}"
            )
        if self.buffer < 1:
            raise ValueError(f"buffer must be at least 1, not {self.buffer!r}")
        self._send, self._receive = anyio.create_memory_object_stream[Message](
            self.buffer
        )

    # -- producer side (the task reading the connection) -------------------------

    def _offer(self, message: Message) -> bool:
        """Put *message* without waiting; False when it was parked (channel full)."""
        if not self._active:
            return True
        if self._parked:
            # Behind what is parked already: order is kept.
            self._park(message)
            return False
        hub = self._hub
        if hub is not None:
            try:
                hub.send_nowait((self, message))
            except anyio.WouldBlock:
                self._park(message)
                return False
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                self._active = False
                return True
            self._delivered += 1
            return True
        try:
            self._send.send_nowait(message)
        except anyio.WouldBlock:
            if self.overflow == "wait":
                self._park(message)
                return False
            try:
                self._receive.receive_nowait()
            except anyio.WouldBlock:  # pragma: no cover - a full buffer has one
                pass
            self._dropped += 1
            self._send.send_nowait(message)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            # The consumer closed its end: nobody will read this subscription again.
            self._active = False
            return True
        self._delivered += 1
        return True

    def _park(self, message: Message) -> None:
        size = 0
        intake = self._intake
        if not message.qos and intake is not None:
            size = len(message.payload) + len(message.topic)
            intake.used += size
        self._parked.append([message, None, size])
        if len(self._parked) == 1 and self._on_park is not None:
            self._on_park(self)

    def _hold_last(self, hold: Hold) -> None:
        """The message parked last withholds *hold* until it is taken."""
        hold.waiting += 1
        self._parked[-1][1] = hold

    def _refill(self) -> None:
        """Move parked messages into the channel while it has room."""
        parked = self._parked
        hub = self._hub
        while parked:
            entry = parked[0]
            message = entry[0]
            assert isinstance(message, Message)
            try:
                if hub is not None:
                    hub.send_nowait((self, message))
                else:
                    self._send.send_nowait(message)
            except anyio.WouldBlock:
                return
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                self._drop_parked()
                return
            parked.popleft()
            self._delivered += 1
            self._let_go(entry)

    def _let_go(self, entry: list[object]) -> None:
        hold = entry[1]
        if hold is not None:
            hold.release()  # type: ignore[attr-defined]  # a Hold
        size = entry[2]
        if size and self._intake is not None:
            self._intake.taken(size)  # type: ignore[arg-type]  # an int

    def _drop_parked(self) -> None:
        """Nobody will take what is parked: let its acknowledgements go."""
        parked = self._parked
        while parked:
            self._let_go(parked.popleft())

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
        self._drop_parked()
        self._send.close()

    # -- consumer side -------------------------------------------------------------

    async def receive(self) -> Message:
        """Wait for the next message.

        Raises:
            anyio.EndOfStream: the subscription ended (unsubscribed or client closed).
            SubscribeError: the broker refused it again after a reconnect.
        """
        try:
            message = await self._receive.receive()
        except anyio.EndOfStream:
            self._receive.close()
            error = self._ended()
            if error is not None:
                raise error from None
            raise
        if self._parked:
            self._refill()
        return message

    def receive_nowait(self) -> Message:
        """Return a queued message without waiting.

        Raises:
            anyio.WouldBlock: nothing is queued.
            anyio.EndOfStream: the subscription ended and nothing is queued.
        """
        message = self._receive.receive_nowait()
        if self._parked:
            self._refill()
        return message

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> Message:
        # Drain what is queued with receive_nowait, a full checkpoint only every
        # _STREAK messages: a task switch per message would cost more than the
        # message itself. Cancellation is still checked before each message is
        # taken, so a cancelled iteration never loses one.
        if self._streak < _STREAK:
            await anyio.lowlevel.checkpoint_if_cancelled()
            try:
                message = self._receive.receive_nowait()
            except anyio.WouldBlock:
                pass
            except (anyio.EndOfStream, anyio.ClosedResourceError):
                self._receive.close()
                error = self._ended()
                if error is not None:
                    raise error from None
                raise StopAsyncIteration from None
            else:
                self._streak += 1
                if self._parked:
                    self._refill()
                return message
        self._streak = 0
        try:
            message = await self._receive.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            self._receive.close()
            error = self._ended()
            if error is not None:
                raise error from None
            raise StopAsyncIteration from None
        if self._parked:
            self._refill()
        return message

    def statistics(self) -> SubscriptionStatistics:
        """Counters of this subscription."""
        return SubscriptionStatistics(
            topic_filter=self.topic_filter,
            queued=self._receive.statistics().current_buffer_used,
            delivered=self._delivered,
            dropped=self._dropped,
            buffer=self.buffer,
            parked=len(self._parked),
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
        self._receive.close()
