"""aiomqtt's configuration objects and the argument rules the shim's client applies.

aiomqtt passes most arguments straight to paho-mqtt, so what an application sees when
it gets one wrong is paho's ``ValueError`` (``Invalid QoS level.``, ``Invalid topic.``
...). The functions here reproduce those checks and messages without paho, and
turn aiomqtt-shaped arguments into what the engine takes:

* `payload_to_bytes` - paho's payload rules;
* `normalise_subscribe_topics` / `normalise_unsubscribe_topics` - every topic shape
  ``subscribe()``/``unsubscribe()`` accept, per protocol version, as paho does;
* `check_publish` - topic, QoS and payload of ``publish()``;
* `will_to_engine`, `to_engine_protocol`, `build_tls_context`, `resolve_identifier`,
  `check_connect_options`, `reject_proxy` - the client's constructor arguments.

The texts of paho's errors (capitalised, with a final period) are kept verbatim,
unlike our own messages, because applications match on them.

``Will`` and ``TLSParameters`` are stdlib dataclasses, as in aiomqtt, so that
``dataclasses.replace()`` and friends keep working on them.
"""

from __future__ import annotations

import dataclasses
import enum
import ssl
import uuid
from typing import TYPE_CHECKING, Final, Literal, TypeAlias

from trio_mqttconn import (
    Properties as PropertiesRecord,
    ProtocolVersion as EngineProtocolVersion,
    QoS,
    Will as EngineWill,
)

from ._paho import (
    Properties,
    SubscribeOptions,
    is_subscribe_options,
    properties_to_record,
    to_subscribe_options,
)
from .topic import Wildcard

if TYPE_CHECKING:
    from .types import PayloadType

# The engine's shared empty properties record (no properties at all): the default
# of the public engine `Will`, so that identity checks against it hold.
_NO_PROPERTIES: Final[PropertiesRecord] = EngineWill(topic="-").properties

__all__ = [
    "MQTT_CLEAN_START_FIRST_ONLY",
    "PROXY_NOT_SUPPORTED",
    "CleanStartOption",
    "ProtocolVersion",
    "ProxySettings",
    "TLSParameters",
    "Will",
    "build_tls_context",
    "check_connect_options",
    "check_publish",
    "normalise_subscribe_topics",
    "normalise_unsubscribe_topics",
    "payload_to_bytes",
    "reject_proxy",
    "resolve_identifier",
    "to_engine_protocol",
    "will_to_engine",
]


class ProtocolVersion(enum.IntEnum):
    """MQTT protocol version of the client, as aiomqtt names them.

    The value is the protocol level sent in CONNECT. The default is ``V311``.
    """

    V31 = 3
    """MQTT 3.1 (protocol name ``MQIsdp``); not supported by trio_mqttconn."""
    V311 = 4
    """MQTT 3.1.1."""
    V5 = 5
    """MQTT 5.0."""


MQTT_CLEAN_START_FIRST_ONLY: Final = 3
"""``clean_start`` default: clean start on the first connection only (paho's value)."""

CleanStartOption: TypeAlias = bool | Literal[3]
"""What ``clean_start`` accepts: True, False or `MQTT_CLEAN_START_FIRST_ONLY`."""

PROXY_NOT_SUPPORTED: Final = (
    "proxies are not supported by trio_mqttconn yet; remove the proxy argument "
    "or tunnel the connection to the broker"
)
"""The message of the error raised when a client with a proxy connects."""

_MAX_TOPIC_BYTES: Final = 65535
_MAX_PAYLOAD: Final = 268435455
_INVALID_TOPIC: Final = "Invalid topic."
_INVALID_QOS: Final = "Invalid QoS level."
_NO_TOPIC: Final = "No topic specified, or incorrect topic type."
_NOT_OPTIONS: Final = "Subscribe options must be instance of SubscribeOptions class."


@dataclasses.dataclass(frozen=True)
class Will:
    """The message the broker publishes if the client disappears without DISCONNECT.

    Args:
        topic: Topic the will is published to.
        payload: Payload, with the rules of ``publish()`` (str as UTF-8, int/float as
            text, None as empty).
        qos: QoS of the will message.
        retain: Whether the broker retains it.
        properties: (MQTT 5 only) will properties, e.g. ``WillDelayInterval``; build
            them with ``Properties(PacketTypes.WILLMESSAGE)``.
    """

    topic: str
    """Topic the will is published to."""
    payload: PayloadType | None = None
    """The will payload."""
    qos: int = 0
    """QoS of the will message."""
    retain: bool = False
    """Whether the broker retains the will."""
    properties: Properties | None = None
    """(MQTT 5 only) will properties."""


