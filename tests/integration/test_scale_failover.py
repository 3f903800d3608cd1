"""Failover across two bridged mosquitto nodes: what the client guarantees (#11).

Node A and node B are bridged both ways for the test's topics
(``mosquitto_factory.bridged_pair``); every client is given ``[A, B]``. A is killed
with SIGKILL while messages flow, and both clients move to B.

What a bridge can and cannot guarantee (docs/deployment.rst says the same):

* a QoS 1 message the publisher sent to A but whose PUBACK it never saw is still in
  the publisher's session: the client publishes it again on B. Nothing is lost;
  the subscriber may get it twice (QoS 1 is at least once).
* a message A delivered to the subscriber before it died has arrived.
* a message A *acknowledged* but had neither delivered nor forwarded over the
  bridge when it died is lost with A. The publisher's ``publish()`` returned; no
  client can get it back. Only a cluster that replicates before acknowledging
  (or A restarted with its persistence file) closes that gap.
* messages that reach B for a subscriber that has no session on B yet are
  dropped by B: a subscriber that must not miss any keeps a session on B in
  advance (same client id, ``clean_start=False``, a session expiry, the same
  subscriptions in the same order). B then queues what the bridge forwards while
  the subscriber lives on A, which it receives again after the failover
  (duplicates, counted below).

``test_failover_loses_no_message_whose_publish_returned`` asserts exactly the
guarantee that remains: every QoS 1 message whose ``publish()`` returned arrives.
It keeps the unrecoverable case out by construction, deterministically: the
messages in flight when A dies have their PUBACKs swallowed by a proxy (so their
``publish()`` has not returned, as in a real crash between receive and ack), and A's
deliveries of those messages to the subscriber are swallowed too (so they can only
come from B). ``test_failover_restores_the_subscribers_filters`` shows the other
half: with no session on B, the client subscribes again there by itself. The last
test shows that a resumed session's stale subscription (of an earlier process) does
not route its messages, by its identifier, to another subscription of this one.

No sleeps: waiting is on received messages and connection events only.
"""

from __future__ import annotations

import uuid
from collections import Counter
from typing import TYPE_CHECKING

import anyio
import pytest

from tests._faultproxy import FaultProxy
from trio_mqttconn import MqttClient, ProtocolVersion, QoS

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from trio_mqttconn import Subscription
    from trio_mqttconn.testing import Mosquitto, MosquittoFactory

pytestmark = [pytest.mark.anyio, pytest.mark.broker]

TIMEOUT = 20
QOS1 = QoS.AT_LEAST_ONCE
V311 = ProtocolVersion.V311
V5 = ProtocolVersion.V5
#: Messages per phase: before the kill, in flight at the kill, after it.
PHASE = 20


@pytest.fixture(params=[V311, V5], ids=["v311", "v5"])
def protocol(request: pytest.FixtureRequest) -> ProtocolVersion:
    """Failover works the same on both protocol versions."""
    return ProtocolVersion(request.param)


class Tally:
    """Payloads received so far (as ints), and a way to wait for a set of them."""

    def __init__(self) -> None:
        self.received: list[int] = []
        self._changed = anyio.Event()

    async def collect(self, sub: Subscription) -> None:
        """Count every message of *sub* (a task; ends with the subscription)."""
        async for message in sub:
            self.received.append(int(message.payload))
            changed, self._changed = self._changed, anyio.Event()
            changed.set()

    async def wait_for(self, numbers: Iterable[int]) -> None:
        """Return once every one of *numbers* was received."""
        wanted = set(numbers)
        while not wanted <= set(self.received):
            await self._changed.wait()


def fast_failover(
    uris: list[str],
    protocol: ProtocolVersion,
    *,
    client_id: str | None = None,
    on_connect: Callable[[bool], None] | None = None,
) -> MqttClient:
    """A client given both nodes that tries again quickly after losing one.

    With a *client_id* its session outlives the connection (``clean_start=False``,
    five minutes of session expiry), as a standby session on B needs.
    """
    return MqttClient(
        uris,
        protocol=protocol,
        client_id=client_id,
        clean_start=client_id is None,
        session_expiry=0 if client_id is None else 300,
        reconnect_delay=0.05,
        max_reconnect_delay=0.4,
        on_connect=on_connect,
    )


