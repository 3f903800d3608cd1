"""The session's journal: its durable state changes, as data (sans-IO).

A `ClientSession` made with ``journal=True`` records every change of the state
that must survive the process (outgoing QoS 1/2 messages and their progress,
incoming QoS 2 ids awaiting PUBREL, the subscriptions) as a `SessionChange`, in
the order it made them. The engine takes them with ``take_journal()`` and hands
them to a session store *before* it writes the bytes that follow them, so that
what left the process is always known to the store. The core itself never
touches a store.

A store keeps the result of applying the changes in order (see `StoredSession`);
an earlier process's state is given back to a new session with
``ClientSession.restore``.
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING, NamedTuple, final

import attrs

if TYPE_CHECKING:
    from ._packets import PublishPacket, TopicSubscription

__all__ = ["ChangeKind", "SessionChange", "StoredSession"]


@final
class ChangeKind(enum.Enum):
    """What a `SessionChange` records."""

    STORED = "stored"
    """An outgoing QoS 1/2 PUBLISH goes out (``packet`` is it, DUP=0, full topic)."""
    RELEASED = "released"
    """The broker received our QoS 2 PUBLISH (PUBREC): PUBREL is its next packet."""
    COMPLETED = "completed"
    """An outgoing message is done (PUBACK, PUBCOMP, refused or given up)."""
    RECEIVED = "received"
    """An incoming QoS 2 id is ours until the broker's PUBREL (PUBREC goes out)."""
    FORGOTTEN = "forgotten"
    """An incoming QoS 2 id was released (PUBCOMP goes out) or its session lost."""
    SUBSCRIBED = "subscribed"
    """A filter was subscribed (``subscription`` is it)."""
    UNSUBSCRIBED = "unsubscribed"
    """A filter was unsubscribed (``subscription.filter`` names it)."""


@final
class SessionChange(NamedTuple):
    """One change of the durable session state (see `ChangeKind`)."""

    kind: ChangeKind
    """What changed."""
    packet_id: int = 0
    """The packet id it concerns (0 for subscriptions)."""
    packet: PublishPacket | None = None
    """The outgoing message, for `ChangeKind.STORED`."""
    subscription: TopicSubscription | None = None
    """The filter and its options, for (UN)SUBSCRIBED."""


@final
@attrs.frozen(kw_only=True)
class StoredSession:
    """A session's durable state, as a store kept it (the changes applied in order)."""

    outgoing: tuple[PublishPacket, ...] = ()
    """Outgoing QoS 1/2 messages not completed, in publish order."""
    released: tuple[int, ...] = ()
    """Ids of the outgoing QoS 2 messages the broker received (PUBREC), in order."""
    incoming_qos2: tuple[int, ...] = ()
    """Incoming QoS 2 ids awaiting the broker's PUBREL."""
    subscriptions: tuple[TopicSubscription, ...] = ()
    """The subscribed filters with their options, in subscription order."""

    @property
    def empty(self) -> bool:
        """Nothing is stored."""
        return not (
            self.outgoing or self.released or self.incoming_qos2 or self.subscriptions
        )


def apply_changes(
    state: StoredSession, changes: list[SessionChange] | tuple[SessionChange, ...]
) -> StoredSession:
    """Return *state* with *changes* applied in order (the reference semantics)."""
    outgoing = {p.packet_id: p for p in state.outgoing}
    released = dict.fromkeys(state.released)
    incoming = dict.fromkeys(state.incoming_qos2)
    subscriptions = {s.filter: s for s in state.subscriptions}
    for change in changes:
        kind, packet_id = change.kind, change.packet_id
        if kind is ChangeKind.STORED:
            assert change.packet is not None
            outgoing.pop(packet_id, None)
            released.pop(packet_id, None)
            outgoing[packet_id] = change.packet
        elif kind is ChangeKind.RELEASED:
            if packet_id in outgoing:  # (the session releases only its own)
                released[packet_id] = None
        elif kind is ChangeKind.COMPLETED:
            outgoing.pop(packet_id, None)
            released.pop(packet_id, None)
        elif kind is ChangeKind.RECEIVED:
            incoming[packet_id] = None
        elif kind is ChangeKind.FORGOTTEN:
            incoming.pop(packet_id, None)
        else:
            assert change.subscription is not None
            topic_filter = change.subscription.filter
            subscriptions.pop(topic_filter, None)
            if kind is ChangeKind.SUBSCRIBED:
                subscriptions[topic_filter] = change.subscription
    return StoredSession(
        outgoing=tuple(outgoing.values()),
        released=tuple(released),
        incoming_qos2=tuple(incoming),
        subscriptions=tuple(subscriptions.values()),
    )
