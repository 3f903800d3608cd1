"""The subscription tree: add/remove/match, ordering, sharing, cache and cost."""

from __future__ import annotations

import re

import attrs
import pytest
from hypothesis import given, strategies as st

from trio_mqttconn._subtree import SubscriptionTree
from trio_mqttconn._topics import parse_shared_subscription, topic_matches


@attrs.define(eq=False)
class Sub:
    """A stand-in subscription: compared by identity, like the real ones."""

    name: str


def make_tree(*registrations: tuple[str, Sub]) -> SubscriptionTree[Sub]:
    tree: SubscriptionTree[Sub] = SubscriptionTree()
    for topic_filter, value in registrations:
        tree.add(topic_filter, value)
    return tree


def names(values: list[Sub]) -> list[str]:
    return [value.name for value in values]


# ---------------------------------------------------------------------------
# add / match


def test_subtree_match_finds_every_matching_filter_in_registration_order() -> None:
    tree = make_tree(
        ("sport/tennis/player1/#", Sub("player1")),
        ("sport/+", Sub("sport/+")),
        ("#", Sub("all")),
        ("sport/tennis/+", Sub("tennis/+")),
        ("sport/tennis/player1", Sub("exact")),
        ("+/+/+", Sub("three levels")),
        ("sport/golf/#", Sub("golf")),
    )
    assert names(tree.match("sport/tennis/player1")) == [
        "player1",
        "all",
        "tennis/+",
        "exact",
        "three levels",
    ]
    assert names(tree.match("sport/tennis/player1/score/wimbledon")) == [
        "player1",
        "all",
    ]
    assert names(tree.match("sport")) == ["all"]
    assert names(tree.match("sport/")) == ["sport/+", "all"]
    assert names(tree.match("sport/golf")) == ["sport/+", "all", "golf"]


def test_subtree_match_follows_the_spec_examples() -> None:
    # [v5:MQTT-4.7.1] sections 4.7.1.2 and 4.7.1.3
    tree = make_tree(("+/+", Sub("+/+")), ("/+", Sub("/+")), ("+", Sub("+")))
    assert names(tree.match("/finance")) == ["+/+", "/+"]
    assert names(tree.match("finance")) == ["+"]
    assert names(tree.match("a/b/c")) == []


def test_subtree_match_does_not_give_dollar_topics_to_leading_wildcards() -> None:
    # [v5:MQTT-4.7.2-1]
    tree = make_tree(
        ("#", Sub("#")),
        ("+/monitor/Clients", Sub("+/monitor/Clients")),
        ("+", Sub("+")),
        ("$SYS/#", Sub("$SYS/#")),
        ("$SYS/monitor/+", Sub("$SYS/monitor/+")),
        ("a/+", Sub("a/+")),
    )
    assert names(tree.match("$SYS/monitor/Clients")) == ["$SYS/#", "$SYS/monitor/+"]
    assert names(tree.match("$SYS")) == ["$SYS/#"]
    assert names(tree.match("a/$SYS")) == ["#", "a/+"]
    assert names(tree.match("monitor")) == ["#", "+"]


def test_subtree_hash_matches_the_parent_level() -> None:
    tree = make_tree(("a/#", Sub("a/#")), ("a/b/#", Sub("a/b/#")))
    assert names(tree.match("a")) == ["a/#"]
    assert names(tree.match("a/b")) == ["a/#", "a/b/#"]
    assert names(tree.match("a/b/c/d")) == ["a/#", "a/b/#"]
    assert names(tree.match("b")) == []


def test_subtree_match_reports_a_value_once_in_first_registration_order() -> None:
    first, second = Sub("first"), Sub("second")
    tree = make_tree(
        ("a/+", second),
        ("a/b", first),
        ("#", first),
        ("a/b", second),
        ("a/b", second),
    )
    assert tree.match("a/b") == [second, first]
    assert len(tree) == 5


def test_subtree_match_compares_values_by_identity() -> None:
    one: list[int] = []
    other: list[int] = []
    tree: SubscriptionTree[list[int]] = SubscriptionTree()
    tree.add("a", one)
    tree.add("+", other)
    result = tree.match("a")
    assert len(result) == 2
    assert result[0] is one
    assert result[1] is other


def test_subtree_match_returns_a_fresh_list() -> None:
    sub = Sub("s")
    tree = make_tree(("a", sub))
    result = tree.match("a")
    result.append(Sub("intruder"))
    assert tree.match("a") == [sub]
    tree.match("a").clear()
    assert tree.match("a") == [sub]


