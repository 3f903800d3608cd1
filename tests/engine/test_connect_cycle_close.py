"""Closing over a plain socket writes DISCONNECT and closes at once (#9, speed).

With no write in progress nothing waits: the DISCONNECT goes to the socket as
``Link.send`` writes it and the socket is closed, with no cancel scope to shield or
bound it. A DISCONNECT the socket does not take whole is finished by the usual
path (bounded by *disconnect_timeout*); a broken socket ends the link as before.
On asyncio the same goes through the plain TCP transport: the reader wakes on the
closed transport, as on the broker's EOF, instead of being cancelled.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import anyio
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
from trio_mqttconn import MqttClient
from trio_mqttconn._packets import DisconnectPacket

if TYPE_CHECKING:
    import socket

    from anyio._backends._asyncio import SocketStream as AsyncioSocketStream

    from trio_mqttconn._engine.link import Link
    from trio_mqttconn.testing import Mosquitto


def _direct_link(client: MqttClient) -> Link:
    """The client's link, which writes to its socket directly."""
    link = client._conn
    assert link is not None
    assert link.sock is not None
    return link


async def _disconnects_seen(broker: FakeBroker) -> int:
    """How many DISCONNECT the first connection got, once it is closed."""
    conn = broker.connections[0]
    await conn.wait_closed()
    return len(conn.packets(DisconnectPacket))


@pytest.mark.trio
async def test_close_writes_disconnect_and_closes_the_socket(
    autojump_clock: trio.testing.MockClock, virtual_deadline: None
) -> None:
    async with FakeBroker() as broker, socket_transport(broker) as transport:
        before = live_tasks()
        async with make_client(broker, transport=transport) as client:
            await client.subscribe("a/b", qos=1)
            link = _direct_link(client)
        assert client_task_names(live_tasks() - before) == []
        assert link.sock is not None
        assert link.sock.fileno() == -1
        assert await _disconnects_seen(broker) == 1
        assert not client.is_connected


@pytest.mark.trio
async def test_close_of_a_cancelled_body_still_disconnects(
    autojump_clock: trio.testing.MockClock, virtual_deadline: None
) -> None:
    async with FakeBroker() as broker, socket_transport(broker) as transport:
        with trio.CancelScope() as scope:
            async with make_client(broker, transport=transport):
                scope.cancel()
                await trio.sleep_forever()
        assert scope.cancelled_caught
        assert await _disconnects_seen(broker) == 1


@pytest.mark.trio
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


@pytest.mark.trio
async def test_a_disconnect_the_socket_takes_in_part_is_finished_whole(
    autojump_clock: trio.testing.MockClock, virtual_deadline: None
) -> None:
    async with FakeBroker() as broker, socket_transport(broker) as transport:
        async with make_client(broker, transport=transport) as client:
            link = _direct_link(client)
            link.sock = _Socket(link.sock, take=1)  # type: ignore[arg-type,assignment]
        assert await _disconnects_seen(broker) == 1
        assert not client.is_connected


@pytest.mark.trio
async def test_a_socket_broken_at_close_ends_the_link_without_disconnect(
    autojump_clock: trio.testing.MockClock, virtual_deadline: None
) -> None:
    async with FakeBroker() as broker, socket_transport(broker) as transport:
        async with make_client(broker, transport=transport) as client:
            link = _direct_link(client)
            real = link.sock
            link.sock = _Socket(real, take=None)  # type: ignore[arg-type,assignment]
        assert real is not None
        assert real.fileno() == -1
        assert await _disconnects_seen(broker) == 0
        assert not client.is_connected


# -- over a real broker, on both backends (trio's plain socket, asyncio's transport)


@pytest.mark.anyio
@pytest.mark.broker
@pytest.mark.parametrize("anyio_backend", ["trio", "asyncio"])
async def test_close_at_once_over_plain_tcp_leaves_nothing_behind(
    anyio_backend: str, mosquitto: Mosquitto
) -> None:
    with anyio.fail_after(30):
        for _ in range(3):
            async with MqttClient(mosquitto.uri, keepalive=60) as client:
                await client.subscribe("cycle/close", qos=0)
                link = client._conn
                assert link is not None
                assert link.sock is not None or link.direct is not None
            assert link.ended is not None
            assert not client.is_connected
            assert not client._task_scopes  # every task of the client ended
        assert client.statistics().connects == 1


@pytest.mark.anyio
@pytest.mark.broker
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_asyncio_disconnect_the_transport_keeps_is_drained_first(
    anyio_backend: str, mosquitto: Mosquitto, monkeypatch: pytest.MonkeyPatch
) -> None:
    # transport_write reporting bytes left in the transport's buffer: the close
    # waits for them (bounded by disconnect_timeout), then closes the stream.
    from trio_mqttconn._engine.link import transport_write as real

    seen: list[bytes] = []

    def keeps_some(stream: AsyncioSocketStream, data: bytes) -> bool:
        seen.append(data)
        real(stream, data)
        return False

    monkeypatch.setattr("trio_mqttconn._engine.serve.transport_write", keeps_some)
    with anyio.fail_after(30):
        async with MqttClient(mosquitto.uri) as client:
            link = client._conn
            assert link is not None
            assert link.direct is not None
        assert link.ended is not None
        assert link.direct._closed  # closed by anyio's aclose(), as before
        assert len(seen) == 1  # the DISCONNECT, written once
