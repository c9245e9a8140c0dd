"""VM templates: boot a pod VM once, save it, restore it for every new pod.

This is the runV approach. For each (kernel, initramfs, command line,
accelerator, vCPUs, memory, QEMU binary) a template VM is cold-booted once
with its RAM in a file (a shared mapping, so the file holds the RAM), the
guest agent is reached, and the VM is saved with QEMU's migration to a file,
leaving the RAM out of the stream (`x-ignore-shared`): the state file holds
only device state (about 70 KiB). A new pod is a new QEMU process that maps
the RAM file privately (copy-on-write: pages the clone never writes stay
shared in the page cache by all clones) and loads the device state, with
the pod's own agent socket, QMP socket, console and TAP device: those are
host-side backends, not migrated state. Disks are hot-plugged after the
restore, as on a cold-booted VM. What a clone must not share with its
siblings -- RNG state, wall clock, hostname, MAC -- is set by the agent's
`setup_pod` right after the restore (guest/PROTOCOL.md).

Templates live in tmpfs (/dev/shm/hypernetes/templates, or
$HYPERNETES_TEMPLATES): they are memory state of this host and die with it.
A template that cannot be built or restored is dropped and the pod boots
cold.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import json
import logging
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import IO

from . import qemu
from .agent import AgentClient
from .assets import BootAssets
from .errors import RuntimeFailure

log = logging.getLogger(__name__)

ROOT = Path(os.environ.get("HYPERNETES_TEMPLATES") or "/dev/shm/hypernetes/templates")
FORMAT = 1  # bump when what a template holds changes
BUILD_TIMEOUT = 120.0
MEMORY = "memory"
STATE = "state"

# One build per template at a time in this process (an asyncio.Lock belongs to
# one event loop: keyed by loop too), and on the host (a file lock).
_locks: dict[tuple[int, str], asyncio.Lock] = {}


def enabled() -> bool:
    return os.environ.get("HYPERNETES_VM_TEMPLATES", "1") not in ("0", "no", "off")


def _file_id(path: Path) -> str:
    st = path.stat()
    return f"{path}:{st.st_size}:{st.st_mtime_ns}"


def key(assets: BootAssets, accel: str, vcpus: int, memory_mib: int) -> str:
    """What a template is valid for: the same guest, size, QEMU binary and
    QEMU command line (so a change in the devices makes a new template)."""
    shape = qemu.VMSpec("x", Path("/x"), assets, accel, vcpus, memory_mib)
    parts = [
        str(FORMAT),
        " ".join(qemu.command_line(shape)),
        _file_id(assets.kernel),
        _file_id(assets.initrd),
        assets.cmdline,
        str(assets.acpi),
        accel,
        str(vcpus),
        str(memory_mib),
        _file_id(Path(shutil.which(qemu.QEMU) or qemu.QEMU)),
    ]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:20]


def path_for(k: str) -> Path:
    return ROOT / k


def ready(k: str) -> Path | None:
    d = path_for(k)
    return d if (d / "ready").exists() else None


def discard(k: str) -> None:
    """Drops a template (it failed to restore)."""
    shutil.rmtree(path_for(k), ignore_errors=True)


async def ensure(assets: BootAssets, accel: str, vcpus: int, memory_mib: int) -> Path:
    """The template's directory, building it first if there is none."""
    k = key(assets, accel, vcpus, memory_mib)
    found = ready(k)
    if found is not None:
        return found
    lock = _locks.setdefault((id(asyncio.get_running_loop()), str(path_for(k))), asyncio.Lock())
    async with lock:
        ROOT.mkdir(parents=True, exist_ok=True)
        os.chmod(ROOT, 0o700)  # guest memory: the host's business only
        lockfile = await asyncio.to_thread(_flock, ROOT / f".{k}.lock")
        try:
            found = ready(k)
            if found is None:
                found = await _build(k, assets, accel, vcpus, memory_mib)
            return found
        finally:
            lockfile.close()


def _flock(path: Path) -> IO[str]:
    f = open(path, "a")  # noqa: SIM115
    fcntl.flock(f, fcntl.LOCK_EX)
    return f


async def _build(k: str, assets: BootAssets, accel: str, vcpus: int, memory_mib: int) -> Path:
    t0 = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix=f".build-{k[:8]}-", dir=ROOT))
    spec = qemu.VMSpec(
        f"tmpl-{k[:12]}",
        work,
        assets,
        accel,
        vcpus,
        memory_mib,
        memory_file=work / MEMORY,
        share_memory=True,
    )
    proc = await asyncio.to_thread(qemu.launch, spec)
    agent = AgentClient()
    try:
        await agent.connect(str(spec.agent_socket), BUILD_TIMEOUT, lambda: proc.poll() is None)
        await agent.request("ping")
        await agent.close()
        # The guest learns of the disconnection from an interrupt; let it
        # settle into its idle loop, so every clone starts from there.
        await asyncio.sleep(0.3)
        await qemu.migrate(spec.qmp_socket, f"exec:cat > {work / STATE}", incoming=False)
        await asyncio.to_thread(proc.wait, 30)
        for name in ("agent.sock", "qmp.sock", "qemu.pid"):
            with contextlib.suppress(FileNotFoundError):
                (work / name).unlink()
        (work / "ready").write_text(
            json.dumps(
                {
                    "kernel": str(assets.kernel),
                    "initrd": str(assets.initrd),
                    "accel": accel,
                    "vcpus": vcpus,
                    "memory_mib": memory_mib,
                    "guest_kernel": agent.hello.get("kernel"),
                    "build_seconds": round(time.monotonic() - t0, 3),
                }
            )
        )
        dest = path_for(k)
        shutil.rmtree(dest, ignore_errors=True)
        work.rename(dest)
        _drop_superseded(k, dest)
        log.info("built VM template %s in %.2f s", k, time.monotonic() - t0)
        return dest
    except BaseException:
        await agent.close()
        if proc.poll() is None:
            proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            await asyncio.to_thread(proc.wait, 10)
        shutil.rmtree(work, ignore_errors=True)
        raise


def _drop_superseded(k: str, new: Path) -> None:
    """Deletes older templates of the same guest and size (made by an earlier
    version of the runtime or QEMU): they are never used again. Running
    clones keep their mapping of a deleted RAM file."""
    meta = json.loads((new / "ready").read_text())
    same = ("kernel", "accel", "vcpus", "memory_mib")
    for d in ROOT.iterdir():
        if d.name == k or d.name.startswith("."):
            continue
        try:
            other = json.loads((d / "ready").read_text())
        except (OSError, ValueError):
            continue
        if all(other.get(f) == meta.get(f) for f in same):
            log.info("dropping superseded VM template %s", d.name)
            shutil.rmtree(d, ignore_errors=True)


def clone_spec(spec: qemu.VMSpec, template: Path) -> qemu.VMSpec:
    """The pod's VM spec, turned into a restore of `template`."""
    from dataclasses import replace

    return replace(spec, memory_file=template / MEMORY, share_memory=False, incoming=True)


async def restore(spec: qemu.VMSpec, template: Path, timeout: float) -> None:
    """Loads the template's device state into the just-launched clone and
    lets it run."""
    try:
        await qemu.migrate(spec.qmp_socket, f"exec:cat {template / STATE}", True, timeout)
    except RuntimeFailure:
        raise
    except (OSError, ValueError, TimeoutError) as exc:
        raise qemu.QMPError(f"restoring the template: {exc}") from None
