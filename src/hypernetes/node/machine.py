"""What this machine offers as a node: capacity, allocatable, addresses and
system info, read from the kernel (/proc, statvfs, uname)."""

from __future__ import annotations

import os
import platform
import socket
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from hypernetes import __version__
from hypernetes.resources.schema import KUBERNETES_VERSION

MAX_PODS = 110
"""Pods per node, kube's default."""
SYSTEM_RESERVED_MEMORY = 256 * 1024 * 1024
"""Memory held back for the host, the agent and eviction headroom."""
EPHEMERAL_RESERVED_FRACTION = 0.1


def memory_bytes() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024
    return 0


def capacity(data_dir: Path) -> tuple[dict[str, str], dict[str, str]]:
    """(capacity, allocatable) as Kubernetes quantities."""
    cpus = os.cpu_count() or 1
    memory = memory_bytes()
    data_dir.mkdir(parents=True, exist_ok=True)
    fs = os.statvfs(data_dir)
    disk = fs.f_blocks * fs.f_frsize
    cap = {
        "cpu": str(cpus),
        "memory": f"{memory // 1024}Ki",
        "pods": str(MAX_PODS),
        "ephemeral-storage": f"{disk // 1024}Ki",
    }
    alloc = {
        "cpu": str(cpus),
        "memory": f"{max(0, memory - SYSTEM_RESERVED_MEMORY) // 1024}Ki",
        "pods": str(MAX_PODS),
        "ephemeral-storage": str(int(disk * (1 - EPHEMERAL_RESERVED_FRACTION))),
    }
    return cap, alloc


def internal_ip(server_url: str) -> str:
    """The address this machine uses to reach the API server (no packet is sent)."""
    host = urlsplit(server_url).hostname or "127.0.0.1"
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_DGRAM) as s:
            s.connect((host, 443))
            return str(s.getsockname()[0])
    except OSError:
        return "127.0.0.1"


def _read(path: str) -> str:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return ""


def os_image() -> str:
    for line in _read("/etc/os-release").splitlines():
        if line.startswith("PRETTY_NAME="):
            return line.split("=", 1)[1].strip('"')
    return "Linux"


def node_info() -> dict[str, Any]:
    machine_id = _read("/etc/machine-id")
    return {
        "machineID": machine_id,
        "systemUUID": _read("/sys/class/dmi/id/product_uuid") or machine_id,
        "bootID": _read("/proc/sys/kernel/random/boot_id"),
        "kernelVersion": platform.release(),
        "osImage": os_image(),
        "containerRuntimeVersion": f"hypernetes://{__version__}",
        "kubeletVersion": f"v{KUBERNETES_VERSION}+hypernetes.{__version__}",
        "kubeProxyVersion": "",
        "operatingSystem": "linux",
        "architecture": "amd64" if platform.machine() == "x86_64" else platform.machine(),
    }


def addresses(server_url: str, hostname: str) -> list[dict[str, str]]:
    return [
        {"type": "InternalIP", "address": internal_ip(server_url)},
        {"type": "Hostname", "address": hostname},
    ]
