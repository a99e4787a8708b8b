"""The `[classroom]` table of lab.toml: the classroom's name (the seat accounts' prefix), its ports and the
limits of each seat. Checked here with the same Checker as the rest of lab.toml, every problem at once."""

from __future__ import annotations

import ipaddress
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..checker import Checker, did_you_mean, key
from ..errors import Issue, LabInvalid

# a Linux account name: the prefix plus up to 3 digits must stay well under 32 characters
PREFIX = re.compile(r"[a-z][a-z0-9]{0,15}")
KEYS: dict[str, tuple[type, Any]] = {
    "prefix": (str, "seat"),
    "listen": (str, "127.0.0.1"),  # the address the web app and the classroom's sshd listen on
    "web_port": (int, 8080),
    "ssh_port": (int, 2222),
    "memory": (int, 768),  # MiB per seat: a lab takes about 64
    "pids": (int, 1024),  # tasks per seat: a lab runs about 170 threads
    "hidepid": (bool, True),  # mount /proc with hidepid=2 while the classroom is up
}
MAX_SEATS = 999
BASE = Path("/var/lib/ovn-classroom")  # one directory per classroom, named after its prefix


@dataclass(frozen=True)
class Classroom:
    prefix: str
    listen: str
    web_port: int
    ssh_port: int
    memory: int
    pids: int
    hidepid: bool
    source: str  # the lab.toml each seat gets a copy of

    @property
    def base(self) -> Path:
        return BASE / self.prefix

    @property
    def state(self) -> Path:
        """0700, root's: tokens, join codes, keys, the session secret, the log."""
        return self.base / "state"

    @property
    def web_user(self) -> str:
        return f"{self.prefix}-web"


def load_classroom(path: str | Path) -> Classroom:
    """The `[classroom]` table of the lab.toml at `path` (every key has a default)."""
    source = str(Path(path).resolve())
    try:
        data = tomllib.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise LabInvalid(source, [Issue("(file)", f"cannot read: {e}", "pass --config PATH to a lab.toml")]) from e
    ck = Checker()
    table = data.get("classroom", {})
    if not isinstance(table, dict):
        raise LabInvalid(source, [Issue("classroom", "must be a table", "write it as [classroom]")])
    for name in table:
        if name not in KEYS:
            ck.bad(f"classroom.{key(name)}", "unknown key", did_you_mean(name, KEYS))
    values = {name: ck.get(table, "classroom", name, typ, default) for name, (typ, default) in KEYS.items()}
    if values["prefix"] is not None and not PREFIX.fullmatch(values["prefix"]):
        ck.bad("classroom.prefix", f"{values['prefix']!r} is not an account name", "use a-z then a-z/0-9, <= 16")
    for port in ("web_port", "ssh_port"):
        if values[port] is not None and not 1024 <= values[port] <= 65535:
            ck.bad(f"classroom.{port}", f"{values[port]} is out of range", "use a port from 1024 to 65535")
    if values["web_port"] is not None and values["web_port"] == values["ssh_port"]:
        ck.bad("classroom.ssh_port", "is the web port", "give the web app and sshd different ports")
    for limit, low in (("memory", 128), ("pids", 256)):
        if values[limit] is not None and values[limit] < low:
            ck.bad(f"classroom.{limit}", f"{values[limit]} is too small for a lab", f"use at least {low}")
    try:
        ipaddress.ip_address(values["listen"] or "")
    except ValueError:
        ck.bad("classroom.listen", f"{values['listen']!r} is not an IP address", 'e.g. listen = "127.0.0.1"')
    if ck.issues:
        raise LabInvalid(source, ck.issues)
    return Classroom(source=source, **values)
