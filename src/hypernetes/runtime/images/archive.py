"""Importing images from tarballs: an OCI image layout or a docker-archive
(what `docker save` writes). Every blob is verified against its digest."""

from __future__ import annotations

import hashlib
import json
import tarfile
from typing import IO, Any

from ..errors import ImagePullError
from ..types import ImageInfo
from .reference import Reference, parse_reference
from .store import MANIFEST_V2, ImageStore

DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
INDEX_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
)


def select_platform(index: dict[str, Any]) -> dict[str, Any]:
    """The linux/amd64 entry of an image index (or its only entry)."""
    manifests = index.get("manifests") or []
    for m in manifests:
        p = m.get("platform") or {}
        if p.get("os") == "linux" and p.get("architecture") == "amd64":
            return dict(m)
    if len(manifests) == 1 and not manifests[0].get("platform"):
        return dict(manifests[0])
    raise ImagePullError("the image has no linux/amd64 variant")


def _read(tar: tarfile.TarFile, name: str) -> bytes:
    try:
        f = tar.extractfile(name.lstrip("./") if name.startswith("./") else name)
    except KeyError:
        f = None
    if f is None:
        raise ImagePullError(f"{name} is missing from the archive")
    return f.read()


def _ingest_member(
    store: ImageStore, tar: tarfile.TarFile, name: str, digest: str | None
) -> tuple[str, int]:
    """Copies one archive member into the blob store; returns (digest, size)."""
    src: IO[bytes] | None
    try:
        src = tar.extractfile(name)
    except KeyError:
        src = None
    if src is None:
        raise ImagePullError(f"{name} is missing from the archive")
    h = hashlib.sha256()
    tmp = store.temp_file()
    size = 0
    with open(tmp, "wb") as out:
        while chunk := src.read(1 << 20):
            h.update(chunk)
            out.write(chunk)
            size += len(chunk)
    actual = "sha256:" + h.hexdigest()
    if digest is not None and actual != digest:
        tmp.unlink()
        raise ImagePullError(f"digest mismatch for {name}: expected {digest}, got {actual}")
    if store.has_blob(actual):
        tmp.unlink()
    else:
        tmp.rename(store.blob_path(actual))
    return actual, size


def import_archive(store: ImageStore, path: str, tag: str | None) -> ImageInfo:
    """Imports an OCI layout or docker-archive tarball, tagged `tag` (or as
    the archive names it). On failure nothing it copied is kept."""
    ref = parse_reference(tag) if tag else None
    ok = False
    try:
        with store.pinned():
            info = _import(store, path, ref)
        ok = True
        return info
    except (ValueError, KeyError, TypeError) as exc:
        raise ImagePullError(f"{path}: malformed archive: {exc!r}") from None
    finally:
        if not ok:
            store.gc(wait=False)


def _import(store: ImageStore, path: str, ref: Reference | None) -> ImageInfo:
    try:
        tar = tarfile.open(path)  # noqa: SIM115 (closed by the with below)
    except (OSError, tarfile.TarError) as exc:
        raise ImagePullError(f"cannot read {path}: {exc}") from None
    with tar:
        names = set(tar.getnames())
        if "oci-layout" in names or "./oci-layout" in names:
            return _import_oci(store, tar, ref)
        if "manifest.json" in names:
            return _import_docker(store, tar, ref)
    raise ImagePullError(f"{path} is neither an OCI layout nor a docker-archive")


def _blob_name(digest: str) -> str:
    algo, _, hexpart = digest.partition(":")
    return f"blobs/{algo}/{hexpart}"


def _import_oci(store: ImageStore, tar: tarfile.TarFile, ref: Reference | None) -> ImageInfo:
    index = json.loads(_read(tar, "index.json"))
    desc = select_platform(index) if len(index.get("manifests", [])) != 1 else index["manifests"][0]
    if ref is None:
        name = (desc.get("annotations") or {}).get("org.opencontainers.image.ref.name")
        if name and ":" not in name and "/" not in name:
            raise ImagePullError("the archive names no repository: use --tag")
        ref = parse_reference(name) if name else None
    while desc.get("mediaType") in INDEX_TYPES:
        data = _read(tar, _blob_name(desc["digest"]))
        if "sha256:" + hashlib.sha256(data).hexdigest() != desc["digest"]:
            raise ImagePullError(f"digest mismatch for the index {desc['digest']}")
        nested = json.loads(data)
        desc = select_platform(nested)
    manifest_digest, _ = _ingest_member(store, tar, _blob_name(desc["digest"]), desc["digest"])
    manifest = json.loads(store.blob_path(manifest_digest).read_bytes())
    for d in [manifest["config"], *manifest.get("layers", [])]:
        _ingest_member(store, tar, _blob_name(d["digest"]), d["digest"])
    return store.add_image(ref, manifest_digest)


def _import_docker(store: ImageStore, tar: tarfile.TarFile, ref: Reference | None) -> ImageInfo:
    entries = json.loads(_read(tar, "manifest.json"))
    if not entries:
        raise ImagePullError("empty docker-archive")
    entry = entries[0]
    if ref is None:
        tags = entry.get("RepoTags") or []
        if not tags:
            raise ImagePullError("the archive names no repository: use --tag")
        ref = parse_reference(tags[0])
    config_digest, config_size = _ingest_member(store, tar, entry["Config"], None)
    layers = []
    for name in entry["Layers"]:
        digest, size = _ingest_member(store, tar, name, None)
        layers.append({"mediaType": DOCKER_LAYER, "digest": digest, "size": size})
    # docker-archive has no manifest: write the one a registry would serve.
    manifest = {
        "schemaVersion": 2,
        "mediaType": MANIFEST_V2,
        "config": {"mediaType": DOCKER_CONFIG, "digest": config_digest, "size": config_size},
        "layers": layers,
    }
    manifest_digest = store.put_bytes(json.dumps(manifest, sort_keys=True).encode())
    return store.add_image(ref, manifest_digest)
