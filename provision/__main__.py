"""python3 -m provision [--plan FILE|-] [--dry-run] STEP [STEP ...]
python3 -m provision facts NAME[:ARG] ...     (print facts as JSON, for debugging)
python3 -m provision --session                (step batches from labgen, see session())
python3 -m provision --first-boot FILE        (the box's first-boot unit, see first_boot())
python3 -m provision pcap IFACE SECONDS [PORT] (a pcap on stdout, see pcap.py)

The plan is the node's JSON dict, as labgen.plan builds it (default: standard input)."""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from .core import END, Facts, Plan, Runner, StepFailed, load_plan
from .facts import FACTS, FIRST_BOOT_LOG
from .steps import STEPS


def run_steps(plan: Plan, steps: list[str], dry_run: bool = False, err: Any = None, out: Any = None) -> int:
    runner = Runner(plan["node"], Facts(FACTS), out=out, dry_run=dry_run)
    for name in steps:
        try:
            runner.run_step(name, STEPS[name], plan)
        except StepFailed as e:
            print(f"{plan['node']}: step {name} failed: {e}", file=err or sys.stderr, flush=True)
            return 1
    return 0


def session() -> int:
    """One python3 for all the steps labgen runs on this node in one task: a JSON line
    {"steps": [...], "plan": {...}} in, the steps' output and a line END + exit code out, until EOF.
    Under TCG each python3 start (and ssh login) saved is a fraction of a second."""
    for line in sys.stdin:
        req = json.loads(line)
        bad = unknown(req["steps"])
        rc = 2 if bad else run_steps(req["plan"], req["steps"], err=sys.stdout)  # in order with the output
        if bad:
            print(bad, flush=True)
        print(f"{END}{rc}", flush=True)
    return 0


def unknown(steps: list[str]) -> str | None:
    """What to say when a request names steps this provisioner has not (None: it has them all)."""
    bad = [s for s in steps if s not in STEPS]
    return f"python3 -m provision: unknown steps {bad}; steps: {', '.join(STEPS)}" if bad else None


class Tee:
    """The steps' output to the unit's stdout (journal and console) and to FIRST_BOOT_LOG."""

    def __init__(self, *files: Any):
        self.files = files

    def write(self, text: str) -> None:
        for f in self.files:
            f.write(text)

    def flush(self) -> None:
        for f in self.files:
            f.flush()


def first_boot(path: str) -> int:
    """The box's first-boot unit (ovn-lab-first-boot.service) runs this with the request the host put on
    the node's seed disk: {"steps": [...], "plan": {...}}, the steps `invoke up` would run over ssh."""
    with open(path) as f:
        req = json.load(f)
    os.makedirs(os.path.dirname(FIRST_BOOT_LOG), exist_ok=True)
    with open(FIRST_BOOT_LOG, "a") as log:
        out = Tee(sys.stdout, log)
        bad = unknown(req["steps"])
        if bad:
            out.write(bad + "\n")
            return 2
        return run_steps(req["plan"], req["steps"], err=out, out=out)


def main(argv: list) -> int:
    # parsed by hand: argparse would cost ~8 ms on every one of the many runs a lab makes
    if argv == ["--session"]:
        return session()
    if argv[:1] == ["--first-boot"] and len(argv) == 2:
        return first_boot(argv[1])
    if argv[:1] == ["pcap"]:
        from .pcap import main as pcap

        return pcap(argv[1:])
    if argv[:1] == ["facts"]:
        facts = Facts(FACTS)
        json.dump({k: facts[k] for k in argv[1:]}, sys.stdout, indent=1, sort_keys=True, default=str)
        print()
        return 0
    plan_path, dry_run, steps = "-", False, []
    args = iter(argv)
    for a in args:
        if a in ("-h", "--help"):
            print(f"{__doc__}\nsteps: {', '.join(STEPS)}")
            return 0
        if a == "--plan":
            plan_path = next(args, "-")
        elif a.startswith("--plan="):
            plan_path = a.split("=", 1)[1]
        elif a == "--dry-run":
            dry_run = True
        elif a in STEPS:
            steps.append(a)
        else:
            print(f"python3 -m provision: unknown step or option {a!r}; steps: {', '.join(STEPS)}", file=sys.stderr)
            return 2
    if not steps:
        print(__doc__, file=sys.stderr)
        return 2
    return run_steps(load_plan(plan_path), steps, dry_run)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
