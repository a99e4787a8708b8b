"""`invoke trace FROM TO [--proto icmp|udp|dhcp] [--full]`: one packet from a port (or its namespace) to
another, three ways: through the logical pipelines (`ovn-trace --detailed`, on central); through the
sending chassis's OpenFlow tables (`ofproto/trace`, each table mapped back to its logical flow and NB
object by `ovn-detrace`, which runs on central where the NB is), ending in the geneve output; and on the
receiving chassis from the tunnel to the port. Short by default: the tables that decide something;
`--full` shows every table."""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path

from provision.core import prompt
from provision.views import NOT_ALLOCATED

from ..backends.base import Backend
from ..errors import InputError, LabError, UnknownName
from ..lab import open_up_lab
from ..model import Lab, Port
from ..observe import Observer, Unreadable
from ..ui import console
from . import detrace
from .detrace import STAGE_ROLE, Table

PROTOS = ("icmp", "udp", "dhcp")


@dataclass
class Packet:
    src: Port
    dst: Port | None  # None: DHCP, which OVN itself answers
    ovn: str  # the ovn-trace microflow
    of: str  # the ofproto/trace flow


def port_of(lab: Lab, name: str) -> Port:
    """A port by its name (port1) or its namespace (vm1)."""
    for p in lab.ports:
        if name in (p.name, p.netns):
            return p
    raise UnknownName("port or namespace", name, [p.netns for p in lab.ports] + [p.name for p in lab.ports])


def packet(lab: Lab, observe: Observer, src: Port, dst: Port, proto: str) -> Packet:
    if proto not in PROTOS:
        raise UnknownName("protocol", proto, PROTOS)
    found = observe.allocations()  # a dynamic MAC with no IP (northd had none to give) is there too
    smac = src.mac or found.get(src.name, NOT_ALLOCATED).mac
    ips = {p: a.ip for p, a in found.items() if a.ip}
    if not smac or (proto != "dhcp" and (src.name not in ips or dst.name not in ips)):
        raise LabError("the ports have no addresses yet", "run `invoke demo` first: it creates them")
    if proto == "dhcp":  # a DISCOVER: from 0.0.0.0 to everyone; OVN's own flows answer it
        ovn = (
            f'inport == "{src.name}" && eth.src == {smac} && eth.dst == ff:ff:ff:ff:ff:ff && ip4.src == 0.0.0.0 '
            "&& ip4.dst == 255.255.255.255 && udp.src == 68 && udp.dst == 67"
        )
        of = f"in_port={src.name},udp,dl_src={smac},dl_dst=ff:ff:ff:ff:ff:ff,nw_src=0.0.0.0,nw_dst=255.255.255.255,"
        return Packet(src, None, ovn, of + "nw_ttl=64,udp_src=68,udp_dst=67")
    if dst.switch != src.switch:
        raise InputError(
            f"{src.name} is on {src.switch}, {dst.name} on {dst.switch}: no router joins them, no path to trace",
            "trace two ports of one switch",
        )
    (smac, sip), (dmac, dip) = found[src.name], found[dst.name]
    base = f'inport == "{src.name}" && eth.src == {smac} && eth.dst == {dmac} && ip4.src == {sip} && ip4.dst == {dip}'
    flow = f"in_port={src.name},{{}},dl_src={smac},dl_dst={dmac},nw_src={sip},nw_dst={dip},nw_ttl=64"
    if proto == "icmp":
        return Packet(src, dst, f"{base} && ip.ttl == 64 && icmp4.type == 8", flow.format("icmp") + ",icmp_type=8")
    udp = f"{base} && ip.ttl == 64 && udp.src == 5000 && udp.dst == 5001"
    return Packet(src, dst, udp, flow.format("udp") + ",udp_src=5000,udp_dst=5001")


def trace(config: str | Path, src: str, dst: str, *, proto: str = "icmp", full: bool = False) -> list[str]:
    lab, backend = open_up_lab(config)
    lines = traced(lab, backend, src, dst, proto, full).out
    for ln in lines:
        console.print(ln, markup=False, highlight=False)
    return lines


def traced(lab: Lab, backend: Backend, src: str, dst: str, proto: str = "icmp", full: bool = False) -> Tracer:
    """The trace run, for its lines and what it found (the tunnel, a drop): `graph --src --dst` draws it."""
    observe = Observer(lab, backend)
    pkt = packet(lab, observe, port_of(lab, src), port_of(lab, dst), proto)
    t = Tracer(observe, pkt, full)
    t.all()
    return t


