"""The single-host datapath with real kernel networking: connectivity, tenant isolation,
overlapping CIDRs, anti-spoofing, egress, TAP ports, lifecycle and cleanup."""

from __future__ import annotations

import ipaddress
import os
import socket
import struct
import time

import pytest
from nethelpers import (
    RUN,
    Netns,
    NetnsFactory,
    RawPort,
    arp_frame,
    ipv4_udp_frame,
    parse_arp,
    tcp_request,
    tcp_scan,
    tcp_server,
    udp_listener,
    udp_received,
)

from conftest import HOST_IP, OUTSIDE_IP, Host, assert_clean
from hypernetes.network import nft
from hypernetes.network.manager import NetworkManager
from hypernetes.network.model import Conflict, NotFound, PodNetnsNotFound
from hypernetes.network.names import GUARD_TABLE, ROUTER_TABLE
from hypernetes.network.namespaces import netlink, read_sysctl
from hypernetes.network.tap import open_tap

BROADCAST = "ff:ff:ff:ff:ff:ff"


def attach_pods(
    manager: NetworkManager, netns: NetnsFactory, tenant: str, network: str, count: int
) -> list[tuple[Netns, str]]:
    """Attach `count` veth pods; returns (namespace, ip) pairs."""
    out = []
    for i in range(count):
        ns = netns(f"{tenant}-{network}-{i}")
        att = manager.attach(tenant, network, f"{tenant}-pod-{i}", netns=ns.path)
        out.append((ns, str(att.ip.ip)))
    return out


def test_same_network_pods_reach_each_other_and_gateway(
    manager: NetworkManager, netns: NetnsFactory
) -> None:
    info = manager.ensure_network("acme", "web", "10.60.0.0/24")
    assert (str(info.gateway), info.mtu, info.vni) == ("10.60.0.1", 1500, None)
    (a, a_ip), (b, b_ip) = attach_pods(manager, netns, "acme", "web", 2)
    assert (a_ip, b_ip) == ("10.60.0.2", "10.60.0.3")
    assert a.addresses("eth0") == ["10.60.0.2/24"]
    assert a.links()["eth0"]["mac"] == "0a:58:0a:3c:00:02"
    assert a.ping(b_ip) and b.ping(a_ip) and a.ping("10.60.0.1")
    with tcp_server(b, b_ip, 8080) as server:
        assert tcp_request(a, b_ip, 8080) == a_ip  # no NAT inside a network
        assert server.peers == [a_ip]
    listener = udp_listener(b, b_ip, 5353)
    sender = a.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sender.sendto(b"hello", (b_ip, 5353))
    assert udp_received(listener, 1.0) == [(b"hello", a_ip)]
    sender.close()
    listener.close()


def test_kernel_object_names_fit_and_are_recognisable(manager: NetworkManager) -> None:
    info = manager.ensure_network("acme", "a-very-long-network-name-" + "x" * 38, "10.61.0.0/24")
    names = manager.datapath.names
    for name in (info.bridge, names.port("acme", info.name, "p" * 300), names.uplink_host("acme")):
        assert len(name) <= 15 and name.startswith("hn")
    assert os.path.basename(manager.datapath.tenant_netns("acme")).startswith(f"hn-{RUN}-")
    uplink = names.uplink_host("acme")
    host = manager.datapath.host_ns
    assert read_sysctl(host, f"net.ipv6.conf.{uplink}.disable_ipv6") == "1"
    assert read_sysctl(manager.datapath.tenant_netns("acme"), "net.ipv4.ip_forward") == "1"


