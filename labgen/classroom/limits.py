"""Each seat's memory and pids limit, as a cgroup the classroom makes itself (no systemd): on a cgroup v2
host one directory under the unified tree, on a v1 host one under each of the memory and pids hierarchies.
Also /proc's hidepid, so that a seat sees only its own processes while the classroom is up."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from pathlib import Path

from ..errors import BackendFailed

ROOT = Path("/sys/fs/cgroup")


def is_v2() -> bool:
    return (ROOT / "cgroup.controllers").exists()


def parent_dirs(prefix: str) -> list[Path]:
    name = f"ovn-classroom-{prefix}"
    return [ROOT / name] if is_v2() else [ROOT / "memory" / name, ROOT / "pids" / name]


def seat_dirs(prefix: str, seat: str) -> list[Path]:
    return [d / seat for d in parent_dirs(prefix)]


def _write(path: Path, value: str) -> None:
    try:
        path.write_text(value)
    except OSError as e:
        raise BackendFailed(f"cannot write {value!r} to {path}: {e.strerror}", "run as root") from e


def create(prefix: str, seat: str, uid: int, memory_mib: int, pids: int) -> None:
    """The seat's cgroup with its limits; its cgroup.procs belongs to the seat, so that the classroom's login
    can move the login's own process into it (on v1; on v2 the seat's tmux server, started inside, holds it)."""
    if is_v2():
        for d in (ROOT, *parent_dirs(prefix)):
            d.mkdir(exist_ok=True)
            if d != ROOT or "memory" not in (d / "cgroup.subtree_control").read_text():
                _write(d / "cgroup.subtree_control", "+memory +pids")
    for d in seat_dirs(prefix, seat):
        d.mkdir(parents=True, exist_ok=True)
        if is_v2():
            _write(d / "memory.max", str(memory_mib << 20))
            if (d / "memory.swap.max").exists():
                _write(d / "memory.swap.max", "0")
            _write(d / "pids.max", str(pids))
        elif d.parent.parent.name == "memory":
            _write(d / "memory.limit_in_bytes", str(memory_mib << 20))
        else:
            _write(d / "pids.max", str(pids))
        for f in ("cgroup.procs", "tasks"):
            if (d / f).exists():
                os.chown(d / f, uid, -1)


def join(prefix: str, seat: str) -> None:
    """Move the calling process into the seat's cgroup (root; a subprocess's preexec_fn)."""
    for d in seat_dirs(prefix, seat):
        (d / "cgroup.procs").write_text(str(os.getpid()))


def procs(prefix: str, seat: str) -> set[int]:
    pids: set[int] = set()
    for d in seat_dirs(prefix, seat):
        if (d / "cgroup.procs").exists():
            pids |= {int(p) for p in (d / "cgroup.procs").read_text().split()}
    return pids


def held(prefix: str, seat: str) -> int:
    """Tasks the seat's pids limit still counts beyond its live threads: exited ones not yet reaped (their
    parent, often PID 1, reaps them when it gets to it), which still count against the limit."""
    for d in seat_dirs(prefix, seat):
        threads = d / ("cgroup.threads" if is_v2() else "tasks")
        if (d / "pids.current").exists() and threads.exists():
            return int((d / "pids.current").read_text()) - len(threads.read_text().split())
    return 0


def kill(prefix: str, seat: str, timeout: float = 10) -> None:
    """SIGKILL everything in the seat's cgroup until it is empty (a fork loop keeps adding), then wait until
    the dead are reaped, so that the seat's next lab finds its pids limit free again."""
    deadline = time.monotonic() + timeout
    while (left := procs(prefix, seat)) and time.monotonic() < deadline:
        for pid in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.05)
    while held(prefix, seat) > 0 and time.monotonic() < deadline + timeout:
        time.sleep(0.1)


def remove(prefix: str, seat: str) -> None:
    kill(prefix, seat)
    for d in seat_dirs(prefix, seat):
        if d.exists():
            d.rmdir()


def remove_parents(prefix: str) -> None:
    for d in parent_dirs(prefix):
        if d.exists() and not any(p.is_dir() for p in d.iterdir()):
            d.rmdir()


# /proc's options before the classroom changed them, kept in the state dir so that down restores them
PROC_SAVED = "proc-options.json"


def proc_options() -> str:
    for line in Path("/proc/mounts").read_text().splitlines():
        _dev, where, fstype, opts, *_ = line.split()
        if where == "/proc" and fstype == "proc":
            return opts
    return ""


def hidden_but_to_a_group() -> bool:
    """Whether /proc hides other users' processes from all but a group, as an accounts classroom mounts it."""
    hidepid, gid = _hidepid(proc_options())
    return hidepid not in ("0", "off") and gid != "0"


def _hidepid(opts: str) -> tuple[str, str]:
    parts = dict(o.partition("=")[::2] for o in opts.split(","))
    return parts.get("hidepid", "0"), parts.get("gid", "0")


def hide_pids(state: Path, gid: int) -> None:
    """Remount /proc with hidepid=2 (a seat sees only its own processes); `gid` (the web app's group) sees
    all. The options it had are saved once, for restore_pids."""
    saved = state / PROC_SAVED
    if not saved.exists():
        hidepid, old_gid = _hidepid(proc_options())
        saved.write_text(json.dumps({"hidepid": hidepid, "gid": old_gid}))
    _remount(f"hidepid=2,gid={gid}")


def restore_pids(state: Path) -> None:
    saved = state / PROC_SAVED
    if saved.exists():
        old = json.loads(saved.read_text())
        hidepid = {"off": "0", "noaccess": "1", "invisible": "2"}.get(old["hidepid"], old["hidepid"])
        _remount(f"hidepid={hidepid},gid={old['gid']}")
        saved.unlink()


def _remount(options: str) -> None:
    r = subprocess.run(["mount", "-o", f"remount,{options}", "/proc"], capture_output=True, text=True, check=False)
    if r.returncode:
        raise BackendFailed(f"mount -o remount,{options} /proc failed: {r.stderr.strip()}", "run as root")
