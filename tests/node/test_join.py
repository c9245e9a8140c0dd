"""Joining with a token, and what a node's credentials may (not) do."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from ndhelpers import HN, Agent, create_token, import_image, pod_manifest, wipe_runtime
from tests.conftest import RunningServer


def hn(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
    return subprocess.run([HN, *args], capture_output=True,
                          text=True, env=env, timeout=60)  # fmt: skip


def as_node(server: RunningServer, agent: Agent, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KUBECONFIG": str(agent.kubeconfig)}
    return subprocess.run(["kubectl", *args], capture_output=True, text=True, env=env, timeout=60)


def test_token_is_stored_hashed(server: RunningServer) -> None:
    token = create_token(server.data_dir, "--description", "for a test")
    token_id, secret, _ = token.split(".")
    found = json.loads(server.kubectl("get", "secret", f"bootstrap-token-{token_id}", "-n",
                                      "kube-system", "-o", "json").stdout)  # fmt: skip
    values = [base64.b64decode(v).decode() for v in found["data"].values()]
    assert secret not in "".join(values)  # only its hash
    listed = hn("token", "list", "--data-dir", str(server.data_dir)).stdout
    assert token_id in listed and "for a test" in listed
    assert hn("token", "delete", token_id, "--data-dir", str(server.data_dir)).returncode == 0
    again = hn("token", "delete", token_id, "--data-dir", str(server.data_dir))
    assert again.returncode == 1 and again.stderr.strip() == f"hypernetes: no join token {token_id}"


def test_join_failures_are_one_line(server: RunningServer) -> None:
    token = create_token(server.data_dir)
    token_id, _, key = token.split(".")
    hn("token", "delete", token_id, "--data-dir", str(server.data_dir))
    with tempfile.TemporaryDirectory(prefix="hnnd-j-") as d:
        args = ("agent", "--server", server.url, "--data-dir", d, "--node-name", "x1")
        r = hn(*args, "--token", token)  # deleted: refused
        assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1
        assert "refused the join token" in r.stderr
        other = create_token(server.data_dir).split(".")
        forged = f"{other[0]}.{other[1]}.{'A' + key[1:] if key[0] != 'A' else 'B' + key[1:]}"
        r = hn(*args, "--token", forged)  # a CA key that is not the server's: we never send it
        assert r.returncode == 1 and "cannot join" in r.stderr
        r = hn(*args, "--token", "nonsense")
        assert r.returncode == 1 and "must look like" in r.stderr
        assert not (Path(d) / "node.kubeconfig").exists()


def test_node_may_only_touch_its_own(server: RunningServer, agent: Agent) -> None:
    server.kubectl("create", "namespace", "nd-restrict", check=False)
    server.kubectl("apply", "-n", "nd-restrict", "-f", "-",
                   input=pod_manifest("elsewhere", "some-other-node", ["true"]))  # fmt: skip
    try:
        who = as_node(server, agent, "auth", "whoami", "-o", "json")
        if who.returncode == 0:
            info = json.loads(who.stdout)["status"]["userInfo"]
            assert info["username"] == f"system:node:{agent.node_name}"
            assert "system:nodes" in info["groups"]
        # another node's pod: no status writes, no deletion
        r = as_node(
            server,
            agent,
            "patch",
            "pod",
            "elsewhere",
            "-n",
            "nd-restrict",
            "--subresource=status",
            "--type=merge",
            "-p",
            '{"status":{"phase":"Failed"}}',
        )
        assert r.returncode != 0 and "forbidden" in r.stderr.lower()
        r = as_node(server, agent, "delete", "pod", "elsewhere", "-n", "nd-restrict")
        assert r.returncode != 0 and "forbidden" in r.stderr.lower()
        # another Node, Secrets, creating pods: refused
        r = as_node(server, agent, "label", "node", agent.node_name, "x=y", "--overwrite")
        assert r.returncode == 0
        r = as_node(server, agent, "get", "secrets", "-n", "kube-system")
        assert r.returncode != 0 and "forbidden" in r.stderr.lower()
        r = as_node(server, agent, "run", "sneaky", "--image=x", "-n", "nd-restrict")
        assert r.returncode != 0 and "forbidden" in r.stderr.lower()
        other = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "not-me"}}
        r = subprocess.run(["kubectl", "create", "-f", "-"], input=json.dumps(other),
                           capture_output=True, text=True,
                           env={**os.environ, "KUBECONFIG": str(agent.kubeconfig)})  # fmt: skip
        assert r.returncode != 0 and "only its own" in r.stderr
    finally:
        server.kubectl("delete", "pod", "elsewhere", "-n", "nd-restrict", "--grace-period=0",
                       "--force", check=False)  # fmt: skip
        server.kubectl("delete", "namespace", "nd-restrict", "--wait=false", check=False)


def test_serving_certificate_names_the_node(server: RunningServer, agent: Agent) -> None:
    """The stream server's certificate names the node and comes from a CA that only the
    API server trusts (not the cluster CA that kubectl trusts)."""
    from cryptography import x509

    cert = x509.load_pem_x509_certificate((agent.data_dir / "node-serving.crt").read_bytes())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == [agent.node_name]
    cluster_ca = x509.load_pem_x509_certificate((server.data_dir / "ca.crt").read_bytes())
    serving_ca = x509.load_pem_x509_certificate(
        (server.data_dir / "node-serving-ca.crt").read_bytes()
    )
    assert cert.issuer == serving_ca.subject != cluster_ca.subject
    assert oct((agent.data_dir / "node-serving.key").stat().st_mode & 0o777) == "0o600"


def test_second_node_joins_and_serves_its_pods(
    server: RunningServer, agent: Agent, busybox_archive: Path
) -> None:
    """Two agents, one server: each runs the pods bound to it; streams reach both."""
    data = Path(tempfile.mkdtemp(prefix="hnnd-"))
    import_image(data, busybox_archive)
    second = Agent(data, server.url, create_token(server.data_dir), f"{agent.node_name}-b",
                   data.with_suffix(".log"))  # fmt: skip
    second.start()
    server.kubectl("create", "namespace", "nd-two", check=False)
    try:
        for a, pod in ((agent, "one"), (second, "two")):
            manifest = pod_manifest(pod, a.node_name, ["sh", "-c", f"echo {pod}; sleep 3600"])
            server.kubectl("apply", "-n", "nd-two", "-f", "-", input=manifest)
        for pod in ("one", "two"):
            server.kubectl("wait", "-n", "nd-two", f"pod/{pod}", "--for=condition=Ready",
                           "--timeout=60s")  # fmt: skip
            assert server.kubectl("logs", "-n", "nd-two", pod).stdout == f"{pod}\n"
        wide = server.kubectl("get", "pods", "-n", "nd-two", "-o", "wide").stdout
        assert agent.node_name in wide and second.node_name in wide
        for pod in ("one", "two"):
            server.kubectl("delete", "pod", pod, "-n", "nd-two", "--timeout=30s")
    finally:
        second.stop()
        left = wipe_runtime(data)
        shutil.rmtree(data, ignore_errors=True)
        second.log.unlink(missing_ok=True)
        server.kubectl("delete", "node", second.node_name, check=False)
        server.kubectl("delete", "namespace", "nd-two", "--wait=false", check=False)
    assert left == 0
