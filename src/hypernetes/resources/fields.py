"""Field selectors (`?fieldSelector=`), with kube's syntax, per-kind field sets and messages.

kube treats a field selector in two steps, and so do we:

1. `check_supported`: every field label must be one the kind accepts (kube's per-kind
   `AddFieldLabelConversionFunc`, or the default that accepts only `metadata.name` and
   `metadata.namespace`). The error text differs with the kind, as it does in kube.
2. `matches`: the object is projected to a flat `label -> string` map (kube's
   `ToSelectableFields`) and every requirement is compared with it. A label the projection
   does not set reads as "" (kube's `status.podIPs` is such a label).

CRD-served kinds accept `metadata.name`, `metadata.namespace` when namespaced, and the CRD
version's `selectableFields` (read from `rt.selectable_fields` when the registry carries it).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from typing import Any

from hypernetes.resources.registry import ResourceType

Obj = dict[str, Any]
Projection = Callable[[Obj], str]

EQUALS, NOT_EQUALS = "=", "!="
_OPERATORS = ("!=", "==", "=")  # "==" before "=" so that "a==b" does not read as a="=b"


class FieldSelectorError(ValueError):
    """A selector kube would answer with 400 Bad Request; the message is kube's."""


@dataclasses.dataclass(frozen=True)
class Requirement:
    """`field = value` (also written `==`) or `field != value`."""

    field: str
    operator: str
    value: str

    def __str__(self) -> str:
        return f"{self.field}{self.operator}{escape_value(self.value)}"


# -- syntax ---------------------------------------------------------------------------------------


def _split_terms(selector: str) -> list[str]:
    """Split on commas that are not escaped with a backslash (escapes are kept)."""
    terms, start, escaped = [], 0, False
    for i, c in enumerate(selector):
        if escaped:
            escaped = False
        elif c == "\\":
            escaped = True
        elif c == ",":
            terms.append(selector[start:i])
            start = i + 1
    terms.append(selector[start:])
    return terms


def _split_term(term: str) -> tuple[str, str, str] | None:
    """The first operator splits: the field part of a term cannot be escaped."""
    for i in range(len(term)):
        for op in _OPERATORS:
            if term.startswith(op, i):
                return term[:i], op, term[i + len(op) :]
    return None


def unescape_value(value: str) -> str:
    """Undo `escape_value`; kube refuses bare `,` `=` and unknown escapes."""
    out, escaped = [], False
    for c in value:
        if escaped:
            if c not in "\\,=":
                raise FieldSelectorError(f"invalid field selector: invalid escape sequence: \\{c}")
            out.append(c)
            escaped = False
        elif c == "\\":
            escaped = True
        elif c in ",=":
            # kube prints the rune with %v, i.e. as its code point number.
            raise FieldSelectorError(
                f"invalid field selector: unescaped character in value: {ord(c)}"
            )
        else:
            out.append(c)
    if escaped:
        raise FieldSelectorError("invalid field selector: invalid escape sequence: \\")
    return "".join(out)


def escape_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=")


def parse(selector: str) -> list[Requirement]:
    """Parse `a=b,c!=d`; the empty selector has no requirement."""
    requirements = []
    for term in sorted(_split_terms(selector)) if selector else []:
        if not term:
            continue
        split = _split_term(term)
        if split is None:
            raise FieldSelectorError(f"invalid selector: '{selector}'; can't understand '{term}'")
        field, op, value = split
        requirements.append(
            Requirement(field, NOT_EQUALS if op == "!=" else EQUALS, unescape_value(value))
        )
    return requirements


# -- per-kind field sets --------------------------------------------------------------------------


def _path(*keys: str) -> Projection:
    def get(obj: Obj) -> str:
        value: Any = obj
        for key in keys:
            value = value.get(key) if isinstance(value, dict) else None
        return _as_field_string(value)

    return get


