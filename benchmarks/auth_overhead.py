"""Authentication + authorization cost per request, identity token beside admin certificate.

Run: .venv/bin/python benchmarks/auth_overhead.py [--requests N] [--bindings N]

An in-process API server on a temporary SQLite store, with `--bindings`
RoleBindings (default 1,000) spread over 100 namespaces, plus the one that
lets the tenant user read ConfigMaps in the benchmark namespace. Measured in
the same run, interleaved in blocks so drift hits both alike:

- end to end over HTTPS with keep-alive, one GET of one ConfigMap:
  (a) the platform admin's client certificate — the baseline: the TLS layer
      verifies the certificate once per connection and `system:masters` needs
      no RBAC lookup;
  (b) a tenant user's identity bearer token — Fernet decryption and store
      reads per request, the tenant boundary, RBAC over the bindings.
- the authentication + authorization step alone for (b): token -> User, the
  boundary check and the RBAC verdict, without HTTP.

The token path is measured as served (validated-token cache and RBAC verdict
cache, both exact: see `hypernetes.auth.tokencache` and `decisioncache`) and
with the token cache bypassed, i.e. what a cache miss costs (the first
request of a token, or any request after an identity change).

Both paths also write the audit log (one line per decision), as in production.
Reports p50 and p99 (ms) and the overhead of (b) over (a) at p50.
"""

from __future__ import annotations

import argparse
import asyncio
import ssl
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp

from hypernetes.api.server import Server, ServerConfig
from hypernetes.auth.identity.kube import TokenAuthenticator
from hypernetes.auth.principal import Attributes

NAMESPACE = "bench"
TENANT = "bench-acme"
BLOCK = 100


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def populate(server: Server, bindings: int) -> None:
    objects, registry = server.objects, server.registry
    assert objects is not None
    ns_rt = registry.get("", "v1", "namespaces")
    rb_rt = registry.get("rbac.authorization.k8s.io", "v1", "rolebindings")
    cm_rt = registry.get("", "v1", "configmaps")
    assert ns_rt is not None and rb_rt is not None and cm_rt is not None
    names = [NAMESPACE, *(f"bench-{i}" for i in range(100))]
    for name in names:
        labels = {"hypernetes.io/tenant": TENANT}
        await objects.create(ns_rt, {"apiVersion": "v1", "kind": "Namespace",
                                     "metadata": {"name": name, "labels": labels},
                                     "spec": {"finalizers": ["kubernetes"]},
                                     "status": {"phase": "Active"}})  # fmt: skip
    for i in range(bindings):
        ns = names[1 + i % 100]
        await objects.create(rb_rt, binding(ns, f"rb-{i}", f"user-{i}"))
    await objects.create(rb_rt, binding(NAMESPACE, "alice-view", "alice"))
    await objects.create(cm_rt, {"apiVersion": "v1", "kind": "ConfigMap",
                                 "metadata": {"name": "cm", "namespace": NAMESPACE},
                                 "data": {"k": "v"}})  # fmt: skip
    for follower in server.rbac.followers:
        await follower.sync()
    await server.boundary.namespaces.sync()


def binding(namespace: str, name: str, user: str) -> dict[str, Any]:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": name, "namespace": namespace},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                    "name": "view"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}],
    }  # fmt: skip


async def timed(action: Callable[[], Awaitable[object]], out: list[float], n: int) -> None:
    for _ in range(n):
        start = time.perf_counter()
        await action()
        out.append((time.perf_counter() - start) * 1000)


async def main(requests: int, bindings: int) -> None:
    with tempfile.TemporaryDirectory(prefix="hn-auth-bench-") as tmp:
        data = Path(tmp) / "data"
        server = Server(ServerConfig(data, "127.0.0.1", 0))
        await server.start()
        try:
            await run(server, data, requests, bindings)
        finally:
            await server.stop()


