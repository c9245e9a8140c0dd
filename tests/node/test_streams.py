"""Logs, exec and attach through the API server with the real kubectl (runc pods),
the Python client's v4 WebSocket exec, and the refusals: RBAC, and the agent's
stream server for anyone but the API server."""

from __future__ import annotations

import json
import os
import select
import ssl
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator

import pytest
from ndhelpers import Agent, eventually, pod_manifest
from tests.conftest import RunningServer


@pytest.fixture(scope="module")
def ns(server: RunningServer, agent: Agent) -> Iterator[str]:
    name = f"nd-{uuid.uuid4().hex[:6]}"
    server.kubectl("create", "namespace", name)
    script = "i=0; while true; do i=$((i+1)); echo line $i; echo err $i >&2; sleep 0.2; done"
    server.kubectl(
        "apply",
        "-n",
        name,
        "-f",
        "-",
        input=pod_manifest("talk", agent.node_name, ["sh", "-c", script]),
    )
    server.kubectl("apply", "-n", name, "-f", "-", input=pod_manifest(
        "cat", agent.node_name, ["sh", "-c", "echo ready; while read l; do echo got $l; done"],
        extra={"stdin": True}))  # fmt: skip
    server.kubectl(
        "apply",
        "-n",
        name,
        "-f",
        "-",
        input=pod_manifest(
            "crashy", agent.node_name, ["sh", "-c", "echo run at $(date +%s%N); sleep 1; exit 1"]
        ),
    )
    for pod in ("talk", "cat"):
        server.kubectl("wait", "-n", name, f"pod/{pod}", "--for=condition=Ready", "--timeout=60s")
    yield name
    server.kubectl("delete", "pods", "--all", "-n", name, "--wait=true", "--timeout=60s",
                   check=False)  # fmt: skip
    server.kubectl("delete", "namespace", name, "--wait=false", check=False)


def test_logs(server: RunningServer, ns: str) -> None:
    time.sleep(1)
    out = server.kubectl("logs", "-n", ns, "talk").stdout.splitlines()
    assert out[0] == "line 1" and "err 1" in out
    tail = server.kubectl("logs", "-n", ns, "talk", "--tail=2").stdout.splitlines()
    assert len(tail) == 2
    since = server.kubectl("logs", "-n", ns, "talk", "--since=1s").stdout.splitlines()
    assert 0 < len(since) < len(out) + 20 and "line 1" not in since
    stamped = server.kubectl("logs", "-n", ns, "talk", "--tail=1", "--timestamps").stdout
    assert (
        stamped[:4].isdigit() and stamped.split(" ", 1)[1].strip() in {"line", "err"}
    ) or "Z " in stamped
    assert server.kubectl("logs", "-n", ns, "talk", "-c", "main", "--tail=1").stdout
    bad = server.kubectl("logs", "-n", ns, "talk", "-c", "nope", check=False)
    assert bad.returncode != 0 and "container nope is not valid" in bad.stderr


def test_logs_follow(server: RunningServer, ns: str) -> None:
    env_cmd = ["kubectl", "logs", "-f", "-n", ns, "talk", "--tail=1"]
    proc = subprocess.Popen(
        env_cmd,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "KUBECONFIG": str(server.kubeconfig)},
    )
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline() for _ in range(6)]  # new lines keep coming
        numbers = {int(line.split()[1]) for line in lines if line.startswith("line")}
        assert len(numbers) >= 2
    finally:
        proc.terminate()
        proc.wait(10)


def test_logs_previous(server: RunningServer, ns: str) -> None:
    def restarted() -> bool:
        pod = json.loads(server.kubectl("get", "pod", "crashy", "-n", ns, "-o", "json").stdout)
        return (pod["status"].get("containerStatuses") or [{}])[0].get("restartCount", 0) >= 1

    eventually(restarted, "a restart")
    prev = server.kubectl("logs", "-n", ns, "crashy", "--previous").stdout
    assert prev.startswith("run at ")
    none = server.kubectl("logs", "-n", ns, "talk", "--previous", check=False)
    assert none.returncode != 0 and "previous terminated container" in none.stderr


