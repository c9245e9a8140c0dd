"""PodStatus from what the runtime reports: phase, conditions, container states.

Pure functions, so the rules (kubelet's) can be read in one place:
- a container shows `waiting` with the reason the worker set this round
  (ErrImagePull, ImagePullBackOff, CrashLoopBackOff, ...), else the state of
  its latest attempt; `lastState` is the attempt before.
- phase: Pending until every container has started once (and the init
  containers are done); Succeeded/Failed when every container has
  terminated and none will restart; Running otherwise.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any

from hypernetes.resources.defaults import qos_class
from hypernetes.runtime import ContainerState, ContainerStatus

Obj = dict[str, Any]


@dataclass
class ContainerView:
    """The runtime's view of one container of the pod."""

    runtime: str
    latest: ContainerStatus | None = None
    previous: ContainerStatus | None = None
    ready: bool = False
    started: bool = False
    restarts: int = 0


def rfc3339(ts: float) -> str:
    return datetime.datetime.fromtimestamp(int(ts), tz=datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _terminated(r: ContainerStatus, runtime: str) -> Obj:
    out: Obj = {
        "exitCode": r.exit_code,
        "reason": r.reason or ("Completed" if r.exit_code == 0 else "Error"),
        "startedAt": rfc3339(r.started_at) if r.started_at else None,
        "finishedAt": rfc3339(r.finished_at) if r.finished_at else None,
        "containerID": f"{runtime}://{r.id}",
    }
    if r.message:
        out["message"] = r.message
    return out


def container_status(
    spec: Obj, view: ContainerView | None, waiting: tuple[str, str] | None, default_reason: str
) -> Obj:
    r = view.latest if view else None
    runtime = view.runtime if view else "vm"
    state: Obj
    last: Obj = {}
    running = False
    if waiting is not None:
        state = {"waiting": {"reason": waiting[0], "message": waiting[1]}}
        if r is not None and r.state == ContainerState.EXITED:
            last = {"terminated": _terminated(r, runtime)}
    elif r is None or r.state in (ContainerState.CREATED, ContainerState.UNKNOWN):
        state = {"waiting": {"reason": default_reason}}
    elif r.state == ContainerState.RUNNING:
        state = {"running": {"startedAt": rfc3339(r.started_at or r.created_at)}}
        running = True
    else:
        state = {"terminated": _terminated(r, runtime)}
    prev = view.previous if view is not None and r is not None else None
    if not last and prev is not None and prev.state == ContainerState.EXITED:
        last = {"terminated": _terminated(prev, runtime)}
    status: Obj = {
        "name": spec["name"],
        "image": spec.get("image", ""),
        "imageID": r.image_id if r else "",
        "state": state,
        "lastState": last,
        "ready": running and bool(view and view.ready and view.started),
        "restartCount": max(r.attempt if r else 0, view.restarts if view else 0),
        "started": running and bool(view and view.started),
    }
    if r is not None:
        status["containerID"] = f"{runtime}://{r.id}"
    return status


def _phase(statuses: list[Obj], policy: str, init_done: bool, init_failed: bool) -> str:
    if init_failed:
        return "Failed"
    if not init_done or not statuses:
        return "Pending"
    states = [s["state"] for s in statuses]
    if all("terminated" in st for st in states):
        if all(st["terminated"]["exitCode"] == 0 for st in states):
            return "Succeeded"
        return "Failed"
    ever_ran = [s for s in statuses if "waiting" not in s["state"] or s["lastState"]]
    if len(ever_ran) == len(statuses) or any("running" in st for st in states):
        return "Running"
    return "Pending"


def _condition(kind: str, ok: bool, reason: str = "", message: str = "") -> Obj:
    c: Obj = {"type": kind, "status": "True" if ok else "False"}
    if not ok and reason:
        c["reason"] = reason
        if message:
            c["message"] = message
    return c


def build_status(
    pod: Obj,
    views: dict[str, ContainerView],
    waiting: dict[str, tuple[str, str]],
    *,
    sandbox_ready: bool,
    init_done: bool,
    pod_ip: str | None,
    host_ip: str,
) -> Obj:
    spec = pod.get("spec") or {}
    policy = spec.get("restartPolicy") or "Always"
    inits = spec.get("initContainers") or []
    init_statuses = [
        container_status(c, views.get(c["name"]), waiting.get(c["name"]), "PodInitializing")
        for c in inits
    ]
    default = "ContainerCreating" if init_done else "PodInitializing"
    statuses = [
        container_status(c, views.get(c["name"]), waiting.get(c["name"]), default)
        for c in spec.get("containers") or []
    ]
    init_failed = policy == "Never" and any(
        s["state"].get("terminated", {}).get("exitCode", 0) != 0 for s in init_statuses
    )
    phase = _phase(statuses, policy, init_done and sandbox_ready, init_failed)
    unready = [s["name"] for s in statuses if not s["ready"]]
    terminal = phase in ("Succeeded", "Failed")
    not_ready_reason = "PodCompleted" if terminal else "ContainersNotReady"
    message = "" if terminal else f"containers with unready status: [{' '.join(unready)}]"
    uninit = [s["name"] for s in init_statuses if "terminated" not in s["state"]]
    conditions = [
        _condition("PodReadyToStartContainers", sandbox_ready and not terminal),
        _condition(
            "Initialized",
            init_done,
            "ContainersNotInitialized",
            f"containers with incomplete status: [{' '.join(uninit)}]",
        ),
        _condition("Ready", not unready, not_ready_reason, message),
        _condition("ContainersReady", not unready, not_ready_reason, message),
        _condition("PodScheduled", True),
    ]
    old_status = pod.get("status") or {}
    status: Obj = {
        "phase": phase,
        "conditions": _keep_transitions(conditions, old_status.get("conditions") or []),
        "hostIP": host_ip,
        "hostIPs": [{"ip": host_ip}],
        "podIP": pod_ip,
        "podIPs": [{"ip": pod_ip}] if pod_ip else None,
        "startTime": old_status.get("startTime") or rfc3339(_now()),
        "containerStatuses": statuses,
        "qosClass": old_status.get("qosClass") or qos_class(spec) or "BestEffort",
    }
    if inits:
        status["initContainerStatuses"] = init_statuses
    return status


def _now() -> float:
    return datetime.datetime.now(datetime.UTC).timestamp()


def _keep_transitions(new: list[Obj], old: list[Obj]) -> list[Obj]:
    """lastTransitionTime changes only when a condition's status does."""
    before = {c.get("type"): c for c in old}
    now = rfc3339(_now())
    for c in new:
        prev = before.get(c["type"])
        same = prev is not None and prev.get("status") == c["status"]
        if same and prev is not None and prev.get("lastTransitionTime"):
            c["lastTransitionTime"] = prev["lastTransitionTime"]
        else:
            c["lastTransitionTime"] = now
        c["lastProbeTime"] = None
    return new


def same_status(a: Obj, b: Obj) -> bool:
    """Whether two statuses differ only in timestamps of unchanged conditions."""

    def strip(s: Obj) -> Obj:
        out = dict(s)
        out["conditions"] = [
            {k: v for k, v in c.items() if k != "lastTransitionTime"}
            for c in s.get("conditions") or []
        ]
        return out

    return strip(a) == strip(b)
