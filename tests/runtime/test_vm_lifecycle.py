"""Pod VM lifecycle across failures: driver restarts (re-attach), a killed
VM next to a healthy one, TAP network handover, boot timeout and a guest that
crashes at boot, and the fallback Debian kernel. Each test leaves the host
as it found it."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from rthelpers import PREFIX, HostSnapshot

from hypernetes.runtime import (
    ContainerConfig,
    NetworkAttachment,
    PodSandboxConfig,
    Runtime,
    SandboxError,
    assets,
    qemu,
    template,
)
from hypernetes.runtime.types import ContainerState, SandboxState

IMAGE = "test/busybox:1"


@pytest.fixture
def clean_host(data_dir: Path) -> Iterator[None]:
    before = HostSnapshot.take()
    yield
    before.assert_clean(allowed_tmp={data_dir.name})
    pods = data_dir / "runtime" / "pods"
    assert not pods.exists() or not os.listdir(pods), "pod state left behind"


async def _runtime(data_dir: Path, images_dir: Path, **kw: object) -> Runtime:
    rt = Runtime(data_dir, **kw)  # type: ignore[arg-type]
    await rt.open()
    await rt.import_image(str(images_dir / "busybox.tar"))
    return rt


DRIVER = textwrap.dedent("""
    import asyncio, sys
    from hypernetes.runtime import Runtime, PodSandboxConfig, ContainerConfig
    async def main():
        rt = Runtime(sys.argv[1])
        await rt.open()
        sid = await rt.run_pod_sandbox(PodSandboxConfig(name="survivor"))
        cid = await rt.create_container(sid, ContainerConfig(name="ticker", image="test/busybox:1",
            command=["sh", "-c", "i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.1; done"]))
        await rt.start_container(cid)
        print(sid, cid, flush=True)
        await asyncio.sleep(3600)
    asyncio.run(main())
