"""Joining a cluster with a join token: the agent's side.

A join token, as `hypernetes token create` prints it, is
`<id>.<secret>.<ca-key>`: the bootstrap token (`<id>.<secret>`, which the
server checks against a hashed Secret) and the cluster CA's public key
(compressed EC point, base64url) — so the agent can tell the real server
from an impostor before it sends the token anywhere:

1. TLS to the server without trusting anything yet; check that the server's
   certificate is signed by that CA key; pin that certificate.
2. Over the pinned connection, send a certificate request for
   `system:node:<name>` (a key made here and never sent) to
   NodeCredentialRequest, authenticated by the bootstrap token.
3. Check the returned CA certificate carries the same key; write
   `<data-dir>/node.kubeconfig` with the node's own certificate, and
   `<data-dir>/node-serving.crt|.key`: the stream server's certificate, which
   names the node and is signed by a CA only the API server trusts. Later
   starts use them; the join token is not needed again.
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import hashlib
import os
import ssl
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import yaml
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

KUBECONFIG = "node.kubeconfig"
REQUEST_PATH = "/apis/node.hypernetes.io/v1/nodecredentialrequests"


class JoinError(Exception):
    """Joining failed; the message says why, in one line."""


def ca_key_text(ca_pem: bytes) -> str:
    """The CA public key as it appears in join tokens."""
    key = x509.load_pem_x509_certificate(ca_pem).public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey)
    raw = key.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.CompressedPoint)
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def split_token(token: str) -> tuple[str, ec.EllipticCurvePublicKey]:
    """(bootstrap token, CA public key) of a join token."""
    parts = token.strip().split(".")
    if len(parts) != 3:
        raise JoinError("the join token must look like <id>.<secret>.<ca-key>")
    raw = base64.urlsafe_b64decode(parts[2] + "=" * (-len(parts[2]) % 4))
    try:
        key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), raw)
    except ValueError:
        raise JoinError("the join token's CA key is not valid") from None
    return f"{parts[0]}.{parts[1]}", key


async def _server_certificate(host: str, port: int) -> bytes:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # checked below against the CA key from the token
    _, writer = await asyncio.wait_for(asyncio.open_connection(host, port, ssl=ctx), 15)
    try:
        der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    finally:
        writer.close()
    if not der:
        raise JoinError("the server presented no certificate")
    return bytes(der)


def _check_signed_by(der: bytes, ca_key: ec.EllipticCurvePublicKey) -> None:
    cert = x509.load_der_x509_certificate(der)
    algorithm = cert.signature_hash_algorithm
    if algorithm is None:
        raise JoinError("the server's certificate has no signature hash")
    try:
        ca_key.verify(cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(algorithm))
    except InvalidSignature:
        raise JoinError("the server's certificate is not from the token's CA: refusing") from None
    now = datetime.datetime.now(datetime.UTC)
    if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
        raise JoinError("the server's certificate has expired")


def _request(node: str) -> tuple[bytes, bytes]:
    """(private key PEM, certificate request PEM) for `system:node:<node>`."""
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(
            x509.Name(
                [
                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, "system:nodes"),
                    x509.NameAttribute(NameOID.COMMON_NAME, f"system:node:{node}"),
                ]
            )
        )
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return key_pem, csr.public_bytes(serialization.Encoding.PEM)


async def join(server: str, token: str, data_dir: Path, node: str) -> Path:
    """Gets this node's credentials with a join token; returns the kubeconfig path."""
    bootstrap, ca_key = split_token(token)
    url = urlsplit(server)
    if url.scheme != "https" or not url.hostname:
        raise JoinError(f"--server must be an https:// URL, got {server!r}")
    der = await _server_certificate(url.hostname, url.port or 443)
    _check_signed_by(der, ca_key)
    key_pem, csr_pem = _request(node)
    serving_key_pem, serving_csr_pem = _request(node)
    body = {
        "apiVersion": "node.hypernetes.io/v1",
        "kind": "NodeCredentialRequest",
        "metadata": {"name": node},
        "spec": {
            "nodeName": node,
            "request": csr_pem.decode(),
            "servingRequest": serving_csr_pem.decode(),
        },
    }
    pin = aiohttp.Fingerprint(hashlib.sha256(der).digest())
    async with (
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=pin)) as session,
        session.post(
            server.rstrip("/") + REQUEST_PATH,
            json=body,
            headers={"Authorization": f"Bearer {bootstrap}"},
        ) as response,
    ):
        answer: dict[str, Any] = await response.json(content_type=None)
        if response.status != 201:
            raise JoinError(f"the server refused the join token: {answer.get('message', '')}")
    status = answer.get("status") or {}
    ca_pem = str(status.get("certificateAuthority", "")).encode()
    if ca_key_text(ca_pem) != token.split(".")[2].rstrip("="):
        raise JoinError("the server answered with a different CA: refusing")
    serving_crt, serving_key = serving_paths(data_dir)
    _write_private(serving_key, serving_key_pem)
    _write_private(serving_crt, str(status["servingCertificate"]).encode())
    path = data_dir / KUBECONFIG
    write_kubeconfig(path, server, ca_pem, str(status["certificate"]).encode(), key_pem, node)
    return path


def serving_paths(data_dir: Path) -> tuple[Path, Path]:
    """Where the agent keeps its serving certificate and key (for the stream server)."""
    return data_dir / "node-serving.crt", data_dir / "node-serving.key"


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def write_kubeconfig(
    path: Path, server: str, ca: bytes, cert: bytes, key: bytes, node: str
) -> None:
    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode()

    user = f"system:node:{node}"
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "hypernetes",
                "cluster": {"server": server, "certificate-authority-data": b64(ca)},
            }
        ],
        "users": [
            {
                "name": user,
                "user": {"client-certificate-data": b64(cert), "client-key-data": b64(key)},
            }
        ],
        "contexts": [{"name": "node", "context": {"cluster": "hypernetes", "user": user}}],
        "current-context": "node",
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        yaml.safe_dump(doc, f)
    tmp.rename(path)