def test_exec(server: RunningServer, ns: str) -> None:
    r = server.kubectl("exec", "-n", ns, "talk", "--", "sh", "-c", "echo out; echo err >&2")
    assert r.stdout == "out\n" and "err" in r.stderr
    r = server.kubectl("exec", "-n", ns, "talk", "--", "sh", "-c", "exit 5", check=False)
    assert r.returncode == 5
    r = server.kubectl("exec", "-i", "-n", ns, "talk", "--", "sh", "-c", "tr a-z A-Z",
                       input="hello stdin\n")  # fmt: skip
    assert r.stdout == "HELLO STDIN\n"
    r = server.kubectl("exec", "-n", ns, "talk", "--", "/nonexistent", check=False)
    assert r.returncode != 0


def run_on_pty(argv: list[str], env: dict[str, str]) -> tuple[int, bytes]:
    """Runs a command on a pseudo-terminal (as a user's shell would); (exit code, output)."""
    master, slave = os.openpty()
    proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, close_fds=True,
                            env=env)  # fmt: skip
    os.close(slave)
    out = b""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(master, 4096)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
        elif proc.poll() is not None:
            break
    os.close(master)
    return proc.wait(10), out


def test_exec_tty_refused_on_runc(server: RunningServer, ns: str) -> None:
    """runc pods have no TTY exec: kubectl shows the agent's reason in one line."""
    env = {**os.environ, "KUBECONFIG": str(server.kubeconfig), "TERM": "xterm"}
    code, out = run_on_pty(["kubectl", "exec", "-it", "-n", ns, "talk", "--", "sh"], env)
    assert code != 0 and b"tty exec is not supported on runc pods" in out


def test_attach(server: RunningServer, ns: str) -> None:
    proc = subprocess.Popen(
        ["kubectl", "attach", "-i", "-n", ns, "cat"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "KUBECONFIG": str(server.kubeconfig)},
    )  # fmt: skip
    try:
        assert proc.stdin is not None and proc.stdout is not None
        time.sleep(1.5)
        proc.stdin.write("ping\n")
        proc.stdin.flush()
        line = proc.stdout.readline()
        assert line == "got ping\n"
    finally:
        proc.kill()
        proc.wait(10)


def test_python_client_v4_exec(server: RunningServer, ns: str) -> None:
    from kubernetes import client, config
    from kubernetes.stream import stream

    api = client.CoreV1Api(config.new_client_from_config(str(server.kubeconfig)))
    out = stream(api.connect_get_namespaced_pod_exec, "talk", ns,
                 command=["sh", "-c", "echo via-v4"], stderr=True, stdin=False, stdout=True,
                 tty=False)  # fmt: skip
    assert out.strip() == "via-v4"


def test_streams_need_rbac(server: RunningServer, ns: str) -> None:
    # A user without RBAC grants: 403 for exec and logs (the server judges, not the agent).
    server.kubectl("create", "serviceaccount", "nobody", "-n", ns)
    # It may read pods (kubectl reads the pod first), but not their logs nor exec into them.
    server.kubectl("create", "role", "pod-reader", "--verb=get", "--resource=pods", "-n", ns)
    server.kubectl("create", "rolebinding", "nobody-reads", "--role=pod-reader",
                   f"--serviceaccount={ns}:nobody", "-n", ns)  # fmt: skip
    token = server.kubectl("create", "token", "nobody", "-n", ns).stdout.strip()
    r = server.kubectl("--token", token, "--user=", "exec", "-n", ns, "talk", "--", "true",
                       check=False)  # fmt: skip
    if "Unauthorized" in r.stderr:
        pytest.skip("service-account tokens are not authenticated on this server yet")
    assert r.returncode != 0 and "forbidden" in r.stderr.lower()
    assert 'cannot create resource "pods/exec"' in r.stderr
    r = server.kubectl("--token", token, "logs", "-n", ns, "talk", check=False)
    assert r.returncode != 0 and 'cannot get resource "pods/log"' in r.stderr


def test_agent_refuses_other_clients(server: RunningServer, agent: Agent) -> None:
    node = json.loads(server.kubectl("get", "node", agent.node_name, "-o", "json").stdout)
    port = node["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"]
    assert port > 0
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    # The admin's own client certificate is signed by the same CA, but is not the server's.
    ctx.load_cert_chain(server.data_dir / "admin.crt", server.data_dir / "admin.key")
    url = f"https://127.0.0.1:{port}/containerLogs/x/y/z"
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(url, context=ctx, timeout=10)
    assert err.value.code == 403
    bare = ssl.create_default_context()
    bare.check_hostname = False
    bare.verify_mode = ssl.CERT_NONE
    with pytest.raises((urllib.error.URLError, ssl.SSLError, ConnectionError)):
        urllib.request.urlopen(url, context=bare, timeout=10)  # no certificate: no handshake
