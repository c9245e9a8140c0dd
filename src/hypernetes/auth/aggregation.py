"""ClusterRole aggregation (`aggregationRule.clusterRoleSelectors`), as pure functions.

An aggregated ClusterRole's rules are the rules of every other ClusterRole
whose labels match any of its selectors, in the order of those roles' names,
without repeating a rule. The aggregation controller writes the result; the
bootstrap policy uses the same function so that its aggregated roles start
out complete. Kubernetes' labels for the default user-facing roles:
`rbac.authorization.k8s.io/aggregate-to-{admin,edit,view}: "true"`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from hypernetes.resources import labels

Obj = dict[str, Any]
AGGREGATE_TO = "rbac.authorization.k8s.io/aggregate-to-"


def selectors(role: Obj) -> list[Obj] | None:
    """The role's cluster-role selectors; None if it is not an aggregated role."""
    rule = role.get("aggregationRule")
    if not isinstance(rule, dict):
        return None
    found = rule.get("clusterRoleSelectors")
    return [s for s in found if isinstance(s, dict)] if isinstance(found, list) else None


def _selected(role: Obj, chosen: list[Obj]) -> bool:
    role_labels = (role.get("metadata") or {}).get("labels") or {}
    for selector in chosen:
        try:
            if labels.matches(selector, role_labels):
                return True
        except labels.LabelSelectorError:
            continue  # a broken selector selects nothing
    return False


def aggregate(role: Obj, roles: Iterable[Obj]) -> list[Obj]:
    """The rules `role` aggregates from `roles` (itself excluded)."""
    chosen = selectors(role) or []
    name = (role.get("metadata") or {}).get("name")
    rules: list[Obj] = []
    members = sorted(
        (r for r in roles if (r.get("metadata") or {}).get("name") != name),
        key=lambda r: str((r.get("metadata") or {}).get("name")),
    )
    for member in members:
        if not chosen or not _selected(member, chosen):
            continue
        for rule in member.get("rules") or []:
            if rule not in rules:
                rules.append(rule)
    return rules
