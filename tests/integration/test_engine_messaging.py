"""MqttClient against the real mosquitto: publishing, subscribing, will, properties.

Runs on trio and asyncio (the ``anyio_backend`` fixture). Every test is bounded by
``anyio.fail_after`` and synchronises on message arrival only: where a test must show
that something did *not* arrive, it publishes a fence message afterwards on the same
connection and checks that the fence comes first (one publisher's messages reach a
subscriber in order, [v5:MQTT-4.6.0-6]).
"""

from __future__ import annotations

import socket
from functools import partial
from typing import TYPE_CHECKING

import anyio
import anyio.abc
import pytest

from trio_mqttconn import (
    ConnectionLost,
    Message,
    MqttClient,
    Properties,
    ProtocolVersion,
    QoS,
    Will,
)

if TYPE_CHECKING:
    from trio_mqttconn import Subscription
    from trio_mqttconn._client import Transport
    from trio_mqttconn._transports import Endpoint
    from trio_mqttconn.testing import Mosquitto

pytestmark = [pytest.mark.anyio, pytest.mark.broker]

TIMEOUT = 20
V311 = ProtocolVersion.V311
V5 = ProtocolVersion.V5
QOS_LEVELS = [QoS.AT_MOST_ONCE, QoS.AT_LEAST_ONCE, QoS.EXACTLY_ONCE]


@pytest.fixture(params=[V311, V5], ids=["v311", "v5"])
def protocol(request: pytest.FixtureRequest) -> ProtocolVersion:
    """The tests where the protocol version matters run for both."""
    return ProtocolVersion(request.param)


async def receive_until(sub: Subscription, fence: bytes) -> list[Message]:
    """Return every message of *sub* before the one whose payload is *fence*."""
    messages: list[Message] = []
    async for message in sub:
        if message.payload == fence:
            return messages
        messages.append(message)
    raise AssertionError(f"subscription ended before the fence {fence!r}")


# ---------------------------------------------------------------------------
# round trips


@pytest.mark.parametrize("qos", QOS_LEVELS, ids=["qos0", "qos1", "qos2"])
async def test_client_round_trip_to_itself(
    mosquitto: Mosquitto, unique_topic: str, protocol: ProtocolVersion, qos: QoS
) -> None:
    with anyio.fail_after(TIMEOUT):
        async with (
            MqttClient(mosquitto.uri, protocol=protocol) as client,
            client.subscription(unique_topic, qos=qos) as sub,
        ):
            assert sub.granted_qos == qos
            await client.publish(unique_topic, b"hello", qos=qos)
            message = await sub.receive()
            await client.publish(unique_topic, "text \u00e9", qos=qos)
            text = await sub.receive()
    assert (message.topic, message.payload, message.qos) == (
        unique_topic,
        b"hello",
        qos,
    )
    assert (message.retain, message.dup) == (False, False)
    assert text.text == "text \u00e9"


@pytest.mark.parametrize("qos", QOS_LEVELS, ids=["qos0", "qos1", "qos2"])
async def test_client_messages_between_clients_in_order(
    mosquitto: Mosquitto, unique_topic: str, protocol: ProtocolVersion, qos: QoS
) -> None:
    count = 200
    with anyio.fail_after(TIMEOUT):
        async with (
            MqttClient(mosquitto.uri, protocol=protocol) as subscriber,
            subscriber.subscription(unique_topic, qos=QoS.EXACTLY_ONCE) as sub,
            MqttClient(mosquitto.uri, protocol=protocol) as publisher,
        ):
            for index in range(count):
                await publisher.publish(unique_topic, str(index), qos=qos)
            received = [await sub.receive() for _ in range(count)]
            stats = sub.statistics()
            publisher_stats = publisher.statistics()
            subscriber_stats = subscriber.statistics()
    assert [m.payload for m in received] == [str(i).encode() for i in range(count)]
    assert {m.qos for m in received} == {qos}
    assert (stats.topic_filter, stats.delivered, stats.dropped) == (
        unique_topic,
        count,
        0,
    )
    assert publisher_stats.messages_published == count
    assert subscriber_stats.messages_received == count
    assert publisher_stats.connected
    assert (publisher_stats.connects, publisher_stats.reconnects) == (1, 0)


