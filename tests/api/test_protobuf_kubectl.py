"""The protobuf codec against the machine's real kubectl.

kubectl's generator commands (`create namespace|configmap|secret|deployment|...`,
`expose`, `auth can-i`, `create token`) POST their objects as
`application/vnd.kubernetes.protobuf`. A small capture server on loopback stands in
for the API server (on purpose: these tests are about the bytes kubectl sends, the
full server has its own kubectl tests) and records those bodies. Ground truth:

- what we decode must equal kubectl's own client-side JSON of the same object
  (`--dry-run=client -o json`);
- the other way round, kubectl (Go's generated protobuf code) decodes what our
  `encode` answers, and the JSON it prints must equal our `decode` of it.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import datetime
import ipaddress
import json
import os
import secrets
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from hypernetes.api import discovery, protobuf
from hypernetes.resources.registry import Registry

KUBECTL_TIMEOUT = 120.0


@dataclass
class Captured:
    method: str
    path: str
    content_type: str
    accept: str
    body: bytes


@dataclass
class CaptureServer:
    """A stand-in API server: discovery, a path -> object map, recorded requests.

    `replies` maps a request path to an object answered in protobuf (to clients
    that accept it) instead of the echo of what was posted.
    """

    url: str = ""
    token: str = field(default_factory=lambda: secrets.token_hex(16))
    requests: list[Captured] = field(default_factory=list)
    objects: dict[str, dict[str, Any]] = field(default_factory=dict)
    replies: dict[str, dict[str, Any]] = field(default_factory=dict)
    registry: Registry = field(default_factory=Registry)
    kubeconfig: Path = Path()

    def posted(self) -> list[Captured]:
        return [r for r in self.requests if r.method in ("POST", "PUT")]

    async def handle(self, request: web.Request) -> web.StreamResponse:
        # /version is public, as on kube-apiserver: kubectl's version dispatcher asks it
        # without credentials.
        public = request.method == "GET" and request.path == "/version"
        if not public and request.headers.get("Authorization") != f"Bearer {self.token}":
            return _status(401, "Unauthorized", "Unauthorized")
        body = await request.read()
        self.requests.append(
            Captured(
                request.method,
                request.path,
                request.headers.get("Content-Type", ""),
                request.headers.get("Accept", ""),
                body,
            )
        )
        if request.method == "GET":
            return self._get(request)
        if request.headers.get("Content-Type", "").startswith(protobuf.MEDIA_TYPE):
            try:
                obj = protobuf.decode(body)
            except protobuf.ProtobufError as exc:
                return _status(400, "BadRequest", f"error decoding protobuf: {exc}")
        else:
            obj = json.loads(body)
        name = obj.get("metadata", {}).get("name")
        if name:
            self.objects[f"{request.path}/{name}"] = obj
        return self._reply(request, _answer(obj), 201)

    def _get(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        aggregated = "as=APIGroupDiscoveryList" in request.headers.get("Accept", "")
        if path == "/version":
            return web.json_response({"major": "1", "minor": "32", "gitVersion": "v1.32.0"})
        if path in ("/api", "/apis") and aggregated:
            doc = discovery.aggregated(self.registry, legacy=path == "/api")
            return web.Response(
                body=json.dumps(doc), headers={"Content-Type": discovery.AGGREGATED_MEDIA}
            )
        if path == "/api":
            return web.json_response(discovery.api_versions())
        if path == "/apis":
            return web.json_response(discovery.api_group_list(self.registry))
        if path in self.replies:
            return self._reply(request, self.replies[path], 200)
        if path in self.objects:
            return web.json_response(self.objects[path])
        return _status(404, "NotFound", f"{path} not found")

    def _reply(self, request: web.Request, obj: dict[str, Any], code: int) -> web.Response:
        obj = self.replies.get(request.path, obj)
        if protobuf.MEDIA_TYPE in request.headers.get("Accept", ""):
            return web.Response(
                body=protobuf.encode(obj), status=code, content_type=protobuf.MEDIA_TYPE
            )
        return web.json_response(obj, status=code)

    async def kubectl(self, *args: str, check: bool = True) -> tuple[int, str, str]:
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig)}
        proc = await asyncio.create_subprocess_exec(
            "kubectl",
            *args,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            out, err = await asyncio.wait_for(proc.communicate(), KUBECTL_TIMEOUT)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise
        code = proc.returncode if proc.returncode is not None else -1
        if check and code != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({code}):\n{err.decode()}")
        return code, out.decode(), err.decode()

    async def protobuf_post(self, *args: str) -> dict[str, Any]:
        """Run a kubectl command; decode the one protobuf body it posted."""
        self.requests.clear()
        await self.kubectl(*args)
        bodies = [r for r in self.posted() if r.content_type.startswith(protobuf.MEDIA_TYPE)]
        assert len(bodies) == 1, [(r.method, r.path, r.content_type) for r in self.posted()]
        assert protobuf.MEDIA_TYPE in bodies[0].accept
        return protobuf.decode(bodies[0].body)

    async def client_json(self, *args: str) -> dict[str, Any]:
        """kubectl's own client-side JSON for the same command."""
        args_list = list(args)
        cut = args_list.index("--") if "--" in args_list else len(args_list)
        args_list[cut:cut] = ["--dry-run=client", "-o", "json"]
        _, out, _ = await self.kubectl(*args_list)
        result: dict[str, Any] = json.loads(out)
        return result


