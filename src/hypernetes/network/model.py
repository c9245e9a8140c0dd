"""Records and errors of the network datapath, and small netlink helpers shared by its modules."""

from __future__ import annotations

import dataclasses
import ipaddress
from typing import Any

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

ENODEV = 19


class NetworkError(Exception):
    """Base of datapath errors."""


class NotFound(NetworkError):
    """A tenant, network, pod namespace or attachment does not exist."""


class PodNetnsNotFound(NotFound):
    """The pod's network namespace does not exist."""


class Conflict(NetworkError):
    """The request contradicts what exists (different CIDR or VNI, a name owned by another)."""


class InterfaceExists(Conflict):
    """The pod's interface name is taken in its namespace."""


@dataclasses.dataclass(frozen=True)
class TenantInfo:
    tenant: str
    netns: str  # path of the tenant router namespace
    transit: ipaddress.IPv4Address  # the router's uplink address (SNAT source)


@dataclasses.dataclass(frozen=True)
class NetworkInfo:
    tenant: str
    name: str
    cidr: ipaddress.IPv4Network
    gateway: ipaddress.IPv4Address
    vni: int | None
    mtu: int
    bridge: str
    vxlan: str | None
    gateway_mac: str


@dataclasses.dataclass(frozen=True)
class Attachment:
    """A pod's NIC on a tenant Network: what the runtime and the pod need to know."""

    tenant: str
    network: str
    pod_id: str
    kind: str  # "veth" (runc pods) | "tap" (VM pods)
    ip: ipaddress.IPv4Interface  # address/prefix of the pod
    gateway: ipaddress.IPv4Address
    mac: str  # the pod's MAC (for a VM: give it to the guest NIC)
    mtu: int
    port: str  # bridge port in the tenant namespace (for "tap": the TAP's name)
    ifname: str | None  # name inside the pod namespace ("veth"), None for "tap"
    netns: str  # "veth": the pod's namespace; "tap": the tenant namespace holding the TAP
    tenant_netns: str

    def to_json(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d.update(ip=str(self.ip), gateway=str(self.gateway))
        return d


@dataclasses.dataclass(frozen=True)
class RemoteEndpoint:
    """A pod on another host of the same Network: where to send frames for it."""

    ip: ipaddress.IPv4Address
    mac: str
    host: ipaddress.IPv4Address  # that host's VTEP (underlay) address


@dataclasses.dataclass(frozen=True)
class PortInfo:
    """A pod port found in the kernel (from its alias)."""

    tenant: str
    network: str
    pod_key: str  # the pod id, or "#<digest>" for long ids (see names.pod_key)
    kind: str
    port: str
    mac: str
    ip: str


def get_link(ipr: IPRoute, name: str) -> Any | None:
    """The link message for `name`, or None if there is no such link."""
    try:
        return ipr.link("get", ifname=name)[0]
    except NetlinkError as exc:
        if exc.code == ENODEV:
            return None
        raise


def delete_link(ipr: IPRoute, index: int) -> bool:
    """Delete a link; False if it was already gone (a pod namespace being destroyed
    takes its veth along asynchronously, so links may vanish under our feet)."""
    try:
        ipr.link("del", index=index)
    except NetlinkError as exc:
        if exc.code == ENODEV:
            return False
        raise
    return True


def ipv4_addresses(ipr: IPRoute, index: int) -> list[ipaddress.IPv4Interface]:
    return [
        ipaddress.IPv4Interface(f"{a.get_attr('IFA_ADDRESS')}/{a['prefixlen']}")
        for a in ipr.get_addr(family=2, index=index)
    ]
