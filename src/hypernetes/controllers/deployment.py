"""The Deployment controller: rolls pod templates out through ReplicaSets.

Each distinct pod template of a Deployment gets a ReplicaSet named
`<deployment>-<hash>`, where the hash (of the template and
`status.collisionCount`) is also the `pod-template-hash` label added to the
ReplicaSet's selector and template, so the ReplicaSets never fight over pods.
The ReplicaSet whose template equals the Deployment's (ignoring that label)
is the *new* one; the others are *old*.

Revisions: the new ReplicaSet carries `deployment.kubernetes.io/revision` =
1 + the highest revision among the old ones (an old ReplicaSet that becomes
new again — `kubectl rollout undo` — gets a fresh number), and the
Deployment carries the same annotation. This is all `kubectl rollout
history` and `kubectl rollout undo` read and write (kubectl does both on the
client side), so they work unchanged.

Strategies:

- RollingUpdate: scale the new ReplicaSet up while the total stays within
  replicas + maxSurge; scale old ones down (unhealthy pods first, then
  oldest ReplicaSets first) while at least replicas - maxUnavailable pods stay
  available. Percentages round up for maxSurge and down for maxUnavailable;
  both 0 means maxUnavailable 1, as kube resolves them.
- Recreate: scale every old ReplicaSet to 0, wait until their pods are gone,
  then scale the new one up.

Status: observedGeneration, replicas, updatedReplicas, readyReplicas,
availableReplicas, unavailableReplicas and the conditions `Available`
(MinimumReplicasAvailable / MinimumReplicasUnavailable) and `Progressing`
(NewReplicaSetCreated, ReplicaSetUpdated, NewReplicaSetAvailable,
ProgressDeadlineExceeded), which `kubectl rollout status` follows. Old
ReplicaSets beyond `revisionHistoryLimit` are deleted once a rollout is
complete. A paused Deployment only gets its status updated.
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import math
import time
from collections.abc import Hashable
from typing import Any

from hypernetes.client import (
    DEPLOYMENTS,
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
    controller_ref,
    labels_of,
    now_rfc3339,
    owner_reference,
    parse_time,
    selector_of,
)
from hypernetes.controllers.runtime import Controller

log = logging.getLogger(__name__)

HASH_LABEL = "pod-template-hash"
REVISION = "deployment.kubernetes.io/revision"
REVISION_HISTORY = "deployment.kubernetes.io/revision-history"
DESIRED_REPLICAS = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS = "deployment.kubernetes.io/max-replicas"
_NOT_COPIED = {
    REVISION,
    REVISION_HISTORY,
    DESIRED_REPLICAS,
    MAX_REPLICAS,
    "kubectl.kubernetes.io/last-applied-configuration",
    "deprecated.deployment.rollback.to",
}
"""Deployment annotations not copied onto its ReplicaSets (as kube skips them)."""

_SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


# -- pure helpers --------------------------------------------------------------


def fnv32a(data: bytes) -> int:
    value = 0x811C9DC5
    for byte in data:
        value = ((value ^ byte) * 0x01000193) & 0xFFFFFFFF
    return value


def template_hash(template: dict[str, Any], collision_count: int | None) -> str:
    """A short, label-safe hash of a pod template (and the collision count)."""
    text = json.dumps(template, sort_keys=True, separators=(",", ":"))
    if collision_count:
        text += f"#{collision_count}"
    return "".join(_SAFE_ALPHABET[ord(c) % len(_SAFE_ALPHABET)] for c in str(fnv32a(text.encode())))


def without_hash(template: dict[str, Any] | None) -> dict[str, Any]:
    out = copy.deepcopy(template or {})
    meta = out.get("metadata") or {}
    labels = dict(meta.get("labels") or {})
    labels.pop(HASH_LABEL, None)
    if labels:
        meta["labels"] = labels
    else:
        meta.pop("labels", None)
    meta.pop("creationTimestamp", None)
    out["metadata"] = meta
    return out


def same_template(rs: Obj, deployment: Obj) -> bool:
    return without_hash((rs.get("spec") or {}).get("template")) == without_hash(
        (deployment.get("spec") or {}).get("template")
    )


def find_new(d: Obj, owned: list[Obj]) -> Obj | None:
    """The ReplicaSet of the Deployment's current template: the oldest with an equal
    template, else the one named after the template's hash."""
    for rs in sorted(owned, key=_created):
        if same_template(rs, d):
            return rs
    collisions = int((d.get("status") or {}).get("collisionCount") or 0)
    hashed = template_hash(without_hash((d.get("spec") or {}).get("template")), collisions)
    name = f"{d['metadata']['name']}-{hashed}"
    return next((rs for rs in owned if rs["metadata"]["name"] == name), None)


