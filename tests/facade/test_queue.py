"""MqttMessageQueue and MessageEnvelope.

The queue operations of the upstream ``MessageQueueFixture`` (send/receive,
receive/send, send/peek, peek with no message, complete/abandon/dead letter, listen)
against the real broker on trio and asyncio, plus what upstream got wrong: one topic
rule for both directions, one subscription per queue, a real receive timeout.
"""

from __future__ import annotations

import base64
import datetime
import json
import re
import socket
from typing import TYPE_CHECKING

import anyio
import attrs
import pytest

from trio_mqttconn import (
    ConfigError,
    ConfigParams,
    ConnectError,
    Descriptor,
    InvalidStateError,
    NotOpenError,
    References,
)
from trio_mqttconn._connection import COUNTER_ERRORS, MqttConnection
from trio_mqttconn._queue import (
    QUEUE_CONFIG_KEYS,
    IMessageReceiver,
    MessageEnvelope,
    MqttMessageQueue,
)

from .test_connection import (
    COUNTERS,
    LOGGER,
    TIMEOUT,
    Collector,
    PipCounters,
    PipLogger,
)

if TYPE_CHECKING:
    from trio_mqttconn.testing import Mosquitto

anyio_test = pytest.mark.anyio
SHARED = Descriptor("pip-services", "connection", "mqtt", "default", "1.0")


def exactly(message: str) -> str:
    return f"^{re.escape(message)}$"


def make_queue(
    mosquitto: Mosquitto, topic: str, *tuples: object, name: str | None = None
) -> MqttMessageQueue:
    queue = MqttMessageQueue(name)
    queue.configure(
        ConfigParams.from_tuples(
            "connection.uri",
            mosquitto.uri,
            "topic",
            topic,
            "options.autosubscribe",
            True,
            "options.serialize_envelope",
            True,
            "options.qos",
            1,
            *tuples,
        )
    )
    return queue


def same(sent: MessageEnvelope, received: MessageEnvelope | None) -> None:
    """The fixture's check: type, payload and trace id survive the trip."""
    assert received is not None
    assert received.message_type == sent.message_type
    assert received.message == sent.message
    assert received.trace_id == sent.trace_id


async def watch(queue: MqttMessageQueue, topic: str) -> Collector:
    """Another listener on the queue's connection, to know what it received.

    The connection hands a message to every matching registration before it reads
    the next one: once the watcher has a message, the queue's dispatch task has it
    too, and ``wait_all_tasks_blocked`` lets it reach the queue's buffer.
    """
    watcher = Collector()
    connection = queue._connection
    assert connection is not None
    await connection.subscribe(topic, {"qos": 1}, watcher)
    return watcher


@attrs.define(eq=False)
class Receiver:
    """An ``IMessageReceiver`` that can be awaited for N messages."""

    envelopes: list[MessageEnvelope] = attrs.Factory(list)
    queues: list[MqttMessageQueue] = attrs.Factory(list)
    _waiters: list[tuple[int, anyio.Event]] = attrs.Factory(list)

    async def receive_message(
        self, message: MessageEnvelope, queue: MqttMessageQueue
    ) -> None:
        await anyio.lowlevel.checkpoint()
        self.envelopes.append(message)
        self.queues.append(queue)
        for count, event in self._waiters:
            if len(self.envelopes) >= count:
                event.set()

    async def wait_for(self, count: int) -> None:
        if len(self.envelopes) < count:
            event = anyio.Event()
            self._waiters.append((count, event))
            await event.wait()


# -- MessageEnvelope ------------------------------------------------------------------


def test_message_envelope_constructor_converts_the_payload() -> None:
    assert MessageEnvelope("123", "Test", "Test message").message == b"Test message"
    assert MessageEnvelope(None, "t", b"\x00\x01").message == b"\x00\x01"
    assert MessageEnvelope(None, "t", bytearray(b"ab")).message == b"ab"
    assert MessageEnvelope(None, "t", {"a": [1, 2]}).message == b'{"a": [1, 2]}'
    assert MessageEnvelope(None, "t", None).message is None
    first, second = MessageEnvelope(None, "t", "x"), MessageEnvelope(None, "t", "x")
    assert re.fullmatch(r"[0-9a-f]{32}", first.message_id)
    assert first.message_id != second.message_id
    assert first.sent_time is None


