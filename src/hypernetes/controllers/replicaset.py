"""The ReplicaSet controller: keeps `spec.replicas` pods of a template alive.

Pods belong to a ReplicaSet through an ownerReference with `controller:
true`. Orphan pods in the namespace that match the selector are adopted (the
reference is added with the owner's uid as a precondition, so a deleted and
re-created ReplicaSet of the same name adopts nothing by mistake); owned pods
that stopped matching are released. Pods that are finished or being deleted
do not count.

Too few pods: create the difference in slow-start batches (1, 2, 4, …), so a
template that the API refuses fails fast instead of 500 times. Too many:
delete the least valuable first (unscheduled before scheduled, pending
before running, not ready before ready, recently ready before long ready,
more restarts first, newer first), as kube ranks them.

Expectations: the creates and deletes issued for a ReplicaSet are remembered
until the pod informer has seen them, and the ReplicaSet is not managed again
until then (or until they expire). Without them, a reconcile running before
the watch caught up would see too few pods and create more.

Status: replicas, fullyLabeledReplicas, readyReplicas, availableReplicas
(ready for `minReadySeconds`), observedGeneration, and a `ReplicaFailure`
condition while pods cannot be created.
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
    PODS,
    REPLICASETS,
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
    condition,
    controller_ref,
    is_active,
    is_available,
    is_ready,
    labels_of,
    now_rfc3339,
    owner_reference,
    parse_time,
    ready_in,
    restarts,
    selector_of,
)
from hypernetes.controllers.runtime import Controller

log = logging.getLogger(__name__)

BURST = 500
"""At most this many creates or deletes per reconcile, as kube's burstReplicas."""
EXPECTATIONS_TTL = 300.0


@dataclass
class _Expectation:
    adds: int
    deletes: set[str]
    """Keys of pods we asked to delete and have not seen go (or start terminating)."""
    at: float


class Expectations:
    """Pending creates/deletes per owner key, lowered as the informer observes them."""

    def __init__(self, ttl: float = EXPECTATIONS_TTL) -> None:
        self.ttl = ttl
        self._pending: dict[str, _Expectation] = {}

    def expect(self, owner: str, adds: int = 0, deletes: set[str] | None = None) -> None:
        self._pending[owner] = _Expectation(adds, set(deletes or ()), time.monotonic())

    def created(self, owner: str) -> None:
        exp = self._pending.get(owner)
        if exp is not None:
            exp.adds -= 1

    def deleted(self, owner: str, pod_key: str) -> None:
        exp = self._pending.get(owner)
        if exp is not None:
            exp.deletes.discard(pod_key)

    def satisfied(self, owner: str) -> bool:
        exp = self._pending.get(owner)
        if exp is None:
            return True
        if (exp.adds <= 0 and not exp.deletes) or time.monotonic() - exp.at > self.ttl:
            del self._pending[owner]
            return True
        return False

    def forget(self, owner: str) -> None:
        self._pending.pop(owner, None)


def deletion_rank(pod: Obj) -> tuple[Any, ...]:
    """Sort key: the pods to delete first come first (kube's `ActivePods` ordering)."""
    spec, status = pod.get("spec") or {}, pod.get("status") or {}
    phase_rank = {"Pending": 0, "Unknown": 1, "Running": 2}.get(status.get("phase", ""), 0)
    ready = is_ready(pod)
    since = parse_time((condition(pod, "Ready") or {}).get("lastTransitionTime")) or 0.0
    created = parse_time(pod["metadata"].get("creationTimestamp")) or 0.0
    return (
        1 if spec.get("nodeName") else 0,
        phase_rank,
        1 if ready else 0,
        -since if ready else 0.0,
        -restarts(pod),
        -created,
    )