async def test_client_concurrent_publishes_all_delivered(
    mosquitto: Mosquitto, unique_topic: str
) -> None:
    count = 50
    with anyio.fail_after(TIMEOUT):
        async with (
            MqttClient(mosquitto.uri) as client,
            client.subscription(f"{unique_topic}/#", qos=QoS.EXACTLY_ONCE) as sub,
        ):
            async with anyio.create_task_group() as tg:
                for index in range(count):
                    tg.start_soon(
                        partial(
                            client.publish,
                            f"{unique_topic}/{index}",
                            str(index),
                            qos=QOS_LEVELS[index % 3],
                        )
                    )
            received = [await sub.receive() for _ in range(count)]
    assert sorted(int(m.payload) for m in received) == list(range(count))
    assert all(m.topic == f"{unique_topic}/{int(m.payload)}" for m in received)


async def test_client_large_payload_round_trip(
    mosquitto: Mosquitto, unique_topic: str
) -> None:
    payload = bytes(range(256)) * 4096  # 1 MiB
    with anyio.fail_after(TIMEOUT):
        async with (
            MqttClient(mosquitto.uri) as client,
            client.subscription(unique_topic, qos=QoS.AT_LEAST_ONCE) as sub,
        ):
            await client.publish(unique_topic, payload, qos=QoS.AT_LEAST_ONCE)
            message = await sub.receive()
    assert message.payload == payload


async def test_client_listener_style_subscription(
    mosquitto: Mosquitto, unique_topic: str
) -> None:
    received: list[bytes] = []
    async_received: list[bytes] = []
    got_sync = anyio.Event()
    got_async = anyio.Event()

    def on_message(message: Message) -> None:
        received.append(message.payload)
        if len(received) == 3:
            got_sync.set()

    async def on_message_async(message: Message) -> None:
        await anyio.lowlevel.checkpoint()
        async_received.append(message.payload)
        if len(async_received) == 3:
            got_async.set()

    with anyio.fail_after(TIMEOUT):
        async with MqttClient(mosquitto.uri) as client:
            handle = await client.subscribe(
                unique_topic, qos=QoS.AT_LEAST_ONCE, listener=on_message
            )
            async_handle = await client.subscribe(
                f"{unique_topic}/#", qos=QoS.AT_LEAST_ONCE, listener=on_message_async
            )
            for payload in (b"1", b"2", b"3"):
                await client.publish(unique_topic, payload, qos=QoS.AT_LEAST_ONCE)
            await got_sync.wait()
            await got_async.wait()
            await handle.unsubscribe()
            await async_handle.unsubscribe()
            assert client.statistics().subscriptions == 0
    assert received == [b"1", b"2", b"3"]
    assert async_received == [b"1", b"2", b"3"]


async def test_client_sync_listener_answers_with_publish_nowait(
    mosquitto: Mosquitto, unique_topic: str
) -> None:
    """A synchronous listener runs in the task reading the connection while the
    dispatcher is idle (see `Hub.put`): publishing from it is fine there too."""
    count = 300
    echoes: list[bytes] = []
    all_back = anyio.Event()

    async with MqttClient(mosquitto.uri) as client:

        def echo(message: Message) -> None:
            client.publish_nowait(f"{unique_topic}/echo", message.payload)

        def on_echo(message: Message) -> None:
            echoes.append(message.payload)
            if len(echoes) == count:
                all_back.set()

        with anyio.fail_after(TIMEOUT):
            await client.subscribe(unique_topic, qos=QoS.AT_LEAST_ONCE, listener=echo)
            await client.subscribe(f"{unique_topic}/echo", listener=on_echo)
            for n in range(count):
                await client.publish(unique_topic, b"%d" % n, qos=QoS.AT_LEAST_ONCE)
            await all_back.wait()
    assert echoes == [b"%d" % n for n in range(count)]


# ---------------------------------------------------------------------------
# overlapping and wildcard subscriptions


