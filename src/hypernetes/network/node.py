"""The node side of tenant networks: make one host's datapath match the API's objects.

The node agent calls `NodeNetworks.sync(networks, pods, nodes)` with what it
reads from the API server (its informers' caches) whenever one of them
changes; the call is blocking and idempotent (from asyncio:
``asyncio.to_thread``). It does not attach pods — the pod sync loop does that
through the same `NetworkManager` (``attach(..., pod=pod_ref(pod))``) — it
keeps the shared parts right:

- every Ready Network with a pod on this node exists here (tenant router,
  bridge with the gateway, VXLAN port with the Network's VNI);
- its forwarding entries list exactly its pods on the other nodes, from their
  ``status.podIP`` and their node's ``InternalIP`` (MACs are derived from
  addresses, as attach does by default), and VXLAN is accepted from exactly
  the other nodes;
- Networks no pod here uses any more (and with no port left) are removed, and
  so are tenant routers left without networks.

It never deletes an IPAM pool: pools are cluster-wide and go with their
Network object (the network controller deletes them).
"""

from __future__ import annotations

import dataclasses
import ipaddress
import logging
from collections.abc import Iterable, Mapping

from .manager import NetworkManager
from .model import Conflict, NetworkError, RemoteEndpoint
from .names import pod_mac
from .resource import (
    Obj,
    is_ready_network,
    name_of,
    network_for_pod,
    pod_tenant,
    pod_uses_network,
    tenant_of,
)

log = logging.getLogger(__name__)
NetKey = tuple[str, str]  # (tenant, network name)


@dataclasses.dataclass
class SyncReport:
    ensured: list[NetKey] = dataclasses.field(default_factory=list)
    removed: list[NetKey] = dataclasses.field(default_factory=list)
    removed_tenants: list[str] = dataclasses.field(default_factory=list)
    remote: dict[NetKey, int] = dataclasses.field(default_factory=dict)
    errors: dict[NetKey, str] = dataclasses.field(default_factory=dict)


def node_address(node: Obj) -> ipaddress.IPv4Address | None:
    """A Node's InternalIP (its VXLAN endpoint), None if it has none."""
    for addr in (node.get("status") or {}).get("addresses") or []:
        if addr.get("type") == "InternalIP":
            try:
                return ipaddress.IPv4Address(addr.get("address"))
            except ValueError:
                continue
    return None


class NodeNetworks:
    """Reconciles the datapath of node `node` (see the module docstring).

    With `overlay` false, Networks are created without VXLAN (a single-node
    cluster, or a host without an underlay address).
    """

    def __init__(self, manager: NetworkManager, node: str, *, overlay: bool = True) -> None:
        self.manager = manager
        self.node = node
        self.overlay = overlay

    def placement(
        self,
        networks: Iterable[Obj],
        pods: Iterable[Obj],
        namespace_tenants: Mapping[str, str] | None = None,
    ) -> dict[NetKey, tuple[Obj, list[Obj]]]:
        """Ready Networks with the pods on them: (tenant, name) -> (network, pods)."""
        ready = [n for n in networks if is_ready_network(n)]
        out: dict[NetKey, tuple[Obj, list[Obj]]] = {}
        for pod in pods:
            if not pod_uses_network(pod):
                continue
            network = network_for_pod(pod, ready, tenant=pod_tenant(pod, namespace_tenants))
            if network is not None:
                key = (tenant_of(network), name_of(network))
                out.setdefault(key, (network, []))[1].append(pod)
        return out

    def sync(
        self,
        networks: Iterable[Obj],
        pods: Iterable[Obj],
        nodes: Iterable[Obj],
        namespace_tenants: Mapping[str, str] | None = None,
    ) -> SyncReport:
        report = SyncReport()
        addresses = {name_of(n): node_address(n) for n in nodes}
        placed = self.placement(networks, pods, namespace_tenants)
        wanted = {
            key: (network, members)
            for key, (network, members) in placed.items()
            if any(_node_of(p) == self.node for p in members)
        }
        for key, (network, members) in sorted(wanted.items()):
            try:
                self._ensure(key, network, members, addresses, report)
            except (NetworkError, ValueError) as exc:
                log.warning("network: %s/%s on %s: %s", *key, self.node, exc)
                report.errors[key] = str(exc)
        if self.overlay:
            peers = [a for n, a in addresses.items() if a is not None and n != self.node]
            self.manager.datapath.set_peer_hosts(peers)
        self._remove_unused(set(wanted) | set(report.errors), report)
        return report

    def _ensure(
        self,
        key: NetKey,
        network: Obj,
        members: list[Obj],
        addresses: Mapping[str, ipaddress.IPv4Address | None],
        report: SyncReport,
    ) -> None:
        tenant, name = key
        spec, vni = network.get("spec") or {}, (network.get("status") or {}).get("vni")
        args = (tenant, name, spec["cidr"], spec.get("gateway"))
        try:
            self.manager.ensure_network(*args, vni=vni if self.overlay else None)
        except Conflict:
            # The Network was deleted and made again differently while nobody here
            # used it: rebuild it, unless pods are still attached to the old one.
            if any(p.network == name for p in self.manager.datapath.ports(tenant)):
                raise
            self.manager.datapath.teardown_network(tenant, name)
            self.manager.ensure_network(*args, vni=vni if self.overlay else None)
        report.ensured.append(key)
        if not self.overlay:
            return
        endpoints = []
        for pod in members:
            node, ip = _node_of(pod), (pod.get("status") or {}).get("podIP")
            host = addresses.get(node) if node else None
            if node == self.node or not ip or host is None:
                continue
            address = ipaddress.IPv4Address(ip)
            endpoints.append(RemoteEndpoint(address, pod_mac(address), host))
        self.manager.set_remote_endpoints(tenant, name, endpoints)
        report.remote[key] = len(endpoints)

    def teardown(self) -> None:
        """Remove this node's whole datapath (the node leaves). Pools stay: in server mode
        they are the cluster's, so never call NetworkManager.teardown_* here."""
        self.manager.datapath.teardown_all()

    def _remove_unused(self, keep: set[NetKey], report: SyncReport) -> None:
        datapath = self.manager.datapath
        for tenant in datapath.tenants():
            in_use = {p.network for p in datapath.ports(tenant)}
            for info in datapath.networks(tenant):
                key = (tenant, info.name)
                if key not in keep and info.name not in in_use:
                    datapath.teardown_network(tenant, info.name)
                    report.removed.append(key)
            if not datapath.networks(tenant) and not datapath.ports(tenant):
                datapath.teardown_tenant(tenant)
                report.removed_tenants.append(tenant)


def _node_of(pod: Obj) -> str:
    return str((pod.get("spec") or {}).get("nodeName") or "")
