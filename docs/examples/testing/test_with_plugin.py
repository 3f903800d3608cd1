"""A user's test file: the fixtures of the trio_mqttconn pytest plugin.

pytest finds the fixtures by itself once trio_mqttconn is installed; this file needs
pytest-trio (for ``@pytest.mark.trio`` and ``autojump_clock``), trustme (TLS) and
the ``mosquitto`` executable. ``tests/test_plugin_example.py`` runs it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
import trio
import trio.testing

from trio_mqttconn import MqttClient
from trio_mqttconn.testing import Answer

if TYPE_CHECKING:
    from trio_mqttconn.testing import FakeBroker, MosquittoFactory


# -- the application code under test --------------------------------------------------


async def report_temperature(client: MqttClient, sensor: str, value: float) -> None:
    """Publish one reading, rounded to a tenth of a degree."""
    await client.publish(f"sensors/{sensor}/temp", f"{value:.1f}", qos=1)


# -- against the shared broker (the ``mosquitto`` fixture) ----------------------------


@pytest.mark.trio
async def test_report_reaches_a_subscriber(mqtt_client: MqttClient) -> None:
    async with mqtt_client.subscription("sensors/+/temp", qos=1) as subscription:
        await report_temperature(mqtt_client, "kitchen", 21.54)
        with trio.fail_after(10):
            message = await subscription.receive()
    assert message.topic == "sensors/kitchen/temp"
    assert message.payload == b"21.5"


@pytest.fixture(params=["trio", "asyncio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    """Run the anyio tests of this file on both backends."""
    return str(request.param)


@pytest.mark.anyio
async def test_report_on_both_backends(mqtt_client: MqttClient) -> None:
    async with mqtt_client.subscription("sensors/hall/temp", qos=1) as subscription:
        await report_temperature(mqtt_client, "hall", 19.0)
        message = await subscription.receive()
    assert message.payload == b"19.0"


# -- private brokers in variants (the ``mosquitto_factory`` fixture) ------------------


@pytest.mark.trio
async def test_tls_with_a_client_certificate(
    mosquitto_factory: MosquittoFactory,
) -> None:
    broker = mosquitto_factory(client_certificates=True)
    async with MqttClient(
        f"mqtts://localhost:{broker.client_cert_port}",
        ssl_context=broker.ssl_context(client_certificate=True),
    ) as client:
        await report_temperature(client, "cellar", 12.0)


@pytest.mark.trio
async def test_bridged_brokers_forward_readings(
    mosquitto_factory: MosquittoFactory,
) -> None:
    local, remote = mosquitto_factory.bridged_pair(topics=("sensors/#",))
    async with (
        MqttClient(remote.uri) as receiver,
        receiver.subscription("sensors/#", qos=1) as subscription,
        MqttClient(local.uri) as sender,
    ):
        await report_temperature(sender, "garage", 7.25)
        with trio.fail_after(10):
            message = await subscription.receive()
    assert (message.topic, message.payload) == ("sensors/garage/temp", b"7.2")


# -- protocol level, on virtual time (the ``fake_broker`` fixture) -------------------


@pytest.mark.trio
async def test_reconnects_after_the_broker_drops_the_connection(
    fake_broker: FakeBroker, autojump_clock: trio.testing.MockClock
) -> None:
    fake_broker.script(Answer(), Answer(refuse=True))  # the first retry is refused
    async with MqttClient(
        "mqtt://broker.test",
        transport=fake_broker.connect,
        reconnect_delay=2,
        reconnect_jitter=0,
    ) as client:
        await fake_broker.connections[0].close()
        await fake_broker.wait_attempts(3)
        await client.wait_connected()
        # Virtual time: the retries come 2 s and then 4 s after the drop at 0 s.
        assert fake_broker.attempt_times() == [0, 2, 6]
        await report_temperature(client, "attic", 30.0)
    assert [m.payload for m in fake_broker.messages] == [b"30.0"]