def test_tenants_are_isolated_icmp_tcp_udp_arp_and_port_scan(
    manager: NetworkManager, netns: NetnsFactory, host: Host
) -> None:
    manager.ensure_network("acme", "net", "10.62.0.0/24")
    manager.ensure_network("beta", "net", "10.63.0.0/24")
    [(a, _a_ip)] = attach_pods(manager, netns, "acme", "net", 1)
    [(b, b_ip)] = attach_pods(manager, netns, "beta", "net", 1)
    beta_router = manager.datapath.ensure_tenant("beta")
    targets = [b_ip, "10.63.0.1", str(beta_router.transit), "100.127.0.1", HOST_IP]
    for target in targets:
        assert not a.ping(target, wait=1, tries=1), f"acme reached {target}"
    listeners = [udp_listener(b, b_ip, port) for port in (53, 5353, 9999)]
    with tcp_server(b, b_ip, 22) as ssh, tcp_server(b, b_ip, 8080) as web:
        scan = tcp_scan(a, b_ip, range(1, 1025))
        assert scan["open"] == [] and scan["refused"] == [], scan
        for target in targets[1:]:
            found = tcp_scan(a, target, [22, 53, 80, 443, 8080])
            assert found["open"] == [] and found["refused"] == [], (target, found)
        assert tcp_request(a, b_ip, 8080, timeout=1) is None
        assert ssh.peers == [] and web.peers == []
        # The outside cannot start connections towards a tenant either.
        assert tcp_scan(host.outside, str(beta_router.transit), [22, 8080])["open"] == []
    sender = a.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for port in (53, 5353, 9999):
        sender.sendto(b"probe", (b_ip, port))
    sender.close()
    assert all(udp_received(sock, 0.5) == [] for sock in listeners)
    for sock in listeners:
        sock.close()


def test_same_cidr_in_two_tenants_both_work_and_stay_apart(
    manager: NetworkManager, netns: NetnsFactory
) -> None:
    for tenant in ("acme", "beta"):
        manager.ensure_network(tenant, "default", "10.64.0.0/24")
    acme = attach_pods(manager, netns, "acme", "default", 2)
    beta = attach_pods(manager, netns, "beta", "default", 3)
    assert [ip for _, ip in acme] == ["10.64.0.2", "10.64.0.3"]
    assert [ip for _, ip in beta] == ["10.64.0.2", "10.64.0.3", "10.64.0.4"]
    (a0, _), (a1, a1_ip) = acme
    (b0, _), (b1, b1_ip), (b2, b2_ip) = beta
    assert a0.ping(a1_ip) and b0.ping(b1_ip) and b0.ping(b2_ip)
    # 10.64.0.4 exists only in beta: from acme nothing answers, not even ARP.
    assert not a0.ping(b2_ip, wait=1, tries=1)
    port = RawPort(a0, "eth0")
    watch = RawPort(b2, "eth0")
    port.drain()
    watch.drain()
    port.send(arp_frame(1, "0a:58:0a:40:00:02", BROADCAST, "0a:58:0a:40:00:02", "10.64.0.2",
                        "00:00:00:00:00:00", "10.64.0.4"))  # fmt: skip
    replies = [parse_arp(f) for f in port.capture(1.0)]
    assert not [r for r in replies if r and r["op"] == 2 and r["sender_ip"] == "10.64.0.4"]
    assert not [f for f in watch.capture(0.5) if parse_arp(f)], "beta saw acme's ARP"
    port.close()
    watch.close()
    # Same source address, different tenants: each reaches its own peer only.
    with tcp_server(a1, a1_ip, 7000) as acme_srv, tcp_server(b1, b1_ip, 7000) as beta_srv:
        assert tcp_request(a0, a1_ip, 7000) == "10.64.0.2"
        assert tcp_request(b0, b1_ip, 7000) == "10.64.0.2"
        assert len(acme_srv.peers) == 1 and len(beta_srv.peers) == 1


