"""Patch machinery of the API server: JSON patch, merge patch, strategic merge
patch and server-side apply (field ownership in `metadata.managedFields`).

All functions are pure: they never mutate their inputs and return new objects.

- `json_patch(doc, ops)`: RFC 6902.
- `merge_patch(doc, patch)`: RFC 7386.
- `strategic_merge_patch(doc, patch, schema)`: Kubernetes strategic merge
  patch, driven by the schema's `x-kubernetes-patch-strategy` /
  `x-kubernetes-patch-merge-key` (and the `$patch`, `$retainKeys`,
  `$deleteFromPrimitiveList/…`, `$setElementOrder/…` directives).
- `apply(live, config, manager=, force=, schema=, now=, ignored_paths=)`:
  server-side apply; raises `ApplyConflict`.
- `record_update(old, new, manager=, operation=, subresource=, schema=, now=)`:
  ownership of the fields an ordinary write changed.

Errors: `PatchError` (with `.code`, 400 for a malformed patch, 422 for one
that cannot be applied) and `ApplyConflict` (with `.conflicts`).
"""

from hypernetes.api.patching.apply import ApplyConflict, Conflict, apply, record_update
from hypernetes.api.patching.errors import PatchError
from hypernetes.api.patching.jsonpatch import json_patch
from hypernetes.api.patching.mergepatch import merge_patch
from hypernetes.api.patching.strategic import strategic_merge_patch

__all__ = [
    "ApplyConflict",
    "Conflict",
    "PatchError",
    "apply",
    "json_patch",
    "merge_patch",
    "record_update",
    "strategic_merge_patch",
]
