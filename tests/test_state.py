"""The lab's lock: a second task refuses while one runs; a killed task's orphans keep the lab busy until
teardown, which proves them the lab's (they hold its lock file open) and stops them. Real processes, no
daemons."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from labgen.errors import LabError
from labgen.load import load_lab
from labgen.state import LabState
from tests.e2e import tutorial_lab

pytestmark = pytest.mark.fake  # local processes, no root, no daemons: seconds (model tests start none)

# a task as invoke runs one: it takes the lock, starts a child that inherits it (a provisioner session, or
# `vagrant up`), and then is killed
TASK = """
import fcntl, os, subprocess, sys, time
f = open(sys.argv[1], "a+")
fcntl.flock(f, fcntl.LOCK_EX)
f.truncate(0); f.write(f"invoke up (pid {os.getpid()})\\n"); f.flush()
os.environ["OVN_LAB_TASK"] = str(os.getpid())  # as LabState.lock sets it
child = subprocess.Popen(["sleep", "120"], pass_fds=[f.fileno()])
print(child.pid, flush=True)
time.sleep(120)
"""


def _task(state: LabState) -> tuple[subprocess.Popen[str], int]:
    state.make()
    path = state.dir.parent / f"{state.lab.name}.lock"
    p = subprocess.Popen([sys.executable, "-c", TASK, str(path)], stdout=subprocess.PIPE, text=True)
    assert p.stdout is not None
    return p, int(p.stdout.readline())


def _gone(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1].startswith("Z")  # a zombie PID 1 reaps late
    except FileNotFoundError:
        return True


def test_a_running_task_keeps_the_lab_busy(tmp_path: Path) -> None:
    state = LabState(load_lab(tutorial_lab(tmp_path, "t-lock").config))
    task, child = _task(state)
    try:
        busy = r"lab t-lock is busy: invoke up \(pid \d+\) is changing it"
        with pytest.raises(LabError, match=busy), state.lock("up"):
            pass
        with pytest.raises(LabError, match="is changing it"), state.lock("teardown", take_over=True):
            pass  # a live task is never stopped
    finally:
        task.kill()
        task.wait()
        os.kill(child, signal.SIGKILL)


def test_orphans_of_a_killed_task_keep_it_busy_until_teardown_stops_them(tmp_path: Path) -> None:
    state = LabState(load_lab(tutorial_lab(tmp_path, "t-lock").config))
    task, child = _task(state)
    task.kill()
    task.wait()
    try:
        with pytest.raises(LabError) as e, state.lock("up"):
            pass
        assert f"was killed, but what it started still runs: sleep 120 (pid {child})" in e.value.message
        assert "invoke teardown" in e.value.fix
        # a task waiting for the lock holds the file open too, but is no orphan: it is never signalled
        path = state.dir.parent / "t-lock.lock"
        code = f"f = open({str(path)!r}); print('open', flush=True); import time; time.sleep(60)"
        waiter = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
        assert waiter.stdout is not None and waiter.stdout.readline() == "open\n"
        t0 = time.monotonic()
        with state.lock("teardown", take_over=True):
            assert _gone(child) and waiter.poll() is None
        print(f"orphan stopped in {time.monotonic() - t0:.2f} s")
        with state.lock("up"):
            pass  # free again
        waiter.kill()
    finally:
        if not _gone(child):
            os.kill(child, signal.SIGKILL)