def _status(code: int, reason: str, message: str) -> web.Response:
    body: dict[str, Any] = {"kind": "Status", "apiVersion": "v1", "metadata": {}}
    body["status"] = "Failure"
    body |= {"message": message, "reason": reason, "code": code}
    return web.json_response(body, status=code)


def _answer(obj: dict[str, Any]) -> dict[str, Any]:
    """What the stand-in answers to a create: the object, with review results filled in."""
    obj = copy.deepcopy(obj)
    if obj["kind"] == "SelfSubjectAccessReview":
        obj["status"] = {"allowed": True}
    elif obj["kind"] == "TokenRequest":
        obj["status"] = {"token": "t0ken", "expirationTimestamp": "2030-01-01T00:00:00Z"}
    elif obj["kind"] == "SelfSubjectRulesReview":
        obj["status"] = {"resourceRules": [], "nonResourceRules": [], "incomplete": False}
    return obj


def _serving_tls(directory: Path) -> tuple[ssl.SSLContext, str]:
    """A self-signed certificate for 127.0.0.1: the server's TLS context and the CA as base64.

    HTTPS because kubectl sends bearer tokens only over TLS, and the stand-in authenticates.
    """
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    crt, pem = directory / "serving.crt", directory / "serving.key"
    crt.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pem.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(crt, pem)
    return context, base64.b64encode(crt.read_bytes()).decode()


@pytest.fixture
async def capture(tmp_path: Path) -> AsyncIterator[CaptureServer]:
    server = CaptureServer()
    app = web.Application(client_max_size=8 * 1024 * 1024)
    app.router.add_route("*", "/{tail:.*}", server.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    context, ca_data = _serving_tls(tmp_path)
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    port = runner.addresses[0][1]
    server.url = f"https://127.0.0.1:{port}"
    server.kubeconfig = tmp_path / "kubeconfig"
    server.kubeconfig.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [
                    {
                        "name": "c",
                        "cluster": {"server": server.url, "certificate-authority-data": ca_data},
                    }
                ],
                "users": [{"name": "u", "user": {"token": server.token}}],
                "contexts": [
                    {"name": "c", "context": {"cluster": "c", "user": "u", "namespace": "pb"}}
                ],
                "current-context": "c",
            }
        )
    )
    try:
        yield server
    finally:
        await runner.cleanup()


