"""Impersonation, the audit log and login throttling, against a real server with kubectl.

One server for the module, with a known identity admin password; tenant
`imp-acme` with user `alice` (logged in through `hypernetes login`).
"""

from __future__ import annotations

import json
import ssl
import stat
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.auth.loginhelpers import Identity, hypernetes, kubectl, start_identity_server
from tests.auth.test_serviceaccounts import as_token
from tests.conftest import RunningServer

from hypernetes.auth.identity.throttle import LoginThrottle, TooManyRequests

PASSWORD = "alice-Secret-2"
TENANT = "imp-acme"


@pytest.fixture(scope="module")
def env() -> Iterator[tuple[RunningServer, Identity, Path]]:
    with tempfile.TemporaryDirectory(prefix="hn-imp-") as tmp:
        server = start_identity_server(Path(tmp) / "data")
        try:
            identity = Identity(server)
            identity.make_user(TENANT, "alice", PASSWORD, "admin")
            kubeconfig = Path(tmp) / "alice.kubeconfig"
            done = hypernetes("login", "--server", server.url, "--certificate-authority",
                              str(server.data_dir / "ca.crt"), "--user", "alice", "--tenant",
                              TENANT, "--password-stdin", "--kubeconfig", str(kubeconfig),
                              "--cache-dir", str(Path(tmp) / "cache"), input=PASSWORD)  # fmt: skip
            assert done.returncode == 0, done.stderr
            server.kubectl("create", "namespace", "imp")
            yield server, identity, kubeconfig
        finally:
            server.stop()


def admin_call(server: RunningServer, path: str, headers: dict[str, str]) -> tuple[int, Any]:
    context = ssl.create_default_context(cafile=str(server.data_dir / "ca.crt"))
    context.load_cert_chain(server.data_dir / "admin.crt", server.data_dir / "admin.key")
    request = urllib.request.Request(server.url + path, headers=headers)
    try:
        with urllib.request.urlopen(request, context=context, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


# -- impersonation --------------------------------------------------------------------


def test_admin_impersonates_a_user_and_is_authorized_as_them(
    env: tuple[RunningServer, Identity, Path],
) -> None:
    server, _, _ = env
    denied = server.kubectl("get", "configmaps", "-n", "imp", "--as=bob", check=False)
    assert denied.returncode != 0
    assert 'User "bob" cannot list resource "configmaps"' in denied.stderr
    server.kubectl("create", "rolebinding", "bob-view", "--clusterrole=view", "--user=bob",
                   "-n", "imp")  # fmt: skip
    assert server.kubectl("get", "configmaps", "-n", "imp", "--as=bob").returncode == 0
    as_group = server.kubectl("get", "configmaps", "-n", "imp", "--as=carl",
                              "--as-group=imp-viewers", check=False)  # fmt: skip
    assert as_group.returncode != 0
    server.kubectl("create", "rolebinding", "grp-view", "--clusterrole=view",
                   "--group=imp-viewers", "-n", "imp")  # fmt: skip
    ok = server.kubectl("get", "configmaps", "-n", "imp", "--as=carl", "--as-group=imp-viewers")
    assert ok.returncode == 0
    # A group without a user is refused.
    code, body = admin_call(server, "/api/v1/namespaces/imp/configmaps",
                            {"Impersonate-Group": "imp-viewers"})  # fmt: skip
    assert code == 400 and body["reason"] == "BadRequest"


def test_impersonate_needs_the_verb(env: tuple[RunningServer, Identity, Path],
                                    tmp_path: Path) -> None:  # fmt: skip
    server, _, _ = env
    server.kubectl("create", "sa", "imp-robot", "-n", "imp")
    token = server.kubectl("create", "token", "imp-robot", "-n", "imp").stdout.strip()
    refused = as_token(server, tmp_path, token, "get", "ns", "--as=bob")
    assert refused.returncode != 0
    assert ('cannot impersonate resource "users" in API group "" at the cluster scope'
            in refused.stderr)  # fmt: skip
    role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": "impersonate-bob"},
            "rules": [{"apiGroups": [""], "resources": ["users"], "resourceNames": ["bob"],
                       "verbs": ["impersonate"]}]}  # fmt: skip
    server.kubectl("create", "-f", "-", input=json.dumps(role))
    server.kubectl("create", "clusterrolebinding", "imp-robot-impersonates",
                   "--clusterrole=impersonate-bob", "--serviceaccount=imp:imp-robot")  # fmt: skip
    allowed = as_token(server, tmp_path, token, "get", "configmaps", "-n", "imp", "--as=bob")
    assert allowed.returncode == 0, allowed.stderr
    other = as_token(server, tmp_path, token, "get", "configmaps", "-n", "imp", "--as=eve")
    assert other.returncode != 0 and 'users "eve" is forbidden' in other.stderr
    group = as_token(server, tmp_path, token, "get", "configmaps", "-n", "imp", "--as=bob",
                     "--as-group=system:masters")  # fmt: skip
    assert group.returncode != 0 and 'cannot impersonate resource "groups"' in group.stderr


