"""Fixtures shared by the whole suite: a real API server in its own process."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

STARTUP_TIMEOUT = 60.0


@dataclass
class RunningServer:
    url: str
    kubeconfig: Path
    data_dir: Path
    process: subprocess.Popen[str]

    def kubectl(self, *args: str, input: str | None = None, check: bool = True,
                timeout: float = 60) -> subprocess.CompletedProcess[str]:  # fmt: skip
        """Run the machine's kubectl against this server."""
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig)}
        result = subprocess.run(["kubectl", *args], input=input, capture_output=True, text=True,
                                env=env, timeout=timeout)  # fmt: skip
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed:\n{result.stderr}")
        return result

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_server(data_dir: Path, *extra: str, agent: bool = False) -> RunningServer:
    """Start `hypernetes server` on a free loopback port and wait until it serves.

    Without `agent=True` the embedded node agent is off: a test that only needs the
    API must not have its pods scheduled and started as VMs (tests/node turns it on).
    """
    cmd = [sys.executable, "-m", "hypernetes.cli", "server", "--data-dir", str(data_dir),
           "--listen", "127.0.0.1:0", *extra]  # fmt: skip
    if not agent:
        cmd.append("--no-agent")
    log = open(data_dir.parent / f"{data_dir.name}.log", "w")  # noqa: SIM115
    process = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, text=True)
    assert process.stdout is not None
    line = process.stdout.readline()
    match = re.search(r"serving on (https://\S+);", line)
    if not match:
        process.kill()
        process.wait()
        log.close()
        raise RuntimeError(f"server did not start: {line!r}; log in {log.name}")
    return RunningServer(match.group(1), data_dir / "admin.kubeconfig", data_dir, process)


@pytest.fixture(scope="session")
def api_server() -> Iterator[RunningServer]:
    """One server for the session: tests must use their own namespaces and names."""
    with tempfile.TemporaryDirectory(prefix="hn-test-") as tmp:
        server = start_server(Path(tmp) / "data")
        try:
            yield server
        finally:
            server.stop()


@pytest.fixture
def fresh_api_server(tmp_path: Path) -> Iterator[RunningServer]:
    """A server of this test's own, on an empty store."""
    server = start_server(tmp_path / "data")
    try:
        yield server
    finally:
        server.stop()
