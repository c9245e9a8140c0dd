"""The Fernet key repository, laid out and rotated as Keystone's.

A directory of key files named by integers: `0` is the staged key (the next
primary, already accepted for decryption so that rotation can be rolled out
to several servers before anyone encrypts with it), the highest number is the
primary (encrypts new tokens), the others are secondaries (only decrypt
tokens issued before the last rotations). `rotate()` promotes the staged key
to primary, stages a new one and drops the oldest secondaries beyond
`max_active_keys`. Several API servers must share the same repository
(copied or on shared storage) exactly as Keystone nodes do.

The directory is 0700 and every key file 0600, written atomically; a file
lock serialises initialisation and rotation between processes; other
processes' rotations are noticed by the directory's modification time.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import stat
from collections.abc import Iterator
from pathlib import Path

from cryptography.fernet import Fernet, MultiFernet

log = logging.getLogger(__name__)

DEFAULT_MAX_ACTIVE_KEYS = 3
_LOCK = ".lock"


class KeyRepositoryError(Exception):
    """The key repository is missing, unreadable or holds an invalid key."""


class FernetKeyRepository:
    def __init__(
        self, path: str | os.PathLike[str], max_active_keys: int = DEFAULT_MAX_ACTIVE_KEYS
    ) -> None:
        if max_active_keys < 2:
            raise ValueError("max_active_keys must be at least 2 (staged and primary)")
        self.path = Path(path)
        self.max_active_keys = max_active_keys
        self._cached: tuple[int, MultiFernet] | None = None

    # -- set-up and rotation --------------------------------------------------

    def ensure(self) -> None:
        """Create the repository with a staged and a primary key unless it has keys."""
        self.path.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._tighten(self.path, 0o700)
        with self._locked():
            keys = self._key_files()
            for file in keys.values():
                self._tighten(file, 0o600)
            if 0 not in keys:
                self._write(0, Fernet.generate_key())
            if len(self._key_files()) < 2:
                self._write(1, Fernet.generate_key())

    def rotate(self) -> int:
        """Promote the staged key to primary, stage a new key, prune; returns the new primary."""
        with self._locked():
            keys = self._key_files()
            if 0 not in keys or len(keys) < 2:
                raise KeyRepositoryError(f"{self.path} is not initialised")
            primary = max(keys) + 1
            os.replace(keys[0], self.path / str(primary))
            self._write(0, Fernet.generate_key())
            secondaries = sorted(n for n in self._key_files() if n not in (0, primary))
            excess = len(secondaries) + 2 - self.max_active_keys
            for number in secondaries[: max(0, excess)]:
                (self.path / str(number)).unlink()
        log.info("fernet keys rotated: primary key is now %d", primary)
        return primary

    # -- use --------------------------------------------------------------------

    def key_numbers(self) -> list[int]:
        return sorted(self._key_files())

    def fernet(self) -> MultiFernet:
        """Primary first (encrypts), then secondaries newest first, then staged (decrypt only)."""
        try:
            mtime = os.stat(self.path).st_mtime_ns
        except FileNotFoundError:
            raise KeyRepositoryError(f"no key repository at {self.path}") from None
        if self._cached is not None and self._cached[0] == mtime:
            return self._cached[1]
        files = self._key_files()
        if 0 not in files or len(files) < 2:
            raise KeyRepositoryError(f"{self.path} has no primary and staged keys")
        order = [*sorted((n for n in files if n != 0), reverse=True), 0]
        try:
            fernets = [Fernet(files[n].read_bytes().strip()) for n in order]
        except (OSError, ValueError) as exc:
            raise KeyRepositoryError(f"unusable key in {self.path}: {exc}") from None
        multi = MultiFernet(fernets)
        self._cached = (mtime, multi)
        return multi

    # -- helpers ----------------------------------------------------------------

    def _key_files(self) -> dict[int, Path]:
        return {int(p.name): p for p in self.path.iterdir() if p.name.isdigit() and p.is_file()}

    def _write(self, number: int, key: bytes) -> None:
        temporary = self.path / f".{number}.tmp"
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.fchmod(fd, 0o600)  # whatever the umask
            os.write(fd, key)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temporary, self.path / str(number))

    @staticmethod
    def _tighten(path: Path, mode: int) -> None:
        current = stat.S_IMODE(path.stat().st_mode)
        if current & ~mode:
            log.warning("tightening permissions of %s from %o to %o", path, current, mode)
            path.chmod(mode)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        fd = os.open(self.path / _LOCK, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)
