"""Defaulting: the fields kube-apiserver fills in before validating and storing an object.

The values follow kube 1.32's `pkg/apis/*/v1/defaults.go` (and the generated declarative
defaults), plus the few fields that kube's registry strategies and default admission plugins
set on every object and that clients therefore always see:

- Pods: `serviceAccountName`/`serviceAccount` `default` (ServiceAccount admission), `priority`
  and `preemptionPolicy` (Priority admission), `status.phase` `Pending` with the `qosClass`.
- Services: `ipFamilyPolicy`/`ipFamilies` (set by kube's service allocator), `status.loadBalancer`.
- Namespaces: the `kubernetes` finalizer and phase `Active` on create, the
  `kubernetes.io/metadata.name` label.
- Secrets: `stringData` merged into `data` (kube's v1 conversion), type `Opaque`.

Defaulting runs before validation, so it tolerates malformed input: a value of the wrong type is
left alone for validation to report.

Public API:

- `default(rt, obj) -> None`: default `obj` in place. CRD-served kinds get their schema's
  `default`s (`hypernetes.resources.crd.default_custom`). Create-only defaults apply when the
  object has no `metadata.resourceVersion` yet, i.e. when it is being created.
- `prepare_update(rt, new, old) -> None`: what kube's registry strategies carry over from the
  stored object on update before validating: a Service's allocated cluster IPs and node
  ports when the new object omits them (kube's `patchAllocatedValues`), and a Namespace's
  `spec.finalizers` (changed only through the `finalize` subresource).
- `image_pull_policy(image) -> str`: `Always` for `:latest` or untagged images, else
  `IfNotPresent`.
- `qos_class(pod_spec) -> str | None`: kube's `GetPodQOS` (None if a quantity is malformed).
"""

from __future__ import annotations

import base64
import functools
import re
from collections.abc import Callable
from typing import Any

from hypernetes.resources import quantity as qty
from hypernetes.resources.registry import ResourceType
from hypernetes.resources.schema import definition

Obj = dict[str, Any]

DEFAULT_MODE = 0o644  # kube's default file mode for secret, configMap and projected volumes
SYSTEM_PRIORITIES = {"system-node-critical": 2000001000, "system-cluster-critical": 2000000000}


def default(rt: ResourceType, obj: Obj) -> None:
    """Fill in `obj`'s defaults in place, as kube-apiserver would for `rt`."""
    if rt.crd_schema is not None:
        from hypernetes.resources import crd  # crd builds on the validation module

        crd.default_custom(rt, obj)
        return
    if (rt.group, rt.kind) == ("apiextensions.k8s.io", "CustomResourceDefinition"):
        from hypernetes.resources import crd

        crd.default_crd(obj)
        return
    defaulter = _DEFAULTERS.get((rt.group, rt.kind))
    if defaulter is not None:
        defaulter(obj)


def prepare_update(rt: ResourceType, new: Obj, old: Obj) -> None:
    """Carry over from `old` what kube keeps on update though the client did not send it."""
    if rt.crd_schema is not None or rt.group:
        return
    if rt.kind == "Service":
        _keep_allocations(new, old)
    elif rt.kind == "Namespace" and isinstance(old.get("spec"), dict):
        spec = _child(new, "spec")
        if spec is not None and "finalizers" in old["spec"]:
            spec["finalizers"] = list(old["spec"]["finalizers"])
        elif spec is not None:
            spec.pop("finalizers", None)


