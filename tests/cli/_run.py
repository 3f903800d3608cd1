"""Run ``python -m trio_mqttconn`` as a subprocess, the way a user would."""

from __future__ import annotations

import os
import select
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

__all__ = ["ROOT", "cli", "start_cli", "wait_for_line"]

ROOT = Path(__file__).resolve().parent.parent.parent


def _env() -> dict[str, str]:
    path = [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(path)}
    if _measured():
        # The command line runs in these subprocesses: measure them too. coverage's
        # .pth hook starts it there from this variable; with ``parallel = true`` each
        # process writes its own data file, which ``coverage combine`` merges.
        env["COVERAGE_PROCESS_START"] = str(ROOT / "pyproject.toml")
    return env


def _measured() -> bool:
    coverage = sys.modules.get("coverage")
    return coverage is not None and coverage.Coverage.current() is not None


def _command(args: list[str | bytes]) -> list[str | bytes]:
    return [sys.executable, "-m", "trio_mqttconn", *args]


def cli(
    *args: str | bytes, stdin: bytes = b"", timeout: float = 30
) -> subprocess.CompletedProcess[bytes]:
    """Run the command line with *args* to the end; stdout and stderr as bytes."""
    return subprocess.run(
        _command(list(args)),
        input=stdin,
        capture_output=True,
        env=_env(),
        timeout=timeout,
        check=False,
    )


def start_cli(*args: str | bytes) -> subprocess.Popen[bytes]:
    """Start the command line with *args*; the caller waits for it."""
    return subprocess.Popen(
        _command(list(args)),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=_env(),
    )


def wait_for_line(stream: IO[bytes] | None, word: bytes, timeout: float = 20) -> bytes:
    """Read *stream* until a line containing *word*; returns what was read.

    This is how a test knows that ``sub -d`` has its SUBACK (no sleeping).
    """
    assert stream is not None
    seen = b""
    deadline = time.monotonic() + timeout
    while word not in seen:
        left = deadline - time.monotonic()
        assert left > 0, f"no {word!r} within {timeout} s; got {seen!r}"
        ready, _, _ = select.select([stream], [], [], left)
        if ready:
            chunk = os.read(stream.fileno(), 4096)
            assert chunk, f"stream ended before {word!r}; got {seen!r}"
            seen += chunk
    return seen
