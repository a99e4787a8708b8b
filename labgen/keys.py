"""lab.toml's keys, one entry each: its type, default, allowed values, what it means, and the message and fix
for a value that breaks its rule (in the manner of netlab's defaults/attributes.yml). labgen.checker checks
every single key from this table, labgen.model takes its defaults from it, and the key table of
docs/lab-toml.md is generated from it (tests/regen.py). Rules that join keys (overlaps, duplicates, a port's
node and switch, an address inside a subnet) stay code, in labgen/load.py and labgen/tables.py."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from provision.names import NODE_IFNAMES, TUNNEL_PREFIX


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED: Any = _Required()  # the key has no default: a lab.toml without it is refused

# matched with fullmatch: `$` would also accept a trailing newline
HOSTNAME = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")  # no '_': it separates lab and node names
LAB_NAME = re.compile(r"[a-z0-9]([a-z0-9-]{0,18}[a-z0-9])?")  # a hostname of at most 20 characters
IFNAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,14}")  # Linux IFNAMSIZ - 1 = 15
OVNNAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}")
ACCOUNT = re.compile(r"[a-z][a-z0-9]{0,15}")  # + 3 digits: a Linux account name
MAC = re.compile(r"[0-9a-f]{2}(:[0-9a-f]{2}){5}")
BOX = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}(/[A-Za-z0-9][A-Za-z0-9._-]{0,63})?")
UINT32 = 2**32 - 1
MAX_NODES = 250  # each node's underlay MAC ends in its index + 1

IFNAME_FIX = "use at most 15 letters, digits, '_', '.' or '-'"
PORT_FIX = 'give the port another name, e.g. "port4"'
NO_DHCP = "OVN answers no DHCP request without it"
# what the Checker reads a string as, beyond the table's rules (for the docs)
VALUES = {
    "network": "an IPv4 CIDR, /8 to /30, not loopback, multicast, link-local, reserved or 0.0.0.0/8",
    "address": "an IPv4 host address",
    "mac": "a unicast MAC",
    "backend": "a backend of labgen.backends' registry",
    "ranges": "space-separated addresses and FIRST..LAST ranges",
}


@dataclass(frozen=True)
class Key:
    """One key of lab.toml. `table` is where it is written, NAME standing for any name of a named table
    ("nodes.NAME"); a `name` of NAME is the rule for those names; a `type` of dict is a table."""

    table: str
    name: str
    type: type
    help: str
    default: Any = None  # None: no value unless written (REQUIRED: it must be written)
    choices: tuple[str, ...] = ()  # one of these (or, with `value`, one of these or such a value)
    range: tuple[int, int] | None = None  # inclusive
    pattern: re.Pattern[str] | None = None
    value: str = ""  # a key of VALUES: how the string is read further
    within: str = ""  # the key whose subnet holds the address (checked in code)
    refers: str = ""  # the named table whose entry it names (checked in code)
    bad: str = ""  # a value that breaks choices, range or pattern: {value} is the value as written
    fix: str = ""  # the fix for it (choices: "did you mean ...?" when left empty)
    reserved: tuple[str, ...] = ()  # names the lab uses itself
    reserved_prefix: str = ""
    reserved_bad: str = ""  # {value}: the name
    reserved_fix: str = ""
    why: str = ""  # why a required key is required, said when it is missing
    example: str = "..."  # in the fix of a missing key

    @property
    def path(self) -> str:
        return f"{self.table}.{self.name}" if self.table else self.name

    def is_reserved(self, value: str) -> bool:
        return value in self.reserved or bool(self.reserved_prefix and value.startswith(self.reserved_prefix))


NODE_NIC: dict[str, Any] = {  # a name the lab may give an interface on a node
    "reserved": NODE_IFNAMES,
    "reserved_prefix": TUNNEL_PREFIX,
    "reserved_bad": "{value} is an interface the lab makes itself",
}

# fmt: off
KEYS: tuple[Key, ...] = (
    Key("", "lab", dict, "the lab's name and default backend", default={}),
    Key("", "underlay", dict, "the network of the nodes and the geneve tunnels", default={}),
    Key("", "ovn", dict, "how the chassis reach the OVN databases", default={}),
    Key("", "vagrant", dict, "the VMs of the vagrant backend", default={}),
    Key("", "nodes", dict, "one table per node, [nodes.NAME]", default={}),
    Key("", "switches", dict, "one table per logical switch, [switches.NAME]", default={}),
    Key("", "ports", dict, "one table per logical port, [ports.NAME]", default={}),
    Key("", "classroom", dict, "the classroom: seat accounts, its web app and sshd, each seat's limits", default={}),
    Key("lab", "name", str, "prefix of every VM, libvirt network/volume and namespace; two labs with different "
        "names (and subnets) can run side by side", default="ovn-lab", pattern=LAB_NAME,
        bad="{value} cannot prefix host and interface names",
        fix="use 1-20 lowercase letters, digits and '-', e.g. \"ovn-lab\""),
    Key("lab", "backend", str, "default backend for `up`: `vagrant` (libvirt VMs) or `netns` (namespaces, seconds)",
        default="vagrant", value="backend", bad="unknown backend {value}"),
    Key("underlay", "subnet", str, "the nodes' network; the node IPs must be in it", REQUIRED, value="network"),
    Key("underlay", "mtu", int, "underlay MTU; > 1558 lets full 1500-byte overlay frames through geneve",
        default=9000, range=(1280, 9000), bad="{value} is out of range",
        fix="use 1280..9000; 9000 lets 1500-byte overlay frames fit"),
    Key("underlay", "nic_name", str, "an extra name (altname) for each node's underlay NIC, so `ip addr show "
        "enp9s0` works as the tutorial writes it (the tutorial lab: `enp9s0`)", default="", pattern=IFNAME,
        bad="{value} cannot name the underlay NIC", fix='use an interface name like "enp9s0"',
        **NODE_NIC, reserved_fix='use another name, e.g. "enp9s0"'),
    Key("ovn", "transport", str, "how the chassis (and clients on other nodes) reach the SB and NB: `tcp` as the "
        "tutorial does, or `ssl`: mutual TLS with certificates from a CA of the lab's own", default="tcp",
        choices=("tcp", "ssl"), bad="unknown transport {value}"),
    Key("vagrant", "box", str, "the lab's own box (built by `invoke box` / `up` when missing) or any libvirt box, "
        "e.g. `debian/bookworm64` (then the provisioner installs the packages with apt)",
        default="ovn-lab/bookworm", pattern=BOX, bad="{value} is not a box name",
        fix='write NAME or OWNER/NAME, e.g. "debian/bookworm64"'),
    Key("vagrant", "accel", str, "`auto` (KVM when the CPU has vmx/svm and /dev/kvm is usable, else QEMU TCG), "
        "`kvm`, `tcg`", default="auto", choices=("auto", "kvm", "tcg"), bad="unknown accelerator {value}"),
    Key("vagrant", "memory", int, "MiB per VM", default=1024, range=(512, 65536),
        bad="{value} MiB is out of range: OVS and OVN need 512, a lab node no more than 65536",
        fix="use 512 to 65536 (1024 is tested)"),
    Key("vagrant", "cpus", int, "CPUs per VM", default=1, range=(1, 64), bad="{value} is not a CPU count for a VM",
        fix="use 1 to 64"),
    Key("vagrant", "management_subnet", str, "Vagrant's ssh network, named `<lab>_mgmt`, isolated",
        default="192.168.121.0/24", value="network"),
    Key("nodes", "NAME", str, "the node's hostname and chassis name", REQUIRED, pattern=HOSTNAME,
        bad="{value} is not a valid hostname",
        fix="use lowercase letters, digits and '-' (not at the ends), at most 63 characters",
        reserved=("underlay", "mgmt", "vmlinuz", "initrd"),  # the lab's own objects are named lab_<these>
        reserved_bad="{value} names one of the lab's own objects", reserved_fix="give the node another name"),
    Key("nodes.NAME", "ip", str, "underlay address, not the subnet's first (vagrant-libvirt gives that to the host)",
        REQUIRED, value="address", within="underlay.subnet"),
    Key("nodes.NAME", "central", bool, "exactly one node: NB/SB + ovn-northd (it is a chassis too)", default=False),
    Key("switches", "NAME", str, "the logical switch's name", REQUIRED, pattern=OVNNAME,
        bad="{value} is not a valid switch name", fix="use letters, digits, '_', '.' and '-'"),
    Key("switches.NAME", "subnet", str, "`other_config:subnet`", REQUIRED, value="network"),
    Key("switches.NAME", "exclude_ips", str, "`other_config:exclude_ips`: never handed out", default="",
        value="ranges", within="switches.NAME.subnet"),
    Key("switches.NAME", "dhcp", dict, "the switch's OVN DHCP options", REQUIRED),
    Key("switches.NAME.dhcp", "lease_time", int, "seconds", REQUIRED, range=(1, UINT32),
        bad="{value} is not a lease time", fix=f"use seconds, 1 to {UINT32}, e.g. 3600", why=NO_DHCP,
        example="3600"),
    Key("switches.NAME.dhcp", "router", str, "the default gateway offered", REQUIRED, value="address",
        within="switches.NAME.subnet", why=NO_DHCP),
    Key("switches.NAME.dhcp", "server_id", str, "the DHCP server's address", REQUIRED, value="address",
        within="switches.NAME.subnet", why=NO_DHCP),
    Key("switches.NAME.dhcp", "server_mac", str, "the DHCP server's MAC", REQUIRED, value="mac", why=NO_DHCP),
    Key("switches.NAME.dhcp", "mtu", int, "the MTU offered", range=(576, 9000),
        bad="{value} is out of range", fix="use 576..9000, e.g. 1442 for geneve on a 1500 underlay"),
    Key("ports", "NAME", str, "the logical port, and its interface on the node", REQUIRED, pattern=IFNAME,
        bad="{value} cannot be a Linux interface name", fix=IFNAME_FIX, **NODE_NIC, reserved_fix=PORT_FIX),
    Key("ports.NAME", "switch", str, "the switch it is on", REQUIRED, refers="switches"),
    Key("ports.NAME", "node", str, "the node it is bound on", REQUIRED, refers="nodes"),
    Key("ports.NAME", "netns", str, 'the namespace ("VM") on the node that gets its address by DHCP; one port per '
        "netns and node", REQUIRED, pattern=IFNAME, bad="{value} is not a usable namespace name", fix=IFNAME_FIX),
    Key("ports.NAME", "mac", str, "its MAC, or `dynamic`: OVN chooses", REQUIRED, choices=("dynamic",), value="mac"),
    Key("classroom", "prefix", str, "the classroom's name: seat accounts are PREFIX001..., its web app's account "
        "PREFIX-web", default="seat", pattern=ACCOUNT, bad="{value} is not an account name",
        fix="use a lowercase letter, then up to 15 lowercase letters and digits"),
    Key("classroom", "listen", str, "the address the web app and the classroom's sshd listen on",
        default="127.0.0.1", value="address"),
    Key("classroom", "web_port", int, "the web app's port", default=8080, range=(1024, 65535),
        bad="{value} is out of range", fix="use a port from 1024 to 65535"),
    Key("classroom", "ssh_port", int, "the classroom's own sshd (keys only, its seats only)", default=2222,
        range=(1024, 65535), bad="{value} is out of range", fix="use a port from 1024 to 65535"),
    Key("classroom", "memory", int, "MiB per seat (a lab takes about 64)", default=768, range=(128, 1 << 20),
        bad="{value} MiB is out of range for a seat", fix="use at least 128"),
    Key("classroom", "pids", int, "tasks per seat (a lab runs about 170 threads)", default=1024,
        range=(256, 1 << 22), bad="{value} is out of range for a seat", fix="use at least 256"),
    Key("classroom", "cpus", int, "CPUs per seat on the lxd engine (0: no limit)", default=0, range=(0, 1024),
        bad="{value} is out of range", fix="use 0 (no limit) or a number of CPUs"),
    Key("classroom", "hidepid", bool, "mount /proc with hidepid=2 while the classroom is up", default=True),
    Key("classroom", "engine", str, "where seats live: `accounts` (an account each on this server) or `lxd` (an "
        "LXD container each, on a cluster)", default="accounts", choices=("accounts", "lxd")),
    Key("classroom", "tls", bool, "serve the web app over HTTPS, with a CA of the classroom's own that the cards "
        "name", default=False),
    Key("classroom", "lxd_subnet", str, "the LXD seats' bridge (`scripts/setup --lxd`): a subnet nothing on the "
        "hosts uses; the bridge routes nothing out", default="10.251.77.0/24", value="network"),
    Key("classroom", "lxd_cluster_subnet", str, "the LXD cluster's own bridge `ovnlab-mgmt0` on this host "
        "(`scripts/setup --lxd`): its first address is the cluster's, the next ones members in containers; "
        "only the host and they reach it", default="10.252.77.0/24", value="network"),
)
# fmt: on

KEY = {k.path: k for k in KEYS}
# the keys a table may hold (named tables' NAME rules are not keys)
SCHEMA: dict[str, tuple[str, ...]] = {}
for _k in KEYS:
    if _k.name != "NAME":
        SCHEMA.setdefault(_k.table, ())
        SCHEMA[_k.table] += (_k.name,)


def default(path: str) -> Any:
    """The default of a key, for the model's dataclasses."""
    return KEY[path].default


def required(table: str) -> tuple[str, ...]:
    return tuple(k.name for k in KEYS if k.table == table and k.default is REQUIRED)