def _tls_pair(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pb.test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    crt, pem = directory / "tls.crt", directory / "tls.key"
    crt.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pem.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return crt, pem


GENERATORS: dict[str, list[str]] = {
    "namespace": ["create", "namespace", "pb-ns"],
    "configmap": ["create", "configmap", "c", "--from-literal=a=b", "--from-literal=empty="],
    "configmap-files": ["create", "configmap", "f", "--from-file=bin={bin}", "--from-file={txt}"],
    "secret-generic": ["create", "secret", "generic", "s", "--from-literal=p=q", "--type=Opaque"],
    "secret-tls": ["create", "secret", "tls", "t", "--cert={crt}", "--key={key}"],
    "secret-docker": [
        "create",
        "secret",
        "docker-registry",
        "d",
        "--docker-server=registry.local",
        "--docker-username=u",
        "--docker-password=p",
    ],
    "serviceaccount": ["create", "serviceaccount", "sa"],
    "deployment": ["create", "deployment", "web", "--image=nginx", "--replicas=3", "--port=80"],
    "deployment-images": ["create", "deployment", "two", "--image=a", "--image=b:1"],
    "service-clusterip": ["create", "service", "clusterip", "s", "--tcp=80:8080", "--tcp=443"],
    "service-headless": ["create", "service", "clusterip", "h", "--clusterip=None"],
    "service-nodeport": ["create", "service", "nodeport", "n", "--tcp=80:80", "--node-port=30080"],
    "service-loadbalancer": ["create", "service", "loadbalancer", "lb", "--tcp=5678:8080"],
    "service-externalname": ["create", "service", "externalname", "e", "--external-name=a.b"],
    "role": [
        "create",
        "role",
        "r",
        "--verb=get",
        "--verb=list",
        "--resource=pods",
        "--resource=deployments.apps",
        "--resource-name=x",
    ],
    "rolebinding": [
        "create",
        "rolebinding",
        "rb",
        "--role=r",
        "--user=alice",
        "--group=devs",
        "--serviceaccount=pb:sa",
    ],
    "clusterrole-nonresource": [
        "create",
        "clusterrole",
        "nr",
        "--verb=get",
        "--non-resource-url=/x",
    ],
    "clusterrole-aggregation": ["create", "clusterrole", "agg", "--aggregation-rule=a=b"],
    "clusterrolebinding": ["create", "clusterrolebinding", "crb", "--clusterrole=nr", "--user=bob"],
    "quota": [
        "create",
        "quota",
        "q",
        "--hard=pods=3,cpu=1,requests.memory=1Gi,limits.cpu=500m",
        "--scopes=BestEffort",
    ],
    "pdb-percent": ["create", "pdb", "p", "--selector=app=x", "--min-available=50%"],
    "pdb-int": ["create", "pdb", "p2", "--selector=app=x", "--max-unavailable=1"],
}


@pytest.mark.parametrize("case", sorted(GENERATORS))
async def test_decoded_body_equals_kubectl_client_json(
    capture: CaptureServer, tmp_path: Path, case: str
) -> None:
    crt, key = _tls_pair(tmp_path)
    (tmp_path / "bin").write_bytes(bytes(range(256)) + b"\xff\xfe")
    (tmp_path / "notes.txt").write_text("hello\nworld\n")
    values = {"crt": crt, "key": key, "bin": tmp_path / "bin", "txt": tmp_path / "notes.txt"}
    args = [a.format(**values) for a in GENERATORS[case]]
    decoded = await capture.protobuf_post(*args)
    expected = await capture.client_json(*args)
    assert decoded == expected
    assert decoded["metadata"]["creationTimestamp"] is None


async def test_binary_configmap_and_secret_data_are_base64(
    capture: CaptureServer, tmp_path: Path
) -> None:
    blob = bytes(range(256))
    (tmp_path / "blob").write_bytes(blob)
    cm = await capture.protobuf_post(
        "create", "configmap", "b", f"--from-file=blob={tmp_path}/blob"
    )
    assert base64.b64decode(cm["binaryData"]["blob"]) == blob
    assert "data" not in cm
    secret = await capture.protobuf_post("create", "secret", "generic", "s", "--from-literal=k=v")
    assert secret["data"] == {"k": base64.b64encode(b"v").decode()}


async def test_auth_can_i_posts_a_self_subject_access_review(capture: CaptureServer) -> None:
    review = await capture.protobuf_post(
        "auth", "can-i", "create", "deployments.apps", "--subresource=scale", "-n", "shop"
    )
    # What kube-apiserver's JSON shows for this object: Go's encoding/json of the decoded struct.
    assert review == {
        "kind": "SelfSubjectAccessReview",
        "apiVersion": "authorization.k8s.io/v1",
        "metadata": {"creationTimestamp": None},
        "spec": {
            "resourceAttributes": {
                "namespace": "shop",
                "verb": "create",
                "group": "apps",
                "resource": "deployments",
                "subresource": "scale",
            }
        },
        "status": {"allowed": False},
    }
    nonresource = await capture.protobuf_post("auth", "can-i", "get", "/logs")
    assert nonresource["spec"] == {"nonResourceAttributes": {"path": "/logs", "verb": "get"}}


async def test_auth_can_i_list_posts_a_self_subject_rules_review(capture: CaptureServer) -> None:
    review = await capture.protobuf_post("auth", "can-i", "--list", "-n", "shop")
    assert review == {
        "kind": "SelfSubjectRulesReview",
        "apiVersion": "authorization.k8s.io/v1",
        "metadata": {"creationTimestamp": None},
        "spec": {"namespace": "shop"},
        # Non-omitempty nil slices render null, a non-omitempty false stays.
        "status": {"resourceRules": None, "nonResourceRules": None, "incomplete": False},
    }


async def test_create_token_posts_a_token_request(capture: CaptureServer) -> None:
    capture.requests.clear()
    _, out, _ = await capture.kubectl(
        "create",
        "token",
        "sa",
        "--duration=2h",
        "--audience=api",
        "--audience=vault",
        "--bound-object-kind=Pod",
        "--bound-object-name=p",
        "--bound-object-uid=u-1",
    )
    assert out.strip() == "t0ken"  # kubectl read our JSON answer
    (post,) = capture.posted()
    assert post.path == "/api/v1/namespaces/pb/serviceaccounts/sa/token"
    assert protobuf.decode(post.body) == {
        "kind": "TokenRequest",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": {"creationTimestamp": None},
        "spec": {
            "audiences": ["api", "vault"],
            "expirationSeconds": 7200,
            "boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": "p", "uid": "u-1"},
        },
        "status": {"token": "", "expirationTimestamp": None},
    }


