"""Server-side Table printing: what `kubectl get` shows, computed as kube-apiserver does it.

kubectl asks for `Accept: application/json;as=Table;g=meta.k8s.io;v=v1` and prints the
`meta.k8s.io/v1 Table` it gets back verbatim: the server owns the columns and every cell. The
printers below follow kube's (`pkg/printers/internalversion/printers.go`): same column names,
order, types and priorities, same cell logic. Like kube-apiserver, the server always fills the
wide (priority 1) cells too; kubectl hides them unless `-o wide`.

Kinds kube prints with its default table convertor (Role, ClusterRole, LimitRange, the CRD
kind, ...) get NAME and CREATED AT. CRD-served kinds get NAME plus the CRD version's
`additionalPrinterColumns` (an AGE column when it has none), evaluated with the JSONPath
subset of `jsonpath`. Other kinds get NAME and AGE.
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import json
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from hypernetes.resources import labels, quantity, schema
from hypernetes.resources.registry import ResourceType

Obj = dict[str, Any]
Column = dict[str, Any]
Cell = Any
CellsFn = Callable[[Obj, datetime.datetime], list[Cell]]

META = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
INCLUDE_OBJECT_VALUES = ("Metadata", "Object", "None")


class TableError(ValueError):
    """A table request kube answers with 400 Bad Request; the message is kube's."""


# -- time -----------------------------------------------------------------------------------------


