"""Kubernetes RBAC semantics over plain Role/ClusterRole/binding objects.

Pure functions and one evaluator class; the API server feeds it the current
objects (it keeps them in memory, followed from the store). Semantics as in
kube: a request is allowed if any rule of any role bound to the user (by
name, group or service account) matches it; RoleBindings grant only within
their namespace; there are no deny rules.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from hypernetes.auth.principal import Attributes, User

Obj = dict[str, Any]
Rule = dict[str, Any]


def _has(values: Iterable[str], wanted: str) -> bool:
    return any(v == "*" or v == wanted for v in values)


def _resource_matches(resources: Iterable[str], attrs: Attributes) -> bool:
    combined = f"{attrs.resource}/{attrs.subresource}" if attrs.subresource else attrs.resource
    for r in resources:
        if r in ("*", combined):
            return True
        if attrs.subresource and r == f"*/{attrs.subresource}":
            return True
    return False


def _path_matches(urls: Iterable[str], path: str) -> bool:
    for url in urls:
        if url == "*" or url == path:
            return True
        if url.endswith("*") and path.startswith(url[:-1]):
            return True
    return False


def rule_allows(rule: Rule, attrs: Attributes) -> bool:
    """Whether one PolicyRule covers the request."""
    if not _has(rule.get("verbs") or [], attrs.verb):
        return False
    if not attrs.is_resource_request:
        return _path_matches(rule.get("nonResourceURLs") or [], attrs.path)
    if not _has(rule.get("apiGroups") or [], attrs.group):
        return False
    if not _resource_matches(rule.get("resources") or [], attrs):
        return False
    names = rule.get("resourceNames") or []
    return not names or attrs.name in names


def subject_matches(subject: Obj, user: User, namespace: str) -> bool:
    kind, name = subject.get("kind"), subject.get("name")
    if kind == "User":
        return name == user.name
    if kind == "Group":
        return name in user.groups
    if kind == "ServiceAccount":
        ns = subject.get("namespace") or namespace
        return user.name == f"system:serviceaccount:{ns}:{name}"
    return False


class RBAC:
    """Evaluates requests against the roles and bindings given by the accessors."""

    def __init__(
        self,
        roles: Callable[[], dict[tuple[str, str], Obj]],
        cluster_roles: Callable[[], dict[tuple[str, str], Obj]],
        role_bindings: Callable[[], dict[tuple[str, str], Obj]],
        cluster_role_bindings: Callable[[], dict[tuple[str, str], Obj]],
    ) -> None:
        self._roles = roles
        self._cluster_roles = cluster_roles
        self._role_bindings = role_bindings
        self._cluster_role_bindings = cluster_role_bindings

    def role_rules(self, ref: Obj, namespace: str) -> list[Rule]:
        """The rules of the role a roleRef names (none if it does not exist)."""
        if ref.get("kind") == "ClusterRole":
            role = self._cluster_roles().get(("", ref.get("name", "")))
        else:
            role = self._roles().get((namespace, ref.get("name", "")))
        return list((role or {}).get("rules") or [])

    def rules_for(self, user: User, namespace: str) -> Iterator[Rule]:
        """Every rule granted to `user` that applies in `namespace` ("" = cluster scope)."""
        for binding in self._cluster_role_bindings().values():
            if any(subject_matches(s, user, "") for s in binding.get("subjects") or []):
                yield from self.role_rules(binding.get("roleRef") or {}, "")
        if not namespace:
            return
        for (ns, _), binding in self._role_bindings().items():
            if ns != namespace:
                continue
            if any(subject_matches(s, user, ns) for s in binding.get("subjects") or []):
                yield from self.role_rules(binding.get("roleRef") or {}, ns)

    def allowed(self, user: User, attrs: Attributes) -> bool:
        return any(rule_allows(r, attrs) for r in self.rules_for(user, attrs.namespace))


def covers(granted: list[Rule], requested: Rule) -> bool:
    """Whether `granted` rules allow everything `requested` allows (escalation check).

    Expands the requested rule into its atomic (group, resource, name, verb)
    or (url, verb) requests; wildcards in the request must be matched by
    wildcards in a grant.
    """
    verbs = requested.get("verbs") or []
    if requested.get("nonResourceURLs"):
        return all(
            any(rule_allows(g, Attributes(verb=v, path=u)) for g in granted)
            for u in requested["nonResourceURLs"]
            for v in verbs
        )
    names = requested.get("resourceNames") or [""]
    for group in requested.get("apiGroups") or []:
        for resource in requested.get("resources") or []:
            res, _, sub = resource.partition("/")
            for verb in verbs:
                for name in names:
                    attrs = Attributes(
                        verb=verb,
                        group=group,
                        resource=res,
                        subresource=sub,
                        name=name,
                        namespace="x",
                    )
                    if not any(_grant_covers(g, attrs) for g in granted):
                        return False
    return True


def _grant_covers(grant: Rule, attrs: Attributes) -> bool:
    """Like rule_allows, but a grant limited by resourceNames never covers "any name"."""
    if attrs.name == "" and grant.get("resourceNames"):
        return False
    return rule_allows(grant, attrs)
