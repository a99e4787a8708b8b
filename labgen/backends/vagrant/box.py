"""Build the lab's Debian 12 libvirt box locally: debootstrap -> rootfs tuned for TCG -> qcow2 -> .box.

The box boots by direct kernel boot (no bootloader in the image) and has OVS/OVN preinstalled, so a lab
comes up with no network. Built once, the .box file can be copied to every laptop of a workshop.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable
from pathlib import Path

from ...errors import BackendFailed
from ...rootfs import CACHE, chroot_runner, debootstrap, forget_identity, host_mirror, slim
from ...rootfs import run as _run
from ...ui import console, step
from .boxdata import BOX_VAGRANTFILE, FEATURES, FILES, FIRST_BOOT, FIRST_BOOT_UNIT, PACKAGES, PRUNE_MODULES, SIZE_GIB
from .libvirt import drop_box_volumes


def cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "ovn-lab"


def box_file(name: str) -> Path:
    return cache_dir() / f"{name.replace('/', '-')}.box"


def vagrant_pubkey() -> Path:
    found = glob.glob("/usr/share/rubygems-integration/all/gems/vagrant-*/keys/vagrant.pub") + glob.glob(
        "/opt/vagrant/embedded/gems/gems/vagrant-*/keys/vagrant.pub"
    )
    if not found:
        raise BackendFailed("vagrant's insecure public key not found: is vagrant installed?", "invoke setup")
    return Path(sorted(found)[-1])


def build_box(name: str, *, force: bool = False, mirror: str | None = None) -> Path:
    """Build (or reuse) the .box file and add it to the user's Vagrant as `name`. Returns the .box path.
    The root file system needs root (debootstrap, chroot, mount): a user's build runs that half through
    sudo, after saying so, and gets the .box file as their own; `vagrant box add` runs as the user."""
    out = box_file(name)
    t0 = time.monotonic()
    if force or not out.exists():
        mirror = mirror or host_mirror()
        if os.geteuid() == 0:
            make_box_file(out, cache_dir(), mirror)
        else:
            _through_sudo(out, mirror)
    log = cache_dir() / "box-add.log"
    log.write_text("")
    with step(f"vagrant box add {name}"):
        _box_add(name, out, log)
    console.print(f"box {name} ready in {time.monotonic() - t0:.0f} s: {out} ({out.stat().st_size >> 20} MiB)")
    console.print(f"  copy it to other laptops and run: vagrant box add --name {name} {out.name}")
    return out


def make_box_file(out: Path, cache: Path, mirror: str) -> None:
    """The root half: debootstrap, configure, image, .box file. `cache` keeps the downloaded packages."""
    work = cache / "build"
    work.mkdir(parents=True, exist_ok=True)
    log = work / "build.log"
    log.write_text("")
    root = work / "rootfs"

    chroot = chroot_runner(root, log)
    stages: list[tuple[str, Callable[[], None]]] = [
        (
            f"debootstrap bookworm ({len(PACKAGES)} packages, {mirror})",
            lambda: debootstrap(root, cache, mirror, log, PACKAGES),
        ),
        ("configure rootfs (vagrant user, fast boot, small initrd)", lambda: _configure(root, chroot)),
        ("make qcow2 image and .box", lambda: _make_box(root, work, out, log)),
    ]
    for title, fn in stages:
        with step(title):
            fn()


ROOT_CACHE = CACHE  # the root half's own cache when a user builds through sudo


def _through_sudo(out: Path, mirror: str) -> None:
    console.print(
        "the box's root file system is made with debootstrap and chroot, which need root: "
        "sudo runs that part (it may ask for your password); the .box file will be yours"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    repo = Path(__file__).resolve().parents[3]
    me = ["-m", "labgen.backends.vagrant.box", str(out), mirror, str(os.getuid()), str(os.getgid())]
    r = subprocess.run(["sudo", "--", "env", f"PYTHONPATH={repo}", sys.executable, *me])
    if r.returncode or not out.exists():
        raise BackendFailed(f"building the box as root failed (exit {r.returncode})", "see the lines above")


def _configure(root: Path, chroot: Callable[..., None]) -> None:
    for rel, text in FILES.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    (root / "etc/sudoers.d/vagrant").chmod(0o440)
    (root / FIRST_BOOT).chmod(0o755)
    (root / "etc/network/interfaces.d").mkdir(exist_ok=True)
    with (root / "etc/dhcp/dhclient.conf").open("a") as f:
        f.write("timeout 30;\n")
    subprocess.run(["mount", "-t", "proc", "proc", str(root / "proc")], check=True)
    try:
        chroot("sh", "-c", "id vagrant >/dev/null 2>&1 || useradd -m -s /bin/bash -G sudo vagrant")
        # no password logs in: vagrant's is none at all ('*'), root's locked; keys only (sshd below)
        chroot("usermod", "-p", "*", "vagrant")
        chroot("passwd", "-l", "root")
        ssh = root / "home/vagrant/.ssh"
        ssh.mkdir(mode=0o700, exist_ok=True)
        shutil.copy(vagrant_pubkey(), ssh / "authorized_keys")
        (ssh / "authorized_keys").chmod(0o600)
        chroot("chown", "-R", "vagrant:vagrant", "/home/vagrant")
        forget_identity(root)
        # TCG is slow: keep off the boot path what only some nodes need (OVN: the provisioner starts it
        # where needed); Open vSwitch, which every node needs, starts while the other VMs still boot
        chroot(
            "sh",
            "-c",
            "systemctl disable ovn-central ovn-host ovn-ovsdb-server-nb ovn-ovsdb-server-sb "
            "apt-daily.timer apt-daily-upgrade.timer dpkg-db-backup.timer "
            "e2scrub_all.timer e2scrub_reap.service fstrim.timer systemd-pstore.service getty@.service || true",
        )
        chroot("systemctl", "enable", FIRST_BOOT_UNIT)
        chroot(
            "sh",
            "-c",
            "systemctl enable openvswitch-switch; "
            # user@: a login starts no systemd user manager (slow under TCG, and nothing in the lab uses one)
            "systemctl mask getty@tty1.service systemd-networkd-wait-online.service user@.service; "
            "systemctl enable serial-getty@ttyS0.service || true",
        )
        # initramfs with only what mounts /dev/vda
        conf = root / "etc/initramfs-tools/initramfs.conf"
        conf.write_text(
            "\n".join("MODULES=list" if line.startswith("MODULES=") else line for line in conf.read_text().splitlines())
            + "\n"
        )
        (root / "etc/initramfs-tools/modules").write_text("virtio_pci\nvirtio_blk\next4\n")
        kver = sorted(os.listdir(root / "lib/modules"))[-1]
        for d in PRUNE_MODULES:
            shutil.rmtree(root / "lib/modules" / kver / "kernel" / d, ignore_errors=True)
        chroot("depmod", "-a", kver)
        chroot("update-initramfs", "-u", "-k", kver)
    finally:
        subprocess.run(["umount", str(root / "proc")], check=False)
    slim(root)


def _make_box(root: Path, work: Path, out: Path, log: Path) -> None:
    raw, boxdir = work / "root.raw", work / "box"
    shutil.rmtree(boxdir, ignore_errors=True)
    boxdir.mkdir()
    with raw.open("wb") as f:
        f.truncate(SIZE_GIB << 30)
    _run(
        [
            "mkfs.ext4",
            "-q",
            "-F",
            "-L",
            "root",
            "-d",
            str(root),
            "-E",
            "lazy_itable_init=0,lazy_journal_init=0",
            str(raw),
        ],
        log,
    )
    _run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", str(raw), str(boxdir / "box.img")], log)
    raw.unlink()
    shutil.copy(sorted((root / "boot").glob("vmlinuz-*"))[-1], boxdir / "vmlinuz")
    shutil.copy(sorted((root / "boot").glob("initrd.img-*"))[-1], boxdir / "initrd.img")
    (boxdir / "metadata.json").write_text(f'{{"provider":"libvirt","format":"qcow2","virtual_size":{SIZE_GIB}}}\n')
    (boxdir / "Vagrantfile").write_text(BOX_VAGRANTFILE)
    (boxdir / "ovn-lab.json").write_text(json.dumps(FEATURES) + "\n")
    tmp = out.with_suffix(".box.part")
    with tarfile.open(tmp, "w") as tar:
        for member in ("metadata.json", "Vagrantfile", "ovn-lab.json", "box.img", "vmlinuz", "initrd.img"):
            tar.add(boxdir / member, arcname=member)
    tmp.rename(out)
    shutil.rmtree(boxdir)


def _box_add(name: str, out: Path, log: Path) -> None:
    _run(["vagrant", "box", "add", "--force", "--name", name, str(out)], log)
    # vagrant-libvirt uploads a box into the pool once and never refreshes it: drop the old copy
    drop_box_volumes(name)


def build_lab_box(config: str | Path, name: str | None = None, *, force: bool = False) -> Path:
    """`invoke box`: the box lab.toml names (vagrant.box), or `name`."""
    from ...load import load_lab

    return build_box(name or load_lab(config).vagrant.box, force=force)


if __name__ == "__main__":  # the root half of a user's build (see _through_sudo): OUT MIRROR UID GID
    out, mirror, uid, gid = sys.argv[1:]
    make_box_file(Path(out), ROOT_CACHE, mirror)
    os.chown(out, int(uid), int(gid))
