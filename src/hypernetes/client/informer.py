"""Informers: a local cache of one collection, kept current by list-then-watch.

An `Informer` lists the collection, then watches from the list's
resourceVersion, applying each event to its cache and calling the handlers.
When the watch ends it resumes from the last resourceVersion seen; when the
server says that version is gone (410 Expired) it lists again and reports
the difference as add/update/delete events, so handlers see a consistent
story. A resync period replays every cached object as an update, so level-
triggered controllers get another look at everything now and then.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from hypernetes.client.backoff import Backoff
from hypernetes.client.client import Client, Obj
from hypernetes.client.errors import ApiError, ClientError, Expired
from hypernetes.client.resource import Resource

log = logging.getLogger(__name__)

OnAdd = Callable[[Obj], Awaitable[None] | None]
OnUpdate = Callable[[Obj, Obj], Awaitable[None] | None]
OnDelete = Callable[[Obj], Awaitable[None] | None]


def object_key(obj: Obj) -> str:
    """ "namespace/name" for namespaced objects, "name" otherwise (as client-go keys them)."""
    meta = obj.get("metadata") or {}
    namespace, name = meta.get("namespace"), meta.get("name", "")
    return f"{namespace}/{name}" if namespace else str(name)


def split_key(key: str) -> tuple[str | None, str]:
    """The (namespace, name) of a key made by `object_key`."""
    namespace, sep, name = key.partition("/")
    return (namespace, name) if sep else (None, namespace)


@dataclass
class _Handlers:
    on_add: OnAdd | None
    on_update: OnUpdate | None
    on_delete: OnDelete | None


class Informer:
    """A cache of `resource` (in `namespace`, or everywhere) with event handlers."""

    def __init__(
        self,
        client: Client,
        resource: Resource,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
        resync_period: float | None = None,
        transform: Callable[[Obj], Obj] | None = None,
        watch_timeout: int = 300,
    ) -> None:
        self.client = client
        self.resource = resource
        self.namespace = namespace
        self.label_selector = label_selector
        self.field_selector = field_selector
        self.resync_period = resync_period
        self.transform = transform
        """Applied to every object before it is cached (e.g. keep only metadata)."""
        self.watch_timeout = watch_timeout
        """Seconds the server keeps one watch open (spread ±20%) before we reconnect."""
        self.resource_version = ""
        """The resourceVersion the cache is current to."""
        self.relists = 0
        """How many times the collection was listed (1 + the number of relists)."""
        self._cache: dict[str, Obj] = {}
        self._handlers: list[_Handlers] = []
        self._synced = asyncio.Event()

    # -- reading the cache ---------------------------------------------------

    def add_handlers(
        self,
        on_add: OnAdd | None = None,
        on_update: OnUpdate | None = None,
        on_delete: OnDelete | None = None,
    ) -> None:
        """Register callbacks (plain or async); add them before `run`."""
        self._handlers.append(_Handlers(on_add, on_update, on_delete))

    @property
    def has_synced(self) -> bool:
        """True once the first list is in the cache and its add events were handled."""
        return self._synced.is_set()

    async def wait_synced(self, timeout: float | None = None) -> None:
        await asyncio.wait_for(self._synced.wait(), timeout)

    def get(self, name: str, namespace: str | None = None) -> Obj | None:
        return self._cache.get(f"{namespace}/{name}" if namespace else name)

    def get_by_key(self, key: str) -> Obj | None:
        return self._cache.get(key)

    def items(self) -> list[Obj]:
        return list(self._cache.values())

    def keys(self) -> list[str]:
        return list(self._cache)

    def __len__(self) -> int:
        return len(self._cache)

    # -- running -------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Keep the cache current until `stop` is set."""
        tasks = [asyncio.create_task(self._loop(), name=f"informer {self.resource}")]
        if self.resync_period:
            tasks.append(asyncio.create_task(self._resync_loop(self.resync_period)))
        waiter = asyncio.create_task(stop.wait())
        try:
            done, _ = await asyncio.wait([*tasks, waiter], return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in [*tasks, waiter]:
                task.cancel()
            for task in [*tasks, waiter]:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        for task in done:
            if task is not waiter and not task.cancelled() and task.exception():
                raise task.exception()  # type: ignore[misc]

    async def _loop(self) -> None:
        backoff = Backoff(0.2, 30.0)
        need_list = True
        while True:
            try:
                if need_list:
                    await self._relist()
                    need_list = False
                started = time.monotonic()
                await self._watch_once()
                if time.monotonic() - started < 1.0:
                    # A watch the server ends at once would otherwise spin: slow down.
                    await asyncio.sleep(backoff.next())
                else:
                    backoff.reset()
            except Expired:
                log.info(
                    "watch of %s expired at %s; listing again", self.resource, self.resource_version
                )
                need_list = True
            except ClientError as exc:
                # A transport failure resumes the watch; anything else relists, as
                # the server may have lost our place (or the cache may be suspect).
                if isinstance(exc, ApiError):
                    need_list = True
                delay = backoff.next()
                log.warning("informer %s: %s; retrying in %.1fs", self.resource, exc, delay)
                await asyncio.sleep(delay)

    async def _relist(self) -> None:
        listing = await self.client.list_all(
            self.resource,
            self.namespace,
            label_selector=self.label_selector,
            field_selector=self.field_selector,
        )
        self.relists += 1
        fresh: dict[str, Obj] = {}
        for item in listing.get("items") or []:
            item.setdefault("apiVersion", self.resource.api_version)
            if self.resource.kind:
                item.setdefault("kind", self.resource.kind)
            obj = self._prepare(item)
            fresh[object_key(obj)] = obj
        old_cache, self._cache = self._cache, fresh
        self.resource_version = str((listing.get("metadata") or {}).get("resourceVersion", ""))
        for key, old in old_cache.items():
            if key not in fresh:
                await self._dispatch("delete", old)
        for key, obj in fresh.items():
            previous = old_cache.get(key)
            if previous is None:
                await self._dispatch("add", obj)
            elif _rv(previous) != _rv(obj) or _uid(previous) != _uid(obj):
                await self._dispatch("update", obj, previous)
        self._synced.set()

    async def _watch_once(self) -> None:
        timeout = max(1, int(self.watch_timeout * random.uniform(0.8, 1.2)))
        async with self.client.watch(
            self.resource,
            self.namespace,
            resource_version=self.resource_version,
            label_selector=self.label_selector,
            field_selector=self.field_selector,
            timeout_seconds=timeout,
            allow_bookmarks=True,
        ) as events:
            async for kind, raw in events:
                rv = _rv(raw)
                if kind == "BOOKMARK":
                    if rv:
                        self.resource_version = rv
                    continue
                obj = self._prepare(raw)
                key = object_key(obj)
                if kind in ("ADDED", "MODIFIED"):
                    previous = self._cache.get(key)
                    self._cache[key] = obj
                    if previous is None:
                        await self._dispatch("add", obj)
                    else:
                        await self._dispatch("update", obj, previous)
                elif kind == "DELETED":
                    self._cache.pop(key, None)
                    await self._dispatch("delete", obj)
                if rv:
                    self.resource_version = rv

    async def _resync_loop(self, period: float) -> None:
        await self._synced.wait()
        while True:
            await asyncio.sleep(period)
            for obj in list(self._cache.values()):
                await self._dispatch("update", obj, obj)

    def _prepare(self, obj: Obj) -> Obj:
        return self.transform(obj) if self.transform is not None else obj

    async def _dispatch(self, event: str, obj: Obj, old: Obj | None = None) -> None:
        for handlers in self._handlers:
            callback: Any
            args: tuple[Any, ...]
            if event == "add":
                callback, args = handlers.on_add, (obj,)
            elif event == "update":
                callback, args = handlers.on_update, (old, obj)
            else:
                callback, args = handlers.on_delete, (obj,)
            if callback is None:
                continue
            try:
                result = callback(*args)
                if inspect.isawaitable(result):
                    await result
            except Exception:
                # One broken handler must not stop the cache (or the other handlers).
                log.exception("informer %s: %s handler failed", self.resource, event)


def _rv(obj: Obj) -> str:
    return str((obj.get("metadata") or {}).get("resourceVersion", ""))


def _uid(obj: Obj) -> str:
    return str((obj.get("metadata") or {}).get("uid", ""))
