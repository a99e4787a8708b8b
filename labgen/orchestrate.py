"""Stages and gates: lab.toml -> model -> plan -> backend. `tasks.py` calls these and nothing else."""

from __future__ import annotations

import contextlib
import functools
import json
import os
import shlex
import threading
import time
from collections.abc import Callable, Sequence
from concurrent import futures
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path
from typing import Any, TypeVar

from provision.core import Show
from provision.facts import addr_of, geneve_remotes
from provision.steps import STEPS

from .backends.base import Backend, Result, Session, get_backend
from .gates import Gates, GaveUp, wait_for
from .load import load_lab
from .model import Lab, Port
from .plan import node_spec
from .ui import console, progress, step

T = TypeVar("T")


class LabError(Exception):
    """A failure the user can act on: printed without a traceback."""


class StageFailed(LabError):
    pass


class ShowFailed(StageFailed):
    """A show command failed; `lines` is what it printed, for the trainer to see before the error."""

    def __init__(self, message: str, lines: list[str]):
        super().__init__(message)
        self.lines = lines


# -- opening a lab ------------------------------------------------------------------------------------------
def saved_backend(lab: Lab) -> str | None:
    f = lab.state_dir / "state.json"
    return json.loads(f.read_text())["backend"] if f.exists() else None


def open_lab(config: str | Path, backend: str | None = None) -> tuple[Lab, Backend]:
    """Load lab.toml; the backend is the one the lab was brought up with, else `backend`, else lab.toml's."""
    lab = load_lab(config)
    saved = saved_backend(lab)
    if saved and backend and backend != saved:
        raise LabError(
            f"lab {lab.name} is up with the {saved} backend; run `invoke teardown` before "
            f"`invoke up --backend {backend}`"
        )
    name = saved or backend or lab.backend
    snap = lab.state_dir / "lab.json"
    if snap.exists() and Path(lab.source).stat().st_mtime > snap.stat().st_mtime:
        console.print(f"[yellow]note:[/] {lab.source} changed after `invoke up`; run `invoke up` again to apply it")
    return lab, get_backend(name, lab)


def remember(lab: Lab, backend: Backend) -> None:
    lab.state_dir.mkdir(parents=True, exist_ok=True)
    (lab.state_dir / "state.json").write_text(json.dumps({"backend": backend.name, "source": lab.source}) + "\n")
    (lab.state_dir / "lab.json").write_text(json.dumps(asdict(lab), indent=1) + "\n")


