"""What one connection sets up once, cheaper (#9, speed: connect+subscribe+disconnect).

The CONNECT properties a client's options make are shared between clients with
the same options; a URI without credentials is parsed once; a link's events are
made by their first waiter (also after the fact); the reader that sees the end
of its link itself does not cancel its own scope, only the others'. The first
connection's attempts carry aclose()'s cancellation themselves (no scope around
them all).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
import trio
import trio.testing

from tests._fakes import (
    FakeBroker,
    make_client,
    virtual_deadline_fixture,  # noqa: F401 - the virtual_deadline fixture
)
from trio_mqttconn import NotOpenError
from trio_mqttconn._engine import connector
from trio_mqttconn._engine.link import Counters, Link, _Batch
from trio_mqttconn._packets import ConnectPacket
from trio_mqttconn._properties import Properties
from trio_mqttconn._transports import Endpoint, parse_uri

if TYPE_CHECKING:
    import anyio.abc


async def _connect_packet(broker: FakeBroker, **options: Any) -> ConnectPacket:
    async with make_client(broker, **options):
        pass
    packet = broker.connections[-1].received[0]
    assert isinstance(packet, ConnectPacket)
    return packet


@pytest.mark.trio
async def test_connect_properties_follow_each_clients_options(
    autojump_clock: trio.testing.MockClock, virtual_deadline: None
) -> None:
    async with FakeBroker() as broker:
        first = await _connect_packet(broker, receive_maximum=10, session_expiry=30)
        again = await _connect_packet(broker, receive_maximum=10, session_expiry=30)
        other = await _connect_packet(broker, receive_maximum=20, topic_alias_maximum=5)
        given = await _connect_packet(
            broker,
            receive_maximum=10,
            properties=Properties(user_properties=(("k", "v"),)),
        )
        default = await _connect_packet(broker, receive_maximum=65535)
    assert first.properties.receive_maximum == 10
    assert first.properties.session_expiry_interval == 30
    assert again.properties == first.properties
    assert other.properties.receive_maximum == 20
    assert other.properties.topic_alias_maximum == 5
    assert other.properties.session_expiry_interval is None
    assert given.properties.receive_maximum == 10
    assert given.properties.user_properties == (("k", "v"),)
    assert default.properties.receive_maximum is None


def test_connect_properties_cache_stays_bounded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    made = connector._OPTION_PROPERTIES
    monkeypatch.setattr(connector, "_OPTION_PROPERTIES", {})
    for value in range(connector._OPTION_PROPERTIES_MAX + 3):
        connector._remember((0, value, None, 0), Properties(receive_maximum=value + 1))
    assert 0 < len(connector._OPTION_PROPERTIES) <= connector._OPTION_PROPERTIES_MAX
    assert made is not connector._OPTION_PROPERTIES


def test_parse_uri_parses_a_uri_once_unless_it_has_credentials(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from trio_mqttconn import _transports

    monkeypatch.setattr(_transports, "_PARSED", {})
    assert parse_uri("mqtt://cache.test:1884") is parse_uri("mqtt://cache.test:1884")
    secret = "mqtt://user:secret@cache.test:1884"
    assert parse_uri(secret) == parse_uri(secret)
    assert parse_uri(secret) is not parse_uri(secret)
    assert all("secret" not in uri for uri in _transports._PARSED)
    for port in range(1, _transports._PARSED_MAX + 3):
        parse_uri(f"mqtt://cache.test:{port}")
    assert 0 < len(_transports._PARSED) <= _transports._PARSED_MAX
    with pytest.raises(TypeError):  # not a str: parsed as before, never cached
        parse_uri(b"mqtt://cache.test")  # type: ignore[arg-type]


def _link() -> Link:
    return Link(
        stream=_Stream(),  # type: ignore[arg-type]  # never read or written
        endpoint=parse_uri("mqtt://link.test"),
        keepalive=0.0,
        last_heard=0.0,
        last_sent=0.0,
        session=None,  # type: ignore[arg-type]  # not used here
        counters=Counters(),
        on_end=lambda link, reason: None,
    )


class _Stream:
    """Enough of a byte stream for a Link that never reads or writes."""


@pytest.mark.trio
async def test_link_events_are_made_by_their_first_waiter_even_after_the_fact() -> None:
    link = _link()
    ended = trio.Event()

    async def waiter() -> None:
        await link.wait_ended()
        ended.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(waiter)
        await trio.testing.wait_all_tasks_blocked()
        link.end(ConnectionError("gone"))
        await ended.wait()
    await link.wait_ended()  # ended before: returns at once

    batch = _Batch()
    batch.set()
    await batch.wait()  # written before anyone waited
    failed = _Batch()
    failed.fail(OSError("broken"))
    await failed.wait()
    assert failed.error is not None

    waiting = _Batch()
    done = trio.Event()

    async def batch_waiter() -> None:
        await waiting.wait()
        done.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(batch_waiter)
        await trio.testing.wait_all_tasks_blocked()
        waiting.set()
        await done.wait()


@pytest.mark.trio
async def test_link_end_spares_the_scope_of_the_task_that_ends_it() -> None:
    link = _link()
    own = link.new_scope()
    other = link.new_scope()
    link.end(ConnectionError("gone"), spare=own)
    assert not own.cancel_called
    assert other.cancel_called
    late = link.new_scope()  # a scope made after the end is cancelled at once
    assert late.cancel_called


@pytest.mark.trio
async def test_aclose_while_an_attempt_fails_stops_the_failover(
    autojump_clock: trio.testing.MockClock, virtual_deadline: None
) -> None:
    # An attempt begun after aclose() is cancelled at once.
    async with FakeBroker() as broker:
        asked: list[str] = []
        closing = trio.Event()

        async def transport(endpoint: Endpoint) -> anyio.abc.ByteStream:
            asked.append(endpoint.host)
            if endpoint.host == "first.test":
                with trio.CancelScope(shield=True):
                    await closing.wait()
                raise ConnectionRefusedError("refused by the test")
            return await broker.connect(endpoint)

        client = make_client(
            broker, ["mqtt://first.test", "mqtt://second.test"], transport=transport
        )

        async def close() -> None:
            await trio.testing.wait_all_tasks_blocked()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(client.aclose)
                await trio.testing.wait_all_tasks_blocked()
                closing.set()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(close)
            with pytest.raises(
                NotOpenError, match=r"^the client was closed while it was connecting$"
            ):
                async with client:
                    pytest.fail("connected")  # pragma: no cover
        assert asked == ["first.test", "second.test"]
        assert broker.connections == []


def test_protocol_is_taken_as_it_is_or_by_value() -> None:
    from trio_mqttconn import MqttClient, ProtocolVersion

    given = MqttClient("mqtt://setup.test", protocol=ProtocolVersion.V311)
    assert given.protocol is ProtocolVersion.V311
    assert MqttClient("mqtt://setup.test", protocol=5).protocol is ProtocolVersion.V5
    with pytest.raises(ValueError, match="3"):
        MqttClient("mqtt://setup.test", protocol=3)
