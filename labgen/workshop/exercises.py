"""Break-fix exercises: a trainer injects a fault, trainees find it with `invoke check` and fix it by hand.
`solve` repairs with the same idempotent provisioner steps that built the lab."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from provision.services import stop_argv

from ..backends.base import Backend
from ..errors import LabError, StageFailed, UnknownName
from ..lab import open_up_lab
from ..model import Lab, Port
from ..provisioner import Provisioner
from ..ui import console
from .check import run_checks


@dataclass(frozen=True)
class Exercise:
    name: str
    story: str  # what the trainee is told
    hint: str
    code: str  # the check finding that names the fault
    inject: Callable[[Lab, Backend], list[tuple[str, list[str]]]]  # (node, argv) to run


def _host_port(lab: Lab, index: int) -> Port:
    return lab.ports[min(index, len(lab.ports) - 1)]


def _stop_controller(lab: Lab, backend: Backend) -> list[tuple[str, list[str]]]:
    return [(_host_port(lab, 2).node, stop_argv(backend.services, "ovn-controller"))]


EXERCISES = {
    e.name: e
    for e in (
        Exercise(
            "wrong-mac",
            "vm1 lost its network after someone 'tidied up' its interface.",
            "Compare the MAC of port1 inside vm1 with the logical port's addresses (ovn-nbctl show).",
            "mac",
            lambda lab, _: [
                (
                    _host_port(lab, 0).node,
                    [
                        "ip",
                        "-n",
                        _host_port(lab, 0).netns,
                        "link",
                        "set",
                        _host_port(lab, 0).name,
                        "address",
                        "c0:ff:ee:00:00:99",
                    ],
                )
            ],
        ),
        Exercise(
            "no-dhcp-options",
            "vm2 never gets an address when it asks again.",
            "Which DHCP_Options row does each logical switch port reference? (ovn-nbctl list logical_switch_port)",
            "dhcpv4_options",
            lambda lab, _: [
                (
                    lab.central.name,
                    ["ovn-nbctl", "clear", "logical_switch_port", _host_port(lab, 1).name, "dhcpv4_options"],
                )
            ],
        ),
        Exercise(
            "controller-stopped",
            "vm3 cannot reach anyone, and ovn-sbctl show looks odd.",
            "Is ovn-controller running and connected on every chassis? (ovn-appctl -t ovn-controller "
            "connection-status)",
            "controller",
            _stop_controller,
        ),
        Exercise(
            "wrong-encap-ip",
            "Traffic between hosts stopped after a config change on ovn-host-01.",
            "Compare external_ids:ovn-encap-ip with the node's underlay address, and the Encap rows in ovn-sbctl show.",
            "encap",
            lambda lab, _: [
                (
                    _host_port(lab, 0).node,
                    ["ovs-vsctl", "set", "open_vswitch", ".", "external_ids:ovn-encap-ip=10.99.0.2"],
                )
            ],
        ),
        Exercise(
            "port-not-bound",
            "ovn-sbctl show no longer lists port3 under any chassis.",
            "ovn-controller binds an OVS interface to a logical port by its external_ids:iface-id.",
            "unbound",
            lambda lab, _: [
                (
                    _host_port(lab, 2).node,
                    ["ovs-vsctl", "set", "interface", _host_port(lab, 2).name, "external_ids:iface-id=port-typo"],
                )
            ],
        ),
    )
}


def list_exercises() -> None:
    for e in EXERCISES.values():
        console.print(f"[bold]{e.name:<20}[/] {e.story}", highlight=False)


def start(config: str | Path, name: str) -> None:
    lab, backend = open_up_lab(config)
    if name not in EXERCISES:
        raise UnknownName("exercise", name, tuple(EXERCISES))
    bad = [f for f in run_checks(lab, backend) if not f.ok]
    if bad:
        raise LabError(f"the lab must pass `invoke check` before an exercise starts ({bad[0].what})", "invoke demo")
    e = EXERCISES[name]
    for node, argv in e.inject(lab, backend):
        r = backend.run(node, argv)
        if not r.ok:
            raise StageFailed(f"{node}: injecting {name} failed: {r.stderr.strip()}")
    backend.state.start_exercise(name)
    console.print(
        f"exercise [bold]{name}[/] started: {e.story}\nfind it with `invoke check`; "
        "`invoke exercise.hint` if stuck; `invoke exercise.check` when you think it is fixed"
    )


def _running(config: str | Path) -> tuple[Lab, Backend, str]:
    lab, backend = open_up_lab(config)
    name = backend.state.exercise()
    if not name:
        raise LabError("no exercise running", "invoke exercise.start NAME (see invoke exercise.list)")
    return lab, backend, name


def check(config: str | Path) -> bool:
    lab, backend, name = _running(config)
    bad = [f for f in run_checks(lab, backend) if not f.ok]
    if bad:
        console.print(f"[red]not solved yet[/]: {name}. Still wrong:")
        for f in bad:
            console.print(f"  {f.node}: {f.what}", highlight=False, markup=False)
        return False
    console.print(f"[green]solved[/]: {name}")
    backend.state.end_exercise()
    return True


def hint(config: str | Path) -> None:
    console.print(EXERCISES[_running(config)[2]].hint, highlight=False, markup=False)


def solve(config: str | Path) -> None:
    """Repair with the provisioner: the chassis settings, the NB objects, the bindings and the leases."""
    lab, backend = open_up_lab(config)
    with Provisioner(lab, backend) as provisioner:
        provisioner.run_all(lab.node_names, ["chassis", "controller"])
        provisioner.run(lab.central.name, ["logical"])
        for n in lab.node_names:
            if lab.ports_on(n):
                provisioner.run(n, ["bind", "dhcp"])
    backend.state.end_exercise()
    console.print("repaired; `invoke check` shows the state")
