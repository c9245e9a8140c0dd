"""Object metadata rules, field-error rendering and kube's Status message."""

from __future__ import annotations

from typing import Any

import pytest

from hypernetes.resources import defaults, validation
from hypernetes.resources.registry import BUILTIN, ResourceType

Obj = dict[str, Any]


def rt(kind: str) -> ResourceType:
    return next(r for r in BUILTIN if r.kind == kind)


def errors(kind: str, meta: Obj, **body: Any) -> list[tuple[str, str]]:
    obj = {"metadata": meta, **body}
    defaults.default(rt(kind), obj)
    result = validation.validate(rt(kind), obj)
    assert not result.bad_request, result.bad_request
    return [(e.field, e.type) for e in result.errors]


def cm_errors(meta: Obj) -> list[validation.FieldError]:
    obj = {"metadata": {"namespace": "n", **meta}}
    result = validation.validate(rt("ConfigMap"), obj)
    assert not result.bad_request
    return result.errors


def test_name_is_required_unless_generated() -> None:
    [err] = cm_errors({})
    assert (err.field, err.type) == ("metadata.name", "FieldValueRequired")
    assert err.message == "Required value: name or generateName is required"
    [err] = cm_errors({"generateName": "Bad_", "name": "bad-x1"})
    assert (err.field, err.type) == ("metadata.generateName", "FieldValueInvalid")


def test_names_follow_the_kinds_rule() -> None:
    assert errors("ConfigMap", {"name": "a.b", "namespace": "n"}) == []
    assert errors("Namespace", {"name": "a.b"}) == [("metadata.name", "FieldValueInvalid")]
    service = {"spec": {"ports": [{"port": 80}]}}
    assert errors("Service", {"name": "1abc", "namespace": "n"}, **service) == [
        ("metadata.name", "FieldValueInvalid")
    ]
    assert errors("Service", {"name": "abc", "namespace": "n"}, **service) == []
    role = {"rules": []}
    assert errors("Role", {"name": "system:Weird Name", "namespace": "n"}, **role) == []
    assert errors("Role", {"name": "a/b", "namespace": "n"}, **role) == [
        ("metadata.name", "FieldValueInvalid")
    ]


def test_namespace_rules_per_scope() -> None:
    [err] = cm_errors({"name": "c", "namespace": ""})
    assert (err.field, err.type) == ("metadata.namespace", "FieldValueRequired")
    assert errors("Node", {"name": "n", "namespace": "x"}) == [
        ("metadata.namespace", "FieldValueForbidden")
    ]


def test_label_errors_name_the_labels_field() -> None:
    errs = cm_errors({"name": "c", "labels": {"bad key!": "v", "ok": "-bad value"}})
    assert [(e.field, e.type, e.value) for e in errs] == [
        ("metadata.labels", "FieldValueInvalid", "bad key!"),
        ("metadata.labels", "FieldValueInvalid", "-bad value"),
    ]
    assert errs[0].message.startswith('Invalid value: "bad key!": name part must consist of')


def test_annotations_keys_and_total_size() -> None:
    [err] = cm_errors({"name": "c", "annotations": {"Example.com/Key": "ok", "a b": "x"}})
    assert (err.field, err.value) == ("metadata.annotations", "a b")
    [err] = cm_errors({"name": "c", "annotations": {"big": "x" * (256 * 1024)}})
    assert (err.field, err.type) == ("metadata.annotations", "FieldValueTooLong")
    assert err.message == "Too long: may not be more than 262144 bytes"
    assert cm_errors({"name": "c", "annotations": {"big": "x" * (256 * 1024 - 3)}}) == []


def test_owner_references_and_finalizers() -> None:
    refs = [
        {"apiVersion": "", "kind": "", "name": "a", "uid": "1"},
        {"apiVersion": "v1", "kind": "K", "name": "b", "uid": "2", "controller": True},
        {"apiVersion": "v1", "kind": "K", "name": "c", "uid": "3", "controller": True},
    ]
    errs = cm_errors({"name": "c", "ownerReferences": refs, "finalizers": ["a/b", "Bad Name"]})
    assert [(e.field, e.type) for e in errs] == [
        ("metadata.ownerReferences.apiVersion", "FieldValueInvalid"),
        ("metadata.ownerReferences.kind", "FieldValueInvalid"),
        ("metadata.ownerReferences", "FieldValueInvalid"),
        ("metadata.finalizers[1]", "FieldValueInvalid"),
    ]
    assert "Only one reference can have Controller set to true" in errs[2].message


def test_undomained_finalizers_warn() -> None:
    obj = {"metadata": {"name": "c", "namespace": "n", "finalizers": ["mine", "x.io/ok"]}}
    result = validation.validate(rt("ConfigMap"), obj)
    assert result.ok
    assert result.warnings == [
        'metadata.finalizers: "mine": prefer a domain-qualified finalizer name to avoid '
        "accidental conflicts with other finalizer writers"
    ]


def test_negative_generation() -> None:
    [err] = cm_errors({"name": "c", "generation": -1})
    assert (err.field, err.message) == (
        "metadata.generation",
        "Invalid value: -1: must be greater than or equal to 0",
    )


@pytest.mark.parametrize(
    ("error", "text"),
    [
        (validation.required("a.b"), "a.b: Required value"),
        (validation.required("a", "why"), "a: Required value: why"),
        (validation.invalid("a", "x", "bad"), 'a: Invalid value: "x": bad'),
        (validation.invalid("a", 3, "bad"), "a: Invalid value: 3: bad"),
        (validation.invalid("a", True, "bad"), "a: Invalid value: true: bad"),
        (validation.invalid("a", {"k": "v"}, "bad"), 'a: Invalid value: {"k":"v"}: bad'),
        (validation.invalid("a", None, "bad"), "a: Invalid value: null: bad"),
        (
            validation.not_supported("a", "x", ("B", "C")),
            'a: Unsupported value: "x": supported values: "B", "C"',
        ),
        (validation.duplicate("a", "x"), 'a: Duplicate value: "x"'),
        (validation.not_found("a", "x"), 'a: Not found: "x"'),
        (validation.forbidden("a", "no"), "a: Forbidden: no"),
        (validation.too_long("a", 5), "a: Too long: may not be more than 5 bytes"),
        (validation.too_many("a", 4, 3), "a: Too many: 4: must have at most 3 items"),
    ],
)
def test_field_error_rendering(error: validation.FieldError, text: str) -> None:
    assert str(error) == text


def test_status_message() -> None:
    one = [validation.required("spec.containers[0].image")]
    assert (
        validation.message("Pod", "x", one)
        == 'Pod "x" is invalid: spec.containers[0].image: Required value'
    )
    two = [*one, validation.required("spec.x"), validation.required("spec.x")]
    assert validation.message(rt("Deployment"), "web", two) == (
        'Deployment.apps "web" is invalid: '
        "[spec.containers[0].image: Required value, spec.x: Required value]"
    )
    assert validation.qualified_kind(rt("Pod")) == "Pod"
