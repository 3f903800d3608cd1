"""The engine tests' doubles: memory byte streams (trio and asyncio) and FakeBroker."""

from __future__ import annotations

import errno

import anyio
import pytest

from tests._fakes import Answer, FakeBroker, memory_byte_stream_pair
from trio_mqttconn import ProtocolVersion, QoS, ReasonCode
from trio_mqttconn._packets import (
    ConnAckPacket,
    ConnectPacket,
    PacketDecoder,
    PingReqPacket,
    PingRespPacket,
    PublishPacket,
    SubAckPacket,
    SubscribePacket,
    TopicSubscription,
    encode_packet,
)
from trio_mqttconn._properties import Properties
from trio_mqttconn._transports import parse_uri

pytestmark = pytest.mark.anyio

V5 = ProtocolVersion.V5
ENDPOINT = parse_uri("mqtt://broker.test:1883")


async def test_memory_stream_delivers_bytes_in_order_and_records_writes() -> None:
    client, broker = memory_byte_stream_pair()
    await client.send(b"abc")
    await client.send(b"def")
    assert await broker.receive(4) == b"abcd"
    assert await broker.receive() == b"ef"
    assert client.writes == [b"abc", b"def"]
    assert client.written == b"abcdef"
    assert broker.bytes_received == 6


async def test_memory_stream_receive_waits_for_data() -> None:
    client, broker = memory_byte_stream_pair()
    received: list[bytes] = []

    async def reader() -> None:
        received.append(await broker.receive())

    async with anyio.create_task_group() as tg:
        tg.start_soon(reader)
        await anyio.wait_all_tasks_blocked()
        assert received == []
        await client.send(b"x")
    assert received == [b"x"]


async def test_memory_stream_close_gives_peer_eof_after_the_data() -> None:
    client, broker = memory_byte_stream_pair()
    await client.send(b"tail")
    await client.aclose()
    assert client.closed
    assert broker.peer_closed
    assert await broker.receive() == b"tail"
    with pytest.raises(anyio.EndOfStream):
        await broker.receive()
    with pytest.raises(anyio.BrokenResourceError):
        await broker.send(b"late")
    with pytest.raises(anyio.ClosedResourceError):
        await client.send(b"after close")
    with pytest.raises(anyio.ClosedResourceError):
        await client.receive()


async def test_memory_stream_close_wakes_own_pending_receive() -> None:
    client, _broker = memory_byte_stream_pair()
    outcome: list[type[BaseException]] = []

    async def reader() -> None:
        try:
            await client.receive()
        except anyio.ClosedResourceError as exc:
            outcome.append(type(exc))

    async with anyio.create_task_group() as tg:
        tg.start_soon(reader)
        await anyio.wait_all_tasks_blocked()
        await client.aclose()
    assert outcome == [anyio.ClosedResourceError]


async def test_memory_stream_send_eof_half_closes() -> None:
    client, broker = memory_byte_stream_pair()
    await client.send(b"req")
    await client.send_eof()
    assert client.eof_sent
    assert await broker.receive() == b"req"
    with pytest.raises(anyio.EndOfStream):
        await broker.receive()
    await broker.send(b"still open")
    assert await client.receive() == b"still open"
    with pytest.raises(anyio.ClosedResourceError):
        await client.send(b"no")


async def test_memory_stream_eof_in_the_middle_of_a_packet() -> None:
    client, broker = memory_byte_stream_pair()
    data = encode_packet(PingRespPacket(), V5)
    await broker.send(data[:1])
    await broker.send_eof()
    assert await client.receive() == data[:1]
    with pytest.raises(anyio.EndOfStream):
        await client.receive()


async def test_memory_stream_drop_after_delivers_only_the_first_bytes() -> None:
    client, broker = memory_byte_stream_pair()
    client.drop_after(5)
    await client.send(b"abc")
    with pytest.raises(
        anyio.BrokenResourceError, match=r"^memory/client: connection reset$"
    ):
        await client.send(b"defgh")
    assert await broker.receive() == b"abcde"
    with pytest.raises(anyio.BrokenResourceError):
        await broker.receive()
    with pytest.raises(anyio.BrokenResourceError):
        await broker.send(b"x")
    with pytest.raises(anyio.BrokenResourceError):
        await client.receive()


async def test_memory_stream_drop_after_exact_boundary_sends_then_breaks() -> None:
    client, broker = memory_byte_stream_pair()
    client.drop_after(3)
    await client.send(b"abc")
    with pytest.raises(anyio.BrokenResourceError):
        await client.send(b"d")
    assert await broker.receive() == b"abc"


async def test_memory_stream_drop_after_rejects_negative_counts() -> None:
    client, _ = memory_byte_stream_pair()
    with pytest.raises(ValueError, match=r"^count must be >= 0, not -1$"):
        client.drop_after(-1)


async def test_memory_stream_abort_breaks_both_directions() -> None:
    client, broker = memory_byte_stream_pair()
    broker.abort()
    with pytest.raises(anyio.BrokenResourceError):
        await client.receive()
    with pytest.raises(anyio.BrokenResourceError):
        await client.send(b"x")


