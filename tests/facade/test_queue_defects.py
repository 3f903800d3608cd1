"""The defects of #12 (2 to 7) and the pip-services edges of #10, one test each.

Each test failed on 7f953d6. They use a real mosquitto where the defect needs a
broker, and a logger that reads its context as pip-services 4's loggers do
(``context.get("trace_id")``), which is what exposed the trace id defect.
"""

from __future__ import annotations

import json
import logging
import re
from typing import TYPE_CHECKING

import anyio
import attrs
import pytest

from trio_mqttconn import (
    ConfigError,
    ConfigParams,
    ConnectError,
    Descriptor,
    Message,
    MqttClient,
    References,
)
from trio_mqttconn._connection import MqttConnection
from trio_mqttconn._queue import MessageEnvelope, MqttMessageQueue
from trio_mqttconn._resolver import MqttConnectionResolver

if TYPE_CHECKING:
    from trio_mqttconn.testing import Mosquitto

pytestmark = pytest.mark.anyio

TIMEOUT = 10
SHARED = Descriptor("pip-services", "connection", "mqtt", "default", "1.0")
LOGGER = Descriptor("pip-services", "logger", "console", "default", "1.0")


def exactly(message: str) -> str:
    return f"^{re.escape(message)}$"


@attrs.define(eq=False)
class ContextReadingLogger:
    """Reads the trace id as pip-services 4's ``ContextResolver`` does.

    ``context.get("trace_id")``: a plain string fails with "'str' object has no
    attribute 'get'", as it does with a real ``ConsoleLogger``.
    """

    records: list[tuple[str, object, str]] = attrs.Factory(list)

    def _trace(self, context: object) -> object:
        return None if context is None else context.get("trace_id")  # type: ignore[attr-defined]  # as upstream

    def debug(self, context: object, message: str, *args: object) -> None:
        self.records.append(("debug", self._trace(context), message % args))

    def info(self, context: object, message: str, *args: object) -> None:
        self.records.append(("info", self._trace(context), message % args))

    def warn(self, context: object, message: str, *args: object) -> None:
        self.records.append(("warn", self._trace(context), message % args))

    def error(
        self, context: object, error: BaseException | None, message: str, *args: object
    ) -> None:
        self.records.append(("error", self._trace(context), message % args))


@attrs.define(eq=False)
class Receiver:
    envelopes: list[MessageEnvelope] = attrs.Factory(list)
    got_one: anyio.Event = attrs.Factory(anyio.Event)

    async def receive_message(
        self, message: MessageEnvelope, queue: MqttMessageQueue
    ) -> None:
        del queue
        self.envelopes.append(message)
        self.got_one.set()
        await anyio.lowlevel.checkpoint()


def queue_config(mosquitto: Mosquitto, topic: str, *tuples: object) -> ConfigParams:
    return ConfigParams.from_tuples(
        "connection.uri",
        mosquitto.uri,
        "topic",
        topic,
        "options.serialize_envelope",
        True,
        "options.qos",
        1,
        *tuples,
    )


async def deliver(queue: MqttMessageQueue, topic: str, payload: bytes) -> None:
    """Hand the queue a message as the connection's dispatch task does."""
    await queue.on_message(topic, payload, Message(topic=topic, payload=payload))


# -- #12 defect 2: racing first subscription ------------------------------------------


async def test_queue_concurrent_first_receives_subscribe_once(
    mosquitto: Mosquitto, unique_topic: str
) -> None:
    connection = MqttConnection()
    connection.configure({"connection.uri": mosquitto.uri})
    queue = MqttMessageQueue("q")
    queue.configure(queue_config(mosquitto, unique_topic))
    queue.set_references(References.from_tuples(SHARED, connection))
    got: list[MessageEnvelope | None] = []

    async def receive() -> None:
        got.append(await queue.receive(None, 200))

    with anyio.fail_after(TIMEOUT):
        async with anyio.create_task_group() as group:
            connection.bind(group)
            await connection.open(None)
            await queue.open(None)
            async with anyio.create_task_group() as racers:
                racers.start_soon(queue.peek, None)
                racers.start_soon(queue.peek, None)
            assert len(connection._subscriptions) == 1
            await queue.send(None, MessageEnvelope(None, "T", "once"))
            async with anyio.create_task_group() as receivers:
                receivers.start_soon(receive)
                receivers.start_soon(receive)
            await queue.close(None)
            assert connection._subscriptions == []  # nothing left behind
            await connection.close(None)
    assert [envelope.message for envelope in got if envelope is not None] == [b"once"]