async def test_client_overlapping_wildcard_subscriptions_each_get_message_once(
    mosquitto: Mosquitto, unique_topic: str
) -> None:
    # MQTT 5: the broker tags each delivery with subscription identifiers, so
    # every subscription gets every matching message exactly once.
    t = unique_topic
    with anyio.fail_after(TIMEOUT):
        async with (
            MqttClient(mosquitto.uri, protocol=V5) as client,
            client.subscription(f"{t}/a/b", qos=QoS.AT_LEAST_ONCE) as exact,
            client.subscription(f"{t}/+/b", qos=QoS.AT_LEAST_ONCE) as plus,
            client.subscription(f"{t}/#", qos=QoS.AT_LEAST_ONCE) as hash_,
            client.subscription(f"{t}/a/#", qos=QoS.AT_MOST_ONCE) as a_hash,
        ):
            for topic in (f"{t}/a/b", f"{t}/x/b", f"{t}/a/c", f"{t}/a/b/c"):
                await client.publish(topic, topic, qos=QoS.AT_LEAST_ONCE)
            await client.publish(f"{t}/a/b", b"fence", qos=QoS.AT_LEAST_ONCE)
            got = {
                name: [m.topic for m in await receive_until(sub, b"fence")]
                for name, sub in (
                    ("exact", exact),
                    ("plus", plus),
                    ("hash", hash_),
                    ("a_hash", a_hash),
                )
            }
            qos_of_a_hash = a_hash.granted_qos
    assert got == {
        "exact": [f"{t}/a/b"],
        "plus": [f"{t}/a/b", f"{t}/x/b"],
        "hash": [f"{t}/a/b", f"{t}/x/b", f"{t}/a/c", f"{t}/a/b/c"],
        "a_hash": [f"{t}/a/b", f"{t}/a/c", f"{t}/a/b/c"],
    }
    assert qos_of_a_hash == QoS.AT_MOST_ONCE


async def test_client_same_filter_twice_each_get_message_once(
    mosquitto: Mosquitto, unique_topic: str, protocol: ProtocolVersion
) -> None:
    with anyio.fail_after(TIMEOUT):
        async with MqttClient(mosquitto.uri, protocol=protocol) as client:
            async with (
                client.subscription(unique_topic, qos=QoS.AT_LEAST_ONCE) as first,
                client.subscription(unique_topic, qos=QoS.AT_LEAST_ONCE) as second,
            ):
                await client.publish(unique_topic, b"one", qos=QoS.AT_LEAST_ONCE)
                await client.publish(unique_topic, b"fence", qos=QoS.AT_LEAST_ONCE)
                assert [m.payload for m in await receive_until(first, b"fence")] == [
                    b"one"
                ]
                assert [m.payload for m in await receive_until(second, b"fence")] == [
                    b"one"
                ]
            # after both left, the broker subscription is gone too: only the fence
            # reaches the client
            before = client.statistics().messages_received
            async with client.subscription(f"{unique_topic}/x") as probe:
                await client.publish(unique_topic, b"nobody")
                await client.publish(f"{unique_topic}/x", b"fence")
                assert await receive_until(probe, b"fence") == []
            assert client.statistics().messages_received == before + 1


async def test_client_nested_subscription_survives_other_exit(
    mosquitto: Mosquitto, unique_topic: str, protocol: ProtocolVersion
) -> None:
    with anyio.fail_after(TIMEOUT):
        async with (
            MqttClient(mosquitto.uri, protocol=protocol) as client,
            client.subscription(unique_topic, qos=QoS.AT_LEAST_ONCE) as outer,
        ):
            async with client.subscription(unique_topic, qos=QoS.AT_LEAST_ONCE):
                pass  # its UNSUBSCRIBE must not cancel the outer subscription
            await client.publish(unique_topic, b"still here", qos=QoS.AT_LEAST_ONCE)
            message = await outer.receive()
    assert message.payload == b"still here"


async def test_client_wildcard_subscriptions_without_overlap(
    mosquitto: Mosquitto, unique_topic: str, protocol: ProtocolVersion
) -> None:
    t = unique_topic
    with anyio.fail_after(TIMEOUT):
        async with (
            MqttClient(mosquitto.uri, protocol=protocol) as client,
            client.subscription(f"{t}/+/temp", qos=QoS.AT_LEAST_ONCE) as temps,
            client.subscription(f"{t}/hum/#", qos=QoS.AT_LEAST_ONCE) as hums,
        ):
            for topic in (f"{t}/1/temp", f"{t}/hum/1", f"{t}/2/temp", f"{t}/hum"):
                await client.publish(topic, topic, qos=QoS.AT_LEAST_ONCE)
            await client.publish(f"{t}/f/temp", b"fence", qos=QoS.AT_LEAST_ONCE)
            await client.publish(f"{t}/hum/f", b"fence", qos=QoS.AT_LEAST_ONCE)
            got_temps = [m.topic for m in await receive_until(temps, b"fence")]
            got_hums = [m.topic for m in await receive_until(hums, b"fence")]
    assert got_temps == [f"{t}/1/temp", f"{t}/2/temp"]
    assert got_hums == [
        f"{t}/hum/1",
        f"{t}/hum",
    ]  # [v5:MQTT-4.7.1-2] "#" matches parent