async def test_memory_stream_stalled_send_blocks_until_cancelled() -> None:
    client, broker = memory_byte_stream_pair()
    client.stall_sends()
    with anyio.move_on_after(0.01) as scope:
        await client.send(b"never")
    assert scope.cancelled_caught
    assert client.writes == []
    client.resume_sends()
    await client.send(b"now")
    assert await broker.receive() == b"now"


async def test_memory_stream_stalled_send_resumes() -> None:
    client, broker = memory_byte_stream_pair()
    client.stall_sends()
    async with anyio.create_task_group() as tg:
        tg.start_soon(client.send, b"later")
        await anyio.wait_all_tasks_blocked()
        assert client.writes == []
        client.resume_sends()
    assert await broker.receive() == b"later"


async def test_memory_stream_cancelled_receive_consumes_nothing() -> None:
    client, broker = memory_byte_stream_pair()
    with anyio.CancelScope() as scope:
        scope.cancel()
        await client.receive()
    await broker.send(b"kept")
    assert await client.receive() == b"kept"


async def test_memory_stream_rejects_zero_max_bytes() -> None:
    client, _ = memory_byte_stream_pair()
    with pytest.raises(ValueError, match=r"^max_bytes must be >= 1, not 0$"):
        await client.receive(0)


# -- FakeBroker driven by hand, with the codec ----------------------------------------


async def _connect(
    broker: FakeBroker, **connect: object
) -> tuple[anyio.abc.ByteStream, PacketDecoder]:
    stream = await broker.connect(ENDPOINT)
    await stream.send(encode_packet(ConnectPacket(client_id="raw", **connect), V5))  # type: ignore[arg-type]
    return stream, PacketDecoder(V5)


async def _next(stream: anyio.abc.ByteStream, decoder: PacketDecoder) -> object:
    while True:
        packet = decoder.next_packet()
        if packet is not None:
            return packet
        decoder.feed(await stream.receive())


async def test_fake_broker_answers_connect_ping_and_subscribe() -> None:
    async with FakeBroker() as broker:
        stream, decoder = await _connect(broker)
        assert await _next(stream, decoder) == ConnAckPacket()
        conn = await broker.wait_connection(0)
        await conn.wait_connacked()
        assert conn.connect is not None
        assert conn.connect.client_id == "raw"
        await stream.send(encode_packet(PingReqPacket(), V5))
        assert await _next(stream, decoder) == PingRespPacket()
        subscribe = SubscribePacket(
            packet_id=7,
            subscriptions=(TopicSubscription(filter="a/#", qos=QoS.AT_LEAST_ONCE),),
            properties=Properties(subscription_identifiers=(3,)),
        )
        await stream.send(encode_packet(subscribe, V5))
        assert await _next(stream, decoder) == SubAckPacket(
            packet_id=7, reason_codes=(ReasonCode.GRANTED_QOS_1,)
        )
        await broker.publish("a/b", b"hello", qos=1)
        delivered = await _next(stream, decoder)
        assert isinstance(delivered, PublishPacket)
        assert (delivered.topic, delivered.payload, delivered.qos) == (
            "a/b",
            b"hello",
            1,
        )
        assert delivered.properties.subscription_identifiers == (3,)
        await stream.aclose()
        await conn.wait_closed()
        assert conn.close_reason == "eof"
        assert conn.received[-1] == subscribe


async def test_fake_broker_scripted_answers_apply_in_order() -> None:
    async with FakeBroker() as broker:
        broker.script(
            Answer(refuse=True),
            Answer(reason_code=ReasonCode.NOT_AUTHORIZED),
            Answer(session_present=True, properties=Properties(server_keep_alive=5)),
        )
        with pytest.raises(ConnectionRefusedError) as info:
            await broker.connect(ENDPOINT)
        assert info.value.errno == errno.ECONNREFUSED
        stream, decoder = await _connect(broker)
        assert await _next(stream, decoder) == ConnAckPacket(
            reason_code=ReasonCode.NOT_AUTHORIZED
        )
        await broker.connections[0].wait_closed()
        assert broker.connections[0].close_reason == "refused"
        stream, decoder = await _connect(broker)
        assert await _next(stream, decoder) == ConnAckPacket(
            session_present=True, properties=Properties(server_keep_alive=5)
        )
        assert [attempt.outcome for attempt in broker.attempts] == [
            "refused",
            "opened",
            "opened",
        ]
        assert broker.pending_answers == 0


async def test_fake_broker_refuses_listed_hosts() -> None:
    async with FakeBroker(refuse_hosts={"broker.test"}) as broker:
        with pytest.raises(ConnectionRefusedError):
            await broker.connect(ENDPOINT)
        assert broker.connections == []


async def test_fake_broker_connect_outside_its_block_is_an_error() -> None:
    broker = FakeBroker()
    with pytest.raises(
        RuntimeError,
        match=r"^the fake broker is not running, use it inside 'async with FakeBroker\(\)'$",
    ):
        await broker.connect(ENDPOINT)
