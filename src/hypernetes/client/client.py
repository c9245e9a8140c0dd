"""The asyncio API client: CRUD, patch, delete, watch and discovery over HTTPS.

One `Client` holds one aiohttp session per client certificate in use (an
exec plugin may hand out a new certificate when the old one expires) and
sends the bearer token, if any, with every request. Objects travel as plain
dicts; failures come back as `ApiError` (with the server's Status) or
`TransportError`.
"""

from __future__ import annotations

import asyncio
import builtins
import json
import logging
from collections.abc import Mapping
from types import TracebackType
from typing import Any, Literal

import aiohttp

from hypernetes import __version__
from hypernetes.client.config import Config
from hypernetes.client.errors import ApiError, ClientError, TransportError, api_error
from hypernetes.client.resource import Resource

log = logging.getLogger(__name__)

Obj = dict[str, Any]
PatchType = Literal["merge", "json", "strategic", "apply"]
PropagationPolicy = Literal["Background", "Foreground", "Orphan"]

PATCH_CONTENT_TYPES: dict[str, str] = {
    "merge": "application/merge-patch+json",
    "json": "application/json-patch+json",
    "strategic": "application/strategic-merge-patch+json",
    "apply": "application/apply-patch+yaml",
}
AGGREGATED_DISCOVERY = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
MAX_WATCH_LINE = 16 * 1024 * 1024
"""Largest watch event we accept (the server caps objects far below this)."""
_THROTTLE_RETRIES = 3
_MAX_RETRY_AFTER = 10.0


