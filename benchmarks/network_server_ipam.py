"""Benchmark of server-mode IPAM: address leases in the API server's store vs a local directory.

Both run in the same process and the same run, on the same machine:

1. IPAM alone: allocate + confirm + release of one lease, p50/p99 over N leases held at
   once in one pool (so the pool document grows as it would), `StoreBackend` (an
   in-process API server over HTTPS, SQLite store, compare-and-swap on each update)
   against `LocalDirBackend` (flock + rename in a directory), the standalone baseline.
2. Pod attach (NetworkManager.attach: lease, veth, addressing, anti-spoofing, confirm),
   p50/p99 over P pods on one network, store-backed vs local (needs root; everything runs
   in private namespaces and is removed afterwards).
3. Contention: two clients allocating N leases each at once from one pool through the
   store, the total time and the compare-and-swap retries it took.

usage: sudo .venv/bin/python benchmarks/network_server_ipam.py [--leases N] [--pods P]
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import os
import secrets
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hypernetes.client import Client, load_kubeconfig
from hypernetes.network.datapath import Datapath
from hypernetes.network.ipam import IPAM, IPAMBackend, Pool
from hypernetes.network.ipam_local import LocalDirBackend
from hypernetes.network.ipam_store import LoopThread, StoreBackend
from hypernetes.network.manager import NetworkManager
from hypernetes.network.namespaces import create_netns, delete_netns

RUN = "i" + secrets.token_hex(3)


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def summary(samples: list[float]) -> str:
    ms = [s * 1000 for s in samples]
    return f"p50 {statistics.median(ms):7.2f} ms   p99 {percentile(ms, 99):7.2f} ms   n={len(ms)}"


def timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


class Server:
    """An in-process API server on a loop thread, and clients for it."""

    def __init__(self, data: Path) -> None:
        from hypernetes.api.server import Server as APIServer
        from hypernetes.api.server import ServerConfig

        self.thread = LoopThread()
        self.server = APIServer(ServerConfig(data, "127.0.0.1", 0))
        self.thread.run(self.server.start())
        self.clients: list[Client] = []

    def backend(self) -> StoreBackend:
        client = Client(load_kubeconfig(self.server.admin_kubeconfig))
        self.clients.append(client)
        return StoreBackend(client, self.thread.loop)

    def close(self) -> None:
        for c in self.clients:
            self.thread.run(c.close())
        self.thread.run(self.server.stop())
        self.thread.close()


def bench_ipam(backend: IPAMBackend, n: int, tag: str) -> list[float]:
    ipam = IPAM(backend, node="bench", liveness=lambda lease: False)
    pool = Pool.of("bench", f"ipam-{tag}", "10.66.0.0/16")
    ipam.ensure_pool(pool)

    def lease(owner: str) -> None:
        ipam.allocate(pool, owner)
        ipam.confirm(pool, owner)

    # Leases stay: the document grows to n leases.
    samples = [timed(functools.partial(lease, f"p{i}")) for i in range(n)]

    def cycle_once() -> None:
        ipam.allocate(pool, "x")
        ipam.confirm(pool, "x")
        ipam.release(pool, "x")

    cycle = [timed(cycle_once) for _ in range(50)]
    ipam.delete_pool(pool)
    return samples + cycle


def bench_attach(backend: IPAMBackend, pods: int, state: str, tag: str) -> list[float]:
    host = f"hnbench-{RUN}-{tag}-host"
    create_netns(host)
    datapath = Datapath(state, tag=f"{RUN}{tag}", host_netns=f"/run/netns/{host}", masquerade=False)
    manager = NetworkManager(datapath, IPAM(backend, node="bench", liveness=lambda lease: False))
    names = []
    try:
        manager.ensure_network("bench", f"net-{tag}", "10.67.0.0/20")
        samples = []
        for i in range(pods):
            ns = f"hnbench-{RUN}-{tag}-p{i}"
            create_netns(ns)
            names.append(ns)
            attach = functools.partial(
                manager.attach, "bench", f"net-{tag}", f"pod{i}", netns=f"/run/netns/{ns}"
            )
            samples.append(timed(attach))
        return samples
    finally:
        manager.teardown_all()
        for ns in names:
            delete_netns(ns)
        delete_netns(host)


def bench_contention(server: Server, n: int) -> tuple[float, int, int]:
    a, b = server.backend(), server.backend()
    pool = Pool.of("bench", "contended", "10.68.0.0/16")
    IPAM(a, node="a").ensure_pool(pool)
    leased: list[str] = []

    def run(backend: StoreBackend, who: str) -> None:
        ipam = IPAM(backend, node=who, liveness=lambda lease: False)
        for i in range(n):
            leased.append(str(ipam.allocate(pool, f"{who}{i}").address))

    threads = [threading.Thread(target=run, args=(x, w)) for x, w in ((a, "a"), (b, "b"))]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    IPAM(a, node="a").delete_pool(pool)
    assert len(set(leased)) == len(leased) == 2 * n, "an address was handed out twice"
    return elapsed, a.retries + b.retries, len(leased)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--leases", type=int, default=300)
    parser.add_argument("--pods", type=int, default=100)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="hn-ipam-bench-") as tmp:
        server = Server(Path(tmp) / "data")
        try:
            print(f"load average at start: {os.getloadavg()[0]:.2f}")
            local = bench_ipam(LocalDirBackend(f"{tmp}/ipam"), args.leases, "local")
            store = bench_ipam(server.backend(), args.leases, "store")
            print(f"IPAM lease+confirm, {args.leases} held, + 50 lease/confirm/release cycles")
            print(f"  store (API server) {summary(store)}")
            print(f"  local directory    {summary(local)}   (baseline)")
            if os.geteuid() == 0 and args.pods:
                local_att = bench_attach(LocalDirBackend(f"{tmp}/att"), args.pods, f"{tmp}/l", "l")
                store_att = bench_attach(server.backend(), args.pods, f"{tmp}/s", "s")
                print(f"veth attach, {args.pods} pods on one network")
                print(f"  store (API server) {summary(store_att)}")
                print(f"  local directory    {summary(local_att)}   (baseline)")
            elapsed, retries, total = bench_contention(server, args.leases // 2)
            rate = total / elapsed
            print(
                f"contention: 2 clients x {args.leases // 2} leases at once: {elapsed:.2f} s, "
                f"{rate:.0f} leases/s, {retries} CAS retries, no duplicate"
            )
        finally:
            server.close()


if __name__ == "__main__":
    asyncio.set_event_loop_policy(None)
    main()
