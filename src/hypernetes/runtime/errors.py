"""Errors of the runtime layer, each carrying a Kubernetes-style reason.

The reason is what the node agent puts in a container's waiting/terminated
state (ErrImagePull, ContainerCannotRun, ...); the message is for humans.
"""

from __future__ import annotations


class RuntimeFailure(Exception):
    """A runtime operation failed; `reason` is a short CamelCase code."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message


class NotFound(RuntimeFailure):
    """No such pod sandbox, container, exec session or image."""

    def __init__(self, message: str) -> None:
        super().__init__("NotFound", message)


class ImagePullError(RuntimeFailure):
    """Pulling or importing an image failed (reason ErrImagePull)."""

    def __init__(self, message: str, reason: str = "ErrImagePull") -> None:
        super().__init__(reason, message)


class SandboxError(RuntimeFailure):
    """The pod VM could not be started or died (boot timeout, crash)."""