def pod_from_template(owner: Obj) -> Obj:
    """A new pod for `owner`'s `spec.template`, owned by it."""
    template = copy.deepcopy((owner.get("spec") or {}).get("template") or {})
    meta = template.get("metadata") or {}
    pod_meta: dict[str, Any] = {
        "generateName": f"{owner['metadata']['name']}-",
        "namespace": owner["metadata"].get("namespace"),
        "ownerReferences": [owner_reference(owner)],
    }
    for key in ("labels", "annotations", "finalizers"):
        if meta.get(key):
            pod_meta[key] = meta[key]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": pod_meta, "spec": template.get("spec")}


class ReplicaSetController(Controller):
    """Creates and deletes pods to match each ReplicaSet's replicas; see the module docstring."""

    name = "replicaset"
    workers = 4
    owner_resource = REPLICASETS
    kind = "ReplicaSet"

    def __init__(self, client: Client) -> None:
        super().__init__(client)
        self.expectations = Expectations()
        self.events = EventRecorder(client, "replicaset-controller")
        self._by_namespace: dict[str, dict[str, Obj]] = {}
        """Pods per namespace, by key, for adoption and counting without scanning all pods."""

    async def setup(self) -> None:
        self.expectations = Expectations()
        self._by_namespace = {}
        self.owners = self.watch(Informer(self.client, self.owner_resource))
        self.owners.add_handlers(
            lambda rs: self.queue.add(object_key(rs)),
            lambda _old, rs: self.queue.add(object_key(rs)),
            self._owner_deleted,
        )
        self.pods = self.watch(Informer(self.client, PODS))
        self.pods.add_handlers(self._pod_added, self._pod_updated, self._pod_deleted)
        self.spawn(self.events.run(), "events")

    # -- informer handlers -------------------------------------------------------

    def _owner_deleted(self, rs: Obj) -> None:
        self.expectations.forget(object_key(rs))

    def _index(self, pod: Obj, present: bool) -> None:
        ns = pod["metadata"].get("namespace", "")
        pods = self._by_namespace.setdefault(ns, {})
        if present:
            pods[object_key(pod)] = pod
        else:
            pods.pop(object_key(pod), None)

    def _owner_key(self, pod: Obj) -> str | None:
        ref = controller_ref(pod)
        if ref is None or ref.get("kind") != self.kind:
            return None
        key = f"{pod['metadata'].get('namespace')}/{ref.get('name')}"
        owner = self.owners.get_by_key(key)
        if owner is None or owner["metadata"].get("uid") != ref.get("uid"):
            return None
        return key

    def _matching_owners(self, pod: Obj) -> list[str]:
        ns = pod["metadata"].get("namespace")
        found = []
        for key in self.owners.keys():  # noqa: SIM118 (an Informer, not a dict)
            if key.startswith(f"{ns}/"):
                owner = self.owners.get_by_key(key)
                if owner is not None and selector_of(owner).matches(labels_of(pod)):
                    found.append(key)
        return found

    def _pod_added(self, pod: Obj) -> None:
        self._index(pod, True)
        owner = self._owner_key(pod)
        if owner is not None:
            self.expectations.created(owner)
            if pod["metadata"].get("deletionTimestamp"):
                self.expectations.deleted(owner, object_key(pod))
            self.queue.add(owner)
        elif controller_ref(pod) is None:
            for key in self._matching_owners(pod):
                self.queue.add(key)

    def _pod_updated(self, old: Obj, pod: Obj) -> None:
        self._index(pod, True)
        owner, old_owner = self._owner_key(pod), self._owner_key(old)
        if owner is not None and pod["metadata"].get("deletionTimestamp"):
            self.expectations.deleted(owner, object_key(pod))
        for key in {owner, old_owner} - {None}:
            self.queue.add(key)
        if controller_ref(pod) is None:  # an orphan: someone may adopt it now
            for key in self._matching_owners(pod):
                self.queue.add(key)

    def _pod_deleted(self, pod: Obj) -> None:
        self._index(pod, False)
        owner = self._owner_key(pod)
        if owner is not None:
            self.expectations.deleted(owner, object_key(pod))
            self.queue.add(owner)

    # -- reconciling ---------------------------------------------------------------

    async def reconcile(self, key: Hashable) -> float | None:
        key = str(key)
        rs = self.owners.get_by_key(key)
        if rs is None:
            self.expectations.forget(key)
            return None
        pods = await self._claim(rs)
        active = [p for p in pods if is_active(p)]
        failure: str | None = None
        if self.expectations.satisfied(key) and not rs["metadata"].get("deletionTimestamp"):
            failure = await self._manage(rs, active)
        return await self._update_status(rs, pods, active, failure)

    async def _claim(self, rs: Obj) -> list[Obj]:
        """The pods `rs` controls, after adopting matching orphans and releasing strays."""
        ns, uid = rs["metadata"].get("namespace", ""), rs["metadata"]["uid"]
        selector = selector_of(rs)
        mine: list[Obj] = []
        for pod in list(self._by_namespace.get(ns, {}).values()):
            ref = controller_ref(pod)
            matches = selector.matches(labels_of(pod))
            if ref is not None and ref.get("uid") == uid:
                if matches or rs["metadata"].get("deletionTimestamp"):
                    mine.append(pod)
                else:
                    await self._release(rs, pod)
            elif (
                ref is None
                and matches
                and not pod["metadata"].get("deletionTimestamp")
                and not rs["metadata"].get("deletionTimestamp")
                and await self._adopt(rs, pod)
            ):
                mine.append(pod)
        return mine

    async def _adopt(self, rs: Obj, pod: Obj) -> bool:
        refs = [*(pod["metadata"].get("ownerReferences") or []), owner_reference(rs)]
        patch = {
            "metadata": {
                "ownerReferences": refs,
                "uid": pod["metadata"]["uid"],
                "resourceVersion": pod["metadata"].get("resourceVersion"),
            }
        }
        try:
            await self.client.patch(
                PODS, pod["metadata"]["name"], patch, rs["metadata"]["namespace"]
            )
        except ApiError as exc:
            if exc.code in (404, 409):
                return False  # gone or changed: the informer brings the new state
            raise
        return True

    async def _release(self, rs: Obj, pod: Obj) -> None:
        uid = rs["metadata"]["uid"]
        refs = [r for r in pod["metadata"].get("ownerReferences") or [] if r.get("uid") != uid]
        patch = {"metadata": {"ownerReferences": refs or None, "uid": pod["metadata"]["uid"]}}
        try:
            await self.client.patch(
                PODS, pod["metadata"]["name"], patch, rs["metadata"]["namespace"]
            )
        except ApiError as exc:
            if exc.code not in (404, 409):
                raise

    async def _manage(self, rs: Obj, active: list[Obj]) -> str | None:
        """Create or delete pods toward spec.replicas; a create failure's message, if any."""
        key = object_key(rs)
        wanted = int((rs.get("spec") or {}).get("replicas", 1) or 0)
        diff = len(active) - wanted
        if diff < 0:
            return await self._create_pods(rs, min(-diff, BURST))
        if diff > 0:
            victims = sorted(active, key=deletion_rank)[: min(diff, BURST)]
            self.expectations.expect(key, deletes={object_key(p) for p in victims})
            await asyncio.gather(*(self._delete_pod(rs, p) for p in victims))
        return None

    async def _create_pods(self, rs: Obj, count: int) -> str | None:
        key = object_key(rs)
        self.expectations.expect(key, adds=count)
        body = pod_from_template(rs)
        ns = rs["metadata"]["namespace"]
        batch, done = 1, 0
        while done < count:
            size = min(batch, count - done)
            results = await asyncio.gather(
                *(self.client.create(PODS, copy.deepcopy(body), ns) for _ in range(size)),
                return_exceptions=True,
            )
            errors = [r for r in results if isinstance(r, BaseException)]
            for r in results:
                if not isinstance(r, BaseException):
                    self.events.emit(
                        rs, "Normal", "SuccessfulCreate", f"Created pod: {r['metadata']['name']}"
                    )
            done += size
            if errors:
                # The creates that failed, and the batches never sent, will not be observed.
                for _ in range(len(errors) + count - done):
                    self.expectations.created(key)
                message = str(errors[0])
                self.events.emit(rs, "Warning", "FailedCreate", f"Error creating: {message}")
                if not isinstance(errors[0], ApiError):
                    raise errors[0]
                return message
            batch *= 2
        return None

    async def _delete_pod(self, rs: Obj, pod: Obj) -> None:
        name = pod["metadata"]["name"]
        try:
            await self.client.delete(PODS, name, rs["metadata"]["namespace"])
        except NotFound:
            self.expectations.deleted(object_key(rs), object_key(pod))
            return
        self.events.emit(rs, "Normal", "SuccessfulDelete", f"Deleted pod: {name}")

    async def _update_status(
        self, rs: Obj, pods: list[Obj], active: list[Obj], failure: str | None
    ) -> float | None:
        spec = rs.get("spec") or {}
        min_ready = int(spec.get("minReadySeconds") or 0)
        template_labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
        now = time.time()
        status: dict[str, Any] = {
            "replicas": len(active),
            "fullyLabeledReplicas": sum(
                1
                for p in active
                if all(labels_of(p).get(k) == v for k, v in template_labels.items())
            ),
            "readyReplicas": sum(1 for p in active if is_ready(p)),
            "availableReplicas": sum(1 for p in active if is_available(p, min_ready, now)),
            "observedGeneration": rs["metadata"].get("generation", 1),
        }
        old = rs.get("status") or {}
        conditions = [c for c in old.get("conditions") or [] if c.get("type") != "ReplicaFailure"]
        previous = next(
            (c for c in old.get("conditions") or [] if c.get("type") == "ReplicaFailure"), None
        )
        if failure:
            conditions.append(
                {
                    "type": "ReplicaFailure",
                    "status": "True",
                    "reason": "FailedCreate",
                    "message": failure,
                    "lastTransitionTime": (previous or {}).get("lastTransitionTime")
                    or now_rfc3339(now),
                }
            )
        elif previous is not None and len(active) < int(spec.get("replicas", 1) or 0):
            conditions.append(previous)  # nothing new tried yet: keep reporting the failure
        if conditions:
            status["conditions"] = conditions
        for field in ("fullyLabeledReplicas", "readyReplicas", "availableReplicas"):
            if status[field] == 0:
                del status[field]  # kube omits these when zero
        if _comparable(old) != _comparable(status):
            await self._write_status(rs, status)
        waits = [w for p in active if (w := ready_in(p, min_ready, now)) is not None]
        if failure:
            return 5.0
        return min(waits) + 0.05 if waits else None

    async def _write_status(self, rs: Obj, status: dict[str, Any]) -> None:
        body = {
            "apiVersion": rs.get("apiVersion"),
            "kind": rs.get("kind"),
            "metadata": {
                "name": rs["metadata"]["name"],
                "namespace": rs["metadata"]["namespace"],
                "resourceVersion": rs["metadata"]["resourceVersion"],
            },
            "status": status,
        }
        namespace, name = split_key(object_key(rs))
        try:
            await self.client.replace(
                self.owner_resource, name, body, namespace, subresource="status"
            )
        except (NotFound, Conflict):
            # Conflict: our cache is behind; the newer version's event brings us back.
            return


def _comparable(status: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in status.items() if k != "conditions"}
    out["conditions"] = [
        (c.get("type"), c.get("status"), c.get("reason"), c.get("message"))
        for c in status.get("conditions") or []
    ]
    for field in ("fullyLabeledReplicas", "readyReplicas", "availableReplicas"):
        if not out.get(field):
            out.pop(field, None)
    out.setdefault("replicas", 0)
    return out
