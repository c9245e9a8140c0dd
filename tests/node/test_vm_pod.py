"""End to end with the VM runtime: a tenant-style pod boots in its own VM, and
kubectl logs / exec (also -it on a terminal) reach it through the API server."""

from __future__ import annotations

import os
import platform
import time
import uuid
from collections.abc import Iterator

import pytest
from ndhelpers import Agent, eventually, pod_manifest
from test_streams import run_on_pty
from tests.conftest import RunningServer

from hypernetes.runtime import assets


@pytest.fixture
def vm_ns(server: RunningServer, agent: Agent) -> Iterator[str]:
    assets.boot_assets("hypernetes")  # built (or found cached) before the clock runs
    name = f"nd-vm-{uuid.uuid4().hex[:6]}"
    server.kubectl("create", "namespace", name)
    yield name
    server.kubectl("delete", "pods", "--all", "-n", name, "--wait=true", "--timeout=90s",
                   check=False)  # fmt: skip
    server.kubectl("delete", "namespace", name, "--wait=false", check=False)


def qemu_for(uid: str) -> list[int]:
    """QEMU processes whose command line names the pod (by its sandbox dir)."""
    pids = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/cmdline", "rb") as f:
                cmd = f.read()
        except OSError:
            continue
        if cmd.startswith(b"qemu-system") and uid.encode() in cmd:
            pids.append(int(d))
    return pids


def test_vm_pod_end_to_end(server: RunningServer, agent: Agent, vm_ns: str) -> None:
    script = "echo started in $(uname -r); exec sleep 3600"
    server.kubectl(
        "apply",
        "-n",
        vm_ns,
        "-f",
        "-",
        input=pod_manifest("vm", agent.node_name, ["sh", "-c", script], runtime="vm"),
    )
    server.kubectl("wait", "-n", vm_ns, "pod/vm", "--for=condition=Ready", "--timeout=120s")
    cid = server.kubectl(
        "get", "pod", "vm", "-n", vm_ns, "-o", "jsonpath={.status.containerStatuses[0].containerID}"
    ).stdout
    assert cid.startswith("vm://")
    guest = server.kubectl("exec", "-n", vm_ns, "vm", "--", "uname", "-r").stdout.strip()
    assert guest and guest != platform.release()  # the guest's kernel, not the host's
    logs = server.kubectl("logs", "-n", vm_ns, "vm").stdout
    assert logs == f"started in {guest}\n"
    env = {**os.environ, "KUBECONFIG": str(server.kubeconfig), "TERM": "xterm"}
    code, out = run_on_pty(["kubectl", "exec", "-it", "-n", vm_ns, "vm", "--", "sh", "-c",
                            "test -t 0 && echo tty-yes"], env)  # fmt: skip
    assert code == 0 and b"tty-yes" in out, out
    assert agent_qemu(agent), "the pod runs in a QEMU VM of this agent"
    server.kubectl("delete", "pod", "vm", "-n", vm_ns, "--timeout=60s")
    assert not agent_qemu(agent), "the pod's VM is gone with the pod"


def agent_qemu(agent: Agent) -> list[int]:
    return qemu_for(str(agent.data_dir))


def test_agent_killed_while_booting_vms(server: RunningServer, agent: Agent, vm_ns: str) -> None:
    """SIGKILL in the middle of VM starts: the restarted agent brings every pod up once,
    and no QEMU process is left that no sandbox owns."""
    for i in range(2):
        server.kubectl("apply", "-n", vm_ns, "-f", "-", input=pod_manifest(
            f"boot-{i}", agent.node_name, ["sleep", "3600"], runtime="vm"))  # fmt: skip
    time.sleep(1.0)  # the agent is booting the VMs now
    agent.kill()
    agent.start()
    for i in range(2):
        server.kubectl("wait", "-n", vm_ns, f"pod/boot-{i}", "--for=condition=Ready",
                       "--timeout=120s")  # fmt: skip
    sandbox_dirs = {str(p) for p in (agent.data_dir / "runtime" / "pods").iterdir()}
    assert len(sandbox_dirs) == 2
    for pid in agent_qemu(agent):
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmd = f.read().decode(errors="replace")
        assert any(d in cmd for d in sandbox_dirs), f"orphaned QEMU {pid}: {cmd[:200]}"
    for i in range(2):
        server.kubectl("delete", "pod", f"boot-{i}", "-n", vm_ns, "--timeout=60s")
    eventually(lambda: not agent_qemu(agent), "the VMs to go with their pods", timeout=30)
