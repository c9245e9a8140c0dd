"""Controllers: reconcile loops that talk to the API server through `hypernetes.client`.

Public API
----------
- ``Controller(client)`` (`runtime`): base class. Override ``async setup()``
  (build `Informer`s, add handlers that put keys on ``self.queue``, register
  each with ``self.watch(informer)``; ``self.spawn(coro)`` for helpers) and
  ``async reconcile(key) -> float | None`` (raise to retry with per-key
  exponential backoff; return seconds to look again later). ``await
  run(stop_event)`` runs informers, waits for their caches (at most
  `sync_timeout`), then `workers` workers until the event is set; it can be
  run again after it returns.
- ``WorkQueue(rate_limiter=None)`` / ``ItemBackoff(base, maximum)`` /
  ``ShutDown`` (`queue`): per-key dedup, ``add``, ``add_after``,
  ``add_rate_limited``, ``forget``, ``get``, ``done``, ``shutdown``.
- ``GarbageCollector(client, *, ignored=IGNORED_RESOURCES)``
  (`garbagecollector`): ownerReference garbage collection over every
  discovered kind (Background, Foreground, Orphan).
- ``NamespaceController(client)`` (`namespace`): empties terminating
  namespaces, then drops the `kubernetes` finalizer via ``finalize``.
- Workloads: ``Scheduler(client, *, retry_period=60.0)`` (`scheduler`),
  ``ReplicaSetController(client)`` (`replicaset`), ``DeploymentController(client)``
  (`deployment`), ``EndpointsController(client)`` (`endpoints`),
  ``NodeLifecycleController(client, *, grace_period=40.0, eviction_timeout=300.0,
  monitor_period=5.0)`` (`nodelifecycle`); shared pod helpers and the
  ``EventRecorder`` in `podutil`.
- ``TenancyController(client)`` (`tenancy`): the auth-controller: RBAC from
  Tenants (per-tenant ClusterRoleBindings, per-namespace RoleBindings by
  tenant role), removal of deleted users from bindings, and the emptying of
  deleted tenants.
- ``ControllerManager(client, controllers, *, lease_name=..., lease_namespace=
  "kube-system", identity=None, lease_duration=15.0, renew_deadline=10.0,
  retry_period=2.0)`` (`manager`): ``await run(stop_event)`` runs the
  controllers only while holding the coordination.k8s.io/v1 Lease;
  ``is_leader``, ``leading`` (an asyncio.Event), ``identity``, ``terms``.
  ``LeaderElector`` is the lease logic alone. Cancelling ``run`` stops the
  controllers and releases the lease, like setting the event.
- ``run_controllers(config, stop_event, *, identity=None)`` (`manager`): every
  controller under a ControllerManager with a client of its own, e.g. as a
  background job of the all-in-one server with its admin kubeconfig.
- ``default_controllers(client)``: the controllers a server runs.
"""

from __future__ import annotations

from hypernetes.client import Client
from hypernetes.controllers.aggregation import AggregationController
from hypernetes.controllers.deployment import DeploymentController
from hypernetes.controllers.endpoints import EndpointsController
from hypernetes.controllers.garbagecollector import GarbageCollector
from hypernetes.controllers.manager import ControllerManager, LeaderElector, run_controllers
from hypernetes.controllers.namespace import NamespaceController
from hypernetes.controllers.network import NetworkController
from hypernetes.controllers.nodelifecycle import NodeLifecycleController
from hypernetes.controllers.queue import ItemBackoff, ShutDown, WorkQueue
from hypernetes.controllers.replicaset import ReplicaSetController
from hypernetes.controllers.resourcequota import ResourceQuotaController
from hypernetes.controllers.runtime import Controller
from hypernetes.controllers.scheduler import Scheduler
from hypernetes.controllers.serviceaccounts import ServiceAccountsController
from hypernetes.controllers.tenancy import TenancyController


def default_controllers(client: Client) -> list[Controller]:
    """Every controller this package has, ready for a `ControllerManager`."""
    return [
        GarbageCollector(client),
        NamespaceController(client),
        NetworkController(client),
        TenancyController(client),
        ResourceQuotaController(client),
        Scheduler(client),
        ReplicaSetController(client),
        DeploymentController(client),
        EndpointsController(client),
        NodeLifecycleController(client),
        ServiceAccountsController(client),
        AggregationController(client),
    ]


__all__ = [
    "Controller",
    "ControllerManager",
    "DeploymentController",
    "EndpointsController",
    "GarbageCollector",
    "ItemBackoff",
    "LeaderElector",
    "NamespaceController",
    "NodeLifecycleController",
    "ReplicaSetController",
    "Scheduler",
    "ShutDown",
    "TenancyController",
    "WorkQueue",
    "default_controllers",
    "run_controllers",
]
