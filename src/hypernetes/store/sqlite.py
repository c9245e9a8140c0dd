"""The embedded store backend: SQLite in WAL mode, one file.

History is kept as one row per (key, revision): a write adds a row, a delete
adds a tombstone row carrying the last value (so DELETE events can show it).
Reads at revision R take, for each key, the newest row at or below R.
Watches are served from that history and then from an in-process fan-out,
so one process owns the file; a lock file enforces that.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
from collections.abc import Iterable, Sequence
from pathlib import Path

from hypernetes.store._contract import (
    Compacted,
    Compare,
    Delete,
    Event,
    EventType,
    FutureRevision,
    KeyValue,
    Put,
    QueueWatch,
    RangeResult,
    Store,
    StoreError,
    TxnResult,
    Watch,
    WatchClosed,
    prefix_end,
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS kv (
    key TEXT NOT NULL,
    mod_rev INTEGER NOT NULL,
    create_rev INTEGER NOT NULL,
    version INTEGER NOT NULL,
    value BLOB NOT NULL,
    deleted INTEGER NOT NULL,
    PRIMARY KEY (key, mod_rev)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS kv_by_rev ON kv (mod_rev);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO meta VALUES ('revision', 0), ('compacted', 0);
"""

# The newest row of each key at or below a revision (the `?` parameters are
# range start, range end, revision).
_LATEST = """
SELECT key, value, create_rev, mod_rev, version, deleted FROM kv AS a
WHERE key >= ? AND key < ?
  AND mod_rev = (SELECT MAX(mod_rev) FROM kv AS b WHERE b.key = a.key AND b.mod_rev <= ?)
"""

WATCH_QUEUE_SIZE = 10_000


