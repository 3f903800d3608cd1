"""Message's repr lists the properties that are set, not all 27 fields (issue #10)."""

from __future__ import annotations

import attrs

from trio_mqttconn import Message, Properties, QoS


def test_message_repr_without_properties_shows_an_empty_record() -> None:
    message = Message(topic="a/b", payload=b"hi")
    assert repr(message) == (
        "Message(topic='a/b', payload=b'hi', qos=<QoS.AT_MOST_ONCE: 0>, "
        "retain=False, dup=False, packet_id=None, properties=Properties())"
    )


def test_message_repr_shows_only_the_properties_that_are_set() -> None:
    message = Message(
        topic="s/1",
        payload=b"21.5",
        qos=QoS.AT_LEAST_ONCE,
        retain=True,
        packet_id=7,
        properties=Properties(
            content_type="text/plain",
            user_properties=(("unit", "C"),),
            subscription_identifiers=(3,),
        ),
    )
    assert repr(message) == (
        "Message(topic='s/1', payload=b'21.5', qos=<QoS.AT_LEAST_ONCE: 1>, "
        "retain=True, dup=False, packet_id=7, properties=Properties("
        "content_type='text/plain', subscription_identifiers=(3,), "
        "user_properties=(('unit', 'C'),)))"
    )


def test_message_repr_shows_a_property_set_to_a_falsy_value() -> None:
    # 0 is a real value on the wire (payload format "unspecified bytes"), not absent.
    message = Message(
        topic="t", payload=b"", properties=Properties(payload_format_indicator=0)
    )
    assert "properties=Properties(payload_format_indicator=0)" in repr(message)


def test_message_repr_never_lists_an_unset_property() -> None:
    message = Message(
        topic="t", payload=b"", properties=Properties(response_topic="r/1")
    )
    text = repr(message)
    unset = [
        field.name
        for field in attrs.fields(Properties)
        if field.name != "response_topic"
    ]
    assert [name for name in unset if f"{name}=" in text] == []
    assert "response_topic='r/1'" in text
