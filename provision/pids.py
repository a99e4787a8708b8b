"""Is a daemon running: the pid in its pidfile, proven to be a live process (and that daemon) before it is
believed (stdlib only, on the node)."""

from __future__ import annotations

import os


def running(pid: int) -> bool:
    """The process runs and is not a zombie. PID 1 on these machines reaps orphans late, so a zombie counts
    as exited (kill -0 would call it alive). pid <= 0 is never a process: -1 or 0 from a corrupt pidfile
    would make kill() mean every process or the process group."""
    if pid <= 0:
        return False
    try:
        with open(f"/proc/{pid}/status") as f:
            state = next((line.split()[1] for line in f if line.startswith("State:")), "Z")
    except OSError:
        return False
    return state not in ("Z", "X")  # X: dead, being torn down


def pid_alive(pidfile: str, program: str = "", marker: str = "") -> bool:
    """The pid in a pidfile is running (see running()), and, given `program`, it is that program with
    `marker` in its arguments, in this node's network namespace: a pidfile left from before (a node whose
    processes were killed) names a pid that another process may hold by now, and a lab's own PID namespace
    hands out the same few pids again."""
    try:
        with open(pidfile) as f:
            pid = int(f.read().strip())
    except (OSError, ValueError):
        return False
    if not running(pid):
        return False
    if not program:
        return True
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = f.read().decode(errors="replace").split("\0")
        # this node's own: netns nodes share their lab's PID namespace, and every node runs the same daemons
        here = os.stat(f"/proc/{pid}/ns/net").st_ino == os.stat("/proc/self/ns/net").st_ino
    except OSError:
        return False
    return here and os.path.basename(argv[0]) == program and (not marker or any(marker in a for a in argv[1:]))


def pid_of(pidfile: str) -> int | None:
    """The running process a pidfile names, proven by its command line naming that pidfile (a pid left
    in a stale pidfile may be anyone's by now); else None."""
    try:
        with open(pidfile) as f:
            pid = int(f.read().strip())
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = f.read().split(b"\0")
    except (OSError, ValueError):
        return None
    return pid if running(pid) and pidfile.encode() in argv else None
