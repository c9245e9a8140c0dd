"""Kubernetes protobuf request bodies (`application/vnd.kubernetes.protobuf`).

kubectl and client-go send built-in kinds as protobuf: the four bytes
`k8s\\0`, then a `runtime.Unknown` whose TypeMeta names the kind and whose
`raw` holds the object's message. The server keeps objects as JSON dicts, so
`decode` turns such a body into the exact JSON form Kubernetes would produce
for the same object; `encode` goes the other way (for tests and clients).

Field facts come from messages.json (see table.py and scripts/gen-proto-table);
no protobuf library is needed at run time.
"""

from __future__ import annotations

from typing import Any

from hypernetes.api.protobuf.decoder import decode_envelope
from hypernetes.api.protobuf.encoder import encode_envelope
from hypernetes.api.protobuf.wire import ProtobufError

MEDIA_TYPE = "application/vnd.kubernetes.protobuf"

__all__ = ["MEDIA_TYPE", "ProtobufError", "decode", "encode"]


def decode(body: bytes) -> dict[str, Any]:
    """The object in a protobuf body, as a JSON-form dict with apiVersion and kind.

    Raises ProtobufError on anything malformed: a missing magic prefix, a
    truncated or overlong varint, a wrong wire type, invalid UTF-8, a kind the
    table does not know.
    """
    return decode_envelope(bytes(body))


def encode(obj: dict[str, Any]) -> bytes:
    """The protobuf body for a JSON-form object with apiVersion and kind."""
    return encode_envelope(obj)
