"""How ``sub`` prints a message: raw payload, ``-v``, or a ``-F`` format, as bytes.

The ``-F`` language is mosquitto_sub's (``man mosquitto_sub``, OUTPUT FORMAT):
``%`` conversions with optional ``-`` (align left), ``0`` (zero pad), a field width
and a ``.precision``; ``@`` followed by a ``strftime`` letter (``@N``: nanoseconds,
``@@``: ``@``); and backslash escapes ``\\\\ \\0 \\a \\e \\n \\r \\t \\v``. The format
is parsed once, into tokens, and checked: an unknown conversion or escape is an error
before anything connects. A newline follows each message unless ``-N``.
"""

from __future__ import annotations

import json
import os
import re
import time
from typing import TYPE_CHECKING, Final

import attrs

from ._args import CliError

if TYPE_CHECKING:
    from collections.abc import Callable

    from .. import Message

__all__ = ["Printer"]

_ESCAPES: Final = {
    "\\": b"\\",
    "0": b"\0",
    "a": b"\a",
    "e": b"\x1b",
    "n": b"\n",
    "r": b"\r",
    "t": b"\t",
    "v": b"\v",
}
_CONVERSIONS: Final = frozenset("%ACDEFIJPRSUXcijlmpqrtx")
_SPEC: Final = re.compile(r"%(-?)(0?)(\d*)(?:\.(\d*))?(.?)", re.DOTALL)


@attrs.frozen
class _Spec:
    code: str
    left: bool = False
    zero: bool = False
    width: int = 0
    precision: int = -1


_Token = bytes | _Spec | tuple[str]


def _parse(fmt: str) -> list[_Token]:
    tokens: list[_Token] = []
    literal = ""
    i = 0
    while i < len(fmt):
        char = fmt[i]
        if char == "%":
            match = _SPEC.match(fmt, i)
            assert match is not None  # the pattern matches any "%..."
            left, zero, width, precision, code = match.groups()
            if code not in _CONVERSIONS:
                shown = f"%{code}" if code else "a lone % at the end"
                raise CliError(f"-F: unknown conversion {shown} in {fmt!r}")
            tokens += [os.fsencode(literal)]
            literal = ""
            tokens.append(
                _Spec(
                    code,
                    left=bool(left),
                    zero=bool(zero),
                    width=int(width or 0),
                    precision=-1 if precision is None else int(precision or 0),
                )
            )
            i = match.end()
            continue
        if char in "@\\" and i + 1 == len(fmt):
            raise CliError(f"-F: {char} at the end of {fmt!r}; write {char}{char}")
        if char == "@":
            after = fmt[i + 1]
            if after == "@":
                literal += "@"
            else:
                tokens += [os.fsencode(literal), (after,)]
                literal = ""
            i += 2
            continue
        if char == "\\":
            after = fmt[i + 1]
            if after not in _ESCAPES:
                raise CliError(f"-F: unknown escape \\{after} in {fmt!r}")
            tokens += [os.fsencode(literal), _ESCAPES[after]]
            literal = ""
            i += 2
            continue
        literal += char
        i += 1
    tokens.append(os.fsencode(literal))
    return [token for token in tokens if token != b""]


def _pad_int(value: int | None, spec: _Spec) -> str:
    if value is None:
        return ("0" if spec.zero else " ") * spec.width
    if spec.left:
        return f"{value:<{spec.width}d}"
    return f"{value:0{spec.width}d}" if spec.zero else f"{value:>{spec.width}d}"


def _pad_str(value: str | None, spec: _Spec) -> str:
    if value is None:
        return " " * spec.width
    if spec.precision >= 0:
        value = value[: spec.precision]
    return value.ljust(spec.width) if spec.left else value.rjust(spec.width)


