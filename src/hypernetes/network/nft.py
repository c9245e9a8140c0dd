"""nftables through libnftables (the library behind `nft`), in any network namespace.

libnftables takes the same command language as `nft -f` and applies a whole
batch as one kernel transaction, so a ruleset is installed or replaced
atomically. It is loaded with ctypes (the C API is five functions and stable;
Debian's python3-nftables binding does the same but is not installable into a
virtualenv). Its netlink socket lives in the namespace of the thread that
creates the context, so every batch runs in a thread inside the target
namespace (see `namespaces.run_in_netns`).
"""

from __future__ import annotations

import ctypes
import json
import threading
from typing import Any

from .namespaces import run_in_netns

NFT_CTX_OUTPUT_JSON = 1 << 4
NFT_CTX_OUTPUT_HANDLE = 1 << 3


class NftError(RuntimeError):
    """libnftables rejected a batch (the message is nft's own error output)."""


_lib: ctypes.CDLL | None = None
_lib_lock = threading.Lock()


def _library() -> ctypes.CDLL:
    global _lib
    with _lib_lock:
        if _lib is None:
            try:
                lib = ctypes.CDLL("libnftables.so.1", use_errno=True)
            except OSError as exc:
                raise NftError(
                    "libnftables.so.1 is missing (install the nftables package; "
                    "scripts/setup.d/network.sh does)"
                ) from exc
            lib.nft_ctx_new.restype = ctypes.c_void_p
            lib.nft_ctx_new.argtypes = [ctypes.c_uint32]
            lib.nft_ctx_free.argtypes = [ctypes.c_void_p]
            lib.nft_ctx_buffer_output.argtypes = [ctypes.c_void_p]
            lib.nft_ctx_buffer_error.argtypes = [ctypes.c_void_p]
            lib.nft_ctx_get_output_buffer.argtypes = [ctypes.c_void_p]
            lib.nft_ctx_get_output_buffer.restype = ctypes.c_char_p
            lib.nft_ctx_get_error_buffer.argtypes = [ctypes.c_void_p]
            lib.nft_ctx_get_error_buffer.restype = ctypes.c_char_p
            lib.nft_ctx_output_set_flags.argtypes = [ctypes.c_void_p, ctypes.c_uint]
            lib.nft_run_cmd_from_buffer.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
            lib.nft_run_cmd_from_buffer.restype = ctypes.c_int
            _lib = lib
        return _lib


def _run_here(commands: str, flags: int) -> str:
    lib = _library()
    ctx = lib.nft_ctx_new(0)
    if not ctx:
        raise NftError("nft_ctx_new failed")
    try:
        lib.nft_ctx_buffer_output(ctx)
        lib.nft_ctx_buffer_error(ctx)
        if flags:
            lib.nft_ctx_output_set_flags(ctx, flags)
        rc = lib.nft_run_cmd_from_buffer(ctx, commands.encode())
        out = (lib.nft_ctx_get_output_buffer(ctx) or b"").decode()
        err = (lib.nft_ctx_get_error_buffer(ctx) or b"").decode()
    finally:
        lib.nft_ctx_free(ctx)
    if rc != 0:
        raise NftError(err.strip() or f"nft failed (rc={rc})")
    return out


def run(netns: str | None, commands: str) -> str:
    """Apply a batch of nft commands atomically in the namespace at path `netns`."""
    return run_in_netns(netns, lambda: _run_here(commands, 0))


def query(netns: str | None, command: str) -> list[dict[str, Any]]:
    """Run a list command and return the JSON objects (without the metainfo entry)."""
    out = run_in_netns(netns, lambda: _run_here(command, NFT_CTX_OUTPUT_JSON))
    if not out.strip():
        return []
    items = json.loads(out).get("nftables", [])
    return [i for i in items if "metainfo" not in i]


def tables(netns: str | None) -> set[tuple[str, str]]:
    """(family, name) of every table in the namespace."""
    return {(t["table"]["family"], t["table"]["name"]) for t in query(netns, "list tables")}


def set_elements(netns: str | None, family: str, table: str, name: str) -> list[Any]:
    """Elements of a named set, as nft's JSON renders them (concatenations as lists)."""
    for item in query(netns, f"list set {family} {table} {name}"):
        if "set" in item:
            elems = item["set"].get("elem", [])
            return [e["concat"] if isinstance(e, dict) and "concat" in e else e for e in elems]
    return []
