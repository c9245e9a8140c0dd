"""ResourceQuota and tenant-wide quota admission.

What an object costs is `hypernetes.resources.usage` (kube's quota evaluators).

Admission (`quota_admission`) charges a create or update (a dry run is judged the
same way but charges nothing) to every
ResourceQuota of the namespace whose `spec.hard` names a resource it costs,
and to the owning Tenant's `spec.quota.hard`, or refuses it with kube's 403
(`exceeded quota: NAME, requested: ..., used: ..., limited: ...`; pods under
a compute quota must name their requests/limits: `failed quota: NAME: must
specify ...`). Usage is exact under concurrent creates because each charge
is a compare-and-swap on the object holding the usage: the quota's
`status.used`, and the Tenant's `status.quota.used` (chosen over a record
of our own in the store so the out-of-process controller can read and
recalculate it with the same compare-and-swap, through the API, and tenants
see it with `kubectl get tenant -o yaml`). An in-process lock per namespace
and tenant keeps one server's concurrent charges from retrying each other.
The hook runs last, so nothing refuses a request after it was charged; a
charge whose object is then not stored is returned by the controller
(`hypernetes.controllers.resourcequota`), which recounts.

`guard_quota_writes` wraps the authorizer: only the platform admin may
create, change or delete ResourceQuotas of tenants (tenant principals, and
anyone else in a tenant-owned namespace), whatever RBAC says.
"""

from __future__ import annotations

import asyncio
import copy
import json
import zlib
from collections.abc import Iterable

from hypernetes.api import errors
from hypernetes.api.admission import Admission
from hypernetes.api.admission.podsecurity import (
    PREFIX,
    Tenancy,
)
from hypernetes.api.auth import Authorizer
from hypernetes.api.objects import Objects
from hypernetes.api.request import DRY_RUN, Target
from hypernetes.auth.principal import Attributes, User
from hypernetes.auth.tenancy import policy
from hypernetes.resources import quantity as qty
from hypernetes.resources.platform import TENANT_LABEL
from hypernetes.resources.registry import Registry, ResourceType
from hypernetes.resources.usage import (
    MUST_SPECIFY,
    Obj,
    Usage,
    add,
    kinds_for,
    missing_specs,
    object_usage,
    parse_list,
    pretty,
    quota_matches,
    render,
)

_RETRIES = 40
_LOCK_STRIPES = 64
WRITE_VERBS = frozenset({"create", "update", "patch", "delete", "deletecollection"})


# -- admission -------------------------------------------------------------------------------


class _Charge:
    """A charge made, to give back if a later one is refused."""

    def __init__(self, rt: ResourceType, namespace: str | None, name: str, usage: Usage) -> None:
        self.rt, self.namespace, self.name, self.usage = rt, namespace, name, usage


