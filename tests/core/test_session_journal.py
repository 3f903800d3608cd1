"""The session's journal and `restore`: its durable state as data (issue #11, part 2).

The journal records every change a session store must keep, in order, and
`apply_changes` (the reference semantics every store follows) folds them into a
`StoredSession`; `restore` hands that state to a new session, which then resumes
as if it had never stopped: PUBREL for what the broker received, PUBLISH with
DUP=1 for the rest [MQTT-4.4.0-1], no second delivery of an incoming QoS 2
message before its PUBREL.
"""

from __future__ import annotations

import pytest

from tests._broker_session import ScriptedBroker
from tests.core.test_session_flow import ack, feed, make_session, resume
from trio_mqttconn._enums import ProtocolVersion, QoS, ReasonCode
from trio_mqttconn._events import Connected, MessageReceived, PublishCompleted
from trio_mqttconn._exceptions import InvalidStateError
from trio_mqttconn._journal import (
    ChangeKind,
    SessionChange,
    StoredSession,
    apply_changes,
)
from trio_mqttconn._packets import (
    ConnAckPacket,
    ConnectPacket,
    PubCompPacket,
    PublishPacket,
    PubRecPacket,
    PubRelPacket,
    TopicSubscription,
)
from trio_mqttconn._properties import Properties
from trio_mqttconn._session import ClientSession

V5 = ProtocolVersion.V5
QOS1 = QoS.AT_LEAST_ONCE
QOS2 = QoS.EXACTLY_ONCE
PUBACK, PUBREC, PUBREL, PUBCOMP = 0x40, 0x50, 0x62, 0x70


def kinds(session: ClientSession) -> list[tuple[ChangeKind, int]]:
    return [(c.kind, c.packet_id) for c in session.take_journal()]


def test_journal_is_empty_without_journal() -> None:
    session, _ = make_session()
    session.publish("t", b"x", qos=QOS1)
    assert session.take_journal() == []


def test_journal_outgoing_qos1_and_qos2() -> None:
    session, _ = make_session(journal=True)
    one, _ = session.publish("t/1", b"a", qos=QOS1)
    two, _ = session.publish("t/2", b"b", qos=QOS2)
    session.publish("t/0", b"c")  # QoS 0: nothing durable
    changes = session.take_journal()
    assert [(c.kind, c.packet_id) for c in changes] == [
        (ChangeKind.STORED, one),
        (ChangeKind.STORED, two),
    ]
    assert changes[0].packet is not None
    assert changes[0].packet.payload == b"a"
    assert session.take_journal() == []
    assert one is not None
    assert two is not None
    feed(session, ack(PUBACK, one) + ack(PUBREC, two))
    assert kinds(session) == [
        (ChangeKind.COMPLETED, one),
        (ChangeKind.RELEASED, two),
    ]
    feed(session, ack(PUBCOMP, two))
    assert kinds(session) == [(ChangeKind.COMPLETED, two)]


def test_journal_refused_pubrec_completes() -> None:
    session, broker = make_session(journal=True)
    packet_id, _ = session.publish("t", b"x", qos=QOS2)
    session.take_journal()
    assert packet_id is not None
    broker.send(
        session,
        PubRecPacket(packet_id=packet_id, reason_code=ReasonCode.QUOTA_EXCEEDED),
    )
    assert kinds(session) == [(ChangeKind.COMPLETED, packet_id)]


def test_journal_incoming_qos2_until_pubrel() -> None:
    session, broker = make_session(journal=True)
    session.subscribe([TopicSubscription(filter="t", qos=QOS2)])
    session.take_journal()
    events = broker.send(
        session, PublishPacket(topic="t", payload=b"m", qos=QOS2, packet_id=7)
    )
    assert isinstance(events[0], MessageReceived)
    # A re-delivery before PUBREL is not recorded (nor delivered) again.
    assert (
        broker.send(
            session,
            PublishPacket(topic="t", payload=b"m", qos=QOS2, packet_id=7, dup=True),
        )
        == []
    )
    assert kinds(session) == [(ChangeKind.RECEIVED, 7)]
    broker.send(session, PubRelPacket(packet_id=7))
    assert kinds(session) == [(ChangeKind.FORGOTTEN, 7)]


def test_journal_deferred_pubrec_journals_the_id_when_released() -> None:
    # An id is stored only once its PUBREC goes out: a process killed while the
    # message waited for its consumer gets it again from the broker after the
    # restart, instead of dropping the re-delivery as a duplicate.
    session, broker = make_session(journal=True, defer_acks=True)
    session.subscribe([TopicSubscription(filter="t", qos=QOS2)])
    session.take_journal()
    broker.send(session, PublishPacket(topic="t", payload=b"m", qos=QOS2, packet_id=3))
    assert session.take_journal() == []
    assert session.take_owed_acks() == [(3, 2)]
    session.release_ack(3, 2)
    assert kinds(session) == [(ChangeKind.RECEIVED, 3)]
    broker.send(session, PublishPacket(topic="t", payload=b"q", qos=QOS1, packet_id=4))
    session.release_owed_acks()
    assert session.take_journal() == []


