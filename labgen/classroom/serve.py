"""`classroom.serve`: give the web app's account what it needs (the seats' keys, the join codes, the trainer
token, the session secret; in its own 0700 directory) and run the web app as that account, never as root."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import sys
from pathlib import Path

from ..errors import ClassroomNotUp
from ..load import load_lab
from ..ui import console
from ..workshop.exercises import EXERCISES
from . import runtime, sshd, tls
from .room import Room


def web_home(room: Room) -> Path:
    return room.room.base / "web"


def prepare(room: Room, port: int | None, https: bool = False) -> tuple[pwd.struct_passwd, Path]:
    c = room.room
    existing = room.engine.existing()
    seats = [s.name for s in existing]
    if not seats or not room.engine.answering():
        raise ClassroomNotUp(c.prefix)
    runtime.prepare(c.base)  # the web app runs here, as its account, whatever engine holds the seats
    pw = pwd.getpwnam(c.web_user)
    home = web_home(room)
    home.mkdir(mode=0o700, exist_ok=True)
    (home / "keys").mkdir(mode=0o700, exist_ok=True)
    for seat in seats:
        shutil.copyfile(sshd.private_key(c, seat), home / "keys" / seat)
    for name in ("join-codes.json", "trainer-token", "session-secret", "known_hosts"):
        shutil.copyfile(c.state / name, home / name)
    if https:
        made = tls.ensure(c)
        for name in ("ca.crt", "server.crt", "server.key"):
            shutil.copyfile(made / name, home / name)
    conf = {
        "prefix": c.prefix,
        "listen": c.listen,
        "web_port": port or c.web_port,
        "seats": seats,
        "reach": {s.name: room.engine.reach(s) for s in existing},  # [address, port] of the seat's sshd
        "where": {s.name: room.engine.where(s) for s in existing},  # the machine (cluster member) that holds it
        "nodes": list(load_lab(c.source).node_names),
        "exercises": sorted(EXERCISES),
        "tls": https,
    }
    (home / "config.json").write_text(json.dumps(conf))
    for path in [home, *home.rglob("*")]:
        os.chown(path, pw.pw_uid, pw.pw_gid)
        path.chmod(0o700 if path.is_dir() else 0o600)
    return pw, home


def serve(room: Room, port: int | None, https: bool = False) -> None:
    c = room.room
    https = https or c.tls
    pw, home = prepare(room, port, https)
    scheme = "https" if https else "http"
    console.print(
        f"classroom {c.prefix}: {scheme}://{tls.addresses(c)[0]}:{port or c.web_port}/ as the account "
        f"{c.web_user}; the trainer token is in {c.state / 'trainer-token'}; Ctrl-C stops it"
    )
    if https:
        console.print(f"its CA's SHA-256 fingerprint (on the cards): {tls.fingerprint(tls.tls_dir(c) / 'ca.crt')}")
    sys.stdout.flush()
    code = runtime.code_dir(c.base)
    env = {"PATH": "/usr/bin:/bin", "HOME": str(home), "PYTHONPATH": str(code), "PYTHONDONTWRITEBYTECODE": "1"}
    os.chdir(code)
    argv = ["setpriv", f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}", "--clear-groups", "--"]
    os.execvpe("setpriv", [*argv, runtime.python(c.base), "-m", "labgen.classroom.webserver", "--home", str(home)], env)
