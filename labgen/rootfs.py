"""A Debian 12 root file system made by debootstrap, for the lab's images (the vagrant box, the classroom's
LXD seat image): the host's mirror, one package cache they share, and what every image drops (docs,
locales, package lists) or must not carry over (machine-id, OVS database and system-id). Needs root."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

from .errors import BackendFailed

CACHE = Path("/var/cache/ovn-lab")  # root's: the downloaded packages (debs/) and images built as root
SUITE = "bookworm"


def host_mirror() -> str:
    """The host's own Debian mirror (reachable here), else deb.debian.org."""
    for src in ("/etc/apt/sources.list.d/debian.sources", "/etc/apt/sources.list"):
        try:
            for line in Path(src).read_text().splitlines():
                parts = line.split()
                if parts[:1] == ["URIs:"] and len(parts) > 1:
                    return parts[1]
                if parts[:1] == ["deb"] and "debian" in line and "security" not in line:
                    return next(p for p in parts[1:] if p.startswith("http"))
        except (OSError, StopIteration):
            continue
    return "http://deb.debian.org/debian"


def run(argv: list[str], log: Path, **kw: object) -> None:
    """Run `argv` with its output appended to `log`; BackendFailed with the log's tail when it fails."""
    with log.open("a") as f:
        f.write(f"$ {' '.join(argv)}\n")
        f.flush()
        r = subprocess.run(argv, stdout=f, stderr=subprocess.STDOUT, **kw)  # type: ignore[call-overload]
    if r.returncode:
        tail = "".join(log.read_text().splitlines(keepends=True)[-15:])
        raise BackendFailed(f"{' '.join(argv[:3])} ... failed (exit {r.returncode})", f"see {log}", tail)


def debootstrap(root: Path, cache: Path, mirror: str, log: Path, packages: list[str]) -> None:
    """A fresh minbase root at `root` with `packages`; the .debs are kept in `cache`/debs for the next."""
    if root.exists():
        shutil.rmtree(root)
    debs = cache / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    argv = ["debootstrap", "--variant=minbase", f"--cache-dir={debs}", f"--include={','.join(packages)}"]
    run([*argv, SUITE, str(root), mirror], log)


def chroot_runner(root: Path, log: Path) -> Callable[..., None]:
    """`chroot(*argv)`: run argv inside `root`, output to `log`."""

    def chroot(*argv: str) -> None:
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "DEBIAN_FRONTEND": "noninteractive"}
        run(["chroot", str(root), *argv], log, env=env)

    return chroot


def forget_identity(root: Path) -> None:
    """Every instance of the image gets its own machine-id, ssh host keys and OVS database / system-id."""
    for key in root.glob("etc/ssh/ssh_host_*"):
        key.unlink()
    (root / "etc/machine-id").write_text("")
    for rel in (
        "var/lib/dbus/machine-id",
        "etc/openvswitch/conf.db",
        "etc/openvswitch/.conf.db.~lock~",
        "etc/openvswitch/system-id.conf",
    ):
        (root / rel).unlink(missing_ok=True)


def slim(root: Path) -> None:
    """Drop what no lab reads: documentation, package lists, other languages' messages."""
    for d in ("usr/share/doc", "usr/share/man", "usr/share/info"):
        shutil.rmtree(root / d, ignore_errors=True)
        (root / d).mkdir()
    for p in [*(root / "var/lib/apt/lists").glob("*_Packages"), *(root / "var/cache/apt/archives").glob("*.deb")]:
        p.unlink()
    for p in (root / "usr/share/locale").iterdir():
        if not p.name.startswith("en") and p.name != "locale.alias":
            shutil.rmtree(p, ignore_errors=True)