def test_message_envelope_trace_id_from_a_context() -> None:
    class Context:
        def __init__(self, values: dict[str, str]) -> None:
            self.values = values

        def get(self, key: str) -> str | None:
            return self.values.get(key)

    assert MessageEnvelope(Context({"trace_id": "t1"}), "x", None).trace_id == "t1"
    assert MessageEnvelope(Context({"traceId": "t2"}), "x", None).trace_id == "t2"
    assert MessageEnvelope(Context({}), "x", None).trace_id is None
    assert MessageEnvelope(object(), "x", None).trace_id is None


def test_message_envelope_accessors() -> None:
    envelope = MessageEnvelope(None, "t", None)
    assert envelope.get_message_as_string() is None
    assert envelope.get_message_as() is None
    envelope.set_message_as_string("héllo")
    assert envelope.message == "héllo".encode()
    assert envelope.get_message_as_string() == "héllo"
    envelope.set_message_as_object({"n": 1})
    assert envelope.get_message_as() == {"n": 1}
    envelope.set_message_as_object(None)
    assert envelope.get_message_as_string() is None
    locked = MessageEnvelope(None, "t", None)
    assert locked.get_reference() is None
    locked.set_reference("lock")
    assert locked.get_reference() == "lock"
    assert (
        str(MessageEnvelope("123", "Test", "Test message")) == "[123,Test,Test message]"
    )
    assert str(MessageEnvelope(None, None, None)) == "[---,---,---]"
    assert str(MessageEnvelope(None, "t", "x" * 80)) == f"[---,t,{'x' * 50}]"


def test_message_envelope_json_wire_format() -> None:
    envelope = MessageEnvelope("123", "Test", "Test message")
    envelope.sent_time = datetime.datetime(2024, 5, 6, 7, 8, 9, tzinfo=datetime.UTC)
    wire = envelope.to_json()
    assert wire == {
        "message_id": envelope.message_id,
        "trace_id": "123",
        "message_type": "Test",
        "sent_time": "2024-05-06T07:08:09.000Z",
        "message": base64.b64encode(b"Test message").decode(),
    }
    back = MessageEnvelope.from_json(json.dumps(wire))
    assert back is not None
    assert (back.message_id, back.trace_id, back.message_type, back.message) == (
        envelope.message_id,
        "123",
        "Test",
        b"Test message",
    )
    assert back.sent_time == envelope.sent_time
    assert MessageEnvelope.from_json(json.dumps(wire).encode()) is not None


def test_message_envelope_json_edge_cases() -> None:
    empty = MessageEnvelope(None, None, None).to_json()
    assert empty["message"] is None
    assert empty["sent_time"] is not None  # "now" when never sent
    back = MessageEnvelope.from_json(json.dumps(empty))
    assert back is not None
    assert back.message is None
    # pip-services 3 envelopes carry correlation_id
    legacy = json.dumps(
        {"correlation_id": "c1", "message_type": "T", "message": "", "sent_time": None}
    )
    old = MessageEnvelope.from_json(legacy)
    assert old is not None
    # an empty payload is "" (as in Node), read back as empty, not as no payload
    assert (old.trace_id, old.message, old.sent_time) == ("c1", b"", None)
    for bad in (None, "not json", "[1, 2]", '{"message": 5}', b"\xff"):
        assert MessageEnvelope.from_json(bad) is None


def test_queue_config_keys_table() -> None:
    assert [key.key for key in QUEUE_CONFIG_KEYS] == [
        "topic",
        "options.topic_rule",
        "options.serialize_envelope",
        "options.message_as_text",
        "options.autosubscribe",
        "options.qos",
        "options.acknowledge",
        "options.retain",
        "options.max_buffered",
        "options.overflow",
    ]


def test_queue_configure_rejects_bad_values() -> None:
    queue = MqttMessageQueue("q")
    with pytest.raises(
        ConfigError, match=exactly("options.qos must be 0, 1 or 2, not '5'")
    ):
        queue.configure({"options.qos": 5})
    with pytest.raises(
        ConfigError,
        match=exactly("options.serialize_envelope must be true or false, not 'maybe'"),
    ):
        queue.configure({"options.serialize_envelope": "maybe"})
    with pytest.raises(
        ConfigError,
        match=exactly("options.acknowledge must be receive or arrival, not 'never'"),
    ):
        queue.configure({"options.acknowledge": "never"})
    queue.set_references(None)  # a local connection, configured from now on
    with pytest.raises(
        ConfigError,
        match=exactly(
            "options.connect_timeout must be a number of milliseconds, not 'x'"
        ),
    ):
        queue.configure({"options.connect_timeout": "x"})


