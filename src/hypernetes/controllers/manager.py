"""The controller manager: runs controllers only while it holds the leader Lease.

Several servers may each run a `ControllerManager`; a coordination.k8s.io/v1
Lease elects one to run the controllers, as kube-controller-manager does.
The leader renews the lease every `retry_period` seconds; a candidate takes
it over once it has seen the same lease record unchanged for
`lease_duration` seconds (judged on its own clock, so clock skew between
machines does not matter) or at once when the holder released it. A leader
that cannot renew within `renew_deadline` (< `lease_duration`) stops its
controllers before anyone else may take over; a manager that is stopped
stops its controllers, then releases the lease so a successor starts at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import datetime
import logging
import random
import socket
import time
import uuid
from collections.abc import Sequence
from typing import Any

from hypernetes.client import LEASES, Backoff, Client, ClientError, Config, Conflict, NotFound, Obj
from hypernetes.controllers.runtime import Controller

log = logging.getLogger(__name__)

DEFAULT_LEASE_NAME = "hypernetes-controller-manager"
DEFAULT_LEASE_NAMESPACE = "kube-system"


def micro_time(at: float | None = None) -> str:
    """A MicroTime as kube writes it: "2006-01-02T15:04:05.000000Z"."""
    moment = datetime.datetime.fromtimestamp(time.time() if at is None else at, datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaderElector:
    """Acquires, renews and releases one Lease for one identity."""

    def __init__(
        self,
        client: Client,
        *,
        name: str = DEFAULT_LEASE_NAME,
        namespace: str = DEFAULT_LEASE_NAMESPACE,
        identity: str,
        lease_duration: float = 15.0,
    ) -> None:
        self.client = client
        self.name = name
        self.namespace = namespace
        self.identity = identity
        self.lease_duration = lease_duration
        self._observed: tuple[Any, ...] | None = None
        self._observed_at = 0.0

    @property
    def observed_holder(self) -> str | None:
        """The holder in the last lease record seen."""
        return (self._observed[0] or None) if self._observed else None

    def _observe(self, spec: dict[str, Any]) -> None:
        record = tuple(
            spec.get(k)
            for k in ("holderIdentity", "renewTime", "leaseTransitions", "leaseDurationSeconds")
        )
        if record != self._observed:
            self._observed, self._observed_at = record, time.monotonic()

    async def try_acquire_or_renew(self) -> bool:
        """One attempt; True if we hold the lease afterwards."""
        now = micro_time()
        duration = max(1, round(self.lease_duration))
        try:
            lease = await self.client.get(LEASES, self.name, self.namespace)
        except NotFound:
            body = {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": self.name, "namespace": self.namespace},
                "spec": {
                    "holderIdentity": self.identity,
                    "leaseDurationSeconds": duration,
                    "acquireTime": now,
                    "renewTime": now,
                    "leaseTransitions": 0,
                },
            }
            try:
                created = await self.client.create(LEASES, body, self.namespace)
            except Conflict:
                return False  # another candidate created it first
            self._observe(created.get("spec") or {})
            return True
        spec = lease.get("spec") or {}
        self._observe(spec)
        holder = spec.get("holderIdentity") or ""
        if holder and holder != self.identity:
            seen_for = time.monotonic() - self._observed_at
            if seen_for < float(spec.get("leaseDurationSeconds") or self.lease_duration):
                return False
        new = copy.deepcopy(lease)
        new_spec = new.setdefault("spec", {})
        new_spec["holderIdentity"] = self.identity
        new_spec["leaseDurationSeconds"] = duration
        new_spec["renewTime"] = now
        if holder != self.identity:
            new_spec["acquireTime"] = now
            new_spec["leaseTransitions"] = int(spec.get("leaseTransitions") or 0) + 1
        try:
            updated = await self.client.replace(LEASES, self.name, new, self.namespace)
        except (Conflict, NotFound):
            return False  # someone wrote in between; judge again next round
        self._observe(updated.get("spec") or {})
        return True

    async def release(self) -> None:
        """Give the lease up (if we still hold it) so a successor need not wait."""
        try:
            lease = await self.client.get(LEASES, self.name, self.namespace)
        except NotFound:
            return
        spec = lease.get("spec") or {}
        if spec.get("holderIdentity") != self.identity:
            return
        new = copy.deepcopy(lease)
        new_spec = new.setdefault("spec", {})
        new_spec.pop("holderIdentity", None)
        new_spec["leaseDurationSeconds"] = 1
        new_spec["renewTime"] = micro_time()
        with contextlib.suppress(Conflict, NotFound):
            await self.client.replace(LEASES, self.name, new, self.namespace)


class ControllerManager:
    """Runs `controllers` while this process is the elected leader."""

    def __init__(
        self,
        client: Client,
        controllers: Sequence[Controller],
        *,
        lease_name: str = DEFAULT_LEASE_NAME,
        lease_namespace: str = DEFAULT_LEASE_NAMESPACE,
        identity: str | None = None,
        lease_duration: float = 15.0,
        renew_deadline: float = 10.0,
        retry_period: float = 2.0,
    ) -> None:
        if not 0 < retry_period < renew_deadline < lease_duration:
            raise ValueError("need 0 < retry_period < renew_deadline < lease_duration")
        self.client = client
        self.controllers = list(controllers)
        self.identity = identity or f"{socket.gethostname()}_{uuid.uuid4()}"
        self.elector = LeaderElector(
            client,
            name=lease_name,
            namespace=lease_namespace,
            identity=self.identity,
            lease_duration=lease_duration,
        )
        self.renew_deadline = renew_deadline
        self.retry_period = retry_period
        self.leading = asyncio.Event()
        """Set while this manager leads (and its controllers run)."""
        self.terms = 0
        """How many times this manager became the leader."""

    @property
    def is_leader(self) -> bool:
        return self.leading.is_set()

    async def run(self, stop: asyncio.Event) -> None:
        """Campaign, lead, and campaign again after losing the lease, until `stop` is set."""
        while not stop.is_set():
            if not await self._campaign(stop):
                break
            await self._lead(stop)
        log.info("controller manager %s stopped", self.identity)

    async def _sleep(self, stop: asyncio.Event, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), seconds)

    def _jittered(self) -> float:
        return self.retry_period * random.uniform(1.0, 1.2)

    async def _attempt(self) -> bool:
        try:
            return await asyncio.wait_for(
                self.elector.try_acquire_or_renew(), self.renew_deadline / 2
            )
        except (ClientError, TimeoutError) as exc:
            log.warning("leader election %s: %s", self.identity, exc)
            return False

    async def _campaign(self, stop: asyncio.Event) -> bool:
        """Wait until we hold the lease (True) or are told to stop (False)."""
        while not stop.is_set():
            if await self._attempt():
                return True
            await self._sleep(stop, self._jittered())
        return False

    async def _lead(self, stop: asyncio.Event) -> None:
        self.terms += 1
        self.leading.set()
        log.info("controller manager %s is the leader", self.identity)
        term_over = asyncio.Event()
        runners = [
            asyncio.create_task(self._supervise(c, term_over), name=f"controller {c.name}")
            for c in self.controllers
        ]
        cancelled = False
        try:
            last_renewal = time.monotonic()
            while not stop.is_set():
                await self._sleep(stop, self.retry_period)
                if stop.is_set():
                    break
                if await self._attempt():
                    last_renewal = time.monotonic()
                elif time.monotonic() - last_renewal > self.renew_deadline or (
                    self.elector.observed_holder not in (None, self.identity)
                ):
                    log.warning("controller manager %s lost the lease", self.identity)
                    break
        except asyncio.CancelledError:
            cancelled = True  # e.g. the server shutting down: leave as cleanly as on stop
            raise
        finally:
            # Controllers stop before the lease is given up, so two never overlap.
            term_over.set()
            await asyncio.gather(*runners, return_exceptions=True)
            self.leading.clear()
            if stop.is_set() or cancelled:
                with contextlib.suppress(ClientError, TimeoutError):
                    await asyncio.wait_for(self.elector.release(), self.renew_deadline)

    async def _supervise(self, controller: Controller, term_over: asyncio.Event) -> None:
        """Run one controller for the term, restarting it (with backoff) if it fails."""
        backoff = Backoff(1.0, 60.0)
        while not term_over.is_set():
            started = time.monotonic()
            try:
                await controller.run(term_over)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("controller %s failed; restarting it", controller.name)
                if time.monotonic() - started > 60:
                    backoff.reset()
                await self._sleep(term_over, backoff.next())


async def run_controllers(
    config: Config, stop: asyncio.Event, *, identity: str | None = None
) -> None:
    """Run every controller under leader election with its own client, until `stop`.

    For the all-in-one server (with its admin kubeconfig) and for a stand-alone
    controller process alike; several may run against one cluster.
    """
    from hypernetes.controllers import default_controllers

    async with Client(config) as client:
        manager = ControllerManager(client, default_controllers(client), identity=identity)
        await manager.run(stop)


def leader_of(lease: Obj) -> str | None:
    """The holder of a Lease object, if any."""
    return (lease.get("spec") or {}).get("holderIdentity") or None
