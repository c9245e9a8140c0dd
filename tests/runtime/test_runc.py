"""The hybrid runtime: runc pods behind the same API (host kernel, own
namespaces, CRI logs through a shim that outlives the driver)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from rthelpers import HostSnapshot

from hypernetes.runtime import (
    ContainerConfig,
    NetworkAttachment,
    PodSandboxConfig,
    Resources,
    Runtime,
    RuntimeFailure,
)
from hypernetes.runtime.crilog import parse_line
from hypernetes.runtime.types import ContainerState

IMAGE = "test/busybox:1"


@pytest_asyncio.fixture
async def runc_pod(images_dir: Path, data_dir: Path) -> AsyncIterator[tuple[Runtime, str]]:
    before = HostSnapshot.take()
    rt = Runtime(data_dir)
    await rt.open()
    await rt.import_image(str(images_dir / "busybox.tar"))
    sid = await rt.run_pod_sandbox(PodSandboxConfig(name="system", runtime="runc"))
    try:
        yield rt, sid
    finally:
        await rt.stop_pod_sandbox(sid, grace=0)
        await rt.remove_pod_sandbox(sid)
        await rt.close()
        before.assert_clean(allowed_tmp={data_dir.name})
        assert not os.listdir(data_dir / "runtime" / "pods")


def _log(path: str) -> list[tuple[str, bytes]]:
    with open(path, "rb") as f:
        return [(s, c) for _, s, _, c in map(parse_line, f)]


async def test_runc_container_runs_on_host_kernel(runc_pod: tuple[Runtime, str]) -> None:
    rt, sid = runc_pod
    cid = await rt.create_container(
        sid,
        ContainerConfig(
            name="k", image=IMAGE, command=["sh", "-c", "uname -r; hostname; echo e >&2; exit 2"]
        ),
    )
    await rt.start_container(cid)
    st = await rt.wait_container(cid, 30)
    assert (st.exit_code, st.reason) == (2, "Error")
    lines = _log(st.log_path)
    assert ("stdout", os.uname().release.encode()) in lines  # same kernel: no VM
    assert ("stdout", b"system") in lines and ("stderr", b"e") in lines
    await rt.remove_container(cid)


async def test_runc_exec_stop_and_failures(runc_pod: tuple[Runtime, str]) -> None:
    rt, sid = runc_pod
    cid = await rt.create_container(
        sid, ContainerConfig(name="s", image=IMAGE, command=["sleep", "1000"])
    )
    await rt.start_container(cid)
    assert (await rt.container_status(cid)).state == ContainerState.RUNNING
    r = await rt.exec_sync(cid, ["sh", "-c", "cat; ps -o comm"], stdin=b"via stdin\n")
    assert r.exit_code == 0 and r.stdout.startswith(b"via stdin\n")
    assert r.stdout.split()[2:] == [b"COMMAND", b"sleep", b"ps"]  # its own PID namespace
    t0 = asyncio.get_running_loop().time()
    await rt.stop_container(cid, 1)
    assert asyncio.get_running_loop().time() - t0 >= 0.9
    assert (await rt.container_status(cid)).exit_code == 137
    await rt.remove_container(cid)

    bad = await rt.create_container(
        sid, ContainerConfig(name="b", image=IMAGE, command=["no-such-binary"])
    )
    with pytest.raises(RuntimeFailure) as err:
        await rt.start_container(bad)
    assert err.value.reason == "ContainerCannotRun" and "no-such-binary" in err.value.message
    await rt.remove_container(bad)


async def test_runc_memory_limit_oom(runc_pod: tuple[Runtime, str]) -> None:
    rt, sid = runc_pod
    hog = "awk 'BEGIN { s = \"x\"; while (1) s = s s }'"
    cid = await rt.create_container(
        sid,
        ContainerConfig(
            name="hog",
            image=IMAGE,
            command=["sh", "-c", hog],
            resources=Resources(memory_limit=24 * 1024 * 1024),
        ),
    )
    await rt.start_container(cid)
    st = await rt.wait_container(cid, 60)
    assert st.reason == "OOMKilled" and st.exit_code == 137
    await rt.remove_container(cid)


async def test_runc_refuses_tap_network(images_dir: Path, data_dir: Path) -> None:
    rt = Runtime(data_dir)
    await rt.open()
    try:
        with pytest.raises(RuntimeFailure) as err:
            await rt.run_pod_sandbox(
                PodSandboxConfig(
                    name="x",
                    runtime="runc",
                    network=NetworkAttachment(tap="t", mac="52:54:00:00:00:01"),
                )
            )
        assert err.value.reason == "BadConfig"
        assert os.listdir(data_dir / "runtime" / "pods") == []
    finally:
        await rt.close()
