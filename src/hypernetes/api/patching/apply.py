"""Server-side apply and the field ownership of ordinary writes.

Ownership lives in `metadata.managedFields`: one entry per (manager,
operation, subresource), each with the set of fields it owns. Apply makes the
applier own exactly the fields of its configuration: fields it owned before
and no longer applies are removed unless someone else owns them too, and a
field another manager owns with a different value is a conflict unless the
apply is forced (then ownership moves). Ordinary writes (create, update,
patch) give their manager the fields they changed and take those fields from
everyone else, so a later apply sees who changed what.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from hypernetes.api.patching import fieldpath
from hypernetes.api.patching._schema import Schema, child, items, list_info, map_is_atomic
from hypernetes.api.patching.fieldpath import Path

Obj = dict[str, Any]


@dataclass(frozen=True)
class Conflict:
    manager: str
    path: str


class ApplyConflict(Exception):
    def __init__(self, conflicts: list[Conflict]) -> None:
        self.conflicts = conflicts
        lines = "\n".join(f'- conflict with "{c.manager}": {c.path}' for c in conflicts)
        super().__init__(f"Apply failed with {len(conflicts)} conflict(s):\n{lines}")


@dataclass
class _Entry:
    manager: str
    operation: str
    subresource: str
    api_version: str
    time: str
    fields: set[Path]

    def key(self) -> tuple[str, str, str]:
        return (self.manager, self.operation, self.subresource)

    def to_json(self) -> Obj:
        out: Obj = {
            "manager": self.manager,
            "operation": self.operation,
            "apiVersion": self.api_version,
            "time": self.time,
            "fieldsType": "FieldsV1",
            "fieldsV1": fieldpath.to_fields_v1(self.fields),
        }
        if self.subresource:
            out["subresource"] = self.subresource
        return out


def _entries(obj: Obj | None) -> list[_Entry]:
    out = []
    for raw in ((obj or {}).get("metadata") or {}).get("managedFields") or []:
        if not isinstance(raw, dict) or raw.get("fieldsType", "FieldsV1") != "FieldsV1":
            continue
        out.append(
            _Entry(
                str(raw.get("manager", "")),
                str(raw.get("operation", "Update")),
                str(raw.get("subresource", "")),
                str(raw.get("apiVersion", "")),
                str(raw.get("time", "")),
                fieldpath.from_fields_v1(raw.get("fieldsV1")),
            )
        )
    return out


def _store(obj: Obj, entries: list[_Entry]) -> Obj:
    kept = [e.to_json() for e in entries if e.fields]
    meta = obj.setdefault("metadata", {})
    if kept:
        meta["managedFields"] = kept
    else:
        meta.pop("managedFields", None)
    return obj


def apply(
    live: Obj | None,
    config: Obj,
    *,
    manager: str,
    force: bool,
    schema: Schema | None,
    now: str,
    ignored_paths: tuple[str, ...] = (),
) -> Obj:
    applied = fieldpath.paths(config, schema, ignored_paths)
    entries = _entries(live)
    current = copy.deepcopy(live) if live is not None else {}
    mine = next((e for e in entries if e.key() == (manager, "Apply", "")), None)
    others = [e for e in entries if e is not mine]
    conflicts: list[Conflict] = []
    taken: dict[int, set[Path]] = {}
    for entry in others:
        clash = {p for p in applied & entry.fields if _differs(config, current, p)}
        if clash:
            taken[id(entry)] = clash
            conflicts += [Conflict(entry.manager, fieldpath.display(p)) for p in sorted(clash)]
    if conflicts and not force:
        raise ApplyConflict(conflicts)
    owned_by_others = set().union(*(e.fields for e in others)) if others else set()
    stale = (mine.fields if mine else set()) - applied - owned_by_others
    # Whole list items first (their fields go with them), unless someone else
    # still owns a field inside the item.
    for path in sorted(stale, key=_depth):
        if path[-1] == "." and any(o[: len(path) - 1] == path[:-1] for o in owned_by_others):
            continue
        fieldpath.remove(current, path)
    result = _merge(current, config, schema, top=True, ignored=ignored_paths)
    for entry in others:
        entry.fields -= taken.get(id(entry), set())
    api_version = str(config.get("apiVersion") or result.get("apiVersion") or "")
    new_mine = _Entry(manager, "Apply", "", api_version, now, applied)
    return _store(result, [*others, new_mine])


def _depth(path: Path) -> tuple[int, Path]:
    """Sort key: a list item ("." path) comes before the fields inside it."""
    return (len(path) - 1 if path[-1] == "." else len(path), path)


def _differs(config: Obj, live: Obj, path: Path) -> bool:
    if path[-1] == ".":
        return False  # owning a list item itself never conflicts; its fields may
    return fieldpath.value_at(config, path) != fieldpath.value_at(live, path)


def _merge(
    live: Any,
    config: Any,
    schema: Schema | None,
    *,
    top: bool = False,
    ignored: tuple[str, ...] = (),
) -> Any:
    if isinstance(config, dict) and not map_is_atomic(schema):
        out = copy.deepcopy(live) if isinstance(live, dict) else {}
        for key, value in config.items():
            if top and key in ignored:
                continue
            out[key] = _merge(out.get(key), value, child(schema, key))
        return out
    if isinstance(config, list) and isinstance(live, list):
        info = list_info(schema)
        if info.kind == "map" and all(isinstance(i, dict) for i in config + live):
            out_list = copy.deepcopy(live)
            for item in config:
                key = fieldpath.item_key(item, info.keys)
                index = next(
                    (i for i, o in enumerate(out_list) if fieldpath.item_key(o, info.keys) == key),
                    None,
                )
                if index is None:
                    out_list.append(copy.deepcopy(item))
                else:
                    out_list[index] = _merge(out_list[index], item, items(schema))
            return out_list
        if info.kind == "set":
            return copy.deepcopy(live) + [copy.deepcopy(v) for v in config if v not in live]
    return copy.deepcopy(config)


def record_update(
    old: Obj | None,
    new: Obj,
    *,
    manager: str,
    operation: str = "Update",
    subresource: str = "",
    schema: Schema | None,
    now: str,
) -> Obj:
    """`new` (a copy) with managedFields updated for a write by `manager`."""
    result = copy.deepcopy(new)
    after = fieldpath.paths(new, schema)
    if old is None:
        entries: list[_Entry] = []
        changed = after
    else:
        entries = _entries(old)
        before = fieldpath.paths(old, schema)
        changed = {
            p
            for p in after
            if fieldpath.value_at(old, p) != fieldpath.value_at(new, p) or p not in before
        }
        removed = before - after
        for entry in entries:
            entry.fields -= removed
    if not changed and old is not None:
        return _store(result, entries)
    for entry in entries:
        entry.fields -= changed
    key = (manager, operation, subresource)
    mine = next((e for e in entries if e.key() == key), None)
    if mine is None:
        mine = _Entry(manager, operation, subresource, str(new.get("apiVersion", "")), now, set())
        entries.append(mine)
    mine.fields |= changed
    mine.time = now
    return _store(result, entries)
