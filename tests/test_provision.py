"""Tier 3: provisioner steps as facts in, commands out. Each case declares the facts its step reads: reading
an undeclared one raises KeyError, and a declared one left unread fails the case (it is stale). Every step has
a fresh case and an already-done case that must yield no command."""

from __future__ import annotations

import copy
import io
import itertools
import json
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from labgen.load import load_lab
from labgen.plan import node_plan
from labgen.provisioner import Session
from provision.core import Cmd, Facts, Noop, Op, Runner, Show, StepFailed, Wait, Write
from provision.facts import FACTS, ovsdb_json
from provision.pids import pid_alive, running
from provision.steps import STEPS
from provision.steps.node import SSHD_TEXT

pytestmark = pytest.mark.provision
LAB = load_lab("lab.toml")


LAB_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeKeyOfTheLab ovn-lab t"


def plan_for(node: str, **kw: Any) -> dict[str, Any]:
    args = {"datapath": "netdev", "services": "daemons", "install": False} | kw
    return node_plan(LAB, node, **args) | {"ssh_key": LAB_KEY}  # the VM backend's extra


class CaseFacts(Mapping[str, Any]):
    """A case's declared facts, strict both ways: a step reading an undeclared one gets a KeyError naming it;
    `unread()` lists the declared ones no step read."""

    def __init__(self, facts: Mapping[str, Any]):
        self.facts = dict(facts)
        self.read: set[str] = set()

    def __getitem__(self, key: str) -> Any:
        if key not in self.facts:
            raise KeyError(f"undeclared fact {key!r}")
        self.read.add(key)
        return self.facts[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.facts)

    def __len__(self) -> int:
        return len(self.facts)

    def unread(self) -> list[str]:
        return sorted(set(self.facts) - self.read)


def raw_ops(step: str, plan: dict[str, Any], facts: Mapping[str, Any]) -> list[Op]:
    """All the step's ops; fails the case if it declares a fact the step never read."""
    known = CaseFacts(facts)
    got = list(STEPS[step](plan, known))
    assert not known.unread(), f"{step}: declared facts never read (stale case): {known.unread()}"
    return got


def ops(step: str, plan: dict[str, Any], facts: Mapping[str, Any]) -> list[str]:
    """The step's ops as text: commands as the trainee sees them, `: ok, ...` for no-ops."""
    out = []
    for op in raw_ops(step, plan, facts):
        if isinstance(op, Noop):
            out.append(f": ok, {op.what}")
        elif isinstance(op, Wait):
            out.append(f"wait: {op.what}")
        else:
            out.append(op.shell())
    return out


def changes(lines: list[str]) -> list[str]:
    return [ln for ln in lines if not ln.startswith((": ok", "wait:"))]


OVS_RUNNING = {f"pid_alive:{d}": True for d in ("ovsdb-server", "ovs-vswitchd")}
OVS_FILES = {
    f"exists:{d}": True
    for d in (
        "/run/openvswitch",
        "/run/ovn",
        "/var/log/openvswitch",
        "/var/log/ovn",
        "/etc/openvswitch",
        "/var/lib/ovn",
        "/etc/openvswitch/conf.db",
    )
}


def test_ovs_fresh_daemons() -> None:
    facts = {k: False for k in [*OVS_RUNNING, *OVS_FILES]}
    assert changes(ops("ovs", plan_for("ovn-host-01"), facts)) == [
        "mkdir -p /run/openvswitch /run/ovn /var/log/openvswitch /var/log/ovn /etc/openvswitch /var/lib/ovn",
        "ovsdb-tool create /etc/openvswitch/conf.db /usr/share/openvswitch/vswitch.ovsschema",
        "ovsdb-server /etc/openvswitch/conf.db --remote=punix:/run/openvswitch/db.sock "
        "--remote=db:Open_vSwitch,Open_vSwitch,manager_options --pidfile -vconsole:off --log-file --detach",
        "ovs-vsctl --no-wait init",
        "ovs-vswitchd --pidfile -vconsole:off --log-file --detach",
    ]


def test_ovs_done_daemons() -> None:
    assert changes(ops("ovs", plan_for("ovn-host-01"), OVS_RUNNING | OVS_FILES)) == []


def test_ovs_systemd() -> None:
    plan = plan_for("ovn-host-01", services="systemd", datapath="system")
    assert ops("ovs", plan, {"unit:openvswitch-switch": {"enabled": False, "active": True}}) == [
        "systemctl enable --no-reload --now openvswitch-switch"
    ]
    assert changes(ops("ovs", plan, {"unit:openvswitch-switch": {"enabled": True, "active": True}})) == []


