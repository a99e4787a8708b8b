"""`invoke snapshot save|restore`: back to a known state in seconds. A backend that `freezes` saves its
nodes as they are (VM snapshots); elsewhere a rebuild is seconds, so save records whether the demo ran
and restore rebuilds the lab (and the demo)."""

from __future__ import annotations

import functools
import time
from pathlib import Path

from ..backends.base import Backend
from ..demo import demo
from ..errors import InputError, LabError
from ..gates import wait_for
from ..lab import changes_lab, open_up_lab, teardown
from ..model import Lab
from ..observe import Observer
from ..provisioner import each
from ..ui import console
from ..up import up

NAME = "ovn-lab-saved"


@changes_lab("snapshot")
def snapshot(config: str | Path, action: str) -> None:
    if action not in ("save", "restore"):
        raise InputError(f"unknown snapshot action {action!r}", "invoke snapshot save, or invoke snapshot restore")
    lab, backend = open_up_lab(config)
    t0 = time.monotonic()
    if action == "save":
        if backend.freezes:
            backend.save_snapshot(NAME)
            backend.state.save_snapshot({"name": NAME})
        else:
            switches = Observer(lab, backend).fact(lab.central.name, "nb_switches")
            ran = any(s["name"] == sw.name for s in switches for sw in lab.switches)
            backend.state.save_snapshot({"demo": ran})
    else:
        saved = backend.state.snapshot()
        if saved is None:
            raise LabError("no snapshot saved", "invoke snapshot save")
        if backend.freezes:
            backend.restore_snapshot(NAME)
            each(lab.node_names, lambda node: answers(lab, backend, node))
        else:
            teardown(config)
            backend.state.save_snapshot(saved)  # teardown removed it with the state: kept if the rebuild fails
            up(config, backend.name)
            if saved.get("demo"):
                demo(config)
    console.print(f"snapshot {action} done in {time.monotonic() - t0:.1f} s")


def answers(lab: Lab, backend: Backend, node: str) -> None:
    """A restored VM resumes with its old TCP state: the first ssh after it may fail."""
    ran = functools.partial(backend.ran, node)
    wait_for(node, "a command to run after the restore", ran, Observer(lab, backend).dump(node), 60)