def test_subtree_add_rejects_invalid_filters() -> None:
    tree: SubscriptionTree[Sub] = SubscriptionTree()
    message = (
        "invalid topic filter 'a/#/b': '#' must be the last level, "
        "remove the levels after it"
    )
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        tree.add("a/#/b", Sub("s"))
    assert len(tree) == 0
    assert tree.filters() == []


# ---------------------------------------------------------------------------
# shared subscriptions


def test_subtree_stores_shared_filters_under_their_inner_filter() -> None:
    # [v5:MQTT-4.8.2-1]
    group, plain = Sub("group"), Sub("plain")
    tree = make_tree(("$share/g/sport/+", group), ("sport/+", plain))
    assert tree.match("sport/tennis") == [group, plain]
    assert tree.filters() == ["sport/+"]
    assert "$share/g/sport/+" in tree
    assert "$share/other/sport/+" in tree
    assert "sport/+" in tree
    assert tree.remove("$share/g/sport/+", group) is True
    assert tree.match("sport/tennis") == [plain]


def test_subtree_shared_hash_does_not_match_dollar_topics() -> None:
    tree = make_tree(("$share/g/#", Sub("g")))
    assert tree.match("$SYS/load") == []
    assert names(tree.match("load")) == ["g"]


# ---------------------------------------------------------------------------
# remove, len, contains, filters, clear


def test_subtree_remove_removes_one_registration_at_a_time() -> None:
    sub = Sub("s")
    tree = make_tree(("a/b", sub), ("a/b", sub))
    assert tree.remove("a/b", sub) is True
    assert len(tree) == 1
    assert tree.match("a/b") == [sub]
    assert tree.remove("a/b", sub) is True
    assert len(tree) == 0
    assert tree.match("a/b") == []
    assert tree.remove("a/b", sub) is False


def test_subtree_remove_matches_value_by_identity() -> None:
    tree: SubscriptionTree[list[int]] = SubscriptionTree()
    registered: list[int] = []
    tree.add("a", registered)
    assert tree.remove("a", []) is False
    assert len(tree) == 1
    assert tree.remove("a", registered) is True


def test_subtree_remove_keeps_other_values_and_their_order() -> None:
    a, b, c = Sub("a"), Sub("b"), Sub("c")
    tree = make_tree(("x", a), ("x", b), ("x", c))
    assert tree.remove("x", b) is True
    assert tree.match("x") == [a, c]


@pytest.mark.parametrize(
    "topic_filter", ["b", "a/b/c", "a/c", "+", "#", "$share//a", "$share/g"]
)
def test_subtree_remove_returns_false_for_unknown_filters(topic_filter: str) -> None:
    sub = Sub("s")
    tree = make_tree(("a/b", sub))
    assert tree.remove(topic_filter, sub) is False
    assert len(tree) == 1
    assert tree.match("a/b") == [sub]


def test_subtree_remove_prunes_empty_nodes() -> None:
    sub = Sub("s")
    tree = make_tree(("a/b/c", sub))
    assert tree.remove("a/b/c", sub) is True
    assert tree._root.children is None
    assert "a" not in tree
    assert "a/b" not in tree


def test_subtree_remove_keeps_nodes_that_still_hold_something() -> None:
    parent, child, sibling = Sub("parent"), Sub("child"), Sub("sibling")
    tree = make_tree(("a", parent), ("a/b", child), ("a/c/d", sibling))
    # "a/b" goes, "a" stays because it has registrations
    assert tree.remove("a/b", child) is True
    node = tree._root.child("a")
    assert node is not None
    assert [child.level for child in node.each_child()] == ["c"]
    # "a" loses its registration but keeps its child "c"
    assert tree.remove("a", parent) is True
    assert "a" not in tree
    assert tree.match("a/c/d") == [sibling]
    assert tree.filters() == ["a/c/d"]
    assert tree.remove("a/c/d", sibling) is True
    assert tree._root.children is None


def test_subtree_contains_only_filters_with_registrations() -> None:
    tree = make_tree(("a/b/#", Sub("s")))
    assert "a/b/#" in tree
    assert "a/b" not in tree  # an inner node
    assert "a/b/c" not in tree
    assert "a/+/#" not in tree
    assert "$share/" not in tree  # malformed shared filter
    assert 42 not in tree


