"""The node agent with runc pods: registration, heartbeat, pod lifecycle and status,
restart policy and back-off, image pull failures, graceful deletion."""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from typing import Any

from ndhelpers import HN, Agent, apply_manifest, container_state, eventually, get_pod, pod_manifest
from tests.conftest import RunningServer


def test_node_registers_with_capacity_and_lease(server: RunningServer, agent: Agent) -> None:
    def node() -> dict[str, Any] | None:
        r = server.kubectl("get", "node", agent.node_name, "-o", "json", check=False)
        return json.loads(r.stdout) if r.returncode == 0 else None

    n = eventually(node, "the Node to register")
    status = n["status"]
    assert set(status["capacity"]) >= {"cpu", "memory", "pods", "ephemeral-storage"}
    assert int(status["allocatable"]["pods"]) == 110
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "True"
    assert {a["type"] for a in status["addresses"]} == {"InternalIP", "Hostname"}
    table = server.kubectl("get", "nodes").stdout
    assert agent.node_name in table and "Ready" in table
    lease = json.loads(server.kubectl("get", "lease", agent.node_name, "-n",
                                      "kube-node-lease", "-o", "json").stdout)  # fmt: skip
    first = lease["spec"]["renewTime"]

    def renewed() -> bool:
        r = server.kubectl("get", "lease", agent.node_name, "-n", "kube-node-lease",
                           "-o", "jsonpath={.spec.renewTime}")  # fmt: skip
        return r.stdout != first

    eventually(renewed, "the Lease to be renewed", timeout=15)


def test_pod_runs_and_reports_status(server: RunningServer, agent: Agent, ns: str) -> None:
    manifest = pod_manifest("web", agent.node_name, ["sh", "-c", "echo hello; sleep 3600"])
    apply_manifest(server, ns, manifest)
    server.kubectl("wait", "-n", ns, "pod/web", "--for=condition=Ready", "--timeout=60s")
    pod = get_pod(server, ns, "web")
    st = pod["status"]
    assert st["phase"] == "Running" and st["podIP"] and st["hostIP"] and st["startTime"]
    types = {c["type"]: c["status"] for c in st["conditions"]}
    assert types["PodScheduled"] == types["Initialized"] == types["ContainersReady"] == "True"
    cs = st["containerStatuses"][0]
    assert cs["restartCount"] == 0 and cs["ready"] and "running" in cs["state"]
    assert cs["containerID"].startswith("runc://") and cs["imageID"].startswith("sha256:")
    out = server.kubectl("get", "pods", "-n", ns, "-o", "wide").stdout
    assert "Running" in out and agent.node_name in out


def test_crashing_container_backs_off(server: RunningServer, agent: Agent, ns: str) -> None:
    manifest = pod_manifest("crash", agent.node_name, ["sh", "-c", "echo dying; exit 3"])
    apply_manifest(server, ns, manifest)

    def backing_off() -> dict[str, Any] | None:
        cs = container_state(server, ns, "crash")
        waiting = cs.get("state", {}).get("waiting", {})
        return cs if waiting.get("reason") == "CrashLoopBackOff" else None

    cs = eventually(backing_off, "CrashLoopBackOff")
    assert cs["restartCount"] >= 1
    last = cs["lastState"]["terminated"]
    assert (last["exitCode"], last["reason"]) == (3, "Error")
    assert "CrashLoopBackOff" in server.kubectl("get", "pod", "crash", "-n", ns).stdout
    # back-off: 10 s after the second exit, not a tight loop
    count = cs["restartCount"]
    time.sleep(4)
    assert container_state(server, ns, "crash")["restartCount"] <= count + 1
    assert get_pod(server, ns, "crash")["status"]["phase"] == "Running"


