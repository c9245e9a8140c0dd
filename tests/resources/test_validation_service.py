"""Service and Endpoints rules."""

from __future__ import annotations

import copy
from typing import Any

from hypernetes.resources import defaults, validation
from hypernetes.resources.registry import BUILTIN, ResourceType

Obj = dict[str, Any]


def rt(kind: str) -> ResourceType:
    return next(r for r in BUILTIN if r.kind == kind)


def service(**spec: Any) -> Obj:
    base: Obj = {"ports": [{"port": 80}], "selector": {"app": "web"}}
    base.update(spec)
    return {"metadata": {"name": "web", "namespace": "n"}, "spec": base}


def check(obj: Obj, old: Obj | None = None, kind: str = "Service") -> list[validation.FieldError]:
    defaults.default(rt(kind), obj)
    result = validation.validate(rt(kind), obj, old=old)
    assert not result.bad_request, result.bad_request
    return result.errors


def fields(obj: Obj, old: Obj | None = None) -> list[tuple[str, str]]:
    return [(e.field, e.type) for e in check(obj, old)]


def test_valid_services() -> None:
    assert check(service()) == []
    assert check(service(ports=[], clusterIP="None")) == []  # headless needs no ports
    assert check(service(ports=[], type="ExternalName", externalName="db.example.com.")) == []


def test_ports_are_required() -> None:
    assert fields(service(ports=[])) == [("spec.ports", "FieldValueRequired")]


def test_type_enum() -> None:
    [err] = check(service(type="Magic"))
    assert str(err) == (
        'spec.type: Unsupported value: "Magic": supported values: "ClusterIP", '
        '"ExternalName", "LoadBalancer", "NodePort"'
    )


def test_external_name() -> None:
    obj = service(type="ExternalName", externalName="", clusterIP="10.0.0.1")
    assert fields(obj) == [
        ("spec.clusterIP", "FieldValueForbidden"),
        ("spec.externalName", "FieldValueRequired"),
    ]
    assert fields(service(type="ExternalName", externalName="Bad_Host")) == [
        ("spec.externalName", "FieldValueInvalid")
    ]


def test_port_rules() -> None:
    ports = [
        {"port": 80, "name": "http"},
        {"port": 0, "name": "http"},
        {"port": 443},
        {"port": 80, "name": "dup", "protocol": "ICMP"},
        {"port": 81, "name": "Bad_Name", "targetPort": 70000},
        {"port": 82, "name": "named", "targetPort": "Bad_Port"},
        {"port": 80, "name": "again"},
    ]
    assert fields(service(ports=ports)) == [
        ("spec.ports[1].name", "FieldValueDuplicate"),
        ("spec.ports[1].port", "FieldValueInvalid"),
        ("spec.ports[1].targetPort", "FieldValueInvalid"),  # defaulted from the port, as kube
        ("spec.ports[2].name", "FieldValueRequired"),
        ("spec.ports[3].protocol", "FieldValueNotSupported"),
        ("spec.ports[4].name", "FieldValueInvalid"),
        ("spec.ports[4].targetPort", "FieldValueInvalid"),
        ("spec.ports[5].targetPort", "FieldValueInvalid"),
        ("spec.ports[6]", "FieldValueDuplicate"),
    ]


def test_a_single_port_needs_no_name() -> None:
    assert check(service(ports=[{"port": 8080, "targetPort": "http"}])) == []


def test_node_ports_and_traffic_policies() -> None:
    obj = service(ports=[{"port": 80, "nodePort": 30000}], externalTrafficPolicy="Local")
    assert fields(obj) == [
        ("spec.ports[0].nodePort", "FieldValueForbidden"),
        ("spec.externalTrafficPolicy", "FieldValueInvalid"),
    ]
    assert check(service(type="NodePort", ports=[{"port": 80, "nodePort": 30000}])) == []
    assert fields(service(sessionAffinity="Sticky", internalTrafficPolicy="Nearby")) == [
        ("spec.sessionAffinity", "FieldValueNotSupported"),
        ("spec.internalTrafficPolicy", "FieldValueNotSupported"),
    ]


def test_cluster_ip_syntax() -> None:
    assert fields(service(clusterIP="10.0.0.300")) == [("spec.clusterIP", "FieldValueInvalid")]
    assert fields(service(clusterIP="10.0.0.3", clusterIPs=["10.0.0.4"])) == [
        ("spec.clusterIPs", "FieldValueInvalid")
    ]


def test_cluster_ip_is_immutable_once_set() -> None:
    old = service(clusterIP="10.96.0.10", clusterIPs=["10.96.0.10"])
    assert check(old) == []
    new = copy.deepcopy(old)
    new["spec"]["clusterIP"] = "10.96.0.11"
    new["spec"]["clusterIPs"] = ["10.96.0.11"]
    [err] = check(new, old)
    assert str(err) == 'spec.clusterIP: Invalid value: "10.96.0.11": field is immutable'
    new = copy.deepcopy(old)
    new["spec"]["ports"][0]["port"] = 81
    new["spec"]["ports"][0]["targetPort"] = 81
    assert check(new, old) == []
    unassigned = service()
    assert check(unassigned) == []
    assert check(copy.deepcopy(old), unassigned) == []  # allocation sets it once


def test_endpoints() -> None:
    obj = {
        "metadata": {"name": "web", "namespace": "n"},
        "subsets": [
            {
                "addresses": [{"ip": "10.0.0.1"}, {"ip": "nowhere"}],
                "ports": [{"port": 80, "name": "a"}, {"port": 0}],
            }
        ],
    }
    assert [(e.field, e.type) for e in check(obj, kind="Endpoints")] == [
        ("subsets[0].addresses[1].ip", "FieldValueInvalid"),
        ("subsets[0].ports[1].name", "FieldValueRequired"),
        ("subsets[0].ports[1].port", "FieldValueInvalid"),
    ]
    assert obj["subsets"][0]["ports"][0]["protocol"] == "TCP"
