"""`hypernetes login` / `hypernetes credential` end to end, with the real kubectl.

A server process with a known identity admin password; the tenant user is
made through the identity HTTP API; kubectl runs the exec plugin the login
wrote. The token cache is checked on disk (mode, content, refresh after expiry
through the plugin's password prompt on a pseudo-terminal).
"""

from __future__ import annotations

import json
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from tests.auth.loginhelpers import (
    Identity,
    hypernetes,
    kubectl,
    kubectl_on_tty,
    start_identity_server,
)
from tests.conftest import RunningServer

PASSWORD = "alice-Secret-1"


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[RunningServer, Identity]]:
    with tempfile.TemporaryDirectory(prefix="hn-login-") as tmp:
        server = start_identity_server(Path(tmp) / "data")
        try:
            identity = Identity(server)
            identity.make_user("acme", "alice", PASSWORD, "member")
            # Let alice list namespaces (the auth-controller's bindings are not under test here).
            server.kubectl("create", "clusterrole", "login-test-ns-reader",
                           "--verb=get,list", "--resource=namespaces")  # fmt: skip
            server.kubectl("create", "clusterrolebinding", "login-test-alice",
                           "--clusterrole=login-test-ns-reader", "--user=alice")  # fmt: skip
            yield server, identity
        finally:
            server.stop()


def login(
    server: RunningServer, tmp: Path, *, user: str = "alice", tenant: str = "acme",
    password: str = PASSWORD, url: str | None = None, ca: bool = True,
) -> tuple[Path, Path, object]:  # fmt: skip
    kubeconfig, cache = tmp / "alice.kubeconfig", tmp / "cache"
    args = ["login", "--server", url or server.url, "--user", user, "--tenant", tenant,
            "--password-stdin", "--kubeconfig", str(kubeconfig),
            "--cache-dir", str(cache)]  # fmt: skip
    if ca:
        args += ["--certificate-authority", str(server.data_dir / "ca.crt")]
    return kubeconfig, cache, hypernetes(*args, input=password + "\n")


def cache_file(cache: Path) -> Path:
    files = list(cache.glob("*.json"))
    assert len(files) == 1, files
    return files[0]


def test_login_then_kubectl_uses_the_exec_plugin(
    served: tuple[RunningServer, Identity], tmp_path: Path
) -> None:
    server, _ = served
    kubeconfig, cache, result = login(server, tmp_path)
    assert result.returncode == 0, result.stderr  # type: ignore[attr-defined]
    assert stat.S_IMODE(kubeconfig.stat().st_mode) == 0o600
    config = yaml.safe_load(kubeconfig.read_text())
    user = config["users"][0]["user"]
    assert set(user) == {"exec"}, "no token, password or key in the kubeconfig"
    assert user["exec"]["apiVersion"] == "client.authentication.k8s.io/v1"
    assert user["exec"]["interactiveMode"] == "IfAvailable"
    assert PASSWORD not in kubeconfig.read_text()
    token_file = cache_file(cache)
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(cache.stat().st_mode) == 0o700
    cached = json.loads(token_file.read_text())
    assert PASSWORD not in token_file.read_text()

    got = kubectl(kubeconfig, "get", "ns", "-o", "name")
    assert got.returncode == 0, got.stderr
    who = kubectl(kubeconfig, "auth", "can-i", "list", "namespaces")
    assert who.stdout.strip() == "yes"
    denied = kubectl(kubeconfig, "auth", "can-i", "delete", "namespaces")
    assert denied.stdout.startswith("no")
    # The plugin reused the login's token rather than logging in again.
    assert json.loads(token_file.read_text()) == cached


