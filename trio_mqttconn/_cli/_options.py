"""From parsed arguments to checked values: the broker URI, client keywords, -D.

Every check here fails with a :class:`CliError` naming the option and the value, before
any connection is made. Values from the command line arrive as ``str``; Python decoded
them with ``surrogateescape``, so ``os.fsencode`` gives back the exact bytes typed
(payloads are sent as those bytes; topics and names must be UTF-8).
"""

from __future__ import annotations

import os
import ssl
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import unquote

import attrs

from .. import Properties, ProtocolVersion, QoS, Will
from ._args import CliError

if TYPE_CHECKING:
    import argparse
    from collections.abc import Collection, Sequence

__all__ = [
    "ClientOptions",
    "client_options",
    "number",
    "parse_properties",
    "protocol_version",
    "qos",
    "text",
    "topic_filter",
    "topic_name",
]

_FOREVER: Final = 0xFFFFFFFF
_U32: Final = 0xFFFFFFFF


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


def protocol_version(value: str) -> ProtocolVersion:
    name = value.lower().removeprefix("mqttv").removeprefix("v")
    if name in ("5", "5.0"):
        return ProtocolVersion.V5
    if name in ("311", "3.1.1", "4"):
        return ProtocolVersion.V311
    if name in ("31", "3.1", "3"):
        raise CliError("-V: MQTT 3.1 is not supported; use -V 311 or -V 5")
    raise CliError(f"-V must be 5 (mqttv5) or 311 (mqttv311), not {value!r}")


# -- MQTT 5 properties (-D) ---------------------------------------------------------

# name -> (Properties field, kind, low, high); kind: int, str, bin or pair.
_PROPERTIES: Final[dict[str, tuple[str, str, int, int]]] = {
    "payload-format-indicator": ("payload_format_indicator", "int", 0, 1),
    "message-expiry-interval": ("message_expiry_interval", "int", 0, _U32),
    "content-type": ("content_type", "str", 0, 0),
    "response-topic": ("response_topic", "str", 0, 0),
    "correlation-data": ("correlation_data", "bin", 0, 0),
    "subscription-identifier": ("subscription_identifiers", "int", 1, 268_435_455),
    "session-expiry-interval": ("session_expiry_interval", "int", 0, _U32),
    "authentication-method": ("authentication_method", "str", 0, 0),
    "authentication-data": ("authentication_data", "bin", 0, 0),
    "request-problem-information": ("request_problem_information", "int", 0, 1),
    "will-delay-interval": ("will_delay_interval", "int", 0, _U32),
    "request-response-information": ("request_response_information", "int", 0, 1),
    "receive-maximum": ("receive_maximum", "int", 1, 65535),
    "topic-alias-maximum": ("topic_alias_maximum", "int", 0, 65535),
    "topic-alias": ("topic_alias", "int", 1, 65535),
    "maximum-packet-size": ("maximum_packet_size", "int", 1, _U32),
    "user-property": ("user_properties", "pair", 0, 0),
    "reason-string": ("reason_string", "str", 0, 0),
    "server-reference": ("server_reference", "str", 0, 0),
}
_BROKER_ONLY: Final = frozenset(
    {
        "assigned-client-identifier",
        "server-keep-alive",
        "response-information",
        "maximum-qos",
        "retain-available",
        "wildcard-subscription-available",
        "subscription-identifier-available",
        "shared-subscription-available",
    }
)
_MESSAGE: Final = frozenset(
    {
        "payload-format-indicator",
        "message-expiry-interval",
        "content-type",
        "response-topic",
        "correlation-data",
        "user-property",
    }
)
_ALLOWED: Final[dict[str, frozenset[str]]] = {
    "connect": frozenset(
        {
            "session-expiry-interval",
            "authentication-method",
            "authentication-data",
            "request-problem-information",
            "request-response-information",
            "receive-maximum",
            "topic-alias-maximum",
            "maximum-packet-size",
            "user-property",
        }
    ),
    "publish": _MESSAGE | {"topic-alias"},
    "will": _MESSAGE | {"will-delay-interval"},
    "subscribe": frozenset({"subscription-identifier", "user-property"}),
    "unsubscribe": frozenset({"user-property"}),
    "disconnect": frozenset(),
    "auth": frozenset(),
}