@dataclasses.dataclass(frozen=True)
class TLSParameters:
    """TLS settings, turned into an ``ssl.SSLContext`` when the client connects.

    Prefer passing ``tls_context`` to the client; these mirror paho's ``tls_set()``.

    Args:
        ca_certs: File of CA certificates to verify the broker with; None uses the
            system's default CAs.
        certfile: Client certificate (PEM) for mutual TLS.
        keyfile: Private key of ``certfile``, if not in the same file.
        cert_reqs: Verification mode; None means ``ssl.CERT_REQUIRED``.
        tls_version: ``ssl.PROTOCOL_*`` constant; None means ``PROTOCOL_TLS_CLIENT``.
        ciphers: OpenSSL cipher string; None keeps the defaults.
        keyfile_password: Password of ``keyfile`` (never shown in the repr).
    """

    ca_certs: str | None = None
    """File of CA certificates, or None for the system's defaults."""
    certfile: str | None = None
    """Client certificate file."""
    keyfile: str | None = None
    """Client private key file."""
    cert_reqs: ssl.VerifyMode | None = None
    """Certificate verification mode (None: required)."""
    tls_version: int | None = None
    """``ssl.PROTOCOL_*`` constant (None: ``PROTOCOL_TLS_CLIENT``)."""
    ciphers: str | None = None
    """OpenSSL cipher string."""
    keyfile_password: str | None = dataclasses.field(default=None, repr=False)
    """Password of the private key."""


class ProxySettings:
    """SOCKS/HTTP proxy settings, accepted for compatibility only.

    Constructing one works, so existing configuration code runs; connecting a client
    that has one raises ``NotImplementedError`` with `PROXY_NOT_SUPPORTED`, because
    trio_mqttconn cannot connect through a proxy yet.

    Args:
        proxy_type: paho/PySocks proxy type (``socks.HTTP``, ``socks.SOCKS4``, ...).
        proxy_addr: Proxy host.
        proxy_rdns: Whether the proxy resolves the broker's name.
        proxy_username: Proxy user name.
        proxy_password: Proxy password (never shown in the repr).
        proxy_port: Proxy port.
    """

    proxy_args: dict[str, object]
    """The settings, keyed as paho's ``proxy_set()`` takes them."""

    def __init__(
        self,
        *,
        proxy_type: int,
        proxy_addr: str,
        proxy_rdns: bool | None = True,
        proxy_username: str | None = None,
        proxy_password: str | None = None,
        proxy_port: int | None = None,
    ) -> None:
        self.proxy_args = {
            "proxy_type": proxy_type,
            "proxy_addr": proxy_addr,
            "proxy_rdns": proxy_rdns,
            "proxy_username": proxy_username,
            "proxy_password": proxy_password,
            "proxy_port": proxy_port,
        }

    def __repr__(self) -> str:
        shown = ", ".join(
            f"{key}={value!r}"
            for key, value in self.proxy_args.items()
            if key != "proxy_password"
        )
        return f"ProxySettings({shown})"


def reject_proxy(proxy: ProxySettings | None) -> None:
    """Raise if a proxy is configured; the client calls this when connecting.

    Raises:
        NotImplementedError: If ``proxy`` is not None (message `PROXY_NOT_SUPPORTED`).
    """
    if proxy is not None:
        raise NotImplementedError(PROXY_NOT_SUPPORTED)


def to_engine_protocol(protocol: int) -> EngineProtocolVersion:
    """Map an aiomqtt `ProtocolVersion` to the engine's.

    Raises:
        NotImplementedError: For MQTT 3.1 (``V31``), which the engine does not speak.
        ValueError: For a number that is no protocol version.
    """
    if protocol == ProtocolVersion.V31:
        msg = (
            "MQTT 3.1 (ProtocolVersion.V31) is not supported by trio_mqttconn; "
            "use ProtocolVersion.V311 or ProtocolVersion.V5"
        )
        raise NotImplementedError(msg)
    try:
        return EngineProtocolVersion(protocol)
    except ValueError:
        msg = f"protocol must be a ProtocolVersion (V311 or V5), not {protocol!r}"
        raise ValueError(msg) from None


