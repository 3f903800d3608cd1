"""MqttConnection against the real mosquitto broker, on trio and asyncio.

Open/close and their idempotence, the three ways to give it a nursery, publish and
subscribe with several listeners, wildcards, retain, QoS 1 and 2, unsubscribe, the
not-open errors, connect failures (closed port, silent port, refused password),
references (pip-services and stdlib loggers, counters, discovery, credential
store) and two connections without a client id. Broker restarts and failover are in
``test_connection_broker.py``.
"""

from __future__ import annotations

import logging
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
    ConnectTimeout,
    Descriptor,
    InvalidStateError,
    MemoryCredentialStore,
    MemoryDiscovery,
    Message,
    MqttClient,
    NotOpenError,
    ProtocolVersion,
    QoS,
    ReasonCode,
    References,
)
from trio_mqttconn._connection import (
    COUNTER_CONNECT_TIME,
    COUNTER_CONNECTS,
    COUNTER_ERRORS,
    COUNTER_PUBLISHED,
    COUNTER_RECEIVED,
    IMqttMessageListener,
    MqttConnection,
    MqttSubscription,
)

from .test_references import PipDescriptor, PipReferences, install_fake_pip_services

if TYPE_CHECKING:
    from trio_mqttconn.testing import Mosquitto

pytestmark = pytest.mark.anyio

LOGGER = Descriptor("pip-services", "logger", "console", "default", "1.0")
COUNTERS = Descriptor("pip-services", "counters", "memory", "default", "1.0")
DISCOVERY = Descriptor("pip-services", "discovery", "memory", "default", "1.0")
STORE = Descriptor("pip-services", "credential-store", "memory", "default", "1.0")
TIMEOUT = 20


def linked(connection: MqttConnection) -> bool:
    """``connection.is_connected``, read afresh (mypy narrows a property)."""
    return connection.is_connected


def exactly(message: str) -> str:
    return f"^{re.escape(message)}$"


def closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def make_connection(uri: str, *tuples: object) -> MqttConnection:
    connection = MqttConnection()
    connection.configure(ConfigParams.from_tuples("connection.uri", uri, *tuples))
    return connection


# -- recording collaborators -------------------------------------------------------


@attrs.define(eq=False)
class Collector:
    """A listener object (``on_message``) that can be awaited for N messages."""

    messages: list[tuple[str, bytes, Message]] = attrs.Factory(list)
    _waiters: list[tuple[int, anyio.Event]] = attrs.Factory(list)

    def on_message(self, topic: str, data: bytes, packet: Message) -> None:
        self.messages.append((topic, data, packet))
        for count, event in self._waiters:
            if len(self.messages) >= count:
                event.set()

    async def wait_for(self, count: int) -> None:
        if len(self.messages) < count:
            event = anyio.Event()
            self._waiters.append((count, event))
            await event.wait()

    @property
    def payloads(self) -> list[bytes]:
        return [data for _, data, _ in self.messages]

    @property
    def topics(self) -> list[str]:
        return [topic for topic, _, _ in self.messages]


def pip_trace_id(context: object) -> object:
    """What pip-services 4's ContextResolver does: ``context.get("trace_id")``.

    A plain string fails here as it does there ("'str' object has no attribute
    'get'").
    """
    if context is None:
        return None
    return context.get("trace_id")  # type: ignore[attr-defined]  # as upstream


@attrs.define(eq=False)
class PipLogger:
    """A pip-services 4 style logger: ``error(context, error, message, *args)``.

    It reads the trace id from the context as pip-services' loggers do, and records
    that.
    """

    records: list[tuple[str, object, BaseException | None, str]] = attrs.Factory(list)

    def debug(self, context: object, message: str, *args: object) -> None:
        self.records.append(("debug", pip_trace_id(context), None, message % args))

    def info(self, context: object, message: str, *args: object) -> None:
        self.records.append(("info", pip_trace_id(context), None, message % args))

    def warn(self, context: object, message: str, *args: object) -> None:
        self.records.append(("warn", pip_trace_id(context), None, message % args))

    def error(
        self,
        context: object,
        error: BaseException | None,
        message: str,
        *args: object,
    ) -> None:
        self.records.append(("error", pip_trace_id(context), error, message % args))

    def texts(self, level: str) -> list[str]:
        return [text for lvl, _, _, text in self.records if lvl == level]


@attrs.define(eq=False)
class ShortLogger:
    """A logger whose ``error`` takes no error argument."""

    records: list[tuple[str, str]] = attrs.Factory(list)

    def info(self, context: object, message: str) -> None:
        self.records.append(("info", message))

    def error(self, context: object, message: str) -> None:
        self.records.append(("error", message))


@attrs.define(eq=False)
class PipCounters:
    """pip-services counters: ``increment(name, value)``, ``end_timing``."""

    counts: dict[str, int] = attrs.Factory(dict)
    timings: dict[str, list[float]] = attrs.Factory(dict)

    def increment(self, name: str, value: int) -> None:
        self.counts[name] = self.counts.get(name, 0) + value

    def end_timing(self, name: str, elapsed: float) -> None:
        self.timings.setdefault(name, []).append(elapsed)


