"""Multi-host VXLAN with three simulated hosts (namespaces on one underlay switch).

The hosts share one IPAM directory, standing in for the control-plane store
(a real backend across machines); the test plays the controller by turning
leases into remote endpoints for each host.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from nethelpers import (
    RUN,
    Netns,
    NetnsFactory,
    ipv4_udp_frame,
    leftovers,
    tcp_request,
    tcp_server,
    udp_listener,
    udp_received,
)

from hypernetes.network import nft
from hypernetes.network.datapath import Datapath
from hypernetes.network.ipam import IPAM
from hypernetes.network.ipam_local import LocalDirBackend
from hypernetes.network.manager import NetworkManager
from hypernetes.network.model import Conflict, NotFound, RemoteEndpoint
from hypernetes.network.namespaces import netlink

VNI_A, VNI_B = 1001, 2002
CIDR = "10.80.0.0/24"
SWITCH_IP = "192.0.2.100"


@dataclass
class SimHost:
    name: str
    ns: Netns
    underlay: str
    manager: NetworkManager


@pytest.fixture
def cluster(netns: NetnsFactory, tmp_path: Path) -> Iterator[list[SimHost]]:
    switch = netns("switch")
    with netlink(switch.path) as ipr:
        ipr.link("add", ifname="br0", kind="bridge")
        br = ipr.link_lookup(ifname="br0")[0]
        ipr.addr("add", index=br, address=SWITCH_IP, prefixlen=24)
        ipr.link("set", index=br, state="up")
    hosts = []
    for i in (1, 2, 3):
        ns = netns(f"h{i}")
        underlay = f"192.0.2.{i}"
        with netlink(ns.path) as ipr:
            fd = os.open(switch.path, os.O_RDONLY)
            try:
                ipr.link(
                    "add", ifname="und0", kind="veth", peer={"ifname": f"h{i}", "net_ns_fd": fd}
                )
            finally:
                os.close(fd)
            idx = ipr.link_lookup(ifname="und0")[0]
            ipr.addr("add", index=idx, address=underlay, prefixlen=24)
            ipr.link("set", index=idx, state="up")
        with netlink(switch.path) as ipr:
            idx = ipr.link_lookup(ifname=f"h{i}")[0]
            ipr.link("set", index=idx, master=br, state="up")
        datapath = Datapath(
            str(tmp_path / f"h{i}"), tag=f"{RUN}{i}", host_netns=ns.path, underlay_ip=underlay
        )
        ipam = IPAM(LocalDirBackend(str(tmp_path / "store")), node=f"h{i}")
        hosts.append(SimHost(f"h{i}", ns, underlay, NetworkManager(datapath, ipam)))
    try:
        yield hosts
    finally:
        for h in hosts:
            h.manager.teardown_all()
        for h in hosts:
            assert leftovers(h.manager.datapath.names.tag) == []
            assert set(h.ns.links()) == {"lo", "und0"}
            assert nft.tables(h.ns.path) == set()


def program(hosts: list[SimHost], tenant: str, network: str) -> None:
    """What the controller does: every host learns the network's pods on the others."""
    underlay = {h.name: h.underlay for h in hosts}
    pool = hosts[0].manager.ipam.get_pool(tenant, network)
    assert pool is not None
    leases = hosts[0].manager.ipam.leases(pool)
    for h in hosts:
        if h.manager.datapath.get_network(tenant, network) is None:
            continue
        h.manager.set_remote_endpoints(
            tenant,
            network,
            [
                RemoteEndpoint(
                    lease.address, lease.mac, ipaddress.IPv4Address(underlay[lease.node])
                )
                for lease in leases
                if lease.node != h.name
            ],
        )


def test_pods_on_three_hosts_reach_each_other_over_vxlan(
    cluster: list[SimHost], netns: NetnsFactory
) -> None:
    pods = []
    for h in cluster:
        info = h.manager.ensure_network("acme", "net", CIDR, vni=VNI_A)
        assert info.mtu == 1450 and info.vni == VNI_A
        ns = netns(f"{h.name}-pod")
        pods.append((ns, h.manager.attach("acme", "net", f"{h.name}-pod", netns=ns.path)))
    assert len({str(att.ip) for _, att in pods}) == 3  # one pool for the whole network
    program(cluster, "acme", "net")
    (p1, _a1), (p2, a2), (p3, a3) = pods
    ips = [str(a.ip.ip) for _, a in pods]
    assert p1.ping(ips[1]) and p1.ping(ips[2]) and p2.ping(ips[2]) and p3.ping(ips[0])
    assert p1.ping(ips[1], size=1450 - 28)  # full pod MTU through the tunnel, DF set
    assert p1.links()["eth0"]["mtu"] == 1450
    with tcp_server(p3, ips[2], 8080) as server:
        assert tcp_request(p1, ips[2], 8080) == ips[0]
        assert tcp_request(p2, ips[2], 8080) == ips[1]
        assert server.peers == ips[:2]

    # Forwarding state is exactly what was programmed; nothing was learnt.
    dp = cluster[0].manager.datapath
    assert dp.remote_endpoints("acme", "net") == [
        RemoteEndpoint(a2.ip.ip, a2.mac, ipaddress.IPv4Address("192.0.2.2")),
        RemoteEndpoint(a3.ip.ip, a3.mac, ipaddress.IPv4Address("192.0.2.3")),
    ]
    info = dp.get_network("acme", "net")
    assert info is not None and info.vxlan is not None
    with netlink(dp.tenant_netns("acme")) as t:
        vx = t.link_lookup(ifname=info.vxlan)[0]
        macs = {e.get_attr("NDA_LLADDR") for e in t.fdb("dump", ifindex=vx) if e["ifindex"] == vx}
        link = t.get_links(vx)[0]
        data = link.get_nested("IFLA_LINKINFO", "IFLA_INFO_DATA")
        assert data.get_attr("IFLA_VXLAN_LEARNING") == 0
    own = {link["mac"] for link in Netns.links(_view(dp.tenant_netns("acme"))).values()}
    assert macs - own == {a2.mac, a3.mac}

    # A pod that is no longer announced is no longer reachable from there.
    cluster[0].manager.set_remote_endpoints(
        "acme", "net", [RemoteEndpoint(a3.ip.ip, a3.mac, ipaddress.IPv4Address("192.0.2.3"))]
    )
    assert [e.ip for e in dp.remote_endpoints("acme", "net")] == [a3.ip.ip]
    assert not p1.ping(ips[1], wait=1, tries=1) and p1.ping(ips[2])


