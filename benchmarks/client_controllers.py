"""Benchmark of the API client and the first controllers against a real API server.

Starts `hypernetes server` on a free loopback port in a temporary directory,
then measures, each beside a baseline taken in the same run:

1. GET latency: our asyncio client vs the official `kubernetes` client
   (the baseline), both sequential, both over the same TLS connection setup.
2. Concurrent GETs (50 in flight, warm connections) with our client vs the same
   GETs sequential (the server is one Python process: this shows overhead, not scaling).
3. Cache fill: an `Informer` listing and syncing N objects vs a bare list of
   them with the `kubernetes` client.
4. Garbage collection: from deleting an owner until its N dependents are
   gone, vs the client deleting the same N objects itself one by one.
5. Namespace deletion: from deleting a namespace with N objects until it is
   gone, vs a deletecollection of those objects.

usage: .venv/bin/python benchmarks/client_controllers.py [--objects N] [--gets N]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from serverproc import start_server

from hypernetes.client import CONFIGMAPS, NAMESPACES, Client, Informer, NotFound, load_kubeconfig
from hypernetes.controllers import GarbageCollector, NamespaceController


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


async def timed(fn: Callable[[], Awaitable[Any]]) -> float:
    start = time.perf_counter()
    await fn()
    return time.perf_counter() - start


async def wait_until(check: Callable[[], Awaitable[bool]], timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise TimeoutError
        await asyncio.sleep(0.02)


def cm(name: str, owner: dict[str, Any] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if owner:
        meta["ownerReferences"] = [
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "name": owner["metadata"]["name"],
                "uid": owner["metadata"]["uid"],
            }
        ]
    return {"metadata": meta, "data": {"k": "v" * 64}}


async def fill(client: Client, ns: str, n: int, owner: dict[str, Any] | None = None) -> None:
    sem = asyncio.Semaphore(20)

    async def one(i: int) -> None:
        async with sem:
            await client.create(CONFIGMAPS, cm(f"o{i}", owner), ns)

    await asyncio.gather(*(one(i) for i in range(n)))


async def count(client: Client, ns: str) -> int:
    listing = await client.list(CONFIGMAPS, ns)
    return len([o for o in listing["items"] if o["metadata"]["name"] != "owner"])


async def run(kubeconfig: Path, objects: int, gets: int) -> list[tuple[str, float, float, str]]:
    from kubernetes import client as kclient
    from kubernetes import config as kconfig

    rows: list[tuple[str, float, float, str]] = []
    async with Client(load_kubeconfig(kubeconfig)) as client:
        await client.create(NAMESPACES, {"metadata": {"name": "bench"}})
        await client.create(CONFIGMAPS, cm("probe"), "bench")

        # 1. sequential GET latency
        ours = [await timed(lambda: client.get(CONFIGMAPS, "probe", "bench")) for _ in range(gets)]
        api = kclient.CoreV1Api(kconfig.new_client_from_config(str(kubeconfig)))
        theirs = []
        for _ in range(gets):
            start = time.perf_counter()
            api.read_namespaced_config_map("probe", "bench")
            theirs.append(time.perf_counter() - start)
        rows.append(
            (
                "GET one object, median ms",
                median_ms(ours),
                median_ms(theirs),
                "kubernetes client (sync)",
            )
        )

        # 2. concurrency
        sequential = await timed(lambda: _sequential(client, gets))
        sem = asyncio.Semaphore(50)

        async def limited() -> None:
            async with sem:
                await client.get(CONFIGMAPS, "probe", "bench")

        # Warm up first: the first batch pays one TLS handshake per connection opened.
        await asyncio.gather(*(limited() for _ in range(gets)))
        concurrent = await timed(lambda: asyncio.gather(*(limited() for _ in range(gets))))
        rows.append(
            (
                f"{gets} GETs, total ms (50 in flight)",
                concurrent * 1000,
                sequential * 1000,
                "same GETs sequential",
            )
        )

        # 3. informer sync vs a bare list
        await client.create(NAMESPACES, {"metadata": {"name": "bench-list"}})
        await fill(client, "bench-list", objects)
        informer_times, list_times = [], []
        for _ in range(3):
            informer = Informer(client, CONFIGMAPS, "bench-list")
            stop = asyncio.Event()
            start = time.perf_counter()
            task = asyncio.create_task(informer.run(stop))
            await informer.wait_synced(120)
            informer_times.append(time.perf_counter() - start)
            stop.set()
            await task
            start = time.perf_counter()
            api.list_namespaced_config_map("bench-list")
            list_times.append(time.perf_counter() - start)
        rows.append(
            (
                f"sync {objects} objects, median ms",
                median_ms(informer_times),
                median_ms(list_times),
                "kubernetes client list",
            )
        )

        # 4. garbage collection vs deleting directly
        await client.create(NAMESPACES, {"metadata": {"name": "bench-gc"}})
        await fill(client, "bench-gc", objects)
        direct = await timed(lambda: _delete_all(client, "bench-gc", objects))
        owner = await client.create(CONFIGMAPS, cm("owner"), "bench-gc")
        await fill(client, "bench-gc", objects, owner)
        stop = asyncio.Event()
        gc = GarbageCollector(client)
        gc_task = asyncio.create_task(gc.run(stop))
        await wait_until(lambda: _synced(gc))
        start = time.perf_counter()
        await client.delete(CONFIGMAPS, "owner", "bench-gc")
        await wait_until(lambda: _none_left(client, "bench-gc"))
        collected = time.perf_counter() - start
        stop.set()
        await gc_task
        rows.append(
            (
                f"remove {objects} dependents, ms",
                collected * 1000,
                direct * 1000,
                "sequential deletes by the client",
            )
        )

        # 5. namespace deletion vs deletecollection
        await client.create(NAMESPACES, {"metadata": {"name": "bench-dc"}})
        await fill(client, "bench-dc", objects)
        dc = await timed(lambda: client.delete_collection(CONFIGMAPS, "bench-dc"))
        await client.create(NAMESPACES, {"metadata": {"name": "bench-ns"}})
        await fill(client, "bench-ns", objects)
        stop = asyncio.Event()
        nsc = NamespaceController(client)
        ns_task = asyncio.create_task(nsc.run(stop))
        await wait_until(lambda: _synced(nsc))
        start = time.perf_counter()
        await client.delete(NAMESPACES, "bench-ns")
        await wait_until(lambda: _ns_gone(client, "bench-ns"))
        ns_time = time.perf_counter() - start
        stop.set()
        await ns_task
        rows.append(
            (
                f"delete namespace with {objects} objects, ms",
                ns_time * 1000,
                dc * 1000,
                "deletecollection of the objects",
            )
        )
    return rows


async def _sequential(client: Client, n: int) -> None:
    for _ in range(n):
        await client.get(CONFIGMAPS, "probe", "bench")


async def _delete_all(client: Client, ns: str, n: int) -> None:
    for i in range(n):
        await client.delete(CONFIGMAPS, f"o{i}", ns)


async def _synced(controller: Any) -> bool:
    return (
        controller.running
        and bool(controller.informers)
        and all(i.has_synced for i in controller.informers)
    )


async def _none_left(client: Client, ns: str) -> bool:
    return await count(client, ns) == 0


async def _ns_gone(client: Client, name: str) -> bool:
    try:
        await client.get(NAMESPACES, name)
    except NotFound:
        return True
    return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=200)
    parser.add_argument("--gets", type=int, default=300)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="hn-bench-") as tmp:
        proc, _url = start_server(Path(tmp) / "data")
        kubeconfig = Path(tmp) / "data" / "admin.kubeconfig"
        try:
            rows = asyncio.run(run(kubeconfig, args.objects, args.gets))
        finally:
            proc.terminate()
            proc.wait(30)
    print(f"{'measure':45} {'ours':>10} {'baseline':>10} {'ratio':>7}  baseline is")
    for what, ours, base, label in rows:
        print(f"{what:45} {ours:10.1f} {base:10.1f} {ours / base:7.2f}  {label}")


if __name__ == "__main__":
    main()
