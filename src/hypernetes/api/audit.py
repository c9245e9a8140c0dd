"""The audit log: every authentication and authorization decision, as JSON lines.

One line per decision in `<data-dir>/audit.log` (mode 0600):

- `stage: "authentication"`: a request whose credentials were refused (and why:
  no credentials, a bearer token nobody accepted), and every identity-API
  password login (`login`: succeeded, failed, throttled);
- `stage: "authorization"`: a request's user (with the impersonating user, if
  any), verb, resource or path, and `allowed` with the reason of a refusal.

Never in it: tokens, passwords, request bodies, Authorization headers. User
names are, as in kube's audit log. Lines are written as they happen (line
buffered, one `write` each), so a crash loses nothing already decided.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from aiohttp import web

from hypernetes.api import errors
from hypernetes.api.auth import USER
from hypernetes.api.impersonation import Impersonator
from hypernetes.api.request import Target, parse_target
from hypernetes.auth.principal import User

if TYPE_CHECKING:
    from hypernetes.api.server import Server

_VERBS = {"GET": "get", "POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}


class AuditLog:
    """Appends decisions to one file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.fchmod(fd, 0o600)
        self._file: IO[str] | None = os.fdopen(fd, "a", buffering=1, encoding="utf-8")

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def _write(self, event: dict[str, Any]) -> None:
        if self._file is None:
            return
        event = {"time": _now(), **event}
        self._file.write(json.dumps(event, separators=(",", ":")) + "\n")

    def unauthenticated(self, request: web.Request) -> None:
        bearer = request.headers.get("Authorization", "").startswith("Bearer ")
        self._write({
            "stage": "authentication",
            "decision": "deny",
            "reason": "bearer token not accepted" if bearer else "no valid credentials",
            **_request(request),
        })  # fmt: skip

    def authorization(
        self,
        request: web.Request,
        user: User,
        target: Target | None,
        *,
        allowed: bool,
        reason: str = "",
        impersonator: User | None = None,
    ) -> None:
        event: dict[str, Any] = {
            "stage": "authorization",
            "decision": "allow" if allowed else "deny",
            "user": user.name,
            "groups": list(user.groups),
            **_request(request),
            **_resource(request, target),
        }
        if user.extra.get("hypernetes.io/tenant"):
            event["tenant"] = user.extra["hypernetes.io/tenant"][0]
        if impersonator is not None:
            event["impersonatedBy"] = {"user": impersonator.name,
                                       "groups": list(impersonator.groups)}  # fmt: skip
        if reason:
            event["reason"] = reason
        self._write(event)

    def login(self, user: str, outcome: str) -> None:
        """An identity-API password login: outcome is success, failure or throttled."""
        self._write({
            "stage": "authentication",
            "decision": "allow" if outcome == "success" else "deny",
            "method": "password",
            "user": user,
            "reason": "" if outcome == "success" else outcome,
        })  # fmt: skip


def _request(request: web.Request) -> dict[str, Any]:
    return {
        "method": request.method,
        "path": request.path,
        "sourceIP": request.remote or "",
        "userAgent": request.headers.get("User-Agent", "")[:200],
    }


def _resource(request: web.Request, target: Target | None) -> dict[str, Any]:
    verb = _VERBS.get(request.method, request.method.lower())
    if target is None:
        return {"verb": verb}
    if request.method == "GET" and target.is_collection:
        verb = "watch" if request.query.get("watch") in ("true", "1") else "list"
    elif request.method == "DELETE" and target.is_collection:
        verb = "deletecollection"
    out = {"verb": verb, "apiGroup": target.rt.group, "resource": target.rt.plural}
    if target.subresource:
        out["subresource"] = target.subresource
    if target.namespace:
        out["namespace"] = target.namespace
    if target.name:
        out["name"] = target.name
    return out


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="microseconds")


Authorize = Callable[[web.Request, User, "Target | None"], Awaitable[None]]


class Gate:
    """Who a request is and whether it may go on: authentication, impersonation and
    authorization in order, each decision written to the audit log."""

    def __init__(self, server: Server, log: AuditLog) -> None:
        self.log = log
        self.authenticator = server.authenticator
        self.registry = server.registry
        self.impersonator = Impersonator(server)

    async def admit(self, request: web.Request, authorize: Authorize) -> tuple[User, Target | None]:
        """The request's (effective) user and target; raises 401/403 (audited)."""
        try:
            real = await self.authenticator.authenticate(request)
        except errors.APIError:
            self.log.unauthenticated(request)
            raise
        target = parse_target(self.registry, request.path)
        try:
            user = await self.impersonator(request, real)
        except errors.APIError as exc:
            self.log.authorization(request, real, target, allowed=False, reason=exc.message)
            raise
        impersonator = real if user is not real else None
        request[USER] = user
        try:
            await authorize(request, user, target)
        except errors.APIError as exc:
            self.log.authorization(request, user, target, allowed=False, reason=exc.message,
                                   impersonator=impersonator)  # fmt: skip
            raise
        self.log.authorization(request, user, target, allowed=True, impersonator=impersonator)
        return user, target


def install(server: Server) -> Gate:
    """The audited gate of `server`, logging to `<data-dir>/audit.log`."""
    log = AuditLog(server.config.data_dir / "audit.log")
    server.identity.throttle.observer = log.login  # identity-API password logins too

    async def close_on_stop(_: Server) -> None:  # background jobs are cancelled by stop()
        try:
            await asyncio.Event().wait()
        finally:
            log.close()

    server.background.append(close_on_stop)
    return Gate(server, log)
