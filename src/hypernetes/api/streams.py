"""Pod streams through the API server: pods/log, pods/exec and pods/attach.

The request has been authenticated and authorized like any other (get on
pods/log; create on pods/exec and pods/attach, also when kubectl opens them
with a GET upgrade). Here the server finds the pod's node, and proxies to
that node agent's stream server (hypernetes/node/streams.py), presenting a
client certificate the server issues to itself from the cluster CA: the
agent accepts no one else. The agent in turn proves it is the pod's node:
its serving certificate names the node and is signed by a CA only this
server trusts (`node-serving-ca`, signed at join time). exec and attach are WebSockets
(`v5.channel.k8s.io`, which kubectl asks for first, and `v4.channel.k8s.io`,
which the Python client uses); messages are relayed unchanged both ways.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import aiohttp
from aiohttp import WSMsgType, web

from hypernetes.api import errors, pki
from hypernetes.api.request import Target

if TYPE_CHECKING:
    from hypernetes.api.rest import ResourceAPI

STREAM_CLIENT = "system:hypernetes:apiserver-stream-client"
"""= hypernetes.node.streams.STREAM_CLIENT (kept here: api does not import node)."""
PROTOCOLS = ("v5.channel.k8s.io", "v4.channel.k8s.io")
_LOG_PARAMS = ("follow", "previous", "tailLines", "sinceSeconds", "sinceTime", "timestamps",
               "limitBytes")  # fmt: skip


SERVING_CA = "node-serving-ca"
"""DIR/<this>.crt|.key: the CA of agents' serving certificates. Only this server trusts
it (for agents), so a node's certificate is good for nothing else."""


@dataclass
class StreamProxy:
    """How the server reaches node agents: its client certificate, and the CA that
    signed the agents' serving certificates (each names its node)."""

    cert: Path
    key: Path
    serving_ca: Path

    def ssl_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.serving_ca))
        ctx.load_cert_chain(self.cert, self.key)
        return ctx


_PROXIES: weakref.WeakKeyDictionary[ResourceAPI, StreamProxy] = weakref.WeakKeyDictionary()


def install(api: ResourceAPI, data_dir: Path) -> None:
    """Give the server its stream client certificate (once) and enable the streams."""
    crt, key = data_dir / "stream-client.crt", data_dir / "stream-client.key"
    if not crt.exists():
        ca = pki.read_pair(data_dir / "ca.crt", data_dir / "ca.key")
        pki.write_pair(pki.issue(ca, STREAM_CLIENT, client=True), crt, key)
    serving_crt = data_dir / f"{SERVING_CA}.crt"
    if not serving_crt.exists():
        pki.write_pair(pki.create_ca("hypernetes-node-serving-ca"), serving_crt,
                       data_dir / f"{SERVING_CA}.key")  # fmt: skip
    _PROXIES[api] = StreamProxy(crt, key, serving_crt)


async def serve(api: ResourceAPI, request: web.Request, target: Target) -> web.StreamResponse:
    proxy = _PROXIES.get(api)
    if proxy is None:
        raise errors.method_not_allowed(f"{target.subresource} is not served")
    sub = target.subresource
    if sub == "log" and request.method != "GET":
        raise errors.method_not_allowed()
    if sub in ("exec", "attach") and request.method not in ("GET", "POST"):
        raise errors.method_not_allowed()
    pod = await api.objects.get(target.rt, target.namespace, target.name or "")
    container = _container(pod, request.query.get("container"), sub)
    _check_started(pod, container, previous=request.query.get("previous") in ("true", "1"))
    base = await _agent_url(api, pod)
    node = str(pod["spec"]["nodeName"])
    ns, name = quote(pod["metadata"]["namespace"]), quote(pod["metadata"]["name"])
    path = {"log": "containerLogs", "exec": "exec", "attach": "attach"}[sub]
    url = f"{base}/{path}/{ns}/{name}/{quote(container)}"
    if sub == "log":
        params = [(k, v) for k, v in request.query.items() if k in _LOG_PARAMS]
        return await _proxy_log(proxy, request, url, params, node)
    if request.headers.get("Upgrade", "").lower() != "websocket":
        raise errors.bad_request(
            f"{sub} needs a WebSocket upgrade ({', '.join(PROTOCOLS)}); SPDY is not served"
        )
    params = [(k, v) for k, v in request.query.items() if k != "container"]
    return await _proxy_ws(proxy, request, url, params, node)


def _container(pod: dict[str, Any], wanted: str | None, sub: str) -> str:
    spec = pod.get("spec") or {}
    names = [c["name"] for c in (spec.get("containers") or [])]
    names_all = names + [c["name"] for c in (spec.get("initContainers") or [])]
    pod_name = pod["metadata"]["name"]
    if wanted:
        if wanted not in names_all:
            raise errors.bad_request(f"container {wanted} is not valid for pod {pod_name}")
        return wanted
    default = (pod["metadata"].get("annotations") or {}).get(
        "kubectl.kubernetes.io/default-container"
    )
    if default in names:
        return str(default)
    if len(names) == 1 or (names and sub != "log"):
        return names[0]
    raise errors.bad_request(
        f"a container name must be specified for pod {pod_name}, choose one of: [{' '.join(names)}]"
    )


