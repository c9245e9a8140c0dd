"""Custom objects: validation against a structural schema, pruning and schema defaults."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from hypernetes.resources import crd, defaults, validation
from hypernetes.resources.registry import ResourceType

Obj = dict[str, Any]

SCHEMA: Obj = {
    "type": "object",
    "properties": {
        "metadata": {"type": "object", "properties": {"name": {"type": "string", "maxLength": 20}}},
        "spec": {
            "type": "object",
            "required": ["image"],
            "properties": {
                "image": {"type": "string", "minLength": 1, "pattern": "^[a-z]"},
                "replicas": {"type": "integer", "minimum": 1, "maximum": 10, "default": 1},
                "ratio": {
                    "type": "number",
                    "maximum": 1,
                    "exclusiveMaximum": True,
                    "multipleOf": 0.25,
                },
                "mode": {"type": "string", "enum": ["fast", "safe"], "default": "safe"},
                "when": {"type": "string", "format": "date-time"},
                "nickname": {"type": "string", "nullable": True, "maxLength": 5},
                "port": {"x-kubernetes-int-or-string": True},
                "tags": {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": 3,
                    "items": {"type": "string"},
                    "x-kubernetes-list-type": "set",
                },
                "env": {
                    "type": "array",
                    "x-kubernetes-list-type": "map",
                    "x-kubernetes-list-map-keys": ["name"],
                    "items": {
                        "type": "object",
                        "required": ["name"],
                        "properties": {
                            "name": {"type": "string"},
                            "value": {"type": "string", "default": "unset"},
                        },
                    },
                },
                "labels": {
                    "type": "object",
                    "maxProperties": 2,
                    "additionalProperties": {"type": "string"},
                },
                "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                "template": {
                    "type": "object",
                    "x-kubernetes-embedded-resource": True,
                    "x-kubernetes-preserve-unknown-fields": True,
                },
                "nested": {
                    "type": "object",
                    "default": {},
                    "properties": {
                        "level": {"type": "integer", "default": 3},
                        "deeper": {
                            "type": "object",
                            "properties": {"flag": {"type": "boolean", "default": True}},
                        },
                    },
                },
                "choice": {"type": "string", "anyOf": [{"enum": ["a"]}, {"pattern": "^x"}]},
            },
        },
        "status": {"type": "object", "properties": {"ready": {"type": "boolean"}}},
    },
}
WIDGET = ResourceType(
    "example.com",
    "v1",
    "Widget",
    "widgets",
    True,
    subresources=("status",),
    crd_schema=SCHEMA,
    crd_name="widgets.example.com",
)


def widget(**spec: Any) -> Obj:
    return {
        "apiVersion": "example.com/v1",
        "kind": "Widget",
        "metadata": {"name": "w", "namespace": "n"},
        "spec": {"image": "nginx", **spec},
    }


def run(obj: Obj, mode: str = "Strict") -> validation.Result:
    defaults.default(WIDGET, obj)
    return validation.validate(WIDGET, obj, field_validation=mode)


def errors(obj: Obj) -> list[tuple[str, str, str]]:
    result = run(obj)
    assert not result.bad_request, result.bad_request
    return [(e.field, e.type, e.message) for e in result.errors]


def test_a_valid_object_gets_its_defaults() -> None:
    obj = widget(env=[{"name": "A"}], port="http", template={"apiVersion": "v1", "kind": "Pod"})
    assert errors(obj) == []
    spec = obj["spec"]
    assert spec["replicas"] == 1 and spec["mode"] == "safe"
    assert spec["env"] == [{"name": "A", "value": "unset"}]
    assert spec["nested"] == {"level": 3}  # defaults apply inside a defaulted object too
    assert "deeper" not in spec["nested"]


def test_types_at_depth() -> None:
    obj = widget(replicas="3", tags=["a", 2], env=[{"name": 1}], labels={"x": 1}, port=True)
    assert errors(obj) == [
        (
            "spec.replicas",
            "FieldValueTypeInvalid",
            'Invalid value: "string": spec.replicas in body must be of type integer: "string"',
        ),
        (
            "spec.tags[1]",
            "FieldValueTypeInvalid",
            'Invalid value: "integer": spec.tags[1] in body must be of type string: "integer"',
        ),
        (
            "spec.env[0].name",
            "FieldValueTypeInvalid",
            'Invalid value: "integer": spec.env[0].name in body must be of type string: "integer"',
        ),
        (
            "spec.labels[x]",
            "FieldValueTypeInvalid",
            'Invalid value: "integer": spec.labels[x] in body must be of type string: "integer"',
        ),
        (
            "spec.port",
            "FieldValueTypeInvalid",
            'Invalid value: "boolean": spec.port in body must be of type integer,string: "boolean"',
        ),
    ]


def test_required_and_enum() -> None:
    obj = widget(mode="slow", env=[{"value": "v"}])
    del obj["spec"]["image"]
    assert errors(obj) == [
        ("spec.image", "FieldValueRequired", "Required value"),
        (
            "spec.mode",
            "FieldValueNotSupported",
            'Unsupported value: "slow": supported values: "fast", "safe"',
        ),
        ("spec.env[0].name", "FieldValueRequired", "Required value"),
    ]


@pytest.mark.parametrize(
    ("spec", "field", "kind", "message"),
    [
        (
            {"replicas": 0},
            "spec.replicas",
            "FieldValueInvalid",
            "should be greater than or equal to 1",
        ),
        (
            {"replicas": 11},
            "spec.replicas",
            "FieldValueInvalid",
            "should be less than or equal to 10",
        ),
        (
            {"ratio": 1},
            "spec.ratio",
            "FieldValueInvalid",
            "spec.ratio in body should be less than 1",
        ),
        ({"ratio": 0.3}, "spec.ratio", "FieldValueInvalid", "should be a multiple of 0.25"),
        ({"image": ""}, "spec.image", "FieldValueInvalid", "should be at least 1 chars long"),
        ({"image": "Nginx"}, "spec.image", "FieldValueInvalid", "should match '^[a-z]'"),
        (
            {"nickname": "toolong"},
            "spec.nickname",
            "FieldValueTooLong",
            "may not be more than 5 bytes",
        ),
        (
            {"when": "soon"},
            "spec.when",
            "FieldValueTypeInvalid",
            'must be of type date-time: "soon"',
        ),
        ({"tags": []}, "spec.tags", "FieldValueInvalid", "should have at least 1 items"),
        (
            {"tags": ["a", "b", "c", "d"]},
            "spec.tags",
            "FieldValueTooMany",
            "Too many: 4: must have at most 3 items",
        ),
        ({"tags": ["a", "a"]}, "spec.tags[1]", "FieldValueDuplicate", 'Duplicate value: "a"'),
        (
            {"env": [{"name": "a"}, {"name": "a"}]},
            "spec.env[1]",
            "FieldValueDuplicate",
            '{"name":"a"}',
        ),
        (
            {"labels": {"a": "", "b": "", "c": ""}},
            "spec.labels",
            "FieldValueTooMany",
            "must have at most 2 items",
        ),
        (
            {"choice": "b"},
            "spec.choice",
            "FieldValueInvalid",
            "must validate at least one schema (anyOf)",
        ),
    ],
)
def test_value_rules(spec: Obj, field: str, kind: str, message: str) -> None:
    found = errors(widget(**spec))
    assert {f for f, _, _ in found} == {field}
    assert any(k == kind and message in m for _, k, m in found), found


@pytest.mark.parametrize(
    "good",
    [
        {"ratio": 0.5},
        {"choice": "a"},
        {"choice": "xyz"},
        {"port": 8080},
        {"when": "2024-05-01T10:00:00Z"},
    ],
)
def test_values_that_pass(good: Obj) -> None:
    assert errors(widget(**good)) == []


def test_nulls() -> None:
    obj = widget(nickname=None, replicas=None)
    assert errors(obj) == []
    assert obj["spec"]["nickname"] is None  # nullable: kept
    assert obj["spec"]["replicas"] == 1  # not nullable: pruned, then defaulted


def test_embedded_resources() -> None:
    obj = widget(template={"metadata": {"name": "Bad_Name", "bogus": 1}, "spec": {"anything": 1}})
    result = run(obj, "Warn")
    assert result.warnings == ['unknown field "spec.template.metadata.bogus"']
    assert [(e.field, e.type) for e in result.errors] == [
        ("spec.template.apiVersion", "FieldValueRequired"),
        ("spec.template.kind", "FieldValueRequired"),
        ("spec.template.metadata.name", "FieldValueInvalid"),
    ]
    assert obj["spec"]["template"]["spec"] == {"anything": 1}  # preserved
    assert "bogus" not in obj["spec"]["template"]["metadata"]


def test_object_metadata() -> None:
    long_name = widget()
    long_name["metadata"]["name"] = "a" * 21
    assert errors(long_name) == [
        ("metadata.name", "FieldValueTooLong", "Too long: may not be more than 20 bytes")
    ]
    bad = widget()
    bad["metadata"]["name"] = "Bad_Name"
    assert [e[:2] for e in errors(bad)] == [("metadata.name", "FieldValueInvalid")]
    wrong_type = widget()
    wrong_type["metadata"]["labels"] = {"a": 1}
    result = run(wrong_type)
    assert result.bad_request == [
        'Widget in version "v1" cannot be handled as a Widget: json: cannot unmarshal number '
        "into Go struct field ObjectMeta.metadata.labels of type string"
    ]


def with_unknown_fields() -> Obj:
    obj = widget(foo=1, env=[{"name": "a", "typo": 2}], extra={"free": {"form": True}})
    obj["metadata"]["bogus"] = 1
    obj["status"] = {"ready": True, "phase": "x"}
    obj["top"] = 1
    return obj


def test_unknown_fields_strict() -> None:
    obj = with_unknown_fields()
    result = run(obj, "Strict")
    assert result.bad_request == [
        'Widget in version "v1" cannot be handled as a Widget: strict decoding error: '
        'unknown field "metadata.bogus", unknown field "spec.foo", '
        'unknown field "spec.env[0].typo", unknown field "status.phase", unknown field "top"'
    ]
    assert obj["top"] == 1


def test_unknown_fields_warn_and_ignore() -> None:
    obj = with_unknown_fields()
    result = run(obj, "Warn")
    assert result.ok
    assert result.warnings == [
        'unknown field "metadata.bogus"',
        'unknown field "spec.foo"',
        'unknown field "spec.env[0].typo"',
        'unknown field "status.phase"',
        'unknown field "top"',
    ]
    assert "top" not in obj and "foo" not in obj["spec"] and "bogus" not in obj["metadata"]
    assert obj["spec"]["extra"] == {"free": {"form": True}}  # x-kubernetes-preserve-unknown-fields
    assert obj["status"] == {"ready": True}
    quiet = with_unknown_fields()
    result = run(quiet, "Ignore")
    assert result.ok and result.warnings == [] and "top" not in quiet


def test_prune_reports_what_it_removed() -> None:
    obj = with_unknown_fields()
    removed = crd.prune(WIDGET, obj)
    assert removed == ["metadata.bogus", "spec.foo", "spec.env[0].typo", "status.phase", "top"]
    assert "top" not in obj and obj["apiVersion"] == "example.com/v1"
    assert crd.prune(WIDGET, obj) == []


def test_defaults_in_maps_and_lists() -> None:
    schema = {
        "type": "object",
        "properties": {
            "spec": {
                "type": "object",
                "properties": {
                    "byName": {
                        "type": "object",
                        "additionalProperties": {
                            "type": "object",
                            "default": {"on": False},
                            "properties": {
                                "on": {"type": "boolean"},
                                "n": {"type": "integer", "default": 7},
                            },
                        },
                    },
                    "list": {"type": "array", "items": {"type": "string", "default": "x"}},
                },
            }
        },
    }
    rt = ResourceType("example.com", "v1", "Thing", "things", False, crd_schema=schema)
    obj: Obj = {"spec": {"byName": {"a": None, "b": {}}, "list": ["y", None]}}
    crd.default_custom(rt, obj)
    assert obj["spec"] == {
        "byName": {"a": {"on": False, "n": 7}, "b": {"n": 7}},
        "list": ["y", "x"],
    }


def test_status_message_uses_the_group_qualified_kind() -> None:
    result = run(widget(replicas=50))
    assert validation.message(WIDGET, "w", result.errors) == (
        'Widget.example.com "w" is invalid: spec.replicas: Invalid value: 50: '
        "spec.replicas in body should be less than or equal to 10"
    )


def test_a_schema_less_kind_preserves_everything() -> None:
    rt = crd.resource_types(
        {
            "metadata": {"name": "things.example.com"},
            "spec": {
                "group": "example.com",
                "scope": "Cluster",
                "names": {"plural": "things", "kind": "Thing"},
                "versions": [{"name": "v1", "served": True, "storage": True}],
            },
        }
    )[0]
    obj = {"metadata": {"name": "t"}, "anything": {"goes": [1, 2]}}
    before = copy.deepcopy(obj)
    assert validation.validate(rt, obj).ok
    assert obj == before


def test_duplicate_fields_in_custom_objects() -> None:
    strict = validation.validate(WIDGET, widget(), duplicates=["spec.image"])
    assert strict.bad_request == [
        'Widget in version "v1" cannot be handled as a Widget: strict decoding error: '
        'duplicate field "spec.image"'
    ]
    warn = validation.validate(WIDGET, widget(), field_validation="Warn", duplicates=["spec.image"])
    assert warn.ok and warn.warnings == ['duplicate field "spec.image"']
