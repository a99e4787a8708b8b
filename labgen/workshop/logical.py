"""The logical layer as `invoke check` sees it: the demo's switches, ports and DHCP options in the NB,
each port bound on its chassis, in its namespace, with its MAC and its lease; and full-size frames
across the tunnel."""

from __future__ import annotations

from functools import partial
from typing import Any

from provision.facts import addr_of, link
from provision.views import NOT_ALLOCATED, Bound, drops, port_security

from ..model import DHCP_REQUIRED, Lab, Port
from ..observe import Observer
from .findings import Finding, guarded, ok, problem


def ports(lab: Lab, observe: Observer) -> list[Finding]:
    central = lab.central.name
    switches = {s["name"]: s for s in observe.fact(central, "nb_switches")}
    if not any(s.name in switches for s in lab.switches):
        return [ok(central, "no logical switch yet (run `invoke demo`, or the tutorial's steps 4-5)")]
    found: list[Finding] = []
    dhcp = {r["_uuid"]: r for r in observe.fact(central, "nb_dhcp")}
    ports = {r["name"]: r for r in observe.fact(central, "nb_ports")}
    allocated = observe.allocations()
    bound = observe.bindings()
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
        got = allocated.get(p.name, NOT_ALLOCATED)
        mac, ip = p.mac or got.mac or None, got.ip or None
        if ip is None:
            conf: dict[str, Any] = switches.get(p.switch, {}).get("other_config", {})
            why = (
                f"northd allocates from other_config:subnet minus exclude_ips; `invoke trace {p.netns} {p.netns} "
                f"--proto dhcp` shows no put_dhcp_opts for {p.name}"
            )
            dyn = lsp.get("dynamic_addresses")
            seen = (
                f"subnet={conf.get('subnet')} exclude_ips={conf.get('exclude_ips')}; dynamic_addresses: {dyn or '[]'}"
            )
            found.append(problem("no_address", central, f"{p.name} got no IPv4 address from {p.switch}", why, seen))
        binding = partial(_binding, lab, observe, p, mac, ip, bound.get(p.name, Bound(None, None)))
        found += guarded(p.node, f"{p.name}'s binding", binding)
    return found


def _binding(
    lab: Lab,
    observe: Observer,
    port: Port,
    mac: str | None,
    ip: str | None,
    bound: Bound,
) -> list[Finding]:
    name, node, ns = port.name, port.node, port.netns
    where = bound.chassis
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
    out = [ok(node, f"{name} bound on {node}" + ("" if bound.up else " (not up yet)"))]
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


def mtu(lab: Lab, observe: Observer) -> list[Finding]:
    """A 1500-byte frame (1472 bytes of ICMP payload, DF set) across the tunnel, on every switch that has
    ports on two nodes: geneve adds 58 bytes."""
    found: list[Finding] = []
    made = {s["name"] for s in observe.fact(lab.central.name, "nb_switches")}
    for sw in lab.switches:
        ports = [p for p in lab.ports if p.switch == sw.name]
        src = ports[0] if ports else None
        dst = next((p for p in ports if src and p.node != src.node), None)
        if src is None or dst is None or sw.name not in made:
            continue  # before the demo there is no namespace to ping from; after it, one that cannot be read says so
        if not addr_of(observe.fact(src.node, "ns_addrs", src.netns), src.name):
            continue
        peer = addr_of(observe.fact(dst.node, "ns_addrs", dst.netns), dst.name)
        if not peer:
            continue
        ping = ["ping", "-c", "2", "-i", "0.2", "-W", "2", "-M", "do", "-s", "1472", peer[0].split("/")[0]]
        r = observe.backend.run(src.node, ["ip", "netns", "exec", src.netns, *ping], timeout=30)
        if r.ok:
            found.append(ok(src.node, f"1500-byte frames cross the tunnel ({src.netns} -> {dst.netns})"))
            continue
        why = (
            f"geneve adds 58 bytes: the underlay MTU ({lab.underlay.mtu} in lab.toml) must be >= 1558, "
            "or hand out a smaller MTU by DHCP (dhcp.mtu = 1442)"
        )
        seen = (r.stdout + r.stderr).strip()[-300:]
        found.append(problem("mtu", src.node, "full-size frames do not cross the geneve tunnel", why, seen))
    return found


def policies(lab: Lab, observe: Observer) -> list[Finding]:
    """What the lab never makes, found in the NB: an ACL that drops or rejects, a port_security that does not
    allow the port's own MAC. Each is shown by `invoke trace` as the stage that drops the packet."""
    central, found = lab.central.name, []
    for acl in drops(observe.fact(central, "nb_acls")):
        action = acl["action"]
        why = f"an ACL {action}s what it matches: `invoke trace` shows the ls_*_acl stage that {action}s it"
        what = f"an ACL ({acl['direction']}, priority {acl['priority']}) {action}s {acl['match']}"
        found.append(problem("acl", central, what, why, "ovn-nbctl acl-list <switch>"))
    allowed = port_security(observe.fact(central, "nb_port_security"))
    allocated = observe.allocations()
    for p in lab.ports:
        macs, mac = allowed.get(p.name, []), p.mac or allocated.get(p.name, NOT_ALLOCATED).mac
        if macs and mac and mac not in macs:
            why = f"port security drops other MACs: `invoke trace {p.netns} ...` stops in ls_in_apply_port_sec"
            what = f"port_security of {p.name} ({', '.join(macs)}) does not allow its MAC {mac}"
            found.append(problem("port_security", central, what, why, f"ovn-nbctl lsp-get-port-security {p.name}"))
    return found or [ok(central, "no ACL drops traffic; port_security allows each port's MAC")]
