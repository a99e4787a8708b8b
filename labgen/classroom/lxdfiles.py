"""What a container seat gets copied in from this server: the bundle of the project's code, its commands and
the installed packages its lab needs (no network, no pip in a seat), and files as a tar for `tar -x -C /`."""

from __future__ import annotations

import importlib.metadata
import io
import json
import re
import sysconfig
import tarfile
import time
from pathlib import Path

from . import runtime

CODE = "/opt/ovn-lab"  # the project inside a seat, its commands and its venv
PYTHON = f"{CODE}/venv/bin/python3"
SITE = f"{CODE}/venv/lib/{runtime.VERSION}/site-packages"
DEPS = ("invoke", "jinja2", "tenacity", "rich")  # what a seat's lab runs (no web app, no libvirt in a seat)


def bundle(path: Path) -> Path:
    """The project's code, its commands, and the installed packages its dependencies need (the seat's
    Python is of the same version), unpacked into each seat."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for part in runtime.PARTS:
            tar.add(runtime.CHECKOUT / part, arcname=f"code/{part}", filter=_no_cache)
        for name, text in runtime.commands(PYTHON, CODE).items():
            _add(tar, f"code/bin/{name}", text, 0o755)
        _add(tar, "code/bin/login", f"#!{PYTHON}\n" + (Path(__file__).parent / "login.py").read_text(), 0o755)
        _add(tar, "code/bin/login.json", json.dumps({"cgroups": []}))  # the container is the seat's limit
        site = Path(sysconfig.get_paths()["purelib"])
        for f in _package_files(DEPS):
            tar.add(site / f, arcname=f"site/{f}", recursive=False, filter=_no_cache)
    path.write_bytes(buf.getvalue())
    return path


def _package_files(names: tuple[str, ...]) -> list[str]:
    """The installed files of `names` and of what they require, relative to site-packages."""
    seen: set[str] = set()
    files: list[str] = []
    todo = list(names)
    while todo:
        dist = importlib.metadata.distribution(todo.pop())
        key = dist.metadata["Name"].lower()
        if key in seen:
            continue
        seen.add(key)
        files += [str(f) for f in dist.files or [] if not str(f).startswith("..") and "__pycache__" not in str(f)]
        for req in dist.requires or []:
            name = re.match(r"[A-Za-z0-9._-]+", req)
            if name and "extra ==" not in req:
                todo.append(name.group())
    return files


def _add(tar: tarfile.TarFile, name: str, text: str, mode: int = 0o644, uid: int = 0) -> None:
    data = text.encode()
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.uid, info.gid, info.mtime = len(data), mode, uid, uid, int(time.time())
    tar.addfile(info, io.BytesIO(data))


def tar_files(files: dict[str, tuple[str, int, int]]) -> bytes:
    """Files as (text, mode, owner), for `tar -x -C /` as root in the seat: the directories they need too."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for path, (text, mode, uid) in files.items():
            _add(tar, path.lstrip("/"), text, mode, uid)
    return buf.getvalue()


def _no_cache(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
    return None if "__pycache__" in info.name or info.name.endswith(".pyc") else info
