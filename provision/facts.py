"""Facts: how to read each piece of node state and how to parse it. The host's readiness gates use the
same definitions (argv on the node, parse on the host), so there is one parser per fact."""

from __future__ import annotations

import json
import shutil
import subprocess
from typing import Any

from .core import Fact, exists
from .names import BR_INT, BR_PHY, OVS_NETDEV
from .pids import pid_alive, pid_of

DAEMON_PIDFILES = {
    "ovsdb-server": "/run/openvswitch/ovsdb-server.pid",
    "ovs-vswitchd": "/run/openvswitch/ovs-vswitchd.pid",
    "ovnnb_db": "/run/ovn/ovnnb_db.pid",
    "ovnsb_db": "/run/ovn/ovnsb_db.pid",
    "ovn-northd": "/run/ovn/ovn-northd.pid",
    "ovn-controller": "/run/ovn/ovn-controller.pid",
}
# what proves a pidfile's pid is still that daemon: its program, and a word of its arguments (its database)
DAEMON_PROGRAMS = {
    "ovsdb-server": ("ovsdb-server", "conf.db"),
    "ovs-vswitchd": ("ovs-vswitchd", ""),
    "ovnnb_db": ("ovsdb-server", "ovnnb_db.db"),
    "ovnsb_db": ("ovsdb-server", "ovnsb_db.db"),
    "ovn-northd": ("ovn-northd", ""),
    "ovn-controller": ("ovn-controller", ""),
}


def ovsdb_json(out: str) -> list[dict[str, Any]]:
    """Rows of `ovs-vsctl/ovn-nbctl --format=json list TABLE` as dicts with plain Python values."""
    doc = json.loads(out)
    return [{h: _atom(v) for h, v in zip(doc["headings"], row, strict=False)} for row in doc["data"]]


def _atom(v: Any) -> Any:
    if isinstance(v, list) and len(v) == 2 and isinstance(v[0], str):
        kind, val = v
        if kind == "map":
            return {_atom(k): _atom(x) for k, x in val}
        if kind == "set":
            return [_atom(x) for x in val]
        if kind in ("uuid", "named-uuid"):
            return val
    return v


def as_list(v: Any) -> list[Any]:
    """OVSDB optional/set columns: [] when empty, a bare value when one, a list when several."""
    return v if isinstance(v, list) else [v]


def ip_json(out: str) -> list[dict[str, Any]]:
    return json.loads(out) if out.strip() else []


def netns_names(out: str) -> list[str]:
    return [n["name"] for n in ip_json(out)]


def lines(out: str) -> list[str]:
    return [line.strip() for line in out.splitlines() if line.strip()]


# the box's first-boot unit, which applies the request the host put on the seed disk (labgen's vagrant
# backend writes the disk, labgen/backends/vagrant/boxdata.py the unit)
FIRST_BOOT_UNIT = "ovn-lab-first-boot.service"
FIRST_BOOT_LOG = "/var/log/ovn-lab/first-boot.log"
SEED_SERIAL = "ovn-lab-seed"  # the seed disk's serial: the unit finds the disk by it


def unit_props(out: str) -> dict[str, str]:
    """`systemctl show --property=...`: KEY=VALUE lines. No ActiveState: not systemd's answer."""
    props = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    if "ActiveState" not in props:
        raise ValueError("no ActiveState")
    return props


