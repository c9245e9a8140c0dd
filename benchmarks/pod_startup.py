"""Pod startup latency as Kubernetes' SLI defines it, end to end through the API (as root).

Kubernetes' pod-startup SLI: the time from a pod's creation until all its
containers are reported started, as observed through a watch, for pods whose
image is already on the node. This script measures exactly that on a real
`hypernetes server` (API server, controllers with the scheduler, and the
embedded node agent, all in one process) in a temporary data dir, with the
busybox test image imported into the node's image store beforehand
(`imagePullPolicy: IfNotPresent`, so no pull is timed).

For each pod: t0 just before its create request is sent (the pod's
creationTimestamp has only second resolution; t0 is at most one request
earlier, so the numbers are conservative); then, from one watch (an
`Informer`) on the benchmark's namespace, the first event with
`spec.nodeName` set (scheduled) and the first with phase Running and every
container `running` (started). startup = started - t0.

Scenarios, each for VM pods (the default runtime) and runc pods
(annotation `hypernetes.io/runtime: runc`, the same-run baseline), both in
one non-tenant namespace, interleaved VM then runc:
  * 1 pod at a time, --serial times (created, Running, deleted, gone);
  * --burst pods created at once (all creates in flight together), --repeat times;
  * --big pods created at once, once.
A warm-up pod per runtime (not counted) builds the VM template and unpacks
the image for runc first. Every pod is deleted gracefully (1 s) and seen
gone — which the agent does only once its sandbox is removed — before the
next scenario. At the end the server is stopped and the node's runtime is
checked: sandboxes the agent left behind are wiped, and the script exits 1
if there were any or if a QEMU process of its data dir remains.

It also reports, per scenario, the CPU used while pods were starting: by the
server's one process (API server, scheduler, controllers and agent share its
event loop) and by the whole machine (QEMU's emulation shows up there).

Targets: Kubernetes' SLO p99 <= 5 s; ours under TCG: p50 <= 0.3 s and
p99 <= 1 s for 10 pods at once.

usage: .venv/bin/python benchmarks/pod_startup.py [--serial 20] [--burst 10] [--repeat 3]
       [--big 50] [--runtimes vm,runc] [--json FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "runtime"))

import imagebuild
from serverproc import start_server

from hypernetes.client import NAMESPACES, NODES, PODS, Client, Informer, load_kubeconfig
from hypernetes.node.embedded import default_node_name
from hypernetes.runtime import Runtime

IMAGE = "bench/busybox:1"
WAIT = 300.0  # seconds a scenario may take before the benchmark gives up

Obj = dict[str, Any]


def pct(values: list[float], p: float) -> float:
    """Nearest-rank percentile (with fewer than 100 samples, p99 is the worst one)."""
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(p / 100 * len(s) + 0.5) - 1))]


def summary(values: list[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "p50": statistics.median(values),
        "p99": pct(values, 99),
        "min": min(values),
        "max": max(values),
    }


# -- the server ---------------------------------------------------------------


def stop_server(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def wait_node_ready(client: Client, name: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            node = await client.get(NODES, name)
            conds = (node.get("status") or {}).get("conditions") or []
            if any(c["type"] == "Ready" and c["status"] == "True" for c in conds):
                return
        await asyncio.sleep(0.5)
    raise SystemExit(f"node {name} did not become Ready")


async def wipe_runtime(data: Path) -> int:
    """Stops and removes every sandbox left in the node's runtime; how many there were."""
    rt = Runtime(data)
    await rt.open()
    try:
        left = await rt.list_pod_sandboxes()
        for s in left:
            await rt.stop_pod_sandbox(s.id, grace=0)
            await rt.remove_pod_sandbox(s.id)
        return len(left)
    finally:
        await rt.close()


