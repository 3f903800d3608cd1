"""Fixtures of the interop suite: it runs in its own nox session (``nox -s interop``).

Not under ``tests/``: the upstream queue needs ``pip-services4-mqtt`` and paho-mqtt
1.x, which the main test environment does not install (its bench extra pins paho
2.2), so ``nox -s tests`` never collects this directory. The ``mosquitto`` fixture
comes from the ``trio_mqttconn.testing`` pytest plugin.
"""

from __future__ import annotations

import itertools
import os

import pytest

_topics = itertools.count()


@pytest.fixture
def unique_topic(request: pytest.FixtureRequest) -> str:
    """A topic no other test (or run) uses."""
    return f"interop/{os.getpid()}/{next(_topics)}/{request.node.name[:40]}"


@pytest.fixture(params=["trio", "asyncio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    """Our side runs on both backends."""
    return str(request.param)
