"""Tier 4: the whole tutorial on real OVS/OVN daemons in namespaces (no root: a user namespace per lab; seconds)."""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from labgen.backends.netns.keeper import keepers
from labgen.classroom.progress import STEPS
from provision.facts import netns_names
from tests.e2e import (
    ROOT,
    Cli,
    changes,
    check_demo,
    check_infrastructure,
    in_pidns,
    leftovers,
    netns_missing,
    pidns,
    state_dir,
    tutorial_lab,
)

MISSING = netns_missing()  # user namespaces, OVS/OVN: as the trainee who runs it
pytestmark = [
    pytest.mark.netns,
    pytest.mark.skipif(bool(MISSING), reason=MISSING),
]
IPS = {"ovn-central-01": "192.168.1.61", "ovn-host-01": "192.168.1.62", "ovn-host-02": "192.168.1.63"}


def _lab(tmp: Path, name: str) -> Path:
    return tutorial_lab(tmp, name).config


def _netns() -> list[str]:
    return netns_names(subprocess.run(["ip", "-j", "netns", "list"], capture_output=True, text=True).stdout)


@pytest.fixture
def cli(tmp_path: Path) -> Iterator[Cli]:
    c = Cli(_lab(tmp_path, "t-netns"))
    try:
        yield c
    finally:
        c("teardown", check=False)  # torn down even when the test failed


def test_tutorial_end_to_end(cli: Cli) -> None:
    up = cli("up", "--backend", "netns")
    assert "lab t-netns is up" in up.stdout
    check_infrastructure(cli, IPS)
    # confined: nothing of the lab in the host's namespace list or mount table; inside, the lab's own
    assert leftovers(cli, "t-netns") == [f"keeper {keepers()[str(state_dir(cli))]}"]
    routes = subprocess.run(["ip", "route", "get", "192.168.1.61"], capture_output=True, text=True).stdout
    assert "dev br-lab" not in routes
    demo = cli("demo")
    check_demo(cli, demo.stdout)
    # a second up and demo change nothing and succeed
    again = cli("up").stdout + cli("demo").stdout
    assert changes(again) == [], changes(again)
    status = json.loads(cli("status", "--json").stdout)
    assert status["leases"]["port3"]["ipv4"] == ["10.0.0.13/24"]
    assert status["bindings"]["port3"] == {"chassis": "ovn-host-02", "up": True}


