"""Bad credentials and malformed auth input at the Kubernetes API and the identity API.

Every refused credential — wrong, expired, revoked, forged, tampered, for
another audience, from another CA, oversized or malformed — must get the one
canonical 401 (or be refused by TLS), saying nothing about why; the server
must keep serving. The identity API's own malformed-request cases live in
test_identity_http.py; this file covers what reaches the API server.

Expired tokens are minted with the server's own keys (read from its data dir)
and a past expiry: the server's clock cannot be moved from outside.
"""

from __future__ import annotations

import http.client
import json
import ssl
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.auth.loginhelpers import Identity, start_identity_server
from tests.conftest import RunningServer

from hypernetes.api import pki
from hypernetes.auth.identity.keys import FernetKeyRepository
from hypernetes.auth.identity.tokens import TokenCodec, TokenPayload, new_audit_id
from hypernetes.auth.serviceaccounts import TokenSigner, load_or_create_key

PASSWORD = "bob-Secret-123"
CANONICAL_401 = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                 "message": "Unauthorized", "reason": "Unauthorized", "code": 401}  # fmt: skip


@pytest.fixture(scope="module")
def env() -> Iterator[tuple[RunningServer, Identity]]:
    with tempfile.TemporaryDirectory(prefix="hn-bad-") as tmp:
        server = start_identity_server(Path(tmp) / "data")
        try:
            identity = Identity(server)
            identity.make_user("bad-acme", "bob", PASSWORD, "member")
            server.kubectl("create", "namespace", "bad")
            server.kubectl("create", "sa", "robot", "-n", "bad")
            yield server, identity
        finally:
            server.stop()


def call(
    server: RunningServer,
    path: str = "/api",
    headers: dict[str, str] | None = None,
    *,
    cert: tuple[Path, Path] | None = None,
    method: str = "GET",
    body: bytes | None = None,
) -> tuple[int, Any]:
    context = ssl.create_default_context(cafile=str(server.data_dir / "ca.crt"))
    if cert is not None:
        context.load_cert_chain(*cert)
    host, port = server.url.removeprefix("https://").rsplit(":", 1)
    conn = http.client.HTTPSConnection(host, int(port), context=context, timeout=30)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        raw = response.read()
    finally:
        conn.close()
    try:
        return response.status, json.loads(raw)
    except ValueError:
        return response.status, raw.decode(errors="replace")


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_401(server: RunningServer, headers: dict[str, str], secret: str = "") -> None:
    status, body = call(server, "/api/v1/namespaces/bad/configmaps", headers)
    assert status == 401 and body == CANONICAL_401
    if secret:
        assert secret not in json.dumps(body)


def tenant_token(identity: Identity) -> str:
    status, token = identity.login("bob", PASSWORD, "bad-acme")
    assert status == 201 and token
    return token


def test_a_good_token_works_so_the_refusals_below_mean_something(
    env: tuple[RunningServer, Identity],
) -> None:
    server, identity = env
    status, _ = call(server, "/api", bearer(tenant_token(identity)))
    assert status == 200


def test_tampered_forged_and_revoked_identity_tokens(env: tuple[RunningServer, Identity]) -> None:
    server, identity = env
    token = tenant_token(identity)
    middle = len(token) // 2
    tampered = token[:middle] + ("A" if token[middle] != "A" else "B") + token[middle + 1 :]
    assert_401(server, bearer(tampered), tampered)
    assert_401(server, bearer(token[:-3]))
    with tempfile.TemporaryDirectory() as other:
        keys = FernetKeyRepository(Path(other) / "keys", 3)
        keys.ensure()
        now = time.time()
        payload = TokenPayload(uuid.uuid4().hex, ("password",), None, now + 3600, now,
                               (new_audit_id(),))  # fmt: skip
        forged = TokenCodec(keys).seal(payload)
    assert_401(server, bearer(forged), forged)
    request = urllib.request.Request(
        f"{server.url}/identity/v3/auth/tokens",
        method="DELETE",
        headers={"X-Auth-Token": token, "X-Subject-Token": token},
    )
    context = ssl.create_default_context(cafile=str(identity.ca))
    with urllib.request.urlopen(request, context=context) as response:
        assert response.status == 204  # users may revoke their own tokens
    assert_401(server, bearer(token), token)


def test_expired_identity_token_signed_with_the_real_keys(
    env: tuple[RunningServer, Identity],
) -> None:
    server, identity = env
    token = tenant_token(identity)
    keys = FernetKeyRepository(server.data_dir / "identity" / "fernet-keys", 3)
    codec = TokenCodec(keys)
    payload = codec.open(token)
    assert payload is not None, "the test reads the server's own keys"
    past = time.time() - 7200
    expired = codec.seal(TokenPayload(payload.user_id, payload.methods, payload.project_id,
                                      expires_at=past + 3600, issued_at=past,
                                      audit_ids=(new_audit_id(),)))  # fmt: skip
    assert_401(server, bearer(expired), expired)


