"""Benchmark driver: paho-mqtt 2.2 with its threaded network loop (``loop_start``), MQTT 5.

The application thread publishes and waits on ``threading.Event``; callbacks run on
paho's network thread. One handler per filter uses paho's own per-filter dispatch,
``message_callback_add``. paho's defaults are kept (no TCP_NODELAY).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import _common
from paho.mqtt import client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

Handler = Callable[[mqtt.Client, Any, mqtt.MQTTMessage], None]


class _Session:
    """A connected paho client plus the events the application thread waits for."""

    def __init__(self, spec: _common.Spec) -> None:
        self.connected = threading.Event()
        self.subacked = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.connect(spec.host, spec.port)
        self.client.loop_start()
        if not self.connected.wait(30):
            raise SystemExit("paho: no CONNACK within 30 s")

    def _on_connect(self, *args: Any) -> None:
        self.connected.set()

    def _on_subscribe(self, *args: Any) -> None:
        self.subacked.set()

    def subscribe(self, topic: str, qos: int) -> None:
        self.subacked.clear()
        self.client.subscribe(topic, qos)
        if not self.subacked.wait(30):
            raise SystemExit("paho: no SUBACK within 30 s")

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _wait(counter: _common.Counter, done: threading.Event) -> None:
    while not done.wait(0.1) and not counter.should_stop():
        pass


def sub(spec: _common.Spec) -> None:
    """Role ``sub``."""
    session = _Session(spec)
    done = threading.Event()
    counter = _common.Counter(spec.count, spec.budget)

    def on_message(client: mqtt.Client, userdata: Any, message: Any) -> None:
        if counter.hit():
            done.set()

    session.client.on_message = on_message
    session.subscribe(spec.topic, spec.qos)
    _common.ready()
    counter.cpu_started = time.process_time()
    counter.started = time.perf_counter()
    _wait(counter, done)
    counter.report()
    session.close()


def filters(spec: _common.Spec) -> None:
    """Role ``filters``: one ``message_callback_add`` handler per filter."""
    session = _Session(spec)
    counts = [0] * spec.nfilters
    done = threading.Event()
    counter = _common.Counter(spec.count, spec.budget)

    def handler(index: int) -> Handler:
        def on_message(client: mqtt.Client, userdata: Any, message: Any) -> None:
            counts[index] += 1
            if counter.hit():
                done.set()

        return on_message

    started = time.perf_counter()
    for index, topic_filter in enumerate(spec.filters()):
        session.client.message_callback_add(topic_filter, handler(index))
        session.subscribe(topic_filter, spec.qos)
    subscribe_s = time.perf_counter() - started
    _common.ready()
    counter.cpu_started = time.process_time()
    counter.started = time.perf_counter()
    _wait(counter, done)
    counter.report(subscribe_ms=subscribe_s * 1e3, spread=max(counts) - min(counts))
    session.close()


def pub(spec: _common.Spec) -> None:
    """Role ``pub``: paho queues beyond its in-flight window (20) by itself."""
    session = _Session(spec)
    topics = spec.topics()
    ntopics = len(topics)
    payload = spec.payload
    qos = spec.qos
    publish = session.client.publish
    _common.ready()
    timer = _common.PublishTimer(spec.count)
    infos = [publish(topics[i % ntopics], payload, qos) for i in range(spec.count)]
    for info in infos:
        info.wait_for_publish(60)
    timer.done()
    _common.wait_stdin_eof()
    timer.report()
    session.close()


def pingpong(spec: _common.Spec) -> None:
    """Role ``pingpong``."""
    session = _Session(spec)
    echoed = threading.Event()

    def on_message(client: mqtt.Client, userdata: Any, message: Any) -> None:
        echoed.set()

    session.client.on_message = on_message
    session.subscribe(spec.topic, spec.qos)
    payload = spec.payload
    _common.ready()

    def round_trip() -> None:
        echoed.clear()
        session.client.publish(spec.topic, payload, spec.qos).wait_for_publish(30)
        echoed.wait(30)

    for _ in _common.round_trips(spec, _common.WARMUP):
        round_trip()
    session.close()


def connect(spec: _common.Spec) -> None:
    """Role ``connect``."""
    _common.ready()

    def cycle() -> None:
        session = _Session(spec)
        session.subscribe(spec.topic, spec.qos)
        session.close()

    for _ in _common.round_trips(spec, _common.WARMUP_CONNECTS):
        cycle()


ROLES = _common.roles(sub, filters, pub, pingpong, connect)

if __name__ == "__main__":
    spec = _common.parse()
    ROLES[spec.role](spec)
