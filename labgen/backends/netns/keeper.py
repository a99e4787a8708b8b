"""The keeper of a netns lab: one user namespace per lab, owned by the user who brought it up, with the
lab's own mount, network, UTS, IPC and PID namespaces. Its PID 1 is tini, which reaps the lab's orphans
and, signalled, ends the namespace and with it every process of the lab. Every later task enters the lab
through it (nsenter), as that user: no sudo, no setuid helper. Run as root, the same design works.

Inside, the user is root over the lab's namespaces only. /run is a tmpfs of the lab's own, so `ip netns`
there lists the lab's nodes only, and nothing of the lab appears in the host's /run/netns, mount table
or network.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

from ... import procfs
from ...errors import BackendFailed

MARK = "OVN_LAB_KEEPER"  # in the keeper's environment: the state dir of its lab (what proves it the lab's)
NAMESPACES = ("--user", "--mount", "--net", "--uts", "--ipc", "--pid")
UNSHARE = ("unshare", *NAMESPACES, "--map-root-user", "--fork", "--mount-proc", "--propagation", "private")
# in the keeper's namespaces, before it becomes tini: the lab's own /run. Until then it is not tini, so no
# task ever enters a keeper whose /run is still the host's. A constant: no value in it.
SETUP = "mount -t tmpfs -o mode=755 lab-run /run && mkdir /run/netns && exec tini -- sleep infinity"


# ssh's ForceCommand enters through this, not a pid written into sshd_config: a lab brought up again since
# has another keeper, and an old pid could be another lab's. It proves the keeper as Keeper.proven does
# (tini, with the lab's state dir in its environment); $1 the record, $2 the state dir, then the command.
ENTER_SH = (
    'pid=$(sed -n "s/.*\\"pid\\": *\\([0-9]*\\).*/\\1/p" "$1" 2>/dev/null) && [ -n "$pid" ]'
    ' && [ "$(cat /proc/$pid/comm 2>/dev/null)" = tini ]'
    ' && tr "\\0" "\\n" < /proc/$pid/environ | grep -qxF "$MARK=$2"'
    ' || { echo "the lab at $2 is not running: invoke up" >&2; exit 1; }; shift 2;'
    ' exec nsenter --target="$pid" --user --mount --net --uts --ipc --pid --preserve-credentials -- "$@"'
).replace("$MARK", MARK)


def pinned() -> list[str]:
    """argv prefix for what creates the lab's mount namespaces (the keeper, each node). The kernel binds a
    mount namespace file only into an older namespace (its loop check compares namespace ids), and the ids
    come from per-CPU batches: made on different CPUs, a newer namespace may get a smaller id, and the
    bind fails with EINVAL (seen about half the time on 2 CPUs). Made on one CPU, the ids keep their order."""
    return ["taskset", "--cpu-list", str(min(os.sched_getaffinity(0)))]


def unshare(*argv: str) -> list[str]:
    """The keeper's command: `argv` as PID 1 of the lab's new namespaces. doctor runs it with `true`: a host
    may allow a user namespace yet refuse what else the keeper asks (a new /proc)."""
    return [*pinned(), *UNSHARE, *argv]


NODE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"  # a node's PATH: /usr/sbin too


def _mine(pid: int, owner: int | None = None) -> bool:
    """The process runs as `owner` (default: this user): root tearing down a user's lab proves it so."""
    return procfs.owner(pid) == (os.getuid() if owner is None else owner)


def keepers() -> dict[str, int]:
    """This user's lab keepers on the host: state dir -> pid (doctor; a lab whose state dir is gone)."""
    found = {}
    for pid in procfs.pids():
        if _mine(pid):
            m = re.search(rb"(?:^|\0)" + MARK.encode() + rb"=([^\0]*)", procfs.environ(pid))
            if m and procfs.comm(pid) == "tini":  # None: it ended while we looked
                found[m[1].decode(errors="replace")] = pid
    return found


