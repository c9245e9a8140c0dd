"""Stage one of validation: decoding along the schema (400s), unknown fields, normalization."""

from __future__ import annotations

import copy
from typing import Any

import kubernetes_validate
import pytest

from hypernetes.resources import defaults, validation
from hypernetes.resources.registry import BUILTIN, ResourceType

Obj = dict[str, Any]


def rt(kind: str) -> ResourceType:
    return next(r for r in BUILTIN if r.kind == kind)


def pod(**spec: Any) -> Obj:
    containers = [{"name": "c", "image": "nginx:1.27"}]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p", "namespace": "ns"},
        "spec": {"containers": containers, **spec},
    }


def prepared(kind: str, obj: Obj, mode: str = "Strict") -> validation.Result:
    defaults.default(rt(kind), obj)
    return validation.validate(rt(kind), obj, field_validation=mode)


# -- wrong JSON types ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (
            lambda o: o["spec"].update(containers="x"),
            "json: cannot unmarshal string into Go struct field PodSpec.spec.containers of "
            "type []v1.Container",
        ),
        (
            lambda o: o["spec"]["containers"][0].update(ports=[{"containerPort": "80"}]),
            "json: cannot unmarshal string into Go struct field "
            "ContainerPort.spec.containers.ports.containerPort of type int32",
        ),
        (
            lambda o: o["spec"]["containers"][0].update(ports=[{"containerPort": 1.5}]),
            "json: cannot unmarshal number 1.5 into Go struct field "
            "ContainerPort.spec.containers.ports.containerPort of type int32",
        ),
        (
            lambda o: o["spec"]["containers"][0].update(ports=[{"containerPort": 2**31}]),
            "json: cannot unmarshal number 2147483648 into Go struct field "
            "ContainerPort.spec.containers.ports.containerPort of type int32",
        ),
        (
            lambda o: o["metadata"].update(labels={"a": 1}),
            "json: cannot unmarshal number into Go struct field ObjectMeta.metadata.labels of "
            "type string",
        ),
        (
            lambda o: o["spec"].update(hostNetwork="yes"),
            "json: cannot unmarshal string into Go struct field PodSpec.spec.hostNetwork of "
            "type bool",
        ),
        (
            lambda o: o["spec"].update(nodeSelector=["a"]),
            "json: cannot unmarshal array into Go struct field PodSpec.spec.nodeSelector of "
            "type map[string]string",
        ),
        (
            lambda o: o.update(spec=[]),
            "json: cannot unmarshal array into Go struct field Pod.spec of type v1.PodSpec",
        ),
        (
            lambda o: o["spec"]["containers"][0].update(resources={"limits": {"cpu": "lots"}}),
            "quantities must match the regular expression "
            "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'",
        ),
        (
            lambda o: o["spec"]["containers"][0].update(resources={"limits": {"cpu": True}}),
            "quantities must match the regular expression",
        ),
        (
            lambda o: o["spec"]["containers"][0].update(livenessProbe={"httpGet": {"port": True}}),
            "json: cannot unmarshal bool into Go struct field "
            "HTTPGetAction.spec.containers.livenessProbe.httpGet.port of type intstr.IntOrString",
        ),
        (
            lambda o: o["metadata"].update(creationTimestamp="yesterday"),
            'parsing time "yesterday" as "2006-01-02T15:04:05Z07:00"',
        ),
    ],
)
def test_wrong_types_are_bad_requests(mutate: Any, expected: str) -> None:
    obj = pod()
    mutate(obj)
    before = copy.deepcopy(obj)
    result = validation.validate(rt("Pod"), obj)
    assert len(result.bad_request) == 1
    assert result.bad_request[0].startswith('Pod in version "v1" cannot be handled as a Pod: ')
    assert expected in result.bad_request[0]
    assert result.errors == []
    assert obj == before  # nothing is normalized when the object is refused


def test_only_the_first_type_error_is_reported_as_go_does() -> None:
    obj = pod(hostNetwork="yes", hostPID="no")
    [msg] = validation.validate(rt("Pod"), obj).bad_request
    assert "spec.hostNetwork" in msg and "hostPID" not in msg


