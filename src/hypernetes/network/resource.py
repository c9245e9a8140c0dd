"""The `Network` object (hypernetes.io/v1) as the network layer reads it: pure functions.

Shared by the API server's admission (validation), the network controller
(defaults, VNIs, deletion), the node-side reconciler and the CNI plugin's
server mode (which Network a pod is on). Nothing here talks to the kernel
or to the API server, so every caller can use it.

A Network is cluster-scoped and owned by one tenant (``spec.tenant`` and the
``hypernetes.io/tenant`` label). A pod is on the Network its
``hypernetes.io/network`` annotation names (which must be its own tenant's),
else on its tenant's default Network ``<tenant>-default``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from typing import Any

from hypernetes.resources.platform import TENANT_LABEL

Obj = dict[str, Any]


TENANT_EXTRA = "hypernetes.io/tenant"  # the tenant of a tenant principal (user.extra)
NETWORK_ANNOTATION = "hypernetes.io/network"
FINALIZER = "hypernetes.io/network-in-use"
DEFAULT_SUFFIX = "-default"
DEFAULT_CIDR = "10.244.0.0/24"
SERVICE_CIDR = "10.96.0.0/12"
"""The cluster's service range; no tenant Network may overlap it."""
EGRESS_CIDR = "100.127.0.0/16"
"""The datapath's per-host transit range (Datapath egress_cidr default)."""
MIN_PREFIX, MAX_PREFIX = 8, 29
VNI_MIN, VNI_MAX = 4096, (1 << 24) - 1
"""VNIs the controller hands out (below 4096 stays free for manual/standalone use)."""

PHASE_PENDING, PHASE_READY, PHASE_TERMINATING, PHASE_FAILED = (
    "Pending",
    "Ready",
    "Terminating",
    "Failed",
)


def default_network_name(tenant: str) -> str:
    return tenant + DEFAULT_SUFFIX


def name_of(obj: Obj) -> str:
    return str((obj.get("metadata") or {}).get("name", ""))


def tenant_of(network: Obj) -> str:
    return str((network.get("spec") or {}).get("tenant") or "")


def pod_tenant(pod: Obj, namespace_tenants: Mapping[str, str] | None = None) -> str | None:
    """The tenant a pod belongs to: its namespace's (authoritative: only the platform
    admin sets a namespace's tenant label), else the pod's own tenant label (which
    admission keeps equal to its namespace's)."""
    meta = pod.get("metadata") or {}
    if namespace_tenants is not None:
        tenant = namespace_tenants.get(str(meta.get("namespace", "")))
        if tenant:
            return tenant
    label = (meta.get("labels") or {}).get(TENANT_LABEL)
    return str(label) if label else None


def requested_network(pod: Obj) -> str | None:
    """The Network name a pod asks for by annotation, None for the default."""
    value = ((pod.get("metadata") or {}).get("annotations") or {}).get(NETWORK_ANNOTATION)
    return str(value) if value else None


def network_for_pod(pod: Obj, networks: Iterable[Obj], *, tenant: str | None = None) -> Obj | None:
    """The Network a pod is on: the one its annotation names, else its tenant's default.

    `tenant` is the pod's tenant from its namespace and takes precedence over the
    pod's tenant label. A Network of another tenant is never returned, whatever
    the annotation says; None when the pod has no tenant or its network does not
    exist.
    """
    owner = tenant or pod_tenant(pod)
    if not owner:
        return None
    wanted = requested_network(pod) or default_network_name(owner)
    for network in networks:
        if name_of(network) == wanted and tenant_of(network) == owner:
            return network
    return None


def is_ready_network(network: Obj) -> bool:
    """Ready: the controller gave it a VNI, nodes may build it."""
    status = network.get("status") or {}
    return status.get("phase") == PHASE_READY and bool(status.get("vni"))


def pod_uses_network(pod: Obj) -> bool:
    """A pod holds its address until it is finished (or gone)."""
    phase = (pod.get("status") or {}).get("phase")
    host_network = (pod.get("spec") or {}).get("hostNetwork")
    return phase not in ("Succeeded", "Failed") and not host_network


def pod_ref(pod: Obj) -> str:
    """How a lease records its pod: namespace/name/uid (reclaimed once that uid is gone)."""
    meta = pod.get("metadata") or {}
    return f"{meta.get('namespace', '')}/{meta.get('name', '')}/{meta.get('uid', '')}"


def ref_uid(ref: str) -> str:
    return ref.rpartition("/")[2]


