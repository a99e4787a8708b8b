"""Where the code the seats (and the web app's account) run lives, and with which Python. They run the
trainer's checkout and its .venv where every user can read them; where not (a clone under a 0700 home, a
pyenv under /root), a copy beside the classroom: the code, and a venv of the system's python3 of the same
version that borrows the .venv's packages, or holds a copy of them."""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

from ..errors import BackendFailed

CHECKOUT = Path(__file__).resolve().parents[2]
PARTS = ("labgen", "provision", "tasks.py")  # what runs: the packages and the tasks
VERSION = f"python{sys.version_info.major}.{sys.version_info.minor}"


def code_dir(base: Path) -> Path:
    return base / "code" if (base / "code").exists() else CHECKOUT


def python(base: Path) -> str:
    venv = base / "venv" / "bin" / "python3"
    return str(venv) if venv.exists() else str(CHECKOUT / ".venv" / "bin" / "python3")


def reachable(path: Path, mode: int = 0o004) -> bool:
    """Every directory on the real path searchable by others, and the file has `mode` for them."""
    real = path.resolve()
    return all(d.stat().st_mode & 0o001 for d in real.parents) and real.stat().st_mode & mode == mode


def usable(base: Path) -> bool:
    """The seats' Python imports the project's dependencies and its code, as an unprivileged user."""
    code, py = code_dir(base), python(base)
    r = subprocess.run(
        ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--", py, "-c", "import invoke, labgen.cli"],
        cwd="/",
        capture_output=True,
        check=False,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(code), "PYTHONDONTWRITEBYTECODE": "1"},
    )
    return r.returncode == 0 and reachable(Path(py), 0o005) and reachable(code / "tasks.py")


def prepare(base: Path) -> None:
    base.mkdir(mode=0o755, parents=True, exist_ok=True)
    if not all(reachable(CHECKOUT / p, 0o005 if (CHECKOUT / p).is_dir() else 0o004) for p in PARTS):
        for part in PARTS:
            src, dst = CHECKOUT / part, base / "code" / part
            if src.is_dir():
                shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__"), dirs_exist_ok=True)
            else:
                dst.parent.mkdir(mode=0o755, exist_ok=True)
                shutil.copy2(src, dst)
        subprocess.run(["chmod", "-R", "a+rX", str(base / "code")], check=True)
    venv = base / "venv"
    system = shutil.which(VERSION, path="/usr/bin:/bin")
    if system and not (venv / "bin" / "python3").exists() and not usable(base):
        subprocess.run([system, "-m", "venv", "--without-pip", str(venv)], check=True, capture_output=True)
        site, packages = venv / "lib" / VERSION / "site-packages", Path(sysconfig.get_paths()["purelib"]).resolve()
        if reachable(packages, 0o005):
            site.joinpath("trainer-venv.pth").write_text(f"{packages}\n")
        else:
            shutil.copytree(packages, site, ignore=shutil.ignore_patterns("__pycache__"), dirs_exist_ok=True)
            subprocess.run(["chmod", "-R", "a+rX", str(site)], check=True)
    bin_dir = base / "bin"
    bin_dir.mkdir(mode=0o755, exist_ok=True)
    for name, text in commands(python(base), str(code_dir(base))).items():
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    if not usable(base):
        raise BackendFailed(
            f"the seats cannot run the project: neither {CHECKOUT} and its .venv nor a copy beside the classroom",
            f"install python3 ({VERSION}) and python3-venv, or clone the project where every user can read it",
        )


def commands(python: str, code: str) -> dict[str, str]:
    """The seats' commands, for a seat's Python and the project's code as the seat sees them."""
    return {
        "invoke": f"#!{python}\nfrom invoke.main import program\n\nprogram.run()\n",  # in the seats' shells
        # the web app's watcher of a seat: stdlib only, so no site-packages (-S)
        "lab-watch": f"#!{python} -S\nimport sys\n\nsys.path.insert(0, {code!r})\n"
        "from labgen.classroom.watch import main\n\nmain()\n",
    }
