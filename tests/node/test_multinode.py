"""Two nodes, one server, end to end: each `hypernetes agent` runs in a network
namespace of its own acting as a host (a veth to a bridge in the test's namespace,
where the API server listens), joined with a token from `hypernetes token create`.
Tenant A's VM pods on the two nodes reach each other over the tenant network
(VXLAN between the hosts); tenant B's pod, same CIDR, reaches neither; and after
the pods go no router namespace, uplink, lease, VM or host link is left."""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from ndhelpers import HN, Agent, create_token, eventually, import_image, wipe_runtime
from test_tenant_network import ipam_leases, make_tenant, pod_ip, run_pod, sh
from tests.conftest import RunningServer, start_server

from hypernetes.network import Datapath, nft
from hypernetes.network.namespaces import list_netns
from hypernetes.runtime import assets


def ip(*args: str, netns: str | None = None) -> None:
    cmd = ["ip", *(["-n", netns] if netns else []), *args]
    subprocess.run(cmd, check=True, capture_output=True, timeout=10)


@dataclass
class HostAgent(Agent):
    """An agent process inside network namespace `netns` (only its network: it shares
    the test's mounts, so the router namespaces it makes are visible here), with a
    datapath tag of its own."""

    netns: str = ""
    tag: str = ""

    def start(self) -> None:
        cmd = ["nsenter", f"--net=/run/netns/{self.netns}", HN, "agent",
               "--data-dir", str(self.data_dir), "--server", self.server, "--token", self.token,
               "--node-name", self.node_name, "--heartbeat", "2", "--stream-port", "0"]  # fmt: skip
        env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
        env["HYPERNETES_NETWORK_TAG"] = self.tag
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(cmd, stdout=log, stderr=log, env=env)


@dataclass
class Cluster:
    server: RunningServer
    agents: list[HostAgent]
    subnet: str


def _underlay(run: str, subnet: str, hosts: int, made: list[str]) -> None:
    """A bridge here (the switch, with .254) and `hosts` namespaces wired to it, each
    added to `made` as soon as it exists (so a failure half-way leaves nothing)."""
    bridge = f"hnmb{run}"
    ip("link", "add", bridge, "type", "bridge")
    ip("addr", "add", f"{subnet}.254/24", "dev", bridge)
    ip("link", "set", bridge, "up")
    for i in range(1, hosts + 1):
        ns, peer = f"hnmn-{run}-{i}", f"hnmv{run}{i}"
        ip("netns", "add", ns)
        made.append(ns)
        ip("link", "add", peer, "type", "veth", "peer", "name", "und0", "netns", ns)
        ip("link", "set", peer, "master", bridge, "up")
        ip("addr", "add", f"{subnet}.{i}/24", "dev", "und0", netns=ns)
        ip("link", "set", "und0", "up", netns=ns)
        ip("link", "set", "lo", "up", netns=ns)


def _remove_underlay(run: str, namespaces: list[str]) -> None:
    for ns in namespaces:  # its veth (and the peer on the bridge) and nftables go with it
        subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=10)
    subprocess.run(["ip", "link", "del", f"hnmb{run}"], capture_output=True, timeout=10)


