"""CustomResourceDefinitions: their own rules, and serving the kinds they define.

Two halves, following kube's apiextensions-apiserver:

- The CRD object itself: `default_crd` (names and conversion defaults) and `validate_crd`
  (names, group, scope, versions, printer columns, subresources, and that every version's
  `openAPIV3Schema` is a *structural* schema), and `resource_types` turning a CRD into the
  `ResourceType`s the API server registers (one per served version).
- Custom objects: `prune` drops fields the structural schema does not know (kube's pruning),
  `default_custom` applies the schema's `default`s, and `validate_custom` validates an object
  against the schema with kube's messages (`spec.replicas: Invalid value: 50: spec.replicas in
  body should be less than or equal to 10`). `validation.validate` dispatches here for CRD-served
  kinds, so the server calls one function.

Not supported: CEL rules (`x-kubernetes-validations`, ignored), conversion webhooks (versions
must share one schema shape), validation ratcheting on update.

Public API:

- `validate_crd(crd, old) -> list[FieldError]`
- `default_crd(crd) -> None`
- `resource_types(crd) -> list[ResourceType]`
- `validate_custom(rt, obj, field_validation="Strict", *, old=None, duplicates=()) -> Result`
  (`old` is accepted for the update path; kube's validation ratcheting is not implemented)
- `default_custom(rt, obj) -> None`
- `prune(rt, obj) -> list[str]`: the paths of the removed fields.
- `validate_structural(schema, path) -> list[FieldError]`
- `validate_value(schema, value, path) -> list[FieldError]`: kube-openapi style validation.
"""

from __future__ import annotations

import base64
import binascii
import copy
import ipaddress
import json
import re
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from hypernetes.resources import names
from hypernetes.resources import validation as v
from hypernetes.resources.registry import ResourceType

Obj = dict[str, Any]
Schema = dict[str, Any]
FieldError = v.FieldError
Result = v.Result

OBJECT_META = v.definition_ref("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta")
PRESERVE = "x-kubernetes-preserve-unknown-fields"
INT_OR_STRING = "x-kubernetes-int-or-string"
EMBEDDED = "x-kubernetes-embedded-resource"
_TYPES = ("array", "boolean", "integer", "number", "object", "string")
_COLUMN_TYPES = ("boolean", "date", "integer", "number", "string")
_COLUMN_FORMATS = ("byte", "date", "date-time", "double", "float", "int32", "int64", "password")


# -- the CRD object -----------------------------------------------------------------------------


def default_crd(crd: Obj) -> None:
    """kube's `SetDefaults_CustomResourceDefinition` (v1)."""
    spec = crd.get("spec")
    if not isinstance(spec, dict):
        return
    names_ = spec.get("names")
    if isinstance(names_, dict) and isinstance(names_.get("kind"), str) and names_["kind"]:
        if not names_.get("singular"):
            names_["singular"] = names_["kind"].lower()
        if not names_.get("listKind"):
            names_["listKind"] = names_["kind"] + "List"
    if spec.get("conversion") is None:
        spec["conversion"] = {"strategy": "None"}
    status = crd.get("status")
    versions = spec.get("versions")
    if isinstance(status, dict) and not status.get("storedVersions") and isinstance(versions, list):
        stored = [x["name"] for x in versions if isinstance(x, dict) and x.get("storage")]
        if stored:
            status["storedVersions"] = stored[:1]


def validate_crd(crd: Obj, old: Obj | None) -> list[FieldError]:
    """kube's `ValidateCustomResourceDefinition` (and `...Update` when `old` is given)."""
    spec = crd.get("spec") or {}
    names_ = spec.get("names") or {}
    wanted = f"{names_.get('plural', '')}.{spec.get('group', '')}"

    def name_fn(name: str, prefix: bool) -> list[str]:
        msgs = names.name_is_dns_subdomain(name, prefix)
        return msgs + ([] if name == wanted else ['must be spec.names.plural+"."+spec.group'])

    errs = v.validate_object_meta(crd.get("metadata") or {}, "metadata", name_fn, False)
    errs += _group(spec.get("group") or "")
    errs += _enum("spec.scope", spec.get("scope"), ("Cluster", "Namespaced"))
    errs += _versions(spec.get("versions") or [])
    errs += _names(names_, "spec.names", required=True)
    if spec.get("preserveUnknownFields"):
        errs.append(
            v.invalid(
                "spec.preserveUnknownFields",
                True,
                "cannot set to true, set x-kubernetes-preserve-unknown-fields to true in "
                "spec.versions[*].schema instead",
            )
        )
    errs += _conversion(spec.get("conversion") or {})
    if old is not None:
        errs += _update(spec, old)
    return errs


