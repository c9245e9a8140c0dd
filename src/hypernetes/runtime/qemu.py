"""QEMU microvm processes: command lines, launch, QMP, and finding them again.

One QEMU process per pod, in its own session so that it outlives the process
that drives it (re-attach after a restart). Devices are virtio-mmio: a
virtio-serial port for the agent, a virtio-scsi bus to which container image
disks are hot-plugged (microvm has no PCI, and SCSI hotplug needs none), and
optionally a virtio-net device bound to a TAP device handed over by the
network layer. A TAP in another network namespace (a tenant router's) is
opened there by a short-lived thread and passed to QEMU as a descriptor
(`-netdev tap,fd=N`): QEMU runs in the host namespace and could not find it
by name.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hypernetes.network import tap

from .assets import BootAssets
from .errors import SandboxError

QEMU = "qemu-system-x86_64"
AGENT_PORT = "io.hypernetes.agent"


@dataclass
class VMSpec:
    """Everything QEMU needs for one pod VM."""

    name: str
    state_dir: Path
    assets: BootAssets
    accel: str  # "kvm" or "tcg"
    vcpus: int
    memory_mib: int
    tap: str | None = None
    mac: str | None = None
    tap_netns: str | None = None  # the TAP's namespace (None: the host's)
    tap_fd: int | None = None  # set by `launch` when the TAP is passed open
    # Guest RAM as a file (VM templates): the template writes its RAM through
    # a shared mapping (share=True); a clone maps the saved file privately
    # (copy-on-write) and waits for its device state (`incoming`).
    memory_file: Path | None = None
    share_memory: bool = False
    incoming: bool = False

    @property
    def agent_socket(self) -> Path:
        return self.state_dir / "agent.sock"

    @property
    def qmp_socket(self) -> Path:
        return self.state_dir / "qmp.sock"

    @property
    def console_log(self) -> Path:
        return self.state_dir / "console.log"

    @property
    def pidfile(self) -> Path:
        return self.state_dir / "qemu.pid"


# Every pod VM has the same devices, in the same order, whether it boots or
# is restored from a template (migration needs identical device models): the
# network device is always there, bound to the pod's TAP when it has one.
# The TAP, sockets and disks are host-side backends, not migrated state.
TEMPLATE_MAC = "52:54:00:00:00:01"
# TCG's translation buffer (QEMU's default: 1 GiB, filled as guest code runs)
# is the largest private part of a pod's memory. A pod start fills ~16 MiB
# of it; a smaller buffer is flushed and refilled during the start (8 MiB:
# +50% start time, 4 MiB: +150%), a bigger one only adds memory.
TCG_TB_MIB = int(os.environ.get("HYPERNETES_TCG_TB_MIB", "16"))
# The first PRESLOTS image-disk slots are SCSI disks present from boot (so in
# every VM template), backed by an empty placeholder file; a container's image
# is swapped in underneath (blockdev-reopen) and the guest only re-reads the
# size. Hot-plugging a new disk instead makes the guest scan it: ~45 ms a
# container under TCG. Later slots are hot-plugged.
PRESLOTS = 2
PLACEHOLDER = Path(os.environ.get("HYPERNETES_CACHE") or "/var/cache/hypernetes") / "empty.disk"


def ensure_placeholder() -> None:
    """The empty disk behind unused pre-declared slots (1 MiB of zeros)."""
    if not PLACEHOLDER.exists():
        PLACEHOLDER.parent.mkdir(parents=True, exist_ok=True)
        tmp = PLACEHOLDER.with_name(f".empty.disk.{os.getpid()}")
        with open(tmp, "wb") as f:
            f.truncate(1 << 20)
        tmp.rename(PLACEHOLDER)


def command_line(spec: VMSpec) -> list[str]:
    # rtc=on: without a CMOS clock the guest kernel spends 1 s at boot
    # waiting for one (0.7 s instead of 1.8 s to the agent under TCG).
    machine = f"microvm,acpi={'on' if spec.assets.acpi else 'off'},rtc=on"
    if spec.memory_file is not None:
        machine += ",memory-backend=mem"
    cmd = [
        QEMU,
        "-name",
        f"hn-{spec.name}",
        "-accel",
        spec.accel if spec.accel != "tcg" else f"tcg,tb-size={TCG_TB_MIB}",
        "-M",
        machine,
        "-cpu",
        "host" if spec.accel == "kvm" else "max",
        "-smp",
        str(spec.vcpus),
        "-m",
        f"{spec.memory_mib}M",
        "-nodefaults",
        "-no-user-config",
        "-display",
        "none",
        "-no-reboot",
    ]
    if spec.memory_file is not None:
        share = "on" if spec.share_memory else "off"
        cmd += [
            "-object",
            f"memory-backend-file,id=mem,size={spec.memory_mib}M,"
            f"mem-path={spec.memory_file},share={share}",
        ]
    if spec.incoming:
        # A restored guest needs no firmware nor kernel; QEMU would keep a copy
        # of both in its own memory (about 11 MiB per pod).
        cmd += ["-incoming", "defer"]
    else:
        cmd += [
            "-kernel",
            str(spec.assets.kernel),
            "-initrd",
            str(spec.assets.initrd),
            "-append",
            spec.assets.cmdline,
        ]
    cmd += [
        "-chardev",
        f"file,id=console,path={spec.console_log}",
        "-serial",
        "chardev:console",
        "-chardev",
        f"socket,id=agent,path={spec.agent_socket},server=on,wait=off",
        "-device",
        "virtio-serial-device",
        "-device",
        f"virtserialport,chardev=agent,name={AGENT_PORT}",
        "-device",
        "virtio-scsi-device,id=scsi0",
        "-qmp",
        f"unix:{spec.qmp_socket},server=on,wait=off",
        "-pidfile",
        str(spec.pidfile),
    ]
    for slot in range(PRESLOTS):
        cmd += [
            "-blockdev",
            f"driver=file,node-name=ph{slot},filename={PLACEHOLDER},read-only=on",
            "-blockdev",
            f"driver=raw,node-name=img{slot},file=ph{slot},read-only=on",
            "-device",
            f"scsi-hd,id=disk{slot},bus=scsi0.0,scsi-id={slot},lun=0,drive=img{slot}",
        ]
    if spec.tap:
        # QEMU refuses ifname/script options beside fd=
        backend = (
            f"fd={spec.tap_fd}"
            if spec.tap_fd is not None
            else f"ifname={spec.tap},script=no,downscript=no"
        )
        cmd += [
            "-netdev",
            f"tap,id=net0,{backend}",
            "-device",
            f"virtio-net-device,id=nic0,netdev=net0,mac={spec.mac or TEMPLATE_MAC}",
        ]
    else:  # no peer: the guest sees a NIC without carrier
        cmd += ["-device", f"virtio-net-device,id=nic0,mac={spec.mac or TEMPLATE_MAC}"]
    return cmd


def open_tap(netns: str, name: str) -> int:
    """Opens the existing TAP `name` of the namespace at `netns` (a path) through the
    network layer; returns the descriptor, inheritable, for QEMU. The descriptor stays
    bound to the device wherever it is used."""
    try:
        fd = tap.open_tap(netns, name)
    except OSError as exc:
        raise SandboxError("NetworkError", f"cannot open TAP {name}: {exc}") from None
    os.set_inheritable(fd, True)
    return fd


def launch(spec: VMSpec) -> subprocess.Popen[bytes]:
    """Starts QEMU detached from our session; it keeps running if we exit.
    A TAP in another namespace is opened here and passed open (QEMU keeps the
    only descriptor: the device carries traffic while QEMU lives)."""
    spec.state_dir.mkdir(parents=True, exist_ok=True)
    ensure_placeholder()
    fds: tuple[int, ...] = ()
    if spec.tap and spec.tap_netns:
        fd = open_tap(spec.tap_netns, spec.tap)
        spec, fds = dataclasses.replace(spec, tap_fd=fd), (fd,)
    err = open(spec.state_dir / "qemu.log", "wb")  # noqa: SIM115
    try:
        return subprocess.Popen(
            command_line(spec),
            stdin=subprocess.DEVNULL,
            stdout=err,
            stderr=err,
            start_new_session=True,
            pass_fds=fds,
        )
    except FileNotFoundError:
        raise SandboxError("NoHypervisor", f"{QEMU} is not installed") from None
    finally:
        err.close()
        for fd in fds:
            os.close(fd)


def process_alive(pid: int, name: str) -> bool:
    """True if `pid` is a live (not zombie) QEMU process of VM `name`."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    state = stat.rpartition(")")[2].split()[0]
    return state not in ("Z", "X") and f"hn-{name}".encode() in cmdline


