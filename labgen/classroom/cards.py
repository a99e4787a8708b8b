"""`classroom.cards`: one card per seat with the URL and its join code, as Markdown and as printable HTML."""

from __future__ import annotations

import html

from ..ui import console
from .room import Room


def cards(classroom: Room) -> None:
    room = classroom.room
    url = f"http://{room.listen}:{room.web_port}/"
    codes = classroom.codes()
    md = [f"# Classroom {room.prefix}", ""]
    cards_html = []
    for s in classroom.engine.existing():
        code = codes.get(s.name, "?")
        md += [
            f"## {s.name}",
            "",
            f"- open {url}",
            f"- join code: `{code}`",
            f"- or: `ssh -p {room.ssh_port} {s.name}@{room.listen} -i KEY` (the key is on your page)",
            "",
        ]
        cards_html.append(
            f'<section class="card"><h2>{html.escape(s.name)}</h2><p>Open <b>{html.escape(url)}</b></p>'
            f"<p>Join code: <code>{html.escape(code)}</code></p></section>"
        )
    page = (
        "<!doctype html><meta charset=utf-8><title>Classroom cards</title><style>"
        ".card{border:1px dashed #000;padding:1em;margin:.5em;width:20em;display:inline-block;"
        "page-break-inside:avoid}code{font-size:1.4em}</style>" + "".join(cards_html)
    )
    (classroom.state_dir() / "cards.md").write_text("\n".join(md))
    (classroom.state_dir() / "cards.html").write_text(page)
    print("\n".join(md))
    console.print(f"printable: {room.state / 'cards.html'}")
