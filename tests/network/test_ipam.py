"""IPAM: allocation rules, idempotency, concurrency across threads and processes, crash reclaim."""

from __future__ import annotations

import copy
import ipaddress
import json
import os
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
from nethelpers import NetnsFactory

from hypernetes.network.ipam import (
    IPAM,
    AddressInUse,
    Lease,
    LocalLiveness,
    Pool,
    PoolConflict,
    PoolExhausted,
    PoolNotFound,
)
from hypernetes.network.ipam_local import LocalDirBackend
from hypernetes.network.namespaces import netns_id

A = ipaddress.IPv4Address
T = TypeVar("T")


def make(
    tmp_path: Path, cidr: str = "10.0.0.0/29", gateway: str | None = None
) -> tuple[IPAM, Pool]:
    ipam = IPAM(LocalDirBackend(str(tmp_path / "ipam")), node="node-a")
    pool = Pool.of("acme", "net1", cidr, gateway)
    ipam.ensure_pool(pool)
    return ipam, pool


def test_allocates_hosts_only_skipping_gateway_round_robin(tmp_path: Path) -> None:
    ipam, pool = make(tmp_path)  # .0 network, .1 gateway, .7 broadcast: .2-.6 usable
    got = [ipam.allocate(pool, f"pod{i}").address for i in range(5)]
    assert got == [A(f"10.0.0.{i}") for i in range(2, 7)]
    with pytest.raises(PoolExhausted):
        ipam.allocate(pool, "pod-too-many")
    ipam.release(pool, "pod1")
    # The freed address is the only one, so it is reused; otherwise round robin goes on.
    assert ipam.allocate(pool, "pod5").address == A("10.0.0.3")


def test_round_robin_does_not_reuse_a_released_address_at_once(tmp_path: Path) -> None:
    ipam, pool = make(tmp_path, "10.0.0.0/24")
    first = ipam.allocate(pool, "a").address
    ipam.release(pool, "a")
    assert ipam.allocate(pool, "b").address != first


def test_custom_gateway_is_never_handed_out(tmp_path: Path) -> None:
    ipam, pool = make(tmp_path, "10.0.0.0/29", "10.0.0.4")
    got = {ipam.allocate(pool, f"p{i}").address for i in range(5)}
    assert A("10.0.0.4") not in got and A("10.0.0.1") in got and len(got) == 5


def test_allocation_is_idempotent_per_owner(tmp_path: Path) -> None:
    ipam, pool = make(tmp_path)
    a = ipam.allocate(pool, "pod")
    b = ipam.allocate(pool, "pod")
    assert a.address == b.address
    assert len(ipam.leases(pool)) == 1


def test_requested_address(tmp_path: Path) -> None:
    ipam, pool = make(tmp_path)
    assert ipam.allocate(pool, "a", requested=A("10.0.0.5")).address == A("10.0.0.5")
    with pytest.raises(AddressInUse):
        ipam.allocate(pool, "b", requested=A("10.0.0.5"))
    for bad in ("10.0.0.1", "10.0.0.0", "10.0.0.7", "10.9.0.2"):
        with pytest.raises(AddressInUse):
            ipam.allocate(pool, "c", requested=A(bad))
    with pytest.raises(AddressInUse):  # the owner holds another address already
        ipam.allocate(pool, "a", requested=A("10.0.0.6"))


def test_pool_definition_conflicts_and_missing_pool(tmp_path: Path) -> None:
    ipam, pool = make(tmp_path)
    ipam.ensure_pool(pool)  # same definition: fine
    with pytest.raises(PoolConflict):
        ipam.ensure_pool(Pool.of("acme", "net1", "10.1.0.0/24"))
    with pytest.raises(PoolNotFound):
        ipam.allocate(Pool.of("acme", "other", "10.0.0.0/24"), "x")
    assert ipam.release(Pool.of("acme", "other", "10.0.0.0/24"), "x") is None
    with pytest.raises(ValueError):
        Pool.of("acme", "n", "10.0.0.0/31")
    with pytest.raises(ValueError):
        Pool.of("acme", "n", "10.0.0.0/24", "10.0.1.1")
    with pytest.raises(ValueError):
        Pool.of("acme", "n", "10.0.0.1/24")  # host bits set


def test_cached_pool_definition_is_dropped_when_redefined_elsewhere(tmp_path: Path) -> None:
    ipam, pool = make(tmp_path)
    other = IPAM(LocalDirBackend(str(tmp_path / "ipam")), node="node-b")  # another process
    other.delete_pool(pool)
    other.ensure_pool(Pool.of("acme", "net1", "10.5.0.0/24"))
    assert ipam.get_pool("acme", "net1") == pool  # still the cached definition
    with pytest.raises(PoolConflict):
        ipam.allocate(pool, "x")
    fresh = ipam.get_pool("acme", "net1")
    assert fresh is not None and str(fresh.cidr) == "10.5.0.0/24"
    assert ipam.allocate(fresh, "x").address == A("10.5.0.2")


