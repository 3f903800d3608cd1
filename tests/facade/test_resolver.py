"""MqttConnectionResolver, parse_connection_options and the CONFIG_KEYS table.

The resolver cases are those of the upstream pip-services suites (single connection,
cluster URI with credentials, cluster of three), plus every validation error with its
code and exact message, and discovery and credential stores, sync and async.
"""

from __future__ import annotations

import re
import ssl
from typing import TYPE_CHECKING

import anyio
import anyio.lowlevel
import attrs
import pytest
import trustme

from trio_mqttconn import _resolver
from trio_mqttconn._config import ConfigParams
from trio_mqttconn._context import Context
from trio_mqttconn._enums import ProtocolVersion, QoS
from trio_mqttconn._exceptions import ConfigError
from trio_mqttconn._references import (
    ConnectionParams,
    CredentialParams,
    Descriptor,
    MemoryCredentialStore,
    MemoryDiscovery,
    References,
    ReferencesLike,
)
from trio_mqttconn._resolver import (
    CONFIG_KEYS,
    DEFAULT_PORTS,
    ConfigKey,
    Endpoint,
    MqttConnectionResolver,
    ResolvedConnection,
    parse_connection_options,
)

from .test_references import PipDescriptor, PipReferences, install_fake_pip_services

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

anyio_test = pytest.mark.anyio

DISCOVERY = Descriptor("pip-services", "discovery", "memory", "default", "1.0")
STORE = Descriptor("pip-services", "credential-store", "memory", "default", "1.0")


def exactly(message: str) -> str:
    return f"^{re.escape(message)}$"


async def resolve(
    config: Mapping[str, object],
    references: ReferencesLike | None = None,
    context: object = None,
) -> ResolvedConnection:
    resolver = MqttConnectionResolver()
    resolver.configure(config)
    resolver.set_references(references)
    with anyio.fail_after(10):
        return await resolver.resolve(context)


async def resolve_error(
    config: Mapping[str, object], references: ReferencesLike | None = None
) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        await resolve(config, references)
    return info.value


# ---------------------------------------------------------------------------
# upstream suite: MqttConnectionResolver.test


@anyio_test
async def test_resolver_single_connection() -> None:
    resolved = await resolve(
        ConfigParams.from_tuples(
            "connection.protocol",
            "mqtt",
            "connection.host",
            "localhost",
            "connection.port",
            1883,
        )
    )
    assert resolved.uri == "mqtt://localhost:1883"
    assert resolved.username is None
    assert resolved.password is None
    assert resolved.protocol == "mqtt"
    assert resolved.host == "localhost"
    assert resolved.port == 1883
    assert resolved.uris == ["mqtt://localhost:1883"]


@anyio_test
async def test_resolver_cluster_uri_with_credentials() -> None:
    resolved = await resolve(
        ConfigParams.from_tuples(
            "connection.uri",
            "mqtt://server1:1883",
            "credential.username",
            "test",
            "credential.password",
            "pass123",
        )
    )
    assert resolved.uri == "mqtt://server1:1883"
    assert resolved.username == "test"
    assert resolved.password == "pass123"


@anyio_test
async def test_resolver_cluster_of_three_connections_in_order() -> None:
    resolved = await resolve(
        ConfigParams.from_tuples(
            "connections.0.protocol",
            "mqtt",
            "connections.0.host",
            "server1",
            "connections.0.port",
            1883,
            "connections.1.protocol",
            "mqtt",
            "connections.1.host",
            "server2",
            "connections.1.port",
            1883,
            "connections.2.protocol",
            "mqtt",
            "connections.2.host",
            "server3",
            "connections.2.port",
            1883,
            "credential.username",
            "test",
            "credential.password",
            "pass123",
        )
    )
    assert resolved.uris == [
        "mqtt://server1:1883",
        "mqtt://server2:1883",
        "mqtt://server3:1883",
    ]
    assert resolved.uri == "mqtt://server1:1883"
    assert (resolved.username, resolved.password) == ("test", "pass123")


@anyio_test
async def test_resolver_connections_sorted_by_number() -> None:
    resolved = await resolve(
        {
            "connections.10.host": "c",
            "connections.2.host": "b",
            "connections.0.host": "a",
        }
    )
    assert [e.host for e in resolved.endpoints] == ["a", "b", "c"]


# ---------------------------------------------------------------------------
# validation: codes and exact messages


@anyio_test
async def test_resolver_no_connection() -> None:
    error = await resolve_error({"client_id": "x"})
    assert str(error) == "MQTT connection is not set"
    assert error.code == "NO_CONNECTION"


@anyio_test
async def test_resolver_no_host() -> None:
    error = await resolve_error({"connection.port": 1883})
    assert str(error) == "Connection host is not set"
    assert error.code == "NO_HOST"


@pytest.mark.parametrize("host", ["", "  ", "[]"])
@anyio_test
async def test_resolver_blank_host(host: str) -> None:
    error = await resolve_error({"connection.host": host, "connection.port": 1})
    assert (str(error), error.code) == ("Connection host is not set", "NO_HOST")


@anyio_test
async def test_resolver_no_host_in_uri() -> None:
    error = await resolve_error({"connection.uri": "mqtt://:1883"})
    assert (str(error), error.code) == ("Connection host is not set", "NO_HOST")


@pytest.mark.parametrize("port", ["0", "00", " "])
@anyio_test
async def test_resolver_no_port(port: str) -> None:
    config = {"connection.host": "h", "connection.port": port}
    if not port.strip():
        # a blank port is "not set": the protocol's default applies
        assert (await resolve(config)).port == 1883
        return
    error = await resolve_error(config)
    assert str(error) == "Connection port is not set"
    assert error.code == "NO_PORT"


