"""Our own paho-compatible MQTT 5 value objects, and their conversion to the engine's.

aiomqtt hands its users paho-mqtt objects: ``ReasonCode`` from ``subscribe()``,
``Properties`` on messages, ``SubscribeOptions`` as an argument. paho-mqtt is not a
dependency of trio_mqttconn, so this module provides classes with the same names,
attributes and string forms (``PacketTypes.PUBLISH``, ``rc.value``, ``str(rc)``,
``props.UserProperty == [("a", "b")]``, ``SubscribeOptions(qos=1, noLocal=True)``).

Objects of paho's own classes are accepted too, by duck typing: the converters read
the attribute names paho uses (``QoS``, ``noLocal`` ...; ``ContentType``,
``UserProperty`` ...), so an application that still builds its properties with
paho keeps working.

Differences from paho (documented in docs/migrating.rst): a misspelt property name
raises ``AttributeError`` and a bad value ``TypeError``/``ValueError`` (paho raises its
own ``MQTTException`` or ``AssertionError``); ``Properties.pack()``/``unpack()`` do not
exist (the engine encodes); values are checked when they are set.
"""

from __future__ import annotations

import functools
from types import MappingProxyType
from typing import (
    TYPE_CHECKING,
    ClassVar,
    Final,
    Generic,
    Self,
    TypeVar,
    final,
    overload,
)

import attrs