def human_duration(delta: datetime.timedelta) -> str:
    """kube's `duration.HumanDuration`: "45s", "5m17s", "3h4m", "2d", "3y120d"..."""
    seconds = int(delta.total_seconds())  # truncates toward zero, as Go's int()
    if seconds < -1:
        return "<invalid>"
    if seconds < 0:
        return "0s"
    if seconds < 120:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 10:
        return f"{minutes}m{seconds % 60}s" if seconds % 60 else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = minutes // 60
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        return f"{hours // 24}d{hours % 24}h" if hours % 24 else f"{hours // 24}d"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        days = (hours // 24) % 365
        return f"{hours // 24 // 365}y{days}d" if days else f"{hours // 24 // 365}y"
    return f"{hours // 24 // 365}y"


def parse_time(value: Any) -> datetime.datetime | None:
    """An RFC 3339 timestamp (`metav1.Time` or `MicroTime`); None when absent or malformed."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=datetime.UTC)


def since(value: Any, now: datetime.datetime) -> str:
    """kube's `translateTimestampSince`: the age of a timestamp, `<unknown>` when unset."""
    when = parse_time(value)
    return "<unknown>" if when is None else human_duration(now - when)


# -- small accessors ------------------------------------------------------------------------------


def _get(obj: Any, *keys: str | int) -> Any:
    for key in keys:
        if isinstance(key, int):
            obj = obj[key] if isinstance(obj, list) and -len(obj) <= key < len(obj) else None
        else:
            obj = obj.get(key) if isinstance(obj, dict) else None
    return obj


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _age(obj: Obj, now: datetime.datetime) -> str:
    return since(_get(obj, "metadata", "creationTimestamp"), now)


def _name(obj: Obj) -> str:
    return _get(obj, "metadata", "name") or ""


def _quantity(value: Any) -> str:
    """A quantity as kube prints it (canonical form: 2048Mi is 2Gi); an unset one is 0."""
    if value is None or value == "":
        return "0"
    try:
        return quantity.canonical(value)
    except (quantity.QuantityError, TypeError):
        return str(value)


def _containers(template_spec: Any) -> tuple[str, str]:
    """kube's `layoutContainerCells`: container names and images, comma-joined."""
    containers = _get(template_spec, "containers") or []
    names = ",".join(c.get("name", "") for c in containers)
    images = ",".join(c.get("image", "") for c in containers)
    return names, images


# -- columns --------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Col:
    name: str
    type: str = "string"
    priority: int = 0
    description: str | tuple[str, str] = ""
    """Text, or (definition, property) to quote the schema's description as kube does."""
    format: str = ""

    def as_dict(self) -> Column:
        return {
            "name": self.name,
            "type": self.type,
            "format": self.format,
            "description": _describe(self.description),
            "priority": self.priority,
        }


def _describe(description: str | tuple[str, str]) -> str:
    if isinstance(description, str):
        return description
    return _schema_description(*description)


@functools.cache
def _schema_description(definition: str, prop: str) -> str:
    props = schema.definitions().get(definition, {}).get("properties", {})
    text = props.get(prop, {}).get("description", "")
    return str(text)


def _core(kind: str) -> str:
    return f"io.k8s.api.core.v1.{kind}"


_NAME = _Col("Name", format="name", description=(META, "name"))
_AGE = _Col("Age", description=(META, "creationTimestamp"))
_CONTAINERS = _Col("Containers", priority=1, description="Names of each container in the template.")
_IMAGES = _Col(
    "Images", priority=1, description="Images referenced by each container in the template."
)


# -- Pod ------------------------------------------------------------------------------------------


@dataclasses.dataclass
class _PodTally:
    """What kube's printPod accumulates while walking container statuses."""

    restarts: int = 0
    sidecar_restarts: int = 0
    ready: int = 0
    last_restart: datetime.datetime | None = None
    last_sidecar_restart: datetime.datetime | None = None


def _later(a: datetime.datetime | None, b: datetime.datetime | None) -> datetime.datetime | None:
    if a is None:
        return b
    return a if b is None or a >= b else b


def _last_termination(status: Obj) -> datetime.datetime | None:
    return parse_time(_get(status, "lastState", "terminated", "finishedAt"))


def _is_sidecar(container: Obj | None) -> bool:
    """A restartable init container (`restartPolicy: Always`), counted like a main container."""
    return bool(container) and (container or {}).get("restartPolicy") == "Always"


def _terminated_reason(terminated: Obj, prefix: str = "") -> str:
    if terminated.get("reason"):
        return prefix + terminated["reason"]
    if terminated.get("signal"):
        return f"{prefix}Signal:{terminated['signal']}"
    return f"{prefix}ExitCode:{terminated.get('exitCode', 0)}"


def _init_status(pod: Obj, tally: _PodTally, reason: str) -> tuple[str, bool]:
    """Walk init container statuses; returns (reason, still initializing)."""
    specs = {c.get("name"): c for c in _get(pod, "spec", "initContainers") or []}
    statuses = _get(pod, "status", "initContainerStatuses") or []
    for i, cs in enumerate(statuses):
        tally.restarts += _int(cs.get("restartCount"))
        tally.last_restart = _later(tally.last_restart, _last_termination(cs))
        sidecar = _is_sidecar(specs.get(cs.get("name")))
        if sidecar:
            tally.sidecar_restarts += _int(cs.get("restartCount"))
            tally.last_sidecar_restart = _later(tally.last_sidecar_restart, _last_termination(cs))
        terminated = _get(cs, "state", "terminated")
        waiting_reason = _get(cs, "state", "waiting", "reason")
        if terminated is not None and _int(terminated.get("exitCode")) == 0:
            continue
        if sidecar and cs.get("started"):
            tally.ready += 1 if cs.get("ready") else 0
            continue
        if terminated is not None:
            return _terminated_reason(terminated, "Init:"), True
        if waiting_reason and waiting_reason != "PodInitializing":
            return "Init:" + waiting_reason, True
        return f"Init:{i}/{len(specs)}", True
    return reason, False


def _main_status(pod: Obj, tally: _PodTally, reason: str) -> str:
    """Walk main container statuses (last first, as kube); returns the pod's reason."""
    tally.restarts, tally.last_restart = tally.sidecar_restarts, tally.last_sidecar_restart
    has_running = False
    for cs in reversed(_get(pod, "status", "containerStatuses") or []):
        tally.restarts += _int(cs.get("restartCount"))
        tally.last_restart = _later(tally.last_restart, _last_termination(cs))
        waiting, terminated = _get(cs, "state", "waiting"), _get(cs, "state", "terminated")
        if waiting is not None and waiting.get("reason"):
            reason = waiting["reason"]
        elif terminated is not None:
            reason = _terminated_reason(terminated)
        elif cs.get("ready") and _get(cs, "state", "running") is not None:
            has_running = True
            tally.ready += 1
    if reason == "Completed" and has_running:
        reason = "Running" if _condition_true(pod, "Ready") else "NotReady"
    return reason


def _condition_true(obj: Obj, kind: str) -> bool:
    conditions = _get(obj, "status", "conditions") or []
    return any(c.get("type") == kind and c.get("status") == "True" for c in conditions)


def _pod_reason(pod: Obj, tally: _PodTally) -> str:
    status = pod.get("status") or {}
    phase = status.get("phase") or ""
    reason = status.get("reason") or phase
    for condition in status.get("conditions") or []:
        if condition.get("type") == "PodScheduled" and condition.get("reason") == "SchedulingGated":
            reason = "SchedulingGated"
    reason, initializing = _init_status(pod, tally, reason)
    if not initializing or _condition_true(pod, "Initialized"):
        reason = _main_status(pod, tally, reason)
    if _get(pod, "metadata", "deletionTimestamp"):
        if status.get("reason") == "NodeLost":
            reason = "Unknown"
        elif phase not in ("Succeeded", "Failed"):
            reason = "Terminating"
    return reason


def _pod_ip(pod: Obj) -> str:
    ips = _get(pod, "status", "podIPs") or []
    return (ips[0].get("ip") if ips else None) or _get(pod, "status", "podIP") or "<none>"


def _readiness_gates(pod: Obj) -> str:
    gates = _get(pod, "spec", "readinessGates") or []
    if not gates:
        return "<none>"
    conditions = _get(pod, "status", "conditions") or []
    passed = 0
    for gate in gates:
        match = next((c for c in conditions if c.get("type") == gate.get("conditionType")), None)
        passed += 1 if match and match.get("status") == "True" else 0
    return f"{passed}/{len(gates)}"


def _pod_cells(pod: Obj, now: datetime.datetime) -> list[Cell]:
    spec = pod.get("spec") or {}
    tally = _PodTally()
    reason = _pod_reason(pod, tally)
    sidecars = sum(1 for c in spec.get("initContainers") or [] if _is_sidecar(c))
    total = len(spec.get("containers") or []) + sidecars
    restarts = str(tally.restarts)
    if tally.restarts and tally.last_restart is not None:
        restarts += f" ({human_duration(now - tally.last_restart)} ago)"
    return [
        _name(pod),
        f"{tally.ready}/{total}",
        reason,
        restarts,
        _age(pod, now),
        _pod_ip(pod),
        spec.get("nodeName") or "<none>",
        _get(pod, "status", "nominatedNodeName") or "<none>",
        _readiness_gates(pod),
    ]


def _pod_conditions(pod: Obj) -> list[dict[str, str]]:
    phase = _get(pod, "status", "phase")
    if phase == "Succeeded":
        message = "The pod has completed successfully."
    elif phase == "Failed":
        message = "The pod failed."
    else:
        return []
    return [{"type": "Completed", "status": "True", "reason": phase, "message": message}]


_POD_COLUMNS = (
    _NAME,
    _Col("Ready", description="The aggregate readiness state of this pod for accepting traffic."),
    _Col("Status", description="The aggregate status of the containers in this pod."),
    _Col(
        "Restarts",
        description="The number of times the containers in this pod have been restarted "
        "and when the last container in this pod has restarted.",
    ),
    _AGE,
    _Col("IP", priority=1, description=(_core("PodStatus"), "podIP")),
    _Col("Node", priority=1, description=(_core("PodSpec"), "nodeName")),
    _Col("Nominated Node", priority=1, description=(_core("PodStatus"), "nominatedNodeName")),
    _Col("Readiness Gates", priority=1, description=(_core("PodSpec"), "readinessGates")),
)


# -- workloads ------------------------------------------------------------------------------------


def _deployment_cells(obj: Obj, now: datetime.datetime) -> list[Cell]:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    desired = spec.get("replicas", 1)
    names, images = _containers(_get(spec, "template", "spec"))
    try:
        selector = str(labels.from_label_selector(spec.get("selector")))
    except labels.LabelSelectorError:
        selector = "<invalid>"
    return [
        _name(obj),
        f"{_int(status.get('readyReplicas'))}/{_int(desired)}",
        _int(status.get("updatedReplicas")),
        _int(status.get("availableReplicas")),
        _age(obj, now),
        names,
        images,
        selector,
    ]


def _replicaset_cells(obj: Obj, now: datetime.datetime) -> list[Cell]:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    names, images = _containers(_get(spec, "template", "spec"))
    return [
        _name(obj),
        _int(spec.get("replicas", 1)),
        _int(status.get("replicas")),
        _int(status.get("readyReplicas")),
        _age(obj, now),
        names,
        images,
        labels.format_label_selector(spec.get("selector")),
    ]


_APPS = "io.k8s.api.apps.v1"
_DEPLOYMENT_COLUMNS = (
    _NAME,
    _Col("Ready", description="Number of the pod with ready state"),
    _Col("Up-to-date", description=(f"{_APPS}.DeploymentStatus", "updatedReplicas")),
    _Col("Available", description=(f"{_APPS}.DeploymentStatus", "availableReplicas")),
    _AGE,
    _CONTAINERS,
    _IMAGES,
    _Col("Selector", priority=1, description=(f"{_APPS}.DeploymentSpec", "selector")),
)
_REPLICASET_COLUMNS = (
    _NAME,
    _Col("Desired", "integer", description=(f"{_APPS}.ReplicaSetSpec", "replicas")),
    _Col("Current", "integer", description=(f"{_APPS}.ReplicaSetStatus", "replicas")),
    _Col("Ready", "integer", description=(f"{_APPS}.ReplicaSetStatus", "readyReplicas")),
    _AGE,
    _CONTAINERS,
    _IMAGES,
    _Col("Selector", priority=1, description=(f"{_APPS}.ReplicaSetSpec", "selector")),
)


# -- networking -----------------------------------------------------------------------------------


def _service_external_ip(svc: Obj) -> str:
    spec = svc.get("spec") or {}
    external = spec.get("externalIPs") or []
    kind = spec.get("type") or "ClusterIP"
    if kind in ("ClusterIP", "NodePort"):
        return ",".join(external) or "<none>"
    if kind == "LoadBalancer":
        ingress = _get(svc, "status", "loadBalancer", "ingress") or []
        found = sorted({i.get("ip") or i.get("hostname") for i in ingress} - {None, ""})
        return ",".join(found + external) or "<pending>"
    if kind == "ExternalName":
        return spec.get("externalName") or ""
    return "<unknown>"


def _service_ports(spec: Obj) -> str:
    pieces = []
    for port in spec.get("ports") or []:
        protocol = port.get("protocol") or "TCP"
        node_port = _int(port.get("nodePort"))
        via = f":{node_port}" if node_port > 0 else ""
        pieces.append(f"{_int(port.get('port'))}{via}/{protocol}")
    return ",".join(pieces) or "<none>"


def _service_cells(svc: Obj, now: datetime.datetime) -> list[Cell]:
    spec = svc.get("spec") or {}
    cluster_ips = spec.get("clusterIPs") or [spec.get("clusterIP")]
    return [
        _name(svc),
        spec.get("type") or "ClusterIP",
        cluster_ips[0] or "<none>",
        _service_external_ip(svc),
        _service_ports(spec),
        _age(svc, now),
        labels.format_labels(spec.get("selector")),
    ]


def _host_port(ip: str, port: Any) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def _endpoints_text(subsets: list[Obj]) -> str:
    """kube's `formatEndpoints`: at most three addresses, then "+ N more..."."""
    if not subsets:
        return "<none>"
    shown: list[str] = []
    count = 0
    for subset in subsets:
        ips = [a.get("ip", "") for a in subset.get("addresses") or []]
        ports = [_int(p.get("port")) for p in subset.get("ports") or []]
        # Headless services may have no ports: then the bare addresses are listed.
        targets = [_host_port(ip, port) for port in ports for ip in ips] if ports else ips
        count += len(targets)
        shown += targets[: max(0, 3 - len(shown))]
    text = ",".join(shown)
    return f"{text} + {count - 3} more..." if count > 3 else text


def _endpoints_cells(obj: Obj, now: datetime.datetime) -> list[Cell]:
    return [_name(obj), _endpoints_text(obj.get("subsets") or []), _age(obj, now)]


_SERVICE_COLUMNS = (
    _NAME,
    _Col("Type", description=(_core("ServiceSpec"), "type")),
    _Col("Cluster-IP", description=(_core("ServiceSpec"), "clusterIP")),
    _Col("External-IP", description=(_core("ServiceSpec"), "externalIPs")),
    _Col("Port(s)", description=(_core("ServiceSpec"), "ports")),
    _AGE,
    _Col("Selector", priority=1, description=(_core("ServiceSpec"), "selector")),
)
_ENDPOINTS_COLUMNS = (
    _NAME,
    _Col("Endpoints", description=(_core("Endpoints"), "subsets")),
    _AGE,
)


# -- cluster --------------------------------------------------------------------------------------


def _node_roles(node: Obj) -> str:
    roles = set()
    for key, value in (_get(node, "metadata", "labels") or {}).items():
        if key.startswith("node-role.kubernetes.io/") and key[len("node-role.kubernetes.io/") :]:
            roles.add(key[len("node-role.kubernetes.io/") :])
        elif key == "kubernetes.io/role" and value:
            roles.add(value)
    return ",".join(sorted(roles)) or "<none>"


def _node_address(node: Obj, kind: str) -> str:
    for address in _get(node, "status", "addresses") or []:
        if address.get("type") == kind:
            return str(address.get("address", ""))
    return "<none>"


def _node_cells(node: Obj, now: datetime.datetime) -> list[Cell]:
    ready = next(
        (c for c in _get(node, "status", "conditions") or [] if c.get("type") == "Ready"), None
    )
    status = [
        "Unknown" if ready is None else "Ready" if ready.get("status") == "True" else "NotReady"
    ]
    if _get(node, "spec", "unschedulable"):
        status.append("SchedulingDisabled")
    info = _get(node, "status", "nodeInfo") or {}
    return [
        _name(node),
        ",".join(status),
        _node_roles(node),
        _age(node, now),
        info.get("kubeletVersion") or "",
        _node_address(node, "InternalIP"),
        _node_address(node, "ExternalIP"),
        info.get("osImage") or "<unknown>",
        info.get("kernelVersion") or "<unknown>",
        info.get("containerRuntimeVersion") or "<unknown>",
    ]


def _namespace_cells(ns: Obj, now: datetime.datetime) -> list[Cell]:
    return [_name(ns), _get(ns, "status", "phase") or "", _age(ns, now)]


def _lease_cells(lease: Obj, now: datetime.datetime) -> list[Cell]:
    return [_name(lease), _get(lease, "spec", "holderIdentity") or "", _age(lease, now)]


_NODE_INFO = _core("NodeSystemInfo")
_NODE_COLUMNS = (
    _NAME,
    _Col("Status", description="The status of the node"),
    _Col("Roles", description="The roles of the node"),
    _AGE,
    _Col("Version", description=(_NODE_INFO, "kubeletVersion")),
    _Col("Internal-IP", priority=1, description=(_core("NodeStatus"), "addresses")),
    _Col("External-IP", priority=1, description=(_core("NodeStatus"), "addresses")),
    _Col("OS-Image", priority=1, description=(_NODE_INFO, "osImage")),
    _Col("Kernel-Version", priority=1, description=(_NODE_INFO, "kernelVersion")),
    _Col("Container-Runtime", priority=1, description=(_NODE_INFO, "containerRuntimeVersion")),
)
_NAMESPACE_COLUMNS = (_NAME, _Col("Status", description="The status of the namespace"), _AGE)
_LEASE_COLUMNS = (
    _NAME,
    _Col("Holder", description=("io.k8s.api.coordination.v1.LeaseSpec", "holderIdentity")),
    _AGE,
)


# -- events ---------------------------------------------------------------------------------------


def _event_source(event: Obj) -> str:
    source = event.get("source") or {}
    component = source.get("component") or event.get("reportingComponent") or ""
    instance = source.get("host") or event.get("reportingInstance") or ""
    return f"{component}, {instance}" if instance else component


def _event_cells(event: Obj, now: datetime.datetime) -> list[Cell]:
    first_seen = event.get("firstTimestamp")
    if parse_time(first_seen) is None:
        first_seen = event.get("eventTime")  # events.k8s.io events only carry eventTime
    first = since(first_seen, now)
    last = since(event.get("lastTimestamp"), now)
    if parse_time(event.get("lastTimestamp")) is None:
        last = first
    count = _int(event.get("count"))
    if series := event.get("series"):
        last, count = since(series.get("lastObservedTime"), now), _int(series.get("count"))
    elif count == 0:
        count = 1  # singleton events of the events.k8s.io API carry no count
    involved = event.get("involvedObject") or {}
    target = str(involved.get("kind", "")).lower()
    if involved.get("name"):
        target += "/" + involved["name"]
    return [
        last,
        event.get("type") or "",
        event.get("reason") or "",
        target,
        involved.get("fieldPath") or "",
        _event_source(event),
        str(event.get("message") or "").strip(),
        first,
        count,
        _name(event),
    ]


_EVENT = _core("Event")
_EVENT_COLUMNS = (
    _Col("Last Seen", description=(_EVENT, "lastTimestamp")),
    _Col("Type", description=(_EVENT, "type")),
    _Col("Reason", description=(_EVENT, "reason")),
    _Col("Object", description=(_EVENT, "involvedObject")),
    _Col("Subobject", priority=1, description=(_core("ObjectReference"), "fieldPath")),
    _Col("Source", priority=1, description=(_EVENT, "source")),
    _Col("Message", description=(_EVENT, "message")),
    _Col("First Seen", priority=1, description=(_EVENT, "firstTimestamp")),
    _Col("Count", priority=1, description=(_EVENT, "count")),
    _Col("Name", priority=1, format="name", description=(META, "name")),
)


# -- configuration --------------------------------------------------------------------------------


def _configmap_cells(obj: Obj, now: datetime.datetime) -> list[Cell]:
    count = len(obj.get("data") or {}) + len(obj.get("binaryData") or {})
    return [_name(obj), count, _age(obj, now)]


def _secret_cells(obj: Obj, now: datetime.datetime) -> list[Cell]:
    return [_name(obj), obj.get("type") or "Opaque", len(obj.get("data") or {}), _age(obj, now)]


def _serviceaccount_cells(obj: Obj, now: datetime.datetime) -> list[Cell]:
    return [_name(obj), len(obj.get("secrets") or []), _age(obj, now)]


def _quota_cells(obj: Obj, now: datetime.datetime) -> list[Cell]:
    hard = _get(obj, "status", "hard") or {}
    used = _get(obj, "status", "used") or {}
    requests: list[str] = []
    limits: list[str] = []
    for resource in sorted(hard):
        column = limits if resource.split(".")[0] == "limits" and "." in resource else requests
        column.append(f"{resource}: {_quantity(used.get(resource))}/{_quantity(hard[resource])}")
    return [_name(obj), ", ".join(requests), ", ".join(limits), _age(obj, now)]


_CONFIGMAP_COLUMNS = (_NAME, _Col("Data", description=(_core("ConfigMap"), "data")), _AGE)
_SECRET_COLUMNS = (
    _NAME,
    _Col("Type", description=(_core("Secret"), "type")),
    _Col("Data", description=(_core("Secret"), "data")),
    _AGE,
)
_SERVICEACCOUNT_COLUMNS = (
    _NAME,
    _Col("Secrets", description=(_core("ServiceAccount"), "secrets")),
    _AGE,
)
_QUOTA_COLUMNS = (
    _NAME,
    _Col("Request", description="Minimum amounts of resources the quota's objects request."),
    _Col("Limit", description="Maximum amounts of resources the quota's objects may use."),
    _AGE,
)


# -- storage --------------------------------------------------------------------------------------

_ACCESS_MODES = (
    ("ReadWriteOnce", "RWO"),
    ("ReadOnlyMany", "ROX"),
    ("ReadWriteMany", "RWX"),
    ("ReadWriteOncePod", "RWOP"),
)
_BETA_STORAGE_CLASS = "volume.beta.kubernetes.io/storage-class"


def _access_modes(modes: Iterable[str] | None) -> str:
    present = set(modes or [])
    return ",".join(short for mode, short in _ACCESS_MODES if mode in present)


def _storage_class(obj: Obj) -> str:
    annotations = _get(obj, "metadata", "annotations") or {}
    if _BETA_STORAGE_CLASS in annotations:
        return str(annotations[_BETA_STORAGE_CLASS])
    return _get(obj, "spec", "storageClassName") or ""


def _phase(obj: Obj) -> str:
    if _get(obj, "metadata", "deletionTimestamp"):
        return "Terminating"
    return _get(obj, "status", "phase") or ""


def _pv_cells(pv: Obj, now: datetime.datetime) -> list[Cell]:
    spec = pv.get("spec") or {}
    claim = spec.get("claimRef")
    return [
        _name(pv),
        _quantity(_get(spec, "capacity", "storage")),
        _access_modes(spec.get("accessModes")),
        spec.get("persistentVolumeReclaimPolicy") or "",
        _phase(pv),
        f"{claim.get('namespace', '')}/{claim.get('name', '')}" if claim else "",
        _storage_class(pv),
        spec.get("volumeAttributesClassName") or "<unset>",
        _get(pv, "status", "reason") or "",
        _age(pv, now),
        spec.get("volumeMode") or "<unset>",
    ]


def _pvc_cells(pvc: Obj, now: datetime.datetime) -> list[Cell]:
    spec, status = pvc.get("spec") or {}, pvc.get("status") or {}
    bound = bool(spec.get("volumeName"))
    return [
        _name(pvc),
        _phase(pvc),
        spec.get("volumeName") or "",
        _quantity(_get(status, "capacity", "storage")) if bound else "",
        _access_modes(status.get("accessModes")) if bound else "",
        _storage_class(pvc),
        spec.get("volumeAttributesClassName") or "<unset>",
        _age(pvc, now),
        spec.get("volumeMode") or "<unset>",
    ]


_PV_SPEC, _PVC_SPEC = _core("PersistentVolumeSpec"), _core("PersistentVolumeClaimSpec")
_PVC_STATUS = _core("PersistentVolumeClaimStatus")
_PV_COLUMNS = (
    _NAME,
    _Col("Capacity", description=(_PV_SPEC, "capacity")),
    _Col("Access Modes", description=(_PV_SPEC, "accessModes")),
    _Col("Reclaim Policy", description=(_PV_SPEC, "persistentVolumeReclaimPolicy")),
    _Col("Status", description=(_core("PersistentVolumeStatus"), "phase")),
    _Col("Claim", description=(_PV_SPEC, "claimRef")),
    _Col("StorageClass", description="StorageClass of the pv"),
    _Col("VolumeAttributesClass", description="VolumeAttributesClass of the pv"),
    _Col("Reason", description=(_core("PersistentVolumeStatus"), "reason")),
    _AGE,
    _Col("VolumeMode", priority=1, description=(_PV_SPEC, "volumeMode")),
)
_PVC_COLUMNS = (
    _NAME,
    _Col("Status", description=(_PVC_STATUS, "phase")),
    _Col("Volume", description=(_PVC_SPEC, "volumeName")),
    _Col("Capacity", description=(_PVC_STATUS, "capacity")),
    _Col("Access Modes", description=(_PVC_STATUS, "accessModes")),
    _Col("StorageClass", description="StorageClass of the pvc"),
    _Col("VolumeAttributesClass", description="VolumeAttributesClass of the pvc"),
    _AGE,
    _Col("VolumeMode", priority=1, description=(_PVC_SPEC, "volumeMode")),
)


# -- RBAC -----------------------------------------------------------------------------------------


def _binding_cells(obj: Obj, now: datetime.datetime) -> list[Cell]:
    ref = obj.get("roleRef") or {}
    users, groups, accounts = [], [], []
    for subject in obj.get("subjects") or []:
        kind, name = subject.get("kind"), subject.get("name", "")
        if kind == "ServiceAccount":
            accounts.append(f"{subject.get('namespace', '')}/{name}")
        elif kind == "User":
            users.append(name)
        elif kind == "Group":
            groups.append(name)
    return [
        _name(obj),
        f"{ref.get('kind', '')}/{ref.get('name', '')}",
        _age(obj, now),
        ", ".join(users),
        ", ".join(groups),
        ", ".join(accounts),
    ]


def _binding_columns(kind: str) -> tuple[_Col, ...]:
    return (
        _NAME,
        _Col("Role", description=(f"io.k8s.api.rbac.v1.{kind}", "roleRef")),
        _AGE,
        _Col("Users", priority=1, description=f"Users in the {kind[0].lower()}{kind[1:]}"),
        _Col("Groups", priority=1, description=f"Groups in the {kind[0].lower()}{kind[1:]}"),
        _Col(
            "ServiceAccounts",
            priority=1,
            description=f"ServiceAccounts in the {kind[0].lower()}{kind[1:]}",
        ),
    )


# -- defaults -------------------------------------------------------------------------------------


def _created_at_cells(obj: Obj, now: datetime.datetime) -> list[Cell]:
    """kube's default table convertor: the creation time in RFC 3339, UTC."""
    when = parse_time(_get(obj, "metadata", "creationTimestamp"))
    text = when.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if when else None
    return [_name(obj), text or "0001-01-01T00:00:00Z"]


def _name_age_cells(obj: Obj, now: datetime.datetime) -> list[Cell]:
    return [_name(obj), _age(obj, now)]


_CREATED_AT_COLUMNS = (
    _NAME,
    _Col("Created At", "date", description=(META, "creationTimestamp")),
)
_NAME_AGE_COLUMNS = (_NAME, _AGE)


@dataclasses.dataclass(frozen=True)
class _Printer:
    columns: tuple[_Col, ...] | tuple[Column, ...]
    cells: CellsFn
    conditions: Callable[[Obj], list[dict[str, str]]] | None = None

    def column_dicts(self) -> list[Column]:
        return [c.as_dict() if isinstance(c, _Col) else dict(c) for c in self.columns]


_PRINTERS: dict[tuple[str, str], _Printer] = {
    ("", "Pod"): _Printer(_POD_COLUMNS, _pod_cells, _pod_conditions),
    ("", "Service"): _Printer(_SERVICE_COLUMNS, _service_cells),
    ("", "Endpoints"): _Printer(_ENDPOINTS_COLUMNS, _endpoints_cells),
    ("", "Node"): _Printer(_NODE_COLUMNS, _node_cells),
    ("", "Namespace"): _Printer(_NAMESPACE_COLUMNS, _namespace_cells),
    ("", "Event"): _Printer(_EVENT_COLUMNS, _event_cells),
    ("", "ConfigMap"): _Printer(_CONFIGMAP_COLUMNS, _configmap_cells),
    ("", "Secret"): _Printer(_SECRET_COLUMNS, _secret_cells),
    ("", "ServiceAccount"): _Printer(_SERVICEACCOUNT_COLUMNS, _serviceaccount_cells),
    ("", "PersistentVolume"): _Printer(_PV_COLUMNS, _pv_cells),
    ("", "PersistentVolumeClaim"): _Printer(_PVC_COLUMNS, _pvc_cells),
    ("", "ResourceQuota"): _Printer(_QUOTA_COLUMNS, _quota_cells),
    ("apps", "Deployment"): _Printer(_DEPLOYMENT_COLUMNS, _deployment_cells),
    ("apps", "ReplicaSet"): _Printer(_REPLICASET_COLUMNS, _replicaset_cells),
    ("rbac.authorization.k8s.io", "RoleBinding"): _Printer(
        _binding_columns("RoleBinding"), _binding_cells
    ),
    ("rbac.authorization.k8s.io", "ClusterRoleBinding"): _Printer(
        _binding_columns("ClusterRoleBinding"), _binding_cells
    ),
    ("coordination.k8s.io", "Lease"): _Printer(_LEASE_COLUMNS, _lease_cells),
}


# -- CRD printer columns --------------------------------------------------------------------------


def _crd_column(col: Mapping[str, Any]) -> Column:
    description = col.get("description") or (
        f"Custom resource definition column (in JSONPath format): {col.get('jsonPath', '')}"
    )
    return {
        "name": col.get("name", ""),
        "type": col.get("type", "string"),
        "format": col.get("format", ""),
        "description": description,
        "priority": _int(col.get("priority")),
    }


def _crd_printer(printer_columns: Iterable[Mapping[str, Any]]) -> _Printer:
    specs = list(printer_columns)
    if not specs:
        # kube serves an Age column for CRD versions that declare none.
        age = {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}
        specs = [{**age, "description": _schema_description(META, "creationTimestamp")}]

    def cells(obj: Obj, now: datetime.datetime) -> list[Cell]:
        return [_name(obj), *(_crd_cell(spec, obj, now) for spec in specs)]

    return _Printer((_NAME.as_dict(), *(_crd_column(c) for c in specs)), cells)


def _crd_cell(spec: Mapping[str, Any], obj: Obj, now: datetime.datetime) -> Cell:
    """kube's apiextensions table convertor: the first JSONPath result, typed by the column."""
    try:
        results = jsonpath(str(spec.get("jsonPath", "")), obj)
    except ValueError:
        return None
    if not results or results[0] is None:
        return None
    value, kind = results[0], spec.get("type", "string")
    if kind == "string":
        return _print_value(value)
    if kind == "integer" and isinstance(value, int | float) and not isinstance(value, bool):
        return int(value)
    if kind == "number" and isinstance(value, int | float) and not isinstance(value, bool):
        return int(value) if float(value).is_integer() else float(value)
    if kind == "boolean" and isinstance(value, bool):
        return value
    if kind == "date" and isinstance(value, str):
        when = parse_time(value)
        return "<invalid>" if when is None else human_duration(now - when)
    return None


def _print_value(value: Any) -> str:
    """How kube's JSONPath printer renders one value."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"), sort_keys=True)
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e21:
        return str(int(value))
    return str(value)


# -- JSONPath -------------------------------------------------------------------------------------

_FILTER_RE = re.compile(r"^@((?:\.[^.\[\]=!<>\s]+|\[[^\]]*\])*)\s*(?:(==|!=|<=|>=|<|>)\s*(.+))?$")


def _split_bracket(path: str, start: int) -> tuple[str, int]:
    """The text inside `[...]` starting at `start`, honouring quotes; and the index after `]`."""
    depth, quote, i = 0, "", start
    while i < len(path):
        c = path[i]
        if quote:
            quote = "" if c == quote else quote
        elif c in "'\"":
            quote = c
        elif c in "[(":
            depth += 1
        elif c in ")]":
            depth -= 1
            if depth == 0:
                return path[start + 1 : i], i + 1
        i += 1
    raise ValueError(f"unclosed bracket in {path!r}")


def _parse_jsonpath(path: str) -> list[tuple[str, Any]]:
    """Steps of kube's JSONPath subset: `.a`, `..a`, `.*`, `['a']`, `[0]`, `[1:3]`, `[*]`,
    `[?(@.a=="x")]`. Surrounding `{...}` and a leading `$` are accepted."""
    path = path.strip()
    if path.startswith("{") and path.endswith("}"):
        path = path[1:-1].strip()
    path = path.removeprefix("$")
    steps: list[tuple[str, Any]] = []
    i = 0
    while i < len(path):
        if path.startswith("..", i) or path[i] == ".":
            recursive = path.startswith("..", i)
            i += 2 if recursive else 1
            end = i
            while end < len(path) and path[end] not in ".[":
                end += 1
            name = path[i:end]
            if not name and not recursive:
                raise ValueError(f"empty field name in {path!r}")
            steps.append(("recurse", name) if recursive else _field_step(name))
            i = end
        elif path[i] == "[":
            inner, i = _split_bracket(path, i)
            steps.append(_bracket_step(inner.strip()))
        else:
            raise ValueError(f"unexpected {path[i]!r} in JSONPath {path!r}")
    return steps


def _field_step(name: str) -> tuple[str, Any]:
    return ("all", None) if name == "*" else ("key", name)


def _bracket_step(inner: str) -> tuple[str, Any]:
    if inner == "*":
        return ("all", None)
    if inner[:1] in "'\"" and inner[-1:] == inner[:1] and len(inner) >= 2:
        return ("key", inner[1:-1])
    if inner.startswith("?(") and inner.endswith(")"):
        return ("filter", _parse_filter(inner[2:-1].strip()))
    if ":" in inner:
        bounds = [int(b) if b.strip() else None for b in inner.split(":")[:2]]
        return ("slice", slice(bounds[0], bounds[1]))
    return ("index", int(inner))


def _parse_filter(expr: str) -> tuple[list[tuple[str, Any]], str | None, Any]:
    match = _FILTER_RE.match(expr)
    if not match:
        raise ValueError(f"unsupported JSONPath filter {expr!r}")
    left, op, literal = match.groups()
    value: Any = None
    if op is not None:
        literal = literal.strip()
        if literal[:1] in "'\"" and literal[-1:] == literal[:1] and len(literal) >= 2:
            value = literal[1:-1]
        else:
            value = json.loads(literal)
    return _parse_jsonpath(left), op, value


def _descend(value: Any, name: str) -> list[Any]:
    found: list[Any] = []
    if isinstance(value, dict):
        if name in value:
            found.append(value[name])
        for child in value.values():
            found += _descend(child, name)
    elif isinstance(value, list):
        for child in value:
            found += _descend(child, name)
    return found


def _filter_holds(item: Any, test: tuple[list[tuple[str, Any]], str | None, Any]) -> bool:
    steps, op, literal = test
    found = _evaluate(steps, item)
    if op is None:
        return bool(found)
    if not found:
        return False
    left = found[0]
    comparisons: dict[str, Callable[[Any, Any], bool]] = {
        "==": lambda a, b: a == b,
        "!=": lambda a, b: a != b,
        "<": lambda a, b: a < b,
        ">": lambda a, b: a > b,
        "<=": lambda a, b: a <= b,
        ">=": lambda a, b: a >= b,
    }
    try:
        return comparisons[op](left, literal)
    except TypeError:
        return False


def _apply(kind: str, arg: Any, value: Any) -> list[Any]:
    if kind == "key":
        return [value[arg]] if isinstance(value, dict) and arg in value else []
    if kind == "all":
        return list(value.values()) if isinstance(value, dict) else list(value or [])
    if kind == "recurse":
        return _descend(value, arg)
    if not isinstance(value, list):
        return []
    if kind == "index":
        return [value[arg]] if -len(value) <= arg < len(value) else []
    if kind == "slice":
        return value[arg]
    return [item for item in value if _filter_holds(item, arg)]


def _evaluate(steps: list[tuple[str, Any]], data: Any) -> list[Any]:
    current = [data]
    for kind, arg in steps:
        current = [found for value in current for found in _apply(kind, arg, value)]
    return current


def jsonpath(path: str, data: Any) -> list[Any]:
    """All values `path` selects in `data` (missing keys select nothing); ValueError if the
    path is not in the supported subset."""
    return _evaluate(_parse_jsonpath(path), data)


# -- public API -----------------------------------------------------------------------------------


def _printer(rt: ResourceType, printer_columns: Iterable[Mapping[str, Any]] | None) -> _Printer:
    if printer_columns is not None or rt.crd_name is not None or rt.crd_schema is not None:
        return _crd_printer(printer_columns if printer_columns is not None else rt.printer_columns)
    if found := _PRINTERS.get((rt.group, rt.kind)):
        return found
    if (rt.definition or "").startswith("io.k8s."):
        return _Printer(_CREATED_AT_COLUMNS, _created_at_cells)
    return _Printer(_NAME_AGE_COLUMNS, _name_age_cells)


def columns(
    rt: ResourceType, printer_columns: Iterable[Mapping[str, Any]] | None = None
) -> list[Column]:
    """The `TableColumnDefinition`s of `rt` (priority 1: shown only with `-o wide`).

    `printer_columns` are a CRD version's `additionalPrinterColumns`; by default those the
    registry carries for CRD-served kinds.
    """
    return _printer(rt, printer_columns).column_dicts()


def cells(
    rt: ResourceType,
    obj: Obj,
    now: datetime.datetime,
    printer_columns: Iterable[Mapping[str, Any]] | None = None,
) -> list[Cell]:
    """The row of `obj`, one cell per column of `columns(rt)`, wide cells included."""
    return _printer(rt, printer_columns).cells(obj, now)


def _row_object(rt: ResourceType, obj: Obj, include_object: str) -> Obj | None:
    if include_object == "None":
        return None
    if include_object == "Object":
        return {"apiVersion": rt.api_version, "kind": rt.kind, **obj}
    return {
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": obj.get("metadata") or {},
    }


def table(
    rt: ResourceType,
    objs: Iterable[Obj],
    *,
    now: datetime.datetime,
    include_object: str = "Metadata",
    list_meta: Mapping[str, Any] | None = None,
    printer_columns: Iterable[Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """A `meta.k8s.io/v1 Table` of `objs`.

    Each row's `object` is a PartialObjectMetadata (`include_object="Metadata"`, the default),
    the whole object (`"Object"`), or null (`"None"`), as kube's `?includeObject=`. Any other
    value raises TableError with kube's message.
    """
    include_object = include_object or "Metadata"
    if include_object not in INCLUDE_OBJECT_VALUES:
        raise TableError(f"unrecognized includeObject value: {json.dumps(include_object)}")
    printer = _printer(rt, printer_columns)
    rows = []
    for obj in objs:
        row: dict[str, Any] = {"cells": printer.cells(obj, now)}
        if printer.conditions and (conditions := printer.conditions(obj)):
            row["conditions"] = conditions
        row["object"] = _row_object(rt, obj, include_object)
        rows.append(row)
    meta = {
        k: v
        for k, v in (list_meta or {}).items()
        if k in ("resourceVersion", "continue", "remainingItemCount", "selfLink")
    }
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": meta,
        "columnDefinitions": printer.column_dicts(),
        "rows": rows,
    }
