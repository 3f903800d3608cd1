"""Cancellation at every checkpoint of publish, subscribe, receive and aclose.

`cancel_at_step` runs the call in its own task and cancels it right after the task's
n-th scheduling step, i.e. at its n-th checkpoint. Each test loops n = 1, 2, 3 ...
until the call completes without being interrupted, and after every interrupted
attempt checks that the client is still usable and nothing acknowledged was lost.
"""

from __future__ import annotations

import functools

import pytest
import trio
import trio.testing

from tests._fakes import (
    Answer,
    FakeBroker,
    FakeConnection,
    cancel_at_step,
    client_task_names,
    live_tasks,
    make_client,
    virtual_deadline_fixture,  # noqa: F401 - the virtual_deadline fixture
)
from trio_mqttconn import MqttClient, NotOpenError, QoS
from trio_mqttconn._packets import (
    DisconnectPacket,
    PublishPacket,
    PubRelPacket,
)

pytestmark = pytest.mark.trio

MAX_STEPS = 200


def _no_broken_packets(connections: list[FakeConnection]) -> None:
    for conn in connections:
        assert conn.protocol_error is None, f"connection {conn.index} got a bad packet"


async def _usable(client: MqttClient, broker: FakeBroker, label: bytes) -> None:
    """The client still publishes (QoS 1) and receives after an interrupted call."""
    with trio.fail_after(60):
        await client.publish("check", label, qos=1)
        async with client.subscription("echo/#", qos=1) as sub:
            await broker.publish("echo/x", label, qos=1)
            assert (await sub.receive()).payload == label


@pytest.mark.parametrize("qos", [QoS.AT_MOST_ONCE, QoS.AT_LEAST_ONCE, QoS.EXACTLY_ONCE])
async def test_cancel_publish_at_every_checkpoint(
    autojump_clock: trio.testing.MockClock, virtual_deadline: None, qos: QoS
) -> None:
    async with FakeBroker() as broker, make_client(broker) as client:
        for steps in range(1, MAX_STEPS):
            payload = f"p{steps}".encode()
            publish = functools.partial(client.publish, "t", payload, qos=qos)
            interrupted = await cancel_at_step(steps, publish)
            if not interrupted:
                break
            await _usable(client, broker, b"after %d" % steps)
        else:  # pragma: no cover
            pytest.fail(f"publish still interrupted after {MAX_STEPS} checkpoints")
        # QoS 0 may complete at its first yield: the write itself is shielded.
        assert steps >= 1
        _no_broken_packets(broker.connections)
        # whatever a cancelled call left in flight completes by the next reconnect
        broker.script(Answer(session_present=True))
        await broker.connections[-1].close()
        await client.wait_connected()
        await _usable(client, broker, b"final")
        assert client.statistics().inflight == 0
        # [v5:MQTT-4.3.3] nothing is delivered twice at QoS 2
        if qos is QoS.EXACTLY_ONCE:
            payloads = [m.payload for m in broker.messages if m.topic == "t"]
            assert len(payloads) == len(set(payloads))


async def test_cancel_publish_while_waiting_for_the_connection(
    autojump_clock: trio.testing.MockClock, virtual_deadline: None
) -> None:
    async with FakeBroker() as broker, make_client(broker) as client:
        broker.script(*[Answer(refuse=True)] * 3)  # reconnects at 1, 3, 7 fail
        await broker.connections[0].close()
        await trio.testing.wait_all_tasks_blocked()
        assert not client.is_connected
        for deadline in (0.5, 1, 2, 3, 5, 7):
            with trio.move_on_at(deadline) as scope:
                await client.publish("t", b"w%g" % deadline, qos=1)
            assert scope.cancelled_caught
        await client.wait_connected()
        assert trio.current_time() == 15
        await _usable(client, broker, b"back")
        assert client.statistics().inflight == 0
        # a publish cancelled before it was sent is not sent later
        sent = [p for conn in broker.connections for p in conn.packets(PublishPacket)]
        assert [p.topic for p in sent] == ["check"]


async def test_cancel_publish_waiting_for_pubcomp_keeps_the_message_in_flight(
    autojump_clock: trio.testing.MockClock, virtual_deadline: None
) -> None:
    async with (
        FakeBroker(complete_publishes=False) as broker,
        make_client(broker, clean_start=False, session_expiry=60) as client,
    ):
        conn0 = broker.connections[0]
        with trio.move_on_after(1):
            await client.publish("t", b"qos2", qos=2)
        release = await conn0.wait_for(PubRelPacket)
        # the broker completes it on the next connection
        broker.script(Answer(session_present=True))
        broker.complete_publishes = True
        await conn0.close()
        conn1 = await broker.wait_connection(1)
        await conn1.wait_for(PubRelPacket)
        await trio.testing.wait_all_tasks_blocked()
        assert [p.packet_id for p in conn1.packets(PubRelPacket)] == [release.packet_id]
        assert conn1.packets(PublishPacket) == []
        assert client.statistics().inflight == 0
        assert len(broker.messages) == 1


