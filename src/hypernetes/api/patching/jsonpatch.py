"""RFC 6902 JSON patch."""

from __future__ import annotations

import copy
from typing import Any

from hypernetes.api.patching.errors import PatchError

_OPS = ("add", "remove", "replace", "move", "copy", "test")


def _pointer(path: Any) -> list[str]:
    if not isinstance(path, str) or (path and not path.startswith("/")):
        raise PatchError(f"invalid JSON pointer {path!r}", 400)
    if path == "":
        return []
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _index(container: list[Any], token: str, *, allow_end: bool) -> int:
    if token == "-" and allow_end:
        return len(container)
    if not token.isdigit() or (token != "0" and token.startswith("0")):
        raise PatchError(f"invalid array index {token!r}")
    i = int(token)
    if i > len(container) or (i == len(container) and not allow_end):
        raise PatchError(f"array index {i} out of bounds")
    return i


def _parent(doc: Any, tokens: list[str]) -> Any:
    node = doc
    for token in tokens[:-1]:
        if isinstance(node, dict):
            if token not in node:
                raise PatchError(f"path segment {token!r} does not exist")
            node = node[token]
        elif isinstance(node, list):
            node = node[_index(node, token, allow_end=False)]
        else:
            raise PatchError(f"cannot descend into a scalar at {token!r}")
    return node


def _get(doc: Any, tokens: list[str]) -> Any:
    if not tokens:
        return doc
    parent, last = _parent(doc, tokens), tokens[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise PatchError(f"path {'/' + '/'.join(tokens)} does not exist")
        return parent[last]
    if isinstance(parent, list):
        return parent[_index(parent, last, allow_end=False)]
    raise PatchError("cannot index a scalar")


def _add(doc: Any, tokens: list[str], value: Any) -> Any:
    if not tokens:
        return value
    parent, last = _parent(doc, tokens), tokens[-1]
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        parent.insert(_index(parent, last, allow_end=True), value)
    else:
        raise PatchError("cannot add to a scalar")
    return doc


def _remove(doc: Any, tokens: list[str]) -> Any:
    if not tokens:
        raise PatchError("cannot remove the whole document")
    parent, last = _parent(doc, tokens), tokens[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise PatchError(f"path {'/' + '/'.join(tokens)} does not exist")
        del parent[last]
    elif isinstance(parent, list):
        del parent[_index(parent, last, allow_end=False)]
    else:
        raise PatchError("cannot remove from a scalar")
    return doc


def json_patch(doc: Any, ops: list[Any]) -> Any:
    """Apply the operations in order to a copy of `doc`."""
    if not isinstance(ops, list):
        raise PatchError("a JSON patch must be a list of operations", 400)
    result = copy.deepcopy(doc)
    for op in ops:
        if not isinstance(op, dict) or op.get("op") not in _OPS:
            raise PatchError(f"unsupported JSON patch operation: {op!r}", 400)
        result = _apply_one(result, op)
    return result


def _apply_one(doc: Any, op: dict[str, Any]) -> Any:
    kind, tokens = op["op"], _pointer(op.get("path"))
    if kind in ("add", "replace", "test") and "value" not in op:
        raise PatchError(f'"{kind}" operation needs a "value"', 400)
    if kind == "add":
        return _add(doc, tokens, copy.deepcopy(op["value"]))
    if kind == "remove":
        return _remove(doc, tokens)
    if kind == "replace":
        _get(doc, tokens)  # must exist
        return (
            _add(_remove(doc, tokens), tokens, copy.deepcopy(op["value"]))
            if tokens
            else (copy.deepcopy(op["value"]))
        )
    if kind == "test":
        if _get(doc, tokens) != op["value"]:
            raise PatchError(f"test operation failed at {op['path']}")
        return doc
    source = _pointer(op.get("from"))
    value = copy.deepcopy(_get(doc, source))
    if kind == "move":
        if tokens[: len(source)] == source and tokens != source:
            raise PatchError("cannot move a value into itself")
        doc = _remove(doc, source)
    return _add(doc, tokens, value)
