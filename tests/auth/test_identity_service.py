"""The identity service's Python API on a real SQLite store: records, tokens, revocation."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any, Literal

import argon2
import pytest
from tests.auth.test_identity_helpers import (
    ADMIN_PASSWORD,
    FakeClock,
    clock,
    fast_hasher,
    make_service,
    service,
    store,
)

from hypernetes.auth.identity import (
    BadRequest,
    Conflict,
    Forbidden,
    IdentityService,
    NotFound,
    Unauthorized,
)
from hypernetes.auth.identity.passwords import default_hasher
from hypernetes.auth.identity.service import PRUNE_MARGIN
from hypernetes.store import SQLiteStore

__all__ = ["clock", "service", "store"]  # fixtures


async def tenant_user(
    svc: IdentityService, name: str, password: str, project: str, role: str = "member"
) -> tuple[str, str]:
    """(user id, project id): a user with `role` on a (new or existing) project."""
    user = await svc.create_user(name, password)
    try:
        p = await svc.create_project(project)
    except Conflict:
        p = await svc.find_project(project)
    await svc.assign_role(p.id, user.id, role)
    return user.id, p.id


# -- bootstrap -------------------------------------------------------------------------


async def test_bootstrap_is_idempotent_and_makes_the_platform_admin(
    service: IdentityService,
) -> None:
    again = await service.bootstrap(ADMIN_PASSWORD)
    assert again.admin_project_id == await service.admin_project_id()
    assert sorted(again.role_ids) == ["admin", "member", "reader"]
    assert [r.name for r in await service.list_roles()] == ["admin", "member", "reader"]
    assert [u.name for u in await service.list_users()] == ["admin"]
    assert [p.name for p in await service.list_projects()] == ["admin"]
    token, principal = await service.authenticate("admin", ADMIN_PASSWORD, "admin")
    assert principal.platform_admin and principal.roles == ("admin",)
    validated = await service.validate_token(token)
    assert validated == principal
    # Unscoped, the same user is not the platform admin.
    _, unscoped = await service.authenticate("admin", ADMIN_PASSWORD)
    assert unscoped.project_id is None and not unscoped.platform_admin


async def test_bootstrap_on_a_second_server_shares_roles_and_resets_a_changed_password(
    service: IdentityService, store: SQLiteStore, tmp_path: Path, clock: FakeClock
) -> None:
    old_token, _ = await service.authenticate("admin", ADMIN_PASSWORD, "admin")
    other = make_service(store, tmp_path / "data", clock)
    result = await other.bootstrap("a-new-admin-password")
    assert result.role_ids == {r.name: r.id for r in await service.list_roles()}
    assert await service.validate_token(old_token) is None  # the reset revoked it
    with pytest.raises(Unauthorized):
        await service.authenticate("admin", ADMIN_PASSWORD, "admin")
    _, principal = await service.authenticate("admin", "a-new-admin-password", "admin")
    assert principal.platform_admin


async def test_bootstrap_without_a_password_keeps_the_admin_as_it_is(
    service: IdentityService, store: SQLiteStore, tmp_path: Path
) -> None:
    token, _ = await service.authenticate("admin", ADMIN_PASSWORD, "admin")
    restarted = make_service(store, tmp_path / "data")
    result = await restarted.bootstrap(None)
    assert result.admin_project_id == await service.admin_project_id()
    assert await restarted.validate_token(token) is not None  # nothing was reset
    fresh_store = SQLiteStore(tmp_path / "fresh.db")
    try:
        with pytest.raises(BadRequest):
            await make_service(fresh_store, tmp_path / "fresh").bootstrap(None)
    finally:
        await fresh_store.close()


async def test_an_unbootstrapped_store_has_no_roles(store: SQLiteStore, tmp_path: Path) -> None:
    svc = make_service(store, tmp_path / "data")
    with pytest.raises(Exception, match="not bootstrapped"):
        await svc.list_roles()


# -- users and projects ---------------------------------------------------------------------


async def test_user_lifecycle(service: IdentityService) -> None:
    project = await service.create_project("acme")
    alice = await service.create_user(
        "alice", "s3cret!", email="a@example.com", default_project_id=project.id
    )
    assert len(alice.id) == 32 and int(alice.id, 16) >= 0
    assert await service.get_user(alice.id) == alice
    assert await service.find_user("alice") == alice
    assert [u.name for u in await service.list_users(name="alice")] == ["alice"]
    renamed = await service.update_user(alice.id, name="alicia", description="d", email="")
    assert (renamed.name, renamed.description, renamed.email) == ("alicia", "d", None)
    assert (await service.find_user("alicia")).id == alice.id
    with pytest.raises(NotFound):
        await service.find_user("alice")
    await service.create_user("alice", "another")  # the old name is free again
    with pytest.raises(Conflict):
        await service.update_user(alice.id, name="alice")
    await service.delete_user(alice.id)
    for lookup in (service.get_user(alice.id), service.find_user("alicia")):
        with pytest.raises(NotFound):
            await lookup
    with pytest.raises(NotFound):
        await service.delete_user(alice.id)


@pytest.mark.parametrize(
    "name",
    ["", " padded", "padded ", "tab\there", "nul\0", "x" * 256, "system:kube-scheduler", 42],
)
async def test_bad_user_names_are_refused(service: IdentityService, name: Any) -> None:
    with pytest.raises(BadRequest):
        await service.create_user(name, "password")


@pytest.mark.parametrize("password", ["", "x" * 4097, b"bytes"])
async def test_bad_passwords_are_refused(service: IdentityService, password: Any) -> None:
    with pytest.raises(BadRequest):
        await service.create_user("bob", password)
    with pytest.raises(NotFound):
        await service.find_user("bob")


@pytest.mark.parametrize("bad_id", ["../users", "", "ABCDEF" * 6, "0" * 31, "0" * 32 + "/x"])
async def test_malformed_ids_are_not_found(service: IdentityService, bad_id: str) -> None:
    with pytest.raises(NotFound):
        await service.get_user(bad_id)
    with pytest.raises(NotFound):
        await service.get_project(bad_id)
    with pytest.raises(NotFound):
        await service.delete_user(bad_id)


async def test_duplicate_names_conflict(service: IdentityService) -> None:
    await service.create_user("carol", "pw")
    with pytest.raises(Conflict, match="Duplicate entry"):
        await service.create_user("carol", "other")
    await service.create_project("shop")
    with pytest.raises(Conflict):
        await service.create_project("shop")
    other = await service.create_project("other")
    with pytest.raises(Conflict):
        await service.update_project(other.id, name="shop")
    assert len(await service.list_users(name="carol")) == 1


async def test_concurrent_creates_of_one_name_on_two_servers_exactly_one_wins(
    service: IdentityService, store: SQLiteStore, tmp_path: Path
) -> None:
    second = make_service(store, tmp_path / "data")
    for round_ in range(5):
        name = f"racer{round_}"
        results = await asyncio.gather(
            service.create_user(name, "pw-one"),
            second.create_user(name, "pw-two"),
            return_exceptions=True,
        )
        winners = [r for r in results if not isinstance(r, BaseException)]
        losers = [r for r in results if isinstance(r, BaseException)]
        assert len(winners) == 1 and len(losers) == 1 and isinstance(losers[0], Conflict)
        assert (await service.find_user(name)).id == winners[0].id
        assert len(await service.list_users(name=name)) == 1
        projects = await asyncio.gather(
            service.create_project(name), second.create_project(name), return_exceptions=True
        )
        assert sum(isinstance(p, Conflict) for p in projects) == 1


async def test_a_second_server_on_the_same_store_and_keys_sees_every_change(
    service: IdentityService, store: SQLiteStore, tmp_path: Path, clock: FakeClock
) -> None:
    peer = make_service(store, tmp_path / "data", clock)
    user_id, acme = await tenant_user(service, "vera", "pw", "acme")
    token, principal = await peer.authenticate("vera", "pw", "acme")
    assert await service.validate_token(token) == principal
    await service.assign_role(acme, user_id, "reader")
    validated = await peer.validate_token(token)
    assert validated is not None and validated.roles == ("member", "reader")
    await service.revoke_token(token)
    assert await peer.validate_token(token) is None
    token, _ = await service.authenticate("vera", "pw", "acme")
    await peer.delete_user(user_id)
    assert await service.validate_token(token) is None


async def test_admin_project_cannot_be_deleted_renamed_or_disabled(
    service: IdentityService,
) -> None:
    admin_id = await service.admin_project_id()
    assert admin_id is not None
    with pytest.raises(Forbidden):
        await service.delete_project(admin_id)
    with pytest.raises(Forbidden):
        await service.update_project(admin_id, name="root")
    with pytest.raises(Forbidden):
        await service.update_project(admin_id, enabled=False)
    updated = await service.update_project(admin_id, description="the platform")
    assert updated.description == "the platform"


# -- role assignments -------------------------------------------------------------------------


async def test_role_assignments(service: IdentityService) -> None:
    dave_id, acme = await tenant_user(service, "dave", "pw", "acme", "member")
    globex = (await service.create_project("globex")).id
    await service.assign_role(acme, dave_id, "member")  # idempotent
    await service.assign_role(acme, dave_id, "reader")
    await service.assign_role(globex, dave_id, "admin")
    assert [r.name for r in await service.roles_for(acme, dave_id)] == ["member", "reader"]
    assert await service.has_role(globex, dave_id, "admin")
    assert not await service.has_role(globex, dave_id, "member")
    mine = await service.list_role_assignments(user_id=dave_id)
    assert sorted((a.project_id, a.role_name) for a in mine) == sorted(
        [(acme, "member"), (acme, "reader"), (globex, "admin")]
    )
    on_acme = await service.list_role_assignments(project_id=acme)
    assert {(a.user_id, a.role_name) for a in on_acme} == {(dave_id, "member"), (dave_id, "reader")}
    assert len(await service.list_role_assignments(role="admin")) == 2  # dave and the admin
    assert [p.name for p in await service.projects_for_user(dave_id)] == ["acme", "globex"]
    await service.unassign_role(acme, dave_id, "reader")
    with pytest.raises(NotFound):
        await service.unassign_role(acme, dave_id, "reader")
    with pytest.raises(NotFound):
        await service.assign_role(acme, dave_id, "superuser")
    with pytest.raises(NotFound):
        await service.assign_role(acme, "0" * 32, "member")
    with pytest.raises(NotFound):
        await service.assign_role("0" * 32, dave_id, "member")
    # Deleting a project or a user takes their assignments along.
    await service.delete_project(globex)
    assert await service.list_role_assignments(project_id=globex) == []
    await service.delete_user(dave_id)
    assert await service.list_role_assignments(user_id=dave_id) == []
    assert await service.list_role_assignments(project_id=acme) == []


# -- authentication ---------------------------------------------------------------------


async def test_every_login_failure_is_the_same_unauthorized(service: IdentityService) -> None:
    await tenant_user(service, "erin", "right-password", "acme")
    await service.create_project("empty")
    await service.create_user("nopass", None)
    disabled = await service.create_user("frank", "pw")
    await service.update_user(disabled.id, enabled=False)
    closed = await service.create_project("closed")
    await service.assign_role(closed.id, (await service.find_user("erin")).id, "member")
    await service.update_project(closed.id, enabled=False)
    attempts = [
        ("erin", "wrong-password", None),
        ("erin", "", None),
        ("nobody", "right-password", None),
        ("nopass", "", None),
        ("frank", "pw", None),
        ("erin", "right-password", "no-such-project"),
        ("erin", "right-password", "empty"),  # exists, but erin holds no role there
        ("erin", "right-password", "closed"),  # disabled
    ]
    messages = set()
    for user, password, project in attempts:
        with pytest.raises(Unauthorized) as failure:
            await service.authenticate(user, password, project)
        messages.add(str(failure.value) if project is None else "project")
    assert len(messages) == 2  # one message for credentials, one for the scope
    _, principal = await service.authenticate("erin", "right-password", "acme")
    assert (principal.user_name, principal.project_name, principal.roles) == (
        "erin",
        "acme",
        ("member",),
    )
    assert principal.tenant == "acme" and not principal.project_admin
    assert (principal.expires_at - principal.issued_at).total_seconds() == pytest.approx(3600)


class CountingHasher(argon2.PasswordHasher):
    """A real argon2id hasher that records which hashes it verified against."""

    def __init__(self) -> None:
        base = fast_hasher()
        super().__init__(
            time_cost=base.time_cost,
            memory_cost=base.memory_cost,
            parallelism=base.parallelism,
            type=argon2.Type.ID,
        )
        self.verified: list[str] = []

    def verify(self, hash: str | bytes, password: str | bytes) -> Literal[True]:
        self.verified.append(hash if isinstance(hash, str) else hash.decode())
        return super().verify(hash, password)


async def test_unknown_user_costs_one_argon2_verification_like_a_wrong_password(
    store: SQLiteStore, tmp_path: Path
) -> None:
    hasher = CountingHasher()
    svc = make_service(store, tmp_path / "data", password_hasher=hasher)
    await svc.bootstrap(ADMIN_PASSWORD)
    real = await svc.create_user("grace", "pw")
    await svc.create_user("nopass", None)
    cost = []
    for user in ("grace", "nobody", "nopass"):
        hasher.verified.clear()
        with pytest.raises(Unauthorized):
            await svc.authenticate(user, "guess")
        assert len(hasher.verified) == 1, user
        cost.append(argon2.extract_parameters(hasher.verified[0]))
    assert hasher.verified[0] != real.password_hash  # a dummy, not anyone's hash
    assert cost[0] == cost[1] == cost[2]  # same time, memory and parallelism


async def test_default_password_hashing_is_argon2id_and_memory_hard(
    store: SQLiteStore, tmp_path: Path
) -> None:
    hasher = default_hasher()
    assert hasher.type is argon2.Type.ID and hasher.memory_cost >= 19 * 1024
    svc = IdentityService(store, tmp_path / "data")  # the real default parameters
    user = await svc.create_user("heidi", "correct horse")
    assert user.password_hash is not None and user.password_hash.startswith("$argon2id$")
    assert argon2.extract_parameters(user.password_hash).memory_cost == hasher.memory_cost
    assert await svc.passwords.verify(user.password_hash, "correct horse")
    assert not await svc.passwords.verify(user.password_hash, "wrong horse")
    with pytest.raises(ValueError):
        IdentityService(store, tmp_path / "data", password_hasher=argon2.PasswordHasher(
            type=argon2.Type.I))  # fmt: skip


async def test_a_hash_with_old_parameters_is_upgraded_on_login(
    service: IdentityService, store: SQLiteStore, tmp_path: Path
) -> None:
    user = await service.create_user("ivan", "pw")
    stronger = argon2.PasswordHasher(
        type=argon2.Type.ID, time_cost=2, memory_cost=16384, parallelism=1
    )
    upgraded_service = make_service(store, tmp_path / "data", password_hasher=stronger)
    await upgraded_service.authenticate("ivan", "pw")
    stored = (await service.get_user(user.id)).password_hash
    assert stored is not None and stored != user.password_hash
    assert argon2.extract_parameters(stored).memory_cost == 16384
    await upgraded_service.authenticate("ivan", "pw")  # still the same password


async def test_default_project_scope_and_rescoping(
    service: IdentityService, clock: FakeClock
) -> None:
    judy_id, acme = await tenant_user(service, "judy", "pw", "acme")
    _, globex = await tenant_user(service, "judy-helper", "pw", "globex")
    await service.assign_role(globex, judy_id, "reader")
    await service.update_user(judy_id, default_project_id=acme)
    _, default_scoped = await service.password_login("pw", user_name="judy")
    assert default_scoped.project_id == acme
    unscoped_token, unscoped = await service.password_login(
        "pw", user_id=judy_id, default_scope=False
    )
    assert unscoped.project_id is None and unscoped.roles == ()
    clock.advance(60)
    token, rescoped = await service.rescope(unscoped_token, project_name="globex")
    assert (rescoped.project_id, rescoped.roles) == (globex, ("reader",))
    assert rescoped.expires_at == unscoped.expires_at  # rescoping does not extend the lifetime
    assert rescoped.methods == ("password", "token")
    assert rescoped.audit_ids[1] == unscoped.audit_ids[0]
    assert await service.validate_token(token) == rescoped
    with pytest.raises(Unauthorized):
        await service.rescope(unscoped_token, project_name="admin")
    with pytest.raises(Unauthorized):
        await service.rescope("garbage", project_id=acme)


# -- token validity -------------------------------------------------------------------------


async def test_tokens_expire(store: SQLiteStore, tmp_path: Path, clock: FakeClock) -> None:
    svc = make_service(store, tmp_path / "data", clock, token_ttl=120)
    await svc.bootstrap(ADMIN_PASSWORD)
    token, principal = await svc.authenticate("admin", ADMIN_PASSWORD, "admin")
    assert (principal.expires_at - principal.issued_at).total_seconds() == pytest.approx(120)
    clock.advance(119)
    assert await svc.validate_token(token) is not None
    clock.advance(2)
    assert await svc.validate_token(token) is None
    with pytest.raises(Unauthorized):
        await svc.rescope(token)
    with pytest.raises(NotFound):
        await svc.revoke_token(token)


async def test_user_deletion_revokes_tokens(service: IdentityService) -> None:
    user_id, _ = await tenant_user(service, "kim", "pw", "acme")
    scoped, _ = await service.authenticate("kim", "pw", "acme")
    unscoped, _ = await service.authenticate("kim", "pw")
    await service.delete_user(user_id)
    assert await service.validate_token(scoped) is None
    assert await service.validate_token(unscoped) is None
    # A new user of the same name gets a new id; the old tokens stay dead.
    await tenant_user(service, "kim", "pw", "acme")
    assert await service.validate_token(scoped) is None


async def test_password_change_revokes_tokens(service: IdentityService) -> None:
    user_id, _ = await tenant_user(service, "leo", "old-pw", "acme")
    before, _ = await service.authenticate("leo", "old-pw", "acme")
    with pytest.raises(Unauthorized):
        await service.set_password(user_id, "new-pw", original_password="not-the-old-one")
    assert await service.validate_token(before) is not None
    await service.set_password(user_id, "new-pw", original_password="old-pw")
    assert await service.validate_token(before) is None
    with pytest.raises(Unauthorized):
        await service.authenticate("leo", "old-pw", "acme")
    after, _ = await service.authenticate("leo", "new-pw", "acme")
    assert await service.validate_token(after) is not None
    # An admin reset through update_user revokes too.
    await service.update_user(user_id, password="reset-pw")
    assert await service.validate_token(after) is None
    assert await service.validate_token((await service.authenticate("leo", "reset-pw"))[0])


async def test_role_removal_revokes_the_tokens_of_that_project_only(
    service: IdentityService,
) -> None:
    user_id, acme = await tenant_user(service, "mia", "pw", "acme")
    _, globex = await tenant_user(service, "mia-2", "pw", "globex")
    await service.assign_role(globex, user_id, "member")
    await service.assign_role(acme, user_id, "reader")
    on_acme, _ = await service.authenticate("mia", "pw", "acme")
    on_globex, _ = await service.authenticate("mia", "pw", "globex")
    unscoped, _ = await service.authenticate("mia", "pw")
    # Mia keeps `member` on acme, yet tokens issued with the removed role are revoked.
    await service.unassign_role(acme, user_id, "reader")
    assert await service.validate_token(on_acme) is None
    assert await service.validate_token(on_globex) is not None
    assert await service.validate_token(unscoped) is not None
    fresh, principal = await service.authenticate("mia", "pw", "acme")
    assert principal.roles == ("member",)
    assert await service.validate_token(fresh) is not None


async def test_roles_are_read_live_and_a_token_without_any_role_is_invalid(
    service: IdentityService,
) -> None:
    user_id, acme = await tenant_user(service, "nina", "pw", "acme")
    token, principal = await service.authenticate("nina", "pw", "acme")
    assert principal.roles == ("member",)
    await service.assign_role(acme, user_id, "admin")
    validated = await service.validate_token(token)
    assert validated is not None and validated.roles == ("admin", "member")
    assert validated.project_admin and not validated.platform_admin


async def test_disabling_the_user_or_project_or_deleting_the_project_invalidates(
    service: IdentityService,
) -> None:
    user_id, acme = await tenant_user(service, "olga", "pw", "acme")
    token, _ = await service.authenticate("olga", "pw", "acme")
    await service.update_project(acme, enabled=False)
    assert await service.validate_token(token) is None
    await service.update_project(acme, enabled=True)
    assert await service.validate_token(token) is not None
    await service.update_user(user_id, enabled=False)
    assert await service.validate_token(token) is None
    await service.update_user(user_id, enabled=True)
    assert await service.validate_token(token) is None  # disabling revoked it for good
    token, _ = await service.authenticate("olga", "pw", "acme")
    await service.delete_project(acme)
    assert await service.validate_token(token) is None


async def test_revoking_one_token_revokes_it_and_the_tokens_rescoped_from_it(
    service: IdentityService,
) -> None:
    await tenant_user(service, "pat", "pw", "acme")
    first, _ = await service.authenticate("pat", "pw")
    second, _ = await service.authenticate("pat", "pw")
    child, _ = await service.rescope(first, project_name="acme")
    grandchild, _ = await service.rescope(child)
    await service.revoke_token(child)
    assert await service.validate_token(child) is None
    assert await service.validate_token(first) is not None
    assert await service.validate_token(grandchild) is not None  # its chain starts at `first`
    await service.revoke_token(first)
    for token in (first, grandchild):
        assert await service.validate_token(token) is None
    assert await service.validate_token(second) is not None
    with pytest.raises(NotFound):
        await service.revoke_token(first)


async def test_revoke_user_tokens(service: IdentityService) -> None:
    user_id, acme = await tenant_user(service, "quinn", "pw", "acme")
    token, _ = await service.authenticate("quinn", "pw", "acme")
    await service.revoke_user_tokens(user_id, "0" * 32)  # another project: no effect
    assert await service.validate_token(token) is not None
    await service.revoke_user_tokens(user_id, acme)
    assert await service.validate_token(token) is None
    with pytest.raises(NotFound):
        await service.revoke_user_tokens("not-an-id")


def tampered(token: str) -> list[str]:
    def flip(i: int) -> str:
        c = token[i]
        return token[:i] + ("A" if c != "A" else "B") + token[i + 1 :]

    return [
        flip(0),  # version byte
        flip(15),  # timestamp / iv
        flip(len(token) // 2),  # ciphertext
        flip(len(token) - 2),  # hmac
        token[:-1],
        token + "A",
        token[: len(token) // 2],
        "",
        "not a token",
        "é" * 40,
        "A" * 5000,
    ]


async def test_tampered_or_foreign_tokens_are_invalid(
    service: IdentityService, store: SQLiteStore, tmp_path: Path
) -> None:
    token, _ = await service.authenticate("admin", ADMIN_PASSWORD, "admin")
    for bad in tampered(token):
        assert await service.validate_token(bad) is None, bad
    # Same store, but another key repository: its tokens are not ours.
    foreign = make_service(store, tmp_path / "elsewhere")
    foreign_token, _ = await foreign.authenticate("admin", ADMIN_PASSWORD, "admin")
    assert await service.validate_token(foreign_token) is None
    assert await foreign.validate_token(foreign_token) is not None


async def test_pruning_forgets_only_revocations_that_can_no_longer_match(
    service: IdentityService, clock: FakeClock
) -> None:
    user_id, _ = await tenant_user(service, "rita", "pw", "acme")
    token, _ = await service.authenticate("rita", "pw", "acme")
    await service.revoke_token(token)
    await service.revoke_user_tokens(user_id)
    assert await service.prune_revocations() == 0
    assert await service.validate_token(token) is None
    clock.advance(service.token_ttl + PRUNE_MARGIN + 1)
    assert await service.prune_revocations() == 2  # the token has expired meanwhile
    assert (await service.store.range("/identity/revoked/")).kvs == []


async def test_revocation_events_are_pruned_in_the_background_and_per_user(
    service: IdentityService, clock: FakeClock
) -> None:
    user_id, _ = await tenant_user(service, "ursula", "pw", "acme")
    await service.revoke_user_tokens(user_id)
    clock.advance(service.token_ttl + PRUNE_MARGIN + 1)
    await service.revoke_user_tokens(user_id)  # prunes the user's stale event as it goes
    events = (await service.store.range(f"/identity/revoked/users/{user_id}/")).kvs
    assert len(events) == 1
    token, _ = await service.authenticate("ursula", "pw", "acme")
    await service.revoke_token(token)
    clock.advance(service.token_ttl + PRUNE_MARGIN + 1)
    task = asyncio.create_task(service.run_maintenance(interval=0.05))
    try:
        async with asyncio.timeout(30):
            while (await service.store.range("/identity/revoked/")).kvs:
                await asyncio.sleep(0.05)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


# -- secrets at rest and in logs ----------------------------------------------------------------


async def test_the_store_and_logs_never_hold_a_password_or_a_token(
    service: IdentityService, store: SQLiteStore, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    passwords = ["Pw-for-sam-1", "Pw-for-sam-2", "Pw-for-tess"]
    sam_id, _ = await tenant_user(service, "sam", passwords[0], "acme")
    await tenant_user(service, "tess", passwords[2], "acme")
    tokens = [(await service.authenticate("sam", passwords[0], "acme"))[0]]
    await service.set_password(sam_id, passwords[1], original_password=passwords[0])
    tokens.append((await service.authenticate("sam", passwords[1], "acme"))[0])
    await service.revoke_token(tokens[1])
    with pytest.raises(Unauthorized):
        await service.authenticate("tess", "a-wrong-Guess", "acme")
    secrets = [*passwords, ADMIN_PASSWORD, "a-wrong-Guess", *tokens]
    stored = b"".join(p.read_bytes() for p in tmp_path.glob("state.db*") if p.is_file())
    assert stored and b"$argon2id$" in stored
    dump = b"".join(kv.value for kv in (await store.range("/identity/")).kvs)
    for secret in secrets:
        assert secret.encode() not in stored, secret
        assert secret.encode() not in dump, secret
        assert secret not in caplog.text, secret
    assert "identity: issued a token" in caplog.text  # the logs do say what happened
