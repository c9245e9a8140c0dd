"""The pure parts of quota, limit ranges and tenant pod policy: what objects cost, which
kinds a recount lists, when the controller may lower usage, and the rules' wording."""

from __future__ import annotations

from typing import Any

from hypernetes.api.admission.limitrange import aggregate, apply_defaults, check
from hypernetes.api.admission.podsecurity import Policy, pod_spec_violations, service_violations
from hypernetes.controllers.resourcequota import plan
from hypernetes.resources import quantity as qty
from hypernetes.resources.usage import (
    kinds_for,
    missing_specs,
    object_usage,
    pod_resources,
    pretty,
    quota_matches,
    render,
)


def q(values: dict[str, str]) -> dict[str, qty.Quantity]:
    return {k: qty.parse(v) for k, v in values.items()}


def container(name: str, requests: dict[str, str] | None = None,
              limits: dict[str, str] | None = None) -> dict[str, Any]:  # fmt: skip
    resources: dict[str, Any] = {}
    if requests:
        resources["requests"] = requests
    if limits:
        resources["limits"] = limits
    return {"name": name, "image": "x", "resources": resources}


def test_pod_usage_sums_containers_takes_the_largest_init_container_and_adds_overhead() -> None:
    pod = {"spec": {
        "containers": [container("a", {"cpu": "250m", "memory": "1Gi"}, {"cpu": "1"}),
                       container("b", {"cpu": "250m", "nvidia.com/gpu": "1"}, {"cpu": "1"})],
        "initContainers": [container("i", {"cpu": "2"}, {"memory": "3Gi"})],
        "overhead": {"memory": "64Mi"},
    }}  # fmt: skip
    assert render(object_usage("", "pods", pod)) == {
        "count/pods": "1", "pods": "1",
        "cpu": "2", "requests.cpu": "2",
        "memory": "1088Mi", "requests.memory": "1088Mi",
        "requests.nvidia.com/gpu": "1",
        "limits.cpu": "2", "limits.memory": "3136Mi",
    }  # fmt: skip


def test_terminal_pods_cost_nothing() -> None:
    for phase in ("Succeeded", "Failed"):
        assert object_usage("", "pods", {"spec": {}, "status": {"phase": phase}}) == {}
    assert render(object_usage("", "pods", {"spec": {}, "status": {"phase": "Running"}})) == {
        "count/pods": "1", "pods": "1"}  # fmt: skip


def test_service_claim_and_generic_counts() -> None:
    lb = {"spec": {"type": "LoadBalancer", "ports": [{"port": 80}, {"port": 443}]}}
    assert render(object_usage("", "services", lb)) == {
        "count/services": "1", "services": "1", "services.loadbalancers": "1",
        "services.nodeports": "2"}  # fmt: skip
    no_node_ports = {"spec": {**lb["spec"], "allocateLoadBalancerNodePorts": False}}
    assert "services.nodeports" not in object_usage("", "services", no_node_ports)
    claim = {"spec": {"storageClassName": "fast", "resources": {"requests": {"storage": "5Gi"}}}}
    assert render(object_usage("", "persistentvolumeclaims", claim)) == {
        "count/persistentvolumeclaims": "1", "persistentvolumeclaims": "1",
        "requests.storage": "5Gi",
        "fast.storageclass.storage.k8s.io/persistentvolumeclaims": "1",
        "fast.storageclass.storage.k8s.io/requests.storage": "5Gi"}  # fmt: skip
    assert render(object_usage("apps", "deployments", {})) == {"count/deployments.apps": "1"}
    assert render(object_usage("", "configmaps", {})) == {
        "count/configmaps": "1", "configmaps": "1"}  # fmt: skip


def test_kinds_a_recount_lists() -> None:
    assert kinds_for(["pods", "requests.cpu", "memory", "limits.memory"]) == {("", "pods")}
    assert kinds_for(["services.nodeports", "count/deployments.apps", "secrets"]) == {
        ("", "services"), ("apps", "deployments"), ("", "secrets")}  # fmt: skip
    assert kinds_for(["requests.storage"]) == {("", "persistentvolumeclaims")}


def test_scopes_select_pods_only() -> None:
    scoped = {"spec": {"hard": {"pods": "1"}, "scopes": ["NotBestEffort"]}}
    burstable = {"spec": {"containers": [container("a", {"cpu": "1"})]}}
    best_effort = {"spec": {"containers": [container("a")]}}
    assert quota_matches(scoped, "", "pods", burstable)
    assert not quota_matches(scoped, "", "pods", best_effort)
    assert not quota_matches(scoped, "", "configmaps", {})
    by_class = {"spec": {"scopeSelector": {"matchExpressions": [
        {"scopeName": "PriorityClass", "operator": "In", "values": ["high"]}]}}}  # fmt: skip
    assert quota_matches(by_class, "", "pods", {"spec": {"priorityClassName": "high"}})
    assert not quota_matches(by_class, "", "pods", {"spec": {"priorityClassName": "low"}})


