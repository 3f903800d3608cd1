"""A blocking-socket MQTT peer for interop tests: our codec against a real broker.

This is test code, not library code: it drives the sans-IO core over a plain
:mod:`socket` so that the bytes the core produces are judged by a real broker, and the
bytes the broker produces are judged by the core. `RawClient` speaks packets
(``encode_packet`` and ``PacketDecoder``); `SessionClient` runs a ``ClientSession``,
which plays the acknowledgements itself and survives reconnects.
Every blocking call is bounded by the socket timeout, so a silent broker fails the
test instead of hanging it.
"""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING, Self, TypeVar

from trio_mqttconn import ProtocolVersion, ReasonCode
from trio_mqttconn._events import Connected, ConnectionRefused, Event
from trio_mqttconn._packets import (
    ConnAckPacket,
    ConnectPacket,
    DisconnectPacket,
    Packet,
    PacketDecoder,
    encode_packet,
)

if TYPE_CHECKING:
    from types import TracebackType

    from trio_mqttconn._session import ClientSession

__all__ = ["RawClient", "SessionClient"]

P = TypeVar("P")


class _ClosedOnExit:
    """``with`` support for a peer: leaving the block calls ``close``."""

    def close(self) -> None:
        """Close the connection (idempotent)."""
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class RawClient(_ClosedOnExit):
    """One TCP connection to a broker, speaking MQTT through the sans-IO codec.

    Args:
        host: Address of the broker.
        port: Its plain TCP listener.
        version: Protocol version used to encode and decode.
        timeout: Seconds any single blocking read or write may take.
    """

    def __init__(
        self,
        host: str,
        port: int,
        version: ProtocolVersion,
        *,
        timeout: float = 10.0,
    ) -> None:
        self.version = version
        self.decoder = PacketDecoder(version)
        self.received: list[Packet] = []
        """Every packet decoded so far, in arrival order."""
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def send(self, *packets: Packet) -> bytes:
        """Encode *packets* with our codec and write them in one ``sendall``."""
        data = b"".join(encode_packet(packet, self.version) for packet in packets)
        self.sock.sendall(data)
        return data

    def send_bytewise(self, packet: Packet) -> None:
        """Write one encoded packet a byte at a time (the broker must reassemble it)."""
        for byte in encode_packet(packet, self.version):
            self.sock.sendall(bytes([byte]))

    def receive(self) -> Packet:
        """Return the next packet from the broker.

        Raises:
            EOFError: The broker closed the connection first.
            TimeoutError: Nothing complete arrived within the timeout.
        """
        while True:
            packet = self.decoder.next_packet()
            if packet is not None:
                self.received.append(packet)
                return packet
            data = self.sock.recv(65536)
            if not data:
                raise EOFError("the broker closed the connection")
            self.decoder.feed(data)

    def receive_type(self, kind: type[P]) -> P:
        """Return the next packet, which must be a *kind*."""
        packet = self.receive()
        assert isinstance(packet, kind), f"expected {kind.__name__}, got {packet!r}"
        return packet

    def connect(self, connect: ConnectPacket) -> ConnAckPacket:
        """Send CONNECT and return the CONNACK (which must be the first reply)."""
        # [v5:MQTT-3.2.0-1] the first packet the server sends is CONNACK
        self.send(connect)
        return self.receive_type(ConnAckPacket)

    def wait_closed(self) -> None:
        """Read until the broker closes the connection; nothing may arrive first."""
        data = self.sock.recv(65536)
        assert data == b"", f"expected the broker to close, got {data!r}"

    def disconnect(self) -> None:
        """Send DISCONNECT (normal) and wait for the broker to close the socket."""
        self.send(DisconnectPacket(reason_code=ReasonCode.NORMAL_DISCONNECTION))
        self.wait_closed()

    def abort(self) -> None:
        """Drop the connection without DISCONNECT (the broker publishes the will)."""
        self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()

    def close(self) -> None:
        """Close the socket (idempotent)."""
        self.sock.close()


