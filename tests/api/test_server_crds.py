"""CustomResourceDefinitions: dynamic serving, schema validation, defaults, status."""

from __future__ import annotations

import json
import time
import uuid

import yaml
from tests.conftest import RunningServer


def _crd(group: str) -> dict:
    schema = {
        "type": "object",
        "properties": {
            "spec": {
                "type": "object",
                "required": ["cronSpec"],
                "properties": {
                    "cronSpec": {"type": "string", "pattern": "^[0-9*/ ,-]+$"},
                    "replicas": {"type": "integer", "minimum": 1, "maximum": 10, "default": 1},
                    "image": {"type": "string"},
                },
            },
            "status": {"type": "object", "properties": {"ready": {"type": "boolean"}}},
        },
    }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"crontabs.{group}"},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {
                "plural": "crontabs",
                "singular": "crontab",
                "kind": "CronTab",
                "shortNames": ["ct"],
            },
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": schema},
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": [
                        {"name": "Spec", "type": "string", "jsonPath": ".spec.cronSpec"},
                        {"name": "Replicas", "type": "integer", "jsonPath": ".spec.replicas"},
                    ],
                }
            ],
        },
    }


def _wait_served(server: RunningServer, resource: str) -> None:
    deadline = time.time() + 20
    while time.time() < deadline:
        if server.kubectl("get", resource, "-A", check=False).returncode == 0:
            return
        time.sleep(0.3)
    raise AssertionError(f"{resource} never served")


def _setup(server: RunningServer) -> tuple[str, str]:
    group = f"g{uuid.uuid4().hex[:6]}.example.com"
    server.kubectl("create", "-f", "-", input=json.dumps(_crd(group)))
    server.kubectl("wait", "--for=condition=Established", f"crd/crontabs.{group}", "--timeout=30s")
    _wait_served(server, f"crontabs.{group}")
    ns = f"crd-{uuid.uuid4().hex[:6]}"
    server.kubectl("create", "namespace", ns)
    return group, ns


def _crontab(group: str, name: str, spec: dict) -> str:
    return yaml.safe_dump(
        {"apiVersion": f"{group}/v1", "kind": "CronTab", "metadata": {"name": name}, "spec": spec}
    )


def test_custom_resources_are_served_validated_and_defaulted(api_server: RunningServer) -> None:
    group, ns = _setup(api_server)
    api_server.kubectl(
        "-n",
        ns,
        "create",
        "-f",
        "-",
        input=_crontab(group, "ok", {"cronSpec": "*/5 * * * *", "image": "x"}),
    )
    obj = json.loads(
        api_server.kubectl("-n", ns, "get", f"crontabs.{group}", "ok", "-o", "json").stdout
    )
    assert obj["spec"]["replicas"] == 1  # schema default
    assert obj["metadata"]["generation"] == 1
    table = api_server.kubectl("-n", ns, "get", f"crontabs.{group}").stdout.splitlines()
    # As kube: declared printer columns replace the default AGE column.
    assert table[0].split() == ["NAME", "SPEC", "REPLICAS"]
    assert table[1].split()[:2] == ["ok", "*/5"]
    for bad, why in (
        ({"cronSpec": "x"}, "spec.cronSpec"),
        ({"image": "x"}, "spec.cronSpec"),
        ({"cronSpec": "* * * * *", "replicas": 50}, "spec.replicas"),
    ):
        res = api_server.kubectl(
            "-n", ns, "create", "-f", "-", input=_crontab(group, "bad", bad), check=False
        )
        assert res.returncode != 0 and why in res.stderr, res.stderr
    assert (
        api_server.kubectl("-n", ns, "get", f"crontabs.{group}", "bad", check=False).returncode != 0
    )


def test_custom_resource_status_subresource(api_server: RunningServer) -> None:
    group, ns = _setup(api_server)
    api_server.kubectl(
        "-n", ns, "create", "-f", "-", input=_crontab(group, "s", {"cronSpec": "* * * * *"})
    )
    # status is ignored on the main resource...
    api_server.kubectl(
        "-n",
        ns,
        "patch",
        f"crontabs.{group}",
        "s",
        "--type=merge",
        "-p",
        '{"status":{"ready":true}}',
    )
    obj = json.loads(
        api_server.kubectl("-n", ns, "get", f"crontabs.{group}", "s", "-o", "json").stdout
    )
    assert "status" not in obj
    # ...and set through /status, without bumping the generation.
    api_server.kubectl(
        "-n",
        ns,
        "patch",
        f"crontabs.{group}",
        "s",
        "--subresource=status",
        "--type=merge",
        "-p",
        '{"status":{"ready":true}}',
    )
    obj = json.loads(
        api_server.kubectl("-n", ns, "get", f"crontabs.{group}", "s", "-o", "json").stdout
    )
    assert obj["status"] == {"ready": True} and obj["metadata"]["generation"] == 1


def test_deleting_a_crd_deletes_its_objects(api_server: RunningServer) -> None:
    group, ns = _setup(api_server)
    api_server.kubectl(
        "-n", ns, "create", "-f", "-", input=_crontab(group, "x", {"cronSpec": "* * * * *"})
    )
    api_server.kubectl("delete", "crd", f"crontabs.{group}", "--timeout=60s")
    gone = api_server.kubectl("get", "crd", f"crontabs.{group}", check=False)
    assert gone.returncode != 0 and "NotFound" in gone.stderr
    again = api_server.kubectl("-n", ns, "get", f"crontabs.{group}", check=False)
    assert again.returncode != 0


def test_invalid_crd_is_rejected(api_server: RunningServer) -> None:
    crd = _crd("bad.example.com")
    crd["metadata"]["name"] = "wrong-name.bad.example.com"
    res = api_server.kubectl("create", "-f", "-", input=json.dumps(crd), check=False)
    assert res.returncode != 0 and "metadata.name" in res.stderr
