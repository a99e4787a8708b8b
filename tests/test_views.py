"""The views derived from facts (provision/views.py), computed from the facts pinned in tests/facts/ (raw
output recorded on real daemons, parsed by the fact's own parser): what a port was allocated, where it is
bound, the tunnel keys, the geneve tunnels, the ACLs that drop, the MACs port security allows."""

from __future__ import annotations

import json
from typing import Any

import pytest

from provision.facts import FACTS
from provision.views import (
    Allocation,
    Bound,
    PortKey,
    allocations,
    bindings,
    drops,
    geneve_remotes,
    port_keys,
    port_security,
    tunnels,
)
from tests.golden import HERE

pytestmark = pytest.mark.provision


def fact(name: str) -> Any:
    """A pinned fact, parsed anew from its raw output (so a parser change shows here too)."""
    case = json.loads((HERE / "facts" / f"{name}.json").read_text())
    return FACTS[name].parse(case["raw"])


def test_allocations_split_dynamic_addresses() -> None:
    got = allocations(fact("nb_ports"))
    assert got["port1"] == Allocation("c0:ff:ee:00:00:11", "10.0.0.11")
    assert got["port3"] == Allocation("c0:ff:ee:00:00:13", "10.0.0.13")
    # a MAC with no IP (northd had none to give), and a port with none yet
    rows = [{"name": "a", "dynamic_addresses": "0a:00:00:00:00:01"}, {"name": "b", "dynamic_addresses": []}]
    assert allocations(rows) == {"a": Allocation("0a:00:00:00:00:01", "")}


def test_bindings_name_their_chassis() -> None:
    got = bindings(fact("sb_bindings"), fact("sb_chassis"))
    assert got == {
        "port1": Bound("ovn-host-01", True),
        "port2": Bound("ovn-host-01", True),
        "port3": Bound("ovn-host-02", True),
    }
    unbound = [{"logical_port": "x", "chassis": [], "up": False}]
    assert bindings(unbound, fact("sb_chassis")) == {"x": Bound(None, False)}
    claimed = [{"logical_port": "y", "chassis": "0f01ad6c-96ef-4616-ab03-a02f19ec728c", "up": []}]  # up not set yet
    assert bindings(claimed, fact("sb_chassis")) == {"y": Bound("ovn-host-01", None)}


def test_port_keys_join_datapath_and_chassis() -> None:
    got = port_keys(fact("sb_port_keys"), fact("sb_datapaths"), fact("sb_chassis"))
    assert got["port3"] == PortKey(3, 1, "ovn-host-02")


def test_tunnels_from_either_interface_fact() -> None:
    with_ports = tunnels(fact("ofports"))
    assert [(t.remote_ip, t.ofport) for t in with_ports] == [("192.168.1.61", 2), ("192.168.1.63", 1)]
    assert geneve_remotes(fact("interfaces")) == ["192.168.1.61", "192.168.1.63"]
    assert [t.ofport for t in tunnels(fact("interfaces"))] == [None, None]  # that fact does not read ofport


def test_the_acls_that_drop_and_the_macs_port_security_allows() -> None:
    assert [a["match"] for a in drops(fact("nb_acls"))] == ['inport == "port2" && udp.dst == 67']
    assert port_security(fact("nb_port_security")) == {"port1": ["c0:ff:ee:00:00:99"]}
