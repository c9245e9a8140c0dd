"""Helpers for the network tests that need the API server: an in-process server, clients.

The server runs in the test's process so a test can register bearer tokens
for tenant principals (the seam the identity service plugs into; the users
are what the identity service's authenticator would produce). Nothing else
is faked: requests go over HTTPS through the real admission, RBAC and store.
No controllers run unless a test starts them.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.controllers.conftest import eventually

from hypernetes.client import NAMESPACES, PODS, TENANTS, Client, Config, load_kubeconfig
from hypernetes.controllers import Controller
from hypernetes.network import resource as net

TIMEOUT = 30.0


@dataclass
class InProcess:
    server: Any
    kubeconfig: Path
    tokens: dict[str, Any] = field(default_factory=dict)
    clients: list[Client] = field(default_factory=list)

    def admin(self) -> Client:
        c = Client(load_kubeconfig(self.kubeconfig))
        self.clients.append(c)
        return c

    def tenant_user(self, name: str, tenant: str) -> Client:
        """A client for a tenant principal, as the identity authenticator maps one."""
        from hypernetes.api.auth import User

        token = uuid.uuid4().hex
        group = f"hypernetes:tenant:{tenant}"
        self.tokens[token] = User(
            name,
            ("system:authenticated", group, f"{group}:admin"),
            extra={net.TENANT_EXTRA: (tenant,)},
        )
        admin = load_kubeconfig(self.kubeconfig)
        c = Client(Config(server=admin.server, ca_pem=admin.ca_pem, token=token))
        self.clients.append(c)
        return c


@contextlib.asynccontextmanager
async def in_process_server(data: Path) -> AsyncIterator[InProcess]:
    from hypernetes.api.auth import Authenticator
    from hypernetes.api.server import Server, ServerConfig

    tokens: dict[str, Any] = {}

    async def by_token(token: str) -> Any:
        return tokens.get(token)

    authenticator = Authenticator()
    authenticator.token_authenticators.append(by_token)
    server = Server(ServerConfig(data, "127.0.0.1", 0), authenticator=authenticator)
    await server.start()
    inproc = InProcess(server, server.admin_kubeconfig, tokens)
    try:
        yield inproc
    finally:
        for c in inproc.clients:
            await c.close()
        await server.stop()


async def grant_networks(admin: Client, tenant: str) -> None:
    """RBAC for a tenant's principals on networks and pods (what tenancy will grant)."""
    from hypernetes.client import Resource

    roles = Resource("rbac.authorization.k8s.io", "v1", "clusterroles", False, "ClusterRole")
    bindings = Resource(
        "rbac.authorization.k8s.io", "v1", "clusterrolebindings", False, "ClusterRoleBinding"
    )
    name = f"net-{tenant}"
    await admin.create(
        roles,
        {
            "metadata": {"name": name},
            "rules": [
                {
                    "apiGroups": ["hypernetes.io"],
                    "resources": ["networks", "networks/status"],
                    "verbs": ["*"],
                },
                {"apiGroups": [""], "resources": ["pods"], "verbs": ["*"]},
            ],
        },
    )
    await admin.create(
        bindings,
        {
            "metadata": {"name": name},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                        "name": name},
            "subjects": [{"kind": "Group", "apiGroup": "rbac.authorization.k8s.io",
                          "name": f"hypernetes:tenant:{tenant}"}],
        },
    )  # fmt: skip


async def make_tenant(admin: Client, tenant: str) -> None:
    await admin.create(TENANTS, {"metadata": {"name": tenant}, "spec": {}})


async def make_namespace(admin: Client, name: str, tenant: str | None) -> None:
    labels = {net.TENANT_LABEL: tenant} if tenant else {}
    await admin.create(NAMESPACES, {"metadata": {"name": name, "labels": labels}})


def network(name: str, cidr: str, tenant: str | None = None, **spec: str) -> dict[str, Any]:
    body: dict[str, Any] = {"cidr": cidr, **spec}
    if tenant is not None:
        body["tenant"] = tenant
    return {"apiVersion": "hypernetes.io/v1", "kind": "Network", "metadata": {"name": name},
            "spec": body}  # fmt: skip


def pod(name: str, *, network: str | None = None, node: str | None = None,
        tenant: str | None = None) -> dict[str, Any]:  # fmt: skip
    meta: dict[str, Any] = {"name": name}
    if network:
        meta["annotations"] = {net.NETWORK_ANNOTATION: network}
    if tenant:
        meta["labels"] = {net.TENANT_LABEL: tenant}
    spec: dict[str, Any] = {"containers": [{"name": "c", "image": "registry.local/pause"}]}
    if node:
        spec["nodeName"] = node
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec}


async def create_pod(admin: Client, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
    return await admin.create(PODS, body, namespace)


class ThreadedAPI:
    """An in-process server on an event loop thread, for synchronous tests (netns work
    runs pyroute2, which cannot run inside a running event loop)."""

    def __init__(self, data: Path) -> None:
        from hypernetes.network.ipam_store import LoopThread

        self.thread = LoopThread()
        self._cm = in_process_server(data)
        self.inproc: InProcess = self.thread.run(self._cm.__aenter__())
        self.admin = self.inproc.admin()
        self._controllers: list[tuple[asyncio.Event, Any]] = []

    def run(self, coro: Any, timeout: float = 60.0) -> Any:
        return self.thread.run(coro, timeout)

    def start(self, controller: Controller) -> None:
        """Run a controller on the server's loop until `close`; return once it is synced."""
        stop = asyncio.Event()
        future = asyncio.run_coroutine_threadsafe(controller.run(stop), self.thread.loop)
        self._controllers.append((stop, future))

        async def synced() -> bool:
            if future.done():
                future.result()
            return (
                controller.running
                and bool(controller.informers)
                and all(i.has_synced for i in controller.informers)
            )

        self.run(eventually(synced, "the controller's caches to sync"))

    def eventually(self, check: Callable[[], Awaitable[Any]], what: str) -> Any:
        return self.run(eventually(check, what, TIMEOUT), TIMEOUT + 5)

    def close(self) -> None:
        for stop, future in self._controllers:
            self.thread.loop.call_soon_threadsafe(stop.set)
            future.result(TIMEOUT)
        self.run(self._cm.__aexit__(None, None, None))
        self.thread.close()
