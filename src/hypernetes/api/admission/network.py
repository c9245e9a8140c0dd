"""Admission for tenant networks: the `Network` kind and the pods that name one.

Networks (hypernetes.io/v1, cluster-scoped, tenant-owned):

- ``spec.tenant`` is the caller's tenant for a tenant principal (naming another
  is forbidden); the platform admin, or any non-tenant principal RBAC lets
  through, must name an existing Tenant. It is immutable, as are ``spec.cidr``
  and ``spec.gateway`` (pods hold addresses in them); the
  ``hypernetes.io/tenant`` label always mirrors it.
- ``spec.gateway`` defaults to the first host address; the CIDR must be sane
  (IPv4, /8../29, the network address), must not overlap the service range,
  the datapath's transit range or this host's own addresses and routes, nor
  another Network *of the same tenant* (different tenants may overlap: they
  are separate routing domains).
- The name must fit the datapath (1-63 of [a-z0-9.-]); ``<t>-default`` is
  reserved for tenant ``t``'s default network.
- A new Network starts with ``status.phase: Pending`` (until the controller
  gives it a VNI).
- Every Network gets the ``hypernetes.io/network-in-use`` finalizer at
  creation, so a delete only marks it Terminating; the network controller
  removes the finalizer once no pod uses it. Deletion is blocked by a
  finalizer rather than refused by admission because pods are only known to be
  gone asynchronously (a pod being deleted still holds its address), and
  because the server runs no admission on DELETE. Only the platform admin
  (the controller) may remove that finalizer.
- Only the platform admin (the controller) writes a Network's status: its
  ``vni`` decides which VXLAN segment nodes join.

Pods: the ``hypernetes.io/network`` annotation must name an existing,
non-terminating Network of the pod's own tenant (its namespace's; another
tenant's network reads as not found), and cannot change after creation. A
pod's ``hypernetes.io/tenant`` label, if any, must be its namespace's tenant
(403 otherwise): the network layer reads it where it has no namespace at hand.

The same-tenant overlap check reads the other Networks before the write, so
two overlapping creates racing each other can both pass; the controller
marks the younger one Failed (the datapath refuses it as well).
"""

from __future__ import annotations

import asyncio
import ipaddress
import time
from collections.abc import Callable
from typing import Any

from hypernetes.api import errors
from hypernetes.api.admission import Admission, Obj
from hypernetes.api.objects import Objects
from hypernetes.api.request import Target
from hypernetes.auth.principal import User
from hypernetes.network import resource as net
from hypernetes.network.names import check_name
from hypernetes.resources.platform import GROUP, VERSION
from hypernetes.resources.registry import Registry, ResourceType

HOST_RANGES_TTL = 5.0
Reserved = list[tuple[str, ipaddress.IPv4Network]]


def _cause(reason: str, field: str, message: str) -> dict[str, str]:
    return {"reason": reason, "message": message, "field": field}


def _fail(rt: ResourceType, name: str, causes: list[dict[str, str]]) -> errors.APIError:
    body = ", ".join(f"{c['field']}: {c['message']}" for c in causes)
    shown = body if len(causes) == 1 else f"[{body}]"
    kind = f"{rt.kind}.{rt.group}" if rt.group else rt.kind
    return errors.invalid(rt, name, causes, f'{kind} "{name}" is invalid: {shown}')


def caller_tenant(user: User) -> str | None:
    """The tenant of a tenant principal; None for the admin and non-tenant principals."""
    if user.is_admin:
        return None
    values = user.extra.get(net.TENANT_EXTRA) or ()
    return values[0] if values else None


