"""Lifecycle: run()/async with, aclose, NotOpenError, error shapes, task leaks."""

from __future__ import annotations

import re

import pytest
import trio
import trio.testing

from tests._fakes import (
    Answer,
    FakeBroker,
    client_task_names,
    live_tasks,
    make_client,
    virtual_deadline_fixture,  # noqa: F401 - the virtual_deadline fixture
)
from trio_mqttconn import (
    ConnectionLost,
    MqttClient,
    NotOpenError,
    ReasonCode,
)
from trio_mqttconn._packets import (
    DisconnectPacket,
    PublishPacket,
    SubscribePacket,
)
from trio_mqttconn._properties import Properties

pytestmark = pytest.mark.trio

NOT_RUNNING = (
    r"^the client is not running: use `async with MqttClient\(\.\.\.\)` or "
    r"`await nursery\.start\(client\.run\)` first$"
)
CLOSED = r"^the client is closed$"


# -- entry points ----------------------------------------------------------------------


async def test_client_async_with_connects_on_enter_and_disconnects_on_exit(
    autojump_clock: trio.testing.MockClock, virtual_deadline: None
) -> None:
    async with FakeBroker() as broker:
        async with make_client(broker, keepalive=30) as client:
            assert client.is_connected
            conn = broker.connections[0]
            assert conn.connacked
            connect = conn.connect
            assert connect is not None
            assert (connect.client_id, connect.keepalive, connect.clean_start) == (
                "c1",
                30,
                True,
            )
            assert client.statistics().connected
            assert client.statistics().connects == 1
        await conn.wait_closed()
        assert isinstance(conn.received[-1], DisconnectPacket)
        assert conn.close_reason == "disconnect"
        assert conn.client_stream.closed
        assert not client.statistics().connected
        assert trio.current_time() == 0


async def test_client_run_in_a_nursery_returns_after_aclose(
    autojump_clock: trio.testing.MockClock, virtual_deadline: None
) -> None:
    async with FakeBroker() as broker, trio.open_nursery() as nursery:
        client = make_client(broker)
        await nursery.start(client.run)
        assert client.is_connected
        assert broker.connections[0].connacked
        await client.publish("t", b"x", qos=1)
        await client.aclose()
        assert not client.statistics().connected
    assert isinstance(broker.connections[0].received[-1], DisconnectPacket)


async def test_client_generates_a_unique_client_id(
    autojump_clock: trio.testing.MockClock, virtual_deadline: None
) -> None:
    async with FakeBroker() as broker:
        first = make_client(broker, client_id=None)
        second = make_client(broker, client_id=None)
        assert first.client_id is not None
        assert re.fullmatch(r"trio-mqttconn-[0-9a-f]+", first.client_id)
        assert first.client_id != second.client_id
        async with first:
            connect = broker.connections[0].connect
            assert connect is not None
            assert connect.client_id == first.client_id


async def test_client_adopts_the_assigned_client_identifier(
    autojump_clock: trio.testing.MockClock, virtual_deadline: None
) -> None:
    answer = Answer(properties=Properties(assigned_client_identifier="given-1"))
    async with (
        FakeBroker(default_answer=answer) as broker,
        make_client(broker, client_id="") as client,
    ):
        assert client.client_id == "given-1"


async def test_client_credentials_from_the_uri(
    autojump_clock: trio.testing.MockClock, virtual_deadline: None
) -> None:
    async with (
        FakeBroker() as broker,
        make_client(broker, "mqtt://alice:p%40ss@broker.test:1883") as client,
    ):
        connect = broker.connections[0].connect
        assert connect is not None
        assert (connect.username, connect.password) == ("alice", b"p@ss")
        assert "p@ss" not in repr(client)
        assert "p%40ss" not in repr(client)


# -- closing -------------------------------------------------------------------------------


