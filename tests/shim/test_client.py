"""The aiomqtt shim's Client against the real mosquitto, on asyncio and on trio.

Every test runs on both anyio backends. Each is bounded by ``anyio.fail_after``, and
none sleeps: arrivals are awaited through a queue that reports every message the
client offers it (see `watched_queue`).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import math
import re
import socket
import ssl
from typing import TYPE_CHECKING

import anyio
import anyio.abc
import pytest

from tests.shim._queues import watched_queue
from trio_mqttconn.aiomqtt import (
    Client,
    Message,
    MqttCodeError,
    MqttConnectError,
    MqttError,
    MqttReentrantError,
    ProtocolVersion,
    ProxySettings,
    TLSParameters,
    Topic,
)
from trio_mqttconn.aiomqtt._paho import PacketTypes, Properties, SubscribeOptions

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    from trio_mqttconn.testing import Mosquitto

pytestmark = [pytest.mark.anyio, pytest.mark.broker]

V311, V5 = ProtocolVersion.V311, ProtocolVersion.V5
LIMIT = 20
NOT_CONNECTED = "[code:4] The client is not currently connected."


def exactly(text: str) -> str:
    return f"^{re.escape(text)}$"


@pytest.fixture(autouse=True)
def no_unexpected_warnings(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Normal operation logs nothing at WARNING or above (tests that expect a
    warning check it and clear the log)."""
    yield
    loud = [r for r in caplog.get_records("call") if r.levelno >= logging.WARNING]
    assert [(r.name, r.getMessage()) for r in loud] == []


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[tuple[str, int, str]]:
    found = [t for t in caplog.record_tuples if t[1] >= logging.WARNING]
    caplog.clear()
    return found


# ------------------------------------------------------------ connect and reuse


async def test_client_connects_and_is_reusable(
    mosquitto: Mosquitto, unique_topic: str
) -> None:
    with anyio.fail_after(LIMIT):
        client = Client(mosquitto.host, mosquitto.port)
        for payload in ("first", "second"):
            async with client as entered:
                assert entered is client
                await client.subscribe(unique_topic, qos=1)
                await client.publish(unique_topic, payload, qos=1)
                message = await anext(client.messages)
                assert message.payload == payload.encode()
                assert message.topic == Topic(unique_topic)


def test_client_can_be_made_outside_an_event_loop(
    mosquitto: Mosquitto, anyio_backend: str, unique_topic: str
) -> None:
    client = Client(mosquitto.host, mosquitto.port)

    async def use() -> None:
        with anyio.fail_after(LIMIT):
            async with client:
                await client.publish(unique_topic, b"x", qos=1)

    anyio.run(use, backend=anyio_backend)


async def test_client_is_not_reentrant_in_the_same_task(mosquitto: Mosquitto) -> None:
    with anyio.fail_after(LIMIT):
        client = Client(mosquitto.host, mosquitto.port)
        async with client:
            with pytest.raises(
                MqttReentrantError,
                match=exactly(
                    "The client context manager is reusable, but not reentrant"
                ),
            ):
                async with client:
                    pass  # pragma: no cover
            await client.publish("x/y", 1)  # the first entry still works


async def test_client_is_not_reentrant_from_another_task(
    mosquitto: Mosquitto,
) -> None:
    with anyio.fail_after(LIMIT):
        client = Client(mosquitto.host, mosquitto.port)
        errors: list[BaseException] = []

        async def enter_too() -> None:
            try:
                async with client:
                    pass  # pragma: no cover
            except MqttReentrantError as exc:
                errors.append(exc)

        async with client, anyio.create_task_group() as group:
            group.start_soon(enter_too)
        assert [str(e) for e in errors] == [
            "The client context manager is reusable, but not reentrant"
        ]


async def test_client_aexit_without_aenter_does_nothing(mosquitto: Mosquitto) -> None:
    with anyio.fail_after(LIMIT):
        client = Client(mosquitto.host, mosquitto.port)
        await client.__aexit__(None, None, None)
        async with client:
            await client.__aexit__(None, None, None)  # a second exit is a no-op too


async def test_client_aexit_never_hides_the_body_exception(
    mosquitto: Mosquitto,
) -> None:
    with anyio.fail_after(LIMIT):
        client = Client(mosquitto.host, mosquitto.port)
        with pytest.raises(LookupError, match=r"^from the body$"):
            async with client:
                raise LookupError("from the body")
        async with client:  # and it can be entered again
            pass


async def test_client_aexit_leaves_cancellation_alone(mosquitto: Mosquitto) -> None:
    with anyio.fail_after(LIMIT):
        client = Client(mosquitto.host, mosquitto.port)
        with anyio.CancelScope() as scope:
            async with client:
                scope.cancel()
                await anyio.sleep_forever()
        assert scope.cancelled_caught
        async with client:
            pass


