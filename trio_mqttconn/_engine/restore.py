"""Restore: what a new connection owes the old ones (resend, republish, resubscribe).

Theory of operation
-------------------
With the session resumed, the session itself queued the PUBREL and PUBLISH (DUP) of
the previous connection; they are written first. With the session lost, the
subscriptions the broker granted are asked again first (so that messages published
from here on, ours included, reach them), then the QoS 1/2 messages the broker never
took are published again as new messages, each within the send quota. Only then is
the client "ready": publishers and requests wait for it. A task of the link runs
this; it ends with the link, and whatever it did not finish is picked up by the next
one (``MqttClient._unpublished`` keeps the messages to publish again).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._events import PublishCompleted
from .._exceptions import (
    ConnectionLost,
    InvalidStateError,
    ProtocolError,
    PublishError,
)

if TYPE_CHECKING:
    from .._client import MqttClient
    from .._events import Connected
    from .link import Link
    from .operations import Operation

__all__ = ["restore"]


async def restore(
    client: MqttClient, link: Link, connected: Connected, data: bytes
) -> None:
    """Re-send, re-subscribe and re-publish on *link*, then mark the client ready."""
    try:
        if data:
            await link.send(data)
        while client._offline_unsubscribes:
            topic_filter = client._offline_unsubscribes.pop()
            if client._router.siblings(topic_filter):
                continue  # subscribed again meanwhile
            _, packet = link.session.unsubscribe([topic_filter])
            await link.send(packet)
        resubscribed: list[Operation] = []
        if not connected.session_present and client._filter_options():
            resubscribed = await _resubscribe(client, link)
        if connected.discarded or connected.discarded_pubrel or client._unpublished:
            await _republish(client, link, connected)
        client._set_ready(link)
        for op in resubscribed:
            await op.wait()
    except (ConnectionLost, ProtocolError) as exc:
        link.end(exc)
    except InvalidStateError:
        # The broker's DISCONNECT closed the session first: the reader ends the
        # link with the broker's reason.
        pass


async def _republish(client: MqttClient, link: Link, connected: Connected) -> None:
    # The broker lost the session ([MQTT-3.2.2-5]): QoS 2 messages it had received
    # (PUBREC) count as delivered; the rest are published again as new messages.
    pending = client._pending
    for packet_id in connected.discarded_pubrel:
        op = pending.pop(packet_id, None)
        if op is not None:
            op.finish(PublishCompleted(packet_id=packet_id))
    # Kept on the client until the session holds them again, so that a connection
    # lost while they wait for the quota loses none of them.
    waiting = client._unpublished
    waiting[:0] = [
        (packet, pending.pop(packet.packet_id, None))
        for packet in connected.discarded
        if packet.packet_id is not None
    ]
    while waiting:
        while link.session.send_quota <= 0:
            await client._wait_quota()
        packet, op = waiting[0]
        session = link.session
        try:
            new_id, data = session.publish(
                packet.topic,
                packet.payload,
                qos=packet.qos,
                retain=packet.retain,
                properties=packet.properties,
            )
        except ValueError as exc:
            # A stricter broker (lower maximum QoS, no retain, smaller packets):
            # that one publish fails, the client goes on.
            waiting.pop(0)
            if packet.packet_id is not None:
                session.forget(packet.packet_id)
            if op is not None:
                op.fail(
                    exc
                    if isinstance(exc, PublishError)
                    else client._republish_refused(packet.topic, exc)
                )
            continue
        waiting.pop(0)
        if packet.packet_id is not None:
            # Settled with its new publish: both reach the store in one
            # transaction, before the bytes below (the ids differ: see forget).
            session.forget(packet.packet_id)
        if op is not None and new_id is not None:
            op.packet_id = new_id
            pending[new_id] = op
        await link.send(data)


async def _resubscribe(client: MqttClient, link: Link) -> list[Operation]:
    """Send a SUBSCRIBE for every live filter; return the waiters for SUBACK."""
    ops: list[Operation] = []
    for options, properties in client._filter_options().values():
        packet_id, data = link.session.subscribe([options], properties=properties)
        op = client._new_operation(packet_id, request=True, topic_filter=options.filter)
        client._pending[packet_id] = op
        ops.append(op)
        await link.send(data)
    return ops
