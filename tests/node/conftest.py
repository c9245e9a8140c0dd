"""Fixtures of the node tests: our own API server, a node agent process with a
test image imported into its runtime, and clean-up that checks nothing is left."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "runtime"))

import imagebuild
from ndhelpers import Agent, create_token, eventually, import_image, wipe_runtime
from tests.conftest import RunningServer, start_server


@pytest.fixture(scope="module")
def server() -> Iterator[RunningServer]:
    with tempfile.TemporaryDirectory(prefix="hnnd-srv-") as tmp:
        s = start_server(Path(tmp) / "data", agent=True)
        try:
            yield s
        finally:
            s.stop()


@pytest.fixture(scope="session")
def busybox_archive() -> Iterator[Path]:
    d = Path(tempfile.mkdtemp(prefix="hnnd-img-"))
    imagebuild.busybox_image().docker_archive(str(d / "busybox.tar"), "test/busybox:1")
    yield d / "busybox.tar"
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def agent(server: RunningServer, busybox_archive: Path) -> Iterator[Agent]:
    """An agent on a fresh data dir (short path: runtime sockets live there)."""
    data = Path(tempfile.mkdtemp(prefix="hnnd-"))
    import_image(data, busybox_archive)
    token = create_token(server.data_dir)
    name = f"hnnd-{uuid.uuid4().hex[:6]}"
    a = Agent(data, server.url, token, name, data.with_suffix(".log"))
    a.start()
    try:
        eventually(
            lambda: server.kubectl("get", "node", name, check=False).returncode == 0,
            f"node {name} to join ({a.log})",
        )
        yield a
    finally:
        a.stop()
        left = wipe_runtime(data)  # what the tests left behind: should be nothing
        mounts = [m for m in Path("/proc/self/mountinfo").read_text().splitlines()
                  if str(data) in m]  # fmt: skip
        shutil.rmtree(data, ignore_errors=True)
        if not os.environ.get("HNND_KEEP_LOGS"):
            a.log.unlink(missing_ok=True)
        assert left == 0, f"{left} sandboxes outlived their pods"
        assert mounts == [], f"mounts left behind: {mounts}"


@pytest.fixture
def ns(server: RunningServer) -> Iterator[str]:
    """A namespace of this test's own; its pods are deleted (and waited for) after."""
    name = f"nd-{uuid.uuid4().hex[:6]}"
    server.kubectl("create", "namespace", name)
    yield name
    server.kubectl("delete", "pods", "--all", "-n", name, "--wait=true", "--timeout=60s",
                   check=False)  # fmt: skip
    server.kubectl("delete", "namespace", name, "--wait=false", check=False)
