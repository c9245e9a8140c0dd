"""The Keystone v3 HTTP API of the identity service, as an aiohttp application.

`build_app(service)` serves, relative to wherever it is mounted (the API
server mounts it under `/identity`): the version documents (`/`, `/v3`), tokens
(`/v3/auth/tokens`), users, projects, roles, role assignments and the default
domain, with Keystone's JSON shapes, status codes and error documents. Callers
authenticate with `X-Auth-Token`; `policy` decides what they may do. Request
bodies and tokens are never logged.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from aiohttp import web

from hypernetes.auth.identity import policy, views
from hypernetes.auth.identity.errors import (
    BadRequest,
    Forbidden,
    IdentityError,
    NotFound,
    Unauthorized,
)
from hypernetes.auth.identity.model import (
    ADMIN_PROJECT,
    ADMIN_ROLE,
    DEFAULT_DOMAIN_ID,
    DEFAULT_DOMAIN_NAME,
    Principal,
    ProjectRecord,
    UserRecord,
    utc,
)
from hypernetes.auth.identity.service import IdentityService

log = logging.getLogger(__name__)

SERVICE = web.AppKey("identity_service", IdentityService)
_MOUNT = web.AppKey("identity_mount", web.AbstractResource)

_T = TypeVar("_T")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def build_app(service: IdentityService) -> web.Application:
    """The identity API; mount it with `root.add_subapp("/identity", build_app(service))`."""
    app = web.Application(middlewares=[_errors])
    app[SERVICE] = service

    def add(method: str, path: str, handler: Handler) -> web.AbstractRoute:
        if method == "GET":
            return app.router.add_get(path, handler)  # and HEAD, answered without a body
        return app.router.add_route(method, path, handler)

    # The empty path is the mount point itself ("/identity" without a slash);
    # its canonical path after mounting is the prefix used in absolute links.
    mount = add("GET", "", versions).resource
    assert mount is not None
    app[_MOUNT] = mount
    add("GET", "/", versions)
    for path in ("/v3", "/v3/"):
        add("GET", path, version)
    add("POST", "/v3/auth/tokens", issue_token)
    add("GET", "/v3/auth/tokens", check_token)
    add("DELETE", "/v3/auth/tokens", revoke_token)
    add("GET", "/v3/auth/projects", auth_projects)
    add("GET", "/v3/auth/catalog", auth_catalog)
    add("GET", "/v3/users", list_users)
    add("POST", "/v3/users", create_user)
    add("GET", "/v3/users/{user_id}", get_user)
    add("PATCH", "/v3/users/{user_id}", update_user)
    add("DELETE", "/v3/users/{user_id}", delete_user)
    add("POST", "/v3/users/{user_id}/password", change_password)
    add("GET", "/v3/users/{user_id}/projects", user_projects)
    add("GET", "/v3/projects", list_projects)
    add("POST", "/v3/projects", create_project)
    add("GET", "/v3/projects/{project_id}", get_project)
    add("PATCH", "/v3/projects/{project_id}", update_project)
    add("DELETE", "/v3/projects/{project_id}", delete_project)
    add("GET", "/v3/projects/{project_id}/users/{user_id}/roles", list_grants)
    grant = "/v3/projects/{project_id}/users/{user_id}/roles/{role_id}"
    add("PUT", grant, put_grant)
    add("GET", grant, check_grant)
    add("DELETE", grant, delete_grant)
    add("GET", "/v3/roles", list_roles)
    add("GET", "/v3/roles/{role_id}", get_role)
    add("GET", "/v3/role_assignments", list_assignments)
    add("GET", "/v3/domains", list_domains)
    add("GET", "/v3/domains/{domain_id}", get_domain)
    return app


# -- plumbing -------------------------------------------------------------------------


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Keystone error documents for every failure, including unknown routes and methods."""
    try:
        response = await handler(request)
    except IdentityError as exc:
        return _error(request, exc.status, exc.title, str(exc))
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        response = _error(request, exc.status, exc.reason, exc.reason)
        if "Allow" in exc.headers:
            response.headers["Allow"] = exc.headers["Allow"]
        return response
    except Exception:
        log.exception("identity: %s %s failed", request.method, request.rel_url.path)
        return _error(request, 500, "Internal Server Error", "An unexpected error occurred.")
    response.headers.setdefault("Vary", "X-Auth-Token")
    return response


