"""The ReplicaSet controller: pods to match replicas, ownership, status, no over-creation."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from hypernetes.client import EVENTS, PODS, REPLICASETS, Client, Resource
from hypernetes.controllers.podutil import EventRecorder, controller_ref, is_active
from hypernetes.controllers.replicaset import Expectations, deletion_rank

from .conftest import eventually, kubelet, node_body, unique

QUOTAS = Resource("", "v1", "resourcequotas", True, "ResourceQuota")


def replicaset(name: str, replicas: int, app: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": app}},
            "template": {
                "metadata": {"labels": {"app": app, "tier": "web"}},
                "spec": {"containers": [{"name": "c", "image": "busybox"}]},
            },
            **spec,
        },
    }


async def active_pods(client: Client, ns: str, app: str) -> list[dict[str, Any]]:
    items = (await client.list(PODS, ns, label_selector=f"app={app}"))["items"]
    return [p for p in items if is_active(p)]


def test_expectations_and_ranking() -> None:
    exp = Expectations()
    exp.expect("ns/rs", adds=2)
    assert not exp.satisfied("ns/rs")
    exp.created("ns/rs")
    exp.created("ns/rs")
    assert exp.satisfied("ns/rs")
    exp.expect("ns/rs", deletes={"ns/p1"})
    assert not exp.satisfied("ns/rs")
    exp.deleted("ns/rs", "ns/p1")
    assert exp.satisfied("ns/rs")
    unbound: dict[str, Any] = {
        "metadata": {"name": "a"},
        "spec": {},
        "status": {"phase": "Pending"},
    }
    ready: dict[str, Any] = {
        "metadata": {"name": "b"},
        "spec": {"nodeName": "n"},
        "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]},
    }
    not_ready: dict[str, Any] = {
        "metadata": {"name": "c"},
        "spec": {"nodeName": "n"},
        "status": {"phase": "Running"},
    }
    ranked = sorted([ready, not_ready, unbound], key=deletion_rank)
    assert [p["metadata"]["name"] for p in ranked] == ["a", "c", "b"]


async def test_replicas_status_and_scale(client: Client, namespace: str) -> None:
    app = unique("app")
    async with kubelet(client, [node_body(unique("n"))]):
        rs = await client.create(REPLICASETS, replicaset("rs", 3, app), namespace)

        async def settled() -> dict[str, Any] | None:
            obj = await client.get(REPLICASETS, "rs", namespace)
            status = obj.get("status") or {}
            done = status.get("availableReplicas") == 3 and status.get("readyReplicas") == 3
            return obj if done else None

        obj = await eventually(settled, "3 available replicas")
        assert obj["status"]["replicas"] == 3 and obj["status"]["fullyLabeledReplicas"] == 3
        assert obj["status"]["observedGeneration"] == obj["metadata"]["generation"]
        pods = await active_pods(client, namespace, app)
        assert len(pods) == 3
        for p in pods:
            ref = controller_ref(p)
            assert ref is not None and ref["uid"] == rs["metadata"]["uid"]
            assert ref["kind"] == "ReplicaSet" and ref["blockOwnerDeletion"] is True
            assert p["metadata"]["name"].startswith("rs-")

        await client.patch(REPLICASETS, "rs", {"spec": {"replicas": 1}}, namespace)

        async def one() -> bool:
            obj = await client.get(REPLICASETS, "rs", namespace)
            return (
                len(await active_pods(client, namespace, app)) == 1
                and obj["status"].get("replicas") == 1
                and obj["status"]["observedGeneration"] == obj["metadata"]["generation"]
            )

        await eventually(one, "scale down to 1")


async def test_no_over_creation_under_watch_lag(client: Client, namespace: str) -> None:
    app = unique("many")
    await client.create(REPLICASETS, replicaset("many", 30, app), namespace)
    seen_max = 0

    async def thirty() -> bool:
        nonlocal seen_max
        count = len(await active_pods(client, namespace, app))
        seen_max = max(seen_max, count)
        return count == 30

    await eventually(thirty, "30 pods")
    await asyncio.sleep(1.0)  # give a buggy controller time to overshoot
    count = len(await active_pods(client, namespace, app))
    assert count == 30 and max(seen_max, count) == 30


async def test_adopts_orphans_and_releases_strays(client: Client, namespace: str) -> None:
    app, node = unique("adopt"), unique("n")
    # A running, ready orphan: should the RS see it late and make one pod too many, the
    # orphan (ready longest) is the last the RS would delete.
    orphan = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "orphan", "labels": {"app": app}},
        "spec": {"nodeName": node, "containers": [{"name": "c", "image": "busybox"}]},
    }
    async with kubelet(client, [node_body(node)]):
        await client.create(PODS, orphan, namespace)

        async def running() -> bool:
            pod = await client.get(PODS, "orphan", namespace)
            return pod["status"].get("phase") == "Running"

        await eventually(running, "the orphan to run")
        rs = await client.create(REPLICASETS, replicaset("adopter", 2, app), namespace)

        async def adopted() -> bool:
            pod = await client.get(PODS, "orphan", namespace)
            ref = controller_ref(pod)
            return ref is not None and ref["uid"] == rs["metadata"]["uid"]

        await eventually(adopted, "the orphan to be adopted")

        async def two() -> bool:
            return len(await active_pods(client, namespace, app)) == 2

        await eventually(two, "2 pods (the orphan counts)")
        await asyncio.sleep(0.5)
        assert len(await active_pods(client, namespace, app)) == 2

        # A pod relabelled out of the selector is released and replaced.
        await client.patch(
            PODS, "orphan", {"metadata": {"labels": {"app": "elsewhere"}}}, namespace
        )

        async def released() -> bool:
            pod = await client.get(PODS, "orphan", namespace)
            return controller_ref(pod) is None and (
                len(await active_pods(client, namespace, app)) == 2
            )

        await eventually(released, "the stray to be released and replaced")


async def test_refused_pods_report_failure(client: Client, namespace: str) -> None:
    quota = {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": {"name": "one-pod"},
        "spec": {"hard": {"pods": "1"}},
    }
    await client.create(QUOTAS, quota, namespace)
    await asyncio.sleep(1.0)  # let the quota controller fill in its status
    await client.create(REPLICASETS, replicaset("capped", 2, unique("capped")), namespace)

    async def failed() -> dict[str, Any] | None:
        obj = await client.get(REPLICASETS, "capped", namespace)
        for cond in (obj.get("status") or {}).get("conditions") or []:
            if cond["type"] == "ReplicaFailure" and cond["status"] == "True":
                return dict(cond)
        return None

    cond = await eventually(failed, "a ReplicaFailure condition")
    assert cond["reason"] == "FailedCreate" and "exceeded quota" in cond["message"]
    obj = await client.get(REPLICASETS, "capped", namespace)
    assert obj["status"]["replicas"] == 1


async def test_event_recorder_aggregates_repeats(client: Client, namespace: str) -> None:
    subject = await client.create(REPLICASETS, replicaset("evented", 0, unique("ev")), namespace)
    recorder = EventRecorder(client, "test-recorder")
    task = asyncio.create_task(recorder.run())
    try:
        for _ in range(3):
            recorder.emit(subject, "Warning", "Repeated", "same thing again")
        recorder.emit(subject, "Normal", "Other", "something else")

        async def written() -> list[dict[str, Any]] | None:
            items = (await client.list(EVENTS, namespace))["items"]
            mine = [e for e in items if e["source"].get("component") == "test-recorder"]
            counts = sorted((e["reason"], e.get("count")) for e in mine)
            return mine if counts == [("Other", 1), ("Repeated", 3)] else None

        events = await eventually(written, "two events, the first counted 3 times")
        repeated = next(e for e in events if e["reason"] == "Repeated")
        assert repeated["involvedObject"]["uid"] == subject["metadata"]["uid"]
        assert repeated["type"] == "Warning" and repeated["reportingComponent"] == "test-recorder"
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
