"""A consumer waiting on a subscription, woken directly by the reader (#9, speed).

`Subscription` wakes a waiting consumer with the backend's own primitives (on trio
the task is rescheduled, on asyncio a future completes) instead of an Event per
wait. These tests pin what must not change with that: a wake-up always finds the
message or the end, a cancelled wait leaves nothing behind that a later message
could trip over, nothing offered is lost to a cancellation, several consumers of
one subscription all wake, and every way in is still a checkpoint.
"""

from __future__ import annotations

import asyncio

import anyio
import pytest
import trio
import trio.testing

from trio_mqttconn import Message, QoS, SubscribeError
from trio_mqttconn._packets import TopicSubscription
from trio_mqttconn._subscription import _STREAK, Subscription

pytestmark = pytest.mark.anyio


def _subscription(*, buffer: int = 1000) -> Subscription:
    return Subscription(
        topic_filter="t/+",
        options=TopicSubscription(filter="t/+"),
        buffer=buffer,
    )


def _waiting(sub: Subscription) -> list[object]:
    """The consumers still waiting (asyncio leaves cancelled futures behind until
    the next wait or wake-up drops them)."""
    return [
        sleeper
        for sleeper in sub._sleepers
        if not (isinstance(sleeper, asyncio.Future) and sleeper.done())
    ]


def _message(n: int) -> Message:
    return Message(topic=f"t/{n}", payload=b"%d" % n)


async def test_waiting_iterator_gets_each_message_offered_later() -> None:
    sub = _subscription()
    seen: list[bytes] = []
    async with anyio.create_task_group() as tg:

        async def consume() -> None:
            async for message in sub:
                seen.append(message.payload)

        tg.start_soon(consume)
        for n in range(3):
            await anyio.wait_all_tasks_blocked()
            assert len(_waiting(sub)) == 1
            sub._offer(_message(n))
        await anyio.wait_all_tasks_blocked()
        sub._close()
    assert seen == [b"0", b"1", b"2"]
    assert _waiting(sub) == []


async def test_waiting_receive_gets_message_then_end_of_stream() -> None:
    sub = _subscription()
    got: list[object] = []
    async with anyio.create_task_group() as tg:

        async def consume() -> None:
            got.append((await sub.receive()).payload)
            with pytest.raises(anyio.EndOfStream):
                await sub.receive()
            got.append("end")

        tg.start_soon(consume)
        await anyio.wait_all_tasks_blocked()
        sub._offer(_message(1))
        await anyio.wait_all_tasks_blocked()
        sub._close()
    assert got == [b"1", "end"]


async def test_cancelled_wait_leaves_no_sleeper_and_loses_nothing() -> None:
    sub = _subscription()
    with anyio.move_on_after(0):
        await sub.receive()
    async with anyio.create_task_group() as tg:

        async def consume() -> None:
            async for _message in sub:
                raise AssertionError("nothing was offered")  # pragma: no cover

        tg.start_soon(consume)
        await anyio.wait_all_tasks_blocked()
        assert len(_waiting(sub)) == 1
        tg.cancel_scope.cancel()
    assert _waiting(sub) == []
    # A message offered now wakes nobody (a stale wake-up would crash trio) and
    # stays for the next consumer.
    sub._offer(_message(7))
    assert sub.receive_nowait().payload == b"7"


async def test_cancel_right_after_the_wake_up_loses_nothing() -> None:
    # The reader wakes the consumer, then its scope is cancelled before it ran:
    # the message is either handed out or still queued, never gone.
    sub = _subscription()
    seen: list[bytes] = []
    async with anyio.create_task_group() as tg:

        async def consume() -> None:
            with scope:
                async for message in sub:
                    seen.append(message.payload)

        scope = anyio.CancelScope()
        tg.start_soon(consume)
        await anyio.wait_all_tasks_blocked()
        sub._offer(_message(1))
        scope.cancel()
    queued = [sub.receive_nowait().payload for _ in range(sub.statistics().queued)]
    assert seen + queued == [b"1"]
    assert _waiting(sub) == []