def test_journal_subscriptions() -> None:
    session, _ = make_session(journal=True)
    subs = [TopicSubscription(filter="a/#", qos=QOS1), TopicSubscription(filter="b")]
    session.subscribe(subs)
    session.unsubscribe(["a/#"])
    changes = session.take_journal()
    assert [(c.kind, c.subscription) for c in changes] == [
        (ChangeKind.SUBSCRIBED, subs[0]),
        (ChangeKind.SUBSCRIBED, subs[1]),
        (ChangeKind.UNSUBSCRIBED, TopicSubscription(filter="a/#")),
    ]


def test_journal_withdraw_completes() -> None:
    session, _ = make_session(journal=True)
    packet_id, _ = session.publish("t", b"x", qos=QOS1)
    assert session.withdraw(packet_id)
    assert kinds(session) == [
        (ChangeKind.STORED, packet_id),
        (ChangeKind.COMPLETED, packet_id),
    ]


def test_journal_lost_session_settles_released_and_incoming() -> None:
    session, broker = make_session(journal=True)
    session.subscribe([TopicSubscription(filter="t", qos=QOS2)])
    one, _ = session.publish("t", b"1", qos=QOS2)
    two, _ = session.publish("t", b"2", qos=QOS1)
    assert one is not None
    assert two is not None
    feed(session, ack(PUBREC, one))
    broker.send(session, PublishPacket(topic="t", payload=b"m", qos=QOS2, packet_id=9))
    session.take_journal()
    events = resume(session, broker, session_present=False)
    connected = events[0]
    assert isinstance(connected, Connected)
    assert [p.packet_id for p in connected.discarded] == [two]
    # The discarded message stays stored until the engine publishes it again.
    assert kinds(session) == [
        (ChangeKind.COMPLETED, one),
        (ChangeKind.FORGOTTEN, 9),
    ]
    session.forget(two)
    assert kinds(session) == [(ChangeKind.COMPLETED, two)]


def test_journal_ids_of_discarded_messages_are_not_reused_until_forgotten() -> None:
    # A discarded message stays stored under its id until the engine published it
    # again; a republish of another message must not take that id, or the store
    # would replace one message by the other (and lose it on a crash).
    session, broker = make_session(journal=True)
    ids = [session.publish("t", b"%d" % n, qos=QOS1)[0] for n in range(3)]
    assert ids == [1, 2, 3]
    feed(session, ack(PUBACK, 3))
    session._next_id = 1  # as after a wrap-around: the next free id is 1
    session.take_journal()
    resume(session, broker, session_present=False)
    new, _ = session.publish("t", b"0", qos=QOS1)
    assert new == 3  # 1 and 2 are still the stored messages' ids
    session.forget(1)
    assert kinds(session) == [
        (ChangeKind.STORED, 3),
        (ChangeKind.COMPLETED, 1),
    ]
    session._next_id = 1
    again, _ = session.publish("t", b"1", qos=QOS1)
    assert again == 1  # free again once forgotten


def test_journal_forget_without_journal_does_nothing() -> None:
    session, _ = make_session()
    session.forget(1)
    assert session.take_journal() == []


def test_journal_given_up_resend_completes() -> None:
    session, broker = make_session(journal=True)
    packet_id, _ = session.publish("t", b"x" * 100, qos=QOS1)
    session.take_journal()
    events = resume(session, broker, connack=Properties(maximum_packet_size=50))
    assert any(isinstance(e, PublishCompleted) and e.error for e in events)
    assert kinds(session) == [(ChangeKind.COMPLETED, packet_id)]


def _replay(session: ClientSession) -> StoredSession:
    return apply_changes(StoredSession(), session.take_journal())


