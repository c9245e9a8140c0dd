"""Validation of objects as kube-apiserver does it, with kube's error paths and messages.

A write passes two stages, as in kube:

1. Decoding (400 BadRequest). The object is walked along the kind's schema: values of the wrong
   JSON type, malformed quantities, times or base64 are reported with messages in the spirit of
   Go's decoder (`Pod in version "v1" cannot be handled as a Pod: json: cannot unmarshal string
   into Go struct field PodSpec.spec.containers of type []v1.Container`). Unknown fields are
   rejected (`fieldValidation=Strict`: `strict decoding error: unknown field "spec.foo"`),
   reported as warnings (`Warn`) or silently dropped (`Ignore`).
2. Semantic validation (422 Invalid): per-kind rules from kube's `pkg/apis/*/validation`,
   returned as `FieldError`s carrying kube's cause type, field path and message.

Like kube's decode/encode round trip, a successful `validate` normalizes the object in place:
unknown fields are dropped, `null`s of absent fields removed, and quantities rewritten in
canonical form (resource lists rounded up to milli precision, as kube's defaulting does). That
is the only mutation.

Public API:

- `validate(rt, obj, *, old=None, field_validation="Strict", duplicates=()) -> Result`:
  everything above, for built-in kinds and (dispatching to `hypernetes.resources.crd`)
  CRD-served kinds and CRDs.
- `load_json(text) -> (value, duplicate_paths)`: parse a body as Go does (last duplicate
  wins) and report repeated fields, for `validate(..., duplicates=...)`: kube rejects them in
  Strict mode (`strict decoding error: duplicate field "spec.replicas"`) and warns in Warn mode.
- `Result`: `bad_request: list[str]`, `warnings: list[str]`, `errors: list[FieldError]`, `ok`.
- `FieldError(type, field, message, value)` and its constructors `required`, `invalid`,
  `not_supported`, `duplicate`, `not_found`, `forbidden`, `too_long`, `too_many`,
  `type_invalid`: `message` is kube's error body (`Invalid value: "x": detail`) and
  `str(error)` is `field: message`.
- `message(kind, name, errors) -> str`: kube's Status message, `Pod "x" is invalid: ...`;
  `kind` may be a `ResourceType`, which gives kube's group-qualified kind (`Deployment.apps`).
- `qualified_kind(rt) -> str`: `Kind.group` (or `Kind` in the core group).
- `immutable(field, new, old)`: kube's `ValidateImmutableField`.
- Cause types as constants: `REQUIRED`, `INVALID`, `NOT_SUPPORTED`, `DUPLICATE`, `NOT_FOUND`,
  `FORBIDDEN`, `TOO_LONG`, `TOO_MANY`, `TYPE_INVALID`; `FIELD_VALIDATION_MODES`.
- Building blocks shared with the CRD module: `Decoder`, `Where`, `definition_ref`, `go_type`,
  `go_value`, `cannot_handle`, `strict_problems`, `unknown_fields_message`, `report_unknown`,
  `is_rfc3339`,
  `validate_semantics(rt, obj, old)` (stage 2 alone).
- Reusable rules: `validate_object_meta(meta, path, name_fn, namespaced)` (kube's
  `ValidateObjectMeta`), `validate_labels`, `validate_annotations`, `validate_label_selector`,
  `validate_pod_spec(spec, path)`, `validate_pvc_spec(spec, path)`, and
  `overcommit_allowed(resource_name)` (kube's `IsOvercommitAllowed`).
"""

from __future__ import annotations

import base64
import binascii
import copy
import dataclasses
import datetime
import functools
import json
import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from hypernetes.resources import labels as label_selectors
from hypernetes.resources import names
from hypernetes.resources import quantity as qty
from hypernetes.resources.registry import ResourceType
from hypernetes.resources.schema import Schema, definition, ref_name, resolve, types_of

Obj = dict[str, Any]

REQUIRED = "FieldValueRequired"
INVALID = "FieldValueInvalid"
NOT_SUPPORTED = "FieldValueNotSupported"
DUPLICATE = "FieldValueDuplicate"
NOT_FOUND = "FieldValueNotFound"
FORBIDDEN = "FieldValueForbidden"
TOO_LONG = "FieldValueTooLong"
TOO_MANY = "FieldValueTooMany"
TYPE_INVALID = "FieldValueTypeInvalid"

_TITLES = {
    REQUIRED: "Required value",
    INVALID: "Invalid value",
    NOT_SUPPORTED: "Unsupported value",
    DUPLICATE: "Duplicate value",
    NOT_FOUND: "Not found",
    FORBIDDEN: "Forbidden",
    TOO_LONG: "Too long",
    TOO_MANY: "Too many",
    TYPE_INVALID: "Invalid value",
}

FIELD_VALIDATION_MODES = ("Strict", "Warn", "Ignore")
IMMUTABLE = "field is immutable"
MAX_ANNOTATIONS_BYTES = 256 * 1024
MAX_DATA_BYTES = 1024 * 1024  # ConfigMap and Secret payloads (kube's MaxSecretSize)


# -- field errors -------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class FieldError:
    """One semantic error: kube's `field.Error` as it appears in a Status cause."""

    type: str
    """The Status cause type, e.g. `FieldValueRequired`."""
    field: str
    """kube's field path, e.g. `spec.containers[0].image`."""
    message: str
    """kube's error body, e.g. `Required value` or `Invalid value: "x": must be ...`."""
    value: Any = None
    """The offending value, when there is one."""

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


def go_value(value: Any) -> str:
    """A bad value rendered as kube's `ErrorBody` does (`%q` for strings, JSON otherwise)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)


def _error(kind: str, field: str, detail: str, value: Any = None, show: bool = False) -> FieldError:
    body = _TITLES[kind] + (f": {go_value(value)}" if show else "")
    return FieldError(kind, field, body + (f": {detail}" if detail else ""), value)


def required(field: str, detail: str = "") -> FieldError:
    return _error(REQUIRED, field, detail)


def forbidden(field: str, detail: str) -> FieldError:
    return _error(FORBIDDEN, field, detail)


def invalid(field: str, value: Any, detail: str) -> FieldError:
    return _error(INVALID, field, detail, value, show=True)


def type_invalid(field: str, value: Any, detail: str) -> FieldError:
    return _error(TYPE_INVALID, field, detail, value, show=True)


def duplicate(field: str, value: Any) -> FieldError:
    return _error(DUPLICATE, field, "", value, show=True)


def not_found(field: str, value: Any) -> FieldError:
    return _error(NOT_FOUND, field, "", value, show=True)


def not_supported(field: str, value: Any, allowed: Sequence[str]) -> FieldError:
    detail = "supported values: " + ", ".join(json.dumps(a) for a in allowed) if allowed else ""
    return _error(NOT_SUPPORTED, field, detail, value, show=True)


def too_long(field: str, max_bytes: int) -> FieldError:
    unit = "byte" if max_bytes == 1 else "bytes"
    return _error(TOO_LONG, field, f"may not be more than {max_bytes} {unit}")


def too_many(field: str, actual: int, maximum: int) -> FieldError:
    unit = "item" if maximum == 1 else "items"
    return _error(TOO_MANY, field, f"must have at most {maximum} {unit}", actual, show=True)


def immutable(field: str, new: Any, old: Any) -> list[FieldError]:
    return [] if new == old else [invalid(field, new, IMMUTABLE)]


def _invalid_each(field: str, value: Any, messages: Iterable[str]) -> list[FieldError]:
    return [invalid(field, value, m) for m in messages]


def _enum(
    field: str, value: Any, allowed: Sequence[str], required_: bool = True
) -> list[FieldError]:
    if value in (None, ""):
        return [required(field)] if required_ else []
    return [] if value in allowed else [not_supported(field, value, allowed)]


def _nonnegative(field: str, value: Any) -> list[FieldError]:
    if isinstance(value, int) and value < 0:
        return [invalid(field, value, "must be greater than or equal to 0")]
    return []


# -- results and messages -----------------------------------------------------------------------


@dataclasses.dataclass
class Result:
    """The outcome of `validate`: 400 messages, warnings, and 422 field errors."""

    bad_request: list[str] = dataclasses.field(default_factory=list)
    warnings: list[str] = dataclasses.field(default_factory=list)
    errors: list[FieldError] = dataclasses.field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.bad_request and not self.errors


def qualified_kind(rt: ResourceType) -> str:
    """kube's `GroupKind.String()`: `Deployment.apps`, or `Pod` in the core group."""
    return f"{rt.kind}.{rt.group}" if rt.group else rt.kind


def message(kind: str | ResourceType, name: str, errors: Sequence[FieldError]) -> str:
    """kube's Invalid Status message: `Pod "x" is invalid: [a, b]` (duplicates dropped)."""
    shown = qualified_kind(kind) if isinstance(kind, ResourceType) else kind
    unique = list(dict.fromkeys(str(e) for e in errors))
    body = unique[0] if len(unique) == 1 else "[" + ", ".join(unique) + "]"
    return f"{shown} {json.dumps(name, ensure_ascii=False)} is invalid: {body}"


def cannot_handle(rt: ResourceType, detail: str) -> str:
    """kube's 400 message for an object that does not decode."""
    return f'{rt.kind} in version "{rt.version}" cannot be handled as a {rt.kind}: {detail}'


def strict_problems(unknown: Sequence[str], duplicates: Sequence[str] = ()) -> list[str]:
    """kube's strict-decoding findings: `unknown field "a.b"`, `duplicate field "c"`."""
    return [f'unknown field "{p}"' for p in unknown] + [
        f'duplicate field "{p}"' for p in duplicates
    ]


def unknown_fields_message(unknown: Sequence[str], duplicates: Sequence[str] = ()) -> str:
    return "strict decoding error: " + ", ".join(strict_problems(unknown, duplicates))


class _Pairs(dict[str, Any]):
    """A JSON object that remembers the keys it saw twice."""

    duplicates: list[str]


def _pairs(pairs: list[tuple[str, Any]]) -> _Pairs:
    out = _Pairs()
    out.duplicates = []
    for key, value in pairs:
        if key in out:
            out.duplicates.append(key)
        out[key] = value  # the last one wins, as in Go's decoder
    return out


