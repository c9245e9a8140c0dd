"""The real keystoneauth1 library against the identity service, over HTTPS on loopback.

keystoneauth1 is synchronous (requests), so it runs in a worker thread while
the service runs on the test's event loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from keystoneauth1 import exceptions, session
from keystoneauth1.access import AccessInfo, AccessInfoV3
from keystoneauth1.identity import Password, v3
from tests.auth.test_identity_helpers import clock, make_tls, serve, service, store

from hypernetes.auth.identity import IdentityService

__all__ = ["clock", "service", "store"]  # fixtures


@dataclass
class TLSServed:
    base: str
    ca_file: Path
    service: IdentityService
    project_id: str
    user_id: str


@pytest.fixture
async def tls_served(service: IdentityService, tmp_path: Path) -> AsyncIterator[TLSServed]:
    context, ca_file = make_tls(tmp_path)
    project = await service.create_project("acme")
    user = await service.create_user("alice", "alice-Secret")
    await service.assign_role(project.id, user.id, "member")
    await service.assign_role(project.id, user.id, "reader")
    runner, base = await serve(service, context)
    yield TLSServed(base, ca_file, service, project.id, user.id)
    await runner.cleanup()


def password_plugin(
    served: TLSServed, password: str = "alice-Secret", include_catalog: bool = True
) -> v3.Password:
    return v3.Password(
        auth_url=served.base + "/v3",
        username="alice",
        password=password,
        user_domain_id="default",
        project_name="acme",
        project_domain_id="default",
        include_catalog=include_catalog,
    )


async def test_v3_password_gets_a_project_scoped_catalogless_token(tls_served: TLSServed) -> None:
    auth = password_plugin(tls_served, include_catalog=False)
    sess = session.Session(auth=auth, verify=str(tls_served.ca_file))

    def run() -> tuple[str | None, AccessInfo]:
        return sess.get_token(), auth.get_access(sess)

    token, access = await asyncio.to_thread(run)
    assert token and access.auth_token == token
    assert isinstance(access, AccessInfoV3)
    assert access.project_scoped and access.project_id == tls_served.project_id
    assert access.project_name == "acme" and access.project_domain_id == "default"
    assert access.user_id == tls_served.user_id and access.username == "alice"
    assert sorted(access.role_names or ()) == ["member", "reader"]
    assert not access.has_service_catalog()
    assert access.will_expire_soon(stale_duration=3700) and not access.will_expire_soon(60)
    principal = await tls_served.service.validate_token(token)
    assert principal is not None and principal.roles == ("member", "reader")


async def test_discovery_from_the_unversioned_url_and_the_catalog(tls_served: TLSServed) -> None:
    auth = Password(  # the generic plugin discovers v3 from the versions document
        auth_url=tls_served.base,
        username="alice",
        password="alice-Secret",
        user_domain_name="Default",
        project_name="acme",
        project_domain_name="Default",
    )
    sess = session.Session(auth=auth, verify=str(tls_served.ca_file))

    def run() -> tuple[str | None, str | None, list[str]]:
        token = sess.get_token()
        endpoint = sess.get_endpoint(service_type="identity", interface="public")
        listed = sess.get(
            "/v3/auth/projects", endpoint_filter={"service_type": "identity", "interface": "public"}
        ).json()
        return token, endpoint, [p["name"] for p in listed["projects"]]

    token, endpoint, projects = await asyncio.to_thread(run)
    assert token and endpoint == tls_served.base
    assert projects == ["acme"]


async def test_wrong_password_and_unknown_user_raise_unauthorized(tls_served: TLSServed) -> None:
    for auth in (
        password_plugin(tls_served, password="wrong"),
        v3.Password(
            auth_url=tls_served.base + "/v3",
            username="mallory",
            password="alice-Secret",
            user_domain_id="default",
        ),
    ):
        sess = session.Session(auth=auth, verify=str(tls_served.ca_file))
        with pytest.raises(exceptions.Unauthorized):
            await asyncio.to_thread(sess.get_token)


async def test_the_server_certificate_is_verified(tls_served: TLSServed) -> None:
    sess = session.Session(auth=password_plugin(tls_served), verify=True)  # system CAs only
    with pytest.raises(exceptions.SSLError):
        await asyncio.to_thread(sess.get_token)


async def test_token_plugin_rescopes_and_revocation_forces_a_new_login(
    tls_served: TLSServed,
) -> None:
    unscoped = v3.Password(
        auth_url=tls_served.base + "/v3",
        username="alice",
        password="alice-Secret",
        user_domain_id="default",
        unscoped=True,
    )
    sess = session.Session(auth=unscoped, verify=str(tls_served.ca_file))
    unscoped_token = await asyncio.to_thread(sess.get_token)
    assert unscoped_token is not None
    principal = await tls_served.service.validate_token(unscoped_token)
    assert principal is not None and principal.project_id is None

    rescoping = v3.Token(
        auth_url=tls_served.base + "/v3",
        token=unscoped_token,
        project_id=tls_served.project_id,
    )
    rescoped_sess = session.Session(auth=rescoping, verify=str(tls_served.ca_file))
    access = await asyncio.to_thread(rescoping.get_access, rescoped_sess)
    assert access.project_id == tls_served.project_id and access.auth_token != unscoped_token

    await tls_served.service.revoke_token(unscoped_token)
    assert await tls_served.service.validate_token(access.auth_token) is None  # same chain
    auth = password_plugin(tls_served)
    sess = session.Session(auth=auth, verify=str(tls_served.ca_file))
    first = await asyncio.to_thread(sess.get_token)
    assert first is not None
    await tls_served.service.revoke_token(first)
    auth.invalidate()
    second = await asyncio.to_thread(sess.get_token)
    assert second and second != first
    assert await tls_served.service.validate_token(second) is not None
