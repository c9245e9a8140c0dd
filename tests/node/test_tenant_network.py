"""VM pods on their tenant's network, end to end on one node: the embedded agent of
`hypernetes server` attaches them (TAP in the tenant router, address from the
store-backed IPAM), kubectl shows their IPs, pods of one tenant reach each other,
another tenant with the same CIDR gets the same addresses and reaches nothing of
the first, and deleting the pods leaves no port, router namespace or lease."""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from ndhelpers import HN, apply_manifest, eventually, import_image, pod_manifest, wipe_runtime
from tests.conftest import RunningServer, start_server

from hypernetes.network import Datapath, Lease
from hypernetes.network.namespaces import list_netns
from hypernetes.node.embedded import default_node_name
from hypernetes.node.network import GonePods
from hypernetes.runtime import assets

CIDR = ipaddress.IPv4Network("10.244.0.0/24")  # every tenant's default network


@dataclass
class Platform:
    """A server with its embedded agent on a datapath tag of its own."""

    data: Path
    tag: str
    server: RunningServer | None = None
    node: str = field(default_factory=default_node_name)

    def start(self) -> RunningServer:
        os.environ["HYPERNETES_NETWORK_TAG"] = self.tag  # the server (and its agent) inherit it
        try:
            self.server = start_server(self.data, agent=True)
        finally:
            del os.environ["HYPERNETES_NETWORK_TAG"]
        server = self.server
        eventually(lambda: server.kubectl("get", "node", self.node, check=False).returncode == 0,
                   "the embedded agent's Node")  # fmt: skip
        return server


@pytest.fixture(scope="module")
def platform(busybox_archive: Path) -> Iterator[Platform]:
    if os.geteuid() != 0:
        pytest.skip("tenant networks need root")
    assets.boot_assets("hypernetes")  # built (or found cached) before the clock runs
    tmp = Path(tempfile.mkdtemp(prefix="hnnd-tn-"))
    p = Platform(tmp / "data", "t" + uuid.uuid4().hex[:5])
    p.data.mkdir()
    import_image(p.data, busybox_archive)
    try:
        p.start()
        yield p
    finally:
        if p.server is not None:
            p.server.stop()
        left = wipe_runtime(p.data)
        # The host's nftables table (the rest went with the pods, as the tests check).
        Datapath(str(p.data / "network"), tag=p.tag).teardown_all()
        shutil.rmtree(tmp, ignore_errors=True)
        assert left == 0, f"{left} sandboxes outlived their pods"


def make_tenant(server: RunningServer, tenant: str) -> str:
    """Tenant `tenant` with a namespace of its own; returns the namespace."""
    r = subprocess.run([HN, "tenant", "create", tenant, "--data-dir", str(server.data_dir)],
                       capture_output=True, text=True, timeout=90)  # fmt: skip
    assert r.returncode == 0, r.stderr
    ns = f"{tenant}-apps"
    manifest = {"apiVersion": "v1", "kind": "Namespace",
                "metadata": {"name": ns, "labels": {"hypernetes.io/tenant": tenant}}}  # fmt: skip
    server.kubectl("apply", "-f", "-", input=json.dumps(manifest))
    return ns


def run_pod(server: RunningServer, ns: str, name: str, node: str, script: str) -> None:
    pod = pod_manifest(name, node, ["sh", "-c", script], runtime="vm", grace=1)
    apply_manifest(server, ns, pod)


def pod_ip(server: RunningServer, ns: str, name: str) -> str:
    return server.kubectl("get", "pod", name, "-n", ns, "-o", "jsonpath={.status.podIP}").stdout


def sh(server: RunningServer, ns: str, pod: str, script: str) -> subprocess.CompletedProcess[str]:
    return server.kubectl("exec", "-n", ns, pod, "--", "sh", "-c", script, check=False)


