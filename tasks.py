"""invoke tasks for the OVN DHCP workshop lab. Each task parses its flags and calls one labgen function."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from invoke import Collection, task

CONFIG = os.environ.get("OVN_LAB_CONFIG", "lab.toml")
CONFIG_HELP = "path of lab.toml (default: lab.toml, or $OVN_LAB_CONFIG)"


@contextmanager
def user_errors() -> Iterator[None]:
    """Bad input and failed gates print as messages with an exit code, never as tracebacks."""
    from labgen.gates import GateTimeout
    from labgen.load import LabInvalid
    from labgen.orchestrate import LabError
    from labgen.ui import console

    try:
        yield
    except LabInvalid as e:
        for issue in e.issues:
            console.print(f"[red]error:[/] {issue.line(e.source)}", markup=True, highlight=False)
        sys.exit(2)
    except GateTimeout as e:
        console.print(f"[red]✗ {e}[/]", highlight=False)
        console.print("what the lab shows now:", style="bold")
        console.print(e.dump, markup=False, highlight=False)
        sys.exit(1)
    except (LabError, RuntimeError) as e:
        console.print(f"[red]✗[/] {e}", highlight=False)
        sys.exit(1)
    except KeyboardInterrupt:
        console.print("\ninterrupted: `invoke up` finishes the lab, `invoke teardown` removes it")
        sys.exit(130)


def _call(fn: Callable[..., Any], *args: Any, **kw: Any) -> Any:
    with user_errors():
        return fn(*args, **kw)


@task(
    help={
        "backend": "vagrant (libvirt VMs) or netns (namespaces on this host); remembered for later tasks",
        "config": CONFIG_HELP,
        "verbose": "show every provisioning command and its output",
    }
)
def up(c, backend=None, config=CONFIG, verbose=False):
    """Bring the lab up: nodes, Open vSwitch, OVN central, chassis and geneve tunnels (tutorial steps 1-3)."""
    from labgen.orchestrate import up as do_up

    _call(do_up, config, backend, verbose=verbose)


@task(
    help={
        "config": CONFIG_HELP,
        "verbose": "also log every command to the console",
        "step": "pause before each tutorial step with a short explanation (trainer presses Enter)",
        "transcript": "write the run as Markdown (node, command, output) to this file",
        "reset": "remove what the demo made (NB objects, ports, namespaces, dhclients); keep the nodes",
    }
)
def demo(c, config=CONFIG, verbose=False, step=False, transcript=None, reset=False):
    """Perform tutorial steps 4-8: net0 with DHCP, ports, ovn-trace, namespaces vm1..3 with leases, pings."""
    from labgen.orchestrate import demo as do_demo
    from labgen.orchestrate import demo_reset

    if reset:
        _call(demo_reset, config)
    else:
        _call(do_demo, config, verbose=verbose, step=step, transcript=transcript)


@task(help={"config": CONFIG_HELP, "json": "print machine-readable JSON"})
def status(c, config=CONFIG, json_=False):
    """Show nodes, chassis with encap IPs, tunnels, port bindings and leases."""
    from labgen.orchestrate import status as do_status
    from labgen.ui import print_status

    st = _call(do_status, config)
    if json_:
        print(json.dumps(st, indent=1, sort_keys=True))
    else:
        print_status(st)


@task(
    name="exec",
    help={"node": "node name, e.g. ovn-host-01", "command": "shell command run as root", "config": CONFIG_HELP},
)
def exec_(c, node, command, config=CONFIG):
    """Run COMMAND with /bin/sh as root on NODE: its own output and exit code, nothing added."""
    from labgen.orchestrate import exec_argv

    argv = _call(exec_argv, config, node, command)
    sys.stdout.flush()
    os.execvp(argv[0], argv)


@task(help={"node": "node name, e.g. ovn-host-01", "config": CONFIG_HELP})
def ssh(c, node, config=CONFIG):
    """Open an interactive root shell on NODE."""
    from labgen.orchestrate import exec_argv

    argv = _call(exec_argv, config, node, None)
    os.execvp(argv[0], argv)


@task(help={"config": CONFIG_HELP, "box": "vagrant: also remove the lab's box and its libvirt volume"})
def teardown(c, config=CONFIG, box=False):
    """Remove everything the lab made: nodes, daemons, namespaces, libvirt domains/networks/volumes, state."""
    from labgen.orchestrate import teardown as do_teardown

    _call(do_teardown, config, box=box)


@task(help={"config": CONFIG_HELP})
def render(c, config=CONFIG):
    """Render Vagrantfile.j2 for lab.toml into the lab's state directory, check it with `vagrant validate`."""
    from labgen.orchestrate import render as do_render

    print(_call(do_render, config))


