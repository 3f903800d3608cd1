"""One frozen attrs class per MQTT control packet, and their encoding/decoding.

CONTRACT (fixed, other modules code against it; the implementation may change):

* the packet classes below with exactly these fields (defaults may be added);
* ``Packet`` — the union of all packet classes;
* ``encode_packet(packet, version) -> bytes`` — validates, then encodes; bad input
  raises ``ValueError`` naming the value before any byte is produced;
* ``PacketDecoder(version, *, max_packet_size=None)`` with ``feed(data)`` (buffers),
  ``next_packet() -> Packet | None`` (None = need more bytes) and
  ``packets() -> list[Packet]`` (every complete packet in the buffer); malformed input
  raises only ``ProtocolError`` subclasses. ``version`` is a settable attribute.
  It decodes both directions (client->server packets too, for test brokers).
* MQTT 3.1.1 return codes are mapped onto ``ReasonCode`` (see ``_enums.ReasonCode``).

Theory of operation (decoding). The decoder keeps one immutable ``bytes`` buffer
and an offset into it. ``packets()`` walks the buffer packet by packet: the first
byte indexes a 256-entry table (one per protocol version) that yields the body
decoder for that type and flag combination, or None for reserved types and illegal
flags; the remaining length gives the packet end, which is checked against the
maximum packet size before anything else is read. Body decoders read by index
between the body start and the packet end and must land exactly on the end
(bytes left over are malformed). Nothing is copied except the values handed out:
a payload is one slice of the buffer, topics are decoded once and cached.
``feed()`` replaces the buffer when everything was consumed, or joins the unread
tail with the new data; while a packet larger than what is buffered is still
arriving, chunks are collected in a list and joined once when it is complete, so a
large packet in many small reads costs O(n), not O(n^2).

A decoded PUBLISH is built without ``__init__`` (on its unfrozen twin, see
`._frozen`): the input was validated while parsing, and a frozen attrs ``__init__``
costs one ``object.__setattr__`` per field, which doubles the cost of a small
PUBLISH.

Encoding validates every field first (``ValueError``/``TypeError`` naming the value)
and assembles the packet with one join, so a failed encode produces no bytes.
"""

from __future__ import annotations

import typing
from collections.abc import Callable
from typing import Any, Final, TypeAlias

import attrs

from ._codec import (
    MAX_VARINT,
    NeedMoreData,
    check_utf8,
    decode_binary,
    decode_u8,
    decode_u16,
    decode_utf8,
    decode_varint,
    utf8_bytes,
    varint_bytes,
)
from ._enums import PacketType, ProtocolVersion, QoS, ReasonCode, RetainHandling
from ._exceptions import MalformedPacketError, PacketTooLargeError, ProtocolError
from ._frozen import unfrozen_twin
from ._properties import (
    EMPTY_PROPERTIES,
    WILL,
    Properties,
    decode_properties,
    encode_properties,
)

__all__ = [
    "AuthPacket",
    "ConnAckPacket",
    "ConnectPacket",
    "DisconnectPacket",
    "Packet",
    "PacketDecoder",
    "PingReqPacket",
    "PingRespPacket",
    "PubAckPacket",
    "PubCompPacket",
    "PubRecPacket",
    "PubRelPacket",
    "PublishPacket",
    "SubAckPacket",
    "SubscribePacket",
    "TopicSubscription",
    "UnsubAckPacket",
    "UnsubscribePacket",
    "Will",
    "encode_packet",
    "encode_publish_fast",
]


@attrs.frozen(kw_only=True)
class Will:
    """The message the broker publishes when the client vanishes without DISCONNECT."""

    topic: str
    """Topic the will is published to."""
    payload: bytes = b""
    """The will message."""
    qos: QoS = QoS.AT_MOST_ONCE
    """QoS the broker publishes it with."""
    retain: bool = False
    """Whether the broker retains it."""
    properties: Properties = EMPTY_PROPERTIES
    """MQTT 5 will properties (will delay, expiry, content type ...)."""


@attrs.frozen(kw_only=True)
class ConnectPacket:
    """CONNECT: the first packet a client sends."""

    client_id: str = ""
    """Client identifier; empty asks the broker to assign one."""
    protocol_version: ProtocolVersion = ProtocolVersion.V5
    """Protocol level; it decides how the whole packet is encoded."""
    clean_start: bool = True
    """Start a new session (3.1.1: clean session)."""
    keepalive: int = 60
    """Keep alive in seconds, 0..65535; 0 turns it off."""
    username: str | None = None
    """User name, or None for none."""
    password: bytes | None = attrs.field(default=None, repr=False)
    """Password, or None for none; never shown in reprs."""
    will: Will | None = None
    """The will message, or None for none."""
    properties: Properties = EMPTY_PROPERTIES
    """MQTT 5 CONNECT properties."""


@attrs.frozen(kw_only=True)
class ConnAckPacket:
    """CONNACK: the broker's answer to CONNECT."""

    session_present: bool = False
    """Whether the broker resumed a stored session."""
    reason_code: ReasonCode = ReasonCode.SUCCESS
    """Outcome; 3.1.1 return codes are mapped onto MQTT 5 codes."""
    properties: Properties = EMPTY_PROPERTIES
    """MQTT 5 CONNACK properties (limits the broker imposes)."""


@attrs.frozen(kw_only=True)
class PublishPacket:
    """PUBLISH: an application message, in either direction."""

    topic: str
    """Topic name; empty only with a topic alias (MQTT 5)."""
    payload: bytes = b""
    """The application message."""
    qos: QoS = QoS.AT_MOST_ONCE
    """Quality of service."""
    retain: bool = False
    """Retain flag."""
    dup: bool = False
    """Set on a re-delivery of a QoS 1/2 message; always False for QoS 0."""
    packet_id: int | None = None
    """1..65535 for QoS 1/2, None for QoS 0."""
    properties: Properties = EMPTY_PROPERTIES
    """MQTT 5 PUBLISH properties."""


@attrs.frozen(kw_only=True)
class PubAckPacket:
    """PUBACK: acknowledges a QoS 1 PUBLISH."""

    packet_id: int
    """Identifier of the packet acknowledged."""
    reason_code: ReasonCode = ReasonCode.SUCCESS
    """Outcome (MQTT 5; always SUCCESS in 3.1.1)."""
    properties: Properties = EMPTY_PROPERTIES
    """MQTT 5 properties (reason string, user properties)."""


@attrs.frozen(kw_only=True)
class PubRecPacket:
    """PUBREC: first acknowledgement of a QoS 2 PUBLISH."""

    packet_id: int
    """Identifier of the packet acknowledged."""
    reason_code: ReasonCode = ReasonCode.SUCCESS
    """Outcome (MQTT 5; always SUCCESS in 3.1.1)."""
    properties: Properties = EMPTY_PROPERTIES
    """MQTT 5 properties (reason string, user properties)."""


@attrs.frozen(kw_only=True)
class PubRelPacket:
    """PUBREL: releases a QoS 2 PUBLISH after PUBREC."""

    packet_id: int
    """Identifier of the packet acknowledged."""
    reason_code: ReasonCode = ReasonCode.SUCCESS
    """Outcome (MQTT 5; always SUCCESS in 3.1.1)."""
    properties: Properties = EMPTY_PROPERTIES
    """MQTT 5 properties (reason string, user properties)."""


