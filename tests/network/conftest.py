"""Fixtures for the tenant network tests: real namespaces, a simulated host and outside.

The datapath never runs in this machine's own namespace here: each test gets
a fresh namespace playing the host, with an "outside" namespace behind it
(198.51.100.0/24, a documentation range) standing in for the world egress
traffic goes to. Everything is removed afterwards and the removal is checked.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

# The test modules share helpers in nethelpers.py next to this file.
sys.path.insert(0, os.path.dirname(__file__))
from nethelpers import RUN, TEST_NS_PREFIX, Netns, NetnsFactory, leftovers, veth_between

from hypernetes.network import nft
from hypernetes.network.manager import NetworkManager
from hypernetes.network.namespaces import list_netns

# The network tests need root (namespaces, netlink, nftables): without it, collect none.
collect_ignore_glob = [] if os.geteuid() == 0 else ["test_*.py"]

HOST_IP = "198.51.100.1"
OUTSIDE_IP = "198.51.100.2"


@dataclass
class Host:
    ns: Netns
    outside: Netns
    base_links: set[str]


@pytest.fixture(scope="session", autouse=True)
def _nothing_left_behind() -> Iterator[None]:
    yield
    assert list_netns(TEST_NS_PREFIX) == [], "test namespaces left behind"
    assert list_netns(f"hn-{RUN}") == [], "datapath namespaces left behind"


@pytest.fixture
def netns() -> Iterator[NetnsFactory]:
    factory = NetnsFactory()
    try:
        yield factory
    finally:
        factory.cleanup()


@pytest.fixture
def host(netns: NetnsFactory) -> Host:
    h = netns("host")
    out = netns("outside")
    veth_between(h, "uplink0", HOST_IP, out, "eth0", OUTSIDE_IP)
    return Host(h, out, set(h.links()))


def assert_clean(manager: NetworkManager, host: Host) -> None:
    """Nothing of the datapath instance is left: namespaces, links, nftables, state."""
    tag = manager.datapath.names.tag
    assert leftovers(tag) == []
    assert set(host.ns.links()) == host.base_links
    assert nft.tables(host.ns.path) == set()
    assert manager.ipam.pools() == []
    assert manager.datapath.tenants() == []


@pytest.fixture
def manager(host: Host, tmp_path: Path) -> Iterator[NetworkManager]:
    m = NetworkManager.standalone(
        str(tmp_path / "state"), tag=RUN, host_netns=host.ns.path, underlay_ip=HOST_IP
    )
    try:
        yield m
    finally:
        m.teardown_all()
    assert_clean(m, host)
