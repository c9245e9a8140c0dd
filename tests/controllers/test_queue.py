"""The work queue: dedup, no concurrent processing of a key, delays, backoff, shutdown."""

from __future__ import annotations

import asyncio

import pytest

from hypernetes.controllers import ItemBackoff, ShutDown, WorkQueue


async def test_dedup_and_order() -> None:
    q = WorkQueue()
    for key in ("a", "b", "a", "c", "b"):
        q.add(key)
    assert len(q) == 3
    assert [await q.get() for _ in range(3)] == ["a", "b", "c"]


async def test_key_added_while_processing_comes_back_once_after_done() -> None:
    q = WorkQueue()
    q.add("a")
    key = await q.get()
    q.add("a")
    q.add("a")
    assert len(q) == 0  # not handed to a second worker while the first holds it
    waiter = asyncio.create_task(q.get())
    await asyncio.sleep(0.05)
    assert not waiter.done()
    q.done(key)
    assert await asyncio.wait_for(waiter, 5) == "a"
    q.done("a")
    assert len(q) == 0


async def test_add_after_keeps_the_earliest() -> None:
    q = WorkQueue()
    q.add_after("slow", 30)
    q.add_after("slow", 0.05)  # earlier: replaces the pending one
    q.add_after("slow", 60)  # later: ignored
    assert await asyncio.wait_for(q.get(), 5) == "slow"
    q.done("slow")
    await asyncio.sleep(0.1)
    assert len(q) == 0  # the cancelled 30 s add never fires... not within this test anyway
    q.shutdown()


async def test_rate_limited_retries_back_off_exponentially() -> None:
    limiter = ItemBackoff(base=0.01, maximum=0.08)
    assert [limiter.when("k") for _ in range(5)] == [0.01, 0.02, 0.04, 0.08, 0.08]
    assert limiter.failures("k") == 5
    limiter.forget("k")
    assert limiter.failures("k") == 0 and limiter.when("k") == 0.01
    q = WorkQueue(ItemBackoff(base=0.02, maximum=1.0))
    loop = asyncio.get_running_loop()
    start = loop.time()
    q.add_rate_limited("x")
    assert await asyncio.wait_for(q.get(), 5) == "x"
    q.done("x")
    q.add_rate_limited("x")  # second failure: waits twice as long
    assert await asyncio.wait_for(q.get(), 5) == "x"
    assert loop.time() - start >= 0.06 - 0.005
    assert q.rate_limiter.failures("x") == 2
    q.forget("x")
    assert q.rate_limiter.failures("x") == 0


async def test_shutdown_wakes_getters_and_stops_adds() -> None:
    q = WorkQueue()
    getters = [asyncio.create_task(q.get()) for _ in range(3)]
    await asyncio.sleep(0.01)
    q.add_after("later", 0.05)
    q.shutdown()
    for getter in getters:
        with pytest.raises(ShutDown):
            await asyncio.wait_for(getter, 5)
    q.add("x")
    await asyncio.sleep(0.1)
    assert len(q) == 0
    with pytest.raises(ShutDown):
        await q.get()


async def test_many_workers_never_share_a_key() -> None:
    q = WorkQueue()
    active: set[str] = set()
    seen: list[str] = []

    async def worker() -> None:
        while True:
            try:
                key = await q.get()
            except ShutDown:
                return
            assert key not in active
            active.add(str(key))
            seen.append(str(key))
            await asyncio.sleep(0.001)
            if len(seen) < 200:
                q.add(key)  # re-added while held: must wait for done()
                q.add(f"k{len(seen) % 7}")
            active.discard(str(key))
            q.done(key)

    for i in range(7):
        q.add(f"k{i}")
    workers = [asyncio.create_task(worker()) for _ in range(4)]
    while len(seen) < 200:
        await asyncio.sleep(0.01)
    q.shutdown()
    await asyncio.gather(*workers)
    assert set(seen) == {f"k{i}" for i in range(7)}
