"""The tutorial's logical network and its "VMs": switches, ports, DHCP, bindings in namespaces (steps 4-8),
and their undoing for demo --reset. Each step reads facts and yields only the commands still needed.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ..core import FactMap, Noop, Op, Plan, Wait, cmd, show
from ..facts import addr_of, as_list, link


def logical(plan: Plan, facts: FactMap) -> Iterator[Op]:
    """Steps 4 and 5 on central: switches with DHCP options, logical ports."""
    nb = facts["nb"]
    switches = {s["name"]: s for s in nb["nb_switches"]}
    dhcp_rows = nb["nb_dhcp"]
    ports = {p["name"]: p for p in nb["nb_ports"]}
    single = len(plan["switches"]) == 1
    for sw in plan["switches"]:
        name = sw["name"]
        if name in switches:
            yield Noop(f"logical switch {name} exists")
        else:
            yield cmd("ovn-nbctl", "--may-exist", "ls-add", name)
        want = {"subnet": sw["subnet"], **({"exclude_ips": sw["exclude_ips"]} if sw["exclude_ips"] else {})}
        have = switches.get(name, {}).get("other_config", {})
        if all(have.get(k) == v for k, v in want.items()):
            yield Noop(f"{name} other_config: {' '.join(f'{k}={v}' for k, v in want.items())}")
        else:
            yield cmd("ovn-nbctl", "set", "logical_switch", name, *(f"other_config:{k}={v}" for k, v in want.items()))
        if "exclude_ips" in have and "exclude_ips" not in want:  # lab.toml excludes none: nor may the NB
            yield cmd("ovn-nbctl", "remove", "logical_switch", name, "other_config", "exclude_ips")
        # dhcp-options-create adds a row on every call: look it up by cidr first
        var = "CIDR_UUID" if single else f"CIDR_UUID_{name.upper().replace('-', '_')}"
        rows = [r for r in dhcp_rows if r["cidr"] == sw["subnet"]]
        used = {str(p.get("dhcpv4_options")) for p in ports.values()}
        row = next((r for r in rows if r["_uuid"] in used), rows[0] if rows else None)
        opts = [f"{k}={v}" for k, v in sw["dhcp"].items()]
        if row is None:
            yield cmd("ovn-nbctl", "dhcp-options-create", sw["subnet"])
            yield cmd(
                "ovn-nbctl", "--bare", "--columns=_uuid", "find", "dhcp_options", f'cidr="{sw["subnet"]}"', capture=var
            )
            ref = f"${var}"
            yield cmd("ovn-nbctl", "dhcp-options-set-options", ref, *opts)
        else:
            ref = row["_uuid"]
            if row["options"] == sw["dhcp"]:
                yield Noop(f"DHCP_Options {sw['subnet']} ({ref[:8]}): {' '.join(opts)}")
            else:
                yield cmd("ovn-nbctl", "dhcp-options-set-options", ref, *opts)
        for p in plan["ports"]:
            if p["switch"] != name:
                continue
            yield from _port(p, ports.get(p["name"]), ref, switches.get(name))


def _port(p: dict[str, Any], have: dict[str, Any] | None, dhcp_ref: str, switch: dict[str, Any] | None) -> Iterator[Op]:
    name = p["name"]
    in_switch = have is not None and switch is not None and have["_uuid"] in as_list(switch["ports"])
    if in_switch:
        yield Noop(f"logical port {name} exists")
    else:
        yield cmd("ovn-nbctl", "--may-exist", "lsp-add", p["switch"], name)
    if have is not None and as_list(have["addresses"]) == [p["addresses"]]:
        yield Noop(f"{name} addresses: {p['addresses']}")
    else:
        yield cmd("ovn-nbctl", "lsp-set-addresses", name, p["addresses"])
    if have is not None and have["dhcpv4_options"] == dhcp_ref:
        yield Noop(f"{name} dhcpv4_options set")
    else:
        yield cmd("ovn-nbctl", "lsp-set-dhcpv4-options", name, dhcp_ref)


def show_logical(plan: Plan, facts: FactMap) -> Iterator[Op]:
    """What the tutorial shows after steps 4-5."""
    yield show("ovn-nbctl", "list", "dhcp_options")
    yield show("ovn-nbctl", "show")
    yield show("ovn-nbctl", "--columns", "name,dynamic_addresses", "list", "logical_switch_port")


def trace(plan: Plan, facts: FactMap) -> Iterator[Op]:
    """Step 6: ovn-trace of a DHCP request from each traced port."""
    for t in plan.get("trace", []):
        flow = (
            f'inport=="{t["port"]}" && eth.src=={t["mac"]} && ip4.src==0.0.0.0 && ip.ttl==1 && '
            "ip4.dst==255.255.255.255 && udp.src==68 && udp.dst==67"
        )
        yield show("ovn-trace", "--summary", t["switch"], flow)


def bind(plan: Plan, facts: FactMap) -> Iterator[Op]:
    """Steps 7 and 8: an OVS internal port per logical port, moved into its namespace ("VM")."""
    for b in plan["bindings"]:
        port, ns, mac = b["port"], b["netns"], b["mac"]
        if ns in facts["netns"]:
            yield Noop(f"namespace {ns} exists")
        else:
            yield cmd("ip", "netns", "add", ns)
        iface = facts["interfaces"].get(port)
        want_ids = {"iface-id": port}
        if iface is None:
            yield cmd(
                "ovs-vsctl",
                "--may-exist",
                "add-port",
                "br-int",
                port,
                "--",
                "set",
                "interface",
                port,
                "type=internal",
                f'mac=["{mac}"]',
                f"external_ids:iface-id={port}",
            )
        elif iface["type"] == "internal" and iface["mac"] == mac and iface["external_ids"].get("iface-id") == port:
            yield Noop(f"{port} is on br-int with iface-id={port} mac={mac}")
        else:
            yield cmd(
                "ovs-vsctl",
                "set",
                "interface",
                port,
                "type=internal",
                f'mac=["{mac}"]',
                *(f"external_ids:{k}={v}" for k, v in want_ids.items()),
            )
        in_ns = link(facts[f"ns_addrs:{ns}"], ifname=port)
        if in_ns is not None and link(facts["addrs"], ifname=port) is not None:
            # ovs-vswitchd restarted (userspace datapath): it made the port anew here, and the one in the
            # namespace is an orphan with no carrier
            yield cmd("ip", "-n", ns, "link", "del", port)
            in_ns = None
        if in_ns is None:
            yield Wait(f"{port} appears on this node", ("ip", "link", "show", port), 10)
            yield cmd("ip", "link", "set", port, "netns", ns)
        else:
            yield Noop(f"{port} is in namespace {ns}")
        if in_ns is not None and in_ns.get("address", "").lower() != mac:
            yield cmd("ip", "-n", ns, "link", "set", port, "address", mac)
        if in_ns is not None and "UP" in in_ns.get("flags", []):
            yield Noop(f"{port} is up in {ns}")
        else:
            # up before dhclient: a DISCOVER sent while the port comes up is lost, and dhclient retries
            # only after 4-8 s
            yield cmd("ip", "-n", ns, "link", "set", port, "up")
        if "127.0.0.1/8" in addr_of(facts[f"ns_addrs:{ns}"], "lo"):
            yield Noop(f"{ns} lo has 127.0.0.1/8")
        else:
            yield cmd("ip", "-n", ns, "addr", "add", "127.0.0.1/8", "dev", "lo")
            yield cmd("ip", "-n", ns, "link", "set", "lo", "up")


# running means not yet reaped either: a zombie still counts as gone
PID_GONE = '! grep -qs "^State:[[:space:]]*[^ZX]" "/proc/$1/status"'


def dhclient_files(ns: str) -> tuple[str, str]:
    """Per-namespace pid and lease files, so one dhclient per port and the node's own lease file untouched."""
    return f"/run/dhclient-{ns}.pid", f"/var/lib/dhcp/dhclient-{ns}.leases"


