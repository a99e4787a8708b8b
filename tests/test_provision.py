"""Tier 3: provisioner steps as facts in, commands out. A fact a step reads without the case declaring it
raises KeyError; every step has a fresh case and an already-done case that must yield no command."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from labgen.backends.base import Session
from labgen.load import load_lab
from labgen.plan import node_spec
from provision.core import Cmd, Noop, Show, Wait
from provision.facts import ovsdb_json
from provision.steps import STEPS

pytestmark = pytest.mark.provision
LAB = load_lab("lab.toml")


def spec(node: str, **kw: Any) -> dict[str, Any]:
    args = {"datapath": "netdev", "services": "daemons", "install": False} | kw
    return node_spec(LAB, node, **args)


def plan(step: str, s: dict[str, Any], facts: dict[str, Any]) -> list[str]:
    """The step's ops as text: commands as the trainee sees them, `: ok, ...` for no-ops."""
    out = []
    ops: Iterator[Any] = STEPS[step](s, facts)
    for op in ops:
        if isinstance(op, Noop):
            out.append(f": ok, {op.what}")
        elif isinstance(op, Wait):
            out.append(f"wait: {op.what}")
        else:
            out.append(op.shell())
    return out


def changes(lines: list[str]) -> list[str]:
    return [ln for ln in lines if not ln.startswith((": ok", "wait:"))]


RUNNING = {
    f"pid_alive:{d}": True
    for d in ("ovsdb-server", "ovs-vswitchd", "ovnnb_db", "ovnsb_db", "ovn-northd", "ovn-controller")
}
DIRS = {
    f"exists:{d}": True
    for d in (
        "/run/openvswitch",
        "/run/ovn",
        "/var/log/openvswitch",
        "/var/log/ovn",
        "/etc/openvswitch",
        "/var/lib/ovn",
        "/etc/openvswitch/conf.db",
        "/var/lib/ovn/ovnnb_db.db",
        "/var/lib/ovn/ovnsb_db.db",
    )
}


def test_ovs_fresh_daemons() -> None:
    facts = {k: False for k in [*RUNNING, *DIRS]}
    assert changes(plan("ovs", spec("ovn-host-01"), facts)) == [
        "mkdir -p /run/openvswitch /run/ovn /var/log/openvswitch /var/log/ovn /etc/openvswitch /var/lib/ovn",
        "ovsdb-tool create /etc/openvswitch/conf.db /usr/share/openvswitch/vswitch.ovsschema",
        "ovsdb-server /etc/openvswitch/conf.db --remote=punix:/run/openvswitch/db.sock "
        "--remote=db:Open_vSwitch,Open_vSwitch,manager_options --pidfile -vconsole:off --log-file --detach",
        "ovs-vsctl --no-wait init",
        "ovs-vswitchd --pidfile -vconsole:off --log-file --detach",
    ]


def test_ovs_done_daemons() -> None:
    assert changes(plan("ovs", spec("ovn-host-01"), RUNNING | DIRS)) == []


def test_ovs_systemd() -> None:
    s = spec("ovn-host-01", services="systemd", datapath="system")
    assert plan("ovs", s, {"unit:openvswitch-switch": {"enabled": False, "active": True}}) == [
        "systemctl enable --now openvswitch-switch"
    ]
    assert changes(plan("ovs", s, {"unit:openvswitch-switch": {"enabled": True, "active": True}})) == []


def test_central_fresh_and_done() -> None:
    s = spec("ovn-central-01", services="systemd", datapath="system")
    fresh = plan("central", s, {"unit:ovn-central": {"enabled": False, "active": False}, "sb_connection": []})
    assert fresh == [
        "systemctl enable --now ovn-central",
        "wait: the NB database answers",
        "wait: the SB database answers",
        "ovn-sbctl set-connection ptcp:6642",
    ]
    done = plan("central", s, {"unit:ovn-central": {"enabled": True, "active": True}, "sb_connection": ["ptcp:6642"]})
    assert changes(done) == []


IDS_DONE = {
    "ovn-remote": "tcp:192.168.1.61:6642",
    "ovn-encap-ip": "192.168.1.62",
    "ovn-encap-type": "geneve",
    "system-id": "ovn-host-01",
    "hostname": "ovn-host-01",
}


