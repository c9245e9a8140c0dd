"""Kubernetes strategic merge patch.

Lists the schema marks with patch strategy "merge" are merged: by their
patch merge key for lists of objects, as a union for lists of scalars. Other
lists are replaced. Directives: `$patch: replace|merge|delete` on objects and
on list items, `$retainKeys`, `$deleteFromPrimitiveList/<field>`,
`$setElementOrder/<field>`; null deletes a field.
"""

from __future__ import annotations

import copy
from typing import Any

from hypernetes.api.patching._schema import Schema, child, items, list_info
from hypernetes.api.patching.errors import PatchError

_DELETE_FROM = "$deleteFromPrimitiveList/"
_ORDER = "$setElementOrder/"


def strategic_merge_patch(doc: dict[str, Any], patch: dict[str, Any], schema: Schema) -> Any:
    if not isinstance(patch, dict):
        raise PatchError("a strategic merge patch must be an object", 400)
    return _merge_map(copy.deepcopy(doc), patch, schema)


def _merge_map(original: Any, patch: dict[str, Any], schema: Schema | None) -> Any:
    directive = patch.get("$patch")
    if directive == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    if directive == "delete":
        return None
    if directive not in (None, "merge"):
        raise PatchError(f"unknown patch directive {directive!r}", 400)
    result: dict[str, Any] = original if isinstance(original, dict) else {}
    retain = patch.get("$retainKeys")
    orders = {}
    for key, value in patch.items():
        if key in ("$patch", "$retainKeys"):
            continue
        if key.startswith(_DELETE_FROM):
            field = key[len(_DELETE_FROM) :]
            if not isinstance(value, list):
                raise PatchError(f"{key} must be a list", 400)
            result[field] = [v for v in result.get(field) or [] if v not in value]
            continue
        if key.startswith(_ORDER):
            orders[key[len(_ORDER) :]] = value
            continue
        if value is None:
            result.pop(key, None)
            continue
        result[key] = _merge_value(result.get(key), value, child(schema, key))
        if result[key] is None and isinstance(value, dict) and value.get("$patch") == "delete":
            del result[key]
    for field, order in orders.items():
        if isinstance(result.get(field), list):
            result[field] = _reorder(result[field], order, child(schema, field))
    if retain is not None:
        if not isinstance(retain, list):
            raise PatchError("$retainKeys must be a list", 400)
        result = {k: v for k, v in result.items() if k in retain}
    return result


def _merge_value(original: Any, patch: Any, schema: Schema | None) -> Any:
    if isinstance(patch, dict):
        return _merge_map(original, patch, schema)
    if isinstance(patch, list):
        info = list_info(schema)
        if not info.merge:
            return [_strip(v) for v in copy.deepcopy(patch)]
        if info.kind == "map":
            return _merge_keyed(
                original if isinstance(original, list) else [], patch, info.keys[0], items(schema)
            )
        return _merge_primitives(original if isinstance(original, list) else [], patch)
    return copy.deepcopy(patch)


def _strip(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items() if not k.startswith("$")}
    return value


def _merge_primitives(original: list[Any], patch: list[Any]) -> list[Any]:
    result = list(original)
    for value in patch:
        if isinstance(value, dict):
            raise PatchError("directives are not allowed in a list of scalars", 400)
        if value not in result:
            result.append(value)
    return result


def _merge_keyed(
    original: list[Any], patch: list[Any], key: str, item_schema: Schema | None
) -> list[Any]:
    result = list(original)
    for item in patch:
        if not isinstance(item, dict):
            raise PatchError(f"items of a list merged by {key!r} must be objects", 400)
        directive = item.get("$patch")
        if directive == "replace":
            return [_strip(i) for i in patch if i.get("$patch") != "replace"]
        if key not in item:
            raise PatchError(f"map: {item} does not contain declared merge key: {key}")
        index = next(
            (i for i, o in enumerate(result) if isinstance(o, dict) and o.get(key) == item[key]),
            None,
        )
        if directive == "delete":
            if index is not None:
                del result[index]
            continue
        if index is None:
            result.append(_merge_map({}, item, item_schema))
        else:
            result[index] = _merge_map(result[index], item, item_schema)
    return result


def _reorder(values: list[Any], order: Any, schema: Schema | None) -> list[Any]:
    """Order `values` as `order` lists them; the others keep their place after."""
    if not isinstance(order, list):
        raise PatchError("$setElementOrder must be a list", 400)
    info = list_info(schema)
    key = info.keys[0] if info.kind == "map" and info.keys else None

    def ident(v: Any) -> Any:
        return v.get(key) if key and isinstance(v, dict) else v

    wanted = [ident(o) for o in order]
    ordered = sorted(
        (v for v in values if ident(v) in wanted), key=lambda v: wanted.index(ident(v))
    )
    return ordered + [v for v in values if ident(v) not in wanted]
