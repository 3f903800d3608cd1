"""python -m trio_mqttconn, driven as a subprocess against the mosquitto fixture.

Each test groups several checks per process start (about 0.3 s each); ordering between
processes comes from QoS 1 (a PUBACK means the broker has forwarded the message),
retained messages, persistent sessions, or ``sub -d`` telling us it has its SUBACK.
"""

from __future__ import annotations

import os
import re
import signal
import socket
from typing import TYPE_CHECKING

import pytest

from tests.cli._run import cli, start_cli, wait_for_line
from trio_mqttconn.__main__ import main

if TYPE_CHECKING:
    from pathlib import Path

    from trio_mqttconn.testing import Mosquitto

PROG = "trio_mqttconn"


def words(text: str) -> list[str | bytes]:
    """A command line written as one string (no quoting needed in these tests)."""
    return list(text.split())


def _broker(mosquitto: Mosquitto) -> list[str]:
    return ["-h", mosquitto.host, "-p", str(mosquitto.port)]


def ok(*args: str | bytes, stdin: bytes = b"") -> bytes:
    """Run the command line, assert it succeeded silently on stderr; its stdout."""
    result = cli(*args, stdin=stdin)
    assert (result.returncode, result.stderr) == (0, b""), result.stderr
    return result.stdout


def test_cli_sub_prints_raw_payloads_that_pub_sends(
    mosquitto: Mosquitto, unique_topic: str, tmp_path: Path
) -> None:
    # -v "topic payload" lines, bytes as sent (a file with NUL and 0xff), -l line by
    # line (an empty line is an empty message: "(null)"), -t repeated, -s (all of
    # stdin), --repeat, QoS 1 and 2.
    broker = _broker(mosquitto)
    t = unique_topic
    data = tmp_path / "payload.bin"
    data.write_bytes(b"\x00\xffbin")
    with start_cli("sub", *broker, *f"-t {t}/# -q 2 -C 10 -v -d".split()) as sub:
        try:
            wait_for_line(sub.stderr, b"subscribed:")
            ok("pub", *broker, *f"-t {t}/m -m hello -q 1".split())
            ok("pub", *broker, *f"-t {t}/f -q 1 -f".split(), str(data))
            ok("pub", *broker, *f"-t {t}/l -l -q 1".split(), stdin=b"one\n\nthree")
            ok("pub", *broker, *f"-t {t}/a -t {t}/b -m x -q 2".split())
            ok("pub", *broker, *f"-t {t}/s -s -q 1".split(), stdin=b"all\nof it")
            ok("pub", *broker, *f"-t {t}/r -m again --repeat 2 -q 1".split())
            out, _ = sub.communicate(timeout=20)
        finally:
            sub.kill()
    assert sub.returncode == 0
    expected = (
        f"{t}/m hello\n{t}/f \0\xffbin\n{t}/l one\n{t}/l (null)\n{t}/l three\n"
        f"{t}/a x\n{t}/b x\n{t}/s all\nof it\n{t}/r again\n{t}/r again\n"
    )
    assert out == expected.encode("latin-1")


