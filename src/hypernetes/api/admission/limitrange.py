"""LimitRange admission: container defaults and per-container / per-pod bounds.

When a pod is created in a namespace with LimitRanges, as kube's LimitRanger:

1. every container and init container without a limit (request) for a
   resource gets the `default` (`defaultRequest`) of each `type: Container`
   item, and the pod is annotated `kubernetes.io/limit-ranger` with what
   was set;
2. `min`, `max` and `maxLimitRequestRatio` are enforced per container
   (`type: Container`) and over the pod's total (`type: Pod`); a breach is
   403 Forbidden with kube's messages (`maximum cpu usage per Container is
   500m, but limit is 1`).

Defaults can make a pod invalid (a defaulted request above the container's
own limit); the pod is validated again after them, so that is 422 as in kube.
`pod_resources` (the pod's effective requests or limits) is shared with the
quota admission.
"""

from __future__ import annotations

from typing import Any

from hypernetes.api import errors, strategy
from hypernetes.api.admission import Admission
from hypernetes.api.objects import Objects
from hypernetes.api.request import Target
from hypernetes.auth.principal import User
from hypernetes.resources import defaults
from hypernetes.resources import quantity as qty
from hypernetes.resources.registry import Registry
from hypernetes.resources.usage import (
    container_resources,
    containers_of,
    parsed_quantities,
    pod_resources,
)

Obj = dict[str, Any]

ANNOTATION = "kubernetes.io/limit-ranger"
_MAX_MILLI = (2**63 - 1) // 1000
"""kube's `MaxMilliValue`: above it ratios are compared in whole units."""


def _items(ranges: list[Obj], kind: str) -> list[Obj]:
    return [
        item
        for lr in ranges
        for item in ((lr.get("spec") or {}).get("limits") or [])
        if isinstance(item, dict) and item.get("type") == kind
    ]


def apply_defaults(spec: Obj, items: list[Obj]) -> list[str]:
    """Fill missing container requests/limits from `items`; what was set, kube's wording."""
    notes: list[str] = []
    for kind, label in (("containers", "container"), ("initContainers", "init container")):
        for c in containers_of(spec, kind):
            set_requests, set_limits = set(), set()
            for item in items:
                set_limits |= _fill(c, "limits", item.get("default") or {})
                set_requests |= _fill(c, "requests", item.get("defaultRequest") or {})
            name = c.get("name", "")
            if set_requests:
                notes.append(f"{', '.join(sorted(set_requests))} request for {label} {name}")
            if set_limits:
                notes.append(f"{', '.join(sorted(set_limits))} limit for {label} {name}")
    return notes


def _fill(container: Obj, which: str, values: dict[str, Any]) -> set[str]:
    if not values:
        return set()
    if not isinstance(container.get("resources"), dict):
        container["resources"] = {}
    res = container["resources"]
    if not isinstance(res.get(which), dict):
        res[which] = {}
    current = res[which]
    added = {name for name in values if name not in current}
    for name in added:
        current[name] = qty.canonical(values[name])
    if not current:
        del res[which]
    return added


def check(spec: Obj, items: list[Obj], kind: str) -> list[str]:
    """The breaches of `min`/`max`/`maxLimitRequestRatio` of `kind` items ("Container"/"Pod")."""
    if kind == "Pod":
        subjects = [(pod_resources(spec, "requests"), pod_resources(spec, "limits"))]
    else:
        subjects = [
            (
                parsed_quantities(container_resources(c, "requests")),
                parsed_quantities(container_resources(c, "limits")),
            )
            for k in ("containers", "initContainers")
            for c in containers_of(spec, k)
        ]
    found: list[str] = []
    for requests, limits in subjects:
        for item in items:
            for name, value in sorted((item.get("min") or {}).items()):
                found += _min(kind, name, qty.parse(value), requests, limits)
            for name, value in sorted((item.get("max") or {}).items()):
                found += _max(kind, name, qty.parse(value), requests, limits)
            for name, value in sorted((item.get("maxLimitRequestRatio") or {}).items()):
                found += _ratio(kind, name, qty.parse(value), requests, limits)
    return found


Quantities = dict[str, qty.Quantity]


def _min(kind: str, name: str, bound: qty.Quantity, req: Quantities, lim: Quantities) -> list[str]:
    head = f"minimum {name} usage per {kind} is {bound}"
    if name not in req:
        return [f"{head}.  No request is specified"]
    if req[name] < bound:
        return [f"{head}, but request is {req[name]}"]
    if name in lim and lim[name] < bound:
        return [f"{head}, but limit is {lim[name]}"]
    return []


def _max(kind: str, name: str, bound: qty.Quantity, req: Quantities, lim: Quantities) -> list[str]:
    head = f"maximum {name} usage per {kind} is {bound}"
    if name not in lim:
        return [f"{head}.  No limit is specified"]
    if lim[name] > bound:
        return [f"{head}, but limit is {lim[name]}"]
    if name in req and req[name] > bound:
        return [f"{head}, but request is {req[name]}"]
    return []


def _ratio(
    kind: str, name: str, bound: qty.Quantity, req: Quantities, lim: Quantities
) -> list[str]:
    head = f"{name} max limit to request ratio per {kind} is {bound}"
    if name not in req or req[name].is_zero():
        return [f"{head}, but no request is specified or request is 0"]
    if name not in lim or lim[name].is_zero():
        return [f"{head}, but no limit is specified or limit is 0"]
    ratio = lim[name].value / req[name].value
    if ratio > bound.value:
        return [f"{head}, but provided ratio is {float(ratio):f}"]
    return []


def aggregate(messages: list[str]) -> str:
    """kube's aggregate error text: one message alone, several in brackets."""
    return messages[0] if len(messages) == 1 else "[" + ", ".join(messages) + "]"


def limit_ranger(objects: Objects, registry: Registry) -> Admission:
    """The admission hook applying LimitRanges to pods at creation."""
    ranges_rt = registry.get("", "v1", "limitranges")
    assert ranges_rt is not None

    async def admit(user: User, target: Target, obj: Obj, old: Obj | None) -> None:
        rt = target.rt
        if rt.kind != "Pod" or rt.group or old is not None or target.subresource:
            return
        ranges = (await objects.list(ranges_rt, target.namespace)).items
        spec = obj.get("spec")
        if not ranges or not isinstance(spec, dict):
            return
        notes = apply_defaults(spec, _items(ranges, "Container"))
        if notes:
            meta = obj.setdefault("metadata", {})
            meta.setdefault("annotations", {})[ANNOTATION] = "LimitRanger plugin set: " + "; ".join(
                notes
            )
            strategy.validate(rt, obj, None, "Ignore")
            qos = defaults.qos_class(spec)
            if qos is not None:
                obj.setdefault("status", {})["qosClass"] = qos
        broken = check(spec, _items(ranges, "Container"), "Container")
        broken += check(spec, _items(ranges, "Pod"), "Pod")
        if broken:
            name = obj["metadata"].get("name", "")
            raise errors.forbidden(f'pods "{name}" is forbidden: {aggregate(broken)}', rt, name)

    return admit
