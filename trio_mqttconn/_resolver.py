"""MqttConnectionResolver and the option table of the pip-services component.

Theory of operation
-------------------
A pip-services configuration says *where* the broker is and *who* we are in two
families of sections, each either single or a numbered list:

- ``connection.*`` / ``connections.N.*``: a ``uri`` (which wins), or ``protocol``,
  ``host`` (alias ``ip``), ``port`` and ``path``; or a ``discovery_key`` that a
  ``*:discovery:*:*:1.0`` reference turns into such parameters;
- ``credential.*`` / ``credentials.N.*``: ``username`` and ``password``, or a
  ``store_key`` that a ``*:credential-store:*:*:1.0`` reference looks up.

`MqttConnectionResolver` turns that into a `ResolvedConnection`: every broker
`Endpoint`, in order (the engine fails over to the next when one is unreachable;
the Node, Python and Dart ports use only the first), and one user name and password.
Validation follows the pip-services Node ``MqttConnectionResolver`` and keeps its
error codes and messages: ``NO_CONNECTION``, ``NO_PROTOCOL``, ``NO_HOST``,
``NO_PORT`` and, from the pip-services ``ConnectionResolver``, ``CANNOT_RESOLVE``.
What upstream leaves unchecked fails here with our own messages, which name the key:
an unknown scheme (``WRONG_PROTOCOL``, the code of pip-services'
``HttpConnectionResolver``), a port that is 0, out of range or not a number
(``NO_PORT``), a ``store_key`` without a credential store.

Discovery services and credential stores are duck-typed: their methods may be plain
or ``async`` (the result is awaited when it is awaitable), and they may return
pip-services parameter objects, plain mappings or ``"key=value;..."`` strings.

The other half of the component's configuration, ``client_id`` and ``options.*``,
is read by `parse_connection_options`. Every key, with its default and meaning, is in
`CONFIG_KEYS`; the parser takes its defaults from that table, and the documentation
page is generated from it, so the two cannot drift apart. Durations are
milliseconds in the configuration (the pip-services convention) and seconds
everywhere else: they are converted here, once.
"""

from __future__ import annotations

import difflib
import inspect
import logging
import math
import ssl
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Final, final
from urllib.parse import unquote, urlsplit

import anyio.lowlevel
import attrs

