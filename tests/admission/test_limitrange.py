"""LimitRange admission: defaults visible in created pods, min/max/ratio refusals with kube's
messages, and defaults that make a pod invalid (422), driven with kubectl."""

from __future__ import annotations

import json
from typing import Any

import pytest
from tests.admission.conftest import Env, denied, invalid, pod


@pytest.fixture(scope="module")
def lena(env: Env) -> str:
    """Tenant `lr` with its member user `lena` and namespace `lr-ns` with a LimitRange."""
    env.tenant("lr")
    user = env.user("lr", "lena")
    env.namespace("lr-ns", "lr")
    env.apply({"apiVersion": "v1", "kind": "LimitRange",
               "metadata": {"name": "limits", "namespace": "lr-ns"},
               "spec": {"limits": [
                   {"type": "Container",
                    "default": {"cpu": "500m", "memory": "256Mi"},
                    "defaultRequest": {"cpu": "100m", "memory": "128Mi"},
                    "max": {"cpu": "1", "memory": "1Gi"},
                    "min": {"cpu": "50m"},
                    "maxLimitRequestRatio": {"cpu": "5"}},
                   {"type": "Pod", "max": {"memory": "1536Mi"}},
               ]}})  # fmt: skip
    return user


def create(env: Env, user: str, obj: dict[str, Any]) -> Any:
    return env.as_user(user, "-n", "lr-ns", "create", "-f", "-", input=json.dumps(obj))


def test_defaults_are_applied_and_visible_in_the_created_pod(env: Env, lena: str) -> None:
    manifest = pod("defaulted")
    manifest["spec"]["initContainers"] = [
        {"name": "init", "image": "registry.local/busybox",
         "resources": {"limits": {"memory": "200Mi"}}}
    ]  # fmt: skip
    result = create(env, lena, manifest)
    assert result.returncode == 0, result.stderr
    live = env.as_user(lena, "-n", "lr-ns", "get", "pod", "defaulted", "-o", "json")
    created = json.loads(live.stdout)
    app = created["spec"]["containers"][0]["resources"]
    assert app == {"limits": {"cpu": "500m", "memory": "256Mi"},
                   "requests": {"cpu": "100m", "memory": "128Mi"}}  # fmt: skip
    init = created["spec"]["initContainers"][0]["resources"]
    # The init container's own limit stays; its request came from it (API defaulting).
    assert init == {"limits": {"cpu": "500m", "memory": "200Mi"},
                    "requests": {"cpu": "100m", "memory": "200Mi"}}  # fmt: skip
    assert created["metadata"]["annotations"]["kubernetes.io/limit-ranger"] == (
        "LimitRanger plugin set: cpu, memory request for container app; cpu, memory limit for "
        "container app; cpu request for init container init; cpu limit for init container init"
    )
    assert created["status"]["qosClass"] == "Burstable"


def test_a_pod_naming_its_own_resources_keeps_them(env: Env, lena: str) -> None:
    own = {"requests": {"cpu": "200m", "memory": "512Mi"},
           "limits": {"cpu": "200m", "memory": "512Mi"}}  # fmt: skip
    assert create(env, lena, pod("own", resources=own)).returncode == 0
    created = env.get("pod", "own", "-n", "lr-ns")
    assert created["spec"]["containers"][0]["resources"] == own
    assert "kubernetes.io/limit-ranger" not in created["metadata"].get("annotations", {})
    assert created["status"]["qosClass"] == "Guaranteed"


CASES = [
    ("too-big", {"limits": {"cpu": "2"}, "requests": {"cpu": "1"}},
     'pods "too-big" is forbidden: maximum cpu usage per Container is 1, but limit is 2'),
    ("too-small", {"requests": {"cpu": "10m"}, "limits": {"cpu": "40m", "memory": "2Gi"}},
     'pods "too-small" is forbidden: [minimum cpu usage per Container is 50m, but request is '
     "10m, maximum memory usage per Container is 1Gi, but limit is 2Gi, maximum memory usage "
     "per Pod is 1536Mi, but limit is 2Gi]"),
    ("ratio", {"requests": {"cpu": "100m"}, "limits": {"cpu": "800m"}},
     'pods "ratio" is forbidden: cpu max limit to request ratio per Container is 5, but '
     "provided ratio is 8.000000"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "resources", "message"), CASES, ids=[c[0] for c in CASES])
def test_min_max_and_ratio_are_enforced_with_kube_messages(
    env: Env, lena: str, name: str, resources: dict[str, Any], message: str
) -> None:
    denied(create(env, lena, pod(name, resources=resources)), message)


def test_the_pod_maximum_counts_all_containers(env: Env, lena: str) -> None:
    big = {"limits": {"memory": "1Gi"}}
    manifest = pod("pod-max", resources=big)
    manifest["spec"]["containers"].append(
        {"name": "side", "image": "registry.local/busybox", "resources": big}
    )
    denied(create(env, lena, manifest),
           'pods "pod-max" is forbidden: maximum memory usage per Pod is 1536Mi, but limit is '
           "2Gi")  # fmt: skip


def test_defaults_that_make_a_pod_invalid_are_422(env: Env, lena: str) -> None:
    # A request above the default limit the LimitRange then adds.
    result = create(env, lena, pod("over", resources={"requests": {"cpu": "800m"}}))
    invalid(result, 'The Pod "over" is invalid: spec.containers[0].resources.requests:')
    assert env.admin("get", "pod", "over", "-n", "lr-ns", check=False).returncode != 0


def test_limit_ranges_apply_to_the_admin_too_and_only_at_creation(env: Env, lena: str) -> None:
    env.apply({**pod("by-admin"), "metadata": {"name": "by-admin", "namespace": "lr-ns"}})
    resources = env.get("pod", "by-admin", "-n", "lr-ns")["spec"]["containers"][0]["resources"]
    assert resources["limits"] == {"cpu": "500m", "memory": "256Mi"}
    # A later update (labels) does not re-run the limits on the existing pod.
    assert env.as_user(lena, "-n", "lr-ns", "label", "pod", "by-admin", "x=y").returncode == 0


def test_defaults_satisfy_a_compute_quota_and_are_charged(env: Env, lena: str) -> None:
    env.namespace("lr-quota", "lr")
    env.apply({"apiVersion": "v1", "kind": "LimitRange",
               "metadata": {"name": "defaults", "namespace": "lr-quota"},
               "spec": {"limits": [{"type": "Container", "default": {"cpu": "300m"},
                                    "defaultRequest": {"cpu": "200m"}}]}})  # fmt: skip
    env.apply({"apiVersion": "v1", "kind": "ResourceQuota",
               "metadata": {"name": "cpu", "namespace": "lr-quota"},
               "spec": {"hard": {"requests.cpu": "500m", "limits.cpu": "1"}}})  # fmt: skip
    for name in ("d1", "d2"):
        result = env.as_user(lena, "-n", "lr-quota", "create", "-f", "-",
                             input=json.dumps(pod(name)))  # fmt: skip
        assert result.returncode == 0, result.stderr
    used = env.get("resourcequota", "cpu", "-n", "lr-quota")["status"]["used"]
    assert used == {"requests.cpu": "400m", "limits.cpu": "600m"}
    result = env.as_user(lena, "-n", "lr-quota", "create", "-f", "-", input=json.dumps(pod("d3")))
    denied(result, 'pods "d3" is forbidden: exceeded quota: cpu, requested: requests.cpu=200m, '
                   "used: requests.cpu=400m, limited: requests.cpu=500m")  # fmt: skip