class NetworkAdmission:
    """The admission hook; `reserved()` gives the ranges no Network may overlap."""

    def __init__(
        self,
        objects: Objects,
        registry: Registry,
        *,
        service_cidr: str = net.SERVICE_CIDR,
        egress_cidr: str = net.EGRESS_CIDR,
        host_ranges: Callable[[], Reserved] = net.host_ranges,
    ) -> None:
        self.objects = objects
        networks = registry.get(GROUP, VERSION, "networks")
        tenants = registry.get(GROUP, VERSION, "tenants")
        namespaces = registry.get("", "v1", "namespaces")
        assert networks is not None and tenants is not None and namespaces is not None
        self.networks, self.tenants, self.namespaces = networks, tenants, namespaces
        self.fixed: Reserved = [
            ("the service range", ipaddress.IPv4Network(service_cidr)),
            ("the transit range", ipaddress.IPv4Network(egress_cidr)),
        ]
        self._host_ranges = host_ranges
        self._host_cache: tuple[float, Reserved] = (-HOST_RANGES_TTL, [])

    async def reserved(self) -> Reserved:
        now = time.monotonic()
        if now - self._host_cache[0] >= HOST_RANGES_TTL:
            # pyroute2's blocking socket runs its own event loop: keep it off ours.
            self._host_cache = (now, await asyncio.to_thread(self._host_ranges))
        return self.fixed + self._host_cache[1]

    async def __call__(self, user: User, target: Target, obj: Obj, old: Obj | None) -> None:
        rt = target.rt
        is_network = rt.group == GROUP and rt.plural == "networks"
        if target.subresource:
            if is_network and target.subresource == "status" and not user.is_admin:
                # status.vni picks the VXLAN segment nodes join: a forged one would
                # splice a network into another tenant's. Only the controller writes it.
                name = str((old or obj)["metadata"].get("name", ""))
                raise errors.forbidden(
                    f'networks.hypernetes.io "{name}" is forbidden: only the network '
                    "controller writes a network's status",
                    rt,
                    name,
                )
            return
        if is_network:
            if old is None:
                await self._create_network(user, rt, obj)
            else:
                self._update_network(user, rt, obj, old)
        elif rt.group == "" and rt.plural == "pods":
            await self._admit_pod(user, rt, obj, old)

    # -- networks ---------------------------------------------------------------------
    async def _create_network(self, user: User, rt: ResourceType, obj: Obj) -> None:
        meta = obj["metadata"]
        name = str(meta.get("name", ""))
        spec = obj.setdefault("spec", {})
        mine = caller_tenant(user)
        if mine is not None:
            if spec.get("tenant") not in (None, "", mine):
                raise errors.forbidden(
                    f'networks.hypernetes.io "{name}" is forbidden: spec.tenant must be your '
                    f'tenant "{mine}"',
                    rt,
                    name,
                )
            spec["tenant"] = mine
        tenant = spec.get("tenant")
        if not tenant:
            raise _fail(rt, name, [_cause("FieldValueRequired", "spec.tenant", "Required value")])
        if mine is None and await self.objects.find(self.tenants, None, tenant) is None:
            msg = f'Not found: "{tenant}": no such Tenant'
            raise _fail(rt, name, [_cause("FieldValueNotFound", "spec.tenant", msg)])
        try:
            check_name("network", name)  # it names kernel objects' owners on every node
        except ValueError:
            why = f"Invalid value: {name!r}: a network name must be 1-63 characters of "
            why += "[a-z0-9.-], starting and ending with a letter or digit"
            raise _fail(rt, name, [_cause("FieldValueInvalid", "metadata.name", why)]) from None
        if name.endswith(net.DEFAULT_SUFFIX) and name != net.default_network_name(tenant):
            why = f"Invalid value: {name!r}: names ending in {net.DEFAULT_SUFFIX!r} are reserved "
            why += "for the default network of the tenant of that name"
            raise _fail(rt, name, [_cause("FieldValueInvalid", "metadata.name", why)])
        if spec.get("cidr") and not spec.get("gateway"):
            gateway = net.default_gateway(str(spec["cidr"]))
            if gateway:
                spec["gateway"] = gateway
        causes = net.validate_spec(spec, reserved=await self.reserved())
        if not causes:
            causes = await self._overlaps(obj)
        if causes:
            raise _fail(rt, name, causes)
        meta.setdefault("labels", {})[net.TENANT_LABEL] = tenant
        obj["status"] = {"phase": net.PHASE_PENDING}  # until the controller gives it a VNI
        finalizers = meta.setdefault("finalizers", [])
        if net.FINALIZER not in finalizers:
            finalizers.append(net.FINALIZER)

    async def _overlaps(self, obj: Obj) -> list[dict[str, str]]:
        tenant = net.tenant_of(obj)
        page = await self.objects.list(
            self.networks, None, keep=lambda other: net.tenant_of(other) == tenant
        )
        return [
            _cause(
                "FieldValueInvalid",
                "spec.cidr",
                f"Invalid value: {obj['spec']['cidr']!r}: overlaps network "
                f"{net.name_of(other)} ({other['spec'].get('cidr')}) of tenant {tenant}",
            )
            for other in net.same_tenant_overlaps(obj, page.items)
        ]

    def _update_network(self, user: User, rt: ResourceType, obj: Obj, old: Obj) -> None:
        name = str(old["metadata"].get("name", ""))
        mine = caller_tenant(user)
        if mine is not None and net.tenant_of(old) != mine:
            raise errors.forbidden(
                f'networks.hypernetes.io "{name}" is forbidden: it belongs to another tenant',
                rt,
                name,
            )
        spec, old_spec = obj.setdefault("spec", {}), old.get("spec") or {}
        if not spec.get("gateway") and old_spec.get("gateway"):
            spec["gateway"] = old_spec["gateway"]
        causes = [
            _cause("FieldValueInvalid", f"spec.{field}", "Invalid value: field is immutable")
            for field in ("tenant", "cidr", "gateway")
            if spec.get(field) != old_spec.get(field)
        ]
        if causes:
            raise _fail(rt, name, causes)
        meta = obj["metadata"]
        meta.setdefault("labels", {})[net.TENANT_LABEL] = net.tenant_of(old)
        had = net.FINALIZER in (old["metadata"].get("finalizers") or [])
        if had and net.FINALIZER not in (meta.get("finalizers") or []) and not user.is_admin:
            raise errors.forbidden(
                f'networks.hypernetes.io "{name}" is forbidden: only the network controller '
                f"removes the {net.FINALIZER} finalizer",
                rt,
                name,
            )

    # -- pods -------------------------------------------------------------------------
    async def _admit_pod(self, user: User, rt: ResourceType, pod: Obj, old: Obj | None) -> None:
        wanted = net.requested_network(pod)
        name = str(pod["metadata"].get("name", ""))
        ns_tenant = await self._namespace_tenant(pod)
        label = (pod["metadata"].get("labels") or {}).get(net.TENANT_LABEL)
        before = ((old or {}).get("metadata", {}).get("labels") or {}).get(net.TENANT_LABEL)
        # Checked when set or changed only: an update of an older pod (a finalizer
        # removed, say) must not fail because its namespace changed hands since.
        if label is not None and label != ns_tenant and (old is None or label != before):
            # The label would otherwise claim another tenant's networks for the pod.
            raise errors.forbidden(
                f'pods "{name}" is forbidden: the label {net.TENANT_LABEL} must be the '
                f"tenant of namespace {pod['metadata'].get('namespace', '')} "
                f"({ns_tenant or 'none'})",
                rt,
                name,
            )
        field = f"metadata.annotations[{net.NETWORK_ANNOTATION}]"
        if old is not None:
            if wanted != net.requested_network(old):
                raise _fail(rt, name, [_cause("FieldValueInvalid", field, "field is immutable")])
            return
        if wanted is None:
            return
        tenant = ns_tenant
        network = await self.objects.find(self.networks, None, wanted)
        problem = ""
        if tenant is None:
            problem = "the pod belongs to no tenant, so it cannot join a tenant network"
        elif network is None or net.tenant_of(network) != tenant:
            problem = f"network {wanted!r} of tenant {tenant} not found"
        elif network["metadata"].get("deletionTimestamp"):
            problem = f"network {wanted!r} is being deleted"
        if problem:
            msg = f"Invalid value: {wanted!r}: {problem}"
            raise _fail(rt, name, [_cause("FieldValueInvalid", field, msg)])

    async def _namespace_tenant(self, pod: Obj) -> str | None:
        ns = await self.objects.find(self.namespaces, None, pod["metadata"].get("namespace", ""))
        labels: dict[str, Any] = ((ns or {}).get("metadata") or {}).get("labels") or {}
        value = labels.get(net.TENANT_LABEL)
        return str(value) if value else None


def network_admission(objects: Objects, registry: Registry, **options: Any) -> Admission:
    """The hook to append to `ResourceAPI.admission` (after tenancy's)."""
    return NetworkAdmission(objects, registry, **options)
