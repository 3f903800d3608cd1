"""docs/examples/pip_services_example.py runs against the real broker."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from tests._examples import EXAMPLES, run_example

if TYPE_CHECKING:
    from trio_mqttconn.testing import Mosquitto

EXAMPLE = EXAMPLES / "pip_services_example.py"


def test_example_pip_services_runs(mosquitto: Mosquitto) -> None:
    result = run_example(EXAMPLE, mosquitto, timeout=30)
    lines = result.stdout.splitlines()
    prefix = r"example/\d+"
    assert [re.sub(prefix, "example/<pid>", line) for line in lines] == [
        "example/<pid>/orders/0: order 0 created (QoS 1)",
        "example/<pid>/orders/1: order 1 created (QoS 1)",
        "example/<pid>/orders/2: order 2 created (QoS 1)",
        "queue invoices: invoice.created {'order': 1} (trace trace-1)",
        "closed: True",
    ]