async def test_run_and_expose_send_json_not_protobuf(capture: CaptureServer) -> None:
    """`kubectl run` and `expose` build their objects unstructured and post JSON."""
    await capture.protobuf_post("create", "deployment", "web", "--image=nginx", "--port=80")
    assert "/apis/apps/v1/namespaces/pb/deployments/web" in capture.objects
    for args in (
        ["run", "p", "--image=busybox", "--env=A=B", "--labels=a=b", "--", "sleep", "1"],
        ["expose", "deployment", "web", "--port=8080", "--target-port=80", "--name=websvc"],
    ):
        capture.requests.clear()
        await capture.kubectl(*args)
        (post,) = capture.posted()
        assert post.content_type.startswith("application/json")
        assert json.loads(post.body) == await capture.client_json(*args)


async def test_unknown_kind_is_refused_with_bad_request(capture: CaptureServer) -> None:
    # batch/v1 is not a group this server serves: its protobuf has no table entry.
    capture.requests.clear()
    code, _, err = await capture.kubectl("create", "job", "j", "--image=x", check=False)
    assert code != 0
    assert "no protobuf types for apiVersion 'batch/v1'" in err
    (post,) = capture.posted()
    assert post.content_type.startswith(protobuf.MEDIA_TYPE)
    with pytest.raises(protobuf.ProtobufError):
        protobuf.decode(post.body)


# ---- the other direction: kubectl's Go code decodes what we encode ----

TIME = "2024-05-06T07:08:09Z"

