"""The scheduler: fit, selectors, affinity, taints, tenant pools, spread, FailedScheduling."""

from __future__ import annotations

import collections
from typing import Any

from tests.conftest import RunningServer

from hypernetes.client import NAMESPACES, NODES, PODS, Client, NotFound, Resource
from hypernetes.controllers.scheduler import (
    PodNeeds,
    SchedulerCache,
    failure_message,
    feasible_target,
    filter_node,
    node_info,
    tolerates,
)

from .conftest import eventually, kubectl_async, kubelet, node_body, unique

TENANTS = Resource("hypernetes.io", "v1", "tenants", False, "Tenant")


def pod(name: str, *, cpu: str | None = None, **spec: Any) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "c", "image": "busybox"}
    if cpu:
        container["resources"] = {"requests": {"cpu": cpu}}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"containers": [container], **spec},
    }


async def node_of(client: Client, ns: str, name: str) -> str | None:
    try:
        return (await client.get(PODS, name, ns))["spec"].get("nodeName")
    except NotFound:
        return None


async def wait_bound(client: Client, ns: str, name: str) -> str:
    async def bound() -> str | None:
        return await node_of(client, ns, name)

    return str(await eventually(bound, f"pod {name} to be bound"))


async def wait_unschedulable(client: Client, ns: str, name: str) -> str:
    """The message of the pod's PodScheduled=False condition, once it is there."""

    async def message() -> str | None:
        obj = await client.get(PODS, name, ns)
        assert not obj["spec"].get("nodeName"), "the pod was bound but should not fit"
        for cond in obj["status"].get("conditions") or []:
            if cond["type"] == "PodScheduled" and cond["status"] == "False":
                assert cond["reason"] == "Unschedulable"
                return str(cond["message"])
        return None

    return str(await eventually(message, f"pod {name} to be marked unschedulable"))


# -- the decision logic, without a server ---------------------------------------------


def test_filters_in_kube_order() -> None:
    needs = PodNeeds(
        cpu=500,
        memory=0,
        node_selector={"zone": "a"},
        terms=None,
        tolerations=[],
        tenant_selector=None,
    )
    tainted = node_info(
        node_body("t", taints=[{"key": "gpu", "value": "x", "effect": "NoSchedule"}])
    )
    assert filter_node(needs, tainted) == ["node(s) had untolerated taint {gpu: x}"]
    assert filter_node(needs, node_info(node_body("u", unschedulable=True))) == [
        "node(s) were unschedulable"
    ]
    assert filter_node(needs, node_info(node_body("s", labels={"zone": "b"}))) == [
        "node(s) didn't match Pod's node affinity/selector"
    ]
    small = node_info(node_body("small", cpu="100m", memory="1Mi", labels={"zone": "a"}))
    needs.memory = 2 * 1024 * 1024
    assert filter_node(needs, small) == ["Insufficient cpu", "Insufficient memory"]
    not_ready = node_info(node_body("nr", ready="False", labels={"zone": "a"}))
    assert filter_node(needs, not_ready) == [
        "node(s) had untolerated taint {node.kubernetes.io/not-ready: }"
    ]
    needs.tolerations = [{"key": "node.kubernetes.io/not-ready", "operator": "Exists"}]
    assert filter_node(needs, not_ready) == []


def test_tolerations_and_messages() -> None:
    taint = {"key": "k", "value": "v", "effect": "NoSchedule"}
    assert tolerates([{"key": "k", "value": "v"}], taint)
    assert tolerates([{"key": "k", "operator": "Exists", "effect": "NoSchedule"}], taint)
    assert tolerates([{"operator": "Exists"}], taint)
    assert not tolerates([{"key": "k", "value": "w"}], taint)
    assert not tolerates([{"key": "k", "operator": "Exists", "effect": "NoExecute"}], taint)
    reasons = collections.Counter(
        {"Insufficient cpu": 1, "node(s) didn't match Pod's node affinity/selector": 2}
    )
    assert failure_message(3, reasons) == (
        "0/3 nodes are available: 1 Insufficient cpu, "
        "2 node(s) didn't match Pod's node affinity/selector."
    )
    assert failure_message(0, collections.Counter()) == "no nodes available to schedule pods"
    assert feasible_target(50) == 50 and feasible_target(1000) == 420
    assert feasible_target(100_000) == 5000


