"""The pod subresources `binding` and `eviction`.

`POST .../pods/NAME/binding` with a v1 `Binding` is how a scheduler assigns a
pod to a node: it sets `spec.nodeName` once (a pod's spec is otherwise
immutable, so this is the only way in), copies the Binding's annotations onto
the pod and marks the pod `PodScheduled=True`. A pod that is already bound,
or being deleted, answers 409 Conflict; a missing pod 404.

`POST .../pods/NAME/eviction` with a policy/v1 `Eviction` deletes the pod as a
DELETE would (graceful for a bound, running pod). PodDisruptionBudgets are not
served by this server, so no budget can refuse an eviction.

Both answer 201 with a `Status` of success, as kube-apiserver does.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

from aiohttp import web

from hypernetes.api import errors
from hypernetes.api.objects import Obj, now_rfc3339
from hypernetes.api.request import Target
from hypernetes.api.rest import grace_seconds

if TYPE_CHECKING:
    from hypernetes.api.rest import ResourceAPI

_CONFLICT_RETRIES = 5


async def serve(api: ResourceAPI, request: web.Request, target: Target) -> web.StreamResponse:
    """Answer a request on `pods/binding` or `pods/eviction`."""
    if target.rt.kind != "Pod" or target.rt.group or target.name is None:
        raise errors.method_not_allowed()
    if request.method != "POST":
        raise errors.method_not_allowed()
    body = await api._body(request)
    if target.subresource == "binding":
        await _bind(api, target, body)
    else:
        await _evict(api, target, body)
    return web.json_response(_success(), status=201)


def _check_name(body: Obj, name: str, kind: str) -> None:
    meta = body.get("metadata") or {}
    if not isinstance(meta, dict):
        raise errors.bad_request("metadata must be an object")
    if meta.get("name") and meta["name"] != name:
        raise errors.bad_request(f"name in URL does not match name in {kind} object")


def _binding_error(name: str, why: str) -> errors.APIError:
    return errors.APIError(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on pods/binding "{name}": {why}',
        details={"name": name, "kind": "pods/binding"},
    )


async def _bind(api: ResourceAPI, target: Target, body: Obj) -> None:
    name = target.name or ""
    if body.get("kind") not in (None, "Binding"):
        raise errors.bad_request(f"expected a Binding, got {body.get('kind')}")
    _check_name(body, name, "Binding")
    node = (body.get("target") or {}).get("name")
    kind = (body.get("target") or {}).get("kind") or "Node"
    if not node or not isinstance(node, str) or kind != "Node":
        raise errors.invalid(
            target.rt,
            name,
            [
                {
                    "reason": "FieldValueRequired",
                    "field": "target.name",
                    "message": "Required value",
                }
            ],
            f'Binding "{name}" is invalid: target.name: Required value: a Node to bind to',
        )
    annotations = (body.get("metadata") or {}).get("annotations") or {}
    for _ in range(_CONFLICT_RETRIES):
        old = await api.objects.get(target.rt, target.namespace, name)
        if old["metadata"].get("deletionTimestamp"):
            raise _binding_error(name, f"pod {name} is being deleted, cannot be assigned to a host")
        bound = (old.get("spec") or {}).get("nodeName")
        if bound:
            raise _binding_error(name, f'pod {name} is already assigned to node "{bound}"')
        new = _bound(old, node, annotations)
        try:
            await api.objects.update(target.rt, old, new)
        except errors.APIError as exc:
            if exc.reason == "Conflict":
                continue  # the pod changed between read and write: look again
            raise
        return
    raise errors.stale(target.rt, name)


def _bound(old: Obj, node: str, annotations: dict[str, Any]) -> Obj:
    new = copy.deepcopy(old)
    new.setdefault("spec", {})["nodeName"] = node
    if annotations:
        new["metadata"].setdefault("annotations", {}).update(
            {str(k): str(v) for k, v in annotations.items()}
        )
    status = new.setdefault("status", {})
    conditions = [c for c in status.get("conditions") or [] if c.get("type") != "PodScheduled"]
    conditions.append(
        {
            "type": "PodScheduled",
            "status": "True",
            "lastProbeTime": None,
            "lastTransitionTime": now_rfc3339(),
        }
    )
    status["conditions"] = conditions
    status.setdefault("phase", "Pending")
    return new


async def _evict(api: ResourceAPI, target: Target, body: Obj) -> None:
    name = target.name or ""
    if body.get("kind") not in (None, "Eviction"):
        raise errors.bad_request(f"expected an Eviction, got {body.get('kind')}")
    _check_name(body, name, "Eviction")
    options = body.get("deleteOptions") or {}
    pod = await api.objects.get(target.rt, target.namespace, name)
    pre = options.get("preconditions") or {}
    if pre.get("uid") and pre["uid"] != pod["metadata"].get("uid"):
        raise errors.conflict(
            target.rt,
            name,
            "Precondition failed: UID in precondition does not match the UID in record",
        )
    await api.objects.delete(target.rt, pod, grace_seconds=grace_seconds(target.rt, pod, options))


def _success() -> dict[str, Any]:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}
