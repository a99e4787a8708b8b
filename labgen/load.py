"""lab.toml -> validated `Lab`. Every problem is reported at once, one line each, with key path and fix."""

from __future__ import annotations

import ipaddress
import tomllib
from pathlib import Path
from typing import Any

from .backends import BACKENDS
from .checker import HOSTNAME, IFNAME, OVNNAME, Checker, did_you_mean
from .errors import Issue, LabInvalid
from .model import DHCP_REQUIRED, Dhcp, Lab, Node, Port, Switch, Underlay, Vagrant, underlay_mac


def load_lab(path: str | Path) -> Lab:
    """Parse and validate lab.toml; raise LabInvalid listing every problem."""
    source = str(path)
    try:
        raw = Path(path).read_bytes()
    except OSError as e:
        raise LabInvalid(
            source, [Issue("(file)", f"cannot read: {e.strerror}", "pass --config PATH to a lab.toml")]
        ) from e
    try:
        data = tomllib.loads(raw.decode())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise LabInvalid(source, [Issue("(syntax)", str(e), "see https://toml.io for the syntax")]) from e
    return validate(data, source)


def validate(data: dict[str, Any], source: str = "lab.toml") -> Lab:
    checker = Checker()
    checker.table(data, "", "")

    lab_t = checker.table(data.get("lab", {}), "lab", "lab")
    name = checker.get(lab_t, "lab", "name", str, "ovn-lab")
    if name is not None and (not HOSTNAME.match(name) or len(name) > 20):
        checker.bad(
            "lab.name",
            f"{name!r} cannot prefix host and interface names",
            "use 1-20 lowercase letters, digits and '-', e.g. \"ovn-lab\"",
        )
    backend = checker.get(lab_t, "lab", "backend", str, "vagrant")
    if backend is not None and backend not in BACKENDS:
        checker.bad("lab.backend", f"unknown backend {backend!r}", did_you_mean(backend, BACKENDS))

    ul_t = checker.table(data.get("underlay", {}), "underlay", "underlay")
    underlay = checker.network(checker.get(ul_t, "underlay", "subnet", str), "underlay.subnet")
    mtu = checker.get(ul_t, "underlay", "mtu", int, 9000)
    if mtu is not None and not 1280 <= mtu <= 9000:
        checker.bad("underlay.mtu", f"{mtu} is out of range", "use 1280..9000; 9000 lets 1500-byte overlay frames fit")

    nic_name = checker.get(ul_t, "underlay", "nic_name", str, "")
    if nic_name and (not IFNAME.match(nic_name) or nic_name in ("br-int", "br-phy", "lo", "eth0")):
        checker.bad(
            "underlay.nic_name", f"{nic_name!r} cannot name the underlay NIC", 'use an interface name like "enp9s0"'
        )

    v_t = checker.table(data.get("vagrant", {}), "vagrant", "vagrant")
    accel = checker.get(v_t, "vagrant", "accel", str, "auto")
    if accel is not None and accel not in ("auto", "kvm", "tcg"):
        checker.bad("vagrant.accel", f"unknown accelerator {accel!r}", did_you_mean(accel, ("auto", "kvm", "tcg")))
    memory = checker.get(v_t, "vagrant", "memory", int, 1024)
    if memory is not None and memory < 512:
        checker.bad(
            "vagrant.memory", f"{memory} MiB is too little for OVS and OVN", "use at least 512 (1024 is tested)"
        )
    cpus = checker.get(v_t, "vagrant", "cpus", int, 1)
    if cpus is not None and cpus < 1:
        checker.bad("vagrant.cpus", f"{cpus} is not a CPU count", "use 1 or more")
    mgmt = checker.network(
        checker.get(v_t, "vagrant", "management_subnet", str, "192.168.121.0/24"), "vagrant.management_subnet"
    )
    if mgmt and underlay and mgmt.overlaps(underlay):
        checker.bad("vagrant.management_subnet", f"{mgmt} overlaps underlay.subnet {underlay}", "pick another free /24")

    nodes = _nodes(checker, data, underlay, name or "lab")
    switches = _switches(checker, data, underlay)
    ports = _ports(checker, data, nodes, switches)

    if checker.issues:
        raise LabInvalid(source, checker.issues)
    return Lab(
        name=name,
        source=source,
        backend=backend,
        underlay=Underlay(str(underlay), mtu, nic_name or ""),
        vagrant=Vagrant(checker.get(v_t, "vagrant", "box", str, "ovn-lab/bookworm"), accel, memory, cpus, str(mgmt)),
        nodes=tuple(nodes),
        switches=tuple(switches),
        ports=tuple(ports),
    )


def _named(checker: Checker, data: dict[str, Any], key: str, kind: str) -> dict[str, dict[str, Any]]:
    t = data.get(key, {})
    if not isinstance(t, dict):
        checker.bad(key, f"must be a table of {kind}s", f"write each as [{key}.NAME]")
        return {}
    out = {}
    for name, body in t.items():
        out[name] = checker.table(body, f"{key}.{name}", kind)
    return out


