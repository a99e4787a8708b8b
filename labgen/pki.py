"""The per-lab CA of `[ovn] transport = "ssl"`: made on the host with ovs-pki, as the user, in the lab's
state directory (0700), once per lab; each node gets its own key and certificate, signed by it."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from .backends.base import Probe
from .errors import BackendFailed
from .model import Lab
from .state import LabState

CA = "switchca"  # ovs-pki's CA for OVSDB clients and servers (the other, controllerca, is for OpenFlow)


def probes(lab: Lab) -> list[Probe]:
    if lab.ovn.transport != "ssl":
        return []
    return [
        Probe(
            "ovs-pki",
            lambda: None if shutil.which("ovs-pki") else 'not found (transport = "ssl" makes the lab\'s CA with it)',
            'sudo apt-get install openvswitch-common, or set [ovn] transport = "tcp"',
        )
    ]


def _pki(cwd: Path, *argv: str) -> None:
    # its own log, not /var/log/openvswitch: the trainee cannot write there
    opts = ["-b", f"--dir={cwd / 'ca'}", f"--log={cwd / 'ovs-pki.log'}"]
    r = subprocess.run(["ovs-pki", *opts, *argv], cwd=cwd, capture_output=True, text=True)
    if r.returncode:
        raise BackendFailed(
            f"ovs-pki {' '.join(argv)} failed in {cwd}", "remove that directory and run `invoke up` again", r.stderr
        )


def ensure(lab: Lab, state: LabState) -> None:
    """The CA, then a key and certificate for each node that has none yet (idempotent)."""
    if lab.ovn.transport != "ssl":
        return
    d = state.pki
    files = ("privkey", "req", "cert")
    if not (d / "ca" / CA / "cacert.pem").exists():
        shutil.rmtree(d / "ca", ignore_errors=True)  # a half-made CA (an interrupted init)
        for node in lab.node_names:  # certificates of an older CA: the new one did not sign them
            for kind in files:
                (d / f"{node}-{kind}.pem").unlink(missing_ok=True)
        _pki(d, "init")
    for node in lab.node_names:
        if not (d / f"{node}-cert.pem").exists():
            for kind in files:  # an interrupted req+sign: start that node over
                (d / f"{node}-{kind}.pem").unlink(missing_ok=True)
            _pki(d, "req+sign", node, "switch")


def material(lab: Lab, state: LabState, node: str) -> dict[str, str]:
    """What the node's plan carries for its `ssl` step: its key and certificate, and the CA certificate."""
    if lab.ovn.transport != "ssl":
        return {}
    d = state.dir / "pki"
    try:
        return {
            "key": (d / f"{node}-privkey.pem").read_text(),
            "cert": (d / f"{node}-cert.pem").read_text(),
            "cacert": (d / "ca" / CA / "cacert.pem").read_text(),
        }
    except FileNotFoundError:
        return {}  # not made yet (a task other than up): the ssl step says so if it runs
