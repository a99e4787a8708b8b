"""invoke tasks for the OVN DHCP workshop lab. Each task parses its flags and makes one labgen call
(`labgen.cli.call`, which turns a LabError into one line and an exit code)."""

from __future__ import annotations

import os

from invoke import Collection, task

from labgen.cli import call

CONFIG = os.environ.get("OVN_LAB_CONFIG", "lab.toml")
CONFIG_HELP = "path of lab.toml (default: lab.toml, or $OVN_LAB_CONFIG)"


@task(
    help={
        "backend": "vagrant (libvirt VMs) or netns (namespaces on this host); remembered for later tasks",
        "config": CONFIG_HELP,
        "verbose": "show every provisioning command and its output",
    }
)
def up(c, backend=None, config=CONFIG, verbose=False):
    """Bring the lab up: nodes, Open vSwitch, OVN central, chassis and geneve tunnels (tutorial steps 1-3)."""
    call("labgen.up:up", config, backend, verbose=verbose)


@task(
    help={
        "config": CONFIG_HELP,
        "verbose": "also log every command to the console",
        "step": "pause before each tutorial step with a short explanation (trainer presses Enter)",
        "transcript": "write the run as Markdown (node, command, output) to this file",
        "reset": "remove what the demo made (NB objects, ports, namespaces, dhclients); keep the nodes",
        "explain": "after each step, what OVN made of it in full: logical flows, bindings, OpenFlow, tunnel",
    }
)
def demo(c, config=CONFIG, verbose=False, step=False, transcript=None, reset=False, explain=False):
    """Perform tutorial steps 4-8: net0 with DHCP, ports, ovn-trace, namespaces vm1..3 with leases, pings."""
    call("labgen.demo:demo", config, verbose=verbose, step=step, transcript=transcript, reset=reset, explain=explain)


@task(help={"config": CONFIG_HELP, "json": "print machine-readable JSON"})
def status(c, config=CONFIG, json_=False):
    """Show nodes, chassis with encap IPs, tunnels, port bindings and leases."""
    call("labgen.workshop.status:show_status", config, as_json=json_)


@task(
    name="exec",
    help={"node": "node name, e.g. ovn-host-01", "command": "shell command run as root", "config": CONFIG_HELP},
)
def exec_(c, node, command, config=CONFIG):
    """Run COMMAND with /bin/sh as root on NODE: its own output and exit code, nothing added."""
    call("labgen.lab:exec_on", config, node, command)


@task(help={"node": "node name, e.g. ovn-host-01", "config": CONFIG_HELP})
def ssh(c, node, config=CONFIG):
    """Open an interactive root shell on NODE."""
    call("labgen.lab:exec_on", config, node, None)


@task(help={"config": CONFIG_HELP, "box": "vagrant: also remove the lab's box and its libvirt volume"})
def teardown(c, config=CONFIG, box=False):
    """Remove everything the lab made: nodes, daemons, namespaces, libvirt domains/networks/volumes, state."""
    call("labgen.lab:teardown", config, box=box)


@task(help={"config": CONFIG_HELP, "backend": "the backend whose files to render (default: the lab's)"})
def render(c, config=CONFIG, backend=None):
    """Render Vagrantfile.j2 for lab.toml into the lab's state directory, check it with `vagrant validate`."""
    call("labgen.lab:render", config, backend)


@task(
    help={
        "name": "box name (default: vagrant.box of lab.toml)",
        "force": "rebuild even if the .box file exists",
        "config": CONFIG_HELP,
    }
)
def box(c, name=None, force=False, config=CONFIG):
    """Build the lab's Debian 12 box locally (debootstrap, OVS/OVN preinstalled) and add it to Vagrant."""
    call("labgen.backends.vagrant.box:build_lab_box", config, name, force=force)


@task(
    help={
        "dir": "the bundle's folder (e.g. on a USB stick)",
        "verify": "check DIR against its manifest: names each missing or damaged file",
        "config": CONFIG_HELP,
    }
)
def bundle(c, dir, verify=False, config=CONFIG):
    """Everything setup downloads (packages, wheels, npm, box, seat image) into DIR: scripts/setup --from DIR."""
    call("labgen.bundle:main", dir, config, verify)


