"""Service accounts: signed tokens, the TokenRequest API with kubectl, the default account.

The signer is tested on its own for what must never verify (forged, tampered,
expired, wrong audience, `alg: none`); the rest runs the real server and kubectl.
"""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.conftest import RunningServer

from hypernetes.auth.serviceaccounts import API_AUDIENCE, TokenSigner, load_or_create_key


def claims_of(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def b64(document: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(document).encode()).rstrip(b"=").decode()


# -- the signer --------------------------------------------------------------------------


def test_key_is_made_once_and_private(tmp_path: Path) -> None:
    first = load_or_create_key(tmp_path / "sa.key")
    assert (tmp_path / "sa.key").stat().st_mode & 0o777 == 0o600
    again = load_or_create_key(tmp_path / "sa.key")
    assert first.private_numbers() == again.private_numbers()


def test_tokens_verify_only_when_untouched_current_and_for_us(tmp_path: Path) -> None:
    now = [1_000_000.0]
    signer = TokenSigner(load_or_create_key(tmp_path / "k"), clock=lambda: now[0])
    token, expires = signer.issue(namespace="ns", name="robot", uid="u1", seconds=600,
                                  tenant="acme", pod=("web", "p1"))  # fmt: skip
    assert expires == 1_000_600
    claims = signer.verify(token)
    assert claims is not None
    assert (claims.namespace, claims.name, claims.uid) == ("ns", "robot", "u1")
    assert (claims.tenant, claims.pod_name, claims.pod_uid) == ("acme", "web", "p1")
    header, payload, signature = token.split(".")

    other = TokenSigner(load_or_create_key(tmp_path / "other"), clock=lambda: now[0])
    forged, _ = other.issue(namespace="ns", name="robot", uid="u1", seconds=600)
    assert signer.verify(forged) is None, "signed by another key"
    body = claims_of(token) | {"sub": "system:serviceaccount:ns:admin"}
    assert signer.verify(f"{header}.{b64(body)}.{signature}") is None, "tampered claims"
    none_alg = b64({"alg": "none", "typ": "JWT"})
    assert signer.verify(f"{none_alg}.{payload}.") is None, "alg none"
    assert signer.verify(f"{header}.{payload}.{signature[:-4]}AAAA") is None, "bad signature"
    assert signer.verify("a.b") is None and signer.verify("x" * 10000) is None
    assert signer.verify(token, audience="https://elsewhere") is None
    scoped, _ = signer.issue(namespace="ns", name="robot", uid="u1", seconds=600,
                             audiences=("vault",))  # fmt: skip
    assert signer.verify(scoped) is None and signer.verify(scoped, "vault") is not None
    now[0] += 600
    assert signer.verify(token) is None, "expired"
    assert API_AUDIENCE in claims_of(token)["aud"]


# -- through the API server, with kubectl ---------------------------------------------


def token_kubeconfig(server: RunningServer, tmp_path: Path, token: str) -> Path:
    admin = yaml.safe_load(server.kubeconfig.read_text())
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": admin["clusters"],
        "users": [{"name": "sa", "user": {"token": token}}],
        "contexts": [
            {"name": "sa", "context": {"cluster": admin["clusters"][0]["name"], "user": "sa"}}
        ],
        "current-context": "sa",
    }
    path = tmp_path / f"sa-{time.monotonic_ns()}.kubeconfig"
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    return path


