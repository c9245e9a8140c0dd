"""`KeystoneProxyIdentity` against our own service acting as the external Keystone,
and the mapping of principals to Kubernetes users."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from tests.auth.test_identity_helpers import (
    ADMIN_PASSWORD,
    FakeClock,
    clock,
    make_tls,
    serve,
    service,
    store,
)

from hypernetes.auth.identity import (
    Identity,
    IdentityService,
    IdentityUnavailable,
    KeystoneProxyIdentity,
    Principal,
)
from hypernetes.auth.identity.kube import TokenAuthenticator, to_user
from hypernetes.auth.principal import MASTERS

__all__ = ["clock", "service", "store"]  # fixtures


@pytest.fixture
async def keystone(service: IdentityService, tmp_path: Path) -> AsyncIterator[tuple[str, Path]]:
    """Our service over HTTPS, standing in for an external Keystone: (base URL, CA file)."""
    context, ca_file = make_tls(tmp_path)
    acme = await service.create_project("acme")
    alice = await service.create_user("alice", "pw")
    await service.assign_role(acme.id, alice.id, "admin")
    runner, base = await serve(service, context)
    yield base, ca_file
    await runner.cleanup()


def trusting(ca_file: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(ca_file))


async def test_proxy_validates_like_the_service_itself(
    service: IdentityService, keystone: tuple[str, Path]
) -> None:
    base, ca_file = keystone
    token, issued = await service.authenticate("alice", "pw", "acme")
    admin, _ = await service.authenticate("admin", ADMIN_PASSWORD, "admin")
    for url in (base, base + "/v3", base + "/v3/"):
        async with KeystoneProxyIdentity(url, ssl_context=trusting(ca_file)) as proxy:
            assert isinstance(proxy, Identity)
            principal = await proxy.validate_token(token)
            assert principal == issued
            assert principal is not None and principal.project_admin
            admin_principal = await proxy.validate_token(admin)
            assert admin_principal is not None and admin_principal.platform_admin
    async with KeystoneProxyIdentity(base, ssl_context=trusting(ca_file)) as proxy:
        await service.revoke_token(token)
        assert await proxy.validate_token(token) is None
        for bad in ("", "garbage", token[:-2], "a\r\nX-Evil: 1", "x" * 9000):
            assert await proxy.validate_token(bad) is None


async def test_proxy_cache_holds_a_result_for_its_lifetime_only(
    service: IdentityService, keystone: tuple[str, Path], clock: FakeClock
) -> None:
    base, ca_file = keystone
    token, _ = await service.authenticate("alice", "pw", "acme")
    proxy = KeystoneProxyIdentity(
        base, ssl_context=trusting(ca_file), cache_seconds=30, clock=clock
    )
    try:
        assert await proxy.validate_token(token) is not None
        await service.revoke_token(token)
        # Within the cache lifetime the revocation is not seen yet (the documented trade-off).
        assert await proxy.validate_token(token) is not None
        clock.advance(31)
        assert await proxy.validate_token(token) is None
    finally:
        await proxy.close()


async def test_proxy_reports_an_unreachable_or_broken_keystone(
    keystone: tuple[str, Path], service: IdentityService, tmp_path: Path
) -> None:
    base, _ = keystone
    token, _ = await service.authenticate("alice", "pw", "acme")
    # Not trusting the server's certificate is not "invalid token": it is "cannot ask".
    async with KeystoneProxyIdentity(base) as untrusted:
        with pytest.raises(IdentityUnavailable):
            await untrusted.validate_token(token)
    async with KeystoneProxyIdentity("http://127.0.0.1:9/v3", timeout=5) as nowhere:
        with pytest.raises(IdentityUnavailable):
            await nowhere.validate_token(token)

    async def broken(request: web.Request) -> web.Response:
        if request.headers["X-Subject-Token"] == "five-hundred":
            return web.Response(status=500)
        return web.json_response({"token": {"nonsense": True}})

    async with fake_keystone(broken) as url, KeystoneProxyIdentity(url) as proxy:
        for answer in ("five-hundred", "nonsense"):
            with pytest.raises(IdentityUnavailable):
                await proxy.validate_token(answer)


def keystone_token(user: str, user_domain: str, project_domain: str | None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "methods": ["password"],
        "user": {"id": "u1", "name": user, "domain": {"id": user_domain, "name": user_domain}},
        "audit_ids": ["a"],
        "expires_at": "2999-01-01T00:00:00.000000Z",
        "issued_at": "2020-01-01T00:00:00.000000Z",
        "roles": [{"id": "r", "name": "admin"}],
    }
    if project_domain is not None:
        body["project"] = {"id": "p1", "name": "admin", "domain": {"id": project_domain}}
    return {"token": body}


async def test_proxy_accepts_only_its_domain(tmp_path: Path) -> None:
    # A stand-in for a multi-domain Keystone: our service has one domain only.
    answers = {
        "other-user-domain": keystone_token("bob", "corp", "default"),
        "other-project-domain": keystone_token("bob", "default", "corp"),
        "reserved-name": keystone_token("system:admin", "default", "default"),
        "fine": keystone_token("bob", "default", "default"),
    }

    async def handler(request: web.Request) -> web.Response:
        assert request.headers["X-Auth-Token"] == request.headers["X-Subject-Token"]
        return web.json_response(answers[request.headers["X-Subject-Token"]])

    async with fake_keystone(handler) as url, KeystoneProxyIdentity(url) as proxy:
        assert await proxy.validate_token("other-user-domain") is None
        assert await proxy.validate_token("other-project-domain") is None
        fine = await proxy.validate_token("fine")
        assert fine is not None and fine.platform_admin and fine.user_name == "bob"
        reserved = await proxy.validate_token("reserved-name")
        assert reserved is not None and to_user(reserved) is None  # never a "system:" user


class fake_keystone:
    """A one-route HTTP server answering GET /v3/auth/tokens with `handler` (a stand-in)."""

    def __init__(self, handler: Any) -> None:
        app = web.Application()
        app.router.add_get("/v3/auth/tokens", handler)
        self.runner = web.AppRunner(app, access_log=None)

    async def __aenter__(self) -> str:
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        return f"http://127.0.0.1:{self.runner.addresses[0][1]}"

    async def __aexit__(self, *exc: object) -> None:
        await self.runner.cleanup()


async def test_principals_map_to_kubernetes_users(
    service: IdentityService, keystone: tuple[str, Path]
) -> None:
    base, ca_file = keystone
    member_token, member = await service.authenticate("alice", "pw", "acme")
    admin_token, _ = await service.authenticate("admin", ADMIN_PASSWORD, "admin")
    unscoped_token, _ = await service.authenticate("alice", "pw")
    async with KeystoneProxyIdentity(base, ssl_context=trusting(ca_file)) as proxy:
        for identity in (service, proxy):
            authenticate = TokenAuthenticator(identity)
            user = await authenticate(member_token)
            assert user is not None
            assert (user.name, user.uid) == ("alice", member.user_id)
            assert set(user.groups) == {
                "system:authenticated",
                "hypernetes:tenant:acme",
                "hypernetes:tenant:acme:admin",
            }
            assert user.extra["hypernetes.io/tenant"] == ("acme",)
            assert not user.is_admin
            admin = await authenticate(admin_token)
            assert admin is not None and admin.is_admin and MASTERS in admin.groups
            unscoped = await authenticate(unscoped_token)
            assert unscoped is not None and unscoped.groups == ("system:authenticated",)
            assert await authenticate("garbage") is None


def test_principal_properties() -> None:
    from datetime import UTC, datetime

    now = datetime.now(UTC)
    p = Principal("u", "n", "p", "acme", ("admin",), now, now)
    assert p.tenant == "acme" and p.project_admin and not p.platform_admin
    unscoped = Principal("u", "n", None, None, ("admin",), now, now)
    assert not unscoped.project_admin and unscoped.tenant is None
