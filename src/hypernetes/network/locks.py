"""Cross-process locks for datapath changes (flock on files in the state directory).

Concurrent CNI invocations (one process each) and the node agent may touch
one tenant's namespace at the same time; structural changes to a tenant
(creating its router, networks, ports) are serialised per tenant, and changes
to the host namespace (its nftables table, egress addresses) by a host lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator

from .names import digest


class Locks:
    def __init__(self, directory: str) -> None:
        self.directory = directory
        os.makedirs(directory, mode=0o700, exist_ok=True)

    @contextlib.contextmanager
    def hold(self, name: str) -> Iterator[None]:
        path = os.path.join(self.directory, digest("lock", name)[:24] + ".lock")
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def tenant(self, tenant: str) -> contextlib.AbstractContextManager[None]:
        return self.hold("tenant\0" + tenant)

    def host(self) -> contextlib.AbstractContextManager[None]:
        return self.hold("host")