def _keep_allocations(new: Obj, old: Obj) -> None:
    """kube's `patchAllocatedValues`: PUT without clusterIP or nodePort keeps the old ones."""
    spec, old_spec = _existing(new, "spec"), _existing(old, "spec")
    if spec is None or old_spec is None:
        return
    kinds = (spec.get("type") or "ClusterIP", old_spec.get("type") or "ClusterIP")
    if "ExternalName" not in kinds:
        if not spec.get("clusterIP") and old_spec.get("clusterIP"):
            spec["clusterIP"] = old_spec["clusterIP"]
        if not spec.get("clusterIPs") and old_spec.get("clusterIPs"):
            spec["clusterIPs"] = list(old_spec["clusterIPs"])
    if all(k in ("NodePort", "LoadBalancer") for k in kinds):
        old_ports = {p.get("name", ""): p.get("nodePort") for p in _items(old_spec, "ports")}
        used = {p.get("nodePort") for p in _items(spec, "ports") if p.get("nodePort")}
        for port in _items(spec, "ports"):
            previous = old_ports.get(port.get("name", ""))
            if not port.get("nodePort") and previous and previous not in used:
                port["nodePort"] = previous
        if not spec.get("healthCheckNodePort") and old_spec.get("healthCheckNodePort"):
            spec["healthCheckNodePort"] = old_spec["healthCheckNodePort"]


# -- helpers that tolerate malformed input -----------------------------------------------------


def _child(parent: Any, key: str) -> Obj | None:
    """`parent[key]`, created as `{}` when absent; None when either is not an object."""
    if not isinstance(parent, dict):
        return None
    if parent.get(key) is None:
        parent[key] = {}
    value = parent[key]
    return value if isinstance(value, dict) else None


def _existing(parent: Any, key: str) -> Obj | None:
    value = parent.get(key) if isinstance(parent, dict) else None
    return value if isinstance(value, dict) else None


def _items(parent: Any, key: str) -> list[Obj]:
    value = parent.get(key) if isinstance(parent, dict) else None
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _default(obj: Obj, key: str, value: Any) -> None:
    """Set a pointer-like field kube defaults when nil."""
    if obj.get(key) is None:
        obj[key] = value


def _default_str(obj: Obj, key: str, value: str) -> None:
    """Set a string field kube defaults when empty."""
    if obj.get(key) in (None, ""):
        obj[key] = value


def _creating(obj: Obj) -> bool:
    meta = obj.get("metadata")
    return not (isinstance(meta, dict) and meta.get("resourceVersion"))


# -- pods -----------------------------------------------------------------------------------------

# A docker reference's tag: the part after the last ':' of the last path component.
_DIGEST = re.compile(r"@[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}$")
_REFERENCE = re.compile(
    r"^(?:[a-zA-Z0-9.-]+(?::[0-9]+)?/)?[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
    r"(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*(?::[\w][\w.-]{0,127})?$"
)


def image_pull_policy(image: str) -> str:
    """kube's rule: `Always` when the tag is `latest` or missing (and no digest is given)."""
    digest = _DIGEST.search(image)
    name = image[: digest.start()] if digest else image
    if not _REFERENCE.match(name):
        return "IfNotPresent"  # kube ignores unparsable references here; validation decides
    last = name.rsplit("/", 1)[-1]
    tag = last.split(":", 1)[1] if ":" in last else ""
    if not tag and not digest:
        tag = "latest"
    return "Always" if tag == "latest" else "IfNotPresent"


def _probe(probe: Obj) -> None:
    for key, value in (
        ("timeoutSeconds", 1),
        ("periodSeconds", 10),
        ("successThreshold", 1),
        ("failureThreshold", 3),
    ):
        if probe.get(key) in (None, 0):
            probe[key] = value
    _http_get(_existing(probe, "httpGet"))


def _http_get(action: Obj | None) -> None:
    if action is not None:
        _default_str(action, "path", "/")
        _default_str(action, "scheme", "HTTP")


def _field_ref(holder: Obj | None) -> None:
    ref = _existing(holder, "fieldRef")
    if ref is not None:
        _default_str(ref, "apiVersion", "v1")


def _container(c: Obj) -> None:
    if c.get("imagePullPolicy") in (None, "") and isinstance(c.get("image", ""), str):
        c["imagePullPolicy"] = image_pull_policy(c.get("image") or "")
    _default_str(c, "terminationMessagePath", "/dev/termination-log")
    _default_str(c, "terminationMessagePolicy", "File")
    _default(c, "resources", {})  # kube always serializes this struct
    for port in _items(c, "ports"):
        _default_str(port, "protocol", "TCP")
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        found = _existing(c, probe)
        if found is not None:
            _probe(found)
    lifecycle = _existing(c, "lifecycle")
    for hook in ("postStart", "preStop"):
        _http_get(_existing(_existing(lifecycle, hook), "httpGet"))
    for var in _items(c, "env"):
        _field_ref(_existing(var, "valueFrom"))


