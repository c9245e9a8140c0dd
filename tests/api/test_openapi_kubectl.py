"""The OpenAPI documents, Tables and selectors as the machine's real kubectl consumes them.

The HTTP layer here is a stand-in, on purpose: it serves discovery, the real `openapi` and
`tables` output and a tiny in-memory object map, so that these tests exercise exactly the
documents and tables (the full API server has its own kubectl tests in test_server_*.py).
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import json
import os
import re
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from hypernetes.api import openapi
from hypernetes.resources import fields, labels, tables
from hypernetes.resources.registry import Registry, ResourceType

KUBECTL_TIMEOUT = 120.0


def _kubectl_minor() -> int:
    try:
        out = subprocess.run(
            ["kubectl", "version", "--client", "-o", "json"],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return 0
    return int(re.sub(r"\D.*", "", json.loads(out)["clientVersion"]["minor"]) or 0)


# These tests read what kubectl prints; its OpenAPI v3 `explain` exists since 1.27.
pytestmark = pytest.mark.skipif(_kubectl_minor() < 27, reason="needs kubectl >= 1.27")

CRONTAB_SCHEMA = {
    "type": "object",
    "properties": {
        "spec": {
            "type": "object",
            "description": "What the cron tab runs.",
            "properties": {
                "cronSpec": {"type": "string", "description": "When to run, in cron syntax."},
                "image": {"type": "string"},
                "replicas": {"type": "integer", "minimum": 1},
            },
        },
        "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
    },
}
CRONTAB = ResourceType(
    "stable.example.com",
    "v1",
    "CronTab",
    "crontabs",
    True,
    short_names=("ct",),
    crd_schema=CRONTAB_SCHEMA,
    crd_name="crontabs.stable.example.com",
    printer_columns=(
        {"name": "Spec", "type": "string", "jsonPath": ".spec.cronSpec"},
        {"name": "Replicas", "type": "integer", "jsonPath": ".spec.replicas"},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    ),
)


@dataclasses.dataclass
class Seen:
    method: str
    path: str
    query: dict[str, str]
    content_type: str
    body: bytes


class StandIn:
    """Discovery + OpenAPI + a dict of objects, over plain HTTP on loopback."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.cache = openapi.OpenAPICache(registry)
        self.objects: dict[str, dict[str, Any]] = {}
        self.seen: list[Seen] = []
        self.port = 0

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        return app

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.seen.append(
            Seen(request.method, request.path, dict(request.query), request.content_type, body)
        )
        path = request.path.rstrip("/") or "/"
        if path == "/openapi/v3":
            return web.json_response(self.cache.index())
        if path.startswith("/openapi/v3/"):
            body = self.cache.encoded_for_path(path[len("/openapi/v3/") :])
            if body is None:
                return _status(404, "NotFound", "no such document")
            return web.Response(body=body, content_type="application/json")
        if path == "/version":
            return web.json_response({"major": "1", "minor": "32", "gitVersion": "v1.32.0"})
        if _is_discovery(path):
            return self.discovery(path)
        return self.resource(request, path, body)

    def discovery(self, path: str) -> web.Response:
        gvs = self.registry.group_versions()
        if path == "/api":
            return web.json_response({"kind": "APIVersions", "versions": gvs.get("", [])})
        if path == "/apis":
            groups = [_api_group(g, vs) for g, vs in gvs.items() if g]
            return web.json_response({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
        parts = path.strip("/").split("/")
        group, version = ("", parts[1]) if parts[0] == "api" else (parts[1], parts[2])
        rts = self.registry.in_group_version(group, version)
        if not rts:
            return _status(404, "NotFound", "not found")
        return web.json_response(
            {
                "kind": "APIResourceList",
                "apiVersion": "v1",
                "groupVersion": f"{group}/{version}" if group else version,
                "resources": [r for rt in rts for r in _api_resources(rt)],
            }
        )

    def resource(self, request: web.Request, path: str, body: bytes) -> web.Response:
        target = _target(self.registry, path)
        if target is None:
            return _status(404, "NotFound", f"the server could not find {path}")
        rt, namespace, name = target
        if name is None and request.method == "GET":
            return self.list(request, rt, namespace, path)
        if request.method == "GET":
            obj = self.objects.get(path)
            if obj is None:
                return _status(404, "NotFound", f'{rt.group_resource} "{name}" not found')
            return web.json_response(obj)
        if request.method == "PATCH":
            # Only the request matters to these tests; the stored object stays as it was.
            return web.json_response(self.objects[path])
        return _status(405, "MethodNotAllowed", "not supported by the stand-in")

    def list(
        self, request: web.Request, rt: ResourceType, namespace: str | None, path: str
    ) -> web.Response:
        try:
            label_sel = labels.parse(request.query.get("labelSelector", ""))
            reqs = fields.parse(request.query.get("fieldSelector", ""))
            fields.check_supported(rt, reqs)
        except (labels.LabelSelectorError, fields.FieldSelectorError) as exc:
            return _status(400, "BadRequest", str(exc))
        items = [
            obj
            for key, obj in sorted(self.objects.items())
            if key.startswith(path + "/")
            and labels.matches(label_sel, obj["metadata"].get("labels"))
            and fields.matches(rt, obj, reqs)
        ]
        if "as=Table" in request.headers.get("Accept", ""):
            now = datetime.datetime.now(datetime.UTC)
            table = tables.table(rt, items, now=now, list_meta={"resourceVersion": "7"})
            return web.json_response(table)
        return web.json_response(
            {"kind": rt.list_kind, "apiVersion": rt.api_version, "items": items, "metadata": {}}
        )


def _is_discovery(path: str) -> bool:
    parts = path.strip("/").split("/")
    return (parts[0] == "api" and len(parts) <= 2) or (parts[0] == "apis" and len(parts) in (1, 3))


def _status(code: int, reason: str, message: str) -> web.Response:
    body = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": message}
    return web.json_response({**body, "reason": reason, "code": code}, status=code)


def _api_group(group: str, versions: list[str]) -> dict[str, Any]:
    gvs = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
    return {"name": group, "versions": gvs, "preferredVersion": gvs[0]}


def _api_resources(rt: ResourceType) -> list[dict[str, Any]]:
    main = {
        "name": rt.plural,
        "singularName": rt.singular,
        "namespaced": rt.namespaced,
        "kind": rt.kind,
        "verbs": list(rt.verbs),
        "shortNames": list(rt.short_names),
        "categories": list(rt.categories),
    }
    subs = [
        {"name": f"{rt.plural}/{s}", "singularName": "", "namespaced": rt.namespaced}
        | {"kind": rt.kind, "verbs": ["get", "patch", "update"]}
        for s in rt.subresources
    ]
    return [main, *subs]


def _target(registry: Registry, path: str) -> tuple[ResourceType, str | None, str | None] | None:
    parts = path.strip("/").split("/")
    if parts[0] == "api" and len(parts) > 2:
        group, version, rest = "", parts[1], parts[2:]
    elif parts[0] == "apis" and len(parts) > 3:
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        return None
    namespace = None
    if len(rest) >= 2 and rest[0] == "namespaces" and len(rest) != 2:
        namespace, rest = rest[1], rest[2:]
    if not rest or len(rest) > 2:
        return None
    rt = registry.get(group, version, rest[0])
    if rt is None:
        return None
    return rt, namespace, rest[1] if len(rest) == 2 else None


@pytest.fixture
async def standin(tmp_path: Path) -> AsyncIterator[StandIn]:
    registry = Registry()
    registry.add(CRONTAB)
    server = StandIn(registry)
    runner = web.AppRunner(server.app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server.port = runner.addresses[0][1]
    try:
        yield server
    finally:
        await runner.cleanup()


async def kubectl(
    server: StandIn, tmp: Path, *args: str, stdin: str | None = None, check: bool = True
) -> tuple[int, str, str]:
    """Run the real kubectl against the stand-in, with a private cache directory."""
    config = tmp / "kubeconfig"
    if not config.exists():
        config.write_text(
            json.dumps(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [
                        {"name": "t", "cluster": {"server": f"http://127.0.0.1:{server.port}"}}
                    ],
                    "users": [{"name": "t", "user": {}}],
                    "contexts": [
                        {"name": "t", "context": {"cluster": "t", "user": "t", "namespace": "ns1"}}
                    ],
                    "current-context": "t",
                }
            )
        )
    env = {**os.environ, "KUBECONFIG": str(config), "HOME": str(tmp)}
    proc = await asyncio.create_subprocess_exec(
        "kubectl",
        "--cache-dir",
        str(tmp / "cache"),
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    try:
        out, err = await asyncio.wait_for(
            proc.communicate(stdin.encode() if stdin else None), KUBECTL_TIMEOUT
        )
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    code = proc.returncode or 0
    if check and code != 0:
        raise AssertionError(f"kubectl {' '.join(args)} failed ({code}):\n{err.decode()}")
    return code, out.decode(), err.decode()


# -- explain -------------------------------------------------------------------------------------


async def test_explain_pod_containers_walks_the_v3_document(
    standin: StandIn, tmp_path: Path
) -> None:
    _, out, _ = await kubectl(standin, tmp_path, "explain", "pods.spec.containers")
    assert "KIND:       Pod" in out
    assert "VERSION:    v1" in out
    assert "FIELD: containers <[]Container>" in out
    # Fields of Container, reached through the items $ref, with their types.
    assert "image\t<string>" in out
    assert "ports\t<[]ContainerPort>" in out
    assert "resources\t<ResourceRequirements>" in out
    assert any(s.path == "/openapi/v3/api/v1" for s in standin.seen)


async def test_explain_deployment_recursive(standin: StandIn, tmp_path: Path) -> None:
    _, out, _ = await kubectl(standin, tmp_path, "explain", "deployment", "--recursive")
    assert "GROUP:      apps" in out and "KIND:       Deployment" in out
    lines = [line.strip() for line in out.splitlines()]
    for field in ("metadata\t<ObjectMeta>", "spec\t<DeploymentSpec>", "replicas\t<integer>"):
        assert field in lines, field
    # Deep nesting through allOf references: spec.template.spec.containers[].ports[].
    assert "containerPort\t<integer> -required-" in lines
    # References to primitive definitions (IntOrString, Quantity, Time) print as their type.
    assert "maxSurge\t<string>" in lines
    assert "limits\t<map[string]string>" in lines
    assert len(lines) > 300


async def test_explain_crd_kind(standin: StandIn, tmp_path: Path) -> None:
    _, out, _ = await kubectl(standin, tmp_path, "explain", "crontabs.spec")
    assert "GROUP:      stable.example.com" in out
    assert "What the cron tab runs." in out
    assert "cronSpec\t<string>" in out and "When to run, in cron syntax." in out
    assert "replicas\t<integer>" in out


async def test_explain_unknown_field_fails(standin: StandIn, tmp_path: Path) -> None:
    code, _, err = await kubectl(standin, tmp_path, "explain", "pods.spec.nope", check=False)
    assert code != 0
    assert 'field "nope" does not exist' in err


# -- apply: merge keys and server-side field validation ------------------------------------------


def _deployment(images: dict[str, str], applied: dict[str, Any] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "web", "namespace": "ns1", "labels": {"app": "web"}}
    if applied is not None:
        annotation = "kubectl.kubernetes.io/last-applied-configuration"
        meta["annotations"] = {annotation: json.dumps(applied)}
    containers = [{"name": n, "image": i} for n, i in images.items()]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta,
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": containers},
            },
        },
    }


