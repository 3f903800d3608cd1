"""The pytest plugin of trio_mqttconn (entry point ``trio_mqttconn``).

pytest loads it automatically once trio_mqttconn is installed. It only defines
fixtures (none is autouse), so a test suite that does not ask for them is unaffected.
"""

from __future__ import annotations

import pytest
import trio
import trio.testing

from ._fake_broker import VIRTUAL_TIME_LIMIT

__all__ = ["virtual_deadline_fixture"]


@pytest.fixture(name="virtual_deadline")
async def virtual_deadline_fixture(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    """Fail a trio test that is still running at `VIRTUAL_TIME_LIMIT` virtual seconds.

    With the autojump clock a test that waits for something that never happens
    would hang in real time; this watchdog gives the clock a deadline to jump to, so
    such a test fails at once with a clear message instead.
    """

    async def watchdog() -> None:
        await trio.sleep(VIRTUAL_TIME_LIMIT)
        raise AssertionError(
            f"the test still runs after {VIRTUAL_TIME_LIMIT:g} s of virtual time: "
            "it waits for something that never happens"
        )

    nursery.start_soon(watchdog, name="virtual-deadline")