def qemu_of(data: Path) -> list[int]:
    """QEMU processes whose command line mentions the data dir."""
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            with contextlib.suppress(OSError):
                cmd = (d / "cmdline").read_bytes()
                if b"qemu-system" in cmd and str(data).encode() in cmd:
                    out.append(int(d.name))
    return out


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system) a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far, from /proc/stat."""
    ticks = [int(x) for x in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    hz = os.sysconf("SC_CLK_TCK")
    return (sum(ticks) - ticks[3] - ticks[4]) / hz, sum(ticks) / hz


@dataclass
class CpuShare:
    """Where the CPU went during a measurement: the server's one process (API server,
    scheduler, controllers and agent share its event loop) and the machine as a whole."""

    pid: int
    server: float = 0.0
    busy: float = 0.0
    total: float = 0.0

    def __enter__(self) -> CpuShare:
        self.server = -process_cpu(self.pid)
        busy, total = machine_busy()
        self.busy, self.total = -busy, -total
        return self

    def __exit__(self, *_: object) -> None:
        self.server += process_cpu(self.pid)
        busy, total = machine_busy()
        self.busy += busy
        self.total += total


# -- pods and the watch -------------------------------------------------------


def pod(name: str, runtime: str) -> Obj:
    meta: Obj = {"name": name, "labels": {"bench": "pod-startup", "runtime": runtime}}
    if runtime != "vm":
        meta["annotations"] = {"hypernetes.io/runtime": runtime}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta,
        "spec": {
            "restartPolicy": "Always",
            "terminationGracePeriodSeconds": 1,
            "containers": [
                {
                    "name": "main",
                    "image": IMAGE,
                    "imagePullPolicy": "IfNotPresent",
                    "command": ["sleep", "3600"],
                }
            ],
        },
    }


def all_started(obj: Obj) -> bool:
    """Running, and every container of the spec reported running (the SLI's 'started')."""
    status = obj.get("status") or {}
    if status.get("phase") != "Running":
        return False
    wanted = {c["name"] for c in obj["spec"].get("containers") or []}
    running = {
        s["name"]
        for s in status.get("containerStatuses") or []
        if "running" in (s.get("state") or {})
    }
    return wanted <= running


@dataclass
class Timing:
    sent: float = 0.0  # just before the create request
    created: float = 0.0  # the create's answer
    scheduled: float = 0.0  # first seen with spec.nodeName
    started: float = 0.0  # first seen Running with all containers running


@dataclass
class PodWatch:
    """One watch on the namespace: when each pod was first seen scheduled and started."""

    client: Client
    ns: str
    server_pid: int
    timings: dict[str, Timing] = field(default_factory=dict)
    gone: set[str] = field(default_factory=set)
    problems: dict[str, str] = field(default_factory=dict)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def _seen(self, obj: Obj) -> None:
        now = time.perf_counter()
        name = obj["metadata"]["name"]
        t = self.timings.get(name)
        if t is None:
            return
        if not t.scheduled and obj["spec"].get("nodeName"):
            t.scheduled = now
        if not t.started and all_started(obj):
            t.started = now
        for s in (obj.get("status") or {}).get("containerStatuses") or []:
            reason = ((s.get("state") or {}).get("waiting") or {}).get("reason")
            if reason and reason not in ("ContainerCreating", "PodInitializing"):
                self.problems[name] = reason
        self.changed.set()

    def _deleted(self, obj: Obj) -> None:
        self.gone.add(obj["metadata"]["name"])
        self.changed.set()

    async def until(self, done: Any, what: str) -> None:
        deadline = time.monotonic() + WAIT
        while not done():
            if self.problems:
                raise SystemExit(f"pods failed while {what}: {self.problems}")
            left = deadline - time.monotonic()
            if left <= 0:
                raise SystemExit(f"timed out {what}")
            self.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), min(left, 1.0))

    @contextlib.asynccontextmanager
    async def running(self) -> Any:
        informer = Informer(self.client, PODS, self.ns)
        informer.add_handlers(self._seen, lambda _old, new: self._seen(new), self._deleted)
        stop = asyncio.Event()
        task = asyncio.create_task(informer.run(stop))
        await informer.wait_synced(60)
        try:
            yield self
        finally:
            stop.set()
            with contextlib.suppress(Exception):
                await task


async def create(client: Client, watch: PodWatch, ns: str, name: str, runtime: str) -> None:
    t = watch.timings[name] = Timing()
    t.sent = time.perf_counter()
    await client.create(PODS, pod(name, runtime), ns)
    t.created = time.perf_counter()


async def delete_all(client: Client, watch: PodWatch, ns: str, names: list[str]) -> None:
    # Graceful: the agent deletes the object once the sandbox is gone, so "gone" in the
    # watch means torn down, and no teardown overlaps the next measurement.
    await asyncio.gather(
        *(client.delete(PODS, n, ns) for n in names),
        return_exceptions=True,
    )
    await watch.until(lambda: all(n in watch.gone for n in names), "deleting pods")


async def batch(
    client: Client, watch: PodWatch, ns: str, runtime: str, size: int, tag: str
) -> tuple[list[Timing], float, CpuShare]:
    """`size` pods created at once: their timings, the wall time to the last started,
    and the CPU used meanwhile."""
    names = [f"{runtime}-{tag}-{i}" for i in range(size)]
    with CpuShare(watch.server_pid) as cpu:
        t0 = time.perf_counter()
        await asyncio.gather(*(create(client, watch, ns, n, runtime) for n in names))
        await watch.until(
            lambda: all(watch.timings[n].started for n in names), f"starting {size} {runtime} pods"
        )
        wall = time.perf_counter() - t0
    timings = [watch.timings[n] for n in names]
    await delete_all(client, watch, ns, names)
    return timings, wall, cpu


def describe(timings: list[Timing], walls: list[float], cpus: list[CpuShare]) -> dict[str, Any]:
    wall = sum(walls)
    return {
        "wall": walls,
        # cores used, on average, while pods were starting
        "server_cores": sum(c.server for c in cpus) / wall,
        "machine_cores": sum(c.busy for c in cpus) / wall,
        "machine_busy_fraction": sum(c.busy for c in cpus) / sum(c.total for c in cpus),
        "startup": summary([t.started - t.sent for t in timings]),
        "create_request": summary([t.created - t.sent for t in timings]),
        "to_scheduled": summary([t.scheduled - t.sent for t in timings]),
        "scheduled_to_started": summary([t.started - t.scheduled for t in timings]),
    }


