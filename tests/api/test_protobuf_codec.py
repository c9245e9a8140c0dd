"""The protobuf codec on its own: the table, the special types, malformed input.

kubectl is the ground truth in test_protobuf_kubectl.py; these tests cover what no
kubectl command sends (Lease, CRDs, reviews, subresource kinds), every malformed body
we can think of, and random corruption, which must only ever raise ProtobufError.
"""

from __future__ import annotations

import base64
import json
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from hypernetes.api import codec, errors, protobuf
from hypernetes.api.protobuf import decoder as decoding
from hypernetes.api.protobuf import encoder as encoding
from hypernetes.api.protobuf import table
from hypernetes.api.protobuf.wire import Writer
from hypernetes.resources import schema
from hypernetes.resources.registry import BUILTIN

APIEXT = "k8s.io.apiextensions_apiserver.pkg.apis.apiextensions.v1"

# Messages whose JSON is not their fields (custom MarshalJSON in Go).
SPECIAL = {
    f"{table.META}.{name}" for name in ("Time", "MicroTime", "Duration", "FieldsV1", "Timestamp")
} | {
    "k8s.io.apimachinery.pkg.api.resource.Quantity",
    "k8s.io.apimachinery.pkg.util.intstr.IntOrString",
    "k8s.io.apimachinery.pkg.runtime.RawExtension",
    f"{APIEXT}.JSON",
    f"{APIEXT}.JSONSchemaPropsOrArray",
    f"{APIEXT}.JSONSchemaPropsOrBool",
    f"{APIEXT}.JSONSchemaPropsOrStringArray",
}


def _definition(message_name: str) -> str | None:
    for proto, json_schema in (
        ("k8s.io.api.", "io.k8s.api."),
        (f"{table.META}.", "io.k8s.apimachinery.pkg.apis.meta.v1."),
        (f"{APIEXT}.", "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1."),
    ):
        if message_name.startswith(proto):
            return json_schema + message_name[len(proto) :]
    return None


def _json_names(msg: table.Message) -> set[str]:
    names: set[str] = set()
    for f in msg.fields:
        if f.inline and f.ref:
            names |= _json_names(table.message(f.ref))
        elif not f.hidden:
            names.add(f.json)
    return names


def test_table_names_every_schema_property_of_every_message() -> None:
    """The generated table and the v1.32 JSON schemas agree on every field name."""
    checked = 0
    for name in sorted(table.names() - SPECIAL):
        definition = _definition(name)
        msg = table.message(name)
        if definition is None or definition not in schema.definitions() or msg.kind != "struct":
            continue
        properties = set(schema.definition(definition).get("properties", {}))
        type_meta = {"apiVersion", "kind"}
        assert _json_names(msg) - type_meta == properties - type_meta, name
        checked += 1
    assert checked > 300


def test_table_records_where_it_came_from() -> None:
    (kubectl, anthos, supplement) = table.sources()
    assert kubectl["binary"].startswith("kubectl") and kubectl["version"].startswith("v1.32.")
    assert "k8s.io.api.core.v1" in kubectl["packages"]
    assert anthos["packages"] == [APIEXT]
    assert f"{APIEXT}.CustomResourceDefinitionVersion.selectableFields" in supplement["added"]


SERVED_ELSEWHERE = {"hypernetes.io"}


@pytest.mark.parametrize(
    ("api_version", "kind"),
    [(rt.api_version, rt.kind) for rt in BUILTIN if rt.group not in SERVED_ELSEWHERE]
    + [
        ("autoscaling/v1", "Scale"),
        ("v1", "Binding"),
        ("policy/v1", "Eviction"),
        ("authentication.k8s.io/v1", "TokenRequest"),
        ("authentication.k8s.io/v1", "TokenReview"),
        ("authorization.k8s.io/v1", "SubjectAccessReview"),
        ("meta.k8s.io/v1", "DeleteOptions"),
        ("apps/v1", "DeleteOptions"),
        ("v1", "PodList"),
    ],
)
def test_every_served_kind_has_a_message(api_version: str, kind: str) -> None:
    name = table.message_for(api_version, kind)
    assert name.endswith(f".{kind}")
    empty = protobuf.decode(protobuf.encode({"apiVersion": api_version, "kind": kind}))
    assert (empty["apiVersion"], empty["kind"]) == (api_version, kind)