from ._config import ConfigParams, to_boolean
from ._context import as_context
from ._enums import ProtocolVersion, QoS
from ._exceptions import ConfigError
from ._references import (
    ConnectionParams,
    CredentialParams,
    Descriptor,
    ReferencesLike,
    find_references,
    many_from_config,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = [
    "CONFIG_KEYS",
    "DEFAULT_PORTS",
    "ConfigKey",
    "ConnectionOptions",
    "Endpoint",
    "MqttConnectionResolver",
    "ResolvedConnection",
    "parse_connection_options",
    "warn_unknown_options",
]

DEFAULT_PORTS: Final[Mapping[str, int]] = {
    "mqtt": 1883,
    "tcp": 1883,
    "mqtts": 8883,
    "ssl": 8883,
    "tls": 8883,
    "ws": 80,
    "wss": 443,
    "unix": 0,
}
"""The supported URI schemes, each with the port used when none is given."""

_TLS_SCHEMES: Final = frozenset({"mqtts", "ssl", "tls", "wss"})
_WEBSOCKET_SCHEMES: Final = frozenset({"ws", "wss"})
_WEBSOCKET_PATH: Final = "/mqtt"
_SCHEMES_TEXT: Final = "mqtt, mqtts, tcp, ssl, tls, ws, wss or unix"
_KEEPALIVE_MAX_MS: Final = 65_535 * 1000
_SESSION_EXPIRY_MAX_MS: Final = 0xFFFF_FFFF * 1000
_LOGGER: Final = logging.getLogger("trio_mqttconn.connection")


@final
@attrs.frozen
class ConfigKey:
    """One configuration key of the pip-services component, for parsers and docs."""

    key: str
    """The dotted key, e.g. ``"options.keepalive_timeout"``."""
    default: str | None
    """The default as configuration text, or None when the key has no default."""
    meaning: str
    """What the key does, one or two sentences of reStructuredText."""


CONFIG_KEYS: Final[tuple[ConfigKey, ...]] = (
    ConfigKey(
        "client_id",
        None,
        "MQTT client identifier. When not set: the host name plus a random suffix, "
        "so two connections on one host do not take over each other's session.",
    ),
    ConfigKey(
        "connection.uri",
        None,
        "Broker URI, e.g. ``mqtt://broker:1883``; several, comma-separated, are "
        "tried in order (write a comma inside a password as ``%2C``). It replaces "
        "protocol, host, port and path; a ``user:password@`` in it is used when no "
        f"credential sets them. Schemes: {_SCHEMES_TEXT}.",
    ),
    ConfigKey(
        "connection.protocol",
        "mqtt",
        f"Scheme when no URI is set: {_SCHEMES_TEXT} (tcp is mqtt; ssl and tls "
        "are mqtts).",
    ),
    ConfigKey(
        "connection.host",
        None,
        "Broker host name or IP address; required unless a URI is set.",
    ),
    ConfigKey("connection.ip", None, "Alias of ``connection.host``."),
    ConfigKey(
        "connection.port",
        str(DEFAULT_PORTS["mqtt"]),
        "Broker port. The default depends on the protocol: "
        f"{DEFAULT_PORTS['mqtt']} for mqtt and tcp, "
        f"{DEFAULT_PORTS['mqtts']} for mqtts, ssl and tls, "
        f"{DEFAULT_PORTS['ws']} for ws, {DEFAULT_PORTS['wss']} for wss.",
    ),
    ConfigKey(
        "connection.path",
        None,
        f"WebSocket path for ws and wss (``{_WEBSOCKET_PATH}`` when not set), or "
        "the socket path for unix.",
    ),
    ConfigKey(
        "connection.discovery_key",
        None,
        "Resolve the connection under this key with the ``*:discovery:*:*:1.0`` "
        "reference; every connection it returns is used, in order.",
    ),
    ConfigKey(
        "connections.N.*",
        None,
        "Several connections (N = 0, 1, ...) with the keys of ``connection.*``; "
        "they are tried in order when one is unreachable (failover).",
    ),
    ConfigKey(
        "credential.username",
        None,
        "User name (alias ``credential.user``); wins over one in the URI.",
    ),
    ConfigKey(
        "credential.password",
        None,
        "Password (alias ``credential.pass``); never logged or shown.",
    ),
    ConfigKey(
        "credential.store_key",
        None,
        "Look the credential up under this key in the ``*:credential-store:*:*:1.0`` "
        "reference.",
    ),
    ConfigKey(
        "credentials.N.*",
        None,
        "Several credentials: the first without a ``store_key`` is used, else the "
        "first one a credential store finds.",
    ),
    ConfigKey(
        "options.retry_connect",
        "true",
        "Reconnect after the connection drops, and re-subscribe when the broker "
        "lost the session. When false, a drop leaves the component disconnected.",
    ),
    ConfigKey(
        "options.connect_timeout",
        "30000",
        "Milliseconds to wait for a connection (TCP, TLS, WebSocket and CONNACK).",
    ),
    ConfigKey(
        "options.max_reconnect",
        None,
        "Legacy alias of ``options.connect_timeout``, read only when that key is "
        "not set: the upstream ports read their connect timeout from this key by "
        "mistake.",
    ),
    ConfigKey(
        "options.reconnect_timeout",
        "1000",
        "Milliseconds before the first reconnect attempt; later attempts back off "
        "exponentially, with jitter.",
    ),
    ConfigKey(
        "options.keepalive_timeout",
        "60000",
        "Milliseconds between keepalive pings, sent to the broker in whole seconds "
        "(rounded up); 0 turns keepalive off. The upstream documentation says the "
        "default is 3000, but every upstream implementation uses 60000, and so do "
        "we.",
    ),
    ConfigKey(
        "options.protocol_version",
        "5",
        "MQTT version: ``3.1.1`` (or ``4``) or ``5`` (or ``5.0``).",
    ),
    ConfigKey(
        "options.clean_start",
        "true",
        "Start with a new session (MQTT 5 clean start, MQTT 3.1.1 clean session).",
    ),
    ConfigKey(
        "options.session_expiry",
        "0",
        "Milliseconds the broker keeps the session after the connection ends "
        "(MQTT 5), sent in whole seconds (rounded up); 0 ends it with the "
        "connection.",
    ),
    ConfigKey(
        "options.ssl_ca_file",
        None,
        "PEM file of the certificate authorities to trust instead of the system's.",
    ),
    ConfigKey(
        "options.ssl_cert_file",
        None,
        "PEM file of the client certificate (and its key, unless "
        "``options.ssl_key_file`` is set).",
    ),
    ConfigKey("options.ssl_key_file", None, "PEM file of the client private key."),
    ConfigKey(
        "options.ssl_key_password",
        None,
        "Password of an encrypted client key; never logged or shown.",
    ),
    ConfigKey(
        "options.ssl_verify",
        "true",
        "Verify the broker's certificate and host name.",
    ),
    ConfigKey(
        "options.ssl_insecure",
        "false",
        "The opposite of ``options.ssl_verify``: true skips certificate checks "
        "(for tests only).",
    ),
    ConfigKey(
        "options.will_topic",
        None,
        "Topic of the will message, which the broker publishes when the client "
        "disappears without disconnecting. No will when not set.",
    ),
    ConfigKey("options.will_payload", "", "Will message text, sent as UTF-8."),
    ConfigKey("options.will_qos", "0", "QoS of the will message: 0, 1 or 2."),
    ConfigKey(
        "options.will_retain",
        "false",
        "Whether the broker retains the will message.",
    ),
)
"""Every key the pip-services component reads, in documentation order."""

_KEYS: Final = {entry.key: entry for entry in CONFIG_KEYS}


def _default(key: str) -> str:
    default = _KEYS[key].default
    assert default is not None, key
    return default


# -- endpoints and credentials --------------------------------------------------


@final
@attrs.frozen
class Endpoint:
    """One broker address: where the transport connects."""

    protocol: str
    """The URI scheme, lower-case: one of `DEFAULT_PORTS` (``mqtt``, ``wss`` ...)."""
    host: str
    """Host name or IP address (without brackets); empty for unix sockets."""
    port: int
    """TCP port; 0 for unix sockets."""
    path: str = ""
    """WebSocket path (with any query) for ws and wss, socket path for unix."""

    @property
    def tls(self) -> bool:
        """Whether the transport uses TLS (mqtts, ssl, tls, wss)."""
        return self.protocol in _TLS_SCHEMES

    @property
    def websocket(self) -> bool:
        """Whether the transport is a WebSocket (ws, wss)."""
        return self.protocol in _WEBSOCKET_SCHEMES

    @property
    def uri(self) -> str:
        """The endpoint as a URI without credentials, e.g. ``mqtt://localhost:1883``."""
        if self.protocol == "unix":
            return f"unix://{self.path}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        path = self.path if self.websocket else ""
        return f"{self.protocol}://{host}:{self.port}{path}"


@final
@attrs.frozen
class ResolvedConnection(Mapping[str, str]):
    """What `MqttConnectionResolver` resolves: brokers in failover order, and a login.

    ``uri``, ``protocol``, ``host`` and ``port`` describe the first endpoint, as the
    options object of the upstream resolver does. Code written against upstream
    reads it as those options, and can: it is a read-only mapping with the keys of
    `to_config` (``options["uri"]``, ``options.get("username")``,
    ``options.get_as_string("uri")``), values as text. The typed attributes
    (``endpoints``, ``port`` as an int ...) are there as well. The password is never
    shown by ``repr()``.
    """

    endpoints: tuple[Endpoint, ...]
    """Every broker, in the order to try them; never empty."""
    username: str | None = None
    """User name, or None to connect without one."""
    password: str | None = attrs.field(default=None, repr=False)
    """Password, or None."""

    @property
    def uri(self) -> str:
        """URI of the first endpoint, without credentials."""
        return self.endpoints[0].uri

    @property
    def protocol(self) -> str:
        """Scheme of the first endpoint."""
        return self.endpoints[0].protocol

    @property
    def host(self) -> str:
        """Host of the first endpoint."""
        return self.endpoints[0].host

    @property
    def port(self) -> int:
        """Port of the first endpoint."""
        return self.endpoints[0].port

    @property
    def uris(self) -> list[str]:
        """URIs of all endpoints, in failover order."""
        return [endpoint.uri for endpoint in self.endpoints]

    def __getitem__(self, key: str) -> str:
        """Return an option of `to_config` by name (case-insensitive)."""
        return self.to_config()[key]

    def __iter__(self) -> Iterator[str]:
        """Iterate over the option names of `to_config`."""
        return iter(self.to_config())

    def __len__(self) -> int:
        """The number of options in `to_config`."""
        return len(self.to_config())

    def get_as_string(self, key: str) -> str:
        """Return an option as text, ``""`` when it is not set (pip-services getter)."""
        return self.to_config().get_as_string(key)

    def get_as_nullable_string(self, key: str) -> str | None:
        """Return an option as text, or None when it is not set."""
        return self.to_config().get_as_nullable_string(key)

    def get_as_integer(self, key: str) -> int:
        """Return an option as an integer, 0 when unset or not a number."""
        return self.to_config().get_as_integer(key)

    def get_as_object(self) -> dict[str, str]:
        """Return the options as a plain dict (the upstream Python resolver's result)."""
        return dict(self.to_config())

    def to_config(self) -> ConfigParams:
        """Return the upstream options shape: uri, protocol, host, port, uris, login.

        ``uris`` is comma-separated; ``username`` and ``password`` are present only
        when set. The password stays masked in the result's ``repr()``.
        """
        return ConfigParams.from_tuples(
            "uri",
            self.uri,
            "protocol",
            self.protocol,
            "host",
            self.host,
            "port",
            self.port,
            "uris",
            ",".join(self.uris),
            "username",
            self.username,
            "password",
            self.password,
        )


def _protocol(key: str, value: str) -> str:
    protocol = value.strip().lower()
    if protocol not in DEFAULT_PORTS:
        raise ConfigError(
            f"{key} is {value!r}, which MQTT does not support: use {_SCHEMES_TEXT}",
            code="WRONG_PROTOCOL",
        )
    return protocol


def _no_protocol() -> ConfigError:
    return ConfigError("Connection protocol is not set", code="NO_PROTOCOL")


def _no_host() -> ConfigError:
    return ConfigError("Connection host is not set", code="NO_HOST")


def _no_port() -> ConfigError:
    return ConfigError("Connection port is not set", code="NO_PORT")


def _bad_port(what: str, text: str) -> ConfigError:
    return ConfigError(
        f"{what} {text.strip()!r}, which is not a port: use a whole number from 1 "
        "to 65535",
        code="WRONG_PORT",
    )


def _shown_uri(text: str) -> str:
    """The URI for a message: whatever precedes its last ``@`` may be a password."""
    scheme, separator, rest = text.rpartition("://")
    if "@" in rest:
        rest = "***@" + rest.rpartition("@")[2]
    elif not separator and "@" in scheme:
        scheme = "***@" + scheme.rpartition("@")[2]
    return f"{scheme}{separator}{rest}"


def _uri_port_text(netloc: str) -> str:
    hostport = netloc.rpartition("@")[2]
    if hostport.startswith("["):
        hostport = hostport.partition("]")[2]
    return hostport.rpartition(":")[2]


def _login(params: ConfigParams) -> tuple[str | None, str | None]:
    credential = CredentialParams(params)
    return credential.username, credential.password


def _endpoint_from_uri(
    label: str, text: str
) -> tuple[Endpoint, str | None, str | None]:
    scheme, separator, rest = text.partition("://")
    if not separator or not scheme.strip():
        raise ConfigError(
            f"{label}.uri is {_shown_uri(text)!r}, which has no scheme: write it as "
            f"scheme://host:port with a scheme of {_SCHEMES_TEXT}",
            code="NO_PROTOCOL",
        )
    if scheme.strip().lower() not in DEFAULT_PORTS:
        raise ConfigError(
            f"{label}.uri is {_shown_uri(text)!r}, whose scheme {scheme!r} MQTT does "
            f"not support: use {_SCHEMES_TEXT}",
            code="WRONG_PROTOCOL",
        )
    protocol = _protocol(f"{label}.uri", scheme)
    if protocol == "unix":
        path = unquote(rest.partition("?")[0])
        if not path:
            raise ConfigError(
                f"{label}.uri has no socket path: write it as unix:///path/to/socket",
                code="NO_PATH",
            )
        return Endpoint(protocol, "", 0, path), None, None
    try:
        parts = urlsplit(text)
    except ValueError:
        raise ConfigError(
            f"{label}.uri is not a valid URI: check the brackets around an IPv6 "
            "address",
            code="WRONG_URI",
        ) from None
    try:
        port = parts.port
    except ValueError:
        port_text = _uri_port_text(parts.netloc)
        raise _bad_port(f"{label}.uri has the port", port_text) from None
    if not parts.hostname:
        raise _no_host()
    if port is None:
        port = DEFAULT_PORTS[protocol]
    elif port == 0:
        raise _no_port()
    path = ""
    if protocol in _WEBSOCKET_SCHEMES:
        path = parts.path or _WEBSOCKET_PATH
        if parts.query:
            path = f"{path}?{parts.query}"
    username = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password else None
    return Endpoint(protocol, parts.hostname, port, path), username, password


def _endpoint_from_parts(label: str, connection: ConnectionParams) -> Endpoint:
    protocol = _protocol(
        f"{label}.protocol", connection.protocol or _default("connection.protocol")
    )
    if protocol == "unix":
        path = connection.get("path")
        if not path:
            raise ConfigError(
                f"{label}.path is not set: a unix connection needs the socket path",
                code="NO_PATH",
            )
        return Endpoint(protocol, "", 0, path)
    host = (connection.host or "").strip().removeprefix("[").removesuffix("]")
    if not host:
        raise _no_host()
    if not connection.get("port", "").strip():
        port = DEFAULT_PORTS[protocol]
    else:
        text = connection.get("port", "").strip()
        if not text.isdecimal() or int(text) > 65535:
            raise _bad_port(f"{label}.port is", text)
        port = int(text)
        if port == 0:
            raise _no_port()
    path = ""
    if protocol in _WEBSOCKET_SCHEMES:
        path = connection.get("path") or _WEBSOCKET_PATH
    return Endpoint(protocol, host, port, path)


def _endpoints(
    label: str, connection: ConnectionParams
) -> tuple[list[Endpoint], str | None, str | None]:
    """Validate one connection; return its endpoints and any login it carries."""
    username, password = _login(connection)
    uris = [part.strip() for part in (connection.uri or "").split(",")]
    uris = [uri for uri in uris if uri]
    if not uris:
        return [_endpoint_from_parts(label, connection)], username, password
    endpoints: list[Endpoint] = []
    for uri in uris:
        endpoint, uri_username, uri_password = _endpoint_from_uri(label, uri)
        endpoints.append(endpoint)
        # Keys of the connection win over the URI, as credentials win over both.
        username = username or uri_username
        password = password or uri_password
    return endpoints, username, password


async def _call(method: object, context: object, key: str) -> object:
    if not callable(method):
        raise TypeError(f"expected a method, not {type(method).__name__}")
    # A pip-services service reads its context with context.get(): never a plain id.
    result = method(as_context(context), key)
    if inspect.isawaitable(result):
        result = await result
    return result


def _as_params(
    cls: type[ConnectionParams | CredentialParams],
    source: object,
    value: object,
    what: str,
) -> ConfigParams:
    if isinstance(value, Mapping | str):
        return cls.of(value)
    raise ConfigError(
        f"{what}: {type(source).__name__} returned {type(value).__name__}, "
        "not connection or credential parameters"
    )


@final
@attrs.define(eq=False)
class MqttConnectionResolver:
    """Resolves MQTT endpoints and credentials from configuration and references.

    Configuration keys: ``connection(s).*`` and ``credential(s).*`` (see
    `CONFIG_KEYS`). References: ``*:discovery:*:*:1.0`` to resolve a
    ``discovery_key``, ``*:credential-store:*:*:1.0`` to look up a ``store_key``;
    ours (`MemoryDiscovery`, `MemoryCredentialStore`) or pip-services' ones, sync or
    async.

    Example::

        resolver = MqttConnectionResolver()
        resolver.configure(ConfigParams.from_tuples(
            "connection.host", "localhost", "connection.port", 1883))
        resolved = await resolver.resolve(None)
        resolved.uri  # "mqtt://localhost:1883"
    """

    _connections: list[tuple[str, ConnectionParams]] = attrs.field(
        factory=list, init=False
    )
    _credentials: list[tuple[str, CredentialParams]] = attrs.field(
        factory=list, init=False, repr=False
    )
    _references: ReferencesLike | None = attrs.field(default=None, init=False)

    def configure(self, config: Mapping[str, object]) -> None:
        """Read and check the ``connection(s)`` and ``credential(s)`` sections.

        Unlike upstream, a second call replaces what an earlier one read instead of
        adding to it, so reconfiguring does not grow the failover list, and a bad
        value fails here rather than on the first `resolve`.

        Args:
            config: the component configuration, ours or any mapping.

        Raises:
            ConfigError: a connection is invalid (see `resolve`); connections that
                a discovery service resolves are checked by `resolve`.
        """
        connections = many_from_config(ConnectionParams, config, "connection")
        for label, connection in connections:
            if not connection.use_discovery():
                _endpoints(label, connection)  # raises for a bad value, now
        self._connections = connections
        self._credentials = many_from_config(CredentialParams, config, "credential")

    def set_references(self, references: ReferencesLike | None) -> None:
        """Set where discovery services and credential stores are found.

        Args:
            references: our `References`, a pip-services ``IReferences``, or
                anything with ``get_optional(locator)``; None forgets them.
        """
        self._references = references

    async def resolve(self, context: object = None) -> ResolvedConnection:
        """Resolve the configured connections and credential.

        Discovery services and credential stores are consulted as needed.

        Args:
            context: pip-services context or trace id, passed to discovery services
                and credential stores.

        Returns:
            The endpoints, in failover order, and the login.

        Raises:
            ConfigError: nothing usable is configured; ``code`` says what
                (``NO_CONNECTION``, ``NO_HOST``, ``NO_PORT``, ``CANNOT_RESOLVE`` ...).
        """
        await anyio.lowlevel.checkpoint()
        return await self._compose(context, self._connections, self._credentials)

    async def compose(
        self,
        context: object,
        connections: Mapping[str, object] | Sequence[Mapping[str, object]] | None,
        credential: Mapping[str, object] | None,
    ) -> ResolvedConnection:
        """Validate and combine connection and credential parameters given directly.

        Keys are those of one ``connection.*`` and ``credential.*`` section, without
        the prefix; ``discovery_key`` and ``store_key`` are resolved through the
        references as in `resolve`.

        Args:
            context: pip-services context or trace id.
            connections: one connection, several (failover order), or None.
            credential: the credential, or None.

        Returns:
            The endpoints and the login.

        Raises:
            ConfigError: as `resolve`.
        """
        await anyio.lowlevel.checkpoint()
        if connections is None:
            labelled = []
        elif isinstance(connections, Mapping):
            labelled = [("connection", ConnectionParams.of(connections))]
        else:
            labelled = [
                (f"connections.{index}", ConnectionParams.of(connection))
                for index, connection in enumerate(connections)
            ]
        credentials = (
            []
            if credential is None
            else [("credential", CredentialParams.of(credential))]
        )
        return await self._compose(context, labelled, credentials)

    async def _compose(
        self,
        context: object,
        connections: Sequence[tuple[str, ConnectionParams]],
        credentials: Sequence[tuple[str, CredentialParams]],
    ) -> ResolvedConnection:
        resolved: list[tuple[str, ConnectionParams]] = []
        for label, connection in connections:
            if connection.use_discovery():
                found = await self._discover(context, label, connection)
                resolved.extend((label, params) for params in found)
            else:
                resolved.append((label, connection))
        if not resolved:
            raise ConfigError("MQTT connection is not set", code="NO_CONNECTION")

        endpoints: list[Endpoint] = []
        username = password = None
        for label, connection in resolved:
            found_endpoints, found_username, found_password = _endpoints(
                label, connection
            )
            endpoints.extend(found_endpoints)
            username = username or found_username
            password = password or found_password

        credential = await self._credential(context, credentials)
        if credential is not None:
            username = credential.username or username
            password = credential.password or password
        return ResolvedConnection(tuple(endpoints), username, password)

    def _find(self, kind: str) -> list[object]:
        return find_references(self._references, Descriptor("*", kind, "*", "*", "*"))

    async def _discover(
        self, context: object, label: str, connection: ConnectionParams
    ) -> list[ConnectionParams]:
        key = connection.discovery_key
        assert key is not None
        discoveries = self._find("discovery")
        if not discoveries:
            # pip-services' ConnectionResolver text and code, kept as upstream has it.
            raise ConfigError(
                "Discovery wasn't found to make resolution", code="CANNOT_RESOLVE"
            )
        configured = connection.copy()
        configured.remove("discovery_key")
        what = f"{label}.discovery_key {key!r}"
        found: list[ConnectionParams] = []
        for discovery in discoveries:
            resolve_all = getattr(discovery, "resolve_all", None)
            if resolve_all is not None:
                result = await _call(resolve_all, context, key)
                items: list[object] = (
                    list(result)
                    if isinstance(result, Iterable)
                    and not isinstance(result, Mapping | str)
                    else [result]
                )
            else:
                items = [
                    await _call(getattr(discovery, "resolve_one", None), context, key)
                ]
            found.extend(
                configured.override(_as_params(ConnectionParams, discovery, item, what))
                for item in items
                if item is not None
            )
        return found

    async def _credential(
        self, context: object, credentials: Sequence[tuple[str, CredentialParams]]
    ) -> CredentialParams | None:
        for _, credential in credentials:
            if not credential.use_credential_store():
                return credential
        for label, credential in credentials:
            found = await self._lookup(context, label, credential)
            if found is not None:
                return found
        return None

    async def _lookup(
        self, context: object, label: str, credential: CredentialParams
    ) -> CredentialParams | None:
        key = credential.store_key
        assert key is not None
        stores = self._find("credential-store")
        if not stores:
            # pip-services' CredentialResolver code and text, kept as upstream has it.
            raise ConfigError(
                "Credential store wasn't found to make lookup", code="REF_ERROR"
            )
        configured = credential.copy()
        configured.remove("store_key")
        for store in stores:
            result = await _call(getattr(store, "lookup", None), context, key)
            if result is not None:
                what = f"{label}.store_key {key!r}"
                return configured.override(
                    _as_params(CredentialParams, store, result, what)
                )
        return None


# -- options --------------------------------------------------------------------


@final
@attrs.frozen(kw_only=True)
class ConnectionOptions:
    """The ``client_id`` and ``options.*`` settings, parsed, in engine units.

    Produced by `parse_connection_options`; durations are seconds here.
    """

    client_id: str | None
    """Client identifier, or None for the caller to generate one."""
    retry_connect: bool
    """Whether to reconnect (and re-subscribe) after the connection drops."""
    connect_timeout: float
    """Seconds allowed for connecting, CONNACK included."""
    reconnect_timeout: float
    """Seconds before the first reconnect attempt."""
    keepalive: int
    """Keepalive in whole seconds; 0 turns it off."""
    protocol_version: ProtocolVersion
    """MQTT version to speak."""
    clean_start: bool
    """Whether to start a new session."""
    session_expiry: int
    """Seconds the broker keeps the session after the connection ends (MQTT 5)."""
    ssl_ca_file: str | None
    """PEM file of the trusted certificate authorities, or None for the system's."""
    ssl_cert_file: str | None
    """PEM file of the client certificate, or None."""
    ssl_key_file: str | None
    """PEM file of the client key, or None (then it is in ``ssl_cert_file``)."""
    ssl_key_password: str | None = attrs.field(repr=False)
    """Password of an encrypted client key, or None."""
    ssl_verify: bool
    """Whether to verify the broker's certificate and host name."""
    will_topic: str | None
    """Topic of the will message, or None for no will."""
    will_payload: bytes
    """The will message."""
    will_qos: QoS
    """QoS of the will message."""
    will_retain: bool
    """Whether the broker retains the will message."""

    def create_ssl_context(self) -> ssl.SSLContext | None:
        """Build the TLS context the ``ssl_*`` options describe.

        Returns:
            None when no ``ssl_*`` option differs from its default (the transport
            then uses ``ssl.create_default_context()``), else the context.

        Raises:
            ConfigError: a file cannot be read or is not a usable PEM file; the
                message names the key.
        """
        if self.ssl_ca_file is None and self.ssl_cert_file is None and self.ssl_verify:
            return None
        try:
            context = ssl.create_default_context(cafile=self.ssl_ca_file)
        except OSError as exc:  # ssl.SSLError included
            what = f"options.ssl_ca_file {self.ssl_ca_file!r}"
            raise _unreadable(what, exc) from exc
        if self.ssl_cert_file is not None:
            try:
                # An empty password makes OpenSSL fail on an encrypted key instead of
                # prompting on the terminal.
                context.load_cert_chain(
                    self.ssl_cert_file,
                    self.ssl_key_file,
                    password=self.ssl_key_password or "",
                )
            except OSError as exc:  # ssl.SSLError included
                what = f"options.ssl_cert_file {self.ssl_cert_file!r}"
                if self.ssl_key_file is not None:
                    what += f" or options.ssl_key_file {self.ssl_key_file!r}"
                raise _unreadable(what, exc) from exc
        if not self.ssl_verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context


def _unreadable(what: str, exc: OSError) -> ConfigError:
    reason = exc.strerror or str(exc)
    return ConfigError(f"{what} cannot be loaded: {reason}")


def _given(config: ConfigParams, key: str) -> str | None:
    value = config.get(key)
    return value if value else None


def _setting(config: ConfigParams, key: str) -> str:
    value = _given(config, key)
    return _default(key) if value is None else value


def _boolean(key: str, text: str) -> bool:
    value = to_boolean(text)
    if value is None:
        raise ConfigError(f"{key} must be true or false, not {text!r}")
    return value


def _milliseconds(key: str, text: str, *, maximum: int | None = None) -> float:
    """Parse milliseconds: above 0, or from 0 to ``maximum`` when one is given."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise ConfigError(f"{key} must be a number of milliseconds, not {text!r}")
    if maximum is None:
        if value <= 0:
            raise ConfigError(f"{key} must be more than 0 milliseconds, not {text!r}")
    elif not 0 <= value <= maximum:
        raise ConfigError(
            f"{key} must be from 0 to {maximum} milliseconds, not {text!r}"
        )
    return value


def _whole_seconds(milliseconds: float) -> int:
    return math.ceil(milliseconds / 1000)


_VERSIONS: Final = {
    "3.1.1": ProtocolVersion.V311,
    "311": ProtocolVersion.V311,
    "4": ProtocolVersion.V311,
    "5": ProtocolVersion.V5,
    "5.0": ProtocolVersion.V5,
}


def warn_unknown_options(
    config: Mapping[str, object], extra: Iterable[ConfigKey] = ()
) -> None:
    """Log a warning for each ``options.*`` key nobody reads, naming the closest one.

    A typo (``options.conect_timeout``) would otherwise be ignored silently, as
    every other unknown key is (a pip-services configuration holds other
    components' keys too, but ``options.*`` is this component's section).

    Args:
        config: the component configuration.
        extra: keys read besides `CONFIG_KEYS` (the queue's).
    """
    known = [
        entry.key
        for entry in (*CONFIG_KEYS, *extra)
        if entry.key.startswith("options.")
    ]
    for key in ConfigParams.of(config):
        if not key.startswith("options.") or key in known:
            continue
        close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
        hint = f"did you mean {close[0]}?" if close else "it is ignored"
        _LOGGER.warning("unknown configuration key %s: %s", key, hint)


def parse_connection_options(config: Mapping[str, object]) -> ConnectionOptions:
    """Read ``client_id`` and ``options.*``, with the defaults of `CONFIG_KEYS`.

    Unknown keys are ignored (a pip-services configuration holds other components'
    keys too).

    Args:
        config: the component configuration, ours or any mapping.

    Returns:
        The parsed options, durations in seconds.

    Raises:
        ConfigError: a value is invalid; the message names the key and the value,
            e.g. ``options.connect_timeout must be a number of milliseconds, not
            'abc'``.
    """
    config = ConfigParams.of(config)

    connect_key = "options.connect_timeout"
    if _given(config, connect_key) is None and _given(config, "options.max_reconnect"):
        connect_key = "options.max_reconnect"
    connect_text = _given(config, connect_key) or _default("options.connect_timeout")

    version_text = _setting(config, "options.protocol_version")
    version = _VERSIONS.get(version_text.strip().lower().removeprefix("v"))
    if version is None:
        raise ConfigError(
            f"options.protocol_version must be 3.1.1 or 5, not {version_text!r}"
        )

    insecure = _given(config, "options.ssl_insecure")
    verify = _given(config, "options.ssl_verify")
    if (
        insecure is not None
        and verify is not None
        and _boolean("options.ssl_insecure", insecure)
        == _boolean("options.ssl_verify", verify)
    ):
        raise ConfigError(
            "options.ssl_insecure and options.ssl_verify contradict each other: "
            "set only one of them"
        )
    if insecure is not None:
        ssl_verify = not _boolean("options.ssl_insecure", insecure)
    else:
        ssl_verify = _boolean(
            "options.ssl_verify", _setting(config, "options.ssl_verify")
        )
    ssl_key_file = _given(config, "options.ssl_key_file")
    ssl_cert_file = _given(config, "options.ssl_cert_file")
    if ssl_key_file is not None and ssl_cert_file is None:
        raise ConfigError(
            "options.ssl_key_file needs options.ssl_cert_file: set the client "
            "certificate too"
        )

    will_topic = _given(config, "options.will_topic")
    if will_topic is None:
        for key in ("options.will_payload", "options.will_qos", "options.will_retain"):
            if _given(config, key) is not None:
                raise ConfigError(
                    f"{key} needs options.will_topic: set the topic the will is "
                    "published to"
                )
    elif "+" in will_topic or "#" in will_topic or "\0" in will_topic:
        raise ConfigError(
            f"options.will_topic cannot contain +, # or NUL, not {will_topic!r}: "
            "a will is published to one topic name"
        )
    qos_text = _setting(config, "options.will_qos")
    if qos_text.strip() not in ("0", "1", "2"):
        raise ConfigError(f"options.will_qos must be 0, 1 or 2, not {qos_text!r}")

    return ConnectionOptions(
        client_id=_given(config, "client_id"),
        retry_connect=_boolean(
            "options.retry_connect", _setting(config, "options.retry_connect")
        ),
        connect_timeout=_milliseconds(connect_key, connect_text) / 1000,
        reconnect_timeout=_milliseconds(
            "options.reconnect_timeout", _setting(config, "options.reconnect_timeout")
        )
        / 1000,
        keepalive=_whole_seconds(
            _milliseconds(
                "options.keepalive_timeout",
                _setting(config, "options.keepalive_timeout"),
                maximum=_KEEPALIVE_MAX_MS,
            )
        ),
        protocol_version=version,
        clean_start=_boolean(
            "options.clean_start", _setting(config, "options.clean_start")
        ),
        session_expiry=_whole_seconds(
            _milliseconds(
                "options.session_expiry",
                _setting(config, "options.session_expiry"),
                maximum=_SESSION_EXPIRY_MAX_MS,
            )
        ),
        ssl_ca_file=_given(config, "options.ssl_ca_file"),
        ssl_cert_file=ssl_cert_file,
        ssl_key_file=ssl_key_file,
        ssl_key_password=_given(config, "options.ssl_key_password"),
        ssl_verify=ssl_verify,
        will_topic=will_topic,
        will_payload=_setting(config, "options.will_payload").encode(),
        will_qos=QoS(int(qos_text)),
        will_retain=_boolean(
            "options.will_retain", _setting(config, "options.will_retain")
        ),
    )