class QuotaAdmission:
    """Charges creates and updates to namespace quotas and tenant quotas, exactly."""

    def __init__(self, objects: Objects, registry: Registry) -> None:
        self.objects = objects
        self.registry = registry
        self.tenancy = Tenancy(objects, registry)
        quotas = registry.get("", "v1", "resourcequotas")
        assert quotas is not None
        self.quotas: ResourceType = quotas
        self._ns_locks = [asyncio.Lock() for _ in range(_LOCK_STRIPES)]
        self._tenant_locks = [asyncio.Lock() for _ in range(_LOCK_STRIPES)]

    async def __call__(self, user: User, target: Target, obj: Obj, old: Obj | None) -> None:
        rt = target.rt
        if target.subresource or not rt.stored:
            return
        if (rt.group, rt.plural) == ("", "resourcequotas"):
            await self._fill_quota_status(target, obj, old)
        if rt is self.tenancy.tenants:
            _check_tenant_quota(rt, obj)
        delta = self._delta(rt, obj, old)
        if not delta:
            return
        tenant = await self._tenant_of(target, obj)
        quotas: list[Obj] = []
        if rt.namespaced and target.namespace:
            page = await self.objects.list(self.quotas, target.namespace)
            quotas = [q for q in page.items if quota_matches(q, rt.group, rt.plural, obj)]
        if not quotas and tenant is None:
            return  # nothing limits it (most writes): no further reads
        meta = obj.get("metadata") or {}
        if old is None and await self.objects.find(rt, target.namespace, meta.get("name", "")):
            return  # the create fails with AlreadyExists: nothing to charge
        if old is None and rt.kind == "Pod" and not rt.group:
            await self._check_specified(rt, obj, quotas, tenant)
        await self._charge_all(rt, target.namespace, obj, quotas, tenant, delta)

    def _delta(self, rt: ResourceType, obj: Obj, old: Obj | None) -> Usage:
        new = object_usage(rt.group, rt.plural, obj)
        if old is None:
            return new
        before = object_usage(rt.group, rt.plural, old)
        zero = qty.Quantity(0)
        return {k: v - before.get(k, zero) for k, v in new.items() if v > before.get(k, zero)}

    async def _tenant_of(self, target: Target, obj: Obj) -> str | None:
        if target.rt.kind == "Namespace" and not target.rt.group:
            labels = (obj.get("metadata") or {}).get("labels") or {}
            return labels.get(TENANT_LABEL) or None
        return await self.tenancy.namespace_tenant(target.namespace)

    async def _check_specified(
        self, rt: ResourceType, pod: Obj, quotas: list[Obj], tenant: str | None
    ) -> None:
        """Under a compute quota every container names what it tracks (kube's rule); a
        tenant-wide quota on cpu or memory asks the same, or pods could go uncounted."""
        holders = [(_name(q), (q.get("spec") or {}).get("hard") or {}) for q in quotas]
        holders.sort()
        if tenant is not None:
            found = await self.tenancy.tenant(tenant)
            hard = (((found or {}).get("spec") or {}).get("quota") or {}).get("hard") or {}
            holders.append((f"tenant/{tenant}", hard))
        for holder, hard in holders:
            restricted = set(hard) & MUST_SPECIFY
            text = missing_specs(pod, restricted) if restricted else ""
            if text:
                name = pod["metadata"].get("name", "")
                raise errors.forbidden(
                    f'pods "{name}" is forbidden: failed quota: {holder}: {text}', rt, name
                )

    async def _charge_all(
        self,
        rt: ResourceType,
        namespace: str | None,
        obj: Obj,
        quotas: list[Obj],
        tenant: str | None,
        delta: Usage,
    ) -> None:
        charged: list[_Charge] = []
        name = (obj.get("metadata") or {}).get("name", "")
        try:
            async with self._ns_locks[_stripe(namespace or "")]:
                for quota in sorted(quotas, key=_name):
                    done = await self._charge_quota(rt, name, namespace or "", _name(quota), delta)
                    if done is not None:
                        charged.append(done)
                if tenant is not None:
                    async with self._tenant_locks[_stripe(tenant)]:
                        done = await self._charge_tenant(rt, name, tenant, delta)
                        if done is not None:
                            charged.append(done)
        except errors.APIError:
            for charge in reversed(charged):
                await self._refund(charge)
            raise

    async def _charge_quota(
        self, rt: ResourceType, name: str, namespace: str, quota_name: str, delta: Usage
    ) -> _Charge | None:
        for _ in range(_RETRIES):
            quota = await self.objects.find(self.quotas, namespace, quota_name)
            if quota is None:
                return None
            hard = parse_list((quota.get("spec") or {}).get("hard"))
            wanted = {k: v for k, v in delta.items() if k in hard}
            if not wanted:
                return None
            status = quota.setdefault("status", {})
            used = parse_list(status.get("used"))
            for resource, count in (await self._recount(namespace, quota, wanted, used)).items():
                used[resource] = count
            _refuse_if_exceeded(rt, name, quota_name, wanted, used, hard)
            if DRY_RUN.get():
                return None  # decided as for real; a dry run charges nothing
            new = copy.deepcopy(quota)
            new_used = used | {k: add(used.get(k, qty.Quantity(0)), v) for k, v in wanted.items()}
            new["status"] = {
                "hard": render(hard),
                "used": render({k: v for k, v in new_used.items() if k in hard}),
            }
            if await self._swap(self.quotas, quota, new):
                return _Charge(self.quotas, namespace, quota_name, wanted)
        raise _busy(self.quotas, quota_name)

    async def _charge_tenant(
        self, rt: ResourceType, name: str, tenant: str, delta: Usage
    ) -> _Charge | None:
        tenants = self.tenancy.tenants
        for _ in range(_RETRIES):
            obj = await self.objects.find(tenants, None, tenant)
            if obj is None:
                return None
            hard = parse_list(((obj.get("spec") or {}).get("quota") or {}).get("hard"))
            wanted = {k: v for k, v in delta.items() if k in hard}
            if not wanted:
                return None
            quota_status = (obj.get("status") or {}).get("quota") or {}
            used = parse_list(quota_status.get("used"))
            missing = [k for k in wanted if k not in used]
            if missing:
                used |= await self.tenant_recount(tenant, missing)
            _refuse_if_exceeded(rt, name, f"tenant/{tenant}", wanted, used, hard)
            if DRY_RUN.get():
                return None
            new = copy.deepcopy(obj)
            new_used = used | {k: add(used.get(k, qty.Quantity(0)), v) for k, v in wanted.items()}
            new.setdefault("status", {})["quota"] = {
                "hard": render(hard),
                "used": render({k: v for k, v in new_used.items() if k in hard}),
            }
            if await self._swap(tenants, obj, new):
                return _Charge(tenants, None, tenant, wanted)
        raise _busy(tenants, tenant)

    async def _refund(self, charge: _Charge) -> None:
        """Give back a charge (best effort: the controller's recount settles any miss)."""
        for _ in range(_RETRIES):
            obj = await self.objects.find(charge.rt, charge.namespace, charge.name)
            if obj is None:
                return
            new = copy.deepcopy(obj)
            holder = new.setdefault("status", {})
            if charge.rt is self.tenancy.tenants:
                holder = holder.setdefault("quota", {})
            used = parse_list(holder.get("used"))
            for k, v in charge.usage.items():
                if k in used:
                    left = used[k] - v
                    used[k] = left if left.sign() > 0 else qty.Quantity(0)
            holder["used"] = render(used)
            if await self._swap(charge.rt, obj, new):
                return

    async def _swap(self, rt: ResourceType, old: Obj, new: Obj) -> bool:
        try:
            await self.objects.replace_exact(rt, old, new)
        except errors.APIError as exc:
            if exc.code == 409:
                return False
            raise
        return True

    # -- recounts (when a quota's usage of a resource is not known yet) ------------------

    def kind(self, group: str, plural: str) -> ResourceType | None:
        for rt in self.registry:
            if (rt.group, rt.plural) == (group, plural) and rt.stored:
                return rt
        return None

    async def usage_in(
        self, namespaces: set[str], resources: Iterable[str], quota: Obj | None
    ) -> Usage:
        """Current usage of `resources` by the objects of `namespaces` (a quota's scopes)."""
        wanted = set(resources)
        total: Usage = {name: qty.Quantity(0) for name in wanted}
        for group, plural in sorted(kinds_for(wanted)):
            rt = self.kind(group, plural)
            if rt is None:
                continue
            if not rt.namespaced:
                objs = (await self.objects.list(rt, None)).items
                objs = [o for o in objs if o["metadata"].get("name") in namespaces]
            elif len(namespaces) == 1:
                objs = (await self.objects.list(rt, next(iter(namespaces)))).items
            else:
                objs = (await self.objects.list(rt, None)).items
                objs = [o for o in objs if o["metadata"].get("namespace") in namespaces]
            for o in objs:
                if quota is not None and not quota_matches(quota, group, plural, o):
                    continue
                for name, q in object_usage(group, plural, o).items():
                    if name in total:
                        total[name] = add(total[name], q)
        return total

    async def _recount(self, namespace: str, quota: Obj, wanted: Usage, used: Usage) -> Usage:
        missing = [k for k in wanted if k not in used]
        if not missing:
            return {}
        return await self.usage_in({namespace}, missing, quota)

    async def tenant_recount(self, tenant: str, resources: Iterable[str]) -> Usage:
        page = await self.objects.list(self.tenancy.namespaces, None)
        owned = {
            ns["metadata"]["name"]
            for ns in page.items
            if ((ns["metadata"].get("labels") or {}).get(TENANT_LABEL)) == tenant
        }
        return await self.usage_in(owned, resources, None)

    async def _fill_quota_status(self, target: Target, quota: Obj, old: Obj | None) -> None:
        """A quota knows its usage from the moment it is stored (kube waits for its controller)."""
        hard = parse_list((quota.get("spec") or {}).get("hard"))
        status = quota.get("status") or {}
        used = {k: v for k, v in parse_list(status.get("used")).items() if k in hard}
        missing = [k for k in hard if k not in used]
        if missing and target.namespace:
            used |= await self.usage_in({target.namespace}, missing, quota)
        quota["status"] = {"hard": render(hard), "used": render(used)}


