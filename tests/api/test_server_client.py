"""The API server driven by the official `kubernetes` Python client: watch and lists."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException
from tests.conftest import RunningServer, start_server


def _api(server: RunningServer) -> client.ApiClient:
    return config.new_client_from_config(str(server.kubeconfig))


@pytest.fixture
def core(api_server: RunningServer) -> Iterator[client.CoreV1Api]:
    with _api(api_server) as api:
        yield client.CoreV1Api(api)


def _namespace(core: client.CoreV1Api) -> str:
    name = f"py-{uuid.uuid4().hex[:8]}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    return name


def _cm(name: str, **data: str) -> client.V1ConfigMap:
    return client.V1ConfigMap(metadata=client.V1ObjectMeta(name=name), data=data)


def test_crud_and_errors(core: client.CoreV1Api) -> None:
    ns = _namespace(core)
    created = core.create_namespaced_config_map(ns, _cm("a", k="1"))
    assert created.metadata.uid and created.data == {"k": "1"}
    with pytest.raises(ApiException) as err:
        core.read_namespaced_config_map("missing", ns)
    assert err.value.status == 404
    created.data["k"] = "2"
    updated = core.replace_namespaced_config_map("a", ns, created)
    assert int(updated.metadata.resource_version) > int(created.metadata.resource_version)
    with pytest.raises(ApiException) as stale:
        core.replace_namespaced_config_map("a", ns, created)
    assert stale.value.status == 409
    core.delete_namespaced_config_map("a", ns)
    with pytest.raises(ApiException) as gone:
        core.read_namespaced_config_map("a", ns)
    assert gone.value.status == 404


def test_list_limit_and_continue(core: client.CoreV1Api) -> None:
    ns = _namespace(core)
    for i in range(5):
        core.create_namespaced_config_map(ns, _cm(f"c{i}"))
    first = core.list_namespaced_config_map(ns, limit=2)
    assert [i.metadata.name for i in first.items] == ["c0", "c1"]
    assert first.metadata._continue
    core.create_namespaced_config_map(ns, _cm("c9"))  # after the snapshot: not in this list
    names = [i.metadata.name for i in first.items]
    token = first.metadata._continue
    while token:
        page = core.list_namespaced_config_map(ns, limit=2, _continue=token)
        names += [i.metadata.name for i in page.items]
        token = page.metadata._continue
    assert names == ["c0", "c1", "c2", "c3", "c4"]
    with pytest.raises(ApiException) as bad:
        core.list_namespaced_config_map(ns, limit=2, _continue="garbage!")
    assert bad.value.status == 400


def test_watch_from_resource_version_sees_every_change_in_order(core: client.CoreV1Api) -> None:
    ns = _namespace(core)
    start = core.list_namespaced_config_map(ns).metadata.resource_version
    core.create_namespaced_config_map(ns, _cm("w", v="1"))
    core.patch_namespaced_config_map("w", ns, {"data": {"v": "2"}})
    core.delete_namespaced_config_map("w", ns)
    seen = []
    for event in watch.Watch().stream(
        core.list_namespaced_config_map, ns, resource_version=start, timeout_seconds=5
    ):
        seen.append((event["type"], event["object"].data))
        if len(seen) == 3:
            break
    assert seen == [("ADDED", {"v": "1"}), ("MODIFIED", {"v": "2"}), ("DELETED", {"v": "2"})]


def test_watch_with_label_selector_reports_leaving_as_deleted(core: client.CoreV1Api) -> None:
    ns = _namespace(core)
    start = core.list_namespaced_config_map(ns).metadata.resource_version
    obj = _cm("l")
    obj.metadata.labels = {"sel": "yes"}
    core.create_namespaced_config_map(ns, obj)
    core.patch_namespaced_config_map("l", ns, {"metadata": {"labels": {"sel": "no"}}})
    types = []
    for event in watch.Watch().stream(
        core.list_namespaced_config_map,
        ns,
        label_selector="sel=yes",
        resource_version=start,
        timeout_seconds=5,
    ):
        types.append(event["type"])
        if len(types) == 2:
            break
    assert types == ["ADDED", "DELETED"]


def test_watch_live_events_arrive(core: client.CoreV1Api) -> None:
    ns = _namespace(core)
    rv = core.list_namespaced_config_map(ns).metadata.resource_version

    def writer() -> None:
        time.sleep(1)
        core.create_namespaced_config_map(ns, _cm("live"))

    threading.Thread(target=writer).start()
    for event in watch.Watch().stream(
        core.list_namespaced_config_map, ns, resource_version=rv, timeout_seconds=15
    ):
        assert event["type"] == "ADDED" and event["object"].metadata.name == "live"
        break
    else:
        raise AssertionError("no event")


def test_compacted_history_gives_410_expired(tmp_path: Path) -> None:
    server = start_server(tmp_path / "data", "--compact-interval", "0.5")
    try:
        with _api(server) as api:
            core = client.CoreV1Api(api)
            ns = _namespace(core)
            core.create_namespaced_config_map(ns, _cm("a"))
            core.create_namespaced_config_map(ns, _cm("b"))
            page = core.list_namespaced_config_map(ns, limit=1)
            old = page.metadata.resource_version
            core.create_namespaced_config_map(ns, _cm("c"))
            time.sleep(2.5)  # at least two compaction rounds
            with pytest.raises(ApiException) as expired:
                core.list_namespaced_config_map(ns, limit=1, _continue=page.metadata._continue)
            assert expired.value.status == 410
            with pytest.raises(ApiException) as exact:
                core.list_namespaced_config_map(
                    ns, resource_version=old, resource_version_match="Exact"
                )
            assert exact.value.status == 410
            with pytest.raises(ApiException) as too_old:
                for _ in watch.Watch().stream(
                    core.list_namespaced_config_map, ns, resource_version="1", timeout_seconds=3
                ):
                    pass
            assert too_old.value.status == 410
    finally:
        server.stop()