def _error(request: web.Request, status: int, title: str, message: str) -> web.Response:
    response = web.json_response(views.error(status, title, message), status=status)
    if status == 401:
        response.headers["WWW-Authenticate"] = f'Keystone uri="{_base(request)}"'
    response.headers["Vary"] = "X-Auth-Token"
    return response


def _service(request: web.Request) -> IdentityService:
    return request.app[SERVICE]


def _base(request: web.Request) -> str:
    """Scheme, host and mount prefix of this request: the service as the client sees it."""
    prefix = request.app[_MOUNT].canonical.rstrip("/")
    return f"{request.scheme}://{request.host}{prefix}"


async def _caller(request: web.Request) -> Principal:
    token = request.headers.get("X-Auth-Token", "")
    principal = await _service(request).validate_token(token) if token else None
    if principal is None and not token:
        principal = await _certificate_admin(request)
    if principal is None:
        raise Unauthorized()
    return principal


async def _certificate_admin(request: web.Request) -> Principal | None:
    """The platform admin, for a request without a token over TLS with the admin's
    client certificate (the TLS layer has verified it against the cluster CA)."""
    service = _service(request)
    ssl_object = request.transport.get_extra_info("ssl_object") if request.transport else None
    der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
    if service.certificate_admin is None or not der or not service.certificate_admin(der):
        return None
    now = service.clock()
    return Principal(
        user_id="",
        user_name="admin (client certificate)",
        project_id=await service.admin_project_id(),
        project_name=ADMIN_PROJECT,
        roles=(ADMIN_ROLE,),
        expires_at=utc(now + 60),
        issued_at=utc(now),
        methods=("x509",),
        platform_admin=True,
    )


async def _body(request: web.Request, key: str) -> dict[str, Any]:
    try:
        document = json.loads(await request.read())
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("The request body is not valid JSON.") from None
    if not isinstance(document, dict) or not isinstance(document.get(key), dict):
        raise BadRequest(f"Expecting to find {key} in the request body.")
    return document[key]


def _field(body: dict[str, Any], name: str, kind: type[_T], default: _T | None = None) -> _T | None:
    value = body.get(name, default)
    if value is not None and not isinstance(value, kind):
        raise BadRequest(f"Invalid input for field '{name}': expected {kind.__name__}.")
    return value


def _bool_query(request: web.Request, name: str) -> bool | None:
    if name not in request.query:
        return None
    return request.query[name].lower() not in ("0", "false", "no", "off")


def _check_domain(body: dict[str, Any]) -> None:
    if body.get("domain_id", DEFAULT_DOMAIN_ID) != DEFAULT_DOMAIN_ID:
        raise BadRequest("Only the default domain exists.")


def _json(document: dict[str, Any], status: int = 200) -> web.Response:
    return web.json_response(document, status=status)


# -- versions and domains -------------------------------------------------------------


async def versions(request: web.Request) -> web.Response:
    return _json(views.versions(_base(request)), status=300)


async def version(request: web.Request) -> web.Response:
    return _json({"version": views.version(_base(request))})


async def list_domains(request: web.Request) -> web.Response:
    await _caller(request)
    base = _base(request)
    return _json(views.collection(base, "/v3/domains", "domains", [views.domain(base)]))


async def get_domain(request: web.Request) -> web.Response:
    await _caller(request)
    if request.match_info["domain_id"] != DEFAULT_DOMAIN_ID:
        raise NotFound(f"Could not find domain: {request.match_info['domain_id']}.")
    return _json({"domain": views.domain(_base(request))})


# -- tokens --------------------------------------------------------------------------


