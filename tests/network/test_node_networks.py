"""The node-side reconciler on three simulated hosts, driven by objects from a real API server.

Each host is a namespace on one underlay switch with its own datapath
instance; all share the API server, whose store holds the IPAM pools
(`StoreBackend`) and whose network controller makes the Networks Ready with
VNIs. The test plays each node agent: it attaches its pods (as the pod sync
loop will), reports their IPs in pod status, and calls `NodeNetworks.sync`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from apihelpers import ThreadedAPI, create_pod, make_namespace, make_tenant, pod
from nethelpers import RUN, Netns, NetnsFactory, leftovers, tcp_request, tcp_server

from hypernetes.client import NAMESPACES, NETWORKS, NODES, PODS
from hypernetes.controllers.network import NetworkController
from hypernetes.network import nft
from hypernetes.network import resource as net
from hypernetes.network.datapath import Datapath
from hypernetes.network.ipam import IPAM
from hypernetes.network.ipam_store import StoreBackend
from hypernetes.network.manager import NetworkManager
from hypernetes.network.model import Attachment
from hypernetes.network.namespaces import netlink
from hypernetes.network.node import NodeNetworks, SyncReport


@dataclass
class Node:
    name: str
    ns: Netns
    manager: NetworkManager
    reconciler: NodeNetworks


@pytest.fixture
def api(tmp_path: Path) -> Iterator[ThreadedAPI]:
    threaded = ThreadedAPI(tmp_path / "data")
    try:
        yield threaded
    finally:
        threaded.close()


def _switch(netns: NetnsFactory, hosts: int) -> list[Netns]:
    switch = netns("switch")
    with netlink(switch.path) as ipr:
        ipr.link("add", ifname="br0", kind="bridge")
        br = ipr.link_lookup(ifname="br0")[0]
        ipr.link("set", index=br, state="up")
    made = []
    for i in range(1, hosts + 1):
        ns = netns(f"n{i}")
        with netlink(ns.path) as ipr:
            fd = os.open(switch.path, os.O_RDONLY)
            try:
                ipr.link("add", ifname="und0", kind="veth",
                         peer={"ifname": f"n{i}", "net_ns_fd": fd})  # fmt: skip
            finally:
                os.close(fd)
            idx = ipr.link_lookup(ifname="und0")[0]
            ipr.addr("add", index=idx, address=f"192.0.2.{i}", prefixlen=24)
            ipr.link("set", index=idx, state="up")
        with netlink(switch.path) as ipr:
            idx = ipr.link_lookup(ifname=f"n{i}")[0]
            ipr.link("set", index=idx, master=br, state="up")
        made.append(ns)
    return made


@pytest.fixture
def nodes(api: ThreadedAPI, netns: NetnsFactory, tmp_path: Path) -> Iterator[list[Node]]:
    admin = api.admin
    made = []
    for i, ns in enumerate(_switch(netns, 3), start=1):
        name = f"n{i}"
        api.run(admin.create(NODES, {"metadata": {"name": name}}))
        addresses = [{"type": "InternalIP", "address": f"192.0.2.{i}"}]
        api.run(admin.patch(NODES, name, {"status": {"addresses": addresses}},
                            subresource="status"))  # fmt: skip
        datapath = Datapath(str(tmp_path / name), tag=f"{RUN}{i}", host_netns=ns.path,
                            underlay_ip=f"192.0.2.{i}")  # fmt: skip
        ipam = IPAM(StoreBackend(admin, api.thread.loop), node=name)
        manager = NetworkManager(datapath, ipam)
        made.append(Node(name, ns, manager, NodeNetworks(manager, name)))
    try:
        yield made
    finally:
        for n in made:
            n.reconciler.teardown()
        for n in made:
            assert leftovers(n.manager.datapath.names.tag) == []
            assert set(n.ns.links()) == {"lo", "und0"}
            assert nft.tables(n.ns.path) == set()


def sync_all(api: ThreadedAPI, nodes: list[Node]) -> list[SyncReport]:
    """What each node agent does when its informers report a change."""
    admin = api.admin
    networks = api.run(admin.list_all(NETWORKS))["items"]
    pods = api.run(admin.list_all(PODS))["items"]
    node_objs = api.run(admin.list_all(NODES))["items"]
    namespaces = api.run(admin.list_all(NAMESPACES))["items"]
    ns_tenants = {
        n["metadata"]["name"]: (n["metadata"].get("labels") or {}).get(net.TENANT_LABEL, "")
        for n in namespaces
    }
    return [n.reconciler.sync(networks, pods, node_objs, ns_tenants) for n in nodes]


def start_pod(
    api: ThreadedAPI, node: Node, netns: NetnsFactory, namespace: str, name: str, tenant: str
) -> tuple[Netns, Attachment]:
    """The node agent's part for one pod: namespace, attach, report the address."""
    obj = api.run(api.admin.get(PODS, name, namespace))
    ns = netns(f"{namespace}-{name}")
    att = node.manager.attach(tenant, f"{tenant}-default", obj["metadata"]["uid"],
                              netns=ns.path, pod=net.pod_ref(obj))  # fmt: skip
    status = {"status": {"podIP": str(att.ip.ip), "phase": "Running"}}
    api.run(api.admin.patch(PODS, name, status, namespace, subresource="status"))
    return ns, att


