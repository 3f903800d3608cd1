"""``publish_nowait``: QoS 0 without a checkpoint, never half-sent, bounded, no trace.

The synchronous twin of ``await publish()`` for QoS 0 (#9, speed: the 64 B QoS 0
publisher row). It writes to the socket (trio) or the transport (asyncio) at once;
what the socket does not take joins the outbox, which the link's ack writer task
writes; past 64 KiB waiting it raises ``anyio.WouldBlock`` and leaves nothing behind.
These tests use the socketpair broker of ``test_client_direct_writes`` to fill the
client's send buffer on purpose.
"""

from __future__ import annotations

import anyio
import anyio.lowlevel
import pytest

from tests._fakes import FakeBroker, make_client as make_fake_client
from tests.engine.test_client_direct_writes import SocketPairBroker, make_client
from trio_mqttconn import ConnectionLost, MqttClient, NotOpenError
from trio_mqttconn._engine.link import NOWAIT_BUFFER
from trio_mqttconn._packets import ConnAckPacket, PublishPacket
from trio_mqttconn._properties import Properties

pytestmark = pytest.mark.anyio


async def _receive_publish(broker: SocketPairBroker) -> PublishPacket:
    packet = await broker.receive_packet()
    assert isinstance(packet, PublishPacket)
    return packet


async def test_publish_nowait_mixes_in_order_with_awaited_publishes(
    anyio_backend_name: str,
) -> None:
    broker = SocketPairBroker()
    try:
        with anyio.fail_after(10):
            async with anyio.create_task_group() as group:
                group.start_soon(broker.accept)
                async with make_client(broker) as client:
                    await client.publish("t", b"0")  # the link is ready
                    if anyio_backend_name == "trio":
                        import trio.testing

                        with trio.testing.assert_no_checkpoints():
                            client.publish_nowait("t", b"1")
                            client.publish_nowait("t", "2", retain=True)
                    else:
                        client.publish_nowait("t", b"1")
                        client.publish_nowait("t", "2", retain=True)
                    await client.publish("t", b"3")
                    client.publish_nowait("u", bytearray(b"4"))
                    got = [await _receive_publish(broker) for _ in range(5)]
                    assert [(p.topic, p.payload, p.qos) for p in got] == [
                        ("t", b"0", 0),
                        ("t", b"1", 0),
                        ("t", b"2", 0),
                        ("t", b"3", 0),
                        ("u", b"4", 0),
                    ]
                    assert [p.retain for p in got] == [False, False, True, False, False]
                    assert client.statistics().messages_published == 5
    finally:
        broker.close()


async def test_publish_nowait_with_a_full_socket_is_bounded_and_never_half_sent() -> (
    None
):
    """Refused or partial writes: the rest goes out from the link's writer task;
    past NOWAIT_BUFFER bytes waiting, WouldBlock. Every accepted message arrives
    whole and in order, once, and the client can publish again afterwards."""
    broker = SocketPairBroker()
    payloads: list[bytes] = []
    try:
        with anyio.fail_after(10):
            async with anyio.create_task_group() as group:
                group.start_soon(broker.accept)
                async with make_client(broker) as client:
                    await client.publish("warm", b"w")
                    assert (await _receive_publish(broker)).payload == b"w"
                    broker.fill_client_buffer()
                    refused = 0
                    for n in range(1000):
                        payload = bytes([n % 251]) * 7_000
                        try:
                            client.publish_nowait("big", payload)
                        except anyio.WouldBlock:
                            refused += 1
                            break
                        payloads.append(payload)
                    assert refused == 1
                    # Bounded: at most one message beyond the buffer waits.
                    assert len(payloads) * 7_000 <= NOWAIT_BUFFER + 7_000 + 300_000
                    # An awaited publish waits its turn behind them.
                    done = anyio.Event()

                    async def publish_last() -> None:
                        await client.publish("big", b"last")
                        done.set()

                    group.start_soon(publish_last)
                    for payload in payloads:
                        packet = await _receive_publish(broker)
                        assert (packet.topic, packet.payload) == ("big", payload)
                    assert (await _receive_publish(broker)).payload == b"last"
                    await done.wait()
                    client.publish_nowait("small", b"x")  # room again
                    assert (await _receive_publish(broker)).payload == b"x"
                    assert client.is_connected
                    assert client.statistics().connects == 1
    finally:
        broker.close()


