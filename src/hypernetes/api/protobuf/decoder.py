"""Protobuf message bytes to the JSON form Kubernetes gives the same object.

Kubernetes' Go code decodes a protobuf body into its API structs; what it
would store and show is then `encoding/json` of those structs. We reproduce
that second step directly from the wire, field by field, with the Go facts
from the table:

- a field absent from the wire holds its Go zero value; `omitempty` drops
  zero scalars, empty strings, nil pointers and empty slices and maps, but
  never a struct (so `resources: {}` and `creationTimestamp: null` stay);
- non-omitempty fields that are nil render `null`;
- `[]byte` renders base64, maps render objects, inline structs merge into
  their parent;
- the apimachinery types with their own JSON form (Time, MicroTime,
  Duration, Quantity, IntOrString, RawExtension, FieldsV1, apiextensions
  JSON and the JSONSchemaProps unions) are converted by hand below.
"""

from __future__ import annotations

import base64
import datetime
import json
import math
import re
from collections.abc import Callable
from typing import Any

from hypernetes.api.protobuf import table
from hypernetes.api.protobuf.wire import (
    I32,
    I64,
    LEN,
    VARINT,
    ProtobufError,
    as_double,
    as_float,
    fields,
    read_varint,
    signed,
    unzigzag,
)

MAX_DEPTH = 100
"""Deepest message nesting accepted (JSONSchemaProps can recurse)."""

MAGIC = b"k8s\x00"

_WIRE_OF = {
    "int32": VARINT,
    "int64": VARINT,
    "uint32": VARINT,
    "uint64": VARINT,
    "sint32": VARINT,
    "sint64": VARINT,
    "bool": VARINT,
    "enum": VARINT,
    "fixed64": I64,
    "sfixed64": I64,
    "double": I64,
    "fixed32": I32,
    "sfixed32": I32,
    "float": I32,
    "string": LEN,
    "bytes": LEN,
    "message": LEN,
    "map": LEN,
}

_ZERO: dict[str, Any] = {
    "string": "",
    "bool": False,
    "double": 0,
    "float": 0,
}

_WIRE_NAMES = {VARINT: "varint", I64: "64-bit", LEN: "length-delimited", I32: "32-bit"}


def _number(ftype: str, value: int) -> Any:
    """A VARINT / I64 / I32 value as the Go type renders in JSON."""
    if ftype in ("int32", "enum"):
        return signed(value, 32)
    if ftype in ("int64", "sfixed64"):
        return signed(value, 64)
    if ftype == "sfixed32":
        return signed(value, 32)
    if ftype == "uint32":
        return value & 0xFFFFFFFF
    if ftype in ("uint64", "fixed64", "fixed32"):
        return value
    if ftype == "bool":
        return value != 0
    if ftype == "sint32":
        return signed(unzigzag(value & 0xFFFFFFFF), 32)
    if ftype == "sint64":
        return unzigzag(value)
    number = as_double(value) if ftype == "double" else as_float(value)
    if not math.isfinite(number):
        raise ProtobufError(f"unsupported {ftype} value {number}")
    return int(number) if number.is_integer() and abs(number) < 2**63 else number


def _text(data: bytes, start: int, end: int) -> str:
    try:
        return data[start:end].decode("utf-8")
    except UnicodeDecodeError:
        raise ProtobufError("string field is not valid UTF-8") from None


def _scalar(f_type: str, data: bytes, wire: int, a: int, b: int) -> Any:
    if f_type == "string":
        return _text(data, a, b)
    if f_type == "bytes":
        return base64.b64encode(data[a:b]).decode("ascii")
    return _number(f_type, a)


def _check_wire(name: str, number: int, f_type: str, wire: int, repeated: bool) -> None:
    expected = _WIRE_OF[f_type]
    if wire == expected or (repeated and wire == LEN and expected != LEN):
        return
    raise ProtobufError(
        f"{name} field {number}: wrong wire type {_WIRE_NAMES.get(wire, wire)} for {f_type}"
    )


