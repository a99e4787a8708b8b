"""A trainer's own topology: hypothesis draws valid labs (1 to 6 nodes, 1 to 3 switches, 1 to 8 ports, ports
on central, dynamic MACs) and each runs on real daemons: up, demo and check pass, teardown leaves nothing.
Two labs of different names and subnets run side by side, and tearing one down leaves the other working."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.e2e import ROOT, Cli, leftovers, netns_missing

MISSING = netns_missing()  # user namespaces, OVS/OVN: as the trainee who runs it
pytestmark = [
    pytest.mark.netns,
    pytest.mark.skipif(bool(MISSING), reason=MISSING),
]


@st.composite
def topologies(draw: st.DrawFn) -> str:
    nodes = draw(st.integers(1, 6))
    central = draw(st.integers(0, nodes - 1))
    switches = draw(st.integers(1, 3))
    ports = draw(st.integers(1, 8))
    text = ['[lab]\nname = "t-topo"\nbackend = "netns"\n[underlay]\nsubnet = "192.168.50.0/24"\n']
    names = [f"node{i}" for i in range(nodes)]
    for i, name in enumerate(names):
        text.append(f'[nodes.{name}]\nip = "192.168.50.{10 + i}"\ncentral = {str(i == central).lower()}\n')
    for s in range(switches):
        text.append(
            f'[switches.sw{s}]\nsubnet = "10.{s}.0.0/24"\nexclude_ips = "10.{s}.0.1..10.{s}.0.10"\n'
            f'[switches.sw{s}.dhcp]\nlease_time = 3600\nrouter = "10.{s}.0.1"\nserver_id = "10.{s}.0.1"\n'
            f'server_mac = "c0:ff:ee:00:0{s}:01"\n'
        )
    for p in range(ports):
        mac = "dynamic" if draw(st.booleans()) else f"c0:ff:ee:00:01:{p:02x}"
        node, switch = draw(st.sampled_from(names)), draw(st.integers(0, switches - 1))
        text.append(f'[ports.p{p}]\nswitch = "sw{switch}"\nnode = "{node}"\nnetns = "vm{p}"\nmac = "{mac}"\n')
    return "\n".join(text)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(topologies())
def test_any_topology_comes_up_leases_and_checks(tmp_path: Path, lab: str) -> None:
    config = tmp_path / "lab.toml"
    config.write_text(lab)
    cli = Cli(config)
    try:
        cli("up", timeout=300)
        demo = cli("demo", timeout=300).stdout
        assert "demo done" in demo, demo
        status = json.loads(cli("status", "--json").stdout)
        assert all(lease["ipv4"] for lease in status["leases"].values()), status["leases"]
        check = cli("check", check=False)
        assert check.returncode == 0, f"{lab}\n{check.stdout}"
    finally:
        cli("teardown", check=False)
    assert not leftovers(cli, "t-topo")


def test_two_switches_get_no_pings_between_them(tmp_path: Path) -> None:
    """net0 and net1 have no router between them: the demo pings within each switch only."""
    text = (ROOT / "lab.toml").read_text().replace('name = "ovn-lab"', 'name = "t-two"')
    text += (
        '\n[switches.net1]\nsubnet = "10.1.0.0/24"\nexclude_ips = "10.1.0.1..10.1.0.10"\n[switches.net1.dhcp]\n'
        'lease_time = 3600\nrouter = "10.1.0.1"\nserver_id = "10.1.0.1"\nserver_mac = "c0:ff:ee:00:01:01"\n'
        '[ports.port4]\nswitch = "net1"\nnode = "ovn-central-01"\nnetns = "vm4"\nmac = "dynamic"\n'
        '[ports.port5]\nswitch = "net1"\nnode = "ovn-host-02"\nnetns = "vm5"\nmac = "c0:ff:ee:00:01:15"\n'
    )
    (tmp_path / "lab.toml").write_text(text)
    cli = Cli(tmp_path / "lab.toml")
    try:
        cli("up", "--backend", "netns")
        demo = cli("demo").stdout
        assert "# vm1 -> vm3 (ovn-host-01 -> ovn-host-02 over geneve)" in demo
        assert "# vm4 -> vm5 (ovn-central-01 -> ovn-host-02 over geneve)" in demo
        assert "# vm1 -> vm4" not in demo and "# vm1 -> vm5" not in demo
        assert "vm4=10.1.0.11" in demo and "vm5=10.1.0.12" in demo
        check = cli("check").stdout
        assert "1500-byte frames cross the tunnel (vm1 -> vm3)" in check
        assert "1500-byte frames cross the tunnel (vm4 -> vm5)" in check
    finally:
        cli("teardown", check=False)
