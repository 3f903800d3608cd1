"""Subscriptions: SUBSCRIBE/UNSUBSCRIBE, routing, overlap, listeners, backpressure."""

from __future__ import annotations

import anyio
import attrs
import pytest
import trio
import trio.testing

from tests._fakes import (
    FakeBroker,
    make_client,
    virtual_deadline_fixture,  # noqa: F401 - the virtual_deadline fixture
)
from trio_mqttconn import (
    Message,
    ProtocolVersion,
    QoS,
    ReasonCode,
    RetainHandling,
    SubscribeError,
    Subscription,
)
from trio_mqttconn._packets import (
    PubAckPacket,
    PubCompPacket,
    PublishPacket,
    PubRecPacket,
    PubRelPacket,
    SubscribePacket,
    TopicSubscription,
    UnsubscribePacket,
)
from trio_mqttconn._properties import Properties

pytestmark = pytest.mark.trio


def _drained(sub: Subscription) -> bool:
    try:
        sub.receive_nowait()
    except anyio.WouldBlock:
        return True
    return False


async def test_subscription_subscribes_on_enter_and_unsubscribes_on_exit(
    autojump_clock: trio.testing.MockClock, virtual_deadline: None
) -> None:
    async with FakeBroker() as broker, make_client(broker) as client:
        conn = broker.connections[0]
        async with client.subscription(
            "s/+/t",
            qos=2,
            no_local=True,
            retain_as_published=True,
            retain_handling=RetainHandling.DO_NOT_SEND,
        ) as sub:
            [subscribe] = conn.packets(SubscribePacket)
            assert subscribe.subscriptions == (
                TopicSubscription(
                    filter="s/+/t",
                    qos=QoS.EXACTLY_ONCE,
                    no_local=True,
                    retain_as_published=True,
                    retain_handling=RetainHandling.DO_NOT_SEND,
                ),
            )
            assert sub.topic_filter == "s/+/t"
            assert sub.granted_qos is QoS.EXACTLY_ONCE
            assert client.statistics().subscriptions == 1
            assert conn.packets(UnsubscribePacket) == []
        [unsubscribe] = conn.packets(UnsubscribePacket)
        assert unsubscribe.filters == ("s/+/t",)
        assert client.statistics().subscriptions == 0


async def test_subscription_granted_qos_comes_from_suback(
    autojump_clock: trio.testing.MockClock, virtual_deadline: None
) -> None:
    async with (
        FakeBroker(maximum_qos=QoS.AT_LEAST_ONCE) as broker,
        make_client(broker) as client,
        client.subscription("t", qos=2) as sub,
    ):
        assert sub.granted_qos is QoS.AT_LEAST_ONCE


async def test_subscription_refused_raises_subscribe_error(
    autojump_clock: trio.testing.MockClock, virtual_deadline: None
) -> None:
    async with FakeBroker() as broker, make_client(broker) as client:
        broker.suback_reasons["private/#"] = ReasonCode.NOT_AUTHORIZED
        with pytest.raises(
            SubscribeError,
            match=r"^the broker refused the subscription to 'private/#': "
            r"not authorized \(reason code 0x87\)$",
        ) as info:
            async with client.subscription("private/#"):
                pytest.fail("subscribed although refused")  # pragma: no cover
        assert info.value.reason_code is ReasonCode.NOT_AUTHORIZED
        assert client.statistics().subscriptions == 0
        # the client is still fine
        async with client.subscription("public/#") as sub:
            await broker.publish("public/x", b"ok")
            assert (await sub.receive()).payload == b"ok"


async def test_subscription_bad_filter_raises_value_error_before_sending(
    autojump_clock: trio.testing.MockClock, virtual_deadline: None
) -> None:
    async with FakeBroker() as broker, make_client(broker) as client:
        with pytest.raises(ValueError, match=r"^invalid topic filter 'a/#/b': "):
            async with client.subscription("a/#/b"):
                pytest.fail("subscribed to an invalid filter")  # pragma: no cover
        assert broker.connections[0].packets(SubscribePacket) == []


async def test_subscription_delivers_messages_in_order_with_their_fields(
    autojump_clock: trio.testing.MockClock, virtual_deadline: None
) -> None:
    async with (
        FakeBroker() as broker,
        make_client(broker) as client,
        client.subscription("s/#", qos=1) as sub,
    ):
        for index in range(5):
            await broker.publish(f"s/{index}", f"m{index}".encode(), qos=1)
        messages = [await sub.receive() for _ in range(5)]
        assert [(m.topic, m.text, m.qos) for m in messages] == [
            (f"s/{i}", f"m{i}", QoS.AT_LEAST_ONCE) for i in range(5)
        ]
        assert sub.statistics().delivered == 5
        assert client.statistics().messages_received == 5
        # [v5:MQTT-4.5.0-2] [v5:MQTT-4.6.0-2] every QoS 1 message is acknowledged,
        # in the order received
        conn = broker.connections[0]
        await conn.wait_for(PubAckPacket, count=5)
        sent_ids = [p.packet_id for p in conn.sent if isinstance(p, PublishPacket)]
        assert [p.packet_id for p in conn.packets(PubAckPacket)] == sent_ids


