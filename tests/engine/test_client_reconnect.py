"""Connecting and reconnecting: backoff, timeouts, refusals, failover, resending.

The autojump clock makes every delay exact: with ``reconnect_jitter=0`` the n-th
retry after a drop happens ``1, 2, 4 ...`` seconds (capped) after the previous one.
"""

from __future__ import annotations

import pytest
import trio
import trio.testing

from tests._fakes import (
    Answer,
    FakeBroker,
    make_client,
    virtual_deadline_fixture,  # noqa: F401 - the virtual_deadline fixture
)
from trio_mqttconn import (
    ConnectError,
    ConnectionLost,
    ConnectTimeout,
    Properties,
    QoS,
    ReasonCode,
)
from trio_mqttconn._packets import (
    DisconnectPacket,
    PubCompPacket,
    PublishPacket,
    PubRelPacket,
    SubscribePacket,
)

pytestmark = pytest.mark.trio

TWO_URIS = ["mqtt://a.test:1883", "mqtt://b.test:1883"]


# -- backoff -------------------------------------------------------------------------


async def test_reconnect_backoff_doubles_up_to_the_cap(
    autojump_clock: trio.testing.MockClock,
    virtual_deadline: None,
) -> None:
    async with (
        FakeBroker() as broker,
        make_client(broker, reconnect_delay=1, max_reconnect_delay=8) as client,
    ):
        broker.script(*[Answer(refuse=True)] * 6)
        await broker.connections[0].close()
        await broker.wait_attempts(8)
        # drop at 0; delays 1, 2, 4, 8, 8, 8, 8
        assert broker.attempt_times() == [0, 1, 3, 7, 15, 23, 31, 39]
        assert [a.outcome for a in broker.attempts] == ["opened"] + ["refused"] * 6 + [
            "opened"
        ]
        await client.wait_connected()
        assert trio.current_time() == 39
        # a connection that stayed up (4 x the delay before it) resets the backoff
        await trio.sleep(32)
        await broker.connections[1].close()
        await broker.wait_attempts(9)
        assert broker.attempts[8].time == 72
        await client.wait_connected()
        assert client.statistics().reconnects == 2


async def test_reconnect_backoff_is_not_reset_by_a_connack_alone(
    autojump_clock: trio.testing.MockClock,
    virtual_deadline: None,
) -> None:
    # A broker that accepts and kicks at once (a duplicate client id: 0x8E) must
    # not get a reconnect every second forever: the delays keep growing.
    async with (
        FakeBroker() as broker,
        make_client(broker, reconnect_delay=1, max_reconnect_delay=8) as client,
    ):
        for index in range(5):
            conn = await broker.wait_connection(index)
            await conn.wait_connacked()
            await conn.send(DisconnectPacket(reason_code=ReasonCode.SESSION_TAKEN_OVER))
        await broker.wait_attempts(6)
        assert broker.attempt_times() == [0, 1, 3, 7, 15, 23]
        await client.wait_connected()


async def test_reconnect_first_delay_is_reconnect_delay(
    autojump_clock: trio.testing.MockClock,
    virtual_deadline: None,
) -> None:
    async with (
        FakeBroker() as broker,
        make_client(broker, reconnect_delay=2.5) as client,
    ):
        await broker.connections[0].close()
        await trio.testing.wait_all_tasks_blocked()
        assert not client.is_connected
        await client.wait_connected()
        assert trio.current_time() == 2.5
        assert broker.attempt_times() == [0, 2.5]


async def test_reconnect_after_a_reset_connection(
    autojump_clock: trio.testing.MockClock,
    virtual_deadline: None,
) -> None:
    async with FakeBroker() as broker, make_client(broker) as client:
        broker.connections[0].abort()
        conn1 = await broker.wait_connection(1)
        assert conn1.opened_at == 1
        await client.wait_connected()
        await client.publish("t", b"after", qos=1)
        assert [p.payload for p in conn1.packets(PublishPacket)] == [b"after"]