@attrs.frozen(kw_only=True)
class PubCompPacket:
    """PUBCOMP: completes a QoS 2 exchange."""

    packet_id: int
    """Identifier of the packet acknowledged."""
    reason_code: ReasonCode = ReasonCode.SUCCESS
    """Outcome (MQTT 5; always SUCCESS in 3.1.1)."""
    properties: Properties = EMPTY_PROPERTIES
    """MQTT 5 properties (reason string, user properties)."""


@attrs.frozen(kw_only=True)
class TopicSubscription:
    """One topic filter of a SUBSCRIBE, with its subscription options."""

    filter: str
    """Topic filter."""
    qos: QoS = QoS.AT_MOST_ONCE
    """Maximum QoS asked for."""
    no_local: bool = False
    """MQTT 5: do not send back this client's own messages."""
    retain_as_published: bool = False
    """MQTT 5: keep the retain flag of forwarded messages."""
    retain_handling: RetainHandling = RetainHandling.SEND_ON_SUBSCRIBE
    """MQTT 5: when retained messages are sent."""


@attrs.frozen(kw_only=True)
class SubscribePacket:
    """SUBSCRIBE: asks for messages matching one or more topic filters."""

    packet_id: int
    """Packet identifier, 1..65535."""
    subscriptions: tuple[TopicSubscription, ...]
    """One or more topic filters with their options."""
    properties: Properties = EMPTY_PROPERTIES
    """MQTT 5 properties (subscription identifier, user properties)."""


@attrs.frozen(kw_only=True)
class SubAckPacket:
    """SUBACK: one reason code per filter of the SUBSCRIBE it answers."""

    packet_id: int
    """Identifier of the SUBSCRIBE answered."""
    reason_codes: tuple[ReasonCode, ...]
    """Granted QoS or failure, one per topic filter, in order."""
    properties: Properties = EMPTY_PROPERTIES
    """MQTT 5 properties (reason string, user properties)."""


@attrs.frozen(kw_only=True)
class UnsubscribePacket:
    """UNSUBSCRIBE: removes one or more topic filters."""

    packet_id: int
    """Packet identifier, 1..65535."""
    filters: tuple[str, ...]
    """One or more topic filters."""
    properties: Properties = EMPTY_PROPERTIES
    """MQTT 5 properties (user properties)."""


@attrs.frozen(kw_only=True)
class UnsubAckPacket:
    """UNSUBACK: answers UNSUBSCRIBE (reason codes only in MQTT 5)."""

    packet_id: int
    """Identifier of the UNSUBSCRIBE answered."""
    reason_codes: tuple[ReasonCode, ...] = ()
    """MQTT 5: one per topic filter, in order; empty in 3.1.1."""
    properties: Properties = EMPTY_PROPERTIES
    """MQTT 5 properties (reason string, user properties)."""


@attrs.frozen
class PingReqPacket:
    """PINGREQ: keep-alive probe from the client."""


@attrs.frozen
class PingRespPacket:
    """PINGRESP: the broker's answer to PINGREQ."""


@attrs.frozen(kw_only=True)
class DisconnectPacket:
    """DISCONNECT: orderly end of the connection, in either direction (MQTT 5)."""

    reason_code: ReasonCode = ReasonCode.NORMAL_DISCONNECTION
    """Why the connection ends (MQTT 5)."""
    properties: Properties = EMPTY_PROPERTIES
    """MQTT 5 properties (session expiry, reason string, server reference)."""


@attrs.frozen(kw_only=True)
class AuthPacket:
    """AUTH: enhanced authentication exchange (MQTT 5)."""

    reason_code: ReasonCode = ReasonCode.SUCCESS
    """SUCCESS, CONTINUE_AUTHENTICATION or RE_AUTHENTICATE."""
    properties: Properties = EMPTY_PROPERTIES
    """Authentication method and data, reason string, user properties."""


Packet: TypeAlias = (
    ConnectPacket
    | ConnAckPacket
    | PublishPacket
    | PubAckPacket
    | PubRecPacket
    | PubRelPacket
    | PubCompPacket
    | SubscribePacket
    | SubAckPacket
    | UnsubscribePacket
    | UnsubAckPacket
    | PingReqPacket
    | PingRespPacket
    | DisconnectPacket
    | AuthPacket
)


_T = PacketType
_new = object.__new__
_UNFROZEN_PUBLISH: Final = unfrozen_twin(PublishPacket)
_QOS: Final = (QoS.AT_MOST_ONCE, QoS.AT_LEAST_ONCE, QoS.EXACTLY_ONCE)
_RC: Final[dict[int, ReasonCode]] = {int(rc): rc for rc in ReasonCode}
_PINGREQ: Final = PingReqPacket()
_PINGRESP: Final = PingRespPacket()
_DISCONNECT: Final = DisconnectPacket()
_AUTH: Final = AuthPacket()

# Reason codes each MQTT 5 packet may carry (5.0 sections 3.2.2.2 ... 3.15.2.1).
_CONNACK_CODES: Final = frozenset(
    {0x00, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8A, 0x8C}
    | {0x90, 0x95, 0x97, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9F}
)
_PUBACK_CODES: Final = frozenset({0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99})
_PUBREL_CODES: Final = frozenset({0x00, 0x92})
_SUBACK_CODES: Final = frozenset(
    {0x00, 0x01, 0x02, 0x80, 0x83, 0x87, 0x8F, 0x91, 0x97, 0x9E, 0xA1, 0xA2}
)
_UNSUBACK_CODES: Final = frozenset({0x00, 0x11, 0x80, 0x83, 0x87, 0x8F, 0x91})
_DISCONNECT_CODES: Final = frozenset(
    {0x00, 0x04, 0x80, 0x81, 0x82, 0x83, 0x87, 0x89, 0x8B, 0x8D, 0x8E, 0x8F, 0x90}
    | {0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9E}
    | {0x9F, 0xA0, 0xA1, 0xA2}
)
_AUTH_CODES: Final = frozenset({0x00, 0x18, 0x19})
# [v311:MQTT-3.9.3-2] SUBACK return codes 0x00, 0x01, 0x02 and 0x80 only.
_SUBACK_CODES_V311: Final = frozenset({0x00, 0x01, 0x02, 0x80})
# MQTT 3.1.1 CONNACK return codes 0..5 as MQTT 5 reason codes, and back.
_CONNACK_FROM_V311: Final = {
    0: ReasonCode.SUCCESS,
    1: ReasonCode.UNSUPPORTED_PROTOCOL_VERSION,
    2: ReasonCode.CLIENT_IDENTIFIER_NOT_VALID,
    3: ReasonCode.SERVER_UNAVAILABLE,
    4: ReasonCode.BAD_USER_NAME_OR_PASSWORD,
    5: ReasonCode.NOT_AUTHORIZED,
}
_CONNACK_TO_V311: Final = {int(rc): code for code, rc in _CONNACK_FROM_V311.items()}

# Required fixed-header flags per packet type [v5:MQTT-2.1.3-1] (PUBLISH varies).
_FLAGS: Final = {1: 0, 2: 0, 4: 0, 5: 0, 6: 2, 7: 0, 8: 2, 9: 0, 10: 2, 11: 0}
_FLAGS.update({12: 0, 13: 0, 14: 0, 15: 0})

_TOPIC_CACHE_SIZE: Final = 1024
_TOPIC_CACHE_ITEM: Final = 256  # longer topics are not worth keeping
_topics_in: dict[bytes, str] = {}
"""Decoded topic names by their bytes; only valid names get in."""
_topics_out: dict[str, bytes] = {}
"""Encoded topic names by their text; only valid names get in."""


# ---------------------------------------------------------------- decoding

