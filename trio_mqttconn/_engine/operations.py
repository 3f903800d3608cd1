"""Operations: callers waiting for the broker's answer, and the publish path.

Theory of operation
-------------------
A QoS 1/2 publish, a SUBSCRIBE or an UNSUBSCRIBE is an `Operation`: an event and a
result, kept by packet id in ``MqttClient._pending`` until the session reports the
answer. Packet ids come from the session, which never hands out an id that a
pending publish, subscribe or unsubscribe still uses. Every session call goes
through the ready `Link`; a caller that wakes after its link ended starts over on
the next one.

Cancellation: a caller is only cancelled *before* the session produced its packet
(``checkpoint_if_cancelled`` first; from there to the write nothing yields), so a
cancelled publish leaves no topic alias, packet id or send quota behind. Once its
bytes are written (or queued behind the active writer: they go out), cancelling
only stops the waiting; the session keeps a QoS 1/2 message in flight and re-sends
it after a reconnect. A SUBSCRIBE/UNSUBSCRIBE lost with its connection is asked
again on the next one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

import attrs

from .._enums import QoS
from .._events import PublishCompleted
from .._exceptions import ConnectionLost, InvalidStateError, PublishError
from . import trace

if TYPE_CHECKING:
    from collections.abc import Callable

    from .._client import MqttClient
    from .._events import Event
    from .._groups import Event as _Event
    from .._properties import Properties
    from .._session import ClientSession
    from .link import Link

__all__ = ["Operation", "publish", "qos0_packet", "request"]

# Enum members by class attribute cost a lookup each time (Python 3.11).
_QOS0: Final = QoS.AT_MOST_ONCE


@attrs.define(eq=False)
class Operation:
    """A caller waiting for the broker's answer to one packet."""

    packet_id: int
    #: The running backend's event (``MqttClient._new_event``).
    done: _Event
    result: Event | None = None
    error: BaseException | None = None
    #: A SUBSCRIBE/UNSUBSCRIBE (asked again after a reconnect), not a PUBLISH.
    request: bool = False
    #: The request must be sent again on the next connection.
    retry: bool = False
    #: The filter of a re-subscription (its refusal ends the subscriptions on it).
    topic_filter: str | None = None

    def finish(self, result: Event) -> None:
        self.result = result
        self.done.set()

    def fail(self, error: BaseException) -> None:
        self.error = error
        self.done.set()

    def ask_retry(self) -> None:
        self.retry = True
        self.done.set()


async def publish(
    client: MqttClient,
    topic: str,
    payload: bytes,
    qos: QoS,
    retain: bool,
    properties: Properties,
) -> None:
    """The body of `MqttClient.publish` (arguments already checked).

    `MqttClient.publish` runs the QoS 0 branch itself while a link is ready (one
    coroutine less on the hot path), the same steps in the same order.
    """
    if qos is _QOS0:
        link = client._ready_link() or await client._wait_ready()
        # Cancelled here, before the session made the packet: no trace (no alias).
        await link.check_cancelled()
        data = qos0_packet(link, topic, payload, retain, properties)
        await link.send(data, checked=True)
        client._counters.messages_published += 1
        return
    while True:
        link = client._ready_link() or await client._wait_ready()
        if link.session.send_quota > 0:
            break
        await client._wait_quota()
    await link.check_cancelled()
    packet_id, data = link.session.publish(
        topic, payload, qos=qos, retain=retain, properties=properties
    )
    assert packet_id is not None
    if trace.enabled():
        trace.sent(
            "PUBLISH",
            len(data),
            id=packet_id,
            topic=topic,
            qos=int(qos),
            payload=len(payload),
        )
    op = Operation(packet_id, done=link.new_event())
    pending = client._pending
    pending[packet_id] = op
    try:
        # Nothing yields between the session's publish and here: the bytes are
        # written or queued behind the active writer (they go out either way).
        try:
            await link.send(data, wait=False, checked=True)
        except ConnectionLost:
            # The session keeps the message in flight: it is re-sent (or
            # published again) after reconnecting.
            pass
        # Not set yet (nothing could answer before this task yielded): a schedule
        # point here or in the write above, whichever event type the link made.
        await op.done.wait()
    finally:
        if pending.get(op.packet_id) is op and not op.done.is_set():
            del pending[op.packet_id]
    if op.error is not None:
        raise op.error
    result = op.result
    assert isinstance(result, PublishCompleted)
    if result.error is not None:
        # The session gave the re-send up: it breaks a limit of the new connection.
        raise result.error
    client._counters.messages_published += 1
    if result.reason_code and result.reason_code.is_failure:  # 0 is success
        raise PublishError(
            f"the broker refused the message to {topic!r}: "
            f"{result.reason_code.phrase} (reason code {result.reason_code.value:#04x})",
            reason_code=result.reason_code,
        )


def qos0_packet(
    link: Link, topic: str, payload: bytes, retain: bool, properties: Properties
) -> bytes:
    """The session's QoS 0 PUBLISH on *link* (after the cancellation check)."""
    _, data = link.session.publish(
        topic, payload, qos=_QOS0, retain=retain, properties=properties
    )
    if trace.enabled():
        trace.sent("PUBLISH", len(data), topic=topic, qos=0, payload=len(payload))
    return data


async def request(
    client: MqttClient, make: Callable[[ClientSession], tuple[int, bytes]]
) -> Event:
    """Send a SUBSCRIBE/UNSUBSCRIBE made by *make* and wait for its answer.

    A request lost with the connection is made and sent again on the next one.
    """
    pending = client._pending
    while True:
        link = await client._wait_ready()
        await link.check_cancelled()
        try:
            packet_id, data = make(link.session)
        except (ConnectionLost, InvalidStateError):
            # The link ended or the broker's DISCONNECT closed the session:
            # wait for the next link.
            await link.wait_ended()
            continue
        if trace.enabled():
            trace.sent("SUBSCRIBE/UNSUBSCRIBE", len(data), id=packet_id)
        op = Operation(packet_id, done=client._new_event(), request=True)
        pending[packet_id] = op
        try:
            try:
                # Nothing yielded since the check above.
                await link.send(data, wait=False, checked=True)
            except ConnectionLost:
                pass  # asked again on the next link (see serve._lost_requests)
            await op.done.wait()
        finally:
            if pending.get(packet_id) is op:
                del pending[packet_id]
        if op.retry:
            continue
        if op.error is not None:
            raise op.error
        assert op.result is not None
        return op.result
