"""The API server driven by the machine's unmodified kubectl."""

from __future__ import annotations

import json
import ssl
import time
import urllib.error
import urllib.request
import uuid

import pytest
import yaml
from tests.conftest import RunningServer


def _ns(server: RunningServer) -> str:
    name = f"t-{uuid.uuid4().hex[:8]}"
    server.kubectl("create", "namespace", name)
    return name


def _raw(
    server: RunningServer,
    path: str,
    *,
    method: str = "GET",
    body: bytes | None = None,
    content_type: str = "application/json",
    cert: bool = True,
) -> tuple[int, dict]:
    """A request with the admin certificate (or none), returning (code, JSON body)."""
    cfg = yaml.safe_load(server.kubeconfig.read_text())
    ctx = ssl.create_default_context(cafile=str(server.data_dir / "ca.crt"))
    if cert:
        ctx.load_cert_chain(server.data_dir / "admin.crt", server.data_dir / "admin.key")
    assert cfg["clusters"][0]["cluster"]["server"] == server.url
    req = urllib.request.Request(
        server.url + path, data=body, method=method, headers={"Content-Type": content_type}
    )
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=30) as resp:
            raw = resp.read()
            is_json = resp.headers.get_content_type() == "application/json"
            return resp.status, json.loads(raw) if is_json else {"text": raw.decode()}
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"{}")


def test_version_health_and_anonymous_rejected(api_server: RunningServer) -> None:
    out = json.loads(api_server.kubectl("version", "-o", "json").stdout)
    assert out["serverVersion"]["major"] == "1" and out["serverVersion"]["minor"] == "32"
    code, _ = _raw(api_server, "/readyz", cert=False)
    assert code == 200
    code, body = _raw(api_server, "/api/v1/namespaces", cert=False)
    assert code == 401 and body["reason"] == "Unauthorized"


def test_api_resources_lists_kinds_short_names_and_categories(api_server: RunningServer) -> None:
    out = api_server.kubectl("api-resources", "--no-headers").stdout
    rows = {line.split()[0]: line.split() for line in out.splitlines()}
    for name in (
        "pods",
        "deployments",
        "replicasets",
        "clusterroles",
        "leases",
        "customresourcedefinitions",
        "persistentvolumeclaims",
        "limitranges",
    ):
        assert name in rows, name
    assert "deploy" in rows["deployments"] and "po" in rows["pods"]
    ns = _ns(api_server)
    api_server.kubectl("-n", ns, "create", "-f", "-", input=_deployment("d1"))
    shown = api_server.kubectl("-n", ns, "get", "all", "-o", "name").stdout.split()
    assert "deployment.apps/d1" in shown


def _deployment(name: str, replicas: int = 2, image: str = "registry.local/nginx") -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": name}},
                "template": {
                    "metadata": {"labels": {"app": name}},
                    "spec": {"containers": [{"name": "web", "image": image}]},
                },
            },
        }
    )


def test_create_get_defaults_and_metadata(api_server: RunningServer) -> None:
    ns = _ns(api_server)
    api_server.kubectl("-n", ns, "create", "-f", "-", input=_deployment("web"))
    obj = json.loads(api_server.kubectl("-n", ns, "get", "deploy", "web", "-o", "json").stdout)
    meta = obj["metadata"]
    assert meta["uid"] and meta["creationTimestamp"] and meta["generation"] == 1
    assert int(meta["resourceVersion"]) > 0
    assert obj["spec"]["strategy"]["type"] == "RollingUpdate"
    assert obj["spec"]["template"]["spec"]["restartPolicy"] == "Always"
    dup = api_server.kubectl("-n", ns, "create", "-f", "-", input=_deployment("web"), check=False)
    assert dup.returncode != 0 and "AlreadyExists" in dup.stderr


