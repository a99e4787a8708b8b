"""The end state of the tutorial, checked through `invoke` as a trainee would: shared by the netns and VM tiers."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHANGE = re.compile(r"^(ovn-[\w-]+) # (?!: ok)(?!.*\b(show|list|ovn-trace|ping|ip -4 addr)\b)")


@dataclass
class Cli:
    config: Path

    def __call__(self, *args: str, check: bool = True, timeout: float = 1800) -> subprocess.CompletedProcess[str]:
        r = subprocess.run(
            [sys.executable, "-m", "invoke", *args[:1], "--config", str(self.config), *args[1:]],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and r.returncode:
            raise AssertionError(
                f"invoke {' '.join(args)} exited {r.returncode}:\n{r.stdout[-4000:]}\n{r.stderr[-2000:]}"
            )
        return r

    def exec_argv(self, node: str, command: str) -> list[str]:
        return [sys.executable, "-m", "invoke", "exec", "--config", str(self.config), node, command]

    def background(self, node: str, command: str) -> subprocess.Popen[bytes]:
        """`invoke exec` running while the test does something else (a ping during a capture)."""
        return subprocess.Popen(
            self.exec_argv(node, command), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )

    def ssh(self, node: str, command: str) -> subprocess.CompletedProcess[str]:
        """Plain ssh with the file `invoke ssh-config` prints, as a trainee would use it."""
        cfg = self.config.parent / "ssh_config"
        cfg.write_text(self("ssh-config").stdout)
        return subprocess.run(["ssh", "-F", str(cfg), node, command], capture_output=True, text=True, timeout=60)

    def exec(self, node: str, command: str) -> str:
        r = subprocess.run(self.exec_argv(node, command), cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, f"{node}: {command} exited {r.returncode}: {r.stdout}{r.stderr}"
        return r.stdout


def interrupt(
    cli: Cli, task: list[str], marker: str, sig: signal.Signals, *, after: float = 0, group: bool = False
) -> subprocess.CompletedProcess[str]:
    """Run `invoke TASK` until it prints `marker` (and `after` seconds more), then send `sig`: to invoke
    alone (a killed process), or with `group` to all it started, as Ctrl-C in a terminal does. Fails when
    the marker never came (a renamed stage would make the test a plain re-run) or the task had ended, or
    ended with 0, before the signal reached it."""
    argv = [sys.executable, "-m", "invoke", task[0], "--config", str(cli.config), *task[1:]]
    p = subprocess.Popen(
        argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=group
    )
    assert p.stdout is not None
    seen, sent = [], False
    for line in p.stdout:
        seen.append(line)
        if line.strip().startswith(marker):
            time.sleep(after)
            if p.poll() is None:
                os.killpg(p.pid, sig) if group else p.send_signal(sig)
                sent = True
            break
    out = "".join(seen) + p.communicate(timeout=60)[0]
    what = f"invoke {' '.join(task)}"
    assert seen and seen[-1].strip().startswith(marker), f"{what} never printed {marker!r}:\n{out[-4000:]}"
    assert sent, f"{what} ended (exit {p.returncode}) before {sig.name} was sent:\n{out[-4000:]}"
    assert p.returncode != 0, f"{what} ended with 0: {sig.name} came after its work was done:\n{out[-4000:]}"
    return subprocess.CompletedProcess(argv, p.returncode, out, "")


def netns_missing() -> str:
    """Why the netns tier cannot run here as this user ("" when it can): the backend's own probes."""
    from labgen.backends.netns.host import host_probes as probes

    for p in probes():
        err = p.check()
        if err:
            return f"netns lab: {p.name}: {err}"
    return ""


def state_dir(cli: Cli) -> Path:
    from labgen.load import load_lab

    return load_lab(cli.config).state_dir


def pidns(cli: Cli) -> int:
    """The lab's PID namespace (its keeper's), to prove later that no process of it is left."""
    from labgen.backends.netns.keeper import keepers

    return os.stat(f"/proc/{keepers()[str(state_dir(cli))]}/ns/pid").st_ino


def in_pidns(inode: int) -> list[int]:
    """Live processes (zombies PID 1 has yet to reap do not count) of the PID namespace `inode`."""
    found = []
    for entry in os.listdir("/proc"):
        try:
            mine = entry.isdigit() and os.stat(f"/proc/{entry}/ns/pid").st_ino == inode
            if mine and not Path(f"/proc/{entry}/stat").read_text().rsplit(") ", 1)[1].startswith("Z"):
                found.append(int(entry))
        except OSError:
            continue
    return found


def leftovers(cli: Cli, name: str) -> list[str]:
    """What of lab `name` is left on the host: its keeper, and anything in the host's namespace list or
    mount table (where a rootless lab never puts anything)."""
    from labgen.backends.netns.keeper import keepers

    out = subprocess.run(["ip", "-j", "netns", "list"], capture_output=True, text=True).stdout
    left = [f"keeper {pid}" for d, pid in keepers().items() if d == str(state_dir(cli))]
    left += [f"netns {n['name']}" for n in json.loads(out or "[]") if n["name"].startswith(f"{name}_")]
    left += [f"mount {ln.split()[4]}" for ln in Path("/proc/self/mountinfo").read_text().splitlines() if name in ln]
    return left


