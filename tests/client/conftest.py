"""Fixtures for the client tests: certificates made on the spot, kubeconfig writers."""

from __future__ import annotations

import base64
import contextlib
import datetime
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from hypernetes.client import NAMESPACES, Client, ClientError, load_kubeconfig


@dataclass
class Pair:
    cert_pem: bytes
    key_pem: bytes


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make_pair(
    cn: str, issuer: tuple[x509.Certificate, Any] | None = None
) -> tuple[Pair, x509.Certificate, Any]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
    )
    if issuer is None:
        builder = builder.issuer_name(_name(cn)).add_extension(
            x509.BasicConstraints(ca=True, path_length=None), critical=True
        )
        signer = key
    else:
        builder = builder.issuer_name(issuer[0].subject)
        signer = issuer[1]
    cert = builder.sign(signer, hashes.SHA256())
    pem = cert.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return Pair(pem, key_pem), cert, key


@dataclass
class Certs:
    ca: Pair
    client: Pair


@pytest.fixture(scope="session")
def pki() -> Certs:
    ca, ca_cert, ca_key = make_pair("test-ca")
    client, _, _ = make_pair("alice", (ca_cert, ca_key))
    return Certs(ca, client)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def write_kubeconfig(
    path: Path,
    *,
    cluster: dict[str, Any],
    user: dict[str, Any],
    namespace: str | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    context: dict[str, Any] = {"cluster": "c1", "user": "u1"}
    if namespace:
        context["namespace"] = namespace
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "ctx",
        "clusters": [{"name": "c1", "cluster": cluster}],
        "users": [{"name": "u1", "user": user}],
        "contexts": [{"name": "ctx", "context": context}],
        **(extra or {}),
    }
    path.write_text(yaml.safe_dump(doc))
    return path


# -- fixtures for tests against the real API server ------------------------------


@pytest.fixture
async def client(api_server: Any) -> AsyncIterator[Client]:
    """An admin client (client certificate from the server's admin kubeconfig)."""
    async with Client(load_kubeconfig(api_server.kubeconfig)) as c:
        yield c


@pytest.fixture
async def namespace(client: Client) -> AsyncIterator[str]:
    """A namespace of the test's own (the session server is shared)."""
    name = f"t-{uuid.uuid4().hex[:10]}"
    await client.create(NAMESPACES, {"metadata": {"name": name}})
    yield name
    with contextlib.suppress(ClientError):
        await client.delete(NAMESPACES, name)


def configmap(name: str, *, labels: dict[str, str] | None = None, **data: str) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if labels:
        meta["labels"] = labels
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": data}