def test_queue_name_and_topic() -> None:
    assert MqttMessageQueue("orders").get_name() == "orders"
    unnamed = MqttMessageQueue()
    assert unnamed.get_name() == "undefined"
    unnamed.configure({"topic": "t/1"})
    assert unnamed.get_name() == "t/1"


# -- the upstream MessageQueueFixture --------------------------------------------------


@anyio_test
async def test_queue_send_receive_message(
    mosquitto: Mosquitto, unique_topic: str
) -> None:
    queue = make_queue(mosquitto, unique_topic)
    sent = MessageEnvelope("123", "Test", "Test message")
    with anyio.fail_after(TIMEOUT):
        async with queue:
            watcher = await watch(queue, unique_topic)
            await queue.send(None, sent)
            await watcher.wait_for(1)  # the connection received it
            await anyio.wait_all_tasks_blocked()  # and handed it to the queue
            assert await queue.read_message_count() == 1
            received = await queue.receive(None, 10_000)
            assert await queue.read_message_count() == 0
    same(sent, received)
    assert received is not None
    assert received.message_id == sent.message_id
    # sent with millisecond precision, as Node writes it
    assert sent.sent_time is not None
    assert received.sent_time == sent.sent_time.replace(
        microsecond=sent.sent_time.microsecond // 1000 * 1000
    )
    assert sent.sent_time is not None


@anyio_test
async def test_queue_receive_send_message(
    mosquitto: Mosquitto, unique_topic: str
) -> None:
    queue = make_queue(mosquitto, unique_topic)
    sent = MessageEnvelope("123", "Test", "Test message")
    received: list[MessageEnvelope | None] = []

    async def receive() -> None:
        received.append(await queue.receive(None, 10_000))

    with anyio.fail_after(TIMEOUT):
        async with queue, anyio.create_task_group() as group:
            group.start_soon(receive)
            await anyio.wait_all_tasks_blocked()  # receive() is waiting
            assert received == []
            await queue.send(None, sent)
    [envelope] = received
    same(sent, envelope)


@anyio_test
async def test_queue_receive_complete_abandon_dead_letter(
    mosquitto: Mosquitto, unique_topic: str
) -> None:
    queue = make_queue(mosquitto, unique_topic)
    sent = MessageEnvelope("123", "Test", "Test message")
    with anyio.fail_after(TIMEOUT):
        async with queue:
            for _ in range(3):
                await queue.send(None, sent)
            first = await queue.receive(None, 10_000)
            assert first is not None
            await queue.complete(first)
            assert first.get_reference() is None
            second = await queue.receive(None, 10_000)
            assert second is not None
            await queue.abandon(second)  # no-op: MQTT cannot return it
            await queue.renew_lock(second, 1000)
            third = await queue.receive(None, 10_000)
            assert third is not None
            await queue.move_to_dead_letter(third)
            assert await queue.receive(None, 0) is None
    for envelope in (first, second, third):
        same(sent, envelope)


@anyio_test
async def test_queue_send_peek_message(mosquitto: Mosquitto, unique_topic: str) -> None:
    queue = make_queue(mosquitto, unique_topic)
    sent = MessageEnvelope("123", "Test", "Test message")
    with anyio.fail_after(TIMEOUT):
        async with queue:
            watcher = await watch(queue, unique_topic)
            await queue.send(None, sent)
            await watcher.wait_for(1)
            await anyio.wait_all_tasks_blocked()
            peeked = await queue.peek(None)
            same(sent, peeked)
            assert await queue.peek(None) is peeked  # still there
            await queue.send(None, MessageEnvelope("456", "Test", "second"))
            await watcher.wait_for(2)
            await anyio.wait_all_tasks_blocked()
            batch = await queue.peek_batch(None, 5)
            assert [e.message for e in batch] == [b"Test message", b"second"]
            assert await queue.peek_batch(None, 1) == batch[:1]
            assert await queue.read_message_count() == 2
            await queue.clear(None)
            assert await queue.read_message_count() == 0


