"""Descriptors, References, in-memory discovery and credential store, parameters."""

from __future__ import annotations

import re
import sys
import types
from typing import Any

import pytest

from trio_mqttconn._config import ConfigParams
from trio_mqttconn._exceptions import ConfigError
from trio_mqttconn._references import (
    ConnectionParams,
    CredentialParams,
    Descriptor,
    MemoryCredentialStore,
    MemoryDiscovery,
    References,
    as_descriptor,
    find_references,
    locators_for,
    many_from_config,
)


def exactly(message: str) -> str:
    return f"^{re.escape(message)}$"


LOGGER = Descriptor("pip-services", "logger", "console", "default", "1.0")
COUNTERS = Descriptor("pip-services", "counters", "log", "default", "1.0")


# ---------------------------------------------------------------------------
# A stand-in for pip-services: its Descriptor equals only its own class, and its
# References matches with ``stored == locator``, as pip_services4_components does.


class PipDescriptor:
    def __init__(self, *fields: str | None) -> None:
        self.fields = tuple(None if f == "*" else f for f in fields)

    def match(self, other: PipDescriptor) -> bool:
        return all(
            a is None or b is None or a == b
            for a, b in zip(self.fields, other.fields, strict=True)
        )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PipDescriptor) and self.match(other)

    __hash__ = None  # type: ignore[assignment]  # like pip-services: unhashable

    def __str__(self) -> str:
        return ":".join("*" if f is None else f for f in self.fields)


PipDescriptor.__name__ = "Descriptor"


class PipReferences:
    def __init__(self, *tuples: Any) -> None:
        self.entries = list(zip(tuples[::2], tuples[1::2], strict=True))

    def get_optional(self, locator: Any) -> list[Any]:
        return [c for s, c in reversed(self.entries) if c == locator or s == locator]


def install_fake_pip_services(monkeypatch: pytest.MonkeyPatch) -> None:
    """Register PipReferences as ``fakepip.refer.References.References``."""
    package = types.ModuleType("fakepip")
    refer = types.ModuleType("fakepip.refer")
    refer.Descriptor = PipDescriptor  # type: ignore[attr-defined]
    module = types.ModuleType("fakepip.refer.References")
    monkeypatch.setitem(sys.modules, "fakepip", package)
    monkeypatch.setitem(sys.modules, "fakepip.refer", refer)
    monkeypatch.setitem(sys.modules, "fakepip.refer.References", module)
    monkeypatch.setattr(PipReferences, "__module__", "fakepip.refer.References")


# ---------------------------------------------------------------------------
# Descriptor


def test_descriptor_wildcards_become_none() -> None:
    descriptor = Descriptor("*", "logger", None, "*", "1.0")
    assert descriptor.group is None
    assert descriptor.kind is None
    assert descriptor.name is None
    assert str(descriptor) == "*:logger:*:*:1.0"
    assert not descriptor.is_complete()
    assert LOGGER.is_complete()


def test_descriptor_from_string_round_trip() -> None:
    text = "pip-services:logger:console:default:1.0"
    assert Descriptor.from_string(text) == LOGGER
    assert str(Descriptor.from_string(text)) == text
    assert Descriptor.from_string(" * : discovery :*:*:*") == Descriptor(
        None, "discovery", None, None, None
    )


def test_descriptor_from_string_wrong_format() -> None:
    with pytest.raises(
        ConfigError, match=exactly("Descriptor a:b:c is in wrong format")
    ) as info:
        Descriptor.from_string("a:b:c")
    assert info.value.code == "BAD_DESCRIPTOR"


def test_descriptor_match_with_wildcards_on_either_side() -> None:
    assert LOGGER.match(Descriptor("*", "logger", "*", "*", "1.0"))
    assert Descriptor("*", "logger", "*", "*", "1.0").match(LOGGER)
    assert not LOGGER.match(Descriptor("*", "logger", "*", "*", "2.0"))
    assert not LOGGER.match(COUNTERS)
    assert not LOGGER.match("pip-services:logger:console:default:1.0")
    assert not LOGGER.match(None)


def test_descriptor_match_accepts_foreign_descriptors_by_str() -> None:
    foreign = PipDescriptor("*", "logger", "*", "*", "1.0")
    assert LOGGER.match(foreign)
    assert not COUNTERS.match(foreign)


def test_descriptor_exact_match() -> None:
    assert LOGGER.exact_match(Descriptor.from_string(str(LOGGER)))
    assert LOGGER.exact_match(PipDescriptor(*str(LOGGER).split(":")))
    assert not LOGGER.exact_match(Descriptor("*", "logger", "*", "*", "1.0"))
    assert not LOGGER.exact_match(object())