async def test_queue_subscription_granted_after_close_is_removed(
    mosquitto: Mosquitto, unique_topic: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    granted, proceed = anyio.Event(), anyio.Event()
    subscribe = MqttConnection.subscribe

    async def slow_subscribe(
        self: MqttConnection, topic: str, options: object, listener: object
    ) -> None:
        await subscribe(self, topic, options, listener)  # type: ignore[arg-type]
        granted.set()
        await proceed.wait()  # close() runs here, after the SUBACK

    monkeypatch.setattr(MqttConnection, "subscribe", slow_subscribe)
    connection = MqttConnection()
    connection.configure({"connection.uri": mosquitto.uri})
    queue = MqttMessageQueue("q")
    queue.configure(queue_config(mosquitto, unique_topic))
    queue.set_references(References.from_tuples(SHARED, connection))
    with anyio.fail_after(TIMEOUT):
        async with anyio.create_task_group() as group:
            connection.bind(group)
            await connection.open(None)
            await queue.open(None)
            async with anyio.create_task_group() as racers:
                racers.start_soon(queue.peek, None)
                await granted.wait()
                await queue.close(None)
                proceed.set()
            assert connection._subscriptions == []
            await connection.close(None)


# -- #12 defect 3: trace ids reach pip-services loggers as contexts ------------------


async def test_queue_trace_ids_reach_pip_services_loggers_as_contexts(
    mosquitto: Mosquitto, unique_topic: str
) -> None:
    logger = ContextReadingLogger()
    references = References.from_tuples(LOGGER, logger)
    connection = MqttConnection()
    connection.configure({"connection.uri": mosquitto.uri})
    connection.set_references(references)
    queue = MqttMessageQueue("q")
    queue.configure(queue_config(mosquitto, unique_topic, "options.autosubscribe", 1))
    queue.set_references(References.from_tuples(LOGGER, logger, SHARED, connection))
    with anyio.fail_after(TIMEOUT):
        async with anyio.create_task_group() as group:
            connection.bind(group)
            await connection.open("123")  # raised here, after connecting
            assert connection.is_open()
            await queue.open("123")
            await queue.send("t-1", MessageEnvelope("t-1", "T", "traced"))  # once
            received = await queue.receive(None, 5000)
            await queue.close(None)
            await connection.close(None)
    assert received is not None
    assert (received.trace_id, received.message) == ("t-1", b"traced")
    assert ("info", "123", f"Connected to MQTT broker at {mosquitto.uri}") in [
        (level, trace, text.rpartition(" as ")[0])
        for level, trace, text in logger.records
    ]
    traced = [text for _, trace, text in logger.records if trace == "t-1"]
    assert any(text.startswith("Sent message") for text in traced)
    assert any(text.startswith("Received message") for text in traced)


async def test_connection_logger_that_raises_does_not_fail_the_operation(
    mosquitto: Mosquitto, caplog: pytest.LogCaptureFixture
) -> None:
    class Broken:
        def info(self, context: object, message: str) -> None:
            raise RuntimeError("logger down")

    connection = MqttConnection()
    connection.configure({"connection.uri": mosquitto.uri})
    connection.set_references(References.from_tuples(LOGGER, Broken()))
    with anyio.fail_after(TIMEOUT):
        async with connection:
            assert connection.is_open()
    assert "the referenced logger Broken failed: RuntimeError('logger down')" in [
        record.getMessage() for record in caplog.records
    ]


# -- #12 defect 4: a cancelled listen() leaves no receiver ----------------------------


async def test_queue_cancelled_listen_removes_its_receiver(
    mosquitto: Mosquitto, unique_topic: str
) -> None:
    queue = MqttMessageQueue("q")
    queue.configure(queue_config(mosquitto, unique_topic, "options.autosubscribe", 1))
    receiver = Receiver()
    with anyio.fail_after(TIMEOUT):
        async with queue:
            async with anyio.create_task_group() as group:
                group.start_soon(queue.listen, None, receiver)
                await anyio.wait_all_tasks_blocked()  # the receiver is installed
                group.cancel_scope.cancel()
            await queue.send(None, MessageEnvelope(None, "T", "after"))
            received = await queue.receive(None, 5000)
    assert receiver.envelopes == []
    assert received is not None
    assert received.message == b"after"


# -- #12 defect 5: end_listen() from the receiver during the hand-over ------------------


async def test_queue_end_listen_during_hand_over_is_honoured(
    mosquitto: Mosquitto, unique_topic: str
) -> None:
    queue = MqttMessageQueue("q")
    queue.configure(queue_config(mosquitto, unique_topic, "options.autosubscribe", 1))

    @attrs.define(eq=False)
    class StopsAtOnce:
        envelopes: list[MessageEnvelope] = attrs.Factory(list)

        def receive_message(
            self, message: MessageEnvelope, queue: MqttMessageQueue
        ) -> None:
            self.envelopes.append(message)
            queue.end_listen(None)

    receiver = StopsAtOnce()
    with anyio.fail_after(TIMEOUT):
        async with queue:
            for text in ("one", "two", "three"):
                payload = json.dumps(MessageEnvelope(None, "T", text).to_json())
                await deliver(queue, unique_topic, payload.encode())
            await queue.listen(None, receiver)  # returns: end_listen was called
            assert await queue.read_message_count() == 2
            await deliver(queue, unique_topic, payload.encode())
            assert await queue.read_message_count() == 3  # no receiver installed
    assert [envelope.message for envelope in receiver.envelopes] == [b"one"]


# -- #12 defect 6: what the ports write, read -----------------------------------------


def test_envelope_with_unreadable_sent_time_is_kept() -> None:
    for sent_time in ("yesterday", "2024-13-45", 12.5e30, True, [1]):
        text = json.dumps(
            {
                "message_id": "m1",
                "trace_id": "t1",
                "message_type": "T",
                "sent_time": sent_time,
                "message": "aGVsbG8=",
            }
        )
        envelope = MessageEnvelope.from_json(text)
        assert envelope is not None, sent_time
        assert (envelope.message, envelope.sent_time) == (b"hello", None)


def test_envelope_reads_unpadded_and_url_safe_base64() -> None:
    for encoded, payload in (
        ("aGVsbG8", b"hello"),  # unpadded
        ("aGk", b"hi"),
        ("-_8", b"\xfb\xff"),  # URL-safe
        ("+/8=", b"\xfb\xff"),
    ):
        text = json.dumps({"message": encoded, "sent_time": "2024-05-06T07:08:09.123Z"})
        envelope = MessageEnvelope.from_json(text)
        assert envelope is not None
        assert envelope.message == payload, encoded


# -- #12 defect 7: a bounded receive buffer -----------------------------------------


async def test_queue_buffer_is_bounded_counted_and_logged(
    mosquitto: Mosquitto, unique_topic: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "trio_mqttconn.connection")
    for overflow, kept in (
        ("drop_oldest", [b"3", b"4", b"5"]),
        ("drop_newest", [b"1", b"2", b"3"]),
    ):
        queue = MqttMessageQueue("bounded")
        queue.configure(
            queue_config(
                mosquitto,
                unique_topic,
                "options.max_buffered",
                3,
                "options.overflow",
                overflow,
            )
        )
        with anyio.fail_after(TIMEOUT):
            async with queue:
                for n in range(1, 6):
                    payload = json.dumps(MessageEnvelope(None, "T", str(n)).to_json())
                    await deliver(queue, unique_topic, payload.encode())
                assert await queue.read_message_count() == 3
                stats = queue.statistics()
                got = [
                    envelope.message for envelope in await queue.peek_batch(None, 10)
                ]
        assert got == kept
        assert (stats.buffered, stats.max_buffered, stats.dropped) == (3, 3, 2)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        "Queue bounded holds 3 messages, its options.max_buffered: dropping the "
        "oldest ones (options.overflow) until receive() takes some",
        "Queue bounded holds 3 messages, its options.max_buffered: dropping the "
        "newest ones (options.overflow) until receive() takes some",
    ]


