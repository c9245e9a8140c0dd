"""Benchmark of the read-side views: OpenAPI documents, Tables, label and field selectors.

Each measurement is printed beside a baseline taken in the same run:

1. OpenAPI `api/v1` document: built from the schemas (cold) and served from `OpenAPICache`
   (warm), against the baseline of serializing that document to JSON, which the server does
   for every request anyway. Also the whole `/openapi/v3` index, cold and warm.
2. Table of N pods (`kubectl get pods`): `tables.table()` plus JSON encoding, against the
   baseline of encoding the plain PodList.
3. Selectors over N pods: parsed label + field selectors evaluated per object, against the
   baseline of a hand-written Python predicate doing the same comparisons.

usage: .venv/bin/python benchmarks/read_views.py [--objects N] [--repeat R]
"""

from __future__ import annotations

import argparse
import datetime
import json
import statistics
import time
from collections.abc import Callable
from typing import Any

from hypernetes.api import openapi
from hypernetes.resources import fields, labels, tables
from hypernetes.resources.registry import Registry


def median_ms(fn: Callable[[], Any], repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples) * 1000


def make_pods(n: int) -> list[dict[str, Any]]:
    now = datetime.datetime.now(datetime.UTC)
    pods = []
    for i in range(n):
        created = (now - datetime.timedelta(minutes=i % 500)).strftime("%Y-%m-%dT%H:%M:%SZ")
        pods.append(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": f"pod-{i}",
                    "namespace": "bench",
                    "uid": f"uid-{i}",
                    "resourceVersion": str(i),
                    "creationTimestamp": created,
                    "labels": {"app": ("web", "api", "db")[i % 3], "tier": ("fe", "db")[i % 2]},
                },
                "spec": {
                    "nodeName": f"node-{i % 4}",
                    "containers": [{"name": "main", "image": "registry.local/app:1"}],
                },
                "status": {
                    "phase": ("Running", "Pending")[i % 5 == 0],
                    "podIP": f"10.0.{i // 250}.{i % 250}",
                    "containerStatuses": [
                        {"name": "main", "ready": True, "restartCount": i % 3}
                        | {"state": {"running": {"startedAt": created}}}
                    ],
                },
            }
        )
    return pods


def report(name: str, value: float, baseline: float, base_name: str) -> None:
    print(
        f"{name:<44} {value:9.3f} ms   baseline ({base_name}) {baseline:9.3f} ms"
        f"   ratio {value / baseline:7.2f}"
    )


def bench_openapi(repeat: int) -> None:
    registry = Registry()
    cold = median_ms(lambda: openapi.document(registry, "", "v1"), repeat)
    cache = openapi.OpenAPICache(registry)
    doc = cache.document_for_path("api/v1")
    warm = median_ms(lambda: cache.document_for_path("api/v1"), repeat * 10)
    encode = median_ms(lambda: json.dumps(doc), repeat)
    cache.encoded_for_path("api/v1")
    warm_bytes = median_ms(lambda: cache.encoded_for_path("api/v1"), repeat * 10)
    report("openapi api/v1 document, cold build", cold, encode, "json.dumps of it")
    report("openapi api/v1 document, from cache", warm, encode, "json.dumps of it")
    report("openapi api/v1 JSON bytes, from cache", warm_bytes, encode, "json.dumps of it")
    index_cold = median_ms(lambda: openapi.OpenAPICache(registry).index(), repeat)
    index_warm = median_ms(cache.index, repeat * 10)
    report("openapi index, cold (builds all documents)", index_cold, encode, "json.dumps api/v1")
    report("openapi index, from cache", index_warm, encode, "json.dumps api/v1")


def bench_table(pods: list[dict[str, Any]], repeat: int) -> None:
    rt = Registry().get("", "v1", "pods")
    assert rt is not None
    now = datetime.datetime.now(datetime.UTC)
    pod_list = {"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": pods}

    def as_table() -> str:
        return json.dumps(tables.table(rt, pods, now=now, list_meta={"resourceVersion": "1"}))

    value = median_ms(as_table, repeat)
    baseline = median_ms(lambda: json.dumps(pod_list), repeat)
    report(f"table of {len(pods)} pods + JSON", value, baseline, "JSON of the PodList")


def bench_selectors(pods: list[dict[str, Any]], repeat: int) -> None:
    rt = Registry().get("", "v1", "pods")
    assert rt is not None
    label_sel = labels.parse("app in (web,api),tier!=db")
    reqs = fields.parse("status.phase=Running,spec.nodeName=node-1")
    fields.check_supported(rt, reqs)

    def generic() -> int:
        return sum(
            1
            for p in pods
            if label_sel.matches(p["metadata"].get("labels")) and fields.matches(rt, p, reqs)
        )

    def by_hand() -> int:
        count = 0
        for p in pods:
            lab = p["metadata"].get("labels") or {}
            if lab.get("app") in ("web", "api") and lab.get("tier") != "db":
                spec, status = p.get("spec") or {}, p.get("status") or {}
                if status.get("phase") == "Running" and spec.get("nodeName") == "node-1":
                    count += 1
        return count

    assert generic() == by_hand()
    value = median_ms(generic, repeat)
    baseline = median_ms(by_hand, repeat)
    report(f"label+field selectors over {len(pods)} pods", value, baseline, "hand-written test")
    parse = median_ms(lambda: labels.parse("app in (web,api),tier!=db,!canary"), repeat * 10)
    print(f"{'label selector parse':<44} {parse:9.3f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    pods = make_pods(args.objects)
    print(f"medians of {args.repeat} runs (cache lookups: {args.repeat * 10})")
    bench_openapi(args.repeat)
    bench_table(pods, args.repeat)
    bench_selectors(pods, args.repeat)


if __name__ == "__main__":
    main()
