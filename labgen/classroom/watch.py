"""A seat's watcher, run as the seat over the classroom's sshd for as long as the web app runs (`lab-watch`
in the seats' PATH). It prints the seat's row for the dashboard, one JSON line, now and then again only
when the lab changed: idle, it only stats the paths that `classroom.progress` names (the lab's databases,
leases and processes) and the seat's terminals. It ends when the web app closes its stdin.

Stdlib only and no labgen import: it stays small, since one runs per seat. The reads themselves are
`invoke classroom.progress` (and `invoke exercise.check` while an exercise is on), run only on a change."""

from __future__ import annotations

import json
import os
import select
import stat
import subprocess
import sys
from typing import Any

TICK = 0.5  # seconds between stats of the watched paths
ACTIVITY = 10  # ticks between reads of the terminals' last input (the kernel updates it every 8 s at most)
TIMER = 60  # ticks between re-reads when the lab names nothing to watch
Signature = list[tuple[str, int, int]]


def signature(paths: list[str]) -> Signature:
    """(path, mtime, size) of each path, and of each entry of a directory; -1 for one that is not there."""
    sig: Signature = []
    for p in paths:
        try:
            st = os.stat(p)
        except OSError:
            sig.append((p, -1, -1))
            continue
        if p.startswith("/proc/"):  # a process: only whether it is there (procfs's times are not its own)
            sig.append((p, 0, 0))
            continue
        sig.append((p, st.st_mtime_ns, st.st_size))
        if stat.S_ISDIR(st.st_mode):
            try:
                with os.scandir(p) as entries:
                    for e in entries:
                        s = e.stat(follow_symlinks=False)
                        sig.append((e.path, s.st_mtime_ns, s.st_size))
            except OSError:
                sig.append((p, -2, -2))
    return sorted(sig)


def activity() -> int | None:
    """When the seat last typed in any of its terminals: the newest input time of its ptys."""
    times = []
    with os.scandir("/dev/pts") as entries:
        for e in entries:
            try:
                st = e.stat()
            except OSError:
                continue
            if st.st_uid == os.getuid() and e.name.isdigit():
                times.append(int(st.st_atime))
    return max(times, default=None)


def last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines[-1].lstrip("✗ ") if lines else ""


def read() -> dict[str, Any]:
    r = subprocess.run(["invoke", "classroom.progress"], capture_output=True, text=True, timeout=120, check=False)
    try:
        doc: dict[str, Any] = json.loads(r.stdout.splitlines()[0])
    except (IndexError, ValueError):
        return {"error": last_line(r.stderr) or "no answer", "steps": [], "ports": [], "changes": []}
    if doc.get("exercise"):  # only then: exercise.check runs all of check in the seat's lab
        r = subprocess.run(["invoke", "exercise.check"], capture_output=True, text=True, timeout=120, check=False)
        doc["exercise"] = (" ".join(r.stdout.split()) or last_line(r.stderr))[:200]
    else:
        doc["exercise"] = "none"
    return doc


def emit(doc: dict[str, Any]) -> None:
    try:
        print(json.dumps(doc), flush=True)
    except BrokenPipeError:
        sys.exit(0)


def tick() -> None:
    """Sleep one tick; end when the web app closed our stdin (it went away)."""
    ready, _, _ = select.select([sys.stdin], [], [], TICK)
    if ready and not os.read(sys.stdin.fileno(), 4096):
        sys.exit(0)


def main() -> None:
    last: dict[str, Any] | None = None
    typed = activity()
    paths: list[str] = []
    n = 0
    while True:
        before = signature(paths)  # taken before the read: a change during it is seen after
        doc = read()
        named = sorted(doc.pop("changes", []))
        doc["activity"] = typed
        if named != paths:
            paths, before = named, signature(named)
        if doc != last:
            emit(doc)
            last = doc
        while True:
            tick()
            n += 1
            if n % ACTIVITY == 0 and (now := activity()) != typed:
                typed = now
                emit({"activity": typed})
            if not paths and n % TIMER == 0:
                break
            if (sig := signature(paths)) != before:
                while True:  # let a burst of writes settle before reading
                    tick()
                    if sig == (sig := signature(paths)):
                        break
                break


if __name__ == "__main__":
    main()
