"""Probes (exec, httpGet, tcpSocket; readiness, liveness, startup) and the agent's
own restart: running pods are adopted, not restarted; orphans are removed."""

from __future__ import annotations

import json
import socket
import time
import uuid

from ndhelpers import (
    Agent,
    apply_manifest,
    container_state,
    eventually,
    get_pod,
    pod_manifest,
    runc_processes,
    sandboxes,
)
from tests.conftest import RunningServer


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_exec_readiness_and_liveness(server: RunningServer, agent: Agent, ns: str) -> None:
    ready_probe = {"exec": {"command": ["test", "-f", "/tmp/ready"]}, "periodSeconds": 1}
    apply_manifest(server, ns, pod_manifest(
        "slow", agent.node_name, ["sh", "-c", "sleep 3; touch /tmp/ready; sleep 3600"],
        extra={"readinessProbe": ready_probe}))  # fmt: skip
    live_probe = {"exec": {"command": ["test", "-f", "/tmp/alive"]}, "periodSeconds": 1,
                  "failureThreshold": 2}  # fmt: skip
    apply_manifest(server, ns, pod_manifest(
        "sick", agent.node_name,
        ["sh", "-c", "touch /tmp/alive; sleep 2; rm /tmp/alive; sleep 3600"],
        extra={"livenessProbe": live_probe}))  # fmt: skip
    eventually(lambda: "running" in container_state(server, ns, "slow").get("state", {}), "running")
    early = container_state(server, ns, "slow")
    assert early["ready"] is False  # running, but the probe has not passed yet
    server.kubectl("wait", "-n", ns, "pod/slow", "--for=condition=Ready", "--timeout=30s")
    eventually(lambda: container_state(server, ns, "sick").get("restartCount", 0) >= 1,
               "a restart after failed liveness probes", timeout=30)  # fmt: skip
    events = server.kubectl("get", "events", "-n", ns).stdout
    assert "Liveness probe failed" in events


def test_http_tcp_and_startup_probes(server: RunningServer, agent: Agent, ns: str) -> None:
    port = free_port()  # runc pods share the host's network
    serve = (
        f"mkdir -p /www && echo ok > /www/index.html && exec httpd -f -p 127.0.0.1:{port} -h /www"
    )
    probes = {
        "startupProbe": {"tcpSocket": {"port": port}, "periodSeconds": 1, "failureThreshold": 30},
        "readinessProbe": {"httpGet": {"path": "/index.html", "port": port}, "periodSeconds": 1},
        "livenessProbe": {"tcpSocket": {"port": port}, "periodSeconds": 1},
    }
    apply_manifest(
        server,
        ns,
        pod_manifest("httpd", agent.node_name, ["sh", "-c", f"sleep 1; {serve}"], extra=probes),
    )
    server.kubectl("wait", "-n", ns, "pod/httpd", "--for=condition=Ready", "--timeout=40s")
    cs = container_state(server, ns, "httpd")
    assert cs["started"] is True and cs["restartCount"] == 0
    bad = {"readinessProbe": {"httpGet": {"path": "/missing", "port": port + 1},
                              "periodSeconds": 1}}  # fmt: skip
    apply_manifest(
        server, ns, pod_manifest("unready", agent.node_name, ["sleep", "3600"], extra=bad)
    )
    eventually(
        lambda: "running" in container_state(server, ns, "unready").get("state", {}), "running"
    )
    time.sleep(3)
    assert container_state(server, ns, "unready")["ready"] is False
    cond = {c["type"]: c for c in get_pod(server, ns, "unready")["status"]["conditions"]}
    assert cond["Ready"]["status"] == "False" and cond["Ready"]["reason"] == "ContainersNotReady"


def test_agent_restart_adopts_running_pods(server: RunningServer, agent: Agent, ns: str) -> None:
    marker = f"adopt{uuid.uuid4().hex[:6]}"
    apply_manifest(
        server,
        ns,
        pod_manifest("keep", agent.node_name, ["sh", "-c", f"sleep 3600; echo {marker}"]),
    )
    apply_manifest(server, ns, pod_manifest("drop", agent.node_name, ["sleep", "3600"]))
    apply_manifest(
        server, ns, pod_manifest("once", agent.node_name, ["sh", "-c", "echo ran"], restart="Never")
    )
    for name in ("keep", "drop"):
        server.kubectl("wait", "-n", ns, f"pod/{name}", "--for=condition=Ready", "--timeout=60s")
    server.kubectl("wait", "-n", ns, "pod/once", "--for=jsonpath={.status.phase}=Succeeded",
                   "--timeout=60s")  # fmt: skip
    finished = container_state(server, ns, "once")
    before = container_state(server, ns, "keep")
    pids = runc_processes(marker)
    agent.kill()
    down = server.kubectl("logs", "-n", ns, "keep", check=False)  # no agent to ask: one line
    assert down.returncode != 0 and "cannot reach the node agent" in down.stderr
    # While the agent is away, "drop" is force-deleted: its sandbox is an orphan now.
    server.kubectl("delete", "pod", "drop", "-n", ns, "--grace-period=0", "--force")
    drop_uid = [s for s in sandboxes(agent.data_dir) if s[1] == "drop"]
    assert drop_uid, "the orphan should still exist while the agent is down"
    agent.start()
    eventually(lambda: not [s for s in sandboxes_running(agent) if s == "drop"],
               "the orphaned sandbox to be removed")  # fmt: skip
    after = container_state(server, ns, "keep")
    assert after["containerID"] == before["containerID"] and after["restartCount"] == 0
    assert runc_processes(marker) == pids  # the very same process: not restarted
    server.kubectl("wait", "-n", ns, "pod/keep", "--for=condition=Ready", "--timeout=30s")
    # A pod that had finished is not run again by the new agent.
    assert container_state(server, ns, "once") == finished
    assert server.kubectl("logs", "-n", ns, "once").stdout == "ran\n"
    assert get_pod(server, ns, "once")["status"]["phase"] == "Succeeded"


def sandboxes_running(agent: Agent) -> list[str]:
    """Pod names with a sandbox, read from the runtime's records (the agent holds the lock)."""
    names = []
    for d in (agent.data_dir / "runtime" / "pods").iterdir():
        try:
            names.append(json.loads((d / "sandbox.json").read_text())["config"]["name"])
        except (OSError, ValueError, KeyError):
            continue
    return names


def test_agent_killed_while_starting_pods(server: RunningServer, agent: Agent, ns: str) -> None:
    for i in range(4):
        apply_manifest(server, ns, pod_manifest(f"burst-{i}", agent.node_name, ["sleep", "3600"]))
    time.sleep(0.7)
    agent.kill()
    agent.start()
    for i in range(4):
        server.kubectl("wait", "-n", ns, f"pod/burst-{i}", "--for=condition=Ready",
                       "--timeout=60s")  # fmt: skip
    names = sorted(sandboxes_running(agent))
    assert names == [f"burst-{i}" for i in range(4)]  # one sandbox each, no orphan
    for i in range(4):
        assert container_state(server, ns, f"burst-{i}")["restartCount"] == 0
