"""The session under a stricter or resumed connection: quota, limits, withdrawal.

Re-sends within the new Receive Maximum, limits that fail one publish with a
`PublishLimitError`, subscription identifiers only when the broker has them, the
client's own outgoing packet size limit, withdrawing unwritten packets, CONNACK
details, and packet ids never shared (issue #9).
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import settings, strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
)

from tests._broker_session import ScriptedBroker
from trio_mqttconn._enums import ProtocolVersion, QoS, ReasonCode
from trio_mqttconn._events import (
    ConnAckInfo,
    Connected,
    Event,
    PublishCompleted,
)
from trio_mqttconn._exceptions import (
    InvalidStateError,
    MalformedPacketError,
    ProtocolError,
    PublishError,
    PublishLimitError,
)
from trio_mqttconn._packets import (
    ConnAckPacket,
    ConnectPacket,
    PubAckPacket,
    PubCompPacket,
    PublishPacket,
    PubRecPacket,
    SubAckPacket,
    SubscribePacket,
    TopicSubscription,
    UnsubAckPacket,
)
from trio_mqttconn._properties import EMPTY_PROPERTIES, Properties
from trio_mqttconn._session import ClientSession, SessionState

V5 = ProtocolVersion.V5
V311 = ProtocolVersion.V311
BOTH = pytest.mark.parametrize("version", [V311, V5], ids=["v311", "v5"])
QOS0 = QoS.AT_MOST_ONCE
QOS1 = QoS.AT_LEAST_ONCE
QOS2 = QoS.EXACTLY_ONCE


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


def resume(
    session: ClientSession,
    broker: ScriptedBroker,
    *,
    session_present: bool = True,
    connack: Properties = EMPTY_PROPERTIES,
) -> list[Event]:
    """Lose the connection, connect with clean start = 0; return CONNACK's events."""
    session.connection_lost()
    broker.new_connection()
    broker.receive_one(
        session.connect(
            ConnectPacket(
                client_id="client", protocol_version=broker.version, clean_start=False
            )
        )
    )
    return broker.send(
        session,
        ConnAckPacket(
            session_present=session_present,
            reason_code=ReasonCode.SUCCESS,
            properties=connack,
        ),
    )


def ack(kind: int, packet_id: int) -> bytes:
    return bytes([kind, 2]) + packet_id.to_bytes(2, "big")


def feed(session: ClientSession, data: bytes) -> list[Event]:
    session.receive_data(data)
    return session.events()


def sent_ids(broker: ScriptedBroker, session: ClientSession) -> list[Any]:
    """What the session queued, as (kind, packet id) pairs."""
    return [
        (type(packet).__name__, getattr(packet, "packet_id", None))
        for packet in broker.receive(session.data_to_send())
    ]


# ---------------------------------------------------------------------------
# re-sends within the new connection's Receive Maximum [v5:MQTT-3.3.4-7]


def test_resend_honours_the_new_receive_maximum() -> None:
    session, broker = make_session()
    for n in range(5):
        session.publish(f"t/{n}", b"x", qos=QOS1)
    (connected,) = resume(session, broker, connack=Properties(receive_maximum=2))
    assert isinstance(connected, Connected)
    assert connected.resent == 2
    assert sent_ids(broker, session) == [("PublishPacket", 1), ("PublishPacket", 2)]
    assert session.resends_waiting == 3
    assert session.inflight == 5
    assert session.send_quota == 0  # new publishes wait behind the re-sends
    # Each acknowledgement releases the next re-send, in publish order.
    assert feed(session, ack(0x40, 1)) == [PublishCompleted(packet_id=1)]
    assert sent_ids(broker, session) == [("PublishPacket", 3)]
    feed(session, ack(0x40, 3) + ack(0x40, 2))
    assert sent_ids(broker, session) == [("PublishPacket", 4), ("PublishPacket", 5)]
    assert all(p.dup for p in broker.received if isinstance(p, PublishPacket))
    assert session.resends_waiting == 0
    assert session.send_quota == 0
    feed(session, ack(0x40, 4))
    assert session.send_quota == 1
    assert session.data_to_send() == b""


