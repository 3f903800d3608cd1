"""Benchmark driver: trio-paho-mqtt 0.3.1 (paho-mqtt's client run by trio tasks), MQTT 5.

trio-paho-mqtt's ``AsyncClient`` wraps a paho ``Client`` that the caller builds (as its
README shows); 0.3.1 was written for paho-mqtt 1.x callbacks, so the paho 2.2 client is
built with ``CallbackAPIVersion.VERSION1``. The wrapper reads with
``trio.hazmat.wait_readable`` + ``loop_read``, writes with ``wait_writable`` +
``loop_write`` and hands messages out through ``async for message in
client.messages()``; ``publish``/``subscribe`` are paho's own non-blocking methods.

What the driver adds, and why:

* trio renamed ``trio.hazmat`` to ``trio.lowlevel`` (0.15) and later removed the old
  name, which the wrapper still uses; the driver makes ``trio.hazmat`` an alias of
  ``trio.lowlevel`` (the same functions under the old name). paho's warning that
  callback API version 1 is deprecated is silenced.
* MQTT 5: for MQTT 5 paho passes ``on_connect`` and ``on_disconnect`` one more argument
  (the properties) than the wrapper's handlers accept (paho 1.x did the same), so its
  handlers raise ``TypeError`` there. `_AsyncClient` takes the extra argument and calls
  the wrapper's handler without it; nothing else of the wrapper is changed.
* The wrapper has no way to wait for CONNACK, SUBACK or a publish's completion; the
  driver waits for its own ``trio.Event`` set from the wrapper's connect handler and
  from paho's ``on_subscribe`` / ``on_publish`` callbacks (the wrapper leaves those two
  free).
* ``disconnect()`` cancels the wrapper's write loop before the DISCONNECT packet it just
  queued is written, so the socket stayed open; the driver then writes it with paho's
  ``loop_write()`` (which closes the socket), as every other client disconnects.
* Its message buffer (``max_buffer``, default 100) drops the oldest message when full,
  and at QoS 2 one ``loop_read`` call handles as many packets as there are QoS 2
  messages awaiting PUBREL: fed by libmosquitto at 64 B QoS 2 it kept 291 of 5,000
  messages. The driver passes ``max_buffer=math.inf`` (lossless, like aiomqtt's
  unbounded queue), so the table compares speed rather than losses.

The wrapper's other defaults are kept: SO_SNDBUF 2048 on its socket, no TCP_NODELAY.
One handler per filter is routed by MQTT 5 subscription identifier, as for aiomqtt (the
wrapper takes paho's ``on_message``; everything arrives through ``messages()``).
"""

from __future__ import annotations

import contextlib
import math
import time
import warnings
from typing import TYPE_CHECKING, Any

import _common
import trio
from paho.mqtt import client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from trio_paho_mqtt import AsyncClient  # type: ignore[import-untyped]

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

if not hasattr(trio, "hazmat"):
    setattr(trio, "hazmat", trio.lowlevel)  # noqa: B010 - not an attribute mypy knows
warnings.filterwarnings(
    "ignore", "Callback API version 1 is deprecated", DeprecationWarning
)


class _AsyncClient(AsyncClient):  # type: ignore[misc]
    """trio-paho-mqtt's client, its connect/disconnect handlers taking MQTT 5 arguments."""

    def __init__(
        self, sync_client: mqtt.Client, nursery: trio.Nursery, max_buffer: float
    ) -> None:
        super().__init__(sync_client, nursery, max_buffer)
        self.connected = trio.Event()

    def _on_connect(
        self, client: Any, userdata: Any, flags: Any, rc: Any, properties: Any = None
    ) -> None:
        super()._on_connect(client, userdata, flags, rc)
        self.connected.set()

    def _on_disconnect(
        self, client: Any, userdata: Any, rc: Any, properties: Any = None
    ) -> None:
        super()._on_disconnect(client, userdata, rc)


class _Session:
    """A connected trio-paho-mqtt client and the acknowledgements the driver awaits."""

    def __init__(self, spec: _common.Spec, nursery: trio.Nursery) -> None:
        self.paho = mqtt.Client(CallbackAPIVersion.VERSION1, protocol=mqtt.MQTTv5)
        self.paho.on_subscribe = self._on_subscribe
        self.paho.on_publish = self._on_publish
        self.client = _AsyncClient(self.paho, nursery, max_buffer=math.inf)
        self.client.connect(spec.host, spec.port)
        self._subacks: dict[int, trio.Event] = {}
        self.published = 0
        self._goal = 0
        self._reached = trio.Event()

    def _on_subscribe(self, client: Any, userdata: Any, mid: int, *rest: Any) -> None:
        event = self._subacks.pop(mid, None)
        if event is not None:
            event.set()

    def _on_publish(self, client: Any, userdata: Any, mid: int) -> None:
        self.published += 1
        if self.published >= self._goal:
            self._reached.set()

    async def subscribe(
        self, topic: str, qos: int, properties: Properties | None = None
    ) -> None:
        """Subscribe and wait for the SUBACK."""
        result, mid = self.client.subscribe(topic, qos, properties=properties)
        if result != mqtt.MQTT_ERR_SUCCESS or mid is None:
            raise SystemExit(f"trio-paho-mqtt: subscribe failed ({result})")
        event = self._subacks[mid] = trio.Event()
        await event.wait()

    async def wait_published(self, total: int) -> None:
        """Wait until *total* publishes have completed (written, PUBACK or PUBCOMP)."""
        if self.published < total:
            self._goal = total
            self._reached = trio.Event()
            await self._reached.wait()


