"""python3 -m provision [--plan FILE|-] [--dry-run] STEP [STEP ...]
python3 -m provision facts NAME[:ARG] ...     (print facts as JSON, for debugging)

The plan is the node's JSON spec (default: standard input)."""

from __future__ import annotations

import json
import sys

from .core import Facts, Runner, StepFailed, load_spec
from .facts import FACTS
from .steps import STEPS


def main(argv: list) -> int:
    # parsed by hand: argparse would cost ~8 ms on every one of the many runs a lab makes
    if argv[:1] == ["facts"]:
        facts = Facts(FACTS)
        json.dump({k: facts[k] for k in argv[1:]}, sys.stdout, indent=1, sort_keys=True, default=str)
        print()
        return 0
    plan, dry_run, steps = "-", False, []
    args = iter(argv)
    for a in args:
        if a in ("-h", "--help"):
            print(f"{__doc__}\nsteps: {', '.join(STEPS)}")
            return 0
        if a == "--plan":
            plan = next(args, "-")
        elif a.startswith("--plan="):
            plan = a.split("=", 1)[1]
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
    spec = load_spec(plan)
    runner = Runner(spec["node"], Facts(FACTS), dry_run=dry_run)
    for name in steps:
        try:
            runner.run_step(name, STEPS[name], spec)
        except StepFailed as e:
            print(f"{spec['node']}: step {name} failed: {e}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