_Decoder: TypeAlias = Callable[[bytes, int, int, int], Packet]


def _leftover(pos: int, end: int, name: str) -> None:
    if pos != end:
        extra = end - pos
        raise MalformedPacketError(
            f"{name} has {extra} byte{'' if extra == 1 else 's'} left over"
        )


def _packet_id(buf: bytes, pos: int, end: int, name: str) -> int:
    if pos + 2 > end:
        raise MalformedPacketError(
            f"packet ends inside the packet identifier of {name}"
        )
    packet_id = buf[pos] << 8 | buf[pos + 1]
    if not packet_id:
        # [v5:MQTT-2.2.1-3] [v311:MQTT-2.3.1-1] identifiers are non-zero.
        raise ProtocolError(f"{name} has packet identifier 0")
    return packet_id


def _reason(code: int, allowed: frozenset[int], name: str) -> ReasonCode:
    if code not in allowed:
        raise ProtocolError(f"reason code 0x{code:02X} is not allowed in {name}")
    return _RC[code]


def _decode_topic(raw: bytes) -> str:
    # Only on a cache miss: the cache holds valid names only.
    topic = check_utf8(raw, "topic")
    if b"+" in raw or b"#" in raw:
        # [v5:MQTT-3.3.2-2] [v311:MQTT-3.3.2-2] no wildcards in a topic name. A
        # name that breaks the protocol is a Protocol Error (0x82); 0x90 Topic
        # Name invalid is for a correctly formed name the receiver does not accept.
        raise ProtocolError(
            f"PUBLISH has a wildcard ('+' or '#') in its topic name {topic[:80]!r}"
        )
    if len(raw) <= _TOPIC_CACHE_ITEM:
        if len(_topics_in) >= _TOPIC_CACHE_SIZE:
            _topics_in.clear()
        _topics_in[raw] = topic
    return topic


def _publish(
    topic: str,
    payload: bytes,
    b0: int,
    qos: int,
    packet_id: int | None,
    properties: Properties,
) -> PublishPacket:
    # The hot path: plain slot stores on the unfrozen twin (a quarter of the cost
    # of the generated __init__); the values were validated by the caller.
    packet = _new(_UNFROZEN_PUBLISH)
    packet.topic = topic
    packet.payload = payload
    packet.qos = _QOS[qos]
    packet.retain = b0 & 1 == 1
    packet.dup = b0 & 8 == 8
    packet.packet_id = packet_id
    packet.properties = properties
    packet.__class__ = PublishPacket
    return packet  # type: ignore[no-any-return]


def _d_publish_v311(buf: bytes, pos: int, end: int, b0: int) -> Packet:
    if pos + 2 > end:
        raise MalformedPacketError("packet ends inside the length of the topic")
    start = pos + 2
    pos = start + (buf[pos] << 8 | buf[pos + 1])
    if pos > end:
        raise MalformedPacketError("topic runs past the end of the packet")
    raw = buf[start:pos]
    topic = _topics_in.get(raw) or _decode_topic(raw)
    if not topic:
        # [v311:MQTT-4.7.3-1] topic names are at least one character long.
        raise ProtocolError("PUBLISH has an empty topic")
    qos = b0 >> 1 & 3
    packet_id = None
    if qos:
        packet_id = _packet_id(buf, pos, end, "PUBLISH")
        pos += 2
    return _publish(topic, buf[pos:end], b0, qos, packet_id, EMPTY_PROPERTIES)


def _d_publish_v5(buf: bytes, pos: int, end: int, b0: int) -> Packet:
    if pos + 2 > end:
        raise MalformedPacketError("packet ends inside the length of the topic")
    start = pos + 2
    pos = start + (buf[pos] << 8 | buf[pos + 1])
    if pos > end:
        raise MalformedPacketError("topic runs past the end of the packet")
    raw = buf[start:pos]
    topic = _topics_in.get(raw)
    if topic is None:
        topic = _decode_topic(raw)
    qos = b0 >> 1 & 3
    packet_id = None
    if qos:
        packet_id = _packet_id(buf, pos, end, "PUBLISH")
        pos += 2
    if pos < end and not buf[pos]:
        properties = EMPTY_PROPERTIES
        pos += 1
    else:
        properties, pos = decode_properties(buf, pos, end, _T.PUBLISH)
    if not topic and properties.topic_alias is None:
        # A zero-length topic is only allowed with a Topic Alias (5.0 3.3.2.1).
        raise ProtocolError("PUBLISH has an empty topic and no topic alias")
    return _publish(topic, buf[pos:end], b0, qos, packet_id, properties)


def _d_connect(buf: bytes, pos: int, end: int, b0: int) -> Packet:
    # The CONNECT's own protocol level decides how the rest is read.
    name, pos = decode_utf8(buf, pos, end, "protocol name")
    if name != "MQTT":
        raise ProtocolError(
            f"unsupported protocol name {name!r}",
            reason_code=ReasonCode.UNSUPPORTED_PROTOCOL_VERSION,
        )
    level, pos = decode_u8(buf, pos, end, "protocol level")
    if level != 4 and level != 5:
        raise ProtocolError(
            f"unsupported protocol level {level}",
            reason_code=ReasonCode.UNSUPPORTED_PROTOCOL_VERSION,
        )
    flags, pos = decode_u8(buf, pos, end, "connect flags")
    if flags & 0x01:
        # [v5:MQTT-3.1.2-3] [v311:MQTT-3.1.2-3]
        raise MalformedPacketError("reserved connect flag is set")
    will_qos = flags >> 3 & 3
    if flags & 0x04:
        if will_qos == 3:
            # [v5:MQTT-3.1.2-12] [v311:MQTT-3.1.2-14]
            raise MalformedPacketError("will QoS is 3")
    elif flags & 0x38:
        # [v5:MQTT-3.1.2-11] [v5:MQTT-3.1.2-13]
        # [v311:MQTT-3.1.2-13] [v311:MQTT-3.1.2-15]
        raise MalformedPacketError("will QoS or will retain is set without a will")
    if level == 4 and flags & 0xC0 == 0x40:
        # [v311:MQTT-3.1.2-22]
        raise MalformedPacketError("password flag is set without the user name flag")
    keepalive, pos = decode_u16(buf, pos, end, "keep alive")
    properties = will_properties = EMPTY_PROPERTIES
    if level == 5:
        properties, pos = decode_properties(buf, pos, end, _T.CONNECT)
    # [v5:MQTT-3.1.3-1] payload order: client id, will, user name, password.
    client_id, pos = decode_utf8(buf, pos, end, "client identifier")
    will = None
    if flags & 0x04:
        if level == 5:
            will_properties, pos = decode_properties(buf, pos, end, WILL)
        will_topic, pos = decode_utf8(buf, pos, end, "will topic")
        will_payload, pos = decode_binary(buf, pos, end, "will payload")
        will = Will(
            topic=will_topic,
            payload=will_payload,
            qos=_QOS[will_qos],
            retain=bool(flags & 0x20),
            properties=will_properties,
        )
    username = password = None
    if flags & 0x80:
        username, pos = decode_utf8(buf, pos, end, "user name")
    if flags & 0x40:
        password, pos = decode_binary(buf, pos, end, "password")
    _leftover(pos, end, "CONNECT")
    return ConnectPacket(
        client_id=client_id,
        protocol_version=ProtocolVersion(level),
        clean_start=bool(flags & 0x02),
        keepalive=keepalive,
        username=username,
        password=password,
        will=will,
        properties=properties,
    )