def test_exec_passes_output_and_exit_code(cli: Cli) -> None:
    cli("up", "--backend", "netns")
    r = subprocess.run(
        cli.exec_argv("ovn-host-02", "echo out; echo err >&2; exit 3"),
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert (r.returncode, r.stdout, r.stderr) == (3, "out\n", "err\n")
    # what a trainee types by hand: the tutorial's own dhclient, no pid file, stays in the background
    cli.exec(
        "ovn-central-01",
        "ovn-nbctl ls-add hand && ovn-nbctl lsp-add hand hp "
        "&& ovn-nbctl lsp-set-addresses hp 'c0:ff:ee:00:00:99 10.9.9.9'",
    )
    cli.exec("ovn-host-01", "ip netns add vmx && ip netns list")
    assert "vmx" not in _netns() and "vmx" not in cli.exec("ovn-host-02", "ip netns list")  # the node's own
    out = cli.exec("ovn-host-01", "sleep 300 >/dev/null 2>&1 & echo started")
    assert out == "started\n"
    assert "sleep 300" in cli.exec("ovn-host-01", "ps -eo args")


@contextmanager
def _outside_process(lab_pids: set[int]) -> Iterator[int]:
    """A process of this user started outside the lab, whose pid number no process of the lab has now or
    soon: in a fresh PID namespace (a container) a host pid may be a low number, even 1, the lab's tini."""
    started: list[subprocess.Popen[bytes]] = []
    try:
        top = max(lab_pids)
        for _ in range(500):  # each start takes the next host pid
            p = subprocess.Popen(["sleep", "300"], start_new_session=True)
            started.append(p)
            if p.pid not in lab_pids and (p.pid < top or p.pid > top + 100):  # the node's new pids come after top
                yield p.pid
                break
        else:
            pytest.fail(f"no host pid apart from the lab's pids {sorted(lab_pids)}")
    finally:
        for p in started:
            p.kill()
            p.wait()


def test_a_node_is_confined(cli: Cli) -> None:
    """From inside a node: no host process can be signalled or seen, no root-only file read; the routes
    are the lab's own subnets only (read, not probed with traffic)."""
    cli("up", "--backend", "netns")
    cli("demo")
    node = "ovn-host-01"
    lab_pids = {int(pid) for pid in cli.exec(node, "ps -eo pid=").split()}
    with _outside_process(lab_pids) as other:
        assert os.stat(f"/proc/{other}/ns/pid").st_ino != pidns(cli)  # proven not the lab's
        r = subprocess.run(cli.exec_argv(node, f"kill -0 {other}"), cwd=ROOT, capture_output=True, text=True)
        assert r.returncode != 0 and "No such process" in r.stderr, f"a node could signal host pid {other}: {r}"
    ps = cli.exec(node, "ps -eo pid=,args=")
    assert ps.splitlines()[0].split() == ["1", "tini", "--", "sleep", "infinity"], ps  # the lab's own PID 1
    assert "pytest" not in ps and len(ps.splitlines()) <= len(in_pidns(pidns(cli))) + 3, ps
    host_run = set(os.listdir("/run")) - {"netns", "openvswitch", "ovn", "mount", "sshd"}
    assert not host_run & set(cli.exec(node, "ls /run").split())  # the host's /run is not the node's
    if os.geteuid() != 0:  # root of a user namespace is no root on the host
        r = subprocess.run(cli.exec_argv(node, "cat /etc/shadow"), cwd=ROOT, capture_output=True, text=True)
        assert r.returncode != 0 and "Permission denied" in r.stderr, r
    routes = json.loads(cli.exec(node, "ip -j route"))
    assert [(x["dst"], x["dev"]) for x in routes] == [("192.168.1.0/24", "br-phy")], routes
    vm = json.loads(cli.exec(node, "ip netns exec vm1 ip -j route"))
    assert {(x["dst"], x.get("gateway")) for x in vm} <= {("default", "10.0.0.1"), ("10.0.0.0/24", None)}, vm


@pytest.mark.skipif(
    os.geteuid() == 0 or subprocess.run(["sudo", "-n", "true"], capture_output=True).returncode != 0,
    reason="as an ordinary user who may sudo (CI's): root brings up the second lab",
)
def test_two_users_run_a_lab_of_the_same_name_and_subnets(tmp_path: Path) -> None:
    mine = Cli(_lab(tmp_path, "ovn-lab"))
    # root's own directory: pytest's tmp dir is 0700, and root of a user namespace has no power over it
    theirs = Path(subprocess.run(["sudo", "-n", "mktemp", "-d"], capture_output=True, text=True).stdout.strip())
    subprocess.run(
        ["sudo", "-n", "tee", str(theirs / "lab.toml")], input=mine.config.read_text(), text=True, check=True
    )

    def root(*task: str) -> subprocess.CompletedProcess[str]:
        argv = ["sudo", "-n", sys.executable, "-m", "invoke", task[0], "--config", str(theirs / "lab.toml"), *task[1:]]
        return subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=300)

    try:
        mine("up", "--backend", "netns")
        r = root("up", "--backend", "netns")
        assert r.returncode == 0, r.stdout + r.stderr
        assert root("demo").returncode == 0
        mine("demo")
        assert mine("check").returncode == 0 and root("check").returncode == 0
        assert root("teardown").returncode == 0
        assert mine("check").returncode == 0  # untouched by the other user's teardown
    finally:
        root("teardown")
        subprocess.run(["sudo", "-n", "rm", "-rf", str(theirs)])
        mine("teardown", check=False)


def test_teardown_leaves_nothing(tmp_path: Path) -> None:
    cli = Cli(_lab(tmp_path, "t-clean"))
    try:
        cli("up", "--backend", "netns")
        cli.exec("ovn-host-01", "ip netns add vm9 && ip netns exec vm9 sleep 600 >/dev/null 2>&1 &")
        ns = pidns(cli)
    finally:
        cli("teardown")
    assert not leftovers(cli, "t-clean")
    assert not (tmp_path / ".lab" / "t-clean").exists()
    assert in_pidns(ns) == []  # the daemons and the trainee's sleep: every process of the lab is gone
    r = cli("teardown")  # idempotent
    assert r.returncode == 0