async def test_client_side_apply_uses_v3_merge_keys_and_server_validation(
    standin: StandIn, tmp_path: Path
) -> None:
    applied = _deployment({"app": "nginx:1"})
    standin.objects["/apis/apps/v1/namespaces/ns1/deployments/web"] = _deployment(
        {"app": "nginx:1"}, applied
    )
    manifest = _deployment({"app": "nginx:2", "sidecar": "busybox"})
    _, out, err = await kubectl(
        standin, tmp_path, "apply", "-v=5", "-f", "-", stdin=json.dumps(manifest)
    )
    assert "deployment.apps/web configured" in out
    assert "OpenAPI V3 path does not" not in err
    assert "error calculating patch from openapi v3" not in err
    patch = next(s for s in standin.seen if s.method == "PATCH")
    assert patch.content_type == "application/strategic-merge-patch+json"
    # kubectl found `fieldValidation` among the PATCH parameters: it lets the server validate.
    assert patch.query.get("fieldValidation") == "Strict"
    body = json.loads(patch.body)
    pod_spec = body["spec"]["template"]["spec"]
    # The merge key of containers comes from x-kubernetes-patch-merge-key in the v3 document.
    assert pod_spec["$setElementOrder/containers"] == [{"name": "app"}, {"name": "sidecar"}]
    assert {"name": "app", "image": "nginx:2"} in pod_spec["containers"]
    # The v3 document sufficed: kubectl never fell back to OpenAPI v2.
    assert not any(s.path.startswith("/openapi/v2") for s in standin.seen)