@pytest.mark.parametrize("port", ["abc", "-1", "65536", "70000", "1883.5"])
def test_resolver_invalid_port_is_named_at_configure(port: str) -> None:
    # #10: not "not set", and at configure() as bad options.* values are
    with pytest.raises(ConfigError) as info:
        MqttConnectionResolver().configure(
            {"connection.host": "h", "connection.port": port}
        )
    assert str(info.value) == (
        f"connection.port is {port!r}, which is not a port: use a whole number "
        "from 1 to 65535"
    )
    assert info.value.code == "WRONG_PORT"


@anyio_test
async def test_resolver_no_port_in_uri() -> None:
    for uri in ["mqtt://h:0", "mqtt://u:hunter2@h:0"]:
        error = await resolve_error({"connection.uri": uri})
        assert (str(error), error.code) == ("Connection port is not set", "NO_PORT")


@pytest.mark.parametrize("port", ["abc", "70000", "-1"])
def test_resolver_invalid_port_in_uri_is_named(port: str) -> None:
    with pytest.raises(ConfigError) as info:
        MqttConnectionResolver().configure(
            {"connection.uri": f"mqtt://u:hunter2@h:{port}"}
        )
    assert str(info.value) == (
        f"connection.uri has the port {port!r}, which is not a port: use a whole "
        "number from 1 to 65535"
    )
    assert info.value.code == "WRONG_PORT"


@anyio_test
async def test_resolver_uri_without_scheme() -> None:
    error = await resolve_error({"connection.uri": "not a uri at all"})
    assert str(error) == (
        "connection.uri is 'not a uri at all', which has no scheme: write it as "
        "scheme://host:port with a scheme of mqtt, mqtts, tcp, ssl, tls, ws, wss or "
        "unix"
    )
    assert error.code == "NO_PROTOCOL"
    error = await resolve_error({"connection.uri": "u:hunter2@localhost:1883"})
    assert "hunter2" not in str(error)
    assert "'***@localhost:1883'" in str(error)
    error = await resolve_error({"connection.uri": "://localhost:1883"})
    assert error.code == "NO_PROTOCOL"


@anyio_test
async def test_resolver_unknown_uri_scheme_names_it() -> None:
    error = await resolve_error({"connection.uri": "foo://x"})
    assert str(error) == (
        "connection.uri is 'foo://x', whose scheme 'foo' MQTT does not support: "
        "use mqtt, mqtts, tcp, ssl, tls, ws, wss or unix"
    )
    error = await resolve_error({"connections.1.uri": "http://u:hunter2@h:80"})
    assert str(error) == (
        "connections.1.uri is 'http://***@h:80', whose scheme 'http' MQTT does not "
        "support: use mqtt, mqtts, tcp, ssl, tls, ws, wss or unix"
    )
    assert error.code == "WRONG_PROTOCOL"


@anyio_test
async def test_resolver_unknown_protocol_names_it() -> None:
    error = await resolve_error({"connection.protocol": "AMQP", "connection.host": "h"})
    assert str(error) == (
        "connection.protocol is 'AMQP', which MQTT does not support: use mqtt, "
        "mqtts, tcp, ssl, tls, ws, wss or unix"
    )
    assert error.code == "WRONG_PROTOCOL"


@anyio_test
async def test_resolver_invalid_uri() -> None:
    error = await resolve_error({"connection.uri": "mqtt://u:hunter2@[::1"})
    assert str(error) == (
        "connection.uri is not a valid URI: check the brackets around an IPv6 address"
    )
    assert error.code == "WRONG_URI"


@anyio_test
async def test_resolver_unix_without_path() -> None:
    error = await resolve_error({"connection.uri": "unix://"})
    assert str(error) == (
        "connection.uri has no socket path: write it as unix:///path/to/socket"
    )
    assert error.code == "NO_PATH"
    error = await resolve_error({"connection.protocol": "unix"})
    assert str(error) == (
        "connection.path is not set: a unix connection needs the socket path"
    )
    assert error.code == "NO_PATH"


@anyio_test
async def test_resolver_error_messages_never_contain_the_password() -> None:
    for uri in ("mqtt://u:hunter2@h:0", "http://u:hunter2@h", "mqtt://u:hunter2@[::1"):
        error = await resolve_error(
            {"connection.uri": uri, "credential.password": "hunter2"}
        )
        assert "hunter2" not in str(error)


# ---------------------------------------------------------------------------
# endpoints


@pytest.mark.parametrize(("protocol", "port"), sorted(DEFAULT_PORTS.items()))
@anyio_test
async def test_resolver_default_port_per_protocol(protocol: str, port: int) -> None:
    if protocol == "unix":
        config = {"connection.protocol": "unix", "connection.path": "/run/m.sock"}
    else:
        config = {"connection.protocol": protocol.upper(), "connection.host": "h"}
    resolved = await resolve(config)
    assert resolved.protocol == protocol
    assert resolved.port == port
    by_uri = await resolve({"connection.uri": resolved.uri})
    assert by_uri.endpoints == resolved.endpoints


@anyio_test
async def test_resolver_protocol_defaults_to_mqtt_and_ip_is_host() -> None:
    resolved = await resolve({"Connection.IP": "10.0.0.1"})
    assert resolved.uri == "mqtt://10.0.0.1:1883"