@task
def setup(c):
    """Install the host prerequisites (apt, and pip into .venv), start libvirtd, join the libvirt group (sudo)."""
    os.execvp("bash", ["bash", os.path.join(os.path.dirname(os.path.abspath(__file__)), "scripts", "setup")])


@task(help={"config": CONFIG_HELP})
def validate(c, config=CONFIG):
    """Check lab.toml without starting anything: every problem, one line each with the key and the fix."""
    call("labgen.load:validate_file", config)


@task(help={"config": CONFIG_HELP})
def doctor(c, config=CONFIG):
    """Check this host for the lab: KVM/TCG, libvirt, vagrant, storage, RAM, box, subnets, leftovers."""
    call("labgen.doctor:doctor", config)


@task(help={"config": CONFIG_HELP})
def check(c, config=CONFIG):
    """Verify the lab and say what is wrong and why (controller, chassis, tunnels, DHCP, bindings, leases, MTU)."""
    call("labgen.workshop.check:check", config)


# `invoke exercise.list`, `exercise.start NAME`, `exercise.check`, `exercise.hint`, `exercise.solve`
@task(name="list")
def exercise_list(c):
    """List the break-fix exercises."""
    call("labgen.workshop.exercises:list_exercises")


@task(name="start", help={"name": "exercise name (invoke exercise.list)", "config": CONFIG_HELP})
def exercise_start(c, name, config=CONFIG):
    """Inject the exercise's fault into a lab that passes `invoke check`."""
    call("labgen.workshop.exercises:start", config, name)


@task(name="check", help={"config": CONFIG_HELP})
def exercise_check(c, config=CONFIG):
    """Is the running exercise solved? (the same diagnoses as `invoke check`)"""
    call("labgen.workshop.exercises:check", config)


@task(name="hint", help={"config": CONFIG_HELP})
def exercise_hint(c, config=CONFIG):
    """A hint for the running exercise."""
    call("labgen.workshop.exercises:hint", config)


@task(name="solve", help={"config": CONFIG_HELP})
def exercise_solve(c, config=CONFIG):
    """Repair the lab with the provisioner (what `up` and `demo` would do)."""
    call("labgen.workshop.exercises:solve", config)


TRACE_HELP = {
    "src": "the sending port or its namespace, e.g. vm1",
    "dst": "the receiving port or namespace, e.g. vm3 (with --proto dhcp: any, OVN answers)",
    "proto": "icmp (default), udp or dhcp",
}


@task(
    help={
        "config": CONFIG_HELP,
        "out": "directory for lab.svg/lab.png (default: the lab's state directory)",
        **{k: f"with --src and --dst, one packet's path drawn over it: {v}" for k, v in TRACE_HELP.items()},
    }
)
def graph(c, config=CONFIG, out=None, src=None, dst=None, proto="icmp"):
    """Draw the live lab (Graphviz SVG + PNG): nodes, geneve mesh, switches, ports, bindings, leases."""
    call("labgen.workshop.graph:graph", config, out, src=src, dst=dst, proto=proto)


@task(
    help={
        **TRACE_HELP,
        "full": "every table and action, not only those that decide something",
        "config": CONFIG_HELP,
    }
)
def trace(c, src, dst, proto="icmp", full=False, config=CONFIG):
    """One packet SRC -> DST: the logical pipelines (ovn-trace), then OpenFlow on each chassis (ovn-detrace)."""
    call("labgen.workshop.trace:trace", config, src, dst, proto=proto, full=full)


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
    call("labgen.workshop.capture:capture", config, node, port=port, seconds=seconds)


@task(positional=["action"], help={"action": "save | restore", "config": CONFIG_HELP})
def snapshot(c, action, config=CONFIG):
    """Save or restore the lab (VMs: vagrant snapshots of every VM; netns: rebuild, with the demo if it ran)."""
    call("labgen.workshop.snapshot:snapshot", config, action)