def as_token(server: RunningServer, tmp_path: Path, token: str, *args: str) -> Any:
    import subprocess

    return subprocess.run(
        ["kubectl", "--kubeconfig", str(token_kubeconfig(server, tmp_path, token)), *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def wait_for(predicate: Any, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


@pytest.fixture
def namespace(api_server: RunningServer) -> Any:
    name = f"sa-{time.monotonic_ns() % 10**8}"
    api_server.kubectl("create", "namespace", name)
    yield name
    api_server.kubectl("delete", "namespace", name, "--wait=false", check=False)


def test_default_account_is_made_and_remade(api_server: RunningServer, namespace: str) -> None:
    def has_default() -> bool:
        got = api_server.kubectl("get", "sa", "default", "-n", namespace, check=False)
        return got.returncode == 0

    wait_for(has_default)
    api_server.kubectl("delete", "sa", "default", "-n", namespace)
    wait_for(has_default)


def test_kubectl_create_token_and_use_it(
    api_server: RunningServer, namespace: str, tmp_path: Path
) -> None:
    api_server.kubectl("create", "sa", "robot", "-n", namespace)
    token = api_server.kubectl("create", "token", "robot", "-n", namespace,
                               "--duration=20m").stdout.strip()  # fmt: skip
    claims = claims_of(token)
    assert claims["sub"] == f"system:serviceaccount:{namespace}:robot"
    uid = api_server.kubectl("get", "sa", "robot", "-n", namespace, "-o",
                             "jsonpath={.metadata.uid}").stdout  # fmt: skip
    assert claims["kubernetes.io"]["serviceaccount"] == {"name": "robot", "uid": uid}
    assert 1190 <= claims["exp"] - claims["iat"] <= 1200

    denied = as_token(api_server, tmp_path, token, "get", "configmaps", "-n", namespace)
    assert denied.returncode != 0
    assert (f'User "system:serviceaccount:{namespace}:robot" cannot list resource '
            f'"configmaps"') in denied.stderr  # fmt: skip
    # Bound through its namespace's group: the groups are kube's.
    api_server.kubectl("create", "rolebinding", "sa-view", "--clusterrole=view",
                       f"--group=system:serviceaccounts:{namespace}", "-n", namespace)  # fmt: skip
    allowed = as_token(api_server, tmp_path, token, "get", "configmaps", "-n", namespace)
    assert allowed.returncode == 0, allowed.stderr

    # Deleted, then recreated with the same name: the old token is dead either way.
    api_server.kubectl("delete", "sa", "robot", "-n", namespace)
    gone = as_token(api_server, tmp_path, token, "get", "configmaps", "-n", namespace)
    assert gone.returncode != 0 and "Unauthorized" in gone.stderr
    api_server.kubectl("create", "sa", "robot", "-n", namespace)
    still = as_token(api_server, tmp_path, token, "get", "configmaps", "-n", namespace)
    assert still.returncode != 0 and "Unauthorized" in still.stderr


def test_token_request_errors(api_server: RunningServer, namespace: str) -> None:
    missing = api_server.kubectl("create", "token", "nobody", "-n", namespace, check=False)
    assert missing.returncode != 0
    assert 'serviceaccounts "nobody" not found' in missing.stderr
    api_server.kubectl("create", "sa", "short", "-n", namespace)
    short = api_server.kubectl("create", "token", "short", "-n", namespace, "--duration=1m",
                               check=False)  # fmt: skip
    assert short.returncode != 0
    assert "may not specify a duration less than 10 minutes" in short.stderr
    body = json.dumps(
        {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {"boundObjectRef": {"kind": "Pod", "name": "no-pod"}},
        }
    )
    bound = api_server.kubectl("create", "--raw",
                               f"/api/v1/namespaces/{namespace}/serviceaccounts/short/token",
                               "-f", "-", input=body, check=False)  # fmt: skip
    assert bound.returncode != 0 and 'pods "no-pod" not found' in bound.stderr
    got = api_server.kubectl("get", "--raw",
                             f"/api/v1/namespaces/{namespace}/serviceaccounts/short/token",
                             check=False)  # fmt: skip
    assert got.returncode != 0 and "MethodNotAllowed" in got.stderr


def test_tokens_carry_the_namespace_tenant(api_server: RunningServer, tmp_path: Path) -> None:
    name = f"sa-tenant-{time.monotonic_ns() % 10**8}"
    manifest = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": name, "labels": {"hypernetes.io/tenant": "sa-acme"}},
    }
    api_server.kubectl("create", "-f", "-", input=json.dumps(manifest))  # fmt: skip
    try:
        api_server.kubectl("create", "sa", "robot", "-n", name)
        token = api_server.kubectl("create", "token", "robot", "-n", name).stdout.strip()
        assert claims_of(token)["hypernetes.io/tenant"] == "sa-acme"
        # A tenant's service account stays inside its tenant, whatever RBAC grants.
        api_server.kubectl("create", "clusterrolebinding", f"{name}-admin",
                           "--clusterrole=cluster-admin",
                           f"--serviceaccount={name}:robot")  # fmt: skip
        try:
            outside = as_token(api_server, tmp_path, token, "get", "configmaps", "-n", "default")
            assert outside.returncode != 0 and "forbidden" in outside.stderr.lower()
            inside = as_token(api_server, tmp_path, token, "get", "configmaps", "-n", name)
            assert inside.returncode == 0, inside.stderr
        finally:
            api_server.kubectl("delete", "clusterrolebinding", f"{name}-admin")
    finally:
        api_server.kubectl("delete", "namespace", name, "--wait=false", check=False)


def test_a_token_bound_to_a_pod_dies_with_the_pod(
    api_server: RunningServer, namespace: str, tmp_path: Path
) -> None:
    api_server.kubectl("create", "sa", "runner", "-n", namespace)
    containers = [{"name": "c", "image": "registry.local/pause"}]
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "holder"},
           "spec": {"serviceAccountName": "runner", "containers": containers}}  # fmt: skip
    api_server.kubectl("create", "-n", namespace, "-f", "-", input=json.dumps(pod))
    token = api_server.kubectl("create", "token", "runner", "-n", namespace,
                               "--bound-object-kind=Pod",
                               "--bound-object-name=holder").stdout.strip()  # fmt: skip
    uid = api_server.kubectl("get", "pod", "holder", "-n", namespace, "-o",
                             "jsonpath={.metadata.uid}").stdout  # fmt: skip
    assert claims_of(token)["kubernetes.io"]["pod"] == {"name": "holder", "uid": uid}
    works = as_token(api_server, tmp_path, token, "auth", "whoami", "-o", "json")
    assert works.returncode == 0, works.stderr
    extra = json.loads(works.stdout)["status"]["userInfo"]["extra"]
    assert extra["authentication.kubernetes.io/pod-name"] == ["holder"]
    api_server.kubectl("delete", "pod", "holder", "-n", namespace, "--grace-period=0",
                       "--force", "--wait=true")  # fmt: skip
    dead = as_token(api_server, tmp_path, token, "auth", "whoami")
    assert dead.returncode != 0 and "Unauthorized" in dead.stderr
