"""Durability: kill -9 the server during concurrent writes, then restart it."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException
from tests.conftest import start_server

WRITERS = 8


def _core(kubeconfig: Path) -> client.CoreV1Api:
    return client.CoreV1Api(config.new_client_from_config(str(kubeconfig)))


def test_acknowledged_writes_survive_kill_9_and_watches_resume(tmp_path: Path) -> None:
    data = tmp_path / "data"
    server = start_server(data)
    acknowledged: dict[str, str] = {}
    lock = threading.Lock()
    stop = threading.Event()
    try:
        core = _core(server.kubeconfig)
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="dur")))
        start_rv = core.list_namespaced_config_map("dur").metadata.resource_version

        def writer(n: int) -> None:
            api = _core(server.kubeconfig)
            i = 0
            while not stop.is_set():
                name = f"w{n}-{i}"
                body = client.V1ConfigMap(
                    metadata=client.V1ObjectMeta(name=name), data={"payload": "x" * 512}
                )
                try:
                    created = api.create_namespaced_config_map("dur", body)
                except Exception:
                    return  # the server died under us: this write was not acknowledged
                with lock:
                    acknowledged[name] = created.metadata.resource_version
                i += 1

        threads = [threading.Thread(target=writer, args=(n,)) for n in range(WRITERS)]
        for t in threads:
            t.start()
        time.sleep(3)
        os.kill(server.process.pid, signal.SIGKILL)
        server.process.wait()
        stop.set()
        for t in threads:
            t.join(30)
    finally:
        server.stop()
    assert len(acknowledged) > 20, "too few writes before the kill to mean anything"

    again = start_server(data)
    try:
        core = _core(again.kubeconfig)
        items = core.list_namespaced_config_map("dur").items
        stored = {i.metadata.name: i for i in items}
        missing = set(acknowledged) - set(stored)
        assert not missing, f"acknowledged writes lost: {sorted(missing)[:5]}"
        for item in items:  # nothing half-written
            assert item.data == {"payload": "x" * 512}
            assert item.metadata.uid and item.metadata.creation_timestamp
        for name, rv in acknowledged.items():
            assert stored[name].metadata.resource_version == rv
        # A watch from before the crash replays every change since, in order.
        seen = []
        for event in watch.Watch().stream(
            core.list_namespaced_config_map, "dur", resource_version=start_rv, timeout_seconds=10
        ):
            seen.append(event["object"].metadata.name)
            if len(seen) == len(items):
                break
        assert sorted(seen) == sorted(stored)
        revisions = [int(stored[n].metadata.resource_version) for n in seen]
        assert revisions == sorted(revisions)
        try:
            core.create_namespaced_config_map(
                "dur", client.V1ConfigMap(metadata=client.V1ObjectMeta(name="after"))
            )
        except ApiException as exc:  # pragma: no cover - a failure message, not a path
            raise AssertionError(f"server not writable after restart: {exc}") from None
    finally:
        again.stop()