@functools.cache
def _volume_sources() -> tuple[str, ...]:
    return tuple(k for k in definition("io.k8s.api.core.v1.Volume")["properties"] if k != "name")


def _volume(vol: Obj) -> None:
    if all(vol.get(k) is None for k in _volume_sources()):
        vol["emptyDir"] = {}
    for kind in ("secret", "configMap", "downwardAPI", "projected"):
        source = _existing(vol, kind)
        if source is not None:
            _default(source, "defaultMode", DEFAULT_MODE)
    for item in _items(_existing(vol, "downwardAPI"), "items"):
        _field_ref(item)
    for source in _items(_existing(vol, "projected"), "sources"):
        token = _existing(source, "serviceAccountToken")
        if token is not None:
            _default(token, "expirationSeconds", 3600)
        for item in _items(_existing(source, "downwardAPI"), "items"):
            _field_ref(item)
    host_path = _existing(vol, "hostPath")
    if host_path is not None:
        _default(host_path, "type", "")
    template = _existing(_existing(vol, "ephemeral"), "volumeClaimTemplate")
    claim_spec = _existing(template, "spec")
    if claim_spec is not None:
        _default(claim_spec, "volumeMode", "Filesystem")


def _service_account(spec: Obj, fallback: str) -> None:
    """Keep `serviceAccount` (deprecated) and `serviceAccountName` equal, as kube's conversion."""
    name = spec.get("serviceAccountName") or spec.get("serviceAccount") or fallback
    if isinstance(name, str) and name:
        spec["serviceAccountName"] = spec["serviceAccount"] = name


def _pod_spec(spec: Obj) -> None:
    """kube's `SetDefaults_PodSpec` and the defaults of everything a pod spec contains."""
    _default_str(spec, "dnsPolicy", "ClusterFirst")
    _default_str(spec, "restartPolicy", "Always")
    _default(spec, "securityContext", {})
    _default(spec, "terminationGracePeriodSeconds", 30)
    _default_str(spec, "schedulerName", "default-scheduler")
    for kind in ("containers", "initContainers", "ephemeralContainers"):
        for c in _items(spec, kind):
            _container(c)
    for vol in _items(spec, "volumes"):
        _volume(vol)
    _service_account(spec, "")


def _requests_from_limits(c: Obj) -> None:
    resources = _existing(c, "resources")
    limits = _existing(resources, "limits")
    if resources is None or limits is None:
        return
    requests = _child(resources, "requests")
    if requests is not None:
        for name, value in limits.items():
            requests.setdefault(name, value)


def _pod(obj: Obj) -> None:
    spec = _child(obj, "spec")
    if spec is None:
        return
    _pod_spec(spec)
    for kind in ("containers", "initContainers"):
        for c in _items(spec, kind):
            _requests_from_limits(c)
    _default(spec, "enableServiceLinks", True)
    if spec.get("hostNetwork") is True:
        for kind in ("containers", "initContainers"):
            for c in _items(spec, kind):
                for port in _items(c, "ports"):
                    if not port.get("hostPort"):
                        port["hostPort"] = port.get("containerPort")
    _service_account(spec, "default")
    _priority(spec)
    if _creating(obj) and not obj.get("status"):
        obj["status"] = {"phase": "Pending"}
        qos = qos_class(spec)
        if qos is not None:
            obj["status"]["qosClass"] = qos


def _priority(spec: Obj) -> None:
    """What kube's Priority admission sets when no PriorityClass overrides it."""
    name = spec.get("priorityClassName")
    if not name:
        _default(spec, "priority", 0)
    elif name in SYSTEM_PRIORITIES:
        _default(spec, "priority", SYSTEM_PRIORITIES[name])
    _default_str(spec, "preemptionPolicy", "PreemptLowerPriority")


