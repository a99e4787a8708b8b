"""The classroom, room by room: 5, 10, 20 and 30 seats brought up with the demo (`invoke classroom.up --seats N
--demo`), each figure beside its goal: time to ready, PSS per seat, idle CPU of the seats and of the web app,
CPU seconds per seat beside the shell probe's for one lab (../shared/probes/netns/lab.sh), keystroke echo
latency with every seat's terminal open at once (websocket clients, as the browser), and how long a seat's
change takes to reach the trainer's dashboard. The classroom is `bseat`, on ports of its own, on 127.0.0.1.

Usage (root): python3 bench/classroom.py [--seats 5,10,20,30] [--quick]"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import pwd
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import WSMsgType
from common import ROOT, SHARED, save, timed

sys.path.insert(0, str(ROOT))  # labgen: the seats' cgroups

PREFIX, SSH_PORT, WEB_PORT = "bseat", 23722, 29080
URL = f"http://127.0.0.1:{WEB_PORT}"
STATE = Path("/var/lib/ovn-classroom") / PREFIX / "state"
CGROUP = Path("/sys/fs/cgroup")
GOALS = {"ready": 45.0, "pss": 70.0, "idle": 0.25, "echo_p95": 50.0, "dashboard": 2.0}
CHARS = "xyzwvq"  # typed one at a time: letters no escape sequence of tmux ends with
IDLE = 10.0  # seconds over which idle CPU is measured


class Meter:
    """CPU seconds of a process tree, by a cgroup of its own that the tree's processes inherit: cpuacct on a v1
    host (the seats' limits move them only in the memory and pids hierarchies), the unified tree on v2 (where
    the seats' own cgroups are counted too, since their processes move there)."""

    def __init__(self, name: str):
        self.v2 = (CGROUP / "cgroup.controllers").exists()
        self.dir = CGROUP / (name if self.v2 else f"cpuacct/{name}")
        self.dir.mkdir(exist_ok=True)

    def enter(self) -> None:
        """Move the calling process in (a subprocess's preexec_fn)."""
        (self.dir / "cgroup.procs").write_text(str(os.getpid()))

    def usage(self, seats: list[str] | None = None) -> float:
        if not self.v2:
            return int((self.dir / "cpuacct.usage").read_text()) / 1e9
        from labgen.classroom.limits import seat_dirs

        dirs = [self.dir, *(d for s in seats or [] for d in seat_dirs(PREFIX, s))]
        return sum(_usec(d / "cpu.stat") for d in dirs) / 1e6

    def remove(self) -> None:
        with contextlib.suppress(OSError):
            self.dir.rmdir()  # empty once everything it held has exited


def _usec(stat: Path) -> int:
    m = re.search(r"^usage_usec (\d+)", stat.read_text() if stat.exists() else "", re.M)
    return int(m[1]) if m else 0


def processes() -> list[tuple[int, int, str, int]]:
    """(pid, uid, comm, KiB of PSS) of every process (root sees them all under hidepid)."""
    out = []
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            uid = p.stat().st_uid
            comm = (p / "comm").read_text().strip()
            m = re.search(r"^Pss:\s+(\d+)", (p / "smaps_rollup").read_text(), re.M)
        except OSError:
            continue
        out.append((int(p.name), uid, comm, int(m[1]) if m else 0))
    return out


def outside(meter: Meter, uids: set[int]) -> int:
    """How many of the seats' processes are not in the meter's cgroup (their CPU would not be counted)."""
    if meter.v2:
        return 0
    want = f":/{meter.dir.name}"
    n = 0
    for pid, uid, _, _ in processes():
        with contextlib.suppress(OSError):
            line = next((ln for ln in Path(f"/proc/{pid}/cgroup").read_text().splitlines() if "cpuacct" in ln), "")
            n += uid in uids and not line.endswith(want)
    return n


def probe() -> dict[str, float]:
    """One lab by the shell probe: up.sh + nb.sh + vms.sh (what lab.sh does up to its leases), in a cgroup
    of its own, then down.sh."""
    d = SHARED / "probes/netns"
    meter = Meter("ovn-bench-probe")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    r = subprocess.run(
        ["bash", "-c", '"$1"/up.sh && "$1"/nb.sh && "$1"/vms.sh', "bash", str(d)],
        capture_output=True, text=True, preexec_fn=meter.enter, check=False,
    )  # fmt: skip
    wall = time.monotonic() - t0
    cpu = meter.usage()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    timed(["bash", str(d / "down.sh")])
    meter.remove()
    if r.returncode:
        sys.exit(f"the shell probe failed ({r.returncode}):\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}")
    rusage = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return {"leases": wall, "cpu": cpu, "cpu_rusage": rusage}


def config(tmp: Path) -> Path:
    text = (ROOT / "lab.toml").read_text().replace('backend = "vagrant"', 'backend = "netns"')
    text += f'\n[classroom]\nprefix = "{PREFIX}"\nlisten = "127.0.0.1"\nssh_port = {SSH_PORT}\nweb_port = {WEB_PORT}\n'
    (tmp / "lab.toml").write_text(text)
    return tmp / "lab.toml"


def task(cfg: Path, *args: str, preexec: Callable[[], None] | None = None) -> float:
    t0 = time.monotonic()
    argv = [sys.executable, "-m", "invoke", args[0], "--config", str(cfg), *args[1:]]
    r = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, preexec_fn=preexec, check=False)
    if r.returncode:
        sys.exit(f"invoke {' '.join(args)} failed ({r.returncode}):\n{r.stdout[-3000:]}\n{r.stderr[-2000:]}")
    return time.monotonic() - t0


