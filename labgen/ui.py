"""Terminal output: one console, timed steps, tutorial-style command echo."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console

console = Console(highlight=False, soft_wrap=True)  # never wrap a command a trainee may copy
errors = Console(stderr=True, highlight=False, soft_wrap=True)  # what went wrong, and the fix


_current: list[Callable[[str], None]] = []


def progress(text: str) -> None:
    """Show `text` beside the running stage's spinner (per-node state, the VM being booted)."""
    if _current:
        _current[-1](text)


@contextmanager
def step(title: str) -> Iterator[None]:
    """Show a stage with a live elapsed time; a slow TCG stage stays visibly alive. Where the output is no
    terminal (a trainer's log), a line when the stage starts stands for the spinner."""
    t0 = time.monotonic()
    if not console.is_terminal:
        console.print(f"… {title}", markup=False)
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
