"""Deployment and ReplicaSet rules: selectors, templates, strategy, immutable selectors."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from hypernetes.resources import defaults, validation
from hypernetes.resources.registry import BUILTIN, ResourceType

Obj = dict[str, Any]


def rt(kind: str) -> ResourceType:
    return next(r for r in BUILTIN if r.kind == kind)


def workload(kind: str = "Deployment", **spec: Any) -> Obj:
    base: Obj = {
        "selector": {"matchLabels": {"app": "web"}},
        "template": {
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "nginx", "image": "nginx"}]},
        },
    }
    base.update(spec)
    return {"kind": kind, "metadata": {"name": "web", "namespace": "n"}, "spec": base}


def check(obj: Obj, old: Obj | None = None) -> list[validation.FieldError]:
    kind = obj["kind"]
    defaults.default(rt(kind), obj)
    result = validation.validate(rt(kind), obj, old=old)
    assert not result.bad_request, result.bad_request
    return result.errors


def fields(obj: Obj, old: Obj | None = None) -> list[tuple[str, str]]:
    return [(e.field, e.type) for e in check(obj, old)]


@pytest.mark.parametrize("kind", ["Deployment", "ReplicaSet"])
def test_valid(kind: str) -> None:
    assert check(workload(kind)) == []


@pytest.mark.parametrize("kind", ["Deployment", "ReplicaSet"])
def test_selector_is_required(kind: str) -> None:
    obj = workload(kind)
    del obj["spec"]["selector"]
    assert fields(obj) == [("spec.selector", "FieldValueRequired")]


def test_empty_selector_is_invalid() -> None:
    [err] = check(workload(selector={}))
    assert str(err) == "spec.selector: Invalid value: {}: empty selector is invalid for deployment"


@pytest.mark.parametrize("kind", ["Deployment", "ReplicaSet"])
def test_selector_must_match_template_labels(kind: str) -> None:
    [err] = check(workload(kind, selector={"matchLabels": {"app": "other"}}))
    assert str(err) == (
        'spec.template.metadata.labels: Invalid value: {"app":"web"}: '
        "`selector` does not match template `labels`"
    )


def test_selector_expressions() -> None:
    selector = {
        "matchLabels": {"app": "web"},
        "matchExpressions": [
            {"key": "tier", "operator": "In"},
            {"key": "tier", "operator": "Exists", "values": ["x"]},
            {"key": "tier", "operator": "Near", "values": ["x"]},
            {"key": "bad key", "operator": "Exists"},
        ],
    }
    assert fields(workload(selector=selector)) == [
        ("spec.selector.matchExpressions[0].values", "FieldValueRequired"),
        ("spec.selector.matchExpressions[1].values", "FieldValueForbidden"),
        ("spec.selector.matchExpressions[2].operator", "FieldValueInvalid"),
        ("spec.selector.matchExpressions[3].key", "FieldValueInvalid"),
        ("spec.selector", "FieldValueInvalid"),
    ]


def test_template_rules() -> None:
    obj = workload()
    template = obj["spec"]["template"]
    template["spec"]["restartPolicy"] = "Never"
    template["spec"]["activeDeadlineSeconds"] = 5
    template["spec"]["containers"][0]["image"] = ""
    template["metadata"]["annotations"] = {"bad key": "x"}
    errs = check(obj)
    assert [(e.field, e.type) for e in errs] == [
        ("spec.template.metadata.annotations", "FieldValueInvalid"),
        ("spec.template.spec.containers[0].image", "FieldValueRequired"),
        ("spec.template.spec.restartPolicy", "FieldValueNotSupported"),
        ("spec.template.spec.activeDeadlineSeconds", "FieldValueForbidden"),
    ]
    assert errs[2].message == 'Unsupported value: "Never": supported values: "Always"'


def test_counts() -> None:
    obj = workload(replicas=-1, minReadySeconds=5, revisionHistoryLimit=-2)
    obj["spec"]["progressDeadlineSeconds"] = 5
    assert fields(obj) == [
        ("spec.replicas", "FieldValueInvalid"),
        ("spec.revisionHistoryLimit", "FieldValueInvalid"),
        ("spec.progressDeadlineSeconds", "FieldValueInvalid"),
    ]
    assert check(workload("ReplicaSet", replicas=-3))[0].message == (
        "Invalid value: -3: must be greater than or equal to 0"
    )


def test_strategies() -> None:
    recreate = {"type": "Recreate", "rollingUpdate": {"maxSurge": 1}}
    assert fields(workload(strategy=recreate)) == [
        ("spec.strategy.rollingUpdate", "FieldValueForbidden")
    ]
    assert fields(workload(strategy={"type": "BlueGreen"})) == [
        ("spec.strategy.type", "FieldValueNotSupported")
    ]
    zero = {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": "0%"}}
    [err] = check(workload(strategy=zero))
    assert str(err) == (
        'spec.strategy.rollingUpdate.maxUnavailable: Invalid value: "0%": '
        "may not be 0 when `maxSurge` is 0"
    )
    bad = {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "x", "maxUnavailable": "150%"}}
    assert fields(workload(strategy=bad)) == [
        ("spec.strategy.rollingUpdate.maxSurge", "FieldValueInvalid"),
        ("spec.strategy.rollingUpdate.maxUnavailable", "FieldValueInvalid"),
    ]
    negative = {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": -1}}
    assert fields(workload(strategy=negative)) == [
        ("spec.strategy.rollingUpdate.maxSurge", "FieldValueInvalid")
    ]


@pytest.mark.parametrize("kind", ["Deployment", "ReplicaSet"])
def test_selector_is_immutable(kind: str) -> None:
    old = workload(kind)
    assert check(old) == []
    new = copy.deepcopy(old)
    new["spec"]["selector"]["matchLabels"]["tier"] = "x"
    new["spec"]["template"]["metadata"]["labels"]["tier"] = "x"
    [err] = check(new, old)
    assert str(err) == (
        'spec.selector: Invalid value: {"matchLabels":{"app":"web","tier":"x"}}: field is immutable'
    )
    scaled = copy.deepcopy(old)
    scaled["spec"]["replicas"] = 7
    scaled["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:2"
    assert check(scaled, old) == []
