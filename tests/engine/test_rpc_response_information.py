"""request() and the broker's Response Information (MQTT 5, section 4.10.1) (#11).

The fake broker answers CONNECT with or without Response Information and plays the
responder itself (it publishes the response to the request's Response Topic with
its Correlation Data), on both anyio backends. Nothing here waits for time.
"""

from __future__ import annotations

import anyio
import pytest

from tests._fakes import Answer, FakeBroker, FakeConnection, make_client
from trio_mqttconn import Properties, QoS
from trio_mqttconn._packets import PublishPacket, SubscribePacket, UnsubscribePacket

pytestmark = pytest.mark.anyio

TIMEOUT = 10
ASK = Properties(request_response_information=1)


def _offers(response_information: str) -> Answer:
    return Answer(properties=Properties(response_information=response_information))


async def _respond(broker: FakeBroker, index: int) -> PublishPacket:
    """Answer the *index*-th request the broker received; return the request."""
    await broker.wait_until(lambda: len(broker.messages) > index)
    request = broker.messages[index]
    assert request.properties.response_topic is not None
    await broker.publish(
        request.properties.response_topic,
        b"re:" + request.payload,
        qos=QoS.AT_LEAST_ONCE,
        properties=Properties(correlation_data=request.properties.correlation_data),
    )
    return request


def _subscribed(conn: FakeConnection) -> list[str]:
    return [
        option.filter
        for packet in conn.packets(SubscribePacket)
        for option in packet.subscriptions
    ]


def _unsubscribed(conn: FakeConnection) -> list[str]:
    return [f for packet in conn.packets(UnsubscribePacket) for f in packet.filters]


async def test_request_response_topic_under_the_brokers_response_information() -> None:
    with anyio.fail_after(TIMEOUT):
        async with (
            FakeBroker(default_answer=_offers("reserved/abc/")) as broker,
            make_client(broker, properties=ASK) as client,
            anyio.create_task_group() as tg,
        ):
            tg.start_soon(_respond, broker, 0)
            response = await client.request("svc/get", b"ping")
            conn = broker.connections[0]
            assert conn.connect is not None
            assert conn.connect.properties.request_response_information == 1
            assert client.connack is not None
            assert client.connack.response_information == "reserved/abc/"
            # The trailing "/" of the Response Information is not doubled.
            assert response.topic == "reserved/abc/c1"
            assert response.payload == b"re:ping"
            assert broker.messages[0].properties.response_topic == "reserved/abc/c1"
            assert _subscribed(conn) == ["reserved/abc/c1"]
            assert client.request_statistics().response_topic == "reserved/abc/c1"


async def test_request_response_information_without_slash_gets_one() -> None:
    with anyio.fail_after(TIMEOUT):
        async with (
            FakeBroker(default_answer=_offers("reserved/abc")) as broker,
            make_client(broker, properties=ASK, client_id="a+b#") as client,
            anyio.create_task_group() as tg,
        ):
            tg.start_soon(_respond, broker, 0)
            response = await client.request("svc/get")
            # [v5:MQTT-3.3.2-14] no wildcard characters in a Response Topic.
            assert response.topic == "reserved/abc/a_b_"


async def test_request_without_response_information_uses_the_client_id() -> None:
    with anyio.fail_after(TIMEOUT):
        async with (
            FakeBroker() as broker,
            make_client(broker) as client,
            anyio.create_task_group() as tg,
        ):
            tg.start_soon(_respond, broker, 0)
            response = await client.request("svc/get", b"ping")
            conn = broker.connections[0]
            assert conn.connect is not None
            # Not asked for unless the application asks (CONNECT unchanged).
            assert conn.connect.properties.request_response_information is None
            assert client.connack is not None
            assert client.connack.response_information is None
            assert response.topic == "trio_mqttconn/responses/c1"
            assert broker.messages[0].properties.response_topic == response.topic
            assert _subscribed(conn) == ["trio_mqttconn/responses/c1"]


async def test_request_asked_but_not_offered_uses_the_client_id() -> None:
    with anyio.fail_after(TIMEOUT):
        async with (
            FakeBroker() as broker,
            make_client(broker, properties=ASK) as client,
            anyio.create_task_group() as tg,
        ):
            tg.start_soon(_respond, broker, 0)
            response = await client.request("svc/get")
            assert response.topic == "trio_mqttconn/responses/c1"


async def test_request_moves_topic_after_reconnect_once_none_in_flight() -> None:
    """Requests in flight across the reconnect keep the old topic, and so does a
    request made while one of them waits; the first request made when none is in
    flight moves to the new Response Information."""
    with anyio.fail_after(TIMEOUT):
        async with FakeBroker() as broker:
            broker.script(_offers("first"), _offers("second"))
            async with (
                make_client(broker, properties=ASK, reconnect_delay=0.001) as client,
                anyio.create_task_group() as tg,
            ):
                tg.start_soon(_respond, broker, 0)
                assert (await client.request("svc/get", b"1")).topic == "first/c1"
                got: list[bytes] = []
                done = anyio.Event()

                async def waiting(payload: bytes) -> None:
                    got.append((await client.request("svc/get", payload)).payload)
                    if len(got) == 2:
                        done.set()

                # Request 2 is in flight when the connection drops.
                tg.start_soon(waiting, b"2")
                await broker.wait_until(lambda: len(broker.messages) == 2)
                # Its PUBACK was handled (nothing to re-send): it only waits.
                await anyio.wait_all_tasks_blocked()
                assert client.request_statistics().requests == 2
                broker.connections[0].abort()
                conn1 = await broker.wait_connection(1)
                # The old response topic is restored with the other subscriptions.
                await broker.wait_until(lambda: "first/c1" in conn1.subscriptions)
                assert client.connack is not None
                assert client.connack.response_information == "second"
                # Request 3 starts while request 2 waits: the topic stays.
                tg.start_soon(waiting, b"3")
                await broker.wait_until(lambda: len(broker.messages) == 3)
                assert broker.messages[2].properties.response_topic == "first/c1"
                await _respond(broker, 1)
                await _respond(broker, 2)
                await done.wait()
                assert sorted(got) == [b"re:2", b"re:3"]
                assert client.request_statistics().response_topic == "first/c1"
                # No request in flight: the next one moves to the new topic.
                tg.start_soon(_respond, broker, 3)
                response = await client.request("svc/get", b"4")
                assert response.topic == "second/c1"
                assert broker.messages[3].properties.response_topic == "second/c1"
                assert _subscribed(conn1) == ["first/c1", "second/c1"]
                await broker.wait_until(lambda: _unsubscribed(conn1) == ["first/c1"])
                assert client.request_statistics().response_topic == "second/c1"


async def test_request_keeps_topic_after_reconnect_with_same_information() -> None:
    with anyio.fail_after(TIMEOUT):
        async with (
            FakeBroker(default_answer=_offers("same/")) as broker,
            make_client(broker, properties=ASK, reconnect_delay=0.001) as client,
            anyio.create_task_group() as tg,
        ):
            tg.start_soon(_respond, broker, 0)
            assert (await client.request("svc/get")).topic == "same/c1"
            broker.connections[0].abort()
            conn1 = await broker.wait_connection(1)
            await broker.wait_until(lambda: "same/c1" in conn1.subscriptions)
            tg.start_soon(_respond, broker, 1)
            assert (await client.request("svc/get")).topic == "same/c1"
            # Restored once by the client, never subscribed anew nor dropped.
            assert _subscribed(conn1) == ["same/c1"]
            assert _unsubscribed(conn1) == []