def _d_connack_v311(buf: bytes, pos: int, end: int, b0: int) -> Packet:
    if end - pos != 2:
        raise MalformedPacketError(
            f"CONNACK has remaining length {end - pos}, MQTT 3.1.1 requires 2"
        )
    flags = buf[pos]
    code = buf[pos + 1]
    if flags & 0xFE:
        raise MalformedPacketError("reserved CONNACK flags are set")
    reason_code = _CONNACK_FROM_V311.get(code)
    if reason_code is None:
        raise ProtocolError(f"CONNACK return code {code} is reserved")
    if flags and code:
        # [v311:MQTT-3.2.2-4]
        raise ProtocolError("CONNACK refuses the connection but has session present")
    return ConnAckPacket(session_present=bool(flags), reason_code=reason_code)


def _d_connack_v5(buf: bytes, pos: int, end: int, b0: int) -> Packet:
    flags, pos = decode_u8(buf, pos, end, "connect acknowledge flags")
    code, pos = decode_u8(buf, pos, end, "reason code")
    if flags & 0xFE:
        # [v5:MQTT-3.2.2-1]
        raise MalformedPacketError("reserved CONNACK flags are set")
    reason_code = _reason(code, _CONNACK_CODES, "CONNACK")
    if flags and code >= 0x80:
        # [v5:MQTT-3.2.2-6]
        raise ProtocolError("CONNACK refuses the connection but has session present")
    properties, pos = decode_properties(buf, pos, end, _T.CONNACK)
    _leftover(pos, end, "CONNACK")
    return ConnAckPacket(
        session_present=bool(flags), reason_code=reason_code, properties=properties
    )


_AckClass: TypeAlias = (
    type[PubAckPacket] | type[PubRecPacket] | type[PubRelPacket] | type[PubCompPacket]
)


def _ack_decoders(
    cls: _AckClass, ptype: PacketType, allowed: frozenset[int]
) -> tuple[_Decoder, _Decoder]:
    name = ptype.name
    # The common case (packet id only: Success, no properties) is built as an
    # unfrozen twin (see _frozen): one per QoS 1/2 message in each direction.
    twin = unfrozen_twin(cls)
    success = ReasonCode.SUCCESS

    def plain(packet_id: int) -> Packet:
        packet = _new(twin)
        packet.packet_id = packet_id
        packet.reason_code = success
        packet.properties = EMPTY_PROPERTIES
        packet.__class__ = cls
        return packet  # type: ignore[no-any-return]

    def v311(buf: bytes, pos: int, end: int, b0: int) -> Packet:
        if end - pos != 2:
            raise MalformedPacketError(
                f"{name} has remaining length {end - pos}, MQTT 3.1.1 requires 2"
            )
        return plain(_packet_id(buf, pos, end, name))

    def v5(buf: bytes, pos: int, end: int, b0: int) -> Packet:
        packet_id = _packet_id(buf, pos, end, name)
        pos += 2
        if pos == end:
            # Remaining length 2: Success and no properties (5.0 3.4.2.1).
            return plain(packet_id)
        reason_code = _reason(buf[pos], allowed, name)
        pos += 1
        if pos == end:
            return cls(packet_id=packet_id, reason_code=reason_code)
        properties, pos = decode_properties(buf, pos, end, ptype)
        _leftover(pos, end, name)
        return cls(packet_id=packet_id, reason_code=reason_code, properties=properties)

    return v311, v5


def _id_and_properties(
    buf: bytes, pos: int, end: int, ptype: _T, *, v5: bool
) -> tuple[int, Properties, int]:
    """The variable header of (UN)SUBSCRIBE/(UN)SUBACK: packet id, then (MQTT 5)
    the properties. Returns them and the index after the header."""
    packet_id = _packet_id(buf, pos, end, ptype.name)
    if not v5:
        return packet_id, EMPTY_PROPERTIES, pos + 2
    properties, pos = decode_properties(buf, pos + 2, end, ptype)
    return packet_id, properties, pos


def _subscribe_decoder(v5: bool) -> _Decoder:
    def decode(buf: bytes, pos: int, end: int, b0: int) -> Packet:
        packet_id, properties, pos = _id_and_properties(
            buf, pos, end, _T.SUBSCRIBE, v5=v5
        )
        subscriptions = []
        while pos < end:
            topic_filter, pos = decode_utf8(buf, pos, end, "topic filter")
            options, pos = decode_u8(buf, pos, end, "subscription options")
            qos = options & 0x03
            if qos == 3:
                raise MalformedPacketError("subscription options have QoS 3")
            if v5:
                if options & 0xC0:
                    # [v5:MQTT-3.8.3-5]
                    raise MalformedPacketError(
                        "reserved bits of the subscription options are set"
                    )
                retain_handling = options >> 4 & 0x03
                if retain_handling == 3:
                    raise ProtocolError("subscription options have retain handling 3")
                subscriptions.append(
                    TopicSubscription(
                        filter=topic_filter,
                        qos=_QOS[qos],
                        no_local=bool(options & 0x04),
                        retain_as_published=bool(options & 0x08),
                        retain_handling=RetainHandling(retain_handling),
                    )
                )
            else:
                if options & 0xFC:
                    # [v311:MQTT-3.8.3-4]
                    raise MalformedPacketError(
                        "reserved bits of the requested QoS byte are set"
                    )
                subscriptions.append(
                    TopicSubscription(filter=topic_filter, qos=_QOS[qos])
                )
        if not subscriptions:
            # [v5:MQTT-3.8.3-2] [v311:MQTT-3.8.3-3]
            raise ProtocolError("SUBSCRIBE has no topic filter")
        return SubscribePacket(
            packet_id=packet_id,
            subscriptions=tuple(subscriptions),
            properties=properties,
        )

    return decode


def _suback_decoder(v5: bool) -> _Decoder:
    allowed = _SUBACK_CODES if v5 else _SUBACK_CODES_V311

    def decode(buf: bytes, pos: int, end: int, b0: int) -> Packet:
        packet_id, properties, pos = _id_and_properties(buf, pos, end, _T.SUBACK, v5=v5)
        if pos == end:
            raise ProtocolError("SUBACK has no reason code")
        return SubAckPacket(
            packet_id=packet_id,
            reason_codes=tuple(_reason(c, allowed, "SUBACK") for c in buf[pos:end]),
            properties=properties,
        )

    return decode


def _unsubscribe_decoder(v5: bool) -> _Decoder:
    def decode(buf: bytes, pos: int, end: int, b0: int) -> Packet:
        packet_id, properties, pos = _id_and_properties(
            buf, pos, end, _T.UNSUBSCRIBE, v5=v5
        )
        filters = []
        while pos < end:
            topic_filter, pos = decode_utf8(buf, pos, end, "topic filter")
            filters.append(topic_filter)
        if not filters:
            # [v5:MQTT-3.10.3-2] [v311:MQTT-3.10.3-2]
            raise ProtocolError("UNSUBSCRIBE has no topic filter")
        return UnsubscribePacket(
            packet_id=packet_id, filters=tuple(filters), properties=properties
        )

    return decode


def _d_unsuback_v311(buf: bytes, pos: int, end: int, b0: int) -> Packet:
    if end - pos != 2:
        raise MalformedPacketError(
            f"UNSUBACK has remaining length {end - pos}, MQTT 3.1.1 requires 2"
        )
    return UnsubAckPacket(packet_id=_packet_id(buf, pos, end, "UNSUBACK"))


