"""A seat's watcher, run as the seat over the classroom's sshd for as long as the web app runs (`lab-watch`
in the seats' PATH). It prints the seat's row for the dashboard, one JSON line, now and then again only
when the lab changed: idle, it only stats the paths that `classroom.progress` names (the lab's databases,
leases and processes) and the seat's terminals. It ends when the web app closes its stdin.

Stdlib only and no labgen import: it stays small, since one runs per seat. The reads themselves are
`invoke classroom.progress` (and `invoke exercise.check` while an exercise is on), run only on a change, or
soon again after one failed."""

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
RETRY = 4  # ticks before a failed read is tried again; doubled after each failure, up to TIMER
Signature = dict[str, list[tuple[str, int, int]]]


def signature(paths: list[str]) -> Signature:
    """For each path: its (path, mtime, size), and those of each entry of a directory; -1 for one that is not
    there."""
    return {p: stats(p) for p in paths}


def stats(p: str) -> list[tuple[str, int, int]]:
    try:
        st = os.stat(p)
    except OSError:
        return [(p, -1, -1)]
    if p.startswith("/proc/"):  # a process: only whether it is there (procfs's times are not its own)
        return [(p, 0, 0)]
    out = [(p, st.st_mtime_ns, st.st_size)]
    if stat.S_ISDIR(st.st_mode):
        try:
            with os.scandir(p) as entries:
                for e in entries:
                    s = e.stat(follow_symlinks=False)
                    out.append((e.path, s.st_mtime_ns, s.st_size))
        except OSError:
            out.append((p, -2, -2))
    return sorted(out)


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
        return {"error": last_line(r.stderr) or "no answer", "steps": [], "ports": []}  # no "changes": failed
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
    retry = 0  # ticks until the read is tried again: 0 while the last read worked
    n = 0
    while True:
        before = signature(paths)  # taken before the read: a change during it is seen after
        doc = read()
        named = doc.pop("changes", None)
        doc["activity"] = typed
        if named is None:  # the read failed: watch what was named before, and try again soon
            retry = min(retry * 2 or RETRY, TIMER)
        else:
            retry = 0
            if (named := sorted(named)) != paths:
                # paths watched before keep their stat from before the read: a change made during it (a
                # trainee's first command in a new shell, which the read names too) is still seen after it
                new = signature([p for p in named if p not in before])
                paths, before = named, {p: before[p] if p in before else new[p] for p in named}
        if doc != last:
            emit(doc)
            last = doc
        waited = 0
        while True:
            tick()
            n, waited = n + 1, waited + 1
            if n % ACTIVITY == 0 and (now := activity()) != typed:
                typed = now
                emit({"activity": typed})
            if waited == retry or (not paths and n % TIMER == 0):
                break
            if (sig := signature(paths)) != before:
                while True:  # let a burst of writes settle before reading
                    tick()
                    if sig == (sig := signature(paths)):
                        break
                break


if __name__ == "__main__":
    main()
