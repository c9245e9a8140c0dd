"""RFC 7386 JSON merge patch."""

from __future__ import annotations

import copy
from typing import Any


def merge_patch(doc: Any, patch: Any) -> Any:
    """`doc` with `patch` merged in: objects merge, null deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(doc) if isinstance(doc, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result