""")


async def test_sandbox_survives_driver_restart(
    boot_assets: object, images_dir: Path, data_dir: Path, clean_host: None
) -> None:
    rt = await _runtime(data_dir, images_dir)
    await rt.close()  # the image is there; the next driver is a separate process
    driver = subprocess.Popen(
        [sys.executable, "-c", DRIVER, str(data_dir)], stdout=subprocess.PIPE, text=True
    )
    assert driver.stdout is not None
    sid, cid = driver.stdout.readline().split()
    await asyncio.sleep(1)
    driver.send_signal(signal.SIGKILL)  # the driver dies without any clean-up
    driver.wait()
    driver.stdout.close()
    await asyncio.sleep(1)  # the container blocks on output while no one reads

    rt = Runtime(data_dir)
    await rt.open()
    try:
        st = await rt.pod_sandbox_status(sid)
        assert st.state == SandboxState.READY
        vm_pid = st.pid
        c = await rt.container_status(cid)
        assert c.state == ContainerState.RUNNING
        n_before = len(Path(c.log_path).read_text().splitlines())
        r = await rt.exec_sync(cid, ["echo", "still here"])
        assert r.stdout == b"still here\n"
        await asyncio.sleep(1.5)
        lines = Path(c.log_path).read_text().splitlines()
        assert len(lines) > n_before  # logging resumed in the same log file
        ticks = [int(line.split()[-1]) for line in lines]
        assert ticks == list(range(len(ticks)))  # nothing lost across the restart
        assert (await rt.pod_sandbox_status(sid)).pid == vm_pid  # same VM, not rebooted
        await rt.stop_container(cid, 0)
        assert (await rt.container_status(cid)).exit_code == 137
        await rt.stop_pod_sandbox(sid)
        await rt.remove_pod_sandbox(sid)
    finally:
        await rt.close()


async def test_only_one_driver_at_a_time(data_dir: Path) -> None:
    a = Runtime(data_dir)
    await a.open()
    try:
        with pytest.raises(Exception, match="another driver"):
            await Runtime(data_dir).open()
    finally:
        await a.close()


def _make_tap(name: str) -> None:
    subprocess.run(["ip", "tuntap", "add", "dev", name, "mode", "tap"], check=True)
    subprocess.run(["ip", "link", "set", name, "up"], check=True)


async def test_killed_vm_leaves_other_pod_alone_and_tap_handover(
    boot_assets: object, images_dir: Path, data_dir: Path, clean_host: None
) -> None:
    tap = f"{PREFIX}{os.getpid() % 100000}"
    _make_tap(tap)
    rt = await _runtime(data_dir, images_dir)
    try:
        net = NetworkAttachment(
            tap=tap,
            mac="52:54:00:ab:cd:ef",
            address="10.250.7.2/24",
            gateway="10.250.7.1",
            mtu=1400,
        )
        victim = await rt.run_pod_sandbox(PodSandboxConfig(name="victim"))
        other = await rt.run_pod_sandbox(PodSandboxConfig(name="other", network=net))
        vc = await rt.create_container(
            victim, ContainerConfig(name="v", image=IMAGE, command=["sleep", "1000"])
        )
        oc = await rt.create_container(
            other, ContainerConfig(name="o", image=IMAGE, command=["sleep", "1000"])
        )
        await rt.start_container(vc)
        await rt.start_container(oc)
        # The network handed over is configured in the guest...
        r = await rt.exec_sync(
            oc,
            [
                "sh",
                "-c",
                "ip -4 addr show eth0; ip route; cd /sys/class/net/eth0; cat address mtu",
            ],
        )
        out = r.stdout.decode()
        assert "10.250.7.2/24" in out and "default via 10.250.7.1" in out
        assert "52:54:00:ab:cd:ef" in out and "1400" in out
        # ...and QEMU holds the TAP (carrier is up only while someone has it open).
        assert Path(f"/sys/class/net/{tap}/carrier").read_text().strip() == "1"

        os.kill((await rt.pod_sandbox_status(victim)).pid or 0, signal.SIGKILL)
        for _ in range(100):
            if (await rt.pod_sandbox_status(victim)).state == SandboxState.NOTREADY:
                break
            await asyncio.sleep(0.1)
        vs = await rt.pod_sandbox_status(victim)
        assert vs.state == SandboxState.NOTREADY and vs.reason == "VMExited"
        c = await rt.container_status(vc)
        assert c.state == ContainerState.EXITED and c.reason == "VMExited"
        # The other pod does not notice.
        assert (await rt.pod_sandbox_status(other)).state == SandboxState.READY
        r = await rt.exec_sync(oc, ["echo", "fine"])
        assert r.stdout == b"fine\n"

        for sid in (victim, other):
            await rt.stop_pod_sandbox(sid, grace=0)
            await rt.remove_pod_sandbox(sid)
        # The TAP belongs to the network layer: still there, now unused.
        assert Path(f"/sys/class/net/{tap}").exists()
        assert Path(f"/sys/class/net/{tap}/carrier").read_text().strip() == "0"
    finally:
        await rt.close()
        subprocess.run(["ip", "link", "del", tap], check=False)


async def test_boot_timeout_leaves_nothing(
    boot_assets: object, images_dir: Path, data_dir: Path, clean_host: None
) -> None:
    # A cold boot: a VM restored from a template may well answer in 0.2 s.
    rt = await _runtime(data_dir, images_dir, boot_timeout=0.2, templates=False)
    try:
        with pytest.raises(SandboxError) as err:
            await rt.run_pod_sandbox(PodSandboxConfig(name="slow"))
        assert err.value.reason == "BootTimeout"
        assert await rt.list_pod_sandboxes() == []
    finally:
        await rt.close()


async def test_guest_crash_at_boot_is_reported(
    boot_assets: assets.BootAssets,
    images_dir: Path,
    data_dir: Path,
    clean_host: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A kernel command line naming a missing init: the guest kernel panics.
    broken = dataclasses.replace(boot_assets, cmdline=boot_assets.cmdline + " rdinit=/missing")
    monkeypatch.setattr(assets, "boot_assets", lambda flavour="hypernetes": broken)
    rt = await _runtime(data_dir, images_dir)
    try:
        with pytest.raises(SandboxError) as err:
            await rt.run_pod_sandbox(PodSandboxConfig(name="crash"))
        assert err.value.reason == "VMExited"
        assert await rt.list_pod_sandboxes() == []
    finally:
        await rt.close()


async def test_debian_fallback_kernel_runs_pods(
    images_dir: Path, data_dir: Path, clean_host: None
) -> None:
    rt = await _runtime(data_dir, images_dir, kernel="debian")
    try:
        sid = await rt.run_pod_sandbox(PodSandboxConfig(name="fallback"))
        cid = await rt.create_container(
            sid, ContainerConfig(name="u", image=IMAGE, command=["uname", "-r"])
        )
        await rt.start_container(cid)
        st = await rt.wait_container(cid, 60)
        assert st.exit_code == 0
        release = Path(st.log_path).read_text().split()[-1]
        assert release.endswith("-cloud-amd64") and release != os.uname().release
        await rt.stop_pod_sandbox(sid)
        await rt.remove_pod_sandbox(sid)
    finally:
        await rt.close()


async def test_template_clones_get_own_entropy_clock_and_mac(
    boot_assets: object, images_dir: Path, data_dir: Path, clean_host: None
) -> None:
    tap = f"{PREFIX}t{os.getpid() % 100000}"
    _make_tap(tap)
    rt = await _runtime(data_dir, images_dir)
    try:
        net = NetworkAttachment(tap=tap, mac="52:54:00:12:34:99", address="10.250.8.2/24")
        pods = [
            await rt.run_pod_sandbox(PodSandboxConfig(name=f"clone{i}", network=net if i else None))
            for i in range(2)
        ]
        outs = []
        for sid in pods:
            assert (await rt.pod_sandbox_status(sid)).boot == "template"
            script = (
                "head -c 16 /dev/urandom | od -An -tx1; date +%s; cat /sys/class/net/eth0/address"
            )
            cid = await rt.create_container(
                sid, ContainerConfig(name="r", image=IMAGE, command=["sh", "-c", script])
            )
            await rt.start_container(cid)
            st = await rt.wait_container(cid, 60)
            assert st.exit_code == 0
            outs.append(
                [line.split(" ", 3)[3] for line in Path(st.log_path).read_text().splitlines()]
            )
        # Same template, yet different random numbers: the agent reseeded the CRNG.
        assert outs[0][0] != outs[1][0]
        # The clock is the host's, not the moment the template was saved.
        for out in outs:
            assert abs(int(out[1]) - time.time()) < 30
        # The pod with a network has its own MAC, not the template's.
        assert outs[0][2] == qemu.TEMPLATE_MAC and outs[1][2] == "52:54:00:12:34:99"
        for sid in pods:
            await rt.stop_pod_sandbox(sid, grace=0)
            await rt.remove_pod_sandbox(sid)
    finally:
        await rt.close()
        subprocess.run(["ip", "link", "del", tap], check=False)


async def test_unusable_template_falls_back_to_cold_boot(
    boot_assets: object,
    images_dir: Path,
    data_dir: Path,
    clean_host: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A template store of this test's own (others use the host's).
    monkeypatch.setattr(template, "ROOT", data_dir / "templates")
    rt = await _runtime(data_dir, images_dir)
    try:
        first = await rt.run_pod_sandbox(PodSandboxConfig(name="first"))
        assert (await rt.pod_sandbox_status(first)).boot == "template"
        (tmpl,) = [d for d in template.ROOT.iterdir() if (d / "ready").exists()]
        (tmpl / "state").write_bytes(b"not a migration stream")
        second = await rt.run_pod_sandbox(PodSandboxConfig(name="second"))
        st = await rt.pod_sandbox_status(second)
        assert st.state == SandboxState.READY and st.boot == "cold"
        assert not tmpl.exists()  # dropped: the next pod builds a fresh one
        for sid in (first, second):
            await rt.stop_pod_sandbox(sid, grace=0)
            await rt.remove_pod_sandbox(sid)
    finally:
        await rt.close()


async def test_many_pods_in_one_driver(
    boot_assets: object, images_dir: Path, data_dir: Path, clean_host: None
) -> None:
    # More pods than the default thread pool has threads (min(32, cpus + 4)):
    # nothing may park a thread per running VM.
    n = (os.cpu_count() or 1) + 6
    rt = await _runtime(data_dir, images_dir)
    try:
        sids = await asyncio.wait_for(
            asyncio.gather(
                *(rt.run_pod_sandbox(PodSandboxConfig(name=f"many{i}")) for i in range(n))
            ),
            120,
        )
        states = [(await rt.pod_sandbox_status(s)).state for s in sids]
        assert states == [SandboxState.READY] * n
        for sid in sids:
            await rt.stop_pod_sandbox(sid, grace=0)
            await rt.remove_pod_sandbox(sid)
    finally:
        await rt.close()
