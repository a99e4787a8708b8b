"""Tier 3b (fake): up, demo, gates, check, exercises, doctor and the tasks against a fake backend that
answers commands from outputs recorded on real daemons (tests/recorded/) and fails on any other command.
No root, no daemons: seconds."""

from __future__ import annotations

import builtins
import json
import os
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from invoke import MockContext

import tasks
from labgen import gates
from labgen.backends import BACKENDS
from labgen.backends.base import Probe
from labgen.demo import demo
from labgen.doctor import doctor
from labgen.errors import CommandFailed, GateTimeout, GaveUp, LabError, PreflightFailed, ShowFailed, StageFailed
from labgen.lab import open_up_lab
from labgen.load import load_lab
from labgen.observe import Observer
from labgen.state import LabState
from labgen.up import up
from labgen.workshop import detrace, exercises
from labgen.workshop.capture import capture
from labgen.workshop.check import run_checks
from labgen.workshop.findings import Finding
from labgen.workshop.status import status
from labgen.workshop.trace import trace
from provision.facts import FACTS
from tests.fake import FakeBackend, Script, UnknownCommand
from tests.golden import HERE

pytestmark = pytest.mark.fake
CENTRAL, HOST1, HOST2 = "ovn-central-01", "ovn-host-01", "ovn-host-02"
ENCAPS = list(FACTS["sb_encaps"].argv(""))  # type: ignore[misc]


@pytest.fixture
def lab(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Path, Script]]:
    """The tutorial's lab.toml on the fake backend, with the name the recordings were made with."""
    monkeypatch.setitem(BACKENDS, "fake", "tests.fake:FakeBackend")
    monkeypatch.setattr(gates, "SCALE", 0.02)  # a 90 s gate gives up after 1.8 s
    text = (HERE.parent / "lab.toml").read_text().replace('name = "ovn-lab"', 'name = "t-rec"')
    (tmp_path / "lab.toml").write_text(text.replace('backend = "vagrant"', 'backend = "fake"'))
    script = Script(tmp_path / "control.json")
    FakeBackend.script = script
    yield tmp_path / "lab.toml", script
    assert not script.unknown, f"commands with no recorded answer: {script.unknown}"


def is_up(config: Path) -> None:
    LabState(load_lab(config)).remember("fake")


def batches(script: Script, node: str, steps: list[str]) -> list[dict]:  # type: ignore[type-arg]
    return [b for b in script.steps() if b["node"] == node and b["steps"] == steps]


# -- up -----------------------------------------------------------------------------------------------------
def test_up_brings_central_first_and_proves_every_chassis(lab: tuple[Path, Script], capsys) -> None:  # type: ignore[no-untyped-def]
    config, script = lab
    script.load("up")
    script.delay_step(CENTRAL, "central", 0.3)
    up(config, "fake")
    central = batches(script, CENTRAL, ["central"])[0]
    for host in (HOST1, HOST2):
        first = batches(script, host, ["install", "ovs", "underlay", "chassis"])[0]
        assert first["start"] < central["end"]  # the hosts start OVS beside central's databases
        assert batches(script, host, ["controller"])[0]["start"] >= central["end"]  # the SB listens first
    # the SB binds central's underlay address only once the underlay step put it there
    listen = batches(script, CENTRAL, ["sb-listen"])[0]
    assert listen["start"] >= batches(script, CENTRAL, ["install", "ovs", "underlay"])[0]["end"]
    assert all(batches(script, h, ["controller"])[0]["start"] >= listen["end"] for h in (HOST1, HOST2))
    assert batches(script, CENTRAL, ["chassis", "controller"])
    assert (CENTRAL, tuple(ENCAPS)) in script.calls  # the encap gate read the SB
    out = capsys.readouterr().out
    assert "gate: every chassis registered with its encap IP, 2 geneve tunnels on every node" in out
    assert "lab t-rec is up" in out
    state = LabState(load_lab(config))
    assert state.backend() == "fake" and state.dir.stat().st_mode & 0o777 == 0o700


def test_a_central_failure_stops_up_and_names_node_and_step(lab: tuple[Path, Script]) -> None:
    config, script = lab
    script.load("up")
    script.fail_step(CENTRAL, "central")
    with pytest.raises(StageFailed) as e:
        up(config, "fake")
    assert e.value.message == "ovn-central-01: provisioning step central failed (exit 1)"
    assert "a fault the test injected" in e.value.evidence and "logs/ovn-central-01.log" in e.value.fix
    for host in (HOST1, HOST2):  # the hosts stopped waiting for the SB and started no controller
        assert not batches(script, host, ["controller"])
    assert LabState(load_lab(config)).backend() == "fake"  # teardown will find what was made


def test_gate_timeout_names_node_condition_and_shows_the_dump(lab: tuple[Path, Script]) -> None:
    config, script = lab
    script.load("up")
    rows = json.loads(script.stdout(CENTRAL, ENCAPS))
    rows["data"] = [r for r in rows["data"] if r[0] != HOST2]  # ovn-host-02 never registers
    script.answer(CENTRAL, ENCAPS, stdout=json.dumps(rows))
    with pytest.raises(GateTimeout) as e:
        up(config, "fake")
    assert e.value.node == HOST2 and e.value.what == "SB Encap geneve 192.168.1.63 for chassis ovn-host-02"
    assert e.value.observed == "Encap of ovn-host-02: no chassis row, want geneve 192.168.1.63"
    assert "ovn-host-02 # ovs-vsctl show" in e.value.evidence and "ovn-central-01 # ovn-sbctl show" in e.value.evidence
    assert "Chassis ovn-host-01" in e.value.evidence  # the real `ovn-sbctl show` output, recorded


def test_the_encap_gate_wants_the_nodes_own_ip(lab: tuple[Path, Script]) -> None:
    config, script = lab
    script.load("up")
    rows = json.loads(script.stdout(CENTRAL, ENCAPS))
    for r in rows["data"]:
        if r[0] == HOST1:
            r[1] = "10.99.0.2"  # registered, but with another address (the wrong-encap-ip exercise)
    script.answer(CENTRAL, ENCAPS, stdout=json.dumps(rows))
    with pytest.raises(GateTimeout) as e:
        up(config, "fake")
    assert e.value.observed == "Encap of ovn-host-01: geneve 10.99.0.2, want geneve 192.168.1.62"


