"""Packet encoding and the incremental decoder: golden bytes, splits, errors."""

from __future__ import annotations

import re

import attrs
import pytest

from tests._vectors import DECODE_ONLY, VECTORS, Vector, h
from trio_mqttconn import _packets
from trio_mqttconn._enums import ProtocolVersion, QoS, ReasonCode, RetainHandling
from trio_mqttconn._exceptions import (
    MalformedPacketError,
    PacketTooLargeError,
    ProtocolError,
)
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
    encode_packet,
)
from trio_mqttconn._properties import EMPTY_PROPERTIES, Properties

V311 = ProtocolVersion.V311
V5 = ProtocolVersion.V5
RC = ReasonCode
ALL = VECTORS + DECODE_ONLY


def _exact(message: str) -> str:
    return f"^{re.escape(message)}$"


def _ids(vectors: list[Vector]) -> list[str]:
    return [vector[0] for vector in vectors]


def _feed_bytewise(decoder: PacketDecoder, data: bytes) -> None:
    for index in range(len(data)):
        decoder.feed(data[index : index + 1])
        decoder.next_packet()


def _decode_all(version: ProtocolVersion, data: bytes) -> list[Packet]:
    decoder = PacketDecoder(version)
    decoder.feed(data)
    packets = decoder.packets()
    assert decoder.next_packet() is None
    return packets


# ---------------------------------------------------------------- golden bytes


@pytest.mark.parametrize(
    ("name", "version", "data", "packet"), VECTORS, ids=_ids(VECTORS)
)
def test_encode_golden(
    name: str, version: ProtocolVersion, data: bytes, packet: Packet
) -> None:
    assert encode_packet(packet, version) == data


@pytest.mark.parametrize(("name", "version", "data", "packet"), ALL, ids=_ids(ALL))
def test_decode_golden(
    name: str, version: ProtocolVersion, data: bytes, packet: Packet
) -> None:
    decoder = PacketDecoder(version)
    decoder.feed(data)
    assert decoder.next_packet() == packet
    assert decoder.next_packet() is None


@pytest.mark.parametrize(("name", "version", "data", "packet"), ALL, ids=_ids(ALL))
def test_decode_golden_split_at_every_offset(
    name: str, version: ProtocolVersion, data: bytes, packet: Packet
) -> None:
    # wsproto-style: every split point decodes to the same packet.
    for cut in range(1, len(data)):
        decoder = PacketDecoder(version)
        decoder.feed(data[:cut])
        assert decoder.next_packet() is None
        assert decoder.packets() == []
        decoder.feed(data[cut:])
        assert decoder.packets() == [packet]


@pytest.mark.parametrize(("name", "version", "data", "packet"), ALL, ids=_ids(ALL))
def test_decode_golden_one_byte_at_a_time(
    name: str, version: ProtocolVersion, data: bytes, packet: Packet
) -> None:
    decoder = PacketDecoder(version)
    for index in range(len(data) - 1):
        decoder.feed(data[index : index + 1])
        # Every strict prefix needs more data.
        assert decoder.next_packet() is None
    decoder.feed(data[-1:])
    assert decoder.next_packet() == packet


@pytest.mark.parametrize("version", [V311, V5])
def test_decode_all_golden_packets_in_one_buffer(version: ProtocolVersion) -> None:
    vectors = [v for v in ALL if v[1] == version]
    data = b"".join(v[2] for v in vectors)
    assert _decode_all(version, data) == [v[3] for v in vectors]
    # Same through next_packet(), and fed in uneven chunks.
    decoder = PacketDecoder(version)
    got: list[Packet] = []
    for start in range(0, len(data), 7):
        decoder.feed(data[start : start + 7])
        while (packet := decoder.next_packet()) is not None:
            got.append(packet)
    assert got == [v[3] for v in vectors]


def test_decode_connect_uses_its_own_protocol_level() -> None:
    v5_connect = next(v for v in VECTORS if v[0] == "v5-connect-spec-example")
    v311_connect = next(v for v in VECTORS if v[0] == "v311-connect-spec-example")
    assert _decode_all(V311, v5_connect[2]) == [v5_connect[3]]
    assert _decode_all(V5, v311_connect[2]) == [v311_connect[3]]


def test_decoded_publish_is_a_normal_frozen_instance() -> None:
    (packet,) = _decode_all(V311, h("30 0A 00 03 61 2F 62 68 65 6C 6C 6F"))
    assert isinstance(packet, PublishPacket)
    assert packet == PublishPacket(topic="a/b", payload=b"hello")
    assert hash(packet) == hash(PublishPacket(topic="a/b", payload=b"hello"))
    assert type(packet.payload) is bytes
    assert packet.qos is QoS.AT_MOST_ONCE
    assert packet.properties is EMPTY_PROPERTIES
    assert attrs.evolve(packet, qos=QoS.AT_LEAST_ONCE).qos is QoS.AT_LEAST_ONCE
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        packet.topic = "x"  # type: ignore[misc]  # frozen on purpose


def test_decoded_v5_publish_without_properties_shares_empty_properties() -> None:
    (packet,) = _decode_all(V5, h("30 0B 00 03 61 2F 62 00 68 65 6C 6C 6F"))
    assert isinstance(packet, PublishPacket)
    assert packet.properties is EMPTY_PROPERTIES


def test_decoded_topics_are_shared_and_cache_is_bounded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_packets, "_topics_in", {})
    monkeypatch.setattr(_packets, "_TOPIC_CACHE_SIZE", 2)
    data = h("30 03 00 01 61 30 03 00 01 61 30 03 00 01 62 30 03 00 01 63")
    packets = _decode_all(V311, data)
    topics = [p.topic for p in packets if isinstance(p, PublishPacket)]
    assert topics == ["a", "a", "b", "c"]
    assert topics[0] is topics[1]
    assert _packets._topics_in == {b"c": "c"}


def test_encoded_topics_cache_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_packets, "_topics_out", {})
    monkeypatch.setattr(_packets, "_TOPIC_CACHE_SIZE", 2)
    for topic in ("a", "b", "c", "c"):
        encode_packet(PublishPacket(topic=topic), V311)
    assert _packets._topics_out == {"c": b"c"}


def test_long_topics_are_not_cached(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_packets, "_topics_in", {})
    monkeypatch.setattr(_packets, "_topics_out", {})
    packet = PublishPacket(topic="t" * 257)
    assert _decode_all(V311, encode_packet(packet, V311)) == [packet]
    assert _packets._topics_in == {}
    assert _packets._topics_out == {}


# ---------------------------------------------------------------- the decoder


