"""Helpers of the node tests: an agent process, waiting, manifests, cleanup."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hypernetes.runtime import Runtime

IMAGE = "test/busybox:1"
HN = str(Path(sys.executable).parent / "hypernetes")
"""The `hypernetes` command (its entry point: errors are one line, as users see them)."""
TIMEOUT = 60.0


def _no_kubeconfig() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}


def create_token(server_data: Path, *extra: str) -> str:
    """A join token from `hypernetes token create` (the admin's CLI)."""
    cmd = [HN, "token", "create", "--data-dir", str(server_data), *extra]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, env=_no_kubeconfig())
    return out.stdout.strip()


def eventually(check: Callable[[], Any], what: str, timeout: float = TIMEOUT,
               interval: float = 0.3) -> Any:  # fmt: skip
    """Polls `check` until it returns something truthy; returns that."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


@dataclass
class Agent:
    """A `hypernetes agent` process on its own data dir."""

    data_dir: Path
    server: str
    token: str
    node_name: str
    log: Path
    extra: tuple[str, ...] = ()
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def start(self) -> None:
        cmd = [HN, "agent", "--data-dir", str(self.data_dir),
               "--server", self.server, "--token", self.token, "--node-name", self.node_name,
               "--heartbeat", "2", "--stream-port", "0", *self.extra]  # fmt: skip
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(cmd, stdout=log, stderr=log)

    @property
    def kubeconfig(self) -> Path:
        """The node's own credentials, written when it joined."""
        return self.data_dir / "node.kubeconfig"

    def kill(self) -> None:
        """SIGKILL: the agent dies without any clean-up (the pods keep running)."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


async def _wipe(data_dir: Path) -> int:
    rt = Runtime(data_dir)
    await rt.open()
    try:
        sandboxes = await rt.list_pod_sandboxes()
        for s in sandboxes:
            await rt.stop_pod_sandbox(s.id, grace=0)
            await rt.remove_pod_sandbox(s.id)
        return len(sandboxes)
    finally:
        await rt.close()


def wipe_runtime(data_dir: Path) -> int:
    """Stops and removes every sandbox left in a data dir; returns how many there were."""
    return asyncio.run(_wipe(data_dir))


async def _sandboxes(data_dir: Path) -> list[tuple[str, str, str]]:
    rt = Runtime(data_dir)
    await rt.open()
    try:
        return [(s.uid, s.name, s.state.value) for s in await rt.list_pod_sandboxes()]
    finally:
        await rt.close()


def sandboxes(data_dir: Path) -> list[tuple[str, str, str]]:
    """(pod uid, pod name, state) of each sandbox (only while no agent runs)."""
    return asyncio.run(_sandboxes(data_dir))


def import_image(data_dir: Path, archive: Path) -> None:
    asyncio.run(Runtime(data_dir).import_image(str(archive)))


def pod_manifest(name: str, node: str, command: list[str], *, runtime: str = "runc",
                 restart: str = "Always", image: str = IMAGE, grace: int = 2,
                 extra: dict[str, Any] | None = None) -> str:  # fmt: skip
    container: dict[str, Any] = {"name": "main", "image": image, "command": command}
    container.update(extra or {})
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "annotations": {"hypernetes.io/runtime": runtime}},
        "spec": {
            "nodeName": node,
            "restartPolicy": restart,
            "terminationGracePeriodSeconds": grace,
            "containers": [container],
        },
    }
    return json.dumps(pod)


def runc_processes(marker: str) -> list[int]:
    """Host processes whose command line contains `marker` (runc pods share the host PID view)."""
    out = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            cmd = (d / "cmdline").read_bytes()
        except OSError:
            continue
        if marker.encode() in cmd and str(os.getpid()) != d.name:
            out.append(int(d.name))
    return out


def get_pod(server: Any, ns: str, name: str) -> dict[str, Any]:
    """The pod as `kubectl get -o json` shows it (`server` is a RunningServer)."""
    return dict(json.loads(server.kubectl("get", "pod", name, "-n", ns, "-o", "json").stdout))


def container_state(server: Any, ns: str, name: str) -> dict[str, Any]:
    """The first container's status of the pod (empty before the agent reports one)."""
    statuses = get_pod(server, ns, name).get("status", {}).get("containerStatuses") or [{}]
    return dict(statuses[0])


def apply_manifest(server: Any, ns: str, manifest: str) -> None:
    """`kubectl apply -n NS -f -` of `manifest` (`server` is a RunningServer)."""
    server.kubectl("apply", "-n", ns, "-f", "-", input=manifest)
