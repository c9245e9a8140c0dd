"""Authorization at the API server: RBAC over followed roles, plus the review APIs.

`RBACAuthorizer` keeps the four RBAC kinds in memory (followers) and answers
`allowed(user, attributes)`; members of `system:masters` are always allowed.
The bootstrap policy (the default cluster roles and bindings kube ships) is
created on first start. The access-review kinds of authorization.k8s.io/v1
(what `kubectl auth can-i` posts) are served from here.
"""

from __future__ import annotations

import contextlib
from typing import Any

from hypernetes.api import errors
from hypernetes.api.auth import Authorizer
from hypernetes.api.follower import Follower
from hypernetes.api.objects import Objects
from hypernetes.auth.aggregation import aggregate
from hypernetes.auth.decisioncache import DecisionCache
from hypernetes.auth.principal import Attributes, User
from hypernetes.auth.rbac import RBAC, Rule, covers
from hypernetes.resources.registry import Registry

Obj = dict[str, Any]
RBAC_GROUP = "rbac.authorization.k8s.io"

_READ = ["get", "list", "watch"]
_WRITE = ["create", "delete", "deletecollection", "patch", "update"]
_WORKLOADS = [
    "pods",
    "pods/log",
    "pods/exec",
    "pods/attach",
    "pods/status",
    "services",
    "endpoints",
    "configmaps",
    "secrets",
    "serviceaccounts",
    "persistentvolumeclaims",
    "events",
]
_APPS = [
    "deployments",
    "deployments/scale",
    "deployments/status",
    "replicasets",
    "replicasets/scale",
    "replicasets/status",
]

