"""Server-side Table printing: columns and cells as kube-apiserver's printers produce them."""

from __future__ import annotations

import copy
import datetime
from typing import Any

import pytest

from hypernetes.resources import tables
from hypernetes.resources.registry import BUILTIN, Registry, ResourceType

NOW = datetime.datetime(2024, 6, 1, 12, 0, 0, tzinfo=datetime.UTC)
REG = Registry()


def ago(**kw: float) -> str:
    return (NOW - datetime.timedelta(**kw)).strftime("%Y-%m-%dT%H:%M:%SZ")


def rt(plural: str, group: str = "") -> ResourceType:
    for candidate in BUILTIN:
        if candidate.plural == plural and candidate.group == group:
            return candidate
    raise LookupError(plural)


def names(resource: ResourceType) -> list[tuple[str, int]]:
    return [(c["name"], c["priority"]) for c in tables.columns(resource)]


# -- HumanDuration --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (-5, "<invalid>"),
        (-2, "<invalid>"),
        (-1.5, "0s"),
        (0, "0s"),
        (59, "59s"),
        (119, "119s"),
        (120, "2m"),
        (317, "5m17s"),
        (599, "9m59s"),
        (600, "10m"),
        (179 * 60 + 59, "179m"),
        (3 * 3600 + 4 * 60 + 30, "3h4m"),
        (3 * 3600, "3h"),
        (8 * 3600 + 59 * 60, "8h"),
        (47 * 3600, "47h"),
        (48 * 3600, "2d"),
        (50 * 3600, "2d2h"),
        (8 * 86400, "8d"),
        (729 * 86400, "729d"),
        (730 * 86400, "2y"),
        (740 * 86400, "2y10d"),
        (8 * 365 * 86400, "8y"),
        (20 * 365 * 86400, "20y"),
    ],
)
def test_human_duration(seconds: float, text: str) -> None:
    assert tables.human_duration(datetime.timedelta(seconds=seconds)) == text


def test_since_unknown_and_malformed() -> None:
    assert tables.since(None, NOW) == "<unknown>"
    assert tables.since("", NOW) == "<unknown>"
    assert tables.since("not a time", NOW) == "<unknown>"
    assert tables.since(ago(minutes=5), NOW) == "5m"
    assert tables.since("2024-06-01T11:59:00.123456Z", NOW) == "59s"  # MicroTime


# -- pods -----------------------------------------------------------------------------------------


def pod(
    phase: str = "Running",
    statuses: list[dict[str, Any]] | None = None,
    containers: int = 1,
    **extra: Any,
) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "metadata": {"name": "web", "namespace": "default", "creationTimestamp": ago(minutes=10)},
        "spec": {"containers": [{"name": f"c{i}", "image": "img"} for i in range(containers)]},
        "status": {"phase": phase},
    }
    if statuses is not None:
        obj["status"]["containerStatuses"] = statuses
    for key, value in extra.items():
        section, _, field = key.partition("__")
        obj[section][field] = value
    return obj


def running(ready: bool = True, restarts: int = 0, **kw: Any) -> dict[str, Any]:
    return {"name": "c0", "ready": ready, "restartCount": restarts, "state": {"running": {}}} | kw


def waiting(reason: str, restarts: int = 0, **kw: Any) -> dict[str, Any]:
    return (
        {"name": "c0", "ready": False, "restartCount": restarts}
        | {"state": {"waiting": {"reason": reason}}}
        | kw
    )


def terminated(reason: str = "", exit_code: int = 0, signal: int = 0) -> dict[str, Any]:
    state = {"exitCode": exit_code} | ({"reason": reason} if reason else {})
    if signal:
        state["signal"] = signal
    return {"name": "c0", "ready": False, "restartCount": 0, "state": {"terminated": state}}


def pod_cells(obj: dict[str, Any]) -> list[Any]:
    return tables.cells(rt("pods"), obj, NOW)


def test_pod_columns() -> None:
    assert names(rt("pods")) == [
        ("Name", 0),
        ("Ready", 0),
        ("Status", 0),
        ("Restarts", 0),
        ("Age", 0),
        ("IP", 1),
        ("Node", 1),
        ("Nominated Node", 1),
        ("Readiness Gates", 1),
    ]
    first = tables.columns(rt("pods"))[0]
    assert first["type"] == "string" and first["format"] == "name"
    assert "unique within a namespace" in first["description"]


