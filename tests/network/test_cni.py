"""The `hypernetes-cni` plugin, run as a process exactly as a container runtime runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from nethelpers import RUN, Netns, NetnsFactory

from conftest import Host, assert_clean
from hypernetes.network.manager import NetworkManager

PLUGIN = os.path.join(os.path.dirname(sys.executable), "hypernetes-cni")


@dataclass
class Plugin:
    conf: dict[str, Any]
    calls: list[str] = field(default_factory=list)

    def __call__(
        self,
        command: str,
        *,
        container: str = "c1",
        netns: str = "",
        ifname: str = "eth0",
        conf: dict[str, Any] | None = None,
        stdin: str | None = None,
        env: dict[str, str] | None = None,
    ) -> tuple[int, Any]:
        environ = {
            "PATH": os.environ["PATH"],
            "CNI_COMMAND": command,
            "CNI_CONTAINERID": container,
            "CNI_NETNS": netns,
            "CNI_IFNAME": ifname,
            "CNI_PATH": os.path.dirname(PLUGIN),
            **(env or {}),
        }
        environ = {k: v for k, v in environ.items() if v != "<unset>"}
        proc = subprocess.run(
            [PLUGIN],
            input=stdin if stdin is not None else json.dumps(conf or self.conf),
            capture_output=True,
            text=True,
            env=environ,
            timeout=60,
        )
        out = json.loads(proc.stdout) if proc.stdout.strip() else None
        if proc.returncode != 0:
            assert out is not None and isinstance(out.get("code"), int), proc.stdout
        return proc.returncode, out


@pytest.fixture
def plugin(host: Host, tmp_path: Path) -> Iterator[Plugin]:
    tag = RUN + "c"
    conf = {
        "cniVersion": "1.0.0",
        "name": "acme-net",
        "type": "hypernetes",
        "tenant": "acme",
        "subnet": "10.90.0.0/24",
        "dataDir": str(tmp_path / "cni"),
        "instance": tag,
        "hostNetns": host.ns.path,
    }
    try:
        yield Plugin(conf)
    finally:
        m = NetworkManager.standalone(str(tmp_path / "cni"), tag=tag, host_netns=host.ns.path)
        m.teardown_all()
        assert_clean(m, host)


def test_version(plugin: Plugin) -> None:
    rc, out = plugin("VERSION", stdin='{"cniVersion": "1.0.0"}')
    assert rc == 0 and out == {"cniVersion": "1.0.0", "supportedVersions": ["0.4.0", "1.0.0"]}


def test_add_check_del_lifecycle(plugin: Plugin, netns: NetnsFactory) -> None:
    a, b = netns("cni-a"), netns("cni-b")
    rc, res = plugin("ADD", container="ctr-a", netns=a.path)
    assert rc == 0, res
    assert res["cniVersion"] == "1.0.0"
    assert res["ips"] == [{"address": "10.90.0.2/24", "gateway": "10.90.0.1", "interface": 2}]
    assert res["routes"] == [{"dst": "0.0.0.0/0", "gw": "10.90.0.1"}]
    bridge, port, pod = res["interfaces"]
    assert pod == {"name": "eth0", "mac": "0a:58:0a:5a:00:02", "sandbox": a.path}
    assert bridge["name"].startswith("hnb") and port["name"].startswith("hnp")
    assert bridge["sandbox"] == port["sandbox"] and bridge["sandbox"].startswith(
        f"/run/netns/hn-{RUN}c-"
    )
    assert a.addresses("eth0") == ["10.90.0.2/24"]

    rc, res_b = plugin("ADD", container="ctr-b", netns=b.path, ifname="net1")
    assert rc == 0 and res_b["ips"][0]["address"] == "10.90.0.3/24"
    assert a.ping("10.90.0.3") and b.ping("10.90.0.2")

    check_conf = {**plugin.conf, "prevResult": res}
    assert plugin("CHECK", container="ctr-a", netns=a.path, conf=check_conf) == (0, None)
    a.run("ip", "addr", "flush", "dev", "eth0", check=True)  # damage it
    rc, err = plugin("CHECK", container="ctr-a", netns=a.path, conf=check_conf)
    assert rc == 1 and err["code"] == 102 and "lacks address" in err["details"]
    rc, err = plugin("CHECK", container="ctr-a", netns=a.path)  # no prevResult
    assert rc == 1 and err["code"] == 7

    assert plugin("DEL", container="ctr-a", netns=a.path) == (0, None)
    assert "eth0" not in a.links()
    assert plugin("DEL", container="ctr-a", netns=a.path) == (0, None)  # idempotent
    assert plugin("DEL", container="ctr-a", netns="") == (0, None)  # netns already gone
    rc, err = plugin("CHECK", container="ctr-a", netns=a.path, conf=check_conf)
    assert rc == 1 and err["code"] == 102
    # The released address is not handed out again at once (round robin).
    c = netns("cni-c")
    rc, res_c = plugin("ADD", container="ctr-c", netns=c.path)
    assert rc == 0 and res_c["ips"][0]["address"] == "10.90.0.4/24"


def test_del_before_anything_exists_succeeds(plugin: Plugin, tmp_path: Path) -> None:
    assert plugin("DEL", container="never-added") == (0, None)
    conf = {**plugin.conf, "dataDir": str(tmp_path / "never-created")}
    assert plugin("DEL", container="x", conf=conf) == (0, None)
    assert not (tmp_path / "never-created").exists()


def test_requested_ip_and_old_result_version(plugin: Plugin, netns: NetnsFactory) -> None:
    ns = netns("cni-ip")
    conf = {**plugin.conf, "cniVersion": "0.4.0"}
    rc, res = plugin(
        "ADD", netns=ns.path, conf=conf, env={"CNI_ARGS": "IgnoreUnknown=1;IP=10.90.0.77"}
    )
    assert rc == 0, res
    assert res["cniVersion"] == "0.4.0"
    assert res["ips"][0] == {"address": "10.90.0.77/24", "gateway": "10.90.0.1", "interface": 2,
                             "version": "4"}  # fmt: skip
    other = netns("cni-ip2")
    rc, err = plugin("ADD", container="c2", netns=other.path, env={"CNI_ARGS": "IP=10.90.0.77"})
    assert rc == 1 and err["code"] == 101  # taken


def test_error_codes(plugin: Plugin, netns: NetnsFactory) -> None:
    ns = netns("cni-err")

    def code(**kw: Any) -> int:
        rc, out = plugin("ADD", **{"netns": ns.path, **kw})
        assert rc == 1, out
        return int(out["code"])

    assert code(stdin="{not json") == 6
    assert code(stdin="[1, 2]") == 6
    assert code(conf={**plugin.conf, "cniVersion": "9.9.9"}) == 1
    assert code(conf={**plugin.conf, "cniVersion": None}) == 1
    assert code(env={"CNI_COMMAND": "<unset>"}) == 4
    assert code(env={"CNI_COMMAND": "FROB"}) == 4
    assert code(env={"CNI_CONTAINERID": "<unset>"}) == 4
    assert code(netns="") == 4
    assert code(env={"CNI_ARGS": "garbage"}) == 4
    for bad in ({"subnet": None}, {"subnet": "10.0.0.0/33"}, {"tenant": "Not_Valid"},
                {"name": ""}, {"gateway": "nope"}, {"mtu": -5}, {"vni": "x"},
                {"dataDir": "relative/dir"}, {"instance": "UPPER"}):  # fmt: skip
        assert code(conf={**plugin.conf, **bad}) == 7, bad
    assert code(netns="/run/netns/hntest-no-such-netns") == 3
    # Same network name with another subnet contradicts what exists.
    assert plugin("ADD", container="first", netns=ns.path)[0] == 0
    other = netns("cni-err2")
    assert (
        code(container="x", netns=other.path, conf={**plugin.conf, "subnet": "10.91.0.0/24"}) == 7
    )
    # The interface name is taken in the pod namespace.
    assert code(container="second", netns=ns.path) == 100


def test_pool_exhaustion_is_an_ipam_error(plugin: Plugin, netns: NetnsFactory) -> None:
    conf = {**plugin.conf, "name": "tiny", "subnet": "10.92.0.0/30"}
    one, two = netns("tiny-1"), netns("tiny-2")
    assert plugin("ADD", container="t1", netns=one.path, conf=conf)[0] == 0
    rc, err = plugin("ADD", container="t2", netns=two.path, conf=conf)
    assert rc == 1 and err["code"] == 101 and "no free address" in err["msg"]
    assert "eth0" not in two.links()


def test_concurrent_adds_get_distinct_addresses(plugin: Plugin, netns: NetnsFactory) -> None:
    pods: list[Netns] = [netns(f"par-{i}") for i in range(8)]

    def add(i: int) -> tuple[int, Any]:
        return plugin("ADD", container=f"par-{i}", netns=pods[i].path)

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(add, range(8)))
    assert all(rc == 0 for rc, _ in results), results
    addresses = [res["ips"][0]["address"] for _, res in results]
    assert len(set(addresses)) == 8
    assert pods[0].ping(addresses[7].split("/")[0])
    with ThreadPoolExecutor(8) as pool:
        dels = list(pool.map(lambda i: plugin("DEL", container=f"par-{i}", netns=pods[i].path),
                             range(8)))  # fmt: skip
    assert all(d == (0, None) for d in dels)
    assert all("eth0" not in p.links() for p in pods)
