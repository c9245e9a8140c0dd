"""Fixtures for the workload tests: a server with its controllers, nodes, a fake kubelet.

Nodes here are real Node objects created through the API (with capacity,
allocatable and a Ready condition) and kept alive by Lease heartbeats, as a
node agent would. The node agent itself belongs to later work, so
`FakeKubelet` stands in for it — see its docstring for exactly what it does.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import RunningServer, start_server

from hypernetes.client import (
    LEASES,
    NAMESPACES,
    NODES,
    PODS,
    ApiError,
    Client,
    ClientError,
    Informer,
    NotFound,
    Obj,
    load_kubeconfig,
    object_key,
    split_key,
)

TIMEOUT = 45.0
LEASE_NAMESPACE = "kube-node-lease"


@pytest.fixture(scope="session")
def workload_server() -> Iterator[RunningServer]:
    """A server running every default controller (scheduler, ReplicaSet, ...), for this part.

    Not the suite's shared `api_server`: the Nodes these tests make are
    cluster-wide and would attract other parts' pods.
    """
    with tempfile.TemporaryDirectory(prefix="hn-workloads-") as tmp:
        # No embedded node agent: the only nodes are the tests' own.
        server = start_server(Path(tmp) / "data", "--no-agent")
        try:
            yield server
        finally:
            server.stop()
            keep = os.environ.get("HN_WORKLOADS_LOG")
            if keep:  # for debugging: where to copy the server's log
                shutil.copy(Path(tmp) / "data.log", keep)


@pytest.fixture
def bare_server(tmp_path: Path) -> Iterator[RunningServer]:
    """A server of the test's own without controllers: the test runs the ones it needs."""
    server = start_server(tmp_path / "data", "--no-controllers", "--no-agent")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def client(workload_server: RunningServer) -> AsyncIterator[Client]:
    async with Client(load_kubeconfig(workload_server.kubeconfig)) as c:
        yield c


@pytest.fixture
async def namespace(client: Client) -> AsyncIterator[str]:
    name = f"w-{uuid.uuid4().hex[:8]}"
    await client.create(NAMESPACES, {"metadata": {"name": name}})
    yield name
    with contextlib.suppress(ClientError):
        await client.delete(NAMESPACES, name)


