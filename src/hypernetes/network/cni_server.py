"""Server mode of `hypernetes-cni`: the pod's Network object instead of a configured subnet.

A network configuration with ``kubeconfig`` (a path) or ``server`` (a URL,
with ``tokenFile`` and ``certificateAuthority`` paths) instead of ``subnet``
runs in server mode::

    {"cniVersion": "1.0.0", "name": "hypernetes", "type": "hypernetes",
     "kubeconfig": "/etc/hypernetes/node.kubeconfig", "nodeName": "node-1",
     "dataDir": "/var/lib/hypernetes/cni"}

ADD reads the pod named by ``CNI_ARGS`` (``K8S_POD_NAMESPACE``,
``K8S_POD_NAME``, as containerd and CRI-O pass them), its tenant (pod label,
else its namespace's), and the Network it is on (`resource.network_for_pod`:
its annotation, else the tenant default), which must be Ready (else error 11,
"try again later"). The Network's CIDR, gateway and VNI define the datapath;
the address comes from the store-backed IPAM (`ipam_store.StoreBackend`),
the lease recording the pod so it is reclaimed if the pod goes without a DEL.
Which Network an attachment went to is remembered in ``dataDir`` (as the
reference plugins cache results), so DEL and CHECK work even when the pod
object is already gone. Optional keys: ``nodeName`` (default: the host name),
``overlay`` (default true: VXLAN with the Network's VNI) and the standalone
mode's ``vtep``, ``mtu``, ``instance``, ``hostNetns``, ``egressCidr``,
``masquerade``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hypernetes.client import (
    NAMESPACES,
    NETWORKS,
    PODS,
    ApiError,
    Client,
    ClientError,
    Config,
    NotFound,
    TransportError,
    load_kubeconfig,
)

from .ipam import IPAM
from .ipam_store import LoopThread, PodLiveness, StoreBackend, pod_uids
from .manager import NetworkManager
from .names import digest
from .resource import (
    TENANT_LABEL,
    is_ready_network,
    name_of,
    network_for_pod,
    pod_ref,
    pod_tenant,
    tenant_of,
)

if TYPE_CHECKING:
    from .cni import Request

E_UNKNOWN_CONTAINER = 3
E_INVALID_ENV = 4
E_IO = 5
E_INVALID_CONFIG = 7
E_TRY_AGAIN = 11


@dataclasses.dataclass(frozen=True)
class ServerConf:
    kubeconfig: str | None
    server: str | None
    token_file: str | None
    ca_file: str | None
    node: str
    overlay: bool


def server_config(conf: dict[str, Any]) -> ServerConf | None:
    """The server settings of a network configuration; None in standalone mode.
    Raises ValueError for an unusable combination."""
    kubeconfig, server = conf.get("kubeconfig"), conf.get("server")
    if not kubeconfig and not server:
        return None
    if "subnet" in conf:
        raise ValueError("'subnet' and 'kubeconfig'/'server' exclude each other")
    for key in ("kubeconfig", "tokenFile", "certificateAuthority"):
        value = conf.get(key)
        if value is not None and (not isinstance(value, str) or not os.path.isabs(value)):
            raise ValueError(f"{key!r} must be an absolute path")
    if server and not kubeconfig and not conf.get("tokenFile"):
        raise ValueError("'server' needs 'tokenFile' (or use 'kubeconfig')")
    node = conf.get("nodeName") or os.uname().nodename
    if not isinstance(node, str):
        raise ValueError("'nodeName' must be a string")
    return ServerConf(
        kubeconfig=kubeconfig,
        server=server,
        token_file=conf.get("tokenFile"),
        ca_file=conf.get("certificateAuthority"),
        node=node,
        overlay=bool(conf.get("overlay", True)),
    )


class CNIServerError(Exception):
    def __init__(self, code: int, msg: str) -> None:
        super().__init__(msg)
        self.code, self.msg = code, msg


def client_error(exc: ClientError) -> CNIServerError:
    """A failed API call as a CNI error: unreachable is "try again", a refusal of
    our credentials a configuration error."""
    if isinstance(exc, TransportError):
        return CNIServerError(E_TRY_AGAIN, f"API server unreachable: {exc}")
    if isinstance(exc, ApiError) and exc.code in (401, 403):
        return CNIServerError(E_INVALID_CONFIG, f"API server refused us: {exc.message}")
    return CNIServerError(E_IO, f"API server: {exc}")


class Session:
    """One plugin run's API connection: a client on a loop thread of its own."""

    def __init__(self, sc: ServerConf) -> None:
        if sc.kubeconfig:
            config = load_kubeconfig(Path(sc.kubeconfig))
            if sc.server:
                config.server = sc.server.rstrip("/")
        else:
            assert sc.server is not None
            ca = Path(sc.ca_file).read_bytes() if sc.ca_file else None
            token_file = Path(sc.token_file) if sc.token_file else None
            config = Config(server=sc.server, ca_pem=ca, token_file=token_file)
        self.conf = sc
        self.thread = LoopThread()
        self.client = Client(config, user_agent="hypernetes-cni", timeout=30.0)

    def run(self, coro: Any) -> Any:
        return self.thread.run(coro)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.run(self.client.close())
        self.thread.close()

    def manager(self, req: Request) -> NetworkManager:
        from .datapath import Datapath

        datapath = Datapath(req.data_dir, **req.options)
        liveness = PodLiveness(self.conf.node, lambda: self.run(pod_uids(self.client)))
        backend = StoreBackend(self.client, self.thread.loop)
        return NetworkManager(
            datapath, IPAM(backend, node=self.conf.node, liveness=liveness.is_stale)
        )


