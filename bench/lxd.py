"""A seat on each engine, side by side in one run: N seats brought up with the demo on the `accounts` engine,
then on the `lxd` engine (a container each, on this host's LXD), for each N given, and for each the time to
ready (split into making the seats, which for LXD is the containers' start, and their labs), the time to
remove, the room's idle CPU (its seats' processes over a quiet window, LXD's daemon and monitors beside),
and the memory (PSS) per seat. A container seat's memory is split into its lab and tmux (the seat's
user) and the container's own system (its systemd, journald, udev, networkd, sshd) plus LXD's monitor of
it; LXD's own figure (the container's cgroup, page cache included) is given beside. The anchor: the account
seat, whose PSS is its lab and tmux only. The seat image must be imported (`invoke classroom.image`).

Usage (root, after scripts/setup --lxd): python3 bench/lxd.py [--seats 10,30]"""

from __future__ import annotations

import argparse
import json
import os
import pwd
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from classroom import processes
from common import ROOT, save

ENGINES = {"accounts": ("baseat", 24722, 29180), "lxd": ("blseat", 24822, 29280)}  # prefix, ssh, web port
SETTLE = 10.0  # seconds after up before memory is read: the labs' daemons past their start
IDLE = 10.0  # the quiet window over which the room's idle CPU is read


def config(tmp: Path, engine: str) -> Path:
    prefix, ssh, web = ENGINES[engine]
    text = (ROOT / "lab.toml").read_text().replace('backend = "vagrant"', 'backend = "netns"')
    text += f'\n[classroom]\nprefix = "{prefix}"\nengine = "{engine}"\nssh_port = {ssh}\nweb_port = {web}\n'
    path = tmp / f"{engine}.toml"
    path.write_text(text)
    return path


def task(cfg: Path | None, *args: str) -> tuple[float, str]:
    t0 = time.monotonic()
    config = ["--config", str(cfg)] if cfg else []
    r = subprocess.run([sys.executable, "-m", "invoke", args[0], *config, *args[1:]], cwd=ROOT,
                       capture_output=True, text=True, check=False)  # fmt: skip
    if r.returncode:
        sys.exit(f"invoke {' '.join(args)} failed ({r.returncode}):\n{r.stdout[-3000:]}\n{r.stderr[-2000:]}")
    return time.monotonic() - t0, r.stdout


def ticks(pids: set[int]) -> int:
    """utime + stime of `pids`, in clock ticks."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total


def idle_cpu(groups: dict[str, set[int]]) -> dict[str, float]:
    """Cores each group of processes used over IDLE seconds of a room nobody types in."""
    before = {k: ticks(v) for k, v in groups.items()}
    time.sleep(IDLE)
    hz = os.sysconf("SC_CLK_TCK")
    return {k: (ticks(v) - before[k]) / hz / IDLE for k, v in groups.items()}


def seat_pids(engine: str, prefix: str, n: int) -> dict[str, set[int]]:
    """The seats' processes, and for LXD its daemon and the containers' monitors apart."""
    if engine == "accounts":
        uids = {pwd.getpwnam(f"{prefix}{i:03d}").pw_uid for i in range(1, n + 1)}
        return {"seats": {pid for pid, uid, _, _ in processes() if uid in uids}}
    project = f"ovn-classroom-{prefix}"
    seats, lxd = set(), set()
    for pid, _, comm, _ in processes():
        if f"lxc.payload.{project}_" in cgroup_of(pid):
            seats.add(pid)
        elif comm == "lxd" or (cmdline(pid).startswith("[lxc monitor]") and project in cmdline(pid)):
            lxd.add(pid)
    return {"seats": seats, "lxd": lxd}


def cgroup_of(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cgroup").read_text()
    except OSError:
        return ""


def account_pss(prefix: str, n: int) -> list[float]:
    """MiB of PSS per seat: every process of the seat's account (its lab, its tmux)."""
    uids = {pwd.getpwnam(f"{prefix}{i:03d}").pw_uid: i for i in range(1, n + 1)}
    per = dict.fromkeys(uids.values(), 0)
    for _, uid, _, kib in processes():
        if uid in uids:
            per[uids[uid]] += kib
    return [per[i] / 1024 for i in sorted(per)]


