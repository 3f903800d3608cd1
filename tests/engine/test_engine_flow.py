"""Flow control (#9 section 2): the reader never waits for a consumer.

Each test here failed on the engine of 7f953d6 (a full buffer stopped the one
reader, acks went out before the message was taken, a reset lost parked QoS 2
messages, there was no manual acknowledgement).
"""

from __future__ import annotations

import itertools
import logging
import re

import pytest
import trio
import trio.testing

from tests._fakes import (
    Answer,
    FakeBroker,
    make_client,
    virtual_deadline_fixture,  # noqa: F401 - the virtual_deadline fixture
)
from trio_mqttconn import Message, MqttClient, ProtocolVersion, QoS
from trio_mqttconn._enums import ReasonCode
from trio_mqttconn._packets import (
    DisconnectPacket,
    PubAckPacket,
    PublishPacket,
    PubRecPacket,
    PubRelPacket,
    SubscribePacket,
    encode_packet,
)
from trio_mqttconn._subscription import _STREAK

pytestmark = pytest.mark.trio


async def test_flow_full_subscription_does_not_stop_acks_behind_it(
    autojump_clock: trio.testing.MockClock, virtual_deadline: None
) -> None:
    # Nobody reads "slow/#" (buffer 1): the PUBACK of our own publish, behind
    # three messages for it, is still read.
    async with (
        FakeBroker() as broker,
        make_client(broker) as client,
        client.subscription("slow/#", qos=1, buffer=1) as slow,
    ):
        conn = broker.connections[0]
        for index in range(3):
            await conn.deliver("slow/x", b"%d" % index, qos=1)
        with trio.fail_after(5):
            await client.publish("mine", b"x", qos=1)
        assert slow.statistics().queued == 1
        assert slow.statistics().parked == 2


async def test_flow_consumer_publishing_per_message_does_not_deadlock(
    autojump_clock: trio.testing.MockClock, virtual_deadline: None
) -> None:
    # Each message is answered with a QoS 1 publish while the buffer is full.
    count = 30
    handled = 0
    async with (
        FakeBroker(route=False) as broker,
        make_client(broker) as client,
        client.subscription("in/#", qos=1, buffer=5) as sub,
    ):
        conn = broker.connections[0]
        for index in range(count):
            await conn.deliver("in/x", b"%d" % index, qos=1)
        with trio.fail_after(60):
            async for message in sub:
                await client.publish("out", message.payload, qos=1)
                handled += 1
                if handled == count:
                    break
    assert handled == count


async def test_flow_parked_qos1_puback_waits_until_taken_in_order(
    autojump_clock: trio.testing.MockClock, virtual_deadline: None
) -> None:
    async with (
        FakeBroker() as broker,
        make_client(broker) as client,
        client.subscription("t", qos=1, buffer=1) as sub,
    ):
        conn = broker.connections[0]
        sent = [await conn.deliver("t", b"%d" % i, qos=1) for i in range(3)]
        await trio.testing.wait_all_tasks_blocked()
        # The first went into the buffer; the other two wait, and so do their acks.
        assert [p.packet_id for p in conn.packets(PubAckPacket)] == [sent[0].packet_id]
        assert (await sub.receive()).payload == b"0"
        await trio.testing.wait_all_tasks_blocked()
        assert len(conn.packets(PubAckPacket)) == 1
        # Taken once the consumer asks for it: then its PUBACK goes out.
        assert (await sub.receive()).payload == b"1"
        await conn.wait_for(PubAckPacket, count=2)
        assert (await sub.receive()).payload == b"2"
        await conn.wait_for(PubAckPacket, count=3)
        assert [p.packet_id for p in conn.packets(PubAckPacket)] == [
            p.packet_id for p in sent
        ]


async def test_flow_other_subscriptions_do_not_starve(
    autojump_clock: trio.testing.MockClock, virtual_deadline: None
) -> None:
    async with (
        FakeBroker() as broker,
        make_client(broker) as client,
        client.subscription("slow", buffer=1),
        client.subscription("fast", buffer=100) as fast,
    ):
        conn = broker.connections[0]
        for index in range(10):
            await conn.deliver("slow", b"%d" % index)
            await conn.deliver("fast", b"%d" % index)
        with trio.fail_after(5):
            got = [(await fast.receive()).payload for _ in range(10)]
        assert got == [b"%d" % i for i in range(10)]


async def test_flow_qos0_intake_limit_pauses_reading_and_warns_once(
    autojump_clock: trio.testing.MockClock,
    virtual_deadline: None,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="trio_mqttconn.client")
    async with (
        FakeBroker() as broker,
        make_client(broker, intake_limit=10) as client,
        client.subscription("q0", buffer=1) as sub,
    ):
        conn = broker.connections[0]
        for index in range(6):
            await conn.deliver("q0", b"%06d" % index)
        got = [(await sub.receive()).payload for _ in range(6)]
        assert got == [b"%06d" % i for i in range(6)]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        "the subscription to 'q0' is not keeping up: 520 bytes of QoS 0 messages "
        "wait for it and reading from the broker pauses until it catches up "
        "(intake_limit=10)"
    ]


