"""Access to the Kubernetes object schemas shipped by `kubernetes-validate`.

The PyPI package `kubernetes-validate` carries, per Kubernetes version, the
JSON schemas of every built-in type, including the OpenAPI extensions the
server needs (`x-kubernetes-patch-merge-key`, `x-kubernetes-list-map-keys`,
`x-kubernetes-group-version-kind`, ...). We depend on that data instead of
retyping it. This module loads it once and resolves `$ref`s.

Schemas are returned as they are stored: JSON-schema dicts in which a
nullable type is written `["string", "null"]`. `types_of()` hides that.
"""

from __future__ import annotations

import functools
import json
from importlib import resources as importlib_resources
from typing import Any

KUBERNETES_VERSION = "1.32.0"
"""The Kubernetes API version whose schemas the server speaks."""

Schema = dict[str, Any]

_REF_PREFIXES = ("#/$defs/", "/api/_definitions.json#/$defs/")


@functools.cache
def definitions() -> dict[str, Schema]:
    """All named definitions, keyed like `io.k8s.api.core.v1.Pod`."""
    root = importlib_resources.files("kubernetes_validate") / "kubernetes-json-schema"
    path = root / f"v{KUBERNETES_VERSION}-local" / "_definitions.json"
    with path.open("rb") as f:
        defs: dict[str, Schema] = json.load(f)["$defs"]
    return defs


def definition(name: str) -> Schema:
    """The definition called `name`; KeyError if there is none."""
    return definitions()[name]


def ref_name(ref: str) -> str:
    """The definition name a `$ref` points to."""
    for prefix in _REF_PREFIXES:
        if ref.startswith(prefix):
            return ref[len(prefix) :]
    raise ValueError(f"unsupported $ref {ref!r}")


def resolve(schema: Schema) -> Schema:
    """Follow `$ref`s (and single-element `allOf`) until a concrete schema.

    Keys written beside a `$ref` (such as `description` or the patch
    extensions on a property) are kept and win over the target's.
    """
    while True:
        if "$ref" in schema:
            target = definition(ref_name(schema["$ref"]))
            extra = {k: v for k, v in schema.items() if k != "$ref"}
            schema = {**target, **extra}
        elif "allOf" in schema and len(schema["allOf"]) == 1:
            extra = {k: v for k, v in schema.items() if k != "allOf"}
            schema = {**schema["allOf"][0], **extra}
        else:
            return schema


def types_of(schema: Schema) -> set[str]:
    """The JSON types a schema admits, without `null` (which means "unset")."""
    t = schema.get("type")
    if t is None:
        return set()
    if isinstance(t, str):
        return {t} - {"null"}
    return set(t) - {"null"}


def property_schema(schema: Schema, name: str) -> Schema | None:
    """The resolved schema of property `name` of an object schema, if known."""
    schema = resolve(schema)
    props = schema.get("properties", {})
    if name in props:
        return resolve(props[name])
    extra = schema.get("additionalProperties")
    if isinstance(extra, dict):
        return resolve(extra)
    return None


def items_schema(schema: Schema) -> Schema | None:
    """The resolved schema of the items of an array schema, if known."""
    items = resolve(schema).get("items")
    return resolve(items) if isinstance(items, dict) else None


def gvk_definitions() -> dict[tuple[str, str, str], str]:
    """Map (group, version, kind) to the definition name of that kind."""
    out: dict[tuple[str, str, str], str] = {}
    for name, schema in definitions().items():
        for gvk in schema.get("x-kubernetes-group-version-kind", []):
            key = (gvk["group"], gvk["version"], gvk["kind"])
            # Several definitions may claim one GVK (e.g. DeleteOptions); prefer
            # the one in the group's own package.
            out.setdefault(key, name)
    return out