def test_resend_counts_pubrel_in_the_quota_but_always_sends_them() -> None:
    # PUBRELs are never held back [v5:MQTT-3.3.4-8]; their messages still count.
    session, broker = make_session()
    session.publish("a", b"1", qos=QOS2)  # 1
    session.publish("b", b"2", qos=QOS2)  # 2
    session.publish("c", b"3", qos=QOS1)  # 3
    session.publish("d", b"4", qos=QOS2)  # 4
    feed(session, ack(0x50, 2) + ack(0x50, 1))
    session.data_to_send()
    (connected,) = resume(session, broker, connack=Properties(receive_maximum=3))
    assert isinstance(connected, Connected)
    assert connected.resent == 3
    assert sent_ids(broker, session) == [
        ("PubRelPacket", 2),
        ("PubRelPacket", 1),
        ("PublishPacket", 3),
    ]
    assert session.resends_waiting == 1
    # PUBCOMP frees a slot: the held QoS 2 re-send goes.
    feed(session, ack(0x70, 1))
    assert sent_ids(broker, session) == [("PublishPacket", 4)]


def test_resend_released_by_a_failed_pubrec() -> None:
    session, broker = make_session()
    session.publish("a", b"1", qos=QOS2)
    session.publish("b", b"2", qos=QOS1)
    resume(session, broker, connack=Properties(receive_maximum=1))
    assert sent_ids(broker, session) == [("PublishPacket", 1)]
    events = broker.send(
        session,
        PubRecPacket(packet_id=1, reason_code=ReasonCode.QUOTA_EXCEEDED),
    )
    assert events == [
        PublishCompleted(packet_id=1, reason_code=ReasonCode.QUOTA_EXCEEDED)
    ]
    assert sent_ids(broker, session) == [("PublishPacket", 2)]


def test_resend_held_message_acknowledged_is_not_sent_again() -> None:
    # A broker that acknowledges a message we held (it had it already): the
    # acknowledgement completes it and it is never re-sent; after PUBREC only
    # PUBREL may follow [v5:MQTT-4.3.3-6].
    session, broker = make_session()
    session.publish("a", b"1", qos=QOS1)  # 1
    session.publish("b", b"2", qos=QOS1)  # 2 held
    session.publish("c", b"3", qos=QOS2)  # 3 held
    session.publish("d", b"4", qos=QOS1)  # 4 held
    resume(session, broker, connack=Properties(receive_maximum=1))
    assert sent_ids(broker, session) == [("PublishPacket", 1)]
    assert feed(session, ack(0x40, 2)) == [PublishCompleted(packet_id=2)]
    assert feed(session, ack(0x50, 3)) == []
    assert sent_ids(broker, session) == [("PubRelPacket", 3)]
    assert session.resends_waiting == 1
    feed(session, ack(0x40, 1))
    assert sent_ids(broker, session) == []  # 3 awaits PUBCOMP: no room yet
    feed(session, ack(0x70, 3))
    assert sent_ids(broker, session) == [("PublishPacket", 4)]
    assert session.resends_waiting == 0


def test_resend_held_messages_wait_for_the_next_connection() -> None:
    session, broker = make_session()
    for n in range(3):
        session.publish(f"t/{n}", b"x", qos=QOS1)
    resume(session, broker, connack=Properties(receive_maximum=1))
    assert session.resends_waiting == 2
    session.disconnect()
    assert session.resends_waiting == 0
    assert session.data_to_send() == b""
    (connected,) = resume(session, broker)
    assert isinstance(connected, Connected)
    assert connected.resent == 3
    assert [p for _, p in sent_ids(broker, session)] == [1, 2, 3]


@BOTH
def test_resend_without_receive_maximum_sends_all(version: ProtocolVersion) -> None:
    session, broker = make_session(version)
    for _ in range(4):
        session.publish("a", b"", qos=QOS1)
    (connected,) = resume(session, broker)
    assert isinstance(connected, Connected)
    assert connected.resent == 4
    assert session.resends_waiting == 0
    assert len(broker.receive(session.data_to_send())) == 4


