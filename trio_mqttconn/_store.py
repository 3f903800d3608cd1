"""Session stores: where a client keeps its session so that it survives the process.

Theory of operation
-------------------
A client made with a ``session_store`` runs its `ClientSession` with a journal
(see `_journal`): every change of the durable state (an outgoing QoS 1/2 message
sent, its PUBREC, its completion; an incoming QoS 2 id until its PUBREL; a filter
subscribed or unsubscribed) becomes a `SessionChange`. Before the engine writes
any bytes, it hands the changes made so far to `SessionStore.apply`, which keeps
them before it returns. So whatever reached the broker is known to the store: a
process killed at any point and started again with the same client id and
``clean_start=False`` re-sends its unfinished messages with DUP=1, releases the
QoS 2 messages the broker already has (PUBREL, not PUBLISH: no duplicate), and
does not deliver again an incoming QoS 2 message it had acknowledged.

Stores are synchronous and called from the event loop (no threads): they must be
quick and local. `SqliteSessionStore` commits one transaction per
`SessionStore.apply`: the engine calls it before each packet it sends, with what
was journaled since the last call (a completion rides along with the next
packet). ``bench/session_store.py`` measures what that costs.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING, Final, Protocol, final, runtime_checkable

import attrs

from ._enums import ProtocolVersion, QoS, RetainHandling
from ._exceptions import SessionStoreError
from ._journal import ChangeKind, SessionChange, StoredSession, apply_changes
from ._packets import PacketDecoder, PublishPacket, TopicSubscription, encode_packet

if TYPE_CHECKING:
    import os
    from collections.abc import Sequence

__all__ = ["MemorySessionStore", "SessionStore", "SqliteSessionStore"]

_SCHEMA_VERSION: Final = "1"


@runtime_checkable
class SessionStore(Protocol):
    """Where a client keeps its session across processes (see the module docs).

    A store serves one client id at a time. `open` binds it and returns what an
    earlier process left; `apply` keeps changes in order (all of one call or none,
    before it returns); `close` releases the store. Every method is synchronous,
    called from the event loop, and may raise `SessionStoreError`.
    """

    def open(self, client_id: str, protocol_version: ProtocolVersion) -> StoredSession:
        """Bind the store to *client_id* and return the session stored for it.

        Raises:
            SessionStoreError: The store holds another client id's or protocol
                version's session, or cannot be read.
        """
        ...

    def apply(self, changes: Sequence[SessionChange]) -> None:
        """Keep *changes*, in order, atomically; return once they are durable."""
        ...

    def close(self) -> None:
        """Release the store (idempotent); the stored session stays."""
        ...


def _check_binding(
    where: str,
    stored: tuple[str, str] | None,
    client_id: str,
    protocol_version: ProtocolVersion,
) -> None:
    if stored is None:
        return
    stored_id, stored_version = stored
    if stored_id != client_id:
        raise SessionStoreError(
            f"the session store {where} holds the session of client id "
            f"{stored_id!r}, not {client_id!r}; give each client id its own store"
        )
    if stored_version != str(int(protocol_version)):
        raise SessionStoreError(
            f"the session store {where} holds an MQTT protocol level "
            f"{stored_version} session, not {int(protocol_version)}; use the same "
            f"protocol_version, or a new store"
        )


@final
@attrs.define(eq=False)
class MemorySessionStore:
    """A `SessionStore` in memory: survives a client, not its process.

    For tests, and for a client object that is made again in the same process
    (e.g. a supervisor that restarts a failed consumer with the same client id).
    """

    state: StoredSession = attrs.field(factory=StoredSession)
    """What is stored now."""
    _binding: tuple[str, str] | None = attrs.field(default=None, init=False)

    def open(self, client_id: str, protocol_version: ProtocolVersion) -> StoredSession:
        """Bind the store to *client_id* and return the stored session."""
        _check_binding("in memory", self._binding, client_id, protocol_version)
        self._binding = (client_id, str(int(protocol_version)))
        return self.state

    def apply(self, changes: Sequence[SessionChange]) -> None:
        """Apply *changes* to ``state``."""
        self.state = apply_changes(self.state, tuple(changes))

    def close(self) -> None:
        """Nothing to release."""


_CREATE: Final = (
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS outgoing (packet_id INTEGER PRIMARY KEY, "
    "seq INTEGER NOT NULL, packet BLOB NOT NULL, released INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS incoming_qos2 (packet_id INTEGER PRIMARY KEY)",
    "CREATE TABLE IF NOT EXISTS subscriptions (filter TEXT PRIMARY KEY, "
    "seq INTEGER NOT NULL, qos INTEGER NOT NULL, no_local INTEGER NOT NULL, "
    "retain_as_published INTEGER NOT NULL, retain_handling INTEGER NOT NULL)",
)


@final
class SqliteSessionStore:
    """A `SessionStore` in an SQLite database file (stdlib ``sqlite3``, WAL mode).

    Example::

        store = SqliteSessionStore("/var/lib/myapp/mqtt-session.db")
        async with MqttClient(
            uri, client_id="sensor-7", clean_start=False, session_expiry=3600,
            session_store=store,
        ) as client:
            ...

    Each `SessionStore.apply` (before each packet the engine sends) commits one
    transaction. With ``fsync=False`` (the default, SQLite ``synchronous=NORMAL``)
    a commit survives the process being killed at any point; ``fsync=True``
    (``synchronous=FULL``) also survives the machine losing power, at the cost of
    an fsync per commit.

    Args:
        path: The database file; created (with its directory's permissions) if
            missing. One file per client id.
        fsync: Make each commit durable against power loss too.
    """

    def __init__(self, path: str | os.PathLike[str], *, fsync: bool = False) -> None:
        self.path: Final = Path(path)
        """The database file."""
        self.fsync: Final = fsync
        """Whether each commit is synced to disk (SQLite ``synchronous=FULL``)."""
        self._db: sqlite3.Connection | None = None
        self._version = ProtocolVersion.V5
        self._seq = 0

    def __repr__(self) -> str:
        return f"SqliteSessionStore({str(self.path)!r}, fsync={self.fsync})"

    def _fail(self, doing: str, exc: sqlite3.Error) -> SessionStoreError:
        error = SessionStoreError(f"session store {self.path}: {doing} failed: {exc}")
        error.__cause__ = exc
        return error

    def open(self, client_id: str, protocol_version: ProtocolVersion) -> StoredSession:
        """Open the database, bind it to *client_id* and return its session."""
        version = ProtocolVersion(protocol_version)
        try:
            db = self._db
            if db is None:
                db = sqlite3.connect(self.path, isolation_level=None)
                self._db = db
                db.execute("PRAGMA journal_mode=WAL")
                db.execute(f"PRAGMA synchronous={'FULL' if self.fsync else 'NORMAL'}")
                for statement in _CREATE:
                    db.execute(statement)
            rows = dict(db.execute("SELECT key, value FROM meta").fetchall())
            binding = (
                (rows["client_id"], rows["protocol_version"])
                if "client_id" in rows
                else None
            )
            _check_binding(str(self.path), binding, client_id, version)
            if binding is None:
                db.execute("BEGIN IMMEDIATE")
                db.executemany(
                    "INSERT OR REPLACE INTO meta VALUES (?, ?)",
                    [
                        ("schema", _SCHEMA_VERSION),
                        ("client_id", client_id),
                        ("protocol_version", str(int(version))),
                    ],
                )
                db.execute("COMMIT")
            self._version = version
            (self._seq,) = db.execute(
                "SELECT max(coalesce((SELECT max(seq) FROM outgoing), 0), "
                "coalesce((SELECT max(released) FROM outgoing), 0), "
                "coalesce((SELECT max(seq) FROM subscriptions), 0))"
            ).fetchone()
            return self._load(db)
        except BaseException as exc:
            # Nothing stays open on a failed open (a store of another client id,
            # a damaged row, a broken file).
            self.close()
            if isinstance(exc, sqlite3.Error):
                raise self._fail("opening", exc) from exc
            raise

    def _load(self, db: sqlite3.Connection) -> StoredSession:
        outgoing: list[PublishPacket] = []
        released: list[tuple[int, int]] = []
        decoder = PacketDecoder(self._version)
        for packet_id, data, was_released in db.execute(
            "SELECT packet_id, packet, released FROM outgoing ORDER BY seq"
        ):
            decoder.feed(data)
            packet = decoder.next_packet()
            if not isinstance(packet, PublishPacket) or packet.packet_id != packet_id:
                raise SessionStoreError(
                    f"session store {self.path}: the stored message with packet id "
                    f"{packet_id} is damaged; delete the file to start afresh"
                )
            outgoing.append(packet)
            if was_released:
                released.append((was_released, packet_id))
        incoming = tuple(
            row[0] for row in db.execute("SELECT packet_id FROM incoming_qos2")
        )
        subscriptions = tuple(
            TopicSubscription(
                filter=row[0],
                qos=QoS(row[1]),
                no_local=bool(row[2]),
                retain_as_published=bool(row[3]),
                retain_handling=RetainHandling(row[4]),
            )
            for row in db.execute(
                "SELECT filter, qos, no_local, retain_as_published, retain_handling "
                "FROM subscriptions ORDER BY seq"
            )
        )
        return StoredSession(
            outgoing=tuple(outgoing),
            # PUBREC order: the PUBRELs go out in it [MQTT-4.6.0-4].
            released=tuple(packet_id for _, packet_id in sorted(released)),
            incoming_qos2=incoming,
            subscriptions=subscriptions,
        )

    def apply(self, changes: Sequence[SessionChange]) -> None:
        """Commit *changes* in one transaction."""
        db = self._db
        if db is None:
            raise SessionStoreError(
                f"session store {self.path} is not open; MqttClient opens it"
            )
        version = self._version
        try:
            db.execute("BEGIN")
            try:
                for change in changes:
                    self._apply_one(db, change, version)
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            raise self._fail("writing", exc) from exc

    def _apply_one(
        self, db: sqlite3.Connection, change: SessionChange, version: ProtocolVersion
    ) -> None:
        kind, packet_id = change.kind, change.packet_id
        if kind is ChangeKind.STORED:
            assert change.packet is not None
            self._seq += 1
            db.execute(
                "INSERT OR REPLACE INTO outgoing VALUES (?, ?, ?, 0)",
                (packet_id, self._seq, encode_packet(change.packet, version)),
            )
        elif kind is ChangeKind.RELEASED:
            # "released" holds the PUBREC's position in the sequence (0: none).
            self._seq += 1
            db.execute(
                "UPDATE outgoing SET released = ? WHERE packet_id = ? AND released = 0",
                (self._seq, packet_id),
            )
        elif kind is ChangeKind.COMPLETED:
            db.execute("DELETE FROM outgoing WHERE packet_id = ?", (packet_id,))
        elif kind is ChangeKind.RECEIVED:
            db.execute("INSERT OR IGNORE INTO incoming_qos2 VALUES (?)", (packet_id,))
        elif kind is ChangeKind.FORGOTTEN:
            db.execute("DELETE FROM incoming_qos2 WHERE packet_id = ?", (packet_id,))
        else:
            sub = change.subscription
            assert sub is not None
            if kind is ChangeKind.SUBSCRIBED:
                self._seq += 1
                db.execute(
                    "INSERT OR REPLACE INTO subscriptions VALUES (?, ?, ?, ?, ?, ?)",
                    (
                        sub.filter,
                        self._seq,
                        int(sub.qos),
                        int(sub.no_local),
                        int(sub.retain_as_published),
                        int(sub.retain_handling),
                    ),
                )
            else:
                db.execute("DELETE FROM subscriptions WHERE filter = ?", (sub.filter,))

    def close(self) -> None:
        """Close the database; the stored session stays in the file."""
        db, self._db = self._db, None
        if db is not None:
            db.close()
