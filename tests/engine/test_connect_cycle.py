"""The connect cycle's lifecycle shortcuts (#9, speed: connect+subscribe+disconnect).

``async with`` returns with a first link that brought nothing beside its CONNACK
already served and ready (the caller's first request does not wait for the
supervisor task), and the graceful close closes the stream itself, once, whoever
sees the end first.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from tests._fakes import (
    FakeBroker,
    client_task_names,
    live_tasks,
    make_client,
    virtual_deadline_fixture,  # noqa: F401 - the virtual_deadline fixture
)
from trio_mqttconn._packets import DisconnectPacket, PublishPacket

if TYPE_CHECKING:
    import trio.testing

pytestmark = pytest.mark.trio


async def test_async_with_returns_with_the_link_ready(
    autojump_clock: trio.testing.MockClock, virtual_deadline: None
) -> None:
    async with FakeBroker() as broker:
        async with make_client(broker) as client:
            # No other task ran since the CONNACK: the link is ready already.
            client.publish_nowait("t", b"x")
            conn = broker.connections[0]
        await conn.wait_closed()
        assert [type(packet) for packet in conn.received[-2:]] == [
            PublishPacket,
            DisconnectPacket,
        ]


async def test_async_with_close_leaves_no_task_and_a_closed_stream(
    autojump_clock: trio.testing.MockClock, virtual_deadline: None
) -> None:
    async with FakeBroker() as broker:
        before = live_tasks()
        async with make_client(broker, keepalive=10) as client:
            await client.subscribe("a/b", qos=1)
            conn = broker.connections[0]
        assert client_task_names(live_tasks() - before) == []
        assert conn.client_stream.closed
        assert len(conn.packets(DisconnectPacket)) == 1
        assert not client.is_connected