async def test_subscription_iterator_ends_when_the_client_closes(
    autojump_clock: trio.testing.MockClock, virtual_deadline: None
) -> None:
    received: list[bytes] = []
    async with (
        FakeBroker() as broker,
        make_client(broker) as client,
        client.subscription("t") as sub,
    ):

        async def consume() -> None:
            async for message in sub:
                received.append(message.payload)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(consume)
            await broker.publish("t", b"1")
            await trio.testing.wait_all_tasks_blocked()
            await client.aclose()
        assert received == [b"1"]


async def test_subscription_receive_nowait_raises_would_block(
    autojump_clock: trio.testing.MockClock, virtual_deadline: None
) -> None:
    async with (
        FakeBroker() as broker,
        make_client(broker) as client,
        client.subscription("t") as sub,
    ):
        with pytest.raises(anyio.WouldBlock):
            sub.receive_nowait()
        await broker.publish("t", b"x")
        await trio.testing.wait_all_tasks_blocked()
        assert sub.receive_nowait().payload == b"x"


async def test_subscription_inbound_qos2_is_delivered_once(
    autojump_clock: trio.testing.MockClock, virtual_deadline: None
) -> None:
    # [v5:MQTT-4.3.3-9] a re-sent QoS 2 PUBLISH before PUBREL is not a new message
    async with (
        FakeBroker(release_deliveries=False) as broker,
        make_client(broker) as client,
        client.subscription("t", qos=2) as sub,
    ):
        conn = broker.connections[0]
        packet = await conn.deliver("t", b"once", qos=2)
        await conn.wait_for(PubRecPacket)
        await conn.send(attrs.evolve(packet, dup=True))
        await conn.wait_for(PubRecPacket, count=2)
        await conn.send(PubRelPacket(packet_id=packet.packet_id or 0))
        complete = await conn.wait_for(PubCompPacket)
        assert complete.packet_id == packet.packet_id
        assert (await sub.receive()).payload == b"once"
        await trio.testing.wait_all_tasks_blocked()
        assert _drained(sub)
        assert sub.statistics().delivered == 1


# -- overlapping subscriptions -----------------------------------------------------------


@pytest.mark.parametrize("overlap", ["single", "per_subscription"])
async def test_subscription_overlapping_filters_get_each_message_once(
    autojump_clock: trio.testing.MockClock,
    virtual_deadline: None,
    overlap: str,
) -> None:
    broker = FakeBroker(overlap=overlap)  # type: ignore[arg-type]
    async with (
        broker,
        make_client(broker) as client,
        client.subscription("a/#") as wide,
        client.subscription("a/+") as narrow,
        client.subscription("b/#") as other,
    ):
        await broker.publish("a/x", b"both")
        await broker.publish("a/x/y", b"wide only")
        await trio.testing.wait_all_tasks_blocked()
        assert [wide.receive_nowait().payload for _ in range(2)] == [
            b"both",
            b"wide only",
        ]
        assert narrow.receive_nowait().payload == b"both"
        assert _drained(wide)
        assert _drained(narrow)
        assert _drained(other)


async def test_subscription_overlapping_filters_mqtt311(
    autojump_clock: trio.testing.MockClock, virtual_deadline: None
) -> None:
    async with (
        FakeBroker() as broker,
        make_client(broker, protocol=ProtocolVersion.V311) as client,
        client.subscription("a/#") as wide,
        client.subscription("a/+") as narrow,
    ):
        await broker.publish("a/x", b"both")
        await trio.testing.wait_all_tasks_blocked()
        assert wide.receive_nowait().payload == b"both"
        assert narrow.receive_nowait().payload == b"both"
        assert _drained(wide)
        assert _drained(narrow)


async def test_subscription_same_filter_twice_unsubscribes_with_the_last(
    autojump_clock: trio.testing.MockClock, virtual_deadline: None
) -> None:
    async with FakeBroker() as broker, make_client(broker) as client:
        conn = broker.connections[0]
        async with client.subscription("t") as first:
            async with client.subscription("t") as second:
                await broker.publish("t", b"x")
                await trio.testing.wait_all_tasks_blocked()
                assert first.receive_nowait().payload == b"x"
                assert second.receive_nowait().payload == b"x"
                assert _drained(first)
                assert _drained(second)
            assert conn.packets(UnsubscribePacket) == []
            await broker.publish("t", b"y")
            assert (await first.receive()).payload == b"y"
        assert [p.filters for p in conn.packets(UnsubscribePacket)] == [("t",)]


