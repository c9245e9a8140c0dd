"""Connection settings from a kubeconfig: server, TLS trust and the user's credentials.

Supports what the `kubernetes` clients do for the cases Hypernetes needs:
clusters with inline (`*-data`, base64) or file certificate authorities,
users with client certificates, bearer tokens (inline or `tokenFile`) or an
exec credential plugin (`client.authentication.k8s.io/v1` or `v1beta1`), whose
answer is cached until its `expirationTimestamp`. Relative file paths are
relative to the kubeconfig's directory, as kubectl reads them.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import datetime
import json
import os
import ssl
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from hypernetes.client.errors import ConfigError

EXEC_API_VERSIONS = ("client.authentication.k8s.io/v1", "client.authentication.k8s.io/v1beta1")
EXEC_TIMEOUT = 60.0
"""Seconds an exec credential plugin may take before we give up on it."""
TOKEN_FILE_REREAD = 60.0
"""Seconds a `tokenFile` is trusted before it is read again (it may be rotated)."""


@dataclass(frozen=True)
class Credentials:
    """What to present to the server: a bearer token and/or a client certificate (PEM)."""

    token: str | None = None
    cert_pem: bytes | None = None
    key_pem: bytes | None = None

    @property
    def certificate(self) -> tuple[bytes, bytes] | None:
        if self.cert_pem and self.key_pem:
            return self.cert_pem, self.key_pem
        return None


@dataclass
class ExecPlugin:
    """An exec credential plugin, run on demand, its answer cached until it expires."""

    command: str
    args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    api_version: str = EXEC_API_VERSIONS[0]
    install_hint: str = ""
    provide_cluster_info: bool = False
    interactive_mode: str = "IfAvailable"
    cluster_info: dict[str, Any] = field(default_factory=dict)
    """The `spec.cluster` handed to the plugin when `provide_cluster_info` is set."""

    def __post_init__(self) -> None:
        self._cached: Credentials | None = None
        self._expires: float | None = None  # wall-clock seconds; None means "until rejected"
        self._lock: asyncio.Lock | None = None
        self.runs = 0
        """How many times the plugin has been run (for diagnostics)."""

    def invalidate(self) -> None:
        """Forget the cached credential (the server rejected it)."""
        self._cached = None
        self._expires = None

    def cached(self) -> Credentials | None:
        if self._cached is None:
            return None
        if self._expires is not None and time.time() >= self._expires:
            return None
        return self._cached

    async def credentials(self) -> Credentials:
        if (creds := self.cached()) is not None:
            return creds
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:  # one run at a time even with many concurrent requests
            if (creds := self.cached()) is not None:
                return creds
            creds, expires = await self._run()
            self._cached, self._expires = creds, expires
            return creds

    def _exec_info(self) -> str:
        spec: dict[str, Any] = {"interactive": False}
        if self.provide_cluster_info:
            spec["cluster"] = self.cluster_info
        return json.dumps({"apiVersion": self.api_version, "kind": "ExecCredential", "spec": spec})

    async def _run(self) -> tuple[Credentials, float | None]:
        if self.interactive_mode == "Always":
            raise ConfigError(
                f"exec plugin {self.command!r} requires an interactive terminal; "
                "this client never runs plugins interactively"
            )
        env = {**os.environ, **self.env, "KUBERNETES_EXEC_INFO": self._exec_info()}
        self.runs += 1
        try:
            proc = await asyncio.create_subprocess_exec(
                self.command,
                *self.args,
                env=env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
        except OSError as exc:
            hint = f"\n{self.install_hint}" if self.install_hint else ""
            raise ConfigError(f"exec plugin {self.command!r}: {exc.strerror}{hint}") from None
        try:
            out, err = await asyncio.wait_for(proc.communicate(), EXEC_TIMEOUT)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise ConfigError(
                f"exec plugin {self.command!r} did not answer in {EXEC_TIMEOUT:.0f}s"
            ) from None
        if proc.returncode != 0:
            detail = err.decode(errors="replace").strip()[-2000:]
            raise ConfigError(
                f"exec plugin {self.command!r} failed with exit code {proc.returncode}: {detail}"
            )
        return self._parse(out)

    def _parse(self, out: bytes) -> tuple[Credentials, float | None]:
        try:
            answer = json.loads(out)
        except ValueError:
            raise ConfigError(f"exec plugin {self.command!r} did not print JSON") from None
        if not isinstance(answer, dict) or answer.get("kind") != "ExecCredential":
            raise ConfigError(f"exec plugin {self.command!r} did not print an ExecCredential")
        if answer.get("apiVersion") != self.api_version:
            raise ConfigError(
                f"exec plugin {self.command!r} answered with apiVersion "
                f"{answer.get('apiVersion')!r}, expected {self.api_version!r}"
            )
        status = answer.get("status")
        if not isinstance(status, dict):
            raise ConfigError(f"exec plugin {self.command!r}: ExecCredential has no status")
        token = status.get("token") or None
        cert, key = status.get("clientCertificateData"), status.get("clientKeyData")
        if bool(cert) != bool(key):
            raise ConfigError(
                f"exec plugin {self.command!r}: clientCertificateData and clientKeyData "
                "must be given together"
            )
        if not token and not cert:
            raise ConfigError(
                f"exec plugin {self.command!r}: ExecCredential has neither a token "
                "nor a client certificate"
            )
        if (token is not None and not isinstance(token, str)) or not all(
            v is None or isinstance(v, str) for v in (cert, key)
        ):
            raise ConfigError(f"exec plugin {self.command!r}: credential fields must be strings")
        expires: float | None = None
        if stamp := status.get("expirationTimestamp"):
            expires = parse_time(str(stamp), f"exec plugin {self.command!r} expirationTimestamp")
        creds = Credentials(
            token=token,
            cert_pem=cert.encode() if cert else None,
            key_pem=key.encode() if key else None,
        )
        return creds, expires


@dataclass
class Config:
    """Everything needed to talk to one API server as one user."""

    server: str
    namespace: str = "default"
    """The context's default namespace."""
    ca_pem: bytes | None = None
    """Certificate authorities to trust (PEM); None means the system's."""
    insecure_skip_tls_verify: bool = False
    tls_server_name: str | None = None
    client_cert_pem: bytes | None = None
    client_key_pem: bytes | None = None
    token: str | None = None
    token_file: Path | None = None
    exec_plugin: ExecPlugin | None = None

    def __post_init__(self) -> None:
        self.server = self.server.rstrip("/")
        if not self.server.startswith(("https://", "http://")):
            raise ConfigError(f"server must be an http(s) URL, got {self.server!r}")
        self._file_token: tuple[str, float] | None = None

    async def credentials(self) -> Credentials:
        """The credentials to use now (running the exec plugin if its answer expired)."""
        if self.exec_plugin is not None and not (self.token or self.token_file):
            creds = await self.exec_plugin.credentials()
            if creds.certificate is None and self.client_cert_pem and self.client_key_pem:
                creds = Credentials(creds.token, self.client_cert_pem, self.client_key_pem)
            return creds
        return Credentials(self._static_token(), self.client_cert_pem, self.client_key_pem)

    def invalidate_credentials(self) -> bool:
        """Drop cached credentials after a 401; True if retrying could help."""
        if self.exec_plugin is not None and not (self.token or self.token_file):
            self.exec_plugin.invalidate()
            return True
        if self.token_file is not None:
            self._file_token = None
            return True
        return False

    def _static_token(self) -> str | None:
        if self.token:
            return self.token
        if self.token_file is None:
            return None
        now = time.monotonic()
        if self._file_token is not None and now - self._file_token[1] < TOKEN_FILE_REREAD:
            return self._file_token[0]
        try:
            token = self.token_file.read_text().strip()
        except OSError as exc:
            raise ConfigError(f"cannot read tokenFile {self.token_file}: {exc.strerror}") from None
        self._file_token = (token, now)
        return token

    def ssl_context(self, certificate: tuple[bytes, bytes] | None) -> ssl.SSLContext | None:
        """The TLS context for the server, presenting `certificate` (PEM cert, key) if any."""
        if not self.server.startswith("https://"):
            return None
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
        if self.insecure_skip_tls_verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        elif self.ca_pem is not None:
            try:
                context.load_verify_locations(cadata=self.ca_pem.decode())
            except (ssl.SSLError, UnicodeDecodeError, ValueError) as exc:
                raise ConfigError(f"invalid certificate authority data: {exc}") from None
        if certificate is not None:
            load_client_certificate(context, *certificate)
        return context


