"""Interrupted, lost, concurrent, on real daemons: `invoke up` killed (SIGINT, SIGKILL) at every stage and
`invoke demo` at every section, then finished by running it again; the state directory deleted; two tasks
at once on one lab. Teardown leaves no namespace, mount or process of the lab."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e import ROOT, Cli, finish, in_pidns, interrupt, leftovers, netns_missing, pidns, tutorial_lab

MISSING = netns_missing()  # user namespaces, OVS/OVN: as the trainee who runs it
pytestmark = [
    pytest.mark.netns,
    pytest.mark.skipif(bool(MISSING), reason=MISSING),
]
UP_STAGES = ["… create 3 nodes", "… OVS, underlay, br-int", "… gate: every chassis"]
DEMO_SECTIONS = ["## 4-5.", "## 6.", "## 7.", "## 8.", "## Checks"]
SIGNALS = [signal.SIGINT, signal.SIGKILL]
# what invoke exits with: a SIGINT is a KeyboardInterrupt that labgen.cli.call turns into 130; a SIGKILL
# ends the process where it stands
EXIT = {signal.SIGINT: 130, signal.SIGKILL: -signal.SIGKILL}


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Cli]:
    cli = tutorial_lab(tmp_path, "t-kill")
    try:
        yield cli
    finally:
        cli("teardown", check=False)
        assert not leftovers(cli, "t-kill")


@pytest.mark.parametrize("sig", SIGNALS, ids=lambda s: s.name)
@pytest.mark.parametrize("marker", UP_STAGES)
def test_up_killed_at_a_stage_is_finished_by_up(lab: Cli, marker: str, sig: signal.Signals) -> None:
    r = interrupt(lab, ["up", "--backend", "netns"], marker, sig)
    assert r.returncode == EXIT[sig], r.stdout
    if sig == signal.SIGINT:
        assert "interrupted: `invoke up` finishes the lab, `invoke teardown` removes it" in r.stdout
    assert "lab t-kill is up" in finish(lab, "up")
    assert lab("check").returncode == 0


@pytest.mark.parametrize("sig", SIGNALS, ids=lambda s: s.name)
def test_demo_killed_at_every_section_is_finished_by_demo(lab: Cli, sig: signal.Signals) -> None:
    lab("up", "--backend", "netns")
    for marker in DEMO_SECTIONS:
        r = interrupt(lab, ["demo"], marker, sig)
        assert r.returncode == EXIT[sig], (marker, r.stdout)
        assert "demo done" in finish(lab, "demo"), marker
        assert lab("check").returncode == 0, marker
        finish(lab, "demo", "--reset")


def test_teardown_finds_everything_after_the_state_dir_was_deleted(lab: Cli) -> None:
    lab("up", "--backend", "netns")
    lab("demo")
    ns = pidns(lab)
    assert len(in_pidns(ns)) > 10  # tini, the daemons, the dhclients
    shutil.rmtree(lab.config.parent / ".lab" / "t-kill")
    assert lab("teardown").returncode == 0
    assert not leftovers(lab, "t-kill")
    assert in_pidns(ns) == []


def test_a_second_task_on_a_busy_lab_refuses(lab: Cli) -> None:
    argv = [sys.executable, "-m", "invoke", "up", "--backend", "netns", "--config", str(lab.config)]
    first = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert first.stdout is not None
    for line in first.stdout:
        if line.startswith("… create"):
            first.send_signal(signal.SIGSTOP)  # it holds the lock while the others try
            break
    try:
        for task in (["up"], ["teardown"], ["demo"]):
            r = lab(*task, check=False)
            assert r.returncode == 1, (task, r.stdout, r.stderr)
            assert f"lab t-kill is busy: invoke up (pid {first.pid}) is changing it" in r.stderr, r.stderr
    finally:
        first.send_signal(signal.SIGCONT)
    first.communicate(timeout=120)
    assert first.returncode == 0
    assert lab("check").returncode == 0  # nothing was corrupted
