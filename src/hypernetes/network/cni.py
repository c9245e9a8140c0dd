"""`hypernetes-cni`: a CNI 1.0 plugin attaching containers to Hypernetes tenant networks.

Called by a container runtime (containerd, CRI-O, kubelet through them) as the
spec prescribes: the command and container in ``CNI_*`` environment
variables, the network configuration as JSON on stdin, the result (or a CNI
error object with a well-known code) as JSON on stdout.

Standalone mode (implemented here) keeps its state under ``dataDir``::

    {"cniVersion": "1.0.0", "name": "acme-net", "type": "hypernetes",
     "tenant": "acme", "subnet": "10.77.0.0/24", "gateway": "10.77.0.1",
     "dataDir": "/var/lib/hypernetes/cni"}

Optional keys: ``mtu``, ``vni`` with ``vtep`` (this host's underlay address),
``egressCidr``, ``masquerade`` (default true), ``instance`` (the datapath tag,
default "main") and ``hostNetns`` (the namespace acting as the host, default
the caller's). ``CNI_ARGS`` may request an address with ``IP=a.b.c.d``.

Server mode (``kubeconfig`` or ``server`` instead of ``subnet``; see
cni_server.py) reads the pod's `Network` object for tenant, CIDR, gateway and
VNI and keeps leases in the control-plane store; it fills in the same request
fields and supplies another `_manager`, the rest is shared.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import os
import sys
from collections.abc import Mapping
from typing import Any, NoReturn, TextIO

from hypernetes.client import ClientError

from . import cni_server
from .ipam import AddressInUse, IPAMError, PoolExhausted
from .manager import NetworkManager
from .model import Attachment, Conflict, InterfaceExists, NetworkError, PodNetnsNotFound
from .names import check_name

SUPPORTED_VERSIONS = ("0.4.0", "1.0.0")
DEFAULT_DATA_DIR = "/var/lib/hypernetes/cni"

# Well-known error codes (CNI spec, "Error"); 100+ are this plugin's own.
E_INCOMPATIBLE_VERSION = 1
E_UNSUPPORTED_FIELD = 2
E_UNKNOWN_CONTAINER = 3
E_INVALID_ENV = 4
E_IO = 5
E_DECODE = 6
E_INVALID_CONFIG = 7
E_TRY_AGAIN = 11
E_DATAPATH = 100
E_IPAM = 101
E_CHECK = 102


class CNIError(Exception):
    def __init__(self, code: int, msg: str, details: str = "") -> None:
        super().__init__(msg)
        self.code, self.msg, self.details = code, msg, details


def _fail(code: int, msg: str, details: str = "") -> NoReturn:
    raise CNIError(code, msg, details)


def _parse_args(text: str) -> dict[str, str]:
    """CNI_ARGS: "K1=V1;K2=V2" (unknown keys are ignored, as by the reference plugins)."""
    out: dict[str, str] = {}
    for item in filter(None, text.split(";")):
        key, sep, value = item.partition("=")
        if not sep:
            _fail(E_INVALID_ENV, f"CNI_ARGS item {item!r} is not KEY=VALUE")
        out[key] = value
    return out


class Request:
    """One invocation: validated environment and configuration."""

    def __init__(self, env: Mapping[str, str], stdin: str) -> None:
        self.command = env.get("CNI_COMMAND", "")
        if not self.command:
            _fail(E_INVALID_ENV, "CNI_COMMAND is not set")
        try:
            conf = json.loads(stdin) if stdin.strip() else {}
        except ValueError as exc:
            _fail(E_DECODE, "network configuration is not valid JSON", str(exc))
        if not isinstance(conf, dict):
            _fail(E_DECODE, "network configuration must be a JSON object")
        self.conf: dict[str, Any] = conf
        self.version = str(conf.get("cniVersion", ""))
        if self.command == "VERSION":
            return
        if self.version not in SUPPORTED_VERSIONS:
            _fail(
                E_INCOMPATIBLE_VERSION,
                f"incompatible CNI version {self.version!r}",
                f"supported: {', '.join(SUPPORTED_VERSIONS)}",
            )
        if self.command not in ("ADD", "DEL", "CHECK"):
            _fail(E_INVALID_ENV, f"unknown CNI_COMMAND {self.command!r}")
        for var in ("CNI_CONTAINERID", "CNI_IFNAME") + (
            ("CNI_NETNS",) if self.command in ("ADD", "CHECK") else ()
        ):
            if not env.get(var):
                _fail(E_INVALID_ENV, f"{var} is not set")
        self.container_id = env["CNI_CONTAINERID"]
        self.ifname = env["CNI_IFNAME"]
        self.netns = env.get("CNI_NETNS", "")
        self.args = _parse_args(env.get("CNI_ARGS", ""))
        self.pod_ref = ""  # server mode: the pod, recorded in its lease
        self.session: cni_server.Session | None = None
        self._validate()

    def _validate(self) -> None:
        c = self.conf
        try:
            self.network = check_name("network", c.get("name"))  # type: ignore[arg-type]
            self.server = cni_server.server_config(c)
            if self.server is None:
                self.tenant = check_name("tenant", c.get("tenant"))  # type: ignore[arg-type]
                if not isinstance(c.get("subnet"), str):
                    raise ValueError("'subnet' (a CIDR) is required")
                self.subnet = str(ipaddress.IPv4Network(c["subnet"], strict=True))
                self.gateway = (
                    str(ipaddress.IPv4Address(c["gateway"])) if c.get("gateway") else None
                )
                self.vni = _opt_int(c, "vni")
            else:  # filled in from the pod's Network object (cni_server.resolve)
                self.tenant, self.subnet, self.gateway, self.vni = "", "", None, None
            self.mtu = _opt_int(c, "mtu")
            self.vtep = str(ipaddress.IPv4Address(c["vtep"])) if c.get("vtep") else None
            self.data_dir = c.get("dataDir") or DEFAULT_DATA_DIR
            if not isinstance(self.data_dir, str) or not os.path.isabs(self.data_dir):
                raise ValueError("'dataDir' must be an absolute path")
            self.options: dict[str, Any] = {
                "tag": c.get("instance", "main"),
                "host_netns": c.get("hostNetns"),
                "underlay_ip": self.vtep,
                "masquerade": bool(c.get("masquerade", True)),
            }
            if c.get("egressCidr"):
                self.options["egress_cidr"] = str(ipaddress.IPv4Network(c["egressCidr"]))
            self.requested = ipaddress.IPv4Address(self.args["IP"]) if "IP" in self.args else None
        except (ValueError, TypeError) as exc:
            _fail(E_INVALID_CONFIG, f"invalid network configuration: {exc}")

    @property
    def pod_id(self) -> str:
        """The attachment key of the spec: (container, network, interface)."""
        return f"{self.container_id}/{self.ifname}"


def _opt_int(conf: Mapping[str, Any], key: str) -> int | None:
    value = conf.get(key)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"{key!r} must be a positive integer")
    return value


def _manager(req: Request) -> NetworkManager:
    """Standalone: datapath plus IPAM in `dataDir`; server mode: IPAM in the store."""
    if req.session is not None:
        return req.session.manager(req)
    try:
        return NetworkManager.standalone(req.data_dir, **req.options)
    except ValueError as exc:
        _fail(E_INVALID_CONFIG, f"invalid network configuration: {exc}")


def _result(req: Request, att: Attachment, bridge: str, gateway_mac: str) -> dict[str, Any]:
    ip: dict[str, Any] = {"address": str(att.ip), "gateway": str(att.gateway), "interface": 2}
    if req.version == "0.4.0":
        ip["version"] = "4"
    return {
        "cniVersion": req.version,
        "interfaces": [
            {"name": bridge, "mac": gateway_mac, "sandbox": att.tenant_netns},
            {"name": att.port, "sandbox": att.tenant_netns},
            {"name": att.ifname, "mac": att.mac, "sandbox": req.netns},
        ],
        "ips": [ip],
        "routes": [{"dst": "0.0.0.0/0", "gw": str(att.gateway)}],
        "dns": {},
    }


@dataclasses.dataclass(frozen=True)
class NetworkParams:
    cidr: str
    gateway: str | None
    vni: int | None
    mtu: int | None


def _network_params(req: Request) -> NetworkParams:
    """The Network's definition. Standalone: from the configuration itself; server-backed
    mode will read the tenant's `Network` object (spec.cidr, spec.gateway, its VNI) here."""
    return NetworkParams(req.subnet, req.gateway, req.vni, req.mtu)


