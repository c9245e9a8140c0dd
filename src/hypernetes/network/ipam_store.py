"""Server-mode IPAM backend: pool documents kept in the control-plane store, through the API.

Each pool is one ConfigMap ``kube-system/ipam-<pool id>`` (label
``hypernetes.io/ipam-pool``) whose ``data.pool`` holds the JSON document
`ipam.IPAM` reads and writes. Updates are compare-and-swap on the object's
resourceVersion: read, mutate a private copy, write back with the
resourceVersion read (PUT), create with POST, delete with a resourceVersion
precondition; a 409 means another writer won, and the update starts over
with a fresh read. The store's revision check is atomic, so two nodes (or
two CNI processes) can never both commit an allocation from the same
document — which is what keeps an address from being handed out twice.

ConfigMaps in ``kube-system`` rather than a kind of their own: tenants never
see that namespace (the tenant boundary), every client library can read
them, and a pool's size stays far below the object size limit for realistic
networks (a lease row is ~150 bytes: ~6000 pods per Network per MiB).

`IPAM` is blocking, the client is asyncio: `StoreBackend` runs the client's
coroutines on an event loop in another thread — a `LoopThread` of its own for
blocking programs (the CNI plugin), or the caller's loop when IPAM calls are
made from worker threads of an asyncio program (``asyncio.to_thread``).

`PodLiveness` adds the server-mode crash rule: a lease whose pod (by uid) no
longer exists is stale, whichever node holds it.
"""

from __future__ import annotations

import asyncio
import copy
import json
import threading
from collections.abc import Callable, Coroutine, Iterable
from typing import Any, TypeVar

from hypernetes.client import CONFIGMAPS, PODS, Client, Conflict, NotFound

from .ipam import Document, Lease, LocalLiveness
from .resource import TENANT_LABEL, ref_uid

T = TypeVar("T")
NAMESPACE = "kube-system"
POOL_LABEL = "hypernetes.io/ipam-pool"
KEY = "pool"
PREFIX = "ipam-"
CAS_RETRIES = 200  # every retry follows a write that succeeded: progress is guaranteed
CALL_TIMEOUT = 120.0


