"""Streaming exec sessions, the same for VM and runc pods.

A session has stdout/stderr queues (b"" marks the end of a stream), takes
stdin, resizes its tty, forwards signals, and resolves `wait()` with the exit
code. The backend supplies the callables that reach the process.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

from .types import ExecResult


class ExecSession:
    def __init__(
        self,
        exec_id: str,
        write: Callable[[bytes], Awaitable[None]],
        resize: Callable[[int, int], Awaitable[None]],
        signal: Callable[[int], Awaitable[None]],
    ) -> None:
        self.exec_id = exec_id
        self.stdout: asyncio.Queue[bytes] = asyncio.Queue()
        self.stderr: asyncio.Queue[bytes] = asyncio.Queue()
        self._write = write
        self._resize = resize
        self._signal = signal
        self._exit: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.pid = 0

    # called by the backend
    def feed(self, stream: str, data: bytes) -> None:
        (self.stdout if stream == "stdout" else self.stderr).put_nowait(data)

    def set_exit(self, code: int) -> None:
        if not self._exit.done():
            self._exit.set_result(code)

    # used by callers
    async def write(self, data: bytes) -> None:
        """Sends stdin bytes; empty bytes close stdin."""
        await self._write(data)

    async def close_stdin(self) -> None:
        await self._write(b"")

    async def resize(self, rows: int, cols: int) -> None:
        await self._resize(rows, cols)

    async def signal(self, signum: int) -> None:
        await self._signal(signum)

    async def wait(self) -> int:
        return await asyncio.shield(self._exit)

    @property
    def exited(self) -> bool:
        return self._exit.done()

    async def output(self, stream: str = "stdout") -> AsyncIterator[bytes]:
        """Yields one stream's chunks until its end."""
        q = self.stdout if stream == "stdout" else self.stderr
        while chunk := await q.get():
            yield chunk


async def collect(session: ExecSession, stdin: bytes, timeout: float | None) -> ExecResult:
    """Runs a session to completion: feeds stdin, gathers output and exit code."""
    if stdin:
        await session.write(stdin)
    await session.close_stdin()

    async def gather(q: asyncio.Queue[bytes]) -> bytes:
        chunks = []
        while chunk := await q.get():
            chunks.append(chunk)
        return b"".join(chunks)

    async def run() -> ExecResult:
        out, err, code = await asyncio.gather(
            gather(session.stdout), gather(session.stderr), session.wait()
        )
        return ExecResult(code, out, err)

    try:
        return await asyncio.wait_for(run(), timeout)
    except TimeoutError:
        if not session.exited:
            await session.signal(9)
        raise
