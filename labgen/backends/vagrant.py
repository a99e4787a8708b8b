"""vagrant backend: libvirt VMs from the rendered Vagrantfile; commands over plain OpenSSH.

python-vagrant does up, status, destroy and ssh-config; everything inside the VMs goes over `ssh -F
ssh_config` with a ControlMaster (`vagrant ssh -c` costs 3-8 s a call under TCG). libvirt-python checks
the host before `up` and sweeps the lab's domains, networks and volumes on teardown, also when
Vagrant's own state was lost.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import shlex
import shutil
import subprocess
import tarfile
import tempfile
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..model import Lab
from ..render import Accel, Kernel, render_vagrantfile
from ..ui import progress
from .base import Backend, Probe

URI = "qemu:///system"
POOL = "default"
REMOTE_DIR = "/opt/ovn-lab"  # where the provisioner package goes inside the VMs
REPO = Path(__file__).resolve().parents[2]


def choose_accel(setting: str) -> Accel:
    """KVM when it can run ordinary guests, else QEMU TCG. /dev/kvm alone is not proof: on a PVM host it
    exists and libvirt lists kvm, yet guests hang at boot, so require the CPU's vmx/svm flag too."""
    flags = set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    break
    except OSError:
        pass
    hw = bool(flags & {"vmx", "svm"})
    dev = os.access("/dev/kvm", os.R_OK | os.W_OK)
    if setting == "kvm":
        return Accel("kvm", "KVM, forced by vagrant.accel")
    if setting == "tcg":
        return Accel("qemu", "QEMU TCG, forced by vagrant.accel")
    if hw and dev:
        return Accel("kvm", "KVM: the CPU has vmx/svm and /dev/kvm is usable")
    why = "the CPU shows no vmx/svm" if not hw else "/dev/kvm is not usable"
    return Accel("qemu", f"QEMU TCG (software emulation, boots take minutes): {why}")


def _libvirt() -> Any:
    import libvirt  # imported late: the netns backend and the tests of other tiers do not need it

    libvirt.registerErrorHandler(lambda *_: None, None)  # errors arrive as exceptions; keep stderr clean
    return libvirt


def _connect() -> Any:
    return _libvirt().open(URI)


