"""The argument parsers: mosquitto_pub / mosquitto_sub options, plus demo and bench.

Option letters and meanings follow mosquitto's clients (``man mosquitto_pub``), so
``-h`` is the host and help is ``--help`` only. Parsing errors do not print a usage
block: :class:`CliError` carries one line, and ``main`` prints it.
"""

from __future__ import annotations

import argparse
from typing import NoReturn

__all__ = ["CliError", "build_parser"]


class CliError(Exception):
    """Bad input or a failure the command line reports as one line on stderr."""

    def __init__(
        self, message: str, *, status: int = 1, prog: str | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        """The exit status: 2 for a command line that does not parse, else 1."""
        self.prog = prog
        """The (sub)command that failed to parse, when known."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise CliError(message, status=2, prog=self.prog)


def _help(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--help", action="help", help="show this help message and exit")


def _connection_options(parser: argparse.ArgumentParser) -> None:
    net = parser.add_argument_group("connection")
    net.add_argument("-h", "--host", help="broker host (default: localhost)")
    net.add_argument(
        "-p", "--port", help="broker port (default: 1883, or 8883 with TLS options)"
    )
    net.add_argument(
        "-L",
        "--url",
        help="broker as a URL: mqtt(s)://[user[:password]@]host[:port][/topic], "
        "also ws://, wss:// and unix:///path",
    )
    net.add_argument("--unix", metavar="PATH", help="connect to a unix socket")
    net.add_argument("-u", "--username", help="user name")
    net.add_argument("-P", "--pw", "--password", dest="password", help="password")
    net.add_argument(
        "-V",
        "--protocol-version",
        default="5",
        metavar="VERSION",
        help="MQTT version: 5 (mqttv5, the default) or 311 (mqttv311)",
    )
    net.add_argument("-i", "--id", dest="client_id", help="client identifier")
    net.add_argument(
        "-I", "--id-prefix", help="client identifier: this prefix and the process id"
    )
    net.add_argument(
        "-k", "--keepalive", default="60", help="keep alive in seconds (default: 60)"
    )
    net.add_argument(
        "-c",
        "--disable-clean-session",
        action="store_true",
        help="keep the session (needs -i or -I); with MQTT 5 it never expires "
        "unless -x says otherwise",
    )
    net.add_argument(
        "-x",
        "--session-expiry-interval",
        metavar="SECONDS",
        help="MQTT 5 session expiry in seconds; -1 or 4294967295: never",
    )
    net.add_argument(
        "-D",
        "--property",
        nargs="+",
        action="append",
        default=[],
        metavar="ARG",
        help="MQTT 5 property: -D COMMAND NAME VALUE, e.g. "
        "'-D publish user-property key value' or "
        "'-D connect session-expiry-interval 60' (repeatable)",
    )
    net.add_argument(
        "-d", "--debug", action="store_true", help="log the client's activity to stderr"
    )
    net.add_argument(
        "--quiet",
        action="store_true",
        help="print no error messages (exit status only)",
    )
    will = parser.add_argument_group("will")
    will.add_argument("--will-topic", help="topic of the will message")
    will.add_argument("--will-payload", help="payload of the will (default: empty)")
    will.add_argument("--will-qos", default="0", help="QoS of the will: 0, 1 or 2")
    will.add_argument(
        "--will-retain", action="store_true", help="the broker retains the will"
    )
    tls = parser.add_argument_group("TLS")
    tls.add_argument("--cafile", help="PEM file of the CAs to trust; turns TLS on")
    tls.add_argument("--capath", help="directory of CA certificates; turns TLS on")
    tls.add_argument(
        "--tls-use-os-certs",
        action="store_true",
        help="trust the system's CAs as well; turns TLS on",
    )
    tls.add_argument("--cert", help="client certificate (PEM); turns TLS on")
    tls.add_argument("--key", help="private key of --cert (PEM)")
    tls.add_argument(
        "--insecure",
        action="store_true",
        help="do not check that the certificate names the host (chain still verified)",
    )


def _pub(commands: argparse._SubParsersAction[_Parser]) -> None:
    pub = commands.add_parser(
        "pub",
        add_help=False,
        help="publish messages (like mosquitto_pub)",
        description="Publish a message, a file, stdin, or stdin line by line.",
    )
    _help(pub)
    _connection_options(pub)
    msg = pub.add_argument_group("message")
    msg.add_argument(
        "-t",
        "--topic",
        action="append",
        default=[],
        help="topic to publish to (repeatable: each gets the message)",
    )
    source = msg.add_mutually_exclusive_group()
    source.add_argument("-m", "--message", help="the payload, from the command line")
    source.add_argument("-f", "--file", help="send the contents of a file")
    source.add_argument(
        "-s",
        "--stdin-file",
        action="store_true",
        help="send all of stdin as one message",
    )
    source.add_argument(
        "-l",
        "--stdin-line",
        action="store_true",
        help="send each line of stdin as a message (empty lines too)",
    )
    source.add_argument(
        "-n", "--null-message", action="store_true", help="send an empty message"
    )
    msg.add_argument("-q", "--qos", default="0", help="QoS: 0 (default), 1 or 2")
    msg.add_argument(
        "-r", "--retain", action="store_true", help="the broker retains the message"
    )
    msg.add_argument(
        "--repeat", default="1", metavar="COUNT", help="publish COUNT times"
    )
    msg.add_argument(
        "--repeat-delay",
        default="0",
        metavar="SECONDS",
        help="pause between repeated publishes",
    )


def _sub(commands: argparse._SubParsersAction[_Parser]) -> None:
    sub = commands.add_parser(
        "sub",
        add_help=False,
        help="print received messages (like mosquitto_sub)",
        description="Subscribe to topic filters and print the messages received.",
    )
    _help(sub)
    _connection_options(sub)
    what = sub.add_argument_group("subscription")
    what.add_argument(
        "-t",
        "--topic",
        action="append",
        default=[],
        help="topic filter to subscribe to (repeatable)",
    )
    what.add_argument(
        "-q", "--qos", default="0", help="maximum QoS: 0 (default), 1 or 2"
    )
    what.add_argument(
        "-U",
        "--unsubscribe",
        action="append",
        default=[],
        help="unsubscribe from this filter after subscribing (repeatable)",
    )
    what.add_argument(
        "--retain-as-published",
        action="store_true",
        help="MQTT 5: keep the retain flag of forwarded messages",
    )
    what.add_argument(
        "--retain-handling",
        choices=("always", "new", "never"),
        default="always",
        help="MQTT 5: when the broker sends retained messages",
    )
    out = sub.add_argument_group("output")
    out.add_argument("-C", "--count", help="exit after this many messages were printed")
    out.add_argument(
        "-W", "--timeout", help="exit with status 27 after this many seconds"
    )
    out.add_argument(
        "-E",
        "--exit-after-sub",
        action="store_true",
        help="exit once the broker acknowledged the subscriptions",
    )
    out.add_argument(
        "-v", "--verbose", action="store_true", help="print 'topic payload'"
    )
    out.add_argument(
        "-F",
        "--format",
        help="output format: %%t topic, %%p payload, %%q QoS, %%r retain, "
        "%%l length, %%m message id, %%x/%%X hex payload, %%i client id, "
        "%%I ISO time, %%U unix time, %%j/%%J JSON, %%C %%D %%E %%F %%P %%R %%S "
        "MQTT 5 properties, @X strftime, \\n \\t escapes",
    )
    out.add_argument(
        "-N", "--no-eol", action="store_true", help="no newline after each message"
    )
    out.add_argument(
        "-R",
        "--no-retained",
        action="store_true",
        help="do not print retained (stale) messages",
    )
    out.add_argument(
        "--retained-only",
        action="store_true",
        help="print retained messages only; exit at the first new one",
    )
    out.add_argument(
        "--remove-retained",
        action="store_true",
        help="clear each retained message received (filter with -T)",
    )
    out.add_argument(
        "-T",
        "--filter-out",
        action="append",
        default=[],
        help="do not print messages whose topic matches this filter (repeatable)",
    )


def build_parser(prog: str) -> argparse.ArgumentParser:
    """The parser of the whole command line, subcommands included."""
    parser = _Parser(
        prog=prog,
        add_help=False,
        allow_abbrev=False,
        description="MQTT 3.1.1/5.0 from the command line: pub, sub, bench, demo.",
    )
    _help(parser)
    parser.add_argument("--version", action="store_true", help="print the version")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    _pub(commands)
    _sub(commands)
    bench = commands.add_parser(
        "bench",
        add_help=False,
        help="measure throughput and latency against a broker",
        description="Publish -> receive throughput at QoS 0/1/2 and QoS 1 round-trip "
        "latency, against a private mosquitto (default) or --url.",
    )
    _help(bench)
    bench.add_argument(
        "-L", "--url", help="broker URL (default: start a private mosquitto)"
    )
    bench.add_argument(
        "-n", "--count", default="10000", help="messages per QoS (default: 10000)"
    )
    bench.add_argument(
        "-s", "--size", default="64", help="payload size in bytes (default: 64)"
    )
    bench.add_argument(
        "-q",
        "--qos",
        default="0,1,2",
        help="QoS levels to measure, comma-separated (default: 0,1,2)",
    )
    bench.add_argument(
        "--pings", default="200", help="QoS 1 round trips for latency (default: 200)"
    )
    bench.add_argument(
        "--time-limit",
        default="60",
        metavar="SECONDS",
        help="stop measuring after this long (default: 60)",
    )
    bench.add_argument(
        "-V", "--protocol-version", default="5", help="MQTT version: 5 or 311"
    )
    demo = commands.add_parser(
        "demo",
        add_help=False,
        help="a publish/subscribe round trip at QoS 0, 1 and 2",
        description="Start a private mosquitto (unless --broker is given) and show "
        "a publish/subscribe round trip at QoS 0, 1 and 2.",
    )
    _help(demo)
    demo.add_argument(
        "--broker", metavar="URL", help="broker URL (default: a private mosquitto)"
    )
    return parser
