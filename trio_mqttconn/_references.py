"""References by pip-services descriptors, and in-memory discovery and credentials.

A pip-services component finds its collaborators (logger, counters, discovery,
credential store) in a *references* object by *locator*, usually a `Descriptor`
``group:type:kind:name:version`` where ``*`` (or None) matches anything.

Everything here is duck-typed against pip-services so both worlds mix:

- our `References` accepts pip-services ``Descriptor`` objects as locators (they
  are compared through ``str()``, which is ``group:type:kind:name:version`` in
  every pip-services port);
- our components use only ``get_optional(locator)`` on a references object, and
  `find_references` builds the locator in the descriptor class of the references'
  own package, because pip-services descriptors compare equal only to their own
  class;
- `ConnectionParams` and `CredentialParams` are `ConfigParams`, as in pip-services,
  and anything returned by a pip-services discovery or credential store (its own
  ``ConnectionParams``, a plain dict, or a ``"key=value;..."`` string) is accepted.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Protocol, TypeVar, final

import attrs

from ._config import ConfigParams, ordered_section_names
from ._exceptions import ConfigError

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

__all__ = [
    "ConnectionParams",
    "CredentialParams",
    "Descriptor",
    "MemoryCredentialStore",
    "MemoryDiscovery",
    "References",
    "ReferencesLike",
    "find_references",
    "locators_for",
    "many_from_config",
]

_P = TypeVar("_P", bound=ConfigParams)


def _wildcard(value: str | None) -> str | None:
    return None if value is None or value == "*" else value


@final
@attrs.frozen
class Descriptor:
    """Locates a component by ``group:type:kind:name:version``; ``*`` matches anything.

    Example::

        Descriptor("pip-services", "logger", "console", "default", "1.0")
        Descriptor("*", "discovery", "*", "*", "1.0")  # any discovery service
    """

    group: str | None = attrs.field(converter=_wildcard)
    """Logical group, e.g. ``"pip-services"``; None (``*``) matches any."""
    type: str | None = attrs.field(converter=_wildcard)
    """Logical type or interface, e.g. ``"logger"``; None (``*``) matches any."""
    kind: str | None = attrs.field(converter=_wildcard)
    """Implementation kind, e.g. ``"console"``; None (``*``) matches any."""
    name: str | None = attrs.field(converter=_wildcard)
    """Instance name, e.g. ``"default"``; None (``*``) matches any."""
    version: str | None = attrs.field(converter=_wildcard)
    """Implementation version, e.g. ``"1.0"``; None (``*``) matches any."""

    @classmethod
    def from_string(cls, value: str) -> Descriptor:
        """Parse ``group:type:kind:name:version``.

        Args:
            value: the descriptor text.

        Returns:
            The descriptor.

        Raises:
            ConfigError: the text does not have five parts (code ``BAD_DESCRIPTOR``).
        """
        parts = value.split(":")
        if len(parts) != 5:
            raise ConfigError(
                f"Descriptor {value} is in wrong format", code="BAD_DESCRIPTOR"
            )
        group, type_, kind, name, version = (part.strip() for part in parts)
        return cls(group, type_, kind, name, version)

    def _fields(self) -> tuple[str | None, ...]:
        return (self.group, self.type, self.kind, self.name, self.version)

    def match(self, other: object) -> bool:
        """Whether two descriptors match, where a wildcard on either side matches.

        Args:
            other: a descriptor, ours or a pip-services one (compared by ``str()``).

        Returns:
            True when every field matches; False for anything that is not a
            descriptor.
        """
        descriptor = as_descriptor(other)
        if descriptor is None:
            return False
        return all(
            mine is None or theirs is None or mine == theirs
            for mine, theirs in zip(self._fields(), descriptor._fields(), strict=True)
        )

    def exact_match(self, other: object) -> bool:
        """Whether every field is equal, wildcards included.

        Args:
            other: a descriptor, ours or a pip-services one.

        Returns:
            True when all five fields are the same.
        """
        descriptor = as_descriptor(other)
        return descriptor is not None and descriptor._fields() == self._fields()

    def is_complete(self) -> bool:
        """Whether no field is a wildcard."""
        return all(field is not None for field in self._fields())

    def __str__(self) -> str:
        """Format as ``group:type:kind:name:version``, with ``*`` for wildcards."""
        return ":".join("*" if field is None else field for field in self._fields())


def as_descriptor(value: object) -> Descriptor | None:
    """Return ``value`` as our `Descriptor`, or None when it is not a descriptor.

    pip-services descriptors (any class named ``Descriptor`` whose ``str()`` has five
    colon-separated parts) are converted; strings and other locators are not.
    """
    if isinstance(value, Descriptor):
        return value
    if type(value).__name__ != "Descriptor":
        return None
    try:
        return Descriptor.from_string(str(value))
    except ConfigError:
        return None


class ReferencesLike(Protocol):
    """What a references object must offer: ours, or a pip-services ``IReferences``."""

    def get_optional(self, locator: object) -> Sequence[object]:
        """Return every component that matches ``locator`` (possibly none)."""
        ...


def locators_for(references: object, descriptor: Descriptor) -> list[object]:
    """Return ``descriptor`` in every form ``references`` may match, likeliest first.

    A pip-services ``References`` compares locators with its own ``Descriptor``
    class, whose instances are equal only to instances of that class. So when
    ``references`` is not ours, build the locator with the ``Descriptor`` class of
    its package (found by walking up its module path), then with that of every
    loaded ``pip_services*.refer`` package (a container may wrap references in a
    class of another package), and last use ``descriptor`` itself. Only modules
    already imported are consulted: nothing is imported here.

    Args:
        references: the references object that will be searched.
        descriptor: what to look for.

    Returns:
        Candidate locators; ``[descriptor]`` for our `References`.
    """
    if isinstance(references, References):
        return [descriptor]
    parts = type(references).__module__.split(".")
    names = [".".join(parts[:end]) for end in range(len(parts), 0, -1)]
    loaded = sys.modules.copy()
    names += sorted(
        name
        for name in loaded
        if name.startswith("pip_services") and name.endswith(".refer")
    )
    candidates: list[object] = []
    seen: set[type] = {Descriptor}
    for name in names:
        foreign = getattr(loaded.get(name), "Descriptor", None)
        if (
            not isinstance(foreign, type)
            or foreign in seen
            or not callable(getattr(foreign, "match", None))
        ):
            continue
        seen.add(foreign)
        try:
            candidates.append(foreign(*str(descriptor).split(":")))
        except Exception:  # a class that only looks alike
            continue
    candidates.append(descriptor)
    return candidates


def find_references(
    references: ReferencesLike | None, descriptor: Descriptor
) -> list[object]:
    """Return every component of ``references`` that matches ``descriptor``.

    Works with our `References` and with pip-services ones alike, using nothing but
    ``get_optional(locator)`` (see `locators_for`).

    Args:
        references: the references, or None (then nothing is found).
        descriptor: what to look for, e.g. ``Descriptor("*", "logger", "*", "*",
            "1.0")``.

    Returns:
        The matching components, in the order ``references`` gives them.
    """
    if references is None:
        return []
    for locator in locators_for(references, descriptor):
        found = references.get_optional(locator)
        if found:
            return list(found)
    return []


def _locator_matches(stored: object, component: object, locator: object) -> bool:
    if component is locator:
        return True
    stored_descriptor = as_descriptor(stored)
    wanted = as_descriptor(locator)
    if stored_descriptor is not None and wanted is not None:
        return stored_descriptor.match(wanted)
    return bool(stored == locator)


@final
@attrs.define(eq=False)
class References:
    """Components registered by locator, found by descriptor (pip-services style).

    Lookups return the most recently added match first, as in pip-services, so a
    later registration overrides an earlier one for `get_one_optional`.

    Example::

        refs = References.from_tuples(
            Descriptor("pip-services", "logger", "console", "default", "1.0"),
            logger,
            Descriptor("pip-services", "discovery", "memory", "default", "1.0"),
            discovery,
        )
        refs.get_one_required(Descriptor("*", "logger", "*", "*", "1.0"))
    """

    _entries: list[tuple[object, object]] = attrs.field(factory=list, init=False)

    @classmethod
    def from_tuples(cls, *tuples: object) -> References:
        """Create references from alternating locators and components.

        Args:
            *tuples: ``locator1, component1, locator2, component2, ...``.

        Returns:
            The new references.

        Raises:
            ValueError: the number of arguments is odd.
        """
        if len(tuples) % 2:
            raise ValueError(
                "from_tuples needs locator, component pairs, "
                f"not {len(tuples)} arguments"
            )
        references = cls()
        for index in range(0, len(tuples), 2):
            references.put(tuples[index], tuples[index + 1])
        return references

    def put(self, locator: object, component: object) -> None:
        """Register a component under a locator (usually a `Descriptor`).

        Raises:
            ValueError: ``component`` is None.
        """
        if component is None:
            raise ValueError("component cannot be None: pass the object to register")
        self._entries.append((locator, component))

    def remove(self, locator: object) -> object | None:
        """Remove the most recently added component that matches; return it or None."""
        for index in range(len(self._entries) - 1, -1, -1):
            stored, component = self._entries[index]
            if _locator_matches(stored, component, locator):
                del self._entries[index]
                return component
        return None

    def remove_all(self, locator: object) -> list[object]:
        """Remove every component that matches; return them, newest first."""
        removed = self.get_optional(locator)
        self._entries = [
            (stored, component)
            for stored, component in self._entries
            if not _locator_matches(stored, component, locator)
        ]
        return removed

    def get_all_locators(self) -> list[object]:
        """Return the locators of all components, in registration order."""
        return [stored for stored, _ in self._entries]

    def get_all(self) -> list[object]:
        """Return all components, in registration order."""
        return [component for _, component in self._entries]

    def get_optional(self, locator: object) -> list[object]:
        """Return every component that matches ``locator``, newest first."""
        return [
            component
            for stored, component in reversed(self._entries)
            if _locator_matches(stored, component, locator)
        ]

    def get_required(self, locator: object) -> list[object]:
        """Return every component that matches ``locator``, newest first.

        Raises:
            ConfigError: nothing matches (code ``REFERENCE_NOT_FOUND``).
        """
        components = self.get_optional(locator)
        if not components:
            raise _not_found(locator)
        return components

    def get_one_optional(self, locator: object) -> object | None:
        """Return the newest component that matches ``locator``, or None."""
        components = self.get_optional(locator)
        return components[0] if components else None

    def get_one_required(self, locator: object) -> object:
        """Return the newest component that matches ``locator``.

        Raises:
            ConfigError: nothing matches (code ``REFERENCE_NOT_FOUND``).
        """
        return self.get_required(locator)[0]


def _not_found(locator: object) -> ConfigError:
    # pip-services' ReferenceException text, kept as upstream documents it.
    return ConfigError(
        f"Failed to obtain reference to {locator}", code="REFERENCE_NOT_FOUND"
    )


class ConnectionParams(ConfigParams):
    """Parameters of one connection: ``uri``, or ``protocol``/``host``/``port``.

    ``discovery_key`` (when set) names the entry a discovery service resolves. Any
    other key is kept and passed along.
    """

    @property
    def uri(self) -> str | None:
        """The ``uri`` key, or None."""
        return self.get("uri") or None

    @property
    def protocol(self) -> str | None:
        """The ``protocol`` key, or None."""
        return self.get("protocol") or None

    @property
    def host(self) -> str | None:
        """The ``host`` key, else its alias ``ip``, or None."""
        return self.get("host") or self.get("ip") or None

    @property
    def port(self) -> int | None:
        """The ``port`` key as an integer, or None when unset or not a number."""
        return self.get_as_nullable_integer("port")

    @property
    def discovery_key(self) -> str | None:
        """The ``discovery_key`` key, or None."""
        return self.get("discovery_key") or None

    def use_discovery(self) -> bool:
        """Whether these parameters are resolved through a discovery service."""
        return self.discovery_key is not None

    @classmethod
    def many_from_config(cls, config: Mapping[str, object]) -> list[ConnectionParams]:
        """Read ``connections.N.*`` (in numeric order), else ``connection.*``.

        Args:
            config: the component configuration.

        Returns:
            The connections; empty when neither section is set.
        """
        return [params for _, params in many_from_config(cls, config, "connection")]


class CredentialParams(ConfigParams):
    """Credentials: ``username`` (alias ``user``) and ``password`` (alias ``pass``).

    ``store_key`` (when set) names the entry a credential store looks up. The
    password is masked in ``repr()`` and ``str()``.
    """

    @property
    def username(self) -> str | None:
        """The ``username`` key, else its alias ``user``, or None."""
        return self.get("username") or self.get("user") or None

    @property
    def password(self) -> str | None:
        """The ``password`` key, else its alias ``pass``, or None."""
        return self.get("password") or self.get("pass") or None

    @property
    def store_key(self) -> str | None:
        """The ``store_key`` key, or None."""
        return self.get("store_key") or None

    def use_credential_store(self) -> bool:
        """Whether these credentials are looked up in a credential store."""
        return self.store_key is not None

    @classmethod
    def many_from_config(cls, config: Mapping[str, object]) -> list[CredentialParams]:
        """Read ``credentials.N.*`` (in numeric order), else ``credential.*``.

        Args:
            config: the component configuration.

        Returns:
            The credentials; empty when neither section is set.
        """
        return [params for _, params in many_from_config(cls, config, "credential")]


def many_from_config(
    cls: type[_P], config: Mapping[str, object], name: str
) -> list[tuple[str, _P]]:
    """Read ``<name>s.N.*`` (in numeric order), else ``<name>.*``, as ``cls``.

    Returns ``(label, params)`` pairs, where the label is the section
    (``connections.1``) that error messages name.
    """
    config = ConfigParams.of(config)
    many = config.get_section(name + "s")
    if many:
        return [
            (f"{name}s.{section}", cls(many.get_section(section)))
            for section in ordered_section_names(many)
            if many.get_section(section)
        ]
    one = config.get_section(name)
    return [(name, cls(one))] if one else []


def _named_sections(config: ConfigParams) -> list[tuple[str, list[ConfigParams]]]:
    """Read ``key.*`` sections (or ``connections.key.*``); ``key.N.*`` is a list."""
    if config.get_section("connections"):
        config = config.get_section("connections")
    result: list[tuple[str, list[ConfigParams]]] = []
    for key in config.get_section_names():
        section = config.get_section(key)
        if not section:
            continue  # e.g. the "descriptor" key a container adds
        names = section.get_section_names()
        if all(name.isdecimal() for name in names):
            items = [section.get_section(n) for n in ordered_section_names(section)]
            result.append((key, [item for item in items if item]))
        else:
            result.append((key, [section]))
    return result


@final
@attrs.define(eq=False)
class MemoryDiscovery:
    """A discovery service that keeps connection parameters in memory.

    Configure it with one section per key (``key1.host``, ``key1.port`` ...), or
    ``key1.0.*``, ``key1.1.*`` for several connections under one key; keys may also
    sit under ``connections.``. Keys are case-insensitive. The methods are plain
    functions: the resolver accepts sync and async discovery services alike.

    Example::

        discovery = MemoryDiscovery()
        discovery.configure(ConfigParams.from_tuples(
            "broker.host", "10.1.1.100", "broker.port", 1883))
        discovery.resolve_one(None, "broker")  # host=10.1.1.100;port=1883
    """

    _items: dict[str, list[ConnectionParams]] = attrs.field(factory=dict, init=False)

    def configure(self, config: Mapping[str, object]) -> None:
        """Replace the stored connections with those in ``config``.

        Args:
            config: ``key.*`` (or ``connections.key.*``) sections.
        """
        self._items = {
            key: [ConnectionParams(item) for item in items]
            for key, items in _named_sections(ConfigParams.of(config))
        }

    def register(
        self, context: object, key: str, connection: Mapping[str, object]
    ) -> ConnectionParams:
        """Add a connection under ``key`` (after any already there).

        Args:
            context: the pip-services context (or trace id); unused.
            key: the discovery key.
            connection: the connection parameters.

        Returns:
            The stored connection parameters.
        """
        del context
        params = ConnectionParams(ConfigParams.of(connection))
        self._items.setdefault(key.lower(), []).append(params)
        return params

    def resolve_one(self, context: object, key: str) -> ConnectionParams | None:
        """Return the first connection registered under ``key``, or None."""
        del context
        connections = self._items.get(key.lower())
        return connections[0] if connections else None

    def resolve_all(self, context: object, key: str) -> list[ConnectionParams]:
        """Return every connection registered under ``key``, in order."""
        del context
        return list(self._items.get(key.lower(), ()))


@final
@attrs.define(eq=False)
class MemoryCredentialStore:
    """A credential store that keeps credentials in memory.

    Configure it with one section per key (``key1.username``, ``key1.password`` ...).
    Keys are case-insensitive. Passwords are never shown by ``repr()``.

    Example::

        store = MemoryCredentialStore()
        store.configure(ConfigParams.from_tuples(
            "broker.username", "svc", "broker.password", "secret"))
        store.lookup(None, "broker").username  # "svc"
    """

    _items: dict[str, CredentialParams] = attrs.field(
        factory=dict, init=False, repr=False
    )

    def configure(self, config: Mapping[str, object]) -> None:
        """Replace the stored credentials with the ``key.*`` sections of ``config``.

        Args:
            config: one section per credential key.
        """
        config = ConfigParams.of(config)
        self._items = {}
        for key in config.get_section_names():
            section = config.get_section(key)
            if section:
                self._items[key] = CredentialParams(section)

    def store(
        self, context: object, key: str, credential: Mapping[str, object] | None
    ) -> None:
        """Store credentials under ``key``; None removes them.

        Args:
            context: the pip-services context (or trace id); unused.
            key: the store key.
            credential: the credential parameters, or None.
        """
        del context
        if credential is None:
            self._items.pop(key.lower(), None)
        else:
            self._items[key.lower()] = CredentialParams(ConfigParams.of(credential))

    def lookup(self, context: object, key: str) -> CredentialParams | None:
        """Return the credentials stored under ``key``, or None."""
        del context
        return self._items.get(key.lower())
