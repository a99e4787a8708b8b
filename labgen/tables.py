"""The named tables of lab.toml ([nodes.NAME], [switches.NAME], [ports.NAME]) -> the model's nodes,
switches and ports, each problem recorded with its key path and fix."""

from __future__ import annotations

import ipaddress
from typing import Any

from .checker import Checker, did_you_mean, key, shown
from .keys import KEY, MAX_NODES
from .model import DHCP_REQUIRED, Dhcp, Node, Port, Switch, underlay_mac


def _named(checker: Checker, data: dict[str, Any], table: str) -> dict[str, dict[str, Any]]:
    t = data.get(table, {})
    if not isinstance(t, dict):
        checker.bad(table, f"must be a table of {table}", f"write each as [{table}.NAME]")
        return {}
    out = {}
    for name, body in t.items():
        out[name] = checker.table(body, f"{table}.{key(name)}", f"{table}.NAME")
    return out


def nodes(checker: Checker, data: dict[str, Any], underlay: ipaddress.IPv4Network | None, lab: str) -> list[Node]:
    nodes: list[Node] = []
    seen_ip: dict[ipaddress.IPv4Address, str] = {}
    tables = _named(checker, data, "nodes")
    if not tables:
        checker.bad("nodes", "no nodes", 'add [nodes.NAME] tables with ip = "..." (one with central = true)')
    if len(tables) > MAX_NODES:
        checker.bad("nodes", f"{len(tables)} nodes", f"a lab has at most {MAX_NODES} nodes")
        return []
    for i, (name, t) in enumerate(tables.items()):
        path = f"nodes.{key(name)}"
        checker.name(name, path, "nodes.NAME")
        ip = checker.address(checker.get(t, path, "nodes.NAME.ip"), f"{path}.ip", underlay, "underlay.subnet")
        if ip is not None:
            if ip in seen_ip:
                checker.bad(
                    f"{path}.ip", f"{ip} is also the address of nodes.{seen_ip[ip]}", "give every node its own address"
                )
            seen_ip[ip] = name
        central = checker.get(t, path, "nodes.NAME.central")
        nodes.append(Node(name, str(ip), bool(central), underlay_mac(lab, i)))
    if underlay is not None:
        _host_address(checker, nodes, underlay)
    centrals = [n.name for n in nodes if n.central]
    if tables and not centrals:
        checker.bad("nodes", "no central node", "set central = true on exactly one node, e.g. [nodes.ovn-central-01]")
    elif len(centrals) > 1:
        checker.bad(
            "nodes", f"more than one central node: {', '.join(centrals)}", "keep central = true on one node only"
        )
    return nodes


def _host_address(checker: Checker, nodes: list[Node], underlay: ipaddress.IPv4Network) -> None:
    """vagrant-libvirt gives the underlay's first address to the host's end of the network: no node may have it."""
    host = underlay.network_address + 1
    taken = {n.ip for n in nodes} | {str(host)}
    for n in nodes:
        if n.ip == str(host):
            free = next((str(a) for a in underlay.hosts() if str(a) not in taken), None)
            checker.bad(
                f"nodes.{key(n.name)}.ip",
                f"{host} is the host's address on the underlay (vagrant-libvirt gives the network's first address "
                "to the host's end)",
                f"use a free address, e.g. {free}" if free else f"use a larger underlay.subnet than {underlay}",
            )


