"""The identity service: users, projects, roles, assignments and tokens, kept in the store.

This is the Python API the API server (and its admin CLI) calls directly; the
HTTP API in `app` is a thin Keystone-shaped layer over it that adds the
authorization of callers. Methods here trust their caller.

Consistency: every change is one store transaction guarded by
compare-and-swap on the records it depends on; names are claimed through an
index key that must be absent (`names/...`), so of two concurrent creates of
one name exactly one succeeds, on any number of API servers.

Revocation: a token is invalid once its user is deleted or disabled, its
project deleted or disabled, or its user holds no role on its project any
more (all looked up live on validation, like Keystone's); on top of that,
revocation events in the store revoke by time (everything a user got before
T, optionally only for one project: password change, disabling, role
removal) and by audit id (one token and the tokens rescoped from it).
"""

from __future__ import annotations

import asyncio
import logging
import time
import unicodedata
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import argon2

from hypernetes.auth.identity import records
from hypernetes.auth.identity.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    NotBootstrapped,
    NotFound,
    Unauthorized,
)
from hypernetes.auth.identity.keys import DEFAULT_MAX_ACTIVE_KEYS, FernetKeyRepository
from hypernetes.auth.identity.model import (
    ADMIN_PROJECT,
    ADMIN_ROLE,
    ROLE_NAMES,
    Principal,
    ProjectRecord,
    RoleAssignment,
    RoleRecord,
    UserRecord,
    utc,
)
from hypernetes.auth.identity.passwords import MAX_PASSWORD_LENGTH, Passwords
from hypernetes.auth.identity.throttle import LoginThrottle
from hypernetes.auth.identity.tokens import METHODS, TokenCodec, TokenPayload, new_audit_id
from hypernetes.store import Compare, Delete, KeyValue, Put, Store

log = logging.getLogger(__name__)

DEFAULT_TOKEN_TTL = 3600.0
PRUNE_MARGIN = 600.0
"""Seconds a revocation event outlives the tokens it can match (covers clock skew)."""
MAX_NAME_LENGTH = 255
RESERVED_USER_PREFIX = "system:"
"""Kubernetes reserves these user names for its own components."""
_RETRIES = 20


@dataclass(frozen=True)
class Bootstrap:
    """What `IdentityService.bootstrap` made sure exists."""

    admin_user_id: str
    admin_project_id: str
    role_ids: dict[str, str]