async def test_subscription_shared_subscription(
    autojump_clock: trio.testing.MockClock, virtual_deadline: None
) -> None:
    async with (
        FakeBroker() as broker,
        make_client(broker) as client,
        client.subscription("$share/group/jobs/#", qos=1) as sub,
    ):
        [subscribe] = broker.connections[0].packets(SubscribePacket)
        assert subscribe.subscriptions[0].filter == "$share/group/jobs/#"
        await broker.publish("jobs/1", b"work", qos=1)
        message = await sub.receive()
        assert (message.topic, message.payload) == ("jobs/1", b"work")


# -- backpressure ------------------------------------------------------------------------


async def test_subscription_overflow_wait_is_lossless(
    autojump_clock: trio.testing.MockClock, virtual_deadline: None
) -> None:
    async with (
        FakeBroker() as broker,
        make_client(broker) as client,
        client.subscription("t", buffer=2) as sub,
    ):
        for index in range(6):
            await broker.publish("t", str(index).encode())
        await trio.testing.wait_all_tasks_blocked()
        stats = sub.statistics()
        assert (stats.queued, stats.dropped, stats.buffer) == (2, 0, 2)
        assert [(await sub.receive()).payload for _ in range(6)] == [
            str(index).encode() for index in range(6)
        ]
        assert sub.statistics().dropped == 0


async def test_subscription_overflow_drop_oldest_counts_drops(
    autojump_clock: trio.testing.MockClock, virtual_deadline: None
) -> None:
    async with (
        FakeBroker() as broker,
        make_client(broker) as client,
        client.subscription("t", buffer=2, overflow="drop_oldest") as sub,
        client.subscription("t") as lossless,
    ):
        for index in range(5):
            await broker.publish("t", str(index).encode())
        await trio.testing.wait_all_tasks_blocked()
        stats = sub.statistics()
        assert (stats.topic_filter, stats.queued, stats.dropped, stats.buffer) == (
            "t",
            2,
            3,
            2,
        )
        assert [sub.receive_nowait().payload for _ in range(2)] == [b"3", b"4"]
        assert _drained(sub)
        # a dropping subscription never slows down the others
        assert [(await lossless.receive()).payload for _ in range(5)] == [
            str(index).encode() for index in range(5)
        ]


# -- listener style -------------------------------------------------------------------------


async def test_subscribe_with_sync_and_async_listeners_in_order(
    autojump_clock: trio.testing.MockClock, virtual_deadline: None
) -> None:
    sync_seen: list[bytes] = []
    async_seen: list[bytes] = []
    all_seen = trio.Event()

    def sync_listener(message: Message) -> None:
        sync_seen.append(message.payload)

    async def async_listener(message: Message) -> None:
        await trio.lowlevel.checkpoint()
        async_seen.append(message.payload)
        if len(async_seen) == 3:
            all_seen.set()

    async with FakeBroker() as broker, make_client(broker) as client:
        handle_sync = await client.subscribe("l/#", listener=sync_listener)
        handle_async = await client.subscribe("l/+", qos=1, listener=async_listener)
        assert handle_async.granted_qos is QoS.AT_LEAST_ONCE
        for index in range(3):
            await broker.publish(f"l/{index}", str(index).encode(), qos=1)
        await all_seen.wait()
        await trio.testing.wait_all_tasks_blocked()
        assert sync_seen == [b"0", b"1", b"2"]
        assert async_seen == [b"0", b"1", b"2"]
        conn = broker.connections[0]
        await handle_sync.unsubscribe()
        assert [p.filters for p in conn.packets(UnsubscribePacket)] == [("l/#",)]
        await broker.publish("l/3", b"3")
        await trio.testing.wait_all_tasks_blocked()
        assert sync_seen == [b"0", b"1", b"2"]
        assert async_seen == [b"0", b"1", b"2", b"3"]
        await handle_async.unsubscribe()
        assert client.statistics().subscriptions == 0


async def test_subscribe_without_listener_returns_an_iterable_handle(
    autojump_clock: trio.testing.MockClock, virtual_deadline: None
) -> None:
    async with FakeBroker() as broker, make_client(broker) as client:
        handle = await client.subscribe("h")
        await broker.publish("h", b"mine")
        async for message in handle:
            assert message.payload == b"mine"
            break
        await handle.unsubscribe()
        assert [
            p.filters for p in broker.connections[0].packets(UnsubscribePacket)
        ] == [("h",)]


