"""Shared fixtures and helpers of the identity tests (no tests here).

The identity tests import what they need from this module; it is named like a
test module only because this folder's conftest belongs to another part.
"""

from __future__ import annotations

import datetime
import ipaddress
import ssl
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import argon2
import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from hypernetes.auth.identity import IdentityService, build_app
from hypernetes.store import SQLiteStore

ADMIN_PASSWORD = "admin-Pa55word!"
MOUNT = "/identity"


class FakeClock:
    """Real time plus an offset the test moves forward: time still advances between calls."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


def fast_hasher() -> argon2.PasswordHasher:
    """argon2id with small costs so that the suite stays quick; the defaults are tested apart."""
    return argon2.PasswordHasher(type=argon2.Type.ID, time_cost=1, memory_cost=8192, parallelism=1)


def make_service(
    store: SQLiteStore, data_dir: Path, clock: Callable[[], float] | None = None, **kwargs: Any
) -> IdentityService:
    return IdentityService(
        store,
        data_dir,
        clock=clock or time.time,
        password_hasher=kwargs.pop("password_hasher", None) or fast_hasher(),
        **kwargs,
    )


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    s = SQLiteStore(tmp_path / "state.db")
    yield s
    await s.close()


@pytest.fixture
async def service(store: SQLiteStore, tmp_path: Path, clock: FakeClock) -> IdentityService:
    svc = make_service(store, tmp_path / "data", clock)
    await svc.bootstrap(ADMIN_PASSWORD)
    return svc


@dataclass
class Served:
    """The identity app mounted under /identity on a loopback server, and a client for it."""

    base: str
    """e.g. http://127.0.0.1:PORT/identity"""
    http: aiohttp.ClientSession
    service: IdentityService

    async def login(
        self, user: str, password: str, project: str | None = None
    ) -> tuple[str, dict[str, Any]]:
        status, body, headers = await self.request(
            "POST", "/v3/auth/tokens", json=password_auth(user, password, project)
        )
        assert status == 201, body
        return headers["X-Subject-Token"], body

    async def request(
        self, method: str, path: str, token: str | None = None, **kwargs: Any
    ) -> tuple[int, Any, Any]:
        """(status, JSON body or None, headers)."""
        headers = dict(kwargs.pop("headers", {}))
        if token is not None:
            headers["X-Auth-Token"] = token
        async with self.http.request(method, self.base + path, headers=headers, **kwargs) as r:
            text = await r.text()
            body = None
            if text and r.content_type == "application/json":
                body = await r.json()
            return r.status, body, r.headers


def password_auth(user: str, password: str, project: str | None = None) -> dict[str, Any]:
    auth: dict[str, Any] = {
        "identity": {
            "methods": ["password"],
            "password": {"user": {"name": user, "domain": {"id": "default"}, "password": password}},
        }
    }
    if project is not None:
        auth["scope"] = {"project": {"name": project, "domain": {"id": "default"}}}
    return {"auth": auth}


async def serve(
    service: IdentityService, ssl_context: ssl.SSLContext | None = None
) -> tuple[web.AppRunner, str]:
    """Mount the identity app under /identity, as the API server does; returns (runner, base)."""
    root = web.Application()
    root.add_subapp(MOUNT, build_app(service))
    runner = web.AppRunner(root, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ssl_context)
    await site.start()
    port = runner.addresses[0][1]
    scheme = "https" if ssl_context else "http"
    return runner, f"{scheme}://127.0.0.1:{port}{MOUNT}"


@pytest.fixture
async def served(service: IdentityService) -> AsyncIterator[Served]:
    runner, base = await serve(service)
    async with aiohttp.ClientSession() as http:
        yield Served(base, http, service)
    await runner.cleanup()


def make_tls(directory: Path) -> tuple[ssl.SSLContext, Path]:
    """A CA and a server certificate for 127.0.0.1; returns (server context, CA file)."""
    now = datetime.datetime.now(datetime.UTC)

    def certificate(
        subject: str, key: ec.EllipticCurvePrivateKey, issuer_key: ec.EllipticCurvePrivateKey,
        issuer: str, ca: bool,
    ) -> x509.Certificate:  # fmt: skip
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if ca:
            builder = builder.add_extension(
                x509.KeyUsage(False, False, False, False, False, True, True, False, False), True
            )
        else:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False,
            )
        return builder.sign(issuer_key, hashes.SHA256())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = certificate("test-ca", ca_key, ca_key, "test-ca", ca=True)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = certificate("127.0.0.1", key, ca_key, "test-ca", ca=False)
    ca_file = directory / "ca.pem"
    ca_file.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    cert_file, key_file = directory / "server.pem", directory / "server.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    return context, ca_file