# ---------------------------------------------------------------------------
# re-sends that break a limit of the new connection are given up, not sent


@pytest.mark.parametrize(
    ("connack", "limit", "reason_code", "message"),
    [
        (
            Properties(maximum_packet_size=20),
            "maximum_packet_size",
            ReasonCode.PACKET_TOO_LARGE,
            "cannot re-send PUBLISH 2 to 'big': PublishPacket of 42 bytes exceeds "
            "the broker's maximum packet size of 20 bytes; send less data",
        ),
        (
            Properties(maximum_qos=1),
            "maximum_qos",
            ReasonCode.QOS_NOT_SUPPORTED,
            "cannot re-send PUBLISH 2 to 'big': qos 2 is above the broker's maximum "
            "QoS 1; publish it again with qos <= 1",
        ),
        (
            Properties(retain_available=0),
            "retain_available",
            ReasonCode.RETAIN_NOT_SUPPORTED,
            "cannot re-send PUBLISH 2 to 'big': the broker does not support retained "
            "messages; publish it again with retain=False",
        ),
    ],
)
def test_resend_breaking_a_new_limit_fails_that_publish(
    connack: Properties, limit: str, reason_code: ReasonCode, message: str
) -> None:
    # [v5:MQTT-3.2.2-11] [v5:MQTT-3.2.2-14] [v5:MQTT-3.2.2-15]
    session, broker = make_session()
    session.publish("a", b"", qos=QOS1)
    session.publish("big", b"x" * 32, qos=QOS2, retain=True)
    session.publish("c", b"", qos=QOS1)
    events = resume(session, broker, connack=connack)
    assert len(events) == 2
    connected, failed = events
    assert isinstance(connected, Connected)
    assert connected.resent == 2
    assert failed == PublishCompleted(packet_id=2, reason_code=reason_code)
    assert isinstance(failed, PublishCompleted)
    error = failed.error
    assert isinstance(error, PublishLimitError)
    assert isinstance(error, PublishError)
    assert error.limit == limit
    assert error.reason_code == reason_code
    assert str(error) == message
    assert sent_ids(broker, session) == [("PublishPacket", 1), ("PublishPacket", 3)]
    assert [p.packet_id for p in session.pending_publishes()] == [1, 3]


def test_resend_within_limits_checks_every_message() -> None:
    session, broker = make_session()
    session.publish("a", b"x", qos=QOS2, retain=True)
    events = resume(
        session,
        broker,
        connack=Properties(maximum_packet_size=100, retain_available=1),
    )
    assert len(events) == 1
    assert sent_ids(broker, session) == [("PublishPacket", 1)]


# ---------------------------------------------------------------------------
# publish() against the limits: PublishLimitError, a PublishError and a ValueError


@pytest.mark.parametrize(
    ("connack", "kwargs", "limit", "reason_code", "message"),
    [
        (
            Properties(maximum_qos=0),
            {"qos": QOS1},
            "maximum_qos",
            ReasonCode.QOS_NOT_SUPPORTED,
            "qos 1 is above the broker's maximum QoS 0; publish with qos <= 0",
        ),
        (
            Properties(retain_available=0),
            {"retain": True},
            "retain_available",
            ReasonCode.RETAIN_NOT_SUPPORTED,
            "the broker does not support retained messages; publish with retain=False",
        ),
        (
            Properties(maximum_packet_size=20),
            {"qos": QOS1},
            "maximum_packet_size",
            ReasonCode.PACKET_TOO_LARGE,
            "PublishPacket of 32 bytes exceeds the broker's maximum packet size of "
            "20 bytes; send less data",
        ),
        (
            Properties(maximum_packet_size=20),
            {},
            "maximum_packet_size",
            ReasonCode.PACKET_TOO_LARGE,
            "PublishPacket of 30 bytes exceeds the broker's maximum packet size of "
            "20 bytes; send less data",
        ),
    ],
)
def test_publish_breaking_a_limit_raises_publish_limit_error(
    connack: Properties,
    kwargs: dict[str, Any],
    limit: str,
    reason_code: ReasonCode,
    message: str,
) -> None:
    session, _ = make_session(connack=connack)
    with pytest.raises(PublishLimitError) as info:
        session.publish("topic", b"x" * 20, **kwargs)
    assert isinstance(info.value, ValueError)
    assert isinstance(info.value, PublishError)
    assert info.value.limit == limit
    assert info.value.reason_code == reason_code
    assert info.value.code == "PUBLISH_FAILED"
    assert str(info.value) == message
    assert session.inflight == 0


