"""The classroom on the `lxd` engine (lxd tier: root, after `scripts/setup --lxd`): seats as containers in
the classroom's own LXD project, each with its lab up and the demo done; status, an exercise for all, a
reset; seats apart; and `classroom.down` leaving no instance, profile or project. The classroom is `lseat`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e import ROOT, Cli

MISSING = (
    "the lxd tier runs as root"
    if os.geteuid()
    else ("no LXD: run scripts/setup --lxd" if not shutil.which("lxd") else "")
)
pytestmark = [pytest.mark.lxd, pytest.mark.skipif(bool(MISSING), reason=MISSING)]
PREFIX = "lseat"
PROJECT = f"ovn-classroom-{PREFIX}"
SEATS = ("lseat001", "lseat002")


def api(path: str) -> Any:
    r = subprocess.run(["lxc", "query", path], capture_output=True, text=True, timeout=60)
    return json.loads(r.stdout) if r.returncode == 0 else None


def in_seat(seat: str, *argv: str) -> subprocess.CompletedProcess[str]:
    """As the seat's trainee, the way the engine runs a seat's commands."""
    return subprocess.run(
        ["lxc", "exec", seat, "--project", PROJECT, "--user", "1000", "--group", "1000", "--cwd", "/home/trainee",
         "--env", "HOME=/home/trainee", "--env", "PATH=/opt/ovn-lab/venv/bin:/usr/sbin:/usr/bin:/sbin:/bin",
         "--env", "OVN_LAB_CONFIG=/home/trainee/lab.toml", "--", *argv],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip


@pytest.fixture(scope="module")
def room(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cli]:
    tmp = tmp_path_factory.mktemp("lxdroom")
    text = (ROOT / "lab.toml").read_text().replace('backend = "vagrant"', 'backend = "netns"')
    text += f'\n[classroom]\nprefix = "{PREFIX}"\nengine = "lxd"\nssh_port = 22822\nweb_port = 28180\n'
    (tmp / "lab.toml").write_text(text)
    cli = Cli(tmp / "lab.toml")
    try:
        cli("classroom.up", "--seats", "2", "--demo", timeout=1800)
        yield cli
    finally:
        cli("classroom.down", check=False, timeout=600)


def test_seats_are_containers_with_their_labs_up(room: Cli) -> None:
    names = sorted(Path(u).name for u in api(f"/1.0/instances?project={PROJECT}") or [])
    assert names == list(SEATS)
    project = api(f"/1.0/projects/{PROJECT}")
    assert project["config"]["restricted"] == "true"
    profile = api(f"/1.0/profiles/default?project={PROJECT}")
    assert profile["config"]["security.nesting"] == "true" and profile["config"]["limits.memory"] == "768MiB"
    doc = json.loads(room("classroom.status", "--json").stdout)
    assert {r["seat"]: r["lab"] for r in doc["seats"]} == dict.fromkeys(SEATS, "up"), doc
    assert all(r["leases"] == 3 and r["terminal"] for r in doc["seats"]), doc
    for seat in SEATS:
        r = in_seat(seat, "invoke", "check")
        assert r.returncode == 0 and "0 problems" in r.stdout, r.stdout + r.stderr


def test_seats_are_apart(room: Cli) -> None:
    """Each seat sees its own processes only, and the same names and subnets as the other."""
    procs = {seat: in_seat(seat, "ps", "-eo", "comm").stdout.split() for seat in SEATS}
    assert all("ovn-controller" in p for p in procs.values())
    ours = {seat: in_seat(seat, "ip", "netns", "exec", "vm1", "true").returncode for seat in SEATS}
    assert ours == dict.fromkeys(SEATS, 1)  # the lab's namespaces are inside its own user namespace
    assert "lseat002" not in in_seat("lseat001", "cat", "/etc/hostname").stdout


def test_an_exercise_for_all_and_a_reset(room: Cli) -> None:
    out = room("classroom.exercise", "controller-stopped", "--all").stdout
    assert out.count("✓ exercise controller-stopped") == 2, out
    for seat in SEATS:
        r = in_seat(seat, "invoke", "check")
        assert r.returncode == 1 and "ovn-controller is not running" in r.stdout, r.stdout
    room("classroom.reset", "--all", timeout=600)  # back to just after up: the daemons run again
    for seat in SEATS:
        r = in_seat(seat, "invoke", "check")
        assert "ovn-controller is not running" not in r.stdout and "controller" in r.stdout, r.stdout


def test_down_leaves_no_instance_profile_or_project(room: Cli) -> None:
    room("classroom.down", timeout=600)
    assert api(f"/1.0/projects/{PROJECT}") is None
    assert not Path(f"/var/lib/ovn-classroom/{PREFIX}").exists()
    assert "lseat" not in subprocess.run(["getent", "passwd"], capture_output=True, text=True).stdout
