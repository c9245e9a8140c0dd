"""Objects in the store: keys, encoding, metadata rules and optimistic concurrency.

This is the generic storage layer under every resource endpoint. It knows the
key layout, turns store revisions into `resourceVersion`s, enforces the
metadata rules every kind shares (uid, creationTimestamp, generation,
finalizers and deletionTimestamp) and maps store failures to Status errors.
It knows nothing of HTTP.
"""

from __future__ import annotations

import base64
import binascii
import copy
import datetime
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hypernetes.api import errors
from hypernetes.resources.registry import ResourceType
from hypernetes.store import Compacted, Conflict, FutureRevision, KeyExists, Store, Watch

Obj = dict[str, Any]


def now_rfc3339() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def now_micro() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def prefix(rt: ResourceType, namespace: str | None) -> str:
    """The store prefix of a collection; all namespaces when `namespace` is None."""
    base = f"/registry/{rt.group or 'core'}/{rt.plural}/"
    if rt.namespaced and namespace:
        return f"{base}{namespace}/"
    return base


def key(rt: ResourceType, namespace: str | None, name: str) -> str:
    return prefix(rt, namespace if rt.namespaced else None) + name


def decode(value: bytes, mod_revision: int) -> Obj:
    obj: Obj = json.loads(value)
    obj.setdefault("metadata", {})["resourceVersion"] = str(mod_revision)
    return obj


def encode(obj: Obj) -> bytes:
    """Serialise for storage; the resourceVersion is the store's, never stored."""
    meta = obj.get("metadata", {})
    stored = {**obj, "metadata": {k: v for k, v in meta.items() if k != "resourceVersion"}}
    return json.dumps(stored, separators=(",", ":")).encode()


def parse_resource_version(value: str | None, what: str = "resourceVersion") -> int:
    """A resourceVersion string as a revision; "" means 0. 400 if not a number."""
    if not value:
        return 0
    try:
        rv = int(value)
    except ValueError:
        raise errors.bad_request(f"invalid {what}: {value!r}") from None
    if rv < 0:
        raise errors.bad_request(f"invalid {what}: {value!r}")
    return rv


@dataclass(frozen=True)
class ContinueToken:
    revision: int
    start: str

    def encode(self) -> str:
        raw = json.dumps({"v": "meta.k8s.io/v1", "rv": self.revision, "start": self.start})
        return base64.urlsafe_b64encode(raw.encode()).decode()

    @classmethod
    def decode(cls, token: str) -> ContinueToken:
        try:
            data = json.loads(base64.urlsafe_b64decode(token.encode()))
            return cls(int(data["rv"]), str(data["start"]))
        except (ValueError, KeyError, TypeError, binascii.Error):
            raise errors.bad_request("continue key is not valid") from None


@dataclass(frozen=True)
class Page:
    items: list[Obj]
    revision: int
    continue_token: str
    remaining: int | None


