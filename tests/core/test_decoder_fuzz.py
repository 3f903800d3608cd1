"""Property-based tests: round trips of generated packets, and hostile input.

The promise tested here (DESIGN.md, h11's ``next_event``): whatever bytes arrive,
the decoder returns packets, asks for more, or raises a ``ProtocolError``
subclass; nothing else escapes. And whatever it accepts, the encoder accepts too
and encodes to bytes that decode to the same packet.
"""

from __future__ import annotations

import functools
from typing import Any

import pytest
from hypothesis import given, settings, strategies as st

from tests._vectors import DECODE_ONLY, VECTORS
from trio_mqttconn._codec import MAX_VARINT, varint_bytes
from trio_mqttconn._enums import (
    PacketType,
    ProtocolVersion,
    QoS,
    ReasonCode,
    RetainHandling,
)
from trio_mqttconn._exceptions import ProtocolError
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
from trio_mqttconn._properties import (
    BINARY,
    PAIR,
    PROPERTY_TABLE,
    UTF8,
    VARINT,
    WILL,
    Properties,
)

V311 = ProtocolVersion.V311
V5 = ProtocolVersion.V5
T = PacketType
RC = ReasonCode

# MQTT strings: any code point but U+0000 and surrogates [v5:MQTT-1.5.4-1..2].
TEXT = st.text(
    st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=8
)
NAME = st.text(
    st.characters(exclude_categories=["Cs"], exclude_characters="\x00"),
    min_size=1,
    max_size=8,
)
# A PUBLISH topic has no wildcards [v5:MQTT-3.3.2-2].
TOPIC_CHARS = st.characters(exclude_categories=["Cs"], exclude_characters="\x00+#")
TOPIC_TEXT = st.text(TOPIC_CHARS, max_size=8)
TOPIC_NAME = st.text(TOPIC_CHARS, min_size=1, max_size=8)
DATA = st.binary(max_size=16)
PACKET_ID = st.integers(1, 65535)
QOS = st.sampled_from(QoS)


def _codes(*values: int) -> st.SearchStrategy[ReasonCode]:
    return st.sampled_from([ReasonCode(value) for value in values])


@functools.cache
def properties(context: int) -> st.SearchStrategy[Properties]:
    """Valid properties for *context* (a packet type or WILL)."""
    optional: dict[str, st.SearchStrategy[Any]] = {}
    for spec in PROPERTY_TABLE.values():
        if context not in spec.contexts:
            continue
        if spec.wire == PAIR:
            value: st.SearchStrategy[Any] = st.lists(
                st.tuples(TEXT, TEXT), max_size=3
            ).map(tuple)
        elif spec.wire == VARINT:
            size = 3 if context == T.PUBLISH else 1
            value = st.lists(st.integers(1, MAX_VARINT), max_size=size).map(tuple)
        elif spec.wire == UTF8:
            value = TEXT
        elif spec.wire == BINARY:
            value = DATA
        else:
            value = st.integers(spec.low, spec.high)
        optional[spec.name] = value

    def build(values: dict[str, Any]) -> Properties:
        # Authentication Data needs an Authentication Method (5.0 3.1.2.11.10).
        if "authentication_data" in values:
            values.setdefault("authentication_method", "m")
        return Properties(**values)

    return st.fixed_dictionaries({}, optional=optional).map(build)


def _props(version: ProtocolVersion, context: int) -> st.SearchStrategy[Properties]:
    return properties(context) if version == V5 else st.just(Properties())


@st.composite
def connects(draw: st.DrawFn, version: ProtocolVersion) -> ConnectPacket:
    client_id = draw(TEXT)
    clean_start = draw(st.booleans())
    if version == V311 and not client_id:
        clean_start = True  # [v311:MQTT-3.1.3-7]
    will = None
    if draw(st.booleans()):
        will = Will(
            topic=draw(NAME),
            payload=draw(DATA),
            qos=draw(QOS),
            retain=draw(st.booleans()),
            properties=draw(_props(version, WILL)),
        )
    username = draw(st.none() | TEXT)
    password = draw(st.none() | DATA)
    if version == V311 and username is None:
        password = None  # [v311:MQTT-3.1.2-22]
    return ConnectPacket(
        client_id=client_id,
        protocol_version=version,
        clean_start=clean_start,
        keepalive=draw(st.integers(0, 65535)),
        username=username,
        password=password,
        will=will,
        properties=draw(_props(version, T.CONNECT)),
    )


@st.composite
def connacks(draw: st.DrawFn, version: ProtocolVersion) -> ConnAckPacket:
    if version == V5:
        code = draw(_codes(0x00, 0x80, 0x81, 0x84, 0x87, 0x8A, 0x9C, 0x9F))
    else:
        code = draw(_codes(0x00, 0x84, 0x85, 0x86, 0x87, 0x88))
    return ConnAckPacket(
        session_present=draw(st.booleans()) and not code,
        reason_code=code,
        properties=draw(_props(version, T.CONNACK)),
    )


