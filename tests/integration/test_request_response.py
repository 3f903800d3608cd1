"""Request/response (MQTT 5) against the real mosquitto, on trio and asyncio (#11).

Every test synchronises on events and on message order: responses to one
requester travel on one topic from one responder connection, so they arrive in
the order they were published ([v5:MQTT-4.6.0-6]); a later request's response
therefore proves that an earlier, late one was already handled.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import anyio
import pytest

from trio_mqttconn import (
    ConfigError,
    MqttClient,
    MqttError,
    NotOpenError,
    Properties,
    ProtocolVersion,
    QoS,
    RequestTimeout,
)

if TYPE_CHECKING:
    from trio_mqttconn import Request, Responder
    from trio_mqttconn.testing import Mosquitto

pytestmark = [pytest.mark.anyio, pytest.mark.broker]

TIMEOUT = 20


async def echo(requests: Responder, *, prefix: bytes = b"re:") -> None:
    """Answer every request with its payload behind *prefix*."""
    async for request in requests:
        await request.respond(prefix + request.payload)


async def test_request_round_trip(mosquitto: Mosquitto, unique_topic: str) -> None:
    with anyio.fail_after(TIMEOUT):
        async with (
            MqttClient(mosquitto.uri) as server,
            MqttClient(mosquitto.uri, client_id="rr-client") as client,
            server.responder(f"{unique_topic}/+/get") as requests,
            anyio.create_task_group() as tg,
        ):
            tg.start_soon(echo, requests)
            response = await client.request(
                f"{unique_topic}/7/get",
                b"ping",
                properties=Properties(content_type="text/plain"),
            )
            assert response.payload == b"re:ping"
            assert response.topic == "trio_mqttconn/responses/rr-client"
            stats = client.request_statistics()
            assert stats.response_topic == "trio_mqttconn/responses/rr-client"
            assert (stats.requests, stats.responses, stats.pending) == (1, 1, 0)
            assert requests.statistics().requests == 1
            tg.cancel_scope.cancel()


async def test_request_response_copies_correlation_data(
    mosquitto: Mosquitto, unique_topic: str
) -> None:
    seen: list[Request] = []
    with anyio.fail_after(TIMEOUT):
        async with (
            MqttClient(mosquitto.uri) as server,
            MqttClient(mosquitto.uri) as client,
            server.responder(unique_topic) as requests,
            anyio.create_task_group() as tg,
        ):

            async def serve() -> None:
                async for request in requests:
                    seen.append(request)
                    await request.respond(
                        b"ok", properties=Properties(content_type="text/plain")
                    )

            tg.start_soon(serve)
            response = await client.request(unique_topic, b"x", qos=QoS.EXACTLY_ONCE)
            (request,) = seen
            assert request.topic == unique_topic
            assert request.message.qos is QoS.AT_LEAST_ONCE  # the responder's QoS
            assert request.correlation_data is not None
            assert response.properties.correlation_data == request.correlation_data
            assert response.properties.content_type == "text/plain"
            assert request.response_topic == response.topic
            tg.cancel_scope.cancel()


async def test_request_200_concurrent_each_get_their_own(
    mosquitto: Mosquitto, unique_topic: str
) -> None:
    results: dict[int, bytes] = {}
    with anyio.fail_after(TIMEOUT):
        async with (
            MqttClient(mosquitto.uri) as server,
            MqttClient(mosquitto.uri) as client,
            server.responder(f"{unique_topic}/#") as requests,
            anyio.create_task_group() as serving,
        ):
            serving.start_soon(echo, requests)

            async def one(i: int) -> None:
                response = await client.request(f"{unique_topic}/{i}", str(i))
                results[i] = response.payload

            async with anyio.create_task_group() as tg:
                for i in range(200):
                    tg.start_soon(one, i)
            assert results == {i: b"re:%d" % i for i in range(200)}
            stats = client.request_statistics()
            assert (stats.requests, stats.responses) == (200, 200)
            assert (stats.dropped_responses, stats.pending) == (0, 0)
            # 200 first requests at once: the response topic was subscribed once.
            assert client.statistics().subscriptions == 1
            serving.cancel_scope.cancel()


async def test_request_late_response_is_dropped_and_counted(
    mosquitto: Mosquitto, unique_topic: str
) -> None:
    with anyio.fail_after(TIMEOUT):
        async with (
            MqttClient(mosquitto.uri) as server,
            MqttClient(mosquitto.uri) as client,
            server.responder(unique_topic) as requests,
            anyio.create_task_group() as tg,
        ):
            arrived = anyio.Event()
            gave_up = anyio.Event()

            async def slow_then_echo() -> None:
                first = await requests.__anext__()
                arrived.set()
                await gave_up.wait()
                await first.respond(b"too late")
                await echo(requests)

            tg.start_soon(slow_then_echo)
            with anyio.CancelScope() as scope:

                async def give_up() -> None:
                    await arrived.wait()
                    scope.cancel()

                tg.start_soon(give_up)
                await client.request(unique_topic, b"first")
            assert scope.cancelled_caught
            assert client.request_statistics().pending == 0
            gave_up.set()
            # Published after the late one by the same responder: arrives after it.
            response = await client.request(unique_topic, b"second")
            assert response.payload == b"re:second"
            stats = client.request_statistics()
            assert (stats.requests, stats.responses, stats.dropped_responses) == (
                2,
                1,
                1,
            )
            tg.cancel_scope.cancel()


async def test_request_cancelled_leaves_no_waiter(
    mosquitto: Mosquitto, unique_topic: str
) -> None:
    with anyio.fail_after(TIMEOUT):
        async with (
            MqttClient(mosquitto.uri) as server,
            MqttClient(mosquitto.uri) as client,
            server.responder(unique_topic) as requests,
            anyio.create_task_group() as tg,
        ):
            received = anyio.Event()

            async def requester() -> None:
                await client.request(unique_topic, b"never answered")

            async def watch() -> None:
                await requests.__anext__()
                received.set()

            tg.start_soon(watch)
            async with anyio.create_task_group() as inner:
                inner.start_soon(requester)
                await received.wait()
                # The request is out and its caller waits for the response.
                assert client.request_statistics().pending == 1
                inner.cancel_scope.cancel()
            assert client.request_statistics().pending == 0
            tg.cancel_scope.cancel()


async def test_request_timeout_raises_request_timeout(
    mosquitto: Mosquitto, unique_topic: str
) -> None:
    with anyio.fail_after(TIMEOUT):
        async with MqttClient(mosquitto.uri) as client:
            with pytest.raises(RequestTimeout) as info:
                await client.request(f"{unique_topic}/nobody", b"?", timeout=0.2)
            assert isinstance(info.value, TimeoutError)
            assert isinstance(info.value, MqttError)
            assert info.value.code == "REQUEST_TIMEOUT"
            assert str(info.value) == (
                f"no response to the request on '{unique_topic}/nobody' within "
                "0.2 s: is a responder subscribed to it? raise timeout= if it is slow"
            )
            stats = client.request_statistics()
            assert (stats.timeouts, stats.pending) == (1, 0)


async def test_responder_skips_requests_without_response_topic(
    mosquitto: Mosquitto, unique_topic: str
) -> None:
    with anyio.fail_after(TIMEOUT):
        async with (
            MqttClient(mosquitto.uri) as server,
            MqttClient(mosquitto.uri) as client,
            server.responder(unique_topic) as requests,
        ):
            await client.publish(unique_topic, b"no reply wanted", qos=1)
            await client.publish(unique_topic, b"no reply either", qos=1)
            async with anyio.create_task_group() as tg:
                tg.start_soon(client.request, unique_topic, b"answer me")
                request = await requests.__anext__()
                assert request.payload == b"answer me"
                await request.respond(b"done")
            stats = requests.statistics()
            assert (stats.topic_filter, stats.requests, stats.skipped) == (
                unique_topic,
                1,
                2,
            )


async def test_request_rejects_own_correlation_properties(
    mosquitto: Mosquitto, unique_topic: str
) -> None:
    with anyio.fail_after(TIMEOUT):
        async with MqttClient(mosquitto.uri) as client:
            with pytest.raises(
                ValueError,
                match=r"^properties must not set response_topic or correlation_data: "
                r"request\(\) sets both itself$",
            ):
                await client.request(
                    unique_topic,
                    b"",
                    properties=Properties(correlation_data=b"1"),
                )


async def test_request_and_responder_need_mqtt5(
    mosquitto: Mosquitto, unique_topic: str
) -> None:
    message = (
        r"^{} needs MQTT 5 \(Response Topic and Correlation Data\), but this client "
        r"speaks MQTT 3\.1\.1: create it with protocol=ProtocolVersion\.V5$"
    )
    with anyio.fail_after(TIMEOUT):
        async with MqttClient(mosquitto.uri, protocol=ProtocolVersion.V311) as client:
            with pytest.raises(ConfigError, match=message.format(r"request\(\)")):
                await client.request(unique_topic, b"?")
            with pytest.raises(ConfigError, match=message.format(r"responder\(\)")):
                async with client.responder(unique_topic):
                    pass  # pragma: no cover - never entered
            assert isinstance(ConfigError("x"), ValueError)


async def test_request_waiting_when_client_closes_raises_not_open(
    mosquitto: Mosquitto, unique_topic: str
) -> None:
    with anyio.fail_after(TIMEOUT):
        async with (
            MqttClient(mosquitto.uri) as server,
            server.responder(unique_topic) as requests,
        ):
            client = MqttClient(mosquitto.uri)
            async with client:
                async with anyio.create_task_group() as tg:

                    async def ask() -> None:
                        with pytest.raises(
                            NotOpenError, match=r"^the client is closed$"
                        ):
                            await client.request(unique_topic, b"never answered")

                    tg.start_soon(ask)
                    await requests.__anext__()  # the request is out, its caller waits
                    assert client.request_statistics().pending == 1
                    await client.aclose()
                assert client.request_statistics().pending == 0
            with pytest.raises(NotOpenError):
                await client.request(unique_topic, b"after close")


async def test_request_and_respond_reject_bad_arguments(
    mosquitto: Mosquitto, unique_topic: str
) -> None:
    with anyio.fail_after(TIMEOUT):
        async with (
            MqttClient(mosquitto.uri) as server,
            MqttClient(mosquitto.uri) as client,
            server.responder(unique_topic) as requests,
        ):
            with pytest.raises(
                ValueError, match=r"^timeout must be > 0 seconds or None, not 0$"
            ):
                await client.request(unique_topic, b"", timeout=0)
            async with anyio.create_task_group() as tg:
                tg.start_soon(client.request, unique_topic, b"?")
                request = await requests.__anext__()
                with pytest.raises(
                    ValueError,
                    match=r"^properties must not set response_topic or "
                    r"correlation_data: respond\(\) copies the request's "
                    r"correlation data itself$",
                ):
                    await request.respond(
                        b"", properties=Properties(response_topic="elsewhere")
                    )
                await request.respond(b"!")


async def test_responder_iteration_ends_when_the_client_closes(
    mosquitto: Mosquitto, unique_topic: str
) -> None:
    with anyio.fail_after(TIMEOUT):
        server = MqttClient(mosquitto.uri)
        async with server, server.responder(unique_topic) as requests:
            await server.aclose()
            assert [request async for request in requests] == []


async def test_request_response_information_not_offered_by_mosquitto(
    mosquitto: Mosquitto, unique_topic: str
) -> None:
    # mosquitto ignores Request Response Information: no Response Information in
    # its CONNACK, so the response topic stays the client-id one (the docs say so).
    with anyio.fail_after(TIMEOUT):
        async with (
            MqttClient(mosquitto.uri) as server,
            MqttClient(
                mosquitto.uri,
                client_id="rr-info",
                properties=Properties(request_response_information=1),
            ) as client,
            server.responder(unique_topic) as requests,
            anyio.create_task_group() as tg,
        ):
            tg.start_soon(echo, requests)
            assert client.connack is not None
            assert client.connack.response_information is None
            response = await client.request(unique_topic, b"ping")
            assert response.topic == "trio_mqttconn/responses/rr-info"
            assert response.payload == b"re:ping"
            tg.cancel_scope.cancel()
