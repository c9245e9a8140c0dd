"""The tenant boundary as users meet it: kubectl driven through the kubeconfigs
`hypernetes login` writes (an exec credential plugin, `hypernetes credential`),
one user of each tenant. The other tenancy tests use plain token kubeconfigs
to keep the suite fast; this module shows the real login path gives the same."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import HN, PASSWORD, Platform, eventually, kubectl_denied


class LoggedIn:
    """kubectl with a kubeconfig from `hypernetes login` and its own token cache."""

    def __init__(self, platform: Platform, user: str, tenant: str) -> None:
        self.env = {**os.environ, "XDG_CACHE_HOME": str(platform.tmp / f"cache-{user}")}
        self.env.pop("KUBECONFIG", None)
        self.kubeconfig = platform.tmp / f"login-{user}.kubeconfig"
        done = subprocess.run(
            [*HN, "login", "--server", platform.server.url, "--certificate-authority",
             str(platform.ca), "--user", user, "--tenant", tenant, "--password-stdin",
             "--kubeconfig", str(self.kubeconfig)],
            input=PASSWORD + "\n", capture_output=True, text=True, env=self.env, timeout=60,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        self.env["KUBECONFIG"] = str(self.kubeconfig)

    def __call__(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(["kubectl", *args], capture_output=True, text=True,
                                env=self.env, timeout=60)  # fmt: skip
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed:\n{result.stderr}")
        return result


@pytest.fixture(scope="module")
def users(platform: Platform) -> Iterator[tuple[LoggedIn, LoggedIn]]:
    alice, carol = LoggedIn(platform, "alice", "acme"), LoggedIn(platform, "carol", "globex")
    # The kubeconfig holds no secret; the token lives in the owner-only cache.
    config = alice.kubeconfig.read_text()
    assert "exec:" in config and PASSWORD not in config and "token:" not in config
    alice("create", "namespace", "login-acme")
    carol("create", "namespace", "login-globex")
    for who, ns in ((alice, "login-acme"), (carol, "login-globex")):
        eventually(
            lambda who=who, ns=ns: who("auth", "can-i", "create", "configmaps", "-n", ns,
                                       check=False).stdout.strip() == "yes",
            f"bindings in {ns}",
        )  # fmt: skip
    alice("create", "configmap", "recipe", "--from-literal=secret=sauce", "-n", "login-acme")
    yield alice, carol
    platform.admin("delete", "namespace", "login-acme", "login-globex", "--wait=false")


def test_login_kubeconfigs_work_within_the_tenant(users: tuple[LoggedIn, LoggedIn]) -> None:
    alice, _ = users
    got = json.loads(alice("get", "configmap", "recipe", "-n", "login-acme", "-o", "json").stdout)
    assert got["data"] == {"secret": "sauce"}
    ns = json.loads(alice("get", "namespace", "login-acme", "-o", "json").stdout)
    assert ns["metadata"]["labels"]["hypernetes.io/tenant"] == "acme"
    cache = Path(alice.env["XDG_CACHE_HOME"]) / "hypernetes" / "credentials"
    cached = [p for p in cache.iterdir() if p.is_file()]
    assert cached and all(p.stat().st_mode & 0o077 == 0 for p in cached)


def test_login_kubeconfigs_keep_tenants_apart(users: tuple[LoggedIn, LoggedIn]) -> None:
    alice, carol = users
    listed = carol("get", "namespaces", "-o", "name").stdout.split()
    assert "namespace/login-globex" in listed and "namespace/login-acme" not in listed
    everywhere = carol("get", "configmaps", "-A", "-o", "jsonpath={..metadata.namespace}").stdout
    assert "login-acme" not in everywhere.split()
    assert carol("get", "tenants", "-o", "name").stdout.split() == ["tenant.hypernetes.io/globex"]
    denied = {
        "get": carol("get", "configmap", "recipe", "-n", "login-acme", check=False),
        "list": carol("get", "configmaps", "-n", "login-acme", check=False),
        "watch": carol(
            "get", "configmaps", "-n", "login-acme", "--watch", "--request-timeout=3s", check=False
        ),
        "patch": carol(
            "label", "configmap", "recipe", "stolen=yes", "-n", "login-acme", check=False
        ),
        "delete": carol("delete", "configmap", "recipe", "-n", "login-acme", check=False),
        "create": carol("create", "configmap", "planted", "-n", "login-acme", check=False),
    }
    for verb, result in denied.items():
        err = kubectl_denied(result)
        assert 'User "carol"' in err and 'not in tenant "globex"' in err, (verb, err)
    # Nothing changed on acme's side.
    got = json.loads(alice("get", "configmap", "recipe", "-n", "login-acme", "-o", "json").stdout)
    assert "stolen" not in got["metadata"].get("labels", {})
    assert alice("get", "configmap", "planted", "-n", "login-acme", check=False).returncode != 0
