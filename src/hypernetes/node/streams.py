"""The agent's stream server: container logs, exec and attach, for the API server only.

The API server proxies `kubectl logs/exec/attach` here (see
hypernetes/api/streams.py). This server listens with TLS and requires a
client certificate signed by the cluster CA whose common name is
`STREAM_CLIENT` — a certificate only the API server holds (it issues it to
itself from the CA key, which never leaves the server). Users never reach
the agent directly: the API server has already authenticated and
authorized them.

Endpoints (kubelet's):
    GET /containerLogs/{namespace}/{pod}/{container}?follow&previous&tailLines&sinceSeconds&
        sinceTime&timestamps&limitBytes
    GET /exec/{namespace}/{pod}/{container}?command=..&stdin&stdout&stderr&tty  (WebSocket)
    GET /attach/{namespace}/{pod}/{container}?stdin&stdout&stderr&tty          (WebSocket)

WebSocket framing (`v4.channel.k8s.io`, `v5.channel.k8s.io`): each binary
message starts with a channel byte: 0 stdin, 1 stdout, 2 stderr, 3 error
(a metav1.Status JSON when the process ends), 4 resize ({"Width","Height"});
v5 adds 255 "close" (payload: the channel to close, e.g. stdin).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
import logging
import os
import ssl
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import WSMsgType, web

from hypernetes.api import pki
from hypernetes.client.config import load_client_certificate
from hypernetes.runtime import ContainerState, ContainerStatus, Runtime, RuntimeFailure
from hypernetes.runtime.crilog import parse_line

log = logging.getLogger(__name__)

STREAM_CLIENT = "system:hypernetes:apiserver-stream-client"
"""Common name of the API server's client certificate for this server."""
PROTOCOLS = ("v5.channel.k8s.io", "v4.channel.k8s.io")
STDIN, STDOUT, STDERR, ERROR, RESIZE, CLOSE = 0, 1, 2, 3, 4, 255

PodLookup = Callable[[str, str], Awaitable["tuple[str, str] | None"]]
"""lookup(namespace, name) -> (pod uid, sandbox id) of a pod this node runs, or None."""


def status(code: int, reason: str, message: str) -> dict[str, Any]:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }


def error(code: int, reason: str, message: str) -> web.Response:
    return web.json_response(status(code, reason, message), status=code)


def exit_status(code: int) -> dict[str, Any]:
    """What kubectl reads on the error channel when the process has ended."""
    if code == 0:
        return {"metadata": {}, "status": "Success"}
    return {
        "metadata": {},
        "status": "Failure",
        "message": f"command terminated with non-zero exit code: exit status {code}",
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]},
    }


def _flag(request: web.Request, name: str) -> bool:
    return request.query.get(name, "").lower() in ("1", "true")