def cmd_add(req: Request) -> dict[str, Any]:
    mgr = _manager(req)
    net = _network_params(req)
    info = mgr.ensure_network(
        req.tenant, req.network, net.cidr, net.gateway, vni=net.vni, mtu=net.mtu
    )
    att = mgr.attach(
        req.tenant,
        req.network,
        req.pod_id,
        netns=req.netns,
        ifname=req.ifname,
        ip=req.requested,
        pod=req.pod_ref,
    )
    return _result(req, att, info.bridge, info.gateway_mac)


def cmd_del(req: Request) -> None:
    if not os.path.isdir(req.data_dir):
        return  # nothing was ever set up here
    _manager(req).detach(req.tenant, req.network, req.pod_id)


def cmd_check(req: Request) -> None:
    prev = req.conf.get("prevResult")
    if not isinstance(prev, dict):
        _fail(E_INVALID_CONFIG, "CHECK needs prevResult in the network configuration")
    mgr = _manager(req)
    att = mgr.attachment(req.tenant, req.network, req.pod_id)
    if att is None:
        _fail(E_CHECK, f"{req.pod_id} is not attached to {req.tenant}/{req.network}")
    att = dataclasses.replace(att, ifname=req.ifname, netns=req.netns, kind="veth")
    problems = mgr.check(att)
    prev_ips = [i.get("address") for i in prev.get("ips", []) if isinstance(i, dict)]
    if str(att.ip) not in prev_ips:
        problems.append(f"prevResult lists {prev_ips}, the pod has {att.ip}")
    if problems:
        _fail(E_CHECK, "attachment check failed", "; ".join(problems))