class IdentityService:
    """A Keystone-v3-like identity service over a `Store`; also an `Identity` for the API server."""

    def __init__(
        self,
        store: Store,
        data_dir: str | Path,
        *,
        token_ttl: float = DEFAULT_TOKEN_TTL,
        clock: Callable[[], float] = time.time,
        password_hasher: argon2.PasswordHasher | None = None,
        max_active_keys: int = DEFAULT_MAX_ACTIVE_KEYS,
    ) -> None:
        if token_ttl <= 0:
            raise ValueError("token_ttl must be positive")
        self.store = store
        self.keys = FernetKeyRepository(
            Path(data_dir) / "identity" / "fernet-keys", max_active_keys
        )
        self.keys.ensure()
        self.tokens = TokenCodec(self.keys)
        self.passwords = Passwords(password_hasher)
        self.token_ttl = token_ttl
        self.clock = clock
        self._roles: dict[str, RoleRecord] = {}
        self._admin_project_id: str | None = None
        self.throttle = LoginThrottle()
        """Failed password logins per user; the API server sets its observer (audit log)."""
        self.certificate_admin: Callable[[bytes], bool] | None = None
        """Set by the API server: whether a (verified, DER) TLS client certificate makes
        its holder the platform admin at the HTTP API, as a token of the admin would."""

    # -- bootstrap -----------------------------------------------------------------

    async def bootstrap(
        self, admin_password: str | None, *, admin_user: str = "admin"
    ) -> Bootstrap:
        """Make sure the fixed roles, the `admin` project and its admin user exist.

        Idempotent: what exists is kept. If the admin user exists with another
        password than `admin_password`, the password is reset (the recovery
        path, as `keystone-manage bootstrap`), which revokes that user's tokens,
        and a disabled admin user is enabled again. With `admin_password` None
        (a restart), an existing admin user is left as it is; creating one then
        is a `BadRequest`.
        """
        if admin_password is not None:
            _check_password(admin_password)
        roles = {}
        for name in ROLE_NAMES:
            roles[name] = await self._ensure_role(name)
        self._roles = roles
        try:
            project = await self.create_project(
                ADMIN_PROJECT, description="Platform administration"
            )
        except Conflict:
            project = await self.find_project(ADMIN_PROJECT)
        await self._claim_admin_project(project.id)
        try:
            user = await self.find_user(admin_user)
        except NotFound:
            if admin_password is None:
                raise BadRequest("A password is needed to create the admin user.") from None
            try:
                user = await self.create_user(admin_user, admin_password)
            except Conflict:  # another server bootstrapping at the same time
                user = await self.find_user(admin_user)
        if admin_password is not None:
            if not user.enabled:
                await self.update_user(user.id, enabled=True)
            if not await self.passwords.verify(user.password_hash, admin_password):
                await self.set_password(user.id, admin_password)
        await self.assign_role(project.id, user.id, ADMIN_ROLE)
        return Bootstrap(user.id, project.id, {n: r.id for n, r in roles.items()})

    async def _ensure_role(self, name: str) -> RoleRecord:
        index = records.name_key("roles", name)
        role = RoleRecord(uuid.uuid4().hex, name)
        await self.store.txn(
            [Compare(index, 0)],
            [Put(index, records.dump({"id": role.id})), Put(records.role_key(role.id), _doc(role))],
        )
        kv = await self.store.get(index)
        assert kv is not None
        role_kv = await self.store.get(records.role_key(records.load(kv)["id"]))
        assert role_kv is not None
        return RoleRecord.from_json(records.load(role_kv))

    async def _claim_admin_project(self, project_id: str) -> None:
        await self.store.txn(
            [Compare(records.BOOTSTRAP_KEY, 0)],
            [Put(records.BOOTSTRAP_KEY, records.dump({"admin_project_id": project_id}))],
        )
        self._admin_project_id = None
        if await self.admin_project_id() != project_id:
            raise Conflict("the store names another project as the admin project")

    async def admin_project_id(self) -> str | None:
        """The id of the special `admin` project, once bootstrapped (it never changes)."""
        if self._admin_project_id is None:
            kv = await self.store.get(records.BOOTSTRAP_KEY)
            if kv is not None:
                self._admin_project_id = records.load(kv)["admin_project_id"]
        return self._admin_project_id

    # -- roles -----------------------------------------------------------------------

    async def list_roles(self) -> list[RoleRecord]:
        return list((await self._role_table()).values())

    async def get_role(self, role_id: str) -> RoleRecord:
        for role in (await self._role_table()).values():
            if role.id == role_id:
                return role
        raise NotFound(f"Could not find role: {role_id}.")

    async def find_role(self, name: str) -> RoleRecord:
        role = (await self._role_table()).get(name)
        if role is None:
            raise NotFound(f"Could not find role: {name}.")
        return role

    async def _role_table(self) -> dict[str, RoleRecord]:
        # Roles are fixed at bootstrap and never change, so they are cached for good.
        if len(self._roles) < len(ROLE_NAMES):
            found = [
                RoleRecord.from_json(records.load(kv)) for kv in await self._range(records.ROLES)
            ]
            by_name = {r.name: r for r in found}
            if not all(name in by_name for name in ROLE_NAMES):
                raise NotBootstrapped()
            self._roles = {name: by_name[name] for name in ROLE_NAMES}
        return self._roles

    # -- users ----------------------------------------------------------------------

    async def create_user(
        self,
        name: str,
        password: str | None,
        *,
        enabled: bool = True,
        description: str = "",
        email: str | None = None,
        default_project_id: str | None = None,
    ) -> UserRecord:
        """A new user; `password` None makes a user that cannot log in with a password."""
        _check_name(name, user=True)
        if password is not None:
            _check_password(password)
        if default_project_id:
            await self.get_project(default_project_id)
        user = UserRecord(
            id=uuid.uuid4().hex,
            name=name,
            enabled=enabled,
            description=description,
            email=email or None,
            default_project_id=default_project_id or None,
            password_hash=await self.passwords.hash(password) if password is not None else None,
            created_at=self.clock(),
        )
        index = records.name_key("users", name)
        created = await self.store.txn(
            [Compare(index, 0)],
            [Put(index, records.dump({"id": user.id})), Put(records.user_key(user.id), _doc(user))],
        )
        if not created.succeeded:
            raise _duplicate("user", name)
        log.info("identity: created user %s (%s)", user.id, name)
        return user

    async def get_user(self, user_id: str) -> UserRecord:
        return (await self._user(user_id))[0]

    async def find_user(self, name: str) -> UserRecord:
        """The user named `name` (names are unique in the domain)."""
        user_id = await self._id_by_name("users", name)
        if user_id is None:
            raise NotFound(f"Could not find user: {name}.")
        return await self.get_user(user_id)

    async def list_users(
        self, *, name: str | None = None, enabled: bool | None = None
    ) -> list[UserRecord]:
        users = [UserRecord.from_json(records.load(kv)) for kv in await self._range(records.USERS)]
        return sorted(
            (
                u
                for u in users
                if (name is None or u.name == name) and (enabled is None or u.enabled == enabled)
            ),
            key=lambda u: u.name,
        )

    async def update_user(
        self,
        user_id: str,
        *,
        name: str | None = None,
        enabled: bool | None = None,
        description: str | None = None,
        email: str | None = None,
        default_project_id: str | None = None,
        password: str | None = None,
    ) -> UserRecord:
        """Change the given attributes (None keeps one; "" clears email/default project).

        A new password or disabling the user revokes the user's tokens.
        """
        if name is not None:
            _check_name(name, user=True)
        if password is not None:
            _check_password(password)
        if default_project_id:
            await self.get_project(default_project_id)
        new_hash = await self.passwords.hash(password) if password is not None else None
        for _ in range(_RETRIES):
            user, kv = await self._user(user_id)
            changed = replace(
                user,
                name=user.name if name is None else name,
                enabled=user.enabled if enabled is None else enabled,
                description=user.description if description is None else description,
                email=user.email if email is None else (email or None),
                default_project_id=user.default_project_id
                if default_project_id is None
                else (default_project_id or None),
                password_hash=user.password_hash if new_hash is None else new_hash,
            )
            compares = [Compare(kv.key, kv.mod_revision)]
            ops: list[Put | Delete] = [Put(kv.key, _doc(changed))]
            if changed.name != user.name:
                old_index = records.name_key("users", user.name)
                new_index = records.name_key("users", changed.name)
                old_kv = await self.store.get(old_index)
                compares += [Compare(new_index, 0)]
                if old_kv is not None:
                    compares.append(Compare(old_index, old_kv.mod_revision))
                    ops.append(Delete(old_index))
                ops.append(Put(new_index, records.dump({"id": user.id})))
                if await self.store.get(new_index) is not None:
                    raise _duplicate("user", changed.name)
            revoke = new_hash is not None or (user.enabled and not changed.enabled)
            if revoke:
                done = await self._commit_revoking(compares, ops, user.id)
            else:
                done = (await self.store.txn(compares, ops)).succeeded
            if done:
                log.info("identity: updated user %s", user.id)
                return changed
        raise Conflict(f"user {user_id} is changing too often; try again")

    async def set_password(
        self, user_id: str, password: str, *, original_password: str | None = None
    ) -> None:
        """Set a new password, revoking the user's tokens.

        With `original_password` (self-service change), that must be the current
        password, else `Unauthorized`.
        """
        _check_password(password)
        new_hash = await self.passwords.hash(password)
        for _ in range(_RETRIES):
            user, kv = await self._user(user_id)
            if original_password is not None and not await self.passwords.verify(
                user.password_hash, original_password
            ):
                raise Unauthorized()
            changed = replace(user, password_hash=new_hash)
            if await self._commit_revoking(
                [Compare(kv.key, kv.mod_revision)], [Put(kv.key, _doc(changed))], user.id
            ):
                log.info("identity: password of user %s changed", user.id)
                return
        raise Conflict(f"user {user_id} is changing too often; try again")

    async def delete_user(self, user_id: str) -> None:
        """Delete a user, their role assignments, and (so) their tokens."""
        for _ in range(_RETRIES):
            user, kv = await self._user(user_id)
            grants = await self._range(f"{records.GRANTS_BY_USER}{user_id}/")
            ops: list[Put | Delete] = [Delete(kv.key), Delete(records.name_key("users", user.name))]
            ops += _delete_grants(grants)
            if await self._commit_revoking([Compare(kv.key, kv.mod_revision)], ops, user_id):
                # An assignment made between our read and our commit would be left behind.
                await self._delete_all(
                    _delete_grants(await self._range(f"{records.GRANTS_BY_USER}{user_id}/"))
                )
                log.info("identity: deleted user %s (%s)", user_id, user.name)
                return
        raise Conflict(f"user {user_id} is changing too often; try again")

    # -- projects ---------------------------------------------------------------------

    async def create_project(
        self, name: str, *, description: str = "", enabled: bool = True
    ) -> ProjectRecord:
        _check_name(name, user=False)
        project = ProjectRecord(
            id=uuid.uuid4().hex,
            name=name,
            enabled=enabled,
            description=description,
            created_at=self.clock(),
        )
        index = records.name_key("projects", name)
        created = await self.store.txn(
            [Compare(index, 0)],
            [
                Put(index, records.dump({"id": project.id})),
                Put(records.project_key(project.id), _doc(project)),
            ],
        )
        if not created.succeeded:
            raise _duplicate("project", name)
        log.info("identity: created project %s (%s)", project.id, name)
        return project

    async def get_project(self, project_id: str) -> ProjectRecord:
        return (await self._project(project_id))[0]

    async def find_project(self, name: str) -> ProjectRecord:
        project_id = await self._id_by_name("projects", name)
        if project_id is None:
            raise NotFound(f"Could not find project: {name}.")
        return await self.get_project(project_id)

    async def list_projects(
        self, *, name: str | None = None, enabled: bool | None = None
    ) -> list[ProjectRecord]:
        projects = [
            ProjectRecord.from_json(records.load(kv)) for kv in await self._range(records.PROJECTS)
        ]
        return sorted(
            (
                p
                for p in projects
                if (name is None or p.name == name) and (enabled is None or p.enabled == enabled)
            ),
            key=lambda p: p.name,
        )

    async def update_project(
        self,
        project_id: str,
        *,
        name: str | None = None,
        enabled: bool | None = None,
        description: str | None = None,
    ) -> ProjectRecord:
        """Rename, enable/disable or describe a project (the admin project keeps name and state)."""
        if name is not None:
            _check_name(name, user=False)
        for _ in range(_RETRIES):
            project, kv = await self._project(project_id)
            changed = replace(
                project,
                name=project.name if name is None else name,
                enabled=project.enabled if enabled is None else enabled,
                description=project.description if description is None else description,
            )
            if project.id == await self.admin_project_id() and (
                changed.name != project.name or not changed.enabled
            ):
                raise Forbidden("The admin project cannot be renamed or disabled.")
            compares = [Compare(kv.key, kv.mod_revision)]
            ops: list[Put | Delete] = [Put(kv.key, _doc(changed))]
            if changed.name != project.name:
                old_index = records.name_key("projects", project.name)
                new_index = records.name_key("projects", changed.name)
                if await self.store.get(new_index) is not None:
                    raise _duplicate("project", changed.name)
                old_kv = await self.store.get(old_index)
                compares.append(Compare(new_index, 0))
                if old_kv is not None:
                    compares.append(Compare(old_index, old_kv.mod_revision))
                    ops.append(Delete(old_index))
                ops.append(Put(new_index, records.dump({"id": project.id})))
            if (await self.store.txn(compares, ops)).succeeded:
                log.info("identity: updated project %s", project.id)
                return changed
        raise Conflict(f"project {project_id} is changing too often; try again")

    async def delete_project(self, project_id: str) -> None:
        """Delete a project and every role assignment on it (its tokens stop validating)."""
        if project_id == await self.admin_project_id():
            raise Forbidden("The admin project cannot be deleted.")
        prefix = f"{records.GRANTS_BY_PROJECT}{project_id}/"
        for _ in range(_RETRIES):
            project, kv = await self._project(project_id)
            ops: list[Put | Delete] = [
                Delete(kv.key),
                Delete(records.name_key("projects", project.name)),
            ]
            ops += _delete_grants(await self._range(prefix))
            if (await self.store.txn([Compare(kv.key, kv.mod_revision)], ops)).succeeded:
                await self._delete_all(_delete_grants(await self._range(prefix)))
                log.info("identity: deleted project %s (%s)", project_id, project.name)
                return
        raise Conflict(f"project {project_id} is changing too often; try again")

    # -- role assignments ------------------------------------------------------------

    async def assign_role(self, project_id: str, user_id: str, role: str) -> None:
        """Give user `user_id` the role named `role` on the project (idempotent)."""
        role_record = await self.find_role(role)
        for _ in range(_RETRIES):
            _, user_kv = await self._user(user_id)
            _, project_kv = await self._project(project_id)
            keys = records.grant_keys(project_id, user_id, role_record.id)
            grant = records.dump({"role": role_record.name})
            result = await self.store.txn(
                [
                    Compare(user_kv.key, user_kv.mod_revision),
                    Compare(project_kv.key, project_kv.mod_revision),
                ],
                [Put(key, grant) for key in keys],
            )
            if result.succeeded:
                log.info("identity: role %s given to user %s on %s", role, user_id, project_id)
                return
        raise Conflict("the user or project is changing too often; try again")

    async def unassign_role(self, project_id: str, user_id: str, role: str) -> None:
        """Take the role away, revoking the user's tokens scoped to that project."""
        role_record = await self.find_role(role)
        by_project, by_user = records.grant_keys(project_id, user_id, role_record.id)
        for _ in range(_RETRIES):
            kv = await self.store.get(by_project) if records.is_id(project_id) else None
            if kv is None or not records.is_id(user_id):
                raise NotFound("Could not find role assignment.")
            if await self._commit_revoking(
                [Compare(by_project, kv.mod_revision)],
                [Delete(by_project), Delete(by_user)],
                user_id,
                project_id,
            ):
                log.info("identity: role %s taken from user %s on %s", role, user_id, project_id)
                return
        raise Conflict("the assignment is changing too often; try again")

    async def has_role(self, project_id: str, user_id: str, role: str) -> bool:
        role_record = await self.find_role(role)
        if not (records.is_id(project_id) and records.is_id(user_id)):
            return False
        key = records.grant_keys(project_id, user_id, role_record.id)[0]
        return await self.store.get(key) is not None

    async def roles_for(self, project_id: str, user_id: str) -> list[RoleRecord]:
        """The roles the user holds on the project, in `ROLE_NAMES` order."""
        if not (records.is_id(project_id) and records.is_id(user_id)):
            return []
        held = await self._range(f"{records.GRANTS_BY_USER}{user_id}/{project_id}/")
        role_ids = {records.split_grant(kv.key)[2] for kv in held}
        return [r for r in (await self._role_table()).values() if r.id in role_ids]

    async def list_role_assignments(
        self,
        *,
        user_id: str | None = None,
        project_id: str | None = None,
        role: str | None = None,
    ) -> list[RoleAssignment]:
        """Assignments matching every filter given (role by name)."""
        if (user_id is not None and not records.is_id(user_id)) or (
            project_id is not None and not records.is_id(project_id)
        ):
            return []
        if user_id is not None:
            prefix = f"{records.GRANTS_BY_USER}{user_id}/"
            if project_id is not None:
                prefix += f"{project_id}/"
        elif project_id is not None:
            prefix = f"{records.GRANTS_BY_PROJECT}{project_id}/"
        else:
            prefix = records.GRANTS_BY_PROJECT
        by_id = {r.id: r for r in (await self._role_table()).values()}
        found = []
        for kv in await self._range(prefix):
            p, u, r = records.split_grant(kv.key)
            if r in by_id and (role is None or by_id[r].name == role):
                found.append(RoleAssignment(p, u, r, by_id[r].name))
        return sorted(found)

    async def projects_for_user(self, user_id: str) -> list[ProjectRecord]:
        """The enabled projects on which the user holds any role."""
        if not records.is_id(user_id):
            return []
        project_ids = sorted(
            {
                records.split_grant(kv.key)[0]
                for kv in await self._range(f"{records.GRANTS_BY_USER}{user_id}/")
            }
        )
        projects = []
        for project_id in project_ids:
            kv = await self.store.get(records.project_key(project_id))
            if kv is not None:
                project = ProjectRecord.from_json(records.load(kv))
                if project.enabled:
                    projects.append(project)
        return sorted(projects, key=lambda p: p.name)

    # -- tokens -----------------------------------------------------------------------

    async def authenticate(
        self, user: str, password: str, project: str | None = None
    ) -> tuple[str, Principal]:
        """Log in by user name and password, scoped to the project named `project` (or unscoped).

        Any failure (unknown user, wrong password, disabled user, no role on the
        project...) is `Unauthorized` with one message, at the cost of one
        argon2id verification.
        """
        return await self.password_login(
            password, user_name=user, project_name=project, default_scope=False
        )

    async def password_login(
        self,
        password: str,
        *,
        user_id: str | None = None,
        user_name: str | None = None,
        project_id: str | None = None,
        project_name: str | None = None,
        default_scope: bool = True,
    ) -> tuple[str, Principal]:
        """Log in a user given by id or name; scope by project id or name.

        With no project and `default_scope`, the token is scoped to the user's
        default project if they hold a role there (Keystone's behaviour).
        """
        # Taken before the user is read: a password change committed after this
        # read gets a revocation time after this token's issue time.
        issued_at = self.clock()
        user = await self._user_by_ref(user_id, user_name)
        who = user.name if user else (user_name or "")
        key = user.id if user else f"name:{user_name or user_id}"
        self.throttle.check(key, who)  # 429 before the password is even looked at
        ok = isinstance(password, str) and len(password) <= MAX_PASSWORD_LENGTH
        verified = await self.passwords.verify(
            user.password_hash if user else None, password if ok else ""
        )
        if not (ok and verified and user is not None and user.enabled):
            log.info("identity: failed password login")
            self.throttle.failed(key, who)
            raise Unauthorized()
        self.throttle.succeeded(key, who)
        assert user.password_hash is not None
        if self.passwords.needs_rehash(user.password_hash):
            await self._rehash(user, password)
        project = await self._scope(user, project_id, project_name, default_scope)
        return await self._issue(
            user,
            project,
            methods=("password",),
            issued_at=issued_at,
            expires_at=issued_at + self.token_ttl,
            audit_ids=(new_audit_id(),),
        )

    async def rescope(
        self, token: str, *, project_id: str | None = None, project_name: str | None = None
    ) -> tuple[str, Principal]:
        """A new token for the same user from a valid token ("token" method), same expiry."""
        issued_at = self.clock()
        payload = await self._valid_payload(token)
        if payload is None:
            raise Unauthorized()
        user = await self._user_or_none(payload.user_id)
        if user is None:
            raise Unauthorized()
        project = await self._scope(user, project_id, project_name, default_scope=False)
        methods = tuple(m for m in METHODS if m in payload.methods or m == "token")
        return await self._issue(
            user,
            project,
            methods=methods,
            issued_at=issued_at,
            expires_at=payload.expires_at,
            # Keystone's audit chain: our own id, then the id of the first token of the chain.
            audit_ids=(new_audit_id(), payload.audit_ids[-1]),
        )

    async def validate_token(self, token: str) -> Principal | None:
        """The principal of a valid token; None if invalid, expired, or revoked."""
        payload = await self._valid_payload(token)
        if payload is None:
            return None
        user = await self._user_or_none(payload.user_id)
        if user is None or not user.enabled:
            return None
        project = None
        roles: list[RoleRecord] = []
        if payload.project_id is not None:
            project = await self._project_or_none(payload.project_id)
            if project is None or not project.enabled:
                return None
            roles = await self.roles_for(project.id, user.id)
            if not roles:
                return None
        return await self._principal(payload, user, project, roles)

    async def revoke_token(self, token: str) -> None:
        """Revoke one token (and the tokens rescoped from it); NotFound if it is not valid."""
        payload = await self._valid_payload(token)
        if payload is None:
            raise NotFound("Could not find token.")
        audit_id = payload.audit_ids[0]
        event = {"prune_after": payload.expires_at + PRUNE_MARGIN}
        await self.store.txn([], [Put(records.audit_revocation_key(audit_id), records.dump(event))])
        log.info("identity: revoked a token of user %s (audit id %s)", payload.user_id, audit_id)

    async def revoke_user_tokens(self, user_id: str, project_id: str | None = None) -> None:
        """Revoke every token the user holds now (only those scoped to `project_id` if given)."""
        if not records.is_id(user_id) or (project_id is not None and not records.is_id(project_id)):
            raise NotFound(f"Could not find user: {user_id}.")
        await self._commit_revoking([], [], user_id, project_id)

    async def prune_revocations(self) -> int:
        """Delete revocation events that can no longer match a live token; returns how many."""
        return await self._prune(records.REVOKED)

    async def _prune(self, prefix: str) -> int:
        now = self.clock()
        stale = [
            kv for kv in await self._range(prefix) if records.load(kv).get("prune_after", 0) < now
        ]
        for kv in stale:
            await self.store.txn([Compare(kv.key, kv.mod_revision)], [Delete(kv.key)])
        return len(stale)

    async def run_maintenance(self, interval: float = 600.0) -> None:
        """Prune revocation events every `interval` seconds until cancelled (a background task).

        Every API server may run it: the deletes are compare-and-swap, so they
        do not fight.
        """
        while True:
            try:
                pruned = await self.prune_revocations()
                if pruned:
                    log.info("identity: pruned %d revocation events", pruned)
            except Exception:  # a store hiccup must not end the loop
                log.exception("identity: pruning revocation events failed")
            await asyncio.sleep(interval)

    def rotate_keys(self) -> int:
        """Rotate the Fernet keys (see `keys`); returns the number of the new primary key."""
        return self.keys.rotate()

    async def principal_roles(self, principal: Principal) -> list[RoleRecord]:
        """The role records (ids and names) behind `principal.roles`."""
        table = await self._role_table()
        return [table[name] for name in principal.roles if name in table]

    # -- token internals ----------------------------------------------------------------

    async def _valid_payload(self, token: str) -> TokenPayload | None:
        """The payload if the token opens, has not expired and no event revokes it."""
        payload = self.tokens.open(token) if isinstance(token, str) else None
        if payload is None or payload.expires_at <= self.clock():
            return None
        for audit_id in payload.audit_ids:
            if await self.store.get(records.audit_revocation_key(audit_id)) is not None:
                return None
        for kv in await self._range(records.user_revocations(payload.user_id)):
            event = records.load(kv)
            if payload.issued_at <= event["before"] and event.get("project_id") in (
                None,
                payload.project_id,
            ):
                return None
        return payload

    async def _scope(
        self,
        user: UserRecord,
        project_id: str | None,
        project_name: str | None,
        default_scope: bool,
    ) -> ProjectRecord | None:
        if project_id is None and project_name is None:
            if not (default_scope and user.default_project_id):
                return None
            default = await self._project_or_none(user.default_project_id)
            if (
                default is None
                or not default.enabled
                or not await self.roles_for(default.id, user.id)
            ):
                return None
            return default
        project = (
            await self._project_or_none(project_id)
            if project_id is not None
            else await self._project_by_name_or_none(project_name or "")
        )
        if project is None or not project.enabled or not await self.roles_for(project.id, user.id):
            raise Unauthorized("The user has no access to the requested project.")
        return project

    async def _issue(
        self,
        user: UserRecord,
        project: ProjectRecord | None,
        *,
        methods: tuple[str, ...],
        issued_at: float,
        expires_at: float,
        audit_ids: tuple[str, ...],
    ) -> tuple[str, Principal]:
        payload = TokenPayload(
            user_id=user.id,
            methods=methods,
            project_id=project.id if project else None,
            expires_at=expires_at,
            issued_at=issued_at,
            audit_ids=audit_ids,
        )
        roles = await self.roles_for(project.id, user.id) if project else []
        if project and not roles:
            raise Unauthorized("The user has no access to the requested project.")
        token = self.tokens.seal(payload)
        log.info(
            "identity: issued a token to user %s on project %s (audit id %s)",
            user.id,
            payload.project_id,
            audit_ids[0],
        )
        return token, await self._principal(payload, user, project, roles)

    async def _principal(
        self,
        payload: TokenPayload,
        user: UserRecord,
        project: ProjectRecord | None,
        roles: Sequence[RoleRecord],
    ) -> Principal:
        names = tuple(r.name for r in roles)
        admin_project = await self.admin_project_id()
        return Principal(
            user_id=user.id,
            user_name=user.name,
            project_id=project.id if project else None,
            project_name=project.name if project else None,
            roles=names,
            expires_at=utc(payload.expires_at),
            issued_at=utc(payload.issued_at),
            audit_ids=payload.audit_ids,
            methods=payload.methods,
            platform_admin=bool(project and project.id == admin_project and ADMIN_ROLE in names),
        )

    async def _commit_revoking(
        self,
        compares: list[Compare],
        ops: list[Put | Delete],
        user_id: str,
        project_id: str | None = None,
    ) -> bool:
        """Commit `ops` with a revocation event for the user's tokens issued until now.

        The event's time is moved to just after the commit in a second write: a
        login that read the old state (before the commit) took its issue time
        before that read, so it is revoked too; if we die between the writes,
        the first time still revokes all but such a racing login.
        """
        key = records.user_revocations(user_id) + uuid.uuid4().hex

        def event(before: float) -> bytes:
            return records.dump(
                {
                    "before": before,
                    "project_id": project_id,
                    "prune_after": before + self.token_ttl + PRUNE_MARGIN,
                }
            )

        if not (await self.store.txn(compares, [*ops, Put(key, event(self.clock()))])).succeeded:
            return False
        await self.store.txn([], [Put(key, event(self.clock()))])
        # Validation reads all of a user's events: keep that list short.
        await self._prune(records.user_revocations(user_id))
        return True

    # -- record helpers -----------------------------------------------------------------

    async def _range(self, prefix: str) -> list[KeyValue]:
        return (await self.store.range(prefix)).kvs

    async def _delete_all(self, ops: list[Put | Delete]) -> None:
        for op in ops:
            await self.store.txn([], [op])

    async def _id_by_name(self, kind: str, name: str) -> str | None:
        if not isinstance(name, str) or not name:
            return None
        kv = await self.store.get(records.name_key(kind, name))
        return records.load(kv)["id"] if kv is not None else None

    async def _user(self, user_id: str) -> tuple[UserRecord, KeyValue]:
        kv = await self.store.get(records.user_key(user_id)) if records.is_id(user_id) else None
        if kv is None:
            raise NotFound(f"Could not find user: {user_id}.")
        return UserRecord.from_json(records.load(kv)), kv

    async def _user_or_none(self, user_id: str) -> UserRecord | None:
        try:
            return await self.get_user(user_id)
        except NotFound:
            return None

    async def _user_by_ref(self, user_id: str | None, user_name: str | None) -> UserRecord | None:
        if user_id is not None:
            return await self._user_or_none(user_id)
        found = await self._id_by_name("users", user_name or "")
        return await self._user_or_none(found) if found else None

    async def _project(self, project_id: str) -> tuple[ProjectRecord, KeyValue]:
        kv = (
            await self.store.get(records.project_key(project_id))
            if records.is_id(project_id)
            else None
        )
        if kv is None:
            raise NotFound(f"Could not find project: {project_id}.")
        return ProjectRecord.from_json(records.load(kv)), kv

    async def _project_or_none(self, project_id: str) -> ProjectRecord | None:
        try:
            return await self.get_project(project_id)
        except NotFound:
            return None

    async def _project_by_name_or_none(self, name: str) -> ProjectRecord | None:
        found = await self._id_by_name("projects", name)
        return await self._project_or_none(found) if found else None

    async def _rehash(self, user: UserRecord, password: str) -> None:
        """Upgrade a hash made with older parameters; a lost race just leaves it for later."""
        kv = await self.store.get(records.user_key(user.id))
        if kv is None or records.load(kv).get("password_hash") != user.password_hash:
            return
        upgraded = replace(user, password_hash=await self.passwords.hash(password))
        await self.store.txn([Compare(kv.key, kv.mod_revision)], [Put(kv.key, _doc(upgraded))])


