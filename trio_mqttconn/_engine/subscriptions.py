"""Subscriptions: SUBSCRIBE/UNSUBSCRIBE on behalf of `Subscription` objects.

Theory of operation
-------------------
A `Subscription` is registered with the client's ``Router`` before its SUBSCRIBE
goes out, so that a message arriving with the SUBACK is not missed, and
unregistered if the SUBSCRIBE fails or is cancelled (then the filter is
unsubscribed again if it may have reached the broker and no other subscription
uses it). The broker keeps one subscription per filter: a SUBSCRIBE asks for the
highest QoS any live subscription on the filter wants, and each subscription is
granted what it asked for up to what the broker granted the filter. A filter
unsubscribed while offline is remembered for a resumed session
(``MqttClient._offline_unsubscribes``); after a reconnect that lost the session,
``restore`` subscribes again to what the broker granted before
(`filter_options`), and a refusal then ends the subscriptions on that filter
(`resubscribed`). Subscription identifiers are sent only when the CONNACK allows
them. The raw filters of ``subscribe_filters`` have no local subscription; the
``messages()`` streams receive every message.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
from typing import TYPE_CHECKING

import anyio
import attrs

from .._enums import ProtocolVersion, QoS, ReasonCode, RetainHandling
from .._events import Subscribed, Unsubscribed
from .._exceptions import MqttError, NotOpenError, SubscribeError, UnsubscribeError
from .._packets import TopicSubscription
from .._properties import EMPTY_PROPERTIES, Properties
from .._subscription import Subscription
from .._topics import validate_topic_filter
from . import operations
from .arguments import check_topic
from .router import Hub, run_listener

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Sequence

    from .._client import MqttClient
    from .._subscription import Listener, Overflow
    from .router import Router

__all__ = [
    "filter_options",
    "messages",
    "resubscribed",
    "subscribe",
    "subscribe_filters",
    "subscription",
    "unsubscribe",
    "unsubscribe_filters",
]

_LOGGER = logging.getLogger("trio_mqttconn.client")


# -- making subscriptions ----------------------------------------------------------------


def _new_subscription(
    client: MqttClient,
    topic_filter: str,
    *,
    qos: QoS | int,
    no_local: bool,
    retain_as_published: bool,
    retain_handling: RetainHandling | int,
    buffer: int,
    overflow: Overflow,
    manual_ack: bool = False,
) -> Subscription:
    check_topic("topic_filter", topic_filter)
    validate_topic_filter(topic_filter)
    options = TopicSubscription(
        filter=topic_filter,
        qos=QoS(qos),
        no_local=no_local,
        retain_as_published=retain_as_published,
        retain_handling=RetainHandling(retain_handling),
    )
    identifier = 0
    if client.protocol is ProtocolVersion.V5:
        identifier = client._router.identifier_for(topic_filter)
    return Subscription(
        topic_filter,
        options,
        overflow=overflow,
        buffer=buffer,
        client=client,
        identifier=identifier,
        manual_ack=manual_ack,
    )


def _filter_subscription(
    router: Router, topic_filter: str, options: TopicSubscription
) -> TopicSubscription:
    """*options* at the highest QoS any live subscription on the filter wants.

    The broker keeps one subscription per filter: a second SUBSCRIBE replaces
    the first, so it asks for what every subscription on it still wants.
    """
    wanted = max(
        [int(options.qos)] + [int(s.options.qos) for s in router.siblings(topic_filter)]
    )
    if wanted == options.qos:
        return options
    return attrs.evolve(options, qos=QoS(wanted))


def _sub_properties(client: MqttClient, sub: Subscription) -> Properties:
    if sub._identifier and _identifiers_available(client):
        return Properties(subscription_identifiers=(sub._identifier,))
    return EMPTY_PROPERTIES


def _identifiers_available(client: MqttClient) -> bool:
    info = client._connack
    return info is None or info.subscription_identifier_available


def filter_options(
    client: MqttClient,
) -> dict[str, tuple[TopicSubscription, Properties]]:
    """What to subscribe to again after a reconnect that lost the session."""
    # Only what the broker granted before: a subscribe still waiting for its
    # SUBACK is asked again by its own caller.
    router = client._router
    seen: dict[str, tuple[TopicSubscription, Properties]] = dict(router.raw_filters)
    for sub in router.subscriptions:
        if sub.granted_qos is not None:
            options = _filter_subscription(router, sub.topic_filter, sub.options)
            seen[sub.topic_filter] = (options, _sub_properties(client, sub))
    return seen


async def subscribe(
    client: MqttClient,
    topic_filter: str,
    *,
    qos: QoS | int,
    no_local: bool,
    retain_as_published: bool,
    retain_handling: RetainHandling | int,
    buffer: int,
    overflow: Overflow,
    properties: Properties | None,
    listener: Listener | None,
    manual_ack: bool,
) -> Subscription:
    """The body of `MqttClient.subscribe`."""
    if listener is not None and not callable(listener):
        raise TypeError(
            f"listener must be a callable taking a Message, not "
            f"{type(listener).__name__}"
        )
    client._check_open()
    sub = _new_subscription(
        client,
        topic_filter,
        qos=qos,
        no_local=no_local,
        retain_as_published=retain_as_published,
        retain_handling=retain_handling,
        buffer=buffer,
        overflow=overflow,
        manual_ack=manual_ack,
    )
    shared = (
        listener is not None
        and overflow == "wait"
        and not inspect.iscoroutinefunction(listener)
        and not inspect.iscoroutinefunction(type(listener).__call__)
    )
    if shared:
        # Synchronous listeners share one dispatcher task: a task switch per
        # message per subscription would cost more than most listeners do.
        assert listener is not None  # shared says so
        sub._share(listener, _listener_hub(client))
    router = client._router
    options = _filter_subscription(router, topic_filter, sub.options)
    router.register(sub)
    try:
        await _subscribe(client, sub, options, properties)
    except BaseException as exc:
        last = router.unregister(sub)
        sub._release()
        if isinstance(exc, anyio.get_cancelled_exc_class()) and last:
            # The SUBSCRIBE may have reached the broker: take it back.
            with anyio.move_on_after(client.disconnect_timeout, shield=True):
                with contextlib.suppress(MqttError):
                    await _request_unsubscribe(client, topic_filter)
        raise
    if listener is not None and not shared:
        client._spawn(
            run_listener,
            client,
            sub,
            listener,
            name=f"mqtt-dispatch[{topic_filter}]",
        )
    return sub


def _listener_hub(client: MqttClient) -> Hub:
    """The shared dispatch queue of synchronous listeners (made on first use)."""
    router = client._router
    if router.hub is None:
        router.hub = Hub(intake=router.intake)
        client._spawn(router.hub.run, client, name=f"mqtt-dispatch[{client.client_id}]")
    return router.hub


@contextlib.asynccontextmanager
async def subscription(
    client: MqttClient,
    topic_filter: str,
    *,
    qos: QoS | int,
    no_local: bool,
    retain_as_published: bool,
    retain_handling: RetainHandling | int,
    buffer: int,
    overflow: Overflow,
    properties: Properties | None,
    manual_ack: bool,
) -> AsyncIterator[Subscription]:
    """The body of `MqttClient.subscription`."""
    sub = await client.subscribe(
        topic_filter,
        qos=qos,
        no_local=no_local,
        retain_as_published=retain_as_published,
        retain_handling=retain_handling,
        buffer=buffer,
        overflow=overflow,
        properties=properties,
        manual_ack=manual_ack,
    )
    try:
        yield sub
    finally:
        with anyio.move_on_after(client.disconnect_timeout, shield=True):
            with contextlib.suppress(MqttError):
                await sub.unsubscribe()
        sub._release()


async def _subscribe(
    client: MqttClient,
    sub: Subscription,
    options: TopicSubscription,
    properties: Properties | None,
) -> None:
    props = _sub_properties(client, sub)
    if properties is not None:
        props = attrs.evolve(
            properties, subscription_identifiers=props.subscription_identifiers
        )
    result = await operations.request(
        client, lambda session: session.subscribe([options], properties=props)
    )
    assert isinstance(result, Subscribed)
    code = result.reason_codes[0]
    if code.is_failure:
        raise SubscribeError(
            f"the broker refused the subscription to {sub.topic_filter!r}: "
            f"{code.phrase} (reason code {code.value:#04x})",
            reason_code=code,
        )
    granted = int(code)
    # Every subscription on this filter gets what it asked for, up to what
    # the broker granted the filter.
    for sibling in client._router.siblings(sub.topic_filter):
        sibling.granted_qos = QoS(min(granted, int(sibling.options.qos), 2))


def resubscribed(client: MqttClient, topic_filter: str, event: Subscribed) -> None:
    """The broker answered a re-subscription: a refusal ends its subscriptions."""
    code = event.reason_codes[0] if event.reason_codes else ReasonCode.SUCCESS
    router = client._router
    if not code.is_failure:
        for sub in router.siblings(topic_filter):
            sub.granted_qos = QoS(min(int(code), int(sub.options.qos)))
        return
    router.raw_filters.pop(topic_filter, None)
    error = SubscribeError(
        f"the broker refused the subscription to {topic_filter!r} again after "
        f"reconnecting: {code.phrase} (reason code {code.value:#04x})",
        reason_code=code,
    )
    _LOGGER.warning("%s", error)
    for sub in router.siblings(topic_filter):
        router.unregister(sub)
        sub._fail(error)


# -- ending subscriptions ------------------------------------------------------------------


async def _request_unsubscribe(client: MqttClient, topic_filter: str) -> Unsubscribed:
    result = await operations.request(
        client, lambda session: session.unsubscribe([topic_filter])
    )
    assert isinstance(result, Unsubscribed)
    return result


async def unsubscribe(client: MqttClient, sub: Subscription) -> None:
    """End *sub*; UNSUBSCRIBE its filter when no other subscription uses it."""
    last = client._router.unregister(sub)
    sub._close()
    if not sub.statistics().queued:
        sub._release()
    if not last or client._state != "running":
        await anyio.lowlevel.checkpoint()
        return
    if not client.is_connected:
        # A resumed session would still have the filter: the UNSUBSCRIBE goes
        # out after the next CONNACK if it says session present (else the
        # broker forgot it, and we re-subscribe nothing).
        client._offline_unsubscribes.add(sub.topic_filter)
        await anyio.lowlevel.checkpoint()
        return
    try:
        result = await _request_unsubscribe(client, sub.topic_filter)
    except NotOpenError:
        return
    codes = result.reason_codes
    if codes and codes[0].is_failure and codes[0] != ReasonCode.NO_SUBSCRIPTION_EXISTED:
        raise UnsubscribeError(
            f"the broker refused to unsubscribe {sub.topic_filter!r}: "
            f"{codes[0].phrase} (reason code {codes[0].value:#04x})",
            reason_code=codes[0],
        )


# -- the lower level: raw filters and the client-wide message stream -------------------


@contextlib.asynccontextmanager
async def messages(
    client: MqttClient, *, buffer: int, overflow: Overflow
) -> AsyncIterator[Subscription]:
    """The body of `MqttClient.messages`."""
    if client._state != "new":
        client._check_open()
    sub = Subscription(
        "#",
        TopicSubscription(filter="#"),
        overflow=overflow,
        buffer=buffer,
        client=client,
    )
    router = client._router
    sub._intake = router.intake
    catch_all = router.catch_all
    catch_all.append(sub)
    try:
        await anyio.lowlevel.checkpoint()
        yield sub
    finally:
        if sub in catch_all:
            catch_all.remove(sub)
        sub._release()


async def subscribe_filters(
    client: MqttClient,
    subscriptions: Sequence[TopicSubscription],
    properties: Properties | None,
) -> tuple[ReasonCode, ...]:
    """The body of `MqttClient.subscribe_filters`."""
    if not subscriptions:
        raise ValueError("subscribe_filters needs at least one topic filter")
    for options in subscriptions:
        validate_topic_filter(options.filter)
    props = EMPTY_PROPERTIES if properties is None else properties
    result = await operations.request(
        client,
        lambda session: session.subscribe(list(subscriptions), properties=props),
    )
    assert isinstance(result, Subscribed)
    for options, code in zip(subscriptions, result.reason_codes, strict=False):
        if not code.is_failure:
            client._router.raw_filters[options.filter] = (options, props)
    return result.reason_codes


async def unsubscribe_filters(
    client: MqttClient, filters: Sequence[str], properties: Properties | None
) -> tuple[ReasonCode, ...]:
    """The body of `MqttClient.unsubscribe_filters`."""
    if not filters:
        raise ValueError("unsubscribe_filters needs at least one topic filter")
    for topic_filter in filters:
        validate_topic_filter(topic_filter)
    props = EMPTY_PROPERTIES if properties is None else properties
    for topic_filter in filters:
        client._router.raw_filters.pop(topic_filter, None)
    result = await operations.request(
        client,
        lambda session: session.unsubscribe(list(filters), properties=props),
    )
    assert isinstance(result, Unsubscribed)
    return result.reason_codes or tuple(ReasonCode.SUCCESS for _ in filters)
