"""How far a seat got in the tutorial, read from its live lab (the lab's own facts, never a log of what was
typed): each step that leaves state in OVN is ticked when that state is there. Run as the seat, by the web
app over the classroom's sshd: `invoke classroom.progress` prints one JSON document."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from provision.facts import addr_of

from ..errors import LabError
from ..lab import open_lab
from ..observe import Observer
from ..workshop.check import daemons

# (key, the tutorial's words); ticked in this order
STEPS = (
    ("up", "Steps 1-3: OVS and OVN on each node, chassis registered, geneve tunnels"),
    ("switch", "Step 4: the logical switch net0 (ovn-nbctl ls-add net0)"),
    ("dhcp", "Step 5: DHCP options for net0's subnet, with the router, server id and lease time"),
    ("ports", "Step 6: the logical ports with their MAC addresses and DHCP options"),
    ("bindings", "Step 7: each port bound on its node (ovs-vsctl ... iface-id), up in the SB"),
    ("leases", "Step 8: each namespace got its address by DHCP from OVN"),
)


def read(config: str | Path) -> dict[str, Any]:
    lab, backend = open_lab(config)
    done = dict.fromkeys((k for k, _ in STEPS), False)
    out: dict[str, Any] = {"lab": lab.name, "steps": [], "ports": [], "chassis": 0, "down": {}, "error": None}
    out["exercise"] = backend.state.exercise()  # the one started, or None: only then is it worth checking
    states = backend.status() if backend.state.backend() else {}
    done["up"] = bool(states) and all(s == "running" for s in states.values())
    if done["up"]:
        observe = Observer(lab, backend).snapshot()
        central = lab.central.name
        _, down = daemons(lab, observe)
        out["down"] = {node: sorted(names) for node, names in down.items() if names}
        try:
            switches = {r["name"] for r in observe.fact(central, "nb_switches")}
            dhcp = {r["cidr"] for r in observe.fact(central, "nb_dhcp")}
            ports = {r["name"]: r for r in observe.fact(central, "nb_ports")}
            bound = {port for port, b in observe.bindings().items() if b.chassis}
            out["ports"] = sorted(ports)
            out["chassis"] = len(observe.fact(central, "sb_chassis"))
            want = [p.name for p in lab.ports]
            done["switch"] = all(s.name in switches for s in lab.switches)
            done["dhcp"] = all(str(s.subnet) in dhcp for s in lab.switches)
            done["ports"] = bool(want) and all(p in ports for p in want)
            done["bindings"] = bool(want) and all(p in bound for p in want)
            # a namespace not made yet (step 8 makes them) has no lease: only the ones there are read
            made = {node: set(observe.fact(node, "netns")) for node in {p.node for p in lab.ports}}
            done["leases"] = bool(want) and all(
                p.netns in made[p.node] and addr_of(observe.fact(p.node, "ns_addrs", p.netns), p.name)
                for p in lab.ports
            )
        except LabError as e:
            out["error"] = str(e)
    out["steps"] = [{"key": k, "text": text, "done": done[k]} for k, text in STEPS]
    out["changes"] = backend.changes() if backend.state.backend() else [str(backend.state.dir)]
    return out


def show(config: str | Path) -> None:
    print(json.dumps(read(config)))