def test_generator_commands_protobuf_bodies(api_server: RunningServer) -> None:
    ns = _ns(api_server)
    api_server.kubectl(
        "-n", ns, "create", "deployment", "gen", "--image=registry.local/nginx", "--replicas=3"
    )
    api_server.kubectl("-n", ns, "create", "configmap", "cfg", "--from-literal=a=b")
    api_server.kubectl("-n", ns, "create", "secret", "generic", "s", "--from-literal=p=q")
    dep = json.loads(api_server.kubectl("-n", ns, "get", "deploy", "gen", "-o", "json").stdout)
    assert dep["spec"]["replicas"] == 3
    assert dep["spec"]["template"]["spec"]["containers"][0]["image"] == "registry.local/nginx"
    sec = json.loads(api_server.kubectl("-n", ns, "get", "secret", "s", "-o", "json").stdout)
    assert sec["data"] == {"p": "cQ=="} and sec["type"] == "Opaque"


def test_generate_name(api_server: RunningServer) -> None:
    ns = _ns(api_server)
    manifest = yaml.safe_dump(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"generateName": "gen-"},
            "data": {"a": "1"},
        }
    )
    out = api_server.kubectl("-n", ns, "create", "-f", "-", "-o", "name", input=manifest).stdout
    assert out.startswith("configmap/gen-") and len(out.strip()) == len("configmap/gen-") + 5


def test_update_with_stale_resource_version_conflicts(api_server: RunningServer) -> None:
    ns = _ns(api_server)
    api_server.kubectl("-n", ns, "create", "configmap", "c", "--from-literal=a=1")
    old = json.loads(api_server.kubectl("-n", ns, "get", "cm", "c", "-o", "json").stdout)
    api_server.kubectl("-n", ns, "patch", "cm", "c", "-p", '{"data":{"a":"2"}}')
    old["data"]["a"] = "3"
    res = api_server.kubectl("-n", ns, "replace", "-f", "-", input=json.dumps(old), check=False)
    assert res.returncode != 0 and "the object has been modified" in res.stderr
    now = json.loads(api_server.kubectl("-n", ns, "get", "cm", "c", "-o", "json").stdout)
    assert now["data"]["a"] == "2"


@pytest.mark.parametrize(
    ("manifest", "expect"),
    [
        (
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "Bad_Name"}},
            "Invalid value",
        ),
        (
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ok"}, "bogus": 1},
            'unknown field "bogus"',
        ),
        (
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ok"}, "data": "x"},
            "data",
        ),
    ],
)
def test_bad_objects_are_rejected_and_nothing_is_written(
    api_server: RunningServer, manifest: dict, expect: str
) -> None:
    ns = _ns(api_server)
    res = api_server.kubectl("-n", ns, "create", "-f", "-", input=json.dumps(manifest), check=False)
    assert res.returncode != 0 and expect in res.stderr
    assert api_server.kubectl("-n", ns, "get", "cm", "-o", "name").stdout.strip() == ""


def test_malformed_and_oversized_bodies(api_server: RunningServer) -> None:
    ns = _ns(api_server)
    path = f"/api/v1/namespaces/{ns}/configmaps"
    code, body = _raw(api_server, path, method="POST", body=b'{"kind": ')
    assert code == 400 and body["reason"] == "BadRequest"
    code, body = _raw(
        api_server, path, method="POST", body=b"a: [", content_type="application/yaml"
    )
    assert code == 400
    big = json.dumps(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "big"},
            "data": {"x": "y" * (3 * 1024 * 1024 + 10)},
        }
    ).encode()
    code, body = _raw(api_server, path, method="POST", body=big)
    assert code == 413 and body["reason"] == "RequestEntityTooLarge"
    code, body = _raw(api_server, path, method="POST", body=b"{}", content_type="text/plain")
    assert code == 415
    code, listing = _raw(api_server, path)
    assert code == 200 and listing["items"] == []


