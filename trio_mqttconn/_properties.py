"""MQTT 5 properties: one frozen record, the property table, encode/decode/validate.

CONTRACT (fixed, other modules code against it): ``Properties`` is a frozen attrs
class with one optional field per property; ``user_properties`` and
``subscription_identifiers`` are tuples (possibly empty). ``EMPTY_PROPERTIES`` is the
shared instance with nothing set, used on the hot path so that a PUBLISH without
properties allocates nothing.

How the table works: ``PROPERTY_TABLE`` maps each `PropertyId` to a `PropertySpec`
(field name, wire type, the packets it may appear in, allowed value range). A
"context" is a `PacketType` value, or ``WILL`` (0) for the will properties of a
CONNECT. Decoding walks the property block once, looking each identifier up in a
list indexed by identifier, and checks, as MQTT 5.0 section 2.2.2.2 and the
per-packet sections say:

* unknown identifier, or one not valid for the packet: Malformed Packet (0x81);
* a property repeated that may appear only once: Protocol Error (0x82) (only User
  Property repeats everywhere, and Subscription Identifier in PUBLISH);
* a value outside its range (e.g. Receive Maximum 0, Maximum QoS 2): Protocol
  Error (0x82); Topic Alias 0 is Topic Alias Invalid (0x94).

Encoding checks the same rules and raises ``ValueError`` naming the field.
"""

from __future__ import annotations

from typing import Final

import attrs

from ._codec import (
    MAX_VARINT,
    check_utf8,
    decode_varint_in,
    utf8_bytes,
    varint_bytes,
)
from ._enums import PacketType, PropertyId, ReasonCode
from ._exceptions import MalformedPacketError, ProtocolError

__all__ = [
    "EMPTY_PROPERTIES",
    "PROPERTY_TABLE",
    "WILL",
    "Properties",
    "PropertySpec",
    "decode_properties",
    "encode_properties",
    "validate_properties",
]


@attrs.frozen(kw_only=True, slots=False)
class Properties:
    """MQTT 5 properties of a packet; a field left None is absent on the wire."""

    payload_format_indicator: int | None = None
    """0 = unspecified bytes, 1 = UTF-8 text (PUBLISH, will)."""
    message_expiry_interval: int | None = None
    """Seconds the broker keeps the message for subscribers (PUBLISH, will)."""
    content_type: str | None = None
    """MIME-like description of the payload (PUBLISH, will)."""
    response_topic: str | None = None
    """Topic for the response of a request/response exchange (PUBLISH, will)."""
    correlation_data: bytes | None = None
    """Opaque data echoed in the response (PUBLISH, will)."""
    subscription_identifiers: tuple[int, ...] = ()
    """Identifiers of the subscriptions a received PUBLISH matched; one on SUBSCRIBE."""
    session_expiry_interval: int | None = None
    """Seconds the session outlives the connection (CONNECT, CONNACK, DISCONNECT)."""
    assigned_client_identifier: str | None = None
    """Client id chosen by the broker when the client sent an empty one (CONNACK)."""
    server_keep_alive: int | None = None
    """Keep alive the broker imposes, replacing the client's (CONNACK)."""
    authentication_method: str | None = None
    """Name of the enhanced authentication method (CONNECT, CONNACK, AUTH)."""
    authentication_data: bytes | None = None
    """Method-specific authentication data (CONNECT, CONNACK, AUTH)."""
    request_problem_information: int | None = None
    """0 asks the broker to leave out reason strings and user properties (CONNECT)."""
    will_delay_interval: int | None = None
    """Seconds the broker waits before publishing the will (will properties)."""
    request_response_information: int | None = None
    """1 asks the broker for response information (CONNECT)."""
    response_information: str | None = None
    """Basis for response topics, from the broker (CONNACK)."""
    server_reference: str | None = None
    """Another server to use (CONNACK, DISCONNECT)."""
    reason_string: str | None = None
    """Human-readable diagnostic (acks, CONNACK, DISCONNECT, AUTH)."""
    receive_maximum: int | None = None
    """How many unacknowledged QoS 1/2 PUBLISH the sender accepts (CONNECT, CONNACK)."""
    topic_alias_maximum: int | None = None
    """Highest topic alias the sender accepts (CONNECT, CONNACK)."""
    topic_alias: int | None = None
    """Topic alias of a PUBLISH."""
    maximum_qos: int | None = None
    """Highest QoS the broker supports (CONNACK)."""
    retain_available: int | None = None
    """0 when the broker does not support retained messages (CONNACK)."""
    user_properties: tuple[tuple[str, str], ...] = ()
    """Name/value string pairs, in order, names may repeat (every packet)."""
    maximum_packet_size: int | None = None
    """Largest packet the sender accepts (CONNECT, CONNACK)."""
    wildcard_subscription_available: int | None = None
    """0 when the broker does not support wildcard filters (CONNACK)."""
    subscription_identifier_available: int | None = None
    """0 when the broker does not support subscription identifiers (CONNACK)."""
    shared_subscription_available: int | None = None
    """0 when the broker does not support shared subscriptions (CONNACK)."""


