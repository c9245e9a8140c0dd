"""Schema navigation for patches: built-in definitions and CRD schemas alike."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hypernetes.resources.schema import resolve

Schema = dict[str, Any]


def child(schema: Schema | None, key: str) -> Schema | None:
    """The schema of property `key` (or of the map's values), if known."""
    if not schema:
        return None
    node = resolve(schema)
    props = node.get("properties") or {}
    if key in props:
        return resolve(props[key])
    extra = node.get("additionalProperties")
    if isinstance(extra, dict):
        return resolve(extra)
    return None


def items(schema: Schema | None) -> Schema | None:
    if not schema:
        return None
    node = resolve(schema).get("items")
    return resolve(node) if isinstance(node, dict) else None


@dataclass(frozen=True)
class ListInfo:
    kind: str
    """"map", "set" or "atomic"."""
    keys: tuple[str, ...] = ()
    merge: bool = False
    """Strategic merge patch merges this list (patch strategy "merge")."""
    retain_keys: bool = False


def list_info(schema: Schema | None) -> ListInfo:
    if not schema:
        return ListInfo("atomic")
    node = resolve(schema)
    strategy = str(node.get("x-kubernetes-patch-strategy") or "")
    merge_key = node.get("x-kubernetes-patch-merge-key")
    list_type = node.get("x-kubernetes-list-type")
    map_keys = tuple(node.get("x-kubernetes-list-map-keys") or ())
    merge = "merge" in strategy.split(",")
    retain = "retainKeys" in strategy.split(",")
    if list_type == "map" or (merge and merge_key):
        return ListInfo("map", map_keys or (merge_key,), merge, retain)
    if list_type == "set" or (merge and not merge_key):
        return ListInfo("set", (), merge, retain)
    return ListInfo("atomic", (), merge, retain)


def map_is_atomic(schema: Schema | None) -> bool:
    return bool(schema) and resolve(schema or {}).get("x-kubernetes-map-type") == "atomic"


def retain_keys(schema: Schema | None) -> bool:
    if not schema:
        return False
    return "retainKeys" in str(resolve(schema).get("x-kubernetes-patch-strategy") or "")
