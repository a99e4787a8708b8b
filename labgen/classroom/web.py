"""The classroom's web app (aiohttp), run by `classroom.serve` as the classroom's own unprivileged account.
It reaches a seat only one way: ssh to the classroom's sshd with that seat's key, running the seat's shell
(the terminal) or a fixed command (`invoke classroom.progress`, `invoke check`, an exercise). Pages are
Jinja2 templates, autoescaped, under a Content-Security-Policy that allows only this app's own scripts."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import hmac
import json
import shlex
import weakref
from pathlib import Path
from typing import Any

import jinja2
from aiohttp import web

from . import webterm
from .handover import Handover
from .rows import PARALLEL, Rows
from .sshd import to_seat
from .webauth import COOKIE, Limiter, Session, Signer

HERE = Path(__file__).parent
# scripts only from this app; xterm.js writes its theme into <style> elements, so styles may be inline
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; connect-src 'self'; img-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)


class App:
    def __init__(self, home: Path):
        self.home = home  # the web account's 0700 directory that classroom.serve filled
        self.conf: dict[str, Any] = json.loads((home / "config.json").read_text())
        self.codes: dict[str, str] = json.loads((home / "join-codes.json").read_text())
        self.token = (home / "trainer-token").read_text().strip()
        self.signer = Signer((home / "session-secret").read_text().strip())
        self.limiter = Limiter()
        self.rows = Rows(lambda seat: self.ssh(seat, "lab-watch"))
        self.sockets: weakref.WeakSet[web.WebSocketResponse] = weakref.WeakSet()  # for a quick shutdown
        self.handover = Handover()
        self.jinja = jinja2.Environment(
            loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True, undefined=jinja2.StrictUndefined
        )

    # --- helpers
    def log(self, line: str) -> None:
        """Joins and trainer actions, never a code, token or cookie."""
        stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        with (self.home / "log").open("a") as f:
            f.write(f"{stamp} {line}\n")

    def ssh(self, seat: str, *command: str, tty: bool = False) -> list[str]:
        key, known = self.home / "keys" / seat, self.home / "known_hosts"  # the web account's copies
        reach = tuple(self.conf["reach"][seat])
        return ["ssh", "-tt" if tty else "-T", "-F", "/dev/null", *to_seat(seat, key, known, reach), *command]

    async def run(self, seat: str, command: str, timeout: float = 120) -> tuple[int, str, str]:
        proc = await asyncio.create_subprocess_exec(
            *self.ssh(seat, command), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        try:
            out, err = await asyncio.wait_for(proc.communicate(), timeout)
        except TimeoutError:
            proc.kill()
            return 124, "", "timed out"
        return proc.returncode or 0, out.decode(errors="replace"), err.decode(errors="replace")

    def session(self, request: web.Request) -> Session | None:
        return self.signer.session(request.cookies.get(COOKIE))

    def page(self, name: str, request: web.Request, **kw: Any) -> web.Response:
        s = self.session(request)
        html = self.jinja.get_template(name).render(csrf=self.signer.csrf(s) if s else "", conf=self.conf, **kw)
        return web.Response(text=html, content_type="text/html")

    def seat_of(self, request: web.Request) -> str:
        """The seat a URL names, for its own session only (the trainer reads through /trainer/...)."""
        seat = request.match_info["seat"]
        s = self.session(request)
        if s is None or s.who != seat or seat not in self.conf["seats"]:
            raise web.HTTPForbidden(text="not your seat")
        return seat

    def trainer(self, request: web.Request) -> Session:
        s = self.session(request)
        if s is None or not s.trainer:
            raise web.HTTPForbidden(text="trainer only")
        return s

    def checked(self, request: web.Request, s: Session | None) -> None:
        if s is None or not self.signer.csrf_ok(s, request.headers.get("X-CSRF-Token")):
            raise web.HTTPForbidden(text="missing or wrong CSRF token")

    def origin_ok(self, request: web.Request) -> bool:
        return request.headers.get("Origin") == f"{request.scheme}://{request.host}"

    async def websocket(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(heartbeat=20)
        await ws.prepare(request)
        self.sockets.add(ws)
        return ws

    async def closing(self, _app: web.Application) -> None:
        """On shutdown: close every page's websocket, which ends its handler at once (a terminal's ssh with
        it) rather than holding the restart until the pages go away."""
        for ws in list(self.sockets):
            with contextlib.suppress(ConnectionError, RuntimeError):
                await ws.close(code=1012, message=b"server restarting")

    def login(self, who: str) -> web.Response:
        r = web.HTTPSeeOther("/trainer" if who == "trainer" else f"/seat/{who}")
        secure = bool(self.conf.get("tls"))  # over HTTPS, never sent back over plain HTTP
        r.set_cookie(COOKIE, self.signer.cookie(who), httponly=True, samesite="Strict", path="/", secure=secure)
        raise r

    # --- pages
    async def index(self, request: web.Request) -> web.Response:
        return self.page("join.html", request, error=request.query.get("error", ""))

    async def join(self, request: web.Request) -> web.Response:
        form = await request.post()
        seat, code = str(form.get("seat", "")).strip(), str(form.get("code", "")).strip()
        seat = seat if seat in self.conf["seats"] else self.conf["prefix"] + seat.zfill(3)
        address = request.remote or "?"
        if self.limiter.blocked(seat, address):
            self.log(f"join refused (too many wrong codes) seat={seat} from={address}")
            raise web.HTTPTooManyRequests(text="too many wrong codes: wait a minute, then try again")
        if seat not in self.codes or not hmac.compare_digest(self.codes[seat], code):
            self.limiter.failed(seat, address)
            self.log(f"join failed seat={seat} from={address}")
            raise web.HTTPSeeOther("/?error=wrong+seat+or+code")
        self.log(f"join seat={seat} from={address}")
        return self.login(seat)

    async def seat_page(self, request: web.Request) -> web.Response:
        seat = self.seat_of(request)
        return self.page("seat.html", request, seat=seat, read_only=False)

    async def key(self, request: web.Request) -> web.Response:
        seat = self.seat_of(request)
        return web.Response(
            body=(self.home / "keys" / seat).read_bytes(),
            content_type="application/octet-stream",
            headers={"Content-Disposition": f'attachment; filename="{seat}.key"'},
        )

    async def progress(self, request: web.Request) -> web.Response:
        seat = self.seat_of(request)
        return web.json_response(self.rows.rows.get(seat, {"seat": seat, "steps": [], "ports": []}))

    async def check(self, request: web.Request) -> web.Response:
        seat = self.seat_of(request)
        self.checked(request, self.session(request))
        rc, out, err = await self.run(seat, "invoke check")
        return web.json_response({"ok": rc == 0, "text": out + err})

    async def term(self, request: web.Request) -> web.WebSocketResponse:
        read_only = request.path.startswith("/trainer/")
        if read_only:
            self.trainer(request)
            seat = request.match_info["seat"]
            if seat not in self.conf["seats"]:
                raise web.HTTPNotFound()
        else:
            seat = self.seat_of(request)
        if not self.origin_ok(request):
            raise web.HTTPForbidden(text="websocket from a foreign Origin")
        # the trainer types only while the trainee allows it (see takeover), as a client that leaves the size be
        writer = read_only and request.query.get("write") == "1" and self.handover.allowed(seat)
        ws = await self.websocket(request)
        if writer:
            command, read_only = ["tmux attach -f ignore-size -t lab"], False
            self.handover.writers[seat].add(ws)
        else:
            command = ["tmux attach -f read-only,ignore-size -t lab"] if read_only else []
        try:
            await webterm.relay(ws, self.ssh(seat, *command, tty=True), read_only)
        finally:
            self.handover.writers[seat].discard(ws)
        return ws

    async def takeover(self, request: web.Request) -> web.Response:
        """The trainer asks to type in a seat's terminal (or stops); the trainee allows it (or ends it). Both
        sides see the state in the seat's row; ending it closes the trainer's writable terminals at once."""
        trainer = request.path.startswith("/trainer/")
        if not trainer:
            self.seat_of(request)  # its own session only
        self.checked(request, self.trainer(request) if trainer else self.session(request))
        doc = await request.json()
        seat, who = (str(doc.get("seat")), "trainer") if trainer else (request.match_info["seat"], "trainee")
        if seat not in self.conf["seats"]:
            raise web.HTTPBadRequest(text="no such seat")
        if trainer:
            state = self.handover.trainer(seat, bool(doc.get("ask")))
        else:
            state = self.handover.trainee(seat, bool(doc.get("allow")))
        await self.handover.set(seat, state)
        self.log(f"takeover {who} seat={seat} state={state or 'none'}")
        await self.rows.publish(seat, {"takeover": state})
        return web.json_response({"seat": seat, "takeover": state})

    # --- the trainer
    async def trainer_page(self, request: web.Request) -> web.Response:
        s = self.session(request)
        if s is None or not s.trainer:
            return self.page("trainer-login.html", request, error=request.query.get("error", ""))
        return self.page("dashboard.html", request)

    async def trainer_login(self, request: web.Request) -> web.Response:
        form = await request.post()
        address = request.remote or "?"
        if self.limiter.blocked("trainer", address):
            raise web.HTTPTooManyRequests(text="too many wrong tokens: wait a minute")
        if not hmac.compare_digest(str(form.get("token", "")).strip(), self.token):
            self.limiter.failed("trainer", address)
            self.log(f"trainer login failed from={address}")
            raise web.HTTPSeeOther("/trainer?error=wrong+token")
        self.log(f"trainer login from={address}")
        return self.login("trainer")

    async def watch(self, request: web.Request) -> web.Response:
        self.trainer(request)
        seat = request.match_info["seat"]
        if seat not in self.conf["seats"]:
            raise web.HTTPNotFound()
        return self.page("seat.html", request, seat=seat, read_only=True)

    async def action(self, request: web.Request) -> web.Response:
        s = self.trainer(request)
        self.checked(request, s)
        doc = await request.json()
        what, target = str(doc.get("action")), str(doc.get("seat"))
        seats = self.conf["seats"] if target == "all" else [target]
        if not set(seats) <= set(self.conf["seats"]):
            raise web.HTTPBadRequest(text="no such seat")
        # the exercise's name is the server's own string from its list, never the request's, and ssh hands
        # the seat's shell one string with each word quoted
        name = next((n for n in self.conf["exercises"] if n == doc.get("name")), "")
        if what == "exercise" and name:
            command = shlex.join(["invoke", "exercise.start", name])
        elif what == "reset":
            command, name = "invoke teardown && invoke up --backend netns", ""
        else:
            raise web.HTTPBadRequest(text="unknown action")
        self.log(f"trainer {what} {name} seats={','.join(seats)}")
        sem = asyncio.Semaphore(PARALLEL)

        async def one(seat: str) -> dict[str, Any]:
            async with sem:
                rc, out, err = await self.run(seat, command, timeout=300)
            lines = [ln for ln in (err or out).splitlines() if ln.strip()]
            return {"seat": seat, "ok": rc == 0, "line": lines[-1].lstrip("✗ ") if lines else ""}

        return web.json_response({"results": await asyncio.gather(*map(one, seats))})

    async def live(self, request: web.Request) -> web.WebSocketResponse:
        """Rows pushed as they change: every seat's to the dashboard, a seat's own to its page."""
        seat: str | None
        if request.path.startswith("/trainer/"):
            self.trainer(request)
            seat = None
        else:
            seat = self.seat_of(request)
        if not self.origin_ok(request):
            raise web.HTTPForbidden(text="websocket from a foreign Origin")
        ws = await self.websocket(request)
        self.rows.pages[seat].add(ws)
        await ws.send_json({"seats": [r for s, r in self.rows.rows.items() if seat in (None, s)]})
        try:
            async for _ in ws:
                pass
        finally:
            self.rows.pages[seat].discard(ws)
        return ws

    async def ca(self, request: web.Request) -> web.Response:
        """The classroom's CA (public), to compare with the fingerprint on the cards."""
        if not self.conf.get("tls"):
            raise web.HTTPNotFound()
        return web.Response(body=(self.home / "ca.crt").read_bytes(), content_type="application/x-x509-ca-cert")
