"""Benchmark of defaulting and validation (hypernetes.resources), each beside a baseline.

Every write to the API server runs `defaults.default` then `validation.validate` on the
object. This measures that cost per object for a Pod, a Deployment, a Service and a custom
object, beside two baselines taken in the same run:

- the same object checked by `kubernetes-validate` (jsonschema validation against the same
  Kubernetes 1.32 schemas, strict): what validating with a generic JSON-schema library costs;
- a `json.loads(json.dumps(obj))` round trip: the floor any write pays anyway.

Also: parsing and canonicalizing a resource quantity, beside `float()` of the same string.

usage: .venv/bin/python benchmarks/resources_validation.py [--repeat N]
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import time
from collections.abc import Callable
from typing import Any

import kubernetes_validate

from hypernetes.resources import defaults, quantity, validation
from hypernetes.resources.registry import BUILTIN, ResourceType

Obj = dict[str, Any]


def rt(kind: str) -> ResourceType:
    return next(r for r in BUILTIN if r.kind == kind)


CONTAINER = {
    "name": "web",
    "image": "registry.local/nginx:1.27",
    "ports": [{"containerPort": 80, "name": "http"}],
    "env": [{"name": "MODE", "value": "prod"}, {"name": "LEVEL", "value": "3"}],
    "resources": {"requests": {"cpu": "250m", "memory": "64Mi"}, "limits": {"memory": "128Mi"}},
    "readinessProbe": {"httpGet": {"path": "/healthz", "port": "http"}},
    "volumeMounts": [{"name": "data", "mountPath": "/data"}],
}
POD_SPEC = {"containers": [CONTAINER], "volumes": [{"name": "data", "emptyDir": {}}]}
LABELS = {"app": "web", "tier": "frontend"}
OBJECTS: dict[str, Obj] = {
    "Pod": {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "web-1", "namespace": "shop", "labels": LABELS},
        "spec": POD_SPEC,
    },
    "Deployment": {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "shop", "labels": LABELS},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": LABELS},
            "template": {"metadata": {"labels": LABELS}, "spec": POD_SPEC},
        },
    },
    "Service": {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {"selector": LABELS, "ports": [{"name": "http", "port": 80, "targetPort": 8080}]},
    },
}
CUSTOM_SCHEMA = {
    "type": "object",
    "properties": {
        "spec": {
            "type": "object",
            "required": ["cronSpec"],
            "properties": {
                "cronSpec": {"type": "string", "pattern": "^[0-9*/ ,-]+$"},
                "replicas": {"type": "integer", "minimum": 1, "maximum": 10, "default": 1},
                "image": {"type": "string"},
                "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 10},
            },
        }
    },
}
CUSTOM_RT = ResourceType("example.com", "v1", "CronTab", "crontabs", True, crd_schema=CUSTOM_SCHEMA)
CUSTOM = {
    "apiVersion": "example.com/v1",
    "kind": "CronTab",
    "metadata": {"name": "c", "namespace": "shop"},
    "spec": {"cronSpec": "*/5 * * * *", "image": "x", "tags": ["a", "b"]},
}


def median_us(fn: Callable[[], Any], repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples) * 1e6


def ours(kind: str, obj: Obj) -> Callable[[], Any]:
    def run() -> None:
        fresh = copy.deepcopy(obj)
        defaults.default(rt(kind), fresh)
        result = validation.validate(rt(kind), fresh)
        assert result.ok, result

    return run


def jsonschema_baseline(obj: Obj) -> Callable[[], Any]:
    prepared = copy.deepcopy(obj)

    def run() -> None:
        kubernetes_validate.validate(copy.deepcopy(prepared), "1.32.0", strict=True)

    return run


def round_trip(obj: Obj) -> Callable[[], Any]:
    return lambda: json.loads(json.dumps(obj))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=300)
    args = parser.parse_args()
    n = args.repeat
    print(f"medians of {n} runs, microseconds per object")
    print(f"{'object':<12} {'default+validate':>17} {'kubernetes-validate':>20} "
          f"{'ratio':>6} {'json round trip':>16} {'ratio':>6}")  # fmt: skip
    for kind, obj in OBJECTS.items():
        mine = median_us(ours(kind, obj), n)
        base = median_us(jsonschema_baseline(obj), max(20, n // 10))
        floor = median_us(round_trip(obj), n)
        print(f"{kind:<12} {mine:>17.1f} {base:>20.1f} {mine / base:>6.3f} "
              f"{floor:>16.1f} {mine / floor:>6.1f}")  # fmt: skip

    def custom() -> None:
        fresh = copy.deepcopy(CUSTOM)
        defaults.default(CUSTOM_RT, fresh)
        assert validation.validate(CUSTOM_RT, fresh).ok

    mine = median_us(custom, n)
    floor = median_us(round_trip(CUSTOM), n)
    print(f"{'CronTab (CR)':<12} {mine:>17.1f} {'-':>20} {'-':>6} {floor:>16.1f} "
          f"{mine / floor:>6.1f}")  # fmt: skip
    texts = ["250m", "1.5Gi", "64Mi", "2", "0.5", "1e3"]
    parse = median_us(lambda: [str(quantity.parse(t)) for t in texts], n) / len(texts)
    cold = median_us(lambda: [str(quantity._parse_text.__wrapped__(t)) for t in texts], n)
    floats = median_us(lambda: [float(t.rstrip("mGiM")) for t in texts], n) / len(texts)
    print(f"quantity parse+canonical: {parse:.2f} us ({cold / len(texts):.2f} us uncached); "
          f"float() baseline: {floats:.2f} us; ratio {parse / floats:.1f}")  # fmt: skip


if __name__ == "__main__":
    main()
