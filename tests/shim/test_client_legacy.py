"""The asyncio-mqtt 0.16 layer of the aiomqtt shim, on asyncio and on trio.

``client_id=``, ``client.id``, ``connect()``/``disconnect()``,
``async with client.messages() as messages``, ``filtered_messages(filter)`` and
``unfiltered_messages()``, with 0.16's routing: a message that matches a filter goes
to those filter contexts only, the others to ``unfiltered_messages`` and
``messages()``.
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import TYPE_CHECKING, cast

import anyio
import pytest

from trio_mqttconn.aiomqtt import (
    Client,
    Message,
    MqttError,
    MqttReentrantError,
    ProtocolVersion,
    Topic,
)
from trio_mqttconn.aiomqtt.client import LegacyMessage

if TYPE_CHECKING:
    from collections.abc import Iterator

    from trio_mqttconn.testing import Mosquitto

pytestmark = [pytest.mark.anyio, pytest.mark.broker]

LIMIT = 20
QueueType = type[asyncio.Queue[Message]]


def exactly(text: str) -> str:
    return f"^{re.escape(text)}$"


@pytest.fixture(autouse=True)
def no_unexpected_warnings(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """The legacy layer logs nothing at WARNING+ either (no deprecation noise)."""
    yield
    loud = [r for r in caplog.get_records("call") if r.levelno >= logging.WARNING]
    assert [(r.name, r.getMessage()) for r in loud] == []


def test_legacy_client_id_is_identifier() -> None:
    client = Client("broker.example", client_id="legacy-id")
    assert client.id == client.identifier == "legacy-id"
    with pytest.raises(ValueError, match=r"^identifier and client_id are the same"):
        Client("broker.example", client_id="a", identifier="b")
    # 0.16's other arguments are accepted too.
    Client("broker.example", message_retry_set=20, max_queued_messages=5)
    with pytest.raises(ValueError, match=r"^max_queued_outgoing_messages and max_q"):
        Client("broker.example", max_queued_messages=5, max_queued_outgoing_messages=5)


async def test_legacy_connect_and_disconnect(
    mosquitto: Mosquitto, unique_topic: str
) -> None:
    with anyio.fail_after(LIMIT):
        client = Client(mosquitto.host, mosquitto.port, client_id="legacy-connect")
        await client.connect()
        try:
            with pytest.raises(MqttReentrantError):
                await client.connect()
            await client.subscribe(unique_topic, qos=1)
            await client.publish(unique_topic, "hello", qos=1)
            assert (await anext(client.messages)).payload == b"hello"
        finally:
            await client.disconnect()
        await client.disconnect()  # already disconnected: nothing happens
        await client.connect(timeout=5)
        await client.force_disconnect()


async def test_legacy_messages_context(mosquitto: Mosquitto, unique_topic: str) -> None:
    with anyio.fail_after(LIMIT):
        async with Client(mosquitto.host, mosquitto.port) as client:
            async with client.messages() as messages:
                await client.subscribe(f"{unique_topic}/#", qos=1)
                await client.publish(f"{unique_topic}/a", "one", qos=1)
                await client.publish(f"{unique_topic}/b", "two", qos=1)
                got = [await anext(messages), await anext(messages)]
                # While a 0.16 context is open, the 2.x queue stays empty.
                assert len(client.messages) == 0
            assert [m.payload for m in got] == [b"one", b"two"]
            assert got[0].topic == Topic(f"{unique_topic}/a")
            assert isinstance(got[0], Message)
            # Closed: messages go to the client-wide queue again.
            await client.publish(f"{unique_topic}/c", "three", qos=1)
            assert (await anext(client.messages)).payload == b"three"


async def test_legacy_messages_context_queue_class(
    mosquitto: Mosquitto, unique_topic: str
) -> None:
    with anyio.fail_after(LIMIT):
        async with Client(mosquitto.host, mosquitto.port) as client:
            lifo = cast("QueueType", asyncio.LifoQueue)
            async with client.messages(queue_class=lifo) as messages:
                await client.subscribe(f"{unique_topic}/#", qos=1)
                async with client.filtered_messages(f"{unique_topic}/end") as end:
                    for index in range(3):
                        await client.publish(f"{unique_topic}/n", index, qos=1)
                    await client.publish(f"{unique_topic}/end", "", qos=1)
                    await anext(end)  # the three came before it
                order = [(await anext(messages)).payload for _ in range(3)]
    assert order == [b"2", b"1", b"0"]


async def test_legacy_filtered_and_unfiltered_routing(
    mosquitto: Mosquitto, unique_topic: str
) -> None:
    with anyio.fail_after(LIMIT):
        async with Client(
            mosquitto.host, mosquitto.port, protocol=ProtocolVersion.V5
        ) as client:
            await client.subscribe(f"{unique_topic}/#", qos=1)
            async with (
                client.filtered_messages(f"{unique_topic}/a/+") as filtered,
                client.unfiltered_messages() as unfiltered,
                client.messages() as everything_else,
            ):
                await client.publish(f"{unique_topic}/a/1", "filtered", qos=1)
                await client.publish(f"{unique_topic}/b", "unfiltered", qos=1)
                caught = await anext(filtered)
                rest = await anext(unfiltered)
                other = await anext(everything_else)
    assert isinstance(caught, LegacyMessage)
    assert repr(caught) == (
        f"LegacyMessage(topic='{unique_topic}/a/1', payload=<8 bytes>, qos=1, "
        f"retain=False, mid={caught.mid})"
    )
    assert not caught.dup
    assert (caught.topic, caught.payload, caught.qos) == (
        f"{unique_topic}/a/1",
        b"filtered",
        1,
    )
    assert caught.mid > 0
    assert caught.properties is not None
    assert (rest.topic, rest.payload) == (f"{unique_topic}/b", b"unfiltered")
    assert (other.topic.value, other.payload) == (f"{unique_topic}/b", b"unfiltered")


async def test_legacy_only_one_unfiltered_context(mosquitto: Mosquitto) -> None:
    with anyio.fail_after(LIMIT):
        async with Client(mosquitto.host, mosquitto.port) as client:
            async with client.unfiltered_messages():
                with pytest.raises(
                    RuntimeError,
                    match=exactly(
                        "Only a single unfiltered_messages generator can be used at a time."
                    ),
                ):
                    async with client.unfiltered_messages():
                        pass  # pragma: no cover
            async with client.unfiltered_messages():  # free again
                pass


async def test_legacy_bounded_contexts_drop_and_warn(
    mosquitto: Mosquitto, unique_topic: str, caplog: pytest.LogCaptureFixture
) -> None:
    flt = f"{unique_topic}/f"
    with anyio.fail_after(LIMIT):
        async with Client(mosquitto.host, mosquitto.port) as client:
            await client.subscribe(f"{unique_topic}/#", qos=1)
            async with (
                client.filtered_messages(flt, queue_maxsize=1) as filtered,
                client.unfiltered_messages(queue_maxsize=1) as unfiltered,
                client.filtered_messages(f"{unique_topic}/end") as end,
            ):
                for index in range(2):
                    await client.publish(flt, index, qos=1)
                    await client.publish(f"{unique_topic}/u", index, qos=1)
                await client.publish(f"{unique_topic}/end", "", qos=1)
                await anext(end)
                assert (await anext(filtered)).payload == b"0"
                assert (await anext(unfiltered)).payload == b"0"
    assert sorted(t for t in caplog.record_tuples if t[1] >= logging.WARNING) == [
        (
            "mqtt",
            logging.WARNING,
            f'[topic_filter="{flt}"] Message queue is full. Discarding message.',
        ),
        (
            "mqtt",
            logging.WARNING,
            "[unfiltered] Message queue is full. Discarding message.",
        ),
    ]
    caplog.clear()


async def test_legacy_contexts_raise_after_disconnect(
    mosquitto: Mosquitto, unique_topic: str
) -> None:
    with anyio.fail_after(LIMIT):
        client = Client(mosquitto.host, mosquitto.port)
        await client.connect()
        async with (
            client.messages() as messages,
            client.filtered_messages(unique_topic) as filtered,
        ):
            await client.subscribe(unique_topic, qos=1)
            await client.publish(unique_topic, "last", qos=1)
            assert (await anext(filtered)).payload == b"last"
            await client.disconnect()
            for iterator in (messages, filtered):
                with pytest.raises(
                    MqttError, match=exactly("Disconnected during message iteration")
                ):
                    await anext(iterator)
            await messages.aclose()
