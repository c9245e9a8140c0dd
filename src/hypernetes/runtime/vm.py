"""VM pod sandboxes: one QEMU microvm per pod, driven through hyperstart.

The VM is its own process and outlives the driver; everything needed to find
it again is in the sandbox record, and `attach()` reconnects to a running VM
and reconciles container states with the agent's. Container output goes to
CRI log files; while no driver is connected the guest simply stops reading
the containers' pipes, so no output is lost across a driver restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import accel as accel_mod
from . import assets as assets_mod
from . import qemu
from . import template as template_mod
from .agent import AgentClient, AgentError, socket_path_ok
from .crilog import CRILogWriter
from .errors import NotFound, RuntimeFailure, SandboxError
from .graceful import terminate
from .images import ImageStore
from .records import ContainerRecord, SandboxRecord
from .session import ExecSession
from .sizing import vm_size
from .types import ContainerState, SandboxState

log = logging.getLogger(__name__)

BOOT_TIMEOUT = float(os.environ.get("HYPERNETES_BOOT_TIMEOUT", "60"))
OutputListener = Callable[[str, bytes], None]


def _hosts_file(hostname: str, address: str | None) -> str:
    lines = ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback"]
    if address:
        lines.append(f"{address.split('/')[0]}\t{hostname}")
    return "\n".join(lines) + "\n"


def _resolv_conf(servers: list[str], searches: list[str]) -> str:
    out = [f"nameserver {s}" for s in servers]
    if searches:
        out.append("search " + " ".join(searches))
    return "\n".join(out) + ("\n" if out else "")


class VMSandbox:
    """A pod VM and its containers (the driver's view of it)."""

    def __init__(self, record: SandboxRecord, images: ImageStore) -> None:
        self.record = record
        self.images = images
        self.agent: AgentClient | None = None
        self._logs: dict[str, CRILogWriter] = {}
        self._exited: dict[str, asyncio.Event] = {}
        self._listeners: dict[str, list[OutputListener]] = {}
        self._sessions: dict[str, ExecSession] = {}
        self._watch: asyncio.Task[None] | None = None
        self._proc: subprocess.Popen[bytes] | None = None  # QEMU, when our child
        self._qmp = qemu.QMPConnection(record.path / "qmp.sock")  # kept open: disk hot-plug
        self._lock = asyncio.Lock()

    @property
    def id(self) -> str:
        return self.record.id

    def _spec(self, assets: assets_mod.BootAssets) -> qemu.VMSpec:
        net = self.record.config.network
        return qemu.VMSpec(
            self.id,
            self.record.path,
            assets,
            self.record.accel,
            self.record.vcpus,
            self.record.memory_mib,
            tap=net.tap if net else None,
            mac=net.mac if net else None,
            tap_netns=net.netns if net else None,
        )

    # --- lifecycle ------------------------------------------------------------

    async def boot(
        self,
        flavour: str = "hypernetes",
        boot_timeout: float = BOOT_TIMEOUT,
        use_template: bool = True,
    ) -> None:
        """Starts the VM -- restored from a VM template when one is usable,
        else booted cold -- and sets the pod up inside it; on any failure,
        nothing is left behind (process, sockets) and SandboxError is raised."""
        rec = self.record
        assets = await asyncio.to_thread(assets_mod.boot_assets, flavour)
        rec.accel, why = await asyncio.to_thread(accel_mod.choose, assets.kernel)
        assets = assets_mod.for_accel(assets, rec.accel)
        log.info("pod %s: %s", rec.id, why)
        rec.flavour, rec.kernel = flavour, str(assets.kernel)
        rec.vcpus, rec.memory_mib = vm_size(rec.config.resources)
        spec = self._spec(assets)
        if not socket_path_ok(str(spec.agent_socket)):
            raise SandboxError(
                "BadConfig", f"state path too long for a socket: {spec.agent_socket}"
            )
        if use_template and template_mod.enabled():
            try:
                tmpl = await template_mod.ensure(assets, rec.accel, rec.vcpus, rec.memory_mib)
            except (RuntimeFailure, OSError) as exc:
                log.warning("pod %s: no VM template (%s): booting cold", rec.id, exc)
            else:
                try:
                    await self._start(template_mod.clone_spec(spec, tmpl), boot_timeout, tmpl)
                    rec.boot = "template"
                    return
                except qemu.QMPError as exc:  # the template itself is unusable
                    log.warning("pod %s: template %s failed (%s): dropped", rec.id, tmpl, exc)
                    template_mod.discard(tmpl.name)
                except SandboxError as exc:
                    log.warning("pod %s: restore failed (%s): booting cold", rec.id, exc)
        await self._start(spec, boot_timeout, None)
        rec.boot = "cold"

    async def _start(self, spec: qemu.VMSpec, boot_timeout: float, template: Path | None) -> None:
        rec = self.record
        proc = await asyncio.to_thread(qemu.launch, spec)
        rec.pid, rec.preslots = proc.pid, qemu.PRESLOTS
        rec.save()
        try:
            self.agent = AgentClient(self._on_event)
            connect = self.agent.connect(
                str(spec.agent_socket), boot_timeout, lambda: proc.poll() is None
            )
            if template is None:
                await connect
            else:
                # Say hello while the state loads: the paused guest answers
                # as soon as it runs, one round trip sooner.
                hello = asyncio.ensure_future(connect)
                try:
                    await template_mod.restore(spec, template, boot_timeout)
                except BaseException:
                    hello.cancel()
                    with contextlib.suppress(asyncio.CancelledError, RuntimeFailure):
                        await hello
                    raise
                await hello
            # (Opening QMP here, beside setup_pod, made pod starts 2-4 ms slower
            # under TCG -- QEMU's monitor work stalls the vCPU: it is opened by
            # the first container instead.)
            await self._setup_pod()
        except BaseException as exc:
            await self._qmp.close()
            if proc.poll() is None:
                proc.kill()
            await asyncio.to_thread(proc.wait)
            if self.agent is not None:
                await self.agent.close()
                self.agent = None
            self._remove_runtime_files()
            if isinstance(exc, SandboxError) and not isinstance(exc, qemu.QMPError):
                # say what the guest printed last
                raise SandboxError(exc.reason, exc.message + self._console_tail()) from None
            raise
        self._proc = proc  # reaped by _watch_vm (no thread parked in wait())
        self._start_watch()

    def _console_tail(self) -> str:
        try:
            text = (self.record.path / "console.log").read_text(errors="replace")
            qlog = (self.record.path / "qemu.log").read_text(errors="replace")
        except OSError:
            return ""
        tail = (text.strip().splitlines() or [""])[-3:] + (qlog.strip().splitlines() or [""])[-2:]
        tail = [t for t in tail if t]
        return ("; console: " + " | ".join(tail)) if tail else ""

    async def _setup_pod(self) -> None:
        assert self.agent is not None
        cfg = self.record.config
        hostname = (cfg.hostname or cfg.name)[:63]
        net = cfg.network
        interfaces = []
        if net:
            # ifname: a VM restored from a template must first take this MAC
            ifc: dict[str, Any] = {"mac": net.mac, "ifname": "eth0"}
            if net.address:
                ifc["address"] = net.address
            if net.gateway:
                ifc["gateway"] = net.gateway
            if net.mtu:
                ifc["mtu"] = net.mtu
            interfaces.append(ifc)
        files: dict[str, Any] = {
            "hosts": _hosts_file(hostname, net.address if net else None),
            "resolv.conf": _resolv_conf(cfg.dns_servers, cfg.dns_searches),
        }
        await self.agent.request(
            "setup_pod",
            # fresh entropy and the time: a VM restored from a template has
            # its template's RNG state and the clock of the moment it was saved
            entropy=os.urandom(64),
            time_ns=time.time_ns(),
            hostname=hostname,
            interfaces=interfaces,
            **files,
        )

    def _start_watch(self) -> None:
        self._watch = asyncio.get_running_loop().create_task(self._watch_vm())

    async def _watch_vm(self) -> None:
        """Notices the VM's death (crash, kill) and marks everything exited."""
        rec = self.record
        try:
            fd = os.pidfd_open(rec.pid)
        except OSError:
            fd = -1
        try:
            if fd >= 0:
                gone = asyncio.Event()
                loop = asyncio.get_running_loop()
                loop.add_reader(fd, gone.set)
                try:
                    await gone.wait()
                finally:
                    loop.remove_reader(fd)
            else:
                while qemu.process_alive(rec.pid, self.id):
                    await asyncio.sleep(0.5)
        finally:
            if fd >= 0:
                os.close(fd)
        if self._proc is not None:
            self._proc.poll()  # QEMU is our child while we live: no zombie
        else:  # re-attached in the process that started it: still our child
            with contextlib.suppress(ChildProcessError):
                os.waitpid(rec.pid, os.WNOHANG)
        self._vm_gone("VMExited", "the pod's VM exited")

    def _vm_gone(self, reason: str, message: str) -> None:
        rec = self.record
        now = time.time()
        for c in rec.containers.values():
            if c.state in (ContainerState.RUNNING, ContainerState.CREATED):
                if c.state == ContainerState.RUNNING:
                    c.exit_code, c.finished_at = 137, now
                c.state = ContainerState.EXITED
                c.reason, c.message = reason, message
                self._finish_container(c.id)
        for s in self._sessions.values():
            s.feed("stdout", b"")
            s.feed("stderr", b"")
            s.set_exit(137)
        self._sessions.clear()
        if rec.state == SandboxState.READY:
            rec.state, rec.reason, rec.message = SandboxState.NOTREADY, reason, message
        if rec.path.exists():
            rec.save()

    async def attach(self, timeout: float = 20.0) -> None:
        """Re-attaches to this pod's running VM after a driver restart."""
        rec = self.record
        if rec.state != SandboxState.READY:
            return
        if not qemu.process_alive(rec.pid, self.id):
            self._vm_gone("VMExited", "the pod's VM exited while no driver was attached")
            return
        self.agent = AgentClient(self._on_event)
        # Output the guest held back while no one listened comes right after
        # the connection is made: the streams must be routed before that.
        running = [c for c in rec.containers.values() if c.state == ContainerState.RUNNING]
        for c in running:
            self._wire(c)
        sock = str(rec.path / "agent.sock")
        pid = rec.pid
        try:
            await self.agent.connect(sock, timeout, lambda: qemu.process_alive(pid, self.id))
            state = await self.agent.request("state")
        except RuntimeFailure as exc:
            self._vm_gone("VMUnreachable", f"cannot re-attach to the pod's VM: {exc.message}")
            return
        guest = {c["container"]: c for c in state["containers"]}
        for c in running:
            g = guest.get(c.id)
            if c.state == ContainerState.RUNNING and (g is None or g["state"] == "exited"):
                self._apply_exit(c, g)
        rec.save()
        self._start_watch()

    def _apply_exit(self, c: ContainerRecord, g: dict[str, Any] | None) -> None:
        c.state = ContainerState.EXITED
        c.finished_at = c.finished_at or time.time()
        if g is None:
            c.exit_code, c.reason, c.message = 137, "Unknown", "the guest lost the container"
        else:
            c.exit_code = int(g["exit_code"])
            c.reason = (
                "OOMKilled" if g.get("oom") else ("Completed" if c.exit_code == 0 else "Error")
            )
        self._finish_container(c.id)

    async def stop(self, grace: float = 10.0) -> None:
        """Stops all containers (with `grace`), then the VM."""
        rec = self.record
        running = [c.id for c in rec.containers.values() if c.state == ContainerState.RUNNING]
        if self.agent is not None and not self.agent.closed.is_set():
            await asyncio.gather(
                *(self.stop_container(cid, grace) for cid in running), return_exceptions=True
            )
            with contextlib.suppress(RuntimeFailure):
                await self.agent.request("shutdown", timeout=5)
        if not await qemu.wait_gone(rec.pid, self.id, 10):
            qemu.kill(rec.pid, self.id)
            await qemu.wait_gone(rec.pid, self.id, 10)
        if self._watch is not None:
            with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(self._watch), 5)
        self._vm_gone("Stopped", "the pod was stopped")
        await self._qmp.close()
        if self.agent is not None:
            await self.agent.close()
        for w in self._logs.values():
            w.close()
        self._logs.clear()
        rec.state, rec.reason, rec.message = SandboxState.NOTREADY, "Stopped", "the pod was stopped"
        self._remove_runtime_files()
        rec.save()

    def _remove_runtime_files(self) -> None:
        for name in ("agent.sock", "qmp.sock", "qemu.pid"):
            with contextlib.suppress(FileNotFoundError):
                (self.record.path / name).unlink()

    async def remove(self) -> None:
        if self.record.state == SandboxState.READY:
            await self.stop(grace=0)
        await self._qmp.close()  # the VM may have died on its own: no stop()
        shutil.rmtree(self.record.path, ignore_errors=True)

    async def detach(self) -> None:
        """Lets go of the VM without stopping it (the driver is exiting)."""
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
        await self._qmp.close()
        if self.agent is not None:
            await self.agent.close()
        for w in self._logs.values():
            w.close()
        self._logs.clear()

    # --- containers -------------------------------------------------------------

    def _need_agent(self) -> AgentClient:
        if (
            self.record.state != SandboxState.READY
            or self.agent is None
            or self.agent.closed.is_set()
        ):
            raise SandboxError("SandboxNotReady", f"pod sandbox {self.id} is not ready")
        return self.agent

    def _container(self, cid: str) -> ContainerRecord:
        try:
            return self.record.containers[cid]
        except KeyError:
            raise NotFound(f"no container {cid}") from None

    async def create_container(self, c: ContainerRecord) -> None:
        """Plugs the image disk in and has the agent prepare the container."""
        agent = self._need_agent()
        rec = self.record
        async with self._lock:
            slot = rec.next_slot
            rec.next_slot += 1
            c.slot = slot
            c.streams = rec.alloc_streams()
            rec.save()
        disk = self.images.rootfs_path(c.image_id)
        try:
            target, lun = await qemu.attach_disk(self._qmp, slot, disk, rec.preslots)
        except (OSError, RuntimeFailure) as exc:
            raise RuntimeFailure(
                "CreateContainerError", f"attaching the image disk: {exc}"
            ) from None
        res = c.config.resources
        try:
            await agent.request(
                "create",
                timeout=60,
                container=c.id,
                rootfs={
                    "scsi_target": target,
                    "scsi_lun": lun,
                    "fstype": "erofs",
                    # a disk the guest knew before: re-read its size, drop its cache
                    "rescan": slot < rec.preslots,
                },
                argv=c.argv,
                env=c.env,
                cwd=c.cwd,
                uid=c.uid,
                gid=c.gid,
                tty=c.config.tty,
                stdin=c.config.stdin,
                stdin_stream=c.streams[0],
                stdout_stream=c.streams[1],
                stderr_stream=c.streams[2],
                memory_limit=res.memory_limit,
                cpu_quota_us=int(res.cpu_limit * 100000),
            )
        except RuntimeFailure:
            with contextlib.suppress(OSError, RuntimeFailure):
                await qemu.detach_disk(self._qmp, slot, rec.preslots)
            raise
        rec.containers[c.id] = c
        rec.save()

    def _wire(self, c: ContainerRecord) -> None:
        """Routes a container's output streams to its log (and listeners)."""
        assert self.agent is not None
        writer = self._logs.get(c.id) or CRILogWriter(c.log_path)
        self._logs[c.id] = writer
        self._exited.setdefault(c.id, asyncio.Event())
        for stream_id, name in ((c.streams[1], "stdout"), (c.streams[2], "stderr")):

            def handler(data: bytes, name: str = name, cid: str = c.id) -> None:
                writer.write(name, data)
                for listener in self._listeners.get(cid, []):
                    listener(name, data)

            self.agent.on_stream(stream_id, handler)

    def add_output_listener(self, cid: str, listener: OutputListener) -> None:
        """Also sends a container's output to `listener(stream, data)`."""
        self._container(cid)
        self._listeners.setdefault(cid, []).append(listener)

    async def start_container(self, cid: str) -> None:
        agent = self._need_agent()
        c = self._container(cid)
        if c.state != ContainerState.CREATED:
            raise RuntimeFailure("BadState", f"container {cid} is {c.state.value}")
        self._wire(c)
        try:
            await agent.request("start", container=cid)
        except AgentError as exc:
            c.state, c.finished_at = ContainerState.EXITED, time.time()
            c.exit_code, c.reason, c.message = 128, "ContainerCannotRun", exc.message
            self._finish_container(cid)
            self.record.save()
            raise RuntimeFailure("ContainerCannotRun", exc.message) from None
        if c.state == ContainerState.CREATED:  # the exit may already have come
            c.state, c.started_at = ContainerState.RUNNING, time.time()
        self.record.save()

    def write_stdin(self, cid: str, data: bytes) -> None:
        """Sends bytes to a container's stdin (empty: close it)."""
        c = self._container(cid)
        self._need_agent().send_data(c.streams[0], data)

    def _on_event(self, msg: dict[str, Any]) -> None:
        if msg.get("event") != "exit":
            return
        exec_id = msg.get("exec_id")
        if exec_id:
            session = self._sessions.pop(exec_id, None)
            if session is not None:
                session.set_exit(int(msg["exit_code"]))
            return
        c = self.record.containers.get(msg.get("container", ""))
        if c is None:
            return
        if c.state == ContainerState.CREATED:
            c.started_at = time.time()
        c.state, c.finished_at = ContainerState.EXITED, time.time()
        c.exit_code = int(msg["exit_code"])
        c.reason = "OOMKilled" if msg.get("oom") else ("Completed" if c.exit_code == 0 else "Error")
        self._finish_container(c.id)
        self.record.save()

    def _finish_container(self, cid: str) -> None:
        writer = self._logs.pop(cid, None)
        if writer is not None:
            writer.close()
        self._exited.setdefault(cid, asyncio.Event()).set()
        c = self.record.containers.get(cid)
        if self.agent is not None and c is not None:
            for s in c.streams[1:]:
                self.agent.on_stream(s, None)

    async def wait_container(self, cid: str, timeout: float | None = None) -> ContainerRecord:
        c = self._container(cid)
        if c.state != ContainerState.EXITED:
            await asyncio.wait_for(self._exited.setdefault(cid, asyncio.Event()).wait(), timeout)
        return c

    async def signal_container(self, cid: str, signum: int) -> None:
        c = self._container(cid)
        if c.state != ContainerState.RUNNING:
            return
        with contextlib.suppress(AgentError):  # already gone
            await self._need_agent().request("signal", container=cid, signal=signum)

    async def stop_container(self, cid: str, grace: float) -> None:
        """SIGTERM, then SIGKILL after `grace` seconds; returns once exited."""
        c = self._container(cid)
        if c.state == ContainerState.CREATED:
            c.state, c.reason = ContainerState.EXITED, "Stopped"
            self._finish_container(cid)
            self.record.save()
            return
        if c.state != ContainerState.RUNNING:
            return
        await terminate(self, c, grace)

    async def remove_container(self, cid: str) -> None:
        c = self._container(cid)
        if c.state == ContainerState.RUNNING:
            raise RuntimeFailure("BadState", f"container {cid} is running: stop it first")
        if (
            self.record.state == SandboxState.READY
            and self.agent
            and not self.agent.closed.is_set()
        ):
            with contextlib.suppress(AgentError):
                await self.agent.request("remove", container=cid)
            if c.slot >= 0:
                with contextlib.suppress(OSError, RuntimeFailure):
                    await qemu.detach_disk(self._qmp, c.slot, self.record.preslots)
        self._listeners.pop(cid, None)
        self._exited.pop(cid, None)
        del self.record.containers[cid]
        self.record.save()

    # --- exec -----------------------------------------------------------------------

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
        agent = self._need_agent()
        c = self._container(cid)
        if c.state != ContainerState.RUNNING:
            raise RuntimeFailure("BadState", f"container {cid} is not running")
        s_in, s_out, s_err = self.record.alloc_streams()
        exec_id = f"x{s_in}"

        async def write(data: bytes) -> None:
            agent.send_data(s_in, data)
            await agent.drain()

        async def resize(r: int, col: int) -> None:
            await agent.request("resize", container=cid, exec_id=exec_id, rows=r, cols=col)

        async def sig(signum: int) -> None:
            with contextlib.suppress(AgentError):
                await agent.request("signal", container=cid, exec_id=exec_id, signal=signum)

        session = ExecSession(exec_id, write, resize, sig)
        agent.on_stream(s_out, lambda d: session.feed("stdout", d))
        agent.on_stream(s_err, lambda d: session.feed("stderr", d))
        self._sessions[exec_id] = session
        try:
            reply = await agent.request(
                "exec",
                container=cid,
                exec_id=exec_id,
                argv=argv,
                env=env or c.env,
                tty=tty,
                stdin=stdin,
                stdin_stream=s_in,
                stdout_stream=s_out,
                stderr_stream=s_err,
            )
        except AgentError as exc:
            self._sessions.pop(exec_id, None)
            agent.on_stream(s_out, None)
            agent.on_stream(s_err, None)
            raise RuntimeFailure("ExecFailed", exc.message) from None
        session.pid = int(reply.get("pid", 0))
        if tty:
            session.feed("stderr", b"")  # a tty has one output stream
            if (rows, cols) != (24, 80):
                await resize(rows, cols)
        return session
