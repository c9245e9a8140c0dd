"""The tenant boundary, end to end with kubectl: what works inside a tenant, what never
crosses, lists filtered, the platform policy, and ownership labels."""

from __future__ import annotations

import json
import os
import subprocess
import time

import pytest

from .conftest import Kubectl, Platform, eventually, forbidden, kubectl_denied

CM = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}, "data": {"k": "v"}}


def can(kubectl: Kubectl, *args: str) -> bool:
    return kubectl("auth", "can-i", *args, check=False).stdout.strip() == "yes"


@pytest.fixture(scope="package")
def acme_ns(platform: Platform) -> str:
    """A namespace alice (acme admin) made, with a deployment and a configmap in it."""
    alice = platform.login("alice")
    alice("create", "namespace", "shop")
    eventually(lambda: can(alice, "create", "deployments", "-n", "shop"), "acme bindings")
    alice("create", "deployment", "web", "--image=registry.local/nginx", "-n", "shop")
    alice("create", "configmap", "settings", "--from-literal=a=b", "-n", "shop")
    return "shop"


@pytest.fixture(scope="package")
def globex_ns(platform: Platform) -> str:
    carol = platform.login("carol")
    carol("create", "namespace", "factory")
    eventually(lambda: can(carol, "create", "configmaps", "-n", "factory"), "globex bindings")
    carol("create", "configmap", "plans", "--from-literal=a=b", "-n", "factory")
    return "factory"


def test_tenant_admin_works_in_own_namespace(platform: Platform, acme_ns: str) -> None:
    alice = platform.login("alice")
    ns = json.loads(alice("get", "namespace", acme_ns, "-o", "json").stdout)
    assert ns["metadata"]["labels"]["hypernetes.io/tenant"] == "acme"
    assert alice("get", "deployment", "web", "-n", acme_ns, "-o", "name").stdout.strip() == (
        "deployment.apps/web"
    )
    alice("create", "role", "cm-reader", "--verb=get,list", "--resource=configmaps", "-n", acme_ns)
    alice("create", "rolebinding", "bob-cm", "--role=cm-reader", "--user=bob", "-n", acme_ns)
    # Escalation rules still apply: alice cannot grant what she does not hold.
    result = alice("create", "role", "nodes", "--verb=get", "--resource=nodes", "-n", acme_ns,
                   check=False)  # fmt: skip
    assert "attempting to grant RBAC permissions not currently held" in kubectl_denied(result)
    alice("delete", "rolebinding", "bob-cm", "-n", acme_ns)
    alice("delete", "role", "cm-reader", "-n", acme_ns)
    # A tenant admin deletes the tenant's namespaces; a reader may not.
    alice("create", "namespace", "scratch")
    bob = platform.login("bob")
    refused = bob("delete", "namespace", "scratch", check=False)
    assert 'User "bob" cannot delete resource "namespaces"' in kubectl_denied(refused)
    alice("delete", "namespace", "scratch")  # waits until it is gone


def test_reader_can_only_read(platform: Platform, acme_ns: str) -> None:
    bob = platform.login("bob")
    names = bob("get", "configmaps", "-n", acme_ns, "-o", "name").stdout.split()
    assert "configmap/settings" in names
    bob("get", "deployment", "web", "-n", acme_ns)
    result = bob("create", "configmap", "nope", "--from-literal=a=b", "-n", acme_ns, check=False)
    assert 'cannot create resource "configmaps"' in kubectl_denied(result)
    result = bob("delete", "deployment", "web", "-n", acme_ns, check=False)
    assert 'cannot delete resource "deployments"' in kubectl_denied(result)
    assert bob("get", "secrets", "-n", acme_ns, check=False).returncode != 0


