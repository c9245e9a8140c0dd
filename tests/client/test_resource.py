"""Resource paths, error mapping and backoff: the parts that need no server."""

from __future__ import annotations

import pytest

from hypernetes.client import (
    CONFIGMAPS,
    LEASES,
    NAMESPACES,
    ApiError,
    Backoff,
    Conflict,
    Expired,
    NotFound,
    Resource,
    object_key,
    split_key,
)
from hypernetes.client.errors import api_error


def test_paths() -> None:
    assert CONFIGMAPS.path() == "/api/v1/configmaps"
    assert CONFIGMAPS.path("ns") == "/api/v1/namespaces/ns/configmaps"
    assert CONFIGMAPS.path("ns", "a") == "/api/v1/namespaces/ns/configmaps/a"
    assert NAMESPACES.path(None, "ns", "finalize") == "/api/v1/namespaces/ns/finalize"
    assert LEASES.path("kube-system", "l") == (
        "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/l"
    )
    assert LEASES.api_version == "coordination.k8s.io/v1"
    assert CONFIGMAPS.api_version == "v1"
    assert str(LEASES) == "leases.coordination.k8s.io/v1"
    # Names are single, escaped path segments.
    assert CONFIGMAPS.path("ns", "a:b") == "/api/v1/namespaces/ns/configmaps/a%3Ab"


@pytest.mark.parametrize(
    ("namespace", "name", "sub", "message"),
    [
        (None, "a", None, "namespace is required"),
        ("ns", "../x", None, "invalid path segment"),
        ("ns", "a/b", None, "invalid path segment"),
        ("ns", None, "status", "needs an object name"),
    ],
)
def test_bad_paths(namespace: str | None, name: str | None, sub: str | None, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        CONFIGMAPS.path(namespace, name, sub)
    with pytest.raises(ValueError, match="cluster-scoped"):
        NAMESPACES.path("ns", "x")


def test_resource_equality_ignores_discovery_details() -> None:
    discovered = Resource("", "v1", "configmaps", True, "ConfigMap", frozenset({"get"}))
    assert discovered == CONFIGMAPS
    assert hash(discovered) == hash(CONFIGMAPS)


def test_status_errors_map_to_classes() -> None:
    status = {
        "kind": "Status",
        "apiVersion": "v1",
        "status": "Failure",
        "reason": "NotFound",
        "message": 'configmaps "x" not found',
        "code": 404,
        "details": {"name": "x", "kind": "configmaps"},
    }
    err = api_error(404, status)
    assert isinstance(err, NotFound)
    assert (err.code, err.reason, err.message) == (404, "NotFound", 'configmaps "x" not found')
    assert err.details == {"name": "x", "kind": "configmaps"}
    assert isinstance(api_error(409, {**status, "code": 409, "reason": "AlreadyExists"}), Conflict)
    assert isinstance(api_error(200, {**status, "code": 410, "reason": "Expired"}), Expired)
    plain = api_error(502, None, "<html>bad gateway</html>")
    assert type(plain) is ApiError
    assert plain.reason == "Unknown" and plain.message == "<html>bad gateway</html>"
    assert plain.status["code"] == 502
    assert api_error(403, None, "").reason == "Forbidden"


def test_object_keys() -> None:
    assert object_key({"metadata": {"name": "a", "namespace": "n"}}) == "n/a"
    assert object_key({"metadata": {"name": "a"}}) == "a"
    assert split_key("n/a") == ("n", "a")
    assert split_key("a") == (None, "a")


def test_backoff_grows_to_the_cap_and_resets() -> None:
    backoff = Backoff(0.5, 4.0, jitter=0.0)
    assert [backoff.next() for _ in range(6)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    backoff.reset()
    assert backoff.next() == 0.5
    assert backoff.delay_for(10_000) == 4.0  # no overflow for absurd counts
    jittery = Backoff(1.0, 10.0, jitter=0.2)
    assert all(0.8 <= jittery.next() <= 1.2 for _ in range(1)) and jittery.failures == 1
    with pytest.raises(ValueError):
        Backoff(0, 1)
    with pytest.raises(ValueError):
        Backoff(2, 1)