def replicas_of(obj: Obj) -> int:
    value = (obj.get("spec") or {}).get("replicas")
    return 1 if value is None else int(value)


def revision_of(rs: Obj) -> int:
    try:
        return int((rs["metadata"].get("annotations") or {}).get(REVISION, "0"))
    except ValueError:
        return 0


def resolve_int_or_percent(value: Any, total: int, round_up: bool) -> int:
    if value is None:
        return 0
    if isinstance(value, int):
        return value
    text = str(value)
    if text.endswith("%"):
        scaled = int(text[:-1]) * total / 100
        return math.ceil(scaled) if round_up else math.floor(scaled)
    return int(text)


def surge_and_unavailable(deployment: Obj) -> tuple[int, int]:
    """(maxSurge, maxUnavailable) as pod counts (kube's `ResolveFenceposts`)."""
    spec = deployment.get("spec") or {}
    if (spec.get("strategy") or {}).get("type") == "Recreate":
        return 0, 0
    rolling = (spec.get("strategy") or {}).get("rollingUpdate") or {}
    replicas = replicas_of(deployment)
    surge = resolve_int_or_percent(rolling.get("maxSurge", "25%"), replicas, True)
    unavailable = resolve_int_or_percent(rolling.get("maxUnavailable", "25%"), replicas, False)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, min(unavailable, replicas)


def status_count(rs: Obj, field: str) -> int:
    return int((rs.get("status") or {}).get(field) or 0)


def new_replicas_for_rolling(deployment: Obj, all_rs: list[Obj], new: Obj) -> int:
    """What the new ReplicaSet may grow (or must shrink) to now (kube's `NewRSNewReplicas`)."""
    wanted, current_new = replicas_of(deployment), replicas_of(new)
    if current_new >= wanted:
        return wanted
    surge, _ = surge_and_unavailable(deployment)
    total = sum(replicas_of(rs) for rs in all_rs)
    room = wanted + surge - total
    if room <= 0:
        return current_new
    return current_new + min(room, wanted - current_new)


# -- the controller ------------------------------------------------------------