async def run(server: Server, data: Path, requests: int, bindings: int) -> None:
    await populate(server, bindings)
    identity = server.identity
    project = await identity.create_project(TENANT)
    user = await identity.create_user("alice", "alice-bench-pw1")
    await identity.assign_role(project.id, user.id, "member")
    token, _ = await identity.authenticate("alice", "alice-bench-pw1", TENANT)

    tls = ssl.create_default_context(cafile=str(data / "ca.crt"))
    admin_tls = ssl.create_default_context(cafile=str(data / "ca.crt"))
    admin_tls.load_cert_chain(data / "admin.crt", data / "admin.key")
    url = f"{server.url}/api/v1/namespaces/{NAMESPACE}/configmaps/cm"

    async with (
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=admin_tls, limit=1)) as admin,
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=tls, limit=1)) as tenant,
    ):

        async def by_certificate() -> None:
            async with admin.get(url) as response:
                assert response.status == 200, await response.text()
                await response.read()

        async def by_token() -> None:
            headers = {"Authorization": f"Bearer {token}"}
            async with tenant.get(url, headers=headers) as response:
                assert response.status == 200, await response.text()
                await response.read()

        authenticate = TokenAuthenticator(identity)
        attrs = Attributes(verb="get", resource="configmaps", namespace=NAMESPACE, name="cm",
                           path=f"/api/v1/namespaces/{NAMESPACE}/configmaps/cm")  # fmt: skip
        rt = server.registry.get("", "v1", "configmaps")
        assert server.authorizer is not None
        authorizer = server.authorizer

        async def decide() -> None:  # as the server does it: both caches
            who = await server.identity_tokens(token)
            assert who is not None
            await server.boundary.check(who, attrs, rt)
            assert await authorizer(who, attrs)

        async def decide_uncached() -> None:  # every token validated, RBAC walked
            who = await authenticate(token)
            assert who is not None
            await server.boundary.check(who, attrs, rt)
            assert server.rbac.rbac.allowed(who, attrs)

        async def by_token_uncached() -> None:
            server.identity_tokens.live = False  # the cache is bypassed while not live
            try:
                await by_token()
            finally:
                server.identity_tokens.live = True

        for warm in (by_certificate, by_token, decide, decide_uncached, by_token_uncached):
            await timed(warm, [], 50)
        assert server.identity_tokens.live, "the token cache's watch runs"
        cert, tok, tok_miss, step, step_miss = [], [], [], [], []  # type: ignore[var-annotated]
        for _ in range(max(1, requests // BLOCK)):
            await timed(by_certificate, cert, BLOCK)
            await timed(by_token, tok, BLOCK)
            await timed(by_token_uncached, tok_miss, BLOCK)
            await timed(decide, step, BLOCK)
            await timed(decide_uncached, step_miss, BLOCK)

    def row(name: str, samples: list[float]) -> str:
        return (f"| {name} | {statistics.median(samples):.3f} | {percentile(samples, 0.99):.3f} "
                f"| {len(samples)} |")  # fmt: skip

    print(f"RoleBindings in the store: {bindings + 1}; requests per path: {len(cert)}")
    print("| path | p50 ms | p99 ms | n |")
    print("|---|---|---|---|")
    print(row("GET configmap, admin client certificate (baseline)", cert))
    print(row("GET configmap, tenant identity token", tok))
    print(row("GET configmap, tenant identity token, token cache bypassed", tok_miss))
    print(row("authn + boundary + RBAC alone (token path, no HTTP)", step))
    print(row("authn + boundary + RBAC alone, no caches", step_miss))
    p50_overhead = statistics.median(tok) / statistics.median(cert) - 1
    p99_overhead = percentile(tok, 0.99) / percentile(cert, 0.99) - 1
    print(f"token path overhead over the certificate path: p50 {p50_overhead:+.1%}, "
          f"p99 {p99_overhead:+.1%}")  # fmt: skip
    miss = statistics.median(tok_miss) / statistics.median(cert) - 1
    print(f"with the token cache bypassed (each request a miss): p50 {miss:+.1%}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--bindings", type=int, default=1000)
    args = parser.parse_args()
    asyncio.run(main(args.requests, args.bindings))