def _as_field_string(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    return str(value)


def _pod_ip(pod: Obj) -> str:
    status = pod.get("status") or {}
    ips = status.get("podIPs") or []
    return (ips[0].get("ip") if ips else None) or status.get("podIP") or ""


def _event_source(event: Obj) -> str:
    return (event.get("source") or {}).get("component") or event.get("reportingComponent") or ""


def _bool_path(*keys: str) -> Projection:
    # kube projects the typed boolean, so an unset field reads "false", not "".
    return lambda obj: _path(*keys)(obj) or "false"


def _int_path(*keys: str) -> Projection:
    return lambda obj: _path(*keys)(obj) or "0"


_POD: dict[str, Projection] = {
    "spec.nodeName": _path("spec", "nodeName"),
    "spec.restartPolicy": _path("spec", "restartPolicy"),
    "spec.schedulerName": _path("spec", "schedulerName"),
    "spec.serviceAccountName": _path("spec", "serviceAccountName"),
    "spec.hostNetwork": _bool_path("spec", "hostNetwork"),
    "status.phase": _path("status", "phase"),
    "status.podIP": _pod_ip,
    # Accepted by kube but never projected: it only ever matches "".
    "status.podIPs": lambda _: "",
    "status.nominatedNodeName": _path("status", "nominatedNodeName"),
}

_EVENT: dict[str, Projection] = {
    **{
        f"involvedObject.{k}": _path("involvedObject", k)
        for k in ("kind", "namespace", "name", "uid", "apiVersion", "resourceVersion", "fieldPath")
    },
    "reason": _path("reason"),
    "reportingComponent": _path("reportingComponent"),
    "source": _event_source,
    "type": _path("type"),
}


@dataclasses.dataclass(frozen=True)
class _KindFields:
    fields: dict[str, Projection]
    namespace: bool = True
    """Whether `metadata.namespace` is accepted (kube refuses it for Node and Namespace)."""
    message: str = "field label not supported: {label}"
    aliases: dict[str, str] = dataclasses.field(default_factory=dict)


_DEFAULT_MESSAGE = (
    '"{label}" is not a known field selector: only "metadata.name", "metadata.namespace"'
)
_DEFAULT = _KindFields({}, message=_DEFAULT_MESSAGE)

# Kinds for which kube registers a field label conversion (core/v1 conversion.go). kube's apps/v1
# registers none; ReplicaSet's `status.replicas` (from extensions/v1beta1) is kept on purpose.
_KINDS: dict[tuple[str, str], _KindFields] = {
    ("", "Pod"): _KindFields(_POD, aliases={"spec.host": "spec.nodeName"}),
    ("", "Event"): _KindFields(_EVENT),
    ("", "Node"): _KindFields({"spec.unschedulable": _bool_path("spec", "unschedulable")}, False),
    ("", "Namespace"): _KindFields({"status.phase": _path("status", "phase")}, False),
    ("", "Secret"): _KindFields({"type": _path("type")}),
    ("", "Service"): _KindFields(
        {"spec.clusterIP": _path("spec", "clusterIP"), "spec.type": _path("spec", "type")}
    ),
    ("", "ReplicationController"): _KindFields(
        {"status.replicas": _int_path("status", "replicas")}
    ),
    ("apps", "ReplicaSet"): _KindFields({"status.replicas": _int_path("status", "replicas")}),
}


def _selectable_fields(rt: ResourceType) -> Iterable[str]:
    # The registry may carry a CRD version's selectableFields as JSON paths (".spec.color").
    paths = getattr(rt, "selectable_fields", ()) or ()
    return [p.get("jsonPath", "") if isinstance(p, dict) else str(p) for p in paths]


def _kind_fields(rt: ResourceType) -> _KindFields:
    if rt.crd_name is not None or rt.crd_schema is not None:
        fields = {}
        for path in _selectable_fields(rt):
            label = path.lstrip(".")
            fields[label] = _path(*label.split("."))
        return _KindFields(fields, namespace=rt.namespaced)
    return _KINDS.get((rt.group, rt.kind), _DEFAULT)


def supported(rt: ResourceType) -> set[str]:
    """The field labels `rt` accepts (aliases such as Pod's `spec.host` included)."""
    kind = _kind_fields(rt)
    labels = {"metadata.name", *kind.fields, *kind.aliases}
    if kind.namespace:
        labels.add("metadata.namespace")
    return labels


def check_supported(rt: ResourceType, requirements: Iterable[Requirement]) -> None:
    """Raise FieldSelectorError, worded as kube does, for the first label `rt` does not accept."""
    allowed = supported(rt)
    message = _kind_fields(rt).message
    for req in requirements:
        if req.field not in allowed:
            raise FieldSelectorError(message.format(label=req.field))


def _value(kind: _KindFields, obj: Obj, label: str) -> str:
    label = kind.aliases.get(label, label)
    meta = obj.get("metadata") or {}
    if label == "metadata.name":
        return meta.get("name") or ""
    if label == "metadata.namespace":
        return (meta.get("namespace") or "") if kind.namespace else ""
    projection = kind.fields.get(label)
    return projection(obj) if projection else ""


def field_value(rt: ResourceType, obj: Obj, label: str) -> str:
    """The string kube would compare for `label`; "" when the projection does not set it."""
    return _value(_kind_fields(rt), obj, label)


def matches(rt: ResourceType, obj: Obj, requirements: Iterable[Requirement]) -> bool:
    """Whether `obj` satisfies every requirement."""
    kind = _kind_fields(rt)
    for req in requirements:
        if (_value(kind, obj, req.field) == req.value) != (req.operator == EQUALS):
            return False
    return True
