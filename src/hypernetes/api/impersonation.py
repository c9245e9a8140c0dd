"""Impersonation: `kubectl --as=U --as-group=G` (Impersonate-User/-Group/-Uid/-Extra-*).

The request's real user must be allowed the `impersonate` verb on each thing
asked for, as kube checks it: `users` (or `serviceaccounts` in their
namespace, for `system:serviceaccount:<ns>:<name>`), `groups`,
`authentication.k8s.io` `uids` and `userextras/<key>`. The platform admin
(`system:masters`) holds every verb. Tenant principals never impersonate, even
under an over-broad binding: that would be a way out of their tenant.

The request then runs as the impersonated user, through the tenant boundary
and RBAC like any request of theirs. Who impersonates is kept on the request
(`IMPERSONATOR`) for the audit log. An impersonated user acts for a tenant when
asked for with the group `hypernetes:tenant:<t>` (or the extra
`hypernetes.io/tenant`); an impersonated service account in a tenant's
namespace acts for that tenant.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from aiohttp import web

from hypernetes.api import errors
from hypernetes.auth.principal import Attributes, User
from hypernetes.auth.serviceaccounts import AUTHENTICATED, groups_of, split_username
from hypernetes.auth.tenancy.policy import TENANT_EXTRA, TENANT_GROUP_PREFIX
from hypernetes.resources.platform import TENANT_LABEL

if TYPE_CHECKING:
    from hypernetes.api.server import Server

IMPERSONATOR = web.RequestKey("impersonator", User)
"""The real user of a request made under impersonation."""

_USER = "Impersonate-User"
_GROUP = "Impersonate-Group"
_UID = "Impersonate-Uid"
_EXTRA = "impersonate-extra-"
AUTH_GROUP = "authentication.k8s.io"

Authorize = Callable[[User, Attributes], Awaitable[bool]]
NamespaceTenant = Callable[[str], Awaitable["str | None"]]


def requested(request: web.Request) -> bool:
    """Whether the request asks for impersonation at all (a cheap test for every request)."""
    return any(h.lower().startswith("impersonate-") for h in request.headers)


async def impersonate(
    request: web.Request, user: User, authorize: Authorize, namespace_tenant: NamespaceTenant
) -> User:
    """The user a request acts as: `user` itself, or whom it impersonates (403 if not allowed)."""
    name = request.headers.get(_USER, "")
    groups = tuple(request.headers.getall(_GROUP, ()))
    uid = request.headers.get(_UID, "")
    extra = _extras(request)
    if not name:
        raise errors.bad_request("impersonation requires Impersonate-User (only groups, uid or "
                                 "extras were given)")  # fmt: skip
    if user.extra.get(TENANT_EXTRA):  # people and service accounts of a tenant alike
        raise errors.forbidden(
            f'users "{name}" is forbidden: User "{user.name}" cannot impersonate: tenant '
            "principals may not impersonate"
        )
    account = split_username(name)
    checks = [
        Attributes(verb="impersonate", resource="serviceaccounts", namespace=account[0],
                   name=account[1]) if account else
        Attributes(verb="impersonate", resource="users", name=name),
        *(Attributes(verb="impersonate", resource="groups", name=g) for g in groups),
        *(Attributes(verb="impersonate", group=AUTH_GROUP, resource="uids", name=uid)
          for _ in [uid] if uid),
        *(Attributes(verb="impersonate", group=AUTH_GROUP, resource="userextras",
                     subresource=key, name=v) for key, values in extra.items() for v in values),
    ]  # fmt: skip
    for attrs in checks:
        if not await authorize(user, attrs):
            raise errors.forbidden(_denied(user, attrs))
    request[IMPERSONATOR] = user
    return await _as_user(name, groups, uid, extra, account, namespace_tenant)


async def _as_user(
    name: str,
    groups: tuple[str, ...],
    uid: str,
    extra: dict[str, tuple[str, ...]],
    account: tuple[str, str] | None,
    namespace_tenant: NamespaceTenant,
) -> User:
    if account is not None and not groups:
        groups = groups_of(account[0])
    elif AUTHENTICATED not in groups and name != "system:anonymous":
        groups = (*groups, AUTHENTICATED)
    if TENANT_EXTRA not in extra:
        tenants = {g[len(TENANT_GROUP_PREFIX) :].split(":")[0] for g in groups
                   if g.startswith(TENANT_GROUP_PREFIX)}  # fmt: skip
        if account is not None:
            tenant = await namespace_tenant(account[0])
            tenants |= {tenant} if tenant else set()
        if len(tenants) > 1:
            raise errors.bad_request("an impersonated user can act for one tenant only")
        if tenants:
            extra = {**extra, TENANT_EXTRA: (tenants.pop(),)}
    return User(name, groups, uid, extra)


def _extras(request: web.Request) -> dict[str, tuple[str, ...]]:
    out: dict[str, list[str]] = {}
    for header, value in request.headers.items():
        if header.lower().startswith(_EXTRA):
            key = urllib.parse.unquote(header[len(_EXTRA) :]).lower()
            out.setdefault(key, []).append(value)
    return {k: tuple(v) for k, v in out.items()}


def _denied(user: User, attrs: Attributes) -> str:
    what = attrs.resource + (f"/{attrs.subresource}" if attrs.subresource else "")
    where = f'in the namespace "{attrs.namespace}"' if attrs.namespace else "at the cluster scope"
    return (
        f'{attrs.resource} "{attrs.name}" is forbidden: User "{user.name}" cannot impersonate '
        f'resource "{what}" in API group "{attrs.group}" {where}'
    )


class Impersonator:
    """The server's impersonation step: `await impersonator(request, user) -> User`."""

    def __init__(self, server: Server) -> None:
        self.server = server

    async def __call__(self, request: web.Request, user: User) -> User:
        if not requested(request):
            return user
        return await impersonate(request, user, self._authorize, self._namespace_tenant)

    async def _authorize(self, user: User, attrs: Attributes) -> bool:
        assert self.server.authorizer is not None
        return await self.server.authorizer(user, attrs)

    async def _namespace_tenant(self, namespace: str) -> str | None:
        objects, rt = self.server.objects, self.server.registry.get("", "v1", "namespaces")
        assert objects is not None and rt is not None
        ns = await objects.find(rt, None, namespace)
        tenant = (((ns or {}).get("metadata") or {}).get("labels") or {}).get(TENANT_LABEL)
        return tenant if isinstance(tenant, str) and tenant else None
