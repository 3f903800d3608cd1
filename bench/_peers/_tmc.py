"""trio_mqttconn's benchmark driver; the same code runs on trio and on asyncio (anyio).

Written the way the README shows the client: ``async with MqttClient(...)``,
``async with client.subscription(...)`` + ``async for``, ``subscribe(listener=...)``
for one handler per filter, concurrent QoS 1/2 publishes in a task group.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import _common
import anyio
import anyio.abc
import anyio.lowlevel

from trio_mqttconn import Message, MqttClient, ProtocolVersion

if TYPE_CHECKING:
    from collections.abc import Callable


def _client(spec: _common.Spec) -> MqttClient:
    return MqttClient(
        f"mqtt://{spec.host}:{spec.port}",
        protocol=ProtocolVersion.V5,
        reconnect=False,
    )


async def _watch(counter: _common.Counter, scope: anyio.CancelScope) -> None:
    while True:
        if counter.should_stop():
            scope.cancel()
            return
        await anyio.sleep(0.1)


async def sub(spec: _common.Spec) -> None:
    """Role ``sub``."""
    async with (
        _client(spec) as client,
        client.subscription(spec.topic, qos=spec.qos) as subscription,
    ):
        _common.ready()
        counter = _common.Counter(spec.count, spec.budget)
        async with anyio.create_task_group() as tg:
            tg.start_soon(_watch, counter, tg.cancel_scope)
            async for _message in subscription:
                if counter.hit():
                    break
            tg.cancel_scope.cancel()
        counter.report()


async def filters(spec: _common.Spec) -> None:
    """Role ``filters``: one listener per filter."""
    counts = [0] * spec.nfilters
    done = anyio.Event()
    counter: _common.Counter | None = None

    def handler(index: int) -> Callable[[Message], None]:
        def on_message(message: Message) -> None:
            counts[index] += 1
            if counter is not None and counter.hit():
                done.set()

        return on_message

    async with _client(spec) as client:
        started = time.perf_counter()
        for index, topic_filter in enumerate(spec.filters()):
            await client.subscribe(topic_filter, qos=spec.qos, listener=handler(index))
        subscribe_s = time.perf_counter() - started
        _common.ready()
        counter = _common.Counter(spec.count, spec.budget)
        async with anyio.create_task_group() as tg:
            tg.start_soon(_watch, counter, tg.cancel_scope)
            await done.wait()
            tg.cancel_scope.cancel()
        counter.report(
            subscribe_ms=subscribe_s * 1e3,
            spread=max(counts) - min(counts),
        )


async def tasks(spec: _common.Spec) -> None:
    """Role ``tasks``: one ``async with client.subscription(f)`` task per filter."""
    counts = [0] * spec.nfilters
    done = anyio.Event()
    counter: _common.Counter | None = None

    async with _client(spec) as client, anyio.create_task_group() as tg:

        async def consume(
            index: int,
            topic_filter: str,
            *,
            task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
        ) -> None:
            async with client.subscription(topic_filter, qos=spec.qos) as subscription:
                task_status.started()
                async for _message in subscription:
                    counts[index] += 1
                    if counter is not None and counter.hit():
                        done.set()

        started = time.perf_counter()
        for index, topic_filter in enumerate(spec.filters()):
            await tg.start(consume, index, topic_filter)
        subscribe_s = time.perf_counter() - started
        _common.ready()
        counter = _common.Counter(spec.count, spec.budget)
        with anyio.CancelScope() as waiting:
            tg.start_soon(_watch, counter, waiting)
            await done.wait()
        # Measured up to here, like the other drivers (which report before they
        # close): the teardown of a thousand tasks is not per-message work.
        counter.report(
            subscribe_ms=subscribe_s * 1e3,
            spread=max(counts) - min(counts),
        )
        tg.cancel_scope.cancel()


async def slow(spec: _common.Spec) -> None:
    """Role ``slow``: two subscriptions on TOPIC, one read at half the other's pace.

    Counts (and reports) the fast one; the slow one takes a message only while it
    has taken fewer than half of the fast one's. The slow one drops its oldest
    messages when its buffer is full: with ``overflow="wait"`` it would hold the
    whole connection back (the broker then drops QoS 0 messages for everyone).
    """
    async with (
        _client(spec) as client,
        client.subscription(spec.topic, qos=spec.qos) as fast,
        client.subscription(
            spec.topic, qos=spec.qos, overflow="drop_oldest"
        ) as laggard,
    ):
        _common.ready()
        counter = _common.Counter(spec.count, spec.budget)
        taken = [0, 0]
        progress = anyio.Event()

        async def read_slowly() -> None:
            nonlocal progress
            async for _message in laggard:
                taken[1] += 1
                while 2 * taken[1] > taken[0]:
                    await progress.wait()
                    progress = anyio.Event()

        async with anyio.create_task_group() as tg:
            tg.start_soon(_watch, counter, tg.cancel_scope)
            tg.start_soon(read_slowly)
            async for _message in fast:
                taken[0] += 1
                progress.set()
                if counter.hit():
                    break
            tg.cancel_scope.cancel()
        counter.report()


async def pub(spec: _common.Spec) -> None:
    """Role ``pub``."""
    topics = spec.topics()
    ntopics = len(topics)
    payload = spec.payload
    qos = spec.qos
    async with _client(spec) as client:
        _common.ready()
        timer = _common.PublishTimer(spec.count)
        if qos == 0:
            # Like gmqtt's and paho's synchronous publish: publish_nowait, a
            # checkpoint every 64 messages, the awaited publish when it would block.
            publish_nowait = client.publish_nowait
            for i in range(spec.count):
                topic = topics[i % ntopics]
                try:
                    publish_nowait(topic, payload)
                except anyio.WouldBlock:
                    await client.publish(topic, payload)
                if i % 64 == 63:
                    await anyio.lowlevel.checkpoint()
        else:
            it = iter(range(spec.count))

            async def worker() -> None:
                for i in it:
                    await client.publish(topics[i % ntopics], payload, qos=qos)

            async with anyio.create_task_group() as tg:
                for _ in range(_common.WINDOW):
                    tg.start_soon(worker)
        timer.done()
        await anyio.to_thread.run_sync(_common.wait_stdin_eof)
        timer.report()


async def pubawait(spec: _common.Spec) -> None:
    """Role ``pubawait``: QoS 0, ``await publish()`` for every message."""
    topics = spec.topics()
    ntopics = len(topics)
    payload = spec.payload
    async with _client(spec) as client:
        _common.ready()
        timer = _common.PublishTimer(spec.count)
        for i in range(spec.count):
            await client.publish(topics[i % ntopics], payload)
        timer.done()
        await anyio.to_thread.run_sync(_common.wait_stdin_eof)
        timer.report()


async def pingpong(spec: _common.Spec) -> None:
    """Role ``pingpong``."""
    payload = spec.payload
    async with (
        _client(spec) as client,
        client.subscription(spec.topic, qos=spec.qos) as subscription,
    ):
        _common.ready()
        for _ in _common.round_trips(spec, _common.WARMUP):
            await client.publish(spec.topic, payload, qos=spec.qos)
            await subscription.receive()


async def connect(spec: _common.Spec) -> None:
    """Role ``connect``."""
    _common.ready()

    async def cycle() -> None:
        async with _client(spec) as client:
            await client.subscribe(spec.topic, qos=spec.qos)

    for _ in _common.round_trips(spec, _common.WARMUP_CONNECTS):
        await cycle()


ROLES = _common.roles(sub, filters, tasks, slow, pub, pubawait, pingpong, connect)


def main(backend: str) -> None:
    """Run the role given on the command line on *backend* (``trio`` or ``asyncio``)."""
    spec = _common.parse()
    anyio.run(ROLES[spec.role], spec, backend=backend)
