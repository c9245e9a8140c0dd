"""NetworkManager: the datapath and IPAM together, the API the node agent and CNI plugin call.

It keeps the two consistent: an address is leased (pending) before the
datapath is touched, confirmed once the pod is attached, released when the
attach fails or the pod is detached; `gc` repairs what crashes left behind
(stale leases and ports without a lease).
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
from collections.abc import Iterable

from .datapath import Datapath
from .ipam import IPAM, Lease, Pool, PoolConflict, PoolNotFound
from .ipam_local import LocalDirBackend
from .model import Attachment, Conflict, NetworkInfo, NotFound, RemoteEndpoint, TenantInfo
from .namespaces import netns_id, netns_path


@dataclasses.dataclass
class GCReport:
    released: list[tuple[str, str, Lease]] = dataclasses.field(default_factory=list)
    removed_ports: list[tuple[str, str, str]] = dataclasses.field(default_factory=list)


class NetworkManager:
    def __init__(self, datapath: Datapath, ipam: IPAM) -> None:
        self.datapath = datapath
        self.ipam = ipam

    @classmethod
    def standalone(cls, state_dir: str, **datapath_options: object) -> NetworkManager:
        """Local state only: IPAM pools in `state_dir`/ipam (no control plane)."""
        datapath = Datapath(state_dir, **datapath_options)  # type: ignore[arg-type]
        return cls(datapath, IPAM(LocalDirBackend(os.path.join(state_dir, "ipam"))))

    # -- tenants and networks ----------------------------------------------------
    def ensure_tenant(self, tenant: str) -> TenantInfo:
        return self.datapath.ensure_tenant(tenant)

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
        pool = Pool.of(tenant, name, cidr, gateway)
        created = self.ipam.get_pool(tenant, name) is None
        try:
            self.ipam.ensure_pool(pool)
        except PoolConflict as exc:
            raise Conflict(str(exc)) from exc
        try:
            return self.datapath.ensure_network(tenant, name, cidr, gateway, vni=vni, mtu=mtu)
        except BaseException:
            if created and not self.ipam.leases(pool):
                self.ipam.delete_pool(pool)
            raise

    def networks(self, tenant: str) -> list[NetworkInfo]:
        return self.datapath.networks(tenant)

    def _pool(self, tenant: str, network: str, *, cached: bool = True) -> Pool:
        pool = self.ipam.get_pool(tenant, network, cached=cached)
        if pool is None:
            raise NotFound(f"network {tenant}/{network} has no address pool")
        return pool

    # -- pods -------------------------------------------------------------------------
    def attach(
        self,
        tenant: str,
        network: str,
        pod_id: str,
        *,
        kind: str = "veth",
        netns: str | None = None,
        ifname: str = "eth0",
        ip: str | ipaddress.IPv4Address | None = None,
        mac: str | None = None,
        tap_owner: int | None = None,
        multi_queue: bool = False,
        pod: str = "",
    ) -> Attachment:
        """Lease an address (or the requested `ip`) and attach the pod. Idempotent.
        `pod` (server mode) records the pod's namespace/name/uid in the lease."""
        ns = netns_path(netns) if netns else ""

        def allocate(pool: Pool) -> Lease:
            return self.ipam.allocate(
                pool,
                pod_id,
                requested=ipaddress.IPv4Address(ip) if ip is not None else None,
                netns=ns if kind == "veth" else "",
                port=self.datapath.names.port(tenant, network, pod_id),
                pod=pod,
            )

        pool = self._pool(tenant, network)
        try:
            lease = allocate(pool)
        except (PoolNotFound, PoolConflict):
            pool = self._pool(tenant, network, cached=False)  # redefined meanwhile?
            lease = allocate(pool)
        try:
            att = self.datapath.attach(
                tenant,
                network,
                pod_id,
                lease.address,
                kind=kind,
                netns=netns,
                ifname=ifname,
                mac=mac,
                tap_owner=tap_owner,
                multi_queue=multi_queue,
            )
        except BaseException:
            if lease.state == "pending":
                self.ipam.release(pool, pod_id)
            raise
        self.ipam.confirm(
            pool, pod_id, netns_id=(netns_id(ns) or "") if kind == "veth" else "", mac=att.mac
        )
        return att

    def detach(self, tenant: str, network: str, pod_id: str) -> bool:
        """Detach the pod and release its address. Idempotent (False: nothing was there)."""
        removed = self.datapath.detach(tenant, network, pod_id)
        pool = self.ipam.get_pool(tenant, network)
        released = self.ipam.release(pool, pod_id) if pool is not None else None
        return removed or released is not None

    def attachment(self, tenant: str, network: str, pod_id: str) -> Attachment | None:
        """Rebuild a pod's attachment record from its lease (None if it has none)."""
        pool = self.ipam.get_pool(tenant, network)
        lease = self.ipam.lookup(pool, pod_id) if pool is not None else None
        info = self.datapath.get_network(tenant, network)
        if lease is None or info is None:
            return None
        kind = next(
            (p.kind for p in self.datapath.ports(tenant) if p.port == lease.port),
            "veth" if lease.netns else "tap",
        )
        return Attachment(
            tenant=tenant,
            network=network,
            pod_id=pod_id,
            kind=kind,
            ip=ipaddress.IPv4Interface(f"{lease.address}/{info.cidr.prefixlen}"),
            gateway=info.gateway,
            mac=lease.mac,
            mtu=info.mtu,
            port=lease.port,
            ifname=None,
            netns=lease.netns or self.datapath.tenant_netns(tenant),
            tenant_netns=self.datapath.tenant_netns(tenant),
        )

    def check(self, att: Attachment) -> list[str]:
        """Problems with an attachment: its lease and its kernel state."""
        problems = []
        pool = self.ipam.get_pool(att.tenant, att.network)
        lease = self.ipam.lookup(pool, att.pod_id) if pool is not None else None
        if lease is None:
            problems.append(f"{att.pod_id} holds no address on {att.tenant}/{att.network}")
        elif lease.address != att.ip.ip:
            problems.append(f"{att.pod_id} is leased {lease.address}, not {att.ip.ip}")
        return problems + self.datapath.check(att)

    # -- overlay --------------------------------------------------------------------
    def set_remote_endpoints(
        self, tenant: str, network: str, endpoints: Iterable[RemoteEndpoint]
    ) -> None:
        self.datapath.set_remote_endpoints(tenant, network, endpoints)

    # -- teardown and repair ------------------------------------------------------------
    def teardown_network(self, tenant: str, name: str) -> bool:
        removed = self.datapath.teardown_network(tenant, name)
        pool = self.ipam.get_pool(tenant, name)
        if pool is not None:
            self.ipam.delete_pool(pool)
            removed = True
        return removed

    def teardown_tenant(self, tenant: str) -> bool:
        removed = False
        for pool in self.ipam.pools():
            if pool.tenant == tenant:
                self.ipam.delete_pool(pool)
                removed = True
        return self.datapath.teardown_tenant(tenant) or removed

    def teardown_all(self) -> None:
        for pool in self.ipam.pools():
            self.ipam.delete_pool(pool)
        self.datapath.teardown_all()

    def gc(self, valid_owners: Iterable[str] | None = None) -> GCReport:
        """Release stale leases (crashed attaches, vanished pods; with `valid_owners`,
        also every lease of this node not listed), detach their ports, and remove
        ports that hold no lease."""
        keep = set(valid_owners) if valid_owners is not None else None
        report = GCReport()

        def stale(lease: Lease) -> bool:
            if (
                keep is not None
                and lease.node == self.ipam.node
                and lease.state == "active"  # a pending one may be an attach in flight
                and lease.owner not in keep
            ):
                return True
            return self.ipam.is_stale(lease)

        for pool in self.ipam.pools():
            for lease in self.ipam.reclaim(pool, stale):
                report.released.append((pool.tenant, pool.network, lease))
                self.datapath.detach(pool.tenant, pool.network, lease.owner)
        for tenant in self.datapath.tenants():
            for port in self.datapath.ports(tenant):
                owning = self.ipam.get_pool(tenant, port.network)
                leased = {lease.port for lease in self.ipam.leases(owning)} if owning else set()
                if port.port not in leased:
                    self.datapath.remove_port(tenant, port.port)
                    report.removed_ports.append((tenant, port.network, port.pod_key))
        return report
