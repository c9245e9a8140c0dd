"""Applying image layers (tar, optionally gzip) to a directory.

Layers are applied in order with the OCI whiteout rules (`.wh.NAME` deletes
NAME from lower layers, `.wh..wh..opq` empties a directory of lower-layer
content). Paths are resolved as if the directory were the root (symlinks
included), so a layer can never write outside it. The uncompressed stream
is hashed on the way and checked against the image config's diff_id.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import os
import shutil
import stat
import tarfile
from pathlib import Path
from typing import IO

from ..errors import ImagePullError

WHITEOUT = ".wh."
OPAQUE = ".wh..wh..opq"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


class _HashingReader:
    """A read-only file wrapper that hashes everything read through it."""

    def __init__(self, raw: IO[bytes]) -> None:
        self._raw = raw
        self.hash = hashlib.sha256()

    def read(self, n: int = -1) -> bytes:
        data = self._raw.read(n)
        self.hash.update(data)
        return data

    def drain(self) -> None:
        while self.read(1 << 20):
            pass


def _clean_name(name: str) -> str | None:
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        return None
    return "/".join(parts)


def resolve(root: str, rel: str, follow_last: bool = False, depth: int = 0) -> str:
    """The host path of `rel` inside `root`, following symlinks chroot-style."""
    if depth > 40:
        raise ImagePullError(f"too many symlinks resolving {rel!r} in a layer")
    current = root
    parts = [p for p in rel.split("/") if p not in ("", ".")]
    for i, part in enumerate(parts):
        if part == "..":
            current = os.path.dirname(current) if current != root else root
            continue
        candidate = os.path.join(current, part)
        last = i == len(parts) - 1
        if (not last or follow_last) and os.path.islink(candidate):
            target = os.readlink(candidate)
            base = "" if target.startswith("/") else os.path.relpath(current, root)
            current = resolve(root, os.path.join(base, target), True, depth + 1)
            continue
        current = candidate
    if current != root and not current.startswith(root + os.sep):
        raise ImagePullError(f"layer path {rel!r} escapes the rootfs")
    return current


def _remove(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    elif os.path.lexists(path):
        os.unlink(path)


def _apply_member(tar: tarfile.TarFile, m: tarfile.TarInfo, root: str, created: set[str]) -> None:
    name = _clean_name(m.name)
    if name is None:
        raise ImagePullError(f"layer entry {m.name!r} escapes the rootfs")
    if not name:
        return  # the root itself
    parent_rel, base = os.path.split(name)
    parent = resolve(root, parent_rel, follow_last=True)
    if base == OPAQUE:
        if os.path.isdir(parent):
            for entry in os.listdir(parent):
                rel = os.path.join(parent_rel, entry)
                if rel not in created:
                    _remove(os.path.join(parent, entry))
        return
    if base.startswith(WHITEOUT):
        _remove(os.path.join(parent, base[len(WHITEOUT) :]))
        return
    os.makedirs(parent, exist_ok=True)
    path = os.path.join(parent, base)
    created.add(name)
    if m.isdir():
        if os.path.lexists(path) and not (os.path.isdir(path) and not os.path.islink(path)):
            os.unlink(path)
        os.makedirs(path, exist_ok=True)
    else:
        _remove(path)
        if m.isreg():
            src = tar.extractfile(m)
            assert src is not None
            with open(path, "wb") as f:
                shutil.copyfileobj(src, f, 1 << 20)
        elif m.issym():
            os.symlink(m.linkname, path)
        elif m.islnk():
            target_rel = _clean_name(m.linkname)
            if target_rel is None:
                raise ImagePullError(f"hard link {m.name!r} escapes the rootfs")
            os.link(resolve(root, target_rel), path)
            return  # shares the target's inode: metadata already set
        elif m.ischr() or m.isblk():
            kind = stat.S_IFCHR if m.ischr() else stat.S_IFBLK
            os.mknod(path, kind | (m.mode & 0o7777), os.makedev(m.devmajor, m.devminor))
        elif m.isfifo():
            os.mkfifo(path, m.mode & 0o7777)
        else:
            return
    os.lchown(path, m.uid, m.gid)
    if not m.issym():
        os.chmod(path, m.mode & 0o7777)
    for key, value in m.pax_headers.items():
        if key.startswith("SCHILY.xattr."):
            with contextlib.suppress(OSError):
                os.setxattr(
                    path, key[13:], value.encode("utf-8", "surrogateescape"), follow_symlinks=False
                )
    with contextlib.suppress(OSError):
        os.utime(path, (m.mtime, m.mtime), follow_symlinks=False)


def apply_layer(blob: Path, root: str, diff_id: str | None) -> None:
    """Applies one layer blob to `root`; checks its uncompressed digest."""
    with open(blob, "rb") as raw:
        magic = raw.read(4)
        if magic == ZSTD_MAGIC:
            raise ImagePullError(f"layer {blob.name[:12]} is zstd-compressed: not supported")
        gz = magic[:2] == b"\x1f\x8b"
        raw.seek(0)
        stream: IO[bytes] = gzip.GzipFile(fileobj=raw) if gz else raw  # type: ignore[assignment]
        reader = _HashingReader(stream)
        created: set[str] = set()
        try:
            with tarfile.open(fileobj=reader, mode="r|") as tar:  # type: ignore[call-overload]
                for member in tar:
                    _apply_member(tar, member, root, created)
            reader.drain()
        except (tarfile.TarError, OSError, EOFError, gzip.BadGzipFile) as exc:
            raise ImagePullError(f"corrupt layer {blob.name[:12]}: {exc}") from None
    if diff_id and f"sha256:{reader.hash.hexdigest()}" != diff_id:
        raise ImagePullError(f"layer {blob.name[:12]} does not match its diff_id {diff_id}")
