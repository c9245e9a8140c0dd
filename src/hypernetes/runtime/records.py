"""Persistent records of pod sandboxes and their containers.

Each sandbox has a directory <data-dir>/runtime/pods/<id>/ holding
sandbox.json (rewritten atomically on every change), its logs by default and,
for VMs, QEMU's sockets, pid file and console log. A restarted driver reads
these records back and re-attaches.

`SandboxRecord.save()` writes synchronously (about 0.7 ms on ext4): a driver
killed at any moment must find on disk every VM it has launched, or the next
driver could not re-adopt it and it would be orphaned.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .types import (
    ContainerConfig,
    ContainerState,
    ContainerStatus,
    NetworkAttachment,
    PodSandboxConfig,
    Resources,
    SandboxState,
)


def new_id() -> str:
    return secrets.token_hex(8)


def pod_config_from_dict(d: dict[str, Any]) -> PodSandboxConfig:
    d = dict(d)
    d["resources"] = Resources(**d.get("resources") or {})
    if d.get("network"):
        d["network"] = NetworkAttachment(**d["network"])
    return PodSandboxConfig(**d)


def container_config_from_dict(d: dict[str, Any]) -> ContainerConfig:
    d = dict(d)
    d["resources"] = Resources(**d.get("resources") or {})
    return ContainerConfig(**d)


@dataclass
class ContainerRecord:
    id: str
    pod_id: str
    config: ContainerConfig
    image_id: str
    argv: list[str]
    env: list[str]
    cwd: str
    uid: int
    gid: int
    log_path: str
    state: ContainerState = ContainerState.CREATED
    created_at: float = field(default_factory=time.time)
    started_at: float = 0.0
    finished_at: float = 0.0
    exit_code: int = 0
    reason: str = ""
    message: str = ""
    slot: int = -1  # VM: the SCSI slot of its image disk
    streams: tuple[int, int, int] = (0, 0, 0)  # VM: stdin, stdout, stderr stream ids
    bundle: str = ""  # runc: the OCI bundle directory

    def status(self) -> ContainerStatus:
        return ContainerStatus(
            id=self.id,
            pod_id=self.pod_id,
            name=self.config.name,
            image=self.config.image,
            image_id=self.image_id,
            state=self.state,
            created_at=self.created_at,
            started_at=self.started_at,
            finished_at=self.finished_at,
            exit_code=self.exit_code,
            reason=self.reason,
            message=self.message,
            log_path=self.log_path,
            attempt=self.config.attempt,
        )

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["state"] = self.state.value
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ContainerRecord:
        d = dict(d)
        d["config"] = container_config_from_dict(d["config"])
        d["state"] = ContainerState(d["state"])
        d["streams"] = tuple(d.get("streams") or (0, 0, 0))
        return cls(**d)


@dataclass
class SandboxRecord:
    id: str
    config: PodSandboxConfig
    dir: str
    created_at: float = field(default_factory=time.time)
    state: SandboxState = SandboxState.READY
    reason: str = ""
    message: str = ""
    # VM details
    pid: int = 0
    accel: str = ""
    kernel: str = ""
    flavour: str = ""
    boot: str = ""  # "template" (restored from a VM template) or "cold"
    vcpus: int = 0
    memory_mib: int = 0
    next_slot: int = 0
    preslots: int = 0  # VM: image-disk slots present since boot (qemu.PRESLOTS)
    next_stream: int = 1
    containers: dict[str, ContainerRecord] = field(default_factory=dict)

    @property
    def path(self) -> Path:
        return Path(self.dir)

    def save(self) -> None:
        """Atomically rewrites sandbox.json with the record as it is now."""
        d = asdict(self)
        d["state"] = self.state.value
        d["containers"] = {k: c.to_dict() for k, c in self.containers.items()}
        tmp = self.path / f"sandbox.json.{os.getpid()}"
        tmp.write_text(json.dumps(d, indent=1))
        tmp.rename(self.path / "sandbox.json")

    @classmethod
    def load(cls, directory: Path) -> SandboxRecord:
        d = json.loads((directory / "sandbox.json").read_text())
        d["config"] = pod_config_from_dict(d["config"])
        d["state"] = SandboxState(d["state"])
        d["containers"] = {k: ContainerRecord.from_dict(c) for k, c in d["containers"].items()}
        d["dir"] = str(directory)
        return cls(**d)

    def alloc_streams(self) -> tuple[int, int, int]:
        s = self.next_stream
        self.next_stream += 3
        return s, s + 1, s + 2
