"""Pod admission for tenants: what a tenant's pods and services may not do.

In a tenant-owned namespace (label `hypernetes.io/tenant=<t>`) a write by
anyone but the platform admin is refused when a pod — or the pod template of
a workload (Deployment, ReplicaSet, StatefulSet, DaemonSet, Job, CronJob,
ReplicationController, PodTemplate) — asks for:

- privileged containers, `allowPrivilegeEscalation: true`, added capabilities
  beyond `Tenant.spec.policy.allowedCapabilities`;
- host namespaces (hostNetwork, hostPID, hostIPC), host ports, hostPath volumes;

or when a Service is of type NodePort or LoadBalancer; unless the Tenant's
`spec.policy` switches that rule off. Templates matter as much as pods: the
workload controllers create pods as the platform admin, so a template is the
last place a tenant's request can be judged.

Each refusal is a 403 `Forbidden` whose message names every broken rule and
where, e.g. `pods "x" is forbidden: hypernetes tenant policy: privileged
containers are not allowed (containers[0] "app")`. An update that leaves the
pod spec as it was (labels, annotations) is not judged again, as kube's Pod
Security admission does. The module also holds the small tenancy lookups
the quota and limit-range admission share (`Tenancy`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from hypernetes.api import errors
from hypernetes.api.admission import Admission
from hypernetes.api.objects import Objects
from hypernetes.api.request import Target
from hypernetes.auth.principal import User
from hypernetes.resources.platform import GROUP, TENANT_LABEL, VERSION
from hypernetes.resources.registry import Registry, ResourceType

Obj = dict[str, Any]

PREFIX = "hypernetes tenant policy: "

# Where each workload kind keeps its pod spec.
_TEMPLATE_PATHS: dict[tuple[str, str], tuple[str, ...]] = {
    ("", "Pod"): ("spec",),
    ("", "PodTemplate"): ("template", "spec"),
    ("", "ReplicationController"): ("spec", "template", "spec"),
    ("apps", "Deployment"): ("spec", "template", "spec"),
    ("apps", "ReplicaSet"): ("spec", "template", "spec"),
    ("apps", "StatefulSet"): ("spec", "template", "spec"),
    ("apps", "DaemonSet"): ("spec", "template", "spec"),
    ("batch", "Job"): ("spec", "template", "spec"),
    ("batch", "CronJob"): ("spec", "jobTemplate", "spec", "template", "spec"),
}
_CONTAINER_LISTS = ("containers", "initContainers", "ephemeralContainers")


@dataclass(frozen=True)
class Policy:
    """A tenant's `spec.policy`; the default refuses everything optional."""

    allow_privileged: bool = False
    allow_privilege_escalation: bool = False
    allowed_capabilities: frozenset[str] = frozenset()
    allow_host_namespaces: bool = False
    allow_host_ports: bool = False
    allow_host_path: bool = False
    allow_node_port: bool = False
    allow_load_balancer: bool = False

    @classmethod
    def of(cls, tenant: Obj | None) -> Policy:
        p = ((tenant or {}).get("spec") or {}).get("policy") or {}
        caps = p.get("allowedCapabilities") or []
        return cls(
            allow_privileged=p.get("allowPrivileged") is True,
            allow_privilege_escalation=p.get("allowPrivilegeEscalation") is True,
            allowed_capabilities=frozenset(_capability(c) for c in caps if isinstance(c, str)),
            allow_host_namespaces=p.get("allowHostNamespaces") is True,
            allow_host_ports=p.get("allowHostPorts") is True,
            allow_host_path=p.get("allowHostPath") is True,
            allow_node_port=p.get("allowNodePort") is True,
            allow_load_balancer=p.get("allowLoadBalancer") is True,
        )


class Tenancy:
    """Reads the owning tenant of a namespace and the Tenant object itself."""

    def __init__(self, objects: Objects, registry: Registry) -> None:
        namespaces = registry.get("", "v1", "namespaces")
        tenants = registry.get(GROUP, VERSION, "tenants")
        assert namespaces is not None and tenants is not None
        self.objects = objects
        self.namespaces: ResourceType = namespaces
        self.tenants: ResourceType = tenants

    async def namespace_tenant(self, namespace: str | None) -> str | None:
        if not namespace:
            return None
        ns = await self.objects.find(self.namespaces, None, namespace)
        if ns is None:
            return None
        return ((ns.get("metadata") or {}).get("labels") or {}).get(TENANT_LABEL) or None

    async def tenant(self, name: str) -> Obj | None:
        return await self.objects.find(self.tenants, None, name)