RICH_DEPLOYMENT: dict[str, Any] = {
    "kind": "Deployment",
    "apiVersion": "apps/v1",
    "metadata": {
        "name": "web",
        "namespace": "pb",
        "uid": "5d3c8e0e-1111-2222-3333-444455556666",
        "resourceVersion": "42",
        "generation": 3,
        "creationTimestamp": TIME,
        "deletionTimestamp": "2024-05-07T00:00:00Z",
        "deletionGracePeriodSeconds": 0,
        "labels": {"app": "web"},
        "annotations": {"a": "", "b": "c"},
        "ownerReferences": [
            {"apiVersion": "v1", "kind": "X", "name": "o", "uid": "u2", "controller": True}
        ],
        "finalizers": ["example.com/f"],
        "managedFields": [
            {
                "manager": "kubectl",
                "operation": "Update",
                "apiVersion": "apps/v1",
                "time": TIME,
                "fieldsType": "FieldsV1",
                "fieldsV1": {"f:spec": {"f:replicas": {}}},
                "subresource": "scale",
            }
        ],
    },
    "spec": {
        "replicas": 0,
        "selector": {
            "matchLabels": {"app": "web"},
            "matchExpressions": [{"key": "k", "operator": "In", "values": ["a", "b"]}],
        },
        "template": {
            "metadata": {"creationTimestamp": None, "labels": {"app": "web"}},
            "spec": {
                "volumes": [
                    {"name": "v", "emptyDir": {"sizeLimit": "1Gi"}},
                    {
                        "name": "s",
                        "secret": {
                            "secretName": "x",
                            "defaultMode": 420,
                            "items": [{"key": "a", "path": "b", "mode": 256}],
                        },
                    },
                    {"name": "c", "configMap": {"name": "cm", "optional": False}},
                    {
                        "name": "p",
                        "projected": {
                            "sources": [
                                {
                                    "serviceAccountToken": {
                                        "audience": "api",
                                        "expirationSeconds": 3600,
                                        "path": "token",
                                    }
                                },
                                {
                                    "downwardAPI": {
                                        "items": [
                                            {
                                                "path": "labels",
                                                "fieldRef": {"fieldPath": "metadata.labels"},
                                            }
                                        ]
                                    }
                                },
                            ]
                        },
                    },
                    {"name": "h", "hostPath": {"path": "/data", "type": "DirectoryOrCreate"}},
                ],
                "initContainers": [
                    {"name": "init", "image": "busybox", "restartPolicy": "Always", "resources": {}}
                ],
                "containers": [
                    {
                        "name": "c",
                        "image": "nginx",
                        "command": ["a"],
                        "args": ["b", "", "c"],
                        "workingDir": "/w",
                        "ports": [
                            {"containerPort": 80, "protocol": "TCP", "name": "http"},
                            {"containerPort": 53, "protocol": "UDP", "hostIP": "127.0.0.1"},
                        ],
                        "envFrom": [{"prefix": "P_", "configMapRef": {"name": "cm"}}],
                        "env": [
                            {"name": "A", "value": "B"},
                            {"name": "EMPTY"},
                            {
                                "name": "P",
                                "valueFrom": {
                                    "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}
                                },
                            },
                            {
                                "name": "R",
                                "valueFrom": {
                                    "resourceFieldRef": {"resource": "limits.cpu", "divisor": "1m"}
                                },
                            },
                            {
                                "name": "S",
                                "valueFrom": {
                                    "secretKeyRef": {"name": "s", "key": "k", "optional": True}
                                },
                            },
                        ],
                        "resources": {
                            "limits": {"cpu": "500m", "memory": "128Mi", "example.com/gpu": "1"},
                            "requests": {"cpu": "250m"},
                            "claims": [{"name": "gpu"}],
                        },
                        "resizePolicy": [{"resourceName": "cpu", "restartPolicy": "NotRequired"}],
                        "volumeMounts": [
                            {"name": "v", "mountPath": "/v", "readOnly": True, "subPath": "x"}
                        ],
                        "livenessProbe": {
                            "httpGet": {
                                "path": "/h",
                                "port": "http",
                                "scheme": "HTTP",
                                "httpHeaders": [{"name": "X", "value": "y"}],
                            },
                            "initialDelaySeconds": 5,
                            "periodSeconds": 10,
                            "timeoutSeconds": 1,
                            "successThreshold": 1,
                            "failureThreshold": 3,
                            "terminationGracePeriodSeconds": 7,
                        },
                        "readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 2},
                        "startupProbe": {"exec": {"command": ["true"]}, "failureThreshold": 30},
                        "lifecycle": {
                            "postStart": {"exec": {"command": ["sh", "-c", "echo"]}},
                            "preStop": {"sleep": {"seconds": 5}},
                        },
                        "securityContext": {
                            "runAsNonRoot": True,
                            "runAsUser": 1000,
                            "runAsGroup": 0,
                            "allowPrivilegeEscalation": False,
                            "privileged": False,
                            "capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]},
                            "readOnlyRootFilesystem": True,
                            "seccompProfile": {"type": "RuntimeDefault"},
                        },
                        "terminationMessagePath": "/dev/termination-log",
                        "terminationMessagePolicy": "File",
                        "imagePullPolicy": "Always",
                        "stdin": True,
                        "tty": False,
                    }
                ],
                "restartPolicy": "Always",
                "terminationGracePeriodSeconds": 30,
                "activeDeadlineSeconds": 9_000_000_000,
                "dnsPolicy": "ClusterFirst",
                "nodeSelector": {"disk": "ssd"},
                "serviceAccountName": "sa",
                "automountServiceAccountToken": False,
                "hostNetwork": False,
                "shareProcessNamespace": True,
                "securityContext": {
                    "fsGroup": 2000,
                    "supplementalGroups": [1, 2, 3],
                    "sysctls": [{"name": "a", "value": "1"}],
                },
                "imagePullSecrets": [{"name": "reg"}],
                "affinity": {
                    "nodeAffinity": {
                        "requiredDuringSchedulingIgnoredDuringExecution": {
                            "nodeSelectorTerms": [
                                {"matchExpressions": [{"key": "k", "operator": "Exists"}]}
                            ]
                        }
                    },
                    "podAntiAffinity": {
                        "preferredDuringSchedulingIgnoredDuringExecution": [
                            {
                                "weight": 10,
                                "podAffinityTerm": {
                                    "labelSelector": {"matchLabels": {"a": "b"}},
                                    "topologyKey": "kubernetes.io/hostname",
                                },
                            }
                        ]
                    },
                },
                "schedulerName": "default-scheduler",
                "tolerations": [
                    {
                        "key": "k",
                        "operator": "Equal",
                        "value": "v",
                        "effect": "NoExecute",
                        "tolerationSeconds": 60,
                    }
                ],
                "hostAliases": [{"ip": "10.0.0.1", "hostnames": ["a", "b"]}],
                "priority": -5,
                "dnsConfig": {
                    "nameservers": ["1.1.1.1"],
                    "options": [{"name": "ndots", "value": "2"}, {"name": "edns0"}],
                },
                "readinessGates": [{"conditionType": "x"}],
                "enableServiceLinks": False,
                "overhead": {"memory": "10Mi"},
                "topologySpreadConstraints": [
                    {
                        "maxSkew": 1,
                        "topologyKey": "zone",
                        "whenUnsatisfiable": "DoNotSchedule",
                        "labelSelector": {"matchLabels": {"a": "b"}},
                        "minDomains": 2,
                        "matchLabelKeys": ["pod-template-hash"],
                    }
                ],
                "os": {"name": "linux"},
                "hostUsers": False,
                "schedulingGates": [{"name": "g"}],
            },
        },
        "strategy": {
            "type": "RollingUpdate",
            "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": 2},
        },
        "minReadySeconds": 0,
        "revisionHistoryLimit": 10,
        "paused": True,
        "progressDeadlineSeconds": 600,
    },
    "status": {
        "observedGeneration": 3,
        "replicas": 2,
        "updatedReplicas": 1,
        "readyReplicas": 1,
        "availableReplicas": 1,
        "unavailableReplicas": 1,
        "conditions": [
            {
                "type": "Available",
                "status": "True",
                "lastUpdateTime": TIME,
                "lastTransitionTime": "2024-05-06T07:08:10Z",
                "reason": "R",
                "message": "M ✓",
            }
        ],
        "collisionCount": 0,
    },
}

