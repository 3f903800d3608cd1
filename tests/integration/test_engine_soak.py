"""Soak: mixed QoS traffic through the fault proxy with random drops (#9).

The environment variable ``TRIO_MQTTCONN_SOAK_SECONDS`` sets its length: 3 s by
default, so that a short version runs with the suite and the code does not rot; a
``nox -s soak`` session is meant to run it for 600 s. It checks, across connection
drops:

* every QoS 1/2 message whose ``publish()`` returned reaches the subscriber;
* no QoS 2 message arrives twice;
* a slow consumer beside a fast one does not lose anything either;
* neither does a synchronous listener on the same filter (called by the task that
  reads the connection while its dispatcher is idle).
"""

from __future__ import annotations

import os
import random
import uuid
from typing import TYPE_CHECKING

import anyio
import pytest

from tests._faultproxy import FaultProxy
from trio_mqttconn import Message, MqttClient, MqttError, QoS

if TYPE_CHECKING:
    from trio_mqttconn import Subscription
    from trio_mqttconn.testing import Mosquitto

pytestmark = [pytest.mark.anyio, pytest.mark.broker]


def _seconds() -> float:
    return float(os.environ.get("TRIO_MQTTCONN_SOAK_SECONDS", "3"))


def _client(uri: str, name: str) -> MqttClient:
    return MqttClient(
        uri,
        client_id=f"soak-{name}-{uuid.uuid4().hex[:10]}",
        clean_start=False,
        session_expiry=600,
        keepalive=2,
        reconnect_delay=0.02,
        max_reconnect_delay=0.2,
    )


@pytest.mark.parametrize("anyio_backend", ["trio", "asyncio"])
async def test_engine_soak_mixed_qos_with_random_drops(
    mosquitto: Mosquitto, unique_topic: str
) -> None:
    duration = _seconds()
    rng = random.Random(9)
    acknowledged: dict[int, set[bytes]] = {1: set(), 2: set()}
    received: dict[int, list[bytes]] = {0: [], 1: [], 2: []}
    heard: dict[int, list[bytes]] = {0: [], 1: [], 2: []}
    slow_seen: list[bytes] = []
    with anyio.fail_after(duration + 60):
        async with (
            FaultProxy(mosquitto.port) as sub_proxy,
            FaultProxy(mosquitto.port) as pub_proxy,
            _client(sub_proxy.uri, "sub") as subscriber,
            subscriber.subscription(f"{unique_topic}/#", qos=2) as fast,
            subscriber.subscription(f"{unique_topic}/#", qos=2, buffer=50) as slow,
            _client(pub_proxy.uri, "pub") as publisher,
        ):
            complete = anyio.Event()

            def all_there() -> bool:
                return all(
                    acknowledged[qos] <= set(got[qos])
                    for got in (received, heard)
                    for qos in (1, 2)
                )

            def hear(message: Message) -> None:
                heard[message.qos].append(message.payload)
                if publishing_done and all_there():
                    complete.set()

            async def consume(sub: Subscription) -> None:
                async for message in sub:
                    received[message.qos].append(message.payload)
                    if publishing_done and all_there():
                        complete.set()

            async def consume_slowly(sub: Subscription) -> None:
                async for message in sub:
                    slow_seen.append(message.payload)
                    await anyio.sleep(0.0005)

            async def publish(qos: int) -> None:
                index = 0
                while anyio.current_time() < deadline:
                    payload = b"%d-%d" % (qos, index)
                    index += 1
                    try:
                        await publisher.publish(
                            f"{unique_topic}/q{qos}", payload, qos=QoS(qos)
                        )
                    except MqttError:
                        continue
                    if qos:
                        acknowledged[qos].add(payload)
                    # Paced: the broker queues at most 1000 messages per client
                    # (max_queued_messages) and drops the rest, acknowledged or not.
                    await anyio.sleep(0.002)

            async def drop_now_and_then() -> None:
                while anyio.current_time() < deadline:
                    await anyio.sleep(rng.uniform(0.2, 0.8))
                    rng.choice([sub_proxy, pub_proxy]).drop(rst=rng.random() < 0.5)

            deadline = anyio.current_time() + duration
            publishing_done = False
            await subscriber.subscribe(f"{unique_topic}/#", qos=2, listener=hear)
            async with anyio.create_task_group() as group:
                group.start_soon(consume, fast)
                group.start_soon(consume_slowly, slow)
                async with anyio.create_task_group() as producers:
                    for qos in (0, 1, 2):
                        producers.start_soon(publish, qos)
                    producers.start_soon(drop_now_and_then)
                publishing_done = True
                # Everything acknowledged arrives in the end: a marker message
                # wakes the consumer even if nothing else is on its way.
                await publisher.publish(f"{unique_topic}/q1", b"marker", qos=1)
                acknowledged[1].add(b"marker")
                with anyio.move_on_after(30):
                    await complete.wait()
                group.cancel_scope.cancel()
    for got in (received, heard):
        lost = {qos: sorted(acknowledged[qos] - set(got[qos])) for qos in (1, 2)}
        assert lost == {1: [], 2: []}
        assert len(got[2]) == len(set(got[2])), "a QoS 2 message came twice"
    assert acknowledged[1]
    assert acknowledged[2]
