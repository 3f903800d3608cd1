"""Every program in docs/examples runs against the real broker."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from tests._examples import EXAMPLES, run_example

if TYPE_CHECKING:
    from pathlib import Path

    from trio_mqttconn.testing import Mosquitto


@pytest.mark.parametrize(
    "path", sorted(EXAMPLES.glob("*.py")), ids=lambda path: path.name
)
def test_examples_run(path: Path, mosquitto: Mosquitto) -> None:
    result = run_example(path, mosquitto, timeout=60)
    assert result.stdout.strip(), "an example prints what it did"
