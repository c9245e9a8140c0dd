"""Helpers for the network tests: test namespaces, sockets inside them, raw frames.

Every object a test creates is named with this run's random tag (RUN), so
tests never touch a running server's objects and leftovers are attributable.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import os
import secrets
import select
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from hypernetes.network.namespaces import (
    create_netns,
    delete_netns,
    list_netns,
    netlink,
    run_in_netns,
)

RUN = "t" + secrets.token_hex(3)  # datapath tag base (<= 8 chars with a suffix digit)
TEST_NS_PREFIX = f"hntest-{RUN}-"
ETH_P_ALL = 0x0003
ETH_P_ARP = 0x0806
ETH_P_IP = 0x0800


@dataclass
class Netns:
    """A namespace created by a test (a pod, a simulated host, the outside world)."""

    name: str
    path: str = field(init=False)

    def __post_init__(self) -> None:
        self.path = create_netns(self.name)

    def run(
        self, *argv: str, timeout: float = 60, check: bool = False
    ) -> subprocess.CompletedProcess[str]:
        """Run a program inside the namespace (util-linux nsenter)."""
        result = subprocess.run(
            ["nsenter", f"--net={self.path}", *argv],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"{argv} failed in {self.name}: {result.stderr}{result.stdout}")
        return result

    def ping(self, ip: str, *, tries: int = 3, wait: int = 2, size: int | None = None) -> bool:
        """True if an echo request is answered. With tries > 1, requests go out every
        0.2 s until one is answered or `wait` * `tries` seconds pass (a lost first
        packet on a loaded machine is no failure); checks expecting silence use tries=1."""
        if tries > 1:
            args = ["ping", "-n", "-c", "1", "-i", "0.2", "-w", str(wait * tries)]
        else:
            args = ["ping", "-n", "-c", "1", "-W", str(wait)]
        if size is not None:
            args += ["-s", str(size), "-M", "do"]
        return self.run(*args, ip).returncode == 0

    def socket(self, family: int, type_: int, proto: int = 0) -> socket.socket:
        """A socket that lives in this namespace (usable from any thread)."""
        return run_in_netns(self.path, lambda: socket.socket(family, type_, proto))

    def links(self) -> dict[str, dict[str, object]]:
        with netlink(self.path) as ipr:
            return {
                link.get_attr("IFLA_IFNAME"): {
                    "index": link["index"],
                    "mac": link.get_attr("IFLA_ADDRESS"),
                    "mtu": link.get_attr("IFLA_MTU"),
                    "master": link.get_attr("IFLA_MASTER"),
                    "alias": link.get_attr("IFLA_IFALIAS"),
                    "up": bool(link["flags"] & 1),
                    "kind": link.get_nested("IFLA_LINKINFO", "IFLA_INFO_KIND"),
                }
                for link in ipr.get_links()
            }

    def addresses(self, ifname: str) -> list[str]:
        with netlink(self.path) as ipr:
            index = ipr.link_lookup(ifname=ifname)[0]
            return [
                f"{a.get_attr('IFA_ADDRESS')}/{a['prefixlen']}"
                for a in ipr.get_addr(family=2, index=index)
            ]

    def delete(self) -> None:
        delete_netns(self.name)


class NetnsFactory:
    def __init__(self) -> None:
        self.created: list[Netns] = []

    def __call__(self, label: str) -> Netns:
        ns = Netns(TEST_NS_PREFIX + label)
        self.created.append(ns)
        return ns

    def cleanup(self) -> None:
        for ns in self.created:
            ns.delete()


def veth_between(a: Netns, a_if: str, a_ip: str, b: Netns, b_if: str, b_ip: str) -> None:
    """Connect two test namespaces with a veth pair and address both ends (a /24 each)."""
    with netlink(a.path) as ipr:
        fd = os.open(b.path, os.O_RDONLY)
        try:
            ipr.link("add", ifname=a_if, kind="veth", peer={"ifname": b_if, "net_ns_fd": fd})
        finally:
            os.close(fd)
        idx = ipr.link_lookup(ifname=a_if)[0]
        ipr.addr("add", index=idx, address=a_ip, prefixlen=24)
        ipr.link("set", index=idx, state="up")
    with netlink(b.path) as ipr:
        idx = ipr.link_lookup(ifname=b_if)[0]
        ipr.addr("add", index=idx, address=b_ip, prefixlen=24)
        ipr.link("set", index=idx, state="up")


# -- TCP / UDP probes ---------------------------------------------------------------
class TCPServer:
    """Accepts connections in a namespace, answers each with the peer address it saw."""

    def __init__(self, ns: Netns, ip: str, port: int) -> None:
        self.sock = ns.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((ip, port))
        self.sock.listen(64)
        self.sock.settimeout(0.2)
        self.peers: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, peer = self.sock.accept()
            except (TimeoutError, OSError):
                continue
            with conn:
                self.peers.append(peer[0])
                with contextlib.suppress(OSError):
                    conn.sendall(peer[0].encode())

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sock.close()


def tcp_request(ns: Netns, ip: str, port: int, timeout: float = 5) -> str | None:
    """Connect and read the server's answer; None if unreachable."""
    s = ns.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect((ip, port))
        return s.recv(100).decode()
    except OSError:
        return None
    finally:
        s.close()