@attrs.define(eq=False)
class OneByOneCounters:
    """Counters with only ``increment_one`` and ``timing``."""

    counts: dict[str, int] = attrs.Factory(dict)
    timings: list[str] = attrs.Factory(list)

    def increment_one(self, name: str) -> None:
        self.counts[name] = self.counts.get(name, 0) + 1

    def timing(self, name: str, elapsed: float) -> None:
        self.timings.append(name)


class ListHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


# -- open and close ------------------------------------------------------------------


async def test_connection_open_close_with_bound_task_group(
    mosquitto: Mosquitto,
) -> None:
    connection = make_connection(mosquitto.uri)
    assert not connection.is_open()
    assert not linked(connection)
    assert connection.get_connection() is None
    with anyio.fail_after(TIMEOUT):
        async with anyio.create_task_group() as group:
            connection.bind(group)
            await connection.open(None)
            assert connection.is_open()
            assert linked(connection)
            client = connection.get_connection()
            assert isinstance(client, MqttClient)
            await connection.open(None)  # idempotent: the same engine
            assert connection.get_connection() is client
            await connection.close(None)
            assert not connection.is_open()
            assert not linked(connection)
            assert connection.get_connection() is None
            await connection.close(None)  # idempotent, never raises
            await connection.open(None)  # and it can be opened again
            assert connection.get_connection() is not client
            await connection.close(None)


async def test_connection_nursery_given_to_the_constructor(
    mosquitto: Mosquitto,
) -> None:
    with anyio.fail_after(TIMEOUT):
        async with anyio.create_task_group() as group:
            connection = MqttConnection(nursery=group)
            connection.configure({"connection.uri": mosquitto.uri})
            await connection.open("ctx")
            assert linked(connection)
            await connection.close("ctx")


async def test_connection_async_with_opens_and_closes(mosquitto: Mosquitto) -> None:
    connection = make_connection(mosquitto.uri)
    with anyio.fail_after(TIMEOUT):
        async with connection as entered:
            assert entered is connection
            assert connection.is_open()
            assert linked(connection)
        assert not connection.is_open()
        assert connection.get_connection() is None
        async with connection:  # a second time, with a new task group
            assert linked(connection)


async def test_connection_async_with_lets_the_body_exception_through(
    mosquitto: Mosquitto,
) -> None:
    connection = make_connection(mosquitto.uri)
    with anyio.fail_after(TIMEOUT), pytest.raises(KeyError, match="body"):
        async with connection:
            raise KeyError("body")
    assert not connection.is_open()


async def test_connection_open_without_nursery_raises(mosquitto: Mosquitto) -> None:
    connection = make_connection(mosquitto.uri)
    with pytest.raises(
        InvalidStateError,
        match=exactly(
            "MqttConnection.open needs a nursery for its tasks: call bind(nursery), "
            "pass nursery=..., or use `async with connection:`"
        ),
    ):
        await connection.open(None)
    assert not connection.is_open()


async def test_connection_bind_while_open_raises(mosquitto: Mosquitto) -> None:
    connection = make_connection(mosquitto.uri)
    with anyio.fail_after(TIMEOUT):
        async with connection, anyio.create_task_group() as group:
            with pytest.raises(
                InvalidStateError,
                match=exactly(
                    "cannot bind a nursery while the connection is open: close it first"
                ),
            ):
                connection.bind(group)


async def test_connection_closing_cancels_and_awaits_its_tasks(
    mosquitto: Mosquitto, unique_topic: str
) -> None:
    connection = make_connection(mosquitto.uri)
    with anyio.fail_after(TIMEOUT):
        async with anyio.create_task_group() as group:
            connection.bind(group)
            await connection.open(None)
            await connection.subscribe(unique_topic, None, Collector())
            await connection.close(None)
        # Leaving the task group returned: nothing of the connection kept running.
    assert connection.get_connection() is None


async def test_connection_plain_mapping_and_mqtt311(
    mosquitto: Mosquitto, unique_topic: str
) -> None:
    connection = MqttConnection()
    connection.configure(
        {
            "connection": {"host": mosquitto.host, "port": mosquitto.port},
            "client_id": "pip-plain-mapping",
            "options": {"protocol_version": "3.1.1", "keepalive_timeout": 5000},
        }
    )
    collector = Collector()
    with anyio.fail_after(TIMEOUT):
        async with connection:
            client = connection.get_connection()
            assert client is not None
            assert client.client_id == "pip-plain-mapping"
            assert client.protocol is ProtocolVersion.V311
            assert client.keepalive == 5
            await connection.subscribe(unique_topic, {"qos": "1"}, collector)
            await connection.publish(unique_topic, b"v311", {"qos": 1})
            await collector.wait_for(1)
    assert collector.payloads == [b"v311"]


