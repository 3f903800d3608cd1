"""Keepalive (#9 section 3): judged by what the broker sends after our PINGREQ.

On the engine of 7f953d6 the watchdog skipped its PINGREQ while a write was in
progress, so a client that kept its link busy publishing was declared dead every
1.5 x keepalive although the broker answered everything.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import anyio
import anyio.abc
import pytest
import trio
import trio.testing

from tests._fakes import (
    FakeBroker,
    make_client,
    virtual_deadline_fixture,  # noqa: F401 - the virtual_deadline fixture
)
from trio_mqttconn import ConnectionLost, MqttClient, MqttError
from trio_mqttconn._packets import PingReqPacket

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from trio_mqttconn._transports import Endpoint

pytestmark = pytest.mark.trio


class SlowLink(anyio.abc.ByteStream):
    """A healthy but busy link: every write takes *delay* seconds."""

    def __init__(self, inner: anyio.abc.ByteStream, delay: float) -> None:
        self.inner = inner
        self.delay = delay

    async def receive(self, max_bytes: int = 65536) -> bytes:
        return await self.inner.receive(max_bytes)

    async def send(self, item: bytes) -> None:
        await trio.sleep(self.delay)
        await self.inner.send(item)

    async def send_eof(self) -> None:
        await self.inner.send_eof()

    async def aclose(self) -> None:
        await self.inner.aclose()


def slow_transport(
    broker: FakeBroker, delay: float
) -> Callable[[Endpoint], Awaitable[anyio.abc.ByteStream]]:
    """A transport factory whose links are `SlowLink`."""

    async def connect(endpoint: Endpoint) -> anyio.abc.ByteStream:
        return SlowLink(await broker.connect(endpoint), delay)

    return connect


async def _flood(client: MqttClient, until: float) -> None:
    while trio.current_time() < until:
        try:
            await client.publish("flood", b"x" * 64)
        except MqttError:
            return


async def test_keepalive_busy_publisher_keeps_its_connection(
    autojump_clock: trio.testing.MockClock, virtual_deadline: None
) -> None:
    async with (
        FakeBroker() as broker,
        make_client(
            broker, keepalive=2, transport=slow_transport(broker, 0.25)
        ) as client,
    ):
        async with trio.open_nursery() as nursery:
            for _ in range(3):  # a write is always in progress
                nursery.start_soon(_flood, client, 20.0)
        assert len(broker.connections) == 1
        assert client.is_connected
        conn = broker.connections[0]
        assert len(conn.packets(PingReqPacket)) >= 5


async def test_keepalive_busy_publisher_detects_a_silent_broker(
    autojump_clock: trio.testing.MockClock, virtual_deadline: None
) -> None:
    async with FakeBroker(answer_pings=False) as broker:
        client = make_client(
            broker,
            keepalive=2,
            reconnect=False,
            transport=slow_transport(broker, 0.25),
        )

        async def busy() -> None:
            async with client, trio.open_nursery() as nursery:
                for _ in range(3):
                    nursery.start_soon(_flood, client, 60.0)

        with pytest.raises(ConnectionLost, match="did not answer"):
            await busy()
        assert trio.current_time() <= 1.5 * 2 + 0.25
