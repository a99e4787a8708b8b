"""Helpers for the bench scripts: timed commands, generated labs, a results file. Numbers, not asserts."""

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
RESULTS = ROOT / "bench" / "results"


def timed(
    argv: list[str], *, cwd: Path = ROOT, env: dict[str, str] | None = None, check: bool = True
) -> tuple[float, str]:
    t0 = time.monotonic()
    r = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True)
    dt = time.monotonic() - t0
    if check and r.returncode:
        sys.exit(f"{' '.join(argv)} failed ({r.returncode}):\n{r.stdout[-3000:]}\n{r.stderr[-2000:]}")
    return dt, r.stdout + r.stderr


def invoke(*args: str, config: Path, check: bool = True) -> tuple[float, str]:
    return timed([sys.executable, "-m", "invoke", args[0], "--config", str(config), *args[1:]], check=check)


def lab_toml(path: Path, name: str, hosts: int = 2, ports_per_host: int = 0) -> Path:
    """The tutorial lab, or a bigger one: central + `hosts` chassis with `ports_per_host` ports each."""
    if ports_per_host == 0:
        text = (ROOT / "lab.toml").read_text().replace('name = "ovn-lab"', f'name = "{name}"')
    else:
        lines = [
            f'[lab]\nname = "{name}"\n[underlay]\nsubnet = "192.168.1.0/24"\n',
            '[nodes.central]\nip = "192.168.1.10"\ncentral = true\n',
        ]
        lines += [f'[nodes.h{i:02d}]\nip = "192.168.1.{11 + i}"\n' for i in range(hosts)]
        lines.append(
            '[switches.net0]\nsubnet = "10.0.0.0/24"\nexclude_ips = "10.0.0.1..10.0.0.10"\n'
            '[switches.net0.dhcp]\nlease_time = 3600\nrouter = "10.0.0.1"\nserver_id = "10.0.0.1"\n'
            'server_mac = "c0:ff:ee:00:00:01"\n'
        )
        for i in range(hosts):
            for j in range(ports_per_host):
                n = i * ports_per_host + j
                lines.append(
                    f'[ports.p{n}]\nswitch = "net0"\nnode = "h{i:02d}"\nnetns = "vm{n}"\n'
                    f'mac = "c0:ff:ee:00:01:{n:02x}"\n'
                )
        text = "\n".join(lines)
    path.mkdir(parents=True, exist_ok=True)
    (path / "lab.toml").write_text(text)
    return path / "lab.toml"


def summary(values: list[float]) -> str:
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.2f} s"
    return f"median {statistics.median(values):.2f} s (min {min(values):.2f}, max {max(values):.2f}, n={len(values)})"


def save(name: str, data: dict[str, object]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps(data, indent=1) + "\n")
    return out


def pss_of(pid: int) -> int:
    try:
        return int(re.search(r"^Pss:\s+(\d+)", Path(f"/proc/{pid}/smaps_rollup").read_text(), re.M)[1])  # type: ignore[index]
    except (OSError, TypeError):
        return 0


def lab_pss_kib(state: Path) -> tuple[int, int]:
    """(daemons + dhclients, the keeper's own: unshare, tini, sleep) of a rootless lab, in KiB: every
    process of its PID namespace, seen from the host."""
    sys.path.insert(0, str(ROOT))  # labgen: to find a lab's keeper
    from labgen.backends.netns.keeper import MARK

    want = f"{MARK}={state.resolve()}".encode()
    keeper = None
    for entry in os.listdir("/proc"):  # any user's (keeper.keepers() lists only this user's)
        try:
            env = Path(f"/proc/{entry}/environ").read_bytes().split(b"\0") if entry.isdigit() else []
            if want in env and Path(f"/proc/{entry}/comm").read_text().strip() == "tini":
                keeper = int(entry)
        except OSError:
            continue
    if keeper is None:
        return 0, 0
    ns = os.stat(f"/proc/{keeper}/ns/pid").st_ino
    parent = int(Path(f"/proc/{keeper}/stat").read_text().rsplit(") ", 1)[1].split()[1])
    lab = own = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            inside = os.stat(f"/proc/{entry}/ns/pid").st_ino == ns
            comm = Path(f"/proc/{entry}/comm").read_text().strip()
        except OSError:
            continue
        if inside and comm not in ("tini", "sleep"):
            lab += pss_of(int(entry))
        elif inside or int(entry) == parent:
            own += pss_of(int(entry))
    return lab, own