@pytest.mark.parametrize(
    ("obj", "ready", "status"),
    [
        (pod("Pending"), "0/1", "Pending"),
        (pod("Pending", [waiting("ContainerCreating")]), "0/1", "ContainerCreating"),
        (pod("Pending", [waiting("ErrImagePull")]), "0/1", "ErrImagePull"),
        (pod("Running", [running()]), "1/1", "Running"),
        (pod("Running", [running(ready=False)]), "0/1", "Running"),
        (pod("Running", [waiting("CrashLoopBackOff", 5)]), "0/1", "CrashLoopBackOff"),
        (pod("Succeeded", [terminated("Completed")]), "0/1", "Completed"),
        (pod("Failed", [terminated("Error", 1)]), "0/1", "Error"),
        (pod("Failed", [terminated(exit_code=137)]), "0/1", "ExitCode:137"),
        (pod("Failed", [terminated(exit_code=137, signal=9)]), "0/1", "Signal:9"),
        (pod("Failed", [], status__reason="Evicted"), "0/1", "Evicted"),
        (pod("Unknown"), "0/1", "Unknown"),
        (pod("Running", [running(), running(name="c1")], containers=2), "2/2", "Running"),
        (pod("Running", [running(), waiting("Bad", name="c1")], containers=2), "1/2", "Bad"),
    ],
)
def test_pod_status(obj: dict[str, Any], ready: str, status: str) -> None:
    cells = pod_cells(obj)
    assert (cells[1], cells[2]) == (ready, status)


def test_pod_scheduling_gated() -> None:
    obj = pod("Pending", status__conditions=[{"type": "PodScheduled", "reason": "SchedulingGated"}])
    assert pod_cells(obj)[2] == "SchedulingGated"


def test_pod_completed_container_with_another_still_running() -> None:
    done = terminated("Completed") | {"name": "c1"}
    obj = pod("Running", [running(), done], containers=2)
    # kube walks statuses last-first, so "Completed" is the reason left, then corrected.
    assert pod_cells(obj)[2] == "NotReady"
    obj["status"]["conditions"] = [{"type": "Ready", "status": "True"}]
    assert pod_cells(obj)[2] == "Running"


def test_pod_terminating() -> None:
    obj = pod("Running", [running()], metadata__deletionTimestamp=ago(seconds=3))
    obj["metadata"]["name"] = "web"
    assert pod_cells(obj)[2] == "Terminating"
    done = pod("Succeeded", [terminated("Completed")], metadata__deletionTimestamp=ago(seconds=3))
    assert pod_cells(done)[2] == "Completed"
    lost = pod("Running", [running()], metadata__deletionTimestamp=ago(seconds=3))
    lost["status"]["reason"] = "NodeLost"
    assert pod_cells(lost)[2] == "Unknown"


def test_pod_restarts_with_time_of_last_restart() -> None:
    last = {"terminated": {"exitCode": 1, "finishedAt": ago(minutes=5)}}
    older = {"terminated": {"exitCode": 1, "finishedAt": ago(hours=2)}}
    obj = pod(
        "Running",
        [running(restarts=3, lastState=older), running(name="c1", restarts=2, lastState=last)],
        containers=2,
    )
    assert pod_cells(obj)[3] == "5 (5m ago)"
    assert pod_cells(pod("Running", [running(restarts=4)]))[3] == "4"  # no time known
    assert pod_cells(pod("Running", [running()]))[3] == "0"