def payload_to_bytes(payload: object) -> bytes:
    """Convert a ``publish()``/``Will`` payload to bytes, with paho's rules.

    ``str`` is encoded as UTF-8, ``int`` and ``float`` become their ``str()`` (so
    ``42`` is sent as ``b"42"``, not as a binary integer), None is an empty payload,
    ``bytes`` and ``bytearray`` are sent unchanged (a ``bytearray`` is copied, so that
    changing it while the publish is in flight changes nothing).

    Raises:
        TypeError: For anything else, with paho's message
            ``payload must be a string, bytearray, int, float or None.``
    """
    if isinstance(payload, str):
        return payload.encode("utf-8")
    if isinstance(payload, int | float):
        return str(payload).encode("ascii")
    if payload is None:
        return b""
    if isinstance(payload, bytes | bytearray):
        return bytes(payload)
    msg = "payload must be a string, bytearray, int, float or None."
    raise TypeError(msg)


def _check_qos(qos: object) -> int:
    if not isinstance(qos, int) or not 0 <= qos <= 2:
        raise ValueError(_INVALID_QOS)
    return int(qos)


def _topic_text(topic: object) -> object:
    # Extension: Topic and Wildcard objects are accepted wherever a string is.
    return topic.value if isinstance(topic, Wildcard) else topic


def _is_valid_filter(topic_filter: str) -> bool:
    # paho's client-side filter check, on UTF-8 bytes: 1..65535 bytes, "+" and "#"
    # only as whole levels, nothing after "#".
    data = topic_filter.encode("utf-8")
    if not data or len(data) > _MAX_TOPIC_BYTES or b"#/" in data:
        return False
    return not any(
        len(level) > 1 and (b"+" in level or b"#" in level)
        for level in data.split(b"/")
    )


def normalise_subscribe_topics(
    topic: object,
    qos: int = 0,
    options: object = None,
    properties: object = None,
    *,
    protocol: int = ProtocolVersion.V311,
) -> list[tuple[str, SubscribeOptions]]:
    """Turn ``subscribe()``'s arguments into (filter, options) pairs, as paho does.

    The accepted shapes depend on the protocol, exactly as with aiomqtt on paho-mqtt:

    * MQTT 5: ``"a/b"`` with ``qos`` *or* ``options``;
      ``("a/b", SubscribeOptions(...))``;
      ``[("a/b", SubscribeOptions(...) or qos), ...]``.
    * MQTT 3.1.1: ``"a/b"`` with ``qos`` (``options`` is ignored); ``("a/b", qos)``;
      ``[("a/b", qos), ...]``.

    Topic and Wildcard objects are accepted in place of strings (an extension). paho's
    ``SubscribeOptions`` are accepted and converted to ours.

    Args:
        topic: The topic argument of ``subscribe()``.
        qos: The ``qos`` argument.
        options: The ``options`` argument (MQTT 5).
        properties: The ``properties`` argument; only its type is checked here, the
            client converts it with ``properties_to_record``.
        protocol: The client's protocol version.

    Returns:
        One (filter, options) pair per filter, in order; on MQTT 3.1.1 the options
        carry only the QoS.

    Raises:
        ValueError: With paho's messages: ``Invalid QoS level.``, ``Invalid topic.``,
            ``Empty topic list``, ``Subscribe options and qos parameters cannot be
            combined.``, ``Subscribe options must be instance of SubscribeOptions
            class.``, ``No topic specified, or incorrect topic type.``, ``Invalid
            subscription filter.``
        TypeError: If ``properties`` is not a Properties object.
    """
    properties_to_record(properties)
    mqtt5 = protocol == ProtocolVersion.V5
    if isinstance(topic, tuple):
        if len(topic) != 2:
            raise ValueError(_NO_TOPIC)
        if mqtt5:
            topic, options = topic
            if not is_subscribe_options(options):
                raise ValueError(_NOT_OPTIONS)
        else:
            topic, qos = topic
    topic = _topic_text(topic)
    pairs: list[tuple[str, SubscribeOptions]]
    if isinstance(topic, str):
        qos = _check_qos(qos)
        if not mqtt5:
            if not topic:
                raise ValueError(_INVALID_TOPIC)
            pairs = [(topic, SubscribeOptions(qos=qos))]
        elif options is None:
            pairs = [(topic, SubscribeOptions(qos=qos))]
        elif qos != 0:
            msg = "Subscribe options and qos parameters cannot be combined."
            raise ValueError(msg)
        elif not is_subscribe_options(options):
            raise ValueError(_NOT_OPTIONS)
        else:
            pairs = [(topic, to_subscribe_options(options))]
    elif isinstance(topic, list):
        if not topic:
            msg = "Empty topic list"
            raise ValueError(msg)
        pairs = [_list_entry(entry, mqtt5=mqtt5) for entry in topic]
    else:
        raise ValueError(_NO_TOPIC)
    if not all(_is_valid_filter(topic_filter) for topic_filter, _ in pairs):
        msg = "Invalid subscription filter."
        raise ValueError(msg)
    return pairs


