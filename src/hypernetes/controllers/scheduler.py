"""The scheduler: binds pending pods to nodes.

A pod is ours when it has no `spec.nodeName` and its `schedulerName` is
`default-scheduler` (or empty). For each, the scheduler filters the nodes it
knows from its informers, scores the ones that fit and POSTs a `Binding` to
the best (`pods/NAME/binding`).

Filters, in kube's order, each giving kube's reason when a node fails:

- `spec.unschedulable` nodes (unless tolerated), nodes that are not Ready
  (treated as carrying the `not-ready`/`unreachable` NoSchedule taint kube's
  node lifecycle would put there), and NoSchedule/NoExecute taints the pod
  does not tolerate;
- `spec.nodeSelector` and required node affinity (`nodeSelectorTerms` with
  In, NotIn, Exists, DoesNotExist, Gt, Lt; `matchFields` on metadata.name);
- the tenant's node pool: a pod in a namespace labelled
  `hypernetes.io/tenant=<t>` must also match Tenant `<t>`'s
  `spec.nodeSelector` (fail closed when the Tenant is missing);
- resources: the requests of the non-terminal pods bound to the node plus the
  pod's own must fit the node's allocatable cpu, memory and pod count.

Among the nodes that fit, the least allocated wins (as kube's
`LeastAllocated`, counting a request-less pod as 100m/200Mi), which spreads
pods. Large clusters are searched only until enough feasible nodes are found
(kube's adaptive `percentageOfNodesToScore`), starting where the last search
stopped.

Node usage lives in an in-memory cache fed by the pod informer, so a
decision costs O(nodes), never O(pods). A pod being bound is *assumed* onto
its node at once (before the API answers) so that concurrent workers and a
lagging watch cannot overcommit a node.

A pod that fits nowhere stays Pending with `PodScheduled=False`, reason
`Unschedulable`, and a `FailedScheduling` Warning event with kube's message
(`0/3 nodes are available: 1 Insufficient cpu, 2 node(s) didn't match Pod's
node affinity/selector.`). It is tried again when a node, a tenant or a
namespace changes in a way that matters, when a bound pod goes away, and
every `retry_period` seconds anyway.
"""

from __future__ import annotations

import collections
import itertools
import logging
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any

from hypernetes.client import (
    NAMESPACES,
    NODES,
    PODS,
    TENANTS,
    ApiError,
    Client,
    Conflict,
    Informer,
    NotFound,
    Obj,
    object_key,
    split_key,
)
from hypernetes.controllers.podutil import (
    EventRecorder,
    int_value,
    is_terminal,
    milli_cpu,
    now_rfc3339,
    pod_requests,
)
from hypernetes.controllers.runtime import Controller

log = logging.getLogger(__name__)

SCHEDULER_NAME = "default-scheduler"
TENANT_LABEL = "hypernetes.io/tenant"

DEFAULT_MILLI_CPU = 100
DEFAULT_MEMORY = 200 * 1024 * 1024
"""What a pod without requests counts as when scoring (not when fitting), as in kube."""
DEFAULT_MAX_PODS = 110
MIN_FEASIBLE_NODES = 100

TAINT_NOT_READY = "node.kubernetes.io/not-ready"
TAINT_UNREACHABLE = "node.kubernetes.io/unreachable"
TAINT_UNSCHEDULABLE = "node.kubernetes.io/unschedulable"

REASON_UNSCHEDULABLE = "node(s) were unschedulable"
REASON_SELECTOR = "node(s) didn't match Pod's node affinity/selector"
REASON_TENANT = "node(s) didn't match the tenant's node selector"


# -- the node cache ----------------------------------------------------------


@dataclass
class NodeInfo:
    """What the scheduler knows of one node: its static traits and its current usage."""

    name: str
    labels: dict[str, str]
    taints: list[dict[str, Any]]
    """NoSchedule/NoExecute taints, including the implicit not-ready/unreachable one."""
    unschedulable: bool
    cpu: int
    memory: int
    max_pods: int
    signature: tuple[Any, ...]
    """Everything that can change a scheduling decision; a change retries waiting pods."""
    clean: bool = False
    """No taints (not even an implicit one) and schedulable: the common, fast case."""
    used_cpu: int = 0
    used_memory: int = 0
    pods: int = 0
    score_cpu: int = 0
    score_memory: int = 0


