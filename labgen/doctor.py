"""`invoke doctor`: every check of both backends, one line each, ok / warn / fail, with the fix."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

from .backends.base import get_backend
from .backends.vagrant import URI, VagrantBackend, _connect, choose_accel
from .load import load_lab
from .ui import console

MARK = {"ok": "[green]ok  [/]", "warn": "[yellow]warn[/]", "fail": "[red]fail[/]"}


def _version(argv: list[str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return out.strip().splitlines()[0] if out.strip() else ""


def doctor(config: str) -> bool:
    """Print the checks; True when nothing fails for the lab's backend."""
    lab = load_lab(config)
    chosen = lab.backend
    failed = False
    lines: list[tuple[str, str, str, str]] = []  # status, check, detail, fix

    accel = choose_accel(lab.vagrant.accel)
    lines.append(
        (
            "ok" if accel.driver == "kvm" else "warn",
            "accelerator",
            accel.reason,
            "" if accel.driver == "kvm" else "expect ~3 min for `invoke up` of 3 VMs on 2 cores",
        )
    )
    v = _version(["vagrant", "--version"])
    plugin = re.search(r"vagrant-libvirt \(([^,)]+)", _version(["sh", "-c", "vagrant plugin list 2>/dev/null"]) or "")
    lines.append(
        (
            "ok" if v and plugin else "fail",
            "vagrant",
            f"{v or 'missing'}, vagrant-libvirt {plugin[1] if plugin else 'missing'}",
            "invoke setup",
        )
    )
    vb = VagrantBackend(lab)
    for backend in ("vagrant", "netns"):
        b = vb if backend == "vagrant" else get_backend("netns", lab)
        for probe in b.probes():
            if probe.name in ("vagrant", "vagrant-libvirt"):
                continue
            err = probe.check()
            status = "ok" if not err else ("fail" if backend == chosen else "warn")
            lines.append((status, f"{backend}: {probe.name}", err or "", probe.fix if err else ""))
    box = vb.box_dir()
    lines.append(
        (
            "ok" if box else "warn",
            "box",
            f"{lab.vagrant.box} at {box}" if box else f"{lab.vagrant.box} not built yet",
            "" if box else "invoke box (about 2 minutes; `up` does it too)",
        )
    )
    lines += _leftovers(lab.name)

    for status, check, detail, fix in lines:
        failed |= status == "fail" and not check.startswith("netns" if chosen == "vagrant" else "vagrant")
        console.print(f"{MARK[status]} {check:<22} {detail}" + (f"\n     fix: {fix}" if fix and status != "ok" else ""))
    return not failed


def _leftovers(name: str) -> list[tuple[str, str, str, str]]:
    """Objects of other labs (and of this one) that still exist: they hold memory, names and subnets."""
    found = []
    out = subprocess.run(["ip", "-j", "netns", "list"], capture_output=True, text=True).stdout
    for ns in json.loads(out) if out.strip() else []:
        if ns["name"].endswith("-underlay"):
            lab = ns["name"][: -len("-underlay")]
            found.append(
                (
                    "warn" if lab != name else "ok",
                    "netns lab",
                    f"{lab} is up (namespaces)",
                    f"invoke teardown --config <that lab's lab.toml>  (lab {lab})",
                )
            )
    if shutil.which("virsh"):
        try:
            conn = _connect()
            labs: dict[str, list[str]] = {}
            for dom in conn.listAllDomains():
                m = re.search(r"<description>ovn-lab ([^<]+)</description>", dom.XMLDesc())
                if m:
                    labs.setdefault(m[1], []).append(dom.name())
            for lab, doms in sorted(labs.items()):
                found.append(
                    (
                        "warn" if lab != name else "ok",
                        "vagrant lab",
                        f"{lab}: {len(doms)} VMs ({', '.join(doms)})",
                        f"invoke teardown --config <that lab's lab.toml>  (lab {lab})",
                    )
                )
            conn.close()
        except Exception:
            found.append(("warn", "libvirt", f"cannot list domains on {URI}", "invoke setup"))
    return found or [("ok", "leftovers", "no lab objects on this host", "")]