def test_bad_service_account_tokens(env: tuple[RunningServer, Identity]) -> None:
    server, _ = env
    good = server.kubectl("create", "token", "robot", "-n", "bad").stdout.strip()
    status, _ = call(server, "/api", bearer(good))
    assert status == 200
    header, payload, signature = good.split(".")
    claims = json.loads(_unb64(payload))
    uid = claims["kubernetes.io"]["serviceaccount"]["uid"]
    escalated = _b64(json.dumps(claims | {"sub": "system:serviceaccount:kube-system:x"}))
    assert_401(server, bearer(f"{header}.{escalated}.{signature}"))
    assert_401(server, bearer(f"{_b64(json.dumps({'alg': 'none'}))}.{payload}."))
    assert_401(server, bearer(f"{header}.{payload}.{signature[::-1]}"))
    with tempfile.TemporaryDirectory() as other:
        forger = TokenSigner(load_or_create_key(Path(other) / "k"))
        forged, _ = forger.issue(namespace="bad", name="robot", uid=uid, seconds=3600)
    assert_401(server, bearer(forged), forged)
    real_key = load_or_create_key(server.data_dir / "serviceaccount.key")
    expired, _ = TokenSigner(real_key, clock=lambda: time.time() - 7200).issue(
        namespace="bad", name="robot", uid=uid, seconds=3600
    )
    assert_401(server, bearer(expired), expired)
    body = json.dumps({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                       "spec": {"audiences": ["vault"]}})  # fmt: skip
    out = server.kubectl("create", "--raw", "/api/v1/namespaces/bad/serviceaccounts/robot/token",
                         "-f", "-", input=body)  # fmt: skip
    other_audience = json.loads(out.stdout)["status"]["token"]
    assert_401(server, bearer(other_audience), other_audience)


def test_certificate_from_another_ca_is_refused(
    env: tuple[RunningServer, Identity], tmp_path: Path
) -> None:
    server, _ = env
    rogue_ca = pki.create_ca("rogue-ca")
    pki.write_pair(
        pki.issue(pki.KeyPair(rogue_ca.cert_pem, rogue_ca.key_pem), "admin",
                  organisations=("system:masters",), client=True),
        tmp_path / "rogue.crt", tmp_path / "rogue.key",
    )  # fmt: skip
    try:
        rogue = (tmp_path / "rogue.crt", tmp_path / "rogue.key")
        status, body = call(server, "/api/v1/namespaces", cert=rogue)
    except (ssl.SSLError, ConnectionError):
        return  # refused in the TLS handshake: fine
    assert status == 401 and body == CANONICAL_401


@pytest.mark.parametrize(
    "header",
    [
        "Bearer ",
        "Bearer x",
        "Bearer eyJ!!!.x.y",
        "Bearer a.b.c.d.e",
        "Basic YWRtaW46YWRtaW4=",
        "Bearer " + "A" * 8000,
        "Bearer eyJ" + "A" * 7000 + ".eyJ.sig",
    ],
)
def test_malformed_authorization_headers_are_401(
    env: tuple[RunningServer, Identity], header: str
) -> None:
    server, _ = env
    assert_401(server, {"Authorization": header})


def test_oversized_headers_and_bodies_are_refused_and_the_server_lives_on(
    env: tuple[RunningServer, Identity],
) -> None:
    server, identity = env
    status, _ = call(server, "/api", {"Authorization": "Bearer " + "A" * 20000})
    assert status in (400, 431)
    huge = password_body("bob", "x" * (5 << 20))
    status, _ = call(server, "/identity/v3/auth/tokens", {"Content-Type": "application/json"},
                     method="POST", body=huge)  # fmt: skip
    assert status == 413
    long_password = password_body("bob-long", "x" * 100000)
    status, body = call(server, "/identity/v3/auth/tokens", {"Content-Type": "application/json"},
                        method="POST", body=long_password)  # fmt: skip
    assert status == 401 and "x" * 100 not in json.dumps(body)
    status, _ = call(server, "/api", bearer(tenant_token(identity)))
    assert status == 200, "still serving"


def password_body(user: str, password: str) -> bytes:
    user_doc = {"name": user, "domain": {"id": "default"}, "password": password}
    auth = {"identity": {"methods": ["password"], "password": {"user": user_doc}}}
    return json.dumps({"auth": auth}).encode()


def _b64(text: str) -> str:
    import base64

    return base64.urlsafe_b64encode(text.encode()).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    import base64

    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
