"""Lab model -> Vagrantfile, through Vagrantfile.j2 (StrictUndefined, no autoescape, Ruby-quoted values)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import jinja2

from provision.facts import SEED_SERIAL

from ...model import Lab

TEMPLATE_DIR = Path(__file__).resolve().parents[3]


@dataclass(frozen=True)
class Accel:
    driver: str  # libvirt domain type: "kvm" or "qemu" (TCG)
    reason: str


@dataclass(frozen=True)
class Kernel:
    kernel: str
    initrd: str
    cmdline: str


def rb(value: object) -> str:
    """A Ruby double-quoted string literal: JSON escaping, plus no #{} interpolation."""
    return json.dumps(str(value)).replace("#{", "\\#{")


def render_vagrantfile(
    lab: Lab,
    accel: Accel,
    kernel: Kernel | None,
    *,
    fast_guest: bool,
    ssh_keys: tuple[str, ...] = (),
    seeds: dict[str, str] | None = None,
) -> str:
    """`ssh_keys`: the private keys Vagrant tries, the lab's own first (Vagrant's insecure one logs in
    only until the provisioner's root-ssh step replaced it). `seeds`: node -> the pool volume of its seed
    disk, for a box that applies one as it first boots."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATE_DIR),
        autoescape=False,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["rb"] = rb
    return env.get_template("Vagrantfile.j2").render(
        lab=lab,
        accel=accel,
        kernel=kernel,
        fast_guest=fast_guest,
        state_dir=str(lab.state_dir),
        mgmt_network=lab.scoped("mgmt"),
        underlay_network=lab.scoped("underlay"),
        ssh_keys=list(ssh_keys),
        seeds=seeds or {},
        seed_serial=SEED_SERIAL,
    )
