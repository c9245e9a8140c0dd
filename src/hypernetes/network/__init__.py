"""Tenant networks: isolated L2 networks per tenant on Linux kernel primitives.

Every tenant gets its own routing domain on each host (a network namespace
acting as the tenant's router); each of its Networks is a bridge in it
carrying the gateway address; pods attach by veth (runc pods) or TAP (VM
pods). Tenants may use the same CIDRs and have no path to each other.
Traffic to the outside is SNATed by the tenant router. A pod can only send
with its own MAC and IP (bridge filtering with nftables). Networks span hosts
over VXLAN with forwarding entries programmed from known pod locations.
Everything is programmed through netlink (pyroute2) and libnftables.

Entry point for the node agent and controllers: `NetworkManager` (datapath +
IPAM). All calls are blocking and safe to make from several threads and
processes at once; from asyncio use ``asyncio.to_thread``::

    from hypernetes.network import NetworkManager, RemoteEndpoint

    # standalone: IPAM pools in a local state directory
    nm = NetworkManager.standalone("/var/lib/hypernetes/network", underlay_ip="192.0.2.10")
    # server mode: NetworkManager(Datapath(state_dir, ...),
    #                             IPAM(StoreBackend(client, loop), node=node_name))

    nm.ensure_tenant("acme")                                   -> TenantInfo
    nm.ensure_network("acme", "default", "10.0.0.0/24",        -> NetworkInfo
                      gateway=None, vni=4097)                  #  (VNI from the controller)
    att = nm.attach("acme", "default", pod_uid,                -> Attachment
                    kind="veth", netns="/run/netns/cni-...", ifname="eth0")
    att = nm.attach("acme", "default", pod_uid, kind="tap")    # VM pod
    fd = open_tap(att.netns, att.port)                         # hand to QEMU: -netdev tap,fd=N
    #   att.ip (address/prefix), att.gateway, att.mac (give it to the guest NIC),
    #   att.mtu, att.port (bridge port / TAP name), att.ifname, att.netns
    nm.set_remote_endpoints("acme", "default",                 # the Network's pods elsewhere
                            [RemoteEndpoint(ip, mac, host_vtep), ...])
    nm.detach("acme", "default", pod_uid)                      -> bool (idempotent)
    nm.check(att)                                              -> list of problems
    nm.gc(valid_owners=None)                                   -> GCReport (crash repair)
    nm.teardown_network("acme", "default"); nm.teardown_tenant("acme"); nm.teardown_all()

Modules: `datapath` (kernel state), `overlay` (VXLAN forwarding entries),
`rules` (nftables rulesets), `ipam` (allocation and the `IPAMBackend`
interface a control-plane store backend implements), `ipam_local` (the
standalone backend), `ipam_store` (the server-mode backend, in the API
server's store), `manager`, `cni` and `cni_server` (the ``hypernetes-cni`` CNI
1.0 plugin, standalone and server mode), `resource` (the `Network` object:
validation, `network_for_pod`), `node` (`NodeNetworks`: one host's datapath
from API objects), `names` (kernel object naming), `namespaces`, `nft`, `tap`.
See docs/NETWORK.md.
"""

from .datapath import Datapath
from .ipam import (
    IPAM,
    AddressInUse,
    IPAMBackend,
    IPAMError,
    Lease,
    LocalLiveness,
    Pool,
    PoolConflict,
    PoolExhausted,
    PoolNotFound,
)
from .ipam_local import LocalDirBackend
from .manager import GCReport, NetworkManager
from .model import (
    Attachment,
    Conflict,
    InterfaceExists,
    NetworkError,
    NetworkInfo,
    NotFound,
    PodNetnsNotFound,
    PortInfo,
    RemoteEndpoint,
    TenantInfo,
)
from .tap import open_tap

__all__ = [
    "IPAM",
    "AddressInUse",
    "Attachment",
    "Conflict",
    "Datapath",
    "GCReport",
    "IPAMBackend",
    "IPAMError",
    "InterfaceExists",
    "Lease",
    "LocalDirBackend",
    "LocalLiveness",
    "NetworkError",
    "NetworkInfo",
    "NetworkManager",
    "NotFound",
    "PodNetnsNotFound",
    "Pool",
    "PoolConflict",
    "PoolExhausted",
    "PoolNotFound",
    "PortInfo",
    "RemoteEndpoint",
    "TenantInfo",
    "open_tap",
]
