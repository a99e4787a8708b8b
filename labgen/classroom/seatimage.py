"""The classroom's LXD seat image: a Debian 12 system container holding what a seat's rootless lab runs
(OVS/OVN, python3, tini, dhclient) and what a trainee's terminal uses (tmux, sshd for `sshd -i`). Built
once as root with debootstrap, from the package cache the box shares (labgen/rootfs.py), kept under
/var/cache/ovn-lab as one LXD unified tarball (a second build is instant), imported into LXD under an alias.

Lean: systemd boots it (LXD's system containers expect it), with the units a seat never needs masked."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..errors import BackendFailed
from ..rootfs import CACHE, SUITE, chroot_runner, debootstrap, file_sha256, forget_identity, host_mirror, run, slim
from .lxdhost import IMAGE, query

Log = Callable[[str], None]

PACKAGES = [
    "systemd-sysv",
    "udev",  # without it systemd-networkd leaves eth0 pending and never asks for a lease
    "iproute2",
    "isc-dhcp-client",
    "iputils-ping",
    "tcpdump",
    "tini",
    "procps",
    "openvswitch-switch",
    "ovn-central",
    "ovn-host",
    "python3",
    "python3-venv",  # the seat's own venv of the project's wheels
    "openssh-server",
    "tmux",
]
# units a seat never runs; the lab's daemons are its own, rootless, started by the lab
MASKED = (
    "systemd-binfmt.service",  # an unprivileged container cannot mount binfmt_misc: it fails, `degraded`
    "proc-sys-fs-binfmt_misc.automount",
    "ssh.service",  # sshd runs as `sshd -i` per connection: nothing listens
    "ssh.socket",
    "openvswitch-switch.service",
    "ovs-vswitchd.service",
    "ovsdb-server.service",
    "ovn-central.service",
    "ovn-host.service",
    "ovn-northd.service",
    "ovn-controller.service",
    "ovn-ovsdb-server-nb.service",
    "ovn-ovsdb-server-sb.service",
    "apt-daily.timer",  # housekeeping a seat of a day never needs (and it reaches no mirror)
    "apt-daily-upgrade.timer",
    "dpkg-db-backup.timer",
    "e2scrub_all.timer",
    "e2scrub_reap.service",
    "fstrim.timer",
    "systemd-networkd-wait-online.service",  # nothing waits for the network
    "console-getty.service",  # nobody logs in on a console: terminals come through `lxc exec`
    "container-getty@.service",
    "getty@.service",
)
NETWORK = "[Match]\nName=eth0\n[Network]\nDHCP=ipv4\nLinkLocalAddressing=no\nIPv6AcceptRA=no\n"
JOURNAL = "[Journal]\nStorage=volatile\nRuntimeMaxUse=8M\n"  # in memory, small: a seat's log is the lab's own
METADATA = """architecture: x86_64
creation_date: {date}
properties:
  description: Debian 12 {suite}, {what}
  os: debian
  release: {suite}
"""


@dataclass(frozen=True)
class Image:
    """An image built like the seat's: its alias in LXD, its folder in the cache, its packages, and what its
    root gets on top of the seat's configuration (member.py's image holds an lxd of its own)."""

    alias: str
    folder: str
    packages: tuple[str, ...]
    what: str
    more: Callable[[Path, Callable[..., None]], None] | None = None  # (root, chroot)


SEAT = Image(IMAGE, "seat", tuple(PACKAGES), "OVS/OVN, python3, tmux (ovn-lab classroom seat)")


def work_dir(image: Image = SEAT) -> Path:
    return CACHE / image.folder


def image_file(image: Image = SEAT) -> Path:
    """The built image: one unified tarball (metadata.yaml + rootfs/), zstd."""
    return work_dir(image) / f"{image.alias}.tar.zst"


def fingerprint(path: Path) -> str:
    """LXD's fingerprint of a unified tarball: its sha256 (kept beside it, computed once)."""
    side = path.with_suffix(".sha256")
    if side.exists() and side.stat().st_mtime >= path.stat().st_mtime:
        return side.read_text().strip()
    digest = file_sha256(path)
    side.write_text(digest + "\n")
    return digest