def test_central_fresh_and_done() -> None:
    plan = plan_for("ovn-central-01", services="systemd", datapath="system")
    fresh = ops("central", plan, {"unit:ovn-central": {"enabled": False, "active": False}})
    assert fresh == [
        "systemctl enable --no-reload --now ovn-central",
        "wait: the NB database answers",
        "wait: the SB database answers",
    ]
    assert changes(ops("central", plan, {"unit:ovn-central": {"enabled": True, "active": True}})) == []
    assert ops("sb-listen", plan, {"sb_connection": []}) == ["ovn-sbctl set-connection ptcp:6642:192.168.1.61"]
    assert changes(ops("sb-listen", plan, {"sb_connection": ["ptcp:6642:192.168.1.61"]})) == []


SSL_FILES = ("/etc/ovn/ovn-lab-privkey.pem", "/etc/ovn/ovn-lab-cert.pem", "/etc/ovn/ovn-lab-cacert.pem")
CERTS = {"key": "-----BEGIN PRIVATE KEY-----\nsecret\n-----END PRIVATE KEY-----\n", "cert": "C\n", "cacert": "CA\n"}


def test_ssl_central_fresh_and_done() -> None:
    """transport = "ssl": the certificates written (the key 0600 and never echoed), every client and server
    told to use them, and the SB and NB on pssl: on the underlay address."""
    plan = plan_for("ovn-central-01") | {"transport": "ssl", "sb_remote": "ssl:192.168.1.61:6642", "ssl": CERTS}
    ctls = ("ovs-vsctl", "ovn-nbctl", "ovn-sbctl")
    fresh = {f"file:{p}": None for p in SSL_FILES} | {f"ssl:{c}": ("", "", "") for c in ctls}
    got = raw_ops("ssl", plan, fresh)
    writes = [op for op in got if isinstance(op, Write)]
    assert [(w.path, w.mode) for w in writes] == list(zip(SSL_FILES, (0o600, 0o644, 0o644), strict=True))
    assert "secret" not in writes[0].shell() and "(the node's private key: 3 lines, not shown)" in writes[0].shell()
    assert changes(ops("ssl", plan, fresh))[3:] == [f"{c} set-ssl {' '.join(SSL_FILES)}" for c in ctls]
    done = {f"file:{p}": t.strip() for p, t in zip(SSL_FILES, CERTS.values(), strict=True)} | {
        f"ssl:{c}": SSL_FILES for c in ctls
    }
    assert changes(ops("ssl", plan, done)) == []
    assert ops("sb-listen", plan, {"sb_connection": [], "nb_connection": []}) == [
        "ovn-sbctl set-connection pssl:6642:192.168.1.61",
        "ovn-nbctl set-connection pssl:6641:192.168.1.61",
    ]
    listening = {"sb_connection": ["pssl:6642:192.168.1.61"], "nb_connection": ["pssl:6641:192.168.1.61"]}
    assert changes(ops("sb-listen", plan, listening)) == []
    host = plan_for("ovn-host-01") | {"transport": "ssl", "sb_remote": "ssl:192.168.1.61:6642", "ssl": CERTS}
    wait = next(op for op in raw_ops("controller", host, {"pid_alive:ovn-controller": True}) if isinstance(op, Wait))
    assert wait.argv[1:8] == ("--db=ssl:192.168.1.61:6642", "-p", SSL_FILES[0], "-c", SSL_FILES[1], "-C", SSL_FILES[2])
    assert ops("ssl", plan_for("ovn-host-01"), {}) == [": ok, the transport is tcp: no certificates"]


IDS_DONE = {
    "ovn-remote": "tcp:192.168.1.61:6642",
    "ovn-encap-ip": "192.168.1.62",
    "ovn-encap-type": "geneve",
    "system-id": "ovn-host-01",
    "hostname": "ovn-host-01",
}


def test_chassis_fresh_vm() -> None:
    plan = plan_for("ovn-host-01", services="systemd", datapath="system")
    facts = {
        "hostname": "bookworm",
        "bridges": {},
        "ovs_ids": {"system-id": "x"},
        "file:/etc/openvswitch/system-id.conf": "5c1e0a7e-random-uuid",
    }
    assert changes(ops("chassis", plan, facts)) == [
        "cat > /etc/hostname <<'EOF'\novn-host-01\nEOF",
        "hostname ovn-host-01",
        "sed -i 's/^127.0.1.1.*/127.0.1.1 ovn-host-01/' /etc/hosts",
        "ovs-vsctl --may-exist add-br br-int -- set bridge br-int fail-mode=secure other_config:disable-in-band=true "
        "other_config:datapath-id=00000000c0a8013e",
        "cat > /etc/openvswitch/system-id.conf <<'EOF'\novn-host-01\nEOF",
        "ovs-vsctl set open_vswitch . external_ids:ovn-remote=tcp:192.168.1.61:6642 "
        "external_ids:ovn-encap-ip=192.168.1.62 external_ids:ovn-encap-type=geneve external_ids:system-id=ovn-host-01 "
        "external_ids:hostname=ovn-host-01",
    ]
    controller = ops("controller", plan, {"unit:ovn-host": {"enabled": False, "active": False}})
    assert controller == [
        "wait: the SB answers on tcp:192.168.1.61:6642",
        "systemctl enable --no-reload --now ovn-host",
    ]