def test_republish_after_a_lost_session_to_a_stricter_broker() -> None:
    # The broker lost the session and is stricter now: the engine publishes the
    # discarded messages again; only the ones breaking a limit fail, each with
    # the limit named.
    session, broker = make_session()
    session.publish("ok", b"", qos=QOS1)
    session.publish("qos", b"", qos=QOS2)
    session.publish("retain", b"", qos=QOS1, retain=True)
    session.publish("size", b"z" * 50, qos=QOS1)
    (connected,) = resume(
        session,
        broker,
        session_present=False,
        connack=Properties(maximum_qos=1, retain_available=0, maximum_packet_size=40),
    )
    assert isinstance(connected, Connected)
    limits: dict[str, str | None] = {}
    for packet in connected.discarded:
        try:
            session.publish(
                packet.topic, packet.payload, qos=packet.qos, retain=packet.retain
            )
        except PublishLimitError as exc:
            limits[packet.topic] = exc.limit
        else:
            limits[packet.topic] = None
    assert limits == {
        "ok": None,
        "qos": "maximum_qos",
        "retain": "retain_available",
        "size": "maximum_packet_size",
    }
    assert session.inflight == 1


# ---------------------------------------------------------------------------
# the client's own outgoing limit (poison messages on MQTT 3.1.1)


@BOTH
def test_maximum_outgoing_packet_size(version: ProtocolVersion) -> None:
    session, _ = make_session(version, maximum_outgoing_packet_size=16)
    _, data = session.publish("t", b"x" * 10)
    assert len(data) <= 16
    for qos in (QOS0, QOS1):
        with pytest.raises(PublishLimitError) as info:
            session.publish("t", b"x" * 16, qos=qos)
        assert info.value.limit == "maximum_outgoing_packet_size"
        assert info.value.reason_code is ReasonCode.PACKET_TOO_LARGE
        assert "exceeds the session's maximum_outgoing_packet_size of 16 bytes" in str(
            info.value
        )
    assert session.inflight == 0
    with pytest.raises(ValueError, match=r"^SubscribePacket of \d+ bytes exceeds the"):
        session.subscribe([TopicSubscription(filter="x" * 20)])


def test_maximum_outgoing_packet_size_smaller_of_ours_and_the_brokers() -> None:
    session, _ = make_session(
        maximum_outgoing_packet_size=100, connack=Properties(maximum_packet_size=30)
    )
    with pytest.raises(PublishLimitError) as info:
        session.publish("t", b"x" * 40)
    assert info.value.limit == "maximum_packet_size"
    # Equal limits: the broker's is named.
    session, _ = make_session(
        maximum_outgoing_packet_size=30, connack=Properties(maximum_packet_size=30)
    )
    with pytest.raises(PublishLimitError) as info:
        session.publish("t", b"x" * 40)
    assert info.value.limit == "maximum_packet_size"
    session, _ = make_session(
        maximum_outgoing_packet_size=30, connack=Properties(maximum_packet_size=100)
    )
    with pytest.raises(PublishLimitError) as info:
        session.publish("t", b"x" * 40)
    assert info.value.limit == "maximum_outgoing_packet_size"


