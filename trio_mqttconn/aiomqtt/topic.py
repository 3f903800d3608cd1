"""aiomqtt's ``Topic`` and ``Wildcard``: validated strings, aiomqtt's matching rules.

These reproduce aiomqtt 2.5.1 exactly, including where aiomqtt is more lenient than
the MQTT specification (the engine's own ``trio_mqttconn._topics`` is the strict one).
The deviations, all kept on purpose so that code written for aiomqtt behaves the same:

* the length limit counts characters, not UTF-8 bytes
  (the specification says 65535 bytes, [v5:MQTT-4.7.3-3]);
* U+0000 and lone surrogates are accepted ([v5:MQTT-4.7.3-2], [v5:MQTT-1.5.4-1]);
* :meth:`Topic.matches` lets a filter that starts with a wildcard match a topic that
  starts with ``$`` (brokers never deliver those, [v5:MQTT-4.7.2-1]);
* ``$share/<group>/`` is stripped without checking the group name, so ``$share/+/a``
  and a bare ``$share/group`` are accepted ([v5:MQTT-4.8.2-1], [v5:MQTT-4.8.2-2]).

They are stdlib dataclasses, not attrs classes, because aiomqtt documents them as
frozen dataclasses: ``dataclasses.replace`` / ``fields`` and their equality, hashing and
repr must keep working.
"""

from __future__ import annotations

import dataclasses
from typing import TypeAlias

__all__ = ["MAX_TOPIC_LENGTH", "Topic", "TopicLike", "Wildcard", "WildcardLike"]

MAX_TOPIC_LENGTH = 65535
"""Longest accepted topic or wildcard, in characters (as aiomqtt counts)."""


@dataclasses.dataclass(frozen=True)
class Wildcard:
    """A topic filter: can be subscribed to, not published to.

    A wildcard may contain ``+`` (one whole level) and ``#`` (the last level, matching
    any number of levels). ``value`` is the plain string, for ``str`` operations.

    Args:
        value: The wildcard string.

    Raises:
        TypeError: If ``value`` is not a ``str``
            (message ``Wildcard must be of type str``).
        ValueError: If it is empty, longer than 65535 characters, or uses ``+``/``#``
            inside a level or ``#`` before the last level (message
            ``Invalid wildcard: <value>``).
    """

    value: str
    """The wildcard string."""

    def __str__(self) -> str:
        return self.value

    def __post_init__(self) -> None:
        value: object = self.value  # checked at run time: callers may be untyped
        if not isinstance(value, str):
            msg = "Wildcard must be of type str"
            raise TypeError(msg)
        if not _is_valid_wildcard(value):
            msg = f"Invalid wildcard: {value}"
            raise ValueError(msg)


WildcardLike: TypeAlias = str | Wildcard
"""Anything :meth:`Topic.matches` accepts: a string (validated) or a `Wildcard`."""


@dataclasses.dataclass(frozen=True)
class Topic(Wildcard):
    """A topic name: can be published and subscribed to.

    Every message's ``topic`` is a `Topic`; use :meth:`matches` to dispatch on it.

    Args:
        value: The topic string.

    Raises:
        TypeError: If ``value`` is not a ``str``
            (message ``Topic must be of type str``).
        ValueError: If it is empty, longer than 65535 characters or contains ``+`` or
            ``#`` (message ``Invalid topic: <value>``).
    """

    def __post_init__(self) -> None:
        value: object = self.value  # checked at run time: callers may be untyped
        if not isinstance(value, str):
            msg = "Topic must be of type str"
            raise TypeError(msg)
        if not value or len(value) > MAX_TOPIC_LENGTH or "+" in value or "#" in value:
            msg = f"Invalid topic: {value}"
            raise ValueError(msg)

    def matches(self, wildcard: WildcardLike) -> bool:
        """Tell whether this topic matches a wildcard.

        ``$share/<group>/`` in front of the wildcard is ignored, so a shared
        subscription matches what its filter matches. ``a/#`` matches ``a``.

        Args:
            wildcard: The wildcard to match against; a string is validated first.

        Returns:
            True if the topic matches the wildcard, False otherwise.

        Raises:
            ValueError: If ``wildcard`` is a string that is not a valid wildcard.
        """
        if not isinstance(wildcard, Wildcard):
            wildcard = Wildcard(wildcard)
        return _levels_match(self.value.split("/"), wildcard.value.split("/"))


TopicLike: TypeAlias = str | Topic
"""A topic given as a string (validated) or a `Topic`."""


def _is_valid_wildcard(value: str) -> bool:
    # aiomqtt's rule: non-empty, at most 65535 characters, no "#" followed by a level,
    # and "+"/"#" only as a whole level (a level of length 1).
    if not value or len(value) > MAX_TOPIC_LENGTH or "#/" in value:
        return False
    return not any(
        len(level) > 1 and ("+" in level or "#" in level) for level in value.split("/")
    )


def _levels_match(topic: list[str], wildcard: list[str]) -> bool:
    # Iterative form of aiomqtt's recursive matcher (same results, no recursion limit
    # on topics with thousands of levels).
    if wildcard[0] == "$share":
        wildcard = wildcard[2:]
    for index, level in enumerate(topic):
        if index == len(wildcard):
            return False
        pattern = wildcard[index]
        if pattern == "#":
            return True
        if pattern not in ("+", level):
            return False
    rest = wildcard[len(topic) :]
    return not rest or rest[0] == "#"