class SessionClient(_ClosedOnExit):
    """A ``ClientSession`` over blocking sockets: one socket per connection.

    The session outlives the sockets, as it outlives connections in the engine, so
    tests can drop a connection at a chosen point and resume the session.

    Args:
        host: Address of the broker.
        port: Its plain TCP listener.
        session: The sans-IO session to drive.
        timeout: Seconds any single blocking read or write may take.
    """

    def __init__(
        self, host: str, port: int, session: ClientSession, *, timeout: float = 10.0
    ) -> None:
        self.host = host
        self.port = port
        self.session = session
        self.timeout = timeout
        self.sock: socket.socket | None = None
        self.trace: list[Packet] = []
        """Every packet the broker sent on the current connection (dropped ones too)."""
        self._tracer = PacketDecoder(session.protocol_version)

    def _socket(self) -> socket.socket:
        assert self.sock is not None, "not connected"
        return self.sock

    def connect(self, packet: ConnectPacket) -> Connected | ConnectionRefused:
        """Open a socket, send the session's CONNECT and return the CONNACK event."""
        self.close()
        self.trace = []
        self._tracer = PacketDecoder(self.session.protocol_version)
        self.sock = socket.create_connection((self.host, self.port), self.timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.sendall(self.session.connect(packet))
        first, *rest = self.receive_events()
        assert isinstance(first, Connected | ConnectionRefused), first
        assert not rest, rest
        return first

    def send(self, data: bytes) -> None:
        """Write bytes the session produced."""
        self._socket().sendall(data)

    def receive_events(self, *, acknowledge: bool = True) -> list[Event]:
        """Read until the session yields events, and return them.

        Args:
            acknowledge: Write what the session queued (PUBACK, PUBREC, PUBCOMP,
                re-sends) after decoding; False keeps it unsent, as if the client
                died before writing it.

        Raises:
            EOFError: The broker closed the connection with no event pending.
        """
        sock = self._socket()
        while True:
            data = self._recv(sock)
            self.session.receive_data(data)
            events = self.session.events()
            queued = self.session.data_to_send()
            if acknowledge and queued:
                sock.sendall(queued)
            if events:
                return events
            if not data:
                raise EOFError("the broker closed the connection")

    def collect(self, done: type[Event], count: int = 1) -> list[Event]:
        """Receive events until *count* of type *done* arrived; return them all."""
        events: list[Event] = []
        while sum(isinstance(event, done) for event in events) < count:
            events += self.receive_events()
        return events

    def drop_packets(self, count: int) -> list[Packet]:
        """Read *count* packets off the socket without giving them to the session.

        For tests of lost replies: the broker sent them, the client never saw them.
        """
        decoder = PacketDecoder(self.session.protocol_version)
        packets: list[Packet] = []
        sock = self._socket()
        while len(packets) < count:
            packet = decoder.next_packet()
            if packet is None:
                data = self._recv(sock)
                if not data:
                    raise EOFError("the broker closed the connection")
                decoder.feed(data)
            else:
                packets.append(packet)
        return packets

    def _recv(self, sock: socket.socket) -> bytes:
        data = sock.recv(65536)
        self._tracer.feed(data)
        self.trace += self._tracer.packets()
        return data

    def abort(self) -> None:
        """Drop the connection without DISCONNECT; the session keeps its state."""
        sock = self._socket()
        sock.shutdown(socket.SHUT_RDWR)
        sock.close()
        self.sock = None
        self.session.connection_lost()

    def disconnect(self) -> None:
        """Send the session's DISCONNECT and wait for the broker to close."""
        sock = self._socket()
        sock.sendall(self.session.disconnect())
        # Packets the broker sent before it read our DISCONNECT (a late PUBREL, say)
        # may still arrive; what matters is that it closes.
        while sock.recv(65536):
            pass
        self.close()

    def close(self) -> None:
        """Close the socket, if any (idempotent)."""
        if self.sock is not None:
            self.sock.close()
            self.sock = None
