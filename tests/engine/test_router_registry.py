"""The router's registry: subscriptions by filter and by identifier (#9, peak RSS).

A client with 1,000 filters keeps one entry per filter in each index; they are
tuples, replaced when a subscription comes or goes, and the tree keeps no cache of
its own beside the router's routes.
"""

from __future__ import annotations

from tests.engine.test_router_routes import _router, _sub


def test_registry_indexes_hold_tuples_in_registration_order() -> None:
    router = _router()
    first, second, other = _sub("a/+", 7), _sub("a/+", 7), _sub("b", 8)
    for sub in (first, second, other):
        router.register(sub)
    assert router.by_filter == {"a/+": (first, second), "b": (other,)}
    assert router.by_id == {7: (first, second), 8: (other,)}
    assert router.filter_ids == {"a/+": 7, "b": 8}
    assert router.siblings("a/+") == [first, second]
    assert router.identifier_for("a/+") == 7


def test_registry_unregister_keeps_the_others_and_forgets_the_last() -> None:
    router = _router()
    first, second = _sub("a/+", 7), _sub("a/+", 7)
    router.register(first)
    router.register(second)
    assert router.unregister(first) is False  # the filter is still used
    assert router.by_filter == {"a/+": (second,)}
    assert router.by_id == {7: (second,)}
    assert router.unregister(second) is True
    assert router.by_filter == {}
    assert router.by_id == {}
    assert router.filter_ids == {}
    assert router.unregister(second) is False  # not registered any more
    assert router.siblings("a/+") == []


def test_registry_without_identifiers_leaves_by_id_alone() -> None:
    router = _router()
    sub = _sub("a")
    router.register(sub)
    assert router.by_id == {}
    assert router.filter_ids == {}
    assert router.unregister(sub) is True
    assert router.by_filter == {}


def test_registry_tree_keeps_no_cache_of_its_own() -> None:
    router = _router()
    router.register(_sub("t/+"))
    router.tree.match("t/1")
    assert router.tree._cache == {}


def test_registry_filter_and_identifier_share_one_tuple() -> None:
    router = _router()
    first, second = _sub("a/+", 7), _sub("a/+", 7)
    router.register(first)
    assert router.by_id[7] is router.by_filter["a/+"]
    router.register(second)
    assert router.by_id[7] is router.by_filter["a/+"]
    router.unregister(first)
    assert router.by_id[7] is router.by_filter["a/+"]


def test_registry_identifiers_differing_within_a_filter_keep_their_own() -> None:
    # Two subscriptions made before either was registered got two identifiers.
    router = _router()
    first, second = _sub("a/+", 7), _sub("a/+", 8)
    router.register(first)
    router.register(second)
    assert router.by_filter == {"a/+": (first, second)}
    assert router.by_id == {7: (first,), 8: (second,)}
    router.unregister(first)
    assert router.by_id == {8: (second,)}
