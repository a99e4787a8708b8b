"""The lab's lock (LabState.lock): flock with a short wait, what the lock file's holders are, and how a
killed task's orphans are proven and stopped."""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path

from . import procfs
from .errors import LabError
from .ui import console

# locks this process holds (path -> fd): a snapshot restore runs teardown, up and demo in turn under one
HELD: dict[Path, int] = {}
# in the environment of every process a task starts (they inherit the lock): the task's pid. Take-over
# signals only processes that hold the lock file open *and* carry the pid of the task that was killed.
TASK = "OVN_LAB_TASK"


def flock(fd: int, wait: float) -> bool:
    deadline = time.monotonic() + wait
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)


def held_fds() -> tuple[int, ...]:
    """The lock fds, for the provisioner sessions to inherit: a session still running its batch after its
    task was killed keeps the lab busy until it ends, so no second task runs steps beside it."""
    return tuple(HELD.values())


def orphans(path: Path, holder: str) -> list[int]:
    """What a killed task started and still runs, holding the lock: [] while the task itself runs (or the
    lock file names none: its holder just ended), and never another task waiting for the lock."""
    m = re.search(r"\(pid (\d+)\)", holder)
    if not m:
        return []
    held = procfs.holding(path)
    if int(m[1]) in held:
        return []
    mark = f"{TASK}={m[1]}".encode()
    return [p for p in held if mark in procfs.environ(p).split(b"\0")]


def describe(pid: int) -> str:
    argv = procfs.cmdline(pid)
    words = ["?"] if argv is None else [os.path.basename(a.decode(errors="replace")) for a in argv[:3] if a]
    return f"{' '.join(words)} (pid {pid})"


def stop_orphans(path: Path, holder: str, fd: int) -> bool:
    """SIGTERM the orphans, SIGKILL those that outlive a grace period (proven again first: a pid may have
    been reused meanwhile); True once the lock is ours."""
    for sig, grace in ((signal.SIGTERM, 30.0), (signal.SIGKILL, 10.0)):
        for pid in orphans(path, holder):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)
        if flock(fd, wait=grace):
            return True
    return False


@contextlib.contextmanager
def hold(path: Path, lab: str, task: str, *, take_over: bool, not_yours: LabError) -> Iterator[None]:
    """The lock of lab `lab` at `path`, for `task`; a second task at once refuses. The kernel releases
    the lock when its holder ends, also when it is killed. What a task starts (provisioner sessions,
    `vagrant up`) holds the lock too: when the task was killed, they still do. `take_over` (teardown)
    stops those orphans, proven the lab's by holding its lock file open. `not_yours`: raised when the
    lock file is another user's."""
    if path in HELD:
        yield
        return
    try:
        path.parent.mkdir(mode=0o700, exist_ok=True)
        f = open(path, "a+")  # noqa: SIM115 (closed below, after the lock is released)
    except PermissionError:
        raise not_yours from None
    with f:
        if not flock(f.fileno(), wait=0.5):  # a task that just ended: its last sessions are exiting
            f.seek(0)
            holder = f.read().strip() or "another task"
            left = orphans(path, holder)
            if not left:
                raise LabError(
                    f"lab {lab} is busy: {holder} is changing it", "wait for it to finish, then try again"
                ) from None
            if take_over:
                what = ", ".join(describe(p) for p in left)
                console.print(f"  {holder} was killed; stopping what it left running: {what}", markup=False)
            if not take_over or not stop_orphans(path, holder, f.fileno()):
                what = ", ".join(describe(p) for p in left)
                raise LabError(
                    f"lab {lab} is busy: {holder} was killed, but what it started still runs: {what}",
                    "wait for it to end, or run `invoke teardown`, which stops it",
                ) from None
        f.truncate(0)
        f.write(f"invoke {task} (pid {os.getpid()})\n")
        f.flush()
        HELD[path] = f.fileno()
        os.environ[TASK] = str(os.getpid())  # what this task starts carries it (see orphans)
        try:
            yield
        finally:
            del HELD[path]
            f.truncate(0)
