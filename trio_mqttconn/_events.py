"""Events the client session yields. Don't subclass these (h11's rule).

CONTRACT (fixed, the engine codes against it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeAlias, final

import attrs

from ._enums import QoS, ReasonCode
from ._properties import EMPTY_PROPERTIES, Properties

if TYPE_CHECKING:
    from ._exceptions import PublishError
    from ._message import Message
    from ._packets import PublishPacket

__all__ = [
    "AuthReceived",
    "ConnAckInfo",
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
class ConnAckInfo:
    """What the broker's CONNACK said about this connection, defaults filled in.

    MQTT 3.1.1 has no CONNACK properties: its values are the protocol defaults
    (no limits; no subscription identifiers).
    """

    session_present: bool
    """The broker resumed a stored session."""
    client_id: str
    """The client id in force (the broker's assigned id when it chose one)."""
    assigned_client_id: str | None
    """The id the broker assigned (CONNACK Assigned Client Identifier), else None."""
    keepalive: int
    """Keep alive in force, seconds (the broker's Server Keep Alive wins)."""
    server_keep_alive: int | None
    """The broker's Server Keep Alive, seconds, when it sent one."""
    receive_maximum: int
    """How many QoS 1/2 PUBLISH we may have unacknowledged (65535 when unset)."""
    maximum_qos: QoS
    """Highest QoS the broker accepts in our PUBLISH."""
    retain_available: bool
    """Whether the broker accepts retained messages."""
    maximum_packet_size: int | None
    """Largest packet the broker accepts, bytes; None = no limit announced."""
    topic_alias_maximum: int
    """Highest topic alias the broker accepts from us; 0 = none."""
    wildcard_subscription_available: bool
    """Whether the broker accepts topic filters with ``+`` or ``#``."""
    subscription_identifier_available: bool
    """Whether SUBSCRIBE may carry a subscription identifier (never in 3.1.1)."""
    shared_subscription_available: bool
    """Whether the broker accepts ``$share/...`` filters."""
    response_information: str | None = None
    """The broker's Response Information (MQTT 5), else None.

    A broker sends it only when CONNECT asked with Request Response Information
    and it has something to offer; it is a basis for response topics (MQTT 5,
    section 4.10.1, non-normative: typically a topic prefix reserved for this
    client). The broker may ignore the request: None then, and always on 3.1.1."""


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
    """How many PUBLISH/PUBREL were queued for re-sending now ([MQTT-4.4.0-1]);
    re-sends beyond the broker's Receive Maximum follow in later `data_to_send`
    (``ClientSession.resends_waiting``). A re-send that breaks a limit of this
    connection is not sent: a `PublishCompleted` with ``error`` follows this event."""
    discarded: tuple[PublishPacket, ...] = ()
    """Unacknowledged QoS 1/2 PUBLISH dropped because the broker had no session
    ([MQTT-3.2.2-5]); the engine may publish them again as new messages."""
    discarded_pubrel: tuple[int, ...] = ()
    """Packet ids of QoS 2 publishes waiting for PUBCOMP whose state the broker lost;
    the broker had already received them (PUBREC), so they count as delivered."""
    info: ConnAckInfo | None = attrs.field(default=None, eq=False)
    """The CONNACK's details with defaults filled in; always set by the session
    (None only in an event made by hand)."""


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
    error: PublishError | None = attrs.field(default=None, eq=False)
    """Set when the session itself gave the publish up, without the broker: a
    re-send that breaks a limit of the new connection (a `PublishLimitError`
    naming it). The engine raises it from the ``publish()`` waiting for this id."""


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
