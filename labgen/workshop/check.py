"""`invoke check`: verify the lab and, when something is wrong, say why in a trainee's words, with evidence.

Each check reads real state through the backend (the provisioner's fact parsers) and returns Findings.
The break-fix exercises are judged by these same findings.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.markup import escape

from provision.facts import DAEMON_PIDFILES, addr_of, link

from ..backends.base import Backend
from ..lab import open_up_lab
from ..model import DHCP_REQUIRED, Lab, Port
from ..observe import Observer
from ..ui import console


@dataclass(frozen=True)
class Finding:
    ok: bool
    node: str
    what: str
    why: str = ""  # for a problem: what it means and what to look at
    evidence: str = ""
    code: str = ""  # stable name of the problem, used by exercises and tests


def ok(node: str, what: str) -> Finding:
    return Finding(True, node, what)


def problem(code: str, node: str, what: str, why: str, evidence: str = "") -> Finding:
    return Finding(False, node, what, why, evidence, code)


def _out(backend: Backend, node: str, argv: list[str]) -> str:
    r = backend.run(node, argv, timeout=30)
    return (r.stdout + r.stderr).strip()


def infrastructure(lab: Lab, backend: Backend) -> list[Finding]:
    observe = Observer(lab, backend)
    found: list[Finding] = []
    underlay = ipaddress.ip_network(lab.underlay.subnet)
    encaps = {r["chassis_name"]: r for r in observe.fact(lab.central.name, "sb_encaps")}
    for n in lab.nodes:
        running = backend.run(n.name, ["sh", "-c", f"kill -0 $(cat {DAEMON_PIDFILES['ovn-controller']})"]).ok
        status = _out(backend, n.name, ["ovn-appctl", "-t", "ovn-controller", "connection-status"]) if running else ""
        if not running or status != "connected":
            log = _out(backend, n.name, ["tail", "-n", "5", "/var/log/ovn/ovn-controller.log"])
            why = (
                "without it this chassis gets no flows and binds no port: start it "
                "(systemctl start ovn-host, or `invoke up`)"
                if not running
                else f"it cannot reach tcp:{lab.central.ip}:6642: check ovn-remote and the underlay"
            )
            seen = f"ovn-controller {'not running' if not running else status}\n{log}"
            found.append(problem("controller", n.name, "ovn-controller is not connected to the SB database", why, seen))
        else:
            found.append(ok(n.name, "ovn-controller connected"))
        ids = observe.fact(n.name, "ovs_ids")
        enc = encaps.get(n.name)
        if enc is None:
            why = "ovn-controller has not registered this node: check external_ids:system-id and ovn-remote"
            found.append(
                problem("chassis", n.name, "no Chassis/Encap row in the SB database", why, f"external_ids: {ids}")
            )
        elif enc["ip"] != n.ip:
            where = "on the underlay" if ipaddress.ip_address(enc["ip"]) in underlay else "not on the underlay"
            why = (
                f"{enc['ip']} is {where} {underlay}: the other chassis send geneve there and nothing answers. "
                f"Fix: ovs-vsctl set open_vswitch . external_ids:ovn-encap-ip={n.ip}"
            )
            seen = f"ovn-encap-ip={ids.get('ovn-encap-ip')}"
            found.append(problem("encap", n.name, f"encap IP is {enc['ip']}, expected {n.ip}", why, seen))
        else:
            found.append(ok(n.name, f"chassis registered, geneve encap {n.ip}"))
        good, obs = observe.tunnels(n.name)
        if good:
            found.append(ok(n.name, "geneve tunnels to every other node"))
        else:
            why = "each chassis needs a geneve port to every other chassis's encap IP"
            found.append(problem("tunnels", n.name, "tunnels missing or wrong", why, obs))
    return found


def logical(lab: Lab, backend: Backend) -> list[Finding]:
    observe = Observer(lab, backend)
    central = lab.central.name
    switches = {s["name"] for s in observe.fact(central, "nb_switches")}
    if not any(s.name in switches for s in lab.switches):
        return [ok(central, "no logical switch yet (run `invoke demo`, or the tutorial's steps 4-5)")]
    found: list[Finding] = []
    dhcp = {r["_uuid"]: r for r in observe.fact(central, "nb_dhcp")}
    ports = {r["name"]: r for r in observe.fact(central, "nb_ports")}
    chassis = {r["_uuid"]: r["name"] for r in observe.fact(central, "sb_chassis")}
    bindings = {r["logical_port"]: r for r in observe.fact(central, "sb_bindings")}
    for p in lab.ports:
        lsp = ports.get(p.name)
        if lsp is None:
            found.append(problem("lsp", central, f"logical port {p.name} is missing", "ovn-nbctl lsp-add ..."))
            continue
        opts = lsp["dhcpv4_options"]
        if not opts or opts not in dhcp:
            why = (
                "OVN only answers DHCP for ports that reference a DHCP_Options row: "
                f"ovn-nbctl lsp-set-dhcpv4-options {p.name} $CIDR_UUID"
            )
            seen = f"{p.name} dhcpv4_options: {opts or '[]'}"
            found.append(problem("dhcpv4_options", central, f"dhcpv4_options not set on {p.name}", why, seen))
        elif missing := [k for k in DHCP_REQUIRED if k not in dhcp[opts]["options"]]:
            why = f"OVN needs {', '.join(DHCP_REQUIRED)} to answer at all"
            what = f"DHCP options of {p.name} lack {', '.join(missing)}"
            found.append(problem("dhcp_keys", central, what, why, f"options: {dhcp[opts]['options']}"))
        dyn = lsp.get("dynamic_addresses")
        mac = p.mac or (dyn.split()[0] if isinstance(dyn, str) and dyn else None)
        ip = dyn.split()[1] if isinstance(dyn, str) and len(dyn.split()) > 1 else None
        found += _binding(lab, observe, p, mac, ip, bindings.get(p.name), chassis)
    return found


def _binding(
    lab: Lab,
    observe: Observer,
    port: Port,
    mac: str | None,
    ip: str | None,
    pb: dict[str, Any] | None,
    chassis: dict[str, str],
) -> list[Finding]:
    name, node, ns = port.name, port.node, port.netns
    where = chassis.get(pb["chassis"]) if pb and isinstance(pb["chassis"], str) else None
    if where != node:
        ifaces = observe.fact(node, "interfaces")
        iface = ifaces.get(name)
        if iface is None:
            why = f"there is no OVS port {name} on {node}'s br-int (tutorial step 7)"
            seen = f"ovs-vsctl ports: {', '.join(sorted(ifaces))}"
        elif iface["external_ids"].get("iface-id") != name:
            why = (
                f"the OVS interface's external_ids:iface-id must be exactly {name}, so ovn-controller "
                "knows which logical port it is"
            )
            seen = f"{name} external_ids: {iface['external_ids']}"
        else:
            why, seen = "ovn-controller on the node has not claimed it (is it running?)", f"bound on: {where}"
        return [problem("unbound", node, f"{name} is not bound on {node}", why, seen)]
    out = [ok(node, f"{name} bound on {node}" + ("" if pb and pb.get("up") else " (not up yet)"))]
    ns_links = observe.fact(node, "ns_addrs", ns)
    lk = link(ns_links, ifname=name)
    if lk is None:
        why = f"ip link set {name} netns {ns} (tutorial step 8)"
        return [*out, problem("netns", node, f"{name} is not in namespace {ns}", why)]
    have_mac = lk.get("address", "").lower()
    if mac and have_mac != mac:
        why = (
            "OVN drops frames whose source MAC is not the port's address, DHCP included: "
            f"ip -n {ns} link set {name} address {mac}"
        )
        what = f"{name} in {ns} has MAC {have_mac}, the logical port expects {mac}"
        out.append(problem("mac", node, what, why, f"ip -n {ns} link show {name}: {have_mac}"))
    held = addr_of(ns_links, name)
    if ip and f"{ip}/{lab.prefixlen(name)}" in held:
        out.append(ok(node, f"{ns} holds the lease {ip}"))
    else:
        why = f"ip netns exec {ns} dhclient -v {name} (tutorial step 8)"
        what = f"{ns} has no lease for {ip or 'its port'}"
        out.append(problem("lease", node, what, why, f"IPv4 on {name}: {held or 'none'}"))
    return out


def mtu(lab: Lab, backend: Backend) -> list[Finding]:
    """A 1500-byte frame (1472 bytes of ICMP payload, DF set) across the tunnel: geneve adds 58 bytes."""
    src = lab.ports[0] if lab.ports else None
    dst = next((p for p in lab.ports if src and p.node != src.node), None)
    if src is None or dst is None:
        return []
    observe = Observer(lab, backend)
    if not addr_of(observe.fact(src.node, "ns_addrs", src.netns), src.name):
        return []
    peer = addr_of(observe.fact(dst.node, "ns_addrs", dst.netns), dst.name)
    if not peer:
        return []
    target = peer[0].split("/")[0]
    ping = ["ping", "-c", "2", "-i", "0.2", "-W", "2", "-M", "do", "-s", "1472", target]
    r = backend.run(src.node, ["ip", "netns", "exec", src.netns, *ping], timeout=30)
    if r.ok:
        return [ok(src.node, f"1500-byte frames cross the tunnel ({src.netns} -> {dst.netns})")]
    why = (
        f"geneve adds 58 bytes: the underlay MTU ({lab.underlay.mtu} in lab.toml) must be >= 1558, "
        "or hand out a smaller MTU by DHCP (dhcp.mtu = 1442)"
    )
    seen = (r.stdout + r.stderr).strip()[-300:]
    return [problem("mtu", src.node, "full-size frames do not cross the geneve tunnel", why, seen)]


def run_checks(lab: Lab, backend: Backend) -> list[Finding]:
    found = infrastructure(lab, backend)
    found += logical(lab, backend)
    if all(f.ok for f in found):
        found += mtu(lab, backend)
    return found


def report(found: list[Finding]) -> bool:
    for f in found:
        if f.ok:
            console.print(f"[green]ok  [/] {f.node:<15} {escape(f.what)}", highlight=False)
            continue
        console.print(f"[red]FAIL[/] {f.node:<15} {escape(f.what)}", highlight=False)
        if f.why:
            console.print(f"     why: {f.why}", highlight=False, markup=False)
        for line in f.evidence.splitlines():
            console.print(f"     | {line}", style="dim", highlight=False, markup=False)
    bad = sum(not f.ok for f in found)
    console.print(f"{len(found) - bad} ok, {bad} problem{'s' if bad != 1 else ''}")
    return bad == 0


def check(config: str | Path) -> bool:
    """`invoke check`: True when the lab has no problem."""
    lab, backend = open_up_lab(config)
    return report(run_checks(lab, backend))