def finish(cli: Cli, *task: str) -> str:
    """Run the task again until it completes: a killed task's last batch may keep the lab busy a moment."""
    deadline = time.monotonic() + 60
    while True:
        r = cli(*task, check=False)
        if r.returncode == 0:
            return r.stdout
        assert "is busy" in r.stderr and time.monotonic() < deadline, r.stdout + r.stderr
        time.sleep(0.5)


def tutorial_lab(tmp: Path, name: str, *, transport: str = "tcp") -> Cli:
    """The tutorial's lab.toml under another lab name, in `tmp`."""
    text = (ROOT / "lab.toml").read_text().replace('name = "ovn-lab"', f'name = "{name}"')
    text = text.replace('transport = "tcp"', f'transport = "{transport}"', 1)
    (tmp / "lab.toml").write_text(text)
    return Cli(tmp / "lab.toml")


@contextmanager
def demo_lab(tmp: Path, name: str) -> Iterator[Cli]:
    """The tutorial's lab up on the netns backend with the demo done; torn down even when a test fails."""
    cli = tutorial_lab(tmp, name)
    try:
        cli("up", "--backend", "netns")
        cli("demo")
        yield cli
    finally:
        cli("teardown", check=False)


def changes(output: str) -> list[str]:
    """Commands that changed state in a provisioning transcript (no-ops and read-only shows excluded)."""
    return [ln for ln in output.splitlines() if CHANGE.match(ln)]


def check_infrastructure(cli: Cli, ips: dict[str, str], transport: str = "tcp") -> None:
    central = "ovn-central-01"
    sb = cli.exec(central, "ovn-sbctl --format=json --columns=chassis_name,ip,type list encap")
    encaps = {row[0]: (row[1], row[2]) for row in json.loads(sb)["data"]}
    assert encaps == {n: (ip, "geneve") for n, ip in ips.items()}, encaps
    for node, ip in ips.items():
        show = cli.exec(node, "ovs-vsctl show")
        remotes = sorted(re.findall(r'remote_ip="([\d.]+)"', show))
        assert remotes == sorted(i for n, i in ips.items() if n != node), f"{node}: {show}"
        assert show.count("type: geneve") == len(ips) - 1
        assert cli.exec(node, "hostname").strip() == node
        ids = cli.exec(node, "ovs-vsctl --columns external_ids list open_vswitch")
        for want in (
            f'ovn-encap-ip="{ip}"',
            "ovn-encap-type=geneve",
            f"system-id={node}",
            f'ovn-remote="{transport}:{ips[central]}:6642"',
        ):
            assert want in ids, ids
    listening = [ln.split()[3] for ln in cli.exec(central, "ss -Htln").splitlines() if ":6642" in ln]
    assert listening == [f"{ips[central]}:6642"], listening  # the SB on the underlay address only


def check_demo(cli: Cli, demo_output: str) -> None:
    central = "ovn-central-01"
    assert (
        "put_dhcp_opts(offerip = 10.0.0.11, lease_time = 3600, netmask = 255.255.255.0, router = 10.0.0.1, "
        "server_id = 10.0.0.1)" in demo_output
    )
    # every port got its lease on the first DISCOVER: a lost one means the gates let dhclient start too early
    # (br-int's datapath-id changing under ovn-controller did that), and costs the trainee 4-8 s
    for port in ("port1", "port2", "port3"):
        assert demo_output.count(f"DHCPDISCOVER on {port} ") == 1, demo_output
    for node in ("ovn-host-01", "ovn-host-02"):  # the mechanism behind it, which timing may hide
        log = cli.exec(node, "cat /var/log/ovn/ovn-controller.log")
        assert "br-int.mgmt: connection closed by peer" not in log, log[-3000:]
    dyn = cli.exec(central, "ovn-nbctl --bare --columns=name,dynamic_addresses list logical_switch_port")
    for i in (1, 2, 3):
        assert f"c0:ff:ee:00:00:1{i} 10.0.0.1{i}" in dyn, dyn
    sbshow = cli.exec(central, "ovn-sbctl show")
    blocks = {b.split("\n")[0].strip(): b for b in re.split(r"(?m)^Chassis ", sbshow) if b.strip()}
    assert "Port_Binding port1" in blocks["ovn-host-01"] and "Port_Binding port2" in blocks["ovn-host-01"]
    assert "Port_Binding port3" in blocks["ovn-host-02"], sbshow
    for node, ns, ip in (
        ("ovn-host-01", "vm1", "10.0.0.11"),
        ("ovn-host-01", "vm2", "10.0.0.12"),
        ("ovn-host-02", "vm3", "10.0.0.13"),
    ):
        assert f"inet {ip}/24" in cli.exec(node, f"ip netns exec {ns} ip -4 addr"), (node, ns)
    # vm1 -> vm2 on the same host, vm1 -> vm3 across the geneve tunnel
    for ip in ("10.0.0.12", "10.0.0.13"):
        out = cli.exec("ovn-host-01", f"ip netns exec vm1 ping -c 2 -i 0.2 -W 2 {ip}")
        assert " 0% packet loss" in out, out
