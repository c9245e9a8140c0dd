"""Shared knowledge about pods and owners for the workload controllers.

Small pure functions the scheduler, ReplicaSet, Deployment, Endpoints and
node lifecycle controllers all need: whether a pod is active or ready, the
controlling ownerReference of an object, resource requests as numbers,
timestamps in kube's formats, and an `EventRecorder` that writes core v1
Events (aggregating repeats into a count, as kube's recorder does) without
making the caller wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import functools
import logging
import time
import uuid
from collections import OrderedDict
from typing import Any

from hypernetes.client import EVENTS, ApiError, Client, ClientError, Obj
from hypernetes.resources import labels, quantity

log = logging.getLogger(__name__)

TERMINAL_PHASES = ("Succeeded", "Failed")


def now_rfc3339(at: float | None = None) -> str:
    moment = datetime.datetime.fromtimestamp(time.time() if at is None else at, datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: str | None) -> float | None:
    """Seconds since the epoch of an RFC 3339 (or MicroTime) timestamp; None if unset/bad."""
    if not value:
        return None
    try:
        return datetime.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


# -- pods --------------------------------------------------------------------


def is_terminal(pod: Obj) -> bool:
    return (pod.get("status") or {}).get("phase") in TERMINAL_PHASES


def is_active(pod: Obj) -> bool:
    """Counts toward a controller's replicas: not finished and not being deleted."""
    return not is_terminal(pod) and not (pod.get("metadata") or {}).get("deletionTimestamp")


def condition(obj: Obj, kind: str) -> dict[str, Any] | None:
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("type") == kind:
            return dict(cond)
    return None


def is_ready(pod: Obj) -> bool:
    cond = condition(pod, "Ready")
    return cond is not None and cond.get("status") == "True"


def is_available(pod: Obj, min_ready_seconds: int, now: float | None = None) -> bool:
    """Ready for at least `min_ready_seconds` (kube's `IsPodAvailable`)."""
    if not is_ready(pod):
        return False
    if min_ready_seconds <= 0:
        return True
    since = parse_time((condition(pod, "Ready") or {}).get("lastTransitionTime"))
    now = time.time() if now is None else now
    return since is not None and since + min_ready_seconds <= now


def ready_in(pod: Obj, min_ready_seconds: int, now: float | None = None) -> float | None:
    """Seconds until a ready pod becomes available; None if not ready or already available."""
    if min_ready_seconds <= 0 or not is_ready(pod):
        return None
    since = parse_time((condition(pod, "Ready") or {}).get("lastTransitionTime"))
    if since is None:
        return None
    left = since + min_ready_seconds - (time.time() if now is None else now)
    return left if left > 0 else None


def restarts(pod: Obj) -> int:
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    return sum(int(s.get("restartCount") or 0) for s in statuses)


@functools.lru_cache(maxsize=4096)
def _quantity(value: str) -> quantity.Quantity:
    return quantity.parse(value)


def milli_cpu(value: Any) -> int:
    """A CPU quantity in millicores (0 for missing or malformed)."""
    if value is None:
        return 0
    try:
        return _quantity(str(value)).milli_value()
    except ValueError:
        return 0


def int_value(value: Any) -> int:
    """An integer quantity (bytes, pods), rounded up; 0 for missing or malformed."""
    if value is None:
        return 0
    try:
        return _quantity(str(value)).int_value()
    except ValueError:
        return 0


def pod_requests(pod: Obj) -> tuple[int, int]:
    """(millicores, bytes) a pod requests: its containers' sum, at least any init
    container's, plus the pod overhead — kube's `PodRequests`."""
    spec = pod.get("spec") or {}
    cpu = mem = 0
    for c in spec.get("containers") or []:
        req = (c.get("resources") or {}).get("requests") or {}
        cpu += milli_cpu(req.get("cpu"))
        mem += int_value(req.get("memory"))
    for c in spec.get("initContainers") or []:
        req = (c.get("resources") or {}).get("requests") or {}
        cpu = max(cpu, milli_cpu(req.get("cpu")))
        mem = max(mem, int_value(req.get("memory")))
    overhead = spec.get("overhead") or {}
    return cpu + milli_cpu(overhead.get("cpu")), mem + int_value(overhead.get("memory"))