def test_chassis_done_netns() -> None:
    facts = {
        "hostname": "ovn-host-01",
        "bridges": {
            "br-int": {
                "datapath_type": "netdev",
                "fail_mode": "secure",
                "other_config": {"datapath-id": "00000000c0a8013e"},
            }
        },
        "ovs_ids": IDS_DONE | {"ovn-bridge-datapath-type": "netdev"},
    }
    assert changes(ops("chassis", plan_for("ovn-host-01"), facts)) == []
    assert changes(ops("controller", plan_for("ovn-host-01"), {"pid_alive:ovn-controller": True})) == []


LINKS_FRESH = [
    {"ifname": "lo", "flags": ["UP"], "address": "00:00:00:00:00:00", "addr_info": []},
    {"ifname": "eth0", "flags": ["UP"], "address": "52:54:00:e1:37:02", "link_type": "ether", "addr_info": []},
]


def test_underlay_netdev_fresh_and_done() -> None:
    plan = plan_for("ovn-host-01")
    fresh = ops("underlay", plan, {"addrs": LINKS_FRESH, "bridges": {}})
    assert changes(fresh) == [
        "ovs-vsctl --may-exist add-br br-phy -- set bridge br-phy datapath_type=netdev "
        "other_config:hwaddr=52:54:00:e1:37:02 -- --may-exist add-port br-phy eth0",
        "ip addr replace 192.168.1.62/24 dev br-phy",
        "ip link set br-phy up",
    ]
    done_links = [
        *LINKS_FRESH,
        {
            "ifname": "br-phy",
            "altnames": ["enp9s0"],
            "flags": ["UP"],
            "address": "52:54:00:e1:37:02",
            "addr_info": [{"family": "inet", "local": "192.168.1.62", "prefixlen": 24}],
        },
    ]
    done = ops("underlay", plan, {"addrs": done_links, "bridges": {"br-phy": {}}, "bridge_ports:br-phy": ["eth0"]})
    assert changes(done) == []


def test_underlay_vm_finds_nic_by_address_not_name() -> None:
    plan = plan_for("ovn-host-01", services="systemd", datapath="system")
    links = [{"ifname": "enp9s0", "addr_info": [{"family": "inet", "local": "192.168.1.62", "prefixlen": 24}]}]
    link_file = "exists:/etc/systemd/network/10-ovn-lab-underlay.link"
    assert ops("underlay", plan, {"addrs": links, link_file: True}) == [
        ": ok, underlay 192.168.1.62/24 is on enp9s0",
        ": ok, enp9s0 is also called enp9s0",
        ": ok, /etc/systemd/network/10-ovn-lab-underlay.link exists",
    ]
    links[0]["ifname"] = "eth1"
    assert changes(ops("underlay", plan, {"addrs": links, link_file: False}))[0] == (
        "ip link property add dev eth1 altname enp9s0"
    )


def test_underlay_vm_configures_the_nic_found_by_mac() -> None:
    """The lab's box leaves the underlay NIC unconfigured (no Vagrant auto_config): found by its MAC."""
    plan = plan_for("ovn-host-01", services="systemd", datapath="system")
    links = [
        {"ifname": "eth0", "address": "52:54:00:aa:bb:cc", "addr_info": [{"local": "192.168.121.5", "prefixlen": 24}]},
        {"ifname": "eth1", "address": plan["mac"], "addr_info": []},
    ]
    facts = {
        "addrs": links,
        "exists:/etc/network/interfaces": True,
        "exists:/etc/systemd/network/10-ovn-lab-underlay.link": True,
    }
    assert changes(ops("underlay", plan, facts))[:2] == [
        "cat > /etc/network/interfaces.d/ovn-lab-underlay <<'EOF'\nauto eth1\niface eth1 inet static\n"
        "    address 192.168.1.62/24\nEOF",
        "ifup eth1",
    ]


def test_logical_fresh() -> None:
    plan = plan_for("ovn-central-01")
    got = changes(ops("logical", plan, {"nb": {"nb_switches": [], "nb_dhcp": [], "nb_ports": []}}))
    assert got[:5] == [
        "ovn-nbctl --may-exist ls-add net0",
        "ovn-nbctl set logical_switch net0 other_config:subnet=10.0.0.0/24 "
        "other_config:exclude_ips=10.0.0.1..10.0.0.10",
        "ovn-nbctl dhcp-options-create 10.0.0.0/24",
        "CIDR_UUID=$(ovn-nbctl --bare --columns=_uuid find dhcp_options 'cidr=\"10.0.0.0/24\"')",
        "ovn-nbctl dhcp-options-set-options $CIDR_UUID lease_time=3600 router=10.0.0.1 server_id=10.0.0.1 "
        "server_mac=c0:ff:ee:00:00:01",
    ]
    assert got[5:8] == [
        "ovn-nbctl --may-exist lsp-add net0 port1",
        "ovn-nbctl lsp-set-addresses port1 'c0:ff:ee:00:00:11 dynamic'",
        "ovn-nbctl lsp-set-dhcpv4-options port1 $CIDR_UUID",
    ]
    assert len(got) == 5 + 3 * 3