def test_decoder_large_packet_in_small_chunks_is_joined_once() -> None:
    payload = bytes(range(256)) * 64  # 16 KiB
    data = encode_packet(PublishPacket(topic="big", payload=payload), V311)
    decoder = PacketDecoder(V311)
    decoder.feed(data[:100])
    assert decoder.next_packet() is None
    for start in range(100, len(data), 1000):
        # While the packet is incomplete, chunks are only collected.
        assert decoder.packets() == []
        decoder.feed(data[start : start + 1000])
    assert decoder.packets() == [PublishPacket(topic="big", payload=payload)]
    assert decoder.next_packet() is None


def test_decoder_keeps_bytes_after_a_large_packet() -> None:
    big = encode_packet(PublishPacket(topic="t", payload=b"x" * 1000), V311)
    ping = h("C0 00")
    decoder = PacketDecoder(V311)
    decoder.feed(big[:10])
    assert decoder.next_packet() is None
    decoder.feed(big[10:] + ping + ping[:1])
    assert decoder.packets() == [
        PublishPacket(topic="t", payload=b"x" * 1000),
        PingReqPacket(),
    ]
    decoder.feed(ping[1:])
    assert decoder.packets() == [PingReqPacket()]


def test_decoder_accepts_bytearray_memoryview_and_ignores_empty_feed() -> None:
    decoder = PacketDecoder(V311)
    decoder.feed(b"")
    decoder.feed(bytearray(h("C0")))
    decoder.feed(memoryview(h("00 D0 00")))
    assert decoder.packets() == [PingReqPacket(), PingRespPacket()]


def test_decoder_version_is_settable_and_checked() -> None:
    decoder = PacketDecoder(V311)
    assert decoder.version is V311
    decoder.version = V5
    assert decoder.version is V5
    decoder.feed(h("F0 00"))
    assert decoder.packets() == [AuthPacket()]
    with pytest.raises(
        ValueError,
        match=_exact(
            "version must be ProtocolVersion.V311 or ProtocolVersion.V5, not 3"
        ),
    ):
        decoder.version = 3  # type: ignore[assignment]  # on purpose
    with pytest.raises(ValueError, match=r"^version must be .*, not 6$"):
        PacketDecoder(6)  # type: ignore[arg-type]  # on purpose


@pytest.mark.parametrize("size", [0, 1, "10", 1.5])
def test_decoder_max_packet_size_is_checked(size: object) -> None:
    with pytest.raises(
        ValueError,
        match=_exact(
            f"max_packet_size must be an integer of at least 2 or None, not {size!r}"
        ),
    ):
        PacketDecoder(V5, max_packet_size=size)  # type: ignore[arg-type]  # on purpose


def test_decoder_max_packet_size_counts_the_whole_packet() -> None:
    data = h("30 0A 00 03 61 2F 62 68 65 6C 6C 6F")  # 12 bytes
    decoder = PacketDecoder(V311, max_packet_size=12)
    decoder.feed(data)
    assert decoder.packets() == [PublishPacket(topic="a/b", payload=b"hello")]
    decoder = PacketDecoder(V311, max_packet_size=11)
    decoder.feed(data)
    with pytest.raises(
        PacketTooLargeError,
        match=_exact("packet of 12 bytes exceeds the maximum packet size of 11 bytes"),
    ) as info:
        decoder.packets()
    assert info.value.reason_code is RC.PACKET_TOO_LARGE


def test_decoder_max_packet_size_checked_from_fixed_header_alone() -> None:
    # [v5:MQTT-3.1.2-24] only the fixed header of a 2 MiB packet has arrived.
    decoder = PacketDecoder(V5, max_packet_size=1024)
    decoder.feed(h("30 80 80 80 01"))
    with pytest.raises(
        PacketTooLargeError,
        match=_exact(
            "packet of 2097157 bytes exceeds the maximum packet size of 1024 bytes"
        ),
    ):
        decoder.next_packet()


def test_decoder_stays_failed() -> None:
    decoder = PacketDecoder(V311)
    decoder.feed(h("00 00"))
    with pytest.raises(MalformedPacketError) as first:
        decoder.next_packet()
    with pytest.raises(MalformedPacketError) as again:
        decoder.packets()
    assert again.value is first.value
    with pytest.raises(MalformedPacketError) as fed:
        decoder.feed(h("C0 00"))
    assert fed.value is first.value
    with pytest.raises(MalformedPacketError):
        decoder.next_packet()


def test_decoder_returns_good_packets_before_raising() -> None:
    decoder = PacketDecoder(V311)
    decoder.feed(h("C0 00 D0 00 00 00 C0 00"))
    assert decoder.packets() == [PingReqPacket(), PingRespPacket()]
    with pytest.raises(MalformedPacketError, match=r"^packet type 0 is reserved$"):
        decoder.packets()


def test_decoder_rejects_a_bad_first_byte_before_the_rest_arrives() -> None:
    decoder = PacketDecoder(V5)
    decoder.feed(h("C0 00 00"))
    assert decoder.packets() == [PingReqPacket()]
    with pytest.raises(MalformedPacketError, match=r"^packet type 0 is reserved$"):
        decoder.packets()
    decoder = PacketDecoder(V5)
    decoder.feed(h("62"))  # PUBREL with the right flags: wait for more
    assert decoder.next_packet() is None


def test_decoder_waits_for_a_long_remaining_length() -> None:
    decoder = PacketDecoder(V311)
    decoder.feed(h("30 80"))
    assert decoder.next_packet() is None
    decoder.feed(h("01 00 01 74") + b"x" * 125)
    assert decoder.packets() == [PublishPacket(topic="t", payload=b"x" * 125)]


# ---------------------------------------------------------------- malformed input

