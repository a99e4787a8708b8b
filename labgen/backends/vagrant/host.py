"""What the VM backend needs of this host, as probes (run by `up` before it touches anything, and by
doctor): vagrant and its plugin, libvirt, free subnets, disk, memory, the box."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

from ... import procfs
from ...model import Lab
from ..base import Probe
from . import libvirt

OWN_BOX = "ovn-lab/bookworm"  # the lab's own box: `up` builds it when missing


def host_probes(lab: Lab, box_dir: Callable[[], Path | None], networks: tuple[str, ...]) -> list[Probe]:
    """`box_dir`: where Vagrant keeps the lab's box, None when not installed; `networks`: the lab's own."""
    accel = libvirt.choose_accel(lab.vagrant.accel)
    box = lab.vagrant.box
    return [
        Probe(
            "accelerator",
            lambda: None if accel.driver == "kvm" else accel.reason,
            "expect a few minutes for `invoke up` of 3 VMs on 2 cores",
            advisory=True,
            detail=lambda: accel.reason,
        ),
        Probe(
            "vagrant",
            lambda: None if shutil.which("vagrant") else "vagrant is not installed",
            "invoke setup",
            detail=lambda: _version(["vagrant", "--version"]),
        ),
        Probe("vagrant-libvirt", _plugin_missing, "invoke setup (or: vagrant plugin install vagrant-libvirt)"),
        Probe(
            "libvirt",
            libvirt.problem,
            "start libvirtd (invoke setup; without systemd: virtlogd -d; libvirtd -d) and make sure you are "
            "in the libvirt group",
        ),
        Probe(
            "subnets",
            lambda: "; ".join(overlaps(lab, networks)) or None,
            "set underlay.subnet (and the node IPs) or vagrant.management_subnet in lab.toml to a free /24",
        ),
        Probe("storage", lambda: _storage_problem(len(lab.nodes)), f"free disk space under {libvirt.POOL_PATH}"),
        Probe("memory", lambda: _memory_problem(lab), "lower vagrant.memory in lab.toml, or stop other VMs"),
        Probe(
            "box",
            lambda: f"box {box} is not installed" if box_dir() is None and box != OWN_BOX else None,
            f"vagrant box add {box}",
        ),
        Probe(
            "box built",
            lambda: None if box_dir() else f"{box} not built yet",
            "invoke box (about 2 minutes; `up` does it too)",
            advisory=True,
            detail=lambda: f"{box} at {box_dir()}",
        ),
    ]


def overlaps(lab: Lab, networks: tuple[str, ...]) -> list[str]:
    """The lab's subnets against every host route and every libvirt network not of this lab."""
    mine = {"underlay.subnet": lab.underlay.subnet, "vagrant.management_subnet": lab.vagrant.management_subnet}
    out = subprocess.run(["ip", "-j", "-4", "route", "show", "table", "all"], capture_output=True, text=True)
    routes = json.loads(out.stdout or "[]")
    nets = libvirt.other_networks(networks)
    return libvirt.find_overlaps(mine, routes, nets, skip_devs=set(libvirt.bridges_of(networks)))


def _version(argv: list[str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return out.strip().splitlines()[0] if out.strip() else ""


def _plugin_missing() -> str | None:
    try:
        r = subprocess.run(["vagrant", "plugin", "list"], capture_output=True, text=True, timeout=60)
    except OSError:
        return "vagrant is not installed"
    return None if "vagrant-libvirt" in r.stdout else "the vagrant-libvirt plugin is missing"


def _storage_problem(vms: int) -> str | None:
    """The pool (created by `up` when missing) must hold the box and one overlay per VM."""
    if libvirt.problem():
        return None  # reported by the libvirt probe
    path = libvirt.pool_path()
    target = Path(path)
    while not target.exists():
        target = target.parent
    free = shutil.disk_usage(target).free >> 20
    need = 1024 + 512 * vms
    return None if free >= need else f"{free} MiB free in {path}, the lab needs about {need} MiB"


def _memory_problem(lab: Lab) -> str | None:
    # under TCG qemu's translation cache adds ~1 GiB per VM on top of the guest's RAM (measured)
    vagrant = lab.vagrant
    extra = 1024 if libvirt.choose_accel(vagrant.accel).driver == "qemu" else 256
    vms = len(lab.nodes)
    need = vms * (vagrant.memory + extra)
    avail = procfs.mem_available_mib()
    return None if avail >= need else f"{avail} MiB available, {vms} VMs need about {need} MiB"
