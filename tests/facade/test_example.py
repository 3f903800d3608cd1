"""docs/examples/pip_services_example.py runs against the real broker."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from trio_mqttconn.testing import Mosquitto

ROOT = Path(__file__).resolve().parent.parent.parent
EXAMPLE = ROOT / "docs" / "examples" / "pip_services_example.py"


def test_example_pip_services_runs(mosquitto: Mosquitto) -> None:
    path_entries = [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
    env = {
        **os.environ,
        "MQTT_URI": mosquitto.uri,
        "PYTHONPATH": os.pathsep.join(path_entries),
    }
    result = subprocess.run(
        [sys.executable, str(EXAMPLE)],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    prefix = r"example/\d+"
    assert [re.sub(prefix, "example/<pid>", line) for line in lines] == [
        "example/<pid>/orders/0: order 0 created (QoS 1)",
        "example/<pid>/orders/1: order 1 created (QoS 1)",
        "example/<pid>/orders/2: order 2 created (QoS 1)",
        "queue invoices: invoice.created {'order': 1} (trace trace-1)",
        "closed: True",
    ]