def test_connection_configure_rejects_a_bad_option() -> None:
    connection = MqttConnection()
    with pytest.raises(
        ConfigError,
        match=exactly(
            "options.connect_timeout must be a number of milliseconds, not 'soon'"
        ),
    ):
        connection.configure({"options.connect_timeout": "soon"})


async def test_connection_open_reports_a_missing_host() -> None:
    # What discovery returns is checked by open() (the configuration by configure()).
    connection = MqttConnection()
    connection.configure({"connection.discovery_key": "broker"})
    discovery = MemoryDiscovery()
    discovery.register(None, "broker", {"port": 1883})
    connection.set_references(References.from_tuples(DISCOVERY, discovery))
    with anyio.fail_after(TIMEOUT):
        async with anyio.create_task_group() as group:
            connection.bind(group)
            with pytest.raises(
                ConfigError, match=exactly("Connection host is not set")
            ) as info:
                await connection.open(None)
    assert info.value.code == "NO_HOST"
    assert not connection.is_open()


def test_connection_configure_reports_a_missing_host() -> None:
    connection = MqttConnection()
    with pytest.raises(
        ConfigError, match=exactly("Connection host is not set")
    ) as info:
        connection.configure({"connection.port": 1883})
    assert info.value.code == "NO_HOST"


# -- not open -------------------------------------------------------------------------


async def test_connection_not_open_errors() -> None:
    connection = MqttConnection()
    with pytest.raises(
        NotOpenError, match=exactly("Connection was not opened")
    ) as info:
        await connection.publish("t", "data", None)
    assert info.value.code == "NOT_OPEN"
    with pytest.raises(NotOpenError, match=exactly("Connection was not opened")):
        await connection.subscribe("t", None, Collector())
    with pytest.raises(NotOpenError, match=exactly("Connection was not opened")):
        connection.check_open()
    await connection.unsubscribe("t", Collector())  # a no-op when closed
    await connection.close(None)  # closing a connection never opened is fine
    assert not connection.is_open()


async def test_connection_queue_management_is_a_no_op(mosquitto: Mosquitto) -> None:
    connection = make_connection(mosquitto.uri)
    with anyio.fail_after(TIMEOUT):
        async with connection:
            await connection.create_queue("q1")
            await connection.delete_queue("q1")
            assert await connection.read_queue_names() == []


# -- publish and subscribe -----------------------------------------------------------


async def test_connection_delivers_to_several_listeners(
    mosquitto: Mosquitto, unique_topic: str
) -> None:
    first = Collector()
    seen: list[tuple[str, bytes, QoS]] = []
    async_done = anyio.Event()

    async def async_listener(topic: str, data: bytes, packet: Message) -> None:
        await anyio.lowlevel.checkpoint()
        seen.append((topic, data, packet.qos))
        if len(seen) == 2:
            async_done.set()

    sync_seen: list[bytes] = []

    def sync_listener(topic: str, data: bytes, packet: Message) -> None:
        sync_seen.append(data)

    connection = make_connection(mosquitto.uri)
    with anyio.fail_after(TIMEOUT):
        async with connection:
            await connection.subscribe(unique_topic, {"qos": 1}, first)
            await connection.subscribe(unique_topic, {"qos": 1}, async_listener)
            await connection.subscribe(unique_topic, {"qos": 1}, sync_listener)
            await connection.publish(unique_topic, "text", {"qos": 1})
            await connection.publish(unique_topic, b"\x00bytes", {"qos": 1})
            await first.wait_for(2)
            await async_done.wait()
            await anyio.wait_all_tasks_blocked()  # the sync listener's task too
    assert first.payloads == [b"text", b"\x00bytes"]
    assert first.topics == [unique_topic, unique_topic]
    assert all(isinstance(packet, Message) for _, _, packet in first.messages)
    assert seen == [
        (unique_topic, b"text", QoS.AT_LEAST_ONCE),
        (unique_topic, b"\x00bytes", QoS.AT_LEAST_ONCE),
    ]
    assert sync_seen == [b"text", b"\x00bytes"]


async def test_connection_async_on_message_listener(
    mosquitto: Mosquitto, unique_topic: str
) -> None:
    done = anyio.Event()

    class AsyncListener:
        def __init__(self) -> None:
            self.data: list[bytes] = []

        async def on_message(self, topic: str, data: bytes, packet: Message) -> None:
            await anyio.lowlevel.checkpoint()
            self.data.append(data)
            done.set()

    listener = AsyncListener()
    assert isinstance(listener, IMqttMessageListener)
    connection = make_connection(mosquitto.uri)
    with anyio.fail_after(TIMEOUT):
        async with connection:
            await connection.subscribe(unique_topic, None, listener)
            await connection.publish(unique_topic, "hi", None)
            await done.wait()
    assert listener.data == [b"hi"]


