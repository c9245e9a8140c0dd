"""The network controller: default networks, VNIs, status and deletion of `Network` objects.

- A Tenant that appears gets its default Network ``<tenant>-default`` (CIDR
  `default_cidr`, 10.244.0.0/24 unless configured: tenants may all use the same
  one, they are separate routing domains). A Tenant that is gone takes its
  Networks along.
- Every Network gets a VXLAN network identifier unique in the cluster. The
  allocations live in one document (ConfigMap ``kube-system/hypernetes-vnis``,
  network uid -> VNI) updated by compare-and-swap on its resourceVersion, so
  even two controllers running at once (say, across a leader-election
  hand-over) can never hand out one VNI twice. ``status.vni`` is a copy.
- ``status.phase``: Pending until it has a VNI, then Ready; Terminating once
  deleted; Failed if it overlaps an older Network of the same tenant (two
  creates that raced past admission).
- A deleted Network keeps the ``hypernetes.io/network-in-use`` finalizer while
  any unfinished pod is on it (by annotation, or the tenant default); then the
  controller deletes its IPAM pool, frees its VNI and removes the finalizer.
- Every `GC_PERIOD` seconds: VNIs of Networks that no longer exist are freed,
  and address leases whose pod is gone (crashed nodes, pods deleted without a
  CNI DEL) are released from every pool.

The node side (bridges, VXLAN, forwarding entries) is `hypernetes.network.node`,
run by each node's agent.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Hashable
from typing import Any

from hypernetes.client import (
    CONFIGMAPS,
    NAMESPACES,
    NETWORKS,
    PODS,
    TENANTS,
    ApiError,
    Client,
    Conflict,
    Informer,
    NotFound,
    Obj,
)
from hypernetes.controllers.runtime import Controller
from hypernetes.network import resource as net
from hypernetes.network.ipam import Lease, pool_id
from hypernetes.network.ipam_store import (
    NAMESPACE,
    POOL_LABEL,
    configmap_name,
    pod_uids,
    update_document,
)

log = logging.getLogger(__name__)

VNI_CONFIGMAP = "hypernetes-vnis"
VNI_KEY = "vnis"
RECHECK = 3.0
"""Seconds between looks at a terminating Network whose pods are still there."""
GC_PERIOD = 60.0
LEASE_GRACE = 120
"""A lease younger than this is never reclaimed (its pod may not be listed yet; clock skew)."""
GC_KEY = ("gc", "")


class NetworkController(Controller):
    name = "network"
    workers = 2

    def __init__(self, client: Client, *, default_cidr: str = net.DEFAULT_CIDR) -> None:
        super().__init__(client)
        self.default_cidr = default_cidr

    async def setup(self) -> None:
        self.tenants = Informer(self.client, TENANTS, resync_period=300.0)
        self.networks = Informer(self.client, NETWORKS, resync_period=300.0)
        self.pods = Informer(self.client, PODS)
        self.namespaces = Informer(self.client, NAMESPACES)
        self.tenants.add_handlers(
            on_add=self._tenant_event,
            on_update=lambda _old, new: self._tenant_event(new),
            on_delete=self._tenant_event,
        )
        self.networks.add_handlers(
            on_add=self._network_event,
            on_update=lambda _old, new: self._network_event(new),
            on_delete=self._network_event,
        )
        self.pods.add_handlers(
            on_add=self._pod_event,
            on_update=lambda _old, new: self._pod_event(new),
            on_delete=self._pod_event,
        )
        for informer in (self.tenants, self.networks, self.pods, self.namespaces):
            self.watch(informer)
        self.queue.add_after(GC_KEY, 1.0)

    # -- events -----------------------------------------------------------------
    def _tenant_event(self, tenant: Obj) -> None:
        self.queue.add(("tenant", net.name_of(tenant)))

    def _network_event(self, network: Obj) -> None:
        self.queue.add(("network", net.name_of(network)))
        self.queue.add(("tenant", net.tenant_of(network)))  # e.g. its default was deleted

    def _pod_event(self, pod: Obj) -> None:
        # Only deletions of Networks wait for pods; their events let it go on at once.
        network = net.network_for_pod(pod, self.networks.items(), tenant=self._ns_tenant(pod))
        if network is not None and network["metadata"].get("deletionTimestamp"):
            self.queue.add(("network", net.name_of(network)))

    def _ns_tenant(self, pod: Obj) -> str | None:
        ns = self.namespaces.get(str(pod.get("metadata", {}).get("namespace", "")))
        value = ((ns or {}).get("metadata", {}).get("labels") or {}).get(net.TENANT_LABEL)
        return str(value) if value else None

    async def reconcile(self, key: Hashable) -> float | None:
        assert isinstance(key, tuple)
        kind, name = key
        if kind == "tenant":
            return await self._reconcile_tenant(name) if name else None
        if kind == "network":
            return await self._reconcile_network(name)
        return await self._gc()

    # -- tenants ----------------------------------------------------------------
    async def _reconcile_tenant(self, tenant: str) -> float | None:
        # Fresh, not from the cache: a default network must not be made again for a
        # tenant whose deletion the cache has not seen yet.
        try:
            obj: Obj | None = await self.client.get(TENANTS, tenant)
        except NotFound:
            obj = None
        if obj is None or obj["metadata"].get("deletionTimestamp"):
            for network in self.networks.items():
                if net.tenant_of(network) == tenant and not network["metadata"].get(
                    "deletionTimestamp"
                ):
                    with contextlib.suppress(NotFound):
                        await self.client.delete(NETWORKS, net.name_of(network))
            return None
        name = net.default_network_name(tenant)
        if self.networks.get(name) is not None:
            return None
        body = {
            "apiVersion": NETWORKS.api_version,
            "kind": "Network",
            "metadata": {"name": name, "labels": {net.TENANT_LABEL: tenant}},
            "spec": {"tenant": tenant, "cidr": self.default_cidr},
        }
        try:
            await self.client.create(NETWORKS, body)
        except Conflict:
            return None  # created meanwhile (another controller, or the informer lags)
        except ApiError as exc:
            if exc.code == 422:  # e.g. the default CIDR clashes with this host: say so, slowly
                log.warning("network: default network for tenant %s: %s", tenant, exc.message)
                return GC_PERIOD
            raise
        log.info("network: created %s for tenant %s", name, tenant)
        return None

    # -- networks ---------------------------------------------------------------
    async def _reconcile_network(self, name: str) -> float | None:
        try:
            network = await self.client.get(NETWORKS, name)
        except NotFound:
            await self._release_vni(name=name)
            return None
        if network["metadata"].get("deletionTimestamp"):
            return await self._finish_deletion(network)
        if net.FINALIZER not in (network["metadata"].get("finalizers") or []):
            await self._add_finalizer(network)
        older = [
            other
            for other in net.same_tenant_overlaps(network, self.networks.items())
            if _created(other) < _created(network)
        ]
        if older:
            clash = ", ".join(net.name_of(o) for o in older)
            await self._set_status(network, net.PHASE_FAILED, None, f"CIDR overlaps {clash}")
            return None
        vni = await self._allocate_vni(network)
        await self._set_status(network, net.PHASE_READY, vni, "")
        return None

    async def _finish_deletion(self, network: Obj) -> float | None:
        status = network.get("status") or {}
        await self._set_status(network, net.PHASE_TERMINATING, status.get("vni"), "")
        users = await self._pods_on(network)
        if users:
            await self._set_status(
                network,
                net.PHASE_TERMINATING,
                status.get("vni"),
                f"in use by {len(users)} pod(s), e.g. {users[0]}",
            )
            return RECHECK
        pool = pool_id(net.tenant_of(network), net.name_of(network))
        with contextlib.suppress(NotFound):
            await self.client.delete(CONFIGMAPS, configmap_name(pool), NAMESPACE)
        await self._release_vni(uid=network["metadata"]["uid"])
        finalizers = [f for f in network["metadata"].get("finalizers") or [] if f != net.FINALIZER]
        network["metadata"]["finalizers"] = finalizers
        try:
            await self.client.replace(NETWORKS, net.name_of(network), network)
        except NotFound:
            return None
        log.info("network: %s deleted (no pod uses it)", net.name_of(network))
        return None

    async def _pods_on(self, network: Obj) -> list[str]:
        """Pods on this Network, from a fresh list (the cache may lag a new pod)."""
        listing = await self.client.list_all(PODS)
        namespaces = await self.client.list_all(NAMESPACES)
        ns_tenants = {
            ns["metadata"]["name"]: (ns["metadata"].get("labels") or {}).get(net.TENANT_LABEL)
            for ns in namespaces.get("items") or []
        }
        users = []
        for pod in listing.get("items") or []:
            tenant = ns_tenants.get(pod["metadata"].get("namespace", ""))
            on = net.network_for_pod(pod, [network], tenant=tenant)
            if on is not None and net.pod_uses_network(pod):
                users.append(f"{pod['metadata'].get('namespace')}/{pod['metadata']['name']}")
        return users

    async def _add_finalizer(self, network: Obj) -> None:
        finalizers = [*(network["metadata"].get("finalizers") or []), net.FINALIZER]
        patch = {"metadata": {"finalizers": finalizers}}
        await self.client.patch(NETWORKS, net.name_of(network), patch)

    async def _set_status(self, network: Obj, phase: str, vni: int | None, message: str) -> None:
        status = network.get("status") or {}
        wanted: dict[str, Any] = {"phase": phase, "vni": vni, "message": message or None}
        if all(status.get(k) == v for k, v in wanted.items()):
            return
        try:
            updated = await self.client.patch(
                NETWORKS, net.name_of(network), {"status": wanted}, subresource="status"
            )
        except NotFound:
            return
        network["status"] = updated.get("status") or {}
        network["metadata"]["resourceVersion"] = updated["metadata"]["resourceVersion"]

    # -- VNIs -------------------------------------------------------------------
    async def _allocate_vni(self, network: Obj) -> int:
        uid, name = network["metadata"]["uid"], net.name_of(network)

        def mutate(doc: dict[str, Any] | None) -> tuple[dict[str, Any] | None, int]:
            doc = doc or {"allocations": {}}
            allocations: dict[str, Any] = doc["allocations"]
            if uid in allocations:
                return doc, int(allocations[uid]["vni"])
            used = {int(a["vni"]) for a in allocations.values()}
            vni = next((v for v in range(net.VNI_MIN, net.VNI_MAX + 1) if v not in used), None)
            if vni is None:
                raise RuntimeError("no VXLAN network identifier left")
            allocations[uid] = {"network": name, "vni": vni}
            return doc, vni

        return await update_document(self.client, VNI_CONFIGMAP, mutate, key=VNI_KEY)

    async def _release_vni(self, *, uid: str | None = None, name: str | None = None) -> None:
        def mutate(doc: dict[str, Any] | None) -> tuple[dict[str, Any] | None, None]:
            if doc is None:
                return None, None
            doc["allocations"] = {
                u: a
                for u, a in doc["allocations"].items()
                if u != uid and (name is None or a.get("network") != name)
            }
            return doc, None

        await update_document(self.client, VNI_CONFIGMAP, mutate, key=VNI_KEY)

    async def vnis(self) -> dict[str, int]:
        """Network uid -> VNI, as stored (for tests and tools)."""
        try:
            cm = await self.client.get(CONFIGMAPS, VNI_CONFIGMAP, NAMESPACE)
        except NotFound:
            return {}
        doc = json.loads((cm.get("data") or {}).get(VNI_KEY) or "{}")
        return {u: int(a["vni"]) for u, a in (doc.get("allocations") or {}).items()}

    # -- garbage collection -----------------------------------------------------
    async def _gc(self) -> float:
        listing = await self.client.list_all(NETWORKS)
        alive = {n["metadata"]["uid"] for n in listing.get("items") or []}

        def drop_dead(doc: dict[str, Any] | None) -> tuple[dict[str, Any] | None, None]:
            if doc is None:
                return None, None
            doc["allocations"] = {u: a for u, a in doc["allocations"].items() if u in alive}
            return doc, None

        await update_document(self.client, VNI_CONFIGMAP, drop_dead, key=VNI_KEY)
        await reclaim_leases(self.client)
        return GC_PERIOD


async def reclaim_leases(client: Client, *, grace: int = LEASE_GRACE) -> int:
    """Release every lease, in every pool, whose pod no longer exists; returns how many.

    Pods are listed first; a lease is only judged if it is older than `grace`
    seconds before that list, so a pod created after the list (whose lease is
    newer) is never mistaken for a gone one.
    """
    listed_at = time.time()
    uids = await pod_uids(client)
    pools = await client.list_all(CONFIGMAPS, NAMESPACE, label_selector=POOL_LABEL)
    released = 0

    def mutate(doc: dict[str, Any] | None) -> tuple[dict[str, Any] | None, int]:
        if doc is None:
            return None, 0
        gone = 0
        for address, row in list((doc.get("leases") or {}).items()):
            lease = Lease.from_row(address, row)
            if (
                lease.pod
                and net.ref_uid(lease.pod) not in uids
                and lease.created < listed_at - grace
            ):
                del doc["leases"][address]
                gone += 1
        return doc, gone

    for cm in pools.get("items") or []:
        try:
            released += await update_document(client, cm["metadata"]["name"], mutate)
        except NotFound:
            continue
    if released:
        log.info("network: released %d address lease(s) of pods that are gone", released)
    return released


def _created(obj: Obj) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return (str(meta.get("creationTimestamp", "")), net.name_of(obj))
