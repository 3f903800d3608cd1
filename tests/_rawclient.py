"""A blocking-socket MQTT peer for interop tests: our codec against a real broker.

This is test code, not library code: it drives the sans-IO core (``encode_packet`` and
``PacketDecoder``) over a plain :mod:`socket` so that the bytes the core produces are
judged by a real broker, and the bytes the broker produces are judged by the core.
Every blocking call is bounded by the socket timeout, so a silent broker fails the
test instead of hanging it.
"""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING, Self, TypeVar

from trio_mqttconn import ProtocolVersion, ReasonCode
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

__all__ = ["RawClient"]

P = TypeVar("P")


class RawClient:
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

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
