"""The Keystone v3 HTTP API, mounted under /identity, driven with aiohttp's client."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from tests.auth.test_identity_helpers import (
    ADMIN_PASSWORD,
    Served,
    clock,
    password_auth,
    served,
    service,
    store,
)

from hypernetes.auth.identity import IdentityService

__all__ = ["clock", "served", "service", "store"]  # fixtures


async def admin_token(served: Served) -> str:
    return (await served.login("admin", ADMIN_PASSWORD, "admin"))[0]


async def make_user(
    served: Served, token: str, name: str, password: str, project_id: str, role_id: str
) -> str:
    status, body, _ = await served.request(
        "POST", "/v3/users", token, json={"user": {"name": name, "password": password}}
    )
    assert status == 201, body
    user_id: str = body["user"]["id"]
    path = f"/v3/projects/{project_id}/users/{user_id}/roles/{role_id}"
    assert (await served.request("PUT", path, token))[0] == 204
    return user_id


async def make_project(served: Served, token: str, name: str) -> str:
    status, body, _ = await served.request(
        "POST", "/v3/projects", token, json={"project": {"name": name, "description": "t"}}
    )
    assert status == 201, body
    project_id: str = body["project"]["id"]
    return project_id


async def role_ids(served: Served, token: str) -> dict[str, str]:
    status, body, _ = await served.request("GET", "/v3/roles", token)
    assert status == 200
    return {r["name"]: r["id"] for r in body["roles"]}


def assert_error(status: int, body: Any, expected: int, title: str) -> None:
    assert status == expected, body
    assert body["error"]["code"] == expected and body["error"]["title"] == title
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]


# -- discovery --------------------------------------------------------------------------


async def test_version_documents_have_absolute_links_under_the_mount(served: Served) -> None:
    for path in ("", "/"):
        status, body, _ = await served.request("GET", path)
        assert status == 300
        (version,) = body["versions"]["values"]
        assert version["id"].startswith("v3.") and version["status"] == "stable"
        assert version["links"] == [{"rel": "self", "href": f"{served.base}/v3/"}]
    for path in ("/v3", "/v3/"):
        status, body, _ = await served.request("GET", path)
        assert status == 200
        assert body["version"]["links"][0]["href"] == f"{served.base}/v3/"
        assert body["version"]["media-types"][0]["type"].startswith("application/vnd.openstack")
    # The links follow the Host the client used.
    _, body, _ = await served.request("GET", "/v3", headers={"Host": "id.example:8443"})
    assert body["version"]["links"][0]["href"] == "http://id.example:8443/identity/v3/"


# -- tokens ----------------------------------------------------------------------------------


async def test_password_login_returns_subject_token_and_keystone_token_body(
    served: Served,
) -> None:
    token, body = await served.login("admin", ADMIN_PASSWORD, "admin")
    assert token and len(token) < 255
    t = body["token"]
    assert t["methods"] == ["password"]
    assert t["user"]["name"] == "admin" and t["user"]["domain"] == {
        "id": "default",
        "name": "Default",
    }
    assert t["project"]["name"] == "admin" and t["project"]["domain"]["id"] == "default"
    assert [r["name"] for r in t["roles"]] == ["admin"]
    assert t["expires_at"].endswith("Z") and t["issued_at"] < t["expires_at"]
    assert len(t["audit_ids"]) == 1
    (identity,) = t["catalog"]
    assert identity["type"] == "identity"
    assert {e["url"] for e in identity["endpoints"]} == {served.base}
    # Unscoped and catalog-less.
    status, body, headers = await served.request(
        "POST", "/v3/auth/tokens?nocatalog", json=password_auth("admin", ADMIN_PASSWORD)
    )
    assert status == 201 and "project" not in body["token"] and "catalog" not in body["token"]
    assert headers["X-Subject-Token"]


async def test_login_by_user_id_and_project_id_and_by_domain_name(served: Served) -> None:
    admin = await admin_token(served)
    _, me, _ = await served.request(
        "GET", "/v3/auth/tokens", admin, headers={"X-Subject-Token": admin}
    )
    user_id, project_id = me["token"]["user"]["id"], me["token"]["project"]["id"]
    by_id = {
        "auth": {
            "identity": {
                "methods": ["password"],
                "password": {"user": {"id": user_id, "password": ADMIN_PASSWORD}},
            },
            "scope": {"project": {"id": project_id}},
        }
    }
    status, body, _ = await served.request("POST", "/v3/auth/tokens", json=by_id)
    assert status == 201 and body["token"]["project"]["id"] == project_id
    by_domain_name = password_auth("admin", ADMIN_PASSWORD, "admin")
    by_domain_name["auth"]["identity"]["password"]["user"]["domain"] = {"name": "Default"}
    assert (await served.request("POST", "/v3/auth/tokens", json=by_domain_name))[0] == 201
    other_domain = password_auth("admin", ADMIN_PASSWORD)
    other_domain["auth"]["identity"]["password"]["user"]["domain"] = {"id": "elsewhere"}
    status, body, _ = await served.request("POST", "/v3/auth/tokens", json=other_domain)
    assert_error(status, body, 401, "Unauthorized")


async def test_failed_logins_are_401_in_keystone_form(served: Served) -> None:
    await served.service.create_user("uma", "right")
    for auth in (
        password_auth("uma", "wrong"),
        password_auth("nobody", "right"),
        password_auth("uma", "right", "no-such-project"),
        password_auth("uma", "right", "admin"),  # no role there
    ):
        status, body, headers = await served.request("POST", "/v3/auth/tokens", json=auth)
        assert_error(status, body, 401, "Unauthorized")
        assert headers["WWW-Authenticate"] == f'Keystone uri="{served.base}"'
        assert "X-Subject-Token" not in headers
    domain_scope = password_auth("uma", "right")
    domain_scope["auth"]["scope"] = {"domain": {"id": "default"}}
    status, body, _ = await served.request("POST", "/v3/auth/tokens", json=domain_scope)
    assert_error(status, body, 401, "Unauthorized")


@pytest.mark.parametrize(
    "payload",
    [
        b"{not json",
        b"\xff\xfe",
        b"[]",
        b'{"auth": "x"}',
        b'{"auth": {}}',
        b'{"auth": {"identity": {"methods": ["password"]}}}',
        b'{"auth": {"identity": {"methods": ["password"], "password": {"user": {}}}}}',
        b'{"auth": {"identity": {"methods": ["token"], "token": {}}}}',
        b'{"auth": {"identity": {"methods": ["password"], "password": {"user": {"name": 5}}}}}',
    ],
)
async def test_malformed_auth_requests_are_400(served: Served, payload: bytes) -> None:
    status, body, _ = await served.request(
        "POST", "/v3/auth/tokens", data=payload, headers={"Content-Type": "application/json"}
    )
    assert_error(status, body, 400, "Bad Request")


async def test_validate_head_and_revoke_tokens(served: Served) -> None:
    admin = await admin_token(served)
    token, _ = await served.login("admin", ADMIN_PASSWORD)
    subject = {"X-Subject-Token": token}
    status, body, headers = await served.request("GET", "/v3/auth/tokens", admin, headers=subject)
    assert status == 200 and headers["X-Subject-Token"] == token
    assert body["token"]["user"]["name"] == "admin"
    assert (await served.request("HEAD", "/v3/auth/tokens", admin, headers=subject))[0] == 200
    # A token validates itself.
    assert (await served.request("GET", "/v3/auth/tokens", token, headers=subject))[0] == 200
    assert (await served.request("DELETE", "/v3/auth/tokens", token, headers=subject))[0] == 204
    status, body, _ = await served.request("GET", "/v3/auth/tokens", admin, headers=subject)
    assert_error(status, body, 404, "Not Found")
    assert (await served.request("HEAD", "/v3/auth/tokens", admin, headers=subject))[0] == 404
    # The revoked token no longer authenticates anything.
    status, body, _ = await served.request("GET", "/v3/roles", token)
    assert_error(status, body, 401, "Unauthorized")
    status, body, _ = await served.request(
        "GET", "/v3/auth/tokens", admin, headers={"X-Subject-Token": token[:-3] + "abc"}
    )
    assert_error(status, body, 404, "Not Found")


async def test_rescoping_with_the_token_method(served: Served) -> None:
    unscoped, _ = await served.login("admin", ADMIN_PASSWORD)
    rescope: dict[str, Any] = {
        "auth": {
            "identity": {"methods": ["token"], "token": {"id": unscoped}},
            "scope": {"project": {"name": "admin", "domain": {"id": "default"}}},
        }
    }
    status, body, headers = await served.request("POST", "/v3/auth/tokens", json=rescope)
    assert status == 201 and body["token"]["project"]["name"] == "admin"
    assert body["token"]["methods"] == ["password", "token"]
    assert headers["X-Subject-Token"] != unscoped
    rescope["auth"]["identity"]["token"]["id"] = "bogus"
    status, body, _ = await served.request("POST", "/v3/auth/tokens", json=rescope)
    assert_error(status, body, 401, "Unauthorized")


async def test_requests_without_or_with_a_bad_x_auth_token_are_401(served: Served) -> None:
    for path in ("/v3/users", "/v3/projects", "/v3/roles", "/v3/auth/projects",
                 "/v3/role_assignments", "/v3/domains/default", "/v3/auth/tokens"):  # fmt: skip
        for token in (None, "garbage"):
            status, body, _ = await served.request("GET", path, token)
            assert_error(status, body, 401, "Unauthorized")
    status, body, _ = await served.request("POST", "/v3/users", json={"user": {"name": "x"}})
    assert_error(status, body, 401, "Unauthorized")


async def test_unknown_routes_and_methods_get_keystone_errors(served: Served) -> None:
    admin = await admin_token(served)
    status, body, _ = await served.request("GET", "/v3/nothing-here", admin)
    assert_error(status, body, 404, "Not Found")
    status, body, headers = await served.request("POST", "/v3/roles", admin, json={})
    assert status == 405 and body["error"]["code"] == 405 and "GET" in headers["Allow"]


# -- users, projects, roles, domains ------------------------------------------------------------


async def test_user_and_project_crud(served: Served) -> None:
    admin = await admin_token(served)
    project_id = await make_project(served, admin, "acme")
    status, body, _ = await served.request(
        "POST",
        "/v3/users",
        admin,
        json={
            "user": {
                "name": "victor",
                "password": "pw",
                "email": "v@x",
                "domain_id": "default",
                "default_project_id": project_id,
            }
        },
    )
    assert status == 201
    user = body["user"]
    assert user["name"] == "victor" and user["domain_id"] == "default" and user["enabled"]
    assert user["links"]["self"] == f"{served.base}/v3/users/{user['id']}"
    assert "password" not in user and "password_hash" not in user
    status, body, _ = await served.request("GET", f"/v3/users/{user['id']}", admin)
    assert status == 200 and body["user"]["email"] == "v@x"
    status, body, _ = await served.request("GET", "/v3/users?name=victor", admin)
    assert [u["id"] for u in body["users"]] == [user["id"]]
    assert body["links"]["self"].endswith("/v3/users")
    status, body, _ = await served.request(
        "PATCH", f"/v3/users/{user['id']}", admin,
        json={"user": {"name": "viktor", "email": None, "enabled": False}},
    )  # fmt: skip
    assert status == 200 and body["user"]["name"] == "viktor" and "email" not in body["user"]
    assert not body["user"]["enabled"]
    status, body, _ = await served.request("GET", "/v3/users?enabled=false", admin)
    assert [u["name"] for u in body["users"]] == ["viktor"]
    status, body, _ = await served.request(
        "POST", "/v3/users", admin, json={"user": {"name": "viktor", "password": "pw"}}
    )
    assert_error(status, body, 409, "Conflict")
    assert (await served.request("DELETE", f"/v3/users/{user['id']}", admin))[0] == 204
    status, body, _ = await served.request("GET", f"/v3/users/{user['id']}", admin)
    assert_error(status, body, 404, "Not Found")
    status, body, _ = await served.request("DELETE", f"/v3/users/{user['id']}", admin)
    assert_error(status, body, 404, "Not Found")

    status, body, _ = await served.request("GET", f"/v3/projects/{project_id}", admin)
    assert status == 200 and body["project"]["name"] == "acme" and not body["project"]["is_domain"]
    status, body, _ = await served.request(
        "PATCH", f"/v3/projects/{project_id}", admin, json={"project": {"description": "ACME"}}
    )
    assert status == 200 and body["project"]["description"] == "ACME"
    status, body, _ = await served.request("GET", "/v3/projects", admin)
    assert sorted(p["name"] for p in body["projects"]) == ["acme", "admin"]
    status, body, _ = await served.request(
        "POST", "/v3/projects", admin, json={"project": {"name": "acme"}}
    )
    assert_error(status, body, 409, "Conflict")
    assert (await served.request("DELETE", f"/v3/projects/{project_id}", admin))[0] == 204
    status, body, _ = await served.request("GET", f"/v3/projects/{project_id}", admin)
    assert_error(status, body, 404, "Not Found")
    admin_project = await served.service.admin_project_id()
    status, body, _ = await served.request("DELETE", f"/v3/projects/{admin_project}", admin)
    assert_error(status, body, 403, "Forbidden")


@pytest.mark.parametrize(
    ("path", "payload"),
    [
        ("/v3/users", b"{oops"),
        ("/v3/users", b'{"name": "flat"}'),
        ("/v3/users", b'{"user": {}}'),
        ("/v3/users", b'{"user": {"name": "x", "password": 7}}'),
        ("/v3/users", b'{"user": {"name": "x", "enabled": "yes"}}'),
        ("/v3/users", b'{"user": {"name": "x", "domain_id": "other"}}'),
        ("/v3/users", b'{"user": {"name": "system:admin", "password": "p"}}'),
        ("/v3/users", b'{"user": {"name": "x", "password": ""}}'),
        ("/v3/projects", b'{"project": {"name": ""}}'),
        ("/v3/projects", b'{"project": {"name": "p", "is_domain": true}}'),
        ("/v3/projects", b"null"),
    ],
)
async def test_bad_bodies_are_400(served: Served, path: str, payload: bytes) -> None:
    admin = await admin_token(served)
    status, body, _ = await served.request("POST", path, admin, data=payload)
    assert_error(status, body, 400, "Bad Request")


async def test_roles_and_the_default_domain(served: Served) -> None:
    admin = await admin_token(served)
    roles = await role_ids(served, admin)
    assert sorted(roles) == ["admin", "member", "reader"]
    status, body, _ = await served.request("GET", f"/v3/roles/{roles['reader']}", admin)
    assert status == 200 and body["role"]["name"] == "reader"
    status, body, _ = await served.request("GET", "/v3/roles?name=member", admin)
    assert [r["name"] for r in body["roles"]] == ["member"]
    status, body, _ = await served.request("GET", "/v3/domains/default", admin)
    assert status == 200 and body["domain"]["name"] == "Default" and body["domain"]["enabled"]
    status, body, _ = await served.request("GET", "/v3/domains", admin)
    assert [d["id"] for d in body["domains"]] == ["default"]
    status, body, _ = await served.request("GET", "/v3/domains/other", admin)
    assert_error(status, body, 404, "Not Found")
    status, body, _ = await served.request("GET", "/v3/roles/" + "0" * 32, admin)
    assert_error(status, body, 404, "Not Found")


# -- assignments and authorization ----------------------------------------------------------------


async def test_role_assignment_api(served: Served) -> None:
    admin = await admin_token(served)
    roles = await role_ids(served, admin)
    acme = await make_project(served, admin, "acme")
    wendy = await make_user(served, admin, "wendy", "pw", acme, roles["member"])
    grant = f"/v3/projects/{acme}/users/{wendy}/roles"
    assert (await served.request("PUT", f"{grant}/{roles['reader']}", admin))[0] == 204
    assert (await served.request("PUT", f"{grant}/{roles['reader']}", admin))[0] == 204
    assert (await served.request("HEAD", f"{grant}/{roles['reader']}", admin))[0] == 204
    status, body, _ = await served.request("GET", grant, admin)
    assert status == 200 and sorted(r["name"] for r in body["roles"]) == ["member", "reader"]
    status, body, _ = await served.request(
        "GET", f"/v3/role_assignments?scope.project.id={acme}&include_names", admin
    )
    assert status == 200
    found = {(a["user"]["name"], a["role"]["name"], a["scope"]["project"]["name"])
             for a in body["role_assignments"]}  # fmt: skip
    assert found == {("wendy", "member", "acme"), ("wendy", "reader", "acme")}
    assert body["role_assignments"][0]["links"]["assignment"].startswith(served.base + "/v3/")
    status, body, _ = await served.request(
        "GET", f"/v3/role_assignments?user.id={wendy}&role.id={roles['reader']}", admin
    )
    assert [(a["user"]["id"], a["role"]["id"]) for a in body["role_assignments"]] == [
        (wendy, roles["reader"])
    ]
    assert (await served.request("DELETE", f"{grant}/{roles['reader']}", admin))[0] == 204
    status, body, _ = await served.request("DELETE", f"{grant}/{roles['reader']}", admin)
    assert_error(status, body, 404, "Not Found")
    assert (await served.request("HEAD", f"{grant}/{roles['reader']}", admin))[0] == 404
    status, body, _ = await served.request("PUT", f"{grant}/{'0' * 32}", admin)
    assert_error(status, body, 404, "Not Found")
    status, body, _ = await served.request(
        "PUT", f"/v3/projects/{acme}/users/{'0' * 32}/roles/{roles['reader']}", admin
    )
    assert_error(status, body, 404, "Not Found")


async def test_a_project_admin_manages_only_their_own_project(served: Served) -> None:
    admin = await admin_token(served)
    roles = await role_ids(served, admin)
    acme = await make_project(served, admin, "acme")
    globex = await make_project(served, admin, "globex")
    xena = await make_user(served, admin, "xena", "pw", acme, roles["admin"])
    yuri = await make_user(served, admin, "yuri", "pw", acme, roles["member"])
    zoe = await make_user(served, admin, "zoe", "pw", globex, roles["member"])
    boss, _ = await served.login("xena", "pw", "acme")

    # Inside acme: grant, check, list, revoke, see its users.
    assert (
        await served.request(
            "PUT", f"/v3/projects/{acme}/users/{zoe}/roles/{roles['reader']}", boss
        )
    )[0] == 204
    assert (
        await served.request(
            "HEAD", f"/v3/projects/{acme}/users/{zoe}/roles/{roles['reader']}", boss
        )
    )[0] == 204
    status, body, _ = await served.request(
        "GET", f"/v3/role_assignments?scope.project.id={acme}", boss
    )
    assert status == 200 and {a["user"]["id"] for a in body["role_assignments"]} == {
        xena,
        yuri,
        zoe,
    }
    assert (await served.request("GET", f"/v3/users/{yuri}", boss))[0] == 200
    assert (await served.request("GET", f"/v3/projects/{acme}", boss))[0] == 200
    assert (
        await served.request(
            "DELETE", f"/v3/projects/{acme}/users/{zoe}/roles/{roles['reader']}", boss
        )
    )[0] == 204

    # Outside acme, or beyond assignments: 403, whether or not the target exists.
    admin_project = await served.service.admin_project_id()
    forbidden: list[tuple[str, str, Any]] = [
        ("PUT", f"/v3/projects/{globex}/users/{xena}/roles/{roles['admin']}", None),
        ("PUT", f"/v3/projects/{admin_project}/users/{xena}/roles/{roles['admin']}", None),
        ("DELETE", f"/v3/projects/{globex}/users/{zoe}/roles/{roles['member']}", None),
        ("HEAD", f"/v3/projects/{globex}/users/{zoe}/roles/{roles['member']}", None),
        ("GET", f"/v3/projects/{globex}/users/{zoe}/roles", None),
        ("GET", f"/v3/projects/{'0' * 32}/users/{zoe}/roles", None),
        ("GET", f"/v3/role_assignments?scope.project.id={globex}", None),
        ("GET", "/v3/role_assignments", None),
        ("GET", f"/v3/projects/{globex}", None),
        ("GET", f"/v3/users/{zoe}", None),
        ("GET", "/v3/users", None),
        ("GET", "/v3/projects", None),
        ("POST", "/v3/users", {"user": {"name": "sneaky", "password": "pw"}}),
        ("POST", "/v3/projects", {"project": {"name": "sneaky"}}),
        ("PATCH", f"/v3/users/{yuri}", {"user": {"password": "taken-over"}}),
        ("DELETE", f"/v3/users/{yuri}", None),
        ("DELETE", f"/v3/projects/{acme}", None),
        ("PATCH", f"/v3/projects/{acme}", {"project": {"name": "renamed"}}),
    ]
    for method, path, payload in forbidden:
        status, body, _ = await served.request(method, path, boss, json=payload)
        if method == "HEAD":
            assert status == 403, path
        else:
            assert_error(status, body, 403, "Forbidden")
    status, _, _ = await served.request("GET", f"/v3/projects/{globex}/users/{zoe}/roles", admin)
    assert status == 200  # the platform admin may
    assert await served.service.has_role(globex, zoe, "member")


async def test_a_member_sees_only_themselves(served: Served) -> None:
    admin = await admin_token(served)
    roles = await role_ids(served, admin)
    acme = await make_project(served, admin, "acme")
    amy = await make_user(served, admin, "amy", "pw", acme, roles["member"])
    bob = await make_user(served, admin, "bob", "pw", acme, roles["member"])
    token, _ = await served.login("amy", "pw", "acme")
    assert (await served.request("GET", f"/v3/users/{amy}", token))[0] == 200
    assert (await served.request("GET", f"/v3/projects/{acme}", token))[0] == 200
    assert (await served.request("GET", f"/v3/projects/{acme}/users/{amy}/roles", token))[0] == 200
    status, body, _ = await served.request("GET", f"/v3/role_assignments?user.id={amy}", token)
    assert status == 200 and len(body["role_assignments"]) == 1
    status, body, _ = await served.request("GET", "/v3/auth/projects", token)
    assert [p["name"] for p in body["projects"]] == ["acme"]
    status, body, _ = await served.request("GET", f"/v3/users/{amy}/projects", token)
    assert [p["id"] for p in body["projects"]] == [acme]
    for method, path in [
        ("GET", f"/v3/users/{bob}"),
        ("GET", f"/v3/users/{bob}/projects"),
        ("GET", f"/v3/projects/{acme}/users/{bob}/roles"),
        ("PUT", f"/v3/projects/{acme}/users/{amy}/roles/{roles['admin']}"),
        ("GET", f"/v3/role_assignments?scope.project.id={acme}"),
        ("GET", f"/v3/role_assignments?user.id={bob}"),
    ]:
        status, body, _ = await served.request(method, path, token)
        assert_error(status, body, 403, "Forbidden")
    # Validating someone else's token is for the platform admin only.
    bobs, _ = await served.login("bob", "pw", "acme")
    status, body, _ = await served.request(
        "GET", "/v3/auth/tokens", token, headers={"X-Subject-Token": bobs}
    )
    assert_error(status, body, 403, "Forbidden")
    status, body, _ = await served.request(
        "DELETE", "/v3/auth/tokens", token, headers={"X-Subject-Token": bobs}
    )
    assert_error(status, body, 403, "Forbidden")
    assert await served.service.validate_token(bobs) is not None


async def test_self_service_password_change_revokes_tokens(
    served: Served, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    admin = await admin_token(served)
    roles = await role_ids(served, admin)
    acme = await make_project(served, admin, "acme")
    carl = await make_user(served, admin, "carl", "first-Secret", acme, roles["member"])
    dana = await make_user(served, admin, "dana", "pw", acme, roles["member"])
    token, _ = await served.login("carl", "first-Secret", "acme")
    path = f"/v3/users/{carl}/password"
    wrong = {"user": {"password": "second-Secret", "original_password": "not-it"}}
    status, body, _ = await served.request("POST", path, token, json=wrong)
    assert_error(status, body, 401, "Unauthorized")
    status, body, _ = await served.request("POST", path, token, json={"user": {"password": "x"}})
    assert_error(status, body, 400, "Bad Request")
    status, body, _ = await served.request(
        "POST", f"/v3/users/{dana}/password", token,
        json={"user": {"password": "mine-now", "original_password": "pw"}},
    )  # fmt: skip
    assert_error(status, body, 403, "Forbidden")
    right = {"user": {"password": "second-Secret", "original_password": "first-Secret"}}
    status, _, _ = await served.request("POST", path, None, json=right)
    assert status == 401  # a token is needed too
    assert (await served.request("POST", path, token, json=right))[0] == 204
    status, body, _ = await served.request("GET", "/v3/auth/projects", token)
    assert_error(status, body, 401, "Unauthorized")  # the old token died with the old password
    new_token, _ = await served.login("carl", "second-Secret", "acme")
    assert (await served.request("GET", "/v3/auth/projects", new_token))[0] == 200
    for secret in ("first-Secret", "second-Secret", "not-it", token, new_token, ADMIN_PASSWORD):
        assert secret not in caplog.text


async def test_revocation_causes_through_the_api(served: Served) -> None:
    admin = await admin_token(served)
    roles = await role_ids(served, admin)
    acme = await make_project(served, admin, "acme")
    ed = await make_user(served, admin, "ed", "pw", acme, roles["member"])
    await served.request("PUT", f"/v3/projects/{acme}/users/{ed}/roles/{roles['reader']}", admin)

    async def valid(token: str) -> bool:
        status, _, _ = await served.request(
            "HEAD", "/v3/auth/tokens", admin, headers={"X-Subject-Token": token}
        )
        return status == 200

    token, _ = await served.login("ed", "pw", "acme")
    await served.request("DELETE", f"/v3/projects/{acme}/users/{ed}/roles/{roles['reader']}", admin)
    assert not await valid(token)  # role removal
    token, _ = await served.login("ed", "pw", "acme")
    await served.request("PATCH", f"/v3/users/{ed}", admin, json={"user": {"password": "pw2"}})
    assert not await valid(token)  # password reset by the admin
    token, _ = await served.login("ed", "pw2", "acme")
    assert await valid(token)
    await served.request("DELETE", f"/v3/users/{ed}", admin)
    assert not await valid(token)  # user deletion


async def test_service_is_shared_with_the_python_api(served: Served) -> None:
    svc: IdentityService = served.service
    project = await svc.create_project("from-python")
    user = await svc.create_user("py-user", "pw")
    await svc.assign_role(project.id, user.id, "reader")
    token, body = await served.login("py-user", "pw", "from-python")
    assert [r["name"] for r in body["token"]["roles"]] == ["reader"]
    principal = await svc.validate_token(token)
    assert principal is not None and principal.user_id == user.id