# -- running the provisioner ------------------------------------------------------------------------------
class Provisioner:
    """Runs provisioner steps on the nodes, through one session per node and concurrent run (see
    Session). Use it as a context manager: the sessions end with it."""

    def __init__(self, lab: Lab, backend: Backend, *, verbose: bool = False):
        self.lab, self.b, self.verbose = lab, backend, verbose
        self.macs: dict[str, str] = {}
        self._idle: dict[str, list[Session]] = {}
        self._all: list[Session] = []
        self._lock = threading.Lock()

    def __enter__(self) -> Provisioner:
        return self

    def __exit__(self, kind: object, *_: object) -> None:
        failed = kind is not None
        for s in self._all:
            s.end(kill=failed)  # a failed or interrupted task leaves no step half-run behind
        if failed:
            for s in self._all:
                s.wait()
        # else each has finished its last batch and exits at end of input, ~20 ms we need not wait for

    def _session(self, node: str) -> Session:
        with self._lock:
            idle = self._idle.setdefault(node, [])
            if idle:
                return idle.pop()
        s = self.b.session(node)
        with self._lock:
            self._all.append(s)
        return s

    def spec(self, node: str) -> dict[str, Any]:
        if not self.macs and any(p.mac is None for p in self.lab.ports_on(node)):
            # ports with a dynamic MAC: bind them with the MAC OVN chose (empty until northd allocated it)
            with contextlib.suppress(RuntimeError):  # no NB yet (during `up`): no bindings to make either
                self.macs = {p: mac for p, (mac, _) in Gates(self.lab, self.b).dynamic_addresses()[2].items()}
        return node_spec(
            self.lab, node, datapath=self.b.datapath, services=self.b.services, install=self.b.install, macs=self.macs
        )

    def run(
        self, node: str, steps: Sequence[str], *, live: bool = False, on_line: Callable[[str], None] | None = None
    ) -> list[str]:
        """Run provisioner steps on one node; output goes to the node's log (and the console when live)."""
        lines: list[str] = []
        log = (self.b.log_dir / f"{node}.log").open("a")

        def line(text: str) -> None:
            lines.append(text)
            log.write(text + "\n")
            log.flush()
            if live or self.verbose:
                console.print(text, markup=False, highlight=False)
            if on_line:
                on_line(text)

        s = self._session(node)
        with log:
            rc = s.run(json.dumps({"steps": list(steps), "plan": self.spec(node)}), line)
        if s.alive:
            with self._lock:
                self._idle[node].append(s)
        if rc != 0:
            tail = "\n".join(lines[-12:])
            raise StageFailed(
                f"{node}: provisioning step {' '.join(steps)} failed (exit {rc}):\n{tail}\n"
                f"full log: {self.b.log_dir / f'{node}.log'}"
            )
        return lines

    def show(self, node: str, step: str) -> list[str]:
        """A read-only step (show-logical, trace): its commands straight through the backend, at once; a
        python3 process less, ~50 ms each. Returns the lines as the provisioner prints them, for the caller
        to show in the tutorial's order; raises, with those lines, if a command failed."""
        ops = [op for op in STEPS[step](self.spec(node), {}) if isinstance(op, Show)]
        with ThreadPoolExecutor(max_workers=max(1, len(ops))) as pool:
            results = list(pool.map(lambda op: self.b.run(node, op.argv, timeout=op.timeout), ops))
        lines: list[str] = []
        for op, r in zip(ops, results, strict=True):
            lines += _echo(node, op.shell(), r)
        with (self.b.log_dir / f"{node}.log").open("a") as log:
            log.writelines(ln + "\n" for ln in lines)
        bad = next((op for op, r in zip(ops, results, strict=True) if not r.ok), None)
        if bad:
            raise ShowFailed(f"{node}: {bad.shell()} failed; full log: {self.b.log_dir / f'{node}.log'}", lines)
        return lines

    def run_all(self, nodes: Sequence[str], steps: Sequence[str]) -> None:
        """The same steps on several nodes in parallel."""
        self.each(nodes, lambda n: self.run(n, steps))

    @staticmethod
    def each(nodes: Sequence[str], work: Callable[[str], object]) -> None:
        """`work` on every node in parallel, with a ✓/✗ progress line; the first failure is reported after
        all finished."""
        state = dict.fromkeys(nodes, "…")

        def one(n: str) -> None:
            try:
                work(n)
                state[n] = "✓"
            except BaseException:
                state[n] = "✗"
                raise
            finally:
                progress("  ".join(f"{k} {v}" for k, v in state.items()))

        with ThreadPoolExecutor(max_workers=max(1, len(nodes))) as pool:
            runs = [pool.submit(one, n) for n in nodes]
        errors = [e for f in runs if (e := f.exception())]
        if errors:  # the cause, not a node that stopped waiting because of it
            raise next((e for e in errors if not isinstance(e, GaveUp)), errors[0])


def _parallel(nodes: Sequence[str], fn: Callable[[str], object]) -> None:
    with ThreadPoolExecutor(max_workers=max(1, len(nodes))) as pool:
        futures = [pool.submit(fn, n) for n in nodes]
    for f in futures:
        f.result()


# -- tasks ------------------------------------------------------------------------------------------------
def preflight(backend: Backend) -> None:
    problems = []
    for p in backend.probes():
        err = p.check()
        if err:
            problems.append(f"  ✗ {p.name}: {err}\n    fix: {p.fix}")
    if problems:
        raise LabError(f"{backend.name} backend cannot start here:\n" + "\n".join(problems))


def up(config: str | Path, backend_name: str | None = None, *, verbose: bool = False) -> Lab:
    lab, b = open_lab(config, backend_name)
    t0 = time.monotonic()
    console.print(f"lab [bold]{lab.name}[/]: {len(lab.nodes)} nodes on {lab.underlay.subnet}, backend {b.name}")
    with step("preflight"):
        preflight(b)
    remember(lab, b)  # before creating anything: teardown must find whatever a failed up leaves
    with Provisioner(lab, b, verbose=verbose) as pv:
        _up(lab, b, pv)
    console.print(f"[green]lab {lab.name} is up[/] in {time.monotonic() - t0:.1f} s ({b.name}); next: invoke demo")
    return lab


