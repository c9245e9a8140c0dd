"""Containers in one shared pod VM: lifecycle, logs, exec, signals, limits,
failure reasons, and the isolation a VM gives (guest kernel, no host view)."""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from rthelpers import HostSnapshot

from hypernetes.runtime import ContainerConfig, PodSandboxConfig, Resources, Runtime
from hypernetes.runtime.crilog import parse_line
from hypernetes.runtime.errors import ImagePullError, RuntimeFailure
from hypernetes.runtime.types import ContainerState, SandboxState

pytestmark = pytest.mark.asyncio(loop_scope="module")
IMAGE = "test/busybox:1"


class Pod:
    def __init__(self, rt: Runtime, sid: str) -> None:
        self.rt = rt
        self.sid = sid

    async def run(self, *cmd: str, **kw: object) -> str:
        """Creates and starts a container running `cmd`; returns its id."""
        name = str(kw.pop("name", f"c{os.urandom(3).hex()}"))
        cid = await self.rt.create_container(
            self.sid,
            ContainerConfig(name=name, image=IMAGE, command=list(cmd), **kw),  # type: ignore[arg-type]
        )
        await self.rt.start_container(cid)
        return cid

    async def finish(
        self, cid: str, timeout: float = 60
    ) -> tuple[int, str, list[tuple[str, bytes]]]:
        """Waits for exit; returns (exit code, reason, [(stream, line)]) and removes it."""
        st = await self.rt.wait_container(cid, timeout)
        lines = []
        with open(st.log_path, "rb") as f:
            for line in f:
                _, stream, _, content = parse_line(line)
                lines.append((stream, content))
        await self.rt.remove_container(cid)
        return st.exit_code, st.reason, lines


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def pod(boot_assets: object, images_dir: Path) -> AsyncIterator[Pod]:
    before = HostSnapshot.take()
    d = tempfile.mkdtemp(prefix="hnrt-")
    rt = Runtime(d)
    await rt.open()
    await rt.import_image(str(images_dir / "busybox.tar"))
    sid = await rt.run_pod_sandbox(PodSandboxConfig(name="shared", namespace="test"))
    try:
        yield Pod(rt, sid)
    finally:
        await rt.stop_pod_sandbox(sid, grace=1)
        await rt.remove_pod_sandbox(sid)
        await rt.close()
        assert not os.listdir(Path(d) / "runtime" / "pods"), "pod state left behind"
        assert not os.listdir(Path(d) / "images" / "tmp"), "image temp files left behind"
        shutil.rmtree(d)
        before.assert_clean()


async def test_sandbox_status_reports_vm(pod: Pod) -> None:
    st = await pod.rt.pod_sandbox_status(pod.sid)
    assert st.state == SandboxState.READY
    assert st.runtime == "vm"
    assert st.accel in ("kvm", "tcg")
    assert st.vcpus == 1 and st.memory_mib == 256  # defaults with no resources given
    assert st.boot == "template"  # restored from a VM template, not booted
    assert st.pid and Path(f"/proc/{st.pid}").exists()


async def test_guest_kernel_not_host_kernel(pod: Pod) -> None:
    cid = await pod.run("uname", "-r")
    code, reason, lines = await pod.finish(cid)
    assert (code, reason) == (0, "Completed")
    guest = lines[0][1].decode()
    assert guest != os.uname().release
    assert guest == pod.rt._sandboxes[pod.sid].agent.hello["kernel"]  # type: ignore[attr-defined]


async def test_host_processes_and_files_invisible(pod: Pod) -> None:
    marker = Path(tempfile.gettempdir()) / f"hnrt-marker-{os.getpid()}"
    marker.write_text("host secret")
    try:
        cid = await pod.run("sh", "-c", f"ps -o pid,comm; ls /tmp; cat {marker} || echo absent")
        code, _, lines = await pod.finish(cid)
    finally:
        marker.unlink()
    assert code == 0
    out = b"\n".join(c for s, c in lines if s == "stdout").decode()
    assert "absent" in out and "host secret" not in out
    pids = [int(x.split()[0]) for x in out.splitlines() if x.strip()[:1].isdigit()]
    assert 1 in pids and max(pids) < 10  # its own PID namespace: only itself and ps
    assert "pytest" not in out and "qemu" not in out