async def test_publish_nowait_refused_leaves_no_topic_alias() -> None:
    """#9 section 4's rule for a cancelled publish holds for a refused one too."""
    broker = SocketPairBroker()

    async def accept() -> None:
        await broker.receive_packet()
        await broker.send(ConnAckPacket(properties=Properties(topic_alias_maximum=5)))

    try:
        with anyio.fail_after(10):
            async with anyio.create_task_group() as group:
                group.start_soon(accept)
                client = MqttClient(
                    "mqtt://pair",
                    client_id="d2",
                    keepalive=0,
                    transport=broker.transport,
                    outgoing_topic_aliases=True,
                )
                async with client:
                    await client.publish("warm", b"w")
                    await _receive_publish(broker)
                    broker.fill_client_buffer()
                    sent = 0
                    while True:
                        try:
                            client.publish_nowait("filler", b"f" * 7_000)
                        except anyio.WouldBlock:
                            break
                        sent += 1
                    assert 0 < sent < 1000
                    with pytest.raises(anyio.WouldBlock):
                        client.publish_nowait("fresh/topic", b"refused")
                    for _ in range(sent):
                        await _receive_publish(broker)
                    await client.publish("fresh/topic", b"after")
                    packet = await _receive_publish(broker)
                    # The refused call took no alias: the first one that went out
                    # names the topic (an alias alone would be a protocol error).
                    assert packet.topic == "fresh/topic"
                    assert packet.payload == b"after"
    finally:
        broker.close()


async def test_publish_nowait_checks_its_arguments_and_the_client_state() -> None:
    client = MqttClient("mqtt://127.0.0.1:1", reconnect=False)
    with pytest.raises(NotOpenError, match="not running"):
        client.publish_nowait("t", b"x")
    with pytest.raises(TypeError, match="topic"):
        client.publish_nowait(7, b"x")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="payload"):
        client.publish_nowait("t", 7)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="wildcard"):
        client.publish_nowait("t/+", b"x")


async def test_publish_nowait_while_reconnecting_would_block() -> None:
    async with FakeBroker() as broker:
        client = make_fake_client(broker)
        async with client:
            await client.publish("t", b"x")
            link = client._conn
            assert link is not None
            link.end(ConnectionLost("dropped by the test"))
            with pytest.raises(anyio.WouldBlock, match="connecting"):
                client.publish_nowait("t", b"y")


async def test_publish_nowait_on_a_stream_without_direct_writes() -> None:
    """TLS, WebSocket and the fake broker's memory streams take no synchronous
    write: the bytes wait in the outbox for the link's writer task."""
    async with FakeBroker() as broker:
        client = make_fake_client(broker)
        async with client:
            await client.wait_connected()
            for n in range(5):
                client.publish_nowait("t", b"%d" % n)
            await client.publish("t", b"end")
            conn = broker.connections[0]
            await broker.wait_until(lambda: len(conn.packets(PublishPacket)) == 6)
            assert [p.payload for p in conn.packets(PublishPacket)] == [
                b"0",
                b"1",
                b"2",
                b"3",
                b"4",
                b"end",
            ]


async def test_publish_nowait_right_after_async_with_returns() -> None:
    """A first connection that brought nothing with its CONNACK is ready when
    ``async with`` returns: no WouldBlock for the first message."""
    async with FakeBroker() as broker, make_fake_client(broker) as client:
        client.publish_nowait("t", b"first")
        await client.publish("t", b"second")
        conn = broker.connections[0]
        await broker.wait_until(lambda: len(conn.packets(PublishPacket)) == 2)
        assert [p.payload for p in conn.packets(PublishPacket)] == [
            b"first",
            b"second",
        ]