async def test_connection_wildcards_follow_mqtt_rules(
    mosquitto: Mosquitto, unique_topic: str
) -> None:
    plus, hash_ = Collector(), Collector()
    connection = make_connection(mosquitto.uri)
    with anyio.fail_after(TIMEOUT):
        async with connection:
            await connection.subscribe(f"{unique_topic}/+/temp", {"qos": 1}, plus)
            await connection.subscribe(f"{unique_topic}/#", {"qos": 1}, hash_)
            for topic in ("a/temp", "a/humidity", "b/c/temp", "z/temp"):
                await connection.publish(f"{unique_topic}/{topic}", topic, {"qos": 1})
            # Each subscription gets its messages in order: the last one, which
            # both match, arrives after everything before it.
            await plus.wait_for(2)
            await hash_.wait_for(4)
            registrations: list[MqttSubscription] = list(connection._subscriptions)
    assert plus.payloads == [b"a/temp", b"z/temp"]
    assert hash_.payloads == [b"a/temp", b"a/humidity", b"b/c/temp", b"z/temp"]
    assert [sub.filter for sub in registrations] == [False, False]


async def test_connection_retained_message_and_qos_levels(
    mosquitto: Mosquitto, unique_topic: str
) -> None:
    collector = Collector()
    connection = make_connection(mosquitto.uri)
    with anyio.fail_after(TIMEOUT):
        async with connection:
            await connection.publish(
                unique_topic, "kept", {"qos": QoS.EXACTLY_ONCE, "retain": True}
            )
            await connection.subscribe(unique_topic, {"qos": 2}, collector)
            await collector.wait_for(1)
            await connection.publish(unique_topic, "two", {"qos": 2})
            await connection.publish(unique_topic, "one", {"qos": 1, "retain": "no"})
            await connection.publish(unique_topic, "zero", {"qos": 0})
            await collector.wait_for(4)
            await connection.unsubscribe(unique_topic, collector)
            await connection.publish(unique_topic, b"", {"retain": True})  # clean up
    (_, data, retained), *live = collector.messages
    assert (data, retained.retain, retained.qos) == (b"kept", True, QoS.EXACTLY_ONCE)
    assert [(d, p.qos, p.retain) for _, d, p in live] == [
        (b"two", QoS.EXACTLY_ONCE, False),
        (b"one", QoS.AT_LEAST_ONCE, False),
        (b"zero", QoS.AT_MOST_ONCE, False),
    ]


async def test_connection_identical_registrations_deliver_twice(
    mosquitto: Mosquitto, unique_topic: str
) -> None:
    collector = Collector()
    connection = make_connection(mosquitto.uri)
    with anyio.fail_after(TIMEOUT):
        async with connection:
            await connection.subscribe(unique_topic, {"qos": 1}, collector)
            await connection.subscribe(unique_topic, {"qos": 1}, collector)
            await connection.publish(unique_topic, "twice", {"qos": 1})
            await collector.wait_for(2)
    assert collector.payloads == [b"twice", b"twice"]


async def test_connection_unsubscribe_removes_one_registration_at_a_time(
    mosquitto: Mosquitto, unique_topic: str
) -> None:
    first, second, sentinel = Collector(), Collector(), Collector()
    done = f"{unique_topic}/done"
    connection = make_connection(mosquitto.uri)
    with anyio.fail_after(TIMEOUT):
        async with connection:
            client = connection.get_connection()
            assert client is not None
            await connection.subscribe(done, {"qos": 1}, sentinel)
            await connection.subscribe(unique_topic, {"qos": 1}, first)
            await connection.subscribe(unique_topic, {"qos": 1}, second)

            await connection.unsubscribe(unique_topic, first)
            await connection.unsubscribe(unique_topic, Collector())  # no match
            await connection.unsubscribe("other/topic", second)  # no match
            await connection.publish(unique_topic, "m1", {"qos": 1})
            await second.wait_for(1)

            received = client.statistics().messages_received
            await connection.unsubscribe(unique_topic, second)  # the last: UNSUBSCRIBE
            await connection.publish(unique_topic, "m2", {"qos": 1})
            await connection.publish(done, "end", {"qos": 1})
            await sentinel.wait_for(1)
            # The broker no longer sends the topic: only the sentinel came in.
            assert client.statistics().messages_received == received + 1
    assert first.payloads == []
    assert second.payloads == [b"m1"]


async def test_connection_close_forgets_registrations(
    mosquitto: Mosquitto, unique_topic: str
) -> None:
    collector, sentinel = Collector(), Collector()
    connection = make_connection(mosquitto.uri)
    with anyio.fail_after(TIMEOUT):
        async with connection:
            await connection.subscribe(unique_topic, {"qos": 1}, collector)
        async with connection:
            await connection.subscribe(f"{unique_topic}/s", {"qos": 1}, sentinel)
            await connection.publish(unique_topic, "lost", {"qos": 1})
            await connection.publish(f"{unique_topic}/s", "end", {"qos": 1})
            await sentinel.wait_for(1)
    assert collector.payloads == []


