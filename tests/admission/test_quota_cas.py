"""Quota charging is exact through compare-and-swap alone: several API servers on one
store share no lock, so here the in-process locks are taken away and many charges race on
one ResourceQuota and one Tenant (a real SQLite store, the real object layer)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from hypernetes.api import errors
from hypernetes.api.admission.quota import QuotaAdmission
from hypernetes.api.objects import Objects
from hypernetes.api.request import Target
from hypernetes.auth.principal import User
from hypernetes.resources.registry import Registry
from hypernetes.store import SQLiteStore

TENANT_USER = User("tina", ("system:authenticated",), extra={"hypernetes.io/tenant": ("t",)})


class YieldingObjects(Objects):
    """The object layer, letting other requests run between each read and write (as the
    network between an API server and etcd does), so that charges really interleave."""

    async def find(self, *args: Any, **kwargs: Any) -> Any:
        await asyncio.sleep(0)
        found = await super().find(*args, **kwargs)
        await asyncio.sleep(0)
        return found

    async def replace_exact(self, *args: Any, **kwargs: Any) -> Any:
        await asyncio.sleep(0)
        return await super().replace_exact(*args, **kwargs)


@pytest.fixture
async def objects(tmp_path: Path) -> AsyncIterator[Objects]:
    store = SQLiteStore(tmp_path / "state.db")
    try:
        yield YieldingObjects(store)
    finally:
        await store.close()


@pytest.fixture
def lost_swaps(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts compare-and-swap writes that lost a race (and were retried)."""
    lost = [0]
    swap = QuotaAdmission._swap

    async def counting(self: QuotaAdmission, rt: Any, old: Any, new: Any) -> bool:
        won = await swap(self, rt, old, new)
        lost[0] += not won
        return won

    monkeypatch.setattr(QuotaAdmission, "_swap", counting)
    return lost


def lockless(admission: QuotaAdmission) -> None:
    """Replace the in-process locks by no-ops, as if every request hit another server."""
    admission._ns_locks = [contextlib.nullcontext() for _ in admission._ns_locks]
    admission._tenant_locks = [contextlib.nullcontext() for _ in admission._tenant_locks]


async def setup(objects: Objects, registry: Registry, tenant_pods: str) -> None:
    def rt(group: str, version: str, plural: str) -> Any:
        found = registry.get(group, version, plural)
        assert found is not None
        return found

    await objects.create(rt("hypernetes.io", "v1", "tenants"), {
        "apiVersion": "hypernetes.io/v1", "kind": "Tenant", "metadata": {"name": "t"},
        "spec": {"quota": {"hard": {"pods": tenant_pods}}}})  # fmt: skip
    for ns in ("a", "b"):
        await objects.create(rt("", "v1", "namespaces"), {
            "apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": ns, "labels": {"hypernetes.io/tenant": "t"}}})  # fmt: skip
    await objects.create(rt("", "v1", "resourcequotas"), {
        "apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "q", "namespace": "a"},
        "spec": {"hard": {"pods": "6"}}, "status": {"hard": {"pods": "6"}, "used": {"pods": "0"}},
    })  # fmt: skip


async def race(admission: QuotaAdmission, registry: Registry, names: list[tuple[str, str]]
               ) -> list[BaseException | None]:  # fmt: skip
    pods = registry.get("", "v1", "pods")
    assert pods is not None

    async def one(ns: str, name: str) -> None:
        await asyncio.sleep(0)
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns},
               "spec": {"containers": [{"name": "c", "image": "x"}]}}  # fmt: skip
        await admission(TENANT_USER, Target(pods, ns), pod, None)

    return await asyncio.gather(*(one(ns, n) for ns, n in names), return_exceptions=True)


async def test_namespace_quota_is_exact_without_locks(
    objects: Objects, lost_swaps: list[int]
) -> None:
    registry = Registry()
    await setup(objects, registry, "1000")
    admission = QuotaAdmission(objects, registry)
    lockless(admission)
    results = await race(admission, registry, [("a", f"p{i}") for i in range(25)])
    admitted = [r for r in results if r is None]
    refused = [r for r in results if isinstance(r, errors.APIError)]
    assert len(admitted) == 6 and len(refused) == 19, results
    assert all(r.code == 403 and "exceeded quota: q" in r.message for r in refused)
    rq = registry.get("", "v1", "resourcequotas")
    assert rq is not None
    quota = await objects.get(rq, "a", "q")
    assert quota["status"]["used"] == {"pods": "6"}
    tenant_rt = registry.get("hypernetes.io", "v1", "tenants")
    assert tenant_rt is not None
    tenant = await objects.get(tenant_rt, None, "t")
    assert tenant["status"]["quota"]["used"] == {"pods": "6"}  # refused ones were not charged
    assert lost_swaps[0] > 0  # the race was real: writes lost and were retried


async def test_tenant_quota_is_exact_without_locks(objects: Objects, lost_swaps: list[int]) -> None:
    registry = Registry()
    await setup(objects, registry, "9")
    admission = QuotaAdmission(objects, registry)
    lockless(admission)
    names = [("b", f"p{i}") for i in range(20)] + [("a", f"p{i}") for i in range(4)]
    results = await race(admission, registry, names)
    assert sum(r is None for r in results) == 9, results
    tenant_rt = registry.get("hypernetes.io", "v1", "tenants")
    assert tenant_rt is not None
    tenant = await objects.get(tenant_rt, None, "t")
    assert tenant["status"]["quota"] == {"hard": {"pods": "9"}, "used": {"pods": "9"}}
    rq = registry.get("", "v1", "resourcequotas")
    assert rq is not None
    admitted_in_a = sum(r is None for r, (ns, _) in zip(results, names, strict=True) if ns == "a")
    quota = await objects.get(rq, "a", "q")
    assert quota["status"]["used"] == {"pods": str(admitted_in_a)}  # refunds made exact
    assert lost_swaps[0] > 0
