"""JSON-form Kubernetes objects to protobuf bytes, the inverse of decoder.py.

Written the way Go's generated marshallers write: non-pointer fields always
(zero values included), pointer fields only when set, repeated scalars
unpacked, map entries sorted by key. The server answers JSON, so this is for
clients and tests: `decode(encode(obj))` is `obj` as Kubernetes would render
it (see decoder.py).
"""

from __future__ import annotations

import base64
import binascii
import datetime
import json
import re
import struct
from collections.abc import Callable
from typing import Any

from hypernetes.api.protobuf import table
from hypernetes.api.protobuf.decoder import MAGIC, MAX_DEPTH
from hypernetes.api.protobuf.wire import ProtobufError, Writer, zigzag

_APIEXT = "k8s.io.apiextensions_apiserver.pkg.apis.apiextensions.v1"


def _fail(where: str, expected: str, value: Any) -> ProtobufError:
    return ProtobufError(f"{where}: expected {expected}, got {type(value).__name__}")


def _write_scalar(w: Writer, number: int, ftype: str, value: Any, where: str) -> None:
    if ftype == "string":
        if not isinstance(value, str):
            raise _fail(where, "a string", value)
        w.bytes_field(number, value.encode("utf-8"))
    elif ftype == "bytes":
        if not isinstance(value, str):
            raise _fail(where, "a base64 string", value)
        try:
            w.bytes_field(number, base64.b64decode(value, validate=True))
        except binascii.Error:
            raise ProtobufError(f"{where}: not valid base64") from None
    elif ftype == "bool":
        if not isinstance(value, bool):
            raise _fail(where, "a boolean", value)
        w.varint_field(number, int(value))
    elif ftype in ("double", "float"):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _fail(where, "a number", value)
        if ftype == "double":
            w.fixed64_field(number, struct.pack("<d", value))
        else:
            w.fixed32_field(number, struct.pack("<f", value))
    else:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _fail(where, "an integer", value)
        if ftype in ("sint32", "sint64"):
            w.varint_field(number, zigzag(value, 32 if ftype == "sint32" else 64))
        elif ftype in ("fixed64", "sfixed64"):
            w.fixed64_field(number, (value & (2**64 - 1)).to_bytes(8, "little"))
        elif ftype in ("fixed32", "sfixed32"):
            w.fixed32_field(number, (value & (2**32 - 1)).to_bytes(4, "little"))
        else:
            w.varint_field(number, value)


_ZERO: dict[str, Any] = {"string": "", "bool": False, "bytes": ""}


def _struct(msg: table.Message, obj: Any, depth: int) -> bytes:
    if msg.kind == "slice":
        obj = {msg.fields[0].json: obj} if msg.fields else {}
    elif obj is None:
        obj = {}
    if not isinstance(obj, dict):
        raise _fail(msg.name, "an object", obj)
    w = Writer()
    for field in sorted(msg.fields, key=lambda f: f.number):
        where = f"{msg.name.rpartition('.')[2]}.{field.json}"
        if field.hidden:
            continue
        if field.inline:
            assert field.ref is not None
            w.bytes_field(field.number, message(field.ref, obj, depth + 1))
            continue
        value = obj.get(field.json)
        if field.type == "map":
            if value is None:
                continue
            if not isinstance(value, dict):
                raise _fail(where, "an object", value)
            for key in sorted(value):
                entry = Writer()
                _write_scalar(entry, 1, field.key_type or "string", key, where)
                item = value[key]
                if field.value_type == "message":
                    assert field.ref is not None
                    entry.bytes_field(2, message(field.ref, item, depth + 1))
                else:
                    vtype = field.value_type or "string"
                    _write_scalar(
                        entry, 2, vtype, _ZERO.get(vtype, 0) if item is None else item, where
                    )
                w.bytes_field(field.number, entry.getvalue())
        elif field.repeated:
            if value is None:
                continue
            if not isinstance(value, list):
                raise _fail(where, "a list", value)
            for item in value:
                if field.type == "message":
                    assert field.ref is not None
                    w.bytes_field(field.number, message(field.ref, item, depth + 1))
                else:
                    _write_scalar(w, field.number, field.type, item, where)
        elif field.type == "message":
            assert field.ref is not None
            if value is None and field.pointer:
                continue
            w.bytes_field(field.number, message(field.ref, value, depth + 1))
        elif value is None:
            if not field.pointer and field.type != "bytes":
                _write_scalar(w, field.number, field.type, _ZERO.get(field.type, 0), where)
        else:
            _write_scalar(w, field.number, field.type, value, where)
    return w.getvalue()


