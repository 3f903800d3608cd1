"""The fake broker and engine test helpers, now in `trio_mqttconn.testing`.

Kept so existing ``from tests._fakes import ...`` lines keep working.
"""

from __future__ import annotations

from trio_mqttconn.testing._fake_broker import (
    URI as URI,
    VIRTUAL_TIME_LIMIT as VIRTUAL_TIME_LIMIT,
    Answer as Answer,
    Attempt as Attempt,
    CancelAfterSteps as CancelAfterSteps,
    FakeBroker as FakeBroker,
    FakeConnection as FakeConnection,
    MemoryByteStream as MemoryByteStream,
    cancel_at_step as cancel_at_step,
    client_task_names as client_task_names,
    live_tasks as live_tasks,
    make_client as make_client,
    memory_byte_stream_pair as memory_byte_stream_pair,
)
from trio_mqttconn.testing.plugin import (
    virtual_deadline_fixture as virtual_deadline_fixture,
)

__all__ = [
    "Answer",
    "Attempt",
    "CancelAfterSteps",
    "FakeBroker",
    "FakeConnection",
    "MemoryByteStream",
    "URI",
    "VIRTUAL_TIME_LIMIT",
    "cancel_at_step",
    "client_task_names",
    "live_tasks",
    "make_client",
    "memory_byte_stream_pair",
    "virtual_deadline_fixture",
]