@pytest.mark.parametrize(
    ("api_version", "kind", "message"),
    [
        ("batch/v1", "Job", "no protobuf types for apiVersion 'batch/v1'"),
        ("v1", "PodSpec", "no kind 'PodSpec' is registered for version 'v1'"),
        ("v1", "Nope", "no kind 'Nope'"),
        ("hypernetes.io/v1", "Tenant", "no protobuf types"),
    ],
)
def test_unknown_kinds_are_refused(api_version: str, kind: str, message: str) -> None:
    with pytest.raises(protobuf.ProtobufError, match=message):
        protobuf.decode(_envelope(api_version, kind, b""))


# ---- objects no kubectl generator sends ----

LEASE = {
    "apiVersion": "coordination.k8s.io/v1",
    "kind": "Lease",
    "metadata": {"name": "ctrl", "namespace": "kube-system", "creationTimestamp": None},
    "spec": {
        "holderIdentity": "node-1_abc",
        "leaseDurationSeconds": 15,
        "acquireTime": "2024-01-02T03:04:05.000000Z",
        "renewTime": "2024-01-02T03:04:20.123456Z",
        "leaseTransitions": 0,
        "strategy": "OldestEmulationVersion",
        "preferredHolder": "node-2",
    },
}

CRON_PATTERN = r"^(\d+|\*)(/\d+)?(\s+(\d+|\*)(/\d+)?){4}$"

CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "crontabs.stable.example.com", "creationTimestamp": None},
    "spec": {
        "group": "stable.example.com",
        "names": {
            "plural": "crontabs",
            "singular": "crontab",
            "kind": "CronTab",
            "shortNames": ["ct"],
            "listKind": "CronTabList",
        },
        "scope": "Namespaced",
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "deprecated": True,
                "deprecationWarning": "use v2",
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "description": "A cron tab.",
                        "required": ["spec"],
                        "properties": {
                            "spec": {
                                "type": "object",
                                "properties": {
                                    "cronSpec": {
                                        "type": "string",
                                        "pattern": CRON_PATTERN,
                                        "default": "* * * * *",
                                    },
                                    "replicas": {
                                        "type": "integer",
                                        "minimum": 0,
                                        "maximum": 10.5,
                                        "exclusiveMaximum": True,
                                        "default": 1,
                                    },
                                    "mode": {"type": "string", "enum": ["a", "b", None]},
                                    "tags": {
                                        "type": "array",
                                        "items": {"type": "string", "maxLength": 63},
                                        "x-kubernetes-list-type": "set",
                                    },
                                    "tuple": {"type": "array", "items": [{"type": "string"}]},
                                    "labels": {
                                        "type": "object",
                                        "additionalProperties": {"type": "string"},
                                        "x-kubernetes-map-type": "granular",
                                    },
                                    "closed": {"type": "object", "additionalProperties": False},
                                    "port": {
                                        "x-kubernetes-int-or-string": True,
                                        "anyOf": [{"type": "integer"}, {"type": "string"}],
                                    },
                                    "extra": {
                                        "type": "object",
                                        "x-kubernetes-preserve-unknown-fields": True,
                                        "example": {"any": ["thing", 1, True]},
                                    },
                                    "a": {"type": "string", "dependencies": None},
                                },
                                "dependencies": {"a": ["cronSpec"], "b": {"required": ["a"]}},
                                "x-kubernetes-validations": [
                                    {
                                        "rule": "self.replicas <= 10",
                                        "message": "too many",
                                        "messageExpression": "'got ' + string(self.replicas)",
                                        "reason": "FieldValueForbidden",
                                        "fieldPath": ".replicas",
                                        "optionalOldSelf": True,
                                    }
                                ],
                            },
                            "status": {"type": "object", "nullable": True},
                        },
                    }
                },
                "subresources": {
                    "status": {},
                    "scale": {
                        "specReplicasPath": ".spec.replicas",
                        "statusReplicasPath": ".status.replicas",
                    },
                },
                "additionalPrinterColumns": [
                    {"name": "Spec", "type": "string", "jsonPath": ".spec.cronSpec", "priority": 0}
                ],
                "selectableFields": [{"jsonPath": ".spec.cronSpec"}],
            }
        ],
        "conversion": {"strategy": "None"},
        "preserveUnknownFields": False,
    },
    "status": {
        "conditions": [
            {
                "type": "Established",
                "status": "True",
                "lastTransitionTime": "2024-01-02T03:04:05Z",
                "reason": "InitialNamesAccepted",
                "message": "ok",
            }
        ],
        "acceptedNames": {"plural": "crontabs", "kind": "CronTab"},
        "storedVersions": ["v1"],
    },
}


