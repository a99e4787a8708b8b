"""Taking over a trainee's terminal: the trainer asks, the trainee allows, either ends it. Until the trainee
allows it, and from the moment either side ends it, the trainer's terminal on the seat is read-only: ending
closes the trainer's writable terminals at once."""

from __future__ import annotations

import collections

from aiohttp import web


class Handover:
    def __init__(self) -> None:
        self.state: dict[str, str] = {}  # seat -> "asked" (by the trainer) or "allowed" (by the trainee)
        self.writers: dict[str, set[web.WebSocketResponse]] = collections.defaultdict(set)

    def allowed(self, seat: str) -> bool:
        return self.state.get(seat) == "allowed"

    def trainer(self, seat: str, ask: bool) -> str | None:
        now = self.state.get(seat)
        return (now or "asked") if ask else None

    def trainee(self, seat: str, allow: bool) -> str | None:
        return "allowed" if allow and self.state.get(seat) else None  # only what the trainer asked for

    async def set(self, seat: str, state: str | None) -> None:
        if state is not None:
            self.state[seat] = state
            return
        self.state.pop(seat, None)
        for ws in list(self.writers[seat]):
            await ws.close()
