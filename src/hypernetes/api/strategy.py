"""Per-kind behaviour the generic endpoints call: defaulting, validation, status.

The knowledge itself lives in `hypernetes.resources` (schemas, defaults,
validation rules); this module turns its results into Status errors and
warnings the way kube-apiserver reports them.
"""

from __future__ import annotations

from typing import Any

from hypernetes.api import errors
from hypernetes.resources import defaults, validation
from hypernetes.resources.registry import ResourceType

Obj = dict[str, Any]

FIELD_VALIDATION = ("Strict", "Warn", "Ignore")


def field_validation_mode(value: str | None) -> str:
    """The `fieldValidation` query parameter; kube's default is Warn."""
    if not value:
        return "Warn"
    if value not in FIELD_VALIDATION:
        raise errors.bad_request(
            f'fieldValidation parameter unsupported: "{value}" (supported: Strict, Warn, Ignore)'
        )
    return value


def default(rt: ResourceType, obj: Obj, old: Obj | None = None) -> None:
    """Fill defaults; on update, first carry over what kube keeps from `old`."""
    if old is not None:
        defaults.prepare_update(rt, obj, old)
    defaults.default(rt, obj)


def validate(rt: ResourceType, obj: Obj, old: Obj | None, mode: str) -> list[str]:
    """Validate `obj` (an update of `old` if given); returns warnings, raises 400/422."""
    result = validation.validate(rt, obj, old=old, field_validation=mode)
    if result.bad_request:
        raise errors.bad_request("; ".join(result.bad_request))
    if result.errors:
        name = obj.get("metadata", {}).get("name", "")
        causes = [{"reason": e.type, "message": e.message, "field": e.field} for e in result.errors]
        raise errors.invalid(rt, name, causes, validation.message(rt, name, result.errors))
    return list(result.warnings)
