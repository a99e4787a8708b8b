"""The fake tier's backend: nodes that answer commands from outputs recorded on real daemons
(tests/recorded/, written by tests/record.py), and provisioner sessions that log which steps they got.

A command with no recorded answer fails the test (UnknownCommand, also listed in `unknown` for the
fixture to assert on: a gate would otherwise count the exception as a failed attempt).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

from labgen.backends.base import Backend, Log, Probe, Result

HERE = Path(__file__).resolve().parent
RECORDED = HERE / "recorded"
SESSION = HERE / "fake_session.py"


class UnknownCommand(AssertionError):
    pass


class Script:
    """What the fake nodes answer and how their sessions behave, for one test."""

    def __init__(self, control: Path, *phases: str):
        self.answers: dict[tuple[str, tuple[str, ...]], list[dict[str, Any]]] = {}
        self.calls: list[tuple[str, tuple[str, ...]]] = []
        self.times: list[float] = []  # when each call came, for tests of the order
        self.unknown: list[tuple[str, tuple[str, ...]]] = []
        self.probes: list[Probe] = []
        self.created = 0
        self.control = control
        self.sessions: dict[str, Any] = {"log": str(control.with_suffix(".log")), "fail": {}, "delay": {}}
        for name in phases:
            self.load(name)
        self.save()

    def load(self, phase: str) -> None:
        """Add a recorded phase; a command recorded in several phases answers them in order."""
        for row in json.loads((RECORDED / f"{phase}.json").read_text()):
            self.answers.setdefault((row["node"], tuple(row["argv"])), []).extend(row["answers"])

    def answer(
        self, node: str, argv: Sequence[str], rc: int = 0, stdout: str = "", stderr: str = "", delay: float = 0
    ) -> None:
        """Replace the recorded answers of one command (a fault the recording does not have); `delay`: the
        seconds it takes."""
        self.answers[(node, tuple(argv))] = [{"rc": rc, "stdout": stdout, "stderr": stderr, "delay": delay}]

    def first(self, node: str, argv0: str) -> float:
        """When `node` first got a command starting with `argv0`."""
        return next(t for (n, argv), t in zip(self.calls, self.times, strict=True) if n == node and argv[0] == argv0)

    def stdout(self, node: str, argv: Sequence[str]) -> str:
        return str(self.answers[(node, tuple(argv))][-1]["stdout"])

    def fail_step(self, node: str, step: str, rc: int = 1) -> None:
        self.sessions["fail"].setdefault(node, {})[step] = rc
        self.save()

    def delay_step(self, node: str, step: str, seconds: float) -> None:
        self.sessions["delay"].setdefault(node, {})[step] = seconds
        self.save()

    def save(self) -> None:
        self.control.write_text(json.dumps(self.sessions))

    def steps(self) -> list[dict[str, Any]]:
        """Every batch the sessions ran: node, steps, start and end time, exit code; in start order."""
        log = Path(self.sessions["log"])
        rows = [json.loads(ln) for ln in log.read_text().splitlines()] if log.exists() else []
        return sorted(rows, key=lambda r: r["start"])

    def run(self, node: str, argv: Sequence[str]) -> Result:
        key = (node, tuple(argv))
        self.calls.append(key)
        self.times.append(time.monotonic())
        seq = self.answers.get(key)
        if not seq:
            self.unknown.append(key)
            raise UnknownCommand(f"no recorded answer for {node}: {list(argv)}")
        now = seq.pop(0) if len(seq) > 1 else seq[0]  # the last answer repeats
        time.sleep(now.get("delay", 0))
        return Result(tuple(argv), now["rc"], now["stdout"], now["stderr"])


class FakeBackend(Backend):
    name = "fake"
    datapath = "netdev"
    services = "daemons"
    install = False
    script: ClassVar[Script]  # set by the test's fixture

    def probes(self) -> list[Probe]:
        return self.script.probes

    def create(self, log: Log, first_boot: Mapping[str, dict[str, Any]]) -> set[str]:
        self.script.created += 1
        log("fake: nodes created")
        return set()

    def destroy(self, log: Log) -> None:
        self.state.remove()

    def status(self) -> dict[str, str]:
        return dict.fromkeys(self.lab.node_names, "running")

    def node_argv(self, node: str, argv: Sequence[str], *, tty: bool = False) -> list[str]:
        if list(argv[-1:]) != ["--session"]:
            raise UnknownCommand(f"the fake runs only provisioner sessions as processes, not {list(argv)}")
        return [sys.executable, str(SESSION), str(self.script.control), node]

    def user_ssh_config(self) -> str:
        return "".join(f"Host {n}\n  ProxyCommand false\n" for n in self.lab.node_names)

    def provisioner(self, node: str) -> list[str]:
        return ["<provisioner>"]  # as tests/record.py writes the real one, whose path is the checkout's

    def labs_on_host(self) -> dict[str, str]:
        return {}

    def run(self, node: str, argv: Sequence[str], *, timeout: float = 60, input: str | None = None) -> Result:
        return self.script.run(node, argv)