async def test_client_identifier(mosquitto: Mosquitto) -> None:
    with anyio.fail_after(LIMIT):
        assert Client(mosquitto.host).identifier == ""
        assert Client(mosquitto.host, protocol=V5).identifier == ""
        assert (
            len(Client(mosquitto.host, protocol=ProtocolVersion.V31).identifier) == 22
        )
        client = Client(mosquitto.host, mosquitto.port, identifier="shim-ident")
        async with client:
            assert client.identifier == "shim-ident"


# --------------------------------------------------------------------- connect errors


@pytest.mark.parametrize("protocol", [V311, V5])
async def test_client_refused_connection_raises_mqtt_connect_error(
    mosquitto: Mosquitto, protocol: ProtocolVersion
) -> None:
    with anyio.fail_after(LIMIT):
        client = Client(
            mosquitto.host,
            mosquitto.auth_port,
            username=mosquitto.username,
            password="wrong",
            protocol=protocol,
        )
        with pytest.raises(MqttConnectError) as caught:
            async with client:
                pass  # pragma: no cover
        # mosquitto answers a wrong password with "not authorised" (3.1.1: 5).
        assert str(caught.value) == "[code:135] Not authorized"
        assert caught.value.rc == 135
        # The failure left the client reusable, and the right password works.
        client = Client(
            mosquitto.host,
            mosquitto.auth_port,
            username=mosquitto.username,
            password=mosquitto.password,
            protocol=protocol,
        )
        async with client:
            pass


async def test_client_unreachable_broker_raises_mqtt_error() -> None:
    with anyio.fail_after(LIMIT):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        client = Client("127.0.0.1", port)
        for _ in range(2):  # a failed connect leaves the client enterable
            with pytest.raises(MqttError) as caught:
                async with client:
                    pass  # pragma: no cover
            assert type(caught.value) is MqttError
            assert str(caught.value) == (
                f"connection refused by 127.0.0.1:{port}; is the broker running?"
            )


async def test_client_connect_timeout_is_operation_timed_out(
    mosquitto: Mosquitto,
) -> None:
    with anyio.fail_after(LIMIT):
        client = Client(mosquitto.host, mosquitto.port, timeout=0)
        with pytest.raises(MqttError, match=exactly("Operation timed out")):
            await client.__aenter__()
        client.timeout = math.inf
        async with client:
            pass


async def test_client_proxy_is_not_supported_yet(mosquitto: Mosquitto) -> None:
    with anyio.fail_after(LIMIT):
        proxy = ProxySettings(proxy_type=3, proxy_addr="proxy.example")
        client = Client(mosquitto.host, mosquitto.port, proxy=proxy)
        with pytest.raises(NotImplementedError, match=r"^proxies are not supported"):
            async with client:
                pass  # pragma: no cover


def test_client_constructor_checks_like_paho() -> None:
    with pytest.raises(
        ValueError,
        match=exactly('transport must be "websockets", "tcp" or "unix", not udp'),
    ):
        Client("h", transport="udp")  # type: ignore[arg-type]
    with pytest.raises(
        ValueError, match=exactly("Clean session is not used for MQTT 5.0")
    ):
        Client("h", protocol=V5, clean_session=True)
    with pytest.raises(
        ValueError,
        match=exactly("A client id must be provided if clean session is False."),
    ):
        Client("h", clean_session=False)


# ---------------------------------------------------------------------- publishing


async def test_publish_payload_shapes(mosquitto: Mosquitto, unique_topic: str) -> None:
    queue_type, offers = watched_queue()
    payloads: list[tuple[object, bytes]] = [
        ("text é", "text é".encode()),
        (b"\x00bytes", b"\x00bytes"),
        (bytearray(b"array"), b"array"),
        (42, b"42"),
        (-1.5, b"-1.5"),
        (None, b""),
    ]
    with anyio.fail_after(LIMIT):
        async with Client(
            mosquitto.host, mosquitto.port, queue_type=queue_type
        ) as client:
            await client.subscribe(unique_topic, qos=1)
            for payload, _ in payloads:
                await client.publish(unique_topic, payload, qos=1)  # type: ignore[arg-type]
            await offers.wait_for(len(payloads))
            received = [(await anext(client.messages)).payload for _ in payloads]
    assert received == [expected for _, expected in payloads]


async def test_publish_rejects_other_payload_types(mosquitto: Mosquitto) -> None:
    with anyio.fail_after(LIMIT):
        async with Client(mosquitto.host, mosquitto.port) as client:
            with pytest.raises(
                TypeError,
                match=exactly(
                    "payload must be a string, bytearray, int, float or None."
                ),
            ):
                await client.publish("a/b", ["list"])  # type: ignore[arg-type]
            with pytest.raises(ValueError, match=exactly("Invalid QoS level.")):
                await client.publish("a/b", qos=3)
            with pytest.raises(
                ValueError, match=exactly("Publish topic cannot contain wildcards.")
            ):
                await client.publish("a/#")