@task(
    help={
        "name": "box name (default: vagrant.box of lab.toml)",
        "force": "rebuild even if the .box file exists",
        "config": CONFIG_HELP,
    }
)
def box(c, name=None, force=False, config=CONFIG):
    """Build the lab's Debian 12 box locally (debootstrap, OVS/OVN preinstalled) and add it to Vagrant."""
    from labgen.box import build_box
    from labgen.load import load_lab

    lab = _call(load_lab, config)
    _call(build_box, name or lab.vagrant.box, force=force)


@task
def setup(c):
    """Install the host prerequisites (apt + pip), start libvirtd, join the libvirt group. Safe to run twice."""
    os.execvp("bash", ["bash", os.path.join(os.path.dirname(os.path.abspath(__file__)), ".ci", "setup")])


@task(help={"config": CONFIG_HELP})
def doctor(c, config=CONFIG):
    """Check this host for the lab: KVM/TCG, libvirt, vagrant, storage, RAM, box, subnets, leftovers."""
    from labgen.doctor import doctor as do_doctor

    if not _call(do_doctor, config):
        sys.exit(1)


@task(help={"config": CONFIG_HELP})
def check(c, config=CONFIG):
    """Verify the lab and say what is wrong and why (controller, chassis, tunnels, DHCP, bindings, leases, MTU)."""
    from labgen.check import report, run_checks
    from labgen.orchestrate import open_up_lab

    def go() -> bool:
        lab, b = open_up_lab(config)
        return report(run_checks(lab, b))

    if not _call(go):
        sys.exit(1)


# `invoke exercise.list`, `exercise.start NAME`, `exercise.check`, `exercise.hint`, `exercise.solve`
@task(name="list")
def exercise_list(c):
    """List the break-fix exercises."""
    from labgen.exercises import list_exercises

    list_exercises()


@task(name="start", help={"name": "exercise name (invoke exercise.list)", "config": CONFIG_HELP})
def exercise_start(c, name, config=CONFIG):
    """Inject the exercise's fault into a lab that passes `invoke check`."""
    from labgen.exercises import start

    _call(start, config, name)


@task(name="check", help={"config": CONFIG_HELP})
def exercise_check(c, config=CONFIG):
    """Is the running exercise solved? (the same diagnoses as `invoke check`)"""
    from labgen.exercises import check as ex_check

    if not _call(ex_check, config):
        sys.exit(1)


@task(name="hint", help={"config": CONFIG_HELP})
def exercise_hint(c, config=CONFIG):
    """A hint for the running exercise."""
    from labgen.exercises import hint as ex_hint

    _call(ex_hint, config)


@task(name="solve", help={"config": CONFIG_HELP})
def exercise_solve(c, config=CONFIG):
    """Repair the lab with the provisioner (what `up` and `demo` would do)."""
    from labgen.exercises import solve as ex_solve

    _call(ex_solve, config)


@task(help={"config": CONFIG_HELP, "out": "directory for lab.svg/lab.png (default: the lab's state directory)"})
def graph(c, config=CONFIG, out=None):
    """Draw the live lab (Graphviz SVG + PNG): nodes, geneve mesh, switches, ports, bindings, leases."""
    from pathlib import Path

    from labgen.graph import render as do_render
    from labgen.orchestrate import open_up_lab
    from labgen.orchestrate import status as do_status

    def go() -> list:
        lab, _ = open_up_lab(config)
        return do_render(lab, do_status(config), Path(out) if out else lab.state_dir)

    for p in _call(go):
        print(p)


@task(
    help={
        "node": "node name",
        "geneve": "capture the underlay's geneve traffic (default)",
        "port": "capture a logical port inside its namespace instead, e.g. port1",
        "seconds": "how long (default 10)",
        "config": CONFIG_HELP,
    }
)
def capture(c, node, geneve=True, port=None, seconds=10, config=CONFIG):
    """Capture packets on NODE into a pcap in the lab's state dir, with a summary showing the geneve header."""
    from labgen.access import capture as do_capture

    _call(do_capture, config, node, port=port, seconds=int(seconds))


@task(positional=["action"], help={"action": "save | restore", "config": CONFIG_HELP})
def snapshot(c, action, config=CONFIG):
    """Save or restore the lab (VMs: vagrant snapshots of every VM; netns: rebuild, with the demo if it ran)."""
    from labgen.access import snapshot as do_snapshot

    _call(do_snapshot, config, action)


@task(name="ssh-config", help={"config": CONFIG_HELP})
def ssh_config(c, config=CONFIG):
    """Print an ssh_config with a Host per node (VMs or netns): save it, then `ssh -F FILE ovn-host-01` works."""
    from labgen.access import ssh_config as do_ssh_config

    print(_call(do_ssh_config, config), end="")


ns = Collection(
    up, demo, status, exec_, ssh, teardown, render, box, setup, doctor, check, graph, capture, snapshot, ssh_config
)
ns.add_collection(Collection("exercise", exercise_list, exercise_start, exercise_check, exercise_hint, exercise_solve))