def test_a_failed_controller_step_shows_the_lab(lab: tuple[Path, Script]) -> None:
    config, script = lab
    script.load("up")
    script.fail_step(HOST2, "controller")
    with pytest.raises(StageFailed) as e:
        up(config, "fake")
    assert e.value.message == "ovn-host-02: provisioning step controller failed (exit 1)"
    assert "what the lab shows now:\novn-host-02 # ovs-vsctl show" in e.value.evidence


def test_preflight_failure_creates_nothing(lab: tuple[Path, Script]) -> None:
    config, script = lab
    script.probes = [
        Probe("tools", lambda: "missing: ovn-northd", "apt-get install ovn-central"),
        Probe("speed", lambda: "slow", "be patient", advisory=True),  # never stops up
    ]
    with pytest.raises(PreflightFailed) as e:
        up(config, "fake")
    assert e.value.evidence == "  ✗ tools: missing: ovn-northd\n    fix: apt-get install ovn-central"
    assert script.created == 0 and LabState(load_lab(config)).backend() is None


# -- demo ---------------------------------------------------------------------------------------------------
SECTIONS = ["## 4-5.", "## 6. Trace", "## 7. Attach", "## 8. A VM per port", "## Checks"]


def test_demo_binds_while_central_builds_and_prints_in_the_tutorials_order(lab: tuple[Path, Script], capsys) -> None:  # type: ignore[no-untyped-def]
    config, script = lab
    is_up(config)
    script.load("demo")
    script.delay_step(CENTRAL, "logical", 0.3)
    dump = ("ovs-ofctl", "dump-flows", "br-int")  # read to explain the binding: dhclient runs meanwhile
    script.answer(HOST1, dump, stdout=script.stdout(HOST1, dump), delay=0.5)
    ips = demo(config)
    assert ips == {"port1": "10.0.0.11", "port2": "10.0.0.12", "port3": "10.0.0.13"}
    logical = batches(script, CENTRAL, ["logical"])[0]
    assert all(batches(script, h, ["bind"])[0]["start"] < logical["end"] for h in (HOST1, HOST2))
    read = script.first(HOST1, "ovs-ofctl") + time.time() - time.monotonic()  # the sessions log wall time
    assert batches(script, HOST1, ["dhcp"])[0]["start"] < read + 0.5
    out = capsys.readouterr().out
    at = [out.index(s) for s in SECTIONS]
    assert at == sorted(at)
    assert at[1] < out.index("put_dhcp_opts(offerip = 10.0.0.11") < at[2]
    assert at[2] < out.index("ovn-host-01 # : ok, bind (fake)") < at[3]  # shown in its section, run earlier
    assert out.index("Port_Binding port3") > out.index("ovn-host-02 # : ok, bind (fake)")
    assert "# vm1 -> vm3 (ovn-host-01 -> ovn-host-02 over geneve)" in out
    assert "demo done" in out and "vm3=10.0.0.13" in out


def test_demo_step_runs_every_section_in_turn(lab: tuple[Path, Script], monkeypatch: pytest.MonkeyPatch) -> None:
    config, script = lab
    is_up(config)
    script.load("demo")
    asked: list[float] = []
    monkeypatch.setattr(builtins, "input", lambda prompt="": asked.append(time.monotonic()) or "")
    demo(config, step=True, transcript=config.parent / "handout.md")
    assert len(asked) == 5
    # nothing of a section runs before the trainer pressed Enter for it
    assert script.first(CENTRAL, "ovn-trace") > asked[1]
    sbshow = next(t for (n, a), t in zip(script.calls, script.times, strict=True) if a == ("ovn-sbctl", "show"))
    assert sbshow > asked[2]
    logical = batches(script, CENTRAL, ["logical"])[0]
    binds = [batches(script, h, ["bind"])[0] for h in (HOST1, HOST2)]
    assert all(b["start"] >= logical["end"] for b in binds)
    dhcp = [batches(script, h, ["dhcp"])[0] for h in (HOST1, HOST2)]
    assert min(d["start"] for d in dhcp) >= max(b["end"] for b in binds)
    md = (config.parent / "handout.md").read_text()
    assert md.count("```") % 2 == 0 and "## 6. Trace a DHCP request (on central)" in md


def test_demo_explains_what_it_cannot_read(lab: tuple[Path, Script], capsys) -> None:  # type: ignore[no-untyped-def]
    """A fact the explanation cannot read is named where the explanation would be; the demo goes on."""
    config, script = lab
    is_up(config)
    script.load("demo")
    script.answer(CENTRAL, FACTS["sb_port_keys"].argv(""), rc=1, stderr="ovn-sbctl: database connection failed")  # type: ignore[misc]
    demo(config)
    out = capsys.readouterr().out
    assert "underneath: cannot read the SB's port tunnel keys on ovn-central-01" in out
    assert "database connection failed" in out and "demo done" in out


def test_demo_ping_failure_names_both_ends(lab: tuple[Path, Script]) -> None:
    config, script = lab
    is_up(config)
    script.load("demo")
    ping = ["ip", "netns", "exec", "vm1", "ping", "-c", "2", "-i", "0.01", "-W", "2", "10.0.0.13"]
    script.answer(HOST1, ping, rc=1, stdout="2 packets transmitted, 0 received, 100% packet loss, time 1012ms\n")
    with pytest.raises(StageFailed) as e:
        demo(config)
    assert e.value.message == "ovn-host-01: vm1 cannot ping vm3 (10.0.0.13, ovn-host-01 -> ovn-host-02 over geneve)"


def test_demo_trace_without_the_offer_fails(lab: tuple[Path, Script]) -> None:
    config, script = lab
    is_up(config)
    script.load("demo")
    trace = next(r for r in script.answers if r[1][:1] == ("ovn-trace",))
    script.answer(*trace, stdout="# no put_dhcp_opts: the port has no dhcpv4_options\n")
    with pytest.raises(StageFailed, match=r"ovn-trace of port1 does not show put_dhcp_opts\(offerip = 10.0.0.11"):
        demo(config)