MALFORMED: list[tuple[str, ProtocolVersion, bytes, type[ProtocolError], int, str]] = [
    # Fixed header.
    (
        "type-0",
        V311,
        h("00 00"),
        MalformedPacketError,
        0x81,
        "packet type 0 is reserved",
    ),
    (
        "type-0-alone",
        V5,
        h("00"),
        MalformedPacketError,
        0x81,
        "packet type 0 is reserved",
    ),
    (
        "auth-in-v311",
        V311,
        h("F0 00"),
        MalformedPacketError,
        0x81,
        "packet type 15 (AUTH) does not exist in MQTT 3.1.1",
    ),
    # [v5:MQTT-3.3.1-4]
    ("publish-qos-3", V5, h("36 00"), MalformedPacketError, 0x81, "PUBLISH has QoS 3"),
    (
        "publish-qos-3-dup",
        V311,
        h("3F 00"),
        MalformedPacketError,
        0x81,
        "PUBLISH has QoS 3",
    ),
    (
        "publish-qos-0-dup",
        V5,
        h("38 05 00 01 74 00 00"),
        MalformedPacketError,
        0x81,
        "PUBLISH with QoS 0 has the DUP flag set",
    ),
    # [v5:MQTT-2.1.3-1]
    (
        "puback-flags",
        V5,
        h("41 02 00 01"),
        MalformedPacketError,
        0x81,
        "PUBACK has fixed header flags 0x1, they must be 0x0",
    ),
    (
        "pubrel-flags",
        V311,
        h("60 02 00 01"),
        MalformedPacketError,
        0x81,
        "PUBREL has fixed header flags 0x0, they must be 0x2",
    ),
    (
        "subscribe-flags",
        V5,
        h("80 06 00 01 00 00 01 61"),
        MalformedPacketError,
        0x81,
        "SUBSCRIBE has fixed header flags 0x0, they must be 0x2",
    ),
    (
        "unsubscribe-flags",
        V311,
        h("AA 05 00 01 00 01 61"),
        MalformedPacketError,
        0x81,
        "UNSUBSCRIBE has fixed header flags 0xA, they must be 0x2",
    ),
    (
        "connect-flags",
        V5,
        h("11 00"),
        MalformedPacketError,
        0x81,
        "CONNECT has fixed header flags 0x1, they must be 0x0",
    ),
    (
        "disconnect-flags",
        V5,
        h("E8 00"),
        MalformedPacketError,
        0x81,
        "DISCONNECT has fixed header flags 0x8, they must be 0x0",
    ),
    # [v5:MQTT-1.5.5-1]
    (
        "remaining-length-5-bytes",
        V311,
        h("30 80 80 80 80 01"),
        MalformedPacketError,
        0x81,
        "remaining length is longer than 4 bytes",
    ),
    (
        "remaining-length-not-minimal",
        V5,
        h("C0 80 00"),
        MalformedPacketError,
        0x81,
        "remaining length is not encoded in the minimum number of bytes",
    ),
    # PUBLISH.
    (
        "publish-truncated-topic-length",
        V311,
        h("30 01 00"),
        MalformedPacketError,
        0x81,
        "packet ends inside the length of the topic",
    ),
    (
        "publish-v5-truncated-topic-length",
        V5,
        h("30 01 00"),
        MalformedPacketError,
        0x81,
        "packet ends inside the length of the topic",
    ),
    (
        "publish-topic-past-end",
        V311,
        h("30 03 00 05 61"),
        MalformedPacketError,
        0x81,
        "topic runs past the end of the packet",
    ),
    (
        "publish-v5-topic-past-end",
        V5,
        h("30 03 00 05 61"),
        MalformedPacketError,
        0x81,
        "topic runs past the end of the packet",
    ),
    # [v5:MQTT-1.5.4-1]
    (
        "publish-topic-overlong-utf8",
        V311,
        h("30 04 00 02 C0 AF"),
        MalformedPacketError,
        0x81,
        "topic is not well-formed UTF-8",
    ),
    (
        "publish-topic-surrogate",
        V5,
        h("30 06 00 03 ED A0 80 00"),
        MalformedPacketError,
        0x81,
        "topic is not well-formed UTF-8",
    ),
    # [v5:MQTT-1.5.4-2]
    (
        "publish-topic-null",
        V311,
        h("30 05 00 03 61 00 62"),
        MalformedPacketError,
        0x81,
        "topic contains U+0000",
    ),
    (
        "publish-empty-topic",
        V311,
        h("30 02 00 00"),
        ProtocolError,
        0x82,
        "PUBLISH has an empty topic",
    ),
    (
        "publish-v5-empty-topic-no-alias",
        V5,
        h("30 03 00 00 00"),
        ProtocolError,
        0x82,
        "PUBLISH has an empty topic and no topic alias",
    ),
    (
        "publish-packet-id-0",
        V311,
        h("32 05 00 01 74 00 00"),
        ProtocolError,
        0x82,
        "PUBLISH has packet identifier 0",
    ),
    (
        "publish-v5-packet-id-truncated",
        V5,
        h("34 04 00 01 74 00"),
        MalformedPacketError,
        0x81,
        "packet ends inside the packet identifier of PUBLISH",
    ),
    (
        "publish-v5-no-property-length",
        V5,
        h("30 03 00 01 74"),
        MalformedPacketError,
        0x81,
        "packet ends before the property length",
    ),
    (
        "publish-property-not-allowed",
        V5,
        h("30 09 00 01 74 05 11 00 00 00 01"),
        MalformedPacketError,
        0x81,
        "property session_expiry_interval is not allowed in PUBLISH",
    ),
    (
        "publish-unknown-property",
        V5,
        h("30 06 00 01 74 02 04 00"),
        MalformedPacketError,
        0x81,
        "unknown property identifier 0x04",
    ),
    (
        "publish-duplicate-property",
        V5,
        h("30 0A 00 01 74 06 23 00 01 23 00 01"),
        ProtocolError,
        0x82,
        "property topic_alias appears more than once in PUBLISH",
    ),
    (
        "publish-topic-alias-0",
        V5,
        h("30 07 00 01 74 03 23 00 00"),
        ProtocolError,
        0x94,
        "property topic_alias has value 0, allowed is 1..65535",
    ),
    # CONNECT.
    (
        "connect-protocol-name",
        V311,
        h("10 0E 00 06 4D 51 49 73 64 70 03 02 00 3C 00 00"),
        ProtocolError,
        0x84,
        "unsupported protocol name 'MQIsdp'",
    ),
    (
        "connect-protocol-level",
        V5,
        h("10 0C 00 04 4D 51 54 54 06 02 00 3C 00 00"),
        ProtocolError,
        0x84,
        "unsupported protocol level 6",
    ),
    (
        "connect-truncated-level",
        V5,
        h("10 06 00 04 4D 51 54 54"),
        MalformedPacketError,
        0x81,
        "packet ends inside the protocol level",
    ),
    # [v5:MQTT-3.1.2-3]
    (
        "connect-reserved-flag",
        V311,
        h("10 0C 00 04 4D 51 54 54 04 03 00 3C 00 00"),
        MalformedPacketError,
        0x81,
        "reserved connect flag is set",
    ),
    # [v5:MQTT-3.1.2-12]
    (
        "connect-will-qos-3",
        V5,
        h("10 0D 00 04 4D 51 54 54 05 1E 00 3C 00 00 00"),
        MalformedPacketError,
        0x81,
        "will QoS is 3",
    ),
    # [v5:MQTT-3.1.2-11]
    (
        "connect-will-qos-without-will",
        V5,
        h("10 0D 00 04 4D 51 54 54 05 0A 00 3C 00 00 00"),
        MalformedPacketError,
        0x81,
        "will QoS or will retain is set without a will",
    ),
    # [v5:MQTT-3.1.2-13]
    (
        "connect-will-retain-without-will",
        V311,
        h("10 0C 00 04 4D 51 54 54 04 22 00 3C 00 00"),
        MalformedPacketError,
        0x81,
        "will QoS or will retain is set without a will",
    ),
    # [v311:MQTT-3.1.2-22]
    (
        "connect-v311-password-without-username",
        V311,
        h("10 10 00 04 4D 51 54 54 04 42 00 3C 00 00 00 02 70 77"),
        MalformedPacketError,
        0x81,
        "password flag is set without the user name flag",
    ),
    (
        "connect-client-id-missing",
        V311,
        h("10 0A 00 04 4D 51 54 54 04 02 00 3C"),
        MalformedPacketError,
        0x81,
        "packet ends inside the length of the client identifier",
    ),
    (
        "connect-password-missing",
        V311,
        h("10 0F 00 04 4D 51 54 54 04 C2 00 3C 00 00 00 01 75"),
        MalformedPacketError,
        0x81,
        "packet ends inside the length of the password",
    ),
    (
        "connect-will-property-not-allowed",
        V5,
        h(
            "10 17 00 04 4D 51 54 54 05 06 00 3C 00 00 00"
            " 05 11 00 00 00 01 00 01 74 00 00"
        ),
        MalformedPacketError,
        0x81,
        "property session_expiry_interval is not allowed in will properties",
    ),
    (
        "connect-leftover",
        V311,
        h("10 0D 00 04 4D 51 54 54 04 02 00 3C 00 00 FF"),
        MalformedPacketError,
        0x81,
        "CONNECT has 1 byte left over",
    ),
    # CONNACK.
    (
        "connack-v311-length",
        V311,
        h("20 03 00 00 00"),
        MalformedPacketError,
        0x81,
        "CONNACK has remaining length 3, MQTT 3.1.1 requires 2",
    ),
    (
        "connack-v311-reserved-flags",
        V311,
        h("20 02 02 00"),
        MalformedPacketError,
        0x81,
        "reserved CONNACK flags are set",
    ),
    (
        "connack-v311-reserved-return-code",
        V311,
        h("20 02 00 06"),
        ProtocolError,
        0x82,
        "CONNACK return code 6 is reserved",
    ),
    # [v311:MQTT-3.2.2-4]
    (
        "connack-v311-session-present-refused",
        V311,
        h("20 02 01 05"),
        ProtocolError,
        0x82,
        "CONNACK refuses the connection but has session present",
    ),
    # [v5:MQTT-3.2.2-1]
    (
        "connack-v5-reserved-flags",
        V5,
        h("20 03 80 00 00"),
        MalformedPacketError,
        0x81,
        "reserved CONNACK flags are set",
    ),
    (
        "connack-v5-reason-not-allowed",
        V5,
        h("20 03 00 01 00"),
        ProtocolError,
        0x82,
        "reason code 0x01 is not allowed in CONNACK",
    ),
    # [v5:MQTT-3.2.2-6]
    (
        "connack-v5-session-present-refused",
        V5,
        h("20 03 01 80 00"),
        ProtocolError,
        0x82,
        "CONNACK refuses the connection but has session present",
    ),
    (
        "connack-v5-no-properties",
        V5,
        h("20 02 00 00"),
        MalformedPacketError,
        0x81,
        "packet ends before the property length",
    ),
    (
        "connack-v5-truncated",
        V5,
        h("20 01 00"),
        MalformedPacketError,
        0x81,
        "packet ends inside the reason code",
    ),
    (
        "connack-v5-leftover",
        V5,
        h("20 05 00 00 00 00 00"),
        MalformedPacketError,
        0x81,
        "CONNACK has 2 bytes left over",
    ),
    (
        "connack-v5-property-not-allowed",
        V5,
        h("20 06 00 00 03 23 00 01"),
        MalformedPacketError,
        0x81,
        "property topic_alias is not allowed in CONNACK",
    ),
    # Acknowledgements.
    (
        "puback-v311-length",
        V311,
        h("40 03 00 01 00"),
        MalformedPacketError,
        0x81,
        "PUBACK has remaining length 3, MQTT 3.1.1 requires 2",
    ),
    (
        "pubrel-v311-packet-id-0",
        V311,
        h("62 02 00 00"),
        ProtocolError,
        0x82,
        "PUBREL has packet identifier 0",
    ),
    (
        "puback-truncated-packet-id",
        V5,
        h("40 01 00"),
        MalformedPacketError,
        0x81,
        "packet ends inside the packet identifier of PUBACK",
    ),
    (
        "puback-reason-not-allowed",
        V5,
        h("40 03 00 01 01"),
        ProtocolError,
        0x82,
        "reason code 0x01 is not allowed in PUBACK",
    ),
    (
        "pubcomp-reason-not-allowed",
        V5,
        h("70 03 00 01 10"),
        ProtocolError,
        0x82,
        "reason code 0x10 is not allowed in PUBCOMP",
    ),
    (
        "pubrec-leftover",
        V5,
        h("50 05 00 01 00 00 00"),
        MalformedPacketError,
        0x81,
        "PUBREC has 1 byte left over",
    ),
    (
        "pubrel-property-not-allowed",
        V5,
        h("62 06 00 01 00 02 01 01"),
        MalformedPacketError,
        0x81,
        "property payload_format_indicator is not allowed in PUBREL",
    ),
    # SUBSCRIBE.
    # [v5:MQTT-3.8.3-2]
    (
        "subscribe-no-filter",
        V5,
        h("82 03 00 01 00"),
        ProtocolError,
        0x82,
        "SUBSCRIBE has no topic filter",
    ),
    (
        "subscribe-v311-no-filter",
        V311,
        h("82 02 00 01"),
        ProtocolError,
        0x82,
        "SUBSCRIBE has no topic filter",
    ),
    (
        "subscribe-qos-3",
        V311,
        h("82 06 00 01 00 01 61 03"),
        MalformedPacketError,
        0x81,
        "subscription options have QoS 3",
    ),
    # [v311:MQTT-3.8.3-4]
    (
        "subscribe-v311-reserved-bits",
        V311,
        h("82 06 00 01 00 01 61 04"),
        MalformedPacketError,
        0x81,
        "reserved bits of the requested QoS byte are set",
    ),
    # [v5:MQTT-3.8.3-5]
    (
        "subscribe-v5-reserved-bits",
        V5,
        h("82 07 00 01 00 00 01 61 40"),
        MalformedPacketError,
        0x81,
        "reserved bits of the subscription options are set",
    ),
    (
        "subscribe-v5-retain-handling-3",
        V5,
        h("82 07 00 01 00 00 01 61 30"),
        ProtocolError,
        0x82,
        "subscription options have retain handling 3",
    ),
    (
        "subscribe-missing-options",
        V5,
        h("82 06 00 01 00 00 01 61"),
        MalformedPacketError,
        0x81,
        "packet ends inside the subscription options",
    ),
    (
        "subscribe-two-subscription-ids",
        V5,
        h("82 0A 00 01 04 0B 01 0B 02 00 01 61 00"),
        ProtocolError,
        0x82,
        "property subscription_identifiers appears more than once in SUBSCRIBE",
    ),
    (
        "subscribe-filter-bad-utf8",
        V311,
        h("82 06 00 01 00 01 FF 00"),
        MalformedPacketError,
        0x81,
        "topic filter is not well-formed UTF-8",
    ),
    # SUBACK.
    (
        "suback-no-codes",
        V311,
        h("90 02 00 01"),
        ProtocolError,
        0x82,
        "SUBACK has no reason code",
    ),
    (
        "suback-v5-no-codes",
        V5,
        h("90 03 00 01 00"),
        ProtocolError,
        0x82,
        "SUBACK has no reason code",
    ),
    # [v311:MQTT-3.9.3-2]
    (
        "suback-v311-code-not-allowed",
        V311,
        h("90 03 00 01 87"),
        ProtocolError,
        0x82,
        "reason code 0x87 is not allowed in SUBACK",
    ),
    (
        "suback-v5-code-not-allowed",
        V5,
        h("90 04 00 01 00 03"),
        ProtocolError,
        0x82,
        "reason code 0x03 is not allowed in SUBACK",
    ),
    # UNSUBSCRIBE / UNSUBACK.
    # [v5:MQTT-3.10.3-2]
    (
        "unsubscribe-no-filter",
        V311,
        h("A2 02 00 01"),
        ProtocolError,
        0x82,
        "UNSUBSCRIBE has no topic filter",
    ),
    (
        "unsubscribe-v5-no-filter",
        V5,
        h("A2 03 00 01 00"),
        ProtocolError,
        0x82,
        "UNSUBSCRIBE has no topic filter",
    ),
    (
        "unsubscribe-filter-null",
        V5,
        h("A2 06 00 01 00 00 01 00"),
        MalformedPacketError,
        0x81,
        "topic filter contains U+0000",
    ),
    (
        "unsuback-v311-length",
        V311,
        h("B0 03 00 01 00"),
        MalformedPacketError,
        0x81,
        "UNSUBACK has remaining length 3, MQTT 3.1.1 requires 2",
    ),
    (
        "unsuback-v5-no-codes",
        V5,
        h("B0 03 00 01 00"),
        ProtocolError,
        0x82,
        "UNSUBACK has no reason code",
    ),
    (
        "unsuback-v5-code-not-allowed",
        V5,
        h("B0 04 00 01 00 01"),
        ProtocolError,
        0x82,
        "reason code 0x01 is not allowed in UNSUBACK",
    ),
    # PINGREQ, PINGRESP, DISCONNECT, AUTH.
    (
        "pingreq-length",
        V311,
        h("C0 01 00"),
        MalformedPacketError,
        0x81,
        "PINGREQ has remaining length 1, it must be 0",
    ),
    (
        "pingresp-length",
        V5,
        h("D0 02 00 00"),
        MalformedPacketError,
        0x81,
        "PINGRESP has remaining length 2, it must be 0",
    ),
    (
        "disconnect-v311-length",
        V311,
        h("E0 01 00"),
        MalformedPacketError,
        0x81,
        "DISCONNECT has remaining length 1, it must be 0",
    ),
    (
        "disconnect-v5-reason-not-allowed",
        V5,
        h("E0 01 01"),
        ProtocolError,
        0x82,
        "reason code 0x01 is not allowed in DISCONNECT",
    ),
    (
        "disconnect-v5-leftover",
        V5,
        h("E0 03 00 00 00"),
        MalformedPacketError,
        0x81,
        "DISCONNECT has 1 byte left over",
    ),
    (
        "auth-reason-not-allowed",
        V5,
        h("F0 01 01"),
        ProtocolError,
        0x82,
        "reason code 0x01 is not allowed in AUTH",
    ),
    (
        "auth-leftover",
        V5,
        h("F0 04 18 00 00 00"),
        MalformedPacketError,
        0x81,
        "AUTH has 2 bytes left over",
    ),
]


