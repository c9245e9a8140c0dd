"""ClusterRole aggregation: keeps the rules of aggregated ClusterRoles filled in.

A ClusterRole with `aggregationRule.clusterRoleSelectors` gets, as its rules,
the rules of every other ClusterRole whose labels match a selector (see
`hypernetes.auth.aggregation.aggregate`). Any ClusterRole change may change
any aggregated role, so every change puts every aggregated role on the queue;
a reconcile writes only when the rules differ. Chains (view into edit into
admin) settle as each update is seen in turn.
"""

from __future__ import annotations

import logging
from collections.abc import Hashable

from hypernetes.auth.aggregation import aggregate, selectors
from hypernetes.client import CLUSTERROLES, Client, Conflict, Informer, NotFound, Obj
from hypernetes.controllers.runtime import Controller

log = logging.getLogger(__name__)


class AggregationController(Controller):
    """Fills in the rules of aggregated ClusterRoles."""

    name = "clusterrole-aggregation"

    def __init__(self, client: Client) -> None:
        super().__init__(client)
        self._roles: Informer | None = None

    async def setup(self) -> None:
        self._roles = Informer(self.client, CLUSTERROLES, resync_period=300.0)
        self._roles.add_handlers(
            on_add=self._changed,
            on_update=lambda _old, new: self._changed(new),
            on_delete=self._changed,
        )
        self.watch(self._roles)

    def _changed(self, _role: Obj) -> None:
        assert self._roles is not None
        for role in self._roles.items():
            if selectors(role) is not None:
                self.queue.add(role["metadata"]["name"])

    async def reconcile(self, key: Hashable) -> float | None:
        assert self._roles is not None
        role = self._roles.get(str(key))
        if role is None or selectors(role) is None:
            return None
        rules = aggregate(role, self._roles.items())
        if rules == (role.get("rules") or []):
            return None
        # Pinned to the version we computed from: a concurrent change makes it a 409,
        # and the informer's next event brings the role back here.
        patch = {"metadata": {"resourceVersion": role["metadata"].get("resourceVersion")},
                 "rules": rules}  # fmt: skip
        try:
            await self.client.patch(CLUSTERROLES, str(key), patch)
            log.info("aggregated %d rules into clusterrole %s", len(rules), key)
        except (Conflict, NotFound):
            pass
        return None