@anyio_test
async def test_queue_peek_no_message(mosquitto: Mosquitto, unique_topic: str) -> None:
    queue = make_queue(mosquitto, unique_topic)
    with anyio.fail_after(TIMEOUT):
        async with queue:
            assert await queue.peek(None) is None
            assert await queue.peek_batch(None, 10) == []


@anyio_test
async def test_queue_receive_times_out(mosquitto: Mosquitto, unique_topic: str) -> None:
    queue = make_queue(mosquitto, unique_topic)
    with anyio.fail_after(TIMEOUT):
        async with queue:
            began = anyio.current_time()
            assert await queue.receive(None, 200) is None
            assert anyio.current_time() - began >= 0.2
            assert await queue.receive(None, -5) is None


@anyio_test
async def test_queue_listen(mosquitto: Mosquitto, unique_topic: str) -> None:
    queue = make_queue(mosquitto, unique_topic)
    receiver = Receiver()
    assert isinstance(receiver, IMessageReceiver)
    sent = MessageEnvelope("123", "Test", "Test message")
    with anyio.fail_after(TIMEOUT):
        async with queue:
            await queue.send(None, sent)  # buffered: handed over when listening starts
            await queue.begin_listen(None, receiver)
            await queue.send(None, MessageEnvelope("124", "Test", "live"))
            await receiver.wait_for(2)
            queue.end_listen(None)
            await queue.send(None, MessageEnvelope("125", "Test", "after"))
            after = await queue.receive(None, 10_000)
    same(sent, receiver.envelopes[0])
    assert [e.message for e in receiver.envelopes] == [b"Test message", b"live"]
    assert receiver.queues == [queue, queue]
    assert after is not None
    assert after.message == b"after"


@anyio_test
async def test_queue_listen_blocks_until_end_listen_or_close(
    mosquitto: Mosquitto, unique_topic: str
) -> None:
    queue = make_queue(mosquitto, unique_topic)
    receiver = Receiver()
    ended: list[str] = []

    async def listen(label: str) -> None:
        await queue.listen(None, receiver)
        ended.append(label)

    with anyio.fail_after(TIMEOUT):
        async with queue, anyio.create_task_group() as group:
            group.start_soon(listen, "first")
            await anyio.wait_all_tasks_blocked()
            assert ended == []
            queue.end_listen(None)
            await anyio.wait_all_tasks_blocked()
            assert ended == ["first"]
            group.start_soon(listen, "second")
            await anyio.wait_all_tasks_blocked()
            group.start_soon(listen, "third")  # replaces the second
            await anyio.wait_all_tasks_blocked()
            assert ended == ["first", "second"]
            await queue.close(None)
        assert ended == ["first", "second", "third"]
    with pytest.raises(NotOpenError, match=exactly("The queue is not opened")):
        await queue.listen(None, receiver)


@anyio_test
async def test_queue_receiver_that_raises_is_logged_and_counted(
    mosquitto: Mosquitto, unique_topic: str
) -> None:
    class Broken:
        def receive_message(
            self, message: MessageEnvelope, queue: MqttMessageQueue
        ) -> None:
            raise RuntimeError("receiver down")

    logger, counters, after = PipLogger(), PipCounters(), Collector()
    queue = make_queue(mosquitto, unique_topic, name="jobs")
    queue.set_references(References.from_tuples(LOGGER, logger, COUNTERS, counters))
    with anyio.fail_after(TIMEOUT):
        async with queue:
            connection = queue._connection
            assert connection is not None
            await connection.subscribe(unique_topic, {"qos": 1}, after)
            await queue.begin_listen(None, Broken())
            await queue.send(None, MessageEnvelope(None, "T", "x"))
            await after.wait_for(1)
            await anyio.wait_all_tasks_blocked()
            assert queue.is_open()
    assert [r[3] for r in logger.records if r[0] == "error"] == [
        "Failed to process the message"
    ]
    assert counters.counts[COUNTER_ERRORS] == 1
    assert counters.counts["queue.jobs.sent_messages"] == 1
    assert counters.counts["queue.jobs.received_messages"] == 1


# -- what upstream got wrong -------------------------------------------------------------