def test_anti_spoofing_drops_foreign_source_ip_and_mac(
    manager: NetworkManager, netns: NetnsFactory
) -> None:
    manager.ensure_network("acme", "net", "10.65.0.0/24")
    (a, a_ip), (b, b_ip), (_c, c_ip) = attach_pods(manager, netns, "acme", "net", 3)
    a_mac = a.links()["eth0"]["mac"]
    b_mac = b.links()["eth0"]["mac"]
    assert isinstance(a_mac, str) and isinstance(b_mac, str)
    listener = udp_listener(b, "0.0.0.0", 4000)
    raw = RawPort(a, "eth0")

    def delivered(src_mac: str, src_ip: str, tag: bytes) -> bool:
        raw.send(ipv4_udp_frame(src_mac, b_mac, src_ip, b_ip, 1234, 4000, tag))
        return any(data == tag for data, _ in udp_received(listener, 0.7))

    assert delivered(a_mac, a_ip, b"genuine")  # the control case goes through
    assert not delivered(a_mac, c_ip, b"spoofed-ip")  # another pod's address
    assert not delivered(a_mac, "10.65.0.200", b"spoofed-unused-ip")
    assert not delivered(a_mac, "192.0.2.7", b"spoofed-foreign-ip")
    assert not delivered("0a:58:0a:41:00:63", a_ip, b"spoofed-mac")
    assert not delivered(b_mac, a_ip, b"stolen-mac")

    # ARP: a spoofed claim on another pod's address (or the gateway's) never arrives.
    watch = RawPort(b, "eth0")
    watch.drain()
    raw.send(arp_frame(2, a_mac, BROADCAST, a_mac, "10.65.0.1", BROADCAST, "10.65.0.1"))
    raw.send(arp_frame(2, a_mac, BROADCAST, a_mac, c_ip, BROADCAST, c_ip))
    raw.send(arp_frame(1, a_mac, BROADCAST, "0a:58:0a:41:00:63", a_ip, BROADCAST, b_ip))
    seen = [parse_arp(f) for f in watch.capture(1.0)]
    assert [s for s in seen if s] == []
    raw.send(arp_frame(1, a_mac, BROADCAST, a_mac, a_ip, "00:00:00:00:00:00", b_ip))
    seen = [parse_arp(f) for f in watch.capture(1.0)]
    assert any(s and s["sender_ip"] == a_ip for s in seen)  # a genuine request does

    # Other ethertypes (IPv6 here) are dropped at the port too.
    ipv6 = bytes.fromhex(b_mac.replace(":", "")) + bytes.fromhex(a_mac.replace(":", ""))
    watch.drain()
    raw.send(ipv6 + struct.pack("!H", 0x86DD) + b"\x60" + b"\0" * 60)
    assert [f for f in watch.capture(0.7) if f[12:14] == b"\x86\xdd"] == []
    # The gateway's neighbour entry for the stolen address still points at its owner.
    with netlink(manager.datapath.tenant_netns("acme")) as t:
        entries = {n.get_attr("NDA_DST"): n.get_attr("NDA_LLADDR") for n in t.get_neighbours()}
    assert entries.get(c_ip) in (None, "0a:58:0a:41:00:04")
    raw.close()
    watch.close()
    listener.close()


def test_pod_that_changes_its_own_address_is_cut_off(
    manager: NetworkManager, netns: NetnsFactory
) -> None:
    manager.ensure_network("acme", "net", "10.66.0.0/24")
    (a, _a_ip), (_b, b_ip) = attach_pods(manager, netns, "acme", "net", 2)
    a.run("ip", "addr", "flush", "dev", "eth0", check=True)
    a.run("ip", "addr", "add", "10.66.0.50/24", "dev", "eth0", check=True)
    assert not a.ping(b_ip, wait=1, tries=1)
    a.run("ip", "link", "set", "eth0", "address", "0a:58:0a:42:00:99", check=True)
    assert not a.ping(b_ip, wait=1, tries=1)


def test_egress_is_snat_through_the_tenant_router(
    manager: NetworkManager, netns: NetnsFactory, host: Host
) -> None:
    manager.ensure_network("acme", "net", "10.67.0.0/24")
    manager.ensure_network("beta", "net", "10.67.0.0/24")  # same CIDR: both must get out
    [(a, _)] = attach_pods(manager, netns, "acme", "net", 1)
    [(b, _)] = attach_pods(manager, netns, "beta", "net", 1)
    with tcp_server(host.outside, OUTSIDE_IP, 8443) as server:
        # The host masquerades the transit range: the outside sees the host.
        assert tcp_request(a, OUTSIDE_IP, 8443) == HOST_IP
        assert tcp_request(b, OUTSIDE_IP, 8443) == HOST_IP
        assert server.peers == [HOST_IP, HOST_IP]
    assert a.ping(OUTSIDE_IP)