async def issue_token(request: web.Request) -> web.Response:
    service = _service(request)
    auth = await _body(request, "auth")
    identity = auth.get("identity")
    if not isinstance(identity, dict) or not isinstance(identity.get("methods"), list):
        raise BadRequest("Expecting to find identity.methods in the auth request.")
    methods = identity["methods"]
    project_id, project_name, default_scope = _scope(auth.get("scope"))
    if methods == ["password"]:
        password_auth = identity.get("password")
        user = password_auth.get("user") if isinstance(password_auth, dict) else None
        if not isinstance(user, dict):
            raise BadRequest("Expecting to find identity.password.user in the auth request.")
        user_id = _field(user, "id", str)
        user_name = _field(user, "name", str)
        if user_id is None and user_name is None:
            raise BadRequest("Expecting to find the user's id or name.")
        if user_id is None and not _in_default_domain(user.get("domain")):
            user_name = None  # no such user: still pays the password hash, then 401
        password = user.get("password")
        token, principal = await service.password_login(
            password if isinstance(password, str) else "",  # "" fails, at the same cost
            user_id=user_id,
            user_name=user_name,
            project_id=project_id,
            project_name=project_name,
            default_scope=default_scope,
        )
    elif methods == ["token"]:
        token_auth = identity.get("token")
        subject = token_auth.get("id") if isinstance(token_auth, dict) else None
        if not isinstance(subject, str):
            raise BadRequest("Expecting to find identity.token.id in the auth request.")
        token, principal = await service.rescope(
            subject, project_id=project_id, project_name=project_name
        )
    else:
        raise Unauthorized("The only supported methods are 'password' or 'token', one at a time.")
    response = await _token_response(request, principal, status=201)
    response.headers["X-Subject-Token"] = token
    return response


def _scope(scope: object) -> tuple[str | None, str | None, bool]:
    """(project id, project name, use the default project) from an auth request's scope."""
    if scope is None:
        return None, None, True
    if scope == "unscoped":
        return None, None, False
    if not isinstance(scope, dict):
        raise BadRequest("Invalid scope.")
    project = scope.get("project")
    if not isinstance(project, dict) or set(scope) != {"project"}:
        raise Unauthorized("Only project scopes are supported.")
    project_id = _field(project, "id", str)
    project_name = _field(project, "name", str)
    if project_id is not None:
        return project_id, None, False
    if project_name is None:
        raise BadRequest("Expecting to find the project's id or name.")
    if not _in_default_domain(project.get("domain")):
        raise Unauthorized("The user has no access to the requested project.")
    return None, project_name, False


def _in_default_domain(domain: object) -> bool:
    if domain is None:
        return True  # lenient: there is only one domain
    if not isinstance(domain, dict):
        raise BadRequest("Invalid domain.")
    if "id" in domain:
        return bool(domain["id"] == DEFAULT_DOMAIN_ID)
    return bool(domain.get("name") == DEFAULT_DOMAIN_NAME)


async def _token_response(request: web.Request, principal: Principal, status: int) -> web.Response:
    roles = await _service(request).principal_roles(principal)
    with_catalog = "nocatalog" not in request.query
    return _json(views.token(_base(request), principal, roles, with_catalog=with_catalog), status)


async def _subject(request: web.Request, caller: Principal) -> tuple[str, Principal]:
    token = request.headers.get("X-Subject-Token", "")
    subject = await _service(request).validate_token(token) if token else None
    if subject is None:
        raise NotFound("Could not find token.")
    policy.self_or_platform_admin(caller, subject.user_id)
    return token, subject


async def check_token(request: web.Request) -> web.Response:
    token, subject = await _subject(request, await _caller(request))
    response = await _token_response(request, subject, status=200)
    response.headers["X-Subject-Token"] = token
    return response


async def revoke_token(request: web.Request) -> web.Response:
    token, _ = await _subject(request, await _caller(request))
    await _service(request).revoke_token(token)
    return web.Response(status=204)


async def auth_projects(request: web.Request) -> web.Response:
    caller = await _caller(request)
    return await _projects_of(request, caller.user_id, "/v3/auth/projects")


async def auth_catalog(request: web.Request) -> web.Response:
    await _caller(request)
    base = _base(request)
    return _json({"catalog": views.catalog(base), "links": {"self": f"{base}/v3/auth/catalog"}})


# -- users ----------------------------------------------------------------------------


async def list_users(request: web.Request) -> web.Response:
    policy.platform_admin(await _caller(request))
    domain = request.query.get("domain_id", DEFAULT_DOMAIN_ID)
    users = await _service(request).list_users(
        name=request.query.get("name"), enabled=_bool_query(request, "enabled")
    )
    base = _base(request)
    items = [views.user(base, u) for u in users] if domain == DEFAULT_DOMAIN_ID else []
    return _json(views.collection(base, "/v3/users", "users", items))