def test_restore_resumes_where_the_earlier_process_stopped() -> None:
    first, broker = make_session(journal=True)
    first.subscribe([TopicSubscription(filter="in", qos=QOS2)])
    done, _ = first.publish("t", b"done", qos=QOS1)
    acked, _ = first.publish("t", b"rec", qos=QOS2)
    waiting, _ = first.publish("t", b"wait", qos=QOS1)
    assert done is not None
    assert acked is not None
    assert waiting is not None
    feed(first, ack(PUBACK, done) + ack(PUBREC, acked))
    broker.send(first, PublishPacket(topic="in", payload=b"m", qos=QOS2, packet_id=5))
    stored = _replay(first)
    assert [p.payload for p in stored.outgoing] == [b"rec", b"wait"]
    assert stored.released == (acked,)
    assert stored.incoming_qos2 == (5,)
    assert not stored.empty

    # The process is killed; a new one takes the stored state up.
    second = ClientSession(protocol_version=V5, journal=True)
    second.restore(stored)
    assert second.inflight == 2
    broker.new_connection()
    broker.receive_one(
        second.connect(ConnectPacket(client_id="client", clean_start=False))
    )
    events = broker.send(second, ConnAckPacket(session_present=True))
    assert isinstance(events[0], Connected)
    assert events[0].resent == 2
    resent = broker.receive(second.data_to_send())
    assert isinstance(resent[0], PubRelPacket)
    assert resent[0].packet_id == acked
    assert isinstance(resent[1], PublishPacket)
    assert resent[1].dup
    assert resent[1].packet_id == waiting
    # The broker re-delivers its QoS 2 message: acknowledged, not delivered again.
    assert (
        broker.send(
            second,
            PublishPacket(topic="in", payload=b"m", qos=QOS2, packet_id=5, dup=True),
        )
        == []
    )
    assert second.take_journal() == []
    # New packet ids do not collide with restored ones.
    new_id, _ = second.publish("t", b"new", qos=QOS1)
    assert new_id not in (acked, waiting)
    broker.send(second, PubCompPacket(packet_id=acked))
    assert kinds(second) == [
        (ChangeKind.STORED, new_id),
        (ChangeKind.COMPLETED, acked),
    ]


def test_restore_empty_state() -> None:
    session = ClientSession(journal=True)
    session.restore(StoredSession())
    assert session.inflight == 0


def test_restore_refused_after_connecting() -> None:
    session, _ = make_session(journal=True)
    with pytest.raises(InvalidStateError, match="before the first connect"):
        session.restore(StoredSession())


@pytest.mark.parametrize(
    ("stored", "match"),
    [
        (
            StoredSession(outgoing=(PublishPacket(topic="t", payload=b""),)),
            "not a QoS 1/2 PUBLISH",
        ),
        (StoredSession(released=(3,)), "names no stored QoS 2 message"),
        (
            StoredSession(
                outgoing=(
                    PublishPacket(topic="t", payload=b"", qos=QOS1, packet_id=3),
                ),
                released=(3,),
            ),
            "names no stored QoS 2 message",
        ),
    ],
)
def test_restore_refuses_inconsistent_state(stored: StoredSession, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        ClientSession().restore(stored)


def test_restored_subscriptions_bound_the_qos_accepted() -> None:
    session = ClientSession(protocol_version=V5)
    session.restore(
        StoredSession(subscriptions=(TopicSubscription(filter="a", qos=QOS1),))
    )
    broker = ScriptedBroker(V5)
    broker.receive_one(session.connect(ConnectPacket(client_id="c", clean_start=False)))
    broker.send(session, ConnAckPacket(session_present=False))
    assert session.state.name == "CONNECTED"


def test_apply_changes_folds_in_order() -> None:
    packet = PublishPacket(topic="t", payload=b"1", qos=QOS2, packet_id=1)
    again = PublishPacket(topic="t", payload=b"2", qos=QOS1, packet_id=1)
    sub = TopicSubscription(filter="f", qos=QOS1)
    state = apply_changes(
        StoredSession(),
        [
            SessionChange(ChangeKind.STORED, 1, packet),
            SessionChange(ChangeKind.RELEASED, 1),
            SessionChange(ChangeKind.RELEASED, 2),  # not stored: nothing to release
            SessionChange(ChangeKind.RECEIVED, 4),
            SessionChange(ChangeKind.SUBSCRIBED, subscription=sub),
            SessionChange(
                ChangeKind.SUBSCRIBED, subscription=TopicSubscription(filter="g")
            ),
        ],
    )
    assert state.released == (1,)
    assert state.incoming_qos2 == (4,)
    # Storing an id again replaces the message and its PUBREC state.
    state = apply_changes(
        state,
        (
            SessionChange(ChangeKind.COMPLETED, 1),
            SessionChange(ChangeKind.STORED, 1, again),
            SessionChange(ChangeKind.FORGOTTEN, 4),
            SessionChange(
                ChangeKind.UNSUBSCRIBED, subscription=TopicSubscription(filter="f")
            ),
        ),
    )
    assert state.outgoing == (again,)
    assert state.released == ()
    assert state.incoming_qos2 == ()
    assert [s.filter for s in state.subscriptions] == ["g"]
    state = apply_changes(state, [SessionChange(ChangeKind.STORED, 1, packet)])
    assert state.outgoing == (packet,)
    assert StoredSession().empty
