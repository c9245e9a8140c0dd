"""Images and rootfs delivery: what a pull costs, and how container root
filesystems best get into the pod VM. Every number beside a baseline
measured in the same run.

Pull (host only): one image (busybox + 1000 files of 4 KiB + a 16 MiB file,
gzip layers) from Debian's docker-registry on loopback into an empty store:
  - download with digest verification (`RegistryClient`, the store's blobs),
    baseline: the same bytes fetched with bare aiohttp GETs, no hashing;
  - the whole pull including unpack (on tmpfs) + `mkfs.erofs`, baseline: the
    same with the layers flattened on disk (how it was done before);
  - import of the same image from a docker-archive.

Rootfs delivery (one VM, same run):
  A erofs: the image flattened once on the host into a read-only erofs disk,
    shared by all pods, hot-plugged per container, tmpfs overlay for writes
    (what the runtime uses);
  B 9p: the image's unpacked tree exported over virtio-9p, same overlay;
  C ext4 copy: a per-container writable ext4 copy of a per-image ext4 disk.
    The guest kernel has no ext4 (on purpose: smaller, faster boot), so only
    C's host-side cost per container is measured: the copy alone.
For A and B: container start to exit for `true` and for a read-heavy command
(find + read every file, cold guest cache).
Usage: benchmarks/runtime_rootfs.py [-n N]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "runtime"))

import aiohttp
import imagebuild
from rthelpers import start_registry

from hypernetes.runtime import ContainerConfig, PodSandboxConfig, Runtime, qemu
from hypernetes.runtime.images import ImageStore, parse_reference
from hypernetes.runtime.images import store as store_mod
from hypernetes.runtime.images.registry import RegistryClient
from hypernetes.runtime.records import ContainerRecord
from hypernetes.runtime.vm import VMSandbox

READ = "find /data -type f | wc -l; cat /data/d*/f* > /dev/null; cat /data/big > /dev/null"
Results = dict[str, list[float]]
PULL = "whole pull (fetch + unpack on tmpfs + mkfs.erofs)"
BARE = "fetch blobs: bare aiohttp GET (baseline)"
EXT4_COPY = "C ext4 copy: host-side copy per container"


def data_layer() -> bytes:
    files = {f"data/d{d}/f{f}": os.urandom(4096) for d in range(10) for f in range(100)}
    files["data/big"] = os.urandom(16 << 20)
    return imagebuild.files_layer(files)


# --- pulls -------------------------------------------------------------------------------


async def bare_fetch(host: str, repo: str, digests: list[str]) -> None:
    """Baseline: the blobs over the same HTTP stack, not hashed, not kept."""
    async with aiohttp.ClientSession() as s:
        for d in digests:
            async with s.get(f"http://{host}/v2/{repo}/blobs/{d}") as r:
                async for _ in r.content.iter_chunked(1 << 16):
                    pass


async def verified_fetch(store: ImageStore, host: str, repo: str, digests: list[str]) -> None:
    """The client's blob path: streamed, hashed, written, renamed into place."""
    ref = parse_reference(f"{host}/{repo}:1")
    async with RegistryClient(store) as client:
        for d in digests:
            await client._blob(ref, {"digest": d, "size": 0}, None, None)