class DeploymentController(Controller):
    """Rolls Deployments out through ReplicaSets; see the module docstring."""

    name = "deployment"
    workers = 4

    def __init__(self, client: Client) -> None:
        super().__init__(client)
        self.events = EventRecorder(client, "deployment-controller")

    async def setup(self) -> None:
        self.deployments = self.watch(Informer(self.client, DEPLOYMENTS))
        self.deployments.add_handlers(
            lambda d: self.queue.add(object_key(d)),
            lambda _old, d: self.queue.add(object_key(d)),
            None,
        )
        self.replicasets = self.watch(Informer(self.client, REPLICASETS))
        self.replicasets.add_handlers(
            self._rs_changed, lambda old, rs: self._rs_changed(rs, old), self._rs_changed
        )
        self.spawn(self.events.run(), "events")

    def _rs_changed(self, rs: Obj, old: Obj | None = None) -> None:
        for obj in (rs, old):
            if obj is None:
                continue
            ref = controller_ref(obj)
            ns = obj["metadata"].get("namespace", "")
            if ref is not None:
                if ref.get("kind") == "Deployment":
                    self.queue.add(f"{ns}/{ref.get('name')}")
                continue
            for key in self.deployments.keys():  # noqa: SIM118 (an Informer, not a dict)
                d = self.deployments.get_by_key(key)
                if key.startswith(f"{ns}/") and d and selector_of(d).matches(labels_of(obj)):
                    self.queue.add(key)

    # -- claiming ReplicaSets --------------------------------------------------------

    async def _claim(self, d: Obj) -> list[Obj]:
        ns, uid = d["metadata"]["namespace"], d["metadata"]["uid"]
        selector = selector_of(d)
        mine = []
        for rs in self.replicasets.items():
            if rs["metadata"].get("namespace") != ns:
                continue
            ref = controller_ref(rs)
            matches = selector.matches(labels_of(rs))
            if ref is not None and ref.get("uid") == uid:
                if matches:
                    mine.append(rs)
                else:
                    await self._set_owner(rs, None, d)
            elif ref is None and matches and not rs["metadata"].get("deletionTimestamp"):
                adopted = await self._set_owner(rs, d, None)
                if adopted is not None:
                    mine.append(adopted)
        return mine

    async def _set_owner(self, rs: Obj, adopt: Obj | None, release: Obj | None) -> Obj | None:
        refs = list(rs["metadata"].get("ownerReferences") or [])
        if adopt is not None:
            refs.append(owner_reference(adopt))
        if release is not None:
            refs = [r for r in refs if r.get("uid") != release["metadata"]["uid"]]
        patch = {"metadata": {"ownerReferences": refs or None, "uid": rs["metadata"]["uid"]}}
        try:
            return await self.client.patch(
                REPLICASETS, rs["metadata"]["name"], patch, rs["metadata"]["namespace"]
            )
        except ApiError as exc:
            if exc.code in (404, 409):
                return None
            raise

    # -- reconciling -------------------------------------------------------------------

    async def reconcile(self, key: Hashable) -> float | None:
        cached = self.deployments.get_by_key(str(key))
        if cached is None or cached["metadata"].get("deletionTimestamp"):
            return None
        d = copy.deepcopy(cached)  # we note our own writes' resourceVersions in it
        if selector_of(d).empty():
            return None  # kube refuses to act on a selector that selects everything
        all_rs = await self._claim(d)
        new = find_new(d, all_rs)
        olds = [rs for rs in all_rs if rs is not new]
        created = False
        spec = d.get("spec") or {}
        if spec.get("paused"):
            return await self._sync_status(d, new, olds, created)
        if (spec.get("strategy") or {}).get("type") == "Recreate":
            new, olds, created = await self._recreate(d, new, olds)
        else:
            new, olds, created = await self._rolling(d, new, olds)
        return await self._sync_status(d, new, olds, created)

    async def _ensure_new(
        self, d: Obj, new: Obj | None, olds: list[Obj], replicas: int
    ) -> tuple[Obj, bool]:
        """The new ReplicaSet, made if missing, with revision and annotations in order."""
        revision = max((revision_of(rs) for rs in olds), default=0) + 1
        if new is None:
            return await self._create_new(d, revision, replicas), True
        annotations = dict(new["metadata"].get("annotations") or {})
        wanted = dict(annotations)
        if revision_of(new) < revision:
            old_revision = annotations.get(REVISION)
            wanted[REVISION] = str(revision)
            if old_revision:
                history = [h for h in annotations.get(REVISION_HISTORY, "").split(",") if h]
                wanted[REVISION_HISTORY] = ",".join([*history, old_revision])
        wanted.update(_copied_annotations(d))
        if wanted != annotations:
            new = await self._patch_rs(new, {"metadata": {"annotations": wanted}})
        return new, False

    async def _create_new(self, d: Obj, revision: int, replicas: int) -> Obj:
        collisions = int((d.get("status") or {}).get("collisionCount") or 0)
        spec = d.get("spec") or {}
        template = copy.deepcopy(spec.get("template") or {})
        hashed = template_hash(without_hash(template), collisions)
        template.setdefault("metadata", {}).setdefault("labels", {})[HASH_LABEL] = hashed
        selector = copy.deepcopy(spec.get("selector") or {})
        selector.setdefault("matchLabels", {})[HASH_LABEL] = hashed
        surge, _ = surge_and_unavailable(d)
        annotations = _copied_annotations(d) | {
            REVISION: str(revision),
            DESIRED_REPLICAS: str(replicas_of(d)),
            MAX_REPLICAS: str(replicas_of(d) + surge),
        }
        name = f"{d['metadata']['name']}-{hashed}"
        body: dict[str, Any] = {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {
                "name": name,
                "namespace": d["metadata"]["namespace"],
                "labels": dict(template["metadata"]["labels"]),
                "annotations": annotations,
                "ownerReferences": [owner_reference(d)],
            },
            "spec": {
                "replicas": replicas,
                "minReadySeconds": int(spec.get("minReadySeconds") or 0),
                "selector": selector,
                "template": template,
            },
        }
        try:
            rs = await self.client.create(REPLICASETS, body, d["metadata"]["namespace"])
        except ApiError as exc:
            if exc.code != 409:
                raise
            existing = await self.client.get(REPLICASETS, name, d["metadata"]["namespace"])
            ref = controller_ref(existing)
            if ref and ref.get("uid") == d["metadata"]["uid"]:
                # Ours, named after this very template's hash: it is the new one, even
                # if defaulting made the stored templates differ in some detail.
                return existing
            # A hash collision with a ReplicaSet that is not ours: count it and retry.
            await self._write_status(
                d, {**(d.get("status") or {}), "collisionCount": collisions + 1}
            )
            raise Conflict(409, "AlreadyExists", "pod-template-hash collision", {}) from exc
        self.events.emit(
            d,
            "Normal",
            "ScalingReplicaSet",
            f"Scaled up replica set {rs['metadata']['name']} from 0 to {replicas}",
        )
        return rs

    async def _patch_rs(self, rs: Obj, patch: dict[str, Any]) -> Obj:
        return await self.client.patch(
            REPLICASETS, rs["metadata"]["name"], patch, rs["metadata"]["namespace"]
        )

    async def _scale(self, d: Obj, rs: Obj, replicas: int) -> Obj:
        current = replicas_of(rs)
        annotations = dict(rs["metadata"].get("annotations") or {})
        surge, _ = surge_and_unavailable(d)
        wanted = annotations | {
            DESIRED_REPLICAS: str(replicas_of(d)),
            MAX_REPLICAS: str(replicas_of(d) + surge),
        }
        if current == replicas and wanted == annotations:
            return rs
        patched = await self._patch_rs(
            rs, {"metadata": {"annotations": wanted}, "spec": {"replicas": replicas}}
        )
        if current != replicas:
            verb = "up" if replicas > current else "down"
            self.events.emit(
                d,
                "Normal",
                "ScalingReplicaSet",
                f"Scaled {verb} replica set {rs['metadata']['name']} from {current} to {replicas}",
            )
        return patched

    async def _rolling(
        self, d: Obj, new: Obj | None, olds: list[Obj]
    ) -> tuple[Obj, list[Obj], bool]:
        placeholder = new or {"metadata": {}, "spec": {"replicas": 0}}
        target = new_replicas_for_rolling(d, [*olds, placeholder], placeholder)
        new, created = await self._ensure_new(d, new, olds, target)
        if not created:
            target = new_replicas_for_rolling(d, [*olds, new], new)
            if target != replicas_of(new):
                new = await self._scale(d, new, target)
                return new, olds, created  # scaled up: look at the old ones next time
        olds = await self._scale_down_old(d, new, olds)
        return new, olds, created

    async def _scale_down_old(self, d: Obj, new: Obj, olds: list[Obj]) -> list[Obj]:
        """kube's `reconcileOldReplicaSets`: shrink old ReplicaSets within maxUnavailable."""
        if not any(replicas_of(rs) for rs in olds):
            return olds
        _, max_unavailable = surge_and_unavailable(d)
        all_rs = [*olds, new]
        min_available = replicas_of(d) - max_unavailable
        new_unavailable = replicas_of(new) - status_count(new, "availableReplicas")
        budget = sum(replicas_of(rs) for rs in all_rs) - min_available - new_unavailable
        if budget <= 0:
            return olds
        by_age = sorted(olds, key=_created)
        result = {object_key(rs): rs for rs in olds}
        # First the pods that are not available anyway: removing them costs nothing.
        for rs in by_age:
            if budget <= 0:
                break
            unhealthy = replicas_of(rs) - status_count(rs, "availableReplicas")
            cut = min(budget, unhealthy, replicas_of(rs))
            if cut > 0:
                result[object_key(rs)] = await self._scale(d, rs, replicas_of(rs) - cut)
                budget -= cut
        current = [result[object_key(rs)] for rs in by_age]
        available = sum(status_count(rs, "availableReplicas") for rs in [*current, new])
        spare = min(available - min_available, budget)
        for rs in current:
            if spare <= 0:
                break
            cut = min(replicas_of(rs), spare)
            if cut > 0:
                result[object_key(rs)] = await self._scale(d, rs, replicas_of(rs) - cut)
                spare -= cut
        return list(result.values())

    async def _recreate(
        self, d: Obj, new: Obj | None, olds: list[Obj]
    ) -> tuple[Obj | None, list[Obj], bool]:
        if any(replicas_of(rs) for rs in olds):
            olds = [await self._scale(d, rs, 0) for rs in olds]
            return new, olds, False
        if any(status_count(rs, "replicas") for rs in olds):
            return new, olds, False  # old pods still running: wait for them to go
        new, created = await self._ensure_new(d, new, olds, replicas_of(d))
        if replicas_of(new) != replicas_of(d):
            new = await self._scale(d, new, replicas_of(d))
        return new, olds, created

    # -- status ----------------------------------------------------------------------

    async def _sync_status(
        self, d: Obj, new: Obj | None, olds: list[Obj], created: bool
    ) -> float | None:
        all_rs = [*olds, *([new] if new is not None else [])]
        await self._sync_revision(d, new)
        wanted = replicas_of(d)
        _, max_unavailable = surge_and_unavailable(d)
        available = sum(status_count(rs, "availableReplicas") for rs in all_rs)
        total_spec = sum(replicas_of(rs) for rs in all_rs)
        status: dict[str, Any] = {
            "observedGeneration": d["metadata"].get("generation", 1),
            "replicas": sum(status_count(rs, "replicas") for rs in all_rs),
            "updatedReplicas": status_count(new, "replicas") if new is not None else 0,
            "readyReplicas": sum(status_count(rs, "readyReplicas") for rs in all_rs),
            "availableReplicas": available,
            "unavailableReplicas": max(0, total_spec - available),
        }
        old_status = d.get("status") or {}
        if old_status.get("collisionCount"):
            status["collisionCount"] = old_status["collisionCount"]
        conditions = {c.get("type"): c for c in old_status.get("conditions") or []}
        now = now_rfc3339()
        if available >= wanted - max_unavailable:
            _set_condition(
                conditions,
                "Available",
                "True",
                "MinimumReplicasAvailable",
                "Deployment has minimum availability.",
                now,
            )
        else:
            _set_condition(
                conditions,
                "Available",
                "False",
                "MinimumReplicasUnavailable",
                "Deployment does not have minimum availability.",
                now,
            )
        recheck = self._progress(d, new, status, old_status, conditions, created, now)
        status["conditions"] = [
            conditions[t] for t in ("Available", "Progressing") if t in conditions
        ]
        for field in (
            "replicas",
            "updatedReplicas",
            "readyReplicas",
            "availableReplicas",
            "unavailableReplicas",
        ):
            if not status[field]:
                del status[field]
        if _comparable(status) != _comparable(old_status):
            await self._write_status(d, status)
        if _complete(d, status) and not (d.get("spec") or {}).get("paused"):
            await self._cleanup(d, olds)
        return recheck

    def _progress(
        self,
        d: Obj,
        new: Obj | None,
        status: dict[str, Any],
        old_status: dict[str, Any],
        conditions: dict[str, Any],
        created: bool,
        now: str,
    ) -> float | None:
        """Update `Progressing`; seconds until the progress deadline should be checked."""
        spec = d.get("spec") or {}
        if spec.get("paused") or new is None:
            return None
        name = new["metadata"]["name"]
        if created:
            _set_condition(
                conditions,
                "Progressing",
                "True",
                "NewReplicaSetCreated",
                f'Created new replica set "{name}"',
                now,
                touch=True,
            )
        elif _complete(d, status):
            _set_condition(
                conditions,
                "Progressing",
                "True",
                "NewReplicaSetAvailable",
                f'ReplicaSet "{name}" has successfully progressed.',
                now,
            )
            return None
        elif _progressed(status, old_status):
            _set_condition(
                conditions,
                "Progressing",
                "True",
                "ReplicaSetUpdated",
                f'ReplicaSet "{name}" is progressing.',
                now,
                touch=True,
            )
        deadline = spec.get("progressDeadlineSeconds")
        current = conditions.get("Progressing")
        if deadline is None or current is None:
            return None
        if current.get("reason") == "NewReplicaSetAvailable":
            # A new rollout started after the last one completed: it progresses from now.
            _set_condition(
                conditions,
                "Progressing",
                "True",
                "ReplicaSetUpdated",
                f'ReplicaSet "{name}" is progressing.',
                now,
                touch=True,
            )
            current = conditions["Progressing"]
        since = parse_time(current.get("lastUpdateTime")) or time.time()
        left = since + int(deadline) - time.time()
        if left <= 0:
            _set_condition(
                conditions,
                "Progressing",
                "False",
                "ProgressDeadlineExceeded",
                f'ReplicaSet "{name}" has timed out progressing.',
                now,
            )
            return None
        return left + 0.5

    async def _sync_revision(self, d: Obj, new: Obj | None) -> None:
        if new is None:
            return
        revision = str(revision_of(new))
        if (d["metadata"].get("annotations") or {}).get(REVISION) == revision:
            return
        try:
            patched = await self.client.patch(
                DEPLOYMENTS,
                d["metadata"]["name"],
                {"metadata": {"annotations": {REVISION: revision}}},
                d["metadata"]["namespace"],
            )
        except NotFound:
            return
        d["metadata"]["resourceVersion"] = patched["metadata"]["resourceVersion"]

    async def _write_status(self, d: Obj, status: dict[str, Any]) -> None:
        body = {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {
                "name": d["metadata"]["name"],
                "namespace": d["metadata"]["namespace"],
                "resourceVersion": d["metadata"]["resourceVersion"],
            },
            "status": status,
        }
        namespace, name = split_key(object_key(d))
        try:
            updated = await self.client.replace(
                DEPLOYMENTS, name, body, namespace, subresource="status"
            )
        except (NotFound, Conflict):
            # Conflict: our cache is behind; the newer version's event brings us back.
            return
        d["metadata"]["resourceVersion"] = updated["metadata"]["resourceVersion"]

    async def _cleanup(self, d: Obj, olds: list[Obj]) -> None:
        limit = (d.get("spec") or {}).get("revisionHistoryLimit")
        if limit is None:
            return
        idle = [
            rs
            for rs in olds
            if not replicas_of(rs)
            and not status_count(rs, "replicas")
            and not rs["metadata"].get("deletionTimestamp")
        ]
        idle.sort(key=revision_of)
        for rs in idle[: max(0, len(idle) - int(limit))]:
            with contextlib.suppress(NotFound):
                await self.client.delete(
                    REPLICASETS, rs["metadata"]["name"], rs["metadata"]["namespace"]
                )


