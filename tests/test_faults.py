"""The fault matrix on real daemons: every daemon of every role killed with SIGKILL, then `invoke check`
names it (exit 1) and goes on reporting, and `invoke up && invoke demo` repairs the lab (check exit 0)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from provision.facts import DAEMON_PIDFILES
from tests.e2e import Cli, demo_lab, netns_missing

MISSING = netns_missing()  # user namespaces, OVS/OVN: as the trainee who runs it
pytestmark = [
    pytest.mark.netns,
    pytest.mark.skipif(bool(MISSING), reason=MISSING),
]
MATRIX = [
    *(("ovn-central-01", d) for d in ("ovnnb_db", "ovnsb_db", "ovn-northd", "ovsdb-server", "ovs-vswitchd")),
    *(("ovn-central-01", "ovn-controller"),),
    *(("ovn-host-01", d) for d in ("ovsdb-server", "ovs-vswitchd", "ovn-controller")),
]


@pytest.fixture(scope="module")
def cli(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cli]:
    with demo_lab(tmp_path_factory.mktemp("faults"), "t-fault") as c:
        yield c


@pytest.mark.parametrize(("node", "daemon"), MATRIX, ids=[f"{n}-{d}" for n, d in MATRIX])
def test_a_killed_daemon_is_named_and_repaired(cli: Cli, node: str, daemon: str, tmp_path: Path) -> None:
    assert cli("check").returncode == 0
    cli.exec(node, f"kill -9 $(cat {DAEMON_PIDFILES[daemon]})")
    broken = cli("check", check=False)
    assert broken.returncode == 1, broken.stdout
    assert f"FAIL {node:<15} {daemon} is not running on {node}" in broken.stdout, broken.stdout
    assert "Traceback" not in broken.stdout + broken.stderr and broken.stderr == "", broken.stderr
    assert broken.stdout.count("ok   ") >= 3  # it went on with what it could read
    cli("up")
    cli("demo")
    fixed = cli("check", check=False)
    assert fixed.returncode == 0, fixed.stdout