def test_release_is_idempotent_and_confirm_marks_active(tmp_path: Path) -> None:
    ipam, pool = make(tmp_path)
    lease = ipam.allocate(pool, "pod", netns="/x", port="hnp1")
    assert lease.state == "pending" and lease.node == "node-a" and lease.pid == os.getpid()
    active = ipam.confirm(pool, "pod", netns_id="1:2", mac="0a:58:0a:00:00:02")
    assert active.state == "active" and active.netns_id == "1:2" and active.port == "hnp1"
    assert ipam.release(pool, "pod") is not None
    assert ipam.release(pool, "pod") is None
    assert ipam.leases(pool) == []


def test_delete_pool_returns_leases_and_removes_files(tmp_path: Path) -> None:
    ipam, pool = make(tmp_path)
    ipam.allocate(pool, "a")
    assert [lease.owner for lease in ipam.delete_pool(pool)] == ["a"]
    assert ipam.pools() == []
    assert os.listdir(tmp_path / "ipam") == []


def test_torn_document_is_treated_as_absent(tmp_path: Path) -> None:
    ipam, pool = make(tmp_path)
    (tmp_path / "ipam" / f"{pool.id}.json").write_text('{"version": 1, "le')
    assert ipam.get_pool("acme", "net1", cached=False) is None
    ipam.ensure_pool(pool)
    assert ipam.allocate(pool, "a").address == A("10.0.0.2")


def test_no_duplicates_across_threads(tmp_path: Path) -> None:
    ipam, pool = make(tmp_path, "10.0.0.0/24")
    results: list[A] = []
    lock = threading.Lock()

    def worker(n: int) -> None:
        for i in range(10):
            lease = ipam.allocate(pool, f"t{n}-{i}")
            with lock:
                results.append(lease.address)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 80 and len(set(results)) == 80


ALLOCATOR = textwrap.dedent(
    """
    import sys
    from hypernetes.network.ipam import IPAM, Pool
    from hypernetes.network.ipam_local import LocalDirBackend
    ipam = IPAM(LocalDirBackend(sys.argv[1]), node="node-a")
    pool = Pool.of("acme", "net1", "10.0.0.0/24")
    out = [str(ipam.allocate(pool, f"{sys.argv[2]}-{i}").address) for i in range(int(sys.argv[3]))]
    print(" ".join(out))
    """
)


def test_no_duplicates_across_processes(tmp_path: Path) -> None:
    ipam, pool = make(tmp_path, "10.0.0.0/24")
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", ALLOCATOR, str(tmp_path / "ipam"), f"proc{n}", "20"],
            stdout=subprocess.PIPE,
            text=True,
        )
        for n in range(6)
    ]
    addresses = []
    for p in procs:
        out, _ = p.communicate(timeout=120)
        assert p.returncode == 0
        addresses += out.split()
    assert len(addresses) == 120 and len(set(addresses)) == 120
    assert len(ipam.leases(pool)) == 120


CRASHER = textwrap.dedent(
    """
    import os, signal, sys
    from hypernetes.network.ipam import IPAM, Pool
    from hypernetes.network.ipam_local import LocalDirBackend
    ipam = IPAM(LocalDirBackend(sys.argv[1]), node="node-a")
    pool = Pool.of("acme", "net1", "10.0.0.0/30")
    ipam.allocate(pool, "crashed-add")
    os.kill(os.getpid(), signal.SIGKILL)  # dies between allocation and attach
    """
)


def test_pending_lease_of_a_crashed_process_is_reclaimed(tmp_path: Path) -> None:
    ipam, pool = make(tmp_path, "10.0.0.0/30")  # exactly one usable address: .2
    proc = subprocess.run([sys.executable, "-c", CRASHER, str(tmp_path / "ipam")], timeout=60)
    assert proc.returncode == -9
    [stale] = ipam.leases(pool)
    assert stale.owner == "crashed-add" and stale.state == "pending"
    # The pool is full, so allocation reclaims the dead process's lease.
    lease = ipam.allocate(pool, "next-pod")
    assert lease.address == A("10.0.0.2")
    assert [x.owner for x in ipam.leases(pool)] == ["next-pod"]


def test_live_pending_lease_is_not_reclaimed(tmp_path: Path) -> None:
    ipam, pool = make(tmp_path, "10.0.0.0/30")
    ipam.allocate(pool, "in-flight")  # our own, live process
    with pytest.raises(PoolExhausted):
        ipam.allocate(pool, "other")
    assert ipam.reclaim(pool) == []