async def test_reconnect_after_eof_in_the_middle_of_a_packet(
    autojump_clock: trio.testing.MockClock,
    virtual_deadline: None,
) -> None:
    async with (
        FakeBroker() as broker,
        make_client(broker) as client,
        client.subscription("t") as sub,
    ):
        conn0 = broker.connections[0]
        await conn0.send_partial_then_eof(
            PublishPacket(topic="t", payload=b"cut off"), 4
        )
        conn1 = await broker.wait_connection(1)
        assert conn1.opened_at == 1
        await conn1.wait_for(SubscribePacket)  # the session was lost: re-subscribed
        await broker.publish("t", b"whole")
        assert (await sub.receive()).payload == b"whole"
        assert sub.statistics().delivered == 1


# -- connect timeout ----------------------------------------------------------------


@pytest.mark.parametrize(
    "answer", [Answer(silent=True), Answer(hang=True)], ids=["no-connack", "no-tcp"]
)
async def test_connect_timeout_raises_at_exactly_connect_timeout(
    autojump_clock: trio.testing.MockClock, virtual_deadline: None, answer: Answer
) -> None:
    async with FakeBroker(default_answer=answer) as broker:
        with pytest.raises(
            ConnectTimeout,
            match=r"^connecting to mqtt://broker\.test:1883 took longer than 5 s "
            r"\(connect_timeout\)$",
        ) as info:
            async with make_client(broker, connect_timeout=5):
                pytest.fail(
                    "connected to a broker that never answers"
                )  # pragma: no cover
        assert trio.current_time() == 5
        assert isinstance(info.value, TimeoutError)
        assert info.value.reason_code is None
        assert len(broker.attempts) == 1
        await trio.testing.wait_all_tasks_blocked()
        for conn in broker.connections:
            assert conn.client_stream.closed


async def test_connect_timeout_bounds_each_reconnect_attempt(
    autojump_clock: trio.testing.MockClock,
    virtual_deadline: None,
) -> None:
    async with FakeBroker() as broker, make_client(broker, connect_timeout=5) as client:
        broker.script(Answer(silent=True))
        await broker.connections[0].close()
        conn1 = await broker.wait_connection(1)
        await conn1.wait_closed()
        assert (conn1.opened_at, conn1.closed_at) == (1, 6)
        await client.wait_connected()
        # the failed attempt doubled the delay: 6 + 2
        assert broker.attempt_times() == [0, 1, 8]
        assert trio.current_time() == 8


# -- refused connections -------------------------------------------------------------


async def test_connect_refused_connack_raises_connect_error_at_once(
    autojump_clock: trio.testing.MockClock,
    virtual_deadline: None,
) -> None:
    async with FakeBroker(
        default_answer=Answer(reason_code=ReasonCode.BAD_USER_NAME_OR_PASSWORD)
    ) as broker:
        with pytest.raises(
            ConnectError,
            match=r"^mqtt://broker\.test:1883 refused the connection: "
            r"bad user name or password \(reason code 0x86\); "
            r"check the user name and password$",
        ) as info:
            async with make_client(broker, username="user", password="s3cret-pw"):
                pytest.fail("connected with bad credentials")  # pragma: no cover
        assert info.value.reason_code is ReasonCode.BAD_USER_NAME_OR_PASSWORD
        assert "s3cret-pw" not in str(info.value)
        assert trio.current_time() == 0
        assert len(broker.attempts) == 1
        connect = broker.connections[0].connect
        assert connect is not None
        assert (connect.username, connect.password) == ("user", b"s3cret-pw")


async def test_connect_refused_tcp_raises_connect_error(
    autojump_clock: trio.testing.MockClock,
    virtual_deadline: None,
) -> None:
    async with FakeBroker(default_answer=Answer(refuse=True)) as broker:
        with pytest.raises(
            ConnectError,
            match=r"^connection to mqtt://broker\.test:1883 failed: \[Errno 111\] "
            r"fake broker refused the connection to broker\.test$",
        ) as info:
            async with make_client(broker):
                pytest.fail("connected to a refusing broker")  # pragma: no cover
        assert info.value.reason_code is None
        assert isinstance(info.value.__cause__, ConnectionRefusedError)
        assert len(broker.attempts) == 1