class VagrantBackend(Backend):
    name = "vagrant"
    datapath = "system"  # the guest kernel's openvswitch module
    services = "systemd"
    install = True

    def __init__(self, lab: Lab):
        super().__init__(lab)
        self.ssh_config = self.state / "ssh_config"
        self.underlay_net = f"{lab.name}-underlay"
        self.mgmt_net = f"{lab.name}-mgmt"

    # -- vagrant ------------------------------------------------------------------------------------------
    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            VAGRANT_CWD=str(self.state),
            VAGRANT_DEFAULT_PROVIDER="libvirt",
            VAGRANT_NO_COLOR="1",
            VAGRANT_CHECKPOINT_DISABLE="1",
            VAGRANT_LOG=env.get("VAGRANT_LOG", "error"),
        )
        return env

    def vagrant(self, log: Path) -> Any:
        import vagrant

        return vagrant.Vagrant(
            root=str(self.state),
            env=self.env(),
            quiet_stdout=False,
            quiet_stderr=False,
            out_cm=vagrant.make_file_cm(str(log)),
            err_cm=vagrant.make_file_cm(str(log)),
        )

    def box_dir(self) -> Path | None:
        home = Path(os.environ.get("VAGRANT_HOME", Path.home() / ".vagrant.d"))
        base = home / "boxes" / self.lab.vagrant.box.replace("/", "-VAGRANTSLASH-")
        found = sorted(base.glob("*/libvirt"))
        return found[-1] if found else None

    # -- checks -------------------------------------------------------------------------------------------
    def probes(self) -> list[Probe]:
        return [
            Probe("vagrant", lambda: None if shutil.which("vagrant") else "vagrant is not installed", "invoke setup"),
            Probe("vagrant-libvirt", self._plugin_missing, "invoke setup (or: vagrant plugin install vagrant-libvirt)"),
            Probe(
                "libvirt",
                self._libvirt_problem,
                "start libvirtd (invoke setup; without systemd: "
                "virtlogd -d; libvirtd -d) and make sure you are in the libvirt group",
            ),
            Probe(
                "subnets",
                self._overlap,
                "set underlay.subnet (and the node IPs) or vagrant.management_subnet in lab.toml to a free /24",
            ),
            Probe("storage", self._storage_problem, "free disk space under /var/lib/libvirt/images"),
            Probe("memory", self._memory_problem, "lower vagrant.memory in lab.toml, or stop other VMs"),
            Probe("box", self._box_problem, "invoke box (builds the lab's Debian 12 box locally)"),
        ]

    def _storage_problem(self) -> str | None:
        """The pool (created by `up` when missing) must hold the box and one overlay per VM."""
        path = "/var/lib/libvirt/images"
        try:
            conn = _connect()
            try:
                m = re.search(r"<path>([^<]+)</path>", conn.storagePoolLookupByName(POOL).XMLDesc())
                path = m[1] if m else path
            except Exception:
                pass  # no pool yet: `up` defines it at /var/lib/libvirt/images
            conn.close()
        except Exception:
            return None  # reported by the libvirt probe
        target = Path(path)
        while not target.exists():
            target = target.parent
        free = shutil.disk_usage(target).free >> 20
        need = 1024 + 512 * len(self.lab.nodes)
        return None if free >= need else f"{free} MiB free in {path}, the lab needs about {need} MiB"

    def _memory_problem(self) -> str | None:
        # under TCG qemu's translation cache adds ~1 GiB per VM on top of the guest's RAM (measured)
        extra = 1024 if choose_accel(self.lab.vagrant.accel).driver == "qemu" else 256
        need = len(self.lab.nodes) * (self.lab.vagrant.memory + extra)
        with open("/proc/meminfo") as f:
            avail = next(int(ln.split()[1]) >> 10 for ln in f if ln.startswith("MemAvailable:"))
        return None if avail >= need else f"{avail} MiB available, {len(self.lab.nodes)} VMs need about {need} MiB"

    @staticmethod
    def _plugin_missing() -> str | None:
        r = subprocess.run(["vagrant", "plugin", "list"], capture_output=True, text=True)
        return None if "vagrant-libvirt" in r.stdout else "the vagrant-libvirt plugin is missing"

    @staticmethod
    def _libvirt_problem() -> str | None:
        try:
            _connect().close()
        except Exception as e:
            return f"cannot connect to {URI}: {str(e).splitlines()[0]}"
        return None

    def _box_problem(self) -> str | None:
        if self.box_dir() is None and self.lab.vagrant.box != "ovn-lab/bookworm":
            return f"box {self.lab.vagrant.box} is not installed (vagrant box add {self.lab.vagrant.box})"
        return None  # the lab's own box is built by `up` when missing

    def _overlap(self) -> str | None:
        return "; ".join(self.overlaps()) or None

    def overlaps(self) -> list[str]:
        """The lab's subnets against every host route and every libvirt network not of this lab."""
        mine = {
            "underlay.subnet": self.lab.underlay.subnet,
            "vagrant.management_subnet": self.lab.vagrant.management_subnet,
        }
        routes = json.loads(
            subprocess.run(["ip", "-j", "-4", "route", "show", "table", "all"], capture_output=True, text=True).stdout
            or "[]"
        )
        nets: list[tuple[str, str]] = []
        try:
            conn = _connect()
            for net in conn.listAllNetworks():
                if net.name() not in (self.underlay_net, self.mgmt_net) and net.isActive():
                    for m in re.finditer(
                        r"<ip address='([\d.]+)' (?:netmask='([\d.]+)'|prefix='(\d+)')", net.XMLDesc()
                    ):
                        nets.append((net.name(), str(ipaddress.ip_network(f"{m[1]}/{m[2] or m[3]}", strict=False))))
            conn.close()
        except Exception:
            pass  # reported by the libvirt probe
        return find_overlaps(mine, routes, nets, skip_devs=set(self._own_bridges()))

    def _own_bridges(self) -> list[str]:
        try:
            conn = _connect()
            names = []
            for n in (self.underlay_net, self.mgmt_net):
                try:
                    names.append(conn.networkLookupByName(n).bridgeName())
                except Exception:
                    continue
            conn.close()
            return names
        except Exception:
            return []

    # -- lifecycle ----------------------------------------------------------------------------------------
    def render(self) -> Path:
        accel = choose_accel(self.lab.vagrant.accel)
        kernel = self._kernel()
        text = render_vagrantfile(self.lab, accel, kernel, fast_guest=kernel is not None)
        self.state.mkdir(parents=True, exist_ok=True)
        path = self.state / "Vagrantfile"
        path.write_text(text)
        return path

    def validate(self) -> None:
        r = subprocess.run(["vagrant", "validate"], env=self.env(), capture_output=True, text=True)
        if r.returncode:
            raise RuntimeError(f"vagrant validate {self.state / 'Vagrantfile'} failed:\n{r.stdout}{r.stderr}")

    def _kernel(self) -> Kernel | None:
        """A box for direct kernel boot (the lab's own) ships vmlinuz/initrd. qemu runs as libvirt-qemu and
        cannot read them under a private home, so they go into the storage pool as lab volumes."""
        box = self.box_dir()
        if box is None or not (box / "vmlinuz").exists():
            return None
        m = re.search(r'cmd_line = "([^"]*)"', (box / "Vagrantfile").read_text())
        paths = {}
        conn = _connect()
        try:
            pool = self._pool(conn)
            for kind in ("vmlinuz", "initrd.img"):
                paths[kind] = self._upload(conn, pool, box / kind, f"{self.lab.name}-{kind}")
        finally:
            conn.close()
        return Kernel(paths["vmlinuz"], paths["initrd.img"], m[1] if m else "root=/dev/vda rw console=ttyS0")

    @staticmethod
    def _pool(conn: Any) -> Any:
        lv = _libvirt()
        try:
            pool = conn.storagePoolLookupByName(POOL)
        except lv.libvirtError:
            xml = f"<pool type='dir'><name>{POOL}</name><target><path>/var/lib/libvirt/images</path></target></pool>"
            pool = conn.storagePoolDefineXML(xml, 0)
            pool.build(0)
            pool.setAutostart(1)
        if not pool.isActive():
            pool.create(0)
        return pool

    @staticmethod
    def _upload(conn: Any, pool: Any, src: Path, name: str) -> str:
        lv = _libvirt()
        data = src.read_bytes()
        try:
            vol = pool.storageVolLookupByName(name)
            if _same(vol.path(), data):
                return str(vol.path())
            vol.delete(0)
        except lv.libvirtError:
            pass
        vol = pool.createXML(
            f"<volume><name>{name}</name><capacity>{len(data)}</capacity>"
            "<target><format type='raw'/></target></volume>",
            0,
        )
        stream = conn.newStream(0)
        vol.upload(stream, 0, len(data), 0)
        stream.send(data)
        stream.finish()
        return str(vol.path())

    def create(self, log: Callable[[str], None]) -> None:
        if self.box_dir() is None:
            if self.lab.vagrant.box != "ovn-lab/bookworm":
                raise RuntimeError(
                    f"box {self.lab.vagrant.box} is not installed: vagrant box add {self.lab.vagrant.box}"
                )
            from ..box import build_box

            build_box(self.lab.vagrant.box)
        accel = choose_accel(self.lab.vagrant.accel)
        log(f"accelerator: {accel.reason}")
        self.render()
        self.validate()
        logf = self.log_dir / "vagrant-up.log"
        log(f"vagrant up (all VMs in parallel), log: {logf}")
        stop = threading.Event()
        watcher = threading.Thread(target=_watch_vagrant_log, args=(logf, stop), daemon=True)
        watcher.start()
        try:
            self.vagrant(logf).up(provider="libvirt")
        except subprocess.CalledProcessError:
            tail = "\n".join(logf.read_text().splitlines()[-25:])
            raise RuntimeError(f"vagrant up failed; last lines of {logf}:\n{tail}") from None
        finally:
            stop.set()
        self.write_ssh_config()

    def write_ssh_config(self) -> None:
        text = self.vagrant(self.log_dir / "vagrant.log").ssh_config()
        # one master connection per VM: a command then costs one round trip, not a handshake
        control = f"/tmp/ovn-lab-{os.getuid()}-%C"
        extra = (
            f"Host *\n  ControlMaster auto\n  ControlPath {control}\n  ControlPersist 10m\n"
            # a VM that reboots or stops must fail a command in seconds, not hang it: bounded connect
            # (a booting guest drops SYNs, and their retries stretch past a minute) and a dead-peer check
            "  LogLevel ERROR\n  ConnectTimeout 10\n  ServerAliveInterval 5\n  ServerAliveCountMax 3\n\n"
        )
        self.ssh_config.write_text(extra + text)

    def user_ssh_config(self) -> str:
        self.write_ssh_config()
        # root accepts the lab's key (provisioner step root-ssh): `ssh ovn-host-01` lands where the tutorial runs
        return self.ssh_config.read_text().replace("  User vagrant\n", "  User root\n")

    def close_ssh(self) -> None:
        """End the master connections (one per node and login: vagrant, root): after a snapshot restore
        they point at TCP sessions the VMs no longer have, and would hang every command."""
        if self.ssh_config.exists():
            for n in self.lab.node_names:
                for login in ([], ["-l", "root"]):
                    subprocess.run(["ssh", "-F", str(self.ssh_config), *login, "-O", "exit", n], capture_output=True)

    @property
    def root_marker(self) -> Path:
        return self.state / "root-ssh"

    def after_install(self) -> None:
        """Once root accepts the lab's key (step root-ssh), log in as root: no sudo, ~0.1 s less a command."""
        if self.root_marker.exists():
            return
        argv = ["ssh", "-F", str(self.ssh_config), "-T", "-l", "root"]
        if all(
            subprocess.run([*argv, n, "true"], capture_output=True, timeout=60).returncode == 0
            for n in self.lab.node_names
        ):
            self.root_marker.write_text("")

    def node_argv(self, node: str, argv: Sequence[str], *, tty: bool = False) -> list[str]:
        if not self.ssh_config.exists():
            self.write_ssh_config()
        ssh = ["ssh", "-F", str(self.ssh_config), "-t" if tty else "-T"]
        if self.root_marker.exists():
            return [*ssh, "-l", "root", node, "--", shlex.join(argv) if argv[:1] != ["/bin/bash"] else "exec bash -l"]
        remote = "sudo " + shlex.join(argv) if argv[:1] != ["/bin/bash"] else "sudo -i"
        return [*ssh, node, "--", remote]

    def prepare(self, node: str) -> None:
        """Copy the provisioner package into the VM (a tar over the ssh connection)."""
        with tempfile.TemporaryFile() as buf:
            with tarfile.open(fileobj=buf, mode="w") as tar:
                tar.add(
                    REPO / "provision", arcname="provision", filter=lambda t: None if "__pycache__" in t.name else t
                )
            buf.seek(0)
            r = subprocess.run(
                self.node_argv(
                    node, ["sh", "-c", f"rm -rf {REMOTE_DIR} && mkdir -p {REMOTE_DIR} && tar x -C {REMOTE_DIR}"]
                ),
                stdin=buf,
                capture_output=True,
            )
        if r.returncode:
            raise RuntimeError(f"{node}: copying the provisioner failed: {r.stderr.decode().strip()}")

    def provisioner(self, node: str) -> list[str]:
        return ["env", f"PYTHONPATH={REMOTE_DIR}", "python3", "-S", "-m", "provision"]  # -S: stdlib only

    def status(self) -> dict[str, str]:
        if not (self.state / "Vagrantfile").exists():
            return {n.name: "not created" for n in self.lab.nodes}
        st = self.vagrant(self.log_dir / "vagrant.log").status()
        return {s.name: s.state for s in st}

    def has_leftovers(self) -> bool:
        return self.state.exists() or bool(self._sweep(dry_run=True))

    def destroy(self, log: Callable[[str], None]) -> None:
        if (self.state / "Vagrantfile").exists() and (self.state / ".vagrant").exists():
            log("vagrant destroy -f")
            try:
                self.vagrant(self.log_dir / "vagrant-destroy.log").destroy()
            except subprocess.CalledProcessError:
                log("vagrant destroy failed; sweeping with libvirt")
        for what in self._sweep(dry_run=False):
            log(f"removed {what}")
        subprocess.run(
            ["ssh", "-F", str(self.ssh_config), "-O", "exit", *self.lab.node_names], capture_output=True
        ) if self.ssh_config.exists() else None
        if self.state.exists():
            shutil.rmtree(self.state)

    def _sweep(self, *, dry_run: bool) -> list[str]:
        """Every libvirt object of this lab: domains by name or description, the lab's two networks,
        volumes named after its domains and kernel. Nothing of other labs or of the box."""
        try:
            conn = _connect()
        except Exception:
            return []
        lv = _libvirt()
        nodes = {n.name for n in self.lab.nodes}
        snap = self.state / "lab.json"
        if snap.exists():
            nodes |= {n["name"] for n in json.loads(snap.read_text()).get("nodes", [])}
        domains = {f"{self.lab.name}-{n}" for n in nodes}
        gone = []
        try:
            for dom in conn.listAllDomains():
                mine = dom.name() in domains or f"<description>ovn-lab {self.lab.name}</description>" in dom.XMLDesc()
                if not mine:
                    continue
                domains.add(dom.name())
                gone.append(f"domain {dom.name()}")
                if not dry_run:
                    if dom.isActive():
                        dom.destroy()
                    for snapname in dom.snapshotListNames():
                        dom.snapshotLookupByName(snapname).delete(lv.VIR_DOMAIN_SNAPSHOT_DELETE_METADATA_ONLY)
                    dom.undefineFlags(
                        lv.VIR_DOMAIN_UNDEFINE_NVRAM
                        | lv.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA
                        | lv.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE
                    )
            for net in conn.listAllNetworks():
                if net.name() in (self.underlay_net, self.mgmt_net):
                    gone.append(f"network {net.name()}")
                    if not dry_run:
                        if net.isActive():
                            net.destroy()
                        net.undefine()
            vols = {f"{d}.img" for d in domains} | {f"{self.lab.name}-vmlinuz", f"{self.lab.name}-initrd.img"}
            for pool in conn.listAllStoragePools():
                if not pool.isActive():
                    continue
                pool.refresh(0)
                for vol in pool.listAllVolumes():
                    if vol.name() in vols or any(vol.name().startswith(f"{d}-") for d in domains):
                        gone.append(f"volume {vol.name()}")
                        if not dry_run:
                            vol.delete(0)
        finally:
            conn.close()
        return gone

    def remove_box(self, log: Callable[[str], None]) -> None:
        box = self.lab.vagrant.box
        subprocess.run(["vagrant", "box", "remove", "-f", "--all", box], env=self.env(), capture_output=True)
        for name in drop_box_volumes(box):
            log(f"removed box volume {name}")
        log(f"removed box {box}")


