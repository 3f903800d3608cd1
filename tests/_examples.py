"""Run a program from docs/examples against a broker, the way a user would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from trio_mqttconn.testing import Mosquitto

__all__ = ["EXAMPLES", "run_example"]

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "docs" / "examples"


def run_example(
    path: Path, mosquitto: Mosquitto, *, timeout: float
) -> subprocess.CompletedProcess[str]:
    """Run *path* with ``MQTT_URI`` pointing at *mosquitto*; assert it exits with 0.

    The repository root goes first on ``PYTHONPATH`` so the example imports this
    tree's ``trio_mqttconn``.
    """
    path_entries = [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
    env = {
        **os.environ,
        "MQTT_URI": mosquitto.uri,
        "PYTHONPATH": os.pathsep.join(path_entries),
    }
    result = subprocess.run(
        [sys.executable, str(path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result
