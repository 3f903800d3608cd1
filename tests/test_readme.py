"""The README's promises hold: its first program runs, CI runs its test command."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from tests._examples import ROOT, run_python

if TYPE_CHECKING:
    from pathlib import Path

    from trio_mqttconn.testing import Mosquitto

README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_readme_first_program_runs_against_a_broker(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    blocks = re.findall(r"```python\n(.*?)```", README, re.DOTALL)
    assert blocks, "the README shows a Python program"
    program = blocks[0]
    code_lines = [line for line in program.splitlines() if line.strip()]
    assert len(code_lines) <= 10, "the first program stays a ten-line program"
    assert program.count('"mqtt://localhost"') == 1
    path = tmp_path / "readme_program.py"
    path.write_text(program.replace('"mqtt://localhost"', repr(mosquitto.uri)))
    result = run_python([str(path)], timeout=60)
    assert result.stdout == "sensors/1/temp b'21.5'\n"


def test_ci_runs_exactly_the_readme_test_command() -> None:
    assert "| `pipx run nox` |" in README
    assert "| `pipx run nox -s demo` |" in README
    script = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    commands = [
        line.strip()
        for line in script.splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    assert commands[-1] == "pipx run nox"
