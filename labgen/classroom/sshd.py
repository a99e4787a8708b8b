"""The classroom's own sshd: its own port and host key, only its seats, keys only, each login forced into the
seat's tmux session (login.py). The system's sshd and /etc/ssh are never touched."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

from ..errors import BackendFailed
from . import limits
from .config import Classroom

SSHD = "/usr/sbin/sshd"


def keys_dir(room: Classroom) -> Path:
    """The seats' public keys: root's and readable, as sshd's StrictModes wants (it reads them as the seat)."""
    return room.base / "keys"


def private_key(room: Classroom, seat: str) -> Path:
    return room.state / "keys" / seat


def make_key(room: Classroom, seat: str) -> None:
    key = private_key(room, seat)
    if not key.exists():
        key.parent.mkdir(mode=0o700, exist_ok=True)
        _keygen(key, f"{seat}@{room.prefix}")
    keys_dir(room).mkdir(mode=0o755, exist_ok=True)
    pub = keys_dir(room) / f"{seat}.pub"
    pub.write_text(key.with_suffix(".pub").read_text())
    pub.chmod(0o644)


def _keygen(path: Path, comment: str) -> None:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)], check=True, capture_output=True
    )


def install_login(room: Classroom, python: str) -> Path:
    """The ForceCommand, at a path of fixed characters (sshd passes it to the seat's shell)."""
    bin_dir = room.base / "bin"
    bin_dir.mkdir(mode=0o755, exist_ok=True)
    login = bin_dir / "login"
    login.write_text(f"#!{python}\n" + (Path(__file__).parent / "login.py").read_text())
    login.chmod(0o755)
    cgroups = [str(d / "{seat}" / "cgroup.procs") for d in limits.parent_dirs(room.prefix)]
    (bin_dir / "login.json").write_text(json.dumps({"cgroups": cgroups}))
    return login


def config_text(room: Classroom, seats: list[str], login: Path) -> str:
    state = room.state
    return options_text(room.ssh_port, room.listen, state, keys_dir(room), seats, login)


def options_text(port: int, listen: str, state: Path, keys: Path, seats: list[str], login: Path) -> str:
    """An sshd of the classroom: `state` holds its host key and pid file, `keys` the seats' public keys."""
    return "\n".join(
        [
            "# the classroom's own sshd (written by classroom.up; removed by classroom.down)",
            f"Port {port}",
            f"ListenAddress {listen}",
            f"HostKey {state / 'ssh_host_ed25519_key'}",
            f"PidFile {state / 'sshd.pid'}",
            f"AuthorizedKeysFile {keys}/%u.pub",
            f"AllowUsers {' '.join(seats)}",
            "AuthenticationMethods publickey",
            "PubkeyAuthentication yes",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "PermitRootLogin no",
            "UsePAM no",
            "StrictModes yes",
            "PermitUserRC no",
            "PermitUserEnvironment no",
            "AllowTcpForwarding no",
            "AllowStreamLocalForwarding no",
            "AllowAgentForwarding no",
            "X11Forwarding no",
            "PermitTunnel no",
            "PrintMotd no",
            "PrintLastLog no",
            f"ForceCommand {login}",
            # a room logs in at once (the web app's terminals and watchers, everyone again after the Wi-Fi
            # dropped): sshd's default drops unauthenticated connections beyond 10 at a time
            f"MaxStartups {4 * len(seats) + 10}",
            "",
        ]
    )


def host_key(room: Classroom) -> Path:
    """The classroom's host key, one for every sshd of it (the web app's known_hosts names it)."""
    key = room.state / "ssh_host_ed25519_key"
    if not key.exists():
        _keygen(key, f"classroom {room.prefix}")
    return key


def pid(room: Classroom) -> int | None:
    try:
        p = int((room.state / "sshd.pid").read_text())
        os.kill(p, 0)
        return p
    except (OSError, ValueError):
        return None


def start(room: Classroom, seats: list[str], python: str) -> None:
    """Start the sshd, or have the running one read its new AllowUsers (seats added)."""
    host_key(room)
    login = install_login(room, python)
    conf = room.state / "sshd_config"
    conf.write_text(config_text(room, seats, login))
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege separation directory
    test = subprocess.run([SSHD, "-t", "-f", str(conf)], capture_output=True, text=True, check=False)
    if test.returncode:
        raise BackendFailed(f"sshd -t -f {conf}: {test.stderr.strip()}", "see the config it names")
    running = pid(room)
    if running:
        os.kill(running, signal.SIGHUP)
        return
    r = subprocess.run([SSHD, "-f", str(conf), "-E", str(room.state / "sshd.log")], capture_output=True, text=True)
    if r.returncode:
        raise BackendFailed(f"sshd did not start: {r.stderr.strip()}", f"see {room.state / 'sshd.log'}")


def stop(room: Classroom) -> None:
    running = pid(room)
    if not running:
        return
    os.kill(running, signal.SIGTERM)
    for _ in range(100):
        if pid(room) is None:
            return
        time.sleep(0.05)
    os.kill(running, signal.SIGKILL)


def ssh_argv(room: Classroom, seat: str, known_hosts: Path, reach: tuple[str, int]) -> list[str]:
    """ssh to the seat where its engine says it answers, with the seat's key (the way the web app reaches it)."""
    return ["ssh", *to_seat(seat, private_key(room, seat), known_hosts, reach)]


def to_seat(seat: str, key: Path, known_hosts: Path, reach: tuple[str, int]) -> list[str]:
    """ssh's options and destination for a seat: its key only, its sshd's host key only, never a prompt."""
    host, port = reach
    return [
        "-p", str(port), "-i", str(key), "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes",
        "-o", f"UserKnownHostsFile={known_hosts}", "-o", "StrictHostKeyChecking=yes", f"{seat}@{host}",
    ]  # fmt: skip


def known_hosts(room: Classroom, reaches: list[tuple[str, int]]) -> Path:
    """The classroom's host key, for every address and port its seats answer on."""
    path = room.state / "known_hosts"
    pub = (room.state / "ssh_host_ed25519_key.pub").read_text().split()
    path.write_text("".join(f"[{host}]:{port} {pub[0]} {pub[1]}\n" for host, port in sorted(set(reaches))))
    return path
