"""The write path: one writer per connection, concurrent writes coalesced."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
import trio
import trio.testing

from tests._fakes import (
    FakeBroker,
    make_client,
    virtual_deadline_fixture,  # noqa: F401 - the virtual_deadline fixture
)
from trio_mqttconn import ConnectionLost, Message, QoS
from trio_mqttconn._packets import PublishPacket

if TYPE_CHECKING:
    from collections.abc import Callable

pytestmark = pytest.mark.trio


async def test_writes_queued_behind_a_stalled_writer_go_out_in_one_write(
    autojump_clock: trio.testing.MockClock, virtual_deadline: None
) -> None:
    async with FakeBroker() as broker, make_client(broker) as client:
        stream = broker.connections[0].client_stream
        before = len(stream.writes)
        stream.stall_sends()
        done: list[str] = []

        async def publish(topic: str, qos: int) -> None:
            await client.publish(topic, b"x", qos=qos)
            done.append(topic)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(publish, "first", 0)
            await trio.testing.wait_all_tasks_blocked()
            nursery.start_soon(publish, "second", 0)
            await trio.testing.wait_all_tasks_blocked()
            nursery.start_soon(publish, "third", 1)
            await trio.testing.wait_all_tasks_blocked()
            assert done == []
            stream.resume_sends()
        assert sorted(done) == ["first", "second", "third"]
        # the first write, then the two queued packets together
        assert len(stream.writes) - before == 2
        topics = [
            p.topic
            for p in broker.connections[0].received
            if isinstance(p, PublishPacket)
        ]
        assert topics == ["first", "second", "third"]


async def test_writes_queued_behind_a_failing_writer_fail_too(
    autojump_clock: trio.testing.MockClock, virtual_deadline: None
) -> None:
    async with FakeBroker() as broker, make_client(broker, reconnect=True) as client:
        stream = broker.connections[0].client_stream
        stream.stall_sends()
        errors: list[BaseException] = []

        async def publish(topic: str) -> None:
            try:
                await client.publish(topic, b"x")
            except ConnectionLost as exc:
                errors.append(exc)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(publish, "first")
            await trio.testing.wait_all_tasks_blocked()
            nursery.start_soon(publish, "second")
            await trio.testing.wait_all_tasks_blocked()
            stream.abort()
        assert len(errors) == 2
        assert all(str(e).startswith("sending to mqtt://") for e in errors)
        # the client reconnects and is usable again
        await client.wait_connected()
        await client.publish("after", b"y", qos=1)


async def test_sync_listeners_share_one_dispatcher_in_order(
    autojump_clock: trio.testing.MockClock, virtual_deadline: None
) -> None:
    async with FakeBroker() as broker, make_client(broker) as client:
        seen: list[tuple[str, bytes]] = []
        done = trio.Event()

        def listener(name: str) -> Callable[[Message], None]:
            def on_message(message: Message) -> None:
                seen.append((name, message.payload))
                if len(seen) == 5:
                    done.set()

            return on_message

        a = await client.subscribe("a/#", qos=1, listener=listener("a"))
        b = await client.subscribe("a/b", qos=1, listener=listener("b"))
        await client.publish("a/b", b"1", qos=QoS.AT_LEAST_ONCE)
        await client.publish("a/c", b"2", qos=QoS.AT_LEAST_ONCE)
        await client.publish("a/b", b"3", qos=QoS.AT_LEAST_ONCE)
        with trio.fail_after(10):
            await done.wait()
        assert seen == [("a", b"1"), ("b", b"1"), ("a", b"2"), ("a", b"3"), ("b", b"3")]
        assert a.statistics().delivered == 3
        await b.unsubscribe()
        await client.publish("a/b", b"4", qos=1)
        await trio.testing.wait_all_tasks_blocked()
        assert seen[-1] == ("a", b"4")
        await a.unsubscribe()
