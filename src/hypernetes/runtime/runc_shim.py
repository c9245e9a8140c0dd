"""Per-container shim of the runc runtime: `python -m hypernetes.runtime.runc_shim
BUNDLE ID LOG`, started in its own session by the driver's start_container.

It creates and starts the container with runc, becomes its parent (child
subreaper), writes its stdout/stderr to the CRI log, and when it exits
records the exit in BUNDLE/exit.json and deletes it from runc. Living apart
from the driver, it keeps logging while the driver restarts, like
containerd's shims or conmon. BUNDLE/started (the pid) or BUNDLE/exit.json
tells the driver how the start went.
"""

from __future__ import annotations

import ctypes
import json
import os
import selectors
import subprocess
import sys
from pathlib import Path

from .crilog import CRILogWriter

PR_SET_CHILD_SUBREAPER = 36
CGROUP_PARENT = "hypernetes"


def _write_json(path: Path, data: dict[str, object]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data))
    tmp.rename(path)


def _runc_error(log: Path) -> str:
    """The last error runc logged (its JSON log), else a generic message."""
    message = "runc failed"
    try:
        for line in log.read_text().splitlines():
            entry = json.loads(line)
            if entry.get("level") in ("error", "fatal"):
                message = str(entry.get("msg", message))
    except (OSError, ValueError):
        pass
    return message


def oom_killed(cid: str) -> bool:
    for path in (
        f"/sys/fs/cgroup/memory/{CGROUP_PARENT}/{cid}/memory.oom_control",
        f"/sys/fs/cgroup/{CGROUP_PARENT}/{cid}/memory.events",
    ):
        try:
            for line in Path(path).read_text().splitlines():
                key, _, value = line.partition(" ")
                if key == "oom_kill" and int(value) > 0:
                    return True
        except (OSError, ValueError):
            continue
    return False


def main(bundle_arg: str, cid: str, log_path: str) -> int:
    bundle = Path(bundle_arg)
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    stdin_path = bundle / "stdin"
    stdin = (
        os.open(stdin_path, os.O_RDWR) if stdin_path.exists() else os.open(os.devnull, os.O_RDONLY)
    )
    runc_log = bundle / "runc.log"
    base = ["runc", "--log", str(runc_log), "--log-format", "json"]
    created = subprocess.run(
        [*base, "create", "--bundle", str(bundle), "--pid-file", str(bundle / "pid"), cid],
        stdin=stdin,
        stdout=out_w,
        stderr=err_w,
    )
    os.close(out_w)
    os.close(err_w)
    os.close(stdin)
    if created.returncode != 0:
        _write_json(
            bundle / "exit.json",
            {"exit_code": 128, "reason": "ContainerCannotRun", "message": _runc_error(runc_log)},
        )
        subprocess.run([*base, "delete", "--force", cid], capture_output=True)
        return 0
    pid = int((bundle / "pid").read_text())
    started = subprocess.run([*base, "start", cid], capture_output=True)
    if started.returncode != 0:
        _write_json(
            bundle / "exit.json",
            {"exit_code": 128, "reason": "ContainerCannotRun", "message": _runc_error(runc_log)},
        )
        subprocess.run([*base, "delete", "--force", cid], capture_output=True)
        return 0
    (bundle / "started").write_text(str(pid))

    writer = CRILogWriter(log_path)
    sel = selectors.DefaultSelector()
    sel.register(out_r, selectors.EVENT_READ, "stdout")
    sel.register(err_r, selectors.EVENT_READ, "stderr")
    while sel.get_map():
        for key, _ in sel.select():
            data = os.read(key.fd, 65536)
            writer.write(key.data, data)
            if not data:
                sel.unregister(key.fd)
                os.close(key.fd)
    writer.close()
    status = 0
    while True:  # reap everything re-parented to us; remember the container's status
        try:
            reaped, st = os.waitpid(-1, 0)
        except ChildProcessError:
            break
        if reaped == pid:
            status = st
    code = os.waitstatus_to_exitcode(status)
    code = 128 - code if code < 0 else code
    oom = oom_killed(cid)
    subprocess.run([*base, "delete", "--force", cid], capture_output=True)
    reason = "OOMKilled" if oom else ("Completed" if code == 0 else "Error")
    _write_json(bundle / "exit.json", {"exit_code": code, "reason": reason, "message": ""})
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:4]))