def test_cache_counts_pods_seen_before_their_node() -> None:
    cache = SchedulerCache()
    cache.add_pod("ns/a", "n1", 500, 1024)
    cache.add_pod("ns/b", "n1", 0, 0)
    cache.set_node(node_body("n1"))
    info = cache.nodes["n1"]
    assert (info.used_cpu, info.used_memory, info.pods) == (500, 1024, 2)
    assert info.score_cpu == 600  # a request-less pod scores as 100m
    assert cache.remove_pod("ns/a") == "n1"
    assert (info.used_cpu, info.pods) == (0, 1)
    assert not cache.set_node(node_body("n1"))  # nothing that matters changed
    assert cache.nodes["n1"].pods == 1
    assert cache.set_node(node_body("n1", labels={"zone": "z"}))


# -- against the server -----------------------------------------------------------------


async def test_unschedulable_pod_reports_and_is_retried(
    workload_server: RunningServer, client: Client, namespace: str
) -> None:
    k = kubectl_async(workload_server)
    a, b, c = unique("a"), unique("b"), unique("c")
    nodes = [
        node_body(a, cpu="1", labels={"zone": "a"}),
        node_body(
            b,
            cpu="4",
            labels={"zone": "b"},
            taints=[{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}],
        ),
        node_body(c, cpu="4", labels={"zone": "a"}, unschedulable=True),
    ]
    async with kubelet(client, nodes):
        await client.create(PODS, pod("big", cpu="2", nodeSelector={"zone": "a"}), namespace)
        message = await wait_unschedulable(client, namespace, "big")
        assert message == (
            "0/3 nodes are available: 1 Insufficient cpu, 1 node(s) had untolerated taint "
            "{dedicated: gpu}, 1 node(s) were unschedulable."
        )

        async def described() -> bool:
            out = (await k("describe", "pod", "big", "-n", namespace)).stdout
            return "FailedScheduling" in out and "1 Insufficient cpu" in out

        await eventually(described, "FailedScheduling in kubectl describe")
        events = (
            await k("get", "events", "-n", namespace, "--field-selector", "reason=FailedScheduling")
        ).stdout
        assert "0/3 nodes are available" in events

        # Making room (a node that fits appears) retries the pod without any action on it.
        d = unique("d")
        async with kubelet(client, [node_body(d, cpu="4", labels={"zone": "a"})]):
            assert await wait_bound(client, namespace, "big") == d
            out = (await k("describe", "pod", "big", "-n", namespace)).stdout
            assert f"Successfully assigned {namespace}/big to {d}" in out