def tcp_scan(
    ns: Netns, ip: str, ports: range | list[int], wait: float = 2.0, batch: int = 256
) -> dict[str, list[int]]:
    """Non-blocking connects to many ports, `batch` at a time.

    Returns {"open": [...], "refused": [...], "unreachable": [...]}; "refused"
    (a RST came back) would mean the target is reachable too; an unreachable
    target leaves connects pending, or failing with EHOSTUNREACH/ENETUNREACH.
    """
    result: dict[str, list[int]] = {"open": [], "refused": [], "unreachable": []}
    ports = list(ports)
    for i in range(0, len(ports), batch):
        part = _scan_batch(ns, ip, ports[i : i + batch], wait)
        for key, values in part.items():
            result[key] += values
    return result


def _scan_batch(ns: Netns, ip: str, ports: list[int], wait: float) -> dict[str, list[int]]:
    socks: dict[socket.socket, int] = {}
    result: dict[str, list[int]] = {"open": [], "refused": [], "unreachable": []}
    for port in ports:
        s = ns.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        err = s.connect_ex((ip, port))
        if err == errno.EINPROGRESS:
            socks[s] = port
            continue
        s.close()
        if err == 0:
            result["open"].append(port)
        elif err == errno.ECONNREFUSED:
            result["refused"].append(port)
        else:
            result["unreachable"].append(port)
    deadline = time.monotonic() + wait
    while socks and time.monotonic() < deadline:
        _, writable, _ = select.select([], list(socks), [], 0.2)
        for s in writable:
            err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            port = socks.pop(s)
            if err == 0:
                result["open"].append(port)
            elif err == errno.ECONNREFUSED:
                result["refused"].append(port)
            else:
                result["unreachable"].append(port)
            s.close()
    for s in socks:
        s.close()
    return result


def udp_listener(ns: Netns, ip: str, port: int) -> socket.socket:
    s = ns.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((ip, port))
    s.settimeout(0.2)
    return s


def udp_received(sock: socket.socket, wait: float = 1.5) -> list[tuple[bytes, str]]:
    got = []
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        try:
            data, peer = sock.recvfrom(2048)
            got.append((data, peer[0]))
        except TimeoutError:
            continue
    return got


# -- raw frames ---------------------------------------------------------------------
def mac_bytes(mac: str) -> bytes:
    return bytes.fromhex(mac.replace(":", ""))


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def ipv4_udp_frame(
    src_mac: str, dst_mac: str, src_ip: str, dst_ip: str, sport: int, dport: int, payload: bytes
) -> bytes:
    udp = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload  # no UDP checksum
    header = struct.pack(
        "!BBHHHBBH4s4s",
        0x45,
        0,
        20 + len(udp),
        0x1234,
        0x4000,
        64,
        17,
        0,
        ipaddress.IPv4Address(src_ip).packed,
        ipaddress.IPv4Address(dst_ip).packed,
    )
    header = header[:10] + struct.pack("!H", _checksum(header)) + header[12:]
    return mac_bytes(dst_mac) + mac_bytes(src_mac) + struct.pack("!H", ETH_P_IP) + header + udp


def arp_frame(
    op: int,
    eth_src: str,
    eth_dst: str,
    sender_mac: str,
    sender_ip: str,
    target_mac: str,
    target_ip: str,
) -> bytes:
    body = struct.pack(
        "!HHBBH6s4s6s4s",
        1,
        ETH_P_IP,
        6,
        4,
        op,
        mac_bytes(sender_mac),
        ipaddress.IPv4Address(sender_ip).packed,
        mac_bytes(target_mac),
        ipaddress.IPv4Address(target_ip).packed,
    )
    return mac_bytes(eth_dst) + mac_bytes(eth_src) + struct.pack("!H", ETH_P_ARP) + body


def parse_arp(frame: bytes) -> dict[str, object] | None:
    if len(frame) < 42 or struct.unpack("!H", frame[12:14])[0] != ETH_P_ARP:
        return None
    op = struct.unpack("!H", frame[20:22])[0]
    return {
        "op": op,
        "sender_mac": frame[22:28].hex(":"),
        "sender_ip": str(ipaddress.IPv4Address(frame[28:32])),
        "target_ip": str(ipaddress.IPv4Address(frame[38:42])),
    }


class RawPort:
    """An AF_PACKET socket on one interface of a namespace: send and capture frames."""

    def __init__(self, ns: Netns, ifname: str) -> None:
        self.sock = ns.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        self.sock.bind((ifname, 0))
        self.sock.settimeout(0.2)

    def send(self, frame: bytes) -> None:
        self.sock.send(frame)

    def capture(self, wait: float = 1.5) -> list[bytes]:
        frames = []
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            try:
                data, addr = self.sock.recvfrom(65535)
            except TimeoutError:
                continue
            if addr[2] != socket.PACKET_OUTGOING:
                frames.append(data)
        return frames

    def drain(self) -> None:
        self.sock.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            while True:
                self.sock.recv(65535)
        self.sock.settimeout(0.2)

    def close(self) -> None:
        self.sock.close()


def leftovers(tag: str) -> list[str]:
    """Network namespaces of the datapath instance `tag` that still exist."""
    return list_netns(f"hn-{tag}-")


@contextlib.contextmanager
def tcp_server(ns: Netns, ip: str, port: int) -> Iterator[TCPServer]:
    server = TCPServer(ns, ip, port)
    try:
        yield server
    finally:
        server.close()