class SQLiteStore(Store):
    """A `Store` in one SQLite file, owned by this process."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock_file = open(f"{self.path}.lock", "w")  # noqa: SIM115 - held for our lifetime
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock_file.close()
            raise StoreError(f"{self.path} is in use by another process") from None
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._watches: set[QueueWatch] = set()
        self._closed = False

    # -- reads ---------------------------------------------------------------

    def _meta(self, name: str) -> int:
        row = self._db.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()
        return int(row[0])

    async def current_revision(self) -> int:
        return self._meta("revision")

    async def compacted_revision(self) -> int:
        return self._meta("compacted")

    def _read_revision(self, revision: int) -> int:
        current = self._meta("revision")
        if revision == 0:
            return current
        if revision > current:
            raise FutureRevision(f"revision {revision} is in the future (current {current})")
        compacted = self._meta("compacted")
        if revision < compacted:
            raise Compacted(compacted)
        return revision

    async def range(
        self, prefix: str, *, start: str = "", limit: int = 0, revision: int = 0
    ) -> RangeResult:
        self._check_open()
        at = self._read_revision(revision)
        lo = max(prefix, start)
        sql = _LATEST + " AND deleted = 0 ORDER BY key"
        params: list[object] = [lo, prefix_end(prefix), at]
        if limit > 0:
            sql += " LIMIT ?"
            params.append(limit + 1)
        rows = self._db.execute(sql, params).fetchall()
        more = limit > 0 and len(rows) > limit
        if more:
            rows = rows[:limit]
        return RangeResult([_kv(r) for r in rows], more, at)

    async def get(self, key: str, *, revision: int = 0) -> KeyValue | None:
        self._check_open()
        at = self._read_revision(revision)
        row = self._db.execute(
            "SELECT key, value, create_rev, mod_rev, version, deleted FROM kv"
            " WHERE key = ? AND mod_rev <= ? ORDER BY mod_rev DESC LIMIT 1",
            (key, at),
        ).fetchone()
        return None if row is None or row[5] else _kv(row)

    # -- writes --------------------------------------------------------------

    async def txn(self, compares: Sequence[Compare], ops: Sequence[Put | Delete]) -> TxnResult:
        self._check_open()
        keys = [op.key for op in ops]
        if len(set(keys)) != len(keys):
            raise ValueError("a transaction may touch each key once")
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            revision = self._meta("revision")
            if not all(self._holds(c) for c in compares):
                db.execute("ROLLBACK")
                return TxnResult(False, revision)
            new_revision = revision + 1
            events = [e for op in ops if (e := self._apply(op, new_revision)) is not None]
            if events:
                db.execute("UPDATE meta SET value = ? WHERE name = 'revision'", (new_revision,))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        self._publish(events)
        return TxnResult(True, new_revision if events else revision)

    def _latest(self, key: str) -> KeyValue | None:
        row = self._db.execute(
            "SELECT key, value, create_rev, mod_rev, version, deleted FROM kv"
            " WHERE key = ? ORDER BY mod_rev DESC LIMIT 1",
            (key,),
        ).fetchone()
        return None if row is None or row[5] else _kv(row)

    def _holds(self, compare: Compare) -> bool:
        current = self._latest(compare.key)
        return (current.mod_revision if current else 0) == compare.mod_revision

    def _apply(self, op: Put | Delete, revision: int) -> Event | None:
        prev = self._latest(op.key)
        if isinstance(op, Delete):
            if prev is None:
                return None  # deleting nothing is not a change (as in etcd)
            kv = KeyValue(op.key, prev.value, prev.create_revision, revision, 0)
            self._insert(kv, deleted=True)
            return Event(EventType.DELETE, kv, prev)
        if prev is None:
            kv = KeyValue(op.key, op.value, revision, revision, 1)
        else:
            kv = KeyValue(op.key, op.value, prev.create_revision, revision, prev.version + 1)
        self._insert(kv, deleted=False)
        return Event(EventType.PUT, kv, prev)

    def _insert(self, kv: KeyValue, *, deleted: bool) -> None:
        self._db.execute(
            "INSERT INTO kv VALUES (?, ?, ?, ?, ?, ?)",
            (kv.key, kv.mod_revision, kv.create_revision, kv.version, kv.value, int(deleted)),
        )

    async def compact(self, revision: int) -> None:
        self._check_open()
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            current, compacted = self._meta("revision"), self._meta("compacted")
            if revision > current:
                raise FutureRevision(f"cannot compact beyond the current revision {current}")
            if revision <= compacted:
                raise Compacted(compacted)
            # Keep, for every key, the newest row at or below `revision` unless
            # it is a tombstone; drop everything older.
            db.execute(
                "DELETE FROM kv WHERE mod_rev < ? AND (deleted = 1 OR mod_rev <"
                " (SELECT MAX(mod_rev) FROM kv AS b WHERE b.key = kv.key AND b.mod_rev <= ?))",
                (revision, revision),
            )
            db.execute("UPDATE meta SET value = ? WHERE name = 'compacted'", (revision,))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    # -- watches -------------------------------------------------------------

    def watch(self, prefix: str, start_revision: int) -> Watch:
        self._check_open()
        current = self._meta("revision")
        if start_revision == 0:
            start_revision = current + 1
        if start_revision > current + 1:
            raise FutureRevision(f"revision {start_revision} is in the future (current {current})")
        compacted = self._meta("compacted")
        if start_revision < compacted:
            raise Compacted(compacted)
        watch = QueueWatch(prefix, WATCH_QUEUE_SIZE, on_close=self._watches.discard)
        # No await between reading history and registering: every later write
        # is published to this watch, every earlier one is in the history.
        for event in self._history(prefix, start_revision, current):
            if not watch.offer(event):
                break
        self._watches.add(watch)
        return watch

    def _history(self, prefix: str, first: int, last: int) -> Iterable[Event]:
        rows = self._db.execute(
            "SELECT key, value, create_rev, mod_rev, version, deleted FROM kv"
            " WHERE key >= ? AND key < ? AND mod_rev >= ? AND mod_rev <= ?"
            " ORDER BY mod_rev, key",
            (prefix, prefix_end(prefix), first, last),
        ).fetchall()
        for row in rows:
            kv = _kv(row)
            prev = self._before(kv.key, kv.mod_revision)
            if row[5]:
                yield Event(EventType.DELETE, kv, prev)
            else:
                yield Event(EventType.PUT, kv, prev)

    def _before(self, key: str, revision: int) -> KeyValue | None:
        row = self._db.execute(
            "SELECT key, value, create_rev, mod_rev, version, deleted FROM kv"
            " WHERE key = ? AND mod_rev < ? ORDER BY mod_rev DESC LIMIT 1",
            (key, revision),
        ).fetchone()
        return None if row is None or row[5] else _kv(row)

    def _publish(self, events: list[Event]) -> None:
        for watch in list(self._watches):
            for event in events:
                if watch.covers(event.kv.key) and not watch.offer(event):
                    self._watches.discard(watch)
                    break

    # -- lifecycle -----------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError("store is closed")

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for watch in list(self._watches):
            watch.terminate(WatchClosed("store closed"))
        self._watches.clear()
        self._db.close()
        fcntl.flock(self._lock_file, fcntl.LOCK_UN)
        self._lock_file.close()


def _kv(row: tuple[str, bytes, int, int, int, int]) -> KeyValue:
    key, value, create_rev, mod_rev, version, _deleted = row
    return KeyValue(key, bytes(value), create_rev, mod_rev, version)