@st.composite
def publishes(draw: st.DrawFn, version: ProtocolVersion) -> PublishPacket:
    qos = draw(QOS)
    props = draw(_props(version, T.PUBLISH))
    topic = draw(TOPIC_TEXT if props.topic_alias is not None else TOPIC_NAME)
    return PublishPacket(
        topic=topic,
        payload=draw(st.binary(max_size=200)),
        qos=qos,
        retain=draw(st.booleans()),
        dup=bool(qos) and draw(st.booleans()),
        packet_id=draw(PACKET_ID) if qos else None,
        properties=props,
    )


def acks(version: ProtocolVersion) -> st.SearchStrategy[Packet]:
    def one(cls: Any, ptype: PacketType, *codes: int) -> st.SearchStrategy[Packet]:
        code = _codes(*codes) if version == V5 else st.just(RC.SUCCESS)
        return st.builds(
            cls,
            packet_id=PACKET_ID,
            reason_code=code,
            properties=_props(version, ptype),
        )

    return st.one_of(
        one(PubAckPacket, T.PUBACK, 0x00, 0x10, 0x80, 0x97),
        one(PubRecPacket, T.PUBREC, 0x00, 0x10, 0x91, 0x99),
        one(PubRelPacket, T.PUBREL, 0x00, 0x92),
        one(PubCompPacket, T.PUBCOMP, 0x00, 0x92),
    )


@st.composite
def subscribes(draw: st.DrawFn, version: ProtocolVersion) -> SubscribePacket:
    if version == V5:
        sub = st.builds(
            TopicSubscription,
            filter=TEXT,
            qos=QOS,
            no_local=st.booleans(),
            retain_as_published=st.booleans(),
            retain_handling=st.sampled_from(RetainHandling),
        )
    else:
        sub = st.builds(TopicSubscription, filter=TEXT, qos=QOS)
    return SubscribePacket(
        packet_id=draw(PACKET_ID),
        subscriptions=tuple(draw(st.lists(sub, min_size=1, max_size=3))),
        properties=draw(_props(version, T.SUBSCRIBE)),
    )


def others(version: ProtocolVersion) -> st.SearchStrategy[Packet]:
    suback_codes = (
        _codes(0x00, 0x01, 0x02, 0x80, 0x87, 0xA2)
        if version == V5
        else _codes(0x00, 0x01, 0x02, 0x80)
    )
    unsuback_codes = (
        st.lists(_codes(0x00, 0x11, 0x80, 0x91), min_size=1, max_size=3).map(tuple)
        if version == V5
        else st.just(())
    )
    strategies: list[st.SearchStrategy[Packet]] = [
        st.builds(
            SubAckPacket,
            packet_id=PACKET_ID,
            reason_codes=st.lists(suback_codes, min_size=1, max_size=3).map(tuple),
            properties=_props(version, T.SUBACK),
        ),
        st.builds(
            UnsubscribePacket,
            packet_id=PACKET_ID,
            filters=st.lists(TEXT, min_size=1, max_size=3).map(tuple),
            properties=_props(version, T.UNSUBSCRIBE),
        ),
        st.builds(
            UnsubAckPacket,
            packet_id=PACKET_ID,
            reason_codes=unsuback_codes,
            properties=_props(version, T.UNSUBACK),
        ),
        st.just(PingReqPacket()),
        st.just(PingRespPacket()),
    ]
    if version == V5:
        strategies += [
            st.builds(
                DisconnectPacket,
                reason_code=_codes(0x00, 0x04, 0x81, 0x8E, 0x95, 0xA2),
                properties=_props(version, T.DISCONNECT),
            ),
            st.builds(
                AuthPacket,
                reason_code=_codes(0x00, 0x18, 0x19),
                properties=_props(version, T.AUTH),
            ),
        ]
    else:
        strategies.append(st.just(DisconnectPacket()))
    return st.one_of(strategies)


def packets(version: ProtocolVersion) -> st.SearchStrategy[Packet]:
    return st.one_of(
        connects(version),
        connacks(version),
        publishes(version),
        acks(version),
        subscribes(version),
        others(version),
    )


VERSIONED = st.sampled_from([V311, V5]).flatmap(
    lambda version: st.tuples(st.just(version), st.lists(packets(version), max_size=4))
)


@settings(max_examples=300, deadline=None)
@given(VERSIONED, st.data())
def test_round_trip_generated_packets(
    versioned: tuple[ProtocolVersion, list[Packet]], data: st.DataObject
) -> None:
    version, generated = versioned
    encoded = [encode_packet(packet, version) for packet in generated]
    stream = b"".join(encoded)
    # Fed in chunks of random sizes, the stream decodes to the same packets.
    decoder = PacketDecoder(version)
    got: list[Packet] = []
    pos = 0
    while pos < len(stream):
        size = data.draw(st.integers(1, max(1, len(stream) - pos)))
        decoder.feed(stream[pos : pos + size])
        pos += size
        got.extend(decoder.packets())
    assert got == generated
    assert decoder.next_packet() is None


# ---------------------------------------------------------------- hostile input

