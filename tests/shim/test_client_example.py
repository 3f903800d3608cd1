"""docs/examples/aiomqtt_example.py, an unmodified aiomqtt program, on both loops.

The same ``main()`` runs under ``asyncio.run`` and under ``trio.run``, and the file
runs as a script (``python aiomqtt_example.py HOST PORT PREFIX``).
"""

from __future__ import annotations

import asyncio
import importlib.util
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import pytest
import trio

from tests._examples import run_python

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine
    from types import ModuleType

    from trio_mqttconn.testing import Mosquitto

pytestmark = pytest.mark.broker

EXAMPLE = Path(__file__).parents[2] / "docs" / "examples" / "aiomqtt_example.py"
LIMIT = 20
EXPECTED = ["status: online", "kitchen: 21.5", "garage: 8", "attic: n/a"]


def load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("aiomqtt_example", EXAMPLE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def bounded(
    mosquitto: Mosquitto, prefix: str
) -> Callable[[], Coroutine[Any, Any, list[str]]]:
    """The example's main(), bounded in time, for either event loop."""
    example = load_example()

    async def run() -> list[str]:
        with anyio.fail_after(LIMIT):
            lines: list[str] = await example.main(
                mosquitto.host, mosquitto.port, prefix
            )
            return lines

    return run


def test_example_runs_under_asyncio_run(
    mosquitto: Mosquitto, unique_topic: str, capsys: pytest.CaptureFixture[str]
) -> None:
    run = bounded(mosquitto, unique_topic)
    assert asyncio.run(run()) == EXPECTED
    assert capsys.readouterr().out.splitlines() == EXPECTED


def test_example_runs_under_trio_run(
    mosquitto: Mosquitto, unique_topic: str, capsys: pytest.CaptureFixture[str]
) -> None:
    run = bounded(mosquitto, unique_topic)
    assert trio.run(run) == EXPECTED
    assert capsys.readouterr().out.splitlines() == EXPECTED


def test_example_runs_as_a_script(mosquitto: Mosquitto, unique_topic: str) -> None:
    arguments = [str(EXAMPLE), mosquitto.host, str(mosquitto.port), unique_topic]
    result = run_python(arguments, timeout=LIMIT)
    assert result.stderr == ""
    assert result.stdout.splitlines() == EXPECTED
