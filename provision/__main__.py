"""python3 -m provision [--plan FILE|-] [--dry-run] STEP [STEP ...]
python3 -m provision facts NAME[:ARG] ...     (print facts as JSON, for debugging)"""

from __future__ import annotations

import argparse
import json
import sys

from .core import Facts, Runner, StepFailed, load_spec
from .facts import FACTS
from .steps import STEPS


def main(argv: list) -> int:
    if argv[:1] == ["facts"]:
        facts = Facts(FACTS)
        json.dump({k: facts[k] for k in argv[1:]}, sys.stdout, indent=1, sort_keys=True, default=str)
        print()
        return 0
    ap = argparse.ArgumentParser(prog="python3 -m provision", description=__doc__)
    ap.add_argument("--plan", default="-", help="the node's plan as JSON (default: standard input)")
    ap.add_argument("--dry-run", action="store_true", help="print the commands without running them")
    ap.add_argument("steps", nargs="+", choices=list(STEPS), metavar="STEP", help=", ".join(STEPS))
    args = ap.parse_args(argv)
    spec = load_spec(args.plan)
    runner = Runner(spec["node"], Facts(FACTS), dry_run=args.dry_run)
    for name in args.steps:
        try:
            runner.run_step(name, STEPS[name], spec)
        except StepFailed as e:
            print(f"{spec['node']}: step {name} failed: {e}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
