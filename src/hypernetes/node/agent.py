"""The node agent: registers this machine as a Node and runs the pods bound to it.

`NodeAgent.run` registers (or refreshes) the Node with capacity, allocatable,
conditions and addresses, renews its Lease in kube-node-lease every 10 s,
watches the pods whose spec.nodeName is this node and gives each one a
`PodWorker`. It talks to the API server only through the client library,
so it runs in-process in `hypernetes server` or alone on another machine.

After a restart the runtime re-attaches to the sandboxes left running and
the workers adopt them by pod uid, without restarting anything; sandboxes
whose pod no longer exists are removed once the pod list has been read.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import socket
from pathlib import Path
from typing import Any

from hypernetes.client import (
    LEASES,
    NODES,
    PODS,
    ApiError,
    Client,
    ClientError,
    Conflict,
    Informer,
    NotFound,
)
from hypernetes.controllers.podutil import EventRecorder
from hypernetes.node import machine
from hypernetes.node.network import LoopbackNetwork, PodNetwork, default_network
from hypernetes.node.pods import NodeContext, PodWorker
from hypernetes.node.streams import StreamServer
from hypernetes.runtime import Runtime, RuntimeFailure

log = logging.getLogger(__name__)

Obj = dict[str, Any]

LEASE_NAMESPACE = "kube-node-lease"
LEASE_DURATION = 40
HEARTBEAT = 10.0
STATUS_EVERY = 3
"""Node status is rewritten every this many heartbeats (and whenever it is not Ready)."""
ORPHAN_SWEEP = 30.0


def _micro_now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class NodeAgent:
    def __init__(
        self,
        client: Client,
        runtime: Runtime,
        data_dir: Path,
        node_name: str | None = None,
        network: PodNetwork | None = None,
        insecure_registries: tuple[str, ...] = (),
        heartbeat: float = HEARTBEAT,
        labels: dict[str, str] | None = None,
        stream_listen: tuple[str, int] | None = ("0.0.0.0", 10250),
        serving_cert: tuple[Path, Path] | None = None,
    ) -> None:
        self.client = client
        self.runtime = runtime
        self.data_dir = Path(data_dir)
        self.node_name = (node_name or socket.gethostname()).lower()
        self.heartbeat = heartbeat
        self.labels = labels or {}
        self.node_ip = machine.internal_ip(client.config.server)
        self.events = EventRecorder(client, "hypernetes-agent")
        self.ctx = NodeContext(
            client=client,
            runtime=runtime,
            node_name=self.node_name,
            node_ip=self.node_ip,
            network=network or LoopbackNetwork(),
            events=self.events,
            log_root=self.data_dir / "pod-logs",
            insecure_registries=insecure_registries,
        )
        self._choose_network = network is None
        self.workers: dict[str, PodWorker] = {}
        self.pods = Informer(client, PODS, field_selector=f"spec.nodeName={self.node_name}")
        self.pods.add_handlers(self._on_pod, self._on_pod_update, self._on_pod_delete)
        self._ticks = 0
        self.stream_listen = stream_listen
        self.serving_cert = serving_cert
        self.streams: StreamServer | None = None
        self._ready_since = _now()
        self.ready = asyncio.Event()
        """Set once the Node is registered and the pod list has been read."""

    # -- lifecycle -------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Runs until `stop` is set; then detaches, leaving the pods running."""
        await self.runtime.open()
        tasks: list[asyncio.Task[Any]] = []
        if self._choose_network:  # tenant networks if this host can run them
            self.ctx.network = default_network(
                self.client, self.node_name, self.data_dir / "network", self.node_ip
            )
        try:
            await self.ctx.network.start()
            await self._start_streams()
            await self._register()
            informer_stop = asyncio.Event()
            tasks = [
                asyncio.create_task(self.events.run()),
                asyncio.create_task(self.pods.run(informer_stop)),
                asyncio.create_task(self._heartbeat_loop()),
            ]
            await self.pods.wait_synced()
            await self._sweep_orphans()
            tasks.append(asyncio.create_task(self._sweep_loop()))
            self.ready.set()
            log.info("node %s ready (%s)", self.node_name, self.node_ip)
            await stop.wait()
            informer_stop.set()
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            for worker in list(self.workers.values()):
                await worker.stop()
            await self.ctx.network.close()
            if self.streams is not None:
                await self.streams.stop()
            await self.runtime.close()

    # -- streams -------------------------------------------------------------------

    async def _start_streams(self) -> None:
        ca = self.client.config.ca_pem
        if self.stream_listen is None or ca is None:
            log.warning("no stream server: logs, exec and attach will not work on this node")
            return
        self.streams = StreamServer(self.runtime, self._lookup, ca, self.serving_cert)
        host, port = self.stream_listen
        await self.streams.start(host, port, (self.node_ip, self.node_name, "127.0.0.1"))

    async def _lookup(self, namespace: str, name: str) -> tuple[str, str] | None:
        pod = self.pods.get(name, namespace)
        if pod is None:
            return None
        uid = pod["metadata"]["uid"]
        for sandbox in await self.runtime.list_pod_sandboxes():
            if sandbox.uid == uid:
                return uid, sandbox.id
        return None

    # -- pods --------------------------------------------------------------------

    def _worker_done(self, worker: PodWorker) -> None:
        if self.workers.get(worker.uid) is worker:
            del self.workers[worker.uid]

    def _on_pod(self, pod: Obj) -> None:
        uid = pod["metadata"]["uid"]
        worker = self.workers.get(uid)
        if worker is None or (worker.task is not None and worker.task.done()):
            worker = PodWorker(self.ctx, pod, self._worker_done)
            self.workers[uid] = worker
            worker.start()
        else:
            worker.update(pod)

    def _on_pod_update(self, old: Obj, new: Obj) -> None:
        self._on_pod(new)

    def _on_pod_delete(self, pod: Obj) -> None:
        worker = self.workers.get(pod["metadata"]["uid"])
        if worker is None:
            worker = PodWorker(self.ctx, pod, self._worker_done)
            self.workers[worker.uid] = worker
            worker.mark_gone()
            worker.start()
        else:
            worker.mark_gone()

    async def _sweep_orphans(self) -> None:
        """Removes sandboxes whose pod is gone (deleted while the agent was away)."""
        known = {p["metadata"]["uid"] for p in self.pods.items()} | set(self.workers)
        for sandbox in await self.runtime.list_pod_sandboxes():
            if sandbox.uid in known:
                continue
            log.info(
                "removing orphaned sandbox %s (pod %s/%s gone)",
                sandbox.id,
                sandbox.namespace,
                sandbox.name,
            )
            with contextlib.suppress(RuntimeFailure):
                await self.runtime.stop_pod_sandbox(sandbox.id, grace=0)
                await self.runtime.remove_pod_sandbox(sandbox.id)
            meta = {"uid": sandbox.uid, "namespace": sandbox.namespace, "name": sandbox.name}
            try:
                await self.ctx.network.detach({"metadata": meta})
            except Exception as exc:  # the port clean-up of the agent's next start retries
                log.warning(
                    "pod %s/%s: releasing its network: %s", sandbox.namespace, sandbox.name, exc
                )

    async def _sweep_loop(self) -> None:
        while True:
            await asyncio.sleep(ORPHAN_SWEEP)
            try:
                await self._sweep_orphans()
            except Exception:
                log.exception("orphan sweep failed")

    # -- the Node and its heartbeat ----------------------------------------------

    async def _register(self) -> None:
        body = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": self.node_name,
                "labels": {
                    "kubernetes.io/hostname": self.node_name,
                    "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": machine.node_info()["architecture"],
                    **self.labels,
                },
            },
            "spec": {},
        }
        while True:
            try:
                with contextlib.suppress(Conflict):
                    await self.client.create(NODES, body)
                await self._post_status()
                await self._renew_lease()
                return
            except (ApiError, ClientError) as exc:
                log.warning("node %s: cannot register yet: %s", self.node_name, exc)
                await asyncio.sleep(2)

    def _conditions(self) -> list[Obj]:
        now = _now()

        def cond(kind: str, status: str, reason: str, message: str) -> Obj:
            return {
                "type": kind,
                "status": status,
                "reason": reason,
                "message": message,
                "lastHeartbeatTime": now,
                "lastTransitionTime": self._ready_since,
            }

        return [
            cond(
                "MemoryPressure",
                "False",
                "KubeletHasSufficientMemory",
                "agent has sufficient memory available",
            ),
            cond("DiskPressure", "False", "KubeletHasNoDiskPressure", "agent has no disk pressure"),
            cond(
                "PIDPressure",
                "False",
                "KubeletHasSufficientPID",
                "agent has sufficient PID available",
            ),
            cond("Ready", "True", "KubeletReady", "hypernetes agent is posting ready status"),
        ]

    async def _post_status(self) -> None:
        cap, alloc = machine.capacity(self.data_dir)
        images = [
            {"names": i.repo_tags + i.repo_digests, "sizeBytes": i.size}
            for i in await self.runtime.list_images()
        ]
        status = {
            "capacity": cap,
            "allocatable": alloc,
            "conditions": self._conditions(),
            "addresses": machine.addresses(self.client.config.server, self.node_name),
            "nodeInfo": machine.node_info(),
            "images": images[:50],
            "daemonEndpoints": {
                "kubeletEndpoint": {"Port": self.streams.port if self.streams else 0}
            },
        }
        await self.client.patch(NODES, self.node_name, {"status": status}, subresource="status")

    async def _renew_lease(self) -> None:
        spec = {
            "holderIdentity": self.node_name,
            "leaseDurationSeconds": LEASE_DURATION,
            "renewTime": _micro_now(),
        }
        try:
            await self.client.patch(LEASES, self.node_name, {"spec": spec}, LEASE_NAMESPACE)
        except NotFound:
            node = await self.client.get(NODES, self.node_name)
            lease = {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {
                    "name": self.node_name,
                    "namespace": LEASE_NAMESPACE,
                    "ownerReferences": [
                        {
                            "apiVersion": "v1",
                            "kind": "Node",
                            "name": self.node_name,
                            "uid": node["metadata"]["uid"],
                        }
                    ],
                },
                "spec": spec,
            }
            with contextlib.suppress(Conflict):
                await self.client.create(LEASES, lease, LEASE_NAMESPACE)

    async def _heartbeat_loop(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat)
            self._ticks += 1
            try:
                await self._renew_lease()
                node = await self.client.get(NODES, self.node_name)
                ready = [
                    c
                    for c in (node.get("status") or {}).get("conditions") or []
                    if c.get("type") == "Ready"
                ]
                if self._ticks % STATUS_EVERY == 0 or not ready or ready[0]["status"] != "True":
                    await self._post_status()
            except NotFound:
                # The Node was deleted (by an admin): register again, as kubelet does.
                await self._register()
            except (ApiError, ClientError) as exc:
                log.warning("node %s: heartbeat failed: %s", self.node_name, exc)