@anyio_test
async def test_resolver_ipv6_hosts() -> None:
    by_key = await resolve({"connection.host": "::1", "connection.port": 1884})
    assert by_key.host == "::1"
    assert by_key.uri == "mqtt://[::1]:1884"
    bracketed = await resolve({"connection.host": "[::1]"})
    assert bracketed.host == "::1"
    by_uri = await resolve({"connection.uri": "mqtts://[::1]"})
    assert (by_uri.host, by_uri.port, by_uri.uri) == ("::1", 8883, "mqtts://[::1]:8883")


@anyio_test
async def test_resolver_websocket_paths() -> None:
    default = await resolve({"connection.protocol": "ws", "connection.host": "h"})
    assert default.endpoints == (Endpoint("ws", "h", 80, "/mqtt"),)
    assert default.uri == "ws://h:80/mqtt"
    custom = await resolve(
        {"connection.protocol": "wss", "connection.host": "h", "connection.path": "/x"}
    )
    assert custom.uri == "wss://h:443/x"
    by_uri = await resolve({"connection.uri": "wss://h:8443/mqtt?token=abc"})
    assert by_uri.endpoints == (Endpoint("wss", "h", 8443, "/mqtt?token=abc"),)
    bare = await resolve({"connection.uri": "WS://h"})
    assert bare.uri == "ws://h:80/mqtt"


@anyio_test
async def test_resolver_mqtt_uri_drops_path_and_query() -> None:
    resolved = await resolve({"connection.uri": "tcp://h:1/ignored?x=1"})
    assert resolved.endpoints == (Endpoint("tcp", "h", 1, ""),)
    assert resolved.uri == "tcp://h:1"


@anyio_test
async def test_resolver_unix_socket() -> None:
    by_uri = await resolve({"connection.uri": "unix:///run/mosquitto/mqtt.sock"})
    assert by_uri.endpoints == (Endpoint("unix", "", 0, "/run/mosquitto/mqtt.sock"),)
    assert by_uri.uri == "unix:///run/mosquitto/mqtt.sock"
    assert by_uri.host == ""
    assert by_uri.port == 0


def test_endpoint_flags() -> None:
    assert Endpoint("mqtts", "h", 8883).tls
    assert not Endpoint("mqtts", "h", 8883).websocket
    assert Endpoint("wss", "h", 443, "/").tls
    assert Endpoint("wss", "h", 443, "/").websocket
    assert not Endpoint("ws", "h", 80, "/").tls
    assert not Endpoint("mqtt", "h", 1883).tls


@anyio_test
async def test_resolver_several_uris_in_one_key() -> None:
    resolved = await resolve(
        {"connection.uri": " mqtt://a:1 , ,mqtts://u:p%40ss@b ", "connection.host": "x"}
    )
    assert resolved.uris == ["mqtt://a:1", "mqtts://b:8883"]
    assert (resolved.username, resolved.password) == ("u", "p@ss")


@anyio_test
async def test_resolver_blank_uri_falls_back_to_host() -> None:
    resolved = await resolve({"connection.uri": " , ", "connection.host": "h"})
    assert resolved.uri == "mqtt://h:1883"


@anyio_test
async def test_resolver_uri_skips_host_and_port_checks() -> None:
    resolved = await resolve(
        {"connection.uri": "mqtt://h:1", "connection.port": "0", "connection.ip": ""}
    )
    assert resolved.uri == "mqtt://h:1"


# ---------------------------------------------------------------------------
# credentials


@anyio_test
async def test_resolver_uri_userinfo_used_without_credential() -> None:
    resolved = await resolve({"connection.uri": "mqtt://bob:hunter%32@h"})
    assert (resolved.username, resolved.password) == ("bob", "hunter2")
    assert "hunter2" not in repr(resolved)
    assert "hunter2" not in resolved.uri


@anyio_test
async def test_resolver_credential_wins_over_connection_values() -> None:
    resolved = await resolve(
        {
            "connection.uri": "mqtt://uri-user:uri-pass@h",
            "credential.username": "cred-user",
            "credential.password": "cred-pass",
        }
    )
    assert (resolved.username, resolved.password) == ("cred-user", "cred-pass")
    partial = await resolve(
        {
            "connection.host": "h",
            "connection.username": "conn-user",
            "connection.password": "conn-pass",
            "credential.username": "cred-user",
        }
    )
    assert (partial.username, partial.password) == ("cred-user", "conn-pass")


@anyio_test
async def test_resolver_connection_keys_win_over_uri_userinfo() -> None:
    resolved = await resolve(
        {"connection.uri": "mqtt://a:b@h", "connection.user": "key-user"}
    )
    assert (resolved.username, resolved.password) == ("key-user", "b")


@anyio_test
async def test_resolver_first_login_among_connections() -> None:
    resolved = await resolve(
        {
            "connections.0.uri": "mqtt://h0",
            "connections.1.uri": "mqtt://u1:p1@h1",
            "connections.2.uri": "mqtt://u2:p2@h2",
        }
    )
    assert (resolved.username, resolved.password) == ("u1", "p1")


@anyio_test
async def test_resolver_credential_aliases_and_first_without_store_key() -> None:
    resolved = await resolve(
        {
            "connection.host": "h",
            "credentials.0.store_key": "missing-but-not-needed",
            "credentials.1.user": "bob",
            "credentials.1.pass": "hunter2",
        }
    )
    assert (resolved.username, resolved.password) == ("bob", "hunter2")