def load_client_certificate(context: ssl.SSLContext, cert_pem: bytes, key_pem: bytes) -> None:
    """Load a PEM certificate and key given in memory.

    `ssl` only loads key material from paths; anonymous memory files keep the
    private key off the disk (no temporary files holding secrets in clear).
    """
    with _memory_file(cert_pem) as cert_path, _memory_file(key_pem) as key_path:
        try:
            context.load_cert_chain(cert_path, key_path)
        except ssl.SSLError as exc:
            raise ConfigError(f"invalid client certificate or key: {exc.reason}") from None


@contextlib.contextmanager
def _memory_file(data: bytes) -> Iterator[str]:
    fd = os.memfd_create("hypernetes-credential", os.MFD_CLOEXEC)
    try:
        os.write(fd, data)
        yield f"/proc/self/fd/{fd}"
    finally:
        os.close(fd)


def parse_time(value: str, what: str = "timestamp") -> float:
    """An RFC 3339 timestamp as wall-clock seconds since the epoch."""
    try:
        stamp = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(f"{what}: not an RFC 3339 time: {value!r}") from None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=datetime.UTC)
    return stamp.timestamp()


# -- kubeconfig files ----------------------------------------------------------


def default_kubeconfig_paths() -> list[Path]:
    """$KUBECONFIG (a colon-separated list) or ~/.kube/config, as kubectl looks."""
    env = os.environ.get("KUBECONFIG", "")
    if env:
        return [Path(p).expanduser() for p in env.split(os.pathsep) if p]
    return [Path("~/.kube/config").expanduser()]


