"""Hypernetes runtime: every pod a lightweight VM (plus runc for system pods).

The node agent drives this layer through `Runtime`, an asyncio API in the
spirit of the Kubernetes CRI. State lives under `<data-dir>/runtime/`, images
under `<data-dir>/images/`.

    rt = Runtime("/var/lib/hypernetes")
    await rt.open()                       # re-attaches to pods left running
    info = await rt.pull_image("registry.local/app:1")
    sid = await rt.run_pod_sandbox(PodSandboxConfig(
        name="web-1", namespace="shop", uid="...", runtime="vm",
        network=NetworkAttachment(tap="tap-abc", mac="52:54:00:12:34:56",
                                  address="10.1.0.5/24", gateway="10.1.0.1"),
        resources=pod_resources([...])))  # sizes the VM (see sizing.py)
    cid = await rt.create_container(sid, ContainerConfig(
        name="app", image="registry.local/app:1", command=[...], args=[...],
        env={...}, working_dir="/", resources=Resources(memory_limit=...)))
    await rt.start_container(cid)
    await rt.container_status(cid)        # state, exit code, reason, log path
    await rt.exec_sync(cid, ["cat", "/etc/hostname"])
    session = await rt.exec(cid, ["sh"], tty=True, stdin=True)  # streaming
    await rt.stop_container(cid, timeout=30)   # SIGTERM, SIGKILL after grace
    await rt.remove_container(cid)
    await rt.stop_pod_sandbox(sid); await rt.remove_pod_sandbox(sid)
    await rt.close()                      # detaches; pods keep running

Pod sandbox calls: run_pod_sandbox, stop_pod_sandbox, remove_pod_sandbox,
pod_sandbox_status, list_pod_sandboxes. Containers: create_container,
start_container, stop_container, remove_container, container_status,
list_containers, wait_container, signal_container, write_stdin,
add_output_listener. Exec: exec_sync, exec (an ExecSession with stdin,
stdout/stderr queues, resize, signal, wait). Images: pull_image,
import_image, list_images, image_status, remove_image.

Errors are RuntimeFailure with a Kubernetes-style `reason`: ErrImagePull
(pull failed: unknown image, digest mismatch, corrupt layer; the node turns
repeats into ImagePullBackOff), ErrImageNeverPull (image not present),
InvalidImageName, CreateContainerError, ContainerCannotRun, BootTimeout,
VMExited, NotFound, BadState. Exited containers carry reason Completed,
Error, OOMKilled, ContainerCannotRun or VMExited.

Networking handover: the network layer creates the TAP device and passes it
in `NetworkAttachment`; the runtime attaches the VM to it and configures
the address, gateway and MTU inside the guest, and never deletes the TAP.
Without `network`, the pod has loopback only.
"""

from . import assets
from .errors import ImagePullError, NotFound, RuntimeFailure, SandboxError
from .service import Runtime
from .session import ExecSession
from .sizing import pod_resources, vm_size
from .types import (
    ContainerConfig,
    ContainerState,
    ContainerStatus,
    ExecResult,
    ImageInfo,
    NetworkAttachment,
    PodSandboxConfig,
    PodSandboxStatus,
    Resources,
    SandboxState,
)

__all__ = [
    "ContainerConfig",
    "ContainerState",
    "ContainerStatus",
    "ExecResult",
    "ExecSession",
    "ImageInfo",
    "ImagePullError",
    "NetworkAttachment",
    "NotFound",
    "PodSandboxConfig",
    "PodSandboxStatus",
    "Resources",
    "Runtime",
    "RuntimeFailure",
    "SandboxError",
    "SandboxState",
    "assets",
    "pod_resources",
    "vm_size",
]
