"""The `Network` kind at the API: admission (tenant, defaults, validation) and pod annotations."""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from apihelpers import (
    InProcess,
    create_pod,
    grant_networks,
    in_process_server,
    make_namespace,
    make_tenant,
    network,
    pod,
)

from hypernetes.client import NETWORKS, ApiError, Client
from hypernetes.network import resource as net


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[InProcess]:
    async with in_process_server(tmp_path / "data") as inproc:
        admin = inproc.admin()
        for tenant in ("acme", "beta"):
            await make_tenant(admin, tenant)
            await grant_networks(admin, tenant)
        yield inproc


async def rejected(call: Any) -> ApiError:
    with pytest.raises(ApiError) as info:
        await call
    return info.value


def fields(exc: ApiError) -> list[str]:
    return [c["field"] for c in exc.details.get("causes", [])]


async def test_tenant_principal_gets_its_tenant_default_gateway_label_and_finalizer(
    api: InProcess,
) -> None:
    alice = api.tenant_user("alice", "acme")
    created = await alice.create(NETWORKS, network("shop", "10.50.0.0/24"))
    assert created["spec"] == {"tenant": "acme", "cidr": "10.50.0.0/24", "gateway": "10.50.0.1"}
    assert created["metadata"]["labels"][net.TENANT_LABEL] == "acme"
    assert net.FINALIZER in created["metadata"]["finalizers"]
    assert created["status"] == {"phase": "Pending"}  # no controller runs here
    # Naming another tenant is forbidden to a tenant principal.
    exc = await rejected(alice.create(NETWORKS, network("steal", "10.51.0.0/24", "beta")))
    assert (exc.code, exc.reason) == (403, "Forbidden")
    # Squatting another tenant's default name is refused.
    exc = await rejected(alice.create(NETWORKS, network("beta-default", "10.52.0.0/24")))
    assert (exc.code, exc.reason, fields(exc)) == (422, "Invalid", ["metadata.name"])
    long_name = "n" + "x" * 70  # a valid object name, too long to label kernel objects
    exc = await rejected(alice.create(NETWORKS, network(long_name, "10.52.0.0/24")))
    assert (exc.code, exc.reason, fields(exc)) == (422, "Invalid", ["metadata.name"])


async def test_platform_admin_must_name_an_existing_tenant(api: InProcess) -> None:
    admin = api.admin()
    exc = await rejected(admin.create(NETWORKS, network("orphan", "10.53.0.0/24")))
    assert (exc.code, exc.reason, fields(exc)) == (422, "Invalid", ["spec.tenant"])
    exc = await rejected(admin.create(NETWORKS, network("ghost", "10.53.0.0/24", "nobody")))
    assert (exc.code, fields(exc)) == (422, ["spec.tenant"])
    assert "not found" in exc.message.lower()
    ok = await admin.create(
        NETWORKS, network("beta-x", "10.53.0.0/24", "beta", gateway="10.53.0.9")
    )
    assert ok["spec"]["gateway"] == "10.53.0.9"
    assert ok["metadata"]["labels"][net.TENANT_LABEL] == "beta"


@pytest.mark.parametrize(
    ("spec", "field", "why"),
    [
        ({"cidr": "10.60.0.1/24"}, "spec.cidr", "network address"),
        ({"cidr": "10.60.0.0/30"}, "spec.cidr", "prefix length"),
        ({"cidr": "10.0.0.0/7"}, "spec.cidr", "prefix length"),
        ({"cidr": "fd00::/64"}, "spec.cidr", "IPv4"),
        ({"cidr": "10.60.0.0"}, "spec.cidr", "prefix length"),
        ({"cidr": "10.96.4.0/24"}, "spec.cidr", "service range"),
        ({"cidr": "100.127.3.0/24"}, "spec.cidr", "transit range"),
        ({"cidr": "127.0.0.0/8"}, "spec.cidr", "unicast"),
        ({"cidr": "10.60.0.0/24", "gateway": "10.61.0.1"}, "spec.gateway", "host address"),
        ({"cidr": "10.60.0.0/24", "gateway": "10.60.0.255"}, "spec.gateway", "host address"),
        ({"cidr": "10.60.0.0/24", "gateway": "10.60.0.0"}, "spec.gateway", "host address"),
        ({"cidr": "10.60.0.0/24", "gateway": "nope"}, "spec.gateway", "IPv4"),
    ],
)
async def test_validation_names_the_field(
    api: InProcess, spec: dict[str, str], field: str, why: str
) -> None:
    alice = api.tenant_user("alice", "acme")
    exc = await rejected(alice.create(NETWORKS, network("bad", **spec)))
    assert (exc.code, exc.reason) == (422, "Invalid")
    assert fields(exc) == [field] and why in exc.message, exc.message