async def test_client_aclose_is_idempotent(
    autojump_clock: trio.testing.MockClock, virtual_deadline: None
) -> None:
    async with FakeBroker() as broker:
        async with make_client(broker) as client:
            await client.aclose()
            await client.aclose()
            assert not client.is_connected
        await client.aclose()
        assert len(broker.connections[0].packets(DisconnectPacket)) == 1


async def test_client_aclose_before_run_is_allowed(
    autojump_clock: trio.testing.MockClock, virtual_deadline: None
) -> None:
    async with FakeBroker() as broker:
        client = make_client(broker)
        await client.aclose()
        with pytest.raises(NotOpenError):
            await client.run()
        assert broker.attempts == []


async def test_client_calls_before_run_raise_not_open(
    autojump_clock: trio.testing.MockClock, virtual_deadline: None
) -> None:
    async with FakeBroker() as broker:
        client = make_client(broker)
        with pytest.raises(NotOpenError, match=NOT_RUNNING):
            await client.publish("t", b"x")
        with pytest.raises(NotOpenError, match=NOT_RUNNING):
            await client.subscribe("t")
        with pytest.raises(NotOpenError, match=NOT_RUNNING):
            await client.wait_connected()
        assert not client.is_connected


async def test_client_calls_after_close_raise_not_open(
    autojump_clock: trio.testing.MockClock, virtual_deadline: None
) -> None:
    async with FakeBroker() as broker:
        async with make_client(broker) as client:
            pass
        with pytest.raises(NotOpenError, match=CLOSED):
            await client.publish("t", b"x")
        with pytest.raises(NotOpenError, match=CLOSED):
            await client.subscribe("t")
        with pytest.raises(NotOpenError, match=CLOSED):
            await client.wait_connected()
        with pytest.raises(NotOpenError, match=CLOSED):
            async with client.subscription("t"):
                pytest.fail("subscribed on a closed client")  # pragma: no cover
        with pytest.raises(
            NotOpenError,
            match=r"^this MqttClient is closed: a client runs once, make a new one$",
        ):
            await client.run()


async def test_client_aclose_fails_pending_publish_with_not_open(
    autojump_clock: trio.testing.MockClock, virtual_deadline: None
) -> None:
    outcome: list[BaseException] = []
    async with FakeBroker(ack_publishes=False) as broker:
        async with make_client(broker) as client:

            async def publish() -> None:
                try:
                    await client.publish("t", b"x", qos=1)
                except NotOpenError as exc:
                    outcome.append(exc)

            async with trio.open_nursery() as nursery:
                nursery.start_soon(publish)
                await broker.connections[0].wait_for(PublishPacket)
                await client.aclose()
        assert [str(exc) for exc in outcome] == ["the client is closed"]


async def test_client_aclose_fails_subscribe_waiting_for_suback(
    autojump_clock: trio.testing.MockClock, virtual_deadline: None
) -> None:
    outcome: list[BaseException] = []
    async with FakeBroker(ack_subscribes=False) as broker:
        async with make_client(broker) as client:

            async def subscribe() -> None:
                try:
                    await client.subscribe("t")
                except NotOpenError as exc:
                    outcome.append(exc)

            async with trio.open_nursery() as nursery:
                nursery.start_soon(subscribe)
                await broker.connections[0].wait_for(SubscribePacket)
                await client.aclose()
        assert [type(exc) for exc in outcome] == [NotOpenError]


async def test_client_aclose_is_bounded_by_disconnect_timeout(
    autojump_clock: trio.testing.MockClock, virtual_deadline: None
) -> None:
    async with FakeBroker() as broker:
        async with make_client(broker, disconnect_timeout=3) as client:
            conn = broker.connections[0]
            conn.client_stream.stall_sends()  # the DISCONNECT cannot be written
        assert trio.current_time() == 3
        assert conn.client_stream.closed
        assert not client.is_connected
        assert conn.packets(DisconnectPacket) == []


async def test_client_aclose_while_reconnecting(
    autojump_clock: trio.testing.MockClock, virtual_deadline: None
) -> None:
    async with FakeBroker() as broker:
        async with make_client(broker) as client:
            broker.script(*[Answer(refuse=True)] * 10)
            await broker.connections[0].close()
            await broker.wait_attempts(3)
        assert trio.current_time() == 3
        assert not client.is_connected
        assert len(broker.attempts) == 3


