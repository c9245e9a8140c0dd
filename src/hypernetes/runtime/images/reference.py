"""Image references (`registry/repository:tag@digest`) with Docker's defaults."""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import ImagePullError

DEFAULT_REGISTRY = "docker.io"
_COMPONENT = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$")
_TAG = re.compile(r"^[\w][\w.-]{0,127}$")
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


@dataclass(frozen=True)
class Reference:
    registry: str
    repository: str
    tag: str | None = None
    digest: str | None = None

    @property
    def name(self) -> str:
        """registry/repository, the key that tags and digests hang from."""
        return f"{self.registry}/{self.repository}"

    def __str__(self) -> str:
        s = self.name
        if self.tag:
            s += f":{self.tag}"
        if self.digest:
            s += f"@{self.digest}"
        return s

    @property
    def reference(self) -> str:
        """What goes in /v2/<repo>/manifests/<reference>."""
        return self.digest or self.tag or "latest"


def parse_reference(text: str) -> Reference:
    """Parses `text`, filling in docker.io, library/ and :latest like Docker."""
    if not text or text != text.strip() or len(text) > 512:
        raise ImagePullError(f"invalid image reference {text!r}", reason="InvalidImageName")
    rest, digest = text, None
    if "@" in rest:
        rest, digest = rest.split("@", 1)
        if not _DIGEST.match(digest):
            raise ImagePullError(f"invalid digest in {text!r}", reason="InvalidImageName")
    tag = None
    last = rest.rsplit("/", 1)[-1]
    if ":" in last:
        rest, tag = rest.rsplit(":", 1)
        if not _TAG.match(tag):
            raise ImagePullError(f"invalid tag in {text!r}", reason="InvalidImageName")
    parts = rest.split("/")
    if len(parts) > 1 and ("." in parts[0] or ":" in parts[0] or parts[0] == "localhost"):
        registry, path = parts[0], parts[1:]
    else:
        registry, path = DEFAULT_REGISTRY, parts
    if registry == DEFAULT_REGISTRY and len(path) == 1:
        path = ["library", *path]
    if not path or not all(_COMPONENT.match(p) for p in path):
        raise ImagePullError(f"invalid image name {text!r}", reason="InvalidImageName")
    if tag is None and digest is None:
        tag = "latest"
    return Reference(registry, "/".join(path), tag, digest)
