"""Reading request bodies and writing responses: JSON and YAML, size limits."""

from __future__ import annotations

import json
from typing import Any

import yaml

from hypernetes.api import errors, protobuf

MAX_BODY = 3 * 1024 * 1024
"""Largest request body accepted, as kube-apiserver (3 MiB)."""

JSON = "application/json"
YAML = "application/yaml"


def decode(body: bytes, content_type: str) -> Any:
    """Parse a request body by its media type; 400 on malformed input."""
    media = content_type.split(";")[0].strip().lower()
    if len(body) > MAX_BODY:
        raise errors.too_large(MAX_BODY)
    if media == protobuf.MEDIA_TYPE:
        try:
            return protobuf.decode(body)
        except protobuf.ProtobufError as exc:
            raise errors.bad_request(f"error decoding protobuf: {exc}") from None
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise errors.bad_request("request body is not valid UTF-8") from None
    if media in ("application/yaml", "application/apply-patch+yaml", "application/x-yaml"):
        try:
            return yaml.load(text, Loader=_StrictLoader)
        except yaml.YAMLError as exc:
            raise errors.bad_request(f"error decoding YAML: {_one_line(str(exc))}") from None
    if media in (
        "application/json",
        "application/json-patch+json",
        "application/merge-patch+json",
        "application/strategic-merge-patch+json",
        "",
        "*/*",
    ):
        try:
            return json.loads(text, object_pairs_hook=_no_duplicates)
        except json.JSONDecodeError as exc:
            raise errors.bad_request(f"error decoding JSON: {exc}") from None
        except _DuplicateKey as exc:
            raise errors.bad_request(f'json: duplicate field "{exc.key}"') from None
    raise errors.unsupported_media_type(content_type)


def decode_object(body: bytes, content_type: str) -> dict[str, Any]:
    obj = decode(body, content_type)
    if not isinstance(obj, dict):
        raise errors.bad_request("the request body must be a JSON object")
    return obj


def encode(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def encode_yaml(obj: Any) -> bytes:
    return yaml.safe_dump(obj, sort_keys=False).encode()


class _DuplicateKey(Exception):
    def __init__(self, key: str) -> None:
        self.key = key


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise _DuplicateKey(k)
        out[k] = v
    return out


class _StrictLoader(yaml.SafeLoader):
    """A safe YAML loader that refuses duplicate keys and keeps timestamps as strings."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


# Kubernetes treats YAML timestamps as strings; so must we.
_StrictLoader.yaml_implicit_resolvers = {
    k: [(tag, rx) for tag, rx in v if tag != "tag:yaml.org,2002:timestamp"]
    for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _one_line(text: str) -> str:
    return " ".join(text.split())