def test_active_lease_is_reclaimed_when_its_netns_is_gone(
    tmp_path: Path, netns: NetnsFactory
) -> None:
    ipam, pool = make(tmp_path)
    alive, dead = netns("ipam-alive"), netns("ipam-dead")
    for ns in (alive, dead):
        ipam.allocate(pool, ns.name, netns=ns.path)
        ipam.confirm(pool, ns.name, netns_id=netns_id(ns.path) or "")
    dead.delete()
    reclaimed = ipam.reclaim(pool)
    assert [lease.owner for lease in reclaimed] == [dead.name]
    assert [lease.owner for lease in ipam.leases(pool)] == [alive.name]


def test_leases_from_a_previous_boot_or_other_node(tmp_path: Path) -> None:
    ipam, pool = make(tmp_path)
    ipam.allocate(pool, "old-boot")
    ipam.confirm(pool, "old-boot")
    ipam.allocate(pool, "other-node")
    ipam.confirm(pool, "other-node")
    path = tmp_path / "ipam" / f"{pool.id}.json"
    doc = json.loads(path.read_text())
    fields = doc["fields"]
    for row in doc["leases"].values():
        if row[fields.index("owner")] == "old-boot":
            row[fields.index("boot_id")] = "000000000000"
        else:
            row[fields.index("node")] = "node-b"
    path.write_text(json.dumps(doc))
    liveness = LocalLiveness("node-a")
    states = {lease.owner: liveness.is_stale(lease) for lease in ipam.leases(pool)}
    assert states == {"old-boot": True, "other-node": False}
    assert [lease.owner for lease in ipam.reclaim(pool)] == ["old-boot"]


def test_retain_releases_unlisted_owners_of_this_node(tmp_path: Path) -> None:
    ipam, pool = make(tmp_path)
    for owner in ("a", "b", "c"):
        ipam.allocate(pool, owner)
    assert sorted(lease.owner for lease in ipam.retain(pool, ["b"])) == ["a", "c"]
    assert [lease.owner for lease in ipam.leases(pool)] == ["b"]


class CASBackend:
    """Test double for the control-plane store backend (not written yet): an in-memory
    compare-and-swap store. `interfere` lets a concurrent writer commit between our
    read and our write, as can happen with etcd transactions."""

    def __init__(self) -> None:
        self.docs: dict[str, tuple[int, dict[str, Any]]] = {}
        self.interfere: Callable[[], object] | None = None
        self.retries = 0

    def read(self, pool_id: str) -> dict[str, Any] | None:
        entry = self.docs.get(pool_id)
        return copy.deepcopy(entry[1]) if entry else None

    def update(self, pool_id: str, mutate: Callable[[Any], tuple[Any, T]]) -> T:
        while True:
            revision = self.docs[pool_id][0] if pool_id in self.docs else 0
            new, result = mutate(self.read(pool_id))
            if self.interfere is not None:
                hook, self.interfere = self.interfere, None
                hook()
            if (self.docs[pool_id][0] if pool_id in self.docs else 0) != revision:
                self.retries += 1  # lost the race: start over on the new document
                continue
            if new is None:
                self.docs.pop(pool_id, None)
            else:
                self.docs[pool_id] = (revision + 1, new)
            return result

    def pools(self) -> list[str]:
        return sorted(self.docs)


def test_ipam_over_a_retrying_compare_and_swap_backend() -> None:
    backend = CASBackend()
    ipam = IPAM(backend, node="node-a")
    rival = IPAM(backend, node="node-b")  # another node allocating at the same moment
    pool = Pool.of("acme", "net1", "10.0.0.0/29")
    ipam.ensure_pool(pool)
    backend.interfere = lambda: rival.allocate(pool, "rival")
    mine = ipam.allocate(pool, "mine")
    assert backend.retries == 1
    theirs = rival.lookup(pool, "rival")
    assert theirs is not None and (mine.address, theirs.address) == (A("10.0.0.3"), A("10.0.0.2"))
    backend.interfere = lambda: rival.release(pool, "rival")
    assert ipam.confirm(pool, "mine").state == "active" and backend.retries == 2
    assert [x.owner for x in ipam.leases(pool)] == ["mine"]
    for i in range(4):
        ipam.allocate(pool, f"p{i}")
    with pytest.raises(PoolExhausted):
        ipam.allocate(pool, "one-too-many")
    assert len({x.address for x in ipam.leases(pool)}) == 5
    assert len(ipam.delete_pool(pool)) == 5 and backend.pools() == []


def test_lease_json_round_trip() -> None:
    lease = Lease(A("10.0.0.2"), "o", "n", "active", 1, "b", 1, 2, "/ns", "3:4", "hnp", "m")
    assert Lease.from_json(json.loads(json.dumps(lease.to_json()))) == lease