class Keeper:
    def __init__(self, state_dir: Path):
        self.dir = state_dir
        self.record = state_dir / "keeper.json"
        self.pid = self._find()

    def proven(self, pid: int) -> bool:
        """The process is this lab's keeper: this user's tini, with the lab's state dir in its environment."""
        if procfs.comm(pid) != "tini":
            return False
        try:
            owner = self.dir.stat().st_uid  # whose lab it is (root may tear down a user's)
        except OSError:
            owner = None
        return _mine(pid, owner) and f"\0{MARK}={self.dir}\0".encode() in b"\0" + procfs.environ(pid)

    def _find(self) -> int | None:
        pid: int | None = None
        with contextlib.suppress(OSError, ValueError, KeyError):
            pid = int(json.loads(self.record.read_text())["pid"])
        if pid is None or not self.proven(pid):
            pid = keepers().get(str(self.dir))  # the record lost (a killed up, a deleted state dir)
        return pid

    def start(self) -> int:
        """The lab's namespaces and their PID 1 (unshare forks it and stays as its parent)."""
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin", MARK: str(self.dir)}
        p = subprocess.Popen(
            unshare("sh", "-c", SETUP),
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,  # not in the terminal's process group: a Ctrl-C ends the task, not the lab
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            pid = procfs.first_child(p.pid)  # None: not forked yet
            if pid is not None and self.proven(pid):
                break
            if p.poll() is not None:
                err = p.stderr.read().decode().strip() if p.stderr else ""
                raise BackendFailed(
                    f"cannot create the lab's user namespace: {err or f'unshare exited {p.returncode}'}",
                    "run `invoke doctor`: it checks what user namespaces need",
                )
            time.sleep(0.005)
        else:
            p.kill()
            raise BackendFailed("the lab's keeper did not start within 10 s", "run `invoke doctor`")
        if p.stderr:
            p.stderr.close()
        self.pid = pid
        self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.record.write_text(json.dumps({"pid": pid}) + "\n")
        return pid

    def enter_later(self) -> list[str]:
        """argv prefix like enter(), but it finds and proves the keeper when it runs (ssh's ForceCommand)."""
        return ["sh", "-c", ENTER_SH, "sh", str(self.record), str(self.dir)]

    def enter(self) -> list[str]:
        """argv prefix: run a command inside the lab, as root of its user namespace."""
        if self.pid is None or not self.proven(self.pid):  # a lab brought up again since: its new keeper
            self.pid = self._find()
        if self.pid is None:
            raise BackendFailed(f"the lab at {self.dir} is not running (no keeper)", "run `invoke up`")
        return ["nsenter", f"--target={self.pid}", *NAMESPACES, "--preserve-credentials", "--"]

    def mountinfo(self) -> str:
        return procfs.mountinfo(self.pid) if self.pid else ""

    def proc(self) -> Path:
        """The lab's /proc (its PID namespace), seen from the host."""
        return procfs.path(self.pid or 0, "root", "proc")

    def stop(self) -> bool:
        """End the lab: SIGTERM to its PID 1 (tini passes it on, and when it exits the kernel kills every
        process left in the namespace); SIGKILL if it has not ended in 5 s. True once it has ended."""
        pid = self.pid
        if pid is None or not self.proven(pid):
            self.pid = None
            return True
        for sig in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                if not self.proven(pid) or procfs.gone(pid):
                    self.record.unlink(missing_ok=True)
                    self.pid = None
                    return True
                time.sleep(0.01)
        return False


def is_mount(mountinfo: str, path: Path) -> bool:
    """Is `path` a mount point in `mountinfo` (a bind-mounted namespace file, the ns dir)?"""
    target = str(path)
    return any(unescape(line.split()[4]) == target for line in mountinfo.splitlines())


def unescape(field: str) -> str:
    """A path as /proc/PID/mountinfo writes it: space, tab, newline and backslash as octal escapes."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m[1], 8)), field)
