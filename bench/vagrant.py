"""vagrant backend, in one run (minutes under TCG; root or the libvirt group, libvirtd running; builds the
box first where it is missing):

1. anchor: Vagrant's own create and boot of the lab's VMs, the same box and Vagrantfile without the seed
   disks (so the box's first-boot unit has nothing to do), then teardown;
2. `invoke up` (the VMs configure themselves as they boot; up proves the gates), with its stages; 1 and 2
   alternate for --rounds (the host's speed drifts by more than the goal's margin), the ratio the median;
3. `invoke demo`, beside the sum of the commands it ran on the nodes: the transcript's commands replayed
   after `demo --reset`, each node's commands of a section in one bash, each timed inside the node; the
   demo and its replay alternate for --rounds too, the overhead the median;
4. a second `up` and `demo` (the ssh path: nothing to change), the guest-command round trip, teardown;
5. with --probe: the probe's tuned shell provisioner (../shared/probes/vagrant) on the same box.

Usage: python3 bench/vagrant.py [--rounds N] [--probe]"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from common import ROOT, SHARED, invoke, lab_toml, save, timed

sys.path.insert(0, str(ROOT))


def probe(tmp: Path) -> float:
    """The probe's lab/Vagrantfile and shell provisioner, on our box, in a VAGRANT_HOME qemu can read."""
    from labgen.backends.vagrant.box import box_file

    lab = tmp / "probe-lab"
    shutil.copytree(SHARED / "probes/vagrant/lab", lab)
    vf = lab / "Vagrantfile"
    vf.write_text(vf.read_text().replace("/tmp/vagrant-probe/lab", str(lab)))
    env = dict(os.environ, VAGRANT_HOME=str(tmp / "vagrant.d"), VAGRANT_CWD=str(lab))
    os.chmod(tmp, 0o755)
    timed(["vagrant", "box", "add", "--name", "local/bookworm-ovn", str(box_file("ovn-lab/bookworm"))], env=env)
    try:
        dt, _ = timed(["vagrant", "up", "--provider=libvirt"], env=env)
    finally:
        timed(["vagrant", "destroy", "-f"], env=env, check=False)
        for net in ("ovn-lab", "vagrant-mgmt"):
            timed(["virsh", "-c", "qemu:///system", "net-destroy", net], check=False)
            timed(["virsh", "-c", "qemu:///system", "net-undefine", net], check=False)
        out = timed(["virsh", "-c", "qemu:///system", "vol-list", "default"], check=False)[1]
        for vol in re.findall(r"^\s*(local-VAGRANTSLASH-bookworm-ovn\S*)", out, re.M):
            timed(["virsh", "-c", "qemu:///system", "vol-delete", "--pool", "default", vol], check=False)
    return dt


def vagrant_alone(config: Path) -> float:
    """`vagrant up` of the lab's own Vagrantfile with no seed disks: Vagrant's create and boot, nothing of
    ours after it. Torn down with `invoke teardown`, which sweeps what it made."""
    from labgen.backends.vagrant.backend import VagrantBackend
    from labgen.load import load_lab

    backend = VagrantBackend(load_lab(config))
    backend.seeds = dict  # type: ignore[method-assign]  # the anchor boots the box as it is
    backend.state.remember(backend.name)
    backend.render()
    try:
        dt, _ = timed(["vagrant", "up", "--provider=libvirt"], cwd=backend.state.dir, env=backend.env())
    finally:
        invoke("teardown", config=config, check=False)
    return dt


PORTS_UP = (  # waits until $1 logical ports are up
    'until [ "$(ovn-nbctl --bare --columns=up list logical_switch_port | grep -c true)" = "$1" ]; do sleep .1; done'
)
COMMAND = re.compile(r"^(?P<node>[\w.-]+) # (?P<cmd>(?!: ok).+)$")


def transcript(out: str, nodes: Sequence[str]) -> list[tuple[str, str, list[str]]]:
    """The demo's output as (section, node, commands), in order: the commands as the trainee would type
    them (`node # command` lines; no `: ok` lines, no heredocs)."""
    runs: list[tuple[str, str, list[str]]] = []
    section = ""
    for line in out.splitlines():
        if line.startswith("## ") or line.startswith("## Checks"):
            section = line
            continue
        m = COMMAND.match(line)
        if not m or m["node"] not in nodes or "<<'EOF'" in m["cmd"]:
            continue
        if runs and runs[-1][:2] == (section, m["node"]):
            runs[-1][2].append(m["cmd"])
        else:
            runs.append((section, m["node"], [m["cmd"]]))
    return runs


