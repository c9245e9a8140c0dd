"""The Endpoints controller: addresses from the selected pods, readiness, named ports."""

from __future__ import annotations

import asyncio
from typing import Any

from hypernetes.client import PODS, SERVICES, Client, NotFound
from hypernetes.controllers.endpoints import ENDPOINTS, endpoint_subsets

from .conftest import eventually, kubelet, node_body, unique


def web_pod(name: str, app: str, ready: bool) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": app, "ready": str(ready).lower()}},
        "spec": {
            "containers": [
                {
                    "name": "web",
                    "image": "nginx",
                    "ports": [{"name": "http", "containerPort": 8080}],
                }
            ]
        },
    }


def service(app: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web", "labels": {"team": "a"}},
        "spec": {
            "selector": {"app": app},
            "ports": [
                {"name": "http", "port": 80, "targetPort": "http"},
                {"name": "metrics", "port": 9090, "targetPort": 9100},
            ],
            **spec,
        },
    }


def test_subsets_group_by_resolved_ports() -> None:
    svc = service("x")
    with_port = web_pod("a", "x", True) | {"status": {"podIP": "10.0.0.2"}}
    without = web_pod("b", "x", True)
    without["spec"]["containers"][0]["ports"] = []
    without["status"] = {"podIP": "10.0.0.3"}
    no_ip = web_pod("c", "x", True)
    for pod in (with_port, without, no_ip):
        pod["metadata"]["uid"] = pod["metadata"]["name"]
    subsets = endpoint_subsets(svc, [with_port, without, no_ip])
    ports = [[p["port"] for p in s["ports"]] for s in subsets]
    assert sorted(ports) == [[8080, 9100], [9100]]
    assert all(
        "addresses" not in s or s["addresses"][0]["ip"] in ("10.0.0.2", "10.0.0.3") for s in subsets
    )


async def test_endpoints_follow_pods(client: Client, namespace: str) -> None:
    app = unique("app")

    def ready(pod: dict[str, Any]) -> bool:
        return bool(pod["metadata"].get("labels", {}).get("ready") == "true")

    async with kubelet(client, [node_body(unique("n"))], ready=ready):
        await client.create(SERVICES, service(app), namespace)
        await client.create(PODS, web_pod("up", app, True), namespace)
        await client.create(PODS, web_pod("warming", app, False), namespace)
        await client.create(PODS, web_pod("other", unique("other"), True), namespace)

        async def listed() -> dict[str, Any] | None:
            try:
                ep = await client.get(ENDPOINTS, "web", namespace)
            except NotFound:
                return None
            subsets = ep.get("subsets") or []
            if (
                len(subsets) == 1
                and subsets[0].get("addresses")
                and (subsets[0].get("notReadyAddresses"))
            ):
                return ep
            return None

        ep = await eventually(listed, "ready and not-ready addresses")
        subset = ep["subsets"][0]
        assert [a["targetRef"]["name"] for a in subset["addresses"]] == ["up"]
        assert [a["targetRef"]["name"] for a in subset["notReadyAddresses"]] == ["warming"]
        assert subset["addresses"][0]["ip"].startswith("10.77.")
        assert subset["addresses"][0]["nodeName"]
        assert subset["ports"] == [
            {"name": "http", "port": 8080, "protocol": "TCP"},
            {"name": "metrics", "port": 9100, "protocol": "TCP"},
        ]
        assert ep["metadata"]["labels"] == {"team": "a"}

        # The warming pod becomes ready (its label tells the fake kubelet so).
        await client.patch(PODS, "warming", {"metadata": {"labels": {"ready": "true"}}}, namespace)

        async def both_ready() -> bool:
            ep = await client.get(ENDPOINTS, "web", namespace)
            subset = (ep.get("subsets") or [{}])[0]
            return len(subset.get("addresses") or []) == 2 and not subset.get("notReadyAddresses")

        await eventually(both_ready, "both pods ready")

        await client.delete(PODS, "up", namespace)

        async def one_left() -> bool:
            ep = await client.get(ENDPOINTS, "web", namespace)
            subset = (ep.get("subsets") or [{}])[0]
            return [a["targetRef"]["name"] for a in subset.get("addresses") or []] == ["warming"]

        await eventually(one_left, "the deleted pod to leave the endpoints")

        await client.delete(SERVICES, "web", namespace)

        async def gone() -> bool:
            try:
                await client.get(ENDPOINTS, "web", namespace)
            except NotFound:
                return True
            return False

        await eventually(gone, "the endpoints to go with the service")


async def test_selectorless_service_is_left_alone(client: Client, namespace: str) -> None:
    manual = {
        "apiVersion": "v1",
        "kind": "Endpoints",
        "metadata": {"name": "external"},
        "subsets": [{"addresses": [{"ip": "192.0.2.10"}], "ports": [{"port": 5432}]}],
    }
    await client.create(ENDPOINTS, manual, namespace)
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "external"},
           "spec": {"ports": [{"port": 5432}]}}  # fmt: skip
    await client.create(SERVICES, svc, namespace)
    await asyncio.sleep(1.0)  # time enough for a controller that wrongly takes it over
    ep = await client.get(ENDPOINTS, "external", namespace)
    assert ep["subsets"][0]["addresses"] == [{"ip": "192.0.2.10"}]
