"""The node lifecycle controller: notices lost nodes and moves their pods away.

A node's heartbeat is its Lease (`kube-node-lease/<node>`, renewed by the
node agent) and its Ready condition's `lastHeartbeatTime`. The controller
judges freshness on its own clock: it notes when it last saw either change,
so clock skew between machines does not matter (as kube does). When neither
changed for `grace_period` seconds (default 40), the node's conditions become
`Unknown` ("Kubelet stopped posting node status."), its pods are marked not
Ready (so Endpoints drop them), and it gets the NoExecute taint
`node.kubernetes.io/unreachable`; a node whose agent reports Ready=False gets
`node.kubernetes.io/not-ready` instead. Both taints go when the node is Ready
again.

Eviction: a pod on a node carrying one of these taints is deleted once the
taint is older than the pod's matching toleration's `tolerationSeconds`; a
pod with no matching toleration gets `eviction_timeout` (default 300 s, what
kube's DefaultTolerationSeconds admission gives every pod); a toleration
without `tolerationSeconds` keeps the pod forever. The deleted pods' owners
(ReplicaSets) replace them, and the scheduler keeps the replacements off
the tainted node.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import time
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any

from hypernetes.client import (
    LEASES,
    NODES,
    PODS,
    ApiError,
    Client,
    Informer,
    NotFound,
    Obj,
    object_key,
    split_key,
)
from hypernetes.controllers.podutil import (
    EventRecorder,
    condition,
    is_active,
    now_rfc3339,
    parse_time,
)
from hypernetes.controllers.runtime import Controller
from hypernetes.controllers.scheduler import TAINT_NOT_READY, TAINT_UNREACHABLE, tolerates

log = logging.getLogger(__name__)

LEASE_NAMESPACE = "kube-node-lease"
MANAGED_TAINTS = (TAINT_UNREACHABLE, TAINT_NOT_READY)
UNKNOWN_TYPES = ("Ready", "MemoryPressure", "DiskPressure", "PIDPressure")


@dataclass
class _Health:
    heartbeat: tuple[Any, ...]
    seen_at: float
    """time.monotonic() when `heartbeat` was first seen."""


class NodeLifecycleController(Controller):
    """Marks nodes without heartbeats Unknown, taints them, evicts their pods."""

    name = "nodelifecycle"
    workers = 2

    def __init__(
        self,
        client: Client,
        *,
        grace_period: float = 40.0,
        eviction_timeout: float = 300.0,
        monitor_period: float = 5.0,
    ) -> None:
        super().__init__(client)
        self.grace_period = grace_period
        self.eviction_timeout = eviction_timeout
        self.monitor_period = monitor_period
        self.events = EventRecorder(client, "node-controller")
        self._health: dict[str, _Health] = {}
        self._pods_on: dict[str, dict[str, Obj]] = {}

    async def setup(self) -> None:
        self._health, self._pods_on = {}, {}
        self.nodes = self.watch(Informer(self.client, NODES))
        self.nodes.add_handlers(
            lambda n: self.queue.add(n["metadata"]["name"]),
            lambda _o, n: self.queue.add(n["metadata"]["name"]),
            self._node_deleted,
        )
        self.leases = self.watch(Informer(self.client, LEASES, LEASE_NAMESPACE))
        self.leases.add_handlers(
            lambda le: self.queue.add(le["metadata"]["name"]),
            lambda _o, le: self.queue.add(le["metadata"]["name"]),
            None,
        )
        self.pods = self.watch(Informer(self.client, PODS))
        self.pods.add_handlers(
            lambda p: self._index(p, None, True),
            lambda old, p: self._index(p, old, True),
            lambda p: self._index(p, None, False),
        )
        self.spawn(self._monitor(), "monitor")
        self.spawn(self.events.run(), "events")

    def _node_deleted(self, node: Obj) -> None:
        self._health.pop(node["metadata"]["name"], None)

    def _index(self, pod: Obj, old: Obj | None, present: bool) -> None:
        key = object_key(pod)
        if old is not None:
            before = (old.get("spec") or {}).get("nodeName")
            if before:
                self._pods_on.get(before, {}).pop(key, None)
        node = (pod.get("spec") or {}).get("nodeName")
        if not node:
            return
        if present:
            self._pods_on.setdefault(node, {})[key] = pod
        else:
            self._pods_on.get(node, {}).pop(key, None)

    async def _monitor(self) -> None:
        """Look at every node each `monitor_period`: heartbeats stop without any event."""
        while True:
            await asyncio.sleep(self.monitor_period)
            for name in self.nodes.keys():  # noqa: SIM118 (an Informer, not a dict)
                self.queue.add(name)

    # -- reconciling -----------------------------------------------------------------

    def _heartbeat_age(self, node: Obj) -> float:
        name = node["metadata"]["name"]
        lease = self.leases.get(name, LEASE_NAMESPACE)
        ready = condition(node, "Ready") or {}
        beat = ((lease or {}).get("spec", {}).get("renewTime"), ready.get("lastHeartbeatTime"))
        now = time.monotonic()
        health = self._health.get(name)
        if health is None or health.heartbeat != beat:
            health = self._health[name] = _Health(beat, now)
        return now - health.seen_at

    async def reconcile(self, key: Hashable) -> float | None:
        name = str(key)
        cached = self.nodes.get(name)
        if cached is None:
            return None
        node = copy.deepcopy(cached)
        ready = (condition(node, "Ready") or {}).get("status")
        if self._heartbeat_age(node) > self.grace_period and ready != "Unknown":
            node = await self._mark_unknown(node)
            ready = "Unknown"
        wanted = {
            "Unknown": TAINT_UNREACHABLE,
            None: TAINT_UNREACHABLE,
            "False": TAINT_NOT_READY,
        }.get(ready)
        if ready is None and self._heartbeat_age(node) <= self.grace_period:
            wanted = None  # a node still registering: give it its grace period
        node = await self._set_taint(node, wanted)
        if wanted is None:
            return None
        return await self._evict(node)

    async def _mark_unknown(self, node: Obj) -> Obj:
        now = now_rfc3339()
        conditions = []
        present = {c.get("type") for c in (node.get("status") or {}).get("conditions") or []}
        for cond in (node.get("status") or {}).get("conditions") or []:
            cond = dict(cond)
            if cond.get("type") in UNKNOWN_TYPES and cond.get("status") != "Unknown":
                cond.update(
                    status="Unknown",
                    reason="NodeStatusUnknown",
                    message="Kubelet stopped posting node status.",
                    lastTransitionTime=now,
                )
            conditions.append(cond)
        if "Ready" not in present:
            conditions.append(
                {
                    "type": "Ready",
                    "status": "Unknown",
                    "reason": "NodeStatusNeverUpdated",
                    "message": "Kubelet never posted node status.",
                    "lastHeartbeatTime": now,
                    "lastTransitionTime": now,
                }
            )
        patch = {
            "metadata": {"resourceVersion": node["metadata"]["resourceVersion"]},
            "status": {"conditions": conditions},
        }
        updated = await self.client.patch(
            NODES, node["metadata"]["name"], patch, subresource="status"
        )
        log.warning(
            "node %s: no heartbeat for %.0fs; marked Unknown",
            node["metadata"]["name"],
            self.grace_period,
        )
        self.events.emit(
            node,
            "Normal",
            "NodeNotReady",
            f"Node {node['metadata']['name']} status is now: NodeNotReady",
        )
        await self._mark_pods_not_ready(node["metadata"]["name"])
        return updated

    async def _mark_pods_not_ready(self, node: str) -> None:
        now = now_rfc3339()
        for key, pod in list(self._pods_on.get(node, {}).items()):
            if not is_active(pod) or (condition(pod, "Ready") or {}).get("status") == "False":
                continue
            namespace, name = split_key(key)
            patch = {
                "status": {
                    "conditions": [{"type": "Ready", "status": "False", "lastTransitionTime": now}]
                }
            }
            try:
                await self.client.patch(
                    PODS, name, patch, namespace, patch_type="strategic", subresource="status"
                )
            except ApiError as exc:
                if exc.code != 404:
                    log.warning("node lifecycle: cannot mark %s not ready: %s", key, exc)

    async def _set_taint(self, node: Obj, wanted: str | None) -> Obj:
        taints = list((node.get("spec") or {}).get("taints") or [])
        kept = [
            t
            for t in taints
            if not (
                t.get("key") in MANAGED_TAINTS
                and t.get("effect") == "NoExecute"
                and t.get("key") != wanted
            )
        ]
        if wanted and not any(
            t.get("key") == wanted and t.get("effect") == "NoExecute" for t in kept
        ):
            kept.append({"key": wanted, "effect": "NoExecute", "timeAdded": now_rfc3339()})
        if kept == taints:
            return node
        patch = {
            "metadata": {"resourceVersion": node["metadata"]["resourceVersion"]},
            "spec": {"taints": kept or None},
        }
        return await self.client.patch(NODES, node["metadata"]["name"], patch)

    async def _evict(self, node: Obj) -> float | None:
        """Delete the pods whose time on the tainted node is up; when to look again."""
        taints = [
            t
            for t in (node.get("spec") or {}).get("taints") or []
            if t.get("key") in MANAGED_TAINTS and t.get("effect") == "NoExecute"
        ]
        if not taints:
            return None
        now = time.time()
        next_look: float | None = None
        for key, pod in list(self._pods_on.get(node["metadata"]["name"], {}).items()):
            if not is_active(pod):
                continue
            left = min(self._time_left(pod, t, now) for t in taints)
            if left is None or left == float("inf"):
                continue
            if left > 0:
                next_look = left if next_look is None else min(next_look, left)
                continue
            namespace, name = split_key(key)
            try:
                await self.client.delete(PODS, name, namespace)
            except NotFound:
                continue
            self.events.emit(
                pod, "Normal", "TaintManagerEviction", f"Marking for deletion Pod {key}"
            )
        return None if next_look is None else next_look + 0.1

    def _time_left(self, pod: Obj, taint: dict[str, Any], now: float) -> float:
        """Seconds before `pod` must leave a node with `taint` (inf: it may stay)."""
        added = parse_time(taint.get("timeAdded")) or now
        tolerations = (pod.get("spec") or {}).get("tolerations") or []
        matching = [t for t in tolerations if tolerates([t], taint)]
        if not matching:
            allowed = self.eviction_timeout
        else:
            seconds = [t.get("tolerationSeconds") for t in matching]
            if any(s is None for s in seconds):
                return float("inf")
            allowed = max(0.0, float(min(int(s) for s in seconds if s is not None)))
        return added + allowed - now
