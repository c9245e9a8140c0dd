"""Joining nodes: bootstrap tokens, node credentials, and what a node may do.

Server side of `hypernetes token create` / `hypernetes agent --token`:

- A join token is `<id>.<secret>` (6 + 16 characters of [a-z0-9], as kube's
  bootstrap tokens). The server keeps it as a Secret `bootstrap-token-<id>`
  in kube-system holding only the SHA-256 of the secret, with an expiry.
  `BootstrapTokens` authenticates such a bearer token as
  `system:bootstrap:<id>` in group `system:bootstrappers`.
- `NodeCredentialRequest` (node.hypernetes.io/v1, create-only, computed): a
  bootstrapper sends a PEM certificate request for `system:node:<name>`; the
  server answers with a client certificate signed by the cluster CA
  (organisation `system:nodes`) and the CA certificate; with a second
  request (`servingRequest`), also the stream server's certificate, naming
  the node, from the node-serving CA that only the API server trusts. The
  node's private keys never leave the node.
- `node_authorizer`: a node (`system:node:<name>` in `system:nodes`) may read
  what it needs and write only its own Node, its own Lease, the status of the
  pods bound to it, their deletion, and events, and read the ConfigMaps and
  Secrets those pods reference — as kube's Node authorizer
  and NodeRestriction admission allow. Nothing else, whatever RBAC says.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from hypernetes.api import errors
from hypernetes.api.auth import Attributes, Authorizer, User
from hypernetes.resources.registry import ResourceType

if TYPE_CHECKING:
    from hypernetes.api.objects import Objects
    from hypernetes.api.server import Server
    from hypernetes.resources.registry import Registry

Obj = dict[str, Any]

TOKEN_RE = re.compile(r"^([a-z0-9]{6})\.([a-z0-9]{16})$")
SECRET_TYPE = "bootstrap.kubernetes.io/token"
BOOTSTRAPPERS = "system:bootstrappers"
NODES_GROUP = "system:nodes"
NODE_PREFIX = "system:node:"
LEASE_NAMESPACE = "kube-node-lease"
CERT_DAYS = 365
SERVING_CA = "node-serving-ca"  # = hypernetes.api.streams.SERVING_CA
NODE_CREDENTIALS = ResourceType(
    "node.hypernetes.io",
    "v1",
    "NodeCredentialRequest",
    "nodecredentialrequests",
    False,
    verbs=("create",),
    stored=False,
)


def secret_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def new_token() -> tuple[str, str]:
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
    token_id = "".join(secrets.choice(alphabet) for _ in range(6))
    secret = "".join(secrets.choice(alphabet) for _ in range(16))
    return token_id, secret


def token_secret(token_id: str, secret: str, ttl: float, description: str = "") -> Obj:
    """The Secret that stands for a join token (the secret part only hashed)."""
    expires = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=ttl)
    data = {
        "token-id": token_id,
        "token-secret-sha256": secret_hash(secret),
        "expiration": expires.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "usage-bootstrap-authentication": "true",
        "description": description or "hypernetes node join token",
    }
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": SECRET_TYPE,
        "metadata": {"name": f"bootstrap-token-{token_id}", "namespace": "kube-system"},
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()},
    }


def _expired(value: str) -> bool:
    try:
        at = datetime.datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.UTC)
    except ValueError:
        return True
    return at.timestamp() < time.time()


class BootstrapTokens:
    """Authenticates join tokens against their Secrets in kube-system."""

    def __init__(self, objects: Objects, registry: Registry) -> None:
        self.objects = objects
        rt = registry.get("", "v1", "secrets")
        assert rt is not None
        self.secrets_rt = rt

    async def __call__(self, token: str) -> User | None:
        match = TOKEN_RE.match(token)
        if match is None:
            return None
        token_id, secret = match.groups()
        found = await self.objects.find(
            self.secrets_rt, "kube-system", f"bootstrap-token-{token_id}"
        )
        if found is None or found.get("type") != SECRET_TYPE:
            return None
        data = {
            k: base64.b64decode(v).decode(errors="replace")
            for k, v in (found.get("data") or {}).items()
        }
        if data.get("usage-bootstrap-authentication") != "true":
            return None
        if not hmac.compare_digest(data.get("token-secret-sha256", ""), secret_hash(secret)):
            return None
        if _expired(data.get("expiration", "")):
            return None
        return User(f"system:bootstrap:{token_id}", (BOOTSTRAPPERS, "system:authenticated"))


class NodeCredentials:
    """Signs node client certificates for bootstrappers (and the platform admin)."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir

    async def __call__(self, user: User, namespace: str | None, body: Obj) -> Obj:
        if BOOTSTRAPPERS not in user.groups and not user.is_admin:
            raise errors.forbidden(
                "only a join token or the platform admin may request node credentials"
            )
        spec = body.get("spec") or {}
        name = str(spec.get("nodeName") or "")
        if not re.fullmatch(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?", name):
            raise errors.bad_request(f"spec.nodeName: invalid node name {name!r}")
        try:
            csr = x509.load_pem_x509_csr(str(spec.get("request") or "").encode())
        except ValueError:
            raise errors.bad_request("spec.request: not a PEM certificate request") from None
        if not csr.is_signature_valid:
            raise errors.bad_request("spec.request: bad signature")
        cn = csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        if not cn or cn[0].value != f"{NODE_PREFIX}{name}":
            raise errors.bad_request(f"spec.request: the subject must be {NODE_PREFIX}{name}")
        ca_cert_pem = (self.data_dir / "ca.crt").read_bytes()
        status: Obj = {
            "certificate": sign(csr, name, self.data_dir / "ca", serving=False).decode(),
            "certificateAuthority": ca_cert_pem.decode(),
            "user": f"{NODE_PREFIX}{name}",
        }
        serving = spec.get("servingRequest")
        if serving:
            try:
                serving_csr = x509.load_pem_x509_csr(str(serving).encode())
            except ValueError:
                raise errors.bad_request(
                    "spec.servingRequest: not a PEM certificate request"
                ) from None
            if not serving_csr.is_signature_valid:
                raise errors.bad_request("spec.servingRequest: bad signature")
            ca = self.data_dir / SERVING_CA
            status["servingCertificate"] = sign(serving_csr, name, ca, serving=True).decode()
        body["status"] = status
        body.setdefault("metadata", {})["name"] = name
        return body


def sign(csr: x509.CertificateSigningRequest, name: str, ca: Path, *, serving: bool) -> bytes:
    """A certificate for node `name` (subject and names set here, not by the request),
    signed by the CA `ca`.crt/.key: a client one, or a serving one naming the node."""
    ca_cert = x509.load_pem_x509_certificate(ca.with_suffix(".crt").read_bytes())
    ca_key = serialization.load_pem_private_key(ca.with_suffix(".key").read_bytes(), None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    now = datetime.datetime.now(datetime.UTC)
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, NODES_GROUP),
            x509.NameAttribute(NameOID.COMMON_NAME, f"{NODE_PREFIX}{name}"),
        ]
    )
    usage = ExtendedKeyUsageOID.SERVER_AUTH if serving else ExtendedKeyUsageOID.CLIENT_AUTH
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_cert.subject)
        .public_key(csr.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=CERT_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    )
    if serving:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False
        )
    return builder.sign(ca_key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


# -- what nodes may do ------------------------------------------------------------

_READ = ("get", "list", "watch")
IPAM_NAMESPACE, IPAM_PREFIX = "kube-system", "ipam-"  # = network/ipam_store.py's


def node_name(user: User) -> str | None:
    """The node a principal is, or None."""
    if NODES_GROUP in user.groups and user.name.startswith(NODE_PREFIX):
        return user.name[len(NODE_PREFIX) :]
    return None


def node_authorizer(inner: Authorizer, objects: Objects, registry: Registry) -> Authorizer:
    """Decides every request of a node (allow-list); passes everyone else to `inner`."""
    pods_rt = registry.get("", "v1", "pods")
    assert pods_rt is not None

    async def bound_to(node: str, namespace: str, name: str) -> bool:
        pod = await objects.find(pods_rt, namespace, name)
        return pod is not None and (pod.get("spec") or {}).get("nodeName") == node

    async def referenced(node: str, kind: str, namespace: str, name: str) -> bool:
        """Whether a pod bound to `node` uses ConfigMap/Secret `name` of `namespace`."""

        def mine(pod: Obj) -> bool:
            return (pod.get("spec") or {}).get("nodeName") == node

        page = await objects.list(pods_rt, namespace, keep=mine)
        return any(name in pod_references(pod, kind) for pod in page.items)

    async def authorize(user: User, attrs: Attributes) -> bool:
        node = node_name(user)
        if node is None:
            if BOOTSTRAPPERS in user.groups:
                return attrs.resource == NODE_CREDENTIALS.plural and attrs.verb == "create"
            return await inner(user, attrs)
        return await node_may(node, attrs, bound_to, referenced)

    return authorize


def pod_references(pod: Obj, kind: str) -> set[str]:
    """Names of the ConfigMaps or Secrets a pod uses (env, envFrom, volumes, pull secrets)."""
    spec = pod.get("spec") or {}
    ref_key, from_key, volume_key = (
        ("configMapKeyRef", "configMapRef", "configMap")
        if kind == "configmaps"
        else ("secretKeyRef", "secretRef", "secret")
    )
    names: set[str] = set()
    containers = (spec.get("containers") or []) + (spec.get("initContainers") or [])
    for c in containers:
        for e in c.get("env") or []:
            ref = (e.get("valueFrom") or {}).get(ref_key)
            if ref:
                names.add(ref.get("name", ""))
        for source in c.get("envFrom") or []:
            if source.get(from_key):
                names.add(source[from_key].get("name", ""))
    for v in spec.get("volumes") or []:
        if v.get(volume_key):
            names.add(v[volume_key].get("name" if kind == "configmaps" else "secretName", ""))
        for p in (v.get("projected") or {}).get("sources") or []:
            if p.get(volume_key):
                names.add(p[volume_key].get("name", ""))
    if kind == "secrets":
        names.update(s.get("name", "") for s in spec.get("imagePullSecrets") or [])
    return names


async def node_may(
    node: str,
    attrs: Attributes,
    bound_to: Callable[[str, str, str], Awaitable[bool]],
    referenced: Callable[[str, str, str, str], Awaitable[bool]] | None = None,
) -> bool:
    """Whether node `node` may do `attrs` (kube's Node authorizer, simplified)."""
    if not attrs.is_resource_request:
        discovery = attrs.path in ("/version", "/healthz", "/livez", "/readyz") or (
            attrs.path.startswith(("/api", "/openapi/"))
        )
        return attrs.verb == "get" and discovery
    res, sub, verb, group = attrs.resource, attrs.subresource, attrs.verb, attrs.group
    if group == "" and res == "nodes":
        if verb in _READ and not sub:
            return True
        if verb == "create" and not attrs.name:
            return True  # node_admission checks that it is its own
        return attrs.name == node and verb in ("get", "update", "patch")
    if group == "coordination.k8s.io" and res == "leases":
        if attrs.namespace != LEASE_NAMESPACE or (attrs.name and attrs.name != node):
            return False
        return verb in ("get", "create", "update", "patch")
    if group == "" and res == "pods":
        if not sub:
            if verb in _READ:
                return True
            if verb == "delete":
                return await bound_to(node, attrs.namespace, attrs.name)
            return False
        if sub == "status" and verb in ("get", "update", "patch"):
            return await bound_to(node, attrs.namespace, attrs.name)
        return False
    if group == "" and res == "configmaps" and attrs.namespace == IPAM_NAMESPACE and not sub:
        # IPAM pools (network/ipam_store.py): a node leases its pods' addresses.
        if verb == "create" and not attrs.name:
            return True  # node_admission checks the name
        if attrs.name.startswith(IPAM_PREFIX) and verb in ("get", "update", "delete"):
            return True
    if group == "" and res in ("configmaps", "secrets"):
        if verb != "get" or sub or not attrs.name or referenced is None:
            return False
        return await referenced(node, res, attrs.namespace, attrs.name)
    if group in ("", "events.k8s.io") and res == "events":
        return verb in ("create", "update", "patch")
    if group == "" and res in ("namespaces", "services", "endpoints"):
        return verb in _READ and not sub
    if group == "hypernetes.io" and res == "networks":
        return verb in _READ and not sub
    return False


def node_admission() -> Callable[[Any, Any, Obj, Obj | None], Awaitable[None]]:
    """A node may create only its own Node and Lease (kube's NodeRestriction)."""

    async def admit(user: Any, target: Any, new: Obj, old: Obj | None) -> None:
        if not isinstance(user, User):
            return
        node = node_name(user)
        if node is None:
            return
        kind = target.rt.kind
        name = (new.get("metadata") or {}).get("name")
        if kind == "ConfigMap" and not str(name or "").startswith(IPAM_PREFIX):
            raise errors.forbidden(f'node "{node}" may only write IPAM pool ConfigMaps')
        if kind in ("Node", "Lease") and name != node:
            raise errors.forbidden(
                f'node "{node}" may not create or change {kind} "{name}": only its own'
            )

    return admit


async def install(server: Server) -> None:
    """Register join tokens, node credentials and the node authorizer on `server`."""
    assert server.objects is not None and server.api is not None
    server.authenticator.token_authenticators.append(
        BootstrapTokens(server.objects, server.registry)
    )
    server.api.admission.append(node_admission())
    server.registry.add(NODE_CREDENTIALS)
    server.api.computed[NODE_CREDENTIALS.kind] = NodeCredentials(server.config.data_dir)
    assert server.authorizer is not None
    server.authorizer = node_authorizer(server.authorizer, server.objects, server.registry)
