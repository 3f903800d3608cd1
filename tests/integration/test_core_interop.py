"""Interop of the sans-IO core with a real mosquitto, over a plain blocking socket.

Every packet sent here is made by our encoder, and every reply is decoded by our
decoder: if either side of the codec disagrees with the broker, these tests fail.
They play a complete client by hand (acknowledgements included) for MQTT 3.1.1 and
5.0, at QoS 0, 1 and 2.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

import attrs
import pytest

from tests._rawclient import RawClient, SessionClient
from trio_mqttconn import Properties, ProtocolVersion, QoS, ReasonCode, Will
from trio_mqttconn._events import (
    Connected,
    MessageReceived,
    PongReceived,
    PublishCompleted,
    Subscribed,
)
from trio_mqttconn._packets import (
    ConnAckPacket,
    ConnectPacket,
    DisconnectPacket,
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
)
from trio_mqttconn._session import ClientSession

if TYPE_CHECKING:
    from collections.abc import Iterator

    from trio_mqttconn.testing import Mosquitto

pytestmark = pytest.mark.broker

V311 = ProtocolVersion.V311
V5 = ProtocolVersion.V5
GRANTED = {
    QoS.AT_MOST_ONCE: ReasonCode.GRANTED_QOS_0,
    QoS.AT_LEAST_ONCE: ReasonCode.GRANTED_QOS_1,
    QoS.EXACTLY_ONCE: ReasonCode.GRANTED_QOS_2,
}


@pytest.fixture(params=[V311, V5], ids=["v311", "v5"])
def version(request: pytest.FixtureRequest) -> ProtocolVersion:
    """Each interop test runs for MQTT 3.1.1 and MQTT 5.0."""
    return ProtocolVersion(request.param)


def new_client_id() -> str:
    return f"interop-{uuid.uuid4().hex[:16]}"


def open_client(
    broker: Mosquitto,
    version: ProtocolVersion,
    *,
    client_id: str | None = None,
    clean_start: bool = True,
    properties: Properties | None = None,
    will: Will | None = None,
    port: int | None = None,
    username: str | None = None,
    password: bytes | None = None,
) -> tuple[RawClient, ConnAckPacket]:
    """Open a socket, send CONNECT and return the client with its CONNACK."""
    client = RawClient(broker.host, port or broker.port, version)
    try:
        connack = client.connect(
            ConnectPacket(
                client_id=new_client_id() if client_id is None else client_id,
                protocol_version=version,
                clean_start=clean_start,
                keepalive=30,
                username=username,
                password=password,
                will=will,
                properties=properties or Properties(),
            )
        )
    except BaseException:
        client.close()
        raise
    return client, connack


@pytest.fixture
def client(mosquitto: Mosquitto, version: ProtocolVersion) -> Iterator[RawClient]:
    """A connected raw client (clean start)."""
    raw, connack = open_client(mosquitto, version)
    assert connack.reason_code == ReasonCode.SUCCESS
    with raw:
        yield raw


def subscribe(
    client: RawClient,
    topic_filter: str,
    qos: QoS,
    packet_id: int = 1,
    properties: Properties | None = None,
) -> None:
    client.send(
        SubscribePacket(
            packet_id=packet_id,
            subscriptions=(TopicSubscription(filter=topic_filter, qos=qos),),
            properties=properties or Properties(),
        )
    )
    suback = client.receive_type(SubAckPacket)
    assert suback == SubAckPacket(packet_id=packet_id, reason_codes=(GRANTED[qos],))


def ping(client: RawClient) -> None:
    """Round trip a PINGREQ: every reply the broker owed before it has arrived."""
    client.send(PingReqPacket())
    assert client.receive() == PingRespPacket()


def receive_messages(client: RawClient, count: int) -> list[PublishPacket]:
    """Receive *count* PUBLISH and play the QoS protocol for each to the end.

    QoS 1: PUBACK. QoS 2: PUBREC, then PUBREL from the broker, then PUBCOMP. The
    broker may send the next PUBLISH before the PUBREL of the last one.
    """
    messages: list[PublishPacket] = []
    awaiting_pubrel: set[int] = set()
    while len(messages) < count or awaiting_pubrel:
        packet = client.receive()
        if isinstance(packet, PubRelPacket):
            assert packet.packet_id in awaiting_pubrel, f"unexpected {packet!r}"
            awaiting_pubrel.remove(packet.packet_id)
            client.send(PubCompPacket(packet_id=packet.packet_id))  # [v5:MQTT-4.3.3-11]
            continue
        assert isinstance(packet, PublishPacket), f"unexpected {packet!r}"
        assert len(messages) < count, f"unexpected {packet!r}"
        messages.append(packet)
        if packet.qos == QoS.AT_LEAST_ONCE:
            assert packet.packet_id is not None
            client.send(PubAckPacket(packet_id=packet.packet_id))  # [v5:MQTT-4.3.2-4]
        elif packet.qos == QoS.EXACTLY_ONCE:
            assert packet.packet_id is not None
            awaiting_pubrel.add(packet.packet_id)
            client.send(PubRecPacket(packet_id=packet.packet_id))  # [v5:MQTT-4.3.3-9]
        else:
            assert packet.packet_id is None  # [v5:MQTT-2.2.1-2]
    return messages


def receive_message(client: RawClient) -> PublishPacket:
    """Receive one PUBLISH and play its QoS protocol to the end."""
    (message,) = receive_messages(client, 1)
    return message


# ---------------------------------------------------------------------------
# CONNECT / CONNACK


def test_interop_connect_clean_start_accepted(
    mosquitto: Mosquitto, version: ProtocolVersion
) -> None:
    client, connack = open_client(mosquitto, version)
    with client:
        assert connack.reason_code == ReasonCode.SUCCESS
        assert connack.session_present is False  # [v5:MQTT-3.2.2-2]
        if version == V5:
            # mosquitto announces its limits; the decoder must have read them
            assert connack.properties.topic_alias_maximum == 10
        else:
            assert connack.properties == Properties()
        ping(client)
        client.disconnect()


def test_interop_connect_empty_client_id(
    mosquitto: Mosquitto, version: ProtocolVersion
) -> None:
    client, connack = open_client(mosquitto, version, client_id="")
    with client:
        assert connack.reason_code == ReasonCode.SUCCESS
        assigned = connack.properties.assigned_client_identifier
        if version == V5:
            assert assigned is not None
            assert assigned.startswith("auto-")
        else:
            assert assigned is None
        client.disconnect()


def test_interop_connect_wrong_password_refused(
    mosquitto: Mosquitto, version: ProtocolVersion
) -> None:
    client, connack = open_client(
        mosquitto,
        version,
        port=mosquitto.auth_port,
        username=mosquitto.username,
        password=b"not-the-password",
    )
    with client:
        # 3.1.1 return codes 4/5 are mapped onto the MQTT 5 reason codes
        assert connack.reason_code in {
            ReasonCode.BAD_USER_NAME_OR_PASSWORD,
            ReasonCode.NOT_AUTHORIZED,
        }
        assert connack.session_present is False  # [v5:MQTT-3.2.2-6]
        client.wait_closed()  # [v5:MQTT-3.2.2-7]


def test_interop_connect_right_password_accepted(
    mosquitto: Mosquitto, version: ProtocolVersion
) -> None:
    client, connack = open_client(
        mosquitto,
        version,
        port=mosquitto.auth_port,
        username=mosquitto.username,
        password=mosquitto.password.encode(),
    )
    with client:
        assert connack.reason_code == ReasonCode.SUCCESS
        client.disconnect()


def test_interop_connect_anonymous_refused_on_password_listener(
    mosquitto: Mosquitto, version: ProtocolVersion
) -> None:
    client, connack = open_client(mosquitto, version, port=mosquitto.auth_port)
    with client:
        assert connack.reason_code == ReasonCode.NOT_AUTHORIZED
        client.wait_closed()


def test_interop_second_connect_closes_connection(client: RawClient) -> None:
    # [v5:MQTT-3.1.0-2] a second CONNECT is a protocol error: the broker closes
    # (mosquitto without a DISCONNECT, which MQTT 5 allows but does not require)
    client.send(
        ConnectPacket(client_id=new_client_id(), protocol_version=client.version)
    )
    client.wait_closed()


# ---------------------------------------------------------------------------
# SUBSCRIBE / UNSUBSCRIBE / PING


def test_interop_subscribe_grants_each_qos(
    client: RawClient, unique_topic: str
) -> None:
    client.send(
        SubscribePacket(
            packet_id=7,
            subscriptions=(
                TopicSubscription(filter=f"{unique_topic}/0", qos=QoS.AT_MOST_ONCE),
                TopicSubscription(filter=f"{unique_topic}/+/1", qos=QoS.AT_LEAST_ONCE),
                TopicSubscription(filter=f"{unique_topic}/#", qos=QoS.EXACTLY_ONCE),
            ),
        )
    )
    # [v5:MQTT-3.8.4-6] one reason code per filter, in order
    assert client.receive() == SubAckPacket(
        packet_id=7,
        reason_codes=(
            ReasonCode.GRANTED_QOS_0,
            ReasonCode.GRANTED_QOS_1,
            ReasonCode.GRANTED_QOS_2,
        ),
    )
    client.send(
        UnsubscribePacket(
            packet_id=8, filters=(f"{unique_topic}/0", f"{unique_topic}/never")
        )
    )
    unsuback = client.receive_type(UnsubAckPacket)
    assert unsuback.packet_id == 8
    if client.version == V5:
        assert unsuback.reason_codes == (
            ReasonCode.SUCCESS,
            ReasonCode.NO_SUBSCRIPTION_EXISTED,
        )
    else:
        assert unsuback.reason_codes == ()
    ping(client)
    client.disconnect()


def test_interop_unsubscribed_filter_gets_nothing(
    client: RawClient, unique_topic: str
) -> None:
    subscribe(client, f"{unique_topic}/a", QoS.AT_MOST_ONCE, packet_id=1)
    client.send(UnsubscribePacket(packet_id=2, filters=(f"{unique_topic}/a",)))
    assert client.receive_type(UnsubAckPacket).packet_id == 2
    subscribe(client, f"{unique_topic}/fence", QoS.AT_MOST_ONCE, packet_id=3)
    client.send(
        PublishPacket(topic=f"{unique_topic}/a", payload=b"gone"),
        PublishPacket(topic=f"{unique_topic}/fence", payload=b"fence"),
    )
    assert client.receive() == PublishPacket(
        topic=f"{unique_topic}/fence", payload=b"fence"
    )


# ---------------------------------------------------------------------------
# PUBLISH round trips to ourselves


def test_interop_publish_qos0_round_trip(client: RawClient, unique_topic: str) -> None:
    subscribe(client, unique_topic, QoS.EXACTLY_ONCE)
    client.send(PublishPacket(topic=unique_topic, payload=b"qos 0"))
    # [v5:MQTT-3.8.4-8] delivered at min(publish QoS, granted QoS)
    assert client.receive() == PublishPacket(topic=unique_topic, payload=b"qos 0")
    ping(client)
    client.disconnect()


def test_interop_publish_qos1_round_trip(client: RawClient, unique_topic: str) -> None:
    subscribe(client, unique_topic, QoS.EXACTLY_ONCE)
    client.send(
        PublishPacket(
            topic=unique_topic, payload=b"qos 1", qos=QoS.AT_LEAST_ONCE, packet_id=11
        )
    )
    replies = [client.receive(), client.receive()]
    assert PubAckPacket(packet_id=11) in replies
    (delivered,) = (p for p in replies if isinstance(p, PublishPacket))
    assert delivered.packet_id is not None
    assert delivered == PublishPacket(
        topic=unique_topic,
        payload=b"qos 1",
        qos=QoS.AT_LEAST_ONCE,
        packet_id=delivered.packet_id,
    )
    client.send(PubAckPacket(packet_id=delivered.packet_id))
    ping(client)  # the broker took our PUBACK: nothing is re-sent
    client.disconnect()


def test_interop_publish_qos2_round_trip(client: RawClient, unique_topic: str) -> None:
    subscribe(client, unique_topic, QoS.EXACTLY_ONCE)
    client.send(
        PublishPacket(
            topic=unique_topic, payload=b"qos 2", qos=QoS.EXACTLY_ONCE, packet_id=22
        )
    )
    # Outgoing flow PUBLISH -> PUBREC -> PUBREL -> PUBCOMP and the incoming flow
    # PUBLISH -> PUBREC -> PUBREL -> PUBCOMP interleave as the broker likes: play both.
    delivered: PublishPacket | None = None
    ours_done = theirs_done = False
    while not (ours_done and theirs_done):
        packet = client.receive()
        if packet == PubRecPacket(packet_id=22):
            client.send(PubRelPacket(packet_id=22))  # [v5:MQTT-4.3.3-4]
        elif packet == PubCompPacket(packet_id=22):
            ours_done = True
        elif isinstance(packet, PublishPacket):
            assert delivered is None, f"delivered twice: {packet!r}"
            assert packet.packet_id is not None
            delivered = packet
            client.send(PubRecPacket(packet_id=packet.packet_id))
        else:
            assert delivered is not None, f"unexpected {packet!r}"
            assert delivered.packet_id is not None
            assert packet == PubRelPacket(packet_id=delivered.packet_id)
            client.send(PubCompPacket(packet_id=delivered.packet_id))
            theirs_done = True
    assert delivered is not None
    assert delivered == PublishPacket(
        topic=unique_topic,
        payload=b"qos 2",
        qos=QoS.EXACTLY_ONCE,
        packet_id=delivered.packet_id,
    )
    ping(client)
    # PUBREC before PUBCOMP for our message
    ours = [
        type(p)
        for p in client.received
        if isinstance(p, PubRecPacket | PubCompPacket) and p.packet_id == 22
    ]
    assert ours == [PubRecPacket, PubCompPacket]
    client.disconnect()


@pytest.mark.parametrize("qos", list(QoS), ids=["qos0", "qos1", "qos2"])
def test_interop_publish_between_two_clients(
    mosquitto: Mosquitto, version: ProtocolVersion, unique_topic: str, qos: QoS
) -> None:
    subscriber, _ = open_client(mosquitto, version)
    publisher, _ = open_client(mosquitto, version)
    with subscriber, publisher:
        subscribe(subscriber, unique_topic, QoS.EXACTLY_ONCE)
        for index in range(3):
            packet_id = None if qos == QoS.AT_MOST_ONCE else 100 + index
            publisher.send(
                PublishPacket(
                    topic=unique_topic,
                    payload=f"message {index}".encode(),
                    qos=qos,
                    packet_id=packet_id,
                )
            )
            if qos == QoS.AT_LEAST_ONCE:
                assert publisher.receive() == PubAckPacket(packet_id=100 + index)
            elif qos == QoS.EXACTLY_ONCE:
                assert publisher.receive() == PubRecPacket(packet_id=100 + index)
                publisher.send(PubRelPacket(packet_id=100 + index))
                assert publisher.receive() == PubCompPacket(packet_id=100 + index)
        # [v5:MQTT-4.6.0-6] the broker keeps the order of one publisher's messages
        messages = receive_messages(subscriber, 3)
        assert [m.payload for m in messages] == [
            b"message 0",
            b"message 1",
            b"message 2",
        ]
        assert {m.qos for m in messages} == {qos}
        ping(subscriber)
        publisher.disconnect()
        subscriber.disconnect()


def test_interop_many_packets_in_one_write(
    client: RawClient, unique_topic: str
) -> None:
    subscribe(client, unique_topic, QoS.AT_MOST_ONCE)
    payloads = [f"{index:04d}".encode() * 8 for index in range(200)]
    client.send(*(PublishPacket(topic=unique_topic, payload=p) for p in payloads))
    # the broker batches its writes too: the decoder meets many packets per chunk
    received = [client.receive_type(PublishPacket).payload for _ in payloads]
    assert received == payloads


def test_interop_large_payload(client: RawClient, unique_topic: str) -> None:
    subscribe(client, unique_topic, QoS.AT_LEAST_ONCE)
    payload = bytes(range(256)) * 4096  # 1 MiB: a 4-byte remaining length
    client.send(
        PublishPacket(
            topic=unique_topic, payload=payload, qos=QoS.AT_LEAST_ONCE, packet_id=5
        )
    )
    replies = [client.receive(), client.receive()]
    assert PubAckPacket(packet_id=5) in replies
    (delivered,) = (p for p in replies if isinstance(p, PublishPacket))
    assert delivered.payload == payload
    client.send(PubAckPacket(packet_id=delivered.packet_id or 0))
    ping(client)


def test_interop_packet_sent_bytewise(client: RawClient, unique_topic: str) -> None:
    subscribe(client, unique_topic, QoS.AT_MOST_ONCE)
    client.send_bytewise(PublishPacket(topic=unique_topic, payload=b"slowly"))
    assert client.receive() == PublishPacket(topic=unique_topic, payload=b"slowly")


def test_interop_utf8_topic_and_payload(client: RawClient, unique_topic: str) -> None:
    topic = f"{unique_topic}/\u00e9t\u00e9/\u6f22\u5b57/\U0001f600"
    subscribe(client, f"{unique_topic}/+/\u6f22\u5b57/#", QoS.AT_MOST_ONCE)
    client.send(PublishPacket(topic=topic, payload="\u00fcber".encode()))
    assert client.receive() == PublishPacket(topic=topic, payload="\u00fcber".encode())


# ---------------------------------------------------------------------------
# retained messages, will, sessions


def test_interop_retained_message(
    mosquitto: Mosquitto, version: ProtocolVersion, unique_topic: str
) -> None:
    publisher, _ = open_client(mosquitto, version)
    with publisher:
        publisher.send(
            PublishPacket(
                topic=unique_topic,
                payload=b"kept",
                qos=QoS.AT_LEAST_ONCE,
                retain=True,
                packet_id=1,
            )
        )
        assert publisher.receive_type(PubAckPacket).packet_id == 1
        subscriber, _ = open_client(mosquitto, version)
        with subscriber:
            subscribe(subscriber, unique_topic, QoS.AT_LEAST_ONCE)
            retained = receive_message(subscriber)
            assert retained.retain is True  # [v5:MQTT-3.3.1-9]
            assert retained.payload == b"kept"
            # a retained message with an empty payload removes it [v5:MQTT-3.3.1-6]
            publisher.send(PublishPacket(topic=unique_topic, retain=True))
            live = receive_message(subscriber)
            assert live.payload == b""
            assert live.retain is False  # [v5:MQTT-3.3.1-12] live, not from the store
        late, _ = open_client(mosquitto, version)
        with late:
            subscribe(late, f"{unique_topic}/#", QoS.AT_MOST_ONCE)
            publisher.send(PublishPacket(topic=f"{unique_topic}/fence", payload=b"f"))
            assert late.receive_type(PublishPacket).payload == b"f"


def test_interop_will_published_on_abort(
    mosquitto: Mosquitto, version: ProtocolVersion, unique_topic: str
) -> None:
    observer, _ = open_client(mosquitto, version)
    with observer:
        subscribe(observer, unique_topic, QoS.AT_LEAST_ONCE)
        will = Will(topic=unique_topic, payload=b"gone", qos=QoS.AT_LEAST_ONCE)
        victim, connack = open_client(mosquitto, version, will=will)
        assert connack.reason_code == ReasonCode.SUCCESS
        victim.abort()
        message = receive_message(observer)
        assert (message.topic, message.payload, message.qos) == (
            unique_topic,
            b"gone",
            QoS.AT_LEAST_ONCE,
        )


def test_interop_will_not_published_on_disconnect(
    mosquitto: Mosquitto, version: ProtocolVersion, unique_topic: str
) -> None:
    observer, _ = open_client(mosquitto, version)
    with observer:
        subscribe(observer, unique_topic, QoS.AT_MOST_ONCE)
        victim, _ = open_client(
            mosquitto, version, will=Will(topic=unique_topic, payload=b"gone")
        )
        with victim:
            victim.disconnect()  # [v5:MQTT-3.1.2-10] normal DISCONNECT drops the will
        observer.send(PublishPacket(topic=unique_topic, payload=b"fence"))
        assert observer.receive_type(PublishPacket).payload == b"fence"


def test_interop_session_present_and_queued_message(
    mosquitto: Mosquitto, version: ProtocolVersion, unique_topic: str
) -> None:
    client_id = new_client_id()
    expiry = Properties(session_expiry_interval=300) if version == V5 else None
    first, connack = open_client(
        mosquitto, version, client_id=client_id, clean_start=False, properties=expiry
    )
    with first:
        assert connack.session_present is False
        subscribe(first, unique_topic, QoS.AT_LEAST_ONCE)
        first.disconnect()
    publisher, _ = open_client(mosquitto, version)
    with publisher:
        publisher.send(
            PublishPacket(
                topic=unique_topic,
                payload=b"while away",
                qos=QoS.AT_LEAST_ONCE,
                packet_id=9,
            )
        )
        assert publisher.receive() == PubAckPacket(packet_id=9)
    second, connack = open_client(
        mosquitto, version, client_id=client_id, clean_start=False, properties=expiry
    )
    with second:
        assert connack.session_present is True  # [v5:MQTT-3.2.2-3]
        queued = receive_message(second)
        assert (queued.payload, queued.qos) == (b"while away", QoS.AT_LEAST_ONCE)
        second.disconnect()
    # clean up the stored session
    last, connack = open_client(mosquitto, version, client_id=client_id)
    with last:
        assert connack.session_present is False  # [v5:MQTT-3.2.2-2]
        last.disconnect()


def test_interop_unacknowledged_qos1_redelivered_with_dup(
    mosquitto: Mosquitto, version: ProtocolVersion, unique_topic: str
) -> None:
    client_id = new_client_id()
    expiry = Properties(session_expiry_interval=300) if version == V5 else None
    first, _ = open_client(
        mosquitto, version, client_id=client_id, clean_start=False, properties=expiry
    )
    with first:
        subscribe(first, unique_topic, QoS.AT_LEAST_ONCE)
        first.send(
            PublishPacket(
                topic=unique_topic,
                payload=b"ack me",
                qos=QoS.AT_LEAST_ONCE,
                packet_id=3,
            )
        )
        replies = [first.receive(), first.receive()]
        (original,) = (p for p in replies if isinstance(p, PublishPacket))
        first.abort()  # never acknowledged
    second, connack = open_client(
        mosquitto, version, client_id=client_id, clean_start=False, properties=expiry
    )
    with second:
        assert connack.session_present is True
        again = second.receive_type(PublishPacket)
        # [v5:MQTT-4.4.0-1] same packet id, DUP set [v5:MQTT-3.3.1-1]
        assert again == PublishPacket(
            topic=unique_topic,
            payload=b"ack me",
            qos=QoS.AT_LEAST_ONCE,
            dup=True,
            packet_id=original.packet_id,
        )
        second.send(PubAckPacket(packet_id=original.packet_id or 0))
        ping(second)
    last, _ = open_client(mosquitto, version, client_id=client_id)
    with last:
        last.disconnect()


# ---------------------------------------------------------------------------
# MQTT 5 only


def v5_client(broker: Mosquitto, **kwargs: object) -> RawClient:
    client, connack = open_client(broker, V5, **kwargs)  # type: ignore[arg-type]
    assert connack.reason_code == ReasonCode.SUCCESS
    return client


def test_interop_v5_publish_properties_round_trip(
    mosquitto: Mosquitto, unique_topic: str
) -> None:
    with v5_client(mosquitto) as client:
        subscribe(
            client,
            unique_topic,
            QoS.AT_LEAST_ONCE,
            properties=Properties(subscription_identifiers=(42,)),
        )
        sent = Properties(
            payload_format_indicator=1,
            message_expiry_interval=3600,
            content_type="application/json",
            response_topic=f"{unique_topic}/reply",
            correlation_data=b"\x00\x01corr\xff",
            user_properties=(("k", "1"), ("k", "2"), ("\u00e9", "\u6f22")),
        )
        client.send(
            PublishPacket(
                topic=unique_topic,
                payload=b'{"a": 1}',
                qos=QoS.AT_LEAST_ONCE,
                packet_id=1,
                properties=sent,
            )
        )
        replies = [client.receive(), client.receive()]
        assert PubAckPacket(packet_id=1) in replies
        (delivered,) = (p for p in replies if isinstance(p, PublishPacket))
        received = delivered.properties
        assert received.subscription_identifiers == (42,)  # [v5:MQTT-3.3.4-3]
        # the broker sends the remaining lifetime [v5:MQTT-3.3.2-6]
        assert received.message_expiry_interval is not None
        assert 3590 <= received.message_expiry_interval <= 3600
        assert (
            received.payload_format_indicator,
            received.content_type,
            received.response_topic,
            received.correlation_data,
            received.user_properties,  # [v5:MQTT-3.3.2-18] order kept
        ) == (
            1,
            "application/json",
            f"{unique_topic}/reply",
            b"\x00\x01corr\xff",
            (("k", "1"), ("k", "2"), ("\u00e9", "\u6f22")),
        )
        client.send(PubAckPacket(packet_id=delivered.packet_id or 0))
        ping(client)


def test_interop_v5_no_matching_subscribers_reason(
    mosquitto: Mosquitto, unique_topic: str
) -> None:
    with v5_client(mosquitto) as client:
        client.send(
            PublishPacket(
                topic=f"{unique_topic}/nobody",
                payload=b"x",
                qos=QoS.AT_LEAST_ONCE,
                packet_id=4,
            )
        )
        assert client.receive() == PubAckPacket(
            packet_id=4, reason_code=ReasonCode.NO_MATCHING_SUBSCRIBERS
        )


def test_interop_v5_no_local_subscription(
    mosquitto: Mosquitto, unique_topic: str
) -> None:
    with v5_client(mosquitto) as client:
        client.send(
            SubscribePacket(
                packet_id=1,
                subscriptions=(
                    TopicSubscription(filter=unique_topic, no_local=True),
                    TopicSubscription(filter=f"{unique_topic}/fence"),
                ),
            )
        )
        assert client.receive_type(SubAckPacket).packet_id == 1
        client.send(
            PublishPacket(topic=unique_topic, payload=b"mine"),
            PublishPacket(topic=f"{unique_topic}/fence", payload=b"fence"),
        )
        assert client.receive_type(PublishPacket).payload == b"fence"


def test_interop_v5_topic_alias(mosquitto: Mosquitto, unique_topic: str) -> None:
    with v5_client(mosquitto) as client:
        subscribe(client, unique_topic, QoS.AT_MOST_ONCE)
        client.send(
            PublishPacket(
                topic=unique_topic, payload=b"one", properties=Properties(topic_alias=1)
            ),
            # [v5:MQTT-3.3.2-12] an empty topic name with a known alias
            PublishPacket(
                topic="", payload=b"two", properties=Properties(topic_alias=1)
            ),
        )
        first = client.receive_type(PublishPacket)
        second = client.receive_type(PublishPacket)
        assert (first.topic, first.payload) == (unique_topic, b"one")
        assert (second.topic, second.payload) == (unique_topic, b"two")


def test_interop_v5_disconnect_with_will_message(
    mosquitto: Mosquitto, unique_topic: str
) -> None:
    observer, _ = open_client(mosquitto, V5)
    with observer:
        subscribe(observer, unique_topic, QoS.AT_MOST_ONCE)
        with v5_client(
            mosquitto, will=Will(topic=unique_topic, payload=b"asked for")
        ) as client:
            # 0x04: disconnect normally, but publish the will [v5:MQTT-3.14.2-1]
            client.send(
                DisconnectPacket(reason_code=ReasonCode.DISCONNECT_WITH_WILL_MESSAGE)
            )
            client.wait_closed()
        assert receive_message(observer).payload == b"asked for"


# ---------------------------------------------------------------------------
# the ClientSession state machine against the broker


def session_client(
    broker: Mosquitto, version: ProtocolVersion
) -> tuple[SessionClient, ConnectPacket]:
    """A SessionClient and the CONNECT that resumes its (persistent) session."""
    connect = ConnectPacket(
        client_id=new_client_id(),
        protocol_version=version,
        clean_start=False,
        keepalive=30,
        properties=Properties(session_expiry_interval=300)
        if version == V5
        else Properties(),
    )
    return SessionClient(
        broker.host, broker.port, ClientSession(protocol_version=version)
    ), connect


def forget_session(broker: Mosquitto, version: ProtocolVersion, client_id: str) -> None:
    """Connect once with clean start, so the broker drops the stored session."""
    client, _ = open_client(broker, version, client_id=client_id)
    with client:
        client.disconnect()


def test_interop_session_round_trip_each_qos(
    mosquitto: Mosquitto, version: ProtocolVersion, unique_topic: str
) -> None:
    client, connect = session_client(mosquitto, version)
    with client:
        connected = client.connect(attrs.evolve(connect, clean_start=True))
        assert connected == Connected(
            session_present=False,
            client_id=connect.client_id,
            keepalive=30,
            properties=connected.properties,
        )
        session = client.session
        packet_id, data = session.subscribe(
            [TopicSubscription(filter=unique_topic, qos=QoS.EXACTLY_ONCE)]
        )
        client.send(data)
        assert client.receive_events() == [
            Subscribed(packet_id=packet_id, reason_codes=(ReasonCode.GRANTED_QOS_2,))
        ]
        completed = []
        for qos in QoS:
            publish_id, data = session.publish(
                unique_topic, f"qos {qos}".encode(), qos=qos
            )
            client.send(data)
            if publish_id is not None:
                completed.append(publish_id)
        events = client.collect(MessageReceived, 3)
        while sum(isinstance(e, PublishCompleted) for e in events) < 2:
            events += client.receive_events()
        client.send(session.ping())
        events += client.collect(PongReceived)
        assert session.inflight == 0
        client.disconnect()
    messages = [e.message for e in events if isinstance(e, MessageReceived)]
    assert [(m.payload, m.qos) for m in messages] == [
        (f"qos {qos}".encode(), qos) for qos in QoS
    ]
    assert sorted(e.packet_id for e in events if isinstance(e, PublishCompleted)) == (
        completed
    )
    assert all(
        e.reason_code == ReasonCode.SUCCESS
        for e in events
        if isinstance(e, PublishCompleted)
    )


@pytest.mark.parametrize(
    "qos", [QoS.AT_LEAST_ONCE, QoS.EXACTLY_ONCE], ids=["qos1", "qos2"]
)
def test_interop_session_resends_publish_after_lost_ack(
    mosquitto: Mosquitto, version: ProtocolVersion, unique_topic: str, qos: QoS
) -> None:
    observer, _ = open_client(mosquitto, version)
    client, connect = session_client(mosquitto, version)
    with observer, client:
        subscribe(observer, unique_topic, QoS.EXACTLY_ONCE)
        assert isinstance(client.connect(connect), Connected)
        packet_id, data = client.session.publish(unique_topic, b"once", qos=qos)
        client.send(data)
        # the broker's PUBACK/PUBREC is lost with the connection
        (ack,) = client.drop_packets(1)
        assert ack == (
            PubAckPacket(packet_id=packet_id or 0)
            if qos == QoS.AT_LEAST_ONCE
            else PubRecPacket(packet_id=packet_id or 0)
        )
        client.abort()
        connected = client.connect(connect)
        assert isinstance(connected, Connected)
        assert connected.session_present is True
        assert connected.resent == 1
        # [v5:MQTT-4.4.0-1] the session re-sends the PUBLISH with DUP=1 and the
        # broker, which knows the id, answers it again
        client.send(client.session.data_to_send())
        events = client.collect(PublishCompleted)
        assert events == [PublishCompleted(packet_id=packet_id or 0)]
        observer.send(PublishPacket(topic=unique_topic, payload=b"fence"))
        messages = receive_messages(observer, 2 if qos == QoS.EXACTLY_ONCE else 1)
        if qos == QoS.AT_LEAST_ONCE:
            # QoS 1 may arrive twice; read on to the fence
            while messages[-1].payload != b"fence":
                messages += receive_messages(observer, 1)
            payloads = [m.payload for m in messages]
            assert payloads[-1] == b"fence"
            assert set(payloads[:-1]) == {b"once"}
        else:
            assert [m.payload for m in messages] == [b"once", b"fence"]
        client.disconnect()
    forget_session(mosquitto, version, connect.client_id)


@pytest.mark.parametrize("lost", ["our-pubrec", "their-pubrel"])
def test_interop_session_qos2_delivered_once_across_reconnect(
    mosquitto: Mosquitto, version: ProtocolVersion, unique_topic: str, lost: str
) -> None:
    publisher, _ = open_client(mosquitto, version)
    client, connect = session_client(mosquitto, version)
    with publisher, client:
        assert isinstance(client.connect(connect), Connected)
        _, data = client.session.subscribe(
            [TopicSubscription(filter=unique_topic, qos=QoS.EXACTLY_ONCE)]
        )
        client.send(data)
        assert isinstance(client.receive_events()[0], Subscribed)
        publisher.send(
            PublishPacket(
                topic=unique_topic,
                payload=b"exactly once",
                qos=QoS.EXACTLY_ONCE,
                packet_id=1,
            )
        )
        assert publisher.receive() == PubRecPacket(packet_id=1)
        publisher.send(PubRelPacket(packet_id=1))
        assert publisher.receive() == PubCompPacket(packet_id=1)

        if lost == "our-pubrec":
            # delivered to the application, but the PUBREC never left: the broker
            # will send the PUBLISH again
            events = client.receive_events(acknowledge=False)
        else:
            # PUBREC sent, the broker's PUBREL lost with the connection: the broker
            # will send the PUBREL again
            events = client.receive_events()
            (pubrel,) = client.drop_packets(1)
            assert isinstance(pubrel, PubRelPacket)
        (first,) = events
        assert isinstance(first, MessageReceived)
        assert first.message.payload == b"exactly once"
        client.abort()

        connected = client.connect(connect)
        assert isinstance(connected, Connected)
        assert connected.session_present is True
        client.send(client.session.ping())
        after = client.collect(PongReceived)
        # [v5:MQTT-4.3.3-10] not delivered again, whatever the broker re-sent
        assert after == [PongReceived()]
        resent = client.trace[1]  # after the CONNACK
        if lost == "our-pubrec":
            assert isinstance(resent, PublishPacket)
            assert (resent.dup, resent.packet_id) == (True, first.message.packet_id)
        else:
            assert resent == PubRelPacket(packet_id=first.message.packet_id or 0)
        client.disconnect()
    forget_session(mosquitto, version, connect.client_id)