def replay(config: Path, runs: list[tuple[str, str, list[str]]]) -> tuple[float, int]:
    """Run the demo's commands again, after `demo --reset`: each node's commands of a section in one bash on
    the node, each timed there (EPOCHREALTIME). Between sections, untimed, what the demo waits for: every
    chassis applied the NB and, before dhclient, every port is up. Returns (the commands' time, count)."""
    from labgen.lab import open_lab

    invoke("demo", "--reset", config=config)
    lab, backend = open_lab(config)
    ports = len(lab.ports)
    total, count = 0.0, 0
    for _section, node, cmds in runs:
        if any("dhclient" in c for c in cmds):
            backend.run(lab.central.name, ["timeout", "60", "bash", "-c", PORTS_UP, "bash", str(ports)], timeout=90)
        backend.run(lab.central.name, ["ovn-nbctl", "--wait=hv", "--timeout=60", "sync"], timeout=90)
        script = "".join(f's=$EPOCHREALTIME; {c} >/dev/null 2>&1; echo "took $s $EPOCHREALTIME $?"\n' for c in cmds)
        r = backend.run(node, ["bash", "-s"], input=script, timeout=300)  # typed in, as a trainee would
        for m in re.finditer(r"^took (\S+) (\S+) (\d+)$", r.stdout, re.M):
            total += float(m[2]) - float(m[1])
            count += 1
    return total, count


def round_trip(config: Path, n: int = 20) -> float:
    from labgen.lab import open_lab

    _, backend = open_lab(config)
    times = []
    for _ in range(n):
        t0 = time.monotonic()
        assert backend.run("ovn-host-01", ["true"]).ok
        times.append(time.monotonic() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--probe", action="store_true", help="also the probe's tuned shell provisioner")
    ap.add_argument(
        "--rounds", type=int, default=3, help="anchor and up, demo and its replay: alternated (the host's speed drifts)"
    )
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="ovnlab-vbench-"))
    res: dict[str, object] = {}
    config = lab_toml(tmp / "vbench", "vbench")
    invoke("box", config=config)  # untimed: builds the box only where it is missing
    anchors: list[float] = []
    ups: list[float] = []
    try:
        for i in range(args.rounds):  # the last round's lab stays up for the demo
            anchors.append(vagrant_alone(config))
            t_up, out = invoke("up", "--backend", "vagrant", config=config)
            ups.append(t_up)
            print(f"round {i + 1}: anchor {anchors[-1]:.1f} s, invoke up {t_up:.1f} s = {t_up / anchors[-1]:.2f} x")
            if i < args.rounds - 1:
                invoke("teardown", config=config)
        stages = {m[1]: float(m[2]) for m in re.finditer(r"^✓ (.+?) \(([\d.]+) s\)$", out, re.M)}
        booted = "configured as they booted" in out
        from labgen.load import load_lab

        demos: list[float] = []
        sums: list[float] = []
        for i in range(args.rounds):  # the demo and its commands replayed alternate too
            if i:
                invoke("demo", "--reset", config=config)
            t_demo, demo_out = invoke("demo", config=config)
            node_sum, commands = replay(config, transcript(demo_out, load_lab(config).node_names))
            demos.append(t_demo)
            sums.append(node_sum)
            print(f"demo round {i + 1}: demo {t_demo:.1f} s, its {commands} commands {node_sum:.1f} s on the nodes")
        t_up2, _ = invoke("up", config=config)
        t_demo2, _ = invoke("demo", config=config)
        rt = round_trip(config)
    finally:
        t_down, _ = invoke("teardown", config=config, check=False)
    if args.probe:
        res["probe_vagrant_up"] = probe(tmp)
        print(f"probe: vagrant up (3 VMs + tuned shell provisioning): {res['probe_vagrant_up']:.1f} s", flush=True)
    res.update(
        configured_at_boot=booted,
        stages=stages,
        invoke_demo=demos,
        demo_commands=commands,
        demo_commands_sum=sums,
        second_up=t_up2,
        second_demo=t_demo2,
        round_trip_median=rt,
        teardown=t_down,
    )
    up_ratio = statistics.median(u / a for u, a in zip(ups, anchors, strict=True))
    res.update(anchors=anchors, ups=ups, up_ratio_median=up_ratio)
    print(
        f"invoke up: median {statistics.median(ups):.1f} s, anchor median {statistics.median(anchors):.1f} s; "
        f"ratio, median of {len(ups)} rounds: {up_ratio:.2f} x (goal <= 1.3); configured at boot: {booted}"
    )
    for name, dt in stages.items():
        print(f"  {dt:7.1f} s  {name}")
    overhead = statistics.median(d / s - 1 for d, s in zip(demos, sums, strict=True))
    res.update(demo_overhead_median=overhead)
    print(
        f"invoke demo: median {statistics.median(demos):.1f} s; its {commands} commands took median "
        f"{statistics.median(sums):.1f} s on the nodes; overhead, median of {len(demos)} rounds: "
        f"{overhead * 100:+.0f} % (goal <= +20 %)"
    )
    print(f"second up {t_up2:.1f} s, second demo {t_demo2:.1f} s (nothing to change)")
    print(f"guest command round trip (`true` over ssh with ControlMaster): median {rt:.3f} s")
    print(f"invoke teardown: {t_down:.1f} s")
    print(f"results: {save('vagrant', res)}")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