def test_chassis_fresh_vm() -> None:
    s = spec("ovn-host-01", services="systemd", datapath="system")
    facts = {
        "hostname": "bookworm",
        "bridges": {},
        "ovs_ids": {"system-id": "x"},
        "file:/etc/openvswitch/system-id.conf": "5c1e0a7e-random-uuid",
    }
    assert changes(plan("chassis", s, facts)) == [
        "hostnamectl set-hostname ovn-host-01",
        "sed -i 's/^127.0.1.1.*/127.0.1.1 ovn-host-01/' /etc/hosts",
        "ovs-vsctl --may-exist add-br br-int -- set bridge br-int fail-mode=secure other_config:disable-in-band=true "
        "other_config:datapath-id=00000000c0a8013e",
        "sh -c 'echo ovn-host-01 > /etc/openvswitch/system-id.conf'",
        "ovs-vsctl set open_vswitch . external_ids:ovn-remote=tcp:192.168.1.61:6642 "
        "external_ids:ovn-encap-ip=192.168.1.62 external_ids:ovn-encap-type=geneve external_ids:system-id=ovn-host-01 "
        "external_ids:hostname=ovn-host-01",
    ]
    controller = plan("controller", s, {"unit:ovn-host": {"enabled": False, "active": False}})
    assert controller == ["wait: the SB answers on tcp:192.168.1.61:6642", "systemctl enable --now ovn-host"]


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
    assert changes(plan("chassis", spec("ovn-host-01"), facts)) == []
    assert changes(plan("controller", spec("ovn-host-01"), {"pid_alive:ovn-controller": True})) == []


LINKS_FRESH = [
    {"ifname": "lo", "flags": ["UP"], "address": "00:00:00:00:00:00", "addr_info": []},
    {"ifname": "eth0", "flags": ["UP"], "address": "52:54:00:e1:37:02", "link_type": "ether", "addr_info": []},
]


def test_underlay_netdev_fresh_and_done() -> None:
    s = spec("ovn-host-01")
    fresh = plan("underlay", s, {"addrs": LINKS_FRESH, "bridges": {}})
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
    done = plan("underlay", s, {"addrs": done_links, "bridges": {"br-phy": {}}, "bridge_ports:br-phy": ["eth0"]})
    assert changes(done) == []


def test_underlay_vm_finds_nic_by_address_not_name() -> None:
    s = spec("ovn-host-01", services="systemd", datapath="system")
    links = [{"ifname": "enp9s0", "addr_info": [{"family": "inet", "local": "192.168.1.62", "prefixlen": 24}]}]
    link_file = "exists:/etc/systemd/network/10-ovn-lab-underlay.link"
    assert plan("underlay", s, {"addrs": links, link_file: True}) == [
        ": ok, underlay 192.168.1.62/24 is on enp9s0",
        ": ok, enp9s0 is also called enp9s0",
        ": ok, /etc/systemd/network/10-ovn-lab-underlay.link exists",
    ]
    links[0]["ifname"] = "eth1"
    assert changes(plan("underlay", s, {"addrs": links, link_file: False}))[0] == (
        "ip link property add dev eth1 altname enp9s0"
    )


def test_underlay_vm_configures_the_nic_found_by_mac() -> None:
    """The lab's box leaves the underlay NIC unconfigured (no Vagrant auto_config): found by its MAC."""
    s = spec("ovn-host-01", services="systemd", datapath="system")
    links = [
        {"ifname": "eth0", "address": "52:54:00:aa:bb:cc", "addr_info": [{"local": "192.168.121.5", "prefixlen": 24}]},
        {"ifname": "eth1", "address": s["mac"], "addr_info": []},
    ]
    facts = {
        "addrs": links,
        "exists:/etc/network/interfaces": True,
        "exists:/etc/systemd/network/10-ovn-lab-underlay.link": True,
    }
    assert changes(plan("underlay", s, facts))[:2] == [
        "sh -c 'printf '\"'\"'auto eth1\\niface eth1 inet static\\n    address 192.168.1.62/24\\n'\"'\"' "
        "> /etc/network/interfaces.d/ovn-lab-underlay'",
        "ifup eth1",
    ]


def test_logical_fresh() -> None:
    s = spec("ovn-central-01")
    got = changes(plan("logical", s, {"nb": {"nb_switches": [], "nb_dhcp": [], "nb_ports": []}}))
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
    assert changes(plan("logical", spec("ovn-central-01"), {"nb": nb})) == []


def test_logical_fixes_a_port_without_dhcp_options() -> None:
    ports = ovsdb_json(NB_PORTS)
    ports[1]["dhcpv4_options"] = []
    nb = {"nb_switches": ovsdb_json(NB_SWITCHES), "nb_dhcp": ovsdb_json(NB_DHCP), "nb_ports": ports}
    assert changes(plan("logical", spec("ovn-central-01"), {"nb": nb})) == ["ovn-nbctl lsp-set-dhcpv4-options port2 d1"]


def test_trace_uses_the_port_mac() -> None:
    assert plan("trace", spec("ovn-central-01"), {}) == [
        'ovn-trace --summary net0 \'inport=="port1" && eth.src==c0:ff:ee:00:00:11 && ip4.src==0.0.0.0 && '
        "ip.ttl==1 && ip4.dst==255.255.255.255 && udp.src==68 && udp.dst==67'"
    ]