def load_json(text: str | bytes) -> tuple[Any, list[str]]:
    """Parse JSON as Go's decoder does, with the paths of duplicated fields (kube's form).

    Raises `json.JSONDecodeError` on malformed input.
    """
    duplicates: list[str] = []

    def plain(value: Any, path: str) -> Any:
        if isinstance(value, _Pairs):
            duplicates.extend(_join(path, k) for k in value.duplicates)
            return {k: plain(v, _join(path, k)) for k, v in value.items()}
        if isinstance(value, list):
            return [plain(v, f"{path}[{i}]") for i, v in enumerate(value)]
        return value

    return plain(json.loads(text, object_pairs_hook=_pairs), ""), duplicates


# -- stage 1: decoding along the schema ---------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Where:
    """Where a value sits: kube's field path, and the Go struct field Go's decoder would name."""

    path: str
    struct: str
    go_path: str

    def child(self, name: str, struct: str | None = None) -> Where:
        return Where(_join(self.path, name), struct or self.struct, _join(self.go_path, name))

    def index(self, i: int | str) -> Where:
        return Where(f"{self.path}[{i}]", self.struct, self.go_path)


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _resolve_named(schema: Schema) -> tuple[Schema, str | None]:
    """The concrete schema and, if it is a named definition, its name."""
    name = None
    if "$ref" in schema:
        name = ref_name(schema["$ref"])
    elif len(schema.get("allOf") or []) == 1 and "$ref" in schema["allOf"][0]:
        name = ref_name(schema["allOf"][0]["$ref"])
    return resolve(schema), name


_NODES: dict[int, tuple[Schema, Schema, str | None, str]] = {}


def _schema_node(schema: Schema) -> tuple[Schema, str | None, str]:
    """`(resolved, definition name, kind)` of a long-lived schema node, memoized.

    The cache keeps a reference to each key, so an id is never reused while cached.
    """
    entry = _NODES.get(id(schema))
    if entry is None or entry[0] is not schema:
        resolved, name = _resolve_named(schema)
        entry = _NODES[id(schema)] = (schema, resolved, name, _node_kind(resolved))
    return entry[1], entry[2], entry[3]


@functools.cache
def definition_ref(name: str) -> Schema:
    """A constant `$ref` schema for a definition, suitable as a `Decoder` root."""
    return {"$ref": f"#/$defs/{name}"}


def _node_kind(schema: Schema) -> str:
    """What a resolved schema node holds: a JSON type, `quantity`, `intorstring` or `any`."""
    if "oneOf" in schema:
        kinds = {t for s in schema["oneOf"] for t in types_of(s)}
        if kinds == {"string", "number"}:
            return "quantity"
        if kinds == {"string", "integer"}:
            return "intorstring"
        return "any"
    kinds = types_of(schema)
    if len(kinds) == 1:
        return next(iter(kinds))
    if "properties" in schema or "additionalProperties" in schema:
        return "object"
    return "any"


def _go_name(definition_name: str) -> str:
    parts = definition_name.split(".")
    return f"{parts[-2]}.{parts[-1]}"


def go_type(schema: Schema) -> str:
    """The Go type Go's decoder names for a schema node (`[]v1.Container`, `int32`, ...)."""
    resolved, name = _resolve_named(schema)
    if name:
        return _go_name(name)
    kind = _node_kind(resolved)
    if kind == "array":
        items = resolved.get("items")
        return "[]" + (go_type(items) if isinstance(items, dict) else "interface {}")
    if kind == "object":
        extra = resolved.get("additionalProperties")
        return "map[string]" + (go_type(extra) if isinstance(extra, dict) else "interface {}")
    if kind == "integer":
        return str(resolved.get("format") or "int64")
    return {"string": "string", "number": "float64", "boolean": "bool"}.get(kind, "interface {}")


def _json_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


_INT_RANGES = {"int32": (-(2**31), 2**31 - 1), "int64": (-(2**63), 2**63 - 1)}
_RFC3339 = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$", re.ASCII
)
_BASE64_CHARS = re.compile(r"[^A-Za-z0-9+/=\r\n]")


class Decoder:
    """Walks a value along a built-in schema as Go's decoder would, normalizing it.

    The first type error is kept in `error` (Go stops there too); unknown fields are collected
    in `unknown` (in document order) and left out of the returned value.
    """

    def __init__(self) -> None:
        self.error: str | None = None
        self.unknown: list[str] = []

    def _fail(self, detail: str) -> None:
        if self.error is None:
            self.error = detail

    def _type_error(self, value: Any, where: Where, schema: Schema, literal: bool = False) -> None:
        shown = _json_kind(value) + (f" {json.dumps(value)}" if literal else "")
        field = f"{where.struct}.{where.go_path}" if where.go_path else where.struct
        self._fail(
            f"json: cannot unmarshal {shown} into Go struct field {field} of type {go_type(schema)}"
        )

    def decode(self, schema: Schema, value: Any, where: Where) -> Any:
        """The normalized value, or `value` itself where it cannot be decoded.

        `schema` must live as long as the process (a part of `schema.definitions()` or a
        constant such as `definition_ref(name)`): resolved nodes are cached by identity.
        """
        resolved, name, kind = _schema_node(schema)
        if value is None:
            return None
        handler = getattr(self, f"_decode_{kind}", None)
        if handler is None:
            return value
        result: Any = handler(schema, resolved, name, value, where)
        return result

    def _decode_object(
        self, schema: Schema, resolved: Schema, name: str | None, value: Any, where: Where
    ) -> Any:
        if not isinstance(value, dict):
            self._type_error(value, where, schema)
            return value
        props, extra = resolved.get("properties"), resolved.get("additionalProperties")
        if props is None and not isinstance(extra, dict):
            return value  # free-form (RawExtension, FieldsV1, ...)
        if props is None:
            assert isinstance(extra, dict)
            return self._decode_map(extra, value, where)
        struct = name.rsplit(".", 1)[-1] if name else where.struct
        out: Obj = {}
        for key, item in value.items():
            if key in props:
                decoded = self.decode(props[key], item, where.child(key, struct))
                if decoded is not None:
                    out[key] = decoded
            else:
                self.unknown.append(_join(where.path, key))
        return out

    def _decode_map(self, extra: Schema, value: Obj, where: Where) -> Obj:
        resource_list = _schema_node(extra)[2] == "quantity"
        out: Obj = {}
        for key, item in value.items():
            decoded = self.decode(extra, item, where.index(key))
            if decoded is None:
                decoded = _zero(extra)
            if resource_list and self.error is None:
                # kube's SetDefaults_ResourceList: round up to milli precision.
                decoded = qty.canonical_milli(decoded)
            out[key] = decoded
        return out

    def _decode_array(
        self, schema: Schema, resolved: Schema, name: str | None, value: Any, where: Where
    ) -> Any:
        if not isinstance(value, list):
            self._type_error(value, where, schema)
            return value
        items = resolved.get("items")
        if not isinstance(items, dict):
            return value
        out = []
        for i, item in enumerate(value):
            decoded = self.decode(items, item, where.index(i))
            out.append(_zero(items) if decoded is None else decoded)
        return out

    def _decode_string(
        self, schema: Schema, resolved: Schema, name: str | None, value: Any, where: Where
    ) -> Any:
        if not isinstance(value, str):
            self._type_error(value, where, schema)
        elif resolved.get("format") == "byte":
            self._check_base64(value)
        elif resolved.get("format") == "date-time" and not is_rfc3339(value):
            shown = json.dumps(value)
            self._fail(
                f'parsing time {shown} as "2006-01-02T15:04:05Z07:00": cannot parse {shown} '
                'as "2006"'
            )
        return value

    def _check_base64(self, value: str) -> None:
        bad = _BASE64_CHARS.search(value)
        if bad:
            self._fail(f"illegal base64 data at input byte {bad.start()}")
            return
        try:
            base64.b64decode(value.replace("\r", "").replace("\n", ""), validate=True)
        except binascii.Error:
            self._fail(f"illegal base64 data at input byte {len(value) - len(value) % 4}")

    def _decode_integer(
        self, schema: Schema, resolved: Schema, name: str | None, value: Any, where: Where
    ) -> Any:
        if isinstance(value, float) and value.is_integer():
            value = int(value)  # YAML and some clients write 3.0 for 3
        if isinstance(value, bool) or not isinstance(value, int):
            self._type_error(value, where, schema, literal=isinstance(value, float))
            return value
        low, high = _INT_RANGES.get(str(resolved.get("format")), _INT_RANGES["int64"])
        if not low <= value <= high:
            self._type_error(value, where, schema, literal=True)
        return value

    def _decode_number(
        self, schema: Schema, resolved: Schema, name: str | None, value: Any, where: Where
    ) -> Any:
        if isinstance(value, bool) or not isinstance(value, int | float):
            self._type_error(value, where, schema)
        return value

    def _decode_boolean(
        self, schema: Schema, resolved: Schema, name: str | None, value: Any, where: Where
    ) -> Any:
        if not isinstance(value, bool):
            self._type_error(value, where, schema)
        return value

    def _decode_intorstring(
        self, schema: Schema, resolved: Schema, name: str | None, value: Any, where: Where
    ) -> Any:
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int | str):
            self._type_error(value, where, schema, literal=isinstance(value, float))
        return value

    def _decode_quantity(
        self, schema: Schema, resolved: Schema, name: str | None, value: Any, where: Where
    ) -> Any:
        if isinstance(value, dict | list | bool):
            self._fail(qty.FORMAT_ERROR)
            return value
        try:
            return str(qty.parse(value))
        except qty.QuantityError as exc:
            self._fail(str(exc))
            return value


def _zero(schema: Schema) -> Any:
    """Go's zero value for a schema node (what `null` decodes to in a list or map)."""
    kind = _schema_node(schema)[2]
    zeros: dict[str, Any] = {"object": {}, "array": [], "string": "", "integer": 0, "number": 0}
    zeros |= {"boolean": False, "quantity": "0", "intorstring": 0}
    return copy.deepcopy(zeros.get(kind))