async def test_every_waiting_consumer_wakes_and_each_message_goes_to_one() -> None:
    sub = _subscription()
    seen: list[tuple[int, bytes]] = []
    async with anyio.create_task_group() as tg:

        async def consume(index: int) -> None:
            async for message in sub:
                seen.append((index, message.payload))

        tg.start_soon(consume, 0)
        tg.start_soon(consume, 1)
        await anyio.wait_all_tasks_blocked()
        assert len(_waiting(sub)) == 2
        sub._offer(_message(1))
        await anyio.wait_all_tasks_blocked()
        # One took it; the other went back to waiting.
        assert len(_waiting(sub)) == 2
        sub._offer(_message(2))
        await anyio.wait_all_tasks_blocked()
        sub._close()
    assert sorted(payload for _, payload in seen) == [b"1", b"2"]


async def test_close_wakes_every_waiting_consumer() -> None:
    sub = _subscription()
    ended: list[str] = []
    async with anyio.create_task_group() as tg:

        async def iterate() -> None:
            async for _message in sub:
                raise AssertionError("nothing was offered")  # pragma: no cover
            ended.append("iterator")

        async def receive() -> None:
            with pytest.raises(anyio.EndOfStream):
                await sub.receive()
            ended.append("receive")

        tg.start_soon(iterate)
        tg.start_soon(receive)
        await anyio.wait_all_tasks_blocked()
        sub._close()
    assert sorted(ended) == ["iterator", "receive"]


async def test_broker_refusal_wakes_the_waiting_iterator_with_the_error() -> None:
    sub = _subscription()
    error = SubscribeError("refused again after a reconnect")
    async with anyio.create_task_group() as tg:

        async def iterate() -> None:
            with pytest.raises(SubscribeError) as raised:
                await sub.__anext__()
            assert raised.value is error

        tg.start_soon(iterate)
        await anyio.wait_all_tasks_blocked()
        sub._fail(error)


async def test_released_subscription_ends_a_waiting_iterator() -> None:
    sub = _subscription()
    ended: list[str] = []
    async with anyio.create_task_group() as tg:

        async def iterate() -> None:
            async for _message in sub:
                raise AssertionError("nothing was offered")  # pragma: no cover
            ended.append("iterator")

        tg.start_soon(iterate)
        await anyio.wait_all_tasks_blocked()
        sub._release()
    assert ended == ["iterator"]
    with pytest.raises(anyio.EndOfStream):
        await sub.receive()


async def test_parked_messages_reach_a_waiting_consumer_in_order() -> None:
    sub = _subscription(buffer=2)
    for n in range(5):
        sub._offer(_message(n))
    assert sub.statistics().parked == 3
    seen = [(await sub.receive()).payload]
    async for message in sub:
        seen.append(message.payload)
        if len(seen) == 5:
            break
    assert seen == [b"0", b"1", b"2", b"3", b"4"]
    assert sub.statistics().parked == 0


async def test_cancelled_iteration_keeps_queued_and_parked_messages() -> None:
    sub = _subscription(buffer=1)
    sub._offer(_message(1))
    sub._offer(_message(2))  # parked
    with anyio.CancelScope() as scope:
        scope.cancel()
        with pytest.raises(anyio.get_cancelled_exc_class()):
            await sub.__anext__()
        with pytest.raises(anyio.get_cancelled_exc_class()):
            await sub.receive()
    assert [sub.receive_nowait().payload, sub.receive_nowait().payload] == [
        b"1",
        b"2",
    ]
    # Drained: the end is a cancel point too (as in trio's channels).
    sub._close()
    with anyio.CancelScope() as scope:
        scope.cancel()
        with pytest.raises(anyio.get_cancelled_exc_class()):
            await sub.receive()


@pytest.mark.parametrize("anyio_backend", ["trio"])
async def test_receive_is_a_checkpoint_on_every_path() -> None:
    sub = _subscription(buffer=1)
    sub._offer(_message(1))
    sub._offer(_message(2))  # parked
    with trio.testing.assert_checkpoints():
        await sub.receive()  # queued
    with trio.testing.assert_checkpoints():
        await sub.receive()  # moved in from the park