async def test_host_routes_and_addresses_are_reserved(api: InProcess) -> None:
    ranges = await asyncio.to_thread(net.host_ranges)
    host = [r for what, r in ranges if what == "a host route"]
    assert host, "this machine has no non-default IPv4 route to test against"
    clash = host[0]
    cidr = ipaddress.IPv4Network(f"{clash.network_address}/{max(clash.prefixlen, 8)}")
    exc = await rejected(api.tenant_user("a", "acme").create(NETWORKS, network("h", str(cidr))))
    assert exc.code == 422 and "host route" in exc.message


async def test_overlap_only_matters_within_a_tenant(api: InProcess) -> None:
    alice, bob = api.tenant_user("alice", "acme"), api.tenant_user("bob", "beta")
    await alice.create(NETWORKS, network("acme-a", "10.70.0.0/16"))
    exc = await rejected(alice.create(NETWORKS, network("acme-b", "10.70.8.0/24")))
    assert (exc.code, fields(exc)) == (422, ["spec.cidr"]) and "acme-a" in exc.message
    # Another tenant may use exactly the same range.
    same = await bob.create(NETWORKS, network("beta-a", "10.70.0.0/16"))
    assert same["spec"]["tenant"] == "beta"


async def test_spec_is_immutable_and_the_finalizer_is_the_controllers(api: InProcess) -> None:
    alice = api.tenant_user("alice", "acme")
    await alice.create(NETWORKS, network("acme-imm", "10.71.0.0/24"))
    for patch in ({"spec": {"cidr": "10.72.0.0/24"}}, {"spec": {"tenant": "beta"}},
                  {"spec": {"gateway": "10.71.0.7"}}):  # fmt: skip
        exc = await rejected(alice.patch(NETWORKS, "acme-imm", patch))
        assert (exc.code, exc.reason) == (422, "Invalid") and "immutable" in exc.message
    exc = await rejected(alice.patch(NETWORKS, "acme-imm", {"metadata": {"finalizers": None}}))
    assert (exc.code, exc.reason) == (403, "Forbidden")
    relabel = {"metadata": {"labels": {net.TENANT_LABEL: "beta"}}}
    kept = await alice.patch(NETWORKS, "acme-imm", relabel)
    assert kept["metadata"]["labels"][net.TENANT_LABEL] == "acme"
    # Nor write its status: a forged VNI would join another tenant's VXLAN segment.
    forged = {"status": {"phase": "Ready", "vni": 4096}}
    exc = await rejected(alice.patch(NETWORKS, "acme-imm", forged, subresource="status"))
    assert (exc.code, exc.reason) == (403, "Forbidden") and "network controller" in exc.message
    # A tenant principal cannot touch another tenant's network.
    bob = api.tenant_user("bob", "beta")
    exc = await rejected(bob.patch(NETWORKS, "acme-imm", {"metadata": {"labels": {"x": "y"}}}))
    assert exc.code == 403
    # Deleting only marks it: the finalizer holds it until the controller lets go.
    await alice.delete(NETWORKS, "acme-imm")
    held = await alice.get(NETWORKS, "acme-imm")
    assert held["metadata"].get("deletionTimestamp")


