"""Field selectors: kube's syntax, per-kind field sets, matching and error messages."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from hypernetes.resources import fields
from hypernetes.resources.fields import EQUALS, NOT_EQUALS, FieldSelectorError, Requirement
from hypernetes.resources.registry import BUILTIN, ResourceType


def rt(kind: str) -> ResourceType:
    return next(r for r in BUILTIN if r.kind == kind)


# -- syntax ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("", []),
        ("a=b", [Requirement("a", EQUALS, "b")]),
        ("a==b", [Requirement("a", EQUALS, "b")]),
        ("a!=b", [Requirement("a", NOT_EQUALS, "b")]),
        ("a=", [Requirement("a", EQUALS, "")]),
        ("x=1,a=b", [Requirement("a", EQUALS, "b"), Requirement("x", EQUALS, "1")]),
        ("a=b,,c=d", [Requirement("a", EQUALS, "b"), Requirement("c", EQUALS, "d")]),
        (r"a=x\,y\=z\\w", [Requirement("a", EQUALS, "x,y=z\\w")]),
        (r"a=x\,y,b=2", [Requirement("a", EQUALS, "x,y"), Requirement("b", EQUALS, "2")]),
    ],
)
def test_parse(selector: str, expected: list[Requirement]) -> None:
    assert fields.parse(selector) == expected


@pytest.mark.parametrize(
    ("selector", "message"),
    [
        ("abc", "invalid selector: 'abc'; can't understand 'abc'"),
        ("a=b,c", "invalid selector: 'a=b,c'; can't understand 'c'"),
        ("a<b", "invalid selector: 'a<b'; can't understand 'a<b'"),
        ("a=b=c", "invalid field selector: unescaped character in value: 61"),
        ("a=x,y", "invalid selector: 'a=x,y'; can't understand 'y'"),
        (r"a=x\y", "invalid field selector: invalid escape sequence: \\y"),
        ("a=x\\", "invalid field selector: invalid escape sequence: \\"),
        ("a!==b", "invalid field selector: unescaped character in value: 61"),
    ],
)
def test_parse_errors_carry_kube_messages(selector: str, message: str) -> None:
    with pytest.raises(FieldSelectorError) as err:
        fields.parse(selector)
    assert str(err.value) == message


def test_escape_roundtrip() -> None:
    value = "a,b=c\\d"
    req = Requirement("spec.x", EQUALS, value)
    assert fields.parse(str(req)) == [req]


# -- supported labels -----------------------------------------------------------------------------


def test_supported_sets() -> None:
    assert fields.supported(rt("Pod")) == {
        "metadata.name",
        "metadata.namespace",
        "spec.nodeName",
        "spec.host",
        "spec.restartPolicy",
        "spec.schedulerName",
        "spec.serviceAccountName",
        "spec.hostNetwork",
        "status.phase",
        "status.podIP",
        "status.podIPs",
        "status.nominatedNodeName",
    }
    assert {
        "involvedObject.kind",
        "involvedObject.namespace",
        "involvedObject.name",
        "involvedObject.uid",
        "involvedObject.apiVersion",
        "involvedObject.resourceVersion",
        "involvedObject.fieldPath",
        "reason",
        "reportingComponent",
        "source",
        "type",
    } < fields.supported(rt("Event"))
    assert fields.supported(rt("Namespace")) == {"metadata.name", "status.phase"}
    assert fields.supported(rt("Node")) == {"metadata.name", "spec.unschedulable"}
    assert fields.supported(rt("Secret")) == {"metadata.name", "metadata.namespace", "type"}
    assert "status.replicas" in fields.supported(rt("ReplicaSet"))
    assert fields.supported(rt("ConfigMap")) == {"metadata.name", "metadata.namespace"}
    # kube's default conversion accepts metadata.namespace even for cluster-scoped kinds.
    assert fields.supported(rt("ClusterRole")) == {"metadata.name", "metadata.namespace"}


def test_unsupported_labels_are_refused_with_kube_messages() -> None:
    with pytest.raises(FieldSelectorError) as err:
        fields.check_supported(rt("Pod"), fields.parse("status.phase=Running,foo=bar"))
    assert str(err.value) == "field label not supported: foo"
    with pytest.raises(FieldSelectorError) as err:
        fields.check_supported(rt("Node"), fields.parse("metadata.namespace=x"))
    assert str(err.value) == "field label not supported: metadata.namespace"
    with pytest.raises(FieldSelectorError) as err:
        fields.check_supported(rt("Deployment"), fields.parse("spec.replicas=1"))
    assert str(err.value) == (
        '"spec.replicas" is not a known field selector: only "metadata.name", "metadata.namespace"'
    )
    fields.check_supported(rt("Pod"), fields.parse("spec.host=n1,metadata.namespace=x"))
    fields.check_supported(rt("Deployment"), [])


# -- matching -------------------------------------------------------------------------------------


POD: dict[str, Any] = {
    "metadata": {"name": "web", "namespace": "shop"},
    "spec": {"nodeName": "node-1", "restartPolicy": "Always", "serviceAccountName": "default"},
    "status": {"phase": "Running", "podIP": "10.0.0.1", "podIPs": [{"ip": "10.0.0.1"}]},
}


@pytest.mark.parametrize(
    ("selector", "matched"),
    [
        ("", True),
        ("metadata.name=web", True),
        ("metadata.name!=web", False),
        ("metadata.namespace=shop,status.phase=Running", True),
        ("metadata.namespace=shop,status.phase=Pending", False),
        ("spec.nodeName=node-1", True),
        ("spec.host=node-1", True),
        ("spec.nodeName=", False),
        ("spec.nodeName!=", True),
        ("spec.schedulerName=", True),
        ("spec.hostNetwork=false", True),
        ("spec.hostNetwork=true", False),
        ("status.podIP=10.0.0.1", True),
        ("status.podIPs=10.0.0.1", False),  # accepted by kube, never projected
        ("status.nominatedNodeName=", True),
        ("spec.restartPolicy==Always", True),
    ],
)
def test_pod_matching(selector: str, matched: bool) -> None:
    assert fields.matches(rt("Pod"), POD, fields.parse(selector)) is matched


def test_other_kinds_matching() -> None:
    event = {
        "metadata": {"name": "e", "namespace": "shop"},
        "involvedObject": {"kind": "Pod", "name": "web", "uid": "u1"},
        "reason": "Started",
        "reportingComponent": "kubelet",
        "type": "Normal",
    }
    ev = rt("Event")
    assert fields.matches(
        ev, event, fields.parse("involvedObject.kind=Pod,involvedObject.name=web")
    )
    assert fields.matches(ev, event, fields.parse("source=kubelet"))  # falls back to reporting
    event["source"] = {"component": "scheduler"}
    assert fields.matches(ev, event, fields.parse("source=scheduler,reason!=Failed"))
    assert not fields.matches(ev, event, fields.parse("type=Warning"))

    node: dict[str, Any] = {"metadata": {"name": "n1"}, "spec": {}}
    assert fields.matches(rt("Node"), node, fields.parse("spec.unschedulable=false"))
    node["spec"]["unschedulable"] = True
    assert fields.matches(rt("Node"), node, fields.parse("spec.unschedulable=true"))

    ns = {"metadata": {"name": "prod"}, "status": {"phase": "Terminating"}}
    assert fields.matches(rt("Namespace"), ns, fields.parse("status.phase=Terminating"))

    secret = {"metadata": {"name": "s", "namespace": "a"}, "type": "kubernetes.io/tls"}
    assert fields.matches(rt("Secret"), secret, fields.parse("type=kubernetes.io/tls"))

    rs: dict[str, Any] = {"metadata": {"name": "r", "namespace": "a"}, "status": {}}
    assert fields.matches(rt("ReplicaSet"), rs, fields.parse("status.replicas=0"))
    rs["status"]["replicas"] = 3
    assert fields.matches(rt("ReplicaSet"), rs, fields.parse("status.replicas=3"))

    role = {"metadata": {"name": "admin"}}
    assert fields.matches(rt("ClusterRole"), role, fields.parse("metadata.namespace="))
    assert not fields.matches(rt("ClusterRole"), role, fields.parse("metadata.namespace=x"))


# -- CRD-served kinds -----------------------------------------------------------------------------


def test_crd_kinds_accept_metadata_and_selectable_fields() -> None:
    base = ResourceType(
        "stable.example.com",
        "v1",
        "CronTab",
        "crontabs",
        True,
        crd_schema={"type": "object"},
        crd_name="crontabs.stable.example.com",
    )
    assert fields.supported(base) == {"metadata.name", "metadata.namespace"}
    with pytest.raises(FieldSelectorError) as err:
        fields.check_supported(base, fields.parse("spec.color=red"))
    assert str(err.value) == "field label not supported: spec.color"

    cluster = ResourceType("x.io", "v1", "Thing", "things", False, crd_schema={"type": "object"})
    assert fields.supported(cluster) == {"metadata.name"}

    # A registry that carries the CRD version's selectableFields (as kube's CRD API spells them).
    @dataclasses.dataclass(frozen=True)
    class Selectable(ResourceType):
        selectable_fields: tuple[Any, ...] = ()

    crd = Selectable(
        "stable.example.com",
        "v1",
        "CronTab",
        "crontabs",
        True,
        crd_schema={"type": "object"},
        crd_name="crontabs.stable.example.com",
        selectable_fields=({"jsonPath": ".spec.color"}, {"jsonPath": ".spec.size"}, ".spec.on"),
    )
    assert fields.supported(crd) == {
        "metadata.name",
        "metadata.namespace",
        "spec.color",
        "spec.size",
        "spec.on",
    }
    obj = {"metadata": {"name": "c"}, "spec": {"color": "red", "size": 3, "on": True}}
    assert fields.matches(crd, obj, fields.parse("spec.color=red,spec.size=3,spec.on=true"))
    assert not fields.matches(crd, obj, fields.parse("spec.color!=red"))
    assert fields.matches(crd, {"metadata": {"name": "d"}}, fields.parse("spec.color="))