async def test_client_subscription_ends_when_client_closes(
    mosquitto: Mosquitto, unique_topic: str
) -> None:
    with anyio.fail_after(TIMEOUT):
        async with (
            MqttClient(mosquitto.uri) as client,
            client.subscription(unique_topic) as sub,
        ):
            await client.aclose()
            assert [m async for m in sub] == []


# ---------------------------------------------------------------------------
# retained messages


async def test_client_retained_message_delivered_to_new_subscription(
    mosquitto: Mosquitto, unique_topic: str, protocol: ProtocolVersion
) -> None:
    with anyio.fail_after(TIMEOUT):
        async with MqttClient(mosquitto.uri, protocol=protocol) as client:
            await client.publish(
                unique_topic, b"kept", qos=QoS.AT_LEAST_ONCE, retain=True
            )
            try:
                async with client.subscription(
                    unique_topic, qos=QoS.AT_LEAST_ONCE
                ) as sub:
                    retained = await sub.receive()
                    await client.publish(unique_topic, b"live", qos=QoS.AT_LEAST_ONCE)
                    live = await sub.receive()
            finally:
                # an empty retained message deletes it [v5:MQTT-3.3.1-6]
                await client.publish(
                    unique_topic, b"", qos=QoS.AT_LEAST_ONCE, retain=True
                )
    assert (retained.payload, retained.retain) == (b"kept", True)
    assert (live.payload, live.retain) == (b"live", False)


async def test_client_retain_handling_do_not_send(
    mosquitto: Mosquitto, unique_topic: str
) -> None:
    with anyio.fail_after(TIMEOUT):
        async with MqttClient(mosquitto.uri, protocol=V5) as client:
            await client.publish(
                unique_topic, b"kept", qos=QoS.AT_LEAST_ONCE, retain=True
            )
            try:
                async with client.subscription(
                    unique_topic, qos=QoS.AT_LEAST_ONCE, retain_handling=2
                ) as sub:
                    await client.publish(unique_topic, b"fence", qos=QoS.AT_LEAST_ONCE)
                    assert await receive_until(sub, b"fence") == []
            finally:
                await client.publish(
                    unique_topic, b"", qos=QoS.AT_LEAST_ONCE, retain=True
                )


async def test_client_retain_as_published(
    mosquitto: Mosquitto, unique_topic: str
) -> None:
    with anyio.fail_after(TIMEOUT):
        async with (
            MqttClient(mosquitto.uri, protocol=V5) as client,
            client.subscription(
                unique_topic, qos=QoS.AT_LEAST_ONCE, retain_as_published=True
            ) as sub,
        ):
            try:
                await client.publish(
                    unique_topic, b"r", qos=QoS.AT_LEAST_ONCE, retain=True
                )
                message = await sub.receive()
            finally:
                await client.publish(
                    unique_topic, b"", qos=QoS.AT_LEAST_ONCE, retain=True
                )
    assert message.retain is True  # [v5:MQTT-3.3.1-13]


async def test_client_no_local_subscription(
    mosquitto: Mosquitto, unique_topic: str
) -> None:
    with anyio.fail_after(TIMEOUT):
        async with (
            MqttClient(mosquitto.uri, protocol=V5) as client,
            client.subscription(
                unique_topic, qos=QoS.AT_LEAST_ONCE, no_local=True
            ) as sub,
            MqttClient(mosquitto.uri, protocol=V5) as other,
        ):
            await client.publish(unique_topic, b"mine", qos=QoS.AT_LEAST_ONCE)
            await other.publish(unique_topic, b"theirs", qos=QoS.AT_LEAST_ONCE)
            message = await sub.receive()
    assert message.payload == b"theirs"


# ---------------------------------------------------------------------------
# will message


def dropping_transport(
    host: str, port: int, streams: list[anyio.abc.SocketStream]
) -> Transport:
    """A transport opening plain TCP that keeps the streams, so a test can cut them."""

    async def transport(endpoint: Endpoint) -> anyio.abc.ByteStream:
        stream = await anyio.connect_tcp(host, port)
        streams.append(stream)
        return stream

    return transport