def test_maximum_outgoing_packet_size_applies_while_connecting() -> None:
    session = ClientSession(maximum_outgoing_packet_size=10)
    session.connect(ConnectPacket(client_id="c", properties=Properties()))
    with pytest.raises(
        ValueError,
        match=r"^DisconnectPacket of \d+ bytes exceeds the session's "
        r"maximum_outgoing_packet_size of 10 bytes; send less data$",
    ):
        session.disconnect(properties=Properties(reason_string="x" * 20))


# ---------------------------------------------------------------------------
# subscription identifiers only when the broker has them


def test_subscription_identifiers_available_by_default() -> None:
    assert ClientSession().subscription_identifier_available is True
    assert ClientSession(protocol_version=V311).subscription_identifier_available is (
        False
    )
    session, broker = make_session()
    assert session.subscription_identifier_available is True
    _, data = session.subscribe(
        [TopicSubscription(filter="a")],
        properties=Properties(subscription_identifiers=(7,)),
    )
    packet = broker.receive_one(data)
    assert isinstance(packet, SubscribePacket)
    assert packet.properties.subscription_identifiers == (7,)


def test_subscription_identifiers_refused_when_the_broker_has_none() -> None:
    session, broker = make_session(
        connack=Properties(subscription_identifier_available=0)
    )
    assert session.subscription_identifier_available is False
    with pytest.raises(
        ValueError,
        match=(
            r"^cannot send SubscribePacket with subscription identifier 7: the "
            r"broker does not support subscription identifiers \(CONNACK "
            r"Subscription Identifiers Available = 0\); remove "
            r"properties.subscription_identifiers$"
        ),
    ):
        session.subscribe(
            [TopicSubscription(filter="a")],
            properties=Properties(subscription_identifiers=(7,)),
        )
    # Without identifiers the SUBSCRIBE goes, and a new CONNACK decides again.
    session.subscribe([TopicSubscription(filter="a")])
    resume(session, broker)
    assert session.subscription_identifier_available is True


def test_subscription_identifiers_never_with_v311() -> None:
    session, _ = make_session(V311)
    assert session.subscription_identifier_available is False
    with pytest.raises(
        ValueError,
        match=r"subscription identifier 3: MQTT 3.1.1 has no subscription "
        r"identifiers; remove",
    ):
        session.subscribe(
            [TopicSubscription(filter="a")],
            properties=Properties(subscription_identifiers=(3,)),
        )


# ---------------------------------------------------------------------------
# withdrawing what was never written


def test_withdrawn_publishes_do_not_use_up_the_receive_maximum() -> None:
    # Issue #9: 25 publishes cancelled before their write used up a Receive
    # Maximum of 20 [v5:MQTT-3.3.4-7].
    session, broker = make_session(connack=Properties(receive_maximum=20))
    for _ in range(25):
        packet_id, _ = session.publish("a", b"", qos=QOS1)
        assert session.withdraw(packet_id) is True
    assert session.inflight == 0
    assert session.send_quota == 20
    packet_id, data = session.publish("a", b"", qos=QOS1)
    assert packet_id == 26
    broker.receive_one(data)
    assert feed(session, ack(0x40, packet_id)) == [
        PublishCompleted(packet_id=packet_id)
    ]
    # A completed publish has nothing left to withdraw.
    assert session.withdraw(packet_id) is False


@pytest.mark.parametrize("qos", [QOS0, QOS1, QOS2])
def test_withdrawn_publish_does_not_leave_its_topic_alias(qos: QoS) -> None:
    # Issue #9: the next publish went out as topic "" + alias 1 and the broker
    # closed the connection with 0x82 [v5:MQTT-3.3.2-7].
    session, broker = make_session(
        outgoing_topic_aliases=True, connack=Properties(topic_alias_maximum=2)
    )
    packet_id, _ = session.publish("a/b", b"never written", qos=qos)
    assert session.withdraw(packet_id, topic="a/b") is True
    _, data = session.publish("a/b", b"1")
    assert broker.receive_one(data) == PublishPacket(
        topic="a/b", payload=b"1", properties=Properties(topic_alias=1)
    )
    # Once stated again, the alias alone is used; a new topic takes alias 2.
    _, data = session.publish("a/b", b"2")
    assert broker.receive_one(data) == PublishPacket(
        topic="", payload=b"2", properties=Properties(topic_alias=1)
    )
    _, data = session.publish("c", b"3")
    assert broker.receive_one(data) == PublishPacket(
        topic="c", payload=b"3", properties=Properties(topic_alias=2)
    )


