"""Session stores on their own, and a client whose store fails (issue #11, part 2).

`SqliteSessionStore` must give back exactly what applying the changes in order
means (`apply_changes`, the reference), survive being closed and opened again, and
turn every SQLite failure into a `SessionStoreError` that names the file. A client
whose store fails stops with that error instead of sending what it could not record.
"""

from __future__ import annotations

import functools
import sqlite3
from typing import TYPE_CHECKING

import attrs
import pytest
import trio
from hypothesis import given, settings, strategies as st

from tests._fakes import FakeBroker as ScriptedFakeBroker, make_client
from trio_mqttconn import (
    ChangeKind,
    ConnectionLost,
    MemorySessionStore,
    MqttClient,
    MqttError,
    ProtocolVersion,
    PublishError,
    QoS,
    SessionChange,
    SessionStore,
    SessionStoreError,
    SqliteSessionStore,
    StoredSession,
    TopicSubscription,
)
from trio_mqttconn._journal import apply_changes
from trio_mqttconn._packets import PubAckPacket, PublishPacket, PubRecPacket
from trio_mqttconn._properties import Properties
from trio_mqttconn.testing import Answer

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

    from trio_mqttconn.testing import FakeBroker

V5 = ProtocolVersion.V5
V311 = ProtocolVersion.V311


def _packet(packet_id: int, qos: int = 1, payload: bytes = b"p") -> PublishPacket:
    return PublishPacket(
        topic=f"t/{packet_id}",
        payload=payload,
        qos=QoS(qos),
        packet_id=packet_id,
        properties=Properties(user_properties=(("k", "v"),)),
    )


def test_store_sqlite_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    store = SqliteSessionStore(path)
    assert "s.db" in repr(store)
    assert store.open("c1", V5).empty
    sub = TopicSubscription(filter="a/+", qos=QoS.EXACTLY_ONCE, no_local=True)
    changes = [
        SessionChange(ChangeKind.STORED, 5, _packet(5, 2)),
        SessionChange(ChangeKind.STORED, 6, _packet(6, 1)),
        SessionChange(ChangeKind.RELEASED, 5),
        SessionChange(ChangeKind.RECEIVED, 9),
        SessionChange(ChangeKind.SUBSCRIBED, subscription=sub),
        SessionChange(
            ChangeKind.SUBSCRIBED, subscription=TopicSubscription(filter="b")
        ),
        SessionChange(
            ChangeKind.UNSUBSCRIBED, subscription=TopicSubscription(filter="b")
        ),
    ]
    store.apply(changes)
    store.close()
    store.close()  # idempotent
    again = SqliteSessionStore(path)
    stored = again.open("c1", V5)
    assert stored == apply_changes(StoredSession(), changes)
    assert stored.subscriptions == (sub,)
    # Publish order survives a reopen: a later STORED comes after the earlier ones.
    again.apply([SessionChange(ChangeKind.STORED, 1, _packet(1))])
    again.apply(
        [SessionChange(ChangeKind.COMPLETED, 5), SessionChange(ChangeKind.FORGOTTEN, 9)]
    )
    again.close()
    final = SqliteSessionStore(path, fsync=True)
    state = final.open("c1", V5)
    final.close()
    assert [p.packet_id for p in state.outgoing] == [6, 1]
    assert state.released == ()
    assert state.incoming_qos2 == ()


_KINDS = st.sampled_from(list(ChangeKind))


@st.composite
def _changes(draw: st.DrawFn) -> list[SessionChange]:
    changes: list[SessionChange] = []
    for kind in draw(st.lists(_KINDS, max_size=30)):
        packet_id = draw(st.integers(1, 6))
        if kind is ChangeKind.STORED:
            qos = draw(st.sampled_from([1, 2]))
            changes.append(SessionChange(kind, packet_id, _packet(packet_id, qos)))
        elif kind in (ChangeKind.SUBSCRIBED, ChangeKind.UNSUBSCRIBED):
            name = draw(st.sampled_from(["a", "b/#", "c/+"]))
            changes.append(
                SessionChange(kind, subscription=TopicSubscription(filter=name))
            )
        else:
            changes.append(SessionChange(kind, packet_id))
    return changes


@settings(max_examples=40, deadline=None)
@given(batches=st.lists(_changes(), max_size=4))
def test_store_sqlite_matches_the_reference(
    tmp_path_factory: pytest.TempPathFactory, batches: list[list[SessionChange]]
) -> None:
    path = tmp_path_factory.mktemp("store") / "s.db"
    store = SqliteSessionStore(path)
    store.open("c", V5)
    expected = StoredSession()
    for batch in batches:
        store.apply(batch)
        expected = apply_changes(expected, batch)
    store.close()
    reopened = SqliteSessionStore(path)
    got = reopened.open("c", V5)
    reopened.close()
    # Incoming QoS 2 ids are a set: their order means nothing.
    assert attrs.evolve(got, incoming_qos2=()) == attrs.evolve(
        expected, incoming_qos2=()
    )
    assert sorted(got.incoming_qos2) == sorted(expected.incoming_qos2)


