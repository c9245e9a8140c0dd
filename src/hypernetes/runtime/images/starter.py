"""A starter image built from the host's busybox-static, for trying the
platform with no registry at hand (`hypernetes image build-busybox`).

The image is one layer: /bin/busybox, a symlink per applet, a minimal
/etc/passwd and /etc/group. It is written as a docker-archive tarball and
imported like any other archive, so it goes through the same checks.
"""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import tarfile
from pathlib import Path

BUSYBOX = Path("/bin/busybox")
"""Debian's busybox-static (scripts/setup.d/runtime.sh installs it)."""
_MTIME = 1_600_000_000  # fixed, so the same busybox gives the same image digest
_DIRS = ("bin", "etc", "tmp", "root", "usr", "usr/bin", "var")


def _add(tar: tarfile.TarFile, name: str, data: bytes | None = None, **attrs: object) -> None:
    info = tarfile.TarInfo(name)
    info.mtime = _MTIME
    info.mode = 0o644
    for key, value in attrs.items():
        setattr(info, key, value)
    if data is not None:
        info.size = len(data)
    tar.addfile(info, io.BytesIO(data) if data is not None else None)


def busybox_layer(busybox: Path = BUSYBOX) -> bytes:
    """An uncompressed layer tar: busybox, its applets as symlinks, passwd and group."""
    if not busybox.is_file():
        raise FileNotFoundError(f"{busybox} not found (install Debian's busybox-static)")
    applets = subprocess.run(
        [str(busybox), "--list"], capture_output=True, text=True, check=True
    ).stdout.split()
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for d in _DIRS:
            _add(tar, d, type=tarfile.DIRTYPE, mode=0o1777 if d == "tmp" else 0o755)
        _add(tar, "bin/busybox", busybox.read_bytes(), mode=0o755)
        for applet in applets:
            if applet != "busybox":
                _add(tar, f"bin/{applet}", type=tarfile.SYMTYPE, linkname="busybox")
        _add(tar, "etc/passwd", b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534::/:/bin/sh\n")
        _add(tar, "etc/group", b"root:x:0:\nnogroup:x:65534:\n")
    return out.getvalue()


def write_busybox_archive(path: Path, tag: str, busybox: Path = BUSYBOX) -> None:
    """Write a docker-archive tarball of the busybox image, tagged `tag`."""
    layer = busybox_layer(busybox)
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {
                "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                "Cmd": ["sh"],
            },
            "rootfs": {
                "type": "layers",
                "diff_ids": ["sha256:" + hashlib.sha256(layer).hexdigest()],
            },
        },
        sort_keys=True,
    ).encode()
    manifest = [{"Config": "config.json", "RepoTags": [tag], "Layers": ["0/layer.tar"]}]
    with tarfile.open(path, "w") as tar:
        _add(tar, "manifest.json", json.dumps(manifest).encode())
        _add(tar, "config.json", config)
        _add(tar, "0/layer.tar", layer)
