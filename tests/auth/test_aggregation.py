"""ClusterRole aggregation: the pure function, the bootstrap roles, the controller with kubectl."""

from __future__ import annotations

import json
import time
from typing import Any

from tests.conftest import RunningServer

from hypernetes.api.authorization import bootstrap_cluster_roles
from hypernetes.auth.aggregation import aggregate

TO = "rbac.authorization.k8s.io/aggregate-to-"


def role(name: str, labels: dict[str, str], rules: list[dict[str, Any]],
         selectors: list[dict[str, Any]] | None = None) -> dict[str, Any]:  # fmt: skip
    obj: dict[str, Any] = {"metadata": {"name": name, "labels": labels}, "rules": rules}
    if selectors is not None:
        obj["aggregationRule"] = {"clusterRoleSelectors": selectors}
    return obj


def rule(resource: str, verb: str = "get") -> dict[str, Any]:
    return {"apiGroups": [""], "resources": [resource], "verbs": [verb]}


def test_aggregate_selects_by_labels_in_name_order_without_repeats() -> None:
    parent = role("parent", {"x": "1"}, [rule("stale")], [
        {"matchLabels": {"part": "yes"}},
        {"matchExpressions": [{"key": "tier", "operator": "In", "values": ["a", "b"]}]},
    ])  # fmt: skip
    roles = [
        parent,
        role("z-part", {"part": "yes"}, [rule("pods"), rule("secrets")]),
        role("a-part", {"tier": "b"}, [rule("secrets")]),
        role("other", {"part": "no", "tier": "c"}, [rule("nodes")]),
        role(
            "broken",
            {},
            [rule("nodes")],
            [{"matchExpressions": [{"key": "k", "operator": "Bogus"}]}],
        ),
    ]
    assert aggregate(parent, roles) == [rule("secrets"), rule("pods")]
    bogus = [{"matchExpressions": [{"key": "part", "operator": "Bogus"}]}]
    assert aggregate(role("broken", {}, [], bogus), roles) == [], "a broken selector: nothing"
    selfish = role("self", {"part": "yes"}, [rule("own")], [{"matchLabels": {"part": "yes"}}])
    assert rule("own") not in aggregate(selfish, [selfish])
    assert aggregate(role("none", {}, [], []), roles) == []


def test_bootstrap_admin_edit_view_aggregate_as_in_kubernetes() -> None:
    roles = {r["metadata"]["name"]: r for r in bootstrap_cluster_roles()}
    for name in ("admin", "edit", "view"):
        selectors = roles[name]["aggregationRule"]["clusterRoleSelectors"]
        assert selectors == [{"matchLabels": {TO + name: "true"}}]
        assert roles[f"system:aggregate-to-{name}"]["metadata"]["labels"][TO + name] == "true"
    assert roles["view"]["metadata"]["labels"][TO + "edit"] == "true"
    assert roles["edit"]["metadata"]["labels"][TO + "admin"] == "true"
    view, edit, admin = (roles[n]["rules"] for n in ("view", "edit", "admin"))
    assert view and all(r in edit for r in view) and all(r in admin for r in edit)
    assert not any("secrets" in r.get("resources", []) for r in view)
    assert any("rolebindings" in r.get("resources", []) for r in admin)
    assert not any("rolebindings" in r.get("resources", []) for r in edit)


def rules_of(server: RunningServer, name: str) -> list[dict[str, Any]]:
    out = server.kubectl("get", "clusterrole", name, "-o", "json").stdout
    return json.loads(out).get("rules") or []


def eventually(check: Any, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out waiting for the aggregation controller"
        time.sleep(0.2)


def apply(server: RunningServer, obj: dict[str, Any]) -> None:
    obj = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", **obj}
    server.kubectl("apply", "-f", "-", input=json.dumps(obj))


def test_labelled_roles_flow_into_view_edit_and_admin(api_server: RunningServer) -> None:
    extra = {"apiGroups": ["agg.example.com"], "resources": ["widgets"], "verbs": ["get"]}
    apply(api_server, role("agg-test-widgets", {TO + "view": "true"}, [extra]))
    try:
        for name in ("view", "edit", "admin"):
            eventually(lambda n=name: extra in rules_of(api_server, n))
        who = api_server.kubectl("auth", "can-i", "get", "widgets.agg.example.com",
                                 "--as=agg-someone", "-n", "default", check=False)  # fmt: skip
        assert who.stdout.startswith("no")
    finally:
        api_server.kubectl("delete", "clusterrole", "agg-test-widgets")
    for name in ("view", "edit", "admin"):
        eventually(lambda n=name: extra not in rules_of(api_server, n))


def test_a_custom_aggregated_role_grants_what_it_collects(api_server: RunningServer) -> None:
    apply(api_server, role("agg-parent", {}, [], [{"matchLabels": {"agg-test": "parent"}}]))
    api_server.kubectl("create", "clusterrolebinding", "agg-parent-erin",
                       "--clusterrole=agg-parent", "--user=agg-erin")  # fmt: skip
    try:

        def can() -> str:
            return api_server.kubectl("auth", "can-i", "list", "configmaps", "-A",
                                      "--as=agg-erin", check=False).stdout.strip()  # fmt: skip

        assert can().startswith("no")
        apply(api_server, role("agg-child", {"agg-test": "parent"}, [rule("configmaps", "list")]))
        eventually(lambda: can() == "yes")
        # Someone edits the aggregated role's rules by hand: the controller puts them back.
        api_server.kubectl("patch", "clusterrole", "agg-parent", "--type=merge", "-p",
                           '{"rules": []}')  # fmt: skip
        eventually(lambda: rules_of(api_server, "agg-parent") == [rule("configmaps", "list")])
        api_server.kubectl("delete", "clusterrole", "agg-child")
        eventually(lambda: can().startswith("no"))
    finally:
        api_server.kubectl("delete", "clusterrolebinding", "agg-parent-erin", check=False)
        api_server.kubectl("delete", "clusterrole", "agg-parent", "agg-child", check=False)