def unit_state(unit: str) -> dict[str, bool]:
    def ok(*argv: str) -> bool:
        return subprocess.run(list(argv), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0

    return {
        "enabled": ok("systemctl", "is-enabled", "--quiet", unit),
        "active": ok("systemctl", "is-active", "--quiet", unit),
    }


def read_text(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def tool_paths(_: str) -> dict[str, bool]:
    return {t: shutil.which(t) is not None for t in ("ovs-vsctl", "ovn-controller", "ovn-northd", "dhclient", "ping")}


NB_TABLES = ("nb_switches", "nb_ports", "nb_dhcp")


def _nb_argv() -> tuple[str, ...]:
    """One `ovn-nbctl --format=json` call, one JSON document per line, for the tables of NB_TABLES."""
    argv: list[str] = ["ovn-nbctl", "--format=json"]
    for name in NB_TABLES:
        argv += [*FACTS[name].argv("")[2:], "--"]  # type: ignore[misc]
    return tuple(argv[:-1])


def _list(db: str, table: str, columns: str, about: str) -> Fact:
    return Fact(lambda _: (db, "--format=json", f"--columns={columns}", "list", table), ovsdb_json, about=about)


def _ofport(out: str) -> int:
    """`ovs-vsctl --bare --columns=ofport find ...` of one interface: its OpenFlow port number."""
    port = int(out.strip())  # no such interface: "" -> ValueError, an unreadable fact
    if port < 1:
        raise ValueError(f"ofport {port}: OVS could not add the interface")
    return port


FACTS: dict[str, Fact] = {
    "hostname": Fact(lambda _: ("hostname",), lambda out: out.strip()),
    "tools": Fact(None, read=tool_paths),
    "exists": Fact(None, read=exists),
    "file": Fact(None, read=read_text),
    "pid_alive": Fact(
        None,
        read=lambda d: pid_alive(DAEMON_PIDFILES.get(d, d), *DAEMON_PROGRAMS.get(d, ("", ""))),
        about="the pidfile of {}",
    ),
    "pid_of": Fact(None, read=pid_of),  # the process a pidfile names, proven (a dhclient)
    "unit": Fact(None, read=unit_state),
    "first_boot": Fact(
        lambda _: ("systemctl", "show", "--property=ActiveState,Result,ExecMainStatus,Job", FIRST_BOOT_UNIT),
        unit_props,
        about="the first-boot unit's state",
    ),
    "passwd_locked": Fact(lambda user: ("passwd", "-S", user), lambda out: out.split()[1:2] == ["L"]),
    # ovs (local)
    "ovs_ids": Fact(
        lambda _: ("ovs-vsctl", "--timeout=10", "--format=json", "--columns=external_ids", "list", "open_vswitch"),
        lambda out: ovsdb_json(out)[0]["external_ids"],
        about="the Open_vSwitch external_ids",
    ),
    "bridges": Fact(
        lambda _: (
            "ovs-vsctl",
            "--timeout=10",
            "--format=json",
            "--columns=name,datapath_type,fail_mode,other_config",
            "list",
            "bridge",
        ),
        lambda out: {r["name"]: r for r in ovsdb_json(out)},
        about="the OVS bridges",
    ),
    "bridge_ports": Fact(
        lambda br: ("ovs-vsctl", "--timeout=10", "list-ports", br), lines, default=[], has_default=True
    ),
    "interfaces": Fact(
        lambda _: (
            "ovs-vsctl",
            "--timeout=10",
            "--format=json",
            "--columns=name,type,mac,external_ids,options,error",
            "list",
            "interface",
        ),
        lambda out: {r["name"]: r for r in ovsdb_json(out)},
        about="the OVS interfaces",
    ),
    # the OpenFlow port of each interface (explain shows the tunnel's)
    "ofports": _list("ovs-vsctl", "interface", "name,options,ofport,type", "the OVS interfaces' OpenFlow ports"),
    # the OpenFlow port of the geneve tunnel to the chassis whose encap IP is the argument
    "geneve_ofport": Fact(
        lambda ip: (
            *("ovs-vsctl", "--bare", "--columns=ofport", "find", "interface", "type=geneve"),
            f"options:remote_ip={ip}",
        ),
        _ofport,
        about="the geneve port to {}",
    ),
    "addrs": Fact(lambda _: ("ip", "-j", "addr"), ip_json, about="the node's addresses"),
    "netns": Fact(lambda _: ("ip", "-j", "netns", "list"), netns_names),
    "ns_pids": Fact(
        lambda ns: ("ip", "netns", "pids", ns), lambda out: [int(x) for x in out.split()], default=[], has_default=True
    ),
    # [] when the namespace does not exist (yet)
    "ns_addrs": Fact(
        lambda ns: ("ip", "-n", ns, "-j", "addr"), ip_json, default=[], has_default=True, about="the links in {}"
    ),
    # ovn (central, local unix sockets)
    "controller_status": Fact(
        lambda _: ("ovn-appctl", "-t", "ovn-controller", "connection-status"),
        lambda out: out.strip(),
        about="ovn-controller's connection status",
    ),
    "controller_log": Fact(
        lambda _: ("tail", "-n", "5", "/var/log/ovn/ovn-controller.log"),
        lambda out: out.strip(),
        about="ovn-controller's log",
    ),
    "sb_connection": Fact(lambda _: ("ovn-sbctl", "--timeout=10", "get-connection"), lines),
    "nb_connection": Fact(lambda _: ("ovn-nbctl", "--timeout=10", "get-connection"), lines),
    # (private key, certificate, CA certificate) each database client of the node is told to use
    "ssl": Fact(lambda ctl: (ctl, "--timeout=10", "get-ssl"), lambda out: ssl_paths(out)),
    "nb_switches": _list("ovn-nbctl", "logical_switch", "_uuid,name,other_config,ports", "the NB's logical switches"),
    "nb_ports": _list(
        "ovn-nbctl",
        "logical_switch_port",
        "_uuid,name,addresses,dynamic_addresses,dhcpv4_options,up",
        "the NB's logical switch ports",
    ),
    "nb_dhcp": _list("ovn-nbctl", "dhcp_options", "_uuid,cidr,options", "the NB's DHCP options"),
    # the three above in one ovn-nbctl call (the logical step reads all three before it changes anything)
    "nb": Fact(lambda _: _nb_argv(), lambda out: dict(zip(NB_TABLES, map(ovsdb_json, out.splitlines()), strict=True))),
    "nb_acls": _list("ovn-nbctl", "acl", "direction,priority,match,action", "the NB's ACLs"),
    "nb_port_security": _list("ovn-nbctl", "logical_switch_port", "name,port_security", "the NB's port security"),
    "sb_chassis": _list("ovn-sbctl", "chassis", "_uuid,name,hostname,encaps", "the SB's chassis"),
    "sb_encaps": _list("ovn-sbctl", "encap", "chassis_name,ip,type", "the SB's Encap rows"),
    "sb_bindings": _list("ovn-sbctl", "port_binding", "logical_port,chassis,mac,up", "the SB's port bindings"),
    "sb_port_keys": _list(
        "ovn-sbctl", "port_binding", "logical_port,tunnel_key,chassis,datapath", "the SB's port tunnel keys"
    ),
    "sb_datapaths": _list("ovn-sbctl", "datapath_binding", "_uuid,tunnel_key", "the SB's datapaths"),
    # text, for the host to read with labgen.workshop.detrace (the parser of OVN's own tools' text)
    "lflow_list": Fact(lambda _: ("ovn-sbctl", "lflow-list"), about="the SB's logical flows"),
    "openflow": Fact(lambda _: ("ovs-ofctl", "dump-flows", "br-int"), about="br-int's OpenFlow rules"),
}


def ssl_paths(out: str) -> tuple[str, str, str]:
    """`ovs-vsctl get-ssl` (or ovn-nbctl/ovn-sbctl): "Private key: PATH" lines; empty when unset."""
    got = dict(ln.split(": ", 1) for ln in out.splitlines() if ": " in ln)
    return (got.get("Private key", ""), got.get("Certificate", ""), got.get("CA Certificate", ""))


def addr_of(links: list[dict[str, Any]], ifname: str) -> list[str]:
    """IPv4 addresses (with prefix) on `ifname` in an `ip -j addr` fact."""
    for link in links:
        if link.get("ifname") == ifname:
            return [f"{a['local']}/{a['prefixlen']}" for a in link.get("addr_info", []) if a.get("family") == "inet"]
    return []


def underlay_nic(links: list[dict[str, Any]], *, ip: str, mac: str, netdev: bool) -> dict[str, Any] | None:
    """The NIC that carries the underlay, never found by name: on the kernel datapath by its address, else
    (not configured yet) by its MAC; on the userspace datapath by its MAC, skipping OVS's own devices
    (br-phy takes the NIC's MAC)."""
    if not netdev:
        return link(links, ip=ip) or link(links, mac=mac)
    return next(
        (
            lk
            for lk in links
            if lk.get("address", "").lower() == mac and lk["ifname"] not in (BR_PHY, BR_INT, OVS_NETDEV)
        ),
        None,
    )


def link(links: list[dict[str, Any]], *, ifname: str = "", mac: str = "", ip: str = "") -> dict[str, Any] | None:
    for lk in links:
        if ifname and lk.get("ifname") == ifname:
            return lk
        if mac and lk.get("address", "").lower() == mac.lower():
            return lk
        if ip and any(a.get("local") == ip for a in lk.get("addr_info", [])):
            return lk
    return None
