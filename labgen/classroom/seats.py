"""Seats: where a trainee's lab lives. A SeatEngine makes, lists, runs commands in and removes seats; the
`accounts` engine gives each seat a Linux account of its own on this host, whose home holds its own copy
of lab.toml and its own `.lab/`, and whose lab is the rootless netns backend, brought up as that account
inside the seat's cgroup. (Another engine, e.g. one container per seat, fits behind the same interface.)"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

from ..errors import BackendFailed
from . import limits, runtime, sshd
from .config import Classroom
from .lxdhost import classrooms

MARK = "ovn-classroom"
# the seat's tasks.py: `invoke` typed in the home finds the project's tasks in the checkout
SHIM = """import importlib.util
import sys

sys.path.insert(0, {checkout!r})
spec = importlib.util.spec_from_file_location("ovn_lab_tasks", {checkout!r} + "/tasks.py")
tasks = importlib.util.module_from_spec(spec)
spec.loader.exec_module(tasks)
ns = tasks.ns
"""  # the accounts' GECOS: `<MARK> <prefix>`, so down removes only the classroom's


@dataclass(frozen=True)
class Seat:
    name: str
    number: int

    @staticmethod
    def of(room: Classroom, number: int) -> Seat:
        return Seat(f"{room.prefix}{number:03d}", number)


@dataclass(frozen=True)
class Ran:
    seat: str
    rc: int
    out: str
    err: str

    @property
    def ok(self) -> bool:
        return self.rc == 0

    def why(self) -> str:
        """The last line the command printed on stderr (a LabError's one line), else its exit status."""
        lines = [ln for ln in self.err.splitlines() if ln.strip()]
        return lines[-1].lstrip("✗ ").strip() if lines else f"exited {self.rc}"


class SeatEngine(ABC):
    """What the classroom needs of a place that holds seats."""

    placement = False  # whether it can place a seat on a machine named by `classroom.up --target`
    makes_at_once = False  # seats made side by side (accounts: useradd holds one lock on /etc/passwd)
    removes = "their accounts, homes, processes, limits and labs, its sshd"  # what `down` says it removed

    def __init__(self, room: Classroom, target: str | None = None):
        self.room = room
        self.target = target

    @abstractmethod
    def prepare(self) -> None:
        """Once per up, before any seat: what every seat shares (the code they run)."""

    @abstractmethod
    def existing(self) -> list[Seat]:
        """The classroom's seats on this host, in order."""

    @abstractmethod
    def create(self, seat: Seat) -> None:
        """Make the seat (idempotent): its account or container, home, lab.toml and limits."""

    @abstractmethod
    def run(self, seat: Seat, argv: list[str], timeout: float = 600, env: dict[str, str] | None = None) -> Ran:
        """Run argv as the seat, in its home and inside its limits."""

    @abstractmethod
    def remove(self, seat: Seat) -> None:
        """Remove the seat and everything of it: processes, lab, home, account, limits."""

    def open(self, seats: list[Seat], web_gid: int) -> None:
        """After the seats are made: what reaches them (the accounts engine's sshd, its hidepid)."""

    def close(self) -> None:
        """After the last seat is removed: what open() and prepare() made."""

    def reach(self, seat: Seat) -> tuple[str, int]:
        """Where ssh reaches the seat (as the seat's name, with its key): the address and port of its sshd."""
        return self.room.listen, self.room.ssh_port

    def answering(self) -> bool:
        """What reaches the seats runs (one sshd for all; per-seat ones are judged seat by seat)."""
        return True

    def where(self, seat: Seat) -> str:
        """The machine that holds the seat, for the dashboard."""
        return os.uname().nodename

    def terminal(self, seat: Seat) -> Ran:
        """The seat's tmux session answers through ssh, as the trainee's ssh and the web app reach it."""
        known = self.room.state / "known_hosts"
        argv = [*sshd.ssh_argv(self.room, seat.name, known, self.reach(seat)), "tmux has-session -t lab"]
        r = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
        return Ran(seat.name, r.returncode, r.stdout, f"its terminal does not answer: {r.stderr.strip()}")

    def invoke(self, seat: Seat, *args: str, timeout: float = 600) -> Ran:
        """`invoke ARGS` as the seat, with the seat's own lab.toml."""
        return self.run(seat, [self.python(), "-m", "invoke", *args], timeout=timeout)

    @abstractmethod
    def python(self) -> str:
        """The Python a seat runs the project with."""


class AccountsEngine(SeatEngine):
    """One Linux account per seat on this host: `<prefix>NNN`, home 0700, no password, no sudo. Reached
    through the classroom's own sshd; kept apart by /proc's hidepid and a cgroup each."""

    def open(self, seats: list[Seat], web_gid: int) -> None:
        if self.room.hidepid:
            if lxd := classrooms():  # under hidepid with gid=, LXD cannot start their containers
                raise BackendFailed(
                    f"LXD holds the classroom(s) {', '.join(lxd)} on this host; hidepid would stop LXD starting "
                    "their containers",
                    "`classroom.down` them, or set hidepid = false in [classroom]",
                )
            limits.hide_pids(self.room.state, web_gid)
        for s in seats:
            sshd.make_key(self.room, s.name)
        sshd.start(self.room, [s.name for s in seats], self.python())
        sshd.known_hosts(self.room, [self.reach(s) for s in seats])

    def answering(self) -> bool:
        return sshd.pid(self.room) is not None

    def close(self) -> None:
        if self.room.base.exists():
            sshd.stop(self.room)
            limits.restore_pids(self.room.state)
        limits.remove_parents(self.room.prefix)

    def bin_dir(self) -> Path:
        """The seats' commands: `invoke` with the seats' Python, the login of the classroom's sshd."""
        return self.room.base / "bin"

    def python(self) -> str:
        return runtime.python(self.room.base)

    def prepare(self) -> None:
        runtime.prepare(self.room.base)

    def existing(self) -> list[Seat]:
        mark = f"{MARK} {self.room.prefix}"
        seats = []
        for p in pwd.getpwall():
            number = p.pw_name.removeprefix(self.room.prefix)
            if p.pw_gecos == mark and number.isdigit() and p.pw_name != number:
                seats.append(Seat(p.pw_name, int(number)))
        return sorted(seats, key=lambda s: s.number)

    def home(self, seat: Seat) -> Path:
        return Path("/home") / seat.name

    def create(self, seat: Seat) -> None:
        home = self.home(seat)
        try:
            pw = pwd.getpwnam(seat.name)
        except KeyError:
            # "*": no password, yet not locked (sshd refuses a locked account); the key is the way in
            _root(
                [
                    "useradd",
                    "--create-home",
                    "--home-dir",
                    str(home),
                    "--shell",
                    "/bin/bash",
                    "--user-group",
                    "--password",
                    "*",
                    "--comment",
                    f"{MARK} {self.room.prefix}",
                    "--no-log-init",
                    seat.name,
                ]
            )
            pw = pwd.getpwnam(seat.name)
        if pw.pw_gecos != f"{MARK} {self.room.prefix}":
            raise BackendFailed(f"account {seat.name} exists and is not the classroom's", "pick another prefix")
        os.chmod(home, 0o700)
        files = {
            "lab.toml": Path(self.room.source).read_text(),
            # `invoke` in the home finds the project's tasks: this file loads the checkout's
            "tasks.py": SHIM.format(checkout=str(runtime.code_dir(self.room.base))),
            ".classroom.sh": f'export PATH="{self.bin_dir()}:$PATH" OVN_LAB_CONFIG="$HOME/lab.toml"\n',
        }
        for name, text in files.items():
            path = home / name
            if name != "lab.toml" or not path.exists():  # the trainee's edits of lab.toml stay
                path.write_text(text)
                os.chown(path, pw.pw_uid, pw.pw_gid)
        line = ". ~/.classroom.sh\n"
        for rc in (home / ".profile", home / ".bashrc"):  # login shells (ssh COMMAND, tmux), interactive ones
            if line not in (rc.read_text() if rc.exists() else ""):
                rc.write_text(line + (rc.read_text() if rc.exists() else ""))
                os.chown(rc, pw.pw_uid, pw.pw_gid)
        limits.create(self.room.prefix, seat.name, pw.pw_uid, self.room.memory, self.room.pids)

    def run(self, seat: Seat, argv: list[str], timeout: float = 600, env: dict[str, str] | None = None) -> Ran:
        pw = pwd.getpwnam(seat.name)
        environ = {
            "HOME": pw.pw_dir,
            "USER": seat.name,
            "LOGNAME": seat.name,
            "SHELL": "/bin/bash",
            "PATH": f"{self.bin_dir()}:/usr/sbin:/usr/bin:/sbin:/bin",
            "LANG": "C.UTF-8",
            "PYTHONDONTWRITEBYTECODE": "1",
            "TERM": "xterm-256color",
            "OVN_LAB_CONFIG": f"{pw.pw_dir}/lab.toml",
            **(env or {}),
        }
        prefix = self.room.prefix
        try:
            r = subprocess.run(
                ["setpriv", f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}", "--init-groups", "--", *argv],
                cwd=pw.pw_dir,
                env=environ,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
                preexec_fn=lambda: limits.join(prefix, seat.name),
            )
        except subprocess.TimeoutExpired:
            return Ran(seat.name, 124, "", f"timed out after {timeout:.0f} s")
        return Ran(seat.name, r.returncode, r.stdout, r.stderr)

    def remove(self, seat: Seat) -> None:
        try:
            pw = pwd.getpwnam(seat.name)
        except KeyError:
            pw = None
        if pw and pw.pw_gecos == f"{MARK} {self.room.prefix}":
            limits.kill(self.room.prefix, seat.name)
            kill_uid(pw.pw_uid)  # anything that left the cgroup (v2 logins)
            _root(["userdel", "--remove", seat.name], ok=(0, 6, 12))  # 12: home already gone
            shutil.rmtree(self.home(seat), ignore_errors=True)
        limits.remove(self.room.prefix, seat.name)


def kill_uid(uid: int, timeout: float = 10) -> None:
    """SIGKILL every process of the uid until /proc has none left (killed ones linger until reaped)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        left = [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit() and _owner(p) == uid]
        if not left:
            return
        for pid in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, 9)
        time.sleep(0.05)


def _owner(p: Path) -> int:
    try:
        return p.stat().st_uid
    except OSError:
        return -1


def _root(argv: list[str], ok: tuple[int, ...] = (0,)) -> None:
    r = subprocess.run(argv, capture_output=True, text=True, check=False)
    if r.returncode not in ok:
        raise BackendFailed(f"{argv[0]} {argv[-1]} exited {r.returncode}: {r.stderr.strip()}", "run as root")