def qos_class(spec: Obj) -> str | None:
    """kube's `GetPodQOS` over containers and init containers."""
    requests: dict[str, qty.Quantity] = {}
    limits: dict[str, qty.Quantity] = {}
    guaranteed = True
    try:
        for c in _items(spec, "containers") + _items(spec, "initContainers"):
            resources = _existing(c, "resources") or {}
            _sum_positive(_existing(resources, "requests") or {}, requests)
            found = _sum_positive(_existing(resources, "limits") or {}, limits)
            guaranteed = guaranteed and found >= {"cpu", "memory"}
    except (qty.QuantityError, TypeError):
        return None
    if not requests and not limits:
        return "BestEffort"
    guaranteed = guaranteed and all(limits.get(k) == v for k, v in requests.items())
    return "Guaranteed" if guaranteed and len(requests) == len(limits) else "Burstable"


def _sum_positive(resources: Obj, into: dict[str, qty.Quantity]) -> set[str]:
    found: set[str] = set()
    for name in ("cpu", "memory"):
        if name in resources:
            q = qty.parse(resources[name])
            if q.sign() > 0:
                into[name] = into.get(name, qty.Quantity(0)) + q
                found.add(name)
    return found


def _template(spec: Obj) -> None:
    template = _child(spec, "template")
    template_spec = _child(template, "spec")
    if template_spec is not None:
        _pod_spec(template_spec)


# -- workloads ----------------------------------------------------------------------------------


def _deployment(obj: Obj) -> None:
    spec = _child(obj, "spec")
    if spec is None:
        return
    _default(spec, "replicas", 1)
    strategy = _child(spec, "strategy")
    if strategy is not None:
        _default_str(strategy, "type", "RollingUpdate")
        if strategy["type"] == "RollingUpdate":
            rolling = _child(strategy, "rollingUpdate")
            if rolling is not None:
                _default(rolling, "maxUnavailable", "25%")
                _default(rolling, "maxSurge", "25%")
    _default(spec, "revisionHistoryLimit", 10)
    _default(spec, "progressDeadlineSeconds", 600)
    _template(spec)


def _replica_set(obj: Obj) -> None:
    spec = _child(obj, "spec")
    if spec is not None:
        _default(spec, "replicas", 1)
        _template(spec)


# -- services -----------------------------------------------------------------------------------


def _service(obj: Obj) -> None:
    spec = _child(obj, "spec")
    if spec is None:
        return
    _default_str(spec, "sessionAffinity", "None")
    if spec["sessionAffinity"] == "None":
        spec.pop("sessionAffinityConfig", None)
    elif spec["sessionAffinity"] == "ClientIP":
        client_ip = _child(_child(spec, "sessionAffinityConfig"), "clientIP")
        if client_ip is not None:
            _default(client_ip, "timeoutSeconds", 10800)
    _default_str(spec, "type", "ClusterIP")
    kind = spec["type"]
    for port in _items(spec, "ports"):
        _default_str(port, "protocol", "TCP")
        if port.get("targetPort") in (None, 0, ""):
            port["targetPort"] = port.get("port")
    external = kind in ("NodePort", "LoadBalancer") or (
        kind == "ClusterIP" and bool(spec.get("externalIPs"))
    )
    if external:
        _default_str(spec, "externalTrafficPolicy", "Cluster")
    if kind in ("NodePort", "LoadBalancer", "ClusterIP"):
        _default_str(spec, "internalTrafficPolicy", "Cluster")
    if kind == "LoadBalancer":
        _default(spec, "allocateLoadBalancerNodePorts", True)
    if kind != "ExternalName":
        _ip_families(spec)
    if _creating(obj) and not obj.get("status"):
        obj["status"] = {"loadBalancer": {}}


def _ip_families(spec: Obj) -> None:
    """What kube's service IP allocator settles on a single-stack IPv4 cluster."""
    headless = spec.get("clusterIP") == "None"
    policy = "RequireDualStack" if headless and not spec.get("selector") else "SingleStack"
    _default_str(spec, "ipFamilyPolicy", policy)
    ip = spec.get("clusterIP")
    family = "IPv6" if isinstance(ip, str) and ":" in ip else "IPv4"
    _default(spec, "ipFamilies", [family])