def load_kubeconfig(
    path: str | os.PathLike[str] | None = None, context: str | None = None
) -> Config:
    """The `Config` of `context` (default: the current context) in a kubeconfig.

    Without `path`, files named by $KUBECONFIG are merged as kubectl merges
    them (the first file naming an entry wins), or ~/.kube/config is read.
    """
    paths = [Path(path)] if path is not None else default_kubeconfig_paths()
    merged: dict[str, Any] = {"clusters": {}, "users": {}, "contexts": {}, "current": None}
    found = False
    for p in paths:
        if not p.exists() and path is None:
            continue
        found = True
        doc = _read_document(p)
        if merged["current"] is None and doc.get("current-context"):
            merged["current"] = str(doc["current-context"])
        for section, singular in (
            ("clusters", "cluster"),
            ("users", "user"),
            ("contexts", "context"),
        ):
            for entry in _entries(doc, section, p):
                body = entry.get(singular) or {}
                if not isinstance(body, dict):
                    raise ConfigError(f"{p}: {section} entry {entry['name']!r} is not a mapping")
                merged[section].setdefault(entry["name"], (body, p.parent))
    if not found:
        raise ConfigError(f"no kubeconfig found (looked at {', '.join(map(str, paths))})")
    name = context or merged["current"]
    if not name:
        raise ConfigError("no context given and the kubeconfig has no current-context")
    if name not in merged["contexts"]:
        raise ConfigError(f"context {name!r} not found in the kubeconfig")
    ctx, _ = merged["contexts"][name]
    cluster_name, user_name = ctx.get("cluster"), ctx.get("user")
    if cluster_name not in merged["clusters"]:
        raise ConfigError(f"context {name!r}: cluster {cluster_name!r} not found")
    cluster, cluster_dir = merged["clusters"][cluster_name]
    user, user_dir = merged["users"].get(user_name, ({}, Path(".")))
    if user_name and user_name not in merged["users"]:
        raise ConfigError(f"context {name!r}: user {user_name!r} not found")
    return _build(cluster, cluster_dir, user, user_dir, str(ctx.get("namespace") or "default"))


