"""Golden files: compute what the code says now; `python3 tests/regen.py` rewrites them for review."""

from __future__ import annotations

import json
from pathlib import Path

from labgen.errors import LabInvalid
from labgen.load import load_lab
from labgen.render import Accel, Kernel, render_vagrantfile

HERE = Path(__file__).resolve().parent
STATE = "/STATE"  # the state dir is absolute and machine-specific: golden files use a placeholder


def error_log(case: Path) -> str:
    try:
        load_lab(case.relative_to(HERE.parent))
    except LabInvalid as e:
        return str(e) + "\n"
    return "(valid)\n"


def model_json(path: Path) -> str:
    from dataclasses import asdict

    return json.dumps(asdict(load_lab(path.relative_to(HERE.parent))), indent=1, sort_keys=True) + "\n"


RENDER_CASES = {
    "tcg-local-box": (
        Accel("qemu", "QEMU TCG: the CPU shows no vmx/svm"),
        Kernel(
            "/var/lib/libvirt/images/ovn-lab-vmlinuz",
            "/var/lib/libvirt/images/ovn-lab-initrd.img",
            "root=/dev/vda rw console=ttyS0,115200",
        ),
        True,
    ),
    "kvm-public-box": (Accel("kvm", "KVM: the CPU has vmx/svm and /dev/kvm is usable"), None, False),
}


def vagrantfile(case: str) -> str:
    accel, kernel, fast = RENDER_CASES[case]
    lab = load_lab("lab.toml")
    return render_vagrantfile(lab, accel, kernel, fast_guest=fast).replace(str(lab.state_dir), STATE)