# -- validation ------------------------------------------------------------------------
Cause = dict[str, str]


def _invalid(field: str, value: Any, why: str) -> Cause:
    return {
        "reason": "FieldValueInvalid",
        "message": f"Invalid value: {str(value)!r}: {why}",
        "field": field,
    }


def _required(field: str) -> Cause:
    return {"reason": "FieldValueRequired", "message": "Required value", "field": field}


def parse_cidr(value: Any) -> tuple[ipaddress.IPv4Network | None, str]:
    """(network, "") or (None, why it is not a sane tenant CIDR)."""
    if not isinstance(value, str) or not value:
        return None, "must be an IPv4 CIDR such as 10.244.0.0/24"
    try:
        net = ipaddress.IPv4Network(value, strict=False)
    except ValueError:
        return None, "must be an IPv4 CIDR such as 10.244.0.0/24"
    if "/" not in value:
        return None, "must include a prefix length"
    if not MIN_PREFIX <= net.prefixlen <= MAX_PREFIX:
        return None, f"prefix length must be between /{MIN_PREFIX} and /{MAX_PREFIX}"
    if str(net.network_address) != value.split("/")[0]:
        return None, f"must be the network address of the range ({net})"
    if net.is_loopback or net.is_multicast or net.is_link_local or net.is_reserved:
        return None, "must be a unicast range (not loopback, link-local, multicast or reserved)"
    return net, ""


def validate_spec(
    spec: Obj,
    *,
    reserved: Iterable[tuple[str, ipaddress.IPv4Network]] = (),
) -> list[Cause]:
    """Causes for `spec.cidr` and `spec.gateway` (the gateway must already be defaulted).

    `reserved` are (what, range) pairs no Network may overlap: the service range,
    the transit range, the host's own routes and addresses.
    """
    causes: list[Cause] = []
    raw = spec.get("cidr")
    if not raw:
        return [_required("spec.cidr")]
    net, why = parse_cidr(raw)
    if net is None:
        return [_invalid("spec.cidr", raw, why)]
    for what, other in reserved:
        if net.overlaps(other):
            causes.append(_invalid("spec.cidr", raw, f"overlaps {what} {other}"))
    gateway = spec.get("gateway")
    try:
        gw = ipaddress.IPv4Address(gateway)
    except ValueError:
        return [*causes, _invalid("spec.gateway", gateway, "must be an IPv4 address")]
    if gw not in net or gw in (net.network_address, net.broadcast_address):
        causes.append(_invalid("spec.gateway", gateway, f"must be a host address of {net}"))
    return causes


def same_tenant_overlaps(network: Obj, others: Iterable[Obj]) -> list[Obj]:
    """Other Networks of the same tenant whose CIDR overlaps this one's."""
    net, _ = parse_cidr((network.get("spec") or {}).get("cidr"))
    if net is None:
        return []
    found = []
    for other in others:
        if name_of(other) == name_of(network) or tenant_of(other) != tenant_of(network):
            continue
        theirs, _ = parse_cidr((other.get("spec") or {}).get("cidr"))
        if theirs is not None and theirs.overlaps(net):
            found.append(other)
    return found


def default_gateway(cidr: str) -> str | None:
    net, _ = parse_cidr(cidr)
    return str(net.network_address + 1) if net is not None else None


def host_ranges() -> list[tuple[str, ipaddress.IPv4Network]]:
    """This host's own IPv4 addresses and routes (main table, default route excluded)."""
    from pyroute2 import IPRoute  # the kernel only when asked (pure module otherwise)

    found: list[tuple[str, ipaddress.IPv4Network]] = []
    egress = ipaddress.IPv4Network(EGRESS_CIDR)
    with IPRoute() as ipr:
        for addr in ipr.get_addr(family=2):
            iface = ipaddress.IPv4Interface(f"{addr.get_attr('IFA_ADDRESS')}/{addr['prefixlen']}")
            if not iface.ip.is_loopback and iface.ip not in egress:
                found.append(("a host address", ipaddress.IPv4Network(f"{iface.ip}/32")))
        for route in ipr.get_routes(family=2, table=254):
            dst = route.get_attr("RTA_DST")
            if dst is None or route["dst_len"] == 0:
                continue  # the default route covers everything; it is no clash
            net = ipaddress.IPv4Network(f"{dst}/{route['dst_len']}", strict=False)
            if not net.is_loopback and not net.subnet_of(egress):
                found.append(("a host route", net))
    return found
