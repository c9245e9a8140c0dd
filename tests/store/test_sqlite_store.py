"""The SQLite backend against the store contract (etcd v3 semantics)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from hypernetes.store import (
    Compacted,
    Compare,
    Conflict,
    Delete,
    EventType,
    FutureRevision,
    KeyExists,
    Put,
    SQLiteStore,
    StoreError,
    WatchClosed,
)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    s = SQLiteStore(tmp_path / "state.db")
    yield s
    await s.close()


async def test_every_write_advances_one_global_revision(store: SQLiteStore) -> None:
    assert await store.current_revision() == 0
    r1 = await store.create("/a/1", b"x")
    r2 = await store.create("/b/1", b"y")
    r3 = await store.update("/a/1", b"x2", r1)
    assert (r1, r2, r3) == (1, 2, 3)
    kv = await store.get("/a/1")
    assert kv is not None
    assert (kv.value, kv.create_revision, kv.mod_revision, kv.version) == (b"x2", 1, 3, 2)


async def test_create_refuses_existing_key(store: SQLiteStore) -> None:
    await store.create("/k", b"1")
    with pytest.raises(KeyExists):
        await store.create("/k", b"2")
    assert (await store.get("/k")).value == b"1"  # type: ignore[union-attr]
    assert await store.current_revision() == 1


async def test_update_and_delete_are_compare_and_swap(store: SQLiteStore) -> None:
    r1 = await store.create("/k", b"1")
    r2 = await store.update("/k", b"2", r1)
    with pytest.raises(Conflict) as err:
        await store.update("/k", b"stale", r1)
    assert err.value.current is not None and err.value.current.mod_revision == r2
    with pytest.raises(Conflict):
        await store.delete("/k", r1)
    await store.delete("/k", r2)
    assert await store.get("/k") is None
    with pytest.raises(Conflict) as gone:
        await store.update("/k", b"3", r2)
    assert gone.value.current is None


async def test_transaction_is_all_or_nothing(store: SQLiteStore) -> None:
    r = await store.create("/q/count", b"1")
    ok = await store.txn([Compare("/q/count", r)], [Put("/q/count", b"2"), Put("/pods/a", b"a")])
    assert ok.succeeded and ok.revision == r + 1
    stale = await store.txn([Compare("/q/count", r)], [Put("/q/count", b"3"), Put("/pods/b", b"b")])
    assert not stale.succeeded
    assert await store.get("/pods/b") is None
    assert (await store.get("/q/count")).value == b"2"  # type: ignore[union-attr]
    with pytest.raises(ValueError):
        await store.txn([], [Put("/x", b"1"), Delete("/x")])


async def test_range_prefix_limit_and_continue(store: SQLiteStore) -> None:
    for name in ["c", "a", "b", "d"]:
        await store.create(f"/pods/ns/{name}", name.encode())
    await store.create("/pods/other", b"o")
    await store.create("/podsx/ns/z", b"z")
    first = await store.range("/pods/ns/", limit=2)
    assert [kv.key for kv in first.kvs] == ["/pods/ns/a", "/pods/ns/b"] and first.more
    rest = await store.range("/pods/ns/", start=first.kvs[-1].key + "\0", revision=first.revision)
    assert [kv.key for kv in rest.kvs] == ["/pods/ns/c", "/pods/ns/d"] and not rest.more
    assert len((await store.range("/pods/")).kvs) == 5


async def test_range_and_get_at_past_revision(store: SQLiteStore) -> None:
    r1 = await store.create("/k/a", b"v1")
    r2 = await store.update("/k/a", b"v2", r1)
    await store.create("/k/b", b"b")
    await store.delete("/k/a", r2)
    old = await store.range("/k/", revision=r1)
    assert [(kv.key, kv.value) for kv in old.kvs] == [("/k/a", b"v1")]
    assert (await store.get("/k/a", revision=r2)).value == b"v2"  # type: ignore[union-attr]
    assert await store.get("/k/a") is None
    with pytest.raises(FutureRevision):
        await store.range("/k/", revision=99)


async def test_compaction_forgets_history_but_keeps_state(store: SQLiteStore) -> None:
    r1 = await store.create("/k/a", b"1")
    r2 = await store.update("/k/a", b"2", r1)
    r3 = await store.create("/k/b", b"b")
    r4 = await store.delete("/k/b", r3)
    await store.compact(r4)
    assert await store.compacted_revision() == r4
    with pytest.raises(Compacted):
        await store.range("/k/", revision=r2)
    with pytest.raises(Compacted):
        store.watch("/k/", r1)
    assert [(kv.key, kv.value) for kv in (await store.range("/k/", revision=r4)).kvs] == [
        ("/k/a", b"2")
    ]
    with pytest.raises(Compacted):
        await store.compact(r2)
    with pytest.raises(FutureRevision):
        await store.compact(100)


async def _take(watch: object, n: int) -> list[object]:
    out = []
    async for event in watch:  # type: ignore[attr-defined]
        out.append(event)
        if len(out) == n:
            break
    return out


async def test_watch_replays_history_then_follows_live_without_gap(store: SQLiteStore) -> None:
    r1 = await store.create("/w/a", b"1")
    await store.create("/other/x", b"x")
    r3 = await store.update("/w/a", b"2", r1)
    watch = store.watch("/w/", r1)
    await store.delete("/w/a", r3)
    await store.create("/w/b", b"b")
    events = await asyncio.wait_for(_take(watch, 4), 5)
    watch.close()
    got = [(e.type, e.kv.key, e.kv.mod_revision) for e in events]  # type: ignore[attr-defined]
    assert got == [
        (EventType.PUT, "/w/a", 1),
        (EventType.PUT, "/w/a", 3),
        (EventType.DELETE, "/w/a", 4),
        (EventType.PUT, "/w/b", 5),
    ]
    deleted = events[2]
    assert deleted.kv.value == b"2" and deleted.prev.value == b"2"  # type: ignore[attr-defined]


async def test_watch_from_now_sees_only_new_events(store: SQLiteStore) -> None:
    await store.create("/w/old", b"o")
    watch = store.watch("/w/", 0)
    await store.create("/w/new", b"n")
    [event] = await asyncio.wait_for(_take(watch, 1), 5)
    assert event.kv.key == "/w/new"  # type: ignore[attr-defined]
    watch.close()
    with pytest.raises(FutureRevision):
        store.watch("/w/", 10)


async def test_concurrent_writers_each_get_distinct_revisions(store: SQLiteStore) -> None:
    watch = store.watch("/c/", 1)
    revisions = await asyncio.gather(*(store.create(f"/c/{i}", b"v") for i in range(50)))
    assert sorted(revisions) == list(range(1, 51))
    events = await asyncio.wait_for(_take(watch, 50), 5)
    assert [e.kv.mod_revision for e in events] == list(range(1, 51))  # type: ignore[attr-defined]
    watch.close()


async def test_slow_watch_consumer_is_cut_off_not_buffered_forever(
    store: SQLiteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("hypernetes.store.sqlite.WATCH_QUEUE_SIZE", 3)
    watch = store.watch("/s/", 0)
    for i in range(5):
        await store.create(f"/s/{i}", b"v")
    seen = []
    with pytest.raises(WatchClosed):
        async for event in watch:
            seen.append(event.kv.key)
    assert seen == ["/s/0", "/s/1", "/s/2"]


async def test_close_ends_watches_and_refuses_use(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "s.db")
    watch = store.watch("/x/", 0)
    await store.close()
    with pytest.raises(WatchClosed):
        await _take(watch, 1)
    with pytest.raises(StoreError):
        await store.get("/x/a")


async def test_state_survives_reopen_and_file_is_exclusive(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    store = SQLiteStore(path)
    await store.create("/p/a", b"1")
    with pytest.raises(StoreError, match="in use"):
        SQLiteStore(path)
    await store.close()
    again = SQLiteStore(path)
    try:
        kv = await again.get("/p/a")
        assert kv is not None and kv.value == b"1"
        assert await again.current_revision() == 1
    finally:
        await again.close()
