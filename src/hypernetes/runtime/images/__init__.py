"""Images: references, a content-addressed local store shared by all pods,
layer unpacking, archive import, a registry client and per-image rootfs disks."""

from .reference import Reference, parse_reference
from .store import ImageStore

__all__ = ["ImageStore", "Reference", "parse_reference"]
