"""The `image` and `runtime` command families of the `hypernetes` CLI.

Each runtime command is a driver of its own: it opens the runtime state
(re-attaching to running pods), acts, and detaches. Only one driver may hold
a data directory at a time, so do not run these next to a node agent that
uses the same --data-dir.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import termios
import time
import tty
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from .errors import RuntimeFailure
from .images import starter
from .types import ContainerConfig, PodSandboxConfig, Resources

Handler = Callable[[argparse.Namespace], Coroutine[Any, Any, int]]

_QUANTITY = re.compile(r"^(\d+(?:\.\d+)?)(Ki|Mi|Gi|K|M|G)?$")
_UNITS = {None: 1, "K": 1000, "M": 1000**2, "G": 1000**3, "Ki": 1024, "Mi": 1024**2, "Gi": 1024**3}


def _command_error(message: str) -> Exception:
    from hypernetes.cli import CommandError

    return CommandError(message)


def parse_memory(text: str) -> int:
    m = _QUANTITY.match(text)
    if not m:
        raise argparse.ArgumentTypeError(f"bad memory quantity {text!r} (e.g. 256Mi)")
    return int(float(m.group(1)) * _UNITS[m.group(2)])


def parse_cpu(text: str) -> float:
    try:
        return int(text[:-1]) / 1000 if text.endswith("m") else float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"bad CPU quantity {text!r} (e.g. 1 or 500m)") from None


def _run(handler: Handler) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        try:
            return asyncio.run(handler(args))
        except RuntimeFailure as exc:
            raise _command_error(f"{exc.reason}: {exc.message}") from None

    return run


def _runtime(args: argparse.Namespace) -> Any:
    from .service import Runtime

    return Runtime(args.data_dir, kernel=getattr(args, "kernel", "hypernetes"))


# --- image ---------------------------------------------------------------------------


class _Progress:
    """Per-layer pull progress on stderr. On a terminal: one line per layer,
    redrawn in place (at most 10 times a second); otherwise: one line per
    layer when it is complete, so logs stay readable."""

    def __init__(self, stream: Any = None) -> None:
        self.out = stream or sys.stderr
        self.tty = self.out.isatty()
        self.layers: dict[str, tuple[int, int]] = {}
        self.reported: set[str] = set()
        self.drawn = 0  # lines on screen from the last redraw
        self.last = 0.0

    def __call__(self, digest: str, done: int, total: int) -> None:
        self.layers[digest] = (done, total)
        complete = total > 0 and done >= total
        if not self.tty:
            if complete and digest not in self.reported:
                self.reported.add(digest)
                self.out.write(f"{digest[7:19]}: done {_mb(total)}\n")
                self.out.flush()
            return
        now = time.monotonic()
        if complete or now - self.last >= 0.1:
            self.last = now
            self._redraw()

    def _redraw(self) -> None:
        lines = []
        for d, (n, t) in self.layers.items():
            if t and n >= t:
                state = f"done {_mb(t)}"
            elif t:
                bar = "#" * (20 * n // t)
                state = f"[{bar:20}] {_mb(n)} / {_mb(t)}"
            else:
                state = f"{_mb(n)}"
            lines.append(f"\x1b[2K{d[7:19]}: {state}")
        up = f"\x1b[{self.drawn}A" if self.drawn else ""
        self.out.write(up + "\r" + "\n".join(lines) + "\n")
        self.out.flush()
        self.drawn = len(lines)

    def done(self) -> None:
        if self.tty and self.layers:
            self._redraw()
        total = sum(t for _, t in self.layers.values())
        n = len(self.layers)
        self.out.write(f"fetched {n} layer{'s' if n != 1 else ''}, {_mb(total)}\n")
        self.out.flush()


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


async def _image_pull(args: argparse.Namespace) -> int:
    rt = _runtime(args)
    auth = None
    if args.username:
        password = sys.stdin.readline().rstrip("\n") if args.password_stdin else ""
        auth = (args.username, password)
    progress = _Progress()
    info = await rt.pull_image(
        args.ref, auth=auth, progress=progress, insecure=tuple(args.insecure_registry)
    )
    progress.done()
    print(info.id)
    return 0


async def _image_import(args: argparse.Namespace) -> int:
    info = await _runtime(args).import_image(args.file, args.tag)
    print(info.id)
    return 0


async def _image_build_busybox(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="hn-starter-") as tmp:
        archive = Path(tmp) / "busybox.tar"
        try:
            await asyncio.to_thread(starter.write_busybox_archive, archive, args.tag)
        except (OSError, subprocess.CalledProcessError) as exc:
            raise _command_error(f"cannot build the busybox image: {exc}") from None
        info = await _runtime(args).import_image(str(archive), args.tag)
    print(f"{args.tag} {info.id}")
    return 0


async def _image_ls(args: argparse.Namespace) -> int:
    images = await _runtime(args).list_images()
    if args.json:
        print(json.dumps([i.to_dict() for i in images], indent=2))
        return 0
    print(f"{'REPOSITORY:TAG':50} {'IMAGE ID':14} {'SIZE':>10}")
    for i in images:
        for tag in i.repo_tags or ["<none>"]:
            print(f"{tag:50} {i.id[7:19]:14} {i.size / 1e6:>8.1f}MB")
    return 0


async def _image_rm(args: argparse.Namespace) -> int:
    store = _runtime(args).images
    for ref in args.refs:
        info = await asyncio.to_thread(store.remove, ref, args.force)
        print(f"removed {ref} ({info.id[7:19]})")
    return 0


async def _image_gc(args: argparse.Namespace) -> int:
    removed = await asyncio.to_thread(_runtime(args).images.gc, True, args.all)
    print(f"removed {removed} unreferenced images, blobs and disks")
    return 0


# --- runtime ---------------------------------------------------------------------------


def _env(items: list[str]) -> dict[str, str]:
    env = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            value = os.environ.get(key, "")
        env[key] = value
    return env


async def _runtime_run(args: argparse.Namespace) -> int:
    rt = _runtime(args)
    if await rt.image_status(args.image) is None:
        await rt.pull_image(
            args.image, progress=_Progress(), insecure=tuple(args.insecure_registry)
        )
    command = list(args.command)
    if command and command[0] == "--":
        command = command[1:]
    res = Resources(cpu_limit=args.cpus or 0.0, memory_limit=args.memory or 0)
    await rt.open()
    sid = cid = None
    try:
        sid = await rt.run_pod_sandbox(
            PodSandboxConfig(name=args.name or "run", runtime=args.runtime, resources=res)
        )
        if args.verbose:
            st = await rt.pod_sandbox_status(sid)
            print(
                f"pod {sid}: {st.runtime} {st.accel or ''} {st.vcpus or ''} vCPU "
                f"{st.memory_mib or ''} MiB",
                file=sys.stderr,
            )
        cid = await rt.create_container(
            sid,
            ContainerConfig(
                name=args.name or "run",
                image=args.image,
                command=command,
                env=_env(args.env),
                working_dir=args.workdir or "",
                stdin=args.interactive,
                resources=res,
            ),
        )

        def show(stream: str, data: bytes) -> None:
            out = sys.stdout if stream == "stdout" else sys.stderr
            out.buffer.write(data)
            out.flush()

        rt.add_output_listener(cid, show)
        await rt.start_container(cid)
        feeder = None
        if args.interactive:
            feeder = asyncio.create_task(_feed_stdin(lambda d: rt.write_stdin(cid, d)))
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for s in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(s, stop.set)
        waiter = asyncio.create_task(rt.wait_container(cid))
        stopper = asyncio.create_task(stop.wait())
        await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
        if not waiter.done():
            await rt.stop_container(cid, 5)
        stopper.cancel()
        status = await waiter
        if feeder:
            feeder.cancel()
        if status.reason not in ("Completed", "Error"):
            print(f"container {status.reason}: {status.message}".rstrip(": "), file=sys.stderr)
        return status.exit_code
    except RuntimeFailure as exc:
        if exc.reason == "ContainerCannotRun":
            print(f"hypernetes: {exc.reason}: {exc.message}", file=sys.stderr)
            return 127 if "not found" in exc.message else 126
        raise
    finally:
        if sid is not None:
            await rt.stop_pod_sandbox(sid, grace=2)
            if args.rm:
                await rt.remove_pod_sandbox(sid)
        await rt.close()


async def _feed_stdin(write: Callable[[bytes], None]) -> None:
    loop = asyncio.get_running_loop()
    while data := await loop.run_in_executor(None, os.read, 0, 65536):
        write(data)
    write(b"")


async def _runtime_ps(args: argparse.Namespace) -> int:
    async with _runtime(args) as rt:
        pods = await rt.list_pod_sandboxes()
        containers = await rt.list_containers()
    if args.json:
        print(
            json.dumps(
                {
                    "pods": [p.to_dict() for p in pods],
                    "containers": [c.to_dict() for c in containers],
                },
                indent=2,
            )
        )
        return 0
    print(f"{'POD':17} {'NAME':20} {'RUNTIME':8} {'STATE':9} {'ACCEL':6} CONTAINERS")
    for p in pods:
        print(
            f"{p.id:17} {p.name[:20]:20} {p.runtime:8} {p.state.value:9} {p.accel or '-':6} "
            f"{len(p.containers)}"
        )
    for c in containers:
        print(f"  {c.id} {c.name} {c.state.value} exit={c.exit_code} {c.reason}")
    return 0


async def _runtime_inspect(args: argparse.Namespace) -> int:
    async with _runtime(args) as rt:
        try:
            obj = (await rt.pod_sandbox_status(args.id)).to_dict()
        except RuntimeFailure:
            obj = (await rt.container_status(args.id)).to_dict()
    print(json.dumps(obj, indent=2))
    return 0


async def _runtime_logs(args: argparse.Namespace) -> int:
    from .crilog import parse_line

    async with _runtime(args) as rt:
        status = await rt.container_status(args.id)
    with open(status.log_path, "rb") as f:
        for line in f:
            _, stream, full, content = parse_line(line)
            out = sys.stdout if stream == "stdout" else sys.stderr
            out.buffer.write(content + (b"\n" if full else b""))
    return 0


async def _runtime_exec(args: argparse.Namespace) -> int:
    command = [c for c in args.command if c != "--"] if args.command[:1] == ["--"] else args.command
    async with _runtime(args) as rt:
        use_tty = args.tty and sys.stdin.isatty()
        rows, cols = os.get_terminal_size() if use_tty else (24, 80)[::-1]
        session = await rt.exec(
            args.id,
            command,
            tty=use_tty,
            stdin=args.interactive,
            rows=rows if use_tty else 24,
            cols=cols if use_tty else 80,
        )
        saved = termios.tcgetattr(0) if use_tty else None
        loop = asyncio.get_running_loop()
        tasks = []
        try:
            if use_tty:
                tty.setraw(0)

                def winch() -> None:
                    size = os.get_terminal_size()
                    tasks.append(loop.create_task(session.resize(size.lines, size.columns)))

                loop.add_signal_handler(signal.SIGWINCH, winch)
            if args.interactive:
                tasks.append(asyncio.create_task(_feed_session(session)))

            async def pump(stream: str) -> None:
                out = sys.stdout if stream == "stdout" else sys.stderr
                async for chunk in session.output(stream):
                    out.buffer.write(chunk)
                    out.flush()

            await asyncio.gather(pump("stdout"), pump("stderr"))
            return await session.wait()
        finally:
            for t in tasks:
                t.cancel()
            if saved is not None:
                termios.tcsetattr(0, termios.TCSADRAIN, saved)


async def _feed_session(session: Any) -> None:
    loop = asyncio.get_running_loop()
    while data := await loop.run_in_executor(None, os.read, 0, 65536):
        await session.write(data)
    await session.close_stdin()


async def _runtime_stop(args: argparse.Namespace) -> int:
    async with _runtime(args) as rt:
        for sid in args.ids:
            await rt.stop_pod_sandbox(sid, grace=args.grace)
            if args.rm:
                await rt.remove_pod_sandbox(sid)
    return 0


async def _runtime_info(args: argparse.Namespace) -> int:
    from . import accel, assets, template

    boot = await asyncio.to_thread(assets.boot_assets, args.kernel)
    chosen, why = await asyncio.to_thread(accel.choose, boot.kernel)
    templates = []  # the VM templates on this host (built on first use)
    if template.ROOT.is_dir():
        for d in sorted(template.ROOT.iterdir()):
            with contextlib.suppress(OSError, ValueError):
                templates.append({"key": d.name, **json.loads((d / "ready").read_text())})
    print(
        json.dumps(
            {
                "accel": chosen,
                "why": why,
                "kernel": str(boot.kernel),
                "initrd": str(boot.initrd),
                "flavour": boot.flavour,
                "templates_enabled": template.enabled(),
                "templates": templates,
            },
            indent=2,
        )
    )
    return 0


def register(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    image = subparsers.add_parser("image", help="manage container images")
    isub = image.add_subparsers(dest="image_command", required=True, metavar="COMMAND")
    p = isub.add_parser("pull", parents=[common], help="pull an image from a registry")
    p.add_argument("ref")
    p.add_argument(
        "--insecure-registry",
        action="append",
        default=[],
        metavar="HOST[:PORT]",
        help="allow plain HTTP to this registry (loopback always may)",
    )
    p.add_argument("--username")
    p.add_argument("--password-stdin", action="store_true")
    p.set_defaults(func=_run(_image_pull))
    p = isub.add_parser(
        "import", parents=[common], help="import an OCI layout or docker-archive tarball"
    )
    p.add_argument("file")
    p.add_argument("--tag", help="the reference to store it under")
    p.set_defaults(func=_run(_image_import))
    p = isub.add_parser(
        "build-busybox",
        parents=[common],
        help="make a starter image from the host's busybox-static (no registry needed)",
    )
    p.add_argument("--tag", default="example.local/busybox:1")
    p.set_defaults(func=_run(_image_build_busybox))
    p = isub.add_parser("ls", parents=[common], help="list images")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_run(_image_ls))
    p = isub.add_parser("rm", parents=[common], help="remove images (by tag, digest or id)")
    p.add_argument("refs", nargs="+")
    p.add_argument("--force", action="store_true", help="even if a pod sandbox uses it")
    p.set_defaults(func=_run(_image_rm))
    p = isub.add_parser("gc", parents=[common], help="delete unreferenced blobs and disks")
    p.add_argument("--all", action="store_true", help="also every image no pod sandbox uses")
    p.set_defaults(func=_run(_image_gc))

    runtime = subparsers.add_parser("runtime", help="pod sandboxes and containers (debugging)")
    rsub = runtime.add_subparsers(dest="runtime_command", required=True, metavar="COMMAND")
    p = rsub.add_parser("run", parents=[common], help="run one container in a fresh pod")
    p.add_argument("--runtime", choices=("vm", "runc"), default="vm")
    p.add_argument("--rm", action="store_true", help="remove the pod afterwards")
    p.add_argument("--name")
    p.add_argument("--kernel", choices=("hypernetes", "debian"), default="hypernetes")
    p.add_argument("--memory", type=parse_memory, help="memory limit, e.g. 256Mi")
    p.add_argument("--cpus", type=parse_cpu, help="CPU limit, e.g. 1 or 500m")
    p.add_argument("-e", "--env", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("-w", "--workdir")
    p.add_argument("-i", "--interactive", action="store_true", help="pass stdin")
    p.add_argument("-v", "--verbose", action="store_true", help="report the VM's size and accel")
    p.add_argument("--insecure-registry", action="append", default=[], metavar="HOST[:PORT]")
    p.add_argument("image")
    p.add_argument("command", nargs=argparse.REMAINDER)
    p.set_defaults(func=_run(_runtime_run))
    p = rsub.add_parser("ps", parents=[common], help="list pods and containers")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_run(_runtime_ps))
    p = rsub.add_parser("inspect", parents=[common], help="status of a pod or container")
    p.add_argument("id")
    p.set_defaults(func=_run(_runtime_inspect))
    p = rsub.add_parser("logs", parents=[common], help="print a container's log")
    p.add_argument("id")
    p.set_defaults(func=_run(_runtime_logs))
    p = rsub.add_parser("exec", parents=[common], help="run a command in a container")
    p.add_argument("-t", "--tty", action="store_true")
    p.add_argument("-i", "--interactive", action="store_true")
    p.add_argument("id")
    p.add_argument("command", nargs=argparse.REMAINDER)
    p.set_defaults(func=_run(_runtime_exec))
    p = rsub.add_parser("stop", parents=[common], help="stop pods")
    p.add_argument("--grace", type=float, default=10.0)
    p.add_argument("--rm", action="store_true", help="and remove them")
    p.add_argument("ids", nargs="+")
    p.set_defaults(func=_run(_runtime_stop))
    p = rsub.add_parser("info", parents=[common], help="accelerator and guest kernel in use")
    p.add_argument("--kernel", choices=("hypernetes", "debian"), default="hypernetes")
    p.set_defaults(func=_run(_runtime_info))
