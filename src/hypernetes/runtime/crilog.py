"""Container logs in the CRI format, as kubelet and `kubectl logs` read them.

Each line: `<RFC 3339 nano timestamp> <stdout|stderr> <F|P> <content>`, where
P marks a partial line (split because it was too long) and F a full one.
"""

from __future__ import annotations

import datetime
import os
import threading
import time
from typing import IO

MAX_LINE = 16 * 1024


def timestamp(now: float | None = None) -> str:
    ns = time.time_ns() if now is None else int(now * 1e9)
    dt = datetime.datetime.fromtimestamp(ns // 1_000_000_000, tz=datetime.UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S") + f".{ns % 1_000_000_000:09d}Z"


class CRILogWriter:
    """Appends the stdout and stderr of one container to its log file."""

    def __init__(self, path: str) -> None:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        self.path = path
        self._file: IO[bytes] | None = open(path, "ab")  # noqa: SIM115
        self._partial = {"stdout": b"", "stderr": b""}
        self._lock = threading.Lock()

    def write(self, stream: str, data: bytes) -> None:
        """Adds output of `stream`; an empty `data` is the end of that stream."""
        with self._lock:
            if self._file is None:
                return
            if not data:
                if self._partial[stream]:
                    self._emit(stream, self._partial[stream], full=True)
                    self._partial[stream] = b""
                self._file.flush()
                return
            buf = self._partial[stream] + data
            lines = buf.split(b"\n")
            self._partial[stream] = lines.pop()
            for line in lines:
                self._emit(stream, line, full=True)
            while len(self._partial[stream]) >= MAX_LINE:
                self._emit(stream, self._partial[stream][:MAX_LINE], full=False)
                self._partial[stream] = self._partial[stream][MAX_LINE:]
            self._file.flush()

    def _emit(self, stream: str, content: bytes, full: bool) -> None:
        assert self._file is not None
        tag = b"F" if full else b"P"
        self._file.write(f"{timestamp()} {stream} ".encode() + tag + b" " + content + b"\n")

    def close(self) -> None:
        with self._lock:
            if self._file is None:
                return
            for stream, rest in self._partial.items():
                if rest:
                    self._emit(stream, rest, full=True)
            self._file.close()
            self._file = None


def parse_line(line: bytes) -> tuple[str, str, bool, bytes]:
    """Splits one CRI log line into (timestamp, stream, full, content)."""
    ts, stream, tag, content = line.rstrip(b"\n").split(b" ", 3)
    return ts.decode(), stream.decode(), tag == b"F", content
