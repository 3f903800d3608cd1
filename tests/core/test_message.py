"""The decoder's fast Message constructor makes ordinary, frozen Messages."""

from __future__ import annotations

import pickle

import attrs
import pytest

from trio_mqttconn import Message, Properties, QoS
from trio_mqttconn._message import received_message

_PROPS = Properties(content_type="text/plain", subscription_identifiers=(3,))


def _both() -> tuple[Message, Message]:
    fast = received_message("s/1", b"21.5", QoS.EXACTLY_ONCE, True, True, 9, _PROPS)
    slow = Message(
        topic="s/1",
        payload=b"21.5",
        qos=QoS.EXACTLY_ONCE,
        retain=True,
        dup=True,
        packet_id=9,
        properties=_PROPS,
    )
    return fast, slow


def test_received_message_is_a_plain_message_equal_to_the_constructed_one() -> None:
    fast, slow = _both()
    assert type(fast) is Message
    assert fast == slow
    assert hash(fast) == hash(slow)
    assert repr(fast) == repr(slow)
    assert attrs.asdict(fast) == attrs.asdict(slow)
    fast.ack()  # no acknowledger: a no-op, like a constructed message


def test_received_message_is_frozen() -> None:
    fast, _ = _both()
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        fast.topic = "other"  # type: ignore[misc]
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        del fast.payload


def test_received_message_pickles_and_evolves_like_any_message() -> None:
    fast, slow = _both()
    assert pickle.loads(pickle.dumps(fast)) == slow
    evolved = attrs.evolve(fast, topic="s/2")
    assert type(evolved) is Message
    assert evolved.topic == "s/2"
    assert evolved.payload == b"21.5"
