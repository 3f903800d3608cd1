"""MqttClient while its private mosquitto is restarted or killed under it.

Each test gets its own broker (``mosquitto_factory``) so that stopping it disturbs
nobody else. Waiting for the broker to come back is the client's reconnect loop;
the tests wait for messages only, and every test is bounded by ``anyio.fail_after``.
"""

from __future__ import annotations

import uuid
from collections import Counter
from functools import partial
from typing import TYPE_CHECKING

import anyio
import anyio.abc
import anyio.to_thread
import pytest

from trio_mqttconn import (
    ConnectError,
    ConnectionLost,
    MqttClient,
    ProtocolVersion,
    QoS,
    ReasonCode,
)
from trio_mqttconn.testing import find_mosquitto

if TYPE_CHECKING:
    from collections.abc import Callable

    from trio_mqttconn import Subscription
    from trio_mqttconn.testing import Mosquitto

pytestmark = [pytest.mark.anyio, pytest.mark.broker]

TIMEOUT = 20
V311 = ProtocolVersion.V311
V5 = ProtocolVersion.V5


def persistent_client(
    broker: Mosquitto, protocol: ProtocolVersion, name: str
) -> MqttClient:
    """A client whose session the broker keeps, reconnecting quickly."""
    return MqttClient(
        broker.uri,
        client_id=f"{name}-{uuid.uuid4().hex[:12]}",
        protocol=protocol,
        clean_start=False,
        session_expiry=300,
        reconnect_delay=0.05,
        max_reconnect_delay=0.4,
    )


async def collect_until(sub: Subscription, fence: bytes, into: list[bytes]) -> None:
    """Append every payload of *sub* to *into*, up to and without *fence*."""
    async for message in sub:
        if message.payload == fence:
            return
        into.append(message.payload)
    raise AssertionError(f"subscription ended before the fence {fence!r}")


@pytest.mark.parametrize(
    ("protocol", "qos"),
    [(V5, QoS.AT_LEAST_ONCE), (V5, QoS.EXACTLY_ONCE), (V311, QoS.EXACTLY_ONCE)],
    ids=["v5-qos1", "v5-qos2", "v311-qos2"],
)
async def test_client_broker_restart_loses_nothing(
    mosquitto_factory: Callable[[], Mosquitto],
    unique_topic: str,
    protocol: ProtocolVersion,
    qos: QoS,
) -> None:
    # broker.restart() stops mosquitto with SIGTERM, so it saves its sessions and
    # queued messages (persistence is on) and loads them again.
    broker = mosquitto_factory()
    restarted = anyio.Event()
    received: list[bytes] = []

    async def restart() -> None:
        await anyio.to_thread.run_sync(broker.restart)
        restarted.set()

    with anyio.fail_after(TIMEOUT):
        async with (
            persistent_client(broker, protocol, "sub") as subscriber,
            subscriber.subscription(unique_topic, qos=QoS.EXACTLY_ONCE) as sub,
            persistent_client(broker, protocol, "pub") as publisher,
            anyio.create_task_group() as tg,
        ):
            tg.start_soon(collect_until, sub, b"fence", received)
            sent = 0

            async def publish_next() -> None:
                nonlocal sent
                await publisher.publish(unique_topic, str(sent), qos=qos)
                sent += 1

            for _ in range(20):
                await publish_next()
            tg.start_soon(restart)
            # keep publishing while the broker goes down and comes back: some of
            # these are in flight when it stops, the others wait for the reconnect
            while not restarted.is_set():
                await publish_next()
            for _ in range(20):
                await publish_next()
            # every publish above was acknowledged before the fence was sent, so
            # everything, duplicates included, reaches the subscriber before it
            await publisher.publish(unique_topic, b"fence", qos=qos)
        sub_stats = subscriber.statistics()
        pub_stats = publisher.statistics()

    expected = [str(index).encode() for index in range(sent)]
    assert set(received) == set(expected)  # nothing lost
    if qos == QoS.EXACTLY_ONCE:
        duplicates = [p for p, n in Counter(received).items() if n > 1]
        assert duplicates == []  # and nothing twice
    assert sub_stats.reconnects >= 1
    assert pub_stats.reconnects >= 1


