"""Keeps Tenants and Users (API objects) in step with the identity service.

Why in the server: the identity service lives inside the API server, and
what it holds (projects, users, role assignments) is visible as store keys
under `/identity/`, which this loop watches. The identity HTTP API has no
watch, so a controller outside the server could only poll it; here every
change on either side triggers a pass at once.

A pass is level-triggered and deterministic: it lists both sides and makes
them agree by these rules.

Tenants <-> projects (name = project name in the default domain; the
identity `admin` project is the platform's and is never a Tenant):

- Tenant not yet linked (no `status.projectID`): create the project (or adopt
  one of that name), then record `status.projectID` and `phase: Active`. The
  project's description follows `spec.displayName` (else `spec.description`).
- Linked Tenant whose project is gone: the project was deleted through the
  identity API, so the Tenant is deleted too.
- Project without a Tenant: it was made through the identity API (a deleted
  Tenant deletes its project before it goes), so a Tenant is created.
- Tenant being deleted: once the auth-controller has removed its content (its
  `hypernetes.io/tenant-content` finalizer is gone), delete the project (its
  assignments and so its tokens with it) and drop `hypernetes.io/identity`.

Users <-> identity users (one tenant role each; the User object is
authoritative once linked):

- User not yet linked: create an identity user without a password (or adopt
  one of that name); the admin sets the password through the identity API.
- Linked: the user holds exactly `spec.role` on its tenant's project (the new
  role is given before the old is taken away; identity revokes the user's
  tokens on that project when a role goes) and no role on any other tenant;
  `spec.enabled` is mirrored; `status` shows `userID`, `role` and `phase`.
- Linked User whose identity user is gone: the User is deleted.
- Identity user without a User but with a role on a tenant's project: a User
  is created (its highest role there).
- User being deleted: the identity user is deleted (its tokens stop
  validating), then `hypernetes.io/identity` is dropped.

Several API servers on one store may run this at once: every write is
compare-and-swap or create-if-absent, and a lost race is settled next pass.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
import re
from typing import Any

from hypernetes.api import errors, strategy
from hypernetes.api.objects import Objects
from hypernetes.auth.identity import Conflict, IdentityService, NotFound, ProjectRecord
from hypernetes.auth.identity import records as identity_records
from hypernetes.auth.identity.errors import IdentityError
from hypernetes.auth.identity.model import UserRecord
from hypernetes.auth.tenancy import CONTENT_FINALIZER, IDENTITY_FINALIZER, RESERVED_NAMES
from hypernetes.resources.platform import GROUP, ROLES, VERSION
from hypernetes.resources.registry import Registry, ResourceType
from hypernetes.store import StoreError

log = logging.getLogger(__name__)

Obj = dict[str, Any]
RESYNC = 30.0
"""Seconds between passes when nothing changes (repairs anything a pass could not do)."""
_NAME = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_WATCHED = (
    f"/registry/{GROUP}/tenants/",
    f"/registry/{GROUP}/users/",
    identity_records.PROJECTS,
    identity_records.USERS,
    identity_records.GRANTS_BY_PROJECT,
)


class IdentitySync:
    """The loop mirroring Tenants/Users with identity projects/users (see the module doc)."""

    def __init__(self, objects: Objects, registry: Registry, identity: IdentityService) -> None:
        def rt(plural: str) -> ResourceType:
            found = registry.get(GROUP, VERSION, plural)
            assert found is not None
            return found

        self.objects = objects
        self.identity = identity
        self.tenants_rt = rt("tenants")
        self.users_rt = rt("users")
        self._dirty = asyncio.Event()
        self.passes = 0

    async def run(self) -> None:
        """Follow both sides and reconcile after every change, until cancelled."""
        followers = [asyncio.create_task(self._follow(p)) for p in _WATCHED]
        try:
            while True:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._dirty.wait(), RESYNC)
                self._dirty.clear()
                try:
                    await self.reconcile()
                except (StoreError, errors.APIError, IdentityError) as exc:
                    log.warning("tenancy sync: %s; retrying", exc)
                    await asyncio.sleep(0.5)
                    self._dirty.set()
        finally:
            for task in followers:
                task.cancel()

    async def _follow(self, prefix: str) -> None:
        store = self.objects.store
        while True:
            try:
                watch = store.watch(prefix, await store.current_revision() + 1)
                self._dirty.set()
                try:
                    async for _ in watch:
                        self._dirty.set()
                finally:
                    watch.close()
            except StoreError as exc:
                log.warning("tenancy sync: watching %s: %s", prefix, exc)
                await asyncio.sleep(0.5)

    async def reconcile(self) -> None:
        """One pass over both kinds."""
        admin_project = await self.identity.admin_project_id()
        projects = {p.name: p for p in await self.identity.list_projects() if p.id != admin_project}
        await self._tenants(projects)
        await self._users(projects, admin_project)
        self.passes += 1

    # -- tenants ------------------------------------------------------------------

    async def _tenants(self, projects: dict[str, ProjectRecord]) -> None:
        tenants = (await self.objects.list(self.tenants_rt, None)).items
        for tenant in tenants:
            await self._tenant(tenant, projects.get(tenant["metadata"]["name"]))
        names = {t["metadata"]["name"] for t in tenants}
        for name, project in projects.items():
            if name not in names and _NAME.fullmatch(name) and len(name) <= 63:
                await self._create_tenant(project)

    async def _tenant(self, tenant: Obj, project: ProjectRecord | None) -> None:
        meta, status = tenant["metadata"], tenant.get("status") or {}
        linked = status.get("projectID")
        if "deletionTimestamp" in meta:
            finalizers = meta.get("finalizers") or []
            if CONTENT_FINALIZER in finalizers or IDENTITY_FINALIZER not in finalizers:
                return
            if project is not None:
                with contextlib.suppress(NotFound):
                    await self.identity.delete_project(project.id)
            await self._drop_finalizer(self.tenants_rt, tenant)
            return
        if project is None and linked:
            log.info("tenancy sync: project of tenant %s is gone; deleting it", meta["name"])
            await self._delete(self.tenants_rt, tenant)
            return
        spec = tenant.get("spec") or {}
        description = str(spec.get("displayName") or spec.get("description") or "")
        if project is None:
            try:
                project = await self.identity.create_project(meta["name"], description=description)
            except Conflict:
                return  # another server made it: the next pass adopts it
        elif project.description != description:
            await self.identity.update_project(project.id, description=description)
        if status.get("projectID") != project.id or status.get("phase") != "Active":
            await self._set_status(
                self.tenants_rt, tenant, {**status, "projectID": project.id, "phase": "Active"}
            )

    async def _create_tenant(self, project: ProjectRecord) -> None:
        obj: Obj = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "Tenant",
            "metadata": {
                "name": project.name,
                "finalizers": [CONTENT_FINALIZER, IDENTITY_FINALIZER],
            },
            "spec": {"description": project.description} if project.description else {},
            "status": {"projectID": project.id, "phase": "Active"},
        }
        strategy.default(self.tenants_rt, obj)
        with contextlib.suppress(errors.APIError):
            await self.objects.create(self.tenants_rt, obj)
            log.info("tenancy sync: tenant %s mirrors its identity project", project.name)

    # -- users ----------------------------------------------------------------------

    async def _users(self, projects: dict[str, ProjectRecord], admin_project: str | None) -> None:
        identity_users = {u.name: u for u in await self.identity.list_users()}
        users = (await self.objects.list(self.users_rt, None)).items
        for user in users:
            found = identity_users.get(user["metadata"]["name"])
            await self._user(user, found, projects, admin_project)
        names = {u["metadata"]["name"] for u in users}
        by_id = {p.id: p for p in projects.values()}
        for name, record in identity_users.items():
            if name in names or name in RESERVED_NAMES or not _NAME.fullmatch(name):
                continue
            await self._mirror_identity_user(record, by_id)

    async def _user(
        self,
        user: Obj,
        record: UserRecord | None,
        projects: dict[str, ProjectRecord],
        admin_project: str | None,
    ) -> None:
        meta, status = user["metadata"], user.get("status") or {}
        spec = user.get("spec") or {}
        linked = status.get("userID")
        if record is not None and linked and record.id != linked:
            record = None  # a different user of the same name: ours is gone
        if "deletionTimestamp" in meta:
            if IDENTITY_FINALIZER not in (meta.get("finalizers") or []):
                return
            if record is not None:
                with contextlib.suppress(NotFound):
                    await self.identity.delete_user(record.id)
            await self._drop_finalizer(self.users_rt, user)
            return
        if record is None and linked:
            log.info("tenancy sync: identity user %s is gone; deleting the User", meta["name"])
            await self._delete(self.users_rt, user)
            return
        if record is None:
            try:
                record = await self.identity.create_user(meta["name"], None)
            except Conflict:
                return
        project = projects.get(str(spec.get("tenant")))
        if project is None:
            await self._user_status(user, {"userID": record.id, "phase": "Pending"})
            return
        await self._grant_only(record.id, project.id, str(spec.get("role")), admin_project)
        enabled = spec.get("enabled", True) is not False
        if record.enabled != enabled:
            await self.identity.update_user(record.id, enabled=enabled)
        await self._user_status(
            user, {"userID": record.id, "phase": "Active", "role": spec.get("role")}
        )

    async def _grant_only(
        self, user_id: str, project_id: str, role: str, admin_project: str | None
    ) -> None:
        """Make `role` on `project_id` the user's only role outside the admin project."""
        grants = await self.identity.list_role_assignments(user_id=user_id)
        if not any(g.project_id == project_id and g.role_name == role for g in grants):
            await self.identity.assign_role(project_id, user_id, role)
        for grant in grants:
            if grant.project_id == admin_project:
                continue
            if grant.project_id != project_id or grant.role_name != role:
                with contextlib.suppress(NotFound):
                    await self.identity.unassign_role(grant.project_id, user_id, grant.role_name)

    async def _mirror_identity_user(
        self, record: UserRecord, projects_by_id: dict[str, ProjectRecord]
    ) -> None:
        grants = await self.identity.list_role_assignments(user_id=record.id)
        tenant_grants = [g for g in grants if g.project_id in projects_by_id]
        if not tenant_grants:
            return  # not in any tenant (yet)
        project_id = min(g.project_id for g in tenant_grants)
        held = {g.role_name for g in tenant_grants if g.project_id == project_id}
        role = next(r for r in ROLES if r in held)
        obj: Obj = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "User",
            "metadata": {"name": record.name, "finalizers": [IDENTITY_FINALIZER]},
            "spec": {
                "tenant": projects_by_id[project_id].name,
                "role": role,
                "enabled": record.enabled,
            },
            "status": {"userID": record.id, "phase": "Active", "role": role},
        }
        if record.email:
            obj["spec"]["email"] = record.email
        strategy.default(self.users_rt, obj)
        with contextlib.suppress(errors.APIError):
            await self.objects.create(self.users_rt, obj)
            log.info("tenancy sync: user %s mirrors its identity user", record.name)

    async def _user_status(self, user: Obj, wanted: Obj) -> None:
        status = user.get("status") or {}
        if any(status.get(k) != v for k, v in wanted.items()):
            await self._set_status(self.users_rt, user, {**status, **wanted})

    # -- object writes ----------------------------------------------------------------

    async def _set_status(self, rt: ResourceType, obj: Obj, status: Obj) -> None:
        new = copy.deepcopy(obj)
        new["status"] = status
        with contextlib.suppress(errors.APIError):  # changed meanwhile: next pass
            await self.objects.update(rt, obj, new)

    async def _drop_finalizer(self, rt: ResourceType, obj: Obj) -> None:
        new = copy.deepcopy(obj)
        new["metadata"]["finalizers"] = [
            f for f in new["metadata"].get("finalizers") or [] if f != IDENTITY_FINALIZER
        ]
        with contextlib.suppress(errors.APIError):
            await self.objects.update(rt, obj, new)

    async def _delete(self, rt: ResourceType, obj: Obj) -> None:
        with contextlib.suppress(errors.APIError):
            await self.objects.delete(rt, obj)