def node_info(node: Obj) -> NodeInfo:
    meta, spec, status = (
        node.get("metadata") or {},
        node.get("spec") or {},
        node.get("status") or {},
    )
    alloc = status.get("allocatable") or status.get("capacity") or {}
    taints = [
        dict(t) for t in spec.get("taints") or [] if t.get("effect") in ("NoSchedule", "NoExecute")
    ]
    ready = "Unknown"
    for cond in status.get("conditions") or []:
        if cond.get("type") == "Ready":
            ready = cond.get("status") or "Unknown"
    implicit = (
        None if ready == "True" else TAINT_NOT_READY if ready == "False" else TAINT_UNREACHABLE
    )
    if implicit and not any(t.get("key") == implicit for t in taints):
        taints.append({"key": implicit, "effect": "NoSchedule"})
    pods = int_value(alloc.get("pods")) if alloc.get("pods") is not None else DEFAULT_MAX_PODS
    info = NodeInfo(
        name=meta.get("name", ""),
        labels=dict(meta.get("labels") or {}),
        taints=taints,
        unschedulable=bool(spec.get("unschedulable")),
        cpu=milli_cpu(alloc.get("cpu")),
        memory=int_value(alloc.get("memory")),
        max_pods=pods,
        signature=(),
    )
    info.clean = not taints and not info.unschedulable
    info.signature = (
        tuple(sorted(info.labels.items())),
        tuple((t.get("key"), t.get("value"), t.get("effect")) for t in taints),
        info.unschedulable,
        info.cpu,
        info.memory,
        info.max_pods,
    )
    return info


@dataclass
class _Usage:
    node: str
    cpu: int
    memory: int
    score_cpu: int
    score_memory: int


@dataclass
class SchedulerCache:
    """Nodes and the resources the pods bound (or being bound) to them use."""

    nodes: dict[str, NodeInfo] = field(default_factory=dict)
    usage: dict[str, _Usage] = field(default_factory=dict)
    """Per pod key: where it counts and how much."""
    by_node: dict[str, set[str]] = field(default_factory=dict)
    """Pod keys per node name, so a node seen after its pods finds them at once."""

    def set_node(self, node: Obj) -> bool:
        """Add or refresh a node; True if its scheduling traits changed."""
        info = node_info(node)
        old = self.nodes.get(info.name)
        if old is not None:
            for name in ("used_cpu", "used_memory", "pods", "score_cpu", "score_memory"):
                setattr(info, name, getattr(old, name))
        else:
            for key in self.by_node.get(info.name, ()):
                self._apply(info, self.usage[key], 1)
        self.nodes[info.name] = info
        return old is None or old.signature != info.signature

    def remove_node(self, name: str) -> None:
        self.nodes.pop(name, None)

    def add_pod(self, key: str, node: str, cpu: int, memory: int) -> None:
        self.remove_pod(key)
        usage = _Usage(node, cpu, memory, cpu or DEFAULT_MILLI_CPU, memory or DEFAULT_MEMORY)
        self.usage[key] = usage
        self.by_node.setdefault(node, set()).add(key)
        info = self.nodes.get(node)
        if info is not None:
            self._apply(info, usage, 1)

    def remove_pod(self, key: str) -> str | None:
        """Stop counting pod `key`; the node it counted on, if any."""
        usage = self.usage.pop(key, None)
        if usage is None:
            return None
        keys = self.by_node.get(usage.node)
        if keys is not None:
            keys.discard(key)
            if not keys:
                del self.by_node[usage.node]
        info = self.nodes.get(usage.node)
        if info is not None:
            self._apply(info, usage, -1)
        return usage.node

    @staticmethod
    def _apply(info: NodeInfo, usage: _Usage, sign: int) -> None:
        info.used_cpu += sign * usage.cpu
        info.used_memory += sign * usage.memory
        info.pods += sign
        info.score_cpu += sign * usage.score_cpu
        info.score_memory += sign * usage.score_memory


# -- what a pod asks for -------------------------------------------------------


@dataclass
class PodNeeds:
    """A pod's scheduling constraints, computed once per attempt."""

    cpu: int
    memory: int
    node_selector: dict[str, str]
    terms: list[dict[str, Any]] | None
    """Required node affinity terms (ORed); None when the pod has none."""
    tolerations: list[dict[str, Any]]
    tenant_selector: dict[str, str] | None


