"""The registry of resource types the API server serves.

A `ResourceType` says everything the generic API machinery needs to know about
one kind: where it lives in the URL space, whether it is namespaced, its short
names and categories, which subresources it has, and where its schema comes
from (a built-in definition name, or the structural schema of a CRD).

Built-in kinds are listed here; CRD-served kinds are added and removed at run
time by the API server through `Registry.add` / `Registry.remove`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

Schema = dict[str, Any]

ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")


@dataclasses.dataclass(frozen=True)
class ResourceType:
    """One served resource of one group-version."""

    group: str
    version: str
    kind: str
    plural: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    subresources: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ALL_VERBS
    definition: str | None = None
    """Name of the built-in schema in `hypernetes.resources.schema.definitions()`."""
    crd_schema: Schema | None = dataclasses.field(default=None, compare=False)
    """For CRD-served kinds: the version's `openAPIV3Schema`."""
    crd_name: str | None = None
    """For CRD-served kinds: the name of the defining CustomResourceDefinition."""
    stored: bool = True
    """False for create-only kinds the server computes (access reviews, ...)."""
    printer_columns: tuple[dict[str, Any], ...] = dataclasses.field(default=(), compare=False)
    """For CRD-served kinds: the version's `additionalPrinterColumns`."""
    selectable_fields: tuple[dict[str, Any], ...] = dataclasses.field(default=(), compare=False)
    """For CRD-served kinds: the version's `selectableFields`."""

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def group_version(self) -> tuple[str, str]:
        return (self.group, self.version)

    @property
    def list_kind(self) -> str:
        return f"{self.kind}List"

    @property
    def group_resource(self) -> str:
        """`plural.group` as Kubernetes writes it in errors (`deployments.apps`)."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    def has_status(self) -> bool:
        return "status" in self.subresources

    def has_scale(self) -> bool:
        return "scale" in self.subresources


def _core(kind: str, plural: str, namespaced: bool = True, **kw: Any) -> ResourceType:
    return ResourceType(
        "", "v1", kind, plural, namespaced, definition=f"io.k8s.api.core.v1.{kind}", **kw
    )


_ALL = ("all",)

BUILTIN: tuple[ResourceType, ...] = (
    _core(
        "Namespace", "namespaces", False, short_names=("ns",), subresources=("status", "finalize")
    ),
    _core(
        "Pod",
        "pods",
        short_names=("po",),
        categories=_ALL,
        subresources=("status", "log", "exec", "attach", "binding", "eviction"),
    ),
    _core("Service", "services", short_names=("svc",), categories=_ALL, subresources=("status",)),
    _core("Endpoints", "endpoints", short_names=("ep",)),
    _core("ConfigMap", "configmaps", short_names=("cm",)),
    _core("Secret", "secrets"),
    _core("ServiceAccount", "serviceaccounts", short_names=("sa",), subresources=("token",)),
    _core("Event", "events", short_names=("ev",)),
    _core("Node", "nodes", False, short_names=("no",), subresources=("status",)),
    _core(
        "PersistentVolume",
        "persistentvolumes",
        False,
        short_names=("pv",),
        subresources=("status",),
    ),
    _core(
        "PersistentVolumeClaim",
        "persistentvolumeclaims",
        short_names=("pvc",),
        subresources=("status",),
    ),
    _core("ResourceQuota", "resourcequotas", short_names=("quota",), subresources=("status",)),
    _core("LimitRange", "limitranges", short_names=("limits",)),
    ResourceType(
        "apps",
        "v1",
        "Deployment",
        "deployments",
        True,
        short_names=("deploy",),
        categories=_ALL,
        subresources=("status", "scale"),
        definition="io.k8s.api.apps.v1.Deployment",
    ),
    ResourceType(
        "apps",
        "v1",
        "ReplicaSet",
        "replicasets",
        True,
        short_names=("rs",),
        categories=_ALL,
        subresources=("status", "scale"),
        definition="io.k8s.api.apps.v1.ReplicaSet",
    ),
    *(
        ResourceType(
            "rbac.authorization.k8s.io",
            "v1",
            kind,
            plural,
            namespaced,
            definition=f"io.k8s.api.rbac.v1.{kind}",
        )
        for kind, plural, namespaced in (
            ("Role", "roles", True),
            ("RoleBinding", "rolebindings", True),
            ("ClusterRole", "clusterroles", False),
            ("ClusterRoleBinding", "clusterrolebindings", False),
        )
    ),
    ResourceType(
        "coordination.k8s.io",
        "v1",
        "Lease",
        "leases",
        True,
        definition="io.k8s.api.coordination.v1.Lease",
    ),
    *(
        ResourceType(
            "authorization.k8s.io",
            "v1",
            kind,
            plural,
            kind.startswith("Local"),
            verbs=("create",),
            stored=False,
            definition=f"io.k8s.api.authorization.v1.{kind}",
        )
        for kind, plural in (
            ("SelfSubjectAccessReview", "selfsubjectaccessreviews"),
            ("SelfSubjectRulesReview", "selfsubjectrulesreviews"),
            ("SubjectAccessReview", "subjectaccessreviews"),
            ("LocalSubjectAccessReview", "localsubjectaccessreviews"),
        )
    ),
    *(
        ResourceType(
            "authentication.k8s.io",
            "v1",
            kind,
            plural,
            False,
            verbs=("create",),
            stored=False,
            definition=f"io.k8s.api.authentication.v1.{kind}",
        )
        for kind, plural in (
            ("TokenReview", "tokenreviews"),
            ("SelfSubjectReview", "selfsubjectreviews"),
        )
    ),
    ResourceType(
        "apiextensions.k8s.io",
        "v1",
        "CustomResourceDefinition",
        "customresourcedefinitions",
        False,
        short_names=("crd", "crds"),
        subresources=("status",),
        definition="io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1."
        "CustomResourceDefinition",
    ),
)


class Registry:
    """The set of served resource types, mutable for CRDs."""

    def __init__(self, types: tuple[ResourceType, ...] | None = None) -> None:
        if types is None:
            from hypernetes.resources.platform import PLATFORM_KINDS

            types = (*BUILTIN, *PLATFORM_KINDS)
        self._by_path: dict[tuple[str, str, str], ResourceType] = {}
        for rt in types:
            self.add(rt)

    def add(self, rt: ResourceType) -> None:
        self._by_path[(rt.group, rt.version, rt.plural)] = rt

    def remove(self, group: str, version: str, plural: str) -> None:
        self._by_path.pop((group, version, plural), None)

    def get(self, group: str, version: str, plural: str) -> ResourceType | None:
        return self._by_path.get((group, version, plural))

    def by_kind(self, group: str, version: str, kind: str) -> ResourceType | None:
        for rt in self._by_path.values():
            if (rt.group, rt.version, rt.kind) == (group, version, kind):
                return rt
        return None

    def group_versions(self) -> dict[str, list[str]]:
        """Served versions per group, in a stable order (the core group is "")."""
        out: dict[str, list[str]] = {}
        for rt in self._by_path.values():
            versions = out.setdefault(rt.group, [])
            if rt.version not in versions:
                versions.append(rt.version)
        return out

    def in_group_version(self, group: str, version: str) -> list[ResourceType]:
        return [rt for rt in self._by_path.values() if rt.group_version == (group, version)]

    def __iter__(self) -> Iterator[ResourceType]:
        return iter(list(self._by_path.values()))