def test_queue_buffer_options_are_checked() -> None:
    queue = MqttMessageQueue("q")
    with pytest.raises(
        ConfigError,
        match=exactly(
            "options.max_buffered must be a whole number of messages, at least 1, "
            "not '0'"
        ),
    ):
        queue.configure({"options.max_buffered": 0})
    with pytest.raises(
        ConfigError,
        match=exactly(
            "options.overflow must be drop_oldest or drop_newest, not 'wait'"
        ),
    ):
        queue.configure({"options.overflow": "wait"})


# -- #10 section 6 ------------------------------------------------------------------------


async def test_resolved_connection_reads_as_upstream_options() -> None:
    resolver = MqttConnectionResolver()
    resolver.configure(
        {
            "connection.uri": "mqtt://broker:1883",
            "credential.username": "svc",
            "credential.password": "hunter2",
        }
    )
    options = await resolver.resolve(None)
    assert options["uri"] == "mqtt://broker:1883"
    assert options.get("username") == "svc"
    assert options.get("missing") is None
    assert options.get_as_string("uri") == "mqtt://broker:1883"
    assert options["port"] == "1883"
    assert options.get_as_nullable_string("nothing") is None
    assert options.get_as_integer("port") == 1883
    assert options.get_as_object()["host"] == "broker"
    assert len(options) == len(list(options)) == 7
    assert options.port == 1883  # the typed attributes stay
    assert "hunter2" not in repr(options)


