"""The admin CLI: what it makes, what it lists, and its one-line errors."""

from __future__ import annotations

import os
import subprocess

import pytest

from .conftest import HN, PASSWORD, Platform


def fails(result: subprocess.CompletedProcess[str], message: str) -> None:
    assert result.returncode == 1, result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("hypernetes: "), result.stderr
    assert message in lines[0], lines[0]


def test_lists(platform: Platform) -> None:
    tenants = platform.hn("tenant", "list")
    assert tenants.returncode == 0
    rows = {line.split()[0]: line.split() for line in tenants.stdout.splitlines()[1:]}
    assert rows["acme"][1] == "Active" and rows["globex"][3] == "Globex"
    users = platform.hn("user", "list")
    rows = {line.split()[0]: line.split() for line in users.stdout.splitlines()[1:]}
    assert rows["bob"][1:] == ["acme", "reader", "Active"]


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (("tenant", "create", "acme"), None, 'tenant "acme" already exists'),
        (("tenant", "create", "Not_Valid"), None, 'is invalid: metadata.name'),
        (("tenant", "create", "a.b"), None, "must be a DNS label"),
        (("tenant", "delete", "nowhere"), None, 'unknown tenant "nowhere"'),
        (("user", "create", "zed", "--tenant", "nowhere", "--role", "member", "--password-stdin"),
         PASSWORD, 'unknown tenant "nowhere"'),
        (("user", "create", "alice", "--tenant", "acme", "--role", "member", "--password-stdin"),
         PASSWORD, 'user "alice" already exists'),
        (("user", "create", "zed", "--tenant", "acme", "--role", "owner", "--password-stdin"),
         PASSWORD, 'bad role "owner": must be one of admin, member, reader'),
        (("user", "create", "zed", "--tenant", "acme", "--role", "member", "--password-stdin"),
         "\n", "empty password on stdin"),
        (("user", "delete", "nobody"), None, 'unknown user "nobody"'),
        (("user", "set-role", "nobody", "reader"), None, 'unknown user "nobody"'),
        (("user", "set-role", "bob", "root"), None, 'bad role "root"'),
    ],
)  # fmt: skip
def test_one_line_errors(
    platform: Platform, args: tuple[str, ...], stdin: str | None, message: str
) -> None:
    fails(platform.hn(*args, input=stdin), message)


def test_nothing_half_made_on_failure(platform: Platform) -> None:
    fails(platform.hn("user", "create", "zed", "--tenant", "acme", "--role", "member",
                      "--password-stdin", input=""), "empty password")  # fmt: skip
    assert "NotFound" in platform.admin("get", "user", "zed", check=False).stderr


def test_kubeconfig_from_the_environment(platform: Platform, tmp_path: object) -> None:
    """$KUBECONFIG wins over the data dir: a tenant user's kubeconfig is refused."""
    bob = platform.login("bob")
    env = {**os.environ, "KUBECONFIG": str(bob.kubeconfig)}
    result = subprocess.run([*HN, "tenant", "create", "evil"],
                            capture_output=True, text=True, env=env, timeout=60)  # fmt: skip
    fails(result, "tenants is forbidden")
    missing = {**os.environ, "KUBECONFIG": ""}
    result = subprocess.run([*HN, "tenant", "list",
                             "--data-dir", "/nonexistent"], capture_output=True, text=True,
                            env=missing, timeout=60)  # fmt: skip
    fails(result, "admin.kubeconfig")
