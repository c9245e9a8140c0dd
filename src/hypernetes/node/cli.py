"""`hypernetes agent` (run the node agent) and `hypernetes token` (join tokens).

    hypernetes token create [--ttl 24h]          # admin: prints a join token
    hypernetes agent --server URL --token TOKEN --data-dir DIR [--node-name N]
    hypernetes agent --kubeconfig FILE --data-dir DIR [--node-name N]

With a token the agent gets node credentials of its own on first start (see
hypernetes/node/join.py) and keeps them in DIR/node.kubeconfig. SIGINT and
SIGTERM stop the agent and leave the pods running: the next agent on the
same data dir adopts them.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import datetime
import logging
import os
import re
import signal
import socket
from pathlib import Path

from hypernetes.cli import CommandError

TOKEN_TTL = "24h"


def register(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = subparsers.add_parser("agent", parents=[common], help="run the node agent")
    p.add_argument("--server", help="the API server's URL (with --token)")
    p.add_argument("--token", help="a join token from `hypernetes token create`")
    p.add_argument("--kubeconfig", help="node credentials to use instead of a join token")
    p.add_argument("--node-name", default=None, help="the Node's name (default: host name)")
    p.add_argument(
        "--stream-port",
        type=int,
        default=10250,
        help="port of the stream server the API server uses for logs/exec (0: any)",
    )
    p.add_argument(
        "--insecure-registry",
        action="append",
        default=[],
        metavar="HOST:PORT",
        help="a registry to reach over plain HTTP",
    )
    p.add_argument("--heartbeat", type=float, default=10.0, help=argparse.SUPPRESS)
    p.set_defaults(func=run_agent)

    token = subparsers.add_parser("token", help="manage node join tokens (platform admin)")
    actions = token.add_subparsers(dest="action", required=True, metavar="ACTION")
    c = actions.add_parser("create", parents=[common], help="create a join token")
    c.add_argument("--ttl", default=TOKEN_TTL, help="lifetime, e.g. 30m, 24h, 7d (default 24h)")
    c.add_argument("--description", default="")
    c.set_defaults(func=create_token)
    ls = actions.add_parser("list", parents=[common], help="list join tokens")
    ls.set_defaults(func=list_tokens)
    rm = actions.add_parser("delete", parents=[common], help="delete a join token")
    rm.add_argument("id", help="the token's id (its first 6 characters)")
    rm.set_defaults(func=delete_token)


def parse_ttl(value: str) -> float:
    match = re.fullmatch(r"(\d+)([smhd])", value.strip())
    if match is None or int(match.group(1)) == 0:
        raise CommandError(f"--ttl must look like 30m, 24h or 7d, got {value!r}")
    return int(match.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[match.group(2)]


def node_name(value: str | None) -> str:
    name = (value or socket.gethostname()).lower()
    if not re.fullmatch(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?", name):
        raise CommandError(f"invalid node name {name!r}: use --node-name")
    return name


def run_agent(args: argparse.Namespace) -> int:
    from hypernetes.client import ConfigError, load_kubeconfig
    from hypernetes.node.join import KUBECONFIG, JoinError, join

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    data_dir = Path(args.data_dir)
    name = node_name(args.node_name)
    kubeconfig = args.kubeconfig
    if kubeconfig is None:
        joined = data_dir / KUBECONFIG
        if not joined.exists():
            if not (args.server and args.token):
                raise CommandError("give --server and --token (or --kubeconfig)")
            data_dir.mkdir(parents=True, exist_ok=True)
            try:
                asyncio.run(join(args.server, args.token, data_dir, name))
            except (JoinError, OSError) as exc:
                raise CommandError(f"cannot join {args.server}: {exc}") from None
        kubeconfig = str(joined)
    try:
        config = load_kubeconfig(kubeconfig)
    except ConfigError as exc:
        raise CommandError(str(exc)) from None
    asyncio.run(_run(args, config, data_dir, name))
    return 0


async def _run(args: argparse.Namespace, config: object, data_dir: Path, name: str) -> None:
    from hypernetes.client import Client, Config
    from hypernetes.node.agent import NodeAgent
    from hypernetes.runtime import Runtime, RuntimeFailure

    assert isinstance(config, Config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with Client(config) as client:
        agent = NodeAgent(
            client,
            Runtime(data_dir),
            data_dir,
            name,
            insecure_registries=tuple(args.insecure_registry),
            heartbeat=args.heartbeat,
            stream_listen=("0.0.0.0", args.stream_port),
            serving_cert=_serving(data_dir),
        )
        try:
            await agent.run(stop)
        except RuntimeFailure as exc:
            raise CommandError(str(exc)) from None


def _serving(data_dir: Path) -> tuple[Path, Path] | None:
    from hypernetes.node.join import serving_paths

    crt, key = serving_paths(data_dir)
    return (crt, key) if crt.exists() and key.exists() else None


# -- join tokens --------------------------------------------------------------------


def _admin_config(args: argparse.Namespace) -> object:
    from hypernetes.client import ConfigError, load_kubeconfig

    path = os.environ.get("KUBECONFIG") or str(Path(args.data_dir) / "admin.kubeconfig")
    try:
        return load_kubeconfig(path)
    except ConfigError as exc:
        raise CommandError(str(exc)) from None


def create_token(args: argparse.Namespace) -> int:
    from hypernetes.api.nodes import new_token, token_secret
    from hypernetes.client import SECRETS, ApiError, Client, ClientError, Config
    from hypernetes.node.join import ca_key_text

    ttl = parse_ttl(args.ttl)
    config = _admin_config(args)
    assert isinstance(config, Config)
    if config.ca_pem is None:
        raise CommandError("the kubeconfig names no certificate authority")
    token_id, secret = new_token()

    async def create() -> None:
        async with Client(config) as client:
            await client.create(SECRETS, token_secret(token_id, secret, ttl, args.description),
                                "kube-system")  # fmt: skip

    try:
        asyncio.run(create())
    except (ApiError, ClientError) as exc:
        raise CommandError(f"cannot create the token: {exc}") from None
    print(f"{token_id}.{secret}.{ca_key_text(config.ca_pem)}")
    return 0


def list_tokens(args: argparse.Namespace) -> int:
    from hypernetes.client import SECRETS, ApiError, Client, ClientError, Config

    config = _admin_config(args)
    assert isinstance(config, Config)

    async def read() -> list[dict[str, str]]:
        async with Client(config) as client:
            found = await client.list(SECRETS, "kube-system")
        out = []
        for s in found.get("items") or []:
            if s.get("type") != "bootstrap.kubernetes.io/token":
                continue
            data = {k: base64.b64decode(v).decode() for k, v in (s.get("data") or {}).items()}
            out.append(data)
        return out

    try:
        tokens = asyncio.run(read())
    except (ApiError, ClientError) as exc:
        raise CommandError(f"cannot list tokens: {exc}") from None
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    print(f"{'ID':<8} {'EXPIRES':<22} DESCRIPTION")
    for t in tokens:
        expires = t.get("expiration", "")
        state = " (expired)" if expires < now else ""
        print(f"{t.get('token-id', ''):<8} {expires + state:<22} {t.get('description', '')}")
    return 0


def delete_token(args: argparse.Namespace) -> int:
    from hypernetes.client import SECRETS, ApiError, Client, ClientError, Config, NotFound

    config = _admin_config(args)
    assert isinstance(config, Config)

    async def delete() -> None:
        async with Client(config) as client:
            await client.delete(SECRETS, f"bootstrap-token-{args.id}", "kube-system")

    try:
        asyncio.run(delete())
    except NotFound:
        raise CommandError(f"no join token {args.id}") from None
    except (ApiError, ClientError) as exc:
        raise CommandError(f"cannot delete the token: {exc}") from None
    print(f"token {args.id} deleted")
    return 0