EMPTY_PROPERTIES = Properties()

# Decoded properties are built without going through ``__init__``: the decoder has
# validated every value, and the generated frozen ``__init__`` costs a
# ``object.__setattr__`` per field (27 of them). The class is not slotted, and every
# field's default is also a class attribute, so a decoded record's instance dict
# holds only the properties the packet carried: a record with one subscription
# identifier is about 230 bytes instead of 900 (a client with 1,000 filters keeps
# 1,000 of them in the decode cache). Attribute access, equality, hashing, repr,
# pickling and ``attrs.evolve`` read the class default for a field left out.
_FIELDS: Final[tuple[str, ...]] = tuple(a.name for a in attrs.fields(Properties))
for _field in attrs.fields(Properties):
    setattr(Properties, _field.name, _field.default)
del _field
_RANK: Final[dict[str, int]] = {name: rank for rank, name in enumerate(_FIELDS)}
_new = object.__new__
_set = object.__setattr__


def _rank(item: tuple[str, object]) -> int:
    return _RANK[item[0]]


def _make(values: dict[str, object]) -> Properties:
    props: Properties = _new(Properties)
    if len(values) > 1:
        # Declaration order, which `encode_properties` relies on.
        values = dict(sorted(values.items(), key=_rank))
    _set(props, "__dict__", values)
    return props


# ---------------------------------------------------------------- the table

WILL: Final = 0
"""Context value for the will properties of a CONNECT (packet types are 1..15)."""

# Wire data types (MQTT 5.0 section 1.5).
BYTE: Final = 1
TWO_BYTE: Final = 2
FOUR_BYTE: Final = 4
VARINT: Final = 5
UTF8: Final = 6
BINARY: Final = 7
PAIR: Final = 8

_WIRE_HIGH: Final = {BYTE: 0xFF, TWO_BYTE: 0xFFFF, FOUR_BYTE: 0xFFFF_FFFF}


@attrs.frozen
class PropertySpec:
    """One row of the MQTT 5.0 property table (section 2.2.2.2)."""

    id: PropertyId
    """The property identifier."""
    name: str
    """Field of `Properties` that holds it."""
    wire: int
    """Wire data type: BYTE, TWO_BYTE, FOUR_BYTE, VARINT, UTF8, BINARY or PAIR."""
    contexts: frozenset[int]
    """Packet types (and ``WILL``) the property may appear in."""
    low: int = 0
    """Smallest allowed value (integer properties)."""
    high: int = 0
    """Largest allowed value (integer properties); 0 means the wire maximum."""
    range_reason: ReasonCode = ReasonCode.PROTOCOL_ERROR
    """Reason code when a received value is out of range."""
    repeatable: frozenset[int] = frozenset()
    """Contexts in which it may appear more than once."""

    @property
    def mask(self) -> int:
        """Bit mask of ``contexts`` (bit n set for context n)."""
        bits = 0
        for context in self.contexts:
            bits |= 1 << context
        return bits


