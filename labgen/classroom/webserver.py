"""The web app's server: routes, security headers on every answer, the seats' watchers, and `main` as
classroom.serve starts it (as the web app's account, with its directory)."""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path
from typing import Any

from aiohttp import web

from . import tls
from .web import CSP, HERE, App

XTERM = HERE / "static" / "node_modules" / "@xterm"
ASSETS = {  # what the pages load: the app's own files and xterm.js from node_modules (installed by setup)
    "app.js": HERE / "static" / "app.js",
    "app.css": HERE / "static" / "app.css",
    "xterm.js": XTERM / "xterm" / "lib" / "xterm.js",
    "xterm.css": XTERM / "xterm" / "css" / "xterm.css",
    "addon-fit.js": XTERM / "addon-fit" / "lib" / "addon-fit.js",
}


def secure(h: Any) -> None:
    h.setdefault("Content-Security-Policy", CSP)
    h.setdefault("X-Content-Type-Options", "nosniff")
    h.setdefault("Referrer-Policy", "no-referrer")
    h.setdefault("Cache-Control", "no-store")


@web.middleware
async def headers(request: web.Request, handler: Any) -> web.StreamResponse:
    try:
        response: web.StreamResponse = await handler(request)
    except web.HTTPException as e:
        secure(e.headers)
        raise
    secure(response.headers)
    return response


async def nothing(_: web.Request) -> web.Response:
    return web.Response(status=204)


async def asset(request: web.Request) -> web.FileResponse:
    name = request.match_info["name"]
    if name not in ASSETS:
        raise web.HTTPNotFound()
    return web.FileResponse(ASSETS[name])


def make_app(home: Path) -> web.Application:
    a = App(home)
    app = web.Application(middlewares=[headers])
    app.add_routes(
        [
            web.get("/", a.index),
            web.post("/join", a.join),
            web.get("/seat/{seat}", a.seat_page),
            web.get("/seat/{seat}/key", a.key),
            web.get("/seat/{seat}/progress", a.progress),
            web.get("/seat/{seat}/live", a.live),
            web.post("/seat/{seat}/takeover", a.takeover),
            web.post("/seat/{seat}/check", a.check),
            web.get("/seat/{seat}/term", a.term),
            web.get("/trainer", a.trainer_page),
            web.post("/trainer/login", a.trainer_login),
            web.get("/trainer/watch/{seat}", a.watch),
            web.get("/trainer/watch/{seat}/term", a.term),
            web.post("/trainer/action", a.action),
            web.post("/trainer/takeover", a.takeover),
            web.get("/trainer/live", a.live),
            web.get("/static/{name}", asset),
            web.get("/favicon.ico", nothing),
            web.get("/ca.crt", a.ca),
        ]
    )

    async def start(_: web.Application) -> Any:
        task = asyncio.create_task(a.rows.follow_all(a.conf["seats"]))
        yield
        task.cancel()

    app.cleanup_ctx.append(start)
    app.on_shutdown.append(a.closing)
    return app


def main() -> None:
    p = argparse.ArgumentParser(prog="labgen.classroom.webserver")
    p.add_argument("--home", required=True)
    args = p.parse_args()
    home = Path(args.home)
    conf = json.loads((home / "config.json").read_text())
    https = tls.context(home / "server.crt", home / "server.key") if conf.get("tls") else None
    web.run_app(
        make_app(home),
        host=conf["listen"],
        port=conf["web_port"],
        ssl_context=https,
        print=None,
        access_log=None,
        shutdown_timeout=5,  # its pages' websockets are closed on shutdown: no handler should be left by then
    )


if __name__ == "__main__":
    main()
