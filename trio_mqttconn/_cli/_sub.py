"""``sub``: subscribe and print, as mosquitto_sub does.

All filters go out in one SUBSCRIBE (``subscribe_filters``) and every message arrives
on one client-wide stream (``messages()``), so a message matching two filters is
printed once, in the order the broker sent it. Messages are written as bytes to
``sys.stdout.buffer`` and flushed one by one, so the output pipes.
"""

from __future__ import annotations

import logging
import sys
from typing import TYPE_CHECKING, Final

import trio

from .. import MqttClient, Properties, RetainHandling, TopicSubscription
from ._args import CliError
from ._checks import number, qos, topic_filter
from ._format import Printer
from ._options import client_options

if TYPE_CHECKING:
    import argparse

__all__ = ["run_sub"]

TIMED_OUT: Final = 27
"""Exit status after -W ran out, as mosquitto_sub (MOSQ_ERR_TIMEOUT)."""

_HANDLING: Final = {
    "always": RetainHandling.SEND_ON_SUBSCRIBE,
    "new": RetainHandling.SEND_IF_NEW_SUBSCRIPTION,
    "never": RetainHandling.DO_NOT_SEND,
}


def matches(topic_filter: str, topic: str) -> bool:
    """Whether *topic* matches *topic_filter* (``$`` topics need an explicit level)."""
    if topic.startswith("$") and topic_filter[:1] in ("+", "#"):
        return False
    levels = topic.split("/")
    parts = topic_filter.split("/")
    for index, part in enumerate(parts):
        if part == "#":
            return True
        if index >= len(levels) or (part not in ("+", levels[index])):
            return False
    return len(parts) == len(levels)


def _warn(args: argparse.Namespace, text: str) -> None:
    if not args.quiet:
        sys.stderr.write(f"{args.where}: warning: {text}\n")


async def _receive(
    client: MqttClient, args: argparse.Namespace, printer: Printer, count: int
) -> None:
    out = sys.stdout.buffer
    printed = 0
    async with client.messages() as messages:
        options = [
            TopicSubscription(
                filter=topic,
                qos=qos("-q", args.qos),
                retain_as_published=args.retain_as_published,
                retain_handling=_HANDLING[args.retain_handling],
            )
            for topic in args.topic
        ]
        sub_props = args.properties.get("subscribe")
        codes = await client.subscribe_filters(
            options, properties=Properties(**sub_props) if sub_props else None
        )
        refused = [
            o.filter for o, code in zip(options, codes, strict=False) if code.is_failure
        ]
        if refused and len(refused) == len(options):
            raise CliError(
                f"the broker refused every subscription: {', '.join(refused)}"
            )
        for topic in refused:
            _warn(args, f"the broker refused the subscription to {topic!r}")
        granted = (
            f"{o.filter} ({'refused' if c.is_failure else f'QoS {int(c)}'})"
            for o, c in zip(options, codes, strict=False)
        )
        logging.getLogger("trio_mqttconn.cli").debug(
            "subscribed: %s", ", ".join(granted)
        )
        if args.unsubscribe:
            unsub_props = args.properties.get("unsubscribe")
            await client.unsubscribe_filters(
                args.unsubscribe,
                properties=Properties(**unsub_props) if unsub_props else None,
            )
        if args.exit_after_sub:
            return
        async for message in messages:
            if args.retained_only and not message.retain:
                return
            if (message.retain and args.no_retained) or any(
                matches(f, message.topic) for f in args.filter_out
            ):
                continue
            if args.remove_retained and message.retain:
                await client.publish(message.topic, b"", qos=1, retain=True)
            try:
                data = printer.render(message)
            except ValueError as exc:
                _warn(args, str(exc))
                continue
            if data:
                out.write(data)
                out.flush()
            printed += 1
            if count and printed >= count:
                return


async def _sub(args: argparse.Namespace, printer: Printer, count: int) -> int:
    opts = args.client
    timeout = float(number("-W", args.timeout, 1, 2**31)) if args.timeout else None
    async with MqttClient(opts.uri, **opts.kwargs) as client:
        printer.client_id = lambda: client.client_id or ""
        with trio.move_on_after(timeout if timeout is not None else float("inf")):
            await _receive(client, args, printer, count)
            return 0
    raise CliError(f"timed out after {timeout:g} s (-W)", status=TIMED_OUT)


def run_sub(args: argparse.Namespace) -> int:
    """Check the arguments of ``sub``, then run it; returns the exit status."""
    args.client = client_options(
        args, commands=("connect", "subscribe", "unsubscribe", "will")
    )
    args.topic = [topic_filter("-t", t) for t in args.client.topics]
    if not args.topic:
        raise CliError("give at least one topic filter with -t (or in --url)")
    args.filter_out = [topic_filter("-T", t) for t in args.filter_out]
    args.unsubscribe = [topic_filter("-U", t) for t in args.unsubscribe]
    args.properties = args.client.properties
    if args.no_retained and args.retained_only:
        raise CliError("-R and --retained-only exclude each other")
    count = number("-C", args.count, 1, 2**31) if args.count else 0
    if args.timeout:
        number("-W", args.timeout, 1, 2**31)
    printer = Printer(format=args.format, verbose=args.verbose, eol=not args.no_eol)
    return trio.run(_sub, args, printer, count)
