"""The boundary's decisions without a server: the policy table and who is bounded."""

from __future__ import annotations

from pathlib import Path

import pytest

from hypernetes.api import errors
from hypernetes.api.boundary import Boundary
from hypernetes.api.objects import Objects
from hypernetes.auth.principal import Attributes, User
from hypernetes.auth.tenancy import policy
from hypernetes.resources.registry import Registry
from hypernetes.store import SQLiteStore

ACME = User("alice", ("system:authenticated", "hypernetes:tenant:acme"), "id",
            {"hypernetes.io/tenant": ("acme",)})  # fmt: skip


@pytest.mark.parametrize(
    ("verb", "group", "resource", "namespace", "namespaced", "allowed", "owner"),
    [
        ("get", "", "pods", "shop", True, True, "namespace"),
        ("list", "", "pods", "", True, True, ""),
        ("deletecollection", "", "pods", "", True, True, ""),
        ("create", "", "namespaces", "", False, True, ""),
        ("delete", "", "namespaces", "", False, True, "namespace"),
        ("get", "hypernetes.io", "tenants", "", False, True, "tenant"),
        ("update", "hypernetes.io", "tenants", "", False, False, ""),
        ("create", "hypernetes.io", "users", "", False, False, ""),
        ("get", "hypernetes.io", "networks", "", False, True, "network"),
        ("list", "", "nodes", "", False, True, ""),
        ("delete", "", "nodes", "", False, False, ""),
        ("get", "rbac.authorization.k8s.io", "clusterroles", "", False, True, ""),
        ("create", "rbac.authorization.k8s.io", "clusterroles", "", False, False, ""),
        ("list", "rbac.authorization.k8s.io", "clusterrolebindings", "", False, False, ""),
        ("get", "", "persistentvolumes", "", False, False, ""),
        ("create", "authorization.k8s.io", "selfsubjectaccessreviews", "", False, True, ""),
        ("create", "authorization.k8s.io", "subjectaccessreviews", "", False, False, ""),
        ("list", "example.com", "clusterwidgets", "", False, False, ""),
    ],
)  # fmt: skip
def test_policy_table(
    verb: str, group: str, resource: str, namespace: str, namespaced: bool, allowed: bool,
    owner: str,
) -> None:  # fmt: skip
    verdict = policy.decide(verb, group, resource, namespace, "x", namespaced)
    assert (verdict.allowed, verdict.owner_check) == (allowed, owner)
    assert verdict.allowed or verdict.why


async def test_who_is_bounded(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "state.db")
    try:
        registry = Registry()
        objects = Objects(store)
        boundary = Boundary(objects, registry)
        ns_rt = boundary.namespaces_rt
        for name, tenant in (("shop", "acme"), ("factory", "globex"), ("kube-system", None)):
            labels = {"hypernetes.io/tenant": tenant} if tenant else {}
            await objects.create(ns_rt, {"metadata": {"name": name, "labels": labels}})
        await boundary.namespaces.sync()
        pods = registry.get("", "v1", "pods")
        admin = User("root", ("system:masters",), extra={"hypernetes.io/tenant": ("acme",)})
        assert boundary.tenant_of(admin) is None
        assert boundary.tenant_of(ACME) == "acme"
        assert boundary.tenant_of(User("system:serviceaccount:factory:default")) == "globex"
        assert boundary.tenant_of(User("system:serviceaccount:kube-system:x")) is None
        assert boundary.tenant_of(User("system:node:n1", ("system:nodes",))) is None
        # Tenant groups confine too (a certificate with O=hypernetes:tenant:acme, say).
        assert boundary.tenant_of(User("c", ("hypernetes:tenant:acme:reader",))) == "acme"
        both = User("c", ("hypernetes:tenant:acme", "hypernetes:tenant:globex"))
        assert boundary.tenant_of(both) == policy.NO_TENANT
        with pytest.raises(errors.APIError):
            await boundary.check(both, Attributes("get", "", "pods", "", "shop", "p"), pods)
        assert await boundary.check(ACME, Attributes("get", "", "pods", "", "shop", "p"), pods) is (
            False
        )
        with pytest.raises(errors.APIError) as denied:
            await boundary.check(ACME, Attributes("get", "", "pods", "", "factory", "p"), pods)
        assert denied.value.code == 403 and 'not in tenant "acme"' in denied.value.message
        # A namespace the follower has not seen yet is looked up before refusing.
        labelled = {"metadata": {"name": "new", "labels": {"hypernetes.io/tenant": "acme"}}}
        await objects.create(ns_rt, labelled)
        await boundary.check(ACME, Attributes("create", "", "pods", "", "new"), pods)
        keep = await boundary.scope(ACME, ns_rt)
        assert keep is not None
        assert keep({"metadata": {"name": "shop", "labels": {"hypernetes.io/tenant": "acme"}}})
        assert not keep({"metadata": {"name": "factory"}})
        assert await boundary.scope(admin, ns_rt) is None
    finally:
        await store.close()
