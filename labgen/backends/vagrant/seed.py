"""What a new VM applies as it first boots: a seed disk, a tar of the provisioner package and the node's
request (`{"steps": [...], "plan": {...}}`, what `up` would run over ssh). It is a qcow2 volume of the
libvirt pool (qemu cannot read a private home), root's, that the VM gets as a disk with the serial
SEED_SERIAL (qcow2, not raw: libvirt's internal snapshots, `invoke snapshot`, need every disk qcow2).
The box's first-boot unit (boxdata.FILES) finds it by that serial and applies it as sshd starts. After
boot the host reads the unit's state (fact `first_boot`) and, on failure, its log."""

from __future__ import annotations

import io
import json
import os
import subprocess
import tarfile
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from provision.core import prompt
from provision.facts import FACTS, FIRST_BOOT_LOG, FIRST_BOOT_UNIT

from ...gates import wait_for
from ...model import Lab
from ..base import Log, Result
from . import libvirt

Run = Callable[..., Result]  # Backend.run: a command on a node

REPO = Path(__file__).resolve().parents[3]
FAULT = "OVN_LAB_FAULT_FIRST_BOOT"  # tests: a comma-separated list of nodes whose first boot fails
REQUEST = "first-boot.json"  # in the tar, beside provision/: the unit passes it to `provision --first-boot`


def provisioner_tar(request: dict[str, Any] | None = None) -> bytes:
    """The provisioner package as a tar, plus the request (root's only: it may hold the node's TLS key).
    The same files give the same bytes (member times are the files'), so an unchanged seed is not
    uploaded again."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        tar.add(REPO / "provision", arcname="provision", filter=lambda t: None if "__pycache__" in t.name else t)
        if request is not None:
            data = json.dumps(request, sort_keys=True).encode()
            info = tarfile.TarInfo(REQUEST)
            info.size, info.mode = len(data), 0o600
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def image(tar: bytes) -> bytes:
    """`tar` as a qcow2 image whose disk reads as the tar (qemu-img's output is the same for the same
    input, so an unchanged seed still compares equal)."""
    with tempfile.TemporaryDirectory() as d:  # 0700: the tar may hold a TLS key
        raw, out = Path(d, "seed.tar"), Path(d, "seed.qcow2")
        raw.write_bytes(tar)
        subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", raw, out], check=True, capture_output=True)
        return out.read_bytes()


def deliver(lab: Lab, seeds: dict[str, str], first_boot: Mapping[str, dict[str, Any]], log: Log) -> set[str]:
    """Each node this run creates gets its request on its seed disk (`seeds`: node -> volume); nodes that
    exist already booted without it (or applied an older one): `up` provisions them over ssh. Returns the
    seeded nodes."""
    if not seeds:
        return set()
    existing = libvirt.domains({lab.scoped(n) for n in lab.node_names})
    fresh = {n for n in lab.node_names if lab.scoped(n) not in existing}
    faulty = os.environ.get(FAULT, "").split(",")
    with libvirt.connection() as conn:
        for n in sorted(fresh & set(first_boot)):
            # a fault for the VM tier: a step no provisioner has, so the unit fails as any failed step would
            request = {**first_boot[n], "steps": ["fault", *first_boot[n]["steps"]]} if n in faulty else first_boot[n]
            libvirt.upload(conn, image(provisioner_tar(request)), seeds[n], "qcow2")
    if fresh:
        log(f"{', '.join(sorted(fresh))}: configured as they boot ({FIRST_BOOT_UNIT}, from a seed disk)")
    return fresh & set(first_boot)


def applied(run: Run, node: str, log: Log, *, seeded: bool) -> bool:
    """Did the node's first-boot unit apply its request? A bounded wait for it to end (it starts after
    sshd, so Vagrant may be done before it is), then its state. A node this run did not seed (made by an
    interrupted `up`, or up already) is waited on too but counts as not applied: `up` converges it over
    ssh, and never while the unit still provisions it.
    If a seeded node's unit failed, it is named with its state and its log, and `up` provisions the node
    over ssh."""
    fact = FACTS["first_boot"]
    assert fact.argv is not None
    argv = fact.argv("")
    got: list[tuple[Result, dict[str, str] | None]] = []

    def ended() -> tuple[bool, str]:
        r = run(node, argv, timeout=30)
        try:
            props = fact.parse(r.stdout) if r.ok else None
        except ValueError:
            props = None  # unreadable: reported below, not waited on
        got[:] = [(r, props)]
        # a start job still queued (the unit waits for sshd or the underlay NIC) is not an end either
        running = props is not None and (props["ActiveState"] == "activating" or bool(props.get("Job")))
        return not running, r.stdout.strip().replace("\n", " ")

    wait_for(node, f"{FIRST_BOOT_UNIT} to end", ended, lambda: "", 420)
    if not seeded:
        return False
    r, props = got[0]
    if props and props["ActiveState"] == "active" and props.get("Result") == "success":
        return True
    if props is None:
        state = f"its state is unreadable: {(r.stdout + r.stderr).strip()[-200:]}"
    elif props["ActiveState"] == "inactive" and props.get("Result") == "success":
        state = "it did not run (no seed disk found, or not the first boot)"
    else:
        state = f"{props['ActiveState']}, result {props.get('Result')}, exit status {props.get('ExecMainStatus')}"
    tail = run(node, ["tail", "-n", "15", FIRST_BOOT_LOG], timeout=30)
    shown = [prompt(node, f"tail -n 15 {FIRST_BOOT_LOG}"), *(tail.stdout + tail.stderr).rstrip().splitlines()]
    evidence = "\n".join("  " + ln for ln in shown)
    log(f"{node}: {FIRST_BOOT_UNIT} did not configure it ({state}); provisioning it over ssh instead\n{evidence}")
    return False
