"""The lab model: frozen, fully resolved dataclasses built from lab.toml by `labgen.load`."""

from __future__ import annotations

import hashlib
import ipaddress
from dataclasses import dataclass, field
from pathlib import Path

from .keys import default, required

DHCP_REQUIRED = required("switches.NAME.dhcp")  # OVN answers no DHCP without them


@dataclass(frozen=True)
class Underlay:
    subnet: str
    mtu: int
    nic_name: str = default("underlay.nic_name")  # an extra name for the node's underlay NIC, e.g. "enp9s0"


SB_PORT, NB_PORT = 6642, 6641


@dataclass(frozen=True)
class Ovn:
    """How the chassis reach the SB: "tcp" as the tutorial does, or "ssl" (mutual TLS, certificates from a
    per-lab CA that ovs-pki made)."""

    transport: str = default("ovn.transport")


@dataclass(frozen=True)
class Vagrant:
    box: str
    accel: str  # auto | kvm | tcg
    memory: int
    cpus: int
    management_subnet: str


@dataclass(frozen=True)
class Node:
    name: str
    ip: str
    central: bool
    mac: str  # underlay NIC MAC, deterministic per lab and node


@dataclass(frozen=True)
class Dhcp:
    lease_time: int
    router: str
    server_id: str
    server_mac: str
    extra: tuple[tuple[str, str], ...] = ()  # further OVN DHCP options, e.g. ("mtu", "1442")

    def options(self) -> dict[str, str]:
        return {
            "lease_time": str(self.lease_time),
            "router": self.router,
            "server_id": self.server_id,
            "server_mac": self.server_mac,
            **dict(self.extra),
        }


@dataclass(frozen=True)
class Switch:
    name: str
    subnet: str
    exclude_ips: str
    dhcp: Dhcp


@dataclass(frozen=True)
class Port:
    name: str
    switch: str
    node: str
    netns: str
    mac: str | None  # None: "dynamic", OVN chooses

    @property
    def addresses(self) -> str:
        return f"{self.mac} dynamic" if self.mac else "dynamic"


@dataclass(frozen=True)
class Lab:
    name: str
    source: str  # path of the lab.toml it came from
    backend: str
    underlay: Underlay
    vagrant: Vagrant
    nodes: tuple[Node, ...]
    switches: tuple[Switch, ...]
    ports: tuple[Port, ...] = field(default=())
    ovn: Ovn = field(default=Ovn())

    @property
    def sb_remote(self) -> str:
        """Where the chassis find the SB, as ovn-remote spells it."""
        return f"{self.ovn.transport}:{self.central.ip}:{SB_PORT}"

    @property
    def central(self) -> Node:
        return next(n for n in self.nodes if n.central)

    def node(self, name: str) -> Node:
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(f"no node {name!r} in lab {self.name!r} (nodes: {', '.join(self.node_names)})")

    @property
    def node_names(self) -> tuple[str, ...]:
        return tuple(n.name for n in self.nodes)

    def prefixlen(self, port: str) -> int:
        """Prefix length of the subnet of `port`'s switch (the /24 of a lease)."""
        sw = next(p.switch for p in self.ports if p.name == port)
        return ipaddress.ip_network(next(s.subnet for s in self.switches if s.name == sw)).prefixlen

    def ports_on(self, node: str) -> tuple[Port, ...]:
        return tuple(p for p in self.ports if p.node == node)

    def scoped(self, what: str) -> str:
        """The host-wide name of one of the lab's objects (namespace, libvirt network, domain, volume).
        Lab and node names cannot contain '_', so no lab's names can be another lab's."""
        return f"{self.name}_{what}"

    @property
    def state_dir(self) -> Path:
        """One directory per lab, beside its lab.toml: rendered files, ssh_config, logs, run dirs."""
        return Path(self.source).resolve().parent / ".lab" / self.name


def underlay_mac(lab_name: str, index: int) -> str:
    """QEMU-prefixed unicast MAC, stable for a lab name and node index."""
    h = hashlib.sha256(lab_name.encode()).digest()
    return f"52:54:00:{h[0]:02x}:{h[1]:02x}:{index + 1:02x}"
