"""Faithful to upstream (#12): envelope vectors of the Node and Dart ports, the API
upstream has (factories, contexts, capabilities, send_as_object, to_string), its
topic rule as an option, and the mqtt.js option names.

The envelope vectors are what the upstream sources write:
pip-services4-node ``MessageEnvelope.toJSON`` (``sent_time`` by
``StringConverter.toString(Date)``, i.e. ``toISOString()``; ``message`` by
``Buffer.toString('base64')``), pip-services4-dart ``MessageEnvelope.toJSON``
(``sent_time`` by ``DateTime.toIso8601String()`` of a local time; ``message`` as
the text itself), and pip-services4-python ``MessageEnvelope.to_json``
(``datetime.now().isoformat()``, base64).
"""

from __future__ import annotations

import datetime
import json
import re
from typing import TYPE_CHECKING

import anyio
import pytest

from trio_mqttconn import (
    ConfigError,
    ConfigParams,
    Context,
    DefaultMqttFactory,
    Descriptor,
    InvalidStateError,
    MessageEnvelope,
    MessagingCapabilities,
    MqttConnection,
    MqttMessageQueue,
    MqttMessageQueueFactory,
    NotOpenError,
    References,
)

from .test_connection import Collector
from .test_references import PipDescriptor

if TYPE_CHECKING:
    from trio_mqttconn.testing import Mosquitto

TIMEOUT = 10
UTC = datetime.UTC


def exactly(message: str) -> str:
    return f"^{re.escape(message)}$"


# -- envelope vectors ---------------------------------------------------------------

NODE_TEXT = (
    '{"message_id":"b9d8f8c0a1e24f7c9d1a2b3c4d5e6f70","trace_id":"123",'
    '"message_type":"Test","sent_time":"2024-05-06T07:08:09.123Z",'
    '"message":"VGVzdCBtZXNzYWdl"}'
)
NODE_BINARY = (
    '{"message_id":"1","trace_id":null,"message_type":"bin",'
    '"sent_time":"2024-05-06T07:08:09.123Z","message":"AAEC/w=="}'
)
NODE_EMPTY = (
    '{"message_id":"2","trace_id":null,"message_type":"T",'
    '"sent_time":"2024-05-06T07:08:09.123Z","message":""}'
)
NODE_NULL = (
    '{"message_id":"3","trace_id":null,"message_type":"T",'
    '"sent_time":"2024-05-06T07:08:09.123Z","message":null}'
)
DART_TEXT = (
    '{"message_id":"4","trace_id":"123","message_type":"Test",'
    '"sent_time":"2024-05-06T07:08:09.123456","message":"This is a test message"}'
)
DART_LOOKS_LIKE_BASE64 = (
    '{"message_id":"5","trace_id":"","message_type":"Test",'
    '"sent_time":"2024-05-06T07:08:09.123456","message":"test"}'
)
DART_JSON = (
    '{"message_id":"6","trace_id":null,"message_type":"order",'
    '"sent_time":"2024-05-06T07:08:09.123","message":"{\\"id\\":7}"}'
)
PYTHON_UPSTREAM = (
    '{"message_id": "7", "trace_id": "123", "message_type": "Test", '
    '"sent_time": "2024-05-06T07:08:09.123456", "message": "VGVzdCBtZXNzYWdl"}'
)


@pytest.mark.parametrize(
    ("wire", "trace_id", "message_type", "payload", "sent_time"),
    [
        (
            NODE_TEXT,
            "123",
            "Test",
            b"Test message",
            datetime.datetime(2024, 5, 6, 7, 8, 9, 123000, UTC),
        ),
        (
            NODE_BINARY,
            None,
            "bin",
            b"\x00\x01\x02\xff",
            datetime.datetime(2024, 5, 6, 7, 8, 9, 123000, UTC),
        ),
        (
            NODE_EMPTY,
            None,
            "T",
            b"",
            datetime.datetime(2024, 5, 6, 7, 8, 9, 123000, UTC),
        ),
        (
            NODE_NULL,
            None,
            "T",
            None,
            datetime.datetime(2024, 5, 6, 7, 8, 9, 123000, UTC),
        ),
        (
            DART_TEXT,
            "123",
            "Test",
            b"This is a test message",
            datetime.datetime(2024, 5, 6, 7, 8, 9, 123456, UTC),
        ),
        (
            DART_LOOKS_LIKE_BASE64,
            None,
            "Test",
            b"test",
            datetime.datetime(2024, 5, 6, 7, 8, 9, 123456, UTC),
        ),
        (
            DART_JSON,
            None,
            "order",
            b'{"id":7}',
            datetime.datetime(2024, 5, 6, 7, 8, 9, 123000, UTC),
        ),
        (
            PYTHON_UPSTREAM,
            "123",
            "Test",
            b"Test message",
            datetime.datetime(2024, 5, 6, 7, 8, 9, 123456, UTC),
        ),
    ],
    ids=[
        "node-text",
        "node-binary",
        "node-empty",
        "node-null",
        "dart-text",
        "dart-text-like-base64",
        "dart-json",
        "python-naive-time",
    ],
)
def test_envelope_reads_what_the_ports_write(
    wire: str,
    trace_id: str | None,
    message_type: str,
    payload: bytes | None,
    sent_time: datetime.datetime,
) -> None:
    envelope = MessageEnvelope.from_json(wire)
    assert envelope is not None
    assert (envelope.trace_id, envelope.message_type, envelope.message) == (
        trace_id,
        message_type,
        payload,
    )
    assert envelope.sent_time == sent_time
    assert envelope.message_id == json.loads(wire)["message_id"]


