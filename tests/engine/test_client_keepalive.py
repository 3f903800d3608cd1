"""Keepalive: PINGREQ timing, dead-broker detection, slow consumers (autojump clock).

Virtual time starts at 0 and the fake broker answers at once, so the first CONNACK
arrives at t = 0 and every time below is exact. ``trio.sleep_until`` only positions a
scenario in virtual time (e.g. "the consumer is busy for 100 s"); waiting for
something to happen always uses events.
"""

from __future__ import annotations

import pytest
import trio
import trio.testing

from tests._fakes import (
    Answer,
    FakeBroker,
    make_client,
    virtual_deadline_fixture,  # noqa: F401 - the virtual_deadline fixture
)
from trio_mqttconn import ConnectionLost, Properties
from trio_mqttconn._packets import PingReqPacket

pytestmark = pytest.mark.trio


async def test_keepalive_sends_pingreq_when_idle(
    autojump_clock: trio.testing.MockClock,
    virtual_deadline: None,
) -> None:
    # [v5:MQTT-3.1.2-20] [v311:MQTT-3.1.2-23]
    async with FakeBroker() as broker, make_client(broker, keepalive=10):
        conn = await broker.wait_connection(0)
        assert trio.current_time() == 0
        await conn.wait_for(PingReqPacket)
        assert trio.current_time() == 10
        await conn.wait_for(PingReqPacket, count=2)
        assert trio.current_time() == 20
        await conn.wait_for(PingReqPacket, count=3)
        assert trio.current_time() == 30
        assert len(broker.connections) == 1


async def test_keepalive_acknowledged_traffic_postpones_the_ping(
    autojump_clock: trio.testing.MockClock,
    virtual_deadline: None,
) -> None:
    async with FakeBroker() as broker, make_client(broker, keepalive=10) as client:
        conn = await broker.wait_connection(0)
        await trio.sleep_until(6)
        await client.publish("t", b"x", qos=1)  # PUBLISH out, PUBACK in at t = 6
        await conn.wait_for(PingReqPacket)
        assert trio.current_time() == 16


async def test_keepalive_pings_when_only_sending(
    autojump_clock: trio.testing.MockClock,
    virtual_deadline: None,
) -> None:
    # QoS 0 traffic is sent but nothing is received: the broker may be gone.
    async with FakeBroker() as broker, make_client(broker, keepalive=10) as client:
        conn = await broker.wait_connection(0)
        await trio.sleep_until(6)
        await client.publish("t", b"x")
        await conn.wait_for(PingReqPacket)
        assert trio.current_time() == 10


async def test_keepalive_declares_silent_broker_dead_at_one_and_a_half_keepalive(
    autojump_clock: trio.testing.MockClock,
    virtual_deadline: None,
) -> None:
    async with (
        FakeBroker(answer_pings=False) as broker,
        make_client(broker, keepalive=10) as client,
    ):
        conn = await broker.wait_connection(0)
        await conn.wait_for(PingReqPacket)
        assert trio.current_time() == 10
        await conn.wait_closed()
        assert trio.current_time() == 15
        assert conn.closed_at == 15
        assert not client.is_connected
        # then the normal reconnect: reconnect_delay (1 s) later
        broker.answer_pings = True
        conn1 = await broker.wait_connection(1)
        assert conn1.opened_at == 16
        await client.wait_connected()
        assert client.is_connected


async def test_keepalive_dead_broker_without_reconnect_raises_connection_lost(
    autojump_clock: trio.testing.MockClock,
    virtual_deadline: None,
) -> None:
    async with FakeBroker(answer_pings=False) as broker:
        client = make_client(broker, keepalive=10, reconnect=False)
        with pytest.raises(
            ConnectionLost,
            match=r"^lost the connection to mqtt://broker\.test:1883: "
            r"the broker did not answer for 15 s \(keepalive 10 s\); "
            r"the connection is dead$",
        ):
            await client.run()
        assert trio.current_time() == 15
        assert len(broker.connections) == 1


async def test_keepalive_server_keep_alive_replaces_the_clients(
    autojump_clock: trio.testing.MockClock,
    virtual_deadline: None,
) -> None:
    # [v5:MQTT-3.1.2-21] [v5:MQTT-3.2.2-21]
    async with (
        FakeBroker(
            default_answer=Answer(properties=Properties(server_keep_alive=4))
        ) as broker,
        make_client(broker, keepalive=60),
    ):
        conn = await broker.wait_connection(0)
        await conn.wait_for(PingReqPacket)
        assert trio.current_time() == 4
        broker.answer_pings = False
        await conn.wait_closed()
        assert trio.current_time() == 4 + 4 * 1.5


async def test_keepalive_zero_never_pings(
    autojump_clock: trio.testing.MockClock,
    virtual_deadline: None,
) -> None:
    async with (
        FakeBroker(answer_pings=False) as broker,
        make_client(broker, keepalive=0),
    ):
        conn = await broker.wait_connection(0)
        await trio.sleep_until(100_000)
        assert conn.packets(PingReqPacket) == []
        assert not conn.closed


async def test_keepalive_slow_consumer_is_not_a_dead_broker(
    autojump_clock: trio.testing.MockClock,
    virtual_deadline: None,
) -> None:
    # The reader waits on a full subscription channel (overflow="wait"); PINGRESPs
    # pile up unread behind the messages. That pause must not count as silence.
    async with (
        FakeBroker() as broker,
        make_client(broker, keepalive=10) as client,
        client.subscription("t/#", buffer=1) as sub,
    ):
        conn = broker.connections[0]
        for index in range(4):
            await broker.publish("t/x", str(index).encode())
        await trio.testing.wait_all_tasks_blocked()
        assert sub.statistics().queued == 1
        await trio.sleep_until(100)  # the consumer is busy for 100 s
        assert not conn.closed
        assert client.is_connected
        assert len(broker.connections) == 1
        payloads = [(await sub.receive()).payload for _ in range(4)]
        assert payloads == [b"0", b"1", b"2", b"3"]
        assert sub.statistics().dropped == 0
        # the connection is healthy afterwards: pings are answered, nothing drops
        pings = len(conn.packets(PingReqPacket))
        await conn.wait_for(PingReqPacket, count=pings + 2)
        assert not conn.closed
        assert len(broker.connections) == 1


async def test_keepalive_slow_consumer_with_dead_broker_is_detected_after_resume(
    autojump_clock: trio.testing.MockClock,
    virtual_deadline: None,
) -> None:
    # Pausing protects a slow consumer, not a dead broker: once the reader is back
    # in receive, 1.5 x keepalive of silence still ends the connection. (The reader
    # pauses only past the QoS 0 intake limit: 0 here.)
    async with (
        FakeBroker() as broker,
        make_client(broker, keepalive=10, intake_limit=0) as client,
        client.subscription("t/#", buffer=1) as sub,
    ):
        conn = broker.connections[0]
        broker.answer_pings = False
        await broker.publish("t/x", b"0")
        await broker.publish("t/x", b"1")
        await trio.sleep_until(100)
        assert not conn.closed
        assert (await sub.receive()).payload == b"0"
        assert (await sub.receive()).payload == b"1"  # the intake has room again
        resumed = trio.current_time()
        await conn.wait_closed()
        assert trio.current_time() <= resumed + 15
        await client.wait_connected()