@contextlib.asynccontextmanager
async def _session(spec: _common.Spec) -> AsyncIterator[_Session]:
    async with trio.open_nursery() as nursery:
        session = _Session(spec, nursery)
        with trio.fail_after(30):
            await session.client.connected.wait()
        try:
            yield session
        finally:
            session.client.disconnect()
    # The wrapper's tasks are gone: write the DISCONNECT it left queued (paho then
    # closes the socket; no trio task may be waiting on it by then).
    session.paho.loop_write()


async def _watch(counter: _common.Counter, scope: trio.CancelScope) -> None:
    while True:
        if counter.should_stop():
            scope.cancel()
            return
        await trio.sleep(0.1)


async def _count(
    session: _Session,
    counter: _common.Counter,
    each: Callable[[mqtt.MQTTMessage], None] | None = None,
) -> None:
    """Receive through ``messages()`` until the counter says stop."""
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_watch, counter, nursery.cancel_scope)
        async with contextlib.aclosing(session.client.messages()) as messages:
            async for message in messages:
                if each is not None:
                    each(message)
                if counter.hit():
                    break
        nursery.cancel_scope.cancel()


async def sub(spec: _common.Spec) -> None:
    """Role ``sub``."""
    async with _session(spec) as session:
        await session.subscribe(spec.topic, spec.qos)
        _common.ready()
        counter = _common.Counter(spec.count, spec.budget)
        await _count(session, counter)
        counter.report()


async def filters(spec: _common.Spec) -> None:
    """Role ``filters``: one handler per filter, routed by subscription identifier."""
    counts = [0] * spec.nfilters

    def handler(index: int) -> Callable[[mqtt.MQTTMessage], None]:
        def on_message(message: mqtt.MQTTMessage) -> None:
            counts[index] += 1

        return on_message

    handlers: dict[int, Callable[[mqtt.MQTTMessage], None]] = {}

    def route(message: mqtt.MQTTMessage) -> None:
        for identifier in message.properties.SubscriptionIdentifier:  # type: ignore[union-attr]
            handlers[identifier](message)

    async with _session(spec) as session:
        started = time.perf_counter()
        for index, topic_filter in enumerate(spec.filters()):
            properties = Properties(PacketTypes.SUBSCRIBE)  # type: ignore[no-untyped-call]
            properties.SubscriptionIdentifier = index + 1
            handlers[index + 1] = handler(index)
            await session.subscribe(topic_filter, spec.qos, properties)
        subscribe_s = time.perf_counter() - started
        _common.ready()
        counter = _common.Counter(spec.count, spec.budget)
        await _count(session, counter, route)
        counter.report(subscribe_ms=subscribe_s * 1e3, spread=max(counts) - min(counts))


async def pub(spec: _common.Spec) -> None:
    """Role ``pub``: paho queues beyond its in-flight window (20) by itself."""
    topics = spec.topics()
    ntopics = len(topics)
    payload = spec.payload
    qos = spec.qos
    async with _session(spec) as session:
        publish = session.client.publish
        _common.ready()
        timer = _common.PublishTimer(spec.count)
        for i in range(spec.count):
            publish(topics[i % ntopics], payload, qos)
        await session.wait_published(spec.count)
        timer.done()
        await trio.to_thread.run_sync(_common.wait_stdin_eof)
        timer.report()


async def pingpong(spec: _common.Spec) -> None:
    """Role ``pingpong``."""
    payload = spec.payload
    async with _session(spec) as session:
        await session.subscribe(spec.topic, spec.qos)
        _common.ready()
        async with contextlib.aclosing(session.client.messages()) as messages:
            for _ in _common.round_trips(spec, _common.WARMUP):
                session.client.publish(spec.topic, payload, spec.qos)
                await session.wait_published(session.published + 1)
                await anext(messages)


async def connect(spec: _common.Spec) -> None:
    """Role ``connect``."""
    _common.ready()

    async def cycle() -> None:
        async with _session(spec) as session:
            await session.subscribe(spec.topic, spec.qos)

    for _ in _common.round_trips(spec, _common.WARMUP_CONNECTS):
        await cycle()


ROLES = _common.roles(sub, filters, pub, pingpong, connect)

if __name__ == "__main__":
    spec = _common.parse()
    trio.run(ROLES[spec.role], spec)
