"""Tenancy: Tenants and Users mirrored with the identity service, and the tenant boundary.

- `policy`: who is a tenant principal and what it may reach (the written policy).
- `sync`: the in-server loop keeping Tenant <-> identity project and
  User <-> identity user + role assignment in step.
- The API server applies the policy in `hypernetes.api.boundary`; admission
  (ownership labels, immutability) is `hypernetes.api.admission.tenancy`; the
  auth-controller that maintains RBAC from tenants is
  `hypernetes.controllers.tenancy`.

Names shared by those parts live here, so controllers need not import the server.
"""

CONTENT_FINALIZER = "hypernetes.io/tenant-content"
"""On Tenants: the auth-controller removes it once the tenant's namespaces, users and
networks are gone."""
IDENTITY_FINALIZER = "hypernetes.io/identity"
"""On Tenants and Users: the identity sync removes it once the project (after the content)
or the identity user is gone."""
MANAGED_LABEL = "hypernetes.io/managed-by"
MANAGER = "tenancy"
"""`hypernetes.io/managed-by=tenancy` marks RBAC objects the auth-controller owns."""
TENANT_GROUP_PREFIX = "hypernetes:tenant:"
TENANT_USER_ROLE = "hypernetes:tenant-user"
"""The ClusterRole every tenant's group is bound to (create namespaces, read tenancy kinds)."""
TENANT_ADMIN_ROLE = "hypernetes:tenant-admin"
"""The ClusterRole a tenant's admins are bound to (change and delete their namespaces)."""
ROLE_BINDINGS = {"admin": "admin", "member": "edit", "reader": "view"}
"""Tenant role -> the ClusterRole its group gets in each of the tenant's namespaces."""
RESERVED_NAMES = frozenset({"admin"})
"""Names no Tenant or User may have: the identity service's own admin project and user."""


def tenant_group(tenant: str, role: str | None = None) -> str:
    """`hypernetes:tenant:<tenant>` or, with a role, `hypernetes:tenant:<tenant>:<role>`."""
    return TENANT_GROUP_PREFIX + tenant + (f":{role}" if role else "")
