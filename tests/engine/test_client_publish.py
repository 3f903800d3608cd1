"""publish(): completion per QoS, refusals, validation, properties."""

from __future__ import annotations

import functools

import pytest
import trio
import trio.testing

from tests._fakes import (
    FakeBroker,
    make_client,
    virtual_deadline_fixture,  # noqa: F401 - the virtual_deadline fixture
)
from trio_mqttconn import (
    Properties,
    ProtocolVersion,
    PublishError,
    QoS,
    ReasonCode,
)
from trio_mqttconn._packets import (
    PubAckPacket,
    PubCompPacket,
    PublishPacket,
    PubRecPacket,
    PubRelPacket,
)

pytestmark = pytest.mark.trio


async def test_publish_qos0_returns_after_the_write(
    autojump_clock: trio.testing.MockClock, virtual_deadline: None
) -> None:
    async with FakeBroker() as broker, make_client(broker) as client:
        await client.publish("a/b", b"zero")
        conn = broker.connections[0]
        # the bytes are written when publish returns
        assert conn.client_stream.written.endswith(b"zero")
        packet = await conn.wait_for(PublishPacket)
        assert packet == PublishPacket(topic="a/b", payload=b"zero")
        assert packet.packet_id is None  # [v5:MQTT-2.2.1-2]
        assert client.statistics().messages_published == 1


async def test_publish_qos1_returns_after_puback(
    autojump_clock: trio.testing.MockClock, virtual_deadline: None
) -> None:
    done = trio.Event()
    async with (
        FakeBroker(ack_publishes=False) as broker,
        make_client(broker) as client,
    ):

        async def publish() -> None:
            await client.publish("a/b", b"one", qos=1)
            done.set()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(publish)
            conn = broker.connections[0]
            packet = await conn.wait_for(PublishPacket)
            assert (packet.qos, packet.dup) == (QoS.AT_LEAST_ONCE, False)
            assert packet.packet_id is not None
            await trio.testing.wait_all_tasks_blocked()
            assert not done.is_set()
            assert client.statistics().inflight == 1
            await conn.send(PubAckPacket(packet_id=packet.packet_id))
        assert done.is_set()
        assert client.statistics().inflight == 0
        assert trio.current_time() == 0


async def test_publish_qos2_returns_after_pubcomp(
    autojump_clock: trio.testing.MockClock, virtual_deadline: None
) -> None:
    done = trio.Event()
    async with (
        FakeBroker(complete_publishes=False) as broker,
        make_client(broker) as client,
    ):

        async def publish() -> None:
            await client.publish("a/b", b"two", qos=2)
            done.set()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(publish)
            conn = broker.connections[0]
            release = await conn.wait_for(PubRelPacket)
            [packet] = conn.packets(PublishPacket)
            assert release.packet_id == packet.packet_id
            await trio.testing.wait_all_tasks_blocked()
            assert not done.is_set()
            await conn.send(PubCompPacket(packet_id=release.packet_id))
        assert done.is_set()
        assert [type(p).__name__ for p in conn.received[1:]] == [
            "PublishPacket",
            "PubRelPacket",
        ]


async def test_publish_qos1_failure_reason_raises_publish_error(
    autojump_clock: trio.testing.MockClock, virtual_deadline: None
) -> None:
    async with (
        FakeBroker(publish_reason=ReasonCode.QUOTA_EXCEEDED) as broker,
        make_client(broker) as client,
    ):
        with pytest.raises(
            PublishError,
            match=r"^the broker refused the message to 'a/b': quota exceeded "
            r"\(reason code 0x97\)$",
        ) as info:
            await client.publish("a/b", b"x", qos=1)
        assert info.value.reason_code is ReasonCode.QUOTA_EXCEEDED
        # [v5:MQTT-4.4.0-2] a refused message is acknowledged: not sent again
        await client.publish("a/c", b"y")
        await broker.connections[0].wait_for(PublishPacket, count=2)
        assert [p.topic for p in broker.connections[0].packets(PublishPacket)] == [
            "a/b",
            "a/c",
        ]
        assert client.statistics().inflight == 0
        assert client.is_connected


