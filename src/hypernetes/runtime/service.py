"""The runtime service: the CRI-like API that the node agent drives.

`Runtime` owns the state directory (<data-dir>/runtime) and the image store
(<data-dir>/images), dispatches each pod to its backend (`vm` or `runc`),
and on `open()` re-attaches to the sandboxes a previous driver left running.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, Protocol

from .errors import ImagePullError, NotFound, RuntimeFailure
from .images import ImageStore
from .images.archive import import_archive
from .records import ContainerRecord, SandboxRecord, new_id
from .session import ExecSession, collect
from .types import (
    ContainerConfig,
    ContainerState,
    ContainerStatus,
    ExecResult,
    ImageInfo,
    PodSandboxConfig,
    PodSandboxStatus,
    SandboxState,
)

log = logging.getLogger(__name__)

RUNTIMES = ("vm", "runc")


class Backend(Protocol):
    """What a sandbox implementation (VM or runc) provides."""

    record: SandboxRecord

    async def attach(self) -> None: ...
    async def stop(self, grace: float = 10.0) -> None: ...
    async def remove(self) -> None: ...
    async def detach(self) -> None: ...
    async def create_container(self, c: ContainerRecord) -> None: ...
    async def start_container(self, cid: str) -> None: ...
    async def stop_container(self, cid: str, grace: float) -> None: ...
    async def remove_container(self, cid: str) -> None: ...
    async def signal_container(self, cid: str, signum: int) -> None: ...
    async def wait_container(self, cid: str, timeout: float | None = None) -> ContainerRecord: ...
    def write_stdin(self, cid: str, data: bytes) -> None: ...
    def add_output_listener(self, cid: str, listener: Callable[[str, bytes], None]) -> None: ...
    async def exec(
        self,
        cid: str,
        argv: list[str],
        tty: bool = False,
        stdin: bool = False,
        env: list[str] | None = None,
        rows: int = 24,
        cols: int = 80,
    ) -> ExecSession: ...


def _parse_user(user: str) -> tuple[int, int]:
    """Numeric `uid[:gid]` from an image config (names are not resolved)."""
    if not user:
        return 0, 0
    uid_s, _, gid_s = user.partition(":")
    try:
        uid = int(uid_s)
        return uid, int(gid_s) if gid_s else uid
    except ValueError:
        raise RuntimeFailure(
            "CreateContainerError", f"image user {user!r} is not numeric (uid[:gid])"
        ) from None


class Runtime:
    """Pod sandboxes, containers, exec and images. All methods are coroutines
    except the constructor; call `open()` first and `close()` at the end."""

    def __init__(
        self,
        data_dir: str | os.PathLike[str],
        kernel: str = "hypernetes",
        boot_timeout: float | None = None,
        templates: bool = True,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.root = self.data_dir / "runtime"
        self.pods_dir = self.root / "pods"
        self.images = ImageStore(self.data_dir / "images")
        self.kernel = kernel
        self.boot_timeout = boot_timeout
        self.templates = templates  # VM templates (template.py); else every VM boots cold
        self._sandboxes: dict[str, Backend] = {}
        self._lockfile: IO[str] | None = None

    # --- lifecycle of the driver -----------------------------------------------------

    async def open(self) -> None:
        """Loads the sandbox records and re-attaches to running sandboxes."""
        self.pods_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o700)
        # A VM's control channel takes one client: one driver per data dir.
        self._lockfile = open(self.root / "driver.lock", "a")  # noqa: SIM115
        try:
            fcntl.flock(self._lockfile, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lockfile.close()
            self._lockfile = None
            raise RuntimeFailure("Busy", f"another driver holds {self.root}") from None
        for d in sorted(self.pods_dir.iterdir()):
            if not (d / "sandbox.json").exists():
                shutil.rmtree(d, ignore_errors=True)  # a sandbox that never finished starting
                continue
            try:
                rec = SandboxRecord.load(d)
            except (ValueError, KeyError, TypeError) as exc:
                log.warning("ignoring unreadable sandbox record %s: %s", d, exc)
                continue
            backend = self._backend(rec)
            self._sandboxes[rec.id] = backend
            await backend.attach()

    async def close(self) -> None:
        """Detaches from all sandboxes, leaving them running."""
        for b in self._sandboxes.values():
            await b.detach()
        self._sandboxes.clear()
        if self._lockfile is not None:
            self._lockfile.close()
            self._lockfile = None

    async def __aenter__(self) -> Runtime:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _backend(self, rec: SandboxRecord) -> Backend:
        if rec.config.runtime == "vm":
            from .vm import VMSandbox

            return VMSandbox(rec, self.images)
        if rec.config.runtime == "runc":
            from .runc import RuncSandbox

            return RuncSandbox(rec, self.images)
        raise RuntimeFailure("BadConfig", f"unknown runtime {rec.config.runtime!r}")

    # --- pod sandboxes ------------------------------------------------------------------

    async def run_pod_sandbox(self, config: PodSandboxConfig) -> str:
        """Creates and starts a pod sandbox; returns its id."""
        if config.runtime not in RUNTIMES:
            raise RuntimeFailure("BadConfig", f"runtime must be one of {RUNTIMES}")
        sid = new_id()
        d = self.pods_dir / sid
        d.mkdir(parents=True, mode=0o700)
        rec = SandboxRecord(id=sid, config=config, dir=str(d))
        backend = self._backend(rec)
        try:
            if config.runtime == "vm":
                from .vm import VMSandbox

                assert isinstance(backend, VMSandbox)
                if self.boot_timeout is not None:
                    await backend.boot(self.kernel, self.boot_timeout, self.templates)
                else:
                    await backend.boot(self.kernel, use_template=self.templates)
            else:
                from .runc import RuncSandbox

                assert isinstance(backend, RuncSandbox)
                await backend.boot()
        except BaseException:
            shutil.rmtree(d, ignore_errors=True)
            raise
        rec.save()
        self._sandboxes[sid] = backend
        return sid

    def _sandbox(self, sid: str) -> Backend:
        try:
            return self._sandboxes[sid]
        except KeyError:
            raise NotFound(f"no pod sandbox {sid}") from None

    async def stop_pod_sandbox(self, sid: str, grace: float = 10.0) -> None:
        """Stops the containers (with `grace`) and the sandbox; idempotent."""
        b = self._sandbox(sid)
        if b.record.state == SandboxState.READY:
            await b.stop(grace)

    async def remove_pod_sandbox(self, sid: str) -> None:
        b = self._sandbox(sid)
        await b.remove()
        del self._sandboxes[sid]

    async def pod_sandbox_status(self, sid: str) -> PodSandboxStatus:
        rec = self._sandbox(sid).record
        cfg = rec.config
        vm = cfg.runtime == "vm"
        return PodSandboxStatus(
            id=rec.id,
            name=cfg.name,
            namespace=cfg.namespace,
            uid=cfg.uid,
            runtime=cfg.runtime,
            state=rec.state,
            created_at=rec.created_at,
            ip=cfg.network.address.split("/")[0] if cfg.network and cfg.network.address else None,
            reason=rec.reason,
            message=rec.message,
            accel=rec.accel if vm else None,
            kernel=rec.kernel if vm else None,
            vcpus=rec.vcpus if vm else None,
            memory_mib=rec.memory_mib if vm else None,
            boot=rec.boot if vm else None,
            pid=rec.pid or None,
            containers=list(rec.containers),
        )

    async def list_pod_sandboxes(self) -> list[PodSandboxStatus]:
        return [await self.pod_sandbox_status(s) for s in self._sandboxes]

    # --- containers ----------------------------------------------------------------------

    def _find_container(self, cid: str) -> tuple[Backend, ContainerRecord]:
        for b in self._sandboxes.values():
            c = b.record.containers.get(cid)
            if c is not None:
                return b, c
        raise NotFound(f"no container {cid}")

    async def create_container(self, sid: str, config: ContainerConfig) -> str:
        """Creates a container from a pulled image (CreateContainerError,
        ErrImageNeverPull-like NotFound if the image is not stored)."""
        b = self._sandbox(sid)
        image = self.images.get(config.image)
        if image is None:
            raise ImagePullError(
                f"image {config.image!r} is not present: pull it first", reason="ErrImageNeverPull"
            )
        entrypoint = config.command or image.entrypoint
        cmd = config.args or ([] if config.command else image.cmd)
        argv = list(entrypoint) + list(cmd)
        if not argv:
            raise RuntimeFailure("CreateContainerError", "no command specified")
        env = dict(e.split("=", 1) for e in image.env if "=" in e)
        env.update(config.env)
        uid, gid = _parse_user(image.user)
        if config.uid is not None:
            uid = config.uid
            gid = config.gid if config.gid is not None else uid
        cid = new_id()
        log_path = config.log_path
        if not log_path:
            base = b.record.config.log_directory or str(b.record.path / "logs")
            log_path = os.path.join(base, config.name, f"{config.attempt}.log")
        c = ContainerRecord(
            id=cid,
            pod_id=sid,
            config=config,
            image_id=image.id,
            argv=argv,
            env=[f"{k}={v}" for k, v in env.items()],
            cwd=config.working_dir or image.working_dir or "/",
            uid=uid,
            gid=gid,
            log_path=log_path,
        )
        await b.create_container(c)
        return cid

    async def start_container(self, cid: str) -> None:
        """Starts it; a command that cannot run raises ContainerCannotRun."""
        b, _ = self._find_container(cid)
        await b.start_container(cid)

    async def stop_container(self, cid: str, timeout: float = 10.0) -> None:
        b, _ = self._find_container(cid)
        await b.stop_container(cid, timeout)

    async def remove_container(self, cid: str) -> None:
        b, _ = self._find_container(cid)
        await b.remove_container(cid)

    async def container_status(self, cid: str) -> ContainerStatus:
        _, c = self._find_container(cid)
        return c.status()

    async def list_containers(self, sid: str | None = None) -> list[ContainerStatus]:
        out = []
        for b in self._sandboxes.values():
            if sid is None or b.record.id == sid:
                out += [c.status() for c in b.record.containers.values()]
        return out

    async def wait_container(self, cid: str, timeout: float | None = None) -> ContainerStatus:
        """Waits until the container exits; returns its final status."""
        b, _ = self._find_container(cid)
        return (await b.wait_container(cid, timeout)).status()

    async def signal_container(self, cid: str, signum: int) -> None:
        b, _ = self._find_container(cid)
        await b.signal_container(cid, signum)

    def add_output_listener(self, cid: str, listener: Callable[[str, bytes], None]) -> None:
        """Also delivers the container's output to `listener(stream, data)`."""
        b, _ = self._find_container(cid)
        b.add_output_listener(cid, listener)

    def write_stdin(self, cid: str, data: bytes) -> None:
        """Writes to the stdin of a container created with stdin=True."""
        b, _ = self._find_container(cid)
        b.write_stdin(cid, data)

    # --- exec ---------------------------------------------------------------------------------

    async def exec(
        self,
        cid: str,
        cmd: list[str],
        tty: bool = False,
        stdin: bool = False,
        rows: int = 24,
        cols: int = 80,
    ) -> ExecSession:
        """Starts a process in a running container; returns a streaming session."""
        if not cmd:
            raise RuntimeFailure("BadRequest", "empty command")
        b, c = self._find_container(cid)
        if c.state != ContainerState.RUNNING:
            raise RuntimeFailure("BadState", f"container {cid} is not running")
        return await b.exec(cid, cmd, tty=tty, stdin=stdin, rows=rows, cols=cols)

    async def exec_sync(
        self, cid: str, cmd: list[str], timeout: float | None = 60.0, stdin: bytes = b""
    ) -> ExecResult:
        """Runs a command to completion; returns exit code and output."""
        session = await self.exec(cid, cmd, stdin=bool(stdin))
        return await collect(session, stdin, timeout)

    # --- images ---------------------------------------------------------------------------------

    async def pull_image(
        self,
        ref: str,
        auth: tuple[str, str] | None = None,
        progress: Any = None,
        insecure: tuple[str, ...] = (),
    ) -> ImageInfo:
        """Pulls from a registry (ErrImagePull on any failure)."""
        from .images.registry import RegistryClient

        async with RegistryClient(self.images, insecure=insecure) as client:
            return await client.pull(ref, auth=auth, progress=progress)

    async def import_image(self, path: str, tag: str | None = None) -> ImageInfo:
        return await asyncio.to_thread(import_archive, self.images, path, tag)

    async def list_images(self) -> list[ImageInfo]:
        return self.images.list()

    async def image_status(self, ref: str) -> ImageInfo | None:
        return self.images.get(ref)

    async def remove_image(self, ref: str) -> ImageInfo:
        return await asyncio.to_thread(self.images.remove, ref)
