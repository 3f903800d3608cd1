"""Run a program from docs/examples against a broker, the way a user would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from trio_mqttconn.testing import Mosquitto

__all__ = ["EXAMPLES", "run_example", "run_python"]

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "docs" / "examples"


def run_python(
    args: list[str], *, timeout: float, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``python *args`` with this tree first on ``PYTHONPATH``; assert exit 0.

    *env* adds variables to the current environment.
    """
    path_entries = [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
    result = subprocess.run(
        [sys.executable, *args],
        env={
            **os.environ,
            **(env or {}),
            "PYTHONPATH": os.pathsep.join(path_entries),
        },
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def run_example(
    path: Path, mosquitto: Mosquitto, *, timeout: float
) -> subprocess.CompletedProcess[str]:
    """Run *path* with ``MQTT_URI`` pointing at *mosquitto*; assert it exits with 0."""
    return run_python([str(path)], timeout=timeout, env={"MQTT_URI": mosquitto.uri})