@pytest.mark.parametrize("protocol", [V311, V5], ids=["v311", "v5"])
async def test_client_broker_killed_resubscribes(
    mosquitto_factory: Callable[[], Mosquitto],
    unique_topic: str,
    protocol: ProtocolVersion,
) -> None:
    # SIGKILL: mosquitto saves nothing, so after the restart it knows no session
    # (CONNACK session present = 0) and the subscriber must subscribe again itself.
    broker = mosquitto_factory()
    back = anyio.Event()
    probes_seen = anyio.Event()
    received: list[bytes] = []

    async def kill_and_start() -> None:
        await anyio.to_thread.run_sync(partial(broker.stop, kill=True))
        await anyio.to_thread.run_sync(broker.start)
        back.set()

    with anyio.fail_after(TIMEOUT):
        async with (
            persistent_client(broker, protocol, "sub") as subscriber,
            subscriber.subscription(unique_topic, qos=QoS.AT_LEAST_ONCE) as sub,
            persistent_client(broker, protocol, "pub") as publisher,
        ):
            await publisher.publish(unique_topic, b"before", qos=QoS.AT_LEAST_ONCE)
            assert (await sub.receive()).payload == b"before"

            async with anyio.create_task_group() as tg:
                tg.start_soon(kill_and_start)
                await back.wait()

                async def watch() -> None:
                    async for message in sub:
                        if message.payload.startswith(b"probe"):
                            probes_seen.set()
                            return

                tg.start_soon(watch)
                # the broker lost the subscription; probe until the subscriber has
                # restored it (each probe waits for its PUBACK, so this paces itself)
                while not probes_seen.is_set():
                    await publisher.publish(
                        unique_topic, b"probe", qos=QoS.AT_LEAST_ONCE
                    )

            for index in range(10):
                await publisher.publish(unique_topic, str(index), qos=QoS.AT_LEAST_ONCE)
            await publisher.publish(unique_topic, b"fence", qos=QoS.AT_LEAST_ONCE)
            await collect_until(sub, b"fence", received)
            sub_stats = subscriber.statistics()

    after = [p for p in received if p != b"probe"]
    assert after == [str(index).encode() for index in range(10)]
    assert (sub_stats.connected, sub_stats.reconnects) == (True, 1)


async def test_client_broker_killed_without_reconnect_raises(
    mosquitto_factory: Callable[[], Mosquitto],
) -> None:
    broker = mosquitto_factory()
    client = MqttClient(broker.uri, reconnect=False)

    async def run_client(*, task_status: anyio.abc.TaskStatus[None]) -> None:
        with pytest.raises(ConnectionLost):
            await client.run(task_status=task_status)

    with anyio.fail_after(TIMEOUT):
        async with anyio.create_task_group() as tg:
            await tg.start(run_client)
            assert client.is_connected
            await anyio.to_thread.run_sync(partial(broker.stop, kill=True))
    assert not client.is_connected


async def test_client_publish_waits_for_broker_to_return(
    mosquitto_factory: Callable[[], Mosquitto], unique_topic: str
) -> None:
    broker = mosquitto_factory()
    with anyio.fail_after(TIMEOUT):
        async with (
            MqttClient(broker.uri, reconnect_delay=0.05, max_reconnect_delay=0.2) as c,
            c.subscription(unique_topic, qos=QoS.AT_LEAST_ONCE) as sub,
        ):
            await anyio.to_thread.run_sync(broker.stop)
            async with anyio.create_task_group() as tg:
                # published while the broker is down: waits, then goes out once the
                # client is back and has restored its subscription
                tg.start_soon(
                    partial(c.publish, unique_topic, b"late", qos=QoS.AT_LEAST_ONCE)
                )
                await anyio.to_thread.run_sync(broker.start)
            await c.wait_connected()
            message = await sub.receive()
    assert message.payload == b"late"


async def test_client_refused_on_reconnect_raises(
    mosquitto_factory: Callable[[], Mosquitto],
) -> None:
    # A refused CONNACK (not authorised) is not retried forever: run() ends with it.
    broker = mosquitto_factory()
    assert broker.directory is not None
    client = MqttClient(
        f"mqtt://127.0.0.1:{broker.auth_port}",
        username=broker.username,
        password=broker.password,
        reconnect_delay=0.05,
        max_reconnect_delay=0.2,
    )
    errors: list[ConnectError] = []

    async def run_client(*, task_status: anyio.abc.TaskStatus[None]) -> None:
        with pytest.raises(ConnectError) as info:
            await client.run(task_status=task_status)
        errors.append(info.value)

    with anyio.fail_after(TIMEOUT):
        async with anyio.create_task_group() as tg:
            await tg.start(run_client)
            await anyio.to_thread.run_sync(broker.stop)
            # the broker comes back with another password for this user
            await anyio.run_process(
                [
                    find_mosquitto("mosquitto_passwd"),
                    "-b",
                    str(broker.directory / "passwd"),
                    broker.username,
                    "changed-password",
                ]
            )
            await anyio.to_thread.run_sync(broker.start)
    (error,) = errors
    assert error.reason_code in {
        ReasonCode.BAD_USER_NAME_OR_PASSWORD,
        ReasonCode.NOT_AUTHORIZED,
    }
    assert broker.password not in str(error)
    assert not client.is_connected
