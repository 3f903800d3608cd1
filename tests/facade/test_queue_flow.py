"""#12 defect 1: queues on a shared connection under pressure, against mosquitto.

Queue A's receiver forwards every message to queue B with QoS 1 on the same
connection (it waits for each PUBACK while A's messages keep coming); a slow receiver
on A does not hold up B; a QoS 1 message the queue holds is acknowledged to the
broker only once the application has it, so a dropped link loses none, and what the
queue lets go unread is acknowledged so that it holds up nothing;
``MqttConnection.subscribe`` passes ``buffer`` and ``manual_ack`` to the engine.

On 7f953d6 the forwarding tests hung (stopped by their ``fail_after``), B got none
of its messages behind A's backlog of 1500, nothing was sent again after the drop,
the flow control options were refused, the drop-and-clear case failed and a long
hand-over never let another task in. Two cases pass there too: a backlog within
the Receive Maximum, and a queue closed on a shared connection (7f953d6
acknowledged every message on arrival). Progress is proven with events and
counters, never with timing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import anyio
import attrs
import pytest

from trio_mqttconn import ConfigParams, Descriptor, Message, MqttClient, References
from trio_mqttconn._connection import MqttConnection
from trio_mqttconn._queue import MessageEnvelope, MqttMessageQueue

from .._faultproxy import FaultProxy

if TYPE_CHECKING:
    from trio_mqttconn.testing import Mosquitto

pytestmark = pytest.mark.anyio

SHARED = Descriptor("pip-services", "connection", "mqtt", "default", "1.0")
#: Generous bounds: a pass takes a few seconds on a busy machine; a failure hangs.
LIMIT = 120


def queue_on(
    connection: MqttConnection, topic: str, *tuples: object
) -> MqttMessageQueue:
    """A QoS 1 queue on the shared *connection*, subscribed when it opens."""
    queue = MqttMessageQueue(topic.rsplit("/", 1)[-1])
    queue.configure(
        ConfigParams.from_tuples(
            "topic", topic, "options.qos", 1, "options.autosubscribe", True, *tuples
        )
    )
    queue.set_references(References.from_tuples(SHARED, connection))
    return queue


async def publish_all(uri: str, topic: str, payloads: list[bytes]) -> None:
    """Publish with QoS 1 from a client of its own; returns once the broker has all."""
    async with MqttClient(uri) as publisher:
        for payload in payloads:
            await publisher.publish(topic, payload, qos=1)


@attrs.define(eq=False)
class Forwarder:
    """A's receiver: sends each message on to B, waiting for its PUBACK.

    The first message waits for *gate*, so that A's backlog grows first.
    """

    to: MqttMessageQueue
    gate: anyio.Event = attrs.Factory(anyio.Event)
    forwarded: int = 0

    async def receive_message(
        self, message: MessageEnvelope, queue: MqttMessageQueue
    ) -> None:
        del queue
        await self.gate.wait()
        await self.to.send(None, MessageEnvelope(None, "fwd", message.message))
        self.forwarded += 1


@pytest.mark.parametrize(
    ("protocol", "count"),
    # MQTT 3.1.1: the broker's in-flight window (20 on mosquitto) instead of our
    # Receive Maximum of 1000.
    [("5", 1200), ("5", 5000), ("3.1.1", 1200)],
)
async def test_queue_receiver_forwards_with_qos1_on_the_shared_connection(
    mosquitto: Mosquitto, unique_topic: str, protocol: str, count: int
) -> None:
    payloads = [str(n).encode() for n in range(count)]
    connection = MqttConnection()
    connection.configure(
        ConfigParams.from_tuples(
            "connection.uri", mosquitto.uri, "options.protocol_version", protocol
        )
    )
    received: list[bytes] = []
    with anyio.fail_after(LIMIT):
        async with connection:
            a = queue_on(connection, f"{unique_topic}/a")
            b = queue_on(connection, f"{unique_topic}/b")
            async with a, b:
                forwarder = Forwarder(b)
                await a.begin_listen(None, forwarder)
                # The whole burst reaches the broker while A's receiver waits.
                await publish_all(mosquitto.uri, f"{unique_topic}/a", payloads)
                forwarder.gate.set()
                while len(received) < count:
                    envelope = await b.receive(None, LIMIT * 1000)
                    assert envelope is not None, (forwarder.forwarded, len(received))
                    assert envelope.message is not None
                    received.append(envelope.message)
                a.end_listen(None)
    assert forwarder.forwarded == count
    assert received == payloads  # none lost, none twice, in order


@attrs.define(eq=False)
class Slow:
    """A's receiver: handles one message per token it is given."""

    tokens: anyio.abc.ObjectReceiveStream[None]
    expected: int
    started: anyio.Event = attrs.Factory(anyio.Event)
    done: anyio.Event = attrs.Factory(anyio.Event)
    handled: int = 0

    async def receive_message(
        self, message: MessageEnvelope, queue: MqttMessageQueue
    ) -> None:
        del message, queue
        self.started.set()
        await self.tokens.receive()
        self.handled += 1
        if self.handled == self.expected:
            self.done.set()