def test_as_descriptor_ignores_lookalikes() -> None:
    class Descriptor:  # a class with that name whose str is not a descriptor
        def __str__(self) -> str:
            return "not one"

    assert as_descriptor(Descriptor()) is None
    assert as_descriptor("a:b:c:d:e") is None
    assert as_descriptor(LOGGER) is LOGGER


# ---------------------------------------------------------------------------
# References


def test_references_from_tuples_and_get_one() -> None:
    logger, counters = object(), object()
    refs = References.from_tuples(LOGGER, logger, COUNTERS, counters)
    assert refs.get_one_optional(Descriptor("*", "logger", "*", "*", "*")) is logger
    assert refs.get_one_required(Descriptor("*", "counters", "*", "*", "1.0")) is (
        counters
    )
    assert refs.get_all() == [logger, counters]
    assert refs.get_all_locators() == [LOGGER, COUNTERS]


def test_references_from_tuples_odd_count_raises() -> None:
    with pytest.raises(
        ValueError,
        match=exactly("from_tuples needs locator, component pairs, not 1 arguments"),
    ):
        References.from_tuples(LOGGER)


def test_references_put_none_raises() -> None:
    with pytest.raises(
        ValueError,
        match=exactly("component cannot be None: pass the object to register"),
    ):
        References().put(LOGGER, None)


def test_references_get_optional_newest_first() -> None:
    first, second = object(), object()
    refs = References.from_tuples(LOGGER, first, LOGGER, second)
    assert refs.get_optional(Descriptor("*", "logger", "*", "*", "*")) == [
        second,
        first,
    ]
    assert refs.get_one_optional(LOGGER) is second
    assert refs.get_optional(COUNTERS) == []
    assert refs.get_one_optional(COUNTERS) is None


def test_references_get_required_raises_with_locator() -> None:
    refs = References()
    locator = Descriptor("*", "logger", "*", "*", "1.0")
    message = exactly("Failed to obtain reference to *:logger:*:*:1.0")
    with pytest.raises(ConfigError, match=message) as info:
        refs.get_one_required(locator)
    assert info.value.code == "REFERENCE_NOT_FOUND"
    with pytest.raises(ConfigError, match=message):
        refs.get_required(locator)


def test_references_non_descriptor_locators_match_by_equality() -> None:
    component = object()
    refs = References.from_tuples("my-key", component)
    assert refs.get_one_optional("my-key") is component
    assert refs.get_one_optional("other") is None
    assert refs.get_one_optional(LOGGER) is None
    # A component can be used as its own locator.
    assert refs.get_one_optional(component) is component


def test_references_store_and_find_foreign_descriptors() -> None:
    logger = object()
    refs = References.from_tuples(
        PipDescriptor("pip-services", "logger", "console", "default", "1.0"), logger
    )
    assert refs.get_one_optional(Descriptor("*", "logger", "*", "*", "1.0")) is logger
    assert refs.get_one_optional(PipDescriptor("*", "logger", "*", "*", "*")) is logger
    assert refs.get_one_optional(PipDescriptor("*", "counters", "*", "*", "*")) is None


def test_references_remove_newest_match() -> None:
    first, second, other = object(), object(), object()
    refs = References.from_tuples(LOGGER, first, LOGGER, second, COUNTERS, other)
    assert refs.remove(Descriptor("*", "logger", "*", "*", "*")) is second
    assert refs.get_all() == [first, other]
    assert refs.remove(Descriptor("*", "missing", "*", "*", "*")) is None


def test_references_remove_all() -> None:
    first, second, other = object(), object(), object()
    refs = References.from_tuples(LOGGER, first, COUNTERS, other, LOGGER, second)
    assert refs.remove_all(LOGGER) == [second, first]
    assert refs.get_all() == [other]


# ---------------------------------------------------------------------------
# locators_for / find_references: locators a foreign references object can match


def test_locators_for_our_references_is_the_descriptor() -> None:
    assert locators_for(References(), LOGGER) == [LOGGER]


