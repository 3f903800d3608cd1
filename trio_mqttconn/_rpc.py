"""Request/response over MQTT 5: Response Topic and Correlation Data.

Theory of operation
-------------------
The requesting side of a client is one `_Requester`, made on the first request
and kept by the client. It owns one response topic (MQTT 5, section 4.10 Request /
Response), subscribed once, lazily, by the first request (under a lock, so
concurrent first requests subscribe once). The topic is derived from the CONNACK
in force: ``<Response Information>/<client id>`` when the broker sent Response
Information (section 4.10.1: a basis for response topics, typically a part of the
topic tree the broker reserves for this client; the client id keeps it unique when
a broker hands every client the same prefix), else ``trio_mqttconn/responses/
<client id>``. The broker sends Response Information only when CONNECT asked for it
(``Properties(request_response_information=1)`` in the client's ``properties``).

A reconnect may bring another CONNACK (failover to another broker) whose Response
Information differs. The subscription of the old topic is restored like any other,
so requests in flight still get their responses. The next request that finds no
request in flight moves to the new topic: it subscribes the new one, then
unsubscribes the old one. While requests keep overlapping the old topic stays in
use (it still works wherever the resubscription was granted).
The subscription has a synchronous listener: the client's shared dispatcher task
calls it for every response, so request/response adds no task of its own and
nothing outlives the client.

Each request carries fresh Correlation Data (8 random bytes per requester, then a
counter: unique for the requester's life, and a response meant for an earlier
process with the same client id does not match). The request registers a waiter
under it *before* the PUBLISH goes out, so a fast response cannot overtake it; the
listener pops the waiter and wakes only that caller. A response whose correlation
has no waiter (its caller timed out, was cancelled, or it was never ours) is
dropped and counted. Whatever ends a request (response, timeout, cancellation,
error) removes its waiter in ``finally``: nothing is left behind. When the client
closes, waiting callers fail with `NotOpenError` at once.

The responding side is a plain subscription whose messages are wrapped as
`Request`; ``respond()`` publishes to the request's Response Topic and copies its
Correlation Data (MQTT 5, sections 3.3.2.3.5 and 3.3.2.3.6). A message without a
Response Topic cannot be answered: it is counted and skipped.

Both sides need MQTT 5 (MQTT 3.1.1 has no properties): on a 3.1.1 client they
raise `ConfigError`, a ValueError, naming the ``protocol`` option.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
from typing import TYPE_CHECKING, final

import anyio
import attrs

from ._enums import ProtocolVersion, QoS
from ._exceptions import ConfigError, NotOpenError, RequestTimeout
from ._properties import EMPTY_PROPERTIES, Properties

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from typing import Self

    from ._client import MqttClient
    from ._events import ConnAckInfo
    from ._groups import Event as _Event
    from ._message import Message
    from ._subscription import Subscription

__all__ = [
    "Request",
    "RequestStatistics",
    "Responder",
    "ResponderStatistics",
    "request",
    "request_statistics",
    "responder",
]

_logger = logging.getLogger("trio_mqttconn.client")

#: The response topic is this prefix plus the client id.
RESPONSE_PREFIX = "trio_mqttconn/responses/"


@final
@attrs.frozen(kw_only=True)
class RequestStatistics:
    """Counters of a client's requesting side (``client.request_statistics()``)."""

    response_topic: str | None
    """The topic responses come back on; None before the first request."""
    requests: int
    """Requests published."""
    responses: int
    """Responses handed to their waiting caller."""
    dropped_responses: int
    """Responses nobody waited for (the caller gave up, or not ours): dropped."""
    timeouts: int
    """Requests that ended with `RequestTimeout`."""
    pending: int
    """Requests waiting for their response right now."""


@final
@attrs.frozen(kw_only=True)
class ResponderStatistics:
    """Counters of one `Responder`."""

    topic_filter: str
    """The filter requests arrive on."""
    requests: int
    """Requests handed to the application."""
    skipped: int
    """Messages without a Response Topic: not answerable, so not handed out."""


@attrs.define(eq=False)
class _Waiter:
    event: _Event
    message: Message | None = None
    error: BaseException | None = None


def _with(
    properties: Properties,
    *,
    response_topic: str | None = None,
    correlation_data: bytes | None,
) -> Properties:
    """*properties* plus these two (a fresh record is 4x cheaper than evolve)."""
    if properties is EMPTY_PROPERTIES:
        return Properties(
            response_topic=response_topic, correlation_data=correlation_data
        )
    return attrs.evolve(
        properties, response_topic=response_topic, correlation_data=correlation_data
    )


def _require_v5(client: MqttClient, what: str) -> None:
    if client.protocol is not ProtocolVersion.V5:
        raise ConfigError(
            f"{what} needs MQTT 5 (Response Topic and Correlation Data), but this "
            f"client speaks MQTT 3.1.1: create it with protocol=ProtocolVersion.V5"
        )


