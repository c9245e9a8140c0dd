"""Pod start-up, memory and density benchmark of the runtime layer (as root).

Measures, in one run, with the busybox test image already in the store:
  * pod start = RunPodSandbox + CreateContainer + StartContainer (the
    container is running), p50/p99, serially and 10 pods at once, for VM
    pods restored from a VM template, VM pods booted cold, and runc pods
    (the baseline: no VM at all);
  * cold boot of a pod VM to the guest agent's first answer with our minimal
    kernel and with Debian's cloud kernel;
  * host memory per idle pod: the PSS (/proc/PID/smaps_rollup) of the pod's
    host processes (QEMU for a VM pod; shim + container for runc) with
    --density N idle pods running, each with one `sleep` container;
  * how many idle VM pods fit: N pods started and held, their total PSS, the
    host's MemAvailable before and after, and their CPU use while idle.

Usage: benchmarks/runtime_startup.py [-n N] [--density N] [--json FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "runtime"))

import imagebuild

from hypernetes.runtime import ContainerConfig, PodSandboxConfig, Runtime, accel, assets
from hypernetes.runtime import template as template_mod

IMAGE = "bench/busybox:1"


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(p / 100 * len(s) + 0.5) - 1))]


SANDBOX: list[float] = []  # RunPodSandbox alone, of every start_pod call


async def start_pod(rt: Runtime, runtime: str, name: str, cmd: list[str]) -> tuple[str, float]:
    t0 = time.perf_counter()
    sid = await rt.run_pod_sandbox(PodSandboxConfig(name=name, runtime=runtime))
    SANDBOX.append(time.perf_counter() - t0)
    cid = await rt.create_container(sid, ContainerConfig(name="c", image=IMAGE, command=cmd))
    await rt.start_container(cid)
    return sid, time.perf_counter() - t0


async def remove(rt: Runtime, sids: list[str]) -> None:
    for sid in sids:
        await rt.stop_pod_sandbox(sid, grace=0)
        await rt.remove_pod_sandbox(sid)


async def serial(rt: Runtime, runtime: str, n: int) -> list[float]:
    out = []
    SANDBOX.clear()
    for i in range(n):
        sid, dt = await start_pod(rt, runtime, f"s{i}", ["sleep", "1000"])
        out.append(dt)
        await remove(rt, [sid])
    return out


async def parallel(rt: Runtime, runtime: str, n: int) -> tuple[list[float], float]:
    t0 = time.perf_counter()
    res = await asyncio.gather(
        *(start_pod(rt, runtime, f"p{i}", ["sleep", "1000"]) for i in range(n))
    )
    wall = time.perf_counter() - t0
    await remove(rt, [sid for sid, _ in res])
    return [dt for _, dt in res], wall


def _children() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                ppid = int((d / "stat").read_text().rpartition(")")[2].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            kids.setdefault(ppid, []).append(int(d.name))
    return kids


def _tree(root: int, kids: dict[int, list[int]]) -> list[int]:
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += kids.get(p, [])
    return out


def pss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def cpu_ticks(pid: int) -> int:
    try:
        f = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        return int(f[11]) + int(f[12])
    except (OSError, IndexError):
        return 0


def pod_roots(rt: Runtime, sid: str) -> list[int]:
    """The host processes that make up a pod: QEMU, or the runc shims."""
    b = rt._sandboxes[sid]
    if b.record.config.runtime == "vm":
        return [b.record.pid]
    bundles = [c.bundle.encode() for c in b.record.containers.values()]
    roots = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                cmd = (d / "cmdline").read_bytes()
            except OSError:
                continue
            if b"runc_shim" in cmd and any(x in cmd for x in bundles):
                roots.append(int(d.name))
    return roots


def mem_available_kib() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1])
    return 0


async def density(rt: Runtime, runtime: str, n: int) -> dict[str, Any]:
    """Starts n idle pods, measures their PSS and idle CPU, removes them."""
    avail0 = mem_available_kib()
    sids = []
    try:
        for i in range(n):
            sid, _ = await start_pod(rt, runtime, f"d{i}", ["sleep", "100000"])
            sids.append(sid)
        await asyncio.sleep(3)  # let them settle into idle
        kids = _children()
        pods = {sid: [p for r in pod_roots(rt, sid) for p in _tree(r, kids)] for sid in sids}
        per_pod = [sum(pss_kib(p) for p in pids) for pids in pods.values()]
        all_pids = [p for pids in pods.values() for p in pids]
        t0, c0 = time.monotonic(), sum(cpu_ticks(p) for p in all_pids)
        await asyncio.sleep(5)
        c1 = sum(cpu_ticks(p) for p in all_pids)
        cpu = (c1 - c0) / os.sysconf("SC_CLK_TCK") / (time.monotonic() - t0)
        avail1 = mem_available_kib()
        alive = sum(1 for sid in sids if rt._sandboxes[sid].record.state == "ready")
        return {
            "pods": n,
            "ready": alive,
            "pss_mib_median": statistics.median(per_pod) / 1024,
            "pss_mib_max": max(per_pod) / 1024,
            "pss_mib_total": sum(per_pod) / 1024,
            "mem_available_drop_mib": (avail0 - avail1) / 1024,
            "idle_cpu_cores": cpu,
        }
    finally:
        await remove(rt, sids)


async def cold_boot_to_agent(rt: Runtime, n: int) -> list[float]:
    out = []
    for i in range(n):
        t0 = time.perf_counter()
        sid = await rt.run_pod_sandbox(PodSandboxConfig(name=f"b{i}"))
        out.append(time.perf_counter() - t0)
        await remove(rt, [sid])
    return out


async def with_runtime(
    d: Path, name: str, fn: Callable[[Runtime], Awaitable[Any]], **kw: Any
) -> Any:
    rt = Runtime(d / name, **kw)
    await rt.open()
    try:
        await rt.import_image(str(d / "bb.tar"))
        return await fn(rt)
    finally:
        await rt.close()


def summary(values: list[float]) -> dict[str, float]:
    return {
        "p50": statistics.median(values),
        "p99": pct(values, 99),
        "min": min(values),
        "n": len(values),
    }


async def main(n: int, n_cold: int, dens: int, out_json: str | None) -> None:
    d = Path(tempfile.mkdtemp(prefix="hnrt-bench-"))
    results: dict[str, Any] = {}
    try:
        imagebuild.busybox_image().docker_archive(str(d / "bb.tar"), IMAGE)
        boot = assets.boot_assets("hypernetes")
        chosen, why = accel.choose(boot.kernel)
        results["accel"] = f"{chosen} ({why.splitlines()[0]})"
        print("accelerator:", results["accel"])

        async def vm_template(rt: Runtime) -> dict[str, Any]:
            await remove(rt, [(await start_pod(rt, "vm", "warm", ["true"]))[0]])  # builds it
            s = await serial(rt, "vm", n)
            sandbox = summary(SANDBOX)
            p, wall = await parallel(rt, "vm", 10)
            return {
                "serial": summary(s),
                "serial_sandbox_only": sandbox,
                "parallel10": summary(p),
                "parallel10_wall": wall,
            }

        async def vm_cold(rt: Runtime) -> dict[str, Any]:
            s = await serial(rt, "vm", n_cold)
            p, wall = await parallel(rt, "vm", 10)
            return {"serial": summary(s), "parallel10": summary(p), "parallel10_wall": wall}

        async def runc(rt: Runtime) -> dict[str, Any]:
            await remove(rt, [(await start_pod(rt, "runc", "warm", ["true"]))[0]])  # unpacks
            s = await serial(rt, "runc", n)
            p, wall = await parallel(rt, "runc", 10)
            return {"serial": summary(s), "parallel10": summary(p), "parallel10_wall": wall}

        results["start/vm-template"] = await with_runtime(d, "tmpl", vm_template)
        results["start/vm-cold"] = await with_runtime(d, "cold", vm_cold, templates=False)
        results["start/runc"] = await with_runtime(d, "runc", runc)
        for flavour in ("hypernetes", "debian"):
            results[f"cold-boot-to-agent/{flavour}"] = summary(
                await with_runtime(
                    d,
                    f"k-{flavour}",
                    lambda rt: cold_boot_to_agent(rt, n_cold),
                    kernel=flavour,
                    templates=False,
                )
            )
        results["density/vm-template"] = await with_runtime(
            d, "dens", lambda rt: density(rt, "vm", dens)
        )
        results["density/runc"] = await with_runtime(
            d, "densr", lambda rt: density(rt, "runc", min(dens, 10))
        )
        tk = template_mod.key(
            assets.for_accel(boot, chosen), chosen, 1, 256
        )  # the default pod size
        meta = template_mod.path_for(tk) / "ready"
        if meta.exists():
            results["template"] = json.loads(meta.read_text())
    finally:
        shutil.rmtree(d, ignore_errors=True)
    print(json.dumps(results, indent=1))
    if out_json:
        Path(out_json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=30, help="serial starts per runtime")
    parser.add_argument("--cold", type=int, default=7, help="serial cold boots")
    parser.add_argument("--density", type=int, default=50, help="idle VM pods to hold")
    parser.add_argument("--json", help="also write the results here")
    a = parser.parse_args()
    asyncio.run(main(a.n, a.cold, a.density, a.json))
