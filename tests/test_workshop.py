"""Workshop features on a real netns lab: check, break-fix exercises, demo --reset/--transcript/--step,
graph, capture, snapshot. One lab for the module, torn down even when a test fails."""

from __future__ import annotations

import html
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from invoke import MockContext

import tasks
from labgen.backends.base import Result
from labgen.backends.netns.backend import NetnsBackend
from labgen.workshop.exercises import EXERCISES
from provision.facts import FACTS
from tests.e2e import ROOT, Cli, check_demo, demo_lab, netns_missing

MISSING = netns_missing()  # user namespaces, OVS/OVN: as the trainee who runs it
pytestmark = [
    pytest.mark.netns,
    pytest.mark.skipif(bool(MISSING), reason=MISSING),
]


@pytest.fixture(scope="module")
def cli(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cli]:
    with demo_lab(tmp_path_factory.mktemp("workshop"), "t-ws") as c:
        yield c


@pytest.mark.parametrize("name", list(EXERCISES))
def test_exercise_is_diagnosed_and_solved(cli: Cli, name: str) -> None:
    assert cli("check").returncode == 0
    cli("exercise.start", name)
    broken = cli("check", check=False)
    assert broken.returncode == 1, broken.stdout
    assert "FAIL" in broken.stdout and "why:" in broken.stdout
    want = {
        "wrong-mac": "has MAC c0:ff:ee:00:00:99, the logical port expects c0:ff:ee:00:00:11",
        "no-dhcp-options": "dhcpv4_options not set on port2",
        "controller-stopped": "ovn-host-02     ovn-controller is not running on ovn-host-02",
        "wrong-encap-ip": "encap IP is 10.99.0.2, expected 192.168.1.62",
        "port-not-bound": "port3 is not bound on ovn-host-02",
        "acl-drops-dhcp": 'an ACL (from-lport, priority 1002) drops inport == "port2" && udp.dst == 67',
        "port-security": "port_security of port1 (c0:ff:ee:00:00:99) does not allow its MAC c0:ff:ee:00:00:11",
        "no-free-address": "port3 got no IPv4 address from net0",
    }[name]
    assert want in broken.stdout, broken.stdout
    assert cli("exercise.check", check=False).returncode == 1
    hint = cli("exercise.hint").stdout.strip()
    # the three that need the trace to solve: the trace the hint names shows the fault
    shown = {
        "acl-drops-dhcp": (["vm2", "vm2", "--proto", "dhcp"], "=> dropped in ls_in_acl (ingress table 8)"),
        "port-security": (["vm1", "vm3"], "=> dropped in ls_in_apply_port_sec (ingress table 1)"),
        "no-free-address": (["vm3", "vm3", "--proto", "dhcp"], "multicast group 32768: flooded to every port"),
    }
    if name in shown:
        argv, line = shown[name]
        assert f"invoke trace {argv[0]}" in hint, hint
        out = cli("trace", *argv).stdout
        assert line in out, out
        if name == "no-free-address":
            assert "put_dhcp_opts" not in out, out  # no offer for port3: the exclude range left it none
    cli("exercise.solve")
    fixed = cli("check", check=False)
    assert fixed.returncode == 0, fixed.stdout


def test_trace_answers_the_handout_questions(cli: Cli) -> None:
    """Which logical flow answers DHCP, which OpenFlow table sends vm1's packet into the tunnel, what VNI."""
    dhcp = cli("trace", "vm1", "vm1", "--proto", "dhcp").stdout
    assert "table=20 (ls_in_dhcp_options)" in dhcp and "put_dhcp_opts(offerip = 10.0.0.11" in dhcp, dhcp
    assert "=> to ovn-controller" in dhcp
    out = cli("trace", "vm1", "vm3").stdout
    assert "ingress 25. ls_in_l2_lkup: eth.dst == c0:ff:ee:00:00:13" in out and 'outport = "port3";' in out, out
    sender = out.split("the sending chassis")[1].split("the receiving chassis")[0]
    # detrace mapped OpenFlow table 33 back to logical ingress table 25, and table 39 is the tunnel's
    assert "table 33: table=25 (ls_in_l2_lkup), priority=50, match=(eth.dst == c0:ff:ee:00:00:13)" in sender, sender
    assert "table 39: reg15=0x3,metadata=0x1" in sender and "tun_id=0x1 (VNI)" in sender and "output:" in sender
    assert "=> geneve to 192.168.1.63: VNI 0x1" in sender and "= 0x10003 (from logical port key 1 to key 3)" in sender
    receiver = out.split("the receiving chassis")[1]
    assert "= port3 (tunnel key 3), bound on ovn-host-02" in receiver, receiver
    full = cli("trace", "vm1", "vm3", "--full").stdout
    assert len(full.splitlines()) > 2 * len(out.splitlines())
    same = cli("trace", "vm1", "vm2").stdout
    assert "receiving chassis" not in same and "=> geneve" not in same  # one chassis: no tunnel


