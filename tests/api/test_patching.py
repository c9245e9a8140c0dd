"""JSON patch, merge patch, strategic merge patch and server-side apply."""

from __future__ import annotations

import copy

import pytest

from hypernetes.api.patching import (
    ApplyConflict,
    PatchError,
    apply,
    json_patch,
    merge_patch,
    record_update,
    strategic_merge_patch,
)
from hypernetes.resources.schema import definition

DEPLOYMENT = definition("io.k8s.api.apps.v1.Deployment")
SERVICE = definition("io.k8s.api.core.v1.Service")


def _deployment(replicas: int = 1, image: str = "nginx") -> dict:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "containers": [
                        {"name": "web", "image": image, "env": [{"name": "A", "value": "1"}]}
                    ]
                },
            },
        },
    }


def test_json_patch_operations_and_failures() -> None:
    doc = {"a": [1, 2], "b": {"c": "x"}}
    out = json_patch(
        doc,
        [
            {"op": "add", "path": "/a/-", "value": 3},
            {"op": "replace", "path": "/b/c", "value": "y"},
            {"op": "copy", "from": "/b", "path": "/d"},
            {"op": "move", "from": "/d/c", "path": "/e"},
            {"op": "remove", "path": "/a/0"},
            {"op": "test", "path": "/e", "value": "y"},
            {"op": "add", "path": "/f~1g", "value": 1},
        ],
    )
    assert out == {"a": [2, 3], "b": {"c": "y"}, "d": {}, "e": "y", "f/g": 1}
    assert doc == {"a": [1, 2], "b": {"c": "x"}}  # input untouched
    for bad, code in (
        ([{"op": "test", "path": "/b/c", "value": "z"}], 422),
        ([{"op": "remove", "path": "/nope"}], 422),
        ([{"op": "add", "path": "/a/9", "value": 1}], 422),
        ([{"op": "jump", "path": "/a"}], 400),
        ([{"op": "add", "path": "a"}], 400),
    ):
        with pytest.raises(PatchError) as err:
            json_patch(doc, bad)
        assert err.value.code == code


def test_merge_patch() -> None:
    assert merge_patch({"a": {"b": 1, "c": 2}, "l": [1]}, {"a": {"b": None, "d": 3}, "l": [2]}) == {
        "a": {"c": 2, "d": 3},
        "l": [2],
    }


