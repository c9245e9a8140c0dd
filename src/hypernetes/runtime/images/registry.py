"""A client of the OCI distribution API (Docker Registry HTTP API v2).

Pulls an image into the local store: resolves manifest lists / OCI indexes to
linux/amd64, fetches the config and layers concurrently, verifies every
digest while streaming (a mismatch deletes the download), and answers the
registry's auth challenge: Bearer (token from the realm it names, with basic
credentials when given) or Basic. Plain HTTP is used only for loopback
registries and those configured as insecure; anything else must speak HTTPS
with a certificate the system trusts (or `ca_file`, or $SSL_CERT_FILE).
Every failure raises ImagePullError (reason ErrImagePull) and leaves nothing
behind: what a failed pull fetched is collected as soon as no other pull runs.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import ipaddress
import json
import re
import ssl
from collections.abc import Callable, Coroutine
from typing import IO, Any

import aiohttp

from ..errors import ImagePullError
from ..types import ImageInfo
from .archive import INDEX_TYPES, select_platform
from .reference import DEFAULT_REGISTRY, Reference, parse_reference
from .store import ImageStore

ACCEPT = ", ".join(
    [
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    ]
)
MAX_MANIFEST = 4 << 20  # registries cap manifests at 4 MiB too
Progress = Callable[[str, int, int], None]  # (layer digest, bytes done, total)
_CHALLENGE = re.compile(r'(\w+)="([^"]*)"')


def _basic(auth: tuple[str, str]) -> str:
    return "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()


def _hostname(host: str) -> str:
    """`host` of `host[:port]` (also `[v6]:port`)."""
    if host.startswith("["):
        return host[1:].partition("]")[0]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def is_loopback(host: str) -> bool:
    name = _hostname(host)
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class RegistryClient:
    """Use as `async with RegistryClient(store) as c: await c.pull(ref)`.
    `insecure` lists registries (host[:port]) allowed over plain HTTP."""

    def __init__(
        self,
        store: ImageStore,
        insecure: tuple[str, ...] = (),
        timeout: float = 300.0,
        ca_file: str | None = None,
    ) -> None:
        self.store = store
        self.insecure = set(insecure)
        self._timeout = aiohttp.ClientTimeout(total=timeout, sock_connect=15)
        # The system's trusted CAs, plus `ca_file` for registries with a private CA.
        self._tls = ssl.create_default_context()
        if ca_file:
            self._tls.load_verify_locations(ca_file)
        self._session: aiohttp.ClientSession | None = None
        self._tokens: dict[str, str] = {}

    async def __aenter__(self) -> RegistryClient:
        self._session = aiohttp.ClientSession(
            timeout=self._timeout, connector=aiohttp.TCPConnector(ssl=self._tls)
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()

    def plain_http(self, ref: Reference) -> bool:
        return is_loopback(ref.registry) or ref.registry in self.insecure

    def base_url(self, ref: Reference) -> str:
        host = "registry-1.docker.io" if ref.registry == DEFAULT_REGISTRY else ref.registry
        return f"{'http' if self.plain_http(ref) else 'https'}://{host}/v2/{ref.repository}"

    # --- HTTP with the auth dance ----------------------------------------------

    async def _get(
        self, ref: Reference, url: str, auth: tuple[str, str] | None, headers: dict[str, str]
    ) -> aiohttp.ClientResponse:
        """GET; on 401, obtains the credential the challenge asks for, retries once."""
        assert self._session is not None
        for attempt in range(2):
            h = dict(headers)
            token = self._tokens.get(ref.name)
            if token:
                h["Authorization"] = token
            resp = await self._session.get(url, headers=h)
            if resp.status != 401 or attempt == 1:
                return resp
            challenge = resp.headers.get("WWW-Authenticate", "")
            resp.release()
            self._tokens[ref.name] = await self._authorize(challenge, auth)
        raise AssertionError("unreachable")

    async def _authorize(self, challenge: str, auth: tuple[str, str] | None) -> str:
        """The Authorization header value answering a WWW-Authenticate challenge."""
        assert self._session is not None
        scheme, _, params_text = challenge.partition(" ")
        if scheme.lower() == "basic":
            if auth is None:
                raise ImagePullError("the registry wants credentials (basic auth): none given")
            return _basic(auth)
        if scheme.lower() != "bearer":
            raise ImagePullError(f"unsupported registry auth challenge {challenge!r}")
        params = dict(_CHALLENGE.findall(params_text))
        realm = params.pop("realm", None)
        if not realm:
            raise ImagePullError("bearer challenge without a realm")
        headers = {"Authorization": _basic(auth)} if auth else {}
        async with self._session.get(realm, params=params, headers=headers) as resp:
            if resp.status != 200:
                raise ImagePullError(f"token request refused ({resp.status}): check credentials")
            body = await resp.json(content_type=None)
        token = body.get("token") or body.get("access_token")
        if not token:
            raise ImagePullError("the token server returned no token")
        return f"Bearer {token}"

    # --- manifests and blobs ---------------------------------------------------

    async def _manifest(
        self, ref: Reference, reference: str, auth: tuple[str, str] | None
    ) -> tuple[bytes, str, str]:
        """(body, media type, digest) of a manifest, digest-verified."""
        url = f"{self.base_url(ref)}/manifests/{reference}"
        resp = await self._get(ref, url, auth, {"Accept": ACCEPT})
        async with resp:
            if resp.status == 404:
                raise ImagePullError(f"{ref}: manifest unknown (no such image or tag)")
            if resp.status in (401, 403):
                raise ImagePullError(f"{ref}: unauthorized ({resp.status})")
            if resp.status != 200:
                raise ImagePullError(f"{ref}: registry answered {resp.status}")
            body = await resp.content.read(MAX_MANIFEST + 1)
            if len(body) > MAX_MANIFEST:
                raise ImagePullError(f"{ref}: manifest larger than {MAX_MANIFEST} bytes")
            media = resp.headers.get("Content-Type", "").split(";")[0].strip()
            claimed = resp.headers.get("Docker-Content-Digest", "")
        digest = _sha256(body)
        expected = reference if reference.startswith("sha256:") else claimed
        if expected.startswith("sha256:") and digest != expected:
            raise ImagePullError(
                f"{ref}: manifest digest mismatch: expected {expected}, got {digest}"
            )
        if not media or media in ("application/json", "text/plain"):
            media = json.loads(body).get("mediaType", "")
        return body, media, digest

    async def _blob(
        self,
        ref: Reference,
        desc: dict[str, Any],
        auth: tuple[str, str] | None,
        progress: Progress | None,
    ) -> None:
        """Fetches one blob into the store unless it is there; one download
        per blob at a time, even across pulls and processes."""
        digest = str(desc["digest"])
        size = int(desc.get("size") or 0)
        lock = await self.store.lock_blob(digest)
        try:
            if self.store.has_blob(digest):
                if progress:
                    progress(digest, size, size)
                return
            await self._download(ref, digest, size, auth, progress)
        finally:
            self.store.unlock_blob(lock)

    async def _download(
        self,
        ref: Reference,
        digest: str,
        size: int,
        auth: tuple[str, str] | None,
        progress: Progress | None,
    ) -> None:
        """Streams a blob into a temp file, hashing it; keeps it if it matches."""
        resp = await self._get(ref, f"{self.base_url(ref)}/blobs/{digest}", auth, {})
        tmp = self.store.temp_file()
        try:
            async with resp:
                if resp.status != 200:
                    raise ImagePullError(f"blob {digest[:19]}: registry answered {resp.status}")
                total = size or resp.content_length or 0
                h = hashlib.sha256()
                done = 0
                with open(tmp, "wb") as f:
                    async for chunk in resp.content.iter_chunked(1 << 16):
                        h.update(chunk)
                        f.write(chunk)
                        done += len(chunk)
                        if size and done > size:
                            raise ImagePullError(f"blob {digest[:19]} is larger than {size} bytes")
                        if progress:
                            progress(digest, done, total)
            actual = "sha256:" + h.hexdigest()
            if actual != digest:
                raise ImagePullError(f"blob digest mismatch: expected {digest}, got {actual}")
            tmp.rename(self.store.blob_path(digest))
        finally:
            tmp.unlink(missing_ok=True)

    # --- the pull ---------------------------------------------------------------

    async def pull(
        self, text: str, auth: tuple[str, str] | None = None, progress: Progress | None = None
    ) -> ImageInfo:
        """Pulls `text` (a reference) and records it; reports layer progress."""
        ref = parse_reference(text)
        pin: IO[str] = await asyncio.to_thread(self.store.pin)
        ok = False
        try:
            info = await self._pull(ref, auth, progress)
            ok = True
            return info
        except aiohttp.ClientError as exc:
            raise ImagePullError(self._explain(ref, exc)) from None
        except TimeoutError:
            raise ImagePullError(f"{ref}: the registry did not answer in time") from None
        except (ValueError, KeyError, TypeError) as exc:  # bad JSON from the registry
            raise ImagePullError(f"{ref}: malformed registry answer: {exc!r}") from None
        finally:
            self.store.unpin(pin)
            if not ok:  # drop what this pull fetched, unless other pulls are running
                await asyncio.to_thread(self.store.gc, False)

    async def _pull(
        self, ref: Reference, auth: tuple[str, str] | None, progress: Progress | None
    ) -> ImageInfo:
        body, media, digest = await self._manifest(ref, ref.reference, auth)
        if media in INDEX_TYPES:
            desc = select_platform(json.loads(body))
            body, media, digest = await self._manifest(ref, desc["digest"], auth)
        manifest = json.loads(body)
        if manifest.get("schemaVersion") != 2 or "config" not in manifest:
            raise ImagePullError(f"{ref}: unsupported manifest type {media!r}")
        layers = manifest.get("layers", [])
        if progress is not None:  # every layer on show from the start, in order
            for d in layers:
                progress(d["digest"], 0, int(d.get("size") or 0))
        await _all_or_none(
            [
                self._blob(ref, manifest["config"], auth, None),
                *(self._blob(ref, d, auth, progress) for d in layers),
            ]
        )
        self.store.put_bytes(body, digest)
        return await asyncio.to_thread(self.store.add_image, ref, digest)

    def _explain(self, ref: Reference, exc: aiohttp.ClientError) -> str:
        if isinstance(exc, aiohttp.ClientConnectorCertificateError):
            return f"{ref.registry}: its TLS certificate is not trusted ({exc.certificate_error})"
        tls = isinstance(exc, aiohttp.ClientSSLError) or isinstance(
            getattr(exc, "os_error", None), ssl.SSLError
        )
        if tls and not self.plain_http(ref):
            return (
                f"{ref.registry}: HTTPS failed ({exc}); plain HTTP is allowed only for "
                f"loopback registries or with --insecure-registry {ref.registry}"
            )
        return f"{ref}: {exc}"


async def _all_or_none(coros: list[Coroutine[Any, Any, None]]) -> None:
    """Runs the downloads concurrently; the first failure cancels the rest
    (and waits for them to clean up) before it is raised."""
    tasks = [asyncio.ensure_future(c) for c in coros]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    for t in tasks:
        exc = None if t.cancelled() else t.exception()
        if exc is not None:
            raise exc