@pytest.fixture(scope="module")
def cluster(busybox_archive: Path) -> Iterator[Cluster]:
    if os.geteuid() != 0:
        pytest.skip("network namespaces and tenant networks need root")
    assets.boot_assets("hypernetes")  # built (or found cached) before the clock runs
    run = uuid.uuid4().hex[:4]
    subnet = f"198.18.{random.randrange(100, 200)}"
    tmp = Path(tempfile.mkdtemp(prefix="hnnd-mn-"))
    hosts: list[str] = []
    agents: list[HostAgent] = []
    server: RunningServer | None = None
    try:
        _underlay(run, subnet, 2, hosts)
        (tmp / "srv").mkdir()
        server = srv = start_server(tmp / "srv" / "data", "--listen", f"{subnet}.254:0")
        for i, ns in enumerate(hosts, start=1):
            data = tmp / f"n{i}"
            data.mkdir()
            import_image(data, busybox_archive)
            a = HostAgent(data, server.url, create_token(server.data_dir), f"mn{run}-{i}",
                          tmp / f"n{i}.log", netns=ns, tag=f"m{run}{i}")  # fmt: skip
            a.start()
            agents.append(a)
        eventually(lambda: len(_internal_ips(srv)) == 2, f"both nodes to join (logs in {tmp})")
        yield Cluster(server, agents, subnet)
    finally:
        for a in agents:  # first: an agent whose server is gone takes long to stop
            a.stop()
        if server is not None:
            server.stop()
        left, tables = 0, set[tuple[str, str]]()
        for a in agents:
            left += wipe_runtime(a.data_dir)
            host = f"/run/netns/{a.netns}"
            Datapath(str(a.data_dir / "network"), tag=a.tag, host_netns=host).teardown_all()
            tables |= nft.tables(host)
        _remove_underlay(run, hosts)
        stray = [n for n in list_netns() if n.startswith((f"hnmn-{run}", f"hn-m{run}"))]
        if os.environ.get("HNND_KEEP_LOGS"):
            print(f"logs kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
        assert left == 0, f"{left} sandboxes outlived their pods"
        assert tables == set(), tables
        assert stray == [], stray


def test_tenant_pods_reach_each_other_across_nodes(cluster: Cluster) -> None:
    server, (n1, n2) = cluster.server, cluster.agents
    # Each node's InternalIP is its host's underlay address (the VXLAN endpoint).
    assert _internal_ips(server) == {
        n1.node_name: f"{cluster.subnet}.1",
        n2.node_name: f"{cluster.subnet}.2",
    }
    a, b = (f"m{uuid.uuid4().hex[:5]}" for _ in range(2))
    ns_a, ns_b = make_tenant(server, a), make_tenant(server, b)
    pods = ((ns_a, "a1", n1), (ns_a, "a2", n2), (ns_b, "b1", n1))
    try:
        for ns, name, node in pods:
            run_pod(server, ns, name, node.node_name, "exec sleep 3600")
        for ns, name, _ in pods:
            server.kubectl("wait", "-n", ns, f"pod/{name}", "--for=condition=Ready",
                           "--timeout=90s")  # fmt: skip
        ip_a1, ip_a2, ip_b1 = (pod_ip(server, ns, name) for ns, name, _ in pods)
        assert ip_a1 and ip_a2 and ip_a1 != ip_a2
        assert ip_b1 in (ip_a1, ip_a2)  # tenant B's pool hands out the same addresses
        wide = server.kubectl("get", "pods", "-n", ns_a, "-o", "wide").stdout
        assert n1.node_name in wide and n2.node_name in wide

        # Same tenant, other node: over VXLAN between the two hosts.
        ping = sh(server, ns_a, "a1", f"ping -c1 -W3 {ip_a2}")
        assert ping.returncode == 0, ping.stdout + ping.stderr
        back = sh(server, ns_a, "a2", f"ping -c1 -W3 {ip_a1}")
        assert back.returncode == 0, back.stdout + back.stderr
        # Tenant B, on a1's node: neither of tenant A's pods answers.
        other = ip_a2 if ip_b1 == ip_a1 else ip_a1
        assert sh(server, ns_b, "b1", f"ping -c1 -W2 {other}").returncode != 0
        gw = sh(server, ns_b, "b1", "ip route | grep default | cut -d' ' -f3").stdout.strip()
        assert gw and sh(server, ns_b, "b1", f"ping -c1 -W3 {gw}").returncode == 0  # B's net works
    finally:
        for ns in (ns_a, ns_b):
            server.kubectl("delete", "pods", "--all", "-n", ns, "--wait=true", "--timeout=60s",
                           check=False)  # fmt: skip
    # Nothing is left on either host: no router namespace, uplink or nftables table.
    routers = (f"hn-{n1.tag}-", f"hn-{n2.tag}-")
    eventually(lambda: not [n for n in list_netns() if n.startswith(routers)],
               "the tenant routers to go", timeout=20)  # fmt: skip
    for agent in (n1, n2):
        links = subprocess.run(["ip", "-n", agent.netns, "-o", "link"], capture_output=True,
                               text=True, check=True).stdout  # fmt: skip
        assert [line.split(":")[1].strip().split("@")[0] for line in links.splitlines()] == [
            "lo", "und0"]  # fmt: skip
        # The host's own table stays while its agent runs (the fixture checks it goes).
        assert nft.tables(f"/run/netns/{agent.netns}") <= {("inet", f"hypernetes_{agent.tag}")}
    assert ipam_leases(server, a) == [] and ipam_leases(server, b) == []
    for ns, tenant in ((ns_a, a), (ns_b, b)):
        server.kubectl("delete", "namespace", ns, "--wait=false", check=False)
        subprocess.run([HN, "tenant", "delete", tenant, "--data-dir", str(server.data_dir)],
                       capture_output=True, timeout=90)  # fmt: skip


def _internal_ips(server: RunningServer) -> dict[str, str]:
    """Node name -> its InternalIP, as the API has it."""
    out = {}
    for node in json.loads(server.kubectl("get", "nodes", "-o", "json").stdout)["items"]:
        addresses: list[dict[str, Any]] = (node.get("status") or {}).get("addresses") or []
        for a in addresses:
            if a["type"] == "InternalIP":
                out[node["metadata"]["name"]] = str(a["address"])
    return out
