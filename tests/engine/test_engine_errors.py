"""Errors a person can act on, statistics, packet logging, CONNACK details (#9 6, 7).

Each test failed on the engine of 7f953d6: a bad topic type or listener was accepted
(and ended the client later), a reason could be empty or name the endpoint twice,
``mqtt://`` to an HTTP port spoke of PUBACK flags, and there was no last disconnect
reason, no packet log, no CONNACK record and no ``aclose(session_expiry=...)``.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import anyio
import anyio.abc
import pytest
import trio
import trio.testing

from tests._fakes import (
    Answer,
    FakeBroker,
    make_client,
    memory_byte_stream_pair,
    virtual_deadline_fixture,  # noqa: F401 - the virtual_deadline fixture
)
from trio_mqttconn import ConnectError, MqttClient, QoS
from trio_mqttconn._packets import DisconnectPacket
from trio_mqttconn._properties import Properties

if TYPE_CHECKING:
    from trio_mqttconn._transports import Endpoint

pytestmark = pytest.mark.trio


@pytest.mark.parametrize(
    ("topic", "message"),
    [
        (1, "^topic must be a str, not int$"),
        (b"a/b", r"^topic must be a str, not bytes: b'a/b'$"),
        (None, "^topic must be a str, not NoneType$"),
    ],
)
async def test_errors_publish_topic_of_wrong_type_fails_at_the_call(
    autojump_clock: trio.testing.MockClock,
    virtual_deadline: None,
    topic: object,
    message: str,
) -> None:
    async with FakeBroker() as broker, make_client(broker) as client:
        with pytest.raises(TypeError, match=message):
            await client.publish(topic, b"x")  # type: ignore[arg-type]
        with pytest.raises(TypeError, match=message.replace("topic", "topic_filter")):
            await client.subscribe(topic)  # type: ignore[arg-type]
        assert client.is_connected


async def test_errors_listener_not_callable_fails_at_the_call(
    autojump_clock: trio.testing.MockClock, virtual_deadline: None
) -> None:
    async with FakeBroker() as broker, make_client(broker) as client:
        with pytest.raises(
            TypeError, match=r"^listener must be a callable taking a Message, not str$"
        ):
            await client.subscribe("a", listener="print")  # type: ignore[arg-type]
        assert broker.connections[0].packets(DisconnectPacket) == []
        assert client.statistics().subscriptions == 0


async def test_errors_lost_reason_names_the_endpoint_once_and_is_kept(
    autojump_clock: trio.testing.MockClock, virtual_deadline: None
) -> None:
    reasons: list[BaseException] = []
    async with (
        FakeBroker() as broker,
        make_client(broker, on_connection_lost=reasons.append) as client,
    ):
        assert client.statistics().last_disconnect_reason is None
        await trio.sleep(7)
        broker.connections[0].abort()
        await broker.wait_connection(1)
        await client.wait_connected()
        stats = client.statistics()
        assert stats.last_disconnect_reason == (
            "lost the connection to mqtt://broker.test:1883: the connection broke: "
            "conn0/client: connection reset"
        )
        assert stats.last_disconnect_time == 7
        assert str(reasons[0]).count("broker.test") <= 1


class _BrokenStream(anyio.abc.ByteStream):
    """Answers CONNACK, then fails with an OSError that has no message."""

    def __init__(self) -> None:
        self.sent = 0

    async def receive(self, max_bytes: int = 65536) -> bytes:
        if self.sent == 1:
            self.sent += 1
            return b"\x20\x03\x00\x00\x00"  # CONNACK, MQTT 5, success
        await trio.sleep(1)
        raise OSError

    async def send(self, item: bytes) -> None:
        self.sent += 1

    async def send_eof(self) -> None:
        pass

    async def aclose(self) -> None:
        pass


async def test_errors_connection_lost_reason_is_never_empty(
    autojump_clock: trio.testing.MockClock, virtual_deadline: None
) -> None:
    async def transport(endpoint: Endpoint) -> anyio.abc.ByteStream:
        return _BrokenStream()

    client = MqttClient(
        "mqtt://broker.test", transport=transport, reconnect=False, keepalive=0
    )
    with pytest.raises(
        Exception,
        match=r"^lost the connection to mqtt://broker\.test:1883: the connection "
        r"broke: OSError$",
    ):
        await client.run()


async def test_errors_mqtt_uri_to_an_http_port_says_http(
    autojump_clock: trio.testing.MockClock, virtual_deadline: None
) -> None:
    async def transport(endpoint: Endpoint) -> anyio.abc.ByteStream:
        client_side, server_side = memory_byte_stream_pair("http")
        await server_side.send(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
        return client_side

    with pytest.raises(
        ConnectError,
        match=r"^mqtt://web\.test:80 answered CONNECT with HTTP: it is a web or "
        r"WebSocket port, not MQTT; ",
    ):
        async with MqttClient("mqtt://web.test:80", transport=transport):
            pass


async def test_errors_packets_are_logged_at_debug_without_secrets(
    autojump_clock: trio.testing.MockClock,
    virtual_deadline: None,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="trio_mqttconn.packets")
    async with (
        FakeBroker() as broker,
        make_client(broker, username="u", password="s3cret-pw") as client,
        client.subscription("log/#", qos=1) as sub,
    ):
        await client.publish("log/a", b"payload-secret", qos=1)
        await sub.receive()
    lines = [
        r.getMessage() for r in caplog.records if r.name == "trio_mqttconn.packets"
    ]
    text = "\n".join(lines)
    assert (
        "sent CONNECT client_id='c1' clean_start=True keepalive=0 username='u'" in text
    )
    assert "sent PUBLISH id=2 topic='log/a' qos=1 payload=14 (" in text
    assert "received PUBLISH id=1 topic='log/a' qos=1" in text
    assert "(payload 14 bytes)" in text
    assert "s3cret-pw" not in text
    assert "payload-secret" not in text


async def test_errors_connack_details_are_exposed(
    autojump_clock: trio.testing.MockClock, virtual_deadline: None
) -> None:
    answer = Answer(
        properties=Properties(
            receive_maximum=7,
            maximum_qos=1,
            retain_available=0,
            maximum_packet_size=4096,
            topic_alias_maximum=3,
            server_keep_alive=30,
            assigned_client_identifier="given",
        )
    )
    async with (
        FakeBroker(default_answer=answer) as broker,
        make_client(broker) as client,
    ):
        info = client.connack
        assert info is not None
        assert (
            info.session_present,
            info.receive_maximum,
            info.maximum_qos,
            info.retain_available,
            info.maximum_packet_size,
            info.topic_alias_maximum,
            info.server_keep_alive,
            info.assigned_client_id,
        ) == (False, 7, QoS.AT_LEAST_ONCE, False, 4096, 3, 30, "given")


async def test_errors_aclose_sets_session_expiry_in_disconnect(
    autojump_clock: trio.testing.MockClock, virtual_deadline: None
) -> None:
    async with FakeBroker() as broker:
        client = make_client(broker, clean_start=False, session_expiry=3600)
        async with trio.open_nursery() as nursery:
            await nursery.start(client.run)
            await client.aclose(session_expiry=0)
        [disconnect] = broker.connections[0].packets(DisconnectPacket)
        assert disconnect.properties.session_expiry_interval == 0


async def test_errors_aclose_session_expiry_needs_one_in_connect(
    autojump_clock: trio.testing.MockClock, virtual_deadline: None
) -> None:
    async with FakeBroker() as broker, make_client(broker) as client:
        with pytest.raises(
            ValueError,
            match=r"^cannot set session_expiry=10 on close: the client connected with "
            r"session_expiry=0; give MqttClient\(session_expiry=\.\.\.\)$",
        ):
            await client.aclose(session_expiry=10)
