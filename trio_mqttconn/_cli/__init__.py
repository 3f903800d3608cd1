"""The command line: ``python -m trio_mqttconn pub | sub | bench | demo``.

``pub`` and ``sub`` take mosquitto_pub's and mosquitto_sub's options; ``bench``
measures throughput and latency; ``demo`` shows a round trip. Every failure is one
line on stderr, ``<prog> <command>: error: <what>``, and a non-zero exit status:
2 for a command line that does not parse, 1 for anything else (27 when ``sub -W``
runs out, 130 after Ctrl-C). This package is the one place that prints.
"""

from __future__ import annotations

import logging
import os
import ssl
import sys
from typing import TYPE_CHECKING

import attrs

from .. import MqttError, __version__
from ._args import CliError, build_parser

if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable, Sequence

__all__ = ["main"]

_COMMANDS = ("pub", "sub", "bench", "demo")
# What ends a command with one line (or quietly); anything else is a bug and shows
# its traceback.
_CAUGHT = (
    KeyboardInterrupt,
    CliError,
    MqttError,
    OSError,
    ssl.SSLError,
    ValueError,
    TypeError,
)


def _prog() -> str:
    name = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    return name if name and name not in ("__main__.py", "-c") else "trio_mqttconn"


def _single(exc: BaseException) -> BaseException:
    """The one error inside nested exception groups, or the group itself."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


def _command(name: str) -> Callable[[argparse.Namespace], int]:
    # Imported on use: `pub` never loads the bench, `--help` loads nothing else.
    if name == "pub":
        from ._pub import run_pub

        return run_pub
    if name == "sub":
        from ._sub import run_sub

        return run_sub
    if name == "bench":
        from ._bench import run_bench

        return run_bench
    from ._demo import run_demo

    return run_demo


@attrs.define
class _Context:
    prog: str
    argv: Sequence[str] | None
    where: str = ""
    quiet: bool = False


def _run(context: _Context) -> int:
    prog = context.prog
    args = build_parser(prog).parse_args(context.argv)
    if args.version:
        sys.stdout.write(f"trio_mqttconn {__version__}\n")
        return 0
    if args.command is None:
        raise CliError("choose a command: pub, sub, bench or demo", status=2)
    context.where = args.where = f"{prog} {args.command}"
    context.quiet = getattr(args, "quiet", False)
    if getattr(args, "debug", False):
        logging.basicConfig(
            level=logging.DEBUG,
            stream=sys.stderr,
            format="%(asctime)s %(name)s %(levelname)s %(message)s",
        )
    return _command(args.command)(args)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line *argv* (default: ``sys.argv[1:]``); returns the exit status."""
    context = _Context(_prog(), argv)
    context.where = context.prog
    error: BaseException
    try:
        return _run(context)
    except BaseExceptionGroup as group:
        error = _single(group)
        if not isinstance(error, _CAUGHT):
            raise
    except _CAUGHT as exc:
        error = exc
    return _finish(context, error)


def _finish(context: _Context, error: BaseException) -> int:
    if isinstance(error, KeyboardInterrupt):
        return 130
    if isinstance(error, BrokenPipeError):
        # The reader went away (`sub | head -1`): stop quietly, as `cat` would.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    where = context.where
    if isinstance(error, CliError) and error.status == 2:
        where = error.prog or where
        if where == context.prog:
            # The top parser rejects leftovers; name the subcommand they belong to.
            words = list(sys.argv[1:] if context.argv is None else context.argv)
            command = next((w for w in words if w in _COMMANDS), None)
            where = f"{where} {command}" if command else where
        error = CliError(f"{error} (see {where} --help)", status=2)
    if not context.quiet:
        message = str(error) or type(error).__name__
        if isinstance(error, OSError) and error.strerror:
            message = error.strerror + (
                f": {error.filename!r}" if error.filename else ""
            )
        sys.stderr.write(f"{where}: error: {' '.join(message.split())}\n")
    return error.status if isinstance(error, CliError) else 1