@pytest.mark.parametrize(
    "reason", [ReasonCode.BAD_USER_NAME_OR_PASSWORD, ReasonCode.NOT_AUTHORIZED]
)
async def test_reconnect_refused_credentials_end_the_client(
    autojump_clock: trio.testing.MockClock, virtual_deadline: None, reason: ReasonCode
) -> None:
    async with FakeBroker() as broker:

        async def refused_on_reconnect() -> None:
            async with make_client(broker):
                broker.script(Answer(reason_code=reason))
                await broker.connections[0].close()
                await trio.sleep_forever()

        with pytest.raises(ConnectError) as info:
            await refused_on_reconnect()
        assert info.value.reason_code is reason
        assert trio.current_time() == 1
        assert len(broker.attempts) == 2


async def test_reconnect_retries_a_temporarily_unavailable_broker(
    autojump_clock: trio.testing.MockClock,
    virtual_deadline: None,
) -> None:
    async with FakeBroker() as broker, make_client(broker) as client:
        broker.script(
            Answer(reason_code=ReasonCode.SERVER_UNAVAILABLE),
            Answer(reason_code=ReasonCode.SERVER_BUSY),
        )
        await broker.connections[0].close()
        await broker.wait_attempts(4)
        await client.wait_connected()
        assert broker.attempt_times() == [0, 1, 3, 7]


async def test_reconnect_disabled_raises_connection_lost(
    autojump_clock: trio.testing.MockClock,
    virtual_deadline: None,
) -> None:
    async with FakeBroker() as broker:

        async def dropped() -> None:
            async with make_client(broker, reconnect=False):
                await broker.connections[0].close()
                await trio.sleep_forever()

        with pytest.raises(
            ConnectionLost,
            match=r"^lost the connection to mqtt://broker\.test:1883: "
            r"the broker closed the connection$",
        ):
            await dropped()
        assert len(broker.attempts) == 1


# -- failover ------------------------------------------------------------------------


async def test_failover_connects_to_the_second_uri(
    autojump_clock: trio.testing.MockClock,
    virtual_deadline: None,
) -> None:
    async with (
        FakeBroker(refuse_hosts={"a.test"}) as broker,
        make_client(broker, TWO_URIS) as client,
    ):
        assert trio.current_time() == 0
        assert [(a.endpoint.host, a.outcome) for a in broker.attempts] == [  # type: ignore[attr-defined]
            ("a.test", "refused"),
            ("b.test", "opened"),
        ]
        # reconnecting starts with the last good URI
        broker.refuse_hosts.clear()
        await broker.connections[0].close()
        await client.wait_connected()
        assert broker.attempts[2].endpoint.host == "b.test"  # type: ignore[attr-defined]
        assert broker.attempts[2].time == 1


async def test_failover_cycles_through_the_uris_while_reconnecting(
    autojump_clock: trio.testing.MockClock,
    virtual_deadline: None,
) -> None:
    async with FakeBroker() as broker, make_client(broker, TWO_URIS) as client:
        broker.refuse_hosts.add("a.test")
        broker.script(Answer(refuse=True))  # b.test refused once, too
        await broker.connections[0].close()
        await broker.wait_attempts(5)
        await client.wait_connected()
        hosts = [(a.time, a.endpoint.host, a.outcome) for a in broker.attempts]  # type: ignore[attr-defined]
        assert hosts == [
            (0, "a.test", "opened"),
            (1, "a.test", "refused"),
            (1, "b.test", "refused"),
            (3, "a.test", "refused"),
            (3, "b.test", "opened"),
        ]