def test_patch_types(api_server: RunningServer) -> None:
    ns = _ns(api_server)
    api_server.kubectl("-n", ns, "create", "-f", "-", input=_deployment("p", replicas=1))
    api_server.kubectl(
        "-n", ns, "patch", "deploy", "p", "--type=merge", "-p", '{"spec":{"replicas":4}}'
    )
    api_server.kubectl(
        "-n",
        ns,
        "patch",
        "deploy",
        "p",
        "--type=json",
        "-p",
        '[{"op":"add","path":"/metadata/labels","value":{"x":"y"}}]',
    )
    api_server.kubectl(
        "-n",
        ns,
        "patch",
        "deploy",
        "p",
        "-p",
        '{"spec":{"template":{"spec":{"containers":'
        '[{"name":"side","image":"registry.local/side"}]}}}}',
    )
    dep = json.loads(api_server.kubectl("-n", ns, "get", "deploy", "p", "-o", "json").stdout)
    assert dep["spec"]["replicas"] == 4 and dep["metadata"]["labels"] == {"x": "y"}
    names = [c["name"] for c in dep["spec"]["template"]["spec"]["containers"]]
    assert names == ["side", "web"] or sorted(names) == ["side", "web"]
    assert dep["metadata"]["generation"] == 3  # labels are metadata: no generation bump
    bad = api_server.kubectl(
        "-n",
        ns,
        "patch",
        "deploy",
        "p",
        "--type=json",
        "-p",
        '[{"op":"test","path":"/spec/replicas","value":9}]',
        check=False,
    )
    assert bad.returncode != 0


def test_apply_client_and_server_side(api_server: RunningServer) -> None:
    ns = _ns(api_server)
    api_server.kubectl("-n", ns, "apply", "-f", "-", input=_deployment("a", replicas=1))
    api_server.kubectl("-n", ns, "apply", "-f", "-", input=_deployment("a", replicas=2))
    dep = json.loads(api_server.kubectl("-n", ns, "get", "deploy", "a", "-o", "json").stdout)
    assert dep["spec"]["replicas"] == 2
    assert "kubectl.kubernetes.io/last-applied-configuration" in dep["metadata"]["annotations"]
    api_server.kubectl(
        "-n",
        ns,
        "apply",
        "--server-side",
        "--field-manager=ssa",
        "-f",
        "-",
        input=_deployment("s", replicas=1),
    )
    api_server.kubectl("-n", ns, "scale", "deploy", "s", "--replicas=5")
    conflict = api_server.kubectl(
        "-n",
        ns,
        "apply",
        "--server-side",
        "--field-manager=ssa",
        "-f",
        "-",
        input=_deployment("s", replicas=2),
        check=False,
    )
    assert conflict.returncode != 0 and "conflict" in conflict.stderr.lower()
    assert ".spec.replicas" in conflict.stderr
    api_server.kubectl(
        "-n",
        ns,
        "apply",
        "--server-side",
        "--field-manager=ssa",
        "--force-conflicts",
        "-f",
        "-",
        input=_deployment("s", replicas=2),
    )
    dep = json.loads(
        api_server.kubectl(
            "-n", ns, "get", "deploy", "s", "-o", "json", "--show-managed-fields"
        ).stdout
    )
    assert dep["spec"]["replicas"] == 2
    managers = {m["manager"]: m for m in dep["metadata"]["managedFields"]}
    assert "f:replicas" in json.dumps(managers["ssa"]["fieldsV1"])


def test_get_table_columns(api_server: RunningServer) -> None:
    ns = _ns(api_server)
    api_server.kubectl("-n", ns, "create", "-f", "-", input=_deployment("t"))
    header = api_server.kubectl("-n", ns, "get", "deploy").stdout.splitlines()[0].split()
    assert header == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    wide = api_server.kubectl("-n", ns, "get", "deploy", "-o", "wide").stdout.splitlines()[0]
    assert "IMAGES" in wide and "SELECTOR" in wide
    assert api_server.kubectl("get", "ns", ns, "--no-headers").stdout.split()[1] == "Active"


