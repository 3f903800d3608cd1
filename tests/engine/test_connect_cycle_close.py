"""Closing over trio's plain socket writes DISCONNECT and closes at once (#9, speed).

With no write in progress nothing waits: the DISCONNECT goes to the socket as
``Link.send`` writes it and the socket is closed, with no cancel scope to shield or
bound it. A DISCONNECT the socket does not take whole is finished by the usual
path (bounded by *disconnect_timeout*); a broken socket ends the link as before.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
import trio
import trio.testing

from tests._fakes import (
    FakeBroker,
    client_task_names,
    live_tasks,
    make_client,
    virtual_deadline_fixture,  # noqa: F401 - the virtual_deadline fixture
)
from tests.engine.test_connect_cycle_keepalive import socket_transport
from trio_mqttconn._packets import DisconnectPacket

if TYPE_CHECKING:
    import socket

pytestmark = pytest.mark.trio


async def test_close_writes_disconnect_and_closes_the_socket(
    autojump_clock: trio.testing.MockClock, virtual_deadline: None
) -> None:
    async with FakeBroker() as broker, socket_transport(broker) as transport:
        before = live_tasks()
        async with make_client(broker, transport=transport) as client:
            await client.subscribe("a/b", qos=1)
            link = client._conn
            assert link is not None
            assert link.sock is not None
            conn = broker.connections[0]
        assert client_task_names(live_tasks() - before) == []
        assert link.sock.fileno() == -1
        await conn.wait_closed()
        assert len(conn.packets(DisconnectPacket)) == 1
        assert not client.is_connected


async def test_close_of_a_cancelled_body_still_disconnects(
    autojump_clock: trio.testing.MockClock, virtual_deadline: None
) -> None:
    async with FakeBroker() as broker, socket_transport(broker) as transport:
        with trio.CancelScope() as scope:
            async with make_client(broker, transport=transport):
                scope.cancel()
                await trio.sleep_forever()
        assert scope.cancelled_caught
        conn = broker.connections[0]
        await conn.wait_closed()
        assert len(conn.packets(DisconnectPacket)) == 1


async def test_aclose_session_expiry_goes_into_the_disconnect(
    autojump_clock: trio.testing.MockClock, virtual_deadline: None
) -> None:
    async with FakeBroker() as broker, socket_transport(broker) as transport:
        async with make_client(
            broker, transport=transport, session_expiry=60
        ) as client:
            await client.aclose(session_expiry=0)
        conn = broker.connections[0]
        await conn.wait_closed()
        (packet,) = conn.packets(DisconnectPacket)
        assert packet.properties.session_expiry_interval == 0


class _Socket:
    """A link's socket that takes *take* bytes of a send, or fails."""

    def __init__(self, real: socket.socket, take: int | None) -> None:
        self.real = real
        self.take = take

    def send(self, data: bytes) -> int:
        if self.take is None:
            raise ConnectionResetError("reset by the test")
        sent = self.real.send(bytes(data[: self.take]))
        self.take = len(data)  # the rest goes whole
        return sent

    def fileno(self) -> int:
        return self.real.fileno()

    def close(self) -> None:
        self.real.close()


async def test_a_disconnect_the_socket_takes_in_part_is_finished_whole(
    autojump_clock: trio.testing.MockClock, virtual_deadline: None
) -> None:
    async with FakeBroker() as broker, socket_transport(broker) as transport:
        async with make_client(broker, transport=transport) as client:
            link = client._conn
            assert link is not None
            assert link.sock is not None
            link.sock = _Socket(link.sock, take=1)  # type: ignore[assignment]
        conn = broker.connections[0]
        await conn.wait_closed()
        assert len(conn.packets(DisconnectPacket)) == 1
        assert not client.is_connected


async def test_a_socket_broken_at_close_ends_the_link_without_disconnect(
    autojump_clock: trio.testing.MockClock, virtual_deadline: None
) -> None:
    async with FakeBroker() as broker, socket_transport(broker) as transport:
        async with make_client(broker, transport=transport) as client:
            link = client._conn
            assert link is not None
            assert link.sock is not None
            real = link.sock
            link.sock = _Socket(real, take=None)  # type: ignore[assignment]
        assert real.fileno() == -1
        conn = broker.connections[0]
        await conn.wait_closed()
        assert conn.packets(DisconnectPacket) == []
        assert not client.is_connected
