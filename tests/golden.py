"""Golden files: what the code says now, compared with what is committed. `python3 tests/regen.py`
rewrites them (and prunes stale ones) for review; `python3 tests/regen.py --check` fails on any drift.

Owned here: tests/errors/*.log (one per *.toml case), tests/model/, tests/render/, and tests/facts/
(each fact's command and raw output, recorded on real daemons, with what the parser makes of it).
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from labgen.errors import LabInvalid
from labgen.load import load_lab
from labgen.render import Accel, Kernel, render_vagrantfile
from provision.facts import FACTS

HERE = Path(__file__).resolve().parent
STATE = "/STATE"  # the state dir is absolute and machine-specific: golden files use a placeholder
OWNED_DIRS = ("model", "render", "facts")  # every file in them is a golden output


def error_log(case: Path) -> str:
    try:
        load_lab(case.relative_to(HERE.parent))
    except LabInvalid as e:
        return str(e) + "\n"
    return "(valid)\n"


def model_json(path: Path) -> str:
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
    keys = (f"{lab.state_dir}/ssh/vm_ed25519", f"{lab.state_dir}/ssh/vagrant-insecure")  # test_render makes both
    return render_vagrantfile(lab, accel, kernel, fast_guest=fast, ssh_keys=keys).replace(str(lab.state_dir), STATE)


# each fact read from the host, with the argument and the recorded phase that shows it at its fullest
FACT_CASES = {
    "ovs_ids": ("", "healthy", "ovn-host-01"),
    "interfaces": ("", "healthy", "ovn-host-01"),
    "addrs": ("", "healthy", "ovn-host-01"),
    "ns_addrs": ("vm1", "healthy", "ovn-host-01"),
    "nb_switches": ("", "healthy", "ovn-central-01"),
    "nb_ports": ("", "healthy", "ovn-central-01"),
    "nb_dhcp": ("", "healthy", "ovn-central-01"),
    "sb_chassis": ("", "healthy", "ovn-central-01"),
    "sb_encaps": ("", "healthy", "ovn-central-01"),
    "sb_bindings": ("", "healthy", "ovn-central-01"),
    "nb_acls": ("", "exercise-acl-drops-dhcp", "ovn-central-01"),
    "nb_port_security": ("", "exercise-port-security", "ovn-central-01"),
    "sb_port_keys": ("", "demo", "ovn-central-01"),
    "sb_datapaths": ("", "demo", "ovn-central-01"),
    "ofports": ("", "demo", "ovn-host-01"),
    "geneve_ofport": ("192.168.1.62", "trace", "ovn-host-02"),
    "controller_status": ("", "fault-controller-unreachable", "ovn-host-02"),
    "controller_log": ("", "fault-controller-unreachable", "ovn-host-02"),
}


def fact_json(name: str) -> str:
    """The fact's command and the raw output recorded for it, with what the parser makes of that."""
    arg, phase, node = FACT_CASES[name]
    argv = list(FACTS[name].argv(arg))  # type: ignore[misc]
    rows = json.loads((HERE / "recorded" / f"{phase}.json").read_text())
    raw = next(r["answers"][-1]["stdout"] for r in rows if r["node"] == node and r["argv"] == argv)
    case: dict[str, Any] = {"node": node, "argv": argv, "arg": arg, "raw": raw, "parsed": FACTS[name].parse(raw)}
    return json.dumps(case, indent=1, sort_keys=True) + "\n"


def expected() -> dict[Path, str]:
    """Every golden file (relative to tests/) and the text the code gives for it now."""
    out = {c.with_suffix(".log").relative_to(HERE): error_log(c) for c in sorted((HERE / "errors").glob("*.toml"))}
    out[Path("model/lab.json")] = model_json(HERE.parent / "lab.toml")
    out |= {Path(f"render/{name}.Vagrantfile"): vagrantfile(name) for name in RENDER_CASES}
    out |= {Path(f"facts/{name}.json"): fact_json(name) for name in FACT_CASES}
    return out


def drift(root: Path, want: dict[Path, str]) -> list[str]:
    """What differs between the golden files under `root` and `want`: changed, missing and stale files."""
    found = [
        f"{p}: {'differs' if (root / p).exists() else 'missing'}"
        for p, text in sorted(want.items())
        if not (root / p).exists() or (root / p).read_text() != text
    ]
    owned = [p for d in OWNED_DIRS for p in (root / d).glob("*") if p.is_file()]
    owned += list((root / "errors").glob("*.log"))
    found += [
        f"{p.relative_to(root)}: stale (no case makes it)" for p in sorted(owned) if p.relative_to(root) not in want
    ]
    return found
