"""The agent's pure rules: back-off, pod phase and conditions, probe thresholds."""

from __future__ import annotations

import asyncio
import itertools
from typing import cast

from hypernetes.node.backoff import BackOff
from hypernetes.node.pods import default_pull_policy, should_restart
from hypernetes.node.probes import Prober, Target, settings
from hypernetes.node.status import ContainerView, build_status, qos_class, same_status
from hypernetes.runtime import ContainerState, ContainerStatus, Runtime


def test_backoff_doubles_from_the_failure_and_caps() -> None:
    b = BackOff(initial=10, maximum=40)
    assert b.in_backoff("k", since=100, now=101) == 0  # first failure: retry at once
    b.next("k", 100)
    assert b.in_backoff("k", since=100, now=105) == 5
    b.next("k", 110)
    b.next("k", 150)
    b.next("k", 200)
    assert b.in_backoff("k", since=200, now=200) == 40  # 10, 20, 40, capped
    b.forget("k")
    assert b.remaining("k") == 0


def test_pull_policy_and_restart_rules() -> None:
    assert default_pull_policy("busybox") == "Always"
    assert default_pull_policy("reg:5000/app:latest") == "Always"
    assert default_pull_policy("reg:5000/app:1.2") == "IfNotPresent"
    assert default_pull_policy("app@sha256:abc") == "IfNotPresent"
    assert should_restart("Always", 0) and should_restart("OnFailure", 1)
    assert not should_restart("OnFailure", 0) and not should_restart("Never", 1)


def _record(name: str, state: ContainerState, code: int = 0, attempt: int = 0) -> ContainerStatus:
    return ContainerStatus(id=f"{name}{attempt}", pod_id="p", name=name, image="i",
                           image_id="sha256:x", state=state, created_at=1.0, started_at=2.0,
                           finished_at=3.0 if state == ContainerState.EXITED else 0.0,
                           exit_code=code, attempt=attempt)  # fmt: skip


def _pod(policy: str, *names: str) -> dict[str, object]:
    return {"metadata": {"name": "p"}, "spec": {"restartPolicy": policy,
            "containers": [{"name": n, "image": "i"} for n in names]}}  # fmt: skip


def _status(pod: dict[str, object], views: dict[str, ContainerView],
            waiting: dict[str, tuple[str, str]] | None = None) -> dict[str, object]:  # fmt: skip
    return build_status(pod, views, waiting or {}, sandbox_ready=True, init_done=True,
                        pod_ip="10.0.0.5", host_ip="192.0.2.1")  # fmt: skip


def test_phases() -> None:
    pod = _pod("Never", "a", "b")
    done = ContainerView("runc", _record("a", ContainerState.EXITED, 0))
    failed = ContainerView("runc", _record("b", ContainerState.EXITED, 2))
    running = ContainerView("runc", _record("b", ContainerState.RUNNING), ready=True, started=True)
    assert _status(pod, {"a": done, "b": failed})["phase"] == "Failed"
    assert (
        _status(pod, {"a": done, "b": ContainerView("runc", _record("b", ContainerState.EXITED))})[
            "phase"
        ]
        == "Succeeded"
    )
    st = _status(pod, {"a": done, "b": running})
    assert st["phase"] == "Running"
    assert _status(pod, {})["phase"] == "Pending"
    # waiting to restart after an exit: Running, with lastState
    always = _pod("Always", "a")
    view = ContainerView("vm", _record("a", ContainerState.EXITED, 1))
    st = _status(always, {"a": view}, {"a": ("CrashLoopBackOff", "back-off")})
    cs = st["containerStatuses"][0]  # type: ignore[index]
    assert st["phase"] == "Running" and cs["lastState"]["terminated"]["exitCode"] == 1
    assert cs["containerID"] == "vm://a0"
    conditions = {c["type"]: c for c in st["conditions"]}  # type: ignore[attr-defined]
    assert conditions["Ready"]["status"] == "False"
    assert conditions["Ready"]["reason"] == "ContainersNotReady"


def test_status_comparison_ignores_transition_times() -> None:
    pod = _pod("Always", "a")
    view = ContainerView("runc", _record("a", ContainerState.RUNNING), ready=True, started=True)
    first = _status(pod, {"a": view})
    second = _status({**pod, "status": first}, {"a": view})
    assert same_status(first, second)
    view.ready = False
    assert not same_status(first, _status({**pod, "status": first}, {"a": view}))


def test_qos() -> None:
    def spec(res: dict[str, object]) -> dict[str, object]:
        return {"containers": [{"name": "a", "resources": res}]}

    assert qos_class(spec({})) == "BestEffort"
    both = {"cpu": "1", "memory": "1Gi"}
    assert qos_class(spec({"limits": both, "requests": both})) == "Guaranteed"
    assert qos_class(spec({"requests": {"cpu": "1"}})) == "Burstable"


async def test_prober_thresholds() -> None:
    """failureThreshold failures in a row flip readiness, successThreshold successes flip
    it back."""
    script = itertools.chain([True, True, False, False, True], itertools.repeat(False))
    results: list[tuple[str, bool]] = []

    async def once(*_: object) -> tuple[bool, str]:
        # A scripted probe outcome: the transports themselves are tested end to end.
        return next(script), "scripted"

    probe = {"exec": {"command": ["x"]}, "periodSeconds": 0.01, "failureThreshold": 2,
             "successThreshold": 2}  # fmt: skip
    assert settings(probe)[1:] == (0.01, 1.0, 2, 2)
    unused = cast(Runtime, None)  # the scripted probe never reaches the runtime
    target = Target(runtime=unused, container_id="c", pod_ip=None, vm=False)
    prober = Prober("readiness", probe, {}, target, lambda k, ok, m: results.append((k, ok)),
                    once=once)  # fmt: skip
    task = asyncio.create_task(prober.run())
    await asyncio.sleep(0.3)
    task.cancel()
    assert results == [("readiness", True), ("readiness", False)]


def test_env_expansion() -> None:
    from hypernetes.node.env import expand

    assert expand("$(A)-$$-$(Z)", {"A": "1"}) == "1-$-$(Z)"  # unknown stays as written
