"""lab.toml -> validated `Lab`. Every problem is reported at once, one line each, with key path and fix."""

from __future__ import annotations

import functools
import stat
import tomllib
from pathlib import Path
from typing import Any

from provision.names import is_reserved

from . import tables
from .backends import BACKENDS
from .checker import (
    BOX,
    HOSTNAME,
    IFNAME,
    Checker,
    did_you_mean,
    shown,
)
from .errors import Issue, LabInvalid, visible
from .model import TRANSPORTS, Lab, Ovn, Underlay, Vagrant

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
    name = checker.get(lab_t, "lab", "name", str, "ovn-lab")
    if name is not None and (not HOSTNAME.fullmatch(name) or len(name) > 20):
        checker.bad(
            "lab.name",
            f"{shown(name)} cannot prefix host and interface names",
            "use 1-20 lowercase letters, digits and '-', e.g. \"ovn-lab\"",
        )
    backend = checker.get(lab_t, "lab", "backend", str, "vagrant")
    if backend is not None and backend not in BACKENDS:
        checker.bad("lab.backend", f"unknown backend {shown(backend)}", did_you_mean(backend, BACKENDS))

    ul_t = checker.table(data.get("underlay", {}), "underlay", "underlay")
    underlay = checker.network(checker.get(ul_t, "underlay", "subnet", str), "underlay.subnet")
    mtu = checker.get(ul_t, "underlay", "mtu", int, 9000)
    if mtu is not None and not 1280 <= mtu <= 9000:
        checker.bad("underlay.mtu", f"{mtu} is out of range", "use 1280..9000; 9000 lets 1500-byte overlay frames fit")

    nic_name = checker.get(ul_t, "underlay", "nic_name", str, "")
    if nic_name and not IFNAME.fullmatch(nic_name):
        checker.bad(
            "underlay.nic_name",
            f"{shown(nic_name)} cannot name the underlay NIC",
            'use an interface name like "enp9s0"',
        )
    elif nic_name and is_reserved(nic_name):
        checker.bad(
            "underlay.nic_name", f"{nic_name} is an interface the lab makes itself", 'use another name, e.g. "enp9s0"'
        )

    ovn_t = checker.table(data.get("ovn", {}), "ovn", "ovn")
    transport = checker.get(ovn_t, "ovn", "transport", str, "tcp")
    if transport is not None and transport not in TRANSPORTS:
        checker.bad("ovn.transport", f"unknown transport {shown(transport)}", did_you_mean(transport, TRANSPORTS))

    v_t = checker.table(data.get("vagrant", {}), "vagrant", "vagrant")
    accel = checker.get(v_t, "vagrant", "accel", str, "auto")
    if accel is not None and accel not in ("auto", "kvm", "tcg"):
        checker.bad("vagrant.accel", f"unknown accelerator {shown(accel)}", did_you_mean(accel, ("auto", "kvm", "tcg")))
    memory = checker.get(v_t, "vagrant", "memory", int, 1024)
    if memory is not None and memory < 512:
        checker.bad(
            "vagrant.memory", f"{memory} MiB is too little for OVS and OVN", "use at least 512 (1024 is tested)"
        )
    if memory is not None and memory > 65536:
        checker.bad(
            "vagrant.memory", f"{memory} MiB is more than a lab node needs", "use 512 to 65536 (1024 is tested)"
        )
    cpus = checker.get(v_t, "vagrant", "cpus", int, 1)
    if cpus is not None and not 1 <= cpus <= 64:
        checker.bad("vagrant.cpus", f"{cpus} is not a CPU count for a VM", "use 1 to 64")
    box = checker.get(v_t, "vagrant", "box", str, "ovn-lab/bookworm")
    if box is not None and not BOX.fullmatch(box):
        checker.bad(
            "vagrant.box", f"{shown(box)} is not a box name", 'write NAME or OWNER/NAME, e.g. "debian/bookworm64"'
        )
    mgmt = checker.network(
        checker.get(v_t, "vagrant", "management_subnet", str, "192.168.121.0/24"), "vagrant.management_subnet"
    )
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
        underlay=Underlay(str(underlay), mtu, nic_name or ""),
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