def test_resolved_connection_repr_and_config_hide_password() -> None:
    resolved = ResolvedConnection(
        (Endpoint("mqtt", "a", 1883), Endpoint("ws", "b", 80, "/mqtt")),
        "bob",
        "hunter2",
    )
    assert "hunter2" not in repr(resolved)
    config = resolved.to_config()
    assert dict(config) == {
        "uri": "mqtt://a:1883",
        "protocol": "mqtt",
        "host": "a",
        "port": "1883",
        "uris": "mqtt://a:1883,ws://b:80/mqtt",
        "username": "bob",
        "password": "hunter2",
    }
    assert config.get_as_integer("port") == 1883
    assert "hunter2" not in repr(config)
    anonymous = ResolvedConnection((Endpoint("mqtt", "a", 1883),)).to_config()
    assert "username" not in anonymous
    assert "password" not in anonymous


@anyio_test
async def test_resolver_repr_hides_credentials() -> None:
    resolver = MqttConnectionResolver()
    resolver.configure({"connection.host": "h", "credential.password": "hunter2"})
    assert "hunter2" not in repr(resolver)


# ---------------------------------------------------------------------------
# discovery, sync and async


@attrs.define
class AsyncDiscovery:
    """An async discovery service, as pip-services ports with coroutines have."""

    inner: MemoryDiscovery
    calls: list[tuple[object, str]] = attrs.Factory(list)

    async def resolve_all(self, context: object, key: str) -> list[ConnectionParams]:
        await anyio.lowlevel.checkpoint()
        self.calls.append((context, key))
        return self.inner.resolve_all(context, key)


@attrs.define
class ResolveOneOnly:
    """A discovery service with resolve_one only, sync or async."""

    result: object
    is_async: bool = False

    def resolve_one(self, context: object, key: str) -> object:
        if not self.is_async:
            return self.result

        async def later() -> object:
            await anyio.lowlevel.checkpoint()
            return self.result

        return later()


def memory_discovery() -> MemoryDiscovery:
    discovery = MemoryDiscovery()
    discovery.register(None, "broker", {"host": "d1", "port": 1884})
    discovery.register(None, "broker", {"uri": "mqtts://d2"})
    return discovery


@anyio_test
async def test_resolver_discovery_sync() -> None:
    resolved = await resolve(
        {"connection.discovery_key": "broker"},
        References.from_tuples(DISCOVERY, memory_discovery()),
    )
    assert resolved.uris == ["mqtt://d1:1884", "mqtts://d2:8883"]


@anyio_test
async def test_resolver_discovery_async_gets_context() -> None:
    discovery = AsyncDiscovery(memory_discovery())
    resolved = await resolve(
        {"connection.discovery_key": "broker"},
        References.from_tuples(DISCOVERY, discovery),
        context="trace-1",
    )
    assert resolved.uris == ["mqtt://d1:1884", "mqtts://d2:8883"]
    assert discovery.calls == [(Context.from_trace_id("trace-1"), "broker")]


@pytest.mark.parametrize("is_async", [False, True])
@anyio_test
async def test_resolver_discovery_resolve_one_only(is_async: bool) -> None:
    discovery = ResolveOneOnly("host=d;port=2", is_async=is_async)
    resolved = await resolve(
        {"connection.discovery_key": "k"}, References.from_tuples(DISCOVERY, discovery)
    )
    assert resolved.uri == "mqtt://d:2"


@anyio_test
async def test_resolver_discovery_merges_configured_values() -> None:
    resolved = await resolve(
        {
            "connection.discovery_key": "broker",
            "connection.protocol": "mqtts",
            "connection.port": 9999,
        },
        References.from_tuples(DISCOVERY, ResolveOneOnly({"host": "d", "port": "1"})),
    )
    # discovered values win; configured ones fill the gaps
    assert resolved.endpoints == (Endpoint("mqtts", "d", 1),)


@anyio_test
async def test_resolver_discovery_keeps_failover_order_with_plain_connections() -> None:
    resolved = await resolve(
        {
            "connections.0.host": "first",
            "connections.1.discovery_key": "broker",
            "connections.2.host": "last",
        },
        References.from_tuples(DISCOVERY, memory_discovery()),
    )
    assert [e.host for e in resolved.endpoints] == ["first", "d1", "d2", "last"]


@anyio_test
async def test_resolver_discovery_key_not_found_is_no_connection() -> None:
    error = await resolve_error(
        {"connection.discovery_key": "missing"},
        References.from_tuples(DISCOVERY, memory_discovery()),
    )
    assert (str(error), error.code) == ("MQTT connection is not set", "NO_CONNECTION")
    error = await resolve_error(
        {"connection.discovery_key": "missing"},
        References.from_tuples(DISCOVERY, ResolveOneOnly(None)),
    )
    assert error.code == "NO_CONNECTION"


@pytest.mark.parametrize("with_references", [False, True])
@anyio_test
async def test_resolver_discovery_key_without_discovery(with_references: bool) -> None:
    references = References.from_tuples(STORE, object()) if with_references else None
    error = await resolve_error({"connection.discovery_key": "broker"}, references)
    assert str(error) == "Discovery wasn't found to make resolution"
    assert error.code == "CANNOT_RESOLVE"


@anyio_test
async def test_resolver_discovery_returning_garbage() -> None:
    with pytest.raises(
        ConfigError,
        match=exactly(
            "connection.discovery_key 'k': ResolveOneOnly returned int, "
            "not connection or credential parameters"
        ),
    ):
        await resolve(
            {"connection.discovery_key": "k"},
            References.from_tuples(DISCOVERY, ResolveOneOnly(42)),
        )


@anyio_test
async def test_resolver_discovery_without_methods() -> None:
    with pytest.raises(TypeError, match=exactly("expected a method, not NoneType")):
        await resolve(
            {"connection.discovery_key": "k"},
            References.from_tuples(DISCOVERY, object()),
        )


