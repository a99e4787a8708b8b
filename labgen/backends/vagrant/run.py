"""What the VM backend runs on the host: `vagrant up` (its progress beside the stage's spinner), and what
ssh to the VMs needs of the user's account: the lab's key, Vagrant's insecure key and a private dir for master
sockets."""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import threading
from pathlib import Path

from ...errors import BackendFailed
from ...lock import held_fds
from ...ui import progress
from ..base import quoted


def insecure_key() -> Path:
    """Vagrant's well-known key, which the box (and any public box) accepts until the lab's replaces it:
    Vagrant's own copy in the user's Vagrant home (ssh, and Vagrant, refuse a key the user does not own)."""
    home = Path(os.environ.get("VAGRANT_HOME", Path.home() / ".vagrant.d"))
    key = home / "insecure_private_key"
    if not key.exists():  # Vagrant makes it on its first run; make it as Vagrant does
        from .box import vagrant_pubkey

        home.mkdir(parents=True, exist_ok=True)
        shutil.copy(vagrant_pubkey().with_suffix(""), key)
        key.chmod(0o600)
    return key


def lab_key(ssh_dir: Path, lab: str) -> Path:
    """The lab's own ssh key (made on first use, gone with teardown): the VMs accept it instead of Vagrant's
    insecure key, which every Vagrant installation ships."""
    key = ssh_dir / "vm_ed25519"
    if not key.exists():
        argv = ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"ovn-lab {lab}", "-f", str(key)]
        r = subprocess.run(argv, capture_output=True, text=True)
        if r.returncode:
            raise BackendFailed(f"ssh-keygen failed: {r.stderr.strip()}", "apt-get install openssh-client")
    return key


def ssh_hosts(ips: dict[str, str], keys: list[Path]) -> str:
    """The Host blocks `vagrant ssh-config` prints for the VMs at `ips` (node -> address), written here: the
    same file, without starting Vagrant."""
    files = "".join(f"  IdentityFile {quoted(k)}\n" for k in keys)
    return "".join(
        f"Host {node}\n  HostName {ip}\n  User vagrant\n  Port 22\n  UserKnownHostsFile /dev/null\n"
        f"  StrictHostKeyChecking no\n  PasswordAuthentication no\n{files}  IdentitiesOnly yes\n  LogLevel FATAL\n\n"
        for node, ip in ips.items()
    )


def control_dir() -> Path:
    """Where ssh keeps its master sockets: a directory only this user may enter. In /tmp itself another
    user could create the socket's name first, or use it."""
    runtime = os.environ.get("XDG_RUNTIME_DIR", "")
    d = Path(runtime) / "ovn-lab" if runtime and os.path.isdir(runtime) else Path(f"/tmp/ovn-lab-{os.getuid()}")
    d.mkdir(mode=0o700, exist_ok=True)
    st = d.lstat()
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or stat.S_IMODE(st.st_mode) != 0o700:
        raise BackendFailed(f"{d} is not a directory only you can enter", f"remove it (rm -rf {d}) and try again")
    return d


def vagrant_up(lab: str, cwd: Path, env: dict[str, str], logf: Path) -> None:
    """`vagrant up`, its output to `logf`, its progress beside the stage's spinner. Not through
    python-vagrant: vagrant must inherit the lab's lock, so that a `vagrant up` that outlives a killed
    invoke keeps the lab busy (and teardown can prove it is the lab's)."""
    stop = threading.Event()
    threading.Thread(target=_watch_vagrant_log, args=(logf, stop), daemon=True).start()
    try:
        with logf.open("a") as out:
            argv = ["vagrant", "up", "--provider=libvirt"]
            rc = subprocess.run(
                argv,
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                pass_fds=held_fds(),
            ).returncode
    finally:
        stop.set()
    if rc:
        tail = "\n".join(logf.read_text().splitlines()[-25:])
        if "another process is already executing an action" in tail:  # vagrant's own lock, not ours
            raise BackendFailed(
                f"lab {lab} is busy: another vagrant process is acting on its VMs",
                "wait for it to end (`pgrep -af vagrant`), then run `invoke up` again",
                tail,
            )
        raise BackendFailed("vagrant up failed", f"see {logf}", tail)


def _watch_vagrant_log(log: Path, stop: threading.Event) -> None:
    """Per-VM progress of `vagrant up` (`==> ovn-host-01: Waiting for SSH...`) beside the stage's spinner."""
    last: dict[str, str] = {}
    pos = 0
    while not stop.wait(1.0):
        try:
            with log.open() as f:
                f.seek(pos)
                chunk = f.read()
                pos = f.tell()
        except OSError:
            continue
        for m in re.finditer(r"^==> ([\w.-]+): (.+)$", chunk, re.M):
            last[m[1]] = m[2].strip()[:40]
        if last:
            progress("  ".join(f"{k}: {v}" for k, v in sorted(last.items())))