_T = PacketType
_PUB_WILL = frozenset({_T.PUBLISH, WILL})
_ALL_WITH_USER = frozenset(
    {
        _T.CONNECT,
        _T.CONNACK,
        _T.PUBLISH,
        WILL,
        _T.PUBACK,
        _T.PUBREC,
        _T.PUBREL,
        _T.PUBCOMP,
        _T.SUBSCRIBE,
        _T.SUBACK,
        _T.UNSUBSCRIBE,
        _T.UNSUBACK,
        _T.DISCONNECT,
        _T.AUTH,
    }
)
_P = PropertyId


def _spec(
    pid: PropertyId,
    wire: int,
    contexts: frozenset[int] | set[int],
    low: int = 0,
    high: int = 0,
    *,
    range_reason: ReasonCode = ReasonCode.PROTOCOL_ERROR,
    repeatable: frozenset[int] = frozenset(),
) -> PropertySpec:
    name = {
        PropertyId.SUBSCRIPTION_IDENTIFIER: "subscription_identifiers",
        PropertyId.USER_PROPERTY: "user_properties",
    }.get(pid, pid.name.lower())
    return PropertySpec(
        pid,
        name,
        wire,
        frozenset(contexts),
        low,
        high or _WIRE_HIGH.get(wire, MAX_VARINT),
        range_reason,
        repeatable,
    )


PROPERTY_TABLE: Final[dict[PropertyId, PropertySpec]] = {
    spec.id: spec
    for spec in (
        _spec(_P.PAYLOAD_FORMAT_INDICATOR, BYTE, _PUB_WILL, 0, 1),
        _spec(_P.MESSAGE_EXPIRY_INTERVAL, FOUR_BYTE, _PUB_WILL),
        _spec(_P.CONTENT_TYPE, UTF8, _PUB_WILL),
        _spec(_P.RESPONSE_TOPIC, UTF8, _PUB_WILL),
        _spec(_P.CORRELATION_DATA, BINARY, _PUB_WILL),
        # [v5:MQTT-3.8.2.1.2] 1..268435455; repeated only in PUBLISH (one per match).
        _spec(
            _P.SUBSCRIPTION_IDENTIFIER,
            VARINT,
            {_T.PUBLISH, _T.SUBSCRIBE},
            1,
            MAX_VARINT,
            repeatable=frozenset({_T.PUBLISH}),
        ),
        _spec(
            _P.SESSION_EXPIRY_INTERVAL,
            FOUR_BYTE,
            {_T.CONNECT, _T.CONNACK, _T.DISCONNECT},
        ),
        _spec(_P.ASSIGNED_CLIENT_IDENTIFIER, UTF8, {_T.CONNACK}),
        _spec(_P.SERVER_KEEP_ALIVE, TWO_BYTE, {_T.CONNACK}),
        _spec(_P.AUTHENTICATION_METHOD, UTF8, {_T.CONNECT, _T.CONNACK, _T.AUTH}),
        _spec(_P.AUTHENTICATION_DATA, BINARY, {_T.CONNECT, _T.CONNACK, _T.AUTH}),
        _spec(_P.REQUEST_PROBLEM_INFORMATION, BYTE, {_T.CONNECT}, 0, 1),
        _spec(_P.WILL_DELAY_INTERVAL, FOUR_BYTE, {WILL}),
        _spec(_P.REQUEST_RESPONSE_INFORMATION, BYTE, {_T.CONNECT}, 0, 1),
        _spec(_P.RESPONSE_INFORMATION, UTF8, {_T.CONNACK}),
        _spec(_P.SERVER_REFERENCE, UTF8, {_T.CONNACK, _T.DISCONNECT}),
        _spec(
            _P.REASON_STRING,
            UTF8,
            _ALL_WITH_USER
            - {_T.CONNECT, _T.PUBLISH, WILL, _T.SUBSCRIBE, _T.UNSUBSCRIBE},
        ),
        _spec(_P.RECEIVE_MAXIMUM, TWO_BYTE, {_T.CONNECT, _T.CONNACK}, 1),
        _spec(_P.TOPIC_ALIAS_MAXIMUM, TWO_BYTE, {_T.CONNECT, _T.CONNACK}),
        # [v5:MQTT-3.3.2-8] a Topic Alias of 0 is not permitted.
        _spec(
            _P.TOPIC_ALIAS,
            TWO_BYTE,
            {_T.PUBLISH},
            1,
            range_reason=ReasonCode.TOPIC_ALIAS_INVALID,
        ),
        _spec(_P.MAXIMUM_QOS, BYTE, {_T.CONNACK}, 0, 1),
        _spec(_P.RETAIN_AVAILABLE, BYTE, {_T.CONNACK}, 0, 1),
        _spec(_P.USER_PROPERTY, PAIR, _ALL_WITH_USER, repeatable=_ALL_WITH_USER),
        _spec(_P.MAXIMUM_PACKET_SIZE, FOUR_BYTE, {_T.CONNECT, _T.CONNACK}, 1),
        _spec(_P.WILDCARD_SUBSCRIPTION_AVAILABLE, BYTE, {_T.CONNACK}, 0, 1),
        _spec(_P.SUBSCRIPTION_IDENTIFIER_AVAILABLE, BYTE, {_T.CONNACK}, 0, 1),
        _spec(_P.SHARED_SUBSCRIPTION_AVAILABLE, BYTE, {_T.CONNACK}, 0, 1),
    )
}
"""Every MQTT 5 property: wire type, where it may appear, allowed values."""