def _property_value(where: str, kind: str, low: int, high: int, value: str) -> object:
    if kind == "int":
        return number(where, value, low, high)
    if kind == "bin":
        return os.fsencode(value)
    return text(where, value)


def parse_properties(
    items: Sequence[Sequence[str]], commands: Collection[str]
) -> dict[str, dict[str, Any]]:
    """The ``-D COMMAND NAME VALUE [VALUE]`` options as Properties fields per command.

    Only the commands in *commands* are accepted (pub sends no SUBSCRIBE ...).
    """
    result: dict[str, dict[str, Any]] = {}
    for item in items:
        command = item[0]
        name = item[1] if len(item) > 1 else ""
        values = item[2:]
        where = f"-D {command} {name}".rstrip()
        if command not in _ALLOWED:
            raise CliError(
                f"-D: unknown command {command!r}; use "
                + ", ".join(c for c in _ALLOWED if c in commands)
            )
        if command not in commands or not _ALLOWED[command]:
            raise CliError(f"-D {command}: this command sends no {command} properties")
        if not name:
            raise CliError(f"{where}: expected a property name and a value")
        if name in _BROKER_ONLY:
            raise CliError(f"{where}: only the broker sends this property")
        if name not in _PROPERTIES:
            raise CliError(f"{where}: unknown property {name!r}")
        if name not in _ALLOWED[command]:
            raise CliError(f"{where}: not allowed in {command}")
        field, kind, low, high = _PROPERTIES[name]
        wanted = 2 if kind == "pair" else 1
        if len(values) != wanted:
            shape = "NAME VALUE" if wanted == 2 else "VALUE"
            raise CliError(f"{where}: expected {shape} after the property name")
        fields = result.setdefault(command, {})
        if kind == "pair":
            pair = (text(where, values[0]), text(where, values[1]))
            fields[field] = (*fields.get(field, ()), pair)
            continue
        if field in fields:
            raise CliError(f"{where}: given twice")
        parsed = _property_value(where, kind, low, high, values[0])
        fields[field] = (parsed,) if field == "subscription_identifiers" else parsed
    return result


# -- the client ---------------------------------------------------------------------


@attrs.frozen
class ClientOptions:
    """What a subcommand needs to make its MqttClient."""

    uri: str
    """Broker URI for MqttClient."""
    kwargs: dict[str, Any]
    """Keyword arguments for MqttClient."""
    topics: tuple[str, ...]
    """Topics from -t, plus the one in --url, as given."""
    properties: dict[str, dict[str, Any]]
    """-D properties per command (publish, subscribe, ...)."""