async def test_taints_affinity_and_tolerations(client: Client, namespace: str) -> None:
    gpu, plain, other = unique("gpu"), unique("plain"), unique("other")
    nodes = [
        node_body(
            gpu,
            labels={"accel": "gpu", "zone": "x"},
            taints=[{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}],
        ),
        node_body(plain, labels={"zone": "x"}),
        node_body(other, labels={"zone": "y", "legacy": "1"}),
    ]
    async with kubelet(client, nodes):
        tolerate = [
            {"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}
        ]
        await client.create(
            PODS, pod("g", nodeSelector={"accel": "gpu"}, tolerations=tolerate), namespace
        )

        def affinity(*exprs: dict[str, Any]) -> dict[str, Any]:
            return {
                "nodeAffinity": {
                    "requiredDuringSchedulingIgnoredDuringExecution": {
                        "nodeSelectorTerms": [{"matchExpressions": list(exprs)}]
                    }
                }
            }

        await client.create(
            PODS,
            pod(
                "in",
                affinity=affinity(
                    {"key": "zone", "operator": "In", "values": ["x"]},
                    {"key": "accel", "operator": "DoesNotExist"},
                ),
            ),
            namespace,
        )
        await client.create(
            PODS,
            pod(
                "notin",
                affinity=affinity(
                    {"key": "zone", "operator": "NotIn", "values": ["x"]},
                    {"key": "legacy", "operator": "Exists"},
                ),
            ),
            namespace,
        )
        # Tolerating the taint is not enough to need the node: this one may not go there.
        await client.create(
            PODS,
            pod(
                "nogpu",
                tolerations=tolerate,
                affinity=affinity(
                    {"key": "accel", "operator": "Exists"},
                    {"key": "zone", "operator": "In", "values": ["nowhere"]},
                ),
            ),
            namespace,
        )
        assert await wait_bound(client, namespace, "g") == gpu
        assert await wait_bound(client, namespace, "in") == plain
        assert await wait_bound(client, namespace, "notin") == other
        message = await wait_unschedulable(client, namespace, "nogpu")
        assert message == (
            "0/3 nodes are available: 3 node(s) didn't match Pod's node affinity/selector."
        )


async def test_resources_are_accounted_and_freed(client: Client, namespace: str) -> None:
    small = unique("small")
    async with kubelet(client, [node_body(small, cpu="1", memory="1Gi", pods=3)]):
        await client.create(PODS, pod("first", cpu="600m"), namespace)
        assert await wait_bound(client, namespace, "first") == small
        await client.create(PODS, pod("second", cpu="600m"), namespace)
        assert await wait_unschedulable(client, namespace, "second") == (
            "0/1 nodes are available: 1 Insufficient cpu."
        )
        for i in range(2):  # request-less pods fit until the pod count is reached
            await client.create(PODS, pod(f"free{i}"), namespace)
            await wait_bound(client, namespace, f"free{i}")
        await client.create(PODS, pod("toomany"), namespace)
        assert await wait_unschedulable(client, namespace, "toomany") == (
            "0/1 nodes are available: 1 Too many pods."
        )
        # Deleting the first pod (the fake kubelet finishes its termination) frees its cpu
        # and its pod slot (the pod-less waiter goes first, so it does not take the slot).
        await client.delete(PODS, "toomany", namespace)
        await client.delete(PODS, "first", namespace)
        assert await wait_bound(client, namespace, "second") == small


async def test_spread_and_readiness(client: Client, namespace: str) -> None:
    names = [unique("s") for _ in range(3)]
    down = unique("down")
    nodes = [node_body(n) for n in names] + [node_body(down, ready="False")]
    async with kubelet(client, nodes):
        for i in range(6):
            await client.create(PODS, pod(f"p{i}", cpu="100m"), namespace)
        placed = [await wait_bound(client, namespace, f"p{i}") for i in range(6)]
        assert collections.Counter(placed) == {n: 2 for n in names}


async def test_tenant_node_pool(client: Client) -> None:
    tenant, ns = unique("acme"), unique("acme-ns")
    pool, shared = unique("pool"), unique("shared")
    await client.create(
        TENANTS,
        {
            "apiVersion": "hypernetes.io/v1",
            "kind": "Tenant",
            "metadata": {"name": tenant},
            "spec": {"nodeSelector": {"pool": tenant}},
        },
    )
    await client.create(
        NAMESPACES, {"metadata": {"name": ns, "labels": {"hypernetes.io/tenant": tenant}}}
    )
    try:
        async with kubelet(
            client, [node_body(shared), node_body(pool, cpu="1", labels={"pool": tenant})]
        ):
            # The shared node is emptier, but the tenant's pods may only use its pool.
            for i in range(3):
                await client.create(PODS, pod(f"t{i}", cpu="100m"), ns)
            assert {await wait_bound(client, ns, f"t{i}") for i in range(3)} == {pool}
            await client.create(PODS, pod("huge", cpu="2"), ns)
            assert await wait_unschedulable(client, ns, "huge") == (
                "0/2 nodes are available: 1 Insufficient cpu, "
                "1 node(s) didn't match the tenant's node selector."
            )
            # Widening the tenant's pool retries the waiting pod.
            await client.patch(TENANTS, tenant, {"spec": {"nodeSelector": None}})
            assert await wait_bound(client, ns, "huge") == shared
    finally:
        await client.delete(NAMESPACES, ns)
        await client.delete(TENANTS, tenant)


async def test_nodes_gone_leave_pods_pending(client: Client, namespace: str) -> None:
    lonely = unique("lonely")
    async with kubelet(client, [node_body(lonely, cpu="1")]):
        pass  # the node is deleted on exit
    await eventually(lambda: _gone(client, lonely), "the node to be deleted")
    await client.create(PODS, pod("waits", cpu="100m"), namespace)
    message = await wait_unschedulable(client, namespace, "waits")
    assert message == "no nodes available to schedule pods"


async def _gone(client: Client, node: str) -> bool:
    try:
        await client.get(NODES, node)
    except NotFound:
        return True
    return False