_GOLDEN = [(version, data) for _, version, data, _ in VECTORS + DECODE_ONLY]
_TAIL = bytes([0x00, 0x0A, 0x01, 0x7F, 0xFF, 0x26, 0x00, 0x01, 0x61, 0x00])


# First bytes of every packet type with legal flags (PUBLISH: all but QoS 3 and
# DUP with QoS 0), so that framed garbage reaches the body decoders.
_FIRST_BYTES = bytes(
    (
        0x10,
        0x20,
        0x30,
        0x31,
        0x32,
        0x33,
        0x34,
        0x35,
        0x3A,
        0x3B,
        0x3C,
        0x3D,
        0x40,
        0x50,
        0x62,
        0x70,
        0x82,
        0x90,
        0xA2,
        0xB0,
        0xC0,
        0xD0,
        0xE0,
        0xF0,
    )
)


def hostile(raw: bytes) -> tuple[ProtocolVersion, bytes, int, int | None]:
    """Turn one random byte string into a decoder input.

    Hypothesis spends about a millisecond per drawn argument, so the whole case
    comes from one ``binary`` draw (which also shrinks well): the first three
    bytes pick the protocol version and shape, where the input is split in two
    feeds, and the maximum packet size; the rest is the material. Shapes:
    0 raw bytes; 1 a legal first byte and the right remaining length around a
    random body (every body decoder runs on garbage, short bodies included);
    2 a golden packet with bytes overwritten and maybe cut short; 3 like 1 with
    any first byte.
    """
    control, cut, limit_byte, body = (*raw[:3].ljust(3, b"\x00"), raw[3:])
    version = V5 if control & 1 else V311
    limit = None if limit_byte < 128 else limit_byte - 126  # 2..129
    shape = control >> 1 & 3
    if shape == 2 and body:
        golden = bytearray(_GOLDEN[body[0] % len(_GOLDEN)][1])
        for index in range(1, min(len(body) - 1, 9), 2):
            golden[body[index] * len(golden) // 256] = body[index + 1]
        if control & 0x80:
            del golden[cut % len(golden) :]
        data = bytes(golden)
    elif shape in (1, 3) and body:
        first = _FIRST_BYTES[body[0] % len(_FIRST_BYTES)] if shape == 1 else body[0]
        data = bytes((first,)) + varint_bytes(len(body) - 1) + body[1:]
    else:
        data = body
    return version, data, cut, limit


def _version_of(packet: Packet, version: ProtocolVersion) -> ProtocolVersion:
    return packet.protocol_version if isinstance(packet, ConnectPacket) else version


@settings(max_examples=10_000, deadline=None)
@given(st.binary(max_size=80))
def test_arbitrary_bytes_raise_only_protocol_errors(raw: bytes) -> None:
    version, data, cut, limit = hostile(raw)
    # Two feeds: the decoder must also pick up correctly after good packets.
    decoder = PacketDecoder(version, max_packet_size=limit)
    accepted: list[Packet] = []
    error: ProtocolError | None = None
    try:
        for chunk in (data[:cut], data[cut:]):
            decoder.feed(chunk)
            accepted.extend(decoder.packets())
    except ProtocolError as exc:
        error = exc
    if error is not None:
        assert 0x80 < error.reason_code <= 0x95
    # The decoder never looks past the end of a packet: bytes appended after
    # the input change nothing about the packets (or the error) before them.
    longer = PacketDecoder(version, max_packet_size=limit)
    longer.feed(data + _TAIL)
    for packet in accepted:
        assert longer.next_packet() == packet
    if error is not None:
        with pytest.raises(type(error)) as info:
            longer.next_packet()
        assert str(info.value) == str(error)
    # Whatever was accepted re-encodes, and the encoding decodes the same
    # (one asymmetry: a 3.1.1 server must answer an empty client id with
    # clean session 0 by CONNACK 0x02, but a client must not send it).
    for packet in accepted:
        packet_version = _version_of(packet, version)
        if (
            isinstance(packet, ConnectPacket)
            and packet_version == V311
            and not packet.client_id
            and not packet.clean_start
        ):
            continue
        again = PacketDecoder(packet_version)
        again.feed(encode_packet(packet, packet_version))
        assert again.packets() == [packet]


def test_hostile_shapes() -> None:
    # The input builder itself: each shape does what its docstring says.
    assert hostile(b"") == (V311, b"", 0, None)
    assert hostile(bytes([0x01, 5, 200]) + b"abc") == (V5, b"abc", 5, 74)
    assert hostile(bytes([0x02, 0, 0]) + b"\x00xy") == (V311, b"\x10\x02xy", 0, None)
    assert hostile(bytes([0x06, 0, 0]) + b"\x00xy") == (V311, b"\x00\x02xy", 0, None)
    golden = _GOLDEN[0][1]
    _, data, _, _ = hostile(bytes([0x04, 0, 0, 0, 0, 0xEE]))
    assert data == b"\xee" + golden[1:]
    _, data, _, _ = hostile(bytes([0x84, 3, 0, 0]))
    assert data == golden[:3]