@anyio_test
async def test_resolver_discovery_resolve_all_returning_one_mapping() -> None:
    @attrs.define
    class OneMapping:
        def resolve_all(self, context: object, key: str) -> Mapping[str, str]:
            return {"host": "single"}

    resolved = await resolve(
        {"connection.discovery_key": "k"},
        References.from_tuples(DISCOVERY, OneMapping()),
    )
    assert resolved.host == "single"


# ---------------------------------------------------------------------------
# credential stores, sync and async


@attrs.define
class AsyncStore:
    """An async credential store."""

    inner: MemoryCredentialStore
    calls: list[tuple[object, str]] = attrs.Factory(list)

    async def lookup(self, context: object, key: str) -> CredentialParams | None:
        await anyio.lowlevel.checkpoint()
        self.calls.append((context, key))
        return self.inner.lookup(context, key)


@attrs.define
class FixedStore:
    result: object

    def lookup(self, context: object, key: str) -> object:
        return self.result


def memory_store() -> MemoryCredentialStore:
    store = MemoryCredentialStore()
    store.store(None, "broker", {"username": "svc", "password": "hunter2"})
    return store


@anyio_test
async def test_resolver_credential_store_sync() -> None:
    resolved = await resolve(
        {"connection.host": "h", "credential.store_key": "broker"},
        References.from_tuples(STORE, memory_store()),
    )
    assert (resolved.username, resolved.password) == ("svc", "hunter2")


@anyio_test
async def test_resolver_credential_store_async_gets_context() -> None:
    store = AsyncStore(memory_store())
    resolved = await resolve(
        {"connection.host": "h", "credential.store_key": "broker"},
        References.from_tuples(STORE, store),
        context="trace-2",
    )
    assert (resolved.username, resolved.password) == ("svc", "hunter2")
    assert store.calls == [(Context.from_trace_id("trace-2"), "broker")]


@anyio_test
async def test_resolver_credential_store_merges_configured_values() -> None:
    resolved = await resolve(
        {
            "connection.host": "h",
            "credential.store_key": "k",
            "credential.username": "configured",
        },
        References.from_tuples(STORE, FixedStore("password=from-store")),
    )
    assert (resolved.username, resolved.password) == ("configured", "from-store")


@anyio_test
async def test_resolver_credential_store_not_found_means_no_login() -> None:
    resolved = await resolve(
        {"connection.uri": "mqtt://u:p@h", "credential.store_key": "missing"},
        References.from_tuples(STORE, memory_store()),
    )
    assert (resolved.username, resolved.password) == ("u", "p")


@anyio_test
async def test_resolver_first_credential_a_store_finds() -> None:
    resolved = await resolve(
        {
            "connection.host": "h",
            "credentials.0.store_key": "missing",
            "credentials.1.store_key": "broker",
        },
        References.from_tuples(STORE, memory_store()),
    )
    assert resolved.username == "svc"


@pytest.mark.parametrize("with_references", [False, True])
@anyio_test
async def test_resolver_store_key_without_store(with_references: bool) -> None:
    references = (
        References.from_tuples(DISCOVERY, memory_discovery())
        if with_references
        else None
    )
    error = await resolve_error(
        {"connection.host": "h", "credentials.0.store_key": "broker"}, references
    )
    # upstream's CredentialResolver code and text (#12)
    assert str(error) == "Credential store wasn't found to make lookup"
    assert error.code == "REF_ERROR"


@anyio_test
async def test_resolver_credential_store_returning_garbage() -> None:
    with pytest.raises(
        ConfigError,
        match=exactly(
            "credential.store_key 'k': FixedStore returned list, "
            "not connection or credential parameters"
        ),
    ):
        await resolve(
            {"connection.host": "h", "credential.store_key": "k"},
            References.from_tuples(STORE, FixedStore(["u", "p"])),
        )


# ---------------------------------------------------------------------------
# pip-services references, configuration and parameter objects