@pytest.mark.parametrize(
    ("a_options", "backlog"),
    [
        # Far behind (more than the engine's subscription buffer of 1000): QoS 0,
        # or QoS 1 acknowledged on arrival. 7f953d6 stopped reading for A.
        (("options.qos", 0), 1500),
        (("options.acknowledge", "arrival"), 1500),
        # Acknowledged on receive: unread messages hold the connection's Receive
        # Maximum (1000), so "behind" is bounded by it.
        ((), 500),
    ],
)
async def test_queue_slow_receiver_does_not_delay_another_queue(
    mosquitto: Mosquitto,
    unique_topic: str,
    a_options: tuple[object, ...],
    backlog: int,
) -> None:
    connection = MqttConnection()
    connection.configure(ConfigParams.from_tuples("connection.uri", mosquitto.uri))
    give, tokens = anyio.create_memory_object_stream[None](backlog)
    to_a = [f"a{n}".encode() for n in range(backlog)]
    to_b = [f"b{n}".encode() for n in range(50)]
    slow = Slow(tokens, len(to_a))
    with anyio.fail_after(LIMIT):
        async with connection, give, tokens:
            a = queue_on(connection, f"{unique_topic}/a", *a_options)
            b = queue_on(connection, f"{unique_topic}/b")
            async with a, b:
                await a.begin_listen(None, slow)
                await publish_all(mosquitto.uri, f"{unique_topic}/a", to_a)
                await slow.started.wait()  # A is at its first message, and stuck
                await publish_all(mosquitto.uri, f"{unique_topic}/b", to_b)
                got_b: list[bytes | None] = []
                for _ in to_b:
                    envelope = await b.receive(None, 30_000)
                    assert envelope is not None, len(got_b)
                    got_b.append(envelope.message)
                # Every message of B arrived while A had handled none of its own.
                assert slow.handled == 0
                for _ in to_a:
                    await give.send(None)
                await slow.done.wait()
                a.end_listen(None)
    assert got_b == to_b


async def buffered(queue: MqttMessageQueue, count: int) -> None:
    """Wait until *count* messages wait in the queue's buffer."""
    while await queue.read_message_count() < count:
        await queue._wait_arrival()


