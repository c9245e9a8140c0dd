"""`hypernetes server`: the all-in-one server command."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from pathlib import Path

from hypernetes.cli import CommandError


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
