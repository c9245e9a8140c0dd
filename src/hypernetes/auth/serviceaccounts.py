"""Service-account tokens: ES256-signed JWTs bound to an account (and optionally a pod).

`TokenSigner` keeps one P-256 key, made once under the data dir
(`serviceaccount.key`, mode 0600), and issues and verifies compact JWS
tokens with kube's claims: `iss`, `sub` = `system:serviceaccount:<ns>:<name>`,
`aud`, `exp`/`iat`/`nbf`, `jti`, and `kubernetes.io` with the namespace, the
account's name and uid, and the pod a token is bound to. Tokens of accounts in
a tenant's namespace also carry `hypernetes.io/tenant`.

`ServiceAccountAuthenticator` is a bearer-token authenticator for the API
server: besides the signature, expiry and audience, it looks the account (and
the bound pod) up on every request, so a token stops working as soon as its
account is deleted or recreated (new uid), or its pod goes away.

JWTs are made with `cryptography` directly (no PyJWT in the dependencies);
only `ES256` is accepted, whatever a token's header says.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from hypernetes.auth.principal import User

ISSUER = "https://kubernetes.default.svc.cluster.local"
API_AUDIENCE = ISSUER
"""The audience tokens must name to be accepted by the API server (kube's default)."""
PREFIX = "system:serviceaccount:"
ALL_GROUP = "system:serviceaccounts"
AUTHENTICATED = "system:authenticated"
TENANT_CLAIM = "hypernetes.io/tenant"
TENANT_EXTRA = "hypernetes.io/tenant"
POD_NAME_EXTRA = "authentication.kubernetes.io/pod-name"
POD_UID_EXTRA = "authentication.kubernetes.io/pod-uid"
CREDENTIAL_EXTRA = "authentication.kubernetes.io/credential-id"
MAX_TOKEN_LENGTH = 8192
_SIGNATURE_BYTES = 32  # each of r and s for P-256

Obj = dict[str, Any]


def username(namespace: str, name: str) -> str:
    return f"{PREFIX}{namespace}:{name}"


def split_username(user: str) -> tuple[str, str] | None:
    """(namespace, name) of a service-account user name, else None."""
    if not user.startswith(PREFIX):
        return None
    namespace, sep, name = user[len(PREFIX) :].partition(":")
    return (namespace, name) if sep and namespace and name and ":" not in name else None


def groups_of(namespace: str) -> tuple[str, ...]:
    return (ALL_GROUP, f"{ALL_GROUP}:{namespace}", AUTHENTICATED)


@dataclass(frozen=True)
class Claims:
    """What a verified token says."""

    namespace: str
    name: str
    uid: str
    token_id: str
    expires_at: int
    audiences: tuple[str, ...]
    tenant: str | None = None
    pod_name: str | None = None
    pod_uid: str | None = None


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def load_or_create_key(path: Path) -> ec.EllipticCurvePrivateKey:
    """The signing key at `path`; made (0600, atomically) on first use."""
    if not path.exists():
        key = ec.generate_private_key(ec.SECP256R1())
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(pem)
        try:
            os.link(tmp, path)  # never replaces a key another server made meanwhile
        except FileExistsError:
            pass
        finally:
            tmp.unlink(missing_ok=True)
    loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(loaded, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{path} is not an EC private key")
    return loaded


class TokenSigner:
    """Issues and verifies service-account JWTs with one ES256 key."""

    def __init__(
        self, key: ec.EllipticCurvePrivateKey, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.key = key
        self.public = key.public_key()
        self.clock = clock

    @classmethod
    def for_data_dir(cls, data_dir: Path) -> TokenSigner:
        return cls(load_or_create_key(data_dir / "serviceaccount.key"))

    def issue(
        self,
        *,
        namespace: str,
        name: str,
        uid: str,
        seconds: int,
        audiences: tuple[str, ...] = (API_AUDIENCE,),
        tenant: str | None = None,
        pod: tuple[str, str] | None = None,
    ) -> tuple[str, int]:
        """A signed token and its expiry (Unix seconds)."""
        now = int(self.clock())
        kube: Obj = {"namespace": namespace, "serviceaccount": {"name": name, "uid": uid}}
        if pod is not None:
            kube["pod"] = {"name": pod[0], "uid": pod[1]}
        claims: Obj = {
            "iss": ISSUER,
            "sub": username(namespace, name),
            "aud": list(audiences),
            "iat": now,
            "nbf": now,
            "exp": now + seconds,
            "jti": secrets.token_hex(16),
            "kubernetes.io": kube,
        }
        if tenant:
            claims[TENANT_CLAIM] = tenant
        return self._sign(claims), now + seconds

    def _sign(self, claims: Obj) -> str:
        header = _b64(json.dumps({"alg": "ES256", "typ": "JWT"}, separators=(",", ":")).encode())
        payload = _b64(json.dumps(claims, separators=(",", ":")).encode())
        signing_input = f"{header}.{payload}".encode()
        der = self.key.sign(signing_input, ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)
        raw = r.to_bytes(_SIGNATURE_BYTES, "big") + s.to_bytes(_SIGNATURE_BYTES, "big")
        return f"{header}.{payload}.{_b64(raw)}"

    def verify(self, token: str, audience: str = API_AUDIENCE) -> Claims | None:
        """The claims of a well-signed, current token for `audience`; None otherwise."""
        if len(token) > MAX_TOKEN_LENGTH or token.count(".") != 2:
            return None
        header_b64, payload_b64, signature_b64 = token.split(".")
        try:
            header = json.loads(_unb64(header_b64))
            raw = _unb64(signature_b64)
            if not isinstance(header, dict) or header.get("alg") != "ES256":
                return None
            if len(raw) != 2 * _SIGNATURE_BYTES:
                return None
            r = int.from_bytes(raw[:_SIGNATURE_BYTES], "big")
            s = int.from_bytes(raw[_SIGNATURE_BYTES:], "big")
            self.public.verify(
                encode_dss_signature(r, s),
                f"{header_b64}.{payload_b64}".encode(),
                ec.ECDSA(hashes.SHA256()),
            )
            claims = json.loads(_unb64(payload_b64))
        except (ValueError, binascii.Error, InvalidSignature, UnicodeDecodeError):
            return None
        return _checked(claims, audience, self.clock())


def _checked(claims: object, audience: str, now: float) -> Claims | None:
    """Claims of a token whose signature is good, if they are complete and current."""
    if not isinstance(claims, dict) or claims.get("iss") != ISSUER:
        return None
    aud = claims.get("aud")
    audiences = tuple(a for a in (aud if isinstance(aud, list) else [aud]) if isinstance(a, str))
    exp, nbf = claims.get("exp"), claims.get("nbf", 0)
    if audience not in audiences or not isinstance(exp, int) or not isinstance(nbf, int):
        return None
    if now >= exp or now + 60 < nbf:  # a minute of clock skew, as kube allows
        return None
    kube = claims.get("kubernetes.io")
    sa = kube.get("serviceaccount") if isinstance(kube, dict) else None
    if not isinstance(kube, dict) or not isinstance(sa, dict):
        return None
    namespace, name, uid = kube.get("namespace"), sa.get("name"), sa.get("uid")
    if not all(isinstance(v, str) and v for v in (namespace, name, uid)):
        return None
    if claims.get("sub") != username(str(namespace), str(name)):
        return None
    pod_claim = kube.get("pod")
    pod: dict[str, Any] = pod_claim if isinstance(pod_claim, dict) else {}
    tenant = claims.get(TENANT_CLAIM)
    return Claims(
        namespace=str(namespace),
        name=str(name),
        uid=str(uid),
        token_id=str(claims.get("jti") or ""),
        expires_at=exp,
        audiences=audiences,
        tenant=tenant if isinstance(tenant, str) and tenant else None,
        pod_name=pod.get("name") if isinstance(pod.get("name"), str) else None,
        pod_uid=pod.get("uid") if isinstance(pod.get("uid"), str) else None,
    )


Lookup = Callable[[str, str], Awaitable["Obj | None"]]
"""lookup(namespace, name) -> the object, or None."""


class ServiceAccountAuthenticator:
    """Bearer token -> service-account `User`, while the account (and pod) still exist."""

    def __init__(self, signer: TokenSigner, accounts: Lookup, pods: Lookup) -> None:
        self.signer = signer
        self.accounts = accounts
        self.pods = pods

    async def __call__(self, token: str) -> User | None:
        if not token.startswith("eyJ"):
            return None  # not a JWT: someone else's token (the identity service's)
        claims = self.signer.verify(token)
        if claims is None:
            return None
        account = await self.accounts(claims.namespace, claims.name)
        if account is None or _uid(account) != claims.uid or _deleting(account):
            return None
        extra: dict[str, tuple[str, ...]] = {}
        if claims.pod_name is not None:
            pod = await self.pods(claims.namespace, claims.pod_name)
            if pod is None or _uid(pod) != claims.pod_uid or _deleting(pod):
                return None
            extra[POD_NAME_EXTRA] = (claims.pod_name,)
            extra[POD_UID_EXTRA] = (claims.pod_uid or "",)
        if claims.token_id:
            extra[CREDENTIAL_EXTRA] = (f"JTI={claims.token_id}",)
        if claims.tenant:
            extra[TENANT_EXTRA] = (claims.tenant,)
        return User(
            username(claims.namespace, claims.name), groups_of(claims.namespace), claims.uid, extra
        )


def _uid(obj: Obj) -> str:
    return str((obj.get("metadata") or {}).get("uid") or "")


def _deleting(obj: Obj) -> bool:
    return bool((obj.get("metadata") or {}).get("deletionTimestamp"))