def test_lists_are_filtered_to_the_tenant(platform: Platform, acme_ns: str, globex_ns: str) -> None:
    alice, carol = platform.login("alice"), platform.login("carol")
    everything = json.loads(platform.admin("get", "namespaces", "-o", "json").stdout)["items"]
    for user, tenant, ns in ((alice, "acme", acme_ns), (carol, "globex", globex_ns)):
        owned = {
            f"namespace/{n['metadata']['name']}"
            for n in everything
            if n["metadata"].get("labels", {}).get("hypernetes.io/tenant") == tenant
        }
        listed = user("get", "namespaces", "-o", "name").stdout.split()
        assert f"namespace/{ns}" in listed and set(listed) == owned
    all_cms = carol("get", "configmaps", "-A", "-o", "jsonpath={..metadata.namespace}").stdout
    assert set(all_cms.split()) == {globex_ns}
    assert carol("get", "tenants", "-o", "name").stdout.split() == ["tenant.hypernetes.io/globex"]
    assert sorted(carol("get", "users", "-o", "name").stdout.split()) == [
        "user.hypernetes.io/carol",
        "user.hypernetes.io/dave",
    ]
    # Networks (each tenant may have a default one, made by the network controller).
    listed = json.loads(alice("get", "networks", "-o", "json").stdout)["items"]
    assert {n["spec"]["tenant"] for n in listed} <= {"acme"}
    every = json.loads(platform.admin("get", "networks", "-o", "json").stdout)["items"]
    assert sorted(n["metadata"]["name"] for n in listed) == sorted(
        n["metadata"]["name"] for n in every if n["spec"].get("tenant") == "acme"
    )
    # The admin sees everything.
    names = {n["metadata"]["name"] for n in everything}
    assert {acme_ns, globex_ns, "default", "kube-system"} <= names


CROSS = [  # (method, path, expected message fragment)
    ("GET", "/api/v1/namespaces/shop", 'cannot get resource "namespaces"'),
    ("DELETE", "/api/v1/namespaces/shop", 'cannot delete resource "namespaces"'),
    ("GET", "/api/v1/namespaces/shop/configmaps", 'cannot list resource "configmaps"'),
    ("GET", "/api/v1/namespaces/shop/configmaps?watch=true", "cannot watch resource"),
    ("GET", "/api/v1/namespaces/shop/configmaps/settings", 'cannot get resource "configmaps"'),
    ("DELETE", "/api/v1/namespaces/shop/configmaps/settings", "cannot delete resource"),
    ("DELETE", "/api/v1/namespaces/shop/configmaps", "cannot deletecollection resource"),
    ("GET", "/apis/apps/v1/namespaces/shop/deployments/web", "cannot get resource"),
    ("GET", "/apis/apps/v1/namespaces/shop/deployments/web/scale", '"deployments/scale"'),
    ("GET", "/api/v1/namespaces/shop/secrets", "cannot list resource"),
    ("GET", "/apis/hypernetes.io/v1/tenants/acme", 'cannot get resource "tenants"'),
    ("GET", "/apis/hypernetes.io/v1/users/alice", 'cannot get resource "users"'),
    ("GET", "/apis/rbac.authorization.k8s.io/v1/namespaces/shop/rolebindings", "cannot list"),
]


@pytest.mark.parametrize(("method", "path", "fragment"), CROSS)
def test_cross_tenant_reads_and_deletes_are_forbidden(
    platform: Platform, acme_ns: str, globex_ns: str, method: str, path: str, fragment: str
) -> None:
    carol = platform.login("carol")
    message = forbidden(carol.api(method, path))
    assert fragment in message and 'User "carol"' in message