class StreamServer:
    """Serves logs, exec and attach for the containers of this node's pods."""

    def __init__(
        self,
        runtime: Runtime,
        lookup: PodLookup,
        ca_pem: bytes,
        serving: tuple[Path, Path] | None = None,
    ) -> None:
        self.runtime = runtime
        self.lookup = lookup
        self.ca_pem = ca_pem
        self.serving = serving
        """(certificate, key) naming this node, signed by the server's node-serving CA."""
        self.port = 0
        self._runner: web.AppRunner | None = None

    def _tls(self, host_names: tuple[str, ...]) -> ssl.SSLContext:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cadata=self.ca_pem.decode())
        ctx.verify_mode = ssl.CERT_REQUIRED  # the API server's client certificate
        if self.serving is not None:
            ctx.load_cert_chain(*self.serving)
            return ctx
        # No serving certificate from the server (an agent run with --kubeconfig): a
        # self-made one, which the API server will not accept — streams do not work.
        log.warning("no node serving certificate: logs/exec/attach will be refused")
        own = pki.create_ca("hypernetes-agent-ca")
        pair = pki.issue(own, "hypernetes-agent", server_names=host_names)
        load_client_certificate(ctx, pair.cert_pem, pair.key_pem)  # in memory, not on disk
        return ctx

    async def start(self, host: str, port: int, names: tuple[str, ...]) -> int:
        app = web.Application(middlewares=[self._only_apiserver])
        app.router.add_get("/containerLogs/{ns}/{pod}/{container}", self.logs)
        app.router.add_get("/exec/{ns}/{pod}/{container}", self.exec)
        app.router.add_post("/exec/{ns}/{pod}/{container}", self.exec)
        app.router.add_get("/attach/{ns}/{pod}/{container}", self.attach)
        app.router.add_post("/attach/{ns}/{pod}/{container}", self.attach)
        app.router.add_get("/healthz", self.healthz)
        self._runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port, ssl_context=self._tls(names))
        await site.start()
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        self.port = int(sockets[0].getsockname()[1]) if sockets else port
        return self.port

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @web.middleware
    async def _only_apiserver(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        transport = request.transport
        cert = transport.get_extra_info("peercert") if transport is not None else None
        subject = dict(x[0] for x in (cert or {}).get("subject", ()))
        if subject.get("commonName") != STREAM_CLIENT:
            return error(403, "Forbidden", "only the API server may use this endpoint")
        return await handler(request)

    async def healthz(self, request: web.Request) -> web.Response:
        return web.Response(text="ok")

    # -- finding containers -----------------------------------------------------

    async def _containers(self, request: web.Request) -> list[ContainerStatus] | web.Response:
        ns, pod, name = (request.match_info[k] for k in ("ns", "pod", "container"))
        found = await self.lookup(ns, pod)
        if found is None:
            return error(404, "NotFound", f'pod "{pod}" is not running on this node')
        _, sid = found
        records = [c for c in await self.runtime.list_containers(sid) if c.name == name]
        if not records:
            return error(
                400,
                "BadRequest",
                f'container "{name}" in pod "{pod}" is waiting to start: ContainerCreating',
            )
        return sorted(records, key=lambda c: c.attempt)

    async def _running(self, request: web.Request) -> ContainerStatus | web.Response:
        records = await self._containers(request)
        if isinstance(records, web.Response):
            return records
        latest = records[-1]
        if latest.state != ContainerState.RUNNING:
            return error(
                400,
                "BadRequest",
                f"container {latest.name} is not running (state: {latest.state.value})",
            )
        return latest

    # -- logs -------------------------------------------------------------------

    async def logs(self, request: web.Request) -> web.StreamResponse:
        records = await self._containers(request)
        if isinstance(records, web.Response):
            return records
        if _flag(request, "previous"):
            if len(records) < 2:
                return error(
                    400,
                    "BadRequest",
                    f'previous terminated container "{records[-1].name}" in pod '
                    f'"{request.match_info["pod"]}" not found',
                )
            record = records[-2]
        else:
            record = records[-1]
        try:
            opts = LogOptions.parse(request)
        except ValueError as exc:
            return error(400, "BadRequest", str(exc))
        response = web.StreamResponse(headers={"Content-Type": "text/plain"})
        await response.prepare(request)
        await follow_log(self.runtime, record, opts, response.write)
        with contextlib.suppress(ConnectionResetError):
            await response.write_eof()
        return response

    # -- exec and attach ------------------------------------------------------

    async def exec(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(protocols=PROTOCOLS, max_msg_size=0)
        await ws.prepare(request)
        # Errors go on the error channel, as a Status, once the stream is up: kubectl
        # shows them as they are (a refused upgrade would make it retry with SPDY).
        target = await self._running(request)
        command = request.query.getall("command", [])
        if isinstance(target, web.Response):
            return await self._fail(ws, target)
        if not command:
            return await self._fail(ws, error(400, "BadRequest", "you must specify a command"))
        tty, stdin = _flag(request, "tty"), _flag(request, "stdin")
        try:
            session = await self.runtime.exec(target.id, command, tty=tty, stdin=stdin)
        except RuntimeFailure as exc:
            return await self._fail(ws, error(500, "InternalError", exc.message))
        v5 = ws.ws_protocol == PROTOCOLS[0]

        async def pump(queue: asyncio.Queue[bytes], channel: int) -> None:
            while chunk := await queue.get():
                await ws.send_bytes(bytes([channel]) + chunk)

        pumps = [
            asyncio.create_task(pump(session.stdout, STDOUT)),
            asyncio.create_task(pump(session.stderr, STDERR)),
        ]
        reader = asyncio.create_task(self._read_client(ws, v5, session.write, session.resize))
        try:
            code = await session.wait()
            await asyncio.wait_for(asyncio.gather(*pumps), 5)
            await ws.send_bytes(bytes([ERROR]) + json.dumps(exit_status(code)).encode())
        except (ConnectionResetError, TimeoutError):
            pass
        finally:
            reader.cancel()
            for p in pumps:
                p.cancel()
            if not session.exited:
                with contextlib.suppress(RuntimeFailure, OSError):
                    await session.signal(9)
            await ws.close()
        return ws

    async def _fail(self, ws: web.WebSocketResponse, response: web.Response) -> web.StreamResponse:
        assert isinstance(response.body, bytes)
        await ws.send_bytes(bytes([ERROR]) + response.body)
        await ws.close()
        return ws

    async def _read_client(
        self,
        ws: web.WebSocketResponse,
        v5: bool,
        write: Callable[[bytes], Awaitable[None]],
        resize: Callable[[int, int], Awaitable[None]] | None,
    ) -> None:
        """Feeds stdin and resize messages from the client to the process."""
        async for msg in ws:
            if msg.type != WSMsgType.BINARY or not msg.data:
                continue
            channel, payload = msg.data[0], msg.data[1:]
            if channel == STDIN and payload:
                await write(bytes(payload))
            elif channel == RESIZE and resize is not None:
                with contextlib.suppress(ValueError, KeyError, TypeError):
                    size = json.loads(payload)
                    await resize(int(size["Height"]), int(size["Width"]))
            elif channel == CLOSE and v5 and payload[:1] == bytes([STDIN]):
                await write(b"")

    async def attach(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(protocols=PROTOCOLS, max_msg_size=0)
        await ws.prepare(request)
        target = await self._running(request)
        if isinstance(target, web.Response):
            return await self._fail(ws, target)
        v5 = ws.ws_protocol == PROTOCOLS[0]

        async def write(data: bytes) -> None:
            if data:
                self.runtime.write_stdin(target.id, data)

        async def send(channel: int, data: bytes) -> None:
            await ws.send_bytes(bytes([channel]) + data)

        # Output comes from the container's log file (both runtimes write it), from now on.
        pumper = asyncio.create_task(tail_output(self.runtime, target, send))
        reader = asyncio.create_task(self._read_client(ws, v5, write, None))
        try:
            await asyncio.wait({reader, pumper}, return_when=asyncio.FIRST_COMPLETED)
            if pumper.done() and pumper.exception() is None:
                code = (await self.runtime.container_status(target.id)).exit_code
                await send(ERROR, json.dumps(exit_status(code)).encode())
        except (ConnectionResetError, RuntimeFailure):
            pass
        finally:
            for t in (pumper, reader):
                t.cancel()
            await ws.close()
        return ws


async def tail_output(
    runtime: Runtime, record: ContainerStatus, send: Callable[[int, bytes], Awaitable[None]]
) -> None:
    """Sends what the container writes from now on (stdout on 1, stderr on 2) until it ends."""
    path = record.log_path
    offset = os.path.getsize(path) if os.path.exists(path) else 0
    pending = b""
    while True:
        chunk = b""
        if os.path.exists(path):
            with open(path, "rb") as f:
                f.seek(offset)
                chunk = f.read()
        if chunk:
            offset += len(chunk)
            pending += chunk
            *complete, pending = pending.split(b"\n")
            for line in complete:
                _, stream, full, content = parse_line(line + b"\n")
                channel = STDOUT if stream == "stdout" else STDERR
                await send(channel, content + (b"\n" if full else b""))
            continue
        current = await runtime.container_status(record.id)
        if current.state == ContainerState.EXITED:
            return
        await asyncio.sleep(0.1)


class LogOptions:
    def __init__(self) -> None:
        self.follow = False
        self.timestamps = False
        self.tail: int | None = None
        self.since: float | None = None
        self.limit: int | None = None

    @classmethod
    def parse(cls, request: web.Request) -> LogOptions:
        q = request.query
        o = cls()
        o.follow = _flag(request, "follow")
        o.timestamps = _flag(request, "timestamps")
        if q.get("tailLines"):
            o.tail = int(q["tailLines"])
        if q.get("limitBytes"):
            o.limit = int(q["limitBytes"])
        if q.get("sinceSeconds"):
            o.since = datetime.datetime.now(datetime.UTC).timestamp() - int(q["sinceSeconds"])
        elif q.get("sinceTime"):
            o.since = _parse_ts(q["sinceTime"])
        return o


def _parse_ts(value: str) -> float:
    """An RFC 3339 timestamp (nanoseconds allowed) as seconds since the epoch."""
    main, _, frac = value.rstrip("Z").partition(".")
    dt = datetime.datetime.strptime(main, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=datetime.UTC)
    return dt.timestamp() + (float(f"0.{frac}") if frac else 0.0)


def render(line: bytes, timestamps: bool) -> tuple[float, bytes]:
    """(time, text) of one CRI log line as `kubectl logs` shows it."""
    ts, _, full, content = parse_line(line)
    text = content + (b"\n" if full else b"")
    if timestamps:
        text = ts.encode() + b" " + text
    return _parse_ts(ts), text


async def follow_log(
    runtime: Runtime,
    record: ContainerStatus,
    opts: LogOptions,
    write: Callable[[bytes], Awaitable[None]],
) -> None:
    """Writes a container's log as asked; with follow, until the container ends."""
    path = record.log_path
    if not os.path.exists(path):
        return
    sent = 0

    async def emit(text: bytes) -> bool:
        nonlocal sent
        if opts.limit is not None:
            text = text[: max(0, opts.limit - sent)]
        if text:
            await write(text)
            sent += len(text)
        return opts.limit is None or sent < opts.limit

    with open(path, "rb") as f:
        lines = [ln for ln in f.readlines() if ln.endswith(b"\n")]
        offset = sum(len(ln) for ln in lines)
        rendered = [render(ln, opts.timestamps) for ln in lines]
        if opts.since is not None:
            rendered = [r for r in rendered if r[0] >= opts.since]
        if opts.tail is not None:
            rendered = rendered[-opts.tail :] if opts.tail > 0 else []
        for _, text in rendered:
            if not await emit(text):
                return
        if not opts.follow:
            return
        pending = b""
        while True:
            f.seek(offset)
            chunk = f.read()
            if chunk:
                offset += len(chunk)
                pending += chunk
                *complete, pending = pending.split(b"\n")
                for ln in complete:
                    if not await emit(render(ln + b"\n", opts.timestamps)[1]):
                        return
                continue
            try:
                current = await runtime.container_status(record.id)
            except RuntimeFailure:
                return
            if current.state == ContainerState.EXITED:
                f.seek(offset)
                if not f.read():
                    return
                continue
            await asyncio.sleep(0.2)
