"""The auth-controller: RBAC maintained from Tenants, and the cleanup of a deleted tenant.

It talks to the API server as a client, like every controller (identity it
never needs: the server mirrors Tenants and Users with identity itself, see
`hypernetes.auth.tenancy.sync`). What it keeps true:

- ClusterRole `hypernetes:tenant-user` (create namespaces; get/list/watch
  namespaces, tenants, users, networks) is bound by a ClusterRoleBinding
  `hypernetes:tenant:<t>` to group `hypernetes:tenant:<t>`, and ClusterRole
  `hypernetes:tenant-admin` (update/patch/delete namespaces) by
  `hypernetes:tenant:<t>:admin` to group `hypernetes:tenant:<t>:admin`. The
  tenant boundary in the server narrows both to the tenant's own objects.
- In every namespace labelled `hypernetes.io/tenant=<t>`, RoleBindings
  `hypernetes:tenant:{admin,member,reader}` bind groups
  `hypernetes:tenant:<t>:{admin,member,reader}` to ClusterRoles admin, edit and
  view. Tenant admins may add Roles and RoleBindings there themselves (RBAC's
  escalation rules apply). Tokens carry the groups of the roles the user holds
  at validation time, so a role change applies to the next request.
- A deleted User: every RoleBinding and ClusterRoleBinding subject naming that
  user is removed (a binding left with no subject is deleted). Its tokens die
  with its identity user, which the server deletes.
- A Tenant being deleted: its namespaces, users and networks are deleted; once
  they are all gone the `hypernetes.io/tenant-content` finalizer is dropped
  (the server then deletes the identity project and the Tenant goes).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Hashable
from typing import Any

from hypernetes.auth.tenancy import (
    CONTENT_FINALIZER,
    MANAGED_LABEL,
    MANAGER,
    ROLE_BINDINGS,
    TENANT_ADMIN_ROLE,
    TENANT_USER_ROLE,
    tenant_group,
)
from hypernetes.client import (
    CLUSTERROLEBINDINGS,
    CLUSTERROLES,
    NAMESPACES,
    NETWORKS,
    ROLEBINDINGS,
    TENANTS,
    USERS,
    Informer,
    NotFound,
    Obj,
    Resource,
)
from hypernetes.controllers.runtime import Controller
from hypernetes.resources.platform import GROUP, TENANT_LABEL

log = logging.getLogger(__name__)

RBAC = "rbac.authorization.k8s.io"
RECHECK = 1.0
"""Seconds between looks at a tenant whose content is still going away."""

_READ = ["get", "list", "watch"]
CLUSTER_ROLE_RULES: dict[str, list[Obj]] = {
    TENANT_USER_ROLE: [
        {"apiGroups": [""], "resources": ["namespaces"], "verbs": [*_READ, "create"]},
        {"apiGroups": [GROUP], "resources": ["tenants", "users", "networks"], "verbs": _READ},
    ],
    TENANT_ADMIN_ROLE: [
        {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["update", "patch", "delete"]},
    ],
}


def _managed() -> dict[str, str]:
    return {MANAGED_LABEL: MANAGER}


def _group(name: str) -> list[Obj]:
    return [{"apiGroup": RBAC, "kind": "Group", "name": name}]


def _role_ref(name: str) -> Obj:
    return {"apiGroup": RBAC, "kind": "ClusterRole", "name": name}


class TenancyController(Controller):
    """Keys: ("tenant", name), ("namespace", name), ("user", name)."""

    name = "tenancy"
    workers = 2

    async def setup(self) -> None:
        self.tenants = self.watch(Informer(self.client, TENANTS, resync_period=60.0))
        self.namespaces = self.watch(Informer(self.client, NAMESPACES, resync_period=60.0))
        self.users = self.watch(Informer(self.client, USERS))
        # The bindings this controller made: put back at once if someone changes them.
        managed = f"{MANAGED_LABEL}={MANAGER}"
        bindings = self.watch(Informer(self.client, ROLEBINDINGS, label_selector=managed))
        bindings.add_handlers(
            on_update=lambda _old, new: self._binding_changed(new),
            on_delete=self._binding_changed,
        )
        self.tenants.add_handlers(
            on_add=self._tenant_changed,
            on_update=lambda _old, new: self._tenant_changed(new),
            on_delete=self._tenant_changed,
        )
        self.namespaces.add_handlers(
            on_add=self._namespace_changed,
            on_update=lambda _old, new: self._namespace_changed(new),
        )
        self.users.add_handlers(
            on_update=lambda _old, new: self._user_changed(new),
            on_delete=self._user_changed,
        )

    def _tenant_changed(self, tenant: Obj) -> None:
        name = tenant["metadata"]["name"]
        self.queue.add(("tenant", name))
        for ns in self.namespaces.items():
            if _tenant_label(ns) == name:
                self.queue.add(("namespace", ns["metadata"]["name"]))

    def _namespace_changed(self, ns: Obj) -> None:
        self.queue.add(("namespace", ns["metadata"]["name"]))

    def _binding_changed(self, binding: Obj) -> None:
        namespace = binding["metadata"].get("namespace")
        if namespace:
            self.queue.add(("namespace", namespace))

    def _user_changed(self, user: Obj) -> None:
        self.queue.add(("user", user["metadata"]["name"]))

    async def reconcile(self, key: Hashable) -> float | None:
        assert isinstance(key, tuple)
        kind, name = key
        if kind == "tenant":
            return await self._reconcile_tenant(name)
        if kind == "namespace":
            await self._reconcile_namespace(name)
        elif kind == "user":
            await self._reconcile_user(name)
        return None

    # -- tenants -----------------------------------------------------------------

    async def _reconcile_tenant(self, name: str) -> float | None:
        tenant = self.tenants.get(name)
        if tenant is None:
            await self._delete_tenant_bindings(name)
            return None
        meta = tenant["metadata"]
        if "deletionTimestamp" in meta:
            if CONTENT_FINALIZER not in (meta.get("finalizers") or []):
                return None
            if await self._delete_content(name):
                return RECHECK
            await self._delete_tenant_bindings(name)
            await self._drop_finalizer(tenant)
            return None
        for role, rules in CLUSTER_ROLE_RULES.items():
            await self._ensure(
                CLUSTERROLES, {"metadata": {"name": role, "labels": _managed()}, "rules": rules}
            )
        await self._ensure_cluster_binding(tenant_group(name), TENANT_USER_ROLE)
        await self._ensure_cluster_binding(tenant_group(name, "admin"), TENANT_ADMIN_ROLE)
        return None

    async def _ensure_cluster_binding(self, name: str, role: str) -> None:
        await self._ensure(
            CLUSTERROLEBINDINGS,
            {
                "metadata": {"name": name, "labels": _managed()},
                "roleRef": _role_ref(role),
                "subjects": _group(name),
            },
        )

    async def _delete_tenant_bindings(self, name: str) -> None:
        for binding in (tenant_group(name), tenant_group(name, "admin")):
            with contextlib.suppress(NotFound):
                await self.client.delete(CLUSTERROLEBINDINGS, binding)

    async def _delete_content(self, tenant: str) -> bool:
        """Delete what the tenant owns; True while some of it is still there."""
        left = False
        for ns in self.namespaces.items():
            if _tenant_label(ns) == tenant:
                left = True
                await self._delete_quietly(NAMESPACES, ns)
        users = (await self.client.list_all(USERS)).get("items") or []
        networks = (await self.client.list_all(NETWORKS)).get("items") or []
        for resource, items in ((USERS, users), (NETWORKS, networks)):
            for obj in items:
                spec = obj.get("spec") or {}
                if spec.get("tenant") == tenant or _tenant_label(obj) == tenant:
                    left = True
                    await self._delete_quietly(resource, obj)
        return left

    async def _delete_quietly(self, resource: Resource, obj: Obj) -> None:
        if "deletionTimestamp" in obj["metadata"]:
            return
        with contextlib.suppress(NotFound):
            await self.client.delete(resource, obj["metadata"]["name"])

    async def _drop_finalizer(self, tenant: Obj) -> None:
        meta = tenant["metadata"]
        finalizers = [f for f in meta.get("finalizers") or [] if f != CONTENT_FINALIZER]
        patch = {"metadata": {"finalizers": finalizers, "resourceVersion": meta["resourceVersion"]}}
        await self.client.patch(TENANTS, meta["name"], patch)

    # -- namespaces --------------------------------------------------------------

    async def _reconcile_namespace(self, name: str) -> None:
        ns = self.namespaces.get(name)
        if ns is None or "deletionTimestamp" in ns["metadata"]:
            return
        tenant = _tenant_label(ns)
        if tenant is None or self.tenants.get(tenant) is None:
            await self._unbind_namespace(name)
            return
        for role, cluster_role in ROLE_BINDINGS.items():
            await self._ensure(
                ROLEBINDINGS,
                {
                    "metadata": {
                        "name": f"hypernetes:tenant:{role}",
                        "namespace": name,
                        "labels": _managed(),
                    },
                    "roleRef": _role_ref(cluster_role),
                    "subjects": _group(tenant_group(tenant, role)),
                },
                name,
            )

    async def _unbind_namespace(self, name: str) -> None:
        """A namespace that is no tenant's (any more) keeps no tenant bindings."""
        listing = await self.client.list(
            ROLEBINDINGS, name, label_selector=f"{MANAGED_LABEL}={MANAGER}"
        )
        for binding in listing.get("items") or []:
            with contextlib.suppress(NotFound):
                await self.client.delete(ROLEBINDINGS, binding["metadata"]["name"], name)

    # -- users -------------------------------------------------------------------

    async def _reconcile_user(self, name: str) -> None:
        user = self.users.get(name)
        if user is not None and "deletionTimestamp" not in user["metadata"]:
            return
        for resource in (ROLEBINDINGS, CLUSTERROLEBINDINGS):
            for binding in (await self.client.list_all(resource)).get("items") or []:
                await self._remove_subject(resource, binding, name)

    async def _remove_subject(self, resource: Resource, binding: Obj, user: str) -> None:
        subjects = binding.get("subjects") or []
        kept = [s for s in subjects if not (s.get("kind") == "User" and s.get("name") == user)]
        if len(kept) == len(subjects):
            return
        meta = binding["metadata"]
        namespace = meta.get("namespace")
        try:
            if kept:
                binding["subjects"] = kept
                await self.client.replace(resource, meta["name"], binding, namespace)
            else:
                await self.client.delete(resource, meta["name"], namespace)
        except NotFound:
            pass
        log.info("tenancy: removed user %s from %s %s", user, resource.plural, meta["name"])

    # -- helpers -------------------------------------------------------------------

    async def _ensure(self, resource: Resource, obj: Obj, namespace: str | None = None) -> None:
        """Create `obj`, or make the existing one's rules/roleRef/subjects match it."""
        obj = {"apiVersion": resource.api_version, "kind": resource.kind, **obj}
        name = obj["metadata"]["name"]
        try:
            current = await self.client.get(resource, name, namespace)
        except NotFound:
            await self.client.create(resource, obj, namespace)
            return
        fields = [f for f in ("rules", "roleRef", "subjects") if f in obj]
        if all(current.get(f) == obj[f] for f in fields):
            return
        if "roleRef" in obj and current.get("roleRef") != obj["roleRef"]:
            await self.client.delete(resource, name, namespace)  # roleRef is immutable
            await self.client.create(resource, obj, namespace)
            return
        current.update({f: obj[f] for f in fields})
        await self.client.replace(resource, name, current, namespace)


def _tenant_label(obj: Obj) -> str | None:
    labels: Any = (obj.get("metadata") or {}).get("labels") or {}
    value = labels.get(TENANT_LABEL)
    return value if isinstance(value, str) and value else None
