"""A platform with two tenants for the tenancy tests, and ways to act as their users.

One `hypernetes server` serves the whole package. The tenants and users are
made with the admin CLI; users act through kubectl with a kubeconfig holding
a bearer token from the identity service (password login, project scope).
"""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.conftest import RunningServer, start_server

PASSWORD = "correct horse battery staple"
HN = [sys.executable, "-c", "import sys; from hypernetes.cli import main; sys.exit(main())"]
"""The CLI as its console script runs it (`-m` would make two CommandError classes)."""
USERS = {  # name: (tenant, role)
    "alice": ("acme", "admin"),
    "bob": ("acme", "reader"),
    "carol": ("globex", "admin"),
    "dave": ("globex", "member"),
}


@dataclass
class Response:
    code: int
    body: Any
    headers: dict[str, str]


@dataclass
class Kubectl:
    """kubectl (and raw HTTPS) as one principal."""

    kubeconfig: Path
    url: str
    ca: Path
    token: str | None

    def __call__(
        self, *args: str, input: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig)}
        result = subprocess.run(["kubectl", *args], input=input, capture_output=True, text=True,
                                env=env, timeout=60)  # fmt: skip
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed:\n{result.stderr}")
        return result

    def api(self, method: str, path: str, body: Any = None,
            content_type: str = "application/json") -> Response:  # fmt: skip
        headers = {"Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        return request(self.url + path, self.ca, method, body, headers, content_type)


def request(url: str, ca: Path, method: str = "GET", body: Any = None,
            headers: dict[str, str] | None = None, content_type: str = "application/json",
            cert: tuple[Path, Path] | None = None) -> Response:  # fmt: skip
    context = ssl.create_default_context(cafile=str(ca))
    if cert is not None:
        context.load_cert_chain(str(cert[0]), str(cert[1]))
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers=dict(headers or {}))
    if data is not None:
        req.add_header("Content-Type", content_type)
    try:
        with urllib.request.urlopen(req, context=context, timeout=30) as resp:
            raw = resp.read()
            code, hdrs = resp.status, dict(resp.headers)
    except urllib.error.HTTPError as exc:
        raw, code, hdrs = exc.read(), exc.code, dict(exc.headers)
    text = raw.decode()
    try:
        parsed: Any = json.loads(text) if text.strip() else None
    except ValueError:
        parsed = text
    return Response(code, parsed, hdrs)


@dataclass
class Platform:
    server: RunningServer
    tmp: Path

    @property
    def ca(self) -> Path:
        return self.server.data_dir / "ca.crt"

    @property
    def admin(self) -> Kubectl:
        return Kubectl(self.server.kubeconfig, self.server.url, self.ca, None)

    def admin_api(self, method: str, path: str, body: Any = None) -> Response:
        data = self.server.data_dir
        return request(self.server.url + path, self.ca, method, body,
                       {"Accept": "application/json"},
                       cert=(data / "admin.crt", data / "admin.key"))  # fmt: skip

    def hn(self, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        """The hypernetes CLI with the data dir's admin kubeconfig (no $KUBECONFIG)."""
        env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
        cmd = [*HN, *args,
               "--data-dir", str(self.server.data_dir)]  # fmt: skip
        return subprocess.run(cmd, input=input, capture_output=True, text=True, env=env,
                              timeout=120)  # fmt: skip

    def token(self, user: str, tenant: str, password: str = PASSWORD) -> str:
        token = self.try_token(user, tenant, password)
        assert token is not None, f"{user} cannot log in to {tenant}"
        return token

    def try_token(self, user: str, tenant: str, password: str = PASSWORD) -> str | None:
        body = {"auth": {
            "identity": {"methods": ["password"], "password": {
                "user": {"name": user, "domain": {"id": "default"}, "password": password}}},
            "scope": {"project": {"name": tenant, "domain": {"id": "default"}}},
        }}  # fmt: skip
        resp = request(self.server.url + "/identity/v3/auth/tokens", self.ca, "POST", body)
        if resp.code != 201:
            assert resp.code == 401, resp.body
            return None
        return resp.headers["X-Subject-Token"]

    def login(self, user: str, tenant: str | None = None, password: str = PASSWORD) -> Kubectl:
        """kubectl as `user`, with a token scoped to their tenant."""
        tenant = tenant or USERS[user][0]
        token = self.token(user, tenant, password)
        return self.with_token(token, f"{user}-{time.monotonic_ns()}")

    def with_token(self, token: str, name: str) -> Kubectl:
        config = {
            "apiVersion": "v1", "kind": "Config", "current-context": "c",
            "clusters": [{"name": "c", "cluster": {"server": self.server.url,
                                                   "certificate-authority": str(self.ca)}}],
            "users": [{"name": "u", "user": {"token": token}}],
            "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
        }  # fmt: skip
        path = self.tmp / f"{name}.kubeconfig"
        path.write_text(yaml.safe_dump(config))
        path.chmod(0o600)
        return Kubectl(path, self.server.url, self.ca, token)


def eventually(check: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


@pytest.fixture(scope="package")
def platform() -> Iterator[Platform]:
    with tempfile.TemporaryDirectory(prefix="hn-tenancy-") as tmp:
        server = start_server(Path(tmp) / "data")
        try:
            p = Platform(server, Path(tmp))
            for tenant in ("acme", "globex"):
                done = p.hn("tenant", "create", tenant, "--display-name", tenant.title())
                assert done.returncode == 0, done.stderr
            for user, (tenant, role) in USERS.items():
                done = p.hn("user", "create", user, "--tenant", tenant, "--role", role,
                            "--password-stdin", input=PASSWORD + "\n")  # fmt: skip
                assert done.returncode == 0, done.stderr
            yield p
        finally:
            server.stop()


def forbidden(resp: Response) -> str:
    """The message of a 403 Forbidden Status (asserting that is what `resp` is)."""
    assert resp.code == 403, (resp.code, resp.body)
    assert resp.body["kind"] == "Status" and resp.body["reason"] == "Forbidden", resp.body
    return str(resp.body["message"])


def kubectl_denied(result: subprocess.CompletedProcess[str]) -> str:
    """kubectl's report of a 403 (some commands print the Status message without the reason)."""
    assert result.returncode != 0, result.stdout
    err = result.stderr
    assert "Error from server (Forbidden)" in err or " is forbidden: " in err, err
    return err