@pytest.mark.parametrize("qos", [0, 1, 2])
async def test_publish_waits_for_its_qos_and_keeps_retain(
    mosquitto: Mosquitto, unique_topic: str, qos: int
) -> None:
    with anyio.fail_after(LIMIT):
        async with Client(mosquitto.host, mosquitto.port) as client:
            await client.publish(unique_topic, "kept", qos=qos, retain=True)
        async with Client(mosquitto.host, mosquitto.port) as client:
            await client.subscribe(unique_topic, qos=2)
            message = await anext(client.messages)
            assert (message.payload, message.retain, message.qos) == (
                b"kept",
                True,
                qos,
            )
            assert (message.mid == 0) is (qos == 0)
            await client.publish(unique_topic, None, retain=True)  # clear it


async def test_operations_when_not_connected_raise_code_4(
    mosquitto: Mosquitto,
) -> None:
    with anyio.fail_after(LIMIT):
        client = Client(mosquitto.host, mosquitto.port)
        calls = [
            (client.publish("a/b", "x"), "Could not publish message"),
            (client.subscribe("a/b"), "Could not subscribe to topic"),
            (client.unsubscribe("a/b"), "Could not unsubscribe from topic"),
        ]
        for call, text in calls:
            with pytest.raises(MqttCodeError, match=exactly(NOT_CONNECTED)) as caught:
                await call
            assert caught.value.rc == 4
            assert caught.value.args == (text,)
        async with client:
            pass
        with pytest.raises(MqttCodeError, match=exactly(NOT_CONNECTED)):
            await client.publish("a/b", "after the exit", qos=1)


# ------------------------------------------------------------------- subscribing


async def test_subscribe_shapes_and_reason_codes_mqtt311(
    mosquitto: Mosquitto, unique_topic: str
) -> None:
    with anyio.fail_after(LIMIT):
        async with Client(mosquitto.host, mosquitto.port) as client:
            one = await client.subscribe(f"{unique_topic}/a", qos=1)
            pair = await client.subscribe((f"{unique_topic}/b", 2))
            several = await client.subscribe(
                [(f"{unique_topic}/c", 0), (f"{unique_topic}/+/d", 2)]
            )
    assert isinstance(one, list)
    assert [str(rc) for rc in one] == ["Granted QoS 1"]
    assert [rc.value for rc in pair] == [2]
    assert [str(rc) for rc in several] == ["Granted QoS 0", "Granted QoS 2"]
    assert all(rc.packetType == PacketTypes.SUBACK for rc in several)


async def test_subscribe_shapes_and_options_mqtt5(
    mosquitto: Mosquitto, unique_topic: str
) -> None:
    queue_type, offers = watched_queue()
    with anyio.fail_after(LIMIT):
        async with Client(
            mosquitto.host, mosquitto.port, protocol=V5, queue_type=queue_type
        ) as client:
            codes = await client.subscribe(
                unique_topic, options=SubscribeOptions(qos=1, noLocal=True)
            )
            assert [str(rc) for rc in codes] == ["Granted QoS 1"]
            mixed: list[tuple[str, SubscribeOptions | int]] = [
                (f"{unique_topic}/x", SubscribeOptions(qos=2)),
                (f"{unique_topic}/y", 1),
            ]
            codes = await client.subscribe(mixed)
            assert [rc.value for rc in codes] == [2, 1]
            codes = await client.subscribe((f"{unique_topic}/z", SubscribeOptions()))
            assert [rc.value for rc in codes] == [0]
            # noLocal: our own message on unique_topic does not come back.
            await client.publish(unique_topic, "own", qos=1)
            await client.publish(f"{unique_topic}/x", "other", qos=1)
            await offers.wait_for(1)
            message = await anext(client.messages)
            assert message.topic.value == f"{unique_topic}/x"
            assert len(client.messages) == 0
            with pytest.raises(
                ValueError,
                match=exactly(
                    "Subscribe options and qos parameters cannot be combined."
                ),
            ):
                await client.subscribe(unique_topic, 1, SubscribeOptions())


async def test_unsubscribe_stops_the_messages(
    mosquitto: Mosquitto, unique_topic: str
) -> None:
    queue_type, offers = watched_queue()
    with anyio.fail_after(LIMIT):
        async with Client(
            mosquitto.host, mosquitto.port, queue_type=queue_type
        ) as client:
            await client.subscribe([(f"{unique_topic}/1", 1), (f"{unique_topic}/2", 1)])
            await client.unsubscribe(f"{unique_topic}/1")
            await client.unsubscribe([f"{unique_topic}/nothing"])
            await client.publish(f"{unique_topic}/1", "gone", qos=1)
            await client.publish(f"{unique_topic}/2", "here", qos=1)
            await offers.wait_for(1)
            assert (await anext(client.messages)).payload == b"here"
            assert len(client.messages) == 0


# ---------------------------------------------------------------- client.messages