def _split_url(url: str) -> tuple[str, str | None]:
    """mosquitto's ``mqtt(s)://host/topic``: the URI for the client and the topic."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() not in ("mqtt", "mqtts", "tcp", "ssl", "tls"):
        return url, None
    authority, slash, path = rest.partition("/")
    if not slash or not path:
        return f"{scheme}://{authority}", None
    return f"{scheme}://{authority}", unquote(path, errors="surrogateescape")


def _ssl_context(args: argparse.Namespace) -> ssl.SSLContext | None:
    if not (args.cafile or args.capath or args.cert or args.tls_use_os_certs):
        if args.key:
            raise CliError("--key needs --cert")
        return None
    try:
        context = ssl.create_default_context(cafile=args.cafile, capath=args.capath)
        if args.tls_use_os_certs and (args.cafile or args.capath):
            context.load_default_certs()
    except (OSError, ssl.SSLError) as exc:
        which = "--cafile" if args.cafile else "--capath"
        raise CliError(
            f"{which}: cannot load CA certificates: {exc.strerror or exc}"
        ) from None
    if args.cert:
        try:
            context.load_cert_chain(args.cert, args.key)
        except (OSError, ssl.SSLError) as exc:
            raise CliError(
                f"--cert/--key: cannot load the client certificate: {exc.strerror or exc}"
            ) from None
    elif args.key:
        raise CliError("--key needs --cert")
    return context


def _broker_uri(args: argparse.Namespace, tls: bool) -> tuple[str, str | None]:
    if args.url:
        if args.host or args.port or args.unix:
            raise CliError("give either --url or -h/-p/--unix, not both")
        uri, topic = _split_url(text("--url", args.url, secret=True))
        if tls and not uri.lower().startswith(("mqtts", "ssl", "tls", "wss")):
            raise CliError("TLS options need an mqtts:// or wss:// --url")
        return uri, topic
    if args.unix:
        if args.host or args.port:
            raise CliError("give either --unix or -h/-p, not both")
        return f"unix://{args.unix}", None
    host = text("-h", args.host or "localhost")
    if not host or any(c.isspace() or c in "/?#@[]" for c in host.strip("[]")):
        raise CliError(f"-h: bad host {host!r}")
    port = number("-p", args.port, 1, 65535) if args.port else (8883 if tls else 1883)
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"{'mqtts' if tls else 'mqtt'}://{host}:{port}", None


def _will(args: argparse.Namespace, properties: dict[str, Any] | None) -> Will | None:
    if args.will_topic is None:
        if args.will_payload is not None or args.will_retain or properties:
            raise CliError(
                "--will-payload, --will-retain and -D will need --will-topic"
            )
        return None
    return Will(
        topic=topic_name("--will-topic", args.will_topic),
        payload=os.fsencode(args.will_payload or ""),
        qos=qos("--will-qos", args.will_qos),
        retain=args.will_retain,
        properties=Properties(**properties) if properties else Properties(),
    )


def client_options(
    args: argparse.Namespace, *, commands: Collection[str]
) -> ClientOptions:
    """Check the connection options of pub/sub; *commands* are the valid -D commands."""
    protocol = protocol_version(args.protocol_version)
    props = parse_properties(args.property, commands)
    v5 = protocol is ProtocolVersion.V5
    if props and not v5:
        raise CliError("-D sets MQTT 5 properties; it needs -V 5")
    context = _ssl_context(args)
    uri, url_topic = _broker_uri(args, context is not None)
    if args.client_id is not None and args.id_prefix is not None:
        raise CliError("give either -i or -I, not both")
    client_id = args.client_id
    if args.id_prefix is not None:
        client_id = f"{args.id_prefix}{os.getpid()}"
    if client_id is not None:
        text("-i/-I", client_id)
    if args.disable_clean_session and not client_id:
        raise CliError(
            "-c needs a client id (-i or -I): the broker finds the session by it"
        )
    kwargs: dict[str, Any] = {
        "client_id": client_id,
        "protocol": protocol,
        "keepalive": number("-k", args.keepalive, 0, 65535),
        "clean_start": not args.disable_clean_session,
        "reconnect": False,
        "ssl_context": context,
        "tls_insecure": args.insecure,
    }
    if args.username is not None:
        kwargs["username"] = text("-u", args.username)
    if args.password is not None:
        kwargs["password"] = text("-P", args.password, secret=True)
    connect = dict(props.get("connect", {}))
    # The client has keywords for these CONNECT properties; it fills them in itself.
    for field, keyword in (
        ("session_expiry_interval", "session_expiry"),
        ("receive_maximum", "receive_maximum"),
        ("maximum_packet_size", "maximum_packet_size"),
        ("topic_alias_maximum", "topic_alias_maximum"),
    ):
        if field in connect:
            kwargs[keyword] = connect.pop(field)
    if args.session_expiry_interval is not None:
        if not v5:
            raise CliError("-x sets the MQTT 5 session expiry; it needs -V 5")
        value = args.session_expiry_interval
        kwargs["session_expiry"] = (
            _FOREVER if value in ("-1", "∞") else number("-x", value, 0, _U32)
        )
    elif args.disable_clean_session and v5 and "session_expiry" not in kwargs:
        kwargs["session_expiry"] = _FOREVER
    if connect:
        kwargs["properties"] = Properties(**connect)
    kwargs["will"] = _will(args, props.get("will"))
    topics = tuple(args.topic) + ((url_topic,) if url_topic else ())
    return ClientOptions(uri=uri, kwargs=kwargs, topics=topics, properties=props)
