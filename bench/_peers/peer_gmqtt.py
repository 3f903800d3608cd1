"""Benchmark driver: gmqtt 0.8 on asyncio, MQTT 5, default options.

gmqtt's ``publish`` is synchronous and fire-and-forget; QoS 1/2 publishers keep
``WINDOW - 1`` messages in flight (gmqtt's packet id pool allows no more) by counting gmqtt's store of unacknowledged messages (a
``PersistentStorage`` subclass passed to the constructor). gmqtt has one ``on_message``
callback; one handler per filter is routed by subscription identifier.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import TYPE_CHECKING, Any

import _common
import gmqtt  # type: ignore[import-untyped]
from gmqtt.mqtt.constants import MQTTv50  # type: ignore[import-untyped]
from gmqtt.storage import PersistentStorage  # type: ignore[import-untyped]

if TYPE_CHECKING:
    from collections.abc import Callable


class _WindowStorage(PersistentStorage):  # type: ignore[misc]
    """gmqtt's in-flight store, plus a way to wait until it holds fewer than N."""

    def __init__(self) -> None:
        super().__init__()
        self._room: asyncio.Event | None = None
        self._limit = 0

    def remove_message_by_mid(self, mid: int) -> None:
        super().remove_message_by_mid(mid)
        if self._room is not None and len(self._messages) < self._limit:
            self._room.set()

    async def wait_below(self, limit: int) -> None:
        while len(self._messages) >= limit:
            self._limit = limit
            self._room = asyncio.Event()
            await self._room.wait()
            self._room = None


class _Session:
    """A connected gmqtt client and SUBACK waiting."""

    def __init__(self) -> None:
        self.storage = _WindowStorage()
        self.client = gmqtt.Client(uuid.uuid4().hex, persistent_storage=self.storage)
        self.client.on_subscribe = self._on_subscribe
        self._subacks: dict[int, asyncio.Future[None]] = {}

    def _on_subscribe(self, client: Any, mid: int, qos: Any, properties: Any) -> None:
        future = self._subacks.pop(mid, None)
        if future is not None:
            future.set_result(None)

    async def connect(self, spec: _common.Spec) -> None:
        await self.client.connect(spec.host, spec.port, version=MQTTv50)

    async def subscribe(self, topic: str, qos: int, **kwargs: Any) -> None:
        future = asyncio.get_running_loop().create_future()
        mid = self.client.subscribe(topic, qos=qos, **kwargs)
        self._subacks[mid] = future
        await future

    async def close(self) -> None:
        await self.client.disconnect()


async def _wait(counter: _common.Counter, done: asyncio.Event) -> None:
    while not done.is_set() and not counter.should_stop():
        try:
            await asyncio.wait_for(done.wait(), 0.1)
        except TimeoutError:
            pass


async def sub(spec: _common.Spec) -> None:
    """Role ``sub``."""
    session = _Session()
    done = asyncio.Event()
    counter = _common.Counter(spec.count, spec.budget)

    def on_message(*args: Any) -> int:
        if counter.hit():
            done.set()
        return 0

    session.client.on_message = on_message
    await session.connect(spec)
    await session.subscribe(spec.topic, spec.qos)
    _common.ready()
    counter.started = time.perf_counter()
    counter.cpu_started = time.process_time()
    await _wait(counter, done)
    counter.report()
    await session.close()


async def filters(spec: _common.Spec) -> None:
    """Role ``filters``: one handler per filter, routed by subscription identifier."""
    session = _Session()
    done = asyncio.Event()
    counter = _common.Counter(spec.count, spec.budget)
    counts = [0] * spec.nfilters

    def handler(index: int) -> Callable[[str, bytes], None]:
        def on_filter(topic: str, payload: bytes) -> None:
            counts[index] += 1

        return on_filter

    handlers: dict[int, Callable[[str, bytes], None]] = {}

    def on_message(
        client: Any, topic: str, payload: bytes, qos: int, properties: Any
    ) -> int:
        for identifier in properties["subscription_identifier"]:
            handlers[identifier](topic, payload)
        if counter.hit():
            done.set()
        return 0

    session.client.on_message = on_message
    await session.connect(spec)
    started = time.perf_counter()
    for index, topic_filter in enumerate(spec.filters()):
        handlers[index + 1] = handler(index)
        await session.subscribe(
            topic_filter, spec.qos, subscription_identifier=index + 1
        )
    subscribe_s = time.perf_counter() - started
    _common.ready()
    counter.started = time.perf_counter()
    counter.cpu_started = time.process_time()
    await _wait(counter, done)
    counter.report(subscribe_ms=subscribe_s * 1e3, spread=max(counts) - min(counts))
    await session.close()


async def pub(spec: _common.Spec) -> None:
    """Role ``pub``."""
    session = _Session()
    await session.connect(spec)
    topics = spec.topics()
    ntopics = len(topics)
    payload = spec.payload
    qos = spec.qos
    publish = session.client.publish
    storage = session.storage
    _common.ready()
    timer = _common.PublishTimer(spec.count)
    if qos == 0:
        for i in range(spec.count):
            publish(topics[i % ntopics], payload, qos=qos)
            if i % 64 == 63:
                await asyncio.sleep(0)
    else:
        # gmqtt hands out at most receive maximum - 1 packet ids at a time.
        window = _common.WINDOW - 1
        for i in range(spec.count):
            await storage.wait_below(window)
            publish(topics[i % ntopics], payload, qos=qos)
        await storage.wait_empty()
    timer.done()
    await asyncio.to_thread(_common.wait_stdin_eof)
    timer.report()
    await session.close()


async def pingpong(spec: _common.Spec) -> None:
    """Role ``pingpong``."""
    session = _Session()
    loop = asyncio.get_running_loop()
    echo: list[asyncio.Future[None]] = []

    def on_message(*args: Any) -> int:
        if echo and not echo[0].done():
            echo[0].set_result(None)
        return 0

    session.client.on_message = on_message
    await session.connect(spec)
    await session.subscribe(spec.topic, spec.qos)
    payload = spec.payload
    _common.ready()

    async def round_trip() -> None:
        echo[:] = [loop.create_future()]
        session.client.publish(spec.topic, payload, qos=spec.qos)
        await session.storage.wait_empty()
        await echo[0]

    for _ in _common.round_trips(spec, _common.WARMUP):
        await round_trip()
    await session.close()


async def connect(spec: _common.Spec) -> None:
    """Role ``connect``."""
    _common.ready()

    async def cycle() -> None:
        session = _Session()
        await session.connect(spec)
        await session.subscribe(spec.topic, spec.qos)
        await session.close()

    for _ in _common.round_trips(spec, _common.WARMUP_CONNECTS):
        await cycle()


ROLES = _common.roles(sub, filters, pub, pingpong, connect)

if __name__ == "__main__":
    spec = _common.parse()
    asyncio.run(ROLES[spec.role](spec))
