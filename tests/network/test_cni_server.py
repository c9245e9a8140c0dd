"""`hypernetes-cni` in server mode: Network objects and leases from a real API server.

The plugin runs as a process, as a container runtime runs it, against an
API server in this test's process (with the network controller running, so
Networks are Ready with VNIs) and a simulated host namespace.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from apihelpers import ThreadedAPI, create_pod, make_namespace, make_tenant, network, pod
from nethelpers import RUN, NetnsFactory
from test_cni import Plugin

from conftest import HOST_IP, Host, assert_clean
from hypernetes.client import NETWORKS, PODS
from hypernetes.controllers.network import NetworkController
from hypernetes.network import resource as net
from hypernetes.network.datapath import Datapath
from hypernetes.network.ipam import IPAM, Lease, Pool
from hypernetes.network.ipam_store import StoreBackend
from hypernetes.network.manager import NetworkManager

TAG = RUN + "s"


@pytest.fixture
def api(tmp_path: Path) -> Iterator[ThreadedAPI]:
    threaded = ThreadedAPI(tmp_path / "data")
    try:
        threaded.start(NetworkController(threaded.admin))
        admin = threaded.admin
        threaded.run(make_tenant(admin, "acme"))
        threaded.run(make_namespace(admin, "shop", "acme"))
        threaded.run(make_namespace(admin, "loose", None))
        threaded.run(admin.create(NETWORKS, network("acme-web", "10.45.0.0/24", "acme")))

        async def ready() -> bool:
            items = (await admin.list_all(NETWORKS))["items"]
            return sum(1 for n in items if net.is_ready_network(n)) == 2

        threaded.eventually(ready, "acme-default and acme-web ready")
        yield threaded
    finally:
        threaded.close()


@pytest.fixture
def plugin(api: ThreadedAPI, host: Host, tmp_path: Path) -> Iterator[Plugin]:
    conf = {
        "cniVersion": "1.0.0",
        "name": "hypernetes",
        "type": "hypernetes",
        "kubeconfig": str(api.inproc.kubeconfig),
        "nodeName": "n1",
        "dataDir": str(tmp_path / "cni"),
        "instance": TAG,
        "hostNetns": host.ns.path,
        "vtep": HOST_IP,
    }
    try:
        yield Plugin(conf)
    finally:
        dp = Datapath(str(tmp_path / "cni"), tag=TAG, host_netns=host.ns.path)
        dp.teardown_all()
        m = NetworkManager(dp, IPAM(StoreBackend(api.admin, api.thread.loop), node="n1"))
        for pool in m.ipam.pools():
            m.ipam.delete_pool(pool)
        assert_clean(m, host)


def args(namespace: str, name: str) -> dict[str, str]:
    return {"CNI_ARGS": f"IgnoreUnknown=1;K8S_POD_NAMESPACE={namespace};K8S_POD_NAME={name}"}


def leases(api: ThreadedAPI, tenant: str, network: str, cidr: str) -> list[Lease]:
    ipam = IPAM(StoreBackend(api.admin, api.thread.loop), node="n1")
    return ipam.leases(Pool.of(tenant, network, cidr))


def test_add_check_del_from_network_objects(
    api: ThreadedAPI, plugin: Plugin, netns: NetnsFactory
) -> None:
    web = api.run(create_pod(api.admin, "shop", pod("web", network="acme-web")))
    api.run(create_pod(api.admin, "shop", pod("db")))
    a, b = netns("srv-web"), netns("srv-db")
    rc, res = plugin("ADD", container="ctr-web", netns=a.path, env=args("shop", "web"))
    assert rc == 0, res
    assert res["ips"] == [{"address": "10.45.0.2/24", "gateway": "10.45.0.1", "interface": 2}]
    rc, res_db = plugin("ADD", container="ctr-db", netns=b.path, env=args("shop", "db"))
    assert rc == 0, res_db
    assert res_db["ips"][0]["address"] == "10.244.0.2/24"  # the tenant default network
    # Both are the tenant's networks, routed by its router; VXLAN with the Network's VNI.
    assert a.ping("10.244.0.2") and b.ping("10.45.0.2")
    dp = Datapath(plugin.conf["dataDir"], tag=TAG, host_netns=plugin.conf["hostNetns"])
    info = dp.get_network("acme", "acme-web")
    vni = api.run(api.admin.get(NETWORKS, "acme-web"))["status"]["vni"]
    assert info is not None and info.vni == vni and info.vxlan is not None

    # The lease is in the store, with the pod recorded for reclaiming.
    (lease,) = leases(api, "acme", "acme-web", "10.45.0.0/24")
    assert (str(lease.address), lease.node, lease.state) == ("10.45.0.2", "n1", "active")
    assert lease.pod == f"shop/web/{web['metadata']['uid']}"
    assert lease.owner == "ctr-web/eth0"

    check = {**plugin.conf, "prevResult": res}
    assert plugin("CHECK", container="ctr-web", netns=a.path, conf=check,
                  env=args("shop", "web")) == (0, None)  # fmt: skip

    assert plugin("DEL", container="ctr-web", netns=a.path, env=args("shop", "web")) == (0, None)
    assert leases(api, "acme", "acme-web", "10.45.0.0/24") == []
    assert "eth0" not in a.links()
    assert plugin("DEL", container="ctr-web", netns=a.path, env=args("shop", "web")) == (0, None)

    # The pod object goes first (a force-deleted pod): DEL still finds its network.
    api.run(api.admin.delete(PODS, "db", "shop", grace_period_seconds=0))
    assert plugin("DEL", container="ctr-db", netns=b.path, env=args("shop", "db")) == (0, None)
    assert leases(api, "acme", "acme-default", net.DEFAULT_CIDR) == []
    assert "eth0" not in b.links()
    # DEL for something never added, whose pod does not exist: nothing to do, success.
    assert plugin("DEL", container="never", netns="", env=args("shop", "nobody")) == (0, None)


def test_server_mode_errors(api: ThreadedAPI, plugin: Plugin, netns: NetnsFactory) -> None:
    p = netns("srv-err")
    rc, err = plugin("ADD", container="c1", netns=p.path)  # no K8S_POD_* in CNI_ARGS
    assert rc == 1 and err["code"] == 4 and "K8S_POD_NAME" in err["msg"]
    rc, err = plugin("ADD", container="c1", netns=p.path, env=args("shop", "missing"))
    assert rc == 1 and err["code"] == 3 and "missing" in err["msg"]
    api.run(create_pod(api.admin, "loose", pod("stray")))
    rc, err = plugin("ADD", container="c1", netns=p.path, env=args("loose", "stray"))
    assert rc == 1 and err["code"] == 7 and "no tenant network" in err["msg"]
    # Its Network is not Ready (being deleted, held by this very pod): try again later.
    api.run(create_pod(api.admin, "shop", pod("early", network="acme-web")))
    api.run(api.admin.delete(NETWORKS, "acme-web"))

    async def terminating() -> bool:
        obj = await api.admin.get(NETWORKS, "acme-web")
        return (obj.get("status") or {}).get("phase") == "Terminating"

    api.eventually(terminating, "acme-web terminating")
    rc, err = plugin("ADD", container="c1", netns=p.path, env=args("shop", "early"))
    assert rc == 1 and err["code"] == 11 and "not ready" in err["msg"]
    bad: dict[str, Any] = {**plugin.conf, "subnet": "10.1.0.0/24"}
    rc, err = plugin("ADD", container="c1", netns=p.path, conf=bad, env=args("shop", "early"))
    assert rc == 1 and err["code"] == 7 and "exclude" in err["msg"]
    rc, err = plugin("CHECK", container="c9", netns=p.path,
                     conf={**plugin.conf, "prevResult": {}}, env=args("shop", "nope"))  # fmt: skip
    assert rc == 1 and err["code"] == 102
    assert "eth0" not in p.links()
    assert json.dumps(err)


def test_server_with_token_file(api: ThreadedAPI, plugin: Plugin, tmp_path: Path) -> None:
    from hypernetes.api.auth import User
    from hypernetes.client import load_kubeconfig

    admin = load_kubeconfig(api.inproc.kubeconfig)
    assert admin.ca_pem is not None
    ca = tmp_path / "ca.crt"
    ca.write_bytes(admin.ca_pem)
    token = tmp_path / "token"
    token.write_text("node-token\n")
    api.inproc.tokens["node-token"] = User("node:n1", ("system:masters",))
    conf = {k: v for k, v in plugin.conf.items() if k != "kubeconfig"}
    conf |= {"server": admin.server, "tokenFile": str(token), "certificateAuthority": str(ca)}
    # A DEL of something never added asks the API for the pod: authenticated, not found, done.
    assert plugin("DEL", container="x", conf=conf, env=args("shop", "nobody")) == (0, None)
    token.write_text("wrong\n")
    rc, err = plugin("DEL", container="x", conf=conf, env=args("shop", "nobody"))
    assert rc == 1 and err["code"] == 7 and "refused" in err["msg"]
    unreachable = {**conf, "server": "https://127.0.0.1:1"}
    rc, err = plugin("DEL", container="x", conf=unreachable, env=args("shop", "nobody"))
    assert rc == 1 and err["code"] == 11
    rc, err = plugin("DEL", container="x", conf={**conf, "tokenFile": "relative"})
    assert rc == 1 and err["code"] == 7 and "absolute" in err["msg"]
