"""Our MqttMessageQueue against the upstream Python one, both ways, through mosquitto.

The upstream queue is ``pip_services4_mqtt.queues.MqttMessageQueue`` from the
package index, on paho-mqtt 1.x, installed by ``nox -s interop``. It is
synchronous (paho runs its own network thread), so its blocking calls run in a
worker thread here; ours run on the event loop as usual.

Two upstream quirks are worked around in the test, not in our code:

- its connection calls ``paho.Client.connect(host)`` without the port, so it can
  only reach a broker on 1883; the fixture's broker listens on a free port, which
  the patched ``connect`` supplies;
- its subscription is asynchronous (it does not wait for SUBACK), so what we send
  to it is retained, and it receives it whenever its subscription lands.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

import anyio
import paho.mqtt.client as paho
import pytest
from pip_services4_components.config import ConfigParams as PipConfigParams
from pip_services4_components.context import Context as PipContext
from pip_services4_components.refer import References as PipReferences
from pip_services4_messaging.queues import MessageEnvelope as PipEnvelope
from pip_services4_mqtt.queues import MqttMessageQueue as UpstreamQueue

from trio_mqttconn import ConfigParams, MessageEnvelope, MqttMessageQueue

if TYPE_CHECKING:
    from trio_mqttconn.testing import Mosquitto

pytestmark = pytest.mark.anyio

TIMEOUT = 20


@pytest.fixture
def upstream_port(mosquitto: Mosquitto, monkeypatch: pytest.MonkeyPatch) -> None:
    """Let the upstream connection reach the fixture's broker (it ignores the port)."""
    connect = paho.Client.connect

    def connect_to_fixture(
        self: paho.Client, host: str, port: int = 1883, keepalive: int = 60
    ) -> int:
        del port
        result: int = connect(self, host, mosquitto.port, keepalive)
        return result

    monkeypatch.setattr(paho.Client, "connect", connect_to_fixture)


def upstream_queue(mosquitto: Mosquitto, topic: str) -> UpstreamQueue:
    queue = UpstreamQueue()
    queue.configure(
        PipConfigParams.from_tuples(
            "connection.host",
            "127.0.0.1",
            "connection.port",
            mosquitto.port,
            "topic",
            topic,
            "options.serialize_envelope",
            True,
            "options.autosubscribe",
            True,
            "options.qos",
            1,
        )
    )
    queue.set_references(PipReferences())
    return queue


def our_queue(mosquitto: Mosquitto, topic: str, *tuples: object) -> MqttMessageQueue:
    queue = MqttMessageQueue()
    queue.configure(
        ConfigParams.from_tuples(
            "connection.uri",
            mosquitto.uri,
            "topic",
            topic,
            "options.serialize_envelope",
            True,
            "options.autosubscribe",
            True,
            "options.qos",
            1,
            *tuples,
        )
    )
    return queue


async def test_upstream_python_queue_sends_to_ours(
    mosquitto: Mosquitto, unique_topic: str, upstream_port: None
) -> None:
    theirs = upstream_queue(mosquitto, unique_topic)
    ours = our_queue(mosquitto, unique_topic)
    with anyio.fail_after(TIMEOUT):
        async with ours:  # subscribed (SUBACK received) before they send
            await anyio.to_thread.run_sync(theirs.open, None)
            try:
                envelope = PipEnvelope(
                    PipContext.from_trace_id("trace-1"), "order.created", "Grüße"
                )
                await anyio.to_thread.run_sync(theirs.send, None, envelope)
                received = await ours.receive(None, 10_000)
            finally:
                await anyio.to_thread.run_sync(theirs.close, None)
    assert received is not None
    assert received.trace_id == "trace-1"
    assert received.message_type == "order.created"
    assert received.get_message_as_string() == "Grüße"
    assert received.message_id == envelope.message_id
    assert received.sent_time is not None  # naive local time, read as UTC


async def test_our_queue_sends_to_the_upstream_python_queue(
    mosquitto: Mosquitto, unique_topic: str, upstream_port: None
) -> None:
    theirs = upstream_queue(mosquitto, unique_topic)
    ours = our_queue(mosquitto, unique_topic, "options.retain", True)
    sent = MessageEnvelope("trace-2", "order.shipped", '{"id": 7}')
    with anyio.fail_after(TIMEOUT):
        async with ours:
            await ours.send(None, sent)
            await anyio.to_thread.run_sync(theirs.open, None)
            try:
                received = await anyio.to_thread.run_sync(
                    functools.partial(theirs.receive, None, 10_000)
                )
            finally:
                await anyio.to_thread.run_sync(theirs.close, None)
            # remove the retained message
            connection = ours._connection
            assert connection is not None
            await connection.publish(unique_topic, b"", {"qos": 1, "retain": True})
    assert received is not None
    assert received.trace_id == "trace-2"
    assert received.message_type == "order.shipped"
    assert received.message_id == sent.message_id
    assert received.get_message_as() == {"id": 7}
    assert received.sent_time is not None
