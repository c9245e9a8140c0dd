"""The local image store, content-addressed and shared by all pods.

Layout under <data-dir>/images/:
  blobs/sha256/<hex>     manifests, configs and layers, by digest
  rootfs/<hex>.erofs     each image's flattened rootfs as a read-only erofs
                         disk, hot-plugged into every VM that runs the image
  unpacked/<hex>/        the same tree as a directory (runc's overlay lower)
  index.json             images (by config digest) with their tags/digests
  tmp/                   downloads and builds in progress
  locks/                 lock files: one per image build, one per blob download
Layers are flattened for mkfs.erofs in a per-store scratch directory on
tmpfs (/dev/shm/hn-rootfs-<hash of the store path>-*) when the tree fits, as
creating files there is ~100x cheaper than on disk; only the disk is kept.

Concurrency (threads and processes alike, all through flock):
  .lock      exclusive while index.json is read-modified-written;
  .gc-lock   shared by every pull/import/unpack from its first temp file to
             its index entry, exclusive for garbage collection, so GC never
             deletes a blob a pull has fetched but not yet recorded;
  locks/<hex>  exclusive while one image's rootfs is built (built once);
  locks/blob-<hex>  exclusive while one blob downloads (downloaded once).
Blobs and disks appear by rename(2), so readers never see half a file.
Deleting a rootfs disk that a VM still uses is safe (QEMU keeps its open
file); images that sandboxes use are kept anyway, as the `in_use` hook says.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Any

from ..errors import ImagePullError, NotFound, RuntimeFailure
from ..types import ImageInfo
from .reference import Reference, parse_reference
from .unpack import apply_layer

MANIFEST_V2 = "application/vnd.docker.distribution.manifest.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"

InUse = Callable[[], Iterable[str]]
SCRATCH = "/dev/shm"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


def _hex(digest: str) -> str:
    algo, _, hexpart = digest.partition(":")
    if algo != "sha256" or len(hexpart) != 64 or not all(c in "0123456789abcdef" for c in hexpart):
        raise ImagePullError(f"unsupported digest {digest!r}")
    return hexpart


def _no_images() -> Iterable[str]:
    return ()


@contextlib.contextmanager
def _flock(path: Path, mode: int) -> Iterator[IO[str]]:
    with open(path, "a") as f:
        fcntl.flock(f, mode)
        try:
            yield f
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


class ImageStore:
    """Blobs, images and their rootfs disks under one directory.

    `in_use` returns the ids (config digests) of images that pod sandboxes
    use right now; the runtime service sets it. Such images are neither
    removed (`remove` refuses, reason ImageInUse) nor collected.
    """

    def __init__(self, root: str | Path, in_use: InUse | None = None) -> None:
        self.root = Path(root)
        self.blobs = self.root / "blobs" / "sha256"
        self.rootfs_dir = self.root / "rootfs"
        self.unpacked_dir = self.root / "unpacked"
        self.tmp = self.root / "tmp"
        self.locks = self.root / "locks"
        for d in (self.blobs, self.rootfs_dir, self.unpacked_dir, self.tmp, self.locks):
            d.mkdir(parents=True, exist_ok=True)
        self.in_use: InUse = in_use or _no_images
        # Scratch entries on tmpfs carry a prefix naming this store.
        key = hashlib.sha256(str(self.root.resolve()).encode()).hexdigest()[:16]
        self.scratch_prefix = f"hn-rootfs-{key}-"

    # --- locking and the index ---------------------------------------------

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Exclusive access to index.json."""
        with _flock(self.root / ".lock", fcntl.LOCK_EX):
            yield

    def pin(self) -> IO[str]:
        """Holds off garbage collection until `unpin` (blocks while GC runs).
        Taken by every writer of blobs, disks and temp files."""
        f = open(self.root / ".gc-lock", "a")  # noqa: SIM115 (closed by unpin)
        fcntl.flock(f, fcntl.LOCK_SH)
        return f

    @staticmethod
    def unpin(f: IO[str]) -> None:
        fcntl.flock(f, fcntl.LOCK_UN)
        f.close()

    @contextlib.contextmanager
    def pinned(self) -> Iterator[None]:
        f = self.pin()
        try:
            yield
        finally:
            self.unpin(f)

    def _load(self) -> dict[str, Any]:
        try:
            data: dict[str, Any] = json.loads((self.root / "index.json").read_text())
            return data
        except FileNotFoundError:
            return {"images": {}}

    def _save(self, index: dict[str, Any]) -> None:
        fd, name = tempfile.mkstemp(dir=self.root, prefix=".index-")
        with os.fdopen(fd, "w") as f:
            json.dump(index, f, indent=1, sort_keys=True)
        os.rename(name, self.root / "index.json")

    # --- blobs --------------------------------------------------------------

    def blob_path(self, digest: str) -> Path:
        return self.blobs / _hex(digest)

    def has_blob(self, digest: str) -> bool:
        return self.blob_path(digest).exists()

    async def lock_blob(self, digest: str) -> IO[str]:
        """An exclusive lock on downloading `digest` (polled, so a waiting
        coroutine can be cancelled); release it with `unlock_blob`."""
        f = open(self.locks / f"blob-{_hex(digest)}", "a")  # noqa: SIM115
        try:
            while True:
                try:
                    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    return f
                except BlockingIOError:
                    await asyncio.sleep(0.02)
        except BaseException:
            f.close()
            raise

    @staticmethod
    def unlock_blob(f: IO[str]) -> None:
        fcntl.flock(f, fcntl.LOCK_UN)
        f.close()

    def temp_file(self) -> Path:
        fd, name = tempfile.mkstemp(dir=self.tmp, prefix="blob-")
        os.close(fd)
        return Path(name)

    def commit_blob(self, tmp: Path, digest: str) -> Path:
        """Moves a downloaded file into the store if its content has `digest`;
        otherwise deletes it and raises ErrImagePull."""
        actual = sha256_file(tmp)
        if actual != digest:
            tmp.unlink(missing_ok=True)
            raise ImagePullError(f"digest mismatch: expected {digest}, got {actual}")
        dest = self.blob_path(digest)
        tmp.rename(dest)
        return dest

    def put_bytes(self, data: bytes, digest: str | None = None) -> str:
        actual = "sha256:" + hashlib.sha256(data).hexdigest()
        if digest is not None and actual != digest:
            raise ImagePullError(f"digest mismatch: expected {digest}, got {actual}")
        dest = self.blob_path(actual)
        if not dest.exists():
            tmp = self.temp_file()
            tmp.write_bytes(data)
            tmp.rename(dest)
        return actual

    # --- images -------------------------------------------------------------

    def add_image(self, ref: Reference | None, manifest_digest: str) -> ImageInfo:
        """Records the image whose manifest, config and layers are stored,
        building its rootfs disk first (a corrupt layer fails here)."""
        manifest = json.loads(self.blob_path(manifest_digest).read_bytes())
        config_digest = manifest["config"]["digest"]
        config = json.loads(self.blob_path(config_digest).read_bytes())
        layers = [layer["digest"] for layer in manifest.get("layers", [])]
        diff_ids = config.get("rootfs", {}).get("diff_ids", [])
        if len(diff_ids) != len(layers):
            raise ImagePullError("image config and manifest disagree on the layers")
        for digest in layers:
            if not self.has_blob(digest):
                raise ImagePullError(f"layer {digest} is missing")
        self.build_rootfs(config_digest, layers, diff_ids)
        with self.locked():
            index = self._load()
            rec = index["images"].setdefault(config_digest, {"repo_tags": [], "repo_digests": []})
            rec.update(
                manifest=manifest_digest,
                layers=layers,
                config=config_digest,
                size=sum(int(x.get("size", 0)) for x in manifest.get("layers", [])),
            )
            if ref is not None:
                self._tag(index, rec, ref, manifest_digest)
            self._save(index)
            return self._info(config_digest, rec)

    @staticmethod
    def _tag(index: dict[str, Any], rec: dict[str, Any], ref: Reference, manifest: str) -> None:
        tag = f"{ref.name}:{ref.tag}" if ref.tag else None
        if tag and tag not in rec["repo_tags"]:
            for other in index["images"].values():  # a tag moves: take it from others
                if tag in other["repo_tags"]:
                    other["repo_tags"].remove(tag)
            rec["repo_tags"].append(tag)
        rd = f"{ref.name}@{manifest}"
        if rd not in rec["repo_digests"]:
            rec["repo_digests"].append(rd)

    def rootfs_path(self, image_id: str) -> Path:
        return self.rootfs_dir / f"{_hex(image_id)}.erofs"

    def _flatten(self, work: Path, layers: list[str], diff_ids: list[str]) -> Path:
        tree = work / "tree"
        tree.mkdir(mode=0o755)
        for digest, diff_id in zip(layers, diff_ids, strict=True):
            apply_layer(self.blob_path(digest), str(tree), diff_id)
        return tree

    def _scratch(self, layers: list[str]) -> Path:
        """Where to flatten layers for mkfs.erofs: tmpfs when the tree fits
        easily (file creation there is ~100x cheaper than on a disk), else
        the store's tmp/. Only the finished erofs disk is written to disk."""
        need = sum(_uncompressed_size(self.blob_path(d)) for d in layers) + (16 << 20)
        try:
            st = os.statvfs(SCRATCH)
            if need * 2 < st.f_bavail * st.f_frsize:
                return Path(SCRATCH)
        except OSError:
            pass
        return self.tmp

    def build_rootfs(self, image_id: str, layers: list[str], diff_ids: list[str]) -> Path:
        """Flattens the layers into one erofs disk, once per image even when
        several pulls of it finish at the same time."""
        dest = self.rootfs_path(image_id)
        with _flock(self.locks / _hex(image_id), fcntl.LOCK_EX):
            if dest.exists():
                return dest
            scratch = self._scratch(layers)
            work = Path(tempfile.mkdtemp(dir=scratch, prefix=self.scratch_prefix))
            out = Path(tempfile.mkdtemp(dir=self.tmp, prefix="rootfs-"))
            try:
                tree = self._flatten(work, layers, diff_ids)
                image = out / "rootfs.erofs"
                # -T0: fixed timestamps, so the same image gives the same disk.
                result = subprocess.run(
                    ["mkfs.erofs", "--quiet", "-T0", str(image), str(tree)],
                    capture_output=True,
                    text=True,
                )
                if result.returncode != 0:
                    raise ImagePullError(f"mkfs.erofs failed: {result.stderr.strip()}")
                image.rename(dest)
            finally:
                shutil.rmtree(work, ignore_errors=True)
                shutil.rmtree(out, ignore_errors=True)
        return dest

    def unpacked_path(self, image_id: str) -> Path:
        """The image's flattened tree (for runc), unpacked on first use."""
        dest = self.unpacked_dir / _hex(image_id)
        if dest.exists():
            return dest
        with self.pinned(), _flock(self.locks / _hex(image_id), fcntl.LOCK_EX):
            if dest.exists():
                return dest
            rec = self._load()["images"].get(image_id)
            if rec is None:
                raise NotFound(f"no image {image_id}")
            config = json.loads(self.blob_path(rec["config"]).read_bytes())
            diff_ids = config.get("rootfs", {}).get("diff_ids", [])
            work = Path(tempfile.mkdtemp(dir=self.tmp, prefix="unpack-"))
            try:
                self._flatten(work, rec["layers"], diff_ids).rename(dest)
            finally:
                shutil.rmtree(work, ignore_errors=True)
        return dest

    def _info(self, image_id: str, rec: dict[str, Any]) -> ImageInfo:
        cfg = json.loads(self.blob_path(rec["config"]).read_bytes())
        c = cfg.get("config") or {}
        return ImageInfo(
            id=image_id,
            repo_tags=list(rec["repo_tags"]),
            repo_digests=list(rec["repo_digests"]),
            size=int(rec.get("size", 0)),
            created=cfg.get("created", ""),
            entrypoint=c.get("Entrypoint") or [],
            cmd=c.get("Cmd") or [],
            env=c.get("Env") or [],
            working_dir=c.get("WorkingDir") or "",
            user=c.get("User") or "",
        )

    def _find(self, index: dict[str, Any], text: str) -> str | None:
        images: dict[str, Any] = index["images"]
        if text.startswith("sha256:") and text in images:
            return text
        if len(text) >= 12 and all(c in "0123456789abcdef" for c in text):
            hits = [i for i in images if i.removeprefix("sha256:").startswith(text)]
            if len(hits) == 1:
                return hits[0]
        try:
            ref = parse_reference(text)
        except ImagePullError:
            return None
        for image_id, rec in images.items():
            if ref.digest and f"{ref.name}@{ref.digest}" in rec["repo_digests"]:
                return image_id
            if not ref.digest and f"{ref.name}:{ref.tag}" in rec["repo_tags"]:
                return image_id
        return None

    def get(self, text: str) -> ImageInfo | None:
        """The image that `text` (a reference or an id) names, if stored."""
        index = self._load()
        image_id = self._find(index, text)
        return None if image_id is None else self._info(image_id, index["images"][image_id])

    def list(self) -> list[ImageInfo]:
        index = self._load()
        return [self._info(i, rec) for i, rec in sorted(index["images"].items())]

    def remove(self, text: str, force: bool = False) -> ImageInfo:
        """Removes a tag, or (by id/digest, or its last tag) the image, then
        collects garbage. An image a sandbox uses is only untagged: removing
        it fails with ImageInUse unless `force` (its disk stays while used)."""
        with self.locked():
            index = self._load()
            image_id = self._find(index, text)
            if image_id is None:
                raise NotFound(f"no image {text!r}")
            rec = index["images"][image_id]
            info = self._info(image_id, rec)
            ref = None
            with contextlib.suppress(ImagePullError):
                ref = parse_reference(text)
            tag = f"{ref.name}:{ref.tag}" if ref and ref.tag and not ref.digest else None
            if tag and tag in rec["repo_tags"] and len(rec["repo_tags"]) > 1:
                rec["repo_tags"].remove(tag)
            elif image_id in set(self.in_use()) and not force:
                raise RuntimeFailure(
                    "ImageInUse", f"image {text} ({image_id[7:19]}) is used by a pod sandbox"
                )
            else:
                del index["images"][image_id]
            self._save(index)
        self.gc(wait=False)
        return info

    def gc(self, wait: bool = True, unused: bool = False) -> int:
        """Deletes blobs, rootfs disks, unpacked trees and temp files that no
        image refers to; with `unused`, first removes every image no sandbox
        uses. Without `wait`, does nothing (returns 0) while a pull, import or
        unpack is in progress. Returns how many entries it deleted."""
        with open(self.root / ".gc-lock", "a") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
            except BlockingIOError:
                return 0
            # Nobody writes now: whatever is in tmp/ was left by a crash.
            removed = _clear_dir(self.tmp)
            for entry in Path(SCRATCH).glob(f"{self.scratch_prefix}*"):
                shutil.rmtree(entry, ignore_errors=True)
                removed += 1
            with self.locked():
                removed += self._collect(unused)
        return removed

    def _collect(self, unused: bool) -> int:
        index = self._load()
        in_use = set(self.in_use())
        removed = 0
        if unused:
            for image_id in [i for i in index["images"] if i not in in_use]:
                del index["images"][image_id]
                removed += 1
            self._save(index)
        keep: set[str] = set()
        keep_images = {_hex(i) for i in in_use | set(index["images"])}
        for rec in index["images"].values():
            keep.update(_hex(d) for d in (rec["manifest"], rec["config"], *rec["layers"]))
        for blob in self.blobs.iterdir():
            if blob.name not in keep:
                blob.unlink(missing_ok=True)
                removed += 1
        for disk in self.rootfs_dir.iterdir():
            if disk.name.removesuffix(".erofs") not in keep_images:
                disk.unlink(missing_ok=True)
                removed += 1
        mounts = Path("/proc/self/mountinfo").read_text()
        for tree in self.unpacked_dir.iterdir():
            # A runc container's overlay may still read it even if the hook
            # does not know the container (another driver process).
            if tree.name not in keep_images and str(tree) not in mounts:
                shutil.rmtree(tree, ignore_errors=True)
                removed += 1
        for lock in self.locks.iterdir():
            if lock.name not in keep_images:
                lock.unlink(missing_ok=True)
        return removed


def _uncompressed_size(blob: Path) -> int:
    """A layer's tar size: gzip's trailer says it (mod 4 GiB) without reading."""
    with open(blob, "rb") as f:
        if f.read(2) != b"\x1f\x8b":
            return os.fstat(f.fileno()).st_size
        f.seek(-4, os.SEEK_END)
        size = int.from_bytes(f.read(4), "little")
        return max(size, os.fstat(f.fileno()).st_size)


def _clear_dir(d: Path) -> int:
    n = 0
    for entry in d.iterdir():
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        n += 1
    return n
