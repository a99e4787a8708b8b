"""`invoke status`: the lab's nodes, chassis, tunnels, port bindings and leases, read through facts; as a
table or JSON (graph draws the same)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TypedDict

from rich.markup import escape

from provision.facts import addr_of
from provision.views import geneve_remotes

from ..lab import open_lab
from ..observe import Observer, Unreadable
from ..ui import console

UNREAD = "cannot read"  # in a cell whose fact could not be read: never shown as none


class Chassis(TypedDict):
    encap: str
    ip: str


class Binding(TypedDict):
    chassis: str | None
    up: bool | None


class Lease(TypedDict):
    node: str
    netns: str
    ipv4: list[str] | None  # None: could not be read


@dataclass
class NodeStatus:
    ip: str
    central: bool
    state: str
    tunnels: list[str] | None = None  # remote IPs of its geneve ports; None: could not be read


@dataclass
class LabStatus:
    lab: str
    backend: str | None
    nodes: dict[str, NodeStatus] = field(default_factory=dict)
    chassis: dict[str, Chassis] = field(default_factory=dict)
    bindings: dict[str, Binding] = field(default_factory=dict)  # bound ports
    leases: dict[str, Lease] = field(default_factory=dict)  # ports on running nodes
    error: str | None = None  # the SB could not be read
    unreadable: list[str] = field(default_factory=list)  # "cannot read WHAT on NODE: why", each fact that failed


def status(config: str | Path) -> LabStatus:
    lab, backend = open_lab(config)
    out = LabStatus(lab.name, backend.state.backend())
    states = backend.status()
    for n in lab.nodes:
        out.nodes[n.name] = NodeStatus(n.ip, n.central, states.get(n.name, "?"))
    if states.get(lab.central.name) != "running":
        return out
    observe = Observer(lab, backend)
    try:
        encaps = observe.fact(lab.central.name, "sb_encaps")
        out.chassis = {r["chassis_name"]: {"encap": r["type"], "ip": r["ip"]} for r in encaps}
        bound = observe.bindings()
        out.bindings = {port: {"chassis": b.chassis, "up": b.up} for port, b in bound.items() if b.chassis}
    except Unreadable as e:
        out.error = str(e)
        out.unreadable.append(f"cannot read {e.what} on {e.node}: {e}")
    for n in lab.nodes:
        if states.get(n.name) != "running":
            continue
        try:
            out.nodes[n.name].tunnels = geneve_remotes(observe.fact(n.name, "interfaces"))
        except Unreadable as e:
            out.unreadable.append(f"cannot read {e.what} on {e.node}: {e}")
        for p in lab.ports_on(n.name):
            held: list[str] | None = None
            try:
                held = addr_of(observe.fact(n.name, "ns_addrs", p.netns), p.name)
            except Unreadable as e:
                out.unreadable.append(f"cannot read {e.what} on {e.node}: {e}")
            out.leases[p.name] = {"node": n.name, "netns": p.netns, "ipv4": held}
    return out


def show_status(config: str | Path, *, as_json: bool = False) -> None:
    st = status(config)
    if as_json:
        print(json.dumps(asdict(st), indent=1, sort_keys=True))
    else:
        print_status(st)


def print_status(st: LabStatus) -> None:
    from rich.table import Table

    console.print(f"lab [bold]{st.lab}[/], backend {st.backend or '(not up)'}")
    t = Table("node", "underlay IP", "state", "chassis encap", "geneve tunnels to")
    for name, n in st.nodes.items():
        ch = st.chassis.get(name)
        t.add_row(
            name + (" (central)" if n.central else ""),
            n.ip,
            n.state,
            f"{ch['encap']} {ch['ip']}" if ch else UNREAD if st.error else "-",
            UNREAD if n.tunnels is None and n.state == "running" else ", ".join(n.tunnels or []) or "-",
        )
    console.print(t)
    if st.leases or st.bindings:
        t = Table("port", "bound on", "up", "netns", "IPv4")
        for port, lease in st.leases.items():
            bound = st.bindings.get(port)
            t.add_row(
                port,
                (bound["chassis"] if bound else None) or (UNREAD if st.error else "-"),
                str(bound["up"]) if bound else "-",
                f"{lease['node']}:{lease['netns']}",
                UNREAD if lease["ipv4"] is None else ", ".join(lease["ipv4"]) or "-",
            )
        console.print(t)
    for line in st.unreadable:
        console.print(f"[red]{escape(line)}[/]", highlight=False)
