"""Sans-IO MQTT client session: the protocol state machine between bytes and events.

`ClientSession` knows MQTT 3.1.1 and 5.0 packet by packet and nothing about sockets,
tasks or clocks: methods that send return the bytes to write, `receive_data` buffers
what the broker sent and `events` turns it into `Event` objects (the shape of h11 and
wsproto).
"""

# Theory of operation
# ===================
#
# One ClientSession lives as long as the MQTT *session*, which may span several
# network connections; each connection is one trip through these states:
#
#                  connect()              CONNACK success
#   DISCONNECTED ───────────> CONNECTING ─────────────────> CONNECTED
#        ^                     ^      │                       │    │
#        │                     │      │ CONNACK failure,      │    │ disconnect(),
#        │           connect() │      │ disconnect()          │    │ DISCONNECT from
#        │                     │      v                       │    │ the broker
#        │                     └── CLOSED <───────────────────┼────┘
#        │                                                    │
#        └─── connection_lost(), send_failed(), EOF ──────────┘
#             (from CONNECTING as well as from CONNECTED)
#
#   state                    what happens                             next state
#   DISCONNECTED, CLOSED     connect()                                CONNECTING
#   CONNECTING               CONNACK with a success code              CONNECTED
#   CONNECTING               CONNACK with a failure code              CLOSED
#   CONNECTING, CONNECTED    disconnect()                             CLOSED
#   CONNECTED                DISCONNECT from the broker (MQTT 5)      CLOSED
#   CONNECTING, CONNECTED    connection_lost(), send_failed(), EOF    DISCONNECTED
#   CLOSED                   connection_lost(), send_failed()         CLOSED
#
# connect() starts a fresh decoder. CLOSED means the connection ended in order; bytes
# received in CLOSED are dropped: after a DISCONNECT nothing more is processed or
# acknowledged.
#
# What may be sent and received depends on the state only:
#
#   we send      CONNECT in DISCONNECTED/CLOSED; AUTH and DISCONNECT in CONNECTING
#                and CONNECTED; PUBLISH, SUBSCRIBE, UNSUBSCRIBE, PINGREQ in CONNECTED.
#   we receive   CONNACK (and AUTH) in CONNECTING; in CONNECTED everything a broker
#                may send except CONNACK. Anything else is a ProtocolError naming the
#                packet and the state. The tables are _HANDLERS[(version, state)];
#                MQTT 3.1.1 has no broker DISCONNECT and no AUTH.
#
# Tables kept across connections (the session state of [v5:MQTT-4.1.0-1]):
#
#   _outgoing       packet id -> every outgoing QoS 1/2 PublishPacket not yet
#                   completed (awaiting PUBACK, PUBREC or PUBCOMP), as first sent (full
#                   topic, DUP=0), in publish order. Its size is what the broker's
#                   Receive Maximum limits (send_quota).
#   _pubrel         the ids of _outgoing whose PUBREC arrived and PUBREL went out
#                   (awaiting PUBCOMP), in PUBREC order.
#   _incoming_qos2  ids of received QoS 2 PUBLISH whose PUBREL has not arrived: a
#                   PUBLISH with one of them is a re-delivery, acknowledged again but
#                   not delivered again [v5:MQTT-4.3.3-10].
#
# Tables of one connection only (cleared by connect() and connection_lost()):
#
#   _subscribes / _unsubscribes   packet id -> number of topic filters, for the
#                   SUBACK/UNSUBACK count check; SUBSCRIBE is never re-sent.
#   _in_aliases / _out_aliases    topic aliases in each direction [v5:MQTT-3.3.2-7].
#                   _alias_unsure: topics whose alias-setting PUBLISH was withdrawn;
#                   their next PUBLISH states topic + alias again.
#   _out            acknowledgements and re-sends produced while decoding, taken by
#                   data_to_send(); _acks_queued counts the PUBACK/PUBCOMP in it,
#                   which the broker cannot yet have received.
#   _owed           with defer_acks: (packet id, QoS) of the PUBACK/PUBREC decoding
#                   called for, in arrival order, until take_owed_acks();
#                   _owed_qos1 counts the QoS 1 ones in it (like _acks_queued).
#   _held           ids of _outgoing whose re-send waits for send quota (below).
#
# Packet ids come from one allocator shared by PUBLISH, SUBSCRIBE and UNSUBSCRIBE:
# it walks forward from the last id used, skipping ids in any of the three tables,
# wrapping 65535 -> 1 [v5:MQTT-2.2.1-3].
#
# On CONNACK with Session Present = 1 every _outgoing entry is sent again with the
# same id [v5:MQTT-4.4.0-1]: first a PUBREL for each _pubrel id, in PUBREC order
# [v5:MQTT-4.6.0-4], all at once (those messages are the broker's already), then the
# other PUBLISH with DUP=1 in publish order [v5:MQTT-4.6.0-1], through _out. Every
# _outgoing entry counts against the new Receive Maximum (as the broker counts its
# unreleased QoS 2 messages), so only that many PUBLISH are queued at CONNACK
# [v5:MQTT-3.3.4-7]; the rest wait in _held and each PUBACK, PUBCOMP or failed
# PUBREC queues the next one. While any wait, send_quota is 0: new publishes follow
# the re-sends. A re-send that breaks a limit of the new connection (Maximum QoS,
# Retain Available, Maximum Packet Size [v5:MQTT-3.2.2-11/-14/-15], or our own
# maximum_outgoing_packet_size) is dropped from _outgoing and reported as a
# PublishCompleted carrying a PublishLimitError, right after Connected. With
# Session Present = 0 the broker has no session, so ours is discarded
# [v5:MQTT-3.2.2-5] and reported in the Connected event. Nothing is ever re-sent on
# a live connection.
#
# withdraw() undoes publish()/subscribe()/unsubscribe() whose bytes were never
# written: the id and the _outgoing slot go, the topic's alias becomes unsure.
#
# Errors: local misuse raises ValueError (PublishLimitError, also a PublishError,
# for a PUBLISH above a limit in force) or InvalidStateError before any byte is
# produced and changes nothing. Bad input from the broker raises ProtocolError (with
# the MQTT 5 reason code to put in our DISCONNECT); events() first returns the events
# decoded before the bad packet, so nothing already acknowledged is lost, then raises
# the error on this and every later call until the next connection.

from __future__ import annotations

import enum
import struct
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, Final, final

import attrs

from ._enums import ProtocolVersion, QoS, ReasonCode
from ._events import (
    AuthReceived,
    ConnAckInfo,
    Connected,
    ConnectionRefused,
    Disconnected,
    Event,
    MessageReceived,
    PongReceived,
    PublishCompleted,
    Subscribed,
    Unsubscribed,
)
from ._exceptions import InvalidStateError, ProtocolError, PublishLimitError
from ._frozen import unfrozen_twin
from ._journal import ChangeKind, SessionChange, StoredSession
from ._message import received_message
from ._packets import (
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
    encode_packet,
    encode_publish_fast,
)
from ._properties import EMPTY_PROPERTIES, Properties
from ._topics import validate_topic_filter, validate_topic_name

__all__ = ["ClientSession", "SessionState"]

_MAX_PACKET_ID: Final = 65535
# The largest MQTT packet: 1 byte of type, 4 of remaining length, 268,435,455 of body.
_MAX_PACKET_SIZE: Final = 268_435_460
_DEFAULT_RECEIVE_MAXIMUM: Final = 65535
# MQTT 3.1.1 has no Receive Maximum: the broker may have any number in flight.
_NO_LIMIT: Final = 1 << 62

# A success PUBACK/PUBREC/PUBREL/PUBCOMP without properties is the same four bytes
# in 3.1.1 and 5.0 (MQTT 5 omits reason code and property length, v5 3.4.2.1), so
# the acknowledgements of the receive path are packed here, not encoded per packet.
_ACK: Final = struct.Struct("!BBH")
_PUBACK: Final = 0x40
_PUBREC: Final = 0x50
_PUBREL: Final = 0x62  # PUBREL has the reserved flags 0010 [v5:MQTT-3.6.1-1]
_PUBCOMP: Final = 0x70

_PONG: Final = PongReceived()
_UNFROZEN_RECEIVED: Final = unfrozen_twin(MessageReceived)
_UNFROZEN_COMPLETED: Final = unfrozen_twin(PublishCompleted)
_UNFROZEN_PUBLISH: Final = unfrozen_twin(PublishPacket)
_new = object.__new__


@final
class SessionState(enum.Enum):
    """Where a `ClientSession` stands in the life of one network connection."""

    DISCONNECTED = "DISCONNECTED"
    """No connection: before `ClientSession.connect`, or after the stream was lost."""
    CONNECTING = "CONNECTING"
    """CONNECT was sent; waiting for CONNACK (or AUTH)."""
    CONNECTED = "CONNECTED"
    """CONNACK accepted the connection."""
    CLOSED = "CLOSED"
    """Ended in order: DISCONNECT sent or received, or CONNACK refused."""


