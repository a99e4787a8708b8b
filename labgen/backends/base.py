"""The backend interface: bring nodes up and down, report their state, run commands on a node.

A backend says how it differs as data (`datapath`, `services`, `install`, `prelude`, `freezes`) and
hooks with safe defaults; callers never ask which backend they have.
"""

from __future__ import annotations

import subprocess
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..model import Lab
from ..state import LabState

Log = Callable[[str], None]


def quoted(path: Path) -> str:
    """A path as an ssh_config or sshd_config value: quoted, so a space does not end it."""
    return f'"{path}"'


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
    """A host check, run by `up` before it touches anything and by doctor: `check()` returns None when
    fine, else the problem. `advisory`: worth a warning, never a reason to stop. `detail`: what doctor
    shows when the check passes (a version, the accelerator chosen)."""

    name: str
    check: Callable[[], str | None]
    fix: str
    advisory: bool = False
    detail: Callable[[], str] | None = None


class Backend(ABC):
    name: str
    datapath: str  # "netdev" (userspace) or "system" (kernel)
    services: str  # "daemons" or "systemd"
    install: bool  # may the provisioner apt-get install?
    prelude: tuple[str, ...] = ("install",)  # provisioner steps before Open vSwitch, on every node
    freezes: bool = False  # can save and restore the nodes as they are (else a snapshot is a rebuild)
    has_box: bool = False  # boots its nodes from a base image of the user's (teardown --box removes it)

    def __init__(self, lab: Lab):
        self.lab = lab
        self.state = LabState(lab)

    @abstractmethod
    def probes(self) -> list[Probe]: ...

    @abstractmethod
    def create(self, log: Log, first_boot: Mapping[str, dict[str, Any]]) -> set[str]:
        """Bring every node up; finishes a partial earlier run. `first_boot`: each node's request, the
        steps `up` runs on it and its plan, for a backend that can have a new node apply it as it boots.
        Returns the nodes that did (this run made them, and proved it); `up` provisions the others."""

    @abstractmethod
    def destroy(self, log: Log) -> None:
        """Remove everything the lab made, also after an interrupted up or lost state."""

    @abstractmethod
    def status(self) -> dict[str, str]: ...

    @abstractmethod
    def node_argv(self, node: str, argv: Sequence[str], *, tty: bool = False) -> list[str]:
        """The host command that runs `argv` as root on `node`."""

    @abstractmethod
    def user_ssh_config(self) -> str:
        """An ssh_config with one Host per node, root login: plain `ssh -F FILE ovn-host-01` works."""

    def session_argv(self, node: str, argv: Sequence[str]) -> list[str]:
        """The host command of a provisioner session: it must keep the lab's lock (an inherited fd) open
        for as long as the session runs on the node."""
        return self.node_argv(node, argv)

    @abstractmethod
    def provisioner(self, node: str) -> list[str]:
        """argv prefix that runs `python3 -m provision` on the node (after `prepare`)."""

    @abstractmethod
    def labs_on_host(self) -> dict[str, str]:
        """Labs of this backend that exist on this host, by name: what of each is there (doctor)."""

    def changes(self) -> list[str]:
        """Host paths whose change may mean the lab's state changed: its databases and leases (files or
        directories) and its processes (/proc/PID, gone when one ends). The classroom's watcher stats them
        and re-reads the lab only then. Empty where the host cannot see them: the watcher re-reads on a
        timer."""
        return []

    def has_leftovers(self) -> bool:
        """Does anything of this lab exist (used when the lab's state was lost)?"""
        return self.state.exists()

    def remove_box(self, log: Log) -> None:
        """Remove the lab's base image too (teardown --box); nothing for backends without one."""

    def carried(self) -> list[tuple[str, str, Path]]:
        """What this backend builds rather than downloads, for a bundle to carry (labgen/bundle.py): (the
        bundle's part, a name, the file), each built now where missing. Nothing for backends that build none."""
        return []

    def after_install(self) -> None:
        """After the first provisioning stage (the vagrant backend switches to root ssh there)."""

    def prepare(self, node: str) -> None:
        """Make the provisioner available on the node."""

    def plan_extras(self, node: str) -> dict[str, str]:
        """What this backend's own provisioner steps need in a node's plan (the VMs' ssh key)."""
        return {}

    def render(self) -> Path:
        """Write the backend's description of the lab (a Vagrantfile) and check it; returns its path."""
        raise InputError(f"the {self.name} backend has no file to render", "invoke render --backend vagrant")

    def save_snapshot(self, name: str) -> None:
        """Freeze every node (only where `freezes`)."""

    def restore_snapshot(self, name: str) -> None:
        """Bring every node back to the frozen state (only where `freezes`)."""

    def ran(self, node: str) -> tuple[bool, str]:
        """`true` on the node: (it ran, why not). A VM that just booted or was restored answers only after
        a while; callers wait on this, bounded (gates.wait_for)."""
        r = self.run(node, ["true"], timeout=20)
        return r.ok, (r.stderr.strip() or f"exit {r.rc}")[-200:]

    def run(self, node: str, argv: Sequence[str], *, timeout: float = 60, input: str | None = None) -> Result:
        full = self.node_argv(node, argv)
        try:
            r = subprocess.run(full, input=input, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired as e:
            out = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
            return Result(tuple(argv), 124, out, f"timed out after {timeout:.0f} s")
        return Result(tuple(argv), r.returncode, r.stdout, r.stderr)