def test_demo_failed_show_prints_what_it_printed(lab: tuple[Path, Script], capsys) -> None:  # type: ignore[no-untyped-def]
    config, script = lab
    is_up(config)
    script.load("demo")
    script.answer(CENTRAL, ["ovn-nbctl", "show"], rc=1, stderr="ovn-nbctl: database connection failed\n")
    with pytest.raises(ShowFailed) as e:
        demo(config)
    assert e.value.message == "ovn-central-01: ovn-nbctl show failed"
    assert "ovn-central-01 # ovn-nbctl show\novn-nbctl: database connection failed" in capsys.readouterr().out


# -- gates --------------------------------------------------------------------------------------------------
def test_wait_for_polls_until_the_condition_holds() -> None:
    seen = iter([(False, "no"), (False, "still no"), (True, "yes")])
    assert gates.wait_for("n1", "it", lambda: next(seen), lambda: "dump", 5) < 1


def test_wait_for_times_out_with_the_last_observation_and_the_dump(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gates, "SCALE", 0.01)

    def probe() -> tuple[bool, str]:  # a node that cannot answer yet is a failed attempt, not a crash
        raise CommandFailed("n1", "ovn-sbctl show", 1, "database connection failed")

    with pytest.raises(GateTimeout) as e:
        gates.wait_for("n1", "the SB", probe, lambda: "n1 # ovs-vsctl show\n...", 100)
    observed = "CommandFailed: n1: ovn-sbctl show exited 1: database connection failed"
    assert (e.value.node, e.value.what, e.value.observed) == ("n1", "the SB", observed)
    assert e.value.evidence.startswith("n1 # ovs-vsctl show") and "after 1 s" in e.value.message


def test_a_bug_in_a_probe_is_not_a_timeout() -> None:
    """A KeyError in a parser is the code's fault: it surfaces at once, not as a gate that blames a node."""
    with pytest.raises(KeyError):
        gates.wait_for("n1", "it", lambda: {}["missing"], lambda: "", 60)


def test_wait_for_gives_up_when_told(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gates, "SCALE", 0.01)  # broken, it would time out: fast
    with pytest.raises(GaveUp, match="n2: stopped waiting for the SB"):
        gates.wait_for("n2", "the SB", lambda: (False, "no"), lambda: "", 60, lambda: True)


# -- check --------------------------------------------------------------------------------------------------
DIAGNOSES = {
    "exercise-wrong-mac": (
        {"mac"},
        "port1 in vm1 has MAC c0:ff:ee:00:00:99, the logical port expects c0:ff:ee:00:00:11",
    ),
    "exercise-no-dhcp-options": ({"dhcpv4_options"}, "dhcpv4_options not set on port2"),
    "exercise-controller-stopped": ({"controller"}, "ovn-controller is not running on ovn-host-02"),
    "exercise-wrong-encap-ip": ({"encap", "tunnels"}, "encap IP is 10.99.0.2, expected 192.168.1.62"),
    "exercise-port-not-bound": ({"unbound"}, "port3 is not bound on ovn-host-02"),
    "fault-lease": ({"lease"}, "vm2 has no lease for 10.0.0.12"),
    "fault-netns": ({"netns"}, "port3 is not in namespace vm3"),
    "fault-mtu": ({"mtu"}, "full-size frames do not cross the geneve tunnel"),
    "fault-dhcp-keys": ({"dhcp_keys"}, "DHCP options of port1 lack server_id, server_mac"),
    "fault-lsp": ({"lsp"}, "logical port port2 is missing"),
    "fault-controller-unreachable": ({"controller"}, "ovn-controller on ovn-host-02 is not connected to the SB"),
    "fault-controller-dead": ({"controller", "chassis", "tunnels", "unbound"}, "no Chassis/Encap row in the SB"),
}


@pytest.mark.parametrize("phase", list(DIAGNOSES))
def test_every_diagnosis_from_recorded_facts(lab: tuple[Path, Script], phase: str) -> None:
    config, script = lab
    is_up(config)
    script.load(phase)
    lab_, backend = open_up_lab(config)
    if phase.startswith("exercise-"):  # recorded as `exercise.start` sees it: the healthy lab first
        assert all(f.ok for f in run_checks(lab_, backend))
        for node, argv in exercises.EXERCISES[phase.removeprefix("exercise-")].injections(lab_, backend):
            assert backend.run(node, argv).ok
    codes, text = DIAGNOSES[phase]
    bad = [f for f in run_checks(lab_, backend) if not f.ok]
    assert {f.code for f in bad} == codes, bad
    assert any(text in f.what for f in bad), [f.what for f in bad]
    assert all(f.why for f in bad)


def test_a_port_referring_to_no_dhcp_options_row(lab: tuple[Path, Script]) -> None:
    config, script = lab
    is_up(config)
    script.load("healthy")
    argv = list(FACTS["nb_dhcp"].argv(""))  # type: ignore[misc]
    rows = json.loads(script.stdout(CENTRAL, argv))
    rows["data"] = []  # the row the ports refer to is gone
    script.answer(CENTRAL, argv, stdout=json.dumps(rows))
    bad = [f for f in run_checks(*open_up_lab(config)) if not f.ok]
    assert [f.what for f in bad] == [f"dhcpv4_options not set on port{i}" for i in (1, 2, 3)]


def test_a_healthy_lab_passes_every_check(lab: tuple[Path, Script]) -> None:
    config, script = lab
    is_up(config)
    script.load("healthy")
    found = run_checks(*open_up_lab(config))
    assert all(f.ok for f in found)
    assert "1500-byte frames cross the tunnel (vm1 -> vm3)" in [f.what for f in found]
    assert len(found) == 20  # 3 nodes x (daemons, controller, chassis, tunnels), 3 ports x (bound, lease), ACLs, MTU


