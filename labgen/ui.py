"""Terminal output: one console, timed steps, tutorial-style command echo."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console

console = Console(highlight=False, soft_wrap=True)  # never wrap a command a trainee may copy


@contextmanager
def step(title: str) -> Iterator[None]:
    """Show a stage with its elapsed time; the spinner keeps a slow TCG stage visibly alive."""
    t0 = time.monotonic()
    try:
        with console.status(f"{title} ..."):
            yield
    except BaseException:
        console.print(f"[red]✗[/] {title} [dim]({time.monotonic() - t0:.1f} s)[/]")
        raise
    console.print(f"[green]✓[/] {title} [dim]({time.monotonic() - t0:.1f} s)[/]")


def print_status(st: dict) -> None:  # type: ignore[type-arg]
    from rich.table import Table

    console.print(f"lab [bold]{st['lab']}[/], backend {st['backend'] or '(not up)'}")
    t = Table("node", "underlay IP", "state", "chassis encap", "geneve tunnels to")
    for name, n in st["nodes"].items():
        ch = st["chassis"].get(name)
        t.add_row(
            name + (" (central)" if n["central"] else ""),
            n["ip"],
            n["state"],
            f"{ch['encap']} {ch['ip']}" if ch else "-",
            ", ".join(n.get("tunnels") or []) or "-",
        )
    console.print(t)
    if st["leases"] or st["bindings"]:
        t = Table("port", "bound on", "up", "netns", "IPv4")
        for port, lease in st["leases"].items():
            b = st["bindings"].get(port, {})
            t.add_row(
                port,
                b.get("chassis") or "-",
                str(b.get("up", "-")),
                f"{lease['node']}:{lease['netns']}",
                ", ".join(lease["ipv4"]) or "-",
            )
        console.print(t)
