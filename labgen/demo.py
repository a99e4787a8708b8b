"""`invoke demo`: tutorial steps 4-8 with their real output, one method per section, then the pings;
and `demo --reset`, which removes what the demo made.

Unless the trainer steps through (--step), work starts before its section is shown (binding while central
builds the switch, the read-only shows and the gates while earlier output prints); the output still comes
in the tutorial's order.
"""

from __future__ import annotations

import functools
import shlex
import threading
import time
from collections.abc import Callable
from concurrent import futures
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from tenacity import Retrying, retry_if_result, stop_after_delay, wait_fixed

from . import gates
from .backends.base import Backend
from .errors import ShowFailed, StageFailed
from .gates import wait_for
from .lab import changes_lab, open_up_lab
from .model import Lab, Port
from .narrator import Narrator
from .observe import Observer
from .provisioner import Provisioner, collect, each, echo, emit
from .ui import console
from .workshop.explain import Explainer

T = TypeVar("T")
Runs = dict[str, Future[list[str]]]


@changes_lab("demo")
def demo(
    config: str | Path,
    *,
    verbose: bool = False,
    step: bool = False,
    transcript: str | Path | None = None,
    reset: bool = False,
    explain: bool = False,
) -> dict[str, str]:
    """Tutorial steps 4-8 with their real output; returns port -> leased IP. `reset`: remove instead."""
    if reset:
        remove(config)
        return {}
    lab, backend = open_up_lab(config)
    say = Narrator(lab, backend.name, step=step, transcript=Path(transcript) if transcript else None)
    t0 = time.monotonic()
    hosts = [n for n in lab.node_names if lab.ports_on(n)]
    # the pool ends before the provisioner's sessions: central's run, the hosts' runs, 3 show/gate jobs and
    # an explanation read early
    with (
        Provisioner(lab, backend, verbose=verbose) as provisioner,
        ThreadPoolExecutor(max_workers=len(hosts) + 5) as pool,
    ):
        why = Explainer(lab, backend, lambda lines: emit(lines, say.line, style="cyan"), full=explain or say.explains)
        run = Demo(lab, backend, provisioner, say, pool, hosts, why)
        try:
            ips = run.all()
        except BaseException:
            run.stop.set()  # the gates still running in the pool stop waiting
            raise
    say.save()
    leases = ", ".join(f"{p.netns}={ips[p.name]}" for p in lab.ports)
    console.print(f"\n[green]demo done[/] in {time.monotonic() - t0:.1f} s: {leases}")
    return ips


class Demo:
    def __init__(
        self,
        lab: Lab,
        backend: Backend,
        provisioner: Provisioner,
        say: Narrator,
        pool: ThreadPoolExecutor,
        hosts: list[str],
        why: Explainer,
    ):
        self.lab, self.backend, self.provisioner, self.say, self.pool = lab, backend, provisioner, say, pool
        self.why = why
        self.hosts, self.central = hosts, lab.central.name
        self.observe = Observer(lab, backend)
        self.stop = threading.Event()  # a failure: the gates still running in the pool stop waiting
        self.ips: dict[str, str] = {}
        self.leases: dict[str, list[str]] = {}  # port -> the addresses its namespace held when its lease was proven

    def all(self) -> dict[str, str]:
        why = self.why
        self.provisioner.warm([self.central, *self.hosts])  # they start while the flows before are read
        why.start()
        binds = self.logical()
        shown = self.early(lambda: self.provisioner.show(self.central, "show-logical"))
        traced = self.early(lambda: self.provisioner.show(self.central, "trace"))
        bound = self.early(self.bound)
        flows = self.early(why.logical)  # the flows northd made: read beside the shows and the trace
        self.emit(shown)
        why.tell(flows())
        self.trace(traced)
        self.bind(binds, bound)
        told = self.early(why.bind)  # the keys and flows of the bound ports, read beside dhclient (it changes neither)
        leasing = None if self.say.step else self.on_hosts(["dhcp"])  # printed below, after the note
        why.tell(told())
        self.dhcp(leasing)
        why.tell(why.dhcp(self.leases))
        self.say.section("ping")
        tunnel = self.early(why.ping)  # the tunnel and the keys: the pings change neither
        ping_matrix(self.lab, self.backend, self.ips, self.say.line)
        why.tell(tunnel())
        return self.ips

    # -- sections -----------------------------------------------------------------------------------------
    def logical(self) -> Runs | None:
        """Steps 4-5 on central. Binding needs no NB object (ovn-controller claims a port once its LSP
        appears): unless the trainer steps through, the hosts bind meanwhile. Central's python3 starts
        first: it is on the critical path, the binds are not. Returns the binds started."""
        self.say.section("logical")
        binds: Runs | None = None
        if not self.say.step and all(p.mac for p in self.lab.ports):
            logical = self.pool.submit(self.run, self.central, ["logical"])
            binds = self.on_hosts(["bind"])
            logical.result()
        else:
            self.run(self.central, ["logical"])
        found: dict[str, tuple[str, str]] = {}

        def allocated() -> tuple[bool, str]:
            ok, obs, got = self.observe.dynamic_addresses()
            found.update(got)
            return ok, obs

        wait_for(self.central, "dynamic_addresses of every port", allocated, self.observe.dump(self.central), 30)
        self.provisioner.macs = {p: mac for p, (mac, _) in found.items()}
        self.ips = {p: ip for p, (_, ip) in found.items()}
        if binds is None and not self.say.step:
            binds = self.on_hosts(["bind"])  # dynamic MACs are known now
        return binds

    def trace(self, traced: Callable[[], list[str]]) -> None:
        """Step 6: ovn-trace shows put_dhcp_opts offering each traced port its allocated IP."""
        self.say.section("trace")
        text = "\n".join(self.emit(traced))
        for t in self.provisioner.plan(self.central)["trace"]:
            want = f"put_dhcp_opts(offerip = {self.ips[t['port']]}"
            if want not in text:
                raise StageFailed(f"{self.central}: ovn-trace of {t['port']} does not show {want}")

    def bind(self, binds: Runs | None, bound: Callable[[], list[str]]) -> None:
        """Step 7: the ports on their hosts, then `ovn-sbctl show` once every port is up."""
        self.say.section("bind")
        self.show(binds or self.on_hosts(["bind"]))
        self.emit(bound)

    def dhcp(self, leasing: Runs | None) -> None:
        """Step 8: dhclient in every namespace; then every lease equals the allocated address."""
        self.say.section("dhcp")
        self.show(leasing or self.on_hosts(["dhcp"]))
        ports = {p.name: p for p in self.lab.ports}

        def leased(name: str) -> None:
            p = ports[name]
            got = functools.partial(self.observe.lease, p, self.ips[name], self.leases)
            wait_for(p.node, f"{p.netns}'s lease equal to its dynamic_addresses", got, self.observe.dump(p.node), 30)

        each(list(ports), leased)

    def bound(self) -> list[str]:
        central, dump = self.central, self.observe.dump(self.central)
        wait_for(central, "every port up=true on its chassis", self.observe.ports_up, dump, 60, self.stop.is_set)
        # a port may be claimed before its DHCP options exist (bound early): dhclient must not run before
        # every chassis has the DHCP flows, or its DISCOVER is lost and it retries 4-8 s later
        what = "every chassis applied the NB (ovn-nbctl --wait=hv sync)"
        with ThreadPoolExecutor(max_workers=1) as show:  # the bindings it shows are settled: read it meanwhile
            shown = show.submit(collect, self.backend, central, ["ovn-sbctl", "show"])
            wait_for(central, what, self.observe.hv_synced, dump, 60, self.stop.is_set)
        return shown.result()

    # -- running and showing ------------------------------------------------------------------------------
    def run(self, node: str, steps: list[str]) -> list[str]:
        return self.provisioner.run(node, steps, live=True, on_line=self.say.line)

    def on_hosts(self, steps: list[str]) -> Runs:
        return {n: self.pool.submit(self.provisioner.run, n, steps) for n in self.hosts}

    def show(self, runs: Runs) -> None:
        """Output of runs on several nodes, node by node in order; then the first failure, if any."""
        futures.wait(runs.values())
        for f in runs.values():
            emit(f.result() if f.exception() is None else [], self.say.line)
        for f in runs.values():
            f.result()

    def early(self, fn: Callable[[], T]) -> Callable[[], T]:
        """Start `fn` now, unless the trainer steps through; its result when asked for."""
        return fn if self.say.step else self.pool.submit(fn).result

    def emit(self, get: Callable[[], list[str]]) -> list[str]:
        try:
            lines = get()
        except ShowFailed as e:
            emit(e.shown, self.say.line)
            raise
        emit(lines, self.say.line)
        return lines


