"""Host-side helpers of the netns backend: mount points, the processes inside a lab's namespaces, and
stopping them."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import time
from pathlib import Path

from provision.core import running


def is_mount(path: Path) -> bool:
    """Is `path` a mount point of this mount namespace (a bind-mounted namespace file, the ns dir)?"""
    target = str(path)
    with open("/proc/self/mountinfo") as f:
        return any(unescape(line.split()[4]) == target for line in f)


def unescape(field: str) -> str:
    """A path as /proc/self/mountinfo writes it: space, tab, newline and backslash as octal escapes."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m[1], 8)), field)


def ns_inode(path: Path) -> int | None:
    try:
        return path.stat().st_ino if is_mount(path) else None
    except OSError:
        return None


def pids_in(inodes: set[int]) -> list[int]:
    """Processes whose UTS or network namespace is one of `inodes`."""
    if not inodes:
        return []
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        for kind in ("uts", "net"):
            try:
                link = os.readlink(f"/proc/{entry}/ns/{kind}")
            except OSError:
                continue
            if int(link.split("[")[1].rstrip("]")) in inodes:
                found.append(int(entry))
                break
    return found


def stop(pids: list[int], grace: float = 5.0) -> None:
    """SIGTERM, and SIGKILL what still runs after `grace` seconds (a zombie counts as gone)."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(running(p) for p in pids):
        time.sleep(0.05)
    for pid in pids:
        if running(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
