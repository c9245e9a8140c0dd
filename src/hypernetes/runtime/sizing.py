"""Sizing a pod VM from its containers' requests and limits.

vCPUs: the CPU limit (else request) of the pod rounded up, at least 1 and at
most the host's CPUs. Memory: the memory limit (else request) plus a fixed
overhead for the guest kernel, the agent and the containers' writable layers,
rounded up to 2 MiB, at least MIN_MEMORY_MIB; without any memory figure the
VM gets DEFAULT_MEMORY_MIB. Containers are then held to their own limits by
cgroups inside the guest.
"""

from __future__ import annotations

import math
import os

from .types import Resources

MIN_VCPUS = 1
MIN_MEMORY_MIB = 128
DEFAULT_MEMORY_MIB = 256
OVERHEAD_MIB = 64
MIB = 1024 * 1024


def vm_size(pod: Resources, host_cpus: int | None = None) -> tuple[int, int]:
    """Returns (vcpus, memory in MiB) for a pod with these total resources."""
    cpus = host_cpus or os.cpu_count() or 1
    cpu = pod.cpu_limit or pod.cpu_request
    vcpus = min(max(MIN_VCPUS, math.ceil(cpu - 1e-9)), cpus)
    mem = pod.memory_limit or pod.memory_request
    if mem <= 0:
        return vcpus, DEFAULT_MEMORY_MIB
    mib = math.ceil(mem / MIB) + OVERHEAD_MIB
    mib = max(MIN_MEMORY_MIB, mib + (-mib % 2))
    return vcpus, mib


def pod_resources(containers: list[Resources]) -> Resources:
    """The pod total of its containers' resources (what vm_size takes)."""
    return Resources(
        cpu_request=sum(r.cpu_request for r in containers),
        cpu_limit=sum(r.cpu_limit for r in containers),
        memory_request=sum(r.memory_request for r in containers),
        memory_limit=sum(r.memory_limit for r in containers),
    )