def test_cross_tenant_writes_are_forbidden(platform: Platform, acme_ns: str) -> None:
    carol = platform.login("carol")
    cm_path = f"/api/v1/namespaces/{acme_ns}/configmaps"
    assert "cannot create resource" in forbidden(carol.api("POST", cm_path, CM))
    update = {**CM, "metadata": {"name": "settings"}}
    assert "cannot update resource" in forbidden(carol.api("PUT", f"{cm_path}/settings", update))
    patch = carol.api("PATCH", f"{cm_path}/settings", {"data": {"x": "y"}},
                      "application/merge-patch+json")  # fmt: skip
    assert "cannot patch resource" in forbidden(patch)
    label = {"metadata": {"labels": {"hypernetes.io/tenant": "globex"}}}
    ns_patch = carol.api("PATCH", f"/api/v1/namespaces/{acme_ns}", label,
                         "application/merge-patch+json")  # fmt: skip
    assert "cannot patch resource" in forbidden(ns_patch)
    # kubectl reports the same denials.
    for args in (
        ("get", "configmap", "settings", "-n", acme_ns),
        ("delete", "namespace", acme_ns),
        ("label", "namespace", acme_ns, "x=y"),
        ("create", "configmap", "intruder", "--from-literal=a=b", "-n", acme_ns),
        ("scale", "deployment", "web", "--replicas=3", "-n", acme_ns),
        ("get", "pods", "-n", acme_ns),
    ):
        assert 'User "carol"' in kubectl_denied(carol(*args, check=False))
    # Nothing changed.
    cm = json.loads(platform.admin("get", "configmap", "settings", "-n", acme_ns,
                                   "-o", "json").stdout)  # fmt: skip
    assert cm["data"] == {"a": "b"}


def test_missing_and_foreign_objects_are_denied_alike(platform: Platform, acme_ns: str) -> None:
    """403 whether another tenant's namespace exists or not: no oracle for its names."""
    carol = platform.login("carol")
    exists = forbidden(carol.api("GET", f"/api/v1/namespaces/{acme_ns}/pods"))
    missing = forbidden(carol.api("GET", "/api/v1/namespaces/no-such-ns/pods"))
    assert exists.replace(acme_ns, "N") == missing.replace("no-such-ns", "N")


def test_watch_is_filtered_to_the_tenant(platform: Platform, acme_ns: str, globex_ns: str) -> None:
    carol = platform.login("carol")
    proc = subprocess.Popen(
        ["kubectl", "get", "configmaps", "-A", "--watch", "-o", "name", "--request-timeout=4s"],
        env={**os.environ, "KUBECONFIG": str(carol.kubeconfig)},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        time.sleep(1.5)  # let the watch start, so what follows arrives as events
        platform.admin("create", "configmap", "w-acme", "--from-literal=a=b", "-n", acme_ns)
        platform.admin("create", "configmap", "w-globex", "--from-literal=a=b", "-n", globex_ns)
        out, _ = proc.communicate(timeout=30)
    finally:
        proc.kill()
        proc.wait()
    seen = set(out.split())
    assert "configmap/w-globex" in seen and "configmap/plans" in seen
    assert not any(name in seen for name in ("configmap/w-acme", "configmap/settings"))


def test_boundary_holds_under_cluster_admin_binding(
    platform: Platform, acme_ns: str, globex_ns: str
) -> None:
    admin = platform.admin
    admin("create", "clusterrolebinding", "too-broad", "--clusterrole=cluster-admin",
          "--group=hypernetes:tenant:globex")  # fmt: skip
    try:
        dave = platform.login("dave")
        assert can(dave, "list", "nodes")  # RBAC now says yes to everything...
        for method, path, fragment in CROSS:
            assert fragment in forbidden(dave.api(method, path))  # ...the boundary still holds
        # `kubectl auth can-i` answers for the boundary too.
        assert not can(dave, "get", "configmaps", "-n", acme_ns)
        assert not can(dave, "list", "clusterrolebindings")
        assert can(dave, "delete", "configmaps", "-n", globex_ns)
        assert "not available to tenants" in forbidden(
            dave.api("GET", "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings")
        )
        cr = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
              "metadata": {"name": "mine"}, "rules": []}  # fmt: skip
        message = forbidden(dave.api("POST", "/apis/rbac.authorization.k8s.io/v1/clusterroles", cr))
        assert "read-only for tenants" in message
        tenant = {"apiVersion": "hypernetes.io/v1", "kind": "Tenant", "metadata": {"name": "x"}}
        assert "managed by the platform admin" in forbidden(
            dave.api("POST", "/apis/hypernetes.io/v1/tenants", tenant)
        )
        assert "managed by the platform admin" in forbidden(
            dave.api("DELETE", "/apis/hypernetes.io/v1/tenants/globex")
        )
        # Platform objects the policy shows tenants are readable (RBAC permitting).
        assert dave.api("GET", "/api/v1/nodes").code == 200
        assert dave.api("GET", "/apis/rbac.authorization.k8s.io/v1/clusterroles").code == 200
        assert dave.api("GET", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions").code == (
            200
        )
        assert "not available to tenants" in forbidden(dave.api("GET", "/api/v1/persistentvolumes"))
        # Lists stay filtered.
        assert dave("get", "namespaces", "-o", "name").stdout.split() == [f"namespace/{globex_ns}"]
        assert dave("get", "tenants", "-o", "name").stdout.split() == [
            "tenant.hypernetes.io/globex"
        ]
    finally:
        admin("delete", "clusterrolebinding", "too-broad")


