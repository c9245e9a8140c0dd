"""A container's environment, as kubelet builds it.

In order: `envFrom` (ConfigMaps and Secrets, each key a variable, with an
optional prefix), then `env` entries: literal values (with `$(VAR)`
references to variables defined before), `fieldRef` (downward API),
`configMapKeyRef` and `secretKeyRef`. A missing ConfigMap, Secret or key
that is not `optional` raises `ConfigError` (the container waits with
CreateContainerConfigError). The node may read only the ConfigMaps and
Secrets its own pods reference (see hypernetes.api.nodes.node_authorizer).
"""

from __future__ import annotations

import base64
import re
from collections.abc import Awaitable, Callable
from typing import Any

from hypernetes.client import CONFIGMAPS, SECRETS, Client, NotFound, Resource

Obj = dict[str, Any]
_REF = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


class ConfigError(Exception):
    """A referenced ConfigMap, Secret or key is missing."""


def expand(value: str, env: dict[str, str]) -> str:
    """kube's `$(VAR)` expansion: defined variables are replaced, `$$` is a `$`."""

    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        return env.get(m.group(1), m.group(0))

    return _REF.sub(sub, value)


class Sources:
    """Reads ConfigMaps and Secrets of one namespace, once per container start."""

    def __init__(self, client: Client, namespace: str) -> None:
        self.client = client
        self.namespace = namespace
        self._cache: dict[tuple[str, str], dict[str, str] | None] = {}

    async def data(self, kind: str, name: str) -> dict[str, str] | None:
        key = (kind, name)
        if key not in self._cache:
            resource: Resource = CONFIGMAPS if kind == "ConfigMap" else SECRETS
            try:
                obj = await self.client.get(resource, name, self.namespace)
            except NotFound:
                self._cache[key] = None
            else:
                raw = obj.get("data") or {}
                if kind == "Secret":
                    values = {
                        k: base64.b64decode(v).decode(errors="replace") for k, v in raw.items()
                    }
                else:
                    values = {k: str(v) for k, v in raw.items()}
                self._cache[key] = values
        return self._cache[key]


async def build_env(
    c: Obj, fields: dict[str, str], lookup: Callable[[str, str], Awaitable[dict[str, str] | None]]
) -> dict[str, str]:
    env: dict[str, str] = {}
    for source in c.get("envFrom") or []:
        prefix = source.get("prefix") or ""
        for kind, key in (("ConfigMap", "configMapRef"), ("Secret", "secretRef")):
            ref = source.get(key)
            if ref is None:
                continue
            data = await lookup(kind, ref.get("name", ""))
            if data is None:
                if ref.get("optional"):
                    continue
                raise ConfigError(f'{kind.lower()} "{ref.get("name")}" not found')
            env.update({prefix + k: v for k, v in data.items()})
    for e in c.get("env") or []:
        name = e["name"]
        if "valueFrom" not in e:
            env[name] = expand(str(e.get("value", "")), env)
            continue
        value = await _value_from(e["valueFrom"], fields, lookup)
        if value is not None:
            env[name] = value
    return env


async def _value_from(
    source: Obj,
    fields: dict[str, str],
    lookup: Callable[[str, str], Awaitable[dict[str, str] | None]],
) -> str | None:
    if "fieldRef" in source:
        path = source["fieldRef"].get("fieldPath", "")
        annotations = re.fullmatch(r"metadata\.(labels|annotations)\['(.+)'\]", path)
        if annotations:
            return fields.get(f"{annotations.group(1)}:{annotations.group(2)}", "")
        return fields.get(path, "")
    for kind, key in (("ConfigMap", "configMapKeyRef"), ("Secret", "secretKeyRef")):
        ref = source.get(key)
        if ref is None:
            continue
        data = await lookup(kind, ref.get("name", ""))
        if data is None or ref.get("key") not in data:
            if ref.get("optional"):
                return None
            what = f'{kind.lower()} "{ref.get("name")}"'
            raise ConfigError(
                f"{what} not found"
                if data is None
                else f"couldn't find key {ref.get('key')} in {what}"
            )
        return data[ref["key"]]
    return None  # resourceFieldRef: not served
