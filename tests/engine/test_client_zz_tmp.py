from __future__ import annotations
import pytest, trio, trio.testing
from tests._fakes import virtual_deadline  # noqa: F401
pytestmark = [pytest.mark.trio, pytest.mark.usefixtures("virtual_deadline")]
async def test_hang(autojump_clock: trio.testing.MockClock) -> None:
    await trio.Event().wait()
async def test_ok(autojump_clock: trio.testing.MockClock) -> None:
    await trio.sleep(5)
    assert trio.current_time() == 5