def test_two_labs_side_by_side(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    cli_a = Cli(_lab(a, "t-lab-a"))
    text = (
        (ROOT / "lab.toml")
        .read_text()
        .replace('name = "ovn-lab"', 'name = "t-lab-b"')
        .replace("192.168.1.", "192.168.7.")
    )
    (b / "lab.toml").write_text(text)
    cli_b = Cli(b / "lab.toml")
    try:
        cli_a("up", "--backend", "netns")
        cli_b("up", "--backend", "netns")
        assert "192.168.7.62" in cli_b.exec("ovn-central-01", "ovn-sbctl --bare --columns=ip list encap")
        assert "192.168.1.62" in cli_a.exec("ovn-central-01", "ovn-sbctl --bare --columns=ip list encap")
        cli_b("demo")
        cli_a("teardown")  # the other lab goes on working
        assert cli_b("check").returncode == 0
        assert not leftovers(cli_a, "t-lab-a")
    finally:
        cli_a("teardown", check=False)
        cli_b("teardown", check=False)


def test_ssl_transport(tmp_path: Path) -> None:
    """`[ovn] transport = "ssl"`: the chassis reach the SB over mutual TLS with the lab's own CA; a client
    without a certificate, or with one from another CA, is refused, as is plain tcp."""
    cli = tutorial_lab(tmp_path, "t-ssl", transport="ssl")
    try:
        cli("up", "--backend", "netns")
        check_infrastructure(cli, IPS, transport="ssl")
        demo = cli("demo").stdout
        check_demo(cli, demo)
        assert "BEGIN" not in (tmp_path / ".lab/t-ssl/logs/ovn-host-01.log").read_text()  # no key echoed
        assert cli.exec("ovn-central-01", "ovn-sbctl get-connection").split()[-1] == "pssl:6642:192.168.1.61"
        assert cli.exec("ovn-host-01", "ovn-appctl -t ovn-controller connection-status").strip() == "connected"
        certs = "-p /etc/ovn/ovn-lab-privkey.pem -c /etc/ovn/ovn-lab-cert.pem -C /etc/ovn/ovn-lab-cacert.pem"
        assert "port3" in cli.exec("ovn-host-02", f"ovn-nbctl --db=ssl:192.168.1.61:6641 {certs} show")
        stranger = (  # a key and certificate of a CA the lab does not know, made on the node itself
            "cd /tmp && ovs-pki -b --dir=/tmp/other init >/dev/null"
            " && ovs-pki -b --dir=/tmp/other req+sign x >/dev/null"
            " && ovn-sbctl --db=ssl:192.168.1.61:6642 -p x-privkey.pem -c x-cert.pem -C /tmp/other/switchca/cacert.pem"
            " --timeout=5 show"
        )
        for attempt in ("ovn-sbctl --db=tcp:192.168.1.61:6642 --timeout=5 show", stranger):
            r = subprocess.run(cli.exec_argv("ovn-host-02", attempt), cwd=ROOT, capture_output=True, text=True)
            assert r.returncode != 0 and "Chassis" not in r.stdout, (attempt, r.stdout, r.stderr)
        again = cli("up").stdout + cli("demo").stdout
        assert changes(again) == [], changes(again)
        assert cli("check").returncode == 0
    finally:
        cli("teardown", check=False)


def test_same_name_and_subnets_from_another_directory_run_side_by_side(tmp_path: Path) -> None:
    """Each lab has a user namespace of its own: two labs of one name, with the same subnets, share
    nothing, and tearing one down leaves the other working."""
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    cli_a, cli_b = Cli(_lab(a, "t-same")), Cli(_lab(b, "t-same"))
    try:
        cli_a("up", "--backend", "netns")
        cli_b("up", "--backend", "netns")
        cli_b("demo")
        assert pidns(cli_a) != pidns(cli_b)
        assert "port1" not in cli_a.exec("ovn-central-01", "ovn-nbctl show")  # b's demo is b's only
        cli_b("teardown")
        check_infrastructure(cli_a, IPS)  # the other lab is untouched
        assert cli_a("check").returncode == 0
    finally:
        cli_b("teardown", check=False)
        cli_a("teardown")


def test_central_failure_stops_up_at_once(tmp_path: Path) -> None:
    """A central step that fails must not leave the hosts waiting out their SB timeout (120 s)."""
    cli = Cli(_lab(tmp_path, "t-fail"))
    nb = tmp_path / ".lab" / "t-fail" / "nodes" / "ovn-central-01" / "lib-ovn" / "ovnnb_db.db"
    nb.parent.mkdir(parents=True)
    nb.write_text("not an OVSDB file\n")  # ovsdb-server cannot start on it
    try:
        t0 = time.monotonic()
        r = cli("up", "--backend", "netns", check=False)
        took = time.monotonic() - t0
        assert r.returncode == 1, r.stdout + r.stderr
        assert "ovn-central-01: provisioning step central failed" in r.stderr, r.stderr
        assert took < 30, f"up took {took:.1f} s to report the failure"
    finally:
        cli("teardown")
    assert not leftovers(cli, "t-fail")


def test_interrupted_up_can_be_finished_and_removed(tmp_path: Path) -> None:
    cli = Cli(_lab(tmp_path, "t-intr"))
    try:
        p = subprocess.Popen(
            [sys.executable, "-m", "invoke", "up", "--backend", "netns", "--config", str(cli.config)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert p.stdout is not None
        for line in p.stdout:  # interrupt while the nodes are being provisioned
            if "create 3 nodes" in line:
                break
        p.send_signal(signal.SIGINT)
        out = p.communicate(timeout=60)[0]
        assert p.returncode == 130 and "interrupted" in out, out  # stderr is merged into out
        assert "lab t-intr is up" in cli("up").stdout
        check_infrastructure(cli, IPS)
    finally:
        cli("teardown")
    assert not leftovers(cli, "t-intr")


def test_dynamic_mac_port(tmp_path: Path) -> None:
    cli = Cli(_lab(tmp_path, "t-dyn"))
    cli.config.write_text(cli.config.read_text().replace('mac = "c0:ff:ee:00:00:13"', 'mac = "dynamic"'))
    try:
        cli("up", "--backend", "netns")
        demo = cli("demo").stdout
        assert "ovn-nbctl lsp-set-addresses port3 dynamic" in demo
        mac = cli.exec("ovn-central-01", "ovn-nbctl get logical_switch_port port3 dynamic_addresses").split()[0]
        mac = mac.strip('"')
        assert mac.count(":") == 5
        assert f"link/ether {mac}" in cli.exec("ovn-host-02", "ip -n vm3 link show port3")
        assert "inet 10.0.0.13/24" in cli.exec("ovn-host-02", "ip netns exec vm3 ip -4 addr")
        assert cli("check").returncode == 0
    finally:
        cli("teardown")


def test_a_checkout_at_a_hostile_path_works_and_runs_nothing(tmp_path: Path) -> None:
    """No path reaches a shell string: from a checkout at `ws $(touch PWNED)` the lab comes up, and
    teardown finds its mounts (mountinfo writes the space as \\040)."""
    ws = tmp_path / "ws $(touch PWNED)"
    shutil.copytree(ROOT, ws, ignore=shutil.ignore_patterns(".git", ".lab", "__pycache__", ".*_cache", "results"))
    (ws / "lab.toml").write_text((ROOT / "lab.toml").read_text().replace('name = "ovn-lab"', 'name = "t-path"'))

    def invoke(*args: str) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-m", "invoke", *args]
        return subprocess.run(argv, cwd=ws, capture_output=True, text=True, timeout=300)

    try:
        r = invoke("up", "--backend", "netns")
        assert r.returncode == 0, r.stdout + r.stderr
        r = invoke("demo")
        assert r.returncode == 0 and "vm3=10.0.0.13" in r.stdout, r.stdout + r.stderr
        out = invoke("ssh-config").stdout
        (tmp_path / "cfg").write_text(out)
        ssh = subprocess.run(
            ["ssh", "-F", str(tmp_path / "cfg"), "ovn-host-01", "hostname"], capture_output=True, text=True, timeout=60
        )
        assert ssh.stdout == "ovn-host-01\n", ssh
    finally:
        invoke("teardown")
    assert not list(tmp_path.rglob("PWNED")) and not (ROOT / "PWNED").exists() and not Path("PWNED").exists()
    assert not leftovers(Cli(ws / "lab.toml"), "t-path")


def test_the_seat_watcher_follows_the_lab_and_stays_quiet_when_idle(cli: Cli) -> None:
    """The classroom's `lab-watch` on a real lab: a row at start, none while the lab idles (nothing the
    lab's daemons do on their own touches what it watches), then one after each change a trainee makes."""
    cli("up", "--backend", "netns")
    bindir = Path(sys.executable).parent  # `invoke` of this Python, as the seats' PATH has it
    watcher = subprocess.Popen(
        [sys.executable, "-S", "-c", f"import sys; sys.path.insert(0, {str(ROOT)!r}); "
         "from labgen.classroom.watch import main; main()"],
        cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        env={**os.environ, "PATH": f"{bindir}:{os.environ['PATH']}", "OVN_LAB_CONFIG": str(cli.config)},
    )  # fmt: skip
    assert watcher.stdout is not None and watcher.stdin is not None

    def row(timeout: float) -> dict[str, Any] | None:
        ready, _, _ = select.select([watcher.stdout], [], [], timeout)
        return json.loads(watcher.stdout.readline()) if ready else None  # type: ignore[union-attr]

    def ticked(doc: dict[str, Any] | None) -> list[str]:
        return [s["key"] for s in (doc or {}).get("steps", []) if s["done"]]

    try:
        first = row(30)
        assert ticked(first) == ["up"] and first and first["down"] == {}
        assert row(5) is None  # idle: the daemons write nothing it watches
        cli("demo")
        rows = [row(30)]
        while ticked(rows[-1]) != [k for k, _ in STEPS]:
            rows.append(row(30))
        cli("exercise.start", "controller-stopped")
        got = row(30)
        while got and got["exercise"] == "none":  # the exercise's file, then its stopped daemon
            got = row(30)
        assert got and got["down"] == {"ovn-host-02": ["ovn-controller"]}, got
        assert "not solved yet: controller-stopped" in got["exercise"]
        watcher.stdin.close()
        assert watcher.wait(timeout=10) == 0
    finally:
        watcher.kill()
