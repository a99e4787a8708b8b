"""lab.toml -> validated `Lab`. Every problem is reported at once, one line each, with key path and fix."""

from __future__ import annotations

import functools
import stat
import tomllib
from pathlib import Path
from typing import Any

from . import tables
from .checker import Checker
from .errors import Issue, LabInvalid, visible
from .model import Lab, Ovn, Underlay, Vagrant

MAX_BYTES = 1 << 20


def load_lab(path: str | Path) -> Lab:
    """Parse and validate lab.toml; raise LabInvalid listing every problem."""
    source = str(path)

    def bad(where: str, msg: str, fix: str) -> LabInvalid:
        return LabInvalid(source, [Issue(where, msg, fix)])

    try:
        st = Path(path).stat()
        if not stat.S_ISREG(st.st_mode):  # a FIFO would hang the read, /dev/zero fill the memory
            raise bad("(file)", "is not a regular file", "pass --config PATH to a lab.toml")
        if st.st_size > MAX_BYTES:
            raise bad(
                "(file)", f"is {st.st_size} bytes, more than a lab.toml needs", "pass --config PATH to a lab.toml"
            )
        raw = Path(path).read_bytes()[:MAX_BYTES]
    except OSError as e:
        raise bad("(file)", f"cannot read: {e.strerror}", "pass --config PATH to a lab.toml") from e
    return _parsed(source, raw)


@functools.lru_cache(maxsize=8)
def _parsed(source: str, raw: bytes) -> Lab:
    """The same text is parsed once: a task that changes the lab reads lab.toml for its lock, then to run."""

    def bad(where: str, msg: str, fix: str) -> LabInvalid:
        return LabInvalid(source, [Issue(where, msg, fix)])

    try:
        data = tomllib.loads(raw.decode())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise bad("(syntax)", str(e), "see https://toml.io for the syntax") from e
    except RecursionError:
        raise bad("(syntax)", "nested too deeply", "a lab.toml has tables two or three levels deep") from None
    return validate(data, source)


def validate(data: dict[str, Any], source: str = "lab.toml") -> Lab:
    checker = Checker()
    checker.table(data, "", "")

    lab_t = checker.table(data.get("lab", {}), "lab", "lab")
    name = checker.get(lab_t, "lab", "lab.name")
    backend = checker.get(lab_t, "lab", "lab.backend")

    ul_t = checker.table(data.get("underlay", {}), "underlay", "underlay")
    underlay = checker.get(ul_t, "underlay", "underlay.subnet")
    mtu = checker.get(ul_t, "underlay", "underlay.mtu")
    nic_name = checker.get(ul_t, "underlay", "underlay.nic_name")

    ovn_t = checker.table(data.get("ovn", {}), "ovn", "ovn")
    transport = checker.get(ovn_t, "ovn", "ovn.transport")
    checker.values(checker.table(data.get("classroom", {}), "classroom", "classroom"), "classroom")  # validate too

    v_t = checker.table(data.get("vagrant", {}), "vagrant", "vagrant")
    accel = checker.get(v_t, "vagrant", "vagrant.accel")
    memory = checker.get(v_t, "vagrant", "vagrant.memory")
    cpus = checker.get(v_t, "vagrant", "vagrant.cpus")
    box = checker.get(v_t, "vagrant", "vagrant.box")
    mgmt = checker.get(v_t, "vagrant", "vagrant.management_subnet")
    if mgmt and underlay and mgmt.overlaps(underlay):
        checker.bad("vagrant.management_subnet", f"{mgmt} overlaps underlay.subnet {underlay}", "pick another free /24")

    nodes = tables.nodes(checker, data, underlay, name or "lab")
    switches = tables.switches(checker, data, underlay, mgmt)
    ports = tables.ports(checker, data, nodes, switches, nic_name or "")

    if checker.issues:
        raise LabInvalid(source, checker.issues)
    return Lab(
        name=name,
        source=source,
        backend=backend,
        underlay=Underlay(str(underlay), mtu, nic_name),
        vagrant=Vagrant(box, accel, memory, cpus, str(mgmt)),
        nodes=tuple(nodes),
        switches=tuple(switches),
        ports=tuple(ports),
        ovn=Ovn(transport),
    )


def validate_file(config: str | Path) -> None:
    """`invoke validate`: check a lab.toml and say what it describes; nothing is started."""
    lab = load_lab(config)
    hosts = ", ".join(f"{n.name} {n.ip}" + (" (central)" if n.central else "") for n in lab.nodes)

    def count(n: int, what: str) -> str:
        return f"1 {what}" if n == 1 else f"{n} {what}{'es' if what.endswith('h') else 's'}"

    switches, ports = count(len(lab.switches), "switch"), count(len(lab.ports), "port")
    print(f"{visible(lab.source)}: valid: {count(len(lab.nodes), 'node')} ({hosts}), {switches}, {ports}")
