"""Networks through an unmodified kubectl against `hypernetes server` (controllers included)."""

from __future__ import annotations

import json
import time
import uuid

from tests.conftest import RunningServer


def wait_for(server: RunningServer, name: str, phase: str, timeout: float = 45) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        out = server.kubectl("get", "network", name, "-o", "json", check=False)
        if out.returncode == 0:
            obj = json.loads(out.stdout)
            if (obj.get("status") or {}).get("phase") == phase:
                return obj
        if time.monotonic() > deadline:
            raise AssertionError(f"network {name} never reached {phase}: {out.stdout}{out.stderr}")
        time.sleep(0.3)


def test_tenant_default_network_and_errors_with_kubectl(api_server: RunningServer) -> None:
    tenant = f"k{uuid.uuid4().hex[:8]}"
    body = {"apiVersion": "hypernetes.io/v1", "kind": "Tenant", "metadata": {"name": tenant}}
    api_server.kubectl("apply", "-f", "-", input=json.dumps(body))
    default = wait_for(api_server, f"{tenant}-default", "Ready")
    assert default["spec"] == {"tenant": tenant, "cidr": "10.244.0.0/24", "gateway": "10.244.0.1"}
    assert default["status"]["vni"] >= 4096

    table = api_server.kubectl("get", "networks", f"{tenant}-default", "-o", "wide").stdout
    header, row = table.splitlines()
    assert header.split()[:6] == ["NAME", "TENANT", "CIDR", "GATEWAY", "PHASE", "VNI"]
    assert row.split()[:6] == [f"{tenant}-default", tenant, "10.244.0.0/24", "10.244.0.1", "Ready",
                               str(default["status"]["vni"])]  # fmt: skip

    bad = {"apiVersion": "hypernetes.io/v1", "kind": "Network",
           "metadata": {"name": f"{tenant}-bad"},
           "spec": {"tenant": tenant, "cidr": "10.244.0.7/24"}}  # fmt: skip
    out = api_server.kubectl("create", "-f", "-", input=json.dumps(bad), check=False)
    assert out.returncode != 0
    assert "spec.cidr" in out.stderr and "network address" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1

    # A network nobody uses goes at once; a tenant's default comes back (a new object).
    extra = {**bad, "metadata": {"name": f"{tenant}-extra"},
             "spec": {"tenant": tenant, "cidr": "10.245.0.0/24"}}  # fmt: skip
    api_server.kubectl("create", "-f", "-", input=json.dumps(extra))
    wait_for(api_server, f"{tenant}-extra", "Ready")
    api_server.kubectl("delete", "network", f"{tenant}-extra", "--wait=true", timeout=60)
    gone = api_server.kubectl("get", "network", f"{tenant}-extra", check=False)
    assert gone.returncode != 0 and "NotFound" in gone.stderr
    api_server.kubectl("delete", "network", f"{tenant}-default", "--wait=true", timeout=60)
    again = wait_for(api_server, f"{tenant}-default", "Ready")
    assert again["metadata"]["uid"] != default["metadata"]["uid"]
