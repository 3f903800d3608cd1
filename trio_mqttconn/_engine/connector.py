"""Connector: the handshake, failover over the URIs, and the reconnect supervisor.

Theory of operation
-------------------
`handshake` makes one attempt: stream, CONNECT, CONNACK, bounded by
*connect_timeout*; it returns a new `Link` (the only way to the session from then
on) with the CONNACK's `Connected` event and whatever else the first chunk held.
`connect_round` tries every URI once, starting with the last good one; a refusal
that retrying cannot fix (bad credentials, banned ...) ends the round only after the
other URIs were tried. `supervise` serves one link at a time and, when it ends,
waits (capped exponential backoff with jitter) and reconnects. The backoff starts
over only after a connection that stayed up (`STABLE_FACTOR` x the delay before it,
at least *reconnect_delay*): a broker that accepts and then kicks us at once (a
duplicate client id) sees the delays grow.
"""

from __future__ import annotations

import contextlib
import logging
import math
from typing import TYPE_CHECKING, Any, Final

import anyio
import anyio.abc
import attrs

from .._backoff import Backoff
from .._enums import ProtocolVersion, ReasonCode
from .._events import Connected, ConnectionRefused
from .._exceptions import (
    ConnectError,
    ConnectionLost,
    ConnectTimeout,
    NotOpenError,
    ProtocolError,
)
from .._groups import current_time, new_scope
from .._packets import ConnectPacket
from .._properties import EMPTY_PROPERTIES
from .._session import SessionState
from .._transports import connect_stream, direct_socket, direct_transport
from . import trace
from .link import READ_SIZE, Link, transport_drained, transport_write

if TYPE_CHECKING:
    from .._client import MqttClient
    from .._events import Event
    from .._properties import Properties
    from .._transports import Endpoint

__all__ = [
    "CLOSED_WHILE_CONNECTING",
    "FATAL_CONNACK",
    "connect_round",
    "handshake",
    "supervise",
]

#: Why the first connection failed when aclose() came first.
CLOSED_WHILE_CONNECTING = "the client was closed while it was connecting"

_LOGGER = logging.getLogger("trio_mqttconn.client")

#: Reason codes of a refused CONNACK that retrying cannot fix.
FATAL_CONNACK = frozenset(
    {
        ReasonCode.MALFORMED_PACKET,
        ReasonCode.PROTOCOL_ERROR,
        ReasonCode.BAD_USER_NAME_OR_PASSWORD,
        ReasonCode.NOT_AUTHORIZED,
        ReasonCode.BANNED,
        ReasonCode.CLIENT_IDENTIFIER_NOT_VALID,
        ReasonCode.UNSUPPORTED_PROTOCOL_VERSION,
        ReasonCode.BAD_AUTHENTICATION_METHOD,
    }
)

_REFUSAL_HINTS = {
    ReasonCode.BAD_USER_NAME_OR_PASSWORD: "; check the user name and password",
    ReasonCode.NOT_AUTHORIZED: "; check the user name, password and the broker's ACL",
    ReasonCode.CLIENT_IDENTIFIER_NOT_VALID: "; use another client_id",
    ReasonCode.UNSUPPORTED_PROTOCOL_VERSION: (
        "; the broker does not speak this MQTT version, try protocol=ProtocolVersion.V311"
    ),
    ReasonCode.SERVER_UNAVAILABLE: "; try again later",
    ReasonCode.SERVER_BUSY: "; try again later",
}

#: A connection "stayed up" once it lived this many times the delay before it.
STABLE_FACTOR = 4.0


def connect_packet(client: MqttClient, endpoint: Endpoint) -> ConnectPacket:
    """The CONNECT for *endpoint* (credentials: the client's, else the URI's)."""
    username = client._username if client._username is not None else endpoint.username
    password = client._password if client._password is not None else endpoint.password
    properties = client.properties
    if client.protocol is ProtocolVersion.V5:
        if properties is EMPTY_PROPERTIES:
            # Made from the options alone: shared (Properties are frozen).
            key = (
                client.session_expiry,
                client.receive_maximum,
                client.maximum_packet_size,
                client.topic_alias_maximum,
            )
            properties = _OPTION_PROPERTIES.get(key) or _remember(
                key, _with_options(client, properties)
            )
        else:
            properties = _with_options(client, properties)
    assert client.client_id is not None
    return ConnectPacket(
        client_id=client.client_id,
        protocol_version=client.protocol,
        clean_start=client.clean_start,
        keepalive=client.keepalive,
        username=username,
        password=None if password is None else password.encode("utf-8"),
        will=client.will,
        properties=properties,
    )