async def create_user(request: web.Request) -> web.Response:
    policy.platform_admin(await _caller(request))
    body = await _body(request, "user")
    _check_domain(body)
    name = _field(body, "name", str)
    if name is None:
        raise BadRequest("Expecting to find name in user.")
    user = await _service(request).create_user(
        name,
        _field(body, "password", str),
        enabled=_field(body, "enabled", bool, True) is not False,
        description=_field(body, "description", str) or "",
        email=_field(body, "email", str),
        default_project_id=_field(body, "default_project_id", str),
    )
    return _json({"user": views.user(_base(request), user)}, status=201)


async def get_user(request: web.Request) -> web.Response:
    caller = await _caller(request)
    user_id = request.match_info["user_id"]
    service = _service(request)
    # A project admin sees the users who hold a role on their project.
    allowed = (
        caller.platform_admin
        or caller.user_id == user_id
        or (
            caller.project_id is not None
            and caller.project_admin
            and bool(await service.roles_for(caller.project_id, user_id))
        )
    )
    if not allowed:
        raise Forbidden()
    return _json({"user": views.user(_base(request), await service.get_user(user_id))})


async def update_user(request: web.Request) -> web.Response:
    policy.platform_admin(await _caller(request))
    body = await _body(request, "user")
    _check_domain(body)
    user = await _service(request).update_user(
        request.match_info["user_id"],
        name=_field(body, "name", str),
        enabled=_field(body, "enabled", bool),
        description=_field(body, "description", str),
        email=_cleared(body, "email"),
        default_project_id=_cleared(body, "default_project_id"),
        password=_field(body, "password", str),
    )
    return _json({"user": views.user(_base(request), user)})


def _cleared(body: dict[str, Any], name: str) -> str | None:
    """A string field of a PATCH: absent keeps it (None), null clears it ("")."""
    if name in body and body[name] is None:
        return ""
    return _field(body, name, str)


async def delete_user(request: web.Request) -> web.Response:
    policy.platform_admin(await _caller(request))
    await _service(request).delete_user(request.match_info["user_id"])
    return web.Response(status=204)


async def change_password(request: web.Request) -> web.Response:
    user_id = request.match_info["user_id"]
    policy.self_only(await _caller(request), user_id)
    body = await _body(request, "user")
    password = _field(body, "password", str)
    original = _field(body, "original_password", str)
    if password is None or original is None:
        raise BadRequest("Expecting to find password and original_password in user.")
    await _service(request).set_password(user_id, password, original_password=original)
    return web.Response(status=204)


async def user_projects(request: web.Request) -> web.Response:
    user_id = request.match_info["user_id"]
    policy.self_or_platform_admin(await _caller(request), user_id)
    await _service(request).get_user(user_id)
    return await _projects_of(request, user_id, f"/v3/users/{user_id}/projects")


async def _projects_of(request: web.Request, user_id: str, path: str) -> web.Response:
    base = _base(request)
    projects = await _service(request).projects_for_user(user_id)
    return _json(
        views.collection(base, path, "projects", [views.project(base, p) for p in projects])
    )


# -- projects -------------------------------------------------------------------------


async def list_projects(request: web.Request) -> web.Response:
    policy.platform_admin(await _caller(request))
    domain = request.query.get("domain_id", DEFAULT_DOMAIN_ID)
    projects = await _service(request).list_projects(
        name=request.query.get("name"), enabled=_bool_query(request, "enabled")
    )
    base = _base(request)
    items = [views.project(base, p) for p in projects] if domain == DEFAULT_DOMAIN_ID else []
    return _json(views.collection(base, "/v3/projects", "projects", items))


async def create_project(request: web.Request) -> web.Response:
    policy.platform_admin(await _caller(request))
    body = await _body(request, "project")
    _check_domain(body)
    if body.get("is_domain") or body.get("parent_id", DEFAULT_DOMAIN_ID) != DEFAULT_DOMAIN_ID:
        raise BadRequest("Projects are flat, in the default domain.")
    name = _field(body, "name", str)
    if name is None:
        raise BadRequest("Expecting to find name in project.")
    project = await _service(request).create_project(
        name,
        description=_field(body, "description", str) or "",
        enabled=_field(body, "enabled", bool, True) is not False,
    )
    return _json({"project": views.project(_base(request), project)}, status=201)


async def get_project(request: web.Request) -> web.Response:
    project_id = request.match_info["project_id"]
    policy.project_member(await _caller(request), project_id)
    project = await _service(request).get_project(project_id)
    return _json({"project": views.project(_base(request), project)})


