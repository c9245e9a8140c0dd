"""API discovery documents: legacy (/api, /apis, group-version lists) and aggregated v2."""

from __future__ import annotations

from typing import Any

from hypernetes.resources.registry import Registry, ResourceType

AGGREGATED_MEDIA = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"

# Preferred order of the groups in discovery, as kube lists them.
_GROUP_ORDER = (
    "",
    "apps",
    "rbac.authorization.k8s.io",
    "coordination.k8s.io",
    "apiextensions.k8s.io",
    "hypernetes.io",
)


def _sorted_groups(registry: Registry) -> list[tuple[str, list[str]]]:
    gvs = registry.group_versions()

    def rank(g: str) -> tuple[int, str]:
        return (_GROUP_ORDER.index(g) if g in _GROUP_ORDER else len(_GROUP_ORDER), g)

    return [(g, gvs[g]) for g in sorted(gvs, key=rank)]


def api_versions() -> dict[str, Any]:
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": ""}],
    }


def _group(group: str, versions: list[str]) -> dict[str, Any]:
    gv = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
    return {"name": group, "versions": gv, "preferredVersion": gv[0]}


def api_group_list(registry: Registry) -> dict[str, Any]:
    groups = [_group(g, vs) for g, vs in _sorted_groups(registry) if g]
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def api_group(registry: Registry, group: str) -> dict[str, Any] | None:
    versions = registry.group_versions().get(group)
    if not versions or not group:
        return None
    return {"kind": "APIGroup", "apiVersion": "v1", **_group(group, versions)}


def _verbs(rt: ResourceType) -> list[str]:
    return sorted(rt.verbs)


def resource_list(registry: Registry, group: str, version: str) -> dict[str, Any] | None:
    types = registry.in_group_version(group, version)
    if not types:
        return None
    resources: list[dict[str, Any]] = []
    for rt in types:
        entry: dict[str, Any] = {
            "name": rt.plural,
            "singularName": rt.singular,
            "namespaced": rt.namespaced,
            "kind": rt.kind,
            "verbs": _verbs(rt),
        }
        if rt.short_names:
            entry["shortNames"] = list(rt.short_names)
        if rt.categories:
            entry["categories"] = list(rt.categories)
        resources.append(entry)
        for sub in rt.subresources:
            resources.append(_subresource_entry(rt, sub))
    gv = f"{group}/{version}" if group else version
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": gv,
        "resources": resources,
    }


_SUB_KIND = {
    "scale": ("autoscaling", "v1", "Scale"),
    "binding": ("", "v1", "Binding"),
    "eviction": ("policy", "v1", "Eviction"),
    "token": ("authentication.k8s.io", "v1", "TokenRequest"),
}
_SUB_VERBS = {
    "status": ["get", "patch", "update"],
    "scale": ["get", "patch", "update"],
    "finalize": ["update"],
    "log": ["get"],
    "exec": ["create", "get"],
    "attach": ["create", "get"],
    "binding": ["create"],
    "eviction": ["create"],
    "token": ["create"],
}


def _subresource_entry(rt: ResourceType, sub: str) -> dict[str, Any]:
    group, version, kind = _SUB_KIND.get(sub, (rt.group, rt.version, rt.kind))
    entry: dict[str, Any] = {
        "name": f"{rt.plural}/{sub}",
        "singularName": "",
        "namespaced": rt.namespaced,
        "kind": kind,
        "verbs": _SUB_VERBS.get(sub, ["get"]),
    }
    if sub in _SUB_KIND:
        entry["group"], entry["version"] = group, version
    return entry


def aggregated(registry: Registry, legacy: bool) -> dict[str, Any]:
    """The aggregated discovery document of the core group (legacy) or of /apis."""
    items = []
    for group, versions in _sorted_groups(registry):
        if (group == "") != legacy:
            continue
        items.append(
            {
                "metadata": {"name": group, "creationTimestamp": None},
                "versions": [
                    {
                        "version": v,
                        "resources": [
                            _aggregated_resource(rt) for rt in registry.in_group_version(group, v)
                        ],
                        "freshness": "Current",
                    }
                    for v in versions
                ],
            }
        )
    return {
        "kind": "APIGroupDiscoveryList",
        "apiVersion": "apidiscovery.k8s.io/v2",
        "metadata": {},
        "items": items,
    }


def _aggregated_resource(rt: ResourceType) -> dict[str, Any]:
    out: dict[str, Any] = {
        "resource": rt.plural,
        "responseKind": {"group": rt.group, "version": rt.version, "kind": rt.kind},
        "scope": "Namespaced" if rt.namespaced else "Cluster",
        "singularResource": rt.singular,
        "verbs": _verbs(rt),
    }
    if rt.short_names:
        out["shortNames"] = list(rt.short_names)
    if rt.categories:
        out["categories"] = list(rt.categories)
    if rt.subresources:
        out["subresources"] = []
        for sub in rt.subresources:
            g, v, k = _SUB_KIND.get(sub, (rt.group, rt.version, rt.kind))
            out["subresources"].append(
                {
                    "subresource": sub,
                    "verbs": _SUB_VERBS.get(sub, ["get"]),
                    "responseKind": {"group": g, "version": v, "kind": k},
                }
            )
    return out
