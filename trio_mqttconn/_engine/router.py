"""Router: subscriptions, the delivery of received messages, listeners.

Theory of operation
-------------------
The reader hands every received message to `Router.deliver`, which never waits:
the subscription tree (or the MQTT 5 subscription identifiers, checked against
the topic: a resumed session may carry an earlier process's) names the matching
subscriptions, remembered by (topic, identifiers) until a subscription comes or
goes, and each gets the message with `Subscription._offer` (on trio a consumer task
waiting on an empty channel is handed the message itself). A subscription whose
channel is full *parks* the message (``overflow="wait"``); for QoS 1/2 the message's
PUBACK/PUBREC is then withheld (a `Hold` the link keeps in arrival order) until the
consumer took it, so the broker stops sending at our Receive Maximum. Parked QoS 0
bytes count against the client's intake; past its limit the reader stops reading
until consumers caught up (TCP backpressure), and says so once at WARNING.
Subscriptions with ``manual_ack=True`` get their own copy of a QoS 1/2 message whose
``ack()`` releases the hold.

A QoS 2 message's hold is also kept by packet id (`Router.qos2_held`) until it is
released: when the connection drops and the broker re-delivers the message on a
resumed session, the session answers with a PUBREC but does not deliver it again
(it is parked here already); that PUBREC is withheld the same way. Exactly once.

Synchronous listeners (``overflow="wait"``) share one channel and one dispatcher
task (the hub); a hub subscription that parked is refilled by that task. While
that task sleeps on an empty queue, `Hub.put` calls the listener at once, in the
reader (up to `_STREAK` calls in a row): nothing waits before it, so the order is
the same, and a message that arrives in a read of its own costs no task switch.
A QoS 1/2 message's acknowledgement then goes out after its listener returned.
"""

from __future__ import annotations

import collections
import contextvars
import inspect
import logging
from typing import TYPE_CHECKING, Any

import attrs

from .._subscription import (
    _STREAK,
    PARKED_OVERHEAD,
    Sleepers,
    Subscription,
    _Intake,
    _Waits,
    running_waits,
)
from .._subtree import SubscriptionTree
from .._topics import topic_matches
from .link import Hold, make_ack

if TYPE_CHECKING:
    from .._client import MqttClient
    from .._message import Message
    from .._packets import TopicSubscription
    from .._properties import Properties
    from .._subscription import Listener

__all__ = ["HUB_BUFFER", "RUNNING_IN", "Hub", "Router"]

_LOGGER = logging.getLogger("trio_mqttconn.client")
#: Capacity of the channel shared by synchronous listeners.
HUB_BUFFER = 1024
#: Topics the route cache remembers before it starts over.
_ROUTE_CACHE_SIZE = 4096
#: The client whose own task (a listener's dispatcher) is running, if any.
RUNNING_IN: contextvars.ContextVar[MqttClient | None] = contextvars.ContextVar(
    "trio_mqttconn_running_in", default=None
)


def _without(
    subs: tuple[Subscription, ...], sub: Subscription
) -> tuple[Subscription, ...]:
    """*subs* without *sub* (compared by identity)."""
    return tuple([other for other in subs if other is not sub])


def _shared(
    subs: tuple[Subscription, ...], siblings: tuple[Subscription, ...]
) -> tuple[Subscription, ...]:
    """*siblings* itself when it holds the same subscriptions as *subs*.

    The subscriptions of a filter normally share its identifier: `by_id` and
    `by_filter` then keep one tuple between them.
    """
    return siblings if subs == siblings else subs


