"""Collision-free, recognisable names for every kernel object the datapath creates.

Interface names must fit IFNAMSIZ (15 characters), so they are a three-letter
kind prefix plus 12 hex digits of a SHA-256 over the identity of the object
(48 bits: a collision needs ~16 million objects in one namespace). Every
name starts with ``hn`` and every nftables table with ``hypernetes`` so that
leftovers are easy to find. The full identity is also written to the link's
alias (``IFLA_IFALIAS``), which is how ownership is verified before anything
is reused or deleted, so a hash collision can fail an operation but never
hijack another tenant's object.

An *instance tag* separates independent datapaths on one machine (a node
agent and a test run, or several simulated hosts in tests): it is part of
every global name (network namespaces, links created in the host namespace,
the host nftables table).
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import re

PREFIX = "hn"
HASH_LEN = 12
# Link kinds (first three characters of a link name).
BRIDGE = "hnb"  # a tenant Network's bridge, inside the tenant router namespace
PORT = "hnp"  # a pod's bridge port: host end of a veth, or a TAP
VXLAN = "hnx"  # a Network's VXLAN port (created from the host namespace)
UPLINK_HOST = "hne"  # host end of a tenant router's egress veth
UPLINK_TENANT = "hn-uplink"  # tenant end of it, inside the tenant namespace (private name)
# nftables tables.
GUARD_TABLE = "hypernetes_guard"  # bridge family, anti-spoofing, in a tenant namespace
ROUTER_TABLE = "hypernetes_router"  # inet family, egress NAT and filtering, tenant namespace
HOST_TABLE_PREFIX = "hypernetes_"  # + tag: inet family, in the host namespace

_TAG_RE = re.compile(r"^[a-z0-9]{1,8}$")
_NAME_RE = re.compile(r"^[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?$")
ALIAS_MAX = 255  # IFALIASZ - 1


def digest(*parts: str) -> str:
    """Hex SHA-256 over the parts, unambiguously separated."""
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


def check_tag(tag: str) -> str:
    if not _TAG_RE.match(tag):
        raise ValueError(f"instance tag {tag!r} must be 1-8 characters of [a-z0-9]")
    return tag


def check_name(kind: str, name: str) -> str:
    """Tenant and network names: DNS-1123-like labels, as Kubernetes names are."""
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise ValueError(
            f"{kind} name {name!r} must be 1-63 characters of [a-z0-9.-], "
            "starting and ending with a letter or digit"
        )
    return name


def check_pod_id(pod_id: str) -> str:
    if not isinstance(pod_id, str) or not pod_id or len(pod_id) > 512 or not pod_id.isprintable():
        raise ValueError(f"pod id {pod_id!r} must be 1-512 printable characters")
    return pod_id


class Names:
    """All names of one datapath instance (one tag)."""

    def __init__(self, tag: str) -> None:
        self.tag = check_tag(tag)

    @property
    def netns_prefix(self) -> str:
        return f"{PREFIX}-{self.tag}-"

    def netns(self, tenant: str) -> str:
        return self.netns_prefix + digest("tenant", self.tag, tenant)[:HASH_LEN]

    def uplink_host(self, tenant: str) -> str:
        return UPLINK_HOST + digest("uplink", self.tag, tenant)[:HASH_LEN]

    def bridge(self, tenant: str, network: str) -> str:
        return BRIDGE + digest("bridge", tenant, network)[:HASH_LEN]

    def vxlan(self, tenant: str, network: str) -> str:
        # Created in the host namespace before it moves, so the tag is part of it.
        return VXLAN + digest("vxlan", self.tag, tenant, network)[:HASH_LEN]

    def port(self, tenant: str, network: str, pod_id: str) -> str:
        return PORT + digest("port", tenant, network, pod_id)[:HASH_LEN]

    @property
    def host_table(self) -> str:
        return HOST_TABLE_PREFIX + self.tag


def alias(kind: str, *parts: str) -> str:
    """The ownership record written to a link's alias.

    JSON keeps it unambiguous whatever the parts contain; an identity too long
    for the alias is replaced by its full digest (still exact for comparison).
    """
    text = f"hypernetes:{kind}:" + json.dumps(list(parts), separators=(",", ":"))
    if len(text.encode()) > ALIAS_MAX:
        text = f"hypernetes:{kind}:#" + digest(kind, *parts)
    return text


def pod_key(pod_id: str) -> str:
    """How a pod id appears in a port's alias: itself if short, else "#" + its digest.

    A port alias carries tenant, network, pod, kind, MAC and IP; tenant and
    network names are at most 63 characters, so 64 left for the pod keep the
    whole alias within its 255 bytes.
    """
    return pod_id if len(pod_id.encode()) <= 64 else "#" + digest("pod", pod_id)[:40]


def parse_alias(text: str | None) -> tuple[str, list[str]] | None:
    """(kind, parts) of an alias written by `alias`, or None if it is not ours/readable."""
    if not text or not text.startswith("hypernetes:"):
        return None
    kind, _, rest = text[len("hypernetes:") :].partition(":")
    if rest.startswith("#"):
        return kind, []
    try:
        parts = json.loads(rest)
    except ValueError:
        return None
    if not isinstance(parts, list) or not all(isinstance(p, str) for p in parts):
        return None
    return kind, parts


def gateway_mac(tenant: str, network: str) -> str:
    """The gateway (bridge) MAC of a Network: the same on every host.

    Each host's tenant router answers for the gateway address locally
    (a distributed gateway), so the address must not change when a pod's
    traffic is routed by another host's copy of the router.
    """
    raw = bytes.fromhex(digest("gateway", tenant, network)[:10])
    return ":".join(f"{b:02x}" for b in (b"\x02" + raw))  # locally administered unicast


def pod_mac(ip: ipaddress.IPv4Address) -> str:
    """A pod MAC derived from its address: unique wherever the address is (as kubenet's)."""
    return ":".join(f"{b:02x}" for b in (b"\x0a\x58" + ip.packed))
