"""The garbage collector: Kubernetes ownerReference semantics over every kind.

It watches every listable, watchable, deletable resource that discovery
reports (rediscovering now and then, so CRDs join and leave) and keeps a
graph of objects by uid: their owner references and the reverse index of
dependents. Work items are uids:

- a dependent whose owners are all gone is deleted (Background), with the
  propagation its own finalizers ask for;
- a dependent of an owner being deleted in the foreground is deleted (in the
  foreground itself if it has dependents); a dependent with a solid owner
  only loses its references to gone or foreground-deleting owners;
- an owner with `foregroundDeletion` waits for its dependents that set
  `blockOwnerDeletion`, then loses the finalizer;
- an owner with `orphan` has its reference stripped from every dependent,
  then loses the finalizer.

The cache only ever proposes: an owner is judged gone by a live GET (404,
or an object with another uid), never from a possibly stale cache. A
namespaced owner is looked for in the dependent's namespace; a cluster-
scoped dependent naming a namespaced owner is invalid and never collected.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any

from hypernetes.client import ApiError, Client, Conflict, Informer, NotFound, Obj, Resource
from hypernetes.client.client import PropagationPolicy
from hypernetes.controllers.runtime import Controller

log = logging.getLogger(__name__)

ORPHAN = "orphan"
FOREGROUND = "foregroundDeletion"
IGNORED_RESOURCES = frozenset({("", "events"), ("events.k8s.io", "events")})
"""Kinds never collected (as kube): events are many, short-lived and never owners."""
_PATCH_RETRIES = 5


@dataclass(frozen=True)
class Node:
    """What the graph knows of one object."""

    resource: Resource
    namespace: str | None
    name: str
    uid: str
    owners: tuple[tuple[str, str, str, str, bool], ...]
    """(apiVersion, kind, name, uid, blockOwnerDeletion) of each owner reference."""
    deleting: bool
    finalizers: frozenset[str]

    @property
    def owner_uids(self) -> frozenset[str]:
        return frozenset(ref[3] for ref in self.owners)

    @property
    def deleting_dependents(self) -> bool:
        return self.deleting and FOREGROUND in self.finalizers

    def blocks(self, owner_uid: str) -> bool:
        return any(ref[3] == owner_uid and ref[4] for ref in self.owners)


def _node(resource: Resource, obj: Obj) -> Node:
    meta = obj.get("metadata") or {}
    owners = tuple(
        (
            str(ref.get("apiVersion", "")),
            str(ref.get("kind", "")),
            str(ref.get("name", "")),
            str(ref.get("uid", "")),
            bool(ref.get("blockOwnerDeletion")),
        )
        for ref in meta.get("ownerReferences") or []
        if isinstance(ref, dict)
    )
    return Node(
        resource,
        meta.get("namespace") or None,
        str(meta.get("name", "")),
        str(meta.get("uid", "")),
        owners,
        bool(meta.get("deletionTimestamp")),
        frozenset(meta.get("finalizers") or ()),
    )


def _metadata_only(obj: Obj) -> Obj:
    """What the collector needs of an object; the rest is not worth caching."""
    meta = obj.get("metadata") or {}
    keep = ("name", "namespace", "uid", "resourceVersion", "ownerReferences", "finalizers",
            "deletionTimestamp")  # fmt: skip
    return {
        "apiVersion": obj.get("apiVersion"),
        "kind": obj.get("kind"),
        "metadata": {k: meta[k] for k in keep if k in meta},
    }


def _group_of(api_version: str) -> str:
    return api_version.rpartition("/")[0]


class UnresolvedKind(Exception):
    """An owner reference names a kind discovery does not (yet) know."""


class GarbageCollector(Controller):
    """Deletes dependents of gone owners and runs foreground and orphan deletion."""

    name = "garbagecollector"
    workers = 4
    rediscovery_period = 30.0
    resync_period = 300.0

    def __init__(
        self, client: Client, *, ignored: frozenset[tuple[str, str]] = IGNORED_RESOURCES
    ) -> None:
        super().__init__(client)
        self.ignored = ignored
        self.graph: dict[str, Node] = {}
        self.dependents: dict[str, set[str]] = {}
        self._kinds: dict[tuple[str, str], Resource] = {}
        self._monitors: dict[Resource, Informer] = {}
        self._discovery_lock = asyncio.Lock()

    @property
    def monitored(self) -> frozenset[Resource]:
        """The resources whose objects are in the graph now."""
        return frozenset(self._monitors)

    # -- informers and the graph ---------------------------------------------

    async def setup(self) -> None:
        self.graph, self.dependents = {}, {}
        self._monitors = {}
        self._discovery_lock = asyncio.Lock()
        await self.sync_monitors()
        self.spawn(self._rediscover(), "rediscovery")

    async def _rediscover(self) -> None:
        while True:
            await asyncio.sleep(self.rediscovery_period)
            try:
                await self.sync_monitors()
            except Exception as exc:  # the next round tries again
                log.warning("garbagecollector: discovery failed: %s", exc)

    async def sync_monitors(self) -> None:
        """Discover resources; start watching new collectable kinds, stop watching gone ones."""
        async with self._discovery_lock:
            resources = await self.client.discover()
            self._kinds = {(r.group, r.kind): r for r in resources if r.kind}
            wanted = {
                r
                for r in resources
                if {"list", "watch", "delete"} <= r.verbs
                and (r.group, r.plural) not in self.ignored
            }
            for resource in [r for r in self._monitors if r not in wanted]:
                informer = self._monitors.pop(resource)
                await self.unwatch(informer)
                for obj in informer.items():  # its objects are gone with it
                    self._on_delete(resource, obj)
            for resource in wanted - set(self._monitors):
                informer = Informer(
                    self.client,
                    resource,
                    resync_period=self.resync_period,
                    transform=_metadata_only,
                )
                informer.add_handlers(
                    on_add=functools.partial(self._on_change, resource, None),
                    on_update=functools.partial(self._on_change, resource),
                    on_delete=functools.partial(self._on_delete, resource),
                )
                self._monitors[resource] = self.watch(informer)

    def _link(self, node: Node) -> None:
        for owner in node.owner_uids:
            self.dependents.setdefault(owner, set()).add(node.uid)

    def _unlink(self, node: Node) -> None:
        for owner in node.owner_uids:
            deps = self.dependents.get(owner)
            if deps is not None:
                deps.discard(node.uid)
                if not deps:
                    del self.dependents[owner]

    def _on_change(self, resource: Resource, old: Obj | None, obj: Obj) -> None:
        node = _node(resource, obj)
        if not node.uid:
            return
        previous = self.graph.get(node.uid)
        if previous is not None:
            self._unlink(previous)
        self.graph[node.uid] = node
        self._link(node)
        resync = old is not None and old is obj
        changed = previous is None or previous != node
        if node.owners and (changed or resync):
            self.queue.add(node.uid)
        if node.deleting and node.finalizers & {FOREGROUND, ORPHAN}:
            self.queue.add(node.uid)
        if previous is not None:
            # Owners this object stopped referring to may be waiting for it no more.
            for owner in previous.owner_uids - node.owner_uids:
                self._poke_waiting_owner(owner)
            if node.deleting and not previous.deleting:
                for dep in self.dependents.get(node.uid, ()):
                    self.queue.add(dep)

    def _on_delete(self, resource: Resource, obj: Obj) -> None:
        node = _node(resource, obj)
        known = self.graph.get(node.uid)
        if known is None or known.resource != resource:
            return
        del self.graph[node.uid]
        self._unlink(known)
        for dep in self.dependents.get(node.uid, ()):
            self.queue.add(dep)  # their owner is gone: maybe they are garbage now
        for owner in known.owner_uids:
            self._poke_waiting_owner(owner)

    def _poke_waiting_owner(self, owner_uid: str) -> None:
        owner = self.graph.get(owner_uid)
        if owner is not None and owner.deleting_dependents:
            self.queue.add(owner_uid)

    # -- reconciling -----------------------------------------------------------

    async def reconcile(self, key: Hashable) -> float | None:
        node = self.graph.get(str(key))
        if node is None:
            return None
        latest = await self._get(node.resource, node.namespace, node.name, node.uid)
        if latest is None:
            return None  # gone (or replaced): the informer will tell us
        meta = latest["metadata"]
        finalizers = meta.get("finalizers") or []
        if meta.get("deletionTimestamp"):
            if ORPHAN in finalizers:
                await self._orphan_dependents(node)
                await self._remove_finalizer(node, ORPHAN)
            elif FOREGROUND in finalizers:
                await self._process_foreground(node)
            return None
        refs = [r for r in meta.get("ownerReferences") or [] if isinstance(r, dict)]
        if refs:
            await self._collect(node, latest, refs)
        return None

    async def _collect(self, node: Node, latest: Obj, refs: list[dict[str, Any]]) -> None:
        solid: list[Obj] = []
        dangling: list[Obj] = []
        waiting: list[Obj] = []
        for ref in refs:
            state = await self._owner_state(node, ref)
            if state == "invalid":
                log.warning(
                    "garbagecollector: cluster-scoped %s %s names a namespaced owner %s %s; "
                    "it is never collected", node.resource, node.name, ref.get("kind"),
                    ref.get("name"),
                )  # fmt: skip
                return
            {"solid": solid, "dangling": dangling, "waiting": waiting}[state].append(ref)
        if solid:
            if dangling or waiting:
                # Keep the object (it has a live owner) but drop the dead references,
                # so no foreground owner waits forever for it.
                gone = {str(r.get("uid")) for r in dangling + waiting}
                await self._edit_owner_refs(node, lambda r: None if r.get("uid") in gone else r)
            return
        finalizers = latest["metadata"].get("finalizers") or []
        if waiting and self._live_dependents(node.uid):
            if any(self.graph[d].deleting_dependents for d in self._live_dependents(node.uid)):
                # A dependent of ours waits for us while we would wait for it: unblock
                # our references to foreground owners so the cycle can end.
                ours = {str(r.get("uid")) for r in waiting}
                await self._edit_owner_refs(
                    node,
                    lambda r: {**r, "blockOwnerDeletion": False} if r.get("uid") in ours else r,
                )
            policy: PropagationPolicy = "Foreground"
        elif ORPHAN in finalizers:
            policy = "Orphan"
        elif FOREGROUND in finalizers:
            policy = "Foreground"
        else:
            policy = "Background"
        log.info("garbagecollector: deleting %s %s/%s (%s)", node.resource,
                 node.namespace or "", node.name, policy)  # fmt: skip
        # NotFound: already gone; Conflict: replaced by a new object of the same name.
        with contextlib.suppress(NotFound, Conflict):
            await self.client.delete(
                node.resource,
                node.name,
                node.namespace,
                propagation_policy=policy,
                preconditions={"uid": node.uid},
            )

    def _live_dependents(self, uid: str) -> list[str]:
        return [d for d in self.dependents.get(uid, ()) if d in self.graph]

    async def _owner_state(self, node: Node, ref: dict[str, Any]) -> str:
        """ "solid", "dangling" (gone), "waiting" (deleting in the foreground) or "invalid"."""
        resource = await self._resolve(str(ref.get("apiVersion", "")), str(ref.get("kind", "")))
        if resource.namespaced and node.namespace is None:
            return "invalid"
        namespace = node.namespace if resource.namespaced else None
        owner = await self._get(resource, namespace, str(ref.get("name", "")), str(ref.get("uid")))
        if owner is None:
            return "dangling"
        meta = owner["metadata"]
        if meta.get("deletionTimestamp") and FOREGROUND in (meta.get("finalizers") or []):
            return "waiting"
        return "solid"

    async def _resolve(self, api_version: str, kind: str) -> Resource:
        key = (_group_of(api_version), kind)
        resource = self._kinds.get(key)
        if resource is None:
            await self.sync_monitors()  # maybe a kind that appeared since the last discovery
            resource = self._kinds.get(key)
        if resource is None:
            raise UnresolvedKind(f"no served resource for kind {kind} in {api_version!r}")
        return resource

    async def _get(
        self, resource: Resource, namespace: str | None, name: str, uid: str
    ) -> Obj | None:
        """The live object, or None if there is none with this uid."""
        try:
            obj = await self.client.get(resource, name, namespace)
        except NotFound:
            return None
        return obj if (obj.get("metadata") or {}).get("uid") == uid else None

    async def _process_foreground(self, node: Node) -> None:
        dependents = [self.graph[d] for d in self._live_dependents(node.uid)]
        blocking = [d for d in dependents if d.blocks(node.uid)]
        if not blocking:
            await self._remove_finalizer(node, FOREGROUND)
            return
        # Blocking dependents first: they are what the owner waits for.
        for dep in sorted(dependents, key=lambda d: not d.blocks(node.uid)):
            if not dep.deleting:
                self.queue.add(dep.uid)

    async def _orphan_dependents(self, node: Node) -> None:
        for dep_uid in self._live_dependents(node.uid):
            dep = self.graph[dep_uid]
            await self._edit_owner_refs(dep, lambda r: None if r.get("uid") == node.uid else r)

    async def _edit_owner_refs(self, node: Node, edit: Any) -> None:
        """Rewrite `node`'s ownerReferences with `edit` (None drops one), concurrency-safe."""
        for _ in range(_PATCH_RETRIES):
            latest = await self._get(node.resource, node.namespace, node.name, node.uid)
            if latest is None:
                return
            meta = latest["metadata"]
            refs = meta.get("ownerReferences") or []
            edited = [e for e in (edit(r) for r in refs) if e is not None]
            if edited == refs:
                return
            patch = {
                "metadata": {
                    "ownerReferences": edited or None,
                    "resourceVersion": meta["resourceVersion"],
                }
            }
            try:
                await self.client.patch(node.resource, node.name, patch, node.namespace)
                return
            except NotFound:
                return
            except Conflict:
                continue  # written in between: read again
        raise ApiError(409, "Conflict", f"{node.name}: ownerReferences kept changing", {})

    async def _remove_finalizer(self, node: Node, finalizer: str) -> None:
        for _ in range(_PATCH_RETRIES):
            latest = await self._get(node.resource, node.namespace, node.name, node.uid)
            if latest is None:
                return
            meta = latest["metadata"]
            finalizers = meta.get("finalizers") or []
            if finalizer not in finalizers:
                return
            patch = {
                "metadata": {
                    "finalizers": [f for f in finalizers if f != finalizer] or None,
                    "resourceVersion": meta["resourceVersion"],
                }
            }
            try:
                await self.client.patch(node.resource, node.name, patch, node.namespace)
                log.info("garbagecollector: removed %s from %s %s/%s", finalizer,
                         node.resource, node.namespace or "", node.name)  # fmt: skip
                return
            except NotFound:
                return
            except Conflict:
                continue
        raise ApiError(409, "Conflict", f"{node.name}: finalizers kept changing", {})