def _refuse_if_exceeded(
    rt: ResourceType, name: str, quota_name: str, wanted: Usage, used: Usage, hard: Usage
) -> None:
    zero = qty.Quantity(0)
    over = [k for k, v in wanted.items() if add(used.get(k, zero), v) > hard[k]]
    if not over:
        return
    raise errors.forbidden(
        f'{rt.group_resource} "{name}" is forbidden: exceeded quota: {quota_name}, '
        f"requested: {pretty({k: wanted[k] for k in over})}, "
        f"used: {pretty({k: used.get(k, zero) for k in over})}, "
        f"limited: {pretty({k: hard[k] for k in over})}",
        rt,
        name,
    )


def _check_tenant_quota(rt: ResourceType, tenant: Obj) -> None:
    """A Tenant's `spec.quota.hard` holds quantities (422 as for a ResourceQuota)."""
    hard = ((tenant.get("spec") or {}).get("quota") or {}).get("hard") or {}
    causes = []
    for name, value in sorted(hard.items()):
        try:
            bad = qty.parse(value).sign() < 0 and "must be greater than or equal to 0"
        except qty.QuantityError as exc:
            bad = str(exc)
        if bad:
            field = f"spec.quota.hard[{name}]"
            causes.append({"reason": "FieldValueInvalid", "field": field,
                           "message": f"Invalid value: {json.dumps(value)}: {bad}"})  # fmt: skip
    if causes:
        name = _name(tenant)
        text = ", ".join(f"{c['field']}: {c['message']}" for c in causes)
        what = f"{rt.kind}.{rt.group}"
        message = f'{what} "{name}" is invalid: ' + (text if len(causes) == 1 else f"[{text}]")
        raise errors.invalid(rt, name, causes, message)


