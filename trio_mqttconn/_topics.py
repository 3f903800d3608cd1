"""Topic name and topic filter validation and matching.

A *topic name* is what a PUBLISH is sent to (``sport/tennis/player1``); a *topic
filter* is what a SUBSCRIBE asks for and may hold the wildcards ``+`` (exactly one
level) and ``#`` (this level and every level below it, including none at all).
A filter of the form ``$share/<share name>/<filter>`` is an MQTT 5 shared
subscription: the broker delivers each message to one member of the group, and the
client matches it like ``<filter>``.

Validation here covers the rules a client must obey before sending (the MUSTs of
section 4.7 and 4.8 of MQTT 5.0; MQTT 3.1.1 section 4.7 has the same rules):

* names and filters are 1..65535 bytes of well-formed UTF-8 without U+0000;
* names never hold ``+`` or ``#``;
* in filters ``+`` is a whole level and ``#`` is a whole level and the last one;
* a shared filter has a non-empty share name without ``/ + #`` and a non-empty
  filter after it.

Matching assumes valid inputs and never raises: it is on the receive hot path.
"""

from __future__ import annotations

__all__ = [
    "MAX_TOPIC_LENGTH",
    "parse_shared_subscription",
    "topic_matches",
    "validate_topic_filter",
    "validate_topic_name",
]

MAX_TOPIC_LENGTH = 65535
"""Longest topic name or filter, in UTF-8 bytes (a two-byte length prefix)."""

_SHARE_PREFIX = "$share/"
_SHARED_FORM = "use $share/<share name>/<filter>"
# Longer values are cut in error messages: a 65 KiB repr helps nobody.
_SHOWN_CHARS = 64


def _show(value: str) -> str:
    if len(value) <= _SHOWN_CHARS:
        return repr(value)
    return f"{value[:_SHOWN_CHARS]!r}..."


def _check_common(value: str, kind: str) -> None:
    # Rules shared by names and filters, cheapest first; ASCII needs no encoding.
    if not isinstance(value, str):
        raise TypeError(
            f"{kind} must be a str, not {type(value).__name__} ({value!r:.60})"
        )
    if not value:
        # [v5:MQTT-4.7.3-1]
        raise ValueError(
            f"invalid {kind} {value!r}: it must be at least one character long"
        )
    if value.isascii():
        size = len(value)
    else:
        try:
            size = len(value.encode("utf-8"))
        except UnicodeEncodeError:
            # [v5:MQTT-1.5.4-1] no encodings of surrogate code points
            raise ValueError(
                f"invalid {kind} {_show(value)}: it must be valid UTF-8, "
                "remove the unpaired surrogate characters"
            ) from None
    if size > MAX_TOPIC_LENGTH:
        # [v5:MQTT-4.7.3-3]
        raise ValueError(
            f"invalid {kind} {_show(value)}: it is {size} bytes long in UTF-8, "
            f"shorten it to at most {MAX_TOPIC_LENGTH}"
        )
    if "\0" in value:
        # [v5:MQTT-4.7.3-2]
        raise ValueError(
            f"invalid {kind} {_show(value)}: "
            "it must not contain the null character U+0000"
        )


# Topic names that passed validate_topic_name: publishers repeat a few topics, and a
# set lookup is cheaper than the checks. Bounded; emptied when full.
_valid_names: set[str] = set()
_VALID_NAMES_MAX = 4096


def validate_topic_name(topic: str) -> None:
    """Check that *topic* may be used as the topic name of a PUBLISH.

    Call it before a message is encoded so that a bad topic fails with a clear
    message instead of a disconnect by the broker.

    Args:
        topic: The topic name, e.g. ``"sport/tennis/player1"``.

    Raises:
        TypeError: If *topic* is not a str (bytes, None, a number ...).
        ValueError: If the name is empty, longer than 65535 UTF-8 bytes, not valid
            UTF-8, contains U+0000, or contains a wildcard ``+`` or ``#``.
    """
    try:
        if topic in _valid_names:
            return
    except TypeError:
        pass  # unhashable, so not a str: _check_common says so
    _check_common(topic, "topic name")
    if "+" in topic or "#" in topic:
        # [v5:MQTT-3.3.2-2] [v5:MQTT-4.7.0-1]
        raise ValueError(
            f"invalid topic name {_show(topic)}: wildcards '+' and '#' are only "
            "allowed in topic filters, remove them from the topic name"
        )
    if len(_valid_names) >= _VALID_NAMES_MAX:
        _valid_names.clear()
    _valid_names.add(topic)