# real `ovn-nbctl --format=json` output of a finished demo, parsed by the provisioner's own parser
NB_PORTS = json.dumps(
    {
        "headings": ["_uuid", "name", "addresses", "dynamic_addresses", "dhcpv4_options", "up"],
        "data": [
            [
                ["uuid", f"p{i}"],
                f"port{i}",
                f"c0:ff:ee:00:00:1{i} dynamic",
                f"c0:ff:ee:00:00:1{i} 10.0.0.1{i}",
                ["uuid", "d1"],
                True,
            ]
            for i in (1, 2, 3)
        ],
    }
)
NB_SWITCHES = json.dumps(
    {
        "headings": ["_uuid", "name", "other_config", "ports"],
        "data": [
            [
                ["uuid", "s1"],
                "net0",
                ["map", [["exclude_ips", "10.0.0.1..10.0.0.10"], ["subnet", "10.0.0.0/24"]]],
                ["set", [["uuid", "p1"], ["uuid", "p2"], ["uuid", "p3"]]],
            ]
        ],
    }
)
NB_DHCP = json.dumps(
    {
        "headings": ["_uuid", "cidr", "options"],
        "data": [
            [
                ["uuid", "d1"],
                "10.0.0.0/24",
                [
                    "map",
                    [
                        ["lease_time", "3600"],
                        ["router", "10.0.0.1"],
                        ["server_id", "10.0.0.1"],
                        ["server_mac", "c0:ff:ee:00:00:01"],
                    ],
                ],
            ]
        ],
    }
)


def test_logical_done() -> None:
    nb = {"nb_switches": ovsdb_json(NB_SWITCHES), "nb_dhcp": ovsdb_json(NB_DHCP), "nb_ports": ovsdb_json(NB_PORTS)}
    assert changes(ops("logical", plan_for("ovn-central-01"), {"nb": nb})) == []


def test_logical_fixes_a_port_without_dhcp_options() -> None:
    ports = ovsdb_json(NB_PORTS)
    ports[1]["dhcpv4_options"] = []
    nb = {"nb_switches": ovsdb_json(NB_SWITCHES), "nb_dhcp": ovsdb_json(NB_DHCP), "nb_ports": ports}
    assert changes(ops("logical", plan_for("ovn-central-01"), {"nb": nb})) == [
        "ovn-nbctl lsp-set-dhcpv4-options port2 d1"
    ]


def test_logical_removes_an_exclude_range_lab_toml_does_not_have() -> None:
    """exercise no-free-address on a lab without exclude_ips: the logical step (solve) takes the range out."""
    plan = plan_for("ovn-central-01")
    plan["switches"][0]["exclude_ips"] = ""
    nb = {"nb_switches": ovsdb_json(NB_SWITCHES), "nb_dhcp": ovsdb_json(NB_DHCP), "nb_ports": ovsdb_json(NB_PORTS)}
    assert changes(ops("logical", plan, {"nb": nb})) == [
        "ovn-nbctl remove logical_switch net0 other_config exclude_ips"
    ]


def test_trace_uses_the_port_mac() -> None:
    assert ops("trace", plan_for("ovn-central-01"), {}) == [
        'ovn-trace --summary net0 \'inport=="port1" && eth.src==c0:ff:ee:00:00:11 && ip4.src==0.0.0.0 && '
        "ip.ttl==1 && ip4.dst==255.255.255.255 && udp.src==68 && udp.dst==67'"
    ]


# port3 as bind leaves it: on br-int with its iface-id and MAC; and vm3's loopback, up with its address
PORT3_ON_BR_INT = {"port3": {"type": "internal", "mac": "c0:ff:ee:00:00:13", "external_ids": {"iface-id": "port3"}}}
VM3_LO = {"ifname": "lo", "addr_info": [{"family": "inet", "local": "127.0.0.1", "prefixlen": 8}]}


