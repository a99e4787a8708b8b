"""Tier offline: a venue with no network. A clean Debian 12 root (the run's one debootstrap, labgen.rootfs.base)
gets the bundle bound in, read-only, and is entered as a container would be: bubblewrap pivots into it in new
mount, PID, IPC and UTS namespaces, inside a network namespace of the test's that holds only loopback (a
chroot cannot serve: the kernel refuses user namespaces inside one, and the lab needs them). There, as root:
`scripts/setup --from` and `scripts/setup-classroom --from`; then as an ordinary user: `invoke up --backend
netns`, `invoke demo`, `invoke check`, teardown, and the bundle's box in Vagrant. (A damaged bundle is
the model tier's: test_bundle.py.)

A download attempted is a name looked up: the root's resolver is a DNS server of the test's on that
loopback, which logs each name asked and answers none; the test names them. An address given without a
name finds no route. The bundle is $OVN_LAB_BUNDLE (.ci/run makes it as its ordinary user), else one made
here. Needs root and bubblewrap."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from labgen.rootfs import CACHE, debootstrap, host_mirror

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "tests" / "artifacts"
USER = "trainee"
HOSTNAME = "venue"
# the DNS server of the test (runs on the host's python3, inside the test's network namespace)
SINK = r"""
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 53))
log = open(sys.argv[1], "a", buffering=1)
print("ready", flush=True)
while True:
    q, peer = s.recvfrom(512)
    i, labels = 12, []
    while i < len(q) and q[i]:
        labels.append(q[i + 1 : i + 1 + q[i]].decode(errors="replace"))
        i += 1 + q[i]
    log.write(".".join(labels) + "\n")
    # the same id and question, QR set, RCODE 5 (REFUSED): the asker fails at once
    s.sendto(q[:2] + bytes([0x81, 0x85]) + q[4:6] + b"\0\0\0\0\0\0" + q[12 : i + 5], peer)