async def test_subscribe_listener_failure_ends_the_client(
    autojump_clock: trio.testing.MockClock, virtual_deadline: None
) -> None:
    # A listener is user code in the client's task group: its exception is not
    # swallowed (STYLE: exceptions propagate).
    def broken(message: Message) -> None:
        raise KeyError(message.topic)

    async with FakeBroker() as broker:

        async def run_with_broken_listener() -> None:
            async with make_client(broker) as client:
                await client.subscribe("x", listener=broken)
                await broker.publish("x", b"boom")
                await trio.sleep_forever()

        with pytest.raises(KeyError, match=r"^'x'$"):
            await run_with_broken_listener()


async def test_subscription_right_after_connect_sends_one_subscribe(
    autojump_clock: trio.testing.MockClock, virtual_deadline: None
) -> None:
    # Subscribing right after `async with` must not race the first connection's
    # restore step into a second SUBSCRIBE (that would deliver retained messages
    # twice). Trio shuffles scheduling, so try a few times.
    for attempt in range(20):
        async with FakeBroker() as broker:
            broker.retained["r"] = PublishPacket(
                topic="r", payload=b"kept", retain=True
            )
            async with make_client(broker) as client, client.subscription("r") as sub:
                assert (await sub.receive()).payload == b"kept"
                await trio.testing.wait_all_tasks_blocked()
                subscribes = broker.connections[0].packets(SubscribePacket)
                assert len(subscribes) == 1, (
                    f"attempt {attempt}: {len(subscribes)} SUBSCRIBEs"
                )
                assert _drained(sub)


@pytest.mark.parametrize(
    ("handling", "expected"),
    [
        (RetainHandling.SEND_ON_SUBSCRIBE, [b"kept"]),
        (RetainHandling.DO_NOT_SEND, []),
    ],
)
async def test_subscription_retained_messages_follow_retain_handling(
    autojump_clock: trio.testing.MockClock,
    virtual_deadline: None,
    handling: RetainHandling,
    expected: list[bytes],
) -> None:
    async with FakeBroker() as broker, make_client(broker) as client:
        await client.publish("r/1", b"kept", retain=True)
        async with client.subscription("r/#", retain_handling=handling) as sub:
            await trio.testing.wait_all_tasks_blocked()
            received: list[Message] = []
            while not _drained_into(sub, received):
                pass
            assert [m.payload for m in received] == expected
            assert all(m.retain for m in received)


def _drained_into(sub: Subscription, into: list[Message]) -> bool:
    try:
        into.append(sub.receive_nowait())
    except anyio.WouldBlock:
        return True
    return False


async def test_subscribe_routing_by_identifier_checks_the_topic(
    autojump_clock: trio.testing.MockClock, virtual_deadline: None
) -> None:
    # A resumed session may hold an earlier process's subscriptions, with
    # identifiers this process gives out again: on 25bce1b a message for a stale
    # subscription went to whichever subscription has its identifier now.
    async with (
        FakeBroker() as broker,
        make_client(broker) as client,
        client.subscription("a/#") as sub_a,
        client.subscription("b/+") as sub_b,
        client.subscription("$share/g/c") as sub_c,
    ):
        conn = broker.connections[0]
        id_a = conn.subscription_identifier("a/#")
        id_b = conn.subscription_identifier("b/+")
        id_c = conn.subscription_identifier("$share/g/c")
        assert id_a is not None
        assert id_b is not None
        assert id_c is not None

        def ids(*identifiers: int) -> Properties:
            return Properties(subscription_identifiers=identifiers)

        # A stale identifier: its subscription's filter does not match the topic.
        await conn.deliver("old/x", b"stale", properties=ids(id_a))
        # A stale identifier whose topic another subscription matches: the tree.
        await conn.deliver("b/x", b"to b", properties=ids(id_a))
        # An identifier this process never gave out.
        await conn.deliver("a/y", b"unknown id", properties=ids(9999))
        # Trusted: the filter matches (twice, the second time from the cache).
        await conn.deliver("a/z", b"by id", properties=ids(id_a))
        await conn.deliver("a/z", b"by id again", properties=ids(id_a))
        await conn.deliver("c", b"shared", properties=ids(id_c))
        # Two identifiers, both matching: each subscription once.
        await conn.deliver("b/a", b"both", properties=ids(id_b, id_b))
        await trio.testing.wait_all_tasks_blocked()
        assert [m.payload for m in drain(sub_a)] == [
            b"unknown id",
            b"by id",
            b"by id again",
        ]
        assert [m.payload for m in drain(sub_b)] == [b"to b", b"both"]
        assert [m.payload for m in drain(sub_c)] == [b"shared"]


def drain(sub: Subscription) -> list[Message]:
    """The messages waiting in *sub*, taken without waiting."""
    taken: list[Message] = []
    while sub.statistics().queued:
        taken.append(sub.receive_nowait())
    return taken
