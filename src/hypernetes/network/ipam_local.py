"""Standalone IPAM backend: one JSON file per pool in a local state directory.

Updates are serialised across threads and processes with an exclusive
flock(2) on a per-pool lock file (the kernel drops it when a holder dies, so
a crashed process never wedges a pool). Documents are replaced by
write-to-temporary and rename, so a crashed process leaves either the old or
the new document, never a torn one; reads need no lock for the same reason.

There is deliberately no fsync: it would only protect against losing the
machine itself, and after a reboot every lease of the previous boot is stale
anyway (the pods died with it; leases carry the boot id). A document damaged
by a power cut is therefore treated as absent rather than as an error.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
from collections.abc import Callable, Iterator
from typing import TypeVar

from .ipam import Document

T = TypeVar("T")
_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,200}$")


class LocalDirBackend:
    """`IPAMBackend` over a directory (created if missing, mode 0700)."""

    def __init__(self, directory: str) -> None:
        self.directory = directory
        os.makedirs(directory, mode=0o700, exist_ok=True)

    def _path(self, pool_id: str, suffix: str) -> str:
        if not _ID_RE.match(pool_id):
            raise ValueError(f"bad pool id {pool_id!r}")
        return os.path.join(self.directory, pool_id + suffix)

    @contextlib.contextmanager
    def _locked(self, pool_id: str) -> Iterator[None]:
        path = self._path(pool_id, ".lock")
        while True:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            fcntl.flock(fd, fcntl.LOCK_EX)
            # A deleted pool unlinks its lock file: if we waited on that old
            # inode, the lock no longer excludes anyone; start again.
            try:
                same = os.stat(path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        try:
            yield
        finally:
            os.close(fd)  # releases the lock

    def read(self, pool_id: str) -> Document | None:
        try:
            with open(self._path(pool_id, ".json")) as f:
                doc = json.load(f)
        except FileNotFoundError:
            return None
        except ValueError:
            return None  # torn by a power cut (see module docstring)
        return doc if isinstance(doc, dict) else None

    def update(
        self, pool_id: str, mutate: Callable[[Document | None], tuple[Document | None, T]]
    ) -> T:
        path = self._path(pool_id, ".json")
        with self._locked(pool_id):
            new, result = mutate(self.read(pool_id))
            if new is None:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self._path(pool_id, ".lock"))
            else:
                tmp = path + ".tmp"  # only the lock holder writes it
                with open(tmp, "w") as f:
                    f.write(json.dumps(new, separators=(",", ":")))  # one write, not per token
                os.replace(tmp, path)
        return result

    def pools(self) -> list[str]:
        try:
            names = os.listdir(self.directory)
        except FileNotFoundError:
            return []
        return sorted(n[: -len(".json")] for n in names if n.endswith(".json"))
