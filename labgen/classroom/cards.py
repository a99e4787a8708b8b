"""`classroom.cards`: one card per seat with the URL and its join code, as Markdown and as printable HTML
with a QR code of the seat's join link. The link carries the seat and code after `#`: a browser never
sends that part to a server, and the join page moves it into its form. With HTTPS, each card names the
classroom CA's fingerprint."""

from __future__ import annotations

import html
import urllib.parse

import segno

from ..ui import console
from . import tls
from .room import Room


def cards(classroom: Room) -> None:
    room = classroom.room
    https = room.tls or (tls.tls_dir(room) / "ca.crt").exists()  # as `classroom.serve --tls` made it
    url = f"{'https' if https else 'http'}://{tls.addresses(room)[0]}:{room.web_port}/"
    fingerprint = tls.fingerprint(tls.ensure(room) / "ca.crt") if https else ""
    codes = classroom.codes()
    md = [f"# Classroom {room.prefix}", ""]
    cards_html = []
    for s in classroom.engine.existing():
        code = codes.get(s.name, "?")
        link = url + "#" + urllib.parse.urlencode({"seat": s.name, "code": code})
        host, port = classroom.engine.reach(s)
        host = tls.addresses(room)[0] if host == room.listen else host  # the server's name where it has one
        md += [
            f"## {s.name}",
            "",
            f"- open {url}",
            f"- join code: `{code}`",
            *([f"- the server's CA, SHA-256: `{fingerprint}`"] if fingerprint else []),
            f"- or: `ssh -p {port} {s.name}@{host} -i KEY` (the key is on your page)",
            "",
        ]
        qr = segno.make(link, error="m").svg_inline(scale=3, title=f"join link of {s.name}")
        cards_html.append(
            f'<section class="card"><h2>{html.escape(s.name)}</h2><p>Open <b>{html.escape(url)}</b></p>'
            f"<p>Join code: <code>{html.escape(code)}</code></p>{qr}"
            + (f'<p class="fp">CA SHA-256: {html.escape(fingerprint)}</p>' if fingerprint else "")
            + "</section>"
        )
    page = (
        "<!doctype html><meta charset=utf-8><title>Classroom cards</title><style>"
        ".card{border:1px dashed #000;padding:1em;margin:.5em;width:20em;display:inline-block;"
        "page-break-inside:avoid;vertical-align:top}code{font-size:1.4em}.fp{font-size:.6em;word-break:break-all}"
        "</style>" + "".join(cards_html)
    )
    (classroom.state_dir() / "cards.md").write_text("\n".join(md))
    (classroom.state_dir() / "cards.html").write_text(page)
    print("\n".join(md))
    console.print(f"printable, with QR codes: {room.state / 'cards.html'}")