async def test_connection_option_errors(
    mosquitto: Mosquitto, unique_topic: str
) -> None:
    connection = make_connection(mosquitto.uri)
    with anyio.fail_after(TIMEOUT):
        async with connection:
            with pytest.raises(
                ValueError,
                match=exactly(
                    "unknown publish option 'qso': use dup, properties, qos, retain"
                ),
            ):
                await connection.publish(unique_topic, "x", {"qso": 1})
            with pytest.raises(
                ValueError, match=exactly("qos must be 0, 1 or 2, not 3")
            ):
                await connection.publish(unique_topic, "x", {"qos": 3})
            with pytest.raises(
                ValueError, match=exactly("qos must be 0, 1 or 2, not True")
            ):
                await connection.publish(unique_topic, "x", {"qos": True})
            with pytest.raises(
                ValueError, match=exactly("retain must be true or false, not 'maybe'")
            ):
                await connection.publish(unique_topic, "x", {"retain": "maybe"})
            with pytest.raises(
                ValueError, match=exactly("retain must be true or false, not 1.5")
            ):
                await connection.publish(unique_topic, "x", {"retain": 1.5})
            with pytest.raises(
                TypeError,
                match=exactly(
                    "properties must be a trio_mqttconn.Properties, not dict"
                ),
            ):
                await connection.publish(unique_topic, "x", {"properties": {}})
            with pytest.raises(
                ValueError,
                match=exactly(
                    "unknown subscribe option 'bufer': use buffer, manual_ack, nl, "
                    "no_local, overflow, properties, qos, rap, retain_as_published, "
                    "retain_handling, rh"
                ),
            ):
                await connection.subscribe(unique_topic, {"bufer": 5}, Collector())
            for bad in (0, "ten", True):
                with pytest.raises(
                    ValueError,
                    match=exactly(
                        f"buffer must be a whole number of messages, at least 1, "
                        f"not {bad!r}"
                    ),
                ):
                    await connection.subscribe(
                        unique_topic, {"buffer": bad}, Collector()
                    )
            with pytest.raises(
                ValueError,
                match=exactly("overflow must be 'wait' or 'drop_oldest', not 'block'"),
            ):
                await connection.subscribe(
                    unique_topic, {"overflow": "block"}, Collector()
                )
            with pytest.raises(
                ValueError, match=exactly("manual_ack must be true or false, not 'x'")
            ):
                await connection.subscribe(
                    unique_topic, {"manual_ack": "x"}, Collector()
                )
            with pytest.raises(
                ValueError, match=exactly("retain_handling must be 0, 1 or 2, not 7")
            ):
                await connection.subscribe(
                    unique_topic, {"retain_handling": 7}, Collector()
                )
            with pytest.raises(
                TypeError,
                match=exactly(
                    "listener must have an on_message(topic, data, packet) method or "
                    "be callable, not int"
                ),
            ):
                await connection.subscribe(unique_topic, None, 42)  # type: ignore[arg-type]
            assert linked(connection)


async def test_connection_mqtt5_subscription_options_and_properties(
    mosquitto: Mosquitto, unique_topic: str
) -> None:
    from trio_mqttconn import Properties

    local = Collector()
    connection, other = make_connection(mosquitto.uri), make_connection(mosquitto.uri)
    with anyio.fail_after(TIMEOUT):
        async with connection, other:
            await connection.subscribe(
                unique_topic,
                {
                    "qos": 1,
                    "no_local": True,
                    "retain_as_published": "true",
                    "retain_handling": "0",
                },
                local,
            )
            await connection.publish(unique_topic, "own", {"qos": 1})
            await other.publish(
                unique_topic,
                "props",
                {"qos": 1, "properties": Properties(user_properties=(("k", "v"),))},
            )
            await local.wait_for(1)
            assert [sub.filter for sub in connection._subscriptions] == [True]
    # no_local: the connection's own message did not come back.
    [(_, data, packet)] = local.messages
    assert data == b"props"
    assert packet.properties.user_properties == (("k", "v"),)


# -- listeners that fail ---------------------------------------------------------------


async def test_connection_listener_that_raises_is_logged_and_counted(
    mosquitto: Mosquitto, unique_topic: str
) -> None:
    logger, counters, collector = PipLogger(), PipCounters(), Collector()
    calls: list[bytes] = []
    both_failed = anyio.Event()

    def broken(topic: str, data: bytes, packet: Message) -> None:
        calls.append(data)
        if len(calls) == 2:
            both_failed.set()
        raise RuntimeError(f"cannot handle {data!r}")

    connection = make_connection(mosquitto.uri)
    connection.set_references(
        References.from_tuples(LOGGER, logger, COUNTERS, counters)
    )
    with anyio.fail_after(TIMEOUT):
        async with connection:
            await connection.subscribe(unique_topic, {"qos": 1}, broken)
            await connection.subscribe(unique_topic, {"qos": 1}, collector)
            await connection.publish(unique_topic, "m1", {"qos": 1})
            await connection.publish(unique_topic, "m2", {"qos": 1})
            await collector.wait_for(2)
            await both_failed.wait()  # its dispatch task went on after the first
            await anyio.wait_all_tasks_blocked()
            assert linked(connection)
    assert calls == [b"m1", b"m2"]
    failures = [r for r in logger.records if r[3] == "Failed to process the message"]
    assert [str(error) for _, _, error, _ in failures] == [
        "cannot handle b'm1'",
        "cannot handle b'm2'",
    ]
    assert counters.counts[COUNTER_ERRORS] == 2
    assert counters.counts[COUNTER_RECEIVED] == 4


