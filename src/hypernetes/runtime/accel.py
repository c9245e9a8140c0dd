"""Choosing the accelerator: KVM when it really works, TCG otherwise.

/dev/kvm can exist and open and yet hang the first guest (it does on the
machines this was written on), so the probe boots the guest kernel for real
under KVM with a short timeout: with no initramfs it panics and, with
-no-reboot, QEMU exits at once. The answer is cached per host boot in
/run/hypernetes. HYPERNETES_ACCEL=kvm|tcg overrides the probe.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

PROBE_TIMEOUT = 5.0
_CACHE = Path("/run/hypernetes/accel")


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return "unknown"


def probe_kvm(kernel: Path, timeout: float = PROBE_TIMEOUT) -> tuple[bool, str]:
    """Boots `kernel` under KVM; returns (works, why)."""
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return False, "no usable /dev/kvm"
    cmd = [
        "qemu-system-x86_64",
        "-M",
        "microvm,accel=kvm,acpi=off",
        "-cpu",
        "host",
        "-m",
        "128M",
        "-nodefaults",
        "-no-user-config",
        "-display",
        "none",
        "-no-reboot",
        "-kernel",
        str(kernel),
        "-append",
        "console=ttyS0 panic=-1 quiet",
    ]
    try:
        result = subprocess.run(cmd, capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return False, f"a KVM guest did not finish booting in {timeout:g} s"
    except FileNotFoundError:
        return False, "qemu-system-x86_64 is not installed"
    if result.returncode != 0:
        return False, f"KVM guest failed: {result.stderr.decode(errors='replace').strip()[:200]}"
    return True, "KVM works"


def choose(kernel: Path) -> tuple[str, str]:
    """Returns ("kvm"|"tcg", reason), probing at most once per host boot."""
    forced = os.environ.get("HYPERNETES_ACCEL")
    if forced in ("kvm", "tcg"):
        return forced, "set by HYPERNETES_ACCEL"
    boot = _boot_id()
    try:
        cached_boot, accel, reason = _CACHE.read_text().split("\n", 2)
        if cached_boot == boot and accel in ("kvm", "tcg"):
            return accel, reason
    except (OSError, ValueError):
        pass
    works, why = probe_kvm(kernel)
    accel = "kvm" if works else "tcg"
    reason = why if works else f"TCG: {why}"
    try:
        _CACHE.parent.mkdir(parents=True, exist_ok=True)
        tmp = _CACHE.with_suffix(f".{os.getpid()}")
        tmp.write_text(f"{boot}\n{accel}\n{reason}")
        tmp.rename(_CACHE)
    except OSError:
        pass
    return accel, reason
