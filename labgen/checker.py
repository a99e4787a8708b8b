"""A Checker that reads lab.toml's values by the rules of labgen.keys, recording one Issue per problem (with
the key path and the fix) instead of stopping at the first."""

from __future__ import annotations

import difflib
import ipaddress
import re
from typing import Any

from .backends import BACKENDS
from .errors import Issue
from .keys import BOX, HOSTNAME, IFNAME, KEY, MAC, OVNNAME, REQUIRED, SCHEMA, Key

__all__ = ["BOX", "HOSTNAME", "IFNAME", "MAC", "OVNNAME", "Checker", "did_you_mean", "key", "shown"]

PLAIN = re.compile(r"[A-Za-z0-9_.-]{1,64}")  # a key shown as it is


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
            if name not in SCHEMA.get(kind, ()):
                where = f"{path}.{key(name)}" if path else key(name)
                self.bad(where, "unknown key", did_you_mean(name, SCHEMA[kind]))
        return data

    def get(self, data: dict[str, Any], path: str, rule: str) -> Any:
        """The value of the key `rule` (its path in labgen.keys) from the table `data` at `path`, checked by
        its rules; its default when it is not written; None when it is missing or broken (an Issue says so)."""
        k = KEY[rule]
        where = f"{path}.{k.name}" if path else k.name
        if k.name not in data:
            if k.default is REQUIRED:
                self.bad(where, f"missing: {k.why}" if k.why else "missing", f"add {k.name} = {k.example} to [{path}]")
                return None
            return self.ruled(k.default, where, k) if k.value else k.default  # a default subnet is parsed too
        value = data[k.name]
        # bool is an int in Python; keep them apart so `memory = true` is a type error
        if not isinstance(value, k.type) or (k.type is int and isinstance(value, bool)):
            self.bad(
                where, f"must be {_tname(k.type)}, got {_tname(type(value))} {shown(value)}", _type_fix(k.name, k.type)
            )
            return None
        if k.type is str and not value:
            self.bad(where, "is empty", f"give {k.name} a value, or leave the key out where it has a default")
            return None
        return self.ruled(value, where, k)

    def values(self, data: dict[str, Any], path: str) -> dict[str, Any]:
        """Every key of the plain table at `path` ([ovn], [classroom]), each as `get` reads it."""
        return {name: self.get(data, path, f"{path}.{name}") for name in SCHEMA[path]}

    def name(self, name: str, path: str, rule: str) -> bool:
        """A name of a named table ([nodes.NAME]) checked by its rule; False (with an Issue) when broken."""
        return self.ruled(name, path, KEY[rule]) is not None

    def ruled(self, value: Any, where: str, k: Key) -> Any:
        """`value` of the right type, checked by the key's own rules: the value to use, or None."""
        choices = BACKENDS.keys() if k.value == "backend" else k.choices  # the registry, as tests extend it
        if value in choices:
            return value
        if choices and (not k.value or k.value == "backend"):
            self.bad(where, k.bad.format(value=shown(value)), k.fix or did_you_mean(value, choices))
            return None
        if k.range and not k.range[0] <= value <= k.range[1]:
            self.bad(where, k.bad.format(value=value), k.fix)
            return None
        if k.pattern and not k.pattern.fullmatch(value):
            self.bad(where, k.bad.format(value=shown(value)), k.fix)
            return None
        if k.is_reserved(value):
            self.bad(where, k.reserved_bad.format(value=value), k.reserved_fix)
            return None
        if k.value == "network":
            return self.network(value, where)
        if k.value == "mac":
            return self.mac(value, where)
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