def _created(rs: Obj) -> tuple[float, str]:
    return (parse_time(rs["metadata"].get("creationTimestamp")) or 0.0, rs["metadata"]["name"])


def _copied_annotations(d: Obj) -> dict[str, str]:
    return {
        k: v for k, v in (d["metadata"].get("annotations") or {}).items() if k not in _NOT_COPIED
    }


def _complete(d: Obj, status: dict[str, Any]) -> bool:
    """kube's `DeploymentComplete`: every replica updated and available, none extra."""
    wanted = replicas_of(d)
    return (
        int(status.get("updatedReplicas") or 0) == wanted
        and int(status.get("replicas") or 0) == wanted
        and int(status.get("availableReplicas") or 0) == wanted
        and int(status.get("observedGeneration") or 0) >= int(d["metadata"].get("generation", 1))
    )


def _progressed(new: dict[str, Any], old: dict[str, Any]) -> bool:
    """kube's `DeploymentProgressing`: more updated, ready or available pods, or fewer old ones."""

    def count(s: dict[str, Any], f: str) -> int:
        return int(s.get(f) or 0)

    old_old = count(old, "replicas") - count(old, "updatedReplicas")
    new_old = count(new, "replicas") - count(new, "updatedReplicas")
    return (
        count(new, "updatedReplicas") > count(old, "updatedReplicas")
        or new_old < old_old
        or count(new, "readyReplicas") > count(old, "readyReplicas")
        or count(new, "availableReplicas") > count(old, "availableReplicas")
    )


def _set_condition(
    conditions: dict[str, Any],
    kind: str,
    status: str,
    reason: str,
    message: str,
    now: str,
    *,
    touch: bool = False,
) -> None:
    """Set a condition; lastTransitionTime moves only when the status flips, lastUpdateTime
    when the reason or message change (or `touch`: progress was made)."""
    old = conditions.get(kind)
    same_status = old is not None and old.get("status") == status
    same_text = (
        same_status
        and old is not None
        and (old.get("reason"), old.get("message"))
        == (
            reason,
            message,
        )
    )
    conditions[kind] = {
        "type": kind,
        "status": status,
        "lastUpdateTime": old.get("lastUpdateTime") if same_text and not touch and old else now,
        "lastTransitionTime": (old or {}).get("lastTransitionTime") if same_status else now,
        "reason": reason,
        "message": message,
    }


def _comparable(status: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in status.items() if v}
    out["conditions"] = [
        (c.get("type"), c.get("status"), c.get("reason"), c.get("message"), c.get("lastUpdateTime"))
        for c in status.get("conditions") or []
    ]
    return out