def find_overlaps(
    mine: dict[str, str],
    routes: list[dict[str, Any]],
    networks: list[tuple[str, str]],
    skip_devs: frozenset[str] | set[str] = frozenset(),
) -> list[str]:
    """Which of the lab's subnets (key -> CIDR) collide with host routes (`ip -j route`) or libvirt networks
    (name, CIDR); ends with a free /24 to suggest."""
    found, taken = [], []
    for r in routes:
        dst = r.get("dst", "")
        if dst in ("default", "") or r.get("dev") in skip_devs or r.get("type") in ("local", "broadcast"):
            continue
        try:
            net = ipaddress.ip_network(dst if "/" in dst else f"{dst}/32", strict=False)
        except ValueError:
            continue
        taken.append(net)
        for key, sub in mine.items():
            if net.overlaps(ipaddress.ip_network(sub)):
                found.append(f"{key} {sub} overlaps the host route {dst} on {r.get('dev')}")
    for name, cidr in networks:
        net = ipaddress.ip_network(cidr)
        taken.append(net)
        for key, sub in mine.items():
            if net.overlaps(ipaddress.ip_network(sub)):
                found.append(f"{key} {sub} overlaps the libvirt network {name} ({cidr})")
    if found:
        taken += [ipaddress.ip_network(s) for s in mine.values()]
        free = next(
            (
                f"192.168.{i}.0/24"
                for i in range(200, 255)
                if not any(ipaddress.ip_network(f"192.168.{i}.0/24").overlaps(t) for t in taken)
            ),
            None,
        )
        if free:
            found.append(f"{free} is free")
    return found


def drop_box_volumes(box: str) -> list[str]:
    """Delete the pool copies vagrant-libvirt made of `box`, except a copy that still backs some VM's disk
    (another lab runs on it). Returns the names deleted; nothing when libvirt is not reachable."""
    slug = box.replace("/", "-VAGRANTSLASH-")
    try:
        conn = _connect()
    except Exception:
        return []
    try:
        vols = [v for p in conn.listAllStoragePools() if p.isActive() for v in p.listAllVolumes()]
        backing = {m for v in vols for m in re.findall(r"<backingStore>\s*<path>([^<]+)</path>", v.XMLDesc())}
        gone = []
        for vol in vols:
            if vol.name().startswith(f"{slug}_vagrant_box_image") and vol.path() not in backing:
                gone.append(vol.name())
                vol.delete(0)
        return gone
    finally:
        conn.close()


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


def _same(path: str, data: bytes) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read() == data
    except OSError:
        return False