def test_withdraw_qos0_without_an_alias_has_nothing_to_forget() -> None:
    session, _ = make_session()
    assert session.withdraw(None, topic="a") is False
    assert session.withdraw(None) is False


def test_withdraw_subscribe_and_unsubscribe_frees_their_ids() -> None:
    session, broker = make_session()
    sub_id, _ = session.subscribe([TopicSubscription(filter="a")])
    unsub_id, _ = session.unsubscribe(["a"])
    assert session.withdraw(sub_id) is True
    assert session.withdraw(unsub_id) is True
    assert session.withdraw(sub_id) is False
    # The ids are unknown now: a SUBACK for one is a protocol error.
    session.receive_data(
        broker.encode(SubAckPacket(packet_id=sub_id, reason_codes=(ReasonCode(0),)))
    )
    with pytest.raises(Exception, match="unknown packet id 1"):
        session.events()


def test_withdraw_after_pubrec_is_refused() -> None:
    session, _ = make_session()
    packet_id, _ = session.publish("a", b"", qos=QOS2)
    assert packet_id == 1
    feed(session, ack(0x50, packet_id))
    with pytest.raises(
        InvalidStateError,
        match=(
            r"^cannot withdraw the PUBLISH with packet id 1 in state CONNECTED: "
            r"the broker acknowledged it with PUBREC, so it was sent$"
        ),
    ):
        session.withdraw(packet_id)
    assert session.inflight == 1


def test_withdraw_a_publish_while_disconnected() -> None:
    session, broker = make_session()
    packet_id, _ = session.publish("a", b"", qos=QOS1)
    session.send_failed()
    assert session.withdraw(packet_id) is True
    (connected,) = resume(session, broker)
    assert isinstance(connected, Connected)
    assert connected.resent == 0
    assert session.data_to_send() == b""


def test_withdraw_releases_a_held_resend() -> None:
    session, broker = make_session()
    for _ in range(3):
        session.publish("a", b"", qos=QOS1)
    resume(session, broker, connack=Properties(receive_maximum=1))
    assert sent_ids(broker, session) == [("PublishPacket", 1)]
    # Withdrawing a held one frees nothing on the wire...
    assert session.withdraw(2) is True
    assert sent_ids(broker, session) == []
    assert session.resends_waiting == 1
    # ...withdrawing the one in flight makes room for the next.
    assert session.withdraw(1) is True
    assert sent_ids(broker, session) == [("PublishPacket", 3)]
    assert session.resends_waiting == 0


# ---------------------------------------------------------------------------
# CONNACK details


def test_connack_details_v5() -> None:
    session = ClientSession()
    broker = ScriptedBroker(V5)
    connected = broker.handshake(
        session,
        ConnectPacket(client_id="", keepalive=60),
        properties=Properties(
            assigned_client_identifier="auto-1",
            server_keep_alive=30,
            receive_maximum=10,
            maximum_qos=1,
            retain_available=0,
            maximum_packet_size=1000,
            topic_alias_maximum=5,
            wildcard_subscription_available=0,
            subscription_identifier_available=0,
            shared_subscription_available=0,
        ),
    )
    assert connected.info == ConnAckInfo(
        session_present=False,
        client_id="auto-1",
        assigned_client_id="auto-1",
        keepalive=30,
        server_keep_alive=30,
        receive_maximum=10,
        maximum_qos=QOS1,
        retain_available=False,
        maximum_packet_size=1000,
        topic_alias_maximum=5,
        wildcard_subscription_available=False,
        subscription_identifier_available=False,
        shared_subscription_available=False,
    )


