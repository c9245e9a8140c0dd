"""Leader election through a Lease: one manager leads, another takes over when it stops."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator, Callable, Hashable
from dataclasses import dataclass
from typing import Any

import pytest

from hypernetes.client import CONFIGMAPS, LEASES, Client, NotFound, load_kubeconfig
from hypernetes.controllers import (
    Controller,
    ControllerManager,
    GarbageCollector,
    NamespaceController,
)
from hypernetes.controllers.manager import DEFAULT_LEASE_NAME, run_controllers

from .conftest import configmap, eventually

MICRO_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")


class Probe(Controller):
    """A controller that does nothing but say whether it runs."""

    name = "probe"

    async def reconcile(self, key: Hashable) -> float | None:
        return None


@dataclass
class Running:
    manager: ControllerManager
    stop: asyncio.Event
    task: asyncio.Task[None]


Start = Callable[[ControllerManager], Running]


@pytest.fixture
async def start() -> AsyncIterator[Start]:
    started: list[Running] = []

    def launch(manager: ControllerManager) -> Running:
        stop = asyncio.Event()
        run = Running(manager, stop, asyncio.create_task(manager.run(stop)))
        started.append(run)
        return run

    yield launch
    for run in started:
        run.stop.set()
    for run in started:
        if not run.task.done():
            await asyncio.wait_for(run.task, 30)


def lease_name() -> str:
    return f"test-{uuid.uuid4().hex[:10]}"


async def lease_spec(client: Client, name: str) -> dict:
    return (await client.get(LEASES, name, "kube-system"))["spec"]


async def test_one_leader_then_a_clean_handover(client: Client, start: Start) -> None:
    name = lease_name()
    probe1, probe2 = Probe(client), Probe(client)
    first = start(ControllerManager(client, [probe1], lease_name=name, identity="one"))
    await asyncio.wait_for(first.manager.leading.wait(), 30)
    second = start(ControllerManager(client, [probe2], lease_name=name, identity="two"))
    spec = await lease_spec(client, name)
    assert spec["holderIdentity"] == "one"
    assert spec["leaseDurationSeconds"] == 15
    assert MICRO_TIME.match(spec["renewTime"]) and MICRO_TIME.match(spec["acquireTime"])
    assert spec["leaseTransitions"] == 0
    await eventually(lambda: _true(probe1.running), "the leader's controller to run")

    async def renewed() -> bool:
        return (await lease_spec(client, name))["renewTime"] > spec["renewTime"]

    await eventually(renewed, "the leader to renew its lease")
    await asyncio.sleep(3)  # more than a retry period: the second must still wait
    assert first.manager.is_leader and not second.manager.is_leader
    assert probe1.running and not probe2.running

    first.stop.set()
    await asyncio.wait_for(first.task, 30)
    assert not first.manager.is_leader and not probe1.running
    # The first released the lease, so the second need not wait for it to expire.
    await asyncio.wait_for(second.manager.leading.wait(), 10)
    await eventually(lambda: _true(probe2.running), "the new leader's controller to run")
    spec = await lease_spec(client, name)
    assert spec["holderIdentity"] == "two" and spec["leaseTransitions"] == 1
    second.stop.set()
    await asyncio.wait_for(second.task, 30)
    assert "holderIdentity" not in await lease_spec(client, name)


async def _true(value: bool) -> bool:
    return value


async def test_takeover_after_the_leader_is_cut_off(
    client: Client, start: Start, api_server: Any
) -> None:
    name = lease_name()
    timing = {"lease_duration": 3.0, "renew_deadline": 2.0, "retry_period": 0.5}
    doomed_client = Client(load_kubeconfig(api_server.kubeconfig))
    probe = Probe(doomed_client)
    first = start(ControllerManager(doomed_client, [probe], lease_name=name, **timing))
    await asyncio.wait_for(first.manager.leading.wait(), 30)
    second = start(ControllerManager(client, [Probe(client)], lease_name=name, **timing))
    await asyncio.sleep(1.0)
    assert not second.manager.is_leader
    loop = asyncio.get_running_loop()
    await doomed_client.close()  # cut off: renewals fail, nothing can be released
    cut = loop.time()
    # The cut-off leader stops its controllers once it cannot renew in time...
    await eventually(lambda: _true(not first.manager.is_leader), "the old leader to step down")
    assert not probe.running
    # ...and the other takes over, but not before the lease last seen had run out.
    await asyncio.wait_for(second.manager.leading.wait(), 30)
    assert loop.time() - cut >= 3.0 - 1.0
    assert (await lease_spec(client, name))["holderIdentity"] == second.manager.identity


async def test_cancelled_manager_releases_the_lease(client: Client, start: Start) -> None:
    name = lease_name()
    first = start(ControllerManager(client, [Probe(client)], lease_name=name))
    await asyncio.wait_for(first.manager.leading.wait(), 30)
    second = start(ControllerManager(client, [Probe(client)], lease_name=name))
    first.task.cancel()  # as the server does with its background jobs when it stops
    await asyncio.gather(first.task, return_exceptions=True)
    assert not first.manager.is_leader
    # Released: no need to wait out the 15 s lease.
    await asyncio.wait_for(second.manager.leading.wait(), 10)


async def test_run_controllers(api_server: Any, client: Client) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(
        run_controllers(load_kubeconfig(api_server.kubeconfig), stop, identity="runner-test")
    )

    async def held() -> bool:
        try:
            return bool((await lease_spec(client, DEFAULT_LEASE_NAME)).get("holderIdentity"))
        except NotFound:
            return False

    # Someone leads: this runner, or the server's own manager if it runs one.
    await eventually(held, "the default lease to be held")
    stop.set()
    await asyncio.wait_for(task, 30)
    assert (await lease_spec(client, DEFAULT_LEASE_NAME)).get("holderIdentity") != "runner-test"


async def test_leader_steps_down_when_the_lease_is_taken(client: Client, start: Start) -> None:
    name = lease_name()
    probe = Probe(client)
    timing = {"lease_duration": 6.0, "renew_deadline": 4.0, "retry_period": 0.5}
    run = start(ControllerManager(client, [probe], lease_name=name, **timing))
    await asyncio.wait_for(run.manager.leading.wait(), 30)
    lease = await client.get(LEASES, name, "kube-system")
    lease["spec"]["holderIdentity"] = "intruder"
    await client.replace(LEASES, name, lease, "kube-system")
    await eventually(lambda: _true(not run.manager.is_leader), "the leader to step down")
    assert not probe.running
    assert run.manager.terms == 1


async def test_bad_timings_are_refused(client: Client) -> None:
    with pytest.raises(ValueError):
        ControllerManager(client, [], lease_duration=5, renew_deadline=6)
    with pytest.raises(ValueError):
        ControllerManager(client, [], retry_period=0)


async def test_two_managers_with_real_controllers(
    client: Client, namespace: str, start: Start
) -> None:
    name = lease_name()
    sets = [[GarbageCollector(client), NamespaceController(client)] for _ in range(2)]
    runs = [start(ControllerManager(client, s, lease_name=name)) for s in sets]
    await eventually(lambda: _true(any(r.manager.is_leader for r in runs)), "a leader")
    leader = next(i for i, r in enumerate(runs) if r.manager.is_leader)
    follower = 1 - leader
    await eventually(lambda: _true(all(c.running for c in sets[leader])), "controllers to run")
    assert not any(c.running for c in sets[follower])
    owner = await client.create(CONFIGMAPS, configmap("owner"), namespace)
    ref = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "name": "owner",
        "uid": owner["metadata"]["uid"],
    }
    dep = configmap("dep")
    dep["metadata"]["ownerReferences"] = [ref]
    await client.create(CONFIGMAPS, dep, namespace)
    await client.delete(CONFIGMAPS, "owner", namespace)

    async def collected() -> bool:
        listing = await client.list(CONFIGMAPS, namespace, field_selector="metadata.name=dep")
        return not listing["items"]

    await eventually(collected, "the leader's collector to delete the dependent")
    runs[leader].stop.set()
    await asyncio.wait_for(runs[leader].task, 30)
    await eventually(lambda: _true(runs[follower].manager.is_leader), "the follower to lead")
    await eventually(lambda: _true(all(c.running for c in sets[follower])), "its controllers")