def test_bind_fresh_and_done() -> None:
    plan = plan_for("ovn-host-02")
    fresh = ops("bind", plan, {"netns": [], "interfaces": {}, "ns_addrs:vm3": []})
    assert changes(fresh) == [
        "ip netns add vm3",
        "ovs-vsctl --may-exist add-port br-int port3 -- set interface port3 type=internal "
        "'mac=[\"c0:ff:ee:00:00:13\"]' external_ids:iface-id=port3",
        "ip link set port3 netns vm3",
        "ip -n vm3 link set port3 up",
        "ip -n vm3 addr add 127.0.0.1/8 dev lo",
        "ip -n vm3 link set lo up",
    ]
    done = ops(
        "bind",
        plan,
        {
            "netns": ["vm3"],
            "interfaces": PORT3_ON_BR_INT,
            "ns_addrs:vm3": [
                VM3_LO,
                {"ifname": "port3", "address": "c0:ff:ee:00:00:13", "flags": ["UP"], "addr_info": []},
            ],
            "addrs": LINKS_FRESH,  # port3 is not (also) in the node's own namespace
        },
    )
    assert changes(done) == []


def test_bind_replaces_the_orphan_left_by_a_vswitchd_restart() -> None:
    """On the userspace datapath a restarted ovs-vswitchd makes each internal port anew in the node's own
    namespace; the one in the VM's namespace has no carrier any more."""
    stale = {"ifname": "port3", "address": "c0:ff:ee:00:00:13", "flags": ["NO-CARRIER", "UP"], "addr_info": []}
    facts = {
        "netns": ["vm3"],
        "interfaces": PORT3_ON_BR_INT,
        "ns_addrs:vm3": [
            VM3_LO,
            stale,
        ],
        "addrs": [*LINKS_FRESH, {"ifname": "port3", "address": "c0:ff:ee:00:00:13", "flags": [], "addr_info": []}],
    }
    assert ops("bind", plan_for("ovn-host-02"), facts)[2:] == [
        "ip -n vm3 link del port3",
        "wait: port3 appears on this node",
        "ip link set port3 netns vm3",
        "ip -n vm3 link set port3 up",
        ": ok, vm3 lo has 127.0.0.1/8",
    ]


def test_bind_corrects_a_wrong_mac_in_the_namespace() -> None:
    facts = {
        "netns": ["vm3"],
        "interfaces": PORT3_ON_BR_INT,
        "ns_addrs:vm3": [
            VM3_LO,
            {"ifname": "port3", "address": "c0:ff:ee:00:00:99", "flags": ["UP"], "addr_info": []},
        ],
        "addrs": LINKS_FRESH,
    }
    assert changes(ops("bind", plan_for("ovn-host-02"), facts)) == [
        "ip -n vm3 link set port3 address c0:ff:ee:00:00:13"
    ]


def test_dhcp_fresh_and_done() -> None:
    plan = plan_for("ovn-host-02")
    fresh = ops("dhcp", plan, {"ns_addrs:vm3": [], "pid_of:/run/dhclient-vm3.pid": None})
    assert fresh[0] == (
        "ip netns exec vm3 dhclient -v -i -1 -lf /var/lib/dhcp/dhclient-vm3.leases -pf /run/dhclient-vm3.pid port3"
    )
    held = [{"ifname": "port3", "addr_info": [{"family": "inet", "local": "10.0.0.13", "prefixlen": 24}]}]
    done = ops("dhcp", plan, {"ns_addrs:vm3": held, "pid_of:/run/dhclient-vm3.pid": 4242})
    assert [ln for ln in done if "dhclient" in ln] == [": ok, vm3 holds 10.0.0.13/24 (dhclient running)"]
    # the port was made anew (bind after a vswitchd restart): its old dhclient goes first, one per port
    again = ops("dhcp", plan, {"ns_addrs:vm3": [], "pid_of:/run/dhclient-vm3.pid": 4242})
    assert again[:3] == [
        "kill 4242",
        "wait: the old dhclient of vm3 ended",
        "ip netns exec vm3 dhclient -v -i -1 -lf /var/lib/dhcp/dhclient-vm3.leases -pf /run/dhclient-vm3.pid port3",
    ]


def test_install_missing_packages() -> None:
    plan = plan_for("ovn-central-01", services="systemd", datapath="system", install=True)
    tools = {t: False for t in ("ovs-vsctl", "ovn-controller", "ovn-northd", "dhclient", "ping")}
    got = ops("install", plan, {"tools": tools})
    assert got[0] == "wait: the dpkg lock is free"
    assert got[-1].endswith(
        "apt-get install -y -q openvswitch-switch ovn-host isc-dhcp-client iputils-ping tcpdump ovn-central"
    )
    assert ops("install", plan, {"tools": dict.fromkeys(tools, True)}) == [
        ": ok, Open vSwitch, OVN and dhclient are installed"
    ]


def test_undeclared_fact_is_a_key_error_naming_it() -> None:
    with pytest.raises(KeyError, match="undeclared fact 'bridges'"):
        ops("chassis", plan_for("ovn-host-01"), {"hostname": "ovn-host-01"})


