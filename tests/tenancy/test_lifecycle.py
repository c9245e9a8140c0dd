"""Tenants and users over time: role changes, user and tenant deletion, and the
identity API and kubectl as alternative ways in (mirrored both ways)."""

from __future__ import annotations

import json
from pathlib import Path

from hypernetes.api import pki

from .conftest import PASSWORD, Platform, eventually, forbidden, kubectl_denied, request

RBAC = "/apis/rbac.authorization.k8s.io/v1"


def unauthorized(platform: Platform, token: str) -> bool:
    resp = platform.with_token(token, "probe").api("GET", "/api/v1/namespaces")
    return resp.code == 401 and resp.body["reason"] == "Unauthorized"


def test_role_change_takes_effect_at_once(platform: Platform) -> None:
    created = platform.hn("user", "create", "erin", "--tenant", "acme", "--role", "member",
                          "--password-stdin", input=PASSWORD)  # fmt: skip
    assert created.returncode == 0, created.stderr
    erin = platform.login("erin", "acme")
    erin("create", "namespace", "erin-ns")
    eventually(lambda: erin("auth", "can-i", "create", "configmaps", "-n", "erin-ns",
                            check=False).stdout.strip() == "yes", "bindings")  # fmt: skip
    erin("create", "configmap", "one", "--from-literal=a=b", "-n", "erin-ns")
    changed = platform.hn("user", "set-role", "erin", "reader")
    assert changed.returncode == 0, changed.stderr
    # Taking a role away revokes the tokens of the project: the old token is dead now...
    assert unauthorized(platform, erin.token or "")
    # ...and a new one carries the new role from its first request.
    erin = platform.login("erin", "acme")
    erin("get", "configmap", "one", "-n", "erin-ns")
    result = erin("create", "configmap", "two", "--from-literal=a=b", "-n", "erin-ns", check=False)
    assert 'User "erin" cannot create resource "configmaps"' in kubectl_denied(result)
    user = json.loads(platform.admin("get", "user", "erin", "-o", "json").stdout)
    assert user["spec"]["role"] == user["status"]["role"] == "reader"
    # Back to admin: may manage RBAC in the namespace.
    assert platform.hn("user", "set-role", "erin", "admin").returncode == 0
    erin = platform.login("erin", "acme")
    erin("create", "rolebinding", "r", "--clusterrole=view", "--user=bob", "-n", "erin-ns")


def test_disabling_a_user_revokes_their_tokens(platform: Platform) -> None:
    assert platform.hn("user", "create", "gina", "--tenant", "globex", "--role", "member",
                       "--password-stdin", input=PASSWORD).returncode == 0  # fmt: skip
    gina = platform.login("gina", "globex")
    platform.admin("patch", "user", "gina", "--type=merge", "-p", '{"spec":{"enabled":false}}')
    eventually(lambda: unauthorized(platform, gina.token or ""), "gina's token to die")
    refused = platform.with_token("", "anon").api("GET", "/api/v1/namespaces")
    assert refused.code == 401
    assert platform.try_token("gina", "globex") is None  # no login while disabled...
    platform.admin("patch", "user", "gina", "--type=merge", "-p", '{"spec":{"enabled":true}}')
    eventually(lambda: platform.try_token("gina", "globex"), "gina to log in again")
    assert unauthorized(platform, gina.token or "")  # the old token stays revoked


def test_managed_bindings_are_put_back(platform: Platform) -> None:
    carol = platform.login("carol")
    carol("create", "namespace", "kept")
    eventually(lambda: carol("get", "rolebinding", "hypernetes:tenant:reader", "-n", "kept",
                             check=False).returncode == 0, "the reader binding")  # fmt: skip
    carol("delete", "rolebinding", "hypernetes:tenant:reader", "-n", "kept")
    eventually(lambda: carol("get", "rolebinding", "hypernetes:tenant:reader", "-n", "kept",
                             check=False).returncode == 0, "the binding to come back")  # fmt: skip