@pytest.mark.parametrize("on_reconnect", [False, True], ids=["first", "reconnect"])
async def test_failover_goes_on_past_a_fatal_connack_refusal(
    autojump_clock: trio.testing.MockClock,
    virtual_deadline: None,
    on_reconnect: bool,
) -> None:
    # #9 section 5: "A fatal refusal from one URI does not stop failover": node a
    # refuses this client (not authorized there), node b takes it.
    async with FakeBroker() as broker:
        if not on_reconnect:
            broker.script(Answer(reason_code=ReasonCode.NOT_AUTHORIZED))
        async with make_client(broker, TWO_URIS) as client:
            if on_reconnect:
                broker.script(Answer(reason_code=ReasonCode.NOT_AUTHORIZED))
                await broker.connections[-1].close()
                await broker.wait_attempts(3)
            await client.wait_connected()
            assert client.is_connected
            hosts = [a.endpoint.host for a in broker.attempts]  # type: ignore[attr-defined]
            assert hosts[-2:] == ["a.test", "b.test"]


async def test_failover_all_uris_failing_raises_the_last_error(
    autojump_clock: trio.testing.MockClock,
    virtual_deadline: None,
) -> None:
    async with FakeBroker(refuse_hosts={"a.test", "b.test"}) as broker:
        with pytest.raises(
            ConnectError,
            match=r"^connection to mqtt://b\.test:1883 failed: \[Errno 111\] "
            r"fake broker refused the connection to b\.test$",
        ):
            async with make_client(broker, TWO_URIS):
                pytest.fail("connected to refusing brokers")  # pragma: no cover
        assert [a.endpoint.host for a in broker.attempts] == ["a.test", "b.test"]  # type: ignore[attr-defined]
        assert trio.current_time() == 0


# -- what happens to data across a reconnect -------------------------------------------


async def test_reconnect_resends_unacked_publishes_when_session_present(
    autojump_clock: trio.testing.MockClock,
    virtual_deadline: None,
) -> None:
    # [v5:MQTT-4.4.0-1] [v5:MQTT-3.3.1-1] [v5:MQTT-4.6.0-1]
    done: list[bytes] = []

    async def publish(client_payload: bytes) -> None:
        await client.publish("t", client_payload, qos=1)
        done.append(client_payload)

    async with (
        FakeBroker(ack_publishes=False) as broker,
        make_client(broker, clean_start=False, session_expiry=3600) as client,
    ):
        conn0 = broker.connections[0]
        async with trio.open_nursery() as nursery:
            for index in range(3):
                nursery.start_soon(publish, f"m{index}".encode())
            await conn0.wait_for(PublishPacket, count=3)
            originals = conn0.packets(PublishPacket)
            await trio.testing.wait_all_tasks_blocked()
            assert done == []
            assert client.statistics().inflight == 3
            broker.script(Answer(session_present=True))
            broker.ack_publishes = True
            await conn0.close()
            conn1 = await broker.wait_connection(1)
        assert trio.current_time() == 1
        assert [(p.packet_id, p.payload, p.dup) for p in originals] == [
            (p.packet_id, p.payload, False) for p in originals
        ]
        resent = conn1.packets(PublishPacket)
        assert [(p.packet_id, p.topic, p.payload, p.qos, p.dup) for p in resent] == [
            (p.packet_id, p.topic, p.payload, p.qos, True) for p in originals
        ]
        assert sorted(done) == [b"m0", b"m1", b"m2"]
        assert conn1.packets(SubscribePacket) == []
        assert client.statistics().inflight == 0


async def test_reconnect_resends_pubrel_not_publish_when_session_present(
    autojump_clock: trio.testing.MockClock,
    virtual_deadline: None,
) -> None:
    # [v311:MQTT-4.3.3-1] after PUBREL the PUBLISH is never sent again, only PUBREL
    async with (
        FakeBroker(complete_publishes=False) as broker,
        make_client(broker, clean_start=False, session_expiry=3600) as client,
    ):
        conn0 = broker.connections[0]
        async with trio.open_nursery() as nursery:
            nursery.start_soon(lambda: client.publish("t", b"once", qos=2))
            release = await conn0.wait_for(PubRelPacket)
            broker.script(Answer(session_present=True))
            broker.complete_publishes = True
            await conn0.close()
            conn1 = await broker.wait_connection(1)
        assert conn1.packets(PublishPacket) == []
        assert [p.packet_id for p in conn1.packets(PubRelPacket)] == [release.packet_id]
        assert len(broker.messages) == 1
        assert client.statistics().inflight == 0


