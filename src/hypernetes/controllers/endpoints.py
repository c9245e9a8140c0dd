"""The Endpoints controller: one Endpoints object per Service with a selector.

For each Service with a `spec.selector`, the Endpoints of the same name lists
the pods the selector picks that have an IP: ready pods under `addresses`,
the others under `notReadyAddresses` (all under `addresses` with
`publishNotReadyAddresses`). Finished pods and pods being deleted are left
out. Each service port becomes an endpoint port: a numeric `targetPort` as it
is, a named one resolved against each pod's container ports (a pod without
that port name is left out of that port), no `targetPort` meaning the
service port. Pods that resolve to the same port set share one subset.

Services without a selector are not touched (their Endpoints are the
user's); the Endpoints of a deleted Service are deleted.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Hashable
from typing import Any

from hypernetes.client import (
    ENDPOINTS,
    PODS,
    SERVICES,
    Client,
    Informer,
    NotFound,
    Obj,
    object_key,
    split_key,
)
from hypernetes.controllers.podutil import is_ready, is_terminal, labels_of
from hypernetes.controllers.runtime import Controller
from hypernetes.resources import labels as label_selectors

log = logging.getLogger(__name__)

HEADLESS_LABEL = "service.kubernetes.io/headless"


def _selects(service: Obj, pod: Obj) -> bool:
    selector = (service.get("spec") or {}).get("selector")
    if not selector:
        return False
    return label_selectors.from_label_selector({"matchLabels": selector}).matches(labels_of(pod))


def resolve_port(port: dict[str, Any], pod: Obj) -> int | None:
    """The pod port a service port sends to; None if a named targetPort is not on the pod."""
    target = port.get("targetPort")
    if target is None or target == "":
        return int(port.get("port") or 0)
    if isinstance(target, int):
        return target
    if str(target).isdigit():
        return int(target)
    protocol = port.get("protocol") or "TCP"
    for container in (pod.get("spec") or {}).get("containers") or []:
        for cport in container.get("ports") or []:
            if cport.get("name") == target and (cport.get("protocol") or "TCP") == protocol:
                return int(cport.get("containerPort") or 0)
    return None


def endpoint_subsets(service: Obj, pods: list[Obj]) -> list[dict[str, Any]]:
    """The `subsets` of the service's Endpoints, deterministic (sorted by IP)."""
    spec = service.get("spec") or {}
    publish_all = bool(spec.get("publishNotReadyAddresses"))
    groups: dict[tuple[tuple[str, int, str], ...], tuple[list[Obj], list[Obj]]] = {}
    for pod in pods:
        ip = (pod.get("status") or {}).get("podIP")
        if not ip or is_terminal(pod) or not _selects(service, pod):
            continue
        if pod["metadata"].get("deletionTimestamp") and not publish_all:
            continue
        ports: list[tuple[str, int, str]] = []
        for port in spec.get("ports") or []:
            number = resolve_port(port, pod)
            if number is not None:
                ports.append((port.get("name") or "", number, port.get("protocol") or "TCP"))
        if not ports:
            continue
        address: dict[str, Any] = {
            "ip": ip,
            "targetRef": {
                "kind": "Pod",
                "namespace": pod["metadata"].get("namespace", ""),
                "name": pod["metadata"]["name"],
                "uid": pod["metadata"].get("uid", ""),
            },
        }
        node = (pod.get("spec") or {}).get("nodeName")
        if node:
            address["nodeName"] = node
        ready, not_ready = groups.setdefault(tuple(ports), ([], []))
        (ready if publish_all or is_ready(pod) else not_ready).append(address)
    subsets = []
    for ports_key, (ready, not_ready) in sorted(groups.items()):
        subset: dict[str, Any] = {}
        if ready:
            subset["addresses"] = sorted(ready, key=lambda a: (a["ip"], a["targetRef"]["name"]))
        if not_ready:
            subset["notReadyAddresses"] = sorted(
                not_ready, key=lambda a: (a["ip"], a["targetRef"]["name"])
            )
        subset["ports"] = [
            {**({"name": name} if name else {}), "port": number, "protocol": protocol}
            for name, number, protocol in ports_key
        ]
        subsets.append(subset)
    return subsets


class EndpointsController(Controller):
    """Keeps each selector Service's Endpoints in line with its pods."""

    name = "endpoints"
    workers = 2

    def __init__(self, client: Client) -> None:
        super().__init__(client)
        self._pods_by_ns: dict[str, dict[str, Obj]] = {}

    async def setup(self) -> None:
        self._pods_by_ns = {}
        self.services = self.watch(Informer(self.client, SERVICES))
        self.services.add_handlers(
            lambda s: self.queue.add(object_key(s)),
            lambda _o, s: self.queue.add(object_key(s)),
            lambda s: self.queue.add(object_key(s)),
        )
        self.pods = self.watch(Informer(self.client, PODS))
        self.pods.add_handlers(
            lambda p: self._pod_changed(p, None, True),
            lambda old, p: self._pod_changed(p, old, True),
            lambda p: self._pod_changed(p, None, False),
        )
        self.endpoints = self.watch(Informer(self.client, ENDPOINTS))
        self.endpoints.add_handlers(
            None,
            None,
            lambda e: self.queue.add(object_key(e)),  # recreate if deleted by hand
        )

    def _pod_changed(self, pod: Obj, old: Obj | None, present: bool) -> None:
        ns = pod["metadata"].get("namespace", "")
        index = self._pods_by_ns.setdefault(ns, {})
        if present:
            index[object_key(pod)] = pod
        else:
            index.pop(object_key(pod), None)
        for key in self.services.keys():  # noqa: SIM118 (an Informer, not a dict)
            if not key.startswith(f"{ns}/"):
                continue
            service = self.services.get_by_key(key)
            if service is not None and (
                _selects(service, pod) or (old is not None and _selects(service, old))
            ):
                self.queue.add(key)

    async def reconcile(self, key: Hashable) -> float | None:
        namespace, name = split_key(str(key))
        service = self.services.get_by_key(str(key))
        current = self.endpoints.get_by_key(str(key))
        if service is None:
            if current is not None:
                with contextlib.suppress(NotFound):
                    await self.client.delete(ENDPOINTS, name, namespace)
            return None
        if not (service.get("spec") or {}).get("selector"):
            return None
        pods = list(self._pods_by_ns.get(namespace or "", {}).values())
        subsets = endpoint_subsets(service, pods)
        wanted_labels = labels_of(service)
        if (service.get("spec") or {}).get("clusterIP") == "None":
            wanted_labels[HEADLESS_LABEL] = ""
        if (
            current is not None
            and (current.get("subsets") or []) == subsets
            and (labels_of(current) == wanted_labels)
        ):
            return None
        body: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "Endpoints",
            "metadata": {"name": name, "namespace": namespace},
            "subsets": subsets,
        }
        if wanted_labels:
            body["metadata"]["labels"] = wanted_labels
        if current is None:
            # A 409 (made meanwhile) raises: retried once the informer has the object.
            await self.client.create(ENDPOINTS, body, namespace)
            return None
        body["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
        if current["metadata"].get("annotations"):
            body["metadata"]["annotations"] = current["metadata"]["annotations"]
        await self.client.replace(ENDPOINTS, name, body, namespace)
        return None
