"""The aiomqtt shim when the network breaks: lost connections, wills, reconnects.

The client reaches mosquitto through a small TCP relay that the test can cut, which
closes the connection without a DISCONNECT, as a crash or a network failure would.
Also here: persistent sessions and the ``client.subscription()`` streams.
"""

from __future__ import annotations

import contextlib
import logging
import re
from typing import TYPE_CHECKING

import anyio
import anyio.abc
import pytest

from tests.shim._queues import watched_queue
from trio_mqttconn.aiomqtt import (
    Client,
    MqttCodeError,
    MqttError,
    ProtocolVersion,
    Will,
)
from trio_mqttconn.aiomqtt._paho import PacketTypes, Properties

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator

    from trio_mqttconn.aiomqtt.client import MessageStream
    from trio_mqttconn.testing import Mosquitto

pytestmark = [pytest.mark.anyio, pytest.mark.broker]

V311, V5 = ProtocolVersion.V311, ProtocolVersion.V5
LIMIT = 20
DISCONNECTED = "^Disconnected during message iteration$"


def exactly(text: str) -> str:
    return f"^{re.escape(text)}$"


class Relay:
    """Forwards TCP connections to the broker; `cut` drops them all at once."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self.connections = 0
        self._scopes: set[anyio.CancelScope] = set()
        self._serving = anyio.CancelScope()
        self._flowing = anyio.Event()
        self._flowing.set()

    async def _handle(self, downstream: anyio.abc.SocketStream) -> None:
        async with downstream:
            upstream = await anyio.connect_tcp("127.0.0.1", self.target_port)
            async with upstream, anyio.create_task_group() as group:
                self.connections += 1
                self._scopes.add(group.cancel_scope)
                group.start_soon(self._pipe, downstream, upstream, group.cancel_scope)
                group.start_soon(self._pipe, upstream, downstream, group.cancel_scope)
            self._scopes.discard(group.cancel_scope)

    async def _pipe(
        self,
        source: anyio.abc.SocketStream,
        sink: anyio.abc.SocketStream,
        scope: anyio.CancelScope,
    ) -> None:
        with contextlib.suppress(anyio.BrokenResourceError, anyio.EndOfStream, OSError):
            async for chunk in source:
                if (
                    source.extra(anyio.abc.SocketAttribute.remote_port)
                    == self.target_port
                ):
                    await self._flowing.wait()
                await sink.send(chunk)
        scope.cancel()  # one side ended: close both

    def hold(self) -> None:
        """Keep what the broker sends from reaching the client, until `cut`."""
        self._flowing = anyio.Event()

    def cut(self) -> None:
        """Close every relayed connection (no DISCONNECT reaches the broker)."""
        self._flowing.set()
        for scope in list(self._scopes):
            scope.cancel()

    def stop(self) -> None:
        """Cut every connection and serve no more."""
        self._serving.cancel()

    async def serve(self, listener: anyio.abc.Listener[anyio.abc.SocketStream]) -> None:
        with self._serving:
            await listener.serve(self._handle)


@contextlib.asynccontextmanager
async def relay_to(port: int) -> AsyncIterator[Relay]:
    relay = Relay(port)
    async with (
        await anyio.create_tcp_listener(local_host="127.0.0.1") as listener,
        anyio.create_task_group() as group,
    ):
        relay.port = listener.extra(anyio.abc.SocketAttribute.local_port)
        group.start_soon(relay.serve, listener)
        yield relay
        group.cancel_scope.cancel()


def shim_warnings(records: list[logging.LogRecord]) -> list[tuple[str, int, str]]:
    # The engine may warn about a lost connection on its own logger
    # ("trio_mqttconn.client"); the shim's warnings are aiomqtt's, on "mqtt".
    return [
        (r.name, r.levelno, r.getMessage())
        for r in records
        if r.levelno >= logging.WARNING and r.name == "mqtt"
    ]


@pytest.fixture(autouse=True)
def no_unexpected_warnings(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """A lost connection makes the shim log nothing at WARNING+ on ``mqtt``."""
    yield
    assert shim_warnings(caplog.get_records("call")) == []


# ------------------------------------------------------------- lost connections


@pytest.mark.parametrize("protocol", [V311, V5])
async def test_lost_connection_ends_iteration_after_the_queued_messages(
    mosquitto: Mosquitto, unique_topic: str, protocol: ProtocolVersion
) -> None:
    queue_type, offers = watched_queue()
    with anyio.fail_after(LIMIT):
        async with relay_to(mosquitto.port) as relay:
            client = Client(
                mosquitto.host, relay.port, protocol=protocol, queue_type=queue_type
            )
            async with client:
                await client.subscribe(unique_topic, qos=1)
                await client.publish(unique_topic, "before", qos=1)
                await offers.wait_for(1)
                relay.cut()
                assert (await anext(client.messages)).payload == b"before"
                with pytest.raises(MqttError, match=DISCONNECTED) as caught:
                    await anext(client.messages)
                cause = caught.value.__cause__
                assert isinstance(cause, MqttCodeError)
                assert str(cause) == "[code:128] Unspecified error"
                assert cause.args == ("Unexpected disconnection",)
                with pytest.raises(
                    MqttCodeError,
                    match=exactly("[code:4] The client is not currently connected."),
                ) as not_connected:
                    await client.publish(unique_topic, "after", qos=1)
                assert not_connected.value.__cause__ is cause
            # Leaving raised nothing and logged nothing; the client is reusable.
            async with client:
                await client.subscribe(unique_topic, qos=1)
                await client.publish(unique_topic, "again", qos=1)
                assert (await anext(client.messages)).payload == b"again"
            assert relay.connections == 2


async def test_lost_connection_fails_pending_calls(
    mosquitto: Mosquitto, unique_topic: str
) -> None:
    with anyio.fail_after(LIMIT):
        async with (
            relay_to(mosquitto.port) as relay,
            Client(mosquitto.host, relay.port) as client,
        ):
            relay.stop()  # nothing gets through any more
            # Whether the loss is noticed before or during the call decides the code.
            lost = (
                "[code:7] The connection was lost.",
                "[code:4] The client is not currently connected.",
            )
            with pytest.raises(MqttCodeError) as caught:
                await client.publish(unique_topic, "lost", qos=1)
            assert str(caught.value) in lost
            with pytest.raises(MqttCodeError) as caught:
                await client.subscribe(unique_topic)
            assert str(caught.value) == lost[1]
            with pytest.raises(MqttCodeError) as caught:
                await client.unsubscribe(unique_topic)
            assert str(caught.value) == lost[1]


async def test_calls_in_flight_when_the_connection_breaks(
    mosquitto: Mosquitto, unique_topic: str
) -> None:
    outcomes: list[str] = []

    async def call(name: str) -> None:
        operation = getattr(client, name)
        try:
            await operation(unique_topic, **({"qos": 1} if name == "publish" else {}))
        except MqttCodeError as exc:
            outcomes.append(f"{name}: {exc}")

    with anyio.fail_after(LIMIT):
        async with (
            relay_to(mosquitto.port) as relay,
            Client(mosquitto.host, relay.port) as client,
        ):
            relay.hold()  # the broker's answers stop coming
            async with anyio.create_task_group() as group:
                for name in ("publish", "subscribe", "unsubscribe"):
                    group.start_soon(call, name)
                await anyio.wait_all_tasks_blocked()
                relay.cut()
    assert sorted(outcomes) == [
        "publish: [code:7] The connection was lost.",
        "subscribe: [code:7] The connection was lost.",
        "unsubscribe: [code:7] The connection was lost.",
    ]


@pytest.mark.parametrize("protocol", [V311, V5])
async def test_will_is_published_when_the_connection_breaks(
    mosquitto: Mosquitto, unique_topic: str, protocol: ProtocolVersion
) -> None:
    will_props = None
    if protocol == V5:
        will_props = Properties(PacketTypes.WILLMESSAGE)
        will_props.ContentType = "text/plain"
    will = Will(unique_topic, "gone", qos=1, retain=False, properties=will_props)
    with anyio.fail_after(LIMIT):
        async with Client(
            mosquitto.host, mosquitto.port, protocol=protocol
        ) as observer:
            await observer.subscribe(unique_topic, qos=1)
            async with (
                relay_to(mosquitto.port) as relay,
                Client(
                    mosquitto.host, relay.port, protocol=protocol, will=will
                ) as client,
            ):
                relay.cut()
                with pytest.raises(MqttError, match=DISCONNECTED):
                    await anext(client.messages)
            message = await anext(observer.messages)
    assert (message.topic.value, message.payload, message.qos) == (
        unique_topic,
        b"gone",
        1,
    )
    if protocol == V5:
        assert message.properties is not None
        assert message.properties.ContentType == "text/plain"


async def test_graceful_disconnect_does_not_publish_the_will(
    mosquitto: Mosquitto, unique_topic: str
) -> None:
    with anyio.fail_after(LIMIT):
        async with Client(mosquitto.host, mosquitto.port) as observer:
            await observer.subscribe(f"{unique_topic}/#", qos=1)
            async with Client(
                mosquitto.host, mosquitto.port, will=Will(f"{unique_topic}/will", "x")
            ):
                pass
            # The will would come before this one, on the same subscription.
            async with Client(mosquitto.host, mosquitto.port) as other:
                await other.publish(f"{unique_topic}/marker", "m", qos=1)
            message = await anext(observer.messages)
    assert message.topic.value == f"{unique_topic}/marker"


async def test_aexit_while_disconnected_warns_and_forces(
    mosquitto: Mosquitto, caplog: pytest.LogCaptureFixture
) -> None:
    with anyio.fail_after(LIMIT):
        async with (
            relay_to(mosquitto.port) as relay,
            Client(mosquitto.host, relay.port, reconnect=True) as client,
        ):
            relay.stop()
            # White box: wait until the engine saw the connection end.
            assert client._conn is not None
            while client._conn.engine.is_connected:
                await anyio.wait_all_tasks_blocked()
    assert shim_warnings(caplog.records) == [
        (
            "mqtt",
            logging.WARNING,
            "Could not gracefully disconnect: 4. Forcing disconnection.",
        )
    ]
    caplog.clear()


# ----------------------------------------------------------------------- reconnect


async def test_reconnect_true_survives_a_lost_connection(
    mosquitto: Mosquitto, unique_topic: str
) -> None:
    with anyio.fail_after(LIMIT):
        async with relay_to(mosquitto.port) as relay:
            async with Client(mosquitto.host, relay.port, reconnect=True) as client:
                await client.subscribe(unique_topic, qos=1)
                await client.publish(unique_topic, "first", qos=1)
                assert (await anext(client.messages)).payload == b"first"
                relay.cut()
                # The publish waits for the new connection; the subscription is
                # restored on it, and iteration never noticed the gap.
                await client.publish(unique_topic, "second", qos=1)
                assert (await anext(client.messages)).payload == b"second"
            assert relay.connections == 2


# ------------------------------------------------------------- persistent sessions


async def test_persistent_session_delivers_what_came_while_away(
    mosquitto: Mosquitto, unique_topic: str
) -> None:
    identifier = f"shim-{abs(hash(unique_topic))}"
    queue_type, offers = watched_queue()
    with anyio.fail_after(LIMIT):
        async with Client(
            mosquitto.host, mosquitto.port, identifier=identifier, clean_session=False
        ) as client:
            await client.subscribe(unique_topic, qos=1)
        async with Client(mosquitto.host, mosquitto.port) as publisher:
            for index in range(5):
                await publisher.publish(unique_topic, index, qos=1)
        # The broker sends the stored messages right after CONNACK.
        client = Client(
            mosquitto.host,
            mosquitto.port,
            identifier=identifier,
            clean_session=False,
            queue_type=queue_type,
        )
        async with client:
            await offers.wait_for(5)
            payloads = [(await anext(client.messages)).payload for _ in range(5)]
        async with Client(mosquitto.host, mosquitto.port, identifier=identifier):
            pass  # a clean session drops the stored one
    assert payloads == [b"0", b"1", b"2", b"3", b"4"]


async def test_persistent_session_mqtt5_with_clean_start_false(
    mosquitto: Mosquitto, unique_topic: str
) -> None:
    identifier = f"shim5-{abs(hash(unique_topic))}"
    expiry = Properties(PacketTypes.CONNECT)
    expiry.SessionExpiryInterval = 60
    with anyio.fail_after(LIMIT):
        async with Client(
            mosquitto.host,
            mosquitto.port,
            identifier=identifier,
            protocol=V5,
            properties=expiry,
        ) as client:
            await client.subscribe(unique_topic, qos=1)
        async with Client(mosquitto.host, mosquitto.port) as publisher:
            await publisher.publish(unique_topic, "kept for you", qos=1)
        async with Client(
            mosquitto.host,
            mosquitto.port,
            identifier=identifier,
            protocol=V5,
            clean_start=False,
            properties=expiry,
        ) as client:
            assert (await anext(client.messages)).payload == b"kept for you"
        async with Client(
            mosquitto.host, mosquitto.port, identifier=identifier, protocol=V5
        ):
            pass  # clean start, no expiry: the session is gone


# ------------------------------------------------------- client.subscription() streams


async def test_subscription_stream_takes_its_messages(
    mosquitto: Mosquitto, unique_topic: str
) -> None:
    with anyio.fail_after(LIMIT):
        async with Client(mosquitto.host, mosquitto.port) as client:
            await client.subscribe(f"{unique_topic}/other", qos=1)
            async with client.subscription(f"{unique_topic}/+/s", qos=1) as stream:
                assert stream.topic_filter == f"{unique_topic}/+/s"
                assert stream.granted_qos == 1
                await client.publish(f"{unique_topic}/1/s", "s1", qos=1)
                await client.publish(f"{unique_topic}/other", "o", qos=1)
                await client.publish(f"{unique_topic}/2/s", "s2", qos=1)
                assert (await anext(client.messages)).payload == b"o"
                got = [await anext(stream), await stream.receive()]
                assert [m.payload for m in got] == [b"s1", b"s2"]
                assert [m.topic.value for m in got] == [
                    f"{unique_topic}/1/s",
                    f"{unique_topic}/2/s",
                ]
                assert len(client.messages) == 0
                assert stream.statistics().delivered == 2
            # Unsubscribed on exit: the broker sends no more of them.
            await client.subscribe(f"{unique_topic}/+/s", qos=1)
            await client.publish(f"{unique_topic}/3/s", "back", qos=1)
            assert (await anext(client.messages)).payload == b"back"


async def test_subscription_stream_drop_oldest(
    mosquitto: Mosquitto, unique_topic: str
) -> None:
    with anyio.fail_after(LIMIT):
        async with Client(mosquitto.host, mosquitto.port) as client:
            await client.subscribe(f"{unique_topic}/marker", qos=1)
            async with client.subscription(
                f"{unique_topic}/s", qos=1, buffer=1, overflow="drop_oldest"
            ) as stream:
                for index in range(3):
                    await client.publish(f"{unique_topic}/s", index, qos=1)
                await client.publish(f"{unique_topic}/marker", "m", qos=1)
                await anext(client.messages)  # everything before it arrived
                assert (await anext(stream)).payload == b"2"
                stats = stream.statistics()
                assert (stats.delivered, stats.dropped) == (3, 2)


@pytest.mark.parametrize("protocol", [V311, V5])
async def test_subscription_stream_mqtt5_options_and_errors(
    mosquitto: Mosquitto, unique_topic: str, protocol: ProtocolVersion
) -> None:
    with anyio.fail_after(LIMIT):
        client = Client(mosquitto.host, mosquitto.port, protocol=protocol)
        with pytest.raises(
            MqttCodeError,
            match=exactly("[code:4] The client is not currently connected."),
        ):
            async with client.subscription(unique_topic):
                pass  # pragma: no cover
        async with client:
            with pytest.raises(TypeError, match=r"^subscription\(\) takes one topic"):
                async with client.subscription([(unique_topic, 1)]):  # type: ignore[arg-type]
                    pass  # pragma: no cover
            with pytest.raises(MqttError, match=exactly("Operation timed out")):
                async with client.subscription(unique_topic, timeout=0):
                    pass  # pragma: no cover
            async with client.subscription(unique_topic, qos=2) as stream:
                await client.publish(unique_topic, "x", qos=2)
                message = await anext(stream)
                assert message.qos == 2
                assert (message.properties is None) is (protocol == V311)


async def test_subscription_stream_reports_a_lost_connection(
    mosquitto: Mosquitto, unique_topic: str
) -> None:
    with anyio.fail_after(LIMIT):
        async with (
            relay_to(mosquitto.port) as relay,
            Client(mosquitto.host, relay.port) as client,
            client.subscription(unique_topic, qos=1) as stream,
        ):
            await client.publish(unique_topic, "kept", qos=1)
            relay.cut()
            assert (await anext(stream)).payload == b"kept"
            with pytest.raises(MqttError, match=DISCONNECTED):
                await anext(stream)


async def test_subscription_stream_ends_when_the_client_closes(
    mosquitto: Mosquitto, unique_topic: str
) -> None:
    with anyio.fail_after(LIMIT):
        client = Client(mosquitto.host, mosquitto.port)
        seen: list[bytes] = []
        first, ended = anyio.Event(), anyio.Event()

        async def consume(stream: MessageStream) -> None:
            async for message in stream:
                seen.append(message.payload)
                first.set()
            ended.set()

        async with (
            contextlib.AsyncExitStack() as stack,
            anyio.create_task_group() as group,
        ):
            await client.__aenter__()
            stream = await stack.enter_async_context(
                client.subscription(unique_topic, qos=1)
            )
            group.start_soon(consume, stream)
            await client.publish(unique_topic, "one", qos=1)
            await first.wait()
            await client.__aexit__(None, None, None)
            await ended.wait()  # StopAsyncIteration, not an error
    assert seen == [b"one"]


# ----------------------------------------------------------- asyncio-mqtt 0.16


async def test_legacy_disconnect_raises_the_error_that_ended_the_connection(
    mosquitto: Mosquitto,
) -> None:
    with anyio.fail_after(LIMIT):
        async with relay_to(mosquitto.port) as relay:
            client = Client(mosquitto.host, relay.port)
            await client.connect()
            try:
                async with client.messages() as messages:
                    relay.cut()
                    with pytest.raises(MqttError, match=DISCONNECTED):
                        await anext(messages)
            finally:
                with pytest.raises(
                    MqttCodeError, match=exactly("[code:128] Unspecified error")
                ):
                    await client.disconnect()