@attrs.define(eq=False)
class Router:
    """Where received messages go (see the module docstring)."""

    intake: _Intake
    #: Without a cache of its own: `routes` remembers what it found.
    tree: SubscriptionTree[Subscription] = attrs.Factory(
        lambda: SubscriptionTree(cache_size=0)
    )
    subscriptions: list[Subscription] = attrs.Factory(list)
    #: The live subscriptions by exact filter. Tuples (replaced when one comes or
    #: goes), here and in `by_id`: a one-element list costs 32 bytes more, and a
    #: client with 1,000 filters keeps 2,000 of them.
    by_filter: dict[str, tuple[Subscription, ...]] = attrs.Factory(dict)
    catch_all: list[Subscription] = attrs.Factory(list)
    hub: Hub | None = None
    raw_filters: dict[str, tuple[TopicSubscription, Properties]] = attrs.Factory(dict)
    filter_ids: dict[str, int] = attrs.Factory(dict)
    by_id: dict[int, tuple[Subscription, ...]] = attrs.Factory(dict)
    next_sub_id: int = 1
    #: Holds of received QoS 2 messages by packet id, until released.
    qos2_held: dict[int, Hold] = attrs.Factory(dict)
    #: topic -> (its subscription identifiers, the subscriptions it goes to but
    #: for `catch_all`); emptied whenever a subscription comes or goes. Keyed by
    #: the topic alone (a ``(topic, identifiers)`` key was a tuple made and hashed
    #: per message): the identifiers are checked against the remembered ones.
    routes: dict[str, tuple[tuple[int, ...], list[Subscription]]] = attrs.Factory(dict)

    # -- registry ------------------------------------------------------------------

    def register(self, sub: Subscription) -> None:
        """Route matching messages to *sub* from now on."""
        self.routes.clear()
        sub._intake = self.intake
        self.subscriptions.append(sub)
        topic_filter = sub.topic_filter
        by_filter = self.by_filter
        siblings = by_filter[topic_filter] = (*by_filter.get(topic_filter, ()), sub)
        self.tree.add(topic_filter, sub)
        identifier = sub._identifier
        if identifier:
            self.filter_ids[topic_filter] = identifier
            by_id = self.by_id
            by_id[identifier] = _shared((*by_id.get(identifier, ()), sub), siblings)

    def unregister(self, sub: Subscription) -> bool:
        """Forget *sub*; True when no other subscription uses its filter."""
        if sub in self.catch_all:
            self.catch_all.remove(sub)
            return False
        if sub not in self.subscriptions:
            return False
        self.routes.clear()
        self.subscriptions.remove(sub)
        topic_filter = sub.topic_filter
        siblings = _without(self.by_filter[topic_filter], sub)
        if siblings:
            self.by_filter[topic_filter] = siblings
        else:
            del self.by_filter[topic_filter]
        self.tree.remove(topic_filter, sub)
        identifier = sub._identifier
        if identifier:
            subs = _without(self.by_id.get(identifier, ()), sub)
            if subs:
                self.by_id[identifier] = _shared(subs, siblings)
            else:
                self.by_id.pop(identifier, None)
                self.filter_ids.pop(topic_filter, None)
        return not siblings

    def siblings(self, topic_filter: str) -> list[Subscription]:
        """The live subscriptions on exactly *topic_filter* (a copy)."""
        return list(self.by_filter.get(topic_filter, ()))

    def identifier_for(self, topic_filter: str) -> int:
        """The subscription identifier of *topic_filter* (shared by its subscriptions)."""
        identifier = self.filter_ids.get(topic_filter, 0)
        if not identifier:
            identifier = self.next_sub_id
            self.next_sub_id = identifier % 268_435_455 + 1
        return identifier

    def clear(self) -> None:
        """End every subscription (the client closed)."""
        for sub in self.subscriptions:
            sub._release()
        for sub in self.catch_all:
            sub._close()
        self.subscriptions.clear()
        self.by_filter.clear()
        self.catch_all.clear()
        if self.hub is not None:
            self.hub.close()
        self.raw_filters.clear()
        self.tree.clear()
        self.by_id.clear()
        self.filter_ids.clear()
        self.qos2_held.clear()
        self.routes.clear()
        room = self.intake.room
        if room is not None:
            self.intake.room = None
            room.set()

    def session_lost(self) -> None:
        """The broker has no session: its QoS 2 ids are forgotten on both sides."""
        self.qos2_held.clear()

    # -- delivery ------------------------------------------------------------------

    def route(self, message: Message) -> list[Subscription]:
        """The subscriptions *message* goes to.

        On MQTT 5 the message's subscription identifiers name them, but only the
        ones whose filter matches the topic count: a resumed session may hold
        subscriptions of an earlier process whose identifiers this process gives
        out again. When none of the named ones matches (or an identifier is
        unknown to this process), the subscription tree decides.
        """
        topic = message.topic
        identifiers = message.properties.subscription_identifiers
        known = self.routes.get(topic)
        if known is not None and (known[0] is identifiers or known[0] == identifiers):
            found = known[1]
        else:
            found = self._route(topic, identifiers)
        if self.catch_all:
            return [*self.catch_all, *found]
        return found

    def _route(self, topic: str, identifiers: tuple[int, ...]) -> list[Subscription]:
        """`route` without `catch_all`, remembered until the subscriptions change."""
        found: list[Subscription] | None = None
        if identifiers and self.by_id:
            found = self._by_identifiers(identifiers, topic)
        if found is None:
            found = self.tree.match(topic)
        routes = self.routes
        if len(routes) >= _ROUTE_CACHE_SIZE:
            routes.clear()
        routes[topic] = (identifiers, found)
        return found

    def _by_identifiers(
        self, identifiers: tuple[int, ...], topic: str
    ) -> list[Subscription] | None:
        """The subscriptions named by *identifiers* whose filter matches *topic*.

        None (ask the tree) when an identifier is unknown or names no subscription
        whose filter matches: the identifier may be a stale subscription's.
        """
        by_id = self.by_id
        found: list[Subscription] = []
        for identifier in identifiers:
            subs = by_id.get(identifier)
            if not subs:
                return None
            # Subscriptions of one identifier share one filter: one check.
            if not self._matches(subs[0].topic_filter, topic):
                return None
            for sub in subs:
                if sub not in found:
                    found.append(sub)
        return found

    def _matches(self, topic_filter: str, topic: str) -> bool:
        """`topic_matches` (once per route: `routes` remembers the result)."""
        return topic_filter == topic or topic_matches(topic_filter, topic)

    def deliver(self, message: Message, held: dict[int, Hold]) -> None:
        """Hand *message* to every matching subscription without waiting.

        A QoS 1/2 message that some subscription parked, or that a manually
        acknowledging one received, gets a `Hold` in *held* (by packet id): its
        acknowledgement is withheld until every holder let it go.
        """
        qos = message.qos
        hold: Hold | None = None
        # `route`, inlined (once per message).
        topic = message.topic
        identifiers = message.properties.subscription_identifiers
        known = self.routes.get(topic)
        if known is not None and (known[0] is identifiers or known[0] == identifiers):
            targets = known[1]
        else:
            targets = self._route(topic, identifiers)
        if self.catch_all:
            targets = [*self.catch_all, *targets]
        for sub in targets:
            copy = message
            if qos and sub._manual_ack:
                if hold is None:
                    hold = self._hold(message, held)
                copy = attrs.evolve(message, acker=make_ack(hold))
            if not sub._offer(copy):
                if qos:
                    if hold is None:
                        hold = self._hold(message, held)
                    sub._hold_last(hold)
                elif not self.intake.warned and self.intake.is_full():
                    self.intake.warned = True
                    _LOGGER.warning(
                        "the subscription to %r is not keeping up: %d bytes of QoS 0 "
                        "messages wait for it and reading from the broker pauses "
                        "until it catches up (intake_limit=%d)",
                        sub.topic_filter,
                        self.intake.used,
                        self.intake.limit,
                    )

    def _hold(self, message: Message, held: dict[int, Hold]) -> Hold:
        packet_id = message.packet_id
        assert packet_id is not None
        hold = Hold(packet_id, message.qos)
        held[packet_id] = hold
        if message.qos == 2:
            self.qos2_held[packet_id] = hold
            hold.table = self.qos2_held
        return hold

    # -- synchronous listeners -------------------------------------------------------