@anyio_test
async def test_queue_subscribes_once(mosquitto: Mosquitto, unique_topic: str) -> None:
    queue = make_queue(mosquitto, unique_topic, "options.autosubscribe", False)
    with anyio.fail_after(TIMEOUT):
        async with queue:
            for _ in range(3):  # each call used to subscribe again upstream
                assert await queue.receive(None, 0) is None
                assert await queue.peek(None) is None
            await queue.send(None, MessageEnvelope(None, "T", "once"))
            received = await queue.receive(None, 10_000)
            assert received is not None
            assert await queue.receive(None, 0) is None
            assert await queue.read_message_count() == 0
            connection = queue._connection
            assert connection is not None
            assert len(connection._subscriptions) == 1


@anyio_test
async def test_queue_without_autosubscribe_drops_what_was_sent_before(
    mosquitto: Mosquitto, unique_topic: str
) -> None:
    queue = make_queue(mosquitto, unique_topic, "options.autosubscribe", "false")
    with anyio.fail_after(TIMEOUT):
        async with queue:
            await queue.send(None, MessageEnvelope(None, "T", "before"))
            assert await queue.read_message_count() == 0  # subscribes now
            await queue.send(None, MessageEnvelope(None, "T", "after"))
            received = await queue.receive(None, 10_000)
    assert received is not None
    assert received.message == b"after"


@anyio_test
async def test_queue_uses_its_name_as_topic_for_both_directions(
    mosquitto: Mosquitto, unique_topic: str
) -> None:
    queue = MqttMessageQueue(unique_topic)
    queue.configure(
        ConfigParams.from_tuples(
            "connection.uri", mosquitto.uri, "options.autosubscribe", True
        )
    )
    watcher = Collector()
    with anyio.fail_after(TIMEOUT):
        async with queue:
            connection = queue._connection
            assert connection is not None
            await connection.subscribe(unique_topic, None, watcher)
            await queue.send(None, MessageEnvelope("t", "ignored", b"raw \x00 bytes"))
            received = await queue.receive(None, 10_000)
            await watcher.wait_for(1)
    # Without serialize_envelope the payload travels alone.
    assert watcher.payloads == [b"raw \x00 bytes"]
    assert received is not None
    assert received.message == b"raw \x00 bytes"
    assert received.message_type == unique_topic
    assert received.trace_id is None


@anyio_test
async def test_queue_topic_with_wildcard_receives_from_several_topics(
    mosquitto: Mosquitto, unique_topic: str
) -> None:
    queue = make_queue(
        mosquitto, f"{unique_topic}/+", "options.serialize_envelope", False
    )
    with anyio.fail_after(TIMEOUT):
        async with queue:
            connection = queue._connection
            assert connection is not None
            await connection.publish(f"{unique_topic}/a", "A", {"qos": 1})
            await connection.publish(f"{unique_topic}/b", "B", {"qos": 1})
            first = await queue.receive(None, 10_000)
            second = await queue.receive(None, 10_000)
    assert first is not None
    assert second is not None
    assert [
        (first.message_type, first.message),
        (second.message_type, second.message),
    ] == [
        (f"{unique_topic}/a", b"A"),
        (f"{unique_topic}/b", b"B"),
    ]


@anyio_test
async def test_queue_logs_a_message_that_is_not_an_envelope(
    mosquitto: Mosquitto, unique_topic: str
) -> None:
    logger, counters = PipLogger(), PipCounters()
    queue = make_queue(mosquitto, unique_topic)
    queue.set_references(References.from_tuples(LOGGER, logger, COUNTERS, counters))
    with anyio.fail_after(TIMEOUT):
        async with queue:
            connection = queue._connection
            assert connection is not None
            await connection.publish(unique_topic, "not json", {"qos": 1})
            await queue.send(None, MessageEnvelope(None, "T", "good"))
            received = await queue.receive(None, 10_000)
    assert received is not None
    assert received.message == b"good"
    assert [r[3] for r in logger.records if r[0] == "error"] == [
        "Failed to read received message"
    ]
    assert counters.counts[COUNTER_ERRORS] == 1


# -- shared connection, errors ---------------------------------------------------------