# -- connect failures ----------------------------------------------------------------


async def test_connection_closed_port_fails_within_connect_timeout() -> None:
    port = closed_port()
    logger, counters = PipLogger(), PipCounters()
    connection = make_connection(
        f"mqtt://127.0.0.1:{port}", "options.connect_timeout", 2000
    )
    connection.set_references(
        References.from_tuples(LOGGER, logger, COUNTERS, counters)
    )
    with anyio.fail_after(TIMEOUT):
        async with anyio.create_task_group() as group:
            connection.bind(group)
            began = anyio.current_time()
            with pytest.raises(
                ConnectError, match=r"^Connection to MQTT broker failed: "
            ) as info:
                await connection.open("ctx-7")
            assert anyio.current_time() - began < 2.0
    assert info.value.code == "CONNECT_FAILED"
    assert info.value.reason_code is None
    assert isinstance(info.value.__cause__, ConnectError)
    # The detail is the engine's error, which names the broker.
    assert (
        str(info.value) == f"Connection to MQTT broker failed: {info.value.__cause__}"
    )
    assert f"127.0.0.1:{port}" in str(info.value)
    assert not connection.is_open()
    assert connection.get_connection() is None
    # One record per event: the failure is raised, not logged as well (#10).
    assert logger.records == []
    assert counters.counts == {COUNTER_ERRORS: 1}


async def test_connection_silent_broker_times_out_after_connect_timeout() -> None:
    accepted: list[anyio.abc.SocketStream] = []
    async with await anyio.create_tcp_listener(local_host="127.0.0.1") as listener:
        port = listener.extra(anyio.abc.SocketAttribute.local_port)

        async def hold(stream: anyio.abc.SocketStream) -> None:
            accepted.append(stream)  # never answers CONNECT

        connection = make_connection(
            f"mqtt://127.0.0.1:{port}", "options.connect_timeout", 300
        )
        with anyio.fail_after(TIMEOUT):
            async with anyio.create_task_group() as group:
                group.start_soon(listener.serve, hold)
                connection.bind(group)
                began = anyio.current_time()
                with pytest.raises(
                    ConnectError, match=r"^Connection to MQTT broker failed: "
                ) as info:
                    await connection.open(None)
                elapsed = anyio.current_time() - began
                group.cancel_scope.cancel()
        for stream in accepted:
            await stream.aclose()
    assert 0.3 <= elapsed < 5
    assert info.value.code == "CONNECT_FAILED"
    assert isinstance(info.value.__cause__, ConnectTimeout)
    assert (
        str(info.value) == f"Connection to MQTT broker failed: {info.value.__cause__}"
    )
    assert "0.3 s" in str(info.value)


async def test_connection_refused_password(mosquitto: Mosquitto) -> None:
    connection = MqttConnection()
    connection.configure(
        ConfigParams.from_tuples(
            "connection.host",
            mosquitto.host,
            "connection.port",
            mosquitto.auth_port,
            "credential.username",
            mosquitto.username,
            "credential.password",
            "wrong-secret",
        )
    )
    where = f"mqtt://{mosquitto.host}:{mosquitto.auth_port}"
    with anyio.fail_after(TIMEOUT):
        async with anyio.create_task_group() as group:
            connection.bind(group)
            with pytest.raises(
                ConnectError,
                match=rf"^Connection to MQTT broker failed: {re.escape(where)} refused "
                r"the connection: not authorized \(reason code 0x87\)",
            ) as info:
                await connection.open(None)
    assert (
        str(info.value) == f"Connection to MQTT broker failed: {info.value.__cause__}"
    )
    assert info.value.code == "CONNECT_FAILED"
    assert info.value.reason_code == ReasonCode.NOT_AUTHORIZED
    assert "wrong-secret" not in str(info.value) + repr(connection)
    assert not connection.is_open()


async def test_connection_right_password_from_a_credential_store(
    mosquitto: Mosquitto, unique_topic: str
) -> None:
    store = MemoryCredentialStore()
    store.store(
        None, "broker", {"username": mosquitto.username, "password": mosquitto.password}
    )
    discovery = MemoryDiscovery()
    discovery.register(
        None, "mqtt", {"host": mosquitto.host, "port": mosquitto.auth_port}
    )
    connection = MqttConnection()
    connection.configure(
        ConfigParams.from_tuples(
            "connection.discovery_key", "mqtt", "credential.store_key", "broker"
        )
    )
    connection.set_references(
        References.from_tuples(STORE, store, DISCOVERY, discovery)
    )
    collector = Collector()
    with anyio.fail_after(TIMEOUT):
        async with connection:
            await connection.subscribe(unique_topic, {"qos": 1}, collector)
            await connection.publish(unique_topic, "authenticated", {"qos": 1})
            await collector.wait_for(1)
    assert collector.payloads == [b"authenticated"]


