"""Helpers for end-to-end auth tests: a server whose identity admin password is known,
identity users and projects made through the identity HTTP API, `hypernetes login`
and kubectl through a pseudo-terminal (for the password prompt of the exec plugin).
"""

from __future__ import annotations

import asyncio
import json
import os
import pty
import select
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.conftest import RunningServer, start_server

ADMIN_PASSWORD = "identity-Admin-pw1"


def bootstrap_identity(data_dir: Path, password: str = ADMIN_PASSWORD) -> None:
    """Bootstrap the identity service of a not-yet-started server with a known admin password."""
    from hypernetes.auth.identity import IdentityService
    from hypernetes.store import SQLiteStore

    async def run() -> None:
        store = SQLiteStore(data_dir / "state.db")
        try:
            await IdentityService(store, data_dir).bootstrap(password)
        finally:
            await store.close()

    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    asyncio.run(run())


def start_identity_server(data_dir: Path) -> RunningServer:
    bootstrap_identity(data_dir)
    return start_server(data_dir)


@dataclass
class Identity:
    """The identity HTTP API of a running server, as its admin."""

    server: RunningServer

    @property
    def ca(self) -> Path:
        return self.server.data_dir / "ca.crt"

    def call(
        self, method: str, path: str, body: dict[str, Any] | None = None, token: str | None = None
    ) -> tuple[int, dict[str, str], Any]:
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json"}
        if token:
            headers["X-Auth-Token"] = token
        request = urllib.request.Request(
            f"{self.server.url}/identity/v3{path}", data=data, method=method, headers=headers
        )
        context = ssl.create_default_context(cafile=str(self.ca))
        try:
            with urllib.request.urlopen(request, context=context, timeout=30) as response:
                raw = response.read()
                return response.status, dict(response.headers), json.loads(raw) if raw else None
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            return exc.code, dict(exc.headers), json.loads(raw) if raw else None

    def login(self, user: str, password: str, project: str | None) -> tuple[int, str | None]:
        scope: Any = {"project": {"name": project, "domain": {"id": "default"}}}
        auth = {"identity": {"methods": ["password"], "password": {"user": {
            "name": user, "domain": {"id": "default"}, "password": password}}},
            "scope": scope if project else "unscoped"}  # fmt: skip
        status, headers, _ = self.call("POST", "/auth/tokens", {"auth": auth})
        return status, headers.get("X-Subject-Token")

    def admin_token(self) -> str:
        status, token = self.login("admin", ADMIN_PASSWORD, "admin")
        assert status == 201 and token
        return token

    def make_user(self, project: str, user: str, password: str, role: str = "member") -> str:
        token = self.admin_token()
        status, _, body = self.call("GET", f"/projects?name={project}", token=token)
        projects = body["projects"]
        if projects:
            project_id = projects[0]["id"]
        else:
            status, _, body = self.call("POST", "/projects", {"project": {"name": project}}, token)
            assert status == 201, body
            project_id = body["project"]["id"]
        status, _, body = self.call(
            "POST", "/users", {"user": {"name": user, "password": password}}, token
        )
        assert status == 201, body
        user_id = body["user"]["id"]
        _, _, roles = self.call("GET", f"/roles?name={role}", token=token)
        role_id = roles["roles"][0]["id"]
        status, _, _ = self.call(
            "PUT", f"/projects/{project_id}/users/{user_id}/roles/{role_id}", token=token
        )
        assert status == 204
        return user_id


def hypernetes(
    *args: str, input: str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(Path(sys.executable).with_name("hypernetes")), *args],
        input=input,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=60,
    )


def kubectl(
    kubeconfig: Path, *args: str, env: dict[str, str] | None = None, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["kubectl", "--kubeconfig", str(kubeconfig), *args],
        capture_output=True,
        text=True,
        input=input,
        env={**os.environ, **(env or {})},
        timeout=60,
    )


def kubectl_on_tty(
    kubeconfig: Path, *args: str, answer: str, env: dict[str, str], timeout: float = 60
) -> tuple[int, str]:
    """Run kubectl on a new pseudo-terminal; type `answer` when a password prompt appears."""
    pid, master = pty.fork()
    if pid == 0:  # the child: a session leader with the pty as its controlling terminal
        os.execvpe("kubectl", ["kubectl", "--kubeconfig", str(kubeconfig), *args],
                   {**os.environ, **env})  # fmt: skip
    output = b""
    answered = 0
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(master, 4096)
                except OSError:
                    break  # EIO: the child closed the terminal
                if not chunk:
                    break
                output += chunk
            if output.count(b"Password for") > answered:  # kubectl may run the plugin again
                time.sleep(0.2)  # getpass flushes pending input when it turns echo off
                os.write(master, answer.encode() + b"\n")
                answered += 1
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            if time.monotonic() > deadline:  # still running at the deadline
                os.kill(pid, 9)
                _, status = os.waitpid(pid, 0)
                break
            time.sleep(0.05)
    finally:
        os.close(master)
    return os.waitstatus_to_exitcode(status), output.decode(errors="replace")