def switches(
    checker: Checker, data: dict[str, Any], underlay: ipaddress.IPv4Network | None, mgmt: ipaddress.IPv4Network | None
) -> list[Switch]:
    switches = []
    seen: dict[ipaddress.IPv4Network, str] = {}
    for name, t in _named(checker, data, "switches").items():
        path = f"switches.{key(name)}"
        checker.name(name, path, "switches.NAME")
        subnet = checker.get(t, path, "switches.NAME.subnet")
        taken = {"underlay.subnet": underlay, "vagrant.management_subnet": mgmt}
        taken |= {f"switches.{other}.subnet": net for net, other in seen.items()}
        clash = next((k for k, net in taken.items() if subnet and net and subnet.overlaps(net)), None)
        if subnet and clash:
            why = (
                "the overlay must not reuse the underlay's addresses"
                if clash.startswith("u")
                else "no two networks may share addresses"
            )
            checker.bad(f"{path}.subnet", f"{subnet} overlaps {clash} {taken[clash]}", f"{why}; pick another subnet")
        if subnet:
            seen[subnet] = key(name)
        # stored as its items, one space apart: whitespace around them reaches OVN as it is otherwise
        exclude = " ".join((checker.get(t, path, "switches.NAME.exclude_ips") or "").split())
        if exclude and subnet:
            _exclude(checker, exclude, f"{path}.exclude_ips", subnet)
        d_path = f"{path}.dhcp"
        if "dhcp" not in t:
            checker.bad(d_path, "missing", f"add [{d_path}] with {', '.join(DHCP_REQUIRED)}")
            continue
        d = checker.table(t["dhcp"], d_path, "switches.NAME.dhcp")
        lease = checker.get(d, d_path, "switches.NAME.dhcp.lease_time")
        router = checker.address(
            checker.get(d, d_path, "switches.NAME.dhcp.router"), f"{d_path}.router", subnet, f"{path}.subnet"
        )
        server_id = checker.address(
            checker.get(d, d_path, "switches.NAME.dhcp.server_id"), f"{d_path}.server_id", subnet, f"{path}.subnet"
        )
        server_mac = checker.get(d, d_path, "switches.NAME.dhcp.server_mac")
        dmtu = checker.get(d, d_path, "switches.NAME.dhcp.mtu")
        extra = (("mtu", str(dmtu)),) if dmtu else ()
        switches.append(
            Switch(name, str(subnet), exclude, Dhcp(lease or 0, str(router), str(server_id), server_mac or "", extra))
        )
    return switches


def _exclude(checker: Checker, value: str, path: str, subnet: ipaddress.IPv4Network) -> None:
    for item in value.split():
        ends = item.split("..")
        try:
            addrs = [ipaddress.IPv4Address(e) for e in ends]
        except ValueError:
            checker.bad(
                path, f"{shown(item)} is not an address or range", 'write "10.0.0.1..10.0.0.10" or "10.0.0.5 10.0.0.7"'
            )
            continue
        outside = [str(a) for a in addrs if a not in subnet]
        if outside:
            checker.bad(
                path, f"{', '.join(outside)} outside the switch subnet {subnet}", f"keep the range inside {subnet}"
            )
        elif len(addrs) == 2 and addrs[0] > addrs[1]:
            checker.bad(path, f"range {item} runs backwards", f"write it as {ends[1]}..{ends[0]}")
        elif len(addrs) > 2:
            checker.bad(path, f"{shown(item)} has more than one '..'", 'write "FIRST..LAST"')


def ports(
    checker: Checker, data: dict[str, Any], nodes: list[Node], switches: list[Switch], nic_name: str
) -> list[Port]:
    ports = []
    node_names = [n.name for n in nodes]
    switch_names = [s.name for s in switches]
    seen_mac: dict[str, str] = {}
    seen_ns: dict[tuple[str, str], str] = {}
    for name, t in _named(checker, data, "ports").items():
        path = f"ports.{key(name)}"
        if checker.name(name, path, "ports.NAME") and name == nic_name:
            checker.bad(
                path,
                f"{name} is underlay.nic_name, the underlay NIC's other name on every node",
                KEY["ports.NAME"].reserved_fix,
            )
        switch = checker.get(t, path, "ports.NAME.switch")
        if switch is not None and switch not in switch_names:
            checker.bad(f"{path}.switch", f"no switch {shown(switch)}", did_you_mean(switch, switch_names))
        node = checker.get(t, path, "ports.NAME.node")
        if node is not None and node not in node_names:
            checker.bad(f"{path}.node", f"no node {shown(node)}", did_you_mean(node, node_names))
        netns = checker.get(t, path, "ports.NAME.netns")
        if netns is not None:
            if (node, netns) in seen_ns:
                checker.bad(
                    f"{path}.netns",
                    f"{netns} on {node} is also used by ports.{seen_ns[(node, netns)]}",
                    "give every port on a node its own netns",
                )
            seen_ns[(node, netns)] = name
        mac = checker.get(t, path, "ports.NAME.mac")
        if mac == "dynamic":
            mac = None
        if mac:
            if mac in seen_mac:
                checker.bad(
                    f"{path}.mac",
                    f"{mac} is also the MAC of ports.{seen_mac[mac]}",
                    'give each port its own MAC or "dynamic"',
                )
            seen_mac[mac] = name
        ports.append(Port(name, switch or "", node or "", netns or "", mac))
    return ports