@pytest.mark.parametrize("entry", ["async with", "run"])
async def test_client_aclose_while_connecting_the_first_time(
    autojump_clock: trio.testing.MockClock, virtual_deadline: None, entry: str
) -> None:
    async with FakeBroker() as broker:
        broker.script(Answer(silent=True))  # CONNECT is never answered
        client = make_client(broker, connect_timeout=60)

        async def close_when_connecting() -> None:
            await broker.wait_attempts(1)
            await client.aclose()

        async def enter() -> None:
            if entry == "run":
                await client.run()
            else:
                async with client:
                    pytest.fail("connected")  # pragma: no cover

        async with trio.open_nursery() as nursery:
            nursery.start_soon(close_when_connecting)
            with pytest.raises(
                NotOpenError, match=r"^the client was closed while it was connecting$"
            ):
                await enter()
        assert trio.current_time() == 0
        assert broker.connections[0].client_stream.closed
        with pytest.raises(NotOpenError, match=CLOSED):
            await client.publish("t", b"x")


# -- error shapes -----------------------------------------------------------------------


async def test_client_body_exception_propagates_as_is(
    autojump_clock: trio.testing.MockClock, virtual_deadline: None
) -> None:
    class BodyError(Exception):
        pass

    async with FakeBroker() as broker:

        async def failing_body() -> None:
            async with make_client(broker):
                raise BodyError("from the body")

        with pytest.raises(BodyError, match=r"^from the body$"):
            await failing_body()
        conn = broker.connections[0]
        await conn.wait_closed()
        assert isinstance(conn.received[-1], DisconnectPacket)


async def test_client_body_cancellation_is_not_an_error(
    autojump_clock: trio.testing.MockClock, virtual_deadline: None
) -> None:
    async with FakeBroker() as broker:
        with trio.move_on_after(5) as scope:
            async with make_client(broker):
                await trio.sleep_forever()
        assert scope.cancelled_caught
        assert trio.current_time() == 5
        assert isinstance(broker.connections[0].received[-1], DisconnectPacket)


async def test_client_run_cancelled_by_its_nursery_closes_without_disconnect(
    autojump_clock: trio.testing.MockClock, virtual_deadline: None
) -> None:
    # Under nursery.start(client.run) the client belongs to the nursery: cancelling
    # it stops the client at once (aclose() first is the graceful way).
    async with FakeBroker() as broker:
        client = make_client(broker)
        async with trio.open_nursery() as nursery:
            await nursery.start(client.run)
            nursery.cancel_scope.cancel()
        conn = broker.connections[0]
        await conn.wait_closed()
        assert conn.packets(DisconnectPacket) == []
        assert not client.is_connected
        with pytest.raises(NotOpenError, match=CLOSED):
            await client.publish("t", b"x")


async def test_client_background_failure_is_one_mqtt_error(
    autojump_clock: trio.testing.MockClock, virtual_deadline: None
) -> None:
    async with FakeBroker() as broker:

        async def dropped() -> None:
            async with make_client(broker, reconnect=False):
                await broker.connections[0].close()
                await trio.sleep_forever()

        # pytest.raises with a plain class does not match an ExceptionGroup
        with pytest.raises(
            ConnectionLost,
            match=r"^lost the connection to mqtt://broker\.test:1883: "
            r"the broker closed the connection$",
        ) as info:
            await dropped()
        assert not isinstance(info.value, BaseExceptionGroup)
        assert trio.current_time() == 0


