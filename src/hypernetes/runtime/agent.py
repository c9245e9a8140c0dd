"""Client of hyperstart, the guest agent, over the VM's control channel.

The channel is a virtio-serial port whose host end is a Unix socket that QEMU
listens on. Requests carry an id and get one response; exits come as events;
stdio travels as DATA frames on stream ids the host picks. On connect the
client says hello with a random nonce and ignores everything before the
matching answer, which is what makes re-attaching after a restart safe.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
from collections.abc import Callable
from typing import Any

from . import protocol
from .errors import RuntimeFailure, SandboxError

log = logging.getLogger(__name__)

EventHandler = Callable[[dict[str, Any]], None]
StreamHandler = Callable[[bytes], None]


class AgentError(RuntimeFailure):
    """The agent refused a request (its reason and message)."""


class AgentClient:
    """One connection to one VM's agent."""

    def __init__(self, on_event: EventHandler | None = None) -> None:
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._streams: dict[int, StreamHandler] = {}
        self._next_id = 1
        self._task: asyncio.Task[None] | None = None
        self._on_event = on_event
        self.closed = asyncio.Event()
        self.hello: dict[str, Any] = {}

    async def connect(self, path: str, timeout: float, alive: Callable[[], bool]) -> None:
        """Connects and completes the hello handshake within `timeout` seconds,
        giving up early if `alive()` turns false (the VM died)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            try:
                self._reader, self._writer = await asyncio.open_unix_connection(path)
                break
            except (FileNotFoundError, ConnectionRefusedError):
                if not alive():
                    raise SandboxError(
                        "VMExited", "the VM exited before it could be reached"
                    ) from None
                if loop.time() > deadline:
                    raise SandboxError(
                        "BootTimeout", "the VM's control socket never appeared"
                    ) from None
                await asyncio.sleep(0.005)
        self._task = asyncio.create_task(self._read_loop())
        nonce = secrets.token_hex(8)
        fut = self._send_request("hello", {"nonce": nonce})
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                fut.cancel()
                await self.close()
                raise SandboxError(
                    "BootTimeout", f"the guest agent did not answer in {timeout:g} s"
                )
            done, _ = await asyncio.wait({fut}, timeout=min(remaining, 0.1))
            if done:
                break
            if not alive():
                fut.cancel()
                await self.close()
                raise SandboxError("VMExited", "the VM exited while booting")
        if fut.exception() is not None:  # the connection dropped: QEMU is gone
            await self.close()
            raise SandboxError("VMExited", "the VM exited while booting")
        reply = fut.result()
        if reply.get("nonce") != nonce or reply.get("version") != protocol.VERSION:
            await self.close()
            raise SandboxError("ProtocolMismatch", f"unexpected hello answer {reply!r}")
        self.hello = reply

    def _send_request(self, op: str, args: dict[str, Any]) -> asyncio.Future[dict[str, Any]]:
        if self._writer is None or self.closed.is_set():
            raise SandboxError("VMGone", "not connected to the guest agent")
        rid = self._next_id
        self._next_id += 1
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[rid] = fut
        self._writer.write(protocol.encode_message(protocol.REQUEST, {**args, "id": rid, "op": op}))
        return fut

    async def request(self, op: str, timeout: float = 30.0, **args: Any) -> dict[str, Any]:
        """Sends one request and returns the agent's answer (raises AgentError)."""
        fut = self._send_request(op, args)
        try:
            reply = await asyncio.wait_for(fut, timeout)
        except TimeoutError:
            raise SandboxError("AgentTimeout", f"the guest agent did not answer {op!r}") from None
        if not reply.get("ok"):
            raise AgentError(reply.get("reason") or "AgentError", reply.get("error") or "")
        return reply

    def send_data(self, stream: int, data: bytes) -> None:
        """Stream bytes to the guest (empty `data` closes the stream)."""
        if self._writer is None or self.closed.is_set():
            return
        if not data:
            self._writer.write(protocol.encode(protocol.DATA, b"", stream))
        for i in range(0, len(data), protocol.DATA_CHUNK):
            self._writer.write(
                protocol.encode(protocol.DATA, data[i : i + protocol.DATA_CHUNK], stream)
            )

    async def drain(self) -> None:
        if self._writer is not None:
            with contextlib.suppress(ConnectionError):
                await self._writer.drain()

    def on_stream(self, stream: int, handler: StreamHandler | None) -> None:
        """Routes DATA frames of `stream` to `handler` (None: stop routing)."""
        if handler is None:
            self._streams.pop(stream, None)
        else:
            self._streams[stream] = handler

    async def _read_loop(self) -> None:
        assert self._reader is not None
        decoder = protocol.Decoder()
        try:
            while True:
                data = await self._reader.read(65536)
                if not data:
                    break
                for frame in decoder.feed(data):
                    self._dispatch(frame)
        except (ConnectionError, OSError) as exc:
            log.debug("agent connection lost: %s", exc)
        finally:
            self.closed.set()
            for fut in self._pending.values():
                if not fut.done():
                    fut.set_exception(SandboxError("VMGone", "connection to the guest agent lost"))
            self._pending.clear()

    def _dispatch(self, frame: protocol.Frame) -> None:
        if frame.type == protocol.DATA:
            handler = self._streams.get(frame.stream)
            if handler is not None:
                handler(frame.payload)
            return
        try:
            msg = frame.message()
        except (ValueError, TypeError) as exc:
            log.warning("bad message from the guest agent: %s", exc)
            return
        if frame.type == protocol.RESPONSE:
            fut = self._pending.pop(msg.get("id", -1), None)
            if fut is not None and not fut.done():
                fut.set_result(msg)
        elif frame.type == protocol.EVENT and self._on_event is not None:
            self._on_event(msg)

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await self._writer.wait_closed()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self.closed.set()


def socket_path_ok(path: str) -> bool:
    """Unix socket paths are limited to 107 bytes."""
    return len(os.fsencode(path)) <= 107
