"""The `hypernetes` command line: one sub-command family per part.

Each part that has commands exposes `register(subparsers, common)` in its own
`cli` module; this module only assembles them. `common` is a parent parser
carrying the options every command honours (`--data-dir`). A handler is
stored as `func` on the parsed arguments and returns the exit code.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

DEFAULT_DATA_DIR = "/var/lib/hypernetes"

# Modules with a `register(subparsers, common)` function, in help order.
_COMMAND_MODULES = (
    "hypernetes.allinone",
    "hypernetes.runtime.cli",
    "hypernetes.node.cli",
    "hypernetes.network.cli",
    "hypernetes.auth.cli_login",
    "hypernetes.auth.cli_admin",
)


def default_data_dir() -> str:
    """The data directory when `--data-dir` is not given."""
    return os.environ.get("HYPERNETES_DATA_DIR") or DEFAULT_DATA_DIR


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--data-dir",
        default=default_data_dir(),
        help="state directory (default: $HYPERNETES_DATA_DIR or %(default)s)",
    )
    parser = argparse.ArgumentParser(prog="hypernetes", description=__doc__.splitlines()[0])
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in _COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue  # that part has no commands (yet)
        module.register(subparsers, common)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.func(args)
    except KeyboardInterrupt:
        return 130
    except CommandError as exc:
        print(f"hypernetes: {exc}", file=sys.stderr)
        return 1
    return code


class CommandError(Exception):
    """An error to report to the user as one line, with exit code 1."""


if __name__ == "__main__":
    # Run as `python -m hypernetes.cli`, this file is `__main__`, a second copy of the
    # module; the subcommands raise `hypernetes.cli.CommandError`, so go through that one.
    from hypernetes.cli import main as _main

    sys.exit(_main())