def _d_unsuback_v5(buf: bytes, pos: int, end: int, b0: int) -> Packet:
    packet_id, properties, pos = _id_and_properties(buf, pos, end, _T.UNSUBACK, v5=True)
    if pos == end:
        raise ProtocolError("UNSUBACK has no reason code")
    return UnsubAckPacket(
        packet_id=packet_id,
        reason_codes=tuple(
            _reason(c, _UNSUBACK_CODES, "UNSUBACK") for c in buf[pos:end]
        ),
        properties=properties,
    )


def _empty_decoder(name: str, packet: Packet) -> _Decoder:
    def decode(buf: bytes, pos: int, end: int, b0: int) -> Packet:
        if pos != end:
            raise MalformedPacketError(
                f"{name} has remaining length {end - pos}, it must be 0"
            )
        return packet

    return decode


def _d_disconnect_v5(buf: bytes, pos: int, end: int, b0: int) -> Packet:
    if pos == end:
        # Remaining length 0: Normal disconnection, no properties (5.0 3.14.2.1).
        return _DISCONNECT
    reason_code = _reason(buf[pos], _DISCONNECT_CODES, "DISCONNECT")
    if pos + 1 == end:
        return DisconnectPacket(reason_code=reason_code)
    properties, pos = decode_properties(buf, pos + 1, end, _T.DISCONNECT)
    _leftover(pos, end, "DISCONNECT")
    return DisconnectPacket(reason_code=reason_code, properties=properties)


def _d_auth(buf: bytes, pos: int, end: int, b0: int) -> Packet:
    if pos == end:
        # Remaining length 0: Success, no properties (5.0 3.15.2.1).
        return _AUTH
    reason_code = _reason(buf[pos], _AUTH_CODES, "AUTH")
    if pos + 1 == end:
        return AuthPacket(reason_code=reason_code)
    properties, pos = decode_properties(buf, pos + 1, end, _T.AUTH)
    _leftover(pos, end, "AUTH")
    return AuthPacket(reason_code=reason_code, properties=properties)


def _build_table(v5: bool) -> list[_Decoder | None]:
    table: list[_Decoder | None] = [None] * 256
    table[0x10] = _d_connect
    table[0x20] = _d_connack_v5 if v5 else _d_connack_v311
    publish = _d_publish_v5 if v5 else _d_publish_v311
    for flags in range(16):
        qos = flags >> 1 & 3
        # [v5:MQTT-3.3.1-4] QoS 3 is malformed; [v5:MQTT-3.3.1-2] DUP 0 for QoS 0.
        if qos != 3 and (qos or not flags & 0x08):
            table[0x30 | flags] = publish
    which = 1 if v5 else 0
    table[0x40] = _ack_decoders(PubAckPacket, _T.PUBACK, _PUBACK_CODES)[which]
    table[0x50] = _ack_decoders(PubRecPacket, _T.PUBREC, _PUBACK_CODES)[which]
    table[0x62] = _ack_decoders(PubRelPacket, _T.PUBREL, _PUBREL_CODES)[which]
    table[0x70] = _ack_decoders(PubCompPacket, _T.PUBCOMP, _PUBREL_CODES)[which]
    table[0x82] = _subscribe_decoder(v5)
    table[0x90] = _suback_decoder(v5)
    table[0xA2] = _unsubscribe_decoder(v5)
    table[0xB0] = _d_unsuback_v5 if v5 else _d_unsuback_v311
    table[0xC0] = _empty_decoder("PINGREQ", _PINGREQ)
    table[0xD0] = _empty_decoder("PINGRESP", _PINGRESP)
    if v5:
        table[0xE0] = _d_disconnect_v5
        table[0xF0] = _d_auth
    else:
        table[0xE0] = _empty_decoder("DISCONNECT", _DISCONNECT)
    return table


_TABLES: Final = {
    ProtocolVersion.V311: _build_table(False),
    ProtocolVersion.V5: _build_table(True),
}


def _bad_first_byte(b0: int, v5: bool) -> MalformedPacketError:
    ptype = b0 >> 4
    flags = b0 & 0x0F
    if not ptype:
        return MalformedPacketError("packet type 0 is reserved")
    if ptype == 15 and not v5:
        return MalformedPacketError(
            "packet type 15 (AUTH) does not exist in MQTT 3.1.1"
        )
    if ptype == 3:
        if flags & 0x06 == 0x06:
            # [v5:MQTT-3.3.1-4] [v311:MQTT-3.3.1-4]
            return MalformedPacketError("PUBLISH has QoS 3")
        # [v5:MQTT-3.3.1-2] [v311:MQTT-3.3.1-2]
        return MalformedPacketError("PUBLISH with QoS 0 has the DUP flag set")
    # [v5:MQTT-2.1.3-1] [v311:MQTT-2.2.2-2] invalid flags make a malformed packet.
    return MalformedPacketError(
        f"{PacketType(ptype).name} has fixed header flags 0x{flags:X}, "
        f"they must be 0x{_FLAGS[ptype]:X}"
    )