BOOTSTRAP_CLUSTER_ROLES: dict[str, list[Rule]] = {
    "cluster-admin": [
        {"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]},
        {"nonResourceURLs": ["*"], "verbs": ["*"]},
    ],
    # The user-facing roles aggregate, as in kube (see BOOTSTRAP_AGGREGATION): view's
    # rules flow into edit, edit's into admin; anyone may add to them with a label.
    "admin": [],
    "edit": [],
    "view": [],
    "system:aggregate-to-admin": [
        {"apiGroups": [RBAC_GROUP], "resources": ["roles", "rolebindings"],
         "verbs": _READ + _WRITE},
        {"apiGroups": ["authorization.k8s.io"], "resources": ["localsubjectaccessreviews"],
         "verbs": ["create"]},
    ],
    "system:aggregate-to-edit": [
        {"apiGroups": [""], "resources": _WORKLOADS, "verbs": _READ + _WRITE},
        {"apiGroups": ["apps"], "resources": _APPS, "verbs": _READ + _WRITE},
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": _READ + _WRITE},
    ],
    "system:aggregate-to-view": [
        {"apiGroups": [""], "resources": [r for r in _WORKLOADS if r not in (
            "secrets", "pods/exec", "pods/attach")], "verbs": _READ},
        {"apiGroups": ["apps"], "resources": _APPS, "verbs": _READ},
        {"apiGroups": [""], "resources": ["resourcequotas", "limitranges"], "verbs": _READ},
    ],
    "system:discovery": [
        {"nonResourceURLs": ["/api", "/api/*", "/apis", "/apis/*", "/healthz", "/livez",
                             "/readyz", "/openapi", "/openapi/*", "/version", "/version/"],
         "verbs": ["get"]},
    ],
    "system:basic-user": [
        {"apiGroups": ["authorization.k8s.io"],
         "resources": ["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
         "verbs": ["create"]},
        {"apiGroups": ["authentication.k8s.io"], "resources": ["selfsubjectreviews"],
         "verbs": ["create"]},
    ],
}  # fmt: skip

_TO = "rbac.authorization.k8s.io/aggregate-to-"
BOOTSTRAP_AGGREGATION: dict[str, str] = {
    "admin": _TO + "admin",
    "edit": _TO + "edit",
    "view": _TO + "view",
}
"""Aggregated bootstrap roles: name -> the label (value "true") selecting their parts."""
BOOTSTRAP_ROLE_LABELS: dict[str, tuple[str, ...]] = {
    "edit": (_TO + "admin",),
    "view": (_TO + "edit",),
    "system:aggregate-to-admin": (_TO + "admin",),
    "system:aggregate-to-edit": (_TO + "edit",),
    "system:aggregate-to-view": (_TO + "view",),
}
"""Aggregation labels of bootstrap roles (each set to "true")."""

BOOTSTRAP_BINDINGS = {
    "cluster-admin": ("cluster-admin", "system:masters"),
    "system:discovery": ("system:discovery", "system:authenticated"),
    "system:basic-user": ("system:basic-user", "system:authenticated"),
}


class RBACAuthorizer:
    """The server's authorizer: the platform admin, then RBAC."""

    def __init__(self, objects: Objects, registry: Registry) -> None:
        def follower(plural: str) -> Follower:
            rt = registry.get(RBAC_GROUP, "v1", plural)
            assert rt is not None
            return Follower(objects, rt)

        self.objects = objects
        self.registry = registry
        self.followers = [
            follower(p) for p in ("roles", "clusterroles", "rolebindings", "clusterrolebindings")
        ]
        roles, cluster_roles, role_bindings, cluster_bindings = self.followers
        self.rbac = RBAC(
            lambda: roles.items,
            lambda: cluster_roles.items,
            lambda: role_bindings.items,
            lambda: cluster_bindings.items,
        )
        # Verdicts memoized until a role or binding changes (exact; see decisioncache).
        self.decisions = DecisionCache(self.followers, self.rbac.allowed)

    async def bootstrap(self) -> None:
        """Create the default cluster roles and bindings that do not exist yet."""
        for cluster_role in bootstrap_cluster_roles():
            await self._ensure("clusterroles", cluster_role)
        for name, (role, group) in BOOTSTRAP_BINDINGS.items():
            await self._ensure(
                "clusterrolebindings",
                {
                    "apiVersion": f"{RBAC_GROUP}/v1",
                    "kind": "ClusterRoleBinding",
                    "metadata": {"name": name, "labels": _bootstrap_labels()},
                    "roleRef": {"apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": role},
                    "subjects": [{"apiGroup": RBAC_GROUP, "kind": "Group", "name": group}],
                },
            )
        for f in self.followers:
            await f.sync()

    async def _ensure(self, plural: str, obj: Obj) -> None:
        rt = self.registry.get(RBAC_GROUP, "v1", plural)
        assert rt is not None
        if await self.objects.find(rt, None, obj["metadata"]["name"]) is None:
            with contextlib.suppress(errors.APIError):
                await self.objects.create(rt, obj)

    async def __call__(self, user: User, attrs: Attributes) -> bool:
        return user.is_admin or self.decisions.allowed(user, attrs)

    def rules_for(self, user: User, namespace: str) -> list[Rule]:
        if user.is_admin:
            return list(BOOTSTRAP_CLUSTER_ROLES["cluster-admin"])
        return list(self.rbac.rules_for(user, namespace))


def _bootstrap_labels() -> dict[str, str]:
    return {"kubernetes.io/bootstrapping": "rbac-defaults"}


def bootstrap_cluster_roles() -> list[Obj]:
    """The default ClusterRoles, the aggregated ones with their rules already filled in
    (the aggregation controller keeps them so as labelled roles come and go)."""
    roles: dict[str, Obj] = {}
    for name, rules in BOOTSTRAP_CLUSTER_ROLES.items():
        labels = _bootstrap_labels() | {k: "true" for k in BOOTSTRAP_ROLE_LABELS.get(name, ())}
        meta = {"name": name, "labels": labels}
        role: Obj = {"apiVersion": f"{RBAC_GROUP}/v1", "kind": "ClusterRole", "metadata": meta,
                     "rules": list(rules)}  # fmt: skip
        if name in BOOTSTRAP_AGGREGATION:
            selector = {"matchLabels": {BOOTSTRAP_AGGREGATION[name]: "true"}}
            role["aggregationRule"] = {"clusterRoleSelectors": [selector]}
        roles[name] = role
    for name in ("view", "edit", "admin"):  # each aggregates the one before
        roles[name]["rules"] = aggregate(roles[name], roles.values())
    return list(roles.values())


def escalation_check(authorizer: RBACAuthorizer) -> Any:
    """Admission: no one grants, through a role or a binding, more than they hold.

    As kube: creating or updating a Role/ClusterRole needs every permission
    in it (or the `escalate` verb on it); a binding needs the permissions of
    the role it refers to (or the `bind` verb on that role).
    """

    async def admit(user: User, target: Any, obj: Obj, old: Obj | None) -> None:
        rt = target.rt
        if rt.group != RBAC_GROUP or user.is_admin:
            return
        namespace = target.namespace or ""
        if rt.kind in ("Role", "ClusterRole"):
            special = Attributes(
                verb="escalate",
                group=RBAC_GROUP,
                resource=rt.plural,
                namespace=namespace,
                name=obj["metadata"].get("name", ""),
            )
            rules = obj.get("rules") or []
        else:
            ref = obj.get("roleRef") or {}
            plural = "clusterroles" if ref.get("kind") == "ClusterRole" else "roles"
            special = Attributes(
                verb="bind",
                group=RBAC_GROUP,
                resource=plural,
                namespace=namespace,
                name=ref.get("name", ""),
            )
            rules = authorizer.rbac.role_rules(ref, namespace)
        if await authorizer(user, special):
            return
        held = authorizer.rules_for(user, namespace)
        missing = [r for r in rules if not covers(held, r)]
        if missing:
            raise errors.forbidden(
                f'{rt.plural} "{obj["metadata"].get("name", "")}" is forbidden: user '
                f'"{user.name}" is attempting to grant RBAC permissions not currently held: '
                f"{missing}"
            )

    return admit


class Reviews:
    """Computes the access-review kinds of authorization.k8s.io/v1."""

    def __init__(self, authorizer: RBACAuthorizer, decide: Authorizer | None = None) -> None:
        self.authorizer = authorizer
        self.decide: Authorizer = decide or authorizer
        """What answers access reviews: the server's whole authorizer chain (RBAC plus
        the layers wrapped around it), so `can-i` agrees with what requests get."""

    async def review(self, kind: str, caller: User, namespace: str | None, body: Obj) -> Obj:
        spec = body.get("spec") or {}
        if kind == "SelfSubjectRulesReview":
            ns = spec.get("namespace") or ""
            rules = self.authorizer.rules_for(caller, ns)
            body["status"] = _rules_status(rules)
            return body
        if kind == "SelfSubjectAccessReview":
            subject = caller
        else:
            if not spec.get("user") and not spec.get("groups"):
                raise errors.bad_request("spec.user or spec.groups must be set")
            subject = User(
                spec.get("user") or "", tuple(spec.get("groups") or ()), spec.get("uid") or ""
            )
        attrs = _attributes(spec, namespace)
        try:
            allowed = await self.decide(subject, attrs)
        except errors.APIError as exc:  # a layer that refuses outright, with its reason
            body["status"] = {"allowed": False, "denied": True, "reason": exc.message}
            return body
        body["status"] = {"allowed": allowed}
        if not allowed:
            body["status"]["reason"] = "no RBAC policy matched"
        return body


def _attributes(spec: Obj, namespace: str | None) -> Attributes:
    ra = spec.get("resourceAttributes")
    nra = spec.get("nonResourceAttributes")
    if ra:
        return Attributes(
            verb=ra.get("verb", ""),
            group=ra.get("group", ""),
            resource=ra.get("resource", ""),
            subresource=ra.get("subresource", ""),
            namespace=namespace or ra.get("namespace", ""),
            name=ra.get("name", ""),
        )
    if nra:
        return Attributes(verb=nra.get("verb", ""), path=nra.get("path", ""))
    raise errors.bad_request(
        "exactly one of nonResourceAttributes or resourceAttributes must be specified"
    )


def _rules_status(rules: list[Rule]) -> Obj:
    resource = [
        {k: r[k] for k in ("verbs", "apiGroups", "resources", "resourceNames") if r.get(k)}
        for r in rules
        if not r.get("nonResourceURLs")
    ]
    non_resource = [
        {"verbs": r["verbs"], "nonResourceURLs": r["nonResourceURLs"]}
        for r in rules
        if r.get("nonResourceURLs")
    ]
    return {"resourceRules": resource, "nonResourceRules": non_resource, "incomplete": False}
