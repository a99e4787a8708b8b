"""The backend interface: bring nodes up and down, report state, run commands on a node."""

from __future__ import annotations

import importlib
import subprocess
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..model import Lab

BACKENDS = {"netns": "labgen.backends.netns:NetnsBackend", "vagrant": "labgen.backends.vagrant:VagrantBackend"}


@dataclass(frozen=True)
class Result:
    argv: tuple[str, ...]
    rc: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.rc == 0


@dataclass(frozen=True)
class Probe:
    """A host check run before `up` touches anything: `check()` returns None when fine, else the problem."""

    name: str
    check: Callable[[], str | None]
    fix: str


class Backend(ABC):
    name: str
    datapath: str  # "netdev" (userspace) or "system" (kernel)
    services: str  # "daemons" or "systemd"
    install: bool  # may the provisioner apt-get install?

    def __init__(self, lab: Lab):
        self.lab = lab
        self.state = lab.state_dir

    @abstractmethod
    def probes(self) -> list[Probe]: ...

    @abstractmethod
    def create(self, log: Callable[[str], None]) -> None:
        """Bring every node up; finishes a partial earlier run."""

    @abstractmethod
    def destroy(self, log: Callable[[str], None]) -> None:
        """Remove everything the lab made, also after an interrupted up or lost state."""

    @abstractmethod
    def status(self) -> dict[str, str]: ...

    @abstractmethod
    def node_argv(self, node: str, argv: Sequence[str], *, tty: bool = False) -> list[str]:
        """The host command that runs `argv` as root on `node`."""

    @abstractmethod
    def user_ssh_config(self) -> str:
        """An ssh_config with one Host per node, root login: plain `ssh -F FILE ovn-host-01` works."""

    @abstractmethod
    def provisioner(self, node: str) -> list[str]:
        """argv prefix that runs `python3 -m provision` on the node (after `prepare`)."""

    def has_leftovers(self) -> bool:
        """Does anything of this lab exist (used when the lab's state was lost)?"""
        return self.state.exists()

    def remove_box(self, log: Callable[[str], None]) -> None:
        """Remove the lab's base image too (teardown --box); nothing for backends without one."""

    def after_install(self) -> None:
        """Hook after the install stage (the vagrant backend switches to root ssh there)."""

    def prepare(self, node: str) -> None:
        """Make the provisioner available on the node."""

    def run(self, node: str, argv: Sequence[str], *, timeout: float = 60, input: str | None = None) -> Result:
        full = self.node_argv(node, argv)
        try:
            r = subprocess.run(full, input=input, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired as e:
            out = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
            return Result(tuple(argv), 124, out, f"timed out after {timeout:.0f} s")
        return Result(tuple(argv), r.returncode, r.stdout, r.stderr)

    def stream(
        self,
        node: str,
        argv: Sequence[str],
        on_line: Callable[[str], None],
        *,
        input: str | Callable[[], str] | None = None,
        when: Callable[[], None] | None = None,
        timeout: float = 1800,
    ) -> int:
        """Run with stdout+stderr merged, handing each line over as it comes. With `when`, the command
        starts at once but gets its input only after `when()` returns: the node's python3 (or an ssh
        login) starts while the lab is still getting ready for it. If `when` raises, the command is killed."""
        full = self.node_argv(node, argv)
        with subprocess.Popen(
            full,
            stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
        ) as p:
            if input is not None:
                assert p.stdin is not None
                try:
                    if when:
                        when()
                    data = input() if callable(input) else input
                except BaseException:
                    p.kill()
                    raise
                p.stdin.write(data)
                p.stdin.close()
            assert p.stdout is not None
            for line in p.stdout:
                on_line(line.rstrip("\n"))
            return p.wait(timeout=timeout)

    @property
    def log_dir(self) -> Path:
        d = self.state / "logs"
        d.mkdir(parents=True, exist_ok=True)
        return d


def get_backend(name: str, lab: Lab) -> Backend:
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; choose one of: {', '.join(BACKENDS)}")
    module, cls = BACKENDS[name].split(":")
    return getattr(importlib.import_module(module), cls)(lab)  # type: ignore[no-any-return]