def _enum(path: str, value: Any, allowed: tuple[str, ...]) -> list[FieldError]:
    if not value:
        return [v.required(path)]
    return [] if value in allowed else [v.not_supported(path, value, allowed)]


def _group(group: str) -> list[FieldError]:
    if not group:
        return [v.required("spec.group")]
    msgs = names.is_dns1123_subdomain(group)
    if msgs:
        return [v.invalid("spec.group", group, ",".join(msgs))]
    if "." not in group:
        return [v.invalid("spec.group", group, "should be a domain with at least one dot")]
    return []


def _versions(versions: list[Obj]) -> list[FieldError]:
    errs: list[FieldError] = []
    for i, version in enumerate(versions):
        p, name = f"spec.versions[{i}]", version.get("name") or ""
        msgs = names.is_dns1035_label(name)
        if msgs:
            errs.append(v.invalid(f"{p}.name", name, ",".join(msgs)))
        errs += _version(version, p)
    shown = [x.get("name") for x in versions]
    if len(set(shown)) != len(shown):
        errs.append(v.invalid("spec.versions", shown, "must contain unique version names"))
    if sum(bool(x.get("storage")) for x in versions) != 1:
        errs.append(
            v.invalid(
                "spec.versions", shown, "must have exactly one version marked as storage version"
            )
        )
    return errs


def _version(version: Obj, path: str) -> list[FieldError]:
    schema = (version.get("schema") or {}).get("openAPIV3Schema")
    p = f"{path}.schema.openAPIV3Schema"
    errs: list[FieldError] = []
    if not isinstance(schema, dict):
        errs.append(v.required(p, "schemas are required"))
    else:
        errs += validate_structural(schema, p)
    errs += _subresources(version.get("subresources") or {}, f"{path}.subresources")
    for i, column in enumerate(version.get("additionalPrinterColumns") or []):
        errs += _column(column, f"{path}.additionalPrinterColumns[{i}]")
    return errs


def _names(names_: Obj, path: str, required: bool) -> list[FieldError]:
    errs: list[FieldError] = []
    for key in ("plural", "singular", "kind", "listKind"):
        if required and not names_.get(key):
            errs.append(v.required(f"{path}.{key}"))
    for key in ("plural", "singular"):
        value = names_.get(key) or ""
        msgs = names.is_dns1035_label(value)
        if value and msgs:
            errs.append(v.invalid(f"{path}.{key}", value, ",".join(msgs)))
    for key in ("kind", "listKind"):
        value = names_.get(key) or ""
        msgs = names.is_dns1035_label(value.lower())
        if value and msgs:
            errs.append(
                v.invalid(
                    f"{path}.{key}",
                    value,
                    "may have mixed case, but should otherwise match: " + ",".join(msgs),
                )
            )
    for key in ("shortNames", "categories"):
        for i, value in enumerate(names_.get(key) or []):
            msgs = names.is_dns1035_label(value)
            if msgs:
                errs.append(v.invalid(f"{path}.{key}[{i}]", value, ",".join(msgs)))
    if names_.get("kind") and names_.get("kind") == names_.get("listKind"):
        errs.append(
            v.invalid(
                f"{path}.listKind", names_["listKind"], "kind and listKind may not be the same"
            )
        )
    return errs


def _conversion(conversion: Obj) -> list[FieldError]:
    errs = _enum("spec.conversion.strategy", conversion.get("strategy"), ("None", "Webhook"))
    if conversion.get("strategy") == "Webhook" and not conversion.get("webhook"):
        errs.append(
            v.required("spec.conversion.webhook", "required when strategy is set to Webhook")
        )
    elif conversion.get("strategy") == "None" and conversion.get("webhook"):
        errs.append(
            v.forbidden(
                "spec.conversion.webhook", "should not be set when strategy is not set to Webhook"
            )
        )
    return errs


def _subresources(subresources: Obj, path: str) -> list[FieldError]:
    scale = subresources.get("scale")
    if scale is None:
        return []
    errs: list[FieldError] = []
    for key, under in (("specReplicasPath", ".spec."), ("statusReplicasPath", ".status.")):
        value = scale.get(key) or ""
        if not value:
            errs.append(v.required(f"{path}.scale.{key}"))
        elif not value.startswith(under):
            errs.append(
                v.invalid(f"{path}.scale.{key}", value, f"should be a json path under {under[:-1]}")
            )
    selector = scale.get("labelSelectorPath") or ""
    if selector and not selector.startswith((".spec.", ".status.")):
        errs.append(
            v.invalid(
                f"{path}.scale.labelSelectorPath",
                selector,
                "should be a json path under either .spec or .status",
            )
        )
    return errs


