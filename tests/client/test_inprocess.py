"""Client features that need a hand on the server: compaction (410) and bearer tokens.

These tests run the real API server in this process, so they can compact its
store and register a bearer-token authenticator. The token table stands in
for the identity service (the server's seam for it), nothing else is faked.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from hypernetes.client import (
    CONFIGMAPS,
    NAMESPACES,
    ApiError,
    Client,
    Expired,
    Informer,
    load_kubeconfig,
)

from .conftest import configmap, write_kubeconfig

PLUGIN = Path(__file__).with_name("exec_plugin.py")
TIMEOUT = 30.0


@dataclass
class InProcess:
    server: Any
    kubeconfig: Path
    tokens: dict[str, Any] = field(default_factory=dict)

    async def compact(self) -> int:
        store = self.server.store
        revision = await store.current_revision()
        await store.compact(revision)
        return int(revision)


@pytest.fixture
async def inproc(tmp_path: Path) -> AsyncIterator[InProcess]:
    from hypernetes.api.auth import Authenticator
    from hypernetes.api.server import Server, ServerConfig

    tokens: dict[str, Any] = {}

    async def by_token(token: str) -> Any:
        return tokens.get(token)

    authenticator = Authenticator()
    authenticator.token_authenticators.append(by_token)
    server = Server(ServerConfig(tmp_path / "data", "127.0.0.1", 0), authenticator=authenticator)
    await server.start()
    try:
        yield InProcess(server, server.admin_kubeconfig, tokens)
    finally:
        await server.stop()


def admin_user() -> Any:
    from hypernetes.api.auth import User

    return User("token-admin", ("system:masters", "system:authenticated"))


def token_kubeconfig(inproc: InProcess, path: Path, user: dict[str, Any]) -> Path:
    admin = yaml.safe_load(inproc.kubeconfig.read_text())
    cluster = admin["clusters"][0]["cluster"]
    return write_kubeconfig(path, cluster=cluster, user=user)


async def test_watch_from_a_compacted_revision_is_expired(inproc: InProcess) -> None:
    async with Client(load_kubeconfig(inproc.kubeconfig)) as client:
        cm = await client.create(CONFIGMAPS, configmap("x", v="0"), "default")
        old = cm["metadata"]["resourceVersion"]
        for i in range(3):
            await client.patch(CONFIGMAPS, "x", {"data": {"v": str(i + 1)}}, "default")
        await inproc.compact()
        with pytest.raises(Expired) as err:
            async with client.watch(CONFIGMAPS, "default", resource_version=old) as events:
                await asyncio.wait_for(anext(events), TIMEOUT)
        assert err.value.code == 410 and err.value.reason == "Expired"
        with pytest.raises(Expired):
            await client.list(
                CONFIGMAPS, "default", resource_version=old, resource_version_match="Exact"
            )
        # The current state is still there to list and watch from.
        listing = await client.list(CONFIGMAPS, "default")
        assert [o["data"]["v"] for o in listing["items"]] == ["3"]


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, str]] = []
        self.changed = asyncio.Event()

    def add(self, obj: dict[str, Any]) -> None:
        self._record("add", obj)

    async def update(self, old: dict[str, Any], new: dict[str, Any]) -> None:
        self._record("update", new)

    def delete(self, obj: dict[str, Any]) -> None:
        self._record("delete", obj)

    def _record(self, kind: str, obj: dict[str, Any]) -> None:
        self.events.append((kind, obj["metadata"]["name"], (obj.get("data") or {}).get("v", "")))
        self.changed.set()

    async def wait_for(self, event: tuple[str, str, str]) -> None:
        async def until() -> None:
            while event not in self.events:
                self.changed.clear()
                await self.changed.wait()

        await asyncio.wait_for(until(), TIMEOUT)


async def test_informer_relists_after_expired(inproc: InProcess) -> None:
    async with Client(load_kubeconfig(inproc.kubeconfig)) as client:
        await client.create(NAMESPACES, {"metadata": {"name": "watched"}})
        await client.create(NAMESPACES, {"metadata": {"name": "busy"}})
        for name in ("a", "b"):
            await client.create(CONFIGMAPS, configmap(name, v="1"), "watched")
        informer = Informer(client, CONFIGMAPS, "watched", watch_timeout=2)
        seen = Recorder()
        informer.add_handlers(seen.add, seen.update, seen.delete)
        stop = asyncio.Event()
        runner = asyncio.create_task(informer.run(stop))
        await informer.wait_synced(TIMEOUT)
        assert sorted(seen.events) == [("add", "a", "1"), ("add", "b", "1")]
        assert informer.relists == 1

        # Traffic elsewhere moves the store on; compacting it leaves the
        # informer's resourceVersion behind, so its next watch gets 410.
        for i in range(3):
            await client.create(CONFIGMAPS, configmap(f"noise{i}"), "busy")
        await inproc.compact()
        deadline = asyncio.get_running_loop().time() + TIMEOUT
        while informer.relists < 2:
            assert asyncio.get_running_loop().time() < deadline, "no relist after compaction"
            await asyncio.sleep(0.1)

        # After the relist the watch goes on from the new resourceVersion.
        await client.create(CONFIGMAPS, configmap("c", v="1"), "watched")
        await seen.wait_for(("add", "c", "1"))
        assert sorted(o["metadata"]["name"] for o in informer.items()) == ["a", "b", "c"]

        # A stopped informer that runs again lists afresh and reports what it
        # missed as events, with the old state for deletions.
        stop.set()
        await asyncio.wait_for(runner, TIMEOUT)
        seen.events.clear()
        await client.delete(CONFIGMAPS, "a", "watched")
        await client.patch(CONFIGMAPS, "b", {"data": {"v": "2"}}, "watched")
        await client.create(CONFIGMAPS, configmap("d", v="1"), "watched")
        await inproc.compact()
        stop = asyncio.Event()
        runner = asyncio.create_task(informer.run(stop))
        await seen.wait_for(("add", "d", "1"))
        assert sorted(seen.events) == [
            ("add", "d", "1"),
            ("delete", "a", "1"),
            ("update", "b", "2"),
        ]
        assert informer.get("b", "watched")["data"] == {"v": "2"}  # type: ignore[index]
        assert informer.get("a", "watched") is None
        stop.set()
        await asyncio.wait_for(runner, TIMEOUT)


async def test_informer_resync_and_broken_handlers(inproc: InProcess) -> None:
    async with Client(load_kubeconfig(inproc.kubeconfig)) as client:
        await client.create(CONFIGMAPS, configmap("r", v="1"), "default")
        informer = Informer(client, CONFIGMAPS, "default", resync_period=0.3)
        seen = Recorder()

        def broken(obj: dict[str, Any]) -> None:
            raise RuntimeError("handler bug")

        informer.add_handlers(on_add=broken)  # must not stop the informer or other handlers
        informer.add_handlers(seen.add, seen.update, seen.delete)
        stop = asyncio.Event()
        runner = asyncio.create_task(informer.run(stop))
        await seen.wait_for(("add", "r", "1"))
        await seen.wait_for(("update", "r", "1"))  # a resync replays the cache
        stop.set()
        await asyncio.wait_for(runner, TIMEOUT)


async def test_bearer_token(inproc: InProcess, tmp_path: Path) -> None:
    inproc.tokens["good"] = admin_user()
    good = token_kubeconfig(inproc, tmp_path / "good", {"token": "good"})
    async with Client(load_kubeconfig(good)) as client:
        ns = await client.get(NAMESPACES, "default")
        assert ns["metadata"]["name"] == "default"
    bad = token_kubeconfig(inproc, tmp_path / "bad", {"token": "forged"})
    async with Client(load_kubeconfig(bad)) as client:
        with pytest.raises(ApiError) as err:
            await client.get(NAMESPACES, "default")
        assert err.value.code == 401


async def test_exec_plugin_token_is_refreshed_after_401(inproc: InProcess, tmp_path: Path) -> None:
    inproc.tokens["tok-1"] = admin_user()
    user = {
        "exec": {
            "apiVersion": "client.authentication.k8s.io/v1",
            "command": sys.executable,
            "args": [str(PLUGIN), str(tmp_path), "token"],
            "interactiveMode": "Never",
        }
    }
    config = load_kubeconfig(token_kubeconfig(inproc, tmp_path / "config", user))
    async with Client(config) as client:
        await client.get(NAMESPACES, "default")
        await client.get(NAMESPACES, "default")
        assert config.exec_plugin is not None and config.exec_plugin.runs == 1
        # The identity service revokes tok-1 and would accept the next one.
        del inproc.tokens["tok-1"]
        inproc.tokens["tok-2"] = admin_user()
        await client.get(NAMESPACES, "default")
        assert config.exec_plugin.runs == 2
        # A plugin answer that is rejected too ends in the 401.
        del inproc.tokens["tok-2"]
        with pytest.raises(ApiError) as err:
            await client.get(NAMESPACES, "default")
        assert err.value.code == 401 and config.exec_plugin.runs == 3


async def test_exec_plugin_client_certificate(inproc: InProcess, tmp_path: Path) -> None:
    data = inproc.server.config.data_dir
    (tmp_path / "client.crt").write_bytes((data / "admin.crt").read_bytes())
    (tmp_path / "client.key").write_bytes((data / "admin.key").read_bytes())
    user = {
        "exec": {
            "apiVersion": "client.authentication.k8s.io/v1beta1",
            "command": sys.executable,
            "args": [str(PLUGIN), str(tmp_path), "cert"],
        }
    }
    config = load_kubeconfig(token_kubeconfig(inproc, tmp_path / "config", user))
    async with Client(config) as client:
        assert (await client.get(NAMESPACES, "default"))["metadata"]["name"] == "default"