def test_check_names_each_fact_it_cannot_read(lab: tuple[Path, Script], capsys) -> None:  # type: ignore[no-untyped-def]
    """Every read `invoke check` makes on a healthy lab (the Observer's own list of them, so a new fact cannot
    be missed), made to fail in turn: check exits 1 and names what it could not read and where."""
    config, script = lab
    is_up(config)
    script.load("healthy")
    observe = Observer(*open_up_lab(config))
    assert all(f.ok for f in run_checks(observe.lab, observe.backend, observe))
    reads = list(dict.fromkeys(observe.reads))  # each (node, argv, what) once, in the order check read them
    assert {what for _, _, what in reads} >= {"the NB's ACLs", "the NB's port security", "the daemons' pidfiles"}
    missed = []
    for node, argv, what in reads:
        healthy = script.answers[(node, argv)]
        script.answer(node, argv, rc=1, stderr=f"{argv[0]}: database connection failed (Connection refused)")
        with pytest.raises(SystemExit) as e:
            tasks.check(MockContext(), config=str(config))
        out = capsys.readouterr().out
        if e.value.code != 1 or f"cannot read {what} on {node}" not in out or "Connection refused" not in out:
            missed.append((node, what, e.value.code, out))
        script.answers[(node, argv)] = healthy
    assert not missed, missed
    assert len(reads) == 23  # 3 nodes x (daemons, connection, external_ids, interfaces), 3 leases, 1 encap,
    # switches, DHCP, ports, chassis, bindings, ACLs, port security


def test_check_reports_one_state_of_the_lab(lab: tuple[Path, Script]) -> None:
    """One report is one snapshot: each fact is read once (the MTU check takes vm1's links as the binding
    check read them), so a lab that changes during the check cannot give an all-ok report that no moment
    of it had; a fact that could not be read stays unreadable for the whole report."""
    config, script = lab
    is_up(config)
    script.load("healthy")
    observe = Observer(*open_up_lab(config))
    assert all(f.ok for f in run_checks(observe.lab, observe.backend, observe))
    argvs = [(node, argv) for node, argv, _ in observe.reads]
    assert len(argvs) == len(set(argvs)), sorted(a for a in argvs if argvs.count(a) > 1)
    key = (HOST1, tuple(FACTS["ns_addrs"].argv("vm1")))  # type: ignore[misc]
    script.answers[key] = [{"rc": 1, "stdout": "", "stderr": "Cannot open network namespace"}, script.answers[key][-1]]
    bad = [f for f in run_checks(*open_up_lab(config)) if not f.ok]
    assert [f.what for f in bad] == [f"cannot read the links in vm1 on {HOST1}"]


def test_check_names_a_fact_it_cannot_parse(lab: tuple[Path, Script]) -> None:
    config, script = lab
    is_up(config)
    script.load("healthy")
    script.answer(CENTRAL, FACTS["nb_acls"].argv(""), stdout="ovn-nbctl: not JSON")  # type: ignore[misc]
    bad = [f for f in run_checks(*open_up_lab(config)) if not f.ok]
    assert [(f.code, f.what) for f in bad] == [("unreadable", f"cannot read the NB's ACLs on {CENTRAL}")]
    assert "not JSON" in bad[0].evidence


@pytest.mark.parametrize("out", ['{"pid_alive:ovsdb-server": true}', "[]"])
def test_check_names_the_daemons_it_cannot_read(lab: tuple[Path, Script], out: str) -> None:
    """The provisioner's answer without a daemon asked for (or not an object) is an unreadable fact."""
    config, script = lab
    is_up(config)
    script.load("healthy")
    argv = next(a for n, a in script.answers if n == HOST1 and "facts" in a)
    script.answer(HOST1, argv, stdout=out)
    bad = [f for f in run_checks(*open_up_lab(config)) if not f.ok and f.node == HOST1]
    assert [f.what for f in bad] == [f"cannot read the daemons' pidfiles on {HOST1}"]


def test_status_from_recorded_facts(lab: tuple[Path, Script]) -> None:
    config, script = lab
    is_up(config)
    script.load("healthy")
    st = status(config)
    assert st.chassis[HOST2] == {"encap": "geneve", "ip": "192.168.1.63"}
    assert st.bindings["port3"] == {"chassis": HOST2, "up": True}
    assert st.leases["port1"] == {"node": HOST1, "netns": "vm1", "ipv4": ["10.0.0.11/24"]}
    assert st.nodes[HOST1].tunnels == ["192.168.1.61", "192.168.1.63"]


def test_status_and_graph_say_what_they_cannot_read(lab: tuple[Path, Script], capsys) -> None:  # type: ignore[no-untyped-def]
    """An unreadable SB, OVS or namespace is shown as such, never as no chassis, no tunnel or no lease."""
    from labgen.workshop.graph import dot

    config, script = lab
    is_up(config)
    script.load("healthy")
    script.answer(CENTRAL, FACTS["sb_encaps"].argv(""), rc=1, stderr="ovn-sbctl: database connection failed")  # type: ignore[misc]
    script.answer(HOST1, FACTS["interfaces"].argv(""), rc=1, stderr="ovs-vsctl: db.sock: connection failed")  # type: ignore[misc]
    script.answer(HOST1, FACTS["ns_addrs"].argv("vm1"), rc=1, stderr="Cannot open network namespace")  # type: ignore[misc]
    st = status(config)
    assert st.leases["port1"]["ipv4"] is None and st.nodes[HOST1].tunnels is None
    assert [u.split(":")[0] for u in st.unreadable] == [
        f"cannot read the SB's Encap rows on {CENTRAL}",
        f"cannot read the OVS interfaces on {HOST1}",
        f"cannot read the links in vm1 on {HOST1}",
    ]
    capsys.readouterr()
    tasks.status(MockContext(), config=str(config))
    out = capsys.readouterr().out
    assert "cannot read the links in vm1" in out and "Cannot open network namespace" in out
    drawn = dot(open_up_lab(config)[0], st)
    assert "lease: cannot read" in drawn and "tunnels: cannot read" in drawn and "SB: cannot read" in drawn


