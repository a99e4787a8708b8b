"""`invoke check`: verify the lab and, when something is wrong, say why in a trainee's words, with evidence.

Each check reads real state through the backend (the provisioner's fact parsers) and returns Findings.
First every daemon of every node: one that is down is named, and the checks that would only fail on it
are left out. A fact that cannot be read is a finding too: check reports all it can and never stops at
a raw command error. The break-fix exercises are judged by these same findings.
"""

from __future__ import annotations

import ipaddress
from functools import partial
from pathlib import Path

from ..backends.base import Backend
from ..lab import open_up_lab
from ..model import Lab
from ..observe import Observer, Unreadable
from .findings import Finding, guarded, ok, problem, report
from .logical import mtu, policies, ports

# every node runs the first three; central also the databases and northd
DAEMONS = {
    "ovsdb-server": "without the node's Open vSwitch database no bridge, port or tunnel can be read or changed",
    "ovs-vswitchd": "nothing is switched on this node: its ports and tunnels carry no packet",
    "ovn-controller": "without it this chassis gets no flows and binds no port",
    "ovnnb_db": "the NB database (an ovsdb-server): the logical switches and ports live there",
    "ovnsb_db": "the SB database (an ovsdb-server): the chassis register there and read their flows",
    "ovn-northd": "nothing turns NB changes into logical flows: new ports get no address and no flows",
}
CENTRAL_ONLY = ("ovnnb_db", "ovnsb_db", "ovn-northd")
Down = dict[str, set[str]]  # node -> its daemons that are not running


def daemons(lab: Lab, observe: Observer) -> tuple[list[Finding], Down]:
    """Which daemons run on each node, by their pidfiles (a zombie counts as gone)."""
    found, down = [], {}
    for n in lab.nodes:
        names = [d for d in DAEMONS if n.central or d not in CENTRAL_ONLY]
        try:
            alive = observe.daemons(n.name, names)
        except Unreadable as e:
            what = f"cannot read {e.what} on {n.name}"
            found.append(problem("node", n.name, what, "is it running? `invoke status`", str(e)))
            down[n.name] = set(names)
            continue
        down[n.name] = {d for d in names if not alive[d]}
        for d in names:
            if d in down[n.name]:
                why = f"{DAEMONS[d]}. `invoke up` starts it again"
                found.append(
                    problem(
                        "controller" if d == "ovn-controller" else "daemon",
                        n.name,
                        f"{d} is not running on {n.name}",
                        why,
                    )
                )
        if not down[n.name]:
            found.append(ok(n.name, f"{', '.join(names)} running"))
    return found, down


def infrastructure(lab: Lab, observe: Observer, down: Down) -> list[Finding]:
    central = lab.central.name
    found: list[Finding] = []
    encaps: dict[str, dict[str, str]] = {}
    sb_up = "ovnsb_db" not in down.get(central, {"ovnsb_db"})
    if sb_up:
        try:
            for r in observe.fact(central, "sb_encaps"):  # a chassis may have several: the lab's is geneve
                if r["type"] == "geneve" or r["chassis_name"] not in encaps:
                    encaps[r["chassis_name"]] = r
        except Unreadable as e:
            sb_up = False
            found.append(problem("unreadable", central, f"cannot read {e.what} on {central}", "is the SB up?", str(e)))
    for n in lab.nodes:
        gone = down.get(n.name, set())
        if "ovn-controller" not in gone and "ovsdb-server" not in gone:
            found += guarded(n.name, "ovn-controller's connection", partial(_connected, lab, observe, n.name))
        if "ovsdb-server" in gone:
            continue  # nothing of this node's OVS can be read
        if sb_up:
            found += guarded(n.name, "its chassis", partial(_chassis, lab, observe, n.name, encaps.get(n.name)))
        found += guarded(n.name, "its tunnels", partial(_tunnels, observe, n.name))
    return found


def _connected(lab: Lab, observe: Observer, node: str) -> list[Finding]:
    status = observe.fact(node, "controller_status")
    if status == "connected":
        return [ok(node, "ovn-controller connected")]
    why = f"it cannot reach {lab.sb_remote}: check ovn-remote, the underlay" + (
        " and the node's certificates (ovs-vsctl get-ssl)" if lab.ovn.transport == "ssl" else ""
    )
    try:
        log = observe.fact(node, "controller_log")
    except Unreadable as e:  # the finding stands; its evidence says why the log is missing
        log = f"cannot read {e.what}: {e}"
    seen = f"ovn-controller {status}\n{log}"
    return [problem("controller", node, f"ovn-controller on {node} is not connected to the SB database", why, seen)]


def _chassis(lab: Lab, observe: Observer, node: str, enc: dict[str, str] | None) -> list[Finding]:
    ids = observe.fact(node, "ovs_ids")
    ip = lab.node(node).ip
    if enc is None:
        why = "ovn-controller has not registered this node: check external_ids:system-id and ovn-remote"
        return [problem("chassis", node, "no Chassis/Encap row in the SB database", why, f"external_ids: {ids}")]
    if enc["ip"] != ip:
        underlay = ipaddress.ip_network(lab.underlay.subnet)
        where = "on the underlay" if ipaddress.ip_address(enc["ip"]) in underlay else "not on the underlay"
        why = (
            f"{enc['ip']} is {where} {underlay}: the other chassis send geneve there and nothing answers. "
            f"Fix: ovs-vsctl set open_vswitch . external_ids:ovn-encap-ip={ip}"
        )
        seen = f"ovn-encap-ip={ids.get('ovn-encap-ip')}"
        return [problem("encap", node, f"encap IP is {enc['ip']}, expected {ip}", why, seen)]
    return [ok(node, f"chassis registered, geneve encap {ip}")]


def _tunnels(observe: Observer, node: str) -> list[Finding]:
    good, obs = observe.tunnels(node)
    if good:
        return [ok(node, "geneve tunnels to every other node")]
    why = "each chassis needs a geneve port to every other chassis's encap IP"
    return [problem("tunnels", node, "tunnels missing or wrong", why, obs)]


def run_checks(lab: Lab, backend: Backend, observe: Observer | None = None) -> list[Finding]:
    """Every check, on one snapshot of the lab's facts; `observe` (a fresh one by default) keeps the list of
    what was read."""
    observe = (observe or Observer(lab, backend)).snapshot()
    found, down = daemons(lab, observe)
    found += infrastructure(lab, observe, down)
    central = down.get(lab.central.name, set())
    if not central & {"ovnnb_db", "ovnsb_db"}:
        found += guarded(lab.central.name, "the logical layer", lambda: ports(lab, observe))
        found += guarded(lab.central.name, "ACLs and port security", lambda: policies(lab, observe))
    if all(f.ok for f in found):
        found += guarded(lab.central.name, "the MTU across the tunnel", lambda: mtu(lab, observe))
    return found


def check(config: str | Path) -> bool:
    """`invoke check`: True when the lab has no problem."""
    lab, backend = open_up_lab(config)
    return report(run_checks(lab, backend))
