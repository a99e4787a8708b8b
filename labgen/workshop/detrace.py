"""Reading the text OVN's own tools print, for trace and explain: `ovn-trace --detailed` (the logical
pipelines), `ovs-appctl ofproto/trace` after `ovn-detrace` (each OpenFlow table, with the logical flow
behind it), `ovn-sbctl lflow-list` and `ovs-ofctl dump-flows`; and what each pipeline stage does.
Pure functions over their text, pinned to recorded outputs in the fake tier. (OVSDB tables are read as
facts, provision/facts.py, never here.)"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

# OpenFlow table N of ovn-controller runs logical ingress table N - 8, egress table N - 42 (OVN 23.03)
STAGE_ROLE = {
    "ls_in_check_port_sec": "port security: may this port send with this source MAC/IP?",
    "ls_in_apply_port_sec": "drops what port security refused",
    "ls_in_lookup_fdb": "MAC learning for ports with unknown addresses",
    "ls_in_put_fdb": "MAC learning for ports with unknown addresses",
    "ls_in_pre_acl": "marks traffic that stateful ACLs must track",
    "ls_in_pre_lb": "marks traffic for the load balancers",
    "ls_in_pre_stateful": "sends marked traffic through conntrack",
    "ls_in_acl_hint": "conntrack state hints for the ACL stages",
    "ls_in_acl": "the ACLs (from-lport): allow, drop or reject",
    "ls_in_qos_mark": "QoS: DSCP marking",
    "ls_in_qos_meter": "QoS: rate limits",
    "ls_in_lb_aff_check": "load balancer session affinity: a known client?",
    "ls_in_lb": "load balancers: a VIP becomes a backend",
    "ls_in_lb_aff_learn": "load balancer session affinity: remember the client",
    "ls_in_pre_hairpin": "a load-balanced packet that returns to its sender?",
    "ls_in_nat_hairpin": "NAT for such hairpinned packets",
    "ls_in_hairpin": "sends hairpinned packets back out of their port",
    "ls_in_acl_after_lb": "ACLs evaluated after load balancing",
    "ls_in_stateful": "commits tracked connections to conntrack",
    "ls_in_arp_rsp": "answers ARP for the ports' known addresses, on the switch itself",
    "ls_in_dhcp_options": "a DHCP request from a port with DHCP options: put_dhcp_opts builds the offer",
    "ls_in_dhcp_response": "sends that offer back out of the port it came from",
    "ls_in_dns_lookup": "DNS queries the switch answers itself",
    "ls_in_dns_response": "sends those answers back",
    "ls_in_external_port": "ports of type external (none in this lab)",
    "ls_in_l2_lkup": "the destination MAC picks the output port (or floods)",
    "ls_in_l2_unknown": "where frames to unknown MACs go",
    "ls_out_pre_acl": "marks traffic that stateful ACLs must track (egress)",
    "ls_out_pre_lb": "marks traffic for the load balancers (egress)",
    "ls_out_pre_stateful": "sends marked traffic through conntrack (egress)",
    "ls_out_acl_hint": "conntrack state hints for the egress ACLs",
    "ls_out_acl": "the ACLs (to-lport)",
    "ls_out_qos_mark": "QoS: DSCP marking (egress)",
    "ls_out_qos_meter": "QoS: rate limits (egress)",
    "ls_out_stateful": "commits tracked connections (egress)",
    "ls_out_check_port_sec": "port security on the way out",
    "ls_out_apply_port_sec": "delivers the packet to the output port",
}


@dataclass
class Table:
    """One OpenFlow table a packet went through, and what ovn-detrace found behind it."""

    number: int
    match: str
    actions: list[str] = field(default_factory=list)
    stage: str = ""  # the logical stage (ls_in_l2_lkup), when a logical flow is behind it
    lflow: str = ""  # "table=25 (ls_in_l2_lkup), priority=50, match=(...), actions=(...)"
    notes: list[str] = field(default_factory=list)  # Port Binding, Logical Switch Port, tunneling lines

    @property
    def passes(self) -> bool:
        """It only hands the packet on (`next;`): shown in --full only."""
        return bool(self.lflow) and self.lflow.endswith("actions=(next;)")


TABLE = re.compile(r"^\s*(\d+)\. (.*?)(?:, priority (\d+).*)?$")
LFLOW = re.compile(r"Logical flow: (table=\d+ \((\w+)\).*)$")


def openflow(text: str) -> list[Table]:
    """The tables of an ofproto/trace run through ovn-detrace, in order."""
    tables: list[Table] = []
    for line in text.splitlines():
        m = TABLE.match(line)
        if m and not line.startswith(" " * 4):
            tables.append(Table(int(m[1]), m[2]))
            continue
        if not tables:
            continue
        t, s = tables[-1], line.strip()
        if lf := LFLOW.search(s):
            t.lflow, t.stage = lf[1], lf[2]
        elif s.startswith("* ") or s.startswith("-> tunneling"):
            t.notes.append(s.lstrip("* "))
        elif s and not s.startswith(("bridge(", "----", "Final flow", "Megaflow", "Datapath actions", "Flow:")):
            t.actions.append(s)
    return tables


@dataclass
class Tunnel:
    remote: str
    vni: str
    option: str  # geneve option 0x102/0x80: ingress port key << 16 | egress port key

    def ports(self) -> tuple[int, int]:
        value = int(self.option, 16)
        return value >> 16, value & 0xFFFF


def tunnel(text: str) -> Tunnel | None:
    """Where ofproto/trace sent the packet into geneve: remote IP, VNI and the OVN option. The userspace
    datapath pushes the header itself (`-> tunneling to IP`, `tnl_push(...geneve(vni=...))`); the kernel's
    sets tunnel metadata (`set(tunnel(tun_id=0x1,src=...,dst=IP,...geneve({...})))`)."""
    remote = re.search(r"-> tunneling to ([\d.]+)", text) or re.search(r"set\(tunnel\([^()]*?\bdst=([\d.]+)", text)
    vni = re.search(r"geneve\([^)]*vni=(0x[0-9a-f]+)", text) or re.search(r"set\(tunnel\(tun_id=(0x[0-9a-f]+)", text)
    option = re.search(r"class=0x102,type=0x80,len=4,(0x[0-9a-f]+)", text)
    if not remote or not vni or not option:
        return None
    return Tunnel(remote[1], vni[1], option[1])


@dataclass
class Stage:
    """One stage of `ovn-trace --detailed`: `25. ls_in_l2_lkup (northd.c:9550): eth.dst == ..., priority 50`."""

    pipeline: str  # ingress(dp="net0", inport="port1")
    number: int
    name: str
    match: str
    actions: list[str] = field(default_factory=list)


STAGE = re.compile(r"^ *(\d+)\. (\w+) \([^)]*\): (.*), priority \d+, uuid \w+$")


def stages(text: str) -> list[Stage]:
    stages: list[Stage] = []
    pipeline = ""
    for line in text.splitlines():
        s = line.strip()
        if re.match(r"^(ingress|egress)\(", s):
            pipeline = s
            continue
        m = STAGE.match(line)
        if m:
            stages.append(Stage(pipeline, int(m[1]), m[2], m[3]))
        elif stages and s and not set(s) <= {"-"}:
            stages[-1].actions.append(s)
    return stages


def interesting(stage: Stage) -> bool:
    """A stage that does more than `next;`: where the packet's fate is decided."""
    return any(a not in ("next;",) for a in stage.actions)


