"""Terminal output: one console, timed steps, tutorial-style command echo."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from rich.console import Console

if TYPE_CHECKING:
    from .lab import LabStatus

console = Console(highlight=False, soft_wrap=True)  # never wrap a command a trainee may copy
errors = Console(stderr=True, highlight=False, soft_wrap=True)  # what went wrong, and the fix


_current: list[Callable[[str], None]] = []


def progress(text: str) -> None:
    """Show `text` beside the running stage's spinner (per-node state, the VM being booted)."""
    if _current:
        _current[-1](text)


@contextmanager
def step(title: str) -> Iterator[None]:
    """Show a stage with a live elapsed time; a slow TCG stage stays visibly alive."""
    t0 = time.monotonic()
    detail = [""]
    done = threading.Event()
    with console.status(f"{title} ...") as status:

        def refresh() -> None:
            status.update(f"{title} [dim]{time.monotonic() - t0:.0f} s {detail[0]}[/]")

        def tick() -> None:
            while not done.wait(1.0):
                refresh()

        def set_detail(text: str) -> None:
            detail[0] = text
            refresh()

        ticker = threading.Thread(target=tick, daemon=True)
        ticker.start()
        _current.append(set_detail)
        try:
            yield
        except BaseException:
            console.print(f"[red]✗[/] {title} [dim]({time.monotonic() - t0:.1f} s)[/]")
            raise
        finally:
            done.set()
            _current.pop()
    console.print(f"[green]✓[/] {title} [dim]({time.monotonic() - t0:.1f} s)[/]")


def print_status(st: LabStatus) -> None:
    from rich.table import Table

    console.print(f"lab [bold]{st.lab}[/], backend {st.backend or '(not up)'}")
    t = Table("node", "underlay IP", "state", "chassis encap", "geneve tunnels to")
    for name, n in st.nodes.items():
        ch = st.chassis.get(name)
        t.add_row(
            name + (" (central)" if n.central else ""),
            n.ip,
            n.state,
            f"{ch['encap']} {ch['ip']}" if ch else "-",
            ", ".join(n.tunnels or []) or "-",
        )
    console.print(t)
    if st.leases or st.bindings:
        t = Table("port", "bound on", "up", "netns", "IPv4")
        for port, lease in st.leases.items():
            bound = st.bindings.get(port)
            t.add_row(
                port,
                (bound["chassis"] if bound else None) or "-",
                str(bound["up"]) if bound else "-",
                f"{lease['node']}:{lease['netns']}",
                ", ".join(lease["ipv4"]) or "-",
            )
        console.print(t)
