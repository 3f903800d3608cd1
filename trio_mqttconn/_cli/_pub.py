"""``pub``: publish a message, a file, stdin, or stdin line by line (mosquitto_pub).

Payloads are bytes: ``-m`` sends the exact bytes of the argument, ``-f``/``-s``/``-l``
the bytes read. With ``-l`` the connection stays open and each line is published as
it arrives (without its newline; empty lines are sent as empty messages, as mosquitto
does since 1.6.8). stdin is read through a trio stream, so a slow producer never
blocks the client's keepalive.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

import trio

from .. import MqttClient, Properties
from ._args import CliError
from ._checks import number, qos, topic_name
from ._options import client_options

if TYPE_CHECKING:
    import argparse
    from collections.abc import AsyncIterator

__all__ = ["run_pub"]

_CHUNK = 65536


async def _stdin_chunks() -> AsyncIterator[bytes]:
    # A duplicate of fd 0: trio sets it non-blocking and restores it on close.
    async with trio.lowlevel.FdStream(os.dup(sys.stdin.fileno())) as stream:
        while chunk := await stream.receive_some(_CHUNK):
            yield chunk


async def _stdin_lines() -> AsyncIterator[bytes]:
    pending = b""
    async for chunk in _stdin_chunks():
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for line in lines:
            yield line
    if pending:
        yield pending


async def _pub(args: argparse.Namespace, payload: bytes | None) -> int:
    opts = args.client
    publish_props = opts.properties.get("publish")
    properties = Properties(**publish_props) if publish_props else None
    level = qos("-q", args.qos)
    repeat = number("--repeat", args.repeat, 1, 2**31)
    delay = args.delay

    async def send(data: bytes) -> None:
        if properties is not None and properties.payload_format_indicator == 1:
            try:
                data.decode("utf-8")
            except UnicodeDecodeError:
                raise CliError(
                    "the payload is not valid UTF-8, "
                    "but -D publish payload-format-indicator 1 says it is"
                ) from None
        for topic in args.topic:
            await client.publish(
                topic, data, qos=level, retain=args.retain, properties=properties
            )

    async with MqttClient(opts.uri, **opts.kwargs) as client:
        if payload is None:
            async for line in _stdin_lines():
                await send(line)
            return 0
        for index in range(repeat):
            if index and delay:
                await trio.sleep(delay)
            await send(payload)
    return 0


def _payload(args: argparse.Namespace) -> bytes | None:
    """The message to send, or None for line mode (-l)."""
    if args.message is not None:
        return os.fsencode(args.message)
    if args.null_message:
        return b""
    if args.file is not None:
        try:
            with open(args.file, "rb") as file:
                return file.read()
        except OSError as exc:
            raise CliError(f"-f: cannot read {args.file!r}: {exc.strerror}") from None
    if args.stdin_file:
        # Read before connecting, as mosquitto does: the message is complete first.
        return sys.stdin.buffer.read()
    if args.stdin_line:
        return None
    raise CliError("give the message with -m, -f, -s, -l or -n")


def run_pub(args: argparse.Namespace) -> int:
    """Check the arguments of ``pub``, then run it; returns the exit status."""
    args.client = client_options(args, commands=("connect", "publish", "will"))
    args.topic = [topic_name("-t", t) for t in args.client.topics]
    if not args.topic:
        raise CliError("give a topic with -t (or in --url)")
    qos("-q", args.qos)
    number("--repeat", args.repeat, 1, 2**31)
    try:
        args.delay = float(args.repeat_delay)
    except ValueError:
        args.delay = -1.0
    if not 0 <= args.delay <= 86400:
        raise CliError(
            f"--repeat-delay must be 0 to 86400 seconds, not {args.repeat_delay!r}"
        )
    payload = _payload(args)
    return trio.run(_pub, args, payload)