def _list_entry(entry: object, *, mqtt5: bool) -> tuple[str, SubscribeOptions]:
    if not isinstance(entry, tuple | list) or len(entry) != 2:
        raise ValueError(_NO_TOPIC)
    topic, second = entry
    topic = _topic_text(topic)
    if mqtt5:
        if is_subscribe_options(second):
            options = to_subscribe_options(second)
        else:
            options = SubscribeOptions(qos=_check_qos(second))
        if not isinstance(topic, str):
            raise ValueError(_INVALID_TOPIC)
        return (topic, options)
    if is_subscribe_options(second):
        raise ValueError(_INVALID_QOS)
    qos = _check_qos(second)
    if not isinstance(topic, str) or not topic:
        raise ValueError(_INVALID_TOPIC)
    return (topic, SubscribeOptions(qos=qos))


def normalise_unsubscribe_topics(topic: object) -> list[str]:
    """Turn ``unsubscribe()``'s topic argument (a string or a list) into filters.

    Raises:
        ValueError: ``Invalid topic.`` for None or an empty/non-string filter,
            ``Empty topic list`` for ``[]`` (paho would send an empty, illegal
            UNSUBSCRIBE), ``No topic specified, or incorrect topic type.`` otherwise.
    """
    if topic is None:
        raise ValueError(_INVALID_TOPIC)
    topic = _topic_text(topic)
    if isinstance(topic, str):
        if not topic:
            raise ValueError(_INVALID_TOPIC)
        return [topic]
    if isinstance(topic, list):
        if not topic:
            msg = "Empty topic list"
            raise ValueError(msg)
        filters = [_topic_text(item) for item in topic]
        if not all(isinstance(item, str) and item for item in filters):
            raise ValueError(_INVALID_TOPIC)
        return filters  # type: ignore[return-value]  # checked just above
    raise ValueError(_NO_TOPIC)


def check_publish(
    topic: object, payload: object, qos: object, *, protocol: int
) -> tuple[str, bytes]:
    """Check ``publish()``'s topic, QoS and payload as paho does.

    Returns:
        The topic as a string and the payload as bytes (see `payload_to_bytes`).

    Raises:
        ValueError: ``Invalid topic.`` (empty, MQTT 3.1.1 only: MQTT 5 allows an
            empty topic with a topic alias), ``Publish topic cannot contain
            wildcards.``, ``Publish topic is too long.``, ``Invalid QoS level.``,
            ``Payload too large.``
        TypeError: If the topic is not a string (or `Topic`), or the payload has an
            unsupported type.
    """
    if topic is None:
        raise ValueError(_INVALID_TOPIC)
    topic = _topic_text(topic)
    if not isinstance(topic, str):
        msg = f"topic must be a str or Topic, not {type(topic).__name__}"
        raise TypeError(msg)
    if protocol != ProtocolVersion.V5 and not topic:
        raise ValueError(_INVALID_TOPIC)
    if "+" in topic or "#" in topic:
        msg = "Publish topic cannot contain wildcards."
        raise ValueError(msg)
    if len(topic.encode("utf-8")) > _MAX_TOPIC_BYTES:
        msg = "Publish topic is too long."
        raise ValueError(msg)
    _check_qos(qos)
    data = payload_to_bytes(payload)
    if len(data) > _MAX_PAYLOAD:
        msg = "Payload too large."
        raise ValueError(msg)
    return topic, data


def will_to_engine(will: Will, *, protocol: int) -> EngineWill:
    """Check an aiomqtt `Will` as paho's ``will_set()`` does and convert it.

    Will properties are sent on MQTT 5 only (paho ignores them otherwise).

    Raises:
        ValueError: ``Invalid topic.``, ``Invalid QoS level.``, or ``The properties
            argument must be an instance of the Properties class.``
        TypeError: If the payload has an unsupported type.
    """
    topic = _topic_text(will.topic)
    if not isinstance(topic, str) or not topic:
        raise ValueError(_INVALID_TOPIC)
    qos = _check_qos(will.qos)
    try:
        record = properties_to_record(will.properties)
    except TypeError:
        msg = "The properties argument must be an instance of the Properties class."
        raise ValueError(msg) from None
    return EngineWill(
        topic=topic,
        payload=payload_to_bytes(will.payload),
        qos=QoS(qos),
        retain=bool(will.retain),
        properties=record if protocol == ProtocolVersion.V5 else _NO_PROPERTIES,
    )


