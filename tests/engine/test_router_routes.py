"""The router remembers where a topic goes, and forgets it when subscriptions change.

`Router.deliver` looks a message's topic up in a cache of routes that also
remembers the subscription identifiers it came with (#9, speed: 1,000 filters). These tests pin that the cache never sends a
message where the subscriptions of the moment would not: a subscription added,
removed or catching everything counts from the next message on.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from trio_mqttconn import Message
from trio_mqttconn._engine.router import _ROUTE_CACHE_SIZE, Router
from trio_mqttconn._packets import TopicSubscription
from trio_mqttconn._properties import Properties
from trio_mqttconn._subscription import Subscription, _Intake

if TYPE_CHECKING:
    from trio_mqttconn._engine.link import Hold


def _router() -> Router:
    return Router(intake=_Intake(limit=1 << 20))


def _sub(topic_filter: str, identifier: int = 0) -> Subscription:
    return Subscription(
        topic_filter=topic_filter,
        options=TopicSubscription(filter=topic_filter),
        identifier=identifier,
    )


def _deliver(router: Router, topic: str, *identifiers: int) -> None:
    held: dict[int, Hold] = {}
    properties = Properties(subscription_identifiers=identifiers)
    router.deliver(Message(topic=topic, payload=b"", properties=properties), held)


def _taken(sub: Subscription) -> list[str]:
    return [sub.receive_nowait().topic for _ in range(sub.statistics().queued)]


def test_a_subscription_added_later_gets_the_next_message() -> None:
    router = _router()
    wide = _sub("t/+")
    router.register(wide)
    _deliver(router, "t/1")
    exact = _sub("t/1")
    router.register(exact)
    _deliver(router, "t/1")
    assert _taken(wide) == ["t/1", "t/1"]
    assert _taken(exact) == ["t/1"]


def test_an_unregistered_subscription_gets_nothing_more() -> None:
    router = _router()
    wide, exact = _sub("t/+"), _sub("t/1")
    router.register(wide)
    router.register(exact)
    _deliver(router, "t/1")
    router.unregister(wide)
    _deliver(router, "t/1")
    assert _taken(wide) == ["t/1"]
    assert _taken(exact) == ["t/1", "t/1"]


def test_routes_by_identifier_follow_the_subscriptions() -> None:
    router = _router()
    first = _sub("t/+", identifier=5)
    router.register(first)
    _deliver(router, "t/1", 5)
    router.unregister(first)
    second = _sub("t/#", identifier=5)  # the identifier given out again
    router.register(second)
    _deliver(router, "t/1", 5)
    assert _taken(first) == ["t/1"]
    assert _taken(second) == ["t/1"]


def test_a_stale_identifier_is_still_checked_against_the_topic() -> None:
    router = _router()
    sub = _sub("a/+", identifier=7)
    router.register(sub)
    _deliver(router, "b/1", 7)  # an earlier process's subscription: not ours
    _deliver(router, "b/1", 7)  # the same, now from the cache
    assert _taken(sub) == []


def test_the_same_topic_with_other_identifiers_is_routed_again() -> None:
    router = _router()
    plus, hash_ = _sub("t/+", identifier=1), _sub("t/#", identifier=2)
    router.register(plus)
    router.register(hash_)
    _deliver(router, "t/1", 1)  # as if only "t/+" had been granted
    _deliver(router, "t/1", 1, 2)
    _deliver(router, "t/1", 2)
    _deliver(router, "t/1", 1)  # the first route again
    assert _taken(plus) == ["t/1", "t/1", "t/1"]
    assert _taken(hash_) == ["t/1", "t/1"]


def test_catch_all_counts_from_the_next_message() -> None:
    router = _router()
    sub = _sub("t/+")
    router.register(sub)
    _deliver(router, "t/1")
    every = _sub("#")
    router.catch_all.append(every)
    _deliver(router, "t/1")
    assert _taken(sub) == ["t/1", "t/1"]
    assert _taken(every) == ["t/1"]


def test_the_route_cache_stays_bounded() -> None:
    router = _router()
    sub = _sub("t/+")
    router.register(sub)
    for n in range(_ROUTE_CACHE_SIZE + 10):
        _deliver(router, f"t/{n}")
        sub.receive_nowait()
    assert len(router.routes) <= _ROUTE_CACHE_SIZE


def test_clear_forgets_the_routes() -> None:
    router = _router()
    router.register(_sub("t/+"))
    _deliver(router, "t/1")
    router.clear()
    assert router.routes == {}
