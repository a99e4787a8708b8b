"""The lab's state as the host sees it: facts read on the nodes through the backend, parsed with the
provisioner's own parsers (one parser per fact), the views derived from them (provision.views), and the
conditions the gates wait on. `check`, `status`, trace, explain, the demo and the exercises read the lab
through this: no other module runs a read of OVSDB or parses one."""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from provision.core import prompt
from provision.facts import FACTS, addr_of
from provision.services import sb_client
from provision.views import Allocation, Bound, allocations, bindings, geneve_remotes

from .backends.base import Backend
from .errors import CommandFailed
from .model import Lab, Port

DAEMONS_ABOUT = "the daemons' pidfiles"


class Unreadable(CommandFailed):
    """A fact that could not be read or parsed; `what` names it for a trainee ("the NB's ACLs")."""

    def __init__(self, node: str, what: str, command: str, rc: int, detail: str):
        super().__init__(node, command, rc, detail)
        self.what = what


class Observer:
    def __init__(self, lab: Lab, backend: Backend):
        self.lab, self.backend = lab, backend
        self.central = lab.central.name
        self.reads: list[tuple[str, tuple[str, ...], str]] = []  # (node, argv, what) of every read, in order
        # with a snapshot, each read runs once and answers alike after (value or Unreadable): a report of
        # check is then of one state of the lab, not of several moments; gates want fresh reads, so off
        self._snapshot: dict[tuple[str, tuple[str, ...]], Any] | None = None

    def snapshot(self) -> Observer:
        """From now on, read each fact once (a fresh snapshot each call)."""
        self._snapshot = {}
        return self

    def read(self, node: str, argv: Sequence[str], what: str, parse: Callable[[str], Any]) -> Any:
        """Run a read on `node` and parse its output; Unreadable, naming `what`, when either fails."""
        if self._snapshot is None:
            return self._read(node, argv, what, parse)
        key = (node, tuple(argv))
        if key not in self._snapshot:
            try:
                self._snapshot[key] = self._read(node, argv, what, parse)
            except Unreadable as e:
                self._snapshot[key] = e
        got = self._snapshot[key]
        if isinstance(got, Unreadable):
            raise got
        return got

    def _read(self, node: str, argv: Sequence[str], what: str, parse: Callable[[str], Any]) -> Any:
        self.reads.append((node, tuple(argv), what))
        r = self.backend.run(node, argv, timeout=30)
        if not r.ok:
            raise Unreadable(node, what, shlex.join(r.argv), r.rc, r.stderr or r.stdout)
        try:
            return parse(r.stdout)
        except (ValueError, KeyError, IndexError) as e:  # output of another shape; a TypeError is a bug
            raise Unreadable(node, what, shlex.join(r.argv), r.rc, f"unexpected output ({e!r}): {r.stdout}") from None

    def fact(self, node: str, name: str, arg: str = "") -> Any:
        """One fact of one node; Unreadable when it cannot be read. The host ignores a fact's default (the
        provisioner's steps take a namespace that cannot be read as one not made yet): here a failed read
        must never pass for an empty one."""
        f = FACTS[name]
        assert f.argv is not None, f"{name} is read inside the node, not from the host"
        return self.read(node, f.argv(arg), (f.about or name).format(arg), f.parse)

    def daemons(self, node: str, names: list[str]) -> dict[str, bool]:
        """Which of the daemons `names` run on `node`, by their pidfiles (the node's provisioner reads them)."""
        argv = [*self.backend.provisioner(node), "facts", *(f"pid_alive:{d}" for d in names)]

        def alive(out: str) -> dict[str, bool]:  # output of another shape is unreadable, not a traceback
            got = json.loads(out)
            if not isinstance(got, dict):
                raise ValueError("not a JSON object")
            return {d: bool(got[f"pid_alive:{d}"]) for d in names}

        return self.read(node, argv, DAEMONS_ABOUT, alive)

    # -- views --------------------------------------------------------------------------------------------
    def allocations(self) -> dict[str, Allocation]:
        """Port -> the MAC and IP OVN allocated it (IP "" while it has none)."""
        return allocations(self.fact(self.central, "nb_ports"))

    def bindings(self) -> dict[str, Bound]:
        """Logical port -> the chassis (by name) it is bound on, and up."""
        with ThreadPoolExecutor(max_workers=1) as pool:  # two round trips at once
            rows = pool.submit(self.fact, self.central, "sb_bindings")
            chassis = self.fact(self.central, "sb_chassis")
        return bindings(rows.result(), chassis)

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
    def dynamic_addresses(self) -> tuple[bool, str, dict[str, Allocation]]:
        """(all allocated, observation, port -> its Allocation, for the ports with an IP so far)."""
        got = {p: a for p, a in self.allocations().items() if a.ip}
        missing = [p.name for p in self.lab.ports if p.name not in got]
        obs = f"no dynamic_addresses yet: {', '.join(missing)}" if missing else "all allocated"
        return not missing, obs, got

    def hv_synced(self) -> tuple[bool, str]:
        """Every chassis has applied the NB as it is now (DHCP options included): OVN's own barrier."""
        r = self.backend.run(self.central, ["ovn-nbctl", "--wait=hv", "--timeout=10", "sync"], timeout=20)
        return r.ok, "every chassis caught up" if r.ok else (r.stderr.strip() or f"exit {r.rc}")

    def ports_up(self) -> tuple[bool, str]:
        bound = self.bindings()
        bad = []
        for p in self.lab.ports:
            where, up = bound.get(p.name, Bound(None, None))
            if where != p.node or (p.name in bound and up is not True):
                bad.append(f"{p.name} on {where or 'no chassis'} (want {p.node}, up={up})")
        return not bad, "; ".join(bad) or "all ports up on their chassis"

    def lease(self, port: Port, want: str, seen: dict[str, list[str]]) -> tuple[bool, str]:
        """Does `port`'s namespace hold `want`? What it holds goes to `seen` (the demo explains it)."""
        have = seen[port.name] = addr_of(self.fact(port.node, "ns_addrs", port.netns), port.name)
        if f"{want}/{self.lab.prefixlen(port.name)}" in have:
            return True, "lease held"
        return False, f"{port.netns}/{port.name} has {have or 'no IPv4'}, want {want}"