def test_declared_fact_left_unread_fails_the_case() -> None:
    plan = plan_for("ovn-host-01", services="systemd", datapath="system")
    done = {"unit:openvswitch-switch": {"enabled": True, "active": True}}
    assert ops("ovs", plan, done) == [": ok, openvswitch-switch is enabled and running"]
    with pytest.raises(AssertionError, match=r"stale case\): \['pid_alive:ovs-vswitchd'\]"):
        ops("ovs", plan, done | {"pid_alive:ovs-vswitchd": True})  # daemons only: systemd never reads it


# every fact as on a node where nothing of the lab exists yet, whatever the fact's argument
FRESH: dict[str, Any] = {
    "hostname": "localhost",
    "tools": dict.fromkeys(("ovs-vsctl", "ovn-controller", "ovn-northd", "dhclient", "ping"), False),
    "exists": False,
    "file": None,
    "pid_alive": False,
    "pid_of": None,
    "passwd_locked": False,
    "unit": {"enabled": False, "active": False},
    "ovs_ids": {},
    "bridges": {},
    "bridge_ports": [],
    "interfaces": {},
    "netns": [],
    "ns_pids": [],
    "ns_addrs": [],
    "sb_connection": [],
    "nb": {"nb_switches": [], "nb_ports": [], "nb_dhcp": []},
}


class FreshFacts(Mapping[str, Any]):
    """A fresh node: packages missing, no daemon, file, bridge or namespace, an empty NB; only the underlay NIC,
    with the plan's MAC and no address. A fact FRESH does not know is a KeyError (give it a fresh value)."""

    def __init__(self, plan: dict[str, Any], *, ifupdown: bool):
        self.plan, self.ifupdown = plan, ifupdown

    def __getitem__(self, key: str) -> Any:
        name, _, arg = key.partition(":")
        if name == "exists" and arg == "/etc/network/interfaces":
            return self.ifupdown  # the box's network configuration, not lab state
        if name == "addrs":
            return [{"ifname": "eth1", "address": self.plan["mac"], "flags": [], "addr_info": []}]
        return copy.deepcopy(FRESH[name])

    def __iter__(self) -> Iterator[str]:
        return iter(FRESH)

    def __len__(self) -> int:
        return len(FRESH)


CENTRAL_ONLY = (
    "central",
    "sb-listen",
    "logical",
    "show-logical",
    "trace",
    "unlogical",
)  # central's plan alone has switches
CHOICES = ("datapath", "services", "encap_type")  # fixed words the plan picks from, not free text


def plan_strings(value: Any) -> set[str]:
    """Every string in a plan: names, addresses, MACs, subnets (a path built from one contains it)."""
    if isinstance(value, str):
        return {value}
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, list):
        return set().union(*map(plan_strings, value))
    return set()


def shell_script(argv: tuple[str, ...]) -> tuple[str, ...] | None:
    """The arguments a shell parses in argv: after `sh -c` (`-ec` too), also behind env or ip netns exec."""
    for i, a in enumerate(argv):
        opts = itertools.takewhile(lambda x: x.startswith("-") and not x.startswith("--"), argv[i + 1 :])
        if os.path.basename(a) in ("sh", "bash", "dash") and any("c" in o for o in opts):
            return argv[i + 1 :]
    return None


@pytest.mark.parametrize("ifupdown", [False, True])
@pytest.mark.parametrize("datapath", ["netdev", "system"])
@pytest.mark.parametrize("services", ["daemons", "systemd"])
def test_no_plan_value_reaches_a_shell(services: str, datapath: str, ifupdown: bool) -> None:
    """Every step on every node of the tutorial lab, from scratch: a plan value in a shell string would be
    parsed by the shell (a name with a quote or a `;` in it), so plan values go into argv or Write only."""
    assert set(FRESH) | {"addrs"} <= set(FACTS)
    shells = 0
    for node in LAB.nodes:
        plan = plan_for(node.name, services=services, datapath=datapath, install=True)
        values = plan_strings({k: v for k, v in plan.items() if k not in CHOICES}) - {""}  # "": MAC not known yet
        for name, step in STEPS.items():
            if name in CENTRAL_ONLY and not plan["central"]:
                continue
            for op in step(plan, FreshFacts(plan, ifupdown=ifupdown)):
                script = shell_script(op.argv) if isinstance(op, (Cmd, Show, Wait)) else None
                if script is None:
                    continue
                shells += 1
                leaked = sorted(v for v in values if any(v in a for a in script))
                assert not leaked, f"{node.name} {name}: plan values {leaked} in a shell string: {op.argv}"
    assert shells  # the dpkg lock's Wait: the scan does see shells


