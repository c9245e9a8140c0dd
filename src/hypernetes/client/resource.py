"""Resource descriptors: which collection a request is about, and its URL paths.

A `Resource` names a kind's REST collection the way discovery does (group,
version, plural, scope). Discovery fills in the kind and verbs; hand-written
descriptors for well-known kinds are at the bottom.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import quote


@dataclass(frozen=True)
class Resource:
    group: str
    """API group; "" for the core (legacy) group served under /api."""
    version: str
    plural: str
    namespaced: bool
    kind: str = field(default="", compare=False)
    verbs: frozenset[str] = field(default=frozenset(), compare=False)
    """What discovery says the collection supports; empty when not discovered."""

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def group_resource(self) -> str:
        """ "plural.group" (or just "plural" for the core group), as kube prints it."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    def path(
        self, namespace: str | None = None, name: str | None = None, subresource: str | None = None
    ) -> str:
        """The URL path of the collection (in `namespace`), of one object, or of a subresource.

        A namespaced collection without a namespace is the all-namespaces one;
        a namespace for a cluster-scoped resource is an error.
        """
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if namespace:
            if not self.namespaced:
                raise ValueError(f"{self.group_resource} is cluster-scoped: no namespace allowed")
            base += f"/namespaces/{_segment(namespace)}"
        elif name and self.namespaced:
            raise ValueError(f"{self.group_resource} is namespaced: a namespace is required")
        base += f"/{self.plural}"
        if name:
            base += f"/{_segment(name)}"
            if subresource:
                base += f"/{_segment(subresource)}"
        elif subresource:
            raise ValueError("a subresource needs an object name")
        return base

    def __str__(self) -> str:
        return f"{self.group_resource}/{self.version}"


def _segment(value: str) -> str:
    if not value or value in (".", "..") or "/" in value:
        raise ValueError(f"invalid path segment: {value!r}")
    return quote(value, safe="")


_ALL = frozenset(
    {"create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"}
)

NAMESPACES = Resource("", "v1", "namespaces", False, "Namespace", _ALL - {"deletecollection"})
CONFIGMAPS = Resource("", "v1", "configmaps", True, "ConfigMap", _ALL)
SECRETS = Resource("", "v1", "secrets", True, "Secret", _ALL)
PODS = Resource("", "v1", "pods", True, "Pod", _ALL)
SERVICES = Resource("", "v1", "services", True, "Service", _ALL)
EVENTS = Resource("", "v1", "events", True, "Event", _ALL)
NODES = Resource("", "v1", "nodes", False, "Node", _ALL)
LEASES = Resource("coordination.k8s.io", "v1", "leases", True, "Lease", _ALL)
REPLICASETS = Resource("apps", "v1", "replicasets", True, "ReplicaSet", _ALL)
DEPLOYMENTS = Resource("apps", "v1", "deployments", True, "Deployment", _ALL)
ENDPOINTS = Resource("", "v1", "endpoints", True, "Endpoints", _ALL)
SERVICEACCOUNTS = Resource("", "v1", "serviceaccounts", True, "ServiceAccount", _ALL)
RESOURCEQUOTAS = Resource("", "v1", "resourcequotas", True, "ResourceQuota", _ALL)
_RBAC = "rbac.authorization.k8s.io"
ROLEBINDINGS = Resource(_RBAC, "v1", "rolebindings", True, "RoleBinding", _ALL)
CLUSTERROLES = Resource(_RBAC, "v1", "clusterroles", False, "ClusterRole", _ALL)
CLUSTERROLEBINDINGS = Resource(
    _RBAC, "v1", "clusterrolebindings", False, "ClusterRoleBinding", _ALL
)
TENANTS = Resource("hypernetes.io", "v1", "tenants", False, "Tenant", _ALL)
USERS = Resource("hypernetes.io", "v1", "users", False, "User", _ALL)
NETWORKS = Resource("hypernetes.io", "v1", "networks", False, "Network", _ALL)
