"""What OVN made of each demo section, read from the lab itself: the logical flows northd added (counted
per pipeline stage, diffed from before the step) and those that answer DHCP; the Port_Binding rows and
the OpenFlow rules ovn-controller installed for each port; each lease beside the offer put_dhcp_opts
builds; the geneve tunnel a ping crosses, with its VNI and option. Read-only.

Each section reads (its reads at once) and returns a Note; the demo tells it where it belongs, and may
start the reading early, beside the demo's own work."""

from __future__ import annotations

import functools
import re
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Concatenate, ParamSpec

from provision.facts import addr_of
from provision.views import PortKey, port_keys, tunnels

from ..backends.base import Backend
from ..model import Lab
from ..observe import Observer, Unreadable
from .detrace import STAGE_ROLE, by_table, lflows


@dataclass(frozen=True)
class Note:
    short: str  # the line the demo always shows
    lines: list[str]  # what --explain adds
    hint: bool = True  # point at --explain


P = ParamSpec("P")
Section = Callable[Concatenate["Explainer", P], Note]


def _shown_if_unreadable(section: Section[P]) -> Section[P]:
    """A section whose facts cannot be read says so: the demo goes on (explaining is read-only)."""

    @functools.wraps(section)
    def told(self: Explainer, *args: P.args, **kwargs: P.kwargs) -> Note:
        try:
            return section(self, *args, **kwargs)
        except Unreadable as e:
            return Note(f"cannot read {e.what} on {e.node}: {e}", [], hint=False)

    return told


def at_once(*reads: Callable[[], Any]) -> list[Any]:
    """Independent reads side by side (each a round trip to a node); their results in order."""
    with ThreadPoolExecutor(max_workers=max(1, len(reads))) as pool:
        futures = [pool.submit(r) for r in reads]
    return [f.result() for f in futures]