@typing.final
class PacketDecoder:
    """Incremental decoder: feed bytes, take complete packets.

    Feed whatever the transport delivered, then take every complete packet with
    `packets` (or one at a time with `next_packet`); a packet split across reads
    at any byte decodes the same. Input that breaks the protocol raises a
    `ProtocolError` subclass carrying the MQTT 5 reason code to disconnect with;
    after that the decoder stays failed and raises the same error again.

    Args:
        version: Protocol version of the connection; CONNECT packets are decoded
            by their own protocol level. Settable, e.g. once a test broker has
            read the client's CONNECT.
        max_packet_size: Largest packet accepted, in bytes including the fixed
            header; a larger one raises `PacketTooLargeError` as soon as its fixed
            header is read. None means the protocol limit.
    """

    def __init__(
        self, version: ProtocolVersion, *, max_packet_size: int | None = None
    ) -> None:
        self.version = version
        size: object = max_packet_size
        if size is not None and (not isinstance(size, int) or size < 2):
            raise ValueError(
                f"max_packet_size must be an integer of at least 2 or None, "
                f"not {max_packet_size!r}"
            )
        self.max_packet_size = max_packet_size
        """Largest packet accepted in bytes, or None for no limit."""
        self._buf = b""
        self._pos = 0
        # While a packet longer than what is buffered is still arriving, its
        # chunks wait here and are joined once (see the module comment).
        self._parts: list[bytes] = []
        self._parts_len = 0
        # Bytes from _pos needed to complete the next packet, 0 when not known.
        self._need = 0
        self._error: ProtocolError | None = None

    @property
    def version(self) -> ProtocolVersion:
        """Protocol version used for every packet but CONNECT."""
        return self._version

    @version.setter
    def version(self, value: ProtocolVersion) -> None:
        if value not in _TABLES:
            raise ValueError(
                f"version must be ProtocolVersion.V311 or ProtocolVersion.V5, "
                f"not {value!r}"
            )
        self._version = ProtocolVersion(value)
        self._table = _TABLES[self._version]

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        """Buffer *data*; nothing is decoded until `next_packet` or `packets`.

        Raises:
            ProtocolError: The decoder failed earlier.
        """
        if self._error is not None:
            raise self._error
        if type(data) is not bytes:
            data = bytes(data)  # our own immutable copy
        size = len(data)
        if not size:
            return
        if self._parts:
            self._parts.append(data)
            self._parts_len += size
            if self._parts_len >= self._need:
                self._buf = b"".join(self._parts)
                self._parts = []
            return
        pos = self._pos
        avail = len(self._buf) - pos
        if not avail:
            self._buf = data
        elif avail + size < self._need:
            self._parts = [self._buf[pos:], data]
            self._parts_len = avail + size
            self._buf = b""
        else:
            self._buf = self._buf[pos:] + data
        self._pos = 0

    def next_packet(self) -> Packet | None:
        """Return the next complete packet, or None when more bytes are needed.

        Raises:
            ProtocolError: The input is malformed or breaks the protocol (or did
                earlier); ``reason_code`` says which MQTT 5 reason code applies.
        """
        packets = self._decode(1)
        return packets[0] if packets else None

    def packets(self, limit: int | None = None) -> list[Packet]:
        """Return every complete packet in the buffer, in order (maybe none).

        Args:
            limit: Return at most this many (the rest stays buffered for the next
                call): a caller that handles a large read in parts keeps fewer
                decoded packets alive at once.

        If a bad packet follows good ones, the good ones are returned and the
        next call raises.

        Raises:
            ProtocolError: The input is malformed or breaks the protocol (or did
                earlier); ``reason_code`` says which MQTT 5 reason code applies.
            ValueError: *limit* is less than 1.
        """
        if limit is None:
            return self._decode(-1)
        if limit < 1:
            raise ValueError(f"limit must be at least 1, not {limit!r}")
        return self._decode(limit)

    def _decode(self, left: int) -> list[Packet]:
        # *left*: how many packets to return at most (-1: no limit).
        if self._error is not None:
            raise self._error
        out: list[Packet] = []
        if self._parts:
            return out
        buf = self._buf
        pos = self._pos
        end = len(buf)
        table = self._table
        limit = self.max_packet_size
        self._need = 0
        starved = False  # stopped for want of bytes
        try:
            while True:
                avail = end - pos
                if avail < 2:
                    if avail and table[buf[pos]] is None:
                        raise _bad_first_byte(buf[pos], self._version == 5)
                    starved = True
                    break
                b0 = buf[pos]
                decoder = table[b0]
                if decoder is None:
                    raise _bad_first_byte(b0, self._version == 5)
                length = buf[pos + 1]
                if length < 0x80:
                    start = pos + 2
                else:
                    try:
                        length, start = decode_varint(
                            buf, pos + 1, end, "remaining length"
                        )
                    except NeedMoreData:
                        starved = True
                        break
                stop = start + length
                if limit is not None and stop - pos > limit:
                    # [v5:MQTT-3.1.2-24] checked before the body is buffered.
                    raise PacketTooLargeError(
                        f"packet of {stop - pos} bytes exceeds the maximum packet "
                        f"size of {limit} bytes"
                    )
                if stop > end:
                    self._need = stop - pos
                    starved = True
                    break
                out.append(decoder(buf, start, stop, b0))
                pos = stop
                left -= 1
                if not left:
                    break
        except ProtocolError as exc:
            self._error = exc
            if not out:
                raise
        if pos == end:
            self._buf = b""
            pos = 0
        elif starved and pos:
            # Keep only the unread tail, not the (large) read it ends: every
            # packet before it was handed out already.
            self._buf = buf[pos:]
            pos = 0
        self._pos = pos
        return out


# ---------------------------------------------------------------- encoding

# Each encoder takes its own packet class; the table is keyed by that class.
_Encoder: TypeAlias = Callable[[Any, bool], bytes]
_AckPacket: TypeAlias = PubAckPacket | PubRecPacket | PubRelPacket | PubCompPacket


def _code_text(code: object) -> str:
    if isinstance(code, ReasonCode):
        return f"{code.name} (0x{code.value:02X})"
    return repr(code)


def _check_qos(value: object, what: str) -> QoS:
    if type(value) is QoS:
        return value
    if not isinstance(value, int) or isinstance(value, bool) or value not in (0, 1, 2):
        raise ValueError(f"{what} must be 0, 1 or 2, not {value!r}")
    return _QOS[value]


def _check_packet_id(value: object, name: str) -> int:
    if (
        not isinstance(value, int)
        or isinstance(value, bool)
        or not 1 <= value <= 0xFFFF
    ):
        # [v5:MQTT-2.2.1-3] [v311:MQTT-2.3.1-1]
        raise ValueError(f"{name} packet_id must be 1..65535, not {value!r}")
    return value


def _check_reason(code: object, allowed: frozenset[int], name: str) -> int:
    if not isinstance(code, int) or code not in allowed:
        raise ValueError(f"reason code {_code_text(code)} is not allowed in {name}")
    return code


def _check_bytes(value: object, what: str) -> bytes | bytearray | memoryview:
    if not isinstance(value, bytes | bytearray | memoryview):
        raise TypeError(f"{what} must be bytes, not {type(value).__name__}")
    return value


def _properties(props: Properties, ptype: PacketType, v5: bool) -> bytes:
    if v5:
        return encode_properties(props, ptype)
    if props is not EMPTY_PROPERTIES and props != EMPTY_PROPERTIES:
        raise ValueError(
            f"{ptype.name} properties need MQTT 5; remove them or use "
            f"ProtocolVersion.V5"
        )
    return b""


def _string(value: object, what: str) -> bytes:
    data = utf8_bytes(value, what)
    return len(data).to_bytes(2, "big") + data


def _binary(value: object, what: str) -> bytes:
    data = _check_bytes(value, what)
    if len(data) > 0xFFFF:
        raise ValueError(
            f"{what} is {len(data)} bytes, the maximum is 65535; shorten it"
        )
    return len(data).to_bytes(2, "big") + data


def _frame(b0: int, parts: list[bytes], name: str) -> bytes:
    size = sum(map(len, parts))
    if size > MAX_VARINT:
        raise ValueError(
            f"{name} would have a remaining length of {size} bytes, the maximum is "
            f"268435455; send less data"
        )
    parts.insert(0, bytes((b0,)) + varint_bytes(size))
    return b"".join(parts)


def _topic_bytes(topic: str) -> bytes:
    data = utf8_bytes(topic, "PUBLISH topic")
    if data and len(data) <= _TOPIC_CACHE_ITEM:
        if len(_topics_out) >= _TOPIC_CACHE_SIZE:
            _topics_out.clear()
        _topics_out[topic] = data
    return data


def _e_publish(packet: PublishPacket, v5: bool) -> bytes:
    topic = packet.topic
    data = _topics_out.get(topic) if type(topic) is str else None
    if data is None:
        data = _topic_bytes(topic)
    given_qos: object = packet.qos
    qos = given_qos if type(given_qos) is QoS else _check_qos(given_qos, "PUBLISH qos")
    properties = packet.properties
    if v5:
        props = (
            b"\x00"
            if properties is EMPTY_PROPERTIES
            else encode_properties(properties, _T.PUBLISH)
        )
        if not data and properties.topic_alias is None:
            raise ValueError(
                "PUBLISH topic is empty; give a topic name or a topic_alias property"
            )
    else:
        props = _properties(properties, _T.PUBLISH, v5)
        if not data:
            # [v311:MQTT-4.7.3-1]
            raise ValueError("PUBLISH topic is empty; give a topic name")
    if qos:
        packet_id = _check_packet_id(packet.packet_id, "PUBLISH").to_bytes(2, "big")
    else:
        if packet.packet_id is not None:
            # [v5:MQTT-2.2.1-2] [v311:MQTT-2.3.1-5]
            raise ValueError(
                f"PUBLISH with QoS 0 must have packet_id None, not {packet.packet_id!r}"
            )
        if packet.dup:
            # [v5:MQTT-3.3.1-2] [v311:MQTT-3.3.1-2]
            raise ValueError("PUBLISH with QoS 0 must have dup False")
        packet_id = b""
    payload = _check_bytes(packet.payload, "PUBLISH payload")
    size = 2 + len(data) + len(packet_id) + len(props) + len(payload)
    b0 = 0x30 | qos << 1
    if packet.retain:
        b0 |= 0x01
    if packet.dup:
        b0 |= 0x08
    if size < 0x80:
        header = bytes((b0, size, 0, len(data)))
    elif size < 0x4000:  # two bytes of remaining length (up to 16 KiB messages)
        header = bytes(
            (b0, size & 0x7F | 0x80, size >> 7, len(data) >> 8, len(data) & 0xFF)
        )
    elif size <= MAX_VARINT:
        header = bytes((b0,)) + varint_bytes(size) + len(data).to_bytes(2, "big")
    else:
        raise ValueError(
            f"PUBLISH would have a remaining length of {size} bytes, the maximum "
            f"is 268435455; send less data"
        )
    return b"".join((header, data, packet_id, props, payload))


