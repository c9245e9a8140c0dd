"""The Kubernetes protobuf message table, loaded from messages.json.

messages.json is written by scripts/gen-proto-table from the descriptors and
Go struct tags compiled into kubectl (see that script). For each message it
holds the Go kind of the type (`struct`, or `slice` for list wrappers such as
`ExtraValue`) and the fields as [number, JSON name, proto type, flags, ref]:
flags `r` repeated, `p` Go pointer, `o` omitempty, `i` inlined into the parent
JSON object, `x` absent from JSON; ref names the field's message, or for maps
gives [key type, value type, value message].

This module turns those rows into `Message` / `Field` objects on first use
and maps a TypeMeta (apiVersion, kind) to the message that encodes it.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from importlib import resources
from typing import Any

from hypernetes.api.protobuf.wire import ProtobufError

META = "k8s.io.apimachinery.pkg.apis.meta.v1"

# API group/version -> proto package of its types.
GROUP_PACKAGES: dict[str, str] = {
    "v1": "k8s.io.api.core.v1",
    "apps/v1": "k8s.io.api.apps.v1",
    "rbac.authorization.k8s.io/v1": "k8s.io.api.rbac.v1",
    "coordination.k8s.io/v1": "k8s.io.api.coordination.v1",
    "authorization.k8s.io/v1": "k8s.io.api.authorization.v1",
    "authentication.k8s.io/v1": "k8s.io.api.authentication.v1",
    "autoscaling/v1": "k8s.io.api.autoscaling.v1",
    "policy/v1": "k8s.io.api.policy.v1",
    "apiextensions.k8s.io/v1": "k8s.io.apiextensions_apiserver.pkg.apis.apiextensions.v1",
    "meta.k8s.io/v1": META,
}

# meta/v1 kinds that every group version registers (metav1.AddToGroupVersion),
# so a client may send e.g. {apiVersion: apps/v1, kind: DeleteOptions}.
META_KINDS = frozenset(
    {
        "DeleteOptions",
        "CreateOptions",
        "UpdateOptions",
        "PatchOptions",
        "GetOptions",
        "ListOptions",
        "Status",
        "WatchEvent",
    }
)


@dataclass(frozen=True, slots=True)
class Field:
    number: int
    json: str
    type: str
    """Proto scalar type name, `message`, or `map`."""
    repeated: bool
    pointer: bool
    omitempty: bool
    inline: bool
    hidden: bool
    ref: str | None
    """Message name of a message field, or of a map's message values."""
    key_type: str | None = None
    value_type: str | None = None


@dataclass(frozen=True, slots=True)
class Message:
    name: str
    kind: str
    fields: tuple[Field, ...]
    by_number: dict[int, Field]
    by_json: dict[str, Field]


@functools.cache
def _raw() -> dict[str, Any]:
    path = resources.files("hypernetes.api.protobuf") / "messages.json"
    with path.open("rb") as f:
        data: dict[str, Any] = json.load(f)
    return data


def sources() -> list[dict[str, Any]]:
    """Where the table came from (binaries, Kubernetes versions)."""
    return list(_raw()["sources"])


def names() -> frozenset[str]:
    return frozenset(_raw()["messages"])


def _field(row: list[Any]) -> Field:
    number, json_name, ptype, flags, ref = row
    key_type = value_type = None
    if ptype == "map":
        key_type, value_type = ref[0], ref[1]
        ref = ref[2] if len(ref) > 2 else None
    return Field(
        number=number,
        json=json_name,
        type=ptype,
        repeated="r" in flags,
        pointer="p" in flags,
        omitempty="o" in flags,
        inline="i" in flags,
        hidden="x" in flags,
        ref=ref,
        key_type=key_type,
        value_type=value_type,
    )


@functools.cache
def message(name: str) -> Message:
    """The message called `name`; ProtobufError if the table has none."""
    try:
        kind, rows = _raw()["messages"][name]
    except KeyError:
        raise ProtobufError(f"no protobuf message {name}") from None
    fields = tuple(_field(row) for row in rows)
    return Message(
        name=name,
        kind=kind,
        fields=fields,
        by_number={f.number: f for f in fields},
        by_json={f.json: f for f in fields if not f.inline and not f.hidden},
    )


def _is_object(msg: Message) -> bool:
    """A top-level kind: it has `metadata` of type ObjectMeta or ListMeta."""
    meta = msg.by_json.get("metadata")
    return meta is not None and meta.ref in (f"{META}.ObjectMeta", f"{META}.ListMeta")


def message_for(api_version: str, kind: str) -> str:
    """The message name of a kind sent as `apiVersion`/`kind`; ProtobufError if none."""
    package = GROUP_PACKAGES.get(api_version)
    if package is None:
        raise ProtobufError(f"no protobuf types for apiVersion {api_version!r}")
    name = f"{package}.{kind}"
    if name in _raw()["messages"] and (_is_object(message(name)) or package == META):
        return name
    if kind in META_KINDS:
        return f"{META}.{kind}"
    raise ProtobufError(f"no kind {kind!r} is registered for version {api_version!r}")