class Client:
    """An API client for one server and user; use as `async with Client(config) as c:`."""

    def __init__(
        self,
        config: Config,
        *,
        user_agent: str = f"hypernetes/{__version__}",
        timeout: float = 60.0,
    ) -> None:
        self.config = config
        self.user_agent = user_agent
        self.timeout = timeout
        """Seconds any non-watch request may take, end to end."""
        self._sessions: dict[tuple[bytes, bytes] | None, aiohttp.ClientSession] = {}
        self._closed = False

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close every connection (open watches end with a TransportError)."""
        self._closed = True
        sessions, self._sessions = list(self._sessions.values()), {}
        for session in sessions:
            await session.close()

    # -- plumbing ------------------------------------------------------------

    def _session(self, certificate: tuple[bytes, bytes] | None) -> aiohttp.ClientSession:
        if self._closed:
            raise ClientError("the client is closed")
        session = self._sessions.get(certificate)
        if session is None:
            # limit=0: every watch holds a connection and informers open many.
            connector = aiohttp.TCPConnector(
                ssl=self.config.ssl_context(certificate) or False, limit=0
            )
            session = aiohttp.ClientSession(
                connector=connector, headers={"User-Agent": self.user_agent}
            )
            self._sessions[certificate] = session
        return session

    async def _send(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: aiohttp.ClientTimeout | None = None,
    ) -> aiohttp.ClientResponse:
        """Send a request; retry once with fresh credentials after a 401 and on throttling."""
        url = self.config.server + path
        attempt_401 = 0
        throttled = 0
        while True:
            creds = await self.config.credentials()
            hdrs = dict(headers or {})
            if creds.token:
                hdrs["Authorization"] = f"Bearer {creds.token}"
            session = self._session(creds.certificate)
            try:
                response = await session.request(
                    method,
                    url,
                    params=params,
                    data=body,
                    headers=hdrs,
                    timeout=timeout or aiohttp.ClientTimeout(total=self.timeout),
                    server_hostname=self.config.tls_server_name,
                )
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                raise TransportError(f"{method} {path}: {_describe(exc)}") from exc
            if response.status == 401 and attempt_401 == 0 and self.config.invalidate_credentials():
                attempt_401 += 1
                response.release()
                continue
            if response.status == 429 and throttled < _THROTTLE_RETRIES:
                delay = _retry_after(response.headers.get("Retry-After"))
                if delay is not None:
                    throttled += 1
                    response.release()
                    await asyncio.sleep(delay)
                    continue
            return response

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        accept: str = "application/json",
    ) -> Any:
        """One request; returns the decoded JSON answer or raises `ApiError`."""
        data = None if body is None else json.dumps(body).encode()
        headers = {"Accept": accept}
        if data is not None:
            headers["Content-Type"] = content_type
        response = await self._send(method, path, params=params, body=data, headers=headers)
        try:
            raw = await response.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise TransportError(f"{method} {path}: {_describe(exc)}") from exc
        finally:
            response.release()
        decoded: Any = None
        if raw:
            try:
                decoded = json.loads(raw)
            except ValueError:
                decoded = None
        if response.status >= 400:
            raise api_error(response.status, decoded, raw.decode(errors="replace"))
        if decoded is None and raw:
            raise ClientError(f"{method} {path}: the server's answer is not JSON")
        return decoded

    # -- objects -------------------------------------------------------------

    async def get(
        self,
        resource: Resource,
        name: str,
        namespace: str | None = None,
        *,
        subresource: str | None = None,
    ) -> Obj:
        obj: Obj = await self.request("GET", resource.path(namespace, name, subresource))
        return obj

    async def list(
        self,
        resource: Resource,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
        limit: int | None = None,
        continue_token: str | None = None,
        resource_version: str | None = None,
        resource_version_match: str | None = None,
    ) -> Obj:
        """One List (one page when `limit` is set: follow `metadata.continue`)."""
        params = _selectors(label_selector, field_selector)
        if limit:
            params["limit"] = str(limit)
        if continue_token:
            params["continue"] = continue_token
        if resource_version is not None:
            params["resourceVersion"] = resource_version
        if resource_version_match:
            params["resourceVersionMatch"] = resource_version_match
        result: Obj = await self.request("GET", resource.path(namespace), params=params)
        return result

    async def list_all(
        self,
        resource: Resource,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
        page_size: int = 500,
    ) -> Obj:
        """The whole collection, read page by page from one consistent snapshot."""
        first = await self.list(
            resource,
            namespace,
            label_selector=label_selector,
            field_selector=field_selector,
            limit=page_size,
        )
        items = list(first.get("items") or [])
        token = (first.get("metadata") or {}).get("continue")
        while token:
            page = await self.list(
                resource,
                namespace,
                label_selector=label_selector,
                field_selector=field_selector,
                limit=page_size,
                continue_token=token,
            )
            items += page.get("items") or []
            token = (page.get("metadata") or {}).get("continue")
        meta = dict(first.get("metadata") or {})
        meta.pop("continue", None)
        meta.pop("remainingItemCount", None)
        return {**first, "metadata": meta, "items": items}

    async def create(
        self,
        resource: Resource,
        body: Obj,
        namespace: str | None = None,
        *,
        field_manager: str | None = None,
        dry_run: bool = False,
    ) -> Obj:
        if namespace is None and resource.namespaced:
            namespace = (body.get("metadata") or {}).get("namespace") or self.config.namespace
        params = _write_params(field_manager, dry_run)
        created: Obj = await self.request(
            "POST", resource.path(namespace), params=params, body=body
        )
        return created

    async def replace(
        self,
        resource: Resource,
        name: str,
        body: Obj,
        namespace: str | None = None,
        *,
        subresource: str | None = None,
        field_manager: str | None = None,
        dry_run: bool = False,
    ) -> Obj:
        """PUT: optimistic concurrency through `metadata.resourceVersion` in `body`."""
        params = _write_params(field_manager, dry_run)
        path = resource.path(namespace, name, subresource)
        replaced: Obj = await self.request("PUT", path, params=params, body=body)
        return replaced

    async def patch(
        self,
        resource: Resource,
        name: str,
        patch: Any,
        namespace: str | None = None,
        *,
        patch_type: PatchType = "merge",
        subresource: str | None = None,
        field_manager: str | None = None,
        force: bool = False,
        dry_run: bool = False,
    ) -> Obj:
        """PATCH with a JSON merge, JSON, strategic merge or server-side apply patch."""
        content_type = PATCH_CONTENT_TYPES.get(patch_type)
        if content_type is None:
            raise ValueError(f"unknown patch type {patch_type!r}")
        if patch_type == "apply" and not field_manager:
            raise ValueError("server-side apply needs a field_manager")
        params = _write_params(field_manager, dry_run)
        if force:
            params["force"] = "true"
        path = resource.path(namespace, name, subresource)
        patched: Obj = await self.request(
            "PATCH", path, params=params, body=patch, content_type=content_type
        )
        return patched

    async def delete(
        self,
        resource: Resource,
        name: str,
        namespace: str | None = None,
        *,
        propagation_policy: PropagationPolicy | None = None,
        grace_period_seconds: int | None = None,
        preconditions: Mapping[str, str] | None = None,
        dry_run: bool = False,
    ) -> Obj:
        """DELETE; returns what the server returns (the object, or a Status)."""
        options = _delete_options(propagation_policy, grace_period_seconds, preconditions, dry_run)
        result: Obj = await self.request("DELETE", resource.path(namespace, name), body=options)
        return result

    async def delete_collection(
        self,
        resource: Resource,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
        propagation_policy: PropagationPolicy | None = None,
        grace_period_seconds: int | None = None,
        dry_run: bool = False,
    ) -> Obj:
        options = _delete_options(propagation_policy, grace_period_seconds, None, dry_run)
        params = _selectors(label_selector, field_selector)
        result: Obj = await self.request(
            "DELETE", resource.path(namespace), params=params, body=options
        )
        return result

    def watch(
        self,
        resource: Resource,
        namespace: str | None = None,
        *,
        resource_version: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        timeout_seconds: int | None = None,
        allow_bookmarks: bool = False,
    ) -> WatchStream:
        """A stream of (type, object) events; see `WatchStream`.

        Without `resource_version` (or with "0") the server first sends ADDED
        for every current object; with one, every change after it.
        """
        params = _selectors(label_selector, field_selector)
        params["watch"] = "true"
        if resource_version is not None:
            params["resourceVersion"] = resource_version
        if timeout_seconds:
            params["timeoutSeconds"] = str(timeout_seconds)
        if allow_bookmarks:
            params["allowWatchBookmarks"] = "true"
        return WatchStream(self, resource.path(namespace), params, timeout_seconds)

    # -- discovery -----------------------------------------------------------

    async def discover(self) -> builtins.list[Resource]:
        """Every resource (not subresource) in the preferred version of each group.

        Uses aggregated discovery (two requests); falls back to the legacy
        documents when the server does not offer it.
        """
        try:
            core = await self.request("GET", "/api", accept=AGGREGATED_DISCOVERY)
            groups = await self.request("GET", "/apis", accept=AGGREGATED_DISCOVERY)
        except ApiError as exc:
            if exc.code not in (406, 415):
                raise
            return await self._discover_legacy()
        if not all(
            isinstance(d, dict) and d.get("kind") == "APIGroupDiscoveryList" for d in (core, groups)
        ):
            return await self._discover_legacy()
        found: builtins.list[Resource] = []
        for item in (core.get("items") or []) + (groups.get("items") or []):
            group = (item.get("metadata") or {}).get("name") or ""
            versions = item.get("versions") or []
            if not versions:
                continue
            preferred = versions[0]  # versions are listed in preference order
            for entry in preferred.get("resources") or []:
                kind = (entry.get("responseKind") or {}).get("kind", "")
                found.append(
                    Resource(
                        group,
                        preferred["version"],
                        entry["resource"],
                        entry.get("scope") == "Namespaced",
                        kind,
                        frozenset(entry.get("verbs") or ()),
                    )
                )
        return found

    async def _discover_legacy(self) -> builtins.list[Resource]:
        found: builtins.list[Resource] = []
        versions = await self.request("GET", "/api")
        gvs: builtins.list[tuple[str, str]] = [
            ("", v) for v in (versions.get("versions") or [])[:1]
        ]
        groups = await self.request("GET", "/apis")
        for group in groups.get("groups") or []:
            preferred = group.get("preferredVersion") or (group.get("versions") or [{}])[0]
            if preferred.get("version"):
                gvs.append((group["name"], preferred["version"]))
        for group, version in gvs:
            path = f"/apis/{group}/{version}" if group else f"/api/{version}"
            try:
                doc = await self.request("GET", path)
            except ApiError as exc:
                if exc.code == 404:
                    continue  # the group went away between the two requests
                raise
            for entry in doc.get("resources") or []:
                if "/" in entry["name"]:
                    continue  # a subresource
                found.append(
                    Resource(
                        group,
                        version,
                        entry["name"],
                        bool(entry.get("namespaced")),
                        entry.get("kind", ""),
                        frozenset(entry.get("verbs") or ()),
                    )
                )
        return found


class WatchStream:
    """An open watch: async-iterate for (type, object); close it when done.

    Types are ADDED, MODIFIED, DELETED and BOOKMARK. An ERROR event raises
    instead: `Expired` for 410 (the resourceVersion is too old; list again),
    `ApiError` otherwise. The iteration ends when the server ends the watch
    (its timeout); resume from the last resourceVersion seen. Use as
    `async with client.watch(...) as events: async for kind, obj in events:`.
    """

    def __init__(
        self, client: Client, path: str, params: dict[str, str], timeout_seconds: int | None
    ) -> None:
        self._client = client
        self._path = path
        self._params = params
        self._timeout_seconds = timeout_seconds
        self._response: aiohttp.ClientResponse | None = None
        self._buffer = b""
        self._done = False

    async def __aenter__(self) -> WatchStream:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __aiter__(self) -> WatchStream:
        return self

    async def aclose(self) -> None:
        self._done = True
        if self._response is not None:
            self._response.close()  # drop the connection: the stream has no natural end
            self._response = None

    async def _open(self) -> aiohttp.ClientResponse:
        read = self._timeout_seconds + 30.0 if self._timeout_seconds else None
        timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=self._client.timeout, sock_read=read
        )
        response = await self._client._send(
            "GET",
            self._path,
            params=self._params,
            headers={"Accept": "application/json"},
            timeout=timeout,
        )
        if response.status >= 400:
            try:
                raw = await response.read()
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise TransportError(f"watch {self._path}: {_describe(exc)}") from exc
            finally:
                response.release()
            try:
                decoded = json.loads(raw)
            except ValueError:
                decoded = None
            raise api_error(response.status, decoded, raw.decode(errors="replace"))
        return response

    async def __anext__(self) -> tuple[str, Obj]:
        if self._done:
            raise StopAsyncIteration
        try:
            if self._response is None:
                self._response = await self._open()
            line = await self._next_line(self._response)
        except BaseException:
            await self.aclose()
            raise
        if line is None:
            await self.aclose()
            raise StopAsyncIteration
        try:
            event = json.loads(line)
            kind, obj = str(event["type"]), event["object"]
        except (ValueError, KeyError, TypeError):
            await self.aclose()
            raise ClientError(f"watch {self._path}: malformed event {line[:200]!r}") from None
        if kind == "ERROR":
            await self.aclose()
            code = int(obj.get("code") or 500) if isinstance(obj, dict) else 500
            raise api_error(code, obj)
        if not isinstance(obj, dict):
            await self.aclose()
            raise ClientError(f"watch {self._path}: event object is not a JSON object")
        return kind, obj

    async def _next_line(self, response: aiohttp.ClientResponse) -> bytes | None:
        while True:
            newline = self._buffer.find(b"\n")
            if newline >= 0:
                line, self._buffer = self._buffer[:newline], self._buffer[newline + 1 :]
                if line.strip():
                    return line
                continue
            try:
                chunk = await response.content.readany()
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise TransportError(f"watch {self._path}: {_describe(exc)}") from exc
            if not chunk:
                if self._buffer.strip():
                    line, self._buffer = self._buffer, b""
                    return line
                return None
            self._buffer += chunk
            if len(self._buffer) > MAX_WATCH_LINE:
                raise ClientError(f"watch {self._path}: event larger than {MAX_WATCH_LINE} bytes")


def _selectors(label_selector: str | None, field_selector: str | None) -> dict[str, str]:
    params: dict[str, str] = {}
    if label_selector:
        params["labelSelector"] = label_selector
    if field_selector:
        params["fieldSelector"] = field_selector
    return params


def _write_params(field_manager: str | None, dry_run: bool) -> dict[str, str]:
    params: dict[str, str] = {}
    if field_manager:
        params["fieldManager"] = field_manager
    if dry_run:
        params["dryRun"] = "All"
    return params


def _delete_options(
    policy: str | None,
    grace: int | None,
    preconditions: Mapping[str, str] | None,
    dry_run: bool,
) -> Obj:
    options: Obj = {"kind": "DeleteOptions", "apiVersion": "v1"}
    if policy:
        options["propagationPolicy"] = policy
    if grace is not None:
        options["gracePeriodSeconds"] = grace
    if preconditions:
        options["preconditions"] = dict(preconditions)
    if dry_run:
        options["dryRun"] = ["All"]
    return options


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return min(max(float(value), 0.0), _MAX_RETRY_AFTER)
    except ValueError:
        return None


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
