"""aiomqtt's Topic and Wildcard: validation messages and matching, as aiomqtt 2.5.1."""

from __future__ import annotations

import dataclasses
import re

import pytest

from trio_mqttconn.aiomqtt import Topic, TopicLike, Wildcard, WildcardLike
from trio_mqttconn.aiomqtt.topic import MAX_TOPIC_LENGTH


def exactly(message: str) -> str:
    return f"^{re.escape(message)}$"


# ---------------------------------------------------------------------------- Topic


@pytest.mark.parametrize("value", [True, 1.0, None, [], b"a/b", 1])
def test_topic_rejects_non_strings(value: object) -> None:
    with pytest.raises(TypeError, match=r"^Topic must be of type str$"):
        Topic(value)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "value", ["a/b/#", "a/+/c", "#", "+", "", "a" * (MAX_TOPIC_LENGTH + 1), "a+b", "a#"]
)
def test_topic_rejects_invalid_values_with_aiomqtts_message(value: str) -> None:
    with pytest.raises(ValueError, match=exactly(f"Invalid topic: {value}")):
        Topic(value)


@pytest.mark.parametrize(
    "value",
    [
        "a",
        "a/b/c",
        "/",
        "a//b",
        "/leading",
        "trailing/",
        "$SYS/broker/load",
        "$share/group/a",
        "a" * MAX_TOPIC_LENGTH,
        "with space/é",
    ],
)
def test_topic_accepts_valid_values(value: str) -> None:
    topic = Topic(value)
    assert topic.value == value
    assert str(topic) == value


# ------------------------------------------------------------------------- Wildcard


@pytest.mark.parametrize("value", [True, 1.0, None, [], b"a/#"])
def test_wildcard_rejects_non_strings(value: object) -> None:
    with pytest.raises(TypeError, match=r"^Wildcard must be of type str$"):
        Wildcard(value)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "value",
    [
        "a/#/c",
        "a/b+/c",
        "a/b/#c",
        "",
        "a" * (MAX_TOPIC_LENGTH + 1),
        "#/",
        "a/##",
        "++",
        "a/+#",
        "$share/#/a",
    ],
)
def test_wildcard_rejects_invalid_values_with_aiomqtts_message(value: str) -> None:
    with pytest.raises(ValueError, match=exactly(f"Invalid wildcard: {value}")):
        Wildcard(value)


@pytest.mark.parametrize(
    "value",
    ["#", "+", "a/#", "+/+/+", "a/+/c", "/#", "a/b/c", "$share/group/a/#", "+/"],
)
def test_wildcard_accepts_valid_values(value: str) -> None:
    assert Wildcard(value).value == value


# ------------------------------------------------------------------------- matching

# aiomqtt's own table (tests/test_topic.py), plus the edge cases of its algorithm.
MATCHES = [
    ("a/b/c", "a/b/c"),
    ("a/b/c", "a/+/c"),
    ("a/b/c", "+/+/+"),
    ("a/b/c", "+/#"),
    ("a/b/c", "#"),
    ("a/b/c", "a/b/c/#"),
    ("a/b/c", "$share/group/a/b/c"),
    ("a/b/c", "$share/group/a/b/+"),
    ("a", "a/#"),
    ("a/b", "a/+/#"),
    ("a/", "a/+"),
    ("/a", "+/a"),
    ("a//b", "a/+/b"),
]
NON_MATCHES = [
    ("a/b/c", "abc"),
    ("a/b/c", "a/b"),
    ("a/b/c", "a/b/c/d"),
    ("a/b/c", "a/b/c/d/#"),
    ("a/b/c", "a/b/z"),
    ("a/b/c", "a/b/c/+"),
    ("a/b/c", "$share/a/b/c"),
    ("a/b/c", "$test/group/a/b/c"),
    ("a/b/c", "$share/group"),
    ("a", "a/+"),
    ("A/b", "a/b"),
]