@anyio_test
async def test_resolver_with_pip_services_references(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    install_fake_pip_services(monkeypatch)
    references = PipReferences(
        PipDescriptor("pip-services", "discovery", "memory", "default", "1.0"),
        memory_discovery(),
        PipDescriptor("pip-services", "credential-store", "memory", "default", "1.0"),
        AsyncStore(memory_store()),
    )
    resolved = await resolve(
        {"connection.discovery_key": "broker", "credential.store_key": "broker"},
        references,
    )
    assert resolved.uris == ["mqtt://d1:1884", "mqtts://d2:8883"]
    assert resolved.username == "svc"


@anyio_test
async def test_resolver_accepts_any_mapping_as_config() -> None:
    class PipConfigParams(dict[str, str]):
        """pip-services' ConfigParams is a dict of text values."""

    config = PipConfigParams({"Connection.Host": "h", "connection.port": "1"})
    resolved = await resolve(config)
    assert resolved.uri == "mqtt://h:1"


@anyio_test
async def test_resolver_configure_replaces_earlier_configuration() -> None:
    resolver = MqttConnectionResolver()
    resolver.configure({"connection.host": "old", "credential.username": "old"})
    resolver.configure({"connection.host": "new"})
    resolved = await resolver.resolve()
    assert resolved.uris == ["mqtt://new:1883"]
    assert resolved.username is None


@anyio_test
async def test_resolver_set_references_none_forgets_them() -> None:
    resolver = MqttConnectionResolver()
    resolver.configure({"connection.discovery_key": "broker"})
    resolver.set_references(References.from_tuples(DISCOVERY, memory_discovery()))
    assert (await resolver.resolve()).host == "d1"
    resolver.set_references(None)
    with pytest.raises(
        ConfigError, match=exactly("Discovery wasn't found to make resolution")
    ):
        await resolver.resolve()


# ---------------------------------------------------------------------------
# compose


@anyio_test
async def test_resolver_compose_single_connection_and_credential() -> None:
    resolver = MqttConnectionResolver()
    resolved = await resolver.compose(
        "ctx",
        ConnectionParams.from_tuples("host", "h", "port", 1884),
        CredentialParams.from_tuples("username", "u", "password", "p"),
    )
    assert resolved.uri == "mqtt://h:1884"
    assert (resolved.username, resolved.password) == ("u", "p")


@anyio_test
async def test_resolver_compose_several_connections() -> None:
    resolver = MqttConnectionResolver()
    resolved = await resolver.compose(
        None, [{"uri": "mqtt://a"}, {"host": "b", "protocol": "ws"}], None
    )
    assert resolved.uris == ["mqtt://a:1883", "ws://b:80/mqtt"]
    with pytest.raises(ConfigError, match=exactly("Connection host is not set")):
        await resolver.compose(None, [{"uri": "mqtt://a"}, {"port": 1}], None)
    message = (
        "connections.1.protocol is 'x', which MQTT does not support: use mqtt, "
        "mqtts, tcp, ssl, tls, ws, wss or unix"
    )
    with pytest.raises(ConfigError, match=exactly(message)):
        await resolver.compose(None, [{"uri": "mqtt://a"}, {"protocol": "x"}], None)


@anyio_test
async def test_resolver_compose_without_connection() -> None:
    resolver = MqttConnectionResolver()
    with pytest.raises(ConfigError, match=exactly("MQTT connection is not set")):
        await resolver.compose(None, None, {"username": "u"})
    with pytest.raises(ConfigError, match=exactly("MQTT connection is not set")):
        await resolver.compose(None, [], None)


@anyio_test
async def test_resolver_compose_resolves_keys_through_references() -> None:
    resolver = MqttConnectionResolver()
    resolver.set_references(
        References.from_tuples(
            DISCOVERY, memory_discovery(), STORE, AsyncStore(memory_store())
        )
    )
    resolved = await resolver.compose(
        None, {"discovery_key": "broker"}, {"store_key": "broker"}
    )
    assert resolved.host == "d1"
    assert resolved.password == "hunter2"


# ---------------------------------------------------------------------------
# parse_connection_options


def test_options_defaults() -> None:
    options = parse_connection_options({})
    assert options.client_id is None
    assert options.retry_connect is True
    assert options.connect_timeout == 30.0
    assert options.reconnect_timeout == 1.0
    assert options.keepalive == 60
    assert options.protocol_version is ProtocolVersion.V5
    assert options.clean_start is True
    assert options.session_expiry == 0
    assert options.ssl_ca_file is None
    assert options.ssl_cert_file is None
    assert options.ssl_key_file is None
    assert options.ssl_key_password is None
    assert options.ssl_verify is True
    assert options.will_topic is None
    assert options.will_payload == b""
    assert options.will_qos is QoS.AT_MOST_ONCE
    assert options.will_retain is False


def test_options_defaults_come_from_the_table(monkeypatch: pytest.MonkeyPatch) -> None:
    entry = ConfigKey("options.connect_timeout", "5000", "changed for the test")
    monkeypatch.setitem(_resolver._KEYS, entry.key, entry)
    assert parse_connection_options({}).connect_timeout == 5.0


def test_options_table_defaults_equal_explicit_defaults() -> None:
    explicit = {
        entry.key: entry.default
        for entry in CONFIG_KEYS
        if entry.default is not None
        and entry.key.startswith("options.")
        # the same setting twice: giving both is tested as a contradiction
        and entry.key != "options.ssl_insecure"
        # will settings without a will topic are a mistake, tested below
        and not entry.key.startswith("options.will_")
    }
    assert parse_connection_options(explicit) == parse_connection_options({})


def test_options_parsed_values() -> None:
    options = parse_connection_options(
        ConfigParams.from_tuples(
            "client_id",
            "svc-1",
            "options.retry_connect",
            False,
            "options.connect_timeout",
            2500,
            "options.reconnect_timeout",
            "250",
            "options.keepalive_timeout",
            1500,
            "options.protocol_version",
            "3.1.1",
            "options.clean_start",
            "no",
            "options.session_expiry",
            3600000,
            "options.will_topic",
            "svc/status",
            "options.will_payload",
            "gone \u2013 bye",
            "options.will_qos",
            2,
            "options.will_retain",
            "true",
        )
    )
    assert options.client_id == "svc-1"
    assert options.retry_connect is False
    assert options.connect_timeout == 2.5
    assert options.reconnect_timeout == 0.25
    assert options.keepalive == 2  # whole seconds, rounded up
    assert options.protocol_version is ProtocolVersion.V311
    assert options.clean_start is False
    assert options.session_expiry == 3600
    assert options.will_topic == "svc/status"
    assert options.will_payload == "gone \u2013 bye".encode()
    assert options.will_qos is QoS.EXACTLY_ONCE
    assert options.will_retain is True


def test_options_empty_client_id_is_none() -> None:
    assert parse_connection_options({"client_id": ""}).client_id is None


@pytest.mark.parametrize(
    ("text", "version"),
    [
        ("3.1.1", ProtocolVersion.V311),
        ("4", ProtocolVersion.V311),
        ("311", ProtocolVersion.V311),
        ("v3.1.1", ProtocolVersion.V311),
        ("5", ProtocolVersion.V5),
        ("5.0", ProtocolVersion.V5),
        (" V5 ", ProtocolVersion.V5),
    ],
)
def test_options_protocol_versions(text: str, version: ProtocolVersion) -> None:
    options = parse_connection_options({"options.protocol_version": text})
    assert options.protocol_version is version


def test_options_keepalive_zero_turns_it_off() -> None:
    assert parse_connection_options({"options.keepalive_timeout": 0}).keepalive == 0
    top = parse_connection_options({"options.keepalive_timeout": 65535000})
    assert top.keepalive == 65535


def test_options_legacy_max_reconnect_alias() -> None:
    legacy = parse_connection_options({"options.max_reconnect": 4000})
    assert legacy.connect_timeout == 4.0
    both = parse_connection_options(
        {"options.max_reconnect": 4000, "options.connect_timeout": 6000}
    )
    assert both.connect_timeout == 6.0
    with pytest.raises(
        ConfigError,
        match=exactly(
            "options.max_reconnect must be a number of milliseconds, not 'x'"
        ),
    ):
        parse_connection_options({"options.max_reconnect": "x"})


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        (
            "options.connect_timeout",
            "abc",
            "options.connect_timeout must be a number of milliseconds, not 'abc'",
        ),
        (
            "options.connect_timeout",
            "nan",
            "options.connect_timeout must be a number of milliseconds, not 'nan'",
        ),
        (
            "options.connect_timeout",
            "0",
            "options.connect_timeout must be more than 0 milliseconds, not '0'",
        ),
        (
            "options.reconnect_timeout",
            "-5",
            "options.reconnect_timeout must be more than 0 milliseconds, not '-5'",
        ),
        (
            "options.keepalive_timeout",
            "-1",
            "options.keepalive_timeout must be from 0 to 65535000 milliseconds, "
            "not '-1'",
        ),
        (
            "options.keepalive_timeout",
            "65535001",
            "options.keepalive_timeout must be from 0 to 65535000 milliseconds, "
            "not '65535001'",
        ),
        (
            "options.session_expiry",
            "-1",
            "options.session_expiry must be from 0 to 4294967295000 milliseconds, "
            "not '-1'",
        ),
        (
            "options.retry_connect",
            "maybe",
            "options.retry_connect must be true or false, not 'maybe'",
        ),
        (
            "options.clean_start",
            "2",
            "options.clean_start must be true or false, not '2'",
        ),
        (
            "options.protocol_version",
            "3",
            "options.protocol_version must be 3.1.1 or 5, not '3'",
        ),
        (
            "options.ssl_verify",
            "sure",
            "options.ssl_verify must be true or false, not 'sure'",
        ),
        (
            "options.ssl_insecure",
            "sure",
            "options.ssl_insecure must be true or false, not 'sure'",
        ),
        (
            "options.ssl_key_file",
            "client.key",
            "options.ssl_key_file needs options.ssl_cert_file: set the client "
            "certificate too",
        ),
        (
            "options.will_payload",
            "bye",
            "options.will_payload needs options.will_topic: set the topic the will "
            "is published to",
        ),
        (
            "options.will_qos",
            "1",
            "options.will_qos needs options.will_topic: set the topic the will is "
            "published to",
        ),
        (
            "options.will_retain",
            "true",
            "options.will_retain needs options.will_topic: set the topic the will "
            "is published to",
        ),
    ],
)
def test_options_bad_values_name_the_key(key: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError, match=exactly(message)) as info:
        parse_connection_options({key: value})
    assert info.value.code == "CONFIG_ERROR"


