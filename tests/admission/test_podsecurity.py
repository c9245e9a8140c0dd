"""Pod admission for tenants, driven with kubectl as tenant users (multi-tenancy benchmark:
block privileged, escalation, capabilities, host namespaces, host ports, hostPath, NodePort)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from tests.admission.conftest import Env, denied, pod

POLICY = "hypernetes tenant policy: "


@pytest.fixture(scope="module")
def strict(env: Env) -> str:
    """Tenant `strict` (default policy), its admin user `sam`, its namespace `strict-ns`."""
    env.tenant("strict")
    env.user("strict", "sam")
    env.namespace("strict-ns", "strict")
    return "sam"


def create(env: Env, user: str, obj: dict[str, Any], ns: str = "strict-ns") -> Any:
    return env.as_user(user, "-n", ns, "create", "-f", "-", input=json.dumps(obj))


CASES = [
    (
        "priv",
        {"container": {"securityContext": {"privileged": True}}},
        'privileged containers are not allowed (containers[0] "app")',
    ),
    (
        "escalate",
        {"container": {"securityContext": {"allowPrivilegeEscalation": True}}},
        'allowPrivilegeEscalation=true is not allowed (containers[0] "app")',
    ),
    (
        "caps",
        {"container": {"securityContext": {"capabilities": {"add": ["NET_ADMIN"]}}}},
        'adding capabilities NET_ADMIN is not allowed (containers[0] "app")',
    ),
    ("hostnet", {"hostNetwork": True}, "host namespaces are not allowed (hostNetwork=true)"),
    ("hostpid", {"hostPID": True}, "host namespaces are not allowed (hostPID=true)"),
    ("hostipc", {"hostIPC": True}, "host namespaces are not allowed (hostIPC=true)"),
    (
        "hostport",
        {"container": {"ports": [{"containerPort": 80, "hostPort": 8080}]}},
        'host ports are not allowed (containers[0] "app" hostPort=8080)',
    ),
    (
        "hostpath",
        {"volumes": [{"name": "root", "hostPath": {"path": "/"}}]},
        'hostPath volumes are not allowed (volumes[0] "root")',
    ),
]


@pytest.mark.parametrize(("name", "spec", "rule"), CASES, ids=[c[0] for c in CASES])
def test_tenant_pods_breaking_a_rule_are_forbidden_naming_it(
    env: Env, strict: str, name: str, spec: dict[str, Any], rule: str
) -> None:
    result = create(env, strict, pod(name, **spec))
    denied(result, f'pods "{name}" is forbidden: {POLICY}{rule}')
    assert env.admin("get", "pod", name, "-n", "strict-ns", check=False).returncode != 0


def test_every_broken_rule_is_named_and_init_containers_count(env: Env, strict: str) -> None:
    manifest = pod("many", hostNetwork=True, container={"securityContext": {"privileged": True}})
    manifest["spec"]["initContainers"] = [
        {"name": "setup", "image": "registry.local/busybox",
         "securityContext": {"capabilities": {"add": ["SYS_ADMIN"]}}}
    ]  # fmt: skip
    result = create(env, strict, manifest)
    denied(result, "host namespaces are not allowed (hostNetwork=true)")
    assert 'privileged containers are not allowed (containers[0] "app")' in result.stderr
    assert 'adding capabilities SYS_ADMIN is not allowed (initContainers[0] "setup")' in (
        result.stderr
    )


def test_a_plain_pod_is_admitted(env: Env, strict: str) -> None:
    context = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}
    plain = pod("plain", container={"securityContext": context})
    assert create(env, strict, plain).returncode == 0
    assert env.get("pod", "plain", "-n", "strict-ns")["metadata"]["name"] == "plain"


def service(name: str, kind: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"type": kind, "selector": {"app": name},
                     "ports": [{"port": 80, "targetPort": 80}]}}  # fmt: skip


@pytest.mark.parametrize("kind", ["NodePort", "LoadBalancer"])
def test_node_port_and_load_balancer_services_are_forbidden(
    env: Env, strict: str, kind: str
) -> None:
    name = f"svc-{kind.lower()}"
    result = create(env, strict, service(name, kind))
    denied(result, f'services "{name}" is forbidden: {POLICY}services of type {kind} are not '
                   "allowed (spec.type)")  # fmt: skip
    # Nor can a ClusterIP service be turned into one later.
    assert create(env, strict, service(f"ok-{kind.lower()}", "ClusterIP")).returncode == 0
    patch = json.dumps({"spec": {"type": kind}})
    result = env.as_user(strict, "-n", "strict-ns", "patch", "service", f"ok-{kind.lower()}",
                         "-p", patch)  # fmt: skip
    denied(result, f"services of type {kind} are not allowed (spec.type)")


def test_deployment_templates_are_judged_on_create_and_on_update(env: Env, strict: str) -> None:
    result = env.as_user(strict, "-n", "strict-ns", "create", "deployment", "web",
                         "--image=registry.local/nginx")  # fmt: skip
    assert result.returncode == 0, result.stderr
    patch = json.dumps({"spec": {"template": {"spec": {"hostNetwork": True}}}})
    result = env.as_user(strict, "-n", "strict-ns", "patch", "deployment", "web", "-p", patch)
    denied(result, f'deployments.apps "web" is forbidden: {POLICY}host namespaces are not '
                   "allowed (spec.template.spec.hostNetwork=true)")  # fmt: skip
    live = env.get("deployment", "web", "-n", "strict-ns")
    assert "hostNetwork" not in live["spec"]["template"]["spec"]
    privileged = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "rs"},
                  "spec": {"selector": {"matchLabels": {"a": "b"}}, "template": {
                      "metadata": {"labels": {"a": "b"}},
                      "spec": pod("x", container={"securityContext": {"privileged": True}})[
                          "spec"]}}}  # fmt: skip
    rule = 'privileged containers are not allowed (spec.template.spec.containers[0] "app")'
    denied(create(env, strict, privileged), f'replicasets.apps "rs" is forbidden: {POLICY}{rule}')


def test_pod_updates_cannot_sneak_in_host_access(env: Env, strict: str) -> None:
    assert create(env, strict, pod("upd")).returncode == 0
    # hostNetwork on a live pod: refused (a pod's spec is immutable there), the pod unchanged.
    patch = json.dumps({"spec": {"hostNetwork": True}})
    result = env.as_user(strict, "-n", "strict-ns", "patch", "pod", "upd", "-p", patch)
    assert result.returncode != 0
    assert 'The Pod "upd" is invalid' in result.stderr, result.stderr
    assert "spec.hostNetwork: null -> true" in result.stderr
    assert "hostNetwork" not in env.get("pod", "upd", "-n", "strict-ns")["spec"]
    # A metadata-only update is not judged again and works.
    labelled = env.as_user(strict, "-n", "strict-ns", "label", "pod", "upd", "tier=web")
    assert labelled.returncode == 0, labelled.stderr


def test_the_platform_admin_is_not_restricted(env: Env, strict: str) -> None:
    env.apply({**pod("admin-priv", hostNetwork=True,
                     container={"securityContext": {"privileged": True}}),
               "metadata": {"name": "admin-priv", "namespace": "strict-ns"}})  # fmt: skip
    spec = env.get("pod", "admin-priv", "-n", "strict-ns")["spec"]
    assert spec["hostNetwork"] is True
    # ... and a pod update (labels) by the tenant of a pod the admin made is still fine.
    assert (
        env.as_user(strict, "-n", "strict-ns", "label", "pod", "admin-priv", "x=y").returncode == 0
    )


def test_non_tenant_namespaces_are_not_restricted(env: Env) -> None:
    env.namespace("plain-ns")
    env.apply({**pod("free", container={"securityContext": {"privileged": True}}),
               "metadata": {"name": "free", "namespace": "plain-ns"}})  # fmt: skip
    assert env.get("pod", "free", "-n", "plain-ns")["spec"]["containers"][0][
        "securityContext"]["privileged"] is True  # fmt: skip


def test_a_tenant_policy_can_allow_each_rule(env: Env) -> None:
    env.tenant("loose", policy={
        "allowPrivileged": True, "allowPrivilegeEscalation": True,
        "allowedCapabilities": ["NET_ADMIN"], "allowHostNamespaces": True,
        "allowHostPorts": True, "allowHostPath": True, "allowNodePort": True,
    })  # fmt: skip
    user = env.user("loose", "lou")
    env.namespace("loose-ns", "loose")
    free = pod("free", hostNetwork=True, hostPID=True,
               volumes=[{"name": "root", "hostPath": {"path": "/"}}],
               container={"securityContext": {"privileged": True,
                                              "allowPrivilegeEscalation": True,
                                              "capabilities": {"add": ["NET_ADMIN"]}},
                          "ports": [{"containerPort": 80, "hostPort": 80}]})  # fmt: skip
    result = create(env, user, free, "loose-ns")
    assert result.returncode == 0, result.stderr
    svc = create(env, user, service("np", "NodePort"), "loose-ns")
    assert svc.returncode == 0, svc.stderr
    # What the policy does not name stays refused.
    result = create(env, user, pod("sys", container={"securityContext": {
        "capabilities": {"add": ["SYS_ADMIN"]}}}), "loose-ns")  # fmt: skip
    denied(result, 'adding capabilities SYS_ADMIN is not allowed (containers[0] "app")')
    lb = create(env, user, service("lb", "LoadBalancer"), "loose-ns")
    denied(lb, "services of type LoadBalancer are not allowed (spec.type)")