def init_pod(
    init: list[dict[str, Any]], specs: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    obj = pod("Pending", [waiting("PodInitializing")])
    obj["spec"]["initContainers"] = specs or [{"name": s["name"]} for s in init]
    obj["status"]["initContainerStatuses"] = init
    return obj


def init_status(name: str, state: dict[str, Any], **kw: Any) -> dict[str, Any]:
    return {"name": name, "ready": False, "restartCount": 0, "state": state} | kw


@pytest.mark.parametrize(
    ("init", "status"),
    [
        ([init_status("i0", {"waiting": {"reason": "PodInitializing"}})], "Init:0/1"),
        ([init_status("i0", {"running": {}}), init_status("i1", {"waiting": {}})], "Init:0/2"),
        (
            [
                init_status("i0", {"terminated": {"exitCode": 0}}),
                init_status("i1", {"running": {}}),
            ],
            "Init:1/2",
        ),
        ([init_status("i0", {"waiting": {"reason": "CrashLoopBackOff"}})], "Init:CrashLoopBackOff"),
        ([init_status("i0", {"terminated": {"exitCode": 1, "reason": "Error"}})], "Init:Error"),
        ([init_status("i0", {"terminated": {"exitCode": 2}})], "Init:ExitCode:2"),
        ([init_status("i0", {"terminated": {"exitCode": 2, "signal": 15}})], "Init:Signal:15"),
    ],
)
def test_pod_init_containers(init: list[dict[str, Any]], status: str) -> None:
    assert pod_cells(init_pod(init))[2] == status


def test_pod_init_restarts_count_while_initializing() -> None:
    obj = init_pod([init_status("i0", {"waiting": {"reason": "CrashLoopBackOff"}}, restartCount=7)])
    assert pod_cells(obj)[3] == "7"


def test_pod_sidecar_counts_as_a_container() -> None:
    sidecar = {"name": "proxy", "restartPolicy": "Always"}
    statuses = [
        init_status("proxy", {"running": {}}, started=True, ready=True, restartCount=1),
    ]
    obj = init_pod(statuses, specs=[sidecar])
    obj["status"]["phase"] = "Running"
    obj["status"]["containerStatuses"] = [running()]
    obj["status"]["conditions"] = [{"type": "Initialized", "status": "True"}]
    cells = pod_cells(obj)
    assert cells[1:4] == ["2/2", "Running", "1"]


def test_pod_wide_cells() -> None:
    obj = pod("Running", [running()])
    assert pod_cells(obj)[5:] == ["<none>", "<none>", "<none>", "<none>"]
    obj["spec"]["nodeName"] = "node-1"
    obj["spec"]["readinessGates"] = [{"conditionType": "a"}, {"conditionType": "b"}]
    obj["status"] |= {
        "podIP": "10.0.0.1",
        "podIPs": [{"ip": "10.0.0.2"}, {"ip": "fd00::2"}],
        "nominatedNodeName": "node-2",
        "conditions": [{"type": "a", "status": "True"}, {"type": "b", "status": "False"}],
    }
    assert pod_cells(obj)[5:] == ["10.0.0.2", "node-1", "node-2", "1/2"]
    del obj["status"]["podIPs"]
    assert pod_cells(obj)[5] == "10.0.0.1"


def test_pod_age() -> None:
    obj = pod("Running", [running()])
    obj["metadata"]["creationTimestamp"] = ago(seconds=317)
    assert pod_cells(obj)[4] == "5m17s"
    del obj["metadata"]["creationTimestamp"]
    assert pod_cells(obj)[4] == "<unknown>"


# -- other kinds ----------------------------------------------------------------------------------


def meta(name: str = "x", **kw: Any) -> dict[str, Any]:
    return {"name": name, "creationTimestamp": ago(hours=3, minutes=4)} | kw


def test_deployment_and_replicaset() -> None:
    template = {
        "spec": {"containers": [{"name": "a", "image": "i:1"}, {"name": "b", "image": "j"}]}
    }
    selector = {"matchLabels": {"app": "web"}, "matchExpressions": [
        {"key": "tier", "operator": "In", "values": ["fe", "be"]}
    ]}  # fmt: skip
    deploy = {
        "metadata": meta("web"),
        "spec": {"replicas": 3, "selector": selector, "template": template},
        "status": {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2},
    }
    assert names(rt("deployments", "apps")) == [
        ("Name", 0),
        ("Ready", 0),
        ("Up-to-date", 0),
        ("Available", 0),
        ("Age", 0),
        ("Containers", 1),
        ("Images", 1),
        ("Selector", 1),
    ]
    assert tables.cells(rt("deployments", "apps"), deploy, NOW) == [
        "web",
        "2/3",
        3,
        2,
        "3h4m",
        "a,b",
        "i:1,j",
        "app=web,tier in (be,fe)",
    ]
    assert tables.cells(rt("deployments", "apps"), {"metadata": meta("d")}, NOW)[1:4] == [
        "0/1",
        0,
        0,
    ]
    rs = {"metadata": meta("web-1"), "spec": {"replicas": 2, "template": template}}
    assert tables.cells(rt("replicasets", "apps"), rs, NOW) == [
        "web-1",
        2,
        0,
        0,
        "3h4m",
        "a,b",
        "i:1,j",
        "<none>",
    ]
    assert [c["type"] for c in tables.columns(rt("replicasets", "apps"))][1:4] == ["integer"] * 3


@pytest.mark.parametrize(
    ("spec", "status", "expected"),
    [
        (
            {"clusterIP": "10.96.0.10", "ports": [{"port": 53, "protocol": "UDP"}]},
            {},
            ["ClusterIP", "10.96.0.10", "<none>", "53/UDP"],
        ),
        (
            {
                "type": "NodePort",
                "clusterIPs": ["10.96.0.2"],
                "ports": [{"port": 80, "nodePort": 30080}],
            },
            {},
            ["NodePort", "10.96.0.2", "<none>", "80:30080/TCP"],
        ),
        (
            {"type": "LoadBalancer", "clusterIP": "10.96.0.3", "ports": [{"port": 443}]},
            {},
            ["LoadBalancer", "10.96.0.3", "<pending>", "443/TCP"],
        ),
        (
            {"type": "LoadBalancer", "clusterIP": "10.96.0.3", "externalIPs": ["1.2.3.4"]},
            {"loadBalancer": {"ingress": [{"ip": "5.6.7.8"}, {"hostname": "lb.example"}]}},
            ["LoadBalancer", "10.96.0.3", "5.6.7.8,lb.example,1.2.3.4", "<none>"],
        ),
        (
            {"type": "ExternalName", "externalName": "db.example.com"},
            {},
            ["ExternalName", "<none>", "db.example.com", "<none>"],
        ),
        (
            {"clusterIP": "None", "externalIPs": ["9.9.9.9"]},
            {},
            ["ClusterIP", "None", "9.9.9.9", "<none>"],
        ),
    ],
)
def test_service(spec: dict[str, Any], status: dict[str, Any], expected: list[Any]) -> None:
    svc = {
        "metadata": meta("svc"),
        "spec": spec | {"selector": {"b": "2", "a": "1"}},
        "status": status,
    }
    cells = tables.cells(rt("services"), svc, NOW)
    assert cells[1:5] == expected
    assert cells[6] == "a=1,b=2"
    assert names(rt("services"))[-1] == ("Selector", 1)


def test_endpoints() -> None:
    def eps(subsets: list[dict[str, Any]]) -> str:
        return tables.cells(rt("endpoints"), {"metadata": meta(), "subsets": subsets}, NOW)[1]

    addresses = [{"ip": f"10.0.0.{i}"} for i in range(1, 6)]
    assert eps([]) == "<none>"
    assert eps([{"addresses": addresses[:2], "ports": [{"port": 80}]}]) == "10.0.0.1:80,10.0.0.2:80"
    assert eps([{"addresses": addresses, "ports": [{"port": 80}]}]) == (
        "10.0.0.1:80,10.0.0.2:80,10.0.0.3:80 + 2 more..."
    )
    assert eps([{"addresses": addresses[:2]}]) == "10.0.0.1,10.0.0.2"
    assert eps([{"addresses": [{"ip": "fd00::1"}], "ports": [{"port": 443}]}]) == "[fd00::1]:443"
    assert eps([{"ports": [{"port": 80}]}]) == ""


def test_node() -> None:
    node: dict[str, Any] = {
        "metadata": meta(
            "n1",
            labels={"node-role.kubernetes.io/control-plane": "", "kubernetes.io/role": "worker"},
        ),
        "spec": {},
        "status": {
            "conditions": [
                {"type": "MemoryPressure", "status": "False"},
                {"type": "Ready", "status": "True"},
            ],
            "nodeInfo": {
                "kubeletVersion": "v1.32.0",
                "osImage": "Debian 12",
                "kernelVersion": "6.1",
            },
            "addresses": [
                {"type": "Hostname", "address": "n1"},
                {"type": "InternalIP", "address": "192.0.2.1"},
            ],
        },
    }
    cells = tables.cells(rt("nodes"), node, NOW)
    assert cells == [
        "n1",
        "Ready",
        "control-plane,worker",
        "3h4m",
        "v1.32.0",
        "192.0.2.1",
        "<none>",
        "Debian 12",
        "6.1",
        "<unknown>",
    ]
    node["spec"]["unschedulable"] = True
    node["status"]["conditions"][1]["status"] = "Unknown"
    assert tables.cells(rt("nodes"), node, NOW)[1] == "NotReady,SchedulingDisabled"
    assert tables.cells(rt("nodes"), {"metadata": meta("n2")}, NOW)[1:3] == ["Unknown", "<none>"]


def test_event() -> None:
    event: dict[str, Any] = {
        "metadata": meta("web.17"),
        "involvedObject": {"kind": "Pod", "name": "web", "fieldPath": "spec.containers{c}"},
        "reason": "Pulled",
        "message": "  Pulled image  \n",
        "type": "Normal",
        "source": {"component": "kubelet", "host": "node-1"},
        "firstTimestamp": ago(hours=1),
        "lastTimestamp": ago(minutes=2),
        "count": 4,
    }
    assert [c["name"] for c in tables.columns(rt("events"))][:4] == [
        "Last Seen",
        "Type",
        "Reason",
        "Object",
    ]
    assert tables.cells(rt("events"), event, NOW) == [
        "2m",
        "Normal",
        "Pulled",
        "pod/web",
        "spec.containers{c}",
        "kubelet, node-1",
        "Pulled image",
        "60m",
        4,
        "web.17",
    ]
    # An events.k8s.io-style event: eventTime, reporting controller, series, no count.
    new_style: dict[str, Any] = {
        "metadata": meta("e2"),
        "involvedObject": {"kind": "Node"},
        "eventTime": "2024-06-01T11:59:30.000000Z",
        "reportingComponent": "scheduler",
        "type": "Warning",
    }
    cells = tables.cells(rt("events"), new_style, NOW)
    assert (cells[0], cells[3], cells[5], cells[7], cells[8]) == (
        "30s",
        "node",
        "scheduler",
        "30s",
        1,
    )
    new_style["series"] = {"count": 9, "lastObservedTime": "2024-06-01T11:59:55.000000Z"}
    cells = tables.cells(rt("events"), new_style, NOW)
    assert (cells[0], cells[8]) == ("5s", 9)


def test_small_core_kinds() -> None:
    ns = {"metadata": meta("prod"), "status": {"phase": "Active"}}
    assert tables.cells(rt("namespaces"), ns, NOW) == ["prod", "Active", "3h4m"]
    cm = {"metadata": meta("cfg"), "data": {"a": "1", "b": "2"}, "binaryData": {"c": "AA=="}}
    assert tables.cells(rt("configmaps"), cm, NOW) == ["cfg", 3, "3h4m"]
    secret = {
        "metadata": meta("s"),
        "type": "kubernetes.io/tls",
        "data": {"tls.crt": "", "tls.key": ""},
    }
    assert tables.cells(rt("secrets"), secret, NOW) == ["s", "kubernetes.io/tls", 2, "3h4m"]
    assert tables.cells(rt("secrets"), {"metadata": meta("o")}, NOW)[1:3] == ["Opaque", 0]
    sa = {"metadata": meta("default"), "secrets": [{"name": "t"}]}
    assert tables.cells(rt("serviceaccounts"), sa, NOW) == ["default", 1, "3h4m"]
    lease = {"metadata": meta("leader"), "spec": {"holderIdentity": "node-1_abc"}}
    assert tables.cells(rt("leases", "coordination.k8s.io"), lease, NOW) == [
        "leader",
        "node-1_abc",
        "3h4m",
    ]


def test_persistent_volumes_and_claims() -> None:
    pv = {
        "metadata": meta("pv1", annotations={"volume.beta.kubernetes.io/storage-class": "slow"}),
        "spec": {
            "capacity": {"storage": "10240Mi"},
            "accessModes": ["ReadWriteMany", "ReadWriteOnce", "ReadWriteOnce"],
            "persistentVolumeReclaimPolicy": "Retain",
            "claimRef": {"namespace": "ns", "name": "data"},
            "storageClassName": "fast",
            "volumeMode": "Filesystem",
        },
        "status": {"phase": "Bound"},
    }
    assert tables.cells(rt("persistentvolumes"), pv, NOW) == [
        "pv1",
        "10Gi",
        "RWO,RWX",
        "Retain",
        "Bound",
        "ns/data",
        "slow",
        "<unset>",
        "",
        "3h4m",
        "Filesystem",
    ]
    pv["metadata"]["deletionTimestamp"] = ago(seconds=1)
    assert tables.cells(rt("persistentvolumes"), pv, NOW)[4] == "Terminating"
    pvc = {
        "metadata": meta("data"),
        "spec": {"storageClassName": "fast", "resources": {"requests": {"storage": "1Gi"}}},
        "status": {"phase": "Pending"},
    }
    assert tables.cells(rt("persistentvolumeclaims"), pvc, NOW) == [
        "data",
        "Pending",
        "",
        "",
        "",
        "fast",
        "<unset>",
        "3h4m",
        "<unset>",
    ]
    pvc["spec"]["volumeName"] = "pv1"
    pvc["status"] = {
        "phase": "Bound",
        "capacity": {"storage": "10Gi"},
        "accessModes": ["ReadOnlyMany"],
    }
    assert tables.cells(rt("persistentvolumeclaims"), pvc, NOW)[1:5] == [
        "Bound",
        "pv1",
        "10Gi",
        "ROX",
    ]


def test_resource_quota() -> None:
    quota = {
        "metadata": meta("q"),
        "status": {
            "hard": {
                "pods": "10",
                "requests.cpu": "2",
                "limits.memory": "4096Mi",
                "limits.cpu": "4",
            },
            "used": {"pods": "1", "requests.cpu": "0.5", "limits.cpu": "1"},
        },
    }
    assert tables.cells(rt("resourcequotas"), quota, NOW) == [
        "q",
        "pods: 1/10, requests.cpu: 500m/2",
        "limits.cpu: 1/4, limits.memory: 0/4Gi",
        "3h4m",
    ]


def test_role_bindings() -> None:
    binding = {
        "metadata": meta("rb"),
        "roleRef": {
            "kind": "ClusterRole",
            "name": "admin",
            "apiGroup": "rbac.authorization.k8s.io",
        },
        "subjects": [
            {"kind": "User", "name": "alice"},
            {"kind": "User", "name": "bob"},
            {"kind": "Group", "name": "devs"},
            {"kind": "ServiceAccount", "name": "ci", "namespace": "tools"},
        ],
    }
    resource = rt("rolebindings", "rbac.authorization.k8s.io")
    assert tables.cells(resource, binding, NOW) == [
        "rb",
        "ClusterRole/admin",
        "3h4m",
        "alice, bob",
        "devs",
        "tools/ci",
    ]
    assert names(resource)[3:] == [("Users", 1), ("Groups", 1), ("ServiceAccounts", 1)]


@pytest.mark.parametrize(
    ("plural", "group"),
    [
        ("roles", "rbac.authorization.k8s.io"),
        ("clusterroles", "rbac.authorization.k8s.io"),
        ("limitranges", ""),
        ("customresourcedefinitions", "apiextensions.k8s.io"),
    ],
)
def test_kinds_kube_prints_with_created_at(plural: str, group: str) -> None:
    resource = rt(plural, group)
    assert [(c["name"], c["type"]) for c in tables.columns(resource)] == [
        ("Name", "string"),
        ("Created At", "date"),
    ]
    obj = {"metadata": {"name": "r", "creationTimestamp": "2024-05-01T10:00:00+02:00"}}
    assert tables.cells(resource, obj, NOW) == ["r", "2024-05-01T08:00:00Z"]
    assert tables.cells(resource, {"metadata": {"name": "r"}}, NOW)[1] == "0001-01-01T00:00:00Z"


def test_unknown_kind_gets_name_and_age() -> None:
    tenant = ResourceType("hypernetes.io", "v1", "Tenant", "tenants", False)
    assert names(tenant) == [("Name", 0), ("Age", 0)]
    assert tables.cells(tenant, {"metadata": meta("acme")}, NOW) == ["acme", "3h4m"]


def test_every_printer_fills_every_column() -> None:
    """Also holds on empty objects, which must never crash a printer."""
    for resource in REG:
        cols = tables.columns(resource)
        assert cols[0]["name"] in ("Name", "Last Seen")
        for obj in ({"metadata": {"name": "n"}}, {}):
            assert len(tables.cells(resource, obj, NOW)) == len(cols), resource.kind
        for col in cols:
            assert set(col) == {"name", "type", "format", "description", "priority"}
            assert col["description"], (resource.kind, col["name"])


# -- CRD-served kinds -----------------------------------------------------------------------------

CRD_COLUMNS = (
    {"name": "Spec", "type": "string", "jsonPath": ".spec.cronSpec", "description": "When"},
    {"name": "Replicas", "type": "integer", "jsonPath": ".spec.replicas"},
    {"name": "Ratio", "type": "number", "jsonPath": ".spec.ratio", "priority": 1},
    {"name": "Suspended", "type": "boolean", "jsonPath": ".spec.suspend"},
    {
        "name": "Ready",
        "type": "string",
        "jsonPath": '.status.conditions[?(@.type=="Ready")].status',
    },
    {"name": "First", "type": "string", "jsonPath": ".spec.hosts[0]"},
    {"name": "Hosts", "type": "string", "jsonPath": ".spec.hosts"},
    {"name": "Last Run", "type": "date", "jsonPath": ".status.lastRun"},
    {"name": "Labels", "type": "string", "jsonPath": ".metadata.labels['app.kubernetes.io/name']"},
)
CRONTAB = ResourceType(
    "stable.example.com",
    "v1",
    "CronTab",
    "crontabs",
    True,
    crd_schema={"type": "object"},
    crd_name="crontabs.stable.example.com",
    printer_columns=CRD_COLUMNS,
)


def test_crd_printer_columns() -> None:
    cols = tables.columns(CRONTAB)
    assert [(c["name"], c["type"], c["priority"]) for c in cols][:4] == [
        ("Name", "string", 0),
        ("Spec", "string", 0),
        ("Replicas", "integer", 0),
        ("Ratio", "number", 1),
    ]
    assert cols[1]["description"] == "When"
    assert cols[2]["description"] == (
        "Custom resource definition column (in JSONPath format): .spec.replicas"
    )
    obj = {
        "metadata": meta("c1", labels={"app.kubernetes.io/name": "cron"}),
        "spec": {"cronSpec": "*/5 * * * *", "replicas": 3, "ratio": 0.5, "suspend": False}
        | {"hosts": ["a.example", "b.example"]},
        "status": {
            "conditions": [
                {"type": "Synced", "status": "False"},
                {"type": "Ready", "status": "True"},
            ],
            "lastRun": ago(minutes=7),
        },
    }
    assert tables.cells(CRONTAB, obj, NOW) == [
        "c1",
        "*/5 * * * *",
        3,
        0.5,
        False,
        "True",
        "a.example",
        '["a.example","b.example"]',
        "7m",
        "cron",
    ]


def test_crd_cells_of_missing_or_mistyped_values_are_null() -> None:
    obj = {"metadata": meta("c2"), "spec": {"replicas": "three", "ratio": 2, "suspend": "no"}}
    obj["status"] = {"lastRun": "yesterday"}
    cells = tables.cells(CRONTAB, obj, NOW)
    assert cells == ["c2", None, None, 2, None, None, None, None, "<invalid>", None]


def test_crd_string_column_prints_numbers_and_booleans() -> None:
    columns = [
        {"name": "A", "type": "string", "jsonPath": ".a"},
        {"name": "B", "type": "string", "jsonPath": ".b"},
        {"name": "C", "type": "string", "jsonPath": ".c"},
        {"name": "D", "type": "integer", "jsonPath": ".d"},
        {"name": "Bad", "type": "string", "jsonPath": ".spec[?(@.x ~ 1)]"},
    ]
    obj = {"metadata": {"name": "x"}, "a": 3, "b": True, "c": 2.0, "d": 7.9}
    assert tables.cells(CRONTAB, obj, NOW, printer_columns=columns) == [
        "x",
        "3",
        "true",
        "2",
        7,
        None,
    ]


def test_crd_without_printer_columns_shows_age() -> None:
    plain = ResourceType("x.io", "v1", "Thing", "things", True, crd_schema={"type": "object"})
    cols = tables.columns(plain)
    assert [(c["name"], c["type"]) for c in cols] == [("Name", "string"), ("Age", "date")]
    assert "creation" in cols[1]["description"].lower()
    assert tables.cells(plain, {"metadata": meta("t")}, NOW) == ["t", "3h4m"]


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (".spec.a", [1]),
        ("{.spec.a}", [1]),
        ("$.spec.a", [1]),
        (".spec.missing", []),
        (".spec.list[1].n", ["y"]),
        (".spec.list[-1].n", ["z"]),
        (".spec.list[7].n", []),
        (".spec.list[*].n", ["x", "y", "z"]),
        (".spec.list[0:2].n", ["x", "y"]),
        (".spec.list[?(@.v > 1)].n", ["y", "z"]),
        (".spec.list[?(@.v != 2)].n", ["x", "z"]),
        (".spec.list[?(@.flag)].n", ["z"]),
        (".spec.list[?(@.n == 'y')].v", [2]),
        ("..n", ["x", "y", "z"]),
        (".spec['dotted.key']", ["d"]),
        (
            ".spec.*",
            [1, [{"n": "x", "v": 1}, {"n": "y", "v": 2}, {"n": "z", "v": 3, "flag": True}], "d"],
        ),
    ],
)
def test_jsonpath_subset(path: str, expected: list[Any]) -> None:
    data = {
        "spec": {
            "a": 1,
            "list": [{"n": "x", "v": 1}, {"n": "y", "v": 2}, {"n": "z", "v": 3, "flag": True}],
            "dotted.key": "d",
        }
    }
    assert tables.jsonpath(path, data) == expected


