"""Break-fix exercises: a trainer injects a fault, trainees find it with `invoke check` and fix it by hand.
`solve` repairs with the same idempotent provisioner steps that built the lab."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from provision.services import stop_argv

from ..backends.base import Backend
from ..errors import LabError, StageFailed, UnknownName
from ..lab import changes_lab, open_up_lab
from ..model import Lab, Port
from ..observe import Observer
from ..provisioner import Provisioner
from ..ui import console
from .check import run_checks


@dataclass(frozen=True)
class Exercise:
    name: str
    story: str  # what the trainee is told; {port}, {netns}, {node}: the port the fault is on, its netns, its node
    hint: str
    code: str  # the check finding that names the fault
    pick: int  # which of lab.toml's ports the fault is on (the last one, for a lab with fewer)
    inject: Callable[[Lab, Backend, Port], list[tuple[str, list[str]]]]  # (node, argv) to run

    def port(self, lab: Lab) -> Port:
        if not lab.ports:
            raise LabError(f"exercise {self.name} needs a port", f"add a [ports.NAME] table to {lab.source}")
        return lab.ports[min(self.pick, len(lab.ports) - 1)]

    def injections(self, lab: Lab, backend: Backend) -> list[tuple[str, list[str]]]:
        return self.inject(lab, backend, self.port(lab))

    def told(self, lab: Lab, text: str) -> str:
        p = self.port(lab)
        return text.format(port=p.name, netns=p.netns, node=p.node)


WRONG_ENCAP = "external_ids:ovn-encap-ip=10.99.0.2"  # an address that is on no lab subnet


def _no_room(lab: Lab, backend: Backend, p: Port) -> list[tuple[str, list[str]]]:
    """Every address of the port's subnet excluded but those the other ports hold (northd drops an
    allocation that falls into exclude_ips), and the port's own allocation cleared: northd finds none."""
    net = ipaddress.ip_network(next(s.subnet for s in lab.switches if s.name == p.switch))
    got = Observer(lab, backend).allocations()
    held = {ipaddress.ip_address(a.ip) for port, a in got.items() if a.ip and port != p.name}
    free = [a for a in net.hosts() if a not in held]
    ranges, start = [], free[0]
    for a, b in zip(free, [*free[1:], None], strict=True):
        if b is None or int(b) != int(a) + 1:
            ranges.append(f"{start}..{a}" if a != start else str(start))
            start = b  # type: ignore[assignment]
    central = lab.central.name
    return [
        (central, ["ovn-nbctl", "set", "logical_switch", p.switch, f'other_config:exclude_ips="{" ".join(ranges)}"']),
        (central, ["ovn-nbctl", "clear", "logical_switch_port", p.name, "dynamic_addresses"]),
        (p.node, ["ip", "-n", p.netns, "addr", "flush", "dev", p.name]),
    ]


def _unused_mac(lab: Lab) -> str:
    taken = {p.mac for p in lab.ports}
    return next(m for i in range(0x99, 0xFF) if (m := f"c0:ff:ee:00:00:{i:02x}") not in taken)


