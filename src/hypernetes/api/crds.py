"""Serving CustomResourceDefinitions: the registry follows the CRDs in the store.

Every API server runs `follow_crds`: it lists the CRDs, registers the kinds
they define, then watches for changes, so several servers on one store serve
the same kinds. It also completes a CRD's life: marks new ones Established,
and on deletion removes every instance before letting the CRD go (the
`customresourcecleanup.apiextensions.k8s.io` finalizer, as kube).
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import logging
from typing import Any

from hypernetes.api import errors
from hypernetes.api.objects import Objects, decode, now_rfc3339
from hypernetes.resources import crd as crd_rules
from hypernetes.resources.registry import Registry, ResourceType
from hypernetes.store import EventType, StoreError

log = logging.getLogger(__name__)

CLEANUP_FINALIZER = "customresourcecleanup.apiextensions.k8s.io"
RETRY_SECONDS = 1.0

Obj = dict[str, Any]


def crd_type(registry: Registry) -> ResourceType:
    rt = registry.get("apiextensions.k8s.io", "v1", "customresourcedefinitions")
    assert rt is not None
    return rt


class CRDFollower:
    """Keeps a registry in step with the CRDs stored."""

    def __init__(self, objects: Objects, registry: Registry) -> None:
        self.objects = objects
        self.registry = registry
        self.served: dict[str, list[ResourceType]] = {}

    async def run(self) -> None:
        rt = crd_type(self.registry)
        while True:
            try:
                page = await self.sync()
                watch = self.objects.watch(rt, None, page.revision + 1)
                try:
                    async for event in watch:
                        obj = decode(event.kv.value, event.kv.mod_revision)
                        if event.type is EventType.DELETE:
                            self.forget(obj["metadata"]["name"])
                        else:
                            await self.observe(obj)
                finally:
                    watch.close()
            except (StoreError, errors.APIError) as exc:
                log.warning("following CRDs: %s; restarting", exc)
                await asyncio.sleep(RETRY_SECONDS)

    async def sync(self) -> Any:
        """Observe every stored CRD once; returns the list page read."""
        page = await self.objects.list(crd_type(self.registry), None)
        for crd in page.items:
            await self.observe(crd)
        return page

    def register(self, crd: Obj) -> None:
        name = crd["metadata"]["name"]
        self.forget(name)
        types = []
        for rt in crd_rules.resource_types(crd):
            version = next(v for v in crd["spec"]["versions"] if v["name"] == rt.version)
            columns = tuple(version.get("additionalPrinterColumns") or ())
            selectable = tuple(version.get("selectableFields") or ())
            types.append(
                dataclasses.replace(rt, printer_columns=columns, selectable_fields=selectable)
            )
        for rt in types:
            self.registry.add(rt)
        self.served[name] = types

    def forget(self, name: str) -> None:
        for rt in self.served.pop(name, []):
            self.registry.remove(rt.group, rt.version, rt.plural)

    async def observe(self, crd: Obj) -> None:
        if "deletionTimestamp" in crd["metadata"]:
            await self._clean_up(crd)
            return
        self.register(crd)
        if not _established(crd):
            await self._establish(crd)

    async def _establish(self, crd: Obj) -> None:
        new = copy.deepcopy(crd)
        names = crd["spec"]["names"]
        now = now_rfc3339()
        new["status"] = {
            "acceptedNames": {k: v for k, v in names.items()},
            "storedVersions": [v["name"] for v in crd["spec"]["versions"] if v.get("storage")],
            "conditions": [
                {
                    "type": "NamesAccepted",
                    "status": "True",
                    "reason": "NoConflicts",
                    "message": "no conflicts found",
                    "lastTransitionTime": now,
                },
                {
                    "type": "Established",
                    "status": "True",
                    "reason": "InitialNamesAccepted",
                    "message": "the initial names have been accepted",
                    "lastTransitionTime": now,
                },
            ],
        }
        try:
            await self.objects.update(crd_type(self.registry), crd, new)
        except errors.APIError as exc:
            if exc.code not in (404, 409):
                raise  # 404/409: another writer moved on; its event brings us back

    async def _clean_up(self, crd: Obj) -> None:
        """Delete all instances, then drop the cleanup finalizer."""
        name = crd["metadata"]["name"]
        types = self.served.get(name) or [
            dataclasses.replace(rt) for rt in crd_rules.resource_types(crd)
        ]
        if types:
            rt = types[0]
            page = await self.objects.list(rt, None)
            for obj in page.items:
                try:
                    await self.objects.delete(rt, obj)
                except errors.APIError as exc:
                    if exc.code != 404:
                        log.warning("deleting %s: %s", obj["metadata"]["name"], exc.message)
        self.forget(name)
        finalizers = [f for f in crd["metadata"].get("finalizers", []) if f != CLEANUP_FINALIZER]
        if finalizers == crd["metadata"].get("finalizers", []):
            return
        new = copy.deepcopy(crd)
        new["metadata"]["finalizers"] = finalizers
        try:
            await self.objects.update(crd_type(self.registry), crd, new)
        except errors.APIError as exc:
            if exc.code not in (404, 409):
                raise


def _established(crd: Obj) -> bool:
    conditions = (crd.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Established" and c.get("status") == "True" for c in conditions)