async def test_messages_are_queued_and_counted(
    mosquitto: Mosquitto, unique_topic: str
) -> None:
    queue_type, offers = watched_queue()
    with anyio.fail_after(LIMIT):
        client = Client(mosquitto.host, mosquitto.port, queue_type=queue_type)
        assert len(client.messages) == 0
        async with client:
            await client.subscribe(unique_topic, qos=2)
            for index in range(3):
                await client.publish(unique_topic, index, qos=2)
                await offers.wait_for(index + 1)
                assert len(client.messages) == index + 1
            for index in range(3):
                assert (await anext(client.messages)).payload == str(index).encode()
            assert len(client.messages) == 0


async def test_messages_go_to_one_of_several_consumers(
    mosquitto: Mosquitto, unique_topic: str
) -> None:
    count = 20
    got: dict[str, list[bytes]] = {"a": [], "b": []}
    with anyio.fail_after(LIMIT):
        async with Client(mosquitto.host, mosquitto.port) as client:
            done = anyio.Event()

            async def consume(name: str) -> None:
                async for message in client.messages:
                    got[name].append(message.payload)
                    if len(got["a"]) + len(got["b"]) == count:
                        done.set()

            async with anyio.create_task_group() as group:
                group.start_soon(consume, "a")
                group.start_soon(consume, "b")
                await client.subscribe(unique_topic, qos=1)
                for index in range(count):
                    await client.publish(unique_topic, index, qos=1)
                await done.wait()
                group.cancel_scope.cancel()
    received = sorted(int(p) for p in got["a"] + got["b"])
    assert received == list(range(count))


async def test_messages_are_queued_from_construction_on(
    mosquitto: Mosquitto, unique_topic: str
) -> None:
    # A consumer may start waiting before the client ever connected.
    with anyio.fail_after(LIMIT):
        client = Client(mosquitto.host, mosquitto.port)
        received: list[bytes] = []
        got = anyio.Event()

        async def consume() -> None:
            received.append((await anext(client.messages)).payload)
            got.set()

        async with anyio.create_task_group() as group:
            group.start_soon(consume)
            await anyio.wait_all_tasks_blocked()
            async with client:
                await client.subscribe(unique_topic, qos=1)
                await client.publish(unique_topic, "early bird", qos=1)
                await got.wait()
        assert received == [b"early bird"]


async def test_messages_raise_after_disconnect_once_the_queue_is_empty(
    mosquitto: Mosquitto, unique_topic: str
) -> None:
    queue_type, offers = watched_queue()
    with anyio.fail_after(LIMIT):
        client = Client(mosquitto.host, mosquitto.port, queue_type=queue_type)
        async with client:
            await client.subscribe(unique_topic, qos=1)
            await client.publish(unique_topic, "one", qos=1)
            await client.publish(unique_topic, "two", qos=1)
            await offers.wait_for(2)
        assert [(await anext(client.messages)).payload for _ in range(2)] == [
            b"one",
            b"two",
        ]
        for _ in range(2):  # it never ends: every call raises again
            with pytest.raises(
                MqttError, match=exactly("Disconnected during message iteration")
            ) as caught:
                await anext(client.messages)
            assert caught.value.__cause__ is None
        async with client:  # a new connection resets it
            await client.subscribe(unique_topic, qos=1)
            await client.publish(unique_topic, "three", qos=1)
            assert (await anext(client.messages)).payload == b"three"


async def test_messages_consumer_is_woken_by_the_disconnect(
    mosquitto: Mosquitto,
) -> None:
    with anyio.fail_after(LIMIT):
        client = Client(mosquitto.host, mosquitto.port)
        errors: list[str] = []

        async def consume() -> None:
            try:
                async for _ in client.messages:
                    pass  # pragma: no cover
            except MqttError as exc:
                errors.append(str(exc))

        async with anyio.create_task_group() as group, client:
            group.start_soon(consume)
            await anyio.wait_all_tasks_blocked()
        assert errors == ["Disconnected during message iteration"]


async def test_queue_type_lifo(mosquitto: Mosquitto, unique_topic: str) -> None:
    queue_type, offers = watched_queue(asyncio.LifoQueue)
    with anyio.fail_after(LIMIT):
        async with Client(
            mosquitto.host, mosquitto.port, queue_type=queue_type
        ) as client:
            await client.subscribe(unique_topic, qos=1)
            for index in range(3):
                await client.publish(unique_topic, index, qos=1)
            await offers.wait_for(3)
            order = [(await anext(client.messages)).payload for _ in range(3)]
    assert order == [b"2", b"1", b"0"]


class AlarmsFirst(asyncio.PriorityQueue[Message]):
    """The documented recipe: a PriorityQueue subclass that ranks messages."""

    def _put(self, item: Message) -> None:
        rank = 0 if item.topic.matches("+/+/+/+/alarm") else 1
        super()._put((rank, self.qsize(), item))  # type: ignore[arg-type]

    def _get(self) -> Message:
        return super()._get()[2]  # type: ignore[index, no-any-return]


