"""The `[classroom]` table of lab.toml: the classroom's name (the seat accounts' prefix), its ports and the
limits of each seat. Checked here with the same Checker as the rest of lab.toml, every problem at once."""

from __future__ import annotations

import ipaddress
import tomllib
from dataclasses import dataclass
from pathlib import Path

from ..checker import Checker
from ..errors import Issue, LabInvalid

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
    cpus: int
    hidepid: bool
    engine: str
    tls: bool
    lxd_subnet: str  # the LXD bridge's subnet (scripts/setup --lxd)
    lxd_cluster_subnet: str  # the cluster's host-only bridge (lxdhost.MGMT)
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
    table = ck.table(data.get("classroom", {}), "classroom", "classroom")
    values = ck.values(table, "classroom")
    if values["web_port"] is not None and values["web_port"] == values["ssh_port"]:
        ck.bad("classroom.ssh_port", "is the web port", "give the web app and sshd different ports")
    try:
        ipaddress.ip_address(values["listen"] or "")
    except ValueError:
        ck.bad("classroom.listen", f"{values['listen']!r} is not an IP address", 'e.g. listen = "127.0.0.1"')
    if ck.issues:
        raise LabInvalid(source, ck.issues)
    nets = {k: str(values[k]) for k in ("lxd_subnet", "lxd_cluster_subnet")}
    if ipaddress.IPv4Network(nets["lxd_subnet"]).overlaps(ipaddress.IPv4Network(nets["lxd_cluster_subnet"])):
        raise LabInvalid(source, [Issue("classroom.lxd_cluster_subnet", "overlaps classroom.lxd_subnet",
                                        "give the cluster's bridge a subnet of its own")])  # fmt: skip
    return Classroom(source=source, **values | nets)
