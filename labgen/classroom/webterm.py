"""A browser terminal: a websocket relayed to `ssh -tt` into the seat through the classroom's sshd, on a
pty of its own. The seat's login attaches to its one tmux session, so a reload, a dropped connection or a
restart of the web app finds the same terminal with its scrollback. Read-only (the trainer looking over a
shoulder): a read-only tmux client that leaves the seat's window size alone, and what the browser types
is dropped."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import pty
import struct
import termios

from aiohttp import WSMsgType, web


def _resize(fd: int, cols: int, rows: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", max(rows, 2), max(cols, 10), 0, 0))


async def relay(ws: web.WebSocketResponse, argv: list[str], read_only: bool) -> None:
    master, slave = pty.openpty()
    _resize(master, 120, 36)
    env = {"PATH": "/usr/bin:/bin", "TERM": "xterm-256color"}  # tmux needs a terminal it knows
    proc = await asyncio.create_subprocess_exec(
        *argv, stdin=slave, stdout=slave, stderr=slave, start_new_session=True, env=env
    )
    os.close(slave)
    loop = asyncio.get_running_loop()
    out: asyncio.Queue[bytes] = asyncio.Queue()

    def readable() -> None:
        try:
            data = os.read(master, 65536)
        except OSError:
            data = b""
        out.put_nowait(data)
        if not data:
            loop.remove_reader(master)

    loop.add_reader(master, readable)

    async def pump() -> None:
        while data := await out.get():
            await ws.send_bytes(data)
        await ws.close()

    sender = asyncio.create_task(pump())
    try:
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                continue
            try:
                doc = json.loads(msg.data)
            except ValueError:
                continue
            if "resize" in doc:  # a watcher's too: its tmux client ignores its size (see web.term)
                cols, rows = doc["resize"]
                _resize(master, int(cols), int(rows))
            elif "data" in doc and not read_only:
                os.write(master, str(doc["data"]).encode())
    finally:
        loop.remove_reader(master)
        sender.cancel()
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
        await proc.wait()
        os.close(master)