async def test_flow_qos2_exactly_once_across_a_reset_with_resumed_session(
    autojump_clock: trio.testing.MockClock, virtual_deadline: None
) -> None:
    # 5 QoS 2 messages, buffer 2, reset; the broker re-delivers the three it has
    # no PUBREC for (DUP): all five arrive, each once.
    async with (
        FakeBroker(release_deliveries=False) as broker,
        make_client(broker, clean_start=False, session_expiry=3600) as client,
        client.subscription("q2", qos=2, buffer=2) as sub,
    ):
        conn0 = broker.connections[0]
        sent = [await conn0.deliver("q2", b"%d" % i, qos=2) for i in range(5)]
        await trio.testing.wait_all_tasks_blocked()
        recs = [p.packet_id for p in conn0.packets(PubRecPacket)]
        assert recs == [sent[0].packet_id, sent[1].packet_id]
        broker.script(Answer(session_present=True))
        conn0.abort()
        conn1 = await broker.wait_connection(1)
        await conn1.wait_connacked()
        for packet in sent[2:]:
            await conn1.send(
                PublishPacket(
                    topic=packet.topic,
                    payload=packet.payload,
                    qos=QoS.EXACTLY_ONCE,
                    dup=True,
                    packet_id=packet.packet_id,
                )
            )
        got = [(await sub.receive()).payload for _ in range(5)]
        assert got == [b"%d" % i for i in range(5)]
        await conn1.wait_for(PubRecPacket, count=3)
        assert [p.packet_id for p in conn1.packets(PubRecPacket)] == [
            p.packet_id for p in sent[2:]
        ]
        # Re-delivered again (the broker missed our PUBREC): still not delivered.
        await conn1.send(
            PublishPacket(
                topic="q2",
                payload=b"4",
                qos=QoS.EXACTLY_ONCE,
                dup=True,
                packet_id=sent[4].packet_id,
            )
        )
        await conn1.wait_for(PubRecPacket, count=4)
        await trio.testing.wait_all_tasks_blocked()
        assert sub.statistics().queued == 0
        for packet in sent:
            assert packet.packet_id is not None
            await conn1.send(PubRelPacket(packet_id=packet.packet_id))


async def test_flow_manual_ack_sends_puback_only_on_ack(
    autojump_clock: trio.testing.MockClock, virtual_deadline: None
) -> None:
    async with (
        FakeBroker() as broker,
        make_client(broker) as client,
        client.subscription("m", qos=1, manual_ack=True) as sub,
    ):
        conn = broker.connections[0]
        first = await conn.deliver("m", b"a", qos=1)
        second = await conn.deliver("m", b"b", qos=1)
        one = await sub.receive()
        two = await sub.receive()
        await trio.testing.wait_all_tasks_blocked()
        assert conn.packets(PubAckPacket) == []
        # Acknowledged out of order: the PUBACKs still go in arrival order.
        two.ack()
        await trio.testing.wait_all_tasks_blocked()
        assert conn.packets(PubAckPacket) == []
        one.ack()
        one.ack()  # idempotent
        await conn.wait_for(PubAckPacket, count=2)
        assert [p.packet_id for p in conn.packets(PubAckPacket)] == [
            first.packet_id,
            second.packet_id,
        ]


async def test_flow_manual_ack_unacked_message_is_redelivered_after_reconnect(
    autojump_clock: trio.testing.MockClock, virtual_deadline: None
) -> None:
    async with (
        FakeBroker() as broker,
        make_client(broker, clean_start=False, session_expiry=3600) as client,
        client.subscription("m", qos=1, manual_ack=True) as sub,
    ):
        conn0 = broker.connections[0]
        original = await conn0.deliver("m", b"work", qos=1)
        crashed = await sub.receive()  # the consumer dies before ack()
        broker.script(Answer(session_present=True))
        conn0.abort()
        conn1 = await broker.wait_connection(1)
        await conn1.wait_connacked()
        await conn1.send(attrs_evolve_dup(original))
        again: Message = await sub.receive()
        assert (again.payload, again.dup) == (b"work", True)
        crashed.ack()  # from a connection that is gone: nothing is sent
        await trio.testing.wait_all_tasks_blocked()
        assert conn1.packets(PubAckPacket) == []
        again.ack()
        ack = await conn1.wait_for(PubAckPacket)
        assert ack.packet_id == original.packet_id
        assert conn0.packets(PubAckPacket) == []


