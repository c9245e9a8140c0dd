"""The tenant network datapath on one host, programmed through netlink and libnftables.

Layout (all names from names.py; ``T`` = one tenant, ``N`` = one Network)::

    host namespace                     tenant router namespace hn-<tag>-<hash(T)>
    ──────────────                     ─────────────────────────────────────────
    hne<h(T)> 100.127.0.1/32 ──veth── hn-uplink <transit>/32, default via 100.127.0.1
      route <transit>/32                  │  nft inet hypernetes_router: SNAT, no new in
    nft inet hypernetes_<tag>             │  (routing between T's Networks)
      (no tenant<->tenant, no             ├─ hnb<h(T,N)>  bridge, gateway address + MAC
       tenant->host, masquerade)          │     ├─ hnp<h(T,N,pod)>  veth ── eth0 in the pod netns
    VXLAN UDP socket (port 4789) ─────────│─────├─ hnp<h(T,N,pod)>  TAP, opened by QEMU
                                          │     └─ hnx<h(T,N)>  VXLAN VNI, no learning,
                                          │        FDB + neighbours programmed per remote pod
                                          └─ nft bridge hypernetes_guard: (port, MAC, IP) only

Each tenant is its own routing domain (a network namespace), so tenants may
use the same CIDRs and there is no route between them. The host end of each
tenant's uplink gets the same transit gateway address; each tenant router a
distinct transit address (allocated from the egress range, per host), which
is what its pods' traffic is SNATed to; the host masquerades that range to
the outside and drops anything from one uplink to another or to itself.

VXLAN devices are created from the host namespace directly into the tenant
namespace, so their UDP socket stays in the host namespace (the underlay)
while the device is a port of the tenant bridge. Every host carries a copy of
every Network's gateway with the same MAC (a distributed gateway); ARP for
the gateway never crosses the overlay.

All methods are blocking and take per-tenant (and host) file locks, so one
process or many may call them concurrently; from asyncio use
``asyncio.to_thread``.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
from collections.abc import Iterable
from typing import Any

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from . import nft, overlay, rules
from .ipam import IPAM, Pool
from .ipam_local import LocalDirBackend
from .locks import Locks
from .model import (
    Attachment,
    Conflict,
    InterfaceExists,
    NetworkError,
    NetworkInfo,
    NotFound,
    PodNetnsNotFound,
    PortInfo,
    RemoteEndpoint,
    TenantInfo,
    delete_link,
    get_link,
    ipv4_addresses,
)
from .names import (
    GUARD_TABLE,
    PORT,
    ROUTER_TABLE,
    UPLINK_TENANT,
    Names,
    alias,
    check_name,
    check_pod_id,
    gateway_mac,
    parse_alias,
    pod_key,
    pod_mac,
)
from .namespaces import (
    create_netns,
    delete_netns,
    is_netns,
    list_netns,
    netlink,
    netns_path,
    run_in_netns,
    write_sysctls,
)
from .tap import create_tap

VXLAN_OVERHEAD = 50  # outer Ethernet 14 + IPv4 20 + UDP 8 + VXLAN 8
DEFAULT_MTU = 1500
EEXIST = 17


class Datapath:
    """Kernel state of the tenant networks on one host (see the module docstring).

    `state_dir` holds locks and the host's egress address leases. `tag` names
    this instance (see names.py); `host_netns` is the namespace that plays the
    host (None: the one we run in; tests use others to simulate several
    hosts); `underlay_ip` is this host's VXLAN endpoint address (default: the
    source address of the host's default route).
    """

    def __init__(
        self,
        state_dir: str,
        *,
        tag: str = "main",
        host_netns: str | None = None,
        underlay_ip: str | None = None,
        egress_cidr: str = "100.127.0.0/16",
        masquerade: bool = True,
        vxlan_port: int = 4789,
    ) -> None:
        self.names = Names(tag)
        self.state_dir = state_dir
        self.host_ns = netns_path(host_netns) if host_netns else None
        self.underlay_ip = ipaddress.IPv4Address(underlay_ip) if underlay_ip else None
        self.egress_cidr = ipaddress.IPv4Network(egress_cidr)
        self.masquerade = masquerade
        self.vxlan_port = vxlan_port
        self.locks = Locks(os.path.join(state_dir, "locks"))
        # Transit addresses are a per-host resource: always local, never in the store.
        self.egress = IPAM(
            LocalDirBackend(os.path.join(state_dir, "egress")),
            liveness=lambda lease: False,  # released explicitly by teardown_tenant
        )
        self.egress_pool = Pool("host", tag, self.egress_cidr, self.egress_cidr.network_address + 1)
        self._host_ready = False

    # -- host ------------------------------------------------------------------
    def ensure_host(self) -> None:
        """Host-wide pieces: forwarding, the host nftables table, the egress pool."""
        if self._host_ready:
            return
        with self.locks.host():
            write_sysctls(self.host_ns, {"net.ipv4.ip_forward": "1"})
            if ("inet", self.names.host_table) not in nft.tables(self.host_ns):
                nft.run(
                    self.host_ns,
                    rules.host_table(
                        self.names.host_table, self.egress_cidr, self.vxlan_port, self.masquerade
                    ),
                )
            self.egress.ensure_pool(self.egress_pool)
        self._host_ready = True

    def add_peer_hosts(self, hosts: Iterable[ipaddress.IPv4Address]) -> None:
        """Accept VXLAN from these hosts (set_remote_endpoints adds its hosts itself)."""
        hosts = sorted(set(hosts))
        if hosts:
            self.ensure_host()
            elems = ", ".join(str(h) for h in hosts)
            nft.run(
                self.host_ns,
                f"add element inet {self.names.host_table} {rules.VTEPS_SET} {{ {elems} }}",
            )

    def set_peer_hosts(self, hosts: Iterable[ipaddress.IPv4Address]) -> None:
        """Replace the set of hosts VXLAN is accepted from."""
        self.ensure_host()
        elems = ", ".join(str(h) for h in sorted(set(hosts)))
        table = self.names.host_table
        batch = f"flush set inet {table} {rules.VTEPS_SET}\n"
        if elems:
            batch += f"add element inet {table} {rules.VTEPS_SET} {{ {elems} }}\n"
        nft.run(self.host_ns, batch)

    def _underlay(self, ipr: IPRoute) -> tuple[ipaddress.IPv4Address, int]:
        """This host's VTEP address and the MTU of the device carrying it."""
        addr = self.underlay_ip
        if addr is None:
            for route in ipr.get_default_routes(family=2):
                src = route.get_attr("RTA_PREFSRC")
                oif = route.get_attr("RTA_OIF")
                if src is None and oif is not None:
                    found = ipv4_addresses(ipr, oif)
                    src = str(found[0].ip) if found else None
                if src:
                    addr = ipaddress.IPv4Address(src)
                    break
            if addr is None:
                raise NetworkError("no underlay address: pass underlay_ip (the VXLAN endpoint)")
        for a in ipr.get_addr(family=2, address=str(addr)):
            dev = ipr.link("get", index=a["index"])[0]
            return addr, int(dev.get_attr("IFLA_MTU"))
        raise NetworkError(f"underlay address {addr} is not configured on this host")

    # -- tenants ---------------------------------------------------------------
    def tenant_netns(self, tenant: str) -> str:
        return netns_path(self.names.netns(check_name("tenant", tenant)))

    def ensure_tenant(self, tenant: str) -> TenantInfo:
        """Create (or complete) the tenant's router namespace and its egress uplink."""
        check_name("tenant", tenant)
        self.ensure_host()
        with self.locks.tenant(tenant):
            return self._ensure_tenant(tenant)

    def _ensure_tenant(self, tenant: str) -> TenantInfo:
        path = self.tenant_netns(tenant)
        owner = "tenant:" + tenant
        if is_netns(path):
            lease = self.egress.lookup(self.egress_pool, owner)
            if lease is not None and lease.state == "active":
                return TenantInfo(tenant, path, lease.address)  # complete (set up last)
        create_netns(self.names.netns(tenant))
        sysctls = {"net.ipv4.ip_forward": "1"}
        has_ipv6, has_br_netfilter = run_in_netns(
            path,
            lambda: (os.path.isdir("/proc/sys/net/ipv6"), os.path.isdir("/proc/sys/net/bridge")),
        )
        if has_ipv6:  # tenant networks are IPv4: no IPv6 link-local chatter on them
            sysctls["net.ipv6.conf.all.disable_ipv6"] = "1"
            sysctls["net.ipv6.conf.default.disable_ipv6"] = "1"
        if has_br_netfilter:
            # br_netfilter would otherwise pass bridged frames through the IP hooks
            # (conntrack, NAT): slower, and not what the bridge rules expect.
            for fam in ("iptables", "ip6tables", "arptables"):
                sysctls[f"net.bridge.bridge-nf-call-{fam}"] = "0"
        write_sysctls(path, sysctls)
        existing = nft.tables(path)
        if ("bridge", GUARD_TABLE) not in existing:
            nft.run(path, rules.guard_table())
        if ("inet", ROUTER_TABLE) not in existing:
            nft.run(path, rules.router_table())

        lease = self.egress.allocate(self.egress_pool, owner)
        transit, gw = lease.address, self.egress_pool.gateway
        host_name = self.names.uplink_host(tenant)
        want_alias = alias("uplink", self.names.tag, tenant)
        with netlink(self.host_ns) as h:
            link = get_link(h, host_name)
            if link is not None and link.get_attr("IFLA_IFALIAS") != want_alias:
                raise Conflict(f"link {host_name} exists and is not tenant {tenant}'s uplink")
            if link is None:
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
                try:
                    h.link(
                        "add",
                        ifname=host_name,
                        kind="veth",
                        peer={"ifname": UPLINK_TENANT, "net_ns_fd": fd},
                    )
                finally:
                    os.close(fd)
            index = h.link("get", ifname=host_name)[0]["index"]
            with contextlib.suppress(OSError):  # no IPv6 on the host: nothing to disable
                # Tenants have no IPv6; keep the host end from joining IPv6 on their link.
                write_sysctls(self.host_ns, {f"net.ipv6.conf.{host_name}.disable_ipv6": "1"})
            h.link("set", index=index, ifalias=want_alias, state="up")
            h.addr("replace", index=index, address=str(gw), prefixlen=32)
            h.route("replace", dst=f"{transit}/32", oif=index, scope=253, prefsrc=str(gw))
        with netlink(path) as t:
            index = t.link("get", ifname=UPLINK_TENANT)[0]["index"]
            t.link("set", index=index, state="up")
            t.addr("replace", index=index, address=str(transit), prefixlen=32)
            t.route("replace", dst=f"{gw}/32", oif=index, scope=253)
            t.route("replace", dst="0.0.0.0/0", gateway=str(gw), oif=index)
        self.egress.confirm(self.egress_pool, owner)
        return TenantInfo(tenant, path, transit)

    def tenants(self) -> list[str]:
        """Tenants with a router on this host."""
        return sorted(
            lease.owner.removeprefix("tenant:")
            for lease in self.egress.leases(self.egress_pool)
            if lease.owner.startswith("tenant:")
        )

    def teardown_tenant(self, tenant: str) -> bool:
        """Remove the tenant's router namespace with everything in it, and its uplink."""
        check_name("tenant", tenant)
        with self.locks.tenant(tenant):
            found = False
            host_name = self.names.uplink_host(tenant)
            with netlink(self.host_ns) as h:
                link = get_link(h, host_name)
                if link is not None and link.get_attr("IFLA_IFALIAS") == alias(
                    "uplink", self.names.tag, tenant
                ):
                    delete_link(h, link["index"])
                    found = True
            path = self.tenant_netns(tenant)
            if is_netns(path):
                # The namespace would take its links along, but only once the last
                # reference to it is gone (a QEMU holding a TAP keeps it) and
                # asynchronously: delete them now so pods are cut off at once.
                with netlink(path) as t:
                    for link in t.get_links():
                        if link.get_attr("IFLA_IFNAME") != "lo":
                            with contextlib.suppress(NetlinkError):
                                delete_link(t, link["index"])
            found = delete_netns(self.names.netns(tenant)) or found
            if self.egress.backend.read(self.egress_pool.id) is not None:
                found = (
                    self.egress.release(self.egress_pool, "tenant:" + tenant) is not None or found
                )
            return found

    def teardown_all(self) -> None:
        """Remove everything this instance (tag) created on the host."""
        for tenant in self.tenants():
            self.teardown_tenant(tenant)
        for name in list_netns(self.names.netns_prefix):  # routers of interrupted setups
            delete_netns(name)
        with self.locks.host(), netlink(self.host_ns) as h:
            for link in h.get_links():
                parsed = parse_alias(link.get_attr("IFLA_IFALIAS"))
                if parsed and parsed[0] == "uplink" and parsed[1][:1] == [self.names.tag]:
                    with contextlib.suppress(NetlinkError):
                        delete_link(h, link["index"])
            if ("inet", self.names.host_table) in nft.tables(self.host_ns):
                nft.run(self.host_ns, f"delete table inet {self.names.host_table}")
            self.egress.delete_pool(self.egress_pool)
        self._host_ready = False

    # -- networks --------------------------------------------------------------
    def ensure_network(
        self,
        tenant: str,
        name: str,
        cidr: str,
        gateway: str | None = None,
        *,
        vni: int | None = None,
        mtu: int | None = None,
    ) -> NetworkInfo:
        """Create (or verify) a Network: a bridge with the gateway address, and a VXLAN
        port if `vni` is given. Raises Conflict if it exists with other parameters."""
        check_name("network", name)
        net = ipaddress.IPv4Network(cidr, strict=True)
        pool = Pool.of(tenant, name, cidr, gateway)  # validates prefix and gateway
        if net.overlaps(self.egress_cidr):
            raise Conflict(f"{net} overlaps the egress transit range {self.egress_cidr}")
        if vni is not None and not 0 < vni < 1 << 24:
            raise ValueError(f"VNI {vni} out of range 1..16777215")
        info = self.ensure_tenant(tenant)
        with self.locks.tenant(tenant), netlink(info.netns) as t:
            existing = self._read_network(t, tenant, name)
            if existing is not None:
                if (existing.cidr, existing.gateway, existing.vni) != (net, pool.gateway, vni):
                    raise Conflict(
                        f"network {tenant}/{name} exists as {existing.cidr} gateway "
                        f"{existing.gateway} vni {existing.vni}"
                    )
                return existing
            for other in self._networks(t, tenant):
                if other.cidr.overlaps(net):
                    raise Conflict(f"{net} overlaps network {tenant}/{other.name} ({other.cidr})")
            return self._create_network(t, info, name, net, pool.gateway, vni, mtu)

    def _create_network(
        self,
        t: IPRoute,
        info: TenantInfo,
        name: str,
        net: ipaddress.IPv4Network,
        gw: ipaddress.IPv4Address,
        vni: int | None,
        mtu: int | None,
    ) -> NetworkInfo:
        tenant = info.tenant
        bridge = self.names.bridge(tenant, name)
        vx = self.names.vxlan(tenant, name) if vni is not None else None
        mac = gateway_mac(tenant, name)
        try:
            if vx is not None and vni is not None:
                with netlink(self.host_ns) as h:
                    local, under_mtu = self._underlay(h)
                    mtu = mtu or under_mtu - VXLAN_OVERHEAD
                    fd = os.open(info.netns, os.O_RDONLY | os.O_CLOEXEC)
                    try:
                        self._add_vxlan(h, vx, vni, local, mtu, fd)
                    finally:
                        os.close(fd)
            mtu = mtu or DEFAULT_MTU
            t.link(
                "add",
                ifname=bridge,
                kind="bridge",
                address=mac,
                br_stp_state=0,
                br_forward_delay=0,
                br_mcast_snooping=0,
                mtu=mtu,
            )
            b = t.link("get", ifname=bridge)[0]["index"]
            t.link("set", index=b, ifalias=alias("network", tenant, name), mtu=mtu)
            t.addr("add", index=b, address=str(gw), prefixlen=net.prefixlen)
            if vx is not None:
                x = t.link("get", ifname=vx)[0]["index"]
                t.link("set", index=x, master=b, ifalias=alias("vxlan", tenant, name))
                # Remote MACs are programmed, never learnt; ARP for programmed
                # remote pods is answered by the bridge instead of crossing hosts.
                t.brport("set", index=x, learning=0, neigh_suppress=1)
                t.link("set", index=x, state="up")
                nft.run(
                    info.netns,
                    f'add element bridge {GUARD_TABLE} {rules.OVERLAY_GW_SET} {{ "{vx}" . {gw} }}',
                )
            t.link("set", index=b, state="up")
        except BaseException:
            for link_name in (vx, bridge):
                if link_name:
                    with contextlib.suppress(NetlinkError):
                        link = get_link(t, link_name)
                        if link is not None:
                            delete_link(t, link["index"])
            raise
        return NetworkInfo(tenant, name, net, gw, vni, mtu, bridge, vx, mac)

    def _add_vxlan(
        self, h: IPRoute, name: str, vni: int, local: ipaddress.IPv4Address, mtu: int, fd: int
    ) -> None:
        try:
            h.link(
                "add",
                ifname=name,
                kind="vxlan",
                vxlan_id=vni,
                vxlan_local=str(local),
                vxlan_port=self.vxlan_port,
                vxlan_learning=0,
                mtu=mtu,
                net_ns_fd=fd,  # created in the tenant namespace, its socket stays here
            )
        except NetlinkError as exc:
            if exc.code == EEXIST:
                raise Conflict(f"VNI {vni} is already in use on this host") from exc
            raise

    def _read_network(self, t: IPRoute, tenant: str, name: str) -> NetworkInfo | None:
        bridge = get_link(t, self.names.bridge(tenant, name))
        if bridge is None:
            return None
        if bridge.get_attr("IFLA_IFALIAS") != alias("network", tenant, name):
            raise Conflict(f"bridge {self.names.bridge(tenant, name)} is not {tenant}/{name}'s")
        return self._network_info(t, tenant, name, bridge)

    def _network_info(self, t: IPRoute, tenant: str, name: str, bridge: Any) -> NetworkInfo:
        addrs = ipv4_addresses(t, bridge["index"])
        if not addrs:
            raise NetworkError(f"bridge of {tenant}/{name} has no gateway address")
        vx_name = self.names.vxlan(tenant, name)
        vx = get_link(t, vx_name)
        vni = None
        if vx is not None:
            vni = int(vx.get_nested("IFLA_LINKINFO", "IFLA_INFO_DATA", "IFLA_VXLAN_ID"))
        return NetworkInfo(
            tenant=tenant,
            name=name,
            cidr=addrs[0].network,
            gateway=addrs[0].ip,
            vni=vni,
            mtu=int(bridge.get_attr("IFLA_MTU")),
            bridge=bridge.get_attr("IFLA_IFNAME"),
            vxlan=vx_name if vx is not None else None,
            gateway_mac=bridge.get_attr("IFLA_ADDRESS"),
        )

    def _networks(self, t: IPRoute, tenant: str) -> list[NetworkInfo]:
        out = []
        for link in t.get_links():
            parsed = parse_alias(link.get_attr("IFLA_IFALIAS"))
            if parsed and parsed[0] == "network" and len(parsed[1]) == 2:
                out.append(self._network_info(t, tenant, parsed[1][1], link))
        return sorted(out, key=lambda n: n.name)

    def networks(self, tenant: str) -> list[NetworkInfo]:
        path = self.tenant_netns(tenant)
        if not is_netns(path):
            return []
        with netlink(path) as t:
            return self._networks(t, tenant)

    def get_network(self, tenant: str, name: str) -> NetworkInfo | None:
        path = self.tenant_netns(tenant)
        if not is_netns(path):
            return None
        with netlink(path) as t:
            return self._read_network(t, tenant, name)

    def teardown_network(self, tenant: str, name: str) -> bool:
        """Remove a Network's bridge, VXLAN port and every pod port on it."""
        path = self.tenant_netns(tenant)
        if not is_netns(path):
            return False
        with self.locks.tenant(tenant), netlink(path) as t:
            bridge = get_link(t, self.names.bridge(tenant, name))
            if bridge is None or bridge.get_attr("IFLA_IFALIAS") != alias("network", tenant, name):
                return False
            ports = [
                link for link in t.get_links() if link.get_attr("IFLA_MASTER") == bridge["index"]
            ]
            for link in ports:
                with contextlib.suppress(NetlinkError):
                    delete_link(t, link["index"])
            delete_link(t, bridge["index"])
            self._forget_ports(path, {link.get_attr("IFLA_IFNAME") for link in ports})
            return True

    def _forget_ports(self, path: str, ports: set[str]) -> None:
        """Remove the guard set elements that name any of `ports`."""
        if not ports:
            return
        batch = []
        for elem in nft.set_elements(path, "bridge", GUARD_TABLE, rules.PODS_SET):
            if elem[0] in ports:
                batch.append(
                    f"delete element bridge {GUARD_TABLE} {rules.PODS_SET} "
                    f'{{ "{elem[0]}" . {elem[1]} . {elem[2]} }}'
                )
        for elem in nft.set_elements(path, "bridge", GUARD_TABLE, rules.OVERLAY_GW_SET):
            if elem[0] in ports:
                batch.append(
                    f"delete element bridge {GUARD_TABLE} {rules.OVERLAY_GW_SET} "
                    f'{{ "{elem[0]}" . {elem[1]} }}'
                )
        if batch:
            nft.run(path, "\n".join(batch))

    # -- pods ------------------------------------------------------------------
    def attach(
        self,
        tenant: str,
        network: str,
        pod_id: str,
        ip: ipaddress.IPv4Address,
        *,
        kind: str = "veth",
        netns: str | None = None,
        ifname: str = "eth0",
        mac: str | None = None,
        tap_owner: int | None = None,
        multi_queue: bool = False,
    ) -> Attachment:
        """Attach a pod with address `ip` to a Network.

        kind="veth": a veth pair, `ifname` in the pod namespace `netns` (name or
        path) configured with the address, MAC, MTU and default route.
        kind="tap": a persistent TAP port for a VM (no `netns`); open it with
        tap.open_tap(attachment.netns, attachment.port) and give the guest NIC
        `attachment.mac`. Idempotent: an intact attachment is returned as is.
        """
        check_pod_id(pod_id)
        if kind not in ("veth", "tap"):
            raise ValueError(f"attachment kind {kind!r} is not 'veth' or 'tap'")
        if kind == "veth" and not netns:
            raise ValueError("a veth attachment needs the pod's network namespace")
        if kind == "veth" and not 0 < len(ifname) <= 15:
            raise ValueError(f"interface name {ifname!r} must be 1-15 characters")
        path = self.tenant_netns(tenant)
        if not is_netns(path):
            raise NotFound(f"tenant {tenant} has no router on this host")
        pod_ns = netns_path(netns) if kind == "veth" and netns else None
        if pod_ns is not None and not is_netns(pod_ns):
            raise PodNetnsNotFound(f"pod network namespace {netns} does not exist")
        with self.locks.tenant(tenant), netlink(path) as t:
            info = self._read_network(t, tenant, network)
            if info is None:
                raise NotFound(f"network {tenant}/{network} does not exist on this host")
            ip = ipaddress.IPv4Address(ip)
            if ip not in info.cidr or ip in (
                info.gateway,
                info.cidr.network_address,
                info.cidr.broadcast_address,
            ):
                raise ValueError(f"{ip} is not a pod address of {info.cidr}")
            mac = (mac or pod_mac(ip)).lower()
            port = self.names.port(tenant, network, pod_id)
            att = Attachment(
                tenant=tenant,
                network=network,
                pod_id=pod_id,
                kind=kind,
                ip=ipaddress.IPv4Interface(f"{ip}/{info.cidr.prefixlen}"),
                gateway=info.gateway,
                mac=mac,
                mtu=info.mtu,
                port=port,
                ifname=ifname if kind == "veth" else None,
                netns=pod_ns if pod_ns is not None else path,
                tenant_netns=path,
            )
            existing = get_link(t, port)
            if existing is not None:
                if existing.get_attr("IFLA_IFALIAS") != self._port_alias(att):
                    raise Conflict(f"port {port} exists and belongs to another attachment")
                if not self._problems(t, att):
                    return att
                delete_link(t, existing["index"])  # half-made or changed: rebuild
                self._forget_ports(path, {port})
            try:
                self._create_port(t, att, info, tap_owner, multi_queue)
            except BaseException:
                with contextlib.suppress(Exception):
                    link = get_link(t, port)
                    if link is not None:
                        delete_link(t, link["index"])
                    self._forget_ports(path, {port})
                raise
            return att

    @staticmethod
    def _port_alias(att: Attachment) -> str:
        # The anti-spoofing entry is in it too, so detach can remove exactly that.
        key = pod_key(att.pod_id)
        return alias("port", att.tenant, att.network, key, att.kind, att.mac, str(att.ip.ip))

    def _create_port(
        self,
        t: IPRoute,
        att: Attachment,
        info: NetworkInfo,
        tap_owner: int | None,
        multi_queue: bool,
    ) -> None:
        bridge = t.link("get", ifname=info.bridge)[0]["index"]
        # Allow the pod's frames before its port exists, so that nothing it
        # sends is ever forwarded unchecked.
        nft.run(
            att.tenant_netns,
            f"add element bridge {GUARD_TABLE} {rules.PODS_SET} "
            f"{{ {rules.guard_element(att.port, att.mac, att.ip.ip)} }}",
        )
        if att.kind == "veth":
            fd = os.open(att.netns, os.O_RDONLY | os.O_CLOEXEC)
            try:
                t.link(
                    "add",
                    ifname=att.port,
                    kind="veth",
                    mtu=att.mtu,
                    master=bridge,
                    state="up",
                    peer={
                        "ifname": att.ifname,
                        "address": att.mac,
                        "mtu": att.mtu,
                        "net_ns_fd": fd,
                    },
                )
            except NetlinkError as exc:
                if exc.code == EEXIST:
                    raise InterfaceExists(
                        f"{att.port} or {att.ifname} in the pod namespace already exists"
                    ) from exc
                raise
            finally:
                os.close(fd)
            index = t.link("get", ifname=att.port)[0]["index"]
            t.link("set", index=index, ifalias=self._port_alias(att))
            with netlink(att.netns) as p:
                assert att.ifname is not None
                pi = p.link("get", ifname=att.ifname)[0]["index"]
                p.addr("add", index=pi, address=str(att.ip.ip), prefixlen=att.ip.network.prefixlen)
                p.link("set", index=pi, state="up")
                p.route("add", dst="0.0.0.0/0", gateway=str(att.gateway), oif=pi)
        else:
            create_tap(att.tenant_netns, att.port, owner=tap_owner, multi_queue=multi_queue)
            index = t.link("get", ifname=att.port)[0]["index"]
            t.link(
                "set",
                index=index,
                ifalias=self._port_alias(att),
                mtu=att.mtu,
                master=bridge,
                state="up",
            )

    def _problems(self, t: IPRoute, att: Attachment) -> list[str]:
        """What is missing or different in the kernel for `att` (empty: intact)."""
        problems = []
        port = get_link(t, att.port)
        if port is None:
            return [f"port {att.port} is missing"]
        info = self._read_network(t, att.tenant, att.network)
        if (
            info is None
            or port.get_attr("IFLA_MASTER") != t.link("get", ifname=info.bridge)[0]["index"]
        ):
            problems.append(f"port {att.port} is not on the network's bridge")
        elems = nft.set_elements(att.tenant_netns, "bridge", GUARD_TABLE, rules.PODS_SET)
        if [att.port, att.mac, str(att.ip.ip)] not in elems:
            problems.append(f"anti-spoofing entry for {att.port} is missing")
        if att.kind == "veth":
            if not is_netns(att.netns):
                return [*problems, f"pod namespace {att.netns} is gone"]
            assert att.ifname is not None
            with netlink(att.netns) as p:
                link = get_link(p, att.ifname)
                if link is None:
                    problems.append(f"{att.ifname} is missing in the pod namespace")
                else:
                    if link.get_attr("IFLA_ADDRESS") != att.mac:
                        problems.append(f"{att.ifname} has MAC {link.get_attr('IFLA_ADDRESS')}")
                    if att.ip not in ipv4_addresses(p, link["index"]):
                        problems.append(f"{att.ifname} lacks address {att.ip}")
        return problems

    def check(self, att: Attachment) -> list[str]:
        """Verify an attachment against the kernel; returns the problems found."""
        if not is_netns(att.tenant_netns):
            return [f"tenant {att.tenant} has no router on this host"]
        with netlink(att.tenant_netns) as t:
            return self._problems(t, att)

    def detach(self, tenant: str, network: str, pod_id: str) -> bool:
        """Remove a pod's port (and with a veth its pod end) and its anti-spoofing entry.
        Idempotent: False if there was nothing to remove."""
        path = self.tenant_netns(tenant)
        if not is_netns(path):
            return False
        port = self.names.port(tenant, network, pod_id)
        with self.locks.tenant(tenant), netlink(path) as t:
            link = get_link(t, port)
            if link is None:
                self._forget_ports(path, {port})  # a half-made attach may have left one
                return False
            info = self._port_info(tenant, link)
            if info is None or (info.network, info.pod_key) != (network, pod_key(pod_id)):
                raise Conflict(f"port {port} belongs to another attachment")
            self._remove_port(t, path, link, info)
            return True

    def remove_port(self, tenant: str, port: str) -> bool:
        """Remove a pod port by its name (for repair, when the pod id is not known)."""
        path = self.tenant_netns(tenant)
        if not is_netns(path):
            return False
        with self.locks.tenant(tenant), netlink(path) as t:
            link = get_link(t, port)
            info = self._port_info(tenant, link) if link is not None else None
            if info is None:
                return False
            self._remove_port(t, path, link, info)
            return True

    def _remove_port(self, t: IPRoute, path: str, link: Any, info: PortInfo) -> None:
        delete_link(t, link["index"])
        element = f"{rules.PODS_SET} {{ {rules.guard_element(info.port, info.mac, info.ip)} }}"
        # add-then-delete: one transaction that succeeds whether it existed or not
        nft.run(
            path,
            f"add element bridge {GUARD_TABLE} {element}\n"
            f"delete element bridge {GUARD_TABLE} {element}",
        )

    @staticmethod
    def _port_info(tenant: str, link: Any) -> PortInfo | None:
        name = link.get_attr("IFLA_IFNAME")
        parsed = parse_alias(link.get_attr("IFLA_IFALIAS"))
        if not name.startswith(PORT) or not parsed or parsed[0] != "port":
            return None
        parts = parsed[1]
        if len(parts) != 6 or parts[0] != tenant:
            return None
        return PortInfo(tenant, parts[1], parts[2], parts[3], name, parts[4], parts[5])

    def ports(self, tenant: str) -> list[PortInfo]:
        """Pod ports present in the tenant's namespace (from their ownership records)."""
        path = self.tenant_netns(tenant)
        if not is_netns(path):
            return []
        with netlink(path) as t:
            found = (self._port_info(tenant, link) for link in t.get_links())
            return [p for p in found if p is not None]

    # -- overlay ---------------------------------------------------------------
    def set_remote_endpoints(
        self, tenant: str, network: str, endpoints: Iterable[RemoteEndpoint]
    ) -> None:
        """Declare the complete set of the Network's pods on other hosts (see overlay.py);
        entries of pods no longer listed are removed. Endpoints on this host are ignored."""
        path = self.tenant_netns(tenant)
        if not is_netns(path):
            raise NotFound(f"tenant {tenant} has no router on this host")
        wanted = [
            RemoteEndpoint(
                ipaddress.IPv4Address(ep.ip), ep.mac.lower(), ipaddress.IPv4Address(ep.host)
            )
            for ep in endpoints
        ]
        wanted = [ep for ep in wanted if ep.host != self.underlay_ip]
        self.add_peer_hosts(ep.host for ep in wanted)
        with self.locks.tenant(tenant), netlink(path) as t:
            vx, br = self._overlay_ports(t, tenant, network)
            overlay.program(t, vx, br, wanted)

    def remote_endpoints(self, tenant: str, network: str) -> list[RemoteEndpoint]:
        """The remote pods currently programmed for a Network."""
        path = self.tenant_netns(tenant)
        if not is_netns(path):
            return []
        with netlink(path) as t:
            try:
                vx, br = self._overlay_ports(t, tenant, network)
            except NotFound:
                return []
            return overlay.read(t, vx, br)

    def _overlay_ports(self, t: IPRoute, tenant: str, network: str) -> tuple[int, int]:
        info = self._read_network(t, tenant, network)
        if info is None or info.vxlan is None:
            raise NotFound(f"network {tenant}/{network} has no VXLAN port on this host")
        vx = t.link("get", ifname=info.vxlan)[0]["index"]
        br = t.link("get", ifname=info.bridge)[0]["index"]
        return vx, br