def test_deleting_a_user_kills_their_token_and_bindings(platform: Platform) -> None:
    assert platform.hn("user", "create", "frank", "--tenant", "acme", "--role", "admin",
                       "--password-stdin", input=PASSWORD).returncode == 0  # fmt: skip
    frank = platform.login("frank", "acme")
    frank("create", "namespace", "frank-ns")
    alice = platform.login("alice")
    eventually(lambda: alice("auth", "can-i", "create", "rolebindings", "-n", "frank-ns",
                             check=False).stdout.strip() == "yes", "bindings")  # fmt: skip
    alice("create", "rolebinding", "frank-edit", "--clusterrole=edit", "--user=frank",
          "--user=bob", "-n", "frank-ns")  # fmt: skip
    alice("create", "rolebinding", "frank-only", "--clusterrole=view", "--user=frank",
          "-n", "frank-ns")  # fmt: skip
    platform.admin("create", "clusterrolebinding", "frank-nodes", "--clusterrole=view",
                   "--user=frank")  # fmt: skip
    deleted = platform.hn("user", "delete", "frank")
    assert deleted.returncode == 0, deleted.stderr
    assert unauthorized(platform, frank.token or "")
    admin = platform.admin

    def unbound() -> bool:
        shared = json.loads(admin("get", "rolebinding", "frank-edit", "-n", "frank-ns",
                                  "-o", "json").stdout)  # fmt: skip
        only = admin("get", "rolebinding", "frank-only", "-n", "frank-ns", check=False)
        cluster = admin("get", "clusterrolebinding", "frank-nodes", check=False)
        return (
            [s["name"] for s in shared["subjects"]] == ["bob"]
            and "NotFound" in only.stderr
            and "NotFound" in cluster.stderr
        )

    eventually(unbound, "frank's bindings to go")
    # The identity user is gone too.
    resp = platform.admin_api("GET", "/identity/v3/users?name=frank")
    assert resp.code == 200 and resp.body["users"] == []


def test_tenant_made_with_kubectl_and_deleted_with_everything(platform: Platform) -> None:
    admin = platform.admin
    admin(
        "create",
        "-f",
        "-",
        input=json.dumps(
            {"apiVersion": "hypernetes.io/v1", "kind": "Tenant", "metadata": {"name": "initech"}}
        ),
    )
    admin("create", "-f", "-", input=json.dumps({
        "apiVersion": "hypernetes.io/v1", "kind": "User", "metadata": {"name": "peter"},
        "spec": {"tenant": "initech", "role": "admin"}}))  # fmt: skip

    def mirrored() -> str:
        user = json.loads(admin("get", "user", "peter", "-o", "json").stdout)
        return str((user.get("status") or {}).get("userID", ""))

    user_id = eventually(mirrored, "peter's identity user")
    # The identity API takes the admin's client certificate; the password never
    # touches an API object.
    resp = platform.admin_api("PATCH", f"/identity/v3/users/{user_id}",
                              {"user": {"password": PASSWORD}})  # fmt: skip
    assert resp.code == 200, resp.body
    assert "password" not in admin("get", "user", "peter", "-o", "json").stdout
    eventually(lambda: admin("get", "clusterrolebinding", "hypernetes:tenant:initech",
                             check=False).returncode == 0, "the tenant's binding")  # fmt: skip
    peter = platform.login("peter", "initech")
    peter("create", "namespace", "initech-ns")
    project = platform.admin_api("GET", "/identity/v3/projects?name=initech").body["projects"]
    assert len(project) == 1 and project[0]["description"] == ""
    admin("patch", "tenant", "initech", "--type=merge", "-p", '{"spec":{"displayName":"Initech"}}')

    def described() -> bool:
        found = platform.admin_api("GET", "/identity/v3/projects?name=initech").body["projects"]
        return bool(found[0]["description"] == "Initech")

    eventually(described, "the project's description to follow the tenant")
    deleted = platform.hn("tenant", "delete", "initech")
    assert deleted.returncode == 0, deleted.stderr
    assert "NotFound" in admin("get", "namespace", "initech-ns", check=False).stderr
    assert "NotFound" in admin("get", "user", "peter", check=False).stderr
    assert platform.admin_api("GET", "/identity/v3/projects?name=initech").body["projects"] == []
    assert unauthorized(platform, peter.token or "")
    assert "NotFound" in admin("get", "clusterrolebinding", "hypernetes:tenant:initech",
                               check=False).stderr  # fmt: skip