# Decoder lookup: index = identifier -> (spec, context mask); None = unknown.
_BY_ID: Final[list[tuple[PropertySpec, int] | None]] = [None] * (max(_P) + 1)
for _s in PROPERTY_TABLE.values():
    _BY_ID[_s.id] = (_s, _s.mask)
del _s

# Encoder order: by identifier, as the table in the specification lists them.
_ENCODE_ORDER: Final = tuple(sorted(PROPERTY_TABLE.values(), key=lambda s: s.id))


def context_name(context: int) -> str:
    """Return ``"PUBLISH"``, ``"CONNECT"`` ... or ``"will properties"``."""
    return "will properties" if context == WILL else PacketType(context).name


# ---------------------------------------------------------------- decoding

_USER_PROPERTY: Final = int(PropertyId.USER_PROPERTY)


def decode_properties(
    buf: bytes, pos: int, end: int, context: int
) -> tuple[Properties, int]:
    """Decode a property block (length, then properties) at *pos*.

    Args:
        buf: The receive buffer.
        pos: Index of the property length.
        end: End of the enclosing packet.
        context: Packet type, or ``WILL`` for will properties.

    Returns:
        The properties (`EMPTY_PROPERTIES` when there are none) and the index after
        the block.

    Raises:
        MalformedPacketError: The block is truncated or holds an unknown property
            or one not allowed in *context*.
        ProtocolError: A property is repeated or has a value out of range.
    """
    if pos >= end:
        raise MalformedPacketError("packet ends before the property length")
    length = buf[pos]
    if length >= 0x80:
        length, pos = decode_varint_in(buf, pos, end, "property length")
    elif length:
        pos += 1
    else:
        return EMPTY_PROPERTIES, pos + 1
    stop = pos + length
    if stop > end:
        raise MalformedPacketError("property length runs past the end of the packet")
    # Property blocks repeat from message to message (a subscription identifier,
    # the same user properties): small ones are decoded once. Properties are
    # immutable, so sharing the decoded record is safe.
    key: bytes | None = None
    if length <= _DECODED_ITEM:
        key = buf[pos:stop]
        cached = _decoded[context].get(key)
        if cached is not None:
            return cached, stop
    bit = 1 << context
    values: dict[str, object] = {}
    user: list[tuple[str, str]] = []
    sub_ids: list[int] = []
    try:
        while pos < stop:
            ident = buf[pos]
            if ident == _USER_PROPERTY:
                # The common case, inlined. Every packet with properties allows
                # User Property, so there is no context check.
                start = pos + 3
                if start > stop:
                    raise MalformedPacketError(
                        "user property runs past its property block"
                    )
                pos = start + (buf[pos + 1] << 8 | buf[pos + 2])
                if pos + 2 > stop:
                    raise MalformedPacketError(
                        "user property runs past its property block"
                    )
                name = buf[start:pos]
                start = pos + 2
                pos = start + (buf[pos] << 8 | buf[pos + 1])
                if pos > stop:
                    raise MalformedPacketError(
                        "user property runs past its property block"
                    )
                text = buf[start:pos]
                if b"\x00" in name or b"\x00" in text:
                    # [v5:MQTT-1.5.7-1] [v5:MQTT-1.5.4-2]
                    raise MalformedPacketError("user property contains U+0000")
                user.append((name.decode(), text.decode()))
                continue
            if ident < 0x80:
                pos += 1
            else:
                ident, pos = decode_varint_in(buf, pos, stop, "property identifier")
            entry = _BY_ID[ident] if ident < len(_BY_ID) else None
            if entry is None:
                raise MalformedPacketError(f"unknown property identifier 0x{ident:02X}")
            spec, mask = entry
            if not mask & bit:
                raise MalformedPacketError(
                    f"property {spec.name} is not allowed in {context_name(context)}"
                )
            wire = spec.wire
            value: object
            if wire >= UTF8:  # UTF8 or BINARY
                if pos + 2 > stop:
                    raise MalformedPacketError(f"packet ends inside the {spec.name}")
                start = pos + 2
                pos = start + (buf[pos] << 8 | buf[pos + 1])
                if pos > stop:
                    raise MalformedPacketError(
                        f"{spec.name} runs past its property block"
                    )
                raw = buf[start:pos]
                value = check_utf8(raw, spec.name) if wire == UTF8 else raw
            else:
                if wire == VARINT:
                    number, pos = decode_varint_in(buf, pos, stop, spec.name)
                else:
                    if pos + wire > stop:
                        raise MalformedPacketError(
                            f"packet ends inside the {spec.name}"
                        )
                    number = int.from_bytes(buf[pos : pos + wire], "big")
                    pos += wire
                if not spec.low <= number <= spec.high:
                    raise ProtocolError(
                        f"property {spec.name} has value {number}, "
                        f"allowed is {spec.low}..{spec.high}",
                        reason_code=spec.range_reason,
                    )
                if wire == VARINT:
                    if sub_ids and context not in spec.repeatable:
                        raise ProtocolError(
                            f"property {spec.name} appears more than once "
                            f"in {context_name(context)}"
                        )
                    sub_ids.append(number)
                    continue
                value = number
            if spec.name in values:
                raise ProtocolError(
                    f"property {spec.name} appears more than once "
                    f"in {context_name(context)}"
                )
            values[spec.name] = value
    except UnicodeDecodeError:
        # [v5:MQTT-1.5.7-1] [v5:MQTT-1.5.4-1]
        raise MalformedPacketError("user property is not well-formed UTF-8") from None
    if user:
        values["user_properties"] = tuple(user)
    if sub_ids:
        values["subscription_identifiers"] = tuple(sub_ids)
    if "authentication_data" in values and "authentication_method" not in values:
        # 5.0 3.1.2.11.10: data without a method is a Protocol Error.
        raise ProtocolError(
            f"authentication_data without authentication_method "
            f"in {context_name(context)}"
        )
    result = _make(values)
    if key is not None:
        decoded = _decoded[context]
        if len(decoded) >= _DECODED_SIZE:
            decoded.clear()
        decoded[key] = result
    return result, stop


