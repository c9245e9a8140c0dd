"""Quota recalculation: keep ResourceQuota and Tenant quota usage true to what exists.

Admission (`hypernetes.api.admission.quota`) charges every create as it
happens, exactly; this controller recounts, to give back what deletions,
pods reaching Succeeded/Failed, and charges whose object was never stored
(a failed create, a dry run) leave behind. For each ResourceQuota it writes
`status.hard` (= `spec.hard`) and `status.used`; for each Tenant with
`spec.quota.hard`, `status.quota` over every namespace labelled with it.

Raising usage (objects the charge did not see) is written at once. Lowering
it is written only when the quota object has not changed for `settle`
seconds, with compare-and-swap on that version: a create is charged before
its object is stored, so a recount taken in between would miss it, and
writing that lower number could let one create too many through. A charge
changes the quota object, so waiting for it to stay unchanged waits out
creates in flight.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Hashable
from typing import Any

from hypernetes.client import (
    NAMESPACES,
    PODS,
    RESOURCEQUOTAS,
    TENANTS,
    Client,
    Informer,
    NotFound,
    Obj,
)
from hypernetes.client.resource import Resource
from hypernetes.controllers.runtime import Controller
from hypernetes.resources import quantity as qty
from hypernetes.resources.platform import TENANT_LABEL
from hypernetes.resources.usage import (
    Usage,
    add,
    kinds_for,
    object_usage,
    parse_list,
    quota_matches,
    render,
)

log = logging.getLogger(__name__)

DISCOVERY_TTL = 60.0

QuotaKey = tuple[str, str, str]
"""("quota", namespace, name) or ("tenant", "", name)."""


def plan(hard: Usage, used: Usage, counted: Usage) -> tuple[Usage, Usage]:
    """(usage safe to write now, the full recount): a recount above what is recorded is
    written at once; below it, only once the quota has settled."""
    zero = qty.Quantity(0)
    full = {k: counted.get(k, zero) for k in hard}
    now = {k: v if k not in used or v >= used[k] else used[k] for k, v in full.items()}
    return now, full


class ResourceQuotaController(Controller):
    """Recounts namespace quotas and tenant quotas."""

    name = "resourcequota"
    workers = 2
    settle = 2.0
    """Seconds a quota must stay unchanged before its usage is lowered."""
    resync = 20.0

    def __init__(self, client: Client) -> None:
        super().__init__(client)
        self._pending: dict[Hashable, tuple[str, float]] = {}
        self._kinds: tuple[float, dict[tuple[str, str], Resource]] | None = None

    async def setup(self) -> None:
        self._pending = {}
        self.quotas = self.watch(Informer(self.client, RESOURCEQUOTAS, resync_period=self.resync))
        self.tenants = self.watch(Informer(self.client, TENANTS, resync_period=self.resync))
        self.namespaces = self.watch(Informer(self.client, NAMESPACES, transform=_meta_only))
        pods = self.watch(Informer(self.client, PODS, transform=_pod_summary))
        self.quotas.add_handlers(
            on_add=self._quota_changed,
            on_update=lambda _old, new: self._quota_changed(new),
            on_delete=self._forget_quota,
        )
        self.tenants.add_handlers(
            on_add=self._tenant_changed,
            on_update=lambda _old, new: self._tenant_changed(new),
        )
        pods.add_handlers(
            on_add=self._content_changed,
            on_update=lambda _old, new: self._content_changed(new),
            on_delete=self._content_changed,
        )

    def _quota_changed(self, quota: Obj) -> None:
        meta = quota.get("metadata") or {}
        self.queue.add(("quota", meta.get("namespace", ""), meta.get("name", "")))

    def _forget_quota(self, quota: Obj) -> None:
        meta = quota.get("metadata") or {}
        self._pending.pop(("quota", meta.get("namespace", ""), meta.get("name", "")), None)

    def _tenant_changed(self, tenant: Obj) -> None:
        self.queue.add(("tenant", "", (tenant.get("metadata") or {}).get("name", "")))

    def _content_changed(self, obj: Obj) -> None:
        """Something in a namespace changed: look at its quotas and its tenant's."""
        namespace = (obj.get("metadata") or {}).get("namespace", "")
        for quota in self.quotas.items():
            if (quota.get("metadata") or {}).get("namespace") == namespace:
                self._quota_changed(quota)
        ns = self.namespaces.get(namespace)
        tenant = (((ns or {}).get("metadata") or {}).get("labels") or {}).get(TENANT_LABEL)
        if tenant:
            self.queue.add(("tenant", "", tenant))

    async def reconcile(self, key: Hashable) -> float | None:
        assert isinstance(key, tuple)
        kind, namespace, name = key
        if kind == "quota":
            return await self._reconcile_quota(key, namespace, name)
        return await self._reconcile_tenant(key, name)

    # -- namespace quotas ------------------------------------------------------------------

    async def _reconcile_quota(self, key: QuotaKey, namespace: str, name: str) -> float | None:
        try:
            quota = await self.client.get(RESOURCEQUOTAS, name, namespace)
        except NotFound:
            self._pending.pop(key, None)
            return None
        hard = parse_list((quota.get("spec") or {}).get("hard"))
        status = quota.get("status") or {}
        counted = await self._count({namespace}, hard, quota)

        async def write(used: Usage) -> Obj:
            body = copy.deepcopy(quota)
            body["status"] = {"hard": render(hard), "used": render(used)}
            return await self.client.replace(
                RESOURCEQUOTAS, name, body, namespace, subresource="status"
            )

        return await self._apply(key, quota, hard, status, counted, write)

    # -- tenant quotas ---------------------------------------------------------------------

    async def _reconcile_tenant(self, key: QuotaKey, name: str) -> float | None:
        try:
            tenant = await self.client.get(TENANTS, name)
        except NotFound:
            self._pending.pop(key, None)
            return None
        hard = parse_list(((tenant.get("spec") or {}).get("quota") or {}).get("hard"))
        status = (tenant.get("status") or {}).get("quota") or {}
        if not hard:
            if status:
                body = copy.deepcopy(tenant)
                body["status"].pop("quota", None)
                await self.client.replace(TENANTS, name, body, subresource="status")
            return None
        owned = await self.client.list_all(NAMESPACES, label_selector=f"{TENANT_LABEL}={name}")
        namespaces = {ns["metadata"]["name"] for ns in owned.get("items") or []}
        counted = await self._count(namespaces, hard, None)

        async def write(used: Usage) -> Obj:
            body = copy.deepcopy(tenant)
            body.setdefault("status", {})["quota"] = {"hard": render(hard), "used": render(used)}
            return await self.client.replace(TENANTS, name, body, subresource="status")

        return await self._apply(key, tenant, hard, status, counted, write)

    # -- shared ----------------------------------------------------------------------------

    async def _apply(
        self,
        key: QuotaKey,
        obj: Obj,
        hard: Usage,
        status: Obj,
        counted: Usage,
        write: Any,
    ) -> float | None:
        """Write what is safe now; lower usage only once `obj` has stayed unchanged."""
        used = {k: v for k, v in parse_list(status.get("used")).items() if k in hard}
        now, full = plan(hard, used, counted)
        rv = obj["metadata"]["resourceVersion"]
        if render(now) != (status.get("used") or {}) or render(hard) != (status.get("hard") or {}):
            rv = (await write(now))["metadata"]["resourceVersion"]
        if now == full:
            self._pending.pop(key, None)
            return None
        seen = self._pending.get(key)
        if seen is not None and seen[0] == rv and time.monotonic() - seen[1] >= self.settle:
            await write(full)  # compare-and-swap on rv: a charge in between makes it fail
            self._pending.pop(key, None)
            return None
        if seen is None or seen[0] != rv:
            self._pending[key] = (rv, time.monotonic())
        return self.settle

    async def _count(self, namespaces: set[str], hard: Usage, quota: Obj | None) -> Usage:
        """Usage of `hard`'s resources by the objects in `namespaces`."""
        total: Usage = {k: qty.Quantity(0) for k in hard}
        if not namespaces:
            return total
        kinds = await self._resources()
        for group, plural in sorted(kinds_for(hard)):
            resource = kinds.get((group, plural))
            if resource is None:
                continue
            for obj in await self._objects(resource, namespaces):
                if quota is not None and not quota_matches(quota, group, plural, obj):
                    continue
                for name, q in object_usage(group, plural, obj).items():
                    if name in total:
                        total[name] = add(total[name], q)
        return total

    async def _objects(self, resource: Resource, namespaces: set[str]) -> list[Obj]:
        if not resource.namespaced:
            items = (await self.client.list_all(resource)).get("items") or []
            return [o for o in items if o["metadata"].get("name") in namespaces]
        if len(namespaces) == 1:
            return (await self.client.list_all(resource, next(iter(namespaces)))).get("items") or []
        items = (await self.client.list_all(resource)).get("items") or []
        return [o for o in items if o["metadata"].get("namespace") in namespaces]

    async def _resources(self) -> dict[tuple[str, str], Resource]:
        now = time.monotonic()
        if self._kinds is None or now - self._kinds[0] > DISCOVERY_TTL:
            found = {(r.group, r.plural): r for r in await self.client.discover()}
            self._kinds = (now, found)
        return self._kinds[1]


def _meta_only(obj: Obj) -> Obj:
    return {"metadata": obj.get("metadata") or {}}


def _pod_summary(pod: Obj) -> Obj:
    meta = pod.get("metadata") or {}
    return {
        "metadata": {k: meta[k] for k in ("name", "namespace", "resourceVersion") if k in meta},
        "status": {"phase": (pod.get("status") or {}).get("phase")},
    }
