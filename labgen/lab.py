"""A lab as the tasks meet it: opened from lab.toml with the backend it was brought up with; its status;
a command or a shell on a node; its ssh_config; its Vagrantfile; its teardown."""

from __future__ import annotations

import contextlib
import functools
import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Concatenate, ParamSpec, TypedDict, TypeVar

from provision.facts import addr_of
from provision.views import geneve_remotes

from .backends import BACKENDS, get_backend
from .backends.base import Backend
from .errors import CommandFailed, InputError, NotUp, UnknownName
from .load import load_lab
from .model import Lab
from .observe import Observer
from .state import LabState
from .ui import console, step

P = ParamSpec("P")
R = TypeVar("R")


def changes_lab(
    task: str, *, take_over: bool = False
) -> Callable[[Callable[Concatenate[str | Path, P], R]], Callable[Concatenate[str | Path, P], R]]:
    """Run a task that changes the lab under the lab's lock (LabState.lock): one at a time."""

    def wrap(fn: Callable[Concatenate[str | Path, P], R]) -> Callable[Concatenate[str | Path, P], R]:
        @functools.wraps(fn)
        def locked(config: str | Path, *args: P.args, **kw: P.kwargs) -> R:
            with LabState(load_lab(config)).lock(task, take_over=take_over):
                return fn(config, *args, **kw)

        return locked

    return wrap


def open_lab(config: str | Path, backend: str | None = None) -> tuple[Lab, Backend]:
    """Load lab.toml; the backend is the one the lab was brought up with, else `backend`, else lab.toml's."""
    lab = load_lab(config)
    state = LabState(lab)
    saved = state.backend()
    if backend is not None and backend not in BACKENDS:
        raise UnknownName("backend", backend, sorted(BACKENDS))
    if saved and backend and backend != saved:
        raise InputError(
            f"lab {lab.name} is up with the {saved} backend",
            f"run `invoke teardown` before `invoke up --backend {backend}`",
        )
    if state.source_changed():
        console.print(f"[yellow]note:[/] {lab.source} changed after `invoke up`; run `invoke up` again to apply it")
    return lab, get_backend(saved or backend or lab.backend, lab)


def open_up_lab(config: str | Path) -> tuple[Lab, Backend]:
    lab, backend = open_lab(config)
    if backend.state.backend() is None:
        raise NotUp(lab.name)
    return lab, backend


def node_of(lab: Lab, node: str) -> str:
    if node not in lab.node_names:
        raise UnknownName("node", node, lab.node_names, f" in lab {lab.name}")
    return node


class Chassis(TypedDict):
    encap: str
    ip: str


class Binding(TypedDict):
    chassis: str | None
    up: bool | None


class Lease(TypedDict):
    node: str
    netns: str
    ipv4: list[str]


@dataclass
class NodeStatus:
    ip: str
    central: bool
    state: str
    tunnels: list[str] | None = None  # remote IPs of its geneve ports; None: could not be read


@dataclass
class LabStatus:
    lab: str
    backend: str | None
    nodes: dict[str, NodeStatus] = field(default_factory=dict)
    chassis: dict[str, Chassis] = field(default_factory=dict)
    bindings: dict[str, Binding] = field(default_factory=dict)  # bound ports
    leases: dict[str, Lease] = field(default_factory=dict)  # ports on running nodes
    error: str | None = None  # the SB could not be read


def status(config: str | Path) -> LabStatus:
    lab, backend = open_lab(config)
    out = LabStatus(lab.name, backend.state.backend())
    states = backend.status()
    for n in lab.nodes:
        out.nodes[n.name] = NodeStatus(n.ip, n.central, states.get(n.name, "?"))
    if states.get(lab.central.name) != "running":
        return out
    observe = Observer(lab, backend)
    try:
        encaps = observe.fact(lab.central.name, "sb_encaps")
        out.chassis = {r["chassis_name"]: {"encap": r["type"], "ip": r["ip"]} for r in encaps}
        bound = observe.bindings()
        out.bindings = {port: {"chassis": b.chassis, "up": b.up} for port, b in bound.items() if b.chassis}
    except CommandFailed as e:
        out.error = str(e)
    for n in lab.nodes:
        if states.get(n.name) != "running":
            continue
        with contextlib.suppress(CommandFailed):
            out.nodes[n.name].tunnels = geneve_remotes(observe.fact(n.name, "interfaces"))
        for p in lab.ports_on(n.name):
            try:
                held = addr_of(observe.fact(n.name, "ns_addrs", p.netns), p.name)
            except CommandFailed:
                held = []
            out.leases[p.name] = {"node": n.name, "netns": p.netns, "ipv4": held}
    return out


def show_status(config: str | Path, *, as_json: bool = False) -> None:
    st = status(config)
    if as_json:
        print(json.dumps(asdict(st), indent=1, sort_keys=True))
    else:
        print_status(st)


def print_status(st: LabStatus) -> None:
    from rich.table import Table

    console.print(f"lab [bold]{st.lab}[/], backend {st.backend or '(not up)'}")
    t = Table("node", "underlay IP", "state", "chassis encap", "geneve tunnels to")
    for name, n in st.nodes.items():
        ch = st.chassis.get(name)
        t.add_row(
            name + (" (central)" if n.central else ""),
            n.ip,
            n.state,
            f"{ch['encap']} {ch['ip']}" if ch else "-",
            ", ".join(n.tunnels or []) or "-",
        )
    console.print(t)
    if st.leases or st.bindings:
        t = Table("port", "bound on", "up", "netns", "IPv4")
        for port, lease in st.leases.items():
            bound = st.bindings.get(port)
            t.add_row(
                port,
                (bound["chassis"] if bound else None) or "-",
                str(bound["up"]) if bound else "-",
                f"{lease['node']}:{lease['netns']}",
                ", ".join(lease["ipv4"]) or "-",
            )
        console.print(t)


def exec_on(config: str | Path, node: str, command: str | None) -> None:
    """Replace this process with COMMAND (or an interactive shell) as root on NODE: its own output and
    exit code, nothing added."""
    lab, backend = open_up_lab(config)
    node_of(lab, node)
    if command is None:
        argv = backend.node_argv(node, ["/bin/bash", "-l"], tty=True)
    else:
        argv = backend.node_argv(node, ["/bin/sh", "-c", command], tty=os.isatty(0))
    console.file.flush()
    os.execvp(argv[0], argv)


def ssh_config(config: str | Path) -> None:
    _, backend = open_up_lab(config)
    print(backend.user_ssh_config(), end="")


def render(config: str | Path, backend_name: str | None = None) -> None:
    _, backend = open_lab(config, backend_name)
    print(backend.render())


@changes_lab("teardown", take_over=True)  # a killed task's orphans must not keep a lab from going
def teardown(config: str | Path, *, box: bool = False) -> None:
    lab = load_lab(config)
    saved = LabState(lab).backend()
    # state lost: sweep with every backend that finds objects of the lab
    names = [saved] if saved else list(BACKENDS)
    t0 = time.monotonic()
    for name in names:
        backend = get_backend(name, lab)
        if saved or backend.has_leftovers():
            with step(f"teardown {lab.name} ({name})"):
                backend.destroy(lambda msg: console.print(f"  {msg}", markup=False))
        if box and backend.has_box:  # also when nothing of the lab is left: the box is the user's
            with step(f"remove the {name} backend's box"):
                backend.remove_box(lambda msg: console.print(f"  {msg}", markup=False))
    console.print(f"lab {lab.name} removed in {time.monotonic() - t0:.1f} s")