def encode_publish_fast(
    topic: str,
    payload: bytes,
    retain: bool,
    v5: bool,
    qos: int = 0,
    packet_id: int = 0,
) -> bytes:
    """The bytes of a PUBLISH without properties: the hot path of publishing.

    Same bytes as ``encode_packet(PublishPacket(...), version)`` (DUP clear), without
    building the packet. The caller has validated *topic* (a non-empty topic name),
    passes *payload* as bytes and, for QoS 1 or 2, the *packet_id* it allocated.

    Raises:
        ValueError: the packet would be larger than MQTT allows.
    """
    data = _topics_out.get(topic)
    if data is None:
        data = _topic_bytes(topic)
    pid = packet_id.to_bytes(2, "big") if qos else b""
    size = 2 + len(data) + len(pid) + v5 + len(payload)
    b0 = 0x30 | qos << 1 | retain
    if size < 0x80:
        header = bytes((b0, size, 0, len(data)))
    elif size < 0x4000:  # two bytes of remaining length (up to 16 KiB messages)
        header = bytes(
            (b0, size & 0x7F | 0x80, size >> 7, len(data) >> 8, len(data) & 0xFF)
        )
    elif size <= MAX_VARINT:
        header = bytes((b0,)) + varint_bytes(size) + len(data).to_bytes(2, "big")
    else:
        raise ValueError(
            f"PUBLISH would have a remaining length of {size} bytes, the maximum "
            f"is 268435455; send less data"
        )
    if v5:
        return b"".join((header, data, pid, b"\x00", payload))
    return b"".join((header, data, pid, payload))


def _e_connect(packet: ConnectPacket, v5: bool) -> bytes:
    level = packet.protocol_version
    if level != (5 if v5 else 4):
        raise ValueError(
            f"CONNECT protocol_version {level!r} does not match the encoding "
            f"version; make them equal"
        )
    flags = 0x02 if packet.clean_start else 0x00
    parts: list[bytes] = [b"\x00\x04MQTT" + bytes((level,))]
    keepalive: object = packet.keepalive
    if not isinstance(keepalive, int) or not 0 <= keepalive <= 0xFFFF:
        raise ValueError(f"CONNECT keepalive must be 0..65535 s, not {keepalive!r}")
    parts.append(b"")  # flags and keep alive, filled in below
    parts.append(_properties(packet.properties, _T.CONNECT, v5))
    client_id = _string(packet.client_id, "CONNECT client_id")
    if not v5 and len(client_id) == 2 and not packet.clean_start:
        # [v311:MQTT-3.1.3-7]
        raise ValueError(
            "an empty client_id needs clean_start=True in MQTT 3.1.1; "
            "give a client_id or set clean_start"
        )
    parts.append(client_id)
    will = packet.will
    if will is not None:
        if not isinstance(will, Will):
            raise TypeError(f"CONNECT will must be a Will, not {type(will).__name__}")
        qos = _check_qos(will.qos, "will qos")
        # [v5:MQTT-3.1.2-9] the will flag says the will fields follow.
        flags |= 0x04 | qos << 3
        if will.retain:
            flags |= 0x20
        if v5:
            parts.append(encode_properties(will.properties, WILL))
        elif will.properties is not EMPTY_PROPERTIES and will.properties != (
            EMPTY_PROPERTIES
        ):
            raise ValueError(
                "will properties need MQTT 5; remove them or use ProtocolVersion.V5"
            )
        parts.append(_string(will.topic, "will topic"))
        parts.append(_binary(will.payload, "will payload"))
    if packet.username is not None:
        flags |= 0x80
        parts.append(_string(packet.username, "CONNECT username"))
    if packet.password is not None:
        if not v5 and packet.username is None:
            # [v311:MQTT-3.1.2-22]
            raise ValueError(
                "a password without a username is not allowed in MQTT 3.1.1; "
                "set a username"
            )
        flags |= 0x40
        parts.append(_binary(packet.password, "CONNECT password"))
    parts[1] = bytes((flags,)) + keepalive.to_bytes(2, "big")
    return _frame(0x10, parts, "CONNECT")


def _e_connack(packet: ConnAckPacket, v5: bool) -> bytes:
    code = packet.reason_code
    if v5:
        _check_reason(code, _CONNACK_CODES, "CONNACK")
    else:
        if code not in _CONNACK_TO_V311:
            raise ValueError(
                f"reason code {_code_text(code)} has no MQTT 3.1.1 CONNACK return "
                f"code; use SUCCESS, UNSUPPORTED_PROTOCOL_VERSION, "
                f"CLIENT_IDENTIFIER_NOT_VALID, SERVER_UNAVAILABLE, "
                f"BAD_USER_NAME_OR_PASSWORD or NOT_AUTHORIZED"
            )
    wire_code = _CONNACK_TO_V311[code] if not v5 else code
    if packet.session_present and wire_code:
        # [v5:MQTT-3.2.2-6] [v311:MQTT-3.2.2-4]
        raise ValueError(
            "a CONNACK that refuses the connection needs session_present=False"
        )
    props = _properties(packet.properties, _T.CONNACK, v5)
    flags = 1 if packet.session_present else 0
    return _frame(0x20, [bytes((flags, wire_code)), props], "CONNACK")


def _ack_encoder(ptype: PacketType, b0: int, allowed: frozenset[int]) -> _Encoder:
    name = ptype.name

    def encode(packet: _AckPacket, v5: bool) -> bytes:
        packet_id = _check_packet_id(packet.packet_id, name)
        code = packet.reason_code
        if v5:
            _check_reason(code, allowed, name)
            props = encode_properties(packet.properties, ptype)
            if props != b"\x00":
                body = packet_id.to_bytes(2, "big") + bytes((code,)) + props
            elif code:
                body = packet_id.to_bytes(2, "big") + bytes((code,))
            else:
                body = packet_id.to_bytes(2, "big")
            return (
                bytes((b0, len(body))) + body
                if len(body) < 0x80
                else _frame(b0, [body], name)
            )
        if code != ReasonCode.SUCCESS:
            raise ValueError(
                f"{name} reason code {_code_text(code)} needs MQTT 5; "
                f"use ReasonCode.SUCCESS"
            )
        _properties(packet.properties, ptype, v5)
        return bytes((b0, 2)) + packet_id.to_bytes(2, "big")

    return encode