def test_lease_micro_times_round_trip() -> None:
    lease = protobuf.decode(protobuf.encode(LEASE))
    assert lease["spec"] == LEASE["spec"]  # pointers: leaseTransitions 0 is kept


def test_crd_json_schema_props_round_trip() -> None:
    crd = protobuf.decode(protobuf.encode(CRD))
    schema_in = CRD["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    schema_out = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    props = schema_out["properties"]["spec"]["properties"]
    assert props["replicas"] == {
        "type": "integer",
        "minimum": 0,  # *float64: kept
        "maximum": 10.5,
        "exclusiveMaximum": True,
        "default": 1,
    }
    assert props["mode"]["enum"] == ["a", "b", None]
    assert props["tuple"]["items"] == [{"type": "string"}]
    assert props["tags"]["items"] == {"type": "string", "maxLength": 63}
    assert props["labels"]["additionalProperties"] == {"type": "string"}
    assert props["closed"]["additionalProperties"] is False
    assert props["extra"]["example"] == {"any": ["thing", 1, True]}
    assert props["a"] == {"type": "string"}  # a null-valued map is omitempty
    spec_in = schema_in["properties"]["spec"]
    assert schema_out["properties"]["spec"]["dependencies"] == spec_in["dependencies"]
    assert (
        schema_out["properties"]["spec"]["x-kubernetes-validations"]
        == spec_in["x-kubernetes-validations"]
    )
    version = crd["spec"]["versions"][0]
    assert version["selectableFields"] == [{"jsonPath": ".spec.cronSpec"}]
    assert version["subresources"]["status"] == {}
    assert "priority" not in version["additionalPrinterColumns"][0]
    assert crd["status"] == CRD["status"]
    assert "preserveUnknownFields" not in crd["spec"]


def test_reviews_and_subresource_kinds_round_trip() -> None:
    sar = {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SubjectAccessReview",
        "metadata": {"creationTimestamp": None},
        "spec": {
            "resourceAttributes": {
                "namespace": "a",
                "verb": "list",
                "resource": "pods",
                "fieldSelector": {"rawSelector": "spec.nodeName=n1"},
                "labelSelector": {
                    "requirements": [{"key": "app", "operator": "In", "values": ["x"]}]
                },
            },
            "user": "alice",
            "groups": ["g"],
            "extra": {"scopes": ["x", "y"]},
            "uid": "1",
        },
        "status": {"allowed": True, "denied": False, "reason": "RBAC"},
    }
    out = protobuf.decode(protobuf.encode(sar))
    assert out["spec"] == sar["spec"]
    assert out["status"] == {"allowed": True, "reason": "RBAC"}
    eviction = {
        "apiVersion": "policy/v1",
        "kind": "Eviction",
        "metadata": {"name": "p", "namespace": "a", "creationTimestamp": None},
        "deleteOptions": {
            "gracePeriodSeconds": 0,
            "preconditions": {"uid": "u"},
            "propagationPolicy": "Foreground",
            "dryRun": ["All"],
        },
    }
    assert protobuf.decode(protobuf.encode(eviction)) == eviction
    scale = {
        "apiVersion": "autoscaling/v1",
        "kind": "Scale",
        "metadata": {"name": "web", "namespace": "a", "creationTimestamp": None},
        "spec": {"replicas": 4},
        "status": {"replicas": 0, "selector": "app=web"},
    }
    assert protobuf.decode(protobuf.encode(scale)) == scale
    binding = {
        "apiVersion": "v1",
        "kind": "Binding",
        "metadata": {"name": "p", "creationTimestamp": None},
        "target": {"kind": "Node", "name": "n1"},
    }
    assert protobuf.decode(protobuf.encode(binding)) == binding
    options = {"apiVersion": "apps/v1", "kind": "DeleteOptions", "orphanDependents": False}
    assert protobuf.decode(protobuf.encode(options)) == options


def test_inline_raw_extension_and_bytes_fields() -> None:
    pv = {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": "pv", "creationTimestamp": None},
        "spec": {
            "capacity": {"storage": "10Gi"},
            "hostPath": {"path": "/d"},  # inline PersistentVolumeSource
            "accessModes": ["ReadWriteOnce"],
            "persistentVolumeReclaimPolicy": "Retain",
        },
        "status": {"phase": "Available"},
    }
    assert protobuf.decode(protobuf.encode(pv)) == pv
    revision = {
        "apiVersion": "apps/v1",
        "kind": "ControllerRevision",
        "metadata": {"name": "r", "creationTimestamp": None},
        "data": {"spec": {"template": {"x": [1, 2]}}},
        "revision": 3,
    }
    assert protobuf.decode(protobuf.encode(revision)) == revision
    cm = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "c", "creationTimestamp": None},
        "binaryData": {"b": base64.b64encode(b"\x00\x01").decode()},
    }
    assert protobuf.decode(protobuf.encode(cm)) == cm