def _nodes(checker: Checker, data: dict[str, Any], underlay: ipaddress.IPv4Network | None, lab: str) -> list[Node]:
    nodes: list[Node] = []
    seen_ip: dict[ipaddress.IPv4Address, str] = {}
    tables = _named(checker, data, "nodes", "node")
    if not tables:
        checker.bad("nodes", "no nodes", 'add [nodes.NAME] tables with ip = "..." (one with central = true)')
    for i, (name, t) in enumerate(tables.items()):
        path = f"nodes.{name}"
        if not HOSTNAME.match(name):
            checker.bad(
                path,
                f"{name!r} is not a valid hostname",
                "use lowercase letters, digits and '-' (not at the ends), at most 63 characters",
            )
        ip = checker.address(checker.get(t, path, "ip", str), f"{path}.ip", underlay, "underlay.subnet")
        if ip is not None:
            if ip in seen_ip:
                checker.bad(
                    f"{path}.ip", f"{ip} is also the address of nodes.{seen_ip[ip]}", "give every node its own address"
                )
            seen_ip[ip] = name
        central = checker.get(t, path, "central", bool, False)
        nodes.append(Node(name, str(ip), bool(central), underlay_mac(lab, i)))
    centrals = [n.name for n in nodes if n.central]
    if tables and not centrals:
        checker.bad("nodes", "no central node", "set central = true on exactly one node, e.g. [nodes.ovn-central-01]")
    elif len(centrals) > 1:
        checker.bad(
            "nodes", f"more than one central node: {', '.join(centrals)}", "keep central = true on one node only"
        )
    return nodes


def _switches(checker: Checker, data: dict[str, Any], underlay: ipaddress.IPv4Network | None) -> list[Switch]:
    switches = []
    for name, t in _named(checker, data, "switches", "switch").items():
        path = f"switches.{name}"
        if not OVNNAME.match(name):
            checker.bad(path, f"{name!r} is not a valid switch name", "use letters, digits, '_', '.' and '-'")
        subnet = checker.network(checker.get(t, path, "subnet", str), f"{path}.subnet")
        if subnet and underlay and subnet.overlaps(underlay):
            checker.bad(
                f"{path}.subnet",
                f"{subnet} overlaps underlay.subnet {underlay}",
                "the overlay must not reuse the underlay's addresses; pick another subnet",
            )
        exclude = checker.get(t, path, "exclude_ips", str, "")
        if exclude and subnet:
            _exclude(checker, exclude, f"{path}.exclude_ips", subnet)
        d_path = f"{path}.dhcp"
        if "dhcp" not in t:
            checker.bad(d_path, "missing", f"add [{d_path}] with {', '.join(DHCP_REQUIRED)}")
            continue
        d = checker.table(t["dhcp"], d_path, "dhcp")
        for key in DHCP_REQUIRED:
            if key not in d:
                checker.bad(
                    f"{d_path}.{key}",
                    "missing: OVN answers no DHCP request without it",
                    f"add {key} = {'3600' if key == 'lease_time' else '...'} to [{d_path}]",
                )
        lease = checker.get(d, d_path, "lease_time", int, 0)
        if lease is not None and "lease_time" in d and lease <= 0:
            checker.bad(f"{d_path}.lease_time", f"{lease} is not a lease time", "use seconds > 0, e.g. 3600")
        router = checker.address(
            checker.get(d, d_path, "router", str, "") or None, f"{d_path}.router", subnet, f"{path}.subnet"
        )
        server_id = checker.address(
            checker.get(d, d_path, "server_id", str, "") or None, f"{d_path}.server_id", subnet, f"{path}.subnet"
        )
        server_mac = checker.mac(checker.get(d, d_path, "server_mac", str, "") or None, f"{d_path}.server_mac")
        dmtu = checker.get(d, d_path, "mtu", int, 0)
        extra = (("mtu", str(dmtu)),) if dmtu else ()
        if dmtu and not 576 <= dmtu <= 9000:
            checker.bad(
                f"{d_path}.mtu", f"{dmtu} is out of range", "use 576..9000, e.g. 1442 for geneve on a 1500 underlay"
            )
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
                path, f"{item!r} is not an address or range", 'write "10.0.0.1..10.0.0.10" or "10.0.0.5 10.0.0.7"'
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
            checker.bad(path, f"{item!r} has more than one '..'", 'write "FIRST..LAST"')


def _ports(checker: Checker, data: dict[str, Any], nodes: list[Node], switches: list[Switch]) -> list[Port]:
    ports = []
    node_names = [n.name for n in nodes]
    switch_names = [s.name for s in switches]
    seen_mac: dict[str, str] = {}
    seen_ns: dict[tuple[str, str], str] = {}
    for name, t in _named(checker, data, "ports", "port").items():
        path = f"ports.{name}"
        if not IFNAME.match(name):
            checker.bad(
                path, f"{name!r} cannot be a Linux interface name", "use at most 15 letters, digits, '_', '.' or '-'"
            )
        switch = checker.get(t, path, "switch", str)
        if switch is not None and switch not in switch_names:
            checker.bad(f"{path}.switch", f"no switch {switch!r}", did_you_mean(switch, switch_names))
        node = checker.get(t, path, "node", str)
        if node is not None and node not in node_names:
            checker.bad(f"{path}.node", f"no node {node!r}", did_you_mean(node, node_names))
        netns = checker.get(t, path, "netns", str)
        if netns is not None:
            if not IFNAME.match(netns):
                checker.bad(
                    f"{path}.netns",
                    f"{netns!r} is not a usable namespace name",
                    "use at most 15 letters, digits, '_', '.' or '-'",
                )
            if (node, netns) in seen_ns:
                checker.bad(
                    f"{path}.netns",
                    f"{netns} on {node} is also used by ports.{seen_ns[(node, netns)]}",
                    "give every port on a node its own netns",
                )
            seen_ns[(node, netns)] = name
        mac_raw = checker.get(t, path, "mac", str)
        mac = None
        if mac_raw is not None and mac_raw != "dynamic":
            mac = checker.mac(mac_raw, f"{path}.mac")
            if mac in seen_mac:
                checker.bad(
                    f"{path}.mac",
                    f"{mac} is also the MAC of ports.{seen_mac[mac]}",
                    'give each port its own MAC or "dynamic"',
                )
            if mac:
                seen_mac[mac] = name
        ports.append(Port(name, switch or "", node or "", netns or "", mac))
    return ports