def _read_document(path: Path) -> dict[str, Any]:
    try:
        doc = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ConfigError(f"cannot read kubeconfig {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"kubeconfig {path} is not valid YAML: {exc}") from None
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise ConfigError(f"kubeconfig {path} is not a mapping")
    return doc


def _entries(doc: dict[str, Any], section: str, path: Path) -> list[dict[str, Any]]:
    entries = doc.get(section) or []
    if not isinstance(entries, list):
        raise ConfigError(f"{path}: {section} must be a list")
    for entry in entries:
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            raise ConfigError(f"{path}: every entry of {section} needs a name")
    return entries


def _data_or_file(entry: dict[str, Any], key: str, base: Path) -> bytes | None:
    """`key-data` (base64) or `key` (a path, relative to the kubeconfig's directory)."""
    data = entry.get(f"{key}-data")
    if data:
        try:
            return base64.b64decode(str(data), validate=True)
        except (binascii.Error, ValueError):
            raise ConfigError(f"{key}-data is not valid base64") from None
    file = entry.get(key)
    if file:
        p = (base / Path(str(file)).expanduser()).resolve()
        try:
            return p.read_bytes()
        except OSError as exc:
            raise ConfigError(f"cannot read {key} {p}: {exc.strerror}") from None
    return None


def _build(
    cluster: dict[str, Any],
    cluster_dir: Path,
    user: dict[str, Any],
    user_dir: Path,
    namespace: str,
) -> Config:
    server = cluster.get("server")
    if not server or not isinstance(server, str):
        raise ConfigError("the cluster has no server")
    ca = _data_or_file(cluster, "certificate-authority", cluster_dir)
    token_file = user.get("tokenFile")
    config = Config(
        server=server,
        namespace=namespace,
        ca_pem=ca,
        insecure_skip_tls_verify=bool(cluster.get("insecure-skip-tls-verify")),
        tls_server_name=cluster.get("tls-server-name") or None,
        client_cert_pem=_data_or_file(user, "client-certificate", user_dir),
        client_key_pem=_data_or_file(user, "client-key", user_dir),
        token=str(user["token"]) if user.get("token") else None,
        token_file=(user_dir / Path(str(token_file)).expanduser()) if token_file else None,
    )
    if bool(config.client_cert_pem) != bool(config.client_key_pem):
        raise ConfigError("client-certificate and client-key must be given together")
    exec_conf = user.get("exec")
    if exec_conf:
        config.exec_plugin = _exec_plugin(exec_conf, user_dir, cluster, ca)
    return config


def _exec_plugin(conf: Any, base: Path, cluster: dict[str, Any], ca: bytes | None) -> ExecPlugin:
    if not isinstance(conf, dict) or not conf.get("command"):
        raise ConfigError("exec: a command is required")
    api_version = conf.get("apiVersion")
    if api_version not in EXEC_API_VERSIONS:
        raise ConfigError(
            f"exec: apiVersion must be one of {', '.join(EXEC_API_VERSIONS)}, got {api_version!r}"
        )
    mode = conf.get("interactiveMode") or "IfAvailable"
    if api_version.endswith("/v1") and not conf.get("interactiveMode"):
        raise ConfigError("exec: interactiveMode must be specified for apiVersion v1")
    if mode not in ("Never", "IfAvailable", "Always"):
        raise ConfigError(f"exec: invalid interactiveMode {mode!r}")
    command = str(conf["command"])
    if os.sep in command and not os.path.isabs(command):
        command = str((base / command).resolve())  # as client-go: relative to the kubeconfig
    env: dict[str, str] = {}
    for item in conf.get("env") or []:
        if not isinstance(item, dict) or "name" not in item:
            raise ConfigError("exec: env entries need a name and a value")
        env[str(item["name"])] = str(item.get("value", ""))
    args = conf.get("args") or []
    if not isinstance(args, list):
        raise ConfigError("exec: args must be a list")
    info: dict[str, Any] = {"server": cluster.get("server", "")}
    if ca:
        info["certificate-authority-data"] = base64.b64encode(ca).decode()
    for key in ("insecure-skip-tls-verify", "tls-server-name", "proxy-url"):
        if cluster.get(key):
            info[key] = cluster[key]
    for ext in cluster.get("extensions") or []:
        if isinstance(ext, dict) and ext.get("name") == "client.authentication.k8s.io/exec":
            info["config"] = ext.get("extension")
    return ExecPlugin(
        command=command,
        args=[str(a) for a in args],
        env=env,
        api_version=api_version,
        install_hint=str(conf.get("installHint") or ""),
        provide_cluster_info=bool(conf.get("provideClusterInfo")),
        interactive_mode=mode,
        cluster_info=info,
    )