_DISCONNECTED: Final = SessionState.DISCONNECTED
_CONNECTING: Final = SessionState.CONNECTING
_CONNECTED: Final = SessionState.CONNECTED
_V5: Final = ProtocolVersion.V5
_QOS1: Final = QoS.AT_LEAST_ONCE
_QOS2: Final = QoS.EXACTLY_ONCE
#: Packets decoded per decoder call in `ClientSession.events`.
_DECODE_BATCH: Final = 64
_STORED: Final = ChangeKind.STORED
_RELEASED: Final = ChangeKind.RELEASED
_COMPLETED: Final = ChangeKind.COMPLETED
_RECEIVED: Final = ChangeKind.RECEIVED
_FORGOTTEN: Final = ChangeKind.FORGOTTEN
_SUBSCRIBED: Final = ChangeKind.SUBSCRIBED
_UNSUBSCRIBED: Final = ChangeKind.UNSUBSCRIBED
_CLOSED: Final = SessionState.CLOSED


def _to_protocol_version(value: ProtocolVersion | int) -> ProtocolVersion:
    try:
        return ProtocolVersion(value)
    except ValueError:
        raise ValueError(
            f"protocol_version must be ProtocolVersion.V311 (4) or "
            f"ProtocolVersion.V5 (5), not {value!r}"
        ) from None


def _check_receive_maximum(_session: object, _attribute: object, value: int) -> None:
    if not 1 <= value <= _DEFAULT_RECEIVE_MAXIMUM:
        raise ValueError(f"receive_maximum must be 1..65535, not {value!r}")


def _check_maximum_packet_size(
    _session: object, _attribute: object, value: int | None
) -> None:
    if value is not None and not 1 <= value <= 0xFFFFFFFF:
        raise ValueError(
            f"maximum_packet_size must be None or 1..4294967295 bytes, not {value!r}"
        )


def _check_outgoing_size(
    _session: object, _attribute: object, value: int | None
) -> None:
    if value is not None and not 2 <= value <= _MAX_PACKET_SIZE:
        raise ValueError(
            f"maximum_outgoing_packet_size must be None or 2..{_MAX_PACKET_SIZE} "
            f"bytes, not {value!r}"
        )


def _check_topic_alias_maximum(
    _session: object, _attribute: object, value: int
) -> None:
    if not 0 <= value <= _MAX_PACKET_ID:
        raise ValueError(f"topic_alias_maximum must be 0..65535, not {value!r}")


