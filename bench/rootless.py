"""Rootless netns labs, side by side in one run: `invoke up --backend netns && invoke demo` as an ordinary
user, the same code as root, the root-only design it replaced (a git worktree of --anchor, as root), and
the shell probe (../shared/probes/netns/lab.sh). Then a curve: 1, 5, 10 and 20 labs, each brought up at
once by a user of its own (the same lab name and subnets for all): wall time, PSS per lab, idle CPU.

Usage (root: it creates the bench users ovnlab-b01..): python3 bench/rootless.py --python VENV_PYTHON
VENV_PYTHON must be a python with the dependencies that every user may run (a venv under a 0755 home)."""

from __future__ import annotations

import argparse
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, lab_pss_kib, lab_toml, save, summary, timed
from netns import busy, probe

sys.path.insert(0, str(ROOT))  # labgen: to find a lab's keeper

CURVE = (1, 5, 10, 20)


def user(n: int) -> str:
    name = f"ovnlab-b{n:02d}"
    try:
        pwd.getpwnam(name)
    except KeyError:
        subprocess.run(["useradd", "--no-create-home", "--home-dir", "/nonexistent", name], check=True)
    return name


def run_as(who: str | None, argv: list[str], cwd: Path) -> list[str]:
    return argv if who is None else ["runuser", "-u", who, "--", *argv]


def one(python: str, code: Path, config: Path, who: str | None) -> dict[str, float]:
    def task(*args: str) -> float:
        argv = run_as(who, [python, "-m", "invoke", args[0], "--config", str(config), *args[1:]], code)
        return timed(argv, cwd=code)[0]

    cpu = busy()
    t_up = task("up", "--backend", "netns")
    t_demo = task("demo")
    cpu = busy() - cpu
    state = config.parent / ".lab" / config.parent.name
    lab, own = lab_pss_kib(state)
    if not lab:  # the root-only design: its daemons are host processes, found by their pidfiles
        from netns import pss_kib

        lab = pss_kib(state)
    t_down = task("teardown")
    return {"up": t_up, "demo": t_demo, "leases": t_up + t_demo, "teardown": t_down, "pss_mib": lab / 1024,
            "keeper_mib": own / 1024, "cpu": cpu}  # fmt: skip


def curve(python: str, code: Path, tmp: Path, n: int) -> dict[str, float]:
    """n users bring up a lab each (name ovn-lab, 192.168.1.0/24 for all) at once."""
    labs = []
    for i in range(1, n + 1):
        who = user(i)
        config = lab_toml(tmp / f"curve{n}" / who / "ovn-lab", "ovn-lab")
        shutil.chown(config.parent.parent, who)
        shutil.chown(config.parent, who)
        shutil.chown(config, who)
        labs.append((who, config))

    def all_of(*task: str) -> float:
        t0 = time.monotonic()
        procs = [
            subprocess.Popen(
                run_as(who, [python, "-m", "invoke", task[0], "--config", str(c), *task[1:]], code),
                cwd=code,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
            for who, c in labs
        ]
        bad = [(p.args, p.communicate()[1][-500:]) for p in procs if p.wait()]
        if bad:
            sys.exit(f"{task[0]} failed for {len(bad)} of {n} labs: {bad[0]}")
        return time.monotonic() - t0

    t_up = all_of("up", "--backend", "netns")
    t_demo = all_of("demo")
    time.sleep(2)  # let the last DHCP and ping traffic settle
    pss = [sum(lab_pss_kib(c.parent / ".lab" / "ovn-lab")) for _, c in labs]
    cpu = busy()
    time.sleep(10)
    idle = (busy() - cpu) / 10
    t_down = all_of("teardown")
    return {"labs": n, "up_all": t_up, "demo_all": t_demo, "teardown_all": t_down,
            "pss_mib_per_lab": sum(pss) / len(pss) / 1024, "idle_cores": idle}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--python", required=True, help="a venv python every bench user may run")
    ap.add_argument("--anchor", default="71ba2d9", help="the last commit of the root-only netns design")
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root: it creates the bench users and runs the root-only anchor")
    tmp = Path(tempfile.mkdtemp(prefix="ovnlab-rootless-"))
    tmp.chmod(0o755)
    code = tmp / "code"  # a copy every bench user can read (the checkout may be under a private home)
    shutil.copytree(ROOT, code, ignore=shutil.ignore_patterns(".git", ".lab", ".venv", "__pycache__", "results"))
    anchor = tmp / "anchor"
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(anchor), args.anchor], check=True)
    me = user(1)
    res: dict[str, list[dict[str, float]]] = {"user": [], "root": [], "anchor": [], "probe": [], "curve": []}
    try:
        for i in range(args.runs):  # interleaved: all four see the same machine load
            for kind, who, where in (("user", me, code), ("root", None, code), ("anchor", None, anchor)):
                config = lab_toml(tmp / f"{kind}{i}" / "bench3", "bench3")
                if who:
                    for p in (config.parent.parent, config.parent, config):
                        shutil.chown(p, who)
                python = args.python if kind != "anchor" else sys.executable
                res[kind].append(one(python, where, config, who))
            res["probe"].append(probe())
            print(
                f"run {i + 1}: "
                + "  ".join(f"{k} {res[k][-1]['leases']:.2f}" for k in ("user", "root", "anchor", "probe")),
                flush=True,
            )
        for n in CURVE:
            res["curve"].append(curve(args.python, code, tmp, n))
            print(f"curve: {res['curve'][-1]}", flush=True)
    finally:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(anchor)])
    print("\nnothing -> 3 leases (up + demo):")
    for k, what in (
        ("user", "rootless, as a user"),
        ("root", "same code, as root"),
        ("anchor", f"root-only design ({args.anchor})"),
        ("probe", "shell probe lab.sh"),
    ):
        print(f"  {what:<34} {summary([r['leases'] for r in res[k]])}")
    print("memory (PSS of daemons + dhclients; + the keeper's unshare, tini, sleep):")
    for k in ("user", "root", "anchor"):
        print(f"  {k:<8} {summary([r['pss_mib'] for r in res[k]]).replace(' s', ' MiB')}"
              f"  keeper {summary([r['keeper_mib'] for r in res[k]]).replace(' s', ' MiB')}")  # fmt: skip
    print("teardown:")
    for k in ("user", "root", "anchor"):
        print(f"  {k:<8} {summary([r['teardown'] for r in res[k]])}")
    print("labs at once, one user each: labs, up (all), demo (all), PSS per lab, idle CPU (cores)")
    for c in res["curve"]:
        times = f"{c['up_all']:6.2f} s  {c['demo_all']:6.2f} s"
        print(f"  {c['labs']:>3}  {times}  {c['pss_mib_per_lab']:5.1f} MiB  {c['idle_cores']:.2f}")
    print(f"results: {save('rootless', res)}")
    subprocess.run(["rm", "-rf", str(tmp)])


if __name__ == "__main__":
    main()
