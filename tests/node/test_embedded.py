"""The agent embedded in `hypernetes server`: this machine is a node out of the box,
and a restarted server adopts its running pods."""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

from ndhelpers import eventually, import_image, pod_manifest, wipe_runtime
from tests.conftest import start_server

from hypernetes.node.embedded import default_node_name


def test_server_runs_pods_and_adopts_them_after_restart(busybox_archive: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="hnnd-aio-") as tmp:
        data = Path(tmp) / "data"
        data.mkdir()
        import_image(data, busybox_archive)
        node = default_node_name()
        server = start_server(data, agent=True)
        try:
            eventually(lambda: server.kubectl("get", "node", node, check=False).returncode == 0,
                       "the embedded agent's Node")  # fmt: skip
            server.kubectl("apply", "-f", "-", input=pod_manifest(
                "sys", node, ["sh", "-c", "echo up; sleep 3600"]))  # fmt: skip
            server.kubectl("wait", "pod/sys", "--for=condition=Ready", "--timeout=60s")
            before = json.loads(server.kubectl("get", "pod", "sys", "-o", "json").stdout)
            assert server.kubectl("logs", "sys").stdout == "up\n"
            server.stop()
            server = start_server(data, agent=True)
            server.kubectl("wait", "pod/sys", "--for=condition=Ready", "--timeout=60s")
            after = json.loads(server.kubectl("get", "pod", "sys", "-o", "json").stdout)
            old, new = (p["status"]["containerStatuses"][0] for p in (before, after))
            assert new["containerID"] == old["containerID"] and new["restartCount"] == 0
            server.kubectl("delete", "pod", "sys", "--timeout=30s")
        finally:
            server.stop()
            assert wipe_runtime(data) == 0  # the deleted pod took its sandbox along


def test_no_agent_flag(tmp_path: Path) -> None:
    server = start_server(tmp_path / "data", "--no-agent")
    try:
        time.sleep(2)
        assert server.kubectl("get", "nodes", "-o", "name").stdout.strip() == ""
    finally:
        server.stop()