def _check_started(pod: dict[str, Any], container: str, previous: bool) -> None:
    """A container that never started has no logs and runs no exec: say why, as kube does."""
    status = pod.get("status") or {}
    for cs in (status.get("containerStatuses") or []) + (status.get("initContainerStatuses") or []):
        if cs.get("name") != container or previous:
            continue
        waiting = (cs.get("state") or {}).get("waiting")
        if waiting is not None and not cs.get("containerID"):
            raise errors.bad_request(
                f'container "{container}" in pod "{pod["metadata"]["name"]}" is waiting to '
                f"start: {waiting.get('reason') or 'ContainerCreating'}"
            )


async def _agent_url(api: ResourceAPI, pod: dict[str, Any]) -> str:
    node_name = (pod.get("spec") or {}).get("nodeName")
    if not node_name:
        raise errors.bad_request(f"pod {pod['metadata']['name']} does not have a host assigned")
    rt = api.registry.get("", "v1", "nodes")
    assert rt is not None
    node = await api.objects.find(rt, None, node_name)
    status = (node or {}).get("status") or {}
    port = ((status.get("daemonEndpoints") or {}).get("kubeletEndpoint") or {}).get("Port")
    addresses = {a.get("type"): a.get("address") for a in status.get("addresses") or []}
    host = addresses.get("InternalIP") or addresses.get("Hostname")
    if not port or not host:
        raise errors.APIError(
            503, "ServiceUnavailable", f"node {node_name} does not serve pod streams"
        )
    if ":" in host:
        host = f"[{host}]"
    return f"https://{host}:{port}"


async def _upstream_error(response: aiohttp.ClientResponse) -> errors.APIError:
    try:
        body = await response.json(content_type=None)
        return errors.APIError(response.status, body.get("reason", ""), body.get("message", ""))
    except (ValueError, aiohttp.ClientError):
        return errors.APIError(response.status, "InternalError", await response.text())


def _session(proxy: StreamProxy) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(ssl=proxy.ssl_context()),
        timeout=aiohttp.ClientTimeout(total=None, sock_connect=10),
    )


def _unreachable(exc: Exception) -> errors.APIError:
    return errors.APIError(502, "ServiceUnavailable", f"cannot reach the node agent: {exc}")


async def _proxy_log(
    proxy: StreamProxy, request: web.Request, url: str, params: list[tuple[str, str]], node: str
) -> web.StreamResponse:
    async with _session(proxy) as session:
        try:
            # The agent must prove it is that node: its certificate names it.
            upstream = await session.get(url, params=params, server_hostname=node)
        except (aiohttp.ClientError, OSError) as exc:
            raise _unreachable(exc) from None
        async with upstream:
            if upstream.status != 200:
                raise await _upstream_error(upstream)
            response = web.StreamResponse(headers={"Content-Type": "text/plain"})
            await response.prepare(request)
            with contextlib.suppress(ConnectionResetError, aiohttp.ClientError):
                async for chunk in upstream.content.iter_any():
                    await response.write(chunk)
            with contextlib.suppress(ConnectionResetError):
                await response.write_eof()
            return response


def _negotiate(request: web.Request) -> str:
    offered = [p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",") if p]
    for p in offered:
        if p in PROTOCOLS:
            return p
    raise errors.bad_request(
        f"unsupported stream protocols {offered}: this server speaks {', '.join(PROTOCOLS)}"
    )


async def _proxy_ws(
    proxy: StreamProxy, request: web.Request, url: str, params: list[tuple[str, str]], node: str
) -> web.StreamResponse:
    protocol = _negotiate(request)
    async with _session(proxy) as session:
        try:
            upstream = await session.ws_connect(
                url, params=params, protocols=(protocol,), max_msg_size=0, server_hostname=node
            )
        except aiohttp.WSServerHandshakeError as exc:
            raise errors.APIError(exc.status or 502, "BadRequest", exc.message) from None
        except (aiohttp.ClientError, OSError) as exc:
            raise _unreachable(exc) from None
        async with upstream:
            client = web.WebSocketResponse(protocols=(protocol,), max_msg_size=0)
            await client.prepare(request)
            await _relay(client, upstream)
            return client


async def _relay(client: web.WebSocketResponse, upstream: aiohttp.ClientWebSocketResponse) -> None:
    async def down() -> None:
        async for msg in upstream:
            if msg.type == WSMsgType.BINARY:
                await client.send_bytes(msg.data)
            elif msg.type == WSMsgType.TEXT:
                await client.send_str(msg.data)

    async def up() -> None:
        async for msg in client:
            if msg.type == WSMsgType.BINARY:
                await upstream.send_bytes(msg.data)
            elif msg.type == WSMsgType.TEXT:
                await upstream.send_str(msg.data)

    tasks = [asyncio.create_task(down()), asyncio.create_task(up())]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        if tasks[1] in done and not tasks[0].done():
            # The client went away (or closed its side): give the agent a moment to
            # finish, then hang up.
            await asyncio.wait({tasks[0]}, timeout=1)
    finally:
        for t in tasks:
            t.cancel()
        with contextlib.suppress(ConnectionResetError):
            await upstream.close()
            await client.close()
