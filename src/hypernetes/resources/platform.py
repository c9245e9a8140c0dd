"""Hypernetes' own kinds in `hypernetes.io/v1`: Tenant, User and Network.

They are served like built-in kinds but described by structural schemas (as a
CRD would be), so validation, defaulting, pruning, Tables and OpenAPI go
through the same code as CRD-served kinds. Each kind's schema lives here; the
behaviour around it (the tenant boundary, the auth-controller, the network
controller) lives with its part.
"""

from __future__ import annotations

from typing import Any

from hypernetes.resources.registry import ResourceType

Schema = dict[str, Any]

GROUP = "hypernetes.io"
VERSION = "v1"
TENANT_LABEL = "hypernetes.io/tenant"
"""Label naming the owning tenant, set by admission on tenant-owned objects; immutable."""

ROLES = ("admin", "member", "reader")
"""Tenant roles, as identity roles of the same names on the tenant's project."""

_STR: Schema = {"type": "string"}
_BOOL_FALSE: Schema = {"type": "boolean", "default": False}
_STR_MAP: Schema = {"type": "object", "additionalProperties": _STR}
_QUANTITIES: Schema = {
    "type": "object",
    "additionalProperties": {"x-kubernetes-int-or-string": True},
}


def _kind(spec: Schema, status: Schema, required: list[str] | None = None) -> Schema:
    spec_schema = dict(spec)
    if required:
        spec_schema["required"] = required
    return {
        "type": "object",
        "properties": {
            "apiVersion": _STR,
            "kind": _STR,
            "metadata": {"type": "object"},
            "spec": spec_schema,
            "status": status,
        },
    }


TENANT_SCHEMA = _kind(
    {
        "type": "object",
        "default": {},
        "properties": {
            "displayName": _STR,
            "description": _STR,
            "nodeSelector": _STR_MAP,
            "quota": {
                "type": "object",
                "description": "Tenant-wide limits counted across all the tenant's namespaces "
                "(same resource names as ResourceQuota.spec.hard).",
                "properties": {"hard": _QUANTITIES},
            },
            "policy": {
                "type": "object",
                "default": {},
                "description": "What the tenant's pods and services may do beyond the "
                "restricted default.",
                "properties": {
                    "allowPrivileged": _BOOL_FALSE,
                    "allowPrivilegeEscalation": _BOOL_FALSE,
                    "allowedCapabilities": {"type": "array", "items": _STR},
                    "allowHostNamespaces": _BOOL_FALSE,
                    "allowHostPorts": _BOOL_FALSE,
                    "allowHostPath": _BOOL_FALSE,
                    "allowNodePort": _BOOL_FALSE,
                    "allowLoadBalancer": _BOOL_FALSE,
                },
            },
        },
    },
    {
        "type": "object",
        "properties": {
            "phase": _STR,
            "projectID": _STR,
            "quota": {
                "type": "object",
                "properties": {"hard": _QUANTITIES, "used": _QUANTITIES},
            },
        },
    },
)

USER_SCHEMA = _kind(
    {
        "type": "object",
        "properties": {
            "tenant": _STR,
            "role": {"type": "string", "enum": list(ROLES)},
            "displayName": _STR,
            "email": _STR,
            "enabled": {"type": "boolean", "default": True},
        },
    },
    {
        "type": "object",
        "properties": {
            "phase": _STR,
            "userID": _STR,
            "role": {"type": "string", "description": "The role the identity service holds now."},
        },
    },
    required=["tenant", "role"],
)

NETWORK_SCHEMA = _kind(
    {
        "type": "object",
        "properties": {
            "tenant": {
                "type": "string",
                "description": "Owning tenant; set by admission for tenant principals; immutable.",
            },
            "cidr": {
                "type": "string",
                "description": "IPv4 range of the network (/8 to /29); immutable. Different "
                "tenants may use the same range.",
            },
            "gateway": {
                "type": "string",
                "description": "Gateway address inside cidr; defaults to its first host address.",
            },
        },
    },
    {
        "type": "object",
        "properties": {
            "phase": {"type": "string", "enum": ["Pending", "Ready", "Terminating", "Failed"]},
            "vni": {"type": "integer", "description": "VXLAN network identifier (cluster-wide)."},
            "message": _STR,
        },
    },
    required=["cidr"],
)


def _col(name: str, path: str, kind: str = "string", priority: int = 0) -> dict[str, Any]:
    return {"name": name, "type": kind, "jsonPath": path, "priority": priority}


_AGE = _col("Age", ".metadata.creationTimestamp", "date")

PLATFORM_KINDS: tuple[ResourceType, ...] = (
    ResourceType(
        GROUP,
        VERSION,
        "Tenant",
        "tenants",
        False,
        subresources=("status",),
        crd_schema=TENANT_SCHEMA,
        printer_columns=(_col("Phase", ".status.phase"), _AGE),
    ),
    ResourceType(
        GROUP,
        VERSION,
        "User",
        "users",
        False,
        subresources=("status",),
        crd_schema=USER_SCHEMA,
        printer_columns=(_col("Tenant", ".spec.tenant"), _col("Role", ".spec.role"), _AGE),
    ),
    ResourceType(
        GROUP,
        VERSION,
        "Network",
        "networks",
        False,
        short_names=("net",),
        subresources=("status",),
        crd_schema=NETWORK_SCHEMA,
        printer_columns=(
            _col("Tenant", ".spec.tenant"),
            _col("CIDR", ".spec.cidr"),
            _col("Gateway", ".spec.gateway"),
            _col("Phase", ".status.phase"),
            _col("VNI", ".status.vni", "integer", 1),
            _AGE,
        ),
    ),
)