def test_capture_that_tcpdump_cannot_read_is_not_no_packets(
    lab: tuple[Path, Script], monkeypatch: pytest.MonkeyPatch, capsys
) -> None:  # type: ignore[no-untyped-def]
    if shutil.which("tcpdump") is None:
        pytest.skip("the host has no tcpdump to summarize a capture with")
    config, script = lab
    is_up(config)
    script.load("healthy")
    node_argv = [sys.executable, "-c", "print('not a pcap')"]  # what the node's capture wrote
    monkeypatch.setattr(FakeBackend, "node_argv", lambda *_, **__: node_argv)
    with pytest.raises(LabError, match="tcpdump cannot read "):
        capture(config, HOST1, port="port1", seconds=1)
    assert "no packets" not in capsys.readouterr().out


# -- exercises ----------------------------------------------------------------------------------------------
def test_exercise_start_check_hint_solve(lab: tuple[Path, Script], capsys) -> None:  # type: ignore[no-untyped-def]
    config, script = lab
    is_up(config)
    script.load("exercise-wrong-mac")
    exercises.start(config, "wrong-mac")
    assert (HOST1, ("ip", "-n", "vm1", "link", "set", "port1", "address", "c0:ff:ee:00:00:99")) in script.calls
    assert not exercises.check(config)
    assert "port1 in vm1 has MAC c0:ff:ee:00:00:99" in capsys.readouterr().out
    exercises.hint(config)
    assert "Compare the MAC of port1 inside vm1" in capsys.readouterr().out
    script.load("solve")
    exercises.solve(config)
    assert batches(script, CENTRAL, ["chassis", "controller"]) and batches(script, CENTRAL, ["logical"])
    assert batches(script, HOST1, ["bind", "dhcp"]) and batches(script, HOST2, ["bind", "dhcp"])
    with pytest.raises(LabError, match="no exercise running"):
        exercises.hint(config)


def test_exercise_needs_a_healthy_lab_and_a_known_name(lab: tuple[Path, Script]) -> None:
    config, script = lab
    is_up(config)
    script.load("fault-lease")
    with pytest.raises(LabError, match="the lab must pass `invoke check` before an exercise starts"):
        exercises.start(config, "wrong-mac")
    with pytest.raises(LabError, match="no exercise 'wrong-mc'; fix: use one of: wrong-mac"):
        exercises.start(config, "wrong-mc")


def test_an_old_state_dir_is_made_private(lab: tuple[Path, Script]) -> None:
    config, _ = lab
    state = LabState(load_lab(config))
    state.dir.mkdir(parents=True, mode=0o755)
    state.dir.chmod(0o755)  # as versions before 0700 made it
    state.remember("fake")
    assert state.dir.stat().st_mode & 0o777 == 0o700 and state.dir.parent.stat().st_mode & 0o777 == 0o700


def test_exercise_check_says_solved_once_the_lab_is_healthy(lab: tuple[Path, Script]) -> None:
    config, script = lab
    is_up(config)
    LabState(load_lab(config)).start_exercise("wrong-mac")
    script.load("healthy")
    assert exercises.check(config)
    assert LabState(load_lab(config)).exercise() is None