@final
# Settings are checked when the session is made; assignments later (the session's own
# bookkeeping, on every packet) go without attrs' setattr hooks.
@attrs.define(eq=False, kw_only=True, on_setattr=attrs.setters.NO_OP)
class ClientSession:
    """The MQTT protocol state of one client, without any I/O.

    The engine writes the bytes that `connect`, `publish`, `subscribe` ... return,
    feeds what it reads to `receive_data`, handles `events` and writes
    `data_to_send` (acknowledgements and re-sends) after each batch. One session
    outlives its connections: after `connection_lost` the next `connect` resumes it,
    re-sending what the broker has not acknowledged.

    Example::

        session = ClientSession()
        stream.write(session.connect(ConnectPacket(client_id="c1")))
        session.receive_data(stream.read())
        for event in session.events():
            ...
        stream.write(session.data_to_send())
    """

    protocol_version: ProtocolVersion = attrs.field(
        default=ProtocolVersion.V5, converter=_to_protocol_version
    )
    """MQTT version spoken; `connect` only accepts a CONNECT of this version."""
    receive_maximum: int = attrs.field(
        default=_DEFAULT_RECEIVE_MAXIMUM, validator=_check_receive_maximum
    )
    """How many unacknowledged QoS 1/2 PUBLISH the broker may send us (MQTT 5).

    A broker that sends more is tolerated up to `receive_maximum_cap` (see
    `receive_maximum_excess`); beyond that the session raises `ProtocolError` with
    reason code 0x93 (Receive Maximum exceeded).
    """
    defer_acks: bool = False
    """Leave the PUBACK/PUBREC of received messages to the caller (an engine that
    withholds them while a message waits for its consumer).

    Decoding then queues no PUBACK (QoS 1) or PUBREC (QoS 2, a re-delivery too) in
    `data_to_send`: `take_owed_acks` hands out their ``(packet_id, qos)`` in arrival
    order, and `release_ack` (or `release_owed_acks`) queues each when the caller
    decides, in the order [v5:MQTT-4.6.0-2] [v5:MQTT-4.6.0-3] ask for. A QoS 1
    message counts against `receive_maximum` until its ack was handed out (as it
    does until `data_to_send` without `defer_acks`; a QoS 2 one until its PUBREL):
    an ack the caller withholds is not counted, because mosquitto 2.0.11 goes
    beyond our Receive Maximum by as much as its backlog whenever acks are
    outstanding (see `receive_maximum_excess`) and disconnecting would not help.
    Acks owed on a connection that ended are forgotten: the broker sends those
    messages again.
    """
    tolerated_excess: int = 1000
    """How far beyond `receive_maximum` a broker may go at least (MQTT 5).

    The tolerated excess is the larger of this and `receive_maximum` itself (see
    `receive_maximum_excess`). 1000 is mosquitto's default ``max_queued_messages``,
    which bounds how far mosquitto 2.0.11 goes beyond it.
    """
    maximum_packet_size: int | None = attrs.field(
        default=None, validator=_check_maximum_packet_size
    )
    """Largest packet we accept, announced in CONNECT (MQTT 5); None = no limit."""
    topic_alias_maximum: int = attrs.field(
        default=0, validator=_check_topic_alias_maximum
    )
    """Highest topic alias the broker may use towards us (MQTT 5); 0 = none."""
    journal: bool = False
    """Record every change of the durable state as a `SessionChange` for
    `take_journal` (for an engine with a session store; see `_journal`)."""
    outgoing_topic_aliases: bool = False
    """Replace repeated topics of our PUBLISH by topic aliases (broker permitting)."""
    maximum_outgoing_packet_size: int | None = attrs.field(
        default=None, validator=_check_outgoing_size
    )
    """Largest packet we send, bytes; None = only the broker's limit applies.

    Checked like the broker's Maximum Packet Size (the smaller of the two wins), in
    both versions: MQTT 3.1.1 brokers announce no limit and drop the connection on
    a packet above theirs, so a message above it would be re-sent (and dropped)
    on every reconnect. A PUBLISH above it raises `PublishLimitError`.
    """

    client_id: str = attrs.field(default="", init=False)
    """Client id in force: CONNECT's, or the one the broker assigned in CONNACK."""
    keepalive: int = attrs.field(default=0, init=False)
    """Keep alive in force, seconds: CONNECT's, or the broker's Server Keep Alive."""
    maximum_qos: QoS = attrs.field(default=QoS.EXACTLY_ONCE, init=False)
    """Highest QoS the broker accepts in our PUBLISH (CONNACK Maximum QoS)."""
    retain_available: bool = attrs.field(default=True, init=False)
    """Whether the broker accepts retained messages (CONNACK Retain Available)."""
    broker_maximum_packet_size: int | None = attrs.field(default=None, init=False)
    """Largest packet the broker accepts (CONNACK); None = no limit announced."""
    broker_topic_alias_maximum: int = attrs.field(default=0, init=False)
    """Highest topic alias the broker accepts from us (CONNACK); 0 = none."""
    broker_receive_maximum: int = attrs.field(
        default=_DEFAULT_RECEIVE_MAXIMUM, init=False
    )
    """How many QoS 1/2 PUBLISH we may have in flight (CONNACK Receive Maximum)."""
    subscription_identifier_available: bool = attrs.field(
        default=attrs.Factory(
            lambda self: self.protocol_version is ProtocolVersion.V5, takes_self=True
        ),
        init=False,
    )
    """Whether SUBSCRIBE may carry a subscription identifier: CONNACK Subscription
    Identifiers Available (MQTT 5, default yes); never with MQTT 3.1.1. `subscribe`
    refuses identifiers while it is False."""

    receive_maximum_excess: int = attrs.field(default=0, init=False)
    """The most unacknowledged QoS 1/2 PUBLISH the broker had at once on this
    connection beyond `receive_maximum` (MQTT 5); 0 while it keeps to it.

    A broker must not exceed our Receive Maximum [v5:MQTT-3.3.4-9]; a client
    that receives more "uses DISCONNECT with Reason Code 0x93", which the
    specification states without a numbered MUST (CONFORMANCE.md lists it under
    3.3.4-9 as the broker's obligation the client detects). Some brokers exceed it
    by a bounded amount: mosquitto 2.0.11, with a backlog queued for us (after a
    resumed session, or while publishers outpace us), moves queued messages into flight on each acknowledgement up to its
    limit minus the acknowledged message's position in its in-flight list (not
    minus the number in flight), so its excess is bounded only by its queue
    (``max_queued_messages``, 1000 by default). Disconnecting does not help: it
    sends every message in flight again on the next connection. So the session
    accepts up to `receive_maximum_cap` and only then raises `ProtocolError`
    (0x93): memory stays bounded and a tolerable excess does not make the client
    reconnect in a loop. Reset by `connect`; the engine logs it once per
    connection.
    """

    _state: SessionState = attrs.field(default=_DISCONNECTED, init=False)
    _handlers: _HandlerTable | None = attrs.field(default=None, init=False, repr=False)
    _decoder: PacketDecoder = attrs.field(
        default=attrs.Factory(
            lambda self: PacketDecoder(self.protocol_version), takes_self=True
        ),
        init=False,
        repr=False,
    )
    _out: bytearray = attrs.field(factory=bytearray, init=False, repr=False)
    # Outgoing size limit in force: the smaller of the broker's and ours.
    _size_limit: int | None = attrs.field(
        default=attrs.Factory(
            lambda self: self.maximum_outgoing_packet_size, takes_self=True
        ),
        init=False,
        repr=False,
    )
    # Re-sends of this connection held back by the broker's Receive Maximum: the
    # ids (a set, for counting) and their order (a queue that may still hold ids
    # completed or withdrawn meanwhile, skipped when released).
    _held: set[int] = attrs.field(factory=set, init=False, repr=False)
    _held_order: deque[int] = attrs.field(factory=deque, init=False, repr=False)
    # Events decided while handling CONNACK beyond Connected itself (re-sends given
    # up), returned right after it.
    _late: list[Event] = attrs.field(factory=list, init=False, repr=False)
    # Topics whose alias the broker may not know: a PUBLISH that set it up was
    # withdrawn, so the next one carries the topic with the alias again.
    _alias_unsure: set[str] = attrs.field(factory=set, init=False, repr=False)
    _acks_queued: int = attrs.field(default=0, init=False, repr=False)
    _owed: list[tuple[int, int]] = attrs.field(factory=list, init=False, repr=False)
    _owed_qos1: int = attrs.field(default=0, init=False, repr=False)
    _eof: bool = attrs.field(default=False, init=False, repr=False)
    _error: ProtocolError | None = attrs.field(default=None, init=False, repr=False)
    _next_id: int = attrs.field(default=1, init=False, repr=False)
    _outgoing: dict[int, PublishPacket] = attrs.field(
        factory=dict, init=False, repr=False
    )
    _pubrel: dict[int, None] = attrs.field(factory=dict, init=False, repr=False)
    _incoming_qos2: set[int] = attrs.field(factory=set, init=False, repr=False)
    # With a journal: ids of messages a lost session discarded, still stored under
    # them until `forget`; never handed out meanwhile (one id, one stored message).
    _reserved: set[int] = attrs.field(factory=set, init=False, repr=False)
    _subscribes: dict[int, int] = attrs.field(factory=dict, init=False, repr=False)
    _unsubscribes: dict[int, int] = attrs.field(factory=dict, init=False, repr=False)
    _in_aliases: dict[int, str] = attrs.field(factory=dict, init=False, repr=False)
    _out_aliases: dict[str, int] = attrs.field(factory=dict, init=False, repr=False)
    _use_out_aliases: bool = attrs.field(default=False, init=False, repr=False)
    _incoming_limit: int = attrs.field(default=_NO_LIMIT, init=False, repr=False)
    # receive_maximum_cap while connected with MQTT 5 (see receive_maximum_excess).
    _incoming_cap: int = attrs.field(default=_NO_LIMIT, init=False, repr=False)
    _clean_start: bool = attrs.field(default=True, init=False, repr=False)
    # The changes not taken yet (journal=True), else None.
    _journal: list[SessionChange] | None = attrs.field(
        default=attrs.Factory(
            lambda self: [] if self.journal else None, takes_self=True
        ),
        init=False,
        repr=False,
    )
    _session_expiry: int = attrs.field(default=0, init=False, repr=False)
    _auth_method: str | None = attrs.field(default=None, init=False, repr=False)
    # Highest QoS of any SUBSCRIBE in this broker session: the broker never delivers
    # above the QoS it granted, which is at most the one requested [v5:MQTT-3.8.4-8].
    # 2 (no check) when the broker resumed a session this object did not start.
    _max_sub_qos: int = attrs.field(default=0, init=False, repr=False)
    _session_known: bool = attrs.field(default=False, init=False, repr=False)

    # ----------------------------------------------------------------- properties

    @property
    def state(self) -> SessionState:
        """The current `SessionState`."""
        return self._state

    @property
    def send_quota(self) -> int:
        """How many more QoS 1/2 PUBLISH may be sent now [v5:MQTT-3.3.4-7].

        The broker's Receive Maximum minus the publishes in flight; the engine waits
        for a `PublishCompleted` while it is 0. QoS 0 is never limited.
        """
        return max(0, self.broker_receive_maximum - len(self._outgoing))

    @property
    def receive_maximum_cap(self) -> int:
        """The most unacknowledged QoS 1/2 PUBLISH accepted before 0x93 (MQTT 5).

        `receive_maximum` plus the larger of itself and `tolerated_excess`, at most
        65535 (no more packet ids exist).
        """
        limit = self.receive_maximum
        return min(limit + max(limit, self.tolerated_excess), _MAX_PACKET_ID)

    @property
    def failed(self) -> bool:
        """Whether the broker broke the protocol: the next `events` raises the error.

        `events` returns the events decoded before a bad packet first; a caller that
        has no more data to pass checks this to act on the error now.
        """
        return self._error is not None

    @property
    def inflight(self) -> int:
        """Outgoing QoS 1/2 PUBLISH not yet completed (PUBACK or PUBCOMP)."""
        return len(self._outgoing)

    @property
    def resends_waiting(self) -> int:
        """Re-sends of this connection held back by the broker's Receive Maximum.

        After a CONNACK with Session Present = 1 the session queues only as many
        re-sent PUBLISH as the new Receive Maximum allows [v5:MQTT-3.3.4-7]; each
        PUBACK, PUBCOMP or failed PUBREC then releases the next into
        `data_to_send`. They count in `inflight`, so `send_quota` stays 0 (new
        publishes wait) until the last of them went out.
        """
        return len(self._held)

    # ------------------------------------------------------------ sending packets

    def connect(self, packet: ConnectPacket) -> bytes:
        """Start a connection: return the CONNECT bytes, expect CONNACK.

        For MQTT 5 the session's `receive_maximum`, `maximum_packet_size` and
        `topic_alias_maximum` are added to the CONNECT properties when they are not
        the protocol defaults.

        Args:
            packet: The CONNECT to send; its ``protocol_version`` must be the
                session's.

        Returns:
            The bytes to write.

        Raises:
            InvalidStateError: If the session is CONNECTING or CONNECTED.
            ValueError: If the packet does not fit the session or cannot be encoded.
        """
        self._require("ConnectPacket", _DISCONNECTED, _CLOSED)
        version = self.protocol_version
        if packet.protocol_version != version:
            raise ValueError(
                f"CONNECT protocol_version {packet.protocol_version.name} differs from "
                f"the session's {version.name}; create the session with the same "
                f"protocol_version"
            )
        if packet.will is not None:
            validate_topic_name(packet.will.topic)
        v5 = version is ProtocolVersion.V5
        if v5:
            packet = self._announce_limits(packet)
        data = encode_packet(packet, version)

        properties = packet.properties
        self.client_id = packet.client_id
        self.keepalive = packet.keepalive
        self._clean_start = packet.clean_start
        if v5:
            self._session_expiry = properties.session_expiry_interval or 0
            self._auth_method = properties.authentication_method
            self._incoming_limit = self.receive_maximum
            self._incoming_cap = self.receive_maximum_cap
        else:
            self._session_expiry = 0
            self._auth_method = None
            self._incoming_limit = _NO_LIMIT
            self._incoming_cap = _NO_LIMIT
        self.receive_maximum_excess = 0
        self._decoder = PacketDecoder(
            version, max_packet_size=self.maximum_packet_size if v5 else None
        )
        self._reset_connection()
        self._set_state(_CONNECTING)
        return data

    def publish(
        self,
        topic: str,
        payload: bytes,
        *,
        qos: QoS = QoS.AT_MOST_ONCE,
        retain: bool = False,
        properties: Properties = EMPTY_PROPERTIES,
    ) -> tuple[int | None, bytes]:
        """Return the bytes of a PUBLISH; QoS 1/2 publishes enter the in-flight table.

        Args:
            topic: Topic name (no wildcards).
            payload: The application message.
            qos: Quality of service, at most the broker's `maximum_qos`.
            retain: Ask the broker to retain the message.
            properties: MQTT 5 properties; topic aliases are the session's business.

        Returns:
            The packet id (None for QoS 0) and the bytes to write. A QoS 1/2 publish
            completes with a `PublishCompleted` event carrying that id.

        Raises:
            InvalidStateError: If not CONNECTED, if `send_quota` is 0 for QoS 1/2,
                or if all packet ids are in use.
            PublishLimitError: If the QoS, the retain flag or the packet size break
                a limit in force (the broker's CONNACK or the session's
                `maximum_outgoing_packet_size`); ``limit`` names it. A ValueError.
            ValueError: If the topic or properties are invalid.
        """
        if self._state is not _CONNECTED:
            raise self._cannot_send("PublishPacket")
        validate_topic_name(topic)
        if qos > self.maximum_qos:  # [v5:MQTT-3.2.2-11]
            raise self._qos_error("", qos, "publish")
        if retain and not self.retain_available:  # [v5:MQTT-3.2.2-14]
            raise self._retain_error("", "publish")
        fast = properties is EMPTY_PROPERTIES and not self._use_out_aliases
        if not qos and fast:
            # The hot path: nothing to remember, nothing to alias.
            data = encode_publish_fast(
                topic, payload, retain, self.protocol_version is _V5
            )
            self._check_size("PublishPacket", data)
            return None, data
        if properties is not EMPTY_PROPERTIES:
            _check_publish_properties(properties)
        packet_id: int | None = None
        if qos:
            if len(self._outgoing) >= self.broker_receive_maximum:
                raise InvalidStateError(
                    f"cannot send PublishPacket with QoS {int(qos)}: the send quota "
                    f"is 0 (broker receive maximum {self.broker_receive_maximum}); "
                    f"wait for a PublishCompleted event"
                )
            packet_id = self._allocate_id("PublishPacket")
        # An unfrozen twin (see _frozen): the arguments are checked already.
        packet = _new(_UNFROZEN_PUBLISH)
        packet.topic = topic
        packet.payload = payload
        packet.qos = qos
        packet.retain = retain
        packet.dup = False
        packet.packet_id = packet_id
        packet.properties = properties
        packet.__class__ = PublishPacket
        wire = packet
        new_alias = 0
        if fast:
            data = encode_publish_fast(
                topic,
                payload,
                retain,
                self.protocol_version is _V5,
                qos,
                packet_id or 0,
            )
        else:
            if self._use_out_aliases:
                # First use of a topic sends topic + alias, later uses an empty
                # topic + alias, aliases up to the broker's maximum
                # [v5:MQTT-3.3.2-9]; none after the broker's maximum is used.
                alias = self._out_aliases.get(topic)
                if alias is None:
                    if len(self._out_aliases) < self.broker_topic_alias_maximum:
                        alias = new_alias = len(self._out_aliases) + 1
                elif self._alias_unsure and topic in self._alias_unsure:
                    # The PUBLISH that set this alias up was withdrawn: state the
                    # mapping again (topic + alias), as on first use.
                    new_alias = alias
                if alias is not None:
                    wire = attrs.evolve(
                        packet,
                        topic=topic if new_alias else "",
                        properties=attrs.evolve(properties, topic_alias=alias),
                    )
            data = encode_packet(wire, self.protocol_version)
        self._check_size("PublishPacket", data)
        if new_alias:
            self._out_aliases[topic] = new_alias
            self._alias_unsure.discard(topic)
        if packet_id is not None:
            # The stored packet carries the full topic and no alias: a re-send goes
            # on a new connection, where aliases start afresh [v5:MQTT-3.3.2-7].
            self._outgoing[packet_id] = packet
            self._next_id = packet_id % _MAX_PACKET_ID + 1
            if self._journal is not None:
                self._journal.append(SessionChange(_STORED, packet_id, packet))
        return packet_id, data

    def subscribe(
        self,
        subscriptions: Sequence[TopicSubscription],
        *,
        properties: Properties = EMPTY_PROPERTIES,
    ) -> tuple[int, bytes]:
        """Return the bytes of a SUBSCRIBE; a `Subscribed` event answers it.

        Args:
            subscriptions: One or more topic filters with their options.
            properties: MQTT 5 properties (subscription identifier, user properties).

        Returns:
            The packet id and the bytes to write.

        Raises:
            InvalidStateError: If not CONNECTED, or all packet ids are in use.
            ValueError: If there is no filter, a filter is invalid, the properties
                carry a subscription identifier while
                `subscription_identifier_available` is False, or the packet is
                too large for the broker.
        """
        self._require("SubscribePacket", _CONNECTED)
        if not subscriptions:
            raise ValueError(
                f"subscribe needs at least one TopicSubscription, not {subscriptions!r}"
            )
        identifiers = properties.subscription_identifiers
        if identifiers and not self.subscription_identifier_available:
            raise ValueError(
                f"cannot send SubscribePacket with subscription identifier "
                f"{identifiers[0]}: {self._no_identifiers()}; remove "
                f"properties.subscription_identifiers"
            )
        for subscription in subscriptions:
            validate_topic_filter(subscription.filter)
            if subscription.no_local and subscription.filter.startswith("$share/"):
                raise ValueError(  # [v5:MQTT-3.8.3-4]
                    f"no_local cannot be set on the shared subscription "
                    f"{subscription.filter!r}; set no_local=False"
                )
        packet_id = self._allocate_id("SubscribePacket")
        data = encode_packet(
            SubscribePacket(
                packet_id=packet_id,
                subscriptions=tuple(subscriptions),
                properties=properties,
            ),
            self.protocol_version,
        )
        self._check_size("SubscribePacket", data)
        self._subscribes[packet_id] = len(subscriptions)
        self._next_id = packet_id % _MAX_PACKET_ID + 1
        self._max_sub_qos = max(self._max_sub_qos, *(s.qos for s in subscriptions))
        if self._journal is not None:
            self._journal.extend(
                SessionChange(_SUBSCRIBED, subscription=s) for s in subscriptions
            )
        return packet_id, data

    def unsubscribe(
        self, filters: Sequence[str], *, properties: Properties = EMPTY_PROPERTIES
    ) -> tuple[int, bytes]:
        """Return the bytes of an UNSUBSCRIBE; an `Unsubscribed` event answers it.

        Args:
            filters: One or more topic filters, as subscribed.
            properties: MQTT 5 properties (user properties).

        Returns:
            The packet id and the bytes to write.

        Raises:
            InvalidStateError: If not CONNECTED, or all packet ids are in use.
            ValueError: If there is no filter, a filter is invalid, or the packet is
                too large for the broker.
        """
        self._require("UnsubscribePacket", _CONNECTED)
        if not filters or isinstance(filters, str):
            raise ValueError(
                f"unsubscribe needs a sequence of one or more topic filters, "
                f"not {filters!r}"
            )
        for topic_filter in filters:
            validate_topic_filter(topic_filter)
        packet_id = self._allocate_id("UnsubscribePacket")
        data = encode_packet(
            UnsubscribePacket(
                packet_id=packet_id, filters=tuple(filters), properties=properties
            ),
            self.protocol_version,
        )
        self._check_size("UnsubscribePacket", data)
        self._unsubscribes[packet_id] = len(filters)
        self._next_id = packet_id % _MAX_PACKET_ID + 1
        if self._journal is not None:
            self._journal.extend(
                SessionChange(_UNSUBSCRIBED, subscription=TopicSubscription(filter=f))
                for f in filters
            )
        return packet_id, data

    def ping(self) -> bytes:
        """Return the bytes of a PINGREQ; a `PongReceived` event answers it.

        Raises:
            InvalidStateError: If not CONNECTED.
        """
        self._require("PingReqPacket", _CONNECTED)
        return encode_packet(PingReqPacket(), self.protocol_version)

    def disconnect(
        self,
        reason_code: ReasonCode = ReasonCode.NORMAL_DISCONNECTION,
        *,
        properties: Properties = EMPTY_PROPERTIES,
    ) -> bytes:
        """End the connection in order: return DISCONNECT, the state becomes CLOSED.

        The returned bytes start with any acknowledgements still waiting in
        `data_to_send`, because nothing may be sent after DISCONNECT
        [v5:MQTT-3.14.4-1]. The in-flight tables are kept for the next connection.

        Args:
            reason_code: MQTT 5 reason code (3.1.1 has none).
            properties: MQTT 5 properties (session expiry, reason string ...).

        Returns:
            The bytes to write before closing the stream.

        Raises:
            InvalidStateError: If not CONNECTING or CONNECTED.
            ValueError: If the properties break the protocol or the packet is too
                large for the broker.
        """
        self._require("DisconnectPacket", _CONNECTING, _CONNECTED)
        expiry = properties.session_expiry_interval
        v5 = self.protocol_version is ProtocolVersion.V5
        if expiry and v5 and not self._session_expiry:
            # v5 3.14.2.2.2: a non-zero expiry here after 0 in CONNECT is a
            # protocol error, committed by us.
            raise ValueError(
                f"cannot set session_expiry_interval={expiry} in DISCONNECT: CONNECT "
                f"had a session expiry interval of 0; leave it unset"
            )
        data = encode_packet(
            DisconnectPacket(reason_code=reason_code, properties=properties),
            self.protocol_version,
        )
        self._check_size("DisconnectPacket", data)
        if self._out:
            data = bytes(self._out) + data
        self._out.clear()
        self._acks_queued = 0
        self._set_state(_CLOSED)
        return data

    def auth(self, reason_code: ReasonCode, *, properties: Properties) -> bytes:
        """Return the bytes of an AUTH packet (MQTT 5 enhanced authentication).

        Args:
            reason_code: ``CONTINUE_AUTHENTICATION`` or ``RE_AUTHENTICATE``.
            properties: Must carry CONNECT's authentication method.

        Returns:
            The bytes to write.

        Raises:
            InvalidStateError: With MQTT 3.1.1, when not CONNECTING or CONNECTED, or
                when CONNECT had no authentication method.
            ValueError: If the method differs from CONNECT's or the packet is too
                large for the broker.
        """
        if self.protocol_version is ProtocolVersion.V311:
            raise InvalidStateError(
                "cannot send AuthPacket with MQTT 3.1.1; enhanced authentication "
                "needs ProtocolVersion.V5"
            )
        self._require("AuthPacket", _CONNECTING, _CONNECTED)
        if self._auth_method is None:  # [v5:MQTT-4.12.0-7]
            raise InvalidStateError(
                "cannot send AuthPacket: CONNECT had no authentication method; set "
                "properties.authentication_method in CONNECT"
            )
        if properties.authentication_method != self._auth_method:
            raise ValueError(  # [v5:MQTT-4.12.0-5] [v5:MQTT-4.12.1-1]
                f"AUTH authentication_method {properties.authentication_method!r} "
                f"differs from CONNECT's {self._auth_method!r}; use the same method"
            )
        data = encode_packet(
            AuthPacket(reason_code=reason_code, properties=properties),
            self.protocol_version,
        )
        self._check_size("AuthPacket", data)
        return data

    # ---------------------------------------------------------- receiving packets

    def receive_data(self, data: bytes) -> None:
        """Buffer bytes read from the stream; ``b""`` means the broker closed it.

        Nothing is decoded here: call `events`. In CLOSED the bytes are dropped.

        Raises:
            InvalidStateError: If the session is DISCONNECTED.
        """
        if self._handlers is not None:
            if data:
                self._decoder.feed(data)
            else:
                self._eof = True
        elif self._state is _DISCONNECTED:
            raise InvalidStateError(
                "cannot receive data in state DISCONNECTED; call connect() first"
            )

    def events(self) -> list[Event]:
        """Decode every complete packet buffered and return the resulting events.

        Acknowledgements the packets call for are queued for `data_to_send`, in
        receive order [v5:MQTT-4.6.0-2] [v5:MQTT-4.6.0-3]. After EOF the remaining packets are decoded
        and the session becomes DISCONNECTED (see `connection_lost`).

        Raises:
            ProtocolError: The broker broke the protocol; ``reason_code`` is what to
                send in DISCONNECT. Events decoded before the bad packet are returned
                first; the error is raised by the next call and every later one
                until the next `connect`.
        """
        if self._error is not None:
            raise self._error
        handlers = self._handlers
        if handlers is None:
            return []
        events: list[Event] = []
        decode = self._decoder.packets
        try:
            # The complete packets, _DECODE_BATCH at a time (one decoder call per
            # batch, not per packet; a large read's decoded packets are not all
            # alive at once); a bad one behind them is raised by the next call,
            # after these were handled.
            while packets := decode(_DECODE_BATCH):
                for packet in packets:
                    handler = handlers.get(type(packet))
                    if handler is None:
                        raise ProtocolError(
                            f"received {type(packet).__name__} in state "
                            f"{self._state.name}"
                        )
                    event = handler(self, packet)
                    if event is not None:
                        events.append(event)
                    if self._handlers is not handlers:
                        handlers = self._handlers
                        if self._late:
                            # Re-sends given up at CONNACK, right after Connected.
                            events.extend(self._late)
                            self._late.clear()
                        if handlers is None:
                            # DISCONNECT or refused CONNACK: the rest is not
                            # processed.
                            return events
        except ProtocolError as exc:
            self._error = exc
            if events:
                return events
            raise
        if self._eof:
            self.connection_lost()
        return events

    def take_owed_acks(self) -> list[tuple[int, int]]:
        """The ``(packet_id, qos)`` of acks decoding called for since the last call.

        Only with `defer_acks`: in arrival order; each must be passed to
        `release_ack` once its message may be acknowledged (on this connection).
        """
        owed = self._owed
        if not owed:
            return []
        self._owed = []
        self._owed_qos1 = 0
        return owed

    def release_owed_acks(self) -> None:
        """`release_ack` every ack `take_owed_acks` would return, in order."""
        owed = self._owed
        if owed:
            self._owed = []
            self._owed_qos1 = 0
            for packet_id, qos in owed:
                self.release_ack(packet_id, qos)

    def release_ack(self, packet_id: int, qos: int) -> None:
        """Queue the PUBACK (*qos* 1) or PUBREC (*qos* 2) of a received message.

        With `defer_acks`, for an ack `take_owed_acks` handed out on this
        connection; it goes out with `data_to_send`.

        Raises:
            InvalidStateError: Not connected (the ack belonged to a connection that
                ended: the broker sends the message again).
        """
        self._require("PubAckPacket" if qos == 1 else "PubRecPacket", _CONNECTED)
        if qos == 1:
            self._out += _ACK.pack(_PUBACK, 2, packet_id)
            self._acks_queued += 1
        else:
            if self._journal is not None:
                self._journal.append(SessionChange(_RECEIVED, packet_id))
            self._out += _ACK.pack(_PUBREC, 2, packet_id)

    def data_to_send(self) -> bytes:
        """Return (and forget) the acknowledgements and re-sends queued so far.

        The engine writes it after every `events` call (a PUBREL may be queued
        with no event returned) and after `withdraw`: re-sends held back by the
        broker's Receive Maximum are queued here as acknowledgements free the
        quota (`resends_waiting`).
        """
        out = self._out
        if not out:
            return b""
        data = bytes(out)
        out.clear()
        self._acks_queued = 0
        return data

    def connection_lost(self) -> None:
        """The stream is gone: become DISCONNECTED (CLOSED stays CLOSED).

        In-flight QoS 1/2 publishes, PUBRELs awaiting PUBCOMP and received QoS 2 ids
        are kept for the next `connect`; pending SUBSCRIBE/UNSUBSCRIBE ids are freed
        (they are never re-sent) and unsent acknowledgements dropped.
        """
        self._reset_connection()
        if self._state is not _CLOSED:
            self._set_state(_DISCONNECTED)

    def send_failed(self) -> None:
        """A write of bytes this session produced failed or was cancelled.

        The stream cannot be trusted with a partial packet, so this is the same as
        `connection_lost`.
        """
        self.connection_lost()

    def withdraw(self, packet_id: int | None, *, topic: str | None = None) -> bool:
        """Forget a PUBLISH, SUBSCRIBE or UNSUBSCRIBE whose bytes were never written.

        The engine calls this when the write of bytes from `publish`, `subscribe`
        or `unsubscribe` is abandoned before any of them reached the stream (the
        caller was cancelled while waiting for its turn to write). It undoes what
        the call took: the packet id, the send-quota slot of a QoS 1/2 PUBLISH
        (which then never completes: no `PublishCompleted` comes for it), and
        trust in the topic alias the PUBLISH may have set up, so that the next
        PUBLISH to that topic carries the topic again instead of ``""`` + alias.
        Frees room for a held re-send (see `resends_waiting`).

        Call it only for bytes that were not written and never will be; bytes
        partly written call for `send_failed` instead. A PUBLISH to the same topic
        produced after this one and before this call may be an alias-only
        PUBLISH relying on it: the engine avoids that by producing PUBLISH bytes
        in the order it writes them. Withdraw a SUBSCRIBE/UNSUBSCRIBE only before
        the connection it was made on ends (`connection_lost` frees their ids, and
        a later request may have taken the id again); a QoS 1/2 PUBLISH may be
        withdrawn as long as it has not completed, on any connection.

        Args:
            packet_id: The id `publish`, `subscribe` or `unsubscribe` returned;
                None for a QoS 0 PUBLISH.
            topic: The topic of a QoS 0 PUBLISH (ignored when *packet_id* is
                given: the session knows the topic of its QoS 1/2 publishes).

        Returns:
            True if the session still held the operation (or, for QoS 0, knew an
            alias for *topic*), False if there was nothing left to forget (it
            completed, or the connection of a request ended).

        Raises:
            InvalidStateError: If the PUBLISH already has its PUBREC: the broker
                has it, so its bytes were written.
        """
        if packet_id is None:
            if topic is not None and topic in self._out_aliases:
                self._alias_unsure.add(topic)
                return True
            return False
        packet = self._outgoing.get(packet_id)
        if packet is not None:
            if packet_id in self._pubrel:
                raise InvalidStateError(
                    f"cannot withdraw the PUBLISH with packet id {packet_id} in "
                    f"state {self._state.name}: the broker acknowledged it with "
                    f"PUBREC, so it was sent"
                )
            del self._outgoing[packet_id]
            self._completed(packet_id)
            if packet.topic in self._out_aliases:
                self._alias_unsure.add(packet.topic)
            if self._held:
                self._held.discard(packet_id)
                self._release()
            return True
        for table in (self._subscribes, self._unsubscribes):
            if packet_id in table:
                del table[packet_id]
                return True
        return False

    def take_journal(self) -> list[SessionChange]:
        """Return the durable state's changes since the last call, in order.

        Empty unless the session was made with ``journal=True``. A store must keep
        them before the bytes produced after them are written (see `_journal`).
        """
        journal = self._journal
        if not journal:
            return []
        self._journal = []
        return journal

    def forget(self, packet_id: int) -> None:
        """Journal that a message discarded with a lost session is settled.

        After a CONNACK with Session Present = 0, `Connected.discarded` lists the
        outgoing messages the broker never took; they stay in the journal's state
        until the engine published each again (call this right after that
        `publish`, before writing its bytes, so that both changes reach the store
        together) or gave it up. Their ids are not handed out until then.
        """
        self._reserved.discard(packet_id)
        if self._journal is not None:
            self._journal.append(SessionChange(_COMPLETED, packet_id))

    def restore(self, stored: StoredSession) -> None:
        """Take over the durable state an earlier process left (a session store's).

        Only before the first `connect`. The outgoing messages are re-sent with
        DUP=1 after a CONNACK with Session Present = 1 (PUBREL for the `released`
        ones) and reported in `Connected.discarded` otherwise, like this
        session's own; incoming QoS 2 ids are not delivered again before their
        PUBREL; the subscriptions bound the QoS accepted [v5:MQTT-3.8.4-8].

        Raises:
            InvalidStateError: If the session has connected before.
            ValueError: If a stored message has no QoS 1/2 packet id, or a
                released id names no stored QoS 2 message.
        """
        if self._state is not _DISCONNECTED or self._session_known or self._outgoing:
            raise InvalidStateError(
                "restore() takes a stored session only before the first connect"
            )
        outgoing: dict[int, PublishPacket] = {}
        for packet in stored.outgoing:
            if packet.packet_id is None or not packet.qos:
                raise ValueError(
                    f"a stored message to {packet.topic!r} is not a QoS 1/2 "
                    f"PUBLISH with a packet id"
                )
            outgoing[packet.packet_id] = attrs.evolve(packet, dup=False)
        for packet_id in stored.released:
            sent = outgoing.get(packet_id)
            if sent is None or sent.qos != QoS.EXACTLY_ONCE:
                raise ValueError(
                    f"stored PUBREC state for packet id {packet_id}, which names "
                    f"no stored QoS 2 message"
                )
        self._outgoing = outgoing
        self._pubrel = dict.fromkeys(stored.released)
        self._incoming_qos2 = set(stored.incoming_qos2)
        self._max_sub_qos = max(
            (s.qos for s in stored.subscriptions), default=QoS.AT_MOST_ONCE
        )
        if outgoing:
            self._next_id = max(outgoing) % _MAX_PACKET_ID + 1

    def pending_publishes(self) -> list[PublishPacket]:
        """Return the outgoing QoS 1/2 PUBLISH not yet completed, in publish order.

        They are the packets as first sent (DUP=0, full topic), including QoS 2
        publishes whose PUBREL awaits PUBCOMP; there are `inflight` of them.
        """
        return list(self._outgoing.values())

    # -------------------------------------------------------------------- helpers

    def _completed(self, packet_id: int) -> None:
        if self._journal is not None:
            self._journal.append(SessionChange(_COMPLETED, packet_id))

    def _set_state(self, state: SessionState) -> None:
        self._state = state
        self._handlers = _HANDLERS.get((self.protocol_version, state))
        if state is not _CONNECTED:
            # Held re-sends belong to a live connection; they stay in _outgoing.
            self._held.clear()
            self._held_order.clear()

    def _reset_connection(self) -> None:
        self._out.clear()
        self._acks_queued = 0
        self._owed.clear()
        self._owed_qos1 = 0
        self._late.clear()
        self._eof = False
        self._error = None
        self._subscribes.clear()
        self._unsubscribes.clear()
        self._in_aliases.clear()
        self._out_aliases.clear()
        self._alias_unsure.clear()

    def _cannot_send(self, name: str) -> InvalidStateError:
        return InvalidStateError(f"cannot send {name} in state {self._state.name}")

    def _require(self, name: str, *states: SessionState) -> None:
        if self._state not in states:
            raise self._cannot_send(name)

    def _allocate_id(self, name: str) -> int:
        """Return the next free packet id without taking it [v5:MQTT-2.2.1-3]."""
        outgoing, subscribes, unsubscribes, reserved = (
            self._outgoing,
            self._subscribes,
            self._unsubscribes,
            self._reserved,
        )
        packet_id = self._next_id
        if (
            packet_id not in outgoing
            and packet_id not in subscribes
            and packet_id not in unsubscribes
            and not (reserved and packet_id in reserved)
        ):
            return packet_id  # free (so not all of them are in use)
        in_use = len(outgoing) + len(subscribes) + len(unsubscribes) + len(reserved)
        if in_use >= _MAX_PACKET_ID:
            raise InvalidStateError(
                f"cannot send {name}: all 65535 packet identifiers are in use; "
                f"wait for acknowledgements"
            )
        while (
            packet_id in outgoing
            or packet_id in subscribes
            or packet_id in unsubscribes
            or (reserved and packet_id in reserved)
        ):
            packet_id = packet_id % _MAX_PACKET_ID + 1
        return packet_id

    def _check_size(self, name: str, data: bytes) -> None:
        limit = self._size_limit
        if limit is not None and len(data) > limit:  # [v5:MQTT-3.2.2-15]
            if name == "PublishPacket":
                raise self._size_error("", len(data), limit)
            message, _ = self._size_problem(name, len(data), limit)
            raise ValueError(message)

    def _size_problem(self, name: str, size: int, limit: int) -> tuple[str, str]:
        """The message for a packet above *limit* and the name of the limit."""
        if (
            self.maximum_outgoing_packet_size == limit
            and self.broker_maximum_packet_size != limit
        ):
            what = "the session's maximum_outgoing_packet_size"
            which = "maximum_outgoing_packet_size"
        else:
            what, which = "the broker's maximum packet size", "maximum_packet_size"
        return (
            f"{name} of {size} bytes exceeds {what} of {limit} bytes; send less data",
            which,
        )

    def _size_error(self, prefix: str, size: int, limit: int) -> PublishLimitError:
        message, which = self._size_problem("PublishPacket", size, limit)
        return PublishLimitError(
            prefix + message, limit=which, reason_code=ReasonCode.PACKET_TOO_LARGE
        )

    def _qos_error(self, prefix: str, qos: int, advice: str) -> PublishLimitError:
        maximum = int(self.maximum_qos)
        return PublishLimitError(
            f"{prefix}qos {int(qos)} is above the broker's maximum QoS {maximum}; "
            f"{advice} with qos <= {maximum}",
            limit="maximum_qos",
            reason_code=ReasonCode.QOS_NOT_SUPPORTED,
        )

    def _retain_error(self, prefix: str, advice: str) -> PublishLimitError:
        return PublishLimitError(
            f"{prefix}the broker does not support retained messages; {advice} "
            f"with retain=False",
            limit="retain_available",
            reason_code=ReasonCode.RETAIN_NOT_SUPPORTED,
        )

    def _no_identifiers(self) -> str:
        if self.protocol_version is ProtocolVersion.V311:
            return "MQTT 3.1.1 has no subscription identifiers"
        return (
            "the broker does not support subscription identifiers (CONNACK "
            "Subscription Identifiers Available = 0)"
        )

    def _announce_limits(self, packet: ConnectPacket) -> ConnectPacket:
        properties = packet.properties
        receive_maximum = _merge_limit(
            "receive_maximum",
            properties.receive_maximum,
            self.receive_maximum,
            _DEFAULT_RECEIVE_MAXIMUM,
        )
        maximum_packet_size = _merge_limit(
            "maximum_packet_size",
            properties.maximum_packet_size,
            self.maximum_packet_size,
            None,
        )
        topic_alias_maximum = _merge_limit(
            "topic_alias_maximum",
            properties.topic_alias_maximum,
            self.topic_alias_maximum,
            0,
        )
        if (
            receive_maximum == properties.receive_maximum
            and maximum_packet_size == properties.maximum_packet_size
            and topic_alias_maximum == properties.topic_alias_maximum
        ):
            return packet
        return attrs.evolve(
            packet,
            properties=attrs.evolve(
                properties,
                receive_maximum=receive_maximum,
                maximum_packet_size=maximum_packet_size,
                topic_alias_maximum=topic_alias_maximum,
            ),
        )

    # ----------------------------------------------------- handlers (by packet)

    def _on_connack(self, packet: ConnAckPacket) -> Event:
        if packet.reason_code >= 0x80:  # [v5:MQTT-3.2.2-7]
            self._set_state(_CLOSED)
            return ConnectionRefused(
                reason_code=packet.reason_code, properties=packet.properties
            )
        session_present = packet.session_present
        if session_present and self._clean_start:
            raise ProtocolError(  # [v5:MQTT-3.2.2-4]
                "received ConnAckPacket with session present = 1 in answer to a "
                "CONNECT with clean start = 1"
            )
        properties = packet.properties  # EMPTY_PROPERTIES with 3.1.1: defaults
        if properties.authentication_method != self._auth_method:
            raise self._wrong_auth_method("ConnAckPacket", properties)
        if properties.assigned_client_identifier is not None:
            self.client_id = properties.assigned_client_identifier
        if properties.server_keep_alive is not None:  # [v5:MQTT-3.2.2-21]
            self.keepalive = properties.server_keep_alive
        self.broker_receive_maximum = (
            properties.receive_maximum or _DEFAULT_RECEIVE_MAXIMUM
        )
        self.maximum_qos = (
            QoS.EXACTLY_ONCE
            if properties.maximum_qos is None
            else QoS(properties.maximum_qos)
        )
        self.retain_available = properties.retain_available != 0
        broker_limit = self.broker_maximum_packet_size = properties.maximum_packet_size
        ours = self.maximum_outgoing_packet_size
        self._size_limit = (
            ours
            if broker_limit is None
            else broker_limit
            if ours is None
            else min(ours, broker_limit)
        )
        self.broker_topic_alias_maximum = properties.topic_alias_maximum or 0
        self._use_out_aliases = (
            self.outgoing_topic_aliases and self.broker_topic_alias_maximum > 0
        )
        v5 = self.protocol_version is ProtocolVersion.V5
        self.subscription_identifier_available = (
            v5 and properties.subscription_identifier_available != 0
        )
        resent = 0
        discarded: tuple[PublishPacket, ...] = ()
        discarded_pubrel: tuple[int, ...] = ()
        if session_present:
            if not self._session_known:
                self._max_sub_qos = QoS.EXACTLY_ONCE
        else:
            # [v5:MQTT-3.2.2-5] the broker has no session: neither do we.
            pubrel = self._pubrel
            discarded = tuple(p for i, p in self._outgoing.items() if i not in pubrel)
            discarded_pubrel = tuple(pubrel)
            journal = self._journal
            if journal is not None:
                # Messages to publish again stay stored until `forget` (the
                # engine publishes each again as a new message, or never).
                journal.extend(SessionChange(_COMPLETED, i) for i in pubrel)
                journal.extend(
                    SessionChange(_FORGOTTEN, i) for i in self._incoming_qos2
                )
                self._reserved.update(
                    p.packet_id for p in discarded if p.packet_id is not None
                )
            self._outgoing.clear()
            pubrel.clear()
            self._incoming_qos2.clear()
            self._max_sub_qos = QoS.AT_MOST_ONCE
        self._session_known = True
        self._set_state(_CONNECTED)
        if session_present:
            resent = self._resend()
        return Connected(
            session_present=session_present,
            client_id=self.client_id,
            keepalive=self.keepalive,
            properties=properties,
            resent=resent,
            discarded=discarded,
            discarded_pubrel=discarded_pubrel,
            info=ConnAckInfo(
                session_present=session_present,
                client_id=self.client_id,
                assigned_client_id=properties.assigned_client_identifier,
                keepalive=self.keepalive,
                server_keep_alive=properties.server_keep_alive,
                receive_maximum=self.broker_receive_maximum,
                maximum_qos=self.maximum_qos,
                retain_available=self.retain_available,
                maximum_packet_size=broker_limit,
                topic_alias_maximum=self.broker_topic_alias_maximum,
                wildcard_subscription_available=(
                    properties.wildcard_subscription_available != 0
                ),
                subscription_identifier_available=(
                    self.subscription_identifier_available
                ),
                shared_subscription_available=(
                    properties.shared_subscription_available != 0
                ),
                response_information=properties.response_information,
            ),
        )

    def _resend(self) -> int:
        """Queue the re-sends of a resumed session; return how many went out now.

        [v5:MQTT-4.4.0-1] same ids. PUBREL in PUBREC order [v5:MQTT-4.6.0-4], all
        at once: those messages are the broker's already. Then PUBLISH with DUP=1
        [v5:MQTT-3.3.1-1] in publish order [v5:MQTT-4.6.0-1], with the full topic
        (aliases are per connection), as many as the new Receive Maximum allows
        [v5:MQTT-3.3.4-7]; the rest are held and released by `_release` as
        acknowledgements free the quota. A re-send that breaks a limit of the new
        connection is given up: a failed PublishCompleted after Connected.
        """
        out, pubrel = self._out, self._pubrel
        for packet_id in pubrel:
            out += _ACK.pack(_PUBREL, 2, packet_id)
        held, order = self._held, self._held_order
        for packet_id in self._outgoing:
            if packet_id not in pubrel:
                held.add(packet_id)
                order.append(packet_id)
        if held and (
            self._size_limit is not None
            or self.maximum_qos < QoS.EXACTLY_ONCE
            or not self.retain_available
        ):
            self._give_up_resends()
        return len(pubrel) + self._release()

    def _give_up_resends(self) -> None:
        outgoing, held, version = self._outgoing, self._held, self.protocol_version
        limit = self._size_limit
        for packet_id in list(self._held_order):
            packet = outgoing[packet_id]
            error: PublishLimitError | None = None
            what = f"cannot re-send PUBLISH {packet_id} to {packet.topic!r}: "
            if packet.qos > self.maximum_qos:  # [v5:MQTT-3.2.2-11]
                error = self._qos_error(what, packet.qos, "publish it again")
            elif packet.retain and not self.retain_available:  # [v5:MQTT-3.2.2-14]
                error = self._retain_error(what, "publish it again")
            elif limit is not None:  # [v5:MQTT-3.2.2-15]
                size = len(encode_packet(packet, version))
                if size > limit:
                    error = self._size_error(what, size, limit)
            if error is not None:
                del outgoing[packet_id]
                self._completed(packet_id)
                held.discard(packet_id)
                self._late.append(
                    PublishCompleted(
                        packet_id=packet_id,
                        reason_code=ReasonCode(error.reason_code),
                        error=error,
                    )
                )

    def _release(self) -> int:
        """Queue held re-sends while the send quota has room; return how many."""
        held = self._held
        room = self.broker_receive_maximum - (len(self._outgoing) - len(held))
        released = 0
        order, outgoing = self._held_order, self._outgoing
        out, version = self._out, self.protocol_version
        while held and released < room:
            packet_id = order.popleft()
            if packet_id in held:
                held.remove(packet_id)
                out += encode_packet(
                    attrs.evolve(outgoing[packet_id], dup=True), version
                )
                released += 1
        return released

    def _on_auth(self, packet: AuthPacket) -> Event:
        method = packet.properties.authentication_method
        if self._auth_method is None or method != self._auth_method:
            raise self._wrong_auth_method("AuthPacket", packet.properties)
        return AuthReceived(
            reason_code=packet.reason_code, properties=packet.properties
        )

    def _wrong_auth_method(self, name: str, properties: Properties) -> ProtocolError:
        # [v5:MQTT-4.12.0-5] the same method as CONNECT's in AUTH and CONNACK;
        # [v5:MQTT-4.12.0-6] none at all when CONNECT had none.
        return ProtocolError(
            f"received {name} with authentication method "
            f"{properties.authentication_method!r} after a CONNECT with "
            f"{self._auth_method!r}"
        )

    def _on_publish(self, packet: PublishPacket) -> Event | None:
        qos = packet.qos
        if qos > self._max_sub_qos:  # [v5:MQTT-3.8.4-8]
            raise ProtocolError(
                f"received PublishPacket with QoS {int(qos)} above the highest QoS "
                f"subscribed ({self._max_sub_qos})"
            )
        topic = packet.topic
        properties = packet.properties
        alias = properties.topic_alias
        if alias is not None:
            # (The decoder already refused alias 0, and an empty topic without one.)
            topic = self._resolve_alias(topic, alias)
        if qos:
            packet_id = packet.packet_id
            assert packet_id is not None  # the decoder guarantees it for QoS > 0
            if qos == QoS.EXACTLY_ONCE and packet_id in self._incoming_qos2:
                # A re-delivery before PUBREL: acknowledge, do not deliver again.
                if self.defer_acks:
                    self._owed.append((packet_id, 2))
                else:
                    self._out += _ACK.pack(_PUBREC, 2, packet_id)
                return None
            unacked = len(self._incoming_qos2) + self._acks_queued + self._owed_qos1
            if unacked >= self._incoming_limit:
                self._over_receive_maximum(unacked + 1)
            if qos == QoS.AT_LEAST_ONCE:
                if self.defer_acks:
                    self._owed.append((packet_id, 1))
                    self._owed_qos1 += 1
                else:
                    self._out += _ACK.pack(_PUBACK, 2, packet_id)
                    self._acks_queued += 1
            else:
                self._incoming_qos2.add(packet_id)
                if self.defer_acks:
                    # Journaled when its PUBREC is released (`release_ack`): a
                    # store must not keep an id whose message the application
                    # never got, or a restarted process would drop the
                    # broker's re-delivery of it as a duplicate.
                    self._owed.append((packet_id, 2))
                else:
                    if self._journal is not None:
                        self._journal.append(SessionChange(_RECEIVED, packet_id))
                    self._out += _ACK.pack(_PUBREC, 2, packet_id)
        event = _new(_UNFROZEN_RECEIVED)  # MessageReceived(...), see `._frozen`
        event.message = received_message(
            topic,
            packet.payload,
            qos,
            packet.retain,
            packet.dup,
            packet.packet_id,
            properties,
        )
        event.__class__ = MessageReceived
        return event  # type: ignore[no-any-return]

    def _over_receive_maximum(self, unacked: int) -> None:
        """The broker has *unacked* QoS 1/2 PUBLISH outstanding, above our limit."""
        if unacked > self._incoming_cap:
            raise ProtocolError(  # [v5:MQTT-3.3.4-9]
                f"the broker sent {unacked} unacknowledged QoS 1/2 PUBLISH packets, "
                f"more than receive_maximum={self.receive_maximum} allows even "
                f"with the tolerated excess (up to {self._incoming_cap})",
                reason_code=ReasonCode.RECEIVE_MAXIMUM_EXCEEDED,
            )
        excess = unacked - self.receive_maximum
        if excess > self.receive_maximum_excess:
            self.receive_maximum_excess = excess

    def _resolve_alias(self, topic: str, alias: int) -> str:
        if alias > self.topic_alias_maximum:  # [v5:MQTT-3.3.2-11]
            raise ProtocolError(
                f"received PublishPacket with invalid topic alias {alias} "
                f"(topic_alias_maximum={self.topic_alias_maximum})",
                reason_code=ReasonCode.TOPIC_ALIAS_INVALID,
            )
        if topic:
            self._in_aliases[alias] = topic
            return topic
        known = self._in_aliases.get(alias)
        if known is None:
            raise ProtocolError(
                f"received PublishPacket with an empty topic and unknown topic "
                f"alias {alias}"
            )
        return known

    def _mismatch(self, name: str, packet: PublishPacket) -> ProtocolError:
        packet_id = packet.packet_id
        if packet_id in self._pubrel:
            awaits = "PUBCOMP"
        else:
            awaits = "PUBACK" if packet.qos == QoS.AT_LEAST_ONCE else "PUBREC"
        return ProtocolError(
            f"received {name} for packet id {packet_id}, which awaits {awaits}"
        )

    def _on_puback(self, packet: PubAckPacket) -> Event | None:
        packet_id = packet.packet_id
        sent = self._outgoing.get(packet_id)
        if sent is None:
            return None  # not ours (any more): ignored
        if sent.qos != _QOS1:
            raise self._mismatch("PubAckPacket", sent)
        del self._outgoing[packet_id]
        if self._journal is not None:
            self._journal.append(SessionChange(_COMPLETED, packet_id))
        if self._held:
            self._held.discard(packet_id)
            self._release()
        return _completed(packet_id, packet)

    def _on_pubrec(self, packet: PubRecPacket) -> Event | None:
        packet_id = packet.packet_id
        sent = self._outgoing.get(packet_id)
        if sent is None:
            if self.protocol_version is ProtocolVersion.V5:
                self._out += encode_packet(
                    PubRelPacket(
                        packet_id=packet_id,
                        reason_code=ReasonCode.PACKET_IDENTIFIER_NOT_FOUND,
                    ),
                    ProtocolVersion.V5,
                )
            else:
                self._out += _ACK.pack(_PUBREL, 2, packet_id)
            return None
        if sent.qos != _QOS2:
            raise self._mismatch("PubRecPacket", sent)
        if packet_id not in self._pubrel:
            if packet.reason_code >= 0x80:  # [v5:MQTT-4.4.0-2] done, failed
                del self._outgoing[packet_id]
                self._completed(packet_id)
                if self._held:
                    self._held.discard(packet_id)
                    self._release()
                return _completed(packet_id, packet)
            self._pubrel[packet_id] = None
            if self._journal is not None:
                self._journal.append(SessionChange(_RELEASED, packet_id))
            if self._held:
                # Received after all: never re-send it now [v5:MQTT-4.3.3-6].
                self._held.discard(packet_id)
        # else a repeated PUBREC: answer it again.
        self._out += _ACK.pack(_PUBREL, 2, packet_id)
        return None

    def _on_pubrel(self, packet: PubRelPacket) -> None:
        packet_id = packet.packet_id
        if packet_id in self._incoming_qos2:
            self._incoming_qos2.remove(packet_id)  # [v5:MQTT-4.3.3-11]
            if self._journal is not None:
                self._journal.append(SessionChange(_FORGOTTEN, packet_id))
            self._out += _ACK.pack(_PUBCOMP, 2, packet_id)
            self._acks_queued += 1
        elif self.protocol_version is ProtocolVersion.V5:
            self._out += encode_packet(
                PubCompPacket(
                    packet_id=packet_id,
                    reason_code=ReasonCode.PACKET_IDENTIFIER_NOT_FOUND,
                ),
                ProtocolVersion.V5,
            )
        else:
            self._out += _ACK.pack(_PUBCOMP, 2, packet_id)

    def _on_pubcomp(self, packet: PubCompPacket) -> Event | None:
        packet_id = packet.packet_id
        sent = self._outgoing.get(packet_id)
        if sent is None:
            return None  # not ours (any more): ignored
        if packet_id not in self._pubrel:
            raise self._mismatch("PubCompPacket", sent)
        del self._outgoing[packet_id]
        del self._pubrel[packet_id]
        if self._journal is not None:
            self._journal.append(SessionChange(_COMPLETED, packet_id))
        if self._held:
            self._release()
        return _completed(packet_id, packet)

    def _pop_request(
        self, table: dict[int, int], name: str, packet_id: int, count: int
    ) -> None:
        expected = table.get(packet_id)
        if expected is None:
            raise ProtocolError(f"received {name} for unknown packet id {packet_id}")
        if count != expected:  # [v5:MQTT-3.8.4-6]
            raise ProtocolError(
                f"received {name} with {count} reason codes for {expected} topic "
                f"filters"
            )
        del table[packet_id]

    def _on_suback(self, packet: SubAckPacket) -> Event:
        reason_codes = packet.reason_codes
        self._pop_request(
            self._subscribes, "SubAckPacket", packet.packet_id, len(reason_codes)
        )
        return Subscribed(
            packet_id=packet.packet_id,
            reason_codes=reason_codes,
            properties=packet.properties,
        )

    def _on_unsuback(self, packet: UnsubAckPacket) -> Event:
        reason_codes = packet.reason_codes
        if self.protocol_version is ProtocolVersion.V311:
            # 3.1.1 UNSUBACK has no codes: every filter was removed.
            count = self._unsubscribes.get(packet.packet_id, 0)
            reason_codes = (ReasonCode.SUCCESS,) * count
        self._pop_request(
            self._unsubscribes, "UnsubAckPacket", packet.packet_id, len(reason_codes)
        )
        return Unsubscribed(
            packet_id=packet.packet_id,
            reason_codes=reason_codes,
            properties=packet.properties,
        )

    def _on_pingresp(self, packet: PingRespPacket) -> Event:
        return _PONG

    def _on_disconnect(self, packet: DisconnectPacket) -> Event:
        if packet.properties.session_expiry_interval is not None:
            raise ProtocolError(  # [v5:MQTT-3.14.2-2]
                "received DisconnectPacket with a session expiry interval"
            )
        self._set_state(_CLOSED)
        return Disconnected(
            reason_code=packet.reason_code, properties=packet.properties
        )