class Explainer:
    def __init__(self, lab: Lab, backend: Backend, say: Callable[[list[str]], None], *, full: bool):
        self.lab, self.backend, self.say, self.full = lab, backend, say, full
        self.observe = Observer(lab, backend)
        self.central = lab.central.name
        self.before: Counter[str] = Counter()
        self.flows: list[tuple[str, str, str, str]] = []  # as logical() read them; the DHCP offers are among them
        self.bound: dict[str, PortKey] = {}  # the keys as bind() read them: DHCP and pings change none

    def lflows(self) -> list[tuple[str, str, str, str]]:
        return lflows(self.observe.fact(self.central, "lflow_list"))

    def keys(self) -> dict[str, PortKey]:
        """Each port's tunnel key, its datapath's and its chassis (the facts read anew: the demo changes them)."""
        facts = ("sb_port_keys", "sb_datapaths", "sb_chassis")
        return port_keys(*at_once(*(functools.partial(self.observe.fact, self.central, f) for f in facts)))

    def tell(self, note: Note) -> None:
        hint = "  (invoke demo --explain shows how)" if note.hint and not self.full else ""
        self.say([f"underneath: {note.short}{hint}"])
        if self.full and note.lines:
            self.say([f"  {ln}" for ln in note.lines])

    # -- the sections -------------------------------------------------------------------------------------
    def start(self) -> None:
        """Before the logical step: the flows there were."""
        try:
            self.before = Counter(f"{dp}/{st}" for dp, st, _, _ in self.lflows())
        except Unreadable as e:
            self.tell(Note(f"cannot read {e.what} on {e.node}: {e}", [], hint=False))

    @_shown_if_unreadable
    def logical(self) -> Note:
        self.backend.run(self.central, ["ovn-nbctl", "--wait=sb", "sync"], timeout=30)  # northd caught up
        flows = self.flows = self.lflows()
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
        return Note(f"{what}; {len(dhcp)} answer DHCP (put_dhcp_opts)", lines)

    @_shown_if_unreadable
    def bind(self) -> Note:
        lines, total = [], 0
        nodes = sorted({p.node for p in self.lab.ports})
        got = at_once(self.keys, *(functools.partial(self.observe.fact, n, "openflow") for n in nodes))
        dumps = dict(zip(nodes, got[1:], strict=True))
        self.bound = got[0]
        keys = {port: k for port, k in got[0].items() if port in {p.name for p in self.lab.ports}}
        for port, (key, dp, node) in sorted(keys.items()):
            lines.append(f"Port_Binding {port}: tunnel key {key}, datapath key {dp}, chassis {node or '(none)'}")
            if node:
                dump = dumps[node] if node in dumps else self.observe.fact(node, "openflow")
                mine = tuple(f"{reg}=0x{key:x}{end}" for reg in ("reg14", "reg15") for end in (",", " "))
                n = by_table(dump, mine, f"metadata=0x{dp:x}") if dp else Counter()
                total += sum(n.values())
                tables = ", ".join(f"table {t}: {c}" for t, c in sorted(n.items()))
                lines.append(
                    f"  {sum(n.values())} OpenFlow rules on {node} match its key (reg14/reg15=0x{key:x}): {tables}"
                )
        return Note(f"{len(keys)} Port_Binding rows claimed; {total} OpenFlow rules for them on their chassis", lines)

    @_shown_if_unreadable
    def dhcp(self, leases: dict[str, list[str]]) -> Note:
        """`leases`: port -> its namespace's addresses, as the demo proved them (read here where missing)."""
        offers = {}
        for _, _, m, a in self.flows:
            port = re.search(r'inport == "([^"]+)"', m)
            offer = re.search(r"put_dhcp_opts\((.*?)\)", a)
            if port and offer and "ip4.src == 0.0.0.0" in m:
                offers[port[1]] = offer[1]
        lines = []
        missing = [p for p in self.lab.ports if p.name not in leases]
        addrs = at_once(*(functools.partial(self.observe.fact, p.node, "ns_addrs", p.netns) for p in missing))
        leases = {**leases, **{p.name: addr_of(got, p.name) for p, got in zip(missing, addrs, strict=True)}}
        for p in self.lab.ports:
            lease = " ".join(leases[p.name]) or "(none)"
            lines.append(f"{p.netns} ({p.name}): lease {lease}  <- offer {offers.get(p.name, '(none)')}")
        return Note(f"each lease is the offer put_dhcp_opts built from DHCP_Options ({len(offers)} offers)", lines)

    @_shown_if_unreadable
    def ping(self) -> Note:
        pairs = [(a, b) for a in self.lab.ports for b in self.lab.ports if a.switch == b.switch and a.node != b.node]
        if not pairs:
            return Note("every ping stayed on one chassis: no tunnel", [])
        a, b = pairs[0]
        dst_ip = self.lab.node(b.node).ip
        ofports = functools.partial(self.observe.fact, a.node, "ofports")
        ofports, keys = at_once(ofports, lambda: self.bound or self.keys())
        tunnel = next((t for t in tunnels(ofports) if t.remote_ip == dst_ip), None)
        name, ofport = (tunnel.name, tunnel.ofport) if tunnel else ("?", "?")
        ka, kb = (keys[x].key if x in keys else 0 for x in (a.name, b.name))
        vni, option = (keys[a.name].datapath if a.name in keys else None) or "?", f"0x{(ka << 16) | kb:x}"
        lines = [
            f"{a.netns} -> {b.netns} leaves {a.node} through {name} (geneve, remote_ip {dst_ip}, ofport {ofport})",
            f"VNI {vni} = the datapath key of {a.switch}; option class 0x102 type 0x80 = {option}"
            f" (from {a.name}'s key {ka} to {b.name}'s key {kb})",
            f"see it: invoke capture {a.node}, or invoke trace {a.netns} {b.netns}",
        ]
        return Note(f"{a.netns} -> {b.netns} crossed {name}: VNI {vni}, geneve option {option}", lines)