def test_missing_image_pull_errors(server: RunningServer, agent: Agent, ns: str) -> None:
    manifest = pod_manifest("noimg", agent.node_name, ["true"], image="127.0.0.1:9/nope/none:1")
    apply_manifest(server, ns, manifest)
    seen: set[str] = set()

    def both() -> bool:
        line = server.kubectl("get", "pod", "noimg", "-n", ns, "--no-headers").stdout
        seen.update(r for r in ("ErrImagePull", "ImagePullBackOff") if r in line)
        return seen == {"ErrImagePull", "ImagePullBackOff"}

    eventually(both, "ErrImagePull then ImagePullBackOff", interval=0.2)
    assert get_pod(server, ns, "noimg")["status"]["phase"] == "Pending"
    logs = server.kubectl("logs", "-n", ns, "noimg", check=False)
    assert logs.returncode != 0
    assert 'container "main" in pod "noimg" is waiting to start: ' in logs.stderr
    events = server.kubectl("get", "events", "-n", ns).stdout
    assert "Failed to pull image" in events


def test_restart_policies(server: RunningServer, agent: Agent, ns: str) -> None:
    apply_manifest(server, ns, pod_manifest(
        "done", agent.node_name, ["sh", "-c", "exit 0"], restart="Never"))  # fmt: skip
    apply_manifest(server, ns, pod_manifest(
        "fails", agent.node_name, ["sh", "-c", "exit 7"], restart="Never"))  # fmt: skip
    apply_manifest(server, ns, pod_manifest(
        "retry", agent.node_name,
        ["sh", "-c", "test -f /tmp/x || { touch /tmp/x; exit 1; }; exit 1"],
        restart="OnFailure"))  # fmt: skip

    def phase(name: str) -> str:
        return str(get_pod(server, ns, name).get("status", {}).get("phase"))

    eventually(lambda: phase("done") == "Succeeded", "Succeeded")
    eventually(lambda: phase("fails") == "Failed", "Failed")
    term = container_state(server, ns, "done")["state"]["terminated"]
    assert term["reason"] == "Completed" and term["exitCode"] == 0
    term = container_state(server, ns, "fails")["state"]["terminated"]
    assert term["reason"] == "Error" and term["exitCode"] == 7
    eventually(lambda: container_state(server, ns, "retry").get("restartCount", 0) >= 1,
               "an OnFailure restart")  # fmt: skip
    assert "Completed" in server.kubectl("get", "pod", "done", "-n", ns).stdout


def test_graceful_deletion(server: RunningServer, agent: Agent, ns: str) -> None:
    script = "trap 'echo bye; exit 0' TERM; while true; do sleep 0.1; done"
    apply_manifest(
        server, ns, pod_manifest("polite", agent.node_name, ["sh", "-c", script], grace=20)
    )
    apply_manifest(
        server,
        ns,
        pod_manifest(
            "stubborn", agent.node_name, ["sh", "-c", "trap '' TERM; sleep 3600"], grace=2
        ),
    )
    for name in ("polite", "stubborn"):
        server.kubectl("wait", "-n", ns, f"pod/{name}", "--for=condition=Ready", "--timeout=60s")
    t0 = time.monotonic()
    server.kubectl("delete", "pod", "polite", "-n", ns, "--timeout=30s")
    assert time.monotonic() - t0 < 10  # it exits at SIGTERM, long before its 20 s grace
    t0 = time.monotonic()
    server.kubectl("delete", "pod", "stubborn", "-n", ns, "--timeout=30s")
    assert time.monotonic() - t0 >= 1.5  # killed only after its 2 s grace
    out = server.kubectl("get", "pods", "-n", ns, "-o", "name").stdout
    assert out.strip() == ""


