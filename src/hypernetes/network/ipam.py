"""IP address management: per-network pools with leases, over a pluggable store.

The allocation logic lives here once; a backend only has to provide an atomic
read-modify-write of one JSON document per pool (`IPAMBackend`). Two
backends are meant to exist:

* `LocalDirBackend` (ipam_local.py, standalone mode): one file per pool in a
  state directory, serialised with flock(2), so concurrent CNI processes never
  hand out one address twice.
* `StoreBackend` (ipam_store.py, server mode): one object per pool in the
  control-plane store, updated with compare-and-swap on its revision.
  Its `update` re-reads and calls `mutate` again when the CAS loses a race,
  which is why `mutate` must be a pure function of the document.

Crash handling. A lease is *pending* from allocation until the datapath is
set up, then *active*. Every lease records the node, boot id, allocating
process (pid and its start time) and the pod's network namespace identity.
`LocalLiveness` declares a lease of this node stale when the machine rebooted
since, when a pending lease's process died (an ADD that crashed half-way), or
when an active lease's namespace is gone (a pod that died without DEL).
Allocation reclaims stale leases automatically when the pool is exhausted and
`IPAM.reclaim` does it on demand.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import time
from collections.abc import Callable, Iterable
from typing import Any, Protocol, TypeVar

from .names import check_name, digest

T = TypeVar("T")
Document = dict[str, Any]
DOC_VERSION = 2


class IPAMError(Exception):
    """Base of IPAM errors."""


class PoolExhausted(IPAMError):
    """No free address is left in the pool (after reclaiming stale leases)."""


class AddressInUse(IPAMError):
    """A specific address was requested but is leased to another owner."""


class PoolConflict(IPAMError):
    """A pool exists with a different definition (CIDR or gateway)."""


class PoolNotFound(IPAMError):
    """The pool was never created (ensure_pool)."""


def pool_id(tenant: str, network: str) -> str:
    """Backend key of a pool: unique per (tenant, network), safe as a file or key name."""
    return f"{tenant}.{digest('pool', tenant, network)[:16]}"


@dataclasses.dataclass(frozen=True)
class Pool:
    """An address pool: one tenant Network (or the host's egress transit range)."""

    tenant: str
    network: str
    cidr: ipaddress.IPv4Network
    gateway: ipaddress.IPv4Address

    def __post_init__(self) -> None:
        if self.cidr.prefixlen > 30:
            raise ValueError(f"{self.cidr}: a network needs at least a /30")
        if self.gateway not in self.cidr or self.gateway in (
            self.cidr.network_address,
            self.cidr.broadcast_address,
        ):
            raise ValueError(f"gateway {self.gateway} is not a host address of {self.cidr}")

    @classmethod
    def of(cls, tenant: str, network: str, cidr: str, gateway: str | None = None) -> Pool:
        net = ipaddress.IPv4Network(cidr, strict=True)
        gw = ipaddress.IPv4Address(gateway) if gateway else net.network_address + 1
        return cls(tenant, network, net, gw)

    @property
    def id(self) -> str:
        return pool_id(self.tenant, self.network)

    def usable(self, address: ipaddress.IPv4Address) -> bool:
        return (
            address in self.cidr
            and address not in (self.cidr.network_address, self.cidr.broadcast_address)
            and address != self.gateway
        )

    def describe(self) -> dict[str, str]:
        return {
            "tenant": self.tenant,
            "network": self.network,
            "cidr": str(self.cidr),
            "gateway": str(self.gateway),
        }


@dataclasses.dataclass(frozen=True)
class Lease:
    address: ipaddress.IPv4Address
    owner: str  # the attachment key, e.g. "<containerID>/<ifname>" or a pod uid
    node: str
    state: str  # "pending" | "active"
    created: int  # unix seconds
    boot_id: str
    pid: int
    pid_start: int  # start time of `pid` in clock ticks, to survive pid reuse
    netns: str = ""  # path of the pod's namespace ("" for VM pods on TAP)
    netns_id: str = ""  # device:inode of it when attached
    port: str = ""  # bridge port name on the node
    mac: str = ""
    pod: str = ""  # server mode: "namespace/name/uid" of the pod (reclaimed once it is gone)

    def to_json(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["address"] = str(self.address)
        return d

    def to_row(self) -> list[Any]:
        """Compact form stored in pool documents (keyed by address; owner first)."""
        return [getattr(self, name) for name in ROW_FIELDS]

    @classmethod
    def from_row(cls, address: str, row: list[Any]) -> Lease:
        return cls(ipaddress.IPv4Address(address), *row)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Lease:
        fields = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in d.items() if k in fields}
        values["address"] = ipaddress.IPv4Address(d["address"])
        return cls(**values)


# Lease fields in stored rows, in order (the address is the row's key). Large pools
# hold thousands of leases and every allocation rewrites the document, so rows
# are positional rather than dicts with repeated keys.
ROW_FIELDS = tuple(f.name for f in dataclasses.fields(Lease))[1:]
OWNER = 0


class IPAMBackend(Protocol):
    """What a pool store must provide. Documents are JSON-serialisable dicts."""

    def read(self, pool_id: str) -> Document | None:
        """The current document of a pool, or None."""
        ...

    def update(
        self, pool_id: str, mutate: Callable[[Document | None], tuple[Document | None, T]]
    ) -> T:
        """Atomically replace the document by `mutate(current)[0]` (None deletes it) and
        return `mutate(current)[1]`. Concurrent updates of one pool must be serialised
        or retried: a compare-and-swap backend reads the document and its revision,
        calls `mutate` on a private copy (it may change it in place), and writes only
        if the revision is unchanged, else starts over. An exception from `mutate`
        aborts the update and propagates; nothing is written."""
        ...

    def pools(self) -> list[str]:
        """Ids of all pools with a document."""
        ...


def boot_id() -> str:
    """This boot's identity: a prefix of the kernel's random boot id (48 bits are plenty,
    and every lease carries it)."""
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip().replace("-", "")[:12]
    except OSError:
        return ""


def process_start(pid: int) -> int:
    """Start time (clock ticks since boot) of a process, 0 if it does not exist."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return 0
    # Field 22; the command name (field 2) may contain spaces, so split after ")".
    return int(stat.rpartition(")")[2].split()[19])


class LocalLiveness:
    """Decides whether a lease held by *this* node is stale (see module docstring)."""

    def __init__(self, node: str) -> None:
        self.node = node
        self.boot_id = boot_id()

    def is_stale(self, lease: Lease) -> bool:
        from .namespaces import netns_id

        if lease.node != self.node:
            return False  # only the owning node can judge
        if lease.boot_id and lease.boot_id != self.boot_id:
            return True
        if lease.state == "pending":
            return process_start(lease.pid) != lease.pid_start
        if lease.netns:
            return netns_id(lease.netns) != lease.netns_id
        return False


class IPAM:
    """Allocation over a backend. Thread- and process-safe as far as the backend is."""

    def __init__(
        self,
        backend: IPAMBackend,
        node: str | None = None,
        liveness: Callable[[Lease], bool] | None = None,
    ) -> None:
        self.backend = backend
        self.node = node or os.uname().nodename
        self.is_stale = liveness or LocalLiveness(self.node).is_stale
        self._boot_id = boot_id()
        self._pools: dict[str, Pool] = {}

    # -- pools ---------------------------------------------------------------
    def ensure_pool(self, pool: Pool) -> None:
        check_name("tenant", pool.tenant)
        doc = self.backend.read(pool.id)
        if doc is not None and doc["pool"] == pool.describe():
            self._pools[pool.id] = pool
            return  # the common case: no write

        def mutate(doc: Document | None) -> tuple[Document | None, None]:
            if doc is None:
                doc = {"version": DOC_VERSION, "pool": pool.describe(), "fields": list(ROW_FIELDS)}
                return {**doc, "leases": {}}, None
            if doc["pool"] != pool.describe():
                raise PoolConflict(
                    f"network {pool.tenant}/{pool.network} exists with "
                    f"cidr {doc['pool']['cidr']} gateway {doc['pool']['gateway']}"
                )
            return doc, None

        self.backend.update(pool.id, mutate)
        self._pools[pool.id] = pool

    def get_pool(self, tenant: str, network: str, *, cached: bool = True) -> Pool | None:
        """The pool of a network. Definitions are cached (a pool never changes; one
        deleted and redefined elsewhere is noticed by the next allocate or confirm,
        which check the stored definition and drop the cached one)."""
        key = pool_id(tenant, network)
        if cached and key in self._pools:
            return self._pools[key]
        doc = self.backend.read(key)
        if doc is None:
            self._pools.pop(key, None)
            return None
        p = doc["pool"]
        pool = Pool.of(p["tenant"], p["network"], p["cidr"], p["gateway"])
        self._pools[key] = pool
        return pool

    def delete_pool(self, pool: Pool) -> list[Lease]:
        """Forget a pool and all its leases (network teardown); returns what was leased."""

        def mutate(doc: Document | None) -> tuple[Document | None, list[Lease]]:
            return None, _leases(doc)

        self._pools.pop(pool.id, None)
        return self.backend.update(pool.id, mutate)

    def pools(self) -> list[Pool]:
        out = []
        for pid in self.backend.pools():
            doc = self.backend.read(pid)
            if doc:
                p = doc["pool"]
                out.append(Pool.of(p["tenant"], p["network"], p["cidr"], p["gateway"]))
        return out

    # -- leases --------------------------------------------------------------
    def allocate(
        self,
        pool: Pool,
        owner: str,
        *,
        requested: ipaddress.IPv4Address | None = None,
        netns: str = "",
        port: str = "",
        pod: str = "",
    ) -> Lease:
        """Lease an address to `owner` (pending until `confirm`). Idempotent per owner:
        an owner that already holds a lease gets the same one back."""
        if requested is not None and not pool.usable(requested):
            raise AddressInUse(f"{requested} is not an assignable address of {pool.cidr}")
        pid = os.getpid()
        template = Lease(
            address=ipaddress.IPv4Address(0),
            owner=owner,
            node=self.node,
            state="pending",
            created=int(time.time()),
            boot_id=self._boot_id,
            pid=pid,
            pid_start=process_start(pid),
            netns=netns,
            port=port,
            pod=pod,
        )

        def mutate(doc: Document | None) -> tuple[Document | None, Lease]:
            doc = _require(doc, pool)
            leases: dict[str, Any] = doc["leases"]
            for key, row in leases.items():
                if row[OWNER] == owner:
                    held = Lease.from_row(key, row)
                    if requested is not None and held.address != requested:
                        raise AddressInUse(f"{owner} already holds {held.address}")
                    return doc, held
            address = self._pick(pool, doc, requested)
            if address is None:
                # Exhausted: reclaim what crashed processes and dead pods left behind.
                for key, row in list(leases.items()):
                    if self.is_stale(Lease.from_row(key, row)):
                        del leases[key]
                address = self._pick(pool, doc, requested)
            if address is None:
                if requested is not None:
                    raise AddressInUse(f"{requested} is leased to another owner")
                raise PoolExhausted(
                    f"no free address in {pool.cidr} ({pool.tenant}/{pool.network})"
                )
            lease = dataclasses.replace(template, address=address)
            leases[str(address)] = lease.to_row()
            doc["last"] = str(address)
            return doc, lease

        return self._update_checked(pool, mutate)

    def _update_checked(
        self, pool: Pool, mutate: Callable[[Document | None], tuple[Document | None, T]]
    ) -> T:
        try:
            return self.backend.update(pool.id, mutate)
        except (PoolNotFound, PoolConflict):
            self._pools.pop(pool.id, None)  # a stale cached definition
            raise

    @staticmethod
    def _pick(
        pool: Pool, doc: Document, requested: ipaddress.IPv4Address | None
    ) -> ipaddress.IPv4Address | None:
        leases = doc["leases"]
        if requested is not None:
            return None if str(requested) in leases else requested
        # Round-robin from the last allocation, so a released address is not
        # handed out again at once (stale ARP caches, late packets).
        first = int(pool.cidr.network_address) + 1
        last = int(pool.cidr.broadcast_address) - 1
        count = last - first + 1
        start = int(ipaddress.IPv4Address(doc["last"])) + 1 if doc.get("last") else first
        for i in range(count):
            value = first + (start - first + i) % count
            addr = ipaddress.IPv4Address(value)
            if addr != pool.gateway and str(addr) not in leases:
                return addr
        return None

    def confirm(self, pool: Pool, owner: str, *, netns_id: str = "", mac: str = "") -> Lease:
        """Mark the owner's lease active (the datapath is set up)."""

        def mutate(doc: Document | None) -> tuple[Document | None, Lease]:
            doc = _require(doc, pool)
            for key, row in doc["leases"].items():
                if row[OWNER] == owner:
                    lease = dataclasses.replace(
                        Lease.from_row(key, row), state="active", netns_id=netns_id, mac=mac
                    )
                    doc["leases"][key] = lease.to_row()
                    return doc, lease
            raise IPAMError(f"{owner} holds no lease in {pool.tenant}/{pool.network}")

        return self._update_checked(pool, mutate)

    def release(self, pool: Pool, owner: str) -> Lease | None:
        """Release the owner's lease. Idempotent: None if it held none (or no pool)."""

        def mutate(doc: Document | None) -> tuple[Document | None, Lease | None]:
            if doc is None:
                return None, None
            for key, row in list(doc["leases"].items()):
                if row[OWNER] == owner:
                    del doc["leases"][key]
                    return doc, Lease.from_row(key, row)
            return doc, None

        return self.backend.update(pool.id, mutate)

    def lookup(self, pool: Pool, owner: str) -> Lease | None:
        return next((lease for lease in self.leases(pool) if lease.owner == owner), None)

    def leases(self, pool: Pool) -> list[Lease]:
        return _leases(self.backend.read(pool.id))

    def reclaim(self, pool: Pool, is_stale: Callable[[Lease], bool] | None = None) -> list[Lease]:
        """Remove stale leases now (by the liveness check, or the given predicate)."""
        check = is_stale or self.is_stale

        def mutate(doc: Document | None) -> tuple[Document | None, list[Lease]]:
            if doc is None:
                return None, []
            gone = []
            for key, row in list(doc["leases"].items()):
                lease = Lease.from_row(key, row)
                if check(lease):
                    del doc["leases"][key]
                    gone.append(lease)
            return doc, gone

        return self.backend.update(pool.id, mutate)

    def retain(self, pool: Pool, owners: Iterable[str]) -> list[Lease]:
        """Release every lease of this node whose owner is not in `owners` (CNI GC style)."""
        keep = set(owners)
        return self.reclaim(pool, lambda lease: lease.node == self.node and lease.owner not in keep)


def _check_version(doc: Document) -> Document:
    # Documents written before a trailing field was added hold shorter rows: they
    # read with that field's default, and the next write records the new layout.
    fields = doc.get("fields")
    if (
        doc.get("version") != DOC_VERSION
        or not isinstance(fields, list)
        or not fields
        or fields != list(ROW_FIELDS[: len(fields)])
    ):
        raise IPAMError(f"unsupported pool document (version {doc.get('version')})")
    return doc


def _require(doc: Document | None, pool: Pool) -> Document:
    if doc is None:
        raise PoolNotFound(f"no address pool for network {pool.tenant}/{pool.network}")
    _check_version(doc)
    if doc["pool"] != pool.describe():
        raise PoolConflict(f"pool {pool.tenant}/{pool.network} is {doc['pool']['cidr']}")
    doc["fields"] = list(ROW_FIELDS)  # this write's rows have every field
    return doc


def _leases(doc: Document | None) -> list[Lease]:
    if doc is None:
        return []
    return [Lease.from_row(key, row) for key, row in _check_version(doc)["leases"].items()]
