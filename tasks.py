"""invoke tasks for the OVN DHCP workshop lab. Each task parses its flags and calls one labgen function."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from invoke import task

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


@task(help={"config": CONFIG_HELP, "verbose": "also log every command to the console"})
def demo(c, config=CONFIG, verbose=False):
    """Perform tutorial steps 4-8: net0 with DHCP, ports, ovn-trace, namespaces vm1..3 with leases, pings."""
    from labgen.orchestrate import demo as do_demo

    _call(do_demo, config, verbose=verbose)


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