def test_kube_wording_of_quota_refusals() -> None:
    assert pretty(q({"pods": "1", "limits.cpu": "500m"})) == "limits.cpu=500m,pods=1"
    pod = {"spec": {"containers": [container("a", {"cpu": "1"}), container("b")],
                    "initContainers": [container("i", limits={"memory": "1Gi"})]}}  # fmt: skip
    assert missing_specs(pod, {"requests.cpu", "limits.memory"}) == (
        "must specify limits.memory for: a,b; requests.cpu for: b,i"
    )
    assert missing_specs(pod, set()) == ""


def test_usage_is_lowered_only_after_settling_and_raised_at_once() -> None:
    hard = q({"pods": "10", "requests.cpu": "4"})
    now, full = plan(
        hard, q({"pods": "5", "requests.cpu": "1"}), q({"pods": "3", "requests.cpu": "2"})
    )
    assert render(now) == {"pods": "5", "requests.cpu": "2"}
    assert render(full) == {"pods": "3", "requests.cpu": "2"}
    now, full = plan(hard, {}, q({"pods": "3"}))
    assert now == full == q({"pods": "3", "requests.cpu": "0"})


def test_limit_range_defaults_and_bounds() -> None:
    spec = {"containers": [container("a", limits={"memory": "1Gi"}), container("b")]}
    item = {"type": "Container", "default": {"cpu": "1", "memory": "512Mi"},
            "defaultRequest": {"cpu": "0.5", "memory": "256Mi"},
            "max": {"cpu": "2"}, "maxLimitRequestRatio": {"memory": "2"}}  # fmt: skip
    notes = apply_defaults(spec, [item])
    assert notes == [
        "cpu, memory request for container a",
        "cpu limit for container a",
        "cpu, memory request for container b",
        "cpu, memory limit for container b",
    ]
    assert spec["containers"][0]["resources"] == {
        "limits": {"memory": "1Gi", "cpu": "1"},
        "requests": {"cpu": "500m", "memory": "256Mi"},
    }
    assert check(spec, [item], "Container") == [
        "memory max limit to request ratio per Container is 2, but provided ratio is 4.000000"
    ]
    pod_item = {"type": "Pod", "min": {"cpu": "3"}}
    assert render(pod_resources(spec, "requests")) == {"cpu": "1", "memory": "512Mi"}
    assert check(spec, [pod_item], "Pod") == ["minimum cpu usage per Pod is 3, but request is 1"]
    assert aggregate(["a"]) == "a" and aggregate(["a", "b"]) == "[a, b]"


def test_pod_policy_names_each_rule_and_place() -> None:
    spec = {"hostPID": True, "volumes": [{"name": "v", "hostPath": {"path": "/"}}],
            "ephemeralContainers": [{"name": "dbg", "securityContext": {
                "capabilities": {"add": ["CAP_SYS_PTRACE", "NET_RAW"]}}}]}  # fmt: skip
    assert pod_spec_violations(spec, Policy(), "spec.template.spec.") == [
        "host namespaces are not allowed (spec.template.spec.hostPID=true)",
        'hostPath volumes are not allowed (spec.template.spec.volumes[0] "v")',
        "adding capabilities CAP_SYS_PTRACE, NET_RAW is not allowed "
        '(spec.template.spec.ephemeralContainers[0] "dbg")',
    ]
    caps = ["sys_ptrace", "NET_RAW"]
    policy = {"allowHostNamespaces": True, "allowHostPath": True, "allowedCapabilities": caps}
    allowed = Policy.of({"spec": {"policy": policy}})
    assert pod_spec_violations(spec, allowed) == []
    assert service_violations({"spec": {"type": "NodePort"}}, Policy()) == [
        "services of type NodePort are not allowed (spec.type)"
    ]
    assert service_violations({"spec": {}}, Policy()) == []


async def test_the_controller_lowers_usage_only_after_the_quota_settles() -> None:
    from hypernetes.controllers.resourcequota import ResourceQuotaController

    controller = ResourceQuotaController(None)  # type: ignore[arg-type,unused-ignore]  # no API calls
    writes: list[dict[str, str]] = []

    async def write(used: dict[str, qty.Quantity]) -> dict[str, Any]:
        writes.append(render(used))
        return {"metadata": {"resourceVersion": str(10 + len(writes))}}

    hard, key = q({"pods": "5"}), ("quota", "ns", "q")
    status = {"hard": {"pods": "5"}, "used": {"pods": "3"}}

    async def step(rv: str, counted: str) -> float | None:
        obj = {"metadata": {"resourceVersion": rv}}
        return await controller._apply(key, obj, hard, status, q({"pods": counted}), write)

    assert await step("7", "2") == controller.settle  # lower: wait, write nothing
    assert await step("7", "2") == controller.settle and writes == []
    assert await step("8", "2") == controller.settle  # a charge came in: wait again
    controller.settle = 0.0
    assert await step("9", "2") == 0.0 and writes == []  # first sighting of this version
    assert await step("9", "2") is None and writes == [{"pods": "2"}]  # settled: lowered
    assert await step("12", "4") is None and writes[-1] == {"pods": "4"}  # raising is at once