def test_options_bad_will_qos_and_topic() -> None:
    with pytest.raises(
        ConfigError, match=exactly("options.will_qos must be 0, 1 or 2, not '3'")
    ):
        parse_connection_options({"options.will_topic": "t", "options.will_qos": 3})
    with pytest.raises(
        ConfigError,
        match=exactly(
            "options.will_topic cannot contain +, # or NUL, not 'a/+': a will is "
            "published to one topic name"
        ),
    ):
        parse_connection_options({"options.will_topic": "a/+"})


def test_options_ssl_verify_and_insecure() -> None:
    assert (
        parse_connection_options({"options.ssl_insecure": "true"}).ssl_verify is False
    )
    assert parse_connection_options({"options.ssl_insecure": "no"}).ssl_verify is True
    assert parse_connection_options({"options.ssl_verify": "false"}).ssl_verify is False
    agreeing = {"options.ssl_insecure": "true", "options.ssl_verify": "false"}
    assert parse_connection_options(agreeing).ssl_verify is False
    with pytest.raises(
        ConfigError,
        match=exactly(
            "options.ssl_insecure and options.ssl_verify contradict each other: "
            "set only one of them"
        ),
    ):
        parse_connection_options(
            {"options.ssl_insecure": "true", "options.ssl_verify": "true"}
        )


def test_options_repr_hides_key_password() -> None:
    options = parse_connection_options(
        {
            "options.ssl_cert_file": "c.pem",
            "options.ssl_key_password": "hunter2",
        }
    )
    assert options.ssl_key_password == "hunter2"
    assert "hunter2" not in repr(options)


# ---------------------------------------------------------------------------
# TLS context from the ssl_* options


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def test_ssl_context_none_by_default() -> None:
    assert parse_connection_options({}).create_ssl_context() is None