@pytest.mark.parametrize("path", ["spec", ".spec[", ".spec..[0]x", ".a[?(@.b =~ 1)]", ".a[x]"])
def test_jsonpath_rejects_what_it_does_not_support(path: str) -> None:
    with pytest.raises(ValueError):
        tables.jsonpath(path, {"spec": {}})


# -- the Table ------------------------------------------------------------------------------------


def test_table_of_pods_with_partial_object_metadata() -> None:
    done = pod("Succeeded", [terminated("Completed")])
    live = pod("Running", [running()])
    live["metadata"] = live["metadata"] | {"name": "live", "labels": {"a": "b"}}
    table = tables.table(
        rt("pods"),
        [done, live],
        now=NOW,
        list_meta={"resourceVersion": "42", "continue": "tok", "other": "dropped"},
    )
    assert table["kind"] == "Table" and table["apiVersion"] == "meta.k8s.io/v1"
    assert table["metadata"] == {"resourceVersion": "42", "continue": "tok"}
    assert table["columnDefinitions"] == tables.columns(rt("pods"))
    first, second = table["rows"]
    assert first["conditions"] == [
        {
            "type": "Completed",
            "status": "True",
            "reason": "Succeeded",
            "message": "The pod has completed successfully.",
        }
    ]
    assert "conditions" not in second
    assert second["cells"][:3] == ["live", "1/1", "Running"]
    assert second["object"] == {
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": live["metadata"],
    }


