"""Benchmark of the tenant network datapath (needs root; everything runs in private namespaces).

Each measurement is printed beside a baseline taken in the same run:

1. Attach latency (NetworkManager.attach: IPAM lease + veth + pod addressing + anti-spoofing
   entry), p50/p99 over N pods attached to ONE network (so it also shows pods per network:
   the first and last hundred are reported separately), against the baseline of the bare
   kernel work through the same netlink library (a veth pair into a namespace, address,
   link up, default route; no bookkeeping). Also TAP attach and detach latency.
2. Pod<->pod TCP throughput with iperf3 (one stream, R repetitions, median) between two pods
   on one tenant bridge with the anti-spoofing rules, against a plain veth pair between two
   namespaces; a bridge without any rules is shown as a second reference.

usage: sudo .venv/bin/python benchmarks/network_bench.py [--pods N] [--seconds S] [--reps R]
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable

from hypernetes.network import NetworkManager
from hypernetes.network.namespaces import create_netns, delete_netns, netlink

RUN = "b" + secrets.token_hex(3)
PREFIX = f"hnbench-{RUN}-"


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def summary(samples: list[float]) -> str:
    ms = [s * 1000 for s in samples]
    return f"p50 {statistics.median(ms):6.2f} ms   p99 {percentile(ms, 99):6.2f} ms   n={len(ms)}"


def nsexec(ns: str, *argv: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["nsenter", f"--net=/run/netns/{ns}", *argv],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=True,
    )


class Namespaces:
    def __init__(self) -> None:
        self.names: list[str] = []

    def make(self, label: str) -> str:
        name = PREFIX + label
        create_netns(name)
        self.names.append(name)
        return name

    def cleanup(self) -> None:
        for name in self.names:
            delete_netns(name)


def veth_pair(ns_a: str, ns_b: str, ip_a: str, ip_b: str, prefix: int = 24) -> None:
    """A plain veth pair between two namespaces, addressed (the kernel work only)."""
    with netlink(f"/run/netns/{ns_a}") as a:
        fd = os.open(f"/run/netns/{ns_b}", os.O_RDONLY)
        try:
            a.link("add", ifname="eth0", kind="veth", peer={"ifname": "eth0", "net_ns_fd": fd})
        finally:
            os.close(fd)
        idx = a.link_lookup(ifname="eth0")[0]
        a.addr("add", index=idx, address=ip_a, prefixlen=prefix)
        a.link("set", index=idx, state="up")
    with netlink(f"/run/netns/{ns_b}") as b:
        idx = b.link_lookup(ifname="eth0")[0]
        b.addr("add", index=idx, address=ip_b, prefixlen=prefix)
        b.link("set", index=idx, state="up")


def bare_attach(host: str, pod: str, ip: str) -> None:
    """Baseline: what an attach has to do in the kernel at least, through pyroute2."""
    with netlink(f"/run/netns/{host}") as h:
        fd = os.open(f"/run/netns/{pod}", os.O_RDONLY)
        try:
            h.link("add", ifname="v" + pod[-10:], kind="veth",
                   peer={"ifname": "eth0", "net_ns_fd": fd}, state="up")  # fmt: skip
        finally:
            os.close(fd)
    with netlink(f"/run/netns/{pod}") as p:
        idx = p.link("get", ifname="eth0")[0]["index"]
        p.addr("add", index=idx, address=ip, prefixlen=16)
        p.link("set", index=idx, state="up")
        p.route("add", dst="0.0.0.0/0", gateway="10.250.0.1", oif=idx)


def bare_detach(host: str, pod: str) -> None:
    """Baseline: deleting the veth pair (the kernel's share of a detach)."""
    with netlink(f"/run/netns/{host}") as h:
        h.link("del", index=h.link("get", ifname="v" + pod[-10:])[0]["index"])


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def iperf(server_ns: str, client_ns: str, ip: str, seconds: int, port: int) -> float:
    """One iperf3 TCP stream; returns received Gbit/s."""
    server = subprocess.Popen(
        ["nsenter", f"--net=/run/netns/{server_ns}", "iperf3", "-s", "-1", "-B", ip,
         "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        for _ in range(50):  # wait for the listener
            probe = subprocess.run(
                ["nsenter", f"--net=/run/netns/{server_ns}", "ss", "-ltn", f"sport = :{port}"],
                capture_output=True,
                text=True,
            )
            if f":{port}" in probe.stdout:
                break
            time.sleep(0.1)
        out = nsexec(client_ns, "iperf3", "-c", ip, "-p", str(port), "-t", str(seconds), "-J",
                     timeout=seconds + 60)  # fmt: skip
        result = json.loads(out.stdout)
        return float(result["end"]["sum_received"]["bits_per_second"]) / 1e9
    finally:
        server.wait(timeout=30)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, default=500, help="pods attached to one network")
    parser.add_argument("--seconds", type=int, default=5, help="iperf3 duration per run")
    parser.add_argument("--reps", type=int, default=5, help="iperf3 repetitions per path")
    args = parser.parse_args()
    if os.geteuid() != 0:
        parser.error("needs root (network namespaces, netlink)")
    if not 1 <= args.pods <= 1900:
        parser.error("--pods must be 1..1900 (one /21 network, with 100 TAP ports beside)")
    if shutil.which("iperf3") is None:
        parser.error("iperf3 is missing (scripts/setup.d/network.sh installs it)")

    spaces = Namespaces()
    state = tempfile.mkdtemp(prefix="hnbench-")
    host = spaces.make("host")
    manager = NetworkManager.standalone(state, tag=RUN, host_netns=f"/run/netns/{host}")
    try:
        print(f"network benchmark (run {RUN}, {os.cpu_count()} CPUs)\n")
        # -- 1. attach latency, pods per network ------------------------------------------
        manager.ensure_network("bench", "big", "10.200.0.0/21")
        pods = [spaces.make(f"p{i}") for i in range(args.pods)]
        veth = [timed(lambda p=p, i=i: manager.attach("bench", "big", f"pod-{i}",  # type: ignore[misc]
                                                      netns=f"/run/netns/{p}"))
                for i, p in enumerate(pods)]  # fmt: skip
        last_ip = manager.attachment("bench", "big", f"pod-{args.pods - 1}")
        assert last_ip is not None
        nsexec(pods[0], "ping", "-c", "1", "-W", "2", str(last_ip.ip.ip))  # all really attached
        taps = [timed(lambda i=i: manager.attach("bench", "big", f"vm-{i}", kind="tap"))  # type: ignore[misc]
                for i in range(100)]  # fmt: skip
        base_pods = [spaces.make(f"b{i}") for i in range(100)]
        bare = [timed(lambda p=p, i=i: bare_attach(host, p, f"10.250.{i // 250}.{i % 250 + 2}"))  # type: ignore[misc]
                for i, p in enumerate(base_pods)]  # fmt: skip
        detach = [
            timed(lambda i=i: manager.detach("bench", "big", f"pod-{i}"))  # type: ignore[misc]
            for i in range(min(100, args.pods))
        ]
        bare_del = [timed(lambda p=p: bare_detach(host, p)) for p in base_pods]  # type: ignore[misc]
        print("1. attach latency")
        print(f"   veth attach, all {args.pods:4d} pods   {summary(veth)}")
        k = min(100, args.pods)
        print(f"   veth attach, first {k:3d}         {summary(veth[:k])}")
        print(f"   veth attach, last {k:3d}          {summary(veth[-k:])}")
        print(f"   TAP attach                     {summary(taps)}")
        print(f"   baseline: bare veth + address  {summary(bare)}")
        print(f"   detach (veth)                  {summary(detach)}")
        print(f"   baseline: bare veth delete     {summary(bare_del)}")
        print(
            f"   pods on one network: {args.pods} veth + 100 TAP, pod 0 pings pod {args.pods - 1}"
        )

        # -- 2. throughput -----------------------------------------------------------------
        manager.ensure_network("tput", "net", "10.201.0.0/24")
        server, client = spaces.make("tput-s"), spaces.make("tput-c")
        s_att = manager.attach("tput", "net", "server", netns=f"/run/netns/{server}")
        manager.attach("tput", "net", "client", netns=f"/run/netns/{client}")
        plain_s, plain_c = spaces.make("plain-s"), spaces.make("plain-c")
        veth_pair(plain_s, plain_c, "10.202.0.1", "10.202.0.2")
        # Reference: a bridge with two veth ports and no rules at all, in its own namespace.
        br_ns, br_s, br_c = spaces.make("br"), spaces.make("br-s"), spaces.make("br-c")
        with netlink(f"/run/netns/{br_ns}") as b:
            b.link("add", ifname="br0", kind="bridge", br_stp_state=0, br_forward_delay=0)
            bi = b.link_lookup(ifname="br0")[0]
            b.link("set", index=bi, state="up")
            for name, ns, ip in (("ps", br_s, "10.203.0.1"), ("pc", br_c, "10.203.0.2")):
                fd = os.open(f"/run/netns/{ns}", os.O_RDONLY)
                try:
                    b.link("add", ifname=name, kind="veth", master=bi, state="up",
                           peer={"ifname": "eth0", "net_ns_fd": fd})  # fmt: skip
                finally:
                    os.close(fd)
                with netlink(f"/run/netns/{ns}") as p:
                    idx = p.link_lookup(ifname="eth0")[0]
                    p.addr("add", index=idx, address=ip, prefixlen=24)
                    p.link("set", index=idx, state="up")
        results: dict[str, list[float]] = {"plain": [], "bridge": [], "tenant": []}
        for rep in range(args.reps):
            port = 5201 + rep
            results["plain"].append(iperf(plain_s, plain_c, "10.202.0.1", args.seconds, port))
            results["bridge"].append(iperf(br_s, br_c, "10.203.0.1", args.seconds, port))
            results["tenant"].append(iperf(server, client, str(s_att.ip.ip), args.seconds, port))
        med = {k: statistics.median(v) for k, v in results.items()}
        print("\n2. pod<->pod TCP throughput (iperf3, 1 stream, median of "
              f"{args.reps} x {args.seconds}s)")  # fmt: skip
        for key, label in (("plain", "baseline: plain veth pair"),
                           ("bridge", "reference: bridge, no rules"),
                           ("tenant", "tenant bridge + anti-spoofing")):  # fmt: skip
            runs = ", ".join(f"{x:.2f}" for x in results[key])
            print(f"   {label:32s} {med[key]:6.2f} Gbit/s   ({runs})")
        ratios = [t / p for t, p in zip(results["tenant"], results["plain"], strict=True)]
        print(
            f"   tenant / plain veth: ratio of medians {med['tenant'] / med['plain']:.2f}, "
            f"median of paired ratios {statistics.median(ratios):.2f}"
        )
    finally:
        manager.teardown_all()
        spaces.cleanup()
        shutil.rmtree(state, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