# -- owners ------------------------------------------------------------------


def controller_ref(obj: Obj) -> dict[str, Any] | None:
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("controller"):
            return dict(ref)
    return None


def owner_reference(owner: Obj) -> dict[str, Any]:
    meta = owner["metadata"]
    return {
        "apiVersion": owner.get("apiVersion", ""),
        "kind": owner.get("kind", ""),
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def selector_of(obj: Obj) -> labels.Selector:
    """The `spec.selector` LabelSelector of a workload; selects nothing when malformed."""
    try:
        return labels.from_label_selector((obj.get("spec") or {}).get("selector"))
    except labels.LabelSelectorError:
        return labels.NOTHING


def labels_of(obj: Obj) -> dict[str, str]:
    return dict((obj.get("metadata") or {}).get("labels") or {})


# -- events ------------------------------------------------------------------


class EventRecorder:
    """Writes core v1 Events about objects in the background.

    `emit` never waits: events go on a queue drained by `run`. A repeat of
    the same (object, type, reason, message) bumps the earlier Event's count
    instead of making a new one. Events are best effort, as in kube: a failed
    write is logged and dropped.
    """

    def __init__(self, client: Client, component: str, *, backlog: int = 10000) -> None:
        self.client = client
        self.component = component
        self.instance = f"{component}-{uuid.uuid4().hex[:8]}"
        self._queue: asyncio.Queue[tuple[Obj, str, str, str]] = asyncio.Queue(backlog)
        self._seen: OrderedDict[tuple[str, str, str, str], tuple[str, str, int]] = OrderedDict()

    def emit(self, obj: Obj, kind: str, reason: str, message: str) -> None:
        with contextlib.suppress(asyncio.QueueFull):
            self._queue.put_nowait((obj, kind, reason, message))

    async def run(self) -> None:
        """Drain the queue forever (run it with `Controller.spawn`)."""
        while True:
            obj, kind, reason, message = await self._queue.get()
            try:
                await self._write(obj, kind, reason, message)
            except ClientError as exc:
                log.warning(
                    "%s: event %s about %s not written: %s",
                    self.component,
                    reason,
                    obj["metadata"].get("name"),
                    exc,
                )

    async def _write(self, obj: Obj, kind: str, reason: str, message: str) -> None:
        meta = obj["metadata"]
        namespace = meta.get("namespace") or "default"
        key = (str(meta.get("uid")), kind, reason, message)
        now = now_rfc3339()
        previous = self._seen.get(key)
        if previous is not None:
            name, ns, count = previous
            try:
                await self.client.patch(
                    EVENTS, name, {"count": count + 1, "lastTimestamp": now}, ns
                )
                self._remember(key, (name, ns, count + 1))
                return
            except ApiError as exc:
                if exc.code != 404:
                    raise
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": f"{meta['name']}.{uuid.uuid4().hex[:16]}", "namespace": namespace},
            "involvedObject": {
                "apiVersion": obj.get("apiVersion", ""),
                "kind": obj.get("kind", ""),
                "name": meta["name"],
                "namespace": meta.get("namespace", ""),
                "uid": meta.get("uid", ""),
                "resourceVersion": meta.get("resourceVersion", ""),
            },
            "reason": reason,
            "message": message,
            "type": kind,
            "source": {"component": self.component},
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
            "reportingComponent": self.component,
            "reportingInstance": self.instance,
        }
        created = await self.client.create(EVENTS, event, namespace)
        self._remember(key, (created["metadata"]["name"], namespace, 1))

    def _remember(self, key: tuple[str, str, str, str], value: tuple[str, str, int]) -> None:
        self._seen[key] = value
        self._seen.move_to_end(key)
        while len(self._seen) > 4096:
            self._seen.popitem(last=False)