async def bench_pull(d: Path, img: imagebuild.Image, n: int, res: Results) -> None:
    storage = d / "reg" / "storage"
    storage.mkdir(parents=True)
    proc, host = start_registry(storage)
    try:
        img.push(host, "bench/data", "1")
        img.docker_archive(str(d / "img.tar"), "bench/data:1")
        _, config, layers = img.blobs()
        digests = [imagebuild._digest(b) for b in (config, *layers)]
        for i in range(n):
            t0 = time.perf_counter()
            await bare_fetch(host, "bench/data", digests)
            res.setdefault(BARE, []).append(time.perf_counter() - t0)
            store = ImageStore(d / f"s{i}")
            t0 = time.perf_counter()
            await verified_fetch(store, host, "bench/data", digests)
            res.setdefault("fetch blobs: verified into the store", []).append(
                time.perf_counter() - t0
            )
            store = ImageStore(d / f"p{i}")
            t0 = time.perf_counter()
            async with RegistryClient(store) as client:
                await client.pull(f"{host}/bench/data:1")
            res.setdefault(PULL, []).append(time.perf_counter() - t0)
            # baseline: the same pull flattening the layers on disk, not tmpfs
            store = ImageStore(d / f"q{i}")
            saved, store_mod.SCRATCH = store_mod.SCRATCH, "/nonexistent"
            t0 = time.perf_counter()
            try:
                async with RegistryClient(store) as client:
                    await client.pull(f"{host}/bench/data:1")
            finally:
                store_mod.SCRATCH = saved
            res.setdefault("whole pull, flattening on disk (baseline)", []).append(
                time.perf_counter() - t0
            )
            rt = Runtime(d / f"i{i}")
            t0 = time.perf_counter()
            await rt.import_image(str(d / "img.tar"))
            res.setdefault(
                "import docker-archive (copy + unpack on tmpfs + mkfs.erofs)", []
            ).append(time.perf_counter() - t0)
            for sub in (f"s{i}", f"p{i}", f"q{i}", f"i{i}"):
                shutil.rmtree(d / sub)
        print(f"image: {sum(len(x) for x in layers) / 1e6:.1f} MB compressed layers")
    finally:
        proc.terminate()
        proc.wait(10)


# --- rootfs delivery --------------------------------------------------------------------


async def run_erofs(rt: Runtime, sid: str, cmd: str) -> float:
    t0 = time.perf_counter()
    cid = await rt.create_container(
        sid, ContainerConfig(name="a", image="bench/data:1", command=["sh", "-c", cmd])
    )
    await rt.start_container(cid)
    st = await rt.wait_container(cid, 300)
    dt = time.perf_counter() - t0
    assert st.exit_code == 0, st
    await rt.remove_container(cid)
    return dt


async def run_9p(rt: Runtime, sid: str, cmd: str, n: int) -> float:
    """A container whose lower layer is the 9p share, set up through the
    agent directly (the runtime itself only knows erofs disks)."""
    sandbox = rt._sandboxes[sid]
    assert isinstance(sandbox, VMSandbox) and sandbox.agent is not None
    t0 = time.perf_counter()
    image = rt.images.get("bench/data:1")
    assert image is not None
    c = ContainerRecord(
        id=f"ninep{n}",
        pod_id=sid,
        config=ContainerConfig(name="b", image=""),
        image_id=image.id,
        argv=["sh", "-c", cmd],
        env=[],
        cwd="/",
        uid=0,
        gid=0,
        log_path=str(sandbox.record.path / f"9p{n}.log"),
    )
    c.streams = sandbox.record.alloc_streams()
    await sandbox.agent.request(
        "create",
        container=c.id,
        argv=c.argv,
        env=["PATH=/bin"],
        cwd="/",
        rootfs={
            "device": "imgs",
            "fstype": "9p",
            "options": "trans=virtio,version=9p2000.L,cache=loose,msize=262144",
        },
        stdout_stream=c.streams[1],
        stderr_stream=c.streams[2],
    )
    sandbox.record.containers[c.id] = c
    await rt.start_container(c.id)
    st = await rt.wait_container(c.id, 300)
    dt = time.perf_counter() - t0
    assert st.exit_code == 0, st
    await rt.remove_container(c.id)
    return dt


def ext4_disk(tree: Path, dest: Path) -> None:
    size = sum(f.stat().st_size for f in tree.rglob("*") if f.is_file() and not f.is_symlink())
    mib = size * 13 // 10 // (1 << 20) + 16
    subprocess.run(
        ["mkfs.ext4", "-q", "-F", "-d", str(tree), "-E", "root_owner=0:0", str(dest), f"{mib}M"],
        check=True,
        capture_output=True,
    )