@pytest.mark.parametrize(
    ("name", "version", "data", "error", "reason", "message"),
    MALFORMED,
    ids=[case[0] for case in MALFORMED],
)
def test_decode_malformed(
    name: str,
    version: ProtocolVersion,
    data: bytes,
    error: type[ProtocolError],
    reason: int,
    message: str,
) -> None:
    decoder = PacketDecoder(version)
    decoder.feed(data)
    with pytest.raises(error, match=_exact(message)) as info:
        decoder.packets()
    assert type(info.value) is error
    assert info.value.reason_code == reason
    # The same bytes one at a time fail the same way, at the same packet.
    decoder = PacketDecoder(version)
    with pytest.raises(error, match=_exact(message)):
        _feed_bytewise(decoder, data)
    # So do they with more packets behind them: nothing past the end of the
    # bad packet is read as part of it.
    decoder = PacketDecoder(version)
    decoder.feed(data + h("C0 00 00 0A 00 0A 01 FF"))
    with pytest.raises(error, match=_exact(message)):
        decoder.next_packet()


# ---------------------------------------------------------------- encoder errors

_BIG = b"x" * 65536
ENCODE_ERRORS: list[tuple[str, Packet, ProtocolVersion, type[Exception], str]] = [
    # PUBLISH.
    (
        "publish-qos-3",
        PublishPacket(topic="t", qos=3, packet_id=1),  # type: ignore[arg-type]  # on purpose
        V5,
        ValueError,
        "PUBLISH qos must be 0, 1 or 2, not 3",
    ),
    (
        "publish-qos-bool",
        PublishPacket(topic="t", qos=True),  # type: ignore[arg-type]  # on purpose
        V5,
        ValueError,
        "PUBLISH qos must be 0, 1 or 2, not True",
    ),
    # [v5:MQTT-2.2.1-2]
    (
        "publish-qos0-packet-id",
        PublishPacket(topic="t", packet_id=5),
        V311,
        ValueError,
        "PUBLISH with QoS 0 must have packet_id None, not 5",
    ),
    # [v5:MQTT-3.3.1-2]
    (
        "publish-qos0-dup",
        PublishPacket(topic="t", dup=True),
        V5,
        ValueError,
        "PUBLISH with QoS 0 must have dup False",
    ),
    (
        "publish-qos1-no-packet-id",
        PublishPacket(topic="t", qos=QoS.AT_LEAST_ONCE),
        V5,
        ValueError,
        "PUBLISH packet_id must be 1..65535, not None",
    ),
    (
        "publish-packet-id-0",
        PublishPacket(topic="t", qos=QoS.EXACTLY_ONCE, packet_id=0),
        V311,
        ValueError,
        "PUBLISH packet_id must be 1..65535, not 0",
    ),
    (
        "publish-packet-id-65536",
        PublishPacket(topic="t", qos=1, packet_id=65536),  # type: ignore[arg-type]  # int QoS
        V311,
        ValueError,
        "PUBLISH packet_id must be 1..65535, not 65536",
    ),
    (
        "publish-empty-topic-v311",
        PublishPacket(topic=""),
        V311,
        ValueError,
        "PUBLISH topic is empty; give a topic name",
    ),
    (
        "publish-empty-topic-v5",
        PublishPacket(topic=""),
        V5,
        ValueError,
        "PUBLISH topic is empty; give a topic name or a topic_alias property",
    ),
    (
        "publish-topic-null",
        PublishPacket(topic="a\x00"),
        V5,
        ValueError,
        "PUBLISH topic contains U+0000, which MQTT forbids; remove it",
    ),
    (
        "publish-topic-surrogate",
        PublishPacket(topic="\udc00"),
        V311,
        ValueError,
        "PUBLISH topic contains a lone surrogate, which UTF-8 cannot encode; remove it",
    ),
    (
        "publish-topic-too-long",
        PublishPacket(topic="x" * 65536),
        V311,
        ValueError,
        "PUBLISH topic is 65536 bytes in UTF-8, the maximum is 65535; shorten it",
    ),
    (
        "publish-topic-not-str",
        PublishPacket(topic=b"t"),  # type: ignore[arg-type]  # on purpose
        V311,
        TypeError,
        "PUBLISH topic must be a str, not bytes",
    ),
    (
        "publish-payload-str",
        PublishPacket(topic="t", payload="hello"),  # type: ignore[arg-type]  # on purpose
        V311,
        TypeError,
        "PUBLISH payload must be bytes, not str",
    ),
    (
        "publish-properties-v311",
        PublishPacket(topic="t", properties=Properties(content_type="x")),
        V311,
        ValueError,
        "PUBLISH properties need MQTT 5; remove them or use ProtocolVersion.V5",
    ),
    (
        "publish-property-not-allowed",
        PublishPacket(topic="t", properties=Properties(receive_maximum=1)),
        V5,
        ValueError,
        "property receive_maximum is not allowed in PUBLISH; remove it",
    ),
    # CONNECT. [v5:MQTT-3.1.2-9..13] are structural: the Will object sets the flags.
    (
        "connect-version-mismatch",
        ConnectPacket(client_id="c"),
        V311,
        ValueError,
        "CONNECT protocol_version <ProtocolVersion.V5: 5> does not match the "
        "encoding version; make them equal",
    ),
    (
        "connect-keepalive",
        ConnectPacket(keepalive=65536),
        V5,
        ValueError,
        "CONNECT keepalive must be 0..65535 s, not 65536",
    ),
    (
        "connect-client-id-null",
        ConnectPacket(client_id="a\x00"),
        V5,
        ValueError,
        "CONNECT client_id contains U+0000, which MQTT forbids; remove it",
    ),
    # [v311:MQTT-3.1.3-7]
    (
        "connect-v311-empty-client-id-not-clean",
        ConnectPacket(protocol_version=V311, clean_start=False),
        V311,
        ValueError,
        "an empty client_id needs clean_start=True in MQTT 3.1.1; "
        "give a client_id or set clean_start",
    ),
    # [v311:MQTT-3.1.2-22]
    (
        "connect-v311-password-without-username",
        ConnectPacket(protocol_version=V311, password=b"pw"),
        V311,
        ValueError,
        "a password without a username is not allowed in MQTT 3.1.1; set a username",
    ),
    (
        "connect-password-too-long",
        ConnectPacket(username="u", password=_BIG),
        V5,
        ValueError,
        "CONNECT password is 65536 bytes, the maximum is 65535; shorten it",
    ),
    (
        "connect-password-str",
        ConnectPacket(username="u", password="pw"),  # type: ignore[arg-type]  # on purpose
        V5,
        TypeError,
        "CONNECT password must be bytes, not str",
    ),
    (
        "connect-username-surrogate",
        ConnectPacket(username="\ud800"),
        V5,
        ValueError,
        "CONNECT username contains a lone surrogate, which UTF-8 cannot encode; "
        "remove it",
    ),
    (
        "connect-will-qos",
        ConnectPacket(will=Will(topic="w", qos=3)),  # type: ignore[arg-type]  # on purpose
        V5,
        ValueError,
        "will qos must be 0, 1 or 2, not 3",
    ),
    (
        "connect-will-payload-too-long",
        ConnectPacket(will=Will(topic="w", payload=_BIG)),
        V5,
        ValueError,
        "will payload is 65536 bytes, the maximum is 65535; shorten it",
    ),
    (
        "connect-will-topic-null",
        ConnectPacket(will=Will(topic="\x00")),
        V5,
        ValueError,
        "will topic contains U+0000, which MQTT forbids; remove it",
    ),
    (
        "connect-will-not-a-will",
        ConnectPacket(will="w"),  # type: ignore[arg-type]  # on purpose
        V5,
        TypeError,
        "CONNECT will must be a Will, not str",
    ),
    (
        "connect-will-properties-v311",
        ConnectPacket(
            protocol_version=V311,
            will=Will(topic="w", properties=Properties(will_delay_interval=1)),
        ),
        V311,
        ValueError,
        "will properties need MQTT 5; remove them or use ProtocolVersion.V5",
    ),
    (
        "connect-will-property-not-allowed",
        ConnectPacket(will=Will(topic="w", properties=Properties(topic_alias=1))),
        V5,
        ValueError,
        "property topic_alias is not allowed in will properties; remove it",
    ),
    (
        "connect-properties-v311",
        ConnectPacket(
            protocol_version=V311, properties=Properties(session_expiry_interval=1)
        ),
        V311,
        ValueError,
        "CONNECT properties need MQTT 5; remove them or use ProtocolVersion.V5",
    ),
    # CONNACK.
    (
        "connack-v311-reason",
        ConnAckPacket(reason_code=RC.BANNED),
        V311,
        ValueError,
        "reason code BANNED (0x8A) has no MQTT 3.1.1 CONNACK return code; use "
        "SUCCESS, UNSUPPORTED_PROTOCOL_VERSION, CLIENT_IDENTIFIER_NOT_VALID, "
        "SERVER_UNAVAILABLE, BAD_USER_NAME_OR_PASSWORD or NOT_AUTHORIZED",
    ),
    (
        "connack-v5-reason",
        ConnAckPacket(reason_code=RC.GRANTED_QOS_1),
        V5,
        ValueError,
        "reason code GRANTED_QOS_1 (0x01) is not allowed in CONNACK",
    ),
    (
        "connack-v5-reason-int",
        ConnAckPacket(reason_code=300),  # type: ignore[arg-type]  # on purpose
        V5,
        ValueError,
        "reason code 300 is not allowed in CONNACK",
    ),
    (
        "connack-v5-reason-str",
        ConnAckPacket(reason_code="0"),  # type: ignore[arg-type]  # on purpose
        V5,
        ValueError,
        "reason code '0' is not allowed in CONNACK",
    ),
    # [v5:MQTT-3.2.2-6] [v311:MQTT-3.2.2-4]
    (
        "connack-session-present-refused",
        ConnAckPacket(session_present=True, reason_code=RC.NOT_AUTHORIZED),
        V311,
        ValueError,
        "a CONNACK that refuses the connection needs session_present=False",
    ),
    (
        "connack-v5-session-present-refused",
        ConnAckPacket(session_present=True, reason_code=RC.SERVER_BUSY),
        V5,
        ValueError,
        "a CONNACK that refuses the connection needs session_present=False",
    ),
    # Acknowledgements.
    (
        "puback-packet-id",
        PubAckPacket(packet_id=0),
        V5,
        ValueError,
        "PUBACK packet_id must be 1..65535, not 0",
    ),
    (
        "pubrel-packet-id-bool",
        PubRelPacket(packet_id=True),
        V311,
        ValueError,
        "PUBREL packet_id must be 1..65535, not True",
    ),
    (
        "pubrec-v311-reason",
        PubRecPacket(packet_id=1, reason_code=RC.QUOTA_EXCEEDED),
        V311,
        ValueError,
        "PUBREC reason code QUOTA_EXCEEDED (0x97) needs MQTT 5; use ReasonCode.SUCCESS",
    ),
    (
        "pubcomp-v311-properties",
        PubCompPacket(packet_id=1, properties=Properties(reason_string="x")),
        V311,
        ValueError,
        "PUBCOMP properties need MQTT 5; remove them or use ProtocolVersion.V5",
    ),
    (
        "pubcomp-v5-reason",
        PubCompPacket(packet_id=1, reason_code=RC.NO_MATCHING_SUBSCRIBERS),
        V5,
        ValueError,
        "reason code NO_MATCHING_SUBSCRIBERS (0x10) is not allowed in PUBCOMP",
    ),
    # SUBSCRIBE / SUBACK / UNSUBSCRIBE / UNSUBACK.
    # [v5:MQTT-3.8.3-2]
    (
        "subscribe-empty",
        SubscribePacket(packet_id=1, subscriptions=()),
        V5,
        ValueError,
        "SUBSCRIBE needs at least one TopicSubscription",
    ),
    (
        "subscribe-not-a-subscription",
        SubscribePacket(packet_id=1, subscriptions=("a/b",)),  # type: ignore[arg-type]  # on purpose
        V5,
        TypeError,
        "SUBSCRIBE subscriptions must hold TopicSubscription, not str",
    ),
    (
        "subscribe-qos",
        SubscribePacket(
            packet_id=1,
            subscriptions=(TopicSubscription(filter="a", qos=4),),  # type: ignore[arg-type]  # on purpose
        ),
        V311,
        ValueError,
        "subscription qos must be 0, 1 or 2, not 4",
    ),
    (
        "subscribe-retain-handling",
        SubscribePacket(
            packet_id=1,
            subscriptions=(TopicSubscription(filter="a", retain_handling=3),),  # type: ignore[arg-type]  # on purpose
        ),
        V5,
        ValueError,
        "retain_handling must be 0, 1 or 2, not 3",
    ),
    (
        "subscribe-v311-options",
        SubscribePacket(
            packet_id=1, subscriptions=(TopicSubscription(filter="a", no_local=True),)
        ),
        V311,
        ValueError,
        "no_local, retain_as_published and retain_handling need MQTT 5; "
        "leave them at their defaults or use ProtocolVersion.V5",
    ),
    (
        "subscribe-filter-too-long",
        SubscribePacket(
            packet_id=1, subscriptions=(TopicSubscription(filter="#" * 65536),)
        ),
        V311,
        ValueError,
        "topic filter is 65536 bytes in UTF-8, the maximum is 65535; shorten it",
    ),
    (
        "subscribe-two-subscription-ids",
        SubscribePacket(
            packet_id=1,
            subscriptions=(TopicSubscription(filter="a"),),
            properties=Properties(subscription_identifiers=(1, 2)),
        ),
        V5,
        ValueError,
        "SUBSCRIBE may carry at most one subscription identifier, not 2",
    ),
    (
        "suback-empty",
        SubAckPacket(packet_id=1, reason_codes=()),
        V5,
        ValueError,
        "SUBACK needs one reason code per topic filter, not none",
    ),
    # [v311:MQTT-3.9.3-2]
    (
        "suback-v311-code",
        SubAckPacket(packet_id=1, reason_codes=(RC.NOT_AUTHORIZED,)),
        V311,
        ValueError,
        "reason code NOT_AUTHORIZED (0x87) is not allowed in SUBACK",
    ),
    (
        "unsubscribe-empty",
        UnsubscribePacket(packet_id=1, filters=()),
        V311,
        ValueError,
        "UNSUBSCRIBE needs at least one topic filter",
    ),
    (
        "unsubscribe-filter-null",
        UnsubscribePacket(packet_id=1, filters=("\x00",)),
        V5,
        ValueError,
        "topic filter contains U+0000, which MQTT forbids; remove it",
    ),
    (
        "unsuback-v311-codes",
        UnsubAckPacket(packet_id=1, reason_codes=(RC.SUCCESS,)),
        V311,
        ValueError,
        "UNSUBACK reason codes need MQTT 5; leave reason_codes empty "
        "or use ProtocolVersion.V5",
    ),
    (
        "unsuback-v5-empty",
        UnsubAckPacket(packet_id=1),
        V5,
        ValueError,
        "UNSUBACK needs one reason code per topic filter in MQTT 5, not none",
    ),
    (
        "unsuback-v5-code",
        UnsubAckPacket(packet_id=1, reason_codes=(RC.GRANTED_QOS_2,)),
        V5,
        ValueError,
        "reason code GRANTED_QOS_2 (0x02) is not allowed in UNSUBACK",
    ),
    # DISCONNECT / AUTH.
    (
        "disconnect-v311-reason",
        DisconnectPacket(reason_code=RC.SERVER_BUSY),
        V311,
        ValueError,
        "DISCONNECT reason code SERVER_BUSY (0x89) needs MQTT 5; "
        "use ReasonCode.NORMAL_DISCONNECTION",
    ),
    (
        "disconnect-v311-properties",
        DisconnectPacket(properties=Properties(reason_string="x")),
        V311,
        ValueError,
        "DISCONNECT properties need MQTT 5; remove them or use ProtocolVersion.V5",
    ),
    (
        "disconnect-v5-reason",
        DisconnectPacket(reason_code=RC.CONTINUE_AUTHENTICATION),
        V5,
        ValueError,
        "reason code CONTINUE_AUTHENTICATION (0x18) is not allowed in DISCONNECT",
    ),
    (
        "auth-v311",
        AuthPacket(),
        V311,
        ValueError,
        "AUTH does not exist in MQTT 3.1.1; use ProtocolVersion.V5",
    ),
    (
        "auth-reason",
        AuthPacket(reason_code=RC.UNSPECIFIED_ERROR),
        V5,
        ValueError,
        "reason code UNSPECIFIED_ERROR (0x80) is not allowed in AUTH",
    ),
    (
        "auth-data-without-method",
        AuthPacket(
            reason_code=RC.CONTINUE_AUTHENTICATION,
            properties=Properties(authentication_data=b"x"),
        ),
        V5,
        ValueError,
        "property authentication_data needs authentication_method; set both",
    ),
]