def test_secret_data_must_be_base64() -> None:
    obj = {"metadata": {"name": "s", "namespace": "n"}, "data": {"k": "not base64!"}}
    [msg] = validation.validate(rt("Secret"), obj).bad_request
    assert msg == (
        'Secret in version "v1" cannot be handled as a Secret: illegal base64 data at input byte 3'
    )
    obj = {"metadata": {"name": "s", "namespace": "n"}, "data": {"k": "YWJj"}}
    assert validation.validate(rt("Secret"), obj).ok


def test_deployment_int_or_string_and_replicas() -> None:
    obj = {"metadata": {"name": "d", "namespace": "n"}, "spec": {"replicas": "3"}}
    [msg] = validation.validate(rt("Deployment"), obj).bad_request
    assert msg == (
        'Deployment in version "v1" cannot be handled as a Deployment: json: cannot unmarshal '
        "string into Go struct field DeploymentSpec.spec.replicas of type int32"
    )


# -- unknown fields -----------------------------------------------------------------------------


def pod_with_unknown_fields() -> Obj:
    obj = pod(foo=1)
    obj["spec"]["containers"][0]["imagee"] = "typo"
    obj["spec"]["template"] = {}
    obj["metadata"]["bogus"] = True
    obj["extra"] = 1
    return obj


def test_strict_reports_all_unknown_fields_in_one_message() -> None:
    obj = pod_with_unknown_fields()
    result = prepared("Pod", obj, "Strict")
    assert result.bad_request == [
        'Pod in version "v1" cannot be handled as a Pod: strict decoding error: '
        'unknown field "metadata.bogus", unknown field "spec.containers[0].imagee", '
        'unknown field "spec.foo", unknown field "spec.template", unknown field "extra"'
    ]
    assert result.warnings == [] and result.errors == []
    assert "extra" in obj  # a refused object is left as it was


def test_warn_prunes_and_warns() -> None:
    obj = pod_with_unknown_fields()
    result = prepared("Pod", obj, "Warn")
    assert result.ok
    assert result.warnings == [  # in document order
        'unknown field "metadata.bogus"',
        'unknown field "spec.containers[0].imagee"',
        'unknown field "spec.foo"',
        'unknown field "spec.template"',
        'unknown field "extra"',
    ]
    assert "extra" not in obj and "bogus" not in obj["metadata"]
    assert "foo" not in obj["spec"] and "imagee" not in obj["spec"]["containers"][0]


def test_ignore_prunes_silently() -> None:
    obj = pod_with_unknown_fields()
    result = prepared("Pod", obj, "Ignore")
    assert result.ok and result.warnings == []
    assert "extra" not in obj and "foo" not in obj["spec"]


def test_unknown_fields_deep_in_a_deployment_template() -> None:
    obj = {
        "metadata": {"name": "d", "namespace": "n"},
        "spec": {
            "selector": {"matchLabels": {"a": "b"}},
            "template": {
                "metadata": {"labels": {"a": "b"}},
                "spec": {"containers": [{"name": "c", "image": "x", "imagee": "y"}]},
            },
        },
    }
    result = prepared("Deployment", obj)
    assert result.bad_request == [
        'Deployment in version "v1" cannot be handled as a Deployment: strict decoding error: '
        'unknown field "spec.template.spec.containers[0].imagee"'
    ]


def test_unknown_fields_do_not_hide_semantic_errors_in_warn_mode() -> None:
    obj = pod(foo=1)
    obj["spec"]["containers"][0]["image"] = ""
    result = prepared("Pod", obj, "Warn")
    assert result.warnings == ['unknown field "spec.foo"']
    assert [(e.field, e.type) for e in result.errors] == [
        ("spec.containers[0].image", "FieldValueRequired")
    ]


# -- normalization ------------------------------------------------------------------------------


def test_quantities_are_canonical_and_rounded_to_milli() -> None:
    obj = pod()
    obj["spec"]["containers"][0]["resources"] = {
        "limits": {"cpu": 2, "memory": "1024Mi"},
        "requests": {"cpu": "0.5", "memory": "0.1m", "ephemeral-storage": "1.5Gi"},
    }
    assert prepared("Pod", obj).ok
    resources = obj["spec"]["containers"][0]["resources"]
    assert resources["limits"] == {"cpu": "2", "memory": "1Gi"}
    assert resources["requests"] == {"cpu": "500m", "memory": "1m", "ephemeral-storage": "1536Mi"}


