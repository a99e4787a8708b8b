"""The `lxd` seat engine: each seat an unprivileged LXD system container (the seat image, seatimage.py) in
an LXD project of the classroom's own, restricted to what seats need (containers with nesting, a proxy
device for ssh, the classroom's pool and bridge). Inside, the same rootless lab as the `accounts` engine, run
as the container's ordinary user named like the seat, from a copy of the project and its dependencies.

Seats are reached the way account seats are: ssh with the seat's key, as the seat, forced into its tmux
session. Each container runs an sshd of the classroom on its own loopback, and a proxy device gives it a
port on the member that holds it (ssh_port + the seat's number). The web app so needs no access to LXD.

LXD places each seat on a cluster member (`target` pins one); memory, CPUs and processes per seat come from
lab.toml's `[classroom]` table, as the project profile's limits. Everything is asked of LXD through `lxc`,
with argv lists; state is read through `lxc query` (its REST API as JSON)."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import ipaddress
import json
import shutil
import subprocess
import threading
import time
import urllib.parse
from pathlib import Path

from ..errors import BackendFailed, InputError, visible
from . import limits, lxdfiles, sshd
from .lxdfiles import CODE, PYTHON, SITE
from .lxdhost import BRIDGE, IMAGE, POOL, classrooms, query
from .seats import SHIM, Ran, Seat, SeatEngine

LAUNCH = threading.Lock()

UID = 1000  # the seat's user in its container, named like the seat
PATH = f"{CODE}/bin:{CODE}/venv/bin:/usr/sbin:/usr/bin:/sbin:/bin"
ETC = Path("/etc/ovn-classroom")  # in the seat: its sshd's config, host key and the seat's public key
UNIT = "ovn-classroom-sshd.service"
UNIT_TEXT = f"""[Unit]
Description=the classroom's sshd of this seat (keys only, the seat only)
After=network.target

[Service]
ExecStart=/usr/sbin/sshd -D -f {ETC}/sshd_config -E /var/log/ovn-classroom-sshd.log
ExecReload=/bin/kill -HUP $MAINPID
# its sessions (the trainee's terminal, the tmux server a login started) outlive a restart of sshd
KillMode=process
RuntimeDirectory=sshd
RuntimeDirectoryPreserve=yes
Restart=always