def test_label_and_field_selectors_and_chunking(api_server: RunningServer) -> None:
    ns = _ns(api_server)
    for i in range(7):
        api_server.kubectl("-n", ns, "create", "configmap", f"c{i}", f"--from-literal=i={i}")
        if i % 2:
            api_server.kubectl("-n", ns, "label", "cm", f"c{i}", "odd=yes")
    odd = api_server.kubectl("-n", ns, "get", "cm", "-l", "odd=yes", "-o", "name").stdout.split()
    assert odd == ["configmap/c1", "configmap/c3", "configmap/c5"]
    one = api_server.kubectl(
        "-n", ns, "get", "cm", "--field-selector", "metadata.name=c4", "-o", "name"
    ).stdout.split()
    assert one == ["configmap/c4"]
    bad = api_server.kubectl("-n", ns, "get", "cm", "--field-selector", "spec.nope=1", check=False)
    assert bad.returncode != 0 and '"spec.nope" is not a known field selector' in bad.stderr
    chunked = api_server.kubectl(
        "-n", ns, "get", "cm", "--chunk-size=2", "-o", "name", "-v=6"
    ).stdout.split()
    assert len([n for n in chunked if n.startswith("configmap/c")]) == 7


def test_explain_uses_openapi_v3(api_server: RunningServer) -> None:
    out = api_server.kubectl("explain", "pods.spec.containers.image").stdout
    assert "FIELD: image <string>" in out
    deploy = api_server.kubectl("explain", "deployment.spec", "--recursive").stdout
    assert "replicas" in deploy and "template" in deploy


def test_delete_with_finalizer_waits_for_its_removal(api_server: RunningServer) -> None:
    ns = _ns(api_server)
    manifest = yaml.safe_dump(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "held", "finalizers": ["example.com/hold"]},
        }
    )
    api_server.kubectl("-n", ns, "create", "-f", "-", input=manifest)
    api_server.kubectl("-n", ns, "delete", "cm", "held", "--wait=false")
    obj = json.loads(api_server.kubectl("-n", ns, "get", "cm", "held", "-o", "json").stdout)
    assert obj["metadata"]["deletionTimestamp"]
    api_server.kubectl(
        "-n",
        ns,
        "patch",
        "cm",
        "held",
        "--type=json",
        "-p",
        '[{"op":"remove","path":"/metadata/finalizers"}]',
    )
    gone = api_server.kubectl("-n", ns, "get", "cm", "held", check=False)
    assert gone.returncode != 0 and "NotFound" in gone.stderr


def test_namespace_deletion_removes_contents(api_server: RunningServer) -> None:
    ns = _ns(api_server)
    api_server.kubectl("-n", ns, "create", "configmap", "c", "--from-literal=a=b")
    api_server.kubectl("-n", ns, "create", "-f", "-", input=_deployment("d"))
    api_server.kubectl("delete", "namespace", ns, "--timeout=60s")
    gone = api_server.kubectl("get", "namespace", ns, check=False)
    assert gone.returncode != 0 and "NotFound" in gone.stderr
    code, body = _raw(api_server, f"/api/v1/namespaces/{ns}/configmaps")
    assert code == 200 and body["items"] == []


def test_creating_in_missing_or_terminating_namespace_fails(api_server: RunningServer) -> None:
    res = api_server.kubectl("-n", "no-such-ns", "create", "configmap", "c", check=False)
    assert res.returncode != 0 and 'namespaces "no-such-ns" not found' in res.stderr