@BOTH
def test_connack_details_defaults(version: ProtocolVersion) -> None:
    _, broker = make_session(version)
    session = ClientSession(protocol_version=version)
    connected = broker.handshake(session)
    assert connected.info == ConnAckInfo(
        session_present=False,
        client_id="client",
        assigned_client_id=None,
        keepalive=60,
        server_keep_alive=None,
        receive_maximum=65535,
        maximum_qos=QOS2,
        retain_available=True,
        maximum_packet_size=None,
        topic_alias_maximum=0,
        wildcard_subscription_available=True,
        subscription_identifier_available=version is V5,
        shared_subscription_available=True,
    )
    # Not part of equality: events made by hand still compare equal.
    assert connected == Connected(
        session_present=False, client_id="client", keepalive=60
    )


# ---------------------------------------------------------------------------
# packet ids are never shared by two pending operations [v5:MQTT-2.2.1-3]


def test_packet_ids_wrap_past_ids_of_every_kind() -> None:
    session, broker = make_session()
    for _ in range(65533):
        packet_id, _ = session.publish("a", b"", qos=QOS1)
        session.withdraw(packet_id)
    # The next ids are 65534 and 65535; then 1 and 2, taken by other kinds.
    sub_id, _ = session.subscribe([TopicSubscription(filter="a")])
    unsub_id, _ = session.unsubscribe(["a"])
    assert (sub_id, unsub_id) == (65534, 65535)
    first, _ = session.publish("a", b"", qos=QOS1)
    assert first == 1
    sub2, _ = session.subscribe([TopicSubscription(filter="b")])
    assert sub2 == 2
    # 65534, 65535, 1, 2 are pending: the walk wraps 65535 -> 1 and skips them.
    feed(
        session,
        broker.encode(
            UnsubAckPacket(packet_id=65535, reason_codes=(ReasonCode.SUCCESS,))
        ),
    )
    assert session.publish("a", b"", qos=QOS1)[0] == 3
    for _ in range(65535 - 3 - 2):
        session.publish("a", b"", qos=QOS1)
    # Every id but 65534 (SUBSCRIBE) is taken by a publish or SUBSCRIBE 2 now.
    assert session.publish("a", b"", qos=QOS1)[0] == 65535
    with pytest.raises(InvalidStateError, match="all 65535 packet identifiers"):
        session.publish("a", b"", qos=QOS1)


