"""The pytest plugin of trio_mqttconn: broker, client and fake-broker fixtures.

pytest loads it by itself once trio_mqttconn is installed (the ``pytest11`` entry
point ``trio_mqttconn``); ``-p no:trio_mqttconn`` switches it off. It only defines
fixtures, none of them autouse, and imports nothing heavy until a test asks for one,
so a test suite that does not use them is unaffected.

Fixtures:

``mosquitto`` (session)
    One `Mosquitto` for the whole run, on free loopback ports. A missing
    ``mosquitto`` executable is an error that names the install command, never a skip.
``mosquitto_factory``
    A `MosquittoFactory` for private brokers in variants (TLS, client certificates,
    no WebSocket, no persistence, two bridged brokers); all stopped after the test.
``mqtt_client``
    An `MqttClient` connected to ``mosquitto``, under pytest-trio (``@pytest.mark.trio``)
    or anyio's plugin (``@pytest.mark.anyio``, both backends).
``fake_broker``
    A running `FakeBroker`: a scripted broker over memory streams, for protocol-level
    tests under ``trio.testing.MockClock``.
``virtual_deadline``
    With pytest-trio's ``autojump_clock``: fails a test still running after
    `VIRTUAL_TIME_LIMIT` virtual seconds instead of letting it hang.
"""

from __future__ import annotations

import importlib.util
from typing import TYPE_CHECKING

import pytest

from ._mosquitto import Mosquitto, MosquittoFactory

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator
    from pathlib import Path

    import trio
    import trio.testing

    from .._client import MqttClient
    from ._fake_broker import FakeBroker

__all__ = [
    "fake_broker_fixture",
    "mosquitto_factory_fixture",
    "mosquitto_fixture",
    "mqtt_client_fixture",
    "virtual_deadline_fixture",
]


@pytest.fixture(name="mosquitto", scope="session")
def mosquitto_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    """One mosquitto for the whole session, stopped at its end.

    Listeners: plain TCP (``mosquitto.uri``), WebSocket, TLS (when ``trustme`` is
    installed; trust ``mosquitto.ca_pem``), password (``username``/``password``) and
    a unix socket. Persistence is on. Tests share it: give each its own topics.

    Raises:
        MosquittoNotFound: with the command that installs mosquitto.
    """
    broker = Mosquitto(
        directory=tmp_path_factory.mktemp("mosquitto"), tls=_have_trustme()
    )
    broker.start()
    try:
        yield broker
    finally:
        broker.close()


@pytest.fixture(name="mosquitto_factory")
def mosquitto_factory_fixture(tmp_path: Path) -> Iterator[MosquittoFactory]:
    """Make private brokers for one test; every one is stopped after it.

    For tests that stop, kill or restart a broker, or need a variant::

        def test_bridge(mosquitto_factory):
            local, remote = mosquitto_factory.bridged_pair()
            mtls = mosquitto_factory(client_certificates=True)
    """
    factory = MosquittoFactory(tmp_path)
    try:
        yield factory
    finally:
        factory.close()


@pytest.fixture(name="mqtt_client")
async def mqtt_client_fixture(mosquitto: Mosquitto) -> AsyncIterator[MqttClient]:
    """An `MqttClient` connected to the ``mosquitto`` fixture (MQTT 5, clean start).

    Async: the test must be a trio test (pytest-trio's ``@pytest.mark.trio``) or an
    anyio test (``@pytest.mark.anyio``, on the trio or asyncio backend). The client
    disconnects after the test.
    """
    from .._client import MqttClient

    async with MqttClient(mosquitto.uri) as client:
        yield client


@pytest.fixture(name="fake_broker")
async def fake_broker_fixture() -> AsyncIterator[FakeBroker]:
    """A running `FakeBroker`; connect a client with ``transport=fake_broker.connect``.

    Async, like ``mqtt_client``. Nothing touches a socket, so the test may run under
    ``trio.testing.MockClock(autojump_threshold=0)`` (pytest-trio's
    ``autojump_clock``) and assert exact virtual times.
    """
    from ._fake_broker import FakeBroker

    async with FakeBroker() as broker:
        yield broker


@pytest.fixture(name="virtual_deadline")
async def virtual_deadline_fixture(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    """Fail a trio test that is still running at `VIRTUAL_TIME_LIMIT` virtual seconds.

    With the autojump clock a test that waits for something that never happens
    would hang in real time; this watchdog gives the clock a deadline to jump to, so
    such a test fails at once with a clear message instead. Needs pytest-trio.
    """
    import trio

    from ._fake_broker import VIRTUAL_TIME_LIMIT

    async def watchdog() -> None:
        await trio.sleep(VIRTUAL_TIME_LIMIT)
        raise AssertionError(
            f"the test still runs after {VIRTUAL_TIME_LIMIT:g} s of virtual time: "
            "it waits for something that never happens"
        )

    nursery.start_soon(watchdog, name="virtual-deadline")


def _have_trustme() -> bool:
    return importlib.util.find_spec("trustme") is not None
