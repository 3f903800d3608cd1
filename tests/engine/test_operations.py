"""A caller waiting for the broker's answer, woken directly (#9, speed).

An `Operation` (a QoS 1/2 publish, a SUBSCRIBE, an UNSUBSCRIBE) wakes its waiting
caller with the backend's own primitives (on trio the task is rescheduled, on
asyncio a future completes) instead of an Event per publish. These tests pin what
must not change with that: the answer reaches the caller, a cancelled wait leaves
nothing a later answer could trip over, and an answer that came first needs no
wait.
"""

from __future__ import annotations

import anyio
import pytest

from trio_mqttconn._engine.operations import Operation, operation_type
from trio_mqttconn._events import PublishCompleted

pytestmark = pytest.mark.anyio


def _settled(op: Operation) -> bool:
    return op.settled


async def _waiting(op: Operation, results: list[str]) -> None:
    try:
        await op.wait()
    except anyio.get_cancelled_exc_class():
        results.append("cancelled")
        raise
    results.append("woken")


async def test_the_answer_wakes_the_waiting_caller() -> None:
    op = operation_type()(7)
    results: list[str] = []
    async with anyio.create_task_group() as tg:
        tg.start_soon(_waiting, op, results)
        await anyio.wait_all_tasks_blocked()
        assert results == []
        completed = PublishCompleted(packet_id=7)
        op.finish(completed)
    assert results == ["woken"]
    assert op.settled
    assert op.result is completed


@pytest.mark.parametrize("settle", ["fail", "ask_retry"])
async def test_a_failure_or_a_retry_wakes_the_caller(settle: str) -> None:
    op = operation_type()(1, request=True, topic_filter="a/#")
    results: list[str] = []
    async with anyio.create_task_group() as tg:
        tg.start_soon(_waiting, op, results)
        await anyio.wait_all_tasks_blocked()
        if settle == "fail":
            op.fail(RuntimeError("gone"))
        else:
            op.ask_retry()
    assert results == ["woken"]
    assert (op.error is not None) == (settle == "fail")
    assert op.retry == (settle == "ask_retry")
    assert op.request
    assert op.topic_filter == "a/#"


async def test_an_answer_after_a_cancelled_wait_is_harmless() -> None:
    op = operation_type()(3)
    results: list[str] = []
    async with anyio.create_task_group() as tg:
        tg.start_soon(_waiting, op, results)
        await anyio.wait_all_tasks_blocked()
        tg.cancel_scope.cancel()
    assert results == ["cancelled"]
    assert not _settled(op)
    # The answer comes later (the caller kept no claim on it): nothing to wake.
    op.finish(PublishCompleted(packet_id=3))
    assert _settled(op)
    await anyio.lowlevel.checkpoint()
    assert results == ["cancelled"]


async def test_an_answer_that_came_first_is_kept() -> None:
    op = operation_type()(5)
    op.finish(PublishCompleted(packet_id=5))
    assert op.settled
    # Waiting on a settled operation returns at once (nothing would wake it).
    with anyio.fail_after(5):
        await op.wait()
    assert op.result == PublishCompleted(packet_id=5)


async def test_the_running_backend_has_its_own_type(anyio_backend: str) -> None:
    kind = operation_type()
    assert issubclass(kind, Operation)
    assert kind is not Operation
    assert kind is operation_type()
    assert anyio_backend.lower() in kind.__name__.lower()
    assert "packet_id=9" in repr(kind(9))
    # One is made per QoS 1/2 publish: no instance dict.
    assert not hasattr(kind(9), "__dict__")