async def test_queue_acknowledges_qos1_messages_only_when_the_application_has_them(
    mosquitto: Mosquitto, unique_topic: str
) -> None:
    # A persistent session through a proxy that can drop the link: the broker
    # sends again what the queue did not acknowledge, and only that.
    payloads = [f"m{n}".encode() for n in range(6)]
    async with FaultProxy(mosquitto.port) as proxy:
        queue = MqttMessageQueue("jobs")
        queue.configure(
            ConfigParams.from_tuples(
                "connection.uri",
                proxy.uri,
                "client_id",
                f"queue-ack-{unique_topic.replace('/', '-')}"[:60],
                "options.clean_start",
                False,
                "options.session_expiry",
                600_000,
                "options.reconnect_timeout",
                50,
                "topic",
                unique_topic,
                "options.qos",
                1,
                "options.autosubscribe",
                True,
            )
        )
        with anyio.fail_after(LIMIT):
            async with queue:
                await publish_all(mosquitto.uri, unique_topic, payloads)
                taken: list[bytes | None] = []
                for _ in range(2):
                    envelope = await queue.receive(None, 30_000)
                    assert envelope is not None
                    taken.append(envelope.message)
                await buffered(queue, 4)  # held by the queue, not yet received
                # A QoS 1 round trip on the same connection: the broker has read
                # the two acknowledgements written before it.
                connection = queue._connection
                assert connection is not None
                await connection.publish(f"{unique_topic}/barrier", b"", {"qos": 1})
                proxy.drop(rst=True)
                # The broker re-sends the four the application does not have yet
                # (at least once: the copies buffered before the drop stay).
                rest: list[bytes | None] = []
                while len(rest) < 8:
                    envelope = await queue.receive(None, 30_000)
                    assert envelope is not None, rest
                    rest.append(envelope.message)
    assert taken == payloads[:2]
    assert rest == payloads[2:] + payloads[2:]


async def test_queue_closed_on_a_shared_connection_lets_its_messages_go(
    mosquitto: Mosquitto, unique_topic: str
) -> None:
    # A message left unread in a closed queue is acknowledged: otherwise every
    # later acknowledgement on the connection would wait behind it (arrival order)
    # and the broker would stop at our Receive Maximum (1000).
    connection = MqttConnection()
    connection.configure(ConfigParams.from_tuples("connection.uri", mosquitto.uri))
    payloads = [str(n).encode() for n in range(1100)]
    with anyio.fail_after(LIMIT):
        async with connection:
            a = queue_on(connection, f"{unique_topic}/a")
            b = queue_on(connection, f"{unique_topic}/b")
            async with b:
                async with a:
                    await publish_all(mosquitto.uri, f"{unique_topic}/a", [b"x"])
                    await buffered(a, 1)
                await publish_all(mosquitto.uri, f"{unique_topic}/b", payloads)
                got: list[bytes | None] = []
                for _ in payloads:
                    envelope = await b.receive(None, 30_000)
                    assert envelope is not None, len(got)
                    got.append(envelope.message)
    assert got == payloads


@attrs.define(eq=False)
class Keeper:
    """A connection listener that keeps each message, acknowledging none."""

    messages: list[Message] = attrs.Factory(list)
    arrived: anyio.Event = attrs.Factory(anyio.Event)
    fail: bool = False

    def on_message(self, topic: str, data: bytes, packet: Message) -> None:
        del topic, data
        self.messages.append(packet)
        self.arrived.set()
        self.arrived = anyio.Event()
        if self.fail:
            raise RuntimeError("cannot handle it")

    async def wait_for(self, count: int) -> None:
        while len(self.messages) < count:
            await self.arrived.wait()


def persistent_connection(uri: str, client_id: str) -> MqttConnection:
    connection = MqttConnection()
    connection.configure(
        ConfigParams.from_tuples(
            "connection.uri",
            uri,
            "client_id",
            client_id,
            "options.clean_start",
            False,
            "options.session_expiry",
            600_000,
            "options.reconnect_timeout",
            50,
        )
    )
    return connection