@anyio_test
async def test_queue_on_a_shared_connection(
    mosquitto: Mosquitto, unique_topic: str
) -> None:
    connection = MqttConnection()
    connection.configure({"connection.uri": mosquitto.uri})
    references = References.from_tuples(SHARED, connection)
    orders, audit = MqttMessageQueue("orders"), MqttMessageQueue("audit")
    for queue in (orders, audit):
        queue.configure(
            {"topic": unique_topic, "options.autosubscribe": True, "options.qos": 1}
        )
        queue.set_references(references)
    with anyio.fail_after(TIMEOUT):
        async with anyio.create_task_group() as group:
            with pytest.raises(
                ConnectError, match=exactly("MQTT connection is not opened")
            ) as info:
                await orders.open(None)
            assert info.value.code == "CONNECT_FAILED"
            connection.bind(group)
            await connection.open(None)
            orders.bind(group)
            await orders.open(None)
            await audit.open(None)
            await orders.send(None, MessageEnvelope(None, "T", "both see it"))
            got_orders = await orders.receive(None, 10_000)
            got_audit = await audit.receive(None, 10_000)
            await audit.close(None)
            assert connection.is_open()  # a shared connection stays open
            assert len(connection._subscriptions) == 1
            await orders.close(None)
            assert connection._subscriptions == []
            await connection.close(None)
    assert got_orders is not None
    assert got_audit is not None
    assert got_orders.message == got_audit.message == b"both see it"


@anyio_test
async def test_queue_not_open_errors() -> None:
    queue = MqttMessageQueue("q")
    for call in (
        lambda: queue.send(None, MessageEnvelope(None, "T", "x")),
        lambda: queue.receive(None, 0),
        lambda: queue.peek(None),
        lambda: queue.peek_batch(None, 1),
        lambda: queue.read_message_count(),
        lambda: queue.begin_listen(None, Receiver()),
    ):
        with pytest.raises(
            NotOpenError, match=exactly("The queue is not opened")
        ) as info:
            await call()
        assert info.value.code == "NOT_OPENED"
    await queue.close(None)  # never opened: a no-op
    assert not queue.is_open()


@anyio_test
async def test_queue_open_errors(mosquitto: Mosquitto) -> None:
    nameless = MqttMessageQueue()
    nameless.configure({"connection.uri": mosquitto.uri})
    with pytest.raises(
        ConfigError,
        match=exactly(
            "the queue has no topic: configure the topic key or give the queue a name"
        ),
    ) as info:
        await nameless.open(None)
    assert info.value.code == "NO_TOPIC"
    unbound = make_queue(mosquitto, "t")
    with pytest.raises(
        InvalidStateError,
        match=exactly(
            "MqttMessageQueue.open needs a nursery for its connection: call "
            "bind(nursery), pass nursery=..., or use `async with queue:`"
        ),
    ):
        await unbound.open(None)
    with anyio.fail_after(TIMEOUT):
        async with anyio.create_task_group() as group:
            queue = make_queue(mosquitto, "t")
            queue.bind(group)
            await queue.open(None)
            await queue.open(None)  # idempotent
            with pytest.raises(
                InvalidStateError,
                match=exactly(
                    "cannot bind a nursery while the queue is open: close it first"
                ),
            ):
                queue.bind(group)
            await queue.close(None)
            queue.unset_references()
            nursery_less = MqttMessageQueue("q", nursery=None)
            connection = MqttConnection(nursery=group)
            connection.configure({"connection.uri": mosquitto.uri})
            await connection.open(None)
            nursery_less.set_references(References.from_tuples(SHARED, connection))
            await nursery_less.open(None)
            with pytest.raises(
                InvalidStateError,
                match=exactly(
                    "begin_listen needs a nursery: call bind(nursery), pass "
                    "nursery=..., or use `async with queue:`"
                ),
            ):
                await nursery_less.begin_listen(None, Receiver())
            await nursery_less.close(None)
            await connection.close(None)


# -- edges ------------------------------------------------------------------------------


@anyio_test
async def test_queue_open_fails_when_autosubscribe_fails(mosquitto: Mosquitto) -> None:
    queue = make_queue(mosquitto, "bad/#/filter")
    with anyio.fail_after(TIMEOUT):
        async with anyio.create_task_group() as group:
            queue.bind(group)
            with pytest.raises(ValueError, match="bad/#/filter"):
                await queue.open(None)
    assert not queue.is_open()
    connection = queue._connection
    assert connection is not None
    assert not connection.is_open()