def attrs_evolve_dup(packet: PublishPacket) -> PublishPacket:
    """*packet* as the broker re-delivers it (DUP set)."""
    return PublishPacket(
        topic=packet.topic,
        payload=packet.payload,
        qos=packet.qos,
        dup=True,
        packet_id=packet.packet_id,
    )


async def test_flow_same_filter_two_qos_subscribes_at_the_highest(
    autojump_clock: trio.testing.MockClock, virtual_deadline: None
) -> None:
    async with (
        FakeBroker() as broker,
        make_client(broker) as client,
        client.subscription("f", qos=1) as high,
        client.subscription("f", qos=0) as low,
    ):
        conn = broker.connections[0]
        assert [p.subscriptions[0].qos for p in conn.packets(SubscribePacket)] == [
            QoS.AT_LEAST_ONCE,
            QoS.AT_LEAST_ONCE,
        ]
        assert high.granted_qos is QoS.AT_LEAST_ONCE
        assert low.granted_qos is QoS.AT_MOST_ONCE


async def test_flow_sync_listeners_park_beyond_the_hub_and_withhold_acks(
    autojump_clock: trio.testing.MockClock, virtual_deadline: None
) -> None:
    seen: list[bytes] = []
    async with (
        FakeBroker() as broker,
        make_client(broker) as client,
    ):
        await client.subscribe("h/#", qos=1, listener=lambda m: seen.append(m.payload))
        hub = client._router.hub
        assert hub is not None
        hub.capacity = 2  # white box: a small hub, so that one chunk overflows it
        # ... and one that just made its streak of calls from the reader (see
        # `Hub.put`): the chunk goes to its queue, not straight to the listener.
        hub._called = _STREAK
        conn = broker.connections[0]
        data = b"".join(
            encode_packet(
                PublishPacket(
                    topic="h/x", payload=b"%d" % i, qos=QoS.AT_LEAST_ONCE, packet_id=i
                ),
                ProtocolVersion.V5,
            )
            for i in range(1, 6)
        ) + encode_packet(PublishPacket(topic="h/y", payload=b"q0"), ProtocolVersion.V5)
        await conn.send_raw(data)  # one chunk: 6 messages, room for 2
        await conn.wait_for(PubAckPacket, count=5)
        assert [p.packet_id for p in conn.packets(PubAckPacket)] == [1, 2, 3, 4, 5]
        await trio.testing.wait_all_tasks_blocked()
        assert seen == [b"1", b"2", b"3", b"4", b"5", b"q0"]
        assert client._router.intake.used == 0


async def test_flow_drop_oldest_never_parks(
    autojump_clock: trio.testing.MockClock, virtual_deadline: None
) -> None:
    async with (
        FakeBroker() as broker,
        make_client(broker) as client,
        client.subscription("d", qos=1, buffer=2, overflow="drop_oldest") as sub,
    ):
        conn = broker.connections[0]
        for index in range(5):
            await conn.deliver("d", b"%d" % index, qos=1)
        await conn.wait_for(PubAckPacket, count=5)
        stats = sub.statistics()
        assert (stats.queued, stats.dropped, stats.parked) == (2, 3, 0)
        assert [(await sub.receive()).payload for _ in range(2)] == [b"3", b"4"]


async def test_flow_unsubscribe_lets_parked_acks_go(
    autojump_clock: trio.testing.MockClock, virtual_deadline: None
) -> None:
    async with FakeBroker() as broker, make_client(broker) as client:
        sub = await client.subscribe("u", qos=1, buffer=1)
        conn = broker.connections[0]
        for index in range(3):
            await conn.deliver("u", b"%d" % index, qos=1)
        await trio.testing.wait_all_tasks_blocked()
        assert len(conn.packets(PubAckPacket)) == 1
        await sub.unsubscribe()
        await conn.wait_for(PubAckPacket, count=3)


async def test_flow_manual_ack_subscription_ending_acks_what_it_never_handed_out(
    autojump_clock: trio.testing.MockClock, virtual_deadline: None
) -> None:
    # Parked or queued messages of a manual_ack subscription that ends were never
    # given to the application: their PUBACKs go (else every later ack waits).
    async with FakeBroker() as broker, make_client(broker) as client:
        conn = broker.connections[0]
        async with client.subscription("m", qos=1, buffer=1, manual_ack=True) as sub:
            for index in range(3):
                await conn.deliver("m", b"%d" % index, qos=1)
            taken = await sub.receive()
            await trio.testing.wait_all_tasks_blocked()
            assert conn.packets(PubAckPacket) == []
        taken.ack()
        await conn.wait_for(PubAckPacket, count=3)
        async with client.subscription("other", qos=1) as other:
            await conn.deliver("other", b"x", qos=1)
            await other.receive()
            await conn.wait_for(PubAckPacket, count=4)