def test_egress_source_is_the_tenant_transit_address_without_host_masquerade(
    host: Host, netns: NetnsFactory, tmp_path: os.PathLike[str]
) -> None:
    m = NetworkManager.standalone(
        str(tmp_path), tag=RUN + "m", host_netns=host.ns.path, masquerade=False
    )
    try:
        host.outside.run("ip", "route", "add", "100.127.0.0/16", "via", HOST_IP, check=True)
        m.ensure_network("acme", "net", "10.68.0.0/24")
        transit = str(m.datapath.ensure_tenant("acme").transit)
        ns = netns("nomasq")
        m.attach("acme", "net", "pod", netns=ns.path)
        with tcp_server(host.outside, OUTSIDE_IP, 8443) as server:
            assert tcp_request(ns, OUTSIDE_IP, 8443) == transit  # SNAT: not the pod's address
            assert server.peers == [transit]
    finally:
        m.teardown_all()
    assert_clean(m, host)


def test_routing_between_networks_of_one_tenant(
    manager: NetworkManager, netns: NetnsFactory
) -> None:
    manager.ensure_network("acme", "front", "10.69.1.0/24")
    manager.ensure_network("acme", "back", "10.69.2.0/24")
    [(f, f_ip)] = attach_pods(manager, netns, "acme", "front", 1)
    [(b, b_ip)] = attach_pods(manager, netns, "acme", "back", 1)
    assert f.ping(b_ip) and b.ping(f_ip)
    with tcp_server(b, b_ip, 9000):
        assert tcp_request(f, b_ip, 9000) == f_ip  # routed, not NATed


def test_detach_is_idempotent_and_removes_everything(
    manager: NetworkManager, netns: NetnsFactory
) -> None:
    manager.ensure_network("acme", "net", "10.70.0.0/24")
    (a, _a_ip), (b, b_ip) = attach_pods(manager, netns, "acme", "net", 2)
    tenant_ns = manager.datapath.tenant_netns("acme")
    port = manager.datapath.names.port("acme", "net", "acme-pod-1")
    assert port in [p.port for p in manager.datapath.ports("acme")]
    assert manager.detach("acme", "net", "acme-pod-1") is True
    assert "eth0" not in b.links()
    assert port not in [p.port for p in manager.datapath.ports("acme")]
    elems = nft.set_elements(tenant_ns, "bridge", GUARD_TABLE, "pods")
    assert [e[0] for e in elems] == [manager.datapath.names.port("acme", "net", "acme-pod-0")]
    assert [lease.owner for lease in manager.ipam.leases(manager._pool("acme", "net"))] == [
        "acme-pod-0"
    ]
    assert manager.detach("acme", "net", "acme-pod-1") is False
    assert manager.detach("acme", "nonexistent", "x") is False
    assert manager.detach("nobody", "net", "x") is False
    assert not a.ping(b_ip, wait=1, tries=1)
    # Re-attaching the same namespace works and gets a fresh address.
    again = manager.attach("acme", "net", "acme-pod-1", netns=b.path)
    assert str(again.ip.ip) != b_ip and a.ping(str(again.ip.ip))


def test_long_pod_ids_attach_detach_and_gc(manager: NetworkManager, netns: NetnsFactory) -> None:
    manager.ensure_network("a" * 63, "n" * 63, "10.79.0.0/24")
    pod_id = "f" * 64 + "/eth0"  # a CNI container id plus interface: longer than an alias fits
    ns = netns("longid")
    att = manager.attach("a" * 63, "n" * 63, pod_id, netns=ns.path)
    [port] = manager.datapath.ports("a" * 63)
    assert port.port == att.port and port.pod_key.startswith("#") and port.ip == str(att.ip.ip)
    assert manager.gc().removed_ports == []  # it has a lease: not an orphan
    assert manager.detach("a" * 63, "n" * 63, pod_id) is True
    assert manager.datapath.ports("a" * 63) == [] and "eth0" not in ns.links()
    assert nft.set_elements(att.tenant_netns, "bridge", GUARD_TABLE, "pods") == []


