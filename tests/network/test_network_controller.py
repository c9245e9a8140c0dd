"""The network controller against a real API server: defaults, VNIs, phases, deletion."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from apihelpers import (
    InProcess,
    create_pod,
    eventually,
    in_process_server,
    make_namespace,
    make_tenant,
    network,
    pod,
)
from tests.controllers.conftest import running

from hypernetes.client import CONFIGMAPS, NETWORKS, PODS, TENANTS, Client, NotFound
from hypernetes.controllers.network import VNI_CONFIGMAP, NetworkController
from hypernetes.network import resource as net
from hypernetes.network.ipam import IPAM, Pool
from hypernetes.network.ipam_store import NAMESPACE, StoreBackend, configmap_name


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[InProcess]:
    async with in_process_server(tmp_path / "data") as inproc:
        yield inproc


async def status_of(client: Client, name: str) -> dict[str, Any]:
    try:
        return (await client.get(NETWORKS, name)).get("status") or {}
    except NotFound:
        return {}


async def ready(client: Client, name: str) -> dict[str, Any] | None:
    status = await status_of(client, name)
    return status if status.get("phase") == "Ready" and status.get("vni") else None


async def gone(client: Client, name: str) -> bool:
    try:
        await client.get(NETWORKS, name)
    except NotFound:
        return True
    return False


async def test_each_tenant_gets_a_default_network_with_its_own_vni(api: InProcess) -> None:
    admin = api.admin()
    async with running(NetworkController(admin)):
        await make_tenant(admin, "acme")
        await make_tenant(admin, "beta")
        a = await eventually(lambda: ready(admin, "acme-default"), "acme's default network")
        b = await eventually(lambda: ready(admin, "beta-default"), "beta's default network")
        acme = await admin.get(NETWORKS, "acme-default")
        beta = await admin.get(NETWORKS, "beta-default")
    assert acme["spec"]["cidr"] == beta["spec"]["cidr"] == net.DEFAULT_CIDR
    assert (acme["spec"]["tenant"], beta["spec"]["tenant"]) == ("acme", "beta")
    assert a["vni"] != b["vni"] and net.VNI_MIN <= a["vni"] <= net.VNI_MAX


async def test_two_controllers_never_hand_out_one_vni_twice(api: InProcess) -> None:
    admin = api.admin()
    await make_tenant(admin, "acme")
    names = [f"acme-n{i}" for i in range(12)]
    one, two = NetworkController(api.admin()), NetworkController(api.admin())
    async with running(one), running(two):
        await asyncio.gather(
            *(admin.create(NETWORKS, network(n, f"10.{200 + i}.0.0/24", "acme"))
              for i, n in enumerate(names))
        )  # fmt: skip
        for n in names:
            await eventually(functools.partial(ready, admin, n), f"{n} ready")
        stored = await one.vnis()
    vnis = [(await status_of(admin, n))["vni"] for n in names]
    assert len(set(vnis)) == len(vnis), vnis
    uids = {(await admin.get(NETWORKS, n))["metadata"]["uid"]: n for n in names}
    assert {uids[u]: v for u, v in stored.items() if u in uids} == dict(
        zip(names, vnis, strict=True)
    )


async def test_deletion_waits_for_the_pods_then_frees_vni_and_pool(
    api: InProcess, tmp_path: Path
) -> None:
    admin = api.admin()
    await make_tenant(admin, "acme")
    await make_namespace(admin, "shop", "acme")
    ctl = NetworkController(admin)
    async with running(ctl):
        await admin.create(NETWORKS, network("acme-web", "10.90.0.0/24", "acme"))
        status = await eventually(lambda: ready(admin, "acme-web"), "acme-web ready")
        uid = (await admin.get(NETWORKS, "acme-web"))["metadata"]["uid"]
        # A pool in the store, as nodes would have made it.
        loop = asyncio.get_running_loop()
        ipam = IPAM(StoreBackend(admin, loop), node="n1")
        pool = Pool.of("acme", "acme-web", "10.90.0.0/24")
        await asyncio.to_thread(ipam.ensure_pool, pool)
        await create_pod(admin, "shop", pod("web", network="acme-web"))
        await create_pod(admin, "shop", pod("other"))  # on acme-default: does not hold acme-web
        await admin.delete(NETWORKS, "acme-web")

        async def terminating() -> bool:
            s = await status_of(admin, "acme-web")
            return s.get("phase") == "Terminating" and "1 pod" in (s.get("message") or "")

        await eventually(terminating, "acme-web terminating, held by its pod")
        await asyncio.sleep(1.0)
        assert not await gone(admin, "acme-web")
        await admin.delete(PODS, "web", "shop", grace_period_seconds=0)
        await eventually(lambda: gone(admin, "acme-web"), "acme-web deleted")
        assert uid not in await ctl.vnis()
        with pytest.raises(NotFound):
            await admin.get(CONFIGMAPS, configmap_name(pool.id), NAMESPACE)
    assert status["phase"] == "Ready"


async def test_a_tenant_that_goes_takes_its_networks(api: InProcess) -> None:
    admin = api.admin()
    async with running(NetworkController(admin)):
        await make_tenant(admin, "acme")
        await eventually(lambda: ready(admin, "acme-default"), "acme's default network")
        await admin.create(NETWORKS, network("acme-more", "10.91.0.0/24", "acme"))
        await eventually(lambda: ready(admin, "acme-more"), "acme-more ready")
        await admin.delete(TENANTS, "acme")
        await eventually(lambda: gone(admin, "acme-more"), "acme-more deleted")
        await eventually(lambda: gone(admin, "acme-default"), "acme-default deleted")


async def test_overlapping_networks_that_raced_admission_fail(api: InProcess) -> None:
    admin = api.admin()
    await make_tenant(admin, "acme")
    # Admission refuses the overlap; write the second one as if it had raced past it
    # (created before the first existed), by creating them in a tenant-less order.
    await admin.create(NETWORKS, network("acme-one", "10.92.0.0/24", "acme"))
    server_api = api.server.api
    hooks = list(server_api.admission)
    server_api.admission[:] = [h for h in hooks if type(h).__name__ != "NetworkAdmission"]
    try:
        await admin.create(NETWORKS, network("acme-two", "10.92.0.0/25", "acme"))
    finally:
        server_api.admission[:] = hooks
    async with running(NetworkController(admin)):
        await eventually(lambda: ready(admin, "acme-one"), "acme-one ready")

        async def failed() -> bool:
            return (await status_of(admin, "acme-two")).get("phase") == "Failed"

        await eventually(failed, "acme-two failed")
    assert "acme-one" in (await status_of(admin, "acme-two"))["message"]
    assert (await admin.get(CONFIGMAPS, VNI_CONFIGMAP, NAMESPACE))["data"]