def _packed(f_type: str, data: bytes, a: int, b: int) -> list[Any]:
    """Values of a packed repeated scalar field."""
    out: list[Any] = []
    pos = a
    wire = _WIRE_OF[f_type]
    while pos < b:
        if wire == VARINT:
            value, pos = read_varint(data, pos, b)
        else:
            size = 8 if wire == I64 else 4
            if pos + size > b:
                raise ProtobufError("truncated packed field")
            value = int.from_bytes(data[pos : pos + size], "little")
            pos += size
        out.append(_number(f_type, value))
    return out


class _Slot:
    """What the wire said about one field of one message."""

    __slots__ = ("chunks", "items", "value")

    def __init__(self) -> None:
        self.value: Any = None
        self.items: list[Any] | dict[str, Any] | None = None
        self.chunks: list[tuple[int, int]] | None = None


def _payload(data: bytes, chunks: list[tuple[int, int]]) -> tuple[bytes, int, int]:
    """One message payload; repeated occurrences of a message field merge (concatenate)."""
    if len(chunks) == 1:
        return data, chunks[0][0], chunks[0][1]
    joined = b"".join(data[a:b] for a, b in chunks)
    return joined, 0, len(joined)


def _map_entry(field: table.Field, data: bytes, a: int, b: int, depth: int) -> tuple[str, Any]:
    key: Any = _ZERO.get(field.key_type or "", 0)
    value: Any = None
    value_chunks: list[tuple[int, int]] = []
    for number, wire, x, y in fields(data, a, b):
        if number == 1:
            _check_wire("map entry", 1, field.key_type or "", wire, False)
            key = _scalar(field.key_type or "", data, wire, x, y)
        elif number == 2:
            _check_wire("map entry", 2, field.value_type or "", wire, False)
            if field.value_type == "message":
                value_chunks.append((x, y))
            else:
                value = _scalar(field.value_type or "", data, wire, x, y)
    if field.value_type == "message":
        assert field.ref is not None
        payload = _payload(data, value_chunks) if value_chunks else (b"", 0, 0)
        value = message(field.ref, *payload, depth + 1)
    elif value is None:
        value = _ZERO.get(field.value_type or "", 0)
    if isinstance(key, bool):
        key = "true" if key else "false"
    return str(key), value


def _struct(msg: table.Message, data: bytes, start: int, end: int, depth: int) -> Any:
    slots: dict[int, _Slot] = {}
    for number, wire, a, b in fields(data, start, end):
        field = msg.by_number.get(number)
        if field is None:
            continue  # unknown fields are skipped, as Go's generated code does
        _check_wire(msg.name, number, field.type, wire, field.repeated)
        slot = slots.get(number)
        if slot is None:
            slot = slots[number] = _Slot()
        if field.type == "map":
            if slot.items is None:
                slot.items = {}
            key, value = _map_entry(field, data, a, b, depth)
            assert isinstance(slot.items, dict)
            slot.items[key] = value
        elif field.repeated:
            if slot.items is None:
                slot.items = []
            assert isinstance(slot.items, list)
            if field.type == "message":
                assert field.ref is not None
                slot.items.append(message(field.ref, data, a, b, depth + 1))
            elif wire == LEN and _WIRE_OF[field.type] != LEN:
                slot.items.extend(_packed(field.type, data, a, b))
            else:
                slot.items.append(_scalar(field.type, data, wire, a, b))
        elif field.type == "message":
            if slot.chunks is None:
                slot.chunks = []
            slot.chunks.append((a, b))
        else:
            slot.value = _scalar(field.type, data, wire, a, b)
    if msg.kind == "slice":
        return _slice(msg, slots)
    out: dict[str, Any] = {}
    for field in msg.fields:
        if field.hidden:
            continue
        slot = slots.get(field.number)
        if field.type == "map" or field.repeated:
            items = slot.items if slot is not None else None
            if items:
                out[field.json] = items
            elif not field.omitempty:
                out[field.json] = None
        elif field.type == "message":
            assert field.ref is not None
            if slot is None or slot.chunks is None:
                if field.pointer:
                    if not field.omitempty:
                        out[field.json] = None
                    continue
                value = message(field.ref, b"", 0, 0, depth + 1)
            else:
                value = message(field.ref, *_payload(data, slot.chunks), depth + 1)
            if field.inline and isinstance(value, dict):
                out.update(value)
            elif value == [] and table.message(field.ref).kind == "slice":
                # A Go slice type left nil by its Unmarshal: omitempty drops it, else null.
                if not field.omitempty:
                    out[field.json] = None
            else:
                out[field.json] = value
        elif slot is None:
            if field.pointer or field.type == "bytes":
                if not field.omitempty:
                    out[field.json] = None
            elif not field.omitempty:
                out[field.json] = _ZERO.get(field.type, 0)
        elif field.pointer or not field.omitempty or slot.value:
            out[field.json] = slot.value
    return out