def test_attach_is_idempotent_and_repairs(manager: NetworkManager, netns: NetnsFactory) -> None:
    manager.ensure_network("acme", "net", "10.71.0.0/24")
    ns = netns("idem")
    first = manager.attach("acme", "net", "pod", netns=ns.path)
    assert manager.attach("acme", "net", "pod", netns=ns.path) == first
    assert manager.check(first) == []
    ns.run("ip", "addr", "flush", "dev", "eth0", check=True)  # break it
    assert manager.check(first) == [f"eth0 lacks address {first.ip}"]
    assert manager.attach("acme", "net", "pod", netns=ns.path) == first  # rebuilt
    assert manager.check(first) == [] and ns.ping("10.71.0.1")


def test_attach_failures_leave_nothing_behind(manager: NetworkManager, netns: NetnsFactory) -> None:
    manager.ensure_network("acme", "net", "10.72.0.0/24")
    pool = manager._pool("acme", "net")
    with pytest.raises(PodNetnsNotFound):
        manager.attach("acme", "net", "ghost", netns="/run/netns/hntest-does-not-exist")
    ns = netns("busy")
    ns.run("ip", "link", "add", "eth0", "type", "veth", "peer", "name", "other", check=True)
    with pytest.raises(Conflict):
        manager.attach("acme", "net", "busy", netns=ns.path)
    assert manager.ipam.leases(pool) == []
    assert manager.datapath.ports("acme") == []
    assert (
        nft.set_elements(manager.datapath.tenant_netns("acme"), "bridge", GUARD_TABLE, "pods") == []
    )
    with pytest.raises(NotFound):
        manager.attach("acme", "missing", "p", netns=ns.path)
    with pytest.raises(ValueError):
        manager.attach("acme", "net", "p", kind="macvlan", netns=ns.path)
    with pytest.raises(ValueError):
        manager.attach("acme", "net", "p", kind="veth")  # no namespace
    assert manager.ipam.leases(pool) == []


def test_network_conflicts_and_bad_input(manager: NetworkManager) -> None:
    manager.ensure_network("acme", "net", "10.73.0.0/24", "10.73.0.254")
    again = manager.ensure_network("acme", "net", "10.73.0.0/24", "10.73.0.254")
    assert str(again.gateway) == "10.73.0.254"
    with pytest.raises(Conflict):
        manager.ensure_network("acme", "net", "10.74.0.0/24")  # another CIDR
    with pytest.raises(Conflict):
        manager.datapath.ensure_network("acme", "net", "10.73.0.0/24", "10.73.0.254", vni=7)
    with pytest.raises(Conflict):
        manager.ensure_network("acme", "other", "10.73.0.128/25")  # overlaps in one tenant
    with pytest.raises(Conflict):
        manager.ensure_network("acme", "transit", "100.127.8.0/24")  # the egress range
    for bad in (("Acme", "n", "10.0.0.0/24"), ("acme", "n_1", "10.0.0.0/24"),
                ("acme", "n", "10.0.0.0/31"), ("acme", "n", "10.0.0.1/24"),
                ("acme", "n", "not-a-cidr")):  # fmt: skip
        with pytest.raises(ValueError):
            manager.ensure_network(*bad)
    with pytest.raises(ValueError):
        manager.datapath.ensure_network("acme", "v", "10.75.0.0/24", vni=1 << 24)


def test_teardown_network_and_tenant(manager: NetworkManager, netns: NetnsFactory) -> None:
    manager.ensure_network("acme", "one", "10.76.1.0/24")
    manager.ensure_network("acme", "two", "10.76.2.0/24")
    [(p1, _)] = attach_pods(manager, netns, "acme", "one", 1)
    [(p2, _)] = attach_pods(manager, netns, "acme", "two", 1)
    tap = manager.attach("acme", "two", "vm", kind="tap")
    assert manager.teardown_network("acme", "one") is True
    assert "eth0" not in p1.links() and "eth0" in p2.links()
    assert [n.name for n in manager.networks("acme")] == ["two"]
    assert manager.ipam.get_pool("acme", "one") is None
    assert manager.teardown_network("acme", "one") is False
    tenant_ns = manager.datapath.tenant_netns("acme")
    assert {t[1] for t in nft.tables(tenant_ns)} == {GUARD_TABLE, ROUTER_TABLE}
    assert manager.teardown_tenant("acme") is True
    assert "eth0" not in p2.links()
    assert not os.path.exists(tenant_ns) and not os.path.exists(tap.tenant_netns)
    assert manager.datapath.tenants() == []
    assert manager.teardown_tenant("acme") is False


