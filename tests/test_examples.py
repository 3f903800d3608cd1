"""Every program in docs/examples runs against the real broker."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from trio_mqttconn.testing import Mosquitto

EXAMPLES = Path(__file__).resolve().parent.parent / "docs" / "examples"


@pytest.mark.parametrize(
    "path", sorted(EXAMPLES.glob("*.py")), ids=lambda path: path.name
)
def test_examples_run(path: Path, mosquitto: Mosquitto) -> None:
    root = str(EXAMPLES.parent.parent)
    path_entries = [root, *filter(None, [os.environ.get("PYTHONPATH")])]
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
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip(), "an example prints what it did"
