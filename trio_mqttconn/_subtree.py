"""The subscription tree: which subscribers want a message sent to a topic.

# Theory of operation

Filters are stored in a trie keyed by topic level: ``sport/+/score`` is the path
root -> ``"sport"`` -> ``"+"`` -> ``"score"``, and the node at the end of the path
holds the registrations made for that filter. ``+`` and ``#`` are ordinary child
keys; topic names never contain them, so they cannot clash with literal levels.

Matching a topic walks the trie one level at a time with a set of current nodes.
At each level every current node contributes

* its ``#`` child's registrations (``#`` swallows this level and all below),
* its child named like the level, and its ``+`` child, as the next current nodes;

after the last level, each current node contributes its own registrations and those
of its ``#`` child (``a/#`` also matches ``a``). At the first level of a topic that
starts with ``$`` the ``+`` and ``#`` children are skipped ([v5:MQTT-4.7.2-1]).
The work therefore depends on the number of levels in the topic and on how many
wildcard branches actually apply to it, never on the number of subscriptions.

Each registration carries a sequence number; results are ordered by it and a value
registered under several matching filters is reported once (values are compared by
identity, like subscriptions are). The engine matches every received message, so
results are cached per topic string in a small bounded dict, emptied by every change
to the tree.

Shared subscriptions ``$share/<group>/<filter>`` are stored under ``<filter>``: the
broker already picked this client for the group, so only the filter matters here.
"""

from __future__ import annotations

from operator import itemgetter
from typing import TYPE_CHECKING, Generic, TypeVar

import attrs

from ._topics import parse_shared_subscription, validate_topic_filter

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

__all__ = ["SubscriptionTree"]

T = TypeVar("T")

_by_sequence = itemgetter(0)


class _Node(Generic[T]):
    """One level of the trie.

    A plain slotted class whose containers are made when first needed: with filters
    like ``t/<n>/+`` a node has either children or registrations, rarely both, and
    most nodes have one child, which is kept without a dict. A client with 1,000
    filters has 2,000 nodes; an empty dict and an empty list on each cost about 120
    bytes a node, a dict for a single child about 200 bytes.
    """

    __slots__ = ("children", "level", "registrations", "topic_filter")

    def __init__(self, level: str) -> None:
        # the key of this node in its parent
        self.level = level
        # None, the only child, or a dict of two or more children by level
        self.children: _Node[T] | dict[str, _Node[T]] | None = None
        # (sequence number, value), in registration order
        self.registrations: list[tuple[int, T]] | None = None
        # the (inner) filter that leads here; set once something is registered
        self.topic_filter = ""

    def child(self, level: str) -> _Node[T] | None:
        """The child named *level*, if any."""
        children = self.children
        if children is None:
            return None
        if isinstance(children, dict):
            return children.get(level)
        return children if children.level == level else None

    def add_child(self, level: str) -> _Node[T]:
        """The child named *level*, made if missing."""
        children = self.children
        if children is None:
            child: _Node[T] = _Node(level)
            self.children = child
        elif isinstance(children, dict):
            found = children.get(level)
            if found is None:
                found = children[level] = _Node(level)
            child = found
        elif children.level == level:
            child = children
        else:
            child = _Node(level)
            self.children = {children.level: children, level: child}
        return child

    def remove_child(self, level: str) -> None:
        """Forget the child named *level* (it exists)."""
        children = self.children
        if isinstance(children, dict):
            del children[level]
            if len(children) == 1:
                (self.children,) = children.values()
        else:
            self.children = None

    def each_child(self) -> Iterable[_Node[T]]:
        """The children, in no particular order."""
        children = self.children
        if children is None:
            return ()
        if isinstance(children, dict):
            return children.values()
        return (children,)


def _check_cache_size(
    instance: object, attribute: attrs.Attribute[int], value: int
) -> None:
    if value < 0:
        raise ValueError(f"cache_size must be 0 or more, not {value!r}")