def test_nodes_follow_networks_and_pods_from_the_api(
    api: ThreadedAPI, nodes: list[Node], netns: NetnsFactory
) -> None:
    admin = api.admin
    n1, n2, n3 = nodes
    api.start(NetworkController(admin))
    for tenant in ("acme", "beta"):
        api.run(make_tenant(admin, tenant))
        api.run(make_namespace(admin, f"{tenant}-app", tenant))

    async def defaults_ready() -> bool:
        items = (await admin.list_all(NETWORKS))["items"]
        return sum(1 for n in items if (n.get("status") or {}).get("vni")) == 2

    api.eventually(defaults_ready, "both default networks ready")
    placement = {("acme", "a1"): n1, ("acme", "a2"): n2, ("beta", "b1"): n1, ("beta", "b2"): n2}
    for (tenant, name), node in placement.items():
        api.run(create_pod(admin, f"{tenant}-app", pod(name, node=node.name)))
    first = sync_all(api, nodes)
    assert sorted(first[0].ensured) == [("acme", "acme-default"), ("beta", "beta-default")]
    assert first[2].ensured == []  # no pod on n3: nothing made there
    assert n3.manager.datapath.tenants() == []
    started: dict[str, tuple[Netns, Attachment]] = {}
    for (tenant, name), node in placement.items():
        started[name] = start_pod(api, node, netns, f"{tenant}-app", name, tenant)
    reports = sync_all(api, nodes)
    assert reports[0].remote == {("acme", "acme-default"): 1, ("beta", "beta-default"): 1}

    (a1, att_a1), (_a2, att_a2) = started["a1"], started["a2"]
    (b1, att_b1), (b2, att_b2) = started["b1"], started["b2"]
    # Same CIDR, separate pools per tenant: the same addresses in both tenants.
    assert {str(att_a1.ip.ip), str(att_a2.ip.ip)} == {str(att_b1.ip.ip), str(att_b2.ip.ip)}
    assert a1.ping(str(att_a2.ip.ip)) and b1.ping(str(att_b2.ip.ip))
    with tcp_server(b2, str(att_b2.ip.ip), 7100) as beta_server:
        assert tcp_request(b1, str(att_b2.ip.ip), 7100) == str(att_b1.ip.ip)
        assert tcp_request(a1, str(att_b2.ip.ip), 7100, timeout=2) is None  # that is acme's a2
        assert beta_server.peers == [str(att_b1.ip.ip)]
    acme_vni = api.run(admin.get(NETWORKS, "acme-default"))["status"]["vni"]
    info = n1.manager.datapath.get_network("acme", "acme-default")
    assert info is not None and info.vni == acme_vni and info.vxlan

    # a2 goes: its node detaches it (address released) and drops acme; n1 forgets a2.
    uid = api.run(admin.get(PODS, "a2", "acme-app"))["metadata"]["uid"]
    api.run(admin.delete(PODS, "a2", "acme-app", grace_period_seconds=0))
    assert n2.manager.detach("acme", "acme-default", uid)
    pool = n1.manager.ipam.get_pool("acme", "acme-default")
    assert pool is not None
    assert uid not in {lease.owner for lease in n1.manager.ipam.leases(pool)}
    reports = sync_all(api, nodes)
    assert reports[1].removed == [("acme", "acme-default")]
    assert reports[1].removed_tenants == ["acme"]
    assert reports[0].remote[("acme", "acme-default")] == 0
    assert n1.manager.datapath.remote_endpoints("acme", "acme-default") == []
    assert n2.manager.datapath.networks("beta") != []
    assert not a1.ping(str(att_a2.ip.ip), tries=1, wait=1)

    # Everything goes: detach, sync, and nothing of either tenant is left.
    for (tenant, name), node in placement.items():
        if name == "a2":
            continue
        obj = api.run(admin.get(PODS, name, f"{tenant}-app"))
        api.run(admin.delete(PODS, name, f"{tenant}-app", grace_period_seconds=0))
        node.manager.detach(tenant, f"{tenant}-default", obj["metadata"]["uid"])
    sync_all(api, nodes)
    for node in nodes:
        assert node.manager.datapath.tenants() == []
        assert leftovers(node.manager.datapath.names.tag) == []
    # The pools stay (cluster-wide), now empty.
    assert n1.manager.ipam.leases(pool) == []


def test_pods_of_networks_not_ready_are_left_alone(api: ThreadedAPI, nodes: list[Node]) -> None:
    admin = api.admin
    api.run(make_tenant(admin, "acme"))
    api.run(make_namespace(admin, "acme-app", "acme"))
    # No controller runs: the Network has no VNI yet, so nodes must not build it.
    body = {"metadata": {"name": "acme-default"},
            "spec": {"tenant": "acme", "cidr": "10.244.0.0/24"}}  # fmt: skip
    api.run(admin.create(NETWORKS, body))
    api.run(create_pod(admin, "acme-app", pod("a1", node="n1")))
    reports = sync_all(api, nodes)
    assert all(r.ensured == [] for r in reports)
    assert nodes[0].manager.datapath.tenants() == []
