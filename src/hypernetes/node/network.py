"""The seam between the node agent and the tenant network (`PodNetwork`).

The agent asks a `PodNetwork` for a pod's interface before it starts a VM
sandbox and gives it back when the pod goes. Two implementations:

- `TenantNetwork`: the pod's tenant (its namespace's `hypernetes.io/tenant`
  label) and Network (`network_for_pod`: the pod's annotation, else the
  tenant's default) decide where it goes; the Network's datapath is made to
  exist here (`NodeNetworks`), an address is leased from the store-backed
  IPAM (the lease records the pod), and a TAP port is made on the Network's
  bridge inside the tenant router's namespace. The runtime opens that TAP
  there and hands QEMU the descriptor. VM pods of namespaces without a
  tenant (the platform's own) get loopback only; runc pods are never
  attached (they use the host network, as before).
- `LoopbackNetwork`: no interface, loopback only, no pod IP — the fallback
  when the datapath cannot work here (not root, no /dev/net/tun, no
  libnftables); `default_network` says why in the log.

`NodeNetworks.sync` and attach/detach never run at the same time (one lock):
a sync working from a pod list older than an attach could otherwise remove
the Network under it.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from hypernetes.client import NAMESPACES, NETWORKS, NODES, PODS, Client, Informer, NotFound
from hypernetes.resources.platform import TENANT_LABEL
from hypernetes.runtime import NetworkAttachment, RuntimeFailure

if TYPE_CHECKING:
    from hypernetes.network import Lease, NetworkManager
    from hypernetes.network.node import NodeNetworks

log = logging.getLogger(__name__)

Obj = dict[str, Any]

NETWORK_WAIT = 5.0
"""Seconds an attach waits for the pod's Network to become Ready (the controller
gives new Networks their VNI) before failing; the pod worker retries later."""
SYNC_DEBOUNCE = 0.5


class PodNetwork(Protocol):
    """Gives VM pods their interface on the tenant network."""

    async def start(self) -> None:
        """Called once before the first attach (from the agent's event loop)."""
        ...

    async def close(self) -> None:
        """The agent stops: stop watching; pods and their ports stay."""
        ...

    async def attach(self, pod: Obj) -> NetworkAttachment | None:
        """Create (or find again, idempotently) the pod's TAP device and address;
        None means loopback only."""
        ...

    async def detach(self, pod: Obj) -> None:
        """Release what `attach` made for the pod (idempotent)."""
        ...


class LoopbackNetwork:
    """No network layer: pods have loopback only."""

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def attach(self, pod: Obj) -> NetworkAttachment | None:
        return None

    async def detach(self, pod: Obj) -> None:
        return None


def datapath_unavailable() -> str | None:
    """Why the tenant datapath cannot run on this host, or None if it can."""
    if os.geteuid() != 0:
        return "not running as root"
    if not os.path.exists("/dev/net/tun"):
        return "no /dev/net/tun"
    try:
        from hypernetes.network import nft

        nft.tables(None)
    except Exception as exc:  # missing library, no nftables in the kernel, ...
        return f"nftables unusable: {exc}"
    return None


def default_network(client: Client, node_name: str, state_dir: Path, node_ip: str) -> PodNetwork:
    """`TenantNetwork` when this host can run the datapath, else `LoopbackNetwork`."""
    why = datapath_unavailable()
    if why is not None:
        log.warning("tenant networks are off on this node (%s): VM pods get loopback only", why)
        return LoopbackNetwork()
    log.info("tenant networks on: VM pods of tenants attach to their tenant's Network")
    return TenantNetwork(client, node_name, state_dir, node_ip=node_ip)


class GonePods:
    """When a lease is stale, for a long-running agent: the local crash rules, plus
    "its pod (by uid) no longer exists" judged from a pod list at most `max_age`
    seconds old, and never for a lease made after that list began (its pod may be
    newer than the list). Called from worker threads (IPAM is blocking)."""

    def __init__(
        self, node: str, list_uids: Callable[[], Iterable[str]], max_age: float = 2.0
    ) -> None:
        from hypernetes.network import LocalLiveness

        self.local = LocalLiveness(node)
        self.list_uids = list_uids
        self.max_age = max_age
        self._uids: set[str] = set()
        self._listed_at = 0.0
        self._mutex = threading.Lock()

    def is_stale(self, lease: Lease) -> bool:
        from hypernetes.network.resource import ref_uid

        if lease.pod:
            with self._mutex:
                if time.time() - self._listed_at > self.max_age:
                    began = time.time()
                    self._uids = set(self.list_uids())
                    self._listed_at = began
                listed_at, uids = self._listed_at, self._uids
            if lease.created < listed_at - 1 and ref_uid(lease.pod) not in uids:
                return True
        return self.local.is_stale(lease)


class TenantNetwork:
    """VM pods on their tenant's Network, on this node (see the module docstring).

    `state_dir` holds the datapath's locks and local leases; `tag` names this
    datapath on the host (one agent per host namespace and tag; env
    `HYPERNETES_NETWORK_TAG`); `node_ip` is the VXLAN endpoint (a loopback
    address means a single-node cluster: Networks are built without VXLAN).
    """

    def __init__(
        self,
        client: Client,
        node_name: str,
        state_dir: Path,
        *,
        node_ip: str = "127.0.0.1",
        tag: str | None = None,
    ) -> None:
        self.client = client
        self.node_name = node_name
        self.state_dir = Path(state_dir)
        self.tag = tag or os.environ.get("HYPERNETES_NETWORK_TAG") or "main"
        self.node_ip = node_ip
        self.overlay = not ipaddress.ip_address(node_ip).is_loopback
        self.networks = Informer(client, NETWORKS)
        self.namespaces = Informer(client, NAMESPACES)
        self.nodes = Informer(client, NODES)
        # All pods, not only ours: FDB entries name this tenant's pods on other nodes.
        self.pods = Informer(client, PODS)
        self.manager: NetworkManager | None = None
        self.node_networks: NodeNetworks | None = None
        self._lock = asyncio.Lock()
        self._dirty = asyncio.Event()
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[Any]] = []

    # -- lifecycle -------------------------------------------------------------------

    async def start(self) -> None:
        from hypernetes.network import IPAM, Datapath, NetworkManager
        from hypernetes.network.ipam_store import StoreBackend, pod_uids
        from hypernetes.network.node import NodeNetworks

        loop = asyncio.get_running_loop()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        datapath = Datapath(
            str(self.state_dir), tag=self.tag, underlay_ip=self.node_ip if self.overlay else None
        )
        # A full pool reclaims leases whose pod is gone: asked of the API, not a cache
        # that may not have seen a pod created a moment ago.
        liveness = GonePods(
            self.node_name,
            lambda: asyncio.run_coroutine_threadsafe(pod_uids(self.client), loop).result(60),
        )
        ipam = IPAM(
            StoreBackend(self.client, loop), node=self.node_name, liveness=liveness.is_stale
        )
        self.manager = NetworkManager(datapath, ipam)
        self.node_networks = NodeNetworks(self.manager, self.node_name, overlay=self.overlay)
        for informer in (self.networks, self.nodes, self.pods):
            informer.add_handlers(self._changed, self._changed_update, self._changed)
        informers = (self.networks, self.namespaces, self.nodes, self.pods)
        self._tasks = [asyncio.create_task(i.run(self._stop)) for i in informers]
        await asyncio.gather(*(i.wait_synced() for i in informers))
        async with self._lock:
            await asyncio.to_thread(self._remove_stale_ports)
        self._tasks.append(asyncio.create_task(self._sync_loop()))

    def _remove_stale_ports(self) -> None:
        """Ports (and leases) of pods that no longer exist: pods deleted while no agent
        ran, or an attach cut short by a crash. Run before any attach of this agent."""
        from hypernetes.network.names import pod_key

        assert self.manager is not None
        datapath = self.manager.datapath
        alive = {pod_key(p["metadata"]["uid"]) for p in self.pods.items()}
        for tenant in datapath.tenants():
            for port in datapath.ports(tenant):
                if port.pod_key in alive:
                    continue
                log.info("removing the port of gone pod %s from %s/%s", port.pod_key, tenant,
                         port.network)  # fmt: skip
                if port.pod_key.startswith("#"):  # a long id, known only by its digest
                    datapath.remove_port(tenant, port.port)
                else:
                    self.manager.detach(tenant, port.network, port.pod_key)

    async def close(self) -> None:
        self._stop.set()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []

    def _changed(self, obj: Obj) -> None:
        self._dirty.set()

    def _changed_update(self, old: Obj, new: Obj) -> None:
        self._dirty.set()

    async def _sync_loop(self) -> None:
        """Keeps bridges, VXLAN and forwarding entries matching the API's objects."""
        while True:
            await self._dirty.wait()
            await asyncio.sleep(SYNC_DEBOUNCE)
            self._dirty.clear()
            assert self.manager is not None
            if not await asyncio.to_thread(self.manager.datapath.tenants):
                continue  # nothing here yet: attach syncs itself
            try:
                async with self._lock:
                    await self._sync()
            except Exception:
                log.exception("tenant network sync failed")

    # -- what the API says ----------------------------------------------------------

    def _namespace_tenants(self) -> dict[str, str]:
        out = {}
        for ns in self.namespaces.items():
            tenant = (ns["metadata"].get("labels") or {}).get(TENANT_LABEL)
            if tenant:
                out[ns["metadata"]["name"]] = str(tenant)
        return out

    async def _tenant(self, namespace: str) -> str | None:
        cached = self.namespaces.get(namespace)
        if cached is None:  # newer than the cache
            try:
                cached = await self.client.get(NAMESPACES, namespace)
            except NotFound:
                return None
        tenant = (cached["metadata"].get("labels") or {}).get(TENANT_LABEL)
        return str(tenant) if tenant else None

    async def _sync(
        self, extra: Obj | None = None, without: str | None = None
    ) -> Mapping[Any, str]:
        """One `NodeNetworks.sync` (call with the lock held); `extra` is a pod about to be
        attached (maybe not in the cache yet), `without` the uid of one just detached."""
        assert self.node_networks is not None
        pods = [
            p
            for p in self.pods.items()
            if p["metadata"]["uid"] not in (without, (extra or {}).get("metadata", {}).get("uid"))
        ]
        if extra is not None:
            pods.append(extra)
        report = await asyncio.to_thread(
            self.node_networks.sync,
            self.networks.items(),
            pods,
            self.nodes.items(),
            self._namespace_tenants(),
        )
        return report.errors

    async def _ready_network(self, pod: Obj, tenant: str) -> Obj:
        from hypernetes.network.resource import (
            default_network_name,
            is_ready_network,
            network_for_pod,
            requested_network,
        )

        deadline = time.monotonic() + NETWORK_WAIT
        while True:
            network = network_for_pod(pod, self.networks.items(), tenant=tenant)
            if network is not None and is_ready_network(network):
                return network
            if time.monotonic() > deadline:
                name = requested_network(pod) or default_network_name(tenant)
                state = "does not exist" if network is None else "is not Ready"
                raise RuntimeFailure("NetworkNotReady", f"network {name} of {tenant} {state}")
            await asyncio.sleep(0.1)

    # -- the seam ----------------------------------------------------------------------

    async def attach(self, pod: Obj) -> NetworkAttachment | None:
        from hypernetes.network import IPAMError, NetworkError
        from hypernetes.network.resource import name_of, pod_ref, pod_uses_network

        meta = pod["metadata"]
        if not pod_uses_network(pod):
            return None
        tenant = await self._tenant(meta.get("namespace") or "default")
        if tenant is None:
            return None  # the platform's own VM pods: loopback only
        network = await self._ready_network(pod, tenant)
        name = name_of(network)
        assert self.manager is not None
        async with self._lock:
            errors = await self._sync(extra=pod)
            if (tenant, name) in errors:
                raise RuntimeFailure("NetworkError", f"network {name}: {errors[tenant, name]}")
            try:
                att = await asyncio.to_thread(
                    self.manager.attach, tenant, name, meta["uid"], kind="tap", pod=pod_ref(pod)
                )
            except (NetworkError, IPAMError, ValueError, OSError) as exc:
                raise RuntimeFailure("NetworkError", f"attaching to {name}: {exc}") from None
        log.info(
            "pod %s/%s: %s on %s/%s", meta.get("namespace"), meta["name"], att.ip, tenant, name
        )
        return NetworkAttachment(
            tap=att.port,
            mac=att.mac,
            address=str(att.ip),
            gateway=str(att.gateway),
            mtu=att.mtu,
            netns=att.netns,
        )

    async def detach(self, pod: Obj) -> None:
        if self.manager is None:
            return
        uid = pod["metadata"]["uid"]
        guess = await self._guess(pod)
        async with self._lock:
            if await asyncio.to_thread(self._detach, uid, guess):
                await self._sync(without=uid)  # drops the Network here if it was the last

    async def _guess(self, pod: Obj) -> tuple[str, str] | None:
        """(tenant, network) the pod would be on: to release a lease that has no port
        (an attach interrupted between lease and port)."""
        from hypernetes.network.resource import default_network_name, requested_network

        tenant = await self._tenant(pod["metadata"].get("namespace") or "default")
        if tenant is None:
            return None
        return tenant, requested_network(pod) or default_network_name(tenant)

    def _detach(self, uid: str, guess: tuple[str, str] | None) -> bool:
        """Removes the pod's ports and leases; True if it had any."""
        from hypernetes.network.names import pod_key

        assert self.manager is not None
        done: set[tuple[str, str]] = set()
        datapath = self.manager.datapath
        for tenant in datapath.tenants():
            for port in datapath.ports(tenant):
                if port.pod_key == pod_key(uid):
                    self.manager.detach(tenant, port.network, uid)
                    done.add((tenant, port.network))
        if guess is not None and guess not in done:
            with contextlib.suppress(Exception):  # no such pool: nothing was leased
                if self.manager.detach(*guess, uid):
                    done.add(guess)
        return bool(done)