# ---- the types with their own JSON form ----


def _timestamp(seconds: int | None, nanos: int | None = None) -> bytes:
    w = Writer()
    if seconds is not None:
        w.varint_field(1, seconds)
    if nanos is not None:
        w.varint_field(2, nanos)
    return w.getvalue()


@pytest.mark.parametrize(
    ("payload", "time", "micro"),
    [
        (b"", None, None),  # Go's zero time marshals to no bytes
        (_timestamp(0, 0), "1970-01-01T00:00:00Z", "1970-01-01T00:00:00.000000Z"),
        (
            _timestamp(1704164645, 999_999_999),
            "2024-01-02T03:04:05Z",
            "2024-01-02T03:04:05.999999Z",
        ),
        (_timestamp(None, 1500), "1970-01-01T00:00:00Z", "1970-01-01T00:00:00.000001Z"),
        (_timestamp(-62135596800), None, None),  # year 1: Go's zero time again
        (_timestamp(-1), "1969-12-31T23:59:59Z", "1969-12-31T23:59:59.000000Z"),
    ],
)
def test_time_and_micro_time(payload: bytes, time: str | None, micro: str | None) -> None:
    assert decoding.message(f"{table.META}.Time", payload, 0, len(payload)) == time
    assert decoding.message(f"{table.META}.MicroTime", payload, 0, len(payload)) == micro


def test_time_out_of_range_is_an_error() -> None:
    payload = _timestamp(2**62)
    with pytest.raises(protobuf.ProtobufError, match="out of range"):
        decoding.message(f"{table.META}.Time", payload, 0, len(payload))


@pytest.mark.parametrize(
    ("ns", "text"),
    [
        (0, "0s"),
        (1, "1ns"),
        (1_500, "1.5µs"),
        (100_000_000, "100ms"),
        (1_500_000_000, "1.5s"),
        (60_000_000_000, "1m0s"),
        (3_600_000_000_000, "1h0m0s"),
        (3_723_000_000_000, "1h2m3s"),
        (-90_000_000_000, "-1m30s"),
        (2_562_047 * 3_600_000_000_000, "2562047h0m0s"),
    ],
)
def test_durations_print_and_parse_as_go(ns: int, text: str) -> None:
    assert decoding.go_duration(ns) == text
    assert encoding.parse_go_duration(text) == ns
    payload = encoding.message(f"{table.META}.Duration", text)
    assert decoding.message(f"{table.META}.Duration", payload, 0, len(payload)) == text


