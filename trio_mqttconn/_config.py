"""ConfigParams: dotted, case-insensitive configuration keys with sections.

pip-services components are configured with a flat map of dotted keys, for example
``connection.host``, ``connections.1.port`` or ``options.keepalive_timeout``. A
*section* is every key that starts with ``name.``, with that prefix removed, so
``config.get_section("connection")`` turns ``connection.host`` into ``host``.

How this map is built:

- Keys are case-insensitive: they are stored lower-cased, so ``Connection.Host`` and
  ``connection.host`` are the same key and iteration yields lower-case keys.
- Values are text, as in pip-services' ``StringValueMap``: ``True`` becomes
  ``"true"``, ``1883`` becomes ``"1883"``. ``None`` means "not set": storing it
  removes the key.
- Nested mappings and sequences are flattened, as pip-services' ``from_value`` does:
  ``{"connections": [{"host": "a"}]}`` becomes ``connections.0.host = a``.

It is a ``dict`` subclass (so code written for pip-services, which tests
``isinstance(x, dict)``, accepts it), and every ``Mapping[str, object]`` is accepted
where a configuration is expected (so a pip-services ``ConfigParams`` works as is).
The typed getters follow pip-services' names and conversion rules: a value that
cannot be converted reads as ``None`` (or the default).

``repr()`` and ``str()`` mask secrets (passwords, keys, tokens, and the password in a
URI) so a configuration can be logged.
"""

from __future__ import annotations

import datetime
import math
import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, TypeVar, cast, overload

if TYPE_CHECKING:
    from typing import Self

__all__ = ["ConfigParams"]

_T = TypeVar("_T")

_TRUE = frozenset({"true", "1", "t", "yes", "y", "on"})
_FALSE = frozenset({"false", "0", "f", "no", "n", "off"})

# Last key segments whose values are secrets: masked by repr() and str().
_SECRET_NAMES = frozenset(
    {"pass", "password", "secret", "token", "access_key", "client_key", "secret_key"}
)
_SECRET_SUFFIXES = ("password", "secret", "token", "_key_password")
# From "://user:" to the last "@": whatever a password contains, none of it shows.
_URI_PASSWORD = re.compile(r"(://[^/@:\s]*):.*@", re.DOTALL)
_MASK = "***"


def _key(key: object) -> str:
    return str(key).lower()


def _text(value: object) -> str:
    # The pip-services StringConverter rules that matter for configuration.
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime.datetime | datetime.date):
        return value.isoformat()
    return str(value)


def _is_secret(key: str) -> bool:
    name = key.rpartition(".")[2]
    return name in _SECRET_NAMES or name.endswith(_SECRET_SUFFIXES)


def _shown(key: str, value: str) -> str:
    if _is_secret(key):
        return _MASK
    return _URI_PASSWORD.sub(rf"\1:{_MASK}@", value)


def to_boolean(value: str | None) -> bool | None:
    """Read pip-services boolean text (``true/yes/1`` ...); None when it is not one."""
    if value is None:
        return None
    text = value.strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    return None


def to_float(value: str | None) -> float | None:
    """Read a finite float; None when the text is not one."""
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def to_integer(value: str | None) -> int | None:
    """Read an integer, truncating decimals as pip-services does; None when invalid."""
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        pass
    number = to_float(value)
    # pip-services truncates "12.7" to 12; we do the same for compatibility.
    return None if number is None else int(number)