def ipam_leases(server: RunningServer, tenant: str) -> list[str]:
    """Pod references of the leases in the tenant's pools (kube-system ConfigMaps)."""
    out = server.kubectl("get", "configmaps", "-n", "kube-system", "-l",
                         f"hypernetes.io/ipam-pool,hypernetes.io/tenant={tenant}",
                         "-o", "json").stdout  # fmt: skip
    refs = []
    for cm in json.loads(out)["items"]:
        doc = json.loads((cm.get("data") or {}).get("pool") or "{}")
        leases = doc.get("leases") or {}
        refs += [Lease.from_row(addr, row).pod for addr, row in leases.items()]
    return refs


def test_two_tenants_same_cidr_isolated(platform: Platform) -> None:
    server, node, tag = platform.server, platform.node, platform.tag
    assert server is not None
    a, b = (f"n{uuid.uuid4().hex[:5]}" for _ in range(2))
    ns_a, ns_b = make_tenant(server, a), make_tenant(server, b)
    listen = "echo up; while true; do nc -l -p 8080 -e echo hello-from-a2; done"
    try:
        run_pod(server, ns_a, "a1", node, "exec sleep 3600")
        run_pod(server, ns_a, "a2", node, listen)
        run_pod(server, ns_b, "b1", node, "exec sleep 3600")
        for ns, pod in ((ns_a, "a1"), (ns_a, "a2"), (ns_b, "b1")):
            server.kubectl("wait", "-n", ns, f"pod/{pod}", "--for=condition=Ready",
                           "--timeout=120s")  # fmt: skip
        ip_a1, ip_a2, ip_b1 = (pod_ip(server, ns, p)
                               for ns, p in ((ns_a, "a1"), (ns_a, "a2"), (ns_b, "b1")))  # fmt: skip
        for ip in (ip_a1, ip_a2, ip_b1):
            assert ipaddress.IPv4Address(ip) in CIDR, ip
        assert ip_a1 != ip_a2
        # Both tenants allocate from their own pool of the same range: b1 holds an
        # address a pod of tenant A holds too.
        assert ip_b1 in (ip_a1, ip_a2)
        wide = server.kubectl("get", "pods", "-n", ns_a, "-o", "wide").stdout
        assert "IP" in wide.splitlines()[0] and ip_a1 in wide and ip_a2 in wide
        # The guest has the address on its NIC.
        assert f"inet {ip_a1}/24" in sh(server, ns_a, "a1", "ip -4 addr show eth0").stdout

        # Same tenant: ICMP and TCP reach the other pod.
        ping = sh(server, ns_a, "a1", f"ping -c1 -W3 {ip_a2}")
        assert ping.returncode == 0, ping.stdout + ping.stderr
        eventually(lambda: "up" in server.kubectl("logs", "-n", ns_a, "a2").stdout, "a2 listening")
        tcp = sh(server, ns_a, "a1", f"nc -w3 {ip_a2} 8080")
        assert "hello-from-a2" in tcp.stdout, tcp.stderr

        # Tenant B: its own network works (its gateway answers)...
        gw = str(CIDR.network_address + 1)
        ping_gw = sh(server, ns_b, "b1", f"ping -c1 -W3 {gw}")
        assert ping_gw.returncode == 0, ping_gw.stdout + ping_gw.stderr
        # ...but tenant A's pod at the address B does not hold is out of reach.
        other = ip_a2 if ip_b1 == ip_a1 else ip_a1
        assert sh(server, ns_b, "b1", f"ping -c1 -W2 {other}").returncode != 0
        assert "hello-from-a2" not in sh(server, ns_b, "b1", f"nc -w2 {ip_a2} 8080").stdout
        assert "hello-from-a2" not in sh(server, ns_b, "b1", f"nc -w2 {ip_b1} 8080").stdout

        assert len(ipam_leases(server, a)) == 2 and len(ipam_leases(server, b)) == 1
        routers = list_netns(f"hn-{tag}-")
        assert len(routers) == 2, routers  # one router namespace per tenant
    finally:
        for ns in (ns_a, ns_b):
            server.kubectl("delete", "pods", "--all", "-n", ns, "--wait=true", "--timeout=90s",
                           check=False)  # fmt: skip
    # Nothing is left: no router namespace (with its TAPs), no uplink, no lease.
    eventually(lambda: list_netns(f"hn-{tag}-") == [], "the tenant routers to go", timeout=20)
    assert ipam_leases(server, a) == [] and ipam_leases(server, b) == []
    links = subprocess.run(["ip", "-d", "-o", "link"], capture_output=True, text=True).stdout
    assert not [line for line in links.splitlines() if f'hypernetes:uplink:["{tag}"' in line]
    for ns, tenant in ((ns_a, a), (ns_b, b)):
        server.kubectl("delete", "namespace", ns, "--wait=false", check=False)
        subprocess.run([HN, "tenant", "delete", tenant, "--data-dir", str(server.data_dir)],
                       capture_output=True, timeout=90)  # fmt: skip


