"""Events the client session yields. Don't subclass these (h11's rule).

CONTRACT (fixed, the engine codes against it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeAlias, final

import attrs

from ._enums import ReasonCode
from ._properties import EMPTY_PROPERTIES, Properties

if TYPE_CHECKING:
    from ._message import Message
    from ._packets import PublishPacket

__all__ = [
    "AuthReceived",
    "Connected",
    "ConnectionRefused",
    "Disconnected",
    "Event",
    "MessageReceived",
    "PongReceived",
    "PublishCompleted",
    "Subscribed",
    "Unsubscribed",
]


@final
@attrs.frozen(kw_only=True)
class Connected:
    """The broker accepted CONNECT (CONNACK with a success reason code)."""

    session_present: bool
    """The broker resumed a stored session."""
    client_id: str
    """The client id in force (the broker's assigned id when it chose one)."""
    keepalive: int
    """Keep alive in force, seconds (the broker's Server Keep Alive wins)."""
    properties: Properties = EMPTY_PROPERTIES
    """CONNACK properties."""
    resent: int = 0
    """How many PUBLISH/PUBREL were queued for re-sending ([MQTT-4.4.0-1])."""
    discarded: tuple[PublishPacket, ...] = ()
    """Unacknowledged QoS 1/2 PUBLISH dropped because the broker had no session
    ([MQTT-3.2.2-5]); the engine may publish them again as new messages."""
    discarded_pubrel: tuple[int, ...] = ()
    """Packet ids of QoS 2 publishes waiting for PUBCOMP whose state the broker lost;
    the broker had already received them (PUBREC), so they count as delivered."""


@final
@attrs.frozen(kw_only=True)
class ConnectionRefused:
    """The broker answered CONNECT with a failure reason code."""

    reason_code: ReasonCode
    properties: Properties = EMPTY_PROPERTIES


@final
@attrs.frozen(kw_only=True)
class MessageReceived:
    """An application message arrived (duplicates of QoS 2 already suppressed)."""

    message: Message


@final
@attrs.frozen(kw_only=True)
class PublishCompleted:
    """An outgoing QoS 1/2 PUBLISH finished: PUBACK, PUBCOMP, or a failed PUBREC.

    ``reason_code.is_failure`` tells a refused publish from a delivered one.
    """

    packet_id: int
    reason_code: ReasonCode = ReasonCode.SUCCESS
    properties: Properties = EMPTY_PROPERTIES


@final
@attrs.frozen(kw_only=True)
class Subscribed:
    """SUBACK arrived: one reason code per requested filter."""

    packet_id: int
    reason_codes: tuple[ReasonCode, ...]
    properties: Properties = EMPTY_PROPERTIES


@final
@attrs.frozen(kw_only=True)
class Unsubscribed:
    """UNSUBACK arrived (MQTT 3.1.1: reason codes are all SUCCESS)."""

    packet_id: int
    reason_codes: tuple[ReasonCode, ...]
    properties: Properties = EMPTY_PROPERTIES


@final
@attrs.frozen
class PongReceived:
    """PINGRESP arrived."""


@final
@attrs.frozen(kw_only=True)
class Disconnected:
    """The broker sent DISCONNECT (MQTT 5); the connection is over."""

    reason_code: ReasonCode
    properties: Properties = EMPTY_PROPERTIES


@final
@attrs.frozen(kw_only=True)
class AuthReceived:
    """The broker sent AUTH (enhanced authentication); the application answers."""

    reason_code: ReasonCode
    properties: Properties = EMPTY_PROPERTIES


Event: TypeAlias = (
    Connected
    | ConnectionRefused
    | MessageReceived
    | PublishCompleted
    | Subscribed
    | Unsubscribed
    | PongReceived
    | Disconnected
    | AuthReceived
)
