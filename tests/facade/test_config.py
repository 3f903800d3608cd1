"""ConfigParams: the pip-services configuration map (dotted, case-insensitive keys)."""

from __future__ import annotations

import datetime
import pickle
import re
from collections.abc import Mapping

import pytest

from trio_mqttconn._config import (
    ConfigParams,
    ordered_section_names,
    to_boolean,
    to_float,
    to_integer,
)


def exactly(message: str) -> str:
    return f"^{re.escape(message)}$"


# ---------------------------------------------------------------------------
# construction


def test_config_from_tuples_converts_values_to_text() -> None:
    config = ConfigParams.from_tuples(
        "connection.host",
        "localhost",
        "connection.port",
        1883,
        "options.retry_connect",
        True,
        "options.clean_start",
        False,
        "options.ratio",
        0.5,
        "options.when",
        datetime.date(2024, 1, 2),
        "options.unset",
        None,
    )
    assert dict(config) == {
        "connection.host": "localhost",
        "connection.port": "1883",
        "options.retry_connect": "true",
        "options.clean_start": "false",
        "options.ratio": "0.5",
        "options.when": "2024-01-02",
    }


def test_config_from_tuples_odd_count_raises() -> None:
    with pytest.raises(
        ValueError, match=exactly("from_tuples needs key, value pairs, not 3 arguments")
    ):
        ConfigParams.from_tuples("a", 1, "b")


def test_config_is_a_dict_and_a_mapping() -> None:
    config = ConfigParams.from_tuples("a", 1)
    assert isinstance(config, dict)
    assert isinstance(config, Mapping)
    assert config == {"a": "1"}


def test_config_from_string_parses_pairs() -> None:
    config = ConfigParams.from_string(" a.b = 1 ;c=2;;novalue; =x;d=e=f")
    assert dict(config) == {"a.b": "1", "c": "2", "d": "e=f"}


def test_config_from_string_none_is_empty() -> None:
    assert ConfigParams.from_string(None) == {}
    assert ConfigParams.from_string("") == {}


def test_config_from_value_flattens_nested_mappings_and_lists() -> None:
    config = ConfigParams.from_value(
        {
            "Connections": [{"host": "a", "port": 1883}, {"Host": "b"}],
            "options": {"retry_connect": False, "empty": None},
            "client_id": "c1",
        }
    )
    assert dict(config) == {
        "connections.0.host": "a",
        "connections.0.port": "1883",
        "connections.1.host": "b",
        "options.retry_connect": "false",
        "client_id": "c1",
    }


def test_config_from_value_none_is_empty() -> None:
    assert ConfigParams.from_value(None) == {}


def test_config_init_accepts_pairs() -> None:
    assert ConfigParams([("A", 1), ("b", "x")]) == {"a": "1", "b": "x"}


def test_config_of_returns_same_instance() -> None:
    config = ConfigParams.from_tuples("a", 1)
    assert ConfigParams.of(config) is config


def test_config_of_converts_mapping_string_and_none() -> None:
    foreign: dict[str, object] = {"Connection.Port": 1883, "nested": {"x": 1}}
    assert ConfigParams.of(foreign) == {"connection.port": "1883", "nested.x": "1"}
    assert ConfigParams.of("a=1;b=2") == {"a": "1", "b": "2"}
    assert ConfigParams.of(None) == {}


def test_config_of_rejects_other_types() -> None:
    with pytest.raises(
        TypeError, match=exactly("expected a mapping of configuration keys, not int")
    ):
        ConfigParams.of(42)  # type: ignore[arg-type]  # what the test is about


def test_config_merge_configs_later_wins() -> None:
    merged = ConfigParams.merge_configs({"a": 1, "b": 1}, None, {"B": 2, "c": 3})
    assert merged == {"a": "1", "b": "2", "c": "3"}
    assert type(merged) is ConfigParams


# ---------------------------------------------------------------------------
# case-insensitive dict protocol


def test_config_keys_are_case_insensitive() -> None:
    config = ConfigParams()
    config["Connection.Host"] = "h"
    assert config["connection.host"] == "h"
    assert config["CONNECTION.HOST"] == "h"
    assert "connection.HOST" in config
    assert 42 not in config  # type: ignore[comparison-overlap]  # what is tested
    assert list(config) == ["connection.host"]
    del config["Connection.host"]
    assert config == {}


