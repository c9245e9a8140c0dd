"""Namespace lifecycle: empty a terminating namespace, then release it.

When a Namespace has a deletionTimestamp and still carries the `kubernetes`
finalizer in `spec.finalizers`, this controller deletes every namespaced
object in it — every kind discovery lists that can be deleted — waits until
they are all gone (objects with finalizers or graceful pods take a while),
and then drops `kubernetes` through the `finalize` subresource; the server
removes the namespace once no finalizer is left. Progress is reported in the
namespace's status conditions, as kube does.
"""

from __future__ import annotations

import datetime
import logging
import time
from collections.abc import Hashable
from typing import Any

from hypernetes.client import NAMESPACES, ApiError, Client, Conflict, Informer, NotFound, Obj
from hypernetes.client.resource import Resource
from hypernetes.controllers.runtime import Controller

log = logging.getLogger(__name__)

FINALIZER = "kubernetes"
DISCOVERY_TTL = 10.0
"""Seconds a discovery answer is reused across namespaces."""
RECHECK = 2.0
"""Seconds between looks at a namespace whose content is still going away."""

CONDITION_TYPES = (
    "NamespaceDeletionDiscoveryFailure",
    "NamespaceDeletionGroupVersionParsingFailure",
    "NamespaceDeletionContentFailure",
    "NamespaceContentRemaining",
    "NamespaceFinalizersRemaining",
)
_OK_REASONS = {
    "NamespaceDeletionDiscoveryFailure": "ResourcesDiscovered",
    "NamespaceDeletionGroupVersionParsingFailure": "ParsedGroupVersions",
    "NamespaceDeletionContentFailure": "ContentDeleted",
    "NamespaceContentRemaining": "ContentRemoved",
    "NamespaceFinalizersRemaining": "ContentHasNoFinalizers",
}
_OK_MESSAGES = {
    "NamespaceDeletionDiscoveryFailure": "All resources successfully discovered",
    "NamespaceDeletionGroupVersionParsingFailure": "All legacy kube types successfully parsed",
    "NamespaceDeletionContentFailure": "All content successfully deleted, may be waiting on "
    "finalization",
    "NamespaceContentRemaining": "All content successfully removed",
    "NamespaceFinalizersRemaining": "All content-preserving finalizers finished",
}
_FAIL_REASONS = {
    "NamespaceDeletionDiscoveryFailure": "DiscoveryFailed",
    "NamespaceDeletionContentFailure": "ContentDeletionFailed",
    "NamespaceContentRemaining": "SomeResourcesRemain",
    "NamespaceFinalizersRemaining": "SomeFinalizersRemain",
}


