"""Namespace lifecycle against the real API server: content goes, then the namespace."""

from __future__ import annotations

import asyncio
import uuid

from hypernetes.client import CONFIGMAPS, NAMESPACES, SECRETS, ApiError, Client, Resource
from hypernetes.controllers import NamespaceController

from .conftest import configmap, eventually, exists, running

ROLES = Resource("rbac.authorization.k8s.io", "v1", "roles", True, "Role")
HOLD = "test.hypernetes.io/hold"


async def conditions(client: Client, name: str) -> dict[str, dict[str, str]]:
    ns = await client.get(NAMESPACES, name)
    return {c["type"]: c for c in (ns.get("status") or {}).get("conditions") or []}


async def test_terminating_namespace_is_emptied_then_removed(client: Client) -> None:
    name = f"doomed-{uuid.uuid4().hex[:8]}"
    await client.create(NAMESPACES, {"metadata": {"name": name}})
    for i in range(5):
        await client.create(CONFIGMAPS, configmap(f"cm{i}"), name)
    await client.create(
        SECRETS, {"metadata": {"name": "s"}, "stringData": {"k": "v"}, "type": "Opaque"}, name
    )
    await client.create(
        ROLES,
        {
            "metadata": {"name": "r"},
            "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}],
        },
        name,
    )
    held = configmap("held")
    held["metadata"]["finalizers"] = [HOLD]
    await client.create(CONFIGMAPS, held, name)
    # A namespace that is not being deleted is left alone.
    bystander = f"alive-{uuid.uuid4().hex[:8]}"
    await client.create(NAMESPACES, {"metadata": {"name": bystander}})
    await client.create(CONFIGMAPS, configmap("keep"), bystander)

    async with running(NamespaceController(client)):
        await client.delete(NAMESPACES, name)
        ns = await client.get(NAMESPACES, name)
        assert ns["status"]["phase"] == "Terminating"

        async def only_held_left() -> bool:
            left = await client.list(CONFIGMAPS, name)
            secrets = await client.list(SECRETS, name)
            roles = await client.list(ROLES, name)
            return [o["metadata"]["name"] for o in left["items"]] == ["held"] and not (
                secrets["items"] or roles["items"]
            )

        await eventually(only_held_left, "the content to be deleted")

        async def reports_finalizers() -> bool:
            found = await conditions(client, name)
            c = found.get("NamespaceFinalizersRemaining", {})
            return c.get("status") == "True" and HOLD in c.get("message", "")

        await eventually(reports_finalizers, "the remaining finalizer to be reported")
        found = await conditions(client, name)
        assert found["NamespaceContentRemaining"]["status"] == "True"
        assert found["NamespaceDeletionDiscoveryFailure"]["status"] == "False"
        await asyncio.sleep(1.0)
        # Still there: content with a finalizer holds the namespace.
        ns = await client.get(NAMESPACES, name)
        assert "kubernetes" in ns["spec"]["finalizers"]

        await client.patch(CONFIGMAPS, "held", {"metadata": {"finalizers": None}}, name)
        await eventually(lambda: ns_gone(client, name), "the namespace to be removed")
        assert await exists(client, CONFIGMAPS, "keep", bystander)
        bystanding = await client.get(NAMESPACES, bystander)
        assert "deletionTimestamp" not in bystanding["metadata"]
    await client.delete(NAMESPACES, bystander)


async def ns_gone(client: Client, name: str) -> bool:
    return not await exists(client, NAMESPACES, name)


async def test_other_finalizers_are_left_to_their_owners(client: Client) -> None:
    name = f"shared-{uuid.uuid4().hex[:8]}"
    await client.create(
        NAMESPACES,
        {"metadata": {"name": name}, "spec": {"finalizers": ["kubernetes", "example.com/x"]}},
    )
    await client.create(CONFIGMAPS, configmap("c"), name)
    async with running(NamespaceController(client)):
        await client.delete(NAMESPACES, name)

        async def finalized() -> bool:
            ns = await client.get(NAMESPACES, name)
            return ns["spec"].get("finalizers") == ["example.com/x"]

        await eventually(finalized, "the kubernetes finalizer to be removed")
        assert not await exists(client, CONFIGMAPS, "c", name)
        ns = await client.get(NAMESPACES, name)
        ns["spec"]["finalizers"] = []
        await client.replace(NAMESPACES, name, ns, subresource="finalize")
        await eventually(lambda: ns_gone(client, name), "the namespace to go")


async def test_new_content_is_refused_in_a_terminating_namespace(client: Client) -> None:
    name = f"closing-{uuid.uuid4().hex[:8]}"
    await client.create(NAMESPACES, {"metadata": {"name": name}})
    held = configmap("held")
    held["metadata"]["finalizers"] = [HOLD]
    await client.create(CONFIGMAPS, held, name)
    async with running(NamespaceController(client)):
        await client.delete(NAMESPACES, name)
        try:
            await client.create(CONFIGMAPS, configmap("late"), name)
        except ApiError as exc:
            assert exc.code == 403
        await client.patch(CONFIGMAPS, "held", {"metadata": {"finalizers": None}}, name)
        await eventually(lambda: ns_gone(client, name), "the namespace to go")