async def test_queue_type_priority_subclass(
    mosquitto: Mosquitto, unique_topic: str
) -> None:
    queue_type, offers = watched_queue(AlarmsFirst)
    assert unique_topic.count("/") == 3
    with anyio.fail_after(LIMIT):
        async with Client(
            mosquitto.host, mosquitto.port, queue_type=queue_type
        ) as client:
            await client.subscribe(f"{unique_topic}/#", qos=1)
            for leaf in ("info", "debug", "alarm"):
                await client.publish(f"{unique_topic}/{leaf}", leaf, qos=1)
            await offers.wait_for(3)
            order = [(await anext(client.messages)).payload for _ in range(3)]
    assert order == [b"alarm", b"info", b"debug"]


async def test_bounded_queue_drops_and_warns(
    mosquitto: Mosquitto, unique_topic: str, caplog: pytest.LogCaptureFixture
) -> None:
    queue_type, offers = watched_queue()
    with anyio.fail_after(LIMIT):
        async with Client(
            mosquitto.host,
            mosquitto.port,
            queue_type=queue_type,
            max_queued_incoming_messages=2,
        ) as client:
            await client.subscribe(unique_topic, qos=1)
            for index in range(5):
                await client.publish(unique_topic, index, qos=1)
            await offers.wait_for(5)
            assert len(client.messages) == 2
            kept = [(await anext(client.messages)).payload for _ in range(2)]
    assert kept == [b"0", b"1"]
    assert (
        warnings_of(caplog)
        == [("mqtt", logging.WARNING, "Message queue is full. Discarding message.")] * 3
    )


async def test_warnings_go_to_the_given_logger(
    mosquitto: Mosquitto, unique_topic: str, caplog: pytest.LogCaptureFixture
) -> None:
    queue_type, offers = watched_queue()
    with anyio.fail_after(LIMIT):
        async with Client(
            mosquitto.host,
            mosquitto.port,
            queue_type=queue_type,
            max_queued_incoming_messages=1,
            logger=logging.getLogger("my.app"),
        ) as client:
            await client.subscribe(unique_topic, qos=1)
            await client.publish(unique_topic, 1, qos=1)
            await client.publish(unique_topic, 2, qos=1)
            await offers.wait_for(2)
    assert warnings_of(caplog) == [
        ("my.app", logging.WARNING, "Message queue is full. Discarding message.")
    ]


# ------------------------------------------------------------ calls and timeouts


@pytest.mark.parametrize("threshold", [10, 20])
async def test_pending_calls_warning(
    mosquitto: Mosquitto,
    unique_topic: str,
    caplog: pytest.LogCaptureFixture,
    threshold: int,
) -> None:
    with anyio.fail_after(LIMIT):
        async with Client(mosquitto.host, mosquitto.port) as client:
            client.pending_calls_threshold = threshold
            async with anyio.create_task_group() as group:
                for _ in range(threshold + 1):
                    group.start_soon(client.publish, unique_topic, "x", 1)
    assert warnings_of(caplog) == [
        ("mqtt", logging.WARNING, f"There are {threshold + 1} pending publish calls.")
    ]


async def test_no_pending_calls_warning_with_max_concurrent_outgoing_calls(
    mosquitto: Mosquitto, unique_topic: str
) -> None:
    with anyio.fail_after(LIMIT):
        async with Client(
            mosquitto.host, mosquitto.port, max_concurrent_outgoing_calls=1
        ) as client:
            async with anyio.create_task_group() as group:
                for _ in range(client.pending_calls_threshold + 5):
                    group.start_soon(client.publish, unique_topic, "x", 1)
            await client.subscribe(unique_topic)
            await client.unsubscribe(unique_topic)


async def test_operation_timeouts(mosquitto: Mosquitto, unique_topic: str) -> None:
    with anyio.fail_after(LIMIT):
        async with Client(mosquitto.host, mosquitto.port) as client:
            timed_out = exactly("Operation timed out")
            with pytest.raises(MqttError, match=timed_out) as caught:
                await client.publish(unique_topic, "x", qos=1, timeout=0)
            assert type(caught.value) is MqttError
            with pytest.raises(MqttError, match=timed_out):
                await client.subscribe(unique_topic, timeout=0)
            with pytest.raises(MqttError, match=timed_out):
                await client.unsubscribe(unique_topic, timeout=0)
            client.timeout = 0  # the default of every call
            with pytest.raises(MqttError, match=timed_out):
                await client.publish(unique_topic, "x", qos=2)
            # math.inf waits as long as it takes; an explicit timeout beats the default
            await client.publish(unique_topic, "x", qos=2, timeout=math.inf)
            assert [rc.value for rc in await client.subscribe(unique_topic, timeout=5)]


async def test_max_queued_outgoing_messages(
    mosquitto: Mosquitto, unique_topic: str
) -> None:
    # Two QoS 1 publishes start together: the second finds the first pending.
    outcomes: list[str] = []

    async def publish(payload: str) -> None:
        try:
            await client.publish(unique_topic, payload, qos=1)
        except MqttCodeError as exc:
            outcomes.append(str(exc))
        else:
            outcomes.append(payload)

    with anyio.fail_after(LIMIT):
        async with Client(
            mosquitto.host, mosquitto.port, max_queued_outgoing_messages=1
        ) as client:
            async with anyio.create_task_group() as group:
                group.start_soon(publish, "first")
                group.start_soon(publish, "second")
            await client.publish(unique_topic, "then there is room again", qos=1)
    # trio may run either task first
    assert sorted(outcomes) in (
        ["[code:15] Message queue full.", "first"],
        ["[code:15] Message queue full.", "second"],
    )


