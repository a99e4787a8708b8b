"""`invoke doctor`: every probe of every backend, one line each, ok / warn / fail with the fix, then the
labs that exist on this host. Fails only on what the lab's own backend needs."""

from __future__ import annotations

import ipaddress
import shutil
from pathlib import Path

from rich.markup import escape

from . import pki
from .backends import every_backend
from .classroom import lxdhost
from .classroom.config import load_classroom
from .load import load_lab
from .ui import console

MARK = {"ok": "[green]ok  [/]", "warn": "[yellow]warn[/]", "fail": "[red]fail[/]"}


def doctor(config: str | Path) -> bool:
    """Print the checks; True when nothing fails for the lab's backend."""
    lab = load_lab(config)
    lines: list[tuple[str, str, str, str]] = []  # status, check, detail, fix
    others: dict[str, list[str]] = {}
    for backend in every_backend(lab):
        # the backend the lab is up with (else lab.toml's) must pass; the others only inform
        mine = backend.name == (backend.state.backend() or lab.backend)
        for probe in backend.probes():
            err = probe.check()
            status = "ok" if not err else ("fail" if mine and not probe.advisory else "warn")
            detail = err or (probe.detail() if probe.detail else "")
            lines.append((status, f"{backend.name}: {probe.name}", detail, probe.fix if err else ""))
        for name, what in backend.labs_on_host().items():
            others.setdefault(name, []).append(f"{backend.name}: {what}")
    for probe in pki.probes(lab):  # what lab.toml's own choices need, whatever the backend
        err = probe.check()
        lines.append(("fail" if err else "ok", f"lab: {probe.name}", err or "", probe.fix if err else ""))
    if shutil.which("lxd"):  # the classroom's lxd engine: informs, since no lab's backend needs it
        room = load_classroom(config)
        nets = (ipaddress.IPv4Network(room.lxd_subnet), ipaddress.IPv4Network(room.lxd_cluster_subnet))
        for probe in lxdhost.probes(*nets):
            err = probe.check()
            detail = err or (probe.detail() if probe.detail else "")
            lines.append(("warn" if err else "ok", f"lxd: {probe.name}", detail, probe.fix if err else ""))
    for name, where in sorted(others.items()):
        fix = f"invoke teardown --config <that lab's lab.toml>  (lab {name})"
        lines.append(("ok" if name == lab.name else "warn", "lab on this host", f"{name} ({'; '.join(where)})", fix))
    if not others:
        lines.append(("ok", "leftovers", "no lab objects on this host", ""))
    for status, check, detail, fix in lines:
        text = f"{MARK[status]} {check:<26} {escape(detail)}"
        console.print(text + (f"\n     fix: {escape(fix)}" if fix and status != "ok" else ""), highlight=False)
    return not any(status == "fail" for status, *_ in lines)