def pod_spec(rt: ResourceType, obj: Obj) -> tuple[str, Obj] | None:
    """(path prefix, pod spec) of a pod or a workload's pod template, else None."""
    path = _TEMPLATE_PATHS.get((rt.group, rt.kind))
    if path is None:
        return None
    node: Any = obj
    for step in path:
        node = node.get(step) if isinstance(node, dict) else None
    if not isinstance(node, dict):
        return None
    prefix = "" if rt.kind == "Pod" and not rt.group else ".".join(path) + "."
    return prefix, node


def pod_spec_violations(spec: Obj, policy: Policy, where: str = "") -> list[str]:
    """Every rule of `policy` the pod spec breaks, each naming its rule and place."""
    found: list[str] = []
    if not policy.allow_host_namespaces:
        for field in ("hostNetwork", "hostPID", "hostIPC"):
            if spec.get(field) is True:
                found.append(f"host namespaces are not allowed ({where}{field}=true)")
    if not policy.allow_host_path:
        for i, volume in enumerate(_dicts(spec.get("volumes"))):
            if "hostPath" in volume:
                found.append(
                    f'hostPath volumes are not allowed ({where}volumes[{i}] "{volume.get("name")}")'
                )
    for place, container in _containers(spec, where):
        found += _container_violations(container, policy, place)
    return found


def _container_violations(container: Obj, policy: Policy, place: str) -> list[str]:
    found: list[str] = []
    context = container.get("securityContext")
    context = context if isinstance(context, dict) else {}
    if context.get("privileged") is True and not policy.allow_privileged:
        found.append(f"privileged containers are not allowed ({place})")
    if context.get("allowPrivilegeEscalation") is True and not policy.allow_privilege_escalation:
        found.append(f"allowPrivilegeEscalation=true is not allowed ({place})")
    caps = context.get("capabilities")
    added = (caps.get("add") if isinstance(caps, dict) else None) or []
    extra = [c for c in added if _capability(str(c)) not in policy.allowed_capabilities]
    if extra:
        names = ", ".join(str(c) for c in extra)
        found.append(f"adding capabilities {names} is not allowed ({place})")
    if not policy.allow_host_ports:
        for port in _dicts(container.get("ports")):
            if port.get("hostPort"):
                found.append(f"host ports are not allowed ({place} hostPort={port['hostPort']})")
    return found


def service_violations(service: Obj, policy: Policy) -> list[str]:
    kind = (service.get("spec") or {}).get("type") or "ClusterIP"
    if kind == "NodePort" and not policy.allow_node_port:
        return ["services of type NodePort are not allowed (spec.type)"]
    if kind == "LoadBalancer" and not policy.allow_load_balancer:
        return ["services of type LoadBalancer are not allowed (spec.type)"]
    return []


def _containers(spec: Obj, where: str) -> Iterator[tuple[str, Obj]]:
    for kind in _CONTAINER_LISTS:
        for i, c in enumerate(_dicts(spec.get(kind))):
            yield f'{where}{kind}[{i}] "{c.get("name", "")}"', c


def _dicts(value: Any) -> list[Obj]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _capability(name: str) -> str:
    upper = name.upper()
    return upper[4:] if upper.startswith("CAP_") else upper


def _judged_spec(rt: ResourceType, obj: Obj) -> Any:
    """What a rule looks at: the pod spec of a pod or template, a service's spec."""
    if rt.kind == "Service" and not rt.group:
        return (obj.get("spec") or {}).get("type")
    found = pod_spec(rt, obj)
    return found[1] if found else None


def tenant_pod_security(objects: Objects, registry: Registry) -> Admission:
    """The admission hook refusing what a tenant's policy does not allow."""
    tenancy = Tenancy(objects, registry)

    async def admit(user: User, target: Target, obj: Obj, old: Obj | None) -> None:
        rt = target.rt
        is_service = rt.kind == "Service" and not rt.group
        if user.is_admin or target.subresource or not target.namespace:
            return
        if not is_service and (rt.group, rt.kind) not in _TEMPLATE_PATHS:
            return
        if old is not None and _judged_spec(rt, obj) == _judged_spec(rt, old):
            return  # metadata-only updates are not judged again
        tenant = await tenancy.namespace_tenant(target.namespace)
        if tenant is None:
            return
        policy = Policy.of(await tenancy.tenant(tenant))
        if is_service:
            broken = service_violations(obj, policy)
        else:
            found = pod_spec(rt, obj)
            broken = pod_spec_violations(found[1], policy, found[0]) if found else []
        if broken:
            name = (obj.get("metadata") or {}).get("name", "")
            raise errors.forbidden(
                f'{rt.group_resource} "{name}" is forbidden: {PREFIX}{"; ".join(broken)}',
                rt,
                name,
            )

    return admit
