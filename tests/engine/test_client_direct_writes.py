"""Writes straight to the socket (trio) or the transport (asyncio): used when they
may be, and exact when full.

On trio, with a plain socket stream and no write in progress, ``Link.send`` hands the
bytes to the socket itself (see ``direct_socket``); on asyncio to anyio's transport
(see ``direct_transport``). These tests serve the client over
one end of a socketpair, with a hand-made broker on the other end, and fill the
client's send buffer on purpose so that the direct write is refused or partial and
the rest takes the stream's path: every byte must still arrive, in order, once.
"""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING

import anyio
import anyio.abc
import pytest

from tests._fakes import memory_byte_stream_pair
from trio_mqttconn import ConnectionLost, MqttClient, ProtocolVersion
from trio_mqttconn._engine.link import transport_drained, transport_write
from trio_mqttconn._packets import (
    ConnAckPacket,
    ConnectPacket,
    DisconnectPacket,
    PacketDecoder,
    PublishPacket,
    encode_packet,
)
from trio_mqttconn._transports import direct_socket, direct_transport

if TYPE_CHECKING:
    from anyio._backends._asyncio import SocketStream as AsyncioSocketStream

    from trio_mqttconn._packets import Packet

pytestmark = pytest.mark.anyio

V5 = ProtocolVersion.V5


class SocketPairBroker:
    """The broker end of a socketpair; the client's end is its ``transport``."""

    def __init__(self) -> None:
        self.client_sock, self.broker_sock = socket.socketpair()
        self.broker_sock.setblocking(False)
        self.decoder = PacketDecoder(V5)
        self.filler = 0  # bytes written behind the client's back, to skip

    async def transport(self, endpoint: object) -> anyio.abc.SocketStream:
        return await anyio.abc.SocketStream.from_socket(self.client_sock)

    def fill_client_buffer(self) -> None:
        """Write junk on the client's socket until it accepts no more."""
        self.client_sock.setblocking(False)
        chunk = b"\xff" * 65536
        while True:
            try:
                self.filler += self.client_sock.send(chunk)
            except BlockingIOError:
                return

    async def receive_packet(self) -> Packet:
        while True:
            packet = self.decoder.next_packet()
            if packet is not None:
                return packet
            await anyio.wait_readable(self.broker_sock)
            data = self.broker_sock.recv(1 << 20)
            assert data, "the client closed the connection"
            if self.filler:
                skipped = min(self.filler, len(data))
                assert data[:skipped] == b"\xff" * skipped
                self.filler -= skipped
                data = data[skipped:]
            self.decoder.feed(data)

    async def send(self, packet: Packet) -> None:
        data = encode_packet(packet, V5)
        while data:
            await anyio.wait_writable(self.broker_sock)
            data = data[self.broker_sock.send(data) :]

    async def accept(self) -> None:
        assert isinstance(await self.receive_packet(), ConnectPacket)
        await self.send(ConnAckPacket())

    def close(self) -> None:
        self.client_sock.close()
        self.broker_sock.close()


def make_client(broker: SocketPairBroker) -> MqttClient:
    return MqttClient(
        "mqtt://pair", client_id="d1", keepalive=0, transport=broker.transport
    )


async def test_direct_writes_only_for_a_plain_socket_stream_on_trio(
    anyio_backend_name: str,
) -> None:
    left, right = socket.socketpair()
    with right:
        async with await anyio.abc.SocketStream.from_socket(left) as stream:
            found = direct_socket(stream)
            assert found is (left if anyio_backend_name == "trio" else None)
            transport = direct_transport(stream)
            assert transport is (None if anyio_backend_name == "trio" else stream)
    one, _other = memory_byte_stream_pair()
    assert direct_socket(one) is None
    assert direct_transport(one) is None


async def test_publishes_arrive_whole_when_the_socket_buffer_is_full() -> None:
    broker = SocketPairBroker()
    payloads = [bytes([n]) * 300_000 for n in range(1, 6)]
    try:
        with anyio.fail_after(10):
            async with anyio.create_task_group() as group:
                group.start_soon(broker.accept)
                async with make_client(broker) as client:
                    # Nothing fits: the first direct write is refused outright; the
                    # large payloads then only partly fit, the rest waits.
                    broker.fill_client_buffer()
                    done = anyio.Event()

                    async def publish_all() -> None:
                        for payload in payloads:
                            await client.publish("big", payload)
                        done.set()

                    group.start_soon(publish_all)
                    for payload in payloads:
                        packet = await broker.receive_packet()
                        assert isinstance(packet, PublishPacket)
                        assert (packet.topic, packet.payload) == ("big", payload)
                    await done.wait()
                    await client.publish("small", b"x")  # the buffer is free again
                    packet = await broker.receive_packet()
                    assert isinstance(packet, PublishPacket)
                    assert packet.payload == b"x"
                    assert client.statistics().bytes_sent >= sum(map(len, payloads))
                assert isinstance(await broker.receive_packet(), DisconnectPacket)
    finally:
        broker.close()


