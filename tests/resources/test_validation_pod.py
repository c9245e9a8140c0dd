"""Pod rules: containers, ports, resources, volumes, env, probes, tolerations, updates."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from hypernetes.resources import defaults, validation
from hypernetes.resources.registry import BUILTIN

Obj = dict[str, Any]
POD = next(r for r in BUILTIN if r.kind == "Pod")


def pod(*containers: Obj, **spec: Any) -> Obj:
    cs = list(containers) or [{"name": "c", "image": "nginx"}]
    return {"metadata": {"name": "p", "namespace": "ns"}, "spec": {"containers": cs, **spec}}


def check(obj: Obj, old: Obj | None = None) -> list[validation.FieldError]:
    defaults.default(POD, obj)
    result = validation.validate(POD, obj, old=old)
    assert not result.bad_request, result.bad_request
    return result.errors


def fields(obj: Obj, old: Obj | None = None) -> list[tuple[str, str]]:
    return [(e.field, e.type) for e in check(obj, old)]


def test_a_minimal_pod_is_valid() -> None:
    assert check(pod()) == []


def test_at_least_one_container() -> None:
    assert fields(pod(containers=[])) == [("spec.containers", "FieldValueRequired")]


def test_container_names() -> None:
    obj = pod({"image": "x"}, {"name": "Bad_Name", "image": "x"}, {"name": "a", "image": "x"})
    obj["spec"]["initContainers"] = [{"name": "a", "image": "x"}]
    assert fields(obj) == [
        ("spec.containers[0].name", "FieldValueRequired"),
        ("spec.containers[1].name", "FieldValueInvalid"),
        ("spec.initContainers[0].name", "FieldValueDuplicate"),
    ]


def test_image_is_required_and_trimmed() -> None:
    [err] = check(pod({"name": "c"}))
    assert str(err) == "spec.containers[0].image: Required value"
    [err] = check(pod({"name": "c", "image": " nginx"}))
    assert err.message == 'Invalid value: " nginx": must not have leading or trailing whitespace'


def test_enumerations() -> None:
    obj = pod(
        {"name": "c", "image": "x", "imagePullPolicy": "Sometimes"},
        restartPolicy="Maybe",
        dnsPolicy="Google",
    )
    errs = {e.field: e for e in check(obj)}
    assert errs["spec.restartPolicy"].message == (
        'Unsupported value: "Maybe": supported values: "Always", "OnFailure", "Never"'
    )
    assert errs["spec.dnsPolicy"].message == (
        'Unsupported value: "Google": supported values: "ClusterFirstWithHostNet", '
        '"ClusterFirst", "Default", "None"'
    )
    assert errs["spec.containers[0].imagePullPolicy"].type == "FieldValueNotSupported"
    assert fields(pod(dnsPolicy="None")) == [("spec.dnsConfig", "FieldValueRequired")]


def test_ports() -> None:
    ports = [
        {"containerPort": 0},
        {"containerPort": 70000, "protocol": "HTTP"},
        {"containerPort": 80, "name": "web"},
        {"containerPort": 81, "name": "web", "hostPort": 99999},
        {"containerPort": 82, "name": "Web_1"},
    ]
    errs = check(pod({"name": "c", "image": "x", "ports": ports}))
    p = "spec.containers[0].ports"
    assert [(e.field, e.type) for e in errs] == [
        (f"{p}[0].containerPort", "FieldValueRequired"),
        (f"{p}[1].containerPort", "FieldValueInvalid"),
        (f"{p}[1].protocol", "FieldValueNotSupported"),
        (f"{p}[3].name", "FieldValueDuplicate"),
        (f"{p}[3].hostPort", "FieldValueInvalid"),
        (f"{p}[4].name", "FieldValueInvalid"),
    ]
    assert errs[1].message == "Invalid value: 70000: must be between 1 and 65535, inclusive"
    assert errs[2].message == 'Unsupported value: "HTTP": supported values: "SCTP", "TCP", "UDP"'


def resources_errors(resources: Obj) -> list[validation.FieldError]:
    return check(pod({"name": "c", "image": "x", "resources": resources}))


def test_requests_may_not_exceed_limits() -> None:
    [err] = resources_errors({"limits": {"cpu": "1"}, "requests": {"cpu": "1500m"}})
    assert str(err) == (
        'spec.containers[0].resources.requests: Invalid value: "1500m": '
        "must be less than or equal to cpu limit of 1"
    )
    assert resources_errors({"limits": {"memory": "1Gi"}, "requests": {"memory": "1024Mi"}}) == []


def test_resource_quantities_and_names() -> None:
    errs = resources_errors({"requests": {"cpu": "-1", "foo": "1", "pods": "1"}})
    assert [(e.field, e.message.split(": ")[-1]) for e in errs] == [
        ("spec.containers[0].resources.requests[cpu]", "must be greater than or equal to 0"),
        (
            "spec.containers[0].resources.requests[foo]",
            "must be a standard resource type or fully qualified",
        ),
        (
            "spec.containers[0].resources.requests[foo]",
            "must be a standard resource for containers",
        ),
        (
            "spec.containers[0].resources.requests[pods]",
            "must be a standard resource for containers",
        ),
    ]


def test_extended_resources_are_integers_without_overcommit() -> None:
    errs = resources_errors(
        {"limits": {"example.com/gpu": "2"}, "requests": {"example.com/gpu": "1"}}
    )
    assert [e.message for e in errs] == [
        'Invalid value: "1": must be equal to example.com/gpu limit of 2'
    ]
    errs = resources_errors({"requests": {"example.com/gpu": "500m"}})
    assert [(e.field, e.type) for e in errs] == [
        ("spec.containers[0].resources.requests[example.com/gpu]", "FieldValueInvalid"),
        ("spec.containers[0].resources.limits", "FieldValueRequired"),
    ]
    assert errs[0].message.endswith("must be an integer")


def test_volumes_and_mounts() -> None:
    volumes = [
        {"name": "a", "emptyDir": {}},
        {"name": "a", "emptyDir": {}},
        {"name": "Bad", "emptyDir": {}},
        {"name": "two", "emptyDir": {}, "hostPath": {"path": "/x"}},
        {"name": "hp", "hostPath": {}},
        {"name": "cm", "configMap": {"name": "c", "defaultMode": 0o1000}},
    ]
    mounts = [
        {"name": "a", "mountPath": "/a"},
        {"name": "nope", "mountPath": "/a"},
        {"name": "a", "mountPath": ""},
        {"name": "a", "mountPath": "/b", "subPath": "/abs"},
        {"name": "a", "mountPath": "/c", "subPath": "x/../y"},
    ]
    errs = check(pod({"name": "c", "image": "x", "volumeMounts": mounts}, volumes=volumes))
    assert [(e.field, e.type) for e in errs] == [
        ("spec.volumes[1].name", "FieldValueDuplicate"),
        ("spec.volumes[2].name", "FieldValueInvalid"),
        ("spec.volumes[3].hostPath", "FieldValueForbidden"),
        ("spec.volumes[4].hostPath.path", "FieldValueRequired"),
        ("spec.volumes[5].configMap.defaultMode", "FieldValueInvalid"),
        ("spec.containers[0].volumeMounts[1].name", "FieldValueNotFound"),
        ("spec.containers[0].volumeMounts[1].mountPath", "FieldValueInvalid"),
        ("spec.containers[0].volumeMounts[2].mountPath", "FieldValueRequired"),
        ("spec.containers[0].volumeMounts.subPath", "FieldValueInvalid"),
        ("spec.containers[0].volumeMounts.subPath", "FieldValueInvalid"),
    ]
    assert errs[5].message == 'Not found: "nope"'
    assert errs[2].message == "Forbidden: may not specify more than 1 volume type"


def test_a_volume_without_a_source_is_refused_when_not_defaulted() -> None:
    obj = pod(volumes=[{"name": "v"}])
    defaults.default(POD, obj)
    obj["spec"]["volumes"][0].pop("emptyDir")  # defaulting would have chosen emptyDir
    [err] = validation.validate(POD, obj).errors
    assert str(err) == "spec.volumes[0]: Required value: must specify a volume type"


def test_env() -> None:
    env = [
        {"value": "x"},
        {"name": "A=B"},
        {"name": "ok", "value": "v", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
        {"name": "ok2", "valueFrom": {}},
        {"name": "ok3", "valueFrom": {"configMapKeyRef": {"name": "c"}}},
        {"name": "ok4", "valueFrom": {"fieldRef": {"fieldPath": "spec.bogus"}}},
        {"name": "ok5", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
        {"name": "1 fine", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
    ]
    errs = check(pod({"name": "c", "image": "x", "env": env}))
    p = "spec.containers[0].env"
    assert [(e.field, e.type) for e in errs] == [
        (f"{p}[0].name", "FieldValueRequired"),
        (f"{p}[1].name", "FieldValueInvalid"),
        (f"{p}[2].valueFrom", "FieldValueInvalid"),
        (f"{p}[3].valueFrom", "FieldValueInvalid"),
        (f"{p}[4].valueFrom.configMapKeyRef.key", "FieldValueRequired"),
        (f"{p}[5].valueFrom.fieldRef.fieldPath", "FieldValueNotSupported"),
    ]
    assert errs[2].message.endswith("may not be specified when `value` is not empty")


def test_probes() -> None:
    container = {
        "name": "c",
        "image": "x",
        "livenessProbe": {"successThreshold": 2, "exec": {"command": ["true"]}},
        "readinessProbe": {"exec": {"command": ["true"]}, "tcpSocket": {"port": 80}},
        "startupProbe": {"periodSeconds": -1},
    }
    assert fields(pod(container)) == [
        ("spec.containers[0].livenessProbe.successThreshold", "FieldValueInvalid"),
        ("spec.containers[0].readinessProbe.tcpSocket", "FieldValueForbidden"),
        ("spec.containers[0].startupProbe", "FieldValueRequired"),
        ("spec.containers[0].startupProbe.periodSeconds", "FieldValueInvalid"),
    ]
    bad_port = {"name": "c", "image": "x", "readinessProbe": {"httpGet": {"port": 0}}}
    assert fields(pod(bad_port)) == [
        ("spec.containers[0].readinessProbe.httpGet.port", "FieldValueInvalid")
    ]


def test_tolerations() -> None:
    tolerations = [
        {"operator": "Exists"},
        {"key": "k", "operator": "Maybe"},
        {"key": "k", "operator": "Exists", "value": "v"},
        {"operator": "Equal", "value": "v"},
        {"key": "k", "effect": "NoSchedule", "tolerationSeconds": 5},
        {"key": "k", "effect": "Sometimes"},
    ]
    errs = check(pod(tolerations=tolerations))
    assert [(e.field, e.type) for e in errs] == [
        ("spec.tolerations[1].operator", "FieldValueNotSupported"),
        ("spec.tolerations[2].operator", "FieldValueInvalid"),
        ("spec.tolerations[3].operator", "FieldValueInvalid"),
        ("spec.tolerations[4].effect", "FieldValueInvalid"),
        ("spec.tolerations[5].effect", "FieldValueNotSupported"),
    ]


def test_other_spec_fields() -> None:
    obj = pod(
        activeDeadlineSeconds=0,
        serviceAccountName="Bad_SA",
        nodeSelector={"bad key": "v"},
        hostname="a.b",
        terminationGracePeriodSeconds=-1,
        imagePullSecrets=[{}],
    )
    assert fields(obj) == [
        ("spec.terminationGracePeriodSeconds", "FieldValueInvalid"),
        ("spec.activeDeadlineSeconds", "FieldValueInvalid"),
        ("spec.nodeSelector", "FieldValueInvalid"),
        ("spec.serviceAccountName", "FieldValueInvalid"),
        ("spec.hostname", "FieldValueInvalid"),
        ("spec.imagePullSecrets[0].name", "FieldValueRequired"),
    ]


# -- updates ------------------------------------------------------------------------------------


def stored(**spec: Any) -> Obj:
    obj = pod(**spec)
    assert check(obj) == []
    obj["metadata"]["resourceVersion"] = "5"
    return obj


def test_image_activedeadline_and_added_tolerations_may_change() -> None:
    old = stored(activeDeadlineSeconds=100, tolerations=[{"key": "a", "operator": "Exists"}])
    new = copy.deepcopy(old)
    new["spec"]["containers"][0]["image"] = "nginx:2"
    new["spec"]["activeDeadlineSeconds"] = 50
    new["spec"]["tolerations"].append({"key": "b", "operator": "Exists"})
    assert check(new, old) == []


def test_other_spec_changes_are_forbidden() -> None:
    old = stored()
    new = copy.deepcopy(old)
    new["spec"]["containers"][0]["name"] = "renamed"
    [err] = check(new, old)
    assert (err.field, err.type) == ("spec", "FieldValueForbidden")
    assert err.message.startswith(
        "Forbidden: pod updates may not change fields other than `spec.containers[*].image`,"
    )
    assert 'spec.containers[0].name: "c" -> "renamed"' in err.message


def test_removing_tolerations_or_raising_the_deadline_is_refused() -> None:
    old = stored(activeDeadlineSeconds=100, tolerations=[{"key": "a", "operator": "Exists"}])
    new = copy.deepcopy(old)
    new["spec"]["activeDeadlineSeconds"] = 200
    new["spec"]["tolerations"] = []
    errs = check(new, old)
    assert [(e.field, e.type) for e in errs] == [
        ("spec.activeDeadlineSeconds", "FieldValueInvalid"),
        ("spec", "FieldValueForbidden"),
    ]
    assert errs[0].message.endswith("must be less than or equal to previous value")


def test_scheduling_gates_may_only_be_removed() -> None:
    old = stored(schedulingGates=[{"name": "a"}, {"name": "b"}])
    new = copy.deepcopy(old)
    new["spec"]["schedulingGates"] = [{"name": "a"}]
    assert check(new, old) == []
    new["spec"]["schedulingGates"] = [{"name": "a"}, {"name": "c"}]
    assert fields(new, old) == [("spec", "FieldValueForbidden")]


@pytest.mark.parametrize("mode", ["Strict", "Warn"])
def test_status_only_changes_pass(mode: str) -> None:
    old = stored()
    new = copy.deepcopy(old)
    new["status"] = {"phase": "Running", "podIP": "10.0.0.5"}
    defaults.default(POD, new)
    assert validation.validate(POD, new, old=old, field_validation=mode).ok
