"""The pod worker: drives one pod bound to this node to its desired state.

One `PodWorker` task per pod (by uid). Each round (`_sync`) it reads what
the runtime has for the pod (sandboxes are found by the pod's uid, so a
restarted agent adopts what is running), makes the sandbox and containers
the spec asks for, applies the restart policy with back-off, and writes
the pod's status. It sleeps until something happens: a new version of the
pod, a container exit, a probe result, or the end of a back-off.

Deletion: a pod with a deletionTimestamp gets its containers stopped with
its grace period; then the worker removes the sandbox and deletes the pod
object with gracePeriodSeconds=0, as kubelet does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hypernetes.client import NAMESPACES, PODS, Client, ClientError, NotFound
from hypernetes.controllers.podutil import EventRecorder
from hypernetes.node.backoff import BackOff
from hypernetes.node.env import ConfigError, Sources, build_env
from hypernetes.node.network import PodNetwork
from hypernetes.node.probes import Prober, Target
from hypernetes.node.status import (
    ContainerView,
    build_status,
    same_status,
)
from hypernetes.resources import quantity
from hypernetes.resources.platform import TENANT_LABEL
from hypernetes.runtime import (
    ContainerConfig,
    ContainerState,
    ContainerStatus,
    PodSandboxConfig,
    Resources,
    Runtime,
    RuntimeFailure,
    SandboxState,
    pod_resources,
)

log = logging.getLogger(__name__)

Obj = dict[str, Any]

RUNTIME_ANNOTATION = "hypernetes.io/runtime"
"""Pod annotation choosing the runtime ("vm" or "runc"), as runtimeClassName does."""
INIT_LABEL = "hypernetes.io/init-container"
PULL_ERROR_SHOWN = 2.0
"""Seconds ErrImagePull stays visible before the status says ImagePullBackOff."""
RESYNC = 10.0


@dataclass
class NodeContext:
    """What every pod worker of this agent shares."""

    client: Client
    runtime: Runtime
    node_name: str
    node_ip: str
    network: PodNetwork
    events: EventRecorder
    log_root: Path
    insecure_registries: tuple[str, ...] = ()
    crash_backoff: BackOff = field(default_factory=BackOff)
    pull_backoff: BackOff = field(default_factory=BackOff)
    namespace_tenants: dict[str, tuple[float, str | None]] = field(default_factory=dict)

    async def tenant_of(self, namespace: str) -> str | None:
        """The tenant owning a namespace (cached a minute); None for system namespaces."""
        cached = self.namespace_tenants.get(namespace)
        if cached and time.monotonic() - cached[0] < 60:
            return cached[1]
        try:
            ns = await self.client.get(NAMESPACES, namespace)
            tenant = (ns["metadata"].get("labels") or {}).get(TENANT_LABEL)
        except NotFound:
            tenant = None
        self.namespace_tenants[namespace] = (time.monotonic(), tenant)
        return tenant


def quantity_value(value: Any, cpu: bool = False) -> float:
    if value is None:
        return 0.0
    try:
        q = quantity.parse(str(value))
    except ValueError:
        return 0.0
    return q.milli_value() / 1000 if cpu else float(q.int_value())


def container_resources(c: Obj) -> Resources:
    res = c.get("resources") or {}
    req, lim = res.get("requests") or {}, res.get("limits") or {}
    return Resources(
        cpu_request=quantity_value(req.get("cpu"), cpu=True),
        cpu_limit=quantity_value(lim.get("cpu"), cpu=True),
        memory_request=int(quantity_value(req.get("memory"))),
        memory_limit=int(quantity_value(lim.get("memory"))),
    )


def default_pull_policy(image: str) -> str:
    last = image.rsplit("/", 1)[-1]
    if "@" in last:
        return "IfNotPresent"
    tag = last.partition(":")[2]
    return "Always" if tag in ("", "latest") else "IfNotPresent"


def should_restart(policy: str, exit_code: int) -> bool:
    return policy == "Always" or (policy == "OnFailure" and exit_code != 0)


class PodWorker:
    """Keeps one pod in its desired state until it is deleted."""

    def __init__(self, ctx: NodeContext, pod: Obj, on_done: Callable[[PodWorker], None]) -> None:
        self.ctx = ctx
        self.pod = pod
        self.uid: str = pod["metadata"]["uid"]
        self.gone = False  # the pod object was deleted from the API
        self._on_done = on_done
        self._kick = asyncio.Event()
        self._wake_at = 0.0
        self._sid: str | None = None
        self._runtime_kind = "vm"
        self._pod_ip: str | None = None
        self._waiting: dict[str, tuple[str, str]] = {}
        self._start_errors: dict[str, tuple[str, str, float]] = {}
        self._pull_failed_at: dict[str, float] = {}
        self._attempts: dict[str, int] = {}
        self._probers: dict[str, list[asyncio.Task[None]]] = {}
        self._exit_watch: dict[str, asyncio.Task[None]] = {}
        self._ready: dict[str, bool] = {}
        self._started: dict[str, asyncio.Event] = {}
        self._unhealthy: dict[str, str] = {}
        self._last_status: Obj | None = None
        self._terminal = False
        self.task: asyncio.Task[None] | None = None

    # -- driving -------------------------------------------------------------

    def start(self) -> None:
        self.task = asyncio.create_task(self._run(), name=f"pod-{self.uid}")

    def update(self, pod: Obj) -> None:
        self.pod = pod
        self.kick()

    def mark_gone(self) -> None:
        self.gone = True
        self.kick()

    def kick(self) -> None:
        self._kick.set()

    def _wake_in(self, seconds: float) -> None:
        at = time.monotonic() + max(0.05, seconds)
        self._wake_at = at if self._wake_at == 0 else min(self._wake_at, at)

    async def _run(self) -> None:
        try:
            while True:
                self._kick.clear()
                self._wake_at = 0.0
                try:
                    if await self._sync():
                        return
                except (ClientError, RuntimeFailure, OSError) as exc:
                    log.warning("pod %s: sync failed: %s", self._name(), exc)
                    self._wake_in(2.0)
                except Exception:
                    log.exception("pod %s: sync failed", self._name())
                    self._wake_in(5.0)
                delay = RESYNC if self._wake_at == 0 else self._wake_at - time.monotonic()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._kick.wait(), max(0.05, delay))
        finally:
            self._stop_watchers()
            self._on_done(self)

    async def stop(self) -> None:
        """Stops driving the pod (agent shutdown); the pod keeps running."""
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task

    def _name(self) -> str:
        meta = self.pod["metadata"]
        return f"{meta.get('namespace')}/{meta['name']}"

    def _event(self, kind: str, reason: str, message: str) -> None:
        pod = {"apiVersion": "v1", "kind": "Pod", **self.pod}
        self.ctx.events.emit(pod, kind, reason, message)

    # -- one round -----------------------------------------------------------

    async def _sync(self) -> bool:
        """One round; True when the worker is finished with the pod."""
        meta = self.pod["metadata"]
        if self.gone:
            await self._teardown(0)
            return True
        if meta.get("deletionTimestamp"):
            await self._teardown(int(meta.get("deletionGracePeriodSeconds") or 0))
            with contextlib.suppress(NotFound):
                await self.ctx.client.delete(
                    PODS,
                    meta["name"],
                    meta.get("namespace"),
                    grace_period_seconds=0,
                    preconditions={"uid": self.uid},
                )
            return True
        if not self._terminal and (self.pod.get("status") or {}).get("phase") in (
            "Succeeded",
            "Failed",
        ):
            # Reported terminal before (maybe by an earlier agent): never run it again.
            self._terminal = True
            for sandbox in await self.ctx.runtime.list_pod_sandboxes():
                if sandbox.uid == self.uid and sandbox.state == SandboxState.READY:
                    await self.ctx.runtime.stop_pod_sandbox(sandbox.id, grace=0)
        if self._terminal:
            return False
        self._waiting = {}
        sid = await self._ensure_sandbox()
        views: dict[str, ContainerView] = {}
        init_done = True
        if sid is not None:
            records = await self.ctx.runtime.list_containers(sid)
            init_done = await self._sync_init(sid, records)
            if init_done:
                for c in self.pod["spec"].get("containers") or []:
                    await self._sync_container(sid, c, records)
            records = await self.ctx.runtime.list_containers(sid)
            views = self._views(records)
        status = build_status(
            self.pod,
            views,
            self._waiting,
            sandbox_ready=sid is not None,
            init_done=init_done,
            pod_ip=self._pod_ip,
            host_ip=self.ctx.node_ip,
        )
        await self._report(status)
        if status["phase"] in ("Succeeded", "Failed") and sid is not None:
            self._terminal = True
            self._stop_watchers()
            await self.ctx.runtime.stop_pod_sandbox(sid, grace=0)
        return False

    def _views(self, records: list[ContainerStatus]) -> dict[str, ContainerView]:
        views: dict[str, ContainerView] = {}
        for r in sorted(records, key=lambda r: r.attempt):
            view = views.setdefault(r.name, ContainerView(runtime=self._runtime_kind))
            view.previous, view.latest = view.latest, r
        for name, view in views.items():
            if view.latest is not None:
                cid = view.latest.id
                view.ready = self._ready.get(cid, False)
                started = self._started.get(cid)
                view.started = started is None or started.is_set()
            view.restarts = max(self._attempts.get(name, 0), view.restarts)
        return views

    async def _report(self, status: Obj) -> None:
        if self._last_status is not None and same_status(self._last_status, status):
            return
        meta = self.pod["metadata"]
        try:
            updated = await self.ctx.client.patch(
                PODS, meta["name"], {"status": status}, meta.get("namespace"), subresource="status"
            )
        except NotFound:
            return
        self._last_status = status
        if updated.get("metadata", {}).get("uid") == self.uid:
            self.pod = updated

    # -- sandbox -------------------------------------------------------------

    async def _choose_runtime(self) -> str:
        spec, meta = self.pod["spec"], self.pod["metadata"]
        wanted = spec.get("runtimeClassName") or (meta.get("annotations") or {}).get(
            RUNTIME_ANNOTATION, "vm"
        )
        if wanted not in ("vm", "runc"):
            raise RuntimeFailure("CreatePodSandboxError", f"unknown runtime {wanted!r}")
        if wanted == "runc" and await self.ctx.tenant_of(meta.get("namespace") or "default"):
            # runc shares the host kernel: only trusted (non-tenant) pods may use it.
            raise RuntimeFailure(
                "CreatePodSandboxError", "runtime runc is not allowed in a tenant's namespace"
            )
        return wanted

    async def _ensure_sandbox(self) -> str | None:
        rt = self.ctx.runtime
        mine = [s for s in await rt.list_pod_sandboxes() if s.uid == self.uid]
        ready = [s for s in mine if s.state == SandboxState.READY]
        if ready:
            best = max(ready, key=lambda s: s.created_at)
            self._sid, self._runtime_kind = best.id, best.runtime
            self._pod_ip = best.ip if best.runtime == "vm" else self.ctx.node_ip
            return best.id
        for dead in mine:  # a sandbox that died: its containers start again in a new one
            for c in await rt.list_containers(dead.id):
                self._attempts[c.name] = max(self._attempts.get(c.name, 0), c.attempt + 1)
            with contextlib.suppress(RuntimeFailure):
                await rt.remove_pod_sandbox(dead.id)
        # Images first: a pod whose image cannot be had does not get a VM booted for nothing.
        spec = self.pod["spec"]
        ok = [await self._ensure_image(c) for c in spec.get("initContainers") or []]
        ok += [await self._ensure_image(c) for c in spec.get("containers") or []]
        if not all(ok):
            return None
        try:
            return await self._create_sandbox()
        except RuntimeFailure as exc:
            self._sandbox_failed(exc.reason, exc.message)
            return None

    def _sandbox_failed(self, reason: str, message: str) -> None:
        self._event("Warning", "FailedCreatePodSandBox", message)
        for c in self.pod["spec"].get("containers") or []:
            self._waiting[c["name"]] = ("ContainerCreating", f"{reason}: {message}")
        self._wake_in(5.0)

    async def _create_sandbox(self) -> str:
        kind = await self._choose_runtime()
        spec, meta = self.pod["spec"], self.pod["metadata"]
        attachment = await self.ctx.network.attach(self.pod) if kind == "vm" else None
        dns = spec.get("dnsConfig") or {}
        config = PodSandboxConfig(
            name=meta["name"],
            namespace=meta.get("namespace") or "default",
            uid=self.uid,
            hostname=spec.get("hostname") or meta["name"],
            runtime=kind,
            network=attachment,
            dns_servers=list(dns.get("nameservers") or []),
            dns_searches=list(dns.get("searches") or []),
            resources=pod_resources([container_resources(c) for c in spec.get("containers") or []]),
            labels={"hypernetes.io/pod-uid": self.uid},
            log_directory=str(self._log_dir()),
        )
        sid = await self.ctx.runtime.run_pod_sandbox(config)
        self._sid, self._runtime_kind = sid, kind
        if kind == "runc":
            self._pod_ip = self.ctx.node_ip  # runc pods use the host's network
        elif attachment is not None and attachment.address:
            self._pod_ip = attachment.address.split("/")[0]
        else:
            self._pod_ip = None
        return sid

    def _log_dir(self) -> Path:
        meta = self.pod["metadata"]
        return self.ctx.log_root / f"{meta.get('namespace')}_{meta['name']}_{self.uid}"

    # -- containers ----------------------------------------------------------

    async def _sync_init(self, sid: str, records: list[ContainerStatus]) -> bool:
        """Runs init containers one after another; True once all have succeeded."""
        inits = self.pod["spec"].get("initContainers") or []
        policy = self.pod["spec"].get("restartPolicy") or "Always"
        latest = _latest(records)
        for c in inits:
            r = latest.get(c["name"])
            if r is not None and r.state == ContainerState.EXITED and r.exit_code == 0:
                continue
            init_policy = "OnFailure" if policy == "Always" else policy
            await self._sync_container(sid, c, records, policy=init_policy, init=True)
            return False
        return True

    async def _sync_container(
        self,
        sid: str,
        c: Obj,
        records: list[ContainerStatus],
        policy: str | None = None,
        init: bool = False,
    ) -> None:
        name = c["name"]
        policy = policy or self.pod["spec"].get("restartPolicy") or "Always"
        r = _latest(records).get(name)
        rt = self.ctx.runtime
        if r is not None and r.state == ContainerState.RUNNING:
            reason = self._unhealthy.pop(r.id, None)
            if reason is None:
                self._watch(c, r)
                return
            self._event("Normal", "Killing", f"Container {name} {reason}, will be restarted")
            await rt.stop_container(r.id, self._grace())
            r = await rt.container_status(r.id)
        if r is not None and r.state == ContainerState.CREATED:
            try:
                await rt.start_container(r.id)
                self._watch(c, await rt.container_status(r.id))
                return
            except RuntimeFailure:
                r = await rt.container_status(r.id)
        key = f"{self.uid}/{name}"
        attempt = self._attempts.get(name, 0)
        if r is not None:
            if r.state != ContainerState.EXITED or not should_restart(policy, r.exit_code):
                return
            if r.finished_at - r.started_at >= self.ctx.crash_backoff.reset_after:
                self.ctx.crash_backoff.reset(key)
            left = self.ctx.crash_backoff.in_backoff(key, r.finished_at)
            if left > 0:
                self._waiting[name] = (
                    "CrashLoopBackOff",
                    f"back-off {_seconds(left)} restarting failed container={name} "
                    f"pod={self.pod['metadata']['name']}_{self.pod['metadata'].get('namespace')}"
                    f"({self.uid})",
                )
                if self._last_waiting(name) != "CrashLoopBackOff":
                    self._event("Warning", "BackOff", "Back-off restarting failed container")
                self._wake_in(left)
                return
            self.ctx.crash_backoff.next(key, r.finished_at)
            attempt = max(attempt, r.attempt + 1)
        else:
            failed = self._start_errors.get(name)
            if failed is not None:
                left = self.ctx.crash_backoff.in_backoff(key, failed[2])
                if left > 0:
                    self._waiting[name] = (failed[0], failed[1])
                    self._wake_in(left)
                    return
                self.ctx.crash_backoff.next(key, failed[2])
        await self._start_container(sid, c, attempt, init, records)

    def _last_waiting(self, name: str) -> str:
        for s in (self._last_status or {}).get("containerStatuses") or []:
            if s.get("name") == name:
                return str((s.get("state") or {}).get("waiting", {}).get("reason", ""))
        return ""

    async def _start_container(
        self, sid: str, c: Obj, attempt: int, init: bool, records: list[ContainerStatus]
    ) -> None:
        name = c["name"]
        rt = self.ctx.runtime
        if not await self._ensure_image(c):
            return
        try:
            config = await self._container_config(c, attempt, init)
        except ConfigError as exc:
            self._start_failed(name, "CreateContainerConfigError", str(exc))
            return
        try:
            cid = await rt.create_container(sid, config)
        except RuntimeFailure as exc:
            self._start_failed(name, exc.reason, exc.message)
            return
        self._start_errors.pop(name, None)
        self._attempts[name] = attempt
        self._event("Normal", "Created", f"Created container {name}")
        try:
            await rt.start_container(cid)
        except RuntimeFailure as exc:
            self._event("Warning", "Failed", f"Error: {exc.message}")
            self._wake_in(0.1)
        else:
            self._event("Normal", "Started", f"Started container {name}")
            self._watch(c, await rt.container_status(cid))
        # Keep the latest exited attempt (for `logs --previous`); drop older ones.
        for old in records:
            if old.name == name and old.attempt < attempt - 1 and old.id != cid:
                with contextlib.suppress(RuntimeFailure):
                    await rt.remove_container(old.id)

    def _start_failed(self, name: str, reason: str, message: str) -> None:
        if self._last_waiting(name) != reason:
            self._event("Warning", "Failed", f"Error: {message}")
        self._waiting[name] = (reason, message)
        if reason == "CreateContainerConfigError":
            self._wake_in(2.0)  # no back-off: it starts as soon as the object exists
            return
        self._start_errors[name] = (reason, message, time.time())
        self._wake_in(1.0)

    async def _ensure_image(self, c: Obj) -> bool:
        """Pulls the container's image as its policy says; False (with a waiting
        reason set) when it is not there."""
        name, image = c["name"], c["image"]
        policy = c.get("imagePullPolicy") or default_pull_policy(image)
        rt = self.ctx.runtime
        present = await rt.image_status(image) is not None
        if present and policy != "Always":
            return True
        if policy == "Never":
            msg = f'Container image "{image}" is not present with pull policy of Never'
            self._waiting[name] = ("ErrImageNeverPull", msg)
            self._wake_in(RESYNC)
            return False
        key = f"{self.uid}/pull/{image}"
        failed_at = self._pull_failed_at.get(image)
        if failed_at is not None and self.ctx.pull_backoff.remaining(key) > 0:
            reason = "ErrImagePull" if time.time() - failed_at < PULL_ERROR_SHOWN else ""
            self._waiting[name] = (
                reason or "ImagePullBackOff",
                f'Back-off pulling image "{image}"',
            )
            if reason:
                self._wake_in(PULL_ERROR_SHOWN - (time.time() - failed_at))
            else:
                self._wake_in(self.ctx.pull_backoff.remaining(key))
                if self._last_waiting(name) != "ImagePullBackOff":
                    self._event("Normal", "BackOff", f'Back-off pulling image "{image}"')
            return False
        self._event("Normal", "Pulling", f'Pulling image "{image}"')
        try:
            await rt.pull_image(image, insecure=self.ctx.insecure_registries)
        except RuntimeFailure as exc:
            now = time.time()
            self.ctx.pull_backoff.next(key, now)
            self._pull_failed_at[image] = now
            self._waiting[name] = (
                exc.reason if exc.reason.startswith("Err") else "ErrImagePull",
                exc.message,
            )
            self._event("Warning", "Failed", f'Failed to pull image "{image}": {exc.message}')
            self._wake_in(PULL_ERROR_SHOWN)
            return False
        self.ctx.pull_backoff.reset(key)
        self._pull_failed_at.pop(image, None)
        self._event("Normal", "Pulled", f'Successfully pulled image "{image}"')
        return True

    async def _container_config(self, c: Obj, attempt: int, init: bool) -> ContainerConfig:
        sc = c.get("securityContext") or {}
        psc = self.pod["spec"].get("securityContext") or {}
        uid = sc.get("runAsUser", psc.get("runAsUser"))
        gid = sc.get("runAsGroup", psc.get("runAsGroup"))
        return ContainerConfig(
            name=c["name"],
            image=c["image"],
            command=list(c.get("command") or []),
            args=list(c.get("args") or []),
            env=await self._env(c),
            working_dir=c.get("workingDir") or "",
            tty=bool(c.get("tty")),
            stdin=bool(c.get("stdin")),
            resources=container_resources(c),
            attempt=attempt,
            uid=uid,
            gid=gid,
            labels={INIT_LABEL: "true"} if init else {},
        )

    async def _env(self, c: Obj) -> dict[str, str]:
        """The container's environment (ConfigError if a reference is missing)."""
        meta = self.pod["metadata"]
        fields = {
            "metadata.name": meta["name"],
            "metadata.namespace": meta.get("namespace") or "",
            "metadata.uid": self.uid,
            "spec.nodeName": self.ctx.node_name,
            "spec.serviceAccountName": self.pod["spec"].get("serviceAccountName") or "",
            "status.hostIP": self.ctx.node_ip,
            "status.podIP": self._pod_ip or "",
        }
        fields.update({f"labels:{k}": v for k, v in (meta.get("labels") or {}).items()})
        fields.update({f"annotations:{k}": v for k, v in (meta.get("annotations") or {}).items()})
        sources = Sources(self.ctx.client, meta.get("namespace") or "default")
        return await build_env(c, fields, sources.data)

    def _grace(self) -> float:
        return float(self.pod["spec"].get("terminationGracePeriodSeconds", 30))

    # -- probes and exit watchers ---------------------------------------------

    def _watch(self, c: Obj, r: ContainerStatus) -> None:
        """Makes sure a running container has its exit watcher and probers."""
        if r.state != ContainerState.RUNNING or r.id in self._exit_watch:
            return
        self._exit_watch[r.id] = asyncio.create_task(self._wait_exit(r.id))
        started = asyncio.Event()
        self._started[r.id] = started
        startup = c.get("startupProbe")
        if startup is None:
            started.set()
        self._ready[r.id] = c.get("readinessProbe") is None or self._was_ready(c["name"], r.id)
        target = Target(self.ctx.runtime, r.id, self._pod_ip, self._runtime_kind == "vm")
        tasks: list[asyncio.Task[None]] = []
        for kind, probe in (
            ("startup", startup),
            ("liveness", c.get("livenessProbe")),
            ("readiness", c.get("readinessProbe")),
        ):
            if probe is None:
                continue
            gate = None if kind == "startup" else started
            prober = Prober(kind, probe, c, target, self._on_probe(r.id, c["name"]), gate)
            tasks.append(asyncio.create_task(prober.run()))
        self._probers[r.id] = tasks

    def _was_ready(self, name: str, cid: str) -> bool:
        """Readiness reported before an agent restart, so adoption keeps pods Ready."""
        for s in (self.pod.get("status") or {}).get("containerStatuses") or []:
            if s.get("name") == name and str(s.get("containerID", "")).endswith(f"://{cid}"):
                return bool(s.get("ready"))
        return False

    def _on_probe(self, cid: str, name: str) -> Callable[[str, bool, str], None]:
        def on_result(kind: str, ok: bool, message: str) -> None:
            if kind == "readiness":
                self._ready[cid] = ok
            elif kind == "startup" and ok:
                self._started[cid].set()
            elif not ok:
                what = "failed liveness probe" if kind == "liveness" else "failed startup probe"
                self._unhealthy[cid] = what
            if not ok:
                self._event("Warning", "Unhealthy", f"{kind.capitalize()} probe failed: {message}")
            self.kick()

        return on_result

    async def _wait_exit(self, cid: str) -> None:
        with contextlib.suppress(RuntimeFailure):
            await self.ctx.runtime.wait_container(cid)
        for task in self._probers.pop(cid, []):
            task.cancel()
        self._exit_watch.pop(cid, None)
        self.kick()

    def _stop_watchers(self) -> None:
        for tasks in self._probers.values():
            for task in tasks:
                task.cancel()
        for task in self._exit_watch.values():
            task.cancel()
        self._probers.clear()
        self._exit_watch.clear()

    # -- termination ---------------------------------------------------------

    async def _teardown(self, grace: int) -> None:
        """Stops the pod's containers with `grace`, removes its sandboxes and logs."""
        self._stop_watchers()
        rt = self.ctx.runtime
        mine = [s for s in await rt.list_pod_sandboxes() if s.uid == self.uid]
        for sandbox in mine:
            running = [
                c for c in await rt.list_containers(sandbox.id) if c.state == ContainerState.RUNNING
            ]
            for c in running:
                self._event("Normal", "Killing", f"Stopping container {c.name}")
            await asyncio.gather(
                *(rt.stop_container(c.id, float(grace)) for c in running), return_exceptions=True
            )
            with contextlib.suppress(RuntimeFailure):
                await rt.stop_pod_sandbox(sandbox.id, grace=0)
            with contextlib.suppress(RuntimeFailure):
                await rt.remove_pod_sandbox(sandbox.id)
        await self.ctx.network.detach(self.pod)
        shutil.rmtree(self._log_dir(), ignore_errors=True)
        self.ctx.crash_backoff.forget(f"{self.uid}/")
        self.ctx.pull_backoff.forget(f"{self.uid}/")


def _latest(records: list[ContainerStatus]) -> dict[str, ContainerStatus]:
    latest: dict[str, ContainerStatus] = {}
    for r in records:
        if r.name not in latest or r.attempt >= latest[r.name].attempt:
            latest[r.name] = r
    return latest


def _seconds(value: float) -> str:
    return f"{round(value)}s"