def serve(cfg: Path, meter: Meter, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as f:
        proc = subprocess.Popen(
            [sys.executable, "-m", "invoke", "classroom.serve", "--config", str(cfg)],
            cwd=ROOT, stdout=f, stderr=f, preexec_fn=meter.enter,
        )  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            urllib.request.urlopen(f"{URL}/", timeout=2)
            return proc
        if proc.poll() is not None:
            break
        time.sleep(0.2)
    proc.terminate()
    sys.exit(f"classroom.serve did not answer on {URL}:\n{log.read_text()[-2000:]}")


async def login(http: aiohttp.ClientSession, path: str, form: dict[str, str]) -> str:
    """POST a login form, as the browser does; the session cookie it sets, for the Cookie header."""
    async with http.post(f"{URL}{path}", data=form, allow_redirects=False) as r:
        if r.status != 303 or "classroom" not in r.cookies:
            raise SystemExit(f"{path} answered {r.status} without a session")
        return f"classroom={r.cookies['classroom'].value}"


async def drain(ws: Any, quiet: float) -> bytes:
    """What the terminal sends until it has been quiet for `quiet` seconds."""
    got = b""
    while True:
        try:
            msg = await asyncio.wait_for(ws.receive(), quiet)
        except TimeoutError:
            return got
        if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.ERROR):
            raise SystemExit("a terminal closed while the bench read it")
        if isinstance(msg.data, bytes):
            got += msg.data


async def until(ws: Any, want: bytes, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        msg = await asyncio.wait_for(ws.receive(), deadline - time.monotonic())
        if isinstance(msg.data, bytes) and want in msg.data:
            return
        if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.ERROR):
            raise SystemExit("a terminal closed while the bench typed")
    raise SystemExit(f"no echo of {want!r} within {timeout} s")


async def typist(http: aiohttp.ClientSession, seat: str, code: str, keys: int) -> list[float]:
    """One browser terminal on the seat's page: join, open its websocket, type `keys` keystrokes one at a time
    (a letter, timed until it echoes, then a backspace), at a typist's pace."""
    cookie = await login(http, "/join", {"seat": seat, "code": code})
    headers = {"Cookie": cookie, "Origin": URL}
    times: list[float] = []
    async with http.ws_connect(f"{URL}/seat/{seat}/term", headers=headers) as ws:
        await drain(ws, 1.5)  # the screen tmux redraws on attach
        for i in range(keys):
            ch = CHARS[i % len(CHARS)]
            t0 = time.monotonic()
            await ws.send_str(json.dumps({"data": ch}))
            await until(ws, ch.encode())
            times.append((time.monotonic() - t0) * 1000)
            await ws.send_str(json.dumps({"data": "\x7f"}))
            await drain(ws, 0.15)
    return times


async def echo(seats: list[str], keys: int) -> list[float]:
    codes = json.loads((STATE / "join-codes.json").read_text())
    async with aiohttp.ClientSession() as http:
        runs = await asyncio.gather(*(typist(http, s, codes[s], keys) for s in seats))
    return [t for r in runs for t in r]


def ssh_argv(seat: str, command: str) -> list[str]:
    return [
        "ssh", "-T", "-p", str(SSH_PORT), "-i", str(STATE / "keys" / seat), "-o", "BatchMode=yes",
        "-o", "IdentitiesOnly=yes", "-o", f"UserKnownHostsFile={STATE / 'known_hosts'}", f"{seat}@127.0.0.1", command,
    ]  # fmt: skip