async def test_flow_broker_beyond_receive_maximum_is_tolerated_up_to_a_cap(
    autojump_clock: trio.testing.MockClock,
    virtual_deadline: None,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # mosquitto 2.0.11 sends more than our Receive Maximum after a resumed session
    # with a backlog. On 25bce1b the first one over ended the connection (0x93),
    # and the next connection the same way: a reconnect loop that lost messages.
    # [v5:MQTT-3.3.4-9] binds the broker; the client's 0x93 is a "uses", no MUST.
    caplog.set_level(logging.WARNING, "trio_mqttconn.client")
    async with (
        FakeBroker() as broker,
        _strict(make_client(broker, receive_maximum=2)) as client,
        client.subscription("r", qos=2) as sub,
    ):
        broker.release_deliveries = False
        conn = broker.connections[0]
        # QoS 2 without PUBREL: all of them stay unacknowledged.
        for index in range(4):  # the cap: twice receive_maximum
            await conn.deliver("r", b"%d" % index, qos=2)
        taken = [await sub.receive() for _ in range(4)]
        assert [m.payload for m in taken] == [b"0", b"1", b"2", b"3"]
        assert client.is_connected
        assert len(broker.connections) == 1
        warnings = [
            r.getMessage()
            for r in caplog.records
            if "receive_maximum" in r.getMessage()
        ]
        assert len(warnings) == 1
        # (As many as had arrived when the reader looked: 3 or 4.)
        assert re.search(
            "sent [34] unacknowledged QoS 1/2 messages at once", warnings[0]
        )
        assert "receive_maximum=2" in warnings[0]
        assert "tolerated up to 4" in warnings[0]
        # Beyond the hard cap: DISCONNECT 0x93 (Receive Maximum exceeded).
        await conn.deliver("r", b"4", qos=2)
        disconnect = await conn.wait_for(DisconnectPacket)
        assert disconnect.reason_code is ReasonCode.RECEIVE_MAXIMUM_EXCEEDED


async def test_flow_repeated_receive_maximum_violations_back_off(
    autojump_clock: trio.testing.MockClock, virtual_deadline: None
) -> None:
    # A connection that ended with our protocol violation does not reset the
    # reconnect backoff, however long it lived: the same broker state would end
    # the next one too. On 25bce1b every reconnect came after reconnect_delay.
    async with (
        FakeBroker() as broker,
        _strict(
            make_client(
                broker, receive_maximum=1, reconnect_delay=1.0, max_reconnect_delay=60.0
            )
        ) as client,
        client.subscription("r", qos=2),
    ):
        broker.release_deliveries = False  # QoS 2 stays unacknowledged
        for index in range(4):
            conn = await broker.wait_connection(index)
            await conn.wait_for(SubscribePacket)
            await trio.sleep(100)  # long enough to count as stable otherwise
            for _ in range(3):  # beyond the cap, twice receive_maximum
                await conn.deliver("r", b"x", qos=2)
            await conn.wait_for(DisconnectPacket)
        await broker.wait_connection(4)
        times = broker.attempt_times()
        gaps = [
            round(later - earlier - 100, 3)
            for earlier, later in itertools.pairwise(times)
        ]
        assert gaps[1:] == [2.0, 4.0, 8.0]


def _strict(client: MqttClient) -> MqttClient:
    """*client* tolerating an excess over its Receive Maximum of only as much again.

    (White box: the default tolerance, at least 1000 messages, is mosquitto's.)
    """
    client._session.tolerated_excess = 0
    return client


async def test_flow_disconnect_behind_messages_in_one_chunk_ends_the_link_cleanly(
    autojump_clock: trio.testing.MockClock, virtual_deadline: None
) -> None:
    # The session owes the PUBACKs of the chunk's messages when it reads the
    # broker's DISCONNECT behind them: they are not sent any more (the session can
    # no longer send), and the client reconnects instead of failing with
    # InvalidStateError.
    lost: list[BaseException] = []
    async with (
        FakeBroker() as broker,
        make_client(broker, on_connection_lost=lost.append) as client,
        client.subscription("d", qos=1) as sub,
    ):
        conn = broker.connections[0]
        await conn.send_raw(
            encode_packet(
                PublishPacket(
                    topic="d", payload=b"1", qos=QoS.AT_LEAST_ONCE, packet_id=77
                ),
                ProtocolVersion.V5,
            )
            + encode_packet(
                DisconnectPacket(reason_code=ReasonCode.SERVER_SHUTTING_DOWN),
                ProtocolVersion.V5,
            )
        )
        assert (await sub.receive()).payload == b"1"
        await broker.wait_connection(1)
        assert conn.packets(PubAckPacket) == []
        assert "server shutting down (reason code 0x8b)" in str(lost[0])
