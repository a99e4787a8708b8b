"""Views derived from parsed facts, each computed here once: what OVN allocated to each port (MAC, IP), where
each port is bound (by chassis name), the geneve tunnels of a node, the tunnel keys of ports, the ACLs that
drop and the MACs port security allows. Pure functions of fact values (the `FACTS` parsers' output), so
the host (labgen.observe.Observer), the provisioner's steps and tests share them; a trainer's progress
view reads the same ones: net0 exists (nb_switches), DHCP options (nb_dhcp), ports and their addresses
(allocations), bindings, leases (addr_of on ns_addrs)."""

from __future__ import annotations

from typing import Any, NamedTuple

from .facts import as_list

Rows = list[dict[str, Any]]


class Allocation(NamedTuple):
    """The addresses OVN gave a port: its `dynamic_addresses`, "MAC IP"; ip "" while northd has none."""

    mac: str
    ip: str


NOT_ALLOCATED = Allocation("", "")


def allocations(nb_ports: Rows) -> dict[str, Allocation]:
    """Port name -> its Allocation, for each port that has a dynamic MAC at least (the `nb_ports` fact)."""
    out = {}
    for r in nb_ports:
        words = r.get("dynamic_addresses") if isinstance(r.get("dynamic_addresses"), str) else ""
        parts = str(words).split()
        if parts:
            out[r["name"]] = Allocation(parts[0], parts[1] if len(parts) > 1 else "")
    return out


class Bound(NamedTuple):
    chassis: str | None  # the name of the chassis that claimed it; None: not bound
    up: bool | None


def chassis_names(sb_chassis: Rows) -> dict[str, str]:
    """Chassis row uuid -> chassis name (the `sb_chassis` fact)."""
    return {r["_uuid"]: r["name"] for r in sb_chassis}


def _chassis(uuid: Any, names: dict[str, str]) -> str | None:
    return names.get(uuid) if isinstance(uuid, str) else None  # an unbound port's chassis is []


def bindings(sb_bindings: Rows, sb_chassis: Rows) -> dict[str, Bound]:
    """Logical port -> where it is bound, joined with the chassis names (`sb_bindings`, `sb_chassis`)."""
    names = chassis_names(sb_chassis)
    return {r["logical_port"]: Bound(_chassis(r["chassis"], names), _up(r.get("up"))) for r in sb_bindings}


def _up(up: Any) -> bool | None:
    return up if isinstance(up, bool) else None  # optional: [] until ovn-controller sets it


class PortKey(NamedTuple):
    key: int  # the port's tunnel key: reg14/reg15 in OpenFlow, the geneve option's halves
    datapath: int | None  # its datapath's tunnel key: the geneve VNI
    chassis: str | None


def port_keys(sb_port_keys: Rows, sb_datapaths: Rows, sb_chassis: Rows) -> dict[str, PortKey]:
    """Logical port -> its tunnel key, its datapath's key and its chassis name."""
    dp = {r["_uuid"]: r["tunnel_key"] for r in sb_datapaths}
    names = chassis_names(sb_chassis)
    return {
        r["logical_port"]: PortKey(r["tunnel_key"], dp.get(r["datapath"]), _chassis(r["chassis"], names))
        for r in sb_port_keys
    }


class Tunnel(NamedTuple):
    name: str
    remote_ip: str
    ofport: int | None  # None when the fact did not read it


def tunnels(interfaces: dict[str, dict[str, Any]] | Rows) -> list[Tunnel]:
    """The geneve ports of an `interfaces` (or `ofports`) fact, by remote IP."""
    rows = interfaces.values() if isinstance(interfaces, dict) else interfaces
    found = [
        Tunnel(r["name"], r["options"].get("remote_ip", ""), r["ofport"] if isinstance(r.get("ofport"), int) else None)
        for r in rows
        if r.get("type") == "geneve"
    ]
    return sorted(found, key=lambda t: t.remote_ip)


def geneve_remotes(interfaces: dict[str, dict[str, Any]]) -> list[str]:
    """remote_ip of every geneve interface in the `interfaces` fact."""
    return [t.remote_ip for t in tunnels(interfaces)]


def drops(nb_acls: Rows) -> Rows:
    """The ACLs (the `nb_acls` fact) that drop or reject what they match."""
    return [r for r in nb_acls if r["action"] in ("drop", "reject")]


def port_security(nb_port_security: Rows) -> dict[str, list[str]]:
    """Port -> the MACs its port_security allows; a port without port security allows any and is left out."""
    out = {}
    for r in nb_port_security:
        allowed = [a.split()[0] for a in as_list(r["port_security"]) if a.split()]
        if allowed:
            out[r["name"]] = allowed
    return out
