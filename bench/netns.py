"""netns backend: nothing -> 3 leases -> teardown for `invoke up --backend netns && invoke demo`, side by
side in one run with the shell probe (../shared/probes/netns/lab.sh), plus a 10-host, 30-port lab and the
memory the lab's daemons use.  Usage (root): python3 bench/netns.py [--runs N]"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from common import SHARED, invoke, lab_pss_kib, lab_toml, save, summary, timed


def pss_kib(state: Path) -> int:
    """PSS of every daemon and dhclient of the lab, by the pidfiles in the nodes' private /run."""
    total = 0
    for pf in state.glob("nodes/*/run/**/*.pid"):
        try:
            rollup = Path(f"/proc/{int(pf.read_text())}/smaps_rollup").read_text()
            total += int(re.search(r"^Pss:\s+(\d+)", rollup, re.M)[1])  # type: ignore[index]
        except (OSError, ValueError, TypeError):
            continue
    return total


def busy() -> float:
    """CPU seconds all processes used so far, on every core (from /proc/stat)."""
    ticks = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")  # all but idle and iowait


def ours(config: Path) -> dict[str, float]:
    cpu = busy()
    t_up, _ = invoke("up", "--backend", "netns", config=config)
    t_demo, out = invoke("demo", config=config)
    cpu = busy() - cpu
    m = re.search(r"demo done in ([\d.]+) s", out)
    mem = sum(lab_pss_kib(config.parent / ".lab" / config.parent.name))  # its PID namespace, keeper included
    t_down, _ = invoke("teardown", config=config)
    return {
        "up": t_up,
        "demo": t_demo,
        "leases": t_up + t_demo,
        "teardown": t_down,
        "pss_mib": mem / 1024,
        "demo_inner": float(m[1]) if m else 0.0,
        "cpu": cpu,
    }


def startup() -> float:
    """What every `invoke` task pays before doing anything: the interpreter and invoke's own imports."""
    t, _ = timed([sys.executable, "-m", "invoke", "--version"])
    return t


def probe() -> dict[str, float]:
    _, out = timed(["bash", str(SHARED / "probes/netns/lab.sh")])
    leases = float(re.search(r"TIME nothing->3 leases: ([\d.]+)s", out)[1])  # type: ignore[index]
    down = float(re.search(r"TIME teardown: ([\d.]+)s", out)[1])  # type: ignore[index]
    # its CPU for the same span: lab.sh's own scripts up to the leases (lab.sh also checks and measures)
    d = SHARED / "probes/netns"
    cpu = busy()
    timed(["bash", "-c", '"$1"/up.sh && "$1"/nb.sh && "$1"/vms.sh', "bash", str(d)])
    cpu = busy() - cpu
    timed(["bash", str(d / "down.sh")])
    return {"leases": leases, "teardown": down, "cpu": cpu}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="ovnlab-bench-"))
    small = lab_toml(tmp / "bench3", "bench3")
    big = lab_toml(tmp / "bench10", "bench10", hosts=10, ports_per_host=3)
    res: dict[str, list[dict[str, float]]] = {"ours": [], "probe": [], "big": [], "startup": []}
    for i in range(args.runs):  # interleaved, so both see the same machine load
        res["probe"].append(probe())
        res["ours"].append(ours(small))
        res["startup"].append({"invoke": startup()})
        print(f"run {i + 1}: probe {res['probe'][-1]}  ours {res['ours'][-1]}", flush=True)
    res["big"].append(ours(big))
    print()
    print("nothing -> 3 leases (+ trace and pings for ours):")
    print(f"  shell probe lab.sh          {summary([r['leases'] for r in res['probe']])}")
    print(f"  invoke up --backend netns   {summary([r['up'] for r in res['ours']])}")
    print(f"  invoke demo                 {summary([r['demo'] for r in res['ours']])}")
    print(f"  up + demo                   {summary([r['leases'] for r in res['ours']])}")
    print(f"  of which invoke's start-up  {summary([2 * r['invoke'] for r in res['startup']])} (2 x invoke --version)")
    print("CPU used meanwhile, all processes on both cores (up.sh + nb.sh + vms.sh for the probe):")
    print(f"  shell probe                 {summary([r['cpu'] for r in res['probe']])}")
    print(f"  up + demo                   {summary([r['cpu'] for r in res['ours']])}")
    print("teardown:")
    print(f"  shell probe down.sh         {summary([r['teardown'] for r in res['probe']])}")
    print(f"  invoke teardown             {summary([r['teardown'] for r in res['ours']])}")
    pss = summary([r["pss_mib"] for r in res["ours"]]).replace(" s", " MiB")
    print(f"memory (PSS of the lab's PID namespace: daemons, dhclients, keeper): {pss}")
    b = res["big"][0]
    print(
        f"11 nodes (central + 10 hosts), 30 ports: up {b['up']:.2f} s, demo {b['demo']:.2f} s "
        f"(29 pings included), teardown {b['teardown']:.2f} s, PSS {b['pss_mib']:.0f} MiB"
    )
    print(f"results: {save('netns', res)}")
    subprocess.run(["rm", "-rf", str(tmp)])


if __name__ == "__main__":
    main()