def test_ssl_context_with_ca_and_client_cert(ca: trustme.CA, tmp_path: Path) -> None:
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    cert = ca.issue_cert("client.example")
    cert_file = tmp_path / "client.pem"
    key_file = tmp_path / "client.key"
    for blob in cert.cert_chain_pems:
        blob.write_to_path(str(cert_file), append=True)
    cert.private_key_pem.write_to_path(str(key_file))
    options = parse_connection_options(
        {
            "options.ssl_ca_file": str(ca_file),
            "options.ssl_cert_file": str(cert_file),
            "options.ssl_key_file": str(key_file),
        }
    )
    context = options.create_ssl_context()
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode is ssl.CERT_REQUIRED
    assert context.check_hostname is True
    assert len(context.get_ca_certs()) == 1


def test_ssl_context_combined_pem_and_insecure(ca: trustme.CA, tmp_path: Path) -> None:
    combined = tmp_path / "client.pem"
    ca.issue_cert("client.example").private_key_and_cert_chain_pem.write_to_path(
        str(combined)
    )
    options = parse_connection_options(
        {"options.ssl_cert_file": str(combined), "options.ssl_insecure": True}
    )
    context = options.create_ssl_context()
    assert context is not None
    assert context.verify_mode is ssl.CERT_NONE
    assert context.check_hostname is False
    insecure_only = parse_connection_options({"options.ssl_verify": False})
    assert insecure_only.create_ssl_context() is not None


def test_ssl_context_missing_ca_file(tmp_path: Path) -> None:
    missing = str(tmp_path / "missing.pem")
    options = parse_connection_options({"options.ssl_ca_file": missing})
    with pytest.raises(
        ConfigError,
        match=exactly(
            f"options.ssl_ca_file {missing!r} cannot be loaded: "
            "No such file or directory"
        ),
    ):
        options.create_ssl_context()


def test_ssl_context_bad_cert_files(tmp_path: Path) -> None:
    bad = tmp_path / "bad.pem"
    bad.write_text("not a certificate")
    options = parse_connection_options(
        {"options.ssl_cert_file": str(bad), "options.ssl_key_file": str(bad)}
    )
    prefix = (
        f"options.ssl_cert_file {str(bad)!r} or options.ssl_key_file {str(bad)!r} "
        "cannot be loaded: "
    )
    with pytest.raises(ConfigError, match=f"^{re.escape(prefix)}.+$"):
        options.create_ssl_context()
    cert_only = parse_connection_options({"options.ssl_cert_file": str(bad)})
    prefix = f"options.ssl_cert_file {str(bad)!r} cannot be loaded: "
    with pytest.raises(ConfigError, match=f"^{re.escape(prefix)}.+$"):
        cert_only.create_ssl_context()


def test_ssl_context_encrypted_key_needs_password(
    ca: trustme.CA, tmp_path: Path
) -> None:
    from cryptography.hazmat.primitives import serialization

    cert = ca.issue_cert("client.example")
    key = serialization.load_pem_private_key(cert.private_key_pem.bytes(), None)
    encrypted = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"hunter2"),
    )
    cert_file = tmp_path / "client.pem"
    cert.cert_chain_pems[0].write_to_path(str(cert_file))
    key_file = tmp_path / "client.key"
    key_file.write_bytes(encrypted)
    config = {
        "options.ssl_cert_file": str(cert_file),
        "options.ssl_key_file": str(key_file),
    }
    # Without the password, loading fails instead of prompting on the terminal.
    with pytest.raises(ConfigError) as info:
        parse_connection_options(config).create_ssl_context()
    assert "hunter2" not in str(info.value)
    with_password = {**config, "options.ssl_key_password": "hunter2"}
    assert parse_connection_options(with_password).create_ssl_context() is not None


# ---------------------------------------------------------------------------
# CONFIG_KEYS, the table the docs are generated from


def test_config_keys_are_unique_and_documented() -> None:
    keys = [entry.key for entry in CONFIG_KEYS]
    assert len(keys) == len(set(keys))
    assert all(entry.meaning.strip() for entry in CONFIG_KEYS)
    assert all(isinstance(entry, ConfigKey) for entry in CONFIG_KEYS)


def test_config_keys_cover_the_issue_keys() -> None:
    keys = {entry.key for entry in CONFIG_KEYS}
    assert {
        "client_id",
        "connection.uri",
        "connection.protocol",
        "connection.host",
        "connection.ip",
        "connection.port",
        "connection.discovery_key",
        "connections.N.*",
        "credential.username",
        "credential.password",
        "credential.store_key",
        "credentials.N.*",
        "options.retry_connect",
        "options.connect_timeout",
        "options.max_reconnect",
        "options.reconnect_timeout",
        "options.keepalive_timeout",
        "options.protocol_version",
        "options.clean_start",
        "options.session_expiry",
        "options.ssl_ca_file",
        "options.ssl_cert_file",
        "options.ssl_key_file",
        "options.ssl_insecure",
        "options.ssl_verify",
        "options.will_topic",
        "options.will_payload",
        "options.will_qos",
        "options.will_retain",
    } <= keys


def test_config_keys_documented_defaults() -> None:
    table = {entry.key: entry for entry in CONFIG_KEYS}
    assert table["options.retry_connect"].default == "true"
    assert table["options.connect_timeout"].default == "30000"
    assert table["options.reconnect_timeout"].default == "1000"
    assert table["options.keepalive_timeout"].default == "60000"
    assert "3000" in table["options.keepalive_timeout"].meaning  # the doc error
    assert table["connection.protocol"].default == "mqtt"
    assert table["connection.port"].default == "1883"
    for scheme, port in DEFAULT_PORTS.items():
        if scheme != "unix":
            assert f"{port} for" in table["connection.port"].meaning