# -- doctor -------------------------------------------------------------------------------------------------
def test_doctor_fails_only_on_the_labs_own_backend(lab: tuple[Path, Script], monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    config, script = lab
    for name in ("netns", "vagrant"):
        monkeypatch.delitem(BACKENDS, name)
    script.probes = [
        Probe("tools", lambda: None, "", detail=lambda: "all there"),
        Probe("speed", lambda: "TCG", "be patient", advisory=True),
    ]
    assert doctor(config)
    out = capsys.readouterr().out
    assert "ok   fake: tools" in out and "all there" in out and "warn fake: speed" in out
    script.probes.append(Probe("libvirt", lambda: "cannot connect", "start libvirtd"))
    assert not doctor(config)
    assert "fail fake: libvirt" in (out := capsys.readouterr().out) and "fix: start libvirtd" in out


class OtherFake(FakeBackend):
    name = "other"

    def probes(self) -> list[Probe]:
        return [Probe("libvirt", lambda: "cannot connect", "start libvirtd")]


def test_doctor_only_warns_about_other_backends(lab: tuple[Path, Script], monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    config, _ = lab
    for name in ("netns", "vagrant"):
        monkeypatch.delitem(BACKENDS, name)
    monkeypatch.setitem(BACKENDS, "other", "tests.test_fake:OtherFake")
    assert doctor(config)
    assert "warn other: libvirt" in capsys.readouterr().out


def test_teardown_of_a_lab_never_up_needs_no_libvirt_python(lab: tuple[Path, Script], monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    """With no state, teardown asks every backend for leftovers: the vagrant backend's sweep once imported
    libvirt-python for that, and where it is missing teardown showed a traceback."""
    from labgen.lab import teardown

    config, _ = lab
    monkeypatch.setitem(sys.modules, "libvirt", None)  # `import libvirt` raises ImportError
    teardown(config)
    assert "lab t-rec removed" in capsys.readouterr().out


def test_a_hostile_path_in_a_note_is_shown_not_run(tmp_path: Path, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    """A lab.toml (or --transcript) path holding rich markup or an escape sequence is printed as it is:
    `[/]` once made rich raise (a traceback called a bug) and ESC reached the terminal."""
    from labgen.lab import open_lab
    from labgen.narrator import Narrator

    monkeypatch.setitem(BACKENDS, "fake", "tests.fake:FakeBackend")
    d = tmp_path / "a[" / "]b[red]c\x1b[2J"  # the path holds [/] and [red]
    d.mkdir(parents=True)
    config = d / "lab.toml"
    config.write_text((HERE.parent / "lab.toml").read_text().replace('backend = "vagrant"', 'backend = "fake"'))
    is_up(config)
    later = time.time() + 60
    os.utime(config, (later, later))  # changed after up: open_lab notes it
    lab, _ = open_lab(config)
    narrator = Narrator(lab, "fake", transcript=d / "handout.md")
    narrator.save()
    out = capsys.readouterr().out
    assert "\x1b" not in out
    assert f"{d}".replace("\x1b", "\\x1b") + "/lab.toml changed after" in out
    assert f"transcript: {d}".replace("\x1b", "\\x1b") + "/handout.md" in out


# -- the tasks, through invoke's MockContext ---------------------------------------------------------------
def test_every_task_makes_one_labgen_call_that_exists(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib

    made: list[str] = []
    monkeypatch.setattr(tasks, "call", lambda target, *a, **kw: made.append(target))
    args = {
        "exec": ("n", "true"),
        "ssh": ("n",),
        "capture": ("n",),
        "snapshot": ("save",),
        "start": ("x",),
        "exercise": ("x",),
        "trace": ("vm1", "vm3"),
        "bundle": ("/tmp/b",),
    }
    for name in tasks.ns.task_names:
        if name == "setup":
            continue  # execs scripts/setup
        made.clear()
        task = tasks.ns[name]
        task(MockContext(), *args.get(name.split(".")[-1], ()))
        assert len(made) == 1, (name, made)
        module, fn = made[0].split(":")
        assert callable(getattr(importlib.import_module(module), fn)), made[0]


def test_task_bad_input_is_one_line_and_exit_2(lab: tuple[Path, Script], capsys) -> None:  # type: ignore[no-untyped-def]
    config, _ = lab
    with pytest.raises(SystemExit) as e:
        tasks.up(MockContext(), backend="netnss", config=str(config))
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err == "✗ no backend 'netnss'; fix: use one of: fake, netns, vagrant\n"


def test_task_failure_is_one_line_and_exit_1(lab: tuple[Path, Script], capsys) -> None:  # type: ignore[no-untyped-def]
    config, _ = lab
    with pytest.raises(SystemExit) as e:
        tasks.check(MockContext(), config=str(config))
    assert e.value.code == 1
    assert capsys.readouterr().err == "✗ lab t-rec is not up; fix: run `invoke up` first\n"


def test_task_check_with_problems_exits_1(lab: tuple[Path, Script], capsys) -> None:  # type: ignore[no-untyped-def]
    config, script = lab
    is_up(config)
    script.load("fault-lease")
    with pytest.raises(SystemExit) as e:
        tasks.check(MockContext(), config=str(config))
    assert e.value.code == 1 and "18 ok, 1 problem" in capsys.readouterr().out


def test_task_bug_shows_its_traceback(lab: tuple[Path, Script], monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    config, _ = lab
    monkeypatch.setattr("labgen.lab.load_lab", lambda _: 1 / 0)
    with pytest.raises(SystemExit) as e:
        tasks.status(MockContext(), config=str(config))
    err = capsys.readouterr().err
    assert e.value.code == 1 and "Traceback" in err and "ZeroDivisionError" in err
    assert err.rstrip().endswith(
        "this is a bug in ovn-lab, not a problem of your lab: please report the traceback above"
    )


def test_task_invalid_lab_prints_every_problem(lab: tuple[Path, Script], capsys) -> None:  # type: ignore[no-untyped-def]
    config, _ = lab
    config.write_text((HERE / "errors" / "two-centrals.toml").read_text())
    with pytest.raises(SystemExit) as e:
        tasks.up(MockContext(), config=str(config))
    err = capsys.readouterr().err.splitlines()
    assert e.value.code == 2 and err and all(ln.startswith(f"✗ {config}: ") and "; fix: " in ln for ln in err)


def test_unknown_command_fails_the_test(lab: tuple[Path, Script]) -> None:
    config, script = lab
    is_up(config)
    with pytest.raises(UnknownCommand):
        open_up_lab(config)[1].run(HOST1, ["rm", "-rf", "/"])
    script.unknown.clear()  # this test wanted it


def test_trace_reads_ovn_trace_and_detrace_as_recorded(lab: tuple[Path, Script]) -> None:
    """The parsing and the handout format, from the outputs recorded on real daemons."""
    config, script = lab
    is_up(config)
    script.load("trace")
    out = "\n".join(trace(config, "vm1", "vm3"))
    assert "== vm1 -> vm3: port1 (ovn-host-01) -> port3 (ovn-host-02) on net0 ==" in out
    assert "ingress 25. ls_in_l2_lkup: eth.dst == c0:ff:ee:00:00:13" in out
    assert "table 33: table=25 (ls_in_l2_lkup)" in out and "reg15=0x3 (outport key)" in out
    assert "=> geneve to 192.168.1.63: VNI 0x1" in out and "(from logical port key 1 to key 3)" in out
    assert (HOST2, ("ovs-vsctl", "--bare", "--columns=ofport", "find", "interface", "type=geneve",
                    "options:remote_ip=192.168.1.62")) in script.calls  # fmt: skip
    dhcp = "\n".join(trace(config, "vm2", "vm2", proto="dhcp"))
    assert "put_dhcp_opts(offerip = 10.0.0.12" in dhcp and "=> to ovn-controller" in dhcp
    with pytest.raises(LabError, match="no port or namespace 'vm9'"):
        trace(config, "vm9", "vm3")


@pytest.mark.parametrize(
    ("rc", "stdout", "said"),
    [(1, "", "cannot read the geneve port to 192.168.1.62 on"), (0, "\n", "has no geneve tunnel from")],
)
def test_trace_tells_an_unreadable_tunnel_from_a_missing_one(
    lab: tuple[Path, Script], rc: int, stdout: str, said: str
) -> None:
    config, script = lab
    is_up(config)
    script.load("trace")
    argv = FACTS["geneve_ofport"].argv("192.168.1.62")  # type: ignore[misc]
    script.answer(HOST2, argv, rc=rc, stdout=stdout, stderr="ovs-vsctl: db.sock: Connection refused" if rc else "")
    with pytest.raises(LabError, match=said):
        trace(config, "vm1", "vm3")


@pytest.mark.parametrize(
    "actions",
    [  # the userspace datapath (netns), then the kernel's (VMs), as ofproto/trace prints them
        "-> tunneling to 192.168.1.63 via br-phy\nDatapath actions: tnl_push(tnl_port(4),header(size=58,type=5,"
        "eth(dst=52:54:00:7d:ce:03,src=52:54:00:7d:ce:02,dl_type=0x0800),ipv4(src=192.168.1.62,dst=192.168.1.63,"
        "proto=17,tos=0,ttl=64,frag=0x4000),udp(src=0,dst=6081,csum=0xffff),geneve(crit,vni=0x1,"
        "options({class=0x102,type=0x80,len=4,0x10003}))),out_port(2)),1",
        "Datapath actions: set(tunnel(tun_id=0x1,src=192.168.1.62,dst=192.168.1.63,ttl=64,tp_dst=6081,"
        "geneve({class=0x102,type=0x80,len=4,0x10003}),flags(df|csum|key))),3",
    ],
)
def test_the_tunnel_is_read_from_either_datapath(actions: str) -> None:
    t = detrace.tunnel(actions)
    assert t is not None and (t.remote, t.vni, t.option, t.ports()) == ("192.168.1.63", "0x1", "0x10003", (1, 3))


def test_lflow_list_and_dump_flows_are_read_as_recorded() -> None:
    """explain's two text parsers (labgen.workshop.detrace), on the outputs recorded for the lflow_list and
    openflow facts."""
    rows = json.loads((HERE / "recorded" / "demo.json").read_text())

    def raw(node: str, fact: str) -> str:
        argv = list(FACTS[fact].argv(""))  # type: ignore[misc]
        return str(next(r["answers"][-1]["stdout"] for r in rows if r["node"] == node and r["argv"] == argv))

    flows = detrace.lflows(raw(CENTRAL, "lflow_list"))
    offers = [(dp, m) for dp, st, m, a in flows if "put_dhcp_opts" in a]
    assert {dp for dp, _ in offers} == {"net0"} and len(offers) == 6, offers  # DISCOVER and renewal, per port
    assert ("net0", "ls_in_l2_lkup") in {(dp, st) for dp, st, _, _ in flows}
    mine = tuple(f"{reg}=0x3{end}" for reg in ("reg14", "reg15") for end in (",", " "))  # port3's key
    assert sum(detrace.by_table(raw(HOST2, "openflow"), mine, "metadata=0x1").values()) > 0


# -- the exercise tasks, as a trainee runs them ---------------------------------------------------------------
def test_exercise_check_task_ends_a_solved_exercise(lab: tuple[Path, Script], capsys) -> None:  # type: ignore[no-untyped-def]
    """`invoke exercise.check` is the exercise's check: on a healthy lab it says solved and ends the exercise
    (`invoke check` would list the checks and leave the exercise running)."""
    config, script = lab
    is_up(config)
    LabState(load_lab(config)).start_exercise("wrong-mac")
    script.load("healthy")
    tasks.exercise_check(MockContext(), config=str(config))
    assert "solved: wrong-mac" in capsys.readouterr().out
    assert LabState(load_lab(config)).exercise() is None


def test_exercise_check_task_exits_1_while_a_fault_is_there(lab: tuple[Path, Script], capsys) -> None:  # type: ignore[no-untyped-def]
    config, script = lab
    is_up(config)
    LabState(load_lab(config)).start_exercise("wrong-mac")
    script.load("fault-lease")
    with pytest.raises(SystemExit) as e:
        tasks.exercise_check(MockContext(), config=str(config))
    out = capsys.readouterr().out
    assert e.value.code == 1 and "not solved yet: wrong-mac" in out and "vm2 has no lease for 10.0.0.12" in out
    assert LabState(load_lab(config)).exercise() == "wrong-mac"


def test_exercise_tasks_need_a_running_exercise(lab: tuple[Path, Script], capsys) -> None:  # type: ignore[no-untyped-def]
    config, script = lab
    is_up(config)
    script.load("healthy")
    for task in (tasks.exercise_check, tasks.exercise_hint):
        with pytest.raises(SystemExit) as e:
            task(MockContext(), config=str(config))
        assert e.value.code == 1 and "✗ no exercise running" in capsys.readouterr().err, task
    LabState(load_lab(config)).start_exercise("no-dhcp-options")
    tasks.exercise_hint(MockContext(), config=str(config))
    assert "Which DHCP_Options row does each logical switch port reference?" in capsys.readouterr().out


def test_exercise_start_and_solve_tasks_say_what_they_did(lab: tuple[Path, Script], capsys) -> None:  # type: ignore[no-untyped-def]
    """start tells the story of the fault; solve removes what the lab never makes (ACLs, port security) on
    every switch and port before it provisions again, and says so."""
    config, script = lab
    is_up(config)
    script.load("exercise-wrong-mac")
    tasks.exercise_start(MockContext(), "wrong-mac", config=str(config))
    out = capsys.readouterr().out
    assert "exercise wrong-mac started: vm1 lost its network after someone 'tidied up' its interface." in out
    assert "find it with `invoke check`" in out
    script.load("solve")
    tasks.exercise_solve(MockContext(), config=str(config))
    assert (CENTRAL, ("ovn-nbctl", "acl-del", "net0")) in script.calls
    for port in ("port1", "port2", "port3"):
        assert (CENTRAL, ("ovn-nbctl", "lsp-set-port-security", port)) in script.calls
    assert "repaired; `invoke check` shows the state" in capsys.readouterr().out
    assert LabState(load_lab(config)).exercise() is None


def test_an_exercise_on_a_lab_with_fewer_ports_takes_the_last_one() -> None:
    """controller-stopped wants the third port; a lab with one port gets its fault on that port."""
    import tomllib

    from labgen.load import validate

    doc = tomllib.loads((HERE.parent / "lab.toml").read_text())
    doc["ports"] = {"port1": doc["ports"]["port1"]}
    one = validate(doc)
    e = exercises.EXERCISES["controller-stopped"]
    assert e.told(one, "{port} {netns} {node}") == "port1 vm1 ovn-host-01"


def test_demo_shows_what_is_underneath_and_every_ping(lab: tuple[Path, Script], capsys) -> None:  # type: ignore[no-untyped-def]
    config, script = lab
    is_up(config)
    script.load("demo")
    ping = ["ip", "netns", "exec", "vm1", "ping", "-c", "2", "-i", "0.01", "-W", "2", "10.0.0.13"]
    pinged = script.stdout(HOST1, ping).strip().splitlines()[-1]
    demo(config)
    out = capsys.readouterr().out
    at = [out.index(s) for s in SECTIONS]
    for i in (0, 2, 3, 4):  # logical, bind, dhcp, the pings: each section says what OVN made of it
        end = at[i + 1] if i + 1 < len(at) else len(out)
        assert "underneath: " in out[at[i] : end], SECTIONS[i]
    assert pinged and pinged in out[at[4] :]  # the pings' own output, not only their headers
    for host in (HOST1, HOST2):  # each host binds and runs dhclient once
        assert len(batches(script, host, ["bind"])) == 1 and len(batches(script, host, ["dhcp"])) == 1


@pytest.mark.parametrize("node,step", [(CENTRAL, "logical"), (HOST2, "bind"), (HOST2, "dhcp")])
def test_demo_a_failed_step_is_the_error(lab: tuple[Path, Script], node: str, step: str) -> None:
    config, script = lab
    is_up(config)
    script.load("demo")
    script.fail_step(node, step)
    with pytest.raises(StageFailed) as e:
        demo(config)
    assert e.value.message == f"{node}: provisioning step {step} failed (exit 1)"


def test_demo_step_binds_only_after_the_logical_section(lab: tuple[Path, Script], monkeypatch) -> None:  # type: ignore[no-untyped-def]
    config, script = lab
    is_up(config)
    script.load("demo")
    script.delay_step(CENTRAL, "logical", 0.3)
    monkeypatch.setattr(builtins, "input", lambda prompt="": "")
    demo(config, step=True)
    logical = batches(script, CENTRAL, ["logical"])[0]
    assert all(batches(script, h, ["bind"])[0]["start"] >= logical["end"] for h in (HOST1, HOST2))


def test_check_shows_why_and_what_it_saw(lab: tuple[Path, Script], capsys) -> None:  # type: ignore[no-untyped-def]
    config, script = lab
    is_up(config)
    script.load("fault-lease")
    with pytest.raises(SystemExit):
        tasks.check(MockContext(), config=str(config))
    out = capsys.readouterr().out
    assert "FAIL ovn-host-01     vm2 has no lease for 10.0.0.12" in out
    assert "     why: ip netns exec vm2 dhclient -v port2 (tutorial step 8)\n     | IPv4 on port2: none" in out
    assert f"ok   {HOST2:<15} ovn-controller connected\n" in out and out.endswith("\n18 ok, 1 problem\n")
    assert f"ok   {HOST2:<15} port3 bound on ovn-host-02\n" in out  # up, so not "(not up yet)"
    assert out.count("FAIL") == 1 and out.count("ok   ") == 18


def injected(config: Path, script: Script, name: str) -> list[Finding]:
    """The problems check finds once exercise `name` injected its fault, as recorded."""
    is_up(config)
    script.load(f"exercise-{name}")
    lab_, backend = open_up_lab(config)
    assert all(f.ok for f in run_checks(lab_, backend))  # the recording begins with the healthy lab
    for node, argv in exercises.EXERCISES[name].injections(lab_, backend):
        assert backend.run(node, argv).ok
    return [f for f in run_checks(lab_, backend) if not f.ok]


@pytest.mark.parametrize("name", list(exercises.EXERCISES))
def test_check_finds_each_exercise_by_its_code(lab: tuple[Path, Script], name: str) -> None:
    """The finding that exercise.check waits for is there, and says why, for every exercise."""
    bad = injected(*lab, name)
    assert exercises.EXERCISES[name].code in {f.code for f in bad}, bad
    assert all(f.why and f.node for f in bad)


def test_a_wrong_encap_ip_is_said_to_be_off_the_underlay(lab: tuple[Path, Script]) -> None:
    encap = next(f for f in injected(*lab, "wrong-encap-ip") if f.code == "encap")
    assert encap.why.startswith("10.99.0.2 is not on the underlay 192.168.1.0/24: ")
    assert encap.why.endswith("Fix: ovs-vsctl set open_vswitch . external_ids:ovn-encap-ip=192.168.1.62")


def test_an_unbound_port_says_which_iface_id_it_needs(lab: tuple[Path, Script]) -> None:
    unbound = next(f for f in injected(*lab, "port-not-bound") if f.code == "unbound")
    assert "external_ids:iface-id must be exactly port3" in unbound.why
    assert "port3 external_ids: " in unbound.evidence and "port-typo" in unbound.evidence


def test_a_fact_that_cannot_be_read_is_a_finding_not_an_ok(lab: tuple[Path, Script]) -> None:
    config, script = lab
    is_up(config)
    script.load("healthy")
    script.answer(CENTRAL, FACTS["nb_ports"].argv(""), rc=1, stderr="ovn-nbctl: database connection failed\n")  # type: ignore[misc]
    found = run_checks(*open_up_lab(config))
    unreadable = [f for f in found if f.code == "unreadable"]
    assert unreadable and not unreadable[0].ok and "database connection failed" in unreadable[0].evidence
    assert not any(f.ok and "bound on" in f.what for f in found)  # nothing the NB would have said is an ok


def test_a_chassis_with_more_encaps_is_judged_by_its_geneve_one(lab: tuple[Path, Script]) -> None:
    """A chassis may register a vxlan Encap beside geneve (ovn-encap-type=geneve,vxlan): the lab's is geneve."""
    config, script = lab
    is_up(config)
    script.load("healthy")
    argv = FACTS["sb_encaps"].argv("")  # type: ignore[misc]
    rows = [
        [n, ip, "geneve"] for n, ip in ((CENTRAL, "192.168.1.61"), (HOST1, "192.168.1.62"), (HOST2, "192.168.1.63"))
    ]
    rows.append([HOST2, "192.168.1.99", "vxlan"])
    script.answer(CENTRAL, argv, stdout=json.dumps({"data": rows, "headings": ["chassis_name", "ip", "type"]}))
    assert all(f.ok for f in run_checks(*open_up_lab(config)))