def _e_subscribe(packet: SubscribePacket, v5: bool) -> bytes:
    parts = [_check_packet_id(packet.packet_id, "SUBSCRIBE").to_bytes(2, "big")]
    parts.append(_properties(packet.properties, _T.SUBSCRIBE, v5))
    if not packet.subscriptions:
        # [v5:MQTT-3.8.3-2] [v311:MQTT-3.8.3-3]
        raise ValueError("SUBSCRIBE needs at least one TopicSubscription")
    for sub in packet.subscriptions:
        if not isinstance(sub, TopicSubscription):
            raise TypeError(
                f"SUBSCRIBE subscriptions must hold TopicSubscription, "
                f"not {type(sub).__name__}"
            )
        parts.append(_string(sub.filter, "topic filter"))
        options = int(_check_qos(sub.qos, "subscription qos"))
        if v5:
            handling: object = sub.retain_handling
            if not isinstance(handling, int) or handling not in (0, 1, 2):
                raise ValueError(f"retain_handling must be 0, 1 or 2, not {handling!r}")
            options |= handling << 4
            if sub.no_local:
                options |= 0x04
            if sub.retain_as_published:
                options |= 0x08
        elif (
            sub.no_local
            or sub.retain_as_published
            or sub.retain_handling != RetainHandling.SEND_ON_SUBSCRIBE
        ):
            raise ValueError(
                "no_local, retain_as_published and retain_handling need MQTT 5; "
                "leave them at their defaults or use ProtocolVersion.V5"
            )
        parts.append(bytes((options,)))
    return _frame(0x82, parts, "SUBSCRIBE")


def _e_suback(packet: SubAckPacket, v5: bool) -> bytes:
    parts = [_check_packet_id(packet.packet_id, "SUBACK").to_bytes(2, "big")]
    parts.append(_properties(packet.properties, _T.SUBACK, v5))
    if not packet.reason_codes:
        raise ValueError("SUBACK needs one reason code per topic filter, not none")
    allowed = _SUBACK_CODES if v5 else _SUBACK_CODES_V311
    parts.append(
        bytes(_check_reason(code, allowed, "SUBACK") for code in packet.reason_codes)
    )
    return _frame(0x90, parts, "SUBACK")


def _e_unsubscribe(packet: UnsubscribePacket, v5: bool) -> bytes:
    parts = [_check_packet_id(packet.packet_id, "UNSUBSCRIBE").to_bytes(2, "big")]
    parts.append(_properties(packet.properties, _T.UNSUBSCRIBE, v5))
    if not packet.filters:
        # [v5:MQTT-3.10.3-2] [v311:MQTT-3.10.3-2]
        raise ValueError("UNSUBSCRIBE needs at least one topic filter")
    parts.extend(_string(f, "topic filter") for f in packet.filters)
    return _frame(0xA2, parts, "UNSUBSCRIBE")


def _e_unsuback(packet: UnsubAckPacket, v5: bool) -> bytes:
    parts = [_check_packet_id(packet.packet_id, "UNSUBACK").to_bytes(2, "big")]
    parts.append(_properties(packet.properties, _T.UNSUBACK, v5))
    if v5:
        if not packet.reason_codes:
            raise ValueError(
                "UNSUBACK needs one reason code per topic filter in MQTT 5, not none"
            )
        parts.append(
            bytes(
                _check_reason(code, _UNSUBACK_CODES, "UNSUBACK")
                for code in packet.reason_codes
            )
        )
    elif packet.reason_codes:
        raise ValueError(
            "UNSUBACK reason codes need MQTT 5; leave reason_codes empty "
            "or use ProtocolVersion.V5"
        )
    return _frame(0xB0, parts, "UNSUBACK")


def _e_pingreq(packet: PingReqPacket, v5: bool) -> bytes:
    return b"\xc0\x00"


def _e_pingresp(packet: PingRespPacket, v5: bool) -> bytes:
    return b"\xd0\x00"


def _reason_and_properties(
    code: object, props: Properties, ptype: PacketType, allowed: frozenset[int]
) -> bytes:
    # DISCONNECT and AUTH: both may be left out when Success/Normal without
    # properties; the properties alone may be left out otherwise.
    name = ptype.name
    value = _check_reason(code, allowed, name)
    encoded = encode_properties(props, ptype)
    if encoded == b"\x00":
        if not value:
            return bytes((ptype << 4, 0))
        if ptype == _T.DISCONNECT:
            return bytes((ptype << 4, 1, value))
    return _frame(ptype << 4, [bytes((value,)), encoded], name)


def _e_disconnect(packet: DisconnectPacket, v5: bool) -> bytes:
    if v5:
        return _reason_and_properties(
            packet.reason_code, packet.properties, _T.DISCONNECT, _DISCONNECT_CODES
        )
    if packet.reason_code != ReasonCode.NORMAL_DISCONNECTION:
        raise ValueError(
            f"DISCONNECT reason code {_code_text(packet.reason_code)} needs MQTT 5; "
            f"use ReasonCode.NORMAL_DISCONNECTION"
        )
    _properties(packet.properties, _T.DISCONNECT, v5)
    return b"\xe0\x00"


def _e_auth(packet: AuthPacket, v5: bool) -> bytes:
    if not v5:
        raise ValueError("AUTH does not exist in MQTT 3.1.1; use ProtocolVersion.V5")
    return _reason_and_properties(
        packet.reason_code, packet.properties, _T.AUTH, _AUTH_CODES
    )


_ENCODERS: Final[dict[type, _Encoder]] = {
    ConnectPacket: _e_connect,
    ConnAckPacket: _e_connack,
    PublishPacket: _e_publish,
    PubAckPacket: _ack_encoder(_T.PUBACK, 0x40, _PUBACK_CODES),
    PubRecPacket: _ack_encoder(_T.PUBREC, 0x50, _PUBACK_CODES),
    PubRelPacket: _ack_encoder(_T.PUBREL, 0x62, _PUBREL_CODES),
    PubCompPacket: _ack_encoder(_T.PUBCOMP, 0x70, _PUBREL_CODES),
    SubscribePacket: _e_subscribe,
    SubAckPacket: _e_suback,
    UnsubscribePacket: _e_unsubscribe,
    UnsubAckPacket: _e_unsuback,
    PingReqPacket: _e_pingreq,
    PingRespPacket: _e_pingresp,
    DisconnectPacket: _e_disconnect,
    AuthPacket: _e_auth,
}


def encode_packet(packet: Packet, version: ProtocolVersion) -> bytes:
    """Encode *packet* for protocol *version*; raises ValueError on bad input.

    Every field is checked before anything is assembled: string lengths and the
    MQTT UTF-8 rules, packet identifiers, QoS, the reserved combinations the
    specifications forbid, and what MQTT 3.1.1 cannot express (properties, reason
    codes other than the 3.1.1 return codes, AUTH). Topic names and filters are
    checked here only as strings; wildcard rules are the caller's business.

    Args:
        packet: Any packet class of this module.
        version: ``ProtocolVersion.V311`` or ``ProtocolVersion.V5``. A CONNECT
            must carry the same ``protocol_version``.

    Returns:
        The complete packet, fixed header included.

    Raises:
        ValueError: A field has a value the protocol does not allow; the message
            names it.
        TypeError: A field has the wrong type, or *packet* is not a packet.
    """
    if version == 5:
        v5 = True
    elif version == 4:
        v5 = False
    else:
        raise ValueError(
            f"version must be ProtocolVersion.V311 or ProtocolVersion.V5, "
            f"not {version!r}"
        )
    encoder = _ENCODERS.get(type(packet))
    if encoder is None:
        raise TypeError(f"cannot encode {type(packet).__name__}; pass an MQTT packet")
    return encoder(packet, v5)
