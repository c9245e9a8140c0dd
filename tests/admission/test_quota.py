"""ResourceQuota and tenant-wide quota: enforcement with kube's messages, exact usage under
concurrent creates, recounts after deletions and terminal pods, and quotas tenants cannot
change (multi-tenancy benchmark: block modification of resource quotas)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

import pytest
from tests.admission.conftest import Env, denied, invalid, pod

from hypernetes.client import PODS, ApiError, Client, Config

POLICY = "hypernetes tenant policy: "


@pytest.fixture(scope="module")
def quinn(env: Env) -> str:
    """Tenant `qt` with its admin user `quinn`."""
    env.tenant("qt")
    return env.user("qt", "quinn")


def quota(name: str, ns: str, hard: dict[str, str], **spec: Any) -> dict[str, Any]:
    meta = {"name": name, "namespace": ns}
    return {"apiVersion": "v1", "kind": "ResourceQuota", "metadata": meta,
            "spec": {"hard": hard, **spec}}  # fmt: skip


def create(env: Env, user: str, obj: dict[str, Any], ns: str) -> Any:
    return env.as_user(user, "-n", ns, "create", "-f", "-", input=json.dumps(obj))


def wait_for(check: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.3)


def used(env: Env, ns: str, name: str) -> dict[str, str]:
    return dict(env.get("resourcequota", name, "-n", ns).get("status", {}).get("used") or {})


def test_pod_count_quota_with_kube_message_and_status(env: Env, quinn: str) -> None:
    ns = env.namespace("q-pods", "qt")
    env.apply(quota("pods", ns, {"pods": "2", "count/configmaps": "5"}))
    status = env.get("resourcequota", "pods", "-n", ns)["status"]
    assert status["hard"] == {"pods": "2", "count/configmaps": "5"}
    assert status["used"]["pods"] == "0"
    for name in ("p1", "p2"):
        result = create(env, quinn, pod(name), ns)
        assert result.returncode == 0, result.stderr
    denied(create(env, quinn, pod("p3"), ns),
           'pods "p3" is forbidden: exceeded quota: pods, requested: pods=1, used: pods=2, '
           "limited: pods=2")  # fmt: skip
    assert used(env, ns, "pods")["pods"] == "2"
    # The tenant reads its quota (kubectl get / describe work) ...
    shown = env.as_user(quinn, "-n", ns, "describe", "quota", "pods")
    assert shown.returncode == 0 and "pods" in shown.stdout, shown.stderr
    # ... and gets room back when a pod goes (recounted by the controller).
    assert env.as_user(quinn, "-n", ns, "delete", "pod", "p1", "--wait=false").returncode == 0
    wait_for(lambda: used(env, ns, "pods")["pods"] == "1")
    assert create(env, quinn, pod("p4"), ns).returncode == 0


def test_terminal_pods_do_not_count(env: Env, quinn: str) -> None:
    ns = env.namespace("q-terminal", "qt")
    env.apply(quota("one", ns, {"pods": "1"}))
    assert create(env, quinn, pod("done"), ns).returncode == 0
    denied(create(env, quinn, pod("next"), ns), "exceeded quota: one, requested: pods=1")
    env.admin("-n", ns, "patch", "pod", "done", "--subresource=status", "--type=merge",
              "-p", json.dumps({"status": {"phase": "Succeeded"}}))  # fmt: skip
    wait_for(lambda: used(env, ns, "one")["pods"] == "0")
    assert create(env, quinn, pod("next"), ns).returncode == 0


def test_compute_quota_needs_requests_and_limits_and_bounds_their_sum(env: Env, quinn: str) -> None:
    ns = env.namespace("q-compute", "qt")
    env.apply(quota("compute", ns, {"requests.cpu": "1", "limits.memory": "1Gi",
                                    "requests.ephemeral-storage": "10Gi"}))  # fmt: skip
    denied(create(env, quinn, pod("bare"), ns),
           'pods "bare" is forbidden: failed quota: compute: must specify limits.memory for: '
           "app; requests.cpu for: app")  # fmt: skip
    sized = {"requests": {"cpu": "600m", "ephemeral-storage": "1Gi"},
             "limits": {"memory": "512Mi"}}  # fmt: skip
    assert create(env, quinn, pod("a", resources=sized), ns).returncode == 0
    denied(create(env, quinn, pod("b", resources=sized), ns),
           'pods "b" is forbidden: exceeded quota: compute, requested: requests.cpu=600m, '
           "used: requests.cpu=600m, limited: requests.cpu=1")  # fmt: skip
    smaller = {"requests": {"cpu": "400m"}, "limits": {"memory": "512Mi"}}
    assert create(env, quinn, pod("c", resources=smaller), ns).returncode == 0
    assert used(env, ns, "compute") == {
        "requests.cpu": "1", "limits.memory": "1Gi", "requests.ephemeral-storage": "1Gi"
    }  # fmt: skip


def test_object_counts_and_service_quotas(env: Env, quinn: str) -> None:
    ns = env.namespace("q-count", "qt")
    env.apply(quota("counts", ns, {
        "configmaps": "1", "count/deployments.apps": "1", "services": "3",
        "services.nodeports": "1", "services.loadbalancers": "0", "secrets": "1",
    }))  # fmt: skip
    assert env.create_as(quinn, ns, "configmap", "c1").returncode == 0
    denied(env.create_as(quinn, ns, "configmap", "c2"),
           'configmaps "c2" is forbidden: exceeded quota: counts, requested: configmaps=1, '
           "used: configmaps=1, limited: configmaps=1")  # fmt: skip
    assert env.create_as(quinn, ns, "secret", "generic", "s1").returncode == 0
    denied(
        env.create_as(quinn, ns, "secret", "generic", "s2"),
        "exceeded quota: counts, requested: secrets=1, used: secrets=1, limited: secrets=1",
    )
    image = "--image=registry.local/nginx"
    assert env.create_as(quinn, ns, "deployment", "d1", image).returncode == 0
    denied(env.create_as(quinn, ns, "deployment", "d2", image),
           'deployments.apps "d2" is forbidden: exceeded quota: counts, requested: '
           "count/deployments.apps=1, used: count/deployments.apps=1, limited: "
           "count/deployments.apps=1")  # fmt: skip
    # Node ports and load balancers (the admin may make them; quota still holds).
    svc: dict[str, Any] = {"apiVersion": "v1", "kind": "Service", "metadata": {"namespace": ns},
           "spec": {"selector": {"a": "b"}, "ports": [{"port": 80}]}}  # fmt: skip
    node_port = {**svc, "metadata": {**svc["metadata"], "name": "np"},
                 "spec": {**svc["spec"], "type": "NodePort"}}  # fmt: skip
    env.admin("create", "-f", "-", input=json.dumps(node_port))
    two = {**node_port, "metadata": {**svc["metadata"], "name": "np2"}}
    denied(env.admin("create", "-f", "-", input=json.dumps(two), check=False),
           "exceeded quota: counts, requested: services.nodeports=1, used: "
           "services.nodeports=1, limited: services.nodeports=1")  # fmt: skip
    lb = {**svc, "metadata": {**svc["metadata"], "name": "lb"},
          "spec": {**svc["spec"], "type": "LoadBalancer"}}  # fmt: skip
    denied(env.admin("create", "-f", "-", input=json.dumps(lb), check=False),
           "exceeded quota: counts, requested: services.loadbalancers=1,services.nodeports=1, "
           "used: services.loadbalancers=0,services.nodeports=1, limited: "
           "services.loadbalancers=0,services.nodeports=1")  # fmt: skip


def test_tenants_cannot_change_quotas_even_when_rbac_allows(env: Env, quinn: str) -> None:
    ns = env.namespace("q-guard", "qt")
    env.apply(quota("fixed", ns, {"pods": "1"}))
    env.apply({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
               "metadata": {"name": "quota-editor", "namespace": ns},
               "rules": [{"apiGroups": [""], "resources": ["resourcequotas",
                                                           "resourcequotas/status"],
                          "verbs": ["*"]}]})  # fmt: skip
    env.apply({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
               "metadata": {"name": "quota-editor", "namespace": ns},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                           "name": "quota-editor"},
               "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User",
                             "name": quinn}]})  # fmt: skip
    rule = f"{POLICY}only the platform admin may"
    denied(
        env.create_as(quinn, ns, "quota", "mine", "--hard=pods=100"),
        f"resourcequotas is forbidden: {rule} create resource quotas",
    )
    denied(env.as_user(quinn, "-n", ns, "patch", "quota", "fixed", "-p",
                       json.dumps({"spec": {"hard": {"pods": "100"}}})),
           f'resourcequotas "fixed" is forbidden: {rule} patch resource quotas')  # fmt: skip
    denied(
        env.as_user(quinn, "-n", ns, "delete", "quota", "fixed"),
        f'resourcequotas "fixed" is forbidden: {rule} delete resource quotas',
    )
    denied(
        env.as_user(quinn, "delete", "--raw", f"/api/v1/namespaces/{ns}/resourcequotas"),
        f"resourcequotas is forbidden: {rule} deletecollection resource quotas",
    )
    everywhere = env.as_user(quinn, "delete", "--raw", "/api/v1/resourcequotas")
    assert everywhere.returncode != 0 and "(Forbidden)" in everywhere.stderr, everywhere.stderr
    assert env.get("resourcequota", "fixed", "-n", ns)["spec"]["hard"] == {"pods": "1"}
    listed = env.as_user(quinn, "-n", ns, "get", "quota", "-o", "name")
    assert listed.returncode == 0 and "resourcequota/fixed" in listed.stdout


def test_bad_quantities_are_invalid(env: Env, quinn: str) -> None:
    ns = env.namespace("q-bad", "qt")
    # Out of range or not whole where whole numbers are meant: 422 Invalid.
    for hard, text in (
        ({"requests.cpu": "-1"}, 'spec.hard[requests.cpu]: Invalid value: "-1": must be greater'),
        ({"pods": "1.5"}, 'spec.hard[pods]: Invalid value: "1500m": must be an integer'),
    ):
        result = env.admin("create", "-f", "-", check=False,
                           input=json.dumps(quota("bad", ns, hard)))  # fmt: skip
        invalid(result, f'The ResourceQuota "bad" is invalid: {text}')
    # Not a quantity at all: the body cannot be decoded, 400 BadRequest (as kube).
    result = env.admin("create", "-f", "-", check=False,
                       input=json.dumps(quota("bad", ns, {"requests.cpu": "lots"})))  # fmt: skip
    assert result.returncode != 0 and "(BadRequest)" in result.stderr, result.stderr
    assert "quantities must match the regular expression" in result.stderr
    result = create(env, quinn, pod("badpod", resources={"requests": {"cpu": "-1"}}), ns)
    invalid(result, 'The Pod "badpod" is invalid: spec.containers[0].resources.requests[cpu]')
    tenant = {"apiVersion": "hypernetes.io/v1", "kind": "Tenant", "metadata": {"name": "qbad"},
              "spec": {"quota": {"hard": {"pods": "many"}}}}  # fmt: skip
    result = env.admin("create", "-f", "-", input=json.dumps(tenant), check=False)
    invalid(result, 'The Tenant "qbad" is invalid: spec.quota.hard[pods]: Invalid value: "many"')


# -- concurrency and the tenant-wide quota -------------------------------------------------


def client_for(env: Env, user: str) -> Client:
    ca = (env.server.data_dir / "ca.crt").read_bytes()
    return Client(Config(env.server.url, ca_pem=ca, token=env.tokens[user]))


async def create_many(
    env: Env, user: str, names: list[tuple[str, str]], resources: dict[str, Any] | None = None
) -> list[Any]:
    """Create pods (namespace, name) all at once; each result is the pod or the ApiError."""
    async with client_for(env, user) as client:

        async def one(ns: str, name: str) -> Any:
            try:
                return await client.create(PODS, pod(name, resources=resources), ns)
            except ApiError as exc:
                return exc

        return await asyncio.gather(*(one(ns, name) for ns, name in names))


def test_concurrent_creates_admit_exactly_the_quota(env: Env, quinn: str) -> None:
    ns = env.namespace("q-race", "qt")
    env.apply(quota("race", ns, {"pods": "7"}))
    results = asyncio.run(create_many(env, quinn, [(ns, f"r{i}") for i in range(30)]))
    created = [r for r in results if isinstance(r, dict)]
    refused = [r for r in results if isinstance(r, ApiError)]
    assert len(created) == 7, [str(r) for r in refused]
    assert all(r.code == 403 and "exceeded quota: race" in r.message for r in refused)
    assert len(env.get("pods", "-n", ns)["items"]) == 7
    assert used(env, ns, "race")["pods"] == "7"


def test_tenant_wide_quota_across_namespaces_exact_under_concurrency(env: Env) -> None:
    env.tenant("tq", quota={"pods": "4", "requests.cpu": "10"})
    user = env.user("tq", "tara")
    first, second = env.namespace("tq-a", "tq"), env.namespace("tq-b", "tq")
    env.apply(quota("roomy", first, {"pods": "100"}))  # charged first, given back on refusal
    names = [(first if i % 2 else second, f"t{i}") for i in range(24)]
    cpu = {"requests": {"cpu": "100m"}}
    results = asyncio.run(create_many(env, user, names, cpu))
    created = [r for r in results if isinstance(r, dict)]
    refused = [r for r in results if isinstance(r, ApiError)]
    assert len(created) == 4, [str(r) for r in refused]
    assert all(
        r.code == 403
        and "exceeded quota: tenant/tq, requested: pods=1, used: pods=4, limited: pods=4"
        in r.message
        for r in refused
    ), [r.message for r in refused]
    pods = env.get("pods", "-n", first)["items"] + env.get("pods", "-n", second)["items"]
    assert len(pods) == 4
    status = env.get("tenant", "tq")["status"]["quota"]
    assert status["hard"] == {"pods": "4", "requests.cpu": "10"}
    assert status["used"] == {"pods": "4", "requests.cpu": "400m"}
    mine = env.as_user(user, "get", "tenant", "tq", "-o", "jsonpath={.status.quota.used.pods}")
    assert mine.returncode == 0 and mine.stdout == "4", mine.stderr  # the tenant sees its usage
    # A tenant-wide cpu quota asks pods to name their cpu request, as a namespace one does.
    denied(create(env, user, pod("unsized"), second),
           'pods "unsized" is forbidden: failed quota: tenant/tq: must specify requests.cpu for: '
           "app")  # fmt: skip
    in_first = len(env.get("pods", "-n", first)["items"])
    assert used(env, first, "roomy")["pods"] == str(in_first)  # refused creates refunded
    # Deleting frees tenant usage (recounted by the controller).
    env.admin("-n", first, "delete", "pods", "--all", "--wait=false")
    wait_for(lambda: env.get("tenant", "tq")["status"]["quota"]["used"]["pods"] == str(
        len(env.get("pods", "-n", second)["items"])))  # fmt: skip


def test_tenant_quota_counts_namespaces_and_is_reported_before_any_use(env: Env) -> None:
    env.tenant("tn", quota={"count/namespaces": "1", "pods": "10"})
    user = env.user("tn", "nina")
    wait_for(lambda: (env.get("tenant", "tn").get("status") or {}).get("quota", {}).get("used")
             == {"count/namespaces": "0", "pods": "0"})  # fmt: skip
    manifest = json.dumps({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "tn-1"}})
    first = env.as_user(user, "create", "-f", "-", input=manifest)
    assert first.returncode == 0, first.stderr
    assert env.get("namespace", "tn-1")["metadata"]["labels"]["hypernetes.io/tenant"] == "tn"
    second = env.as_user(user, "create", "-f", "-", input=manifest.replace("tn-1", "tn-2"))
    counts = "count/namespaces=1"
    denied(second, f'namespaces "tn-2" is forbidden: exceeded quota: tenant/tn, requested: '
                   f"{counts}, used: {counts}, limited: {counts}")  # fmt: skip


def test_scoped_quotas_count_only_their_pods(env: Env, quinn: str) -> None:
    ns = env.namespace("q-scoped", "qt")
    env.apply(quota("best-effort", ns, {"pods": "1"}, scopes=["BestEffort"]))
    env.apply(quota("terminating", ns, {"pods": "1"}, scopeSelector={"matchExpressions": [
        {"scopeName": "Terminating", "operator": "Exists"}]}))  # fmt: skip
    assert create(env, quinn, pod("be1"), ns).returncode == 0
    denied(create(env, quinn, pod("be2"), ns), "exceeded quota: best-effort, requested: pods=1")
    sized = {"requests": {"cpu": "10m"}, "limits": {"cpu": "10m"}}
    assert create(env, quinn, pod("sized", resources=sized), ns).returncode == 0
    job_like = pod("deadline", resources=sized, activeDeadlineSeconds=60)
    assert create(env, quinn, job_like, ns).returncode == 0
    denied(
        create(env, quinn, pod("deadline2", resources=sized, activeDeadlineSeconds=60), ns),
        "exceeded quota: terminating, requested: pods=1, used: pods=1, limited: pods=1",
    )
    assert env.admin("create", "configmap", "free", "-n", ns).returncode == 0
    assert used(env, ns, "best-effort") == {"pods": "1"}


def test_charges_for_objects_never_stored_are_given_back(env: Env, quinn: str) -> None:
    ns = env.namespace("q-leak", "qt")
    env.apply(quota("leak", ns, {"pods": "2"}))
    assert create(env, quinn, pod("kept"), ns).returncode == 0
    wait_for(lambda: used(env, ns, "leak").get("pods") == "1")
    # A charge whose object was never stored (a server that died between admission
    # and the write) looks like this: usage above what exists. The controller recounts.
    env.admin("patch", "resourcequota", "leak", "-n", ns, "--subresource=status",
              "--type=merge", "-p", '{"status":{"used":{"pods":"2"}}}')  # fmt: skip
    assert used(env, ns, "leak")["pods"] == "2"
    wait_for(lambda: used(env, ns, "leak")["pods"] == "1")
    assert create(env, quinn, pod("second"), ns).returncode == 0
    denied(create(env, quinn, pod("third"), ns), "exceeded quota: leak, requested: pods=1")


def test_server_dry_run_is_judged_but_not_charged(env: Env, quinn: str) -> None:
    ns = env.namespace("q-dry", "qt")
    env.apply(quota("dry", ns, {"pods": "1"}))
    for _ in range(3):  # repeated dry runs charge nothing, so each one still fits
        dry = env.as_user(quinn, "-n", ns, "create", "--dry-run=server", "-f", "-",
                          input=json.dumps(pod("dry")))  # fmt: skip
        assert dry.returncode == 0, dry.stderr
        assert used(env, ns, "dry").get("pods", "0") == "0"
    assert create(env, quinn, pod("real"), ns).returncode == 0
    over = env.as_user(quinn, "-n", ns, "create", "--dry-run=server", "-f", "-",
                       input=json.dumps(pod("dry2")))  # fmt: skip
    denied(over, "exceeded quota: dry, requested: pods=1, used: pods=1, limited: pods=1")
    assert used(env, ns, "dry")["pods"] == "1"
