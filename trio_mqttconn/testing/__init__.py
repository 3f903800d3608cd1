"""Helpers for testing applications that use trio_mqttconn (also a pytest plugin).

:class:`Mosquitto` runs a real broker on free loopback ports and
:class:`MosquittoFactory` makes variants of it (TLS, client certificates, bridges).
:class:`FakeBroker` is a scripted broker over in-memory streams for protocol-level
tests under ``trio.testing.MockClock``. The fixtures that wrap them live in
:mod:`trio_mqttconn.testing.plugin`, which pytest loads by itself.

Importing this package needs neither pytest nor trustme.
"""

from __future__ import annotations

from ._fake_broker import (
    Answer as Answer,
    Attempt as Attempt,
    FakeBroker as FakeBroker,
    FakeConnection as FakeConnection,
    MemoryByteStream as MemoryByteStream,
    memory_byte_stream_pair as memory_byte_stream_pair,
)
from ._mosquitto import (
    Mosquitto as Mosquitto,
    MosquittoFactory as MosquittoFactory,
    MosquittoNotFound as MosquittoNotFound,
    find_mosquitto as find_mosquitto,
)

__all__ = [
    "Answer",
    "Attempt",
    "FakeBroker",
    "FakeConnection",
    "MemoryByteStream",
    "Mosquitto",
    "MosquittoFactory",
    "MosquittoNotFound",
    "find_mosquitto",
    "memory_byte_stream_pair",
]