def cut(stream: anyio.abc.SocketStream) -> None:
    """Drop the TCP connection under the client, as a network failure would."""
    stream.extra(anyio.abc.SocketAttribute.raw_socket).shutdown(socket.SHUT_RDWR)


async def test_client_will_published_on_abnormal_disconnect(
    mosquitto: Mosquitto, unique_topic: str, protocol: ProtocolVersion
) -> None:
    streams: list[anyio.abc.SocketStream] = []
    victim = MqttClient(
        mosquitto.uri,
        protocol=protocol,
        will=Will(topic=unique_topic, payload=b"gone", qos=QoS.AT_LEAST_ONCE),
        reconnect=False,
        transport=dropping_transport(mosquitto.host, mosquitto.port, streams),
    )

    async def run_victim(*, task_status: anyio.abc.TaskStatus[None]) -> None:
        with pytest.raises(ConnectionLost):
            await victim.run(task_status=task_status)

    with anyio.fail_after(TIMEOUT):
        async with (
            MqttClient(mosquitto.uri, protocol=protocol) as observer,
            observer.subscription(unique_topic, qos=QoS.AT_LEAST_ONCE) as sub,
        ):
            async with anyio.create_task_group() as tg:
                await tg.start(run_victim)
                assert victim.is_connected
                cut(streams[0])
                message = await sub.receive()
            assert not victim.is_connected
    assert (message.topic, message.payload, message.qos) == (
        unique_topic,
        b"gone",
        QoS.AT_LEAST_ONCE,
    )
    assert len(streams) == 1  # reconnect=False: no second attempt


async def test_client_will_not_published_on_close(
    mosquitto: Mosquitto, unique_topic: str, protocol: ProtocolVersion
) -> None:
    with anyio.fail_after(TIMEOUT):
        async with (
            MqttClient(mosquitto.uri, protocol=protocol) as observer,
            observer.subscription(unique_topic, qos=QoS.AT_LEAST_ONCE) as sub,
        ):
            async with MqttClient(
                mosquitto.uri,
                protocol=protocol,
                will=Will(topic=unique_topic, payload=b"gone"),
            ):
                pass
            await observer.publish(unique_topic, b"fence", qos=QoS.AT_LEAST_ONCE)
            assert await receive_until(sub, b"fence") == []


async def test_client_reconnects_after_connection_cut(
    mosquitto: Mosquitto, unique_topic: str, protocol: ProtocolVersion
) -> None:
    streams: list[anyio.abc.SocketStream] = []
    with anyio.fail_after(TIMEOUT):
        async with (
            MqttClient(
                mosquitto.uri,
                protocol=protocol,
                reconnect_delay=0.01,
                transport=dropping_transport(mosquitto.host, mosquitto.port, streams),
            ) as client,
            client.subscription(unique_topic, qos=QoS.AT_LEAST_ONCE) as sub,
        ):
            cut(streams[0])
            # the publish waits for the new connection; the subscription is restored
            # (clean start: the broker forgot it) before anything is published
            await client.publish(unique_topic, b"after", qos=QoS.AT_LEAST_ONCE)
            message = await sub.receive()
            stats = client.statistics()
    assert message.payload == b"after"
    assert len(streams) == 2
    assert (stats.connects, stats.reconnects) == (2, 1)


async def test_client_closes_socket_on_exit(mosquitto: Mosquitto) -> None:
    streams: list[anyio.abc.SocketStream] = []
    with anyio.fail_after(TIMEOUT):
        async with MqttClient(
            mosquitto.uri,
            transport=dropping_transport(mosquitto.host, mosquitto.port, streams),
        ) as client:
            assert client.is_connected
        raw = streams[0].extra(anyio.abc.SocketAttribute.raw_socket)
        assert raw.fileno() == -1
        assert not client.is_connected


# ---------------------------------------------------------------------------
# MQTT 5 properties


