"""Everything a lab keeps on disk: one directory per lab, `.lab/<name>/` beside its lab.toml, mode 0700
(it holds the lab's ssh keys and, for netns labs, the nodes' private /run and /var/log).

| path             | written by                     | read by                                          |
|------------------|--------------------------------|--------------------------------------------------|
| state.json       | up, before it creates anything | every task: the backend the lab is up with        |
| lab.json         | up                             | teardown: the nodes of the lab as it was brought up |
| exercise.json    | exercise.start                 | exercise.check, hint, solve                       |
| snapshot.json    | snapshot save                  | snapshot restore                                  |
| logs/            | provisioner, backends          | the trainer: errors print the path               |
| captures/        | capture                        | the trainee (Wireshark)                           |
| ssh/             | netns ssh-config (keys)        | ssh's ProxyCommand                                |
| pki/             | up, with transport = "ssl"     | the provisioner plan: each node's key and certs  |
| ssh_config, root-ssh, Vagrantfile, .vagrant/ | vagrant backend | vagrant backend, ssh, vagrant          |
| nodes/, ns/      | netns backend                  | netns backend: node directories, namespace files |
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Any

from provision.core import write_file

from .errors import LabError
from .lock import hold
from .model import Lab


class LabState:
    def __init__(self, lab: Lab):
        self.lab = lab
        self.dir = lab.state_dir

    def exists(self) -> bool:
        return self.dir.exists()

    def make(self, sub: str = "") -> Path:
        """The state directory (or a directory in it), created private to the user."""
        try:
            for d in (self.dir.parent, self.dir, *([self.dir / sub] if sub else [])):
                d.mkdir(mode=0o700, exist_ok=True)
                d.chmod(0o700)  # also when an older version made it with the umask's mode
        except PermissionError:
            raise self._not_yours() from None
        return self.dir / sub if sub else self.dir

    def lock(self, task: str, *, take_over: bool = False) -> contextlib.AbstractContextManager[None]:
        """One task at a time changes a lab (lock.hold): a second `invoke up` (or up and teardown) at once
        refuses. The lock file is beside the state directory, which teardown removes while holding it."""
        path = self.dir.parent / f"{self.lab.name}.lock"
        return hold(path, self.lab.name, task, take_over=take_over, not_yours=self._not_yours())

    def remove(self) -> None:
        """The whole state dir, also where a trainee made a directory of a node unwritable (chmod 500 /root)."""

        def writable(_fn: object, path: str, _exc: object) -> None:
            os.chmod(os.path.dirname(path), 0o700)
            if os.path.isdir(path) and not os.path.islink(path):
                os.chmod(path, 0o700)
                shutil.rmtree(path)
            else:
                os.unlink(path)

        if self.dir.exists():
            try:
                shutil.rmtree(self.dir, onerror=writable)
            except OSError as e:
                raise LabError(f"cannot remove {self.dir}: {e.strerror} ({e.filename})", f"rm -rf {self.dir}") from e

    # -- paths the backends and workshop tasks own (see the table above) ---------------------------------
    @property
    def logs(self) -> Path:
        return self.make("logs")

    def log(self, name: str) -> Path:
        return self.logs / f"{name}.log"

    @property
    def captures(self) -> Path:
        return self.make("captures")

    @property
    def ssh_dir(self) -> Path:
        return self.make("ssh")

    @property
    def pki(self) -> Path:
        return self.make("pki")

    @property
    def ssh_config(self) -> Path:
        return self.dir / "ssh_config"

    @property
    def root_marker(self) -> Path:
        return self.dir / "root-ssh"

    @property
    def vagrantfile(self) -> Path:
        return self.dir / "Vagrantfile"

    @property
    def vagrant_dir(self) -> Path:
        return self.dir / ".vagrant"

    @property
    def nodes(self) -> Path:
        return self.dir / "nodes"

    @property
    def ns(self) -> Path:
        return self.dir / "ns"

    # -- the lab as brought up ----------------------------------------------------------------------------
    def backend(self) -> str | None:
        """The backend the lab was brought up with; None when it is not up."""
        data = self._read("state.json")
        return data["backend"] if data else None

    def remember(self, backend: str) -> None:
        """Written before `up` creates anything: teardown must find whatever a failed up leaves."""
        self._write("state.json", {"backend": backend, "source": self.lab.source})
        self._write("lab.json", asdict(self.lab))

    def source_changed(self) -> bool:
        """lab.toml edited after `up`: its changes are not applied until the next `up`."""
        snap = self.dir / "lab.json"
        return snap.exists() and Path(self.lab.source).stat().st_mtime > snap.stat().st_mtime

    def known_nodes(self) -> list[str]:
        """Nodes of lab.toml and of the lab as it was brought up (lab.toml may have changed since)."""
        names = list(self.lab.node_names)
        snap = self._read("lab.json") or {}
        return names + [n["name"] for n in snap.get("nodes", []) if n["name"] not in names]

    # -- workshop state -----------------------------------------------------------------------------------
    def exercise(self) -> str | None:
        data = self._read("exercise.json")
        return data["name"] if data else None

    def start_exercise(self, name: str) -> None:
        self._write("exercise.json", {"name": name})

    def end_exercise(self) -> None:
        (self.dir / "exercise.json").unlink(missing_ok=True)

    def snapshot(self) -> dict[str, Any] | None:
        return self._read("snapshot.json")

    def save_snapshot(self, what: dict[str, Any]) -> None:
        self._write("snapshot.json", what)

    def _read(self, name: str) -> Any:
        """A state file's content; None when missing or unreadable as JSON (a killed write: state lost,
        which teardown handles by sweeping)."""
        try:
            return json.loads((self.dir / name).read_text())
        except FileNotFoundError:
            return None
        except PermissionError:
            raise self._not_yours() from None
        except ValueError:
            return None

    def _write(self, name: str, data: Any) -> None:
        self.make()
        write_file(str(self.dir / name), json.dumps(data, indent=1) + "\n", 0o600)  # atomic: replace

    def _not_yours(self) -> LabError:
        return LabError(
            f"{self.dir} is not yours (the lab was brought up by another user, or as root)",
            "run this task as that user (sudo for root)",
        )