def test_pod_of_no_tenant_keeps_loopback(platform: Platform) -> None:
    """A VM pod in a namespace without a tenant gets no interface and no pod IP."""
    server, node = platform.server, platform.node
    assert server is not None
    ns = f"nd-sys-{uuid.uuid4().hex[:5]}"
    server.kubectl("create", "namespace", ns)
    try:
        run_pod(server, ns, "sys", node, "exec sleep 3600")
        server.kubectl("wait", "-n", ns, "pod/sys", "--for=condition=Ready", "--timeout=120s")
        assert pod_ip(server, ns, "sys") == ""
        assert "eth0" not in sh(server, ns, "sys", "ip -4 addr").stdout
    finally:
        server.kubectl("delete", "namespace", ns, "--wait=true", "--timeout=90s", check=False)


def test_pod_without_ready_network_waits(platform: Platform) -> None:
    """A tenant namespace whose tenant has no Network: the pod is not started
    (no VM, no port), it waits in ContainerCreating saying why."""
    server, node, tag = platform.server, platform.node, platform.tag
    assert server is not None
    ghost = f"g{uuid.uuid4().hex[:5]}"  # a tenant label with no Tenant (so no Network)
    ns = f"{ghost}-apps"
    manifest = {"apiVersion": "v1", "kind": "Namespace",
                "metadata": {"name": ns, "labels": {"hypernetes.io/tenant": ghost}}}  # fmt: skip
    server.kubectl("apply", "-f", "-", input=json.dumps(manifest))
    try:
        run_pod(server, ns, "lost", node, "exec sleep 3600")

        def waiting() -> str:
            out = server.kubectl("get", "pod", "lost", "-n", ns, "-o",
                                 "jsonpath={.status.containerStatuses[0].state.waiting.message}",
                                 check=False).stdout  # fmt: skip
            return out if "NetworkNotReady" in out else ""

        message = eventually(waiting, "the pod to say its network is missing", timeout=30)
        assert f"network {ghost}-default of {ghost} does not exist" in message
        assert "FailedCreatePodSandBox" in server.kubectl("get", "events", "-n", ns).stdout
        assert list_netns(f"hn-{tag}-") == []
    finally:
        server.kubectl("delete", "namespace", ns, "--wait=true", "--timeout=60s", check=False)