def test_int_or_string_and_quantity() -> None:
    name = "k8s.io.apimachinery.pkg.util.intstr.IntOrString"
    for value in (0, 8080, -1, "http", "50%", ""):
        payload = encoding.message(name, value)
        assert decoding.message(name, payload, 0, len(payload)) == value
    bad = Writer()
    bad.varint_field(1, 7)
    with pytest.raises(protobuf.ProtobufError, match="impossible type 7"):
        decoding.message(name, bad.getvalue(), 0, len(bad.getvalue()))
    quantity = "k8s.io.apimachinery.pkg.api.resource.Quantity"
    assert decoding.message(quantity, b"", 0, 0) == "0"  # zero Quantity
    for text in ("1500m", "1", "0", "1.5Gi", "+2e3", "-.5", "5.", "100Ki", "3E"):
        payload = encoding.message(quantity, text)
        assert decoding.message(quantity, payload, 0, len(payload)) == text
    for text in ("", "abc", "1.5.5", "1Zi", "--1", "1 "):
        payload = encoding.message(quantity, text)
        with pytest.raises(protobuf.ProtobufError, match="quantities must match"):
            decoding.message(quantity, payload, 0, len(payload))


# ---- the wire format ----


def _envelope(api_version: str, kind: str, raw: bytes, *extra: tuple[int, bytes]) -> bytes:
    type_meta = Writer()
    type_meta.bytes_field(1, api_version.encode())
    type_meta.bytes_field(2, kind.encode())
    unknown = Writer()
    unknown.bytes_field(1, type_meta.getvalue())
    unknown.bytes_field(2, raw)
    for number, payload in extra:
        unknown.bytes_field(number, payload)
    return b"k8s\x00" + unknown.getvalue()


def _configmap_raw(name: bytes = b"c") -> bytes:
    meta = Writer()
    meta.bytes_field(1, name)
    body = Writer()
    body.bytes_field(1, meta.getvalue())
    return body.getvalue()


def test_unknown_fields_are_skipped_and_packed_scalars_accepted() -> None:
    meta = Writer()
    meta.bytes_field(1, b"p")
    meta.varint_field(999, 5)  # unknown, varint
    meta.fixed64_field(998, bytes(8))  # unknown, 64-bit
    meta.fixed32_field(997, bytes(4))  # unknown, 32-bit
    security = Writer()
    packed = Writer()
    for gid in (1, 2, 300):
        packed.varint(gid)
    security.bytes_field(4, packed.getvalue())  # supplementalGroups, packed
    security.varint_field(4, 7)  # and one more unpacked
    spec = Writer()
    spec.bytes_field(14, security.getvalue())
    pod = Writer()
    pod.bytes_field(1, meta.getvalue())
    pod.bytes_field(2, spec.getvalue())
    out = protobuf.decode(_envelope("v1", "Pod", pod.getvalue()))
    assert out["metadata"] == {"name": "p", "creationTimestamp": None}
    assert out["spec"]["securityContext"] == {"supplementalGroups": [1, 2, 300, 7]}
    assert out["spec"]["containers"] is None  # required list, nil in Go: null


def test_repeated_message_occurrences_merge_and_last_scalar_wins() -> None:
    first, second = Writer(), Writer()
    first.bytes_field(1, b"old")
    first.bytes_field(3, b"ns")
    second.bytes_field(1, b"new")
    body = Writer()
    body.bytes_field(1, first.getvalue())
    body.bytes_field(1, second.getvalue())
    out = protobuf.decode(_envelope("v1", "ConfigMap", body.getvalue()))
    assert out["metadata"] == {"name": "new", "namespace": "ns", "creationTimestamp": None}


def test_large_and_negative_integers() -> None:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p", "creationTimestamp": None, "generation": 2**63 - 1},
        "spec": {"containers": None, "priority": -(2**31), "activeDeadlineSeconds": -1},
        "status": {},
    }
    assert protobuf.decode(protobuf.encode(pod)) == pod