async def test_reconnect_without_session_republishes_and_resubscribes(
    autojump_clock: trio.testing.MockClock,
    virtual_deadline: None,
) -> None:
    done: list[bytes] = []
    async with (
        FakeBroker(ack_publishes=False) as broker,
        make_client(broker) as client,
        client.subscription("s/#", qos=1) as sub,
    ):
        conn0 = broker.connections[0]

        async def publish() -> None:
            await client.publish("p", b"again", qos=1)
            done.append(b"again")

        async with trio.open_nursery() as nursery:
            nursery.start_soon(publish)
            await conn0.wait_for(PublishPacket)
            broker.ack_publishes = True
            await conn0.close()  # the next CONNACK says session_present=False
            conn1 = await broker.wait_connection(1)
            await conn1.wait_for(SubscribePacket)
        assert done == [b"again"]
        assert [(p.topic, p.payload) for p in conn1.packets(PublishPacket)] == [
            ("p", b"again")
        ]
        [subscribe] = conn1.packets(SubscribePacket)
        assert [(s.filter, s.qos) for s in subscribe.subscriptions] == [("s/#", QoS(1))]
        await broker.publish("s/1", b"routed", qos=1)
        message = await sub.receive()
        assert (message.topic, message.payload) == ("s/1", b"routed")


async def test_republishing_cut_short_by_a_drop_goes_on_after_the_next_connect(
    autojump_clock: trio.testing.MockClock,
    virtual_deadline: None,
) -> None:
    # The broker lost the session and allows one message in flight: the client
    # republishes the first, waits for the quota, and loses that connection too.
    # The two it had not published again yet are not lost with it.
    done: list[bytes] = []

    async def publish(payload: bytes) -> None:
        await client.publish("t", payload, qos=1)
        done.append(payload)

    one_at_a_time = Answer(properties=Properties(receive_maximum=1))
    async with (
        FakeBroker(ack_publishes=False) as broker,
        make_client(broker) as client,
    ):
        conn0 = broker.connections[0]
        async with trio.open_nursery() as nursery:
            for index in range(3):
                nursery.start_soon(publish, f"m{index}".encode())
                await conn0.wait_for(PublishPacket, count=index + 1)
            broker.script(one_at_a_time, one_at_a_time)
            await conn0.close()
            conn1 = await broker.wait_connection(1)
            await conn1.wait_for(PublishPacket)
            await trio.testing.wait_all_tasks_blocked()
            assert len(conn1.packets(PublishPacket)) == 1  # the quota is used up
            broker.ack_publishes = True
            await conn1.close()
            conn2 = await broker.wait_connection(2)
        assert sorted(done) == [b"m0", b"m1", b"m2"]
        republished = [p.payload for p in conn2.packets(PublishPacket)]
        assert republished == [b"m0", b"m1", b"m2"]
        assert client.statistics().inflight == 0


async def test_reconnect_qos2_received_before_the_drop_counts_as_delivered(
    autojump_clock: trio.testing.MockClock,
    virtual_deadline: None,
) -> None:
    # The broker had PUBRECed the message, then lost the session: the publish
    # completes and the message is not sent a second time (exactly once).
    async with (
        FakeBroker(complete_publishes=False) as broker,
        make_client(broker) as client,
    ):
        conn0 = broker.connections[0]
        async with trio.open_nursery() as nursery:
            nursery.start_soon(lambda: client.publish("t", b"exactly once", qos=2))
            await conn0.wait_for(PubRelPacket)
            await conn0.close()
            await broker.wait_connection(1)
        conn1 = broker.connections[1]
        assert conn1.packets(PublishPacket) == []
        assert len(broker.messages) == 1
        assert client.statistics().inflight == 0