class PacketIdMachine(RuleBasedStateMachine):
    """Random publish/subscribe/unsubscribe/acks/withdrawals/reconnects near 65535."""

    def __init__(self) -> None:
        super().__init__()
        self.session, self.broker = make_session(connack=Properties(receive_maximum=8))
        self.session._next_id = 65530
        self.publishes: set[int] = set()
        self.requests: dict[int, str] = {}

    def _new_id(self, packet_id: int | None) -> None:
        assert packet_id is not None
        assert 1 <= packet_id <= 65535
        assert packet_id not in self.publishes
        assert packet_id not in self.requests

    @precondition(lambda self: self.session.send_quota > 0)
    @rule(qos=st.sampled_from([QOS1, QOS2]))
    def publish(self, qos: QoS) -> None:
        packet_id, _ = self.session.publish("a", b"", qos=qos)
        self._new_id(packet_id)
        assert packet_id is not None
        self.publishes.add(packet_id)

    @rule()
    def subscribe(self) -> None:
        packet_id, _ = self.session.subscribe([TopicSubscription(filter="a")])
        self._new_id(packet_id)
        self.requests[packet_id] = "sub"

    @rule()
    def unsubscribe(self) -> None:
        packet_id, _ = self.session.unsubscribe(["a"])
        self._new_id(packet_id)
        self.requests[packet_id] = "unsub"

    @precondition(lambda self: self.publishes)
    @rule(data=st.data())
    def complete_publish(self, data: st.DataObject) -> None:
        packet_id = data.draw(st.sampled_from(sorted(self.publishes)))
        packet = next(
            p for p in self.session.pending_publishes() if p.packet_id == packet_id
        )
        if packet.qos == QOS1:
            packets: list[Any] = [PubAckPacket(packet_id=packet_id)]
        else:
            packets = [
                PubRecPacket(packet_id=packet_id),
                PubCompPacket(packet_id=packet_id),
            ]
        events = self.broker.send(self.session, *packets)
        assert events == [PublishCompleted(packet_id=packet_id)]
        self.session.data_to_send()
        self.publishes.remove(packet_id)

    @precondition(lambda self: self.requests)
    @rule(data=st.data())
    def complete_request(self, data: st.DataObject) -> None:
        packet_id = data.draw(st.sampled_from(sorted(self.requests)))
        kind = self.requests.pop(packet_id)
        if kind == "sub":
            reply: Any = SubAckPacket(
                packet_id=packet_id, reason_codes=(ReasonCode(0),)
            )
        else:
            reply = UnsubAckPacket(packet_id=packet_id, reason_codes=(ReasonCode(0),))
        (event,) = self.broker.send(self.session, reply)
        assert event.packet_id == packet_id  # type: ignore[union-attr]

    @precondition(lambda self: self.publishes or self.requests)
    @rule(data=st.data())
    def withdraw(self, data: st.DataObject) -> None:
        packet_id = data.draw(
            st.sampled_from(sorted(self.publishes | set(self.requests)))
        )
        assert self.session.withdraw(packet_id) is True
        self.publishes.discard(packet_id)
        self.requests.pop(packet_id, None)

    @rule()
    def reconnect(self) -> None:
        events = resume(
            self.session, self.broker, connack=Properties(receive_maximum=8)
        )
        assert isinstance(events[0], Connected)
        self.session.data_to_send()
        # SUBSCRIBE/UNSUBSCRIBE of the lost connection are forgotten.
        self.requests.clear()

    @invariant()
    def tables_match(self) -> None:
        assert {p.packet_id for p in self.session.pending_publishes()} == self.publishes
        assert self.session.state is SessionState.CONNECTED


TestPacketIdMachine = PacketIdMachine.TestCase
TestPacketIdMachine.settings = settings(max_examples=60, stateful_step_count=40)


# ---------------------------------------------------------------------------
# received PUBLISH with a wildcard in its topic [v5:MQTT-3.3.2-2]


@BOTH
@pytest.mark.parametrize("topic", ["a/+", "#", "a/#", "+/b", "x+y"])
def test_received_publish_with_wildcard_topic_is_protocol_error(
    version: ProtocolVersion, topic: str
) -> None:
    session, _ = make_session(version)
    # Our encoder refuses such a topic only in the session; write it by hand.
    raw = topic.encode()
    session.receive_data(
        bytes([0x30, 2 + len(raw) + (version is V5)])
        + len(raw).to_bytes(2, "big")
        + raw
        + (b"\x00" if version is V5 else b"")
    )
    with pytest.raises(ProtocolError) as info:
        session.events()
    assert not isinstance(info.value, MalformedPacketError)
    assert info.value.reason_code is ReasonCode.PROTOCOL_ERROR
    assert str(info.value) == (
        f"PUBLISH has a wildcard ('+' or '#') in its topic name {topic!r}"
    )


def test_resend_given_up_is_reported_right_after_connected() -> None:
    # CONNACK and an acknowledgement in one read: the given-up re-send comes
    # between Connected and the acknowledgement's event.
    session, broker = make_session()
    session.publish("a", b"", qos=QOS1)
    session.publish("b", b"z" * 64, qos=QOS1)
    session.connection_lost()
    broker.new_connection()
    broker.receive_one(
        session.connect(ConnectPacket(client_id="client", clean_start=False))
    )
    events = broker.send(
        session,
        ConnAckPacket(
            session_present=True, properties=Properties(maximum_packet_size=40)
        ),
        PubAckPacket(packet_id=1),
    )
    assert [type(e).__name__ for e in events] == [
        "Connected",
        "PublishCompleted",
        "PublishCompleted",
    ]
    assert [e.packet_id for e in events[1:]] == [2, 1]  # type: ignore[union-attr]
    assert session.inflight == 0
