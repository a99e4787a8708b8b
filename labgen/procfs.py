"""What labgen reads of /proc on the host: processes (their environment, command line, owner, children,
state, open files, mounts) and memory and CPU. A process may end while it is read: each reader says so
(an empty or None answer), never raises."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

PROC = Path("/proc")
SYSCTLS = PROC / "sys"


def pids() -> list[int]:
    return [int(e) for e in os.listdir(PROC) if e.isdigit()]


def path(pid: int, *parts: str) -> Path:
    """/proc/PID/... (the lab's own /proc is path(keeper, "root", "proc"))."""
    return PROC.joinpath(str(pid), *parts)


def environ(pid: int) -> bytes:
    """NUL-separated KEY=value; b"" when gone or not ours to read."""
    try:
        return path(pid, "environ").read_bytes()
    except OSError:
        return b""


def cmdline(pid: int) -> list[bytes] | None:
    try:
        return path(pid, "cmdline").read_bytes().split(b"\0")
    except OSError:
        return None


def comm(pid: int) -> str | None:
    try:
        return path(pid, "comm").read_text().strip()
    except OSError:
        return None


def owner(pid: int) -> int | None:
    """The uid the process runs as."""
    try:
        return path(pid).stat().st_uid
    except OSError:
        return None


def pid_ns(pid: int) -> int | None:
    """The inode of the process's PID namespace (None when gone or not ours to see)."""
    try:
        return os.stat(path(pid, "ns", "pid")).st_ino
    except OSError:
        return None


def first_child(pid: int) -> int | None:
    try:
        return int(path(pid, "task", str(pid), "children").read_text().split()[0])
    except (OSError, ValueError, IndexError):  # none (yet)
        return None


def gone(pid: int) -> bool:
    """The process has exited: no longer there, or a zombie its parent has not reaped yet."""
    try:
        return path(pid, "stat").read_text().rsplit(") ", 1)[1].startswith("Z")
    except OSError:
        return True


def mountinfo(pid: int) -> str:
    try:
        return path(pid, "mountinfo").read_text()
    except OSError:
        return ""


def holding(file: Path) -> list[int]:
    """The processes other than this one that have `file` open (those this user may look at)."""
    try:
        want = file.stat()
    except OSError:
        return []
    found = []
    for pid in pids():
        if pid == os.getpid():
            continue
        with contextlib.suppress(OSError):
            for fd in path(pid, "fd").iterdir():
                st = fd.stat()
                if (st.st_dev, st.st_ino) == (want.st_dev, want.st_ino):
                    found.append(pid)
                    break
    return found


def sysctl(name: str, root: Path = SYSCTLS) -> int | None:
    """An integer sysctl ("user.max_user_namespaces"); None when this kernel has none of that name."""
    try:
        return int(Path(root, *name.split(".")).read_text())
    except (OSError, ValueError):
        return None


def mem_available_mib() -> int:
    with open(PROC / "meminfo") as f:
        return next(int(ln.split()[1]) >> 10 for ln in f if ln.startswith("MemAvailable:"))


def cpu_flags() -> set[str]:
    try:
        with open(PROC / "cpuinfo") as f:
            return next((set(ln.split(":", 1)[1].split()) for ln in f if ln.startswith("flags")), set())
    except OSError:
        return set()
