"""The trainer's tasks: `classroom.up/down/status/reset/exercise/cards`. A room is a set of seats (seats.py),
the classroom's sshd (sshd.py), each seat's limits (limits.py), and a 0700 state directory holding the
tokens, join codes, keys, session secret and log. Seat actions run with bounded parallelism and say, one
line per seat, what happened."""

from __future__ import annotations

import contextlib
import datetime
import grp
import json
import os
import pwd
import secrets
import shutil
import subprocess
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from rich.markup import escape

from ..errors import InputError, LabError, SeatsFailed
from ..load import load_lab
from ..ui import console
from .config import MAX_SEATS, Classroom, load_classroom
from .engines import ENGINES
from .seats import MARK, Ran, Seat, SeatEngine, kill_uid


def parallelism() -> int:
    return max(2, os.cpu_count() or 2)


class Room:
    def __init__(self, config: str | Path, engine: str | None = None, target: str | None = None):
        load_lab(config)  # the seats' lab.toml must be valid before any seat gets a copy
        self.room: Classroom = load_classroom(config)
        # the engine the classroom was brought up with, else the one asked for, else lab.toml's
        made = self.room.state / "engine"
        name = made.read_text().strip() if made.exists() else engine or self.room.engine
        if made.exists() and engine and engine != name:
            raise InputError(f"classroom {self.room.prefix} runs on the {name} engine", "`classroom.down` it first")
        self.engine: SeatEngine = ENGINES[name](self.room, target)
        self.engine_name = name
        if target and not self.engine.placement:
            raise InputError(f"--target {target}: the {name} engine keeps every seat on this server", "drop --target")

    # the state directory: root's, 0700
    def state_dir(self) -> Path:
        self.room.base.mkdir(mode=0o755, parents=True, exist_ok=True)
        self.room.state.mkdir(mode=0o700, exist_ok=True)
        os.chmod(self.room.state, 0o700)
        return self.room.state

    def secret(self, name: str) -> str:
        path = self.state_dir() / name
        if not path.exists():
            path.write_text(secrets.token_urlsafe(24))
            path.chmod(0o600)
        return path.read_text()

    def codes(self) -> dict[str, str]:
        path = self.room.state / "join-codes.json"
        return json.loads(path.read_text()) if path.exists() else {}

    def _add_codes(self, seats: list[Seat]) -> None:
        codes = self.codes()
        for s in seats:
            # 8 characters of an unambiguous alphabet: easy to type from a card, 2^40 to guess
            codes.setdefault(s.name, "".join(secrets.choice("abcdefghjkmnpqrstuvwxyz23456789") for _ in range(8)))
        path = self.state_dir() / "join-codes.json"
        path.write_text(json.dumps(codes, indent=1))
        path.chmod(0o600)

    def log(self, line: str) -> None:
        """The classroom's log: what was done to which seat, never a secret."""
        stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        with (self.state_dir() / "log").open("a") as f:
            f.write(f"{stamp} {line}\n")

    def seats(self, seat: str | None = None, all_: bool = False) -> list[Seat]:
        """The seats a trainer action names: one (`seat002` or `2`) or --all."""
        have = self.engine.existing()
        if all_ == (seat is not None):
            raise InputError("name one seat or --all", f"seats: {', '.join(s.name for s in have) or '(none)'}")
        if all_:
            return have
        for s in have:
            if seat in (s.name, str(s.number)):
                return [s]
        raise InputError(f"no seat {seat!r} in classroom {self.room.prefix}", "see `invoke classroom.status`")

    def each(self, seats: list[Seat], what: str, act: Callable[[Seat], Ran]) -> list[Ran]:
        """`act` on each seat, `parallelism()` at a time; one line per seat as it finishes."""
        width = max((len(s.name) for s in seats), default=0)

        def one(seat: Seat) -> Ran:
            t0 = time.monotonic()
            r = act(seat)
            took = f"({time.monotonic() - t0:.1f} s)"
            if r.ok:
                console.print(f"  {seat.name:<{width}}  [green]✓[/] {what} {took}", highlight=False)
            else:
                console.print(f"  {seat.name:<{width}}  [red]✗[/] {what}: {escape(r.why())} {took}", highlight=False)
            self.log(f"{what} {seat.name}: {'ok' if r.ok else 'failed: ' + r.why()}")
            return r

        with ThreadPoolExecutor(max_workers=parallelism()) as pool:
            return list(pool.map(one, seats))

    # --- up
    def web_account(self) -> int:
        """The web app's unprivileged account; its group may see every process under hidepid."""
        name = self.room.web_user
        try:
            pw = pwd.getpwnam(name)
        except KeyError:
            subprocess.run(
                [
                    "useradd",
                    "--system",
                    "--no-create-home",
                    "--home-dir",
                    "/nonexistent",
                    "--shell",
                    "/usr/sbin/nologin",
                    "--user-group",
                    "--comment",
                    f"{MARK} {self.room.prefix} web",
                    name,
                ],
                check=True,
                capture_output=True,
            )
            pw = pwd.getpwnam(name)
        return pw.pw_gid

    def bring_up(self, seat: Seat, steps: list[tuple[str, ...]]) -> Ran:
        """The lab's steps as the seat, then its terminal: ready when all passed and the terminal answers
        where the trainee reaches it."""
        for step in steps:
            r = self.engine.invoke(seat, *step)
            if not r.ok:
                return Ran(seat.name, r.rc, r.out, f"invoke {step[0]}: {r.why()}")
        self.engine.run(seat, ["tmux", "new-session", "-d", "-s", "lab", "-x", "120", "-y", "36"], timeout=30)
        return self.engine.terminal(seat)

    def make(self, seat: Seat) -> Ran:
        """One seat made, its failure a line of its own: the other seats go on."""
        try:
            self.engine.create(seat)
        except LabError as e:
            return Ran(seat.name, 1, "", str(e))
        return Ran(seat.name, 0, "", "")

    def up(self, n: int, demo: bool = False) -> None:
        if not 1 <= n <= MAX_SEATS:
            raise InputError(f"--seats {n} is out of range", f"use 1 to {MAX_SEATS}")
        room = self.room
        self.secret("trainer-token")
        self.secret("session-secret")
        (self.state_dir() / "engine").write_text(self.engine_name)
        self.engine.prepare()
        gid = self.web_account()
        wanted = {s.name: s for s in [*self.engine.existing(), *(Seat.of(room, i) for i in range(1, n + 1))]}
        seats = sorted(wanted.values(), key=lambda s: s.number)
        console.print(f"classroom {room.prefix}: {len(seats)} seats ({self.engine_name}), {parallelism()} at a time")
        t0 = time.monotonic()
        if self.engine.makes_at_once:
            unmade = [r for r in self.each(seats, "made", self.make) if not r.ok]
            if unmade:
                raise SeatsFailed(f"{len(unmade)} of {len(seats)} seats were not made", "see each seat's line above")
        else:
            for s in seats:
                self.engine.create(s)
        console.print(f"{len(seats)} seats made in {time.monotonic() - t0:.1f} s; now their labs")
        self._add_codes(seats)
        self.engine.open(seats, gid)

        def ready(seat: Seat) -> Ran:
            # one invoke for both tasks: the seat pays one interpreter start, and a failed up stops it
            return self.bring_up(seat, [("up", "--backend", "netns", *(["demo"] if demo else []))])

        results = self.each(seats, "ready" + (" (demo done)" if demo else ""), ready)
        failed = [r for r in results if not r.ok]
        if failed:
            raise SeatsFailed(
                f"{len(failed)} of {len(seats)} seats are not ready", "see each seat's line above; up again retries"
            )
        console.print(
            f"[green]{len(seats)} seats ready[/]: ssh -p PORT SEAT@ADDRESS -i KEY; "
            "`invoke classroom.cards` prints their join codes"
        )

    # --- down
    def down(self) -> None:
        room = self.room
        seats = self.engine.existing()

        def gone(seat: Seat) -> Ran:
            self.engine.invoke(seat, "teardown", timeout=120)  # the lab's own cleanup first
            self.engine.remove(seat)
            return Ran(seat.name, 0, "", "")

        if seats:
            self.each(seats, "removed", gone)
        self.engine.close()
        with contextlib.suppress(KeyError):
            kill_uid(pwd.getpwnam(room.web_user).pw_uid)  # the web app: its sessions end with the classroom
            subprocess.run(["userdel", room.web_user], check=True, capture_output=True)
        with_group = [g.gr_name for g in grp.getgrall() if g.gr_name == room.web_user]
        for g in with_group:
            subprocess.run(["groupdel", g], check=False, capture_output=True)
        shutil.rmtree(room.base, ignore_errors=True)
        with contextlib.suppress(OSError):
            room.base.parent.rmdir()  # the last classroom of the host
        console.print(f"classroom {room.prefix} removed: {len(seats)} seats, {self.engine.removes}, and its state")

    # --- status, actions, cards
    def status(self, as_json: bool = False) -> None:
        seats = self.engine.existing()

        def probe(seat: Seat) -> dict[str, object]:
            r = self.engine.invoke(seat, "status", "--json", timeout=60)
            host, port = self.engine.reach(seat)
            row: dict[str, object] = {"seat": seat.name, "where": self.engine.where(seat), "ssh": f"{host}:{port}",
                                      "lab": "?"}  # fmt: skip
            if r.ok:
                st = json.loads(r.out)
                states = {n["state"] for n in st["nodes"].values()}
                row |= {
                    "lab": "up" if states == {"running"} else ("down" if st["backend"] is None else "partly up"),
                    "chassis": len(st["chassis"]),
                    "bindings": len(st["bindings"]),
                    "leases": sum(1 for lease in st["leases"].values() if lease["ipv4"]),
                }
            else:
                row["error"] = r.why()
            term = self.engine.run(seat, ["tmux", "has-session", "-t", "lab"], timeout=10)
            row["terminal"] = term.ok
            return row

        with ThreadPoolExecutor(max_workers=parallelism()) as pool:
            rows = list(pool.map(probe, seats))
        doc = {"classroom": self.room.prefix, "sshd": self.engine.answering(), "seats": rows}
        if as_json:
            print(json.dumps(doc, indent=1))
            return
        from rich.table import Table

        down = "" if doc["sshd"] else ", its sshd is stopped"
        console.print(f"classroom {self.room.prefix}: {len(rows)} seats on the {self.engine_name} engine{down}")
        t = Table("seat", "where", "ssh", "lab", "chassis", "bindings", "leases", "terminal", "problem")
        for row in rows:
            t.add_row(
                *(str(row.get(k, "")) for k in ("seat", "where", "ssh", "lab", "chassis", "bindings", "leases")),
                "yes" if row["terminal"] else "no",
                str(row.get("error", "")),
            )
        console.print(t)

    def reset(self, seat: str | None, all_: bool) -> bool:
        """Back to just after up, whatever the trainee did to the lab: a new lab (a second or two), and the
        seat's terminal with its scrollback."""

        def back(s: Seat) -> Ran:
            return self.bring_up(s, [("teardown", "up", "--backend", "netns")])

        return all(r.ok for r in self.each(self.seats(seat, all_), "reset", back))

    def exercise(self, name: str, seat: str | None, all_: bool) -> bool:
        runs = self.each(
            self.seats(seat, all_), f"exercise {name}", lambda s: self.engine.invoke(s, "exercise.start", name)
        )
        return all(r.ok for r in runs)
