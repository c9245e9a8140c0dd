"""Serving watches: the initial state, then events, bookmarks and timeouts.

A watch request streams one JSON event per line. Without a resourceVersion
(or with "0") it starts with ADDED events for the current state; with one it
replays every change after it. Label and field selectors are applied to both
the new and the previous state of each change, so an object that stops
matching is reported DELETED and one that starts matching ADDED, as kube does.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import random
from collections.abc import AsyncIterator, Callable
from typing import Any

from aiohttp import web

from hypernetes.api import errors
from hypernetes.api.objects import Obj, Objects, decode, parse_resource_version
from hypernetes.api.request import Target
from hypernetes.resources import tables
from hypernetes.store import Event, EventType, StoreError

BOOKMARK_INTERVAL = 5.0
"""Seconds between bookmarks when the client asked for them."""


def _event_type(event: Event, keep: Callable[[Obj], bool]) -> tuple[str, Obj] | None:
    obj = decode(event.kv.value, event.kv.mod_revision)
    if event.type is EventType.DELETE:
        return ("DELETED", obj) if keep(obj) else None
    now = keep(obj)
    before = event.prev is not None and keep(decode(event.prev.value, event.prev.mod_revision))
    if now:
        return ("MODIFIED" if before else "ADDED", obj)
    return ("DELETED", obj) if before else None


class _Stream:
    """Writes watch events to the response, as plain objects or Table rows."""

    def __init__(self, request: web.Request, response: web.StreamResponse, target: Target) -> None:
        self.request = request
        self.response = response
        self.target = target
        self.table = "as=Table" in request.headers.get("Accept", "")
        self.columns_sent = False

    async def send(self, kind: str, obj: Obj) -> None:
        rt = self.target.rt
        obj.setdefault("apiVersion", rt.api_version)
        obj.setdefault("kind", rt.kind)
        if self.table and kind not in ("BOOKMARK", "ERROR"):
            obj = tables.table(
                rt,
                [obj],
                now=datetime.datetime.now(datetime.UTC),
                include_object=self.request.query.get("includeObject", "Metadata"),
                list_meta={"resourceVersion": obj["metadata"].get("resourceVersion", "")},
            )
            if self.columns_sent:
                obj["columnDefinitions"] = []
            self.columns_sent = True
        line = json.dumps({"type": kind, "object": obj}, separators=(",", ":")) + "\n"
        await self.response.write(line.encode())


async def serve_watch(
    request: web.Request, objects: Objects, target: Target, keep: Callable[[Obj], bool]
) -> web.StreamResponse:
    q = request.query
    rv = parse_resource_version(q.get("resourceVersion"))
    send_initial = q.get("sendInitialEvents") == "true"
    if send_initial and q.get("resourceVersionMatch") != "NotOlderThan":
        raise errors.bad_request(
            "sendInitialEvents requires setting resourceVersionMatch to NotOlderThan"
        )
    timeout = _timeout(q.get("timeoutSeconds"))
    bookmarks = q.get("allowWatchBookmarks") == "true"
    initial: list[Obj] = []
    start = rv + 1
    if rv == 0 or send_initial:
        page = await objects.list(target.rt, target.namespace, keep=keep)
        initial, start = page.items, page.revision + 1
    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    response.enable_chunked_encoding()
    await response.prepare(request)
    stream = _Stream(request, response, target)
    try:
        watch = objects.watch(target.rt, target.namespace, start)
    except errors.APIError as exc:
        await stream.send("ERROR", exc.status())
        return response
    try:
        for obj in initial:
            await stream.send("ADDED", obj)
        if send_initial:
            await stream.send("BOOKMARK", _bookmark(target, start - 1, initial_end=True))
        await asyncio.wait_for(_follow(stream, watch, keep, bookmarks, start - 1), timeout)
    except (TimeoutError, ConnectionResetError, StoreError):
        pass  # the client reconnects from its last resourceVersion
    finally:
        watch.close()
    return response


async def _follow(
    stream: _Stream, watch: Any, keep: Callable[[Obj], bool], bookmarks: bool, last: int
) -> None:
    events: AsyncIterator[Event] = watch.__aiter__()
    while True:
        try:
            event = await asyncio.wait_for(events.__anext__(), BOOKMARK_INTERVAL)
        except TimeoutError:
            if bookmarks:
                await stream.send("BOOKMARK", _bookmark(stream.target, last))
            continue
        except StopAsyncIteration:
            return
        last = event.kv.mod_revision
        typed = _event_type(event, keep)
        if typed is not None:
            await stream.send(*typed)


def _bookmark(target: Target, revision: int, *, initial_end: bool = False) -> Obj:
    meta: Obj = {"resourceVersion": str(revision)}
    if initial_end:
        meta["annotations"] = {"k8s.io/initial-events-end": "true"}
    return {"kind": target.rt.kind, "apiVersion": target.rt.api_version, "metadata": meta}


def _timeout(value: str | None) -> float:
    if value:
        try:
            seconds = int(value)
        except ValueError:
            raise errors.bad_request(f"invalid timeoutSeconds: {value!r}") from None
        if seconds > 0:
            return float(seconds)
    return random.uniform(1800, 3600)  # as kube: spread reconnections
