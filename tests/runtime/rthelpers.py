"""Helpers of the runtime tests: the host-cleanliness check and a real
registry (Debian's docker-registry) on a random loopback port."""

from __future__ import annotations

import os
import socket
import subprocess
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path


def qemu_processes() -> set[int]:
    """Live (not zombie) QEMU processes of pod VMs started by this test
    session (their state paths are under its private temp dir: other parts
    may run VMs on this machine at the same time)."""
    mine = tempfile.gettempdir().encode()
    out = set()
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            cmdline = (d / "cmdline").read_bytes()
            state = (d / "stat").read_text().rpartition(")")[2].split()[0]
        except OSError:
            continue
        if (
            cmdline.startswith(b"qemu-system")
            and b"hn-" in cmdline
            and mine in cmdline
            and state != "Z"
        ):
            out.add(int(d.name))
    return out


# Other parts of the project may run on this machine at the same time, so the
# checks look only at what this part's tests create: names with PREFIX, in
# the session's private temp dir (conftest.py sets it).
PREFIX = "hnrt"


def tap_devices() -> set[str]:
    return {
        p.name
        for p in Path("/sys/class/net").iterdir()
        if (p / "tun_flags").exists() and p.name.startswith(PREFIX)
    }


def mounts() -> set[str]:
    points = (line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines())
    return {p for p in points if PREFIX in p}


def tmp_entries() -> set[str]:
    return {e for e in os.listdir(tempfile.gettempdir()) if e.startswith(PREFIX)}


@dataclass
class HostSnapshot:
    qemu: set[int]
    taps: set[str]
    mounts: set[str]
    tmp: set[str]

    @classmethod
    def take(cls) -> HostSnapshot:
        return cls(qemu_processes(), tap_devices(), mounts(), tmp_entries())

    def assert_clean(self, allowed_tmp: set[str] = frozenset()) -> None:  # type: ignore[assignment]
        deadline = time.monotonic() + 15
        while qemu_processes() - self.qemu and time.monotonic() < deadline:
            time.sleep(0.1)
        left = qemu_processes() - self.qemu
        for pid in left:  # do not let one failure slow down every later test
            os.kill(pid, 9)
        assert left == set(), f"QEMU processes left behind: {left}"
        assert tap_devices() - self.taps == set(), "TAP devices left behind"
        assert mounts() - self.mounts == set(), "mounts left behind"
        leaked = tmp_entries() - self.tmp - allowed_tmp
        assert leaked == set(), f"temp files left behind: {leaked}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Registry:
    host: str  # 127.0.0.1:port
    storage: Path

    def blob_file(self, digest: str) -> Path:
        h = digest.removeprefix("sha256:")
        return self.storage / f"docker/registry/v2/blobs/sha256/{h[:2]}/{h}/data"


def start_registry(storage: Path, extra: str = "") -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    config = storage.parent / f"registry-{port}.yml"
    config.write_text(f"""version: 0.1
log:
  level: error
storage:
  filesystem:
    rootdirectory: {storage}
  delete:
    enabled: true
http:
  addr: 127.0.0.1:{port}
{extra}""")
    proc = subprocess.Popen(
        ["docker-registry", "serve", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    host = f"127.0.0.1:{port}"
    for _ in range(200):
        try:
            urllib.request.urlopen(f"http://{host}/v2/", timeout=1)
            return proc, host
        except urllib.error.HTTPError:
            return proc, host  # 401 with auth: it is serving
        except OSError:
            if proc.poll() is not None:
                err = proc.stderr.read() if proc.stderr else b""
                raise RuntimeError(f"registry died: {err!r}") from None
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("registry did not start")