# ------------------------------------------------------------------------- MQTT 5


async def test_mqtt5_message_properties(
    mosquitto: Mosquitto, unique_topic: str
) -> None:
    props = Properties(PacketTypes.PUBLISH)
    props.ContentType = "text/plain"
    props.ResponseTopic = f"{unique_topic}/reply"
    props.CorrelationData = b"\x01\x02"
    props.MessageExpiryInterval = 60
    props.UserProperty = [("a", "1"), ("b", "2")]
    sub_props = Properties(PacketTypes.SUBSCRIBE)
    sub_props.SubscriptionIdentifier = 7
    connect_props = Properties(PacketTypes.CONNECT)
    connect_props.SessionExpiryInterval = 0
    with anyio.fail_after(LIMIT):
        async with Client(
            mosquitto.host, mosquitto.port, protocol=V5, properties=connect_props
        ) as client:
            await client.subscribe(unique_topic, qos=1, properties=sub_props)
            await client.publish(unique_topic, "hi", qos=1, properties=props)
            message = await anext(client.messages)
            await client.publish(unique_topic, "plain", qos=1)
            plain = await anext(client.messages)
    received = message.properties
    assert received is not None
    assert received.ContentType == "text/plain"
    assert received.ResponseTopic == f"{unique_topic}/reply"
    assert received.CorrelationData == b"\x01\x02"
    assert received.UserProperty == [("a", "1"), ("b", "2")]
    assert 0 < received.MessageExpiryInterval <= 60
    assert received.SubscriptionIdentifier == [7]
    assert plain.properties is not None
    assert plain.properties.SubscriptionIdentifier == [7]
    assert not hasattr(plain.properties, "ContentType")


async def test_mqtt311_messages_have_no_properties(
    mosquitto: Mosquitto, unique_topic: str
) -> None:
    with anyio.fail_after(LIMIT):
        async with Client(mosquitto.host, mosquitto.port) as client:
            await client.subscribe(unique_topic)
            await client.publish(unique_topic, "x", qos=1)
            assert (await anext(client.messages)).properties is None


async def test_mqtt311_rejects_mqtt5_connect_options(mosquitto: Mosquitto) -> None:
    with anyio.fail_after(LIMIT):
        client = Client(mosquitto.host, mosquitto.port, clean_start=True)
        with pytest.raises(
            ValueError, match=exactly("Clean start only applies to MQTT V5")
        ):
            await client.__aenter__()
        client = Client(
            mosquitto.host,
            mosquitto.port,
            properties=Properties(PacketTypes.CONNECT),
        )
        with pytest.raises(
            ValueError, match=exactly("Properties only apply to MQTT V5")
        ):
            await client.__aenter__()


# ----------------------------------------------------------------- transports, TLS


@pytest.fixture
def ca_file(mosquitto: Mosquitto, tmp_path: Path) -> str:
    path = tmp_path / "ca.pem"
    path.write_bytes(mosquitto.ca_pem)
    return str(path)


async def exchange(client: Client, topic: str) -> bytes:
    await client.subscribe(topic, qos=1)
    await client.publish(topic, "over the wire", qos=1)
    return (await anext(client.messages)).payload


async def test_tls_with_tls_params(
    mosquitto: Mosquitto, unique_topic: str, ca_file: str
) -> None:
    with anyio.fail_after(LIMIT):
        params = TLSParameters(ca_certs=ca_file)
        async with Client("localhost", mosquitto.tls_port, tls_params=params) as client:
            assert await exchange(client, unique_topic) == b"over the wire"


async def test_tls_with_tls_context(mosquitto: Mosquitto, unique_topic: str) -> None:
    with anyio.fail_after(LIMIT):
        context = ssl.create_default_context(cadata=mosquitto.ca_pem.decode())
        async with Client(
            mosquitto.host, mosquitto.tls_port, tls_context=context, protocol=V5
        ) as client:
            assert await exchange(client, unique_topic) == b"over the wire"


async def test_tls_insecure_skips_the_host_name_check(
    mosquitto: Mosquitto, unique_topic: str, ca_file: str
) -> None:
    # "127.1" reaches the broker, but the certificate does not name it.
    with anyio.fail_after(LIMIT):
        params = TLSParameters(ca_certs=ca_file)
        checked = Client("127.1", mosquitto.tls_port, tls_params=params)
        with pytest.raises(MqttError, match=r"^TLS certificate verification failed"):
            await checked.__aenter__()
        insecure = Client(
            "127.1", mosquitto.tls_port, tls_params=params, tls_insecure=True
        )
        async with insecure:
            assert await exchange(insecure, unique_topic) == b"over the wire"