async def test_logs_in_cri_format_with_both_streams(pod: Pod) -> None:
    cid = await pod.run("sh", "-c", "echo out1; echo err1 >&2; printf 'no newline'")
    code, reason, lines = await pod.finish(cid)
    assert code == 0 and reason == "Completed"
    assert ("stdout", b"out1") in lines and ("stderr", b"err1") in lines
    assert ("stdout", b"no newline") in lines


async def test_exit_code_and_reason(pod: Pod) -> None:
    cid = await pod.run("sh", "-c", "exit 3")
    code, reason, _ = await pod.finish(cid)
    assert (code, reason) == (3, "Error")


async def test_missing_command_cannot_run(pod: Pod) -> None:
    cid = await pod.rt.create_container(
        pod.sid, ContainerConfig(name="missing", image=IMAGE, command=["no-such-binary"])
    )
    with pytest.raises(RuntimeFailure) as err:
        await pod.rt.start_container(cid)
    assert err.value.reason == "ContainerCannotRun"
    assert "no-such-binary" in err.value.message and "not found" in err.value.message
    st = await pod.rt.container_status(cid)
    assert st.state == ContainerState.EXITED and st.reason == "ContainerCannotRun"
    await pod.rt.remove_container(cid)


async def test_image_not_present(pod: Pod) -> None:
    with pytest.raises(ImagePullError) as err:
        await pod.rt.create_container(pod.sid, ContainerConfig(name="x", image="nope:1"))
    assert err.value.reason == "ErrImageNeverPull"


async def test_env_workdir_and_user(pod: Pod) -> None:
    cid = await pod.run(
        "sh",
        "-c",
        'echo "$GREETING"; pwd; id -u',
        env={"GREETING": "hi"},
        working_dir="/work/dir",
        uid=65534,
    )
    code, _, lines = await pod.finish(cid)
    assert code == 0
    assert [c for s, c in lines if s == "stdout"] == [b"hi", b"/work/dir", b"65534"]


async def test_exec_sync_with_stdin(pod: Pod) -> None:
    cid = await pod.run("sleep", "1000")
    try:
        r = await pod.rt.exec_sync(cid, ["cat"], stdin=b"piped input\n")
        assert r.exit_code == 0 and r.stdout == b"piped input\n"
        r = await pod.rt.exec_sync(cid, ["sh", "-c", "echo e >&2; exit 4"])
        assert r.exit_code == 4 and r.stderr == b"e\n"
        # exec joins the container's namespaces: it sees the container's init
        r = await pod.rt.exec_sync(cid, ["cat", "/proc/1/cmdline"])
        assert r.stdout.split(b"\0")[0] == b"sleep"
        with pytest.raises(RuntimeFailure) as err:
            await pod.rt.exec_sync(cid, ["no-such-tool"])
        assert "not found" in err.value.message
        with pytest.raises(asyncio.TimeoutError):
            await pod.rt.exec_sync(cid, ["sleep", "100"], timeout=1)
    finally:
        await pod.rt.stop_container(cid, 0)
        await pod.rt.remove_container(cid)


async def test_exec_tty_and_resize(pod: Pod) -> None:
    cid = await pod.run("sleep", "1000")
    try:
        s = await pod.rt.exec(cid, ["sh"], tty=True, stdin=True, rows=40, cols=100)
        await s.write(b"stty size\n")
        out = b""
        while b"40 100" not in out:
            out += await asyncio.wait_for(s.stdout.get(), 30)
        await s.resize(50, 120)
        await s.write(b"stty size; exit 5\n")
        while b"50 120" not in out:
            out += await asyncio.wait_for(s.stdout.get(), 30)
        assert await asyncio.wait_for(s.wait(), 30) == 5
    finally:
        await pod.rt.stop_container(cid, 0)
        await pod.rt.remove_container(cid)


async def test_graceful_stop_runs_handler(pod: Pod) -> None:
    script = "trap 'echo bye; exit 0' TERM; echo ready; while true; do sleep 0.1; done"
    cid = await pod.run("sh", "-c", script)
    st = await pod.rt.container_status(cid)
    for _ in range(300):
        if "ready" in Path(st.log_path).read_text():
            break
        await asyncio.sleep(0.1)
    await pod.rt.stop_container(cid, 30)
    code, reason, lines = await pod.finish(cid)
    assert (code, reason) == (0, "Completed")
    assert ("stdout", b"bye") in lines