def test_node_writes_only_ipam_configmaps(platform: Platform) -> None:
    """The node's credentials reach the IPAM pools in kube-system and nothing beside."""
    server = platform.server
    assert server is not None
    env = {**os.environ, "KUBECONFIG": str(server.data_dir / "node.kubeconfig")}

    def as_node(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["kubectl", *args], capture_output=True, text=True, env=env,
                              timeout=60)  # fmt: skip

    name = f"ipam-probe-{uuid.uuid4().hex[:5]}"
    assert as_node("create", "configmap", name, "-n", "kube-system").returncode == 0
    assert as_node("delete", "configmap", name, "-n", "kube-system").returncode == 0
    other = as_node("create", "configmap", "not-ipam", "-n", "kube-system")
    assert other.returncode == 1 and "may only write IPAM pool ConfigMaps" in other.stderr
    assert other.stderr.count("\n") == 1  # one line, as kubectl prints a Status
    elsewhere = as_node("create", "configmap", name, "-n", "default")
    assert elsewhere.returncode == 1 and "is forbidden" in elsewhere.stderr
    vnis = as_node("get", "configmap", "hypernetes-vnis", "-n", "kube-system")
    assert vnis.returncode == 1 and "is forbidden" in vnis.stderr


def test_restarted_agent_keeps_pods_on_the_network(platform: Platform) -> None:
    """The server (and its agent) restarted: the running pod keeps its VM, address
    and port; a pod started afterwards on the same network reaches it."""
    server, node, tag = platform.server, platform.node, platform.tag
    assert server is not None
    tenant = f"r{uuid.uuid4().hex[:5]}"
    ns = make_tenant(server, tenant)
    try:
        run_pod(server, ns, "old", node, "exec sleep 3600")
        server.kubectl("wait", "-n", ns, "pod/old", "--for=condition=Ready", "--timeout=120s")
        before = json.loads(server.kubectl("get", "pod", "old", "-n", ns, "-o", "json").stdout)
        server.stop()
        server = platform.start()
        server.kubectl("wait", "-n", ns, "pod/old", "--for=condition=Ready", "--timeout=60s")
        after = json.loads(server.kubectl("get", "pod", "old", "-n", ns, "-o", "json").stdout)
        old, new = (p["status"]["containerStatuses"][0] for p in (before, after))
        assert new["containerID"] == old["containerID"] and new["restartCount"] == 0
        ip = after["status"]["podIP"]
        assert ip and ip == before["status"]["podIP"]
        run_pod(server, ns, "new", node, "exec sleep 3600")
        server.kubectl("wait", "-n", ns, "pod/new", "--for=condition=Ready", "--timeout=120s")
        assert pod_ip(server, ns, "new") not in ("", ip)
        ping = sh(server, ns, "new", f"ping -c1 -W3 {ip}")
        assert ping.returncode == 0, ping.stdout + ping.stderr
    finally:
        server.kubectl("delete", "pods", "--all", "-n", ns, "--wait=true", "--timeout=90s",
                       check=False)  # fmt: skip
    eventually(lambda: list_netns(f"hn-{tag}-") == [], "the tenant router to go", timeout=20)
    assert ipam_leases(server, tenant) == []
    server.kubectl("delete", "namespace", ns, "--wait=false", check=False)
    subprocess.run([HN, "tenant", "delete", tenant, "--data-dir", str(server.data_dir)],
                   capture_output=True, timeout=90)  # fmt: skip


def test_gone_pods_rule() -> None:
    """The agent's IPAM judges a lease stale only if its pod is missing from a pod
    list made after the lease: a pod newer than the list keeps its address."""
    now = int(time.time())
    lists: list[int] = []

    def list_uids() -> set[str]:
        lists.append(1)
        return {"alive"}

    rule = GonePods("elsewhere", list_uids, max_age=60)

    def lease(uid: str, created: int) -> Lease:
        # node "n1" is not this rule's node: the local crash rules say "not stale"
        return Lease(ipaddress.IPv4Address("10.0.0.2"), uid, "n1", "active", created, "", 0, 0,
                     pod=f"ns/p/{uid}")  # fmt: skip

    assert rule.is_stale(lease("gone", now - 10))
    assert not rule.is_stale(lease("alive", now - 10))
    assert not rule.is_stale(lease("newer", now + 1))  # made after the list began
    assert len(lists) == 1  # one list per max_age, not one per lease
