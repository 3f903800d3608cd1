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

from .. import Properties, ProtocolVersion, Will
from ._args import CliError
from ._checks import number, qos, text, topic_name
from ._props import parse_properties

if TYPE_CHECKING:
    import argparse
    from collections.abc import Collection

__all__ = ["ClientOptions", "client_options", "protocol_version"]

_FOREVER: Final = 0xFFFFFFFF
_U32: Final = 0xFFFFFFFF


def protocol_version(value: str) -> ProtocolVersion:
    name = value.lower().removeprefix("mqttv").removeprefix("v")
    if name in ("5", "5.0"):
        return ProtocolVersion.V5
    if name in ("311", "3.1.1", "4"):
        return ProtocolVersion.V311
    if name in ("31", "3.1", "3"):
        raise CliError("-V: MQTT 3.1 is not supported; use -V 311 or -V 5")
    raise CliError(f"-V must be 5 (mqttv5) or 311 (mqttv311), not {value!r}")


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
    if args.capath and not os.path.isdir(args.capath):
        raise CliError(f"--capath: {args.capath!r} is not a directory")
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
