"""The decoder's fast Message constructor makes ordinary, frozen Messages."""

from __future__ import annotations

import pickle

import attrs
import pytest

from trio_mqttconn import Message, Properties, ProtocolVersion, QoS
from trio_mqttconn._events import MessageReceived
from trio_mqttconn._frozen import unfrozen_twin
from trio_mqttconn._message import received_message
from trio_mqttconn._packets import (
    ConnectPacket,
    PacketDecoder,
    PublishPacket,
    encode_packet,
)
from trio_mqttconn._session import ClientSession

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


def test_unfrozen_twin_needs_a_slotted_class() -> None:
    @attrs.frozen(slots=False)
    class Loose:
        value: int

    with pytest.raises(TypeError, match="Loose is not slotted"):
        unfrozen_twin(Loose)


def test_decoded_publish_and_its_event_are_plain_frozen_instances() -> None:
    decoder = PacketDecoder(ProtocolVersion.V5)
    decoder.feed(
        encode_packet(
            PublishPacket(
                topic="a/b", payload=b"x", qos=QoS.AT_LEAST_ONCE, packet_id=3
            ),
            ProtocolVersion.V5,
        )
    )
    packet = decoder.next_packet()
    assert type(packet) is PublishPacket
    assert packet == PublishPacket(
        topic="a/b", payload=b"x", qos=QoS.AT_LEAST_ONCE, packet_id=3
    )
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        packet.topic = "c"  # type: ignore[misc]
    event = _receive_one_publish()
    assert type(event) is MessageReceived
    assert event == MessageReceived(message=Message(topic="a/b", payload=b"x"))
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        event.message = event.message  # type: ignore[misc]


def _receive_one_publish() -> object:
    session = ClientSession()
    session.connect(ConnectPacket(client_id="c"))
    session.receive_data(b"\x20\x03\x00\x00\x00")  # CONNACK, MQTT 5
    session.events()
    session.receive_data(
        encode_packet(PublishPacket(topic="a/b", payload=b"x"), ProtocolVersion.V5)
    )
    [event] = session.events()
    return event