def _completed(
    packet_id: int, packet: PubAckPacket | PubRecPacket | PubCompPacket
) -> Event:
    """The `PublishCompleted` for the broker's acknowledgement *packet*.

    An unfrozen twin (see _frozen): one per outgoing QoS 1/2 message.
    """
    event = _new(_UNFROZEN_COMPLETED)
    event.packet_id = packet_id
    event.reason_code = packet.reason_code
    event.properties = packet.properties
    event.error = None
    event.__class__ = PublishCompleted
    return event  # type: ignore[no-any-return]


def _merge_limit(
    name: str, theirs: int | None, ours: int | None, default: int | None
) -> int | None:
    """Return the value CONNECT should carry for one of the session's limits."""
    if theirs is None:
        return None if ours == default else ours
    if theirs != ours:
        raise ValueError(
            f"CONNECT {name}={theirs} differs from the session's {name}={ours}; "
            f"set it on the ClientSession only"
        )
    return theirs


def _check_publish_properties(properties: Properties) -> None:
    if properties.topic_alias is not None:
        raise ValueError(
            f"cannot send PublishPacket with properties.topic_alias="
            f"{properties.topic_alias}: topic aliases are chosen by the session; "
            f"remove it and create the ClientSession with outgoing_topic_aliases=True"
        )
    if properties.subscription_identifiers:  # [v5:MQTT-3.3.4-6]
        raise ValueError(
            f"cannot send PublishPacket with properties.subscription_identifiers="
            f"{properties.subscription_identifiers}: a PUBLISH from a client cannot "
            f"carry subscription identifiers; remove them"
        )


