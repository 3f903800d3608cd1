"""The sans-IO client session: a ClientSession against a scripted broker.

Golden bytes are hand-written from the 3.1.1 and 5.0 specifications; everything
else is checked by decoding what the client sent with our own codec
(tests/_broker_session.py).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import attrs
import pytest
from hypothesis import given, strategies as st

from tests._broker_session import ScriptedBroker
from trio_mqttconn._enums import ProtocolVersion, QoS, ReasonCode
from trio_mqttconn._events import (
    AuthReceived,
    Connected,
    ConnectionRefused,
    Disconnected,
    MessageReceived,
    PongReceived,
    PublishCompleted,
    Subscribed,
    Unsubscribed,
)
from trio_mqttconn._exceptions import InvalidStateError, ProtocolError
from trio_mqttconn._message import Message
from trio_mqttconn._packets import (
    AuthPacket,
    ConnAckPacket,
    ConnectPacket,
    DisconnectPacket,
    Packet,
    PacketDecoder,
    PingReqPacket,
    PingRespPacket,
    PubAckPacket,
    PubCompPacket,
    PublishPacket,
    PubRecPacket,
    PubRelPacket,
    SubAckPacket,
    SubscribePacket,
    TopicSubscription,
    UnsubAckPacket,
    UnsubscribePacket,
    Will,
)
from trio_mqttconn._properties import EMPTY_PROPERTIES, Properties
from trio_mqttconn._session import ClientSession, SessionState
from trio_mqttconn._topics import validate_topic_filter, validate_topic_name

if TYPE_CHECKING:
    from collections.abc import Sequence

V5 = ProtocolVersion.V5
V311 = ProtocolVersion.V311
BOTH = pytest.mark.parametrize("version", [V311, V5], ids=["v311", "v5"])

QOS0 = QoS.AT_MOST_ONCE
QOS1 = QoS.AT_LEAST_ONCE
QOS2 = QoS.EXACTLY_ONCE

# Golden bytes, written by hand from the specifications.
CONNECT_V5 = b"\x10\x13\x00\x04MQTT\x05\x02\x00\x3c\x00\x00\x06client"
CONNECT_V311 = b"\x10\x12\x00\x04MQTT\x04\x02\x00\x3c\x00\x06client"
CONNACK_V5 = b"\x20\x03\x00\x00\x00"
CONNACK_V311 = b"\x20\x02\x00\x00"
# PUBLISH QoS 1, topic "a/b", payload "hi", id 1; DUP sets bit 3: 0x32 -> 0x3A.
PUBLISH_QOS1_V5 = b"\x32\x0a\x00\x03a/b\x00\x01\x00hi"
PUBLISH_QOS1_DUP_V5 = b"\x3a\x0a\x00\x03a/b\x00\x01\x00hi"
PUBLISH_QOS1_V311 = b"\x32\x09\x00\x03a/b\x00\x01hi"
PUBLISH_QOS1_DUP_V311 = b"\x3a\x09\x00\x03a/b\x00\x01hi"


def exactly(message: str) -> str:
    return f"^{re.escape(message)}$"


def ack(kind: int, packet_id: int) -> bytes:
    """A four-byte success PUBACK/PUBREC/PUBREL/PUBCOMP (same in 3.1.1 and 5.0)."""
    return bytes([kind, 2]) + packet_id.to_bytes(2, "big")


def puback(packet_id: int) -> bytes:
    return ack(0x40, packet_id)


def pubrec(packet_id: int) -> bytes:
    return ack(0x50, packet_id)


def pubrel(packet_id: int) -> bytes:
    return ack(0x62, packet_id)


def pubcomp(packet_id: int) -> bytes:
    return ack(0x70, packet_id)


def make_session(
    version: ProtocolVersion = V5,
    *,
    connack: Properties = EMPTY_PROPERTIES,
    **kwargs: Any,
) -> tuple[ClientSession, ScriptedBroker]:
    """A CONNECTED session (clean start, no session present) and its broker."""
    session = ClientSession(protocol_version=version, **kwargs)
    broker = ScriptedBroker(version)
    broker.handshake(session, properties=connack)
    return session, broker


def subscribe_all(
    session: ClientSession, broker: ScriptedBroker, qos: QoS = QOS2
) -> None:
    """Subscribe to "#" so that the broker may deliver up to *qos*."""
    packet_id, data = session.subscribe([TopicSubscription(filter="#", qos=qos)])
    broker.receive_one(data)
    broker.send(
        session, SubAckPacket(packet_id=packet_id, reason_codes=(ReasonCode(qos),))
    )


def reconnect(
    session: ClientSession, broker: ScriptedBroker, *, session_present: bool
) -> Connected:
    """Lose the connection and connect again with clean start = 0."""
    session.connection_lost()
    return broker.handshake(
        session,
        ConnectPacket(
            client_id="client", protocol_version=broker.version, clean_start=False
        ),
        session_present=session_present,
    )


def incoming(
    packet_id: int | None, qos: QoS, topic: str = "a/b", payload: bytes = b"hi"
) -> PublishPacket:
    return PublishPacket(topic=topic, payload=payload, qos=qos, packet_id=packet_id)


def state_of(session: ClientSession) -> SessionState:
    """The state, read through a call so that mypy does not keep a narrowed value."""
    return session.state


def message_of(event: object) -> Message:
    assert isinstance(event, MessageReceived)
    return event.message


# ---------------------------------------------------------------------------
# construction


def test_session_defaults() -> None:
    session = ClientSession()
    assert session.state is SessionState.DISCONNECTED
    assert session.protocol_version is V5
    assert session.receive_maximum == 65535
    assert session.maximum_packet_size is None
    assert session.topic_alias_maximum == 0
    assert session.outgoing_topic_aliases is False
    assert session.send_quota == 65535
    assert session.inflight == 0
    assert session.pending_publishes() == []
    assert session.data_to_send() == b""
    assert session.events() == []


def test_session_converts_protocol_version_from_int() -> None:
    assert ClientSession(protocol_version=4).protocol_version is V311


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"protocol_version": 3},
            "protocol_version must be ProtocolVersion.V311 (4) or "
            "ProtocolVersion.V5 (5), not 3",
        ),
        ({"receive_maximum": 0}, "receive_maximum must be 1..65535, not 0"),
        ({"receive_maximum": 65536}, "receive_maximum must be 1..65535, not 65536"),
        (
            {"maximum_packet_size": 0},
            "maximum_packet_size must be None or 1..4294967295 bytes, not 0",
        ),
        (
            {"maximum_packet_size": 1 << 32},
            "maximum_packet_size must be None or 1..4294967295 bytes, not 4294967296",
        ),
        (
            {"maximum_outgoing_packet_size": 1},
            "maximum_outgoing_packet_size must be None or 2..268435460 bytes, not 1",
        ),
        (
            {"maximum_outgoing_packet_size": 268435461},
            "maximum_outgoing_packet_size must be None or 2..268435460 bytes, "
            "not 268435461",
        ),
        ({"topic_alias_maximum": -1}, "topic_alias_maximum must be 0..65535, not -1"),
        (
            {"topic_alias_maximum": 65536},
            "topic_alias_maximum must be 0..65535, not 65536",
        ),
    ],
)
def test_session_rejects_bad_options(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=exactly(message)):
        ClientSession(**kwargs)


def test_session_repr_hides_tables() -> None:
    text = repr(ClientSession())
    assert text.startswith("ClientSession(protocol_version=")
    assert "_outgoing=" not in text
    assert "_held=" not in text
    assert "_decoder" not in text


# ---------------------------------------------------------------------------
# CONNECT / CONNACK


def test_connect_v5_golden_bytes_and_connack() -> None:
    session = ClientSession()
    data = session.connect(ConnectPacket(client_id="client"))
    assert data == CONNECT_V5
    assert session.state is SessionState.CONNECTING
    assert session.client_id == "client"
    assert session.keepalive == 60
    session.receive_data(CONNACK_V5)
    assert session.events() == [
        Connected(session_present=False, client_id="client", keepalive=60)
    ]
    assert state_of(session) is SessionState.CONNECTED
    assert session.data_to_send() == b""


def test_connect_v311_golden_bytes_and_connack() -> None:
    session = ClientSession(protocol_version=V311)
    data = session.connect(ConnectPacket(client_id="client", protocol_version=V311))
    assert data == CONNECT_V311
    session.receive_data(CONNACK_V311)
    assert session.events() == [
        Connected(session_present=False, client_id="client", keepalive=60)
    ]
    assert session.state is SessionState.CONNECTED
    # 3.1.1 brokers announce no limits: the protocol maxima apply.
    assert session.maximum_qos is QOS2
    assert session.retain_available is True
    assert session.broker_maximum_packet_size is None
    assert session.broker_topic_alias_maximum == 0
    assert session.broker_receive_maximum == 65535


def test_connect_v5_connack_sets_client_id_keepalive_and_limits() -> None:
    session = ClientSession()
    broker = ScriptedBroker()
    broker.receive_one(session.connect(ConnectPacket(client_id="", keepalive=60)))
    properties = Properties(
        assigned_client_identifier="auto-1",
        server_keep_alive=10,  # [v5:MQTT-3.2.2-21]
        receive_maximum=5,
        maximum_qos=1,
        retain_available=0,
        maximum_packet_size=200,
        topic_alias_maximum=3,
    )
    (event,) = broker.send(session, ConnAckPacket(properties=properties))
    assert event == Connected(
        session_present=False, client_id="auto-1", keepalive=10, properties=properties
    )
    assert session.client_id == "auto-1"
    assert session.keepalive == 10
    assert session.broker_receive_maximum == 5
    assert session.send_quota == 5
    assert session.maximum_qos is QOS1
    assert session.retain_available is False
    assert session.broker_maximum_packet_size == 200
    assert session.broker_topic_alias_maximum == 3


def test_connect_v5_connack_retain_available_one() -> None:
    session, _ = make_session(connack=Properties(retain_available=1))
    assert session.retain_available is True


def test_connect_v5_announces_session_limits() -> None:
    session = ClientSession(
        receive_maximum=10, maximum_packet_size=1000, topic_alias_maximum=5
    )
    broker = ScriptedBroker()
    sent = broker.receive_one(session.connect(ConnectPacket(client_id="c")))
    assert isinstance(sent, ConnectPacket)
    assert sent.properties == Properties(
        receive_maximum=10, maximum_packet_size=1000, topic_alias_maximum=5
    )


def test_connect_v5_keeps_equal_limits_in_the_packet() -> None:
    session = ClientSession(receive_maximum=10)
    broker = ScriptedBroker()
    properties = Properties(receive_maximum=10, user_properties=(("k", "v"),))
    sent = broker.receive_one(
        session.connect(ConnectPacket(client_id="c", properties=properties))
    )
    assert isinstance(sent, ConnectPacket)
    assert sent.properties == properties


def test_connect_v5_default_limits_are_not_announced() -> None:
    session = ClientSession(receive_maximum=65535, topic_alias_maximum=0)
    assert session.connect(ConnectPacket(client_id="client")) == CONNECT_V5


@pytest.mark.parametrize(
    ("properties", "message"),
    [
        (
            Properties(receive_maximum=20),
            "CONNECT receive_maximum=20 differs from the session's "
            "receive_maximum=10; set it on the ClientSession only",
        ),
        (
            Properties(maximum_packet_size=100),
            "CONNECT maximum_packet_size=100 differs from the session's "
            "maximum_packet_size=None; set it on the ClientSession only",
        ),
        (
            Properties(topic_alias_maximum=1),
            "CONNECT topic_alias_maximum=1 differs from the session's "
            "topic_alias_maximum=0; set it on the ClientSession only",
        ),
    ],
)
def test_connect_rejects_limits_that_differ_from_the_session(
    properties: Properties, message: str
) -> None:
    session = ClientSession(receive_maximum=10)
    with pytest.raises(ValueError, match=exactly(message)):
        session.connect(ConnectPacket(client_id="c", properties=properties))
    assert session.state is SessionState.DISCONNECTED


def test_connect_v311_ignores_v5_limits() -> None:
    session = ClientSession(
        protocol_version=V311, receive_maximum=1, maximum_packet_size=5
    )
    assert (
        session.connect(ConnectPacket(client_id="client", protocol_version=V311))
        == CONNECT_V311
    )
    # Neither limit applies: 3.1.1 cannot announce them to the broker.
    broker = ScriptedBroker(V311)
    broker.send(session, ConnAckPacket())
    subscribe_all(session, broker)
    events = broker.send(
        session, incoming(1, QOS1, payload=b"x" * 50), incoming(2, QOS1)
    )
    assert len(events) == 2


def test_connect_rejects_other_protocol_version() -> None:
    session = ClientSession(protocol_version=V311)
    with pytest.raises(
        ValueError,
        match=exactly(
            "CONNECT protocol_version V5 differs from the session's V311; create "
            "the session with the same protocol_version"
        ),
    ):
        session.connect(ConnectPacket(client_id="c"))
    assert session.state is SessionState.DISCONNECTED


def test_connect_validates_will_topic() -> None:
    with pytest.raises(ValueError) as expected:
        validate_topic_name("will/#")
    session = ClientSession()
    with pytest.raises(ValueError, match=exactly(str(expected.value))):
        session.connect(ConnectPacket(client_id="c", will=Will(topic="will/#")))
    assert session.state is SessionState.DISCONNECTED


def test_connect_accepts_a_will() -> None:
    session = ClientSession()
    broker = ScriptedBroker()
    will = Will(topic="status/c", payload=b"gone")
    sent = broker.receive_one(session.connect(ConnectPacket(client_id="c", will=will)))
    assert isinstance(sent, ConnectPacket)
    assert sent.will == will


@BOTH
def test_connack_refused(version: ProtocolVersion) -> None:
    session = ClientSession(protocol_version=version)
    broker = ScriptedBroker(version)
    broker.receive_one(
        session.connect(ConnectPacket(client_id="c", protocol_version=version))
    )
    events = broker.send(
        session,
        ConnAckPacket(reason_code=ReasonCode.NOT_AUTHORIZED),
        PingRespPacket(),  # after a refusal nothing more is processed
    )
    assert events == [ConnectionRefused(reason_code=ReasonCode.NOT_AUTHORIZED)]
    assert session.state is SessionState.CLOSED
    assert session.data_to_send() == b""
    # CLOSED drops what still arrives, and allows a new connect().
    session.receive_data(b"\xd0\x00")
    assert session.events() == []
    session.connect(ConnectPacket(client_id="c", protocol_version=version))
    assert state_of(session) is SessionState.CONNECTING


def test_connack_v311_return_code_golden() -> None:
    session = ClientSession(protocol_version=V311)
    session.connect(ConnectPacket(client_id="c", protocol_version=V311))
    session.receive_data(b"\x20\x02\x00\x05")  # 5 = not authorized
    assert session.events() == [
        ConnectionRefused(reason_code=ReasonCode.NOT_AUTHORIZED)
    ]


@BOTH
def test_connack_session_present_after_clean_start_is_protocol_error(
    version: ProtocolVersion,
) -> None:
    # [v5:MQTT-3.2.2-4] [v311:MQTT-3.2.2-1]
    session = ClientSession(protocol_version=version)
    broker = ScriptedBroker(version)
    session.connect(ConnectPacket(client_id="c", protocol_version=version))
    session.receive_data(broker.encode(ConnAckPacket(session_present=True)))
    with pytest.raises(
        ProtocolError,
        match=exactly(
            "received ConnAckPacket with session present = 1 in answer to a "
            "CONNECT with clean start = 1"
        ),
    ) as info:
        session.events()
    assert info.value.reason_code is ReasonCode.PROTOCOL_ERROR
    assert session.state is SessionState.CONNECTING


def test_connect_is_illegal_while_connecting_or_connected() -> None:
    session = ClientSession()
    session.connect(ConnectPacket(client_id="c"))
    with pytest.raises(
        InvalidStateError,
        match=exactly("cannot send ConnectPacket in state CONNECTING"),
    ):
        session.connect(ConnectPacket(client_id="c"))
    ScriptedBroker().send(session, ConnAckPacket())
    with pytest.raises(
        InvalidStateError,
        match=exactly("cannot send ConnectPacket in state CONNECTED"),
    ):
        session.connect(ConnectPacket(client_id="c"))


def test_session_split_input_at_every_offset() -> None:
    stream = ScriptedBroker().encode(
        incoming(1, QOS1),
        incoming(None, QOS0, topic="x", payload=b"0123456789"),
        incoming(2, QOS2),
        PingRespPacket(),
    )
    expected_events = None
    for offset in range(len(stream) + 1):
        session, broker = make_session()
        subscribe_all(session, broker)
        chunks = [chunk for chunk in (stream[:offset], stream[offset:]) if chunk]
        events = broker.send_bytes(session, chunks)
        if expected_events is None:
            expected_events = events
        assert events == expected_events
        assert session.data_to_send() == puback(1) + pubrec(2)
    assert expected_events is not None
    assert len(expected_events) == 4


def test_session_byte_by_byte() -> None:
    session = ClientSession()
    session.connect(ConnectPacket(client_id="client"))
    events = ScriptedBroker().send_bytes(
        session, [bytes([b]) for b in CONNACK_V5 + b"\xd0\x00"]
    )
    assert events == [
        Connected(session_present=False, client_id="client", keepalive=60),
        PongReceived(),
    ]


# ---------------------------------------------------------------------------
# illegal packets from the broker


@pytest.mark.parametrize(
    "packet",
    [
        PublishPacket(topic="a", payload=b""),
        PingRespPacket(),
        SubAckPacket(packet_id=1, reason_codes=(ReasonCode.SUCCESS,)),
        PubAckPacket(packet_id=1),
        DisconnectPacket(),
        ConnectPacket(client_id="x"),
    ],
    ids=lambda p: type(p).__name__,
)
def test_session_rejects_packets_before_connack(packet: Packet) -> None:
    # [v5:MQTT-3.2.0-1] the first packet from the broker is CONNACK (or AUTH)
    session = ClientSession()
    broker = ScriptedBroker()
    session.connect(ConnectPacket(client_id="c"))
    session.receive_data(broker.encode(packet))
    with pytest.raises(
        ProtocolError,
        match=exactly(f"received {type(packet).__name__} in state CONNECTING"),
    ) as info:
        session.events()
    assert info.value.reason_code is ReasonCode.PROTOCOL_ERROR


@pytest.mark.parametrize(
    "packet",
    [
        ConnAckPacket(),  # [v5:MQTT-3.2.0-2] at most one CONNACK
        ConnectPacket(client_id="x"),
        SubscribePacket(packet_id=1, subscriptions=(TopicSubscription(filter="a"),)),
        UnsubscribePacket(packet_id=1, filters=("a",)),
        PingReqPacket(),
    ],
    ids=lambda p: type(p).__name__,
)
@BOTH
def test_session_rejects_client_packets_from_the_broker(
    version: ProtocolVersion, packet: Packet
) -> None:
    session, broker = make_session(version)
    if isinstance(packet, ConnectPacket):
        packet = attrs.evolve(packet, protocol_version=version)
    session.receive_data(broker.encode(packet))
    with pytest.raises(
        ProtocolError,
        match=exactly(f"received {type(packet).__name__} in state CONNECTED"),
    ):
        session.events()


def test_session_v311_rejects_disconnect_from_the_broker() -> None:
    # In 3.1.1 DISCONNECT only goes from client to server.
    session, broker = make_session(V311)
    session.receive_data(broker.encode(DisconnectPacket()))
    with pytest.raises(
        ProtocolError,
        match=exactly("received DisconnectPacket in state CONNECTED"),
    ):
        session.events()


def test_session_returns_events_before_a_protocol_error_then_raises() -> None:
    session, broker = make_session()
    subscribe_all(session, broker)
    session.receive_data(
        broker.encode(incoming(7, QOS2), PingRespPacket(), ConnAckPacket())
    )
    events = session.events()
    assert [type(e) for e in events] == [MessageReceived, PongReceived]
    assert session.failed  # the caller need not wait for more data to learn it
    # The acknowledgement of what was delivered still goes out.
    assert session.data_to_send() == pubrec(7)
    message = "received ConnAckPacket in state CONNECTED"
    with pytest.raises(ProtocolError, match=exactly(message)):
        session.events()
    with pytest.raises(ProtocolError, match=exactly(message)):
        session.events()
    # Sending DISCONNECT with the reason code is still possible.
    session.disconnect(ReasonCode.PROTOCOL_ERROR)
    assert session.state is SessionState.CLOSED


def test_session_error_is_forgotten_on_the_next_connection() -> None:
    session, broker = make_session()
    session.receive_data(broker.encode(PingReqPacket()))
    with pytest.raises(ProtocolError):
        session.events()
    session.connection_lost()
    assert session.events() == []
    broker.handshake(session)
    assert not session.failed
    assert session.events() == []


def test_session_decoder_error_propagates() -> None:
    session, _ = make_session()
    session.receive_data(b"\x00\x00")  # packet type 0 is reserved
    with pytest.raises(ProtocolError):
        session.events()


def test_session_enforces_our_maximum_packet_size() -> None:
    # [v5:MQTT-3.1.2-24]
    session, broker = make_session(maximum_packet_size=20)
    subscribe_all(session, broker)
    session.receive_data(broker.encode(incoming(None, QOS0, payload=b"x" * 30)))
    with pytest.raises(ProtocolError) as info:
        session.events()
    assert info.value.reason_code is ReasonCode.PACKET_TOO_LARGE


# ---------------------------------------------------------------------------
# receive_data, EOF and connection loss


def test_receive_data_in_disconnected_is_an_error() -> None:
    session = ClientSession()
    with pytest.raises(
        InvalidStateError,
        match=exactly(
            "cannot receive data in state DISCONNECTED; call connect() first"
        ),
    ):
        session.receive_data(b"\x20\x03\x00\x00\x00")


def test_receive_data_eof_decodes_the_rest_then_disconnects() -> None:
    session = ClientSession()
    session.connect(ConnectPacket(client_id="client"))
    session.receive_data(CONNACK_V5 + b"\xd0")  # a partial PINGRESP, then EOF
    session.receive_data(b"")
    assert session.events() == [
        Connected(session_present=False, client_id="client", keepalive=60)
    ]
    assert session.state is SessionState.DISCONNECTED
    assert session.events() == []


def test_receive_data_eof_while_connecting() -> None:
    session = ClientSession()
    session.connect(ConnectPacket(client_id="client"))
    session.receive_data(b"")
    assert session.events() == []
    assert session.state is SessionState.DISCONNECTED


def test_connection_lost_keeps_closed() -> None:
    session, _ = make_session()
    session.disconnect()
    session.connection_lost()
    assert session.state is SessionState.CLOSED
    session.send_failed()
    assert session.state is SessionState.CLOSED


@pytest.mark.parametrize("method", ["connection_lost", "send_failed"])
def test_connection_lost_drops_unsent_acks_and_pending_requests(method: str) -> None:
    session, broker = make_session()
    subscribe_all(session, broker)
    broker.send(session, incoming(1, QOS1))
    sub_id, _ = session.subscribe([TopicSubscription(filter="x")])
    getattr(session, method)()
    assert session.state is SessionState.DISCONNECTED
    assert session.data_to_send() == b""
    broker.handshake(
        session,
        ConnectPacket(client_id="client", clean_start=False),
        session_present=True,
    )
    # The SUBSCRIBE of the old connection is forgotten: its SUBACK is unknown now.
    session.receive_data(
        broker.encode(
            SubAckPacket(packet_id=sub_id, reason_codes=(ReasonCode.GRANTED_QOS_0,))
        )
    )
    with pytest.raises(
        ProtocolError,
        match=exactly(f"received SubAckPacket for unknown packet id {sub_id}"),
    ):
        session.events()


# ---------------------------------------------------------------------------
# illegal operations of this side


def _publish(session: ClientSession) -> object:
    return session.publish("a", b"")


def _subscribe(session: ClientSession) -> object:
    return session.subscribe([TopicSubscription(filter="a")])


def _unsubscribe(session: ClientSession) -> object:
    return session.unsubscribe(["a"])


def _ping(session: ClientSession) -> object:
    return session.ping()


def _disconnect(session: ClientSession) -> object:
    return session.disconnect()


CONNECTED_ONLY = [
    ("PublishPacket", _publish),
    ("SubscribePacket", _subscribe),
    ("UnsubscribePacket", _unsubscribe),
    ("PingReqPacket", _ping),
]


def _in_state(state: SessionState) -> ClientSession:
    session = ClientSession()
    if state is SessionState.DISCONNECTED:
        return session
    session.connect(ConnectPacket(client_id="c"))
    if state is SessionState.CLOSED:
        session.disconnect()
    assert session.state is state
    return session


@pytest.mark.parametrize(
    "state",
    [SessionState.DISCONNECTED, SessionState.CONNECTING, SessionState.CLOSED],
    ids=lambda s: s.name,
)
@pytest.mark.parametrize(
    ("name", "operation"), CONNECTED_ONLY, ids=[name for name, _ in CONNECTED_ONLY]
)
def test_session_operations_need_connected(
    state: SessionState, name: str, operation: Any
) -> None:
    session = _in_state(state)
    with pytest.raises(
        InvalidStateError, match=exactly(f"cannot send {name} in state {state.name}")
    ):
        operation(session)
    assert session.state is state


@pytest.mark.parametrize(
    "state", [SessionState.DISCONNECTED, SessionState.CLOSED], ids=lambda s: s.name
)
def test_disconnect_needs_a_connection(state: SessionState) -> None:
    session = _in_state(state)
    with pytest.raises(
        InvalidStateError,
        match=exactly(f"cannot send DisconnectPacket in state {state.name}"),
    ):
        session.disconnect()


def test_disconnect_while_connecting() -> None:
    session = _in_state(SessionState.CONNECTING)
    assert session.disconnect() == b"\xe0\x00"
    assert session.state is SessionState.CLOSED


# ---------------------------------------------------------------------------
# packet identifiers


def test_packet_ids_are_shared_by_publish_subscribe_unsubscribe() -> None:
    session, _ = make_session()
    pub_id, _ = session.publish("a", b"", qos=QOS1)
    sub_id, _ = session.subscribe([TopicSubscription(filter="a")])
    unsub_id, _ = session.unsubscribe(["a"])
    assert (pub_id, sub_id, unsub_id) == (1, 2, 3)
    assert session.publish("a", b"")[0] is None  # QoS 0 takes no id
    assert session.publish("a", b"", qos=QOS2)[0] == 4


def test_packet_id_wraps_at_65535_skipping_ids_in_flight() -> None:
    # [v5:MQTT-2.2.1-3] a new id is non-zero and not in use; 65535 -> 1
    session, _ = make_session()
    ids = [session.publish("a", b"", qos=QOS1)[0] for _ in range(65535)]
    assert ids == list(range(1, 65536))
    assert session.send_quota == 0
    keep = {1, 2, 4}
    session.receive_data(b"".join(puback(i) for i in range(1, 65536) if i not in keep))
    assert len(session.events()) == 65535 - 3
    assert session.inflight == 3
    assert session.publish("a", b"", qos=QOS1)[0] == 3
    assert session.publish("a", b"", qos=QOS1)[0] == 5
    assert [p.packet_id for p in session.pending_publishes()] == [1, 2, 4, 3, 5]


def test_packet_ids_exhausted() -> None:
    session, _ = make_session()
    session.subscribe([TopicSubscription(filter="a")])
    for _ in range(65534):
        session.publish("a", b"", qos=QOS1)
    assert session.send_quota == 1
    message = (
        "cannot send {}: all 65535 packet identifiers are in use; "
        "wait for acknowledgements"
    )
    with pytest.raises(
        InvalidStateError, match=exactly(message.format("PublishPacket"))
    ):
        session.publish("a", b"", qos=QOS1)
    with pytest.raises(
        InvalidStateError, match=exactly(message.format("SubscribePacket"))
    ):
        session.subscribe([TopicSubscription(filter="a")])
    with pytest.raises(
        InvalidStateError, match=exactly(message.format("UnsubscribePacket"))
    ):
        session.unsubscribe(["a"])
    assert session.inflight == 65534
    # QoS 0 needs no id and is never blocked [v5:MQTT-3.3.4-8].
    assert session.publish("a", b"x")[0] is None


# ---------------------------------------------------------------------------
# outgoing QoS 1 and 2


@BOTH
def test_publish_qos1_golden_and_puback(version: ProtocolVersion) -> None:
    session, _ = make_session(version)
    packet_id, data = session.publish("a/b", b"hi", qos=QOS1)
    assert packet_id == 1
    assert data == (PUBLISH_QOS1_V5 if version is V5 else PUBLISH_QOS1_V311)
    assert session.inflight == 1
    assert session.send_quota == 65534
    assert session.data_to_send() == b""  # never re-sent on a live connection
    session.receive_data(puback(1))
    assert session.events() == [PublishCompleted(packet_id=1)]
    assert session.inflight == 0
    assert session.send_quota == 65535


def test_publish_qos0_golden() -> None:
    session, _ = make_session()
    assert session.publish("a/b", b"hi", retain=True) == (
        None,
        b"\x31\x08\x00\x03a/b\x00hi",
    )
    assert session.inflight == 0


def test_publish_qos1_with_properties_keeps_them() -> None:
    # Properties take the general encoder (the fast path is for none at all).
    session, _ = make_session()
    properties = Properties(content_type="text/plain", user_properties=(("k", "v"),))
    packet_id, data = session.publish("a/b", b"hi", qos=QOS1, properties=properties)
    decoder = PacketDecoder(V5)
    decoder.feed(data)
    packet = decoder.next_packet()
    assert isinstance(packet, PublishPacket)
    assert (packet.packet_id, packet.qos, packet.payload) == (packet_id, QOS1, b"hi")
    assert packet.properties == properties


def test_publish_qos1_refused_by_puback() -> None:
    # [v5:MQTT-4.4.0-2]
    session, broker = make_session()
    session.publish("a", b"", qos=QOS1)
    properties = Properties(reason_string="no")
    events = broker.send(
        session,
        PubAckPacket(
            packet_id=1, reason_code=ReasonCode.NOT_AUTHORIZED, properties=properties
        ),
    )
    assert events == [
        PublishCompleted(
            packet_id=1, reason_code=ReasonCode.NOT_AUTHORIZED, properties=properties
        )
    ]
    assert session.inflight == 0


def test_publish_qos1_no_matching_subscribers_is_success() -> None:
    session, broker = make_session()
    session.publish("a", b"", qos=QOS1)
    (event,) = broker.send(
        session,
        PubAckPacket(packet_id=1, reason_code=ReasonCode.NO_MATCHING_SUBSCRIBERS),
    )
    assert isinstance(event, PublishCompleted)
    assert not event.reason_code.is_failure


@BOTH
def test_publish_qos2_full_flow(version: ProtocolVersion) -> None:
    session, broker = make_session(version)
    packet_id, data = session.publish("a/b", b"hi", qos=QOS2)
    assert packet_id is not None
    assert broker.receive_one(data) == PublishPacket(
        topic="a/b", payload=b"hi", qos=QOS2, packet_id=packet_id
    )
    session.receive_data(pubrec(packet_id))
    assert session.events() == []
    assert session.data_to_send() == pubrel(packet_id)
    assert session.inflight == 1  # until PUBCOMP
    assert session.pending_publishes() == [
        PublishPacket(topic="a/b", payload=b"hi", qos=QOS2, packet_id=packet_id)
    ]
    session.receive_data(pubcomp(packet_id))
    assert session.events() == [PublishCompleted(packet_id=packet_id)]
    assert session.inflight == 0


def test_publish_qos2_refused_by_pubrec() -> None:
    # [v5:MQTT-4.4.0-2] [v5:MQTT-4.3.3-4] no PUBREL after a failed PUBREC
    session, broker = make_session()
    session.publish("a", b"", qos=QOS2)
    events = broker.send(
        session, PubRecPacket(packet_id=1, reason_code=ReasonCode.QUOTA_EXCEEDED)
    )
    assert events == [
        PublishCompleted(packet_id=1, reason_code=ReasonCode.QUOTA_EXCEEDED)
    ]
    assert session.data_to_send() == b""
    assert session.inflight == 0


def test_publish_qos2_repeated_pubrec_is_answered_again() -> None:
    session, _ = make_session()
    session.publish("a", b"", qos=QOS2)
    session.receive_data(pubrec(1) + pubrec(1))
    assert session.events() == []
    assert session.data_to_send() == pubrel(1) + pubrel(1)
    assert session.inflight == 1


def test_unknown_puback_and_pubcomp_are_ignored() -> None:
    session, _ = make_session()
    session.receive_data(puback(9) + pubcomp(9))
    assert session.events() == []
    assert session.data_to_send() == b""


def test_unknown_pubrec_v5_answered_with_pubrel_0x92() -> None:
    session, broker = make_session()
    session.receive_data(pubrec(7))
    assert session.events() == []
    assert broker.receive_one(session.data_to_send()) == PubRelPacket(
        packet_id=7, reason_code=ReasonCode.PACKET_IDENTIFIER_NOT_FOUND
    )


def test_unknown_pubrec_v311_answered_with_pubrel() -> None:
    session, _ = make_session(V311)
    session.receive_data(pubrec(7))
    assert session.events() == []
    assert session.data_to_send() == pubrel(7)


@pytest.mark.parametrize(
    ("qos", "after_pubrec", "send_ack", "name", "awaits"),
    [
        (QOS2, False, puback, "PubAckPacket", "PUBREC"),
        (QOS2, True, puback, "PubAckPacket", "PUBCOMP"),
        (QOS1, False, pubrec, "PubRecPacket", "PUBACK"),
        (QOS1, False, pubcomp, "PubCompPacket", "PUBACK"),
        (QOS2, False, pubcomp, "PubCompPacket", "PUBREC"),
    ],
)
def test_ack_of_the_wrong_kind_is_protocol_error(
    qos: QoS, after_pubrec: bool, send_ack: Any, name: str, awaits: str
) -> None:
    session, _ = make_session()
    session.publish("a", b"", qos=qos)
    if after_pubrec:
        session.receive_data(pubrec(1))
        session.events()
    session.receive_data(send_ack(1))
    with pytest.raises(
        ProtocolError,
        match=exactly(f"received {name} for packet id 1, which awaits {awaits}"),
    ):
        session.events()


def test_pending_publishes_in_send_order() -> None:
    session, _ = make_session()
    session.publish("a", b"1", qos=QOS1)
    session.publish("b", b"2", qos=QOS2)
    session.publish("c", b"3")
    session.publish("d", b"4", qos=QOS1, retain=True)
    assert session.pending_publishes() == [
        PublishPacket(topic="a", payload=b"1", qos=QOS1, packet_id=1),
        PublishPacket(topic="b", payload=b"2", qos=QOS2, packet_id=2),
        PublishPacket(topic="d", payload=b"4", qos=QOS1, retain=True, packet_id=3),
    ]


# ---------------------------------------------------------------------------
# send quota (the broker's Receive Maximum)


def test_send_quota_blocks_qos_above_zero() -> None:
    # [v5:MQTT-3.3.4-7] [v5:MQTT-4.9.0-2]
    session, _ = make_session(connack=Properties(receive_maximum=2))
    assert session.send_quota == 2
    session.publish("a", b"", qos=QOS1)
    session.publish("a", b"", qos=QOS2)
    assert session.send_quota == 0
    message = (
        "cannot send PublishPacket with QoS {}: the send quota is 0 (broker "
        "receive maximum 2); wait for a PublishCompleted event"
    )
    with pytest.raises(InvalidStateError, match=exactly(message.format(1))):
        session.publish("a", b"", qos=QOS1)
    with pytest.raises(InvalidStateError, match=exactly(message.format(2))):
        session.publish("a", b"", qos=QOS2)
    # [v5:MQTT-3.3.4-8] QoS 0 and other packets keep flowing [v5:MQTT-4.9.0-3]
    assert session.publish("a", b"")[0] is None
    session.ping()
    session.subscribe([TopicSubscription(filter="a")])
    # A QoS 2 publish holds its quota until PUBCOMP.
    session.receive_data(pubrec(2))
    session.events()
    assert session.send_quota == 0
    session.receive_data(pubcomp(2))
    session.events()
    assert session.send_quota == 1
    assert session.publish("a", b"", qos=QOS1)[0] == 4
    assert session.send_quota == 0
    session.receive_data(puback(1))
    session.events()
    assert session.send_quota == 1


def test_send_quota_is_zero_when_the_new_broker_allows_fewer() -> None:
    session, broker = make_session()
    for _ in range(3):
        session.publish("a", b"", qos=QOS1)
    session.connection_lost()
    broker.handshake(
        session,
        ConnectPacket(client_id="client", clean_start=False),
        session_present=True,
        properties=Properties(receive_maximum=2),
    )
    assert session.inflight == 3
    assert session.send_quota == 0


# ---------------------------------------------------------------------------
# incoming QoS 0, 1, 2


@BOTH
def test_incoming_qos0(version: ProtocolVersion) -> None:
    session, _ = make_session(version)
    session.receive_data(
        b"\x31\x07\x00\x03a/bhi" if version is V311 else b"\x31\x08\x00\x03a/b\x00hi"
    )
    assert session.events() == [
        MessageReceived(message=Message(topic="a/b", payload=b"hi", retain=True))
    ]
    assert session.data_to_send() == b""


@BOTH
def test_incoming_qos1_puback(version: ProtocolVersion) -> None:
    # [v5:MQTT-4.3.2-4]
    session, broker = make_session(version)
    subscribe_all(session, broker, QOS1)
    properties = (
        Properties(content_type="text/plain") if version is V5 else EMPTY_PROPERTIES
    )
    (event,) = broker.send(
        session,
        PublishPacket(
            topic="a/b",
            payload=b"hi",
            qos=QOS1,
            dup=True,
            packet_id=5,
            properties=properties,
        ),
    )
    message = message_of(event)
    assert message == Message(
        topic="a/b", payload=b"hi", qos=QOS1, dup=True, properties=properties
    )
    assert message.packet_id == 5
    assert session.data_to_send() == puback(5)
    assert session.data_to_send() == b""


@BOTH
def test_incoming_qos2_flow_and_duplicate_suppressed(version: ProtocolVersion) -> None:
    # [v5:MQTT-4.3.3-9..12]
    session, broker = make_session(version)
    subscribe_all(session, broker)
    session.receive_data(
        b"\x34\x09\x00\x03a/b\x00\x07hi"
        if version is V311
        else b"\x34\x0a\x00\x03a/b\x00\x07\x00hi"
    )
    (event,) = session.events()
    assert message_of(event) == Message(topic="a/b", payload=b"hi", qos=QOS2)
    assert session.data_to_send() == pubrec(7)
    # A re-delivery before PUBREL is acknowledged again but not delivered again.
    dup = PublishPacket(topic="a/b", payload=b"hi", qos=QOS2, dup=True, packet_id=7)
    assert broker.send(session, dup) == []
    assert session.data_to_send() == pubrec(7)
    session.receive_data(pubrel(7))
    assert session.events() == []
    assert session.data_to_send() == pubcomp(7)
    # After PUBREL the id is free: the same id is a new message [v5:MQTT-4.3.3-12]
    (event,) = broker.send(session, incoming(7, QOS2))
    assert message_of(event).payload == b"hi"


def test_incoming_unknown_pubrel_v5_answered_with_pubcomp_0x92() -> None:
    session, broker = make_session()
    session.receive_data(pubrel(3))
    assert session.events() == []
    assert broker.receive_one(session.data_to_send()) == PubCompPacket(
        packet_id=3, reason_code=ReasonCode.PACKET_IDENTIFIER_NOT_FOUND
    )


def test_incoming_unknown_pubrel_v311_answered_with_pubcomp() -> None:
    session, _ = make_session(V311)
    session.receive_data(pubrel(3))
    assert session.events() == []
    assert session.data_to_send() == pubcomp(3)


def test_incoming_acks_in_receive_order() -> None:
    # [v5:MQTT-4.6.0-2]
    session, broker = make_session()
    subscribe_all(session, broker)
    events = broker.send(
        session,
        incoming(1, QOS2),
        incoming(2, QOS1),
        incoming(None, QOS0),
        PubRelPacket(packet_id=1),
        incoming(3, QOS1),
    )
    assert len(events) == 4
    assert session.data_to_send() == pubrec(1) + puback(2) + pubcomp(1) + puback(3)


def test_incoming_qos_above_subscribed_is_protocol_error() -> None:
    # [v5:MQTT-3.8.4-8] delivered QoS <= granted QoS <= requested QoS
    session, broker = make_session()
    session.receive_data(broker.encode(incoming(1, QOS1)))
    with pytest.raises(
        ProtocolError,
        match=exactly(
            "received PublishPacket with QoS 1 above the highest QoS subscribed (0)"
        ),
    ):
        session.events()
    session, broker = make_session()
    subscribe_all(session, broker, QOS1)
    session.receive_data(broker.encode(incoming(1, QOS2)))
    with pytest.raises(
        ProtocolError,
        match=exactly(
            "received PublishPacket with QoS 2 above the highest QoS subscribed (1)"
        ),
    ):
        session.events()


def test_incoming_qos_ceiling_survives_resumed_session() -> None:
    session, broker = make_session()
    subscribe_all(session, broker, QOS1)
    reconnect(session, broker, session_present=True)
    assert len(broker.send(session, incoming(1, QOS1))) == 1
    # A new broker session has no subscriptions at all.
    reconnect(session, broker, session_present=False)
    session.receive_data(broker.encode(incoming(2, QOS1)))
    with pytest.raises(ProtocolError):
        session.events()


def test_incoming_any_qos_in_a_session_resumed_from_elsewhere() -> None:
    # The first CONNACK resumes a session this object did not start: its
    # subscriptions are unknown, so every QoS is accepted.
    session = ClientSession()
    broker = ScriptedBroker()
    broker.handshake(session, session_present=True)
    (event,) = broker.send(session, incoming(1, QOS2))
    assert message_of(event).qos is QOS2


# ---------------------------------------------------------------------------
# our Receive Maximum


def test_our_receive_maximum_exceeded_qos1() -> None:
    # [v5:MQTT-3.3.4-9] binds the broker; the client's 0x93 DISCONNECT is a
    # "uses", not a MUST: a bounded excess (here up to twice receive_maximum) is
    # tolerated and reported, beyond it the session gives up with 0x93.
    session, broker = make_session(receive_maximum=2, tolerated_excess=0)
    subscribe_all(session, broker)
    assert len(broker.send(session, incoming(1, QOS1), incoming(2, QOS1))) == 2
    assert session.receive_maximum_excess == 0
    assert len(broker.send(session, incoming(3, QOS1))) == 1
    assert session.receive_maximum_excess == 1
    assert len(broker.send(session, incoming(4, QOS1))) == 1
    assert session.receive_maximum_excess == 2
    session.receive_data(broker.encode(incoming(5, QOS1)))
    with pytest.raises(
        ProtocolError,
        match=exactly(
            "the broker sent 5 unacknowledged QoS 1/2 PUBLISH packets, more than "
            "receive_maximum=2 allows even with the tolerated excess (up to 4)"
        ),
    ) as info:
        session.events()
    assert info.value.reason_code is ReasonCode.RECEIVE_MAXIMUM_EXCEEDED


def test_our_receive_maximum_excess_is_per_connection() -> None:
    session, broker = make_session(receive_maximum=2, tolerated_excess=0)
    subscribe_all(session, broker)
    broker.send(session, *(incoming(i, QOS1) for i in range(1, 4)))
    assert session.receive_maximum_excess == 1
    # The excess shrinks as acks go out, but the peak stays until the next CONNECT.
    session.data_to_send()
    broker.send(session, incoming(4, QOS1))
    assert session.receive_maximum_excess == 1
    reconnect(session, broker, session_present=True)
    assert session.receive_maximum_excess == 0


@pytest.mark.parametrize(
    ("receive_maximum", "tolerated_excess", "cap"),
    [(1000, 1000, 2000), (100, 1000, 1100), (5000, 1000, 10000), (40000, 0, 65535)],
)
def test_our_receive_maximum_cap(
    receive_maximum: int, tolerated_excess: int, cap: int
) -> None:
    # mosquitto 2.0.11 goes beyond our limit by up to its max_queued_messages
    # (1000 by default), whatever our limit: the excess tolerated is the larger of
    # receive_maximum and tolerated_excess; never more than 65535 packet ids.
    session = ClientSession(
        receive_maximum=receive_maximum, tolerated_excess=tolerated_excess
    )
    assert session.receive_maximum_cap == cap


def test_our_receive_maximum_never_above_65535_ids() -> None:
    session, broker = make_session(receive_maximum=65535)
    subscribe_all(session, broker)
    broker.send(session, *(incoming(i, QOS2) for i in range(1, 65536)))
    assert session.receive_maximum_excess == 0
    session.data_to_send()
    session.receive_data(broker.encode(incoming(1, QOS1)))
    with pytest.raises(ProtocolError):
        session.events()


def test_our_receive_maximum_counts_until_acks_are_taken() -> None:
    session, broker = make_session(receive_maximum=2)
    subscribe_all(session, broker)
    for packet_id in range(1, 10):
        assert len(broker.send(session, incoming(packet_id, QOS1))) == 1
        assert session.data_to_send() == puback(packet_id)
    # QoS 0 never counts.
    assert len(broker.send(session, *[incoming(None, QOS0)] * 5)) == 5


def test_deferred_acks_are_owed_until_released_in_arrival_order() -> None:
    # [v5:MQTT-4.6.0-2] [v5:MQTT-4.6.0-3] the caller releases them in this order.
    session, broker = make_session(defer_acks=True)
    subscribe_all(session, broker)
    assert session.take_owed_acks() == []
    events = broker.send(session, incoming(1, QOS1), incoming(2, QOS2))
    assert len(events) == 2
    assert session.data_to_send() == b""  # nothing until released
    assert session.take_owed_acks() == [(1, 1), (2, 2)]
    assert session.take_owed_acks() == []
    session.release_ack(1, 1)
    session.release_ack(2, 2)
    assert session.data_to_send() == puback(1) + pubrec(2)
    # A re-delivery of a QoS 2 message before PUBREL owes its PUBREC again.
    assert broker.send(session, attrs.evolve(incoming(2, QOS2), dup=True)) == []
    assert session.take_owed_acks() == [(2, 2)]
    # release_owed_acks releases everything owed, in order.
    broker.send(session, incoming(3, QOS1), incoming(4, QOS1))
    session.release_owed_acks()
    session.release_owed_acks()  # nothing more owed
    assert session.data_to_send() == puback(3) + puback(4)


def test_deferred_qos1_acks_count_against_receive_maximum_until_handed_out() -> None:
    session, broker = make_session(
        defer_acks=True, receive_maximum=1, tolerated_excess=0
    )
    subscribe_all(session, broker)
    broker.send(session, incoming(1, QOS1), incoming(2, QOS1))
    session.data_to_send()  # taking the output does not hand them out
    assert session.receive_maximum_excess == 1
    session.receive_data(broker.encode(incoming(3, QOS1)))
    with pytest.raises(ProtocolError):
        session.events()

    # Handed out (withheld by the caller, or released): no longer counted.
    session, broker = make_session(
        defer_acks=True, receive_maximum=1, tolerated_excess=0
    )
    subscribe_all(session, broker)
    broker.send(session, incoming(1, QOS1), incoming(2, QOS1))
    assert session.take_owed_acks() == [(1, 1), (2, 1)]
    assert len(broker.send(session, incoming(3, QOS1), incoming(4, QOS1))) == 2
    session.release_owed_acks()
    session.data_to_send()
    assert len(broker.send(session, incoming(5, QOS1), incoming(6, QOS1))) == 2


def test_deferred_acks_of_a_lost_connection_are_forgotten() -> None:
    session, broker = make_session(defer_acks=True)
    subscribe_all(session, broker)
    broker.send(session, incoming(1, QOS1))
    session.connection_lost()
    with pytest.raises(
        InvalidStateError,
        match=exactly("cannot send PubAckPacket in state DISCONNECTED"),
    ):
        session.release_ack(1, 1)
    with pytest.raises(InvalidStateError, match="cannot send PubRecPacket"):
        session.release_ack(2, 2)
    reconnect(session, broker, session_present=True)
    assert session.take_owed_acks() == []


def _two_qos2_received() -> tuple[ClientSession, ScriptedBroker]:
    """A session with receive maximum 1 that was sent QoS 2 messages 1 and 2.

    Two is the most it tolerates (twice its receive maximum).
    """
    session, broker = make_session(receive_maximum=1, tolerated_excess=0)
    subscribe_all(session, broker)
    broker.send(session, incoming(1, QOS2), incoming(2, QOS2))
    return session, broker


def test_our_receive_maximum_counts_qos2_until_pubrel_and_pubcomp_taken() -> None:
    session, broker = _two_qos2_received()
    session.data_to_send()  # PUBRECs out, but both still unacknowledged
    # Duplicates do not count.
    assert broker.send(session, incoming(1, QOS2)) == []
    session.receive_data(broker.encode(incoming(3, QOS2)))
    with pytest.raises(ProtocolError):
        session.events()

    session, broker = _two_qos2_received()
    broker.send(session, PubRelPacket(packet_id=1))  # PUBCOMP queued, not taken
    session.receive_data(broker.encode(incoming(3, QOS2)))
    with pytest.raises(ProtocolError):
        session.events()

    session, broker = _two_qos2_received()
    broker.send(session, PubRelPacket(packet_id=1))
    session.data_to_send()
    assert len(broker.send(session, incoming(3, QOS2))) == 1


# ---------------------------------------------------------------------------
# topic aliases


def test_incoming_topic_alias_resolution() -> None:
    session, broker = make_session(topic_alias_maximum=2)
    subscribe_all(session, broker)
    events = broker.send(
        session,
        PublishPacket(topic="a/b", payload=b"1", properties=Properties(topic_alias=1)),
        PublishPacket(topic="", payload=b"2", properties=Properties(topic_alias=1)),
        PublishPacket(topic="c", payload=b"3", properties=Properties(topic_alias=2)),
        PublishPacket(topic="", payload=b"4", properties=Properties(topic_alias=2)),
        PublishPacket(topic="d", payload=b"5", properties=Properties(topic_alias=1)),
        PublishPacket(topic="", payload=b"6", properties=Properties(topic_alias=1)),
    )
    assert [(message_of(e).topic, message_of(e).payload) for e in events] == [
        ("a/b", b"1"),
        ("a/b", b"2"),
        ("c", b"3"),
        ("c", b"4"),
        ("d", b"5"),
        ("d", b"6"),
    ]
    assert message_of(events[1]).properties == Properties(topic_alias=1)


@pytest.mark.parametrize(("maximum", "alias"), [(2, 3), (0, 1)])
def test_incoming_topic_alias_out_of_range(maximum: int, alias: int) -> None:
    # [v5:MQTT-3.3.2-11]
    session, broker = make_session(topic_alias_maximum=maximum)
    session.receive_data(
        broker.encode(
            PublishPacket(topic="a", properties=Properties(topic_alias=alias))
        )
    )
    with pytest.raises(
        ProtocolError,
        match=exactly(
            f"received PublishPacket with invalid topic alias {alias} "
            f"(topic_alias_maximum={maximum})"
        ),
    ) as info:
        session.events()
    assert info.value.reason_code is ReasonCode.TOPIC_ALIAS_INVALID


def test_incoming_unknown_topic_alias() -> None:
    session, broker = make_session(topic_alias_maximum=2)
    session.receive_data(
        broker.encode(PublishPacket(topic="", properties=Properties(topic_alias=2)))
    )
    with pytest.raises(
        ProtocolError,
        match=exactly(
            "received PublishPacket with an empty topic and unknown topic alias 2"
        ),
    ) as info:
        session.events()
    assert info.value.reason_code is ReasonCode.PROTOCOL_ERROR


def test_incoming_empty_topic_without_alias() -> None:
    # The decoder refuses it (5.0 3.3.2.1); the session never sees such a packet.
    session, _ = make_session()
    session.receive_data(b"\x30\x03\x00\x00\x00")
    with pytest.raises(ProtocolError):
        session.events()


def test_incoming_topic_aliases_reset_per_connection() -> None:
    # [v5:MQTT-3.3.2-7]
    session, broker = make_session(topic_alias_maximum=2)
    broker.send(session, PublishPacket(topic="a", properties=Properties(topic_alias=1)))
    reconnect(session, broker, session_present=True)
    session.receive_data(
        broker.encode(PublishPacket(topic="", properties=Properties(topic_alias=1)))
    )
    with pytest.raises(ProtocolError, match=r"unknown topic alias 1$"):
        session.events()


def test_outgoing_topic_aliases() -> None:
    # [v5:MQTT-3.2.2-17] [v5:MQTT-3.3.2-9]
    session, broker = make_session(
        outgoing_topic_aliases=True, connack=Properties(topic_alias_maximum=1)
    )
    _, first = session.publish("a/b", b"hi")
    assert first == b"\x30\x0b\x00\x03a/b\x03\x23\x00\x01hi"
    _, second = session.publish("a/b", b"hi")
    assert second == b"\x30\x08\x00\x00\x03\x23\x00\x01hi"
    # The broker's maximum is used up: other topics go in full.
    _, other = session.publish("c", b"", properties=Properties(content_type="t"))
    assert broker.receive(first + second + other) == [
        PublishPacket(topic="a/b", payload=b"hi", properties=Properties(topic_alias=1)),
        PublishPacket(topic="", payload=b"hi", properties=Properties(topic_alias=1)),
        PublishPacket(topic="c", properties=Properties(content_type="t")),
    ]


def test_outgoing_topic_aliases_need_the_broker() -> None:
    session, broker = make_session(outgoing_topic_aliases=True)
    _, data = session.publish("a/b", b"hi")
    assert broker.receive_one(data) == PublishPacket(topic="a/b", payload=b"hi")


def test_outgoing_topic_aliases_off_by_default() -> None:
    session, broker = make_session(connack=Properties(topic_alias_maximum=5))
    _, data = session.publish("a/b", b"hi")
    assert broker.receive_one(data) == PublishPacket(topic="a/b", payload=b"hi")


def test_outgoing_topic_alias_not_taken_when_the_packet_fails() -> None:
    session, broker = make_session(
        outgoing_topic_aliases=True,
        connack=Properties(topic_alias_maximum=2, maximum_packet_size=20),
    )
    with pytest.raises(ValueError, match="exceeds the broker's maximum packet size"):
        session.publish("a/b", b"x" * 20)
    _, data = session.publish("a/b", b"")
    assert broker.receive_one(data) == PublishPacket(
        topic="a/b", properties=Properties(topic_alias=1)
    )


def test_outgoing_topic_aliases_forgotten_on_reconnect() -> None:
    session, broker = make_session(
        outgoing_topic_aliases=True, connack=Properties(topic_alias_maximum=1)
    )
    session.publish("a/b", b"0")
    packet_id, _ = session.publish("a/b", b"1", qos=QOS1)
    session.connection_lost()
    broker.handshake(
        session,
        ConnectPacket(client_id="client", clean_start=False),
        session_present=True,
        properties=Properties(topic_alias_maximum=1),
    )
    # The re-send carries the full topic and no alias.
    assert broker.receive_one(session.data_to_send()) == PublishPacket(
        topic="a/b", payload=b"1", qos=QOS1, dup=True, packet_id=packet_id
    )
    # The first use on the new connection sends topic + alias again.
    _, data = session.publish("a/b", b"2")
    assert broker.receive_one(data) == PublishPacket(
        topic="a/b", payload=b"2", properties=Properties(topic_alias=1)
    )


# ---------------------------------------------------------------------------
# local checks before any byte


def test_publish_validates_topic() -> None:
    session, _ = make_session()
    for topic in ["a/+", ""]:
        with pytest.raises(ValueError) as expected:
            validate_topic_name(topic)
        with pytest.raises(ValueError, match=exactly(str(expected.value))):
            session.publish(topic, b"", qos=QOS1)
    assert session.inflight == 0


def test_publish_qos_above_broker_maximum() -> None:
    # [v5:MQTT-3.2.2-11]
    session, _ = make_session(connack=Properties(maximum_qos=0))
    with pytest.raises(
        ValueError,
        match=exactly(
            "qos 1 is above the broker's maximum QoS 0; publish with qos <= 0"
        ),
    ):
        session.publish("a", b"", qos=QOS1)
    assert session.inflight == 0


def test_publish_retain_unavailable() -> None:
    # [v5:MQTT-3.2.2-14]
    session, _ = make_session(connack=Properties(retain_available=0))
    with pytest.raises(
        ValueError,
        match=exactly(
            "the broker does not support retained messages; publish with retain=False"
        ),
    ):
        session.publish("a", b"", retain=True)
    session.publish("a", b"")


def test_publish_rejects_topic_alias_property() -> None:
    session, _ = make_session()
    with pytest.raises(
        ValueError,
        match=exactly(
            "cannot send PublishPacket with properties.topic_alias=1: topic aliases "
            "are chosen by the session; remove it and create the ClientSession with "
            "outgoing_topic_aliases=True"
        ),
    ):
        session.publish("a", b"", properties=Properties(topic_alias=1))


def test_publish_rejects_subscription_identifiers() -> None:
    # [v5:MQTT-3.3.4-6]
    session, _ = make_session()
    with pytest.raises(
        ValueError,
        match=exactly(
            "cannot send PublishPacket with properties.subscription_identifiers=(1,): "
            "a PUBLISH from a client cannot carry subscription identifiers; remove them"
        ),
    ):
        session.publish("a", b"", properties=Properties(subscription_identifiers=(1,)))


def test_publish_above_broker_maximum_packet_size() -> None:
    # [v5:MQTT-3.2.2-15]
    session, _ = make_session(connack=Properties(maximum_packet_size=20))
    _, data = session.publish("a", b"x" * 12, qos=QOS1)
    assert len(data) == 20
    with pytest.raises(
        ValueError,
        match=exactly(
            "PublishPacket of 21 bytes exceeds the broker's maximum packet size "
            "of 20 bytes; send less data"
        ),
    ):
        session.publish("a", b"x" * 13, qos=QOS1)
    # Nothing was taken: no id, no quota.
    assert session.inflight == 1
    assert session.publish("a", b"", qos=QOS1)[0] == 2


def test_requests_above_broker_maximum_packet_size() -> None:
    session, _ = make_session(connack=Properties(maximum_packet_size=10))
    long = "x" * 20
    with pytest.raises(
        ValueError, match=r"^SubscribePacket of \d+ bytes exceeds the broker's"
    ):
        session.subscribe([TopicSubscription(filter=long)])
    with pytest.raises(
        ValueError, match=r"^UnsubscribePacket of \d+ bytes exceeds the broker's"
    ):
        session.unsubscribe([long])
    with pytest.raises(
        ValueError, match=r"^DisconnectPacket of \d+ bytes exceeds the broker's"
    ):
        session.disconnect(properties=Properties(reason_string=long))
    assert session.state is SessionState.CONNECTED
    # The failed requests took no packet id.
    assert session.publish("a", b"", qos=QOS1)[0] == 1


def test_subscribe_validates_filters() -> None:
    session, _ = make_session()
    with pytest.raises(ValueError) as expected:
        validate_topic_filter("a/#/b")
    with pytest.raises(ValueError, match=exactly(str(expected.value))):
        session.subscribe(
            [TopicSubscription(filter="a"), TopicSubscription(filter="a/#/b")]
        )
    with pytest.raises(ValueError, match=exactly(str(expected.value))):
        session.unsubscribe(["a", "a/#/b"])
    with pytest.raises(
        ValueError,
        match=exactly(
            "no_local cannot be set on the shared subscription '$share/g/a'; "
            "set no_local=False"
        ),
    ):
        session.subscribe([TopicSubscription(filter="$share/g/a", no_local=True)])
    with pytest.raises(
        ValueError,
        match=exactly("subscribe needs at least one TopicSubscription, not []"),
    ):
        session.subscribe([])
    bad_filters: list[Sequence[str]] = [[], "a/b"]
    for filters in bad_filters:
        with pytest.raises(
            ValueError,
            match=exactly(
                "unsubscribe needs a sequence of one or more topic filters, "
                f"not {filters!r}"
            ),
        ):
            session.unsubscribe(filters)
    assert session.publish("a", b"", qos=QOS1)[0] == 1


# ---------------------------------------------------------------------------
# SUBSCRIBE / UNSUBSCRIBE


@BOTH
def test_subscribe_and_suback(version: ProtocolVersion) -> None:
    session, broker = make_session(version)
    subscriptions = [
        TopicSubscription(filter="a/+", qos=QOS1),
        TopicSubscription(filter="b/#", qos=QOS2),
    ]
    packet_id, data = session.subscribe(subscriptions)
    assert broker.receive_one(data) == SubscribePacket(
        packet_id=packet_id, subscriptions=tuple(subscriptions)
    )
    codes = (ReasonCode.GRANTED_QOS_1, ReasonCode.UNSPECIFIED_ERROR)
    assert broker.send(
        session, SubAckPacket(packet_id=packet_id, reason_codes=codes)
    ) == [Subscribed(packet_id=packet_id, reason_codes=codes)]


def test_subscribe_golden_v311() -> None:
    session, _ = make_session(V311)
    assert session.subscribe([TopicSubscription(filter="a/b", qos=QOS1)]) == (
        1,
        b"\x82\x08\x00\x01\x00\x03a/b\x01",
    )
    session.receive_data(b"\x90\x03\x00\x01\x01")
    assert session.events() == [
        Subscribed(packet_id=1, reason_codes=(ReasonCode.GRANTED_QOS_1,))
    ]


def test_subscribe_with_properties() -> None:
    session, broker = make_session()
    properties = Properties(subscription_identifiers=(7,))
    subscriptions = (
        TopicSubscription(filter="a", no_local=True),
        TopicSubscription(filter="$share/g/a"),
    )
    _, data = session.subscribe(subscriptions, properties=properties)
    sent = broker.receive_one(data)
    assert isinstance(sent, SubscribePacket)
    assert sent.subscriptions == subscriptions
    assert sent.properties == properties


@BOTH
def test_suback_with_wrong_number_of_codes(version: ProtocolVersion) -> None:
    # [v5:MQTT-3.8.4-6]
    session, broker = make_session(version)
    packet_id, _ = session.subscribe(
        [TopicSubscription(filter="a"), TopicSubscription(filter="b")]
    )
    session.receive_data(
        broker.encode(
            SubAckPacket(packet_id=packet_id, reason_codes=(ReasonCode.GRANTED_QOS_0,))
        )
    )
    with pytest.raises(
        ProtocolError,
        match=exactly("received SubAckPacket with 1 reason codes for 2 topic filters"),
    ) as info:
        session.events()
    assert info.value.reason_code is ReasonCode.PROTOCOL_ERROR


def test_suback_for_unknown_packet_id() -> None:
    session, broker = make_session()
    session.receive_data(
        broker.encode(
            SubAckPacket(packet_id=3, reason_codes=(ReasonCode.GRANTED_QOS_0,))
        )
    )
    with pytest.raises(
        ProtocolError, match=exactly("received SubAckPacket for unknown packet id 3")
    ):
        session.events()


def test_unsubscribe_v5_unsuback() -> None:
    session, broker = make_session()
    packet_id, data = session.unsubscribe(["a", "b/#"])
    assert broker.receive_one(data) == UnsubscribePacket(
        packet_id=packet_id, filters=("a", "b/#")
    )
    codes = (ReasonCode.SUCCESS, ReasonCode.NO_SUBSCRIPTION_EXISTED)
    assert broker.send(
        session, UnsubAckPacket(packet_id=packet_id, reason_codes=codes)
    ) == [Unsubscribed(packet_id=packet_id, reason_codes=codes)]


def test_unsubscribe_v311_unsuback_means_success_for_every_filter() -> None:
    session, _ = make_session(V311)
    _, data = session.unsubscribe(("a", "b", "c"))
    assert data == b"\xa2\x0b\x00\x01\x00\x01a\x00\x01b\x00\x01c"
    session.receive_data(b"\xb0\x02\x00\x01")
    assert session.events() == [
        Unsubscribed(packet_id=1, reason_codes=(ReasonCode.SUCCESS,) * 3)
    ]


def test_unsuback_v5_with_wrong_number_of_codes() -> None:
    session, broker = make_session()
    packet_id, _ = session.unsubscribe(["a", "b"])
    session.receive_data(
        broker.encode(
            UnsubAckPacket(packet_id=packet_id, reason_codes=(ReasonCode.SUCCESS,))
        )
    )
    with pytest.raises(
        ProtocolError,
        match=exactly(
            "received UnsubAckPacket with 1 reason codes for 2 topic filters"
        ),
    ):
        session.events()


@BOTH
def test_unsuback_for_unknown_packet_id(version: ProtocolVersion) -> None:
    session, broker = make_session(version)
    session.receive_data(
        broker.encode(
            UnsubAckPacket(
                packet_id=4,
                reason_codes=(ReasonCode.SUCCESS,) if version is V5 else (),
            )
        )
    )
    with pytest.raises(
        ProtocolError, match=exactly("received UnsubAckPacket for unknown packet id 4")
    ):
        session.events()


# ---------------------------------------------------------------------------
# PINGREQ / PINGRESP


@BOTH
def test_ping_and_pong(version: ProtocolVersion) -> None:
    session, _ = make_session(version)
    assert session.ping() == b"\xc0\x00"
    session.receive_data(b"\xd0\x00\xd0\x00")
    assert session.events() == [PongReceived(), PongReceived()]


# ---------------------------------------------------------------------------
# DISCONNECT


@BOTH
def test_disconnect_golden_and_closed(version: ProtocolVersion) -> None:
    session, _ = make_session(version)
    assert session.disconnect() == b"\xe0\x00"
    assert session.state is SessionState.CLOSED
    # Bytes arriving after DISCONNECT are dropped, not acknowledged.
    session.receive_data(b"\x32\x09\x00\x03a/b\x00\x01hi")
    assert session.events() == []
    assert session.data_to_send() == b""


def test_disconnect_sends_queued_acks_first() -> None:
    # [v5:MQTT-3.14.4-1] nothing may follow DISCONNECT
    session, broker = make_session()
    subscribe_all(session, broker)
    broker.send(session, incoming(1, QOS1))
    data = session.disconnect(ReasonCode.DISCONNECT_WITH_WILL_MESSAGE)
    assert broker.receive(data) == [
        PubAckPacket(packet_id=1),
        DisconnectPacket(reason_code=ReasonCode.DISCONNECT_WITH_WILL_MESSAGE),
    ]
    assert session.data_to_send() == b""


def test_disconnect_session_expiry_needs_nonzero_expiry_in_connect() -> None:
    # v5 3.14.2.2.2
    session, broker = make_session()
    with pytest.raises(
        ValueError,
        match=exactly(
            "cannot set session_expiry_interval=60 in DISCONNECT: CONNECT had a "
            "session expiry interval of 0; leave it unset"
        ),
    ):
        session.disconnect(properties=Properties(session_expiry_interval=60))
    assert session.state is SessionState.CONNECTED
    # Setting it to 0 is always allowed.
    data = session.disconnect(properties=Properties(session_expiry_interval=0))
    assert broker.receive_one(data) == DisconnectPacket(
        properties=Properties(session_expiry_interval=0)
    )


def test_disconnect_v311_has_no_properties() -> None:
    session, _ = make_session(V311)
    with pytest.raises(
        ValueError,
        match=exactly(
            "DISCONNECT properties need MQTT 5; remove them or use ProtocolVersion.V5"
        ),
    ):
        session.disconnect(properties=Properties(session_expiry_interval=60))
    assert session.state is SessionState.CONNECTED


def test_disconnect_session_expiry_after_nonzero_connect() -> None:
    session = ClientSession()
    broker = ScriptedBroker()
    broker.handshake(
        session,
        ConnectPacket(client_id="c", properties=Properties(session_expiry_interval=10)),
    )
    data = session.disconnect(properties=Properties(session_expiry_interval=60))
    assert broker.receive_one(data) == DisconnectPacket(
        properties=Properties(session_expiry_interval=60)
    )


def test_broker_disconnect() -> None:
    session, broker = make_session()
    subscribe_all(session, broker)
    properties = Properties(reason_string="bye", server_reference="other")
    events = broker.send(
        session,
        DisconnectPacket(
            reason_code=ReasonCode.SERVER_SHUTTING_DOWN, properties=properties
        ),
        incoming(1, QOS1),  # after DISCONNECT nothing more is processed
    )
    assert events == [
        Disconnected(reason_code=ReasonCode.SERVER_SHUTTING_DOWN, properties=properties)
    ]
    assert session.state is SessionState.CLOSED
    assert session.data_to_send() == b""
    session.receive_data(b"")
    assert session.events() == []
    assert session.state is SessionState.CLOSED


def test_broker_disconnect_with_session_expiry_is_protocol_error() -> None:
    # [v5:MQTT-3.14.2-2]
    session, broker = make_session()
    session.receive_data(
        broker.encode(
            DisconnectPacket(properties=Properties(session_expiry_interval=0))
        )
    )
    with pytest.raises(
        ProtocolError,
        match=exactly("received DisconnectPacket with a session expiry interval"),
    ):
        session.events()


# ---------------------------------------------------------------------------
# AUTH


def _auth_session(
    method: str | None = "SCRAM-SHA-1",
) -> tuple[ClientSession, ScriptedBroker]:
    """A session that sent CONNECT with authentication *method*, no CONNACK yet."""
    session = ClientSession()
    broker = ScriptedBroker()
    broker.receive_one(
        session.connect(
            ConnectPacket(
                client_id="c",
                properties=Properties(authentication_method=method),
            )
        )
    )
    return session, broker


def test_auth_exchange_before_connack() -> None:
    session, broker = _auth_session()
    challenge = Properties(
        authentication_method="SCRAM-SHA-1", authentication_data=b"challenge"
    )
    assert broker.send(
        session,
        AuthPacket(
            reason_code=ReasonCode.CONTINUE_AUTHENTICATION, properties=challenge
        ),
    ) == [
        AuthReceived(
            reason_code=ReasonCode.CONTINUE_AUTHENTICATION, properties=challenge
        )
    ]
    answer = Properties(
        authentication_method="SCRAM-SHA-1", authentication_data=b"answer"
    )
    data = session.auth(ReasonCode.CONTINUE_AUTHENTICATION, properties=answer)
    assert broker.receive_one(data) == AuthPacket(
        reason_code=ReasonCode.CONTINUE_AUTHENTICATION, properties=answer
    )
    (event,) = broker.send(
        session,
        ConnAckPacket(properties=Properties(authentication_method="SCRAM-SHA-1")),
    )
    assert isinstance(event, Connected)
    # Re-authentication on the live connection [v5:MQTT-4.12.1-1]
    data = session.auth(ReasonCode.RE_AUTHENTICATE, properties=answer)
    assert broker.receive_one(data) == AuthPacket(
        reason_code=ReasonCode.RE_AUTHENTICATE, properties=answer
    )
    assert broker.send(session, AuthPacket(properties=challenge)) == [
        AuthReceived(reason_code=ReasonCode.SUCCESS, properties=challenge)
    ]


def test_auth_v311() -> None:
    session, _ = make_session(V311)
    with pytest.raises(
        InvalidStateError,
        match=exactly(
            "cannot send AuthPacket with MQTT 3.1.1; enhanced authentication needs "
            "ProtocolVersion.V5"
        ),
    ):
        session.auth(ReasonCode.RE_AUTHENTICATE, properties=EMPTY_PROPERTIES)


def test_auth_needs_a_method_in_connect() -> None:
    session, _ = make_session()
    with pytest.raises(
        InvalidStateError,
        match=exactly(
            "cannot send AuthPacket: CONNECT had no authentication method; set "
            "properties.authentication_method in CONNECT"
        ),
    ):
        session.auth(
            ReasonCode.RE_AUTHENTICATE,
            properties=Properties(authentication_method="X"),
        )


@pytest.mark.parametrize(
    "state", [SessionState.DISCONNECTED, SessionState.CLOSED], ids=lambda s: s.name
)
def test_auth_needs_a_connection(state: SessionState) -> None:
    session = _in_state(state)
    with pytest.raises(
        InvalidStateError,
        match=exactly(f"cannot send AuthPacket in state {state.name}"),
    ):
        session.auth(ReasonCode.RE_AUTHENTICATE, properties=EMPTY_PROPERTIES)


def test_auth_needs_the_same_method() -> None:
    session, _ = _auth_session()
    with pytest.raises(
        ValueError,
        match=exactly(
            "AUTH authentication_method 'OTHER' differs from CONNECT's "
            "'SCRAM-SHA-1'; use the same method"
        ),
    ):
        session.auth(
            ReasonCode.CONTINUE_AUTHENTICATION,
            properties=Properties(authentication_method="OTHER"),
        )


def test_auth_above_broker_maximum_packet_size() -> None:
    session, broker = _auth_session()
    broker.send(
        session,
        ConnAckPacket(
            properties=Properties(
                authentication_method="SCRAM-SHA-1", maximum_packet_size=20
            )
        ),
    )
    with pytest.raises(
        ValueError, match=r"^AuthPacket of \d+ bytes exceeds the broker's maximum"
    ):
        session.auth(
            ReasonCode.RE_AUTHENTICATE,
            properties=Properties(
                authentication_method="SCRAM-SHA-1", authentication_data=b"x" * 20
            ),
        )


@pytest.mark.parametrize("connect_method", [None, "SCRAM-SHA-1"])
def test_broker_auth_with_wrong_method_is_protocol_error(
    connect_method: str | None,
) -> None:
    session, broker = _auth_session(connect_method)
    session.receive_data(
        broker.encode(AuthPacket(properties=Properties(authentication_method="X")))
    )
    with pytest.raises(
        ProtocolError,
        match=exactly(
            f"received AuthPacket with authentication method 'X' after a CONNECT "
            f"with {connect_method!r}"
        ),
    ):
        session.events()


@pytest.mark.parametrize(
    ("connect_method", "connack_method"), [(None, "X"), ("SCRAM-SHA-1", None)]
)
def test_connack_with_wrong_authentication_method_is_protocol_error(
    connect_method: str | None, connack_method: str | None
) -> None:
    # [v5:MQTT-4.12.0-5] [v5:MQTT-4.12.0-6]
    session, broker = _auth_session(connect_method)
    session.receive_data(
        broker.encode(
            ConnAckPacket(properties=Properties(authentication_method=connack_method))
        )
    )
    with pytest.raises(
        ProtocolError,
        match=exactly(
            f"received ConnAckPacket with authentication method {connack_method!r} "
            f"after a CONNECT with {connect_method!r}"
        ),
    ):
        session.events()


# ---------------------------------------------------------------------------
# reconnect: resend with session present, discard without


@BOTH
def test_resend_after_reconnect_golden_dup(version: ProtocolVersion) -> None:
    # [v5:MQTT-4.4.0-1] [v5:MQTT-3.3.1-1]
    session, broker = make_session(version)
    session.publish("a/b", b"hi", qos=QOS1)
    session.connection_lost()
    assert session.state is SessionState.DISCONNECTED
    assert session.inflight == 1
    event = reconnect(session, broker, session_present=True)
    assert event == Connected(
        session_present=True, client_id="client", keepalive=60, resent=1
    )
    assert session.data_to_send() == (
        PUBLISH_QOS1_DUP_V5 if version is V5 else PUBLISH_QOS1_DUP_V311
    )
    # The stored packet stays as originally sent.
    assert session.pending_publishes()[0].dup is False
    session.receive_data(puback(1))
    assert session.events() == [PublishCompleted(packet_id=1)]


def test_resend_keeps_original_order_and_ids() -> None:
    # PUBREL in PUBREC order [v5:MQTT-4.6.0-4] (those messages are the broker's
    # already), then PUBLISH in publish order [v5:MQTT-4.6.0-1], same ids.
    session, broker = make_session()
    session.publish("t/1", b"1", qos=QOS2)  # id 1: PUBREC second -> PUBREL
    session.publish("t/2", b"2", qos=QOS1)  # id 2
    session.publish("t/3", b"3", qos=QOS2)  # id 3: PUBREC first -> PUBREL
    session.publish("t/4", b"4", qos=QOS2)  # id 4: awaits PUBREC
    session.publish("t/5", b"5", qos=QOS1)  # id 5: completed
    session.publish("t/6", b"6", qos=QOS1)  # id 6
    session.receive_data(pubrec(3) + pubrec(1) + puback(5))
    session.events()
    assert session.data_to_send() == pubrel(3) + pubrel(1)
    assert [p.packet_id for p in session.pending_publishes()] == [1, 2, 3, 4, 6]
    session.send_failed()
    event = reconnect(session, broker, session_present=True)
    assert event.resent == 5
    assert broker.receive(session.data_to_send()) == [
        PubRelPacket(packet_id=3),
        PubRelPacket(packet_id=1),
        PublishPacket(topic="t/2", payload=b"2", qos=QOS1, dup=True, packet_id=2),
        PublishPacket(topic="t/4", payload=b"4", qos=QOS2, dup=True, packet_id=4),
        PublishPacket(topic="t/6", payload=b"6", qos=QOS1, dup=True, packet_id=6),
    ]
    # The ids stay taken: the next publish gets 7.
    assert session.publish("x", b"", qos=QOS1)[0] == 7
    # The re-sent exchanges complete as usual.
    session.receive_data(pubcomp(1) + pubcomp(3) + puback(2) + pubrec(4))
    assert [
        e.packet_id for e in session.events() if isinstance(e, PublishCompleted)
    ] == [
        1,
        3,
        2,
    ]
    assert session.data_to_send() == pubrel(4)


def test_resend_happens_once_per_reconnect() -> None:
    session, broker = make_session()
    session.publish("a", b"", qos=QOS1)
    reconnect(session, broker, session_present=True)
    assert len(broker.receive(session.data_to_send())) == 1
    assert session.data_to_send() == b""
    assert reconnect(session, broker, session_present=True).resent == 1
    assert len(broker.receive(session.data_to_send())) == 1


def test_discard_when_session_not_present() -> None:
    # [v5:MQTT-3.2.2-5]
    session, broker = make_session(connack=Properties(receive_maximum=3))
    session.publish("t/1", b"1", qos=QOS2)
    session.publish("t/2", b"2", qos=QOS1)
    session.publish("t/3", b"3", qos=QOS2)
    session.receive_data(pubrec(1))
    session.events()
    assert session.send_quota == 0
    session.connection_lost()
    event = reconnect(session, broker, session_present=False)
    assert event == Connected(
        session_present=False,
        client_id="client",
        keepalive=60,
        discarded=(
            PublishPacket(topic="t/2", payload=b"2", qos=QOS1, packet_id=2),
            PublishPacket(topic="t/3", payload=b"3", qos=QOS2, packet_id=3),
        ),
        discarded_pubrel=(1,),
    )
    assert session.data_to_send() == b""
    assert session.inflight == 0
    assert session.send_quota == 65535
    assert session.pending_publishes() == []
    # Acks for the discarded ids are unknown now.
    session.receive_data(puback(2) + pubcomp(1))
    assert session.events() == []


def test_discard_on_clean_start_reconnect() -> None:
    session, broker = make_session()
    session.publish("a", b"", qos=QOS1)
    session.connection_lost()
    event = broker.handshake(session)  # clean start = 1
    assert event.discarded == (PublishPacket(topic="a", qos=QOS1, packet_id=1),)
    assert event.resent == 0


def test_incoming_qos2_ids_kept_with_session_present() -> None:
    session, broker = make_session()
    subscribe_all(session, broker)
    broker.send(session, incoming(7, QOS2))
    session.connection_lost()  # the PUBREC may not have arrived
    reconnect(session, broker, session_present=True)
    dup = PublishPacket(topic="a/b", payload=b"hi", qos=QOS2, dup=True, packet_id=7)
    assert broker.send(session, dup) == []
    assert session.data_to_send() == pubrec(7)
    session.receive_data(pubrel(7))
    session.events()
    assert session.data_to_send() == pubcomp(7)


def test_incoming_qos2_ids_discarded_without_session() -> None:
    session, broker = make_session()
    subscribe_all(session, broker)
    broker.send(session, incoming(7, QOS2))
    reconnect(session, broker, session_present=False)
    subscribe_all(session, broker)
    (event,) = broker.send(session, incoming(7, QOS2))
    assert message_of(event).packet_id == 7


def test_reconnect_after_broker_disconnect() -> None:
    session, broker = make_session()
    session.publish("a/b", b"hi", qos=QOS1)
    broker.send(session, DisconnectPacket(reason_code=ReasonCode.SESSION_TAKEN_OVER))
    assert session.state is SessionState.CLOSED
    session.connection_lost()
    assert session.state is SessionState.CLOSED
    event = broker.handshake(
        session,
        ConnectPacket(client_id="client", clean_start=False),
        session_present=True,
    )
    assert event.resent == 1
    assert session.data_to_send() == PUBLISH_QOS1_DUP_V5


# ---------------------------------------------------------------------------
# robustness: whatever the broker sends, only ProtocolError escapes

_ids = st.integers(min_value=1, max_value=4)
_broker_packets = st.one_of(
    st.builds(
        PublishPacket,
        topic=st.sampled_from(["a", "b/c"]),
        payload=st.binary(max_size=4),
        qos=st.just(QOS0),
    ),
    st.builds(
        lambda qos, packet_id, dup: PublishPacket(
            topic="a", qos=qos, packet_id=packet_id, dup=dup
        ),
        st.sampled_from([QOS1, QOS2]),
        _ids,
        st.booleans(),
    ),
    st.builds(lambda i: PubAckPacket(packet_id=i), _ids),
    st.builds(lambda i: PubRecPacket(packet_id=i), _ids),
    st.builds(lambda i: PubRelPacket(packet_id=i), _ids),
    st.builds(lambda i: PubCompPacket(packet_id=i), _ids),
    st.builds(
        lambda i: SubAckPacket(packet_id=i, reason_codes=(ReasonCode.GRANTED_QOS_2,)),
        _ids,
    ),
    st.builds(
        lambda i: UnsubAckPacket(packet_id=i, reason_codes=(ReasonCode.SUCCESS,)),
        _ids,
    ),
    st.just(PingRespPacket()),
    st.just(ConnAckPacket()),
    st.just(DisconnectPacket()),
)


@given(
    publishes=st.lists(st.sampled_from([QOS1, QOS2]), max_size=4),
    packets=st.lists(_broker_packets, max_size=12),
)
def test_session_any_broker_packets_raise_only_protocol_error(
    publishes: list[QoS], packets: list[Packet]
) -> None:
    session, broker = make_session(receive_maximum=3)
    subscribe_all(session, broker)
    for qos in publishes:
        session.publish("x", b"", qos=qos)
    session.receive_data(broker.encode(*packets))
    try:
        while session.events():
            session.data_to_send()
    except ProtocolError:
        return
    # Whatever happened, the tables stay consistent.
    assert session.inflight + session.send_quota == 65535
    assert len(session.pending_publishes()) == session.inflight


@given(data=st.binary(max_size=64))
def test_session_arbitrary_bytes_raise_only_protocol_error(data: bytes) -> None:
    session, broker = make_session(topic_alias_maximum=2)
    subscribe_all(session, broker)
    session.receive_data(data)
    try:
        session.events()
    except ProtocolError:
        pass
