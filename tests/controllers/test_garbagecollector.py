"""The garbage collector against the real API server: background, foreground, orphan.

ConfigMaps stand in for ReplicaSet-like owners and their pods: the
collector only reads ownerReferences, which every kind carries alike.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from hypernetes.client import CONFIGMAPS, Client, Obj, Resource
from hypernetes.controllers import GarbageCollector

from .conftest import configmap, eventually, exists, running

CLUSTERROLES = Resource("rbac.authorization.k8s.io", "v1", "clusterroles", False, "ClusterRole")
HOLD = "test.hypernetes.io/hold"


def ref(owner: Obj, *, block: bool = False, uid: str | None = None) -> dict[str, Any]:
    return {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": owner["metadata"]["name"],
        "uid": uid or owner["metadata"]["uid"],
        "blockOwnerDeletion": block,
    }


async def make(
    client: Client,
    ns: str,
    name: str,
    owners: list[dict[str, Any]] | None = None,
    finalizers: list[str] | None = None,
) -> Obj:
    body = configmap(name)
    if owners:
        body["metadata"]["ownerReferences"] = owners
    if finalizers:
        body["metadata"]["finalizers"] = finalizers
    return await client.create(CONFIGMAPS, body, ns)


async def names(client: Client, ns: str) -> set[str]:
    listing = await client.list(CONFIGMAPS, ns)
    return {o["metadata"]["name"] for o in listing["items"]} - {"kube-root-ca.crt"}


async def test_background_collects_dependents_of_gone_owners(
    client: Client, namespace: str
) -> None:
    owner = await make(client, namespace, "owner")
    other = await make(client, namespace, "other")
    await make(client, namespace, "dep1", [ref(owner)])
    await make(client, namespace, "dep2", [ref(owner)])
    await make(client, namespace, "shared", [ref(owner), ref(other)])
    # Garbage from before the collector started: its owner's uid is not the live one's.
    await make(client, namespace, "stale", [ref(other, uid=str(uuid.uuid4()))])
    async with running(GarbageCollector(client)):
        await eventually(
            lambda: _gone(client, namespace, "stale"),
            "the dependent of a replaced owner to go",
        )
        assert await names(client, namespace) == {"owner", "other", "dep1", "dep2", "shared"}
        await client.delete(CONFIGMAPS, "owner", namespace)
        await eventually(lambda: _gone(client, namespace, "dep1", "dep2"), "dependents to go")
        shared = await client.get(CONFIGMAPS, "shared", namespace)
        # Kept (another owner lives) but no longer refers to the gone owner.
        await eventually(
            lambda: _refs(client, namespace, "shared", [other["metadata"]["uid"]]),
            "the dangling reference to be removed",
        )
        assert shared["metadata"]["name"] == "shared"
        assert await names(client, namespace) == {"other", "shared"}


async def _gone(client: Client, ns: str, *names_: str) -> bool:
    for name in names_:
        if await exists(client, CONFIGMAPS, name, ns):
            return False
    return True


async def _refs(client: Client, ns: str, name: str, uids: list[str]) -> bool:
    obj = await client.get(CONFIGMAPS, name, ns)
    return [r["uid"] for r in obj["metadata"].get("ownerReferences") or []] == uids


async def test_foreground_waits_for_blocking_dependents(client: Client, namespace: str) -> None:
    owner = await make(client, namespace, "owner")
    await make(client, namespace, "blocker", [ref(owner, block=True)], finalizers=[HOLD])
    await make(client, namespace, "loose", [ref(owner)])
    async with running(GarbageCollector(client)):
        await client.delete(CONFIGMAPS, "owner", namespace, propagation_policy="Foreground")
        await eventually(lambda: _gone(client, namespace, "loose"), "the loose dependent to go")

        async def blocker_terminating() -> bool:
            obj = await client.get(CONFIGMAPS, "blocker", namespace)
            return bool(obj["metadata"].get("deletionTimestamp"))

        await eventually(blocker_terminating, "the blocking dependent to be deleted")
        await asyncio.sleep(1.0)  # give a wrong collector time to drop the owner early
        held = await client.get(CONFIGMAPS, "owner", namespace)
        assert held["metadata"].get("deletionTimestamp")
        assert "foregroundDeletion" in held["metadata"]["finalizers"]
        # The blocking dependent's own finalizer goes: then it, then the owner, go.
        await client.patch(CONFIGMAPS, "blocker", {"metadata": {"finalizers": None}}, namespace)
        await eventually(lambda: _gone(client, namespace, "blocker", "owner"), "owner to go")
        assert await names(client, namespace) == set()


async def test_foreground_deletes_a_chain(client: Client, namespace: str) -> None:
    top = await make(client, namespace, "top")
    middle = await make(client, namespace, "middle", [ref(top, block=True)])
    await make(client, namespace, "leaf", [ref(middle, block=True)])
    await make(client, namespace, "leaf2", [ref(middle)])
    async with running(GarbageCollector(client)):
        await client.delete(CONFIGMAPS, "top", namespace, propagation_policy="Foreground")
        await eventually(
            lambda: _gone(client, namespace, "top", "middle", "leaf", "leaf2"), "the chain to go"
        )


async def test_orphan_keeps_dependents(client: Client, namespace: str) -> None:
    owner = await make(client, namespace, "owner")
    other = await make(client, namespace, "other")
    await make(client, namespace, "dep1", [ref(owner, block=True)])
    await make(client, namespace, "dep2", [ref(owner), ref(other)])
    async with running(GarbageCollector(client)):
        await client.delete(CONFIGMAPS, "owner", namespace, propagation_policy="Orphan")
        await eventually(lambda: _gone(client, namespace, "owner"), "the owner to go")
        assert await _refs(client, namespace, "dep1", [])
        assert await _refs(client, namespace, "dep2", [other["metadata"]["uid"]])
        await asyncio.sleep(1.0)  # orphans must stay, not be collected later
        assert await names(client, namespace) == {"other", "dep1", "dep2"}


async def test_owner_scopes(client: Client, namespace: str) -> None:
    suffix = uuid.uuid4().hex[:8]
    role = await client.create(
        CLUSTERROLES,
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": f"owner-{suffix}"},
            "rules": [],
        },
    )
    await make(client, namespace, "of-cluster-owner", [ref(role)])
    # A namespaced owner is looked for in the dependent's own namespace only.
    elsewhere = await client.create(CONFIGMAPS, configmap("far"), "default")
    await make(client, namespace, "far", [])  # same name here, another uid
    await make(client, namespace, "cross-ns", [ref(elsewhere)])
    # An owner of a kind no server serves cannot be judged gone: kept (and retried).
    ghost = {
        "apiVersion": "nowhere.example.com/v1",
        "kind": "Ghost",
        "name": "g",
        "uid": str(uuid.uuid4()),
    }
    await make(client, namespace, "of-unknown-kind", [ghost])
    # A cluster-scoped dependent cannot have a namespaced owner: never collected.
    invalid = await client.create(
        CLUSTERROLES,
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": f"dep-{suffix}", "ownerReferences": [ref(elsewhere)]},
            "rules": [],
        },
    )
    try:
        async with running(GarbageCollector(client)):
            await eventually(
                lambda: _gone(client, namespace, "cross-ns"), "the cross-namespace dependent"
            )
            assert await exists(client, CONFIGMAPS, "of-cluster-owner", namespace)
            await client.delete(CLUSTERROLES, role["metadata"]["name"])
            await eventually(
                lambda: _gone(client, namespace, "of-cluster-owner"),
                "the cluster owner's dependent",
            )
            assert await exists(client, CLUSTERROLES, invalid["metadata"]["name"])
            assert await exists(client, CONFIGMAPS, "far", "default")
            assert await exists(client, CONFIGMAPS, "of-unknown-kind", namespace)
    finally:
        await client.delete(CLUSTERROLES, invalid["metadata"]["name"])
        await client.delete(CONFIGMAPS, "far", "default")


async def test_custom_resource_owner(client: Client, namespace: str, api_server: Any) -> None:
    group = f"g{uuid.uuid4().hex[:6]}.example.com"
    crds = Resource("apiextensions.k8s.io", "v1", "customresourcedefinitions", False)
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"widgets.{group}"},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "x-kubernetes-preserve-unknown-fields": True,
                        }
                    },
                }
            ],
        },
    }
    widgets = Resource(group, "v1", "widgets", True, "Widget")
    await client.create(crds, crd)
    try:

        async def served() -> bool:
            return any(r == widgets for r in await client.discover())

        await eventually(served, "the CRD to be served")
        gc = GarbageCollector(client)
        async with running(gc):
            widget = await eventually(
                lambda: _try_create(
                    client,
                    widgets,
                    namespace,
                    {"apiVersion": f"{group}/v1", "kind": "Widget", "metadata": {"name": "w"}},
                ),
                "a custom resource to be created",
            )
            await make(client, namespace, "of-widget", [ref(widget)])
            await client.delete(widgets, "w", namespace)
            await eventually(lambda: _gone(client, namespace, "of-widget"), "the CR's dependent")
            assert widgets in gc.monitored
    finally:
        await client.delete(crds, f"widgets.{group}")


async def _try_create(client: Client, resource: Resource, ns: str, body: Obj) -> Obj | None:
    try:
        return await client.create(resource, body, ns)
    except Exception:
        return None


@pytest.mark.parametrize("instances", [2])
async def test_two_collectors_are_harmless(client: Client, namespace: str, instances: int) -> None:
    owner = await make(client, namespace, "owner")
    for i in range(10):
        await make(client, namespace, f"dep{i}", [ref(owner, block=i % 2 == 0)])
    collectors = [GarbageCollector(client) for _ in range(instances)]
    async with running(collectors[0]), running(collectors[1]):
        await client.delete(CONFIGMAPS, "owner", namespace, propagation_policy="Foreground")
        await eventually(lambda: _empty(client, namespace), "everything to be collected")


async def _empty(client: Client, ns: str) -> bool:
    return not await names(client, ns)
