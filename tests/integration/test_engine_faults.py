"""MqttClient through the fault proxy, against the real mosquitto (#9).

The proxy (``tests/_faultproxy.py``) resets, blackholes, stalls and cuts the
connection under a client doing real work; each test checks that nothing the
broker acknowledged is lost and that the client recovers on its own. Every test is
bounded by ``anyio.fail_after``; nothing sleeps to synchronise.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

import anyio
import pytest

from tests._faultproxy import FaultProxy
from trio_mqttconn import (
    ConnectError,
    ConnectionLost,
    ConnectTimeout,
    MqttClient,
    QoS,
)

if TYPE_CHECKING:
    from trio_mqttconn.testing import Mosquitto

pytestmark = [pytest.mark.anyio, pytest.mark.broker]

TIMEOUT = 20


def _client(uri: str, **options: object) -> MqttClient:
    settings: dict[str, object] = {
        "client_id": f"faults-{uuid.uuid4().hex[:12]}",
        "reconnect_delay": 0.05,
        "max_reconnect_delay": 0.2,
        "connect_timeout": 2.0,
    }
    settings.update(options)
    return MqttClient(uri, **settings)  # type: ignore[arg-type]


@pytest.mark.parametrize("rst", [True, False], ids=["rst", "fin"])
async def test_engine_faults_drop_then_qos1_round_trip_survives(
    mosquitto: Mosquitto, unique_topic: str, rst: bool
) -> None:
    with anyio.fail_after(TIMEOUT):
        async with (
            FaultProxy(mosquitto.port) as proxy,
            _client(proxy.uri, clean_start=False, session_expiry=60) as client,
            client.subscription(f"{unique_topic}/#", qos=1) as sub,
        ):
            await client.publish(f"{unique_topic}/a", b"before", qos=1)
            assert (await sub.receive()).payload == b"before"
            proxy.drop(rst=rst)
            await proxy.wait_accepted(2)
            await client.publish(f"{unique_topic}/a", b"after", qos=1)
            payloads = {(await sub.receive()).payload}
            while b"after" not in payloads:
                payloads.add((await sub.receive()).payload)
            assert client.statistics().reconnects >= 1
            assert client.statistics().last_disconnect_reason


async def test_engine_faults_blackhole_both_ways_is_a_dead_peer(
    mosquitto: Mosquitto, unique_topic: str
) -> None:
    # Bytes vanish, sockets stay open: only the keepalive can tell. The client
    # reconnects once the path heals, and its QoS 1 publish goes through.
    with anyio.fail_after(TIMEOUT):
        async with (
            FaultProxy(mosquitto.port) as proxy,
            _client(proxy.uri, keepalive=1) as client,
        ):
            proxy.blackhole()
            proxy.hang_new()  # reconnect attempts hang until healed
            await proxy.wait_accepted(2)
            assert not client.is_connected
            assert "did not answer" in (
                client.statistics().last_disconnect_reason or ""
            )
            proxy.heal()
            with anyio.fail_after(10):
                await client.publish(f"{unique_topic}/x", b"through", qos=1)


async def test_engine_faults_stalled_upstream_with_flood_is_detected(
    mosquitto: Mosquitto, unique_topic: str
) -> None:
    # The broker stops reading: our writes back up. The PINGREQ cannot get out
    # either, so the keepalive ends the connection instead of hanging forever.
    with anyio.fail_after(TIMEOUT):
        async with (
            FaultProxy(mosquitto.port) as proxy,
            _client(proxy.uri, keepalive=1) as client,
        ):
            proxy.stall("both")

            async def flood() -> None:
                while proxy.accepted < 2:
                    try:
                        await client.publish(f"{unique_topic}/f", b"x" * 1024)
                    except ConnectionLost:
                        pass  # the write that was stuck when the link ended

            async with anyio.create_task_group() as group:
                group.start_soon(flood)
                await proxy.wait_accepted(2)
                proxy.heal()
            await client.wait_connected()
            await client.publish(f"{unique_topic}/x", b"ok", qos=QoS.AT_LEAST_ONCE)


async def test_engine_faults_cut_mid_packet_then_reconnect(
    mosquitto: Mosquitto, unique_topic: str
) -> None:
    with anyio.fail_after(TIMEOUT):
        async with (
            FaultProxy(mosquitto.port) as proxy,
            _client(proxy.uri) as client,
        ):
            proxy.cut_after(10, "up")  # in the middle of the next PUBLISH
            await client.publish(f"{unique_topic}/c", b"y" * 200, qos=1)
            assert proxy.accepted >= 2


async def test_engine_faults_accept_and_hang_times_out(mosquitto: Mosquitto) -> None:
    with anyio.fail_after(TIMEOUT):
        async with FaultProxy(mosquitto.port) as proxy:
            proxy.hang_new()
            with pytest.raises(
                ConnectTimeout,
                match=rf"^connecting to mqtt://127\.0\.0\.1:{proxy.port} took longer "
                r"than 0\.3 s \(connect_timeout\)$",
            ):
                async with _client(proxy.uri, connect_timeout=0.3):
                    pytest.fail("connected through a hanging proxy")


async def test_engine_faults_refused_port_is_a_connect_error(
    mosquitto: Mosquitto,
) -> None:
    with anyio.fail_after(TIMEOUT):
        async with FaultProxy(mosquitto.port) as proxy:
            proxy.refuse()
            with pytest.raises(
                ConnectError, match=r"^connection to mqtt://127\.0\.0\.1:"
            ):
                async with _client(proxy.uri):
                    pytest.fail("connected to a closed port")


async def test_engine_faults_mqtt_uri_to_the_websocket_port_says_http(
    mosquitto: Mosquitto,
) -> None:
    # mosquitto's WebSocket listener answers an MQTT CONNECT with HTTP.
    with anyio.fail_after(TIMEOUT), pytest.raises(ConnectError) as info:
        async with _client(f"mqtt://127.0.0.1:{mosquitto.ws_port}", connect_timeout=5):
            pytest.fail("connected to the WebSocket port with mqtt://")
    assert str(info.value) == (
        f"mqtt://127.0.0.1:{mosquitto.ws_port} answered CONNECT with HTTP: it is a "
        "web or WebSocket port, not MQTT; use ws:// (or wss://) with the broker's "
        "WebSocket path, or the broker's MQTT port"
    )
