"""A lab as the tasks meet it: opened from lab.toml with the backend it was brought up with; a command or
a shell on a node; its ssh_config; its Vagrantfile; its teardown. (Its status: workshop/status.py.)"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Concatenate, ParamSpec, TypeVar

from rich.markup import escape

from .backends import BACKENDS, get_backend
from .backends.base import Backend
from .errors import InputError, NotUp, UnknownName, visible
from .load import load_lab
from .model import Lab
from .state import LabState
from .ui import console, step

P = ParamSpec("P")
R = TypeVar("R")


def changes_lab(
    task: str, *, take_over: bool = False
) -> Callable[[Callable[Concatenate[str | Path, P], R]], Callable[Concatenate[str | Path, P], R]]:
    """Run a task that changes the lab under the lab's lock (LabState.lock): one at a time."""

    def wrap(fn: Callable[Concatenate[str | Path, P], R]) -> Callable[Concatenate[str | Path, P], R]:
        @functools.wraps(fn)
        def locked(config: str | Path, *args: P.args, **kw: P.kwargs) -> R:
            with LabState(load_lab(config)).lock(task, take_over=take_over):
                return fn(config, *args, **kw)

        return locked

    return wrap


def open_lab(config: str | Path, backend: str | None = None) -> tuple[Lab, Backend]:
    """Load lab.toml; the backend is the one the lab was brought up with, else `backend`, else lab.toml's."""
    lab = load_lab(config)
    state = LabState(lab)
    saved = state.backend()
    if backend is not None and backend not in BACKENDS:
        raise UnknownName("backend", backend, sorted(BACKENDS))
    if saved and backend and backend != saved:
        raise InputError(
            f"lab {lab.name} is up with the {saved} backend",
            f"run `invoke teardown` before `invoke up --backend {backend}`",
        )
    if state.source_changed():
        # the path as it is: rich would read [...] in it as markup, and the terminal run an escape sequence
        source = escape(visible(lab.source))
        console.print(f"[yellow]note:[/] {source} changed after `invoke up`; run `invoke up` again to apply it")
    return lab, get_backend(saved or backend or lab.backend, lab)


def open_up_lab(config: str | Path) -> tuple[Lab, Backend]:
    lab, backend = open_lab(config)
    if backend.state.backend() is None:
        raise NotUp(lab.name)
    return lab, backend


def node_of(lab: Lab, node: str) -> str:
    if node not in lab.node_names:
        raise UnknownName("node", node, lab.node_names, f" in lab {lab.name}")
    return node


def exec_on(config: str | Path, node: str, command: str | None) -> None:
    """Replace this process with COMMAND (or an interactive shell) as root on NODE: its own output and
    exit code, nothing added."""
    lab, backend = open_up_lab(config)
    node_of(lab, node)
    if command is None:
        argv = backend.node_argv(node, ["/bin/bash", "-l"], tty=True)
    else:
        argv = backend.node_argv(node, ["/bin/sh", "-c", command], tty=os.isatty(0))
    console.file.flush()
    os.execvp(argv[0], argv)


def ssh_config(config: str | Path) -> None:
    _, backend = open_up_lab(config)
    print(backend.user_ssh_config(), end="")


def render(config: str | Path, backend_name: str | None = None) -> None:
    _, backend = open_lab(config, backend_name)
    print(backend.render())


@changes_lab("teardown", take_over=True)  # a killed task's orphans must not keep a lab from going
def teardown(config: str | Path, *, box: bool = False) -> None:
    lab = load_lab(config)
    saved = LabState(lab).backend()
    # state lost: sweep with every backend that finds objects of the lab
    names = [saved] if saved else list(BACKENDS)
    t0 = time.monotonic()
    for name in names:
        backend = get_backend(name, lab)
        if saved or backend.has_leftovers():
            with step(f"teardown {lab.name} ({name})"):
                backend.destroy(lambda msg: console.print(f"  {msg}", markup=False))
        if box and backend.has_box:  # also when nothing of the lab is left: the box is the user's
            with step(f"remove the {name} backend's box"):
                backend.remove_box(lambda msg: console.print(f"  {msg}", markup=False))
    console.print(f"lab {lab.name} removed in {time.monotonic() - t0:.1f} s")