def test_subtree_len_counts_registrations() -> None:
    sub = Sub("s")
    tree: SubscriptionTree[Sub] = SubscriptionTree()
    assert len(tree) == 0
    tree.add("a", sub)
    tree.add("a", sub)
    tree.add("b", Sub("t"))
    assert len(tree) == 3


def test_subtree_filters_lists_distinct_filters_oldest_first() -> None:
    first = Sub("first")
    tree = make_tree(
        ("z/y", first),
        ("a", Sub("b")),
        ("z/y", Sub("again")),
        ("#", Sub("c")),
        ("$share/g/m/+", Sub("d")),
        ("z", Sub("e")),
    )
    assert tree.filters() == ["z/y", "a", "#", "m/+", "z"]
    tree.remove("z/y", first)
    assert tree.filters() == ["a", "z/y", "#", "m/+", "z"]


def test_subtree_clear_removes_everything() -> None:
    tree = make_tree(("a", Sub("a")), ("#", Sub("b")))
    assert len(tree.match("a")) == 2
    tree.clear()
    assert len(tree) == 0
    assert tree.filters() == []
    assert tree.match("a") == []
    assert "a" not in tree
    tree.add("a", Sub("again"))
    assert names(tree.match("a")) == ["again"]


def test_subtree_repr_is_short() -> None:
    tree = make_tree(*((f"t/{i}", Sub(str(i))) for i in range(100)))
    assert repr(tree) == "<SubscriptionTree with 100 registrations>"


# ---------------------------------------------------------------------------
# the topic cache


def test_subtree_cache_is_invalidated_by_every_change() -> None:
    sub, other = Sub("s"), Sub("o")
    tree = make_tree(("a/+", sub))
    assert tree.match("a/b") == [sub]
    tree.add("a/b", other)
    assert tree.match("a/b") == [sub, other]
    tree.remove("a/+", sub)
    assert tree.match("a/b") == [other]
    tree.clear()
    assert tree.match("a/b") == []


def test_subtree_cache_remembers_results_including_empty_ones() -> None:
    tree = make_tree(("a", Sub("a")))
    assert tree.match("a") == tree.match("a")
    assert tree.match("b") == []
    assert set(tree._cache) == {"a", "b"}
    tree._nodes_visited = -1
    assert tree.match("b") == []
    assert tree._nodes_visited == -1  # answered from the cache, no trie walk


def test_subtree_cache_is_bounded_and_drops_the_oldest_topic() -> None:
    tree: SubscriptionTree[Sub] = SubscriptionTree(cache_size=2)
    tree.add("#", Sub("all"))
    for topic in ["a", "b", "c"]:
        tree.match(topic)
    assert list(tree._cache) == ["b", "c"]


def test_subtree_cache_can_be_disabled() -> None:
    tree: SubscriptionTree[Sub] = SubscriptionTree(cache_size=0)
    sub = Sub("s")
    tree.add("a", sub)
    assert tree.match("a") == [sub]
    assert tree.match("a") == [sub]
    assert tree._cache == {}


def test_subtree_rejects_a_negative_cache_size() -> None:
    with pytest.raises(ValueError, match=r"^cache_size must be 0 or more, not -1$"):
        SubscriptionTree(cache_size=-1)


# ---------------------------------------------------------------------------
# cost: proportional to topic levels, not to the number of subscriptions


def test_subtree_match_cost_does_not_grow_with_subscriptions() -> None:
    tree: SubscriptionTree[Sub] = SubscriptionTree(cache_size=0)
    # 10,000 distinct filters, none of which matches the topic below; some sit
    # under wildcard branches that the walk does have to enter.
    for i in range(2500):
        tree.add(f"sensors/{i}/temperature", Sub(f"exact {i}"))
        tree.add(f"sensors/+/humidity/{i}", Sub(f"plus {i}"))
        tree.add(f"+/room{i}/#", Sub(f"hash {i}"))
        tree.add(f"$SYS/{i}", Sub(f"sys {i}"))
    assert len(tree) == 10_000
    topic = "sensors/kitchen/humidity/now"
    levels = topic.count("/") + 1
    assert tree.match(topic) == []
    assert 0 < tree._nodes_visited <= 3 * levels + 1
    # the same bound holds for a topic that does match, and for a single filter
    tree.add("sensors/kitchen/humidity/now", Sub("match"))
    assert names(tree.match(topic)) == ["match"]
    assert tree._nodes_visited <= 3 * levels + 1
    small: SubscriptionTree[Sub] = SubscriptionTree(cache_size=0)
    small.add("sensors/kitchen/humidity/now", Sub("match"))
    small.match(topic)
    assert small._nodes_visited == levels + 1