def test_runc_refused_in_tenant_namespace(server: RunningServer, agent: Agent) -> None:
    """runc shares the host kernel: a tenant's pod never gets it, whatever it asks."""
    tenant = f"t{uuid.uuid4().hex[:6]}"
    ns = f"{tenant}-apps"
    r = subprocess.run([HN, "tenant", "create", tenant, "--data-dir", str(server.data_dir)],
                       capture_output=True, text=True, timeout=90)  # fmt: skip
    assert r.returncode == 0, r.stderr
    try:
        labels = {"hypernetes.io/tenant": tenant}
        manifest = {"apiVersion": "v1", "kind": "Namespace",
                    "metadata": {"name": ns, "labels": labels}}  # fmt: skip
        server.kubectl("apply", "-f", "-", input=json.dumps(manifest))
        pod = pod_manifest("sneaky", agent.node_name, ["sleep", "3600"])  # asks for runc
        apply_manifest(server, ns, pod)

        def refused() -> str:
            cs = container_state(server, ns, "sneaky")
            return str(cs.get("state", {}).get("waiting", {}).get("message", ""))

        message = eventually(lambda: "not allowed" in refused() and refused(), "a refusal")
        assert "runtime runc is not allowed in a tenant's namespace" in message
        assert get_pod(server, ns, "sneaky")["status"]["phase"] == "Pending"
        events = server.kubectl("get", "events", "-n", ns).stdout
        assert "FailedCreatePodSandBox" in events
    finally:
        server.kubectl("delete", "pod", "sneaky", "-n", ns, "--timeout=30s", check=False)
        server.kubectl("delete", "namespace", ns, "--wait=false", check=False)
        subprocess.run([HN, "tenant", "delete", tenant, "--data-dir", str(server.data_dir)],
                       capture_output=True, timeout=90)  # fmt: skip


def test_environment_from_config_and_secrets(server: RunningServer, agent: Agent, ns: str) -> None:
    server.kubectl("create", "configmap", "cfg", "-n", ns, "--from-literal=greeting=hello",
                   "--from-literal=colour=blue")  # fmt: skip
    server.kubectl("create", "secret", "generic", "creds", "-n", ns,
                   "--from-literal=password=p4ss")  # fmt: skip
    server.kubectl("create", "secret", "generic", "unrelated", "-n", ns, "--from-literal=x=y")
    env = [
        {"name": "A", "value": "x"},
        {"name": "B", "value": "$(A)-y"},
        {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "GREETING",
         "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "greeting"}}},
        {"name": "PASSWORD",
         "valueFrom": {"secretKeyRef": {"name": "creds", "key": "password"}}},
    ]  # fmt: skip
    extra = {"env": env, "envFrom": [{"prefix": "CM_", "configMapRef": {"name": "cfg"}}]}
    apply_manifest(
        server,
        ns,
        pod_manifest("envy", agent.node_name, ["sh", "-c", "env | sort; sleep 3600"], extra=extra),
    )
    server.kubectl("wait", "-n", ns, "pod/envy", "--for=condition=Ready", "--timeout=60s")
    lines = set(server.kubectl("logs", "-n", ns, "envy").stdout.splitlines())
    assert {"A=x", "B=x-y", "POD=envy", "GREETING=hello", "PASSWORD=p4ss",
            "CM_greeting=hello", "CM_colour=blue"} <= lines  # fmt: skip
    # The node reads what its pods use, and nothing else.
    node_env = {**os.environ, "KUBECONFIG": str(agent.kubeconfig)}
    r = subprocess.run(["kubectl", "get", "secret", "creds", "-n", ns], capture_output=True,
                       text=True, env=node_env)  # fmt: skip
    assert r.returncode == 0
    r = subprocess.run(["kubectl", "get", "secret", "unrelated", "-n", ns], capture_output=True,
                       text=True, env=node_env)  # fmt: skip
    assert r.returncode != 0 and "forbidden" in r.stderr.lower()


def test_missing_config_waits_then_starts(server: RunningServer, agent: Agent, ns: str) -> None:
    env = [{"name": "V", "valueFrom": {"configMapKeyRef": {"name": "later", "key": "v"}}}]
    apply_manifest(
        server,
        ns,
        pod_manifest(
            "patient", agent.node_name, ["sh", "-c", "echo V=$V; sleep 3600"], extra={"env": env}
        ),
    )

    def waiting_reason() -> str:
        state = container_state(server, ns, "patient").get("state", {})
        return str(state.get("waiting", {}).get("reason", ""))

    eventually(lambda: waiting_reason() == "CreateContainerConfigError", "a config error")
    message = container_state(server, ns, "patient")["state"]["waiting"]["message"]
    assert message == 'configmap "later" not found'
    server.kubectl("create", "configmap", "later", "-n", ns, "--from-literal=v=now")
    server.kubectl("wait", "-n", ns, "pod/patient", "--for=condition=Ready", "--timeout=30s")
    assert server.kubectl("logs", "-n", ns, "patient").stdout == "V=now\n"
