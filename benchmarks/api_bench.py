"""Control-plane benchmark: the API server against its own limits, in one run.

For 1, 16 and 64 concurrent clients it measures creates/s and gets/s through
the full API (HTTPS, client-certificate auth, RBAC, validation, store), beside
two limits measured in the same run: the store alone (SQLite backend, no
HTTP) and the HTTP layer alone (the same aiohttp+TLS stack answering a fixed
body). Then the list of 10,000 objects and the watch delivery latency.

Run: .venv/bin/python benchmarks/api_bench.py [--quick]
Prints a Markdown table for docs/PERFORMANCE.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import ssl
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from serverproc import start_server

from hypernetes.store import SQLiteStore

CONCURRENCY = (1, 16, 64)


def _ssl(data: Path) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(data / "ca.crt"))
    ctx.load_cert_chain(data / "admin.crt", data / "admin.key")
    return ctx


async def _rate(n: int, concurrency: int, op) -> float:  # type: ignore[no-untyped-def]
    """Operations per second running `op(i)` for i < n with `concurrency` workers."""
    counter = iter(range(n))

    async def worker() -> None:
        for i in counter:
            await op(i)

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return n / (time.perf_counter() - start)


async def store_limits(tmp: Path, n: int) -> dict[int, tuple[float, float]]:
    out = {}
    for c in CONCURRENCY:
        store = SQLiteStore(tmp / f"store-{c}.db")
        value = json.dumps({"data": {"a": "b"}}).encode()
        creates = await _rate(n, c, lambda i, s=store, v=value: s.create(f"/registry/x/{i}", v))
        gets = await _rate(n, c, lambda i, s=store: s.get(f"/registry/x/{i}"))
        await store.close()
        out[c] = (creates, gets)
    return out


async def http_limits(data: Path, n: int) -> dict[int, float]:
    """Requests/s of the bare aiohttp+TLS stack answering a fixed body."""
    body = b'{"kind":"ConfigMap","apiVersion":"v1","metadata":{"name":"x"}}'

    async def handler(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(body=body, content_type="application/json")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(data / "ca.crt"))
    server_ctx.load_cert_chain(data / "apiserver.crt", data / "apiserver.key")
    server_ctx.verify_mode = ssl.CERT_OPTIONAL
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_ctx)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    out = {}
    try:
        for c in CONCURRENCY:
            conn = aiohttp.TCPConnector(ssl=_ssl(data), limit=c)
            async with aiohttp.ClientSession(connector=conn) as session:

                async def op(i: int) -> None:
                    async with session.get(f"https://127.0.0.1:{port}/x/{i}") as r:
                        await r.read()

                out[c] = await _rate(n, c, op)
    finally:
        await runner.cleanup()
    return out


async def api_rates(data: Path, url: str, n: int) -> dict[int, tuple[float, float]]:
    out = {}
    for c in CONCURRENCY:
        ns = f"bench-{c}"
        conn = aiohttp.TCPConnector(ssl=_ssl(data), limit=c)
        async with aiohttp.ClientSession(connector=conn) as session:
            await session.post(
                f"{url}/api/v1/namespaces",
                json={"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}},
            )
            base = f"{url}/api/v1/namespaces/{ns}/configmaps"

            async def create(i: int, base: str = base) -> None:
                async with session.post(
                    base,
                    json={
                        "apiVersion": "v1",
                        "kind": "ConfigMap",
                        "metadata": {"name": f"c{i}"},
                        "data": {"a": "b"},
                    },
                ) as r:
                    assert r.status == 201, await r.text()

            async def get(i: int, base: str = base) -> None:
                async with session.get(f"{base}/c{i}") as r:
                    assert r.status == 200, await r.text()

            out[c] = (await _rate(n, c, create), await _rate(n, c, get))
    return out


async def list_and_watch(data: Path, url: str, n_list: int, n_watch: int) -> dict[str, float]:
    conn = aiohttp.TCPConnector(ssl=_ssl(data), limit=32)
    async with aiohttp.ClientSession(connector=conn) as session:
        await session.post(
            f"{url}/api/v1/namespaces",
            json={"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "bench-list"}},
        )
        base = f"{url}/api/v1/namespaces/bench-list/configmaps"

        async def create(i: int) -> None:
            async with session.post(
                base,
                json={
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "metadata": {"name": f"l{i}"},
                    "data": {"a": "b"},
                },
            ) as r:
                assert r.status == 201

        await _rate(n_list, 32, create)
        times = []
        for _ in range(5):
            start = time.perf_counter()
            async with session.get(base) as r:
                items = (await r.json())["items"]
            times.append(time.perf_counter() - start)
            assert len(items) == n_list
        list_s = statistics.median(times)

        await session.post(
            f"{url}/api/v1/namespaces",
            json={"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "bench-watch"}},
        )
        wbase = f"{url}/api/v1/namespaces/bench-watch/configmaps"
        latencies = []
        async with session.get(wbase, params={"watch": "true", "resourceVersion": "1"}) as w:
            for i in range(n_watch):
                sent = time.perf_counter()
                async with session.post(
                    wbase,
                    json={"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"w{i}"}},
                ) as r:
                    assert r.status == 201
                while True:
                    line = await w.content.readline()
                    event = json.loads(line)
                    if event["object"]["metadata"]["name"] == f"w{i}":
                        break
                latencies.append(time.perf_counter() - sent)
        latencies.sort()
    return {
        "list_s": list_s,
        "watch_p50": latencies[len(latencies) // 2],
        "watch_p99": latencies[int(len(latencies) * 0.99) - 1],
    }


async def main(quick: bool) -> None:
    n = 500 if quick else 3000
    n_list = 2000 if quick else 10_000
    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        data = tmp / "data"
        proc, url = start_server(data, "--no-controllers")
        try:
            store = await store_limits(tmp, n)
            http = await http_limits(data, n)
            api = await api_rates(data, url, n)
            lw = await list_and_watch(data, url, n_list, 200 if quick else 1000)
        finally:
            proc.terminate()
            proc.wait()
    print(
        "| clients | API creates/s | store creates/s | API gets/s | store gets/s "
        "| bare HTTPS req/s | API/HTTP (gets) |"
    )
    print("|---|---|---|---|---|---|---|")
    for c in CONCURRENCY:
        print(
            f"| {c} | {api[c][0]:.0f} | {store[c][0]:.0f} | {api[c][1]:.0f} | {store[c][1]:.0f}"
            f" | {http[c]:.0f} | {api[c][1] / http[c]:.2f} |"
        )
    print(f"\nlist of {n_list} objects: median {lw['list_s'] * 1000:.0f} ms")
    print(
        f"watch delivery latency: p50 {lw['watch_p50'] * 1000:.1f} ms, "
        f"p99 {lw['watch_p99'] * 1000:.1f} ms"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller counts, for a smoke run")
    asyncio.run(main(parser.parse_args().quick))
