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
"""

from __future__ import annotations

from typing import TypeAlias

import attrs

from ._enums import ProtocolVersion, QoS, ReasonCode, RetainHandling
from ._properties import EMPTY_PROPERTIES, Properties

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
]


@attrs.frozen(kw_only=True)
class Will:
    """The message the broker publishes when the client disappears without DISCONNECT."""

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
    protocol_version: ProtocolVersion = ProtocolVersion.V5
    clean_start: bool = True
    keepalive: int = 60
    username: str | None = None
    password: bytes | None = attrs.field(default=None, repr=False)
    will: Will | None = None
    properties: Properties = EMPTY_PROPERTIES


@attrs.frozen(kw_only=True)
class ConnAckPacket:
    """CONNACK: the broker's answer to CONNECT."""

    session_present: bool = False
    reason_code: ReasonCode = ReasonCode.SUCCESS
    properties: Properties = EMPTY_PROPERTIES


@attrs.frozen(kw_only=True)
class PublishPacket:
    """PUBLISH: an application message, in either direction."""

    topic: str
    payload: bytes = b""
    qos: QoS = QoS.AT_MOST_ONCE
    retain: bool = False
    dup: bool = False
    packet_id: int | None = None
    properties: Properties = EMPTY_PROPERTIES


@attrs.frozen(kw_only=True)
class PubAckPacket:
    """PUBACK: acknowledges a QoS 1 PUBLISH."""

    packet_id: int
    reason_code: ReasonCode = ReasonCode.SUCCESS
    properties: Properties = EMPTY_PROPERTIES


@attrs.frozen(kw_only=True)
class PubRecPacket:
    """PUBREC: first acknowledgement of a QoS 2 PUBLISH."""

    packet_id: int
    reason_code: ReasonCode = ReasonCode.SUCCESS
    properties: Properties = EMPTY_PROPERTIES


@attrs.frozen(kw_only=True)
class PubRelPacket:
    """PUBREL: releases a QoS 2 PUBLISH after PUBREC."""

    packet_id: int
    reason_code: ReasonCode = ReasonCode.SUCCESS
    properties: Properties = EMPTY_PROPERTIES


@attrs.frozen(kw_only=True)
class PubCompPacket:
    """PUBCOMP: completes a QoS 2 exchange."""

    packet_id: int
    reason_code: ReasonCode = ReasonCode.SUCCESS
    properties: Properties = EMPTY_PROPERTIES


@attrs.frozen(kw_only=True)
class TopicSubscription:
    """One topic filter of a SUBSCRIBE, with its subscription options."""

    filter: str
    qos: QoS = QoS.AT_MOST_ONCE
    no_local: bool = False
    retain_as_published: bool = False
    retain_handling: RetainHandling = RetainHandling.SEND_ON_SUBSCRIBE


@attrs.frozen(kw_only=True)
class SubscribePacket:
    """SUBSCRIBE: asks for messages matching one or more topic filters."""

    packet_id: int
    subscriptions: tuple[TopicSubscription, ...]
    properties: Properties = EMPTY_PROPERTIES


@attrs.frozen(kw_only=True)
class SubAckPacket:
    """SUBACK: one reason code per filter of the SUBSCRIBE it answers."""

    packet_id: int
    reason_codes: tuple[ReasonCode, ...]
    properties: Properties = EMPTY_PROPERTIES


@attrs.frozen(kw_only=True)
class UnsubscribePacket:
    """UNSUBSCRIBE: removes one or more topic filters."""

    packet_id: int
    filters: tuple[str, ...]
    properties: Properties = EMPTY_PROPERTIES


@attrs.frozen(kw_only=True)
class UnsubAckPacket:
    """UNSUBACK: answers UNSUBSCRIBE (reason codes only in MQTT 5)."""

    packet_id: int
    reason_codes: tuple[ReasonCode, ...] = ()
    properties: Properties = EMPTY_PROPERTIES


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
    properties: Properties = EMPTY_PROPERTIES


@attrs.frozen(kw_only=True)
class AuthPacket:
    """AUTH: enhanced authentication exchange (MQTT 5)."""

    reason_code: ReasonCode = ReasonCode.SUCCESS
    properties: Properties = EMPTY_PROPERTIES


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


def encode_packet(packet: Packet, version: ProtocolVersion) -> bytes:
    """Encode *packet* for protocol *version*; raises ValueError on bad input."""
    raise NotImplementedError  # implemented by the codec work


class PacketDecoder:
    """Incremental decoder: feed bytes, take complete packets."""

    def __init__(
        self, version: ProtocolVersion, *, max_packet_size: int | None = None
    ) -> None:
        self.version = version
        self.max_packet_size = max_packet_size

    def feed(self, data: bytes) -> None:
        """Buffer *data*."""
        raise NotImplementedError

    def next_packet(self) -> Packet | None:
        """Return the next complete packet, or None when more bytes are needed."""
        raise NotImplementedError

    def packets(self) -> list[Packet]:
        """Return every complete packet in the buffer."""
        raise NotImplementedError