@attrs.define(eq=False, repr=False, on_setattr=attrs.setters.NO_OP)
class SubscriptionTree(Generic[T]):
    """Topic filters mapped to the values subscribed with them.

    Used by the engine to find the subscriptions a received message belongs to;
    a value is typically a subscription object. The same value may be registered
    several times, under one filter or under several.

    Example::

        tree: SubscriptionTree[str] = SubscriptionTree()
        tree.add("sport/+/score", "scores")
        tree.add("sport/#", "all sport")
        assert tree.match("sport/tennis/score") == ["scores", "all sport"]
    """

    _cache_size: int = attrs.field(
        default=1024, alias="cache_size", kw_only=True, validator=_check_cache_size
    )
    """How many distinct topics' results to remember (0 disables the cache)."""
    _root: _Node[T] = attrs.field(init=False, factory=lambda: _Node(""))
    _count: int = attrs.field(init=False, default=0)
    _next_sequence: int = attrs.field(init=False, default=0)
    _cache: dict[str, tuple[T, ...]] = attrs.field(init=False, factory=dict)
    # Trie nodes looked at by the last uncached match(); lets tests show the cost.
    _nodes_visited: int = attrs.field(init=False, default=0)

    def __repr__(self) -> str:
        return f"<SubscriptionTree with {self._count} registrations>"

    def __len__(self) -> int:
        """Return the number of registrations (not of distinct filters or values)."""
        return self._count

    def __contains__(self, topic_filter: object) -> bool:
        """Tell whether anything is registered under *topic_filter*.

        A shared filter ``$share/g/x`` is looked up as ``x``.
        """
        if not isinstance(topic_filter, str):
            return False
        node = self._find(topic_filter)
        return node is not None and bool(node.registrations)

    def add(self, topic_filter: str, value: T) -> None:
        """Register *value* under *topic_filter*.

        Adding the same value under the same filter twice makes two
        registrations; it still appears once in `match` results.

        Args:
            topic_filter: A valid topic filter, possibly shared
                (``$share/<group>/<filter>``, stored as ``<filter>``).
            value: What `match` returns for matching topics.

        Raises:
            ValueError: If the filter is not valid (see `validate_topic_filter`).
        """
        validate_topic_filter(topic_filter)
        _, inner = parse_shared_subscription(topic_filter)
        node = self._root
        for level in inner.split("/"):
            node = node.add_child(level)
        node.topic_filter = inner
        registration = (self._next_sequence, value)
        if node.registrations is None:
            node.registrations = [registration]
        else:
            node.registrations.append(registration)
        self._next_sequence += 1
        self._count += 1
        self._cache.clear()

    def remove(self, topic_filter: str, value: T) -> bool:
        """Remove one registration of *value* (by identity) under *topic_filter*.

        The oldest such registration goes; trie nodes left empty are pruned.

        Args:
            topic_filter: The filter the value was added with (a shared filter
                ``$share/g/x`` finds registrations made under ``x``).
            value: The registered value itself, not an equal one.

        Returns:
            True if a registration was removed, False if there was none
            (including when the filter is not a valid filter at all).
        """
        try:
            _, inner = parse_shared_subscription(topic_filter)
        except ValueError:
            return False
        path: list[tuple[_Node[T], _Node[T]]] = []
        node = self._root
        for level in inner.split("/"):
            child = node.child(level)
            if child is None:
                return False
            path.append((node, child))
            node = child
        registrations = node.registrations or []
        for index, (_, registered) in enumerate(registrations):
            if registered is value:
                del registrations[index]
                break
        else:
            return False
        if not registrations:
            node.registrations = None
        self._count -= 1
        self._cache.clear()
        # Prune from the leaf up while nodes hold nothing.
        for parent, child in reversed(path):
            if child.registrations or child.children:
                break
            parent.remove_child(child.level)
        return True

    def match(self, topic: str) -> list[T]:
        """Return every value whose filter matches *topic*, each once.

        Values come in the order they were first registered (among the matching
        registrations). The topic is assumed to be a valid topic name.

        Args:
            topic: The topic name of a received message.

        Returns:
            A new list; changing it does not affect the tree.
        """
        cached = self._cache.get(topic)
        if cached is not None:
            return list(cached)
        result = self._match(topic)
        if self._cache_size:
            cache = self._cache
            if len(cache) >= self._cache_size:
                # Drop the oldest entry (dicts keep insertion order).
                del cache[next(iter(cache))]
            cache[topic] = tuple(result)
        return result

    def _match(self, topic: str) -> list[T]:
        found: list[tuple[int, T]] = []
        current = [self._root]
        visited = 1
        # [v5:MQTT-4.7.2-1] wildcards at the first level do not match "$..." topics
        skip_wildcards = topic.startswith("$")
        for level in topic.split("/"):
            following: list[_Node[T]] = []
            for node in current:
                children = node.children
                if children is None:
                    continue
                if not isinstance(children, dict):
                    # The only child: one comparison instead of three lookups.
                    name = children.level
                    if name == level:
                        following.append(children)
                    elif skip_wildcards:
                        pass
                    elif name == "+":
                        following.append(children)
                    elif name == "#":
                        visited += 1
                        found.extend(children.registrations or ())
                    continue
                if not skip_wildcards:
                    rest = children.get("#")
                    if rest is not None:
                        visited += 1
                        found.extend(rest.registrations or ())
                    single = children.get("+")
                    if single is not None:
                        following.append(single)
                exact = children.get(level)
                if exact is not None:
                    following.append(exact)
            skip_wildcards = False
            if not following:
                break
            visited += len(following)
            current = following
        else:
            for node in current:
                found.extend(node.registrations or ())
                rest = node.child("#")
                if rest is not None:
                    visited += 1
                    found.extend(rest.registrations or ())
        self._nodes_visited = visited
        if len(found) > 1:
            found.sort(key=_by_sequence)
            seen: set[int] = set()
            values: list[T] = []
            for _, value in found:
                key = id(value)
                if key not in seen:
                    seen.add(key)
                    values.append(value)
            return values
        return [value for _, value in found]

    def filters(self) -> list[str]:
        """Return the distinct filters with registrations, oldest first.

        Shared filters appear as their inner filter.
        """
        firsts = [
            (node.registrations[0][0], node.topic_filter)
            for node in self._walk(self._root)
            if node.registrations
        ]
        firsts.sort()
        return [topic_filter for _, topic_filter in firsts]

    def clear(self) -> None:
        """Remove every registration."""
        self._root = _Node("")
        self._count = 0
        self._cache.clear()

    def _find(self, topic_filter: str) -> _Node[T] | None:
        try:
            _, inner = parse_shared_subscription(topic_filter)
        except ValueError:
            return None
        node = self._root
        for level in inner.split("/"):
            child = node.child(level)
            if child is None:
                return None
            node = child
        return node

    def _walk(self, node: _Node[T]) -> Iterator[_Node[T]]:
        stack = [node]
        while stack:
            node = stack.pop()
            yield node
            stack.extend(node.each_child())