RICH_SERVICE: dict[str, Any] = {
    "kind": "Service",
    "apiVersion": "v1",
    "metadata": {"name": "s", "namespace": "pb", "creationTimestamp": TIME},
    "spec": {
        "ports": [
            {"name": "http", "protocol": "TCP", "port": 80, "targetPort": "http"},
            {"name": "dns", "protocol": "UDP", "appProtocol": "dns", "port": 53, "targetPort": 0},
            {"name": "np", "protocol": "TCP", "port": 81, "targetPort": 8081, "nodePort": 30001},
        ],
        "selector": {"app": "web"},
        "clusterIP": "10.96.0.10",
        "clusterIPs": ["10.96.0.10", "fd00::a"],
        "type": "LoadBalancer",
        "externalIPs": ["192.0.2.1"],
        "sessionAffinity": "ClientIP",
        "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 10800}},
        "loadBalancerSourceRanges": ["10.0.0.0/8"],
        "externalTrafficPolicy": "Local",
        "healthCheckNodePort": 31000,
        "publishNotReadyAddresses": True,
        "ipFamilies": ["IPv4", "IPv6"],
        "ipFamilyPolicy": "PreferDualStack",
        "allocateLoadBalancerNodePorts": False,
        "internalTrafficPolicy": "Cluster",
        "trafficDistribution": "PreferClose",
    },
    "status": {
        "loadBalancer": {
            "ingress": [
                {
                    "ip": "192.0.2.2",
                    "ipMode": "VIP",
                    "ports": [{"port": 80, "protocol": "TCP", "error": "x"}],
                }
            ]
        },
        "conditions": [
            {
                "type": "Ready",
                "status": "True",
                "observedGeneration": 1,
                "lastTransitionTime": TIME,
                "reason": "Ok",
                "message": "",
            }
        ],
    },
}