class NamespaceController(Controller):
    """Deletes the content of terminating namespaces and finalizes them."""

    name = "namespace"
    workers = 2

    def __init__(self, client: Client) -> None:
        super().__init__(client)
        self._discovered: tuple[float, list[Resource]] | None = None

    async def setup(self) -> None:
        informer = Informer(self.client, NAMESPACES, resync_period=300.0)
        informer.add_handlers(on_add=self._enqueue, on_update=lambda _old, new: self._enqueue(new))
        self.watch(informer)

    def _enqueue(self, ns: Obj) -> None:
        meta = ns.get("metadata") or {}
        if meta.get("deletionTimestamp") and FINALIZER in _spec_finalizers(ns):
            self.queue.add(meta.get("name", ""))

    async def _content_resources(self) -> list[Resource]:
        now = time.monotonic()
        if self._discovered is not None and now - self._discovered[0] < DISCOVERY_TTL:
            return self._discovered[1]
        resources = [
            r
            for r in await self.client.discover()
            if r.namespaced and "list" in r.verbs and r.verbs & {"delete", "deletecollection"}
        ]
        self._discovered = (now, resources)
        return resources

    async def reconcile(self, key: Hashable) -> float | None:
        name = str(key)
        try:
            ns = await self.client.get(NAMESPACES, name)
        except NotFound:
            return None
        if not ns["metadata"].get("deletionTimestamp") or FINALIZER not in _spec_finalizers(ns):
            return None
        failures: dict[str, str] = {}
        try:
            resources = await self._content_resources()
        except ApiError as exc:
            await self._report(ns, {"NamespaceDeletionDiscoveryFailure": str(exc)})
            raise
        errors: list[str] = []
        for resource in resources:
            try:
                await self._delete_all(resource, name)
            except ApiError as exc:
                if exc.code not in (404, 405):
                    errors.append(f"{resource.group_resource}: {exc.message or exc.reason}")
        if errors:
            failures["NamespaceDeletionContentFailure"] = "; ".join(errors)
        remaining, finalizers = await self._remaining(resources, name)
        if remaining:
            failures["NamespaceContentRemaining"] = "Some resources are remaining: " + ", ".join(
                f"{gr} has {n} resource instances" for gr, n in sorted(remaining.items())
            )
        if finalizers:
            failures["NamespaceFinalizersRemaining"] = (
                "Some content in the namespace has finalizers remaining: "
                + ", ".join(f"{f} in {n} resource instances" for f, n in sorted(finalizers.items()))
            )
        await self._report(ns, failures)
        if errors:
            raise RuntimeError(f"namespace {name}: {failures['NamespaceDeletionContentFailure']}")
        if remaining:
            return RECHECK
        await self._finalize(name)
        return None

    async def _delete_all(self, resource: Resource, namespace: str) -> None:
        if "deletecollection" in resource.verbs:
            await self.client.delete_collection(resource, namespace)
            return
        listing = await self.client.list_all(resource, namespace)
        for item in listing.get("items") or []:
            meta = item.get("metadata") or {}
            if meta.get("deletionTimestamp"):
                continue
            try:
                await self.client.delete(
                    resource, meta["name"], namespace, preconditions={"uid": meta.get("uid", "")}
                )
            except (NotFound, Conflict):
                continue

    async def _remaining(
        self, resources: list[Resource], namespace: str
    ) -> tuple[dict[str, int], dict[str, int]]:
        counts: dict[str, int] = {}
        finalizers: dict[str, int] = {}
        for resource in resources:
            try:
                listing = await self.client.list_all(resource, namespace)
            except ApiError as exc:
                if exc.code in (404, 405):
                    continue
                raise
            items = listing.get("items") or []
            if items:
                counts[resource.group_resource] = len(items)
            for item in items:
                for f in (item.get("metadata") or {}).get("finalizers") or []:
                    finalizers[f] = finalizers.get(f, 0) + 1
        return counts, finalizers

    async def _report(self, ns: Obj, failures: dict[str, str]) -> None:
        """Set the deletion conditions (True with a message for each failure)."""
        status = ns.get("status") or {}
        old = {c.get("type"): c for c in status.get("conditions") or []}
        conditions: list[dict[str, Any]] = []
        stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        for kind in CONDITION_TYPES:
            failed = kind in failures
            wanted = {
                "type": kind,
                "status": "True" if failed else "False",
                "reason": _FAIL_REASONS.get(kind, "Failed") if failed else _OK_REASONS[kind],
                "message": failures[kind] if failed else _OK_MESSAGES[kind],
            }
            previous = old.get(kind)
            if previous and all(previous.get(k) == v for k, v in wanted.items()):
                conditions.append(previous)
            else:
                conditions.append({**wanted, "lastTransitionTime": stamp})
        others = [c for t, c in old.items() if t not in CONDITION_TYPES]
        if conditions + others == list(old.values()):
            return
        body = {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": ns["metadata"]["name"]},
            "status": {**status, "conditions": conditions + others},
        }
        try:
            await self.client.patch(NAMESPACES, ns["metadata"]["name"], body, subresource="status")
        except NotFound:
            return

    async def _finalize(self, name: str) -> None:
        for _ in range(5):
            try:
                ns = await self.client.get(NAMESPACES, name)
            except NotFound:
                return
            spec = ns.get("spec") or {}
            if FINALIZER not in (spec.get("finalizers") or []):
                return
            ns["spec"] = {**spec, "finalizers": [f for f in spec["finalizers"] if f != FINALIZER]}
            try:
                await self.client.replace(NAMESPACES, name, ns, subresource="finalize")
            except NotFound:
                return
            except Conflict:
                continue
            log.info("namespace: %s is empty and finalized", name)
            return
        raise RuntimeError(f"namespace {name}: finalize kept conflicting")


def _spec_finalizers(ns: Obj) -> list[str]:
    return list((ns.get("spec") or {}).get("finalizers") or [])
