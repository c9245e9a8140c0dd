"""ConfigMap and Secret rules: keys, sizes, types, immutability."""

from __future__ import annotations

import base64
import copy
from typing import Any

from hypernetes.resources import defaults, validation
from hypernetes.resources.registry import BUILTIN, ResourceType

Obj = dict[str, Any]


def rt(kind: str) -> ResourceType:
    return next(r for r in BUILTIN if r.kind == kind)


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def check(kind: str, obj: Obj, old: Obj | None = None) -> list[validation.FieldError]:
    obj.setdefault("metadata", {"name": "x", "namespace": "n"})
    defaults.default(rt(kind), obj)
    result = validation.validate(rt(kind), obj, old=old)
    assert not result.bad_request, result.bad_request
    return result.errors


def fields(kind: str, obj: Obj, old: Obj | None = None) -> list[tuple[str, str]]:
    return [(e.field, e.type) for e in check(kind, obj, old)]


def test_config_map_keys() -> None:
    obj = {"data": {"ok.key": "v", "bad key": "v", "..": "v", "both": "v"}}
    obj["binaryData"] = {"both": b64("x"), "b@d": b64("x")}
    errs = check("ConfigMap", obj)
    assert [(e.field, e.type) for e in errs] == [
        ("data[bad key]", "FieldValueInvalid"),
        ("data[..]", "FieldValueInvalid"),
        ("data[both]", "FieldValueInvalid"),
        ("binaryData[b@d]", "FieldValueInvalid"),
    ]
    assert errs[2].message == 'Invalid value: "both": duplicate of key present in binaryData'


def test_config_map_size_limit() -> None:
    big = "x" * (1024 * 1024)
    assert check("ConfigMap", {"data": {"a": big}}) == []
    [err] = check("ConfigMap", {"data": {"a": big, "b": "y"}})
    assert (err.type, err.message) == (
        "FieldValueTooLong",
        "Too long: may not be more than 1048576 bytes",
    )


def test_immutable_config_maps() -> None:
    old = {"data": {"a": "1"}, "immutable": True}
    assert check("ConfigMap", old) == []
    new = copy.deepcopy(old)
    new["data"]["a"] = "2"
    new["immutable"] = False
    assert fields("ConfigMap", new, old) == [
        ("immutable", "FieldValueForbidden"),
        ("data", "FieldValueForbidden"),
    ]
    relabeled = copy.deepcopy(old)
    relabeled["metadata"]["labels"] = {"a": "b"}
    assert check("ConfigMap", relabeled, old) == []
    mutable = {"data": {"a": "1"}}
    assert check("ConfigMap", {"data": {"a": "2"}}, mutable) == []


def test_secret_keys_and_size() -> None:
    errs = check("Secret", {"data": {"bad key": b64("v")}})
    assert [(e.field, e.type) for e in errs] == [("data[bad key]", "FieldValueInvalid")]
    [err] = check("Secret", {"data": {"a": b64("x" * (1024 * 1024 + 1))}})
    assert (err.field, err.type) == ("data", "FieldValueTooLong")


def test_string_data_is_merged_and_validated() -> None:
    obj = {"stringData": {"user": "admin", "bad key": "v"}, "data": {"user": b64("old")}}
    errs = check("Secret", obj)
    assert [(e.field, e.type) for e in errs] == [("data[bad key]", "FieldValueInvalid")]
    assert obj["data"]["user"] == b64("admin") and "stringData" not in obj


def test_typed_secrets_need_their_keys() -> None:
    assert fields("Secret", {"type": "kubernetes.io/tls", "data": {"tls.crt": b64("c")}}) == [
        ("data[tls.key]", "FieldValueRequired")
    ]
    assert fields("Secret", {"type": "kubernetes.io/dockerconfigjson"}) == [
        ("data[.dockerconfigjson]", "FieldValueRequired")
    ]
    assert fields("Secret", {"type": "kubernetes.io/basic-auth"}) == [
        ("data[username]", "FieldValueRequired"),
        ("data[password]", "FieldValueRequired"),
    ]
    assert fields("Secret", {"type": "kubernetes.io/service-account-token"}) == [
        ("metadata.annotations[kubernetes.io/service-account.name]", "FieldValueRequired")
    ]
    assert check("Secret", {"type": "example.com/custom"}) == []


def test_secret_type_and_immutable_data() -> None:
    old = {"type": "Opaque", "data": {"a": b64("1")}, "immutable": True}
    assert check("Secret", old) == []
    new = copy.deepcopy(old)
    new["type"] = "example.com/other"
    new["data"]["a"] = b64("2")
    errs = check("Secret", new, old)
    assert [(e.field, e.type) for e in errs] == [
        ("type", "FieldValueInvalid"),
        ("data", "FieldValueForbidden"),
    ]
    assert errs[0].message == 'Invalid value: "example.com/other": field is immutable'
    assert errs[1].message == "Forbidden: field is immutable when `immutable` is set"
