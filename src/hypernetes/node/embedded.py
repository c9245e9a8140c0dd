"""The node agent inside `hypernetes server` (all-in-one): this machine is a node.

It runs as one of the server's background jobs but talks to the API like a
remote agent does: over HTTPS, with node credentials of its own
(`system:node:<host>` in `system:nodes`, issued from the cluster CA), and
keeps its pods in the server's data dir. Its stream server takes any free
port; the Node object says which.
"""

from __future__ import annotations

import asyncio
import logging
import re
import socket
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hypernetes.api.server import Server

log = logging.getLogger(__name__)


def default_node_name() -> str:
    name = re.sub(r"[^a-z0-9.-]", "-", socket.gethostname().lower()).strip("-.")
    return name or "node"


def _serving_certificate(data_dir: Path, name: str) -> tuple[Path, Path]:
    """The stream server's certificate, from the node-serving CA (the API server makes
    that CA when it starts, before background jobs run)."""
    from hypernetes.api import pki
    from hypernetes.api.streams import SERVING_CA

    ca = pki.read_pair(data_dir / f"{SERVING_CA}.crt", data_dir / f"{SERVING_CA}.key")
    crt, key = data_dir / "node-serving.crt", data_dir / "node-serving.key"
    pki.write_pair(pki.issue(ca, f"system:node:{name}", server_names=(name,)), crt, key)
    return crt, key


async def run_embedded_agent(server: Server) -> None:
    from hypernetes.client import Client, load_kubeconfig
    from hypernetes.node.agent import NodeAgent
    from hypernetes.runtime import Runtime, RuntimeFailure

    name = default_node_name()
    path = server.issue_kubeconfig("node", f"system:node:{name}", ("system:nodes",))
    serving = _serving_certificate(server.config.data_dir, name)
    stop = asyncio.Event()
    async with Client(load_kubeconfig(path)) as client:
        agent = NodeAgent(
            client,
            Runtime(server.config.data_dir),
            server.config.data_dir,
            name,
            stream_listen=(
                "127.0.0.1" if server.config.host in ("127.0.0.1", "localhost") else "0.0.0.0",
                0,
            ),
            serving_cert=serving,
        )
        try:
            await agent.run(stop)
        except RuntimeFailure as exc:
            log.error("the embedded node agent cannot run: %s", exc)
        finally:
            stop.set()