async def dashboard(seat: str, changes: int) -> list[float]:
    """The trainer's dashboard open; the seat adds a logical port (over ssh, as the seat); seconds from the
    command's return until the dashboard's pushed row for the seat lists it."""
    token = (STATE / "trainer-token").read_text().strip()
    took: list[float] = []
    async with aiohttp.ClientSession() as http:
        cookie = await login(http, "/trainer/login", {"token": token})
        async with http.ws_connect(f"{URL}/trainer/live", headers={"Cookie": cookie, "Origin": URL}) as ws:

            async def row(port: str | None, timeout: float) -> None:
                """Until a pushed row of the seat lists `port` (None: any row of the seat)."""
                deadline = time.monotonic() + timeout
                while True:
                    msg = await asyncio.wait_for(ws.receive(), max(0.01, deadline - time.monotonic()))
                    if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.ERROR):
                        raise SystemExit("the dashboard's websocket closed")
                    for r in json.loads(msg.data)["seats"]:
                        if r.get("seat") == seat and (port is None or port in r.get("ports", [])):
                            return

            await row(None, 120)  # the seat's row as it is
            for i in range(changes):
                port = f"benchp{i}"
                proc = await asyncio.create_subprocess_exec(
                    *ssh_argv(seat, f"invoke exec ovn-central-01 'ovn-nbctl lsp-add net0 {port}'"),
                    stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
                )  # fmt: skip
                _, err = await proc.communicate()
                if proc.returncode:
                    raise SystemExit(f"the change in {seat} failed: {err.decode()[-500:]}")
                t0 = time.monotonic()
                await row(port, 60)
                took.append(time.monotonic() - t0)
    return took


async def all_rows(seats: list[str], timeout: float = 600) -> None:
    """Until the dashboard has a row with steps for every seat."""
    token = (STATE / "trainer-token").read_text().strip()
    have: set[str] = set()
    async with aiohttp.ClientSession() as http:
        cookie = await login(http, "/trainer/login", {"token": token})
        async with http.ws_connect(f"{URL}/trainer/live", headers={"Cookie": cookie, "Origin": URL}) as ws:
            deadline = time.monotonic() + timeout
            while have != set(seats):
                msg = await asyncio.wait_for(ws.receive(), max(0.01, deadline - time.monotonic()))
                if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.ERROR):
                    raise SystemExit("the dashboard's websocket closed")
                have |= {r["seat"] for r in json.loads(msg.data)["seats"] if r.get("steps")}


def pct(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


def room(cfg: Path, n: int, keys: int, changes: int, probe_cpu: float) -> dict[str, Any]:
    seats = [f"{PREFIX}{i:03d}" for i in range(1, n + 1)]
    up, web = Meter("ovn-bench-room"), Meter("ovn-bench-web")
    proc: subprocess.Popen[bytes] | None = None
    try:
        t_ready = task(cfg, "classroom.up", "--seats", str(n), "--demo", preexec=up.enter)
        cpu_up = up.usage(seats)
        uids = {pwd.getpwnam(s).pw_uid: s for s in seats}
        escaped = outside(up, set(uids))
        time.sleep(3)  # the demo's last DHCP and ping traffic
        room0 = up.usage(seats)
        time.sleep(IDLE)
        idle_seats = (up.usage(seats) - room0) / IDLE  # the labs' daemons, the classroom's sshd
        labs_only = [sum(k for _, u, _, k in processes() if u == uid) / 1024 for uid in uids]
        proc = serve(cfg, web, cfg.parent / "serve.log")
        t0 = time.monotonic()
        asyncio.run(all_rows(seats))  # every seat's watcher has sent its first row
        t_rows = time.monotonic() - t0
        time.sleep(3)
        # a seat as the room runs it: its lab, tmux, and the web app's watcher in it (with its sshd session)
        procs = processes()
        per_seat = [sum(k for _, u, _, k in procs if u == uid) / 1024 for uid in uids]
        first: dict[str, float] = {}  # what a seat's PSS is made of
        for _, u, comm, k in procs:
            if uids.get(u) == seats[0]:
                first[comm] = first.get(comm, 0) + k / 1024
        room0, web0 = up.usage(seats), web.usage()
        time.sleep(IDLE)
        # the web app's watchers run in the seats (as the seats): what they cost there counts for the web app
        polling = (up.usage(seats) - room0) / IDLE - idle_seats
        idle_web = (web.usage() - web0) / IDLE + polling
        lat = asyncio.run(echo(seats, keys))
        dash = asyncio.run(dashboard(seats[0], changes))
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=30)
        t_down = task(cfg, "classroom.down")
        up.remove()
        web.remove()
    return {
        "seats": n, "ready_s": t_ready, "down_s": t_down, "pss_mib_per_seat": statistics.mean(per_seat),
        "pss_mib_labs_only": statistics.mean(labs_only), "first_rows_s": t_rows,
        "pss_mib_max": max(per_seat), "idle_cores_seats": idle_seats, "idle_cores_web": idle_web,
        "idle_cores_polling": polling, "pss_mib_by_comm": dict(sorted(first.items(), key=lambda kv: -kv[1])),
        "processes_outside_meter": escaped,
        "cpu_s_per_seat": cpu_up / n, "cpu_vs_probe": cpu_up / n / probe_cpu if probe_cpu else 0.0,
        "echo_ms_p50": pct(lat, 50), "echo_ms_p95": pct(lat, 95), "echo_n": len(lat),
        "dashboard_s": statistics.median(dash), "dashboard_s_max": max(dash),
    }  # fmt: skip


