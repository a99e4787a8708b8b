"""The classroom's tasks as invoke calls them: each needs root, and reruns itself through sudo after saying
why when it is not."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from ..errors import InputError
from ..ui import console
from .engines import ENGINES
from .room import Room
from .runtime import CHECKOUT


def as_root(action: str, why: str, argv: list[str]) -> bool:
    """True when already root; else say why root is needed and rerun the action through sudo."""
    if os.geteuid() == 0:
        return True
    console.print(f"classroom.{action} needs root {why}: running it through sudo")
    env = f"PYTHONPATH={CHECKOUT}"
    r = subprocess.run(["sudo", "--", "env", env, sys.executable, "-m", "labgen.classroom", action, *argv], check=False)
    sys.exit(r.returncode)


WHY = "to create and remove the seat accounts, run the classroom's sshd and set each seat's limits"


def up(
    config: str, seats: int | str | None, demo: bool = False, engine: str | None = None, member: str | None = None
) -> None:
    if seats is None or not str(seats).isdigit():
        raise InputError(f"--seats {seats or '(missing)'} is not a number of seats", "e.g. --seats 30")
    seats = int(seats)
    argv = ["--config", str(Path(config).resolve()), "--seats", str(seats), *(["--demo"] * demo)]
    if engine is not None and engine not in ENGINES:
        raise InputError(f"--engine {engine}: no such seat engine", f"use one of: {', '.join(ENGINES)}")
    argv += [*(["--engine", engine] if engine else []), *(["--target", member] if member else [])]
    if as_root("up", WHY, argv):
        Room(config, engine, member).up(seats, demo)


def down(config: str) -> None:
    if as_root("down", WHY, ["--config", str(Path(config).resolve())]):
        Room(config).down()


def status(config: str, as_json: bool = False) -> None:
    why = "to run each seat's `invoke status` as that seat"
    if as_root("status", why, ["--config", str(Path(config).resolve()), *(["--json"] * as_json)]):
        Room(config).status(as_json)


def reset(config: str, seat: str | None = None, all_: bool = False) -> bool:
    argv = ["--config", str(Path(config).resolve()), *([seat] if seat else []), *(["--all"] * all_)]
    return as_root("reset", "to reset labs as their seats", argv) and Room(config).reset(seat, all_)


def exercise(config: str, name: str, seat: str | None = None, all_: bool = False) -> bool:
    argv = ["--config", str(Path(config).resolve()), name, *([seat] if seat else []), *(["--all"] * all_)]
    return as_root("exercise", "to start exercises as the seats", argv) and Room(config).exercise(name, seat, all_)


def cards(config: str) -> None:
    if as_root("cards", "to read the join codes in the classroom's state", ["--config", str(Path(config).resolve())]):
        from .cards import cards as print_cards

        print_cards(Room(config))


def serve(config: str, port: int | None = None, https: bool = False) -> None:
    argv = ["--config", str(Path(config).resolve()), *(["--port", str(port)] if port else [])]
    argv += ["--tls"] if https else []
    if as_root("serve", "to hand the web app's account its keys, then run the web app as that account", argv):
        from .serve import serve as run

        run(Room(config), int(port) if port else None, https)