async def test_stop_kills_after_grace(pod: Pod) -> None:
    cid = await pod.run("sleep", "1000")  # PID 1 of its namespace: SIGTERM is ignored
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    await pod.rt.stop_container(cid, 1)
    assert loop.time() - t0 >= 0.9
    code, reason, _ = await pod.finish(cid)
    assert code == 137 and reason == "Error"


async def test_signal_forwarding(pod: Pod) -> None:
    cid = await pod.run(
        "sh", "-c", "trap 'echo got-usr1; exit 7' USR1; while true; do sleep 0.1; done"
    )
    await asyncio.sleep(1)
    await pod.rt.signal_container(cid, 10)  # SIGUSR1
    code, _, lines = await pod.finish(cid)
    assert code == 7 and ("stdout", b"got-usr1") in lines


async def test_memory_limit_oom_killed(pod: Pod) -> None:
    hog = "awk 'BEGIN { s = \"x\"; while (1) s = s s }'"
    cid = await pod.run("sh", "-c", hog, resources=Resources(memory_limit=24 * 1024 * 1024))
    code, reason, _ = await pod.finish(cid, timeout=120)
    assert reason == "OOMKilled"
    assert code == 137


async def test_containers_have_own_rootfs_and_pid_namespace(pod: Pod) -> None:
    a = await pod.run("sh", "-c", "echo a > /tmp/a; sleep 1000")
    b = await pod.run("sleep", "1000")
    try:
        await asyncio.sleep(0.5)
        ra = await pod.rt.exec_sync(a, ["cat", "/tmp/a"])
        rb = await pod.rt.exec_sync(b, ["ls", "/tmp/a"])
        ps = await pod.rt.exec_sync(b, ["ps", "-o", "comm"])
        assert ra.stdout == b"a\n"
        assert rb.exit_code != 0 and b"No such file" in rb.stderr
        assert ps.stdout.split() == [b"COMMAND", b"sleep", b"ps"]
        # ...but share the pod's UTS (hostname) as Kubernetes pods do
        ha = await pod.rt.exec_sync(a, ["hostname"])
        hb = await pod.rt.exec_sync(b, ["hostname"])
        assert ha.stdout == hb.stdout == b"shared\n"
    finally:
        for cid in (a, b):
            await pod.rt.stop_container(cid, 0)
            await pod.rt.remove_container(cid)


async def test_remove_running_container_refused(pod: Pod) -> None:
    cid = await pod.run("sleep", "1000")
    with pytest.raises(RuntimeFailure) as err:
        await pod.rt.remove_container(cid)
    assert err.value.reason == "BadState"
    await pod.rt.stop_container(cid, 0)
    await pod.rt.remove_container(cid)
    assert cid not in [c.id for c in await pod.rt.list_containers(pod.sid)]


async def test_image_disks_beyond_the_boot_slots_and_slot_reuse(pod: Pod) -> None:
    """The first containers get their image in a disk slot the VM has had since boot;
    more are hot-plugged; a freed slot goes back to its placeholder and is used again."""
    cids = [await pod.run("sh", "-c", f"echo c{i} > /tmp/me; sleep 1000") for i in range(3)]
    try:
        await asyncio.sleep(0.5)
        for i, cid in enumerate(cids):  # every container sees its own image and files
            got = await pod.rt.exec_sync(cid, ["cat", "/tmp/me"])
            assert got.stdout == f"c{i}\n".encode()
            assert (await pod.rt.exec_sync(cid, ["ls", "/bin/busybox"])).exit_code == 0
        await pod.rt.stop_container(cids[0], 0)
        await pod.rt.remove_container(cids[0])  # frees a boot slot
        again = await pod.run("sh", "-c", "echo again > /tmp/me; sleep 1000")
        cids[0] = again
        for _ in range(50):  # the shell writes the file just after the start returns
            got = await pod.rt.exec_sync(again, ["cat", "/tmp/me"])
            if got.exit_code == 0:
                break
            await asyncio.sleep(0.1)
        assert got.stdout == b"again\n"
    finally:
        for cid in cids:
            await pod.rt.stop_container(cid, 0)
            await pod.rt.remove_container(cid)
