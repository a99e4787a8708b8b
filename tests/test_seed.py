"""How `up` reads a VM's first-boot unit (labgen/backends/vagrant/seed.py `applied`), on answers as
`systemctl show` gives them: it waits while the unit runs or its start is queued, judges only a node this
run seeded, and names a failed unit with its log."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from labgen.backends.base import Result
from labgen.backends.vagrant import seed

pytestmark = pytest.mark.fake

QUEUED = "Result=success\nExecMainStatus=0\nActiveState=inactive\nJob=73\n"
RUNNING = "Result=success\nExecMainStatus=0\nActiveState=activating\nJob=73\n"
DONE = "Result=success\nExecMainStatus=0\nActiveState=active\n"
FAILED = "Result=exit-code\nExecMainStatus=2\nActiveState=failed\n"
SKIPPED = "Result=success\nExecMainStatus=0\nActiveState=inactive\n"  # its condition failed: not a first boot


class Node:
    """A node whose unit answers `states` in turn (the last one from then on)."""

    def __init__(self, *states: str) -> None:
        self.states, self.asked = list(states), 0

    def run(self, node: str, argv: Sequence[str], timeout: float = 0) -> Result:
        if argv[0] == "tail":
            return Result(tuple(argv), 0, "ovn-host-01 # : unknown steps ['fault']\n", "")
        self.asked += 1
        return Result(tuple(argv), 0, self.states.pop(0) if len(self.states) > 1 else self.states[0], "")


def test_a_seeded_node_counts_once_its_unit_has_ended() -> None:
    node, said = Node(QUEUED, RUNNING, RUNNING, DONE), []
    assert seed.applied(node.run, "h1", said.append, seeded=True)
    assert node.asked == 4 and said == []


def test_a_node_up_before_this_run_is_waited_on_but_provisioned_over_ssh() -> None:
    # made by an interrupted `up`: its unit still runs, and the ssh path must not run beside it
    node, said = Node(QUEUED, RUNNING, DONE), []
    assert not seed.applied(node.run, "h1", said.append, seeded=False)
    assert node.asked == 3 and said == []
    node = Node(SKIPPED)  # a later boot: nothing to wait for
    assert not seed.applied(node.run, "h1", said.append, seeded=False)
    assert node.asked == 1 and said == []


def test_a_failed_unit_is_named_with_its_log() -> None:
    node, said = Node(RUNNING, FAILED), []
    assert not seed.applied(node.run, "h1", said.append, seeded=True)
    assert said[0].startswith(
        "h1: ovn-lab-first-boot.service did not configure it (failed, result exit-code, exit status 2)"
    )
    assert "h1 # tail -n 15 /var/log/ovn-lab/first-boot.log" in said[0] and "unknown steps ['fault']" in said[0]
    node = Node(SKIPPED)
    assert not seed.applied(node.run, "h1", said.append, seeded=True)
    assert "it did not run (no seed disk found, or not the first boot)" in said[1]