async def test_client_side_apply_of_crd_kind_uses_merge_patch(
    standin: StandIn, tmp_path: Path
) -> None:
    def crontab(spec: dict[str, Any], applied: dict[str, Any] | None = None) -> dict[str, Any]:
        meta: dict[str, Any] = {"name": "c1", "namespace": "ns1"}
        if applied:
            meta["annotations"] = {
                "kubectl.kubernetes.io/last-applied-configuration": json.dumps(applied)
            }
        return {"apiVersion": "stable.example.com/v1", "kind": "CronTab", "metadata": meta} | {
            "spec": spec
        }

    first = crontab({"cronSpec": "* * * * */5", "replicas": 1})
    standin.objects["/apis/stable.example.com/v1/namespaces/ns1/crontabs/c1"] = crontab(
        first["spec"], first
    )
    changed = crontab({"cronSpec": "* * * * */10", "replicas": 1})
    await kubectl(standin, tmp_path, "apply", "-f", "-", stdin=json.dumps(changed))
    patch = next(s for s in standin.seen if s.method == "PATCH")
    assert patch.content_type == "application/merge-patch+json"
    assert patch.query.get("fieldValidation") == "Strict"
    assert json.loads(patch.body)["spec"] == {"cronSpec": "* * * * */10"}


# -- get: tables and selectors --------------------------------------------------------------------