async def eventually(
    check: Callable[[], Awaitable[Any]], what: str, timeout: float = TIMEOUT
) -> Any:
    """Poll `check` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


def node_body(
    name: str,
    *,
    cpu: str = "4",
    memory: str = "8Gi",
    pods: int = 110,
    labels: dict[str, str] | None = None,
    taints: list[dict[str, str]] | None = None,
    unschedulable: bool = False,
    ready: str = "True",
) -> Obj:
    """A Node as a node agent registers it: capacity, allocatable, a Ready condition."""
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    resources = {"cpu": cpu, "memory": memory, "pods": str(pods)}
    spec: dict[str, Any] = {}
    if taints:
        spec["taints"] = taints
    if unschedulable:
        spec["unschedulable"] = True
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {"kubernetes.io/hostname": name, **(labels or {})},
        },
        "spec": spec,
        "status": {
            "capacity": resources,
            "allocatable": resources,
            "conditions": [
                {
                    "type": "Ready",
                    "status": ready,
                    "reason": "KubeletReady",
                    "message": "ready",
                    "lastHeartbeatTime": now,
                    "lastTransitionTime": now,
                }
            ],
        },
    }


async def create_node(client: Client, body: Obj) -> Obj:
    """Create a Node and write its status (the create drops status, as kube does)."""
    created = await client.create(NODES, body)
    status = {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": body["metadata"]["name"]},
        "status": body["status"],
    }
    await client.replace(NODES, created["metadata"]["name"], status, subresource="status")
    return created


class FakeKubelet:
    """TEST DOUBLE standing in for the node agent, which is not built yet (issue 6 item 1).

    It only writes to the API what a kubelet would, for the nodes it was given:
    Lease heartbeats in kube-node-lease every `beat` seconds (stopped per node
    with `kill(node)`); for pods bound to its nodes, a pod status with phase
    Running, a podIP and a Ready condition (True when `ready(pod)` says so);
    and the final deletion (grace 0) of pods that are terminating. It runs no
    containers. On `stop` it deletes its Nodes.
    """

    _ips = itertools.count(2)

    def __init__(
        self,
        client: Client,
        nodes: list[Obj],
        *,
        ready: Callable[[Obj], bool] = lambda _pod: True,
        beat: float = 1.0,
    ) -> None:
        self.client = client
        self.bodies = {n["metadata"]["name"]: n for n in nodes}
        self.alive = set(self.bodies)
        self.ready = ready
        self.beat = beat
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[Any]] = []
        self._ip: dict[str, str] = {}
        self.pods = Informer(client, PODS)

    async def __aenter__(self) -> FakeKubelet:
        with contextlib.suppress(ApiError):
            await self.client.create(NAMESPACES, {"metadata": {"name": LEASE_NAMESPACE}})
        for body in self.bodies.values():
            await create_node(self.client, body)
            await self._renew(body["metadata"]["name"])
        self.pods.add_handlers(self._seen, lambda _old, pod: self._seen(pod), None)
        self._tasks = [
            asyncio.create_task(self.pods.run(self._stop)),
            asyncio.create_task(self._heartbeats()),
        ]
        await self.pods.wait_synced(TIMEOUT)
        return self

    async def __aexit__(self, *_exc: object) -> None:
        self._stop.set()
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for name in self.bodies:
            with contextlib.suppress(ClientError):
                await self.client.delete(NODES, name)
            with contextlib.suppress(ClientError):
                await self.client.delete(LEASES, name, LEASE_NAMESPACE)

    def kill(self, node: str) -> None:
        """This node's agent dies: no more heartbeats or status writes from it."""
        self.alive.discard(node)

    def pods_on(self, node: str) -> list[Obj]:
        return [p for p in self.pods.items() if (p.get("spec") or {}).get("nodeName") == node]

    async def _renew(self, node: str) -> None:
        now = time.time()
        micro = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1e6):06d}Z"
        body = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": node, "namespace": LEASE_NAMESPACE},
            "spec": {"holderIdentity": node, "leaseDurationSeconds": 40, "renewTime": micro},
        }
        try:
            await self.client.patch(LEASES, node, {"spec": body["spec"]}, LEASE_NAMESPACE)
        except NotFound:
            await self.client.create(LEASES, body, LEASE_NAMESPACE)

    async def _heartbeats(self) -> None:
        while True:
            for node in list(self.alive):
                with contextlib.suppress(ClientError):
                    await self._renew(node)
            await asyncio.sleep(self.beat)

    async def _seen(self, pod: Obj) -> None:
        node = (pod.get("spec") or {}).get("nodeName")
        if node not in self.alive:
            return
        namespace, name = split_key(object_key(pod))
        try:
            if pod["metadata"].get("deletionTimestamp"):
                await self.client.delete(PODS, name, namespace, grace_period_seconds=0)
                return
            status = pod.get("status") or {}
            ready = "True" if self.ready(pod) else "False"
            current = {c.get("type"): c.get("status") for c in status.get("conditions") or []}
            if status.get("phase") == "Running" and current.get("Ready") == ready:
                return
            key = object_key(pod)
            if key not in self._ip:
                n = next(self._ips)
                self._ip[key] = f"10.77.{n // 250}.{n % 250 + 2}"
            ip = self._ip[key]
            now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            containers = [
                {
                    "name": c.get("name"),
                    "image": c.get("image"),
                    "imageID": "",
                    "ready": ready == "True",
                    "started": True,
                    "restartCount": 0,
                    "state": {"running": {"startedAt": now}},
                }
                for c in (pod.get("spec") or {}).get("containers") or []
            ]
            patch = {
                "status": {
                    "phase": "Running",
                    "podIP": ip,
                    "podIPs": [{"ip": ip}],
                    "hostIP": "192.0.2.1",
                    "startTime": status.get("startTime") or now,
                    "containerStatuses": containers,
                    "conditions": [
                        {"type": "Initialized", "status": "True", "lastTransitionTime": now},
                        {"type": "Ready", "status": ready, "lastTransitionTime": now},
                        {"type": "ContainersReady", "status": ready, "lastTransitionTime": now},
                        {"type": "PodScheduled", "status": "True", "lastTransitionTime": now},
                    ],
                }
            }
            await self.client.patch(PODS, name, patch, namespace, subresource="status")
        except ClientError:
            pass  # the pod changed or went meanwhile: the next event brings it back


@contextlib.asynccontextmanager
async def kubelet(client: Client, nodes: list[Obj], **kwargs: Any) -> AsyncIterator[FakeKubelet]:
    async with FakeKubelet(client, nodes, **kwargs) as k:
        yield k


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def kubectl_async(server: RunningServer) -> Callable[..., Awaitable[Any]]:
    """`server.kubectl` run in a thread, so the test's fake kubelet keeps working meanwhile."""

    async def run(*args: str, **kwargs: Any) -> Any:
        return await asyncio.to_thread(server.kubectl, *args, **kwargs)

    return run