async def test_cancel_subscription_enter_at_every_checkpoint(
    autojump_clock: trio.testing.MockClock, virtual_deadline: None
) -> None:
    async with FakeBroker() as broker, make_client(broker) as client:
        for steps in range(1, MAX_STEPS):

            async def enter_and_leave() -> None:
                async with client.subscription("s/#", qos=1):
                    pass

            interrupted = await cancel_at_step(steps, enter_and_leave)
            if not interrupted:
                break
            assert client.statistics().subscriptions == 0
            await _usable(client, broker, b"after %d" % steps)
        else:  # pragma: no cover
            pytest.fail(f"subscription still interrupted after {MAX_STEPS} checkpoints")
        assert steps > 1
        # a fresh subscription to the same filter gets every message exactly once
        async with client.subscription("s/#", qos=1) as sub:
            await broker.publish("s/1", b"one", qos=1)
            assert (await sub.receive()).payload == b"one"
            await trio.testing.wait_all_tasks_blocked()
            assert sub.statistics().queued == 0
        assert client.statistics().subscriptions == 0
        _no_broken_packets(broker.connections)


async def test_cancel_subscribe_at_every_checkpoint(
    autojump_clock: trio.testing.MockClock, virtual_deadline: None
) -> None:
    async with FakeBroker() as broker, make_client(broker) as client:
        handles = []
        for steps in range(1, MAX_STEPS):

            async def subscribe() -> None:
                handles.append(await client.subscribe("h/#", qos=1))

            interrupted = await cancel_at_step(steps, subscribe)
            if not interrupted:
                break
            assert handles == []
            assert client.statistics().subscriptions == 0
        else:  # pragma: no cover
            pytest.fail(f"subscribe still interrupted after {MAX_STEPS} checkpoints")
        [handle] = handles
        await broker.publish("h/1", b"x", qos=1)
        assert (await handle.receive()).payload == b"x"
        await handle.unsubscribe()


async def test_cancel_receive_at_every_checkpoint_loses_no_message(
    autojump_clock: trio.testing.MockClock, virtual_deadline: None
) -> None:
    async with (
        FakeBroker() as broker,
        make_client(broker) as client,
        client.subscription("r", qos=1) as sub,
    ):
        got: list[bytes] = []
        for steps in range(1, MAX_STEPS):
            # the message arrives while the receive is (or is not yet) waiting
            async def receive_one() -> None:
                got.append((await sub.receive()).payload)

            async with trio.open_nursery() as nursery:
                nursery.start_soon(
                    functools.partial(broker.publish, qos=1), "r", b"m%d" % steps
                )
                interrupted = await cancel_at_step(steps, receive_one)
            await trio.testing.wait_all_tasks_blocked()
            if interrupted:
                assert got == []
                # the message is still there for the next receive
                assert sub.receive_nowait().payload == b"m%d" % steps
            else:
                assert got == [b"m%d" % steps]
                break
        else:  # pragma: no cover
            pytest.fail(f"receive still interrupted after {MAX_STEPS} checkpoints")
        assert sub.statistics().dropped == 0


async def test_cancel_aclose_at_every_checkpoint(
    autojump_clock: trio.testing.MockClock, virtual_deadline: None
) -> None:
    for steps in range(1, MAX_STEPS):
        async with FakeBroker() as broker:
            before = live_tasks()
            client = make_client(broker, keepalive=10)
            async with trio.open_nursery() as nursery:
                await nursery.start(client.run)
                interrupted = await cancel_at_step(steps, client.aclose)
                # aclose is shielded: even when interrupted, the client ends
                await client.aclose()
            assert not client.is_connected
            with pytest.raises(NotOpenError):
                await client.publish("t", b"x")
            await trio.testing.wait_all_tasks_blocked()
            assert client_task_names(live_tasks() - before) == []
            conn = broker.connections[0]
            assert conn.client_stream.closed
            assert len(conn.packets(DisconnectPacket)) <= 1
        if not interrupted:
            break
    else:  # pragma: no cover
        pytest.fail(f"aclose still interrupted after {MAX_STEPS} checkpoints")
