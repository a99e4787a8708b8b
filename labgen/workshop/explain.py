"""What OVN made of each demo section, read from the lab itself: the logical flows northd added (counted
per pipeline stage, diffed from before the step) and those that answer DHCP; the Port_Binding rows and
the OpenFlow rules ovn-controller installed for each port; each lease beside the offer put_dhcp_opts
builds; the geneve tunnel a ping crosses, with its VNI and option. Read-only."""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable
from typing import Any

from ..backends.base import Backend
from ..model import Lab
from .detrace import STAGE_ROLE

LFLOW = re.compile(r"^\s+table=\s*(\d+)\s*\((\w+)\s*\), priority=\s*(\d+)\s*, match=\((.*)\), action=\((.*)\)$")


def lflows(text: str) -> list[tuple[str, str, str, str]]:
    """`ovn-sbctl lflow-list` -> (datapath, stage, match, action) for every logical flow."""
    out, dp = [], ""
    for line in text.splitlines():
        if line.startswith("Datapath: "):
            dp = line.split('"')[1]
        elif m := LFLOW.match(line):
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


class Explainer:
    def __init__(self, lab: Lab, backend: Backend, say: Callable[[list[str]], None], *, full: bool):
        self.lab, self.backend, self.say, self.full = lab, backend, say, full
        self.central = lab.central.name
        self.before: Counter[str] = Counter()
        self.flows: list[tuple[str, str, str, str]] = []  # as logical() read them; the DHCP offers are among them

    def sb(self, *args: str) -> str:
        r = self.backend.run(self.central, ["ovn-sbctl", *args], timeout=30)
        return r.stdout if r.ok else ""

    def rows(self, table: str, columns: str, node: str = "", ctl: str = "ovn-sbctl") -> list[list[Any]]:
        """A table's rows as ovn-sbctl (or ovs-vsctl on `node`) prints them in JSON; [] when it cannot."""
        argv = [ctl, "--format=json", f"--columns={columns}", "list", table]
        r = self.backend.run(node or self.central, argv, timeout=30)
        return json.loads(r.stdout)["data"] if r.ok and r.stdout.strip() else []

    def tell(self, short: str, lines: list[str]) -> None:
        self.say([f"underneath: {short}" + ("" if self.full else "  (invoke demo --explain shows how)")])
        if self.full:
            self.say([f"  {ln}" for ln in lines])

    # -- the sections -------------------------------------------------------------------------------------
    def start(self) -> None:
        self.before = Counter(f"{dp}/{st}" for dp, st, _, _ in lflows(self.sb("lflow-list")))

    def logical(self) -> None:
        self.backend.run(self.central, ["ovn-nbctl", "--wait=sb", "sync"], timeout=30)  # northd caught up
        flows = self.flows = lflows(self.sb("lflow-list"))
        now = Counter(f"{dp}/{st}" for dp, st, _, _ in flows)
        added = {k: now[k] - self.before[k] for k in now if now[k] > self.before[k]}
        dhcp = [(dp, m, a) for dp, st, m, a in flows if "put_dhcp_opts" in a]
        lines = [f"northd turned the NB rows into {sum(added.values())} logical flows, per pipeline stage:"]
        for key, n in sorted(added.items(), key=lambda kv: (kv[0].split("/")[0], "_out_" in kv[0])):
            stage = key.split("/")[1]
            role = STAGE_ROLE.get(stage, "")
            lines.append(f"  {n:>3}  {key:<34}" + (f"  {role}" if role else ""))
        lines.append(f"the {len(dhcp)} flows that answer DHCP (ls_in_dhcp_options; ovn-controller sends the reply):")
        lines += [f"  {dp}: match=({m})\n        action=({a})" for dp, m, a in dhcp]
        what = (
            f"northd added {sum(added.values())} logical flows in {len(added)} stages"
            if added
            else ("no new logical flows (the switches and DHCP options were there already)")
        )
        self.tell(f"{what}; {len(dhcp)} answer DHCP (put_dhcp_opts)", lines)

    def bind(self) -> None:
        rows = self.rows("port_binding", "logical_port,tunnel_key,chassis,datapath")
        chassis = self.rows("chassis", "_uuid,name")
        names = {c[0][1]: c[1] for c in chassis}
        dps = self.rows("datapath_binding", "_uuid,tunnel_key")
        dp_key = {d[0][1]: d[1] for d in dps}
        lines, total = [], 0
        ports = {p.name: p for p in self.lab.ports}
        for port, key, ch, dp in sorted(rows, key=lambda r: r[0]):
            if port not in ports:
                continue
            node = names.get(ch[1], "") if isinstance(ch, list) and ch[0] == "uuid" else ""
            lines.append(
                f"Port_Binding {port}: tunnel key {key}, datapath key {dp_key.get(dp[1])}, chassis {node or '(none)'}"
            )
            if node:
                r = self.backend.run(node, ["ovs-ofctl", "dump-flows", "br-int"], timeout=30)
                d = dp_key.get(dp[1])
                mine = tuple(f"{reg}=0x{key:x}{end}" for reg in ("reg14", "reg15") for end in (",", " "))
                n = by_table(r.stdout, mine, f"metadata=0x{d:x}") if d else Counter()
                total += sum(n.values())
                tables = ", ".join(f"table {t}: {c}" for t, c in sorted(n.items()))
                lines.append(
                    f"  {sum(n.values())} OpenFlow rules on {node} match its key (reg14/reg15=0x{key:x}): {tables}"
                )
        bound = sum(1 for ln in lines if ln.startswith("Port_Binding"))
        self.tell(f"{bound} Port_Binding rows claimed; {total} OpenFlow rules for them on their chassis", lines)

    def dhcp(self) -> None:
        offers = {}
        for _, _, m, a in self.flows:
            port = re.search(r'inport == "([^"]+)"', m)
            offer = re.search(r"put_dhcp_opts\((.*?)\)", a)
            if port and offer and "ip4.src == 0.0.0.0" in m:
                offers[port[1]] = offer[1]
        lines = []
        for p in self.lab.ports:
            r = self.backend.run(p.node, ["ip", "netns", "exec", p.netns, "ip", "-4", "-o", "addr", "show", p.name])
            lease = " ".join(re.findall(r"inet (\S+)", r.stdout)) or "(none)"
            lines.append(f"{p.netns} ({p.name}): lease {lease}  <- offer {offers.get(p.name, '(none)')}")
        self.tell(f"each lease is the offer put_dhcp_opts built from DHCP_Options ({len(offers)} offers)", lines)

    def ping(self) -> None:
        pairs = [(a, b) for a in self.lab.ports for b in self.lab.ports if a.switch == b.switch and a.node != b.node]
        if not pairs:
            self.tell("every ping stayed on one chassis: no tunnel", [])
            return
        a, b = pairs[0]
        dst_ip = self.lab.node(b.node).ip
        ifaces = self.rows("interface", "name,options,ofport,type", a.node, "ovs-vsctl")
        iface = next((i for i in ifaces if i[3] == "geneve" and dict(i[1][1]).get("remote_ip") == dst_ip), None)
        name, ofport = (iface[0], iface[2]) if iface else ("?", "?")
        pb = {r[0]: (r[1], r[2][1]) for r in self.rows("port_binding", "logical_port,tunnel_key,datapath")}
        dp_key = {d[0][1]: d[1] for d in self.rows("datapath_binding", "_uuid,tunnel_key")}
        (ka, dp), kb = pb.get(a.name, (0, "")), pb.get(b.name, (0, ""))[0]
        vni, option = dp_key.get(dp, "?"), f"0x{(ka << 16) | kb:x}"
        lines = [
            f"{a.netns} -> {b.netns} leaves {a.node} through {name} (geneve, remote_ip {dst_ip}, ofport {ofport})",
            f"VNI {vni} = the datapath key of {a.switch}; option class 0x102 type 0x80 = {option}"
            f" (from {a.name}'s key {ka} to {b.name}'s key {kb})",
            f"see it: invoke capture {a.node}, or invoke trace {a.netns} {b.netns}",
        ]
        self.tell(f"{a.netns} -> {b.netns} crossed {name}: VNI {vni}, geneve option {option}", lines)