"""
# what runs in the root: each step timed, in the order a venue's machine runs them
SCRIPT = r"""
set -euo pipefail
mount -t proc proc /proc  # a fresh, fully visible /proc: the lab's user namespace mounts its own
mount -t sysfs sysfs /sys
t() { local t0=$SECONDS; "$@"; echo "### $((SECONDS - t0)) s: $*"; }
cd /home/trainee/ovn-lab
t env SUDO_USER=trainee bash scripts/setup --from /bundle
t bash scripts/setup-classroom --from /bundle
lab() { runuser -u trainee -- env HOME=/home/trainee VAGRANT_CHECKPOINT_DISABLE=1 "$@"; }
t lab .venv/bin/invoke up --backend netns
t lab .venv/bin/invoke demo
t lab .venv/bin/invoke check
t lab .venv/bin/invoke teardown
lab vagrant box list
"""

pytestmark = [
    pytest.mark.offline,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (a root file system, namespaces)"),
    pytest.mark.skipif(not shutil.which("bwrap"), reason="needs bubblewrap (apt-get install bubblewrap)"),
]


@pytest.fixture(scope="module")
def made_bundle(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    given = os.environ.get("OVN_LAB_BUNDLE")
    if given:
        yield Path(given)
        return
    out = tmp_path_factory.mktemp("bundle") / "b"
    try:
        subprocess.run([sys.executable, "-m", "invoke", "bundle", str(out)], cwd=ROOT, check=True)
        yield out
    finally:
        shutil.rmtree(out, ignore_errors=True)  # over a GiB


@pytest.fixture
def netns() -> Iterator[str]:
    """A network namespace with only loopback, removed afterwards."""
    name = f"ovnlab-offline-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


@pytest.fixture
def sink(netns: str, tmp_path: Path) -> Iterator[Path]:
    """The resolver of the root: every name asked goes to the log."""
    log = tmp_path / "names.log"
    log.write_text("")
    argv = ["ip", "netns", "exec", netns, sys.executable, "-c", SINK, str(log)]
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout is not None and p.stdout.readline().strip() == "ready"
        yield log
    finally:
        p.kill()
        p.wait()


@pytest.fixture
def root(tmp_path: Path) -> Iterator[Path]:
    """A clean Debian 12 root with a copy of this checkout in an ordinary user's home; removed afterwards. Like
    an installed machine, it holds more than the base, at the release's first versions (systemd, without
    the updates the bundle has): setup must upgrade what its packages need newer."""
    rootfs = tmp_path / "root"
    debootstrap(rootfs, CACHE, host_mirror(), tmp_path / "root.log", ["systemd-sysv"])
    try:
        subprocess.run(["chroot", str(rootfs), "useradd", "-m", "-s", "/bin/bash", USER], check=True)
        skip = shutil.ignore_patterns(".git", ".venv", "node_modules", "__pycache__", "artifacts", ".lab*")
        shutil.copytree(ROOT, rootfs / "home" / USER / "ovn-lab", ignore=skip)
        subprocess.run(["chroot", str(rootfs), "chown", "-R", f"{USER}:", f"/home/{USER}"], check=True)
        (rootfs / "etc/resolv.conf").write_text("nameserver 127.0.0.1\n")  # the sink's
        # as Debian's installer writes it: the machine's own name is no lookup
        (rootfs / "etc/hosts").write_text(f"127.0.0.1 localhost\n127.0.1.1 {HOSTNAME}\n")
        (rootfs / "bundle").mkdir()
        yield rootfs
    finally:
        shutil.rmtree(rootfs, ignore_errors=True)


def sandbox(netns: str, rootfs: Path, bundle_dir: Path, script: str, out: Path) -> subprocess.Popen:
    """`script` as root in `rootfs`, output to `out`: pivoted into (bubblewrap), its own PID, IPC, UTS and
    mount namespaces, in `netns`. What it starts ends with it (the PID namespace dies with bubblewrap)."""
    bwrap = [
        "bwrap",
        *("--bind", str(rootfs), "/"),
        *("--ro-bind", str(bundle_dir), "/bundle"),
        *("--dev", "/dev", "--perms", "0755", "--dir", "/dev/net", "--dev-bind", "/dev/net/tun", "/dev/net/tun"),
        *("--perms", "01777", "--tmpfs", "/tmp", "--tmpfs", "/run"),  # /tmp as on any machine
        *("--unshare-pid", "--unshare-ipc", "--unshare-uts", "--hostname", HOSTNAME),
        *("--cap-add", "ALL", "--die-with-parent", "--clearenv"),
        *("--setenv", "PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"),
        *("--setenv", "HOME", "/root", "--setenv", "LANG", "C.UTF-8"),
        *("bash", "-c", script),
    ]
    with out.open("w") as f:
        return subprocess.Popen(["ip", "netns", "exec", netns, *bwrap], stdout=f, stderr=subprocess.STDOUT)


def looked_up(sink: Path) -> list[str]:
    """The names asked of the sink, but the machine's own (its IPv6 half is not in /etc/hosts, as on an
    installed Debian, so glibc asks DNS for it: no download)."""
    return sorted(set(sink.read_text().split()) - {HOSTNAME})


def test_setup_from_the_bundle_with_no_network(
    made_bundle: Path, netns: str, sink: Path, root: Path, tmp_path: Path
) -> None:
    t0 = time.monotonic()
    log = tmp_path / "root.out"
    p = sandbox(netns, root, made_bundle, SCRIPT, log)
    try:
        # the first name looked up fails the test at once: a tool that retries its index would take minutes
        while p.poll() is None and not looked_up(sink) and time.monotonic() - t0 < 1500:
            time.sleep(1)
    finally:
        if p.poll() is None:
            p.kill()
        p.wait()
    took = time.monotonic() - t0
    out = log.read_text()
    names = looked_up(sink)
    assert not names, f"downloads attempted with no network (names looked up): {', '.join(names)}\n{out[-3000:]}"
    assert p.returncode == 0, out[-4000:]
    assert "20 ok, 0 problems" in out, out[-3000:]
    assert "ovn-lab/bookworm (libvirt" in out, out[-1500:]  # vagrant box list
    # each step's time, for the closing note
    ARTIFACTS.mkdir(exist_ok=True)
    steps = [line for line in out.splitlines() if line.startswith("### ")]
    (ARTIFACTS / "offline.txt").write_text("\n".join([*steps, f"### {took:.0f} s: all, in the root"]) + "\n")
