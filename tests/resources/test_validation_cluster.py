"""Rules of the other built-in kinds: namespaces, nodes, storage, quota, RBAC, leases, events."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from hypernetes.resources import defaults, validation
from hypernetes.resources.registry import BUILTIN, ResourceType

Obj = dict[str, Any]


def rt(kind: str) -> ResourceType:
    return next(r for r in BUILTIN if r.kind == kind)


def check(kind: str, obj: Obj, old: Obj | None = None) -> list[validation.FieldError]:
    if rt(kind).stored:
        meta = {"name": "x", "namespace": "n"} if rt(kind).namespaced else {"name": "x"}
        obj.setdefault("metadata", meta)
    obj.setdefault("kind", kind)
    defaults.default(rt(kind), obj)
    result = validation.validate(rt(kind), obj, old=old)
    assert not result.bad_request, result.bad_request
    return result.errors


def fields(kind: str, obj: Obj, old: Obj | None = None) -> list[tuple[str, str]]:
    return [(e.field, e.type) for e in check(kind, obj, old)]


def test_namespace_finalizers() -> None:
    obj = {"spec": {"finalizers": ["kubernetes", "example.com/x", "custom", "Bad Name"]}}
    errs = check("Namespace", obj)
    assert [(e.field, e.type) for e in errs] == [
        ("spec.finalizers[2]", "FieldValueInvalid"),
        ("spec.finalizers[3]", "FieldValueInvalid"),
    ]
    assert errs[0].message.endswith(
        "name is neither a standard finalizer name nor is it fully qualified"
    )


def test_nodes() -> None:
    obj = {
        "spec": {
            "podCIDRs": ["10.244.0.0/24", "10.244.0.0"],
            "taints": [
                {"key": "a", "effect": "NoSchedule"},
                {"key": "a", "effect": "NoSchedule"},
                {"key": "b", "effect": "Never"},
                {"key": "c"},
            ],
        },
        "status": {"capacity": {"cpu": "-1"}},
    }
    assert fields("Node", obj) == [
        ("spec.podCIDRs[1]", "FieldValueInvalid"),
        ("spec.taints[1]", "FieldValueDuplicate"),
        ("spec.taints[2].effect", "FieldValueNotSupported"),
        ("spec.taints[3].effect", "FieldValueRequired"),
        ("status.capacity[cpu]", "FieldValueInvalid"),
        ("status.allocatable[cpu]", "FieldValueInvalid"),  # defaulted from the capacity
    ]


def test_node_pod_cidr_is_set_once() -> None:
    old = {"metadata": {"name": "n1"}, "spec": {"podCIDRs": ["10.244.0.0/24"]}}
    assert check("Node", old) == []
    new = copy.deepcopy(old)
    new["spec"]["podCIDRs"] = ["10.244.1.0/24"]
    assert fields("Node", new, old) == [("spec.podCIDRs", "FieldValueForbidden")]
    assert check("Node", copy.deepcopy(old), {"metadata": {"name": "n1"}, "spec": {}}) == []


def pv(**spec: Any) -> Obj:
    base: Obj = {
        "accessModes": ["ReadWriteOnce"],
        "capacity": {"storage": "1Gi"},
        "hostPath": {"path": "/data"},
    }
    base.update(spec)
    return {"spec": base}


def test_persistent_volumes() -> None:
    assert check("PersistentVolume", pv()) == []
    obj = pv(
        accessModes=["ReadWriteOncePod", "Sometimes"],
        capacity={"storage": "1Gi", "cpu": "1"},
        persistentVolumeReclaimPolicy="Burn",
        nfs={"server": "x", "path": "/"},
    )
    assert fields("PersistentVolume", obj) == [
        ("spec.accessModes", "FieldValueNotSupported"),
        ("spec.accessModes", "FieldValueForbidden"),
        ("spec.capacity", "FieldValueNotSupported"),
        ("spec.persistentVolumeReclaimPolicy", "FieldValueNotSupported"),
        ("spec.nfs", "FieldValueForbidden"),
    ]
    empty = {"spec": {}}
    assert fields("PersistentVolume", empty) == [
        ("spec.accessModes", "FieldValueRequired"),
        ("spec.capacity", "FieldValueRequired"),
        ("spec", "FieldValueRequired"),
    ]


def test_persistent_volume_source_is_immutable() -> None:
    old = pv()
    assert check("PersistentVolume", old) == []
    new = copy.deepcopy(old)
    new["spec"]["hostPath"]["path"] = "/other"
    assert fields("PersistentVolume", new, old) == [
        ("spec.persistentvolumesource", "FieldValueForbidden")
    ]


def pvc(**spec: Any) -> Obj:
    base: Obj = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}
    base.update(spec)
    return {"spec": base}


def test_persistent_volume_claims() -> None:
    assert check("PersistentVolumeClaim", pvc()) == []
    errs = check("PersistentVolumeClaim", {"spec": {}})
    assert [(e.field, e.type) for e in errs] == [
        ("spec.accessModes", "FieldValueRequired"),
        ("spec.resources[storage]", "FieldValueRequired"),
    ]
    assert errs[0].message == "Required value: at least 1 access mode is required"
    zero = pvc(resources={"requests": {"storage": "0"}}, storageClassName="Bad_Class")
    assert fields("PersistentVolumeClaim", zero) == [
        ("spec.resources.requests[storage]", "FieldValueInvalid"),
        ("spec.storageClassName", "FieldValueInvalid"),
    ]


def test_persistent_volume_claim_updates() -> None:
    old = pvc()
    assert check("PersistentVolumeClaim", old) == []
    bigger = copy.deepcopy(old)
    bigger["spec"]["resources"]["requests"]["storage"] = "2Gi"
    bigger["spec"]["volumeName"] = "pv-1"  # binding
    assert check("PersistentVolumeClaim", bigger, old) == []
    smaller = copy.deepcopy(old)
    smaller["spec"]["resources"]["requests"]["storage"] = "512Mi"
    smaller["spec"]["accessModes"] = ["ReadWriteMany"]
    assert fields("PersistentVolumeClaim", smaller, old) == [
        ("spec", "FieldValueForbidden"),
        ("spec.resources.requests.storage", "FieldValueForbidden"),
    ]


def test_resource_quotas() -> None:
    obj = {
        "spec": {"hard": {"pods": "1.5", "cpu": "-1", "bogus": "1", "count/deployments.apps": "3"}}
    }
    errs = check("ResourceQuota", obj)
    assert [(e.field, e.message.split(": ")[-1]) for e in errs] == [
        ("spec.hard[pods]", "must be an integer"),
        ("spec.hard[cpu]", "must be greater than or equal to 0"),
        ("spec.hard[bogus]", "must be a standard resource for quota"),
    ]
    assert fields("ResourceQuota", {"spec": {"scopes": ["Sometimes"]}}) == [
        ("spec.scopes", "FieldValueInvalid")
    ]


def test_limit_ranges() -> None:
    limits = [
        {"type": "Container", "min": {"cpu": "2"}, "max": {"cpu": "1"}},
        {"type": "Pod", "default": {"cpu": "1"}},
        {"type": "Container"},
        {"type": "Galaxy"},
        {"type": "PersistentVolumeClaim", "maxLimitRequestRatio": {"storage": "500m"}},
    ]
    errs = check("LimitRange", {"spec": {"limits": limits}})
    assert [(e.field, e.type) for e in errs] == [
        ("spec.limits[0].min[cpu]", "FieldValueInvalid"),
        ("spec.limits[0].min[cpu]", "FieldValueInvalid"),  # min > default (defaulted from max)
        ("spec.limits[0].min[cpu]", "FieldValueInvalid"),  # min > default request
        ("spec.limits[1].default", "FieldValueForbidden"),
        ("spec.limits[2].type", "FieldValueDuplicate"),
        ("spec.limits[3].type", "FieldValueNotSupported"),
        ("spec.limits[4].maxLimitRequestRatio[storage]", "FieldValueInvalid"),
    ]
    assert errs[0].message == 'Invalid value: "2": min value 2 is greater than max value 1'


def test_limit_range_defaults() -> None:
    obj = {
        "spec": {"limits": [{"type": "Container", "max": {"cpu": "2"}, "min": {"memory": "1Mi"}}]}
    }
    assert check("LimitRange", obj) == []
    limit = obj["spec"]["limits"][0]
    assert limit["default"] == {"cpu": "2"}
    assert limit["defaultRequest"] == {"cpu": "2", "memory": "1Mi"}


# -- RBAC ---------------------------------------------------------------------------------------


def test_role_rules() -> None:
    rules = [
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]},
        {"apiGroups": [""], "resources": ["pods"]},
        {"verbs": ["get"]},
        {"nonResourceURLs": ["/healthz"], "verbs": ["get"], "resources": ["pods"]},
    ]
    errs = check("Role", {"rules": rules})
    assert [(e.field, e.type) for e in errs] == [
        ("rules[1].verbs", "FieldValueRequired"),
        ("rules[2].apiGroups", "FieldValueRequired"),
        ("rules[2].resources", "FieldValueRequired"),
        ("rules[3].nonResourceURLs", "FieldValueInvalid"),
        ("rules[3].nonResourceURLs", "FieldValueInvalid"),
    ]
    assert errs[0].message == "Required value: verbs must contain at least one value"
    assert "namespaced rules cannot apply to non-resource URLs" in errs[3].message
    ok = {"rules": [{"nonResourceURLs": ["/healthz"], "verbs": ["get"]}]}
    assert check("ClusterRole", ok) == []


def test_cluster_role_aggregation() -> None:
    obj = {"aggregationRule": {"clusterRoleSelectors": []}}
    assert fields("ClusterRole", obj) == [
        ("aggregationRule.clusterRoleSelectors", "FieldValueRequired")
    ]


def binding(kind: str = "RoleBinding", **body: Any) -> Obj:
    obj: Obj = {
        "roleRef": {"kind": "Role" if kind == "RoleBinding" else "ClusterRole", "name": "r"},
        "subjects": [{"kind": "User", "name": "alice"}],
    }
    obj.update(body)
    return obj


def test_bindings_are_defaulted_and_valid() -> None:
    obj = binding(subjects=[{"kind": "ServiceAccount", "name": "sa", "namespace": "n"}])
    assert check("RoleBinding", obj) == []
    assert obj["roleRef"]["apiGroup"] == "rbac.authorization.k8s.io"
    assert "apiGroup" not in obj["subjects"][0]
    assert check("ClusterRoleBinding", binding("ClusterRoleBinding")) == []


def test_role_ref_and_subjects() -> None:
    obj = binding(
        roleRef={"kind": "Secret", "name": "", "apiGroup": "example.com"},
        subjects=[
            {"kind": "Robot", "name": "r2"},
            {"kind": "User"},
            {"kind": "ServiceAccount", "name": "Bad_SA", "apiGroup": "x"},
            {"kind": "Group", "name": "g", "apiGroup": "other"},
        ],
    )
    errs = check("RoleBinding", obj)
    assert [(e.field, e.type) for e in errs] == [
        ("roleRef.apiGroup", "FieldValueNotSupported"),
        ("roleRef.kind", "FieldValueNotSupported"),
        ("roleRef.name", "FieldValueRequired"),
        ("subjects[0].kind", "FieldValueNotSupported"),
        ("subjects[1].name", "FieldValueRequired"),
        ("subjects[2].name", "FieldValueInvalid"),
        ("subjects[2].apiGroup", "FieldValueNotSupported"),
        ("subjects[3].apiGroup", "FieldValueNotSupported"),
    ]
    assert errs[3].message == (
        'Unsupported value: "Robot": supported values: "ServiceAccount", "User", "Group"'
    )


def test_cluster_role_bindings_need_cluster_roles_and_sa_namespaces() -> None:
    obj = binding(
        "ClusterRoleBinding",
        roleRef={"kind": "Role", "name": "r"},
        subjects=[{"kind": "ServiceAccount", "name": "sa"}],
    )
    assert fields("ClusterRoleBinding", obj) == [
        ("roleRef.kind", "FieldValueNotSupported"),
        ("subjects[0].namespace", "FieldValueRequired"),
    ]


@pytest.mark.parametrize("kind", ["RoleBinding", "ClusterRoleBinding"])
def test_role_ref_is_immutable(kind: str) -> None:
    old = binding(kind)
    assert check(kind, old) == []
    new = copy.deepcopy(old)
    new["roleRef"]["name"] = "other"
    [err] = check(kind, new, old)
    assert (err.field, err.type) == ("roleRef", "FieldValueInvalid")
    assert err.message.endswith("cannot change roleRef")
    more = copy.deepcopy(old)
    more["subjects"].append({"kind": "Group", "name": "devs"})
    assert check(kind, more, old) == []


# -- leases, events, reviews --------------------------------------------------------------------


def test_leases() -> None:
    assert check("Lease", {"spec": {"holderIdentity": "a", "leaseDurationSeconds": 15}}) == []
    obj = {"spec": {"leaseDurationSeconds": 0, "leaseTransitions": -1, "preferredHolder": "b"}}
    assert fields("Lease", obj) == [
        ("spec.leaseDurationSeconds", "FieldValueInvalid"),
        ("spec.leaseTransitions", "FieldValueInvalid"),
        ("spec.preferredHolder", "FieldValueForbidden"),
    ]


def test_events_must_match_their_involved_objects_namespace() -> None:
    ok = {"involvedObject": {"kind": "Pod", "name": "p", "namespace": "n"}, "reason": "X"}
    assert check("Event", ok) == []
    bad = {"involvedObject": {"kind": "Pod", "name": "p", "namespace": "other"}}
    [err] = check("Event", bad)
    assert (
        str(err)
        == 'involvedObject.namespace: Invalid value: "other": does not match event.namespace'
    )
    node_event = {
        "metadata": {"name": "e", "namespace": "default"},
        "involvedObject": {"kind": "Node"},
    }
    assert check("Event", node_event) == []


def test_new_style_events_need_reporting_fields() -> None:
    obj = {"eventTime": "2024-01-01T00:00:00.000000Z", "involvedObject": {"namespace": "n"}}
    assert list(dict.fromkeys(fields("Event", obj))) == [
        ("reportingController", "FieldValueRequired"),
        ("reportingController", "FieldValueInvalid"),  # kube also checks "" as a name
        ("reportingInstance", "FieldValueRequired"),
        ("action", "FieldValueRequired"),
        ("reason", "FieldValueRequired"),
    ]


def test_access_reviews() -> None:
    both = {"spec": {"user": "u", "resourceAttributes": {}, "nonResourceAttributes": {}}}
    assert fields("SubjectAccessReview", both) == [("spec.resourceAttributes", "FieldValueInvalid")]
    nobody = {"spec": {"nonResourceAttributes": {"path": "/", "verb": "get"}}}
    assert fields("SubjectAccessReview", nobody) == [("spec.user", "FieldValueInvalid")]
    own = {"spec": {"resourceAttributes": {"verb": "get", "resource": "pods"}}}
    assert check("SelfSubjectAccessReview", own) == []
    local = {
        "metadata": {"namespace": "a"},
        "spec": {"user": "u", "resourceAttributes": {"namespace": "b", "verb": "get"}},
    }
    assert fields("LocalSubjectAccessReview", local) == [
        ("spec.resourceAttributes.namespace", "FieldValueInvalid")
    ]