def container_pss(prefix: str, n: int) -> dict[str, list[float]]:
    """MiB of PSS per seat: the seat user's processes (lab, tmux), the container's system, LXD's monitor."""
    project = f"ovn-classroom-{prefix}"
    users = {}  # the host uid of each seat's user (uid 1000 in its container, whose ids start at Hostid)
    for i in range(1, n + 1):
        inst = json.loads(subprocess.run(["lxc", "query", f"/1.0/instances/{prefix}{i:03d}?project={project}"],
                                         capture_output=True, text=True, check=True).stdout)  # fmt: skip
        idmap = json.loads(inst["config"]["volatile.idmap.current"])
        users[i] = next(m["Hostid"] for m in idmap if m["Isuid"]) + 1000
    lab = [0] * n
    system = [0] * n
    monitor = [0] * n
    for pid, uid, _, kib in processes():
        cg = cgroup_of(pid)
        for i in range(1, n + 1):
            name = f"{project}_{prefix}{i:03d}"
            if f"lxc.payload.{name}" in cg:
                (lab if uid == users[i] else system)[i - 1] += kib
            elif cmdline(pid).startswith("[lxc monitor]") and cmdline(pid).split()[-1:] == [name]:
                monitor[i - 1] += kib
    lxd = []
    for i in range(1, n + 1):
        state = json.loads(subprocess.run(["lxc", "query", f"/1.0/instances/{prefix}{i:03d}/state?project={project}"],
                                          capture_output=True, text=True, check=True).stdout)  # fmt: skip
        lxd.append(state["memory"]["usage"] / 2**20)
    mib = lambda xs: [x / 1024 for x in xs]  # noqa: E731
    return {"lab": mib(lab), "system": mib(system), "monitor": mib(monitor), "lxd_cgroup": lxd}


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def run(engine: str, n: int, tmp: Path) -> dict[str, Any]:
    cfg = config(tmp, engine)
    prefix = ENGINES[engine][0]
    image = task(None, "classroom.image")[0] if engine == "lxd" else 0.0  # again: the last down deleted it
    try:
        up, out = task(cfg, "classroom.up", "--seats", str(n), "--demo")
        made = float(m[1]) if (m := re.search(r"seats made in ([\d.]+) s", out)) else float("nan")
        time.sleep(SETTLE)
        cpu = idle_cpu(seat_pids(engine, prefix, n))
        mem: dict[str, list[float]] = (
            {"lab": account_pss(prefix, n)} if engine == "accounts" else container_pss(prefix, n)
        )
    finally:
        down = task(cfg, "classroom.down")[0]
    total = [sum(parts) for parts in zip(*(v for k, v in mem.items() if k != "lxd_cgroup"), strict=True)]
    figures = {"engine": engine, "seats": n, "image_s": image, "up_s": up, "made_s": made, "down_s": down}
    figures |= {f"idle_{k}_cores": v for k, v in cpu.items()}
    return {**figures, "pss_mib": statistics.mean(total), **{f"{k}_mib": statistics.mean(v) for k, v in mem.items()}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seats", default="5", help="seat counts, comma-separated (e.g. 10,30)")
    counts = [int(x) for x in ap.parse_args().seats.split(",")]
    with tempfile.TemporaryDirectory(prefix="bench-lxd-") as tmp:
        rows = [run(engine, n, Path(tmp)) for n in counts for engine in ENGINES]
    head = f"{'seats':>5} {'engine':9} {'image s':>8} {'made s':>7} {'up s':>6} {'down s':>7} {'idle cores':>11}"
    print("seats with the demo, side by side (anchor: the account seat of the same count)")
    print(f"{head} {'PSS/seat MiB':>13} {'x anchor':>9}  split (MiB)")
    for r in rows:
        anchor = next(a for a in rows if a["seats"] == r["seats"] and a["engine"] == "accounts")
        split = ", ".join(f"{k[:-4]} {v:.1f}" for k, v in r.items() if k.endswith("_mib") and k != "pss_mib")
        ratio = r["pss_mib"] / anchor["pss_mib"]
        idle = f"{r['idle_seats_cores']:.3f}" + (f"+{r['idle_lxd_cores']:.3f}" if "idle_lxd_cores" in r else "")
        times = f"{r['image_s']:8.1f} {r['made_s']:7.1f} {r['up_s']:6.1f} {r['down_s']:7.1f} {idle:>11}"
        print(f"{r['seats']:5} {r['engine']:9} {times} {r['pss_mib']:13.1f} {ratio:9.2f}  {split}")
    print("idle cores: the seats' processes (+ LXD's daemon and monitors), over a quiet window")
    print(f"saved: {save('lxd', {'seats': counts, 'rows': rows})}")


if __name__ == "__main__":
    main()