RICH_SECRET: dict[str, Any] = {
    "kind": "Secret",
    "apiVersion": "v1",
    "metadata": {"name": "s", "namespace": "pb", "creationTimestamp": None},
    "immutable": True,
    "data": {
        "bin": base64.b64encode(bytes(range(200))).decode(),
        "empty": "",
        "k": base64.b64encode(b"v").decode(),
    },
    "stringData": {"plain": "text"},
    "type": "kubernetes.io/opaque",
}

RICH_QUOTA: dict[str, Any] = {
    "kind": "ResourceQuota",
    "apiVersion": "v1",
    "metadata": {"name": "q", "namespace": "pb", "creationTimestamp": None},
    "spec": {
        "hard": {"cpu": "2", "memory": "1Gi", "pods": "10"},
        "scopeSelector": {
            "matchExpressions": [
                {"scopeName": "PriorityClass", "operator": "In", "values": ["high"]}
            ]
        },
    },
    "status": {"hard": {"cpu": "2"}, "used": {"cpu": "1500m"}},
}

RICH_CLUSTERROLE: dict[str, Any] = {
    "kind": "ClusterRole",
    "apiVersion": "rbac.authorization.k8s.io/v1",
    "metadata": {"name": "nr", "creationTimestamp": None},
    "rules": [
        {
            "verbs": ["get", "list"],
            "apiGroups": ["", "apps"],
            "resources": ["pods", "deployments/scale"],
            "resourceNames": ["a"],
        },
        {"verbs": ["get"], "nonResourceURLs": ["/healthz", "/logs/*"]},
    ],
    "aggregationRule": {
        "clusterRoleSelectors": [{"matchExpressions": [{"key": "k", "operator": "DoesNotExist"}]}]
    },
}

RICH_EVENTS: dict[str, Any] = {
    "kind": "EventList",
    "apiVersion": "v1",
    "metadata": {"resourceVersion": "7", "continue": "", "remainingItemCount": 0},
    "items": [
        {
            "metadata": {"name": "e1", "namespace": "pb", "creationTimestamp": TIME},
            "involvedObject": {
                "kind": "Pod",
                "namespace": "pb",
                "name": "p",
                "uid": "u",
                "apiVersion": "v1",
                "resourceVersion": "3",
                "fieldPath": "spec.containers{c}",
            },
            "reason": "Pulled",
            "message": "pulled image",
            "source": {"component": "kubelet", "host": "n1"},
            "firstTimestamp": TIME,
            "lastTimestamp": "2024-05-06T07:09:00Z",
            "count": 2,
            "type": "Normal",
            "eventTime": "2024-05-06T07:08:09.123456Z",
            "series": {"count": 4, "lastObservedTime": "2024-05-06T07:10:00.000001Z"},
            "action": "Pull",
            "related": {"kind": "Node", "name": "n1"},
            "reportingComponent": "kubelet",
            "reportingInstance": "n1",
        }
    ],
}


RICH_WHOAMI: dict[str, Any] = {
    "kind": "SelfSubjectReview",
    "apiVersion": "authentication.k8s.io/v1",
    "metadata": {"creationTimestamp": TIME},
    "status": {
        "userInfo": {
            "username": "alice",
            "uid": "42",
            "groups": ["devs", "system:authenticated"],
            "extra": {"scopes": ["read", "write"], "tenant": ["acme"], "none": None},
        }
    },
}