def test_graph_draws_the_traced_path(cli: Cli, tmp_path: Path) -> None:
    cli("graph", "--out", str(tmp_path), "--src", "vm1", "--dst", "port3", "--proto", "udp")  # as trace takes them
    dot = (tmp_path / "lab.dot").read_text()
    assert '"ovn-host-01" -- "ovn-host-02" [color="#d62728"' in dot and "2. geneve VNI 0x1" in dot, dot
    assert (tmp_path / "lab.png").stat().st_size > 10_000
    half = cli("graph", "--out", str(tmp_path), "--src", "vm1", check=False)
    assert half.returncode == 2 and "a packet needs both ends" in half.stderr, half.stderr


def test_demo_explains_what_ovn_made_of_each_step(cli: Cli, tmp_path: Path) -> None:
    cli("demo", "--reset")
    out = cli("demo", "--explain").stdout
    assert "underneath: northd added" in out and "answer DHCP (put_dhcp_opts)" in out, out
    assert "net0/ls_in_dhcp_options" in out and "put_dhcp_opts(offerip = 10.0.0.13" in out
    assert "Port_Binding port3: tunnel key 3, datapath key 1, chassis ovn-host-02" in out
    assert "OpenFlow rules on ovn-host-02 match its key (reg14/reg15=0x3)" in out
    assert "vm3 (port3): lease 10.0.0.13/24  <- offer offerip = 10.0.0.13" in out
    assert "VNI 1 = the datapath key of net0" in out and "= 0x10003 (from port1's key 1 to port3's key 3)" in out
    short = cli("demo").stdout
    assert "(invoke demo --explain shows how)" in short and "Port_Binding port3: tunnel key" not in short


