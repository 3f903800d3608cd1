"""Checking pub/sub arguments before connecting: -D, URLs, sessions (in-process)."""

from __future__ import annotations

import pytest

from trio_mqttconn import Properties, ProtocolVersion
from trio_mqttconn._cli._args import CliError, build_parser
from trio_mqttconn._cli._checks import topic_filter, topic_name
from trio_mqttconn._cli._options import ClientOptions, client_options
from trio_mqttconn._cli._props import parse_properties
from trio_mqttconn._cli._sub import matches

PUB = ("connect", "publish", "will")


def options(*argv: str) -> ClientOptions:
    args = build_parser("t").parse_args(["pub", *argv])
    return client_options(args, commands=PUB)


def test_options_properties_per_command() -> None:
    props = parse_properties(
        [
            ["publish", "user-property", "a", "1"],
            ["publish", "user-property", "a", "2"],
            ["publish", "correlation-data", "xyz"],
            ["publish", "message-expiry-interval", "4294967295"],
            ["will", "will-delay-interval", "5"],
            ["subscribe", "subscription-identifier", "268435455"],
        ],
        ("publish", "will", "subscribe"),
    )
    assert props["publish"] == {
        "user_properties": (("a", "1"), ("a", "2")),
        "correlation_data": b"xyz",
        "message_expiry_interval": 4294967295,
    }
    assert props["will"] == {"will_delay_interval": 5}
    assert props["subscribe"] == {"subscription_identifiers": (268435455,)}


@pytest.mark.parametrize(
    ("item", "message"),
    [
        (["connect"], "^-D connect: expected a property name and a value$"),
        (["publish", "content-type"], "^-D publish content-type: expected VALUE after"),
        (["publish", "content-type", "a", "b"], "expected VALUE after"),
        (["publish", "user-property", "a"], "expected NAME VALUE after"),
        (["publish", "receive-maximum", "1"], "^-D publish receive-maximum: not allowed in publish$"),
        (["publish", "payload-format-indicator", "2"], "must be a number from 0 to 1, not '2'$"),
        (["connect", "receive-maximum", "0"], "must be a number from 1 to 65535"),
        (["subscribe", "subscription-identifier", "0"], "from 1 to 268435455"),
        (["disconnect", "reason-string", "x"], "^-D disconnect: this command sends no disconnect properties$"),
        (["auth", "authentication-data", "x"], "sends no auth properties"),
        (["pubrel", "x", "y"], "^-D: unknown command 'pubrel'; use connect, publish, will, subscribe$"),
        (["connect", "assigned-client-identifier", "x"], "only the broker sends this property"),
    ],
)  # fmt: skip
def test_options_property_errors(item: list[str], message: str) -> None:
    with pytest.raises(CliError, match=message):
        parse_properties([item], (*PUB, "subscribe"))


def test_options_a_property_given_twice_is_an_error() -> None:
    with pytest.raises(CliError, match=r"^-D publish content-type: given twice$"):
        parse_properties([["publish", "content-type", "a"]] * 2, PUB)


def test_options_broker_address() -> None:
    assert options().uri == "mqtt://localhost:1883"
    assert options("-h", "::1", "-p", "1884").uri == "mqtt://[::1]:1884"
    assert options("--unix", "/run/m.sock").uri == "unix:///run/m.sock"
    url = options("-L", "mqtt://u:p@h:2/a/b%2Fc", "-t", "x")
    assert (url.uri, url.topics) == ("mqtt://u:p@h:2", ("x", "a/b/c"))
    assert options("-L", "ws://h:80/mqtt").topics == ()
    assert options("-L", "ws://h:80/mqtt").uri == "ws://h:80/mqtt"
    with pytest.raises(
        CliError, match=r"^give either --url or -h/-p/--unix, not both$"
    ):
        options("-L", "mqtt://h", "-p", "1")
    with pytest.raises(CliError, match=r"^-h: bad host 'a/b'$"):
        options("-h", "a/b")


