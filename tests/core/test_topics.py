"""Topic name/filter validation and matching (MQTT 5.0 section 4.7 and 4.8)."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, strategies as st

from trio_mqttconn._topics import (
    MAX_TOPIC_LENGTH,
    parse_shared_subscription,
    topic_matches,
    validate_topic_filter,
    validate_topic_name,
)

LONG_ASCII = "a" * (MAX_TOPIC_LENGTH + 1)
LONG_UTF8 = "\u00e9" * 32768  # 2 bytes each: 65536 bytes in 32768 characters
SHOWN_ASCII = repr("a" * 64) + "..."
SHOWN_UTF8 = repr("\u00e9" * 64) + "..."


def exactly(message: str) -> str:
    return f"^{re.escape(message)}$"


# ---------------------------------------------------------------------------
# topic names

VALID_NAMES = [
    "a",
    "/",
    "//",
    "/finance",
    "finance/",
    "sport/tennis/player1",
    "Accounts payable",  # [v5:MQTT-4.7.3] spaces are allowed
    "$SYS/broker/uptime",
    "$share",  # only "$share/..." filters are special, and not as names
    "caf\u00e9/\U0001f600",
    "a" * MAX_TOPIC_LENGTH,  # [v5:MQTT-4.7.3-3] exactly the maximum
    "\u00e9" * (MAX_TOPIC_LENGTH // 2),  # 65534 bytes
]


@pytest.mark.parametrize("topic", VALID_NAMES)
def test_validate_topic_name_accepts_valid_names(topic: str) -> None:
    validate_topic_name(topic)


INVALID_NAMES = [
    # [v5:MQTT-4.7.3-1]
    ("", "invalid topic name '': it must be at least one character long"),
    # [v5:MQTT-4.7.3-2]
    (
        "a\0b",
        "invalid topic name 'a\\x00b': it must not contain the null character U+0000",
    ),
    # [v5:MQTT-4.7.3-3]
    (
        LONG_ASCII,
        f"invalid topic name {SHOWN_ASCII}: it is 65536 bytes long in UTF-8, "
        "shorten it to at most 65535",
    ),
    (
        LONG_UTF8,
        f"invalid topic name {SHOWN_UTF8}: it is 65536 bytes long in UTF-8, "
        "shorten it to at most 65535",
    ),
    # [v5:MQTT-1.5.4-1]
    (
        "a\ud800",
        "invalid topic name 'a\\ud800': it must be valid UTF-8, "
        "remove the unpaired surrogate characters",
    ),
    # [v5:MQTT-3.3.2-2] [v5:MQTT-4.7.0-1]
    *(
        (
            name,
            f"invalid topic name {name!r}: wildcards '+' and '#' are only allowed "
            "in topic filters, remove them from the topic name",
        )
        for name in ["+", "#", "sport/+", "sport/#", "sport/tennis+", "a#b"]
    ),
]


@pytest.mark.parametrize(("topic", "message"), INVALID_NAMES)
def test_validate_topic_name_rejects_invalid_names(topic: str, message: str) -> None:
    with pytest.raises(ValueError, match=exactly(message)):
        validate_topic_name(topic)


# ---------------------------------------------------------------------------
# topic filters

VALID_FILTERS = [
    # [v5:MQTT-4.7.1] examples of section 4.7.1.2 and 4.7.1.3
    "#",
    "sport/#",
    "sport/tennis/player1/#",
    "+",
    "+/tennis/#",
    "sport/+/player1",
    "sport/tennis/+",
    "+/+",
    "/+",
    "/#",
    "//",
    "$SYS/#",
    "$SYS/monitor/+",
    "a/b",
    "a" * MAX_TOPIC_LENGTH,
    # [v5:MQTT-4.8.2-1] [v5:MQTT-4.8.2-2] shared subscriptions
    "$share/consumer1/sport/tennis/+",
    "$share/g/#",
    "$share/g/+",
    "$share/g//",
    "$share/g/$SYS/#",
    "$share",  # not a shared subscription: an ordinary one-level filter
    "$sharex/a",
]


@pytest.mark.parametrize("topic_filter", VALID_FILTERS)
def test_validate_topic_filter_accepts_valid_filters(topic_filter: str) -> None:
    validate_topic_filter(topic_filter)


def _filter_error(topic_filter: str, why: str) -> tuple[str, str]:
    return topic_filter, f"invalid topic filter {topic_filter!r}: {why}"


HASH_NOT_ALONE = "'#' must be a whole level on its own, put it after a '/'"
HASH_NOT_LAST = "'#' must be the last level, remove the levels after it"
PLUS_NOT_ALONE = "'+' must be a whole level on its own, separate it with '/'"
SHARED_FORM = "use $share/<share name>/<filter>"
EMPTY_SHARE = f"the share name must not be empty, {SHARED_FORM}"
WILD_SHARE = f"the share name must not contain '+' or '#', {SHARED_FORM}"
NO_INNER = f"a shared subscription needs a filter after the share name, {SHARED_FORM}"

INVALID_FILTERS = [
    # [v5:MQTT-4.7.3-1]
    _filter_error("", "it must be at least one character long"),
    # [v5:MQTT-4.7.3-2]
    _filter_error("a/\0", "it must not contain the null character U+0000"),
    # [v5:MQTT-4.7.3-3]
    (
        LONG_ASCII,
        f"invalid topic filter {SHOWN_ASCII}: it is 65536 bytes long in UTF-8, "
        "shorten it to at most 65535",
    ),
    # [v5:MQTT-1.5.4-1]
    _filter_error(
        "\udfff/#",
        "it must be valid UTF-8, remove the unpaired surrogate characters",
    ),
    # [v5:MQTT-4.7.1-1]
    _filter_error("sport/tennis#", HASH_NOT_ALONE),
    _filter_error("#sport", HASH_NOT_ALONE),
    _filter_error("##", HASH_NOT_ALONE),
    _filter_error("sport/tennis/#/ranking", HASH_NOT_LAST),
    _filter_error("#/", HASH_NOT_LAST),
    _filter_error("#/#", HASH_NOT_LAST),
    # [v5:MQTT-4.7.1-2]
    _filter_error("sport+", PLUS_NOT_ALONE),
    _filter_error("sport/+tennis/#", PLUS_NOT_ALONE),
    _filter_error("++", PLUS_NOT_ALONE),
    _filter_error("a/b/c+", PLUS_NOT_ALONE),
    # [v5:MQTT-4.8.2-1] [v5:MQTT-4.8.2-2]
    _filter_error("$share/", EMPTY_SHARE),
    _filter_error("$share//a", EMPTY_SHARE),
    _filter_error("$share/g+/a", WILD_SHARE),
    _filter_error("$share/#/a", WILD_SHARE),
    _filter_error("$share/g", NO_INNER),
    _filter_error("$share/g/", NO_INNER),
    _filter_error("$share/g/a+", PLUS_NOT_ALONE),
    _filter_error("$share/g/#/a", HASH_NOT_LAST),
]


@pytest.mark.parametrize(("topic_filter", "message"), INVALID_FILTERS)
def test_validate_topic_filter_rejects_invalid_filters(
    topic_filter: str, message: str
) -> None:
    with pytest.raises(ValueError, match=exactly(message)):
        validate_topic_filter(topic_filter)


# ---------------------------------------------------------------------------
# shared subscriptions


@pytest.mark.parametrize(
    ("topic_filter", "expected"),
    [
        ("sport/#", (None, "sport/#")),
        ("$share", (None, "$share")),
        ("$SHARE/g/a", (None, "$SHARE/g/a")),
        ("$share/consumer1/sport/tennis/+", ("consumer1", "sport/tennis/+")),
        ("$share/g/#", ("g", "#")),
        ("$share/g//", ("g", "/")),
    ],
)
def test_parse_shared_subscription_splits_share_name(
    topic_filter: str, expected: tuple[str | None, str]
) -> None:
    assert parse_shared_subscription(topic_filter) == expected


@pytest.mark.parametrize(
    ("topic_filter", "why"),
    [
        ("$share/", EMPTY_SHARE),
        ("$share/+/a", WILD_SHARE),
        ("$share/g", NO_INNER),
    ],
)
def test_parse_shared_subscription_rejects_malformed_shares(
    topic_filter: str, why: str
) -> None:
    message = f"invalid topic filter {topic_filter!r}: {why}"
    with pytest.raises(ValueError, match=exactly(message)):
        parse_shared_subscription(topic_filter)


# ---------------------------------------------------------------------------
# matching

MATCHES = [
    # [v5:MQTT-4.7.1] section 4.7.1.2, multi-level wildcard
    ("sport/tennis/player1/#", "sport/tennis/player1", True),
    ("sport/tennis/player1/#", "sport/tennis/player1/ranking", True),
    ("sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon", True),
    ("sport/tennis/player1/#", "sport/tennis/player2", False),
    ("sport/tennis/player1/#", "sport/tennis", False),
    ("sport/#", "sport", True),
    ("#", "sport/tennis/player1", True),
    ("#", "/", True),
    # section 4.7.1.3, single-level wildcard
    ("sport/tennis/+", "sport/tennis/player1", True),
    ("sport/tennis/+", "sport/tennis/player2", True),
    ("sport/tennis/+", "sport/tennis/player1/ranking", False),
    ("sport/+", "sport", False),
    ("sport/+", "sport/", True),
    ("+/+", "/finance", True),
    ("/+", "/finance", True),
    ("+", "/finance", False),
    ("+", "finance", True),
    ("sport/+/player1", "sport/tennis/player1", True),
    ("sport/+/player1", "sport/tennis/player2", False),
    ("+/tennis/#", "sport/tennis", True),
    ("+/tennis/#", "sport/tennis/player1/score", True),
    ("+/tennis/#", "sport/golf", False),
    ("+/+/+", "//", True),
    ("+", "", True),
    # section 4.7.2, topics beginning with $  [v5:MQTT-4.7.2-1]
    ("#", "$SYS/monitor/Clients", False),
    ("#", "$SYS", False),
    ("+/monitor/Clients", "$SYS/monitor/Clients", False),
    ("+", "$SYS", False),
    ("$SYS/#", "$SYS/monitor/Clients", True),
    ("$SYS/#", "$SYS", True),
    ("$SYS/monitor/+", "$SYS/monitor/Clients", True),
    ("$SYS/monitor/Clients", "$SYS/monitor/Clients", True),
    ("a/#", "a/$SYS", True),  # only the first level is special
    ("a/+", "a/$x", True),
    # section 4.7.3, topic semantics
    ("ACCOUNTS", "Accounts", False),
    ("Accounts", "Accounts", True),
    ("/finance", "finance", False),
    ("finance", "/finance", False),
    ("Accounts payable", "Accounts payable", True),
    ("a/b", "a/b/c", False),
    ("a/b/c", "a/b", False),
    ("a/b", "a/c", False),
    # shared subscriptions match like their inner filter
    ("$share/g/sport/+", "sport/tennis", True),
    ("$share/g/sport/+", "sport", False),
    ("$share/g/#", "anything/at/all", True),
    ("$share/g/#", "$SYS/x", False),
    ("$share/g/$SYS/#", "$SYS/x", True),
    ("$share/g/exact", "exact", True),
    ("$share/g/exact", "$share/g/exact", False),
]


@pytest.mark.parametrize(("topic_filter", "topic", "expected"), MATCHES)
def test_topic_matches_follows_the_spec_examples(
    topic_filter: str, topic: str, expected: bool
) -> None:
    assert topic_matches(topic_filter, topic) is expected


def test_topic_matches_never_raises_on_a_malformed_shared_filter() -> None:
    assert topic_matches("$share/g", "g") is False


# An independent oracle: a filter as a regular expression over the topic.
def _filter_regex(topic_filter: str) -> re.Pattern[str]:
    levels = topic_filter.split("/")
    pattern = ""
    for index, level in enumerate(levels):
        sep = "/" if index else ""
        if level == "#":
            pattern += "(?:/.*)?" if index else ".*"
        elif level == "+":
            pattern += sep + "[^/]*"
        else:
            pattern += sep + re.escape(level)
    if levels[0] in ("+", "#"):
        pattern = "(?!\\$)" + pattern
    return re.compile(pattern)


LEVELS = st.sampled_from(["a", "b", "", "$SYS", "$x", "a$"])


@st.composite
def topic_filters(draw: st.DrawFn) -> str:
    levels = draw(st.lists(st.one_of(LEVELS, st.just("+")), min_size=0, max_size=4))
    if not levels or draw(st.booleans()):
        levels.append("#")
    return "/".join(levels) or "/"  # a lone empty level would be ""


TOPICS = st.lists(LEVELS, min_size=1, max_size=5).map("/".join)


@given(topic_filter=topic_filters(), topic=TOPICS)
def test_topic_matches_agrees_with_a_regex_oracle(
    topic_filter: str, topic: str
) -> None:
    validate_topic_filter(topic_filter)
    expected = _filter_regex(topic_filter).fullmatch(topic) is not None
    assert topic_matches(topic_filter, topic) is expected
    assert topic_matches("$share/g/" + topic_filter, topic) is expected


def test_validated_topic_names_are_remembered_within_a_bound(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from trio_mqttconn import _topics

    monkeypatch.setattr(_topics, "_valid_names", set())
    monkeypatch.setattr(_topics, "_VALID_NAMES_MAX", 2)
    validate_topic_name("a")
    validate_topic_name("a")  # remembered
    validate_topic_name("b")
    assert _topics._valid_names == {"a", "b"}
    validate_topic_name("c")  # full: forget, then remember the new one
    assert _topics._valid_names == {"c"}
    with pytest.raises(ValueError, match="wildcards"):
        validate_topic_name("d/#")
    assert "d/#" not in _topics._valid_names


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (5, "int (5)"),
        (b"a/b", "bytes (b'a/b')"),
        (None, "NoneType (None)"),
        (["a"], "list (['a'])"),
    ],
)
def test_validate_topic_rejects_other_types_naming_the_argument(
    value: object, shown: str
) -> None:
    # Issue #9: a topic that is an int, bytes or None fails at the call.
    with pytest.raises(
        TypeError, match=re.escape(f"topic name must be a str, not {shown}")
    ):
        validate_topic_name(value)  # type: ignore[arg-type]
    with pytest.raises(
        TypeError, match=re.escape(f"topic filter must be a str, not {shown}")
    ):
        validate_topic_filter(value)  # type: ignore[arg-type]