def test_envelope_writes_what_node_writes() -> None:
    envelope = MessageEnvelope(Context.from_trace_id("123"), "Test", "Test message")
    envelope.message_id = "b9d8f8c0a1e24f7c9d1a2b3c4d5e6f70"
    envelope.sent_time = datetime.datetime(2024, 5, 6, 7, 8, 9, 123456, UTC)
    assert json.dumps(envelope.to_json(), separators=(",", ":")) == NODE_TEXT
    empty = MessageEnvelope(None, "T", "")
    empty.message_id = "2"
    empty.sent_time = datetime.datetime(2024, 5, 6, 7, 8, 9, 123000, UTC)
    assert json.dumps(empty.to_json(), separators=(",", ":")) == NODE_EMPTY
    # a naive time is taken as UTC; another zone is converted
    envelope.sent_time = datetime.datetime(2024, 5, 6, 9, 8, 9, 123000)
    assert envelope.to_json()["sent_time"] == "2024-05-06T09:08:09.123Z"
    envelope.sent_time = datetime.datetime(
        2024, 5, 6, 9, 8, 9, 123000, datetime.timezone(datetime.timedelta(hours=2))
    )
    assert envelope.to_json()["sent_time"] == "2024-05-06T07:08:09.123Z"


def test_envelope_writes_text_for_dart() -> None:
    envelope = MessageEnvelope("123", "Test", "This is a test message")
    wire = envelope.to_json(text=True)
    assert wire["message"] == "This is a test message"
    back = MessageEnvelope.from_json(json.dumps(wire))
    assert back is not None
    assert back.message == b"This is a test message"


def test_envelope_numbers_become_text() -> None:
    envelope = MessageEnvelope.from_json(
        '{"message_id": 42, "trace_id": 7, "message_type": 5, "sent_time": '
        '1714979289123, "message": null}'
    )
    assert envelope is not None
    assert (envelope.message_id, envelope.trace_id, envelope.message_type) == (
        "42",
        "7",
        "5",
    )
    assert envelope.sent_time == datetime.datetime(2024, 5, 6, 7, 8, 9, 123000, UTC)


def test_envelope_to_string_and_context() -> None:
    envelope = MessageEnvelope(Context.from_trace_id("t1"), "Test", "Test message")
    assert envelope.trace_id == "t1"
    assert envelope.to_string() == str(envelope) == "[t1,Test,Test message]"


def test_context_from_trace_id() -> None:
    context = Context.from_trace_id("123")
    assert context.get("trace_id") == "123"
    assert context.get("client") is None
    assert context.get_trace_id() == "123"
    assert Context.from_trace_id(None).get_trace_id() is None
    assert MessageEnvelope(42, "T", None).trace_id == "42"
    assert MessageEnvelope(True, "T", None).trace_id is None
    assert MessageEnvelope(object(), "T", None).trace_id is None


# -- the queue's upstream API -----------------------------------------------------------


def test_queue_capabilities_and_to_string() -> None:
    queue = MqttMessageQueue("orders")
    capabilities = queue.get_capabilities()
    assert isinstance(capabilities, MessagingCapabilities)
    assert [
        capabilities.can_message_count(),
        capabilities.can_send(),
        capabilities.can_receive(),
        capabilities.can_peek(),
        capabilities.can_peek_batch(),
        capabilities.can_renew_lock(),
        capabilities.can_abandon(),
        capabilities.can_dead_letter(),
        capabilities.can_clear(),
    ] == [False, True, True, True, True, False, False, False, True]
    assert queue.to_string() == str(queue) == "[orders]"


def test_not_open_error_is_an_invalid_state_error() -> None:
    error = NotOpenError("The queue is not opened", code="NOT_OPENED")
    assert isinstance(error, InvalidStateError)
    assert isinstance(error, RuntimeError)


@pytest.mark.anyio
async def test_queue_send_as_object(mosquitto: Mosquitto, unique_topic: str) -> None:
    queue = MqttMessageQueue("objects")
    queue.configure(
        ConfigParams.from_tuples(
            "connection.uri",
            mosquitto.uri,
            "topic",
            unique_topic,
            "options.autosubscribe",
            True,
            "options.serialize_envelope",
            True,
        )
    )
    with anyio.fail_after(TIMEOUT):
        async with queue:
            await queue.send_as_object(
                Context.from_trace_id("t9"), "order", {"id": 7, "items": [1, 2]}
            )
            received = await queue.receive(None, 5000)
    assert received is not None
    assert (received.trace_id, received.message_type) == ("t9", "order")
    assert received.get_message_as() == {"id": 7, "items": [1, 2]}