async def test_failover_restores_the_subscribers_filters(
    mosquitto_factory: MosquittoFactory, unique_topic: str, protocol: ProtocolVersion
) -> None:
    # Node B has no session for the subscriber: CONNACK session present = 0 there,
    # so the client subscribes again to every filter it holds, shared ones too.
    a, b = mosquitto_factory.bridged_pair(topics=(f"{unique_topic}/#",))
    plain_filter = f"{unique_topic}/plain/#"
    shared_filter = f"$share/group/{unique_topic}/shared/#"
    reconnected = anyio.Event()

    def on_connect(again: bool) -> None:
        if again:
            reconnected.set()

    with anyio.fail_after(TIMEOUT):
        async with (
            fast_failover(
                [a.uri, b.uri], protocol, on_connect=on_connect
            ) as subscriber,
            subscriber.subscription(plain_filter, qos=QOS1) as plain,
            subscriber.subscription(shared_filter, qos=QOS1) as shared,
            fast_failover([a.uri, b.uri], protocol) as publisher,
        ):
            await publisher.publish(f"{unique_topic}/plain/x", b"1", qos=QOS1)
            await publisher.publish(f"{unique_topic}/shared/x", b"2", qos=QOS1)
            assert (await plain.receive()).payload == b"1"
            assert (await shared.receive()).payload == b"2"

            a.stop(kill=True)
            await reconnected.wait()
            await subscriber.wait_connected()  # ready: the filters are asked again
            connack = subscriber.connack
            assert connack is not None
            assert not connack.session_present
            # The subscriber's own message comes after its SUBSCRIBEs on B.
            await subscriber.publish(f"{unique_topic}/plain/own", b"3", qos=QOS1)
            assert (await plain.receive()).payload == b"3"
            # The publisher moved too (its publish waits for the new connection).
            await publisher.publish(f"{unique_topic}/plain/x", b"4", qos=QOS1)
            await publisher.publish(f"{unique_topic}/shared/x", b"5", qos=QOS1)
            plain_message = await plain.receive()
            shared_message = await shared.receive()
        stats = (subscriber.statistics(), publisher.statistics())

    assert (plain_message.topic, plain_message.payload) == (
        f"{unique_topic}/plain/x",
        b"4",
    )
    assert (shared_message.topic, shared_message.payload) == (
        f"{unique_topic}/shared/x",
        b"5",
    )
    assert [s.reconnects for s in stats] == [1, 1]


