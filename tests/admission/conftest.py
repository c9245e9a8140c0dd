"""Fixtures of the admission tests: one server whose identity admin password is known,
tenants with identity users (bearer-token kubeconfigs for kubectl), tenant namespaces.

Tenant principals here are real identity users of a project, logged in through the
identity API; their tokens go to the API server as bearer tokens, as `hypernetes login`
does. Tenant namespaces are made by the platform admin with the ownership label and a
RoleBinding giving the tenant's group the `admin` cluster role.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.conftest import RunningServer, start_server

IDENTITY_PASSWORD = "quota-Admin-pw1"
TENANT_LABEL = "hypernetes.io/tenant"


def _bootstrap_identity(data_dir: Path) -> None:
    """Give the identity admin a known password before the server first starts."""
    from hypernetes.auth.identity import IdentityService
    from hypernetes.store import SQLiteStore

    async def run() -> None:
        store = SQLiteStore(data_dir / "state.db")
        try:
            await IdentityService(store, data_dir).bootstrap(IDENTITY_PASSWORD)
        finally:
            await store.close()

    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    asyncio.run(run())


@dataclass
class Env:
    """The server and what the tests made on it."""

    server: RunningServer
    tmp: Path
    tokens: dict[str, str] = field(default_factory=dict)

    # -- kubectl -------------------------------------------------------------------------

    def admin(self, *args: str, input: str | None = None, check: bool = True
              ) -> subprocess.CompletedProcess[str]:  # fmt: skip
        return self.server.kubectl(*args, input=input, check=check)

    def as_user(self, user: str, *args: str, input: str | None = None
                ) -> subprocess.CompletedProcess[str]:  # fmt: skip
        """kubectl as an identity user (never raises: tests look at the result)."""
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig(user))}
        return subprocess.run(["kubectl", *args], input=input, capture_output=True, text=True,
                              env=env, timeout=60)  # fmt: skip

    def create_as(self, user: str, ns: str, *generator: str) -> subprocess.CompletedProcess[str]:
        """`kubectl create <generator>` as `user`, sent as a manifest (`create -f -`) so that
        kubectl reports the server's Status (`Error from server (Forbidden): ...`)."""
        manifest = self.admin("create", *generator, "--dry-run=client", "-o", "json").stdout
        return self.as_user(user, "-n", ns, "create", "-f", "-", input=manifest)

    def apply(self, obj: dict[str, Any]) -> None:
        self.admin("apply", "-f", "-", input=json.dumps(obj))

    def get(self, *args: str) -> Any:
        return json.loads(self.admin("get", "-o", "json", *args).stdout)

    def kubeconfig(self, user: str) -> Path:
        path = self.tmp / f"{user}.kubeconfig"
        if not path.exists():
            config = yaml.safe_load(self.server.kubeconfig.read_text())
            config["users"] = [{"name": user, "user": {"token": self.tokens[user]}}]
            config["contexts"][0]["context"]["user"] = user
            path.write_text(yaml.safe_dump(config))
            path.chmod(0o600)
        return path

    # -- identity ----------------------------------------------------------------------

    def identity(self, method: str, path: str, body: Any = None, token: str | None = None
                 ) -> tuple[int, dict[str, str], Any]:  # fmt: skip
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json"}
        if token:
            headers["X-Auth-Token"] = token
        request = urllib.request.Request(f"{self.server.url}/identity/v3{path}", data=data,
                                         method=method, headers=headers)  # fmt: skip
        context = ssl.create_default_context(cafile=str(self.server.data_dir / "ca.crt"))
        try:
            with urllib.request.urlopen(request, context=context, timeout=30) as response:
                raw = response.read()
                return response.status, dict(response.headers), json.loads(raw) if raw else None
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            return exc.code, dict(exc.headers), json.loads(raw) if raw else None

    def login(self, user: str, password: str, project: str) -> str:
        auth = {"identity": {"methods": ["password"], "password": {"user": {
            "name": user, "domain": {"id": "default"}, "password": password}}},
            "scope": {"project": {"name": project, "domain": {"id": "default"}}}}  # fmt: skip
        status, headers, body = self.identity("POST", "/auth/tokens", {"auth": auth})
        assert status == 201, body
        return headers["X-Subject-Token"]

    def project_id(self, token: str, name: str) -> str | None:
        _, _, body = self.identity("GET", f"/projects?name={name}", token=token)
        projects = body["projects"]
        return str(projects[0]["id"]) if projects else None

    # -- tenants ---------------------------------------------------------------------

    def tenant(self, name: str, *, policy: dict[str, Any] | None = None,
               quota: dict[str, Any] | None = None) -> None:  # fmt: skip
        """A Tenant (made by the admin) and its identity project."""
        spec: dict[str, Any] = {"policy": policy or {}}
        if quota is not None:
            spec["quota"] = {"hard": quota}
        self.apply({"apiVersion": "hypernetes.io/v1", "kind": "Tenant",
                    "metadata": {"name": name}, "spec": spec})  # fmt: skip
        admin = self.login("admin", IDENTITY_PASSWORD, "admin")
        deadline = time.monotonic() + 15
        while self.project_id(admin, name) is None:
            if time.monotonic() > deadline:  # the identity sync has not made it: make it here
                status, _, body = self.identity(
                    "POST", "/projects", {"project": {"name": name}}, admin
                )
                assert status in (201, 409), body
                break
            time.sleep(0.2)

    def user(self, tenant: str, name: str, role: str = "admin") -> str:
        """An identity user with `role` on the tenant's project; returns its name."""
        admin = self.login("admin", IDENTITY_PASSWORD, "admin")
        password = "pw-" + secrets.token_urlsafe(12)
        status, _, body = self.identity(
            "POST", "/users", {"user": {"name": name, "password": password}}, admin
        )
        assert status == 201, body
        user_id = body["user"]["id"]
        _, _, roles = self.identity("GET", f"/roles?name={role}", token=admin)
        project = self.project_id(admin, tenant)
        assert project is not None
        path = f"/projects/{project}/users/{user_id}/roles/{roles['roles'][0]['id']}"
        status, _, _ = self.identity("PUT", path, token=admin)
        assert status == 204
        self.tokens[name] = self.login(name, password, tenant)
        return name

    def namespace(self, name: str, tenant: str | None = None) -> str:
        """A namespace (owned by `tenant` if given, whose group then gets `admin` in it)."""
        meta: dict[str, Any] = {"name": name}
        if tenant:
            meta["labels"] = {TENANT_LABEL: tenant}
        self.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": meta})
        if tenant:
            self.apply({
                "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                "metadata": {"name": "tenant-admin", "namespace": name},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                            "name": "admin"},
                "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group",
                              "name": f"hypernetes:tenant:{tenant}"}],
            })  # fmt: skip
        return name