def _view(path: str) -> Netns:
    ns = Netns.__new__(Netns)
    ns.name, ns.path = os.path.basename(path), path
    return ns


def test_tenants_with_the_same_cidr_across_hosts_stay_apart(
    cluster: list[SimHost], netns: NetnsFactory
) -> None:
    h1, h2, _ = cluster
    placed: dict[tuple[str, str], tuple[Netns, str]] = {}
    for tenant, vni in (("acme", VNI_A), ("beta", VNI_B)):
        for h in (h1, h2):
            h.manager.ensure_network(tenant, "net", CIDR, vni=vni)
            ns = netns(f"{tenant}-{h.name}")
            att = h.manager.attach(tenant, "net", f"{tenant}-{h.name}", netns=ns.path)
            placed[(tenant, h.name)] = (ns, str(att.ip.ip))
        program(cluster, tenant, "net")
    a1, a1_ip = placed[("acme", "h1")]
    _a2, a2_ip = placed[("acme", "h2")]
    b1, b1_ip = placed[("beta", "h1")]
    b2, b2_ip = placed[("beta", "h2")]
    assert (a1_ip, a2_ip) == (b1_ip, b2_ip) == ("10.80.0.2", "10.80.0.3")
    assert a1.ping(a2_ip) and b1.ping(b2_ip)
    with tcp_server(b2, b2_ip, 7000) as beta_server:
        # acme's 10.80.0.3 is acme's own pod (nothing listens there): refused, not beta.
        assert tcp_request(a1, b2_ip, 7000, timeout=2) is None
        assert tcp_request(b1, b2_ip, 7000) == b1_ip
        assert beta_server.peers == [b1_ip]


def vxlan_packet(vni: int, inner: bytes) -> bytes:
    return struct.pack("!II", 0x08000000, vni << 8) + inner


def test_tenants_cannot_inject_into_another_overlay(
    cluster: list[SimHost], netns: NetnsFactory
) -> None:
    h1, h2, _ = cluster
    for tenant, vni in (("acme", VNI_A), ("beta", VNI_B)):
        for h in (h1, h2):
            h.manager.ensure_network(tenant, "net", CIDR, vni=vni)
    attacker = netns("attacker")
    h1.manager.attach("acme", "net", "attacker", netns=attacker.path)
    victim_peer = netns("victim-peer")
    peer = h1.manager.attach("beta", "net", "victim-peer", netns=victim_peer.path)
    victim = netns("victim")
    target = h2.manager.attach("beta", "net", "victim", netns=victim.path)
    program(cluster, "beta", "net")
    program(cluster, "acme", "net")
    listener = udp_listener(victim, "0.0.0.0", 4000)
    inner = ipv4_udp_frame(peer.mac, target.mac, str(peer.ip.ip), str(target.ip.ip), 1, 4000,
                           b"injected")  # fmt: skip
    payload = vxlan_packet(VNI_B, inner)

    def send_from(ns: Netns) -> bool:
        s = ns.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.sendto(payload, ("192.0.2.2", 4789))
        s.close()
        return any(data == b"injected" for data, _ in udp_received(listener, 1.0))

    # Control: the same packet from host h1's underlay (a trusted VTEP) is delivered,
    # so the packet itself is well-formed.
    assert send_from(h1.ns)
    # From a tenant pod it is stopped on its own host before reaching the underlay.
    assert not send_from(attacker)
    # From an underlay address that is not a known VTEP it is dropped on arrival.
    switch = _view(f"/run/netns/{h1.ns.name.replace('-h1', '-switch')}")
    assert not send_from(switch)
    # Once h2 no longer counts h1 among its peers, h1's packets are dropped too.
    h2.manager.datapath.set_peer_hosts([ipaddress.IPv4Address("192.0.2.3")])
    assert not send_from(h1.ns)
    h2.manager.datapath.set_peer_hosts([ipaddress.IPv4Address("192.0.2.1")])
    assert send_from(h1.ns)
    listener.close()


def test_overlay_api_errors(cluster: list[SimHost]) -> None:
    m = cluster[0].manager
    m.ensure_network("acme", "flat", "10.81.0.0/24")
    with pytest.raises(NotFound):
        m.set_remote_endpoints("acme", "flat", [])
    with pytest.raises(NotFound):
        m.set_remote_endpoints("nobody", "flat", [])
    assert m.datapath.remote_endpoints("acme", "flat") == []
    # A VNI is unique per host: a second network cannot take the same one.
    m.ensure_network("acme", "ov", "10.82.0.0/24", vni=4242)
    with pytest.raises(Conflict, match="VNI 4242"):
        m.ensure_network("beta", "ov", "10.82.0.0/24", vni=4242)
    assert m.datapath.get_network("beta", "ov") is None
    assert m.ipam.get_pool("beta", "ov") is None  # the pool made for it was rolled back
