"""A Debian 12 root file system made by debootstrap, for the lab's images (the vagrant box, the classroom's
LXD seat image): the host's mirror, one package cache they share, and what every image drops (docs,
locales, package lists) or must not carry over (machine-id, OVS database and system-id). Needs root."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import BackendFailed

CACHE = Path("/var/cache/ovn-lab")  # root's: the downloaded packages (debs/) and images built as root
SUITE = "bookworm"
BASE = CACHE / f"base-{SUITE}.tar"
BASE_MAX_AGE = 7 * 24 * 3600


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


def base(mirror: str, log: Path) -> Path:
    """The one debootstrap: a bare minbase root, kept as a tarball that every image (the box, the seat image),
    the bundle's package resolution and the offline test start from. Made when missing; `.ci/run` removes
    it first, so that each run makes it once and shares it. Older than a week, it is made again: the images
    would otherwise keep its package versions for good."""
    if BASE.exists() and time.time() - BASE.stat().st_mtime < BASE_MAX_AGE:
        return BASE
    work = BASE.with_suffix(".d")
    shutil.rmtree(work, ignore_errors=True)
    debs = CACHE / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    run(["debootstrap", "--variant=minbase", f"--cache-dir={debs}", SUITE, str(work), mirror], log)
    part = BASE.with_suffix(".part")
    run(["tar", "--numeric-owner", "-C", str(work), "-cf", str(part), "."], log)
    part.rename(BASE)
    shutil.rmtree(work)
    return BASE


def unpack_base(root: Path, mirror: str, log: Path) -> None:
    """A fresh copy of the base root at `root`."""
    tarball = base(mirror, log)
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    run(["tar", "--numeric-owner", "-C", str(root), "-xf", str(tarball)], log)


@contextmanager
def mounted(root: Path, log: Path, cache: Path | None = None) -> Iterator[None]:
    """/proc for maintainer scripts, `cache`/debs as apt's archives (shared by every build), this host's
    resolver as it is now (the base keeps the one of the day it was made), and a policy-rc.d: a package's
    service must not start inside a chroot (on this host's kernel)."""
    resolv = root / "etc/resolv.conf"
    resolv.unlink(missing_ok=True)
    if Path("/etc/resolv.conf").exists():
        shutil.copy("/etc/resolv.conf", resolv)
    policy = root / "usr/sbin/policy-rc.d"
    policy.write_text("#!/bin/sh\nexit 101\n")
    policy.chmod(0o755)
    done: list[Path] = []
    try:
        run(["mount", "-t", "proc", "proc", str(root / "proc")], log)
        done.append(root / "proc")
        if cache is not None:
            (cache / "debs").mkdir(parents=True, exist_ok=True)
            archives = root / "var/cache/apt/archives"
            run(["mount", "--bind", str(cache / "debs"), str(archives)], log)
            done.append(archives)
        yield
    finally:
        for m in reversed(done):
            subprocess.run(["umount", "-l", str(m)], check=False)
        policy.unlink(missing_ok=True)


def debootstrap(root: Path, cache: Path, mirror: str, log: Path, packages: list[str]) -> None:
    """A fresh root at `root`: the base, then `packages` (without recommends, as debootstrap --include
    installed them). The .debs are kept in `cache`/debs for the next build."""
    unpack_base(root, mirror, log)
    chroot = chroot_runner(root, log)
    apt = ["apt-get", "-q", "-o", "APT::Install-Recommends=false"]
    with mounted(root, log, cache):
        chroot(*apt, "update")
        chroot(*apt, "install", "-y", *packages)


def chroot_runner(root: Path, log: Path) -> Callable[..., None]:
    """`chroot(*argv)`: run argv inside `root`, output to `log`."""

    def chroot(*argv: str) -> None:
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "DEBIAN_FRONTEND": "noninteractive"}
        run(["chroot", str(root), *argv], log, env=env)

    return chroot


def file_sha256(path: Path) -> str:
    """An image's or a package's digest, read in chunks: the files are hundreds of MiB."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


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
    # apt's lists and caches (apt-get update in the chroot made them): a node never installs, and they are big
    lists = [p for p in (root / "var/lib/apt/lists").glob("*_*") if p.is_file()]
    for p in [*lists, *(root / "var/cache/apt").glob("*.bin"), *(root / "var/cache/apt/archives").glob("*.deb")]:
        p.unlink()
    for p in (root / "usr/share/locale").iterdir():
        if not p.name.startswith("en") and p.name != "locale.alias":
            shutil.rmtree(p, ignore_errors=True)
