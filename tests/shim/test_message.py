"""aiomqtt's Message: topic conversion, plain attributes, ordering, engine mapping."""

from __future__ import annotations

import asyncio
import queue

import pytest

from trio_mqttconn import Message as EngineMessage, QoS
from trio_mqttconn._properties import Properties as PropertiesRecord
from trio_mqttconn.aiomqtt import Message, Topic
from trio_mqttconn.aiomqtt._paho import PacketTypes, Properties


def make(topic: str | Topic = "a/b", mid: int = 1) -> Message:
    return Message(topic, b"payload", 1, False, mid, None)


def test_message_converts_a_string_topic_to_topic() -> None:
    message = make("a/b")
    assert message.topic == Topic("a/b")
    assert isinstance(message.topic, Topic)


def test_message_keeps_a_topic_object() -> None:
    topic = Topic("a/b")
    assert make(topic).topic is topic


def test_message_validates_the_topic() -> None:
    with pytest.raises(ValueError, match=r"^Invalid topic: a/\+$"):
        make("a/+")
    with pytest.raises(TypeError, match=r"^Topic must be of type str$"):
        Message(None, b"", 0, False, 0, None)  # type: ignore[arg-type]


def test_message_stores_payload_and_fields_as_given() -> None:
    properties = Properties(PacketTypes.PUBLISH)
    message = Message("t", b"\x00\x01", 2, True, 7, properties)
    assert message.payload == b"\x00\x01"
    assert message.qos == 2
    assert message.retain is True
    assert message.mid == 7
    assert message.properties is properties


def test_message_attributes_are_mutable_as_in_aiomqtt() -> None:
    message = make()
    message.payload = b"changed"
    assert message.payload == b"changed"


def test_message_orders_by_mid() -> None:
    assert make(mid=1) < make(mid=2)
    assert not make(mid=2) < make(mid=1)
    priority: queue.PriorityQueue[Message] = queue.PriorityQueue()
    for mid in (3, 1, 2):
        priority.put(make(mid=mid))
    assert [priority.get().mid for _ in range(3)] == [1, 2, 3]


def test_message_works_in_asyncio_priority_queue() -> None:
    priority: asyncio.PriorityQueue[Message] = asyncio.PriorityQueue()
    for mid in (5, 4):
        priority.put_nowait(make(mid=mid))
    assert priority.get_nowait().mid == 4


def test_message_repr_shows_size_not_payload() -> None:
    message = Message("a/b", b"secret", 1, False, 3, None)
    assert repr(message) == (
        "Message(topic='a/b', payload=<6 bytes>, qos=1, retain=False, mid=3)"
    )


def test_message_from_engine_on_mqtt5_carries_paho_style_properties() -> None:
    engine = EngineMessage(
        topic="s/1",
        payload=b"21.5",
        qos=QoS.AT_LEAST_ONCE,
        retain=True,
        packet_id=42,
        properties=PropertiesRecord(
            content_type="text/plain",
            user_properties=(("unit", "C"),),
            subscription_identifiers=(3,),
        ),
    )
    message = Message._from_engine(engine, mqtt5=True)
    assert message.topic == Topic("s/1")
    assert message.payload == b"21.5"
    assert message.qos == 1
    assert type(message.qos) is int
    assert message.retain is True
    assert message.mid == 42
    assert message.properties is not None
    assert message.properties.packetType == PacketTypes.PUBLISH
    assert message.properties.ContentType == "text/plain"
    assert message.properties.UserProperty == [("unit", "C")]
    assert message.properties.SubscriptionIdentifier == [3]
    assert not hasattr(message.properties, "ResponseTopic")


def test_message_from_engine_on_mqtt5_without_properties_has_empty_properties() -> None:
    message = Message._from_engine(EngineMessage(topic="t", payload=b""), mqtt5=True)
    assert message.properties is not None
    assert message.properties.isEmpty()


def test_message_from_engine_on_mqtt311_has_no_properties_and_mid_0() -> None:
    message = Message._from_engine(EngineMessage(topic="t", payload=b"x"), mqtt5=False)
    assert message.properties is None
    assert message.mid == 0
    assert message.qos == 0
