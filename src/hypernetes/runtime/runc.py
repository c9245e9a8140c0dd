"""runc pod sandboxes, for trusted system pods (the hybrid runtime).

No VM: each container is a runc container on the host kernel with its own
mount, PID, IPC and UTS namespaces, in the host's network namespace (system
pods such as network agents want the host network; a TAP attachment makes
no sense here and is refused). The rootfs is an overlay of the image's
unpacked tree and a per-container upper directory in the bundle. A shim
process per container (runc_shim.py) owns the container's stdio and exit
status, so containers and their logs outlive the driver.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import crilog
from .errors import NotFound, RuntimeFailure
from .graceful import terminate
from .images import ImageStore
from .records import ContainerRecord, SandboxRecord
from .runc_shim import CGROUP_PARENT
from .session import ExecSession
from .types import ContainerState, SandboxState

CAPS = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
]


def _runc(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["runc", *args], capture_output=True, text=True)


def oci_spec(c: ContainerRecord, hostname: str, pod_dir: Path) -> dict[str, Any]:
    res = c.config.resources
    resources: dict[str, Any] = {}
    if res.memory_limit:
        resources["memory"] = {"limit": res.memory_limit, "swap": res.memory_limit}
    if res.cpu_limit:
        resources["cpu"] = {"quota": int(res.cpu_limit * 100000), "period": 100000}
    mounts = [
        {"destination": "/proc", "type": "proc", "source": "proc"},
        {
            "destination": "/dev",
            "type": "tmpfs",
            "source": "tmpfs",
            "options": ["nosuid", "strictatime", "mode=755", "size=65536k"],
        },
        {
            "destination": "/dev/pts",
            "type": "devpts",
            "source": "devpts",
            "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"],
        },
        {
            "destination": "/dev/shm",
            "type": "tmpfs",
            "source": "shm",
            "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
        },
        {
            "destination": "/dev/mqueue",
            "type": "mqueue",
            "source": "mqueue",
            "options": ["nosuid", "noexec", "nodev"],
        },
        {
            "destination": "/sys",
            "type": "sysfs",
            "source": "sysfs",
            "options": ["nosuid", "noexec", "nodev", "ro"],
        },
    ]
    for name in ("hosts", "resolv.conf", "hostname"):
        mounts.append(
            {
                "destination": f"/etc/{name}",
                "type": "bind",
                "source": str(pod_dir / name),
                "options": ["rbind", "ro"],
            }
        )
    return {
        "ociVersion": "1.0.2",
        "process": {
            "terminal": False,
            "user": {"uid": c.uid, "gid": c.gid},
            "args": c.argv,
            "env": c.env,
            "cwd": c.cwd,
            "capabilities": {k: CAPS for k in ("bounding", "effective", "permitted")},
        },
        "root": {"path": "rootfs", "readonly": False},
        "hostname": hostname,
        "mounts": mounts,
        "linux": {
            "namespaces": [{"type": t} for t in ("pid", "ipc", "uts", "mount")],
            "cgroupsPath": f"/{CGROUP_PARENT}/{c.id}",
            "resources": resources,
            "maskedPaths": [
                "/proc/kcore",
                "/proc/keys",
                "/proc/timer_list",
                "/sys/firmware",
                "/proc/scsi",
            ],
            "readonlyPaths": [
                "/proc/bus",
                "/proc/fs",
                "/proc/irq",
                "/proc/sys",
                "/proc/sysrq-trigger",
            ],
        },
    }


class RuncSandbox:
    def __init__(self, record: SandboxRecord, images: ImageStore) -> None:
        self.record = record
        self.images = images
        self._exited: dict[str, asyncio.Event] = {}
        self._watch: asyncio.Task[None] | None = None
        self._followers: dict[str, list[asyncio.Task[None]]] = {}

    @property
    def id(self) -> str:
        return self.record.id

    async def boot(self) -> None:
        cfg = self.record.config
        if cfg.network is not None:
            raise RuntimeFailure("BadConfig", "runc pods use the host network: no TAP attachment")
        hostname = (cfg.hostname or cfg.name)[:63]
        d = self.record.path
        (d / "hostname").write_text(hostname + "\n")
        (d / "hosts").write_text(f"127.0.0.1\tlocalhost\n127.0.1.1\t{hostname}\n")
        servers = cfg.dns_servers
        resolv = "".join(f"nameserver {s}\n" for s in servers)
        if not servers and Path("/etc/resolv.conf").exists():
            resolv = Path("/etc/resolv.conf").read_text()
        (d / "resolv.conf").write_text(resolv)
        self.record.save()
        self._watch = asyncio.get_running_loop().create_task(self._poll_exits())

    async def attach(self) -> None:
        if self.record.state == SandboxState.READY:
            self._watch = asyncio.get_running_loop().create_task(self._poll_exits())

    async def detach(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch

    async def _poll_exits(self) -> None:
        """Picks up exits that the shims record (also those from while the
        driver was away)."""
        while True:
            for c in list(self.record.containers.values()):
                if c.state == ContainerState.RUNNING:
                    self._check_exit(c)
            await asyncio.sleep(0.1)

    def _check_exit(self, c: ContainerRecord) -> bool:
        path = Path(c.bundle) / "exit.json"
        if not path.exists():
            return False
        info = json.loads(path.read_text())
        c.state, c.finished_at = ContainerState.EXITED, time.time()
        c.exit_code, c.reason, c.message = info["exit_code"], info["reason"], info["message"]
        self._exited.setdefault(c.id, asyncio.Event()).set()
        self.record.save()
        return True

    def _container(self, cid: str) -> ContainerRecord:
        try:
            return self.record.containers[cid]
        except KeyError:
            raise NotFound(f"no container {cid}") from None

    async def create_container(self, c: ContainerRecord) -> None:
        if self.record.state != SandboxState.READY:
            raise RuntimeFailure("SandboxNotReady", f"pod sandbox {self.id} is not ready")
        lower = await asyncio.to_thread(self.images.unpacked_path, c.image_id)
        bundle = self.record.path / "c" / c.id
        for sub in ("rootfs", "upper", "work"):
            (bundle / sub).mkdir(parents=True)
        c.bundle = str(bundle)
        opts = f"lowerdir={lower},upperdir={bundle / 'upper'},workdir={bundle / 'work'}"
        mount = await asyncio.to_thread(
            subprocess.run,
            ["mount", "-t", "overlay", "overlay", "-o", opts, str(bundle / "rootfs")],
            capture_output=True,
            text=True,
        )
        if mount.returncode != 0:
            shutil.rmtree(bundle, ignore_errors=True)
            raise RuntimeFailure("CreateContainerError", f"rootfs overlay: {mount.stderr.strip()}")
        hostname = (self.record.config.hostname or self.record.config.name)[:63]
        (bundle / "config.json").write_text(json.dumps(oci_spec(c, hostname, self.record.path)))
        if c.config.stdin:
            os.mkfifo(bundle / "stdin", 0o600)
        self.record.containers[c.id] = c
        self.record.save()

    async def start_container(self, cid: str) -> None:
        c = self._container(cid)
        if c.state != ContainerState.CREATED:
            raise RuntimeFailure("BadState", f"container {cid} is {c.state.value}")
        bundle = Path(c.bundle)
        with open(bundle / "shim.log", "wb") as shim_log:
            subprocess.Popen(
                [sys.executable, "-m", "hypernetes.runtime.runc_shim", c.bundle, c.id, c.log_path],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=shim_log,
                start_new_session=True,
            )
        for _ in range(600):
            if (bundle / "started").exists():
                c.state, c.started_at = ContainerState.RUNNING, time.time()
                self.record.save()
                return
            if (bundle / "exit.json").exists():
                info = json.loads((bundle / "exit.json").read_text())
                c.state, c.finished_at = ContainerState.EXITED, time.time()
                c.exit_code, c.reason, c.message = (
                    info["exit_code"],
                    info["reason"],
                    info["message"],
                )
                self._exited.setdefault(cid, asyncio.Event()).set()
                self.record.save()
                raise RuntimeFailure(c.reason, c.message)
            await asyncio.sleep(0.05)
        raise RuntimeFailure("ContainerCannotRun", "runc did not start the container in 30 s")

    async def wait_container(self, cid: str, timeout: float | None = None) -> ContainerRecord:
        c = self._container(cid)
        if c.state == ContainerState.RUNNING and not self._check_exit(c):
            await asyncio.wait_for(self._exited.setdefault(cid, asyncio.Event()).wait(), timeout)
        # Listeners have had everything the container wrote once it is waited for.
        for follower in self._followers.pop(cid, []):
            with contextlib.suppress(asyncio.CancelledError):
                await follower
        return c

    async def signal_container(self, cid: str, signum: int) -> None:
        c = self._container(cid)
        if c.state == ContainerState.RUNNING:
            await asyncio.to_thread(_runc, "kill", cid, str(signum))

    async def stop_container(self, cid: str, grace: float) -> None:
        c = self._container(cid)
        if c.state == ContainerState.CREATED:
            c.state, c.reason = ContainerState.EXITED, "Stopped"
            self.record.save()
            return
        if c.state != ContainerState.RUNNING:
            return
        await terminate(self, c, grace)

    async def remove_container(self, cid: str) -> None:
        c = self._container(cid)
        if c.state == ContainerState.RUNNING:
            raise RuntimeFailure("BadState", f"container {cid} is running: stop it first")
        await asyncio.to_thread(_runc, "delete", "--force", cid)
        await asyncio.to_thread(
            subprocess.run, ["umount", "-l", str(Path(c.bundle) / "rootfs")], capture_output=True
        )
        shutil.rmtree(c.bundle, ignore_errors=True)
        self._exited.pop(cid, None)
        del self.record.containers[cid]
        self.record.save()

    def write_stdin(self, cid: str, data: bytes) -> None:
        c = self._container(cid)
        fifo = Path(c.bundle) / "stdin"
        if not fifo.exists():
            raise RuntimeFailure("BadRequest", "the container was not created with stdin")
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        try:
            if data:
                os.write(fd, data)
        finally:
            os.close(fd)

    def add_output_listener(self, cid: str, listener: Callable[[str, bytes], None]) -> None:
        """Call `listener(stream, data)` with the container's output as it comes.

        The shim writes output straight to the CRI log file (so that it survives
        this process); listeners follow that file, as `kubectl logs -f` does.
        """
        c = self._container(cid)
        task = asyncio.get_running_loop().create_task(self._follow_log(c, listener))
        self._followers.setdefault(cid, []).append(task)

    async def _follow_log(self, c: ContainerRecord, listener: Callable[[str, bytes], None]) -> None:
        offset, pending, quiet = 0, b"", 0
        while True:
            exited = c.state == ContainerState.EXITED  # read before the file: no lost tail
            chunk = await asyncio.to_thread(_read_from, c.log_path, offset)
            offset += len(chunk)
            *lines, pending = (pending + chunk).split(b"\n")
            for line in lines:
                _ts, stream, full, content = crilog.parse_line(line)
                listener(stream, content + b"\n" if full else content)
            # After the exit, the shim may still be flushing: stop once it has been
            # quiet for two reads in a row.
            quiet = quiet + 1 if exited and not chunk else 0
            if quiet >= 2:
                return
            await asyncio.sleep(0.05)

    async def exec(
        self,
        cid: str,
        argv: list[str],
        tty: bool = False,
        stdin: bool = False,
        env: list[str] | None = None,
        rows: int = 24,
        cols: int = 80,
    ) -> ExecSession:
        c = self._container(cid)
        if tty:
            raise RuntimeFailure("NotSupported", "tty exec is not supported on runc pods")
        args = ["runc", "exec", "--cwd", c.cwd]
        for e in env or c.env:
            args += ["--env", e]
        proc = await asyncio.create_subprocess_exec(
            *args,
            cid,
            *argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )

        async def write(data: bytes) -> None:
            assert proc.stdin is not None
            if data:
                proc.stdin.write(data)
                with contextlib.suppress(ConnectionError):
                    await proc.stdin.drain()
            else:
                proc.stdin.close()

        async def resize(r: int, col: int) -> None:
            raise RuntimeFailure("NotSupported", "no tty")

        async def sig(signum: int) -> None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signum)

        session = ExecSession(f"runc-{proc.pid}", write, resize, sig)
        session.pid = proc.pid

        async def pump(reader: asyncio.StreamReader | None, name: str) -> None:
            assert reader is not None
            while chunk := await reader.read(65536):
                session.feed(name, chunk)
            session.feed(name, b"")

        async def run() -> None:
            await asyncio.gather(pump(proc.stdout, "stdout"), pump(proc.stderr, "stderr"))
            session.set_exit(await proc.wait())

        session.task = asyncio.get_running_loop().create_task(run())  # type: ignore[attr-defined]
        return session

    async def stop(self, grace: float = 10.0) -> None:
        running = [
            c.id
            for c in self.record.containers.values()
            if c.state in (ContainerState.RUNNING, ContainerState.CREATED)
        ]
        await asyncio.gather(*(self.stop_container(cid, grace) for cid in running))
        await self.detach()
        self.record.state, self.record.reason = SandboxState.NOTREADY, "Stopped"
        self.record.save()

    async def remove(self) -> None:
        if self.record.state == SandboxState.READY:
            await self.stop(grace=0)
        for cid in list(self.record.containers):
            await self.remove_container(cid)
        shutil.rmtree(self.record.path, ignore_errors=True)


def _read_from(path: str, offset: int) -> bytes:
    """What `path` holds from `offset` on (nothing if it does not exist yet)."""
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            return f.read()
    except FileNotFoundError:
        return b""
