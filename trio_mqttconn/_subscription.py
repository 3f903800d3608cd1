"""Subscription: a bounded memory channel of messages for one topic filter.

The task reading the connection produces into the channel (it owns the send side and
closes it when the subscription ends, so ``async for`` finishes without sentinels); the
application, or a dispatcher task running its listener, consumes. What happens when the channel is full is
the subscription's choice: ``"wait"`` (lossless: the reader pauses, which is where TCP
backpressure towards the broker starts) or ``"drop_oldest"`` (the oldest queued message
is discarded and counted).
"""

from __future__ import annotations

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
        """Put *message* without waiting; False when the reader must wait for room."""
        if not self._active:
            return True
        hub = self._hub
        if hub is not None:
            try:
                hub.send_nowait((self, message))
            except anyio.WouldBlock:
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

    async def _put(self, message: Message) -> None:
        """Put *message*, waiting for room (lossless overflow policy)."""
        try:
            if self._hub is not None:
                await self._hub.send((self, message))
            else:
                await self._send.send(message)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            self._active = False
            return
        self._delivered += 1

    def _close(self) -> None:
        """End the subscription: iteration stops once queued messages are consumed."""
        self._active = False
        self._send.close()

    # -- consumer side -------------------------------------------------------------

    async def receive(self) -> Message:
        """Wait for the next message.

        Raises:
            anyio.EndOfStream: the subscription ended (unsubscribed or client closed).
        """
        try:
            return await self._receive.receive()
        except anyio.EndOfStream:
            self._receive.close()
            raise

    def receive_nowait(self) -> Message:
        """Return a queued message without waiting.

        Raises:
            anyio.WouldBlock: nothing is queued.
            anyio.EndOfStream: the subscription ended and nothing is queued.
        """
        return self._receive.receive_nowait()

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
                raise StopAsyncIteration from None
            else:
                self._streak += 1
                return message
        self._streak = 0
        try:
            return await self._receive.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            self._receive.close()
            raise StopAsyncIteration from None

    def statistics(self) -> SubscriptionStatistics:
        """Counters of this subscription."""
        return SubscriptionStatistics(
            topic_filter=self.topic_filter,
            queued=self._receive.statistics().current_buffer_used,
            delivered=self._delivered,
            dropped=self._dropped,
            buffer=self.buffer,
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