def test_options_tls_turns_on_with_a_ca() -> None:
    opts = options("--tls-use-os-certs", "-h", "broker")
    assert opts.uri == "mqtts://broker:8883"
    assert opts.kwargs["ssl_context"] is not None
    assert opts.kwargs["tls_insecure"] is False
    assert options("--tls-use-os-certs", "--insecure").kwargs["tls_insecure"] is True
    with pytest.raises(
        CliError, match=r"^TLS options need an mqtts:// or wss:// --url$"
    ):
        options("--tls-use-os-certs", "-L", "mqtt://h")
    with pytest.raises(CliError, match=r"^--key needs --cert$"):
        options("--key", "k.pem")


def test_options_sessions() -> None:
    v5 = options("-c", "-i", "me").kwargs
    assert (v5["clean_start"], v5["session_expiry"]) == (False, 0xFFFFFFFF)
    assert options("-c", "-i", "me", "-x", "10").kwargs["session_expiry"] == 10
    assert options("-x", "-1").kwargs["session_expiry"] == 0xFFFFFFFF
    v311 = options("-c", "-I", "p-", "-V", "mqttv311").kwargs
    assert v311["protocol"] is ProtocolVersion.V311
    assert v311["client_id"].startswith("p-")
    assert "session_expiry" not in v311
    with pytest.raises(
        CliError, match=r"^-x sets the MQTT 5 session expiry; it needs -V 5$"
    ):
        options("-x", "5", "-V", "311")
    with pytest.raises(CliError, match=r"^give either -i or -I, not both$"):
        options("-i", "a", "-I", "b")


def test_options_connect_properties_go_to_the_client_keywords() -> None:
    kwargs = options(
        *("-D", "connect", "session-expiry-interval", "9"),
        *("-D", "connect", "receive-maximum", "5"),
        *("-D", "connect", "user-property", "a", "b"),
    ).kwargs
    assert (kwargs["session_expiry"], kwargs["receive_maximum"]) == (9, 5)
    assert kwargs["properties"] == Properties(user_properties=(("a", "b"),))


def test_options_will() -> None:
    will = options("--will-topic", "w", "--will-payload", "bye", "--will-retain",
                   "-D", "will", "content-type", "text/plain").kwargs["will"]  # fmt: skip
    assert (will.topic, will.payload, will.retain) == ("w", b"bye", True)
    assert will.properties.content_type == "text/plain"
    with pytest.raises(CliError, match=r"need --will-topic$"):
        options("--will-payload", "x")
    with pytest.raises(CliError, match=r"wildcards"):
        options("--will-topic", "w/#")


def test_options_secrets_stay_out_of_messages() -> None:
    for argv in (["-P", "s\udcffcret"], ["-L", "mqtt://u:s\udcffcret@h"]):
        with pytest.raises(CliError) as caught:
            options(*argv)
        assert "cret" not in str(caught.value)


@pytest.mark.parametrize(
    ("topic_filter", "topic", "expected"),
    [
        ("#", "a/b", True),
        ("#", "$SYS/x", False),
        ("+/b", "$SYS/b", False),
        ("$SYS/#", "$SYS/x", True),
        ("a/#", "a", True),
        ("a/+", "a/b", True),
        ("a/+", "a/b/c", False),
        ("a/+/c", "a//c", True),
        ("a/b", "a/b/c", False),
        ("a/b/c", "a/b", False),
    ],
)
def test_options_filter_out_matching(
    topic_filter: str, topic: str, expected: bool
) -> None:
    assert matches(topic_filter, topic) is expected


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["-h", "a\0b"], r"^-h must not contain NUL characters: b'a\\x00b'$"),
        (["--cafile", "/nonexistent.pem"], r"^--cafile: cannot load CA certificates: "),
        (
            ["--capath", "/nonexistent"],
            r"^--capath: '/nonexistent' is not a directory$",
        ),
        (["--cert", "/nonexistent.pem"], r"^--cert/--key: cannot load the client cert"),
        (["--unix", "/s", "-p", "1"], r"^give either --unix or -h/-p, not both$"),
        (["--insecure", "--cafile", "/nonexistent.pem"], r"^--cafile: "),
    ],
)
def test_options_errors(argv: list[str], message: str) -> None:
    with pytest.raises(CliError, match=message):
        options(*argv)


def test_options_empty_topics_are_errors() -> None:
    with pytest.raises(CliError, match=r"^-t: a topic cannot be empty$"):
        topic_name("-t", "")
    with pytest.raises(CliError, match=r"^-t: a topic filter cannot be empty$"):
        topic_filter("-t", "")