def test_cli_retained_messages_and_the_output_options(
    mosquitto: Mosquitto, unique_topic: str
) -> None:
    broker = _broker(mosquitto)
    t = unique_topic
    ok("pub", *broker, *f"-t {t}/a -t {t}/b -t {t}/c -m v1 -r -q 1".split())
    # -T filters out; -C counts only what is printed
    shown = ok("sub", *broker, *f"-t {t}/# -T {t}/a -T {t}/b -C 1 -v".split())
    assert shown == f"{t}/c v1\n".encode()
    # -R skips the retained ones; -W ends the wait with status 27 and one line
    stale = cli("sub", *broker, *f"-t {t}/# -R -W 1".split())
    assert (stale.returncode, stale.stdout) == (27, b"")
    assert stale.stderr == f"{PROG} sub: error: timed out after 1 s (-W)\n".encode()
    # %J wants JSON payloads: the others are reported, once each, on stderr; -U
    # unsubscribes (with MQTT 5 properties) after subscribing
    json_only = cli("sub", *broker, *f"-t {t}/# -T {t}/a -F %J -W 1 -U {t}/x".split(),
                    *words("-D unsubscribe user-property why test"))  # fmt: skip
    assert (json_only.returncode, json_only.stdout) == (27, b"")
    assert sorted(json_only.stderr.decode().splitlines()) == [
        f"{PROG} sub: error: timed out after 1 s (-W)",
        f"{PROG} sub: warning: the payload on topic '{t}/b' is not valid JSON",
        f"{PROG} sub: warning: the payload on topic '{t}/c' is not valid JSON",
    ]
    # -n -r clears retained messages
    ok("pub", *broker, *f"-t {t}/a -t {t}/b -n -r -q 1".split())
    # -F: mosquitto's format language
    fmt = r"%t|%p|%q|%r|%l|%m|%x|%X|%5l|%-4p|\t|@@|%I|%U|%i"
    formatted = ok("sub", *broker, *f"-t {t}/# -C 1 -q 1 -F".split(), fmt)
    fields = formatted.decode().removesuffix("\n").split("|")
    assert fields[:5] == [f"{t}/c", "v1", "1", "1", "2"]
    assert int(fields[5]) > 0  # %m: the packet id of a QoS 1 delivery
    assert fields[6:12] == ["7631", "7631", "    2", "v1  ", "\t", "@"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d{4}", fields[12])
    assert re.fullmatch(r"\d+\.\d{9}", fields[13])
    assert fields[14].startswith("trio-mqttconn-")
    # -N: no newline after the bare payload
    assert ok("sub", *broker, *f"-t {t}/c -C 1 -N".split()) == b"v1"
    # -E: exits once subscribed, nothing printed
    assert ok("sub", *broker, *f"-t {t}/c -E".split()) == b""
    # %j: JSON, here over MQTT 3.1.1
    js = ok("sub", *broker, *f"-t {t}/c -C 1 -V mqttv311 -F %j".split())
    assert f'"topic":"{t}/c","qos":0,"retain":1,"payloadlen":2,'.encode() in js
    assert js.endswith(b',"payload":"v1"}\n')
    # --remove-retained clears what it receives: afterwards nothing is retained
    assert ok("sub", *broker, *f"-t {t}/# --remove-retained -C 1".split()) == b"v1\n"
    empty = cli("sub", *broker, *f"-t {t}/# -W 1".split())
    assert (empty.returncode, empty.stdout) == (27, b"")


def test_cli_mqtt5_properties_reach_the_subscriber(
    mosquitto: Mosquitto, unique_topic: str
) -> None:
    broker = _broker(mosquitto)
    topic = f"{unique_topic}/props"
    ok(
        "pub", *broker, "-t", topic, "-m", "{}", "-r", "-q", "1",
        "-D", "publish", "user-property", "k", "v",
        "-D", "publish", "user-property", "k2", "v2",
        "-D", "publish", "content-type", "application/json",
        "-D", "publish", "response-topic", "re/ply",
        "-D", "publish", "payload-format-indicator", "1",
        "-D", "publish", "correlation-data", "cid",
        "-D", "publish", "message-expiry-interval", "3600",
        "-D", "connect", "session-expiry-interval", "0",
        "-D", "connect", "user-property", "who", "cli",
    )  # fmt: skip
    sub = ok("sub", *broker, "-t", topic, "-C", "1", "-F", "%P|%C|%R|%F|%D|%E|%S",
             "-D", "subscribe", "subscription-identifier", "7")  # fmt: skip
    fields = sub.decode().removesuffix("\n").split("|")
    assert fields[:5] == ["k:v k2:v2", "application/json", "re/ply", "1", "cid"]
    assert 3500 < int(fields[5]) <= 3600
    assert fields[6] == "7"
    assert cli("pub", *broker, "-t", topic, "-n", "-r").returncode == 0


def test_cli_persistent_session_gets_what_was_sent_while_away(
    mosquitto: Mosquitto, unique_topic: str
) -> None:
    # -c -i -x: the broker keeps the session and queues QoS 1 messages for it.
    broker = _broker(mosquitto)
    t = unique_topic
    client_id = f"cli-session-{os.getpid()}-{t.split('/')[2]}"
    session = f"-c -i {client_id} -x 60 -q 1 -t {t}/#".split()
    ok("sub", *broker, *session, "-E")
    ok("pub", *broker, *f"-t {t}/x -m queued -q 1".split())
    assert ok("sub", *broker, *session, *words("-C 1 -v")) == f"{t}/x queued\n".encode()
    ok("sub", *broker, *f"-i {client_id} -t {t} -E".split())  # a clean session ends it


def test_cli_will_is_published_when_the_client_vanishes(
    mosquitto: Mosquitto, unique_topic: str
) -> None:
    broker = _broker(mosquitto)
    will = f"{unique_topic}/will"
    with (
        start_cli("sub", *broker, "-t", will, "-C", "1", "-v", "-d") as watcher,
        start_cli("sub", *broker, "-t", f"{unique_topic}/idle", "-d",
                  "--will-topic", will, "--will-payload", "gone", "--will-qos", "1") as doomed,
    ):  # fmt: skip
        try:
            wait_for_line(watcher.stderr, b"subscribed:")
            wait_for_line(doomed.stderr, b"subscribed:")
            doomed.send_signal(signal.SIGKILL)
            out, _ = watcher.communicate(timeout=20)
        finally:
            doomed.kill()
            watcher.kill()
    assert out == f"{will} gone\n".encode()


def test_cli_tls_url_and_password(
    mosquitto: Mosquitto, unique_topic: str, tmp_path: Path
) -> None:
    ca = _ca(mosquitto, tmp_path)
    topic = f"{unique_topic}/tls"
    tls = f"--cafile {ca} -h localhost -p {mosquitto.tls_port}".split()
    ok("pub", *tls, *f"-t {topic} -m secure -r -q 1".split())
    url = f"mqtts://127.0.0.1:{mosquitto.tls_port}/{topic}"
    assert ok("sub", "--cafile", ca, "-L", url, "-C", "1") == b"secure\n"
    user = f"{mosquitto.username}:{mosquitto.password}"
    url = f"mqtt://{user}@127.0.0.1:{mosquitto.auth_port}/{topic}"
    assert ok("sub", "-L", url, "-C", "1", "-V", "311") == b"secure\n"
    ok("pub", *tls, *f"-t {topic} -n -r".split())


def _ca(mosquitto: Mosquitto, tmp_path: Path) -> str:
    ca = tmp_path / "ca.pem"
    ca.write_bytes(mosquitto.ca_pem)
    return str(ca)


def test_cli_sub_into_a_closed_pipe_stops_quietly(
    mosquitto: Mosquitto, unique_topic: str, tmp_path: Path
) -> None:
    # `sub | head -c 2`: the reader goes away while the payloads are being written;
    # the next write fails with EPIPE, and sub ends without a word.
    big = tmp_path / "big.bin"
    big.write_bytes(b"x" * 300_000)
    t = unique_topic
    broker = _broker(mosquitto)
    ok("pub", *broker, *f"-t {t}/1 -t {t}/2 -r -q 1 -f".split(), str(big))
    with start_cli("sub", *broker, *f"-t {t}/# -C 2".split()) as sub:
        assert sub.stdout is not None
        assert sub.stdout.read(2) == b"xx"
        sub.stdout.close()
        assert sub.wait(timeout=20) == 0
        assert sub.stderr is not None
        assert sub.stderr.read() == b""
    ok("pub", *broker, *f"-t {t}/1 -t {t}/2 -n -r".split())


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# (arguments after the command, a piece of the one-line message)
BAD_INPUT: list[tuple[str, list[str | bytes], str]] = [
    ("pub", ["-t", "a/#", "-m", "x"], "wildcards (+, #) are for subscribing only"),
    ("pub", ["-t", "a/+/b", "-m", "x"], "wildcards (+, #) are for subscribing only"),
    ("pub", ["-t", b"caf\xff", "-m", "x"], "-t is not valid UTF-8: b'caf\\xff'"),
    ("pub", ["-t", "a", "-m", "x", "-u", b"\xfe"], "-u is not valid UTF-8"),
    ("pub", words("-t a -s -D publish payload-format-indicator 1"), "not valid UTF-8"),
    ("pub", words("-t a -m x -p 70000"), "-p must be a number from 1 to 65535"),
    ("pub", words("-t a -m x -p abc"), "-p must be a number from 1 to 65535"),
    ("pub", words("-t a -m x -V 4.0"), "-V must be 5 (mqttv5) or 311"),
    ("sub", words("-t a -V mqttv31"), "MQTT 3.1 is not supported"),
    ("pub", words("-t a -m x -D publish colour red"), "unknown property 'colour'"),
    ("pub", words("-t a -m x -D publish user-property k"), "expected NAME VALUE"),
    ("pub", words("-t a -m x -D connect content-type x"), "not allowed in connect"),
    ("pub", words("-t a -m x -D subscribe user-property a b"), "no subscribe prop"),
    ("pub", words("-t a -m x -D publish topic-alias 0"), "from 1 to 65535"),
    ("pub", words("-t a -m x -D publish maximum-qos 1"), "only the broker sends"),
    ("pub", words("-t a -m x -D frobnicate x y"), "unknown command 'frobnicate'"),
    ("pub", words("-t a -m x -V 311 -D publish content-type x"), "needs -V 5"),
    ("pub", words("-t a -m x -q 3"), "-q must be a number from 0 to 2"),
    (
        "pub",
        words("-t a -m x --repeat-delay soon"),
        "--repeat-delay must be 0 to 86400",
    ),
    ("pub", ["-t", "a"], "give the message with -m, -f, -s, -l or -n"),
    ("pub", ["-m", "x"], "give a topic with -t"),
    ("pub", words("-t a -f /nonexistent/file"), "cannot read '/nonexistent/file'"),
    ("pub", words("-t a -m x -c"), "-c needs a client id"),
    ("pub", words("-t a -m x --frobnicate"), "unrecognized arguments: --frobnicate"),
    ("pub", words("-t a -m x -h"), "argument -h/--host: expected one argument"),
    ("pub", words("-t a -m x -n"), "not allowed with argument -m/--message"),
    ("sub", words("-t a/#/b"), "'#' must be the last level"),
    ("sub", words("-t a/b+"), "a wildcard (+, #) must fill a whole level"),
    ("sub", words("-t a -F %Z"), "unknown conversion %Z"),
    ("sub", words("-t a -C 0"), "-C must be a number from 1"),
    ("sub", words("-t a -R --retained-only"), "exclude each other"),
    ("bench", words("-n none"), "-n must be a number"),
]


@pytest.mark.parametrize(
    ("command", "args", "problem"), BAD_INPUT, ids=[str(c[2]) for c in BAD_INPUT]
)
def test_cli_bad_input_is_one_line_and_a_failure(
    mosquitto: Mosquitto, command: str, args: list[str | bytes], problem: str
) -> None:
    broker = [] if command == "bench" else _broker(mosquitto)
    result = cli(command, *broker, *args, stdin=b"\xff\xfe")
    err = result.stderr.decode()
    assert result.returncode in (1, 2)
    assert err.count("\n") == 1, err
    assert "Traceback" not in err
    assert err.startswith(f"{PROG} {command}: error: "), err
    assert problem in err, err
    assert result.stdout == b""


def test_cli_failed_connections_are_one_line(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    port = _closed_port()
    cases = {
        "connection refused by localhost": ["-p", str(port)],
        "does not exist; is the broker running?": ["--unix", str(tmp_path / "no.sock")],
        "not authorized": ["-p", str(mosquitto.auth_port), "-u", "trio", "-P", "wrong"],
        "is it a TLS port": ["-L", f"mqtts://127.0.0.1:{mosquitto.port}", "--cafile", _ca(mosquitto, tmp_path)],
        "certificate verification failed": ["-p", str(mosquitto.tls_port), "--tls-use-os-certs"],
    }  # fmt: skip
    for expected, options in cases.items():
        result = cli("pub", *options, "-t", "a", "-m", "x")
        err = result.stderr.decode()
        assert result.returncode == 1, err
        assert err.startswith(f"{PROG} pub: error: "), err
        assert err.count("\n") == 1, err
        assert expected in err.lower() or expected in err, err


def _names(text: str) -> list[str]:
    return text.split()


PUB_OPTIONS = _names(
    "-h -p -L --url --unix -t -m -f -s -l -n -q -r -u -P -i -I -k -V -c -x -D -d --quiet --will-topic --will-payload --will-qos --will-retain --cafile --capath --cert --key --insecure --repeat --repeat-delay --help"
)
SUB_OPTIONS = _names(
    "-h -p -L --url --unix -t -q -u -P -i -I -k -V -c -x -D -d --quiet -C -W -v -F -N -R -T -E -U --retained-only --remove-retained --retain-as-published --retain-handling --will-topic --will-payload --will-qos --will-retain --cafile --capath --cert --key --insecure --help"
)


def test_cli_help_shows_every_option_of_each_command() -> None:
    for command, options in (("pub", PUB_OPTIONS), ("sub", SUB_OPTIONS)):
        result = cli(command, "--help")
        assert result.returncode == 0
        text = result.stdout.decode()
        for option in options:
            assert re.search(rf"(^|[\s\[,]){re.escape(option)}([\s,\]=]|$)", text), (
                command,
                option,
            )
    bench = cli("bench", "--help").stdout.decode()
    for option in ("--url", "--count", "--size", "--qos", "--pings", "--time-limit"):
        assert option in bench
    top = cli("--help").stdout.decode()
    assert all(command in top for command in ("pub", "sub", "bench", "demo"))


def test_cli_bench_prints_a_table() -> None:
    result = cli("bench", "-n", "20", "--pings", "5", "-s", "16", "--time-limit", "30")
    assert result.returncode == 0, result.stderr
    out = result.stdout.decode()
    assert "a private mosquitto" in out
    for label in (
        "QoS 0 publish -> receive",
        "QoS 1 publish -> receive",
        "QoS 2 publish -> receive",
    ):
        assert re.search(
            rf"^{re.escape(label)}\s+20\s+[\d.]+\s+[\d,]+ msg/s$", out, re.M
        ), out
    assert re.search(r"^QoS 1 round trip p50\s+5\s+[\d.]+\s+[\d.]+ ms$", out, re.M), out
    assert re.search(r"^QoS 1 round trip p99\s", out, re.M), out
    assert "100% 20/20" in result.stderr.decode()


def test_cli_demo_with_a_broker(
    mosquitto: Mosquitto, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["demo", "--broker", mosquitto.uri]) == 0
    out = capsys.readouterr().out
    assert "received   'demo/qos2': 'hello at EXACTLY_ONCE' (QoS 2)" in out
    assert "done: 3 published, 3 received" in out


def test_cli_demo_starts_its_own_broker(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo"]) == 0
    assert "started mosquitto" in capsys.readouterr().out


def test_cli_main_is_the_script_entry_point(capsys: pytest.CaptureFixture[str]) -> None:
    # pyproject: trio-mqttconn = "trio_mqttconn.__main__:main"
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("trio_mqttconn ")
    assert main([]) == 2
    assert "choose a command" in capsys.readouterr().err
