"""The tenant boundary's policy: who is a tenant principal and what each may reach.

This module is pure decision logic (no I/O); `hypernetes.api.boundary` applies
it to every request before RBAC, and filters lists and watches with it.

Who is bounded
--------------
- The platform admin (group `system:masters`) is never bounded.
- A *tenant principal* is any other user with a tenant: an identity token
  scoped to a project carries it in `user.extra["hypernetes.io/tenant"]`;
  any other user in a group `hypernetes:tenant:<t>[:<role>]` is confined to
  `<t>` (to nothing if the groups name several tenants); a service account
  `system:serviceaccount:<ns>:<name>` belongs to the tenant that owns `<ns>`.
- Everyone else (node and controller certificates, unscoped identity tokens)
  is not a tenant principal: RBAC alone decides for them.

What a tenant principal with tenant T may reach (whatever RBAC says)
-------------------------------------------------------------------

| objects | read (get/list/watch) | write |
|---|---|---|
| namespaced objects in a namespace of T | yes | yes |
| namespaced objects anywhere else | no | no |
| lists/watches across all namespaces | filtered to T's namespaces | deletecollection filtered |
| namespaces | T's only (label `hypernetes.io/tenant=T`) | create (labelled T); update/delete T's |
| tenants | T only | no |
| users | those with `spec.tenant=T` | no |
| networks | T's (`spec.tenant` or the label) | create for T; update/delete T's |
| nodes, customresourcedefinitions, clusterroles | yes | no |
| selfsubjectaccessreviews, selfsubjectrulesreviews | create (about oneself) | - |
| every other cluster-scoped kind (1) | hidden | no |

(1) clusterrolebindings, persistentvolumes, subjectaccessreviews,
cluster-scoped custom resources, and any kind added later.

Denials are `403 Forbidden` (the Kubernetes convention for authorization),
and the same 403 answers whether the object of another tenant exists or not,
so the boundary is no oracle for other tenants' names.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from hypernetes.auth.principal import User
from hypernetes.resources.platform import GROUP

TENANT_EXTRA = "hypernetes.io/tenant"
TENANT_GROUP_PREFIX = "hypernetes:tenant:"
NO_TENANT = ":none"
"""The tenant of a principal claiming several: no namespace or object has it."""
SERVICE_ACCOUNT_PREFIX = "system:serviceaccount:"

READ_VERBS = frozenset({"get", "list", "watch"})
COLLECTION_VERBS = frozenset({"list", "watch", "deletecollection"})

NAMESPACES = ("", "namespaces")
TENANTS = (GROUP, "tenants")
USERS = (GROUP, "users")
NETWORKS = (GROUP, "networks")
TENANT_OWNED = frozenset({NAMESPACES, TENANTS, USERS, NETWORKS})
"""Cluster-scoped kinds whose objects belong to one tenant each."""


class Access(Enum):
    READ = "read"
    """get, list and watch."""
    SELF = "self"
    """create only: reviews about the caller."""


PLATFORM_POLICY: dict[tuple[str, str], Access] = {
    ("", "nodes"): Access.READ,
    ("apiextensions.k8s.io", "customresourcedefinitions"): Access.READ,
    ("storage.k8s.io", "storageclasses"): Access.READ,
    ("node.k8s.io", "runtimeclasses"): Access.READ,
    ("scheduling.k8s.io", "priorityclasses"): Access.READ,
    ("rbac.authorization.k8s.io", "clusterroles"): Access.READ,
    ("authorization.k8s.io", "selfsubjectaccessreviews"): Access.SELF,
    ("authorization.k8s.io", "selfsubjectrulesreviews"): Access.SELF,
    ("authentication.k8s.io", "selfsubjectreviews"): Access.SELF,
}
"""Platform-scoped kinds tenants may use; any kind not listed here is hidden."""


@dataclass(frozen=True)
class Verdict:
    """What the boundary says before any lookup: allow, deny, or check the owner."""

    allowed: bool
    owner_check: str = ""
    """"namespace": the namespace (attrs.namespace, or the name for namespaces) must be
    the tenant's; "tenant", "user", "network": the named object must be the tenant's."""
    why: str = ""


ALLOW = Verdict(True)


def deny(why: str) -> Verdict:
    return Verdict(False, why=why)


def tenant_of_user(user: User) -> str | None:
    """The tenant a principal acts for, from its extra or else its tenant groups.

    A principal in the groups of several tenants (a client certificate made
    carelessly, say) is confined to `NO_TENANT`, which owns nothing.
    """
    values = user.extra.get(TENANT_EXTRA) or ()
    if values:
        return values[0]
    tenants = {
        g[len(TENANT_GROUP_PREFIX) :].split(":", 1)[0]
        for g in user.groups
        if g.startswith(TENANT_GROUP_PREFIX)
    }
    if len(tenants) > 1:
        return NO_TENANT
    return tenants.pop() if tenants else None


def service_account_namespace(user: User) -> str | None:
    if not user.name.startswith(SERVICE_ACCOUNT_PREFIX):
        return None
    namespace, _, name = user.name[len(SERVICE_ACCOUNT_PREFIX) :].partition(":")
    return namespace if namespace and name else None


def decide(
    verb: str, group: str, resource: str, namespace: str, name: str, namespaced: bool
) -> Verdict:
    """The verdict for a tenant principal's resource request (attributes as in RBAC)."""
    kind = (group, resource)
    if namespaced:
        if namespace:
            return Verdict(True, owner_check="namespace")
        if verb in COLLECTION_VERBS:
            return ALLOW  # narrowed to the tenant's namespaces by the list scope
        return deny("only in a namespace of the tenant")
    if kind == NAMESPACES:
        if verb in COLLECTION_VERBS or verb == "create":
            return ALLOW  # lists are scoped; admission labels a new namespace
        return Verdict(True, owner_check="namespace")
    if kind in (TENANTS, USERS):
        if verb in ("list", "watch"):
            return ALLOW
        if verb == "get":
            return Verdict(True, owner_check="tenant" if kind == TENANTS else "user")
        return deny(f"{resource} are managed by the platform admin")
    if kind == NETWORKS:
        if verb in COLLECTION_VERBS or verb == "create":
            return ALLOW  # scoped; admission makes a new network the tenant's
        return Verdict(True, owner_check="network")
    access = PLATFORM_POLICY.get(kind)
    if access is Access.READ and verb in READ_VERBS:
        return ALLOW
    if access is Access.SELF and verb == "create":
        return ALLOW
    if access is None:
        return deny("this kind is not available to tenants")
    return deny("platform objects are read-only for tenants")
