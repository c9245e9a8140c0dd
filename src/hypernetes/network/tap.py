"""TAP devices for VM pods: create them persistent on a tenant bridge, and open them for QEMU.

A VM pod's NIC is a TAP port on its Network's bridge inside the tenant router
namespace. TAP devices are created and opened through /dev/net/tun with
ioctls (there is no netlink call for it), and a TAP belongs to the network
namespace of the thread that creates it, so both happen in a thread inside
that namespace. The datapath creates the device *persistent* (it outlives
any process) so it can be bridged and filtered before QEMU starts; the
runtime then calls `open_tap` and hands the descriptor to QEMU
(``-netdev tap,fd=N,vhost=on``), which needs no privileges or namespace of
its own for it.
"""

from __future__ import annotations

import fcntl
import os
import struct

from .namespaces import run_in_netns

TUNSETIFF = 0x400454CA
TUNSETPERSIST = 0x400454CB
TUNSETOWNER = 0x400454CC
IFF_TAP = 0x0002
IFF_NO_PI = 0x1000
IFF_VNET_HDR = 0x4000  # virtio-net header: lets QEMU/vhost offload checksums and GSO
IFF_MULTI_QUEUE = 0x0100


def _flags(multi_queue: bool) -> int:
    return IFF_TAP | IFF_NO_PI | IFF_VNET_HDR | (IFF_MULTI_QUEUE if multi_queue else 0)


def _setiff(fd: int, name: str, flags: int) -> None:
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), flags))


def create_tap(
    netns: str | None, name: str, *, owner: int | None = None, multi_queue: bool = False
) -> None:
    """Create a persistent TAP device `name` in the namespace at `netns`."""

    def body() -> None:
        fd = os.open("/dev/net/tun", os.O_RDWR | os.O_CLOEXEC)
        try:
            _setiff(fd, name, _flags(multi_queue))
            if owner is not None:
                fcntl.ioctl(fd, TUNSETOWNER, owner)
            fcntl.ioctl(fd, TUNSETPERSIST, 1)
        finally:
            os.close(fd)

    run_in_netns(netns, body)


def open_tap(netns: str | None, name: str, *, multi_queue: bool = False) -> int:
    """Open one queue of the existing TAP `name`; returns the descriptor (close-on-exec:
    clear it with os.set_inheritable before passing it to QEMU). Frames read from it
    are what the bridge sends to the VM; frames written are what the VM sends."""

    def body() -> int:
        fd = os.open("/dev/net/tun", os.O_RDWR | os.O_CLOEXEC)
        try:
            _setiff(fd, name, _flags(multi_queue))
        except BaseException:
            os.close(fd)
            raise
        return fd

    return run_in_netns(netns, body)