class Tracer:
    def __init__(self, observe: Observer, pkt: Packet, full: bool):
        self.observe, self.pkt, self.full = observe, pkt, full
        self.lab, self.backend, self.central = observe.lab, observe.backend, observe.central
        self.out: list[str] = []
        self.tunnel: detrace.Tunnel | None = None  # where the packet entered geneve
        self.dropped = ""  # the logical stage that drops it, if one does

    def all(self) -> list[str]:
        p, d = self.pkt.src, self.pkt.dst
        to = f"{d.name} ({d.node})" if d else "OVN's DHCP (ovn-controller answers it)"
        self.out.append(f"== {p.netns} -> {d.netns if d else 'DHCP'}: {p.name} ({p.node}) -> {to} on {p.switch} ==")
        self.ovn_trace()
        sent = self.chassis(p.node, self.pkt.of, "sending")
        tun = self.tunnel = detrace.tunnel(sent)
        if d and tun:
            sender = self.lab.node(p.node).ip
            try:
                ofport = self.observe.fact(d.node, "geneve_ofport", sender)
            except Unreadable as e:  # ovs-vsctl found none (exit 0, no ofport), or could not ask
                what = f"{d.node} has no geneve tunnel from {p.node} ({sender})" if e.rc == 0 else ""
                raise LabError(
                    f"{what or f'cannot read {e.what} on {d.node}'}: {e}", "invoke check says why (encap IP, tunnels)"
                ) from None
            tunnel = (
                f"in_port={ofport},tun_id={tun.vni},tun_src={sender},tun_dst={tun.remote},tun_metadata0={tun.option}"
            )
            flow = self.pkt.of.replace(f"in_port={p.name}", tunnel)
            self.chassis(d.node, flow, "receiving")
        return self.out

    def run(self, node: str, argv: list[str], stdin: str | None = None) -> str:
        r = self.backend.run(node, argv, timeout=60, input=stdin)
        if not r.ok:
            raise LabError(f"{node}: {shlex.join(argv)} failed: {(r.stderr or r.stdout).strip()[-300:]}")
        return r.stdout

    def ovn_trace(self) -> None:
        argv = ["ovn-trace", "--detailed", self.pkt.src.switch, self.pkt.ovn]
        self.out.append(f"-- the logical pipelines, on {self.central}:")
        self.out.append(prompt(self.central, shlex.join(argv)))
        text = self.run(self.central, argv)
        stages = detrace.stages(text)
        drop = next((st for st in stages if "drop;" in st.actions), None)
        if drop:
            self.dropped = f"{drop.name} ({drop.pipeline.split('(')[0]} table {drop.number})"
        for st in stages:
            if not self.full and not detrace.interesting(st) and st.name not in STAGE_ROLE:
                continue
            role = STAGE_ROLE.get(st.name, "")
            self.out.append(
                f"  {st.pipeline.split('(')[0]:<7} {st.number:>2}. {st.name}: {st.match}"
                + (f"   # {role}" if role else "")
            )
            self.out += [f"{'':14}{a}" for a in st.actions if self.full or a != "next;"]

        if self.dropped:
            self.out.append(
                f"  => dropped in {self.dropped}: that logical flow, and the NB row behind it, is the cause"
            )

    def chassis(self, node: str, flow: str, role: str) -> str:
        """ofproto/trace on `node`, read back through ovn-detrace on central; returns the raw trace."""
        argv = ["ovs-appctl", "ofproto/trace", "br-int", flow]
        raw = self.run(node, argv)
        mapped = self.run(self.central, ["ovn-detrace"], stdin=raw)
        self.out.append(f"-- {node}, the {role} chassis: OpenFlow tables, each with the logical flow behind it:")
        self.out.append(prompt(node, f"{shlex.join(argv)} | ovn-detrace   # ovn-detrace runs on {self.central}"))
        tables = detrace.openflow(mapped)
        shown = [t for i, t in enumerate(tables) if self.full or i == 0 or detrace.decides(t)]
        for t in shown:
            self.out += self.table(t)
        if len(shown) < len(tables):
            self.out.append(f"  ({len(tables) - len(shown)} more tables hand the packet on: --full shows each)")
        tun = detrace.tunnel(raw)
        if tun:
            a, b = tun.ports()
            self.out.append(
                f"  => geneve to {tun.remote}: VNI {tun.vni} (the datapath's tunnel key), "
                f"option 0x102/0x80 = {tun.option} (from logical port key {a} to "
                + (f"key {b})" if b < 0x8000 else f"multicast group {b}: flooded to every port)")
            )
        elif "controller(" in raw:
            self.out.append("  => to ovn-controller (a controller action: it builds the reply itself)")
        return raw

    def table(self, t: Table) -> list[str]:
        if self.full:
            head = f"  table {t.number:>2}: {t.match}" + (f"  <- {t.lflow}" if t.lflow else "")
            return [head, *(f"{'':12}{x}" for x in t.actions), *(f"{'':12}* {n}" for n in t.notes)]
        what = t.lflow or t.match
        role = STAGE_ROLE.get(t.stage, "")
        lines = [f"  table {t.number:>2}: {what}" + (f"   # {role}" if role else "")]
        keys = detrace.key_actions(t)
        if keys:
            lines.append(f"{'':12}{'; '.join(keys)}")
        lines += [f"{'':12}{n}" for n in detrace.bindings(t)]
        return lines
