"""The readiness gates of up and demo on the fake backend: a gate waits through failed attempts (its own
and other gates'), and stops waiting at once when another part of the task failed, so that the trainee
soon sees the cause."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from labgen import gates
from labgen.demo import demo
from labgen.errors import CommandFailed, GateTimeout, GaveUp, StageFailed
from labgen.up import up
from provision.facts import FACTS
from tests.fake import Script
from tests.test_fake import CENTRAL, HOST1, HOST2, is_up, lab  # noqa: F401 (lab: the fixture)

pytestmark = pytest.mark.fake
DOWN = {"rc": 1, "stdout": "", "stderr": "database connection failed (a daemon that does not answer yet)"}


def fact_argv(name: str, arg: str = "") -> list[str]:
    return list(FACTS[name].argv(arg))  # type: ignore[misc]


def flaky(script: Script, node: str, argv: Sequence[str], attempts: int) -> None:
    """The first `attempts` answers to `argv` on `node` fail; then the recorded ones."""
    key = (node, tuple(argv))
    assert key in script.answers, f"nothing recorded for {key}"
    script.answers[key] = [dict(DOWN) for _ in range(attempts)] + script.answers[key]


def attempts(script: Script, node: str, argv: Sequence[str]) -> int:
    return script.calls.count((node, tuple(argv)))


def hv_sync(script: Script) -> list[str]:
    return list(next(a for n, a in script.answers if n == CENTRAL and "--wait=hv" in a))


def test_demo_gates_wait_through_failed_attempts(lab: tuple[Path, Script]) -> None:  # noqa: F811
    """Every gate of the demo fails its first attempts, at the same time: none gives up for its own or
    another gate's failed attempt; each polls until its condition holds."""
    config, script = lab
    is_up(config)
    script.load("demo")
    waits = {
        (CENTRAL, tuple(fact_argv("nb_ports"))): 2,  # the allocation gate
        (CENTRAL, tuple(fact_argv("sb_bindings"))): 3,  # every port up on its chassis
        (CENTRAL, tuple(hv_sync(script))): 3,  # every chassis applied the NB
        (HOST2, tuple(fact_argv("ns_addrs", "vm3"))): 3,  # a lease, while the other host's gate holds
    }
    for (node, argv), n in waits.items():
        flaky(script, node, argv, n)
    assert demo(config) == {"port1": "10.0.0.11", "port2": "10.0.0.12", "port3": "10.0.0.13"}
    for (node, argv), n in waits.items():
        assert attempts(script, node, argv) > n, (node, argv)


def test_demo_gates_stop_waiting_once_a_section_failed(lab: tuple[Path, Script], monkeypatch) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    """The bind gate runs in the background while the trace section fails: it stops at once (it would wait
    60 s) and the error is the trace's, not the gate's."""
    config, script = lab
    is_up(config)
    script.load("demo")
    monkeypatch.setattr(gates, "SCALE", 1.0)
    bindings = fact_argv("sb_bindings")
    script.answer(CENTRAL, bindings, **{k: v for k, v in DOWN.items() if k != "stdout"})  # never holds
    trace = next(k for k in script.answers if k[1][:1] == ("ovn-trace",))
    script.answer(*trace, stdout="# no put_dhcp_opts: the port has no dhcpv4_options\n")
    t0 = time.monotonic()
    with pytest.raises(StageFailed, match="ovn-trace of port1 does not show put_dhcp_opts"):
        demo(config)
    assert time.monotonic() - t0 < 10
    polled = [t for call, t in zip(script.calls, script.times, strict=True) if call == (CENTRAL, tuple(bindings))]
    assert polled and polled[-1] - t0 < 10


def test_up_gates_wait_through_failed_attempts(lab: tuple[Path, Script], capsys) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    """The SB read of every node's encap gate fails first, and one node's tunnels show late: up waits."""
    config, script = lab
    script.load("up")
    encaps, interfaces = fact_argv("sb_encaps"), fact_argv("interfaces")
    flaky(script, CENTRAL, encaps, 4)
    flaky(script, HOST1, interfaces, 2)
    up(config, "fake")
    assert attempts(script, CENTRAL, encaps) > 4 and attempts(script, HOST1, interfaces) > 2
    out = capsys.readouterr().out
    assert "lab t-rec: 3 nodes on 192.168.1.0/24, backend fake" in out and "lab t-rec is up" in out
    assert script.created == 1 and "fake: nodes created" in out


# -- wait_for itself ------------------------------------------------------------------------------------
def test_a_failed_attempt_is_retried_not_counted_as_done() -> None:
    """A node that cannot answer (CommandFailed) or half-written output (ValueError) is a failed attempt."""
    answers: list[object] = [CommandFailed("n1", "ovn-sbctl show", 1, "no SB"), ValueError("half a JSON"), "ok"]
    probed = []

    def probe() -> tuple[bool, str]:
        now = answers[len(probed)]
        probed.append(now)
        if isinstance(now, Exception):
            raise now
        return True, "held"

    gates.wait_for("n1", "it", probe, lambda: "", 5)
    assert len(probed) == 3


def test_give_up_is_asked_before_every_attempt(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gates, "SCALE", 1.0)
    probed: list[int] = []

    def probe() -> tuple[bool, str]:
        probed.append(1)
        return False, "no"

    with pytest.raises(GaveUp):
        gates.wait_for("n1", "it", probe, lambda: "", 60, lambda: len(probed) == 2)
    assert len(probed) == 2


def test_a_timeout_shows_the_last_observation(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gates, "SCALE", 0.005)
    seen: list[str] = []

    def probe() -> tuple[bool, str]:
        seen.append(f"attempt {len(seen) + 1}")
        return False, seen[-1]

    with pytest.raises(GateTimeout) as e:
        gates.wait_for("n1", "it", probe, lambda: "", 60)
    assert len(seen) > 1 and e.value.observed == seen[-1]


def test_the_tunnel_gate_names_the_ports_it_waits_for(lab: tuple[Path, Script]) -> None:  # noqa: F811
    config, script = lab
    script.load("up")
    interfaces = fact_argv("interfaces")
    rows = json.loads(script.stdout(HOST2, interfaces))
    rows["data"] = [r for r in rows["data"] if "geneve" not in r]  # ovn-host-02 never gets its tunnels
    script.answer(HOST2, interfaces, stdout=json.dumps(rows))
    with pytest.raises(GateTimeout) as e:
        up(config, "fake")
    assert (e.value.node, e.value.what) == (HOST2, "2 geneve ports with the other nodes' IPs")
    assert e.value.observed == "geneve remote_ip none, want ['192.168.1.61', '192.168.1.62']"


def test_the_hosts_start_their_controller_once_the_sb_listens(lab: tuple[Path, Script]) -> None:  # noqa: F811
    """Not once central has done all its steps: its own chassis and controller run beside the hosts'."""
    config, script = lab
    script.load("up")
    script.delay_step(CENTRAL, "chassis", 1.5)  # long beside the hosts' own steps, even on a busy machine
    up(config, "fake")
    batch = {(b["node"], tuple(b["steps"])): b for b in script.steps()}
    central = batch[(CENTRAL, ("chassis", "controller"))]
    assert all(batch[(host, ("controller",))]["start"] < central["end"] for host in (HOST1, HOST2))
