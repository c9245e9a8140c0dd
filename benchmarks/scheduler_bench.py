"""Benchmark of the scheduler: pods bound per second, end to end through the API.

Starts `hypernetes server --no-controllers` on a free loopback port in a
temporary directory for each cluster size, registers N simulated Node
objects (capacity, allocatable, Ready), and runs the `Scheduler` in this
process as an API client, as it runs inside `hypernetes server`. For each
cluster size it measures, each beside a baseline taken in the same run:

1. Create + bind: P pods created (C requests in flight) while the scheduler
   binds them, from the first create until the last binding is seen through
   a watch. Baseline: the same P creates, each followed at once by a Binding
   POST to a round-robin node — what the API itself sustains with no
   scheduling decision at all (its ceiling for this workload).
2. Backlog: P pods created first, then the scheduler started; the rate from
   the first binding seen to the last (so the scheduler's start-up list of
   every pod in the cluster, which grows run after run, is not counted).
   Baseline: P Binding POSTs for P already created pods, C in flight, the
   same way.
3. Decision cost: the scheduler's in-memory `select_node` alone, per pod.

Each measurement is repeated `--runs` times (a fresh namespace each time);
medians are reported. Target (Kubernetes' scheduler-throughput threshold):
at least 100 pods/s.

usage: .venv/bin/python benchmarks/scheduler_bench.py [--nodes 100,1000] [--pods 1000]
       [--concurrency 16] [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from serverproc import start_server

from hypernetes.client import NAMESPACES, NODES, PODS, Client, Informer, load_kubeconfig
from hypernetes.controllers import Scheduler


def node(name: str) -> dict[str, Any]:
    resources = {"cpu": "32", "memory": "128Gi", "pods": "250"}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name},
        "status": {
            "capacity": resources,
            "allocatable": resources,
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "KubeletReady",
                    "message": "simulated",
                }
            ],
        },
    }


def pod(name: str, scheduler: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "schedulerName": scheduler,
            "containers": [
                {
                    "name": "c",
                    "image": "pause",
                    "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}},
                }
            ],
        },
    }


async def bounded(concurrency: int, jobs: list[Any]) -> None:
    """Run the coroutines in `jobs` with at most `concurrency` in flight."""
    queue: asyncio.Queue[Any] = asyncio.Queue()
    for job in jobs:
        queue.put_nowait(job)

    async def worker() -> None:
        while not queue.empty():
            await queue.get_nowait()

    await asyncio.gather(*(worker() for _ in range(concurrency)))


async def make_nodes(client: Client, count: int) -> list[str]:
    names = [f"sim-{i:05d}" for i in range(count)]

    async def one(name: str) -> None:
        body = node(name)
        await client.create(NODES, body)
        status = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": name},
            "status": body["status"],
        }
        await client.replace(NODES, name, status, subresource="status")

    await bounded(16, [one(n) for n in names])
    return names


async def namespace(client: Client) -> str:
    name = f"bench-{uuid.uuid4().hex[:8]}"
    await client.create(NAMESPACES, {"metadata": {"name": name}})
    return name


async def bind(client: Client, ns: str, name: str, target: str) -> None:
    body = {
        "apiVersion": "v1",
        "kind": "Binding",
        "metadata": {"name": name},
        "target": {"apiVersion": "v1", "kind": "Node", "name": target},
    }
    await client.request("POST", PODS.path(ns, name, "binding"), body=body)


class BoundWatch:
    """Counts pods of one namespace seen bound through a watch."""

    def __init__(self, client: Client, ns: str, expected: int) -> None:
        self.expected = expected
        self.bound: set[str] = set()
        self.first = self.last = 0.0
        self.done = asyncio.Event()
        self.informer = Informer(client, PODS, ns)
        self.informer.add_handlers(self._seen, lambda _o, p: self._seen(p), None)
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def _seen(self, obj: dict[str, Any]) -> None:
        if obj["spec"].get("nodeName"):
            if not self.bound:
                self.first = time.perf_counter()
            self.bound.add(obj["metadata"]["name"])
            if len(self.bound) >= self.expected and not self.done.is_set():
                self.last = time.perf_counter()
                self.done.set()

    def rate(self) -> float:
        """Bindings per second from the first seen to the last (the steady throughput)."""
        return (self.expected - 1) / (self.last - self.first)

    async def __aenter__(self) -> BoundWatch:
        self._task = asyncio.create_task(self.informer.run(self._stop))
        await self.informer.wait_synced(60)
        return self

    async def __aexit__(self, *_: object) -> None:
        self._stop.set()
        if self._task is not None:
            with contextlib.suppress(Exception):
                await self._task


@contextlib.asynccontextmanager
async def scheduler_running(client: Client) -> Any:
    scheduler = Scheduler(client)
    stop = asyncio.Event()
    task = asyncio.create_task(scheduler.run(stop))
    while not (
        scheduler.running and scheduler.informers and all(i.has_synced for i in scheduler.informers)
    ):
        if task.done():
            task.result()
        await asyncio.sleep(0.05)
    try:
        yield scheduler
    finally:
        stop.set()
        await task


async def baseline_create_bind(client: Client, nodes: list[str], pods: int, conc: int) -> float:
    ns = await namespace(client)
    targets = itertools.cycle(nodes)
    async with BoundWatch(client, ns, pods) as seen:

        async def one(i: int, target: str) -> None:
            await client.create(PODS, pod(f"p{i}", "bench-none"), ns)
            await bind(client, ns, f"p{i}", target)

        started = time.perf_counter()
        await bounded(conc, [one(i, next(targets)) for i in range(pods)])
        await asyncio.wait_for(seen.done.wait(), 600)
        return time.perf_counter() - started


async def scheduler_create_bind(client: Client, pods: int, conc: int) -> float:
    ns = await namespace(client)
    async with BoundWatch(client, ns, pods) as seen, scheduler_running(client):
        started = time.perf_counter()
        await bounded(
            conc, [client.create(PODS, pod(f"p{i}", "default-scheduler"), ns) for i in range(pods)]
        )
        await asyncio.wait_for(seen.done.wait(), 600)
        return time.perf_counter() - started


async def baseline_backlog(client: Client, nodes: list[str], pods: int, conc: int) -> float:
    ns = await namespace(client)
    await bounded(conc, [client.create(PODS, pod(f"p{i}", "bench-none"), ns) for i in range(pods)])
    targets = itertools.cycle(nodes)
    async with BoundWatch(client, ns, pods) as seen:
        await bounded(conc, [bind(client, ns, f"p{i}", next(targets)) for i in range(pods)])
        await asyncio.wait_for(seen.done.wait(), 600)
        return seen.rate()


async def scheduler_backlog(client: Client, pods: int, conc: int) -> float:
    ns = await namespace(client)
    await bounded(
        conc, [client.create(PODS, pod(f"p{i}", "default-scheduler"), ns) for i in range(pods)]
    )
    async with BoundWatch(client, ns, pods) as seen, scheduler_running(client):
        await asyncio.wait_for(seen.done.wait(), 600)
        return seen.rate()


async def decision_cost(client: Client, pods: int) -> float:
    """Seconds per `select_node` on the scheduler's warm cache (no API calls)."""
    async with scheduler_running(client) as scheduler:
        sample = pod("probe", "default-scheduler") | {
            "metadata": {"name": "probe", "namespace": "default"}
        }
        started = time.perf_counter()
        for _ in range(pods):
            name, _msg = scheduler.select_node(sample)
            assert name is not None
        return (time.perf_counter() - started) / pods