def test_config_setting_none_removes_key() -> None:
    config = ConfigParams.from_tuples("a", 1)
    config["A"] = None
    assert config == {}
    config["b"] = None  # removing what is not there is fine
    assert config == {}


def test_config_setting_mapping_flattens() -> None:
    config = ConfigParams()
    config["connection"] = {"Host": "h", "port": 1}
    config["list"] = ("x", "y")
    assert dict(config) == {
        "connection.host": "h",
        "connection.port": "1",
        "list.0": "x",
        "list.1": "y",
    }


def test_config_get_and_pop() -> None:
    config = ConfigParams.from_tuples("A", "1", "b", "2")
    assert config.get("a") == "1"
    assert config.get("missing") is None
    assert config.get("missing", "d") == "d"
    assert config.get("missing", 5) == 5
    assert config.pop("B") == "2"
    assert config.pop("b", "gone") == "gone"
    assert config.pop("b", None) is None
    with pytest.raises(KeyError):
        config.pop("b")


def test_config_setdefault_keeps_existing_and_converts_new() -> None:
    config = ConfigParams.from_tuples("a", "1")
    assert config.setdefault("A", "9") == "1"
    assert config.setdefault("b", 2) == "2"
    assert config == {"a": "1", "b": "2"}
    with pytest.raises(KeyError):
        config.setdefault("c")


def test_config_update_converts_mapping_pairs_and_keywords() -> None:
    config = ConfigParams()
    config.update({"A": 1})
    config.update([("B", True)])
    config.update(C=2.5)
    assert config == {"a": "1", "b": "true", "c": "2.5"}


def test_config_copy_keeps_class() -> None:
    class Sub(ConfigParams):
        pass

    original = Sub.from_tuples("a", 1)
    copied = original.copy()
    assert type(copied) is Sub
    assert copied == original
    assert copied is not original


def test_config_or_operators_normalise_and_keep_class() -> None:
    config = ConfigParams.from_tuples("a", 1)
    merged = config | {"A": 2, "B": 3}
    assert type(merged) is ConfigParams
    assert merged == {"a": "2", "b": "3"}
    assert config == {"a": "1"}
    right = {"A": 0, "c": 1} | config
    assert type(right) is ConfigParams
    assert right == {"a": "1", "c": "1"}
    config |= {"D": 4}
    assert config == {"a": "1", "d": "4"}


def test_config_pickle_round_trip() -> None:
    config = ConfigParams.from_tuples("a.b", 1)
    restored = pickle.loads(pickle.dumps(config))
    assert type(restored) is ConfigParams
    assert restored == config


# ---------------------------------------------------------------------------
# repr and str never show secrets


@pytest.mark.parametrize(
    "key",
    [
        "credential.password",
        "credential.pass",
        "credentials.0.password",
        "options.ssl_key_password",
        "access_key",
        "client_key",
        "secret_key",
        "token",
        "api_secret",
        "auth_token",
    ],
)
def test_config_repr_masks_secret_keys(key: str) -> None:
    config = ConfigParams.from_tuples(key, "hunter2", "user", "bob")
    assert "hunter2" not in repr(config)
    assert "hunter2" not in str(config)
    assert "bob" in repr(config)


def test_config_repr_masks_password_in_uri() -> None:
    config = ConfigParams.from_tuples(
        "connection.uri", "mqtt://user:hunter2@broker:1883,mqtt://u:p/x@b"
    )
    assert "hunter2" not in repr(config)
    assert "p/x" not in str(config)
    assert repr(config) == "ConfigParams({'connection.uri': 'mqtt://user:***@b'})"


def test_config_str_serialises_pairs() -> None:
    config = ConfigParams.from_tuples("a", 1, "b.c", "x", "credential.password", "s")
    assert str(config) == "a=1;b.c=x;credential.password=***"
    assert repr(ConfigParams()) == "ConfigParams({})"


# ---------------------------------------------------------------------------
# pip-services accessors


def test_config_pip_services_accessors() -> None:
    config = ConfigParams()
    config.put("A", 1)
    assert config.contains_key("a")
    assert config.get_keys() == ["a"]
    config.append({"b": 2})
    config.append(None)
    config.remove("A")
    config.remove("missing")
    assert config == {"b": "2"}


