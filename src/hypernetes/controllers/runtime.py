"""The controller runtime: informers feeding a work queue drained by workers.

A `Controller` subclass builds its informers in `setup()` (with
`self.watch(informer)`), turns their events into keys on `self.queue`, and
implements `reconcile(key)`. `run(stop)` starts the informers, waits for
their caches, then runs `workers` concurrent workers until `stop` is set.
A reconcile that raises is retried with per-key exponential backoff; one
that returns a number of seconds is looked at again after that long.
Every `run` starts from scratch (new queue, new informers), so a controller
can be stopped and run again, as the leader-elected manager does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine, Hashable
from typing import Any

from hypernetes.client import Client, Informer
from hypernetes.controllers.queue import ItemBackoff, ShutDown, WorkQueue

log = logging.getLogger(__name__)


class Controller:
    """Base of every controller; override `setup` and `reconcile`."""

    name = "controller"
    workers = 1
    sync_timeout = 60.0
    """Seconds to wait for the informers' first lists before working with what there is."""
    retry_base = 0.05
    retry_max = 60.0

    def __init__(self, client: Client) -> None:
        self.client = client
        self.queue = WorkQueue()
        self._informers: dict[Informer, asyncio.Task[None]] = {}
        self._tasks: list[asyncio.Task[Any]] = []
        self._stop = asyncio.Event()
        self.running = False

    # -- to override -----------------------------------------------------------

    async def setup(self) -> None:
        """Create informers (register them with `self.watch`) and their handlers."""

    async def reconcile(self, key: Hashable) -> float | None:
        """Bring the world in line for `key`; raise to retry with backoff.

        Return a number of seconds to have `key` looked at again after that
        long (e.g. while waiting for something outside our control).
        """
        raise NotImplementedError

    # -- helpers for subclasses ------------------------------------------------

    def watch(self, informer: Informer) -> Informer:
        """Run `informer` for as long as this controller runs."""
        self._informers[informer] = asyncio.create_task(
            informer.run(self._stop), name=f"{self.name}: informer {informer.resource}"
        )
        return informer

    async def unwatch(self, informer: Informer) -> None:
        """Stop running `informer` (e.g. its resource kind is no longer served)."""
        task = self._informers.pop(informer, None)
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str = "") -> None:
        """Run `coro` alongside the workers; it is cancelled when the controller stops."""
        self._tasks.append(asyncio.create_task(coro, name=f"{self.name}: {name}"))

    @property
    def informers(self) -> list[Informer]:
        return list(self._informers)

    # -- running -------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Run until `stop` is set; raises if an informer or helper task fails."""
        self.queue = WorkQueue(ItemBackoff(self.retry_base, self.retry_max))
        self._stop = asyncio.Event()
        self._informers, self._tasks = {}, []
        self.running = True
        stopper = asyncio.create_task(stop.wait())
        try:
            await self.setup()
            await self._wait_synced(stopper)
            workers = [
                asyncio.create_task(self._worker(), name=f"{self.name}: worker {i}")
                for i in range(self.workers)
            ]
            self._tasks += workers
            while not stopper.done():
                watched = [stopper, *self._tasks, *self._informers.values()]
                done, _ = await asyncio.wait(watched, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    if task is not stopper and not task.cancelled() and task.exception():
                        raise task.exception()  # type: ignore[misc]
                self._tasks = [t for t in self._tasks if not t.done()]
        finally:
            self.running = False
            await self._teardown(stopper)

    async def _wait_synced(self, stopper: asyncio.Task[Any]) -> None:
        if not self._informers:
            return
        synced = asyncio.gather(*(inf.wait_synced() for inf in self._informers))
        try:
            await asyncio.wait(
                {synced, stopper}, timeout=self.sync_timeout, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            if not synced.done():
                synced.cancel()
                missing = [str(inf.resource) for inf in self._informers if not inf.has_synced]
                if not stopper.done():
                    log.warning("%s: starting before caches synced: %s", self.name, missing)
            with contextlib.suppress(asyncio.CancelledError):
                await synced

    async def _teardown(self, stopper: asyncio.Task[Any]) -> None:
        self._stop.set()
        self.queue.shutdown()
        tasks = [stopper, *self._tasks, *self._informers.values()]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._informers, self._tasks = {}, []

    async def _worker(self) -> None:
        while True:
            try:
                key = await self.queue.get()
            except ShutDown:
                return
            try:
                again = await self.reconcile(key)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failures = self.queue.rate_limiter.failures(key) + 1
                level = logging.WARNING if failures < 5 else logging.ERROR
                log.log(level, "%s: %r failed (%d): %s", self.name, key, failures, exc,
                        exc_info=log.isEnabledFor(logging.DEBUG))  # fmt: skip
                self.queue.add_rate_limited(key)
            else:
                self.queue.forget(key)
                if again is not None:
                    self.queue.add_after(key, again)
            finally:
                self.queue.done(key)