def run(env: Mapping[str, str], stdin: str, out: TextIO) -> int:
    """The plugin, with its inputs and output passed in (main() wires the process's)."""
    version = "1.0.0"
    try:
        req = Request(env, stdin)
        version = req.version if req.version in SUPPORTED_VERSIONS else version
        if req.command == "VERSION":
            json.dump({"cniVersion": version, "supportedVersions": list(SUPPORTED_VERSIONS)}, out)
            return 0
        if req.server is not None:
            _run_server_mode(req, out)
        elif req.command == "ADD":
            json.dump(cmd_add(req), out)
        elif req.command == "DEL":
            cmd_del(req)
        else:
            cmd_check(req)
        return 0
    except CNIError as exc:
        error = exc
    except cni_server.CNIServerError as exc:
        error = CNIError(exc.code, exc.msg)
    except PodNetnsNotFound as exc:
        error = CNIError(E_UNKNOWN_CONTAINER, str(exc))
    except InterfaceExists as exc:
        error = CNIError(E_DATAPATH, str(exc))
    except Conflict as exc:
        error = CNIError(E_INVALID_CONFIG, str(exc))
    except (PoolExhausted, AddressInUse, IPAMError) as exc:
        error = CNIError(E_IPAM, str(exc))
    except (NetworkError, ValueError) as exc:
        error = CNIError(E_DATAPATH, str(exc))
    except OSError as exc:
        error = CNIError(E_IO, f"{type(exc).__name__}: {exc}")
    except Exception as exc:  # a CNI plugin must always answer with an error object
        error = CNIError(E_DATAPATH, f"{type(exc).__name__}: {exc}")
    body = {"cniVersion": version, "code": error.code, "msg": error.msg}
    if error.details:
        body["details"] = error.details
    json.dump(body, out)
    print(f"hypernetes-cni: {error.msg} {error.details}".rstrip(), file=sys.stderr)
    return 1


def _run_server_mode(req: Request, out: TextIO) -> None:
    assert req.server is not None
    try:
        req.session = cni_server.Session(req.server)
    except (OSError, ClientError) as exc:
        _fail(E_INVALID_CONFIG, f"cannot use the API server settings: {exc}")
    try:
        _server_command(req, out)
    except ClientError as exc:
        raise cni_server.client_error(exc) from None
    finally:
        req.session.close()


def _server_command(req: Request, out: TextIO) -> None:
    assert req.session is not None
    if req.command == "ADD":
        cni_server.resolve(req.session, req)
        result = cmd_add(req)
        cni_server.remember(req)
        json.dump(result, out)
    elif req.command == "DEL":
        if cni_server.resolve_known(req.session, req):  # else: never attached here
            cmd_del(req)
        cni_server.forget(req)
    else:
        if not cni_server.resolve_known(req.session, req):
            _fail(E_CHECK, f"{req.pod_id} is not attached to any network on this node")
        cmd_check(req)


def main() -> int:
    return run(os.environ, sys.stdin.read() if not sys.stdin.isatty() else "", sys.stdout)


if __name__ == "__main__":
    sys.exit(main())
