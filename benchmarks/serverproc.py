"""`hypernetes server` as a separate process for the benchmarks (as a user runs it)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path


def start_server(data: Path, *flags: str) -> tuple[subprocess.Popen[str], str]:
    """Start a server on a free loopback port with the data dir `data`; return (process,
    URL) once it serves. Its log goes to `server.log` beside the data dir."""
    cmd = [sys.executable, "-m", "hypernetes.cli", "server", "--data-dir", str(data),
           "--listen", "127.0.0.1:0", *flags]  # fmt: skip
    log = data.parent / "server.log"
    with open(log, "w") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True)
    assert proc.stdout is not None
    match = re.search(r"serving on (https://\S+);", proc.stdout.readline())
    if not match:
        proc.kill()
        proc.wait()
        raise SystemExit(f"server did not start; log in {log}")
    return proc, match.group(1)