@pytest.mark.parametrize("anyio_backend", ["trio"])  # asyncio: the reader sees it first
@pytest.mark.parametrize("nowait", [False, True])
async def test_a_failed_direct_write_ends_the_connection_with_a_clear_error(
    nowait: bool,
) -> None:
    broker = SocketPairBroker()
    client = make_client(broker)
    client.reconnect = False

    async def publish() -> None:
        if nowait:  # publish_nowait's synchronous write
            client.publish_nowait("t", b"x")
        else:
            await client.publish("t", b"x")

    async def body() -> None:
        async with client:
            broker.client_sock.shutdown(socket.SHUT_WR)  # sends now fail: EPIPE
            with pytest.raises(
                ConnectionLost, match=r"^sending to mqtt://pair:1883 failed: "
            ):
                await publish()
            await anyio.sleep_forever()

    try:
        with anyio.fail_after(10):
            async with anyio.create_task_group() as group:
                group.start_soon(broker.accept)
                with pytest.raises(ConnectionLost, match=r"^lost the connection to "):
                    await body()
    finally:
        broker.close()


async def test_a_cancellation_during_the_yield_after_a_direct_write_waits() -> None:
    """The schedule point after a write that went out without waiting is not a cancel
    point (on asyncio: no shielded cancel scope, yet anyio does not interrupt it): the
    publish returns, the connection stays, and the next checkpoint is cancelled."""
    broker = SocketPairBroker()
    try:
        with anyio.fail_after(10):
            async with anyio.create_task_group() as group:
                group.start_soon(broker.accept)
                async with make_client(broker) as client:
                    await client.publish("t", b"w")  # the link is ready
                    packet = await broker.receive_packet()
                    assert isinstance(packet, PublishPacket)
                    returned = False
                    with anyio.CancelScope() as scope:

                        async def cancel() -> None:
                            scope.cancel()

                        # Runs while the publish below is at its yield after the write.
                        group.start_soon(cancel)
                        await client.publish("t", b"x")
                        returned = True
                        await anyio.lowlevel.checkpoint()
                    assert returned
                    assert scope.cancelled_caught
                    packet = await broker.receive_packet()
                    assert isinstance(packet, PublishPacket)
                    assert packet.payload == b"x"
                    assert client.is_connected
                    await client.publish("t", b"y")
                    packet = await broker.receive_packet()
                    assert isinstance(packet, PublishPacket)
                    assert packet.payload == b"y"
                    assert client.statistics().connects == 1
    finally:
        broker.close()


@pytest.mark.parametrize("anyio_backend", ["asyncio"])  # the transport path
async def test_direct_transport_writes_fail_as_anyio_send_would() -> None:
    left, right = socket.socketpair()
    stream = await anyio.abc.SocketStream.from_socket(left)
    direct = direct_transport(stream)
    assert direct is not None
    try:
        assert transport_write(direct, b"x")  # taken at once: nothing waits
        assert right.recv(10) == b"x"
        # The peer is gone: the transport reports it after the write, the next
        # write raises it.
        right.close()
        transport_write(direct, b"lost")
        for _ in range(3):
            await anyio.lowlevel.checkpoint()
        with pytest.raises(anyio.BrokenResourceError):
            transport_write(direct, b"y")
    finally:
        await stream.aclose()
    with pytest.raises(anyio.ClosedResourceError):
        transport_write(direct, b"z")


async def _drain(
    direct: AsyncioSocketStream, outcome: list[BaseException | None]
) -> None:
    try:
        await transport_drained(direct)
    except (anyio.ClosedResourceError, anyio.BrokenResourceError) as exc:
        outcome.append(exc)
    else:
        outcome.append(None)


@pytest.mark.parametrize("anyio_backend", ["asyncio"])  # the transport path
@pytest.mark.parametrize(
    ("end", "expected"),
    [
        ("drained", type(None)),
        ("closed", anyio.ClosedResourceError),
        ("broken", anyio.BrokenResourceError),
    ],
)
async def test_direct_transport_waits_until_drained_or_broken(
    end: str, expected: type[BaseException | None]
) -> None:
    left, right = socket.socketpair()
    right.setblocking(False)
    stream = await anyio.abc.SocketStream.from_socket(left)
    direct = direct_transport(stream)
    assert direct is not None
    outcome: list[BaseException | None] = []
    try:
        assert not transport_write(direct, b"\x01" * 4_000_000)  # bytes wait
        async with anyio.create_task_group() as group:
            group.start_soon(_drain, direct, outcome)
            await anyio.lowlevel.checkpoint()
            if end == "drained":
                received = 0
                while received < 4_000_000:
                    await anyio.wait_readable(right)
                    received += len(right.recv(1 << 20))
            elif end == "closed":
                await stream.aclose()
            else:
                right.close()
        assert [type(exc) for exc in outcome] == [expected]
    finally:
        await stream.aclose()
        right.close()
