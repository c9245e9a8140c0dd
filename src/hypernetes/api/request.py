"""Parsing a Kubernetes API request path into what it addresses."""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass

from hypernetes.api import errors
from hypernetes.resources.registry import Registry, ResourceType

DRY_RUN: ContextVar[bool] = ContextVar("dry_run", default=False)
"""Whether the request being served is a dry run (`?dryRun=All`): admission hooks with
side effects (quota charges) decide as usual but write nothing."""


@dataclass(frozen=True)
class Target:
    """What a resource request addresses: a collection, an object or a subresource."""

    rt: ResourceType
    namespace: str | None
    name: str | None = None
    subresource: str = ""

    @property
    def is_collection(self) -> bool:
        return self.name is None


def parse_target(registry: Registry, path: str) -> Target | None:
    """The Target of a resource path, None for non-resource paths (discovery, ...).

    Raises 404 for paths under a served group-version naming nothing served.
    """
    parts = [p for p in path.split("/") if p]
    if len(parts) >= 2 and parts[0] == "api":
        group, version, rest = "", parts[1], parts[2:]
    elif len(parts) >= 3 and parts[0] == "apis":
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        return None
    if not rest:
        return None
    namespace: str | None = None
    if rest[0] == "namespaces" and len(rest) >= 3:
        candidate = registry.get(group, version, rest[2])
        if candidate is not None and candidate.namespaced:
            namespace, rest = rest[1], rest[2:]
    rt = registry.get(group, version, rest[0])
    if rt is None or len(rest) > 3:
        raise errors.not_found_path(path)
    if rt.namespaced is False and namespace is not None:
        raise errors.not_found_path(path)
    name = rest[1] if len(rest) >= 2 else None
    sub = rest[2] if len(rest) == 3 else ""
    if sub and sub not in rt.subresources:
        raise errors.not_found_path(path)
    if rt.namespaced and name is not None and namespace is None:
        raise errors.not_found_path(path)
    return Target(rt, namespace, name, sub)