KEY = ("reg14", "reg15", "metadata", "tun_id", "tun_metadata0")  # what an OVN packet carries between tables
NAMES = {"reg14": "inport key", "reg15": "outport key", "metadata": "datapath key", "tun_id": "VNI"}


def decides(t: Table) -> bool:
    """A table worth showing: a logical flow that does more than `next;`, or where the packet leaves."""
    return (bool(t.lflow) and not t.passes) or any(a.startswith(("output:", "controller(")) for a in t.actions)


def key_actions(t: Table) -> list[str]:
    """The actions that set what the packet carries, or send it out, named (`reg15=0x3 (outport key)`)."""
    out = []
    for a in t.actions:
        m = re.match(r"set_field:(\S+?)(?:/\S+)?->(\w+)$", a) or re.match(
            r"-> (?:OXM_OF_|NXM_NX_)?(\w+?)(?:\[[^]]*\])? is now (\S+)", a
        )
        if m and a.startswith("set_field"):
            value, reg = m[1], m[2]
        elif m:
            reg, value = m[1].lower(), m[2]
            if reg not in ("metadata", "reg14", "reg15"):  # tun_metadata0's upper half: said by the tunnel line
                continue
        else:
            if a.startswith(("output:", "controller(", "-> tunneling to")):
                out.append(a.lstrip("-> "))
            continue
        if reg in KEY:
            out.append(f"{reg}={value}" + (f" ({NAMES[reg]})" if reg in NAMES else ""))
    return out


def bindings(t: Table) -> list[str]:
    """`port3 (tunnel key 3) is bound on ovn-host-02`, from detrace's Port Binding notes."""
    out = []
    for n in t.notes:
        m = re.match(r'Port Binding: logical_port "([^"]+)", tunnel_key (\d+), chassis-name "([^"]*)"', n)
        if m:
            out.append(f"= {m[1]} (tunnel key {m[2]}), bound on {m[3] or 'no chassis'}")
    return out


LFLOW_LINE = re.compile(r"^\s+table=\s*(\d+)\s*\((\w+)\s*\), priority=\s*(\d+)\s*, match=\((.*)\), action=\((.*)\)$")


def lflows(text: str) -> list[tuple[str, str, str, str]]:
    """`ovn-sbctl lflow-list` -> (datapath, stage, match, action) for every logical flow."""
    out, dp = [], ""
    for line in text.splitlines():
        if line.startswith("Datapath: "):
            dp = line.split('"')[1]
        elif m := LFLOW_LINE.match(line):
            out.append((dp, m[2], m[4], m[5]))
    return out


def by_table(dump: str, keys: tuple[str, ...], datapath: str) -> Counter[int]:
    """OpenFlow rules of `ovs-ofctl dump-flows br-int` on `datapath` (metadata=0x1) that match any of `keys`
    (a port's key in reg14 or reg15: keys repeat across switches), counted per table."""
    n: Counter[int] = Counter()
    for line in dump.splitlines():
        m = re.search(r"table=(\d+),", line)
        match = line.split(" actions=")[0] + ","
        if m and f"{datapath}," in match and any(k in match for k in keys):
            n[int(m[1])] += 1
    return n
