"""`invoke check`: verify the lab and, when something is wrong, say why in a trainee's words, with evidence.

Each check reads real state through the backend (the provisioner's fact parsers) and returns Findings.
The break-fix exercises (labgen.exercises) are judged by these same findings.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from provision.facts import DAEMON_PIDFILES, addr_of, link

from .backends.base import Backend
from .gates import Gates
from .model import Lab
from .ui import console

REQUIRED_DHCP = ("lease_time", "router", "server_id", "server_mac")


@dataclass(frozen=True)
class Finding:
    ok: bool
    node: str
    what: str
    why: str = ""  # for a problem: what it means and what to look at
    evidence: str = ""
    code: str = ""  # stable name of the problem, used by exercises and tests


def _out(b: Backend, node: str, argv: list[str]) -> str:
    r = b.run(node, argv, timeout=30)
    return (r.stdout + r.stderr).strip()


def infrastructure(lab: Lab, b: Backend) -> list[Finding]:
    g = Gates(lab, b)
    found: list[Finding] = []
    underlay = ipaddress.ip_network(lab.underlay.subnet)
    encaps = {r["chassis_name"]: r for r in g.fact(lab.central.name, "sb_encaps")}
    for n in lab.nodes:
        running = b.run(n.name, ["sh", "-c", f"kill -0 $(cat {DAEMON_PIDFILES['ovn-controller']})"]).ok
        status = _out(b, n.name, ["ovn-appctl", "-t", "ovn-controller", "connection-status"]) if running else ""
        if not running or status != "connected":
            log = _out(b, n.name, ["sh", "-c", "tail -n 5 /var/log/ovn/ovn-controller.log"])
            found.append(
                Finding(
                    False,
                    n.name,
                    "ovn-controller is not connected to the SB database",
                    "without it this chassis gets no flows and binds no port: start it "
                    "(systemctl start ovn-host, or `invoke up`)"
                    if not running
                    else f"it cannot reach tcp:{lab.central.ip}:6642: check ovn-remote and the underlay",
                    f"ovn-controller {'not running' if not running else status}\n{log}",
                    "controller",
                )
            )
        else:
            found.append(Finding(True, n.name, "ovn-controller connected"))
        ids = g.fact(n.name, "ovs_ids")
        enc = encaps.get(n.name)
        if enc is None:
            found.append(
                Finding(
                    False,
                    n.name,
                    "no Chassis/Encap row in the SB database",
                    "ovn-controller has not registered this node: check external_ids:system-id and ovn-remote",
                    f"external_ids: {ids}",
                    "chassis",
                )
            )
        elif enc["ip"] != n.ip:
            where = "on the underlay" if ipaddress.ip_address(enc["ip"]) in underlay else "not on the underlay"
            found.append(
                Finding(
                    False,
                    n.name,
                    f"encap IP is {enc['ip']}, expected {n.ip}",
                    f"{enc['ip']} is {where} {underlay}: the other chassis send geneve there and "
                    f"nothing answers. Fix: ovs-vsctl set open_vswitch . external_ids:ovn-encap-ip={n.ip}",
                    f"ovn-encap-ip={ids.get('ovn-encap-ip')}",
                    "encap",
                )
            )
        else:
            found.append(Finding(True, n.name, f"chassis registered, geneve encap {n.ip}"))
        ok, obs = g.tunnels(n.name)
        found.append(
            Finding(
                ok,
                n.name,
                "geneve tunnels to every other node" if ok else "tunnels missing or wrong",
                "" if ok else "each chassis needs a geneve port to every other chassis's encap IP",
                "" if ok else obs,
                "" if ok else "tunnels",
            )
        )
    return found


def logical(lab: Lab, b: Backend) -> list[Finding]:
    g = Gates(lab, b)
    central = lab.central.name
    found: list[Finding] = []
    switches = {s["name"] for s in g.fact(central, "nb_switches")}
    if not any(s.name in switches for s in lab.switches):
        return [Finding(True, central, "no logical switch yet (run `invoke demo`, or the tutorial's steps 4-5)")]
    dhcp = {r["_uuid"]: r for r in g.fact(central, "nb_dhcp")}
    ports = {r["name"]: r for r in g.fact(central, "nb_ports")}
    chassis = {r["_uuid"]: r["name"] for r in g.fact(central, "sb_chassis")}
    bindings = {r["logical_port"]: r for r in g.fact(central, "sb_bindings")}
    for p in lab.ports:
        lsp = ports.get(p.name)
        if lsp is None:
            found.append(
                Finding(False, central, f"logical port {p.name} is missing", "ovn-nbctl lsp-add ...", code="lsp")
            )
            continue
        opts = lsp["dhcpv4_options"]
        if not opts or opts not in dhcp:
            found.append(
                Finding(
                    False,
                    central,
                    f"dhcpv4_options not set on {p.name}",
                    "OVN only answers DHCP for ports that reference a DHCP_Options row: "
                    f"ovn-nbctl lsp-set-dhcpv4-options {p.name} $CIDR_UUID",
                    f"{p.name} dhcpv4_options: {opts or '[]'}",
                    "dhcpv4_options",
                )
            )
        else:
            missing = [k for k in REQUIRED_DHCP if k not in dhcp[opts]["options"]]
            if missing:
                found.append(
                    Finding(
                        False,
                        central,
                        f"DHCP options of {p.name} lack {', '.join(missing)}",
                        "OVN needs lease_time, router, server_id and server_mac to answer at all",
                        f"options: {dhcp[opts]['options']}",
                        "dhcp_keys",
                    )
                )
        dyn = lsp.get("dynamic_addresses")
        mac = p.mac or (dyn.split()[0] if isinstance(dyn, str) and dyn else None)
        ip = dyn.split()[1] if isinstance(dyn, str) and len(dyn.split()) > 1 else None
        found += _binding(lab, b, p.name, p.node, p.netns, mac, ip, bindings.get(p.name), chassis)
    return found


def _binding(
    lab: Lab,
    b: Backend,
    port: str,
    node: str,
    ns: str,
    mac: str | None,
    ip: str | None,
    pb: dict | None,
    chassis: dict[str, str],
) -> list[Finding]:  # type: ignore[type-arg]
    g = Gates(lab, b)
    out: list[Finding] = []
    ifaces = g.fact(node, "interfaces")
    ns_links = g.fact(node, "ns_addrs", ns)
    where = chassis.get(pb["chassis"]) if pb and isinstance(pb["chassis"], str) else None
    if where != node:
        iface = ifaces.get(port)
        if iface is None:
            why, ev = (
                f"there is no OVS port {port} on {node}'s br-int (tutorial step 7)",
                f"ovs-vsctl ports: {', '.join(sorted(ifaces))}",
            )
        elif iface["external_ids"].get("iface-id") != port:
            why, ev = (
                f"the OVS interface's external_ids:iface-id must be exactly {port}, so ovn-controller "
                "knows which logical port it is",
                f"{port} external_ids: {iface['external_ids']}",
            )
        else:
            why, ev = ("ovn-controller on the node has not claimed it (is it running?)", f"bound on: {where}")
        out.append(Finding(False, node, f"{port} is not bound on {node}", why, ev, "unbound"))
        return out
    out.append(Finding(True, node, f"{port} bound on {node}" + ("" if pb and pb.get("up") else " (not up yet)")))
    lk = link(ns_links, ifname=port)
    if lk is None:
        out.append(
            Finding(
                False,
                node,
                f"{port} is not in namespace {ns}",
                f"ip link set {port} netns {ns} (tutorial step 8)",
                code="netns",
            )
        )
        return out
    have_mac = lk.get("address", "").lower()
    if mac and have_mac != mac:
        out.append(
            Finding(
                False,
                node,
                f"{port} in {ns} has MAC {have_mac}, the logical port expects {mac}",
                "OVN drops frames whose source MAC is not the port's address, DHCP included: "
                f"ip -n {ns} link set {port} address {mac}",
                f"ip -n {ns} link show {port}: {have_mac}",
                "mac",
            )
        )
    held = addr_of(ns_links, port)
    if ip and f"{ip}/{lab.prefixlen(port)}" in held:
        out.append(Finding(True, node, f"{ns} holds the lease {ip}"))
    else:
        out.append(
            Finding(
                False,
                node,
                f"{ns} has no lease for {ip or 'its port'}",
                f"ip netns exec {ns} dhclient -v {port} (tutorial step 8)",
                f"IPv4 on {port}: {held or 'none'}",
                "lease",
            )
        )
    return out


def mtu(lab: Lab, b: Backend) -> list[Finding]:
    """A 1500-byte frame (1472 bytes of ICMP payload, DF set) across the tunnel: geneve adds 58 bytes."""
    src = lab.ports[0] if lab.ports else None
    dst = next((p for p in lab.ports if src and p.node != src.node), None)
    if src is None or dst is None:
        return []
    g = Gates(lab, b)
    if not addr_of(g.fact(src.node, "ns_addrs", src.netns), src.name):
        return []
    peer = addr_of(g.fact(dst.node, "ns_addrs", dst.netns), dst.name)
    if not peer:
        return []
    target = peer[0].split("/")[0]
    r = b.run(
        src.node,
        ["ip", "netns", "exec", src.netns, "ping", "-c", "2", "-i", "0.2", "-W", "2", "-M", "do", "-s", "1472", target],
        timeout=30,
    )
    if r.ok:
        return [Finding(True, src.node, f"1500-byte frames cross the tunnel ({src.netns} -> {dst.netns})")]
    return [
        Finding(
            False,
            src.node,
            "full-size frames do not cross the geneve tunnel",
            f"geneve adds 58 bytes: the underlay MTU ({lab.underlay.mtu} in lab.toml) must be >= 1558, "
            "or hand out a smaller MTU by DHCP (dhcp.mtu = 1442)",
            (r.stdout + r.stderr).strip()[-300:],
            "mtu",
        )
    ]


def run_checks(lab: Lab, b: Backend) -> list[Finding]:
    found = infrastructure(lab, b)
    found += logical(lab, b)
    if all(f.ok for f in found):
        found += mtu(lab, b)
    return found


def report(found: list[Finding]) -> bool:
    for f in found:
        if f.ok:
            console.print(f"[green]ok  [/] {f.node:<15} {f.what}", highlight=False)
        else:
            console.print(f"[red]FAIL[/] {f.node:<15} {f.what}", highlight=False)
            if f.why:
                console.print(f"     why: {f.why}", highlight=False, markup=False)
            if f.evidence:
                for line in f.evidence.splitlines():
                    console.print(f"     | {line}", style="dim", highlight=False, markup=False)
    bad = sum(not f.ok for f in found)
    console.print(f"{len(found) - bad} ok, {bad} problem{'s' if bad != 1 else ''}")
    return bad == 0