def _up(lab: Lab, b: Backend, pv: Provisioner) -> None:
    g = Gates(lab, b)
    names = lab.node_names
    with step(f"create {len(names)} nodes"):
        b.create(lambda msg: console.print(f"  {msg}", markup=False, style="dim"))
        _parallel(names, b.prepare)
    central = lab.central.name
    first = ["install", *(["root-ssh"] if b.services == "systemd" else []), "ovs", "underlay"]

    sb_started, failed = threading.Event(), threading.Event()

    def bring_up(n: str) -> None:
        """Steps 1-3 on one node, each as soon as it can. Central starts its databases beside OVS (they
        need only the packages); once both run, the hosts may go on. ovn-controller starts once the SB
        answers (started earlier, it would back off up to 8 s between reconnects; probing before central
        has its IP costs ARP timeouts)."""
        try:
            if n == central:
                if b.install:
                    pv.run(n, ["install"])  # both runs below need the packages; apt must not run twice at once
                with ThreadPoolExecutor(max_workers=2) as pool:
                    runs = [pool.submit(pv.run, n, first), pool.submit(pv.run, n, ["central"])]
                for f in runs:
                    f.result()
                sb_started.set()  # the SB listens on the underlay: the hosts may go on
                rest = ["chassis", "controller"]
            else:
                pv.run(n, [*first, "chassis"])
                sb_started.wait()
                if failed.is_set():
                    raise GaveUp(f"{n}: stopped waiting for the SB")
                rest = ["controller"]
            try:
                pv.run(n, rest)  # the controller step's first op waits, bounded, until the SB answers
            except StageFailed as e:
                raise StageFailed(f"{e}\nwhat the lab shows now:\n{g.dump(n)()}") from None
        except BaseException:
            failed.set()  # the others stop waiting; set before a failed central wakes the hosts below
            raise
        finally:
            if n == central:
                sb_started.set()

    with step(f"OVS, underlay, br-int on every node; NB/SB + northd on {central}; then ovn-controller"):
        pv.each(names, bring_up)
        b.after_install()

    def registered(n: str) -> None:
        wait_for(n, f"SB Encap geneve {lab.node(n).ip} for chassis {n}", lambda: g.encap(n), g.dump(n), 90)
        what = f"{len(names) - 1} geneve ports with the other nodes' IPs"
        wait_for(n, what, lambda: g.tunnels(n), g.dump(n), 90)

    with step(f"gate: every chassis registered with its encap IP, {len(names) - 1} geneve tunnels on every node"):
        _parallel(names, registered)


SECTIONS = {
    "logical": (
        "4-5. Logical switch with DHCP, logical ports (on central)",
        "net0 is a logical switch: it exists only in the Northbound database, ovn-northd turns it into "
        "flows for every chassis. The DHCP_Options row makes OVN itself answer DHCP for ports that "
        "reference it; 'MAC dynamic' lets OVN pick each port's IP from the subnet, past the excluded range.",
    ),
    "trace": (
        "6. Trace a DHCP request (on central)",
        "ovn-trace runs a packet through the logical pipeline without sending anything: a DHCP request from "
        "port1 hits put_dhcp_opts, which builds the offer, and the reply goes back out of port1.",
    ),
    "bind": (
        "7. Attach the ports on the hypervisors",
        "An OVS internal port with external_ids:iface-id=portN tells ovn-controller on that host to claim "
        "the logical port: the Port_Binding then shows the chassis. Each port moves into a namespace, our "
        "'VM'.",
    ),
    "dhcp": (
        "8. A VM per port: DHCP in each namespace",
        "dhclient in each namespace broadcasts a DISCOVER; ovn-controller answers locally with the offer "
        "built from the DHCP options, so no DHCP server runs anywhere.",
    ),
    "ping": (
        "Checks: vm to vm, on the same host and across the geneve tunnel",
        "vm1 -> vm2 stays inside ovn-host-01; vm1 -> vm3 is encapsulated in geneve between ovn-host-01 and "
        "ovn-host-02.",
    ),
}


