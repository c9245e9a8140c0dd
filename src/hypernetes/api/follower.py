"""An in-memory copy of all objects of one kind, kept current by a store watch.

The API server uses followers for what it consults on every request (RBAC
roles and bindings): reading the store each time would cost a range per
request, while a watch keeps the copy fresh within milliseconds. Every server
follows the store itself, so several servers on one store agree.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from hypernetes.api import errors
from hypernetes.api.objects import Objects, decode
from hypernetes.resources.registry import ResourceType
from hypernetes.store import EventType, StoreError

log = logging.getLogger(__name__)

Obj = dict[str, Any]
Key = tuple[str, str]
"""(namespace or "", name)."""


def key_of(obj: Obj) -> Key:
    meta = obj["metadata"]
    return (meta.get("namespace") or "", meta["name"])


class Follower:
    """All objects of `rt`, by (namespace, name); `generation` counts changes."""

    def __init__(self, objects: Objects, rt: ResourceType) -> None:
        self.objects = objects
        self.rt = rt
        self.items: dict[Key, Obj] = {}
        self.generation = 0
        self.listeners: list[Callable[[], None]] = []

    async def sync(self) -> int:
        """Load every object; returns the revision of the snapshot."""
        page = await self.objects.list(self.rt, None)
        self.items = {key_of(o): o for o in page.items}
        self._changed()
        return page.revision

    async def run(self) -> None:
        """Follow changes for ever (re-syncing after any store trouble)."""
        revision = await self.sync()
        while True:
            try:
                watch = self.objects.watch(self.rt, None, revision + 1)
                try:
                    async for event in watch:
                        obj = decode(event.kv.value, event.kv.mod_revision)
                        if event.type is EventType.DELETE:
                            self.items.pop(key_of(obj), None)
                        else:
                            self.items[key_of(obj)] = obj
                        revision = event.kv.mod_revision
                        self._changed()
                finally:
                    watch.close()
            except (StoreError, errors.APIError) as exc:
                log.warning("following %s: %s; re-syncing", self.rt.plural, exc)
                await asyncio.sleep(0.5)
                revision = await self.sync()

    def _changed(self) -> None:
        self.generation += 1
        for listener in self.listeners:
            listener()
