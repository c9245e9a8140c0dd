"""Guest boot assets: the kernel and the initramfs carrying hyperstart.

Two kernel flavours exist. `hypernetes` is our minimal kernel, built from
Debian's linux-source with guest/kernel/hypernetes.config by
guest/build-kernel.sh and cached in /var/cache/hypernetes/kernel; everything a
pod needs is built in. `debian` is Debian's cloud kernel, the fallback: its
initramfs also carries the modules the agent loads at boot. The initramfs is
an uncompressed newc cpio archive (decompressing costs more than copying under
TCG), built here and cached by the hash of its inputs, so both are built once.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import glob
import hashlib
import io
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from .errors import RuntimeFailure

GUEST_DIR = Path(
    os.environ.get("HYPERNETES_GUEST_DIR") or Path(__file__).resolve().parents[3] / "guest"
)
CACHE_DIR = Path(os.environ.get("HYPERNETES_CACHE") or "/var/cache/hypernetes")

# Modules of the Debian cloud kernel a pod VM needs, in load order after
# their dependencies (found in modules.dep).
_DEBIAN_MODULES = (
    "virtio_mmio",
    "virtio_console",
    "virtio_net",
    "virtio_scsi",
    "sd_mod",
    "erofs",
    "overlay",
)

FLAVOURS = ("hypernetes", "debian")


@dataclasses.dataclass(frozen=True)
class BootAssets:
    """What QEMU needs to boot a pod VM."""

    flavour: str
    kernel: Path
    initrd: Path
    cmdline: str
    acpi: bool  # the cloud kernel finds microvm's devices through ACPI only


def _sources_hash(paths: list[Path], extra: str = "") -> str:
    h = hashlib.sha256(extra.encode())
    for p in sorted(paths):
        h.update(p.name.encode())
        h.update(p.read_bytes())
    return h.hexdigest()[:16]


def build_agent() -> Path:
    """Compiles hyperstart (static) into the cache; returns the binary."""
    sources = [*GUEST_DIR.glob("agent/*.[ch]"), GUEST_DIR / "Makefile"]
    out = CACHE_DIR / "agent" / _sources_hash(sources)
    binary = out / "hyperstart"
    if binary.exists():
        return binary
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".build-", dir=out.parent))
    try:
        result = subprocess.run(
            ["make", "-s", "-C", str(GUEST_DIR), f"OUT={tmp}"], capture_output=True, text=True
        )
        if result.returncode != 0:
            raise RuntimeFailure("AgentBuildFailed", f"building hyperstart: {result.stderr}")
        # If someone else built it concurrently, theirs is as good.
        with contextlib.suppress(OSError):
            tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return binary


def _cpio_entry(out: io.BytesIO, name: str, mode: int, data: bytes = b"", ino: int = 0) -> None:
    """One newc cpio record (with fixed owner and mtime: reproducible)."""
    fields = [ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(name) + 1, 0]
    header = b"070701" + b"".join(b"%08X" % f for f in fields)
    out.write(header + name.encode() + b"\0")
    out.write(b"\0" * (-(len(header) + len(name) + 1) % 4))
    out.write(data)
    out.write(b"\0" * (-len(data) % 4))


def make_initramfs(agent: Path, modules: list[Path], dest: Path) -> None:
    """Writes an initramfs with /init = hyperstart and the given modules."""
    out = io.BytesIO()
    ino = 1
    for d in ("dev", "lib", "lib/modules", "proc", "sys", "run"):
        _cpio_entry(out, d, 0o040755, ino=ino)
        ino += 1
    _cpio_entry(out, "dev/console", 0o020600, ino=ino)  # char device 5:1 (set below)
    ino += 1
    _cpio_entry(out, "init", 0o100755, agent.read_bytes(), ino=ino)
    ino += 1
    order = []
    for m in modules:
        name = f"lib/modules/{m.name}"
        _cpio_entry(out, name, 0o100644, m.read_bytes(), ino=ino)
        ino += 1
        order.append("/" + name)
    _cpio_entry(out, "lib/modules/order", 0o100644, ("\n".join(order) + "\n").encode(), ino=ino)
    _cpio_entry(out, "TRAILER!!!", 0)
    data = bytearray(out.getvalue())
    # Patch rdevmajor/rdevminor of dev/console (fields 10 and 11 of its header).
    pos = data.find(b"dev/console\0") - 110
    data[pos + 6 + 8 * 9 : pos + 6 + 8 * 11] = b"%08X%08X" % (5, 1)
    tmp = dest.with_suffix(f".tmp{os.getpid()}")
    tmp.write_bytes(bytes(data))
    tmp.rename(dest)


def _debian_kernel() -> tuple[Path, list[Path]]:
    kernels = sorted(glob.glob("/boot/vmlinuz-*-cloud-amd64"))
    if not kernels:
        raise RuntimeFailure("NoKernel", "no Debian cloud kernel (install linux-image-cloud-amd64)")
    kernel = Path(kernels[-1])
    release = kernel.name.removeprefix("vmlinuz-")
    moddir = Path("/lib/modules") / release
    deps: dict[str, list[str]] = {}
    for line in (moddir / "modules.dep").read_text().splitlines():
        target, _, rest = line.partition(":")
        deps[Path(target).name.removesuffix(".ko")] = [Path(d).name for d in rest.split()]
    paths = {
        Path(t).name: moddir / t
        for t in (
            line.partition(":")[0] for line in (moddir / "modules.dep").read_text().splitlines()
        )
    }
    ordered: list[Path] = []

    def add(mod: str) -> None:
        key = mod.removesuffix(".ko")
        for dep in reversed(deps.get(key, [])):
            add(dep)
        path = paths[key + ".ko"]
        if path not in ordered:
            ordered.append(path)

    for m in _DEBIAN_MODULES:
        add(m)
    return kernel, ordered


def hypernetes_kernel(build: bool = True) -> Path:
    """Our kernel (building it with guest/build-kernel.sh when not cached)."""
    script = GUEST_DIR / "build-kernel.sh"
    env = {**os.environ, "HYPERNETES_CACHE": str(CACHE_DIR)}
    if not build:
        env["HYPERNETES_KERNEL_NO_BUILD"] = "1"
    result = subprocess.run(["bash", str(script)], capture_output=True, text=True, env=env)
    if result.returncode != 0:
        raise RuntimeFailure("NoKernel", f"guest kernel: {result.stderr.strip()}")
    return Path(result.stdout.strip().splitlines()[-1])


_CMDLINE = "console=ttyS0 quiet reboot=t panic=-1 rdinit=/init tsc=reliable"


@functools.cache  # constant for the host; parsing /proc/cpuinfo per pod is waste
def host_tsc_khz() -> int | None:
    """The host's TSC frequency (kHz), which is the guest's under TCG."""
    try:
        with open("/proc/cpuinfo") as f:
            text = f.read()
    except OSError:
        return None
    if " constant_tsc" not in text:
        return None
    for line in text.splitlines():
        if line.startswith("cpu MHz"):
            return int(float(line.split(":")[1]) * 1000)
    return None


def for_accel(boot: BootAssets, accel: str) -> BootAssets:
    """Adjusts the kernel command line for the accelerator. Under TCG on a
    loaded host, the guest's PIT-based TSC calibration can fail, after which
    the Debian kernel hangs at boot; telling it the TSC rate skips that."""
    khz = host_tsc_khz() if accel == "tcg" else None
    if khz is None:
        return boot
    return dataclasses.replace(boot, cmdline=f"{boot.cmdline} tsc_early_khz={khz}")


_resolved: dict[str, BootAssets] = {}


def boot_assets(flavour: str = "hypernetes") -> BootAssets:
    """Kernel + initramfs for `flavour`, built and cached on first use (and
    remembered by this process: finding them costs ~15 ms, once per pod)."""
    found = _resolved.get(flavour)
    if found is not None and found.kernel.exists() and found.initrd.exists():
        return found
    _resolved[flavour] = found = _boot_assets(flavour)
    return found


def _boot_assets(flavour: str) -> BootAssets:
    agent = build_agent()
    if flavour == "hypernetes":
        kernel = hypernetes_kernel()
        modules: list[Path] = []
        acpi = False
    elif flavour == "debian":
        kernel, modules = _debian_kernel()
        acpi = True
    else:
        raise RuntimeFailure("BadConfig", f"unknown kernel flavour {flavour!r}")
    key = _sources_hash([agent, *modules], extra=flavour)
    initrd = CACHE_DIR / "initramfs" / f"{flavour}-{key}.cpio"
    if not initrd.exists():
        initrd.parent.mkdir(parents=True, exist_ok=True)
        make_initramfs(agent, modules, initrd)
    return BootAssets(flavour, kernel, initrd, _CMDLINE, acpi)
