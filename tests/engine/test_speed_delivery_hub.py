"""The synchronous listeners' task waits like a subscription's consumer (#9, speed).

`Hub` sleeps with the backend's own primitives (`_Waits`: on trio the task is
rescheduled, on asyncio a future completes) instead of an Event per wait. These
tests pin what must not change with that: listeners are called in order, a
cancelled wait leaves no sleeper behind, and closing ends the task once it called
what was queued. On trio a waiting consumer yields trio's own trap, made once per
subscription.

While the task sleeps on an empty queue, `Hub.put` calls the listener itself (no
task switch per read of the connection): up to `_STREAK` calls in a row, then the
task is woken and takes over. What such a call raises, and an awaitable it returns,
go to the task, and what comes later waits behind them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

import anyio
import pytest

from trio_mqttconn import Message, MqttInternalError
from trio_mqttconn._engine.router import Hub
from trio_mqttconn._packets import TopicSubscription
from trio_mqttconn._subscription import (
    _HUB_QUEUE,
    _STREAK,
    Subscription,
    _HubQueue,
    _Intake,
    _trio_trap_type,
)

if TYPE_CHECKING:
    from collections.abc import Awaitable

    from trio_mqttconn import MqttClient

pytestmark = pytest.mark.anyio


class _Client:
    """What the hub's task needs of a client: nothing but an identity."""


def _client() -> MqttClient:
    return cast("MqttClient", _Client())


def _hub_subscription(hub: Hub, seen: list[bytes]) -> Subscription:
    sub = Subscription(
        topic_filter="t/+",
        options=TopicSubscription(filter="t/+"),
        client=_client(),
    )
    sub._share(lambda message: seen.append(message.payload), hub)
    return sub


def _hub_with_subscription() -> tuple[Hub, list[bytes], Subscription]:
    """A hub, what its one subscription's listener saw, and the subscription."""
    hub = Hub(intake=_Intake(limit=1 << 20))
    seen: list[bytes] = []
    return hub, seen, _hub_subscription(hub, seen)


async def test_a_message_put_while_the_task_sleeps_is_handled_at_once() -> None:
    hub, seen, sub = _hub_with_subscription()
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(hub.run, _client())
            await anyio.wait_all_tasks_blocked()
            for n in range(3):
                assert sub._offer(Message(topic=f"t/{n}", payload=b"%d" % n))
                assert seen[-1] == b"%d" % n  # called by put itself
                assert len(hub._sleepers) == 1  # the task was not woken
            hub.close()
    assert seen == [b"0", b"1", b"2"]


async def test_after_a_streak_of_calls_the_task_takes_over_in_order() -> None:
    hub, seen, sub = _hub_with_subscription()
    total = _STREAK + 10
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(hub.run, _client())
            await anyio.wait_all_tasks_blocked()
            for n in range(total):
                assert sub._offer(Message(topic="t/x", payload=b"%d" % n))
            assert len(seen) == _STREAK  # the rest waits for the task
            assert not hub._sleepers  # woken once, not once per message
            assert len(hub.queue) == 10
            await anyio.wait_all_tasks_blocked()
            # The task called the rest and sleeps again: put calls again.
            assert len(hub._sleepers) == 1
            assert sub._offer(Message(topic="t/x", payload=b"last"))
            assert seen[-1] == b"last"
            hub.close()
    assert seen == [b"%d" % n for n in range(total)] + [b"last"]


async def test_what_a_listener_called_by_put_raises_ends_the_task() -> None:
    hub, seen, sub = _hub_with_subscription()

    def broken(message: Message) -> None:
        seen.append(message.payload)
        raise KeyError(message.topic)

    sub._share(broken, hub)
    caught: list[BaseException] = []
    with anyio.fail_after(5):
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(hub.run, _client())
                await anyio.wait_all_tasks_blocked()
                assert sub._offer(Message(topic="t/1", payload=b"1"))
                # Not called again by put: it waits for the task, which raises.
                assert sub._offer(Message(topic="t/2", payload=b"2"))
                await anyio.sleep_forever()
        except* KeyError as group:
            caught.extend(group.exceptions)
    assert [str(exc) for exc in caught] == ["'t/1'"]
    assert seen == [b"1"]


