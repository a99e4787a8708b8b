"""vagrant backend: libvirt VMs from the rendered Vagrantfile; commands over plain OpenSSH.

python-vagrant does up, status, destroy, snapshots and ssh-config; everything inside the VMs goes over
`ssh -F ssh_config` with a ControlMaster (`vagrant ssh -c` costs 3-8 s a call under TCG). libvirt-python
checks the host before `up` and sweeps the lab's domains, networks and volumes on teardown, also when
Vagrant's own state was lost.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import json
import os
import re
import shlex
import subprocess
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from ...errors import BackendFailed
from ...gates import wait_for
from ...model import Lab
from ..base import Backend, Log, Probe
from . import libvirt, seed
from .boxdata import REMOTE_DIR
from .host import OWN_BOX, host_probes
from .render import Kernel, render_vagrantfile
from .run import control_dir, insecure_key, lab_key, ssh_hosts, vagrant_up
from .seed import provisioner_tar


class VagrantBackend(Backend):
    name = "vagrant"
    datapath = "system"  # the guest kernel's openvswitch module
    services = "systemd"
    install = True
    prelude = ("install", "root-ssh")  # root accepts the lab's key: `ssh ovn-host-01` lands as root
    freezes = True
    has_box = True

    def __init__(self, lab: Lab):
        super().__init__(lab)
        self.networks = (lab.scoped("underlay"), lab.scoped("mgmt"))
        self.as_root: set[str] = set()  # nodes root logs in to before all do (then the lab's root marker)

    # -- vagrant ------------------------------------------------------------------------------------------
    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            VAGRANT_CWD=str(self.state.dir),
            VAGRANT_DEFAULT_PROVIDER="libvirt",
            VAGRANT_NO_COLOR="1",
            VAGRANT_CHECKPOINT_DISABLE="1",
            VAGRANT_LOG=env.get("VAGRANT_LOG", "error"),
        )
        return env

    def vagrant(self, log: str = "vagrant") -> Any:
        import vagrant

        path = str(self.state.log(log))
        return vagrant.Vagrant(
            root=str(self.state.dir),
            env=self.env(),
            quiet_stdout=False,
            quiet_stderr=False,
            out_cm=vagrant.make_file_cm(path),
            err_cm=vagrant.make_file_cm(path),
        )

    def plan_extras(self, node: str) -> dict[str, str]:
        return {"ssh_key": Path(f"{lab_key(self.state.ssh_dir, self.lab.name)}.pub").read_text().strip()}

    def _vagrant_call(self, what: str, log: str, call: Any) -> Any:
        """A python-vagrant call; its failure is the lab's, said with the log to read."""
        try:
            return call(self.vagrant(log))
        except (subprocess.CalledProcessError, OSError) as e:
            raise BackendFailed(f"vagrant {what} failed ({e})", f"read {self.state.log(log)}") from None

    def box_dir(self) -> Path | None:
        home = Path(os.environ.get("VAGRANT_HOME", Path.home() / ".vagrant.d"))
        found = sorted((home / "boxes" / self.lab.vagrant.box.replace("/", "-VAGRANTSLASH-")).glob("*/libvirt"))
        return found[-1] if found else None

    def box_features(self) -> dict[str, str]:
        """What the box can do (boxdata.FEATURES, in the box's folder): none for a box not ours, or ours
        built before it said."""
        box = self.box_dir()
        path = box / "ovn-lab.json" if box else None
        return json.loads(path.read_text()) if path and path.exists() else {}

    def seeds(self) -> dict[str, str]:
        """Node -> its seed disk's volume, where the box applies one at first boot (seed.py)."""
        ours = bool(self.box_features().get("first_boot"))
        return {n: f"{self.lab.scoped(n)}-seed.qcow2" for n in self.lab.node_names if ours}

    # -- checks -------------------------------------------------------------------------------------------
    def probes(self) -> list[Probe]:
        return host_probes(self.lab, self.box_dir, self.networks)

    def labs_on_host(self) -> dict[str, str]:
        with contextlib.suppress(Exception):
            return {lab: f"{len(ds)} VMs ({', '.join(ds)})" for lab, ds in sorted(libvirt.labs_with_domains().items())}
        return {}

    # -- lifecycle ----------------------------------------------------------------------------------------
    def render(self) -> Path:
        kernel = self._kernel()
        text = render_vagrantfile(
            self.lab,
            libvirt.choose_accel(self.lab.vagrant.accel),
            kernel,
            fast_guest=kernel is not None,
            ssh_keys=(str(lab_key(self.state.ssh_dir, self.lab.name)), str(insecure_key())),
            seeds=self.seeds(),
        )
        self.state.make()
        self.state.vagrantfile.write_text(text)
        r = subprocess.run(["vagrant", "validate"], env=self.env(), capture_output=True, text=True)
        if r.returncode:
            raise BackendFailed(f"vagrant validate {self.state.vagrantfile} failed", evidence=r.stdout + r.stderr)
        return self.state.vagrantfile

    def _kernel(self) -> Kernel | None:
        """A box for direct kernel boot (the lab's own) ships vmlinuz/initrd. qemu runs as libvirt-qemu and
        cannot read them under a private home, so they go into the storage pool as lab volumes."""
        box = self.box_dir()
        if box is None or not (box / "vmlinuz").exists():
            return None
        m = re.search(r'cmd_line = "([^"]*)"', (box / "Vagrantfile").read_text())
        with libvirt.connection() as conn:
            paths = {
                kind: libvirt.upload(conn, (box / kind).read_bytes(), self.lab.scoped(kind))
                for kind in ("vmlinuz", "initrd.img")
            }
        return Kernel(paths["vmlinuz"], paths["initrd.img"], m[1] if m else "root=/dev/vda rw console=ttyS0")

    def carried(self) -> list[tuple[str, str, Path]]:
        """The lab's own box, built here where it is missing; a public box comes from its own source."""
        from .box import box_file, build_box

        name = self.lab.vagrant.box
        if name != OWN_BOX:
            return []
        if not box_file(name).exists():
            build_box(name)
        return [("box", name, box_file(name))]

    def create(self, log: Log, first_boot: Mapping[str, dict[str, Any]]) -> set[str]:
        if self.box_dir() is None:
            if self.lab.vagrant.box != OWN_BOX:
                raise BackendFailed(
                    f"box {self.lab.vagrant.box} is not installed", f"vagrant box add {self.lab.vagrant.box}"
                )
            from .box import build_box

            build_box(self.lab.vagrant.box)
        log(f"accelerator: {libvirt.choose_accel(self.lab.vagrant.accel).reason}")
        seeded = seed.deliver(self.lab, seeds := self.seeds(), first_boot, log)
        self.render()
        logf = self.state.log("vagrant-up")
        log(f"vagrant up (all VMs in parallel), log: {logf}")
        vagrant_up(self.lab.name, self.state.dir, self.env(), logf)
        self.write_ssh_config()

        def ready(n: str) -> tuple[bool, bool]:
            if n in seeded and self.root_ok(n):  # its first boot let root in: one login, not vagrant's then root's
                self.as_root.add(n)
            # a VM an interrupted `vagrant up` booted counts as up for the next one, which then returns at
            # once, before its sshd answers: every VM must run a command; then, did its first boot configure it?
            wait_for(n, "a command to run over ssh", functools.partial(self.ran, n), lambda: f"see {logf}", 300)
            applied = bool(seeds) and seed.applied(self.run, n, log, seeded=n in seeded)
            return applied, applied and (n in self.as_root or self.root_ok(n))

        names = self.lab.node_names
        with ThreadPoolExecutor(len(names)) as pool:  # each VM at once: a first login costs seconds under TCG
            got = dict(zip(names, pool.map(ready, names), strict=True))
        if all(root for _, root in got.values()):
            self.state.root_marker.write_text("")
        return {n for n, (applied, _) in got.items() if applied}

    def write_ssh_config(self) -> None:
        names = self.lab.node_names
        try:  # each VM's address as libvirt leased it: what Vagrant asks too, but without starting Ruby
            ips = libvirt.leased(self.networks[1], {n: self.lab.scoped(n) for n in names})
        except Exception:
            ips = {}  # a VM not there, libvirt not reachable: Vagrant says which
        if len(ips) == len(names):
            text = ssh_hosts(ips, [lab_key(self.state.ssh_dir, self.lab.name), insecure_key()])
        else:
            text = self._vagrant_call("ssh-config", "vagrant", lambda v: v.ssh_config())
        # one master connection per VM: a command then costs one round trip, not a handshake
        control = control_dir() / "%C"
        extra = (
            f'Host *\n  ControlMaster auto\n  ControlPath "{control}"\n  ControlPersist 10m\n'
            # a VM that reboots or stops must fail a command in seconds, not hang it: bounded connect
            # (a booting guest drops SYNs, and their retries stretch past a minute) and a dead-peer check
            "  LogLevel ERROR\n  ConnectTimeout 10\n  ServerAliveInterval 5\n  ServerAliveCountMax 3\n\n"
        )
        self.state.ssh_config.write_text(extra + text)

    def user_ssh_config(self) -> str:
        self.write_ssh_config()
        # root accepts the lab's key (provisioner step root-ssh): `ssh ovn-host-01` lands where the tutorial runs
        return self.state.ssh_config.read_text().replace("  User vagrant\n", "  User root\n")

    def _close_ssh(self, nodes: Sequence[str]) -> None:
        """End the master connections (one per node and login: vagrant, root): after a snapshot restore
        they point at TCP sessions the VMs no longer have, and would hang every command."""
        cfg = str(self.state.ssh_config)
        for n, login in itertools.product(nodes if self.state.ssh_config.exists() else [], ([], ["-l", "root"])):
            subprocess.run(["ssh", "-F", cfg, *login, "-O", "exit", n], capture_output=True)

    def after_install(self) -> None:
        """Once root accepts the lab's key (step root-ssh), log in as root: no sudo, ~0.1 s less a command."""
        if self.state.root_marker.exists():
            return
        with ThreadPoolExecutor(len(self.lab.node_names)) as pool:
            if all(pool.map(self.root_ok, self.lab.node_names)):
                self.state.root_marker.write_text("")

    def root_ok(self, node: str) -> bool:
        argv = ["ssh", "-F", str(self.state.ssh_config), "-T", "-l", "root", node, "true"]
        try:
            return subprocess.run(argv, capture_output=True, timeout=60).returncode == 0
        except subprocess.TimeoutExpired:
            return False  # stay with sudo: slower, not wrong

    def node_argv(self, node: str, argv: Sequence[str], *, tty: bool = False) -> list[str]:
        if not self.state.ssh_config.exists():
            self.write_ssh_config()
        ssh = ["ssh", "-F", str(self.state.ssh_config), "-t" if tty else "-T"]
        interactive = argv[:1] == ["/bin/bash"]
        if node in self.as_root or self.state.root_marker.exists():
            return [*ssh, "-l", "root", node, "--", "exec bash -l" if interactive else shlex.join(argv)]
        return [*ssh, node, "--", "sudo -i" if interactive else "sudo " + shlex.join(argv)]

    def session_argv(self, node: str, argv: Sequence[str]) -> list[str]:
        # ssh closes every inherited fd at start, the lab's lock with them: `timeout 0` (no limit) stays as
        # its parent and holds the lock for it; it passes SIGTERM on to ssh
        return ["timeout", "0", *self.node_argv(node, argv)]

    def prepare(self, node: str) -> None:
        """Copy the provisioner package into the VM (a tar over the ssh connection)."""
        unpack = ["sh", "-c", 'rm -rf "$1" && mkdir -p "$1" && tar x -C "$1"', "sh", REMOTE_DIR]
        r = subprocess.run(self.node_argv(node, unpack), input=provisioner_tar(), capture_output=True)
        if r.returncode:
            raise BackendFailed(f"{node}: copying the provisioner failed: {r.stderr.decode().strip()}")

    def provisioner(self, node: str) -> list[str]:
        return ["env", f"PYTHONPATH={REMOTE_DIR}", "python3", "-S", "-m", "provision"]  # -S: stdlib only

    def status(self) -> dict[str, str]:
        if not self.state.vagrantfile.exists():
            return {n.name: "not created" for n in self.lab.nodes}
        return {s.name: s.state for s in self._vagrant_call("status", "vagrant", lambda v: v.status())}

    def save_snapshot(self, name: str) -> None:
        self._vagrant_call("snapshot save", "vagrant-snapshot", lambda v: v.snapshot_save(name))  # every VM

    def restore_snapshot(self, name: str) -> None:
        self._vagrant_call("snapshot restore", "vagrant-snapshot", lambda v: v.snapshot_restore(name))
        self._close_ssh(self.lab.node_names)  # the restored VMs know nothing of the old ssh masters

    def has_leftovers(self) -> bool:
        return self.state.exists() or bool(self._sweep(dry_run=True))

    def destroy(self, log: Log) -> None:
        if self.state.vagrantfile.exists() and self.state.vagrant_dir.exists():
            log("vagrant destroy -f")
            try:
                self.vagrant("vagrant-destroy").destroy()
            except subprocess.CalledProcessError:
                log("vagrant destroy failed; sweeping with libvirt")
        for what in self._sweep(dry_run=False):
            log(f"removed {what}")
        self._close_ssh(self.state.known_nodes())
        self.state.remove()

    def _sweep(self, *, dry_run: bool) -> list[str]:
        domains = {self.lab.scoped(n) for n in self.state.known_nodes()}
        # a domain's own volumes (and seed disk, `<domain>-seed.qcow2`) go with it; the kernel is the lab's
        kernel = {self.lab.scoped("vmlinuz"), self.lab.scoped("initrd.img")}
        return libvirt.sweep(self.lab.name, domains, self.networks, kernel, dry_run=dry_run)

    def remove_box(self, log: Log) -> None:
        box = self.lab.vagrant.box
        # not in the lab's VAGRANT_CWD: the box is the user's, and teardown has just removed that directory
        env = {k: v for k, v in self.env().items() if k != "VAGRANT_CWD"}
        r = subprocess.run(["vagrant", "box", "remove", "-f", "--all", box], env=env, capture_output=True, text=True)
        if r.returncode and "could not be found" not in r.stdout + r.stderr:
            raise BackendFailed(f"vagrant box remove {box} failed", "see the output below", r.stdout + r.stderr)
        for name in libvirt.drop_box_volumes(box):
            log(f"removed box volume {name}")
        log(f"removed box {box}")
