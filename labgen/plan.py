"""Lab model -> each node's plan: the JSON that `python3 -m provision` executes on the node (the one
contract between host and node)."""

from __future__ import annotations

import ipaddress
from typing import Any

from .model import Lab


def node_plan(
    lab: Lab, node: str, *, datapath: str, services: str, install: bool, macs: dict[str, str] | None = None
) -> dict[str, Any]:
    """Everything one node needs. `macs` maps ports with a dynamic MAC to the MAC OVN chose."""
    n = lab.node(node)
    macs = macs or {}
    plan: dict[str, Any] = {
        "node": n.name,
        "ip": n.ip,
        "prefixlen": ipaddress.ip_network(lab.underlay.subnet).prefixlen,
        "mac": n.mac,
        "central": n.central,
        "central_ip": lab.central.ip,
        "encap_type": "geneve",
        "transport": lab.ovn.transport,
        "sb_remote": lab.sb_remote,
        "nic_name": lab.underlay.nic_name,
        "datapath": datapath,
        "services": services,
        "install": install,
        "bindings": [
            {"port": p.name, "netns": p.netns, "mac": p.mac or macs.get(p.name, "")} for p in lab.ports_on(node)
        ],
    }
    if n.central:
        plan["switches"] = [
            {"name": s.name, "subnet": s.subnet, "exclude_ips": s.exclude_ips, "dhcp": s.dhcp.options()}
            for s in lab.switches
        ]
        plan["ports"] = [{"name": p.name, "switch": p.switch, "addresses": p.addresses} for p in lab.ports]
        # trace the first port of each switch, as the tutorial traces port1
        traced: dict[str, Any] = {}
        for p in lab.ports:
            mac = p.mac or macs.get(p.name)
            if p.switch not in traced and mac:
                traced[p.switch] = {"switch": p.switch, "port": p.name, "mac": mac}
        plan["trace"] = list(traced.values())
    return plan