@pytest.mark.anyio
async def test_queue_upstream_topic_rule(
    mosquitto: Mosquitto, unique_topic: str
) -> None:
    # Upstream sends to the queue name and subscribes to the topic.
    name, topic = f"{unique_topic}/name", f"{unique_topic}/topic"
    watcher = Collector()
    connection = MqttConnection()
    connection.configure({"connection.uri": mosquitto.uri})
    queue = MqttMessageQueue(name)
    queue.configure(
        {
            "topic": topic,
            "options.topic_rule": "upstream",
            "options.qos": 1,
            "options.autosubscribe": True,
        }
    )
    queue.set_references(
        References.from_tuples(
            Descriptor("pip-services", "connection", "mqtt", "default", "1.0"),
            connection,
        )
    )
    with anyio.fail_after(TIMEOUT):
        async with anyio.create_task_group() as group:
            connection.bind(group)
            await connection.open(None)
            await connection.subscribe(name, {"qos": 1}, watcher)
            await queue.open(None)
            await queue.send(None, MessageEnvelope(None, "T", "to the name"))
            await watcher.wait_for(1)
            await connection.publish(topic, "to the topic", {"qos": 1})
            received = await queue.receive(None, 5000)
            await queue.close(None)
            await connection.close(None)
    assert watcher.payloads == [b"to the name"]
    assert received is not None
    assert received.message == b"to the topic"


def test_queue_topic_rule_is_checked() -> None:
    with pytest.raises(
        ConfigError,
        match=exactly("options.topic_rule must be same or upstream, not 'name'"),
    ):
        MqttMessageQueue("q").configure({"options.topic_rule": "name"})


@pytest.mark.anyio
async def test_connection_accepts_the_mqtt_js_option_names(
    mosquitto: Mosquitto, unique_topic: str
) -> None:
    collector = Collector()
    connection = MqttConnection()
    connection.configure({"connection.uri": mosquitto.uri})
    with anyio.fail_after(TIMEOUT):
        async with connection:
            await connection.subscribe(
                unique_topic, {"qos": 1, "nl": False, "rap": True, "rh": 0}, collector
            )
            await connection.publish(
                unique_topic, "x", {"qos": 1, "retain": False, "dup": False}
            )
            await collector.wait_for(1)
            with pytest.raises(
                ValueError,
                match=exactly(
                    "subscribe options 'no_local' and 'nl' disagree: give only one "
                    "of them"
                ),
            ):
                await connection.subscribe(
                    unique_topic, {"no_local": True, "nl": False}, collector
                )
            with pytest.raises(
                ValueError, match=exactly("dup must be true or false, not 'maybe'")
            ):
                await connection.publish(unique_topic, "x", {"dup": "maybe"})
    assert collector.payloads == [b"x"]


# -- factories ------------------------------------------------------------------------


def test_default_factory_creates_by_upstream_descriptors() -> None:
    factory = DefaultMqttFactory()
    queue_locator = Descriptor("pip-services", "message-queue", "mqtt", "orders", "1.0")
    assert str(factory.can_create(queue_locator)) == (
        "pip-services:message-queue:mqtt:*:1.0"
    )
    queue = factory.create(queue_locator)
    assert isinstance(queue, MqttMessageQueue)
    assert queue.get_name() == "orders"
    foreign = PipDescriptor("pip-services", "connection", "mqtt", "default", "1.0")
    assert isinstance(factory.create(foreign), MqttConnection)
    made = factory.create(
        Descriptor("pip-services", "queue-factory", "mqtt", "default", "1.0")
    )
    assert isinstance(made, MqttMessageQueueFactory)
    other = Descriptor("pip-services", "message-queue", "nats", "orders", "1.0")
    assert factory.can_create(other) is None
    assert factory.can_create("not a descriptor") is None
    with pytest.raises(
        ConfigError,
        match=exactly(
            "Failed to create object for pip-services:message-queue:nats:orders:1.0"
        ),
    ) as info:
        factory.create(other)
    assert info.value.code == "CANNOT_CREATE"


def test_queue_factory_configures_and_references_its_queues() -> None:
    factory = MqttMessageQueueFactory()
    connection = MqttConnection()
    references = References.from_tuples(
        Descriptor("pip-services", "connection", "mqtt", "default", "1.0"), connection
    )
    factory.configure({"topic": "orders/in", "options.qos": 1})
    factory.set_references(references)
    locator = Descriptor("pip-services", "message-queue", "mqtt", "orders", "1.0")
    assert factory.can_create(locator) is not None
    queue = factory.create(locator)
    assert isinstance(queue, MqttMessageQueue)
    assert queue.get_name() == "orders"
    assert queue._get_topic() == "orders/in"
    assert queue._connection is connection
    assert isinstance(factory.create_queue("plain"), MqttMessageQueue)
    with pytest.raises(ConfigError) as info:
        factory.create(Descriptor("pip-services", "connection", "mqtt", "x", "1.0"))
    assert info.value.code == "CANNOT_CREATE"
    assert factory.can_create(PipDescriptor("*", "logger", "*", "*", "*")) is None
