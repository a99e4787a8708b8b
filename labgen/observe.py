"""The lab's state as the host sees it: facts read on the nodes through the backend, parsed with the
provisioner's own parsers (one parser per fact), and the conditions the gates wait on. `check`, `status`,
the demo and the exercises read the lab through this."""

from __future__ import annotations

import shlex
from collections.abc import Callable
from typing import Any

from provision.core import prompt
from provision.facts import FACTS, addr_of, geneve_remotes
from provision.services import sb_client

from .backends.base import Backend
from .errors import CommandFailed
from .model import Lab


class Observer:
    def __init__(self, lab: Lab, backend: Backend):
        self.lab, self.backend = lab, backend
        self.central = lab.central.name

    def fact(self, node: str, name: str, arg: str = "") -> Any:
        """One fact of one node; CommandFailed when it cannot be read (and has no default)."""
        f = FACTS[name]
        assert f.argv is not None, f"{name} is read inside the node, not from the host"
        r = self.backend.run(node, f.argv(arg), timeout=30)
        if not r.ok and f.has_default:
            return f.default
        if not r.ok:
            raise CommandFailed(node, shlex.join(r.argv), r.rc, r.stderr)
        return f.parse(r.stdout)

    def dump(self, node: str) -> Callable[[], str]:
        """What helps when a wait on `node` failed: its OVS, its controller's log, the SB as it and central
        see it (called only on failure)."""

        def collect() -> str:
            cmds = [(node, ["ovs-vsctl", "show"]), (node, ["tail", "-n", "15", "/var/log/ovn/ovn-controller.log"])]
            if node != self.central:
                cmds.append((node, ["ovn-sbctl", *sb_client(self.lab.sb_remote), "--timeout=5", "show"]))
            cmds.append((self.central, ["ovn-sbctl", "show"]))
            parts = []
            for where, argv in cmds:
                r = self.backend.run(where, argv, timeout=20)
                parts.append(f"{prompt(where, shlex.join(argv))}\n{(r.stdout + r.stderr).rstrip()}")
            return "\n".join(parts)

        return collect

    # -- infrastructure -----------------------------------------------------------------------------------
    def encap(self, node: str) -> tuple[bool, str]:
        want = self.lab.node(node).ip
        rows = [r for r in self.fact(self.central, "sb_encaps") if r["chassis_name"] == node]
        seen = ", ".join(f"{r['type']} {r['ip']}" for r in rows) or "no chassis row"
        ok = any(r["ip"] == want and r["type"] == "geneve" for r in rows)
        return ok, f"Encap of {node}: {seen}, want geneve {want}"

    def tunnels(self, node: str) -> tuple[bool, str]:
        want = sorted(n.ip for n in self.lab.nodes if n.name != node)
        have = geneve_remotes(self.fact(node, "interfaces"))
        return have == want, f"geneve remote_ip {have or 'none'}, want {want}"

    # -- logical layer ------------------------------------------------------------------------------------
    def dynamic_addresses(self) -> tuple[bool, str, dict[str, tuple[str, str]]]:
        """(all allocated, observation, port -> (MAC, IP) that OVN allocated so far)."""
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
        r = self.backend.run(self.central, ["ovn-nbctl", "--wait=hv", "--timeout=10", "sync"], timeout=20)
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