def test_root_ssh_puts_the_labs_key_in_place_and_no_password_logs_in() -> None:
    plan = plan_for("ovn-host-01", services="systemd", datapath="system")
    facts = {
        "file:/home/vagrant/.ssh/authorized_keys": "ssh-rsa AAAAB3NzaC1yc2E... vagrant insecure public key",
        "file:/root/.ssh/authorized_keys": None,
        "exists:/root/.ssh": False,
        "file:/etc/ssh/sshd_config.d/ovn-lab.conf": None,
        "passwd_locked:root": False,
        "unit:ssh": {"enabled": True, "active": True},
    }
    got = ops("root-ssh", plan, facts)
    assert [ln.splitlines()[0] for ln in got] == [
        "cat > /home/vagrant/.ssh/authorized_keys <<'EOF'",
        "chown vagrant:vagrant /home/vagrant/.ssh/authorized_keys",
        "install -d -m 700 /root/.ssh",
        "cat > /root/.ssh/authorized_keys <<'EOF'",
        "cat > /etc/ssh/sshd_config.d/ovn-lab.conf <<'EOF'",
        "systemctl reload ssh",
        "passwd -l root",
    ]
    assert got[0].splitlines()[1] == LAB_KEY  # the insecure key is gone, not kept beside it
    # at first boot sshd has not started yet (it starts after the first-boot unit): it reads the file then,
    # and a reload would wait on sshd's start job, which waits on us
    booting = ops("root-ssh", plan, facts | {"unit:ssh": {"enabled": True, "active": False}})
    assert "systemctl reload ssh" not in booting and len(booting) == len(got) - 1, booting
    done = {
        "file:/home/vagrant/.ssh/authorized_keys": LAB_KEY,
        "file:/root/.ssh/authorized_keys": LAB_KEY,
        "file:/etc/ssh/sshd_config.d/ovn-lab.conf": SSHD_TEXT.strip(),
        "passwd_locked:root": True,
    }
    assert changes(ops("root-ssh", plan, done)) == []


def test_writes_fresh_and_done() -> None:
    """The files a VM needs after a reboot, written whole by the runner; left alone when in place."""
    plan = plan_for("ovn-host-01", services="systemd", datapath="system")
    conf = "/etc/openvswitch/system-id.conf"
    br_int = {"datapath_type": "", "fail_mode": "secure", "other_config": {"datapath-id": "00000000c0a8013e"}}
    chassis = {"hostname": "ovn-host-01", "bridges": {"br-int": br_int}, "ovs_ids": IDS_DONE}
    assert changes(ops("chassis", plan, chassis | {f"file:{conf}": "5c1e0a7e-random-uuid"})) == [
        f"cat > {conf} <<'EOF'\novn-host-01\nEOF"
    ]
    assert Write(conf, "ovn-host-01\n", 0o644) in raw_ops("chassis", plan, chassis | {f"file:{conf}": None})
    assert changes(ops("chassis", plan, chassis | {f"file:{conf}": "ovn-host-01"})) == []

    network = "/etc/systemd/network/10-ovn-lab-underlay.network"
    link_file = "/etc/systemd/network/10-ovn-lab-underlay.link"
    nic = {"ifname": "eth1", "address": plan["mac"], "addr_info": []}
    fresh = raw_ops(
        "underlay", plan, {"addrs": [nic], "exists:/etc/network/interfaces": False, f"exists:{link_file}": False}
    )
    assert [op for op in fresh if isinstance(op, Write)] == [
        Write(network, "[Match]\nName=eth1\n\n[Network]\nAddress=192.168.1.62/24\n"),
        Write(link_file, f"[Match]\nMACAddress={plan['mac']}\n\n[Link]\nNamePolicy=kernel\nAlternativeName=enp9s0\n"),
    ]
    assert changes([op.shell() for op in fresh if not isinstance(op, Noop)]) == [
        f"cat > {network} <<'EOF'\n[Match]\nName=eth1\n\n[Network]\nAddress=192.168.1.62/24\nEOF",
        "ip addr replace 192.168.1.62/24 dev eth1",
        "ip link set eth1 up",
        "ip link property add dev eth1 altname enp9s0",
        f"cat > {link_file} <<'EOF'\n[Match]\nMACAddress={plan['mac']}\n\n[Link]\nNamePolicy=kernel\n"
        "AlternativeName=enp9s0\nEOF",
    ]
    held = nic | {"altnames": ["enp9s0"], "addr_info": [{"family": "inet", "local": "192.168.1.62", "prefixlen": 24}]}
    assert ops("underlay", plan, {"addrs": [held], f"exists:{link_file}": True}) == [
        ": ok, underlay 192.168.1.62/24 is on eth1",
        ": ok, eth1 is also called enp9s0",
        f": ok, {link_file} exists",
    ]