def _response_topic(client_id: str, response_information: str | None = None) -> str:
    """The response topic for *client_id*, wildcards replaced.

    ``<response_information>/<client id>`` when the broker offered Response
    Information (a trailing ``/`` of it is not doubled), else
    ``trio_mqttconn/responses/<client id>``.
    [v5:MQTT-3.3.2-14] a Response Topic contains no wildcard characters.
    """
    if response_information:
        prefix = response_information.rstrip("/") + "/"
    else:
        prefix = RESPONSE_PREFIX
    topic = prefix + client_id
    return topic.replace("+", "_").replace("#", "_")


@attrs.define(eq=False)
class _Requester:
    """The requesting side of one client (made on its first request)."""

    _client: MqttClient = attrs.field(alias="client")
    topic: str | None = None
    _waiters: dict[bytes, _Waiter] = attrs.field(factory=dict)
    _lock: anyio.Lock = attrs.field(factory=anyio.Lock)
    _subscription: Subscription | None = None
    _basis: ConnAckInfo | None = None
    """The CONNACK `topic` was last checked against."""
    _prefix: bytes = attrs.field(factory=lambda: os.urandom(8))
    _counter: itertools.count[int] = attrs.field(factory=itertools.count)
    _closed: BaseException | None = None
    requests: int = 0
    responses: int = 0
    dropped: int = 0
    timeouts: int = 0

    def statistics(self) -> RequestStatistics:
        return RequestStatistics(
            response_topic=self.topic,
            requests=self.requests,
            responses=self.responses,
            dropped_responses=self.dropped,
            timeouts=self.timeouts,
            pending=len(self._waiters),
        )

    def close(self, error: BaseException) -> None:
        """The client closed: every waiting caller fails with *error* now."""
        self._closed = error
        waiters, self._waiters = self._waiters, {}
        for waiter in waiters.values():
            waiter.error = error
            waiter.event.set()

    def _on_response(self, message: Message) -> None:
        # Called by the client's dispatcher: must not raise and must not block.
        correlation = message.properties.correlation_data
        waiter = None if correlation is None else self._waiters.pop(correlation, None)
        if waiter is None:
            self.dropped += 1
            _logger.debug(
                "dropped a response on %s: no request waits for its correlation data",
                message.topic,
            )
            return
        self.responses += 1
        waiter.message = message
        waiter.event.set()

    def _settled(self) -> bool:
        """Whether the response topic needs no (re)subscription now."""
        if self._subscription is None:
            return False
        # A new CONNACK (a reconnect) may offer other Response Information; the
        # topic moves only while no request waits on the old one.
        return self._client.connack is self._basis or bool(self._waiters)

    async def _subscribe(self) -> None:
        async with self._lock:
            if self._settled():
                return
            client = self._client
            await client.wait_connected()
            info = client.connack
            assert info is not None  # set before wait_connected() returns
            topic = _response_topic(info.client_id, info.response_information)
            old = self._subscription
            if old is not None and topic == self.topic:
                self._basis = info
                return
            self._subscription = await client.subscribe(
                topic, qos=QoS.AT_LEAST_ONCE, listener=self._on_response
            )
            self.topic, self._basis = topic, info
            if old is not None:
                # No request waits on the old topic (checked above, and new
                # requests wait for this lock): it can go.
                _logger.info(
                    "response topic moved from %s to %s (the broker's Response "
                    "Information changed)",
                    old.topic_filter,
                    topic,
                )
                await old.unsubscribe()

    async def _exchange(
        self,
        topic: str,
        payload: bytes | bytearray | memoryview | str,
        qos: QoS | int,
        properties: Properties,
        correlation: bytes,
        waiter: _Waiter,
    ) -> None:
        if not self._settled():
            await self._subscribe()
        # Registered before the PUBLISH leaves: the response cannot overtake it.
        self._waiters[correlation] = waiter
        await self._client.publish(
            topic,
            payload,
            qos=qos,
            properties=_with(
                properties, response_topic=self.topic, correlation_data=correlation
            ),
        )
        self.requests += 1
        await waiter.event.wait()

    async def request(
        self,
        topic: str,
        payload: bytes | bytearray | memoryview | str,
        *,
        qos: QoS | int,
        timeout: float | None,  # noqa: ASYNC109 (issue #11: the request API takes one; it raises RequestTimeout)
        properties: Properties,
    ) -> Message:
        if self._closed is not None:
            await anyio.lowlevel.checkpoint()
            raise NotOpenError("the client is closed")
        correlation = self._prefix + next(self._counter).to_bytes(8, "big")
        # The client's event factory: trio's own Event on trio (cheaper).
        waiter = _Waiter(event=self._client._new_event())
        try:
            if timeout is None:
                await self._exchange(
                    topic, payload, qos, properties, correlation, waiter
                )
            else:
                with anyio.move_on_after(timeout):
                    await self._exchange(
                        topic, payload, qos, properties, correlation, waiter
                    )
        finally:
            self._waiters.pop(correlation, None)
        if waiter.message is not None:
            return waiter.message
        if waiter.error is not None:
            raise waiter.error
        self.timeouts += 1
        raise RequestTimeout(
            f"no response to the request on {topic!r} within {timeout} s: is a "
            f"responder subscribed to it? raise timeout= if it is slow"
        )


