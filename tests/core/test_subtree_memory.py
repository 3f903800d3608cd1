"""The subscription tree's memory per filter (#9, peak RSS with 1,000 filters)."""

from __future__ import annotations

import tracemalloc

from trio_mqttconn._subtree import SubscriptionTree


class Value:
    """A registered value (compared by identity)."""


def _thousand_filters() -> tuple[SubscriptionTree[Value], list[Value]]:
    tree: SubscriptionTree[Value] = SubscriptionTree()
    values = [Value() for _ in range(1000)]
    for number, value in enumerate(values):
        tree.add(f"t/{number}/+", value)
    return tree, values


def test_subtree_nodes_make_their_containers_when_first_needed() -> None:
    tree, _ = _thousand_filters()
    nodes = list(tree._walk(tree._root))
    # root -> "t" -> 1,000 x "<n>" -> "+"
    assert len(nodes) == 2002
    dicts = sum(isinstance(node.children, dict) for node in nodes)
    singles = sum(isinstance(node.children, type(node)) for node in nodes)
    lists = sum(node.registrations is not None for node in nodes)
    assert dicts == 1  # "t": the root and each "<n>" have one child, leaves none
    assert singles == 1001
    assert lists == 1000  # the leaves only


def test_subtree_removing_everything_leaves_an_empty_root() -> None:
    tree, values = _thousand_filters()
    for number, value in enumerate(values):
        assert tree.remove(f"t/{number}/+", value)
    assert tree._root.children is None
    assert tree._root.registrations is None
    assert list(tree._walk(tree._root)) == [tree._root]


def test_subtree_bytes_per_filter_stay_small() -> None:
    values = [Value() for _ in range(1000)]
    filters = [f"t/{number}/+" for number in range(1000)]
    tree: SubscriptionTree[Value] = SubscriptionTree()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for topic_filter, value in zip(filters, values, strict=True):
            tree.add(topic_filter, value)
        used = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert len(tree) == 1000
    # Eager containers on every node cost about 620 bytes a filter; made when
    # needed 460; a single child without a dict 300.
    assert used / 1000 < 360
