"""The web app's sessions, CSRF tokens and join-code rate limits. A session is a signed cookie (HMAC with the
classroom's session secret, made anew by each classroom.up after a down): it survives a restart of
classroom.serve and ends with the classroom. Only wrong codes count against the limits, per seat and
per address, so a room behind one NAT still joins."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from collections import defaultdict, deque
from dataclasses import dataclass

COOKIE = "classroom"
WINDOW = 60.0  # seconds over which wrong codes are counted
PER_SEAT = 5  # wrong codes for one seat in a window
PER_ADDRESS = 20  # wrong codes from one address in a window: a room's NAT, typing slowly, stays under it


@dataclass(frozen=True)
class Session:
    who: str  # a seat name, or "trainer"
    sid: str

    @property
    def trainer(self) -> bool:
        return self.who == "trainer"


class Signer:
    def __init__(self, secret: str):
        self.key = secret.encode()

    def _mac(self, data: bytes) -> str:
        return hmac.new(self.key, data, hashlib.sha256).hexdigest()

    def cookie(self, who: str) -> str:
        payload = base64.urlsafe_b64encode(json.dumps({"who": who, "sid": secrets.token_urlsafe(16)}).encode())
        return f"{payload.decode()}.{self._mac(payload)}"

    def session(self, cookie: str | None) -> Session | None:
        if not cookie or "." not in cookie:
            return None
        payload, mac = cookie.rsplit(".", 1)
        if not hmac.compare_digest(mac, self._mac(payload.encode())):
            return None
        try:
            doc = json.loads(base64.urlsafe_b64decode(payload.encode()))
        except ValueError:
            return None
        return Session(str(doc["who"]), str(doc["sid"]))

    def csrf(self, session: Session) -> str:
        return self._mac(f"csrf:{session.sid}".encode())

    def csrf_ok(self, session: Session, token: str | None) -> bool:
        return bool(token) and hmac.compare_digest(self.csrf(session), token or "")


class Limiter:
    """Wrong join codes per seat and per address, over a sliding window."""

    def __init__(self) -> None:
        self.wrong: dict[str, deque[float]] = defaultdict(deque)

    def _recent(self, key: str, now: float) -> deque[float]:
        q = self.wrong[key]
        while q and q[0] < now - WINDOW:
            q.popleft()
        return q

    def blocked(self, seat: str, address: str) -> bool:
        now = time.monotonic()
        return len(self._recent(f"seat:{seat}", now)) >= PER_SEAT or len(self._recent(f"addr:{address}", now)) >= (
            PER_ADDRESS
        )

    def failed(self, seat: str, address: str) -> None:
        now = time.monotonic()
        self.wrong[f"seat:{seat}"].append(now)
        self.wrong[f"addr:{address}"].append(now)
