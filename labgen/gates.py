"""Readiness gates: bounded waits on real conditions, as OVN's own tests wait (check at once, then back off).

A gate's probe returns (ok, observation). On timeout, GateTimeout names the node and the condition, the
last observation, and a dump of what helps (`ovs-vsctl show`, `ovn-sbctl show`, the ovn-controller log).
"""

from __future__ import annotations

import shlex
import time
from collections.abc import Callable
from typing import Any

from tenacity import RetryError, Retrying, retry_if_result, stop_after_delay, wait_exponential

from provision.facts import FACTS, addr_of, geneve_remotes

from .backends.base import Backend
from .model import Lab


class GateTimeout(Exception):
    def __init__(self, node: str, what: str, observed: str, dump: str, timeout: float):
        self.node, self.what, self.observed, self.dump = node, what, observed, dump
        super().__init__(f"{node}: timed out after {timeout:.0f} s waiting for {what}\n  last seen: {observed}")


class GaveUp(Exception):
    pass


def wait_for(
    node: str,
    what: str,
    probe: Callable[[], tuple[bool, str]],
    dump: Callable[[], str],
    timeout: float = 60,
    give_up: Callable[[], bool] = lambda: False,
) -> float:
    """Poll `probe` until ok; returns the seconds it took. `give_up`: stop early (another node failed, and
    its error is the one to report)."""
    t0 = time.monotonic()
    last: list[str] = ["(not checked)"]

    def attempt() -> bool:
        if give_up():
            raise GaveUp(f"{node}: stopped waiting for {what}")
        try:
            ok, last[0] = probe()
        except Exception as e:  # a node that cannot answer yet is a failed attempt, not a crash
            ok, last[0] = False, f"{type(e).__name__}: {e}"
        return ok

    retrying = Retrying(
        stop=stop_after_delay(timeout),
        wait=wait_exponential(multiplier=0.02, max=0.5),  # 20, 40, 80 ms ...: most conditions hold soon
        retry=retry_if_result(lambda ok: not ok),
    )
    try:
        retrying(attempt)
    except RetryError:
        raise GateTimeout(node, what, last[0], dump(), timeout) from None
    return time.monotonic() - t0


class Gates:
    """The lab's conditions, read through the backend with the provisioner's own fact parsers."""

    def __init__(self, lab: Lab, backend: Backend):
        self.lab, self.b = lab, backend
        self.central = lab.central.name

    def fact(self, node: str, name: str, arg: str = "") -> Any:
        f = FACTS[name]
        assert f.argv is not None
        r = self.b.run(node, f.argv(arg), timeout=30)
        if not r.ok and f.has_default:
            return f.default
        if not r.ok:
            raise RuntimeError(f"{' '.join(r.argv)} exited {r.rc}: {r.stderr.strip()[-300:]}")
        return f.parse(r.stdout)

    def dump(self, node: str) -> Callable[[], str]:
        def collect() -> str:
            parts = []
            cmds = [["ovs-vsctl", "show"], ["sh", "-c", "tail -n 15 /var/log/ovn/ovn-controller.log"]]
            if node != self.central:
                cmds.append(["ovn-sbctl", f"--db=tcp:{self.lab.central.ip}:6642", "--timeout=5", "show"])
            for argv in cmds:
                r = self.b.run(node, argv, timeout=20)
                parts.append(f"{node} # {shlex.join(argv)}\n{(r.stdout + r.stderr).rstrip()}")
            r = self.b.run(self.central, ["ovn-sbctl", "show"], timeout=20)
            parts.append(f"{self.central} # ovn-sbctl show\n{(r.stdout + r.stderr).rstrip()}")
            return "\n".join(parts)

        return collect

    # -- infrastructure -----------------------------------------------------------------------------------
    def encap(self, node: str) -> tuple[bool, str]:
        want = self.lab.node(node).ip
        rows = [r for r in self.fact(self.central, "sb_encaps") if r["chassis_name"] == node]
        seen = ", ".join(f"{r['type']} {r['ip']}" for r in rows) or "no chassis row"
        return any(
            r["ip"] == want and r["type"] == "geneve" for r in rows
        ), f"Encap of {node}: {seen}, want geneve {want}"

    def tunnels(self, node: str) -> tuple[bool, str]:
        want = sorted(n.ip for n in self.lab.nodes if n.name != node)
        have = geneve_remotes(self.fact(node, "interfaces"))
        return have == want, f"geneve remote_ip {have or 'none'}, want {want}"

    # -- logical layer ------------------------------------------------------------------------------------
    def dynamic_addresses(self) -> tuple[bool, str, dict[str, tuple[str, str]]]:
        rows = {r["name"]: r for r in self.fact(self.central, "nb_ports")}
        got: dict[str, tuple[str, str]] = {}
        for p in self.lab.ports:
            dyn = rows.get(p.name, {}).get("dynamic_addresses")
            if isinstance(dyn, str) and len(dyn.split()) >= 2:
                got[p.name] = (dyn.split()[0], dyn.split()[1])
        missing = [p.name for p in self.lab.ports if p.name not in got]
        obs = f"no dynamic_addresses yet: {', '.join(missing)}" if missing else "all allocated"
        return not missing, obs, got

    def hv_synced(self) -> tuple[bool, str]:
        """Every chassis has applied the NB as it is now (DHCP options included): OVN's own barrier."""
        r = self.b.run(self.central, ["ovn-nbctl", "--wait=hv", "--timeout=10", "sync"], timeout=20)
        return r.ok, "every chassis caught up" if r.ok else (r.stderr.strip() or f"exit {r.rc}")

    def ports_up(self) -> tuple[bool, str]:
        chassis = {r["_uuid"]: r["name"] for r in self.fact(self.central, "sb_chassis")}
        rows = {r["logical_port"]: r for r in self.fact(self.central, "sb_bindings")}
        bad = []
        for p in self.lab.ports:
            r = rows.get(p.name)
            where = chassis.get(r["chassis"]) if r and isinstance(r["chassis"], str) else None
            if where != p.node or (r and r.get("up") is not True):
                bad.append(f"{p.name} on {where or 'no chassis'} (want {p.node}, up={r.get('up') if r else None})")
        return not bad, "; ".join(bad) or "all ports up on their chassis"

    def leases(self, node: str, want: dict[str, str]) -> tuple[bool, str]:
        bad = []
        for p in self.lab.ports_on(node):
            have = addr_of(self.fact(node, "ns_addrs", p.netns), p.name)
            if f"{want[p.name]}/{self.lab.prefixlen(p.name)}" not in have:
                bad.append(f"{p.netns}/{p.name} has {have or 'no IPv4'}, want {want[p.name]}")
        return not bad, "; ".join(bad) or "leases held"
