"""The keepalive watchdog starts when first due, not with the link (#9, speed).

A connect+subscribe+disconnect cycle never needs its watchdog: the task is started
when it first has work to do. On trio over a plain socket the reader's receive
waits under that due time (a cancel scope's deadline, trio's only timer), for a
few reads at most; on asyncio a timer of the loop starts it; on trio's other
streams it starts with the link. The PINGREQs and the dead-broker verdicts come at
the same (virtual) times as with a watchdog started at once
(see test_client_keepalive.py, which runs over in-memory streams).
"""

from __future__ import annotations

import contextlib
import socket
from typing import TYPE_CHECKING

import anyio
import anyio.abc
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
from trio_mqttconn import ConnectionLost
from trio_mqttconn._engine.link import ARMED_READS, Link
from trio_mqttconn._packets import PingReqPacket

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable


async def _pump(source: anyio.abc.ByteStream, sink: anyio.abc.ByteStream) -> None:
    try:
        while True:
            await sink.send(await source.receive())
    except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError):
        pass
    finally:
        with anyio.CancelScope(shield=True):
            await anyio.aclose_forcefully(sink)
            await anyio.aclose_forcefully(source)


@contextlib.asynccontextmanager
async def socket_transport(
    broker: FakeBroker,
) -> AsyncIterator[Callable[[object], Awaitable[anyio.abc.ByteStream]]]:
    """A transport whose streams are real sockets (a socketpair) to *broker*."""
    async with anyio.create_task_group() as group:

        async def connect(endpoint: object) -> anyio.abc.ByteStream:
            inner = await broker.connect(endpoint)
            ours, theirs = socket.socketpair()
            client_side = await anyio.abc.UNIXSocketStream.from_socket(ours)
            broker_side = await anyio.abc.UNIXSocketStream.from_socket(theirs)
            group.start_soon(_pump, broker_side, inner)
            group.start_soon(_pump, inner, broker_side)
            return client_side

        yield connect
        group.cancel_scope.cancel()


@pytest.mark.trio
async def test_plain_socket_idle_pings_at_the_same_times(
    autojump_clock: trio.testing.MockClock, virtual_deadline: None
) -> None:
    # [v5:MQTT-3.1.2-20] [v311:MQTT-3.1.2-23]
    async with FakeBroker() as broker, socket_transport(broker) as transport:
        before = live_tasks()
        async with make_client(broker, keepalive=10, transport=transport) as client:
            assert client._conn is not None
            assert client._conn.sock is not None  # the direct path
            assert "mqtt-keepalive[c1]" not in client_task_names(live_tasks() - before)
            conn = await broker.wait_connection(0)
            await conn.wait_for(PingReqPacket)
            assert trio.current_time() == 10
            assert "mqtt-keepalive[c1]" in client_task_names(live_tasks() - before)
            await conn.wait_for(PingReqPacket, count=2)
            assert trio.current_time() == 20
        assert len(broker.connections) == 1


@pytest.mark.trio
async def test_plain_socket_traffic_postpones_the_first_ping(
    autojump_clock: trio.testing.MockClock, virtual_deadline: None
) -> None:
    async with (
        FakeBroker() as broker,
        socket_transport(broker) as transport,
        make_client(broker, keepalive=10, transport=transport) as client,
    ):
        conn = await broker.wait_connection(0)
        await trio.sleep_until(6)
        await client.publish("t", b"x", qos=1)  # PUBLISH out, PUBACK in at t = 6
        await conn.wait_for(PingReqPacket)
        assert trio.current_time() == 16


@pytest.mark.trio
async def test_plain_socket_silent_broker_is_dead_at_one_and_a_half_keepalive(
    autojump_clock: trio.testing.MockClock, virtual_deadline: None
) -> None:
    async with (
        FakeBroker(answer_pings=False) as broker,
        socket_transport(broker) as transport,
    ):
        client = make_client(broker, keepalive=10, reconnect=False, transport=transport)
        with pytest.raises(ConnectionLost, match=r"did not answer for 15 s"):
            await client.run()
        assert trio.current_time() == 15


@pytest.mark.trio
async def test_plain_socket_watchdog_runs_as_a_task_after_the_armed_reads(
    autojump_clock: trio.testing.MockClock, virtual_deadline: None
) -> None:
    async with FakeBroker() as broker, socket_transport(broker) as transport:
        before = live_tasks()
        async with make_client(broker, keepalive=10, transport=transport) as client:
            conn = await broker.wait_connection(0)

            def started() -> bool:
                return "mqtt-keepalive[c1]" in client_task_names(live_tasks() - before)

            assert not started()
            for _ in range(ARMED_READS):
                await client.publish("t", b"x", qos=1)  # a PUBACK read each
            assert trio.current_time() == 0
            assert started()  # no deadline under the reads from now on
            await conn.wait_for(PingReqPacket)
            assert trio.current_time() == 10


@pytest.mark.trio
async def test_memory_stream_on_trio_starts_the_watchdog_with_the_link(
    autojump_clock: trio.testing.MockClock, virtual_deadline: None
) -> None:
    async with FakeBroker() as broker:
        before = live_tasks()
        async with make_client(broker, keepalive=10):
            await trio.testing.wait_all_tasks_blocked()
            assert "mqtt-keepalive[c1]" in client_task_names(live_tasks() - before)


@pytest.mark.trio
async def test_no_watchdog_task_without_keepalive(
    autojump_clock: trio.testing.MockClock, virtual_deadline: None
) -> None:
    async with FakeBroker() as broker:
        before = live_tasks()
        async with make_client(broker, keepalive=0):
            await trio.testing.wait_all_tasks_blocked()
            assert "mqtt-keepalive[c1]" not in client_task_names(live_tasks() - before)
            await trio.sleep(1000)
            conn = broker.connections[0]
            assert not conn.packets(PingReqPacket)


def _waiting(link: Link) -> bool:
    """Whether *link*'s watchdog waits to be started."""
    return link.start_keepalive is not None


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_asyncio_timer_starts_the_watchdog_when_due(anyio_backend: str) -> None:
    # asyncio has no mock clock: keepalive 1 s of real time.
    async with FakeBroker() as broker:
        async with make_client(broker, keepalive=1) as client:
            link = client._conn
            assert link is not None
            assert _waiting(link)  # for the loop's timer
            conn = await broker.wait_connection(0)
            with anyio.fail_after(30):
                await conn.wait_for(PingReqPacket)
            assert not _waiting(link)
        # A link that ended first never starts it.
        async with make_client(broker, keepalive=1) as client:
            link = client._conn
            assert link is not None
        assert not _waiting(link)
        assert link._keepalive_timer is None
