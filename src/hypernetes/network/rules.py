"""The nftables rulesets of the datapath, as nft command text.

Three tables, each created whole in one transaction:

* ``bridge hypernetes_guard`` (each tenant namespace): anti-spoofing. Every
  frame entering a bridge from any port that is not an overlay (VXLAN) port is
  treated as coming from a pod and must carry exactly the (port, MAC, IPv4)
  triple registered for that port, for IPv4 and ARP alike; everything else
  (other ethertypes, IPv6, LLDP, BPDUs, ...) is dropped. Unknown ports fail
  closed. Per-pod state is one set element, added and removed atomically.
  Frames from VXLAN ports were checked on the host where the pod lives.
* ``inet hypernetes_router`` (each tenant namespace): egress SNAT to the
  tenant's transit address and no new connections in from the uplink.
* ``inet hypernetes_<tag>`` (the host namespace): no path between tenant
  uplinks, no tenant access to the host itself or to the VXLAN port (which
  would let a tenant inject frames into another tenant's overlay), VXLAN only
  from known peer hosts, and masquerade of the transit range to the outside.
"""

from __future__ import annotations

import ipaddress

from .names import GUARD_TABLE, ROUTER_TABLE, UPLINK_HOST, UPLINK_TENANT, VXLAN

PODS_SET = "pods"  # ifname . ether_addr . ipv4_addr
OVERLAY_GW_SET = "overlay_gw"  # ifname . ipv4_addr: (VXLAN port, gateway) pairs
VTEPS_SET = "vteps"  # ipv4_addr: peer hosts allowed to send VXLAN


def guard_table() -> str:
    return f"""
table bridge {GUARD_TABLE} {{
    set {PODS_SET} {{ type ifname . ether_addr . ipv4_addr; }}
    set {OVERLAY_GW_SET} {{ type ifname . ipv4_addr; }}
    chain prerouting {{
        type filter hook prerouting priority -200; policy accept;
        iifname "{VXLAN}*" accept
        jump pod_ingress
    }}
    chain pod_ingress {{
        ether type ip iifname . ether saddr . ip saddr @{PODS_SET} accept
        ether type arp iifname . ether saddr . arp saddr ip @{PODS_SET} \
iifname . arp saddr ether . arp saddr ip @{PODS_SET} accept
        counter drop
    }}
    chain forward {{
        type filter hook forward priority -200; policy accept;
        ether type arp oifname . arp daddr ip @{OVERLAY_GW_SET} drop
    }}
}}
"""


def guard_element(port: str, mac: str, ip: ipaddress.IPv4Address | str) -> str:
    return f'"{port}" . {mac} . {ip}'


def router_table() -> str:
    up = UPLINK_TENANT
    return f"""
table inet {ROUTER_TABLE} {{
    chain input {{
        type filter hook input priority 0; policy accept;
        iifname "{up}" ct state established,related accept
        iifname "{up}" drop
    }}
    chain forward {{
        type filter hook forward priority 0; policy accept;
        iifname "{up}" ct state established,related accept
        iifname "{up}" drop
    }}
    chain postrouting {{
        type nat hook postrouting priority 100; policy accept;
        oifname "{up}" masquerade
    }}
}}
"""


def host_table(name: str, egress: ipaddress.IPv4Network, vxlan_port: int, masquerade: bool) -> str:
    up = UPLINK_HOST
    nat = (
        f"""
    chain postrouting {{
        type nat hook postrouting priority 100; policy accept;
        ip saddr {egress} oifname != "{up}*" masquerade
    }}"""
        if masquerade
        else ""
    )
    return f"""
table inet {name} {{
    set {VTEPS_SET} {{ type ipv4_addr; }}
    chain input {{
        type filter hook input priority 0; policy accept;
        iifname "{up}*" ct state established,related accept
        iifname "{up}*" drop
        udp dport {vxlan_port} ip saddr != @{VTEPS_SET} drop
    }}
    chain forward {{
        type filter hook forward priority 0; policy accept;
        iifname "{up}*" oifname "{up}*" drop
        iifname "{up}*" udp dport {vxlan_port} drop
    }}{nat}
}}
"""