def _doc(record: UserRecord | ProjectRecord | RoleRecord) -> bytes:
    return records.dump(record.to_json())


def _delete_grants(grants: list[KeyValue]) -> list[Put | Delete]:
    """Delete ops for grants and their mirror keys."""
    keys: set[str] = set()
    for kv in grants:
        keys.update(records.grant_keys(*records.split_grant(kv.key)))
    return [Delete(k) for k in sorted(keys)]


def _duplicate(kind: str, name: str) -> Conflict:
    return Conflict(
        f"Conflict occurred attempting to store {kind} - "
        f"Duplicate entry found with name {name} at domain ID default."
    )


def _check_name(name: object, *, user: bool) -> None:
    if not isinstance(name, str) or not name or len(name) > MAX_NAME_LENGTH:
        raise BadRequest(f"A name must be a string of 1 to {MAX_NAME_LENGTH} characters.")
    if name != name.strip() or any(unicodedata.category(c).startswith("C") for c in name):
        raise BadRequest("A name may not have surrounding spaces or control characters.")
    if user and name.startswith(RESERVED_USER_PREFIX):
        raise BadRequest(f"User names starting with {RESERVED_USER_PREFIX!r} are reserved.")


def _check_password(password: object) -> None:
    if not isinstance(password, str) or not password:
        raise BadRequest("A password must be a non-empty string.")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise BadRequest(f"A password may have at most {MAX_PASSWORD_LENGTH} characters.")
