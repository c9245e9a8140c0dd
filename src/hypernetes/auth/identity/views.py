"""Keystone v3 JSON shapes of versions, entities, collections, tokens and the catalog.

Every function takes `base`, the absolute URL of the identity service's mount
point (scheme, host and prefix of the request), for the `links` Keystone
puts in every document.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from typing import Any

from hypernetes.auth.identity.model import (
    DEFAULT_DOMAIN_ID,
    DEFAULT_DOMAIN_NAME,
    Principal,
    ProjectRecord,
    RoleAssignment,
    RoleRecord,
    UserRecord,
    isoformat,
)

VERSION_ID = "v3.14"
VERSION_UPDATED = "2020-04-07T00:00:00Z"
MEDIA_TYPE = "application/vnd.openstack.identity-v3+json"
REGION = "RegionOne"

DOMAIN_REF = {"id": DEFAULT_DOMAIN_ID, "name": DEFAULT_DOMAIN_NAME}


def version(base: str) -> dict[str, Any]:
    return {
        "id": VERSION_ID,
        "status": "stable",
        "updated": VERSION_UPDATED,
        "links": [{"rel": "self", "href": f"{base}/v3/"}],
        "media-types": [{"base": "application/json", "type": MEDIA_TYPE}],
    }


def versions(base: str) -> dict[str, Any]:
    return {"versions": {"values": [version(base)]}}


def domain(base: str) -> dict[str, Any]:
    return {
        "id": DEFAULT_DOMAIN_ID,
        "name": DEFAULT_DOMAIN_NAME,
        "description": "The default domain",
        "enabled": True,
        "tags": [],
        "options": {},
        "links": {"self": f"{base}/v3/domains/{DEFAULT_DOMAIN_ID}"},
    }


def user(base: str, record: UserRecord) -> dict[str, Any]:
    document: dict[str, Any] = {
        "id": record.id,
        "name": record.name,
        "domain_id": record.domain_id,
        "enabled": record.enabled,
        "password_expires_at": None,
        "options": {},
        "links": {"self": f"{base}/v3/users/{record.id}"},
    }
    if record.description:
        document["description"] = record.description
    if record.email:
        document["email"] = record.email
    if record.default_project_id:
        document["default_project_id"] = record.default_project_id
    return document


def project(base: str, record: ProjectRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "name": record.name,
        "domain_id": record.domain_id,
        "description": record.description,
        "enabled": record.enabled,
        "is_domain": False,
        "parent_id": record.domain_id,
        "tags": [],
        "options": {},
        "links": {"self": f"{base}/v3/projects/{record.id}"},
    }


def role(base: str, record: RoleRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "name": record.name,
        "domain_id": None,
        "description": None,
        "options": {},
        "links": {"self": f"{base}/v3/roles/{record.id}"},
    }


def collection(base: str, path: str, key: str, items: Iterable[dict[str, Any]]) -> dict[str, Any]:
    return {
        key: list(items),
        "links": {"self": f"{base}{path}", "previous": None, "next": None},
    }


def assignment(
    base: str, grant: RoleAssignment, names: dict[str, str] | None = None
) -> dict[str, Any]:
    """One role assignment; with `names` (id -> name), the include_names form."""
    role_ref: dict[str, Any] = {"id": grant.role_id}
    user_ref: dict[str, Any] = {"id": grant.user_id}
    project_ref: dict[str, Any] = {"id": grant.project_id}
    if names is not None:
        role_ref["name"] = grant.role_name
        for ref in (user_ref, project_ref):
            ref["name"] = names.get(ref["id"], "")
            ref["domain"] = dict(DOMAIN_REF)
    path = f"/v3/projects/{grant.project_id}/users/{grant.user_id}/roles/{grant.role_id}"
    return {
        "role": role_ref,
        "user": user_ref,
        "scope": {"project": project_ref},
        "links": {"assignment": base + path},
    }


def catalog(base: str) -> list[dict[str, Any]]:
    """The identity service itself: its URL (unversioned, as devstack's) on every interface."""
    service_id = uuid.uuid5(uuid.NAMESPACE_URL, base).hex
    return [
        {
            "id": service_id,
            "type": "identity",
            "name": "keystone",
            "endpoints": [
                {
                    "id": uuid.uuid5(uuid.NAMESPACE_URL, f"{base}#{interface}").hex,
                    "interface": interface,
                    "region": REGION,
                    "region_id": REGION,
                    "url": base,
                }
                for interface in ("public", "internal", "admin")
            ],
        }
    ]


def token(
    base: str, principal: Principal, roles: Sequence[RoleRecord], *, with_catalog: bool
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "methods": list(principal.methods),
        "user": {
            "id": principal.user_id,
            "name": principal.user_name,
            "domain": dict(DOMAIN_REF),
            "password_expires_at": None,
        },
        "audit_ids": list(principal.audit_ids),
        "expires_at": isoformat(principal.expires_at),
        "issued_at": isoformat(principal.issued_at),
    }
    if principal.project_id is not None:
        body["project"] = {
            "id": principal.project_id,
            "name": principal.project_name,
            "domain": dict(DOMAIN_REF),
        }
        body["is_domain"] = False
        body["roles"] = [{"id": r.id, "name": r.name} for r in roles]
    if with_catalog:
        body["catalog"] = catalog(base)
    return {"token": body}


def error(status: int, title: str, message: str) -> dict[str, Any]:
    return {"error": {"code": status, "message": message, "title": title}}