async def update_project(request: web.Request) -> web.Response:
    policy.platform_admin(await _caller(request))
    body = await _body(request, "project")
    _check_domain(body)
    project = await _service(request).update_project(
        request.match_info["project_id"],
        name=_field(body, "name", str),
        enabled=_field(body, "enabled", bool),
        description=_field(body, "description", str),
    )
    return _json({"project": views.project(_base(request), project)})


async def delete_project(request: web.Request) -> web.Response:
    policy.platform_admin(await _caller(request))
    await _service(request).delete_project(request.match_info["project_id"])
    return web.Response(status=204)


# -- roles and assignments ----------------------------------------------------------------


async def list_roles(request: web.Request) -> web.Response:
    await _caller(request)
    base = _base(request)
    name = request.query.get("name")
    roles = [r for r in await _service(request).list_roles() if name is None or r.name == name]
    return _json(views.collection(base, "/v3/roles", "roles", [views.role(base, r) for r in roles]))


async def get_role(request: web.Request) -> web.Response:
    await _caller(request)
    role = await _service(request).get_role(request.match_info["role_id"])
    return _json({"role": views.role(_base(request), role)})


async def list_grants(request: web.Request) -> web.Response:
    project_id, user_id = request.match_info["project_id"], request.match_info["user_id"]
    caller = await _caller(request)
    if not (caller.user_id == user_id and caller.project_id == project_id):
        policy.project_admin(caller, project_id)
    service = _service(request)
    await service.get_project(project_id)
    await service.get_user(user_id)
    base = _base(request)
    roles = await service.roles_for(project_id, user_id)
    path = f"/v3/projects/{project_id}/users/{user_id}/roles"
    return _json(views.collection(base, path, "roles", [views.role(base, r) for r in roles]))


async def _grant_target(request: web.Request, *, self_allowed: bool) -> tuple[str, str, str]:
    """(project id, user id, role name) of a grant URL the caller may act on."""
    project_id = request.match_info["project_id"]
    user_id = request.match_info["user_id"]
    caller = await _caller(request)
    if not (self_allowed and caller.user_id == user_id and caller.project_id == project_id):
        policy.project_admin(caller, project_id)
    service = _service(request)
    role = await service.get_role(request.match_info["role_id"])
    return project_id, user_id, role.name


async def put_grant(request: web.Request) -> web.Response:
    project_id, user_id, role = await _grant_target(request, self_allowed=False)
    await _service(request).assign_role(project_id, user_id, role)
    return web.Response(status=204)


async def check_grant(request: web.Request) -> web.Response:
    project_id, user_id, role = await _grant_target(request, self_allowed=True)
    if not await _service(request).has_role(project_id, user_id, role):
        raise NotFound("Could not find role assignment.")
    return web.Response(status=204)


async def delete_grant(request: web.Request) -> web.Response:
    project_id, user_id, role = await _grant_target(request, self_allowed=False)
    await _service(request).unassign_role(project_id, user_id, role)
    return web.Response(status=204)


async def list_assignments(request: web.Request) -> web.Response:
    caller = await _caller(request)
    query = request.query
    user_id = query.get("user.id")
    project_id = query.get("scope.project.id")
    if not caller.platform_admin:
        if project_id is not None and caller.project_id == project_id and caller.project_admin:
            pass  # a project admin, within their project
        elif user_id is not None and user_id == caller.user_id:
            pass  # anyone, about themselves
        else:
            raise Forbidden()
    service = _service(request)
    role_name = None
    if "role.id" in query:
        role_name = (await service.get_role(query["role.id"])).name
    grants = await service.list_role_assignments(
        user_id=user_id, project_id=project_id, role=role_name
    )
    names: dict[str, str] | None = None
    if _bool_query(request, "include_names"):
        names = {}
        for grant in grants:
            if grant.user_id not in names:
                names[grant.user_id] = await _name_or_blank(service.get_user(grant.user_id))
            if grant.project_id not in names:
                names[grant.project_id] = await _name_or_blank(
                    service.get_project(grant.project_id)
                )
    base = _base(request)
    items = [views.assignment(base, g, names) for g in grants]
    path = "/v3/role_assignments" + (f"?{request.query_string}" if request.query_string else "")
    return _json(views.collection(base, path, "role_assignments", items))


async def _name_or_blank(record: Awaitable[UserRecord | ProjectRecord]) -> str:
    try:
        return (await record).name
    except NotFound:
        return ""  # deleted while we listed