def _column(column: Obj, path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    if not column.get("name"):
        errs.append(v.required(f"{path}.name"))
    kind, types = column.get("type") or "", ",".join(_COLUMN_TYPES)
    if not kind:
        errs.append(v.required(f"{path}.type", f"must be one of {types}"))
    elif kind not in _COLUMN_TYPES:
        errs.append(v.invalid(f"{path}.type", kind, f"must be one of {types}"))
    fmt = column.get("format") or ""
    if fmt and fmt not in _COLUMN_FORMATS:
        errs.append(v.invalid(f"{path}.format", fmt, f"must be one of {','.join(_COLUMN_FORMATS)}"))
    json_path = column.get("jsonPath") or ""
    if not json_path:
        errs.append(v.required(f"{path}.jsonPath"))
    elif not json_path.startswith("."):
        errs.append(
            v.invalid(f"{path}.jsonPath", json_path, "must be a simple json path starting with .")
        )
    return errs


def _update(spec: Obj, old: Obj) -> list[FieldError]:
    old_spec = old.get("spec") or {}
    names_, old_names = spec.get("names") or {}, old_spec.get("names") or {}
    errs = v.immutable("spec.group", spec.get("group"), old_spec.get("group"))
    errs += v.immutable("spec.names.plural", names_.get("plural"), old_names.get("plural"))
    conditions = (old.get("status") or {}).get("conditions") or []
    if any(c.get("type") == "Established" and c.get("status") == "True" for c in conditions):
        errs += v.immutable("spec.scope", spec.get("scope"), old_spec.get("scope"))
        errs += v.immutable("spec.names.kind", names_.get("kind"), old_names.get("kind"))
    return errs


# -- structural schemas -------------------------------------------------------------------------

_ROOT, _ITEMS, _FIELD = "root", "items", "field"
_UNSUPPORTED = ("id", "$ref", "definitions", "dependencies", "additionalItems", "patternProperties")
_NESTED_FORBIDDEN = (
    ("type", "must be empty to be structural"),
    ("default", "must be undefined to be structural"),
    ("title", "must be empty to be structural"),
    ("description", "must be empty to be structural"),
    ("nullable", "must be false to be structural"),
    ("additionalProperties", "must be undefined to be structural"),
    (PRESERVE, "must be false to be structural"),
    (EMBEDDED, "must be false to be structural"),
    (INT_OR_STRING, "must be false to be structural"),
    ("x-kubernetes-list-type", "must be undefined to be structural"),
    ("x-kubernetes-list-map-keys", "must be empty to be structural"),
    ("x-kubernetes-map-type", "must be undefined to be structural"),
    ("x-kubernetes-validations", "must be empty to be structural"),
)
_INT_OR_STRING_ANY_OF = [{"type": "integer"}, {"type": "string"}]


def validate_structural(schema: Schema, path: str) -> list[FieldError]:
    """kube's structural-schema rules for a CRD version's `openAPIV3Schema` at `path`."""
    return _node(schema, path, _ROOT)


def _node(s: Schema, path: str, level: str) -> list[FieldError]:
    errs = _keywords(s, path)
    kind = s.get("type") or ""
    items, props = s.get("items"), s.get("properties") or {}
    if kind == "array" and items is None:
        errs.append(v.required(f"{path}.items", "must be specified"))
    if isinstance(items, dict):
        errs += _node(items, f"{path}.items", _ITEMS)
    elif isinstance(items, list):
        errs.append(v.forbidden(f"{path}.items", "items must be a schema object and not an array"))
    for key, child in props.items():
        errs += _node(child, f"{path}.properties[{key}]", _FIELD)
    errs += _additional_properties(s, path, level)
    errs += _extensions(s, path)
    errs += _value_validations(s, path)
    errs += _type_rules(s, path, level)
    if "metadata" in props:
        errs += _metadata_schema(props["metadata"], f"{path}.properties[metadata]", level, s)
    if "default" in s:
        errs += _default_value(s, path)
    return errs


def _keywords(s: Schema, path: str) -> list[FieldError]:
    errs = [v.forbidden(f"{path}.{k}", f"{k} is not supported") for k in _UNSUPPORTED if k in s]
    kind = s.get("type")
    if kind == "null":
        errs.append(v.forbidden(f"{path}.type", "type cannot be set to null"))
    elif kind and kind not in _TYPES:
        errs.append(v.not_supported(f"{path}.type", kind, _TYPES))
    if s.get("uniqueItems") is True:
        errs.append(
            v.forbidden(
                f"{path}.uniqueItems",
                "uniqueItems cannot be set to true since the runtime complexity becomes quadratic",
            )
        )
    if s.get(PRESERVE) is False:
        errs.append(v.invalid(f"{path}.{PRESERVE}", False, "must be true or undefined"))
    pattern = s.get("pattern")
    if isinstance(pattern, str):
        try:
            re.compile(pattern)
        except re.error as exc:
            errs.append(
                v.invalid(
                    f"{path}.pattern",
                    pattern,
                    f"must be a valid regular expression, but isn't: {exc}",
                )
            )
    list_type = s.get("x-kubernetes-list-type")
    if list_type is not None and list_type not in ("atomic", "set", "map"):
        errs.append(
            v.not_supported(f"{path}.x-kubernetes-list-type", list_type, ("atomic", "set", "map"))
        )
    if list_type == "map" and not s.get("x-kubernetes-list-map-keys"):
        errs.append(
            v.required(
                f"{path}.x-kubernetes-list-map-keys",
                "must not be empty if x-kubernetes-list-type is map",
            )
        )
    return errs


def _additional_properties(s: Schema, path: str, level: str) -> list[FieldError]:
    extra = s.get("additionalProperties")
    if extra is None:
        return []
    errs: list[FieldError] = []
    if level == _ROOT:
        errs.append(v.forbidden(f"{path}.additionalProperties", "must not be used at the root"))
    if s.get("properties") and (extra is False or isinstance(extra, dict)):
        errs.append(
            v.forbidden(
                f"{path}.additionalProperties",
                "additionalProperties and properties are mutual exclusive",
            )
        )
    if s.get(EMBEDDED):
        errs.append(
            v.forbidden(
                f"{path}.additionalProperties",
                "must not be used if x-kubernetes-embedded-resource is set",
            )
        )
    if isinstance(extra, dict):
        errs += _node(extra, f"{path}.additionalProperties", _FIELD)
    return errs


def _extensions(s: Schema, path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    if s.get(INT_OR_STRING) and s.get(PRESERVE):
        errs.append(
            v.invalid(
                f"{path}.{PRESERVE}", True, "must be false if x-kubernetes-int-or-string is true"
            )
        )
    if s.get(INT_OR_STRING) and s.get(EMBEDDED):
        errs.append(
            v.invalid(
                f"{path}.{EMBEDDED}", True, "must be false if x-kubernetes-int-or-string is true"
            )
        )
    return errs


def _type_rules(s: Schema, path: str, level: str) -> list[FieldError]:
    kind = s.get("type") or ""
    errs: list[FieldError] = []
    if s.get(EMBEDDED) and kind != "object":
        detail = "must be object if x-kubernetes-embedded-resource is true"
        errs.append(
            v.invalid(f"{path}.type", kind, detail) if kind else v.required(f"{path}.type", detail)
        )
    elif not kind and not s.get(INT_OR_STRING) and not s.get(PRESERVE):
        where = {
            _ROOT: "at the root",
            _ITEMS: "for specified array items",
            _FIELD: "for specified object fields",
        }[level]
        errs.append(v.required(f"{path}.type", f"must not be empty {where}"))
    if level == _ROOT and kind and kind != "object":
        errs.append(v.invalid(f"{path}.type", kind, "must be object at the root"))
    if s.get(EMBEDDED) and not s.get(PRESERVE) and not s.get("properties"):
        errs.append(
            v.required(
                f"{path}.properties",
                "must not be empty if x-kubernetes-embedded-resource is true without "
                "x-kubernetes-preserve-unknown-fields",
            )
        )
    if level == _ROOT or s.get(EMBEDDED):
        for key in ("kind", "apiVersion"):
            child = (s.get("properties") or {}).get(key)
            if child is not None and child.get("type") != "string":
                errs.append(
                    v.invalid(
                        f"{path}.properties[{key}].type", child.get("type", ""), "must be string"
                    )
                )
    return errs


def _metadata_schema(meta: Schema, path: str, level: str, parent: Schema) -> list[FieldError]:
    errs: list[FieldError] = []
    if (level == _ROOT or parent.get(EMBEDDED)) and meta.get("type") != "object":
        errs.append(v.invalid(f"{path}.type", meta.get("type", ""), "must be object"))
    if level == _ROOT:
        rest = {k: x for k, x in meta.items() if k not in ("type", "properties", "default")}
        extra_props = set(meta.get("properties") or {}) - {"name", "generateName"}
        if rest or extra_props:
            errs.append(
                v.forbidden(
                    path,
                    "must not specify anything other than name and generateName, but metadata is "
                    "implicitly specified",
                )
            )
    return errs


def _value_validations(s: Schema, path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    for key in ("anyOf", "allOf", "oneOf"):
        branches = s.get(key) or []
        for i, branch in enumerate(branches):
            if _is_int_or_string_pattern(s, key, i):
                continue
            errs += _nested(branch, f"{path}.{key}[{i}]")
    if isinstance(s.get("not"), dict):
        errs += _nested(s["not"], f"{path}.not")
    return errs


def _is_int_or_string_pattern(s: Schema, key: str, i: int) -> bool:
    """kube exempts `anyOf: [{type: integer}, {type: string}]` (also first in an `allOf`)."""
    if key == "anyOf":
        return s.get("anyOf") == _INT_OR_STRING_ANY_OF
    return key == "allOf" and i == 0 and (s["allOf"][0].get("anyOf") == _INT_OR_STRING_ANY_OF)


def _nested(s: Schema, path: str) -> list[FieldError]:
    """Schemas under anyOf/allOf/oneOf/not may only validate values, never shape them."""
    errs = [
        v.forbidden(f"{path}.{k}", msg)
        for k, msg in _NESTED_FORBIDDEN
        if s.get(k) not in (None, False, "", [])
    ]
    if "metadata" in (s.get("properties") or {}):
        errs.append(
            v.forbidden(f"{path}.properties[metadata]", "must not be specified in a nested context")
        )
    for key, child in (s.get("properties") or {}).items():
        errs += _nested(child, f"{path}.properties[{key}]")
    if isinstance(s.get("items"), dict):
        errs += _nested(s["items"], f"{path}.items")
    for key in ("anyOf", "allOf", "oneOf"):
        for i, branch in enumerate(s.get(key) or []):
            errs += _nested(branch, f"{path}.{key}[{i}]")
    if isinstance(s.get("not"), dict):
        errs += _nested(s["not"], f"{path}.not")
    return errs


def _default_value(s: Schema, path: str) -> list[FieldError]:
    """A `default` must validate against its own schema and hold no unknown fields."""
    value = copy.deepcopy(s["default"])
    p = f"{path}.default"
    unknown: list[str] = []
    pruned = _prune(s, value, p, unknown, root=False)
    if unknown:
        return [v.invalid(p, s["default"], "must not have unknown fields")]
    return validate_value(s, pruned, p)


# -- serving the kinds a CRD defines --------------------------------------------------------------

_ANY_OBJECT: Schema = {"type": "object", PRESERVE: True}


def resource_types(crd: Obj) -> list[ResourceType]:
    """One `ResourceType` per served version of `crd` (schema, names, subresources, columns)."""
    spec = crd.get("spec") or {}
    names_ = spec.get("names") or {}
    out = []
    for version in spec.get("versions") or []:
        if not version.get("served"):
            continue
        sub = version.get("subresources") or {}
        schema = (version.get("schema") or {}).get("openAPIV3Schema") or _ANY_OBJECT
        out.append(
            ResourceType(
                group=spec.get("group", ""),
                version=version["name"],
                kind=names_.get("kind", ""),
                plural=names_.get("plural", ""),
                namespaced=spec.get("scope") == "Namespaced",
                short_names=tuple(names_.get("shortNames") or ()),
                categories=tuple(names_.get("categories") or ()),
                subresources=tuple(k for k in ("status", "scale") if k in sub),
                crd_schema=schema,
                crd_name=(crd.get("metadata") or {}).get("name"),
                printer_columns=tuple(version.get("additionalPrinterColumns") or ()),
                selectable_fields=tuple(version.get("selectableFields") or ()),
            )
        )
    return out


def prune(rt: ResourceType, obj: Obj) -> list[str]:
    """Drop, in place, the fields `rt`'s schema does not know; return their paths.

    `metadata` is an ObjectMeta, pruned of the fields ObjectMeta does not have.
    """
    unknown: list[str] = []
    if isinstance(obj.get("metadata"), dict):
        obj["metadata"] = _prune_metadata(obj["metadata"], "metadata", unknown)
    pruned = _prune(rt.crd_schema or _ANY_OBJECT, obj, "", unknown, root=True)
    obj.clear()
    obj.update(pruned)
    return unknown


def _prune(s: Schema, value: Any, path: str, unknown: list[str], root: bool) -> Any:
    """kube's pruning: unknown fields and the nulls of non-nullable fields go."""
    if isinstance(value, list):
        items = s.get("items")
        if not isinstance(items, dict):
            return value
        return [_prune(items, x, f"{path}[{i}]", unknown, False) for i, x in enumerate(value)]
    if not isinstance(value, dict) or s.get(INT_OR_STRING):
        return value
    props = s.get("properties") or {}
    extra = s.get("additionalProperties")
    keep_all = bool(s.get(PRESERVE)) or extra is True
    typed = root or bool(s.get(EMBEDDED))
    out: Obj = {}
    for key, item in value.items():
        child_path = f"{path}.{key}" if path else key
        if not root and typed and key == "metadata":
            out[key] = _prune_metadata(item, child_path, unknown)
        elif typed and key in ("apiVersion", "kind", "metadata"):
            out[key] = item
        elif key in props:
            if item is None and not props[key].get("nullable"):
                continue
            out[key] = _prune(props[key], item, child_path, unknown, False)
        elif isinstance(extra, dict):
            out[key] = _prune(extra, item, f"{path}[{key}]", unknown, False)
        elif keep_all:
            out[key] = item
        else:
            unknown.append(child_path)
    return out


def _prune_metadata(meta: Any, path: str, unknown: list[str]) -> Any:
    """Embedded metadata is an ObjectMeta: unknown fields go (bad ones stay for validation)."""
    decoder = v.Decoder()
    decoded = decoder.decode(OBJECT_META, meta, v.Where(path, "ObjectMeta", "metadata"))
    if decoder.error is not None:
        return meta
    unknown += decoder.unknown
    return decoded


def default_custom(rt: ResourceType, obj: Obj) -> None:
    """Apply the `default`s of `rt`'s structural schema to `obj`, in place (kube's algorithm)."""
    _apply_defaults(rt.crd_schema or _ANY_OBJECT, obj)


def _apply_defaults(s: Schema, value: Any) -> None:
    if isinstance(value, dict):
        props = s.get("properties") or {}
        for key, prop in props.items():
            if "default" in prop and (key not in value or _non_nullable_null(value[key], prop)):
                value[key] = copy.deepcopy(prop["default"])
        extra = s.get("additionalProperties")
        for key, item in value.items():
            if key in props:
                _apply_defaults(props[key], item)
            elif isinstance(extra, dict):
                if "default" in extra and _non_nullable_null(item, extra):
                    value[key] = item = copy.deepcopy(extra["default"])
                _apply_defaults(extra, item)
    elif isinstance(value, list) and isinstance(s.get("items"), dict):
        items = s["items"]
        for i, item in enumerate(value):
            if "default" in items and _non_nullable_null(item, items):
                value[i] = item = copy.deepcopy(items["default"])
            _apply_defaults(items, item)


def _non_nullable_null(value: Any, s: Schema) -> bool:
    return value is None and not s.get("nullable")


# -- validating custom objects ------------------------------------------------------------------


def validate_custom(
    rt: ResourceType,
    obj: Obj,
    field_validation: str = "Strict",
    *,
    old: Obj | None = None,
    duplicates: Sequence[str] = (),
) -> Result:
    """Validate a custom object as kube does; prunes `obj` in place unless it is refused."""
    result = v.Result()
    schema = rt.crd_schema or _ANY_OBJECT
    decoder = v.Decoder()
    meta = obj.get("metadata")
    if meta is not None:
        meta = decoder.decode(OBJECT_META, meta, v.Where("metadata", "ObjectMeta", "metadata"))
    if decoder.error is not None:
        result.bad_request.append(v.cannot_handle(rt, decoder.error))
        return result
    pruned_meta_fields = decoder.unknown
    body = copy.deepcopy(obj)
    unknown: list[str] = []
    pruned = _prune(schema, body, "", unknown, root=True)
    problems = pruned_meta_fields + unknown
    if not v.report_unknown(rt, problems, field_validation, result, duplicates):
        return result
    obj.clear()
    obj.update(pruned)
    if meta is not None:
        obj["metadata"] = meta
    result.errors = v.validate_object_meta(
        obj.get("metadata") or {}, "metadata", names.name_is_dns_subdomain, rt.namespaced
    )
    result.errors += _root_metadata(schema, obj.get("metadata") or {})
    body_schema = {k: x for k, x in schema.items() if k != "properties"}
    body_schema["properties"] = {
        k: x for k, x in (schema.get("properties") or {}).items() if k != "metadata"
    }
    result.errors += validate_value(body_schema, obj, "")
    return result


def _root_metadata(schema: Schema, meta: Obj) -> list[FieldError]:
    """The root schema may constrain `metadata.name` and `metadata.generateName` only."""
    props = ((schema.get("properties") or {}).get("metadata") or {}).get("properties") or {}
    errs: list[FieldError] = []
    for key in ("name", "generateName"):
        if key in props and key in meta:
            errs += validate_value(props[key], meta[key], f"metadata.{key}")
    return errs


def validate_value(s: Schema, value: Any, path: str) -> list[FieldError]:
    """Validate a decoded JSON value against a structural schema, with kube-openapi's messages."""
    if value is None:
        if s.get("nullable") or (not s.get("type") and not s.get(INT_OR_STRING)):
            return []
        return [_type_error(s, value, path)]
    if not _type_ok(s, value):
        return [_type_error(s, value, path)]
    errs = _enum_check(s, value, path)
    kind = _kind_of(value)
    checks: dict[str, Callable[[Schema, Any, str], list[FieldError]]] = {
        "object": _object_checks,
        "array": _array_checks,
        "string": _string_checks,
        "integer": _number_checks,
        "number": _number_checks,
    }
    if kind in checks:
        errs += checks[kind](s, value, path)
    errs += _combinators(s, value, path)
    return errs


def _kind_of(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "integer" if value.is_integer() else "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _type_ok(s: Schema, value: Any) -> bool:
    kind = _kind_of(value)
    if s.get(INT_OR_STRING):
        return kind in ("integer", "string")
    wanted = s.get("type")
    if not wanted:
        return True
    return kind == wanted or (wanted == "number" and kind == "integer")


def _type_error(s: Schema, value: Any, path: str) -> FieldError:
    wanted = "integer,string" if s.get(INT_OR_STRING) else s.get("type", "")
    actual = "null" if value is None else _kind_of(value)
    return v.type_invalid(
        path, actual, f"{_body(path)} must be of type {wanted}: {json.dumps(actual)}"
    )


def _body(path: str) -> str:
    return f"{path} in body" if path else "body"


def _enum_check(s: Schema, value: Any, path: str) -> list[FieldError]:
    allowed = s.get("enum")
    if not isinstance(allowed, list) or value in allowed:
        return []
    shown = [a if isinstance(a, str) else json.dumps(a) for a in allowed]
    return [v.not_supported(path, value, shown)]


def _go_number(n: Any) -> str:
    if isinstance(n, float) and n.is_integer():
        return str(int(n))
    return str(n)


def _number_checks(s: Schema, value: Any, path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    body = _body(path)
    maximum, minimum = s.get("maximum"), s.get("minimum")
    if maximum is not None:
        if s.get("exclusiveMaximum") and value >= maximum:
            errs.append(v.invalid(path, value, f"{body} should be less than {_go_number(maximum)}"))
        elif value > maximum:
            errs.append(
                v.invalid(
                    path, value, f"{body} should be less than or equal to {_go_number(maximum)}"
                )
            )
    if minimum is not None:
        if s.get("exclusiveMinimum") and value <= minimum:
            errs.append(
                v.invalid(path, value, f"{body} should be greater than {_go_number(minimum)}")
            )
        elif value < minimum:
            errs.append(
                v.invalid(
                    path, value, f"{body} should be greater than or equal to {_go_number(minimum)}"
                )
            )
    multiple = s.get("multipleOf")
    if multiple and (value / multiple) != int(value / multiple):
        errs.append(
            v.invalid(path, value, f"{body} should be a multiple of {_go_number(multiple)}")
        )
    errs += _format_check(s, value, path)
    return errs


def _string_checks(s: Schema, value: str, path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    body = _body(path)
    if s.get("maxLength") is not None and len(value) > s["maxLength"]:
        errs.append(v.too_long(path, s["maxLength"]))
    if s.get("minLength") is not None and len(value) < s["minLength"]:
        errs.append(
            v.invalid(path, value, f"{body} should be at least {s['minLength']} chars long")
        )
    pattern = s.get("pattern")
    if isinstance(pattern, str) and not re.search(pattern, value):
        errs.append(v.invalid(path, value, f"{body} should match '{pattern}'"))
    errs += _format_check(s, value, path)
    return errs


def _is_base64(value: str) -> bool:
    try:
        base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return False
    return True


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return bool(re.fullmatch(r"[0-9a-fA-F]{8}-?([0-9a-fA-F]{4}-?){3}[0-9a-fA-F]{12}", value))


def _is_ipv(version: int) -> Callable[[str], bool]:
    def check(value: str) -> bool:
        try:
            return ipaddress.ip_address(value).version == version
        except ValueError:
            return False

    return check


_STRING_FORMATS: dict[str, Callable[[str], bool]] = {
    "date-time": v.is_rfc3339,
    "date": lambda x: bool(re.fullmatch(r"\d{4}-\d{2}-\d{2}", x)),
    "byte": _is_base64,
    "uuid": _is_uuid,
    "ipv4": _is_ipv(4),
    "ipv6": _is_ipv(6),
    "cidr": names.is_cidr,
    "hostname": lambda x: not names.is_dns1123_subdomain(x),
}
_INT_FORMATS = {"int32": (-(2**31), 2**31 - 1), "int64": (-(2**63), 2**63 - 1)}


def _format_check(s: Schema, value: Any, path: str) -> list[FieldError]:
    fmt = s.get("format")
    if isinstance(value, str) and fmt in _STRING_FORMATS and not _STRING_FORMATS[fmt](value):
        return [
            v.type_invalid(path, value, f"{_body(path)} must be of type {fmt}: {json.dumps(value)}")
        ]
    if isinstance(value, int | float) and fmt in _INT_FORMATS:
        low, high = _INT_FORMATS[fmt]
        if not low <= value <= high:
            return [
                v.type_invalid(
                    path, value, f"{_body(path)} must be of type {fmt}: {json.dumps(value)}"
                )
            ]
    return []


def _object_checks(s: Schema, value: Obj, path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    for key in s.get("required") or []:
        if key not in value or (value[key] is None and not _nullable(s, key)):
            errs.append(v.required(f"{path}.{key}" if path else key))
    body = _body(path)
    if s.get("maxProperties") is not None and len(value) > s["maxProperties"]:
        errs.append(v.too_many(path, len(value), s["maxProperties"]))
    if s.get("minProperties") is not None and len(value) < s["minProperties"]:
        errs.append(
            v.invalid(path, value, f"{body} should have at least {s['minProperties']} properties")
        )
    props, extra = s.get("properties") or {}, s.get("additionalProperties")
    for key, item in value.items():
        if key in props:
            errs += validate_value(props[key], item, f"{path}.{key}" if path else key)
        elif isinstance(extra, dict):
            errs += validate_value(extra, item, f"{path}[{key}]")
    if s.get(EMBEDDED):
        errs += _embedded(value, path)
    return errs


def _nullable(s: Schema, key: str) -> bool:
    return bool(((s.get("properties") or {}).get(key) or {}).get("nullable"))


def _array_checks(s: Schema, value: list[Any], path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    if s.get("maxItems") is not None and len(value) > s["maxItems"]:
        errs.append(v.too_many(path, len(value), s["maxItems"]))
    if s.get("minItems") is not None and len(value) < s["minItems"]:
        errs.append(
            v.invalid(path, value, f"{_body(path)} should have at least {s['minItems']} items")
        )
    items = s.get("items")
    if isinstance(items, dict):
        for i, item in enumerate(value):
            errs += validate_value(items, item, f"{path}[{i}]")
    errs += _list_type(s, value, path)
    return errs


def _list_type(s: Schema, value: list[Any], path: str) -> list[FieldError]:
    """`x-kubernetes-list-type`: sets hold distinct values, maps distinct keys."""
    list_type = s.get("x-kubernetes-list-type")
    errs: list[FieldError] = []
    seen: list[Any] = []
    for i, item in enumerate(value):
        if list_type == "set":
            key = item
        elif list_type == "map" and isinstance(item, dict):
            key = {k: item.get(k) for k in s.get("x-kubernetes-list-map-keys") or []}
        else:
            continue
        if key in seen:
            errs.append(v.duplicate(f"{path}[{i}]", key))
        seen.append(key)
    return errs


def _combinators(s: Schema, value: Any, path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    body = _body(path)
    for branch in s.get("allOf") or []:
        errs += validate_value(branch, value, path)
    any_of = s.get("anyOf") or []
    if any_of and all(validate_value(b, value, path) for b in any_of):
        errs.append(v.invalid(path, value, f"{body} must validate at least one schema (anyOf)"))
    one_of = s.get("oneOf") or []
    if one_of and sum(not validate_value(b, value, path) for b in one_of) != 1:
        errs.append(v.invalid(path, value, f"{body} must validate one and only one schema (oneOf)"))
    if isinstance(s.get("not"), dict) and not validate_value(s["not"], value, path):
        errs.append(v.invalid(path, value, f"{body} must not validate the schema (not)"))
    return errs


def _embedded(value: Obj, path: str) -> list[FieldError]:
    """kube's checks for `x-kubernetes-embedded-resource` objects."""
    errs: list[FieldError] = []
    api_version, kind = value.get("apiVersion") or "", value.get("kind") or ""
    if not api_version:
        errs.append(v.required(f"{path}.apiVersion", "must not be empty"))
    elif api_version.count("/") > 1:
        errs.append(v.invalid(f"{path}.apiVersion", api_version, "must be a valid group/version"))
    if not kind:
        errs.append(v.required(f"{path}.kind", "must not be empty"))
    else:
        msgs = names.is_dns1035_label(kind.lower())
        if msgs:
            errs.append(
                v.invalid(
                    f"{path}.kind",
                    kind,
                    "may have mixed case, but should otherwise match: " + ",".join(msgs),
                )
            )
    meta = value.get("metadata")
    if meta is None:
        return errs
    if not isinstance(meta, dict):
        return [*errs, v.invalid(f"{path}.metadata", meta, "must be an object")]
    decoder = v.Decoder()
    decoder.decode(OBJECT_META, meta, v.Where(f"{path}.metadata", "ObjectMeta", "metadata"))
    if decoder.error is not None:
        return [*errs, v.invalid(f"{path}.metadata", meta, decoder.error)]
    if meta.get("name") or meta.get("generateName"):
        errs += v.validate_object_meta(meta, f"{path}.metadata", names.name_is_dns_subdomain, None)
    else:
        errs += v.validate_labels(meta.get("labels") or {}, f"{path}.metadata.labels")
        errs += v.validate_annotations(
            meta.get("annotations") or {}, f"{path}.metadata.annotations"
        )
    return errs