#: Above the 1,000 subscription identifiers of one client with 1,000 filters: at
#: 512 such a client missed on every message (a new Properties each, kept alive
#: by queued messages and so promoted by the garbage collector).
_DECODED_SIZE: Final = 2048
_DECODED_ITEM: Final = 64
_decoded: Final[tuple[dict[bytes, Properties], ...]] = tuple(
    {} for _ in range(max(PacketType) + 1)
)
"""Small property blocks decoded before: by packet type (``WILL`` is 0), then raw
bytes (no ``(type, bytes)`` tuple made per message, nor kept per entry)."""


# ---------------------------------------------------------------- encoding

_SPEC_BY_NAME: Final = {spec.name: spec for spec in PROPERTY_TABLE.values()}
_NOTHING: Final[tuple[()]] = ()
_STRING_CACHE_SIZE: Final = 1024
_STRING_CACHE_ITEM: Final = 256
_strings: dict[str, bytes] = {}
"""Length-prefixed UTF-8 of short user property strings seen before."""


def _prefixed(value: object, what: str) -> bytes:
    # Two-byte length + UTF-8, after the MQTT string checks; cached because user
    # property names and values repeat from message to message.
    data = _strings.get(value) if type(value) is str else None
    if data is None:
        encoded = utf8_bytes(value, what)
        data = len(encoded).to_bytes(2, "big") + encoded
        if len(encoded) <= _STRING_CACHE_ITEM:
            if len(_strings) >= _STRING_CACHE_SIZE:
                _strings.clear()
            _strings[value] = data  # type: ignore[index]  # value is a str here
    return data