class ConfigParams(dict[str, str]):
    """Configuration: a flat, case-insensitive mapping of dotted keys to text values.

    This is the pip-services ``ConfigParams`` shape: build it with `from_tuples`,
    `from_string` or `from_value`, read sections with `get_section`, and read typed
    values with the ``get_as_*`` family. Any ``Mapping[str, object]`` can be turned
    into one with `of`, which is what components do with the configuration they are
    given.

    Example::

        config = ConfigParams.from_tuples(
            "connection.host", "localhost",
            "connection.port", 1883,
        )
        config.get_section("connection").get_as_integer("port")  # 1883
    """

    def __init__(
        self,
        values: Mapping[str, object] | Iterable[tuple[str, object]] | None = None,
    ) -> None:
        """Create a configuration from a mapping or from ``(key, value)`` pairs.

        Args:
            values: the initial keys and values; nested mappings and sequences are
                flattened into dotted keys.
        """
        super().__init__()
        if values is not None:
            self.update(values)

    # -- construction -------------------------------------------------------------

    @classmethod
    def from_tuples(cls, *tuples: object) -> Self:
        """Create a configuration from alternating keys and values.

        Args:
            *tuples: ``key1, value1, key2, value2, ...``.

        Returns:
            The new configuration.

        Raises:
            ValueError: the number of arguments is odd.
        """
        if len(tuples) % 2:
            raise ValueError(
                f"from_tuples needs key, value pairs, not {len(tuples)} arguments"
            )
        result = cls()
        for index in range(0, len(tuples), 2):
            result[str(tuples[index])] = tuples[index + 1]
        return result

    @classmethod
    def from_string(cls, line: str | None) -> Self:
        """Parse ``"key1=value1;key2=value2"``.

        Spaces around keys and values are removed; parts without ``=`` are ignored.

        Args:
            line: the serialised configuration.

        Returns:
            The new configuration.
        """
        result = cls()
        for token in (line or "").split(";"):
            key, sep, value = token.partition("=")
            if sep and key.strip():
                result[key.strip()] = value.strip()
        return result

    @classmethod
    def from_value(cls, value: Mapping[str, object] | None) -> Self:
        """Flatten a nested mapping (as read from JSON or YAML) into dotted keys.

        Args:
            value: nested mappings and lists, e.g.
                ``{"connection": {"host": "a", "port": 1883}}``.

        Returns:
            The new configuration, e.g. ``connection.host=a;connection.port=1883``.
        """
        return cls(value)

    @classmethod
    def of(cls, value: Mapping[str, object] | str | None) -> Self:
        """Return ``value`` as this class, converting only when needed.

        Args:
            value: an instance of this class (returned as is), any mapping (copied,
                nested values flattened), a ``"key=value;..."`` string or None.

        Returns:
            The configuration.

        Raises:
            TypeError: ``value`` is none of the above.
        """
        if isinstance(value, cls):
            return value
        if value is None:
            return cls()
        if isinstance(value, str):
            return cls.from_string(value)
        if isinstance(value, Mapping):
            return cls(value)
        raise TypeError(
            f"expected a mapping of configuration keys, not {type(value).__name__}"
        )

    @staticmethod
    def merge_configs(*configs: Mapping[str, object] | None) -> ConfigParams:
        """Merge several configurations; later ones win for the same key.

        Args:
            *configs: the configurations, None entries are skipped.

        Returns:
            A new configuration.
        """
        result = ConfigParams()
        for config in configs:
            if config is not None:
                result.update(config)
        return result

    # -- dict protocol, with case-insensitive keys and text values -------------------

    def _put(self, key: str, value: object) -> None:
        if value is None:
            super().pop(key, None)
        elif isinstance(value, Mapping):
            for name, item in value.items():
                self._put(f"{key}.{_key(name)}", item)
        elif isinstance(value, list | tuple):
            for index, item in enumerate(value):
                self._put(f"{key}.{index}", item)
        else:
            super().__setitem__(key, _text(value))

    def __setitem__(self, key: str, value: object) -> None:
        """Set a key; None removes it, mappings and sequences are flattened."""
        self._put(_key(key), value)

    def __getitem__(self, key: str) -> str:
        """Return the value of a key, whatever its case."""
        return super().__getitem__(_key(key))

    def __delitem__(self, key: str) -> None:
        """Remove a key, whatever its case."""
        super().__delitem__(_key(key))

    def __contains__(self, key: object) -> bool:
        """Whether the key is set, whatever its case."""
        return isinstance(key, str) and super().__contains__(_key(key))

    @overload
    def get(self, key: str, default: None = None, /) -> str | None: ...
    @overload
    def get(self, key: str, default: str, /) -> str: ...
    @overload
    def get(self, key: str, default: _T, /) -> str | _T: ...
    def get(self, key: str, default: object = None, /) -> object:
        """Return the value of a key, or ``default`` when it is not set."""
        return super().get(_key(key), default)

    @overload
    def pop(self, key: str, /) -> str: ...
    @overload
    def pop(self, key: str, default: str, /) -> str: ...
    @overload
    def pop(self, key: str, default: _T, /) -> str | _T: ...
    def pop(self, key: str, *default: object) -> object:
        """Remove a key and return its value (or ``default``)."""
        return super().pop(_key(key), *default)

    def setdefault(self, key: str, default: object = None, /) -> str:
        """Set a key unless it is set; return its value.

        Raises:
            KeyError: the key is not set and ``default`` is None.
        """
        if key not in self:
            self[key] = default
        return self[key]

    def update(  # type: ignore[override]  # accepts any values, converts them
        self,
        values: Mapping[str, object] | Iterable[tuple[str, object]] = (),
        /,
        **kwargs: object,
    ) -> None:
        """Set several keys, with the same conversions as item assignment."""
        # cast: pyright would also allow a Mapping whose keys are the tuples
        pairs = cast(
            "Iterable[tuple[str, object]]",
            values.items() if isinstance(values, Mapping) else values,
        )
        for key, value in pairs:
            self[key] = value
        for name, item in kwargs.items():
            self[name] = item

    def copy(self) -> Self:
        """Return a shallow copy of the same class."""
        return type(self)(self)

    def __or__(self, other: Mapping[str, object]) -> Self:  # type: ignore[override]  # keeps the class
        """Return a copy with ``other`` applied on top."""
        result = self.copy()
        result.update(other)
        return result

    def __ror__(self, other: Mapping[str, object]) -> Self:  # type: ignore[override]  # keeps the class
        """Return ``other`` with this configuration applied on top."""
        result = type(self)(other)
        result.update(self)
        return result

    def __ior__(self, other: Mapping[str, object]) -> Self:  # type: ignore[override]  # converts values
        """Apply ``other`` on top of this configuration."""
        self.update(other)
        return self

    def __repr__(self) -> str:
        """Show the class and the keys, with secrets masked."""
        shown = {key: _shown(key, value) for key, value in self.items()}
        return f"{type(self).__name__}({shown!r})"

    def __str__(self) -> str:
        """Serialise as ``key1=value1;key2=value2``, with secrets masked."""
        return ";".join(f"{key}={_shown(key, value)}" for key, value in self.items())

    # -- pip-services accessors ----------------------------------------------------

    def get_keys(self) -> list[str]:
        """Return all keys (lower-case), in insertion order."""
        return list(self)

    def contains_key(self, key: str) -> bool:
        """Whether the key is set, whatever its case."""
        return key in self

    def put(self, key: str, value: object) -> None:
        """Set a key, as ``config[key] = value`` does."""
        self[key] = value

    def remove(self, key: str) -> None:
        """Remove a key if it is set."""
        self.pop(key, None)

    def append(self, values: Mapping[str, object] | None) -> None:
        """Set every key of ``values`` (None does nothing)."""
        if values is not None:
            self.update(values)

    def get_section_names(self) -> list[str]:
        """Return the names of the sections, in order of first appearance.

        A section name is the part of a key before its first dot; a key without a
        dot is a section name too (as in pip-services).
        """
        names: dict[str, None] = {}
        for key in self:
            names.setdefault(key.partition(".")[0], None)
        return list(names)

    def get_section(self, name: str) -> ConfigParams:
        """Return the keys under ``name.``, with that prefix removed.

        Args:
            name: the section name, e.g. ``"connection"`` or ``"connections.0"``.

        Returns:
            A new configuration, empty when there is no such section.
        """
        prefix = _key(name) + "."
        return ConfigParams(
            (key[len(prefix) :], value)
            for key, value in self.items()
            if key.startswith(prefix)
        )

    def add_section(self, name: str, section: Mapping[str, object]) -> None:
        """Set every key of ``section`` under ``name.``.

        Args:
            name: the section name.
            section: the keys to add, without the prefix.
        """
        for key, value in ConfigParams.of(section).items():
            self[f"{name}.{key}" if name else key] = value

    def override(self, config: Mapping[str, object] | None) -> Self:
        """Return a copy with the keys of ``config`` applied on top.

        Args:
            config: the values that win.

        Returns:
            A new configuration of the same class.
        """
        result = self.copy()
        result.append(config)
        return result

    def set_defaults(self, defaults: Mapping[str, object] | None) -> Self:
        """Return a copy where keys not set here take their value from ``defaults``.

        Args:
            defaults: the default values.

        Returns:
            A new configuration of the same class.
        """
        result = type(self)(defaults)
        result.update(self)
        return result

    def get_as_nullable_string(self, key: str) -> str | None:
        """Return the value of a key, or None when it is not set."""
        return self.get(key)

    def get_as_string(self, key: str) -> str:
        """Return the value of a key, or ``""`` when it is not set."""
        return self.get(key, "")

    def get_as_string_with_default(self, key: str, default_value: str) -> str:
        """Return the value of a key, or ``default_value`` when it is not set."""
        return self.get(key, default_value)

    def get_as_nullable_boolean(self, key: str) -> bool | None:
        """Return a key as a boolean, or None when unset or not a boolean.

        ``true/yes/y/t/on/1`` and ``false/no/n/f/off/0`` are accepted, in any case.
        """
        return to_boolean(self.get(key))

    def get_as_boolean(self, key: str) -> bool:
        """Return a key as a boolean, or False when unset or not a boolean."""
        return self.get_as_boolean_with_default(key, False)

    def get_as_boolean_with_default(self, key: str, default_value: bool) -> bool:
        """Return a key as a boolean, or ``default_value`` when unset or invalid."""
        value = to_boolean(self.get(key))
        return default_value if value is None else value

    def get_as_nullable_integer(self, key: str) -> int | None:
        """Return a key as an integer, or None when unset or not a number.

        A decimal value is truncated (``"12.7"`` reads as 12), as in pip-services.
        """
        return to_integer(self.get(key))

    def get_as_integer(self, key: str) -> int:
        """Return a key as an integer, or 0 when unset or not a number."""
        return self.get_as_integer_with_default(key, 0)

    def get_as_integer_with_default(self, key: str, default_value: int) -> int:
        """Return a key as an integer, or ``default_value`` when unset or invalid."""
        value = to_integer(self.get(key))
        return default_value if value is None else value

    def get_as_nullable_float(self, key: str) -> float | None:
        """Return a key as a finite float, or None when unset or not a number."""
        return to_float(self.get(key))

    def get_as_float(self, key: str) -> float:
        """Return a key as a float, or 0.0 when unset or not a number."""
        return self.get_as_float_with_default(key, 0.0)

    def get_as_float_with_default(self, key: str, default_value: float) -> float:
        """Return a key as a float, or ``default_value`` when unset or invalid."""
        value = to_float(self.get(key))
        return default_value if value is None else value

    def __reduce__(self) -> tuple[type[Self], tuple[dict[str, str]]]:
        """Pickle as the class and a plain dict of its items."""
        return (type(self), (dict(self),))


def ordered_section_names(config: ConfigParams) -> list[str]:
    """Section names, in numeric order when they are all numbers (``0``, ``1``, ``10``).

    ``connections.N`` and ``credentials.N`` are lists: when every name is a number,
    order by number, so ``connections.10`` comes after ``connections.9`` whatever
    order the keys were written in. Other names keep their order of appearance.
    """
    names = config.get_section_names()
    if names and all(name.isdecimal() for name in names):
        names.sort(key=int)
    return names