async def test_pods_may_only_name_their_own_tenants_live_network(api: InProcess) -> None:
    admin = api.admin()
    alice = api.tenant_user("alice", "acme")
    await admin.create(NETWORKS, network("acme-web", "10.73.0.0/24", "acme"))
    await admin.create(NETWORKS, network("beta-web", "10.73.0.0/24", "beta"))
    await make_namespace(admin, "acme-ns", "acme")
    await make_namespace(admin, "plain-ns", None)
    ok = await create_pod(alice, "acme-ns", pod("p1", network="acme-web"))
    assert ok["metadata"]["annotations"][net.NETWORK_ANNOTATION] == "acme-web"
    field = f"metadata.annotations[{net.NETWORK_ANNOTATION}]"
    for bad in ("beta-web", "missing"):
        exc = await rejected(create_pod(alice, "acme-ns", pod(f"p-{bad}", network=bad)))
        assert (exc.code, fields(exc)) == (422, [field]) and "not found" in exc.message
    # A pod cannot claim another tenant by label (to land on its default network).
    exc = await rejected(create_pod(alice, "acme-ns", pod("p-forged", tenant="beta")))
    assert (exc.code, exc.reason) == (403, "Forbidden") and "label" in exc.message
    exc = await rejected(create_pod(admin, "plain-ns", pod("p-forged", tenant="beta")))
    assert exc.code == 403
    labelled = await create_pod(alice, "acme-ns", pod("p-labelled", tenant="acme"))
    assert labelled["metadata"]["labels"][net.TENANT_LABEL] == "acme"
    # The annotation cannot change afterwards.
    change = {"metadata": {"annotations": {net.NETWORK_ANNOTATION: "acme-default"}}}
    exc = await rejected(alice.patch(net_pods(), "p1", change, "acme-ns"))
    assert exc.code == 422 and "immutable" in exc.message
    # A pod of no tenant cannot join a tenant network.
    exc = await rejected(create_pod(admin, "plain-ns", pod("p2", network="acme-web")))
    assert exc.code == 422 and "no tenant" in exc.message
    # Nor may a pod join a network that is being deleted.
    await admin.delete(NETWORKS, "acme-web")
    exc = await rejected(create_pod(alice, "acme-ns", pod("p3", network="acme-web")))
    assert exc.code == 422 and "being deleted" in exc.message


def net_pods() -> Any:
    from hypernetes.client import PODS

    return PODS


async def test_network_for_pod_never_crosses_tenants(api: InProcess) -> None:
    nets = [
        network("acme-default", "10.0.0.0/24", "acme"),
        network("beta-default", "10.0.0.0/24", "beta"),
        network("beta-web", "10.1.0.0/24", "beta"),
    ]
    for n in nets:
        n["metadata"]["name"] = n["metadata"]["name"]
    p = pod("x", tenant="acme")
    assert net.name_of(net.network_for_pod(p, nets) or {}) == "acme-default"
    p = pod("x", tenant="acme", network="beta-web")
    assert net.network_for_pod(p, nets) is None
    p = pod("x", network="beta-web")
    assert net.network_for_pod(p, nets) is None  # no tenant known
    assert net.name_of(net.network_for_pod(p, nets, tenant="beta") or {}) == "beta-web"
    # The namespace's tenant wins over the pod's label.
    p = pod("x", tenant="beta", network="beta-web")
    assert net.network_for_pod(p, nets, tenant="acme") is None
    p["metadata"]["namespace"] = "shop"
    assert net.pod_tenant(p, {"shop": "acme"}) == "acme" and net.pod_tenant(p) == "beta"


async def test_kubectl_table_shows_tenant_cidr_and_phase(api: InProcess) -> None:
    admin: Client = api.admin()
    await admin.create(NETWORKS, network("acme-tbl", "10.74.0.0/24", "acme"))
    table = await admin.request(
        "GET",
        NETWORKS.path(None, "acme-tbl"),
        accept="application/json;as=Table;v=v1;g=meta.k8s.io",
    )
    names = [c["name"] for c in table["columnDefinitions"]]
    assert names[:4] == ["Name", "Tenant", "CIDR", "Gateway"]
    assert table["rows"][0]["cells"][1:4] == ["acme", "10.74.0.0/24", "10.74.0.1"]
