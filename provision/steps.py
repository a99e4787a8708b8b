"""The tutorial's steps as idempotent plans: each reads facts and yields only the commands still needed.

A step gets the node's spec (the plan JSON, see labgen.plan) and the facts; it never executes anything.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator, Mapping
from typing import Any

from . import services
from .core import Noop, Op, StepFailed, Wait, cmd, show
from .facts import addr_of, as_list, link, underlay_nic

Spec = dict[str, Any]
Facts = Mapping[str, Any]
APT_PACKAGES = ("openvswitch-switch", "ovn-host", "isc-dhcp-client", "iputils-ping", "tcpdump")


def install(spec: Spec, facts: Facts) -> Iterator[Op]:
    """Step 1: packages. The lab's own box has them; other boxes get them from apt."""
    tools = facts["tools"]
    need = ["ovs-vsctl", "ovn-controller", "dhclient", "ping"] + (["ovn-northd"] if spec["central"] else [])
    missing = [t for t in need if not tools[t]]
    if not missing:
        yield Noop("Open vSwitch, OVN and dhclient are installed")
        return
    if not spec.get("install", True):
        raise StepFailed(
            f"missing {', '.join(missing)} and this backend installs nothing: "
            "apt-get install openvswitch-switch ovn-central ovn-host isc-dhcp-client iputils-ping"
        )
    # a fresh cloud image runs apt on first boot: wait for its lock instead of failing on it
    yield Wait("the dpkg lock is free", ("sh", "-c", "! fuser /var/lib/dpkg/lock-frontend /var/lib/dpkg/lock"), 600)
    pkgs = [*APT_PACKAGES, *(["ovn-central"] if spec["central"] else [])]
    yield cmd("apt-get", "update", "-q", timeout=600)
    yield cmd("env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "install", "-y", "-q", *pkgs, timeout=1200)


def root_ssh(spec: Spec, facts: Facts) -> Iterator[Op]:
    """VMs: let the lab's ssh key log in as root, so `ssh ovn-host-01` (invoke ssh-config) lands where the
    tutorial's commands run. The lab's networks are isolated from everything else."""
    if facts["exists:/root/.ssh/authorized_keys"]:
        yield Noop("root accepts the lab's ssh key")
    else:
        yield cmd("install", "-D", "-m", "600", "/home/vagrant/.ssh/authorized_keys", "/root/.ssh/authorized_keys")


def ovs(spec: Spec, facts: Facts) -> Iterator[Op]:
    """Step 1: Open vSwitch running."""
    yield from services.start_ovs(spec, facts)


def central(spec: Spec, facts: Facts) -> Iterator[Op]:
    """Step 2: NB/SB databases + ovn-northd; the SB listens on 6642 for the chassis."""
    yield from services.start_central(spec, facts)
    if facts["sb_connection"] == ["ptcp:6642"]:
        yield Noop("the SB database listens on ptcp:6642")
    else:
        yield cmd("ovn-sbctl", "set-connection", "ptcp:6642")


def chassis(spec: Spec, facts: Facts) -> Iterator[Op]:
    """Steps 1 and 3: hostname, br-int, external_ids (nothing here needs the SB yet)."""
    node = spec["node"]
    if facts["hostname"] == node:
        yield Noop(f"hostname is {node}")
    elif spec["services"] == "systemd":
        yield cmd("hostnamectl", "set-hostname", node)
        yield cmd("sed", "-i", f"s/^127.0.1.1.*/127.0.1.1 {node}/", "/etc/hosts")
    else:
        yield cmd("hostname", node)
    yield from integration_bridge(spec, facts)
    want = {
        "ovn-remote": f"tcp:{spec['central_ip']}:6642",
        "ovn-encap-ip": spec["ip"],
        "ovn-encap-type": spec["encap_type"],
        "system-id": node,
        "hostname": node,  # else the chassis shows the hostname recorded before ours was set
    }
    if spec["datapath"] == "netdev":
        want["ovn-bridge-datapath-type"] = "netdev"
    if spec["services"] == "systemd":
        # ovs-ctl sets external_ids:system-id from this file at every start: without it a reboot brings
        # the chassis back under a random UUID instead of the node's name
        conf = "/etc/openvswitch/system-id.conf"
        if facts[f"file:{conf}"] == node:
            yield Noop(f"{conf} says {node}")
        else:
            yield cmd("sh", "-c", f"echo {node} > {conf}")
    have = facts["ovs_ids"]
    if all(have.get(k) == v for k, v in want.items()):
        yield Noop(f"external_ids: ovn-remote={want['ovn-remote']} ovn-encap-ip={spec['ip']}")
    else:
        yield cmd("ovs-vsctl", "set", "open_vswitch", ".", *(f"external_ids:{k}={v}" for k, v in want.items()))


def controller(spec: Spec, facts: Facts) -> Iterator[Op]:
    """Step 3, last: ovn-controller, once the SB answers (started earlier, it backs off up to 8 s between
    reconnects)."""
    sb = f"tcp:{spec['central_ip']}:6642"
    yield Wait(f"the SB answers on {sb}", ("ovn-sbctl", f"--db={sb}", "--timeout=5", "--no-leader-only", "show"), 120)
    yield from services.start_controller(spec, facts)


def underlay(spec: Spec, facts: Facts) -> Iterator[Op]:
    """The node's underlay IP. In VMs Vagrant put it on a NIC: find that NIC by its address, never by
    name. On the userspace datapath, geneve needs the IP on an OVS netdev bridge (br-phy) whose port is
    the NIC (found by MAC), or tunnelled packets are dropped ("native tunnel routing failed")."""
    links = facts["addrs"]
    cidr = f"{spec['ip']}/{spec['prefixlen']}"
    nic = underlay_nic(links, ip=spec["ip"], mac=spec["mac"], netdev=spec["datapath"] == "netdev")
    if spec["datapath"] != "netdev":
        if nic is None:
            raise StepFailed(
                f"no interface has the underlay address {spec['ip']} or MAC {spec['mac']}; interfaces: "
                + ", ".join(f"{lk['ifname']} {lk.get('address')} {addr_of(links, lk['ifname'])}" for lk in links)
            )
        name = nic["ifname"]
        if cidr in addr_of(links, name):
            yield Noop(f"underlay {cidr} is on {name}")
        else:
            yield from static_address(facts, name, cidr)
        yield from altname(spec, facts, nic)
        return
    if nic is None:
        raise StepFailed(f"no interface with the underlay MAC {spec['mac']}")
    name = nic["ifname"]
    bridges = facts["bridges"]
    if "br-phy" in bridges and name in facts["bridge_ports:br-phy"]:
        yield Noop(f"br-phy (netdev) carries the underlay NIC {name}")
    else:
        yield cmd(
            "ovs-vsctl",
            "--may-exist",
            "add-br",
            "br-phy",
            "--",
            "set",
            "bridge",
            "br-phy",
            "datapath_type=netdev",
            f"other_config:hwaddr={spec['mac']}",
            "--",
            "--may-exist",
            "add-port",
            "br-phy",
            name,
        )
    if "UP" not in nic.get("flags", []):
        yield cmd("ip", "link", "set", name, "up")
    if cidr in addr_of(facts["addrs"], "br-phy"):
        yield Noop(f"{cidr} is on br-phy")
    else:
        yield cmd("ip", "addr", "replace", cidr, "dev", "br-phy")
    phy = link(facts["addrs"], ifname="br-phy")
    if phy is None or "UP" not in phy.get("flags", []):
        yield cmd("ip", "link", "set", "br-phy", "up")
    if phy is not None:
        yield from altname(spec, facts, phy)


def static_address(facts: Facts, name: str, cidr: str) -> Iterator[Op]:
    """The underlay address on a VM NIC, kept across reboots. The lab's box leaves this to us: Vagrant's
    own network configuration costs about a minute of ssh round trips under TCG."""
    if facts["exists:/etc/network/interfaces"]:  # ifupdown, as in the lab's box
        path = "/etc/network/interfaces.d/ovn-lab-underlay"
        text = f"auto {name}\\niface {name} inet static\\n    address {cidr}\\n"
        yield cmd("sh", "-c", f"printf '{text}' > {path}")
        yield cmd("ifup", name)
    else:
        path = "/etc/systemd/network/10-ovn-lab-underlay.network"
        yield cmd("sh", "-c", f"printf '[Match]\\nName={name}\\n\\n[Network]\\nAddress={cidr}\\n' > {path}")
        yield cmd("ip", "addr", "replace", cidr, "dev", name)
        yield cmd("ip", "link", "set", name, "up")


def altname(spec: Spec, facts: Facts, nic: dict[str, Any]) -> Iterator[Op]:
    """lab.toml's underlay.nic_name as an alternative name of the interface holding the underlay IP, so the
    tutorial's `ip addr show enp9s0` works verbatim; a systemd .link file keeps it across reboots."""
    name = spec.get("nic_name")
    if not name:
        return
    if name in nic.get("altnames", []) or nic["ifname"] == name:
        yield Noop(f"{nic['ifname']} is also called {name}")
    else:
        yield cmd("ip", "link", "property", "add", "dev", nic["ifname"], "altname", name)
    if spec["services"] == "systemd":
        path = "/etc/systemd/network/10-ovn-lab-underlay.link"
        text = f"[Match]\nMACAddress={nic.get('address', '')}\n\n[Link]\nNamePolicy=kernel\nAlternativeName={name}\n"
        if facts[f"exists:{path}"]:
            yield Noop(f"{path} exists")
        else:
            yield cmd("sh", "-c", f"printf '{text}' > {path}")


def datapath_id(ip: str) -> str:
    """A fixed OpenFlow datapath ID for br-int (from the node's IP). Without one OVS derives it from the
    lowest port MAC, so adding port1 changes it; OVS then drops every OpenFlow connection, ovn-controller
    reconnects only after 2 s, and the DHCP requests sent meanwhile are lost (dhclient retries 4-8 s later)."""
    return f"{int(ipaddress.IPv4Address(ip)):016x}"


def integration_bridge(spec: Spec, facts: Facts) -> Iterator[Op]:
    br = facts["bridges"].get("br-int")
    dp = spec["datapath"]
    dpid = datapath_id(spec["ip"])
    if (
        br
        and (br["datapath_type"] or "system") == dp
        and br["fail_mode"] == "secure"
        and br["other_config"].get("datapath-id") == dpid
    ):
        yield Noop(f"br-int exists (datapath {dp}, datapath-id {dpid})")
        return
    extra = [
        "--",
        "set",
        "bridge",
        "br-int",
        "fail-mode=secure",
        "other_config:disable-in-band=true",
        f"other_config:datapath-id={dpid}",
    ]
    if dp == "netdev":  # ovn-controller would otherwise create it with the kernel datapath
        extra.append("datapath_type=netdev")
    yield cmd("ovs-vsctl", "--may-exist", "add-br", "br-int", *extra)


def logical(spec: Spec, facts: Facts) -> Iterator[Op]:
    """Steps 4 and 5 on central: switches with DHCP options, logical ports."""
    nb = facts["nb"]
    switches = {s["name"]: s for s in nb["nb_switches"]}
    dhcp_rows = nb["nb_dhcp"]
    ports = {p["name"]: p for p in nb["nb_ports"]}
    single = len(spec["switches"]) == 1
    for sw in spec["switches"]:
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
        for p in spec["ports"]:
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


def show_logical(spec: Spec, facts: Facts) -> Iterator[Op]:
    """What the tutorial shows after steps 4-5."""
    yield show("ovn-nbctl", "list", "dhcp_options")
    yield show("ovn-nbctl", "show")
    yield show("ovn-nbctl", "--columns", "name,dynamic_addresses", "list", "logical_switch_port")


def trace(spec: Spec, facts: Facts) -> Iterator[Op]:
    """Step 6: ovn-trace of a DHCP request from each traced port."""
    for t in spec.get("trace", []):
        flow = (
            f'inport=="{t["port"]}" && eth.src=={t["mac"]} && ip4.src==0.0.0.0 && ip.ttl==1 && '
            "ip4.dst==255.255.255.255 && udp.src==68 && udp.dst==67"
        )
        yield show("ovn-trace", "--summary", t["switch"], flow)


def bind(spec: Spec, facts: Facts) -> Iterator[Op]:
    """Steps 7 and 8: an OVS internal port per logical port, moved into its namespace ("VM")."""
    for b in spec["bindings"]:
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


def dhclient_files(ns: str) -> tuple[str, str]:
    """Per-namespace pid and lease files, so one dhclient per port and the node's own lease file untouched."""
    return f"/run/dhclient-{ns}.pid", f"/var/lib/dhcp/dhclient-{ns}.leases"


def dhcp(spec: Spec, facts: Facts) -> Iterator[Op]:
    """Step 8: dhclient in each namespace, with its own lease and pid files (idempotent: one per port)."""
    for b in spec["bindings"]:
        port, ns = b["port"], b["netns"]
        pidfile, leases = dhclient_files(ns)
        held = addr_of(facts[f"ns_addrs:{ns}"], port)
        if held and facts[f"pid_alive:{pidfile}"]:
            yield Noop(f"{ns} holds {', '.join(held)} (dhclient running)")
            continue
        yield cmd(
            "ip", "netns", "exec", ns, "dhclient", "-v", "-i", "-1", "-lf", leases, "-pf", pidfile, port, timeout=90
        )
    yield from show_leases(spec, facts)


def show_leases(spec: Spec, facts: Facts) -> Iterator[Op]:
    for b in spec["bindings"]:
        yield show("ip", "netns", "exec", b["netns"], "ip", "-4", "addr", "show", b["port"])


def unbind(spec: Spec, facts: Facts) -> Iterator[Op]:
    """Undo steps 7-8 on a host (demo --reset): every process in the namespace (our dhclient and one a
    trainee started with --no-pid), the namespace, the OVS port."""
    for b in spec["bindings"]:
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


def unlogical(spec: Spec, facts: Facts) -> Iterator[Op]:
    """Undo steps 4-5 on central (demo --reset)."""
    nb = facts["nb"]
    names = {s["name"] for s in nb["nb_switches"]}
    for sw in spec["switches"]:
        if sw["name"] in names:
            yield cmd("ovn-nbctl", "--if-exists", "ls-del", sw["name"])
        for row in nb["nb_dhcp"]:
            if row["cidr"] == sw["subnet"]:
                yield cmd("ovn-nbctl", "dhcp-options-del", row["_uuid"])


STEPS: dict[str, Any] = {
    "install": install,
    "root-ssh": root_ssh,
    "ovs": ovs,
    "central": central,
    "underlay": underlay,
    "chassis": chassis,
    "controller": controller,
    "logical": logical,
    "show-logical": show_logical,
    "trace": trace,
    "bind": bind,
    "dhcp": dhcp,
    "show-leases": show_leases,
    "unbind": unbind,
    "unlogical": unlogical,
}


def names() -> list[str]:
    return list(STEPS)
