"""The classroom sshd's ForceCommand (stdlib only; copied beside the classroom with the seats' Python in its
first line): into the seat's cgroup where the host lets the seat join it, then the seat's one tmux session,
so that every login, from ssh or the browser, reattaches to the same terminal with its scrollback. A command
given to ssh runs as it would without the classroom: in the seat's shell."""

import contextlib
import json
import os
import sys
from pathlib import Path


def main() -> None:
    user = os.environ.get("USER", "")
    config = json.loads((Path(sys.argv[0]).resolve().parent / "login.json").read_text())
    for procs in config["cgroups"]:
        # on cgroup v2 this is refused: the seat's tmux server, started inside the cgroup by classroom.up, holds it
        with contextlib.suppress(OSError):
            Path(procs.format(seat=user)).write_text(str(os.getpid()))
    os.chdir(os.path.expanduser("~"))
    command = os.environ.get("SSH_ORIGINAL_COMMAND")
    if command:
        os.execv("/bin/bash", ["bash", "-lc", command])
    os.execvp("tmux", ["tmux", "new-session", "-A", "-s", "lab"])


if __name__ == "__main__":
    main()
