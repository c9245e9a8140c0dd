"""Service accounts: every active namespace has a `default` ServiceAccount.

Watches namespaces and service accounts; for each namespace that is not being
deleted and has no `default` account (none yet, or someone deleted it), it
creates one. Pods that name no account run as `default`, so it must exist.
"""

from __future__ import annotations

import logging
from collections.abc import Hashable

from hypernetes.client import (
    NAMESPACES,
    SERVICEACCOUNTS,
    ApiError,
    Client,
    Conflict,
    Informer,
    NotFound,
    Obj,
)
from hypernetes.controllers.runtime import Controller

log = logging.getLogger(__name__)

DEFAULT = "default"


class ServiceAccountsController(Controller):
    """Creates the `default` ServiceAccount in every active namespace."""

    name = "serviceaccounts"

    def __init__(self, client: Client) -> None:
        super().__init__(client)
        self._namespaces: Informer | None = None
        self._accounts: Informer | None = None

    async def setup(self) -> None:
        self._namespaces = Informer(self.client, NAMESPACES, resync_period=300.0)
        self._namespaces.add_handlers(
            on_add=self._namespace, on_update=lambda _old, new: self._namespace(new)
        )
        self.watch(self._namespaces)
        self._accounts = Informer(
            self.client, SERVICEACCOUNTS, field_selector=f"metadata.name={DEFAULT}"
        )
        self._accounts.add_handlers(on_delete=self._account_gone)
        self.watch(self._accounts)

    def _namespace(self, ns: Obj) -> None:
        self.queue.add((ns.get("metadata") or {}).get("name", ""))

    def _account_gone(self, sa: Obj) -> None:
        self.queue.add((sa.get("metadata") or {}).get("namespace", ""))

    async def reconcile(self, key: Hashable) -> float | None:
        namespace = str(key)
        assert self._namespaces is not None and self._accounts is not None
        ns = self._namespaces.get(namespace)
        if ns is None or _inactive(ns):
            return None
        if self._accounts.get(DEFAULT, namespace) is not None:
            return None
        body = {"apiVersion": "v1", "kind": "ServiceAccount",
                "metadata": {"name": DEFAULT, "namespace": namespace}}  # fmt: skip
        try:
            await self.client.create(SERVICEACCOUNTS, body, namespace)
            log.info("created the default service account in %s", namespace)
        except (Conflict, NotFound):
            pass  # it exists already (the informer had not seen it), or the namespace is gone
        except ApiError as exc:
            if exc.code != 403:  # 403: the namespace is terminating; nothing to do
                raise
        return None


def _inactive(ns: Obj) -> bool:
    if (ns.get("metadata") or {}).get("deletionTimestamp"):
        return True
    return (ns.get("status") or {}).get("phase") == "Terminating"
