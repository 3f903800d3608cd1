"""`collapse`: the body's own exception leaves ``async with`` unchanged.

Issue #9: an ExceptionGroup from the user's own nursery inside
``async with MqttClient`` (two workers whose ``publish()`` raised PublishError) came
out as MqttInternalError("several background tasks failed at once ..."): trio and
anyio put a copy of the body's group into theirs, and `collapse` looked for the
body itself among the leaves only.
"""

from __future__ import annotations

from functools import partial

import anyio
import pytest
import trio
import trio.testing

from tests._fakes import (
    FakeBroker,
    make_client,
    virtual_deadline_fixture,  # noqa: F401 - the virtual_deadline fixture
)
from trio_mqttconn import MqttInternalError, PublishError, ReasonCode
from trio_mqttconn._groups import collapse, leave_group, open_task_group


class WorkerError(Exception):
    """What a user's worker raised."""


async def _raise(message: str) -> None:
    raise WorkerError(message)


async def _user_group() -> BaseExceptionGroup[BaseException]:
    """The ExceptionGroup a user's task group raises: two workers failed."""
    try:
        async with anyio.create_task_group() as group:
            group.start_soon(_raise, "one")
            group.start_soon(_raise, "two")
    except BaseExceptionGroup as exc:
        return exc
    raise AssertionError("the task group raised nothing")  # pragma: no cover


# -- collapse on its own -----------------------------------------------------------------


def test_collapse_finds_the_body_group_in_a_derived_copy() -> None:
    one, two = WorkerError("one"), WorkerError("two")
    body = ExceptionGroup("workers", [one, two])
    # What trio does when it splits out its Cancelled: a new group, same leaves.
    copy = body.derive([one, two])
    assert copy is not body
    group = BaseExceptionGroup("task group", [copy, trio.Cancelled._create()])
    assert collapse(group, body) is body


def test_collapse_finds_a_body_group_that_lost_some_leaves() -> None:
    one, cancelled = WorkerError("one"), trio.Cancelled._create()
    body = BaseExceptionGroup("workers", [one, cancelled])
    group = BaseExceptionGroup("task group", [body.derive([one])])
    assert collapse(group, body) is body


def test_collapse_body_wins_over_a_background_failure() -> None:
    body = ExceptionGroup("workers", [WorkerError("one"), WorkerError("two")])
    background = OSError("reader")
    group = BaseExceptionGroup("task group", [body.derive(body.exceptions), background])
    assert collapse(group, body) is body


def test_collapse_a_plain_body_exception_is_found_among_the_leaves() -> None:
    body = WorkerError("body")
    group = BaseExceptionGroup("task group", [trio.Cancelled._create(), body])
    assert collapse(group, body) is body


@pytest.mark.trio
async def test_collapse_a_body_group_not_in_the_group_is_not_returned() -> None:
    body = ExceptionGroup("workers", [WorkerError("one")])
    background = OSError("reader")
    group = BaseExceptionGroup("task group", [background])
    assert collapse(group, body) is background


@pytest.mark.trio
async def test_collapse_several_background_failures_without_the_body_is_a_bug() -> None:
    group = BaseExceptionGroup("task group", [OSError("a"), OSError("b")])
    error = collapse(group, ExceptionGroup("workers", [WorkerError("x")]))
    assert isinstance(error, MqttInternalError)
    assert error.__cause__ is group


# -- through a real task group, both backends --------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize("background", [False, True], ids=["alone", "with-task"])
async def test_leave_group_raises_the_bodys_exception_group_unchanged(
    background: bool,
) -> None:
    body = await _user_group()
    group = open_task_group()  # trio's nursery on trio, anyio's task group else
    tasks = await group.__aenter__()
    if background:
        tasks.start_soon(anyio.sleep_forever)
    with pytest.raises(BaseExceptionGroup) as info:
        await leave_group(group, body)  # type: ignore[arg-type]
    assert info.value is body


# -- through MqttClient ------------------------------------------------------------------


async def _two_publishers(
    broker: FakeBroker, raised: list[BaseExceptionGroup[BaseException]]
) -> None:
    """The user's block: a nursery of two workers whose publish() is refused."""
    async with make_client(broker) as client:
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(partial(client.publish, "a/1", qos=1))
                nursery.start_soon(partial(client.publish, "a/2", qos=1))
        except BaseExceptionGroup as exc:
            raised.append(exc)
            raise


@pytest.mark.trio
async def test_client_body_exception_group_leaves_async_with_unchanged(
    autojump_clock: trio.testing.MockClock, virtual_deadline: None
) -> None:
    raised: list[BaseExceptionGroup[BaseException]] = []
    async with FakeBroker(publish_reason=ReasonCode.QUOTA_EXCEEDED) as broker:
        with pytest.raises(BaseExceptionGroup) as info:
            await _two_publishers(broker, raised)
    assert raised
    assert info.value is raised[0]
    assert info.value.exceptions
    assert all(isinstance(exc, PublishError) for exc in info.value.exceptions)
