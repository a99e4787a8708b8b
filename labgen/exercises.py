"""Break-fix exercises: a trainer injects a fault, trainees find it with `invoke check` and fix it by hand.
`solve` repairs with the same idempotent provisioner steps that built the lab."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

from .backends.base import Backend
from .check import Finding, run_checks
from .model import Lab
from .orchestrate import LabError, Provisioner, open_up_lab
from .ui import console


@dataclass(frozen=True)
class Exercise:
    name: str
    story: str  # what the trainee is told
    hint: str
    code: str  # the check finding that names the fault
    inject: Callable[[Lab, Backend], list[tuple[str, list[str]]]]  # (node, argv) to run


def _host_port(lab: Lab, index: int):  # type: ignore[no-untyped-def]
    return lab.ports[min(index, len(lab.ports) - 1)]


def _stop_controller(lab: Lab, b: Backend) -> list[tuple[str, list[str]]]:
    node = _host_port(lab, 2).node
    if b.services == "systemd":
        return [(node, ["systemctl", "stop", "ovn-host"])]
    return [(node, ["sh", "-c", "kill $(cat /run/ovn/ovn-controller.pid)"])]


EXERCISES = {
    e.name: e
    for e in (
        Exercise(
            "wrong-mac",
            "vm1 lost its network after someone 'tidied up' its interface.",
            "Compare the MAC of port1 inside vm1 with the logical port's addresses (ovn-nbctl show).",
            "mac",
            lambda lab, b: [
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
            lambda lab, b: [
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
            lambda lab, b: [
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
            lambda lab, b: [
                (
                    _host_port(lab, 2).node,
                    ["ovs-vsctl", "set", "interface", _host_port(lab, 2).name, "external_ids:iface-id=port-typo"],
                )
            ],
        ),
    )
}


def _state(lab: Lab) -> dict[str, str]:
    f = lab.state_dir / "exercise.json"
    return json.loads(f.read_text()) if f.exists() else {}


def _findings(lab: Lab, b: Backend) -> list[Finding]:
    return run_checks(lab, b)


def list_exercises() -> None:
    for e in EXERCISES.values():
        console.print(f"[bold]{e.name:<20}[/] {e.story}", highlight=False)


def start(config: str, name: str) -> None:
    lab, b = open_up_lab(config)
    if name not in EXERCISES:
        raise LabError(f"no exercise {name!r}; choose one of: {', '.join(EXERCISES)}")
    bad = [f for f in _findings(lab, b) if not f.ok]
    if bad:
        raise LabError(
            f"the lab must pass `invoke check` before an exercise starts ({bad[0].what}); run `invoke demo` first"
        )
    e = EXERCISES[name]
    for node, argv in e.inject(lab, b):
        r = b.run(node, argv)
        if not r.ok:
            raise LabError(f"{node}: injecting {name} failed: {r.stderr.strip()}")
    (lab.state_dir / "exercise.json").write_text(json.dumps({"name": name}) + "\n")
    console.print(
        f"exercise [bold]{name}[/] started: {e.story}\nfind it with `invoke check`; "
        "`invoke exercise.hint` if stuck; `invoke exercise.check` when you think it is fixed"
    )


def check(config: str) -> bool:
    lab, b = open_up_lab(config)
    name = _state(lab).get("name")
    bad = [f for f in _findings(lab, b) if not f.ok]
    if not name:
        raise LabError("no exercise running: invoke exercise.start NAME (see invoke exercise.list)")
    if bad:
        console.print(f"[red]not solved yet[/]: {name}. Still wrong:")
        for f in bad:
            console.print(f"  {f.node}: {f.what}", highlight=False, markup=False)
        return False
    console.print(f"[green]solved[/]: {name}")
    (lab.state_dir / "exercise.json").unlink()
    return True


def hint(config: str) -> None:
    lab, _ = open_up_lab(config)
    name = _state(lab).get("name")
    if not name:
        raise LabError("no exercise running: invoke exercise.start NAME")
    console.print(EXERCISES[name].hint, highlight=False)


def solve(config: str) -> None:
    """Repair with the provisioner: the chassis settings, the NB objects, the bindings and the leases."""
    lab, b = open_up_lab(config)
    with Provisioner(lab, b) as pv:
        pv.run_all(lab.node_names, ["chassis", "controller"])
        pv.run(lab.central.name, ["logical"])
        for n in lab.node_names:
            if lab.ports_on(n):
                pv.run(n, ["bind", "dhcp"])
    (lab.state_dir / "exercise.json").unlink(missing_ok=True)
    console.print("repaired; `invoke check` shows the state")
