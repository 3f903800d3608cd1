"""The outgoing QoS 1/2 path builds its objects without attrs' frozen ``__init__``.

A QoS 1/2 publish makes a stored `PublishPacket`, the broker's acknowledgement
decodes to a `PubAckPacket`/`PubRecPacket`/`PubCompPacket`, and the session
answers with a `PublishCompleted`: each is built as an unfrozen twin (see
``trio_mqttconn._frozen``), and every complete packet of a read is decoded in one
decoder call (#9, speed: 4 KiB QoS 1 publisher). These tests pin that the objects
are the ordinary frozen instances the slow path makes, and that a bad packet behind
good ones still fails only after the good ones were handled.
"""

from __future__ import annotations

import attrs
import pytest

from tests._broker_session import ScriptedBroker
from trio_mqttconn._enums import ProtocolVersion, QoS, ReasonCode
from trio_mqttconn._events import PublishCompleted
from trio_mqttconn._exceptions import MalformedPacketError, ProtocolError
from trio_mqttconn._packets import (
    DisconnectPacket,
    PacketDecoder,
    PubAckPacket,
    PubCompPacket,
    PublishPacket,
    PubRecPacket,
    PubRelPacket,
)
from trio_mqttconn._properties import EMPTY_PROPERTIES
from trio_mqttconn._session import ClientSession

V5 = ProtocolVersion.V5
V311 = ProtocolVersion.V311
BOTH = pytest.mark.parametrize("version", [V311, V5])


def _connected(version: ProtocolVersion) -> tuple[ClientSession, ScriptedBroker]:
    session = ClientSession(protocol_version=version)
    broker = ScriptedBroker(version)
    broker.handshake(session)
    return session, broker


def _is_frozen_instance(value: object, cls: type) -> None:
    assert type(value) is cls
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        value.packet_id = 99  # type: ignore[attr-defined]
    assert hash(value) == hash(attrs.evolve(value))  # type: ignore[misc]


@BOTH
@pytest.mark.parametrize(
    ("cls", "first"),
    [
        (PubAckPacket, 0x40),
        (PubRecPacket, 0x50),
        (PubRelPacket, 0x62),
        (PubCompPacket, 0x70),
    ],
)
def test_a_plain_acknowledgement_decodes_to_an_ordinary_instance(
    version: ProtocolVersion, cls: type, first: int
) -> None:
    decoder = PacketDecoder(version)
    decoder.feed(bytes((first, 2, 0x12, 0x34)))
    (packet,) = decoder.packets()
    assert isinstance(
        packet, PubAckPacket | PubRecPacket | PubRelPacket | PubCompPacket
    )
    _is_frozen_instance(packet, cls)
    assert packet == cls(packet_id=0x1234)
    assert packet.reason_code is ReasonCode.SUCCESS
    assert packet.properties is EMPTY_PROPERTIES


@BOTH
@pytest.mark.parametrize("qos", [QoS.AT_LEAST_ONCE, QoS.EXACTLY_ONCE])
def test_the_stored_publish_and_its_completion_are_ordinary_instances(
    version: ProtocolVersion, qos: QoS
) -> None:
    session, broker = _connected(version)
    packet_id, data = session.publish("a/b", b"x" * 300, qos=qos, retain=True)
    assert packet_id is not None
    (stored,) = session.pending_publishes()
    _is_frozen_instance(stored, PublishPacket)
    assert stored == PublishPacket(
        topic="a/b", payload=b"x" * 300, qos=qos, retain=True, packet_id=packet_id
    )
    assert broker.receive(data) == [stored]
    if qos is QoS.AT_LEAST_ONCE:
        session.receive_data(broker.encode(PubAckPacket(packet_id=packet_id)))
    else:
        session.receive_data(broker.encode(PubRecPacket(packet_id=packet_id)))
        assert session.events() == []
        session.receive_data(broker.encode(PubCompPacket(packet_id=packet_id)))
    (event,) = session.events()
    _is_frozen_instance(event, PublishCompleted)
    assert event == PublishCompleted(packet_id=packet_id)
    assert event.error is None
    assert session.pending_publishes() == []


def test_a_bad_packet_behind_good_ones_fails_after_they_were_handled() -> None:
    session, broker = _connected(V5)
    ids = [session.publish("t", b"", qos=QoS.AT_LEAST_ONCE)[0] for _ in range(3)]
    acks = b"".join(broker.encode(PubAckPacket(packet_id=i)) for i in ids[:2] if i)
    # 0x00 is no packet type: the decoder fails on it, behind the two PUBACKs.
    session.receive_data(acks + b"\x00\x00")
    events = session.events()
    assert events == [PublishCompleted(packet_id=i) for i in ids[:2] if i]
    assert session.failed
    with pytest.raises(MalformedPacketError):
        session.events()
    with pytest.raises(ProtocolError):
        session.events()


def test_packets_after_the_brokers_disconnect_are_not_handled() -> None:
    session, broker = _connected(V5)
    packet_id, _ = session.publish("t", b"", qos=QoS.AT_LEAST_ONCE)
    assert packet_id is not None
    session.receive_data(
        broker.encode(
            DisconnectPacket(reason_code=ReasonCode.SERVER_SHUTTING_DOWN),
            PubAckPacket(packet_id=packet_id),
        )
    )
    events = session.events()
    assert [type(event).__name__ for event in events] == ["Disconnected"]
    # The PUBACK behind the DISCONNECT was not handled: still in flight.
    assert [p.packet_id for p in session.pending_publishes()] == [packet_id]