async def test_failover_loses_no_message_whose_publish_returned(
    mosquitto_factory: MosquittoFactory, unique_topic: str, protocol: ProtocolVersion
) -> None:
    a, b = mosquitto_factory.bridged_pair(topics=(f"{unique_topic}/#",))
    topic = f"{unique_topic}/orders"
    subscriber_id = f"sub-{uuid.uuid4().hex[:12]}"
    first, in_flight, after = (
        range(PHASE),
        range(PHASE, 2 * PHASE),
        range(2 * PHASE, 3 * PHASE),
    )
    tally = Tally()
    seen_by_a = Tally()
    killed = anyio.Event()
    all_returned = anyio.Event()
    returned_before_kill: list[int] = []
    returned_after_kill: list[int] = []

    with anyio.fail_after(TIMEOUT):
        # The subscriber's standby session on B: same client id and the same
        # subscriptions in the same order (so the same subscription identifiers).
        async with fast_failover([b.uri], protocol, client_id=subscriber_id) as standby:
            await standby.subscribe(f"{unique_topic}/#", qos=QOS1)

        async with (
            FaultProxy(a.port) as to_a_pub,
            FaultProxy(a.port) as to_a_sub,
            fast_failover(
                [to_a_sub.uri, b.uri], protocol, client_id=subscriber_id
            ) as subscriber,
            subscriber.subscription(f"{unique_topic}/#", qos=QOS1) as sub,
            fast_failover([to_a_pub.uri, b.uri], protocol) as publisher,
            anyio.create_task_group() as tg,
        ):
            tg.start_soon(tally.collect, sub)

            # 1. Both on A; every message arrives from A.
            for number in first:
                await publisher.publish(topic, str(number), qos=QOS1)
            await tally.wait_for(first)

            # 2. A takes the next messages but its PUBACKs and its deliveries to
            #    the subscriber vanish (the proxies read and drop them): the
            #    publisher still holds every one of them, unacknowledged.
            to_a_pub.blackhole("down")
            to_a_sub.blackhole("down")

            async def publish(number: int) -> None:
                await publisher.publish(topic, str(number), qos=QOS1)
                if killed.is_set():
                    returned_after_kill.append(number)
                    if len(returned_after_kill) == PHASE:
                        all_returned.set()
                else:
                    returned_before_kill.append(number)

            async with (
                MqttClient(a.uri, protocol=protocol) as observer,
                observer.subscription(topic, qos=QOS1) as on_a,
                anyio.create_task_group() as observing,
            ):
                observing.start_soon(seen_by_a.collect, on_a)
                for number in in_flight:
                    tg.start_soon(publish, number)
                await seen_by_a.wait_for(in_flight)  # A has them all
                observing.cancel_scope.cancel()

            # 3. Node A dies (SIGKILL: nothing saved); its connections reset.
            a.stop(kill=True)
            killed.set()
            for proxy in (to_a_pub, to_a_sub):
                proxy.refuse()
                proxy.drop()

            # 4. Both move to B. The publisher publishes again what A never
            #    acknowledged; new messages go to B.
            for number in after:
                await publisher.publish(topic, str(number), qos=QOS1)
            await tally.wait_for([*first, *in_flight, *after])
            await all_returned.wait()  # B acknowledged what was published again
            tg.cancel_scope.cancel()
        stats = (subscriber.statistics(), publisher.statistics())
        connack = subscriber.connack

    assert returned_before_kill == []  # their PUBACKs never came from A
    assert sorted(returned_after_kill) == list(in_flight)  # B's PUBACKs did
    copies = Counter(tally.received)
    assert set(copies) == {*first, *in_flight, *after}  # nothing lost
    # Duplicates come only from messages that were on A: once from A (or from the
    # publisher's resend), once from B's standby session via the bridge.
    assert all(copies[n] == 1 for n in after), copies
    assert max(copies.values()) <= 2, copies
    assert [s.reconnects for s in stats] == [1, 1]
    assert connack is not None
    assert connack.session_present  # B kept the standby session's subscription


async def test_resumed_session_does_not_route_a_stale_subscription_by_its_identifier(
    mosquitto: Mosquitto, unique_topic: str
) -> None:
    # The session on a node outlives the process that made it (a restart with the
    # same client id and clean_start=False, or a standby session): the broker keeps
    # its subscriptions with *their* identifiers, which this process gives out anew.
    client_id = f"stable-{uuid.uuid4().hex[:12]}"
    old_filter, new_filter = f"{unique_topic}/old/#", f"{unique_topic}/new/#"
    with anyio.fail_after(TIMEOUT):
        async with MqttClient(
            mosquitto.uri, client_id=client_id, clean_start=False, session_expiry=60
        ) as before:
            await before.subscribe(old_filter, qos=QOS1)  # identifier 1
        async with (
            MqttClient(
                mosquitto.uri, client_id=client_id, clean_start=False, session_expiry=60
            ) as after,
            after.subscription(new_filter, qos=QOS1) as new,  # identifier 1 again
        ):
            connack = after.connack
            assert connack is not None
            assert connack.session_present
            await after.publish(f"{unique_topic}/old/x", b"old", qos=QOS1)
            await after.publish(f"{unique_topic}/new/x", b"new", qos=QOS1)
            first = await new.receive()
            await after.unsubscribe_filters([old_filter])
    assert (first.topic, first.payload) == (f"{unique_topic}/new/x", b"new")