async def one_size(node_count: int, pods: int, conc: int, runs: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="hn-sched-bench-") as tmp:
        proc, _url = start_server(Path(tmp) / "data", "--no-controllers", "--no-agent")
        try:
            config = load_kubeconfig(Path(tmp) / "data" / "admin.kubeconfig")
            async with Client(config) as client:
                started = time.perf_counter()
                nodes = await make_nodes(client, node_count)
                print(
                    f"{node_count} nodes registered in {time.perf_counter() - started:.1f}s",
                    flush=True,
                )
                results: dict[str, list[float]] = {
                    k: [] for k in ("base_cb", "sched_cb", "base_bl", "sched_bl")
                }
                for run in range(runs):
                    results["base_cb"].append(await baseline_create_bind(client, nodes, pods, conc))
                    results["sched_cb"].append(await scheduler_create_bind(client, pods, conc))
                    # The backlog functions give rates; keep seconds-per-pods like the others.
                    results["base_bl"].append(
                        pods / await baseline_backlog(client, nodes, pods, conc)
                    )
                    results["sched_bl"].append(pods / await scheduler_backlog(client, pods, conc))
                    print(
                        f"  run {run + 1}: "
                        + ", ".join(f"{k} {pods / v[-1]:.0f} pods/s" for k, v in results.items()),
                        flush=True,
                    )
                cost = await decision_cost(client, 500)
        finally:
            proc.terminate()
            proc.wait(30)
    rates = {k: pods / statistics.median(v) for k, v in results.items()}
    return {"nodes": node_count, **rates, "decision_us": cost * 1e6}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--nodes", default="100,1000")
    parser.add_argument("--pods", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    rows = []
    for count in (int(n) for n in args.nodes.split(",")):
        rows.append(await one_size(count, args.pods, args.concurrency, args.runs))
    print()
    print(f"pods={args.pods} concurrency={args.concurrency} runs={args.runs} (medians)")
    print(
        "| nodes | create+bind: baseline | create+bind: scheduler | ratio "
        "| backlog: baseline | backlog: scheduler | ratio | select_node |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['nodes']} | {r['base_cb']:.0f} pods/s | {r['sched_cb']:.0f} pods/s "
            f"| {r['sched_cb'] / r['base_cb']:.2f} | {r['base_bl']:.0f} pods/s "
            f"| {r['sched_bl']:.0f} pods/s | {r['sched_bl'] / r['base_bl']:.2f} "
            f"| {r['decision_us']:.0f} µs |"
        )


if __name__ == "__main__":
    asyncio.run(main())
