"""Liveness, readiness and startup probes (exec, httpGet, tcpSocket).

One `Prober` task per probe of a running container. It waits
initialDelaySeconds, then probes every periodSeconds with timeoutSeconds,
and flips its result after failureThreshold failures in a row (to False) or
successThreshold successes in a row (to True), telling the pod worker
through a callback. Readiness starts False, liveness True; liveness and
readiness wait until the startup probe (if any) has succeeded.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp

from hypernetes.runtime import Runtime, RuntimeFailure

log = logging.getLogger(__name__)

Probe = dict[str, Any]
OnResult = Callable[[str, bool, str], None]
"""on_result(kind, ok, message): called when a probe's result changes."""


@dataclass
class Target:
    """Where a container's probes go."""

    runtime: Runtime
    container_id: str
    pod_ip: str | None
    vm: bool
    """A VM pod without a reachable IP: HTTP and TCP probes run inside it."""


def settings(probe: Probe) -> tuple[float, float, float, int, int]:
    """(initialDelay, period, timeout, successThreshold, failureThreshold) with kube defaults."""
    return (
        float(probe.get("initialDelaySeconds") or 0),
        float(probe.get("periodSeconds") or 10),
        float(probe.get("timeoutSeconds") or 1),
        int(probe.get("successThreshold") or 1),
        int(probe.get("failureThreshold") or 3),
    )


def _port(value: Any, container: dict[str, Any]) -> int:
    """A port number, or a named container port."""
    if isinstance(value, int) or (isinstance(value, str) and value.isdigit()):
        return int(value)
    for p in container.get("ports") or []:
        if p.get("name") == value:
            return int(p["containerPort"])
    raise ValueError(f"unknown port {value!r}")


async def probe_once(
    probe: Probe, container: dict[str, Any], target: Target, timeout: float
) -> tuple[bool, str]:
    """Runs one probe; returns (success, message on failure)."""
    try:
        if "exec" in probe:
            return await _exec(probe["exec"].get("command") or [], target, timeout)
        if "httpGet" in probe:
            return await _http(probe["httpGet"], container, target, timeout)
        if "tcpSocket" in probe:
            return await _tcp(probe["tcpSocket"], container, target, timeout)
        if "grpc" in probe:
            return False, "grpc probes are not supported"
    except TimeoutError:
        return False, f"probe timed out after {timeout:g}s"
    except (RuntimeFailure, OSError, ValueError, aiohttp.ClientError) as exc:
        return False, str(exc) or type(exc).__name__
    return False, "probe has no handler"


async def _exec(command: list[str], target: Target, timeout: float) -> tuple[bool, str]:
    result = await target.runtime.exec_sync(target.container_id, command, timeout=timeout)
    if result.exit_code == 0:
        return True, ""
    out = (result.stdout + result.stderr).decode(errors="replace").strip()
    return False, f"command exited with {result.exit_code}: {out[:200]}"


async def _http(
    spec: dict[str, Any], container: dict[str, Any], target: Target, timeout: float
) -> tuple[bool, str]:
    port = _port(spec.get("port"), container)
    scheme = (spec.get("scheme") or "HTTP").lower()
    path = spec.get("path") or "/"
    host = spec.get("host") or target.pod_ip
    if host is None and target.vm:
        # No route to the VM: ask busybox's wget inside the pod instead.
        url = f"{scheme}://127.0.0.1:{port}{path}"
        argv = ["wget", "-q", "-O", "/dev/null", "-T", str(max(1, int(timeout))), url]
        return await _exec(argv, target, timeout + 1)
    host = host or "127.0.0.1"
    url = f"{scheme}://{host}:{port}{path}"
    headers = {h["name"]: h["value"] for h in spec.get("httpHeaders") or []}
    headers.setdefault("User-Agent", "hypernetes-probe/1")
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # as kubelet: probes do not verify certificates
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session,
        session.get(url, headers=headers, ssl=ctx, allow_redirects=True) as response,
    ):
        if 200 <= response.status < 400:
            return True, ""
        return False, f"HTTP probe failed with statuscode: {response.status}"


async def _tcp(
    spec: dict[str, Any], container: dict[str, Any], target: Target, timeout: float
) -> tuple[bool, str]:
    port = _port(spec.get("port"), container)
    host = spec.get("host") or target.pod_ip
    if host is None and target.vm:
        argv = ["nc", "-z", "-w", str(max(1, int(timeout))), "127.0.0.1", str(port)]
        return await _exec(argv, target, timeout + 1)
    host = host or "127.0.0.1"
    _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True, ""


class Prober:
    """Runs one probe of one container until cancelled."""

    def __init__(
        self,
        kind: str,
        probe: Probe,
        container: dict[str, Any],
        target: Target,
        on_result: OnResult,
        gate: asyncio.Event | None = None,
        once: Callable[[Probe, dict[str, Any], Target, float], Awaitable[tuple[bool, str]]]
        | None = None,
    ) -> None:
        self.kind = kind
        self.probe = probe
        self.container = container
        self.target = target
        self.on_result = on_result
        self.gate = gate  # set when the startup probe has passed
        self.result = kind == "liveness"  # readiness and startup start failed
        self._once = once or probe_once

    async def run(self) -> None:
        delay, period, timeout, succ_needed, fail_needed = settings(self.probe)
        if self.kind == "liveness" or self.kind == "startup":
            succ_needed = 1  # kube requires 1 for these
        if self.gate is not None:
            await self.gate.wait()
        await asyncio.sleep(delay)
        successes = failures = 0
        while True:
            ok, message = await self._once(self.probe, self.container, self.target, timeout)
            if ok:
                successes, failures = successes + 1, 0
                if not self.result and successes >= succ_needed:
                    self.result = True
                    self.on_result(self.kind, True, "")
            else:
                successes, failures = 0, failures + 1
                log.debug("%s probe failed: %s", self.kind, message)
                if failures >= fail_needed and (self.result or self.kind != "readiness"):
                    self.result = False
                    self.on_result(self.kind, False, message)
                    if self.kind != "readiness":
                        return  # the container is killed: this prober is done
            if self.kind == "startup" and self.result and ok:
                return  # startup probes stop once they succeed
            await asyncio.sleep(period)