def dhcp(plan: Plan, facts: FactMap) -> Iterator[Op]:
    """Step 8: dhclient in each namespace, with its own lease and pid files (idempotent: one per port)."""
    for b in plan["bindings"]:
        port, ns = b["port"], b["netns"]
        pidfile, leases = dhclient_files(ns)
        held = addr_of(facts[f"ns_addrs:{ns}"], port)
        pid = facts[f"pid_of:{pidfile}"]
        if held and pid:
            yield Noop(f"{ns} holds {', '.join(held)} (dhclient running)")
            continue
        if pid:  # it serves a port that is gone (made anew by bind): one dhclient per port
            yield cmd("kill", str(pid))
            yield Wait(f"the old dhclient of {ns} ended", ("sh", "-c", PID_GONE, "sh", str(pid)), 10)
        yield cmd(
            "ip", "netns", "exec", ns, "dhclient", "-v", "-i", "-1", "-lf", leases, "-pf", pidfile, port, timeout=90
        )
    yield from show_leases(plan, facts)


def show_leases(plan: Plan, facts: FactMap) -> Iterator[Op]:
    for b in plan["bindings"]:
        yield show("ip", "netns", "exec", b["netns"], "ip", "-4", "addr", "show", b["port"])


def unbind(plan: Plan, facts: FactMap) -> Iterator[Op]:
    """Undo steps 7-8 on a host (demo --reset): every process in the namespace (our dhclient and one a
    trainee started with --no-pid), the namespace, the OVS port."""
    for b in plan["bindings"]:
        port, ns = b["port"], b["netns"]
        if ns in facts["netns"]:
            pids = facts[f"ns_pids:{ns}"]
            if pids:
                yield cmd("kill", *map(str, pids))
            yield cmd("ip", "netns", "del", ns)
        if port in facts["interfaces"]:
            yield cmd("ovs-vsctl", "--if-exists", "del-port", "br-int", port)
        pidfile, leases = dhclient_files(ns)
        if facts[f"exists:{leases}"]:
            yield cmd("rm", "-f", leases, pidfile)


def unlogical(plan: Plan, facts: FactMap) -> Iterator[Op]:
    """Undo steps 4-5 on central (demo --reset)."""
    nb = facts["nb"]
    names = {s["name"] for s in nb["nb_switches"]}
    for sw in plan["switches"]:
        if sw["name"] in names:
            yield cmd("ovn-nbctl", "--if-exists", "ls-del", sw["name"])
        for row in nb["nb_dhcp"]:
            if row["cidr"] == sw["subnet"]:
                yield cmd("ovn-nbctl", "dhcp-options-del", row["_uuid"])
