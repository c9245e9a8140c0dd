"""VXLAN forwarding state: program and read a Network's remote pods.

Nothing about remote pods is learnt from traffic. For each remote pod three
entries are programmed in the tenant namespace:

* in the VXLAN device's own FDB: pod MAC -> the remote host's VTEP address,
* in the bridge FDB: pod MAC -> the VXLAN port (so unicast goes straight there),
* a permanent neighbour on the bridge: pod IP -> pod MAC (the router needs no
  ARP, and the bridge answers local pods' ARP for remote pods itself because
  the VXLAN port has neigh_suppress on).

There are no all-zeros (flood) entries, so broadcasts never leave the host.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from pyroute2 import IPRoute

from .model import RemoteEndpoint

AF_INET = 2
AF_BRIDGE = 7
NTF_SELF = 0x02
NTF_MASTER = 0x04
NUD_NOARP = 0x40
NUD_PERMANENT = 0x80
ZERO_MAC = "00:00:00:00:00:00"


def _state(t: IPRoute, vx: int, br: int) -> tuple[dict[str, str], set[str], dict[str, str]]:
    """(VXLAN FDB mac -> VTEP, macs the bridge sends to the VXLAN port, neighbour ip -> mac)."""
    remote: dict[str, str] = {}
    bridged: set[str] = set()
    for entry in t.fdb("dump", ifindex=vx):
        if entry["ifindex"] != vx:
            continue
        mac = entry.get_attr("NDA_LLADDR")
        if entry["flags"] & NTF_SELF:
            if mac != ZERO_MAC and entry.get_attr("NDA_DST"):
                remote[mac] = entry.get_attr("NDA_DST")
        elif not entry["state"] & NUD_PERMANENT:  # permanent = the port's own address
            bridged.add(mac)
    neighbours = {
        n.get_attr("NDA_DST"): n.get_attr("NDA_LLADDR")
        for n in t.get_neighbours(family=AF_INET, ifindex=br)
        if n["state"] & NUD_PERMANENT  # local pods' entries are learnt (not permanent)
    }
    return remote, bridged, neighbours


def _bridge_fdb(t: IPRoute, command: str, vx: int, br: int, mac: str) -> None:
    # Static (NUD_NOARP), not permanent: for a bridge "permanent" means a local address.
    t.neigh(command, family=AF_BRIDGE, ifindex=vx, lladdr=mac, flags=NTF_MASTER,
            state=NUD_NOARP, master=br)  # fmt: skip


def program(t: IPRoute, vx: int, br: int, endpoints: Iterable[RemoteEndpoint]) -> None:
    """Make the forwarding state of one Network exactly `endpoints`."""
    wanted = {ep.mac: ep for ep in endpoints}
    remote, bridged, neighbours = _state(t, vx, br)
    for mac, dst in remote.items():
        if mac not in wanted or str(wanted[mac].host) != dst:
            t.fdb("del", ifindex=vx, lladdr=mac, dst=dst)
    for mac in bridged - wanted.keys():
        _bridge_fdb(t, "del", vx, br, mac)
    wanted_ips = {str(ep.ip): ep.mac for ep in wanted.values()}
    for ip, mac in neighbours.items():
        if wanted_ips.get(ip) != mac:
            t.neigh("del", family=AF_INET, ifindex=br, dst=ip, lladdr=mac)
    for mac, ep in wanted.items():
        if remote.get(mac) != str(ep.host):
            t.fdb("add", ifindex=vx, lladdr=mac, dst=str(ep.host))
        if mac not in bridged:
            _bridge_fdb(t, "add", vx, br, mac)
        if neighbours.get(str(ep.ip)) != mac:
            t.neigh("replace", family=AF_INET, ifindex=br, dst=str(ep.ip), lladdr=mac,
                    state=NUD_PERMANENT)  # fmt: skip


def read(t: IPRoute, vx: int, br: int) -> list[RemoteEndpoint]:
    """The remote pods currently programmed (those with both a VTEP and a neighbour)."""
    remote, _, neighbours = _state(t, vx, br)
    out = [
        RemoteEndpoint(ipaddress.IPv4Address(ip), mac, ipaddress.IPv4Address(remote[mac]))
        for ip, mac in neighbours.items()
        if mac in remote
    ]
    return sorted(out, key=lambda e: e.ip)