async def test_tls_params_with_a_missing_file(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    with anyio.fail_after(LIMIT):
        params = TLSParameters(ca_certs=str(tmp_path / "missing.pem"))
        client = Client(mosquitto.host, mosquitto.tls_port, tls_params=params)
        with pytest.raises(MqttError, match=r"No such file or directory"):
            await client.__aenter__()


@pytest.mark.parametrize("path", [None, "/", "/some/path"])
async def test_websockets_with_path(
    mosquitto: Mosquitto, unique_topic: str, path: str | None
) -> None:
    with anyio.fail_after(LIMIT):
        async with Client(
            mosquitto.host,
            mosquitto.ws_port,
            transport="websockets",
            websocket_path=path,
            websocket_headers={"X-Shim": "yes"},
        ) as client:
            assert await exchange(client, unique_topic) == b"over the wire"


@pytest.mark.parametrize(
    ("path", "headers", "expected_target", "expected_header"),
    [
        (None, {"X-Shim": "dict"}, "/mqtt", "x-shim: dict"),
        ("ws", {"Host": "ignored", "X-Shim": "x"}, "/ws", "x-shim: x"),
        (
            "/ws",
            lambda defaults: {**defaults, "X-Shim": "called"},
            "/ws",
            "x-shim: called",
        ),
    ],
)
async def test_websockets_sends_path_and_headers(
    path: str | None,
    headers: dict[str, str] | Callable[[dict[str, str]], dict[str, str]],
    expected_target: str,
    expected_header: str,
) -> None:
    # A fake server that records the upgrade request and hangs up.
    requests: list[bytes] = []
    with anyio.fail_after(LIMIT):
        async with await anyio.create_tcp_listener(local_host="127.0.0.1") as listener:
            port = listener.extra(anyio.abc.SocketAttribute.local_port)

            async def record(stream: anyio.abc.SocketStream) -> None:
                async with stream:
                    data = b""
                    while b"\r\n\r\n" not in data:
                        data += await stream.receive()
                    requests.append(data)

            async with anyio.create_task_group() as group:
                group.start_soon(listener.serve, record)
                client = Client(
                    "127.0.0.1",
                    port,
                    transport="websockets",
                    websocket_path=path,
                    websocket_headers=headers,
                )
                with pytest.raises(MqttError):
                    await client.__aenter__()
                group.cancel_scope.cancel()
    request = requests[0].decode().lower()
    assert request.startswith(f"get {expected_target} http/1.1\r\n")
    assert expected_header in request.split("\r\n")


async def test_unix_socket(mosquitto: Mosquitto, unique_topic: str) -> None:
    with anyio.fail_after(LIMIT):
        async with Client(mosquitto.unix_path, transport="unix") as client:
            assert await exchange(client, unique_topic) == b"over the wire"


async def test_bind_address_and_socket_options(
    mosquitto: Mosquitto, unique_topic: str
) -> None:
    with anyio.fail_after(LIMIT):
        async with Client(
            mosquitto.host,
            mosquitto.port,
            bind_address="127.0.0.1",
            socket_options=[(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)],
        ) as client:
            assert await exchange(client, unique_topic) == b"over the wire"
        async with Client(
            mosquitto.unix_path,
            transport="unix",
            socket_options=[(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)],
        ) as client:
            assert await exchange(client, unique_topic) == b"over the wire"


async def test_tls_through_bound_sockets(
    mosquitto: Mosquitto, unique_topic: str, ca_file: str
) -> None:
    with anyio.fail_after(LIMIT):
        async with Client(
            "127.1",
            mosquitto.tls_port,
            tls_params=TLSParameters(ca_certs=ca_file),
            tls_insecure=True,
            bind_address="127.0.0.1",
        ) as client:
            assert await exchange(client, unique_topic) == b"over the wire"
        context = ssl.create_default_context(cadata=mosquitto.ca_pem.decode())
        async with Client(
            "localhost",
            mosquitto.tls_port,
            tls_context=context,
            socket_options=[(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)],
        ) as client:
            assert await exchange(client, unique_topic) == b"over the wire"


async def test_bind_port(mosquitto: Mosquitto, unique_topic: str) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with anyio.fail_after(LIMIT):
        async with Client(mosquitto.host, mosquitto.port, bind_port=port) as client:
            assert await exchange(client, unique_topic) == b"over the wire"


async def test_websockets_ignore_socket_options_and_refuse_bind(
    mosquitto: Mosquitto, unique_topic: str
) -> None:
    with anyio.fail_after(LIMIT):
        async with Client(
            mosquitto.host,
            mosquitto.ws_port,
            transport="websockets",
            socket_options=[(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)],
        ) as client:
            assert await exchange(client, unique_topic) == b"over the wire"
        client = Client(
            mosquitto.host,
            mosquitto.ws_port,
            transport="websockets",
            bind_address="127.0.0.1",
        )
        with pytest.raises(NotImplementedError, match=r"^bind_address and bind_port"):
            await client.__aenter__()


async def test_unsupported_settings_fail_clearly(mosquitto: Mosquitto) -> None:
    with anyio.fail_after(LIMIT):
        context = ssl.create_default_context(cadata=mosquitto.ca_pem.decode())
        client = Client(mosquitto.unix_path, transport="unix", tls_context=context)
        with pytest.raises(NotImplementedError, match=r"^TLS over a unix socket"):
            await client.__aenter__()
        with pytest.raises(NotImplementedError, match=r"^MQTT 3\.1 \(ProtocolVersion"):
            await Client(mosquitto.host, protocol=ProtocolVersion.V31).__aenter__()
        with pytest.raises(
            MqttError, match=r"^cannot use mqtt uri 'mqtt://bad host:1883'"
        ):
            await Client("bad host").__aenter__()


async def test_silent_broker_times_out() -> None:
    # A listener that accepts and never answers CONNECT.
    with anyio.fail_after(LIMIT):
        async with (
            await anyio.create_tcp_listener(local_host="127.0.0.1") as listener,
            anyio.create_task_group() as group,
        ):

            async def hold(stream: anyio.abc.SocketStream) -> None:
                async with stream:
                    await anyio.sleep_forever()

            group.start_soon(listener.serve, hold)
            port = listener.extra(anyio.abc.SocketAttribute.local_port)
            client = Client("127.0.0.1", port, timeout=0.2)
            with pytest.raises(MqttError, match=exactly("Operation timed out")):
                await client.__aenter__()
            group.cancel_scope.cancel()


async def test_max_inflight_messages_zero_is_no_limit(
    mosquitto: Mosquitto, unique_topic: str
) -> None:
    with anyio.fail_after(LIMIT):
        async with (
            Client(mosquitto.host, mosquitto.port, max_inflight_messages=0) as client,
            anyio.create_task_group() as group,
        ):
            client.pending_calls_threshold = 100
            for index in range(30):
                group.start_soon(client.publish, unique_topic, index, 2)


def test_client_repr_hides_the_password() -> None:
    client = Client("broker.example", 1884, username="u", password="s3cret")
    assert repr(client) == (
        "<aiomqtt.Client 'broker.example':1884 identifier='' disconnected>"
    )


def test_client_signature_matches_aiomqtt_2_5_1() -> None:
    # Names, order and defaults of aiomqtt 2.5.1's Client.__init__, then our extras.
    expected = [
        ("hostname", inspect.Parameter.empty),
        ("port", 1883),
        ("username", None),
        ("password", None),
        ("logger", None),
        ("identifier", None),
        ("queue_type", None),
        ("protocol", None),
        ("will", None),
        ("clean_session", None),
        ("transport", "tcp"),
        ("timeout", None),
        ("keepalive", 60),
        ("bind_address", ""),
        ("bind_port", 0),
        ("clean_start", 3),
        ("max_queued_incoming_messages", None),
        ("max_queued_outgoing_messages", None),
        ("max_inflight_messages", None),
        ("max_concurrent_outgoing_calls", None),
        ("properties", None),
        ("tls_context", None),
        ("tls_params", None),
        ("tls_insecure", None),
        ("proxy", None),
        ("socket_options", None),
        ("websocket_path", None),
        ("websocket_headers", None),
        ("reconnect", False),
        ("client_id", None),
        ("message_retry_set", 20),
        ("max_queued_messages", None),
    ]
    parameters = list(inspect.signature(Client).parameters.values())
    assert [(p.name, p.default) for p in parameters] == expected
    assert [p.kind for p in parameters[:2]] == [
        inspect.Parameter.POSITIONAL_OR_KEYWORD
    ] * 2
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in parameters[2:])
    for method, names in [
        ("subscribe", ["topic", "qos", "options", "properties", "timeout"]),
        ("unsubscribe", ["topic", "properties", "timeout"]),
        ("publish", ["topic", "payload", "qos", "retain", "properties", "timeout"]),
    ]:
        signature = inspect.signature(getattr(Client, method))
        assert list(signature.parameters)[1:] == names
        assert signature.parameters["timeout"].kind is inspect.Parameter.KEYWORD_ONLY
        assert signature.parameters["timeout"].default is None


@pytest.mark.parametrize(
    ("topic", "topic_filter", "expected"),
    [
        ("a/b", "a/b", True),
        ("a/b", "a/+", True),
        ("a/b", "#", True),
        ("a", "a/#", True),
        ("a/b/c", "a/+", False),
        ("a/b", "a/b/c", False),
        ("a/", "a/+", True),
        ("$SYS/x", "#", False),
        ("$SYS/x", "+/x", False),
        ("$SYS/x", "$SYS/#", True),
        ("a/b", "$share/group/a/+", True),
        ("a/b", "$share/group", False),
    ],
)
def test_stream_filter_matching(topic: str, topic_filter: str, expected: bool) -> None:
    # What decides whether a message belongs to a client.subscription() stream.
    from trio_mqttconn.aiomqtt.client import _matches

    assert _matches(topic, topic_filter) is expected
