"""Node lifecycle: a node that stops heartbeating is marked Unknown, tainted, and emptied.

The controllers run in this process with short timings (grace 2 s, eviction
after 2 s more) against a server of the test's own that runs none itself.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from tests.conftest import RunningServer

from hypernetes.client import NODES, PODS, REPLICASETS, Client, load_kubeconfig
from hypernetes.controllers import (
    NodeLifecycleController,
    ReplicaSetController,
    Scheduler,
)
from hypernetes.controllers.nodelifecycle import NodeLifecycleController as NLC
from hypernetes.controllers.podutil import condition, is_active

from .conftest import eventually, kubelet, node_body, unique


@contextlib.asynccontextmanager
async def controllers(client: Client) -> AsyncIterator[NodeLifecycleController]:
    lifecycle = NodeLifecycleController(
        client, grace_period=2.0, eviction_timeout=2.0, monitor_period=0.3
    )
    running = [Scheduler(client), ReplicaSetController(client), lifecycle]
    stop = asyncio.Event()
    tasks = [asyncio.create_task(c.run(stop)) for c in running]
    try:
        yield lifecycle
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks), 30)


def test_toleration_seconds() -> None:
    nlc = NLC.__new__(NLC)
    nlc.eviction_timeout = 300.0
    taint = {
        "key": "node.kubernetes.io/unreachable",
        "effect": "NoExecute",
        "timeAdded": "2026-01-01T00:00:00Z",
    }
    added = 1767225600.0
    plain: dict[str, Any] = {"spec": {}}
    assert nlc._time_left(plain, taint, added + 100) == 200
    short = {
        "spec": {
            "tolerations": [
                {
                    "key": "node.kubernetes.io/unreachable",
                    "operator": "Exists",
                    "effect": "NoExecute",
                    "tolerationSeconds": 10,
                }
            ]
        }
    }
    assert nlc._time_left(short, taint, added + 100) == -90
    forever = {"spec": {"tolerations": [{"operator": "Exists"}]}}
    assert nlc._time_left(forever, taint, added) == float("inf")


async def test_lost_node_pods_move(bare_server: RunningServer) -> None:
    async with Client(load_kubeconfig(bare_server.kubeconfig)) as client, controllers(client):
        lost, kept = unique("lost"), unique("kept")
        async with kubelet(client, [node_body(lost), node_body(kept)], beat=0.5) as agents:
            body = {
                "apiVersion": "apps/v1",
                "kind": "ReplicaSet",
                "metadata": {"name": "rs"},
                "spec": {
                    "replicas": 4,
                    "selector": {"matchLabels": {"app": "x"}},
                    "template": {
                        "metadata": {"labels": {"app": "x"}},
                        "spec": {"containers": [{"name": "c", "image": "busybox"}]},
                    },
                },
            }
            await client.create(REPLICASETS, body, "default")

            async def spread() -> bool:
                pods = [p for p in agents.pods.items() if is_active(p)]
                on = [p["spec"].get("nodeName") for p in pods]
                return len(pods) == 4 and on.count(lost) == 2 and on.count(kept) == 2

            await eventually(spread, "4 pods over both nodes")
            await asyncio.sleep(3)  # heartbeats keep both nodes Ready past the grace period
            node = await client.get(NODES, lost)
            assert (condition(node, "Ready") or {}).get("status") == "True"

            agents.kill(lost)

            async def unknown() -> dict[str, Any] | None:
                node = await client.get(NODES, lost)
                ready = condition(node, "Ready") or {}
                return node if ready.get("status") == "Unknown" else None

            node = await eventually(unknown, "the lost node to become Unknown", timeout=15)
            assert (condition(node, "Ready") or {}).get("reason") == "NodeStatusUnknown"

            async def tainted() -> bool:
                node = await client.get(NODES, lost)
                return any(
                    t["key"] == "node.kubernetes.io/unreachable" and t["effect"] == "NoExecute"
                    for t in node["spec"].get("taints") or []
                )

            await eventually(tainted, "the unreachable taint", timeout=10)

            async def moved() -> bool:
                pods = (await client.list(PODS, "default"))["items"]
                active = [p for p in pods if is_active(p)]
                evicted = [p for p in pods if p["spec"].get("nodeName") == lost]
                return (
                    len(active) == 4
                    and all(p["spec"].get("nodeName") == kept for p in active)
                    and len(evicted) == 2
                    and all(p["metadata"].get("deletionTimestamp") for p in evicted)
                )

            await eventually(moved, "the lost node's pods replaced on the other", timeout=20)
            kept_node = await client.get(NODES, kept)
            assert (condition(kept_node, "Ready") or {}).get("status") == "True"
            assert not kept_node["spec"].get("taints")
            # The evicted pods were marked not ready when their node was lost.
            for pod in (await client.list(PODS, "default"))["items"]:
                if pod["spec"].get("nodeName") == lost:
                    assert (condition(pod, "Ready") or {}).get("status") == "False"
