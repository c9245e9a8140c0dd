"""The API server: HTTPS, authentication, routing and the server's own lifecycle.

`Server` owns the store, the registry of served kinds and the aiohttp
application. On start it makes (once) the cluster CA and certificates under
the data dir, creates the built-in namespaces, and writes
`admin.kubeconfig` before it reports ready.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import secrets
import socket
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web

from hypernetes import __version__
from hypernetes.api import (
    audit,
    discovery,
    errors,
    nodes,
    openapi,
    pki,
    serviceaccounts,
    streams,
)
from hypernetes.api.admission import limitrange, namespace_lifecycle, podsecurity, quota
from hypernetes.api.admission.network import network_admission
from hypernetes.api.auth import Attributes, Authenticator, Authorizer, User
from hypernetes.api.authorization import RBACAuthorizer, Reviews, escalation_check
from hypernetes.api.boundary import install_tenancy
from hypernetes.api.crds import CRDFollower
from hypernetes.api.objects import Objects
from hypernetes.api.request import Target
from hypernetes.api.rest import ResourceAPI
from hypernetes.auth.identity import IdentityService, build_app
from hypernetes.auth.identity.errors import BadRequest as IdentityBadRequest
from hypernetes.auth.tokencache import CachedIdentityAuthenticator
from hypernetes.resources.registry import Registry
from hypernetes.resources.schema import KUBERNETES_VERSION
from hypernetes.store import SQLiteStore, Store

log = logging.getLogger(__name__)

BUILTIN_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
SHUTDOWN_GRACE = 2.0
"""Seconds in-flight requests get to finish when the server stops."""
COMPACT_INTERVAL = 300.0
"""Seconds between compactions; each keeps the history of the last interval, as kube."""

_VERBS = {"GET": "get", "POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}


@dataclass
class ServerConfig:
    data_dir: Path
    host: str = "127.0.0.1"
    port: int = 6443
    extra_names: tuple[str, ...] = ()
    """More host names or addresses for the serving certificate."""
    compact_interval: float = COMPACT_INTERVAL
    store: Store | None = None
    """A store to use instead of the embedded SQLite file (tests, etcd)."""


@dataclass
class Server:
    config: ServerConfig
    registry: Registry = field(default_factory=Registry)
    authenticator: Authenticator = field(default_factory=Authenticator)
    authorizer: Authorizer | None = None
    """Defaults to RBAC (with the platform admin allowed everything)."""
    background: list[Callable[[Server], Awaitable[None]]] = field(default_factory=list)
    """Coroutines started with the server and cancelled when it stops."""

    def __post_init__(self) -> None:
        self.store: Store | None = None
        self.objects: Objects | None = None
        self.api: ResourceAPI | None = None
        self.runner: web.AppRunner | None = None
        self.port = self.config.port
        self._tasks: list[asyncio.Task[None]] = []
        self.openapi = openapi.OpenAPICache(self.registry)

    @property
    def url(self) -> str:
        return f"https://{self.config.host}:{self.port}"

    @property
    def admin_kubeconfig(self) -> Path:
        return self.config.data_dir / "admin.kubeconfig"

    async def start(self) -> None:
        data = self.config.data_dir
        data.mkdir(parents=True, exist_ok=True)
        data.chmod(0o700)
        self.store = self.config.store or SQLiteStore(data / "state.db")
        self.objects = Objects(self.store)
        self.api = ResourceAPI(self.objects, self.registry)
        self.api.admission.append(namespace_lifecycle(self.objects, self.registry))
        rbac = RBACAuthorizer(self.objects, self.registry)
        await rbac.bootstrap()
        self.rbac = rbac
        if self.authorizer is None:
            self.authorizer = rbac
        self.api.admission.append(escalation_check(rbac))
        reviews = Reviews(rbac, decide=self._decide)
        for kind in (
            "SelfSubjectAccessReview",
            "SelfSubjectRulesReview",
            "SubjectAccessReview",
            "LocalSubjectAccessReview",
        ):
            self.api.computed[kind] = functools.partial(reviews.review, kind)
        await self._bootstrap_namespaces()
        self.crds = CRDFollower(self.objects, self.registry)
        await self.crds.sync()
        tls = prepare_pki(
            data,
            (
                self.config.host,
                "localhost",
                "127.0.0.1",
                socket.gethostname(),
                *self.config.extra_names,
            ),
        )
        self.identity = IdentityService(self.store, data)
        try:
            await self.identity.bootstrap(None)
        except IdentityBadRequest:
            # First start: the identity admin gets a random password nobody knows (and
            # nothing stores); the platform admin works with the client certificate.
            await self.identity.bootstrap(secrets.token_urlsafe(32))
        # Identity tokens, validated through a cache that a store watch keeps exact.
        self.identity_tokens = CachedIdentityAuthenticator(self.identity, self.store)
        self.authenticator.token_authenticators.append(self.identity_tokens)
        self.background.append(lambda _server: self.identity_tokens.follow())
        await self._install_platform()
        app = web.Application(client_max_size=4 * 1024 * 1024, middlewares=[self._middleware])
        # The identity API authenticates its own requests (X-Auth-Token), as Keystone does.
        app.add_subapp("/identity", build_app(self.identity))
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        # Watches and streams never finish by themselves: on stop, give requests a
        # moment, then cancel them (clients re-list and re-watch, as from kube).
        self.runner = web.AppRunner(
            app, handler_cancellation=True, access_log=None, shutdown_timeout=SHUTDOWN_GRACE
        )
        await self.runner.setup()
        site = web.TCPSite(self.runner, self.config.host, self.config.port, ssl_context=tls)
        await site.start()
        if self.config.port == 0:
            self.port = _bound_port(site)
        self._tasks = [asyncio.create_task(self._compactor()), asyncio.create_task(self.crds.run())]
        self._tasks += [asyncio.create_task(f.run()) for f in rbac.followers]
        self._tasks.append(asyncio.create_task(self.identity.run_maintenance()))
        self._tasks += [asyncio.ensure_future(job(self)) for job in self.background]
        write_kubeconfig(
            self.admin_kubeconfig,
            self.url,
            data / "ca.crt",
            data / "admin.crt",
            data / "admin.key",
            user="admin",
        )
        log.info("serving on %s; admin kubeconfig %s", self.url, self.admin_kubeconfig)

    async def _decide(self, user: User, attrs: Attributes) -> bool:
        """The authorizer chain as it stands (platform layers wrap RBAC at start-up)."""
        assert self.authorizer is not None
        return await self.authorizer(user, attrs)

    async def _install_platform(self) -> None:
        """Install the platform's policy layers: each registers its admission hooks,
        list scopes, computed kinds, authenticators and background jobs on `self`.

        Order matters: the tenant boundary and ownership labels come first (the later
        layers read the owning tenant); quota is the last admission hook, so that
        nothing refuses a request after it has been charged; the audit gate wraps
        authentication and authorization once every authenticator is registered.
        """
        assert self.api is not None and self.objects is not None
        assert self.authorizer is not None
        self.boundary = await install_tenancy(self)
        streams.install(self.api, self.config.data_dir)  # pods/log, exec, attach via agents
        self.api.admission += [
            network_admission(self.objects, self.registry),
            limitrange.limit_ranger(self.objects, self.registry),
            podsecurity.tenant_pod_security(self.objects, self.registry),
        ]
        self.authorizer = quota.guard_quota_writes(self.authorizer, self.objects, self.registry)
        await serviceaccounts.install(self)  # SA tokens: TokenRequest + authenticator
        await nodes.install(self)  # join tokens, node credentials, node authorizer
        self.api.admission.append(quota.quota_admission(self.objects, self.registry))
        self.gate = audit.install(self)  # authn (+ impersonation) and authz, audited

    def issue_kubeconfig(self, name: str, user: str, groups: tuple[str, ...]) -> Path:
        """Write `DIR/<name>.kubeconfig` with a client certificate for `user` in `groups`."""
        data = self.config.data_dir
        ca = pki.read_pair(data / "ca.crt", data / "ca.key")
        crt, key = data / f"{name}.crt", data / f"{name}.key"
        pki.write_pair(pki.issue(ca, user, organisations=groups, client=True), crt, key)
        path = data / f"{name}.kubeconfig"
        write_kubeconfig(path, self.url, data / "ca.crt", crt, key, user=user)
        return path

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self.runner is not None:
            await self.runner.cleanup()
        if self.store is not None:
            await self.store.close()

    async def _bootstrap_namespaces(self) -> None:
        assert self.objects is not None
        rt = self.registry.get("", "v1", "namespaces")
        assert rt is not None
        for name in BUILTIN_NAMESPACES:
            if await self.objects.find(rt, None, name) is None:
                obj = {
                    "apiVersion": "v1",
                    "kind": "Namespace",
                    "metadata": {"name": name},
                    "spec": {"finalizers": ["kubernetes"]},
                    "status": {"phase": "Active"},
                }
                with contextlib.suppress(errors.APIError):
                    await self.objects.create(rt, obj)

    async def _compactor(self) -> None:
        assert self.store is not None
        previous = 0
        while True:
            await asyncio.sleep(self.config.compact_interval)
            if previous > await self.store.compacted_revision():
                with contextlib.suppress(Exception):
                    await self.store.compact(previous)
            previous = await self.store.current_revision()

    # -- request handling ----------------------------------------------------

    @web.middleware
    async def _middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        try:
            return await handler(request)
        except errors.APIError as exc:
            return web.json_response(exc.status(), status=exc.code)
        except web.HTTPException:
            raise
        except (asyncio.CancelledError, ConnectionResetError):
            raise
        except Exception as exc:
            log.exception("internal error serving %s %s", request.method, request.path)
            err = errors.internal(type(exc).__name__)
            return web.json_response(err.status(), status=err.code)

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        if path in ("/healthz", "/livez", "/readyz"):
            return web.Response(text="ok")
        # Authentication, impersonation, authorization; every decision audited.
        _user, target = await self.gate.admit(request, self._authorize)
        if target is not None:
            assert self.api is not None
            return await self.api.handle(request, target)
        if request.method != "GET":
            raise errors.method_not_allowed()
        return self._non_resource(request, path)

    async def _authorize(self, request: web.Request, user: User, target: Target | None) -> None:
        verb = _VERBS.get(request.method, request.method.lower())
        if target is None:
            attrs = Attributes(verb=verb, path=request.path)
        else:
            if request.method == "GET" and target.is_collection:
                verb = "watch" if request.query.get("watch") in ("true", "1") else "list"
            elif request.method == "DELETE" and target.is_collection:
                verb = "deletecollection"
            elif request.method == "GET" and target.subresource in ("exec", "attach"):
                verb = "create"  # kubectl opens exec/attach with a GET upgrade; kube says create
            attrs = Attributes(
                verb=verb,
                group=target.rt.group,
                resource=target.rt.plural,
                subresource=target.subresource,
                namespace=target.namespace or "",
                name=target.name or "",
                path=request.path,
            )
        # The tenant boundary holds whatever RBAC says (no binding can widen it).
        if await self.boundary.check(user, attrs, target.rt if target is not None else None):
            return  # a tenant's list across namespaces: RBAC judges each namespace's objects
        assert self.authorizer is not None
        if not await self.authorizer(user, attrs):
            what = f"{attrs.resource}{'/' + attrs.subresource if attrs.subresource else ''}"
            where = f' in the namespace "{attrs.namespace}"' if attrs.namespace else ""
            if target is None:
                message = f'forbidden: User "{user.name}" cannot {verb} path "{request.path}"'
            else:
                scope = f'"{what}" in API group "{attrs.group}"{where}'
                if not attrs.namespace:
                    scope += " at the cluster scope"
                named = f' "{attrs.name}"' if attrs.name else ""
                message = (
                    f'{attrs.resource}{named} is forbidden: User "{user.name}" cannot {verb} '
                    f"resource {scope}"
                )
            raise errors.forbidden(message)

    def _non_resource(self, request: web.Request, path: str) -> web.StreamResponse:
        accept = request.headers.get("Accept", "")
        aggregated = "as=APIGroupDiscoveryList" in accept and "v=v2" in accept
        body: dict[str, Any] | None
        headers: dict[str, str] = {}
        if path == "/version":
            body = version_info()
        elif path in ("/api", "/apis") and aggregated:
            body = discovery.aggregated(self.registry, legacy=path == "/api")
            headers["Content-Type"] = discovery.AGGREGATED_MEDIA
        elif path == "/api":
            body = discovery.api_versions()
        elif path == "/apis":
            body = discovery.api_group_list(self.registry)
        elif path == "/openapi/v3":
            body = self.openapi.index()
        elif path.startswith("/openapi/v3/"):
            encoded = self.openapi.encoded_for_path(path[len("/openapi/v3/") :])
            if encoded is None:
                raise errors.not_found_path(path)
            return web.Response(body=encoded, content_type="application/json")
        else:
            body = self._group_discovery(path)
        if body is None:
            raise errors.not_found_path(path)
        response = web.json_response(body)
        if headers:
            response.headers.update(headers)
        return response

    def _group_discovery(self, path: str) -> dict[str, Any] | None:
        parts = [p for p in path.split("/") if p]
        if parts[:1] == ["api"] and len(parts) == 2:
            return discovery.resource_list(self.registry, "", parts[1])
        if parts[:1] == ["apis"] and len(parts) == 2:
            return discovery.api_group(self.registry, parts[1])
        if parts[:1] == ["apis"] and len(parts) == 3:
            return discovery.resource_list(self.registry, parts[1], parts[2])
        return None


def _bound_port(site: web.TCPSite) -> int:
    server = site._server
    sockets = getattr(server, "sockets", None) or []
    return int(sockets[0].getsockname()[1])


def version_info() -> dict[str, str]:
    major, minor, _ = KUBERNETES_VERSION.split(".")
    return {
        "major": major,
        "minor": minor,
        "gitVersion": f"v{KUBERNETES_VERSION}+hypernetes.{__version__}",
        "gitCommit": "",
        "gitTreeState": "clean",
        "buildDate": "1970-01-01T00:00:00Z",
        "goVersion": "python",
        "compiler": "cpython",
        "platform": "linux/amd64",
    }


def prepare_pki(data: Path, names: tuple[str, ...]) -> ssl.SSLContext:
    """Make the CA and certificates on first start; return the serving TLS context."""
    ca_crt, ca_key = data / "ca.crt", data / "ca.key"
    if not ca_crt.exists():
        pki.write_pair(pki.create_ca(), ca_crt, ca_key)
    ca = pki.read_pair(ca_crt, ca_key)
    unique = tuple(dict.fromkeys(n for n in names if n and n != "0.0.0.0"))
    pki.write_pair(
        pki.issue(ca, "hypernetes-apiserver", server_names=unique),
        data / "apiserver.crt",
        data / "apiserver.key",
    )
    if not (data / "admin.crt").exists():
        pki.write_pair(
            pki.issue(ca, "admin", organisations=("system:masters",), client=True),
            data / "admin.crt",
            data / "admin.key",
        )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(ca_crt))
    context.load_cert_chain(data / "apiserver.crt", data / "apiserver.key")
    context.verify_mode = ssl.CERT_OPTIONAL
    return context


def write_kubeconfig(
    path: Path, server: str, ca: Path, cert: Path, key: Path, *, user: str
) -> None:
    """A kubeconfig with the credentials inlined, so it can be copied elsewhere."""
    import base64

    def b64(p: Path) -> str:
        return base64.b64encode(p.read_bytes()).decode()

    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "hypernetes",
        "clusters": [
            {
                "name": "hypernetes",
                "cluster": {"server": server, "certificate-authority-data": b64(ca)},
            }
        ],
        "users": [
            {
                "name": user,
                "user": {"client-certificate-data": b64(cert), "client-key-data": b64(key)},
            }
        ],
        "contexts": [{"name": "hypernetes", "context": {"cluster": "hypernetes", "user": user}}],
    }
    pki.write_secret(path, yaml.safe_dump(config, sort_keys=False).encode())
