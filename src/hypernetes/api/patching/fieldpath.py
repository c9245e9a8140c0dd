"""Field sets in the `FieldsV1` encoding of `metadata.managedFields`.

A field set is kept as a set of leaf paths; each path is a tuple of elements
as FieldsV1 writes them: `f:<name>` for a field, `k:{"key":"value"}` for the
item of an associative list (keys sorted, compact JSON), `v:<json>` for the
item of a set, and `.` for "this list item itself".
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from hypernetes.api.patching._schema import Schema, child, items, list_info, map_is_atomic

Path = tuple[str, ...]
MISSING = object()

# Fields the server owns: never tracked (as kube).
_UNTRACKED_META = ("name", "namespace", "uid", "resourceVersion", "generation",
                   "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds",
                   "managedFields", "selfLink")  # fmt: skip


def _compact(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def item_key(item: dict[str, Any], keys: tuple[str, ...]) -> str:
    return "k:" + _compact({k: item[k] for k in keys if k in item})


def paths(obj: dict[str, Any], schema: Schema | None, ignored: Iterable[str] = ()) -> set[Path]:
    """The leaf paths of every field set in `obj` (server-owned fields left out)."""
    out: set[Path] = set()
    for key, value in obj.items():
        if key in ("apiVersion", "kind") or key in ignored:
            continue
        if key == "metadata" and isinstance(value, dict):
            meta = {k: v for k, v in value.items() if k not in _UNTRACKED_META}
            if meta:
                _walk(meta, child(schema, key), ("f:metadata",), out)
            continue
        _walk(value, child(schema, key), (f"f:{key}",), out)
    return out


def _walk(value: Any, schema: Schema | None, prefix: Path, out: set[Path]) -> None:
    if isinstance(value, dict) and value and not map_is_atomic(schema):
        for key, sub in value.items():
            _walk(sub, child(schema, key), (*prefix, f"f:{key}"), out)
        return
    if isinstance(value, list) and value:
        info = list_info(schema)
        if info.kind == "map" and all(isinstance(i, dict) for i in value):
            for item in value:
                element = (*prefix, item_key(item, info.keys))
                out.add((*element, "."))
                for key, sub in item.items():
                    _walk(sub, child(items(schema), key), (*element, f"f:{key}"), out)
            return
        if info.kind == "set":
            out.update((*prefix, "v:" + _compact(v)) for v in value)
            return
    out.add(prefix)


def value_at(obj: Any, path: Path) -> Any:
    """The value a path points to in `obj`, or MISSING."""
    node = obj
    for element in path:
        if element == ".":
            continue
        kind, _, rest = element.partition(":")
        if kind == "f":
            if not isinstance(node, dict) or rest not in node:
                return MISSING
            node = node[rest]
        elif kind == "k":
            wanted = json.loads(rest)
            node = next(
                (
                    i
                    for i in node or []
                    if isinstance(i, dict) and all(i.get(k) == v for k, v in wanted.items())
                ),
                MISSING,
            )
            if node is MISSING:
                return MISSING
        elif kind == "v":
            value = json.loads(rest)
            return value if isinstance(node, list) and value in node else MISSING
        else:
            return MISSING
    return node


def remove(obj: Any, path: Path) -> None:
    """Delete what `path` points to from `obj` (in place), if it is there."""
    if path and path[-1] == ".":
        path = path[:-1]
    if not path:
        return
    parent = value_at(obj, path[:-1])
    kind, _, rest = path[-1].partition(":")
    if kind == "f" and isinstance(parent, dict):
        parent.pop(rest, None)
    elif kind == "k" and isinstance(parent, list):
        wanted = json.loads(rest)
        parent[:] = [
            i
            for i in parent
            if not (isinstance(i, dict) and all(i.get(k) == v for k, v in wanted.items()))
        ]
    elif kind == "v" and isinstance(parent, list):
        value = json.loads(rest)
        parent[:] = [i for i in parent if i != value]


def to_fields_v1(leaves: Iterable[Path]) -> dict[str, Any]:
    root: dict[str, Any] = {}
    for path in sorted(leaves):
        node = root
        for element in path:
            node = node.setdefault(element, {})
    return root


def from_fields_v1(fields: Any, prefix: Path = ()) -> set[Path]:
    out: set[Path] = set()
    if not isinstance(fields, dict):
        return out
    for key, sub in fields.items():
        if key == "." or not sub:
            out.add((*prefix, key))
        else:
            out |= from_fields_v1(sub, (*prefix, key))
    return out


def display(path: Path) -> str:
    """A path as kube prints it in conflicts: `.spec.replicas`, `.spec.containers[name="web"]`."""
    text = ""
    for element in path:
        kind, _, rest = element.partition(":")
        if kind == "f":
            text += f".{rest}"
        elif kind == "k":
            text += (
                "[" + ",".join(f"{k}={json.dumps(v)}" for k, v in json.loads(rest).items()) + "]"
            )
        elif kind == "v":
            text += f"[={rest}]"
    return text