def test_nulls_are_dropped_and_null_items_become_zero_values() -> None:
    obj = pod(nodeName=None, nodeSelector={"a": None})
    obj["spec"]["containers"][0]["args"] = ["x", None]
    assert prepared("Pod", obj).ok
    assert "nodeName" not in obj["spec"]
    assert obj["spec"]["nodeSelector"] == {"a": ""}
    assert obj["spec"]["containers"][0]["args"] == ["x", ""]


def test_integral_floats_become_integers() -> None:
    obj = pod(terminationGracePeriodSeconds=10.0)
    assert prepared("Pod", obj).ok
    assert obj["spec"]["terminationGracePeriodSeconds"] == 10
    assert isinstance(obj["spec"]["terminationGracePeriodSeconds"], int)


def test_free_form_fields_are_kept() -> None:
    obj = pod()
    obj["metadata"]["managedFields"] = [
        {
            "manager": "m",
            "operation": "Update",
            "fieldsType": "FieldsV1",
            "fieldsV1": {"f:spec": {"f:anything": {}}},
        }
    ]
    assert prepared("Pod", obj).ok
    assert obj["metadata"]["managedFields"][0]["fieldsV1"] == {"f:spec": {"f:anything": {}}}


def test_kinds_without_a_schema_are_accepted_as_they_are() -> None:
    bare = ResourceType("example.com", "v1", "Thing", "things", True)
    assert validation.validate(bare, {"anything": 1}).ok


@pytest.mark.parametrize("kind", ["Pod", "Deployment", "Service", "Namespace", "Secret"])
def test_defaulted_objects_pass_an_independent_schema_check(kind: str) -> None:
    """kubernetes-validate's jsonschema check, strict, on what we would store."""
    objects: dict[str, Obj] = {
        "Pod": pod(),
        "Deployment": {
            "metadata": {"name": "d", "namespace": "n"},
            "spec": {
                "selector": {"matchLabels": {"a": "b"}},
                "template": {"metadata": {"labels": {"a": "b"}}, "spec": pod()["spec"]},
            },
        },
        "Service": {
            "metadata": {"name": "s", "namespace": "n"},
            "spec": {"ports": [{"port": 80}], "selector": {"a": "b"}},
        },
        "Namespace": {"metadata": {"name": "n"}},
        "Secret": {"metadata": {"name": "s", "namespace": "n"}, "stringData": {"a": "b"}},
    }
    obj = objects[kind]
    obj.update(apiVersion=rt(kind).api_version, kind=kind)
    assert prepared(kind, obj).ok
    assert kubernetes_validate.validate(obj, "1.32.0", strict=True) == "1.32"


# -- duplicate fields ---------------------------------------------------------------------------

DUPLICATED = (
    '{"metadata": {"name": "p", "namespace": "ns", "name": "q"}, '
    '"spec": {"containers": [{"name": "c", "image": "a", "image": "nginx"}]}}'
)


def test_load_json_reports_duplicate_paths_and_keeps_the_last() -> None:
    value, duplicates = validation.load_json(DUPLICATED)
    assert duplicates == ["metadata.name", "spec.containers[0].image"]
    assert value["metadata"]["name"] == "q"
    assert value["spec"]["containers"][0]["image"] == "nginx"
    assert type(value["metadata"]) is dict  # plain dicts, nothing of the parser leaks
    assert validation.load_json(b'[{"a": 1}]') == ([{"a": 1}], [])
    with pytest.raises(ValueError):
        validation.load_json('{"a": ')


@pytest.mark.parametrize("mode", ["Strict", "Warn", "Ignore"])
def test_duplicates_follow_the_field_validation_mode(mode: str) -> None:
    obj, duplicates = validation.load_json(DUPLICATED)
    obj["spec"]["bogus"] = 1
    defaults.default(rt("Pod"), obj)
    result = validation.validate(rt("Pod"), obj, field_validation=mode, duplicates=duplicates)
    problems = [
        'unknown field "spec.bogus"',
        'duplicate field "metadata.name"',
        'duplicate field "spec.containers[0].image"',
    ]
    if mode == "Strict":
        assert result.bad_request == [
            'Pod in version "v1" cannot be handled as a Pod: strict decoding error: '
            + ", ".join(problems)
        ]
    else:
        assert result.ok
        assert result.warnings == (problems if mode == "Warn" else [])
