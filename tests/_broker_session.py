"""A scripted MQTT broker peer for tests, built from our own codec.

TEST-ONLY. It does not implement a broker: the test says what the broker sends
(`encode`, `send`) and inspects what the client sent (`receive`). The session tests
drive a `ClientSession` with it directly; the engine's FakeBroker puts the same
object behind a memory stream (h11's ``ConnectionPair`` idea).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs

from trio_mqttconn._enums import ProtocolVersion, ReasonCode
from trio_mqttconn._events import Connected, Event
from trio_mqttconn._packets import (
    ConnAckPacket,
    ConnectPacket,
    Packet,
    PacketDecoder,
    encode_packet,
)
from trio_mqttconn._properties import EMPTY_PROPERTIES, Properties

if TYPE_CHECKING:
    from collections.abc import Iterable

    from trio_mqttconn._session import ClientSession

__all__ = ["ScriptedBroker"]


@attrs.define(eq=False)
class ScriptedBroker:
    """The broker side of a test: decodes client bytes, encodes broker packets."""

    version: ProtocolVersion = ProtocolVersion.V5
    """Protocol version of the connection."""
    max_packet_size: int | None = None
    """Largest client packet accepted (the Maximum Packet Size the test announces)."""
    received: list[Packet] = attrs.field(factory=list)
    """Every packet decoded from the client on the current connection, in order."""
    _decoder: PacketDecoder = attrs.field(init=False)
    _next_id: int = attrs.field(default=1, init=False)

    def __attrs_post_init__(self) -> None:
        self.new_connection()

    def new_connection(self) -> None:
        """Forget the current connection: fresh decoder, empty `received`."""
        self._decoder = PacketDecoder(
            self.version, max_packet_size=self.max_packet_size
        )
        self.received = []

    def next_packet_id(self) -> int:
        """Return the broker's next packet id for a QoS 1/2 PUBLISH (1, 2, ...)."""
        packet_id = self._next_id
        self._next_id = packet_id % 65535 + 1
        return packet_id

    def receive(self, data: bytes) -> list[Packet]:
        """Decode client bytes; return the complete packets they finish."""
        self._decoder.feed(data)
        packets = self._decoder.packets()
        self.received.extend(packets)
        return packets

    def receive_one(self, data: bytes) -> Packet:
        """Decode client bytes that must hold exactly one complete packet."""
        packets = self.receive(data)
        if len(packets) != 1:
            raise AssertionError(f"expected one packet, the client sent {packets!r}")
        return packets[0]

    def encode(self, *packets: Packet) -> bytes:
        """Encode broker packets, concatenated."""
        return b"".join(encode_packet(packet, self.version) for packet in packets)

    def send(self, session: ClientSession, *packets: Packet) -> list[Event]:
        """Hand broker packets to *session* and return the events it produces."""
        session.receive_data(self.encode(*packets))
        return session.events()

    def send_bytes(
        self, session: ClientSession, chunks: Iterable[bytes]
    ) -> list[Event]:
        """Hand raw chunks to *session* one by one; return all events."""
        events: list[Event] = []
        for chunk in chunks:
            session.receive_data(chunk)
            events.extend(session.events())
        return events

    def handshake(
        self,
        session: ClientSession,
        connect: ConnectPacket | None = None,
        *,
        session_present: bool = False,
        properties: Properties = EMPTY_PROPERTIES,
    ) -> Connected:
        """Run CONNECT/CONNACK on a new connection and return the `Connected` event.

        The CONNECT defaults to client id ``"client"`` and the broker's version;
        the CONNECT sent is the first item of `received` afterwards.
        """
        if connect is None:
            connect = ConnectPacket(
                client_id="client",
                protocol_version=self.version,
                clean_start=not session_present,
            )
        self.new_connection()
        self.receive_one(session.connect(connect))
        events = self.send(
            session,
            ConnAckPacket(
                session_present=session_present,
                reason_code=ReasonCode.SUCCESS,
                properties=properties,
            ),
        )
        (event,) = events
        if not isinstance(event, Connected):
            raise AssertionError(f"expected Connected, got {event!r}")
        return event