def _rich_cases() -> dict[str, tuple[dict[str, Any], list[str], str]]:
    """case -> (object answered in protobuf, kubectl command, path the answer is for)."""
    return {
        "deployment": (
            RICH_DEPLOYMENT,
            ["create", "deployment", "web", "--image=nginx", "-o", "json"],
            "/apis/apps/v1/namespaces/pb/deployments",
        ),
        "service": (
            RICH_SERVICE,
            ["create", "service", "clusterip", "s", "--tcp=80", "-o", "json"],
            "/api/v1/namespaces/pb/services",
        ),
        "secret": (
            RICH_SECRET,
            ["create", "secret", "generic", "s", "--from-literal=k=v", "-o", "json"],
            "/api/v1/namespaces/pb/secrets",
        ),
        "quota": (
            RICH_QUOTA,
            ["create", "quota", "q", "--hard=cpu=2", "-o", "json"],
            "/api/v1/namespaces/pb/resourcequotas",
        ),
        "clusterrole": (
            RICH_CLUSTERROLE,
            ["create", "clusterrole", "nr", "--verb=get", "--resource=pods", "-o", "json"],
            "/apis/rbac.authorization.k8s.io/v1/clusterroles",
        ),
        "events": (RICH_EVENTS, ["events", "-o", "json"], "/api/v1/namespaces/pb/events"),
        "whoami": (
            RICH_WHOAMI,
            ["auth", "whoami", "-o", "json"],
            "/apis/authentication.k8s.io/v1/selfsubjectreviews",
        ),
    }


@pytest.mark.parametrize("case", sorted(_rich_cases()))
async def test_kubectl_decodes_what_we_encode(capture: CaptureServer, case: str) -> None:
    obj, args, path = _rich_cases()[case]
    capture.replies[path] = obj
    _, out, _ = await capture.kubectl(*args, "--show-managed-fields")
    printed = json.loads(out)
    ours = protobuf.decode(protobuf.encode(obj))
    if case == "events":
        # `kubectl events` prints a list of its own making around the decoded items.
        for item in printed["items"]:
            assert (item.pop("kind"), item.pop("apiVersion")) == ("Event", "v1")
        assert printed["items"] == ours["items"]
        # ListMeta: `continue` is omitempty, remainingItemCount a pointer.
        assert ours["metadata"] == {"resourceVersion": "7", "remainingItemCount": 0}
    else:
        assert printed == ours
    # Nothing but zero values may vanish on the way (they do where Go's omitempty says).
    assert _leaves(obj) <= _leaves(ours)


def _leaves(value: Any, path: str = "") -> set[tuple[str, str]]:
    """(path, JSON value) of every non-zero scalar in a JSON document."""
    if isinstance(value, dict):
        return {leaf for k, v in value.items() for leaf in _leaves(v, f"{path}/{k}")}
    if isinstance(value, list):
        return {leaf for i, v in enumerate(value) for leaf in _leaves(v, f"{path}/{i}")}
    return {(path, json.dumps(value))} if value not in (None, "", 0, False) else set()


def test_json_form_follows_go_omitempty_and_pointers() -> None:
    """What Go's encoding/json keeps and drops, on the objects kubectl agreed with above."""
    deployment = protobuf.decode(protobuf.encode(RICH_DEPLOYMENT))
    spec = deployment["spec"]
    pod = spec["template"]["spec"]
    assert deployment["metadata"]["deletionGracePeriodSeconds"] == 0  # *int64: kept
    assert deployment["metadata"]["annotations"] == {"a": "", "b": "c"}  # map values kept
    assert spec["replicas"] == 0  # *int32: kept
    assert "minReadySeconds" not in spec  # int32 omitempty: dropped
    assert "hostNetwork" not in pod and pod["automountServiceAccountToken"] is False
    assert "tty" not in pod["containers"][0] and pod["containers"][0]["stdin"] is True
    assert pod["containers"][0]["env"][1] == {"name": "EMPTY"}
    assert pod["containers"][0]["args"] == ["b", "", "c"]
    assert pod["initContainers"][0]["resources"] == {}  # a struct is never omitted
    assert pod["volumes"][0] == {"name": "v", "emptyDir": {"sizeLimit": "1Gi"}}  # inline
    assert pod["activeDeadlineSeconds"] == 9_000_000_000
    assert pod["priority"] == -5
    assert "collisionCount" in deployment["status"]  # *int32 zero: kept
    service = protobuf.decode(protobuf.encode(RICH_SERVICE))
    assert [p["targetPort"] for p in service["spec"]["ports"]] == ["http", 0, 8081]
    assert service["status"]["conditions"][0]["message"] == ""  # not omitempty in Condition