def table(rows: list[dict[str, Any]], probe_cpu: float) -> None:
    mark = {True: "ok", False: "MISSED"}
    print(f"\n{'figure':<34}" + "".join(f"{str(r['seats']) + ' seats':>12}" for r in rows) + "   goal")
    lines: list[tuple[str, str, str, Callable[[dict[str, Any]], bool] | None]] = [
        ("time to ready (up + demo), s", "ready_s", f"<= {GOALS['ready']:.0f} s at 30 seats",
         lambda r: r["seats"] < 30 or r["ready_s"] <= GOALS["ready"]),
        ("PSS per seat, MiB", "pss_mib_per_seat", f"<= {GOALS['pss']:.0f} MiB (lab, tmux, watcher)",
         lambda r: r["pss_mib_per_seat"] <= GOALS["pss"]),
        ("  of which before serve", "pss_mib_labs_only", "lab and tmux", None),
        ("every seat's first row, s", "first_rows_s", "serve's start to a full dashboard", None),
        ("idle CPU of the seats, cores", "idle_cores_seats", "labs' daemons + the classroom's sshd", None),
        ("idle CPU of the web app, cores", "idle_cores_web", "its own + its watchers in the seats", None),
        ("  of which its watchers in the seats", "idle_cores_polling", "lab-watch: stats, reads on a change", None),
        ("idle CPU of the room, cores", "idle_room", f"<= {GOALS['idle']} cores",
         lambda r: r["idle_room"] <= GOALS["idle"]),
        ("CPU s per seat (up + demo)", "cpu_s_per_seat", f"probe's one lab: {probe_cpu:.2f} s", None),
        ("  x the probe's", "cpu_vs_probe", "", None),
        ("echo p50, ms", "echo_ms_p50", "", None),
        ("echo p95, ms", "echo_ms_p95", f"<= {GOALS['echo_p95']:.0f} ms",
         lambda r: r["echo_ms_p95"] <= GOALS["echo_p95"]),
        ("seat's change on the dashboard, s", "dashboard_s", f"<= {GOALS['dashboard']:.0f} s (median)",
         lambda r: r["dashboard_s"] <= GOALS["dashboard"]),
    ]  # fmt: skip
    for r in rows:
        r["idle_room"] = r["idle_cores_seats"] + r["idle_cores_web"]
    for label, key, goal, ok in lines:
        cells = "".join(f"{r[key]:>12.2f}" for r in rows)
        verdict = " ".join(mark[ok(r)] for r in rows) if ok else ""
        print(f"{label:<34}{cells}   {goal}{'  ' + verdict if verdict else ''}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seats", default="5,10,20,30", help="room sizes, one run each (default 5,10,20,30)")
    ap.add_argument("--quick", action="store_true", help="a smoke run: one room of 2 seats, fewer keystrokes")
    ap.add_argument("--keys", type=int, default=30, help="keystrokes per terminal")
    ap.add_argument("--changes", type=int, default=5, help="seat changes timed on the dashboard")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root: classroom.up makes accounts, and the seats' processes are hidden (hidepid)")
    sizes = [2] if args.quick else [int(n) for n in args.seats.split(",")]
    keys, changes = (10, 2) if args.quick else (args.keys, args.changes)
    tmp = Path(tempfile.mkdtemp(prefix="ovnlab-classroom-bench-"))
    cfg = config(tmp)
    res: dict[str, Any] = {"probe": probe(), "rooms": []}
    print(f"shell probe, one lab: {res['probe']}", flush=True)
    for n in sizes:
        res["rooms"].append(room(cfg, n, keys, changes, res["probe"]["cpu"]))
        print(f"{n} seats: {res['rooms'][-1]}", flush=True)
        if res["rooms"][-1]["processes_outside_meter"]:
            print("  warning: some seat processes left the CPU meter's cgroup: CPU figures are low", flush=True)
    table(res["rooms"], res["probe"]["cpu"])
    print(f"results: {save('classroom', res)}")
    subprocess.run(["rm", "-rf", str(tmp)], check=False)


if __name__ == "__main__":
    main()