@pytest.mark.parametrize(
    ("name", "packet", "version", "error", "message"),
    ENCODE_ERRORS,
    ids=[case[0] for case in ENCODE_ERRORS],
)
def test_encode_errors(
    name: str,
    packet: Packet,
    version: ProtocolVersion,
    error: type[Exception],
    message: str,
) -> None:
    with pytest.raises(error, match=_exact(message)):
        encode_packet(packet, version)


def test_encode_rejects_unknown_version_and_non_packets() -> None:
    with pytest.raises(
        ValueError,
        match=_exact(
            "version must be ProtocolVersion.V311 or ProtocolVersion.V5, not 3"
        ),
    ):
        encode_packet(PingReqPacket(), 3)  # type: ignore[arg-type]  # on purpose
    with pytest.raises(TypeError, match=r"^cannot encode str; pass an MQTT packet$"):
        encode_packet("PINGREQ", V5)  # type: ignore[arg-type]  # on purpose


def test_encode_accepts_plain_int_versions_and_qos() -> None:
    packet = PublishPacket(topic="t", qos=1, packet_id=1)  # type: ignore[arg-type]  # int QoS
    assert encode_packet(packet, 4) == h("32 05 00 01 74 00 01")  # type: ignore[arg-type]  # int version


def test_encode_remaining_length_limit() -> None:
    # A payload one byte over the limit: the check happens before any join.
    class Huge(bytes):
        def __len__(self) -> int:
            return 268_435_455

    packet = PublishPacket(topic="t", payload=Huge())
    with pytest.raises(
        ValueError,
        match=_exact(
            "PUBLISH would have a remaining length of 268435458 bytes, the maximum "
            "is 268435455; send less data"
        ),
    ):
        encode_packet(packet, V311)


