"""Tenancy admission: who owns a new namespace or network, and what may not change.

- Namespaces: created by a tenant principal, they get the label
  `hypernetes.io/tenant=<its tenant>` (a different value is refused); the
  platform admin may set the label (that is how it gives a namespace to a
  tenant) and is the only one who may change or remove it later. Any other
  principal may not set it at all.
- Networks: their ownership (`spec.tenant`, the label) is checked by the
  network admission (`hypernetes.api.admission.network`), not here.
- A Tenant's name is a DNS label (it is a label value and part of group names).
- Tenants and Users get the finalizers the identity sync and the
  auth-controller need to clean up after them; a User names an existing
  Tenant, and its `spec.tenant` never changes; the identity service's own
  `admin` project and user cannot be mirrored.

Refusals of ownership changes are 403 Forbidden; malformed specs are 422 Invalid.
"""

from __future__ import annotations

import re
from typing import Any

from hypernetes.api import errors
from hypernetes.api.admission import Admission
from hypernetes.api.boundary import Boundary, label_tenant
from hypernetes.api.request import Target
from hypernetes.auth.principal import User
from hypernetes.auth.tenancy import CONTENT_FINALIZER, IDENTITY_FINALIZER, RESERVED_NAMES
from hypernetes.resources.platform import GROUP, TENANT_LABEL

Obj = dict[str, Any]
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")


def tenancy_admission(boundary: Boundary) -> Admission:
    async def admit(user: User, target: Target, obj: Obj, old: Obj | None) -> None:
        kind = (target.rt.group, target.rt.plural)
        if kind == ("", "namespaces"):
            _namespace(boundary, user, obj, old)
        elif kind == (GROUP, "tenants"):
            _tenant_name(obj, old)
            _finalizers(target, obj, old, (CONTENT_FINALIZER, IDENTITY_FINALIZER))
        elif kind == (GROUP, "users"):
            await _user(boundary, target, obj, old)

    return admit


def _namespace(boundary: Boundary, user: User, obj: Obj, old: Obj | None) -> None:
    name = obj["metadata"].get("name", "")
    wanted = label_tenant(obj)
    if user.is_admin:
        return
    tenant = boundary.tenant_of(user)
    if old is not None:
        if wanted != label_tenant(old):
            raise _forbidden(
                "namespaces", name, f"the label {TENANT_LABEL} can only be changed by the "
                "platform admin"
            )  # fmt: skip
        return
    if tenant is None:
        if wanted is not None:
            raise _forbidden(
                "namespaces", name, f"only the platform admin may set the label {TENANT_LABEL}"
            )
        return
    if wanted is not None and wanted != tenant:
        raise _forbidden(
            "namespaces", name, f'{TENANT_LABEL} must be "{tenant}", the tenant of the creator'
        )
    obj["metadata"].setdefault("labels", {})[TENANT_LABEL] = tenant


def _tenant_name(obj: Obj, old: Obj | None) -> None:
    """A tenant's name is a label value (on its namespaces) and part of group names."""
    name = obj["metadata"].get("name", "")
    if old is None and not (_DNS_LABEL.fullmatch(name) and len(name) <= 63):
        raise _invalid_field("Tenant", "tenants", name, "metadata.name", name,
                             "a tenant name must be a DNS label (at most 63 characters of "
                             "a-z, 0-9 and '-')")  # fmt: skip


def _finalizers(target: Target, obj: Obj, old: Obj | None, needed: tuple[str, ...]) -> None:
    """Add `needed` finalizers to a new object (reserved names refused)."""
    name = obj["metadata"].get("name", "")
    if old is not None:
        return
    if name in RESERVED_NAMES:
        raise _invalid_field(target.rt.kind, target.rt.plural, name, "metadata.name", name,
                             "this name is reserved for the platform admin")  # fmt: skip
    finalizers = obj["metadata"].setdefault("finalizers", [])
    for finalizer in needed:
        if finalizer not in finalizers:
            finalizers.append(finalizer)


async def _user(boundary: Boundary, target: Target, obj: Obj, old: Obj | None) -> None:
    name = obj["metadata"].get("name", "")
    tenant = (obj.get("spec") or {}).get("tenant")
    if old is not None:
        if tenant != (old.get("spec") or {}).get("tenant"):
            raise _invalid_field("User", "users", name, "spec.tenant", tenant)
        return
    _finalizers(target, obj, old, (IDENTITY_FINALIZER,))
    found = await boundary.objects.find(boundary.tenants_rt, None, str(tenant))
    if found is None or "deletionTimestamp" in found["metadata"]:
        raise _invalid_field("User", "users", name, "spec.tenant", tenant,
                             "no such tenant")  # fmt: skip


def _forbidden(plural: str, name: str, why: str) -> errors.APIError:
    return errors.forbidden(f'{plural} "{name}" is forbidden: {why}')


def _invalid_field(
    target_kind: str,
    plural: str,
    name: str,
    field: str,
    value: Any,
    why: str = "field is immutable",
) -> errors.APIError:
    message = f'{target_kind} "{name}" is invalid: {field}: Invalid value: {value!r}: {why}'
    return errors.APIError(
        422,
        "Invalid",
        message,
        details={
            "name": name,
            "group": GROUP if plural != "namespaces" else "",
            "kind": target_kind,
            "causes": [{"reason": "FieldValueInvalid", "field": field, "message": why}],
        },
    )