def test_garbage_collection_background_and_orphan(api_server: RunningServer) -> None:
    ns = _ns(api_server)
    owner = json.loads(
        api_server.kubectl("-n", ns, "create", "configmap", "owner", "-o", "json").stdout
    )
    ref = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "name": "owner",
        "uid": owner["metadata"]["uid"],
    }
    for name in ("dep1", "dep2"):
        api_server.kubectl(
            "-n",
            ns,
            "create",
            "-f",
            "-",
            input=yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "metadata": {"name": name, "ownerReferences": [ref]},
                }
            ),
        )
    api_server.kubectl("-n", ns, "delete", "cm", "owner", "--cascade=orphan")
    time.sleep(3)
    left = api_server.kubectl("-n", ns, "get", "cm", "-o", "json").stdout
    deps = [i for i in json.loads(left)["items"] if i["metadata"]["name"].startswith("dep")]
    assert len(deps) == 2 and all(not d["metadata"].get("ownerReferences") for d in deps)
    owner2 = json.loads(
        api_server.kubectl("-n", ns, "create", "configmap", "owner2", "-o", "json").stdout
    )
    ref2 = {**ref, "name": "owner2", "uid": owner2["metadata"]["uid"]}
    api_server.kubectl(
        "-n",
        ns,
        "create",
        "-f",
        "-",
        input=yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "child", "ownerReferences": [ref2]},
            }
        ),
    )
    api_server.kubectl("-n", ns, "delete", "cm", "owner2")
    deadline = time.time() + 30
    while time.time() < deadline:
        if api_server.kubectl("-n", ns, "get", "cm", "child", check=False).returncode != 0:
            break
        time.sleep(0.5)
    else:
        raise AssertionError("dependent of a deleted owner was not collected")


def test_get_watch_streams_changes(api_server: RunningServer) -> None:
    import subprocess

    ns = _ns(api_server)
    api_server.kubectl("-n", ns, "create", "configmap", "first")
    env = {**__import__("os").environ, "KUBECONFIG": str(api_server.kubeconfig)}
    # kubectl flushes its table when the watch ends: bound the watch, then read.
    proc = subprocess.Popen(
        ["kubectl", "-n", ns, "get", "cm", "-w", "--output-watch-events", "--request-timeout=8s"],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    time.sleep(2)
    api_server.kubectl("-n", ns, "create", "configmap", "watched")
    api_server.kubectl("-n", ns, "delete", "configmap", "watched")
    out, _ = proc.communicate(timeout=30)
    lines = [line.split()[:2] for line in out.splitlines() if not line.startswith("EVENT")]
    assert lines == [["ADDED", "first"], ["ADDED", "watched"], ["DELETED", "watched"]]


def test_cascade_foreground_deletes_dependents_first(api_server: RunningServer) -> None:
    ns = _ns(api_server)
    owner = json.loads(
        api_server.kubectl("-n", ns, "create", "configmap", "fg", "-o", "json").stdout
    )
    ref = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "name": "fg",
        "uid": owner["metadata"]["uid"],
        "blockOwnerDeletion": True,
    }
    api_server.kubectl(
        "-n",
        ns,
        "create",
        "-f",
        "-",
        input=yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "fg-child", "ownerReferences": [ref]},
            }
        ),
    )
    api_server.kubectl(
        "-n", ns, "delete", "cm", "fg", "--cascade=foreground", "--wait=true", "--timeout=60s"
    )
    for name in ("fg", "fg-child"):
        res = api_server.kubectl("-n", ns, "get", "cm", name, check=False)
        assert res.returncode != 0 and "NotFound" in res.stderr


def test_delete_wait_returns_when_finalizer_released(api_server: RunningServer) -> None:
    import subprocess

    ns = _ns(api_server)
    api_server.kubectl(
        "-n",
        ns,
        "create",
        "-f",
        "-",
        input=yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "w", "finalizers": ["example.com/hold"]},
            }
        ),
    )
    env = {**__import__("os").environ, "KUBECONFIG": str(api_server.kubeconfig)}
    proc = subprocess.Popen(
        ["kubectl", "-n", ns, "delete", "cm", "w", "--wait=true", "--timeout=60s"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    time.sleep(2)
    assert proc.poll() is None, "delete --wait returned while the finalizer still held"
    api_server.kubectl(
        "-n", ns, "patch", "cm", "w", "--type=merge", "-p", '{"metadata":{"finalizers":null}}'
    )
    assert proc.wait(30) == 0