@pytest.mark.parametrize("anyio_backend", ["trio"])
async def test_iteration_schedules_at_least_every_streak() -> None:
    sub = _subscription(buffer=2 * _STREAK + 1)
    for n in range(2 * _STREAK + 1):
        sub._offer(_message(n))
    taken = 0
    with trio.testing.assert_checkpoints():
        async for _taken in sub:
            taken += 1
            if taken == _STREAK + 1:
                break


async def test_repeatedly_cancelled_waits_do_not_pile_up() -> None:
    # A consumer polling with a timeout and never getting a message.
    sub = _subscription()
    for _ in range(100):
        with anyio.move_on_after(0):
            await sub.receive()
        await anyio.lowlevel.checkpoint()
    assert len(sub._sleepers) <= 1
    assert _waiting(sub) == []


async def test_cancelling_one_of_two_waiting_consumers_keeps_the_other() -> None:
    # On trio the abort callback of the consumer that waited last is kept for its
    # next wait; the earlier one's must still remove that one, not the other.
    sub = _subscription()
    seen: list[bytes] = []
    async with anyio.create_task_group() as tg:
        first = anyio.CancelScope()

        async def consume(scope: anyio.CancelScope) -> None:
            with scope:
                async for message in sub:
                    seen.append(message.payload)

        tg.start_soon(consume, first)
        await anyio.wait_all_tasks_blocked()
        tg.start_soon(consume, anyio.CancelScope())
        await anyio.wait_all_tasks_blocked()
        assert len(_waiting(sub)) == 2
        first.cancel()
        await anyio.wait_all_tasks_blocked()
        assert len(_waiting(sub)) == 1
        sub._offer(_message(1))
        await anyio.wait_all_tasks_blocked()
        assert seen == [b"1"]
        sub._offer(_message(2))
        await anyio.wait_all_tasks_blocked()
        sub._close()
    assert seen == [b"1", b"2"]


async def test_refusal_goes_to_one_waiting_consumer_the_end_to_the_others() -> None:
    sub = _subscription()
    error = SubscribeError("refused again after a reconnect")
    outcomes: list[str] = []
    async with anyio.create_task_group() as tg:

        async def receive() -> None:
            try:
                await sub.receive()
            except SubscribeError as exc:
                outcomes.append("error" if exc is error else "another error")
            except anyio.EndOfStream:
                outcomes.append("end")

        tg.start_soon(receive)
        tg.start_soon(receive)
        await anyio.wait_all_tasks_blocked()
        sub._fail(error)
    assert sorted(outcomes) == ["end", "error"]


async def test_a_message_handed_over_survives_the_release_before_the_wake_up() -> None:
    # trio hands the message to the waiting task itself; ending the subscription
    # before that task ran must neither lose it nor acknowledge it behind the
    # consumer's back (asyncio: it was queued and _release drops it, as before).
    sub = _subscription()
    acks: list[int] = []
    message = Message(
        topic="t/1", payload=b"1", qos=QoS.AT_LEAST_ONCE, acker=lambda: acks.append(1)
    )
    sub._manual_ack = True
    got: list[Message] = []
    async with anyio.create_task_group() as tg:

        async def iterate() -> None:
            got.extend([m async for m in sub])

        tg.start_soon(iterate)
        await anyio.wait_all_tasks_blocked()
        sub._offer(message)
        sub._release()
    # Either the consumer has it (and acknowledges it itself), or it was acked
    # for the consumer: never both, never neither.
    assert len(got) + len(acks) == 1


@pytest.mark.parametrize("anyio_backend", ["trio"])
async def test_a_queued_message_goes_before_the_one_offered() -> None:
    # Never happens (a consumer waits only on an empty channel), but if it did,
    # order is kept: the waiting consumer gets the queued message.
    sub = _subscription()
    got: list[bytes] = []
    async with anyio.create_task_group() as tg:

        async def take() -> None:
            got.append((await sub.__anext__()).payload)

        tg.start_soon(take)
        await anyio.wait_all_tasks_blocked()
        sub._queue.append(_message(0))
        sub._offer(_message(1))
    assert got == [b"0"]
    assert sub.receive_nowait().payload == b"1"
