"""`hypernetes login` and `hypernetes credential`: identity-token login for kubectl.

`login` checks a user's password against the identity service
(`URL/identity/v3/auth/tokens`, scoped to the tenant's project in domain
`default`) and writes a kubeconfig whose user is an exec credential plugin:
kubectl runs `hypernetes credential --server URL --user U --tenant T`, which
prints an `ExecCredential` (client.authentication.k8s.io/v1) with a token.

Where the password comes from when the token expires: nowhere on disk.
`login` stores no password and no long-lived secret. `credential` keeps the
last token in a per-user cache file (mode 0600 in a 0700 directory) until it
expires, and then asks for the password again on the terminal: the plugin is
declared `interactiveMode: IfAvailable`, so kubectl hands it the terminal
when there is one. Without a terminal it fails with one line saying to run
`hypernetes login` again. Caching the token is what kubectl's own exec
plugins (cloud provider logins, kubelogin) do: the token is short-lived
(the identity service's token TTL, 1 h by default), scoped to one tenant,
revocable at the identity service (and revoked on password change, role
removal or user deletion), readable only by the user who owns the file, and
the same user could read it from kubectl's memory anyway.
"""

from __future__ import annotations

import argparse
import base64
import datetime
import getpass
import hashlib
import json
import os
import shutil
import ssl
import sys
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from hypernetes.cli import CommandError

EXEC_API_VERSION = "client.authentication.k8s.io/v1"
REFRESH_MARGIN = 60.0
"""Seconds before its expiry a cached token is no longer handed out."""
TIMEOUT = 15.0
MAX_PASSWORD = 4096


@dataclass(frozen=True)
class Login:
    """Who logs in where: the identity of one kubeconfig user."""

    server: str
    user: str
    tenant: str
    ca_pem: bytes | None = None

    @property
    def identity_url(self) -> str:
        return self.server.rstrip("/") + "/identity/v3/auth/tokens"


@dataclass(frozen=True)
class Token:
    value: str
    expires_at: datetime.datetime

    def fresh(self, now: datetime.datetime | None = None) -> bool:
        now = now or datetime.datetime.now(datetime.UTC)
        return (self.expires_at - now).total_seconds() > REFRESH_MARGIN


def register(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = subparsers.add_parser("login", help="log in to a server and write a kubeconfig")
    _identity_args(p)
    p.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    p.add_argument(
        "--kubeconfig",
        default=None,
        help="kubeconfig to write (default: $KUBECONFIG or ~/.kube/config)",
    )
    p.set_defaults(func=run_login)
    c = subparsers.add_parser("credential", help="kubectl exec credential plugin (used by login)")
    _identity_args(c)
    c.set_defaults(func=run_credential)


def _identity_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--server", required=True, help="API server URL, https://HOST:PORT")
    p.add_argument("--certificate-authority", default=None, metavar="FILE",
                   help="CA bundle that signed the server's certificate")  # fmt: skip
    p.add_argument("--user", required=True, help="identity user name")
    p.add_argument("--tenant", required=True, help="tenant (identity project) to log in to")
    p.add_argument("--cache-dir", default=None, help=argparse.SUPPRESS)


# -- login --------------------------------------------------------------------------


def run_login(args: argparse.Namespace) -> int:
    login = Login(args.server, args.user, args.tenant, _read_ca(args.certificate_authority))
    if not args.server.startswith("https://"):
        raise CommandError("--server must be an https:// URL")
    password = _stdin_password() if args.password_stdin else _prompt_password(login)
    token = authenticate(login, password)
    path = Path(args.kubeconfig or _default_kubeconfig()).expanduser()
    write_kubeconfig(path, login, args.certificate_authority, args.cache_dir)
    TokenCache(_cache_dir(args.cache_dir), login).store(token)
    print(f"Logged in as {login.user} in tenant {login.tenant}; kubeconfig {path}")
    return 0


def _stdin_password() -> str:
    password = sys.stdin.readline(MAX_PASSWORD + 2).rstrip("\r\n")
    if not password:
        raise CommandError("no password on stdin")
    return password


def _default_kubeconfig() -> str:
    env = os.environ.get("KUBECONFIG", "")
    return env.split(os.pathsep)[0] if env else "~/.kube/config"


def _read_ca(path: str | None) -> bytes | None:
    if path is None:
        return None
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise CommandError(f"cannot read {path}: {exc.strerror}") from None


def plugin_command() -> list[str]:
    """How kubectl should run this program: the `hypernetes` script, else the module."""
    argv0 = Path(sys.argv[0])
    if argv0.name == "hypernetes" and os.access(argv0, os.X_OK):
        return [str(argv0.resolve())]
    found = shutil.which("hypernetes")
    if found and Path(found).parent == Path(sys.executable).parent:
        return [found]
    # Not `-m hypernetes.cli`: that would run the module as __main__, a second copy.
    return [sys.executable, "-c", "import sys; from hypernetes.cli import main; sys.exit(main())"]


def write_kubeconfig(path: Path, login: Login, ca_file: str | None, cache_dir: str | None) -> None:
    """Write (replace) a kubeconfig for `login`, mode 0600, without any secret in it."""
    command, *prefix = plugin_command()
    args = [*prefix, "credential", "--server", login.server, "--user", login.user,
            "--tenant", login.tenant]  # fmt: skip
    if ca_file:
        args += ["--certificate-authority", str(Path(ca_file).resolve())]
    if cache_dir:
        args += ["--cache-dir", str(Path(cache_dir).resolve())]
    cluster: dict[str, Any] = {"server": login.server}
    if login.ca_pem is not None:
        cluster["certificate-authority-data"] = base64.b64encode(login.ca_pem).decode()
    name = f"{login.user}@{login.tenant}"
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": name,
        "clusters": [{"name": "hypernetes", "cluster": cluster}],
        "users": [
            {
                "name": name,
                "user": {
                    "exec": {
                        "apiVersion": EXEC_API_VERSION,
                        "command": command,
                        "args": args,
                        "interactiveMode": "IfAvailable",
                        "provideClusterInfo": True,
                    }
                },
            }
        ],
        "contexts": [{"name": name, "context": {"cluster": "hypernetes", "user": name}}],
    }
    _write_private(path, yaml.safe_dump(config, sort_keys=False).encode())


