"""The `lxd` seat engine: each seat an unprivileged LXD system container (the seat image, seatimage.py) in
an LXD project of the classroom's own, restricted to what seats need (containers with nesting, the
classroom's pool and bridge). Inside, the same rootless lab as the `accounts` engine, run as the
container's ordinary user `trainee`, from a copy of the project and a venv of its dependencies.

LXD places each seat on a cluster member (`target` pins one); memory and processes per seat come from
lab.toml's `[classroom]` table, as the profile's limits. Everything is asked of LXD through `lxc`, with
argv lists; state is read through `lxc query` (its REST API as JSON)."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tarfile
import time
from pathlib import Path

from ..errors import BackendFailed
from . import runtime
from .lxdhost import BRIDGE, IMAGE, POOL, query
from .seats import SHIM, Ran, Seat, SeatEngine

USER, UID = "trainee", 1000
HOME = f"/home/{USER}"
CODE = "/opt/ovn-lab"  # the project inside a seat, and its venv
PYTHON = f"{CODE}/venv/bin/python3"
DEPS = ("invoke", "jinja2", "tenacity", "rich")  # what a seat's lab runs (no web app, no libvirt in a seat)
PATH = f"{CODE}/venv/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def lxc(*argv: str, input: str | bytes | None = None, timeout: float = 300, check: bool = True) -> Ran:
    r = subprocess.run(["lxc", *argv], input=input, capture_output=True, timeout=timeout, check=False)
    out, err = r.stdout.decode(errors="replace"), r.stderr.decode(errors="replace")
    if check and r.returncode:
        raise BackendFailed(f"lxc {' '.join(argv[:4])} failed: {err.strip()[-300:]}", "sudo invoke doctor")
    return Ran(argv[0], r.returncode, out, err)


class LxdEngine(SeatEngine):
    """One container per seat, named like the seat, in the LXD project `ovn-classroom-<prefix>`."""

    ssh = False  # not yet: its seats are reached with `lxc exec`, which only the trainer (root) has

    @property
    def project(self) -> str:
        return f"ovn-classroom-{self.room.prefix}"

    def _p(self, *argv: str) -> tuple[str, ...]:
        return (*argv, "--project", self.project)

    def python(self) -> str:
        return PYTHON

    def prepare(self) -> None:
        """The project (restricted), its default profile (nesting, the limits, the pool and bridge), the
        seat image, and a bundle of the project's code and wheels that each new seat gets."""
        from .seatimage import ensure_imported

        if query(f"/1.0/projects/{self.project}") is None:
            lxc("project", "create", self.project,
                "-c", "features.images=false",  # the seat image, imported once, from the default project
                "-c", "features.profiles=true", "-c", "restricted=true",
                "-c", "restricted.containers.nesting=allow")  # fmt: skip
        profile = {
            "config": {
                "security.nesting": "true",  # the lab's keeper mounts its own /proc (lxcfs covers the container's)
                "limits.memory": f"{self.room.memory}MiB",
                "limits.processes": str(self.room.pids),
            },
            "devices": {
                "root": {"path": "/", "pool": POOL, "type": "disk"},
                "eth0": {"name": "eth0", "network": BRIDGE, "type": "nic"},
            },
        }
        lxc(*self._p("profile", "edit", "default"), input=json.dumps(profile))
        ensure_imported("default")
        self._bundle()

    def _bundle(self) -> Path:
        """The project's code and its dependencies' wheels, for `pip install --no-index` in each seat."""
        d = self.room.base / "lxd"
        wheels = d / "wheels"
        if not any(wheels.glob("*.whl")):
            wheels.mkdir(parents=True, exist_ok=True)
            subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--only-binary=:all:", "--dest",
                            str(wheels), *DEPS], check=True, capture_output=True, timeout=600)  # fmt: skip
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w:gz") as tar:
            for part in runtime.PARTS:
                tar.add(runtime.CHECKOUT / part, arcname=part, filter=_no_cache)
            tar.add(wheels, arcname="wheels")
        (d / "code.tar.gz").write_bytes(buf.getvalue())
        return d / "code.tar.gz"

    def existing(self) -> list[Seat]:
        names = query(f"/1.0/instances?project={self.project}") or []
        seats = []
        for url in names:
            name = url.rsplit("/", 1)[-1]
            number = name.removeprefix(self.room.prefix)
            if number.isdigit() and name != number:
                seats.append(Seat(name, int(number)))
        return sorted(seats, key=lambda s: s.number)

    def create(self, seat: Seat) -> None:
        if query(f"/1.0/instances/{seat.name}?project={self.project}") is None:
            lxc(*self._p("launch", IMAGE, seat.name))
        deadline = time.monotonic() + 120
        while not lxc(*self._p("exec", seat.name, "--", "id", "-u"), check=False).ok:  # its init answers
            if time.monotonic() > deadline:
                raise BackendFailed(f"seat {seat.name}: its container does not answer `lxc exec`", "lxc info")
            time.sleep(0.5)
        if not self._root(seat, ["id", USER]).ok:
            self._root(seat, ["useradd", "--create-home", "--uid", str(UID), "--shell", "/bin/bash", USER], True)
        if not self._root(seat, ["test", "-x", PYTHON]).ok:
            bundle = (self.room.base / "lxd" / "code.tar.gz").read_bytes()
            self._root(seat, ["mkdir", "-p", CODE], True)
            lxc(*self._p("exec", seat.name, "--", "tar", "-xzf", "-", "-C", CODE), input=bundle)
            self._root(seat, ["python3", "-m", "venv", f"{CODE}/venv"], True)
            self._root(seat, [PYTHON, "-m", "pip", "install", "-q", "--no-index", "--find-links",
                              f"{CODE}/wheels", *DEPS], True)  # fmt: skip
        files = {
            "lab.toml": Path(self.room.source).read_text(),
            "tasks.py": SHIM.format(checkout=CODE),
            ".classroom.sh": f'export PATH="{PATH}" OVN_LAB_CONFIG="$HOME/lab.toml"\n',
        }
        for name, text in files.items():  # as the trainee: theirs; tee takes the path as an argument
            if name != "lab.toml" or not self.run(seat, ["test", "-e", f"{HOME}/lab.toml"]).ok:
                self._as(seat, ["tee", f"{HOME}/{name}"], text)
        if not self.run(seat, ["grep", "-q", "classroom.sh", f"{HOME}/.bashrc"]).ok:
            self._as(seat, ["tee", "-a", f"{HOME}/.bashrc"], ". ~/.classroom.sh\n")

    def _as(self, seat: Seat, argv: list[str], text: str) -> None:
        r = lxc(*self._p("exec", seat.name, "--user", str(UID), "--group", str(UID), "--", *argv), input=text,
                check=False)  # fmt: skip
        if not r.ok:
            raise BackendFailed(f"seat {seat.name}: {' '.join(argv)} failed: {r.why()}", "lxc info " + seat.name)

    def _root(self, seat: Seat, argv: list[str], check: bool = False) -> Ran:
        return lxc(*self._p("exec", seat.name, "--", *argv), check=check)

    def run(self, seat: Seat, argv: list[str], timeout: float = 600, env: dict[str, str] | None = None) -> Ran:
        environ = {"HOME": HOME, "USER": USER, "LOGNAME": USER, "PATH": PATH, "LANG": "C.UTF-8",
                   "TERM": "xterm-256color", "OVN_LAB_CONFIG": f"{HOME}/lab.toml", **(env or {})}  # fmt: skip
        flags = [f"--env={k}={v}" for k, v in environ.items()]
        try:
            r = lxc(*self._p("exec", seat.name, "--user", str(UID), "--group", str(UID), "--cwd", HOME, *flags,
                             "--", *argv), timeout=timeout, check=False)  # fmt: skip
        except subprocess.TimeoutExpired:
            return Ran(seat.name, 124, "", f"timed out after {timeout:.0f} s")
        return Ran(seat.name, r.rc, r.out, r.err)

    def remove(self, seat: Seat) -> None:
        if query(f"/1.0/instances/{seat.name}?project={self.project}") is not None:
            lxc(*self._p("delete", "--force", seat.name))

    def close(self) -> None:
        """After the last seat: the project and its profile (images stay in the default project, cached)."""
        if query(f"/1.0/projects/{self.project}") is not None:
            lxc("project", "delete", self.project)


def _no_cache(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
    return None if "__pycache__" in info.name or info.name.endswith(".pyc") else info