class Objects:
    """CRUD on objects of any registered kind, over a `Store`."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def get(self, rt: ResourceType, namespace: str | None, name: str) -> Obj:
        kv = await self.store.get(key(rt, namespace, name))
        if kv is None:
            raise errors.not_found(rt, name)
        return decode(kv.value, kv.mod_revision)

    async def find(self, rt: ResourceType, namespace: str | None, name: str) -> Obj | None:
        kv = await self.store.get(key(rt, namespace, name))
        return None if kv is None else decode(kv.value, kv.mod_revision)

    async def list(
        self,
        rt: ResourceType,
        namespace: str | None,
        *,
        keep: Callable[[Obj], bool] = lambda _: True,
        limit: int = 0,
        continue_token: str = "",
        revision: int = 0,
    ) -> Page:
        """A page of objects passing `keep`, in key order, consistent at one revision."""
        pfx = prefix(rt, namespace)
        start = ""
        if continue_token:
            token = ContinueToken.decode(continue_token)
            revision, start = token.revision, token.start
        items: list[Obj] = []
        try:
            while True:
                chunk = max(limit - len(items), 50) if limit else 0
                res = await self.store.range(pfx, start=start, limit=chunk, revision=revision)
                revision = res.revision
                for kv in res.kvs:
                    obj = decode(kv.value, kv.mod_revision)
                    if keep(obj):
                        items.append(obj)
                        if limit and len(items) == limit:
                            following = kv.key + "\0"
                            more = await self.store.range(
                                pfx, start=following, limit=1, revision=revision
                            )
                            if more.kvs:
                                token_text = ContinueToken(revision, following).encode()
                                return Page(items, revision, token_text, None)
                            return Page(items, revision, "", None)
                if not res.more:
                    return Page(items, revision, "", None)
                start = res.kvs[-1].key + "\0"
        except Compacted:
            if continue_token:
                raise errors.expired(
                    "The provided continue parameter is too old to display a consistent list "
                    "result. You can start a new list without the continue parameter."
                ) from None
            raise errors.expired(f"too old resource version: {revision}") from None
        except FutureRevision:
            raise errors.timeout(f"Too large resource version: {revision}") from None

    async def create(self, rt: ResourceType, obj: Obj, *, dry_run: bool = False) -> Obj:
        """Store a new object; fills uid, creationTimestamp, generation."""
        meta = obj["metadata"]
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = now_rfc3339()
        meta.pop("resourceVersion", None)
        meta.pop("deletionTimestamp", None)
        meta.pop("deletionGracePeriodSeconds", None)
        if _has_generation(rt):
            meta["generation"] = 1
        if dry_run:
            return obj
        try:
            revision = await self.store.create(
                key(rt, meta.get("namespace"), meta["name"]), encode(obj)
            )
        except KeyExists:
            raise errors.already_exists(rt, meta["name"]) from None
        meta["resourceVersion"] = str(revision)
        return obj

    async def update(self, rt: ResourceType, old: Obj, new: Obj, *, dry_run: bool = False) -> Obj:
        """Replace `old` (as read) by `new`; 409 if it changed since it was read.

        Keeps the immutable metadata, bumps the generation on spec changes, and
        removes the object when it is being deleted and has no finalizers left.
        """
        meta, old_meta = new.setdefault("metadata", {}), old["metadata"]
        for field in (
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "namespace",
            "name",
        ):
            if field in old_meta:
                meta[field] = old_meta[field]
            else:
                meta.pop(field, None)
        if _has_generation(rt):
            changed = _spec_of(rt, new) != _spec_of(rt, old)
            meta["generation"] = int(old_meta.get("generation", 1)) + (1 if changed else 0)
        if "deletionTimestamp" in meta and not _held(rt, new):
            if not dry_run:
                await self._delete_exact(rt, old)
            return new
        if dry_run:
            return new
        k = key(rt, meta.get("namespace"), meta["name"])
        try:
            revision = await self.store.update(k, encode(new), int(old_meta["resourceVersion"]))
        except Conflict as exc:
            if exc.current is None:
                raise errors.not_found(rt, meta["name"]) from None
            raise errors.stale(rt, meta["name"]) from None
        meta["resourceVersion"] = str(revision)
        return new

    async def replace_exact(self, rt: ResourceType, old: Obj, new: Obj) -> Obj:
        """Write `new` as it is over `old` (as read): for the server's own metadata changes."""
        meta = old["metadata"]
        try:
            revision = await self.store.update(
                key(rt, meta.get("namespace"), meta["name"]),
                encode(new),
                int(meta["resourceVersion"]),
            )
        except Conflict:
            raise errors.stale(rt, meta["name"]) from None
        new["metadata"]["resourceVersion"] = str(revision)
        return new

    async def _delete_exact(self, rt: ResourceType, obj: Obj) -> int:
        meta = obj["metadata"]
        try:
            return await self.store.delete(
                key(rt, meta.get("namespace"), meta["name"]), int(meta["resourceVersion"])
            )
        except Conflict as exc:
            if exc.current is None:
                raise errors.not_found(rt, meta["name"]) from None
            raise errors.stale(rt, meta["name"]) from None

    async def delete(
        self,
        rt: ResourceType,
        obj: Obj,
        *,
        add_finalizers: tuple[str, ...] = (),
        grace_seconds: int | None = None,
        dry_run: bool = False,
    ) -> tuple[Obj, bool]:
        """Delete `obj` (as read), or mark it deleted if finalizers hold it.

        Returns the object as it is now and whether it is gone.
        """
        meta = obj["metadata"]
        finalizers = list(meta.get("finalizers") or [])
        for f in add_finalizers:
            if f not in finalizers and "deletionTimestamp" not in meta:
                finalizers.append(f)
        if not finalizers and not grace_seconds:
            if not dry_run:
                await self._delete_exact(rt, obj)
            return obj, True
        if "deletionTimestamp" in meta:
            return obj, False  # already being deleted: deleting again changes nothing
        marked = copy.deepcopy(obj)
        marked["metadata"]["finalizers"] = finalizers
        marked["metadata"]["deletionTimestamp"] = now_rfc3339()
        marked["metadata"]["deletionGracePeriodSeconds"] = grace_seconds or 0
        if "generation" in marked["metadata"]:
            marked["metadata"]["generation"] += 1  # as kube: deletion is a spec change
        if dry_run:
            return marked, False
        k = key(rt, meta.get("namespace"), meta["name"])
        try:
            revision = await self.store.update(k, encode(marked), int(meta["resourceVersion"]))
        except Conflict:
            raise errors.stale(rt, meta["name"]) from None
        marked["metadata"]["resourceVersion"] = str(revision)
        return marked, False

    def watch(self, rt: ResourceType, namespace: str | None, start_revision: int) -> Watch:
        try:
            return self.store.watch(prefix(rt, namespace), start_revision)
        except Compacted:
            raise errors.expired(f"too old resource version: {start_revision - 1}") from None
        except FutureRevision:
            raise errors.timeout(f"Too large resource version: {start_revision - 1}") from None


def _held(rt: ResourceType, obj: Obj) -> bool:
    """Whether finalizers still hold a deleted object (a namespace's spec ones too)."""
    if obj["metadata"].get("finalizers"):
        return True
    is_namespace = rt.kind == "Namespace" and not rt.group
    return is_namespace and bool((obj.get("spec") or {}).get("finalizers"))


def _has_generation(rt: ResourceType) -> bool:
    # Kinds with a status subresource and CRDs track spec changes in generation.
    return rt.has_status() or rt.crd_name is not None


def _spec_of(rt: ResourceType, obj: Obj) -> Any:
    if rt.has_status():
        return {k: v for k, v in obj.items() if k not in ("metadata", "status")}
    return {k: v for k, v in obj.items() if k != "metadata"}
