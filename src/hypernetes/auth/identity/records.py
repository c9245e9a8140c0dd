"""Where identity state lives in the store: key layout and JSON encoding.

Everything is under `/identity/`, one JSON document per key, so any `Store`
backend (and several API servers on one store) works:

    users/<id>                              user record (argon2id hash, never a password)
    projects/<id>, roles/<id>               project and role records
    names/{users,projects,roles}/<name>     {"id": ...}: the uniqueness index, claimed by CAS
    grants/by-project/<project>/<user>/<role>   a role assignment ...
    grants/by-user/<user>/<project>/<role>      ... and its mirror, written in the same txn
    revoked/users/<user>/<uuid>             {"before": T, "project_id": p|null, "prune_after": t}
    revoked/audit/<audit id>                {"prune_after": t}: one revoked token (chain)
    bootstrap                               {"admin_project_id": ...}

Ids are uuid4 hex; anything else coming from a request is refused before it
becomes part of a key, so a crafted id cannot reach another key or prefix.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import quote

from hypernetes.store import KeyValue

PREFIX = "/identity/"
BOOTSTRAP_KEY = PREFIX + "bootstrap"
USERS = PREFIX + "users/"
PROJECTS = PREFIX + "projects/"
ROLES = PREFIX + "roles/"
GRANTS_BY_PROJECT = PREFIX + "grants/by-project/"
GRANTS_BY_USER = PREFIX + "grants/by-user/"
REVOKED = PREFIX + "revoked/"
REVOKED_USERS = REVOKED + "users/"
REVOKED_AUDIT = REVOKED + "audit/"

_ID = re.compile(r"[0-9a-f]{32}")


def is_id(value: object) -> bool:
    return isinstance(value, str) and _ID.fullmatch(value) is not None


def user_key(user_id: str) -> str:
    return USERS + user_id


def project_key(project_id: str) -> str:
    return PROJECTS + project_id


def role_key(role_id: str) -> str:
    return ROLES + role_id


def name_key(kind: str, name: str) -> str:
    """The index key claiming `name` for kind `users`, `projects` or `roles`."""
    return f"{PREFIX}names/{kind}/{quote(name, safe='')}"


def grant_keys(project_id: str, user_id: str, role_id: str) -> tuple[str, str]:
    return (
        f"{GRANTS_BY_PROJECT}{project_id}/{user_id}/{role_id}",
        f"{GRANTS_BY_USER}{user_id}/{project_id}/{role_id}",
    )


def split_grant(key: str) -> tuple[str, str, str]:
    """(project, user, role) of either kind of grant key."""
    if key.startswith(GRANTS_BY_PROJECT):
        project, user, role = key[len(GRANTS_BY_PROJECT) :].split("/")
        return project, user, role
    user, project, role = key[len(GRANTS_BY_USER) :].split("/")
    return project, user, role


def user_revocations(user_id: str) -> str:
    return f"{REVOKED_USERS}{user_id}/"


def audit_revocation_key(audit_id: str) -> str:
    return REVOKED_AUDIT + audit_id


def dump(document: dict[str, Any]) -> bytes:
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


def load(kv: KeyValue) -> dict[str, Any]:
    document = json.loads(kv.value)
    if not isinstance(document, dict):
        raise ValueError(f"{kv.key} does not hold a JSON object")
    return document