def _slice(msg: table.Message, slots: dict[int, _Slot]) -> list[Any]:
    """A Go slice type carried as a message with one repeated `items` field.

    Empty renders `[]`: as a map value Go unmarshals into a fresh non-nil slice.
    (As a struct field it stays nil; _struct handles that case.)
    """
    slot = slots.get(msg.fields[0].number) if msg.fields else None
    items = slot.items if slot is not None else None
    return list(items) if items else []


def _parse_fields(msg_name: str, data: bytes, start: int, end: int) -> dict[int, Any]:
    """A flat {number: value} for the small special messages (last value wins)."""
    msg = table.message(msg_name)
    out: dict[int, Any] = {}
    for number, wire, a, b in fields(data, start, end):
        field = msg.by_number.get(number)
        if field is None:
            continue
        _check_wire(msg_name, number, field.type, wire, field.repeated)
        if field.type == "bytes":
            out[number] = data[a:b]
        elif field.type == "message":
            out.setdefault(number, []).append((a, b))
        elif field.repeated:
            out.setdefault(number, []).append(_scalar(field.type, data, wire, a, b))
        else:
            out[number] = _scalar(field.type, data, wire, a, b)
    return out


_GO_ZERO_TIME = -62135596800
"""Unix seconds of Go's zero time.Time (year 1), which renders as null."""


def _utc(seconds: int) -> datetime.datetime:
    try:
        return datetime.datetime.fromtimestamp(seconds, datetime.UTC)
    except (OverflowError, OSError, ValueError):
        raise ProtobufError(f"timestamp {seconds} out of range") from None


def _time(data: bytes, start: int, end: int, depth: int) -> Any:
    if start == end:
        return None  # metav1.Time marshals the zero time as no bytes
    values = _parse_fields(f"{table.META}.Timestamp", data, start, end)
    seconds = values.get(1, 0)
    if seconds == _GO_ZERO_TIME:
        return None
    # metav1.Time keeps whole seconds only (Time.Unmarshal drops the nanos).
    return _utc(seconds).strftime("%Y-%m-%dT%H:%M:%SZ")


def _micro_time(data: bytes, start: int, end: int, depth: int) -> Any:
    if start == end:
        return None
    values = _parse_fields(f"{table.META}.Timestamp", data, start, end)
    nanos = values.get(2, 0)
    micros = int(nanos / 1000)  # truncated toward zero, as time.Duration.Truncate
    seconds, micros = divmod(values.get(1, 0) * 1_000_000 + micros, 1_000_000)
    if seconds == _GO_ZERO_TIME and micros == 0:
        return None
    return _utc(seconds).strftime("%Y-%m-%dT%H:%M:%S") + f".{micros:06d}Z"