def test_tenant_principals_never_impersonate(env: tuple[RunningServer, Identity, Path]) -> None:
    server, _, kubeconfig = env
    server.kubectl("create", "clusterrolebinding", "alice-too-broad",
                   "--clusterrole=cluster-admin", "--user=alice")  # fmt: skip
    try:
        out = kubectl(kubeconfig, "get", "configmaps", "-n", "imp", "--as=bob")
        assert out.returncode != 0
        assert "tenant principals may not impersonate" in out.stderr
    finally:
        server.kubectl("delete", "clusterrolebinding", "alice-too-broad")


def test_an_impersonated_tenant_user_stays_in_their_tenant(
    env: tuple[RunningServer, Identity, Path],
) -> None:
    server, _, _ = env
    server.kubectl("create", "clusterrolebinding", "dave-too-broad",
                   "--clusterrole=cluster-admin", "--user=dave")  # fmt: skip
    try:
        as_platform = server.kubectl("get", "configmaps", "-n", "imp", "--as=dave")
        assert as_platform.returncode == 0
        as_tenant = server.kubectl("get", "configmaps", "-n", "imp", "--as=dave",
                                   f"--as-group=hypernetes:tenant:{TENANT}",
                                   check=False)  # fmt: skip
        assert as_tenant.returncode != 0 and "forbidden" in as_tenant.stderr.lower()
    finally:
        server.kubectl("delete", "clusterrolebinding", "dave-too-broad")


# -- throttling ------------------------------------------------------------------------


def test_throttle_window_slides() -> None:
    now = [0.0]
    throttle = LoginThrottle(limit=3, window=10.0, clock=lambda: now[0])
    seen: list[tuple[str, str]] = []
    throttle.observer = lambda who, outcome: seen.append((who, outcome))
    for _ in range(3):
        throttle.check("k", "u")
        throttle.failed("k", "u")
        now[0] += 1
    with pytest.raises(TooManyRequests):
        throttle.check("k", "u")
    throttle.check("other", "v")  # per user
    now[0] = 10.5  # the first failure (t=0) left the window
    throttle.check("k", "u")
    throttle.succeeded("k", "u")
    throttle.check("k", "u")
    assert seen[-1] == ("u", "success") and ("u", "throttled") in seen
    small = LoginThrottle(limit=1, max_keys=2, clock=lambda: now[0])
    for key in ("a", "b", "c"):
        small.failed(key, key)
    small.check("a", "a")  # forgotten: only the two most recent keys are kept


def test_repeated_failed_logins_are_throttled_alike_for_known_and_unknown_users(
    env: tuple[RunningServer, Identity, Path],
) -> None:
    _, identity, _ = env
    identity.make_user(TENANT, "tom", "tom-Secret-1", "member")
    for name in ("tom", "no-such-user"):
        statuses = [identity.login(name, "wrong-password", TENANT)[0] for _ in range(5)]
        assert statuses == [401] * 5
        assert identity.login(name, "wrong-password", TENANT)[0] == 429
    # Throttled even with the right password: the answer says nothing about it.
    status, token = identity.login("tom", "tom-Secret-1", TENANT)
    assert status == 429 and token is None
    assert identity.login("alice", PASSWORD, TENANT)[0] == 201, "other users are not affected"
    out = hypernetes("login", "--server", identity.server.url, "--certificate-authority",
                     str(identity.ca), "--user", "tom", "--tenant", TENANT, "--password-stdin",
                     "--kubeconfig", "/dev/null/none", input="tom-Secret-1")  # fmt: skip
    assert out.returncode == 1
    assert "too many failed attempts" in out.stderr


# -- the audit log ---------------------------------------------------------------------


def audit_events(server: RunningServer) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (server.data_dir / "audit.log").read_text().splitlines()]


