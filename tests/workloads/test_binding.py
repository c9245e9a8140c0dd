"""The pods/binding and pods/eviction subresources, at the API and through kubectl."""

from __future__ import annotations

from typing import Any

import pytest
from tests.conftest import RunningServer

from hypernetes.client import PODS, ApiError, Client, NotFound

from .conftest import kubectl_async, kubelet, node_body, unique


def pod(name: str, scheduler: str = "someone-else") -> dict[str, Any]:
    """A pod our scheduler leaves alone, so the test does the binding."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"schedulerName": scheduler, "containers": [{"name": "c", "image": "busybox"}]},
    }


def binding(name: str, node: str | None) -> dict[str, Any]:
    body: dict[str, Any] = {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": name}}
    if node is not None:
        body["target"] = {"apiVersion": "v1", "kind": "Node", "name": node}
    return body


async def bind(client: Client, ns: str, name: str, node: str | None) -> Any:
    return await client.request("POST", PODS.path(ns, name, "binding"), body=binding(name, node))


async def test_binding_sets_the_node_once(
    workload_server: RunningServer, client: Client, namespace: str
) -> None:
    await client.create(PODS, pod("p1"), namespace)
    answer = await bind(client, namespace, "p1", "node-a")
    assert answer["kind"] == "Status" and answer["status"] == "Success" and answer["code"] == 201
    bound = await client.get(PODS, "p1", namespace)
    assert bound["spec"]["nodeName"] == "node-a"
    scheduled = [c for c in bound["status"]["conditions"] if c["type"] == "PodScheduled"]
    assert scheduled and scheduled[0]["status"] == "True"

    with pytest.raises(ApiError) as again:
        await bind(client, namespace, "p1", "node-b")
    assert again.value.code == 409 and again.value.reason == "Conflict"
    assert 'already assigned to node "node-a"' in again.value.message
    assert (await client.get(PODS, "p1", namespace))["spec"]["nodeName"] == "node-a"

    wide = workload_server.kubectl("get", "pods", "-o", "wide", "-n", namespace).stdout
    assert "node-a" in wide.splitlines()[1]


async def test_binding_failures(client: Client, namespace: str) -> None:
    with pytest.raises(NotFound):
        await bind(client, namespace, "missing", "node-a")
    await client.create(PODS, pod("p2"), namespace)
    with pytest.raises(ApiError) as invalid:
        await bind(client, namespace, "p2", None)
    assert invalid.value.code == 422 and invalid.value.reason == "Invalid"
    with pytest.raises(ApiError) as mismatch:
        await client.request(
            "POST", PODS.path(namespace, "p2", "binding"), body=binding("other", "node-a")
        )
    assert mismatch.value.code == 400
    with pytest.raises(ApiError) as get:
        await client.request("GET", PODS.path(namespace, "p2", "binding"))
    assert get.value.code == 405
    assert not (await client.get(PODS, "p2", namespace))["spec"].get("nodeName")


async def test_eviction_deletes_the_pod(client: Client, namespace: str) -> None:
    name = unique("ev")
    await client.create(PODS, pod(name), namespace)
    body = {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": name}}
    answer = await client.request("POST", PODS.path(namespace, name, "eviction"), body=body)
    assert answer["status"] == "Success"
    with pytest.raises(NotFound):
        await client.get(PODS, name, namespace)

    # A bound, running pod terminates gracefully, as on DELETE.
    await client.create(PODS, pod(name), namespace)
    await bind(client, namespace, name, "node-a")
    await client.request("POST", PODS.path(namespace, name, "eviction"), body=body)
    terminating = await client.get(PODS, name, namespace)
    assert terminating["metadata"]["deletionTimestamp"]
    with pytest.raises(ApiError) as late:
        await bind(client, namespace, name, "node-b")
    assert late.value.code == 409
    await client.delete(PODS, name, namespace, grace_period_seconds=0)


async def test_kubectl_drain_evicts_to_the_other_node(
    workload_server: RunningServer, client: Client, namespace: str
) -> None:
    k = kubectl_async(workload_server)
    first, second = unique("first"), unique("second")
    async with kubelet(client, [node_body(first)]):
        await k("create", "deployment", "d", "--image=busybox", "--replicas=2", "-n", namespace)
        await k("rollout", "status", "deployment/d", "-n", namespace, "--timeout=40s")
        async with kubelet(client, [node_body(second)]):
            drained = await k("drain", first, "--timeout=40s")
            assert f"node/{first} cordoned" in drained.stdout
            assert "evicting pod" in drained.stderr + drained.stdout
            await k("rollout", "status", "deployment/d", "-n", namespace, "--timeout=40s")
            pods = (await client.list(PODS, namespace))["items"]
            assert len(pods) == 2 and {p["spec"]["nodeName"] for p in pods} == {second}
