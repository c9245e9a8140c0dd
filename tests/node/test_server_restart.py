"""The API server restarted under the agent: the agent reconnects, nothing is lost."""

from __future__ import annotations

import json
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from ndhelpers import Agent, eventually, pod_manifest
from tests.conftest import RunningServer, start_server


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Restartable:
    """A server that can be restarted on the same address and data dir."""

    def __init__(self, data: Path) -> None:
        self.data = data
        self.listen = f"127.0.0.1:{_free_port()}"
        self.current = start_server(data, "--listen", self.listen, "--no-agent")

    def restart(self) -> None:
        self.current.stop()
        self.current = start_server(self.data, "--listen", self.listen, "--no-agent")


@pytest.fixture(scope="module")
def restartable() -> Iterator[Restartable]:
    with tempfile.TemporaryDirectory(prefix="hnnd-rs-") as tmp:
        r = Restartable(Path(tmp) / "data")
        try:
            yield r
        finally:
            r.current.stop()


@pytest.fixture(scope="module")
def server(restartable: Restartable) -> RunningServer:
    """The agent fixture joins this server (the URL stays the same across restarts)."""
    return restartable.current


def test_agent_survives_server_restart(restartable: Restartable, agent: Agent) -> None:
    s = restartable.current
    s.kubectl("create", "namespace", "nd-rs")
    s.kubectl("apply", "-n", "nd-rs", "-f", "-",
              input=pod_manifest("before", agent.node_name, ["sleep", "3600"]))  # fmt: skip
    s.kubectl("wait", "-n", "nd-rs", "pod/before", "--for=condition=Ready", "--timeout=60s")
    cid = s.kubectl("get", "pod", "before", "-n", "nd-rs", "-o",
                    "jsonpath={.status.containerStatuses[0].containerID}").stdout  # fmt: skip
    restartable.restart()
    s = restartable.current
    s.kubectl("apply", "-n", "nd-rs", "-f", "-",
              input=pod_manifest("after", agent.node_name, ["sleep", "3600"]))  # fmt: skip
    s.kubectl("wait", "-n", "nd-rs", "pod/after", "--for=condition=Ready", "--timeout=60s")
    now = s.kubectl("get", "pod", "before", "-n", "nd-rs", "-o",
                    "jsonpath={.status.containerStatuses[0].containerID}").stdout  # fmt: skip
    assert now == cid  # the running pod was left alone
    assert s.kubectl("exec", "-n", "nd-rs", "after", "--", "echo", "hi").stdout == "hi\n"

    def renew_time() -> str:
        lease = json.loads(s.kubectl("get", "lease", agent.node_name, "-n", "kube-node-lease",
                                     "-o", "json").stdout)  # fmt: skip
        return str(lease["spec"]["renewTime"])

    first = renew_time()
    eventually(lambda: renew_time() != first, "the Lease renewed after the restart")
    for name in ("before", "after"):
        s.kubectl("delete", "pod", name, "-n", "nd-rs", "--timeout=30s")
    s.kubectl("delete", "namespace", "nd-rs", "--wait=false")
