"""MqttConnection when brokers stop, restart and fail over (private brokers).

Re-subscription after a restart is observed through a retained message that a second
client publishes once the broker is back: the connection gets it exactly once,
either live (it re-subscribed first) or as the retained copy (it re-subscribed
after), so no test waits for time to pass.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING

import anyio
import anyio.to_thread
import attrs
import pytest

from trio_mqttconn import (
    ConfigParams,
    ConnectError,
    MqttClient,
    NotOpenError,
    References,
)
from trio_mqttconn._connection import (
    COUNTER_CONNECTS,
    COUNTER_ERRORS,
    COUNTER_RECONNECTS,
    MqttConnection,
)

from .test_connection import (
    COUNTERS,
    LOGGER,
    TIMEOUT,
    Collector,
    PipCounters,
    PipLogger,
    closed_port,
)

if TYPE_CHECKING:
    from trio_mqttconn.testing import Mosquitto

pytestmark = pytest.mark.anyio

Factory = Callable[[], "Mosquitto"]


@attrs.define(eq=False)
class StallingBroker:
    """Answers CONNECT, then drops (or ignores) the connection at the next packet."""

    port: int = 0
    drop: bool = True
    next_packet: anyio.Event = attrs.Factory(anyio.Event)

    async def serve(self, stream: anyio.abc.SocketStream) -> None:
        async with stream:
            await stream.receive()  # CONNECT
            await stream.send(b"\x20\x03\x00\x00\x00")  # CONNACK v5: success
            await stream.receive()  # PUBLISH or SUBSCRIBE
            self.next_packet.set()
            if not self.drop:
                await anyio.sleep_forever()


@contextlib.asynccontextmanager
async def stalling_broker(*, drop: bool) -> AsyncIterator[StallingBroker]:
    broker = StallingBroker(drop=drop)
    async with (
        await anyio.create_tcp_listener(local_host="127.0.0.1") as listener,
        anyio.create_task_group() as group,
    ):
        broker.port = listener.extra(anyio.abc.SocketAttribute.local_port)
        group.start_soon(listener.serve, broker.serve)
        yield broker
        group.cancel_scope.cancel()


def linked(connection: MqttConnection) -> bool:
    """``connection.is_connected``, read afresh (mypy narrows a property)."""
    return connection.is_connected


def lost_error(port: int) -> str:
    where = re.escape(f"mqtt://127.0.0.1:{port}")
    return (
        rf"^Connection to MQTT broker failed: lost the connection to {where}: .*; "
        r"call open\(\) to reconnect$"
    )


def observed_connection(
    *config: object,
) -> tuple[MqttConnection, PipLogger, PipCounters, Collector]:
    """A connection configured from *config* pairs, with a logger and counters set."""
    logger, counters, collector = PipLogger(), PipCounters(), Collector()
    connection = MqttConnection()
    connection.configure(ConfigParams.from_tuples(*config))
    connection.set_references(
        References.from_tuples(LOGGER, logger, COUNTERS, counters)
    )
    return connection, logger, counters, collector


async def publish_retained(uri: str, topic: str, payload: str) -> None:
    async with MqttClient(uri) as client:
        await client.publish(topic, payload, qos=1, retain=True)


async def test_connection_reconnects_and_resubscribes_after_restart(
    mosquitto_factory: Factory, unique_topic: str
) -> None:
    broker = mosquitto_factory()
    connection, logger, counters, collector = observed_connection(
        "connection.uri", broker.uri, "options.reconnect_timeout", 50
    )
    with anyio.fail_after(TIMEOUT):
        async with connection:
            await connection.subscribe(unique_topic, {"qos": 1}, collector)
            client = connection.get_connection()
            await anyio.to_thread.run_sync(broker.restart)
            await publish_retained(broker.uri, unique_topic, "after restart")
            await collector.wait_for(1)
            assert connection.get_connection() is client
            assert connection.is_open()
            assert linked(connection)
            # The link is usable again for publishing too.
            await connection.publish(unique_topic, "again", {"qos": 1})
            await collector.wait_for(2)
    assert collector.payloads == [b"after restart", b"again"]
    assert counters.counts[COUNTER_CONNECTS] == 2
    assert counters.counts[COUNTER_RECONNECTS] == 1
    assert COUNTER_ERRORS not in counters.counts
    assert "Reconnected to MQTT broker (1 times)" in logger.texts("info")


async def test_connection_without_retry_stays_open_but_disconnected(
    mosquitto_factory: Factory, unique_topic: str
) -> None:
    broker = mosquitto_factory()
    connection, logger, counters, collector = observed_connection(
        "connection.uri", broker.uri, "options.retry_connect", False
    )
    lost = re.compile(
        r"^Connection to MQTT broker failed: lost the connection to "
        rf"{re.escape(broker.uri)}: .*; call open\(\) to reconnect$"
    )
    with anyio.fail_after(TIMEOUT):
        async with connection:
            await connection.subscribe(unique_topic, {"qos": 1}, collector)
            first = connection.get_connection()
            await anyio.to_thread.run_sync(broker.stop)
            # QoS 1 waits for the PUBACK, which never comes: the drop is seen.
            with pytest.raises(ConnectError, match=lost) as info:
                await connection.publish(unique_topic, "lost", {"qos": 1})
            assert info.value.code == "CONNECT_FAILED"
            assert connection.is_open()
            assert not linked(connection)
            with pytest.raises(ConnectError, match=lost):
                await connection.publish(unique_topic, "still lost", None)
            with pytest.raises(ConnectError, match=lost):
                await connection.subscribe(f"{unique_topic}/2", None, Collector())

            await anyio.to_thread.run_sync(broker.start)
            await connection.open(None)  # reopens, subscribes the listener again
            assert connection.get_connection() is not first
            assert linked(connection)
            await connection.publish(unique_topic, "back", {"qos": 1})
            await collector.wait_for(1)
    assert collector.payloads == [b"back"]
    assert counters.counts[COUNTER_ERRORS] == 1
    assert counters.counts[COUNTER_CONNECTS] == 2
    assert COUNTER_RECONNECTS not in counters.counts
    [(_, _, error, text)] = [r for r in logger.records if r[0] == "error"]
    assert text == "Lost the connection to MQTT broker; call open() to reconnect"
    assert error is not None


async def test_connection_fails_over_to_the_next_broker_on_open(
    mosquitto: Mosquitto, unique_topic: str
) -> None:
    connection = MqttConnection()
    connection.configure(
        ConfigParams.from_tuples(
            "connections.0.uri",
            f"mqtt://127.0.0.1:{closed_port()}",
            "connections.1.host",
            mosquitto.host,
            "connections.1.port",
            mosquitto.port,
        )
    )
    collector = Collector()
    with anyio.fail_after(TIMEOUT):
        async with connection:
            await connection.subscribe(unique_topic, {"qos": 1}, collector)
            await connection.publish(unique_topic, "via the second", {"qos": 1})
            await collector.wait_for(1)
    assert collector.payloads == [b"via the second"]


async def test_connection_fails_over_when_its_broker_stops(
    mosquitto_factory: Factory, unique_topic: str
) -> None:
    first, second = mosquitto_factory(), mosquitto_factory()
    await publish_retained(second.uri, unique_topic, "from the second broker")
    connection = MqttConnection()
    connection.configure(
        ConfigParams.from_tuples(
            "connection.uri",
            f"{first.uri},{second.uri}",
            "options.reconnect_timeout",
            50,
        )
    )
    collector = Collector()
    with anyio.fail_after(TIMEOUT):
        async with connection:
            await connection.subscribe(unique_topic, {"qos": 1}, collector)
            assert collector.payloads == []  # the first broker has nothing retained
            await anyio.to_thread.run_sync(first.stop)
            await collector.wait_for(1)  # re-subscribed on the second broker
            assert linked(connection)
    assert collector.payloads == [b"from the second broker"]


@pytest.mark.parametrize("operation", ["publish", "subscribe"])
async def test_connection_drop_during_an_operation_without_retry(
    operation: str, unique_topic: str
) -> None:
    with anyio.fail_after(TIMEOUT):
        async with stalling_broker(drop=True) as broker:
            connection = MqttConnection()
            connection.configure(
                ConfigParams.from_tuples(
                    "connection.uri",
                    f"mqtt://127.0.0.1:{broker.port}",
                    "options.retry_connect",
                    False,
                )
            )
            async with connection:
                call = (
                    connection.publish(unique_topic, "x", {"qos": 1})
                    if operation == "publish"
                    else connection.subscribe(unique_topic, None, Collector())
                )
                with pytest.raises(ConnectError, match=lost_error(broker.port)):
                    await call
                assert broker.next_packet.is_set()
                assert connection.is_open()
                assert not linked(connection)


@pytest.mark.parametrize("drop", [True, False])
async def test_connection_close_fails_a_waiting_operation_with_not_open(
    drop: bool, unique_topic: str
) -> None:
    raised: list[BaseException] = []

    async def publish(connection: MqttConnection) -> None:
        try:
            await connection.publish(unique_topic, "x", {"qos": 1})
        except NotOpenError as exc:
            raised.append(exc)

    with anyio.fail_after(TIMEOUT):
        async with stalling_broker(drop=drop) as broker:
            connection = MqttConnection()
            connection.configure(
                {
                    "connection.uri": f"mqtt://127.0.0.1:{broker.port}",
                    "options.reconnect_timeout": 60_000,
                }
            )
            async with connection, anyio.create_task_group() as group:
                group.start_soon(publish, connection)
                # The broker got the PUBLISH and dropped the connection (the engine
                # waits to reconnect) or stays silent (no PUBACK): close now.
                await broker.next_packet.wait()
                await connection.close(None)
    [error] = raised
    assert str(error) == "Connection was not opened"


async def test_connection_reopen_that_cannot_resubscribe_stays_disconnected(
    mosquitto_factory: Factory, unique_topic: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    broker = mosquitto_factory()
    connection = MqttConnection()
    connection.configure(
        {"connection.uri": broker.uri, "options.retry_connect": "false"}
    )
    with anyio.fail_after(TIMEOUT):
        async with connection:
            await connection.subscribe(unique_topic, {"qos": 1}, Collector())
            await anyio.to_thread.run_sync(broker.stop)
            with pytest.raises(ConnectError):
                await connection.publish(unique_topic, "lost", {"qos": 1})
            dead = connection.get_connection()
            await anyio.to_thread.run_sync(broker.start)

            async def refuse(*args: object) -> None:
                raise RuntimeError("cannot subscribe again")

            monkeypatch.setattr(MqttConnection, "_attach", refuse)
            with pytest.raises(RuntimeError, match=r"^cannot subscribe again$"):
                await connection.open(None)
            assert connection.is_open()
            assert connection.get_connection() is dead
            assert not linked(connection)
