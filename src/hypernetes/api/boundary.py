"""The tenant boundary in the API server: checked on every request, before RBAC.

`Boundary` applies the policy of `hypernetes.auth.tenancy.policy` (read its
docstring for the table): `check(user, attrs)` runs in `Server._authorize`
before the authorizer, so no RoleBinding or ClusterRoleBinding, however
broad, lets a tenant principal reach another tenant's objects; `scope` is
registered in `ResourceAPI.scopes`, so lists, watches and deletecollection
of a tenant principal only ever see that tenant's objects.

Namespace ownership comes from a follower of the namespaces (their
`hypernetes.io/tenant` label), so the check costs a dict lookup; a refusal
is confirmed against the store first, so a namespace created a moment ago
is never refused because the follower has not seen it yet.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from hypernetes.api import errors, pki
from hypernetes.api.follower import Follower
from hypernetes.api.objects import Objects
from hypernetes.api.rest import Computed
from hypernetes.auth.principal import Attributes, User
from hypernetes.auth.tenancy import policy
from hypernetes.resources.platform import GROUP, TENANT_LABEL
from hypernetes.resources.registry import Registry, ResourceType

if TYPE_CHECKING:
    from hypernetes.api.server import Server

log = logging.getLogger(__name__)

Obj = dict[str, Any]


def label_tenant(obj: Obj) -> str | None:
    labels = (obj.get("metadata") or {}).get("labels") or {}
    value = labels.get(TENANT_LABEL)
    return value if isinstance(value, str) and value else None


def network_tenant(obj: Obj) -> str | None:
    spec = obj.get("spec") or {}
    value = spec.get("tenant") if isinstance(spec, dict) else None
    return value if isinstance(value, str) and value else label_tenant(obj)


def user_tenant(obj: Obj) -> str | None:
    spec = obj.get("spec") or {}
    value = spec.get("tenant") if isinstance(spec, dict) else None
    return value if isinstance(value, str) and value else None


class Boundary:
    """Decides, per request, whether a tenant principal stays within its tenant."""

    def __init__(self, objects: Objects, registry: Registry) -> None:
        def rt(group: str, plural: str) -> ResourceType:
            found = registry.get(group, "v1", plural)
            assert found is not None
            return found

        self.objects = objects
        self.registry = registry
        self.namespaces_rt = rt("", "namespaces")
        self.tenants_rt = rt(GROUP, "tenants")
        self.users_rt = rt(GROUP, "users")
        self.networks_rt = rt(GROUP, "networks")
        self.namespaces = Follower(objects, self.namespaces_rt)
        self.rbac_allows: Callable[[User, Attributes], bool] | None = None
        """RBAC's synchronous verdict, to judge cross-namespace lists per namespace."""

    # -- who -------------------------------------------------------------------

    def cached_namespace_tenant(self, namespace: str) -> str | None:
        ns = self.namespaces.items.get(("", namespace))
        return label_tenant(ns) if ns is not None else None

    def tenant_of(self, user: User) -> str | None:
        """The tenant `user` is confined to; None for principals the boundary leaves to RBAC."""
        if user.is_admin:
            return None
        tenant = policy.tenant_of_user(user)
        if tenant is not None:
            return tenant
        namespace = policy.service_account_namespace(user)
        return self.cached_namespace_tenant(namespace) if namespace else None

    # -- per request -------------------------------------------------------------

    async def check(self, user: User, attrs: Attributes, rt: ResourceType | None) -> bool:
        """Raise 403 if a tenant principal's request (to kind `rt`) leaves its tenant.

        Returns True when the request is decided here: a tenant principal's list or
        watch across all namespaces, which RBAC then judges per namespace in the
        list scope (a tenant has no cluster-wide grants to judge it by).
        """
        if rt is None or not attrs.is_resource_request:
            return False
        tenant = self.tenant_of(user)
        if tenant is None:
            return False
        namespaced = rt.namespaced
        if namespaced and not attrs.namespace and attrs.verb in ("list", "watch"):
            return self.rbac_allows is not None
        verdict = policy.decide(
            attrs.verb, attrs.group, attrs.resource, attrs.namespace, attrs.name, namespaced
        )
        if verdict.allowed and verdict.owner_check:
            if await self._owned(verdict.owner_check, attrs, tenant):
                return False
            verdict = policy.deny(f'not in tenant "{tenant}"')
        if not verdict.allowed:
            raise _forbidden(user, attrs, verdict.why)
        return False

    async def _owned(self, check: str, attrs: Attributes, tenant: str) -> bool:
        """Whether the object `attrs` names (or its namespace) belongs to `tenant`."""
        if check == "namespace":
            return await self.in_tenant(attrs.namespace or attrs.name, tenant)
        if check == "tenant":
            return attrs.name == tenant
        if check == "user":
            found = await self.objects.find(self.users_rt, None, attrs.name)
            return found is not None and user_tenant(found) == tenant
        found = await self.objects.find(self.networks_rt, None, attrs.name)
        return found is not None and network_tenant(found) == tenant

    async def in_tenant(self, namespace: str, tenant: str) -> bool:
        """Whether `tenant` owns `namespace`: the follower's yes, or else the store's answer
        (so a namespace created or given a moment ago is not refused)."""
        if self.cached_namespace_tenant(namespace) == tenant:
            return True
        ns = await self.objects.find(self.namespaces_rt, None, namespace)
        return ns is not None and label_tenant(ns) == tenant

    # -- access reviews ------------------------------------------------------------

    def review(self, kind: str, answer: Computed) -> Computed:
        """Wrap an access-review handler so it also answers for the boundary: `kubectl
        auth can-i` says no where the boundary refuses, whatever RBAC would allow."""

        async def review(caller: Any, namespace: str | None, body: Obj) -> Obj:
            spec = body.get("spec") or {}
            if kind == "SelfSubjectRulesReview":
                return await self._rules_review(caller, spec, await answer(caller, namespace, body))
            attrs_spec = spec.get("resourceAttributes")
            if isinstance(attrs_spec, dict):
                subject = caller if kind == "SelfSubjectAccessReview" else _subject(spec)
                attrs = Attributes(
                    verb=str(attrs_spec.get("verb", "")),
                    group=str(attrs_spec.get("group", "")),
                    resource=str(attrs_spec.get("resource", "")),
                    subresource=str(attrs_spec.get("subresource", "")),
                    namespace=namespace or str(attrs_spec.get("namespace", "")),
                    name=str(attrs_spec.get("name", "")),
                )
                try:
                    await self.check(subject, attrs, self._kind(attrs.group, attrs.resource))
                except errors.APIError as exc:
                    body["status"] = {"allowed": False, "denied": True, "reason": exc.message}
                    return body
            return await answer(caller, namespace, body)

        return review

    async def _rules_review(self, caller: User, spec: Obj, body: Obj) -> Obj:
        """RBAC lists rules; for a tenant principal the boundary narrows them. In another
        tenant's namespace nothing is allowed; elsewhere the list is marked incomplete
        (kube's word for "an authorizer could not enumerate its rules")."""
        tenant = self.tenant_of(caller)
        if tenant is None:
            return body
        status = body.setdefault("status", {})
        namespace = str(spec.get("namespace") or "")
        if namespace and not await self.in_tenant(namespace, tenant):
            status["resourceRules"] = []
            status["evaluationError"] = f'namespace "{namespace}" is not in tenant "{tenant}"'
        else:
            status["evaluationError"] = f'the tenant boundary of "{tenant}" narrows these rules'
        status["incomplete"] = True
        return body

    def _kind(self, group: str, plural: str) -> ResourceType | None:
        for rt in self.registry:
            if rt.group == group and rt.plural == plural:
                return rt
        return None

    # -- lists and watches --------------------------------------------------------

    def _namespaced_scope(self, user: User, tenant: str, rt: ResourceType) -> Callable[[Obj], bool]:
        """In the tenant's namespaces, those where RBAC lets the user list `rt`."""
        verdicts: dict[str, bool] = {}

        def visible(namespace: str) -> bool:
            if self.cached_namespace_tenant(namespace) != tenant:
                return False
            if self.rbac_allows is None:
                return True  # RBAC has judged the request itself
            attrs = Attributes(verb="list", group=rt.group, resource=rt.plural,
                               namespace=namespace)  # fmt: skip
            return self.rbac_allows(user, attrs)

        def keep(obj: Obj) -> bool:
            namespace = (obj.get("metadata") or {}).get("namespace") or ""
            if namespace not in verdicts:
                verdicts[namespace] = visible(namespace)
            return verdicts[namespace]

        return keep

    async def scope(self, user: Any, rt: ResourceType) -> Callable[[Obj], bool] | None:
        """A `ResourceAPI.scopes` entry: what of kind `rt` the caller may list and watch."""
        tenant = self.tenant_of(user)
        if tenant is None:
            return None
        if rt.namespaced:
            return self._namespaced_scope(user, tenant, rt)
        kind = (rt.group, rt.plural)
        if kind == policy.NAMESPACES:
            return lambda obj: label_tenant(obj) == tenant
        if kind == policy.TENANTS:
            return lambda obj: (obj.get("metadata") or {}).get("name") == tenant
        if kind == policy.USERS:
            return lambda obj: user_tenant(obj) == tenant
        if kind == policy.NETWORKS:
            return lambda obj: network_tenant(obj) == tenant
        if policy.PLATFORM_POLICY.get(kind) is policy.Access.READ:
            return None
        return lambda obj: False