class Narrator:
    """Section headings, optional pauses (--step) and a Markdown transcript (--transcript)."""

    def __init__(self, lab: Lab, backend: str, *, step: bool = False, transcript: Path | None = None):
        self.step, self.path = step, transcript
        self.md: list[str] = [
            f"# OVN DHCP lab: transcript\n\nlab `{lab.name}`, backend `{backend}`, {time.strftime('%Y-%m-%d %H:%M')}\n"
        ]
        self.open = False

    def section(self, key: str) -> None:
        title, text = SECTIONS[key]
        console.print(f"\n[bold cyan]## {title}[/]")
        if self.step:
            console.print(text, style="italic", soft_wrap=False)  # prose wraps at words; commands never wrap
            input("press Enter to run it ")
        self._close()
        self.md.append(f"## {title}\n\n{text}\n")

    def line(self, text: str) -> None:
        if not self.open:
            self.md.append("```")
            self.open = True
        self.md.append(text)

    def _close(self) -> None:
        if self.open:
            self.md.append("```\n")
            self.open = False

    def save(self) -> None:
        if self.path:
            self._close()
            self.path.write_text("\n".join(self.md) + "\n")
            console.print(f"transcript: {self.path}")


def open_up_lab(config: str | Path) -> tuple[Lab, Backend]:
    lab, b = open_lab(config)
    if saved_backend(lab) is None:
        raise LabError(f"lab {lab.name} is not up: run `invoke up` first")
    return lab, b


def demo(
    config: str | Path, *, verbose: bool = False, step: bool = False, transcript: str | Path | None = None
) -> dict[str, str]:
    """Tutorial steps 4-8 with their real output; returns port -> leased IP."""
    lab, b = open_up_lab(config)
    say = Narrator(lab, b.name, step=step, transcript=Path(transcript) if transcript else None)
    t0 = time.monotonic()
    hosts = [n for n in lab.node_names if lab.ports_on(n)]
    stop = threading.Event()  # a failure: the gates still running in the pool stop waiting
    # the pool ends before the provisioner's sessions: central's run, the hosts' runs, 3 show/gate jobs
    with Provisioner(lab, b, verbose=verbose) as pv, ThreadPoolExecutor(max_workers=len(hosts) + 4) as pool:
        try:
            ips = _demo(lab, b, pv, say, pool, hosts, stop)
        except BaseException:
            stop.set()
            raise
    say.save()
    console.print(
        f"\n[green]demo done[/] in {time.monotonic() - t0:.1f} s: "
        + ", ".join(f"{p.netns}={ips[p.name]}" for p in lab.ports)
    )
    return ips


