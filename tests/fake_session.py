"""A fake `python3 -m provision --session` for the fake tier: the real protocol (a JSON line of steps and
plan in; output lines and END + exit code out), no commands. Each batch is logged with its times, and a
step can be told to fail or to take a while.  Usage: fake_session.py CONTROL.json NODE"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from provision.core import END, prompt


def main(control_path: str, node: str) -> int:
    for line in sys.stdin:
        control = json.loads(Path(control_path).read_text())  # read per batch: a test may change it
        req = json.loads(line)
        assert req["plan"]["node"] == node, (req["plan"]["node"], node)
        start, rc = time.time(), 0
        for step in req["steps"]:
            time.sleep(control["delay"].get(node, {}).get(step, 0))
            rc = control["fail"].get(node, {}).get(step, 0)
            if rc:
                print(f"{node}: step {step} failed: a fault the test injected", flush=True)
                break
            print(prompt(node, f": ok, {step} (fake)"), flush=True)
        with open(control["log"], "a") as log:
            log.write(json.dumps({"node": node, "steps": req["steps"], "start": start, "end": time.time(), "rc": rc}))
            log.write("\n")
        print(f"{END}{rc}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
