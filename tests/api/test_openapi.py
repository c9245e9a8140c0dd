"""The OpenAPI v3 documents: structure, schema conversion, CRD schemas, index and cache."""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterator
from typing import Any

import pytest

from hypernetes.api import openapi
from hypernetes.resources.registry import Registry, ResourceType

REF = "#/components/schemas/"
CRONTAB = ResourceType(
    "stable.example.com",
    "v1",
    "CronTab",
    "crontabs",
    True,
    subresources=("status", "scale"),
    crd_schema={
        "type": "object",
        "properties": {
            "spec": {
                "type": "object",
                "properties": {
                    "cronSpec": {"type": "string", "pattern": "^\\S+$"},
                    "port": {"x-kubernetes-int-or-string": True},
                },
                "required": ["cronSpec"],
            }
        },
    },
    crd_name="crontabs.stable.example.com",
)


@pytest.fixture(scope="module")
def registry() -> Registry:
    reg = Registry()
    reg.add(CRONTAB)
    return reg


@pytest.fixture(scope="module")
def docs(registry: Registry) -> dict[str, dict[str, Any]]:
    out = {}
    for group, versions in registry.group_versions().items():
        for version in versions:
            out[f"{group}/{version}"] = openapi.document(registry, group, version)
    return out


def _walk(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


def _operations(doc: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in doc["paths"].items():
        for method in ("get", "put", "post", "patch", "delete"):
            if method in item:
                yield path, method, item[method]


def _query_names(op: dict[str, Any]) -> set[str]:
    return {p["name"] for p in op.get("parameters", []) if p["in"] == "query"}


# -- every document -------------------------------------------------------------------------------


def test_documents_are_openapi_3_with_info(docs: dict[str, dict[str, Any]]) -> None:
    for doc in docs.values():
        assert doc["openapi"] == "3.0.0"
        assert doc["info"] == {"title": "Kubernetes", "version": "v1.32.0"}
        json.dumps(doc)  # plain JSON all the way down


def test_every_reference_resolves_inside_the_document(docs: dict[str, dict[str, Any]]) -> None:
    for gv, doc in docs.items():
        schemas = doc["components"]["schemas"]
        for node in _walk(doc):
            ref = node.get("$ref")
            if isinstance(ref, str):
                assert ref.startswith(REF), (gv, ref)
                assert ref[len(REF) :] in schemas, (gv, ref)


def test_no_stored_dialect_remains(docs: dict[str, dict[str, Any]]) -> None:
    for doc in docs.values():
        for node in _walk(doc["components"]["schemas"]):
            assert not isinstance(node.get("type"), list), node
            assert node.get("type") != "null"
            assert not isinstance(node.get("oneOf"), list), node


def test_writes_list_kube_query_parameters(docs: dict[str, dict[str, Any]]) -> None:
    """kubectl checks `fieldValidation` on *every* PATCH of a kind (it picks one at random)."""
    patches = 0
    for gv, doc in docs.items():
        for path, method, op in _operations(doc):
            names = _query_names(op)
            action = op.get("x-kubernetes-action")
            if method == "patch":
                patches += 1
                assert {"dryRun", "fieldManager", "fieldValidation", "force"} <= names, path
                for param in op["parameters"]:
                    assert param["in"] == "query" and "schema" in param
            if (method, action) in (("post", "post"), ("put", "put")):
                assert {"dryRun", "fieldManager", "fieldValidation"} <= names, (gv, path)
            if action == "list":
                assert {"labelSelector", "fieldSelector", "watch", "limit"} <= names, path
            if action == "deletecollection":
                assert {"propagationPolicy", "labelSelector", "gracePeriodSeconds"} <= names
    assert patches > 30


def test_one_schema_per_kind_carries_its_gvk(docs: dict[str, dict[str, Any]]) -> None:
    """`kubectl apply` takes the first schema naming the GVK, in random order: it must be one."""
    for gv, doc in docs.items():
        group, version = gv.split("/")
        ops = [op for _, _, op in _operations(doc) if "x-kubernetes-group-version-kind" in op]
        kinds = {op["x-kubernetes-group-version-kind"]["kind"] for op in ops}
        for kind in kinds:
            gvk = {"group": group, "version": version, "kind": kind}
            owners = [
                name
                for name, s in doc["components"]["schemas"].items()
                if gvk in s.get("x-kubernetes-group-version-kind", [])
                and not name.endswith("DeleteOptions")
                and not name.endswith("WatchEvent")
            ]
            if group in ("", "apps", "stable.example.com"):
                assert len(owners) <= 1, (gvk, owners)


# -- paths and operations -------------------------------------------------------------------------


def test_core_pod_paths(docs: dict[str, dict[str, Any]]) -> None:
    paths = docs["/v1"]["paths"]
    base = "/api/v1/namespaces/{namespace}/pods"
    assert paths[base]["get"]["operationId"] == "listCoreV1NamespacedPod"
    assert paths[base]["post"]["operationId"] == "createCoreV1NamespacedPod"
    assert paths[base]["delete"]["operationId"] == "deleteCoreV1CollectionNamespacedPod"
    assert paths[base]["delete"]["x-kubernetes-action"] == "deletecollection"
    item = paths[base + "/{name}"]
    assert {"get", "put", "patch", "delete"} <= set(item)
    assert [p["name"] for p in item["parameters"]] == ["name", "namespace", "pretty"]
    assert item["get"]["tags"] == ["core_v1"]
    assert item["get"]["x-kubernetes-group-version-kind"] == {
        "group": "",
        "kind": "Pod",
        "version": "v1",
    }
    assert item["put"]["requestBody"]["content"]["*/*"]["schema"] == {
        "$ref": REF + "io.k8s.api.core.v1.Pod"
    }
    patch_media = set(item["patch"]["requestBody"]["content"])
    assert "application/strategic-merge-patch+json" in patch_media
    assert "application/apply-patch+yaml" in patch_media
    ok = item["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert ok == {"$ref": REF + "io.k8s.api.core.v1.Pod"}
    assert paths["/api/v1/pods"]["get"]["operationId"] == "listCoreV1PodForAllNamespaces"
    assert paths[base + "/{name}/status"]["patch"]["operationId"] == (
        "patchCoreV1NamespacedPodStatus"
    )
    assert _query_names(paths[base + "/{name}/log"]["get"]) >= {"container", "follow", "previous"}
    exec_ = paths[base + "/{name}/exec"]
    assert exec_["post"]["x-kubernetes-action"] == "connect"
    assert exec_["get"]["operationId"] == "connectCoreV1GetNamespacedPodExec"
    assert exec_["post"]["x-kubernetes-group-version-kind"]["kind"] == "PodExecOptions"
    eviction = paths[base + "/{name}/eviction"]["post"]
    assert eviction["x-kubernetes-group-version-kind"]["group"] == "policy"
    assert "io.k8s.api.policy.v1.Eviction" in docs["/v1"]["components"]["schemas"]


def test_cluster_scoped_and_create_only_kinds(docs: dict[str, dict[str, Any]]) -> None:
    core = docs["/v1"]["paths"]
    assert [p["name"] for p in core["/api/v1/nodes/{name}"]["parameters"]] == ["name", "pretty"]
    assert "/api/v1/namespaces/{name}/finalize" in core
    reviews = docs["authorization.k8s.io/v1"]["paths"]
    review = reviews["/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"]
    assert set(review) == {"post", "parameters"}
    assert "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews/{name}" not in reviews


def test_scale_subresource_speaks_autoscaling_scale(docs: dict[str, dict[str, Any]]) -> None:
    scale = docs["apps/v1"]["paths"][
        "/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale"
    ]
    assert scale["get"]["x-kubernetes-group-version-kind"] == {
        "group": "autoscaling",
        "kind": "Scale",
        "version": "v1",
    }
    assert scale["get"]["operationId"] == "readAppsV1NamespacedDeploymentScale"
    assert "io.k8s.api.autoscaling.v1.Scale" in docs["apps/v1"]["components"]["schemas"]


def test_operation_ids_are_unique(docs: dict[str, dict[str, Any]]) -> None:
    for doc in docs.values():
        ids = [op["operationId"] for _, _, op in _operations(doc)]
        assert len(ids) == len(set(ids))
    rbac = docs["rbac.authorization.k8s.io/v1"]["paths"]
    op = rbac["/apis/rbac.authorization.k8s.io/v1/clusterroles"]["get"]
    assert op["operationId"] == "listRbacAuthorizationV1ClusterRole"
    assert op["tags"] == ["rbacAuthorization_v1"]


# -- schema conversion ----------------------------------------------------------------------------


def test_references_with_siblings_become_allof(docs: dict[str, dict[str, Any]]) -> None:
    schemas = docs["/v1"]["components"]["schemas"]
    pod = schemas["io.k8s.api.core.v1.Pod"]
    assert pod["properties"]["spec"]["allOf"] == [{"$ref": REF + "io.k8s.api.core.v1.PodSpec"}]
    assert pod["properties"]["spec"]["description"]
    containers = schemas["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"]
    assert containers["items"] == {"$ref": REF + "io.k8s.api.core.v1.Container"}
    assert containers["type"] == "array"
    assert containers["x-kubernetes-patch-merge-key"] == "name"
    assert containers["x-kubernetes-patch-strategy"] == "merge"
    assert containers["x-kubernetes-list-map-keys"] == ["name"]
    node_selector = schemas["io.k8s.api.core.v1.PodSpec"]["properties"]["nodeSelector"]
    assert node_selector == {
        "additionalProperties": {"type": "string"},
        "description": node_selector["description"],
        "type": "object",
        "x-kubernetes-map-type": "atomic",
    }


def test_kind_enums_dropped_and_primitives_published_as_strings(
    docs: dict[str, dict[str, Any]],
) -> None:
    schemas = docs["apps/v1"]["components"]["schemas"]
    deployment = schemas["io.k8s.api.apps.v1.Deployment"]
    assert deployment["properties"]["kind"] == {
        "description": deployment["properties"]["kind"]["description"],
        "type": "string",
    }
    assert deployment["x-kubernetes-group-version-kind"] == [
        {"group": "apps", "kind": "Deployment", "version": "v1"}
    ]
    int_or_string = schemas["io.k8s.apimachinery.pkg.util.intstr.IntOrString"]
    assert (int_or_string["type"], int_or_string["format"]) == ("string", "int-or-string")
    assert schemas["io.k8s.apimachinery.pkg.api.resource.Quantity"]["type"] == "string"
    assert schemas["io.k8s.apimachinery.pkg.apis.meta.v1.Time"]["format"] == "date-time"
    for name in ("ObjectMeta", "ListMeta", "Status", "DeleteOptions", "WatchEvent", "Patch"):
        assert f"io.k8s.apimachinery.pkg.apis.meta.v1.{name}" in schemas


def test_convert_schema_rules() -> None:
    stored = {
        "type": ["string", "null"],
        "enum": ["A", "B"],
        "format": "byte",
        "x-kubernetes-list-type": "set",
        "properties": {"ref": {"$ref": "#/$defs/io.k8s.api.core.v1.Pod"}},
        "items": {"$ref": "#/$defs/X", "description": "d"},
    }
    assert openapi.convert_schema(stored) == {
        "type": "string",
        "enum": ["A", "B"],
        "format": "byte",
        "x-kubernetes-list-type": "set",
        "properties": {"ref": {"$ref": REF + "io.k8s.api.core.v1.Pod"}},
        "items": {"allOf": [{"$ref": REF + "X"}], "description": "d"},
    }
    with pytest.raises(ValueError, match="unsupported"):
        openapi.convert_schema({"$ref": "http://elsewhere/x"})


def test_documents_do_not_share_state_with_the_schema_store(registry: Registry) -> None:
    first = openapi.document(registry, "", "v1")
    pod = first["components"]["schemas"]["io.k8s.api.core.v1.Pod"]
    pod["properties"].clear()
    second = openapi.document(registry, "", "v1")
    assert second["components"]["schemas"]["io.k8s.api.core.v1.Pod"]["properties"]


# -- CRD-served kinds -----------------------------------------------------------------------------


def test_crd_kind_schema_is_named_by_reversed_group(docs: dict[str, dict[str, Any]]) -> None:
    doc = docs["stable.example.com/v1"]
    schemas = doc["components"]["schemas"]
    crontab = schemas["com.example.stable.v1.CronTab"]
    assert crontab["x-kubernetes-group-version-kind"] == [
        {"group": "stable.example.com", "kind": "CronTab", "version": "v1"}
    ]
    assert crontab["type"] == "object"
    assert set(crontab["properties"]) == {"apiVersion", "kind", "metadata", "spec"}
    assert crontab["properties"]["metadata"]["allOf"] == [
        {"$ref": REF + "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"}
    ]
    spec = crontab["properties"]["spec"]
    assert spec["required"] == ["cronSpec"]
    assert spec["properties"]["port"] == {"x-kubernetes-int-or-string": True}
    listing = schemas["com.example.stable.v1.CronTabList"]
    assert listing["properties"]["items"]["items"] == {
        "$ref": REF + "com.example.stable.v1.CronTab"
    }
    assert listing["x-kubernetes-group-version-kind"][0]["kind"] == "CronTabList"
    assert "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta" in schemas
    # The CRD's own schema was copied, not shared.
    assert CRONTAB.crd_schema is not None
    assert "apiVersion" not in CRONTAB.crd_schema["properties"]


def test_crd_patch_offers_no_strategic_merge(docs: dict[str, dict[str, Any]]) -> None:
    paths = docs["stable.example.com/v1"]["paths"]
    item = paths["/apis/stable.example.com/v1/namespaces/{namespace}/crontabs/{name}"]
    media = set(item["patch"]["requestBody"]["content"])
    assert media == {
        "application/apply-patch+yaml",
        "application/json-patch+json",
        "application/merge-patch+json",
    }
    assert item["get"]["operationId"] == "readStableExampleComV1NamespacedCronTab"
    status = paths["/apis/stable.example.com/v1/namespaces/{namespace}/crontabs/{name}/status"]
    assert status["get"]["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": REF + "com.example.stable.v1.CronTab"
    }


def test_kind_without_any_schema_gets_an_open_object() -> None:
    reg = Registry(())
    reg.add(ResourceType("hypernetes.io", "v1", "Tenant", "tenants", False))
    doc = openapi.document(reg, "hypernetes.io", "v1")
    tenant = doc["components"]["schemas"]["io.hypernetes.v1.Tenant"]
    assert tenant["x-kubernetes-preserve-unknown-fields"] is True
    assert tenant["x-kubernetes-group-version-kind"][0]["kind"] == "Tenant"


# -- index, lookup, hash --------------------------------------------------------------------------


def test_index_lists_every_document_with_its_hash(registry: Registry) -> None:
    index = openapi.index(registry)
    keys = set(index["paths"])
    assert {"api", "api/v1", "apis", "apis/apps", "apis/apps/v1", "version"} <= keys
    assert {"apis/stable.example.com", "apis/stable.example.com/v1"} <= keys
    url = index["paths"]["apis/apps/v1"]["serverRelativeURL"]
    match = re.fullmatch(r"/openapi/v3/apis/apps/v1\?hash=([0-9A-F]{128})", url)
    assert match
    assert match.group(1) == openapi.hash(openapi.document(registry, "apps", "v1"))
    other = openapi.index(registry, base="/o")["paths"]["version"]["serverRelativeURL"]
    assert other.startswith("/o/version?hash=")


def test_document_for_path(registry: Registry) -> None:
    apps = openapi.document_for_path(registry, "apis/apps/v1?hash=ABC")
    assert apps is not None and "/apis/apps/v1/namespaces/{namespace}/deployments" in apps["paths"]
    api = openapi.document_for_path(registry, "/api/")
    assert api is not None and api["paths"]["/api/"]["get"]["operationId"] == "getCoreAPIVersions"
    group = openapi.document_for_path(registry, "apis/apps")
    assert group is not None and group["paths"]["/apis/apps/"]["get"]["operationId"] == (
        "getAppsAPIGroup"
    )
    version = openapi.document_for_path(registry, "version")
    assert version is not None and "io.k8s.apimachinery.pkg.version.Info" in json.dumps(version)
    for missing in ("apis/apps/v2", "apis/nope/v1", "api/v2", "nothing", "apis/apps/v1/x", ""):
        assert openapi.document_for_path(registry, missing) is None
    with pytest.raises(KeyError):
        openapi.document(registry, "apps", "v9")


def test_hash_is_canonical() -> None:
    a = {"x": 1, "y": {"b": [1, 2], "a": "é"}}
    b = {"y": {"a": "é", "b": [1, 2]}, "x": 1}
    assert openapi.hash(a) == openapi.hash(b)
    assert openapi.hash(a) != openapi.hash({**a, "x": 2})
    assert re.fullmatch(r"[0-9A-F]{128}", openapi.hash(a))


# -- the cache ------------------------------------------------------------------------------------


def test_cache_reuses_documents_until_the_registry_changes() -> None:
    reg = Registry()
    reg.add(CRONTAB)
    cache = openapi.OpenAPICache(reg)
    apps = cache.document("apps", "v1")
    crd = cache.document("stable.example.com", "v1")
    assert apps is not None and crd is not None
    assert cache.document("apps", "v1") is apps
    old_hash = cache.hash_for_path("apis/stable.example.com/v1")

    # The CRD changes: the registry gets a new ResourceType object for it.
    changed_schema = {"type": "object", "properties": {"spec": {"type": "object"}}}
    reg.add(dataclasses.replace(CRONTAB, crd_schema=changed_schema))
    rebuilt = cache.document("stable.example.com", "v1")
    assert rebuilt is not crd
    assert rebuilt is not None
    assert "cronSpec" not in json.dumps(rebuilt["components"]["schemas"])
    assert cache.hash_for_path("apis/stable.example.com/v1") != old_hash
    assert cache.document("apps", "v1") is apps

    # A new group appears in the index; a removed one disappears.
    reg.add(dataclasses.replace(CRONTAB, group="batch.example.org", crd_schema=None))
    assert "apis/batch.example.org/v1" in cache.index()["paths"]
    reg.remove("stable.example.com", "v1", "crontabs")
    assert cache.document("stable.example.com", "v1") is None
    assert "apis/stable.example.com" not in cache.index()["paths"]

    encoded = cache.encoded_for_path("apis/apps/v1?hash=x")
    assert encoded is not None and json.loads(encoded) == apps
    assert cache.encoded_for_path("apis/apps/v1") is encoded
    assert cache.encoded_for_path("apis/nope/v1") is None
    reg.add(dataclasses.replace(CRONTAB, crd_schema=None))
    crd_bytes = cache.encoded_for_path("apis/stable.example.com/v1")
    assert crd_bytes is not None and b"cronSpec" not in crd_bytes
    reg.add(CRONTAB)
    crd_bytes2 = cache.encoded_for_path("apis/stable.example.com/v1")
    assert crd_bytes2 is not None and b"cronSpec" in crd_bytes2

    cache.invalidate()
    assert cache.document("apps", "v1") is not apps
    assert cache.document_for_path("nope") is None and cache.hash_for_path("nope") is None


def test_cache_index_matches_module_index() -> None:
    reg = Registry()
    cache = openapi.OpenAPICache(reg, base="/openapi/v3")
    assert cache.index() == openapi.index(reg)