EXERCISES = {
    e.name: e
    for e in (
        Exercise(
            "wrong-mac",
            "{netns} lost its network after someone 'tidied up' its interface.",
            "Compare the MAC of {port} inside {netns} with the logical port's addresses (ovn-nbctl show).",
            "mac",
            0,
            lambda lab, _, p: [(p.node, ["ip", "-n", p.netns, "link", "set", p.name, "address", _unused_mac(lab)])],
        ),
        Exercise(
            "no-dhcp-options",
            "{netns} never gets an address when it asks again.",
            "Which DHCP_Options row does each logical switch port reference? (ovn-nbctl list logical_switch_port)",
            "dhcpv4_options",
            1,
            lambda lab, _, p: [
                (lab.central.name, ["ovn-nbctl", "clear", "logical_switch_port", p.name, "dhcpv4_options"])
            ],
        ),
        Exercise(
            "controller-stopped",
            "{netns} cannot reach anyone, and ovn-sbctl show looks odd.",
            "Is ovn-controller running and connected on every chassis? (ovn-appctl -t ovn-controller "
            "connection-status)",
            "controller",
            2,
            lambda lab, backend, p: [(p.node, stop_argv(backend.services, "ovn-controller"))],
        ),
        Exercise(
            "wrong-encap-ip",
            "Traffic between hosts stopped after a config change on {node}.",
            "Compare external_ids:ovn-encap-ip with the node's underlay address, and the Encap rows in ovn-sbctl show.",
            "encap",
            0,
            lambda lab, _, p: [
                (p.node, ["ovs-vsctl", "set", "open_vswitch", ".", "external_ids:ovn-encap-ip=10.99.0.2"])
            ],
        ),
        Exercise(
            "port-not-bound",
            "ovn-sbctl show no longer lists {port} under any chassis.",
            "ovn-controller binds an OVS interface to a logical port by its external_ids:iface-id.",
            "unbound",
            2,
            lambda lab, _, p: [(p.node, ["ovs-vsctl", "set", "interface", p.name, "external_ids:iface-id=port-typo"])],
        ),
        Exercise(
            "acl-drops-dhcp",
            "{netns} lost its address and does not get it back, though {port}'s DHCP options look right.",
            "Trace its request: `invoke trace {netns} {netns} --proto dhcp`. Which stage drops it, and which NB "
            "row made that logical flow? (ovn-nbctl acl-list)",
            "acl",
            1,
            lambda lab, _, p: [
                (
                    lab.central.name,
                    [
                        "ovn-nbctl",
                        "acl-add",
                        p.switch,
                        "from-lport",
                        "1002",
                        f'inport == "{p.name}" && udp.dst == 67',
                        "drop",
                    ],
                ),
                (p.node, ["ip", "-n", p.netns, "addr", "flush", "dev", p.name]),
            ],
        ),
        Exercise(
            "port-security",
            "{netns} reaches no one since a security review of {port}.",
            "Trace a ping from it: `invoke trace {netns} <another VM>`. In which stage does the packet stop, "
            "and which MAC does that stage allow? (ovn-nbctl lsp-get-port-security {port})",
            "port_security",
            0,
            lambda lab, _, p: [(lab.central.name, ["ovn-nbctl", "lsp-set-port-security", p.name, _unused_mac(lab)])],
        ),
        Exercise(
            "no-free-address",
            "{netns} was set up anew and gets no address; the other VMs keep theirs.",
            "Trace its request: `invoke trace {netns} {netns} --proto dhcp`: is there a put_dhcp_opts for {port}? "
            "Then compare its dynamic_addresses with the switch's other_config:exclude_ips.",
            "no_address",
            2,
            _no_room,
        ),
    )
}


def list_exercises() -> None:
    for e in EXERCISES.values():
        console.print(f"[bold]{e.name:<20}[/] {e.story.format(port='a port', netns='a VM', node='a host')}")


@changes_lab("exercise.start")
def start(config: str | Path, name: str) -> None:
    lab, backend = open_up_lab(config)
    if name not in EXERCISES:
        raise UnknownName("exercise", name, tuple(EXERCISES))
    bad = [f for f in run_checks(lab, backend) if not f.ok]
    if bad:
        raise LabError(f"the lab must pass `invoke check` before an exercise starts ({bad[0].what})", "invoke demo")
    e = EXERCISES[name]
    for node, argv in e.injections(lab, backend):
        r = backend.run(node, argv)
        if not r.ok:
            raise StageFailed(f"{node}: injecting {name} failed: {r.stderr.strip()}")
    backend.state.start_exercise(name)
    console.print(
        f"exercise [bold]{name}[/] started: {e.told(lab, e.story)}\nfind it with `invoke check`; "
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
    lab, _, name = _running(config)
    console.print(EXERCISES[name].told(lab, EXERCISES[name].hint), highlight=False, markup=False)


@changes_lab("exercise.solve")
def solve(config: str | Path) -> None:
    """Repair: no ACLs or port security (the lab makes none), then the provisioner: the chassis settings,
    the NB objects, the bindings and the leases."""
    lab, backend = open_up_lab(config)
    central = lab.central.name
    for sw in lab.switches:  # what the lab never makes: ACLs and port security
        backend.run(central, ["ovn-nbctl", "acl-del", sw.name])
    for p in lab.ports:
        backend.run(central, ["ovn-nbctl", "lsp-set-port-security", p.name])
    with Provisioner(lab, backend) as provisioner:
        provisioner.run_all(lab.node_names, ["chassis", "controller"])
        provisioner.run(central, ["logical"])
        for n in lab.node_names:
            if lab.ports_on(n):
                provisioner.run(n, ["bind", "dhcp"])
    backend.state.end_exercise()
    console.print("repaired; `invoke check` shows the state")
