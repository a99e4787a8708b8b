"""The backend interface: bring nodes up and down, report state, run commands on a node."""

from __future__ import annotations

import contextlib
import importlib
import subprocess
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from provision.core import END

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


class Session:
    """A provisioner process on a node that runs batch after batch of steps: one python3 start (and, for
    VMs, one ssh login) per node and task instead of one per batch."""

    def __init__(self, argv: list[str]):
        self.p = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
        )

    @property
    def alive(self) -> bool:
        return self.p.poll() is None

    def run(self, request: str, on_line: Callable[[str], None]) -> int:
        """Send one batch (a JSON line); hand over its output lines; return its exit code."""
        assert self.p.stdin is not None and self.p.stdout is not None
        try:
            self.p.stdin.write(request + "\n")
            self.p.stdin.flush()
        except BrokenPipeError:
            pass  # the process ended; its last words are still in stdout
        for line in self.p.stdout:
            if line.startswith(END):
                return int(line[len(END) :])
            on_line(line.rstrip("\n"))
        return self.p.wait() or 1  # ended without finishing the batch

    def end(self, *, kill: bool = False) -> None:
        """End of input: the process exits after its batch. `kill`: now (an interrupted task)."""
        if kill and self.alive:
            self.p.kill()
        with contextlib.suppress(BrokenPipeError):
            self.p.stdin.close()  # type: ignore[union-attr]

    def wait(self) -> None:
        try:
            self.p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()
        self.p.stdout.close()  # type: ignore[union-attr]


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

    def session(self, node: str) -> Session:
        """`python3 -m provision --session` on the node, for step batches (see Session)."""
        return Session(self.node_argv(node, [*self.provisioner(node), "--session"]))

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