def test_locators_for_pip_services_references_uses_their_class(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    install_fake_pip_services(monkeypatch)
    logger = object()
    refs = PipReferences(PipDescriptor(*str(LOGGER).split(":")), logger)
    # Our descriptor is not equal to theirs, so they would find nothing ...
    assert refs.get_optional(LOGGER) == []
    # ... but the locator built in their class matches.
    wanted = Descriptor("*", "logger", "*", "*", "*")
    locator, ours = locators_for(refs, wanted)
    assert isinstance(locator, PipDescriptor)
    assert str(locator) == "*:logger:*:*:*"
    assert ours is wanted
    assert refs.get_optional(locator) == [logger]
    assert find_references(refs, wanted) == [logger]
    assert find_references(refs, Descriptor("*", "counters", "*", "*", "*")) == []


def test_locators_for_module_without_descriptor_is_ours() -> None:
    class Plain:
        def get_optional(self, locator: object) -> list[object]:
            return []

    Plain.__module__ = "no.such.module"
    assert locators_for(Plain(), LOGGER) == [LOGGER]


def test_locators_for_module_importing_our_descriptor_is_ours() -> None:
    # This test module imports our Descriptor: it must be used as is.
    class Local:
        pass

    Local.__module__ = __name__
    assert locators_for(Local(), LOGGER) == [LOGGER]


def test_locators_for_descriptor_class_that_fails_is_ours(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class Broken:
        def __init__(self) -> None:  # takes no fields
            pass

        def match(self, other: object) -> bool:
            return False

    module = types.ModuleType("brokenpip")
    module.Descriptor = Broken  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "brokenpip", module)

    class Refs:
        pass

    Refs.__module__ = "brokenpip"
    assert locators_for(Refs(), LOGGER) == [LOGGER]


def test_locators_for_ignores_descriptor_without_match(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    module = types.ModuleType("protolike")
    module.Descriptor = type("Descriptor", (), {})  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "protolike", module)

    class Refs:
        pass

    Refs.__module__ = "protolike"
    assert locators_for(Refs(), LOGGER) == [LOGGER]


# ---------------------------------------------------------------------------
# ConnectionParams and CredentialParams


def test_connection_params_accessors() -> None:
    params = ConnectionParams.from_tuples(
        "uri", "mqtt://a", "protocol", "ws", "host", "h", "port", "1883"
    )
    assert params.uri == "mqtt://a"
    assert params.protocol == "ws"
    assert params.host == "h"
    assert params.port == 1883
    assert params.discovery_key is None
    assert not params.use_discovery()


def test_connection_params_ip_alias_and_empty_values() -> None:
    params = ConnectionParams.from_tuples("ip", "10.0.0.1", "uri", "", "port", "x")
    assert params.host == "10.0.0.1"
    assert params.uri is None
    assert params.port is None
    assert ConnectionParams().protocol is None
    assert ConnectionParams().host is None


def test_connection_params_discovery_key() -> None:
    params = ConnectionParams.from_tuples("discovery_key", "broker")
    assert params.discovery_key == "broker"
    assert params.use_discovery()


def test_connection_params_many_from_config_numeric_order() -> None:
    config = ConfigParams.from_tuples(
        "connections.10.host",
        "c",
        "connections.2.host",
        "b",
        "connections.0.host",
        "a",
        "connection.host",
        "ignored",
    )
    hosts = [p.host for p in ConnectionParams.many_from_config(config)]
    assert hosts == ["a", "b", "c"]
    assert all(
        type(p) is ConnectionParams for p in ConnectionParams.many_from_config(config)
    )


def test_connection_params_many_from_config_single_and_none() -> None:
    single = ConnectionParams.many_from_config({"connection.host": "h"})
    assert single == [{"host": "h"}]
    assert ConnectionParams.many_from_config({"client_id": "x"}) == []


def test_many_from_config_labels_sections() -> None:
    config = {"connections.0.host": "a", "connections.1.host": "b"}
    labelled = many_from_config(ConnectionParams, config, "connection")
    assert [label for label, _ in labelled] == ["connections.0", "connections.1"]
    single = many_from_config(CredentialParams, {"credential.user": "u"}, "credential")
    assert single == [("credential", {"user": "u"})]


def test_credential_params_accessors_and_aliases() -> None:
    params = CredentialParams.from_tuples("user", "bob", "pass", "hunter2")
    assert params.username == "bob"
    assert params.password == "hunter2"
    assert params.store_key is None
    assert not params.use_credential_store()
    full = CredentialParams.from_tuples(
        "username", "alice", "user", "bob", "password", "p1", "pass", "p2"
    )
    assert (full.username, full.password) == ("alice", "p1")
    assert CredentialParams().username is None
    assert CredentialParams().password is None


def test_credential_params_store_key() -> None:
    params = CredentialParams.from_tuples("store_key", "broker")
    assert params.store_key == "broker"
    assert params.use_credential_store()


def test_credential_params_many_from_config() -> None:
    config = {
        "credentials.1.username": "b",
        "credentials.0.username": "a",
    }
    assert [c.username for c in CredentialParams.many_from_config(config)] == [
        "a",
        "b",
    ]
    assert CredentialParams.many_from_config({"credential.username": "x"}) == [
        {"username": "x"}
    ]


def test_credential_params_repr_hides_password() -> None:
    params = CredentialParams.from_tuples("username", "bob", "password", "hunter2")
    assert "hunter2" not in repr(params)
    assert "hunter2" not in str(params)
    assert repr(params).startswith("CredentialParams(")


# ---------------------------------------------------------------------------
# MemoryDiscovery


def test_memory_discovery_configure_key_sections() -> None:
    discovery = MemoryDiscovery()
    discovery.configure(
        ConfigParams.from_tuples(
            "descriptor",
            "pip-services:discovery:memory:default:1.0",
            "Broker.host",
            "10.1.1.100",
            "broker.port",
            1883,
            "other.host",
            "o",
        )
    )
    found = discovery.resolve_one(None, "broker")
    assert found == {"host": "10.1.1.100", "port": "1883"}
    assert isinstance(found, ConnectionParams)
    assert discovery.resolve_all("ctx", "BROKER") == [found]
    assert discovery.resolve_one(None, "missing") is None
    assert discovery.resolve_all(None, "missing") == []
    assert discovery.resolve_one(None, "descriptor") is None


def test_memory_discovery_configure_connections_section_and_lists() -> None:
    discovery = MemoryDiscovery()
    discovery.configure(
        {
            "connections.cluster.1.host": "b",
            "connections.cluster.0.host": "a",
            "connections.single.uri": "mqtt://s",
        }
    )
    assert [c.host for c in discovery.resolve_all(None, "cluster")] == ["a", "b"]
    assert discovery.resolve_one(None, "single") == {"uri": "mqtt://s"}


def test_memory_discovery_configure_replaces() -> None:
    discovery = MemoryDiscovery()
    discovery.configure({"a.host": "1"})
    discovery.configure({"b.host": "2"})
    assert discovery.resolve_one(None, "a") is None


def test_memory_discovery_register_appends() -> None:
    discovery = MemoryDiscovery()
    stored = discovery.register(None, "Key", {"host": "a"})
    assert isinstance(stored, ConnectionParams)
    discovery.register(None, "key", ConnectionParams.from_tuples("host", "b"))
    assert [c.host for c in discovery.resolve_all(None, "KEY")] == ["a", "b"]
    assert discovery.resolve_one(None, "key") is stored


# ---------------------------------------------------------------------------
# MemoryCredentialStore


def test_memory_credential_store_configure_and_lookup() -> None:
    store = MemoryCredentialStore()
    store.configure(
        {
            "descriptor": "pip-services:credential-store:memory:default:1.0",
            "Broker.username": "svc",
            "broker.password": "hunter2",
        }
    )
    found = store.lookup(None, "BROKER")
    assert isinstance(found, CredentialParams)
    assert (found.username, found.password) == ("svc", "hunter2")
    assert store.lookup(None, "descriptor") is None
    assert store.lookup(None, "missing") is None
    assert "hunter2" not in repr(store)


def test_memory_credential_store_store_and_remove() -> None:
    store = MemoryCredentialStore()
    store.store(None, "Key", {"username": "u", "password": "hunter2"})
    found = store.lookup("ctx", "key")
    assert found is not None
    assert found.username == "u"
    store.store(None, "KEY", None)
    assert store.lookup(None, "key") is None
    store.store(None, "key", None)  # removing what is not there is fine


def test_locators_for_wrapped_references_use_loaded_pip_services(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A container may wrap pip-services references in a class of a package without
    # a Descriptor; the class of any loaded pip_services*.refer package is tried.
    refer = types.ModuleType("pip_services9_components.refer")
    refer.Descriptor = PipDescriptor  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "pip_services9_components.refer", refer)
    logger = object()
    inner = PipReferences(PipDescriptor(*str(LOGGER).split(":")), logger)

    class Wrapper:
        def get_optional(self, locator: object) -> list[object]:
            return inner.get_optional(locator)

    Wrapper.__module__ = "somecontainer.refer"
    assert find_references(Wrapper(), LOGGER) == [logger]
    # Found through the module path and the loaded list: tried once.
    Wrapper.__module__ = "pip_services9_components.refer"
    assert len(locators_for(Wrapper(), LOGGER)) == 2


def test_find_references_without_references() -> None:
    assert find_references(None, LOGGER) == []
    logger = object()
    assert find_references(References.from_tuples(LOGGER, logger), LOGGER) == [logger]