@pytest.mark.parametrize(("topic", "wildcard"), MATCHES)
def test_topic_matches(topic: str, wildcard: str) -> None:
    assert Topic(topic).matches(wildcard)
    assert Topic(topic).matches(Wildcard(wildcard))


@pytest.mark.parametrize(("topic", "wildcard"), NON_MATCHES)
def test_topic_does_not_match(topic: str, wildcard: str) -> None:
    assert not Topic(topic).matches(wildcard)
    assert not Topic(topic).matches(Wildcard(wildcard))


def test_topic_matches_accepts_a_topic_as_wildcard() -> None:
    assert Topic("a/b").matches(Topic("a/b"))
    assert not Topic("a/b").matches(Topic("a/c"))


def test_topic_matches_validates_a_string_wildcard() -> None:
    with pytest.raises(ValueError, match=r"^Invalid wildcard: a/#/b$"):
        Topic("a/b").matches("a/#/b")


def test_topic_matches_thousands_of_levels_without_recursion_error() -> None:
    levels = "/".join(["x"] * 20000)
    assert Topic(levels).matches("+/" * 19999 + "+")
    assert Topic(levels).matches("x/" * 19999 + "#")
    assert not Topic(levels).matches("x/" * 20000 + "x")


# --------------------------------------------------------- aiomqtt's deviations (kept)


def test_topic_deviation_dollar_topics_match_leading_wildcards() -> None:
    # [v5:MQTT-4.7.2-1] says they must not; aiomqtt's matcher lets them.
    assert Topic("$SYS/broker/load").matches("#")
    assert Topic("$SYS/broker/load").matches("+/broker/load")


def test_topic_deviation_length_counts_characters_not_bytes() -> None:
    # [v5:MQTT-4.7.3-3] limits UTF-8 bytes; aiomqtt counts characters.
    value = "\u00e9" * MAX_TOPIC_LENGTH  # 131070 bytes
    assert Topic(value).value == value
    assert Wildcard(value).value == value


def test_topic_deviation_null_and_surrogates_are_accepted() -> None:
    # [v5:MQTT-4.7.3-2] and [v5:MQTT-1.5.4-1] forbid them; aiomqtt does not check.
    assert Topic("a\x00b").value == "a\x00b"
    assert Wildcard("a/\ud800").value == "a/\ud800"


def test_wildcard_deviation_share_name_is_not_checked() -> None:
    # [v5:MQTT-4.8.2-1] / [v5:MQTT-4.8.2-2]: a share name and a filter are required,
    # and the share name must not contain wildcards; aiomqtt accepts both.
    assert Wildcard("$share/+/a").value == "$share/+/a"
    assert Wildcard("$share/group").value == "$share/group"
    assert Topic("x/a").matches("$share/+/+/a")


# --------------------------------------------------------------- dataclass behaviour


def test_topic_is_a_frozen_dataclass_with_value_equality() -> None:
    topic = Topic("a/b")
    assert topic == Topic("a/b")
    assert hash(topic) == hash(Topic("a/b"))
    assert topic != Wildcard("a/b")
    assert repr(topic) == "Topic(value='a/b')"
    assert repr(Wildcard("a/#")) == "Wildcard(value='a/#')"
    assert isinstance(topic, Wildcard)
    with pytest.raises(dataclasses.FrozenInstanceError):
        topic.value = "c"  # type: ignore[misc]
    assert dataclasses.replace(topic, value="c") == Topic("c")
    with pytest.raises(ValueError, match=r"^Invalid topic: c/#$"):
        dataclasses.replace(topic, value="c/#")


def test_topic_like_aliases_accept_strings_and_objects() -> None:
    assert isinstance("a", TopicLike)
    assert isinstance(Topic("a"), TopicLike)
    assert isinstance(Wildcard("a/#"), WildcardLike)
    assert not isinstance(1, WildcardLike)