# ---------------------------------------------------------------------------
# property: the tree agrees with brute-force matching of every registration

LEVELS = st.sampled_from(["a", "b", "", "$SYS", "$x"])


@st.composite
def topic_filters(draw: st.DrawFn) -> str:
    levels = draw(st.lists(st.one_of(LEVELS, st.just("+")), min_size=0, max_size=3))
    if not levels or draw(st.booleans()):
        levels.append("#")
    prefix = draw(st.sampled_from(["", "", "", "$share/g/", "$share/h/"]))
    return prefix + ("/".join(levels) or "/")  # a lone empty level would be ""


TOPICS = st.lists(LEVELS, min_size=1, max_size=4).map("/".join)
VALUES = [Sub(f"v{i}") for i in range(4)]
OPERATIONS = st.lists(
    st.tuples(
        st.sampled_from(["add", "add", "remove"]),
        topic_filters(),
        st.integers(min_value=0, max_value=len(VALUES) - 1),
    ),
    max_size=25,
)


def brute_force(registrations: list[tuple[str, Sub]], topic: str) -> list[Sub]:
    result: list[Sub] = []
    for topic_filter, value in registrations:
        if topic_matches(topic_filter, topic) and all(v is not value for v in result):
            result.append(value)
    return result


@given(operations=OPERATIONS, topics=st.lists(TOPICS, min_size=1, max_size=6))
def test_subtree_match_equals_brute_force(
    operations: list[tuple[str, str, int]], topics: list[str]
) -> None:
    tree: SubscriptionTree[Sub] = SubscriptionTree(cache_size=3)
    registrations: list[tuple[str, Sub]] = []  # (inner filter, value), oldest first
    for operation, topic_filter, index in operations:
        value = VALUES[index]
        inner = parse_shared_subscription(topic_filter)[1]
        if operation == "add":
            tree.add(topic_filter, value)
            registrations.append((inner, value))
        else:
            position = next(
                (
                    i
                    for i, (f, v) in enumerate(registrations)
                    if f == inner and v is value
                ),
                None,
            )
            assert tree.remove(topic_filter, value) is (position is not None)
            if position is not None:
                del registrations[position]
        # interleave matching with changes so stale cache entries would show
        topic = topics[len(registrations) % len(topics)]
        assert tree.match(topic) == brute_force(registrations, topic)
    assert len(tree) == len(registrations)
    assert sorted(tree.filters()) == sorted({f for f, _ in registrations})
    for topic in topics:
        assert tree.match(topic) == brute_force(registrations, topic)


@pytest.mark.parametrize(
    ("topic_filter", "topic", "matches"),
    [
        ("+/x", "a/x", True),
        ("+/x", "$SYS/x", False),  # [v5:MQTT-4.7.2-1]
        ("#", "a/b", True),
        ("#", "$SYS/b", False),
        ("a/#", "a", True),
        ("a/#", "a/b/c", True),
        ("a/+", "a/b", True),
        ("a/b", "a/c", False),
        ("a/b", "a/b/c", False),
        ("$SYS/+", "$SYS/x", True),
    ],
)
def test_subtree_single_child_nodes_match_like_shared_ones(
    topic_filter: str, topic: str, matches: bool
) -> None:
    # A node with one child keeps it without a dict; with a sibling the children
    # are a dict. Both match alike.
    value, other = Sub("v"), Sub("other")
    alone = make_tree((topic_filter, value))
    sibling = "/".join([*topic_filter.split("/")[:-1], "zz"])
    crowded = make_tree((sibling, other), (topic_filter, value))
    assert (alone.match(topic) == [value]) is matches
    assert (value in crowded.match(topic)) is matches


def test_subtree_node_with_one_child_left_keeps_it_without_a_dict() -> None:
    b, c = Sub("b"), Sub("c")
    tree = make_tree(("a/b", b), ("a/c", c))
    node = tree._root.child("a")
    assert node is not None
    assert isinstance(node.children, dict)
    assert tree.remove("a/c", c) is True
    only: object = node.children  # the remove changed it (mypy narrowed it above)
    assert only is node.child("b")
    assert tree.match("a/b") == [b]
    assert tree.match("a/c") == []
    assert tree.remove("a/b", b) is True
    assert tree._root.children is None
