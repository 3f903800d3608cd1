"""Shared fixtures: the real mosquitto broker, unique topics, anyio backends."""

from __future__ import annotations

import itertools
import os
from typing import TYPE_CHECKING

import pytest
from hypothesis import settings

from trio_mqttconn.testing import Mosquitto

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

# CI runs the arbitrary-bytes decoder property with at least 10,000 examples; the
# profile is chosen by the tests that need it (see tests/core/test_decoder_fuzz.py).
settings.register_profile("ci", deadline=None, print_blob=True)
settings.load_profile("ci")


@pytest.fixture(scope="session")
def mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    """One mosquitto for the whole session (plain, ws, TLS, password, unix listeners).

    A missing binary is an error with the install command, never a skip.
    """
    broker = Mosquitto(directory=tmp_path_factory.mktemp("mosquitto"))
    broker.start()
    try:
        yield broker
    finally:
        broker.close()


@pytest.fixture
def mosquitto_factory(tmp_path: Path) -> Iterator[Callable[[], Mosquitto]]:
    """Make private brokers for tests that stop, kill or restart them."""
    brokers: list[Mosquitto] = []
    counter = itertools.count()

    def make() -> Mosquitto:
        broker = Mosquitto(directory=tmp_path / f"broker{next(counter)}")
        broker.start()
        brokers.append(broker)
        return broker

    try:
        yield make
    finally:
        for broker in brokers:
            broker.close()


_topic_counter = itertools.count()


@pytest.fixture
def unique_topic(request: pytest.FixtureRequest) -> str:
    """A topic prefix no other test (or run) uses."""
    return f"test/{os.getpid()}/{next(_topic_counter)}/{request.node.name[:40]}"


@pytest.fixture(params=["trio", "asyncio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    """Run anyio tests on both backends, trio first."""
    return str(request.param)