def _pod(name: str, phase: str, node: str, labels_: dict[str, str]) -> dict[str, Any]:
    created = (datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=5)).isoformat()
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "ns1", "labels": labels_}
        | {"creationTimestamp": created.replace("+00:00", "Z")},
        "spec": {"nodeName": node, "containers": [{"name": "c", "image": "i"}]},
        "status": {
            "phase": phase,
            "podIP": "10.1.0.9",
            "containerStatuses": [
                {"name": "c", "ready": phase == "Running", "restartCount": 0}
                | {"state": {"running": {}} if phase == "Running" else {"waiting": {}}}
            ],
        },
    }


async def test_get_pods_prints_server_side_table(standin: StandIn, tmp_path: Path) -> None:
    base = "/api/v1/namespaces/ns1/pods"
    standin.objects[f"{base}/a"] = _pod("a", "Running", "node-1", {"app": "web"})
    standin.objects[f"{base}/b"] = _pod("b", "Pending", "", {"app": "db"})
    _, out, _ = await kubectl(standin, tmp_path, "get", "pods")
    header, *rows = out.splitlines()
    assert header.split() == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert rows[0].split()[:4] == ["a", "1/1", "Running", "0"]
    assert rows[1].split()[:4] == ["b", "0/1", "Pending", "0"]
    assert rows[0].split()[4] in ("5m", "5m1s", "5m2s", "5m3s", "5m4s", "5m5s")

    _, wide, _ = await kubectl(standin, tmp_path, "get", "pods", "-o", "wide")
    header, *rows = wide.splitlines()
    assert "NOMINATED NODE" in header and "READINESS GATES" in header
    assert rows[0].split()[5:] == ["10.1.0.9", "node-1", "<none>", "<none>"]


async def test_get_with_selectors(standin: StandIn, tmp_path: Path) -> None:
    base = "/api/v1/namespaces/ns1/pods"
    standin.objects[f"{base}/a"] = _pod("a", "Running", "node-1", {"app": "web"})
    standin.objects[f"{base}/b"] = _pod("b", "Pending", "", {"app": "db"})
    _, out, _ = await kubectl(standin, tmp_path, "get", "pods", "-l", "app in (db)", "-o", "name")
    assert out.split() == ["pod/b"]
    _, out, _ = await kubectl(
        standin, tmp_path, "get", "pods", "--field-selector", "status.phase=Running", "-o", "name"
    )
    assert out.split() == ["pod/a"]
    code, _, err = await kubectl(
        standin, tmp_path, "get", "pods", "--field-selector", "spec.color=red", check=False
    )
    assert code != 0 and "field label not supported: spec.color" in err


async def test_get_crd_kind_prints_printer_columns(standin: StandIn, tmp_path: Path) -> None:
    base = "/apis/stable.example.com/v1/namespaces/ns1/crontabs"
    standin.objects[f"{base}/c1"] = {
        "apiVersion": "stable.example.com/v1",
        "kind": "CronTab",
        "metadata": {"name": "c1", "namespace": "ns1", "creationTimestamp": "2020-01-01T00:00:00Z"},
        "spec": {"cronSpec": "*/5 * * * *", "replicas": 3},
    }
    _, out, _ = await kubectl(standin, tmp_path, "get", "crontabs")
    header, row = out.splitlines()
    assert header.split() == ["NAME", "SPEC", "REPLICAS", "AGE"]
    assert row.split()[:6] == ["c1", "*/5", "*", "*", "*", "*"]
    assert row.split()[6] == "3"
    assert re.fullmatch(r"\d+y(\d+d)?", row.split()[7])  # age of a 2020 object: "6y329d"