async def test_publish_qos2_failed_pubrec_raises_publish_error_without_pubrel(
    autojump_clock: trio.testing.MockClock, virtual_deadline: None
) -> None:
    async with (
        FakeBroker(publish_reason=ReasonCode.NOT_AUTHORIZED) as broker,
        make_client(broker) as client,
    ):
        with pytest.raises(
            PublishError,
            match=r"^the broker refused the message to 'secret': not authorized "
            r"\(reason code 0x87\)$",
        ) as info:
            await client.publish("secret", b"x", qos=2)
        assert info.value.reason_code is ReasonCode.NOT_AUTHORIZED
        await trio.testing.wait_all_tasks_blocked()
        conn = broker.connections[0]
        assert conn.packets(PubRelPacket) == []
        assert isinstance(conn.sent[-1], PubRecPacket)
        assert client.statistics().inflight == 0


@pytest.mark.parametrize(
    ("topic", "message"),
    [
        ("a/+", r"^invalid topic name 'a/\+': wildcards "),
        ("", r"^invalid topic name ''"),
    ],
)
async def test_publish_bad_topic_raises_value_error_before_sending(
    autojump_clock: trio.testing.MockClock,
    virtual_deadline: None,
    topic: str,
    message: str,
) -> None:
    async with FakeBroker() as broker, make_client(broker) as client:
        conn = broker.connections[0]
        written = len(conn.client_stream.writes)
        with pytest.raises(ValueError, match=message):
            await client.publish(topic, b"x", qos=1)
        assert len(conn.client_stream.writes) == written
        assert client.statistics().inflight == 0


async def test_publish_bad_payload_type_raises_type_error(
    autojump_clock: trio.testing.MockClock, virtual_deadline: None
) -> None:
    async with FakeBroker() as broker, make_client(broker) as client:
        with pytest.raises(
            TypeError,
            match=r"^payload must be bytes or str, not int; "
            r"encode other values before publishing$",
        ):
            await client.publish("t", 42)  # type: ignore[arg-type]


async def test_publish_str_payload_is_utf8(
    autojump_clock: trio.testing.MockClock, virtual_deadline: None
) -> None:
    async with FakeBroker() as broker, make_client(broker) as client:
        await client.publish("t", "grüße", qos=1)
        [packet] = broker.connections[0].packets(PublishPacket)
        assert packet.payload == "grüße".encode()


async def test_publish_retain_and_properties_reach_the_broker(
    autojump_clock: trio.testing.MockClock, virtual_deadline: None
) -> None:
    properties = Properties(
        content_type="text/plain",
        response_topic="reply/here",
        correlation_data=b"\x01\x02",
        message_expiry_interval=30,
        user_properties=(("k", "v"), ("k", "w")),
    )
    async with FakeBroker() as broker, make_client(broker) as client:
        await client.publish("t", b"x", qos=1, retain=True, properties=properties)
        [packet] = broker.connections[0].packets(PublishPacket)
        assert packet.retain
        assert packet.properties == properties
        assert broker.retained["t"].payload == b"x"


async def test_publish_concurrent_qos1_get_distinct_ids(
    autojump_clock: trio.testing.MockClock, virtual_deadline: None
) -> None:
    async with FakeBroker() as broker, make_client(broker) as client:
        async with trio.open_nursery() as nursery:
            for index in range(20):
                nursery.start_soon(
                    functools.partial(client.publish, qos=1), "t", str(index).encode()
                )
        packets = broker.connections[0].packets(PublishPacket)
        assert sorted(p.payload for p in packets) == sorted(
            str(index).encode() for index in range(20)
        )
        ids = [p.packet_id for p in packets]
        assert len(set(ids)) == 20
        assert 0 not in ids  # [v5:MQTT-2.2.1-3]
        assert broker.connections[0].protocol_error is None
        assert client.statistics().messages_published == 20


@pytest.mark.parametrize("qos", [QoS.AT_MOST_ONCE, QoS.AT_LEAST_ONCE, QoS.EXACTLY_ONCE])
async def test_publish_mqtt311_round_trip(
    autojump_clock: trio.testing.MockClock, virtual_deadline: None, qos: QoS
) -> None:
    async with (
        FakeBroker() as broker,
        make_client(broker, protocol=ProtocolVersion.V311) as client,
        client.subscription("t/#", qos=2) as sub,
    ):
        await client.publish("t/1", b"old school", qos=qos)
        message = await sub.receive()
        assert (message.topic, message.payload, message.qos) == (
            "t/1",
            b"old school",
            qos,
        )
        connect = broker.connections[0].connect
        assert connect is not None
        assert connect.protocol_version is ProtocolVersion.V311