def test_store_sqlite_refuses_another_client_or_version(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    first = SqliteSessionStore(path)
    first.open("first", V5)
    first.close()
    with pytest.raises(SessionStoreError, match="'first', not 'second'"):
        SqliteSessionStore(path).open("second", V5)
    with pytest.raises(SessionStoreError, match="protocol level 5 session, not 4"):
        SqliteSessionStore(path).open("first", V311)


def test_store_memory_refuses_another_client() -> None:
    store = MemorySessionStore()
    store.open("first", V5)
    store.close()
    with pytest.raises(SessionStoreError, match="in memory holds the session"):
        store.open("second", V5)


def test_store_sqlite_errors_name_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "no" / "such" / "dir" / "s.db"
    with pytest.raises(
        SessionStoreError, match=r"session store .*s\.db: opening failed"
    ):
        SqliteSessionStore(missing).open("c", V5)
    with pytest.raises(SessionStoreError, match="is not open"):
        SqliteSessionStore(tmp_path / "x.db").apply([])


def test_store_sqlite_write_failure_rolls_back(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    store = SqliteSessionStore(path)
    store.open("c", V5)
    store.apply([SessionChange(ChangeKind.STORED, 1, _packet(1))])
    side = sqlite3.connect(path)
    side.execute("DROP TABLE incoming_qos2")
    side.commit()
    side.close()
    with pytest.raises(SessionStoreError, match="writing failed"):
        store.apply(
            [
                SessionChange(ChangeKind.COMPLETED, 1),
                SessionChange(ChangeKind.RECEIVED, 3),
            ]
        )
    store.close()
    # All of the failed call or nothing: message 1 is still stored.
    side = sqlite3.connect(path)
    assert side.execute("SELECT packet_id FROM outgoing").fetchall() == [(1,)]
    side.close()


def test_store_sqlite_damaged_message(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    store = SqliteSessionStore(path)
    store.open("c", V5)
    store.apply([SessionChange(ChangeKind.STORED, 1, _packet(1))])
    store.close()
    side = sqlite3.connect(path)
    side.execute("UPDATE outgoing SET packet_id = 2")
    side.commit()
    side.close()
    with pytest.raises(SessionStoreError, match="packet id 2 is damaged"):
        SqliteSessionStore(path).open("c", V5)


class _FailingStore:
    """A store that works until told to fail."""

    def __init__(self) -> None:
        self.fail = False
        self.applied: list[SessionChange] = []
        self.closed = False

    def open(self, client_id: str, protocol_version: ProtocolVersion) -> StoredSession:
        return StoredSession()

    def apply(self, changes: Sequence[SessionChange]) -> None:
        if self.fail:
            raise SessionStoreError("session store test: writing failed: disk full")
        self.applied.extend(changes)

    def close(self) -> None:
        self.closed = True


def test_store_protocol_is_runtime_checkable() -> None:
    assert isinstance(_FailingStore(), SessionStore)
    assert isinstance(MemorySessionStore(), SessionStore)


@pytest.mark.anyio
async def test_store_failure_stops_the_client(fake_broker: FakeBroker) -> None:
    store = _FailingStore()
    with pytest.raises(SessionStoreError, match="disk full"):  # noqa: PT012
        async with MqttClient(
            "mqtt://fake",
            client_id="c",
            session_store=store,
            transport=fake_broker.connect,
        ) as client:
            await client.publish("t", b"1", qos=1)
            assert any(c.kind is ChangeKind.STORED for c in store.applied)
            store.fail = True
            await client.publish("t", b"2", qos=1)
    assert store.closed


@pytest.mark.trio
async def test_store_lost_session_republish_replaces_the_stored_message(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # The broker lost the session: the message it never acknowledged is published
    # again under a new packet id. The store must then hold it under the new id
    # only (both changes in one apply), and nothing once it completed.
    store = MemorySessionStore()
    async with ScriptedFakeBroker(ack_publishes=False) as broker:
        broker.script(Answer(), Answer(session_present=False))
        client = make_client(
            broker, clean_start=False, session_expiry=60, session_store=store
        )
        async with client, trio.open_nursery() as nursery:
            nursery.start_soon(
                functools.partial(client.publish, "t", b"keep me", qos=1)
            )
            first = await broker.connections[0].wait_for(PublishPacket)
            assert [p.packet_id for p in store.state.outgoing] == [first.packet_id]
            broker.connections[0].abort()
            second = await broker.wait_connection(1)
            again = await second.wait_for(PublishPacket)
            assert again.payload == b"keep me"
            assert not again.dup  # a new message: the broker lost the old one
            stored = store.state.outgoing
            assert [(p.packet_id, p.payload) for p in stored] == [
                (again.packet_id, b"keep me")
            ]
            assert again.packet_id is not None
            await second.send(PubAckPacket(packet_id=again.packet_id))
        assert store.state.outgoing == ()


@pytest.mark.trio
async def test_store_keeps_an_incoming_qos2_id_only_once_its_message_was_taken(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # A QoS 2 message parked beside a full buffer has its PUBREC withheld; if the
    # store kept its id already, a process started after a crash would take the
    # broker's re-delivery for a duplicate and the message would be lost.
    store = MemorySessionStore()
    async with ScriptedFakeBroker(release_deliveries=False) as broker:
        broker.script(Answer(), Answer(session_present=True))
        first = make_client(
            broker,
            clean_start=False,
            session_expiry=60,
            session_store=store,
            reconnect=False,
        )
        # The process dies with a message parked: its connection is gone, nothing
        # ends in order (a graceful unsubscribe would let the parked ack go).
        with pytest.raises(ConnectionLost):  # noqa: PT012
            async with first, first.subscription("t", qos=2, buffer=1):
                conn = await broker.wait_connection(0)
                taken = await conn.deliver("t", b"taken", qos=2)
                parked = await conn.deliver("t", b"parked", qos=2)
                await conn.wait_for(PubRecPacket)  # the taken one's, journaled first
                conn.abort()
                await trio.sleep_forever()
        assert [p.packet_id for p in conn.packets(PubRecPacket)] == [taken.packet_id]
        assert taken.packet_id in store.state.incoming_qos2
        assert parked.packet_id not in store.state.incoming_qos2

        second = make_client(
            broker, clean_start=False, session_expiry=60, session_store=store
        )
        async with second, second.subscription("t", qos=2) as sub:
            conn = await broker.wait_connection(1)
            await conn.send(attrs.evolve(parked, dup=True))
            with trio.fail_after(5):
                message = await sub.receive()
            assert message.payload == b"parked"


class _CountingStore:
    """A `MemorySessionStore` that counts its transactions."""

    def __init__(self) -> None:
        self.inner = MemorySessionStore()
        self.applies = 0

    def open(self, client_id: str, protocol_version: ProtocolVersion) -> StoredSession:
        return self.inner.open(client_id, protocol_version)

    def apply(self, changes: Sequence[SessionChange]) -> None:
        self.applies += 1
        self.inner.apply(changes)

    def close(self) -> None:
        self.inner.close()


@pytest.mark.trio
async def test_store_concurrent_publishes_share_a_transaction() -> None:
    # Publishes that join the writer's outbox leave in one write; the store is
    # given their changes together, right before that write: one transaction.
    store = _CountingStore()
    async with ScriptedFakeBroker() as broker:
        client = make_client(broker, session_store=store)
        async with client, trio.open_nursery() as nursery:
            for n in range(20):
                nursery.start_soon(
                    functools.partial(client.publish, "t", b"%d" % n, qos=1)
                )
    assert store.inner.state.outgoing == ()
    # 20 STOREDs and 20 COMPLETEDs in far fewer than 40 (or 20) transactions.
    assert store.applies <= 10, store.applies


def test_store_a_stored_message_pickles() -> None:
    # What docs/session-store.rst promises a store of one's own.
    import pickle

    packet = _packet(3, 2, b"payload")
    assert pickle.loads(pickle.dumps(packet)) == packet


@pytest.mark.trio
async def test_store_is_closed_when_the_first_connect_fails(tmp_path: Path) -> None:
    # Nothing stays open (Python 3.13 reports an unclosed sqlite3 connection).
    store = SqliteSessionStore(tmp_path / "s.db")
    async with ScriptedFakeBroker() as broker:
        broker.script(Answer(refuse=True))
        client = make_client(broker, session_store=store, reconnect=False)
        with pytest.raises(MqttError):
            async with client:
                pass
    assert store._db is None


@pytest.mark.trio
async def test_store_forgets_a_poison_message_it_gave_up(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # The broker drops the connection after each send of the message: the client
    # gives that publish up (PublishError), and so does the store: a restarted
    # process must not send it again for ever.
    store = MemorySessionStore()
    async with (
        ScriptedFakeBroker(
            ack_publishes=False, default_answer=Answer(session_present=True)
        ) as broker,
        make_client(
            broker, clean_start=False, session_expiry=60, session_store=store
        ) as client,
    ):

        async def drop_each_time() -> None:
            for index in range(3):
                conn = await broker.wait_connection(index)
                await conn.wait_for(PublishPacket)
                conn.abort()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(drop_each_time)
            with pytest.raises(PublishError, match="each time the message"):
                await client.publish("poison", b"x", qos=1)
        await client.wait_connected()
    assert store.state.outgoing == ()