# -- which Network ----------------------------------------------------------------------
def _pod_key(req: Request) -> tuple[str, str]:
    ns, name = req.args.get("K8S_POD_NAMESPACE", ""), req.args.get("K8S_POD_NAME", "")
    if not ns or not name:
        raise CNIServerError(
            E_INVALID_ENV, "server mode needs K8S_POD_NAMESPACE and K8S_POD_NAME in CNI_ARGS"
        )
    return ns, name


async def _lookup(
    client: Client, ns: str, name: str
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The pod and the Network it is on (None if it has none)."""
    pod = await client.get(PODS, name, ns)
    namespace = await client.get(NAMESPACES, ns)
    ns_tenant = (namespace["metadata"].get("labels") or {}).get(TENANT_LABEL)
    tenant = pod_tenant(pod, {ns: ns_tenant} if ns_tenant else {})
    if not tenant:
        return pod, None
    listing = await client.list_all(NETWORKS, label_selector=f"{TENANT_LABEL}={tenant}")
    return pod, network_for_pod(pod, listing.get("items") or [], tenant=tenant)


def resolve(session: Session, req: Request) -> None:
    """Fill in the request's tenant and Network from the API (ADD)."""
    ns, name = _pod_key(req)
    try:
        pod, network = session.run(_lookup(session.client, ns, name))
    except NotFound as exc:
        raise CNIServerError(E_UNKNOWN_CONTAINER, f"pod {ns}/{name}: {exc.message}") from None
    if network is None:
        raise CNIServerError(E_INVALID_CONFIG, f"pod {ns}/{name} is on no tenant network")
    if not is_ready_network(network):
        raise CNIServerError(E_TRY_AGAIN, f"network {name_of(network)} is not ready yet")
    spec = network["spec"]
    req.tenant, req.network = tenant_of(network), name_of(network)
    req.subnet, req.gateway = spec["cidr"], spec.get("gateway")
    req.vni = network["status"]["vni"] if session.conf.overlay else None
    req.pod_ref = pod_ref(pod)


def resolve_known(session: Session, req: Request) -> bool:
    """Fill in tenant and Network for DEL/CHECK: from this node's record of the ADD,
    else from the API; False if neither knows the attachment."""
    record = _read_record(req)
    if record is not None:
        req.tenant, req.network = record["tenant"], record["network"]
        return True
    try:
        resolve(session, req)
    except CNIServerError as exc:
        if exc.code in (E_UNKNOWN_CONTAINER, E_INVALID_CONFIG):
            return False
        raise
    return True


# -- the node's record of attachments ---------------------------------------------------
def _record_path(req: Request) -> str:
    key = digest("attachment", req.container_id, req.ifname)[:32]
    return os.path.join(req.data_dir, "attachments", key + ".json")


def remember(req: Request) -> None:
    path = _record_path(req)
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    record = {"container": req.container_id, "ifname": req.ifname,
              "tenant": req.tenant, "network": req.network}  # fmt: skip
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(record, f)
    os.replace(tmp, path)


def forget(req: Request) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(_record_path(req))


def _read_record(req: Request) -> dict[str, str] | None:
    try:
        with open(_record_path(req)) as f:
            record = json.load(f)
    except (FileNotFoundError, ValueError):
        return None
    if record.get("container") != req.container_id or record.get("ifname") != req.ifname:
        return None
    return record