class LoopThread:
    """An asyncio event loop running in a daemon thread, for blocking callers."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = CALL_TIMEOUT) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


def configmap_name(pool_id: str) -> str:
    return PREFIX + pool_id


async def update_document(
    client: Client,
    name: str,
    mutate: Callable[[Document | None], tuple[Document | None, T]],
    *,
    labels: dict[str, str] | None = None,
    namespace: str = NAMESPACE,
    key: str = KEY,
) -> T:
    """Compare-and-swap a JSON document kept in ConfigMap `namespace/name` under `key`.

    `mutate` gets a private copy of the current document (None if there is
    none) and returns (new document or None to delete it, result); it is
    called again on a fresh read whenever another writer got in first.
    """
    for _ in range(CAS_RETRIES):
        try:
            current = await client.get(CONFIGMAPS, name, namespace)
        except NotFound:
            current = None
        doc = _decode(current, key)
        new, result = mutate(copy.deepcopy(doc))
        if new is None and doc is None:
            return result  # nothing to delete (and never an unreadable object)
        try:
            await _write(client, namespace, name, key, current, new, labels)
        except (Conflict, NotFound):
            continue  # lost a race (or the object went away meanwhile): read again
        return result
    raise RuntimeError(f"ConfigMap {namespace}/{name}: too many concurrent updates")


def _decode(obj: dict[str, Any] | None, key: str) -> Document | None:
    if obj is None:
        return None
    text = (obj.get("data") or {}).get(key)
    if not text:
        return None
    doc = json.loads(text)
    return doc if isinstance(doc, dict) else None


async def _write(
    client: Client,
    namespace: str,
    name: str,
    key: str,
    current: dict[str, Any] | None,
    new: Document | None,
    labels: dict[str, str] | None,
) -> None:
    if new is None:
        if current is not None:
            rv = current["metadata"]["resourceVersion"]
            await client.delete(CONFIGMAPS, name, namespace, preconditions={"resourceVersion": rv})
        return
    data = {key: json.dumps(new, separators=(",", ":"), sort_keys=True)}
    if current is None:
        body = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": namespace, "labels": labels or {}},
            "data": data,
        }
        await client.create(CONFIGMAPS, body, namespace)
        return
    body = copy.deepcopy(current)
    body["data"] = data  # metadata.resourceVersion stays: the PUT is conditional on it
    await client.replace(CONFIGMAPS, name, body, namespace)


class StoreBackend:
    """`IPAMBackend` over the API server (see the module docstring).

    `loop` is the event loop `client` belongs to; the blocking methods must be
    called from another thread than that loop's.
    """

    def __init__(
        self, client: Client, loop: asyncio.AbstractEventLoop, *, namespace: str = NAMESPACE
    ) -> None:
        self.client = client
        self.loop = loop
        self.namespace = namespace
        self.retries = 0
        """Updates that lost a compare-and-swap race and started over (contention)."""

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self.loop:
            coro.close()
            raise RuntimeError("StoreBackend called on its own event loop: use asyncio.to_thread")
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(CALL_TIMEOUT)

    def read(self, pool_id: str) -> Document | None:
        return _decode(self._call(self._get(configmap_name(pool_id))), KEY)

    def update(
        self, pool_id: str, mutate: Callable[[Document | None], tuple[Document | None, T]]
    ) -> T:
        # The same loop as update_document, but `mutate` runs here, in the caller's
        # thread: a liveness check inside it may itself call the API.
        name = configmap_name(pool_id)
        labels = {POOL_LABEL: "true", TENANT_LABEL: pool_id.partition(".")[0]}
        for _ in range(CAS_RETRIES):
            current = self._call(self._get(name))
            doc = _decode(current, KEY)
            new, result = mutate(copy.deepcopy(doc))
            if new is None and doc is None:
                return result
            try:
                self._call(_write(self.client, self.namespace, name, KEY, current, new, labels))
            except (Conflict, NotFound):
                self.retries += 1
                continue
            return result
        raise RuntimeError(f"IPAM pool {pool_id}: too many concurrent updates")

    async def _get(self, name: str) -> dict[str, Any] | None:
        try:
            return await self.client.get(CONFIGMAPS, name, self.namespace)
        except NotFound:
            return None

    def pools(self) -> list[str]:
        async def names() -> list[str]:
            listing = await self.client.list_all(
                CONFIGMAPS, self.namespace, label_selector=POOL_LABEL
            )
            return sorted(
                item["metadata"]["name"].removeprefix(PREFIX)
                for item in listing.get("items") or []
                if item["metadata"]["name"].startswith(PREFIX)
            )

        return self._call(names())


class PodLiveness:
    """Server-mode staleness: this node's local rules, plus "the lease's pod is gone".

    `pod_uids()` returns the uids of every pod that exists (called once per
    reclaim pass through `refresh`, not per lease).
    """

    def __init__(self, node: str, pod_uids: Callable[[], Iterable[str]]) -> None:
        self.local = LocalLiveness(node)
        self._pod_uids = pod_uids
        self._known: set[str] | None = None

    def refresh(self) -> None:
        self._known = set(self._pod_uids())

    def is_stale(self, lease: Lease) -> bool:
        if lease.pod:
            if self._known is None:
                self.refresh()
            assert self._known is not None
            if ref_uid(lease.pod) not in self._known:
                return True
        return self.local.is_stale(lease)


async def pod_uids(client: Client) -> set[str]:
    """Uids of every pod in the cluster (one consistent list)."""
    listing = await client.list_all(PODS)
    return {item["metadata"].get("uid", "") for item in listing.get("items") or []}