def test_identity_api_projects_and_users_appear_as_tenants_and_users(platform: Platform) -> None:
    made = platform.admin_api("POST", "/identity/v3/projects", {"project": {"name": "umbrella"}})
    assert made.code == 201, made.body
    project_id = made.body["project"]["id"]
    admin = platform.admin
    eventually(lambda: admin("get", "tenant", "umbrella", check=False).returncode == 0, "tenant")
    user = platform.admin_api("POST", "/identity/v3/users",
                              {"user": {"name": "alexia", "password": PASSWORD}})  # fmt: skip
    assert user.code == 201, user.body
    roles = {r["name"]: r["id"] for r in platform.admin_api("GET", "/identity/v3/roles")
             .body["roles"]}  # fmt: skip
    grant = f"/identity/v3/projects/{project_id}/users/{user.body['user']['id']}/roles/"
    assert platform.admin_api("PUT", grant + roles["member"]).code == 204

    def mirrored() -> bool:
        got = admin("get", "user", "alexia", "-o", "json", check=False)
        if got.returncode:
            return False
        spec = json.loads(got.stdout)["spec"]
        return bool(spec == {"tenant": "umbrella", "role": "member", "enabled": True})

    eventually(mirrored, "the user to be mirrored")
    alexia = platform.login("alexia", "umbrella")
    assert alexia("get", "tenants", "-o", "name").stdout.split() == [
        "tenant.hypernetes.io/umbrella"
    ]
    # A project deleted through the identity API takes its Tenant (and users) along.
    assert platform.admin_api("DELETE", f"/identity/v3/projects/{project_id}").code == 204
    eventually(lambda: "NotFound" in admin("get", "tenant", "umbrella", check=False).stderr,
               "the tenant to go", timeout=60)  # fmt: skip
    eventually(lambda: "NotFound" in admin("get", "user", "alexia", check=False).stderr,
               "the user to go")  # fmt: skip


def test_tenant_principals_cannot_manage_tenancy_objects(platform: Platform) -> None:
    alice = platform.login("alice")
    user = {"apiVersion": "hypernetes.io/v1", "kind": "User", "metadata": {"name": "mallory"},
            "spec": {"tenant": "acme", "role": "admin"}}  # fmt: skip
    assert "managed by the platform admin" in forbidden(
        alice.api("POST", "/apis/hypernetes.io/v1/users", user)
    )
    patch = alice.api("PATCH", "/apis/hypernetes.io/v1/users/bob", {"spec": {"role": "admin"}},
                      "application/merge-patch+json")  # fmt: skip
    assert "managed by the platform admin" in forbidden(patch)
    crb = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
           "metadata": {"name": "grab"}, "subjects": [{"kind": "User", "name": "alice"}],
           "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                       "name": "cluster-admin"}}  # fmt: skip
    assert "not available to tenants" in forbidden(alice.api("POST", f"{RBAC}/clusterrolebindings",
                                                             crb))  # fmt: skip


def test_user_spec_rules(platform: Platform) -> None:
    admin = platform.admin
    bad = admin("create", "-f", "-", check=False, input=json.dumps({
        "apiVersion": "hypernetes.io/v1", "kind": "User", "metadata": {"name": "ghost"},
        "spec": {"tenant": "nowhere", "role": "member"}}))  # fmt: skip
    assert "spec.tenant" in bad.stderr and "no such tenant" in bad.stderr
    move = admin("patch", "user", "bob", "--type=merge", "-p", '{"spec":{"tenant":"globex"}}',
                 check=False)  # fmt: skip
    assert "spec.tenant" in move.stderr and "field is immutable" in move.stderr
    role = admin("patch", "user", "bob", "--type=merge", "-p", '{"spec":{"role":"owner"}}',
                 check=False)  # fmt: skip
    assert "Unsupported value" in role.stderr or "spec.role" in role.stderr
    reserved = admin(
        "create",
        "-f",
        "-",
        check=False,
        input=json.dumps(
            {"apiVersion": "hypernetes.io/v1", "kind": "Tenant", "metadata": {"name": "admin"}}
        ),
    )
    assert "reserved" in reserved.stderr


def test_identity_api_takes_only_the_admin_certificate(platform: Platform, tmp_path: Path) -> None:
    data = platform.server.data_dir
    ca = pki.read_pair(data / "ca.crt", data / "ca.key")
    crt, key = tmp_path / "t.crt", tmp_path / "t.key"
    pki.write_pair(pki.issue(ca, "bob", organisations=("hypernetes:tenant:acme",), client=True),
                   crt, key)  # fmt: skip
    url = platform.server.url + "/identity/v3/users"
    tenant_cert = request(url, platform.ca, cert=(crt, key))
    assert tenant_cert.code == 401 and tenant_cert.body["error"]["title"] == "Unauthorized"
    assert request(url, platform.ca).code == 401  # no certificate, no token
    assert platform.admin_api("GET", "/identity/v3/users").code == 200
    # A token, when given, is what counts, even beside the admin's certificate.
    bob = platform.token("bob", "acme")
    with_token = request(url, platform.ca, headers={"X-Auth-Token": bob},
                         cert=(data / "admin.crt", data / "admin.key"))  # fmt: skip
    assert with_token.code == 403
