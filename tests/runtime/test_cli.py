"""The `hypernetes image` and `hypernetes runtime` commands, run as a user
would (a separate process, as root, on a data dir of their own)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from imagebuild import busybox_image
from rthelpers import HostSnapshot, Registry


def hn(
    data_dir: Path, *args: str, input: str | None = None, timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    # The installed console script (with `python -m`, hypernetes.cli would be
    # imported twice, as __main__ too, and its CommandError would not match).
    exe = str(Path(sys.executable).parent / "hypernetes")
    cmd = [exe, args[0], args[1], "--data-dir", str(data_dir)]
    return subprocess.run(
        [*cmd, *args[2:]], capture_output=True, text=True, input=input, timeout=timeout
    )


def test_image_commands(images_dir: Path, data_dir: Path, registry: Registry) -> None:
    r = hn(data_dir, "image", "import", str(images_dir / "busybox.tar"), "--tag", "local/bb:1")
    assert r.returncode == 0, r.stderr
    image_id = r.stdout.strip()
    assert image_id.startswith("sha256:")
    busybox_image(cmd=["true"]).push(registry.host, "cli/bb", "2")
    r = hn(data_dir, "image", "pull", f"{registry.host}/cli/bb:2")
    assert r.returncode == 0, r.stderr
    assert "fetched" in r.stderr  # the progress summary
    r = hn(data_dir, "image", "ls")
    assert "docker.io/local/bb:1" in r.stdout and f"{registry.host}/cli/bb:2" in r.stdout
    r = hn(data_dir, "image", "pull", f"{registry.host}/cli/missing:1")
    assert r.returncode == 1 and "ErrImagePull" in r.stderr and "manifest unknown" in r.stderr
    r = hn(data_dir, "image", "import", "/nonexistent.tar", "--tag", "x:1")
    assert r.returncode == 1 and r.stderr.startswith("hypernetes: ErrImagePull")
    r = hn(data_dir, "image", "rm", "local/bb:1", f"{registry.host}/cli/bb:2")
    assert r.returncode == 0, r.stderr
    r = hn(data_dir, "image", "ls", "--json")
    assert r.stdout.strip() == "[]"
    r = hn(data_dir, "image", "rm", "local/bb:1")
    assert r.returncode == 1 and "NotFound" in r.stderr


def test_runtime_run_streams_output_and_exit_code(
    boot_assets: object, images_dir: Path, data_dir: Path
) -> None:
    before = HostSnapshot.take()
    assert hn(data_dir, "image", "import", str(images_dir / "busybox.tar")).returncode == 0
    r = hn(
        data_dir,
        "runtime",
        "run",
        "--rm",
        "-v",
        "--memory",
        "200Mi",
        "test/busybox:1",
        "--",
        "sh",
        "-c",
        "echo to-out; echo to-err >&2; uname -r; exit 7",
    )
    assert r.returncode == 7, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "to-out" and lines[1] != os.uname().release
    assert "to-err" in r.stderr and "264 MiB" in r.stderr  # 200 MiB + 64 MiB overhead
    r = hn(data_dir, "runtime", "run", "--rm", "test/busybox:1", "--", "no-such-cmd")
    assert r.returncode == 127 and "ContainerCannotRun" in r.stderr
    r = hn(data_dir, "runtime", "ps", "--json")
    assert '"pods": []' in r.stdout
    r = hn(data_dir, "runtime", "run", "--rm", "never/pulled:1")
    assert r.returncode == 1 and "ErrImagePull" in r.stderr
    before.assert_clean(allowed_tmp={data_dir.name})


def test_runc_run_streams_output_and_exit_code(data_dir: Path) -> None:
    """`--runtime runc` streams what the container writes, as the VM runtime does."""
    before = HostSnapshot.take()
    r = hn(data_dir, "image", "build-busybox", "--tag", "example.local/busybox:1")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("example.local/busybox:1 sha256:")
    script = "for i in 1 2 3; do echo out-$i; done; echo to-err >&2; exit 4"
    r = hn(data_dir, "runtime", "run", "--runtime", "runc", "--rm",
           "example.local/busybox:1", "--", "sh", "-c", script)  # fmt: skip
    assert r.returncode == 4, r.stderr
    assert r.stdout.splitlines() == ["out-1", "out-2", "out-3"]
    assert "to-err" in r.stderr
    r = hn(data_dir, "runtime", "ps", "--json")
    assert '"pods": []' in r.stdout
    before.assert_clean(allowed_tmp={data_dir.name})


def test_build_busybox_with_a_bad_tag_is_one_line_error(data_dir: Path) -> None:
    r = hn(data_dir, "image", "build-busybox", "--tag", "Not A Reference")
    assert r.returncode == 1 and r.stderr.count("\n") == 1, r.stderr
    r = hn(data_dir, "image", "ls", "--json")
    assert r.stdout.strip() == "[]"