def build_tls_context(
    tls_context: ssl.SSLContext | None,
    tls_params: TLSParameters | None,
    tls_insecure: bool | None,
) -> ssl.SSLContext | None:
    """Build the client's TLS context from its three TLS arguments, as paho does.

    ``tls_params`` creates a context like paho's ``tls_set()``; ``tls_insecure``
    then turns hostname checking off (True) or on (False), on that context or on the
    ``tls_context`` given, which it modifies. None means plain TCP.

    This may read certificate files (synchronously): the client calls it once,
    when it first connects.

    Raises:
        ValueError: ``SSL/TLS has already been configured.`` if both ``tls_context``
            and ``tls_params`` are given; ``Must configure SSL context before using
            tls_insecure_set.`` if ``tls_insecure`` is given without either.
        OSError, ssl.SSLError: If a certificate file cannot be loaded.
    """
    context = tls_context
    if tls_params is not None:
        if context is not None:
            msg = "SSL/TLS has already been configured."
            raise ValueError(msg)
        context = _context_from_params(tls_params)
    if tls_insecure is not None:
        if context is None:
            msg = "Must configure SSL context before using tls_insecure_set."
            raise ValueError(msg)
        context.check_hostname = not tls_insecure
    return context


def _context_from_params(params: TLSParameters) -> ssl.SSLContext:
    version = (
        ssl.PROTOCOL_TLS_CLIENT if params.tls_version is None else params.tls_version
    )
    context = ssl.SSLContext(version)
    if params.ciphers is not None:
        context.set_ciphers(params.ciphers)
    if params.certfile is not None:
        context.load_cert_chain(
            params.certfile, params.keyfile, params.keyfile_password
        )
    if params.cert_reqs == ssl.CERT_NONE:
        context.check_hostname = False
    context.verify_mode = (
        ssl.CERT_REQUIRED if params.cert_reqs is None else params.cert_reqs
    )
    if params.ca_certs is not None:
        context.load_verify_locations(params.ca_certs)
    else:
        context.load_default_certs()
    # Hostname checking follows certificate checking, as after paho's tls_set().
    context.check_hostname = params.cert_reqs != ssl.CERT_NONE
    return context


def resolve_identifier(
    identifier: str | None, *, protocol: int, clean_session: bool | None
) -> str:
    """Check the client's session arguments and return its client identifier.

    As paho: no identifier means an empty one (the broker assigns one), except for
    MQTT 3.1, which gets a random 22-character one.

    Raises:
        ValueError: ``Clean session is not used for MQTT 5.0`` if ``clean_session``
            is given with MQTT 5; ``A client id must be provided if clean session is
            False.`` for a persistent MQTT 3.1.1 session without an identifier.
    """
    if protocol == ProtocolVersion.V5:
        if clean_session is not None:
            msg = "Clean session is not used for MQTT 5.0"
            raise ValueError(msg)
    elif clean_session is False and not identifier:
        msg = "A client id must be provided if clean session is False."
        raise ValueError(msg)
    if identifier:
        return identifier
    if protocol == ProtocolVersion.V31:
        return _random_identifier()
    return ""


_BASE62: Final = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


def _random_identifier() -> str:
    # 128 random bits in base 62: 22 characters, within MQTT 3.1's 23-byte limit.
    number = uuid.uuid4().int
    digits = []
    for _ in range(22):
        number, digit = divmod(number, 62)
        digits.append(_BASE62[digit])
    return "".join(reversed(digits))


def check_connect_options(
    *, protocol: int, clean_start: CleanStartOption, properties: object
) -> None:
    """Check the MQTT 5-only connect arguments, as paho's ``connect()`` does.

    Raises:
        ValueError: ``Clean start only applies to MQTT V5`` or ``Properties only
            apply to MQTT V5`` when they are given on MQTT 3.1.1.
    """
    if protocol == ProtocolVersion.V5:
        return
    if clean_start != MQTT_CLEAN_START_FIRST_ONLY:
        msg = "Clean start only applies to MQTT V5"
        raise ValueError(msg)
    if properties is not None:
        msg = "Properties only apply to MQTT V5"
        raise ValueError(msg)
