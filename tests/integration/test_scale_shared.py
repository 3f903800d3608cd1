"""Shared subscriptions against the real mosquitto: one group, several consumers (#11).

``$share/<group>/<filter>`` makes the broker hand each matching message to *one*
member of the group (MQTT 5; mosquitto also accepts it from MQTT 3.1.1 clients).
The client subscribes with the whole ``$share/...`` filter but routes what arrives
by the inner filter: a received message carries the topic it was published to.

"Exactly one member" is shown without sleeps: every member also subscribes to a
plain fence topic that the producer publishes last. One publisher's QoS 1 messages
reach a client in order ([v5:MQTT-4.6.0-6]), so once a member has its fence it has
every group message the broker gave it.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

import anyio
import anyio.abc
import pytest

from trio_mqttconn import MqttClient, ProtocolVersion, QoS

if TYPE_CHECKING:
    from trio_mqttconn import Message, Subscription
    from trio_mqttconn.testing import Mosquitto

pytestmark = [pytest.mark.anyio, pytest.mark.broker]

TIMEOUT = 20
QOS1 = QoS.AT_LEAST_ONCE
V311 = ProtocolVersion.V311
V5 = ProtocolVersion.V5


@pytest.fixture(params=[V311, V5], ids=["v311", "v5"])
def protocol(request: pytest.FixtureRequest) -> ProtocolVersion:
    """Shared subscriptions work on both protocol versions with mosquitto."""
    return ProtocolVersion(request.param)


async def take_until_fence(
    sub: Subscription, fence: Subscription, into: list[Message]
) -> None:
    """Move *sub*'s messages into *into* until *fence* has delivered its message.

    The fence comes after every earlier message of the same publisher to this
    client, so whatever *sub* holds once it arrived is all it will ever get.
    """
    await fence.receive()
    while True:
        try:
            into.append(sub.receive_nowait())
        except anyio.WouldBlock:
            return


async def run_group(
    uri: str,
    protocol: ProtocolVersion,
    topic: str,
    members: int,
    count: int,
) -> list[list[Message]]:
    """Publish *count* QoS 1 messages to a group of *members* clients; what each got."""
    group = f"$share/workers/{topic}/#"
    fence_topic = f"{topic}-fence"
    received: list[list[Message]] = [[] for _ in range(members)]

    async def member(
        index: int,
        *,
        task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        async with (
            MqttClient(uri, protocol=protocol, client_id=f"w{index}-{topic}") as client,
            client.subscription(group, qos=QOS1, buffer=count) as sub,
            client.subscription(fence_topic, qos=QOS1) as fence,
        ):
            assert sub.topic_filter == group
            task_status.started()
            await take_until_fence(sub, fence, received[index])

    async with anyio.create_task_group() as tg:
        for index in range(members):
            await tg.start(member, index)
        async with MqttClient(uri, protocol=protocol) as producer:
            for number in range(count):
                await producer.publish(f"{topic}/job/{number}", str(number), qos=QOS1)
            await producer.publish(fence_topic, b"", qos=QOS1)
    return received


@pytest.mark.parametrize("members", [2, 4])
async def test_shared_group_gives_each_message_to_exactly_one_member(
    mosquitto: Mosquitto, unique_topic: str, protocol: ProtocolVersion, members: int
) -> None:
    count = 60 * members
    with anyio.fail_after(TIMEOUT):
        received = await run_group(
            mosquitto.uri, protocol, unique_topic, members, count
        )
    everything = Counter(m.payload for got in received for m in got)
    assert sorted(int(p) for p in everything) == list(range(count))
    assert max(everything.values()) == 1, "a message reached two members"
    # mosquitto picks members in turn: every member carries part of the load
    assert all(got for got in received), [len(got) for got in received]


async def test_shared_message_has_the_published_topic_not_the_filter(
    mosquitto: Mosquitto, unique_topic: str, protocol: ProtocolVersion
) -> None:
    with anyio.fail_after(TIMEOUT):
        received = await run_group(mosquitto.uri, protocol, unique_topic, 1, 3)
    [messages] = received
    assert [(m.topic, m.payload, m.qos) for m in messages] == [
        (f"{unique_topic}/job/{n}", str(n).encode(), QOS1) for n in range(3)
    ]


async def test_shared_and_plain_subscription_in_one_client_are_routed_apart(
    mosquitto: Mosquitto, unique_topic: str
) -> None:
    """MQTT 5: a member that also holds a plain subscription to the same topics.

    The broker sends such a client one copy per subscription, each tagged with its
    subscription identifier, so the group's share and the plain copy stay apart.
    (MQTT 3.1.1 has no identifiers and mosquitto sends one copy: both subscriptions
    of that client then see it, as docs/deployment.rst says.)
    """
    count = 20
    group = f"$share/mixed/{unique_topic}"
    fence_topic = f"{unique_topic}-fence"
    with anyio.fail_after(TIMEOUT):
        async with (
            MqttClient(mosquitto.uri, protocol=V5) as both,
            both.subscription(group, qos=QOS1) as both_shared,
            both.subscription(unique_topic, qos=QOS1) as both_plain,
            both.subscription(fence_topic, qos=QOS1) as both_fence,
            MqttClient(mosquitto.uri, protocol=V5) as other,
            other.subscription(group, qos=QOS1) as other_shared,
            other.subscription(fence_topic, qos=QOS1) as other_fence,
        ):
            for number in range(count):
                await other.publish(unique_topic, str(number), qos=QOS1)
            await other.publish(fence_topic, b"", qos=QOS1)
            shared_a: list[Message] = []
            plain: list[Message] = []
            shared_b: list[Message] = []
            await take_until_fence(both_shared, both_fence, shared_a)
            await take_until_fence(other_shared, other_fence, shared_b)
            while True:
                try:
                    plain.append(both_plain.receive_nowait())
                except anyio.WouldBlock:
                    break
    assert [int(m.payload) for m in plain] == list(range(count))
    shares = sorted(int(m.payload) for m in [*shared_a, *shared_b])
    assert shares == list(range(count))
    assert shared_a
    assert shared_b


async def test_shared_group_member_leaving_hands_its_share_to_the_others(
    mosquitto: Mosquitto, unique_topic: str, protocol: ProtocolVersion
) -> None:
    group = f"$share/leave/{unique_topic}"
    fence_topic = f"{unique_topic}-fence"
    count = 20
    with anyio.fail_after(TIMEOUT):
        async with (
            MqttClient(mosquitto.uri, protocol=protocol) as stays,
            stays.subscription(group, qos=QOS1, buffer=count) as stays_sub,
            stays.subscription(fence_topic, qos=QOS1) as fence,
            MqttClient(mosquitto.uri, protocol=protocol) as leaves,
        ):
            async with leaves.subscription(group, qos=QOS1):
                pass  # joined and left again (UNSUBSCRIBE acknowledged)
            for number in range(count):
                await leaves.publish(unique_topic, str(number), qos=QOS1)
            await leaves.publish(fence_topic, b"", qos=QOS1)
            got: list[Message] = []
            await take_until_fence(stays_sub, fence, got)
    assert [int(m.payload) for m in got] == list(range(count))