def test_service_accounts_are_bounded_by_their_namespace_tenant(
    platform: Platform, acme_ns: str, globex_ns: str
) -> None:
    admin = platform.admin
    account = ("get", "serviceaccount", "default", "-n", acme_ns)
    eventually(lambda: admin(*account, check=False).returncode == 0, "the service account")
    token = admin("create", "token", "default", "-n", acme_ns).stdout.strip()
    robot = platform.with_token(token, "robot")
    admin("create", "clusterrolebinding", "robots-rule", "--clusterrole=cluster-admin",
          "--group=system:serviceaccounts")  # fmt: skip
    try:
        assert robot.api("GET", f"/api/v1/namespaces/{acme_ns}/configmaps").code == 200
        message = forbidden(robot.api("GET", f"/api/v1/namespaces/{globex_ns}/configmaps"))
        assert 'User "system:serviceaccount:shop:default"' in message
        assert 'not in tenant "acme"' in message
        listed = robot("get", "configmaps", "-A", "-o", "jsonpath={..metadata.namespace}").stdout
        assert set(listed.split()) == {acme_ns}
    finally:
        admin("delete", "clusterrolebinding", "robots-rule")


def test_namespace_ownership_label(platform: Platform, acme_ns: str) -> None:
    alice = platform.login("alice")
    # A tenant principal cannot give a namespace to another tenant, nor take the label off.
    move = alice("label", "namespace", acme_ns, "hypernetes.io/tenant=globex", "--overwrite",
                 check=False)  # fmt: skip
    assert "can only be changed by the platform admin" in kubectl_denied(move)
    drop = alice("label", "namespace", acme_ns, "hypernetes.io/tenant-", check=False)
    assert "can only be changed by the platform admin" in kubectl_denied(drop)
    manifest = json.dumps({"apiVersion": "v1", "kind": "Namespace", "metadata": {
        "name": "smuggled", "labels": {"hypernetes.io/tenant": "globex"}}})  # fmt: skip
    smuggle = alice("create", "-f", "-", input=manifest, check=False)
    assert 'must be "acme", the tenant of the creator' in kubectl_denied(smuggle)
    # Other labels are fine.
    alice("label", "namespace", acme_ns, "team=web")
    # The admin gives a namespace to a tenant by labelling it.
    gift = json.dumps({"apiVersion": "v1", "kind": "Namespace", "metadata": {
        "name": "gift", "labels": {"hypernetes.io/tenant": "acme"}}})  # fmt: skip
    platform.admin("create", "-f", "-", input=gift)
    eventually(lambda: "namespace/gift" in alice("get", "ns", "-o", "name").stdout, "the gift")
    eventually(lambda: can(alice, "create", "configmaps", "-n", "gift"), "bindings in gift")
    platform.admin("label", "namespace", "gift", "hypernetes.io/tenant=globex", "--overwrite")
    assert "namespace/gift" not in alice("get", "ns", "-o", "name").stdout
    assert 'not in tenant "acme"' in forbidden(alice.api("GET", "/api/v1/namespaces/gift"))
    platform.admin("delete", "namespace", "gift", "--wait=false")