@pytest.mark.parametrize("fail", [False, True])
async def test_connection_subscribe_passes_flow_control_options(
    mosquitto: Mosquitto, unique_topic: str, fail: bool
) -> None:
    # manual_ack reaches the engine: a message the listener does not acknowledge
    # is sent again after the link drops; one whose listener raised was let go.
    keeper = Keeper(fail=fail)
    client_id = f"manual-{fail}-{unique_topic.replace('/', '-')}"[:60]
    async with FaultProxy(mosquitto.port) as proxy:
        with anyio.fail_after(LIMIT):
            async with persistent_connection(proxy.uri, client_id) as connection:
                options = {"qos": 1, "manual_ack": True, "buffer": 5}
                await connection.subscribe(unique_topic, options, keeper)
                sub = connection._subscriptions[0]
                stats = sub.statistics()
                assert stats is not None
                assert stats.buffer == 5
                await publish_all(mosquitto.uri, unique_topic, [b"first"])
                await keeper.wait_for(1)
                await connection.publish(f"{unique_topic}/barrier", b"", {"qos": 1})
                proxy.drop(rst=True)
                await publish_all(mosquitto.uri, unique_topic, [b"after"])
                await keeper.wait_for(3 if not fail else 2)
    # "after" may carry DUP: mosquitto can send it on the dropped connection
    # before it notices the drop, then again on the new one.
    got = [(m.payload, m.dup) for m in keeper.messages[:-1]]
    assert keeper.messages[-1].payload == b"after"
    if fail:
        assert got == [(b"first", False)]
    else:
        assert got == [(b"first", False), (b"first", True)]


async def test_queue_acknowledges_what_it_drops_and_clears(
    mosquitto: Mosquitto, unique_topic: str
) -> None:
    # Messages the queue lets go unread (options.overflow, clear()) are
    # acknowledged: the broker does not send them again after the link drops.
    payloads = [f"m{n}".encode() for n in range(5)]
    async with FaultProxy(mosquitto.port) as proxy:
        queue = MqttMessageQueue("jobs")
        queue.configure(
            ConfigParams.from_tuples(
                "connection.uri",
                proxy.uri,
                "client_id",
                f"queue-drop-{unique_topic.replace('/', '-')}"[:60],
                "options.clean_start",
                False,
                "options.session_expiry",
                600_000,
                "options.reconnect_timeout",
                50,
                "topic",
                unique_topic,
                "options.qos",
                1,
                "options.autosubscribe",
                True,
                "options.max_buffered",
                2,
            )
        )
        with anyio.fail_after(LIMIT):
            async with queue:
                await publish_all(mosquitto.uri, unique_topic, payloads)
                while queue.statistics().dropped < 3:
                    await queue._wait_arrival()
                kept = [e.message for e in await queue.peek_batch(None, 5)]
                await queue.clear(None)
                connection = queue._connection
                assert connection is not None
                await connection.publish(f"{unique_topic}/barrier", b"", {"qos": 1})
                proxy.drop(rst=True)
                await publish_all(mosquitto.uri, unique_topic, [b"after"])
                after = await queue.receive(None, 30_000)
                assert after is not None
                left = await queue.peek_batch(None, 5)
    assert kept == payloads[3:]
    assert after.message == b"after"
    assert left == []
    assert queue.statistics().dropped == 3


async def test_queue_long_hand_over_lets_other_tasks_run(
    mosquitto: Mosquitto, unique_topic: str
) -> None:
    # A plain receiver never yields; listen does, every 64 messages.
    queue = MqttMessageQueue("q")
    queue.configure(
        ConfigParams.from_tuples("connection.uri", mosquitto.uri, "topic", unique_topic)
    )
    handled: list[bytes | None] = []
    first = anyio.Event()
    seen: list[int] = []

    @attrs.define(eq=False)
    class Plain:
        def receive_message(
            self, message: MessageEnvelope, queue: MqttMessageQueue
        ) -> None:
            handled.append(message.message)
            first.set()
            if len(handled) == 200:
                queue.end_listen(None)

    async def other() -> None:
        await first.wait()
        seen.append(len(handled))

    with anyio.fail_after(LIMIT):
        async with queue:
            await queue.read_message_count()  # subscribes
            for n in range(200):
                payload = str(n).encode()
                await queue.on_message(
                    unique_topic, payload, Message(topic=unique_topic, payload=payload)
                )
            async with anyio.create_task_group() as group:
                group.start_soon(other)
                await queue.listen(None, Plain())
    assert handled == [str(n).encode() for n in range(200)]
    # It ran during the hand-over, at one of its checkpoints (the schedulers may
    # run the listening task first at any of them).
    assert len(seen) == 1
    assert seen[0] < 200
    assert seen[0] % 64 == 0
