"""Terminal output: one console, timed steps, tutorial-style command echo."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console

console = Console(highlight=False)


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