def test_table_include_object_modes() -> None:
    obj = {"metadata": meta("cfg"), "data": {"k": "v"}}
    original = copy.deepcopy(obj)
    full = tables.table(rt("configmaps"), [obj], now=NOW, include_object="Object")
    assert full["rows"][0]["object"] == {"apiVersion": "v1", "kind": "ConfigMap", **original}
    none = tables.table(rt("configmaps"), [obj], now=NOW, include_object="None")
    assert none["rows"][0]["object"] is None
    default = tables.table(rt("configmaps"), [obj], now=NOW, include_object="")
    assert default["rows"][0]["object"]["kind"] == "PartialObjectMetadata"
    assert obj == original
    empty = tables.table(rt("configmaps"), [], now=NOW)
    assert empty["rows"] == [] and empty["metadata"] == {}


def test_table_rejects_unknown_include_object() -> None:
    with pytest.raises(tables.TableError) as err:
        tables.table(rt("pods"), [], now=NOW, include_object="Everything")
    assert str(err.value) == 'unrecognized includeObject value: "Everything"'


def test_table_uses_registry_printer_columns_for_crd_kinds() -> None:
    table = tables.table(CRONTAB, [{"metadata": meta("c"), "spec": {"replicas": 2}}], now=NOW)
    assert [c["name"] for c in table["columnDefinitions"]][:3] == ["Name", "Spec", "Replicas"]
    assert table["rows"][0]["cells"][:3] == ["c", None, 2]
    override = [{"name": "R", "type": "integer", "jsonPath": ".spec.replicas"}]
    table = tables.table(CRONTAB, [{"metadata": meta("c"), "spec": {"replicas": 2}}], now=NOW,
                         printer_columns=override)  # fmt: skip
    assert table["rows"][0]["cells"] == ["c", 2]
