"""Network namespaces without forking: create, delete, enter, and netlink sockets inside them.

pyroute2's own netns helpers fork a child process per socket, which costs more
than the whole of a pod attach. setns(2) with CLONE_NEWNET only changes the
calling *thread*, so here a worker thread enters the namespace, does its work
(opens a socket, writes a sysctl, runs an nftables batch) and goes back to its
own namespace; a socket keeps the namespace it was created in, so the
returned netlink socket is then used from any thread.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import ctypes
import errno
import os
import socket
import threading
from collections.abc import Callable, Iterator
from typing import TypeVar

from pyroute2 import IPRoute

NETNS_RUN_DIR = "/run/netns"
CLONE_NEWNET = 0x40000000
MS_BIND = 4096
MS_REC = 16384
MS_SHARED = 1 << 20
MNT_DETACH = 2

T = TypeVar("T")

_libc = ctypes.CDLL(None, use_errno=True)  # the C library this process already uses
_run_dir_lock = threading.Lock()
_run_dir_ready = False


def netns_path(ns: str) -> str:
    """A namespace given by name (in /run/netns) or by path (/proc/PID/ns/net, ...)."""
    return ns if "/" in ns else os.path.join(NETNS_RUN_DIR, ns)


def _nsfs_dev() -> int:
    return os.stat("/proc/self/ns/net").st_dev


def is_netns(path: str) -> bool:
    """True if `path` is a live network namespace handle (an nsfs file), not a stale mountpoint."""
    try:
        return os.stat(path).st_dev == _nsfs_dev()
    except OSError:
        return False


def netns_id(path: str) -> str | None:
    """A stable identity (device:inode) of a namespace, or None if it is gone."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return f"{st.st_dev}:{st.st_ino}" if st.st_dev == _nsfs_dev() else None


def _check(rc: int, what: str, path: str = "") -> None:
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}", path or None)


def _setns(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        _check(_libc.setns(fd, CLONE_NEWNET), "setns", path)
    finally:
        os.close(fd)


class _Workers:
    """A few long-lived threads that enter a namespace per task and return home after.

    Creating a thread costs milliseconds on a loaded machine, setns(2) tens of
    microseconds: an attach runs several namespace tasks, so they are reused.
    """

    def __init__(self) -> None:
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=4, thread_name_prefix="hn-netns", initializer=self._init
        )
        self._local = threading.local()

    def _init(self) -> None:
        self._local.home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        self._local.home_id = os.fstat(self._local.home).st_ino

    def _task(self, path: str | None, fn: Callable[[], T], unshare: bool) -> T:
        home = self._local.home
        if os.stat("/proc/thread-self/ns/net").st_ino != self._local.home_id:
            _check(_libc.setns(home, CLONE_NEWNET), "setns home")
        try:
            if unshare:
                _check(_libc.unshare(CLONE_NEWNET), "unshare")
            elif path is not None:
                _setns(path)
            return fn()
        finally:
            _check(_libc.setns(home, CLONE_NEWNET), "setns home")

    def run(self, path: str | None, fn: Callable[[], T], unshare: bool = False) -> T:
        return self._pool.submit(self._task, path, fn, unshare).result()


_workers = _Workers()


def run_in_netns(path: str | None, fn: Callable[[], T]) -> T:
    """Run `fn` in a thread that is inside the namespace at `path` (None: run it here)."""
    if path is None:
        return fn()
    return _workers.run(path, fn)


def _ensure_run_dir() -> None:
    """Make /run/netns a shared mount, as iproute2 does, so containers see new namespaces."""
    global _run_dir_ready
    with _run_dir_lock:
        if _run_dir_ready:
            return
        os.makedirs(NETNS_RUN_DIR, exist_ok=True)
        d = NETNS_RUN_DIR.encode()
        if _libc.mount(b"", d, b"none", MS_SHARED | MS_REC, None) != 0:
            if ctypes.get_errno() != errno.EINVAL:
                _check(-1, "make-shared", NETNS_RUN_DIR)
            # Not a mount point yet: bind it onto itself first.
            _check(_libc.mount(d, d, b"none", MS_BIND | MS_REC, None), "bind", NETNS_RUN_DIR)
            _check(_libc.mount(b"", d, b"none", MS_SHARED | MS_REC, None), "make-shared")
        _run_dir_ready = True


def create_netns(name: str) -> str:
    """Create the named namespace (with loopback up); return its path. Existing: left as is."""
    path = netns_path(name)
    if is_netns(path):
        return path
    _ensure_run_dir()
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL, 0o444)
        os.close(fd)
    except FileExistsError:
        pass  # a stale mountpoint file from an interrupted create: reuse it

    def body() -> None:
        src = f"/proc/self/task/{threading.get_native_id()}/ns/net".encode()
        _check(_libc.mount(src, path.encode(), b"none", MS_BIND, None), "mount", path)

    try:
        _workers.run(None, body, unshare=True)
        with netlink(path) as ipr:
            ipr.link("set", index=1, state="up")  # lo
    except BaseException:
        delete_netns(name)
        raise
    return path


def delete_netns(name: str) -> bool:
    """Unmount and remove a named namespace. Returns False if it did not exist."""
    path = netns_path(name)
    if not os.path.lexists(path):
        return False
    if _libc.umount2(path.encode(), MNT_DETACH) != 0 and ctypes.get_errno() not in (
        errno.EINVAL,
        errno.ENOENT,
    ):
        _check(-1, "umount", path)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    return True


def list_netns(prefix: str = "") -> list[str]:
    try:
        return sorted(n for n in os.listdir(NETNS_RUN_DIR) if n.startswith(prefix))
    except FileNotFoundError:
        return []


@contextlib.contextmanager
def netlink(path: str | None) -> Iterator[IPRoute]:
    """An rtnetlink connection (pyroute2 IPRoute) bound to the namespace at `path`."""
    if path is None:
        ipr = IPRoute()
    else:
        sock = run_in_netns(
            path,
            lambda: socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, socket.NETLINK_ROUTE),
        )
        try:
            ipr = IPRoute(fileno=sock.detach())
        except BaseException:
            sock.close()
            raise
    try:
        yield ipr
    finally:
        ipr.close()


def write_sysctls(path: str | None, values: dict[str, str]) -> None:
    """Write /proc/sys entries (dotted keys) as seen from the namespace at `path`."""

    def body() -> None:
        for key, value in values.items():
            with open("/proc/sys/" + key.replace(".", "/"), "w") as f:
                f.write(value)

    run_in_netns(path, body)


def read_sysctl(path: str | None, key: str) -> str:
    def body() -> str:
        with open("/proc/sys/" + key.replace(".", "/")) as f:
            return f.read().strip()

    return run_in_netns(path, body)
