"""Suite-only fixtures: unique topics, anyio backends, the hypothesis profile.

The broker fixtures (``mosquitto``, ``mosquitto_factory``, ``mqtt_client``,
``fake_broker``, ``virtual_deadline``) come from our own pytest plugin,
trio_mqttconn.testing.plugin, exactly as a user's suite gets them.
"""

from __future__ import annotations

import itertools
import os

import pytest
from hypothesis import settings

# CI runs the arbitrary-bytes decoder property with at least 10,000 examples; the
# profile is chosen by the tests that need it (see tests/core/test_decoder_fuzz.py).
settings.register_profile("ci", deadline=None, print_blob=True)
settings.load_profile("ci")


def pytest_configure(config: pytest.Config) -> None:
    """Stop at once, and say why, when the trio_mqttconn plugin is not loaded.

    The broker and fake-broker fixtures come from it (``trio_mqttconn.testing.plugin``,
    a ``pytest11`` entry point): it loads only when the package is installed.
    """
    if not config.pluginmanager.has_plugin("trio_mqttconn"):
        raise pytest.UsageError(
            "the trio_mqttconn pytest plugin is not loaded: install the package "
            "(pip install -e '.[test]') and do not pass -p no:trio_mqttconn"
        )


_topic_counter = itertools.count()


@pytest.fixture
def unique_topic(request: pytest.FixtureRequest) -> str:
    """A topic prefix no other test (or run) uses."""
    return f"test/{os.getpid()}/{next(_topic_counter)}/{request.node.name[:40]}"


@pytest.fixture(params=["trio", "asyncio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    """Run anyio tests on both backends, trio first."""
    return str(request.param)