#: CONNECT properties made from the client's options alone (no ``properties=``),
#: by those options: ``attrs.evolve`` for each client cost more than the rest of
#: its CONNECT.
_OPTION_PROPERTIES: dict[tuple[int, int, int | None, int], Properties] = {}
_OPTION_PROPERTIES_MAX: Final = 64


def _remember(
    key: tuple[int, int, int | None, int], properties: Properties
) -> Properties:
    if len(_OPTION_PROPERTIES) >= _OPTION_PROPERTIES_MAX:
        _OPTION_PROPERTIES.clear()
    _OPTION_PROPERTIES[key] = properties
    return properties


def _with_options(client: MqttClient, properties: Properties) -> Properties:
    """*properties* with the MQTT 5 CONNECT properties the client's options set."""
    changes: dict[str, Any] = {}
    if client.session_expiry:
        changes["session_expiry_interval"] = client.session_expiry
    if client.receive_maximum != 65535:
        changes["receive_maximum"] = client.receive_maximum
    if client.maximum_packet_size is not None:
        changes["maximum_packet_size"] = client.maximum_packet_size
    if client.topic_alias_maximum:
        changes["topic_alias_maximum"] = client.topic_alias_maximum
    return attrs.evolve(properties, **changes) if changes else properties


async def open_stream(client: MqttClient, endpoint: Endpoint) -> anyio.abc.ByteStream:
    """A byte stream to *endpoint* (the client's transport factory, if it has one)."""
    if client._transport is not None:
        return await client._transport(endpoint)
    return await connect_stream(
        endpoint,
        ssl_context=client._ssl_context,
        tls_insecure=client._tls_insecure,
        websocket_headers=client._websocket_headers,
        local_address=client._local_address,
        socket_options=client._socket_options,
    )


def _looks_like_http(data: bytes) -> bool:
    return data[:5] == b"HTTP/" or data[:1] == b"<"


async def handshake(
    client: MqttClient, endpoint: Endpoint
) -> tuple[Link, Connected, list[Event]]:
    """One connection attempt: stream, CONNECT, CONNACK, bounded by connect_timeout."""
    session = client._session
    counters = client._counters
    stream: anyio.abc.ByteStream | None = None
    first = True
    # anyio.fail_after without its generator-based context manager: past the
    # deadline the scope swallows the cancellation and we get below it.
    scope = new_scope(timeout=client.connect_timeout or math.inf)
    # The first connection (no supervisor task yet): aclose() cancels the
    # attempt itself, and every attempt begun after it.
    starting = not counters.connects
    if starting:
        client._task_scopes.add(scope)
        if client._stopping:
            scope.cancel()
    try:
        with scope:
            stream = await open_stream(client, endpoint)
            packet = connect_packet(client, endpoint)
            connect = session.connect(packet)
            if trace.enabled():
                trace.sent(
                    "CONNECT",
                    len(connect),
                    client_id=packet.client_id,
                    clean_start=packet.clean_start,
                    keepalive=packet.keepalive,
                    username=packet.username,
                )
            sock = direct_socket(stream)
            sent = 0
            if sock is not None:
                # trio: the socket itself, as Link.send writes; no schedule point
                # after it, waiting for the CONNACK is one. Any error: anyio's
                # send below tries again and reports it its way.
                with contextlib.suppress(OSError):
                    sent = sock.send(connect)
            elif (direct := direct_transport(stream)) is not None and (
                direct._protocol.write_event.is_set()
            ):
                # asyncio: the same with the transport (see Link.send).
                if not transport_write(direct, connect):
                    await transport_drained(direct)
                sent = len(connect)
            if sent < len(connect):
                await stream.send(connect[sent:] if sent else connect)
            counters.bytes_sent += len(connect)
            sent_at = current_time()
            while True:
                try:
                    data = await stream.receive(READ_SIZE)
                except anyio.EndOfStream:
                    raise ConnectError(
                        f"{endpoint.display()} closed the connection before answering CONNECT; "
                        "check the protocol version and the broker's log"
                    ) from None
                if first and _looks_like_http(data):
                    raise ConnectError(
                        f"{endpoint.display()} answered CONNECT with HTTP: it is a web or "
                        "WebSocket port, not MQTT; use ws:// (or wss://) with the "
                        "broker's WebSocket path, or the broker's MQTT port"
                    )
                first = False
                counters.bytes_received += len(data)
                session.receive_data(data)
                events = session.events()
                for index, event in enumerate(events):
                    if isinstance(event, Connected):
                        link = Link(
                            stream=stream,
                            sock=sock,
                            endpoint=endpoint,
                            keepalive=float(event.keepalive),
                            last_heard=current_time(),
                            last_sent=sent_at,
                            session=session,
                            counters=counters,
                            on_end=client._link_ended,
                            persist=(
                                None
                                if client.session_store is None
                                else client._persist
                            ),
                        )
                        if event.client_id:
                            client.client_id = event.client_id
                        if _LOGGER.isEnabledFor(logging.DEBUG):
                            _LOGGER.debug(
                                "received CONNACK from %s: session present %s",
                                endpoint.display(),
                                event.session_present,
                            )
                        return link, event, events[index + 1 :]
                    if isinstance(event, ConnectionRefused):
                        raise ConnectError(
                            f"{endpoint.display()} refused the connection: "
                            f"{event.reason_code.phrase} "
                            f"(reason code {event.reason_code.value:#04x})"
                            + _REFUSAL_HINTS.get(event.reason_code, ""),
                            reason_code=event.reason_code,
                        )
        if starting and client._state != "connecting":
            raise NotOpenError(CLOSED_WHILE_CONNECTING)  # aclose() cancelled it
        raise TimeoutError  # the deadline cancelled the attempt
    except TimeoutError as exc:
        if stream is not None:
            await anyio.aclose_forcefully(stream)
        session.connection_lost()
        raise ConnectTimeout(
            f"connecting to {endpoint.display()} took longer than {client.connect_timeout:g} s "
            "(connect_timeout)"
        ) from exc
    except BaseException as exc:
        if stream is not None:
            await anyio.aclose_forcefully(stream)
        if session.state is not SessionState.CLOSED:
            session.connection_lost()
        if isinstance(exc, ConnectError | anyio.get_cancelled_exc_class()):
            raise
        if isinstance(exc, ProtocolError):
            raise ConnectError(
                f"{endpoint.display()} answered CONNECT with an invalid packet: {exc}"
            ) from exc
        if isinstance(
            exc,
            OSError
            | anyio.BrokenResourceError
            | anyio.ClosedResourceError
            | anyio.EndOfStream,
        ):
            detail = str(exc) or type(exc).__name__
            raise ConnectError(
                f"connection to {endpoint.display()} failed: {detail}"
            ) from exc
        raise
    finally:
        if starting:
            client._task_scopes.discard(scope)