def build(log: Log, *, force: bool = False, mirror: str | None = None, image: Image = SEAT) -> Path:
    """The image file, built when missing (or `force`). Needs root."""
    out = image_file(image)
    if out.exists() and not force:
        return out
    if os.geteuid() != 0:
        raise BackendFailed("building the seat image needs root (debootstrap, chroot)", "sudo invoke classroom.image")
    work = work_dir(image)
    work.mkdir(parents=True, exist_ok=True)
    buildlog, root = work / "build.log", work / "rootfs"
    buildlog.write_text("")
    mirror = mirror or host_mirror()
    t0 = time.monotonic()
    log(f"{image.alias}: debootstrap {SUITE} ({len(image.packages)} packages, {mirror}); log: {buildlog}")
    debootstrap(root, CACHE, mirror, buildlog, list(image.packages))
    t1 = time.monotonic()
    log(f"{image.alias}: debootstrap done in {t1 - t0:.0f} s; configuring")
    configure(root, buildlog)
    if image.more:
        image.more(root, chroot_runner(root, buildlog))
    (work / "metadata.yaml").write_text(METADATA.format(date=int(time.time()), suite=SUITE, what=image.what))
    part = out.with_name(out.name + ".part")
    run(["tar", "--numeric-owner", "--zstd", "-C", str(work), "-cf", str(part), "metadata.yaml", "rootfs"], buildlog)
    part.rename(out)
    shutil.rmtree(root)  # the tarball holds it; the package cache makes the next debootstrap quick
    log(f"{image.alias}: {out} ({out.stat().st_size >> 20} MiB) in {time.monotonic() - t0:.0f} s")
    return out


def configure(root: Path, buildlog: Path) -> None:
    """DHCP on eth0 through systemd-networkd, a small volatile journal, the masked units, no identity."""
    chroot = chroot_runner(root, buildlog)
    (root / "etc/hostname").write_text("seat\n")
    (root / "etc/hosts").write_text("127.0.0.1 localhost\n127.0.1.1 seat\n")
    (root / "etc/systemd/network").mkdir(parents=True, exist_ok=True)
    (root / "etc/systemd/network/eth0.network").write_text(NETWORK)
    (root / "etc/systemd/journald.conf.d").mkdir(parents=True, exist_ok=True)
    (root / "etc/systemd/journald.conf.d/seat.conf").write_text(JOURNAL)
    chroot("systemctl", "enable", "systemd-networkd.service")
    chroot("systemctl", "mask", *MASKED)
    forget_identity(root)
    slim(root)


def ensure_imported(project: str, image: Image = SEAT, log: Log = print) -> str:
    """The image in LXD's `project` under its alias, built and imported when missing or when the built
    file is newer than what the alias names (the alias then moves and the old image goes). Its fingerprint."""
    alias = image.alias
    path = build(log, image=image)
    fp = fingerprint(path)
    q = f"?project={project}"
    have = query(f"/1.0/images/aliases/{alias}{q}")
    if have and have.get("target") == fp:
        return fp
    if query(f"/1.0/images/{fp}{q}") is None:
        t0 = time.monotonic()
        _lxc("image", "import", str(path), "--project", project)
        log(f"{alias}: imported into LXD project {project} in {time.monotonic() - t0:.0f} s")
    if have:
        _lxc("image", "alias", "delete", alias, "--project", project)
        if have.get("target"):
            _lxc("image", "delete", have["target"], "--project", project)
    _lxc("image", "alias", "create", alias, fp, "--project", project)
    return fp


def _lxc(*argv: str) -> None:
    r = subprocess.run(["lxc", *argv], capture_output=True, text=True, timeout=600)
    if r.returncode:
        raise BackendFailed(f"lxc {' '.join(argv[:3])} failed: {r.stderr.strip()[-300:]}", "sudo invoke doctor")


def image(force: bool = False) -> Path:
    """`invoke classroom.image`: build (or reuse) the seat image and import it into LXD's default project."""
    path = build(print, force=force)
    fp = ensure_imported("default")
    print(f"seat image {IMAGE}: {path} ({path.stat().st_size >> 20} MiB), fingerprint {fp[:12]}")
    return path