def _varint(value: int) -> bytes:
    w = Writer()
    w.varint(value)
    return w.getvalue()


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "missing the k8s protobuf magic prefix"),
        (b'{"kind": "Pod"}', "missing the k8s protobuf magic prefix"),
        (b"k8s\x01" + _envelope("v1", "Pod", b"")[4:], "magic"),
        (b"k8s\x00\x0a", "truncated varint"),
        (b"k8s\x00\x0a\x80", "truncated varint"),
        (b"k8s\x00\x0a" + b"\xff" * 10 + b"\x01", "varint longer than 10 bytes"),
        (b"k8s\x00\x0a\x05ab", "runs past the end"),
        (b"k8s\x00\x09\x00", "truncated 64-bit"),
        (b"k8s\x00\x0d\x00", "truncated 32-bit"),
        (b"k8s\x00\x0b", "unsupported wire type 3"),
        (b"k8s\x00\x00\x00", "invalid field number 0"),
        (b"k8s\x00\x08\x01", "envelope field 1: wrong wire type"),
        (b"k8s\x00", "the envelope names no kind"),
        (_envelope("v1", "", b""), "names no kind"),
        (_envelope("v1", "ConfigMap", b"\x08\x01"), "ConfigMap field 1: wrong wire type varint"),
        (_envelope("v1", "ConfigMap", _configmap_raw(b"\xff\xfe")), "not valid UTF-8"),
        (_envelope("v1", "ConfigMap", b"\x12\x03\x0a\x01"), "runs past the end"),
        (_envelope("v1", "ConfigMap", b"", (3, b"gzip")), "unsupported content encoding"),
        (_envelope("v1", "ConfigMap", b"", (4, b"application/json")), "content type"),
        (_envelope("v1\xff", "ConfigMap", b""), "no protobuf types"),
    ],
)
def test_malformed_bodies_raise_protobuf_error(body: bytes, message: str) -> None:
    with pytest.raises(protobuf.ProtobufError, match=message):
        protobuf.decode(body)


def test_invalid_utf8_in_type_meta() -> None:
    body = b"k8s\x00" + b"\x0a\x04\x0a\x02\xff\xfe"
    with pytest.raises(protobuf.ProtobufError, match="UTF-8"):
        protobuf.decode(body)


def test_bad_embedded_values_raise_protobuf_error() -> None:
    nan = Writer()
    nan.fixed64_field(9, b"\x00\x00\x00\x00\x00\x00\xf8\x7f")  # JSONSchemaProps.maximum = NaN
    with pytest.raises(protobuf.ProtobufError, match="unsupported double value nan"):
        decoding.message(f"{APIEXT}.JSONSchemaProps", nan.getvalue(), 0, len(nan.getvalue()))
    raw = Writer()
    raw.bytes_field(1, b"\x01\x02 not json")
    revision = Writer()
    revision.bytes_field(2, raw.getvalue())
    with pytest.raises(protobuf.ProtobufError, match="neither JSON nor protobuf"):
        protobuf.decode(_envelope("apps/v1", "ControllerRevision", revision.getvalue()))
    raw = Writer()
    raw.bytes_field(1, b"[" * 100_000 + b"]" * 100_000)
    revision = Writer()
    revision.bytes_field(2, raw.getvalue())
    with pytest.raises(protobuf.ProtobufError, match="nested too deeply"):
        protobuf.decode(_envelope("apps/v1", "ControllerRevision", revision.getvalue()))


def test_nesting_is_bounded() -> None:
    deep: dict[str, Any] = {"type": "object"}
    for _ in range(decoding.MAX_DEPTH + 5):
        deep = {"type": "object", "not": deep}
    with pytest.raises(protobuf.ProtobufError, match="nested deeper"):
        encoding.message(f"{APIEXT}.JSONSchemaProps", deep)
    # Built by hand, since our own encoder refuses it.
    payload = b""
    for _ in range(decoding.MAX_DEPTH + 5):
        w = Writer()
        w.bytes_field(28, payload)
        payload = w.getvalue()
    with pytest.raises(protobuf.ProtobufError, match="nested deeper"):
        decoding.message(f"{APIEXT}.JSONSchemaProps", payload, 0, len(payload))


def test_nested_envelopes_in_raw_extensions() -> None:
    inner = protobuf.encode(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}, "data": {"a": "b"}}
    )
    raw = Writer()
    raw.bytes_field(1, inner)
    revision = Writer()
    revision.bytes_field(2, raw.getvalue())
    out = protobuf.decode(_envelope("apps/v1", "ControllerRevision", revision.getvalue()))
    assert out["data"] == {
        "kind": "ConfigMap",
        "apiVersion": "v1",
        "metadata": {"name": "x", "creationTimestamp": None},
        "data": {"a": "b"},
    }