def test_config_get_section_names_in_order_of_appearance() -> None:
    config = ConfigParams.from_tuples(
        "connection.host", "h", "Options.x", 1, "connection.port", 1, "client_id", "c"
    )
    assert config.get_section_names() == ["connection", "options", "client_id"]


def test_config_get_section_strips_prefix() -> None:
    config = ConfigParams.from_tuples(
        "connections.0.host", "a", "connections.1.host", "b", "connectionsx.y", 1
    )
    section = config.get_section("Connections")
    assert type(section) is ConfigParams
    assert section == {"0.host": "a", "1.host": "b"}
    assert section.get_section("1") == {"host": "b"}
    assert config.get_section("missing") == {}


def test_config_add_section() -> None:
    config = ConfigParams()
    config.add_section("Connection", {"Host": "h"})
    config.add_section("", {"top": 1})
    assert config == {"connection.host": "h", "top": "1"}


def test_config_override_and_set_defaults() -> None:
    config = ConfigParams.from_tuples("a", 1, "b", 1)
    assert config.override({"B": 2, "c": 3}) == {"a": "1", "b": "2", "c": "3"}
    assert config.override(None) == config
    assert config.set_defaults({"B": 2, "c": 3}) == {"a": "1", "b": "1", "c": "3"}
    assert config.set_defaults(None) == config
    assert config == {"a": "1", "b": "1"}  # unchanged


def test_config_string_getters() -> None:
    config = ConfigParams.from_tuples("a", "x")
    assert config.get_as_nullable_string("A") == "x"
    assert config.get_as_nullable_string("b") is None
    assert config.get_as_string("b") == ""
    assert config.get_as_string_with_default("b", "d") == "d"
    assert config.get_as_string_with_default("a", "d") == "x"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("true", True),
        ("TRUE", True),
        (" yes ", True),
        ("1", True),
        ("t", True),
        ("on", True),
        ("false", False),
        ("No", False),
        ("0", False),
        ("off", False),
        ("maybe", None),
        ("", None),
    ],
)
def test_config_boolean_getters(text: str, expected: bool | None) -> None:
    config = ConfigParams.from_tuples("k", text)
    assert config.get_as_nullable_boolean("k") is expected
    assert config.get_as_boolean("k") is bool(expected)
    assert config.get_as_boolean_with_default("k", True) is (
        True if expected is None else expected
    )


def test_config_boolean_getter_missing() -> None:
    config = ConfigParams()
    assert config.get_as_nullable_boolean("k") is None
    assert config.get_as_boolean("k") is False
    assert config.get_as_boolean_with_default("k", True) is True


@pytest.mark.parametrize(
    ("text", "expected"),
    [("1883", 1883), (" -2 ", -2), ("12.7", 12), ("1e3", 1000), ("abc", None)],
)
def test_config_integer_getters(text: str, expected: int | None) -> None:
    config = ConfigParams.from_tuples("k", text)
    assert config.get_as_nullable_integer("k") == expected
    assert config.get_as_integer("k") == (expected or 0)
    assert config.get_as_integer_with_default("k", 7) == (
        7 if expected is None else expected
    )


def test_config_integer_getter_missing() -> None:
    assert ConfigParams().get_as_nullable_integer("k") is None
    assert ConfigParams().get_as_integer("k") == 0


@pytest.mark.parametrize(
    ("text", "expected"),
    [("0.5", 0.5), ("3", 3.0), ("abc", None), ("nan", None), ("inf", None)],
)
def test_config_float_getters(text: str, expected: float | None) -> None:
    config = ConfigParams.from_tuples("k", text)
    assert config.get_as_nullable_float("k") == expected
    assert config.get_as_float("k") == (expected or 0.0)
    assert config.get_as_float_with_default("k", 1.5) == (
        1.5 if expected is None else expected
    )


def test_config_converters_accept_none() -> None:
    assert to_boolean(None) is None
    assert to_integer(None) is None
    assert to_float(None) is None


def test_config_ordered_section_names_sorts_numbers() -> None:
    config = ConfigParams.from_tuples("10.host", "c", "2.host", "b", "0.host", "a")
    assert ordered_section_names(config) == ["0", "2", "10"]
    mixed = ConfigParams.from_tuples("b.x", 1, "a.x", 1, "1.x", 1)
    assert ordered_section_names(mixed) == ["b", "a", "1"]
    assert ordered_section_names(ConfigParams()) == []
