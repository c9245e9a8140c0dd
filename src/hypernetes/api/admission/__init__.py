"""Built-in admission: checks every write passes through after validation.

`namespace_lifecycle` mirrors kube's NamespaceLifecycle plug-in: content can
only be created in a namespace that exists and is not being deleted, and the
built-in namespaces cannot be deleted.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from hypernetes.api import errors
from hypernetes.api.objects import Objects
from hypernetes.api.request import Target
from hypernetes.auth.principal import User
from hypernetes.resources.registry import Registry

Obj = dict[str, Any]
Admission = Callable[[User, Target, Obj, "Obj | None"], Awaitable[None]]

PROTECTED_NAMESPACES = ("default", "kube-system", "kube-public")


def namespace_lifecycle(objects: Objects, registry: Registry) -> Admission:
    namespaces = registry.get("", "v1", "namespaces")
    assert namespaces is not None

    async def admit(user: User, target: Target, obj: Obj, old: Obj | None) -> None:
        if old is not None or not target.rt.namespaced or not target.namespace:
            return
        ns = await objects.find(namespaces, None, target.namespace)
        if ns is None:
            raise errors.not_found(namespaces, target.namespace)
        if "deletionTimestamp" in ns["metadata"]:
            raise errors.forbidden(
                f'{target.rt.plural} "{obj["metadata"].get("name", "")}" is forbidden: unable '
                f"to create new content in namespace {target.namespace} because it is being "
                "terminated"
            )

    return admit