def _split_shared(topic_filter: str) -> tuple[str | None, str]:
    if not topic_filter.startswith(_SHARE_PREFIX):
        return None, topic_filter
    share_name, slash, inner = topic_filter[len(_SHARE_PREFIX) :].partition("/")
    # [v5:MQTT-4.8.2-1] [v5:MQTT-4.8.2-2]
    if not share_name:
        raise ValueError(
            f"invalid topic filter {_show(topic_filter)}: "
            f"the share name must not be empty, {_SHARED_FORM}"
        )
    if "+" in share_name or "#" in share_name:
        raise ValueError(
            f"invalid topic filter {_show(topic_filter)}: "
            f"the share name must not contain '+' or '#', {_SHARED_FORM}"
        )
    if not slash or not inner:
        raise ValueError(
            f"invalid topic filter {_show(topic_filter)}: a shared subscription "
            f"needs a filter after the share name, {_SHARED_FORM}"
        )
    return share_name, inner


def parse_shared_subscription(topic_filter: str) -> tuple[str | None, str]:
    """Split a shared subscription filter into its share name and its filter.

    ``"$share/group/sport/#"`` gives ``("group", "sport/#")``; a filter that does
    not start with ``$share/`` gives ``(None, topic_filter)``. Only the shared form
    is checked here; use `validate_topic_filter` for the whole filter.

    Args:
        topic_filter: A topic filter, shared or not.

    Returns:
        The share name (or ``None`` when the filter is not shared) and the filter
        that messages are matched against.

    Raises:
        ValueError: If the filter starts with ``$share/`` but has an empty share
            name, a share name holding ``+`` or ``#``, or no filter after it.
    """
    return _split_shared(topic_filter)


def validate_topic_filter(topic_filter: str) -> None:
    """Check that *topic_filter* may be sent in a SUBSCRIBE or UNSUBSCRIBE.

    Args:
        topic_filter: The filter, e.g. ``"sport/+/player1/#"`` or
            ``"$share/group/sport/#"``.

    Raises:
        TypeError: If *topic_filter* is not a str.
        ValueError: If the filter is empty, longer than 65535 UTF-8 bytes, not
            valid UTF-8, contains U+0000, places a wildcard anywhere but as a whole
            level (``#`` only as the last one), or is a malformed shared
            subscription.
    """
    _check_common(topic_filter, "topic filter")
    _, inner = _split_shared(topic_filter)
    if "+" not in inner and "#" not in inner:
        return
    levels = inner.split("/")
    last = len(levels) - 1
    for index, level in enumerate(levels):
        # [v5:MQTT-4.7.1-1]
        if "#" in level:
            if level != "#":
                raise ValueError(
                    f"invalid topic filter {_show(topic_filter)}: '#' must be "
                    "a whole level on its own, put it after a '/'"
                )
            if index != last:
                raise ValueError(
                    f"invalid topic filter {_show(topic_filter)}: '#' must be "
                    "the last level, remove the levels after it"
                )
        # [v5:MQTT-4.7.1-2]
        elif "+" in level and level != "+":
            raise ValueError(
                f"invalid topic filter {_show(topic_filter)}: '+' must be "
                "a whole level on its own, separate it with '/'"
            )


def topic_matches(topic_filter: str, topic: str) -> bool:
    """Tell whether a message published to *topic* matches *topic_filter*.

    ``+`` matches exactly one level, which may be empty; ``#`` matches the rest
    of the topic including nothing at all, so ``sport/#`` matches ``sport``.
    Topics starting with ``$`` (``$SYS/...``) are not matched by a filter whose
    first level is a wildcard. A shared subscription matches like its filter.

    Both arguments are assumed valid (see `validate_topic_filter` and
    `validate_topic_name`); nothing is checked, so this never raises.

    Args:
        topic_filter: The subscription's topic filter.
        topic: The topic name of a received message.

    Returns:
        True if the filter matches the topic.
    """
    if topic_filter.startswith(_SHARE_PREFIX):
        topic_filter = topic_filter[len(_SHARE_PREFIX) :].partition("/")[2]
    if "+" not in topic_filter and "#" not in topic_filter:
        return topic_filter == topic
    # [v5:MQTT-4.7.2-1]
    if topic.startswith("$") and topic_filter[0] in "+#":
        return False
    filter_levels = topic_filter.split("/")
    topic_levels = topic.split("/")
    count = len(topic_levels)
    for index, level in enumerate(filter_levels):
        if level == "#":
            return True
        if index >= count or (level != "+" and level != topic_levels[index]):
            return False
    return len(filter_levels) == count
