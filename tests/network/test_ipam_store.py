"""Server-mode IPAM: pools in the control-plane store, compare-and-swap through the API."""

from __future__ import annotations

import asyncio
import functools
import ipaddress
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from apihelpers import InProcess, create_pod, in_process_server, make_namespace, pod

from hypernetes.client import CONFIGMAPS, PODS, Client, load_kubeconfig
from hypernetes.controllers.network import reclaim_leases
from hypernetes.network.ipam import IPAM, Lease, Pool, PoolConflict, PoolExhausted
from hypernetes.network.ipam_store import (
    NAMESPACE,
    POOL_LABEL,
    LoopThread,
    PodLiveness,
    StoreBackend,
    configmap_name,
)

POOL = Pool.of("acme", "acme-web", "10.30.0.0/24")


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[InProcess]:
    async with in_process_server(tmp_path / "data") as inproc:
        yield inproc


class Remote:
    """One API client on a loop thread of its own, as a CNI process or node agent has."""

    def __init__(self, api: InProcess) -> None:
        self.thread = LoopThread()
        self.client = Client(load_kubeconfig(api.kubeconfig))
        self.backend = StoreBackend(self.client, self.thread.loop)

    def close(self) -> None:
        self.thread.run(self.client.close())
        self.thread.close()


@pytest.fixture
def remotes(api: InProcess) -> Iterator[list[Remote]]:
    made = [Remote(api), Remote(api)]
    yield made
    for r in made:
        r.close()


async def test_two_clients_allocating_at_once_never_share_an_address(
    remotes: list[Remote],
) -> None:
    a, b = (IPAM(r.backend, node=f"n{i}") for i, r in enumerate(remotes))
    await asyncio.to_thread(a.ensure_pool, POOL)
    await asyncio.to_thread(b.ensure_pool, POOL)
    calls = [
        asyncio.to_thread(ipam.allocate, POOL, f"{name}-{i}")
        for i in range(20)
        for name, ipam in (("a", a), ("b", b))
    ]
    leases: list[Lease] = await asyncio.gather(*calls)
    addresses = [lease.address for lease in leases]
    assert len(set(addresses)) == len(addresses) == 40
    stored = await asyncio.to_thread(a.leases, POOL)
    assert sorted(lease.address for lease in stored) == sorted(addresses)
    assert {lease.node for lease in stored} == {"n0", "n1"}
    # The clients really raced: compare-and-swap writes were lost and redone.
    assert remotes[0].backend.retries + remotes[1].backend.retries > 0
    # Idempotent per owner, and a release frees exactly that address.
    again = await asyncio.to_thread(b.allocate, POOL, "a-3")
    assert again.address == next(x.address for x in leases if x.owner == "a-3")
    released = await asyncio.to_thread(a.release, POOL, "a-3")
    assert released is not None and released.address == again.address
    assert await asyncio.to_thread(a.release, POOL, "a-3") is None
    assert len(await asyncio.to_thread(b.leases, POOL)) == 39
    # The pool is one labelled ConfigMap in kube-system.
    assert await asyncio.to_thread(a.backend.pools) == [POOL.id]


async def test_pool_definition_conflicts_and_deletion(
    api: InProcess, remotes: list[Remote]
) -> None:
    ipam = IPAM(remotes[0].backend, node="n0")
    await asyncio.to_thread(ipam.ensure_pool, POOL)
    other = Pool.of("acme", "acme-web", "10.31.0.0/24")
    with pytest.raises(PoolConflict):
        await asyncio.to_thread(ipam.ensure_pool, other)
    await asyncio.to_thread(ipam.allocate, POOL, "x")
    gone = await asyncio.to_thread(ipam.delete_pool, POOL)
    assert [lease.owner for lease in gone] == ["x"]
    listing = await api.admin().list(CONFIGMAPS, NAMESPACE, label_selector=POOL_LABEL)
    assert listing["items"] == []


