"""From an identity `Principal` to the Kubernetes user the API server authorizes.

A suggested mapping for the API server's bearer-token authenticators:

- name: the identity user name; uid: the user id.
- groups: `system:authenticated`; the platform admin also gets
  `system:masters`; a project-scoped token gets `hypernetes:tenant:<project>`
  and `hypernetes:tenant:<project>:<role>` for each role held.
- extra: `hypernetes.io/tenant`, `hypernetes.io/tenant-id`, `hypernetes.io/roles`.

Names starting with `system:` are Kubernetes' own; the identity service
refuses to create such users, and a principal with one (say, from an external
Keystone) is not mapped at all.
"""

from __future__ import annotations

from hypernetes.auth.identity.model import Principal
from hypernetes.auth.identity.protocol import Identity
from hypernetes.auth.principal import MASTERS, User

AUTHENTICATED = "system:authenticated"
TENANT_GROUP_PREFIX = "hypernetes:tenant:"
TENANT_EXTRA = "hypernetes.io/tenant"
TENANT_ID_EXTRA = "hypernetes.io/tenant-id"
ROLES_EXTRA = "hypernetes.io/roles"


def to_user(principal: Principal) -> User | None:
    if principal.user_name.startswith("system:"):
        return None
    groups = [AUTHENTICATED]
    extra: dict[str, tuple[str, ...]] = {}
    if principal.platform_admin:
        groups.append(MASTERS)
    if principal.project_name is not None and principal.project_id is not None:
        tenant = TENANT_GROUP_PREFIX + principal.project_name
        groups.append(tenant)
        groups += [f"{tenant}:{role}" for role in principal.roles]
        extra = {
            TENANT_EXTRA: (principal.project_name,),
            TENANT_ID_EXTRA: (principal.project_id,),
            ROLES_EXTRA: principal.roles,
        }
    return User(principal.user_name, tuple(groups), principal.user_id, extra)


class TokenAuthenticator:
    """A bearer-token authenticator (`token -> User | None`) over any `Identity`."""

    def __init__(self, identity: Identity) -> None:
        self.identity = identity

    async def __call__(self, token: str) -> User | None:
        principal = await self.identity.validate_token(token)
        return to_user(principal) if principal is not None else None