def test_strategic_merge_by_merge_key_and_directives() -> None:
    live = _deployment()
    patch = {
        "spec": {
            "template": {
                "spec": {
                    "containers": [
                        {"name": "side", "image": "busybox"},
                        {"name": "web", "env": [{"name": "B", "value": "2"}]},
                    ]
                }
            }
        }
    }
    out = strategic_merge_patch(live, patch, DEPLOYMENT)
    containers = out["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["web", "side"]
    assert containers[0]["image"] == "nginx"
    assert [e["name"] for e in containers[0]["env"]] == ["A", "B"]
    deleted = strategic_merge_patch(
        out,
        {"spec": {"template": {"spec": {"containers": [{"name": "side", "$patch": "delete"}]}}}},
        DEPLOYMENT,
    )
    assert [c["name"] for c in deleted["spec"]["template"]["spec"]["containers"]] == ["web"]
    ordered = strategic_merge_patch(
        out,
        {
            "spec": {
                "template": {
                    "spec": {"$setElementOrder/containers": [{"name": "side"}, {"name": "web"}]}
                }
            }
        },
        DEPLOYMENT,
    )
    assert [c["name"] for c in ordered["spec"]["template"]["spec"]["containers"]] == ["side", "web"]
    replaced = strategic_merge_patch(
        live, {"spec": {"selector": {"$patch": "replace", "matchLabels": {"x": "y"}}}}, DEPLOYMENT
    )
    assert replaced["spec"]["selector"] == {"matchLabels": {"x": "y"}}
    with pytest.raises(PatchError):
        strategic_merge_patch(
            live,
            {"spec": {"template": {"spec": {"containers": [{"image": "no-key"}]}}}},
            DEPLOYMENT,
        )


def test_strategic_primitive_list_merge_and_delete() -> None:
    live = {"metadata": {"finalizers": ["a", "b"]}}
    out = strategic_merge_patch(live, {"metadata": {"finalizers": ["c"]}}, DEPLOYMENT)
    assert out["metadata"]["finalizers"] == ["a", "b", "c"]
    out = strategic_merge_patch(
        out, {"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]}}, DEPLOYMENT
    )
    assert out["metadata"]["finalizers"] == ["b", "c"]
    # Lists without a merge strategy are replaced.
    args = strategic_merge_patch(
        {"spec": {"template": {"spec": {"containers": [{"name": "w", "args": ["1", "2"]}]}}}},
        {"spec": {"template": {"spec": {"containers": [{"name": "w", "args": ["3"]}]}}}},
        DEPLOYMENT,
    )
    assert args["spec"]["template"]["spec"]["containers"][0]["args"] == ["3"]


def test_apply_owns_fields_conflicts_and_force() -> None:
    obj = apply(None, _deployment(1), manager="alice", force=False, schema=DEPLOYMENT, now="t1")
    [entry] = obj["metadata"]["managedFields"]
    assert entry["manager"] == "alice" and entry["operation"] == "Apply"
    assert "f:replicas" in entry["fieldsV1"]["f:spec"]
    assert 'k:{"name":"web"}' in entry["fieldsV1"]["f:spec"]["f:template"]["f:spec"]["f:containers"]
    # Idempotent.
    again = apply(obj, _deployment(1), manager="alice", force=False, schema=DEPLOYMENT, now="t2")
    assert again["spec"] == obj["spec"]
    # Someone scales it: a later apply of another value conflicts.
    scaled = copy.deepcopy(obj)
    scaled["spec"]["replicas"] = 5
    scaled = record_update(obj, scaled, manager="kubectl", schema=DEPLOYMENT, now="t3")
    with pytest.raises(ApplyConflict) as err:
        apply(scaled, _deployment(2), manager="alice", force=False, schema=DEPLOYMENT, now="t4")
    assert [(c.manager, c.path) for c in err.value.conflicts] == [("kubectl", ".spec.replicas")]
    assert "Apply failed with 1 conflict" in str(err.value)
    forced = apply(scaled, _deployment(2), manager="alice", force=True, schema=DEPLOYMENT, now="t5")
    assert forced["spec"]["replicas"] == 2
    managers = {e["manager"]: e for e in forced["metadata"]["managedFields"]}
    assert "kubectl" not in managers  # its only field moved to alice
    # The same value owned by two managers is shared, not a conflict.
    bob = apply(
        forced,
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web"},
            "spec": {"replicas": 2},
        },
        manager="bob",
        force=False,
        schema=DEPLOYMENT,
        now="t6",
    )
    assert {e["manager"] for e in bob["metadata"]["managedFields"]} == {"alice", "bob"}


def test_apply_removes_fields_no_longer_applied_unless_shared() -> None:
    first = _deployment()
    first["metadata"]["labels"] = {"a": "1", "b": "2"}
    obj = apply(None, first, manager="alice", force=False, schema=DEPLOYMENT, now="t1")
    second = _deployment()
    second["metadata"]["labels"] = {"a": "1"}
    out = apply(obj, second, manager="alice", force=False, schema=DEPLOYMENT, now="t2")
    assert out["metadata"]["labels"] == {"a": "1"}
    # A container dropped from the config goes; one kept keeps its fields.
    two = _deployment()
    two["spec"]["template"]["spec"]["containers"].append({"name": "side", "image": "b"})
    obj = apply(None, two, manager="alice", force=False, schema=DEPLOYMENT, now="t1")
    out = apply(obj, _deployment(), manager="alice", force=False, schema=DEPLOYMENT, now="t2")
    assert [c["name"] for c in out["spec"]["template"]["spec"]["containers"]] == ["web"]


def test_apply_list_map_keys_of_service_ports() -> None:
    svc = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "s"},
        "spec": {"ports": [{"port": 80, "protocol": "TCP", "targetPort": 8080}]},
    }
    obj = apply(None, svc, manager="m", force=False, schema=SERVICE, now="t")
    ports = obj["metadata"]["managedFields"][0]["fieldsV1"]["f:spec"]["f:ports"]
    assert list(ports) == ['k:{"port":80,"protocol":"TCP"}']


def test_record_update_moves_changed_fields_to_the_writer() -> None:
    obj = record_update(None, _deployment(), manager="create", schema=DEPLOYMENT, now="t1")
    assert obj["metadata"]["managedFields"][0]["operation"] == "Update"
    edited = copy.deepcopy(obj)
    edited["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:2"
    out = record_update(obj, edited, manager="editor", schema=DEPLOYMENT, now="t2")
    by = {e["manager"]: e["fieldsV1"] for e in out["metadata"]["managedFields"]}
    web = 'k:{"name":"web"}'
    assert "f:image" in by["editor"]["f:spec"]["f:template"]["f:spec"]["f:containers"][web]
    assert "f:image" not in by["create"]["f:spec"]["f:template"]["f:spec"]["f:containers"][web]
