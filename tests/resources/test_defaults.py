"""Defaulting: what kube-apiserver fills in, compared with objects read back from a real cluster.

The expected objects below are what `kubectl get -o yaml` shows on a Kubernetes 1.32 cluster for
objects made by `kubectl run`, `kubectl create deployment`, `kubectl create service` and
`kubectl create namespace`, minus what other parts add (cluster IPs from the allocator, the
service-account token volume and not-ready tolerations from admission plugins, and the
server-set metadata: uid, resourceVersion, creationTimestamp, generation, managedFields).
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from hypernetes.resources import defaults, validation
from hypernetes.resources.registry import BUILTIN, ResourceType

Obj = dict[str, Any]


def rt(kind: str) -> ResourceType:
    return next(r for r in BUILTIN if r.kind == kind)


def defaulted(kind: str, obj: Obj) -> Obj:
    """Default then validate, as the server does; the object must be valid."""
    defaults.default(rt(kind), obj)
    result = validation.validate(rt(kind), obj)
    assert result.ok, result
    return obj


KUBE_CONTAINER = {
    "image": "nginx",
    "imagePullPolicy": "Always",
    "name": "nginx",
    "resources": {},
    "terminationMessagePath": "/dev/termination-log",
    "terminationMessagePolicy": "File",
}
KUBE_TEMPLATE_SPEC = {
    "containers": [KUBE_CONTAINER],
    "dnsPolicy": "ClusterFirst",
    "restartPolicy": "Always",
    "schedulerName": "default-scheduler",
    "securityContext": {},
    "terminationGracePeriodSeconds": 30,
}


def test_kubectl_run_pod() -> None:
    obj = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"labels": {"run": "nginx"}, "name": "nginx", "namespace": "default"},
        "spec": {"containers": [{"image": "nginx", "name": "nginx", "resources": {}}]},
    }
    assert defaulted("Pod", obj) == {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"labels": {"run": "nginx"}, "name": "nginx", "namespace": "default"},
        "spec": {
            **KUBE_TEMPLATE_SPEC,
            "enableServiceLinks": True,
            "preemptionPolicy": "PreemptLowerPriority",
            "priority": 0,
            "serviceAccount": "default",
            "serviceAccountName": "default",
        },
        "status": {"phase": "Pending", "qosClass": "BestEffort"},
    }


def test_kubectl_create_deployment() -> None:
    labels = {"app": "web"}
    obj = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"labels": labels, "name": "web", "namespace": "default"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "strategy": {},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"image": "nginx", "name": "nginx", "resources": {}}]},
            },
        },
        "status": {},
    }
    assert defaulted("Deployment", obj) == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"labels": labels, "name": "web", "namespace": "default"},
        "spec": {
            "progressDeadlineSeconds": 600,
            "replicas": 1,
            "revisionHistoryLimit": 10,
            "selector": {"matchLabels": labels},
            "strategy": {
                "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"},
                "type": "RollingUpdate",
            },
            "template": {"metadata": {"labels": labels}, "spec": KUBE_TEMPLATE_SPEC},
        },
        "status": {},
    }


def test_kubectl_create_service_clusterip() -> None:
    obj = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"labels": {"app": "web"}, "name": "web", "namespace": "default"},
        "spec": {
            "ports": [{"name": "80-8080", "port": 80, "protocol": "TCP", "targetPort": 8080}],
            "selector": {"app": "web"},
            "type": "ClusterIP",
        },
    }
    assert defaulted("Service", obj) == {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"labels": {"app": "web"}, "name": "web", "namespace": "default"},
        "spec": {
            "internalTrafficPolicy": "Cluster",
            "ipFamilies": ["IPv4"],
            "ipFamilyPolicy": "SingleStack",
            "ports": [{"name": "80-8080", "port": 80, "protocol": "TCP", "targetPort": 8080}],
            "selector": {"app": "web"},
            "sessionAffinity": "None",
            "type": "ClusterIP",
        },
        "status": {"loadBalancer": {}},
    }


def test_kubectl_create_namespace() -> None:
    obj = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}
    assert defaulted("Namespace", obj) == {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"labels": {"kubernetes.io/metadata.name": "shop"}, "name": "shop"},
        "spec": {"finalizers": ["kubernetes"]},
        "status": {"phase": "Active"},
    }


def test_namespace_create_only_defaults_spare_updates() -> None:
    obj = {
        "metadata": {"name": "shop", "resourceVersion": "9"},
        "spec": {},
        "status": {"phase": "Terminating"},
    }
    defaults.default(rt("Namespace"), obj)
    assert obj["spec"] == {}  # a finalized namespace does not get its finalizer back
    assert obj["status"] == {"phase": "Terminating"}
    created = {"metadata": {"name": "x"}, "spec": {"finalizers": ["example.com/a"]}}
    defaults.default(rt("Namespace"), created)
    assert created["spec"]["finalizers"] == ["example.com/a", "kubernetes"]


@pytest.mark.parametrize(
    ("image", "policy"),
    [
        ("nginx", "Always"),
        ("nginx:latest", "Always"),
        ("nginx:1.27", "IfNotPresent"),
        ("registry.local:5000/team/nginx", "Always"),
        ("registry.local:5000/team/nginx:1", "IfNotPresent"),
        ("nginx@sha256:" + "a" * 64, "IfNotPresent"),
        ("nginx:latest@sha256:" + "a" * 64, "Always"),
        ("Not/A Valid:Image", "IfNotPresent"),
        ("", "IfNotPresent"),
    ],
)
def test_image_pull_policy(image: str, policy: str) -> None:
    assert defaults.image_pull_policy(image) == policy


def test_set_values_are_kept() -> None:
    obj = {
        "metadata": {"name": "p", "namespace": "n"},
        "spec": {
            "containers": [{"name": "c", "image": "nginx", "imagePullPolicy": "Never"}],
            "restartPolicy": "OnFailure",
            "terminationGracePeriodSeconds": 0,
            "enableServiceLinks": False,
            "serviceAccountName": "robot",
            "priorityClassName": "system-node-critical",
        },
    }
    spec = defaulted("Pod", obj)["spec"]
    assert spec["containers"][0]["imagePullPolicy"] == "Never"
    assert spec["restartPolicy"] == "OnFailure"
    assert spec["terminationGracePeriodSeconds"] == 0
    assert spec["enableServiceLinks"] is False
    assert spec["serviceAccountName"] == spec["serviceAccount"] == "robot"
    assert spec["priority"] == 2000001000
    deployment = {
        "metadata": {"name": "d", "namespace": "n"},
        "spec": {
            "replicas": 0,
            "strategy": {"type": "Recreate"},
            "selector": {"matchLabels": {"a": "b"}},
            "template": {
                "metadata": {"labels": {"a": "b"}},
                "spec": obj["spec"] | {"restartPolicy": "Always"},
            },
        },
    }
    spec = defaulted("Deployment", deployment)["spec"]
    assert spec["replicas"] == 0 and spec["strategy"] == {"type": "Recreate"}


def test_container_and_volume_details() -> None:
    probe = {"httpGet": {"port": 80}}
    container = {
        "name": "c",
        "image": "x:1",
        "ports": [{"containerPort": 80}],
        "livenessProbe": probe,
        "lifecycle": {"preStop": {"httpGet": {"port": 80}}},
        "env": [{"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
        "resources": {"limits": {"cpu": "1"}},
    }
    volumes = [
        {"name": "a"},
        {"name": "b", "secret": {"secretName": "s"}},
        {"name": "c", "configMap": {"name": "c", "defaultMode": 0o400}},
        {"name": "d", "projected": {"sources": [{"serviceAccountToken": {"path": "t"}}]}},
        {"name": "e", "hostPath": {"path": "/x"}},
    ]
    obj = {
        "metadata": {"name": "p", "namespace": "n"},
        "spec": {"containers": [container], "volumes": volumes, "hostNetwork": True},
    }
    spec = defaulted("Pod", obj)["spec"]
    c = spec["containers"][0]
    assert c["ports"] == [{"containerPort": 80, "protocol": "TCP", "hostPort": 80}]
    assert c["livenessProbe"] == {
        "httpGet": {"port": 80, "path": "/", "scheme": "HTTP"},
        "timeoutSeconds": 1,
        "periodSeconds": 10,
        "successThreshold": 1,
        "failureThreshold": 3,
    }
    assert c["lifecycle"]["preStop"]["httpGet"] == {"port": 80, "path": "/", "scheme": "HTTP"}
    assert c["env"][0]["valueFrom"]["fieldRef"]["apiVersion"] == "v1"
    assert c["resources"]["requests"] == {"cpu": "1"}  # requests default to limits
    assert [v for v in spec["volumes"]] == [
        {"name": "a", "emptyDir": {}},
        {"name": "b", "secret": {"secretName": "s", "defaultMode": 420}},
        {"name": "c", "configMap": {"name": "c", "defaultMode": 0o400}},
        {
            "name": "d",
            "projected": {
                "sources": [{"serviceAccountToken": {"path": "t", "expirationSeconds": 3600}}],
                "defaultMode": 420,
            },
        },
        {"name": "e", "hostPath": {"path": "/x", "type": ""}},
    ]
    assert obj["status"]["qosClass"] == "Burstable"


@pytest.mark.parametrize(
    ("resources", "qos"),
    [
        ([{}], "BestEffort"),
        ([{"requests": {"cpu": "100m"}}], "Burstable"),
        ([{"limits": {"cpu": "1", "memory": "1Gi"}}], "Guaranteed"),
        ([{"limits": {"cpu": "1", "memory": "1Gi"}}, {"limits": {"cpu": "1"}}], "Burstable"),
        ([{"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "500m"}}], "Burstable"),
        (
            [{"requests": {"example.com/gpu": "1"}, "limits": {"example.com/gpu": "1"}}],
            "BestEffort",
        ),
    ],
)
def test_qos_class(resources: list[Obj], qos: str) -> None:
    containers = [{"name": f"c{i}", "image": "x", "resources": r} for i, r in enumerate(resources)]
    obj = {"metadata": {"name": "p", "namespace": "n"}, "spec": {"containers": containers}}
    assert defaulted("Pod", obj)["status"]["qosClass"] == qos


def test_pod_updates_keep_their_status() -> None:
    obj = {
        "metadata": {"name": "p", "namespace": "n", "resourceVersion": "3"},
        "spec": {"containers": []},
    }
    defaults.default(rt("Pod"), obj)
    assert "status" not in obj


def test_defaulting_is_idempotent() -> None:
    obj = {
        "metadata": {"name": "p", "namespace": "n"},
        "spec": {"containers": [{"name": "c", "image": "x"}]},
    }
    once = defaulted("Pod", obj)
    twice = defaulted("Pod", copy.deepcopy(once))
    assert once == twice


@pytest.mark.parametrize(
    "obj",
    [
        {"spec": "x"},
        {"spec": {"containers": "x", "volumes": [1, None], "template": 3}},
        {"spec": {"containers": [{"image": 5, "ports": "x", "resources": {"limits": "x"}}]}},
        {"spec": {"containers": [{"resources": {"limits": {"cpu": "lots"}}}]}},
        {"metadata": "x", "status": 1},
    ],
)
@pytest.mark.parametrize(
    "kind", ["Pod", "Deployment", "ReplicaSet", "Service", "Namespace", "Secret"]
)
def test_malformed_input_is_left_for_validation(obj: Obj, kind: str) -> None:
    defaults.default(rt(kind), copy.deepcopy(obj))  # must not raise


def test_service_variants() -> None:
    node_port = defaulted(
        "Service",
        {
            "metadata": {"name": "s", "namespace": "n"},
            "spec": {"type": "NodePort", "ports": [{"port": 80, "targetPort": 0}]},
        },
    )
    assert node_port["spec"]["externalTrafficPolicy"] == "Cluster"
    assert node_port["spec"]["ports"][0]["targetPort"] == 80
    lb = defaulted(
        "Service",
        {
            "metadata": {"name": "s", "namespace": "n"},
            "spec": {"type": "LoadBalancer", "ports": [{"port": 80}]},
        },
    )
    assert lb["spec"]["allocateLoadBalancerNodePorts"] is True
    sticky = defaulted(
        "Service",
        {
            "metadata": {"name": "s", "namespace": "n"},
            "spec": {"sessionAffinity": "ClientIP", "ports": [{"port": 80}]},
        },
    )
    assert sticky["spec"]["sessionAffinityConfig"] == {"clientIP": {"timeoutSeconds": 10800}}
    headless = defaulted(
        "Service", {"metadata": {"name": "s", "namespace": "n"}, "spec": {"clusterIP": "None"}}
    )
    assert headless["spec"]["ipFamilyPolicy"] == "RequireDualStack"
    v6 = defaulted(
        "Service",
        {
            "metadata": {"name": "s", "namespace": "n"},
            "spec": {"clusterIP": "fd00::10", "ports": [{"port": 80}]},
        },
    )
    assert v6["spec"]["ipFamilies"] == ["IPv6"]
    external = defaulted(
        "Service",
        {
            "metadata": {"name": "s", "namespace": "n"},
            "spec": {"type": "ExternalName", "externalName": "db.example.com"},
        },
    )
    assert "ipFamilies" not in external["spec"] and "internalTrafficPolicy" not in external["spec"]


def test_other_kinds() -> None:
    secret = defaulted(
        "Secret", {"metadata": {"name": "s", "namespace": "n"}, "stringData": {"p": "q"}}
    )
    assert secret["type"] == "Opaque" and secret["data"] == {"p": "cQ=="}
    pvc = defaulted(
        "PersistentVolumeClaim",
        {
            "metadata": {"name": "c", "namespace": "n"},
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": "1Gi"}},
            },
        },
    )
    assert pvc["spec"]["volumeMode"] == "Filesystem" and pvc["status"] == {"phase": "Pending"}
    pv = defaulted(
        "PersistentVolume",
        {
            "metadata": {"name": "v"},
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "capacity": {"storage": "1Gi"},
                "hostPath": {"path": "/x"},
            },
        },
    )
    assert pv["spec"]["persistentVolumeReclaimPolicy"] == "Retain"
    assert pv["spec"]["volumeMode"] == "Filesystem" and pv["status"] == {"phase": "Pending"}
    node = defaulted(
        "Node", {"metadata": {"name": "n"}, "status": {"capacity": {"cpu": "4", "pods": "110"}}}
    )
    assert node["status"]["allocatable"] == {"cpu": "4", "pods": "110"}
    rs = defaulted(
        "ReplicaSet",
        {
            "metadata": {"name": "r", "namespace": "n"},
            "spec": {
                "selector": {"matchLabels": {"a": "b"}},
                "template": {
                    "metadata": {"labels": {"a": "b"}},
                    "spec": {"containers": [{"name": "c", "image": "x"}]},
                },
            },
        },
    )
    assert rs["spec"]["replicas"] == 1
    assert rs["spec"]["template"]["spec"]["restartPolicy"] == "Always"
    binding = defaulted(
        "ClusterRoleBinding",
        {
            "metadata": {"name": "b"},
            "roleRef": {"kind": "ClusterRole", "name": "r"},
            "subjects": [{"kind": "Group", "name": "g"}],
        },
    )
    assert (
        binding["roleRef"]["apiGroup"]
        == binding["subjects"][0]["apiGroup"]
        == "rbac.authorization.k8s.io"
    )


def test_prepare_update_keeps_service_allocations() -> None:
    old = defaulted(
        "Service",
        {
            "metadata": {"name": "s", "namespace": "n"},
            "spec": {
                "type": "NodePort",
                "clusterIP": "10.96.0.7",
                "clusterIPs": ["10.96.0.7"],
                "ports": [
                    {"name": "a", "port": 80, "nodePort": 30080},
                    {"name": "b", "port": 81, "nodePort": 30081},
                ],
            },
        },
    )
    new = {
        "metadata": {"name": "s", "namespace": "n"},
        "spec": {
            "type": "NodePort",
            "ports": [{"name": "a", "port": 80}, {"name": "b", "port": 82, "nodePort": 30080}],
        },
    }
    defaults.prepare_update(rt("Service"), new, old)
    assert new["spec"]["clusterIP"] == "10.96.0.7" and new["spec"]["clusterIPs"] == ["10.96.0.7"]
    # port a's old node port is now used by port b: it is not patched back in
    assert [p.get("nodePort") for p in new["spec"]["ports"]] == [None, 30080]
    defaults.default(rt("Service"), new)
    assert validation.validate(rt("Service"), new, old=old).ok
    external = {"metadata": {"name": "s"}, "spec": {"type": "ExternalName"}}
    defaults.prepare_update(rt("Service"), external, old)
    assert "clusterIP" not in external["spec"]


def test_prepare_update_keeps_namespace_finalizers() -> None:
    old = defaulted("Namespace", {"metadata": {"name": "x"}})
    new = {"metadata": {"name": "x", "resourceVersion": "2"}, "spec": {"finalizers": []}}
    defaults.prepare_update(rt("Namespace"), new, old)
    assert new["spec"]["finalizers"] == ["kubernetes"]
    finalized = {"metadata": {"name": "x"}, "spec": {}}
    new = {"metadata": {"name": "x"}, "spec": {"finalizers": ["kubernetes"]}}
    defaults.prepare_update(rt("Namespace"), new, finalized)
    assert "finalizers" not in new["spec"]
    pod = {"spec": {"nodeName": "a"}}
    defaults.prepare_update(rt("Pod"), pod, {"spec": {"nodeName": "b"}})
    assert pod == {"spec": {"nodeName": "a"}}  # other kinds: nothing carried over