async def test_client_v5_properties_round_trip(
    mosquitto: Mosquitto, unique_topic: str
) -> None:
    sent = Properties(
        payload_format_indicator=1,
        message_expiry_interval=3600,
        content_type="application/json",
        response_topic=f"{unique_topic}/reply",
        correlation_data=b"\x00\x01corr\xff",
        user_properties=(("k", "1"), ("k", "2"), ("\u00e9", "\u6f22")),
    )
    with anyio.fail_after(TIMEOUT):
        async with (
            MqttClient(mosquitto.uri, protocol=V5) as requester,
            requester.subscription(
                f"{unique_topic}/reply", qos=QoS.AT_LEAST_ONCE
            ) as replies,
            MqttClient(mosquitto.uri, protocol=V5) as responder,
            responder.subscription(unique_topic, qos=QoS.AT_LEAST_ONCE) as requests,
        ):
            await requester.publish(
                unique_topic, b'{"q": 1}', qos=QoS.AT_LEAST_ONCE, properties=sent
            )
            request = await requests.receive()
            got = request.properties
            assert got.response_topic is not None
            await responder.publish(
                got.response_topic,
                b'{"a": 2}',
                qos=QoS.AT_LEAST_ONCE,
                properties=Properties(correlation_data=got.correlation_data),
            )
            reply = await replies.receive()
    assert request.payload == b'{"q": 1}'
    # the broker forwards the remaining lifetime [v5:MQTT-3.3.2-6]
    assert got.message_expiry_interval is not None
    assert 3590 <= got.message_expiry_interval <= 3600
    assert (
        got.payload_format_indicator,
        got.content_type,
        got.response_topic,
        got.correlation_data,
        got.user_properties,  # order kept [v5:MQTT-3.3.2-18]
    ) == (
        1,
        "application/json",
        f"{unique_topic}/reply",
        b"\x00\x01corr\xff",
        (("k", "1"), ("k", "2"), ("\u00e9", "\u6f22")),
    )
    assert reply.properties.correlation_data == b"\x00\x01corr\xff"
    assert reply.properties.user_properties == ()


# ---------------------------------------------------------------------------
# shared subscriptions


async def test_client_shared_subscription_splits_load(
    mosquitto: Mosquitto, unique_topic: str, protocol: ProtocolVersion
) -> None:
    count = 40
    shared = f"$share/group/{unique_topic}"
    received: dict[str, list[bytes]] = {"a": [], "b": []}
    done = anyio.Event()

    async def collect(name: str, sub: Subscription) -> None:
        async for message in sub:
            assert message.topic == unique_topic
            received[name].append(message.payload)
            if len(received["a"]) + len(received["b"]) == count:
                done.set()

    with anyio.fail_after(TIMEOUT):
        async with (
            MqttClient(mosquitto.uri, protocol=protocol) as a,
            a.subscription(shared, qos=QoS.AT_LEAST_ONCE) as sub_a,
            MqttClient(mosquitto.uri, protocol=protocol) as b,
            b.subscription(shared, qos=QoS.AT_LEAST_ONCE) as sub_b,
            MqttClient(mosquitto.uri, protocol=protocol) as publisher,
            anyio.create_task_group() as tg,
        ):
            tg.start_soon(collect, "a", sub_a)
            tg.start_soon(collect, "b", sub_b)
            for index in range(count):
                await publisher.publish(unique_topic, str(index), qos=QoS.AT_LEAST_ONCE)
            await done.wait()
            tg.cancel_scope.cancel()
    everything = received["a"] + received["b"]
    assert sorted(int(p) for p in everything) == list(range(count))
    assert received["a"]
    assert received["b"]


async def test_subscription_receive_after_its_end_raises_end_of_stream(
    mosquitto: Mosquitto, unique_topic: str
) -> None:
    # #10: the guide and the docstring say EndOfStream; 7f953d6 raised
    # ClosedResourceError after the block was left.
    with anyio.fail_after(TIMEOUT):
        async with MqttClient(mosquitto.uri) as client:
            async with client.subscription(f"{unique_topic}/a") as left:
                pass
            with pytest.raises(anyio.EndOfStream):
                await left.receive()
            with pytest.raises(anyio.EndOfStream):
                left.receive_nowait()
            unsubscribed = await client.subscribe(f"{unique_topic}/b", qos=1)
            fence = await client.subscribe(f"{unique_topic}/c", qos=1)
            await client.publish(f"{unique_topic}/b", b"queued", qos=1)
            await client.publish(f"{unique_topic}/c", b"fence", qos=1)
            # one broker, one connection: the fence arrives after "queued"
            assert (await fence.receive()).payload == b"fence"
            await unsubscribed.unsubscribe()
            # what was queued is still received, then the end, every time
            assert (await unsubscribed.receive()).payload == b"queued"
            for _ in range(2):
                with pytest.raises(anyio.EndOfStream):
                    await unsubscribed.receive()
        with pytest.raises(anyio.EndOfStream):
            await unsubscribed.receive()