def _demo(
    lab: Lab,
    b: Backend,
    pv: Provisioner,
    say: Narrator,
    pool: ThreadPoolExecutor,
    hosts: list[str],
    stop: threading.Event,
) -> dict[str, str]:
    g = Gates(lab, b)
    central = lab.central.name

    def run(node: str, steps: list[str]) -> list[str]:
        return pv.run(node, steps, live=True, on_line=say.line)

    def on_hosts(steps: list[str]) -> dict[str, Future[list[str]]]:
        return {n: pool.submit(pv.run, n, steps) for n in hosts}

    def show(runs: dict[str, Future[list[str]]]) -> None:
        """Output of runs on several nodes, node by node in order; then the first failure, if any."""
        futures.wait(runs.values())
        for f in runs.values():
            _emit(f.result() if f.exception() is None else [], say.line)
        for f in runs.values():
            f.result()

    def early(fn: Callable[[], T]) -> Callable[[], T]:
        """Start `fn` now, unless the trainer steps through; its result when asked for, so the output
        still comes in the tutorial's order."""
        if say.step:
            return fn
        return pool.submit(fn).result

    def emit(get: Callable[[], list[str]]) -> list[str]:
        try:
            lines = get()
        except ShowFailed as e:
            _emit(e.lines, say.line)
            raise
        _emit(lines, say.line)
        return lines

    say.section("logical")
    # binding needs no NB object (ovn-controller claims a port once its LSP appears): unless the trainer
    # steps through, bind on the hosts while central works; the output still comes in the tutorial's order.
    # Central's python3 starts first: it is on the critical path, the binds are not.
    if not say.step and all(p.mac for p in lab.ports):
        logical = pool.submit(run, central, ["logical"])
        binds: dict[str, Future[list[str]]] | None = on_hosts(["bind"])
        logical.result()
    else:
        binds = None
        run(central, ["logical"])
    found: dict[str, tuple[str, str]] = {}

    def allocated() -> tuple[bool, str]:
        ok, obs, got = g.dynamic_addresses()
        found.update(got)
        return ok, obs

    wait_for(central, "dynamic_addresses of every port", allocated, g.dump(central), 30)
    pv.macs = {p: mac for p, (mac, _) in found.items()}
    ips = {p: ip for p, (_, ip) in found.items()}
    if binds is None and not say.step:
        binds = on_hosts(["bind"])  # dynamic MACs are known now
    shown = early(lambda: pv.show(central, "show-logical"))
    traced = early(lambda: pv.show(central, "trace"))

    def bound() -> list[str]:
        wait_for(central, "every port up=true on its chassis", g.ports_up, g.dump(central), 60, stop.is_set)
        # a port may be claimed before its DHCP options exist (bound early): dhclient must not run before
        # every chassis has the DHCP flows, or its DISCOVER is lost and it retries 4-8 s later
        what = "every chassis applied the NB (ovn-nbctl --wait=hv sync)"
        wait_for(central, what, g.hv_synced, g.dump(central), 60, stop.is_set)
        return _collect(b, central, ["ovn-sbctl", "show"])

    ready = early(bound)
    emit(shown)

    say.section("trace")
    text = "\n".join(emit(traced))
    for t in pv.spec(central)["trace"]:
        want = f"put_dhcp_opts(offerip = {ips[t['port']]}"
        if want not in text:
            raise StageFailed(f"{central}: ovn-trace of {t['port']} does not show {want}")

    say.section("bind")
    show(binds or on_hosts(["bind"]))
    emit(ready)

    say.section("dhcp")
    show(on_hosts(["dhcp"]))
    _parallel(
        hosts,
        lambda n: wait_for(n, "leases equal to dynamic_addresses", functools.partial(g.leases, n, ips), g.dump(n), 30),
    )

    say.section("ping")
    ping_matrix(lab, b, ips, say.line)
    return ips


def demo_reset(config: str | Path) -> None:
    """Remove what the demo made (ports, namespaces, dhclients, NB objects); keep the infrastructure."""
    lab, b = open_up_lab(config)
    with Provisioner(lab, b) as pv:
        for n in lab.node_names:
            if lab.ports_on(n):
                pv.run(n, ["unbind"], live=True)
        pv.run(lab.central.name, ["unlogical"], live=True)
    console.print("[green]demo objects removed[/]; the nodes, OVN and tunnels from `invoke up` are intact")


def ping_matrix(lab: Lab, b: Backend, ips: dict[str, str], record: Callable[[str], None] | None = None) -> None:
    """From the first port's namespace to every other port, all at once; shown in order."""
    if len(lab.ports) < 2:
        return
    src = lab.ports[0]
    dsts = lab.ports[1:]

    def where(dst: Port) -> str:
        return "same host" if dst.node == src.node else f"{src.node} -> {dst.node} over geneve"

    def ping(dst: Port) -> tuple[bool, list[str]]:
        # two packets 10 ms apart: one reply proves the path (ping exits 0), the second shows it holds
        argv = ["ip", "netns", "exec", src.netns, "ping", "-c", "2", "-i", "0.01", "-W", "2", ips[dst.name]]
        r = b.run(src.node, argv, timeout=60)
        return r.ok, _echo(src.node, shlex.join(argv), r)

    with ThreadPoolExecutor(max_workers=len(dsts)) as pool:
        results = list(pool.map(ping, dsts))
    for dst, (ok, lines) in zip(dsts, results, strict=True):
        _emit([f"# {src.netns} -> {dst.netns} ({where(dst)})"], record, style="dim")
        _emit(lines, record)
        if not ok:
            raise StageFailed(f"{src.node}: {src.netns} cannot ping {dst.netns} ({ips[dst.name]}, {where(dst)})")


