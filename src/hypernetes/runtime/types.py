"""Data types of the runtime API (in the spirit of the Kubernetes CRI)."""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class NetworkAttachment:
    """A network interface to give the pod.

    The network layer creates the TAP device (on the tenant network's bridge)
    and hands its name over; the runtime attaches the VM to it and configures
    the guest side: `mac`, `address` ("10.0.0.5/24"), `gateway`, `mtu`. The
    runtime never creates nor deletes the TAP device.

    `netns` is the path of the network namespace the TAP lives in (a tenant
    router's); the runtime then opens the TAP there and hands QEMU the open
    descriptor (QEMU itself runs in the host namespace). None: the TAP is in
    the host namespace and QEMU opens it by name.
    """

    tap: str
    mac: str
    address: str | None = None
    gateway: str | None = None
    mtu: int | None = None
    netns: str | None = None


@dataclass
class Resources:
    """CPU in cores, memory in bytes; 0 means not set."""

    cpu_request: float = 0.0
    cpu_limit: float = 0.0
    memory_request: int = 0
    memory_limit: int = 0


@dataclass
class PodSandboxConfig:
    name: str
    namespace: str = "default"
    uid: str = ""
    hostname: str = ""
    runtime: str = "vm"  # "vm" (a QEMU microvm) or "runc" (trusted system pods)
    network: NetworkAttachment | None = None
    dns_servers: list[str] = field(default_factory=list)
    dns_searches: list[str] = field(default_factory=list)
    # The whole pod's resources (sum over its containers): they size the VM.
    resources: Resources = field(default_factory=Resources)
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    log_directory: str | None = None


@dataclass
class ContainerConfig:
    name: str
    image: str
    command: list[str] = field(default_factory=list)  # replaces the image's entrypoint
    args: list[str] = field(default_factory=list)  # replaces the image's cmd
    env: dict[str, str] = field(default_factory=dict)
    working_dir: str = ""
    tty: bool = False
    stdin: bool = False
    resources: Resources = field(default_factory=Resources)
    log_path: str | None = None  # default: <pod log dir>/<name>/<attempt>.log
    attempt: int = 0
    uid: int | None = None
    gid: int | None = None
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)


class ContainerState(enum.StrEnum):
    CREATED = "created"
    RUNNING = "running"
    EXITED = "exited"
    UNKNOWN = "unknown"


class SandboxState(enum.StrEnum):
    READY = "ready"
    NOTREADY = "notready"


@dataclass
class ContainerStatus:
    id: str
    pod_id: str
    name: str
    image: str
    image_id: str
    state: ContainerState
    created_at: float
    started_at: float = 0.0
    finished_at: float = 0.0
    exit_code: int = 0
    reason: str = ""
    message: str = ""
    log_path: str = ""
    attempt: int = 0

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["state"] = self.state.value
        return d


@dataclass
class PodSandboxStatus:
    id: str
    name: str
    namespace: str
    uid: str
    runtime: str
    state: SandboxState
    created_at: float
    ip: str | None = None
    reason: str = ""
    message: str = ""
    # VM details (None for runc): how it was started and how big it is.
    accel: str | None = None
    kernel: str | None = None
    vcpus: int | None = None
    memory_mib: int | None = None
    boot: str | None = None  # "template" or "cold"
    pid: int | None = None
    containers: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["state"] = self.state.value
        return d


@dataclass
class ExecResult:
    exit_code: int
    stdout: bytes
    stderr: bytes


@dataclass
class ImageInfo:
    id: str  # the config digest, "sha256:..."
    repo_tags: list[str]
    repo_digests: list[str]
    size: int
    created: str = ""
    entrypoint: list[str] = field(default_factory=list)
    cmd: list[str] = field(default_factory=list)
    env: list[str] = field(default_factory=list)
    working_dir: str = ""
    user: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