def _write_private(path: Path, data: bytes) -> None:
    """Atomically replace `path` with `data`, readable by its owner only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# -- talking to the identity service ------------------------------------------------


def authenticate(login: Login, password: str) -> Token:
    """A token for `login` (scoped to its tenant), or a one-line CommandError.

    Two steps, so the errors can say which part was wrong without the server
    leaking anything: an unscoped password login (401: wrong user or
    password), then a re-scope of that token to the tenant (401: no such
    tenant, or no role in it — the identity service answers both alike).
    """
    unscoped, _ = _post_auth(login, {"identity": {"methods": ["password"], "password": {
        "user": {"name": login.user, "domain": {"id": "default"}, "password": password}}},
        "scope": "unscoped"})  # fmt: skip
    if unscoped is None:
        raise CommandError(f"login failed: wrong user name or password for {login.user!r}")
    scoped, expires = _post_auth(login, {"identity": {"methods": ["token"], "token": {
        "id": unscoped}}, "scope": {"project": {"name": login.tenant,
        "domain": {"id": "default"}}}})  # fmt: skip
    if scoped is None or expires is None:
        raise CommandError(f"login failed: user {login.user!r} has no access to tenant "
                           f"{login.tenant!r} (unknown tenant or no role in it)")  # fmt: skip
    return Token(scoped, expires)


def _post_auth(login: Login, auth: dict[str, Any]) -> tuple[str | None, datetime.datetime | None]:
    """POST an auth request; (token, expiry), or (None, None) on 401."""
    body = json.dumps({"auth": auth}).encode()
    request = urllib.request.Request(
        login.identity_url,
        data=body,
        method="POST",
        headers={"Content-Type": "application/json", "Accept": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT, context=_tls(login)) as response:
            document = json.loads(response.read(1 << 20))
            token = response.headers.get("X-Subject-Token")
    except urllib.error.HTTPError as exc:
        if exc.code == 401:
            return None, None
        if exc.code == 429:
            raise CommandError("login failed: too many failed attempts; try again later") from None
        raise CommandError(f"login failed: the identity service answered {exc.code}") from None
    except urllib.error.URLError as exc:
        raise CommandError(f"cannot reach {login.server}: {_reason(exc.reason)}") from None
    except (OSError, ValueError) as exc:
        raise CommandError(f"cannot reach {login.server}: {_reason(exc)}") from None
    expires = (document.get("token") or {}).get("expires_at")
    if not token or not isinstance(expires, str):
        raise CommandError(f"login failed: {login.server} did not answer as an identity service")
    return token, _parse_time(expires)


def _reason(reason: object) -> str:
    if isinstance(reason, ssl.SSLCertVerificationError):
        return f"TLS verification failed ({reason.verify_message}); pass --certificate-authority"
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror
    return str(reason) or type(reason).__name__


def _tls(login: Login) -> ssl.SSLContext:
    if login.ca_pem is not None:
        try:
            return ssl.create_default_context(cadata=login.ca_pem.decode())
        except (ssl.SSLError, ValueError, UnicodeDecodeError):
            raise CommandError("the certificate authority is not a PEM certificate") from None
    return ssl.create_default_context()


def _parse_time(value: str) -> datetime.datetime:
    parsed = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=datetime.UTC)
    return parsed


# -- the token cache ----------------------------------------------------------------


def _cache_dir(override: str | None) -> Path:
    if override:
        return Path(override)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "hypernetes" / "credentials"


class TokenCache:
    """One cached token per (server, user, tenant), in a file only its owner can read."""

    def __init__(self, directory: Path, login: Login) -> None:
        key = hashlib.sha256(f"{login.server}\0{login.user}\0{login.tenant}".encode()).hexdigest()
        self.directory = directory
        self.path = directory / f"{key[:32]}.json"

    def load(self) -> Token | None:
        try:
            if self.path.stat().st_mode & 0o077:
                return None  # someone widened its mode: do not trust (or use) it
            document = json.loads(self.path.read_text())
            return Token(document["token"], _parse_time(document["expiresAt"]))
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def store(self, token: Token) -> None:
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.directory.chmod(0o700)
        document = {"token": token.value, "expiresAt": _rfc3339(token.expires_at)}
        _write_private(self.path, json.dumps(document).encode())

    def drop(self) -> None:
        self.path.unlink(missing_ok=True)


def _rfc3339(when: datetime.datetime) -> str:
    return when.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# -- credential ---------------------------------------------------------------------


def run_credential(args: argparse.Namespace) -> int:
    info = _exec_info()
    ca_pem = _cluster_ca(info) or _read_ca(args.certificate_authority)
    login = Login(args.server, args.user, args.tenant, ca_pem)
    cache = TokenCache(_cache_dir(args.cache_dir), login)
    token = cache.load()
    if token is None or not token.fresh():
        if not _interactive(info):
            raise CommandError(
                f"no current token for {login.user} in tenant {login.tenant} (expired, or "
                f"never logged in here); run `hypernetes login --server {login.server} --user "
                f"{login.user} --tenant {login.tenant}` again (or use kubectl from a terminal)"
            )
        token = authenticate(login, _prompt_password(login))
        cache.store(token)
    credential = {
        "apiVersion": info.get("apiVersion") or EXEC_API_VERSION,
        "kind": "ExecCredential",
        "status": {"token": token.value, "expirationTimestamp": _rfc3339(token.expires_at)},
    }
    sys.stdout.write(json.dumps(credential) + "\n")
    return 0


def _exec_info() -> dict[str, Any]:
    """What kubectl tells the plugin (KUBERNETES_EXEC_INFO); empty when run by hand."""
    try:
        info = json.loads(os.environ.get("KUBERNETES_EXEC_INFO", "") or "{}")
    except ValueError:
        return {}
    return info if isinstance(info, dict) else {}


def _cluster_ca(info: dict[str, Any]) -> bytes | None:
    cluster = (info.get("spec") or {}).get("cluster") or {}
    data = cluster.get("certificate-authority-data")
    if not isinstance(data, str) or not data:
        return None
    try:
        return base64.b64decode(data)
    except ValueError:
        return None


def _interactive(info: dict[str, Any]) -> bool:
    spec = info.get("spec")
    if isinstance(spec, dict) and "interactive" in spec:
        return bool(spec["interactive"])
    return sys.stdin.isatty()


def _prompt_password(login: Login) -> str:
    if not sys.stdin.isatty():
        raise CommandError("no terminal to ask for the password; use --password-stdin")
    try:
        password = getpass.getpass(f"Password for {login.user} in tenant {login.tenant}: ")
    except EOFError:
        raise CommandError("no password given") from None
    if not password:
        raise CommandError("no password given")
    return password
