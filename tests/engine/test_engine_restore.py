"""Reconnect and restore (#9 section 5), against the scripted broker.

Each test failed on the engine of 7f953d6: re-sends ignored the new Receive
Maximum, a stricter broker ended the client with ValueError, subscription
identifiers went to a broker that refused them, an offline unsubscribe never
reached a resumed session, and a refused re-subscription went quiet forever.
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
from trio_mqttconn import PublishError, QoS, ReasonCode, SubscribeError
from trio_mqttconn._client import POISON_TRIES
from trio_mqttconn._packets import (
    DisconnectPacket,
    PubAckPacket,
    PublishPacket,
    SubscribePacket,
    UnsubscribePacket,
)
from trio_mqttconn._properties import Properties

pytestmark = pytest.mark.trio


async def test_restore_resends_within_the_new_receive_maximum(
    autojump_clock: trio.testing.MockClock, virtual_deadline: None
) -> None:
    async with (
        FakeBroker(ack_publishes=False) as broker,
        make_client(broker, clean_start=False, session_expiry=60) as client,
        trio.open_nursery() as nursery,
    ):
        conn0 = broker.connections[0]

        async def publish(payload: bytes) -> None:
            await client.publish("r", payload, qos=QoS.AT_LEAST_ONCE)

        for index in range(5):
            nursery.start_soon(publish, b"%d" % index)
        await conn0.wait_for(PublishPacket, count=5)
        order = [p.payload for p in conn0.packets(PublishPacket)]
        broker.script(
            Answer(session_present=True, properties=Properties(receive_maximum=2))
        )
        conn0.abort()
        conn1 = await broker.wait_connection(1)
        await conn1.wait_connacked()
        await trio.testing.wait_all_tasks_blocked()
        resent = conn1.packets(PublishPacket)
        assert [(p.payload, p.dup) for p in resent] == [
            (order[0], True),
            (order[1], True),
        ]
        broker.ack_publishes = True
        for packet in resent:
            assert packet.packet_id is not None
            await conn1.send(PubAckPacket(packet_id=packet.packet_id))
        await conn1.wait_for(PublishPacket, count=5)
        assert [p.payload for p in conn1.packets(PublishPacket)] == order


async def test_restore_stricter_broker_fails_that_publish_only(
    autojump_clock: trio.testing.MockClock, virtual_deadline: None
) -> None:
    async with (
        FakeBroker(ack_publishes=False) as broker,
        make_client(broker) as client,
    ):
        conn0 = broker.connections[0]
        failed: list[BaseException] = []

        async def publish() -> None:
            try:
                await client.publish("strict", b"x", qos=2)
            except PublishError as exc:
                failed.append(exc)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(publish)
            await conn0.wait_for(PublishPacket)
            # The new broker lost the session and takes QoS 0 only.
            broker.script(Answer(properties=Properties(maximum_qos=0)))
            conn0.abort()
        assert len(failed) == 1
        assert str(failed[0]) == (
            "qos 2 is above the broker's maximum QoS 0; publish with qos <= 0"
        )
        assert client.is_connected
        await client.publish("still", b"fine")


async def test_restore_subscription_identifiers_only_when_allowed(
    autojump_clock: trio.testing.MockClock, virtual_deadline: None
) -> None:
    answer = Answer(properties=Properties(subscription_identifier_available=0))
    async with (
        FakeBroker(default_answer=answer) as broker,
        make_client(broker) as client,
        client.subscription("ids/#"),
    ):
        [subscribe] = broker.connections[0].packets(SubscribePacket)
        assert subscribe.properties.subscription_identifiers == ()


async def test_restore_offline_unsubscribe_reaches_a_resumed_session(
    autojump_clock: trio.testing.MockClock, virtual_deadline: None
) -> None:
    async with (
        FakeBroker() as broker,
        make_client(broker, clean_start=False, session_expiry=60) as client,
    ):
        sub = await client.subscribe("gone/#")
        broker.script(Answer(refuse=True), Answer(session_present=True))
        broker.connections[0].abort()
        await trio.testing.wait_all_tasks_blocked()
        assert not client.is_connected
        await sub.unsubscribe()
        conn1 = await broker.wait_connection(1)
        unsubscribe = await conn1.wait_for(UnsubscribePacket)
        assert unsubscribe.filters == ("gone/#",)
        assert conn1.packets(SubscribePacket) == []


async def test_restore_refused_resubscription_raises_from_the_iterator(
    autojump_clock: trio.testing.MockClock, virtual_deadline: None
) -> None:
    async with (
        FakeBroker() as broker,
        make_client(broker) as client,
        client.subscription("acl/#", qos=1) as sub,
    ):
        broker.suback_reasons["acl/#"] = ReasonCode.NOT_AUTHORIZED
        broker.connections[0].abort()  # the session is lost: re-subscribe
        with pytest.raises(
            SubscribeError,
            match=r"^the broker refused the subscription to 'acl/#' again after "
            r"reconnecting: not authorized \(reason code 0x87\)$",
        ) as info:
            async for _ in sub:
                pass
        assert info.value.reason_code == ReasonCode.NOT_AUTHORIZED
        assert client.statistics().subscriptions == 0


async def test_restore_poison_message_fails_after_a_few_tries(
    autojump_clock: trio.testing.MockClock, virtual_deadline: None
) -> None:
    # The broker drops the connection right after each (re-)send of the message:
    # after POISON_TRIES connections that publish fails; the client goes on.
    async with (
        FakeBroker(
            ack_publishes=False, default_answer=Answer(session_present=True)
        ) as broker,
        make_client(broker, clean_start=False, session_expiry=60) as client,
    ):

        async def drop_each_time() -> None:
            for index in range(POISON_TRIES):
                conn = await broker.wait_connection(index)
                await conn.wait_for(PublishPacket)
                conn.abort()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(drop_each_time)
            with pytest.raises(
                PublishError,
                match=r"^the broker closed the connection each time the message to "
                r"'poison' was sent \(3 times\); ",
            ):
                await client.publish("poison", b"x" * 100, qos=1)
        await client.wait_connected()
        last = broker.connections[-1]
        assert last.packets(PublishPacket) == []
        broker.ack_publishes = True
        await client.publish("fine", b"y", qos=1)


async def test_restore_protocol_violation_disconnect_goes_through_the_write_path(
    autojump_clock: trio.testing.MockClock, virtual_deadline: None
) -> None:
    # [MQTT-4.13.2-1] our DISCONNECT goes after what was queued before it.
    async with (
        FakeBroker() as broker,
        make_client(broker) as client,
        client.subscription("v/#"),
    ):
        conn = broker.connections[0]
        conn.client_stream.stall_sends()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(client.publish, "before", b"1")
            await trio.testing.wait_all_tasks_blocked()
            # a PUBLISH with a wildcard in its topic [MQTT-3.3.2-2]
            await conn.send_raw(b"\x30\x05\x00\x03v/#\x00")
            await trio.testing.wait_all_tasks_blocked()
            conn.client_stream.resume_sends()
            await conn.wait_closed()
        kinds = [type(p).__name__ for p in conn.received]
        assert kinds[-2:] == ["PublishPacket", "DisconnectPacket"]
        last = conn.received[-1]
        assert isinstance(last, DisconnectPacket)
        assert last.reason_code == ReasonCode.PROTOCOL_ERROR