def test_audit_log_records_decisions_and_no_secrets(
    env: tuple[RunningServer, Identity, Path], tmp_path: Path
) -> None:
    server, identity, kubeconfig = env
    assert identity.login("alice", "bad-guess-123", TENANT)[0] == 401
    forbidden = kubectl(kubeconfig, "get", "configmaps", "-n", "kube-system")
    assert forbidden.returncode != 0
    bogus = as_token(server, tmp_path, "not-a-real-token-xyz", "get", "ns")
    assert bogus.returncode != 0 and "Unauthorized" in bogus.stderr
    server.kubectl("get", "configmaps", "-n", "imp", "--as=bob")
    server.kubectl("create", "sa", "audit-robot", "-n", "imp")
    secret_token = server.kubectl("create", "token", "audit-robot", "-n", "imp").stdout.strip()
    as_token(server, tmp_path, secret_token, "get", "ns")
    time.sleep(0.2)

    log = server.data_dir / "audit.log"
    assert stat.S_IMODE(log.stat().st_mode) == 0o600
    text = log.read_text()
    events = audit_events(server)
    cached = [json.loads(p.read_text())["token"] for p in kubeconfig.parent.glob("cache/*.json")]
    for secret in (PASSWORD, "bad-guess-123", "not-a-real-token-xyz", secret_token, *cached):
        assert secret not in text
    assert "Authorization" not in text and "X-Auth-Token" not in text

    def find(**want: Any) -> dict[str, Any]:
        for event in events:
            if all(event.get(k) == v for k, v in want.items()):
                return event
        raise AssertionError(f"no audit event with {want}")

    assert find(stage="authentication", method="password", user="alice", decision="deny",
                reason="failure")  # fmt: skip
    assert find(stage="authentication", method="password", user="alice", decision="allow")
    denied = find(stage="authorization", user="alice", decision="deny", resource="configmaps",
                  namespace="kube-system", verb="list")  # fmt: skip
    assert denied["tenant"] == TENANT and denied["reason"]
    assert find(stage="authentication", decision="deny", reason="bearer token not accepted")
    impersonated = find(stage="authorization", user="bob", decision="allow", namespace="imp")
    assert impersonated["impersonatedBy"]["user"] == "admin"
    assert find(stage="authorization", user="admin", decision="allow", verb="create",
                resource="serviceaccounts", subresource="token")  # fmt: skip


# -- who am I, and token reviews -------------------------------------------------------


def whoami(out: Any) -> dict[str, Any]:
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)["status"]["userInfo"]


def test_whoami_for_a_tenant_user_an_impersonated_one_and_a_service_account(
    env: tuple[RunningServer, Identity, Path], tmp_path: Path
) -> None:
    server, _, kubeconfig = env
    alice = whoami(kubectl(kubeconfig, "auth", "whoami", "-o", "json"))
    assert alice["username"] == "alice"
    assert f"hypernetes:tenant:{TENANT}" in alice["groups"]
    assert alice["extra"]["hypernetes.io/tenant"] == [TENANT]
    bob = whoami(server.kubectl("auth", "whoami", "-o", "json", "--as=bob", "--as-group=g1"))
    assert bob["username"] == "bob" and bob["groups"] == ["g1", "system:authenticated"]
    sa = whoami(server.kubectl("auth", "whoami", "-o", "json",
                               "--as=system:serviceaccount:imp:default"))  # fmt: skip
    assert sa["groups"] == ["system:serviceaccounts", "system:serviceaccounts:imp",
                            "system:authenticated"]  # fmt: skip
    server.kubectl("create", "sa", "whoami-robot", "-n", "imp")
    token = server.kubectl("create", "token", "whoami-robot", "-n", "imp").stdout.strip()
    robot = whoami(as_token(server, tmp_path, token, "auth", "whoami", "-o", "json"))
    assert robot["username"] == "system:serviceaccount:imp:whoami-robot"
    assert robot["extra"]["authentication.kubernetes.io/credential-id"][0].startswith("JTI=")


def test_token_review(env: tuple[RunningServer, Identity, Path]) -> None:
    server, identity, _ = env
    status, token = identity.login("alice", PASSWORD, TENANT)
    assert status == 201 and token

    def review(value: str) -> dict[str, Any]:
        body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
                "spec": {"token": value}}  # fmt: skip
        # --validate=false: kubectl's client-side schema check does not find create-only
        # kinds in this server's OpenAPI (true of authorization.k8s.io's reviews too).
        out = server.kubectl("create", "--validate=false", "-f", "-", "-o", "json",
                             input=json.dumps(body))  # fmt: skip
        assert value not in out.stdout, "the token is not echoed"
        return json.loads(out.stdout)["status"]

    good = review(token)
    assert good["authenticated"] is True and good["user"]["username"] == "alice"
    assert review(token[:-4] + "AAAA") == {"authenticated": False}
    _, _, kubeconfig = env
    refused = kubectl(kubeconfig, "create", "--validate=false", "-f", "-", input=json.dumps({
        "apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
        "spec": {"token": token}}))  # fmt: skip
    assert refused.returncode != 0 and "forbidden" in refused.stderr.lower()