def _collect(b: Backend, node: str, argv: list[str]) -> list[str]:
    """A read-only command's echo line and output; raises, with those lines, if it failed."""
    r = b.run(node, argv, timeout=60)
    lines = _echo(node, shlex.join(argv), r)
    if not r.ok:
        raise ShowFailed(f"{node}: {shlex.join(argv)} exited {r.rc}", lines)
    return lines


def _echo(node: str, command: str, r: Result) -> list[str]:
    """A command as the tutorial shows it (`node # command`), then its output."""
    return [f"{node} # {command}", *(r.stdout + r.stderr).rstrip().splitlines()]


def _emit(lines: Sequence[str], record: Callable[[str], None] | None, style: str | None = None) -> None:
    """Lines of commands and their output to the console as they are, and to the transcript."""
    for ln in lines:
        console.print(ln, markup=False, highlight=False, style=style)
        if record:
            record(ln)


def status(config: str | Path) -> dict[str, Any]:
    lab, b = open_lab(config)
    out: dict[str, Any] = {
        "lab": lab.name,
        "backend": saved_backend(lab),
        "nodes": {},
        "chassis": {},
        "bindings": {},
        "leases": {},
    }
    states = b.status()
    for n in lab.nodes:
        out["nodes"][n.name] = {"ip": n.ip, "central": n.central, "state": states.get(n.name, "?")}
    if states.get(lab.central.name) != "running":
        return out
    g = Gates(lab, b)
    try:
        encaps = g.fact(lab.central.name, "sb_encaps")
        chassis = {r["_uuid"]: r["name"] for r in g.fact(lab.central.name, "sb_chassis")}
        out["chassis"] = {r["chassis_name"]: {"encap": r["type"], "ip": r["ip"]} for r in encaps}
        for r in g.fact(lab.central.name, "sb_bindings"):
            if isinstance(r["chassis"], str):
                out["bindings"][r["logical_port"]] = {"chassis": chassis.get(r["chassis"]), "up": r.get("up")}
    except RuntimeError as e:
        out["error"] = str(e)
    for n in lab.nodes:
        if states.get(n.name) != "running":
            continue
        try:
            out["nodes"][n.name]["tunnels"] = geneve_remotes(g.fact(n.name, "interfaces"))
        except RuntimeError:
            out["nodes"][n.name]["tunnels"] = None
        for p in lab.ports_on(n.name):
            try:
                out["leases"][p.name] = {
                    "node": n.name,
                    "netns": p.netns,
                    "ipv4": addr_of(g.fact(n.name, "ns_addrs", p.netns), p.name),
                }
            except RuntimeError:
                out["leases"][p.name] = {"node": n.name, "netns": p.netns, "ipv4": []}
    return out


def exec_argv(config: str | Path, node: str, command: str | None) -> list[str]:
    """The host argv that runs COMMAND (or an interactive shell) as root on NODE."""
    lab, b = open_up_lab(config)
    if node not in lab.node_names:
        raise LabError(f"no node {node!r} in lab {lab.name}; nodes: {', '.join(lab.node_names)}")
    if command is None:
        return b.node_argv(node, ["/bin/bash", "-l"], tty=True)
    return b.node_argv(node, ["/bin/sh", "-c", command], tty=os.isatty(0))


def teardown(config: str | Path, *, box: bool = False) -> None:
    lab = load_lab(config)
    name = saved_backend(lab)
    names = [name] if name else ["netns", "vagrant"]  # state lost: sweep with every backend that finds objects
    t0 = time.monotonic()
    for n in names:
        b = get_backend(n, lab)
        if not name and not b.has_leftovers():
            continue
        with step(f"teardown {lab.name} ({n})"):
            b.destroy(lambda msg: console.print(f"  {msg}", markup=False))
            if box:
                b.remove_box(lambda msg: console.print(f"  {msg}", markup=False))
    console.print(f"lab {lab.name} removed in {time.monotonic() - t0:.1f} s")


def render(config: str | Path) -> Path:
    from .backends.vagrant import VagrantBackend

    lab = load_lab(config)
    b = VagrantBackend(lab)
    path = b.render()
    b.validate()
    return path
