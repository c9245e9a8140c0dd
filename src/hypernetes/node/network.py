"""The seam between the node agent and the tenant network (`PodNetwork`).

The agent asks a `PodNetwork` for a pod's interface before it starts the
sandbox and gives it back when the pod goes. The network layer's node-side
implementation (src/hypernetes/network/) plugs in here; until it does, VM
pods get `LoopbackNetwork`: no interface, loopback only, no pod IP.
"""

from __future__ import annotations

from typing import Any, Protocol

from hypernetes.runtime import NetworkAttachment

Obj = dict[str, Any]


class PodNetwork(Protocol):
    """Gives VM pods their interface on the tenant network."""

    async def attach(self, pod: Obj) -> NetworkAttachment | None:
        """Create (or find again, idempotently) the pod's TAP device and address;
        None means loopback only."""
        ...

    async def detach(self, pod: Obj) -> None:
        """Release what `attach` made for the pod (idempotent)."""
        ...


class LoopbackNetwork:
    """No network layer: pods have loopback only."""

    async def attach(self, pod: Obj) -> NetworkAttachment | None:
        return None

    async def detach(self, pod: Obj) -> None:
        return None
