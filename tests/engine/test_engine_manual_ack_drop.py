"""A manual_ack message that is never handed out releases its acknowledgement (#9).

A parked message of a ``manual_ack`` subscription that is unsubscribed (or
closed) before the consumer took it keeps its acknowledgement withheld for ever.

Why: `Router.deliver` gives a manual_ack copy an acker (`make_ack`: hold.waiting += 1)
and, when the channel is full, also parks it (`Subscription._hold_last`: waiting += 1).
`Subscription._close` -> `_drop_parked` -> `_let_go` releases the hold once, so
waiting stays 1; nobody can call ``ack()`` on a message that was never handed out.
Acknowledgements go out in arrival order, so every later PUBACK on the connection
waits behind it, and the broker stops at our Receive Maximum. The same holds for
manual_ack messages still queued in the channel when `Subscription._release`
clears it (``async with client.subscription(..., manual_ack=True)`` left early).

The first test failed on 1403f5a (fixed in 971e8f3: `_drop_parked` and `_release`
acknowledge the copies they throw away); the second, a synchronous listener's
message left in the hub's queue, failed on 8fbbbf5.
"""

from __future__ import annotations

import pytest
import trio
import trio.testing

from tests._fakes import (
    FakeBroker,
    make_client,
    virtual_deadline_fixture,  # noqa: F401 - the virtual_deadline fixture
)
from trio_mqttconn import Message, ProtocolVersion, QoS
from trio_mqttconn._packets import PubAckPacket, PublishPacket, encode_packet

pytestmark = pytest.mark.trio


async def test_parked_manual_ack_message_dropped_at_unsubscribe_holds_no_ack(
    autojump_clock: trio.testing.MockClock, virtual_deadline: None
) -> None:
    async with FakeBroker() as broker, make_client(broker) as client:
        jobs = await client.subscribe("m", qos=1, manual_ack=True, buffer=1)
        other = await client.subscribe("o", qos=1)
        conn = broker.connections[0]
        await conn.deliver("m", b"1", qos=1)  # in the channel
        await conn.deliver("m", b"2", qos=1)  # parked beside it
        await trio.testing.wait_all_tasks_blocked()
        first = jobs.receive_nowait()
        first.ack()
        await jobs.unsubscribe()  # "2" was never handed out
        late = await conn.deliver("o", b"x", qos=1)
        assert (await other.receive()).payload == b"x"
        await trio.testing.wait_all_tasks_blocked()
        acked = [p.packet_id for p in conn.packets(PubAckPacket)]
        assert late.packet_id in acked, acked


async def test_hub_manual_ack_message_of_an_ended_listener_holds_no_ack(
    autojump_clock: trio.testing.MockClock, virtual_deadline: None
) -> None:
    # A synchronous listener's messages wait in the hub's queue; one whose
    # subscription ended before the hub's task reached it is never handed out.
    # On 8fbbbf5 its manual hold stayed, and every later PUBACK waited behind it.
    seen: list[bytes] = []
    async with FakeBroker() as broker, make_client(broker) as client:

        def listener(message: Message) -> None:
            seen.append(message.payload)
            message.ack()
            # What unsubscribe() does first, synchronously (white box): message
            # "2", behind this one in the hub's queue, is never handed out.
            client._router.unregister(jobs)
            jobs._release()

        jobs = await client.subscribe("m", qos=1, manual_ack=True, listener=listener)
        other = await client.subscribe("o", qos=1)
        conn = broker.connections[0]
        await conn.send_raw(
            b"".join(
                encode_packet(
                    PublishPacket(
                        topic="m",
                        payload=b"%d" % (i - 100),
                        qos=QoS.AT_LEAST_ONCE,
                        packet_id=i,
                    ),
                    ProtocolVersion.V5,
                )
                for i in (101, 102)
            )
        )
        late = await conn.deliver("o", b"x", qos=1)
        assert (await other.receive()).payload == b"x"
        await trio.testing.wait_all_tasks_blocked()
        assert seen == [b"1"]
        acked = [p.packet_id for p in conn.packets(PubAckPacket)]
        assert acked == [101, 102, late.packet_id]