async def connect_round(client: MqttClient) -> tuple[Link, Connected, list[Event]]:
    """Try every endpoint once, starting with the last good one.

    A permanent refusal (`FATAL_CONNACK`) is raised only after the other URIs
    failed too: one broker's "not authorized" does not stop failover.
    """
    endpoints = client._endpoints
    count = len(endpoints)
    last_error: ConnectError | None = None
    fatal: ConnectError | None = None
    for step in range(count):
        index = (client._endpoint_index + step) % count
        try:
            result = await handshake(client, endpoints[index])
        except ConnectError as exc:
            if exc.reason_code in FATAL_CONNACK and fatal is None:
                fatal = exc
            last_error = exc
            continue
        client._endpoint_index = index
        return result
    raise fatal or last_error or ConnectError("no broker URI to connect to")


async def supervise(
    client: MqttClient,
    link: Link,
    connected: Connected,
    rest: list[Event],
    *,
    opened: bool = False,
) -> None:
    """Serve one link at a time; reconnect with backoff until the client closes.

    *opened*: the first link's work was started already (``serve.open_link``).
    """
    backoff: Backoff | None = None  # made when first needed
    delay = 0.0
    while True:
        started = current_time()
        reason = await client._serve(link, connected, rest, opened=opened)
        opened = False
        if client._state != "running":
            return
        where = link.where
        _LOGGER.warning("lost the connection to %s: %s", where, reason)
        if client._on_connection_lost is not None:
            client._on_connection_lost(reason)
        if not client.reconnect:
            raise ConnectionLost(
                f"lost the connection to {where}: {reason}",
                reason_code=getattr(reason, "reason_code", None),
            ) from reason
        if backoff is None:
            backoff = Backoff(
                initial=client.reconnect_delay,
                maximum=client.max_reconnect_delay,
                jitter=client.reconnect_jitter,
                rng=client._random,  # None: the system's randomness
            )
        # A connection that ended with a protocol violation (ours to detect, such
        # as a broker far beyond our Receive Maximum) is never "stable": the same
        # broker state would end the next one too, so the delay keeps growing
        # instead of looping at reconnect speed.
        if link.violated is None and current_time() - started >= max(
            STABLE_FACTOR * delay, client.reconnect_delay
        ):
            backoff.reset()
        while True:
            delay = backoff.next_delay()
            _LOGGER.info("reconnecting in %.3g s", delay)
            await anyio.sleep(delay)
            try:
                link, connected, rest = await connect_round(client)
            except ConnectError as exc:
                _LOGGER.info("reconnect failed: %s", exc)
                if exc.reason_code in FATAL_CONNACK:
                    raise
                continue
            client._attach(link, connected)
            break