[Install]
WantedBy=multi-user.target
"""
PROFILE_D = f'export PATH="{CODE}/bin:{CODE}/venv/bin:$PATH" OVN_LAB_CONFIG="$HOME/lab.toml"\n'


def lxc(*argv: str, input: str | bytes | None = None, timeout: float = 300, check: bool = True) -> Ran:
    data = input.encode() if isinstance(input, str) else input
    try:
        r = subprocess.run(["lxc", *argv], input=data, capture_output=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as e:
        if check:
            raise BackendFailed(f"lxc {' '.join(argv[:6])}: {e}", "sudo invoke doctor") from e
        # unchecked, a timeout is an answer like any other: a seat whose member is gone does not answer
        return Ran(argv[0], 124, "", f"timed out after {timeout:.0f} s")
    except OSError as e:
        raise BackendFailed(f"lxc {' '.join(argv[:6])}: {e}", "sudo invoke doctor") from e
    out, err = r.stdout.decode(errors="replace"), r.stderr.decode(errors="replace")
    if check and r.returncode:
        raise BackendFailed(f"lxc {' '.join(argv[:6])} failed: {err.strip()[-300:]}", "sudo invoke doctor")
    return Ran(argv[0], r.returncode, out, err)


class LxdEngine(SeatEngine):
    """One container per seat, named like the seat, in the LXD project `ovn-classroom-<prefix>`."""

    placement = True  # `classroom.up --target MEMBER` pins new seats to a cluster member
    makes_at_once = True  # a seat is made mostly by waiting on its container: several side by side
    removes = "their containers and labs, its LXD project and profile"

    @property
    def project(self) -> str:
        return f"ovn-classroom-{self.room.prefix}"

    def _p(self, *argv: str) -> tuple[str, ...]:
        return ("--project", self.project, *argv)  # first: after `exec NAME --` it would be the command's

    def python(self) -> str:
        return PYTHON

    def prepare(self) -> None:
        """The project (restricted), its default profile (nesting, the limits, the pool and bridge), the
        seat image, and a bundle of the project's code and packages that each new seat gets."""
        from .seatimage import ensure_imported

        if limits.hidden_but_to_a_group():  # hidepid alone is fine: with gid=, lxc's start fails (seen on LXD 5.0)
            raise BackendFailed(
                "/proc is mounted with hidepid and gid= (an accounts classroom on this server): LXD cannot "
                "start containers under it",
                "`classroom.down` that classroom, or set hidepid = false in its [classroom] and bring it up again",
            )
        top = self.room.ssh_port + 999
        if self.room.ssh_port <= self.room.web_port <= top:
            raise InputError(
                f"classroom.web_port {self.room.web_port} is among the lxd seats' ssh ports "
                f"({self.room.ssh_port + 1} to {top})",
                "move web_port or ssh_port",
            )
        if query(f"/1.0/projects/{self.project}") is None:
            lxc("project", "create", self.project,
                "-c", "features.images=false",  # the seat image, imported once, from the default project
                "-c", "features.profiles=true", "-c", "restricted=true",
                "-c", "restricted.containers.nesting=allow",  # the lab's keeper mounts its own /proc
                "-c", "restricted.containers.privilege=isolated",  # each seat its own range of host ids
                "-c", "restricted.devices.proxy=allow")  # fmt: skip  # each seat's ssh port
        config = {
            "security.nesting": "true",  # the lab's keeper mounts its own /proc (lxcfs covers the container's)
            "security.idmap.isolated": "true",  # no two seats share a host uid
            "limits.memory": f"{self.room.memory}MiB",
            "limits.processes": str(self.room.pids),
        }
        if self.room.cpus:
            config["limits.cpu"] = str(self.room.cpus)
        profile = {
            "config": config,
            "devices": {
                "root": {"path": "/", "pool": POOL, "type": "disk"},
                "eth0": {"name": "eth0", "network": BRIDGE, "type": "nic"},
            },
        }
        lxc(*self._p("profile", "edit", "default"), input=json.dumps(profile))
        ensure_imported("default")
        sshd.host_key(self.room)
        lxdfiles.bundle(self.room.base / "lxd-code.tar")
        _ = self._bundle  # read once, before seats are made side by side

    @functools.cached_property
    def _bundle(self) -> tuple[bytes, str]:
        """The bundle prepare() made, and its digest: read once for all the seats of an up."""
        code = (self.room.base / "lxd-code.tar").read_bytes()
        return code, hashlib.sha256(code).hexdigest()

    def existing(self) -> list[Seat]:
        if not shutil.which("lxc"):  # no LXD on this host (an up that failed at once): it holds no seat
            return []
        names = query(f"/1.0/instances?project={self.project}") or []
        seats = []
        for url in names:
            name = urllib.parse.unquote(url.rsplit("/", 1)[-1].split("?")[0])
            number = name.removeprefix(self.room.prefix)
            if number.isdigit() and name != number:
                seats.append(Seat(name, int(number)))
        return sorted(seats, key=lambda s: s.number)

    def where(self, seat: Seat) -> str:
        # from the list, which the database answers: GET of one instance asks its member, and one that is
        # gone fails it ("Missing event connection with target cluster member")
        found = query(f"/1.0/instances?recursion=1&project={self.project}") or []
        return next((str(i.get("location") or "?") for i in found if i.get("name") == seat.name), "?")

    def reach(self, seat: Seat) -> tuple[str, int]:
        """The proxy's port on the member that holds the seat: on this server, the classroom's address;
        on another member, that member's cluster address."""
        where = self.where(seat)
        here = (query("/1.0") or {}).get("environment", {}).get("server_name")
        member = query(f"/1.0/cluster/members/{urllib.parse.quote(where, safe='')}") if where != "?" else None
        host = urllib.parse.urlsplit((member or {}).get("url", "")).hostname or self.room.listen
        with contextlib.suppress(ValueError):
            if where == here or ipaddress.ip_address(host).is_loopback:
                host = self.room.listen
        return host, self.room.ssh_port + seat.number

    def create(self, seat: Seat) -> None:
        inst = query(f"/1.0/instances/{seat.name}?project={self.project}")
        # one launch at a time: LXD 5.0 given two at once maps a container's ids outside root's subuid range
        # (newuidmap: "uid range [0-65536) -> [196608-262144) not allowed"); the rest of a seat goes side by side
        with LAUNCH:
            if inst is None:
                lxc(*self._p("launch", IMAGE, seat.name, *(["--target", self.target] if self.target else [])))
            elif inst.get("status") != "Running":  # after a reboot of its member, or its init died
                lxc(*self._p("start", seat.name))
        deadline = time.monotonic() + 120
        while not (r := self._root(seat, ["id", "-u"])).ok:  # its init answers
            state = query(f"/1.0/instances/{seat.name}/state?project={self.project}") or {}
            if state.get("status") == "Stopped":  # its init exited: say why now, not after the deadline
                log = lxc(*self._p("console", seat.name, "--show-log"), check=False).out.strip().splitlines()
                # systemd's first failure with its reason ("...: Too many open files"), else the last line
                why = next((ln for ln in log if "Failed" in ln and ": " in ln), log[-1] if log else "(no output)")
                raise BackendFailed(f"seat {seat.name}: its container stopped as it started: {visible(why)}",
                                    f"lxc console --show-log --project {self.project} {seat.name}")  # fmt: skip
            if time.monotonic() > deadline:
                raise BackendFailed(f"seat {seat.name}: its container does not answer `lxc exec`: {r.why()}",
                                    f"lxc info --project {self.project} {seat.name}")  # fmt: skip
            time.sleep(0.5)
        home = f"/home/{seat.name}"
        if not self._root(seat, ["id", seat.name]).ok:
            self._root(seat, ["useradd", "--create-home", "--uid", str(UID), "--user-group", "--password", "*",
                              "--shell", "/bin/bash", seat.name], True)  # fmt: skip
        code, digest = self._bundle
        if self._root(seat, ["cat", f"{CODE}/bundle.sha256"]).out.strip() != digest:  # new, changed or half-done
            if not self._root(seat, ["test", "-x", PYTHON]).ok:
                self._root(seat, ["mkdir", "-p", f"{CODE}/venv"], True)
                self._root(seat, ["python3", "-m", "venv", "--without-pip", f"{CODE}/venv"], True)
            self._root(seat, ["tar", "-xf", "-", "-C", CODE, "--strip-components=1", "code"], True, code)
            self._root(seat, ["tar", "-xf", "-", "-C", SITE, "--strip-components=1", "site"], True, code)
            self._root(seat, ["tee", f"{CODE}/bundle.sha256"], True, digest.encode())
        key = sshd.host_key(self.room)
        config = sshd.options_text(22, "127.0.0.1", ETC, ETC / "keys", [seat.name], Path(CODE) / "bin" / "login")
        etc = {
            f"{ETC}/sshd_config": (config, 0o644, 0),
            f"{ETC}/ssh_host_ed25519_key": (key.read_text(), 0o600, 0),
            f"{ETC}/ssh_host_ed25519_key.pub": (key.with_suffix(".pub").read_text(), 0o644, 0),
            f"{ETC}/keys/{seat.name}.pub": (self._public_key(seat), 0o644, 0),
            f"/etc/systemd/system/{UNIT}": (UNIT_TEXT, 0o644, 0),
            "/etc/profile.d/ovn-classroom.sh": (PROFILE_D, 0o644, 0),
            "/etc/hostname": (f"{seat.name}\n", 0o644, 0),  # the image's own would name every seat alike
            "/etc/hosts": (f"127.0.0.1 localhost\n127.0.1.1 {seat.name}\n", 0o644, 0),
            f"{home}/tasks.py": (SHIM.format(checkout=CODE), 0o644, UID),
        }
        if not self._root(seat, ["test", "-e", f"{home}/lab.toml"]).ok:  # the trainee's edits of it stay
            etc[f"{home}/lab.toml"] = (Path(self.room.source).read_text(), 0o644, UID)
        self._root(seat, ["tar", "-xf", "-", "-C", "/"], True, lxdfiles.tar_files(etc))
        self._root(seat, ["hostname", seat.name], True)
        self._root(seat, ["systemctl", "daemon-reload"], True)
        self._root(seat, ["systemctl", "enable", "--quiet", UNIT], True)
        self._root(seat, ["systemctl", "reload-or-restart", UNIT], True)  # a running sshd rereads its config
        host, port = self.reach(seat)
        devices = (inst or {}).get("devices", {})  # its own devices: launch and start add none
        listen = f"listen=tcp:{host}:{port}"
        if "ssh" not in devices:
            lxc(*self._p("config", "device", "add", seat.name, "ssh", "proxy", listen, "connect=tcp:127.0.0.1:22",
                         "bind=host"))  # fmt: skip
        elif devices["ssh"].get("listen") != listen.removeprefix("listen="):  # listen changed, or it moved
            lxc(*self._p("config", "device", "set", seat.name, "ssh", listen))

    def _public_key(self, seat: Seat) -> str:
        sshd.make_key(self.room, seat.name)
        return (sshd.keys_dir(self.room) / f"{seat.name}.pub").read_text()

    def open(self, seats: list[Seat], web_gid: int) -> None:
        sshd.known_hosts(self.room, [self.reach(s) for s in seats])

    def _root(self, seat: Seat, argv: list[str], check: bool = False, data: bytes | None = None) -> Ran:
        r = lxc(*self._p("exec", seat.name, "--", *argv), input=data, check=False)
        if check and not r.ok:
            raise BackendFailed(f"seat {seat.name}: {' '.join(argv[:3])} failed: {r.why()}",
                                f"lxc info --project {self.project} {seat.name}")  # fmt: skip
        return r

    def run(self, seat: Seat, argv: list[str], timeout: float = 600, env: dict[str, str] | None = None) -> Ran:
        home = f"/home/{seat.name}"
        environ = {"HOME": home, "USER": seat.name, "LOGNAME": seat.name, "SHELL": "/bin/bash", "PATH": PATH,
                   "LANG": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1", "TERM": "xterm-256color",
                   "OVN_LAB_CONFIG": f"{home}/lab.toml", **(env or {})}  # fmt: skip
        flags = [f"--env={k}={v}" for k, v in environ.items()]
        r = lxc(*self._p("exec", seat.name, "--user", str(UID), "--group", str(UID), "--cwd", home, *flags,
                         "--", *argv), timeout=timeout, check=False)  # fmt: skip
        return Ran(seat.name, r.rc, r.out, r.err)

    def remove(self, seat: Seat) -> None:
        if query(f"/1.0/instances/{seat.name}?project={self.project}") is not None:
            lxc(*self._p("delete", "--force", seat.name))

    def close(self) -> None:
        """After the last seat: the project and its profile, and the seat image in LXD unless another
        classroom's seats use it (its built file stays cached, and the next `up` imports it again)."""
        if not shutil.which("lxc"):
            return
        if query(f"/1.0/projects/{self.project}") is not None:
            lxc("project", "delete", self.project)
        others = classrooms()
        image = query(f"/1.0/images/aliases/{IMAGE}")
        if image and not others:
            lxc("image", "delete", image["target"])