# -- references -------------------------------------------------------------------------


async def test_connection_logs_and_counts_through_pip_services_references(
    mosquitto: Mosquitto, unique_topic: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    install_fake_pip_services(monkeypatch)
    logger, counters, collector = PipLogger(), PipCounters(), Collector()
    references = PipReferences(
        PipDescriptor("pip-services", "logger", "console", "default", "1.0"),
        logger,
        PipDescriptor("pip-services", "counters", "log", "default", "1.0"),
        counters,
    )
    connection = make_connection(mosquitto.uri, "client_id", "pip-refs")
    connection.set_references(references)
    with anyio.fail_after(TIMEOUT):
        async with anyio.create_task_group() as group:
            connection.bind(group)
            await connection.open("ctx-1")
            await connection.subscribe(unique_topic, {"qos": 1}, collector)
            await connection.publish(unique_topic, "one", {"qos": 1})
            await connection.publish(unique_topic, "two", None)
            await collector.wait_for(2)
            await connection.close("ctx-2")
    assert logger.records == [
        (
            "info",
            "ctx-1",
            None,
            f"Connected to MQTT broker at {mosquitto.uri} as pip-refs",
        ),
        ("debug", "ctx-2", None, "Disconnected from MQTT broker"),
    ]
    assert counters.counts == {
        COUNTER_CONNECTS: 1,
        COUNTER_PUBLISHED: 2,
        COUNTER_RECEIVED: 2,
    }
    [connect_time] = counters.timings[COUNTER_CONNECT_TIME]
    assert 0 <= connect_time < TIMEOUT * 1000


async def test_connection_logs_to_a_stdlib_logger_reference(
    mosquitto: Mosquitto, unique_topic: str
) -> None:
    handler = ListHandler()
    logger = logging.getLogger(f"test.connection.{unique_topic}")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    short, counters = ShortLogger(), OneByOneCounters()
    connection = make_connection(mosquitto.uri, "client_id", "stdlib-logger")

    def broken(topic: str, data: bytes, packet: Message) -> None:
        raise ValueError("nope")

    done = Collector()
    connection.set_references(
        References.from_tuples(LOGGER, logger, LOGGER, short, COUNTERS, counters)
    )
    with anyio.fail_after(TIMEOUT):
        async with connection:
            await connection.subscribe(unique_topic, None, broken)
            await connection.subscribe(unique_topic, None, done)
            await connection.publish(unique_topic, "x", {"qos": 1})
            await done.wait_for(1)
            await anyio.wait_all_tasks_blocked()
    messages = [(r.levelno, r.getMessage()) for r in handler.records]
    assert messages == [
        (logging.INFO, f"Connected to MQTT broker at {mosquitto.uri} as stdlib-logger"),
        (logging.ERROR, "Failed to process the message"),
        (logging.DEBUG, "Disconnected from MQTT broker"),
    ]
    error_record = handler.records[1]
    assert error_record.exc_info is not None
    assert isinstance(error_record.exc_info[1], ValueError)
    # A pip-services style logger without debug gets what it can take.
    assert short.records == [
        ("info", f"Connected to MQTT broker at {mosquitto.uri} as stdlib-logger"),
        ("error", "Failed to process the message"),
    ]
    assert counters.counts == {
        COUNTER_CONNECTS: 1,
        COUNTER_PUBLISHED: 1,
        COUNTER_RECEIVED: 2,
        COUNTER_ERRORS: 1,
    }
    assert counters.timings == [COUNTER_CONNECT_TIME]


async def test_connection_without_logger_uses_the_package_logger(
    mosquitto: Mosquitto, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="trio_mqttconn.connection")
    connection = make_connection(mosquitto.uri, "client_id", "package-logger")
    with anyio.fail_after(TIMEOUT):
        async with connection:
            pass
    assert [
        r.getMessage() for r in caplog.records if r.name == "trio_mqttconn.connection"
    ] == [
        f"Connected to MQTT broker at {mosquitto.uri} as package-logger",
        "Disconnected from MQTT broker",
    ]


# -- client ids ---------------------------------------------------------------------------


async def test_connection_two_without_client_id_at_once(
    mosquitto: Mosquitto, unique_topic: str
) -> None:
    first, second = make_connection(mosquitto.uri), make_connection(mosquitto.uri)
    got_first, got_second = Collector(), Collector()
    with anyio.fail_after(TIMEOUT):
        async with first, second:
            ids = [str(c.get_connection()) for c in (first, second)]
            await first.subscribe(f"{unique_topic}/1", {"qos": 1}, got_first)
            await second.subscribe(f"{unique_topic}/2", {"qos": 1}, got_second)
            await second.publish(f"{unique_topic}/1", "to first", {"qos": 1})
            await first.publish(f"{unique_topic}/2", "to second", {"qos": 1})
            await got_first.wait_for(1)
            await got_second.wait_for(1)
            assert linked(first)
            assert linked(second)
    host = socket.gethostname()
    assert ids[0] != ids[1]
    assert all(re.search(rf"'{re.escape(host)}-[0-9a-f]{{8}}'", i) for i in ids)
    assert got_first.payloads == [b"to first"]
    assert got_second.payloads == [b"to second"]


async def test_connection_keeps_its_generated_client_id_across_opens(
    mosquitto: Mosquitto,
) -> None:
    connection = make_connection(mosquitto.uri)
    with anyio.fail_after(TIMEOUT):
        async with connection:
            first = connection.get_connection().client_id  # type: ignore[union-attr]
        async with connection:
            second = connection.get_connection().client_id  # type: ignore[union-attr]
    assert first == second


# -- smaller pieces ----------------------------------------------------------------------


async def test_connection_will_options_reach_the_engine(mosquitto: Mosquitto) -> None:
    from trio_mqttconn import Will

    connection = make_connection(
        mosquitto.uri,
        "options.will_topic",
        "status/svc",
        "options.will_payload",
        "gone",
        "options.will_qos",
        1,
        "options.will_retain",
        True,
    )
    with anyio.fail_after(TIMEOUT):
        async with connection:
            client = connection.get_connection()
            assert client is not None
            assert client.will == Will(
                topic="status/svc", payload=b"gone", qos=QoS.AT_LEAST_ONCE, retain=True
            )


async def test_connection_odd_references_are_tolerated(
    mosquitto: Mosquitto, unique_topic: str
) -> None:
    class OpaqueError:
        """A callable whose signature cannot be read."""

        __signature__ = "opaque"

        def __init__(self) -> None:
            self.calls: list[tuple[object, ...]] = []

        def __call__(self, *args: object) -> None:
            self.calls.append(args)

    class OpaqueLogger:
        def __init__(self) -> None:
            self.error = OpaqueError()

    opaque = OpaqueLogger()
    collector = Collector()

    def broken(topic: str, data: bytes, packet: Message) -> None:
        raise RuntimeError("x")

    connection = make_connection(mosquitto.uri)
    connection.set_references(
        References.from_tuples(LOGGER, opaque, COUNTERS, object())
    )
    with anyio.fail_after(TIMEOUT):
        async with connection:
            await connection.subscribe(unique_topic, None, broken)
            await connection.subscribe(unique_topic, None, collector)
            [registration, _] = connection._subscriptions
            await connection.publish(unique_topic, "x", None)
            await collector.wait_for(1)
            await anyio.wait_all_tasks_blocked()
            statistics = registration.statistics()
            assert statistics is not None
            assert statistics.delivered == 1
            await connection.unsubscribe(unique_topic, broken)
            assert registration.statistics() is None
    [(context, error, text)] = opaque.error.calls
    assert (context, text) == (None, "Failed to process the message")
    assert isinstance(error, RuntimeError)


async def test_connection_async_with_raises_the_open_error() -> None:
    connection = make_connection(f"mqtt://127.0.0.1:{closed_port()}")
    with anyio.fail_after(TIMEOUT), pytest.raises(ConnectError) as info:
        async with connection:
            pytest.fail("the body does not run")  # pragma: no cover
    assert info.value.code == "CONNECT_FAILED"
    assert not connection.is_open()


async def test_single_exception_of_a_task_group() -> None:
    from trio_mqttconn import MqttInternalError
    from trio_mqttconn._groups import collapse as _single

    body, other = KeyError("body"), ValueError("other")
    cancelled = anyio.get_cancelled_exc_class()
    cancel = cancelled.__new__(cancelled)
    group = BaseExceptionGroup("g", [other, BaseExceptionGroup("h", [body])])
    assert _single(group, body) is body
    assert _single(BaseExceptionGroup("g", [cancel, other]), None) is other
    assert _single(BaseExceptionGroup("g", [cancel]), None) is cancel
    error = _single(BaseExceptionGroup("g", [other, KeyError()]), None)
    assert isinstance(error, MqttInternalError)
    assert isinstance(error.__cause__, BaseExceptionGroup)


async def test_connection_closed_by_its_own_listener(
    mosquitto: Mosquitto, unique_topic: str
) -> None:
    connection = make_connection(mosquitto.uri)
    closed = anyio.Event()

    async def close_on_message(topic: str, data: bytes, packet: Message) -> None:
        # The dispatch task running this is one of the tasks close() stops.
        await connection.close(None)
        closed.set()

    with anyio.fail_after(TIMEOUT):
        async with anyio.create_task_group() as group:
            connection.bind(group)
            await connection.open(None)
            await connection.subscribe(unique_topic, None, close_on_message)
            # QoS 0: a QoS 1 publish waits for its PUBACK, which may come after
            # the listener closed the connection (the publish then rightly fails).
            await connection.publish(unique_topic, "stop", {"qos": 0})
            await closed.wait()
            assert not connection.is_open()
            assert connection.get_connection() is None
        # Leaving the task group waited for the engine's tasks.
