"""What `invoke check` finds: one Finding per condition, ok or a problem with its meaning and evidence, and
how they are shown to a trainee."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from rich.markup import escape

from ..errors import CommandFailed
from ..observe import Unreadable
from ..ui import console


@dataclass(frozen=True)
class Finding:
    ok: bool
    node: str
    what: str
    why: str = ""  # for a problem: what it means and what to look at
    evidence: str = ""
    code: str = ""  # stable name of the problem, used by exercises and tests


def ok(node: str, what: str) -> Finding:
    return Finding(True, node, what)


def problem(code: str, node: str, what: str, why: str, evidence: str = "") -> Finding:
    return Finding(False, node, what, why, evidence, code)


def guarded(node: str, what: str, check: Callable[[], list[Finding]]) -> list[Finding]:
    """A check whose facts could not be read is a finding, not the end of `invoke check`."""
    try:
        return check()
    except Unreadable as e:  # names the fact and the node it was read on
        what = f"cannot read {e.what} on {e.node}"
        return [problem("unreadable", e.node, what, "see the command's error below", str(e))]
    except CommandFailed as e:
        return [problem("unreadable", node, f"cannot read {what} on {node}", "see the command's error below", str(e))]


def report(found: list[Finding]) -> bool:
    for f in found:
        if f.ok:
            console.print(f"[green]ok  [/] {f.node:<15} {escape(f.what)}", highlight=False)
            continue
        console.print(f"[red]FAIL[/] {f.node:<15} {escape(f.what)}", highlight=False)
        if f.why:
            console.print(f"     why: {f.why}", highlight=False, markup=False)
        for line in f.evidence.splitlines():
            console.print(f"     | {line}", style="dim", highlight=False, markup=False)
    bad = sum(not f.ok for f in found)
    console.print(f"{len(found) - bad} ok, {bad} problem{'s' if bad != 1 else ''}")
    return bad == 0