async def test_client_broker_disconnect_reason_is_reported(
    autojump_clock: trio.testing.MockClock, virtual_deadline: None
) -> None:
    async with FakeBroker() as broker:

        async def kicked() -> None:
            async with make_client(broker, reconnect=False):
                await broker.connections[0].send(
                    DisconnectPacket(
                        reason_code=ReasonCode.SESSION_TAKEN_OVER,
                        properties=Properties(reason_string="another client"),
                    )
                )
                await trio.sleep_forever()

        with pytest.raises(
            ConnectionLost,
            match=r"^lost the connection to mqtt://broker\.test:1883: "
            r"the broker closed the connection: session taken over "
            r"\(reason code 0x8e\): another client$",
        ):
            await kicked()


async def test_client_run_raises_background_failure(
    autojump_clock: trio.testing.MockClock, virtual_deadline: None
) -> None:
    async with FakeBroker() as broker:
        client = make_client(broker, reconnect=False)

        async def drop_when_connected() -> None:
            conn = await broker.wait_connection(0)
            await conn.wait_connacked()
            await conn.close()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(drop_when_connected)
            with pytest.raises(ConnectionLost):
                await client.run()
        with pytest.raises(
            NotOpenError,
            match=r"^the client stopped: lost the connection to ",
        ):
            await client.publish("t", b"x")


# -- leaks ---------------------------------------------------------------------------------


async def test_client_leaves_no_task_and_no_open_stream(
    autojump_clock: trio.testing.MockClock, virtual_deadline: None
) -> None:
    async with FakeBroker() as broker:
        before = live_tasks()
        async with make_client(broker, keepalive=10) as client:
            await client.subscribe("l", listener=lambda message: None)
            async with client.subscription("s"):
                await broker.publish("l", b"x")
                await broker.publish("s", b"y")
                running = client_task_names(live_tasks() - before)
                assert any(name.startswith("mqtt-supervisor") for name in running)
                assert any(name.startswith("mqtt-keepalive") for name in running)
                assert any(name.startswith("mqtt-dispatch") for name in running)
        await trio.testing.wait_all_tasks_blocked()
        assert client_task_names(live_tasks()) == []
        leftover = {task.name for task in live_tasks() - before}
        assert leftover == set()
        assert all(conn.client_stream.closed for conn in broker.connections)


async def test_client_leaves_nothing_after_reconnects_and_failure(
    autojump_clock: trio.testing.MockClock, virtual_deadline: None
) -> None:
    async with FakeBroker(answer_pings=False) as broker:
        before = live_tasks()
        client = make_client(broker, keepalive=10, reconnect=False)
        with pytest.raises(ConnectionLost):
            await client.run()
        await trio.testing.wait_all_tasks_blocked()
        assert live_tasks() - before == set()
        assert broker.connections[0].client_stream.closed


async def test_client_repr_and_statistics(
    autojump_clock: trio.testing.MockClock, virtual_deadline: None
) -> None:
    async with FakeBroker() as broker:
        client = make_client(broker, password="hunter2")
        assert "hunter2" not in repr(client)
        async with client:
            await client.publish("t", b"abc", qos=1)
            stats = client.statistics()
            assert (stats.connected, stats.connects, stats.reconnects) == (True, 1, 0)
            assert stats.messages_published == 1
            conn = broker.connections[0]
            assert stats.bytes_sent == len(conn.client_stream.written)
            assert stats.bytes_received == len(conn.stream.written)
            assert "hunter2" not in repr(client)


async def test_client_is_exported_by_the_package() -> None:
    assert MqttClient.__module__ == "trio_mqttconn"


async def test_client_public_async_calls_are_checkpoints(
    autojump_clock: trio.testing.MockClock, virtual_deadline: None
) -> None:
    # STYLE 6.1: every public async function is a checkpoint, even on its fast path
    async with FakeBroker() as broker, make_client(broker) as client:
        with trio.testing.assert_checkpoints():
            await client.wait_connected()
        with trio.testing.assert_checkpoints():
            await client.publish("t", b"x")
        async with client.subscription("t") as sub:
            await broker.publish("t", b"queued")
            await trio.testing.wait_all_tasks_blocked()
            with trio.testing.assert_checkpoints():
                await sub.receive()
        await client.aclose()
        with trio.testing.assert_checkpoints():
            await client.aclose()
