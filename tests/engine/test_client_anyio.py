"""The engine with the fake broker on both anyio backends (asyncio and trio).

No mock clock here (asyncio has none); nothing in these tests waits for time.
"""

from __future__ import annotations

import asyncio

import anyio
import pytest
import sniffio

from tests._fakes import Answer, FakeBroker, make_client
from trio_mqttconn import ConnectError, ConnectionLost, Message, ReasonCode
from trio_mqttconn._packets import DisconnectPacket, PublishPacket, SubscribePacket

pytestmark = pytest.mark.anyio


def _running_tasks() -> set[object]:
    if sniffio.current_async_library() == "asyncio":
        return set(asyncio.all_tasks())
    from tests._fakes import live_tasks

    return set(live_tasks())


async def test_anyio_publish_subscribe_round_trip() -> None:
    async with FakeBroker() as broker, make_client(broker) as client:
        async with client.subscription("a/#", qos=2) as sub:
            for qos in (0, 1, 2):
                await client.publish(f"a/{qos}", b"q%d" % qos, qos=qos)
                message = await sub.receive()
                assert (message.topic, message.payload, message.qos) == (
                    f"a/{qos}",
                    b"q%d" % qos,
                    qos,
                )
        conn = broker.connections[0]
        assert len(conn.packets(PublishPacket)) == 3
        assert len(conn.packets(SubscribePacket)) == 1
    await conn.wait_closed()
    assert isinstance(conn.received[-1], DisconnectPacket)


async def test_anyio_listener_and_reconnect() -> None:
    seen: list[Message] = []
    got_two = anyio.Event()

    async def listener(message: Message) -> None:
        seen.append(message)
        if len(seen) == 2:
            got_two.set()

    async with (
        FakeBroker() as broker,
        make_client(broker, reconnect_delay=0.001) as client,
    ):
        await client.subscribe("l", qos=1, listener=listener)
        await broker.publish("l", b"before", qos=1)
        await broker.connections[0].close()
        conn1 = await broker.wait_connection(1)
        await conn1.wait_for(SubscribePacket)
        await broker.publish("l", b"after", qos=1)
        await got_two.wait()
        assert [m.payload for m in seen] == [b"before", b"after"]


async def test_anyio_close_leaves_no_task_and_no_open_stream() -> None:
    async with FakeBroker() as broker:
        before = _running_tasks()
        async with (
            make_client(broker, keepalive=30) as client,
            client.subscription("s"),
        ):
            await client.publish("s", b"x", qos=1)
        await anyio.wait_all_tasks_blocked()
        assert _running_tasks() - before == set()
        assert broker.connections[0].client_stream.closed


async def test_anyio_errors_are_not_exception_groups() -> None:
    async with FakeBroker(
        default_answer=Answer(reason_code=ReasonCode.NOT_AUTHORIZED)
    ) as broker:
        with pytest.raises(ConnectError) as info:
            async with make_client(broker):
                pytest.fail("connected although refused")  # pragma: no cover
        assert info.value.reason_code is ReasonCode.NOT_AUTHORIZED
    async with FakeBroker() as broker:

        async def dropped() -> None:
            async with make_client(broker, reconnect=False):
                await broker.connections[0].close()
                await anyio.sleep_forever()

        with pytest.raises(ConnectionLost):
            await dropped()
