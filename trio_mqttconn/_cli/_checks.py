"""Checks of single command-line values; each failure is a CliError naming the option.

Values arrive as ``str``; Python decoded them with ``surrogateescape``, so
``os.fsencode`` gives back the exact bytes typed (payloads are sent as those bytes;
topics and names must be UTF-8).
"""

from __future__ import annotations

import os

from .. import QoS
from ._args import CliError

__all__ = ["number", "qos", "text", "topic_filter", "topic_name"]


def number(option: str, value: str, low: int, high: int) -> int:
    """*value* as an integer in ``low..high``, or a CliError naming *option*."""
    try:
        result = int(value, 10)
    except ValueError:
        result = low - 1
    if not low <= result <= high:
        raise CliError(f"{option} must be a number from {low} to {high}, not {value!r}")
    return result


def qos(option: str, value: str) -> QoS:
    """A QoS level 0, 1 or 2 given to *option*."""
    return QoS(number(option, value, 0, 2))


def text(option: str, value: str, *, secret: bool = False) -> str:
    """*value* if it is valid UTF-8 without NUL characters (MQTT strings).

    The message shows the value unless it is *secret* (a password, a URL).
    """
    shown = "" if secret else f": {os.fsencode(value)!r}"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise CliError(f"{option} is not valid UTF-8{shown}") from None
    if "\0" in value:
        raise CliError(f"{option} must not contain NUL characters{shown}")
    return value


def topic_name(option: str, value: str) -> str:
    """A topic to publish to: UTF-8, not empty, no wildcards."""
    text(option, value)
    if not value:
        raise CliError(f"{option}: a topic cannot be empty")
    if "+" in value or "#" in value:
        raise CliError(
            f"{option}: cannot publish to {value!r}: "
            "wildcards (+, #) are for subscribing only"
        )
    return value


def topic_filter(option: str, value: str) -> str:
    """A topic filter: UTF-8, not empty, ``+`` a whole level, ``#`` the last level."""
    text(option, value)
    if not value:
        raise CliError(f"{option}: a topic filter cannot be empty")
    levels = value.split("/")
    for index, level in enumerate(levels):
        if ("+" in level and level != "+") or ("#" in level and level != "#"):
            raise CliError(
                f"{option}: bad topic filter {value!r}: "
                "a wildcard (+, #) must fill a whole level"
            )
        if level == "#" and index != len(levels) - 1:
            raise CliError(
                f"{option}: bad topic filter {value!r}: '#' must be the last level"
            )
    return value
