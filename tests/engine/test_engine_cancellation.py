"""Cancellation leaves no trace (#9 section 4).

On the engine of 7f953d6 a publish cancelled before its bytes were written kept its
topic alias (the next PUBLISH went out as "" + alias) and its in-flight slot (the
send quota ran out), and a subscribe cancelled after its SUBSCRIBE went out left a
subscription on the broker that the client had forgotten.
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
from trio_mqttconn._packets import PublishPacket, SubscribePacket, UnsubscribePacket
from trio_mqttconn._properties import Properties

pytestmark = pytest.mark.trio


async def test_cancel_publish_before_write_keeps_no_topic_alias(
    autojump_clock: trio.testing.MockClock, virtual_deadline: None
) -> None:
    answer = Answer(properties=Properties(topic_alias_maximum=5))
    async with (
        FakeBroker(default_answer=answer) as broker,
        make_client(broker, outgoing_topic_aliases=True) as client,
    ):
        await client.wait_connected()
        with trio.move_on_after(0):
            await client.publish("a/b", b"cancelled")
        await client.publish("a/b", b"sent", qos=1)
        await client.publish("a/b", b"again", qos=1)
        conn = broker.connections[0]
        published = conn.packets(PublishPacket)
        assert [(p.topic, p.payload) for p in published] == [
            ("a/b", b"sent"),
            ("", b"again"),
        ]
        assert published[0].properties.topic_alias == 1


async def test_cancel_publish_before_write_keeps_no_send_quota(
    autojump_clock: trio.testing.MockClock, virtual_deadline: None
) -> None:
    answer = Answer(properties=Properties(receive_maximum=20))
    async with (
        FakeBroker(default_answer=answer) as broker,
        make_client(broker) as client,
    ):
        await client.wait_connected()
        for index in range(25):
            with trio.move_on_after(0):
                await client.publish("q", b"%d" % index, qos=1)
        assert client.statistics().inflight == 0
        with trio.fail_after(5):
            await client.publish("q", b"goes", qos=1)
        assert [p.payload for p in broker.connections[0].packets(PublishPacket)] == [
            b"goes"
        ]


async def test_cancel_subscribe_after_subscribe_was_sent_unsubscribes(
    autojump_clock: trio.testing.MockClock, virtual_deadline: None
) -> None:
    async with (
        FakeBroker(ack_subscribes=False) as broker,
        make_client(broker) as client,
    ):
        conn = broker.connections[0]
        async with trio.open_nursery() as nursery:
            nursery.start_soon(client.subscribe, "forgotten/#")
            await conn.wait_for(SubscribePacket)
            broker.ack_subscribes = True
            nursery.cancel_scope.cancel()
        unsubscribe = await conn.wait_for(UnsubscribePacket)
        assert unsubscribe.filters == ("forgotten/#",)
        assert client.statistics().subscriptions == 0
