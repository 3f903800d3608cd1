"""sub's output: raw payloads, -v, and mosquitto's -F language (in-process)."""

from __future__ import annotations

import json

import pytest

from trio_mqttconn import Message, Properties, QoS
from trio_mqttconn._cli._args import CliError
from trio_mqttconn._cli._format import Printer

MESSAGE = Message(
    topic="a/b",
    payload=b"hello",
    qos=QoS.AT_LEAST_ONCE,
    retain=True,
    packet_id=7,
    properties=Properties(
        content_type="text/plain",
        response_topic="re/ply",
        correlation_data=b"c1",
        message_expiry_interval=30,
        payload_format_indicator=1,
        user_properties=(("k", "v"), ("k", "w")),
        subscription_identifiers=(3,),
    ),
)
EMPTY = Message(topic="a/b", payload=b"")


def render(fmt: str | None, message: Message = MESSAGE, **kwargs: bool) -> bytes:
    return Printer(format=fmt, client_id=lambda: "me", **kwargs).render(message)


def test_format_default_is_the_raw_payload_and_skips_empty_ones() -> None:
    assert render(None) == b"hello\n"
    assert render(None, eol=False) == b"hello"
    assert render(None, EMPTY) == b""


def test_format_verbose_is_topic_and_payload_or_null() -> None:
    assert render(None, verbose=True) == b"a/b hello\n"
    assert render(None, EMPTY, verbose=True) == b"a/b (null)\n"
    assert render(None, EMPTY, verbose=True, eol=False) == b""


@pytest.mark.parametrize(
    ("fmt", "expected"),
    [
        ("%t %p", b"a/b hello"),
        ("%q%r%l%m", b"1157"),
        ("%x|%X", b"68656c6c6f|68656C6C6F"),
        ("[%6t][%-6t][%.1t][%4.2t]", b"[   a/b][a/b   ][a][  a/]"),
        ("[%3l][%-3l][%03l]", b"[  5][5  ][005]"),
        ("[%8p][%-8p][%3p]", b"[   hello][hello   ][hel]"),
        ("[%4x]", b"[6865]"),
        ("%C|%R|%D|%E|%F|%S|%P", b"text/plain|re/ply|c1|30|1|3|k:v k:w"),
        ("%i %c", b"me me"),
        ("100%% @@ \\t\\\\\\e", b"100% @ \t\\\x1b"),
        ("%A|%3A|", b"|   |"),
    ],
)
def test_format_conversions_as_mosquitto_sub(fmt: str, expected: bytes) -> None:
    assert render(fmt) == expected + b"\n"


def test_format_missing_properties_are_blank() -> None:
    assert render("[%C][%R][%D][%E][%3S][%P]", EMPTY) == b"[][][][][   ][]\n"


def test_format_times() -> None:
    line = render("%I|%U|@Y|@N", eol=False).decode()
    iso, unix, year, nanos = line.split("|")
    assert len(iso) == len("2026-12-07T08:51:35+0000")
    assert iso.startswith(year)
    seconds, _, fraction = unix.partition(".")
    assert seconds.isdigit()
    assert len(fraction) == 9
    assert len(nanos) == 9


def test_format_json() -> None:
    record = json.loads(render("%j"))
    assert record["topic"] == "a/b"
    assert (record["qos"], record["retain"], record["mid"]) == (1, 1, 7)
    assert record["payload"] == "hello"
    assert record["properties"]["user-properties"] == {"k": "w"}
    binary = Message(topic="t", payload=b"\x00\xff")
    assert json.loads(render("%j", binary))["payload"] == [0, 255]
    parsed = Message(topic="t", payload=b'{"a": [1]}')
    assert json.loads(render("%J", parsed))["payload"] == {"a": [1]}
    with pytest.raises(
        ValueError, match=r"^the payload on topic 'a/b' is not valid JSON$"
    ):
        render("%J")


@pytest.mark.parametrize(
    ("fmt", "problem"),
    [
        ("%z", "unknown conversion %z"),
        ("abc%", "unknown conversion a lone % at the end"),
        ("%-05", "unknown conversion a lone % at the end"),
        ("x\\q", "unknown escape \\q"),
        ("x\\", "\\ at the end"),
        ("x@", "@ at the end"),
    ],
)
def test_format_errors_name_the_problem(fmt: str, problem: str) -> None:
    with pytest.raises(CliError, match=r"^-F: ") as caught:
        Printer(format=fmt)
    assert problem in str(caught.value)