@attrs.define(eq=False)
class Hub:
    """The queue of every synchronous listener, and the task that calls them.

    A plain deque of ``[message, hold, QoS 0 bytes, subscription]``: the reader
    appends without waiting and wakes the task only when it sleeps (with the
    backend's own primitives, as a subscription's consumer: no Event per wait).
    Entries beyond `capacity` count as parked: a QoS 1/2 message's acknowledgement
    is withheld until the task took it, a QoS 0 message's bytes count against the
    intake.

    While the task sleeps on an empty queue, `put` calls the listener itself (see
    the module docstring). What such a call raises, or an awaitable it returns, is
    handed to the task: it raises the error (ending the client, as when it called
    the listener itself) or awaits the awaitable, and later messages queue behind.
    """

    intake: _Intake
    capacity: int = HUB_BUFFER
    #: ``(message, hold, QoS 0 bytes, subscription)``: a tuple when it fitted, a
    #: list (which may get a hold) when parked. ``(awaitable, None, 0, None)``: an
    #: awaitable a listener called by `put` returned, for the task to await.
    queue: collections.deque[Any] = attrs.Factory(collections.deque)
    #: The task, while it waits for the queue (see `_Waits`).
    _sleepers: Sleepers = attrs.Factory(Sleepers)
    _waits: _Waits | None = None
    _closed: bool = False
    #: Listener calls `put` made since the task last slept: after `_STREAK` the
    #: task takes over, and its checkpoints let other tasks run.
    _called: int = 0
    #: What a listener called by `put` raised, for the task to raise.
    _failure: BaseException | None = None

    def put(self, sub: Subscription, message: Message) -> bool:
        """Queue *message* for *sub*'s listener; False when it is parked.

        Calls the listener right away instead when the task sleeps on an empty
        queue (True then).
        """
        queue = self.queue
        if not queue and self._sleepers and self._called < _STREAK:
            listener = sub._listener
            if listener is not None and sub._client is not None:
                self._called += 1
                self._call(listener, message)
                return True
        fits = len(queue) < self.capacity
        if fits:
            queue.append((message, None, 0, sub))
        else:
            # Parked: a list, so that a withheld ack can be attached to it.
            size = 0
            if not message.qos:
                size = len(message.payload) + len(message.topic) + PARKED_OVERHEAD
                self.intake.used += size
            queue.append([message, None, size, sub])
        if self._sleepers:
            self._wake()
        return fits

    def _call(self, listener: Listener, message: Message) -> None:
        """Call *listener* in the reader; the task gets what it cannot handle."""
        try:
            result = listener(message)
        except BaseException as exc:  # raised by the task, which ends the client
            self._failure = exc
            self._called = _STREAK  # nothing more is called here
            self._wake()
            return
        if result is not None and inspect.isawaitable(result):
            self.queue.append((result, None, 0, None))
            self._wake()

    def _wake(self) -> None:
        waits = self._waits
        assert waits is not None  # set by the task before it slept
        waits.wake(self._sleepers)

    def parked(self, sub: Subscription) -> int:
        """How many of *sub*'s messages wait beyond the capacity."""
        return sum(
            1
            for index, entry in enumerate(self.queue)
            if index >= self.capacity and entry[3] is sub
        )

    def close(self) -> None:
        """No more messages: the task ends once it has called what is queued."""
        self._closed = True
        if self._sleepers:
            self._wake()

    async def run(self, client: MqttClient) -> None:
        """Call the listeners, in order (the hub's task).

        Checkpoints every _STREAK messages (a task switch per message would cost
        more than most listeners). A listener of an unsubscribed subscription is
        not called again.
        """
        RUNNING_IN.set(client)
        queue = self.queue
        intake = self.intake
        waits = self._waits = running_waits()
        sleepers = self._sleepers
        streak = 0
        while True:
            failure = self._failure
            if failure is not None:
                self._failure = None
                raise failure
            if not queue:
                if self._closed:
                    return
                self._called = 0
                await waits.sleep(sleepers)
                streak = 0
                continue
            message, hold, size, sub = queue.popleft()
            if sub is None:
                # An awaitable returned by a listener that `put` called.
                await message
                continue
            if hold is not None:
                hold.release()
            if size:
                intake.taken(size)
            streak += 1
            if streak >= _STREAK:
                streak = 0
                await waits.checkpoint()
            listener = sub._listener
            if listener is None or sub._client is None:
                if sub._manual_ack:
                    message.ack()  # never handed out: nobody else will
                continue
            result = listener(message)
            if result is not None and inspect.isawaitable(result):
                await result


async def run_listener(
    client: MqttClient, sub: Subscription, listener: Listener
) -> None:
    """Feed *listener* from *sub* (a task per async listener)."""
    RUNNING_IN.set(client)
    async for message in sub:
        result = listener(message)
        if inspect.isawaitable(result):
            await result