@pytest.fixture(scope="session")
def env() -> Iterator[Env]:
    with tempfile.TemporaryDirectory(prefix="hn-admission-") as tmp:
        data = Path(tmp) / "data"
        _bootstrap_identity(data)
        server = start_server(data)
        try:
            yield Env(server, Path(tmp))
        finally:
            server.stop()


def pod(name: str, *, resources: dict[str, Any] | None = None, **spec: Any) -> dict[str, Any]:
    """A pod manifest with one container `app` (more spec fields as keyword arguments)."""
    container: dict[str, Any] = {"name": "app", "image": "registry.local/busybox"}
    if resources is not None:
        container["resources"] = resources
    container |= spec.pop("container", {})
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"containers": [container], **spec}}  # fmt: skip


def denied(result: subprocess.CompletedProcess[str], message: str) -> None:
    """kubectl failed with a 403 Forbidden carrying exactly `message` (kubectl's wording)."""
    assert result.returncode != 0, result.stdout
    assert "(Forbidden)" in result.stderr, result.stderr
    assert message in result.stderr, result.stderr


def invalid(result: subprocess.CompletedProcess[str], message: str) -> None:
    """kubectl failed with 422 Invalid (kubectl words it `The <Kind> "<name>" is invalid: ...`)."""
    assert result.returncode != 0, result.stdout
    assert '" is invalid: ' in result.stderr and result.stderr.startswith("The "), result.stderr
    assert message in result.stderr, result.stderr