def test_networks_of_other_tenants_are_out_of_reach(platform: Platform, globex_ns: str) -> None:
    admin = platform.admin
    net = "/apis/hypernetes.io/v1/networks/globex-default"
    eventually(lambda: admin("get", "network", "globex-default", check=False).returncode == 0,
               "the default network of globex")  # fmt: skip
    carol, alice = platform.login("carol"), platform.login("alice")
    assert carol.api("GET", net).code == 200
    assert 'not in tenant "acme"' in forbidden(alice.api("GET", net))
    assert 'not in tenant "acme"' in forbidden(alice.api("DELETE", net))
    patch = alice.api("PATCH", net, {"metadata": {"labels": {"x": "y"}}},
                      "application/merge-patch+json")  # fmt: skip
    assert 'not in tenant "acme"' in forbidden(patch)
    assert 'not in tenant "acme"' in forbidden(
        alice.api("GET", "/apis/hypernetes.io/v1/networks/no-such-network")
    )


def test_rules_review_is_narrowed_by_the_boundary(
    platform: Platform, acme_ns: str, globex_ns: str
) -> None:
    carol = platform.login("carol")

    def rules_in(namespace: str) -> dict[str, object]:
        body = {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectRulesReview",
                "spec": {"namespace": namespace}}  # fmt: skip
        resp = carol.api("POST", "/apis/authorization.k8s.io/v1/selfsubjectrulesreviews", body)
        assert resp.code == 201, resp.body
        return dict(resp.body["status"])

    foreign = rules_in(acme_ns)
    assert foreign["resourceRules"] == [] and foreign["incomplete"] is True
    assert f'"{acme_ns}" is not in tenant "globex"' in str(foreign["evaluationError"])
    own = rules_in(globex_ns)
    granted = own["resourceRules"]
    assert isinstance(granted, list)
    assert any({"configmaps", "*"} & set(r.get("resources", [])) for r in granted)
    assert own["incomplete"] is True
    # kubectl shows the same: nothing listed for the other tenant's namespace.
    listed = carol("auth", "can-i", "--list", "-n", acme_ns).stdout
    assert "configmaps" not in listed and "deployments" not in listed


def test_can_i_agrees_with_the_quota_guard(platform: Platform, acme_ns: str) -> None:
    """Access reviews answer with the whole authorizer chain, not RBAC alone: a tenant
    user that RBAC lets write quotas is still refused by the quota guard, and told so."""
    alice = platform.login("alice")
    platform.admin("create", "role", "quota-writer", "--verb=create,update,delete",
                   "--resource=resourcequotas", "-n", acme_ns)  # fmt: skip
    platform.admin("create", "rolebinding", "alice-quota", "--role=quota-writer",
                   "--user=alice", "-n", acme_ns)  # fmt: skip
    try:
        answer = alice("auth", "can-i", "create", "resourcequotas", "-n", acme_ns, check=False)
        assert answer.stdout.startswith("no - ")  # kubectl prints the denial's reason
        assert "only the platform admin may create resource quotas" in answer.stdout
        refused = alice("create", "quota", "mine", "--hard=pods=100", "-n", acme_ns, check=False)
        assert "only the platform admin may create resource quotas" in kubectl_denied(refused)
        # RBAC's own grant is real: the same review for configmaps still says yes.
        assert can(alice, "create", "configmaps", "-n", acme_ns)
    finally:
        platform.admin("delete", "rolebinding", "alice-quota", "-n", acme_ns)
        platform.admin("delete", "role", "quota-writer", "-n", acme_ns)
