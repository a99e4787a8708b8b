"""The vocabulary lab.toml is checked with: allowed keys, name rules, and a Checker that records one Issue
per problem (with the key path and the fix) instead of stopping at the first."""

from __future__ import annotations

import difflib
import ipaddress
import re
from typing import Any

from .errors import Issue
from .model import DHCP_REQUIRED

# matched with fullmatch: `$` would also accept a trailing newline
HOSTNAME = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")  # no '_': it separates lab and node names
IFNAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,14}")  # Linux IFNAMSIZ - 1 = 15
OVNNAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}")
MAC = re.compile(r"[0-9a-f]{2}(:[0-9a-f]{2}){5}")
BOX = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}(/[A-Za-z0-9][A-Za-z0-9._-]{0,63})?")
PLAIN = re.compile(r"[A-Za-z0-9_.-]{1,64}")
# what the lab itself names on a node, in OVS or in the underlay: a port of the same name would take it over
RESERVED_IFNAMES = ("lo", "eth0", "br-int", "br-phy", "ovs-netdev", "ovs-system", "genev_sys_6081")
RESERVED_NODES = ("underlay", "mgmt", "vmlinuz", "initrd")  # the lab's own objects are named lab_<these>
MAX_NODES = 250  # each node's underlay MAC ends in its index + 1
UINT32 = 2**32 - 1

# Allowed keys per table; the value says which keys are tables of named entries.
SCHEMA: dict[str, tuple[str, ...]] = {
    "": ("lab", "underlay", "ovn", "vagrant", "nodes", "switches", "ports", "classroom"),
    "lab": ("name", "backend"),
    "underlay": ("subnet", "mtu", "nic_name"),
    "ovn": ("transport",),
    "vagrant": ("box", "accel", "memory", "cpus", "management_subnet"),
    "node": ("ip", "central"),
    "switch": ("subnet", "exclude_ips", "dhcp"),
    "dhcp": (*DHCP_REQUIRED, "mtu"),
    "port": ("switch", "node", "netns", "mac"),
}


def did_you_mean(word: str, choices: Any) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return (
        f"did you mean {close[0]!r}?" if close else f"valid: {', '.join(key(c) for c in sorted(choices)) or '(none)'}"
    )


def is_unicast_mac(mac: str) -> bool:
    return bool(MAC.fullmatch(mac)) and int(mac[:2], 16) & 1 == 0 and mac != "00:00:00:00:00:00"


def key(name: str) -> str:
    """A key or table name as it goes into a message: as is when plain, else quoted and cut short, so a
    message stays one line whatever the file holds."""
    return name if PLAIN.fullmatch(name) else shown(name)


def shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:57]}..."


class Checker:
    """Reads values from the parsed TOML, recording an Issue for each problem instead of raising."""

    def __init__(self) -> None:
        self.issues: list[Issue] = []

    def bad(self, path: str, msg: str, fix: str) -> None:
        self.issues.append(Issue(path, msg, fix))

    def table(self, data: Any, path: str, kind: str) -> dict[str, Any]:
        if not isinstance(data, dict):
            self.bad(path, f"must be a table, got {type(data).__name__}", f"write it as [{path}]")
            return {}
        for name in data:
            if name not in SCHEMA[kind]:
                where = f"{path}.{key(name)}" if path else key(name)
                self.bad(where, "unknown key", did_you_mean(name, SCHEMA[kind]))
        return data

    def get(self, data: dict[str, Any], path: str, name: str, typ: type, default: Any = None) -> Any:
        where = f"{path}.{name}"
        if name not in data:
            if default is None:
                self.bad(where, "missing", f"add {name} = ... to [{path}]")
            return default
        value = data[name]
        # bool is an int in Python; keep them apart so `memory = true` is a type error
        if not isinstance(value, typ) or (typ is int and isinstance(value, bool)):
            self.bad(where, f"must be {_tname(typ)}, got {_tname(type(value))} {shown(value)}", _type_fix(name, typ))
            return None
        if typ is str and not value:
            self.bad(where, "is empty", f"give {name} a value, or leave the key out where it has a default")
            return None
        return value

    def network(self, value: str | None, path: str) -> ipaddress.IPv4Network | None:
        if value is None:
            return None
        try:
            net = ipaddress.IPv4Network(value)
        except ValueError as e:
            self.bad(
                path,
                f"{shown(value)} is not an IPv4 network ({shown(str(e))[1:-1]})",
                "write it as a CIDR with no host bits, e.g. 10.0.0.0/24",
            )
            return None
        special = next(
            (
                what
                for what, yes in (
                    ("loopback", net.is_loopback),
                    ("multicast", net.is_multicast),
                    ("link-local", net.is_link_local),
                    ("reserved", net.is_reserved),
                    ("'this network' (0.0.0.0/8)", net.overlaps(ipaddress.IPv4Network("0.0.0.0/8"))),
                )
                if yes
            ),
            None,
        )
        if special:
            self.bad(path, f"{net} is a {special} range", "use a private range, e.g. 10.0.0.0/24 or 192.168.50.0/24")
        elif not 8 <= net.prefixlen <= 30:
            self.bad(path, f"{net} is too {'large' if net.prefixlen < 8 else 'small'}", "use a /8 to /30, e.g. a /24")
        else:
            return net
        return None

    def address(
        self, value: str | None, path: str, within: ipaddress.IPv4Network | None, within_key: str
    ) -> ipaddress.IPv4Address | None:
        if value is None:
            return None
        try:
            addr = ipaddress.IPv4Address(value)
        except ValueError:
            self.bad(path, f"{shown(value)} is not an IPv4 address", "write it as four numbers, e.g. 10.0.0.1")
            return None
        if within is not None:
            if addr not in within:
                self.bad(
                    path,
                    f"{addr} is outside {within_key} {within}",
                    f"use an address in {within} or change {within_key}",
                )
            elif addr in (within.network_address, within.broadcast_address):
                self.bad(path, f"{addr} is the network or broadcast address of {within}", "use a host address")
        return addr

    def mac(self, value: str | None, path: str) -> str | None:
        if value is None:
            return None
        low = value.lower()
        if not MAC.fullmatch(low):
            self.bad(path, f"{shown(value)} is not a MAC address", 'write six hex pairs, e.g. "c0:ff:ee:00:00:11"')
            return None
        if not is_unicast_mac(low):
            self.bad(
                path,
                f"{value} is not a unicast MAC (multicast bit set or all zero)",
                "use an even first octet, e.g. c0:ff:ee:... or 02:...",
            )
            return None
        return low


def _tname(t: type) -> str:
    return {str: "a string", int: "an integer", bool: "true or false", dict: "a table"}.get(t, t.__name__)


def _type_fix(name: str, typ: type) -> str:
    return {
        str: f'quote it: {name} = "..."',
        int: f"write a number without quotes: {name} = 1024",
        bool: f"write {name} = true or {name} = false",
    }.get(typ, "fix the type")
