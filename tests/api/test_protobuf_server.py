"""Protobuf request bodies through the real API server, sent by the machine's real kubectl."""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
import uuid
from typing import Any

import pytest
from tests.conftest import RunningServer

from hypernetes.api import protobuf


def _leaves(value: Any, path: str = "") -> set[tuple[str, str]]:
    """(path, JSON value) of every non-null scalar in a JSON document."""
    if isinstance(value, dict):
        return {leaf for k, v in value.items() for leaf in _leaves(v, f"{path}/{k}")}
    if isinstance(value, list):
        return {leaf for i, v in enumerate(value) for leaf in _leaves(v, f"{path}/{i}")}
    return {(path, json.dumps(value))} if value is not None else set()


def _post(server: RunningServer, path: str, body: bytes) -> tuple[int, dict[str, Any]]:
    context = ssl.create_default_context(cafile=str(server.data_dir / "ca.crt"))
    context.load_cert_chain(server.data_dir / "admin.crt", server.data_dir / "admin.key")
    request = urllib.request.Request(
        server.url + path,
        data=body,
        method="POST",
        headers={"Content-Type": protobuf.MEDIA_TYPE, "Accept": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, context=context, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


@pytest.mark.parametrize(
    ("args", "resource"),
    [
        (["create", "configmap", "c", "--from-literal=a=b", "--from-literal=e="], "configmap/c"),
        (["create", "secret", "generic", "s", "--from-literal=p=q"], "secret/s"),
        (
            ["create", "deployment", "web", "--image=registry.local/nginx", "--replicas=2"],
            "deployment.apps/web",
        ),
        (["create", "service", "clusterip", "svc", "--tcp=80:8080"], "service/svc"),
        (
            ["create", "role", "r", "--verb=get", "--resource=pods"],
            "role.rbac.authorization.k8s.io/r",
        ),
        (["create", "quota", "q", "--hard=pods=3,cpu=1"], "resourcequota/q"),
    ],
)
def test_kubectl_creates_through_protobuf(
    api_server: RunningServer, args: list[str], resource: str
) -> None:
    ns = f"pb-{uuid.uuid4().hex[:8]}"
    api_server.kubectl("create", "namespace", ns)
    sent = json.loads(api_server.kubectl("-n", ns, *args, "--dry-run=client", "-o", "json").stdout)
    api_server.kubectl("-n", ns, *args)
    stored = json.loads(api_server.kubectl("-n", ns, "get", resource, "-o", "json").stdout)
    sent["metadata"].pop("creationTimestamp")
    sent["metadata"]["namespace"] = ns
    sent.pop("status", None)
    # Everything kubectl sent is stored as sent; the server may only add to it.
    assert _leaves(sent) <= _leaves(stored)


def test_auth_can_i_through_protobuf(api_server: RunningServer) -> None:
    assert api_server.kubectl("auth", "can-i", "create", "deployments.apps").stdout.strip() == "yes"


def test_malformed_protobuf_is_a_bad_request(api_server: RunningServer) -> None:
    code, status = _post(api_server, "/api/v1/namespaces", b"k8s\x00\x0a\x80")
    assert code == 400
    assert status["kind"] == "Status" and status["reason"] == "BadRequest"
    assert status["message"] == "error decoding protobuf: truncated varint"
    body = protobuf.encode({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x"}})
    code, status = _post(api_server, "/api/v1/namespaces", body.replace(b"Namespace", b"Namespacf"))
    assert code == 400 and "no kind 'Namespacf'" in status["message"]