def test_bad_connection_values_fail_at_configure() -> None:
    for config, message in (
        (
            {"connection.host": "h", "connection.port": "abc"},
            "connection.port is 'abc', which is not a port: use a whole number from "
            "1 to 65535",
        ),
        (
            {"connection.uri": "foo://x"},
            "connection.uri is 'foo://x', whose scheme 'foo' MQTT does not support: "
            "use mqtt, mqtts, tcp, ssl, tls, ws, wss or unix",
        ),
    ):
        with pytest.raises(ConfigError, match=exactly(message)):
            MqttConnection().configure(config)
        with pytest.raises(ConfigError, match=exactly(message)):
            MqttMessageQueue("q").configure(config)


def test_unknown_option_is_warned_with_the_closest_key(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, "trio_mqttconn")
    MqttConnection().configure(
        {"connection.host": "h", "options.conect_timeout": 5, "options.zzz": 1}
    )
    MqttMessageQueue("q").configure(
        {"options.autosubscrib": True, "options.connect_timeout": 5}
    )
    assert [r.getMessage() for r in caplog.records] == [
        "unknown configuration key options.conect_timeout: did you mean "
        "options.connect_timeout?",
        "unknown configuration key options.zzz: it is ignored",
        "unknown configuration key options.autosubscrib: did you mean "
        "options.autosubscribe?",
    ]


async def test_connection_logs_one_info_record_per_connect(
    mosquitto: Mosquitto, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "trio_mqttconn")
    connection = MqttConnection()
    connection.configure({"connection.uri": mosquitto.uri})
    with anyio.fail_after(TIMEOUT):
        async with connection:
            pass
    infos = [r for r in caplog.records if r.levelno == logging.INFO]
    assert len([r for r in infos if "connected to" in r.getMessage().lower()]) == 1


async def test_failed_open_raises_without_logging_an_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    connection = MqttConnection()
    connection.configure(
        {"connection.uri": f"mqtt://127.0.0.1:{port}", "options.retry_connect": False}
    )
    with anyio.fail_after(TIMEOUT):
        async with anyio.create_task_group() as group:
            connection.bind(group)
            with pytest.raises(ConnectError):
                await connection.open(None)
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []


async def test_is_connected_is_a_property_on_every_face(mosquitto: Mosquitto) -> None:
    connection = MqttConnection()
    connection.configure({"connection.uri": mosquitto.uri})
    faces: list[MqttConnection | MqttClient] = [connection]
    assert [face.is_connected for face in faces] == [False]
    with anyio.fail_after(TIMEOUT):
        async with connection:
            client = connection.get_connection()
            assert client is not None
            faces.append(client)
            assert [face.is_connected for face in faces] == [True, True]
