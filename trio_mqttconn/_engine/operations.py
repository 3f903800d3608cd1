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

import types
from typing import TYPE_CHECKING, Any, Final

from .._enums import QoS
from .._events import PublishCompleted
from .._exceptions import ConnectionLost, InvalidStateError, PublishError
from .._groups import running_on_trio
from . import trace

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Generator

    import trio

    from .._client import MqttClient
    from .._events import Event
    from .._properties import Properties
    from .._session import ClientSession
    from .link import Link

__all__ = ["Operation", "operation_type", "publish", "qos0_packet", "request"]

# Enum members by class attribute cost a lookup each time (Python 3.11).
_QOS0: Final = QoS.AT_MOST_ONCE


class Operation:
    """A caller waiting for the broker's answer to one packet.

    Settled once, by `finish`, `fail` or `ask_retry`, which wake the caller waiting
    in `wait`. Made by the running backend's subclass (`operation_type`): on trio
    the waiting task is rescheduled directly (no Event, no parking), on asyncio its
    future completes. A plain slotted class: one is made per QoS 1/2 publish.
    """

    __slots__ = (
        "_waiter",
        "error",
        "packet_id",
        "request",
        "result",
        "retry",
        "settled",
        "topic_filter",
    )

    def __init__(
        self, packet_id: int, *, request: bool = False, topic_filter: str | None = None
    ) -> None:
        self.packet_id = packet_id
        self.result: Event | None = None
        self.error: BaseException | None = None
        #: A SUBSCRIBE/UNSUBSCRIBE (asked again after a reconnect), not a PUBLISH.
        self.request = request
        #: The request must be sent again on the next connection.
        self.retry = False
        #: The filter of a re-subscription (its refusal ends the subscriptions on it).
        self.topic_filter = topic_filter
        #: `finish`, `fail` or `ask_retry` was called.
        self.settled = False
        #: The waiting trio task or asyncio future, while one waits.
        self._waiter: Any = None

    def __repr__(self) -> str:
        return f"<Operation packet_id={self.packet_id} settled={self.settled}>"

    def finish(self, result: Event) -> None:
        self.result = result
        self._settle()

    def fail(self, error: BaseException) -> None:
        self.error = error
        self._settle()

    def ask_retry(self) -> None:
        self.retry = True
        self._settle()

    def _settle(self) -> None:  # pragma: no cover - the backends' subclasses
        raise NotImplementedError

    def wait(self) -> Awaitable[Any]:
        """Wait until settled: a cancel point while not `settled`, at once after."""
        if self.settled:
            return _SETTLED
        return self._wait()

    def _wait(self) -> Awaitable[Any]:  # pragma: no cover - the backends' subclasses
        raise NotImplementedError


_TYPES: dict[bool, type[Operation]] = {}


def operation_type() -> type[Operation]:
    """The `Operation` subclass of the running backend (trio's or asyncio's)."""
    on_trio = running_on_trio()
    kind = _TYPES.get(on_trio)
    if kind is None:
        kind = _TYPES[on_trio] = _trio_operation() if on_trio else _asyncio_operation()
    return kind


def _trio_operation() -> type[Operation]:
    from .._subscription import trio_primitives  # running trio (running_on_trio)

    current_task, wait_task_rescheduled, reschedule, succeeded, trap_type = (
        trio_primitives()
    )

    class TrioOperation(Operation):
        __slots__ = ()

        def _settle(self) -> None:
            self.settled = True
            task = self._waiter
            if task is not None:
                # Rescheduled, the task can no longer be cancelled: the result
                # reaches it. With the trap of `wait`, the operation itself is
                # what the task gets back: no Outcome made and unwrapped.
                self._waiter = None
                if trap_type is not None:
                    reschedule(task, self)
                else:  # pragma: no cover - another trio
                    reschedule(task)

        def _abort(self, _: object) -> trio.lowlevel.Abort:
            self._waiter = None  # cancelled: nobody reschedules it now
            return succeeded

        def _wait(self) -> Awaitable[Any]:
            self._waiter = current_task()
            if trap_type is not None:
                return _wait_trapped(self, trap_type(self._abort))
            return wait_task_rescheduled(self._abort)  # pragma: no cover - another trio

    return TrioOperation


class _Settled:
    """What `Operation.wait` returns once settled: done without yielding (the
    caller's write yielded already)."""

    __slots__ = ()

    def __await__(self) -> Generator[Any, Any, None]:
        yield from ()


_SETTLED: Final = _Settled()


@types.coroutine
def _wait_trapped(op: Operation, trap: object) -> Generator[object, Any, None]:
    """``wait_task_rescheduled`` with its trap made by the caller (as
    `trio_mqttconn._subscription._yield_to_trio`): trio's scheduler sends what the
    task was rescheduled with, the operation itself (settled) or an Outcome (a
    cancellation)."""
    handed = yield trap
    if handed is not op:
        handed.unwrap()


def _asyncio_operation() -> type[Operation]:
    import asyncio  # running it

    get_running_loop = asyncio.get_running_loop

    class AsyncioOperation(Operation):
        __slots__ = ()

        def _settle(self) -> None:
            self.settled = True
            future = self._waiter
            if future is not None:
                self._waiter = None
                if not future.done():  # else cancelled
                    future.set_result(None)

        def _wait(self) -> Awaitable[Any]:
            future = self._waiter = get_running_loop().create_future()
            return future

    return AsyncioOperation


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
        session = link.session
        if session.send_quota > 0:
            break
        await client._wait_quota()
    await link.check_cancelled()
    packet_id, data = session.publish(
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
    op = client._new_operation(packet_id)
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
        # Settled already only if the write above yielded (and the answer came):
        # a schedule point there or here.
        await op.wait()
    finally:
        if pending.get(op.packet_id) is op and not op.settled:
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
        op = client._new_operation(packet_id, request=True)
        pending[packet_id] = op
        try:
            try:
                # Nothing yielded since the check above.
                await link.send(data, wait=False, checked=True)
            except ConnectionLost:
                pass  # asked again on the next link (see serve._lost_requests)
            await op.wait()
        finally:
            if pending.get(packet_id) is op:
                del pending[packet_id]
        if op.retry:
            continue
        if op.error is not None:
            raise op.error
        assert op.result is not None
        return op.result