_HandlerTable = dict[type[Packet], Callable[[ClientSession, Any], "Event | None"]]

_CONNECTED_V311: Final[_HandlerTable] = {
    PublishPacket: ClientSession._on_publish,
    PubAckPacket: ClientSession._on_puback,
    PubRecPacket: ClientSession._on_pubrec,
    PubRelPacket: ClientSession._on_pubrel,
    PubCompPacket: ClientSession._on_pubcomp,
    SubAckPacket: ClientSession._on_suback,
    UnsubAckPacket: ClientSession._on_unsuback,
    PingRespPacket: ClientSession._on_pingresp,
}
_HANDLERS: Final[dict[tuple[ProtocolVersion, SessionState], _HandlerTable]] = {
    (ProtocolVersion.V311, _CONNECTING): {ConnAckPacket: ClientSession._on_connack},
    (ProtocolVersion.V311, _CONNECTED): _CONNECTED_V311,
    (ProtocolVersion.V5, _CONNECTING): {
        ConnAckPacket: ClientSession._on_connack,
        AuthPacket: ClientSession._on_auth,
    },
    (ProtocolVersion.V5, _CONNECTED): {
        **_CONNECTED_V311,
        DisconnectPacket: ClientSession._on_disconnect,
        AuthPacket: ClientSession._on_auth,
    },
}
