"""`invoke graph`: the live lab as a diagram (Graphviz): nodes with underlay IPs, the geneve mesh, and the
logical layer (switches, ports, the chassis each is bound to, leases); with --trace, one packet's path."""

from __future__ import annotations

import subprocess
from pathlib import Path

from ..errors import InputError, LabError
from ..lab import open_up_lab
from ..model import Lab
from .status import LabStatus, status
from .trace import Tracer, traced


def _q(*lines: str) -> str:
    """A DOT string literal; several lines become a multi-line label."""
    text = "\\n".join(line.replace("\\", "\\\\").replace('"', '\\"') for line in lines)
    return f'"{text}"'


def path_edges(lab: Lab, t: Tracer) -> list[str]:
    """A traced packet's path over the diagram, in red: into br-int, across the tunnel, out to the port."""
    src, dst = t.pkt.src, t.pkt.dst
    red = 'color="#d62728", fontcolor="#d62728", penwidth=2.5'
    if t.dropped:
        label = _q("dropped in " + t.dropped)
        return [f"  {_q('port:' + src.name)} -- {_q(src.node)} [{red}, style=dashed, label={label}];"]
    out = [f"  {_q('port:' + src.name)} -- {_q(src.node)} [{red}, label={_q('1. into br-int')}];"]
    if dst is None:
        return [*out[:-1], out[-1].replace("1. into br-int", "DHCP: answered by ovn-controller")]
    if t.tunnel:
        a, b = t.tunnel.ports()
        text = f"2. geneve VNI {t.tunnel.vni}\noption {t.tunnel.option} (port {a} -> {b})"
        out.append(f"  {_q(src.node)} -- {_q(dst.node)} [{red}, label={_q(text)}];")
    last = _q(("3. " if t.tunnel else "2. ") + "out to " + dst.name)
    out.append(f"  {_q(dst.node)} -- {_q('port:' + dst.name)} [{red}, label={last}];")
    return out


def dot(lab: Lab, st: LabStatus, path: list[str] | None = None) -> str:
    backend = st.backend or "-"
    out = [
        "graph lab {",
        '  graph [fontname="Helvetica", fontsize=13, nodesep=0.5, ranksep=0.8];',
        '  node [fontname="Helvetica", fontsize=11]; edge [fontname="Helvetica", fontsize=9];',
        f"  label={_q(f'lab {lab.name} (backend {backend})')}; labelloc=t;",
        f"  subgraph cluster_underlay {{ label={_q('underlay ' + lab.underlay.subnet)}; style=rounded; color=gray50;",
    ]
    for n in lab.nodes:
        ch = st.chassis.get(n.name)
        role = "NB/SB + northd, chassis" if n.central else "chassis"
        encap = f"encap geneve {ch['ip']}" if ch else "SB: cannot read" if st.error else "not registered"
        fill = "#d8ecff" if n.central else "#e8f5e0"
        label = _q(n.name, n.ip, role, encap)
        out.append(f'    {_q(n.name)} [shape=box, style="rounded,filled", fillcolor="{fill}", label={label}];')
    for i, a in enumerate(lab.nodes):  # the mesh as observed: bold where the tunnel exists
        for other in lab.nodes[i + 1 :]:
            seen = st.nodes.get(a.name)
            up = other.ip in ((seen.tunnels if seen else None) or [])
            unread = seen is not None and seen.state == "running" and seen.tunnels is None
            style, text = ("bold", "geneve") if up else ("dashed", "tunnels: cannot read" if unread else "no tunnel")
            out.append(f'    {_q(a.name)} -- {_q(other.name)} [style={style}, color="#3b7dd8", label={_q(text)}];')
    out.append("    {rank=same; " + "; ".join(_q(n.name) for n in lab.nodes) + "}")
    out.append("  }")
    for sw in lab.switches:
        sid = _q("sw:" + sw.name)
        out.append(
            f"  subgraph cluster_sw_{abs(hash(sw.name))} {{ label={_q('logical switch ' + sw.name)}; "
            'style="rounded,dashed"; color="#aa6600";'
        )
        label = _q(sw.name, sw.subnet, f"DHCP router {sw.dhcp.router}")
        out.append(f'    {sid} [shape=hexagon, style=filled, fillcolor="#ffe8c0", label={label}];')
        for p in lab.ports:
            if p.switch != sw.name:
                continue
            held = st.leases.get(p.name)
            ipv4 = held["ipv4"] if held else []
            lease = "lease: cannot read" if ipv4 is None else ", ".join(ipv4) or "no lease"
            label = _q(f"{p.name} in {p.netns}", p.mac or "dynamic MAC", lease)
            out.append(f'    {_q("port:" + p.name)} [shape=ellipse, style=filled, fillcolor="#fff6e0", label={label}];')
            out.append(f"    {sid} -- {_q('port:' + p.name)};")
        out.append("  }")
    for p in lab.ports:
        binding = st.bindings.get(p.name)
        bound = binding["chassis"] if binding else None
        if bound:
            out.append(f'  {_q("port:" + p.name)} -- {_q(bound)} [style=dotted, color=gray40, label="bound"];')
    out += path or []
    out.append("}")
    return "\n".join(out) + "\n"


def render(lab: Lab, st: LabStatus, out_dir: Path, trace: list[str] | None = None) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    src = out_dir / "lab.dot"
    src.write_text(dot(lab, st, trace))
    paths = []
    for fmt, extra in (("svg", []), ("png", ["-Gdpi=110"])):
        path = out_dir / f"lab.{fmt}"
        try:
            r = subprocess.run(["dot", f"-T{fmt}", *extra, "-o", str(path), str(src)], capture_output=True, text=True)
        except FileNotFoundError:
            raise LabError("graphviz's dot is not installed", "apt-get install graphviz (invoke setup)") from None
        if r.returncode:
            raise LabError(f"dot could not draw {src}: {r.stderr.strip()}", "see the error above")
        paths.append(path)
    return paths


def graph(
    config: str | Path,
    out: str | Path | None = None,
    *,
    src: str | None = None,
    dst: str | None = None,
    proto: str = "icmp",
) -> None:
    """Draw the running lab into `out` (default: its state directory); prints the files' paths. With `src`
    and `dst`, taken as `invoke trace` takes them, the path of that packet drawn over it."""
    lab, backend = open_up_lab(config)
    path = None
    if src or dst:
        if not (src and dst):
            raise InputError(
                f"--src {src or '?'} --dst {dst or '?'}: a packet needs both ends", "e.g. --src vm1 --dst vm3"
            )
        path = path_edges(lab, traced(lab, backend, src, dst, proto))
    for p in render(lab, status(config), Path(out) if out else lab.state_dir, path):
        print(p)