def _endpoints(obj: Obj) -> None:
    for subset in _items(obj, "subsets"):
        for port in _items(subset, "ports"):
            _default_str(port, "protocol", "TCP")


# -- configuration and cluster objects ----------------------------------------------------------


def _secret(obj: Obj) -> None:
    _default_str(obj, "type", "Opaque")
    string_data = obj.get("stringData")
    if isinstance(string_data, dict) and all(isinstance(v, str) for v in string_data.values()):
        data = _child(obj, "data")
        if data is not None:
            for key, value in string_data.items():
                data[key] = base64.b64encode(value.encode()).decode()
            del obj["stringData"]  # write-only: kube merges it into data and never stores it


def _namespace(obj: Obj) -> None:
    meta = _existing(obj, "metadata")
    if meta is not None and isinstance(meta.get("name"), str) and meta["name"]:
        labels = _child(meta, "labels")
        if labels is not None:
            labels["kubernetes.io/metadata.name"] = meta["name"]
    status = _child(obj, "status")
    if status is not None:
        if _creating(obj):
            status["phase"] = "Active"
        _default_str(status, "phase", "Active")
    spec = _child(obj, "spec")
    if spec is not None and _creating(obj):
        finalizers = spec.get("finalizers")
        if finalizers is None:
            spec["finalizers"] = ["kubernetes"]
        elif isinstance(finalizers, list) and "kubernetes" not in finalizers:
            finalizers.append("kubernetes")


def _node(obj: Obj) -> None:
    status = _existing(obj, "status")
    if status is not None and status.get("allocatable") is None:
        capacity = _existing(status, "capacity")
        if capacity is not None:
            status["allocatable"] = dict(capacity)


def _persistent_volume(obj: Obj) -> None:
    spec = _child(obj, "spec")
    if spec is not None:
        _default_str(spec, "persistentVolumeReclaimPolicy", "Retain")
        _default(spec, "volumeMode", "Filesystem")
    status = _child(obj, "status")
    if status is not None:
        _default_str(status, "phase", "Pending")


def _persistent_volume_claim(obj: Obj) -> None:
    spec = _child(obj, "spec")
    if spec is not None:
        _default(spec, "volumeMode", "Filesystem")
    status = _child(obj, "status")
    if status is not None:
        _default_str(status, "phase", "Pending")


def _limit_range(obj: Obj) -> None:
    """kube's `SetDefaults_LimitRangeItem` for container limits."""
    for item in _items(_existing(obj, "spec"), "limits"):
        if item.get("type") != "Container":
            continue
        defaults, requests = _child(item, "default"), _child(item, "defaultRequest")
        if defaults is None or requests is None:
            continue
        for name, value in (_existing(item, "max") or {}).items():
            defaults.setdefault(name, value)
        for name, value in defaults.items():
            requests.setdefault(name, value)
        for name, value in (_existing(item, "min") or {}).items():
            requests.setdefault(name, value)


def _binding(obj: Obj) -> None:
    ref = _existing(obj, "roleRef")
    if ref is not None:
        _default_str(ref, "apiGroup", "rbac.authorization.k8s.io")
    for subject in _items(obj, "subjects"):
        if subject.get("kind") in ("User", "Group"):
            _default_str(subject, "apiGroup", "rbac.authorization.k8s.io")


_DEFAULTERS: dict[tuple[str, str], Callable[[Obj], None]] = {
    ("", "Pod"): _pod,
    ("", "Service"): _service,
    ("", "Endpoints"): _endpoints,
    ("", "Secret"): _secret,
    ("", "Namespace"): _namespace,
    ("", "Node"): _node,
    ("", "PersistentVolume"): _persistent_volume,
    ("", "PersistentVolumeClaim"): _persistent_volume_claim,
    ("", "LimitRange"): _limit_range,
    ("apps", "Deployment"): _deployment,
    ("apps", "ReplicaSet"): _replica_set,
    ("rbac.authorization.k8s.io", "RoleBinding"): _binding,
    ("rbac.authorization.k8s.io", "ClusterRoleBinding"): _binding,
}