def _busy(rt: ResourceType, name: str) -> errors.APIError:
    return errors.conflict(rt, name, "too many concurrent quota updates; please try again")


def _name(obj: Obj) -> str:
    return str((obj.get("metadata") or {}).get("name", ""))


def _stripe(key: str) -> int:
    return zlib.crc32(key.encode()) % _LOCK_STRIPES


def quota_admission(objects: Objects, registry: Registry) -> Admission:
    """The quota admission hook; register it after every other hook."""
    return QuotaAdmission(objects, registry)


# -- who may change quotas -------------------------------------------------------------------


def guard_quota_writes(inner: Authorizer, objects: Objects, registry: Registry) -> Authorizer:
    """Refuse ResourceQuota writes by tenants before RBAC is asked."""
    tenancy = Tenancy(objects, registry)

    async def authorize(user: User, attrs: Attributes) -> bool:
        if (
            attrs.resource == "resourcequotas"
            and not attrs.group
            and attrs.verb in WRITE_VERBS
            and not user.is_admin
            and await _is_tenant_side(user, attrs.namespace, tenancy)
        ):
            named = f' "{attrs.name}"' if attrs.name else ""
            raise errors.forbidden(
                f"resourcequotas{named} is forbidden: {PREFIX}only the platform admin may "
                f"{attrs.verb} resource quotas"
            )
        return await inner(user, attrs)

    return authorize


async def _is_tenant_side(user: User, namespace: str, tenancy: Tenancy) -> bool:
    """A tenant principal, a service account of a tenant, or anyone in a tenant's namespace."""
    if policy.tenant_of_user(user) is not None:
        return True
    home = policy.service_account_namespace(user)
    if home is not None and await tenancy.namespace_tenant(home) is not None:
        return True
    return await tenancy.namespace_tenant(namespace) is not None