def _requester(client: MqttClient) -> _Requester:
    """The client's requester, made on first use and kept by the client."""
    requester = client._requester
    if requester is None:
        requester = client._requester = _Requester(client=client)
    return requester


async def request(
    client: MqttClient,
    topic: str,
    payload: bytes | bytearray | memoryview | str = b"",
    *,
    qos: QoS | int = QoS.AT_LEAST_ONCE,
    timeout: float | None = None,  # noqa: ASYNC109 (issue #11: raises RequestTimeout)
    properties: Properties | None = None,
) -> Message:
    """Publish a request on *topic* and return its response (MQTT 5).

    See ``MqttClient.request``.
    """
    _require_v5(client, "request()")
    props = EMPTY_PROPERTIES if properties is None else properties
    if props.response_topic is not None or props.correlation_data is not None:
        raise ValueError(
            "properties must not set response_topic or correlation_data: "
            "request() sets both itself"
        )
    if timeout is not None and not timeout > 0:
        raise ValueError(f"timeout must be > 0 seconds or None, not {timeout!r}")
    return await _requester(client).request(
        topic, payload, qos=qos, timeout=timeout, properties=props
    )


def request_statistics(client: MqttClient) -> RequestStatistics:
    """Counters of *client*'s requesting side (see ``MqttClient.request_statistics``)."""
    return _requester(client).statistics()


@final
@attrs.frozen(kw_only=True)
class Request:
    """A request received by a `Responder`: the message, and how to answer it.

    Made by the responder for every message that carries a Response Topic.
    """

    message: Message
    """The request message as received."""
    _client: MqttClient = attrs.field(alias="client", repr=False, eq=False)

    @property
    def topic(self) -> str:
        """The topic the request was published to."""
        return self.message.topic

    @property
    def payload(self) -> bytes:
        """The request's payload."""
        return self.message.payload

    @property
    def response_topic(self) -> str:
        """Where the response goes (the request's Response Topic)."""
        topic = self.message.properties.response_topic
        assert topic is not None  # the responder hands out no others
        return topic

    @property
    def correlation_data(self) -> bytes | None:
        """The request's Correlation Data, copied into the response."""
        return self.message.properties.correlation_data

    async def respond(
        self,
        payload: bytes | bytearray | memoryview | str = b"",
        *,
        qos: QoS | int = QoS.AT_LEAST_ONCE,
        properties: Properties | None = None,
    ) -> None:
        """Publish *payload* as the response to this request.

        The response goes to the request's Response Topic and carries its
        Correlation Data (MQTT 5, section 4.10); *properties* may add others
        (content type, user properties). Returns once published at *qos*, like
        ``MqttClient.publish``, with the same cancellation guarantees.

        Raises:
            ValueError: *properties* set response_topic or correlation_data.
            NotOpenError: the client is not running.
        """
        props = EMPTY_PROPERTIES if properties is None else properties
        if props.response_topic is not None or props.correlation_data is not None:
            raise ValueError(
                "properties must not set response_topic or correlation_data: "
                "respond() copies the request's correlation data itself"
            )
        await self._client.publish(
            self.response_topic,
            payload,
            qos=qos,
            properties=_with(props, correlation_data=self.correlation_data),
        )


@final
@attrs.define(eq=False)
class Responder:
    """The requests arriving on a filter: ``async for request in responder``.

    Yielded by ``MqttClient.responder``. Messages without a Response Topic cannot
    be answered; they are counted in `statistics` and skipped. Iteration ends when
    the responder's context exits or the client closes.
    """

    _client: MqttClient = attrs.field(alias="client", repr=False)
    _subscription: Subscription = attrs.field(alias="subscription")
    _requests: int = 0
    _skipped: int = 0

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> Request:
        async for message in self._subscription:
            if message.properties.response_topic is None:
                self._skipped += 1
                _logger.debug(
                    "skipped a message on %s without a response topic", message.topic
                )
                continue
            self._requests += 1
            return Request(message=message, client=self._client)
        raise StopAsyncIteration

    def statistics(self) -> ResponderStatistics:
        """Counters of this responder."""
        return ResponderStatistics(
            topic_filter=self._subscription.topic_filter,
            requests=self._requests,
            skipped=self._skipped,
        )


@contextlib.asynccontextmanager
async def responder(
    client: MqttClient,
    topic_filter: str,
    *,
    qos: QoS | int = QoS.AT_LEAST_ONCE,
    buffer: int = 1000,
) -> AsyncIterator[Responder]:
    """Subscribe to *topic_filter* and yield its requests (see ``MqttClient.responder``)."""
    _require_v5(client, "responder()")
    async with client.subscription(topic_filter, qos=qos, buffer=buffer) as sub:
        yield Responder(client=client, subscription=sub)


# The package imports this module when a request/response name is first used; the
# public classes report the package as their module however they were reached (as
# trio_mqttconn/__init__.py does for the names it imports eagerly).
for _public in (Request, RequestStatistics, Responder, ResponderStatistics):
    _public.__module__ = "trio_mqttconn"
del _public