def is_rfc3339(value: str) -> bool:
    if not _RFC3339.match(value):
        return False
    try:
        datetime.datetime.fromisoformat(value.upper().replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


# -- the entry point ----------------------------------------------------------------------------


def validate(
    rt: ResourceType,
    obj: Obj,
    *,
    old: Obj | None = None,
    field_validation: str = "Strict",
    duplicates: Sequence[str] = (),
) -> Result:
    """Validate `obj` (an update of `old` when given) as kube-apiserver would.

    `field_validation` is the `fieldValidation` query parameter (`Strict`, `Warn`, `Ignore`).
    `duplicates` are the paths of fields the request body repeated (see `load_json`); they are
    treated like unknown fields. On success (no `bad_request`), `obj` is normalized in place;
    see the module docstring.
    """
    if rt.crd_schema is not None:
        from hypernetes.resources import crd  # crd builds on this module

        return crd.validate_custom(rt, obj, field_validation, old=old, duplicates=duplicates)
    result = Result()
    if rt.definition is None:
        return result
    decoder = Decoder()
    root = Where("", rt.kind, "")
    decoded = decoder.decode(definition_ref(rt.definition), obj, root)
    if decoder.error is not None:
        result.bad_request.append(cannot_handle(rt, decoder.error))
        return result
    if not report_unknown(rt, decoder.unknown, field_validation, result, duplicates):
        return result
    obj.clear()
    obj.update(decoded)
    result.errors = validate_semantics(rt, obj, old)
    result.warnings += _meta_warnings(obj.get("metadata") or {})
    return result


def report_unknown(
    rt: ResourceType,
    unknown: Sequence[str],
    field_validation: str,
    result: Result,
    duplicates: Sequence[str] = (),
) -> bool:
    """Record unknown and duplicate fields per the fieldValidation mode; False to stop."""
    problems = strict_problems(unknown, duplicates)
    if not problems or field_validation == "Ignore":
        return True
    if field_validation == "Strict":
        result.bad_request.append(cannot_handle(rt, unknown_fields_message(unknown, duplicates)))
        return False
    result.warnings += problems
    return True


Rule = Callable[[Obj, Obj | None], list[FieldError]]


def validate_semantics(rt: ResourceType, obj: Obj, old: Obj | None) -> list[FieldError]:
    """The 422 rules of a built-in kind for a decoded object."""
    if (rt.group, rt.kind) == ("apiextensions.k8s.io", "CustomResourceDefinition"):
        from hypernetes.resources import crd

        return crd.validate_crd(obj, old)
    rule = _RULES.get((rt.group, rt.kind))
    errs = []
    if rt.stored:
        name_fn = _NAME_RULES.get((rt.group, rt.kind), names.name_is_dns_subdomain)
        errs += validate_object_meta(obj.get("metadata") or {}, "metadata", name_fn, rt.namespaced)
    if rule is not None:
        errs += rule(obj, old)
    return errs


# -- metadata -----------------------------------------------------------------------------------


def validate_object_meta(
    meta: Obj, path: str, name_fn: names.NameValidator, namespaced: bool | None
) -> list[FieldError]:
    """kube's `ValidateObjectMeta`; `namespaced=None` skips the namespace check."""
    errs: list[FieldError] = []
    generate_name = meta.get("generateName") or ""
    if generate_name:
        errs += _invalid_each(f"{path}.generateName", generate_name, name_fn(generate_name, True))
    name = meta.get("name") or ""
    if not name:
        errs.append(required(f"{path}.name", "name or generateName is required"))
    else:
        errs += _invalid_each(f"{path}.name", name, name_fn(name, False))
    namespace = meta.get("namespace") or ""
    if namespaced and not namespace:
        errs.append(required(f"{path}.namespace"))
    elif namespaced:
        errs += _invalid_each(f"{path}.namespace", namespace, names.is_dns1123_label(namespace))
    elif namespaced is False and namespace:
        errs.append(forbidden(f"{path}.namespace", "not allowed on this type"))
    errs += _nonnegative(f"{path}.generation", meta.get("generation"))
    errs += validate_labels(meta.get("labels") or {}, f"{path}.labels")
    errs += validate_annotations(meta.get("annotations") or {}, f"{path}.annotations")
    errs += _owner_references(meta.get("ownerReferences") or [], f"{path}.ownerReferences")
    errs += _finalizers(meta.get("finalizers") or [], f"{path}.finalizers")
    return errs


def validate_labels(labels: Obj, path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    for key, value in labels.items():
        errs += _invalid_each(path, key, names.is_qualified_name(key))
        errs += _invalid_each(path, value, names.is_label_value(str(value)))
    return errs


def validate_annotations(annotations: Obj, path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    for key in annotations:
        # Annotation keys are qualified names in which case does not matter.
        errs += _invalid_each(path, key, names.is_qualified_name(key.lower()))
    size = sum(len(k.encode()) + len(str(v).encode()) for k, v in annotations.items())
    if size > MAX_ANNOTATIONS_BYTES:
        errs.append(too_long(path, MAX_ANNOTATIONS_BYTES))
    return errs


def _owner_references(refs: list[Obj], path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    controllers = []
    for ref in refs:
        api_version = ref.get("apiVersion") or ""
        if not api_version.split("/")[-1]:
            errs.append(invalid(f"{path}.apiVersion", api_version, "version must not be empty"))
        for field_name in ("kind", "name", "uid"):
            if not ref.get(field_name):
                errs.append(invalid(f"{path}.{field_name}", "", f"{field_name} must not be empty"))
        if ref.get("controller"):
            controllers.append(f"{ref.get('kind')}/{ref.get('name')}")
    if len(controllers) > 1:
        errs.append(
            invalid(
                path,
                refs,
                'Only one reference can have Controller set to true. Found "true" in '
                f"references for {' and '.join(controllers)}",
            )
        )
    return errs


_STANDARD_FINALIZERS = ("kubernetes", "orphan", "foregroundDeletion")


def _finalizers(finalizers: list[str], path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    for i, name in enumerate(finalizers):
        errs += _invalid_each(f"{path}[{i}]", name, names.is_qualified_name(name))
    if "orphan" in finalizers and "foregroundDeletion" in finalizers:
        errs.append(
            invalid(path, finalizers, "finalizer orphan and foregroundDeletion cannot be both set")
        )
    return errs


def _meta_warnings(meta: Obj) -> list[str]:
    """kube 1.32 warns about finalizer names without a domain."""
    return [
        f'metadata.finalizers: "{f}": prefer a domain-qualified finalizer name to avoid '
        "accidental conflicts with other finalizer writers"
        for f in meta.get("finalizers") or []
        if isinstance(f, str) and "/" not in f and f not in _STANDARD_FINALIZERS
    ]


def validate_label_selector(selector: Obj, path: str) -> list[FieldError]:
    """kube's `ValidateLabelSelector`."""
    errs = validate_labels(selector.get("matchLabels") or {}, f"{path}.matchLabels")
    for i, expr in enumerate(selector.get("matchExpressions") or []):
        p = f"{path}.matchExpressions[{i}]"
        op, values = expr.get("operator") or "", expr.get("values") or []
        if op in ("In", "NotIn") and not values:
            errs.append(
                required(f"{p}.values", "must be specified when `operator` is 'In' or 'NotIn'")
            )
        elif op in ("Exists", "DoesNotExist") and values:
            errs.append(
                forbidden(
                    f"{p}.values",
                    "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                )
            )
        elif op not in ("In", "NotIn", "Exists", "DoesNotExist"):
            errs.append(invalid(f"{p}.operator", op, "not a valid selector operator"))
        errs += _invalid_each(
            f"{p}.key", expr.get("key", ""), names.is_qualified_name(expr.get("key", ""))
        )
        for j, v in enumerate(values):
            errs += _invalid_each(f"{p}.values[{j}]", v, names.is_label_value(v))
    return errs


# -- resources and quantities -------------------------------------------------------------------

_STANDARD_CONTAINER_RESOURCES = ("cpu", "memory", "ephemeral-storage")
_STANDARD_RESOURCES = (
    *_STANDARD_CONTAINER_RESOURCES,
    "requests.cpu",
    "requests.memory",
    "requests.ephemeral-storage",
    "limits.cpu",
    "limits.memory",
    "limits.ephemeral-storage",
    "pods",
    "services",
    "replicationcontrollers",
    "resourcequotas",
    "secrets",
    "configmaps",
    "persistentvolumeclaims",
    "storage",
    "requests.storage",
    "services.nodeports",
    "services.loadbalancers",
)
_INTEGER_RESOURCES = (
    "pods",
    "services",
    "replicationcontrollers",
    "resourcequotas",
    "secrets",
    "configmaps",
    "persistentvolumeclaims",
    "services.nodeports",
    "services.loadbalancers",
)


def _is_hugepages(name: str) -> bool:
    return name.startswith(("hugepages-", "requests.hugepages-", "limits.hugepages-"))


def _is_native(name: str) -> bool:
    return "/" not in name or name.startswith("kubernetes.io/") or ".kubernetes.io/" in name


def _is_extended(name: str) -> bool:
    if _is_native(name) or name.startswith("requests."):
        return False
    return not names.is_qualified_name("requests." + name)


def overcommit_allowed(name: str) -> bool:
    """kube's `IsOvercommitAllowed`: requests may be below limits for native resources."""
    return _is_native(name) and not _is_hugepages(name)


def _resource_name(name: str, path: str, container: bool) -> list[FieldError]:
    """kube's `validateResourceName` (and `validateContainerResourceName`)."""
    errs = _invalid_each(path, name, names.is_qualified_name(name))
    if errs:
        return errs
    if "/" not in name and not (name in _STANDARD_RESOURCES or _is_hugepages(name)):
        errs.append(invalid(path, name, "must be a standard resource type or fully qualified"))
    if not container:
        return errs
    if "/" not in name:
        if not (name in _STANDARD_CONTAINER_RESOURCES or name.startswith("hugepages-")):
            errs.append(invalid(path, name, "must be a standard resource for containers"))
    elif not _is_native(name) and not _is_extended(name):
        errs.append(invalid(path, name, "doesn't follow extended resource name standard"))
    return errs


def _quantity_value(resource: str, value: str, path: str) -> list[FieldError]:
    q = qty.parse(value)
    if q.sign() < 0:
        return [invalid(path, value, "must be greater than or equal to 0")]
    if (resource in _INTEGER_RESOURCES or _is_extended(resource)) and q.milli_value() % 1000:
        return [invalid(path, value, "must be an integer")]
    return []


def _resource_list(
    resources: Obj, path: str, container: bool = False, quota: bool = False
) -> list[FieldError]:
    errs: list[FieldError] = []
    for name, value in resources.items():
        p = f"{path}[{name}]"
        if quota:
            errs += _quota_resource_name(name, p)
        else:
            errs += _resource_name(name, p, container)
        errs += _quantity_value(name, value, p)
    return errs


def _resource_requirements(res: Obj, path: str) -> list[FieldError]:
    """kube's `ValidateContainerResourceRequirements`."""
    limits, requests = res.get("limits") or {}, res.get("requests") or {}
    errs = _resource_list(limits, f"{path}.limits", container=True)
    errs += _resource_list(requests, f"{path}.requests", container=True)
    for name, value in requests.items():
        if name not in limits:
            if not overcommit_allowed(name):
                errs.append(
                    required(f"{path}.limits", "Limit must be set for non overcommitable resources")
                )
            continue
        request, limit = qty.parse(value), qty.parse(limits[name])
        if request != limit and not overcommit_allowed(name):
            errs.append(
                invalid(
                    f"{path}.requests", str(request), f"must be equal to {name} limit of {limit}"
                )
            )
        elif request > limit:
            errs.append(
                invalid(
                    f"{path}.requests",
                    str(request),
                    f"must be less than or equal to {name} limit of {limit}",
                )
            )
    return errs


# -- pods -------------------------------------------------------------------------------------

_PROTOCOLS = ("SCTP", "TCP", "UDP")
_RESTART_POLICIES = ("Always", "OnFailure", "Never")
_DNS_POLICIES = ("ClusterFirstWithHostNet", "ClusterFirst", "Default", "None")
_PULL_POLICIES = ("Always", "IfNotPresent", "Never")
_TERMINATION_MESSAGE_POLICIES = ("File", "FallbackToLogsOnError")
_TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
_ENV_FIELD_PATHS = (
    "metadata.annotations",
    "metadata.labels",
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
    "spec.nodeName",
    "spec.serviceAccountName",
    "status.hostIP",
    "status.hostIPs",
    "status.podIP",
    "status.podIPs",
)
_SUBSCRIPTED_FIELD = re.compile(r"^metadata\.(labels|annotations)\['(.+)'\]$")


@functools.cache
def _volume_sources() -> tuple[str, ...]:
    props = definition("io.k8s.api.core.v1.Volume")["properties"]
    return tuple(k for k in props if k != "name")


def validate_pod_spec(spec: Obj, path: str) -> list[FieldError]:
    """kube's `ValidatePodSpec`, for pods and pod templates."""
    errs, volumes = _volumes(spec.get("volumes") or [], f"{path}.volumes")
    containers = spec.get("containers") or []
    if not containers:
        errs.append(required(f"{path}.containers"))
    seen: set[str] = set()
    for kind in ("containers", "initContainers", "ephemeralContainers"):
        for i, c in enumerate(spec.get(kind) or []):
            errs += _container(c, f"{path}.{kind}[{i}]", seen, volumes, init=kind != "containers")
    errs += _enum(f"{path}.restartPolicy", spec.get("restartPolicy"), _RESTART_POLICIES)
    errs += _dns_policy(spec, path)
    errs += _nonnegative(
        f"{path}.terminationGracePeriodSeconds", spec.get("terminationGracePeriodSeconds")
    )
    deadline = spec.get("activeDeadlineSeconds")
    if deadline is not None and not 1 <= deadline <= 2**31 - 1:
        errs.append(
            invalid(
                f"{path}.activeDeadlineSeconds",
                deadline,
                "must be between 1 and 2147483647, inclusive",
            )
        )
    errs += validate_labels(spec.get("nodeSelector") or {}, f"{path}.nodeSelector")
    for field_name in ("serviceAccountName", "nodeName"):
        value = spec.get(field_name) or ""
        if value:
            errs += _invalid_each(f"{path}.{field_name}", value, names.is_dns1123_subdomain(value))
    for field_name in ("hostname", "subdomain"):
        value = spec.get(field_name) or ""
        if value:
            errs += _invalid_each(f"{path}.{field_name}", value, names.is_dns1123_label(value))
    errs += _tolerations(spec.get("tolerations") or [], f"{path}.tolerations")
    for i, secret in enumerate(spec.get("imagePullSecrets") or []):
        if not secret.get("name"):
            errs.append(required(f"{path}.imagePullSecrets[{i}].name"))
    return errs


def _dns_policy(spec: Obj, path: str) -> list[FieldError]:
    errs = _enum(f"{path}.dnsPolicy", spec.get("dnsPolicy"), _DNS_POLICIES)
    if spec.get("dnsPolicy") == "None" and not spec.get("dnsConfig"):
        errs.append(
            required(f"{path}.dnsConfig", "must provide `dnsConfig` when `dnsPolicy` is None")
        )
    return errs


def _volumes(volumes: list[Obj], path: str) -> tuple[list[FieldError], dict[str, Obj]]:
    errs: list[FieldError] = []
    known: dict[str, Obj] = {}
    for i, vol in enumerate(volumes):
        p, name = f"{path}[{i}]", vol.get("name") or ""
        own = _volume_source(vol, p)
        if not name:
            own.append(required(f"{p}.name"))
        else:
            own += _invalid_each(f"{p}.name", name, names.is_dns1123_label(name))
        if name in known:
            own.append(duplicate(f"{p}.name", name))
        if own:
            errs += own
        else:
            known[name] = vol
    return errs, known


def _volume_source(vol: Obj, path: str) -> list[FieldError]:
    given = [k for k in _volume_sources() if vol.get(k) is not None]
    if not given:
        return [required(path, "must specify a volume type")]
    errs = [forbidden(f"{path}.{k}", "may not specify more than 1 volume type") for k in given[1:]]
    source, kind = vol[given[0]], given[0]
    must = {
        "hostPath": "path",
        "secret": "secretName",
        "configMap": "name",
        "persistentVolumeClaim": "claimName",
        "nfs": "server",
    }
    if kind in must and not source.get(must[kind]):
        errs.append(required(f"{path}.{kind}.{must[kind]}"))
    mode = source.get("defaultMode")
    if mode is not None and not 0 <= mode <= 0o777:
        errs.append(
            invalid(
                f"{path}.{kind}.defaultMode",
                mode,
                "must be a number between 0 and 0777 (octal), both inclusive",
            )
        )
    return errs


def _container(
    c: Obj, path: str, seen: set[str], volumes: dict[str, Obj], init: bool
) -> list[FieldError]:
    errs: list[FieldError] = []
    name = c.get("name") or ""
    if not name:
        errs.append(required(f"{path}.name"))
    else:
        errs += _invalid_each(f"{path}.name", name, names.is_dns1123_label(name))
        if name in seen:
            errs.append(duplicate(f"{path}.name", name))
        seen.add(name)
    image = c.get("image") or ""
    if not image:
        errs.append(required(f"{path}.image"))
    elif image != image.strip():
        errs.append(invalid(f"{path}.image", image, "must not have leading or trailing whitespace"))
    errs += _enum(f"{path}.imagePullPolicy", c.get("imagePullPolicy"), _PULL_POLICIES)
    errs += _enum(
        f"{path}.terminationMessagePolicy",
        c.get("terminationMessagePolicy"),
        _TERMINATION_MESSAGE_POLICIES,
    )
    errs += _container_ports(c.get("ports") or [], f"{path}.ports")
    errs += _env(c.get("env") or [], f"{path}.env")
    errs += _env_from(c.get("envFrom") or [], f"{path}.envFrom")
    errs += _volume_mounts(c.get("volumeMounts") or [], f"{path}.volumeMounts", volumes)
    errs += _resource_requirements(c.get("resources") or {}, f"{path}.resources")
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        if c.get(probe) is not None:
            errs += _probe(c[probe], f"{path}.{probe}", single_success=probe != "readinessProbe")
    return errs


def _container_ports(ports: list[Obj], path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    seen: set[str] = set()
    for i, port in enumerate(ports):
        p, name = f"{path}[{i}]", port.get("name") or ""
        if name:
            msgs = names.is_valid_port_name(name)
            if msgs:
                errs += _invalid_each(f"{p}.name", name, msgs)
            elif name in seen:
                errs.append(duplicate(f"{p}.name", name))
            seen.add(name)
        number = port.get("containerPort") or 0
        if number == 0:
            errs.append(required(f"{p}.containerPort"))
        else:
            errs += _invalid_each(f"{p}.containerPort", number, names.is_valid_port_num(number))
        host = port.get("hostPort") or 0
        if host:
            errs += _invalid_each(f"{p}.hostPort", host, names.is_valid_port_num(host))
        errs += _enum(f"{p}.protocol", port.get("protocol"), _PROTOCOLS)
    return errs


def _env(env: list[Obj], path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    for i, var in enumerate(env):
        p, name = f"{path}[{i}]", var.get("name") or ""
        if not name:
            errs.append(required(f"{p}.name"))
        else:
            errs += _invalid_each(f"{p}.name", name, names.is_env_var_name(name))
        if var.get("valueFrom") is not None:
            errs += _env_value_from(var, f"{p}.valueFrom")
    return errs


def _env_value_from(var: Obj, path: str) -> list[FieldError]:
    source = var["valueFrom"]
    kinds = [
        k
        for k in ("fieldRef", "resourceFieldRef", "configMapKeyRef", "secretKeyRef")
        if source.get(k)
    ]
    errs: list[FieldError] = []
    if not kinds:
        return [
            invalid(
                path,
                "",
                "must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or "
                "`secretKeyRef`",
            )
        ]
    if var.get("value"):
        errs.append(invalid(path, "", "may not be specified when `value` is not empty"))
    if len(kinds) > 1:
        errs.append(invalid(path, "", "may not have more than one field specified at a time"))
    for kind in ("configMapKeyRef", "secretKeyRef"):
        ref = source.get(kind)
        if ref:
            errs += _key_selector(ref, f"{path}.{kind}")
    if source.get("fieldRef"):
        errs += _field_ref(source["fieldRef"], f"{path}.fieldRef")
    return errs


def _key_selector(ref: Obj, path: str) -> list[FieldError]:
    errs = [] if ref.get("name") else [required(f"{path}.name")]
    key = ref.get("key") or ""
    if not key:
        errs.append(required(f"{path}.key"))
    else:
        errs += _invalid_each(f"{path}.key", key, names.is_config_map_key(key))
    return errs


def _field_ref(ref: Obj, path: str) -> list[FieldError]:
    field_path = ref.get("fieldPath") or ""
    if not ref.get("apiVersion"):
        return [required(f"{path}.apiVersion")]
    if not field_path:
        return [required(f"{path}.fieldPath")]
    match = _SUBSCRIPTED_FIELD.match(field_path)
    if match:
        key = match.group(2)
        return _invalid_each(f"{path}.fieldPath", key, names.is_qualified_name(key.lower()))
    if field_path in _ENV_FIELD_PATHS and field_path not in (
        "metadata.labels",
        "metadata.annotations",
    ):
        return []
    return [not_supported(f"{path}.fieldPath", field_path, _ENV_FIELD_PATHS)]


def _env_from(sources: list[Obj], path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    for i, source in enumerate(sources):
        p = f"{path}[{i}]"
        prefix = source.get("prefix") or ""
        if prefix:
            errs += _invalid_each(f"{p}.prefix", prefix, names.is_env_var_name(prefix))
        refs = [k for k in ("configMapRef", "secretRef") if source.get(k) is not None]
        if len(refs) > 1:
            errs.append(invalid(p, "", "may not have more than one field specified at a time"))
        for kind in refs:
            if not source[kind].get("name"):
                errs.append(required(f"{p}.{kind}.name"))
    return errs


def _volume_mounts(mounts: list[Obj], path: str, volumes: dict[str, Obj]) -> list[FieldError]:
    errs: list[FieldError] = []
    seen: set[str] = set()
    for i, mount in enumerate(mounts):
        p, name = f"{path}[{i}]", mount.get("name") or ""
        if not name:
            errs.append(required(f"{p}.name"))
        if name not in volumes:
            errs.append(not_found(f"{p}.name", name))
        mount_path = mount.get("mountPath") or ""
        if not mount_path:
            errs.append(required(f"{p}.mountPath"))
        elif mount_path in seen:
            errs.append(invalid(f"{p}.mountPath", mount_path, "must be unique"))
        seen.add(mount_path)
        sub_path = mount.get("subPath") or ""
        if sub_path:
            errs += _descending_path(sub_path, f"{path}.subPath")
    return errs


def _descending_path(value: str, path: str) -> list[FieldError]:
    if value.startswith("/"):
        return [invalid(path, value, "must be a relative path")]
    if ".." in value.split("/"):
        return [invalid(path, value, "must not contain '..'")]
    return []


_PROBE_HANDLERS = ("exec", "httpGet", "tcpSocket", "grpc")


def _probe(probe: Obj, path: str, single_success: bool) -> list[FieldError]:
    given = [h for h in _PROBE_HANDLERS if probe.get(h) is not None]
    errs: list[FieldError] = []
    if not given:
        errs.append(required(path, "must specify a handler type"))
    errs += [
        forbidden(f"{path}.{h}", "may not specify more than 1 handler type") for h in given[1:]
    ]
    for field_name in (
        "initialDelaySeconds",
        "timeoutSeconds",
        "periodSeconds",
        "successThreshold",
        "failureThreshold",
    ):
        errs += _nonnegative(f"{path}.{field_name}", probe.get(field_name))
    if single_success and probe.get("successThreshold", 1) != 1:
        errs.append(invalid(f"{path}.successThreshold", probe["successThreshold"], "must be 1"))
    for handler in ("httpGet", "tcpSocket"):
        if probe.get(handler) is not None:
            errs += _port_num_or_name(probe[handler].get("port"), f"{path}.{handler}.port")
    return errs


def _port_num_or_name(port: Any, path: str) -> list[FieldError]:
    if isinstance(port, int):
        return _invalid_each(path, port, names.is_valid_port_num(port))
    if isinstance(port, str):
        return _invalid_each(path, port, names.is_valid_port_name(port))
    return [required(path)]


def _tolerations(tolerations: list[Obj], path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    for i, t in enumerate(tolerations):
        p = f"{path}[{i}]"
        key, op, value = t.get("key") or "", t.get("operator") or "", t.get("value") or ""
        effect = t.get("effect") or ""
        if key:
            errs += _invalid_each(f"{p}.key", key, names.is_qualified_name(key))
        if not key and op != "Exists":
            errs.append(
                invalid(
                    f"{p}.operator",
                    op,
                    'operator must be Exists when `key` is empty, which means "match all values '
                    'and all keys"',
                )
            )
        if t.get("tolerationSeconds") is not None and effect != "NoExecute":
            errs.append(
                invalid(
                    f"{p}.effect",
                    effect,
                    "effect must be 'NoExecute' when `tolerationSeconds` is set",
                )
            )
        if op in ("Equal", ""):
            msgs = names.is_label_value(value)
            if msgs:
                errs.append(invalid(f"{p}.operator", value, ";".join(msgs)))
        elif op == "Exists":
            if value:
                errs.append(
                    invalid(f"{p}.operator", t, "value must be empty when `operator` is 'Exists'")
                )
        else:
            errs.append(not_supported(f"{p}.operator", op, ("Equal", "Exists")))
        if effect:
            errs += _enum(f"{p}.effect", effect, _TAINT_EFFECTS)
    return errs


def _pod(obj: Obj, old: Obj | None) -> list[FieldError]:
    errs = validate_pod_spec(obj.get("spec") or {}, "spec")
    if old is not None:
        errs += _pod_update(obj.get("spec") or {}, old.get("spec") or {})
    return errs


_POD_UPDATE_MESSAGE = (
    "pod updates may not change fields other than `spec.containers[*].image`,"
    "`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only "
    "additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set "
    "to 1 if it was previously negative)"
)


def _pod_update(new: Obj, old: Obj) -> list[FieldError]:
    """kube's `ValidatePodUpdate`: a pod's spec is immutable but for a few fields."""
    errs: list[FieldError] = []
    deadline, old_deadline = new.get("activeDeadlineSeconds"), old.get("activeDeadlineSeconds")
    if old_deadline is not None:
        if deadline is None:
            errs.append(
                invalid(
                    "spec.activeDeadlineSeconds",
                    None,
                    "must not update from a positive integer to nil value",
                )
            )
        elif deadline > old_deadline:
            errs.append(
                invalid(
                    "spec.activeDeadlineSeconds",
                    deadline,
                    "must be less than or equal to previous value",
                )
            )
    munged = copy.deepcopy(new)
    for kind in ("containers", "initContainers"):
        mine, theirs = munged.get(kind) or [], old.get(kind) or []
        if len(mine) == len(theirs):
            for c, o in zip(mine, theirs, strict=True):
                c["image"] = o.get("image")
    _copy_field(munged, old, "activeDeadlineSeconds")
    if _is_superset(new.get("tolerations") or [], old.get("tolerations") or []):
        _copy_field(munged, old, "tolerations")
    if _is_superset(old.get("schedulingGates") or [], new.get("schedulingGates") or []):
        _copy_field(munged, old, "schedulingGates")
    grace, old_grace = (
        new.get("terminationGracePeriodSeconds"),
        old.get("terminationGracePeriodSeconds"),
    )
    if grace == 1 and old_grace is not None and old_grace < 0:
        _copy_field(munged, old, "terminationGracePeriodSeconds")
    if munged != old:
        diff = "\n".join(f"  {line}" for line in _diff("spec", old, munged))
        errs.append(forbidden("spec", f"{_POD_UPDATE_MESSAGE}\n{diff}"))
    return errs


def _copy_field(target: Obj, source: Obj, name: str) -> None:
    if name in source:
        target[name] = copy.deepcopy(source[name])
    else:
        target.pop(name, None)


def _is_superset(bigger: list[Any], smaller: list[Any]) -> bool:
    return all(item in bigger for item in smaller)


def _diff(path: str, old: Any, new: Any) -> list[str]:
    """Changed leaf paths between two JSON values, as `path: old -> new` lines."""
    if isinstance(old, dict) and isinstance(new, dict):
        out: list[str] = []
        for key in list(old) + [k for k in new if k not in old]:
            out += _diff(_join(path, key), old.get(key), new.get(key))
        return out
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        return [
            line
            for i, (a, b) in enumerate(zip(old, new, strict=True))
            for line in _diff(f"{path}[{i}]", a, b)
        ]
    return [] if old == new else [f"{path}: {go_value(old)} -> {go_value(new)}"]


# -- workloads ----------------------------------------------------------------------------------


def _pod_template_for_replicas(spec: Obj, path: str) -> list[FieldError]:
    """kube's selector/template checks shared by Deployments and ReplicaSets."""
    errs: list[FieldError] = []
    selector = spec.get("selector")
    template = spec.get("template") or {}
    if selector is None:
        errs.append(required(f"{path}.selector"))
    else:
        errs += validate_label_selector(selector, f"{path}.selector")
        if not selector.get("matchLabels") and not selector.get("matchExpressions"):
            errs.append(
                invalid(f"{path}.selector", selector, "empty selector is invalid for deployment")
            )
    template_labels = (template.get("metadata") or {}).get("labels") or {}
    if selector:
        try:
            parsed = label_selectors.from_label_selector(selector)
        except label_selectors.LabelSelectorError:
            errs.append(invalid(f"{path}.selector", selector, "invalid label selector"))
        else:
            if not parsed.empty() and not parsed.matches(template_labels):
                errs.append(
                    invalid(
                        f"{path}.template.metadata.labels",
                        template_labels,
                        "`selector` does not match template `labels`",
                    )
                )
    errs += _pod_template(template, f"{path}.template")
    template_spec = template.get("spec") or {}
    policy = template_spec.get("restartPolicy")
    if policy != "Always":
        errs.append(not_supported(f"{path}.template.spec.restartPolicy", policy, ("Always",)))
    if template_spec.get("activeDeadlineSeconds") is not None:
        errs.append(
            forbidden(
                f"{path}.template.spec.activeDeadlineSeconds",
                "activeDeadlineSeconds in ReplicaSet is not Supported",
            )
        )
    errs += _nonnegative(f"{path}.replicas", spec.get("replicas"))
    errs += _nonnegative(f"{path}.minReadySeconds", spec.get("minReadySeconds"))
    return errs


def _pod_template(template: Obj, path: str) -> list[FieldError]:
    meta = template.get("metadata") or {}
    errs = validate_labels(meta.get("labels") or {}, f"{path}.metadata.labels")
    errs += validate_annotations(meta.get("annotations") or {}, f"{path}.metadata.annotations")
    return errs + validate_pod_spec(template.get("spec") or {}, f"{path}.spec")


def _deployment(obj: Obj, old: Obj | None) -> list[FieldError]:
    spec = obj.get("spec") or {}
    errs = _pod_template_for_replicas(spec, "spec")
    errs += _deployment_strategy(spec.get("strategy") or {}, "spec.strategy")
    errs += _nonnegative("spec.revisionHistoryLimit", spec.get("revisionHistoryLimit"))
    deadline = spec.get("progressDeadlineSeconds")
    if deadline is not None:
        errs += _nonnegative("spec.progressDeadlineSeconds", deadline)
        if deadline <= spec.get("minReadySeconds", 0):
            errs.append(
                invalid(
                    "spec.progressDeadlineSeconds", deadline, "must be greater than minReadySeconds"
                )
            )
    if old is not None:
        errs += immutable(
            "spec.selector", spec.get("selector"), (old.get("spec") or {}).get("selector")
        )
    return errs


def _deployment_strategy(strategy: Obj, path: str) -> list[FieldError]:
    kind, rolling = strategy.get("type"), strategy.get("rollingUpdate")
    if kind == "Recreate":
        if rolling is not None:
            return [
                forbidden(
                    f"{path}.rollingUpdate",
                    "may not be specified when strategy `type` is 'Recreate'",
                )
            ]
        return []
    if kind != "RollingUpdate":
        return _enum(f"{path}.type", kind, ("Recreate", "RollingUpdate"))
    if rolling is None:
        return [required(f"{path}.rollingUpdate", "this should be defaulted and never be nil")]
    p = f"{path}.rollingUpdate"
    errs: list[FieldError] = []
    for name in ("maxUnavailable", "maxSurge"):
        errs += _int_or_percent(rolling.get(name), f"{p}.{name}")
    if (
        _int_or_percent_value(rolling.get("maxUnavailable")) == 0
        and _int_or_percent_value(rolling.get("maxSurge")) == 0
    ):
        errs.append(
            invalid(
                f"{p}.maxUnavailable",
                rolling.get("maxUnavailable"),
                "may not be 0 when `maxSurge` is 0",
            )
        )
    if (_percent(rolling.get("maxUnavailable")) or 0) > 100:
        errs.append(
            invalid(
                f"{p}.maxUnavailable",
                rolling.get("maxUnavailable"),
                "must not be greater than 100%",
            )
        )
    return errs


def _int_or_percent(value: Any, path: str) -> list[FieldError]:
    """kube's `ValidatePositiveIntOrPercent`."""
    if isinstance(value, str):
        return _invalid_each(path, value, names.percent_errors(value))
    return _nonnegative(path, value)


def _percent(value: Any) -> int | None:
    return int(value[:-1]) if isinstance(value, str) and names.is_percent(value) else None


def _int_or_percent_value(value: Any) -> int:
    """kube's `getIntOrPercentValue`: the number in `25%`, `3` or `"3"`."""
    percent = _percent(value)
    if percent is not None:
        return percent
    if isinstance(value, int):
        return value
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def _replica_set(obj: Obj, old: Obj | None) -> list[FieldError]:
    spec = obj.get("spec") or {}
    errs = _pod_template_for_replicas(spec, "spec")
    if old is not None:
        errs += immutable(
            "spec.selector", spec.get("selector"), (old.get("spec") or {}).get("selector")
        )
    return errs


# -- services -----------------------------------------------------------------------------------

_SERVICE_TYPES = ("ClusterIP", "ExternalName", "LoadBalancer", "NodePort")


def _service(obj: Obj, old: Obj | None) -> list[FieldError]:
    spec = obj.get("spec") or {}
    kind = spec.get("type")
    headless = spec.get("clusterIP") == "None"
    ports = spec.get("ports") or []
    errs: list[FieldError] = []
    if not ports and not headless and kind != "ExternalName":
        errs.append(required("spec.ports"))
    errs += _enum("spec.type", kind, _SERVICE_TYPES)
    if kind == "ExternalName":
        errs += _external_name(spec)
    errs += _service_ports(ports, kind)
    errs += _enum("spec.sessionAffinity", spec.get("sessionAffinity"), ("ClientIP", "None"))
    errs += _cluster_ip(spec)
    errs += _enum(
        "spec.internalTrafficPolicy", spec.get("internalTrafficPolicy"), ("Cluster", "Local"), False
    )
    errs += _enum(
        "spec.ipFamilyPolicy",
        spec.get("ipFamilyPolicy"),
        ("PreferDualStack", "RequireDualStack", "SingleStack"),
        False,
    )
    for i, family in enumerate(spec.get("ipFamilies") or []):
        errs += _enum(f"spec.ipFamilies[{i}]", family, ("IPv4", "IPv6"))
    policy = spec.get("externalTrafficPolicy")
    if policy and kind not in ("NodePort", "LoadBalancer"):
        errs.append(
            invalid(
                "spec.externalTrafficPolicy",
                policy,
                "may only be set when `type` is 'NodePort' or 'LoadBalancer'",
            )
        )
    errs += validate_labels(spec.get("selector") or {}, "spec.selector")
    if old is not None:
        old_spec = old.get("spec") or {}
        if (
            kind != "ExternalName"
            and old_spec.get("type") != "ExternalName"
            and old_spec.get("clusterIP")
        ):
            errs += immutable("spec.clusterIP", spec.get("clusterIP"), old_spec.get("clusterIP"))
    return errs


def _external_name(spec: Obj) -> list[FieldError]:
    errs: list[FieldError] = []
    if spec.get("clusterIP"):
        errs.append(forbidden("spec.clusterIP", "may not be set for ExternalName services"))
    name = spec.get("externalName") or ""
    if not name:
        return [*errs, required("spec.externalName")]
    return errs + _invalid_each(
        "spec.externalName", name, names.is_dns1123_subdomain(name.rstrip("."))
    )


def _service_ports(ports: list[Obj], kind: str | None) -> list[FieldError]:
    errs: list[FieldError] = []
    seen_names: set[str] = set()
    seen_ports: set[tuple[Any, Any]] = set()
    for i, port in enumerate(ports):
        p, name = f"spec.ports[{i}]", port.get("name") or ""
        if len(ports) > 1 and not name:
            errs.append(required(f"{p}.name"))
        elif name:
            errs += _invalid_each(f"{p}.name", name, names.is_dns1123_label(name))
            if name in seen_names:
                errs.append(duplicate(f"{p}.name", name))
            seen_names.add(name)
        errs += _invalid_each(
            f"{p}.port", port.get("port", 0), names.is_valid_port_num(port.get("port", 0))
        )
        errs += _enum(f"{p}.protocol", port.get("protocol"), _PROTOCOLS)
        if port.get("targetPort") is not None:
            errs += _port_num_or_name(port["targetPort"], f"{p}.targetPort")
        if port.get("nodePort") and kind == "ClusterIP":
            errs.append(forbidden(f"{p}.nodePort", "may not be used when `type` is 'ClusterIP'"))
        key = (port.get("port"), port.get("protocol"))
        if key in seen_ports:
            errs.append(duplicate(p, {"port": key[0], "protocol": key[1]}))
        seen_ports.add(key)
    return errs


def _cluster_ip(spec: Obj) -> list[FieldError]:
    errs: list[FieldError] = []
    ip = spec.get("clusterIP") or ""
    if ip and ip != "None" and not names.is_ip(ip):
        errs.append(
            invalid(
                "spec.clusterIP",
                ip,
                "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
            )
        )
    for i, each in enumerate(spec.get("clusterIPs") or []):
        if each != "None" and not names.is_ip(each):
            errs.append(
                invalid(
                    f"spec.clusterIPs[{i}]",
                    each,
                    "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
                )
            )
    ips = spec.get("clusterIPs") or []
    if ip and ips and ips[0] != ip:
        errs.append(invalid("spec.clusterIPs", ips, "first value must match `clusterIP`"))
    return errs


def _endpoints(obj: Obj, old: Obj | None) -> list[FieldError]:
    errs: list[FieldError] = []
    for i, subset in enumerate(obj.get("subsets") or []):
        p = f"subsets[{i}]"
        for kind in ("addresses", "notReadyAddresses"):
            for j, address in enumerate(subset.get(kind) or []):
                ip = address.get("ip") or ""
                if not names.is_ip(ip):
                    errs.append(
                        invalid(
                            f"{p}.{kind}[{j}].ip",
                            ip,
                            "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
                        )
                    )
        ports = subset.get("ports") or []
        for j, port in enumerate(ports):
            q = f"{p}.ports[{j}]"
            if len(ports) > 1 and not port.get("name"):
                errs.append(required(f"{q}.name"))
            errs += _invalid_each(
                f"{q}.port", port.get("port", 0), names.is_valid_port_num(port.get("port", 0))
            )
            errs += _enum(f"{q}.protocol", port.get("protocol"), _PROTOCOLS)
    return errs


# -- configuration ------------------------------------------------------------------------------


def _data_keys(obj: Obj, field_name: str, other: str | None = None) -> tuple[list[FieldError], int]:
    errs: list[FieldError] = []
    size = 0
    other_keys = obj.get(other) or {} if other else {}
    for key, value in (obj.get(field_name) or {}).items():
        p = f"{field_name}[{key}]"
        errs += _invalid_each(p, key, names.is_config_map_key(key))
        if key in other_keys:
            errs.append(invalid(p, key, f"duplicate of key present in {other}"))
        size += len(str(value).encode())
    return errs, size


def _config_map(obj: Obj, old: Obj | None) -> list[FieldError]:
    errs, size = _data_keys(obj, "data", "binaryData")
    more, binary_size = _data_keys(obj, "binaryData")
    errs += more
    # binaryData is base64 on the wire; kube counts decoded bytes.
    if size + binary_size * 3 // 4 > MAX_DATA_BYTES:
        errs.append(too_long("", MAX_DATA_BYTES))
    if old is not None:
        errs += _immutable_payload(obj, old, ("data", "binaryData"))
    return errs


def _immutable_payload(obj: Obj, old: Obj, fields: Sequence[str]) -> list[FieldError]:
    if not old.get("immutable"):
        return []
    errs: list[FieldError] = []
    if not obj.get("immutable"):
        errs.append(forbidden("immutable", "field is immutable when `immutable` is set"))
    for field_name in fields:
        if (obj.get(field_name) or {}) != (old.get(field_name) or {}):
            errs.append(forbidden(field_name, "field is immutable when `immutable` is set"))
    return errs


_SECRET_REQUIRED_KEYS = {
    "kubernetes.io/dockercfg": (".dockercfg",),
    "kubernetes.io/dockerconfigjson": (".dockerconfigjson",),
    "kubernetes.io/ssh-auth": ("ssh-privatekey",),
    "kubernetes.io/tls": ("tls.crt", "tls.key"),
}


def _secret(obj: Obj, old: Obj | None) -> list[FieldError]:
    errs, _ = _data_keys(obj, "data")
    data = obj.get("data") or {}
    size = sum(len(base64.b64decode(v)) for v in data.values())
    if size > MAX_DATA_BYTES:
        errs.append(too_long("data", MAX_DATA_BYTES))
    kind = obj.get("type") or ""
    errs += [required(f"data[{k}]") for k in _SECRET_REQUIRED_KEYS.get(kind, ()) if k not in data]
    if kind == "kubernetes.io/basic-auth" and "username" not in data and "password" not in data:
        errs += [required("data[username]"), required("data[password]")]
    if kind == "kubernetes.io/service-account-token":
        annotations = (obj.get("metadata") or {}).get("annotations") or {}
        if not annotations.get("kubernetes.io/service-account.name"):
            errs.append(required("metadata.annotations[kubernetes.io/service-account.name]"))
    if old is not None:
        errs += immutable("type", obj.get("type"), old.get("type"))
        errs += _immutable_payload(obj, old, ("data",))
    return errs


# -- cluster objects ----------------------------------------------------------------------------


def _namespace(obj: Obj, old: Obj | None) -> list[FieldError]:
    errs: list[FieldError] = []
    for i, name in enumerate((obj.get("spec") or {}).get("finalizers") or []):
        p = f"spec.finalizers[{i}]"
        msgs = names.is_qualified_name(name)
        if msgs:
            errs += _invalid_each(p, name, msgs)
        elif "/" not in name and name != "kubernetes":
            errs.append(
                invalid(
                    p, name, "name is neither a standard finalizer name nor is it fully qualified"
                )
            )
    phase = (obj.get("status") or {}).get("phase")
    errs += _enum("status.phase", phase, ("Active", "Terminating"), False)
    return errs


def _node(obj: Obj, old: Obj | None) -> list[FieldError]:
    spec = obj.get("spec") or {}
    errs: list[FieldError] = []
    for i, cidr in enumerate(spec.get("podCIDRs") or []):
        if not names.is_cidr(cidr):
            errs.append(
                invalid(
                    f"spec.podCIDRs[{i}]",
                    cidr,
                    "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)",
                )
            )
    errs += _taints(spec.get("taints") or [], "spec.taints")
    status = obj.get("status") or {}
    for field_name in ("capacity", "allocatable"):
        errs += _resource_list(status.get(field_name) or {}, f"status.{field_name}")
    if old is not None:
        old_spec = old.get("spec") or {}
        for field_name, what in (("podCIDRs", "podCIDR"), ("providerID", "providerID")):
            before = old_spec.get(field_name)
            if before and spec.get(field_name) != before:
                errs.append(
                    forbidden(
                        f"spec.{field_name}",
                        f'node updates may not change {what} except from "" to valid',
                    )
                )
    return errs


def _taints(taints: list[Obj], path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    seen: set[tuple[str, str]] = set()
    for i, taint in enumerate(taints):
        p, key, effect = f"{path}[{i}]", taint.get("key") or "", taint.get("effect") or ""
        errs += _invalid_each(f"{p}.key", key, names.is_qualified_name(key))
        value = taint.get("value") or ""
        errs += _invalid_each(f"{p}.value", value, names.is_label_value(value))
        errs += _enum(f"{p}.effect", effect, _TAINT_EFFECTS)
        if (key, effect) in seen:
            errs.append(duplicate(p, taint))
        seen.add((key, effect))
    return errs


_ACCESS_MODES = ("ReadOnlyMany", "ReadWriteMany", "ReadWriteOnce", "ReadWriteOncePod")


def _access_modes(modes: list[str], path: str, detail: str = "") -> list[FieldError]:
    if not modes:
        return [required(path, detail)]
    errs = [not_supported(path, m, _ACCESS_MODES) for m in modes if m not in _ACCESS_MODES]
    if "ReadWriteOncePod" in modes and len(modes) > 1:
        errs.append(forbidden(path, "may not use ReadWriteOncePod with other access modes"))
    return errs


def _persistent_volume(obj: Obj, old: Obj | None) -> list[FieldError]:
    spec = obj.get("spec") or {}
    errs = _access_modes(spec.get("accessModes") or [], "spec.accessModes")
    capacity = spec.get("capacity") or {}
    if not capacity:
        errs.append(required("spec.capacity"))
    for key in capacity:
        if key != "storage":
            errs.append(not_supported("spec.capacity", key, ("storage",)))
    errs += _resource_list(capacity, "spec.capacity")
    errs += _enum(
        "spec.persistentVolumeReclaimPolicy",
        spec.get("persistentVolumeReclaimPolicy"),
        ("Delete", "Recycle", "Retain"),
        False,
    )
    errs += _enum("spec.volumeMode", spec.get("volumeMode"), ("Block", "Filesystem"), False)
    class_name = spec.get("storageClassName") or ""
    if class_name:
        errs += _invalid_each(
            "spec.storageClassName", class_name, names.is_dns1123_subdomain(class_name)
        )
    sources = [k for k in _PV_SOURCES if spec.get(k) is not None]
    if not sources:
        errs.append(required("spec", "must specify a volume type"))
    errs += [forbidden(f"spec.{k}", "may not specify more than 1 volume type") for k in sources[1:]]
    if spec.get("hostPath") is not None and not spec["hostPath"].get("path"):
        errs.append(required("spec.hostPath.path"))
    if old is not None:
        old_spec = old.get("spec") or {}
        if any(spec.get(k) != old_spec.get(k) for k in _PV_SOURCES):
            errs.append(
                forbidden(
                    "spec.persistentvolumesource",
                    "spec.persistentvolumesource is immutable after creation",
                )
            )
    return errs


_PV_SOURCES = tuple(
    k
    for k in definition("io.k8s.api.core.v1.PersistentVolumeSpec")["properties"]
    if k
    not in (
        "accessModes",
        "capacity",
        "claimRef",
        "mountOptions",
        "nodeAffinity",
        "persistentVolumeReclaimPolicy",
        "storageClassName",
        "volumeAttributesClassName",
        "volumeMode",
    )
)


def validate_pvc_spec(spec: Obj, path: str) -> list[FieldError]:
    errs = _access_modes(
        spec.get("accessModes") or [], f"{path}.accessModes", "at least 1 access mode is required"
    )
    if spec.get("selector") is not None:
        errs += validate_label_selector(spec["selector"], f"{path}.selector")
    requests = (spec.get("resources") or {}).get("requests") or {}
    if "storage" not in requests:
        errs.append(required(f"{path}.resources[storage]"))
    else:
        p = f"{path}.resources.requests[storage]"
        errs += _quantity_value("storage", requests["storage"], p)
        if qty.parse(requests["storage"]).sign() == 0:
            errs.append(invalid(p, requests["storage"], "must be greater than zero"))
    errs += _enum(f"{path}.volumeMode", spec.get("volumeMode"), ("Block", "Filesystem"), False)
    class_name = spec.get("storageClassName") or ""
    if class_name:
        errs += _invalid_each(
            f"{path}.storageClassName", class_name, names.is_dns1123_subdomain(class_name)
        )
    return errs


def _persistent_volume_claim(obj: Obj, old: Obj | None) -> list[FieldError]:
    spec = obj.get("spec") or {}
    errs = validate_pvc_spec(spec, "spec")
    if old is None:
        return errs
    old_spec = old.get("spec") or {}
    mine, theirs = copy.deepcopy(spec), copy.deepcopy(old_spec)
    for s in (mine, theirs):
        s.pop("resources", None)
        s.pop("volumeAttributesClassName", None)
    if not old_spec.get("volumeName"):
        mine.pop("volumeName", None)  # binding sets it once
        theirs.pop("volumeName", None)
    if mine != theirs:
        errs.append(
            forbidden(
                "spec",
                "spec is immutable after creation except resources.requests and "
                "volumeAttributesClassName for bound claims",
            )
        )
    new_size = ((spec.get("resources") or {}).get("requests") or {}).get("storage")
    old_size = ((old_spec.get("resources") or {}).get("requests") or {}).get("storage")
    if new_size and old_size and qty.parse(new_size) < qty.parse(old_size):
        errs.append(
            forbidden(
                "spec.resources.requests.storage", "field can not be less than previous value"
            )
        )
    return errs


_QUOTA_SCOPES = (
    "BestEffort",
    "CrossNamespacePodAffinity",
    "NotBestEffort",
    "NotTerminating",
    "PriorityClass",
    "Terminating",
)


def _quota_resource_name(name: str, path: str) -> list[FieldError]:
    errs = _invalid_each(path, name, names.is_qualified_name(name))
    if not errs and "/" not in name and name not in _STANDARD_RESOURCES and not _is_hugepages(name):
        errs.append(invalid(path, name, "must be a standard resource for quota"))
    return errs


def _resource_quota(obj: Obj, old: Obj | None) -> list[FieldError]:
    spec = obj.get("spec") or {}
    errs = _resource_list(spec.get("hard") or {}, "spec.hard", quota=True)
    status = obj.get("status") or {}
    errs += _resource_list(status.get("hard") or {}, "status.hard", quota=True)
    errs += _resource_list(status.get("used") or {}, "status.used", quota=True)
    scopes = spec.get("scopes") or []
    if any(s not in _QUOTA_SCOPES for s in scopes):
        errs.append(invalid("spec.scopes", scopes, "unsupported scope"))
    return errs


_LIMIT_TYPES = ("Container", "PersistentVolumeClaim", "Pod")
_LIMIT_ORDER = (
    ("min", "max", "min value {} is greater than max value {}"),
    ("min", "defaultRequest", "min value {} is greater than default request value {}"),
    ("defaultRequest", "max", "default request value {} is greater than max value {}"),
    (
        "defaultRequest",
        "default",
        "default request value {} is greater than default limit value {}",
    ),
    ("min", "default", "min value {} is greater than default value {}"),
    ("default", "max", "default value {} is greater than max value {}"),
)


def _limit_range(obj: Obj, old: Obj | None) -> list[FieldError]:
    errs: list[FieldError] = []
    seen: set[str] = set()
    for i, limit in enumerate((obj.get("spec") or {}).get("limits") or []):
        p, kind = f"spec.limits[{i}]", limit.get("type") or ""
        errs += _enum(f"{p}.type", kind, _LIMIT_TYPES)
        if kind in seen:
            errs.append(duplicate(f"{p}.type", kind))
        seen.add(kind)
        for group in ("max", "min", "default", "defaultRequest", "maxLimitRequestRatio"):
            errs += _resource_list(limit.get(group) or {}, f"{p}.{group}")
        if kind == "Pod":
            for group in ("default", "defaultRequest"):
                if limit.get(group):
                    errs.append(
                        forbidden(f"{p}.{group}", "may not be specified when `type` is 'Pod'")
                    )
        errs += _limit_order(limit, p)
        for name, value in (limit.get("maxLimitRequestRatio") or {}).items():
            if qty.parse(value) < qty.parse("1"):
                errs.append(
                    invalid(
                        f"{p}.maxLimitRequestRatio[{name}]",
                        value,
                        "ratio must be greater than or equal to 1",
                    )
                )
    return errs


def _limit_order(limit: Obj, path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    for low_group, high_group, text in _LIMIT_ORDER:
        low, high = limit.get(low_group) or {}, limit.get(high_group) or {}
        for name in low:
            if name in high and qty.parse(low[name]) > qty.parse(high[name]):
                errs.append(
                    invalid(
                        f"{path}.{low_group}[{name}]", low[name], text.format(low[name], high[name])
                    )
                )
    return errs


# -- RBAC ---------------------------------------------------------------------------------------

RBAC_GROUP = "rbac.authorization.k8s.io"


def _policy_rules(rules: list[Obj], namespaced: bool) -> list[FieldError]:
    errs: list[FieldError] = []
    for i, rule in enumerate(rules):
        p = f"rules[{i}]"
        if not rule.get("verbs"):
            errs.append(required(f"{p}.verbs", "verbs must contain at least one value"))
        urls = rule.get("nonResourceURLs") or []
        if urls:
            if namespaced:
                errs.append(
                    invalid(
                        f"{p}.nonResourceURLs",
                        urls,
                        "namespaced rules cannot apply to non-resource URLs",
                    )
                )
            if rule.get("apiGroups") or rule.get("resources") or rule.get("resourceNames"):
                errs.append(
                    invalid(
                        f"{p}.nonResourceURLs",
                        urls,
                        "rules cannot apply to both regular resources and non-resource URLs",
                    )
                )
            continue
        if not rule.get("apiGroups"):
            errs.append(
                required(f"{p}.apiGroups", "resource rules must supply at least one api group")
            )
        if not rule.get("resources"):
            errs.append(
                required(f"{p}.resources", "resource rules must supply at least one resource")
            )
    return errs


def _role(obj: Obj, old: Obj | None) -> list[FieldError]:
    return _policy_rules(obj.get("rules") or [], namespaced=True)


def _cluster_role(obj: Obj, old: Obj | None) -> list[FieldError]:
    errs = _policy_rules(obj.get("rules") or [], namespaced=False)
    aggregation = obj.get("aggregationRule")
    if aggregation is not None:
        selectors = aggregation.get("clusterRoleSelectors") or []
        if not selectors:
            errs.append(
                required(
                    "aggregationRule.clusterRoleSelectors",
                    "at least one clusterRoleSelector required if aggregationRule is non-nil",
                )
            )
        for i, selector in enumerate(selectors):
            errs += validate_label_selector(selector, f"aggregationRule.clusterRoleSelectors[{i}]")
    return errs


def _role_ref(ref: Obj, kinds: Sequence[str]) -> list[FieldError]:
    errs: list[FieldError] = []
    if ref.get("apiGroup") != RBAC_GROUP:
        errs.append(not_supported("roleRef.apiGroup", ref.get("apiGroup", ""), (RBAC_GROUP,)))
    if ref.get("kind") not in kinds:
        errs.append(not_supported("roleRef.kind", ref.get("kind", ""), kinds))
    name = ref.get("name") or ""
    if not name:
        errs.append(required("roleRef.name"))
    else:
        errs += _invalid_each("roleRef.name", name, names.is_path_segment_name(name))
    return errs


def _subjects(subjects: list[Obj], namespaced: bool) -> list[FieldError]:
    errs: list[FieldError] = []
    for i, subject in enumerate(subjects):
        p, name, kind = f"subjects[{i}]", subject.get("name") or "", subject.get("kind") or ""
        group = subject.get("apiGroup") or ""
        if not name:
            errs.append(required(f"{p}.name"))
        if kind == "ServiceAccount":
            if name:
                errs += _invalid_each(f"{p}.name", name, names.is_dns1123_subdomain(name))
            if group:
                errs.append(not_supported(f"{p}.apiGroup", group, ("",)))
            if not namespaced and not subject.get("namespace"):
                errs.append(required(f"{p}.namespace"))
        elif kind in ("User", "Group"):
            if group != RBAC_GROUP:
                errs.append(not_supported(f"{p}.apiGroup", group, (RBAC_GROUP,)))
        else:
            errs.append(not_supported(f"{p}.kind", kind, ("ServiceAccount", "User", "Group")))
    return errs


def _binding(obj: Obj, old: Obj | None, namespaced: bool) -> list[FieldError]:
    kinds = ("Role", "ClusterRole") if namespaced else ("ClusterRole",)
    ref = obj.get("roleRef") or {}
    errs = _role_ref(ref, kinds) + _subjects(obj.get("subjects") or [], namespaced)
    if old is not None and ref != (old.get("roleRef") or {}):
        errs.append(invalid("roleRef", ref, "cannot change roleRef"))
    return errs


def _role_binding(obj: Obj, old: Obj | None) -> list[FieldError]:
    return _binding(obj, old, namespaced=True)


def _cluster_role_binding(obj: Obj, old: Obj | None) -> list[FieldError]:
    return _binding(obj, old, namespaced=False)


# -- coordination, events, access reviews -------------------------------------------------------


def _lease(obj: Obj, old: Obj | None) -> list[FieldError]:
    spec = obj.get("spec") or {}
    errs: list[FieldError] = []
    duration = spec.get("leaseDurationSeconds")
    if duration is not None and duration <= 0:
        errs.append(invalid("spec.leaseDurationSeconds", duration, "must be greater than 0"))
    errs += _nonnegative("spec.leaseTransitions", spec.get("leaseTransitions"))
    if spec.get("preferredHolder") and not spec.get("strategy"):
        errs.append(
            forbidden("spec.preferredHolder", "preferredHolder can only be set if strategy is set")
        )
    return errs


_EVENT_LIMITS = (("reportingInstance", 128), ("action", 128), ("reason", 128), ("message", 1024))


def _event(obj: Obj, old: Obj | None) -> list[FieldError]:
    """kube's `legacyValidateEvent` for core/v1 Events."""
    namespace = (obj.get("metadata") or {}).get("namespace") or ""
    involved = (obj.get("involvedObject") or {}).get("namespace") or ""
    errs: list[FieldError] = []
    if not obj.get("eventTime"):
        mismatch = namespace not in ("", "default") if not involved else namespace != involved
    else:
        mismatch = not involved and namespace not in ("default", "kube-system")
        errs += _new_style_event(obj)
    if mismatch:
        errs.insert(
            0, invalid("involvedObject.namespace", involved, "does not match event.namespace")
        )
    return errs


def _new_style_event(obj: Obj) -> list[FieldError]:
    errs: list[FieldError] = []
    controller = obj.get("reportingComponent") or ""
    if not controller:
        errs.append(required("reportingController"))
    errs += _invalid_each("reportingController", controller, names.is_qualified_name(controller))
    for field_name, limit in _EVENT_LIMITS:
        value = obj.get(field_name) or ""
        if not value and field_name != "message":
            errs.append(required(field_name))
        if len(value) > limit:
            errs.append(invalid(field_name, "", f"can have at most {limit} characters"))
    return errs


def _access_review(obj: Obj, old: Obj | None) -> list[FieldError]:
    """kube's `ValidateSubjectAccessReviewSpec` (and the self/local variants)."""
    spec = obj.get("spec") or {}
    resource, non_resource = spec.get("resourceAttributes"), spec.get("nonResourceAttributes")
    kind = obj.get("kind", "")
    errs: list[FieldError] = []
    if kind == "SelfSubjectRulesReview":
        return []
    if (resource is None) == (non_resource is None):
        errs.append(
            invalid(
                "spec.resourceAttributes",
                resource,
                "exactly one of nonResourceAttributes or resourceAttributes must be specified",
            )
        )
    reviews_other = kind in ("SubjectAccessReview", "LocalSubjectAccessReview")
    if reviews_other and not spec.get("user") and not spec.get("groups"):
        errs.append(
            invalid(
                "spec.user",
                spec.get("user", ""),
                "at least one of user or group must be specified",
            )
        )
    if kind == "LocalSubjectAccessReview" and resource is not None:
        namespace = (obj.get("metadata") or {}).get("namespace") or ""
        if resource.get("namespace", "") != namespace:
            errs.append(
                invalid(
                    "spec.resourceAttributes.namespace",
                    resource.get("namespace", ""),
                    "must match metadata.namespace",
                )
            )
    return errs


# -- the rule tables ----------------------------------------------------------------------------

_RULES: dict[tuple[str, str], Rule] = {
    ("", "Pod"): _pod,
    ("", "Service"): _service,
    ("", "Endpoints"): _endpoints,
    ("", "ConfigMap"): _config_map,
    ("", "Secret"): _secret,
    ("", "Namespace"): _namespace,
    ("", "Node"): _node,
    ("", "PersistentVolume"): _persistent_volume,
    ("", "PersistentVolumeClaim"): _persistent_volume_claim,
    ("", "ResourceQuota"): _resource_quota,
    ("", "LimitRange"): _limit_range,
    ("", "Event"): _event,
    ("apps", "Deployment"): _deployment,
    ("apps", "ReplicaSet"): _replica_set,
    (RBAC_GROUP, "Role"): _role,
    (RBAC_GROUP, "ClusterRole"): _cluster_role,
    (RBAC_GROUP, "RoleBinding"): _role_binding,
    (RBAC_GROUP, "ClusterRoleBinding"): _cluster_role_binding,
    ("coordination.k8s.io", "Lease"): _lease,
    **{
        ("authorization.k8s.io", kind): _access_review
        for kind in (
            "SubjectAccessReview",
            "LocalSubjectAccessReview",
            "SelfSubjectAccessReview",
            "SelfSubjectRulesReview",
        )
    },
}

_NAME_RULES: dict[tuple[str, str], names.NameValidator] = {
    ("", "Namespace"): names.name_is_dns_label,
    ("", "Service"): names.name_is_dns1035_label,
    **{
        (RBAC_GROUP, k): names.name_is_path_segment
        for k in ("Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding")
    },
}
