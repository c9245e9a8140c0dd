"""The identity data model: users, projects (tenants), roles, assignments, and `Principal`.

Records are what the service keeps in the store (as JSON, see `records`);
`Principal` is what a valid token stands for, the only thing the API server
needs from any identity backend.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

DEFAULT_DOMAIN_ID = "default"
DEFAULT_DOMAIN_NAME = "Default"

ADMIN_ROLE = "admin"
MEMBER_ROLE = "member"
READER_ROLE = "reader"
ROLE_NAMES = (ADMIN_ROLE, MEMBER_ROLE, READER_ROLE)
"""The fixed roles created at bootstrap; there are no others."""

ADMIN_PROJECT = "admin"
"""The special project on which the `admin` role makes a user the platform admin."""


@dataclass(frozen=True)
class UserRecord:
    id: str
    name: str
    enabled: bool = True
    description: str = ""
    email: str | None = None
    default_project_id: str | None = None
    password_hash: str | None = dataclasses.field(default=None, repr=False)
    """argon2id PHC string, or None for a user that cannot log in with a password."""
    created_at: float = 0.0
    domain_id: str = DEFAULT_DOMAIN_ID

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> UserRecord:
        return cls(**{f.name: data[f.name] for f in dataclasses.fields(cls) if f.name in data})


@dataclass(frozen=True)
class ProjectRecord:
    id: str
    name: str
    enabled: bool = True
    description: str = ""
    created_at: float = 0.0
    domain_id: str = DEFAULT_DOMAIN_ID

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ProjectRecord:
        return cls(**{f.name: data[f.name] for f in dataclasses.fields(cls) if f.name in data})


@dataclass(frozen=True)
class RoleRecord:
    id: str
    name: str

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RoleRecord:
        return cls(id=data["id"], name=data["name"])


@dataclass(frozen=True, order=True)
class RoleAssignment:
    """`user_id` holds role `role_name` on project `project_id`."""

    project_id: str
    user_id: str
    role_id: str
    role_name: str


@dataclass(frozen=True)
class Principal:
    """Who a valid token stands for: user, project (tenant) scope, roles, lifetime."""

    user_id: str
    user_name: str
    project_id: str | None
    """None for an unscoped token."""
    project_name: str | None
    roles: tuple[str, ...]
    """Role names on the project, as they are now (not when the token was issued)."""
    expires_at: datetime
    issued_at: datetime
    audit_ids: tuple[str, ...] = ()
    """This token's audit id first, then the one of the token it was rescoped from."""
    methods: tuple[str, ...] = ("password",)
    platform_admin: bool = False
    """True when scoped to the admin project with the `admin` role: crosses tenants."""
    domain_id: str = DEFAULT_DOMAIN_ID

    @property
    def tenant(self) -> str | None:
        """The tenant name: a project is a tenant."""
        return self.project_name

    @property
    def project_admin(self) -> bool:
        """Holds the `admin` role on the project the token is scoped to."""
        return self.project_id is not None and ADMIN_ROLE in self.roles


def utc(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, UTC)


def isoformat(moment: datetime | float) -> str:
    """Keystone's time format: `2015-11-05T22:00:11.000000Z`."""
    if not isinstance(moment, datetime):
        moment = utc(moment)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