from trio_mqttconn import (
    Properties as PropertiesRecord,
    PropertyId,
    QoS,
    ReasonCode as EngineReasonCode,
    RetainHandling,
    TopicSubscription,
    Will as EngineWill,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

# The engine's shared empty properties record (no properties at all): the default
# of the public engine `Will`, so that identity checks against it hold.
_NO_PROPERTIES: Final[PropertiesRecord] = EngineWill(topic="-").properties

__all__ = [
    "PacketTypes",
    "Properties",
    "ReasonCode",
    "SubscribeOptions",
    "is_subscribe_options",
    "properties_from_record",
    "properties_to_record",
    "reason_code_from_engine",
    "reason_code_to_engine",
    "subscribe_options_from_subscription",
    "to_subscribe_options",
    "to_topic_subscription",
]


# --------------------------------------------------------------------------- packets


@final
class PacketTypes:
    """MQTT control packet type numbers, as paho's ``PacketTypes`` spells them.

    ``Properties(PacketTypes.PUBLISH)`` and ``ReasonCode(PacketTypes.SUBACK, ...)`` take
    these. ``WILLMESSAGE`` is not a packet: it selects the properties a will may carry.
    """

    indexes: ClassVar[range] = range(1, 16)
    """The packet type numbers, 1 (CONNECT) to 15 (AUTH)."""

    CONNECT: ClassVar[int] = 1
    """CONNECT."""
    CONNACK: ClassVar[int] = 2
    """CONNACK."""
    PUBLISH: ClassVar[int] = 3
    """PUBLISH."""
    PUBACK: ClassVar[int] = 4
    """PUBACK."""
    PUBREC: ClassVar[int] = 5
    """PUBREC."""
    PUBREL: ClassVar[int] = 6
    """PUBREL."""
    PUBCOMP: ClassVar[int] = 7
    """PUBCOMP."""
    SUBSCRIBE: ClassVar[int] = 8
    """SUBSCRIBE."""
    SUBACK: ClassVar[int] = 9
    """SUBACK."""
    UNSUBSCRIBE: ClassVar[int] = 10
    """UNSUBSCRIBE."""
    UNSUBACK: ClassVar[int] = 11
    """UNSUBACK."""
    PINGREQ: ClassVar[int] = 12
    """PINGREQ."""
    PINGRESP: ClassVar[int] = 13
    """PINGRESP."""
    DISCONNECT: ClassVar[int] = 14
    """DISCONNECT."""
    AUTH: ClassVar[int] = 15
    """AUTH (MQTT 5)."""
    WILLMESSAGE: ClassVar[int] = 99
    """Pseudo packet type of will properties."""

    Names: ClassVar[tuple[str, ...]] = (
        "reserved",
        "Connect",
        "Connack",
        "Publish",
        "Puback",
        "Pubrec",
        "Pubrel",
        "Pubcomp",
        "Subscribe",
        "Suback",
        "Unsubscribe",
        "Unsuback",
        "Pingreq",
        "Pingresp",
        "Disconnect",
        "Auth",
    )
    """Display names by packet type: ``Names[PacketTypes.PUBLISH] == "Publish"``."""


def _packet_name(packet_type: int) -> str:
    if 0 <= packet_type < len(PacketTypes.Names):
        return PacketTypes.Names[packet_type]
    if packet_type == PacketTypes.WILLMESSAGE:
        return "Will"
    return "Unknown"


# ----------------------------------------------------------------------- reason codes

_CONNECT, _CONNACK, _PUBLISH, _PUBACK, _PUBREC, _PUBREL, _PUBCOMP = range(1, 8)
_SUBSCRIBE, _SUBACK, _UNSUBSCRIBE, _UNSUBACK = range(8, 12)
_DISCONNECT, _AUTH, _WILL = 14, 15, 99

# The reason code names of the MQTT 5.0 specification (table 2-6) with the packets
# each applies to, spelt as paho spells them (str(rc) is what users print and compare).
# Rows: (value, name, packet types). One value can have several names.
_REASON_CODE_ROWS: Final[tuple[tuple[int, str, tuple[int, ...]], ...]] = (
    (
        0x00,
        "Success",
        (_CONNACK, _PUBACK, _PUBREC, _PUBREL, _PUBCOMP, _UNSUBACK, _AUTH),
    ),
    (0x00, "Normal disconnection", (_DISCONNECT,)),
    (0x00, "Granted QoS 0", (_SUBACK,)),
    (0x01, "Granted QoS 1", (_SUBACK,)),
    (0x02, "Granted QoS 2", (_SUBACK,)),
    (0x04, "Disconnect with will message", (_DISCONNECT,)),
    (0x10, "No matching subscribers", (_PUBACK, _PUBREC)),
    (0x11, "No subscription found", (_UNSUBACK,)),
    (0x18, "Continue authentication", (_AUTH,)),
    (0x19, "Re-authenticate", (_AUTH,)),
    (
        0x80,
        "Unspecified error",
        (_CONNACK, _PUBACK, _PUBREC, _SUBACK, _UNSUBACK, _DISCONNECT),
    ),
    (0x81, "Malformed packet", (_CONNACK, _DISCONNECT)),
    (0x82, "Protocol error", (_CONNACK, _DISCONNECT)),
    (
        0x83,
        "Implementation specific error",
        (_CONNACK, _PUBACK, _PUBREC, _SUBACK, _UNSUBACK, _DISCONNECT),
    ),
    (0x84, "Unsupported protocol version", (_CONNACK,)),
    (0x85, "Client identifier not valid", (_CONNACK,)),
    (0x86, "Bad user name or password", (_CONNACK,)),
    (
        0x87,
        "Not authorized",
        (_CONNACK, _PUBACK, _PUBREC, _SUBACK, _UNSUBACK, _DISCONNECT),
    ),
    (0x88, "Server unavailable", (_CONNACK,)),
    (0x89, "Server busy", (_CONNACK, _DISCONNECT)),
    (0x8A, "Banned", (_CONNACK,)),
    (0x8B, "Server shutting down", (_DISCONNECT,)),
    (0x8C, "Bad authentication method", (_CONNACK, _DISCONNECT)),
    (0x8D, "Keep alive timeout", (_DISCONNECT,)),
    (0x8E, "Session taken over", (_DISCONNECT,)),
    (0x8F, "Topic filter invalid", (_SUBACK, _UNSUBACK, _DISCONNECT)),
    (0x90, "Topic name invalid", (_CONNACK, _PUBACK, _PUBREC, _DISCONNECT)),
    (0x91, "Packet identifier in use", (_PUBACK, _PUBREC, _SUBACK, _UNSUBACK)),
    (0x92, "Packet identifier not found", (_PUBREL, _PUBCOMP)),
    (0x93, "Receive maximum exceeded", (_DISCONNECT,)),
    (0x94, "Topic alias invalid", (_DISCONNECT,)),
    (0x95, "Packet too large", (_CONNACK, _DISCONNECT)),
    (0x96, "Message rate too high", (_DISCONNECT,)),
    (0x97, "Quota exceeded", (_CONNACK, _PUBACK, _PUBREC, _SUBACK, _DISCONNECT)),
    (0x98, "Administrative action", (_DISCONNECT,)),
    (0x99, "Payload format invalid", (_PUBACK, _PUBREC, _DISCONNECT)),
    (0x9A, "Retain not supported", (_CONNACK, _DISCONNECT)),
    (0x9B, "QoS not supported", (_CONNACK, _DISCONNECT)),
    (0x9C, "Use another server", (_CONNACK, _DISCONNECT)),
    (0x9D, "Server moved", (_CONNACK, _DISCONNECT)),
    (0x9E, "Shared subscription not supported", (_SUBACK, _DISCONNECT)),
    (0x9F, "Connection rate exceeded", (_CONNACK, _DISCONNECT)),
    (0xA0, "Maximum connect time", (_DISCONNECT,)),
    (0xA1, "Subscription identifiers not supported", (_SUBACK, _DISCONNECT)),
    (0xA2, "Wildcard subscription not supported", (_SUBACK, _DISCONNECT)),
)


_NameTable = MappingProxyType[int, MappingProxyType[str, tuple[int, ...]]]


def _build_reason_code_names() -> _NameTable:
    table: dict[int, dict[str, tuple[int, ...]]] = {}
    for value, name, packets in _REASON_CODE_ROWS:
        table.setdefault(value, {})[name] = packets
    return MappingProxyType({k: MappingProxyType(v) for k, v in table.items()})


@final
@functools.total_ordering
class ReasonCode:
    """An MQTT reason code, with the name it has in one packet type.

    The same number has different names in different packets (0 is "Success" in a
    PUBACK, "Granted QoS 0" in a SUBACK), so a reason code knows its packet type.
    Compare it with an ``int`` (``rc == 0x87``), a name (``rc == "Not authorized"``) or
    another reason code; ``str(rc)`` is the name. Codes 0x80 and above are failures.

    Args:
        packetType: The packet type it appears in, e.g. ``PacketTypes.SUBACK``.
        aName: The name to look up when ``identifier`` is not given.
        identifier: The numeric value; when given, ``aName`` is ignored.

    Raises:
        KeyError: If the name or the value is not a reason code of that packet type.
        ValueError: If ``identifier`` exists but not for that packet type.
    """

    names: ClassVar[_NameTable] = _build_reason_code_names()
    """Every reason code: value -> {name -> packet types it applies to}."""

    packetType: int
    """The packet type this reason code belongs to."""
    value: int
    """The numeric reason code."""

    def __init__(
        self, packetType: int, aName: str = "Success", identifier: int = -1
    ) -> None:
        self.packetType = packetType
        if identifier == -1:
            if packetType == _DISCONNECT and aName == "Success":
                aName = "Normal disconnection"
            self.set(aName)
        else:
            self.value = identifier
            self._strict_name()

    def _strict_name(self) -> str:
        # paho's errors: KeyError for a value that is no reason code at all,
        # ValueError for one that does not apply to this packet type.
        names = self.names.get(self.value)
        if names is None:
            msg = f"{self.value} is not a reason code; see ReasonCode.names"
            raise KeyError(msg)
        candidates = [
            name for name, packets in names.items() if self.packetType in packets
        ]
        if len(candidates) != 1:
            msg = (
                f"reason code {self.value} does not apply to packet type "
                f"{_packet_name(self.packetType)}; see ReasonCode.names for valid codes"
            )
            raise ValueError(msg)
        return candidates[0]

    def getId(self, name: str) -> int:
        """Return the value of the reason code called ``name`` in this packet type.

        Raises:
            KeyError: If no such name applies to this packet type.
        """
        for value, names in self.names.items():
            if self.packetType in names.get(name, ()):
                return value
        msg = (
            f"reason code {name!r} does not exist for packet type "
            f"{_packet_name(self.packetType)}; see ReasonCode.names for the valid names"
        )
        raise KeyError(msg)

    def set(self, name: str) -> None:
        """Set the value from a reason code name (see :meth:`getId`)."""
        self.value = self.getId(name)

    def unpack(self, buffer: bytes | bytearray) -> int:
        """Set the value from the first byte of ``buffer``; return bytes used (1)."""
        self.value = buffer[0]
        self._strict_name()
        return 1

    def getName(self) -> str:
        """Return the name of this value in this packet type.

        A code received for a packet type the table does not list it for (a broker
        bug) still has a name: the first one of its value.
        """
        names = self.names.get(self.value)
        if names is None:
            return f"Unknown reason code {self.value}"
        for name, packets in names.items():
            if self.packetType in packets:
                return name
        return next(iter(names))

    def json(self) -> str:
        """Return the name, for JSON serialisation (as paho does)."""
        return self.getName()

    def pack(self) -> bytearray:
        """Return the one-byte wire form."""
        return bytearray([self.value])

    @property
    def is_failure(self) -> bool:
        """True for codes 0x80 and above, which report an error."""
        return self.value >= 0x80

    def __eq__(self, other: object) -> bool:
        if isinstance(other, int):
            return self.value == other
        if isinstance(other, str):
            return other == str(self)
        if _is_reason_code(other):
            return bool(self.value == other.value)  # type: ignore[attr-defined]
        return False

    def __lt__(self, other: object) -> bool:
        if isinstance(other, int):
            return self.value < other
        if _is_reason_code(other):
            return bool(self.value < other.value)  # type: ignore[attr-defined]
        return NotImplemented

    # Equal to ints and to names, so no hash can be consistent: unhashable, as paho's.
    __hash__: ClassVar[None] = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"ReasonCode({_packet_name(self.packetType)}, {self.getName()!r})"

    def __str__(self) -> str:
        return self.getName()


def _is_reason_code(value: object) -> bool:
    return (
        isinstance(value, ReasonCode)
        or (hasattr(value, "getName") and hasattr(value, "value"))
    ) and not isinstance(value, int | str)


def _reason_code(packet_type: int, value: int) -> ReasonCode:
    # Build without the strict name check: values come from the broker.
    code = ReasonCode.__new__(ReasonCode)
    code.packetType = packet_type
    code.value = value
    return code


def reason_code_from_engine(code: int, packet_type: int) -> ReasonCode:
    """Wrap an engine reason code (``trio_mqttconn.ReasonCode``) as a paho-style one.

    Args:
        code: The reason code value (the engine enum is an ``int``).
        packet_type: The packet it came in, e.g. ``PacketTypes.SUBACK``.

    Returns:
        A `ReasonCode` whose ``str()`` is paho's name for it in that packet.
    """
    return _reason_code(packet_type, int(code))


def reason_code_to_engine(code: object) -> EngineReasonCode:
    """Convert a reason code (ours, paho's or an ``int``) to the engine's enum.

    Raises:
        TypeError: If ``code`` is neither an ``int`` nor a reason code object.
        ValueError: If the value is not an MQTT 5 reason code.
    """
    if isinstance(code, int):
        value = int(code)
    elif _is_reason_code(code):
        value = int(code.value)  # type: ignore[attr-defined]
    else:
        msg = f"expected a ReasonCode or an int, not {type(code).__name__}"
        raise TypeError(msg)
    try:
        return EngineReasonCode(value)
    except ValueError:
        msg = f"{value} is not an MQTT 5 reason code; see ReasonCode.names"
        raise ValueError(msg) from None


# ------------------------------------------------------------------------- properties

_BYTE, _TWO_BYTE, _FOUR_BYTE, _VARINT, _BINARY, _STRING, _PAIR = range(7)
_INT_KINDS: Final = {_BYTE: 0xFF, _TWO_BYTE: 0xFFFF, _FOUR_BYTE: 0xFFFFFFFF}


@attrs.frozen
class _Spec:
    # One MQTT 5 property: paho's attribute name, our record's field, its wire type,
    # the packets it may appear in, and the allowed range for integers.
    ident: PropertyId
    name: str
    field: str
    kind: int
    packets: frozenset[int]
    low: int = 0
    high: int = 0
    multiple: bool = False


def _spec(
    ident: PropertyId,
    name: str,
    field: str,
    kind: int,
    packets: Iterable[int],
    *,
    low: int = 0,
    high: int | None = None,
) -> _Spec:
    if high is None:
        high = 268435455 if kind == _VARINT else _INT_KINDS.get(kind, 0)
    multiple = ident in (PropertyId.SUBSCRIPTION_IDENTIFIER, PropertyId.USER_PROPERTY)
    return _Spec(ident, name, field, kind, frozenset(packets), low, high, multiple)


_PUB_WILL = (_PUBLISH, _WILL)
_ACKS = (_CONNACK, _PUBACK, _PUBREC, _PUBREL, _PUBCOMP, _SUBACK, _UNSUBACK)
_ALL = (_CONNECT, *_ACKS, _PUBLISH, _SUBSCRIBE, _UNSUBSCRIBE, _DISCONNECT, _AUTH, _WILL)

# In paho's order (which is also the order of str(properties) and json()).
_SPECS: Final[tuple[_Spec, ...]] = (
    _spec(PropertyId.PAYLOAD_FORMAT_INDICATOR, "PayloadFormatIndicator",
          "payload_format_indicator", _BYTE, _PUB_WILL, high=1),
    _spec(PropertyId.MESSAGE_EXPIRY_INTERVAL, "MessageExpiryInterval",
          "message_expiry_interval", _FOUR_BYTE, _PUB_WILL),
    _spec(PropertyId.CONTENT_TYPE, "ContentType", "content_type", _STRING, _PUB_WILL),
    _spec(PropertyId.RESPONSE_TOPIC, "ResponseTopic", "response_topic", _STRING,
          _PUB_WILL),
    _spec(PropertyId.CORRELATION_DATA, "CorrelationData", "correlation_data", _BINARY,
          _PUB_WILL),
    _spec(PropertyId.SUBSCRIPTION_IDENTIFIER, "SubscriptionIdentifier",
          "subscription_identifiers", _VARINT, (_PUBLISH, _SUBSCRIBE), low=1),
    _spec(PropertyId.SESSION_EXPIRY_INTERVAL, "SessionExpiryInterval",
          "session_expiry_interval", _FOUR_BYTE, (_CONNECT, _CONNACK, _DISCONNECT)),
    _spec(PropertyId.ASSIGNED_CLIENT_IDENTIFIER, "AssignedClientIdentifier",
          "assigned_client_identifier", _STRING, (_CONNACK,)),
    _spec(PropertyId.SERVER_KEEP_ALIVE, "ServerKeepAlive", "server_keep_alive",
          _TWO_BYTE, (_CONNACK,)),
    _spec(PropertyId.AUTHENTICATION_METHOD, "AuthenticationMethod",
          "authentication_method", _STRING, (_CONNECT, _CONNACK, _AUTH)),
    _spec(PropertyId.AUTHENTICATION_DATA, "AuthenticationData", "authentication_data",
          _BINARY, (_CONNECT, _CONNACK, _AUTH)),
    _spec(PropertyId.REQUEST_PROBLEM_INFORMATION, "RequestProblemInformation",
          "request_problem_information", _BYTE, (_CONNECT,), high=1),
    _spec(PropertyId.WILL_DELAY_INTERVAL, "WillDelayInterval", "will_delay_interval",
          _FOUR_BYTE, (_WILL,)),
    _spec(PropertyId.REQUEST_RESPONSE_INFORMATION, "RequestResponseInformation",
          "request_response_information", _BYTE, (_CONNECT,), high=1),
    _spec(PropertyId.RESPONSE_INFORMATION, "ResponseInformation",
          "response_information", _STRING, (_CONNACK,)),
    _spec(PropertyId.SERVER_REFERENCE, "ServerReference", "server_reference", _STRING,
          (_CONNACK, _DISCONNECT)),
    _spec(PropertyId.REASON_STRING, "ReasonString", "reason_string", _STRING,
          (*_ACKS, _DISCONNECT, _AUTH)),
    _spec(PropertyId.RECEIVE_MAXIMUM, "ReceiveMaximum", "receive_maximum", _TWO_BYTE,
          (_CONNECT, _CONNACK), low=1),
    _spec(PropertyId.TOPIC_ALIAS_MAXIMUM, "TopicAliasMaximum", "topic_alias_maximum",
          _TWO_BYTE, (_CONNECT, _CONNACK)),
    _spec(PropertyId.TOPIC_ALIAS, "TopicAlias", "topic_alias", _TWO_BYTE, (_PUBLISH,),
          low=1),
    _spec(PropertyId.MAXIMUM_QOS, "MaximumQoS", "maximum_qos", _BYTE, (_CONNACK,)),
    _spec(PropertyId.RETAIN_AVAILABLE, "RetainAvailable", "retain_available", _BYTE,
          (_CONNACK,)),
    _spec(PropertyId.USER_PROPERTY, "UserProperty", "user_properties", _PAIR, _ALL),
    _spec(PropertyId.MAXIMUM_PACKET_SIZE, "MaximumPacketSize", "maximum_packet_size",
          _FOUR_BYTE, (_CONNECT, _CONNACK), low=1, high=268435455),
    _spec(PropertyId.WILDCARD_SUBSCRIPTION_AVAILABLE, "WildcardSubscriptionAvailable",
          "wildcard_subscription_available", _BYTE, (_CONNACK,)),
    _spec(PropertyId.SUBSCRIPTION_IDENTIFIER_AVAILABLE,
          "SubscriptionIdentifierAvailable", "subscription_identifier_available", _BYTE,
          (_CONNACK,)),
    _spec(PropertyId.SHARED_SUBSCRIPTION_AVAILABLE, "SharedSubscriptionAvailable",
          "shared_subscription_available", _BYTE, (_CONNACK,)),
)  # fmt: skip
_SPEC_BY_NAME: Final = {spec.name: spec for spec in _SPECS}
_MISSING: Final = object()


def _spaced(name: str) -> str:
    # "ContentType" -> "Content Type", "MaximumQoS" -> "Maximum QoS" (paho's keys).
    out = "".join(f" {char}" if char.isupper() else char for char in name)
    return out.strip().replace("Qo S", "QoS")


def _text(spec: _Spec, value: object) -> str:
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8")
    if isinstance(value, str):
        return value
    msg = f"{spec.name} must be a str, not {type(value).__name__}"
    raise TypeError(msg)


def _integer(spec: _Spec, value: object) -> int:
    if not isinstance(value, int):
        msg = f"{spec.name} must be an int, not {type(value).__name__}"
        raise TypeError(msg)
    if not spec.low <= value <= spec.high:
        msg = f"{spec.name} must be in the range {spec.low}-{spec.high}, not {value}"
        raise ValueError(msg)
    return int(value)


def _pair(spec: _Spec, value: object) -> tuple[str, str]:
    if not isinstance(value, tuple | list) or len(value) != 2:
        msg = f"{spec.name} entries must be (name, value) pairs of str, not {value!r}"
        raise TypeError(msg)
    return (_text(spec, value[0]), _text(spec, value[1]))


def _normalise(spec: _Spec, value: object) -> object:
    # Check one value the way paho documents it and return what we store: an int, a
    # str, bytes, or for the two repeatable properties a list of items.
    if spec.multiple:
        items = value if isinstance(value, list) else [value]
        if spec.kind == _PAIR:
            return [_pair(spec, item) for item in items]
        return [_integer(spec, item) for item in items]
    if spec.kind == _STRING:
        return _text(spec, value)
    if spec.kind == _BINARY:
        if not isinstance(value, bytes | bytearray):
            msg = f"{spec.name} must be bytes, not {type(value).__name__}"
            raise TypeError(msg)
        return bytes(value)
    return _integer(spec, value)


_G = TypeVar("_G")
_S = TypeVar("_S")


class _Property(Generic[_G, _S]):
    """One MQTT 5 property of `Properties`: reads as ``_G``, accepts ``_S``.

    Reading an unset property raises AttributeError (so ``hasattr()`` and
    ``getattr(props, "X", None)`` work as with paho); setting checks the value and the
    packet type; setting a repeatable one (UserProperty, SubscriptionIdentifier)
    appends.
    """

    def __init__(self, name: str) -> None:
        self._spec = _SPEC_BY_NAME[name]
        self.__doc__ = (
            f"MQTT 5 property {_spaced(name)} (0x{self._spec.ident:02X}); unset "
            "properties raise AttributeError."
        )

    @overload
    def __get__(self, instance: None, owner: type | None = None) -> Self: ...
    @overload
    def __get__(self, instance: Properties, owner: type | None = None) -> _G: ...
    def __get__(
        self, instance: Properties | None, owner: type | None = None
    ) -> Self | _G:
        if instance is None:
            return self
        try:
            return instance.__dict__[self._spec.name]  # type: ignore[no-any-return]
        except KeyError:
            raise AttributeError(self._spec.name) from None

    def __set__(self, instance: Properties, value: _S) -> None:
        spec = self._spec
        if instance.packetType not in spec.packets:
            msg = (
                f"property {spec.name} does not apply to packet type "
                f"{_packet_name(instance.packetType)}; create Properties() for the "
                "packet that carries it"
            )
            raise ValueError(msg)
        stored = _normalise(spec, value)
        if spec.multiple:
            stored = instance.__dict__.get(spec.name, []) + stored
        instance.__dict__[spec.name] = stored

    def __delete__(self, instance: Properties) -> None:
        try:
            del instance.__dict__[self._spec.name]
        except KeyError:
            raise AttributeError(self._spec.name) from None


class Properties:
    """MQTT 5 properties of one packet, with paho's attribute names.

    Create it for the packet that carries it, then set attributes::

        props = Properties(PacketTypes.PUBLISH)
        props.ContentType = "application/json"
        props.UserProperty = ("source", "sensor-1")   # appends
        props.UserProperty = [("a", "1"), ("b", "2")]  # appends both
        props.UserProperty  # [("source", "sensor-1"), ("a", "1"), ("b", "2")]

    An unset property raises ``AttributeError`` (use ``getattr(props, "X", None)``).
    Names with spaces are accepted too: ``setattr(props, "Content Type", ...)``.

    Args:
        packetType: The packet the properties belong to, e.g. ``PacketTypes.PUBLISH``
            (``PacketTypes.WILLMESSAGE`` for will properties).

    Raises:
        AttributeError: When setting a name that is not an MQTT 5 property.
        ValueError: When setting a property the packet type does not allow, or an
            integer out of range.
        TypeError: When setting a value of the wrong type.
    """

    names: ClassVar[MappingProxyType[str, int]] = MappingProxyType(
        {_spaced(spec.name): int(spec.ident) for spec in _SPECS}
    )
    """Property names as the specification spells them -> property identifier."""

    packetType: int
    """The packet type these properties belong to."""

    PayloadFormatIndicator: _Property[int, int] = _Property("PayloadFormatIndicator")
    MessageExpiryInterval: _Property[int, int] = _Property("MessageExpiryInterval")
    ContentType: _Property[str, str] = _Property("ContentType")
    ResponseTopic: _Property[str, str] = _Property("ResponseTopic")
    CorrelationData: _Property[bytes, bytes | bytearray] = _Property("CorrelationData")
    SubscriptionIdentifier: _Property[list[int], int | list[int]] = _Property(
        "SubscriptionIdentifier"
    )
    SessionExpiryInterval: _Property[int, int] = _Property("SessionExpiryInterval")
    AssignedClientIdentifier: _Property[str, str] = _Property(
        "AssignedClientIdentifier"
    )
    ServerKeepAlive: _Property[int, int] = _Property("ServerKeepAlive")
    AuthenticationMethod: _Property[str, str] = _Property("AuthenticationMethod")
    AuthenticationData: _Property[bytes, bytes | bytearray] = _Property(
        "AuthenticationData"
    )
    RequestProblemInformation: _Property[int, int] = _Property(
        "RequestProblemInformation"
    )
    WillDelayInterval: _Property[int, int] = _Property("WillDelayInterval")
    RequestResponseInformation: _Property[int, int] = _Property(
        "RequestResponseInformation"
    )
    ResponseInformation: _Property[str, str] = _Property("ResponseInformation")
    ServerReference: _Property[str, str] = _Property("ServerReference")
    ReasonString: _Property[str, str] = _Property("ReasonString")
    ReceiveMaximum: _Property[int, int] = _Property("ReceiveMaximum")
    TopicAliasMaximum: _Property[int, int] = _Property("TopicAliasMaximum")
    TopicAlias: _Property[int, int] = _Property("TopicAlias")
    MaximumQoS: _Property[int, int] = _Property("MaximumQoS")
    RetainAvailable: _Property[int, int] = _Property("RetainAvailable")
    UserProperty: _Property[
        list[tuple[str, str]], tuple[str, str] | list[tuple[str, str]]
    ] = _Property("UserProperty")
    MaximumPacketSize: _Property[int, int] = _Property("MaximumPacketSize")
    WildcardSubscriptionAvailable: _Property[int, int] = _Property(
        "WildcardSubscriptionAvailable"
    )
    SubscriptionIdentifierAvailable: _Property[int, int] = _Property(
        "SubscriptionIdentifierAvailable"
    )
    SharedSubscriptionAvailable: _Property[int, int] = _Property(
        "SharedSubscriptionAvailable"
    )

    def __init__(self, packetType: int) -> None:
        object.__setattr__(self, "packetType", packetType)

    def __setattr__(self, name: str, value: object) -> None:
        compressed = name.replace(" ", "")
        if compressed == "packetType":
            object.__setattr__(self, compressed, value)
            return
        if compressed not in _SPEC_BY_NAME:
            msg = (
                f"{name!r} is not an MQTT 5 property; use one of "
                f"{', '.join(_SPEC_BY_NAME)}"
            )
            raise AttributeError(msg)
        object.__setattr__(self, compressed, value)

    def __delattr__(self, name: str) -> None:
        object.__delattr__(self, name.replace(" ", ""))

    def allowsMultiple(self, compressedName: str) -> bool:
        """Tell whether a property may appear several times (UserProperty and
        SubscriptionIdentifier)."""
        spec = _SPEC_BY_NAME.get(compressedName)
        return spec is not None and spec.multiple

    def getIdentFromName(self, compressedName: str) -> int:
        """Return the identifier of a property name, or -1 if there is none."""
        spec = _SPEC_BY_NAME.get(compressedName.replace(" ", ""))
        return -1 if spec is None else int(spec.ident)

    def getNameFromIdent(self, identifier: int) -> str | None:
        """Return the spaced name of a property identifier, or None."""
        for name, ident in self.names.items():
            if ident == identifier:
                return name
        return None

    def isEmpty(self) -> bool:
        """Tell whether no property is set."""
        return not any(spec.name in self.__dict__ for spec in _SPECS)

    def clear(self) -> None:
        """Unset every property."""
        for spec in _SPECS:
            self.__dict__.pop(spec.name, None)

    def json(self) -> dict[str, object]:
        """Return the set properties as a dict, ``CorrelationData`` as hex (as paho)."""
        data: dict[str, object] = {}
        for name, value in self._items():
            data[name] = value.hex() if isinstance(value, bytes) else value
        return data

    def _items(self) -> list[tuple[str, object]]:
        return [
            (spec.name, self.__dict__[spec.name])
            for spec in _SPECS
            if spec.name in self.__dict__
        ]

    def __str__(self) -> str:
        items = ", ".join(f"{name} : {value}" for name, value in self._items())
        return f"[{items}]"

    def __repr__(self) -> str:
        return f"Properties({_packet_name(self.packetType)}, {self})"


def properties_to_record(properties: object) -> PropertiesRecord:
    """Convert properties given by the user to the engine's frozen record.

    Accepts None (no properties), our `Properties`, paho's ``Properties`` (read by
    attribute name) and the engine record itself.

    Raises:
        TypeError: If ``properties`` is something else, or a value has the wrong type.
        ValueError: If an integer is out of range.
    """
    if properties is None:
        return _NO_PROPERTIES
    if isinstance(properties, PropertiesRecord):
        return properties
    if not hasattr(properties, "packetType"):
        msg = (
            "properties must be a Properties object (trio_mqttconn.aiomqtt or "
            f"paho-mqtt) or None, not {type(properties).__name__}"
        )
        raise TypeError(msg)
    fields: dict[str, object] = {}
    for spec in _SPECS:
        value = getattr(properties, spec.name, _MISSING)
        if value is _MISSING or value is None:
            continue
        stored = _normalise(spec, value)
        fields[spec.field] = tuple(stored) if isinstance(stored, list) else stored
    if not fields:
        return _NO_PROPERTIES
    return PropertiesRecord(**fields)  # type: ignore[arg-type]


def properties_from_record(record: PropertiesRecord, packet_type: int) -> Properties:
    """Convert the engine's record to paho-style `Properties` of ``packet_type``.

    Every property set in the record is copied, even one the packet type would not
    allow to be set by hand (the broker sent it, the user should see it).
    """
    properties = Properties(packet_type)
    for spec in _SPECS:
        value = getattr(record, spec.field)
        if value is None or value == ():
            continue
        properties.__dict__[spec.name] = list(value) if spec.multiple else value
    return properties


# ------------------------------------------------------------------ subscribe options


class SubscribeOptions:
    """MQTT 5 subscription options, with paho's names.

    Args:
        qos: Highest QoS the broker may deliver with: 0, 1 or 2 (stored as ``QoS``).
        noLocal: If True, the broker does not send the client its own publications.
        retainAsPublished: If True, messages keep the retain flag they were
            published with.
        retainHandling: When the broker sends retained messages:
            ``RETAIN_SEND_ON_SUBSCRIBE`` (0), ``RETAIN_SEND_IF_NEW_SUB`` (1) or
            ``RETAIN_DO_NOT_SEND`` (2).

    Raises:
        ValueError: If ``qos`` or ``retainHandling`` is not 0, 1 or 2.
    """

    RETAIN_SEND_ON_SUBSCRIBE: ClassVar[int] = 0
    """Send retained messages on every successful subscribe."""
    RETAIN_SEND_IF_NEW_SUB: ClassVar[int] = 1
    """Send retained messages only if the subscription did not exist."""
    RETAIN_DO_NOT_SEND: ClassVar[int] = 2
    """Never send retained messages for this subscription."""

    names: ClassVar[tuple[str, ...]] = (
        "QoS",
        "noLocal",
        "retainAsPublished",
        "retainHandling",
    )
    """The attribute names, in wire bit order."""

    QoS: int
    """Maximum QoS of the subscription (bits 0-1)."""
    noLocal: bool
    """Do not receive own publications (bit 2)."""
    retainAsPublished: bool
    """Keep the publisher's retain flag (bit 3)."""
    retainHandling: int
    """Retained message handling (bits 4-5)."""

    def __init__(
        self,
        qos: int = 0,
        noLocal: bool = False,
        retainAsPublished: bool = False,
        retainHandling: int = RETAIN_SEND_ON_SUBSCRIBE,
    ) -> None:
        self.QoS = qos
        self.noLocal = noLocal
        self.retainAsPublished = retainAsPublished
        self.retainHandling = retainHandling

    def __setattr__(self, name: str, value: object) -> None:
        if name not in self.names:
            names = ", ".join(self.names)
            msg = f"{name!r} is not a subscribe option; use one of {names}"
            raise AttributeError(msg)
        if name in ("QoS", "retainHandling") and (
            not isinstance(value, int) or value not in (0, 1, 2)
        ):
            label = "qos" if name == "QoS" else name
            msg = f"{label} must be 0, 1 or 2, not {value!r}"
            raise ValueError(msg)
        object.__setattr__(self, name, value)

    def pack(self) -> bytes:
        """Return the one-byte wire form of the options."""
        return bytes(
            [
                self.retainHandling << 4
                | bool(self.retainAsPublished) << 3
                | bool(self.noLocal) << 2
                | self.QoS
            ]
        )

    def unpack(self, buffer: bytes | bytearray) -> int:
        """Set the options from the first byte of ``buffer``; return the bytes used (1).

        Raises:
            ValueError: If the QoS or retain handling bits are 3.
        """
        byte = buffer[0]
        self.retainHandling = (byte >> 4) & 0x03
        self.retainAsPublished = bool((byte >> 3) & 0x01)
        self.noLocal = bool((byte >> 2) & 0x01)
        self.QoS = byte & 0x03
        return 1

    def json(self) -> dict[str, int | bool]:
        """Return the options as a dict keyed by attribute name."""
        return {name: getattr(self, name) for name in self.names}

    def __str__(self) -> str:
        return (
            f"{{QoS={self.QoS}, noLocal={self.noLocal}, "
            f"retainAsPublished={self.retainAsPublished}, "
            f"retainHandling={self.retainHandling}}}"
        )

    __repr__ = __str__


def is_subscribe_options(value: object) -> bool:
    """Tell whether ``value`` is ours or paho's ``SubscribeOptions`` (by attributes)."""
    return isinstance(value, SubscribeOptions) or all(
        hasattr(value, name) for name in SubscribeOptions.names
    )


def to_subscribe_options(value: object) -> SubscribeOptions:
    """Return ``value`` as our `SubscribeOptions` (paho's are copied).

    Raises:
        TypeError: If ``value`` has no subscribe option attributes.
        ValueError: If its QoS or retain handling is out of range.
    """
    if isinstance(value, SubscribeOptions):
        return value
    if not is_subscribe_options(value):
        msg = f"expected SubscribeOptions, not {type(value).__name__}"
        raise TypeError(msg)
    get: Callable[[str], object] = functools.partial(getattr, value)
    return SubscribeOptions(
        qos=get("QoS"),  # type: ignore[arg-type]
        noLocal=bool(get("noLocal")),
        retainAsPublished=bool(get("retainAsPublished")),
        retainHandling=get("retainHandling"),  # type: ignore[arg-type]
    )


def to_topic_subscription(topic_filter: str, options: object) -> TopicSubscription:
    """Build the engine's `TopicSubscription` from a filter and subscribe options.

    Args:
        topic_filter: The topic filter.
        options: Our or paho's ``SubscribeOptions``.
    """
    opts = to_subscribe_options(options)
    return TopicSubscription(
        filter=topic_filter,
        qos=QoS(opts.QoS),
        no_local=bool(opts.noLocal),
        retain_as_published=bool(opts.retainAsPublished),
        retain_handling=RetainHandling(opts.retainHandling),
    )


def subscribe_options_from_subscription(
    subscription: TopicSubscription,
) -> SubscribeOptions:
    """Return the `SubscribeOptions` of an engine `TopicSubscription`."""
    return SubscribeOptions(
        qos=int(subscription.qos),
        noLocal=subscription.no_local,
        retainAsPublished=subscription.retain_as_published,
        retainHandling=int(subscription.retain_handling),
    )
