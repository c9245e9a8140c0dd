"""CustomResourceDefinition objects: defaults, validation, structural schemas, served types."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from hypernetes.resources import crd, defaults, validation
from hypernetes.resources.registry import BUILTIN

Obj = dict[str, Any]
CRD = next(r for r in BUILTIN if r.kind == "CustomResourceDefinition")
ROOT = "spec.versions[0].schema.openAPIV3Schema"


def schema(**props: Any) -> Obj:
    return {"type": "object", "properties": props or {"spec": {"type": "object"}}}


def definition(group: str = "example.com", **spec: Any) -> Obj:
    base: Obj = {
        "group": group,
        "scope": "Namespaced",
        "names": {"plural": "widgets", "kind": "Widget", "shortNames": ["wd"]},
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "schema": {"openAPIV3Schema": schema()},
            }
        ],
    }
    base.update(spec)
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"widgets.{group}"},
        "spec": base,
    }


def check(obj: Obj, old: Obj | None = None) -> list[validation.FieldError]:
    defaults.default(CRD, obj)
    result = validation.validate(CRD, obj, old=old)
    assert not result.bad_request, result.bad_request
    return result.errors


def fields(obj: Obj, old: Obj | None = None) -> list[tuple[str, str]]:
    return [(e.field, e.type) for e in check(obj, old)]


def with_schema(root: Obj) -> Obj:
    obj = definition()
    obj["spec"]["versions"][0]["schema"]["openAPIV3Schema"] = root
    return obj


def test_defaults_and_a_valid_definition() -> None:
    obj = definition()
    assert check(obj) == []
    assert obj["spec"]["names"]["singular"] == "widget"
    assert obj["spec"]["names"]["listKind"] == "WidgetList"
    assert obj["spec"]["conversion"] == {"strategy": "None"}


def test_name_must_be_plural_dot_group() -> None:
    obj = definition()
    obj["metadata"]["name"] = "gadgets.example.com"
    [err] = check(obj)
    assert str(err) == (
        'metadata.name: Invalid value: "gadgets.example.com": '
        'must be spec.names.plural+"."+spec.group'
    )


def test_group_and_scope() -> None:
    assert fields(definition(group="example")) == [("spec.group", "FieldValueInvalid")]
    obj = definition(scope="Global")
    [err] = check(obj)
    assert err.message == 'Unsupported value: "Global": supported values: "Cluster", "Namespaced"'
    obj = definition()
    del obj["spec"]["scope"]
    assert fields(obj) == [("spec.scope", "FieldValueRequired")]


def test_names() -> None:
    obj = definition()
    obj["spec"]["names"] = {
        "plural": "Widgets",
        "kind": "widget_kind",
        "listKind": "widget_kind",
        "shortNames": ["ok", "Not-OK"],
        "categories": ["all", "1bad"],
    }
    obj["metadata"]["name"] = "Widgets.example.com"
    assert fields(obj) == [
        ("metadata.name", "FieldValueInvalid"),
        ("spec.names.plural", "FieldValueInvalid"),
        ("spec.names.singular", "FieldValueInvalid"),  # defaulted from the kind
        ("spec.names.kind", "FieldValueInvalid"),
        ("spec.names.listKind", "FieldValueInvalid"),
        ("spec.names.shortNames[1]", "FieldValueInvalid"),
        ("spec.names.categories[1]", "FieldValueInvalid"),
        ("spec.names.listKind", "FieldValueInvalid"),
    ]
    obj = definition()
    obj["spec"]["names"] = {}
    obj["metadata"]["name"] = ".example.com"
    assert ("spec.names.plural", "FieldValueRequired") in fields(obj)
    assert ("spec.names.kind", "FieldValueRequired") in fields(obj)


def test_versions() -> None:
    v1 = definition()["spec"]["versions"][0]
    two_storage = definition(versions=[v1, {**v1, "name": "v2"}])
    [err] = check(two_storage)
    assert str(err) == (
        'spec.versions: Invalid value: ["v1","v2"]: '
        "must have exactly one version marked as storage version"
    )
    no_storage = definition(versions=[{**v1, "storage": False}])
    assert fields(no_storage) == [("spec.versions", "FieldValueInvalid")]
    duplicate = definition(versions=[v1, {**v1, "storage": False}])
    assert check(duplicate)[0].message.endswith("must contain unique version names")
    bad_name = definition(versions=[{**v1, "name": "V1"}])
    assert fields(bad_name) == [("spec.versions[0].name", "FieldValueInvalid")]
    no_schema = definition(versions=[{k: x for k, x in v1.items() if k != "schema"}])
    [err] = check(no_schema)
    assert str(err) == f"{ROOT}: Required value: schemas are required"


def test_subresources_and_columns() -> None:
    obj = definition()
    version = obj["spec"]["versions"][0]
    version["subresources"] = {"status": {}, "scale": {"specReplicasPath": ".status.x"}}
    version["additionalPrinterColumns"] = [
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
        {"type": "thing", "format": "weird", "jsonPath": "spec"},
    ]
    p = "spec.versions[0]"
    assert fields(obj) == [
        (f"{p}.subresources.scale.specReplicasPath", "FieldValueInvalid"),
        (f"{p}.subresources.scale.statusReplicasPath", "FieldValueRequired"),
        (f"{p}.additionalPrinterColumns[1].name", "FieldValueRequired"),
        (f"{p}.additionalPrinterColumns[1].type", "FieldValueInvalid"),
        (f"{p}.additionalPrinterColumns[1].format", "FieldValueInvalid"),
        (f"{p}.additionalPrinterColumns[1].jsonPath", "FieldValueInvalid"),
    ]


def test_conversion_and_preserve_unknown_fields() -> None:
    obj = definition(conversion={"strategy": "Webhook"}, preserveUnknownFields=True)
    assert fields(obj) == [
        ("spec.preserveUnknownFields", "FieldValueInvalid"),
        ("spec.conversion.webhook", "FieldValueRequired"),
    ]


# -- structural schemas -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("root", "expected"),
    [
        (
            {"type": "object", "properties": {"spec": {"properties": {}}}},
            [
                (
                    f"{ROOT}.properties[spec].type",
                    "Required value: must not be empty for specified object fields",
                )
            ],
        ),
        (
            {"type": "object", "properties": {"l": {"type": "array", "items": {}}}},
            [
                (
                    f"{ROOT}.properties[l].items.type",
                    "Required value: must not be empty for specified array items",
                )
            ],
        ),
        ({"properties": {}}, [(f"{ROOT}.type", "Required value: must not be empty at the root")]),
        (
            {"type": "string"},
            [(f"{ROOT}.type", 'Invalid value: "string": must be object at the root')],
        ),
        (
            {"type": "object", "properties": {"l": {"type": "array"}}},
            [(f"{ROOT}.properties[l].items", "Required value: must be specified")],
        ),
        (
            {"type": "object", "additionalProperties": {"type": "string"}},
            [(f"{ROOT}.additionalProperties", "Forbidden: must not be used at the root")],
        ),
        (
            {
                "type": "object",
                "properties": {
                    "metadata": {"type": "object", "properties": {"labels": {"type": "object"}}}
                },
            },
            [
                (
                    f"{ROOT}.properties[metadata]",
                    "Forbidden: must not specify anything other than name and generateName, but "
                    "metadata is implicitly specified",
                )
            ],
        ),
        (
            {"type": "object", "properties": {"x": {"type": "object", "$ref": "#/y"}}},
            [(f"{ROOT}.properties[x].$ref", "Forbidden: $ref is not supported")],
        ),
        (
            {"type": "object", "properties": {"x": {"type": "null"}}},
            [(f"{ROOT}.properties[x].type", "Forbidden: type cannot be set to null")],
        ),
        (
            {"type": "object", "properties": {"x": {"type": "string", "pattern": "("}}},
            [(f"{ROOT}.properties[x].pattern", "Invalid value")],
        ),
        (
            {
                "type": "object",
                "properties": {"x": {"type": "object", "x-kubernetes-embedded-resource": True}},
            },
            [
                (
                    f"{ROOT}.properties[x].properties",
                    "Required value: must not be empty if x-kubernetes-embedded-resource is true "
                    "without x-kubernetes-preserve-unknown-fields",
                )
            ],
        ),
        (
            {
                "type": "object",
                "properties": {
                    "x": {"type": "string", "anyOf": [{"type": "string", "description": "d"}]}
                },
            },
            [
                (
                    f"{ROOT}.properties[x].anyOf[0].type",
                    "Forbidden: must be empty to be structural",
                ),
                (
                    f"{ROOT}.properties[x].anyOf[0].description",
                    "Forbidden: must be empty to be structural",
                ),
            ],
        ),
        (
            {
                "type": "object",
                "properties": {
                    "x": {
                        "type": "object",
                        "properties": {"a": {"type": "string"}},
                        "additionalProperties": {"type": "string"},
                    }
                },
            },
            [
                (
                    f"{ROOT}.properties[x].additionalProperties",
                    "Forbidden: additionalProperties and properties are mutual exclusive",
                )
            ],
        ),
        (
            {"type": "object", "properties": {"x": {"type": "integer", "default": "three"}}},
            [(f"{ROOT}.properties[x].default", "Invalid value")],
        ),
        (
            {
                "type": "object",
                "properties": {
                    "x": {
                        "type": "object",
                        "properties": {"a": {"type": "string"}},
                        "default": {"b": 1},
                    }
                },
            },
            [(f"{ROOT}.properties[x].default", "Invalid value")],
        ),
        (
            {
                "type": "object",
                "properties": {
                    "x": {"type": "boolean", "x-kubernetes-preserve-unknown-fields": False}
                },
            },
            [
                (
                    f"{ROOT}.properties[x].x-kubernetes-preserve-unknown-fields",
                    "Invalid value: false: must be true or undefined",
                )
            ],
        ),
        (
            {
                "type": "object",
                "properties": {
                    "x": {"type": "array", "items": {"type": "string"}, "uniqueItems": True}
                },
            },
            [(f"{ROOT}.properties[x].uniqueItems", "Forbidden")],
        ),
    ],
)
def test_structural_schema_rules(root: Obj, expected: list[tuple[str, str]]) -> None:
    errs = check(with_schema(root))
    assert [
        (e.field, e.message[: len(m)]) for e, (_, m) in zip(errs, expected, strict=False)
    ] == expected
    assert len(errs) == len(expected)


@pytest.mark.parametrize(
    "root",
    [
        {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
        {
            "type": "object",
            "properties": {
                "metadata": {
                    "type": "object",
                    "properties": {"name": {"type": "string", "maxLength": 10}},
                },
                "spec": {
                    "type": "object",
                    "properties": {
                        "port": {
                            "x-kubernetes-int-or-string": True,
                            "anyOf": [{"type": "integer"}, {"type": "string"}],
                        },
                        "free": {"x-kubernetes-preserve-unknown-fields": True},
                        "tags": {"type": "object", "additionalProperties": {"type": "string"}},
                        "pod": {
                            "type": "object",
                            "x-kubernetes-embedded-resource": True,
                            "x-kubernetes-preserve-unknown-fields": True,
                        },
                        "count": {"type": "integer", "default": 1, "minimum": 0},
                        "items": {
                            "type": "array",
                            "x-kubernetes-list-type": "map",
                            "x-kubernetes-list-map-keys": ["name"],
                            "items": {"type": "object", "properties": {"name": {"type": "string"}}},
                        },
                    },
                },
            },
        },
    ],
)
def test_structural_schemas_accepted(root: Obj) -> None:
    assert check(with_schema(root)) == []


def test_updates() -> None:
    old = definition()
    assert check(old) == []
    old["status"] = {"conditions": [{"type": "Established", "status": "True"}]}
    new = copy.deepcopy(old)
    new["spec"]["scope"] = "Cluster"
    new["spec"]["names"]["kind"] = "Gadget"
    new["spec"]["names"]["listKind"] = "GadgetList"
    assert fields(new, old) == [
        ("spec.scope", "FieldValueInvalid"),
        ("spec.names.kind", "FieldValueInvalid"),
    ]
    not_established = copy.deepcopy(old)
    del not_established["status"]
    assert check(copy.deepcopy(new), not_established) == []
    regrouped = copy.deepcopy(old)
    regrouped["spec"]["group"] = "other.com"
    regrouped["metadata"]["name"] = "widgets.other.com"
    assert ("spec.group", "FieldValueInvalid") in fields(regrouped, old)


def test_resource_types_one_per_served_version() -> None:
    obj = definition(scope="Cluster")
    v1 = obj["spec"]["versions"][0]
    v1["subresources"] = {
        "status": {},
        "scale": {"specReplicasPath": ".spec.r", "statusReplicasPath": ".status.r"},
    }
    v1["additionalPrinterColumns"] = [{"name": "R", "type": "integer", "jsonPath": ".spec.r"}]
    obj["spec"]["versions"] += [{**v1, "name": "v2", "storage": False, "served": False}]
    obj["spec"]["names"]["categories"] = ["all"]
    [served] = crd.resource_types(obj)
    assert (served.group, served.version, served.kind, served.plural) == (
        "example.com",
        "v1",
        "Widget",
        "widgets",
    )
    assert served.namespaced is False
    assert served.short_names == ("wd",) and served.categories == ("all",)
    assert served.subresources == ("status", "scale")
    assert served.crd_name == "widgets.example.com"
    assert served.crd_schema == schema()
    assert served.printer_columns == ({"name": "R", "type": "integer", "jsonPath": ".spec.r"},)
    assert served.definition is None


def test_schema_keywords_are_decoded_strictly() -> None:
    root = schema(spec={"type": "object", "typo": 1, "default": {"any": ["json", 1, None]}})
    result = validation.validate(CRD, with_schema(root))
    assert result.bad_request == [
        'CustomResourceDefinition in version "v1" cannot be handled as a '
        "CustomResourceDefinition: strict decoding error: unknown field "
        f'"{ROOT}.properties[spec].typo"'
    ]
    wrong = with_schema(schema(spec={"type": "object", "maxLength": "5"}))
    [msg] = validation.validate(CRD, wrong).bad_request
    assert "JSONSchemaProps.spec.versions.schema.openAPIV3Schema.properties.maxLength" in msg


def kubebuilder_style() -> Obj:
    """A CRD shaped like controller-gen output: descriptions everywhere, list types, formats."""
    condition = {
        "type": "object",
        "description": "A condition.",
        "required": ["status", "type"],
        "properties": {
            "lastTransitionTime": {"type": "string", "format": "date-time"},
            "observedGeneration": {"type": "integer", "format": "int64"},
            "status": {"type": "string", "enum": ["True", "False", "Unknown"]},
            "type": {"type": "string"},
        },
    }
    spec = {
        "type": "object",
        "description": "Desired state.",
        "required": ["backendRef"],
        "properties": {
            "backendRef": {
                "type": "object",
                "required": ["name"],
                "properties": {"name": {"type": "string"}, "kind": {"type": "string"}},
            },
            "hosts": {
                "type": "array",
                "items": {"type": "string"},
                "x-kubernetes-list-type": "atomic",
            },
            "weight": {"type": "integer", "format": "int32", "minimum": 0, "maximum": 100},
            "port": {
                "anyOf": [{"type": "integer"}, {"type": "string"}],
                "x-kubernetes-int-or-string": True,
            },
            "template": {
                "type": "object",
                "properties": {
                    "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                },
            },
            "mode": {"type": "string", "enum": ["A", "B"], "default": "A"},
            "raw": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
            "exclusive": {
                "type": "object",
                "properties": {"a": {"type": "string"}, "b": {"type": "string"}},
                "oneOf": [{"required": ["a"]}, {"required": ["b"]}],
            },
        },
    }
    status = {
        "type": "object",
        "properties": {
            "conditions": {
                "type": "array",
                "items": condition,
                "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["type"],
            }
        },
    }
    root = {
        "type": "object",
        "description": "A Route.",
        "properties": {
            "apiVersion": {"type": "string", "description": "APIVersion."},
            "kind": {"type": "string", "description": "Kind."},
            "metadata": {"type": "object"},
            "spec": spec,
            "status": status,
        },
    }
    obj = definition(group="net.example.io")
    obj["metadata"] = {
        "name": "widgets.net.example.io",
        "annotations": {"controller-gen.kubebuilder.io/version": "v0.16.0"},
    }
    version = obj["spec"]["versions"][0]
    version["schema"]["openAPIV3Schema"] = root
    version["subresources"] = {"status": {}}
    version["additionalPrinterColumns"] = [
        {"name": "Ready", "type": "string", "jsonPath": '.status.conditions[?(@.type=="Ready")]'},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp", "priority": 1},
    ]
    return obj


def test_a_kubebuilder_style_crd_and_its_objects() -> None:
    obj = kubebuilder_style()
    assert check(obj) == []
    [served] = crd.resource_types(obj)
    good = {
        "apiVersion": "net.example.io/v1",
        "kind": "Widget",
        "metadata": {"name": "r", "namespace": "n"},
        "spec": {
            "backendRef": {"name": "svc"},
            "port": "http",
            "exclusive": {"a": "x"},
            "raw": {"anything": [1]},
        },
        "status": {"conditions": [{"type": "Ready", "status": "True"}]},
    }
    defaults.default(served, good)
    assert validation.validate(served, good).ok
    assert good["spec"]["mode"] == "A"
    bad = copy.deepcopy(good)
    bad["spec"]["exclusive"] = {"a": "x", "b": "y"}
    bad["spec"]["weight"] = 2**40
    bad["status"]["conditions"].append({"type": "Ready", "status": "Maybe"})
    errs = validation.validate(served, bad).errors
    assert [(e.field, e.type) for e in errs] == [
        ("spec.exclusive", "FieldValueInvalid"),
        ("spec.weight", "FieldValueInvalid"),
        ("spec.weight", "FieldValueTypeInvalid"),
        ("status.conditions[1].status", "FieldValueNotSupported"),
        ("status.conditions[1]", "FieldValueDuplicate"),
    ]