PING_WAIT = 30  # seconds a ping may take to pass: a bounded wait on the path, never one guess


def ping_matrix(lab: Lab, backend: Backend, ips: dict[str, str], record: Callable[[str], None] | None = None) -> None:
    """From the first port of each switch to every other port on it, all at once; shown in order. Ports on
    different switches have no path (no router joins them), so none is tried."""
    pairs = []
    for sw in lab.switches:
        ports = [p for p in lab.ports if p.switch == sw.name]
        pairs += [(ports[0], dst) for dst in ports[1:]]
    if not pairs:
        return

    def where(src: Port, dst: Port) -> str:
        return "same host" if dst.node == src.node else f"{src.node} -> {dst.node} over geneve"

    def ping(pair: tuple[Port, Port]) -> tuple[bool, list[str]]:
        # two packets 10 ms apart: one reply proves the path (ping exits 0), the second shows it holds.
        # Under a room's load (many labs at once) the path can come later than the leases: a bounded wait,
        # showing the last try
        src, dst = pair
        argv = ["ip", "netns", "exec", src.netns, "ping", "-c", "2", "-i", "0.01", "-W", "2", ips[dst.name]]
        retrying = Retrying(
            stop=stop_after_delay(PING_WAIT * gates.SCALE),
            wait=wait_fixed(0.2),
            retry=retry_if_result(lambda r: not r.ok),
            retry_error_callback=lambda state: state.outcome.result() if state.outcome else None,
        )
        r = retrying(backend.run, src.node, argv, timeout=60)
        return r.ok, echo(src.node, shlex.join(argv), r)

    with ThreadPoolExecutor(max_workers=len(pairs)) as pool:
        results = list(pool.map(ping, pairs))
    for (src, dst), (good, lines) in zip(pairs, results, strict=True):
        emit([f"# {src.netns} -> {dst.netns} ({where(src, dst)})"], record, style="dim")
        emit(lines, record)
        if not good:
            path = where(src, dst)
            raise StageFailed(f"{src.node}: {src.netns} cannot ping {dst.netns} ({ips[dst.name]}, {path})")


def remove(config: str | Path) -> None:
    """Remove what the demo made (ports, namespaces, dhclients, NB objects); keep the infrastructure."""
    lab, backend = open_up_lab(config)
    with Provisioner(lab, backend) as provisioner:
        for n in lab.node_names:
            if lab.ports_on(n):
                provisioner.run(n, ["unbind"], live=True)
        provisioner.run(lab.central.name, ["unlogical"], live=True)
    console.print("[green]demo objects removed[/]; the nodes, OVN and tunnels from `invoke up` are intact")
