"""Test images built from Debian's busybox-static, as OCI layouts,
docker-archives, or pushed to a registry (no Docker engine needed)."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
import urllib.request
from dataclasses import dataclass, field

from hypernetes.runtime.images.starter import busybox_layer

PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _add(
    tar: tarfile.TarFile,
    name: str,
    data: bytes | None = None,
    *,
    mode: int = 0o644,
    kind: bytes = tarfile.REGTYPE,
    link: str = "",
) -> None:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.mtime = 1_600_000_000
    info.linkname = link
    if data is not None:
        info.size = len(data)
    tar.addfile(info, io.BytesIO(data) if data is not None else None)


def files_layer(files: dict[str, bytes], whiteouts: tuple[str, ...] = ()) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in files.items():
            _add(tar, name, data, mode=0o755)
        for w in whiteouts:
            d, _, base = w.rpartition("/")
            _add(tar, f"{d}/.wh.{base}" if d else f".wh.{base}", b"")
    return out.getvalue()


@dataclass
class Image:
    """An image as its blobs: layers (as stored), config and manifest."""

    layers: list[bytes]  # uncompressed tars
    cmd: list[str] = field(default_factory=lambda: ["sh"])
    entrypoint: list[str] = field(default_factory=list)
    env: list[str] = field(default_factory=lambda: [PATH_ENV])
    gzip_layers: bool = True
    docker_types: bool = False  # Docker's v2 schema 2 media types instead of OCI's

    def media(self) -> dict[str, str]:
        if self.docker_types:
            return {
                "manifest": "application/vnd.docker.distribution.manifest.v2+json",
                "config": "application/vnd.docker.container.image.v1+json",
                "layer": "application/vnd.docker.image.rootfs.diff.tar"
                + (".gzip" if self.gzip_layers else ""),
                "index": "application/vnd.docker.distribution.manifest.list.v2+json",
            }
        return {
            "manifest": "application/vnd.oci.image.manifest.v1+json",
            "config": "application/vnd.oci.image.config.v1+json",
            "layer": "application/vnd.oci.image.layer.v1.tar"
            + ("+gzip" if self.gzip_layers else ""),
            "index": "application/vnd.oci.image.index.v1+json",
        }

    def blobs(self) -> tuple[bytes, bytes, list[bytes]]:
        """(manifest, config, stored layers)."""
        media = self.media()
        stored = [gzip.compress(x, mtime=0) if self.gzip_layers else x for x in self.layers]
        config = json.dumps(
            {
                "architecture": "amd64",
                "os": "linux",
                "created": "2020-09-13T12:26:40Z",
                "config": {"Env": self.env, "Cmd": self.cmd, "Entrypoint": self.entrypoint or None},
                "rootfs": {"type": "layers", "diff_ids": [_digest(x) for x in self.layers]},
            }
        ).encode()
        ltype = media["layer"]
        manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": media["manifest"],
                "config": {
                    "mediaType": media["config"],
                    "digest": _digest(config),
                    "size": len(config),
                },
                "layers": [
                    {"mediaType": ltype, "digest": _digest(x), "size": len(x)} for x in stored
                ],
            }
        ).encode()
        return manifest, config, stored

    def oci_layout(self, path: str, ref_name: str = "latest", nested: bool = False) -> None:
        """An OCI layout tarball; `nested`: index.json names an image index
        (arm64 and amd64 entries) instead of the manifest, as buildx writes."""
        manifest, config, stored = self.blobs()
        desc = {"mediaType": self.media()["manifest"], "size": len(manifest)}
        desc["digest"] = _digest(manifest)
        blobs = [manifest, config, *stored]
        if nested:
            inner = json.dumps(
                {
                    "schemaVersion": 2,
                    "mediaType": self.media()["index"],
                    "manifests": [
                        {**desc, "platform": {"architecture": "arm64", "os": "linux"}},
                        {**desc, "platform": {"architecture": "amd64", "os": "linux"}},
                    ],
                }
            ).encode()
            blobs.append(inner)
            desc = {"mediaType": self.media()["index"], "size": len(inner)}
            desc["digest"] = _digest(inner)
        annotations = {"org.opencontainers.image.ref.name": ref_name}
        index = {"schemaVersion": 2, "manifests": [{**desc, "annotations": annotations}]}
        with tarfile.open(path, "w") as tar:
            _add(tar, "oci-layout", b'{"imageLayoutVersion": "1.0.0"}')
            _add(tar, "index.json", json.dumps(index).encode())
            for blob in blobs:
                _add(tar, f"blobs/sha256/{_digest(blob)[7:]}", blob)

    def docker_archive(self, path: str, tag: str) -> None:
        _, config, _ = self.blobs()
        names = [f"{i}/layer.tar" for i in range(len(self.layers))]
        manifest = [{"Config": "config.json", "RepoTags": [tag], "Layers": names}]
        with tarfile.open(path, "w") as tar:
            _add(tar, "manifest.json", json.dumps(manifest).encode())
            _add(tar, "config.json", config)
            for name, layer in zip(names, self.layers, strict=True):
                _add(tar, name, layer)

    def push(self, registry: str, repo: str, tag: str) -> str:
        """Pushes over the registry HTTP API; returns the manifest digest."""
        manifest, config, stored = self.blobs()
        for blob in (config, *stored):
            _upload_blob(registry, repo, blob)
        req = urllib.request.Request(
            f"http://{registry}/v2/{repo}/manifests/{tag}",
            data=manifest,
            method="PUT",
            headers={"Content-Type": self.media()["manifest"]},
        )
        with urllib.request.urlopen(req, timeout=30) as r:
            return str(r.headers["Docker-Content-Digest"])

    def push_index(self, registry: str, repo: str, tag: str) -> str:
        """Pushes the image plus an index listing it for linux/amd64 and a
        fake arm64 entry first; returns the index digest."""
        manifest_digest = self.push(registry, repo, f"{tag}-amd64")
        manifest, _, _ = self.blobs()
        index = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": self.media()["index"],
                "manifests": [
                    {
                        "mediaType": self.media()["manifest"],
                        "digest": manifest_digest,
                        "size": len(manifest),
                        "platform": {"architecture": "arm64", "os": "linux"},
                    },
                    {
                        "mediaType": self.media()["manifest"],
                        "digest": manifest_digest,
                        "size": len(manifest),
                        "platform": {"architecture": "amd64", "os": "linux"},
                    },
                ],
            }
        ).encode()
        req = urllib.request.Request(
            f"http://{registry}/v2/{repo}/manifests/{tag}",
            data=index,
            method="PUT",
            headers={"Content-Type": self.media()["index"]},
        )
        with urllib.request.urlopen(req, timeout=30) as r:
            return str(r.headers["Docker-Content-Digest"])


def _upload_blob(registry: str, repo: str, data: bytes) -> None:
    req = urllib.request.Request(
        f"http://{registry}/v2/{repo}/blobs/uploads/", data=b"", method="POST"
    )
    with urllib.request.urlopen(req, timeout=30) as r:
        location = r.headers["Location"]
    if location.startswith("/"):
        location = f"http://{registry}{location}"
    sep = "&" if "?" in location else "?"
    req = urllib.request.Request(
        f"{location}{sep}digest={_digest(data)}",
        data=data,
        method="PUT",
        headers={"Content-Type": "application/octet-stream"},
    )
    with urllib.request.urlopen(req, timeout=60):
        pass


def busybox_image(**kw: object) -> Image:
    return Image([busybox_layer()], **kw)  # type: ignore[arg-type]