@anyio_test
async def test_queue_async_with_raises_the_open_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    queue = MqttMessageQueue("q")
    queue.configure({"connection.uri": f"mqtt://127.0.0.1:{port}"})
    with anyio.fail_after(TIMEOUT), pytest.raises(ConnectError) as info:
        async with queue:
            pytest.fail("the body does not run")  # pragma: no cover
    assert info.value.code == "CONNECT_FAILED"
    assert not queue.is_open()


@anyio_test
async def test_queue_closed_queue_keeps_nothing(
    mosquitto: Mosquitto, unique_topic: str
) -> None:
    from trio_mqttconn import Message

    queue = make_queue(mosquitto, unique_topic)
    queue.end_listen(None)  # nothing to end
    late = json.dumps(MessageEnvelope(None, "T", "late").to_json()).encode()
    await queue.on_message(
        unique_topic, late, Message(topic=unique_topic, payload=late)
    )
    assert list(queue._messages) == []
    waiting: list[MessageEnvelope | None] = []

    async def receive() -> None:
        waiting.append(await queue.receive(None, 10_000))

    with anyio.fail_after(TIMEOUT):
        async with queue, anyio.create_task_group() as group:
            group.start_soon(receive)
            await anyio.wait_all_tasks_blocked()
            await queue.close(None)  # wakes the receiver: no message
    assert waiting == [None]


@anyio_test
async def test_queue_plain_receiver_and_close_while_flushing(
    mosquitto: Mosquitto, unique_topic: str
) -> None:
    class ClosingReceiver:
        def __init__(self) -> None:
            self.envelopes: list[MessageEnvelope] = []

        async def receive_message(
            self, message: MessageEnvelope, queue: MqttMessageQueue
        ) -> None:
            self.envelopes.append(message)
            await queue.close(None)

    class PlainReceiver:
        def __init__(self) -> None:
            self.envelopes: list[MessageEnvelope] = []

        def receive_message(
            self, message: MessageEnvelope, queue: MqttMessageQueue
        ) -> None:
            self.envelopes.append(message)

    queue = make_queue(mosquitto, unique_topic)
    plain, closing = PlainReceiver(), ClosingReceiver()
    with anyio.fail_after(TIMEOUT):
        async with queue:
            watcher = await watch(queue, unique_topic)
            for text in ("a", "b", "c"):
                await queue.send(None, MessageEnvelope(None, "T", text))
            await watcher.wait_for(3)
            await anyio.wait_all_tasks_blocked()
            assert await queue.read_message_count() == 3
            first = await queue.receive(None, 0)
            assert first is not None
            await queue.begin_listen(None, plain)  # takes "b" and "c"
            queue.end_listen(None)
            await queue.send(None, MessageEnvelope(None, "T", "d"))
            await queue.send(None, MessageEnvelope(None, "T", "e"))
            await watcher.wait_for(5)
            await anyio.wait_all_tasks_blocked()
            # Closing the queue from the receiver stops the hand-over at once.
            await queue.listen(None, closing)
            assert not queue.is_open()
    assert [e.message for e in plain.envelopes] == [b"b", b"c"]
    assert [e.message for e in closing.envelopes] == [b"d"]


@anyio_test
async def test_queue_closed_by_its_receiver(
    mosquitto: Mosquitto, unique_topic: str
) -> None:
    class Closer:
        def __init__(self) -> None:
            self.closed = anyio.Event()

        async def receive_message(
            self, message: MessageEnvelope, queue: MqttMessageQueue
        ) -> None:
            await queue.close(None)  # runs in the listen task, begin_listen's
            self.closed.set()

    # QoS 0: the send returns after its write. A QoS 1 send would race its PUBACK
    # against the receiver closing the queue (a flake, 1 run in 5).
    queue = make_queue(mosquitto, unique_topic, "options.qos", 0)
    closer = Closer()
    with anyio.fail_after(TIMEOUT):
        async with queue:
            await queue.begin_listen(None, closer)
            await queue.send(None, MessageEnvelope(None, "T", "stop"))
            await closer.closed.wait()
            assert not queue.is_open()
            connection = queue._connection
            assert connection is not None
            assert not connection.is_open()