def pod_needs(pod: Obj, tenant_selector: dict[str, str] | None) -> PodNeeds:
    spec = pod.get("spec") or {}
    cpu, memory = pod_requests(pod)
    required = ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    ) or {}
    terms = required.get("nodeSelectorTerms") if required else None
    return PodNeeds(
        cpu=cpu,
        memory=memory,
        node_selector=dict(spec.get("nodeSelector") or {}),
        terms=list(terms) if terms is not None else None,
        tolerations=list(spec.get("tolerations") or []),
        tenant_selector=tenant_selector,
    )


def tolerates(tolerations: list[dict[str, Any]], taint: dict[str, Any]) -> bool:
    """kube's `Toleration.ToleratesTaint` over a list."""
    for tol in tolerations:
        effect = tol.get("effect") or ""
        if effect and effect != taint.get("effect"):
            continue
        key, operator = tol.get("key") or "", tol.get("operator") or "Equal"
        if not key:
            if operator == "Exists":
                return True
            continue
        if key != taint.get("key"):
            continue
        if operator == "Exists" or (tol.get("value") or "") == (taint.get("value") or ""):
            return True
    return False


def _requirement_matches(expr: dict[str, Any], value: str | None) -> bool:
    operator, values = expr.get("operator"), list(expr.get("values") or [])
    if operator == "In":
        return value is not None and value in values
    if operator == "NotIn":
        return value is None or value not in values
    if operator == "Exists":
        return value is not None
    if operator == "DoesNotExist":
        return value is None
    if operator in ("Gt", "Lt") and value is not None and len(values) == 1:
        try:
            mine, theirs = int(value), int(values[0])
        except ValueError:
            return False
        return mine > theirs if operator == "Gt" else mine < theirs
    return False


def term_matches(term: dict[str, Any], node: NodeInfo) -> bool:
    """One NodeSelectorTerm (its requirements ANDed); an empty term matches nothing."""
    exprs, fields_ = term.get("matchExpressions") or [], term.get("matchFields") or []
    if not exprs and not fields_:
        return False
    for expr in exprs:
        if not _requirement_matches(expr, node.labels.get(expr.get("key", ""))):
            return False
    for expr in fields_:
        if expr.get("key") != "metadata.name" or not _requirement_matches(expr, node.name):
            return False
    return True


def filter_node(needs: PodNeeds, node: NodeInfo) -> list[str]:
    """Why `node` cannot take the pod (kube's reasons); empty when it fits."""
    if node.unschedulable and not tolerates(
        needs.tolerations, {"key": TAINT_UNSCHEDULABLE, "effect": "NoSchedule"}
    ):
        return [REASON_UNSCHEDULABLE]
    for taint in node.taints:
        if not tolerates(needs.tolerations, taint):
            return [
                f"node(s) had untolerated taint {{{taint.get('key', '')}: "
                f"{taint.get('value') or ''}}}"
            ]
    for key, value in needs.node_selector.items():
        if node.labels.get(key) != value:
            return [REASON_SELECTOR]
    if needs.terms is not None and not any(term_matches(t, node) for t in needs.terms):
        return [REASON_SELECTOR]
    if needs.tenant_selector is not None:
        for key, value in needs.tenant_selector.items():
            if node.labels.get(key) != value:
                return [REASON_TENANT]
    reasons = []
    if node.pods + 1 > node.max_pods:
        reasons.append("Too many pods")
    if needs.cpu and node.used_cpu + needs.cpu > node.cpu:
        reasons.append("Insufficient cpu")
    if needs.memory and node.used_memory + needs.memory > node.memory:
        reasons.append("Insufficient memory")
    return reasons


def feasible_target(total: int) -> int:
    """How many fitting nodes to find before choosing (kube's adaptive percentage)."""
    if total < MIN_FEASIBLE_NODES:
        return total
    percentage = max(5.0, 50 - total / 125)
    return max(MIN_FEASIBLE_NODES, int(total * percentage / 100))


def failure_message(total: int, reasons: collections.Counter[str]) -> str:
    if total == 0:
        return "no nodes available to schedule pods"
    parts = sorted(f"{count} {reason}" for reason, count in reasons.items())
    return f"0/{total} nodes are available: {', '.join(parts)}."


# -- the controller ------------------------------------------------------------