async def test_leases_of_pods_that_are_gone_are_reclaimed(
    api: InProcess, remotes: list[Remote]
) -> None:
    admin = api.admin()
    await make_namespace(admin, "shop", None)
    live = await create_pod(admin, "shop", pod("live"))
    live_ref = f"shop/live/{live['metadata']['uid']}"
    dead_ref = "shop/dead/0000-gone"
    # The lease's node is another one: only "pod gone" can make it stale here.
    ipam = IPAM(remotes[0].backend, node="elsewhere")
    await asyncio.to_thread(ipam.ensure_pool, POOL)
    await asyncio.to_thread(lambda: ipam.allocate(POOL, "c1/eth0", pod=live_ref))
    await asyncio.to_thread(lambda: ipam.allocate(POOL, "c2/eth0", pod=dead_ref))
    await asyncio.to_thread(lambda: ipam.allocate(POOL, "c3/eth0"))  # no pod recorded
    # Young leases are left alone (their pod may just not be listed yet).
    assert await reclaim_leases(admin) == 0
    assert await reclaim_leases(admin, grace=-5) == 1
    owners = sorted(lease.owner for lease in await asyncio.to_thread(ipam.leases, POOL))
    assert owners == ["c1/eth0", "c3/eth0"]


async def test_an_exhausted_pool_reclaims_addresses_of_gone_pods(
    api: InProcess, remotes: list[Remote]
) -> None:
    admin = api.admin()
    await make_namespace(admin, "shop", None)
    live = await create_pod(admin, "shop", pod("live"))
    uids_client = Remote(api)
    try:

        def uids() -> set[str]:
            listing = uids_client.thread.run(uids_client.client.list_all(PODS))
            return {p["metadata"]["uid"] for p in listing["items"]}

        liveness = PodLiveness("n0", uids)
        small = Pool.of("acme", "tiny", "10.32.0.0/29")  # 5 assignable addresses
        ipam = IPAM(remotes[0].backend, node="n0", liveness=liveness.is_stale)
        await asyncio.to_thread(ipam.ensure_pool, small)
        for i in range(4):
            await asyncio.to_thread(
                functools.partial(ipam.allocate, small, f"gone{i}", pod=f"shop/p{i}/gone-{i}")
            )
        keep = f"shop/live/{live['metadata']['uid']}"
        await asyncio.to_thread(lambda: ipam.allocate(small, "live", pod=keep))
        # Full: the next allocation reclaims the four leases of pods that do not exist.
        fresh = await asyncio.to_thread(lambda: ipam.allocate(small, "new", pod=keep))
        assert fresh.address in small.cidr
        owners = sorted(lease.owner for lease in await asyncio.to_thread(ipam.leases, small))
        assert owners == ["live", "new"]
        for i in range(3):
            await asyncio.to_thread(functools.partial(ipam.allocate, small, f"more{i}", pod=keep))
        with pytest.raises(PoolExhausted):
            await asyncio.to_thread(lambda: ipam.allocate(small, "overflow", pod=keep))
    finally:
        uids_client.close()
    assert ipaddress.IPv4Address("10.32.0.1") not in {
        lease.address for lease in await asyncio.to_thread(ipam.leases, small)
    }
    assert configmap_name(small.id).startswith("ipam-acme.")


def test_documents_written_before_the_pod_field_still_read(tmp_path: Path) -> None:
    from hypernetes.network.ipam import ROW_FIELDS
    from hypernetes.network.ipam_local import LocalDirBackend

    backend = LocalDirBackend(str(tmp_path / "ipam"))
    ipam = IPAM(backend, node="n0", liveness=lambda lease: False)
    ipam.ensure_pool(POOL)
    ipam.allocate(POOL, "old")

    def downgrade(doc: dict | None) -> tuple[dict | None, None]:
        assert doc is not None
        doc["fields"] = list(ROW_FIELDS[:-1])  # the layout before `pod` existed
        doc["leases"] = {k: row[:-1] for k, row in doc["leases"].items()}
        return doc, None

    backend.update(POOL.id, downgrade)
    (old,) = ipam.leases(POOL)
    assert (old.owner, old.pod) == ("old", "")
    new = ipam.allocate(POOL, "new", pod="ns/p/uid")
    doc = backend.read(POOL.id)
    assert doc is not None and doc["fields"] == list(ROW_FIELDS)
    assert {lease.owner: lease.pod for lease in ipam.leases(POOL)} == {"old": "", "new": "ns/p/uid"}
    assert new.address != old.address


async def test_blocking_calls_on_the_clients_own_loop_are_refused(api: InProcess) -> None:
    backend = StoreBackend(api.admin(), asyncio.get_running_loop())
    with pytest.raises(RuntimeError, match="to_thread"):
        backend.read(POOL.id)  # would deadlock: the loop is blocked waiting for itself
    assert await asyncio.to_thread(backend.read, POOL.id) is None