async def test_an_awaitable_a_listener_returns_is_awaited_before_what_follows() -> None:
    hub, seen, sub = _hub_with_subscription()
    go_on = anyio.Event()

    async def finish(payload: bytes) -> None:
        await go_on.wait()
        seen.append(payload + b" done")

    def returns_awaitable(message: Message) -> Awaitable[None] | None:
        seen.append(message.payload)
        return finish(message.payload) if message.payload == b"slow" else None

    sub._share(returns_awaitable, hub)
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(hub.run, _client())
            await anyio.wait_all_tasks_blocked()
            assert sub._offer(Message(topic="t/x", payload=b"slow"))
            assert sub._offer(Message(topic="t/x", payload=b"next"))
            await anyio.wait_all_tasks_blocked()
            assert seen == [b"slow"]  # "next" waits behind the awaitable
            go_on.set()
            await anyio.wait_all_tasks_blocked()
            hub.close()
    assert seen == [b"slow", b"slow done", b"next"]


async def test_a_cancelled_wait_leaves_no_sleeper() -> None:
    hub, seen, sub = _hub_with_subscription()
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(hub.run, _client())
            await anyio.wait_all_tasks_blocked()
            tg.cancel_scope.cancel()
        # A later message finds nobody to wake, and nothing to trip over.
        assert not [s for s in hub._sleepers if not getattr(s, "done", bool)()]
        assert sub._offer(Message(topic="t/x", payload=b"late"))
        async with anyio.create_task_group() as tg:
            tg.start_soon(hub.run, _client())
            await anyio.wait_all_tasks_blocked()
            hub.close()
    assert seen == [b"late"]


@pytest.mark.parametrize("anyio_backend", ["trio"])
async def test_trio_consumer_yields_the_trap_made_for_its_subscription() -> None:
    assert _trio_trap_type() is not None  # trio moved it: the slow path is used
    sub = Subscription(topic_filter="t/+", options=TopicSubscription(filter="t/+"))
    offered = [Message(topic=f"t/{n}", payload=b"%d" % n) for n in range(3)]
    got: list[Message] = []
    traps: set[int] = set()
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:

            async def consume() -> None:
                async for message in sub:
                    got.append(message)

            tg.start_soon(consume)
            for message in offered:
                await anyio.wait_all_tasks_blocked()
                traps.add(id(sub._sleepers.trap))
                assert sub._offer(message)
            await anyio.wait_all_tasks_blocked()
            sub._close()
    assert len(traps) == 1
    assert [m is o for m, o in zip(got, offered, strict=True)] == [True] * 3


async def test_hub_subscriptions_share_one_empty_channel() -> None:
    """Memory (#9, peak RSS with 1,000 filters): a listener's subscription keeps no
    channel or park of its own; the shared channel never takes a message."""
    hub = Hub(intake=_Intake(limit=1 << 20))
    seen: list[bytes] = []
    subs = [_hub_subscription(hub, seen) for _ in range(3)]
    assert all(sub._queue is _HUB_QUEUE and sub._parked is None for sub in subs)
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(hub.run, _client())
            for n, sub in enumerate(subs):
                assert sub._offer(Message(topic="t/x", payload=b"%d" % n))
            await anyio.wait_all_tasks_blocked()
            hub.close()
    assert seen == [b"0", b"1", b"2"]
    assert not _HUB_QUEUE
    assert [sub.statistics().queued for sub in subs] == [0, 0, 0]
    with pytest.raises(MqttInternalError, match="hub subscription"):
        _HubQueue().append(Message(topic="t", payload=b""))
