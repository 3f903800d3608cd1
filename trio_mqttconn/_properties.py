"""MQTT 5 properties: one frozen record, the property table, encode/decode/validate.

CONTRACT (fixed, other modules code against it): ``Properties`` is a frozen attrs
class with one optional field per property; ``user_properties`` and
``subscription_identifiers`` are tuples (possibly empty). ``EMPTY_PROPERTIES`` is the
shared instance with nothing set, used on the hot path so that a PUBLISH without
properties allocates nothing.
"""

from __future__ import annotations

import attrs

__all__ = ["EMPTY_PROPERTIES", "Properties"]


@attrs.frozen(kw_only=True)
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
    """0 asks the broker to omit reason strings and user properties on errors (CONNECT)."""
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
