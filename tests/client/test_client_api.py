"""The client against the real API server: CRUD, patch, delete, lists, watch, discovery."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from typing import Any

import pytest

from hypernetes.client import (
    CONFIGMAPS,
    LEASES,
    NAMESPACES,
    ApiError,
    Client,
    Config,
    Conflict,
    NotFound,
    Resource,
    TransportError,
    load_kubeconfig,
)

from .conftest import configmap

TIMEOUT = 30.0


async def test_crud_round_trip(client: Client, namespace: str) -> None:
    created = await client.create(CONFIGMAPS, configmap("a", k="1"), namespace)
    assert created["metadata"]["uid"] and created["data"] == {"k": "1"}
    got = await client.get(CONFIGMAPS, "a", namespace)
    assert got["metadata"]["uid"] == created["metadata"]["uid"]

    got["data"]["k"] = "2"
    replaced = await client.replace(CONFIGMAPS, "a", got, namespace)
    assert replaced["data"] == {"k": "2"}
    assert int(replaced["metadata"]["resourceVersion"]) > int(got["metadata"]["resourceVersion"])
    with pytest.raises(Conflict) as stale:
        await client.replace(CONFIGMAPS, "a", got, namespace)  # old resourceVersion
    assert stale.value.code == 409 and stale.value.reason == "Conflict"

    merged = await client.patch(CONFIGMAPS, "a", {"data": {"m": "x"}}, namespace)
    assert merged["data"] == {"k": "2", "m": "x"}
    jsoned = await client.patch(
        CONFIGMAPS, "a", [{"op": "remove", "path": "/data/k"}], namespace, patch_type="json"
    )
    assert jsoned["data"] == {"m": "x"}
    strategic = await client.patch(
        CONFIGMAPS,
        "a",
        {"metadata": {"labels": {"tier": "web"}}},
        namespace,
        patch_type="strategic",
    )
    assert strategic["metadata"]["labels"] == {"tier": "web"}
    applied = await client.patch(
        CONFIGMAPS,
        "applied",
        configmap("applied", owner="me"),
        namespace,
        patch_type="apply",
        field_manager="tests",
    )
    assert applied["data"] == {"owner": "me"}

    deleted = await client.delete(CONFIGMAPS, "a", namespace)
    assert deleted.get("kind") in ("ConfigMap", "Status")
    with pytest.raises(NotFound) as missing:
        await client.get(CONFIGMAPS, "a", namespace)
    assert missing.value.code == 404
    assert missing.value.status["kind"] == "Status"
    assert missing.value.details.get("name") == "a"


async def test_error_statuses(client: Client, namespace: str) -> None:
    await client.create(CONFIGMAPS, configmap("dup"), namespace)
    with pytest.raises(Conflict) as exists:
        await client.create(CONFIGMAPS, configmap("dup"), namespace)
    assert exists.value.reason == "AlreadyExists"
    with pytest.raises(ApiError) as invalid:
        await client.create(CONFIGMAPS, configmap("Not_A_Valid_Name"), namespace)
    assert invalid.value.code == 422 and invalid.value.reason == "Invalid"
    with pytest.raises(ApiError) as bad:
        await client.list(CONFIGMAPS, namespace, label_selector="a in (")
    assert bad.value.code == 400
    with pytest.raises(NotFound):
        await client.delete(CONFIGMAPS, "never-was", namespace)
    with pytest.raises(ApiError) as unknown:
        await client.list(Resource("nope.example.com", "v1", "things", True), namespace)
    assert unknown.value.code == 404
    with pytest.raises(ValueError):
        await client.patch(CONFIGMAPS, "dup", {}, namespace, patch_type="apply")


async def test_preconditions_and_dry_run(client: Client, namespace: str) -> None:
    cm = await client.create(CONFIGMAPS, configmap("p"), namespace)
    dry = await client.create(CONFIGMAPS, configmap("dry"), namespace, dry_run=True)
    assert dry["metadata"]["name"] == "dry"
    with pytest.raises(NotFound):
        await client.get(CONFIGMAPS, "dry", namespace)
    with pytest.raises(Conflict):
        await client.delete(CONFIGMAPS, "p", namespace, preconditions={"uid": "not-the-uid"})
    await client.delete(CONFIGMAPS, "p", namespace, preconditions={"uid": cm["metadata"]["uid"]})
    with pytest.raises(NotFound):
        await client.get(CONFIGMAPS, "p", namespace)


async def test_lists_selectors_and_pages(client: Client, namespace: str) -> None:
    for i in range(7):
        tier = "web" if i % 2 else "db"
        await client.create(CONFIGMAPS, configmap(f"c{i}", labels={"tier": tier}), namespace)
    everything = await client.list(CONFIGMAPS, namespace)
    assert sorted(o["metadata"]["name"] for o in everything["items"]) == [f"c{i}" for i in range(7)]
    assert everything["metadata"]["resourceVersion"]
    web = await client.list(CONFIGMAPS, namespace, label_selector="tier=web")
    assert {o["metadata"]["name"] for o in web["items"]} == {"c1", "c3", "c5"}
    by_name = await client.list(CONFIGMAPS, namespace, field_selector="metadata.name=c4")
    assert [o["metadata"]["name"] for o in by_name["items"]] == ["c4"]

    first = await client.list(CONFIGMAPS, namespace, limit=3)
    assert len(first["items"]) == 3 and first["metadata"].get("continue")
    second = await client.list(
        CONFIGMAPS, namespace, limit=3, continue_token=first["metadata"]["continue"]
    )
    assert len(second["items"]) == 3
    assert not {o["metadata"]["name"] for o in first["items"]} & {
        o["metadata"]["name"] for o in second["items"]
    }
    whole = await client.list_all(CONFIGMAPS, namespace, page_size=2)
    assert len(whole["items"]) == 7 and "continue" not in whole["metadata"]

    await client.delete_collection(CONFIGMAPS, namespace, label_selector="tier=db")
    left = await client.list(CONFIGMAPS, namespace)
    assert {o["metadata"]["name"] for o in left["items"]} == {"c1", "c3", "c5"}


async def test_watch_streams_changes_in_order(client: Client, namespace: str) -> None:
    listing = await client.list(CONFIGMAPS, namespace)
    rv = listing["metadata"]["resourceVersion"]
    seen: list[tuple[str, str, dict[str, str]]] = []

    async def follow() -> None:
        async with client.watch(CONFIGMAPS, namespace, resource_version=rv) as events:
            async for kind, obj in events:
                seen.append((kind, obj["metadata"]["name"], obj.get("data") or {}))
                if kind == "DELETED":
                    return

    watcher = asyncio.create_task(follow())
    await asyncio.sleep(0.3)
    await client.create(CONFIGMAPS, configmap("w", v="1"), namespace)
    await client.patch(CONFIGMAPS, "w", {"data": {"v": "2"}}, namespace)
    await client.delete(CONFIGMAPS, "w", namespace)
    await asyncio.wait_for(watcher, TIMEOUT)
    assert seen == [
        ("ADDED", "w", {"v": "1"}),
        ("MODIFIED", "w", {"v": "2"}),
        ("DELETED", "w", {"v": "2"}),
    ]


async def test_watch_initial_state_selectors_and_timeout(client: Client, namespace: str) -> None:
    await client.create(CONFIGMAPS, configmap("one", labels={"app": "x"}), namespace)
    await client.create(CONFIGMAPS, configmap("two"), namespace)
    events: list[tuple[str, str]] = []
    stream = client.watch(CONFIGMAPS, namespace, label_selector="app=x", timeout_seconds=2)
    async for kind, obj in stream:  # no resourceVersion: the current state first
        events.append((kind, obj["metadata"]["name"]))
    # The server ended the watch after timeoutSeconds and the iteration stopped.
    assert events == [("ADDED", "one")]


async def test_watch_bookmarks(client: Client, namespace: str) -> None:
    listing = await client.list(CONFIGMAPS, namespace)
    rv = listing["metadata"]["resourceVersion"]
    async with client.watch(
        CONFIGMAPS, namespace, resource_version=rv, allow_bookmarks=True, timeout_seconds=20
    ) as events:
        kind, obj = await asyncio.wait_for(anext(events), TIMEOUT)
    assert kind == "BOOKMARK"
    assert int(obj["metadata"]["resourceVersion"]) >= int(rv)


async def test_discovery(client: Client) -> None:
    resources = await client.discover()
    by_name = {(r.group, r.plural): r for r in resources}
    cm = by_name[("", "configmaps")]
    assert cm.namespaced and cm.kind == "ConfigMap" and cm.version == "v1"
    assert {"list", "watch", "delete", "deletecollection"} <= cm.verbs
    ns = by_name[("", "namespaces")]
    assert not ns.namespaced and ns.kind == "Namespace"
    assert by_name[("coordination.k8s.io", "leases")] == LEASES
    assert not any("/" in r.plural for r in resources)  # no subresources
    legacy = await client._discover_legacy()
    assert {(r.group, r.plural, r.version, r.kind) for r in legacy} == {
        (r.group, r.plural, r.version, r.kind) for r in resources
    }


async def test_namespace_finalize_subresource(client: Client) -> None:
    name = f"fin-{uuid.uuid4().hex[:8]}"
    ns = await client.create(NAMESPACES, {"metadata": {"name": name}})
    assert "kubernetes" in ns["spec"]["finalizers"]
    ns["spec"]["finalizers"] = []
    finalized = await client.replace(NAMESPACES, name, ns, subresource="finalize")
    assert finalized["spec"].get("finalizers") in (None, [])
    await client.delete(NAMESPACES, name)
    with pytest.raises(NotFound):
        await client.get(NAMESPACES, name)


async def test_untrusted_or_unauthenticated_connections_fail(api_server: Any) -> None:
    admin = load_kubeconfig(api_server.kubeconfig)
    # No CA: the server's certificate is not trusted by the system store.
    async with Client(Config(admin.server)) as untrusting:
        with pytest.raises(TransportError):
            await untrusting.get(NAMESPACES, "default")
    # Trusted server, no credentials: 401 Unauthorized as a Status.
    async with Client(Config(admin.server, ca_pem=admin.ca_pem)) as anonymous:
        with pytest.raises(ApiError) as err:
            await anonymous.get(NAMESPACES, "default")
        assert err.value.code == 401
    # Nothing listens on this port.
    async with Client(Config("https://127.0.0.1:1", ca_pem=admin.ca_pem)) as nowhere:
        with pytest.raises(TransportError):
            await nowhere.get(NAMESPACES, "default")


async def test_closed_client_refuses_requests(api_server: Any) -> None:
    client = Client(load_kubeconfig(api_server.kubeconfig))
    await client.get(NAMESPACES, "default")
    await client.close()
    with pytest.raises(Exception, match="closed"):
        await client.get(NAMESPACES, "default")


async def test_concurrent_requests_share_the_client(client: Client, namespace: str) -> None:
    names = [f"c{i}" for i in range(40)]
    await asyncio.gather(*(client.create(CONFIGMAPS, configmap(n), namespace) for n in names))
    got = await asyncio.gather(*(client.get(CONFIGMAPS, n, namespace) for n in names))
    assert [o["metadata"]["name"] for o in got] == names
    with contextlib.suppress(Exception):
        await client.delete_collection(CONFIGMAPS, namespace)
