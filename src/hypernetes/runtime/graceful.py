"""Graceful container stop, the same for every backend: kubelet's order.

SIGTERM first; if the container is still running after the grace period,
SIGKILL, and wait for the exit to be recorded.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from typing import Protocol

from .records import ContainerRecord
from .types import ContainerState

KILL_WAIT = 30.0
"""Seconds to wait for the exit after SIGKILL (the VM agent or runc must report it)."""


class Signalable(Protocol):
    async def signal_container(self, cid: str, signum: int) -> None: ...
    async def wait_container(self, cid: str, timeout: float | None = None) -> ContainerRecord: ...


async def terminate(backend: Signalable, c: ContainerRecord, grace: float) -> None:
    """Stop the running container `c`: SIGTERM, then SIGKILL after `grace` seconds."""
    if grace > 0:
        await backend.signal_container(c.id, signal.SIGTERM)
        with contextlib.suppress(asyncio.TimeoutError):
            await backend.wait_container(c.id, grace)
    if c.state == ContainerState.RUNNING:
        await backend.signal_container(c.id, signal.SIGKILL)
        await backend.wait_container(c.id, KILL_WAIT)