@pytest.mark.parametrize("fact", ["nb_acls", "sb_bindings"])
def test_check_names_a_database_read_that_fails(cli: Cli, fact: str, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    """On the running lab, one read of the NB (or SB) sent where no database listens: the real ovn-nbctl
    fails for real, every other read is the lab's. check exits 1 and names what it could not read."""
    argv = tuple(FACTS[fact].argv(""))  # type: ignore[misc]
    real = NetnsBackend.run

    def run(self: NetnsBackend, node: str, cmd: Sequence[str], **kw: Any) -> Result:
        if tuple(cmd) == argv:
            cmd = [argv[0], "--db=unix:/run/ovn/no-such-db.sock", *argv[1:]]
        return real(self, node, cmd, **kw)

    monkeypatch.setattr(NetnsBackend, "run", run)
    with pytest.raises(SystemExit) as e:
        tasks.check(MockContext(), config=str(cli.config))
    out = capsys.readouterr().out
    assert e.value.code == 1, out
    assert f"cannot read {FACTS[fact].about} on ovn-central-01" in out, out
    assert "no-such-db.sock" in out, out  # the evidence: the command and its error
    monkeypatch.undo()
    assert cli("check").returncode == 0


def test_mtu_is_checked_across_the_tunnel(cli: Cli) -> None:
    assert "1500-byte frames cross the tunnel (vm1 -> vm3)" in cli("check").stdout


def test_reset_then_transcript(cli: Cli, tmp_path: Path) -> None:
    cli("demo", "--reset")
    assert "vm1" not in cli.exec("ovn-host-01", "ip netns list")
    assert "net0" not in cli.exec("ovn-central-01", "ovn-nbctl show")
    assert "Port_Binding" not in cli.exec("ovn-central-01", "ovn-sbctl show")
    assert cli.exec("ovn-host-01", "ovs-vsctl show").count("type: geneve") == 2  # infrastructure intact
    md = tmp_path / "handout.md"
    check_demo(cli, cli("demo", "--transcript", str(md)).stdout)  # rebuilt as new, leases on the first try
    text = md.read_text()
    assert text.startswith("# OVN DHCP lab: transcript")
    assert "## 6. Trace a DHCP request (on central)" in text
    assert "ovn-central-01 # ovn-nbctl dhcp-options-create 10.0.0.0/24" in text
    assert "put_dhcp_opts(offerip = 10.0.0.11" in text and "bound to 10.0.0.13" in text
    assert text.count("```") % 2 == 0


def test_graph(cli: Cli, tmp_path: Path) -> None:
    out = cli("graph", "--out", str(tmp_path)).stdout.split()
    assert [Path(p).name for p in out] == ["lab.svg", "lab.png"]
    assert (tmp_path / "lab.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    svg = html.unescape((tmp_path / "lab.svg").read_text())  # graphviz writes '-' as &#45;
    for text in ("ovn-host-02", "192.168.1.63", "port3 in vm3", "10.0.0.13/24", "geneve", "bound"):
        assert text in svg, text


def test_capture_geneve(cli: Cli) -> None:
    ping = cli.background("ovn-host-01", "sleep 1; ip netns exec vm1 ping -c 4 -i 0.3 10.0.0.13")
    out = cli("capture", "ovn-host-01", "--seconds", "4").stdout
    ping.wait()
    pcap = Path(out.strip().split("open in Wireshark: ")[1])
    read = subprocess.run(["tcpdump", "-r", str(pcap), "-n", "-v"], capture_output=True, text=True).stdout
    assert "Geneve" in read and "vni 0x1" in read and "ICMP echo request" in read, read


def test_snapshot_restore_rebuilds(cli: Cli) -> None:
    cli("snapshot", "save")
    cli("demo", "--reset")
    cli("snapshot", "restore")
    assert "inet 10.0.0.13/24" in cli.exec("ovn-host-02", "ip netns exec vm3 ip -4 addr")


@pytest.mark.skipif(not shutil.which("tmux"), reason="tmux not installed (scripts/setup installs it)")
def test_step_mode_in_a_real_terminal(cli: Cli) -> None:
    session = "ovnlab-step-test"
    invoke = shlex.join([sys.executable, "-m", "invoke", "demo", "--step", "--config", str(cli.config)])
    cmd = f"cd {shlex.quote(str(ROOT))} && {invoke}; echo EXIT=$?; sleep 30"  # this python: the user's venv
    subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "200", "-y", "50", cmd], check=True)
    try:
        screens = []

        def screen() -> str:
            return subprocess.run(
                ["tmux", "capture-pane", "-p", "-S", "-3000", "-t", session], capture_output=True, text=True
            ).stdout

        for i in range(5):  # five sections, each waits for Enter before it runs
            deadline = time.monotonic() + 30
            while screen().count("press Enter to run it") <= i and time.monotonic() < deadline:
                time.sleep(0.2)
            text = screen()
            screens.append(text)
            assert text.count("press Enter to run it") == i + 1 and text.rstrip().endswith("press Enter to run it"), (
                text
            )
            subprocess.run(["tmux", "send-keys", "-t", session, "Enter"], check=True)
        text = screen()
        deadline = time.monotonic() + 60
        while "EXIT=" not in text and time.monotonic() < deadline:
            time.sleep(0.3)
            text = screen()
        assert "EXIT=0" in text, text[-3000:]
        assert "ovn-trace runs a packet through the logical pipeline" in screens[1]
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)


def test_ssh_config(cli: Cli) -> None:
    """Plain ssh into a netns node (sshd -i through ProxyCommand): root, the node's own hostname and OVS."""
    r = cli.ssh("ovn-host-02", "hostname; ovs-vsctl get open . external_ids:system-id; exit 3")
    assert (r.returncode, r.stdout.split()) == (3, ["ovn-host-02", "ovn-host-02"]), r
