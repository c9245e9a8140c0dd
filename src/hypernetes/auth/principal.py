"""Who is asking and what for: the user of a request and its authorization attributes."""

from __future__ import annotations

from dataclasses import dataclass, field

MASTERS = "system:masters"


@dataclass(frozen=True)
class User:
    name: str
    groups: tuple[str, ...] = ()
    uid: str = ""
    extra: dict[str, tuple[str, ...]] = field(default_factory=dict, compare=False)

    @property
    def is_admin(self) -> bool:
        """The platform admin: the only principal that crosses tenants."""
        return MASTERS in self.groups


@dataclass(frozen=True)
class Attributes:
    """What a request wants to do, in Kubernetes authorization terms."""

    verb: str
    group: str = ""
    resource: str = ""
    subresource: str = ""
    namespace: str = ""
    name: str = ""
    path: str = ""

    @property
    def is_resource_request(self) -> bool:
        return bool(self.resource)
