"""The room's rows, one per seat, as the dashboard and the seats' pages show them. Each is kept by one
`lab-watch` per seat (see watch.py), run as the seat over the classroom's sshd for as long as the web app
runs: it sends the seat's row when its lab changes, and this pushes it to the pages that show it."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
from collections.abc import Callable
from typing import Any

from aiohttp import web

PARALLEL = 4  # seats read at once: a room's worth of first reads at once would queue on the CPU


class Rows:
    def __init__(self, watcher: Callable[[str], list[str]]):
        self.watcher = watcher  # seat -> the argv that runs its lab-watch
        self.rows: dict[str, dict[str, Any]] = {}
        # who is shown each seat's row: None for the trainers' dashboards, a seat for its own page
        self.pages: dict[str | None, set[web.WebSocketResponse]] = collections.defaultdict(set)

    async def publish(self, seat: str, doc: dict[str, Any]) -> None:
        """A seat's row changed (or part of it: its last activity): to the dashboards and the seat's page."""
        row = {**self.rows.get(seat, {}), **doc, "seat": seat}
        if row == self.rows.get(seat):
            return
        self.rows[seat] = row
        for ws in self.pages[None] | self.pages[seat]:
            with contextlib.suppress(ConnectionError, RuntimeError):  # a page that just went away
                await ws.send_json({"seats": [row]})

    async def follow(self, seat: str, starting: asyncio.Semaphore) -> None:
        """Keep the seat's lab-watch running; start it again after it ends, waiting longer each time it
        ends before its first row."""
        wait = 1.0
        while True:
            await starting.acquire()
            held = True
            proc = await asyncio.create_subprocess_exec(
                *self.watcher(seat),
                stdin=asyncio.subprocess.PIPE,  # held open: the watcher ends when it closes
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            try:
                assert proc.stdout is not None and proc.stderr is not None
                async for line in proc.stdout:
                    if held:  # its first row is in: the next seat may start its first read
                        starting.release()
                        held, wait = False, 1.0
                    with contextlib.suppress(ValueError):
                        await self.publish(seat, json.loads(line))
                err = (await proc.stderr.read()).decode(errors="replace").strip().splitlines()
            finally:
                if held:
                    starting.release()
                if proc.returncode is None:
                    proc.kill()
                await proc.wait()
            why = err[-1] if err else "no answer"
            # no row read this time (still held): the seat, or the machine that holds it, does not answer
            await self.publish(seat, {"error": f"unreachable: {why}" if held else f"its watcher ended: {why}"})
            await asyncio.sleep(wait)
            wait = min(wait * 2, 60.0)

    async def follow_all(self, seats: list[str]) -> None:
        starting = asyncio.Semaphore(PARALLEL)
        await asyncio.gather(*(self.follow(seat, starting) for seat in seats))
