"""python3 -m provision [--plan FILE|-] [--dry-run] STEP [STEP ...]
python3 -m provision facts NAME[:ARG] ...     (print facts as JSON, for debugging)
python3 -m provision --session                (step batches from labgen, see session())
python3 -m provision pcap IFACE SECONDS [PORT] (a pcap on stdout, see pcap.py)

The plan is the node's JSON dict, as labgen.plan builds it (default: standard input)."""

from __future__ import annotations

import json
import sys
from typing import Any

from .core import END, Facts, Plan, Runner, StepFailed, load_plan
from .facts import FACTS
from .steps import STEPS


def run_steps(plan: Plan, steps: list[str], dry_run: bool = False, err: Any = None) -> int:
    runner = Runner(plan["node"], Facts(FACTS), dry_run=dry_run)
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
        bad = [s for s in req["steps"] if s not in STEPS]
        rc = 2 if bad else run_steps(req["plan"], req["steps"], err=sys.stdout)  # in order with the output
        if bad:
            print(f"python3 -m provision: unknown steps {bad}; steps: {', '.join(STEPS)}", flush=True)
        print(f"{END}{rc}", flush=True)
    return 0


def main(argv: list) -> int:
    # parsed by hand: argparse would cost ~8 ms on every one of the many runs a lab makes
    if argv == ["--session"]:
        return session()
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