def test_credential_prints_an_exec_credential(
    served: tuple[RunningServer, Identity], tmp_path: Path
) -> None:
    server, identity = served
    _, cache, result = login(server, tmp_path)
    assert result.returncode == 0  # type: ignore[attr-defined]
    out = hypernetes("credential", "--server", server.url, "--user", "alice", "--tenant", "acme",
                     "--cache-dir", str(cache))  # fmt: skip
    assert out.returncode == 0, out.stderr
    credential = json.loads(out.stdout)
    assert credential["kind"] == "ExecCredential"
    assert credential["apiVersion"] == "client.authentication.k8s.io/v1"
    token = credential["status"]["token"]
    assert credential["status"]["expirationTimestamp"].endswith("Z")
    # The token is a tenant-scoped identity token: it lists exactly that project.
    request = identity.call("GET", "/auth/projects", token=token)
    assert request[0] == 200
    assert [p["name"] for p in request[2]["projects"]] == ["acme"]


def test_expired_token_is_refreshed_through_the_terminal_prompt(
    served: tuple[RunningServer, Identity], tmp_path: Path
) -> None:
    server, _ = served
    kubeconfig, cache, result = login(server, tmp_path)
    assert result.returncode == 0  # type: ignore[attr-defined]
    token_file = cache_file(cache)
    old = json.loads(token_file.read_text())
    token_file.write_text(json.dumps({**old, "expiresAt": "2020-01-01T00:00:00Z"}))
    token_file.chmod(0o600)

    # Without a terminal the plugin cannot ask: one line saying to log in again.
    no_tty = kubectl(kubeconfig, "get", "ns")
    assert no_tty.returncode != 0
    assert "(expired, or never logged in here); run `hypernetes login" in no_tty.stderr

    code, output = kubectl_on_tty(
        kubeconfig, "auth", "can-i", "list", "namespaces", answer=PASSWORD, env={}
    )
    assert code == 0, output
    assert "Password for alice in tenant acme" in output
    assert output.rstrip().endswith("yes")
    assert PASSWORD not in output, "the prompt does not echo"
    new = json.loads(token_file.read_text())
    assert new["token"] != old["token"] and new["expiresAt"] > "2020-01-01"
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600


def test_wrong_password_on_the_prompt_is_one_line(
    served: tuple[RunningServer, Identity], tmp_path: Path
) -> None:
    server, _ = served
    kubeconfig, cache, result = login(server, tmp_path)
    assert result.returncode == 0  # type: ignore[attr-defined]
    cache_file(cache).unlink()
    code, output = kubectl_on_tty(kubeconfig, "get", "ns", answer="not-the-password", env={})
    assert code != 0
    assert "login failed: wrong user name or password for 'alice'" in output
    assert not list(cache.glob("*.json"))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"password": "wrong-password"}, "login failed: wrong user name or password for 'alice'"),
        ({"user": "nobody"}, "login failed: wrong user name or password for 'nobody'"),
        ({"tenant": "no-such-tenant"},
         "login failed: user 'alice' has no access to tenant 'no-such-tenant'"),
        ({"url": "https://127.0.0.1:1"}, "cannot reach https://127.0.0.1:1: "),
        ({"ca": False}, "TLS verification failed"),
    ],
)  # fmt: skip
def test_login_errors_are_one_line(
    served: tuple[RunningServer, Identity], tmp_path: Path, kwargs: dict[str, object], message: str
) -> None:
    server, _ = served
    kubeconfig, cache, result = login(server, tmp_path, **kwargs)  # type: ignore[arg-type]
    assert result.returncode == 1  # type: ignore[attr-defined]
    stderr = result.stderr  # type: ignore[attr-defined]
    assert message in stderr
    assert stderr.count("\n") == 1 and stderr.startswith("hypernetes: ")
    assert "Traceback" not in stderr
    assert not kubeconfig.exists() and not cache.exists()


def test_a_widened_cache_file_is_not_trusted(
    served: tuple[RunningServer, Identity], tmp_path: Path
) -> None:
    server, _ = served
    kubeconfig, cache, result = login(server, tmp_path)
    assert result.returncode == 0  # type: ignore[attr-defined]
    cache_file(cache).chmod(0o644)
    out = kubectl(kubeconfig, "get", "ns")
    assert out.returncode != 0 and "no current token for alice" in out.stderr