def _subject(spec: Obj) -> User:
    """The user a SubjectAccessReview asks about."""
    extra = spec.get("extra") or {}
    return User(
        str(spec.get("user") or ""),
        tuple(spec.get("groups") or ()),
        str(spec.get("uid") or ""),
        {str(k): tuple(v) for k, v in extra.items() if isinstance(v, list)},
    )


def _forbidden(user: User, attrs: Attributes, why: str) -> errors.APIError:
    what = attrs.resource + (f"/{attrs.subresource}" if attrs.subresource else "")
    named = f' "{attrs.name}"' if attrs.name else ""
    where = f' in the namespace "{attrs.namespace}"' if attrs.namespace else " at the cluster scope"
    return errors.forbidden(
        f'{attrs.resource}{named} is forbidden: User "{user.name}" cannot {attrs.verb} resource '
        f'"{what}" in API group "{attrs.group}"{where}: {why}'
    )


async def install_tenancy(server: Server) -> Boundary:
    """Wire tenancy into a starting server: boundary, scopes, admission, identity sync.

    Called from `Server._install_platform` once the store, the resource API
    and the identity service exist and before the server listens.
    """
    from hypernetes.api.admission.tenancy import tenancy_admission
    from hypernetes.auth.principal import MASTERS
    from hypernetes.auth.tenancy.sync import IdentitySync

    assert server.objects is not None and server.api is not None
    boundary = Boundary(server.objects, server.registry)
    if server.authorizer is server.rbac:
        boundary.rbac_allows = server.rbac.decisions.allowed  # cached, cleared on RBAC change
    await boundary.namespaces.sync()
    server.api.scopes.append(boundary.scope)
    server.api.admission.append(tenancy_admission(boundary))
    sync = IdentitySync(server.objects, server.registry, server.identity)

    async def follow(_: Server) -> None:
        await boundary.namespaces.run()

    async def mirror(_: Server) -> None:
        await sync.run()

    server.background += [follow, mirror]
    for kind in (
        "SelfSubjectAccessReview",
        "LocalSubjectAccessReview",
        "SubjectAccessReview",
        "SelfSubjectRulesReview",
    ):
        if kind in server.api.computed:
            server.api.computed[kind] = boundary.review(kind, server.api.computed[kind])
    # The platform admin's client certificate opens the identity API too (the admin CLI
    # sets passwords with it): the same TLS listener has verified it against our CA.
    server.identity.certificate_admin = lambda der: MASTERS in pki.subject_of(der)[1]
    return boundary