# -- the run ------------------------------------------------------------------


async def scenarios(
    client: Client,
    ns: str,
    server_pid: int,
    runtimes: list[str],
    args: argparse.Namespace,
    results: dict[str, Any],
) -> None:
    async with PodWatch(client, ns, server_pid).running() as watch:
        for rt in runtimes:  # warm-up: the VM template is built, the runc rootfs unpacked
            t, _, _ = await batch(client, watch, ns, rt, 1, "warm")
            results[f"warmup/{rt}"] = t[0].started - t[0].sent
            print(f"warm-up {rt}: {results[f'warmup/{rt}']:.2f}s", flush=True)
        plan = [(1, args.serial, "s"), (args.burst, args.repeat, "b"), (args.big, 1, "big")]
        for size, repeat, tag in [p for p in plan if p[0] and p[1]]:
            got: dict[str, tuple[list[Timing], list[float], list[CpuShare]]] = {
                rt: ([], [], []) for rt in runtimes
            }
            for i in range(repeat):  # interleaved, so both runtimes see the same machine
                for rt in runtimes:
                    t, wall, cpu = await batch(client, watch, ns, rt, size, f"{tag}{i}")
                    got[rt][0].extend(t)
                    got[rt][1].append(wall)
                    got[rt][2].append(cpu)
            for rt in runtimes:
                r = results[f"{size}/{rt}"] = describe(*got[rt])
                print(
                    f"{size} at once x{repeat} {rt}: p50 {r['startup']['p50']:.3f}s "
                    f"p99 {r['startup']['p99']:.3f}s",
                    flush=True,
                )


async def main(args: argparse.Namespace) -> None:
    runtimes = args.runtimes.split(",")
    tmp = Path(tempfile.mkdtemp(prefix="hnps-"))  # short: runtime sockets live under it
    data = tmp / "data"
    data.mkdir()
    results: dict[str, Any] = {"load_before": os.getloadavg()}
    proc: subprocess.Popen[str] | None = None
    try:
        imagebuild.busybox_image().docker_archive(str(tmp / "bb.tar"), IMAGE)
        await Runtime(data).import_image(str(tmp / "bb.tar"))
        proc, url = start_server(data)
        print(f"server {url}, log {tmp / 'server.log'}", flush=True)
        async with Client(load_kubeconfig(data / "admin.kubeconfig")) as client:
            await wait_node_ready(client, default_node_name())
            ns = f"bench-{uuid.uuid4().hex[:6]}"
            await client.create(NAMESPACES, {"metadata": {"name": ns}})
            started = time.perf_counter()
            try:
                await scenarios(client, ns, proc.pid, runtimes, args, results)
            finally:
                results["duration_s"] = time.perf_counter() - started
                results["load_after"] = os.getloadavg()
                with contextlib.suppress(Exception):  # whatever an error left behind
                    await client.delete_collection(PODS, ns)
                    deadline = time.monotonic() + 120
                    while (await client.list(PODS, ns))["items"] and time.monotonic() < deadline:
                        await asyncio.sleep(1)
    finally:
        if proc is not None:
            stop_server(proc)
        if args.keep_log:
            shutil.copy(tmp / "server.log", args.keep_log)
        left = await wipe_runtime(data)
        qemu = qemu_of(data)
        shutil.rmtree(tmp, ignore_errors=True)
        print(f"clean-up: {left} sandboxes left by the agent (wiped), QEMU left: {qemu}")
    print(json.dumps(results, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    table(results, runtimes, args)
    if left or qemu:
        raise SystemExit(f"not clean: {left} sandboxes outlived their pods, QEMU left: {qemu}")


def table(results: dict[str, Any], runtimes: list[str], args: argparse.Namespace) -> None:
    print(
        "\n| pods at once | runtime | samples | p50 | p99 | to scheduled p50 | wall "
        "| server CPU | machine CPU |"
    )
    print("|---:|---|---:|---:|---:|---:|---:|---:|---:|")
    for size in (1, args.burst, args.big):
        for rt in runtimes:
            r = results.get(f"{size}/{rt}")
            if r is None:
                continue
            s = r["startup"]
            wall = statistics.median(r["wall"])
            print(
                f"| {size} | {rt} | {s['n']} | {s['p50']:.3f} s | {s['p99']:.3f} s "
                f"| {r['to_scheduled']['p50']:.3f} s | {wall:.2f} s "
                f"| {r['server_cores']:.2f} cores | {r['machine_busy_fraction']:.0%} |"
            )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--serial", type=int, default=20, help="pods started one at a time")
    parser.add_argument("--burst", type=int, default=10, help="pods created at once")
    parser.add_argument("--repeat", type=int, default=3, help="bursts per runtime")
    parser.add_argument("--big", type=int, default=50, help="pods created at once, once (0: no)")
    parser.add_argument("--runtimes", default="vm,runc")
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument("--keep-log", help="copy the server's log here")
    asyncio.run(main(parser.parse_args()))
