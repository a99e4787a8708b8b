"""`invoke bundle DIR`: everything setup would download, for Debian 12 amd64, in one folder to carry to a
venue on a USB stick; `scripts/setup --from DIR` installs from it and never reaches a network.

    debs/      every part of scripts/packages with its whole dependency closure (Recommends too, as setup's
               apt-get installs them), resolved inside a clean base root, so that nothing this host has
               installed is missed; the base's own packages at their newest, for a machine that has older
               ones; and a Packages index, for apt to read the folder as a local archive
    wheels/    pyproject's dependencies as wheels (those published without one are built here)
    npm/       an npm cache holding the web terminal's packages, as static/package-lock.json pins them
    box/       the lab's .box file and its name
    seat/      the classroom's LXD seat image
    MANIFEST   the checksums, in sha256sum's format: setup checks them with coreutils alone, first
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

from .errors import BackendFailed, InputError, LabError, visible
from .rootfs import CACHE, chroot_runner, file_sha256, host_mirror, mounted, run, unpack_base

CHECKOUT = Path(__file__).resolve().parents[1]
MANIFEST = "MANIFEST"
PARTS = ("debs", "wheels", "npm", "box", "seat")
NPM_FILES = ("package.json", "package-lock.json")
TARGET = "debian 12 amd64, Python 3.11"  # what scripts/setup --from installs onto (its apt-source checks it)


def apt_packages() -> list[str]:
    """Every package name of every part of scripts/packages."""
    names: set[str] = set()
    for line in (CHECKOUT / "scripts/packages").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            names.update(line.split()[1:])
    return sorted(names)


def python_deps() -> list[str]:
    project = tomllib.loads((CHECKOUT / "pyproject.toml").read_text())["project"]
    return [*project["dependencies"], *project["optional-dependencies"]["test"]]


def main(path: str, config: str, check: bool = False) -> None:
    """`invoke bundle DIR` makes the bundle; with --verify, checks it."""
    if check:
        verify(path)
    else:
        make(path, config)


def make(out: str, config: str) -> None:
    dest = Path(out).resolve()
    if dest.exists() and not dest.is_dir():
        raise InputError(f"bundle {visible(str(dest))}: is a file, not a folder", "name a new folder")
    if dest.exists() and any(p.name not in (*PARTS, MANIFEST) for p in dest.iterdir()):
        raise InputError(f"bundle {visible(str(dest))}: holds other files than a bundle's", "name a new folder")
    if (host := this_host()) != TARGET:
        raise InputError(f"bundle: this host is {host}, and a bundle is made for {TARGET}", "make it on " + TARGET)
    dest.mkdir(parents=True, exist_ok=True)
    (dest / MANIFEST).unlink(missing_ok=True)  # a bundle being made verifies as nothing until it is whole
    for part in PARTS:  # a part this run does not write (a public box now) must not stay from the last
        shutil.rmtree(dest / part, ignore_errors=True)
    log = _log()
    t0 = time.monotonic()
    print(f"bundle {dest}: the user half (wheels, npm, box); log: {log}")
    wheels(dest / "wheels", log)
    npm(dest / "npm", log)
    built(dest, config)
    root_half(dest)
    sums = write_manifest(dest)
    sizes = {part: sum(size for rel, size in sums if rel.startswith(part + "/")) for part in PARTS}
    parts = ", ".join(f"{part} {sizes[part] / 2**20:.0f} MiB" for part in PARTS)
    print(f"bundle {dest}: {sum(sizes.values()) / 2**20:.0f} MiB in {time.monotonic() - t0:.0f} s ({parts})")
    print(f"  on a machine with no network: bash scripts/setup --from {dest}")


def this_host() -> str:
    """Its release, architecture and Python: the wheels are built for this Python, the packages for the
    release, so a bundle made elsewhere would not install at the venue."""
    os_release = dict(line.split("=", 1) for line in Path("/etc/os-release").read_text().splitlines() if "=" in line)
    arch = subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True).stdout.strip()
    name = f"{os_release.get('ID', '?').strip(chr(34))} {os_release.get('VERSION_ID', '?').strip(chr(34))}"
    return f"{name} {arch}, Python {sys.version_info[0]}.{sys.version_info[1]}"


def _log() -> Path:
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "ovn-lab"
    cache.mkdir(parents=True, exist_ok=True)
    log = cache / "bundle.log"
    log.write_text("")
    return log


def _fresh(path: Path) -> Path:
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


def wheels(dest: Path, log: Path) -> None:
    _fresh(dest)
    pip = [sys.executable, "-m", "pip", "wheel", "-q", "--disable-pip-version-check", "-w", str(dest)]
    run([*pip, *python_deps()], log)
    print(f"  wheels: {len(list(dest.glob('*.whl')))}")


def npm(dest: Path, log: Path) -> None:
    if not shutil.which("npm"):
        raise BackendFailed("bundle: npm is not installed", "sudo bash scripts/setup-classroom")
    _fresh(dest)
    with tempfile.TemporaryDirectory() as tmp:
        for name in NPM_FILES:
            shutil.copy(CHECKOUT / "labgen/classroom/static" / name, tmp)
        run(["npm", "ci", "--cache", str(dest), "--no-audit", "--no-fund", "--ignore-scripts"], log, cwd=tmp)
    shutil.rmtree(dest / "_logs", ignore_errors=True)  # this run's npm logs: no package in them
    print(f"  npm: cache of {NPM_FILES[1]} ({len(list(dest.rglob('*')))} files)")


def built(out: Path, config: str) -> None:
    """What the backends build rather than download (the lab's box: built first where it is missing), each
    in its part's folder with its name beside it."""
    from .backends import every_backend
    from .load import load_lab

    for backend in every_backend(load_lab(config)):
        for part, name, src in backend.carried():
            dest = _fresh(out / part)
            try:
                os.link(src, dest / src.name)  # the same file system: no second copy of the box
            except OSError:
                shutil.copy(src, dest / src.name)
            (dest / "name").write_text(name + "\n")
            print(f"  {part}: {name} ({src.stat().st_size >> 20} MiB)")


def root_half(dest: Path) -> None:
    """The packages (resolved in a chroot) and the seat image (debootstrap): root's part, through sudo."""
    if os.geteuid() == 0:
        root_parts(dest)
        return
    print(
        "bundle: the packages are resolved in a clean Debian root (chroot) and the seat image is made with "
        "debootstrap, which need root: sudo runs that part (it may ask for your password); the files will be yours"
    )
    sys.stdout.flush()  # this half's lines before sudo's
    me = [sys.executable, "-m", "labgen.bundle", str(dest), str(os.getuid()), str(os.getgid())]
    r = subprocess.run(["sudo", "--", "env", f"PYTHONPATH={CHECKOUT}", *me], check=False)
    if r.returncode:
        raise BackendFailed(f"bundle: the root half failed (exit {r.returncode})", "see the lines above")


def root_parts(dest: Path, owner: tuple[int, int] | None = None) -> None:
    log = CACHE / "bundle.log"
    CACHE.mkdir(parents=True, exist_ok=True)
    log.write_text("")
    print(f"bundle {dest}: the root half (debs, seat image); log: {log}")
    try:
        debs(dest / "debs", log)
        seat(dest / "seat")
    finally:  # the user's even when a part failed: they can remove their folder
        if owner is not None:
            for part in ("debs", "seat"):
                top = dest / part
                for p in [top, *top.rglob("*")] if top.exists() else []:
                    os.chown(p, *owner)


def sources(mirror: str) -> str:
    """The release with its updates and security fixes: the bundle carries what a fresh setup would get."""
    security = mirror.rstrip("/") + "-security" if mirror.rstrip("/").endswith("/debian") else mirror
    return f"deb {mirror} bookworm main\ndeb {mirror} bookworm-updates main\ndeb {security} bookworm-security main\n"


def debs(dest: Path, log: Path) -> None:
    root = CACHE / "bundle-root"
    mirror = host_mirror()
    unpack_base(root, mirror, log)
    (root / "etc/apt/sources.list").write_text(sources(mirror))
    chroot = chroot_runner(root, log)
    try:
        with mounted(root, log):
            chroot("apt-get", "-q", "update")
            base = [p.name for p in (root / "var/lib/dpkg/info").glob("*.list")]
            base = sorted({name.removesuffix(".list").split(":")[0] for name in base})
            # --reinstall: the base's own packages are fetched too, at their newest
            chroot("apt-get", "-q", "install", "-y", "--download-only", "--reinstall", *base, *apt_packages())
        _fresh(dest)
        for deb in (root / "var/cache/apt/archives").glob("*.deb"):
            shutil.move(deb, dest / deb.name)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    index(dest)
    total = sum(p.stat().st_size for p in dest.glob("*.deb"))
    print(f"  debs: {len(list(dest.glob('*.deb')))} packages, {total >> 20} MiB")


def index(debs: Path) -> None:
    """A Packages file, as dpkg-scanpackages writes it (that is dpkg-dev's, which a clean machine lacks)."""
    stanzas = []
    for deb in sorted(debs.glob("*.deb")):
        r = subprocess.run(["dpkg-deb", "-f", str(deb)], capture_output=True, text=True)
        if r.returncode:
            raise BackendFailed(f"bundle: {deb.name} is no package ({r.stderr.strip()})", "invoke bundle DIR again")
        control = r.stdout
        meta = f"Filename: ./{deb.name}\nSize: {deb.stat().st_size}\nSHA256: {file_sha256(deb)}\n"
        stanzas.append(control.rstrip("\n") + "\n" + meta)
    (debs / "Packages").write_text("\n".join(stanzas))


def seat(dest: Path) -> None:
    from .classroom.seatimage import build, fingerprint

    image = build(print)
    fingerprint(image)  # its .sha256 beside it, so that setup --from leaves nothing to recompute
    _fresh(dest)
    for p in (image, image.with_suffix(".sha256")):  # the image and its digest, nothing half-built
        shutil.copy2(p, dest / p.name)
    print(f"  seat image: {image.name} ({image.stat().st_size >> 20} MiB)")


def write_manifest(dest: Path) -> list[tuple[str, int]]:
    files = sorted(p for p in dest.rglob("*") if p.is_file() and p.name != MANIFEST)
    lines = [f"{file_sha256(p)}  {p.relative_to(dest)}" for p in files]
    (dest / MANIFEST).write_text("\n".join(lines) + "\n")
    return [(str(p.relative_to(dest)), p.stat().st_size) for p in files]


def verify(path: str) -> None:
    """`invoke bundle --verify DIR`: every file the manifest names, present and whole."""
    dest = Path(path)
    manifest = dest / MANIFEST
    if not manifest.is_file():
        raise InputError(f"{visible(str(dest))}: no {MANIFEST}, so not a whole bundle", "invoke bundle DIR makes one")
    missing, damaged, size = [], [], 0
    listed: dict[str, str] = {}
    for n, line in enumerate(manifest.read_text().splitlines(), 1):
        digest, sep, rel = line.partition("  ")
        if not sep or len(digest) != 64:
            raise InputError(f"{visible(str(manifest))}:{n}: not a checksum line", "copy the bundle again")
        listed[rel] = digest
    # a cut manifest would check only what it still names: every file of the bundle must be in it
    present = sorted(str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file() and p != manifest)
    unlisted = [rel for rel in present if rel not in listed]
    for rel, digest in listed.items():
        p = dest / rel
        if not p.is_file():
            missing.append(rel)
        elif file_sha256(p) != digest:
            damaged.append(rel)
        else:
            size += p.stat().st_size
    if missing or damaged or unlisted:
        named = [*(f"missing: {r}" for r in missing), *(f"damaged: {r}" for r in damaged)]
        named += [f"not in the manifest (a cut one?): {r}" for r in unlisted]
        raise InputError(
            f"bundle {visible(str(dest))}: {len(missing)} file(s) missing, {len(damaged)} damaged, "
            f"{len(unlisted)} not in the manifest ({visible(', '.join([*missing, *damaged, *unlisted][:5]))})",
            "copy the bundle again from a good copy, or make it again: invoke bundle DIR",
            "\n".join(visible(n) for n in named),
        )
    print(f"bundle {dest}: {len(listed)} files, {size / 2**20:.0f} MiB, all whole")


if __name__ == "__main__":  # the root half of a user's bundle (see root_half): DIR UID GID
    out, uid, gid = sys.argv[1:]
    try:
        root_parts(Path(out), (int(uid), int(gid)))
    except LabError as e:
        from .cli import fail

        fail(e)
