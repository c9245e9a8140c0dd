"""Who may do what through the HTTP API (the Python API trusts its caller).

The platform admin (the `admin` role on the admin project, in a token scoped
to it) may do everything. A project admin (the `admin` role on the project
its token is scoped to) may see its project, list and manage role
assignments on it, and see the users who hold roles there. Everyone may
validate and revoke their own tokens, see themselves, their projects and
the roles, and change their own password. Checks run before any lookup, so
a refusal says nothing about whether the target exists.
"""

from __future__ import annotations

from hypernetes.auth.identity.errors import Forbidden
from hypernetes.auth.identity.model import Principal


def platform_admin(caller: Principal) -> None:
    if not caller.platform_admin:
        raise Forbidden()


def project_admin(caller: Principal, project_id: str) -> None:
    """The platform admin, or an admin of `project_id` acting in a token scoped to it."""
    if caller.platform_admin:
        return
    if caller.project_id != project_id or not caller.project_admin:
        raise Forbidden()


def project_member(caller: Principal, project_id: str) -> None:
    """The platform admin, or anyone whose token is scoped to `project_id`."""
    if not caller.platform_admin and caller.project_id != project_id:
        raise Forbidden()


def self_or_platform_admin(caller: Principal, user_id: str) -> None:
    if not caller.platform_admin and caller.user_id != user_id:
        raise Forbidden()


def self_only(caller: Principal, user_id: str) -> None:
    if caller.user_id != user_id:
        raise Forbidden()
