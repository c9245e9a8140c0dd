"""What objects cost against quotas: kube's quota evaluators and `PodRequests`.

Pure functions over objects as dicts, shared by quota admission in the API
server (`hypernetes.api.admission.quota`), LimitRange admission and the
ResourceQuota controller, which recounts through the API. A pod costs `pods`,
`count/pods`, its effective requests (`requests.cpu` and the legacy `cpu`,
memory, ephemeral-storage, extended resources) and limits (`limits.cpu`, ...),
nothing once Succeeded or Failed; a service costs `services`,
`services.nodeports` (one per port of a NodePort/LoadBalancer service) and
`services.loadbalancers`; a claim `persistentvolumeclaims` and
`requests.storage`; every object `count/<resource>[.<group>]`, and the classic
counts (configmaps, secrets, replicationcontrollers, resourcequotas).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from hypernetes.resources import defaults
from hypernetes.resources import quantity as qty

Obj = dict[str, Any]
Usage = dict[str, qty.Quantity]
Kind = tuple[str, str]
"""(group, plural) of a resource."""

COMPUTE = ("cpu", "memory", "ephemeral-storage")
MUST_SPECIFY = frozenset(
    {"requests.cpu", "requests.memory", "limits.cpu", "limits.memory", "cpu", "memory"}
)
"""Under a quota on any of these, every container must name it (kube's rule)."""
TERMINAL = ("Succeeded", "Failed")
CLASSIC_COUNTS: dict[str, Kind] = {
    "pods": ("", "pods"),
    "services": ("", "services"),
    "configmaps": ("", "configmaps"),
    "secrets": ("", "secrets"),
    "persistentvolumeclaims": ("", "persistentvolumeclaims"),
    "replicationcontrollers": ("", "replicationcontrollers"),
    "resourcequotas": ("", "resourcequotas"),
    "namespaces": ("", "namespaces"),
}
_POD_PREFIXES = ("requests.", "limits.")
_STORAGE_CLASS = ".storageclass.storage.k8s.io/"


# -- pod requests and limits ------------------------------------------------------------


def container_resources(container: Obj, which: str) -> dict[str, Any]:
    res = container.get("resources")
    found = res.get(which) if isinstance(res, dict) else None
    return found if isinstance(found, dict) else {}


def containers_of(spec: Obj, kind: str) -> list[Obj]:
    items = spec.get(kind)
    return [c for c in items if isinstance(c, dict)] if isinstance(items, list) else []


def add(a: qty.Quantity, b: qty.Quantity) -> qty.Quantity:
    """a + b, in b's format when a is nothing yet (so memory sums stay in `Gi`)."""
    return qty.Quantity(a.value + b.value, b.format if a.is_zero() else a.format)


def pod_resources(spec: Obj, which: str) -> dict[str, qty.Quantity]:
    """The pod's effective `requests` or `limits`: the sum over its containers, at least
    the largest init container's, plus the pod overhead (kube's `PodRequests`)."""
    total: dict[str, qty.Quantity] = {}
    for c in containers_of(spec, "containers"):
        for name, q in parsed_quantities(container_resources(c, which)).items():
            total[name] = add(total.get(name, qty.Quantity(0)), q)
    for c in containers_of(spec, "initContainers"):
        for name, q in parsed_quantities(container_resources(c, which)).items():
            if name not in total or q > total[name]:
                total[name] = q
    overhead = spec.get("overhead")
    for name, q in parsed_quantities(overhead if isinstance(overhead, dict) else {}).items():
        total[name] = add(total.get(name, qty.Quantity(0)), q)
    return total


def parsed_quantities(values: dict[str, Any]) -> dict[str, qty.Quantity]:
    """Quantities by name; a malformed one (validation refuses those) is left out."""
    out: dict[str, qty.Quantity] = {}
    for name, value in values.items():
        try:
            out[name] = qty.parse(value)
        except (qty.QuantityError, TypeError):
            continue
    return out


# -- what objects cost ---------------------------------------------------------------------


def count_name(group: str, plural: str) -> str:
    return f"count/{plural}.{group}" if group else f"count/{plural}"


def object_usage(group: str, plural: str, obj: Obj) -> Usage:
    """What `obj` of kind (group, plural) counts against quota."""
    one = qty.Quantity(1)
    if (group, plural) == ("", "pods"):
        return pod_usage(obj)
    usage: Usage = {count_name(group, plural): one}
    if not group and plural in CLASSIC_COUNTS:
        usage[plural] = one
    if (group, plural) == ("", "services"):
        usage |= _service_usage(obj)
    elif (group, plural) == ("", "persistentvolumeclaims"):
        usage |= _claim_usage(obj)
    return usage


def pod_usage(pod: Obj) -> Usage:
    if (pod.get("status") or {}).get("phase") in TERMINAL:
        return {}
    spec = pod.get("spec") or {}
    usage: Usage = {"pods": qty.Quantity(1), "count/pods": qty.Quantity(1)}
    return usage | compute_usage(pod_resources(spec, "requests"), pod_resources(spec, "limits"))


def compute_usage(requests: Usage, limits: Usage) -> Usage:
    """kube's pod compute usage from effective requests and limits."""
    usage: Usage = {}
    for name, q in requests.items():
        usage[f"requests.{name}"] = q
        if name in COMPUTE:
            usage[name] = q
    for name, q in limits.items():
        if name in COMPUTE:
            usage[f"limits.{name}"] = q
    return usage


def _service_usage(service: Obj) -> Usage:
    spec = service.get("spec") or {}
    kind = spec.get("type") or "ClusterIP"
    usage: Usage = {}
    ports = [p for p in spec.get("ports") or [] if isinstance(p, dict)]
    if kind == "LoadBalancer":
        usage["services.loadbalancers"] = qty.Quantity(1)
    node_ports = kind == "NodePort" or (
        kind == "LoadBalancer" and spec.get("allocateLoadBalancerNodePorts") is not False
    )
    if node_ports:
        usage["services.nodeports"] = qty.Quantity(len(ports))
    return usage


def _claim_usage(claim: Obj) -> Usage:
    spec = claim.get("spec") or {}
    storage = ((spec.get("resources") or {}).get("requests") or {}).get("storage")
    usage: Usage = {}
    if storage is not None:
        usage["requests.storage"] = qty.parse(storage)
    sc = spec.get("storageClassName")
    if sc:
        usage[f"{sc}{_STORAGE_CLASS}persistentvolumeclaims"] = qty.Quantity(1)
        if storage is not None:
            usage[f"{sc}{_STORAGE_CLASS}requests.storage"] = qty.parse(storage)
    return usage


def kinds_for(resources: Iterable[str]) -> set[Kind]:
    """The kinds whose objects cost any of `resources` (what a recount must list)."""
    kinds: set[Kind] = set()
    for name in resources:
        if name in CLASSIC_COUNTS:
            kinds.add(CLASSIC_COUNTS[name])
        elif name.startswith("count/"):
            plural, _, group = name[len("count/") :].partition(".")
            kinds.add((group, plural))
        elif name.startswith("services."):
            kinds.add(("", "services"))
        elif name == "requests.storage" or _STORAGE_CLASS in name:
            kinds.add(("", "persistentvolumeclaims"))
        elif name in COMPUTE or name.startswith(_POD_PREFIXES):
            kinds.add(("", "pods"))
    return kinds


# -- scopes ----------------------------------------------------------------------------------


def quota_matches(quota: Obj, group: str, plural: str, obj: Obj) -> bool:
    """Whether `obj` falls under the quota's scopes (scoped quotas track pods only)."""
    spec = quota.get("spec") or {}
    scopes: list[tuple[str, str, list[str]]] = [(s, "Exists", []) for s in spec.get("scopes") or []]
    for expr in (spec.get("scopeSelector") or {}).get("matchExpressions") or []:
        scopes.append(
            (expr.get("scopeName", ""), expr.get("operator", ""), expr.get("values") or [])
        )
    if not scopes:
        return True
    if (group, plural) != ("", "pods"):
        return False
    return all(_pod_in_scope(obj, *scope) for scope in scopes)


def _pod_in_scope(pod: Obj, scope: str, operator: str, values: list[str]) -> bool:
    spec = pod.get("spec") or {}
    if scope == "PriorityClass":
        name = spec.get("priorityClassName")
        if operator == "In":
            return name in values
        if operator == "NotIn":
            return name not in values
        if operator == "DoesNotExist":
            return not name
        return bool(name)
    deadline = spec.get("activeDeadlineSeconds")
    best_effort = defaults.qos_class(spec) == "BestEffort"
    inside = {
        "Terminating": deadline is not None and deadline >= 0,
        "NotTerminating": deadline is None or deadline < 0,
        "BestEffort": best_effort,
        "NotBestEffort": not best_effort,
        "CrossNamespacePodAffinity": _cross_namespace_affinity(spec),
    }.get(scope, False)
    return inside if operator != "DoesNotExist" else not inside


def _cross_namespace_affinity(spec: Obj) -> bool:
    affinity = spec.get("affinity") or {}
    for kind in ("podAffinity", "podAntiAffinity"):
        rules = affinity.get(kind) or {}
        terms = list(rules.get("requiredDuringSchedulingIgnoredDuringExecution") or [])
        terms += [
            t.get("podAffinityTerm") or {}
            for t in rules.get("preferredDuringSchedulingIgnoredDuringExecution") or []
        ]
        if any(t.get("namespaces") or t.get("namespaceSelector") is not None for t in terms):
            return True
    return False


# -- arithmetic and wording ----------------------------------------------------------------


def parse_list(values: dict[str, Any] | None) -> Usage:
    out: Usage = {}
    for name, value in (values or {}).items():
        try:
            out[name] = qty.parse(value)
        except qty.QuantityError:
            continue  # validation refuses these; a stored one is ignored, not fatal
    return out


def render(values: Usage) -> dict[str, str]:
    return {name: str(q) for name, q in sorted(values.items())}


def pretty(values: Usage) -> str:
    """kube's `prettyPrint` of a resource list: sorted `name=value`, comma-joined."""
    return ",".join(f"{name}={q}" for name, q in sorted(values.items()))


def missing_specs(pod: Obj, restricted: set[str]) -> str:
    """kube's "must specify" text for containers not naming a quota-tracked resource."""
    spec = pod.get("spec") or {}
    missing: dict[str, list[str]] = {}
    for kind in ("containers", "initContainers"):
        for c in spec.get(kind) or []:
            res = c.get("resources") or {}
            named = compute_usage(parse_list(res.get("requests")), parse_list(res.get("limits")))
            for name in sorted(restricted - set(named)):
                missing.setdefault(name, [])
                if c.get("name", "") not in missing[name]:
                    missing[name].append(c.get("name", ""))
    if not missing:
        return ""
    parts = [f"{name} for: {','.join(sorted(who))}" for name, who in sorted(missing.items())]
    return "must specify " + "; ".join(parts)