def go_duration(ns: int) -> str:
    """Go's time.Duration.String()."""
    if ns == 0:
        return "0s"
    sign = "-" if ns < 0 else ""
    u = abs(ns)
    if u < 1_000_000_000:
        for unit, scale in (("ns", 1), ("µs", 1_000), ("ms", 1_000_000)):
            if u < scale * 1000:
                return sign + _fraction(u, scale) + unit
    hours, rest = divmod(u, 3_600_000_000_000)
    minutes, rest = divmod(rest, 60_000_000_000)
    out = _fraction(rest, 1_000_000_000) + "s"
    if hours or minutes:
        out = f"{minutes}m" + out
    if hours:
        out = f"{hours}h" + out
    return sign + out


def _fraction(value: int, scale: int) -> str:
    whole, frac = divmod(value, scale)
    if not frac:
        return str(whole)
    digits = str(frac).rjust(len(str(scale)) - 1, "0").rstrip("0")
    return f"{whole}.{digits}"


def _duration(data: bytes, start: int, end: int, depth: int) -> Any:
    values = _parse_fields(f"{table.META}.Duration", data, start, end)
    return go_duration(values.get(1, 0))


# resource.ParseQuantity's grammar: a signed decimal number, then a binary-SI,
# decimal-SI or exponent suffix.
_QUANTITY = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[KMGTPE]i|[numkMGTPE]|[eE][+-]?\d+)?")


def _quantity(data: bytes, start: int, end: int, depth: int) -> Any:
    """A resource.Quantity: its string, kept as sent (Go clients send canonical forms)."""
    values = _parse_fields("k8s.io.apimachinery.pkg.api.resource.Quantity", data, start, end)
    if 1 not in values:
        return "0"  # the zero Quantity
    text = values[1]
    if not _QUANTITY.fullmatch(text):
        raise ProtobufError(f"quantities must match the regular expression: {text!r}")
    return text


def _int_or_string(data: bytes, start: int, end: int, depth: int) -> Any:
    values = _parse_fields("k8s.io.apimachinery.pkg.util.intstr.IntOrString", data, start, end)
    kind = values.get(1, 0)
    if kind == 0:
        return values.get(2, 0)
    if kind == 1:
        return values.get(3, "")
    raise ProtobufError(f"IntOrString: impossible type {kind}")


def _embedded_json(raw: bytes, depth: int) -> Any:
    """Raw bytes of an embedded object: JSON, or a nested Kubernetes protobuf envelope."""
    if raw.startswith(MAGIC):
        return decode_envelope(raw, depth + 1)
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise ProtobufError("embedded raw object is neither JSON nor protobuf") from None
    except RecursionError:
        raise ProtobufError("embedded raw JSON is nested too deeply") from None


def _raw_extension(data: bytes, start: int, end: int, depth: int) -> Any:
    values = _parse_fields("k8s.io.apimachinery.pkg.runtime.RawExtension", data, start, end)
    raw = values.get(1)
    return None if not raw else _embedded_json(raw, depth)


def _fields_v1(data: bytes, start: int, end: int, depth: int) -> Any:
    values = _parse_fields(f"{table.META}.FieldsV1", data, start, end)
    raw = values.get(1)
    return None if not raw else _embedded_json(raw, depth)


_APIEXT = "k8s.io.apiextensions_apiserver.pkg.apis.apiextensions.v1"
_SCHEMA = f"{_APIEXT}.JSONSchemaProps"


def _apiext_json(data: bytes, start: int, end: int, depth: int) -> Any:
    values = _parse_fields(f"{_APIEXT}.JSON", data, start, end)
    raw = values.get(1)
    return None if not raw else _embedded_json(raw, depth)


def _schema(data: bytes, chunks: list[tuple[int, int]] | None, depth: int) -> Any:
    if not chunks:
        return None
    return message(_SCHEMA, *_payload(data, chunks), depth + 1)


def _schema_or_array(data: bytes, start: int, end: int, depth: int) -> Any:
    values = _parse_fields(f"{_APIEXT}.JSONSchemaPropsOrArray", data, start, end)
    if values.get(2):
        return [message(_SCHEMA, data, a, b, depth + 1) for a, b in values[2]]
    return _schema(data, values.get(1), depth)


