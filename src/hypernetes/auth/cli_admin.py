"""`hypernetes tenant ...` and `hypernetes user ...`: the platform admin's tenancy commands.

They act through the API server, as kubectl would, with the kubeconfig in
$KUBECONFIG or else `<data-dir>/admin.kubeconfig`:

- `tenant create NAME [--display-name TEXT]`, `tenant list`, `tenant delete NAME`
- `user create NAME --tenant T --role admin|member|reader [--password-stdin]`,
  `user list`, `user delete NAME`, `user set-role NAME ROLE`

Tenants and Users are API objects; the server mirrors them into the identity
service. A password never goes into an API object: `user create` sets it on
the mirrored identity user through the identity API (`/identity/v3`), which
accepts the platform admin's client certificate in place of a token. Each
command waits until the server has mirrored the change, so what it reports is
in effect when it returns.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from hypernetes.cli import CommandError
from hypernetes.client import (
    CLUSTERROLEBINDINGS,
    TENANTS,
    USERS,
    ApiError,
    Client,
    ClientError,
    NotFound,
    Resource,
    load_kubeconfig,
)
from hypernetes.resources.platform import ROLES

WAIT = 60.0
"""Seconds a command waits for the server to mirror a change."""
MAX_PASSWORD = 4096

Obj = dict[str, Any]


def register(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    tenant = subparsers.add_parser("tenant", help="manage tenants (platform admin)")
    tenants = tenant.add_subparsers(dest="action", required=True, metavar="ACTION")
    p = tenants.add_parser("create", parents=[common], help="create a tenant")
    p.add_argument("name")
    p.add_argument("--display-name", default="")
    p.set_defaults(func=_run(tenant_create))
    p = tenants.add_parser("list", parents=[common], help="list tenants")
    p.set_defaults(func=_run(tenant_list))
    p = tenants.add_parser("delete", parents=[common], help="delete a tenant and all it owns")
    p.add_argument("name")
    p.set_defaults(func=_run(tenant_delete))

    user = subparsers.add_parser("user", help="manage tenant users (platform admin)")
    users = user.add_subparsers(dest="action", required=True, metavar="ACTION")
    p = users.add_parser("create", parents=[common], help="create a user in a tenant")
    p.add_argument("name")
    p.add_argument("--tenant", required=True)
    p.add_argument("--role", required=True, help="admin, member or reader")
    p.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    p.set_defaults(func=_run(user_create))
    p = users.add_parser("list", parents=[common], help="list users")
    p.set_defaults(func=_run(user_list))
    p = users.add_parser("delete", parents=[common], help="delete a user (and their tokens)")
    p.add_argument("name")
    p.set_defaults(func=_run(user_delete))
    p = users.add_parser("set-role", parents=[common], help="change a user's tenant role")
    p.add_argument("name")
    p.add_argument("role", help="admin, member or reader")
    p.set_defaults(func=_run(user_set_role))


Command = Callable[[Client, argparse.Namespace], Awaitable[None]]


def _run(command: Command) -> Callable[[argparse.Namespace], int]:
    """A CLI handler running `command` with a client, API failures as one-line errors."""

    def handler(args: argparse.Namespace) -> int:
        async def main() -> None:
            async with Client(_config(args)) as client:
                await command(client, args)

        try:
            asyncio.run(main())
        except ApiError as exc:
            raise CommandError(exc.message or f"{exc.code} {exc.reason}") from None
        except ClientError as exc:
            raise CommandError(str(exc)) from None
        return 0

    return handler


def _config(args: argparse.Namespace) -> Any:
    try:
        if os.environ.get("KUBECONFIG"):
            return load_kubeconfig()
        return load_kubeconfig(Path(args.data_dir) / "admin.kubeconfig")
    except ClientError as exc:
        raise CommandError(str(exc)) from None


# -- tenants ---------------------------------------------------------------------


async def tenant_create(client: Client, args: argparse.Namespace) -> None:
    spec = {"displayName": args.display_name} if args.display_name else {}
    body = {"apiVersion": TENANTS.api_version, "kind": "Tenant", "metadata": {"name": args.name},
            "spec": spec}  # fmt: skip
    try:
        await client.create(TENANTS, body)
    except ApiError as exc:
        if exc.code == 409:
            raise CommandError(f'tenant "{args.name}" already exists') from None
        raise
    tenant = await _wait(
        client, TENANTS, args.name, lambda t: (t.get("status") or {}).get("phase") == "Active"
    )
    # The auth-controller's binding lets the tenant's users in: wait for it too.
    await _wait(client, CLUSTERROLEBINDINGS, f"hypernetes:tenant:{args.name}", lambda _: True)
    print(f"tenant/{args.name} created (identity project {tenant['status']['projectID']})")


async def tenant_list(client: Client, args: argparse.Namespace) -> None:
    rows = [["NAME", "PHASE", "PROJECT", "DISPLAY NAME"]]
    for t in (await client.list_all(TENANTS)).get("items") or []:
        status, spec = t.get("status") or {}, t.get("spec") or {}
        rows.append([t["metadata"]["name"], status.get("phase", ""), status.get("projectID", ""),
                     spec.get("displayName", "")])  # fmt: skip
    _table(rows)


async def tenant_delete(client: Client, args: argparse.Namespace) -> None:
    try:
        await client.delete(TENANTS, args.name)
    except NotFound:
        raise CommandError(f'unknown tenant "{args.name}"') from None
    await _wait_gone(client, TENANTS, args.name)
    print(f"tenant/{args.name} deleted, with its namespaces, users and networks")


# -- users -----------------------------------------------------------------------


async def user_create(client: Client, args: argparse.Namespace) -> None:
    _check_role(args.role)
    password = _read_password() if args.password_stdin else None
    try:
        await client.get(TENANTS, args.tenant)
    except NotFound:
        raise CommandError(f'unknown tenant "{args.tenant}"') from None
    body = {"apiVersion": USERS.api_version, "kind": "User", "metadata": {"name": args.name},
            "spec": {"tenant": args.tenant, "role": args.role}}  # fmt: skip
    try:
        await client.create(USERS, body)
    except ApiError as exc:
        if exc.code == 409:
            raise CommandError(f'user "{args.name}" already exists') from None
        raise
    user = await _wait(client, USERS, args.name, _mirrored(args.role))
    if password is not None:
        try:
            await _set_password(client, user["status"]["userID"], password)
        except ApiError as exc:
            await client.delete(USERS, args.name)  # no half-made user left behind
            raise CommandError(f"cannot set the password: {_identity_message(exc)}") from None
    print(f"user/{args.name} created in tenant {args.tenant} as {args.role}")


async def user_list(client: Client, args: argparse.Namespace) -> None:
    rows = [["NAME", "TENANT", "ROLE", "PHASE"]]
    for u in (await client.list_all(USERS)).get("items") or []:
        spec, status = u.get("spec") or {}, u.get("status") or {}
        rows.append([u["metadata"]["name"], spec.get("tenant", ""), spec.get("role", ""),
                     status.get("phase", "")])  # fmt: skip
    _table(rows)


async def user_delete(client: Client, args: argparse.Namespace) -> None:
    try:
        await client.delete(USERS, args.name)
    except NotFound:
        raise CommandError(f'unknown user "{args.name}"') from None
    await _wait_gone(client, USERS, args.name)
    print(f"user/{args.name} deleted; their tokens no longer work")


async def user_set_role(client: Client, args: argparse.Namespace) -> None:
    _check_role(args.role)
    try:
        await client.patch(USERS, args.name, {"spec": {"role": args.role}})
    except NotFound:
        raise CommandError(f'unknown user "{args.name}"') from None
    await _wait(client, USERS, args.name, _mirrored(args.role))
    print(f"user/{args.name} is now {args.role}; they must log in again")


# -- helpers ---------------------------------------------------------------------


def _check_role(role: str) -> None:
    if role not in ROLES:
        raise CommandError(f'bad role "{role}": must be one of {", ".join(ROLES)}')


def _read_password() -> str:
    password = sys.stdin.read(MAX_PASSWORD + 2).rstrip("\r\n")
    if not password:
        raise CommandError("empty password on stdin")
    if len(password) > MAX_PASSWORD:
        raise CommandError(f"the password is longer than {MAX_PASSWORD} characters")
    return password


def _mirrored(role: str) -> Callable[[Obj], bool]:
    def done(user: Obj) -> bool:
        status = user.get("status") or {}
        return status.get("phase") == "Active" and status.get("role") == role

    return done


async def _set_password(client: Client, user_id: str, password: str) -> None:
    await client.request(
        "PATCH", f"/identity/v3/users/{user_id}", body={"user": {"password": password}}
    )


def _identity_message(exc: ApiError) -> str:
    try:
        return str(json.loads(exc.message)["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return exc.message or f"{exc.code} {exc.reason}"


async def _wait(client: Client, resource: Resource, name: str, done: Callable[[Obj], bool]) -> Obj:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT
    while True:
        try:
            obj = await client.get(resource, name)
        except NotFound:
            obj = None
        if obj is not None and done(obj):
            return obj
        if loop.time() > deadline:
            raise CommandError(f"{resource.plural}/{name} did not get ready in time")
        await asyncio.sleep(0.05)


async def _wait_gone(client: Client, resource: Resource, name: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT * 2
    while True:
        try:
            await client.get(resource, name)
        except NotFound:
            return
        if loop.time() > deadline:
            raise CommandError(f"{resource.plural}/{name} is still being deleted")
        await asyncio.sleep(0.1)


def _table(rows: list[list[str]]) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("   ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