def _payload(data: bytes, spec: _Spec, hex_case: str | None) -> bytes:
    # As mosquitto's write_payload: a field width also truncates the payload.
    width = spec.width
    if width and len(data) > width:
        data = data[:width]
    if hex_case is not None:
        if width:
            data = data[: len(data) // 2]
        body = data.hex().encode()
        body = body.upper() if hex_case == "X" else body
    else:
        body = data
    pad = max(width - len(body), 0)
    if spec.left:
        return body + b" " * pad
    return (b"0" if spec.zero else b" ") * pad + body


def _json(message: Message, now: int, *, parse_payload: bool) -> bytes:
    local = time.localtime(now // 1_000_000_000)
    stamp = (
        time.strftime("%Y-%m-%dT%H:%M:%S", local)
        + f".{now // 1000 % 1_000_000:06d}Z"
        + time.strftime("%z", local)
    )
    record: dict[str, object] = {
        "tst": stamp,
        "topic": message.topic,
        "qos": int(message.qos),
        "retain": int(message.retain),
        "payloadlen": len(message.payload),
    }
    if message.qos:
        record["mid"] = message.packet_id or 0
    props = message.properties
    shown: dict[str, object] = {
        "payload-format-indicator": props.payload_format_indicator,
        "message-expiry-interval": props.message_expiry_interval,
        "content-type": props.content_type,
        "response-topic": props.response_topic,
        "correlation-data": None
        if props.correlation_data is None
        else props.correlation_data.decode("utf-8", "replace"),
        "subscription-identifier": (props.subscription_identifiers or (None,))[0],
        "topic-alias": props.topic_alias,
        "user-properties": dict(props.user_properties) or None,
    }
    shown = {key: value for key, value in shown.items() if value is not None}
    if shown:
        record["properties"] = shown
    data = message.payload
    if parse_payload:
        try:
            record["payload"] = json.loads(data) if data else None
        except ValueError:
            raise ValueError(
                f"the payload on topic {message.topic!r} is not valid JSON"
            ) from None
    elif all(0x20 <= byte < 0x7F for byte in data):
        record["payload"] = data.decode("ascii")
    else:
        record["payload"] = list(data)
    return json.dumps(record, separators=(",", ":"), ensure_ascii=False).encode()


@attrs.define
class Printer:
    """Turns a Message into the bytes ``sub`` writes, as mosquitto_sub would."""

    format: str | None
    """The -F format, or None."""
    verbose: bool = False
    """-v: ``topic payload``."""
    eol: bool = True
    """Newline after each message (False with -N)."""
    client_id: Callable[[], str] = lambda: ""
    """The subscriber's client id, for %i and %c."""
    _tokens: list[_Token] | None = attrs.field(init=False, default=None)

    def __attrs_post_init__(self) -> None:
        if self.format is not None:
            self._tokens = _parse(self.format)

    def render(self, message: Message) -> bytes:
        """The output for *message* (may be empty: mosquitto skips empty payloads).

        Raises:
            ValueError: ``%J`` and a payload that is not JSON.
        """
        end = b"\n" if self.eol else b""
        if self._tokens is not None:
            now = time.time_ns()
            return b"".join(self._token(t, message, now) for t in self._tokens) + end
        topic = message.topic.encode()
        if self.verbose:
            if message.payload:
                return topic + b" " + message.payload + end
            return topic + b" (null)\n" if self.eol else b""
        return message.payload + end if message.payload else b""

    def _token(self, token: _Token, message: Message, now: int) -> bytes:
        if isinstance(token, bytes):
            return token
        if isinstance(token, tuple):
            if token[0] == "N":
                return f"{now % 1_000_000_000:09d}".encode()
            local = time.localtime(now // 1_000_000_000)
            return os.fsencode(time.strftime(f"%{token[0]}", local))
        return self._conversion(token, message, now)

    def _conversion(self, spec: _Spec, message: Message, now: int) -> bytes:
        code = spec.code
        props = message.properties
        if code in "pxX":
            return _payload(message.payload, spec, None if code == "p" else code)
        if code == "D":
            return props.correlation_data or b""
        if code in "jJ":
            return _json(message, now, parse_payload=code == "J")
        if code == "%":
            result = "%"
        elif code == "t":
            result = _pad_str(message.topic, spec)
        elif code == "q":
            result = str(int(message.qos))
        elif code == "r":
            result = "1" if message.retain else "0"
        elif code == "l":
            result = _pad_int(len(message.payload), spec)
        elif code == "m":
            result = _pad_int(message.packet_id or 0, spec)
        elif code in "ic":
            result = _pad_str(self.client_id(), spec)
        elif code == "I":
            local = time.localtime(now // 1_000_000_000)
            result = _pad_str(time.strftime("%Y-%m-%dT%H:%M:%S%z", local), spec)
        elif code == "U":
            result = f"{now // 1_000_000_000}.{now % 1_000_000_000:09d}"
        elif code == "A":
            result = _pad_int(props.topic_alias, spec)
        elif code == "C":
            result = _pad_str(props.content_type, spec)
        elif code == "E":
            result = _pad_int(props.message_expiry_interval, spec)
        elif code == "F":
            result = _pad_int(props.payload_format_indicator, spec)
        elif code == "P":
            result = " ".join(f"{k}:{v}" for k, v in props.user_properties)
        elif code == "R":
            result = (
                _pad_str(props.response_topic, spec) if props.response_topic else ""
            )
        else:  # "S"
            ids = props.subscription_identifiers
            result = _pad_int(ids[0] if ids else None, spec)
        return result.encode("utf-8", "surrogateescape")
