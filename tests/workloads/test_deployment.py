"""Deployments with the real kubectl: create, scale, rollout status/history/undo, strategies."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from tests.conftest import RunningServer

from hypernetes.client import DEPLOYMENTS, PODS, REPLICASETS, Client
from hypernetes.controllers.deployment import (
    new_replicas_for_rolling,
    surge_and_unavailable,
    template_hash,
)
from hypernetes.controllers.podutil import is_active, is_ready

from .conftest import eventually, kubectl_async, kubelet, node_body, unique


def only_good_images(pod: dict[str, Any]) -> bool:
    """Readiness for the fake kubelet: an image tagged `broken` never gets ready."""
    return not any(c["image"].endswith(":broken") for c in pod["spec"]["containers"])


async def replicasets(client: Client, ns: str) -> dict[str, dict[str, Any]]:
    items = (await client.list(REPLICASETS, ns))["items"]
    return {rs["spec"]["template"]["spec"]["containers"][0]["image"]: rs for rs in items}


def test_fenceposts() -> None:
    def deployment(replicas: int, surge: Any, unavailable: Any) -> dict[str, Any]:
        return {
            "metadata": {},
            "spec": {
                "replicas": replicas,
                "strategy": {
                    "type": "RollingUpdate",
                    "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable},
                },
            },
        }

    assert surge_and_unavailable(deployment(10, "25%", "25%")) == (3, 2)
    assert surge_and_unavailable(deployment(4, 0, 0)) == (0, 1)
    assert surge_and_unavailable(deployment(4, "0%", 2)) == (0, 2)
    d = deployment(4, 1, 1)
    old = {"metadata": {}, "spec": {"replicas": 4}}
    new = {"metadata": {}, "spec": {"replicas": 0}}
    assert new_replicas_for_rolling(d, [old, new], new) == 1  # 4 + 1 surge - 4
    t = {"metadata": {"labels": {"app": "x"}}, "spec": {"containers": []}}
    assert template_hash(t, None) == template_hash(t, 0) != template_hash(t, 1)
    assert set(template_hash(t, None)) <= set("bcdfghjklmnpqrstvwxz2456789")


async def test_kubectl_deployment_lifecycle(
    workload_server: RunningServer, client: Client, namespace: str
) -> None:
    nodes = [node_body(unique("n")), node_body(unique("n"))]
    names = {n["metadata"]["name"] for n in nodes}
    k = kubectl_async(workload_server)
    async with kubelet(client, nodes):
        await k("create", "deployment", "web", "--image=nginx:1", "--replicas=2", "-n", namespace)
        out = (
            await k("rollout", "status", "deployment/web", "-n", namespace, "--timeout=40s")
        ).stdout
        assert 'deployment "web" successfully rolled out' in out
        wide = (await k("get", "pods", "-o", "wide", "-n", namespace)).stdout.splitlines()
        assert len(wide) == 3 and all(any(n in line for n in names) for line in wide[1:])
        assert all("Running" in line and "1/1" in line for line in wide[1:])

        await k("scale", "deployment/web", "--replicas=4", "-n", namespace)
        await k("rollout", "status", "deployment/web", "-n", namespace, "--timeout=40s")
        got = (await k("get", "deployment", "web", "-n", namespace)).stdout
        assert "4/4" in got.splitlines()[1]
        placed = [p["spec"]["nodeName"] for p in (await client.list(PODS, namespace))["items"]]
        assert sorted(placed.count(n) for n in names) == [2, 2]  # spread over both nodes

        await k("set", "image", "deployment/web", "nginx=nginx:2", "-n", namespace)
        await k("annotate", "deployment/web", "kubernetes.io/change-cause=nginx 2", "-n", namespace)
        await k("rollout", "status", "deployment/web", "-n", namespace, "--timeout=40s")
        history = (await k("rollout", "history", "deployment/web", "-n", namespace)).stdout
        assert history.split()[-4:] == ["1", "<none>", "2", "nginx 2"] or (
            "2         nginx 2" in history
        )
        sets = await replicasets(client, namespace)
        assert (
            sets["nginx:2"]["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "2"
        )
        assert sets["nginx:1"]["spec"]["replicas"] == 0
        assert (
            sets["nginx:2"]["metadata"]["labels"]["pod-template-hash"]
            in (sets["nginx:2"]["metadata"]["name"])
        )

        out = (await k("rollout", "undo", "deployment/web", "-n", namespace)).stdout
        assert "rolled back" in out
        await k("rollout", "status", "deployment/web", "-n", namespace, "--timeout=40s")
        sets = await replicasets(client, namespace)
        assert len(sets) == 2  # the old ReplicaSet came back; no third one
        assert (
            sets["nginx:1"]["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "3"
        )
        assert sets["nginx:1"]["spec"]["replicas"] == 4 and sets["nginx:2"]["spec"]["replicas"] == 0
        d = await client.get(DEPLOYMENTS, "web", namespace)
        assert d["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "3"
        assert d["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1"
        conditions = {c["type"]: c for c in d["status"]["conditions"]}
        assert conditions["Available"]["status"] == "True"
        assert conditions["Progressing"]["reason"] == "NewReplicaSetAvailable"
        history = (await k("rollout", "history", "deployment/web", "-n", namespace)).stdout
        revisions = [line.split()[0] for line in history.splitlines() if line[:1].isdigit()]
        assert revisions == ["2", "3"]

        undo_again = await k(
            "rollout", "undo", "deployment/web", "--to-revision=9", "-n", namespace, check=False
        )
        assert undo_again.returncode != 0 and "revision" in undo_again.stderr


async def test_rolling_update_respects_max_unavailable(
    workload_server: RunningServer, client: Client, namespace: str
) -> None:
    """4 replicas, maxSurge 1, maxUnavailable 1, a new image that never gets ready."""
    k = kubectl_async(workload_server)
    async with kubelet(client, [node_body(unique("n"))], ready=only_good_images):
        await k("create", "deployment", "ru", "--image=app:1", "--replicas=4", "-n", namespace)
        await k(
            "patch",
            "deployment/ru",
            "-n",
            namespace,
            "-p",
            '{"spec":{"strategy":{"rollingUpdate":{"maxSurge":1,"maxUnavailable":1}}}}',
        )
        await k("rollout", "status", "deployment/ru", "-n", namespace, "--timeout=40s")
        await k("set", "image", "deployment/ru", "app=app:broken", "-n", namespace)

        low_water, high_water = 4, 0

        async def at_fence() -> bool:
            nonlocal low_water, high_water
            pods = [p for p in (await client.list(PODS, namespace))["items"] if is_active(p)]
            low_water = min(low_water, sum(1 for p in pods if is_ready(p)))
            high_water = max(high_water, len(pods))
            sets = await replicasets(client, namespace)
            new = sets.get("app:broken", {}).get("spec", {}).get("replicas")
            return sets["app:1"]["spec"]["replicas"] == 3 and new == 2 and len(pods) == 5

        # Stuck: 3 old (4 - maxUnavailable) + 2 new (up to 4 + maxSurge in all).
        await eventually(at_fence, "the rollout to stop at 3 old + 2 new")
        for _ in range(10):  # and it stays there
            await at_fence()
            await asyncio.sleep(0.1)
        sets = await replicasets(client, namespace)
        assert sets["app:1"]["spec"]["replicas"] == 3
        assert sets["app:broken"]["spec"]["replicas"] == 2
        assert low_water >= 3 and high_water <= 5
        stuck = await k(
            "rollout", "status", "deployment/ru", "-n", namespace, "--timeout=2s", check=False
        )
        assert stuck.returncode != 0
        assert "2 out of 4 new replicas have been updated" in stuck.stdout

        await k("rollout", "undo", "deployment/ru", "-n", namespace)
        await k("rollout", "status", "deployment/ru", "-n", namespace, "--timeout=40s")
        sets = await replicasets(client, namespace)
        assert sets["app:1"]["spec"]["replicas"] == 4
        assert sets["app:broken"]["spec"]["replicas"] == 0


async def test_progress_deadline(
    workload_server: RunningServer, client: Client, namespace: str
) -> None:
    k = kubectl_async(workload_server)
    async with kubelet(client, [node_body(unique("n"))], ready=only_good_images):
        await k("create", "deployment", "slow", "--image=app:broken", "-n", namespace)
        await k(
            "patch",
            "deployment/slow",
            "-n",
            namespace,
            "-p",
            '{"spec":{"progressDeadlineSeconds":2}}',
        )
        failed = await k(
            "rollout", "status", "deployment/slow", "-n", namespace, "--timeout=30s", check=False
        )
        assert failed.returncode != 0
        assert 'deployment "slow" exceeded its progress deadline' in failed.stderr
        d = await client.get(DEPLOYMENTS, "slow", namespace)
        progressing = next(c for c in d["status"]["conditions"] if c["type"] == "Progressing")
        assert progressing["status"] == "False"
        assert progressing["reason"] == "ProgressDeadlineExceeded"


async def test_recreate_never_overlaps(
    workload_server: RunningServer, client: Client, namespace: str
) -> None:
    k = kubectl_async(workload_server)
    async with kubelet(client, [node_body(unique("n"))]):
        await k("create", "deployment", "rc", "--image=app:1", "--replicas=3", "-n", namespace)
        await k(
            "patch",
            "deployment/rc",
            "-n",
            namespace,
            "--type=json",
            "-p",
            '[{"op":"replace","path":"/spec/strategy","value":{"type":"Recreate"}}]',
        )
        await k("rollout", "status", "deployment/rc", "-n", namespace, "--timeout=40s")
        await k("set", "image", "deployment/rc", "app=app:2", "-n", namespace)
        for _ in range(50):
            images = {
                p["spec"]["containers"][0]["image"]
                for p in (await client.list(PODS, namespace))["items"]
                if is_active(p)
            }
            assert images != {"app:1", "app:2"}, "old and new pods ran at the same time"
            if images == {"app:2"}:
                break
            await asyncio.sleep(0.1)
        await k("rollout", "status", "deployment/rc", "-n", namespace, "--timeout=40s")
        pods = [p for p in (await client.list(PODS, namespace))["items"] if is_active(p)]
        assert len(pods) == 3 and {p["spec"]["containers"][0]["image"] for p in pods} == {"app:2"}


@pytest.mark.parametrize("bad", ["--replicas=-1"])
def test_kubectl_scale_refuses_negative(workload_server: RunningServer, bad: str) -> None:
    result = workload_server.kubectl("scale", "deployment/none", bad, "-n", "default", check=False)
    assert result.returncode != 0 and result.stderr.strip()


async def test_paused_rollout_waits_for_resume(
    workload_server: RunningServer, client: Client, namespace: str
) -> None:
    k = kubectl_async(workload_server)
    async with kubelet(client, [node_body(unique("n"))]):
        await k("create", "deployment", "pz", "--image=app:1", "--replicas=2", "-n", namespace)
        await k("rollout", "status", "deployment/pz", "-n", namespace, "--timeout=40s")
        await k("rollout", "pause", "deployment/pz", "-n", namespace)
        await k("set", "image", "deployment/pz", "app=app:2", "-n", namespace)
        await asyncio.sleep(1.0)
        assert set(await replicasets(client, namespace)) == {"app:1"}  # nothing rolled
        await k("rollout", "resume", "deployment/pz", "-n", namespace)
        await k("rollout", "status", "deployment/pz", "-n", namespace, "--timeout=40s")
        sets = await replicasets(client, namespace)
        assert sets["app:2"]["spec"]["replicas"] == 2 and sets["app:1"]["spec"]["replicas"] == 0