def test_encode_remaining_length_limit_other_packets(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Lower the limit rather than build 256 MiB of topic filters.
    monkeypatch.setattr(_packets, "MAX_VARINT", 10)
    packet = UnsubscribePacket(packet_id=1, filters=("abc", "def"))
    with pytest.raises(
        ValueError,
        match=_exact(
            "UNSUBSCRIBE would have a remaining length of 12 bytes, the "
            "maximum is 268435455; send less data"
        ),
    ):
        encode_packet(packet, V311)


def test_encode_publish_long_remaining_length_header() -> None:
    data = encode_packet(PublishPacket(topic="t", payload=b"x" * 200), V5)
    assert data[:6] == h("30 CC 01 00 01 74")
    assert data[6] == 0


def test_encode_ack_long_form_with_properties() -> None:
    packet = PubAckPacket(packet_id=1, properties=Properties(reason_string="r" * 200))
    data = encode_packet(packet, V5)
    assert data[:7] == h("40 D0 01 00 01 00 CB")
    assert _decode_all(V5, data) == [packet]


def test_encode_auth_reason_without_properties_keeps_property_length() -> None:
    packet = AuthPacket(reason_code=RC.RE_AUTHENTICATE)
    assert encode_packet(packet, V5) == h("F0 02 19 00")
    assert _decode_all(V5, h("F0 02 19 00")) == [packet]


def test_encode_subscribe_v5_retain_handling_values() -> None:
    subscriptions = tuple(
        TopicSubscription(filter="a", retain_handling=handling)
        for handling in RetainHandling
    )
    packet = SubscribePacket(packet_id=1, subscriptions=subscriptions)
    data = encode_packet(packet, V5)
    assert data == h("82 0F 00 01 00 00 01 61 00 00 01 61 10 00 01 61 20")
    assert _decode_all(V5, data) == [packet]


def test_encode_password_and_will_payload_accept_bytes_like() -> None:
    packet = ConnectPacket(
        client_id="c",
        username="u",
        password=bytearray(b"pw"),  # type: ignore[arg-type]  # bytes-like accepted
        will=Will(topic="w", payload=memoryview(b"x")),  # type: ignore[arg-type]  # bytes-like
    )
    (decoded,) = _decode_all(V5, encode_packet(packet, V5))
    assert isinstance(decoded, ConnectPacket)
    assert decoded.password == b"pw"
    assert decoded.will == Will(topic="w", payload=b"x")


def test_password_never_in_repr() -> None:
    packet = ConnectPacket(username="u", password=b"s3cret")
    assert "s3cret" not in repr(packet)


@pytest.mark.parametrize("version", [ProtocolVersion.V311, ProtocolVersion.V5])
@pytest.mark.parametrize("retain", [False, True])
@pytest.mark.parametrize("size", [0, 64, 120, 200, 16_000, 16_370, 16_380, 20_000])
@pytest.mark.parametrize(("qos", "packet_id"), [(0, 0), (1, 1), (2, 65535)])
def test_packets_encode_publish_fast_matches_encode_packet(
    version: ProtocolVersion, retain: bool, size: int, qos: int, packet_id: int
) -> None:
    from trio_mqttconn._packets import encode_publish_fast

    payload = bytes(range(256)) * (size // 256) + bytes(size % 256)
    # (A topic of 300 bytes: its length takes both bytes; the remaining length
    # goes from one byte to two at 128 and to three at 16,384.)
    for topic in ("a/b", "ünïcode/tøpic", "t" * 300):
        expected = encode_packet(
            PublishPacket(
                topic=topic,
                payload=payload,
                retain=retain,
                qos=QoS(qos),
                packet_id=packet_id or None,
            ),
            version,
        )
        fast = encode_publish_fast(
            topic, payload, retain, version is ProtocolVersion.V5, qos, packet_id
        )
        assert fast == expected


def test_packets_encode_publish_fast_too_large() -> None:
    from trio_mqttconn._packets import encode_publish_fast

    class Huge(bytes):
        def __len__(self) -> int:
            return 268_435_455

    with pytest.raises(
        ValueError,
        match=r"^PUBLISH would have a remaining length of 268435461 bytes, the maximum "
        r"is 268435455; send less data$",
    ):
        encode_publish_fast("a/b", Huge(), False, True)