class Scheduler(Controller):
    """Binds pending pods to nodes; see the module docstring."""

    name = "scheduler"
    workers = 16
    retry_base = 0.1
    retry_max = 10.0

    def __init__(self, client: Client, *, retry_period: float = 60.0) -> None:
        super().__init__(client)
        self.retry_period = retry_period
        self.cache = SchedulerCache()
        self.events = EventRecorder(client, SCHEDULER_NAME)
        self._assumed: set[str] = set()
        self._unschedulable: set[str] = set()
        self._reported: dict[str, str] = {}
        """Per pending pod key: the last failure message reported (condition and event)."""
        self._order: list[str] = []
        self._next = 0

    async def setup(self) -> None:
        self.cache = SchedulerCache()
        self._assumed, self._unschedulable, self._reported = set(), set(), {}
        self._order = []
        self.nodes = self.watch(Informer(self.client, NODES))
        self.nodes.add_handlers(self._node_added, self._node_updated, self._node_deleted)
        self.pods = self.watch(Informer(self.client, PODS))
        self.pods.add_handlers(self._pod_added, self._pod_updated, self._pod_deleted)
        self.namespaces = self.watch(Informer(self.client, NAMESPACES))
        self.namespaces.add_handlers(None, lambda old, new: self._labels_changed(old, new), None)
        self.tenants = self.watch(Informer(self.client, TENANTS))
        self.tenants.add_handlers(
            lambda _t: self._retry_unschedulable(),
            lambda old, new: self._tenant_changed(old, new),
            None,
        )
        self.spawn(self.events.run(), "events")

    # -- informer handlers -----------------------------------------------------

    def _node_added(self, node: Obj) -> None:
        self.cache.set_node(node)
        self._order = []
        self._retry_unschedulable()

    def _node_updated(self, _old: Obj, node: Obj) -> None:
        if self.cache.set_node(node):
            self._retry_unschedulable()

    def _node_deleted(self, node: Obj) -> None:
        self.cache.remove_node((node.get("metadata") or {}).get("name", ""))
        self._order = []

    def _pod_added(self, pod: Obj) -> None:
        self._pod_seen(pod)

    def _pod_updated(self, _old: Obj, pod: Obj) -> None:
        self._pod_seen(pod)

    def _pod_seen(self, pod: Obj) -> None:
        key = object_key(pod)
        node = (pod.get("spec") or {}).get("nodeName")
        if node:
            self._assumed.discard(key)
            self._forget_pending(key)
            if is_terminal(pod):
                if self.cache.remove_pod(key) is not None:
                    self._retry_unschedulable()
            elif key not in self.cache.usage:
                cpu, memory = pod_requests(pod)
                self.cache.add_pod(key, node, cpu, memory)
            return
        if self._responsible(pod) and key not in self._assumed:
            self.queue.add(key)

    def _pod_deleted(self, pod: Obj) -> None:
        key = object_key(pod)
        self._assumed.discard(key)
        self._forget_pending(key)
        if self.cache.remove_pod(key) is not None:
            self._retry_unschedulable()

    def _forget_pending(self, key: str) -> None:
        self._unschedulable.discard(key)
        self._reported.pop(key, None)

    def _labels_changed(self, old: Obj, new: Obj) -> None:
        if (old.get("metadata") or {}).get("labels") != (new.get("metadata") or {}).get("labels"):
            self._retry_unschedulable()

    def _tenant_changed(self, old: Obj, new: Obj) -> None:
        if (old.get("spec") or {}).get("nodeSelector") != (new.get("spec") or {}).get(
            "nodeSelector"
        ):
            self._retry_unschedulable()

    def _retry_unschedulable(self) -> None:
        waiting, self._unschedulable = self._unschedulable, set()
        for key in waiting:
            self.queue.add(key)

    @staticmethod
    def _responsible(pod: Obj) -> bool:
        spec, meta = pod.get("spec") or {}, pod.get("metadata") or {}
        return (
            spec.get("schedulerName") in (None, "", SCHEDULER_NAME)
            and not spec.get("nodeName")
            and not meta.get("deletionTimestamp")
            and not is_terminal(pod)
        )

    # -- deciding ------------------------------------------------------------------

    def _tenant_selector(self, pod: Obj) -> tuple[dict[str, str] | None, str | None]:
        """The tenant node pool the pod is confined to, or a reason it cannot be placed."""
        ns = self.namespaces.get((pod.get("metadata") or {}).get("namespace", ""))
        tenant = ((ns or {}).get("metadata") or {}).get("labels", {}).get(TENANT_LABEL)
        if not tenant:
            return None, None
        obj = self.tenants.get(tenant)
        if obj is None:
            return None, f'tenant "{tenant}" of the pod\'s namespace does not exist'
        selector = (obj.get("spec") or {}).get("nodeSelector") or {}
        return (dict(selector) if selector else None), None

    def select_node(self, pod: Obj) -> tuple[str | None, str]:
        """The node to bind `pod` to, or None and kube's message why none fits."""
        selector, problem = self._tenant_selector(pod)
        if problem:
            return None, problem
        needs = pod_needs(pod, selector)
        if not self._order:
            self._order = sorted(self.cache.nodes)
        order, total, nodes = self._order, len(self._order), self.cache.nodes
        wanted = feasible_target(total)
        reasons: collections.Counter[str] = collections.Counter()
        # The hot loop of the scheduler: the common case (a pod without selectors on
        # a node without taints) is checked inline; anything else goes to filter_node.
        simple = not needs.node_selector and needs.terms is None and not needs.tenant_selector
        cpu, memory = needs.cpu, needs.memory
        score_cpu, score_memory = cpu or DEFAULT_MILLI_CPU, memory or DEFAULT_MEMORY
        best: NodeInfo | None = None
        best_score = -1.0
        found = seen = 0
        start = self._next % total if total else 0
        for name in itertools.chain(order[start:], order[:start]):
            seen += 1
            info = nodes.get(name)
            if info is None:
                continue
            if not (
                simple
                and info.clean
                and info.pods < info.max_pods
                and (not cpu or info.used_cpu + cpu <= info.cpu)
                and (not memory or info.used_memory + memory <= info.memory)
            ):
                failed = filter_node(needs, info)
                if failed:
                    reasons.update(failed)
                    continue
            found += 1
            score = 0.0  # LeastAllocated: the free share of cpu plus that of memory, after the pod
            if info.cpu > 0 and info.cpu > info.score_cpu + score_cpu:
                score += (info.cpu - info.score_cpu - score_cpu) / info.cpu
            if info.memory > 0 and info.memory > info.score_memory + score_memory:
                score += (info.memory - info.score_memory - score_memory) / info.memory
            if (
                best is None
                or score > best_score
                or (score == best_score and (info.pods, info.name) < (best.pods, best.name))
            ):
                best, best_score = info, score
            if found >= wanted:
                break
        self._next = start + seen
        if best is None:
            return None, failure_message(total, reasons)
        return best.name, ""

    async def reconcile(self, key: Hashable) -> float | None:
        key = str(key)
        pod = self.pods.get_by_key(key)
        if pod is None or not self._responsible(pod) or key in self._assumed:
            return None
        node, message = self.select_node(pod)
        if node is None:
            self._unschedulable.add(key)
            await self._report_unschedulable(pod, message)
            return self.retry_period
        cpu, memory = pod_requests(pod)
        self._assumed.add(key)
        self.cache.add_pod(key, node, cpu, memory)  # before any await: no one else takes it
        try:
            await self._bind(pod, node)
        except (Conflict, NotFound):
            self._unassume(key)  # bound by someone else or gone: the informer will tell
            return None
        except Exception:
            self._unassume(key)
            raise
        self._reported.pop(key, None)
        meta = pod["metadata"]
        self.events.emit(
            pod,
            "Normal",
            "Scheduled",
            f"Successfully assigned {meta.get('namespace')}/{meta['name']} to {node}",
        )
        return None

    def _unassume(self, key: str) -> None:
        self._assumed.discard(key)
        self.cache.remove_pod(key)

    async def _bind(self, pod: Obj, node: str) -> None:
        meta = pod["metadata"]
        namespace, name = meta.get("namespace"), meta["name"]
        body = {
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": {"name": name, "namespace": namespace, "uid": meta.get("uid")},
            "target": {"apiVersion": "v1", "kind": "Node", "name": node},
        }
        await self.client.request("POST", PODS.path(namespace, name, "binding"), body=body)

    async def _report_unschedulable(self, pod: Obj, message: str) -> None:
        key = object_key(pod)
        if self._reported.get(key) == message:
            return
        self._reported[key] = message
        self.events.emit(pod, "Warning", "FailedScheduling", message)
        namespace, name = split_key(key)
        patch = {
            "status": {
                "conditions": [
                    {
                        "type": "PodScheduled",
                        "status": "False",
                        "reason": "Unschedulable",
                        "message": message,
                        "lastProbeTime": None,
                        "lastTransitionTime": now_rfc3339(),
                    }
                ]
            }
        }
        try:
            await self.client.patch(
                PODS, name, patch, namespace, patch_type="strategic", subresource="status"
            )
        except NotFound:
            pass
        except ApiError as exc:
            log.warning("scheduler: cannot mark %s unschedulable: %s", key, exc)