def kill(pid: int, name: str) -> None:
    if process_alive(pid, name):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


async def wait_gone(pid: int, name: str, timeout: float) -> bool:
    """Waits until the VM process is gone; True if it went in time."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while process_alive(pid, name):
        if loop.time() > deadline:
            return False
        await asyncio.sleep(0.02)
    return True


class QMPError(SandboxError):
    def __init__(self, message: str) -> None:
        super().__init__("QMPError", message)


class QMPConnection:
    """A VM's QMP connection, opened once and kept: a fresh one per command
    costs a connect, the greeting and a capabilities round trip (~1 ms each
    container). Commands are serialized; a broken connection is dropped and
    the next command opens a new one."""

    def __init__(self, socket_path: Path) -> None:
        self.socket_path = socket_path
        self._conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        self._lock = asyncio.Lock()

    async def _open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self._conn is None:
            reader, writer = await asyncio.open_unix_connection(str(self.socket_path))
            try:
                await asyncio.wait_for(reader.readline(), 30)  # greeting
                await _call(reader, writer, "qmp_capabilities", {}, 30)
            except BaseException:
                writer.close()
                raise
            self._conn = reader, writer
        return self._conn

    async def run(self, *commands: tuple[str, dict[str, Any]]) -> list[Any]:
        async with self._lock:
            reader, writer = await self._open()
            try:
                return [await _call(reader, writer, n, a, 30) for n, a in commands]
            except QMPError as exc:
                if not exc.message.endswith("connection closed"):
                    raise  # the command failed, the connection is fine
                self._drop()
                raise
            except BaseException:
                self._drop()
                raise

    def _drop(self) -> None:
        if self._conn is not None:
            self._conn[1].close()
            self._conn = None

    async def close(self) -> None:
        async with self._lock:
            self._drop()


async def _call(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    name: str,
    args: dict[str, Any],
    timeout: float,
) -> Any:
    writer.write(json.dumps({"execute": name, "arguments": args}).encode() + b"\n")
    await writer.drain()
    while True:  # events in between are skipped
        line = await asyncio.wait_for(reader.readline(), timeout)
        if not line:
            raise QMPError("QMP connection closed")
        msg = json.loads(line)
        if "return" in msg:
            return msg["return"]
        if "error" in msg:
            raise QMPError(f"{name}: {msg['error'].get('desc')}")


async def _qmp_connect(
    socket_path: Path, timeout: float
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        try:
            return await asyncio.open_unix_connection(str(socket_path))
        except (FileNotFoundError, ConnectionRefusedError):
            if loop.time() > deadline:
                raise QMPError("QEMU's control socket never appeared") from None
            await asyncio.sleep(0.002)


async def migrate(socket_path: Path, uri: str, incoming: bool, timeout: float = 60) -> None:
    """Saves the (stopped) VM to `uri`, or loads it from there (`incoming`),
    with RAM that lives in a shared file left out of the stream
    (x-ignore-shared); returns when the migration completed."""
    reader, writer = await _qmp_connect(socket_path, timeout)
    try:

        async def call(name: str, **args: Any) -> Any:
            return await _call(reader, writer, name, args, timeout)

        await asyncio.wait_for(reader.readline(), timeout)  # greeting
        await call("qmp_capabilities")
        caps = [{"capability": "x-ignore-shared", "state": True}]
        await call("migrate-set-capabilities", capabilities=caps)
        if incoming:
            await call("migrate-incoming", uri=uri)
        else:
            await call("stop")
            await call("migrate", uri=uri)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            status = (await call("query-migrate")).get("status")
            if status == "completed":
                break
            if status in ("failed", "cancelled"):
                raise QMPError(f"migration {status}")
            if loop.time() > deadline:
                raise QMPError("migration timed out")
            await asyncio.sleep(0.002)
        if incoming:
            await call("cont")
        else:
            await call("quit")
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await writer.wait_closed()


async def attach_disk(
    conn: QMPConnection, slot: int, image: Path, preslots: int = 0
) -> tuple[int, int]:
    """Puts `image` read-only on SCSI slot `slot`: under a disk the VM has had
    since boot when slot < `preslots`, else on a hot-plugged disk; returns
    its (target, lun)."""
    target, lun = slot % 256, slot // 256
    if slot < preslots:
        await conn.run(
            (
                "blockdev-add",
                {
                    "driver": "file",
                    "node-name": f"imgf{slot}",
                    "filename": str(image),
                    "read-only": True,
                },
            ),
            (
                "blockdev-reopen",
                {
                    "options": [
                        {
                            "driver": "raw",
                            "node-name": f"img{slot}",
                            "file": f"imgf{slot}",
                            "read-only": True,
                        }
                    ]
                },
            ),
        )
        return target, lun
    await conn.run(
        (
            "blockdev-add",
            {
                "driver": "raw",
                "node-name": f"img{slot}",
                "read-only": True,
                "file": {"driver": "file", "filename": str(image), "read-only": True},
            },
        ),
        (
            "device_add",
            {
                "driver": "scsi-hd",
                "id": f"disk{slot}",
                "bus": "scsi0.0",
                "scsi-id": target,
                "lun": lun,
                "drive": f"img{slot}",
            },
        ),
    )
    return target, lun


async def detach_disk(conn: QMPConnection, slot: int, preslots: int = 0) -> None:
    if slot < preslots:  # back to the placeholder: the image file is let go
        reopen = {
            "driver": "raw",
            "node-name": f"img{slot}",
            "file": f"ph{slot}",
            "read-only": True,
        }
        await conn.run(
            ("blockdev-reopen", {"options": [reopen]}),
            ("blockdev-del", {"node-name": f"imgf{slot}"}),
        )
        return
    await conn.run(("device_del", {"id": f"disk{slot}"}))
    # SCSI unplug completes in QEMU without the guest; the node can go now.
    for _ in range(50):
        try:
            await conn.run(("blockdev-del", {"node-name": f"img{slot}"}))
            return
        except QMPError:
            await asyncio.sleep(0.05)
