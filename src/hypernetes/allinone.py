"""`hypernetes server`: the all-in-one server.

It assembles the parts the way separate processes on separate machines
would: the API server (with identity), then the controllers, which talk to
it over HTTPS with a client certificate of their own, as any client does.
This module sits above `api` and `controllers`, so neither imports the other.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from pathlib import Path
from typing import TYPE_CHECKING

from hypernetes.cli import CommandError

if TYPE_CHECKING:
    from hypernetes.api.server import Server


def register(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = subparsers.add_parser("server", parents=[common], help="run the all-in-one server")
    p.add_argument("--listen", default="127.0.0.1:6443", help="address:port (default %(default)s)")
    p.add_argument(
        "--advertise-name",
        action="append",
        default=[],
        help="extra host name or address for the serving certificate",
    )
    p.add_argument(
        "--compact-interval",
        type=float,
        default=300.0,
        metavar="SECONDS",
        help="how often to compact the store's history (default %(default)s)",
    )
    p.add_argument(
        "--no-controllers",
        action="store_true",
        help="do not run the controllers (run them elsewhere)",
    )
    p.add_argument(
        "--no-agent",
        action="store_true",
        help="do not run a node agent in the server (this machine runs no pods)",
    )
    p.set_defaults(func=run_server)


def _parse_listen(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise CommandError(f"--listen must be HOST:PORT, got {value!r}")
    return host.strip("[]"), int(port)


def run_server(args: argparse.Namespace) -> int:
    from hypernetes.api.server import Server, ServerConfig
    from hypernetes.store import StoreError

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    host, port = _parse_listen(args.listen)
    if args.compact_interval <= 0:
        raise CommandError("--compact-interval must be positive")
    config = ServerConfig(
        Path(args.data_dir),
        host,
        port,
        tuple(args.advertise_name),
        compact_interval=args.compact_interval,
    )

    async def main() -> None:
        server = Server(config)
        if not args.no_controllers:
            server.background.append(run_controllers)
        if not args.no_agent:
            from hypernetes.node.embedded import run_embedded_agent

            server.background.append(run_embedded_agent)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            await server.start()
        except StoreError as exc:
            raise CommandError(str(exc)) from None
        except OSError as exc:
            await server.stop()
            raise CommandError(f"cannot listen on {args.listen}: {exc.strerror}") from None
        print(
            f"hypernetes: serving on {server.url}; export KUBECONFIG={server.admin_kubeconfig}",
            flush=True,
        )
        await stop.wait()
        await server.stop()

    asyncio.run(main())
    return 0


async def run_controllers(server: Server) -> None:
    """Run the controller manager against `server`, as its own client."""
    from hypernetes.client import Client, load_kubeconfig
    from hypernetes.controllers import ControllerManager, default_controllers

    path = server.issue_kubeconfig(
        "controller-manager", "system:kube-controller-manager", ("system:masters",)
    )
    stop = asyncio.Event()
    async with Client(load_kubeconfig(path)) as client:
        manager = ControllerManager(client, default_controllers(client))
        try:
            await manager.run(stop)
        finally:
            stop.set()
