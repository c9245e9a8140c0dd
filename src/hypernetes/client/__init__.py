"""The Hypernetes API client: asyncio, aiohttp, Kubernetes REST semantics, plain dicts.

Controllers and the node agent talk to the API server through this library
exactly as external programs do, so they run in-process or elsewhere alike.

Public API
----------
Configuration (`hypernetes.client.config`):

- ``load_kubeconfig(path=None, context=None) -> Config`` — a kubeconfig's
  context (default: current-context; without `path`, $KUBECONFIG merged as
  kubectl merges it, or ~/.kube/config). Clusters: `server`,
  `certificate-authority[-data]`, `insecure-skip-tls-verify`,
  `tls-server-name`. Users: `client-certificate[-data]` + `client-key[-data]`,
  `token`, `tokenFile`, `exec` (client.authentication.k8s.io/v1 or v1beta1
  ExecCredential plugins; the answer is cached until its
  `expirationTimestamp`, and dropped and fetched again after a 401).
- ``Config(server, namespace="default", ca_pem=None, insecure_skip_tls_verify=False,
  tls_server_name=None, client_cert_pem=None, client_key_pem=None, token=None,
  token_file=None, exec_plugin=None)``; ``ExecPlugin``; ``Credentials``.

Requests (`hypernetes.client.client`), all coroutines returning plain dicts:

- ``Client(config, *, user_agent=..., timeout=60.0)``, an async context manager
  (or call ``await client.close()``).
- ``get(resource, name, namespace=None, *, subresource=None)``
- ``list(resource, namespace=None, *, label_selector=None, field_selector=None,
  limit=None, continue_token=None, resource_version=None,
  resource_version_match=None)`` — one List (a page when `limit` is set).
- ``list_all(resource, namespace=None, *, label_selector=None,
  field_selector=None, page_size=500)`` — every page, one consistent List.
- ``create(resource, body, namespace=None, *, field_manager=None, dry_run=False)``
  (a namespaced body without a namespace goes to the context's namespace).
- ``replace(resource, name, body, namespace=None, *, subresource=None,
  field_manager=None, dry_run=False)`` — PUT, e.g. ``subresource="status"`` or
  ``"finalize"``.
- ``patch(resource, name, patch, namespace=None, *, patch_type="merge",
  subresource=None, field_manager=None, force=False, dry_run=False)`` with
  patch_type "merge" | "json" | "strategic" | "apply".
- ``delete(resource, name, namespace=None, *, propagation_policy=None,
  grace_period_seconds=None, preconditions=None, dry_run=False)``
- ``delete_collection(resource, namespace=None, *, label_selector=None,
  field_selector=None, propagation_policy=None, grace_period_seconds=None,
  dry_run=False)``
- ``watch(resource, namespace=None, *, resource_version=None,
  label_selector=None, field_selector=None, timeout_seconds=None,
  allow_bookmarks=False) -> WatchStream`` — ``async with`` it and
  ``async for kind, obj in stream``; kind is ADDED | MODIFIED | DELETED |
  BOOKMARK; an ERROR event raises (`Expired` for 410).
- ``discover() -> list[Resource]`` — every resource in each group's preferred
  version (aggregated discovery, legacy documents as a fallback).
- ``request(method, path, *, params=None, body=None, content_type=..., accept=...)``
  — anything else, decoded JSON back.

Resources (`hypernetes.client.resource`): ``Resource(group, version, plural,
namespaced, kind="", verbs=frozenset())`` with ``.path(namespace, name,
subresource)`` and ``.api_version``; constants for well-known kinds
(NAMESPACES, CONFIGMAPS, SECRETS, PODS, SERVICES, EVENTS, NODES, LEASES,
REPLICASETS, DEPLOYMENTS, ENDPOINTS, SERVICEACCOUNTS, RESOURCEQUOTAS, the RBAC
bindings and cluster roles, and Hypernetes' TENANTS, USERS, NETWORKS).

Errors (`hypernetes.client.errors`): ``ClientError`` ⊃ ``TransportError``,
``ConfigError``, ``ApiError(code, reason, message, status)`` ⊃ ``NotFound``
(404), ``Conflict`` (409), ``Expired`` (410).

Informers (`hypernetes.client.informer`): ``Informer(client, resource,
namespace=None, *, label_selector=None, field_selector=None,
resync_period=None, transform=None, watch_timeout=300)`` with
``add_handlers(on_add, on_update, on_delete)`` (plain or async callables;
on_update gets (old, new)), ``await run(stop_event)``, ``wait_synced()``,
``has_synced``, ``get(name, namespace=None)``, ``get_by_key(key)``,
``items()``, ``keys()``, ``resource_version``. It lists, watches from the
list's resourceVersion, resumes after a dropped watch, relists on `Expired`
(reporting the difference as events), and replays the cache as updates
every `resync_period` seconds. ``object_key(obj)`` / ``split_key(key)`` make
and split "namespace/name" keys.

``Backoff(initial, maximum, factor=2.0, jitter=0.1)`` (`hypernetes.client.backoff`):
exponential delays for retry loops.
"""

from hypernetes.client.backoff import Backoff
from hypernetes.client.client import PATCH_CONTENT_TYPES, Client, Obj, WatchStream
from hypernetes.client.config import Config, Credentials, ExecPlugin, load_kubeconfig
from hypernetes.client.errors import (
    ApiError,
    ClientError,
    ConfigError,
    Conflict,
    Expired,
    NotFound,
    TransportError,
)
from hypernetes.client.informer import Informer, object_key, split_key
from hypernetes.client.resource import (
    CLUSTERROLEBINDINGS,
    CLUSTERROLES,
    CONFIGMAPS,
    DEPLOYMENTS,
    ENDPOINTS,
    EVENTS,
    LEASES,
    NAMESPACES,
    NETWORKS,
    NODES,
    PODS,
    REPLICASETS,
    RESOURCEQUOTAS,
    ROLEBINDINGS,
    SECRETS,
    SERVICEACCOUNTS,
    SERVICES,
    TENANTS,
    USERS,
    Resource,
)

__all__ = [
    "CLUSTERROLEBINDINGS",
    "CLUSTERROLES",
    "CONFIGMAPS",
    "DEPLOYMENTS",
    "ENDPOINTS",
    "EVENTS",
    "LEASES",
    "NAMESPACES",
    "NETWORKS",
    "NODES",
    "PATCH_CONTENT_TYPES",
    "PODS",
    "REPLICASETS",
    "RESOURCEQUOTAS",
    "ROLEBINDINGS",
    "SECRETS",
    "SERVICEACCOUNTS",
    "SERVICES",
    "TENANTS",
    "USERS",
    "ApiError",
    "Backoff",
    "Client",
    "ClientError",
    "Config",
    "ConfigError",
    "Conflict",
    "Credentials",
    "ExecPlugin",
    "Expired",
    "Informer",
    "NotFound",
    "Obj",
    "Resource",
    "TransportError",
    "WatchStream",
    "load_kubeconfig",
    "object_key",
    "split_key",
]