def test_runner_writes_a_file_atomically_and_echoes_a_heredoc(tmp_path: Path) -> None:
    path = tmp_path / "system-id.conf"
    path.write_text("5c1e0a7e-random-uuid\n")
    path.chmod(0o600)
    echo = f"ovn-host-01 # cat > {shlex.quote(str(path))} <<'EOF'\novn-host-01\nEOF\n"
    out = io.StringIO()
    Runner("ovn-host-01", Facts(FACTS), out=out, dry_run=True).do(Write(str(path), "ovn-host-01\n"))
    assert out.getvalue() == echo and path.read_text() == "5c1e0a7e-random-uuid\n"  # a dry run writes nothing
    out = io.StringIO()
    Runner("ovn-host-01", Facts(FACTS), out=out).do(Write(str(path), "ovn-host-01\n"))
    assert out.getvalue() == echo
    assert path.read_text() == "ovn-host-01\n" and path.stat().st_mode & 0o777 == 0o644
    assert os.listdir(tmp_path) == ["system-id.conf"]  # replaced, no temporary file left
    with pytest.raises(StepFailed, match="cannot write"):
        Runner("ovn-host-01", Facts(FACTS), out=io.StringIO()).do(Write(str(tmp_path / "no-dir" / "f"), "x\n"))
    assert os.listdir(tmp_path) == ["system-id.conf"]


def test_write_echo_keeps_a_text_containing_eof() -> None:
    assert Write("/f", "a\nEOF\n").shell() == "cat > /f <<'EOF_'\na\nEOF\nEOF_"


def test_running() -> None:
    assert running(os.getpid())
    assert not any(running(pid) for pid in (-1, 0, 2**31 - 1, 10**12))  # corrupt pidfiles, no such process
    child = subprocess.Popen(["true"])
    status = Path(f"/proc/{child.pid}/status")
    deadline = time.monotonic() + 10
    try:
        while "Z" not in [ln.split()[1] for ln in status.read_text().splitlines() if ln.startswith("State:")]:
            assert time.monotonic() < deadline, "the child never became a zombie"
            time.sleep(0.01)
        assert not running(child.pid)  # exited, not reaped yet: as an orphan under a slow PID 1
    finally:
        child.wait()


def test_pid_alive_reads_the_pidfile(tmp_path: Path) -> None:
    pidfile = tmp_path / "daemon.pid"
    for text, alive in ((f"{os.getpid()}\n", True), ("-1\n", False), ("0\n", False), ("", False), ("x", False)):
        pidfile.write_text(text)
        assert pid_alive(str(pidfile)) is alive, text
    assert not pid_alive(str(tmp_path / "none.pid"))


def test_pid_alive_proves_the_pid_is_still_the_daemon(tmp_path: Path) -> None:
    """A stale pidfile whose pid another process holds now (a lab's PID namespace reuses its few pids)."""
    pidfile = tmp_path / "ovnnb_db.pid"
    program = os.path.basename(sys.executable)
    with subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)", "ovnnb_db.db"]) as other:
        try:
            pidfile.write_text(f"{other.pid}\n")
            assert pid_alive(str(pidfile))  # the pid runs
            assert not pid_alive(str(pidfile), "ovsdb-server", "ovnnb_db.db")  # but it is not the NB's server
            deadline = time.monotonic() + 10
            while not pid_alive(str(pidfile), program, "ovnnb_db.db"):  # once exec'd
                assert time.monotonic() < deadline
                time.sleep(0.01)
            assert not pid_alive(str(pidfile), program, "ovnsb_db.db")
        finally:
            other.kill()
    # the same program with the same arguments, in another node's network namespace
    with subprocess.Popen(["unshare", "--user", "--map-root-user", "--net", "--", sys.executable, "-c",
                           "import time; time.sleep(30)", "ovnnb_db.db"]) as other:  # fmt: skip
        try:
            pidfile.write_text(f"{other.pid}\n")
            deadline = time.monotonic() + 10
            while not Path(f"/proc/{other.pid}/cmdline").read_bytes().startswith(sys.executable.encode()):  # exec'd
                assert time.monotonic() < deadline
                time.sleep(0.01)
            assert not pid_alive(str(pidfile), program, "ovnnb_db.db")
        finally:
            other.kill()


def test_session_answers_batch_after_batch() -> None:
    """labgen's session protocol against the real `python3 -m provision --session` (no command runs: the
    batches name unknown steps, and the last is a dry run of nothing)."""

    s = Session([sys.executable, "-S", "-m", "provision", "--session"])
    lines: list[str] = []
    request = json.dumps({"steps": ["no-such-step"], "plan": plan_for("ovn-host-01")})
    assert s.run(request, lines.append) == 2
    assert any("unknown steps ['no-such-step']" in ln for ln in lines)
    assert s.run(json.dumps({"steps": [], "plan": plan_for("ovn-host-01")}), lines.append) == 0  # still serving
    s.end()
    s.wait()
    assert s.process.returncode == 0
    dead = Session([sys.executable, "-c", "print('crashed'); raise SystemExit(3)"])
    out: list[str] = []
    assert dead.run("{}", out.append) == 3 and out == ["crashed"]  # ended mid-batch: its exit code
    dead.end()
    dead.wait()
    assert subprocess.run([sys.executable, "-m", "provision", "--session"], input="", text=True).returncode == 0