def _check_number(spec: PropertySpec, value: object) -> int:
    if (
        not isinstance(value, int)
        or isinstance(value, bool)
        or not spec.low <= value <= spec.high
    ):
        raise ValueError(
            f"property {spec.name} must be an integer {spec.low}..{spec.high}, "
            f"not {value!r}"
        )
    return value


def encode_properties(props: Properties, context: int) -> bytes:
    """Encode *props* as a property block (length, then properties).

    Args:
        props: The properties; `EMPTY_PROPERTIES` encodes as one zero byte.
        context: Packet type, or ``WILL`` for will properties.

    Returns:
        The encoded block.

    Raises:
        ValueError: A property is not allowed in *context*, has a value out of
            range, or a string breaks the MQTT UTF-8 rules.
        TypeError: A property has the wrong type.
    """
    if props is EMPTY_PROPERTIES:
        return b"\x00"
    if not isinstance(props, Properties):
        raise TypeError(f"properties must be Properties, not {type(props).__name__}")
    out = bytearray()
    # The instance dict holds the fields (all of them, or a decoded record's set
    # ones) in declaration order, which is the order of the identifiers.
    for field, value in props.__dict__.items():
        if value is None or value is _NOTHING:
            continue
        spec = _SPEC_BY_NAME[field]
        wire = spec.wire
        if wire in (PAIR, VARINT):
            if not isinstance(value, tuple | list):
                raise TypeError(
                    f"property {spec.name} must be a tuple, not {type(value).__name__}"
                )
            if not value:
                continue
        if context not in spec.contexts:
            raise ValueError(
                f"property {spec.name} is not allowed in {context_name(context)}; "
                f"remove it"
            )
        ident = spec.id
        if wire == PAIR:
            for pair in value:
                if not isinstance(pair, tuple | list) or len(pair) != 2:
                    raise TypeError(
                        "user_properties must hold (name, value) pairs of str, "
                        f"not {pair!r}"
                    )
                out.append(ident)
                out += _prefixed(pair[0], "user property name")
                out += _prefixed(pair[1], "user property value")
        elif wire == VARINT:
            if len(value) > 1 and context not in spec.repeatable:
                raise ValueError(
                    f"{context_name(context)} may carry at most one "
                    f"subscription identifier, not {len(value)}"
                )
            for number in value:
                out.append(ident)
                out += varint_bytes(_check_number(spec, number))
        elif wire == UTF8:
            out.append(ident)
            out += _prefixed(value, f"property {spec.name}")
        elif wire == BINARY:
            if not isinstance(value, bytes | bytearray | memoryview):
                raise TypeError(
                    f"property {spec.name} must be bytes, not {type(value).__name__}"
                )
            if len(value) > 0xFFFF:
                raise ValueError(
                    f"property {spec.name} is {len(value)} bytes, "
                    f"the maximum is 65535; shorten it"
                )
            out.append(ident)
            out += len(value).to_bytes(2, "big")
            out += value
        else:
            out.append(ident)
            out += _check_number(spec, value).to_bytes(wire, "big")
    if props.authentication_data is not None and props.authentication_method is None:
        raise ValueError(
            "property authentication_data needs authentication_method; set both"
        )
    return varint_bytes(len(out)) + out


def validate_properties(props: Properties, context: int) -> None:
    """Check that *props* may be sent in *context*; see `encode_properties`.

    Raises:
        ValueError: A property is not allowed there or has a bad value.
        TypeError: A property has the wrong type.
    """
    encode_properties(props, context)