def test_bind_fresh_and_done() -> None:
    s = spec("ovn-host-02")
    fresh = plan("bind", s, {"netns": [], "interfaces": {}, "ns_addrs:vm3": []})
    assert changes(fresh) == [
        "ip netns add vm3",
        "ovs-vsctl --may-exist add-port br-int port3 -- set interface port3 type=internal "
        "'mac=[\"c0:ff:ee:00:00:13\"]' external_ids:iface-id=port3",
        "ip link set port3 netns vm3",
        "ip -n vm3 link set port3 up",
        "ip -n vm3 addr add 127.0.0.1/8 dev lo",
        "ip -n vm3 link set lo up",
    ]
    done = plan(
        "bind",
        s,
        {
            "netns": ["vm3"],
            "interfaces": {
                "port3": {"type": "internal", "mac": "c0:ff:ee:00:00:13", "external_ids": {"iface-id": "port3"}}
            },
            "ns_addrs:vm3": [
                {"ifname": "lo", "addr_info": [{"family": "inet", "local": "127.0.0.1", "prefixlen": 8}]},
                {"ifname": "port3", "address": "c0:ff:ee:00:00:13", "flags": ["UP"], "addr_info": []},
            ],
        },
    )
    assert changes(done) == []


def test_bind_corrects_a_wrong_mac_in_the_namespace() -> None:
    facts = {
        "netns": ["vm3"],
        "interfaces": {
            "port3": {"type": "internal", "mac": "c0:ff:ee:00:00:13", "external_ids": {"iface-id": "port3"}}
        },
        "ns_addrs:vm3": [
            {"ifname": "lo", "addr_info": [{"family": "inet", "local": "127.0.0.1", "prefixlen": 8}]},
            {"ifname": "port3", "address": "c0:ff:ee:00:00:99", "flags": ["UP"], "addr_info": []},
        ],
    }
    assert changes(plan("bind", spec("ovn-host-02"), facts)) == ["ip -n vm3 link set port3 address c0:ff:ee:00:00:13"]


def test_dhcp_fresh_and_done() -> None:
    s = spec("ovn-host-02")
    fresh = plan("dhcp", s, {"ns_addrs:vm3": [], "pid_alive:/run/dhclient-vm3.pid": False})
    assert fresh[0] == (
        "ip netns exec vm3 dhclient -v -i -1 -lf /var/lib/dhcp/dhclient-vm3.leases -pf /run/dhclient-vm3.pid port3"
    )
    held = [{"ifname": "port3", "addr_info": [{"family": "inet", "local": "10.0.0.13", "prefixlen": 24}]}]
    done = plan("dhcp", s, {"ns_addrs:vm3": held, "pid_alive:/run/dhclient-vm3.pid": True})
    assert [ln for ln in done if "dhclient" in ln] == [": ok, vm3 holds 10.0.0.13/24 (dhclient running)"]


def test_install_missing_packages() -> None:
    s = spec("ovn-central-01", services="systemd", datapath="system", install=True)
    tools = {t: False for t in ("ovs-vsctl", "ovn-controller", "ovn-northd", "dhclient", "ping")}
    got = plan("install", s, {"tools": tools})
    assert got[0] == "wait: the dpkg lock is free"
    assert got[-1].endswith(
        "apt-get install -y -q openvswitch-switch ovn-host isc-dhcp-client iputils-ping tcpdump ovn-central"
    )
    assert plan("install", s, {"tools": dict.fromkeys(tools, True)}) == [
        ": ok, Open vSwitch, OVN and dhclient are installed"
    ]


def test_undeclared_fact_is_an_error() -> None:
    with pytest.raises(KeyError):
        plan("chassis", spec("ovn-host-01"), {"hostname": "ovn-host-01"})


def test_ops_are_argv_not_shell() -> None:
    for op in STEPS["bind"](spec("ovn-host-02"), {"netns": [], "interfaces": {}, "ns_addrs:vm3": []}):
        if isinstance(op, (Cmd, Show)):
            assert isinstance(op.argv, tuple) and all(isinstance(a, str) for a in op.argv)


def test_session_answers_batch_after_batch() -> None:
    """labgen's session protocol against the real `python3 -m provision --session` (no command runs: the
    batches name unknown steps, and the last is a dry run of nothing)."""
    s = Session([sys.executable, "-S", "-m", "provision", "--session"])
    lines: list[str] = []
    request = json.dumps({"steps": ["no-such-step"], "plan": spec("ovn-host-01")})
    assert s.run(request, lines.append) == 2
    assert any("unknown steps ['no-such-step']" in ln for ln in lines)
    assert s.run(json.dumps({"steps": [], "plan": spec("ovn-host-01")}), lines.append) == 0  # still serving
    s.end()
    s.wait()
    assert s.p.returncode == 0
    dead = Session([sys.executable, "-c", "print('crashed'); raise SystemExit(3)"])
    out: list[str] = []
    assert dead.run("{}", out.append) == 3 and out == ["crashed"]  # ended mid-batch: its exit code
    dead.end()
    dead.wait()
    assert subprocess.run([sys.executable, "-m", "provision", "--session"], input="", text=True).returncode == 0