async def bench_rootfs(d: Path, img: imagebuild.Image, n: int, res: Results) -> None:
    img.docker_archive(str(d / "img.tar"), "bench/data:1")
    rt = Runtime(d / "data")
    t0 = time.perf_counter()
    info = await rt.import_image(str(d / "img.tar"))  # ingests and builds the erofs disk
    res["per image: erofs disk (import: copy + unpack + mkfs.erofs)"] = [time.perf_counter() - t0]
    t0 = time.perf_counter()
    tree = await asyncio.to_thread(rt.images.unpacked_path, info.id)
    res["per image: unpacked tree for 9p (unpack on disk)"] = [time.perf_counter() - t0]
    t0 = time.perf_counter()
    await asyncio.to_thread(ext4_disk, tree, d / "image.ext4")
    res["per image: ext4 disk (mkfs.ext4 -d from the tree)"] = [time.perf_counter() - t0]
    for i in range(n):
        t0 = time.perf_counter()
        await asyncio.to_thread(shutil.copyfile, d / "image.ext4", d / f"c{i}.ext4")
        res.setdefault(EXT4_COPY, []).append(time.perf_counter() - t0)
        (d / f"c{i}.ext4").unlink()
    disk = rt.images.rootfs_path(info.id).stat().st_size
    ext4 = (d / "image.ext4").stat().st_size
    print(f"disks: erofs {disk / 1e6:.1f} MB (shared), ext4 {ext4 / 1e6:.1f} MB (per container)")

    base = qemu.command_line

    def with_9p(spec: qemu.VMSpec) -> list[str]:
        return [
            *base(spec),
            "-fsdev",
            f"local,id=imgs,path={tree},security_model=none,readonly=on",
            "-device",
            "virtio-9p-device,fsdev=imgs,mount_tag=imgs",
        ]

    qemu.command_line = with_9p
    # The 9p device is extra: a VM restored from a template would not have
    # it. Boot mode does not change per-container costs, which are measured.
    os.environ["HYPERNETES_VM_TEMPLATES"] = "0"
    await rt.open()
    sid = await rt.run_pod_sandbox(PodSandboxConfig(name="rootfs-bench"))
    try:
        for i in range(n):
            for name, cmd in (("start to exit, true", "true"), ("read workload", READ)):
                res.setdefault(f"A erofs disk: {name}", []).append(await run_erofs(rt, sid, cmd))
                res.setdefault(f"B 9p share: {name}", []).append(
                    await run_9p(rt, sid, cmd, 2 * i + (name != "start to exit, true"))
                )
    finally:
        qemu.command_line = base
        await rt.stop_pod_sandbox(sid, grace=0)
        await rt.remove_pod_sandbox(sid)
        await rt.close()


async def main(n: int) -> None:
    d = Path(tempfile.mkdtemp(prefix="hnrt-bench-"))
    try:
        img = imagebuild.Image([imagebuild.busybox_layer(), data_layer()])
        res: Results = {}
        await bench_pull(d / "pull", img, n, res)
        (d / "rootfs").mkdir()
        await bench_rootfs(d / "rootfs", img, n, res)
    finally:
        shutil.rmtree(d, ignore_errors=True)
    med = {k: statistics.median(v) for k, v in res.items()}
    print(f"{'median of ' + str(n) + ' (per-image rows: once)':62} {'seconds':>8}")
    for k, v in med.items():
        print(f"{k:62} {v:8.3f}")
    true_a, true_b = "A erofs disk: start to exit, true", "B 9p share: start to exit, true"
    pairs = [
        ("verified fetch / bare fetch", "fetch blobs: verified into the store", BARE),
        ("pull flattening on tmpfs / on disk", PULL, "whole pull, flattening on disk (baseline)"),
        ("9p / erofs, true", true_b, true_a),
        ("9p / erofs, read workload", "B 9p share: read workload", "A erofs disk: read workload"),
        ("ext4 copy alone / erofs whole start, true", EXT4_COPY, true_a),
    ]
    for title, a, b in pairs:
        print(f"{title:62} {med[a] / med[b]:8.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("-n", type=int, default=5)
    asyncio.run(main(parser.parse_args().n))
