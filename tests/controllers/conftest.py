"""Helpers for controller tests: run a controller in the background, wait for conditions."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from tests.client.conftest import client, configmap, namespace

from hypernetes.client import Client, NotFound, Resource
from hypernetes.controllers import Controller

__all__ = ["client", "configmap", "eventually", "exists", "namespace", "running"]

TIMEOUT = 45.0


@contextlib.asynccontextmanager
async def running(controller: Controller) -> AsyncIterator[Controller]:
    """Run `controller` until the block ends; enter once its caches are synced."""
    stop = asyncio.Event()
    task = asyncio.create_task(controller.run(stop))

    async def synced() -> bool:
        if task.done():
            task.result()  # surface a crash at once
        return (
            controller.running
            and all(i.has_synced for i in controller.informers)
            and bool(controller.informers)
        )

    try:
        await eventually(synced, "the controller's caches to sync")
        yield controller
    finally:
        stop.set()
        await asyncio.wait_for(task, TIMEOUT)


async def eventually(
    check: Callable[[], Awaitable[Any]], what: str, timeout: float = TIMEOUT
) -> Any:
    """Poll `check` until it returns something truthy; fail after `timeout` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = await check()
        if result:
            return result
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


async def exists(client: Client, resource: Resource, name: str, ns: str | None = None) -> bool:
    try:
        await client.get(resource, name, ns)
    except NotFound:
        return False
    return True