def _schema_or_bool(data: bytes, start: int, end: int, depth: int) -> Any:
    values = _parse_fields(f"{_APIEXT}.JSONSchemaPropsOrBool", data, start, end)
    if values.get(2):
        return _schema(data, values[2], depth)
    return bool(values.get(1, False))


def _schema_or_strings(data: bytes, start: int, end: int, depth: int) -> Any:
    values = _parse_fields(f"{_APIEXT}.JSONSchemaPropsOrStringArray", data, start, end)
    if values.get(2):
        return list(values[2])
    return _schema(data, values.get(1), depth)


_SPECIAL: dict[str, Callable[[bytes, int, int, int], Any]] = {
    f"{table.META}.Time": _time,
    f"{table.META}.MicroTime": _micro_time,
    f"{table.META}.Duration": _duration,
    f"{table.META}.FieldsV1": _fields_v1,
    "k8s.io.apimachinery.pkg.api.resource.Quantity": _quantity,
    "k8s.io.apimachinery.pkg.api.resource.QuantityValue": _quantity,
    "k8s.io.apimachinery.pkg.util.intstr.IntOrString": _int_or_string,
    "k8s.io.apimachinery.pkg.runtime.RawExtension": _raw_extension,
    f"{_APIEXT}.JSON": _apiext_json,
    f"{_APIEXT}.JSONSchemaPropsOrArray": _schema_or_array,
    f"{_APIEXT}.JSONSchemaPropsOrBool": _schema_or_bool,
    f"{_APIEXT}.JSONSchemaPropsOrStringArray": _schema_or_strings,
}


def message(name: str, data: bytes, start: int, end: int, depth: int = 0) -> Any:
    """The JSON form of message `name` encoded in data[start:end]."""
    if depth > MAX_DEPTH:
        raise ProtobufError(f"messages nested deeper than {MAX_DEPTH}")
    special = _SPECIAL.get(name)
    if special is not None:
        return special(data, start, end, depth)
    return _struct(table.message(name), data, start, end, depth)


def decode_envelope(body: bytes, depth: int = 0) -> dict[str, Any]:
    """A `k8s\\0` + runtime.Unknown body as a JSON object with apiVersion and kind."""
    if not body.startswith(MAGIC):
        raise ProtobufError("missing the k8s protobuf magic prefix")
    if depth > MAX_DEPTH:
        raise ProtobufError(f"objects nested deeper than {MAX_DEPTH}")
    api_version = kind = ""
    raw: tuple[int, int] | None = None
    encoding = content_type = ""
    for number, wire, a, b in fields(body, len(MAGIC)):
        if number in (1, 2, 3, 4) and wire != LEN:
            raise ProtobufError(f"envelope field {number}: wrong wire type")
        if number == 1:
            for n, w, x, y in fields(body, a, b):
                if n in (1, 2) and w != LEN:
                    raise ProtobufError(f"TypeMeta field {n}: wrong wire type")
                if n == 1:
                    api_version = _text(body, x, y)
                elif n == 2:
                    kind = _text(body, x, y)
        elif number == 2:
            raw = (a, b)
        elif number == 3:
            encoding = _text(body, a, b)
        elif number == 4:
            content_type = _text(body, a, b)
    if encoding:
        raise ProtobufError(f"unsupported content encoding {encoding!r}")
    if content_type not in ("", "application/vnd.kubernetes.protobuf"):
        raise ProtobufError(f"unsupported embedded content type {content_type!r}")
    if not kind:
        raise ProtobufError("the envelope names no kind")
    name = table.message_for(api_version, kind)
    start, end = raw if raw is not None else (0, 0)
    obj = message(name, body if raw is not None else b"", start, end, depth)
    if not isinstance(obj, dict):
        raise ProtobufError(f"{kind} does not decode to an object")
    return {"kind": kind, "apiVersion": api_version, **obj}