def test_tap_attachment_lifecycle_and_traffic(manager: NetworkManager, netns: NetnsFactory) -> None:
    manager.ensure_network("acme", "vms", "10.77.0.0/24")
    [(peer, peer_ip)] = attach_pods(manager, netns, "acme", "vms", 1)
    att = manager.attach("acme", "vms", "vm-1", kind="tap", tap_owner=0)
    assert (att.kind, att.ifname, att.netns) == ("tap", None, att.tenant_netns)
    tenant = Netns.__new__(Netns)  # a view of the tenant namespace (not created by us)
    tenant.name, tenant.path = "tenant", att.tenant_netns
    links = tenant.links()
    bridge = manager.datapath.get_network("acme", "vms")
    assert bridge is not None
    assert links[att.port]["kind"] == "tun" and links[att.port]["up"]
    assert links[att.port]["master"] == links[bridge.bridge]["index"]
    assert str(links[att.port]["alias"]).startswith("hypernetes:port:")
    assert manager.attach("acme", "vms", "vm-1", kind="tap") == att  # idempotent

    # Drive the TAP like QEMU would: frames carry a virtio-net header (10 bytes).
    fd = open_tap(att.netns, att.port)
    try:
        os.set_blocking(fd, False)
        vnet = b"\0" * 10
        ip = str(att.ip.ip)

        def arp_replies(sender_mac: str, wait: float = 1.5) -> list[dict[str, object]]:
            frame = arp_frame(1, sender_mac, BROADCAST, sender_mac, ip, "00:00:00:00:00:00",
                              peer_ip)  # fmt: skip
            os.write(fd, vnet + frame)
            found = []
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline:
                try:
                    data = os.read(fd, 65535)[10:]
                except BlockingIOError:
                    time.sleep(0.05)
                    continue
                parsed = parse_arp(data)
                if parsed and parsed["op"] == 2 and parsed["sender_ip"] == peer_ip:
                    found.append(parsed)
            return found

        assert arp_replies("0a:58:0a:4d:00:77") == []  # spoofed MAC: dropped at the port
        replies = arp_replies(att.mac)
        assert replies and replies[0]["sender_mac"] == peer.links()["eth0"]["mac"]
        # Detaching while "QEMU" still holds the TAP removes the device anyway.
        assert manager.detach("acme", "vms", "vm-1") is True
        assert att.port not in tenant.links()
    finally:
        os.close(fd)
    assert manager.detach("acme", "vms", "vm-1") is False
    assert nft.set_elements(att.tenant_netns, "bridge", GUARD_TABLE, "pods") == [
        [manager.datapath.names.port("acme", "vms", "acme-pod-0"), "0a:58:0a:4d:00:02", peer_ip]
    ]


def test_gc_reclaims_dead_pods_and_orphan_ports(
    manager: NetworkManager, netns: NetnsFactory
) -> None:
    manager.ensure_network("acme", "net", "10.78.0.0/24")
    (alive, _), (dead, _) = attach_pods(manager, netns, "acme", "net", 2)
    manager.attach("acme", "net", "vm-kept", kind="tap")
    orphan = manager.datapath.attach("acme", "net", "orphan", ipaddress.IPv4Address("10.78.0.99"),
                                     kind="tap")  # fmt: skip
    dead.delete()  # the pod died and nobody called DEL
    report = manager.gc()
    assert [lease.owner for _, _, lease in report.released] == ["acme-pod-1"]
    assert report.removed_ports == [("acme", "net", "orphan")]
    ports = {p.pod_key for p in manager.datapath.ports("acme")}
    assert ports == {"acme-pod-0", "vm-kept"}
    assert orphan.port not in [p.port for p in manager.datapath.ports("acme")]
    # With an explicit list of valid owners (the runtime's view), the rest goes too.
    report = manager.gc(valid_owners=["acme-pod-0"])
    assert [lease.owner for _, _, lease in report.released] == ["vm-kept"]
    assert {p.pod_key for p in manager.datapath.ports("acme")} == {"acme-pod-0"}
    assert alive.ping("10.78.0.1")
