"""`invoke up`: preflight, the nodes, then tutorial steps 1-3 on every node as soon as each can, then
the gates that prove every chassis registered and every tunnel exists."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from . import pki
from .backends.base import Backend, Probe
from .errors import GaveUp, PreflightFailed, StageFailed
from .gates import wait_for
from .lab import changes_lab, open_lab
from .model import Lab
from .observe import Observer
from .provisioner import Provisioner, each
from .ui import console, step


def preflight(backend: Backend, more: list[Probe]) -> None:
    problems = []
    for p in [*backend.probes(), *more]:
        err = None if p.advisory else p.check()
        if err:
            problems.append(f"  ✗ {p.name}: {err}\n    fix: {p.fix}")
    if problems:
        raise PreflightFailed(
            f"the {backend.name} backend cannot start here",
            "each problem below names its fix; `invoke doctor` checks them all",
            "\n".join(problems),
        )


@changes_lab("up")
def up(config: str | Path, backend_name: str | None = None, *, verbose: bool = False) -> Lab:
    lab, backend = open_lab(config, backend_name)
    t0 = time.monotonic()
    console.print(f"lab [bold]{lab.name}[/]: {len(lab.nodes)} nodes on {lab.underlay.subnet}, backend {backend.name}")
    with step("preflight"):
        preflight(backend, pki.probes(lab))
    backend.state.remember(backend.name)  # before creating anything: teardown finds what a failed up leaves
    with Provisioner(lab, backend, verbose=verbose) as provisioner:
        Up(lab, backend, provisioner).all()
    took = time.monotonic() - t0
    console.print(f"[green]lab {lab.name} is up[/] in {took:.1f} s ({backend.name}); next: invoke demo")
    return lab


class Up:
    def __init__(self, lab: Lab, backend: Backend, provisioner: Provisioner):
        self.lab, self.backend, self.provisioner = lab, backend, provisioner
        self.observe = Observer(lab, backend)
        self.central = lab.central.name
        self.sb_started, self.failed = threading.Event(), threading.Event()

    def all(self) -> None:
        names = self.lab.node_names
        if self.lab.ovn.transport == "ssl":
            with step("the lab's CA, and a key and certificate for each node (ovs-pki)"):
                pki.ensure(self.lab, self.backend.state)
        first_boot = {n: {"steps": self.steps(n), "plan": self.provisioner.plan(n, bindings=False)} for n in names}
        with step(f"create {len(names)} nodes"):
            booted = self.backend.create(lambda msg: console.print(f"  {msg}", markup=False, style="dim"), first_boot)
            todo = [n for n in names if n not in booted]
            each(todo, self.backend.prepare)
        if booted:
            console.print(f"  configured as they booted: {', '.join(sorted(booted))}", style="dim")
        if self.central in booted:
            self.sb_started.set()  # its SB listens: the hosts provisioned below may go on
        if todo:
            what = f"OVS, underlay, br-int on {'every node' if len(todo) == len(names) else ', '.join(todo)}"
            if self.central in todo:
                what += f"; NB/SB + northd on {self.central}"
            with step(f"{what}; then ovn-controller"):
                each(todo, self.bring_up)
        self.backend.after_install()
        tunnels = len(names) - 1
        with step(f"gate: every chassis registered with its encap IP, {tunnels} geneve tunnels on every node"):
            each(names, self.registered)

    def steps(self, node: str) -> list[str]:
        """Steps 1-3 on `node` one after the other, as its first boot runs them (bring_up overlaps them):
        central's databases first, which start while Open vSwitch does."""
        ssl = ["ssl"] if self.lab.ovn.transport == "ssl" else []
        if node == self.central:
            return [*self.backend.prelude, "central", "ovs", "underlay", *ssl, "sb-listen", "chassis", "controller"]
        return [*self.backend.prelude, "ovs", "underlay", *ssl, "chassis", "controller"]

    def bring_up(self, node: str) -> None:
        """Steps 1-3 on one node, each as soon as it can. Central starts its databases beside OVS (they
        need only the packages); once both run, the hosts may go on. ovn-controller starts once the SB
        answers (started earlier, it would back off up to 8 s between reconnects; probing before central
        has its IP costs ARP timeouts)."""
        run = self.provisioner.run
        first = [*self.backend.prelude, "ovs", "underlay"]
        ssl = ["ssl"] if self.lab.ovn.transport == "ssl" else []
        try:
            if node == self.central:
                if self.backend.install:
                    run(node, ["install"])  # both runs below need the packages; apt must not run twice at once
                    first.remove("install")
                with ThreadPoolExecutor(max_workers=2) as pool:
                    runs = [pool.submit(run, node, first), pool.submit(run, node, ["central"])]
                for f in runs:
                    f.result()
                run(node, [*ssl, "sb-listen"])  # its underlay address exists now (and its certificates)
                self.sb_started.set()  # the SB listens on the underlay: the hosts may go on
                rest = ["chassis", "controller"]
            else:
                run(node, [*first, "chassis", *ssl])
                self.sb_started.wait()
                if self.failed.is_set():
                    raise GaveUp(f"{node}: stopped waiting for the SB")
                rest = ["controller"]
            try:
                run(node, rest)  # the controller step's first op waits, bounded, until the SB answers
            except StageFailed as e:
                raise StageFailed(
                    e.message, e.fix, f"{e.evidence}\nwhat the lab shows now:\n{self.observe.dump(node)()}"
                ) from None
        except BaseException:
            self.failed.set()  # the others stop waiting; set before a failed central wakes the hosts below
            raise
        finally:
            if node == self.central:
                self.sb_started.set()

    def registered(self, node: str) -> None:
        ip, dump = self.lab.node(node).ip, self.observe.dump(node)
        wait_for(node, f"SB Encap geneve {ip} for chassis {node}", lambda: self.observe.encap(node), dump, 90)
        what = f"{len(self.lab.nodes) - 1} geneve ports with the other nodes' IPs"
        wait_for(node, what, lambda: self.observe.tunnels(node), dump, 90)