@task(name="ssh-config", help={"config": CONFIG_HELP})
def ssh_config(c, config=CONFIG):
    """Print an ssh_config with a Host per node (VMs or netns): save it, then `ssh -F FILE ovn-host-01` works."""
    call("labgen.lab:ssh_config", config)


# `invoke classroom.up --seats N`, `classroom.down`, `.status`, `.reset`, `.exercise`, `.cards` (as root, via sudo)
@task(
    name="up",
    help={
        "seats": "how many seats (a higher number adds seats)",
        "demo": "also run the demo in each seat's lab",
        "engine": "where seats live: accounts or lxd (default: engine of [classroom])",
        "target": "the LXD cluster member that new seats go on (lxd engine; default: LXD places them)",
        "config": CONFIG_HELP,
    },
)
def classroom_up(c, seats=None, config=CONFIG, demo=False, engine=None, target=None):
    """Make N seats: a lab (and its demo) and a terminal each, as accounts here or LXD containers."""
    call("labgen.classroom.actions:up", config, seats, demo=demo, engine=engine, member=target)


@task(name="down", help={"config": CONFIG_HELP})
def classroom_down(c, config=CONFIG):
    """Remove every seat (account or container) with its lab, what reaches the seats, and the state."""
    call("labgen.classroom.actions:down", config)


@task(name="status", help={"config": CONFIG_HELP, "json": "print machine-readable JSON"})
def classroom_status(c, config=CONFIG, json_=False):
    """One row per seat: its lab, chassis, bindings, leases and terminal."""
    call("labgen.classroom.actions:status", config, as_json=json_)


@task(name="reset", help={"seat": "seat name or number", "all": "every seat", "config": CONFIG_HELP})
def classroom_reset(c, seat=None, all_=False, config=CONFIG):
    """Take a seat's lab (or every seat's) back to just after up."""
    call("labgen.classroom.actions:reset", config, seat, all_=all_)


@task(
    name="exercise",
    help={"name": "exercise name", "seat": "seat name or number", "all": "every seat", "config": CONFIG_HELP},
)
def classroom_exercise(c, name, seat=None, all_=False, config=CONFIG):
    """Start exercise NAME in one seat's lab or every seat's; a seat with nothing to break yet says so."""
    call("labgen.classroom.actions:exercise", config, name, seat, all_=all_)


@task(name="cards", help={"config": CONFIG_HELP})
def classroom_cards(c, config=CONFIG):
    """One card per seat: the URL and its join code, as Markdown and as printable HTML."""
    call("labgen.classroom.actions:cards", config)


lab_tasks = [up, demo, status, exec_, ssh, teardown, render, box, bundle, setup, validate, doctor, check]
ns = Collection(*lab_tasks, graph, trace, capture, snapshot, ssh_config)
ns.add_collection(Collection("exercise", exercise_list, exercise_start, exercise_check, exercise_hint, exercise_solve))


@task(
    name="serve",
    help={
        "port": "the web app's port (default: web_port of [classroom])",
        "tls": "HTTPS with the classroom's own CA (as tls = true in [classroom])",
        "config": CONFIG_HELP,
    },
)
def classroom_serve(c, port=None, tls=False, config=CONFIG):
    """Run the classroom's web app (seat pages with a terminal, the trainer's dashboard) as its own account."""
    call("labgen.classroom.actions:serve", config, port, https=tls)


@task(name="progress", help={"config": CONFIG_HELP})
def classroom_progress(c, config=CONFIG):
    """As a seat: the tutorial's steps, each ticked when the live lab shows its state (JSON, for the web app)."""
    call("labgen.classroom.progress:show", config)


@task(name="image", help={"force": "rebuild even if the image file exists"})
def classroom_image(c, force=False):
    """Build the LXD seat image once (debootstrap, as root; cached) and import it into LXD (needs setup --lxd)."""
    call("labgen.classroom.seatimage:image", force=force)


classroom = [classroom_up, classroom_down, classroom_status, classroom_reset, classroom_exercise, classroom_cards]
classroom += [classroom_serve, classroom_progress, classroom_image]
ns.add_collection(Collection("classroom", *classroom))