async def test_reconnect_publish_waits_for_the_connection(
    autojump_clock: trio.testing.MockClock,
    virtual_deadline: None,
) -> None:
    async with FakeBroker() as broker, make_client(broker) as client:
        broker.script(Answer(refuse=True))
        await broker.connections[0].close()
        await trio.testing.wait_all_tasks_blocked()
        assert not client.is_connected
        await client.publish("t", b"late", qos=1)
        assert trio.current_time() == 3
        assert [p.payload for p in broker.connections[1].packets(PublishPacket)] == [
            b"late"
        ]


async def test_reconnect_publish_wait_is_bounded_by_the_callers_scope(
    autojump_clock: trio.testing.MockClock,
    virtual_deadline: None,
) -> None:
    async with FakeBroker() as broker, make_client(broker) as client:
        broker.script(*[Answer(refuse=True)] * 5)
        await broker.connections[0].close()
        await trio.testing.wait_all_tasks_blocked()
        assert not client.is_connected
        with trio.move_on_after(2) as scope:
            await client.publish("t", b"late", qos=1)
        assert scope.cancelled_caught
        assert trio.current_time() == 2
        await client.wait_connected()
        assert trio.current_time() == 63
        await client.publish("t", b"later", qos=1)
        # cancelled before the client took it: never sent
        payloads = [
            p.payload
            for conn in broker.connections
            for p in conn.packets(PublishPacket)
        ]
        assert payloads == [b"later"]


async def test_reconnect_drop_in_the_middle_of_a_publish_resends_it_whole(
    autojump_clock: trio.testing.MockClock,
    virtual_deadline: None,
) -> None:
    # a write broken half way is never continued: the packet goes again, whole
    async with FakeBroker() as broker, make_client(broker) as client:
        conn0 = broker.connections[0]
        conn0.client_stream.drop_after(3)
        await client.publish("topic/x", b"payload", qos=1)
        assert trio.current_time() == 1
        assert conn0.packets(PublishPacket) == []
        assert conn0.protocol_error is None
        conn1 = broker.connections[1]
        assert [(p.topic, p.payload) for p in conn1.packets(PublishPacket)] == [
            ("topic/x", b"payload")
        ]


async def test_reconnect_pubcomp_after_reconnect_completes_publish(
    autojump_clock: trio.testing.MockClock,
    virtual_deadline: None,
) -> None:
    async with (
        FakeBroker(complete_publishes=False) as broker,
        make_client(broker, clean_start=False, session_expiry=60) as client,
    ):
        conn0 = broker.connections[0]
        async with trio.open_nursery() as nursery:
            nursery.start_soon(lambda: client.publish("t", b"x", qos=2))
            release = await conn0.wait_for(PubRelPacket)
            broker.script(Answer(session_present=True))
            await conn0.close()
            conn1 = await broker.wait_connection(1)
            await conn1.wait_for(PubRelPacket)
            await trio.testing.wait_all_tasks_blocked()
            assert client.statistics().inflight == 1
            await conn1.send(PubCompPacket(packet_id=release.packet_id))
        assert client.statistics().inflight == 0


async def test_reconnect_after_a_malformed_packet_from_the_broker(
    autojump_clock: trio.testing.MockClock,
    virtual_deadline: None,
) -> None:
    # [v5:MQTT-4.13] malformed input: DISCONNECT with the reason code, then close
    async with FakeBroker() as broker, make_client(broker) as client:
        conn0 = broker.connections[0]
        await conn0.send_raw(b"\x00\x00")  # packet type 0 is reserved
        await conn0.wait_closed()
        [disconnect] = conn0.packets(DisconnectPacket)
        assert disconnect.reason_code in (
            ReasonCode.MALFORMED_PACKET,
            ReasonCode.PROTOCOL_ERROR,
        )
        await client.wait_connected()
        assert broker.attempt_times() == [0, 1]