@pytest.mark.parametrize(
    ("obj", "message"),
    [
        ({"kind": "Pod"}, "needs a string apiVersion and kind"),
        ({"apiVersion": "v1", "kind": "Pod", "metadata": []}, "expected an object"),
        ({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": 5}}, "expected a string"),
        ({"apiVersion": "v1", "kind": "Secret", "data": {"a": "%%"}}, "not valid base64"),
        ({"apiVersion": "v1", "kind": "Pod", "metadata": {"finalizers": "x"}}, "expected a list"),
        ({"apiVersion": "v1", "kind": "Pod", "spec": {"priority": "1"}}, "an integer"),
        ({"apiVersion": "v1", "kind": "Pod", "spec": {"hostPID": 1}}, "a boolean"),
        (
            {"apiVersion": "v1", "kind": "Pod", "metadata": {"creationTimestamp": "yesterday"}},
            "not an RFC 3339 time",
        ),
    ],
)
def test_encode_refuses_ill_typed_objects(obj: dict[str, Any], message: str) -> None:
    with pytest.raises(protobuf.ProtobufError, match=message):
        protobuf.encode(obj)


def test_random_corruption_only_ever_raises_protobuf_error() -> None:
    """Mutated and truncated bodies decode or fail cleanly: never another exception."""
    rng = random.Random(1234)
    seeds = [protobuf.encode(obj) for obj in (LEASE, CRD)]
    seeds.append(_envelope("v1", "ConfigMap", _configmap_raw()))
    outcomes = {"decoded": 0, "refused": 0}
    for i in range(3000):
        body = bytearray(rng.choice(seeds))
        for _ in range(rng.randint(1, 4)):
            pos = rng.randrange(4, len(body))
            action = rng.random()
            if action < 0.6:
                body[pos] = rng.randrange(256)
            elif action < 0.8:
                del body[pos:]
                if len(body) <= 4:
                    body += b"\x0a"
            else:
                body[pos:pos] = bytes([rng.randrange(256)])
        try:
            json.dumps(protobuf.decode(bytes(body)))
            outcomes["decoded"] += 1
        except protobuf.ProtobufError:
            outcomes["refused"] += 1
        assert i >= 0
    assert outcomes["decoded"] > 100 and outcomes["refused"] > 100


# ---- the server's codec uses it ----


def test_codec_decodes_protobuf_and_answers_bad_request() -> None:
    body = protobuf.encode(LEASE)
    obj = codec.decode_object(body, "application/vnd.kubernetes.protobuf")
    assert obj["kind"] == "Lease" and obj["spec"]["holderIdentity"] == "node-1_abc"
    with pytest.raises(errors.APIError) as caught:
        codec.decode_object(b"k8s\x00\x0a\x80", "application/vnd.kubernetes.protobuf; charset=x")
    assert caught.value.code == 400 and caught.value.reason == "BadRequest"
    assert caught.value.message == "error decoding protobuf: truncated varint"


# ---- the data file is what the generator writes ----

KUBECTL = Path("/usr/bin/kubectl")
ANTHOSCLI = Path("/usr/lib/google-cloud-sdk/bin/anthoscli")


@pytest.mark.skipif(
    not (KUBECTL.exists() and ANTHOSCLI.exists()), reason="needs the binaries the table came from"
)
def test_generator_reproduces_the_table(tmp_path: Path) -> None:
    # scripts/gen-proto-table is a dev tool; its `protobuf` dependency is not declared.
    pytest.importorskip("google.protobuf.descriptor_pb2")
    script = Path(__file__).resolve().parents[2] / "scripts" / "gen-proto-table"
    out = tmp_path / "messages.json"
    subprocess.run(
        [sys.executable, str(script), "-o", str(out), str(KUBECTL), str(ANTHOSCLI)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    shipped = json.loads((Path(table.__file__).parent / "messages.json").read_text())
    assert json.loads(out.read_text()) == shipped