def _parse_time(value: Any, where: str) -> tuple[int, int]:
    if not isinstance(value, str):
        raise _fail(where, "an RFC 3339 time", value)
    try:
        parsed = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ProtobufError(f"{where}: not an RFC 3339 time: {value!r}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=datetime.UTC)
    return int(parsed.timestamp() // 1), parsed.microsecond * 1000


def _timestamp(seconds: int, nanos: int) -> bytes:
    w = Writer()
    w.varint_field(1, seconds)
    w.varint_field(2, nanos)
    return w.getvalue()


def _time(value: Any, depth: int) -> bytes:
    if value is None:
        return b""
    seconds, _ = _parse_time(value, "Time")
    return _timestamp(seconds, 0)


def _micro_time(value: Any, depth: int) -> bytes:
    if value is None:
        return b""
    return _timestamp(*_parse_time(value, "MicroTime"))


_DURATION_UNITS = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,
    "μs": 1_000,
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
}
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")


def parse_go_duration(text: str) -> int:
    """Nanoseconds of a Go duration string such as `1h2m3.5s` (time.ParseDuration)."""
    sign = -1 if text.startswith("-") else 1
    body = text.lstrip("+-")
    if body == "0":
        return 0
    total = 0
    pos = 0
    while pos < len(body):
        match = _DURATION_PART.match(body, pos)
        if match is None:
            raise ProtobufError(f"invalid duration {text!r}")
        number, unit = match.groups()
        whole, _, frac = number.partition(".")
        scale = _DURATION_UNITS[unit]
        total += int(whole or 0) * scale
        if frac:
            total += int(frac) * scale // 10 ** len(frac)
        pos = match.end()
    if not body:
        raise ProtobufError(f"invalid duration {text!r}")
    return sign * total


def _duration(value: Any, depth: int) -> bytes:
    if value is None:
        value = "0s"
    if not isinstance(value, str):
        raise _fail("Duration", "a duration string", value)
    w = Writer()
    w.varint_field(1, parse_go_duration(value))
    return w.getvalue()


def _quantity(value: Any, depth: int) -> bytes:
    if value is None:
        value = "0"
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise _fail("Quantity", "a quantity", value)
    w = Writer()
    w.bytes_field(1, str(value).encode())
    return w.getvalue()


def _int_or_string(value: Any, depth: int) -> bytes:
    if value is None:
        value = 0
    w = Writer()
    if isinstance(value, str):
        w.varint_field(1, 1)
        w.varint_field(2, 0)
        w.bytes_field(3, value.encode("utf-8"))
    elif isinstance(value, int) and not isinstance(value, bool):
        w.varint_field(1, 0)
        w.varint_field(2, value)
        w.bytes_field(3, b"")
    else:
        raise _fail("IntOrString", "an integer or a string", value)
    return w.getvalue()


def _raw_json(value: Any, depth: int) -> bytes:
    if value is None:
        return b""
    w = Writer()
    w.bytes_field(1, json.dumps(value, separators=(",", ":")).encode())
    return w.getvalue()


def _schema_or_array(value: Any, depth: int) -> bytes:
    w = Writer()
    schema = f"{_APIEXT}.JSONSchemaProps"
    if isinstance(value, list):
        for item in value:
            w.bytes_field(2, message(schema, item, depth + 1))
    elif value is not None:
        w.bytes_field(1, message(schema, value, depth + 1))
    return w.getvalue()


def _schema_or_bool(value: Any, depth: int) -> bytes:
    w = Writer()
    if value is None or isinstance(value, bool):
        w.varint_field(1, int(bool(value)))
    else:
        w.varint_field(1, 1)
        w.bytes_field(2, message(f"{_APIEXT}.JSONSchemaProps", value, depth + 1))
    return w.getvalue()


def _schema_or_strings(value: Any, depth: int) -> bytes:
    w = Writer()
    if isinstance(value, list):
        for item in value:
            _write_scalar(w, 2, "string", item, "JSONSchemaPropsOrStringArray")
    elif value is not None:
        w.bytes_field(1, message(f"{_APIEXT}.JSONSchemaProps", value, depth + 1))
    return w.getvalue()


_SPECIAL: dict[str, Callable[[Any, int], bytes]] = {
    f"{table.META}.Time": _time,
    f"{table.META}.MicroTime": _micro_time,
    f"{table.META}.Duration": _duration,
    f"{table.META}.FieldsV1": _raw_json,
    "k8s.io.apimachinery.pkg.api.resource.Quantity": _quantity,
    "k8s.io.apimachinery.pkg.api.resource.QuantityValue": _quantity,
    "k8s.io.apimachinery.pkg.util.intstr.IntOrString": _int_or_string,
    "k8s.io.apimachinery.pkg.runtime.RawExtension": _raw_json,
    f"{_APIEXT}.JSON": _raw_json,
    f"{_APIEXT}.JSONSchemaPropsOrArray": _schema_or_array,
    f"{_APIEXT}.JSONSchemaPropsOrBool": _schema_or_bool,
    f"{_APIEXT}.JSONSchemaPropsOrStringArray": _schema_or_strings,
}


def message(name: str, value: Any, depth: int = 0) -> bytes:
    """The protobuf bytes of message `name` holding the JSON-form `value`."""
    if depth > MAX_DEPTH:
        raise ProtobufError(f"objects nested deeper than {MAX_DEPTH}")
    special = _SPECIAL.get(name)
    if special is not None:
        return special(value, depth)
    return _struct(table.message(name), value, depth)


def encode_envelope(obj: dict[str, Any]) -> bytes:
    """`k8s\\0` + runtime.Unknown carrying `obj`, typed by its apiVersion and kind."""
    api_version, kind = obj.get("apiVersion"), obj.get("kind")
    if not isinstance(api_version, str) or not isinstance(kind, str) or not kind:
        raise ProtobufError("the object needs a string apiVersion and kind")
    raw = message(table.message_for(api_version, kind), obj)
    type_meta = Writer()
    type_meta.bytes_field(1, api_version.encode())
    type_meta.bytes_field(2, kind.encode())
    unknown = Writer()
    unknown.bytes_field(1, type_meta.getvalue())
    unknown.bytes_field(2, raw)
    unknown.bytes_field(3, b"")
    unknown.bytes_field(4, b"")
    return MAGIC + unknown.getvalue()
