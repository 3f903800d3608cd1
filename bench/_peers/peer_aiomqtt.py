"""Benchmark driver: aiomqtt 2.5 on asyncio, with its defaults (MQTT 5).

One handler per filter is routed by MQTT 5 subscription identifiers (a dict lookup),
the fastest routing aiomqtt allows; its documented ``message.topic.matches()`` chain
would be a linear scan over 1,000 filters.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

import _common
import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine


def _client(spec: _common.Spec) -> aiomqtt.Client:
    return aiomqtt.Client(spec.host, spec.port, protocol=aiomqtt.ProtocolVersion.V5)


async def _consume_until_done(
    counter: _common.Counter, consume: Coroutine[Any, Any, None]
) -> None:
    task = asyncio.ensure_future(consume)
    while not task.done():
        await asyncio.wait({task}, timeout=0.1)
        if not task.done() and counter.should_stop():
            task.cancel()
            await asyncio.wait({task})


async def sub(spec: _common.Spec) -> None:
    """Role ``sub``."""
    async with _client(spec) as client:
        await client.subscribe(spec.topic, spec.qos)
        _common.ready()
        counter = _common.Counter(spec.count, spec.budget)

        async def consume() -> None:
            async for _message in client.messages:
                if counter.hit():
                    return

        await _consume_until_done(counter, consume())
        counter.report()


async def filters(spec: _common.Spec) -> None:
    """Role ``filters``: one handler per filter, routed by subscription identifier."""
    counts = [0] * spec.nfilters

    def handler(index: int) -> Callable[[aiomqtt.Message], None]:
        def on_message(message: aiomqtt.Message) -> None:
            counts[index] += 1

        return on_message

    handlers: dict[int, Callable[[aiomqtt.Message], None]] = {}
    async with _client(spec) as client:
        started = time.perf_counter()
        for index, topic_filter in enumerate(spec.filters()):
            properties = Properties(PacketTypes.SUBSCRIBE)  # type: ignore[no-untyped-call]
            properties.SubscriptionIdentifier = index + 1
            handlers[index + 1] = handler(index)
            await client.subscribe(topic_filter, spec.qos, properties=properties)
        subscribe_s = time.perf_counter() - started
        _common.ready()
        counter = _common.Counter(spec.count, spec.budget)

        async def consume() -> None:
            async for message in client.messages:
                assert message.properties is not None
                identifiers = message.properties.SubscriptionIdentifier  # type: ignore[attr-defined]
                for identifier in identifiers:
                    handlers[identifier](message)
                if counter.hit():
                    return

        await _consume_until_done(counter, consume())
        counter.report(subscribe_ms=subscribe_s * 1e3, spread=max(counts) - min(counts))


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
            for i in range(spec.count):
                await client.publish(topics[i % ntopics], payload, qos)
        else:
            it = iter(range(spec.count))

            async def worker() -> None:
                for i in it:
                    await client.publish(topics[i % ntopics], payload, qos)

            await asyncio.gather(*(worker() for _ in range(_common.WINDOW)))
        timer.done()
        await asyncio.to_thread(_common.wait_stdin_eof)
        timer.report()


async def pingpong(spec: _common.Spec) -> None:
    """Role ``pingpong``."""
    payload = spec.payload
    async with _client(spec) as client:
        await client.subscribe(spec.topic, spec.qos)
        messages = client.messages
        _common.ready()
        for _ in _common.round_trips(spec, _common.WARMUP):
            await client.publish(spec.topic, payload, spec.qos)
            await anext(messages)


async def connect(spec: _common.Spec) -> None:
    """Role ``connect``."""
    _common.ready()

    async def cycle() -> None:
        async with _client(spec) as client:
            await client.subscribe(spec.topic, spec.qos)

    for _ in _common.round_trips(spec, _common.WARMUP_CONNECTS):
        await cycle()


ROLES = _common.roles(sub, filters, pub, pingpong, connect)

if __name__ == "__main__":
    spec = _common.parse()
    asyncio.run(ROLES[spec.role](spec))
