"""The classroom's seat watcher (`lab-watch`) against a fake `invoke` that answers a recorded row: one row
at start, none while nothing changes, a new one when a watched file, directory entry or process changes,
and an end when the web app closes its stdin (fake tier: no lab, no root)."""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from labgen.classroom import watch
from tests.e2e import ROOT

pytestmark = pytest.mark.fake

# answers `invoke classroom.progress` with a row naming what to watch; counts its calls in reads
FAKE_INVOKE = """#!{python}
import json, os, sys
here = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(here, "reads"), "a") as f:
    f.write(" ".join(sys.argv[1:]) + "\\n")
if sys.argv[1:] == ["classroom.progress"]:
    with open(os.path.join(here, "row.json")) as f:
        print(f.read().strip())
"""


class Watcher:
    def __init__(self, tmp: Path, changes: list[str], exercise: str | None = None):
        self.dir = tmp / "bin"
        self.dir.mkdir()
        (self.dir / "invoke").write_text(FAKE_INVOKE.format(python=sys.executable))
        (self.dir / "invoke").chmod(0o755)
        self.row(changes, exercise)
        self.proc = subprocess.Popen(
            [sys.executable, "-S", "-c", f"import sys; sys.path.insert(0, {str(ROOT)!r}); "
             "from labgen.classroom.watch import main; main()"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
            env={**os.environ, "PATH": f"{self.dir}:{os.environ['PATH']}"},
        )  # fmt: skip

    def row(self, changes: list[str], exercise: str | None = None, **more: Any) -> None:
        doc = {"steps": [], "ports": [], "exercise": exercise, "changes": changes, **more}
        (self.dir / "row.json").write_text(json.dumps(doc))

    def reads(self) -> list[str]:
        return (self.dir / "reads").read_text().splitlines()

    def line(self, timeout: float) -> dict[str, Any] | None:
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        return json.loads(self.proc.stdout.readline()) if ready else None

    def close(self) -> int:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        return self.proc.wait(timeout=5)


def test_watcher_reads_again_only_when_a_watched_path_changes(tmp_path: Path) -> None:
    db, leases = tmp_path / "nb.db", tmp_path / "lib-dhcp"
    db.write_text("a")
    leases.mkdir()
    (leases / "dhclient.leases").write_text("")
    sleeper = subprocess.Popen(["sleep", "60"])
    watched = [str(db), str(leases), f"/proc/{sleeper.pid}"]
    w = Watcher(tmp_path, watched)
    try:
        first = w.line(10)
        assert first is not None and first["exercise"] == "none" and "changes" not in first
        assert w.line(3 * watch.TICK) is None and w.reads() == ["classroom.progress"]  # idle: no read
        for change in (
            lambda: db.write_text("ab"),  # a database written
            lambda: (leases / "dhclient.leases").write_text("lease"),  # a file in a watched directory
            lambda: (sleeper.kill(), sleeper.wait()),  # a process of the lab ended
        ):
            w.row(watched, ports=[str(len(w.reads()))])  # a row that differs from the last
            change()
            assert w.line(10) is not None, "no row after a change"
        assert len(w.reads()) == 4
        assert w.close() == 0  # the web app went away: so does the watcher
    finally:
        sleeper.kill()
        w.proc.kill()


def test_watcher_checks_the_exercise_only_while_one_is_on(tmp_path: Path) -> None:
    w = Watcher(tmp_path, [], exercise="wrong-mac")
    try:
        assert w.line(10) is not None
        assert w.reads() == ["classroom.progress", "exercise.check"]
    finally:
        w.close()


def test_signature_sees_a_file_appear_and_a_process_go(tmp_path: Path) -> None:
    f = tmp_path / "exercise.json"
    before = watch.signature([str(tmp_path), str(f), "/proc/1"])
    f.write_text("{}")
    assert watch.signature([str(tmp_path), str(f), "/proc/1"]) != before
    time.sleep(0.01)
    assert watch.signature(["/proc/1"]) == watch.signature(["/proc/1"])
    assert watch.signature(["/proc/999999999"]) == {"/proc/999999999": [("/proc/999999999", -1, -1)]}


def run_watcher(monkeypatch: pytest.MonkeyPatch, reads: list[Any], ticks: int, on_tick: Any = None) -> list[Any]:
    """lab-watch's loop for `ticks` ticks: its reads answered from `reads` in turn (a function of the read's
    number, called during the read), no terminals; what it emitted."""
    emitted: list[Any] = []
    counts = {"read": 0, "tick": 0}

    def read() -> dict[str, Any]:
        counts["read"] += 1
        return dict(reads[min(counts["read"], len(reads)) - 1](counts["read"]))

    def tick() -> None:
        counts["tick"] += 1
        if counts["tick"] > ticks:
            raise SystemExit(0)
        if on_tick:
            on_tick(counts["tick"])

    monkeypatch.setattr(watch, "read", read)
    monkeypatch.setattr(watch, "tick", tick)
    monkeypatch.setattr(watch, "activity", lambda: None)
    monkeypatch.setattr(watch, "emit", emitted.append)
    with pytest.raises(SystemExit):
        watch.main()
    return emitted


def test_the_watcher_sees_a_change_made_during_a_read_that_names_new_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A trainee's first command in a new shell, while the watcher reads: the read names the shell's process
    too, and the database's change during the read is still read after it."""
    db, shell = tmp_path / "ovnnb_db.db", tmp_path / "proc-shell"
    db.write_text("1")
    shell.mkdir()

    def during(k: int) -> dict[str, Any]:
        if k == 2:  # ls-add commits while this read runs, after it read the switches
            os.utime(db, ns=(0, 10**18))
            return {"net0": False, "changes": [str(db), str(shell)]}
        return {"net0": k > 2, "changes": [str(db)] if k == 1 else [str(db), str(shell)]}

    emitted = run_watcher(monkeypatch, [during], ticks=12, on_tick=lambda t: t == 2 and db.write_text("22"))
    assert [d.get("net0") for d in emitted] == [False, True]


def test_the_watcher_tries_a_failed_read_again_soon(monkeypatch: pytest.MonkeyPatch) -> None:
    """A read that failed (a lab busy changing) names nothing to watch: it is read again within seconds, not
    on the slow timer of a lab that names nothing."""
    failed = {"error": "lab ovn-lab is busy", "steps": []}
    emitted = run_watcher(monkeypatch, [lambda k: failed, lambda k: {"error": None, "changes": []}], ticks=8)
    assert [d.get("error") for d in emitted] == ["lab ovn-lab is busy", None]
